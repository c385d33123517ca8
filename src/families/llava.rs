//! The LLaVA-1.5 recipe (`LlavaForConditionalGeneration`): a CLIP ViT, a 2-layer MLP projector and
//! a decoder routed on `text_config.model_type` (qwen3 → qwen3 arch; mistral/llama → llama arch).
//! Facts and sources: llava-format.md. The mmproj is projector type `mlp` with
//! `clip.vision.feature_layer` written explicitly, only the blocks that run, CLS embedding first
//! (patch 0004 makes mtmd's graph put it there), exact-GELU projector flag, zero biases when the
//! projector has none, and the official CLIP preprocessing as our own keys.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::{model_type, Family, VisionInput, VisionPlan};
use crate::config::{ConfigError, CLIP_MEAN, CLIP_STD};
use crate::convert::ConvertError;
use crate::decoder::{arch_for, DecoderArch, MappingError, LLAVA_DECODER_PREFIXES};
use crate::gguf::{GgmlType, MetaValue};
use crate::keys;
use crate::plan::{choose_type, ne_of, FileKind, FilePlan, TensorPlan, Transform};

pub const LLAVA: Family = Family {
    name: "LLaVA-1.5 recipe (LlavaForConditionalGeneration, CLIP tower)",
    detect: |model_type, archs| {
        model_type == "llava" || archs.contains(&"LlavaForConditionalGeneration")
    },
    text_config: Some("text_config"),
    decoder_arch,
    decoder_prefixes: LLAVA_DECODER_PREFIXES,
    vision: Some(plan_mmproj),
    // LlavaProcessor.apply_chat_template: the processor's own template
    chat_template: super::TemplateOwner::Processor,
};

fn decoder_arch(text: &Value) -> Result<&'static DecoderArch, String> {
    // LlavaConfig builds a llama text config when none is given (llava-format.md §1.4)
    let mt = match model_type(text) {
        "" => "llama",
        other => other,
    };
    arch_for(mt).ok_or_else(|| format!("text_config.model_type {mt:?} is not supported for LLaVA decoders (supported: qwen3, mistral, llama)"))
}

/// CLIP tower hyperparameters, with CLIPVisionConfig's defaults for what real configs omit.
struct ClipConfig {
    hidden: usize,
    ffn: usize,
    layers: usize,
    heads: usize,
    patch: usize,
    image_size: usize,
    eps: f64,
    /// quick_gelu (mtmd's default FFN) or gelu_pytorch_tanh (clip.use_gelu)
    tanh_gelu: bool,
}

/// What LLaVA's own config says about how the tower feeds the projector.
struct LlavaSettings {
    clip: ClipConfig,
    /// Blocks that run: the normalised vision_feature_layer (llava-format.md §2.2).
    feature_layer: usize,
    projector_bias: bool,
    image_token_id: u64,
}

