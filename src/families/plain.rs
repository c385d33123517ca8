//! Decoder-only checkpoints: `MistralForCausalLM` (llama arch) and `Qwen3ForCausalLM` (qwen3).

use serde_json::Value;

use super::Family;
use crate::decoder::{DecoderArch, LLAMA, QWEN3, STANDALONE_DECODER_PREFIXES};

pub const MISTRAL: Family = Family {
    name: "MistralForCausalLM (decoder only)",
    detect: |model_type, archs| model_type == "mistral" || archs.contains(&"MistralForCausalLM"),
    text_config: None,
    decoder_arch: |_: &Value| -> Result<&'static DecoderArch, String> { Ok(&LLAMA) },
    decoder_prefixes: STANDALONE_DECODER_PREFIXES,
    vision: None,
    chat_template: super::TemplateOwner::Tokenizer,
};

pub const QWEN3_DECODER: Family = Family {
    name: "Qwen3ForCausalLM (decoder only)",
    detect: |model_type, archs| model_type == "qwen3" || archs.contains(&"Qwen3ForCausalLM"),
    text_config: None,
    decoder_arch: |_: &Value| -> Result<&'static DecoderArch, String> { Ok(&QWEN3) },
    decoder_prefixes: STANDALONE_DECODER_PREFIXES,
    vision: None,
    chat_template: super::TemplateOwner::Tokenizer,
};
