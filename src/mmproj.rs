//! mmproj mapping: the Artemis vision tower, its main merger and the Artemis projector → a
//! `clip` GGUF of projector type `qwen3vl_merger` with the `mm.artemis_fc{1,2}` tensors, in the
//! layout of the Schneewolf-Labs llama.cpp fork (reference §8). DeepStack mergers are dropped.

use std::collections::BTreeSet;

use crate::checkpoint::Checkpoint;
use crate::config::{Preprocessor, TextConfig, VisionConfig};
use crate::decoder::MappingError;
use crate::gguf::{GgmlType, MetaValue};
use crate::plan::{choose_type, ne_of, FileKind, FilePlan, OutType, TensorPlan, Transform};

/// Symbolic dimensions, resolved from the vision and text configs.
#[derive(Debug, Clone, Copy)]
enum Dim {
    /// vision hidden_size
    H,
    /// 3 · hidden (fused qkv)
    H3,
    /// hidden · merge² (the merger's concatenated width)
    HMerged,
    /// vision intermediate_size
    Ffn,
    /// vision out_hidden_size (merger output)
    Out,
    /// text hidden_size (projector width)
    Text,
    NPos,
    Channels,
    Temporal,
    Patch,
}

/// How a tensor's stored type is chosen (reference §8 "Dtype rules").
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Matrix: the requested outtype (1-D → F32).
    Matmul,
    /// Always F32 (position table, norms, biases).
    F32,
    /// Conv3d kernel, split into two temporal slices; F16 for outtype f16, else F32.
    PatchKernel,
}

struct Rule {
    /// Name under the vision prefix (or projector prefix when `projector` is set); `{N}` = block.
    hf: &'static str,
    gguf: &'static str,
    shape: &'static [Dim],
    kind: Kind,
    projector: bool,
}

use Dim::*;

const fn r(hf: &'static str, gguf: &'static str, shape: &'static [Dim], kind: Kind) -> Rule {
    Rule {
        hf,
        gguf,
        shape,
        kind,
        projector: false,
    }
}
const fn p(hf: &'static str, gguf: &'static str, shape: &'static [Dim], kind: Kind) -> Rule {
    Rule {
        hf,
        gguf,
        shape,
        kind,
        projector: true,
    }
}

const HEAD_RULES: &[Rule] = &[
    r(
        "patch_embed.proj.weight",
        "v.patch_embd.weight",
        &[H, Channels, Temporal, Patch, Patch],
        Kind::PatchKernel,
    ),
    r(
        "patch_embed.proj.bias",
        "v.patch_embd.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "pos_embed.weight",
        "v.position_embd.weight",
        &[NPos, H],
        Kind::F32,
    ),
];

const BLOCK_RULES: &[Rule] = &[
    r(
        "blocks.{N}.norm1.weight",
        "v.blk.{N}.ln1.weight",
        &[H],
        Kind::F32,
    ),
    r(
        "blocks.{N}.norm1.bias",
        "v.blk.{N}.ln1.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "blocks.{N}.attn.qkv.weight",
        "v.blk.{N}.attn_qkv.weight",
        &[H3, H],
        Kind::Matmul,
    ),
    r(
        "blocks.{N}.attn.qkv.bias",
        "v.blk.{N}.attn_qkv.bias",
        &[H3],
        Kind::F32,
    ),
    r(
        "blocks.{N}.attn.proj.weight",
        "v.blk.{N}.attn_out.weight",
        &[H, H],
        Kind::Matmul,
    ),
    r(
        "blocks.{N}.attn.proj.bias",
        "v.blk.{N}.attn_out.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "blocks.{N}.norm2.weight",
        "v.blk.{N}.ln2.weight",
        &[H],
        Kind::F32,
    ),
    r(
        "blocks.{N}.norm2.bias",
        "v.blk.{N}.ln2.bias",
        &[H],
        Kind::F32,
    ),
    r(
        "blocks.{N}.mlp.linear_fc1.weight",
        "v.blk.{N}.ffn_up.weight",
        &[Ffn, H],
        Kind::Matmul,
    ),
    r(
        "blocks.{N}.mlp.linear_fc1.bias",
        "v.blk.{N}.ffn_up.bias",
        &[Ffn],
        Kind::F32,
    ),
    r(
        "blocks.{N}.mlp.linear_fc2.weight",
        "v.blk.{N}.ffn_down.weight",
        &[H, Ffn],
        Kind::Matmul,
    ),
    r(
        "blocks.{N}.mlp.linear_fc2.bias",
        "v.blk.{N}.ffn_down.bias",
        &[H],
        Kind::F32,
    ),
];