fn settings(config: &Value, path: &Path) -> Result<LlavaSettings, ConfigError> {
    let err = |message: String| ConfigError {
        path: path.to_path_buf(),
        message,
    };
    if config
        .get("image_grid_pinpoints")
        .is_some_and(|v| !v.is_null())
    {
        return Err(err("image_grid_pinpoints (LLaVA-NeXT anyres) is not supported: only the LLaVA-1.5 recipe converts".into()));
    }
    let empty = Value::Object(Default::default());
    let vc = config.get("vision_config").unwrap_or(&empty);
    let vmt = vc
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("clip_vision_model");
    if vmt != "clip_vision_model" {
        return Err(err(format!("vision_config.model_type {vmt:?} is not supported (only CLIP towers: clip_vision_model)")));
    }
    // CLIPVisionConfig / LlavaConfig defaults: CLIP-L/336 (llava-format.md §1.4)
    let int = |key: &str, default: u64| -> Result<usize, ConfigError> {
        match vc.get(key) {
            None | Some(Value::Null) => Ok(default as usize),
            Some(v) => v
                .as_u64()
                .filter(|&n| n > 0 && n <= u32::MAX as u64)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    err(format!(
                        "vision_config.{key} must be a positive integer below 2^32, found {v}"
                    ))
                }),
        }
    };
    let act = vc
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("quick_gelu");
    let tanh_gelu = match act {
        "quick_gelu" => false,
        "gelu_pytorch_tanh" => true,
        other => return Err(err(format!("vision_config.hidden_act {other:?} is not supported (mtmd's CLIP runs quick_gelu or tanh GELU)"))),
    };
    let eps = match vc.get("layer_norm_eps") {
        None | Some(Value::Null) => 1e-5,
        Some(v) => v
            .as_f64()
            .filter(|e| *e > 0.0 && e.is_finite())
            .ok_or_else(|| {
                err(format!(
                    "vision_config.layer_norm_eps must be a positive number, found {v}"
                ))
            })?,
    };
    let clip = ClipConfig {
        hidden: int("hidden_size", 1024)?,
        ffn: int("intermediate_size", 4096)?,
        layers: int("num_hidden_layers", 24)?,
        heads: int("num_attention_heads", 16)?,
        patch: int("patch_size", 14)?,
        image_size: int("image_size", 336)?,
        eps,
        tanh_gelu,
    };
    if clip.image_size % clip.patch != 0 {
        return Err(err(format!(
            "vision_config.image_size {} is not a multiple of patch_size {}",
            clip.image_size, clip.patch
        )));
    }
    let strategy = config
        .get("vision_feature_select_strategy")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if strategy != "default" {
        return Err(err(format!("vision_feature_select_strategy {strategy:?} is not supported: mtmd always drops the CLS row of a CLIP tower (\"default\")")));
    }
    let vfl = match config.get("vision_feature_layer") {
        None | Some(Value::Null) => -2,
        Some(Value::Array(a)) if a.len() == 1 => a[0].as_i64().ok_or_else(|| err(format!("vision_feature_layer {a:?} is not an integer")))?,
        Some(Value::Array(a)) => return Err(err(format!("vision_feature_layer {a:?}: several feature layers are concatenated in a different order by mtmd; only one layer converts"))),
        Some(v) => v.as_i64().ok_or_else(|| err(format!("vision_feature_layer {v} is not an integer")))?,
    };
    let n = clip.layers as i64;
    let k = if vfl >= 0 { vfl } else { n + 1 + vfl };
    if !(1..=n).contains(&k) {
        return Err(err(format!(
            "vision_feature_layer {vfl} selects no block of the {n}-layer tower"
        )));
    }
    let act = config
        .get("projector_hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    if act != "gelu" {
        return Err(err(format!("projector_hidden_act {act:?} is not supported (the LLaVA MLP projector runs exact GELU)")));
    }
    Ok(LlavaSettings {
        clip,
        feature_layer: k as usize,
        projector_bias: config
            .get("multimodal_projector_bias")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        image_token_id: config
            .get("image_token_index")
            .or_else(|| config.get("image_token_id"))
            .and_then(Value::as_u64)
            .unwrap_or(32000),
    })
}

/// The official CLIPImageProcessor settings (`processor_config.json["image_processor"]`, else
/// `preprocessor_config.json`; defaults: the checkpoint's image size, CLIP mean/std).
struct ClipPreprocess {
    mean: [f32; 3],
    std: [f32; 3],
    shortest_edge: u32,
    crop: [u32; 2],
    source: String,
}

