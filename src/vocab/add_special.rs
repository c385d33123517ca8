//! `tokenizer.ggml.add_bos_token` / `add_eos_token`: whether llama.cpp puts BOS before and EOS after
//! a tokenized prompt. Both keys are always written, because a missing key makes llama.cpp fall
//! back to a per-pre-tokenizer default (`add_bos = true` for `tekken`), which is not what the
//! official tokenizer does.
//!
//! # The rule (the official tokenizer, transformers 5.23 + tokenizers 0.23.3)
//!
//! The official processor calls `tokenizer(text)` (`add_special_tokens=True`) on the rendered chat
//! template. With a `tokenizer.json` present, what that call adds around the text is decided by
//! tokenizer.json's `post_processor` **alone**:
//!
//! | post_processor (single sequence)                | adds                 | add_bos | add_eos |
//! |-------------------------------------------------|----------------------|---------|---------|
//! | absent, `null`, `ByteLevel`                     | nothing              | false   | false   |
//! | `TemplateProcessing` `X… $A Y…`                 | ids of `X…` / `Y…`   | X = [bos] | Y = [eos] |
//! | `RobertaProcessing` / `BertProcessing`          | `cls` / `sep`        | cls = bos | sep = eos |
//! | `Sequence[p1, p2, …]`                           | each in turn         | (combined) | (combined) |
//! | any other type                                  | unknown: error, use `--add-bos` / `--add-eos` | | |
//!
//! A prefix that is empty gives `add_bos = false`; exactly the BOS id gives `true`; anything else
//! (another token, several tokens) cannot be expressed by llama.cpp's flag and is an error that
//! names the tokens and offers the override. Likewise for the suffix and EOS.
//!
//! `tokenizer_config.json`'s `add_bos_token` / `add_eos_token` are **ignored**, as transformers 5
//! ignores them: `PreTrainedTokenizerBase._from_pretrained` pops both keys when a tokenizer file
//! exists, so they never reach the tokenizer. The `tokenizer_class` does not matter either.
//!
//! # The experiments behind it
//!
//! `tools/make_tokenizer_matrix.py` (run by `tools/make_fixtures.sh`) and a wider sweep done
//! while writing this: tiny's tokenizer with each post-processor {absent, null, ByteLevel,
//! TemplateProcessing `<s> $A`, `<s> $A </s>`, `$A </s>`, `$A`, Sequence[ByteLevel,
//! TemplateProcessing], Sequence[ByteLevel], RobertaProcessing, BertProcessing} × `add_bos_token`
//! {absent, true, false} × `add_eos_token` {absent, true, false} (99 setups), then
//! `tokenizer_class` {absent, TokenizersBackend, PreTrainedTokenizerFast, LlamaTokenizer,
//! LlamaTokenizerFast, GPT2Tokenizer(Fast), Qwen2Tokenizer, MistralCommonTokenizer, unknown} ×
//! {TemplateProcessing `<s> $A`, ByteLevel, null} × `add_bos_token` {absent, true, false}, with
//! config.json `model_type` artemis_vlm and mistral, each loaded with `AutoTokenizer`. In every
//! one, `tokenizer("Hello world")` added exactly the post-processor's tokens: the config keys and
//! the class changed nothing (a `null` post-processor stays empty even with
//! `add_bos_token: true`). The committed matrix (`fixtures/tokenizers/`, 14 setups + 2 refused)
//! pins the branches with official prompt ids and greedy ids.
//!
//! The chat template is rendered as text first, so a template that emits `{{ bos_token }}` plus a
//! post-processor that adds BOS gives the official prompt two BOS tokens; the flag reproduces that
//! (artemis-chat warns about it) rather than second-guessing the official pipeline.

use std::path::Path;

use serde_json::{Map, Value};

use super::VocabError;

/// `--add-bos` / `--add-eos`: an explicit choice that replaces the rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddSpecialOverride {
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
}

/// The decided flags and, for `--dry-run`, where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSpecial {
    pub add_bos: bool,
    pub add_eos: bool,
    pub bos_source: String,
    pub eos_source: String,
    /// A BOS / EOS id that only the post-processor names (no tokenizer_config.json or config.json
    /// sets one): the single token it adds becomes that special token, as gguf-py does too.
    pub bos_id_from_post_processor: Option<u32>,
    pub eos_id_from_post_processor: Option<u32>,
}

/// Special token ids a post-processor puts around a single sequence.
#[derive(Debug, Default, PartialEq, Eq)]
struct Added {
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    /// How the post-processor was read, for the report.
    described: String,
}