const TAIL_RULES: &[Rule] = &[
    r("merger.norm.weight", "v.post_ln.weight", &[H], Kind::F32),
    r("merger.norm.bias", "v.post_ln.bias", &[H], Kind::F32),
    r(
        "merger.linear_fc1.weight",
        "mm.0.weight",
        &[HMerged, HMerged],
        Kind::Matmul,
    ),
    r("merger.linear_fc1.bias", "mm.0.bias", &[HMerged], Kind::F32),
    r(
        "merger.linear_fc2.weight",
        "mm.2.weight",
        &[Out, HMerged],
        Kind::Matmul,
    ),
    r("merger.linear_fc2.bias", "mm.2.bias", &[Out], Kind::F32),
    p(
        "fc1.weight",
        "mm.artemis_fc1.weight",
        &[Text, Out],
        Kind::Matmul,
    ),
    p("fc1.bias", "mm.artemis_fc1.bias", &[Text], Kind::F32),
    p(
        "fc2.weight",
        "mm.artemis_fc2.weight",
        &[Text, Text],
        Kind::Matmul,
    ),
    p("fc2.bias", "mm.artemis_fc2.bias", &[Text], Kind::F32),
];

/// Vision and projector prefixes seen in Artemis checkpoints (reference §2.2: the fork also
/// accepts `model.visual.*`).
pub const VISION_PREFIXES: &[(&str, &str)] = &[
    ("visual.", "multi_modal_projector."),
    ("model.visual.", "model.multi_modal_projector."),
];

/// Vision-side tensors that exist in the checkpoint but are never used (reference §10.6).
pub const DROPPED_VISION_SUBTREES: &[&str] = &["deepstack_merger_list."];

pub struct MmprojPlan {
    pub file: FilePlan,
    pub consumed: BTreeSet<String>,
    /// Checkpoint tensors known and deliberately not written (DeepStack).
    pub dropped: BTreeSet<String>,
}

fn resolve(d: Dim, v: &VisionConfig, t: &TextConfig) -> usize {
    match d {
        H => v.hidden_size,
        H3 => 3 * v.hidden_size,
        HMerged => v.hidden_size * v.spatial_merge_size * v.spatial_merge_size,
        Ffn => v.intermediate_size,
        Out => v.out_hidden_size,
        Text => t.hidden_size,
        NPos => v.num_position_embeddings,
        Channels => v.in_channels,
        Temporal => v.temporal_patch_size,
        Patch => v.patch_size,
    }
}

/// Which (vision, projector) prefix pair this checkpoint uses.
pub fn find_prefixes(ckpt: &Checkpoint) -> Option<(&'static str, &'static str)> {
    VISION_PREFIXES
        .iter()
        .copied()
        .find(|(v, _)| ckpt.entry(&format!("{v}patch_embed.proj.weight")).is_some())
}

