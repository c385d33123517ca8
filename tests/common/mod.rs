//! Shared test helpers: fixture paths, golden outputs written by tools/make_fixtures.py (the
//! official artemis-vlm implementation), conversion into temp dirs, and comparison metrics.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use artemis_gguf::convert::{self, ConvertOptions, OutTypeArg};
use artemis_gguf::plan::OutType;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A fresh, empty temp directory unique to this test. It is removed when the test binary exits,
/// passed or failed (set `ARTEMIS_KEEP_TEST_DIRS=1` to keep them for a post-mortem): the suite
/// writes about 2.5 GB of checkpoints and GGUFs per run, and left behind they filled the disk
/// that CI builds on.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("artemis-gguf-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    remove_at_exit(&dir);
    dir
}

static AT_EXIT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Registers `dir` for removal when the process exits. The test harness returns from `main` when
/// every test passed and calls `exit(101)` when one failed; both run the C `atexit` handlers.
pub fn remove_at_exit(dir: &Path) {
    static REGISTER: std::sync::Once = std::sync::Once::new();
    REGISTER.call_once(|| {
        extern "C" fn remove_all() {
            if std::env::var_os("ARTEMIS_KEEP_TEST_DIRS").is_some() {
                return;
            }
            let dirs = match AT_EXIT.lock() {
                Ok(mut dirs) => std::mem::take(&mut *dirs),
                Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
            };
            for dir in dirs {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        // SAFETY: registering a plain extern "C" function with no captured state.
        unsafe { libc::atexit(remove_all) };
    });
    let mut dirs = AT_EXIT.lock().unwrap_or_else(|p| p.into_inner());
    dirs.push(dir.to_path_buf());
}

#[derive(serde::Deserialize, Debug, Clone)]
pub struct Case {
    pub name: String,
    pub image: Option<String>,
    /// Every image of the case, in prompt order.
    #[serde(default)]
    pub images: Vec<String>,
    pub prompt: String,
    pub input_ids: Vec<i32>,
    pub image_grid_thw: Vec<Vec<usize>>,
    pub resized_hw: Option<Vec<usize>>,
    pub n_image_tokens: usize,
    pub greedy_ids: Vec<i32>,
}

pub struct Golden {
    pub cases: Vec<Case>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Golden {
    pub fn load(ckpt: &str) -> Golden {
        let dir = fixtures().join("golden").join(ckpt);
        let cases: Vec<Case> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap())
                .unwrap();
        let bytes = std::fs::read(dir.join("tensors.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
                let v = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name, (view.shape().to_vec(), v))
            })
            .collect();
        Golden { cases, tensors }
    }
    pub fn case(&self, name: &str) -> &Case {
        self.cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no golden case {name}"))
    }
    pub fn tensor(&self, name: &str) -> &[f32] {
        &self
            .tensors
            .get(name)
            .unwrap_or_else(|| panic!("no golden tensor {name}"))
            .1
    }
    pub fn shape(&self, name: &str) -> &[usize] {
        &self.tensors[name].0
    }
}

/// Converts a fixture checkpoint into `out` with one outtype for both files; returns
/// (decoder path, mmproj path or None).
pub fn convert_fixture(ckpt: &str, out: &Path, outtype: OutType) -> (PathBuf, Option<PathBuf>) {
    let opts = ConvertOptions {
        out_dir: out.to_path_buf(),
        outtype: OutTypeArg::Fixed(outtype),
        name: Some(ckpt.to_string()),
        quiet: true,
        verify: true,
        ..ConvertOptions::default()
    };
    let report = convert::convert(&fixtures().join(ckpt), &opts)
        .unwrap_or_else(|e| panic!("converting {ckpt}: {e}"));
    let dec = report
        .written
        .iter()
        .find(|p| {
            !p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("mmproj-")
        })
        .unwrap()
        .clone();
    let mm = report
        .written
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("mmproj-")
        })
        .cloned();
    (dec, mm)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// Loads an image file as packed RGB8 (the fixtures used here are plain RGB PNGs).
pub fn load_rgb(path: &Path) -> (u32, u32, Vec<u8>) {
    let img = image::open(path).unwrap().to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

/// The official prompt with each `<|vision_start|><|image_pad|><|vision_end|>` replaced by mtmd's
/// marker: mtmd frames the image with vision_start/vision_end itself (reference §8).
pub fn mtmd_prompt(prompt: &str) -> String {
    prompt.replace(
        "<|vision_start|><|image_pad|><|vision_end|>",
        llama_cpp_2::mtmd::mtmd_default_marker(),
    )
}

/// Runs `cmd` expecting failure: a single stderr line mentioning every needle, no panic.
pub fn expect_one_line_error(mut cmd: std::process::Command, needles: &[&str]) {
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "should fail: {cmd:?}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{err:?} should mention {n:?}");
    }
}

/// Widths of a synthetic one-layer Mistral checkpoint.
pub struct MistralDims {
    pub hidden: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Writes a one-layer `MistralForCausalLM` checkpoint (f32, small random weights) with the tiny
/// fixture's tokenizer files.
pub fn write_mistral_checkpoint(dir: &Path, d: MistralDims) {
    std::fs::create_dir_all(dir).unwrap();
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ] {
        std::fs::copy(fixtures().join("tiny").join(f), dir.join(f)).unwrap();
    }
    let vocab = 768;
    let cfg = serde_json::json!({
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": d.hidden,
        "intermediate_size": d.ffn, "num_hidden_layers": 1, "num_attention_heads": d.heads,
        "num_key_value_heads": d.kv_heads, "head_dim": d.head_dim, "vocab_size": vocab, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 4096, "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"},
        "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": 25
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rnd = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2).to_le_bytes()
            })
            .collect()
    };
    let (h, q, kv) = (d.hidden, d.heads * d.head_dim, d.kv_heads * d.head_dim);
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("model.embed_tokens.weight", vec![vocab, h]),
        ("model.norm.weight", vec![h]),
        ("lm_head.weight", vec![vocab, h]),
        ("model.layers.0.input_layernorm.weight", vec![h]),
        ("model.layers.0.post_attention_layernorm.weight", vec![h]),
        ("model.layers.0.self_attn.q_proj.weight", vec![q, h]),
        ("model.layers.0.self_attn.k_proj.weight", vec![kv, h]),
        ("model.layers.0.self_attn.v_proj.weight", vec![kv, h]),
        ("model.layers.0.self_attn.o_proj.weight", vec![h, q]),
        ("model.layers.0.mlp.gate_proj.weight", vec![d.ffn, h]),
        ("model.layers.0.mlp.up_proj.weight", vec![d.ffn, h]),
        ("model.layers.0.mlp.down_proj.weight", vec![h, d.ffn]),
    ];
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.clone(), rnd(s.iter().product())))
        .collect();
    let views: Vec<_> = data
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

/// Runs `cmd` with RLIMIT_FSIZE = `bytes` (writes past it fail with EFBIG, SIGXFSZ ignored):
/// a deterministic stand-in for a full disk.
pub fn limit_file_size(cmd: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