/// Applies the rule to tokenizer.json's post-processor; `tokens` gives token texts for messages.
pub fn decide(
    tokenizer_path: &Path,
    tokenizer: &Map<String, Value>,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    tokens: &[String],
    overrides: AddSpecialOverride,
) -> Result<AddSpecial, VocabError> {
    let added = added_by(tokenizer.get("post_processor"));
    let name = |id: u32| match tokens.get(id as usize) {
        Some(t) => format!("{t} (id {id})"),
        None => format!("id {id}"),
    };
    let names = |ids: &[u32]| ids.iter().map(|&i| name(i)).collect::<Vec<_>>().join(" ");
    let one = |which: &str,
               flag: &str,
               ids_of: fn(&Added) -> &Vec<u32>,
               special: Option<u32>,
               special_name: &str,
               forced: Option<bool>| {
        let from_file = added.as_ref().map_err(|e| e.to_vocab_error(tokenizer_path)).and_then(|a| {
            let ids = ids_of(a);
            let origin = format!("{}: {} adds {}", tokenizer_path.display(), a.described, if ids.is_empty() { format!("nothing {which} the text") } else { format!("{} {which} the text", names(ids)) });
            match (ids.as_slice(), special) {
                ([], _) => Ok((false, origin, None)),
                ([id], Some(s)) if *id == s => Ok((true, origin, None)),
                ([id], None) => Ok((true, format!("{origin}; no {special_name} is set elsewhere, so it becomes the {special_name}"), Some(*id))),
                _ => Err(VocabError::Unsupported {
                    path: tokenizer_path.to_path_buf(),
                    message: format!(
                        "the post-processor adds {} {which} the text, but llama.cpp can only add the {special_name} token ({}); choose with {flag} true|false",
                        names(ids),
                        special.map_or("none is set".to_string(), name),
                    ),
                }),
            }
        });
        match (forced, from_file) {
            (Some(f), Ok((decided, origin, adopted))) if f != decided => Ok((
                f,
                format!("{flag} {f} on the command line (overrides {origin})"),
                adopted.filter(|_| f),
            )),
            (Some(f), Ok((_, _, adopted))) => {
                Ok((f, format!("{flag} {f} on the command line"), adopted))
            }
            (Some(f), Err(_)) => Ok((f, format!("{flag} {f} on the command line"), None)),
            (None, r) => r,
        }
    };
    let (add_bos, bos_source, bos_id_from_post_processor) = one(
        "before",
        "--add-bos",
        |a| &a.prefix,
        bos_id,
        "BOS",
        overrides.add_bos,
    )?;
    let (add_eos, eos_source, eos_id_from_post_processor) = one(
        "after",
        "--add-eos",
        |a| &a.suffix,
        eos_id,
        "EOS",
        overrides.add_eos,
    )?;
    Ok(AddSpecial {
        add_bos,
        add_eos,
        bos_source,
        eos_source,
        bos_id_from_post_processor,
        eos_id_from_post_processor,
    })
}

/// Why a post-processor could not be read; kept apart from [`VocabError`] so that it can be
/// reported for each flag that needs it.
#[derive(Debug, Clone)]
struct PostProcessorError {
    unknown_type: bool,
    message: String,
}

impl PostProcessorError {
    fn to_vocab_error(&self, path: &Path) -> VocabError {
        let (path, message) = (path.to_path_buf(), self.message.clone());
        if self.unknown_type {
            VocabError::Unsupported { path, message }
        } else {
            VocabError::Invalid { path, message }
        }
    }
}