fn preprocess_settings(dir: &Path, image_size: usize) -> Result<ClipPreprocess, ConvertError> {
    let mut found = None;
    for (file, nested) in [
        ("processor_config.json", Some("image_processor")),
        ("preprocessor_config.json", None),
    ] {
        let path = dir.join(file);
        if !path.exists() {
            continue;
        }
        let v = crate::checkpoint::read_json(&path)?;
        let ip = match nested {
            Some(k) => v.get(k).cloned(),
            None => Some(v),
        };
        if let Some(ip) = ip {
            found = Some((path, ip));
            break;
        }
    }
    let Some((path, ip)) = found else {
        return Ok(ClipPreprocess {
            mean: CLIP_MEAN,
            std: CLIP_STD,
            shortest_edge: image_size as u32,
            crop: [image_size as u32; 2],
            source: "CLIP defaults at the tower's image size (no processor config)".into(),
        });
    };
    let err = |message: String| {
        ConvertError::from(ConfigError {
            path: path.clone(),
            message,
        })
    };
    if ip.get("do_pad").and_then(Value::as_bool) == Some(true) {
        return Err(err("do_pad (LlavaImageProcessor's pad-to-square mode) is not supported; only resize + center crop".into()));
    }
    if let Some(r) = ip.get("resample").and_then(Value::as_u64) {
        if r != 3 {
            return Err(err(format!(
                "resample {r} is not supported (only 3 = bicubic)"
            )));
        }
    }
    let triple = |key: &str, d: [f32; 3]| -> Result<[f32; 3], ConvertError> {
        match ip.get(key) {
            None | Some(Value::Null) => Ok(d),
            Some(Value::Array(a))
                if a.len() == 3 && a.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)) =>
            {
                Ok([0, 1, 2].map(|i| a[i].as_f64().unwrap_or(0.0) as f32))
            }
            Some(other) => Err(err(format!("{key} must be 3 numbers, found {other}"))),
        }
    };
    let u = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .filter(|&n| n > 0 && n <= 1 << 16)
            .map(|n| n as u32)
    };
    let size = ip.get("size");
    let shortest_edge = match size {
        None => image_size as u32,
        Some(s) => u(s.get("shortest_edge")).ok_or_else(|| {
            err(format!(
                "size {s} is not supported (expected {{\"shortest_edge\": N}})"
            ))
        })?,
    };
    let crop = match ip.get("crop_size") {
        _ if ip.get("do_center_crop").and_then(Value::as_bool) == Some(false) => {
            return Err(err(
                "do_center_crop false is not supported (the LLaVA-1.5 processor crops)".into(),
            ))
        }
        None => [shortest_edge; 2],
        Some(c) => match (u(c.get("height")), u(c.get("width"))) {
            (Some(h), Some(w)) => [h, w],
            _ => {
                return Err(err(format!(
                    "crop_size {c} must have a positive height and width"
                )))
            }
        },
    };
    if crop != [image_size as u32; 2] {
        return Err(err(format!("crop_size {crop:?} differs from the tower's image_size {image_size}: mtmd would resize again")));
    }
    Ok(ClipPreprocess {
        mean: triple("image_mean", CLIP_MEAN)?,
        std: triple("image_std", CLIP_STD)?,
        shortest_edge,
        crop,
        source: path.display().to_string(),
    })
}

/// Symbolic dimensions of tower and projector tensors.
#[derive(Clone, Copy)]
enum Dim {
    H,
    Ffn,
    Patch,
    NPos,
    Text,
    ProjIn,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// kept F32 (norms, biases, embeddings)
    F32,
    /// F16 at f16 outtypes, else F32 (conv kernel, as upstream stores it)
    Kernel,
    Matmul,
}

struct Rule {
    hf: &'static str,
    gguf: &'static str,
    shape: &'static [Dim],
    kind: Kind,
}

const fn r(hf: &'static str, gguf: &'static str, shape: &'static [Dim], kind: Kind) -> Rule {
    Rule {
        hf,
        gguf,
        shape,
        kind,
    }
}

use Dim::*;

/// Tower head (names after the `vision_tower.` prefix), llava-format.md §2.3.
const HEAD: &[Rule] = &[
    r(
        "embeddings.class_embedding",
        "v.class_embd",
        &[H],
        Kind::F32,
    ),
    r(
        "embeddings.patch_embedding.weight",
        "v.patch_embd.weight",
        &[H, Dim::Patch, Dim::Patch, Dim::Patch],
        Kind::Kernel,
    ),
    r(
        "embeddings.position_embedding.weight",
        "v.position_embd.weight",
        &[NPos, H],
        Kind::F32,
    ),
    r("pre_layrnorm.weight", "v.pre_ln.weight", &[H], Kind::F32),
    r("pre_layrnorm.bias", "v.pre_ln.bias", &[H], Kind::F32),
];

