//! What a conversion will write: output files, their metadata and, per tensor, where the data
//! comes from and how it is transformed. Built by the decoder and mmproj mappings, executed by
//! `convert`, printed by `--dry-run`.

use crate::gguf::{GgmlType, MetaValue};

/// Output tensor type requested on the command line (after `auto` is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
}

impl OutType {
    pub fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }
    /// `general.file_type` (llama.h `enum llama_ftype`): ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7,
    /// MOSTLY_BF16 32.
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q8_0 => 7,
            OutType::BF16 => 32,
        }
    }
    /// The suffix used in output file names (`<name>-<suffix>.gguf`).
    pub fn suffix(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
            OutType::Q8_0 => "q8_0",
        }
    }
}

/// How output rows (runs of `ne[0]` elements) are gathered from the source tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Row r is source row r.
    Identity,
    /// llama.cpp's Q/K permutation for NORM RoPE (reference §7): within each head of
    /// `head_dim` rows, GGUF row `2j + a` comes from HF row `a·head_dim/2 + j`.
    PermuteQK { head_dim: usize },
    /// One temporal slice `t` of a Conv3d kernel [O, C, T, KH, KW] (reference §8).
    TemporalSlice { t: usize, kt: usize, kh: usize },
    /// All zeros, no source: a bias the checkpoint does not have but the llama.cpp graph adds
    /// (LLaVA projector with `multimodal_projector_bias: false`, llava-format.md §2.4).
    Zero,
}

impl Transform {
    /// Element offset in the source of output row `r`, where rows have `row_len` elements.
    #[inline]
    pub fn source_offset(self, r: usize, row_len: usize) -> usize {
        match self {
            Transform::Identity => r * row_len,
            Transform::PermuteQK { head_dim } => {
                let (h, w) = (r / head_dim, r % head_dim);
                let (j, a) = (w / 2, w % 2);
                (h * head_dim + a * (head_dim / 2) + j) * row_len
            }
            Transform::TemporalSlice { t, kt, kh } => {
                let (oc, y) = (r / kh, r % kh);
                ((oc * kt + t) * kh + y) * row_len
            }
            Transform::Zero => 0,
        }
    }
}

/// One output tensor.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub name: String,
    /// Checkpoint tensor the data comes from.
    pub source: String,
    /// Shape in ggml order (innermost first).
    pub ne: Vec<u64>,
    pub ggml_type: GgmlType,
    pub transform: Transform,
    /// Set when the requested type did not fit this tensor and another was chosen.
    pub fallback_note: Option<String>,
}

impl TensorPlan {
    pub fn row_len(&self) -> usize {
        self.ne.first().copied().unwrap_or(1) as usize
    }
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
    pub fn nbytes(&self) -> u64 {
        self.ggml_type
            .nbytes(self.row_len() as u64, self.n_elements())
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Decoder,
    Mmproj,
}

/// One output GGUF file.
#[derive(Debug, Clone)]
pub struct FilePlan {
    pub kind: FileKind,
    pub file_name: String,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorPlan>,
}

/// Picks the stored type of a tensor the way llama.cpp's converter does: 1-D tensors are F32;
/// Q8_0 needs rows that fill 32-element blocks, else F16 (convert_hf_to_gguf's QuantError
/// fallback).
pub fn choose_type(ne: &[u64], requested: OutType) -> (GgmlType, Option<String>) {
    if ne.len() <= 1 {
        return (GgmlType::F32, None);
    }
    let t = requested.ggml();
    if t.nbytes(ne[0], ne.iter().product()).is_some() {
        (t, None)
    } else {
        (
            GgmlType::F16,
            Some(format!(
                "row length {} is not a multiple of 32: F16 instead of {}",
                ne[0],
                t.name()
            )),
        )
    }
}

/// Torch shape → ggml `ne`.
pub fn ne_of(shape: &[usize]) -> Vec<u64> {
    shape.iter().rev().map(|&d| d as u64).collect()
}