fn added_by(post_processor: Option<&Value>) -> Result<Added, PostProcessorError> {
    let invalid = |message: String| PostProcessorError {
        unknown_type: false,
        message,
    };
    let Some(pp) = post_processor.filter(|v| !v.is_null()) else {
        return Ok(Added {
            described: "no post-processor".into(),
            ..Added::default()
        });
    };
    let typ = pp.get("type").and_then(Value::as_str).unwrap_or("");
    let mut added = Added {
        described: format!("post-processor {typ}"),
        ..Added::default()
    };
    match typ {
        "ByteLevel" => {}
        "TemplateProcessing" => {
            let single = pp.get("single").and_then(Value::as_array).ok_or_else(|| invalid("post_processor.single is not a list".into()))?;
            let specials = pp.get("special_tokens").and_then(Value::as_object);
            let mut seen_sequence = false;
            for piece in single {
                if piece.get("Sequence").is_some() {
                    seen_sequence = true;
                    continue;
                }
                let id = piece.get("SpecialToken").and_then(|s| s.get("id")).and_then(Value::as_str).ok_or_else(|| invalid(format!("post_processor.single has an item that is neither Sequence nor SpecialToken: {piece}")))?;
                let ids = specials
                    .and_then(|s| s.get(id))
                    .and_then(|s| s.get("ids"))
                    .and_then(Value::as_array)
                    .ok_or_else(|| invalid(format!("post_processor.special_tokens has no ids for {id:?}")))?;
                let ids = ids.iter().map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok())).collect::<Option<Vec<u32>>>().ok_or_else(|| invalid(format!("post_processor.special_tokens[{id:?}].ids is not a list of token ids")))?;
                if seen_sequence { &mut added.suffix } else { &mut added.prefix }.extend(ids);
            }
        }
        "RobertaProcessing" | "BertProcessing" => {
            let token_id = |key: &str| {
                pp.get(key).and_then(Value::as_array).and_then(|a| a.get(1)).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| invalid(format!("post_processor.{key} is not a [token, id] pair")))
            };
            added.prefix.push(token_id("cls")?);
            added.suffix.push(token_id("sep")?);
        }
        "Sequence" => {
            let items = pp.get("processors").and_then(Value::as_array).ok_or_else(|| invalid("post_processor.processors is not a list".into()))?;
            let mut kinds = Vec::new();
            for item in items {
                // Each processor wraps the output of the previous one.
                let inner = added_by(Some(item))?;
                added.prefix.splice(0..0, inner.prefix);
                added.suffix.extend(inner.suffix);
                kinds.push(inner.described.trim_start_matches("post-processor ").to_string());
            }
            added.described = format!("post-processor Sequence[{}]", kinds.join(", "));
        }
        other => {
            return Err(PostProcessorError {
                unknown_type: true,
                message: format!("post-processor type {other:?} is unknown, so whether the official tokenizer adds BOS/EOS is not known; choose with --add-bos true|false and --add-eos true|false"),
            })
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(
        pp: Value,
        bos: Option<u32>,
        eos: Option<u32>,
        o: AddSpecialOverride,
    ) -> Result<AddSpecial, VocabError> {
        let tok = json!({ "post_processor": pp });
        let tokens: Vec<String> = ["<unk>", "<s>", "</s>", "<x>"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        decide(
            Path::new("t/tokenizer.json"),
            tok.as_object().unwrap(),
            bos,
            eos,
            &tokens,
            o,
        )
    }

    fn tp(single: Value, specials: Value) -> Value {
        json!({"type": "TemplateProcessing", "single": single, "pair": [], "special_tokens": specials})
    }

    #[test]
    fn sequence_wraps_each_processor_around_the_previous_output() {
        let inner = tp(
            json!([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]),
            json!({"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}),
        );
        let outer = tp(
            json!([{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}]),
            json!({"<x>": {"id": "<x>", "ids": [3], "tokens": ["<x>"]}, "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}),
        );
        let a = added_by(Some(
            &json!({"type": "Sequence", "processors": [inner, outer]}),
        ))
        .unwrap();
        assert_eq!((a.prefix, a.suffix), (vec![3, 1], vec![2]));
    }

    #[test]
    fn a_prefix_of_two_tokens_is_refused_and_names_them() {
        let pp = tp(
            json!([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]),
            json!({"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, "<x>": {"id": "<x>", "ids": [3], "tokens": ["<x>"]}}),
        );
        let e = run(pp.clone(), Some(1), Some(2), AddSpecialOverride::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("<s> (id 1) <x> (id 3) before the text") && e.contains("--add-bos"),
            "{e}"
        );
        let forced = run(
            pp,
            Some(1),
            Some(2),
            AddSpecialOverride {
                add_bos: Some(false),
                add_eos: None,
            },
        )
        .unwrap();
        assert!(!forced.add_bos && forced.bos_source.contains("--add-bos false"));
    }

    #[test]
    fn without_a_bos_elsewhere_the_single_prefix_token_becomes_the_bos() {
        let pp = tp(
            json!([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]),
            json!({"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}),
        );
        let a = run(pp, None, Some(2), AddSpecialOverride::default()).unwrap();
        assert!(
            a.add_bos && a.bos_id_from_post_processor == Some(1),
            "{a:?}"
        );
        assert!(
            a.bos_source.contains("so it becomes the BOS"),
            "{}",
            a.bos_source
        );
        // A prefix of another token when a BOS is set stays an error.
        let other = tp(
            json!([{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]),
            json!({"<x>": {"id": "<x>", "ids": [3], "tokens": ["<x>"]}}),
        );
        let e = run(other, Some(1), Some(2), AddSpecialOverride::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("<x> (id 3) before the text") && e.contains("the BOS token (<s> (id 1))"),
            "{e}"
        );
    }

    #[test]
    fn override_that_contradicts_the_file_says_so() {
        let a = run(
            json!({"type": "RobertaProcessing", "cls": ["<s>", 1], "sep": ["</s>", 2]}),
            Some(1),
            Some(2),
            AddSpecialOverride {
                add_bos: None,
                add_eos: Some(false),
            },
        )
        .unwrap();
        assert!(a.add_bos && !a.add_eos);
        assert!(
            a.eos_source
                .starts_with("--add-eos false on the command line (overrides"),
            "{}",
            a.eos_source
        );
    }

    #[test]
    fn malformed_template_processing_is_an_error_not_a_guess() {
        let pp = tp(
            json!([{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]),
            json!({}),
        );
        let e = run(pp, Some(1), Some(2), AddSpecialOverride::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no ids for \"<s>\""), "{e}");
    }
}
