//! Artemis (Schneewolf A3): Qwen3-VL vision tower + merger + Artemis MLP projector on a Mistral
//! decoder (artemis-format.md). The mmproj mapping lives in [`crate::mmproj`].

use serde_json::Value;

use super::{Family, VisionInput, VisionPlan};
use crate::config::{ConfigError, Preprocessor, VisionConfig};
use crate::convert::ConvertError;
use crate::decoder::{DecoderArch, ARTEMIS_DECODER_PREFIXES, LLAMA};

pub const ARTEMIS: Family = Family {
    name: "Artemis (model_type artemis_vlm)",
    detect: |model_type, _| model_type == "artemis_vlm",
    text_config: Some("text_config"),
    decoder_arch: |_: &Value| -> Result<&'static DecoderArch, String> { Ok(&LLAMA) },
    decoder_prefixes: ARTEMIS_DECODER_PREFIXES,
    vision: Some(plan_mmproj),
    // ArtemisVLMProcessor.apply_chat_template calls the tokenizer's
    chat_template: super::TemplateOwner::Tokenizer,
};

fn plan_mmproj(v: &VisionInput) -> Result<VisionPlan, ConvertError> {
    let vjson = v
        .ckpt
        .config
        .get("vision_config")
        .ok_or_else(|| ConfigError {
            path: v.config_path.to_path_buf(),
            message: "missing vision_config".into(),
        })?;
    let vision = VisionConfig::from_json(vjson, v.config_path)?;
    let pre = Preprocessor::from_dir(&v.ckpt.dir)?;
    let mm = crate::mmproj::plan(
        v.ckpt,
        &vision,
        v.text,
        &pre,
        v.outtype,
        v.file_name.clone(),
        v.name,
    )?;
    Ok(VisionPlan {
        file: mm.file,
        consumed: mm.consumed,
        dropped: mm.dropped,
        dropped_reason: "DeepStack tensors (unused by the model)",
        preprocessing_source: pre.source,
    })
}
