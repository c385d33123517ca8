//! Validation of a GGUF's hyperparameters and tensor shapes against what llama.cpp will build from
//! them, before llama.cpp or mtmd sees the file. GGUFs are downloaded artifacts: a zero head
//! count is a SIGFPE inside clip, a transposed weight a GGML_ASSERT abort, an absurd block count
//! an allocation failure. Here each is one error naming the key or the tensor.
//!
//! The schemas are tables: hyperparameters with their bounds, then tensors whose shapes are
//! expressions over those hyperparameters (ggml order, innermost first).

use crate::gguf::{GgufFile, MetaValue};

/// A shape dimension: a hyperparameter expression.
#[derive(Clone, Copy)]
enum Dim {
    /// The named hyperparameter.
    Hp(&'static str),
    /// Hyperparameter times a constant.
    Times(&'static str, u64),
    /// Hyperparameter times the square of another (merged patches: E * M^2).
    TimesSq(&'static str, &'static str),
    Const(u64),
    /// Whatever the file says (checked elsewhere or free).
    Any,
}

/// One tensor rule; `{b}` in the name stands for each block.
struct TensorRule {
    name: &'static str,
    shape: &'static [Dim],
    required: bool,
}

use Dim::*;

/// An integer hyperparameter: its GGUF key (`{arch}` is the architecture), its name in shapes,
/// and the range it must lie in.
struct Hparam {
    key: &'static str,
    name: &'static str,
    min: u64,
    max: u64,
}

const MMPROJ_HPARAMS: &[Hparam] = &[
    Hparam {
        key: "clip.vision.embedding_length",
        name: "E",
        min: 1,
        max: 1 << 16,
    },
    Hparam {
        key: "clip.vision.feed_forward_length",
        name: "F",
        min: 1,
        max: 1 << 18,
    },
    Hparam {
        key: "clip.vision.block_count",
        name: "B",
        min: 1,
        max: 1024,
    },
    Hparam {
        key: "clip.vision.attention.head_count",
        name: "H",
        min: 1,
        max: 1024,
    },
    Hparam {
        key: "clip.vision.patch_size",
        name: "P",
        min: 1,
        max: 256,
    },
    Hparam {
        key: "clip.vision.spatial_merge_size",
        name: "M",
        min: 1,
        max: 16,
    },
    Hparam {
        key: "clip.vision.image_size",
        name: "image_size",
        min: 1,
        max: 1 << 16,
    },
    Hparam {
        key: "clip.vision.projection_dim",
        name: "D",
        min: 1,
        max: 1 << 18,
    },
];

/// The qwen3vl_merger graph (tools/mtmd/clip.cpp, build_qwen3vl) with the Artemis projector of
/// patch 0001 (reference: artemis-format.md §8).
const QWEN3VL_TENSORS: &[TensorRule] = &[
    TensorRule {
        name: "v.patch_embd.weight",
        shape: &[Hp("P"), Hp("P"), Const(3), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.patch_embd.weight.1",
        shape: &[Hp("P"), Hp("P"), Const(3), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.patch_embd.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.position_embd.weight",
        shape: &[Hp("E"), Any],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ln1.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ln1.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.attn_qkv.weight",
        shape: &[Hp("E"), Times("E", 3)],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.attn_qkv.bias",
        shape: &[Times("E", 3)],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.attn_out.weight",
        shape: &[Hp("E"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.attn_out.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.ln2.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ln2.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.ffn_up.weight",
        shape: &[Hp("E"), Hp("F")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ffn_up.bias",
        shape: &[Hp("F")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.ffn_down.weight",
        shape: &[Hp("F"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ffn_down.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.post_ln.weight",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.post_ln.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "mm.0.weight",
        shape: &[TimesSq("E", "M"), TimesSq("E", "M")],
        required: true,
    },
    TensorRule {
        name: "mm.0.bias",
        shape: &[TimesSq("E", "M")],
        required: false,
    },
    TensorRule {
        name: "mm.2.weight",
        shape: &[TimesSq("E", "M"), Hp("O")],
        required: true,
    },
    TensorRule {
        name: "mm.2.bias",
        shape: &[Hp("O")],
        required: false,
    },
    TensorRule {
        name: "mm.artemis_fc1.weight",
        shape: &[Hp("O"), Hp("A")],
        required: false,
    },
    TensorRule {
        name: "mm.artemis_fc1.bias",
        shape: &[Hp("A")],
        required: false,
    },
    TensorRule {
        name: "mm.artemis_fc2.weight",
        shape: &[Hp("A"), Hp("D")],
        required: false,
    },
    TensorRule {
        name: "mm.artemis_fc2.bias",
        shape: &[Hp("D")],
        required: false,
    },
];

const LLAMA_HPARAMS: &[Hparam] = &[
    Hparam {
        key: "{arch}.embedding_length",
        name: "E",
        min: 1,
        max: 1 << 17,
    },
    Hparam {
        key: "{arch}.feed_forward_length",
        name: "F",
        min: 1,
        max: 1 << 20,
    },
    Hparam {
        key: "{arch}.block_count",
        name: "B",
        min: 1,
        max: 4096,
    },
    Hparam {
        key: "{arch}.attention.head_count",
        name: "H",
        min: 1,
        max: 4096,
    },
    Hparam {
        key: "{arch}.attention.head_count_kv",
        name: "HKV",
        min: 1,
        max: 4096,
    },
    Hparam {
        key: "{arch}.context_length",
        name: "ctx",
        min: 1,
        max: 1 << 24,
    },
];

const LLAMA_TENSORS: &[TensorRule] = &[
    TensorRule {
        name: "token_embd.weight",
        shape: &[Hp("E"), Hp("V")],
        required: true,
    },
    TensorRule {
        name: "output_norm.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "output.weight",
        shape: &[Hp("E"), Hp("V")],
        required: false,
    },
    TensorRule {
        name: "blk.{b}.attn_norm.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.attn_q.weight",
        shape: &[Hp("E"), Hp("QD")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.attn_k.weight",
        shape: &[Hp("E"), Hp("KVD")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.attn_v.weight",
        shape: &[Hp("E"), Hp("KVDV")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.attn_output.weight",
        shape: &[Hp("QDV"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.ffn_norm.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.ffn_gate.weight",
        shape: &[Hp("E"), Hp("F")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.ffn_up.weight",
        shape: &[Hp("E"), Hp("F")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.ffn_down.weight",
        shape: &[Hp("F"), Hp("E")],
        required: true,
    },
];

/// qwen3: per-head RMSNorm of q and k.
const QWEN3_EXTRA_TENSORS: &[TensorRule] = &[
    TensorRule {
        name: "blk.{b}.attn_q_norm.weight",
        shape: &[Hp("KL")],
        required: true,
    },
    TensorRule {
        name: "blk.{b}.attn_k_norm.weight",
        shape: &[Hp("KL")],
        required: true,
    },
];

struct Values(Vec<(&'static str, u64)>);

impl Values {
    fn get(&self, name: &str) -> Option<u64> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn eval(&self, d: Dim) -> Option<u64> {
        match d {
            Hp(n) => self.get(n),
            Times(n, k) => self.get(n)?.checked_mul(k),
            TimesSq(n, m) => self
                .get(n)?
                .checked_mul(self.get(m)?.checked_mul(self.get(m)?)?),
            Const(c) => Some(c),
            Any => None,
        }
    }
}

fn int(g: &GgufFile, key: &str) -> Option<u64> {
    match g.get(key)? {
        MetaValue::U8(v) => Some(*v as u64),
        MetaValue::U16(v) => Some(*v as u64),
        MetaValue::U32(v) => Some(*v as u64),
        MetaValue::U64(v) => Some(*v),
        MetaValue::I32(v) => u64::try_from(*v).ok(),
        MetaValue::I64(v) => u64::try_from(*v).ok(),
        _ => None,
    }
}

fn read_hparams(g: &GgufFile, table: &[Hparam], arch: &str) -> Result<Values, String> {
    let mut vals = Vec::new();
    for h in table {
        let key = h.key.replace("{arch}", arch);
        let v = int(g, &key).ok_or_else(|| match g.get(&key) {
            None => format!("{key} is missing"),
            Some(v) => format!("{key} is {v:?}, not a non-negative integer"),
        })?;
        if !(h.min..=h.max).contains(&v) {
            return Err(format!("{key} = {v} is outside {}..={}", h.min, h.max));
        }
        vals.push((h.name, v));
    }
    Ok(Values(vals))
}

fn check_tensors(g: &GgufFile, rules: &[TensorRule], vals: &Values) -> Result<(), String> {
    let blocks = vals.get("B").unwrap_or(0);
    for rule in rules {
        let names: Vec<String> = if rule.name.contains("{b}") {
            (0..blocks)
                .map(|b| rule.name.replace("{b}", &b.to_string()))
                .collect()
        } else {
            vec![rule.name.to_string()]
        };
        for name in names {
            let Some(t) = g.tensor(&name) else {
                if rule.required {
                    return Err(format!("tensor {name} is missing"));
                }
                continue;
            };
            let want: Vec<Option<u64>> = rule.shape.iter().map(|&d| vals.eval(d)).collect();
            let mut got = t.ne.clone();
            // ggml drops trailing 1s from the stored shape
            while got.len() > want.len() && got.last() == Some(&1) {
                got.pop();
            }
            while got.len() < want.len() {
                got.push(1);
            }
            let fits = got.len() == want.len()
                && got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| w.is_none_or(|w| w == *g));
            if !fits {
                let shown: Vec<String> = want
                    .iter()
                    .map(|w| w.map_or("*".into(), |v| v.to_string()))
                    .collect();
                return Err(format!(
                    "tensor {name} has shape {:?}, expected [{}]",
                    t.ne,
                    shown.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn finite_f32(g: &GgufFile, key: &str, positive: bool) -> Result<(), String> {
    match g.get(key) {
        None => Ok(()),
        Some(v) => match v.as_f32() {
            Some(x) if x.is_finite() && (!positive || x > 0.0) => Ok(()),
            _ => Err(format!(
                "{key} is {v:?}, not a finite{} number",
                if positive { " positive" } else { "" }
            )),
        },
    }
}

/// The CLIP tower + MLP projector of the LLaVA-1.5 recipe (llava-format.md §2): hyperparameters
/// without a merge size; the tower's shapes; the projector's two layers; no Yi-VL/NeXT tensors.
const CLIP_HPARAMS: &[Hparam] = &[
    Hparam {
        key: "clip.vision.embedding_length",
        name: "E",
        min: 1,
        max: 1 << 16,
    },
    Hparam {
        key: "clip.vision.feed_forward_length",
        name: "F",
        min: 1,
        max: 1 << 18,
    },
    Hparam {
        key: "clip.vision.block_count",
        name: "B",
        min: 1,
        max: 1024,
    },
    Hparam {
        key: "clip.vision.attention.head_count",
        name: "H",
        min: 1,
        max: 1024,
    },
    Hparam {
        key: "clip.vision.patch_size",
        name: "P",
        min: 1,
        max: 256,
    },
    Hparam {
        key: "clip.vision.image_size",
        name: "image_size",
        min: 1,
        max: 1 << 14,
    },
];

const CLIP_MLP_TENSORS: &[TensorRule] = &[
    TensorRule {
        name: "v.class_embd",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.patch_embd.weight",
        shape: &[Hp("P"), Hp("P"), Const(3), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.position_embd.weight",
        shape: &[Hp("E"), Hp("NPOS")],
        required: true,
    },
    TensorRule {
        name: "v.pre_ln.weight",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.pre_ln.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.attn_q.weight",
        shape: &[Hp("E"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.attn_q.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.attn_k.weight",
        shape: &[Hp("E"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.attn_k.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.attn_v.weight",
        shape: &[Hp("E"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.attn_v.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.attn_out.weight",
        shape: &[Hp("E"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.attn_out.bias",
        shape: &[Hp("E")],
        required: false,
    },
    TensorRule {
        name: "v.blk.{b}.ln1.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ln2.weight",
        shape: &[Hp("E")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ffn_up.weight",
        shape: &[Hp("E"), Hp("F")],
        required: true,
    },
    TensorRule {
        name: "v.blk.{b}.ffn_down.weight",
        shape: &[Hp("F"), Hp("E")],
        required: true,
    },
    TensorRule {
        name: "mm.0.weight",
        shape: &[Hp("E"), Hp("T")],
        required: true,
    },
    TensorRule {
        name: "mm.0.bias",
        shape: &[Hp("T")],
        required: true,
    },
    TensorRule {
        name: "mm.2.weight",
        shape: &[Hp("T"), Hp("O")],
        required: true,
    },
    TensorRule {
        name: "mm.2.bias",
        shape: &[Hp("O")],
        required: true,
    },
];

fn clip_mlp(g: &GgufFile) -> Result<(), String> {
    let mut vals = read_hparams(g, CLIP_HPARAMS, "clip")?;
    let (e, h) = (vals.get("E").unwrap_or(0), vals.get("H").unwrap_or(1));
    if e % h != 0 {
        return Err(format!("clip.vision.embedding_length {e} is not a multiple of clip.vision.attention.head_count {h}"));
    }
    let (size, p) = (
        vals.get("image_size").unwrap_or(0),
        vals.get("P").unwrap_or(1),
    );
    if size % p != 0 {
        return Err(format!(
            "clip.vision.image_size {size} is not a multiple of clip.vision.patch_size {p}"
        ));
    }
    let side = size / p;
    let cls = u64::from(g.tensor("v.class_embd").is_some());
    vals.0.push(("NPOS", side * side + cls));
    let width = |name: &str| {
        g.tensor(name)
            .and_then(|t| t.ne.get(1).copied())
            .unwrap_or(0)
    };
    vals.0.push(("T", width("mm.0.weight")));
    vals.0.push(("O", width("mm.2.weight")));
    if let Some(name) = [
        "mm.1.weight",
        "mm.3.weight",
        "mm.4.weight",
        "v.image_newline",
    ]
    .into_iter()
    .find(|n| g.tensor(n).is_some())
    {
        return Err(format!(
            "tensor {name} belongs to another projector (Yi-VL / LLaVA-NeXT), not mlp"
        ));
    }
    if g.get("clip.vision.image_grid_pinpoints").is_some() {
        return Err("clip.vision.image_grid_pinpoints (LLaVA-NeXT anyres) is not supported".into());
    }
    let blocks = vals.get("B").unwrap_or(0);
    if let Some(fl) = g.get("clip.vision.feature_layer") {
        let ok = fl.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter()
                    .all(|x| matches!(x, MetaValue::I32(v) if *v >= 0 && (*v as u64) <= blocks))
        });
        if !ok {
            return Err(format!(
                "clip.vision.feature_layer {fl:?} is not a list of layers 0..={blocks} (INT32)"
            ));
        }
    }
    check_tensors(g, CLIP_MLP_TENSORS, &vals)?;
    finite_f32(g, "clip.vision.attention.layer_norm_epsilon", true)?;
    for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
        let ok = g.get(key).and_then(MetaValue::as_array).is_some_and(|a| a.len() == 3 && a.iter().all(|x| matches!(x, MetaValue::F32(f) if f.is_finite() && (key.ends_with("mean") || *f > 0.0))));
        if !ok {
            return Err(format!(
                "{key} is not 3 finite FLOAT32 numbers{}",
                if key.ends_with("std") { " above 0" } else { "" }
            ));
        }
    }
    Ok(())
}

/// An mmproj mtmd can run: a `qwen3vl_merger` projector with consistent hyperparameters and
/// tensor shapes (the Artemis fc1/fc2 pair optional, but complete when present).
pub fn mmproj(g: &GgufFile) -> Result<(), String> {
    let ptype = g
        .get("clip.projector_type")
        .and_then(MetaValue::as_str)
        .unwrap_or("(none)");
    match ptype {
        "qwen3vl_merger" => {}
        "mlp" => return clip_mlp(g),
        _ => return Err(format!("clip.projector_type {ptype:?}: this runtime runs qwen3vl_merger (Artemis) and mlp (LLaVA-1.5) mmproj files only")),
    }
    let mut vals = read_hparams(g, MMPROJ_HPARAMS, "clip")?;
    let (e, h) = (vals.get("E").unwrap_or(0), vals.get("H").unwrap_or(1));
    if e % h != 0 || (e / h) % 2 != 0 {
        return Err(format!("clip.vision.embedding_length {e} is not an even multiple of clip.vision.attention.head_count {h}"));
    }
    // merger output width and Artemis hidden width: from the tensors themselves
    let width = |name: &str| {
        g.tensor(name)
            .and_then(|t| t.ne.get(1).copied())
            .unwrap_or(0)
    };
    vals.0.push(("O", width("mm.2.weight")));
    let artemis = ["mm.artemis_fc1.weight", "mm.artemis_fc2.weight"].map(|n| g.tensor(n).is_some());
    match artemis {
        [true, true] => vals.0.push(("A", width("mm.artemis_fc1.weight"))),
        [false, false] => {
            if vals.get("O") != vals.get("D") {
                return Err(format!(
                    "mm.2.weight gives {} outputs but clip.vision.projection_dim is {}",
                    vals.get("O").unwrap_or(0),
                    vals.get("D").unwrap_or(0)
                ));
            }
        }
        _ => {
            return Err(
                "the Artemis projector needs both mm.artemis_fc1.weight and mm.artemis_fc2.weight"
                    .into(),
            )
        }
    }
    check_tensors(g, QWEN3VL_TENSORS, &vals)?;
    if let Some(pos) = g.tensor("v.position_embd.weight") {
        let n = pos.ne.get(1).copied().unwrap_or(0);
        let side = (n as f64).sqrt().round() as u64;
        if side * side != n {
            return Err(format!(
                "tensor v.position_embd.weight has {n} positions, not a square grid"
            ));
        }
    }
    finite_f32(g, "clip.vision.attention.layer_norm_epsilon", true)?;
    for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
        if let Some(v) = g.get(key) {
            let ok = v.as_array().is_some_and(|a| {
                a.len() == 3
                    && a.iter().all(|x| {
                        x.as_f32()
                            .is_some_and(|f| f.is_finite() && (key.ends_with("mean") || f > 0.0))
                    })
            });
            if !ok {
                return Err(format!(
                    "{key} is not 3 finite numbers{}",
                    if key.ends_with("std") { " above 0" } else { "" }
                ));
            }
        }
    }
    let (lo, hi) = (
        int(g, "clip.vision.image_min_pixels"),
        int(g, "clip.vision.image_max_pixels"),
    );
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if lo == 0 || lo > hi || hi > 1 << 28 {
            return Err(format!(
                "clip.vision.image_min_pixels {lo} / image_max_pixels {hi} are not a usable budget"
            ));
        }
    }
    Ok(())
}

/// A llama-architecture decoder (what artemis-convert writes) llama.cpp can load without dividing
/// by zero or asserting: consistent heads, widths and tensor shapes.
pub fn decoder(g: &GgufFile) -> Result<(), String> {
    let arch = g.architecture().unwrap_or("(none)");
    if arch != "llama" && arch != "qwen3" {
        // Other architectures go to llama.cpp unchecked (its own loader validates shapes).
        return Ok(());
    }
    let mut vals = read_hparams(g, LLAMA_HPARAMS, arch)?;
    let (e, h, hkv) = (
        vals.get("E").unwrap_or(0),
        vals.get("H").unwrap_or(1),
        vals.get("HKV").unwrap_or(1),
    );
    if h % hkv != 0 {
        return Err(format!(
            "{arch}.attention.head_count {h} is not a multiple of head_count_kv {hkv}"
        ));
    }
    let key_len = int(g, &format!("{arch}.attention.key_length")).unwrap_or(if e % h == 0 {
        e / h
    } else {
        0
    });
    let val_len = int(g, &format!("{arch}.attention.value_length")).unwrap_or(key_len);
    if key_len == 0 || val_len == 0 || key_len > 1 << 12 || val_len > 1 << 12 {
        return Err(format!("head size {key_len}/{val_len} ({arch}.attention.key_length/value_length, or embedding_length / head_count) is not usable"));
    }
    if let Some(rope) = int(g, &format!("{arch}.rope.dimension_count")) {
        if rope == 0 || rope > key_len || rope % 2 != 0 {
            return Err(format!("{arch}.rope.dimension_count {rope} must be even and at most the head size {key_len}"));
        }
    }
    let vocab = g
        .get("tokenizer.ggml.tokens")
        .and_then(MetaValue::as_array)
        .map_or(0, |a| a.len() as u64);
    if vocab == 0 {
        return Err("tokenizer.ggml.tokens is missing or empty".into());
    }
    vals.0.extend([
        ("V", vocab),
        ("QD", h * key_len),
        ("QDV", h * val_len),
        ("KVD", hkv * key_len),
        ("KVDV", hkv * val_len),
    ]);
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        if let Some(id) = g.get(key).map(|v| v.as_u32()) {
            match id {
                Some(id) if (id as u64) < vocab => {}
                _ => {
                    return Err(format!(
                        "{key} is not a token id below the vocabulary size {vocab}"
                    ))
                }
            }
        }
    }
    finite_f32(g, &format!("{arch}.attention.layer_norm_rms_epsilon"), true)?;
    finite_f32(g, &format!("{arch}.rope.freq_base"), true)?;
    vals.0.push(("KL", key_len));
    check_tensors(g, LLAMA_TENSORS, &vals)?;
    if arch == "qwen3" {
        check_tensors(g, QWEN3_EXTRA_TENSORS, &vals)?;
    }
    Ok(())
}
