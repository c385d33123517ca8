//! Decoder mapping: a decoder (standalone, or the `language_model` sub-tree of a multimodal
//! checkpoint) → a llama.cpp decoder GGUF, table-driven. [`DecoderArch`] says which llama.cpp
//! architecture: `llama` for Mistral/Llama (Q/K rows permuted for NORM RoPE, artemis-format.md
//! §7), `qwen3` for Qwen3 (NEOX RoPE: no permutation; per-head q/k RMSNorm; llava-format.md §5).

use std::collections::BTreeSet;

use crate::checkpoint::Checkpoint;
use crate::config::TextConfig;
use crate::gguf::MetaValue;
use crate::plan::{choose_type, ne_of, FileKind, FilePlan, OutType, TensorPlan, Transform};

/// Symbolic dimensions of decoder tensors, resolved from the config.
#[derive(Debug, Clone, Copy)]
pub enum Dim {
    Hidden,
    Ffn,
    Vocab,
    /// num_attention_heads · head_dim
    QDim,
    /// num_key_value_heads · head_dim
    KvDim,
    HeadDim,
}

/// A llama.cpp decoder architecture: its GGUF name and what differs in the tensor map.
#[derive(Debug)]
pub struct DecoderArch {
    /// `general.architecture` and the metadata key prefix.
    pub gguf_arch: &'static str,
    /// Permute Q/K rows for llama.cpp's NORM RoPE (llama); NEOX RoPE (qwen3) needs none.
    pub permute_qk: bool,
    /// Extra per-layer rules (qwen3's q/k norms).
    pub extra_layer_rules: &'static [Rule],
}

pub const LLAMA: DecoderArch = DecoderArch {
    gguf_arch: "llama",
    permute_qk: true,
    extra_layer_rules: &[],
};
pub const QWEN3: DecoderArch = DecoderArch {
    gguf_arch: "qwen3",
    permute_qk: false,
    extra_layer_rules: &[
        Rule {
            hf: "model.layers.{N}.self_attn.q_norm.weight",
            gguf: "blk.{N}.attn_q_norm.weight",
            shape: &[HeadDim],
            rope: Rope::None,
        },
        Rule {
            hf: "model.layers.{N}.self_attn.k_norm.weight",
            gguf: "blk.{N}.attn_k_norm.weight",
            shape: &[HeadDim],
            rope: Rope::None,
        },
    ],
};