/// One encoder block `{N}`; no Q/K permutation (no RoPE in this graph).
const BLOCK: &[Rule] = &[
    r(
        "encoder.layers.{N}.self_attn.q_proj.weight",
        "v.blk.{N}.attn_q.weight",
        &[H, H],
        Kind::Matmul,
    ),
    r(
        "encoder.layers.{N}.self_attn.q_proj.bias",
        "v.blk.{N}.attn_q.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.self_attn.k_proj.weight",
        "v.blk.{N}.attn_k.weight",
        &[H, H],
        Kind::Matmul,
    ),
    r(
        "encoder.layers.{N}.self_attn.k_proj.bias",
        "v.blk.{N}.attn_k.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.self_attn.v_proj.weight",
        "v.blk.{N}.attn_v.weight",
        &[H, H],
        Kind::Matmul,
    ),
    r(
        "encoder.layers.{N}.self_attn.v_proj.bias",
        "v.blk.{N}.attn_v.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.self_attn.out_proj.weight",
        "v.blk.{N}.attn_out.weight",
        &[H, H],
        Kind::Matmul,
    ),
    r(
        "encoder.layers.{N}.self_attn.out_proj.bias",
        "v.blk.{N}.attn_out.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.layer_norm1.weight",
        "v.blk.{N}.ln1.weight",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.layer_norm1.bias",
        "v.blk.{N}.ln1.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.mlp.fc1.weight",
        "v.blk.{N}.ffn_up.weight",
        &[Ffn, H],
        Kind::Matmul,
    ),
    r(
        "encoder.layers.{N}.mlp.fc1.bias",
        "v.blk.{N}.ffn_up.bias",
        &[Ffn],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.mlp.fc2.weight",
        "v.blk.{N}.ffn_down.weight",
        &[H, Ffn],
        Kind::Matmul,
    ),
    r(
        "encoder.layers.{N}.mlp.fc2.bias",
        "v.blk.{N}.ffn_down.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.layer_norm2.weight",
        "v.blk.{N}.ln2.weight",
        &[H],
        Kind::F32,
    ),
    r(
        "encoder.layers.{N}.layer_norm2.bias",
        "v.blk.{N}.ln2.bias",
        &[H],
        Kind::F32,
    ),
];

/// The projector (names after `multi_modal_projector.`); biases may be absent (zeros written).
const PROJECTOR: &[Rule] = &[
    r(
        "linear_1.weight",
        "mm.0.weight",
        &[Text, ProjIn],
        Kind::Matmul,
    ),
    r("linear_1.bias", "mm.0.bias", &[Text], Kind::F32),
    r(
        "linear_2.weight",
        "mm.2.weight",
        &[Text, Text],
        Kind::Matmul,
    ),
    r("linear_2.bias", "mm.2.bias", &[Text], Kind::F32),
];

/// Prefix pairs (tower, projector) as transformers 5 and older versions write them (§1.3).
const PREFIXES: &[(&str, &str)] = &[
    ("vision_tower.", "multi_modal_projector."),
    ("vision_tower.vision_model.", "multi_modal_projector."),
    ("model.vision_tower.", "model.multi_modal_projector."),
    (
        "model.vision_tower.vision_model.",
        "model.multi_modal_projector.",
    ),
];

