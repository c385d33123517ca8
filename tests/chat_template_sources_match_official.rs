//! The converter stores the chat template the official implementation renders, for every layout
//! of template files: `chat_template.jinja`, tokenizer_config.json's `chat_template` (string,
//! null, named list), the legacy `chat_template.json`, processor_config.json's `chat_template`
//! and `additional_chat_templates/`. Artemis renders the tokenizer's template, LLaVA the
//! processor's, and the two are found differently. Goldens:
//! `fixtures/golden/chat_template_sources.json`, from transformers' AutoTokenizer / AutoProcessor
//! (`tools/make_template_goldens.py`).

mod common;

use std::path::Path;

use artemis_gguf::chat::ChatTemplate;
use artemis_gguf::convert::{self, ConvertOptions, OutTypeArg};
use artemis_gguf::gguf::GgufFile;
use artemis_gguf::plan::{FileKind, OutType};
use artemis_gguf::vocab::chat_template::processor_template;
use artemis_gguf::vocab::{AddSpecialOverride, Vocab};
use common::{fixtures, temp_dir};
use serde_json::{json, Value};

const ABSENT: &str = "__absent__";

/// Lays the case's template files out on a copy of `fixture`'s tokenizer and configs.
fn lay_out(case: &Value, fixture: &str, dir: &Path, with_weights: bool) {
    let src = fixtures().join(fixture);
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "processor_config.json",
        "preprocessor_config.json",
        "config.json",
        "generation_config.json",
    ] {
        if src.join(f).exists() {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
    }
    if with_weights {
        std::fs::copy(src.join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    }
    let edit = |file: &str, value: &Value| {
        let path = dir.join(file);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let map = v.as_object_mut().unwrap();
        map.remove("chat_template");
        if value.as_str() != Some(ABSENT) {
            map.insert("chat_template".into(), value.clone());
        }
        std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    };
    edit("tokenizer_config.json", &case["tokenizer_config"]);
    if dir.join("processor_config.json").exists() {
        edit("processor_config.json", &case["processor_config"]);
    }
    if let Some(t) = case["chat_template_jinja"].as_str() {
        std::fs::write(dir.join("chat_template.jinja"), t).unwrap();
    }
    if !case["chat_template_json"].is_null() {
        let body = json!({"chat_template": case["chat_template_json"]});
        std::fs::write(dir.join("chat_template.json"), body.to_string()).unwrap();
    }
    let extra = case["additional"].as_object().unwrap();
    if !extra.is_empty() {
        std::fs::create_dir(dir.join("additional_chat_templates")).unwrap();
        for (name, t) in extra {
            let path = dir.join(format!("additional_chat_templates/{name}.jinja"));
            std::fs::write(path, t.as_str().unwrap()).unwrap();
        }
    }
}

fn cases() -> Vec<Value> {
    let path = fixtures().join("golden/chat_template_sources.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

#[test]
fn each_template_file_layout_gives_the_template_transformers_renders() {
    let cases = cases();
    assert!(cases.len() >= 25, "{} cases", cases.len());
    let root = temp_dir("template-sources");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        let got = match case["owner"].as_str().unwrap() {
            "tokenizer" => {
                lay_out(case, "tiny", &dir, false);
                Vocab::from_checkpoint_dir(&dir, 768, AddSpecialOverride::default())
                    .map(|v| v.chat_template)
                    .map_err(|e| e.to_string())
            }
            _ => {
                lay_out(case, "llava_qwen3", &dir, false);
                processor_template(&dir).map_err(|e| e.to_string())
            }
        };
        // where transformers refuses to load the files, so does the converter, naming them
        if case.get("load_error").is_some() {
            match got {
                Err(e)
                    if e.contains("chat_template.json")
                        && e.contains("additional_chat_templates") => {}
                other => failures.push(format!("{name}: want a load error, got {other:?}")),
            }
            continue;
        }
        let got = got.unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = case["rendered"].as_str();
        if got.as_deref() != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// End to end through the family table: a LLaVA checkpoint with both a `.jinja` file and a legacy
/// `chat_template.json` gets the JSON one (the processor's), an Artemis checkpoint with both a
/// `.jinja` file and a tokenizer_config.json template gets the `.jinja` one (the tokenizer's).
#[test]
fn the_converter_asks_the_family_whose_template_it_renders() {
    let root = temp_dir("template-owner");
    for (fixture, case, want) in [
        (
            "llava_qwen3",
            json!({"tokenizer_config": "CONFIG {{ bos_token }}", "chat_template_jinja": "JINJA",
                   "chat_template_json": "JSON {{ messages[0].role }}", "processor_config": ABSENT,
                   "additional": {}}),
            "JSON {{ messages[0].role }}",
        ),
        (
            "tiny",
            json!({"tokenizer_config": "CONFIG", "chat_template_jinja": "JINJA {{ eos_token }}",
                   "chat_template_json": "JSON", "processor_config": ABSENT, "additional": {}}),
            "JINJA {{ eos_token }}",
        ),
    ] {
        let dir = root.join(fixture);
        std::fs::create_dir(&dir).unwrap();
        lay_out(&case, fixture, &dir, true);
        let out = root.join(format!("{fixture}-out"));
        let opts = ConvertOptions {
            out_dir: out.clone(),
            outtype: OutTypeArg::Fixed(OutType::F32),
            name: Some(fixture.to_string()),
            only: Some(FileKind::Decoder),
            quiet: true,
            ..ConvertOptions::default()
        };
        let report = convert::convert(&dir, &opts).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let gguf = GgufFile::open(&report.written[0]).unwrap();
        let template = gguf
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        assert_eq!(template.as_deref(), Some(want), "{fixture}");
    }
}

/// The template sees the special tokens transformers passes it (`tokenizer.special_tokens_map`):
/// those the official tokenizer has, and no others; a Qwen tokenizer has no BOS, so `bos_token`
/// is undefined there even where llama.cpp is given a BOS id.
#[test]
fn the_template_sees_the_special_tokens_the_official_tokenizer_has() {
    let path = fixtures().join("golden/chat_template_sources.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let maps = doc["special_tokens_map"].as_object().unwrap();
    assert!(maps.len() >= 4);
    let root = temp_dir("template-tokens");
    for (fixture, want) in maps {
        let opts = ConvertOptions {
            out_dir: root.join(fixture),
            outtype: OutTypeArg::Fixed(OutType::F32),
            name: Some(fixture.clone()),
            only: Some(FileKind::Decoder),
            quiet: true,
            ..ConvertOptions::default()
        };
        let report = convert::convert(&fixtures().join(fixture), &opts).unwrap();
        let t = ChatTemplate::from_gguf(&report.written[0]).unwrap();
        let got: serde_json::Map<String, Value> = t
            .special_tokens
            .iter()
            .map(|(n, s)| (n.clone(), json!(s)))
            .collect();
        assert_eq!(&Value::Object(got), want, "{fixture}");
        // and undefined means undefined in the template
        let mut probe = ChatTemplate::new(
            "{% if bos_token is defined %}B{% endif %}[{{ eos_token }}|{{ pad_token }}]",
            "",
            "",
            fixture,
        )
        .unwrap();
        probe.special_tokens = t.special_tokens.clone();
        let b = if want.get("bos_token").is_some() {
            "B"
        } else {
            ""
        };
        let eos = want["eos_token"].as_str().unwrap();
        let pad = want["pad_token"].as_str().unwrap();
        assert_eq!(
            probe.render(&[], false, None).unwrap(),
            format!("{b}[{eos}|{pad}]")
        );
    }
}

/// transformers' special tokens for a tokenizer_config.json: its `<name>_token` entries (strings
/// or AddedToken objects, `null` meaning none), else the tokenizer class's defaults.
#[test]
fn special_tokens_follow_the_tokenizer_config_and_its_class_defaults() {
    let path = fixtures().join("golden/chat_template_sources.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let rows = doc["special_tokens_by_config"].as_array().unwrap();
    assert!(rows.len() >= 7);
    for row in rows {
        let tc = row["tokenizer_config"].as_object().unwrap();
        // (as sets: serde_json's map does not keep the golden's order)
        let mut got = artemis_gguf::vocab::chat_template::template_special_tokens(Some(tc));
        got.sort();
        let mut want: Vec<(String, String)> = row["map"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "{}", tc["tokenizer_class"]);
    }
}
