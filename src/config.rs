//! Typed views of `config.json` (reference §2.4) and `preprocessor_config.json` (§4).

use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

fn field<'a>(v: &'a Value, key: &str, path: &Path, scope: &str) -> Result<&'a Value, ConfigError> {
    v.get(key)
        .filter(|x| !x.is_null())
        .ok_or_else(|| ConfigError {
            path: path.to_path_buf(),
            message: format!("missing {scope}{key}"),
        })
}

fn usize_field(v: &Value, key: &str, path: &Path, scope: &str) -> Result<usize, ConfigError> {
    let x = field(v, key, path, scope)?;
    // Every such value is written as a GGUF U32: refuse what would be truncated.
    x.as_u64()
        .filter(|&n| n > 0 && n <= u32::MAX as u64)
        .map(|n| n as usize)
        .ok_or_else(|| ConfigError {
            path: path.to_path_buf(),
            message: format!("{scope}{key} must be a positive integer below 2^32, found {x}"),
        })
}

fn f64_field(v: &Value, key: &str, path: &Path, scope: &str) -> Result<f64, ConfigError> {
    let x = field(v, key, path, scope)?;
    // epsilons and RoPE bases: positive and finite once stored as f32
    x.as_f64()
        .filter(|f| *f > 0.0 && (*f as f32).is_finite() && *f as f32 > 0.0)
        .ok_or_else(|| ConfigError {
            path: path.to_path_buf(),
            message: format!("{scope}{key} must be a positive number, found {x}"),
        })
}

/// Mistral decoder hyperparameters.
#[derive(Debug, Clone)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub tie_word_embeddings: bool,
}

impl TextConfig {
    /// `v` is `text_config` of an Artemis config, or the whole config of a Mistral checkpoint.
    pub fn from_json(v: &Value, path: &Path, scope: &str) -> Result<TextConfig, ConfigError> {
        let hidden_size = usize_field(v, "hidden_size", path, scope)?;
        let num_attention_heads = usize_field(v, "num_attention_heads", path, scope)?;
        let head_dim = match v.get("head_dim").filter(|x| !x.is_null()) {
            Some(_) => usize_field(v, "head_dim", path, scope)?,
            None => hidden_size / num_attention_heads,
        };
        // transformers 5 nests rope_theta under rope_parameters; older configs have it at the top.
        let rope_theta = match v.get("rope_parameters").and_then(|r| r.get("rope_theta")) {
            Some(_) => f64_field(
                &v["rope_parameters"],
                "rope_theta",
                path,
                &format!("{scope}rope_parameters."),
            )?,
            None => f64_field(v, "rope_theta", path, scope)?,
        };
        if let Some(t) = v
            .get("rope_parameters")
            .and_then(|r| r.get("rope_type"))
            .and_then(Value::as_str)
        {
            if t != "default" {
                return Err(ConfigError { path: path.to_path_buf(), message: format!("{scope}rope_parameters.rope_type {t:?} is not supported (only default RoPE)") });
            }
        }
        if head_dim % 2 != 0 {
            return Err(ConfigError {
                path: path.to_path_buf(),
                message: format!("{scope}head_dim {head_dim} must be even"),
            });
        }
        let tc = TextConfig {
            hidden_size,
            intermediate_size: usize_field(v, "intermediate_size", path, scope)?,
            num_hidden_layers: usize_field(v, "num_hidden_layers", path, scope)?,
            num_attention_heads,
            num_key_value_heads: match v.get("num_key_value_heads").filter(|x| !x.is_null()) {
                Some(_) => usize_field(v, "num_key_value_heads", path, scope)?,
                None => num_attention_heads,
            },
            head_dim,
            vocab_size: usize_field(v, "vocab_size", path, scope)?,
            max_position_embeddings: usize_field(v, "max_position_embeddings", path, scope)?,
            rms_norm_eps: f64_field(v, "rms_norm_eps", path, scope)?,
            rope_theta,
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        if tc.num_attention_heads % tc.num_key_value_heads != 0 {
            return Err(ConfigError {
                path: path.to_path_buf(),
                message: format!(
                    "{scope}num_attention_heads {} is not a multiple of num_key_value_heads {}",
                    tc.num_attention_heads, tc.num_key_value_heads
                ),
            });
        }
        Ok(tc)
    }
}

/// Qwen3-VL vision tower hyperparameters (`vision_config`).
#[derive(Debug, Clone)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub in_channels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    pub out_hidden_size: usize,
    pub num_position_embeddings: usize,
    /// The ViT LayerNorm epsilon: 1e-6, hard-coded in transformers' Qwen3-VL vision blocks
    /// (reference §5.3); a `layer_norm_eps` field overrides it if a config carries one.
    pub layer_norm_eps: f64,
}