fn plan_mmproj(v: &VisionInput) -> Result<VisionPlan, ConvertError> {
    let s = settings(&v.ckpt.config, v.config_path)?;
    let c = &s.clip;
    let pre = preprocess_settings(&v.ckpt.dir, c.image_size)?;
    let (vp, pp) = PREFIXES
        .iter()
        .copied()
        .find(|(vp, _)| {
            v.ckpt
                .entry(&format!("{vp}embeddings.class_embedding"))
                .is_some()
        })
        .ok_or_else(|| MappingError::Missing {
            file: v.ckpt.dir.display().to_string(),
            name: "vision_tower.embeddings.class_embedding (CLIP tower)".into(),
        })?;
    let side = c.image_size / c.patch;
    let resolve = |d: Dim| match d {
        H => c.hidden,
        Ffn => c.ffn,
        Dim::Patch => c.patch,
        NPos => side * side + 1,
        Text => v.text.hidden_size,
        ProjIn => c.hidden,
    };
    let mut tensors = Vec::new();
    let mut consumed = BTreeSet::new();
    let mut add = |rule: &Rule,
                   prefix: &str,
                   block: Option<usize>,
                   optional: bool|
     -> Result<(), ConvertError> {
        let sub = |x: &str| block.map_or(x.to_string(), |n| x.replace("{N}", &n.to_string()));
        let src = format!("{prefix}{}", sub(rule.hf));
        let mut expected: Vec<usize> = rule.shape.iter().map(|&d| resolve(d)).collect();
        if rule.kind == Kind::Kernel {
            expected = vec![c.hidden, 3, c.patch, c.patch];
        }
        let ne = ne_of(&expected);
        let Some(entry) = v.ckpt.entry(&src) else {
            if optional {
                tensors.push(TensorPlan {
                    name: sub(rule.gguf),
                    source: format!("(zeros: {src} absent)"),
                    ne,
                    ggml_type: GgmlType::F32,
                    transform: Transform::Zero,
                    fallback_note: None,
                });
                return Ok(());
            }
            return Err(MappingError::Missing {
                file: v.ckpt.dir.display().to_string(),
                name: src,
            }
            .into());
        };
        if entry.shape != expected {
            return Err(MappingError::Shape {
                file: v.ckpt.shard_path(entry).display().to_string(),
                name: src,
                found: entry.shape.clone(),
                expected,
            }
            .into());
        }
        let (ggml_type, fallback_note) = match rule.kind {
            Kind::F32 => (GgmlType::F32, None),
            Kind::Kernel => (
                if v.outtype == crate::plan::OutType::F32 {
                    GgmlType::F32
                } else {
                    GgmlType::F16
                },
                None,
            ),
            Kind::Matmul => choose_type(&ne, v.outtype),
        };
        tensors.push(TensorPlan {
            name: sub(rule.gguf),
            source: src.clone(),
            ne,
            ggml_type,
            transform: Transform::Identity,
            fallback_note,
        });
        consumed.insert(src);
        Ok(())
    };
    for rule in HEAD {
        add(rule, vp, None, false)?;
    }
    for n in 0..s.feature_layer {
        for rule in BLOCK {
            add(rule, vp, Some(n), false)?;
        }
    }
    for rule in PROJECTOR {
        let is_bias = rule.hf.ends_with(".bias");
        add(rule, pp, None, is_bias && !s.projector_bias)?;
    }
    // Blocks past the feature layer, post_layernorm (applied by HF to the pooled CLS only) and the
    // position_ids buffer are not written (§2.4).
    let dropped: BTreeSet<String> = v
        .ckpt
        .tensor_names()
        .filter(|n| n.starts_with(vp) && !consumed.contains(*n))
        .map(str::to_string)
        .collect();

    let image_token = crate::vocab::token_text(&v.ckpt.dir, s.image_token_id as u32)
        .unwrap_or_else(|| "<image>".into());
    let f32s = |a: [f32; 3]| MetaValue::Array(a.iter().map(|&x| MetaValue::F32(x)).collect());
    let u = |x: usize| MetaValue::U32(x as u32);
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetaValue::Str("clip".into()),
        ),
        ("general.type".into(), MetaValue::Str("mmproj".into())),
        ("general.name".into(), MetaValue::Str(v.name.to_string())),
        (
            "general.file_type".into(),
            MetaValue::U32(v.outtype.file_type()),
        ),
        ("clip.has_vision_encoder".into(), MetaValue::Bool(true)),
        ("clip.projector_type".into(), MetaValue::Str("mlp".into())),
        ("clip.use_gelu".into(), MetaValue::Bool(c.tanh_gelu)),
        ("clip.vision.image_size".into(), u(c.image_size)),
        ("clip.vision.patch_size".into(), u(c.patch)),
        ("clip.vision.embedding_length".into(), u(c.hidden)),
        ("clip.vision.feed_forward_length".into(), u(c.ffn)),
        // only the blocks that run, and the layer said explicitly (§2.2)
        ("clip.vision.block_count".into(), u(s.feature_layer)),
        ("clip.vision.attention.head_count".into(), u(c.heads)),
        (
            "clip.vision.attention.layer_norm_epsilon".into(),
            MetaValue::F32(c.eps as f32),
        ),
        ("clip.vision.projection_dim".into(), u(v.text.hidden_size)),
        ("clip.vision.image_mean".into(), f32s(pre.mean)),
        ("clip.vision.image_std".into(), f32s(pre.std)),
        (
            "clip.vision.feature_layer".into(),
            MetaValue::Array(vec![MetaValue::I32(s.feature_layer as i32)]),
        ),
        (keys::PROJECTOR_GELU_ERF.into(), MetaValue::Bool(true)),
        (
            keys::RESIZE_SHORTEST_EDGE.into(),
            MetaValue::U32(pre.shortest_edge),
        ),
        (
            keys::CROP_SIZE.into(),
            MetaValue::Array(pre.crop.iter().map(|&x| MetaValue::U32(x)).collect()),
        ),
        (keys::IMAGE_PLACEHOLDER.into(), MetaValue::Str(image_token)),
        ("general.quantization_version".into(), MetaValue::U32(2)),
    ];
    Ok(VisionPlan {
        file: FilePlan {
            kind: FileKind::Mmproj,
            file_name: v.file_name.clone(),
            metadata,
            tensors,
        },
        consumed,
        dropped,
        dropped_reason:
            "tower tensors unused by LLaVA (blocks past the feature layer, post_layernorm)",
        preprocessing_source: pre.source,
    })
}