#[allow(clippy::too_many_arguments)]
pub fn plan(
    ckpt: &Checkpoint,
    vision: &VisionConfig,
    text: &TextConfig,
    pre: &Preprocessor,
    outtype: OutType,
    file_name: String,
    name: &str,
) -> Result<MmprojPlan, MappingError> {
    let (vp, pp) = find_prefixes(ckpt).ok_or_else(|| MappingError::Missing {
        file: ckpt.dir.display().to_string(),
        name: "visual.patch_embed.proj.weight (vision tower)".into(),
    })?;
    let mut tensors = Vec::new();
    let mut consumed = BTreeSet::new();
    let mut add = |rule: &Rule, block: Option<usize>| -> Result<(), MappingError> {
        let sub = |s: &str| block.map_or(s.to_string(), |n| s.replace("{N}", &n.to_string()));
        let src = format!("{}{}", if rule.projector { pp } else { vp }, sub(rule.hf));
        let entry = ckpt.entry(&src).ok_or_else(|| MappingError::Missing {
            file: ckpt.dir.display().to_string(),
            name: src.clone(),
        })?;
        let expected: Vec<usize> = rule
            .shape
            .iter()
            .map(|&d| resolve(d, vision, text))
            .collect();
        if entry.shape != expected {
            return Err(MappingError::Shape {
                file: ckpt.shard_path(entry).display().to_string(),
                name: src,
                found: entry.shape.clone(),
                expected,
            });
        }
        let gguf = sub(rule.gguf);
        match rule.kind {
            Kind::PatchKernel => {
                // [O, C, T, KH, KW] → two [O, C, KH, KW] slices: .weight (t=0) and .weight.1 (t=1).
                let t = if outtype == OutType::F16 {
                    GgmlType::F16
                } else {
                    GgmlType::F32
                };
                let (o, c, kt, kh, kw) = (
                    expected[0],
                    expected[1],
                    expected[2],
                    expected[3],
                    expected[4],
                );
                for slice in 0..kt {
                    let name = if slice == 0 {
                        gguf.clone()
                    } else {
                        format!("{gguf}.{slice}")
                    };
                    tensors.push(TensorPlan {
                        name,
                        source: src.clone(),
                        ne: ne_of(&[o, c, kh, kw]),
                        ggml_type: t,
                        transform: Transform::TemporalSlice { t: slice, kt, kh },
                        fallback_note: None,
                    });
                }
            }
            Kind::F32 | Kind::Matmul => {
                let ne = ne_of(&entry.shape);
                let (ggml_type, fallback_note) = if rule.kind == Kind::F32 {
                    (GgmlType::F32, None)
                } else {
                    choose_type(&ne, outtype)
                };
                tensors.push(TensorPlan {
                    name: gguf,
                    source: src.clone(),
                    ne,
                    ggml_type,
                    transform: Transform::Identity,
                    fallback_note,
                });
            }
        }
        consumed.insert(src);
        Ok(())
    };
    for rule in HEAD_RULES {
        add(rule, None)?;
    }
    for n in 0..vision.depth {
        for rule in BLOCK_RULES {
            add(rule, Some(n))?;
        }
    }
    for rule in TAIL_RULES {
        add(rule, None)?;
    }
    let dropped = ckpt
        .tensor_names()
        .filter(|n| {
            DROPPED_VISION_SUBTREES
                .iter()
                .any(|d| n.starts_with(&format!("{vp}{d}")))
        })
        .map(str::to_string)
        .collect();

    let file_type = match outtype {
        OutType::Q8_0 => 7,
        other => other.file_type(),
    };
    let f32s = |a: [f32; 3]| MetaValue::Array(a.iter().map(|&x| MetaValue::F32(x)).collect());
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetaValue::Str("clip".into()),
        ),
        ("general.type".into(), MetaValue::Str("mmproj".into())),
        ("general.name".into(), MetaValue::Str(name.to_string())),
        ("general.file_type".into(), MetaValue::U32(file_type)),
        ("clip.has_vision_encoder".into(), MetaValue::Bool(true)),
        (
            "clip.projector_type".into(),
            MetaValue::Str("qwen3vl_merger".into()),
        ),
        ("clip.use_gelu".into(), MetaValue::Bool(true)),
        (
            "clip.vision.projection_dim".into(),
            MetaValue::U32(text.hidden_size as u32),
        ),
        (
            "clip.vision.image_size".into(),
            MetaValue::U32((vision.pos_grid_side() * vision.patch_size) as u32),
        ),
        (
            "clip.vision.patch_size".into(),
            MetaValue::U32(vision.patch_size as u32),
        ),
        (
            "clip.vision.embedding_length".into(),
            MetaValue::U32(vision.hidden_size as u32),
        ),
        (
            "clip.vision.feed_forward_length".into(),
            MetaValue::U32(vision.intermediate_size as u32),
        ),
        (
            "clip.vision.block_count".into(),
            MetaValue::U32(vision.depth as u32),
        ),
        (
            "clip.vision.attention.head_count".into(),
            MetaValue::U32(vision.num_heads as u32),
        ),
        (
            "clip.vision.spatial_merge_size".into(),
            MetaValue::U32(vision.spatial_merge_size as u32),
        ),
        ("clip.vision.image_mean".into(), f32s(pre.image_mean)),
        ("clip.vision.image_std".into(), f32s(pre.image_std)),
        // The vision tower's epsilon (1e-6), not the decoder's rms eps the fork writes (§9).
        (
            "clip.vision.attention.layer_norm_epsilon".into(),
            MetaValue::F32(vision.layer_norm_eps as f32),
        ),
        // The official pixel budget (§4); upstream's key names, ignored by the fork.
        (
            "clip.vision.image_min_pixels".into(),
            MetaValue::U32(pre.min_pixels),
        ),
        (
            "clip.vision.image_max_pixels".into(),
            MetaValue::U32(pre.max_pixels),
        ),
        ("general.quantization_version".into(), MetaValue::U32(2)),
    ];
    Ok(MmprojPlan {
        file: FilePlan {
            kind: FileKind::Mmproj,
            file_name,
            metadata,
            tensors,
        },
        consumed,
        dropped,
    })
}