/// transformers' Qwen3-VL vision blocks use `nn.LayerNorm(..., eps=1e-6)` (reference §5.3, §10.8).
pub const QWEN3VL_VIT_LAYER_NORM_EPS: f64 = 1e-6;

impl VisionConfig {
    pub fn from_json(v: &Value, path: &Path) -> Result<VisionConfig, ConfigError> {
        let s = "vision_config.";
        let vc = VisionConfig {
            depth: usize_field(v, "depth", path, s)?,
            hidden_size: usize_field(v, "hidden_size", path, s)?,
            intermediate_size: usize_field(v, "intermediate_size", path, s)?,
            num_heads: usize_field(v, "num_heads", path, s)?,
            in_channels: v.get("in_channels").and_then(Value::as_u64).unwrap_or(3) as usize,
            patch_size: usize_field(v, "patch_size", path, s)?,
            temporal_patch_size: usize_field(v, "temporal_patch_size", path, s)?,
            spatial_merge_size: usize_field(v, "spatial_merge_size", path, s)?,
            out_hidden_size: usize_field(v, "out_hidden_size", path, s)?,
            num_position_embeddings: usize_field(v, "num_position_embeddings", path, s)?,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(QWEN3VL_VIT_LAYER_NORM_EPS),
        };
        let side = (vc.num_position_embeddings as f64).sqrt().round() as usize;
        if side * side != vc.num_position_embeddings {
            return Err(ConfigError {
                path: path.to_path_buf(),
                message: format!(
                    "{s}num_position_embeddings {} is not a square",
                    vc.num_position_embeddings
                ),
            });
        }
        if vc.temporal_patch_size != 2 {
            return Err(ConfigError {
                path: path.to_path_buf(),
                message: format!("{s}temporal_patch_size {} is not supported: the GGUF splits the Conv3d kernel into exactly 2 slices", vc.temporal_patch_size),
            });
        }
        Ok(vc)
    }
    pub fn pos_grid_side(&self) -> usize {
        (self.num_position_embeddings as f64).sqrt().round() as usize
    }
}

/// Image normalization and pixel budget, from `preprocessor_config.json` or the official
/// processor's defaults (reference §4).
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub min_pixels: u32,
    pub max_pixels: u32,
    /// Where the values came from, for `--dry-run` and warnings.
    pub source: String,
}

/// OpenAI CLIP statistics: the class defaults of transformers' Qwen2VLImageProcessor, which
/// Artemis builds without mean/std (reference §4 step 4).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// Artemis' processor budget: min_pixels 32·32, max_pixels 512·512 (reference §4).
pub const ARTEMIS_MIN_PIXELS: u32 = 32 * 32;
pub const ARTEMIS_MAX_PIXELS: u32 = 512 * 512;

impl Preprocessor {
    pub fn from_dir(dir: &Path) -> Result<Preprocessor, ConfigError> {
        let path = dir.join("preprocessor_config.json");
        let defaults = Preprocessor {
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            min_pixels: ARTEMIS_MIN_PIXELS,
            max_pixels: ARTEMIS_MAX_PIXELS,
            source: "official processor defaults (no preprocessor_config.json)".into(),
        };
        let text = match crate::input::read_text_io(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(defaults),
            Err(e) => {
                return Err(ConfigError {
                    path,
                    message: e.to_string(),
                })
            }
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| ConfigError {
            path: path.clone(),
            message: format!("invalid JSON: {e}"),
        })?;
        let triple = |key: &str, default: [f32; 3]| -> Result<[f32; 3], ConfigError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Array(a)) if a.len() == 3 && a.iter().all(Value::is_number) => {
                    Ok([0, 1, 2].map(|i| a[i].as_f64().unwrap_or(0.0) as f32))
                }
                Some(other) => Err(ConfigError {
                    path: path.clone(),
                    message: format!("{key} must be 3 numbers, found {other}"),
                }),
            }
        };
        let pixels = |keys: &[(&str, Option<&str>)], default: u32| -> u32 {
            keys.iter()
                .find_map(|(k, sub)| {
                    let x = v.get(*k)?;
                    let x = match sub {
                        Some(s) => x.get(*s)?,
                        None => x,
                    };
                    x.as_u64().and_then(|n| u32::try_from(n).ok())
                })
                .unwrap_or(default)
        };
        // transformers stores the budget as size {shortest_edge, longest_edge} (pixel counts, despite
        // the names); older files have min_pixels / max_pixels.
        Ok(Preprocessor {
            image_mean: triple("image_mean", CLIP_MEAN)?,
            image_std: triple("image_std", CLIP_STD)?,
            min_pixels: pixels(
                &[("size", Some("shortest_edge")), ("min_pixels", None)],
                ARTEMIS_MIN_PIXELS,
            ),
            max_pixels: pixels(
                &[("size", Some("longest_edge")), ("max_pixels", None)],
                ARTEMIS_MAX_PIXELS,
            ),
            source: path.display().to_string(),
        })
    }
}
