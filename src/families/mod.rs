//! Model families: which checkpoint is which, and how its parts compose into GGUF files.
//!
//! A [`Family`] is data: how to recognise its `config.json`, where its text config and decoder
//! tensors live, which llama.cpp decoder architecture they become, and (for vision-language
//! families) the function that plans its mmproj. Adding a family is a new file in this directory
//! plus one line in [`FAMILIES`]; the converter, quantizer and runtime need no edits.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::config::{ConfigError, TextConfig};
use crate::decoder::DecoderArch;
use crate::plan::{FilePlan, OutType};
pub use crate::vocab::chat_template::TemplateOwner;

pub mod artemis;
pub mod llava;
pub mod plain;

/// Everything the converter needs to know about one family.
pub struct Family {
    pub name: &'static str,
    /// Does this `config.json` (model_type, architectures) belong to the family?
    pub detect: fn(model_type: &str, architectures: &[&str]) -> bool,
    /// Key of the text config inside config.json (None: the root is the text config).
    pub text_config: Option<&'static str>,
    /// The decoder's llama.cpp architecture, from the text config.
    pub decoder_arch: fn(text_config: &Value) -> Result<&'static DecoderArch, String>,
    /// Where the decoder's tensors live (see [`crate::decoder::plan`]).
    pub decoder_prefixes: &'static [&'static [(&'static str, &'static str)]],
    /// The mmproj planner of a vision-language family.
    pub vision: Option<fn(&VisionInput) -> Result<VisionPlan, crate::convert::ConvertError>>,
    /// Whose chat template the official implementation renders (the two find it differently).
    pub chat_template: TemplateOwner,
}

/// What a vision planner gets.
pub struct VisionInput<'a> {
    pub ckpt: &'a Checkpoint,
    pub config_path: &'a Path,
    pub text: &'a TextConfig,
    pub outtype: OutType,
    pub file_name: String,
    pub name: &'a str,
}

/// An mmproj plan and its bookkeeping.
pub struct VisionPlan {
    pub file: FilePlan,
    /// Checkpoint tensors written.
    pub consumed: BTreeSet<String>,
    /// Checkpoint tensors deliberately not written, and why (for `--dry-run`).
    pub dropped: BTreeSet<String>,
    pub dropped_reason: &'static str,
    /// Where the image preprocessing values came from.
    pub preprocessing_source: String,
}

/// Every family, in detection order. One line per family.
pub const FAMILIES: &[&Family] = &[
    &artemis::ARTEMIS,
    &llava::LLAVA,
    &plain::MISTRAL,
    &plain::QWEN3_DECODER,
];

/// The family of a checkpoint's config.json.
pub fn detect(config: &Value, path: &Path) -> Result<&'static Family, ConfigError> {
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    let archs: Vec<&str> = config
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    FAMILIES
        .iter()
        .copied()
        .find(|f| (f.detect)(model_type, &archs))
        .ok_or_else(|| ConfigError {
            path: path.to_path_buf(),
            message: format!(
            "unsupported model (model_type {model_type:?}, architectures {archs:?}); supported: {}",
            FAMILIES.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ),
        })
}

/// The `model_type` of a text config, for routing its decoder.
pub fn model_type(text: &Value) -> &str {
    text.get("model_type").and_then(Value::as_str).unwrap_or("")
}