/// The architecture of a HF text config's `model_type`.
pub fn arch_for(model_type: &str) -> Option<&'static DecoderArch> {
    match model_type {
        "mistral" | "llama" => Some(&LLAMA),
        "qwen3" => Some(&QWEN3),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Rope {
    None,
    PermuteQ,
    PermuteK,
}

/// One row of the tensor map: HF name (standalone layout) → GGUF name, expected torch shape.
#[derive(Debug)]
pub struct Rule {
    hf: &'static str,
    gguf: &'static str,
    shape: &'static [Dim],
    rope: Rope,
}

use Dim::*;

/// Per-model tensors. `lm_head.weight` is handled separately (it may be tied).
const GLOBAL_RULES: &[Rule] = &[
    Rule {
        hf: "model.embed_tokens.weight",
        gguf: "token_embd.weight",
        shape: &[Vocab, Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "model.norm.weight",
        gguf: "output_norm.weight",
        shape: &[Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "lm_head.weight",
        gguf: "output.weight",
        shape: &[Vocab, Hidden],
        rope: Rope::None,
    },
];

/// Per-layer tensors; `{N}` is the layer index. Order = llama.cpp's converter order.
const LAYER_RULES: &[Rule] = &[
    Rule {
        hf: "model.layers.{N}.input_layernorm.weight",
        gguf: "blk.{N}.attn_norm.weight",
        shape: &[Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "model.layers.{N}.self_attn.q_proj.weight",
        gguf: "blk.{N}.attn_q.weight",
        shape: &[QDim, Hidden],
        rope: Rope::PermuteQ,
    },
    Rule {
        hf: "model.layers.{N}.self_attn.k_proj.weight",
        gguf: "blk.{N}.attn_k.weight",
        shape: &[KvDim, Hidden],
        rope: Rope::PermuteK,
    },
    Rule {
        hf: "model.layers.{N}.self_attn.v_proj.weight",
        gguf: "blk.{N}.attn_v.weight",
        shape: &[KvDim, Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "model.layers.{N}.self_attn.o_proj.weight",
        gguf: "blk.{N}.attn_output.weight",
        shape: &[Hidden, QDim],
        rope: Rope::None,
    },
    Rule {
        hf: "model.layers.{N}.post_attention_layernorm.weight",
        gguf: "blk.{N}.ffn_norm.weight",
        shape: &[Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "model.layers.{N}.mlp.gate_proj.weight",
        gguf: "blk.{N}.ffn_gate.weight",
        shape: &[Ffn, Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "model.layers.{N}.mlp.up_proj.weight",
        gguf: "blk.{N}.ffn_up.weight",
        shape: &[Ffn, Hidden],
        rope: Rope::None,
    },
    Rule {
        hf: "model.layers.{N}.mlp.down_proj.weight",
        gguf: "blk.{N}.ffn_down.weight",
        shape: &[Hidden, Ffn],
        rope: Rope::None,
    },
];

/// Where the decoder lives inside a checkpoint: prefix in the file → prefix in the standalone
/// layout (reference §2.2/§2.3). The first prefix under which `model.embed_tokens.weight` exists wins.
pub const ARTEMIS_DECODER_PREFIXES: &[&[(&str, &str)]] = &[
    &[
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("lm_head.", "lm_head."),
    ],
    &[
        ("model.language_model.", "model."),
        ("lm_head.", "lm_head."),
    ],
];
pub const STANDALONE_DECODER_PREFIXES: &[&[(&str, &str)]] =
    &[&[("model.", "model."), ("lm_head.", "lm_head.")]];
/// LLaVA's decoder: transformers 5 writes `language_model.model.*`, older files
/// `model.language_model.*` or `language_model.*`; the head is `lm_head.*` or
/// `language_model.lm_head.*` (llava-format.md §1.3).
pub const LLAVA_DECODER_PREFIXES: &[&[(&str, &str)]] = &[
    &[
        ("language_model.model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("lm_head.", "lm_head."),
    ],
    &[
        ("model.language_model.", "model."),
        ("lm_head.", "lm_head."),
        ("language_model.lm_head.", "lm_head."),
    ],
    &[
        ("language_model.", "model."),
        ("language_model.lm_head.", "lm_head."),
        ("lm_head.", "lm_head."),
    ],
];

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{file}: missing tensor {name} (expected by the config)")]
    Missing { file: String, name: String },
    #[error("{file}: tensor {name} has shape {found:?}, but the config implies {expected:?}")]
    Shape {
        file: String,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

/// Decoder plan plus the checkpoint tensors it consumed.
pub struct DecoderPlan {
    pub file: FilePlan,
    pub consumed: BTreeSet<String>,
}

fn resolve(dim: Dim, c: &TextConfig) -> usize {
    match dim {
        Hidden => c.hidden_size,
        Ffn => c.intermediate_size,
        Vocab => c.vocab_size,
        QDim => c.num_attention_heads * c.head_dim,
        KvDim => c.num_key_value_heads * c.head_dim,
        HeadDim => c.head_dim,
    }
}

/// Finds the checkpoint name of a standalone-layout name under the given prefix table.
fn source_name(ckpt: &Checkpoint, prefixes: &[(&str, &str)], standalone: &str) -> Option<String> {
    prefixes.iter().find_map(|(file_prefix, std_prefix)| {
        let rest = standalone.strip_prefix(std_prefix)?;
        let name = format!("{file_prefix}{rest}");
        ckpt.entry(&name).is_some().then_some(name)
    })
}

#[allow(clippy::too_many_arguments)]
pub fn plan(
    ckpt: &Checkpoint,
    cfg: &TextConfig,
    arch: &DecoderArch,
    prefix_tables: &[&[(&str, &str)]],
    outtype: OutType,
    file_name: String,
    name: &str,
    vocab_meta: Vec<(String, MetaValue)>,
) -> Result<DecoderPlan, MappingError> {
    let prefixes = prefix_tables
        .iter()
        .copied()
        .find(|p| source_name(ckpt, p, "model.embed_tokens.weight").is_some())
        .ok_or_else(|| MappingError::Missing {
            file: ckpt.dir.display().to_string(),
            name: "model.embed_tokens.weight (decoder token embeddings)".into(),
        })?;

    let mut tensors = Vec::new();
    let mut consumed = BTreeSet::new();
    let mut add = |rule: &Rule, layer: Option<usize>| -> Result<(), MappingError> {
        let sub = |s: &str| layer.map_or(s.to_string(), |n| s.replace("{N}", &n.to_string()));
        let standalone = sub(rule.hf);
        if standalone == "lm_head.weight"
            && source_name(ckpt, prefixes, &standalone).is_none()
            && cfg.tie_word_embeddings
        {
            return Ok(()); // tied: llama.cpp falls back to token_embd for the output
        }
        let src =
            source_name(ckpt, prefixes, &standalone).ok_or_else(|| MappingError::Missing {
                file: ckpt.dir.display().to_string(),
                name: format!(
                    "{}{}",
                    prefixes[0].0,
                    standalone
                        .strip_prefix(prefixes[0].1)
                        .unwrap_or(&standalone)
                ),
            })?;
        let entry = ckpt.entry(&src).expect("source_name checked existence");
        let expected: Vec<usize> = rule.shape.iter().map(|&d| resolve(d, cfg)).collect();
        if entry.shape != expected {
            return Err(MappingError::Shape {
                file: ckpt.shard_path(entry).display().to_string(),
                name: src,
                found: entry.shape.clone(),
                expected,
            });
        }
        let ne = ne_of(&entry.shape);
        let (ggml_type, fallback_note) = choose_type(&ne, outtype);
        let transform = match rule.rope {
            Rope::PermuteQ | Rope::PermuteK if arch.permute_qk => Transform::PermuteQK {
                head_dim: cfg.head_dim,
            },
            _ => Transform::Identity,
        };
        // norms are F32 whatever the outtype (1-D)
        tensors.push(TensorPlan {
            name: sub(rule.gguf),
            source: src.clone(),
            ne,
            ggml_type,
            transform,
            fallback_note,
        });
        consumed.insert(src);
        Ok(())
    };
    // llama.cpp's converter writes token_embd, the layers, then output_norm and output.
    add(&GLOBAL_RULES[0], None)?;
    for n in 0..cfg.num_hidden_layers {
        for rule in LAYER_RULES.iter().chain(arch.extra_layer_rules) {
            add(rule, Some(n))?;
        }
    }
    add(&GLOBAL_RULES[1], None)?;
    add(&GLOBAL_RULES[2], None)?;

    let mut metadata = vec![
        (
            "general.architecture".to_string(),
            MetaValue::Str(arch.gguf_arch.into()),
        ),
        ("general.type".into(), MetaValue::Str("model".into())),
        ("general.name".into(), MetaValue::Str(name.to_string())),
        (
            format!("{}.block_count", arch.gguf_arch),
            MetaValue::U32(cfg.num_hidden_layers as u32),
        ),
        (
            format!("{}.context_length", arch.gguf_arch),
            MetaValue::U32(cfg.max_position_embeddings as u32),
        ),
        (
            format!("{}.embedding_length", arch.gguf_arch),
            MetaValue::U32(cfg.hidden_size as u32),
        ),
        (
            format!("{}.feed_forward_length", arch.gguf_arch),
            MetaValue::U32(cfg.intermediate_size as u32),
        ),
        (
            format!("{}.attention.head_count", arch.gguf_arch),
            MetaValue::U32(cfg.num_attention_heads as u32),
        ),
        (
            format!("{}.attention.head_count_kv", arch.gguf_arch),
            MetaValue::U32(cfg.num_key_value_heads as u32),
        ),
        (
            format!("{}.rope.freq_base", arch.gguf_arch),
            MetaValue::F32(cfg.rope_theta as f32),
        ),
        (
            format!("{}.attention.layer_norm_rms_epsilon", arch.gguf_arch),
            MetaValue::F32(cfg.rms_norm_eps as f32),
        ),
        // Required whenever head_dim ≠ hidden/heads (Mistral-Nemo: 128 ≠ 160), reference §7.
        (
            format!("{}.attention.key_length", arch.gguf_arch),
            MetaValue::U32(cfg.head_dim as u32),
        ),
        (
            format!("{}.attention.value_length", arch.gguf_arch),
            MetaValue::U32(cfg.head_dim as u32),
        ),
        (
            "general.file_type".into(),
            MetaValue::U32(outtype.file_type()),
        ),
        (
            format!("{}.vocab_size", arch.gguf_arch),
            MetaValue::U32(cfg.vocab_size as u32),
        ),
        (
            format!("{}.rope.dimension_count", arch.gguf_arch),
            MetaValue::U32(cfg.head_dim as u32),
        ),
        ("general.quantization_version".into(), MetaValue::U32(2)),
    ];
    metadata.extend(vocab_meta);
    Ok(DecoderPlan {
        file: FilePlan {
            kind: FileKind::Decoder,
            file_name,
            metadata,
            tensors,
        },
        consumed,
    })
}
