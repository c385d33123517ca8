//! Which chat template a checkpoint's official implementation renders, found the way transformers
//! 5 finds it. There are two owners, and their rules differ:
//!
//! - **Tokenizer** (`tokenizer.apply_chat_template`; the Artemis processor delegates to it, and
//!   plain decoders use it): `chat_template.jinja` as "default" plus every
//!   `additional_chat_templates/<name>.jinja` (a `default.jinja` there replaces the first); only
//!   when there are no such files, tokenizer_config.json's `chat_template` (a string, or a list of
//!   `{name, template}`). `chat_template.json` is never read.
//!   (`PreTrainedTokenizerBase.from_pretrained`.)
//! - **Processor** (`processor.apply_chat_template`, LLaVA): processor_config.json's
//!   `chat_template` if not null; else the legacy `chat_template.json` (which transformers refuses
//!   to combine with `additional_chat_templates/`); else the additional templates with
//!   `chat_template.jinja` as "default" (this time the `.jinja` file wins). tokenizer_config.json's
//!   template is never used. (`ProcessorMixin.get_processor_dict`.)
//!
//! Either way, of several named templates the one called "default" is rendered; with none so
//! named, transformers refuses to render, and the GGUF gets no template.
//!
//! gguf-py reads tokenizer_config.json first, then chat_template.jinja, then chat_template.json:
//! where a checkpoint has both a config template and a `.jinja` file, that is the other one.
//! Measured case by case against transformers 5.23 in `fixtures/golden/chat_template_sources.json`
//! (`tools/make_template_goldens.py`).

use std::path::Path;

use serde_json::{Map, Value};

use super::{invalid, read_json_object_opt, read_text, universal_newlines, VocabError};

/// Whose `apply_chat_template` the official implementation calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateOwner {
    Tokenizer,
    Processor,
}

/// Named templates; a later insert of the same name replaces an earlier one (only which names
/// exist and the one called "default" matter, not their order).
type Named = std::collections::BTreeMap<String, String>;

/// `additional_chat_templates/*.jinja`, by file stem.
fn additional_templates(dir: &Path) -> Result<Named, VocabError> {
    let sub = dir.join("additional_chat_templates");
    let mut named = Named::new();
    let Ok(entries) = std::fs::read_dir(&sub) else {
        return Ok(named);
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jinja") && p.is_file())
        .collect();
    paths.sort();
    for p in paths {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        named.insert(name, universal_newlines(read_text(&p)?));
    }
    Ok(named)
}

/// A `chat_template` value from a JSON file: a string, a `[{name, template}]` list, or nothing.
fn from_json_value(path: &Path, value: Option<&Value>) -> Result<Option<Named>, VocabError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => Ok(Some(Named::from([("default".into(), t.clone())]))),
        Some(Value::Array(choices)) => {
            let mut named = Named::new();
            for (i, choice) in choices.iter().enumerate() {
                let choice = choice
                    .as_object()
                    .ok_or_else(|| invalid(path, format!("chat_template[{i}] is not an object")))?;
                let name = choice.get("name").and_then(Value::as_str).ok_or_else(|| {
                    invalid(path, format!("chat_template[{i}] has no string \"name\""))
                })?;
                match choice.get("template") {
                    Some(Value::String(t)) => {
                        named.insert(name.to_string(), t.clone());
                    }
                    // transformers keeps it and fails only if asked to render it
                    Some(Value::Null) => {}
                    _ => {
                        return Err(invalid(
                            path,
                            format!("chat_template[{i}].template is not a string"),
                        ))
                    }
                }
            }
            Ok(Some(named))
        }
        // any other type: transformers loads it and cannot render it
        Some(_) => Ok(None),
    }
}

/// The template rendered by default: the one named "default".
fn default_of(mut named: Named) -> Option<String> {
    named.remove("default")
}

/// The tokenizer's template (see the module docs). `tokenizer_config` is tokenizer_config.json,
/// if there is one.
pub fn tokenizer_template(
    dir: &Path,
    tokenizer_config_path: &Path,
    tokenizer_config: Option<&Map<String, Value>>,
) -> Result<Option<String>, VocabError> {
    let mut named = Named::new();
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        named.insert("default".into(), universal_newlines(read_text(&jinja)?));
    }
    // an additional default.jinja replaces chat_template.jinja
    named.extend(additional_templates(dir)?);
    if named.is_empty() {
        let value = tokenizer_config.and_then(|tc| tc.get("chat_template"));
        named = from_json_value(tokenizer_config_path, value)?.unwrap_or_default();
    }
    Ok(default_of(named))
}

/// The processor's template (see the module docs).
pub fn processor_template(dir: &Path) -> Result<Option<String>, VocabError> {
    let processor_config = dir.join("processor_config.json");
    if let Some(pc) = read_json_object_opt(&processor_config)? {
        if let Some(named) = from_json_value(&processor_config, pc.get("chat_template"))? {
            return Ok(default_of(named));
        }
    }
    let additional = additional_templates(dir)?;
    let legacy = dir.join("chat_template.json");
    if let Some(json) = read_json_object_opt(&legacy)? {
        if !additional.is_empty() {
            return Err(invalid(
                &legacy,
                "a legacy chat_template.json together with additional_chat_templates/, which \
                 transformers refuses to load; keep one of them",
            ));
        }
        return Ok(match json.get("chat_template") {
            Some(Value::String(t)) => Some(t.clone()),
            // transformers keeps a list here as it is and then cannot render it
            _ => None,
        });
    }
    let mut named = additional;
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        // here chat_template.jinja replaces an additional default.jinja
        named.insert("default".into(), universal_newlines(read_text(&jinja)?));
    }
    Ok(default_of(named))
}

/// The special tokens transformers passes to the template (`tokenizer.special_tokens_map`), in
/// its attribute order: tokenizer_config.json's `<name>_token` entries (a string or an added-token
/// object), where a key is absent the tokenizer class's default. Class defaults measured on
/// transformers 5.23: `Qwen2Tokenizer` has eos, unk and pad `<|endoftext|>` and no bos;
/// `GPT2Tokenizer` has bos, eos and unk `<|endoftext|>`; `TokenizersBackend` (and the Llama and
/// Mistral classes, which load as it for a byte-level tokenizer.json) has none.
pub fn template_special_tokens(
    tokenizer_config: Option<&Map<String, Value>>,
) -> Vec<(String, String)> {
    let class = tokenizer_config
        .and_then(|tc| tc.get("tokenizer_class"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let class_default = |attr: &str| -> Option<&'static str> {
        match (class.trim_end_matches("Fast"), attr) {
            ("Qwen2Tokenizer", "eos_token" | "unk_token" | "pad_token") => Some("<|endoftext|>"),
            ("GPT2Tokenizer", "bos_token" | "eos_token" | "unk_token") => Some("<|endoftext|>"),
            _ => None,
        }
    };
    let mut out = Vec::new();
    for attr in super::SPECIAL_TOKENS_ATTRIBUTES {
        let text = match tokenizer_config.and_then(|tc| tc.get(attr)) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
            Some(_) => None,
            None => class_default(attr).map(str::to_string),
        };
        if let Some(text) = text {
            out.push((attr.to_string(), text));
        }
    }
    out
}
