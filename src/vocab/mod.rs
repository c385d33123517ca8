//! Tokenizer metadata for the decoder GGUF, read from a checkpoint's tokenizer files.
//!
//! This mirrors upstream llama.cpp `convert_hf_to_gguf.py` on the path that a Mistral-Nemo (Tekken)
//! checkpoint takes. `LlamaModel.set_vocab` finds no `tokenizer.model`, and `LlamaHfVocab` refuses
//! the tokenizer because it has no byte fallback, so conversion goes through `_set_vocab_gpt2`. That
//! function takes tokens and types from `get_vocab_base`, then merges, special ids and the
//! chat template from `gguf.SpecialVocab(dir, load_merges=True)` (gguf-py `vocab.py`).
//!
//! Not upstream: `add_bos` / `add_eos`. gguf-py's `SpecialVocab` rules (crude TemplateProcessing
//! parsing that may also replace the EOS, then tokenizer_config.json's `add_*_token`, and no key
//! at all when neither says) disagree with the official tokenizer; [`add_special`] decides them
//! from what transformers 5 actually does, and both keys are always written. The special ids come
//! from tokenizer_config.json and config.json only, as transformers takes them.
//!
//! One deliberate difference: upstream `get_vocab_base_pre` picks `tokenizer.ggml.pre` by hashing
//! the token ids of a probe text. Those ids depend on the trained vocabulary, so any retrained
//! vocabulary fails the hash. Here the pre-tokenizer is recognised from the structure of
//! tokenizer.json instead ([`KNOWN_PRE_TOKENIZERS`]).
//!
//! Where transformers' behaviour enters (`AutoTokenizer` inside `get_vocab_base`), this follows
//! transformers 4.x, the series that upstream's conversion requirements pin (`<5.0.0`). It was
//! checked against 4.57.6 and 5.23.0; they differ only in the corners noted at
//! [`clean_up_tokenization`].
//!
//! Upstream behaviour not carried by [`Vocab`]: the `sep`/`cls`/`mask`/`eot`/`eom` special ids,
//! named alternative chat templates (`tokenizer.chat_template.<name>`), and
//! `tokenizer.ggml.add_space_prefix` (written by newer `LlamaModel.set_vocab` when
//! tokenizer_config.json has `add_prefix_space`; the BPE tokenizer in llama.cpp does not read it).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::gguf::MetaValue;

mod add_special;
pub mod chat_template;
pub use add_special::{AddSpecial, AddSpecialOverride};

/// `tokenizer.ggml.model` for GPT-2 byte-level BPE (`_set_vocab_gpt2`).
const TOKENIZER_MODEL: &str = "gpt2";

// gguf-py `TokenType`.
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
const TOKEN_TYPE_UNUSED: i32 = 5;

/// The split regex of llama.cpp's `tekken` pre-tokenizer (artemis-format.md §7). It is the regex in
/// Mistral-Nemo-Base-2407's tokenizer.json, quoted as the "original regex" for
/// `LLM_TOKENIZER_PRE_TYPE_TEKKEN` in llama-vocab.cpp.
const TEKKEN_SPLIT_REGEX: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A BPE pre-tokenizer that llama.cpp knows by a `tokenizer.ggml.pre` name. It is recognised by the
/// regexes of a tokenizer.json pre-tokenizer of the form
/// `Sequence[Split(Regex, Isolated)…, ByteLevel(add_prefix_space=false, use_regex=false)]`, which
/// is what transformers' `TikTokenConverter` writes.
struct KnownPreTokenizer {
    name: &'static str,
    split_regexes: &'static [&'static str],
}

/// The split regex of Qwen2/Qwen3's tokenizer.json, llama.cpp's `qwen2` pre-tokenizer
/// (llava-format.md §5.3).
const QWEN2_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// To support another pre-tokenizer of that form, add its name and split regexes here.
const KNOWN_PRE_TOKENIZERS: &[KnownPreTokenizer] = &[
    KnownPreTokenizer {
        name: "tekken",
        split_regexes: &[TEKKEN_SPLIT_REGEX],
    },
    KnownPreTokenizer {
        name: "qwen2",
        split_regexes: &[QWEN2_SPLIT_REGEX],
    },
];

/// The text of token `id` in a checkpoint's tokenizer.json (added tokens, then the model
/// vocabulary), for naming an image token; None when the file or the id is missing.
pub fn token_text(dir: &Path, id: u32) -> Option<String> {
    let tok = read_json_object(&dir.join("tokenizer.json")).ok()?;
    if let Some(added) = tok.get("added_tokens").and_then(Value::as_array) {
        if let Some(t) = added
            .iter()
            .find(|t| t.get("id").and_then(Value::as_u64) == Some(id as u64))
        {
            return t.get("content").and_then(Value::as_str).map(str::to_string);
        }
    }
    let vocab = tok.get("model")?.get("vocab")?.as_object()?;
    vocab
        .iter()
        .find(|(_, v)| v.as_u64() == Some(id as u64))
        .map(|(k, _)| k.clone())
}

/// The SpecialVocab token types that [`Vocab`] carries, in gguf-py's order.
const SPECIAL_TYPES: [&str; 4] = ["bos", "eos", "unk", "pad"];

/// Why a checkpoint's tokenizer could not be turned into GGUF metadata. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{path}: model.type is {found}; only \"BPE\" (GPT-2 byte-level BPE) is supported")]
    UnsupportedModel { path: PathBuf, found: String },
    #[error("{path}: unknown pre-tokenizer ({found}); supported: {supported}")]
    UnknownPreTokenizer {
        path: PathBuf,
        found: String,
        supported: String,
    },
    #[error("{path}: {message}")]
    Unsupported { path: PathBuf, message: String },
    #[error(
        "{path}: token {token:?} has id {id}, beyond the model's vocab_size {vocab_size}{note}"
    )]
    VocabTooSmall {
        path: PathBuf,
        token: String,
        id: u32,
        vocab_size: usize,
        note: String,
    },
}

fn invalid(path: &Path, message: impl Into<String>) -> VocabError {
    VocabError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn unsupported(path: &Path, message: impl Into<String>) -> VocabError {
    VocabError::Unsupported {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The tokenizer half of a decoder GGUF: the `tokenizer.*` keys llama.cpp reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub token_types: Vec<i32>,
    pub merges: Vec<String>,
    pub pre: String,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token` / `add_eos_token`, with where each came from.
    pub add_special: AddSpecial,
    pub chat_template: Option<String>,
    /// What the official `apply_chat_template` passes the template as special tokens.
    pub template_tokens: Vec<(String, String)>,
}

impl Vocab {
    /// `vocab_size` = the model's config vocab_size (tokens beyond tokenizer size become "[PAD{id}]" type UNUSED=5).
    /// `overrides` = `--add-bos` / `--add-eos`, which replace the [`add_special`] rule.
    pub fn from_checkpoint_dir(
        dir: &Path,
        vocab_size: usize,
        overrides: AddSpecialOverride,
    ) -> Result<Vocab, VocabError> {
        let tokenizer_path = dir.join("tokenizer.json");
        reject_other_upstream_paths(dir, &tokenizer_path)?;
        let tokenizer = read_json_object(&tokenizer_path)?;

        let model = tokenizer
            .get("model")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(&tokenizer_path, "no \"model\" object"))?;
        check_gpt2_bpe(&tokenizer_path, &tokenizer, model)?;
        let pre = detect_pre_tokenizer(
            &tokenizer_path,
            tokenizer.get("pre_tokenizer").unwrap_or(&Value::Null),
        )?;
        if tokenizer
            .get("normalizer")
            .is_some_and(normalizer_lowercases)
        {
            return Err(unsupported(
                &tokenizer_path,
                "the normalizer lowercases its input; upstream records that as \
                 tokenizer.ggml.normalizer_lowercase, which this converter does not write",
            ));
        }

        let tokenizer_config_path = dir.join("tokenizer_config.json");
        let tokenizer_config = read_json_object_opt(&tokenizer_config_path)?;
        let added = parse_added_tokens(&tokenizer_path, tokenizer.get("added_tokens"))?;

        let round_trip = AddedTokenRoundTrip {
            decoder: TokenDecoder::from_json(tokenizer.get("decoder")),
            clean_up_spaces: tokenizer_config
                .as_ref()
                .is_some_and(|tc| py_truthy(tc.get("clean_up_tokenization_spaces"))),
        };
        let loaded = loaded_added_tokens(&added, tokenizer_config.as_ref());
        let (tokens, token_types) = vocab_base(
            &tokenizer_path,
            model,
            &added,
            &loaded,
            vocab_size,
            &round_trip,
        )?;

        let mut merges = merges_from_tokenizer_json(&tokenizer_path, model)?;
        let merges_txt = dir.join("merges.txt");
        if merges.is_empty() && merges_txt.is_file() {
            merges = read_merges_txt(&merges_txt)?;
        }

        let template_tokens = chat_template::template_special_tokens(tokenizer_config.as_ref());
        let special = special_vocab(dir, &tokenizer_config_path, tokenizer_config, &added)?;

        let add_special = add_special::decide(
            &tokenizer_path,
            &tokenizer,
            special.ids[0],
            special.ids[1],
            &tokens,
            overrides,
        )?;

        Ok(Vocab {
            tokens,
            token_types,
            merges,
            pre,
            bos_id: special.ids[0].or(add_special.bos_id_from_post_processor),
            eos_id: special.ids[1].or(add_special.eos_id_from_post_processor),
            unk_id: special.ids[2],
            pad_id: special.ids[3],
            add_special,
            chat_template: special.chat_template,
            template_tokens,
        })
    }

    /// GGUF key/value pairs in llama.cpp's order: tokenizer.ggml.model ("gpt2"), tokenizer.ggml.pre, tokenizer.ggml.tokens (Array of Str), tokenizer.ggml.token_type (Array of I32), tokenizer.ggml.merges (Array of Str), tokenizer.ggml.bos_token_id (U32), eos_token_id, unknown_token_id, padding_token_id, tokenizer.ggml.add_bos_token (Bool), add_eos_token (both always), tokenizer.chat_template (Str) — the optional ones only when present.
    pub fn metadata(&self) -> Vec<(String, MetaValue)> {
        let mut kv = vec![
            (
                "tokenizer.ggml.model".to_string(),
                MetaValue::Str(TOKENIZER_MODEL.to_string()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                MetaValue::Str(self.pre.clone()),
            ),
            (
                "tokenizer.ggml.tokens".to_string(),
                MetaValue::Array(self.tokens.iter().cloned().map(MetaValue::Str).collect()),
            ),
            (
                "tokenizer.ggml.token_type".to_string(),
                MetaValue::Array(
                    self.token_types
                        .iter()
                        .copied()
                        .map(MetaValue::I32)
                        .collect(),
                ),
            ),
        ];
        // SpecialVocab.add_to_gguf writes merges only when there are some.
        if !self.merges.is_empty() {
            kv.push((
                "tokenizer.ggml.merges".to_string(),
                MetaValue::Array(self.merges.iter().cloned().map(MetaValue::Str).collect()),
            ));
        }
        let ids = [
            ("tokenizer.ggml.bos_token_id", self.bos_id),
            ("tokenizer.ggml.eos_token_id", self.eos_id),
            ("tokenizer.ggml.unknown_token_id", self.unk_id),
            ("tokenizer.ggml.padding_token_id", self.pad_id),
        ];
        kv.extend(
            ids.into_iter()
                .filter_map(|(k, id)| id.map(|id| (k.to_string(), MetaValue::U32(id)))),
        );
        kv.push((
            "tokenizer.ggml.add_bos_token".to_string(),
            MetaValue::Bool(self.add_special.add_bos),
        ));
        kv.push((
            "tokenizer.ggml.add_eos_token".to_string(),
            MetaValue::Bool(self.add_special.add_eos),
        ));
        if let Some(template) = &self.chat_template {
            kv.push((
                "tokenizer.chat_template".to_string(),
                MetaValue::Str(template.clone()),
            ));
        }
        kv.push((
            crate::keys::CHAT_TEMPLATE_SPECIAL_TOKENS.to_string(),
            MetaValue::Array(
                self.template_tokens
                    .iter()
                    .map(|(name, text)| MetaValue::Str(format!("{name}={text}")))
                    .collect(),
            ),
        ));
        kv
    }
}

/// Upstream `LlamaModel.set_vocab` takes other paths, with other outputs, when a `tokenizer.model` is
/// present (`_set_vocab_sentencepiece`) or when only Mistral's `tekken.json` is present
/// (`_set_vocab_mistral`).
fn reject_other_upstream_paths(dir: &Path, tokenizer_path: &Path) -> Result<(), VocabError> {
    let spm = dir.join("tokenizer.model");
    if spm.is_file() {
        return Err(unsupported(
            &spm,
            "a SentencePiece model is present; upstream converts it with _set_vocab_sentencepiece \
             (tokenizer.ggml.model \"llama\"), which this converter does not do",
        ));
    }
    if !tokenizer_path.is_file() && dir.join("tekken.json").is_file() {
        return Err(unsupported(
            tokenizer_path,
            "missing; the directory has only Mistral's tekken.json, which upstream converts with \
             _set_vocab_mistral (mistral-common), not supported here",
        ));
    }
    Ok(())
}

/// `model.type` must be BPE. A BPE with byte fallback and a `Sequence` decoder is a
/// SentencePiece-style tokenizer, which upstream converts with `LlamaHfVocab`, not the GPT-2 path.
fn check_gpt2_bpe(
    path: &Path,
    tokenizer: &Map<String, Value>,
    model: &Map<String, Value>,
) -> Result<(), VocabError> {
    match model.get("type") {
        Some(Value::String(t)) if t == "BPE" => {}
        Some(Value::String(t)) => {
            return Err(VocabError::UnsupportedModel {
                path: path.to_path_buf(),
                found: format!("{t:?}"),
            })
        }
        _ => {
            return Err(VocabError::UnsupportedModel {
                path: path.to_path_buf(),
                found: "missing".to_string(),
            })
        }
    }
    let sequence_decoder = tokenizer
        .get("decoder")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        == Some("Sequence");
    if py_truthy(model.get("byte_fallback")) && sequence_decoder {
        return Err(unsupported(
            path,
            "model.byte_fallback is true with a Sequence decoder (a SentencePiece-style BPE); upstream \
             converts that with LlamaHfVocab (tokenizer.ggml.model \"llama\"), not the GPT-2 BPE path",
        ));
    }
    Ok(())
}

fn detect_pre_tokenizer(path: &Path, pre_tokenizer: &Value) -> Result<String, VocabError> {
    if let Some(regexes) = byte_level_split_regexes(pre_tokenizer) {
        let known = KNOWN_PRE_TOKENIZERS
            .iter()
            .find(|k| k.split_regexes.iter().copied().eq(regexes.iter().copied()));
        if let Some(known) = known {
            return Ok(known.name.to_string());
        }
    }
    Err(VocabError::UnknownPreTokenizer {
        path: path.to_path_buf(),
        found: describe_pre_tokenizer(pre_tokenizer),
        supported: KNOWN_PRE_TOKENIZERS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The Split regexes of a `Sequence[Split(Regex, Isolated)…, ByteLevel(add_prefix_space=false,
/// use_regex=false)]` pre-tokenizer; `None` for any other shape.
fn byte_level_split_regexes(pre: &Value) -> Option<Vec<&str>> {
    if pre.get("type")?.as_str()? != "Sequence" {
        return None;
    }
    let (byte_level, splits) = pre.get("pretokenizers")?.as_array()?.split_last()?;
    let byte_level_ok = byte_level.get("type").and_then(Value::as_str) == Some("ByteLevel")
        && byte_level.get("add_prefix_space").and_then(Value::as_bool) == Some(false)
        && byte_level.get("use_regex").and_then(Value::as_bool) == Some(false);
    if !byte_level_ok || splits.is_empty() {
        return None;
    }
    splits
        .iter()
        .map(|split| {
            let isolated = split.get("type")?.as_str()? == "Split"
                && split.get("behavior")?.as_str()? == "Isolated"
                && split.get("invert").and_then(Value::as_bool) != Some(true);
            if isolated {
                split.get("pattern")?.get("Regex")?.as_str()
            } else {
                None
            }
        })
        .collect()
}

/// What a pre-tokenizer is, in a few words, for the unknown-pre-tokenizer error.
fn describe_pre_tokenizer(pre: &Value) -> String {
    if pre.is_null() {
        return "none".to_string();
    }
    let flag = |key: &str| match pre.get(key).and_then(Value::as_bool) {
        Some(b) => b.to_string(),
        None => "unset".to_string(),
    };
    match pre.get("type").and_then(Value::as_str) {
        Some("Sequence") => match pre.get("pretokenizers").and_then(Value::as_array) {
            Some(items) => items
                .iter()
                .map(describe_pre_tokenizer)
                .collect::<Vec<_>>()
                .join(", "),
            None => "Sequence without pretokenizers".to_string(),
        },
        Some("Split") => {
            let pattern = pre.get("pattern");
            let mut text = match (
                pattern.and_then(|p| p.get("Regex")).and_then(Value::as_str),
                pattern
                    .and_then(|p| p.get("String"))
                    .and_then(Value::as_str),
            ) {
                (Some(regex), _) => format!("Split regex \"{regex}\""),
                (None, Some(string)) => format!("Split string \"{string}\""),
                (None, None) => "Split with no pattern".to_string(),
            };
            match pre.get("behavior").and_then(Value::as_str) {
                Some("Isolated") => {}
                Some(behavior) => text.push_str(&format!(" behavior {behavior}")),
                None => text.push_str(" behavior unset"),
            }
            if pre.get("invert").and_then(Value::as_bool) == Some(true) {
                text.push_str(" inverted");
            }
            text
        }
        Some("ByteLevel") => format!(
            "ByteLevel add_prefix_space={} use_regex={}",
            flag("add_prefix_space"),
            flag("use_regex")
        ),
        Some(other) => format!("type {other}"),
        None => "a pre_tokenizer without a type".to_string(),
    }
}

/// gguf-py `SpecialVocab._parse_normalizer`: does the normalizer lowercase?
fn normalizer_lowercases(normalizer: &Value) -> bool {
    match normalizer.get("type").and_then(Value::as_str) {
        Some("Lowercase") => true,
        Some("BertNormalizer") => normalizer
            .get("lowercase")
            .is_none_or(|v| py_truthy(Some(v))),
        Some("Sequence") => normalizer
            .get("normalizers")
            .and_then(Value::as_array)
            .is_some_and(|ns| ns.iter().any(normalizer_lowercases)),
        _ => false,
    }
}

/// One entry of tokenizer.json `added_tokens`.
struct AddedToken {
    /// The id written in the file. SpecialVocab resolves special tokens to it, but the tokenizer
    /// assigns its own ids when it loads the file ([`load_added_ids`]).
    listed_id: u32,
    content: String,
    special: bool,
    normalized: bool,
}

fn parse_added_tokens(path: &Path, added: Option<&Value>) -> Result<Vec<AddedToken>, VocabError> {
    let items = match added {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(path, "added_tokens is not a list")),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let listed_id = item
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| invalid(path, format!("added_tokens[{i}].id is not a token id")))?;
            let content = item.get("content").and_then(Value::as_str).ok_or_else(|| {
                invalid(path, format!("added_tokens[{i}].content is not a string"))
            })?;
            let special = item
                .get("special")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            // tokenizers' AddedToken default: special tokens are not normalized.
            let normalized = item
                .get("normalized")
                .and_then(Value::as_bool)
                .unwrap_or(!special);
            Ok(AddedToken {
                listed_id,
                content: content.to_string(),
                special,
                normalized,
            })
        })
        .collect()
}

/// An added token as the tokenizer that transformers loads holds it.
struct LoadedToken<'a> {
    content: &'a str,
    special: bool,
    normalized: bool,
}

/// The added tokens of the tokenizer `AutoTokenizer` loads: tokenizer.json's `added_tokens` in
/// order, then the special tokens that tokenizer_config.json names. transformers (4.57 and 5.x,
/// checked) marks a named token that is already added as special, and adds any other named token
/// as a new special, non-normalized one.
fn loaded_added_tokens<'a>(
    added: &'a [AddedToken],
    tokenizer_config: Option<&'a Map<String, Value>>,
) -> Vec<LoadedToken<'a>> {
    let mut loaded: Vec<LoadedToken> = added
        .iter()
        .map(|t| LoadedToken {
            content: &t.content,
            special: t.special,
            normalized: t.normalized,
        })
        .collect();
    for name in tokenizer_config
        .map(named_special_tokens)
        .unwrap_or_default()
    {
        let mut known = false;
        for token in loaded.iter_mut().filter(|t| t.content == name) {
            token.special = true;
            known = true;
        }
        if !known {
            loaded.push(LoadedToken {
                content: name,
                special: true,
                normalized: false,
            });
        }
    }
    loaded
}

/// transformers' `SPECIAL_TOKENS_ATTRIBUTES`, in its order.
const SPECIAL_TOKENS_ATTRIBUTES: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
];

/// The texts of the special tokens tokenizer_config.json names, in transformers' order
/// (`SPECIAL_TOKENS_ATTRIBUTES`, then `additional_special_tokens`, then transformers 5's
/// `extra_special_tokens`). Each is a string or an AddedToken object with a `content`.
fn named_special_tokens(tc: &Map<String, Value>) -> Vec<&str> {
    const NAMED: [&str; 7] = SPECIAL_TOKENS_ATTRIBUTES;
    fn text(value: &Value) -> Option<&str> {
        match value {
            Value::String(s) => Some(s),
            Value::Object(o) => o.get("content").and_then(Value::as_str),
            _ => None,
        }
    }
    let mut names: Vec<&str> = NAMED
        .iter()
        .filter_map(|key| tc.get(*key).and_then(text))
        .collect();
    for key in ["additional_special_tokens", "extra_special_tokens"] {
        match tc.get(key) {
            Some(Value::Array(items)) => names.extend(items.iter().filter_map(text)),
            Some(Value::Object(named)) => names.extend(named.values().filter_map(text)),
            _ => {}
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// The ids the tokenizers library gives added tokens when it loads tokenizer.json; it ignores the
/// listed ids. It adds the tokens one at a time. A token takes its model.vocab id when its text is
/// there, or the id of an earlier added token with the same text. Otherwise it takes the first id
/// above both the model vocabulary (its length) and every added id so far. Empty tokens are skipped
/// (`None`).
fn load_added_ids(
    model_id_of: &HashMap<&str, u32>,
    model_len: u32,
    loaded: &[LoadedToken],
) -> Vec<Option<u32>> {
    let mut added_id_of: HashMap<&str, u32> = HashMap::with_capacity(loaded.len());
    let mut next_free = model_len;
    loaded
        .iter()
        .map(|token| {
            if token.content.is_empty() {
                return None;
            }
            let id = model_id_of
                .get(token.content)
                .or_else(|| added_id_of.get(token.content))
                .copied()
                .unwrap_or(next_free);
            added_id_of.insert(token.content, id);
            next_free = next_free.max(id.saturating_add(1));
            Some(id)
        })
        .collect()
}

/// `get_vocab_base`: one token and type for every id below `vocab_size`.
///
/// The token for an id comes from transformers' `tokenizer.vocab`: the model vocabulary with the
/// added tokens, at the ids the tokenizer loads them with, laid over it by text. An added token can
/// land on an id that model.vocab gives to other text, but only when model.vocab has gaps. There
/// upstream's pick depends on hash order; here the added token wins, as in the tokenizer's own
/// `id_to_token`.
fn vocab_base(
    path: &Path,
    model: &Map<String, Value>,
    added: &[AddedToken],
    loaded: &[LoadedToken],
    vocab_size: usize,
    round_trip: &AddedTokenRoundTrip,
) -> Result<(Vec<String>, Vec<i32>), VocabError> {
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(path, "model.vocab is not an object"))?;
    let mut model_text_at: HashMap<u32, &str> = HashMap::with_capacity(vocab.len());
    let mut model_id_of: HashMap<&str, u32> = HashMap::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| {
                invalid(
                    path,
                    format!("model.vocab[{text:?}] is not a token id: {id}"),
                )
            })?;
        if let Some(other) = model_text_at.insert(id, text) {
            return Err(invalid(
                path,
                format!("model.vocab gives id {id} to both {other:?} and {text:?}"),
            ));
        }
        model_id_of.insert(text, id);
    }
    let model_len = u32::try_from(vocab.len())
        .map_err(|_| invalid(path, "model.vocab has more than 2^32 entries"))?;

    // tokenizer.vocab, and the added token kept for each id (the last one loaded there).
    let mut id_of = model_id_of.clone();
    let mut added_at: HashMap<u32, &LoadedToken> = HashMap::with_capacity(loaded.len());
    for (token, id) in loaded
        .iter()
        .zip(load_added_ids(&model_id_of, model_len, loaded))
    {
        if let Some(id) = id {
            id_of.insert(token.content, id);
            added_at.insert(id, token);
        }
    }
    let added_texts: HashSet<&str> = added_at.values().map(|t| t.content).collect();

    // get_vocab_base asserts that every id fits the model's vocab_size.
    if let Some((&text, &id)) = id_of.iter().max_by_key(|&(_, &id)| id) {
        if id as usize >= vocab_size {
            let note = match added.iter().find(|t| t.content == text) {
                Some(t) if t.listed_id != id => format!(
                    " (added_tokens lists it as id {}, but it is not in model.vocab, so the tokenizer \
                     gives it the next id after the model's tokens)",
                    t.listed_id
                ),
                _ => String::new(),
            };
            return Err(VocabError::VocabTooSmall {
                path: path.to_path_buf(),
                token: text.to_string(),
                id,
                vocab_size,
                note,
            });
        }
    }

    let mut text_at: HashMap<u32, &str> = HashMap::with_capacity(id_of.len());
    for (&text, &id) in &id_of {
        let is_added_here = added_at.get(&id).is_some_and(|t| t.content == text);
        match text_at.entry(id) {
            Entry::Vacant(slot) => {
                slot.insert(text);
            }
            Entry::Occupied(mut slot) => {
                if is_added_here {
                    slot.insert(text);
                }
            }
        }
    }

    let mut tokens = Vec::with_capacity(text_at.len());
    let mut types = Vec::with_capacity(text_at.len());
    for i in 0..vocab_size {
        let id = u32::try_from(i).ok();
        let text = id.and_then(|id| text_at.get(&id).copied());
        let added_token = id.and_then(|id| added_at.get(&id).copied());
        match (text, added_token) {
            (None, _) => {
                tokens.push(format!("[PAD{i}]"));
                types.push(TOKEN_TYPE_UNUSED);
            }
            (Some(text), Some(token)) if added_texts.contains(text) => {
                // "The tokenizer in llama.cpp assumes the CONTROL and USER_DEFINED tokens are
                // pre-normalized", so upstream re-encodes and decodes the non-normalized ones.
                let mut text = if token.normalized {
                    text.to_string()
                } else {
                    round_trip.apply(path, text)?
                };
                if token.special || does_token_look_special(&text) {
                    types.push(TOKEN_TYPE_CONTROL);
                } else {
                    // Upstream pre-normalizes user-defined spaces (added for Gemma).
                    text = text.replace('\u{2581}', " ");
                    types.push(TOKEN_TYPE_USER_DEFINED);
                }
                tokens.push(text);
            }
            (Some(text), _) => {
                tokens.push(text.to_string());
                types.push(TOKEN_TYPE_NORMAL);
            }
        }
    }
    Ok((tokens, types))
}

/// `does_token_look_special` (convert_hf_to_gguf.py): added tokens that some models forget to flag
/// as special.
fn does_token_look_special(text: &str) -> bool {
    matches!(text, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (text.starts_with("<|") && text.ends_with("|>"))
        || (text.starts_with("<\u{ff5c}") && text.ends_with("\u{ff5c}>"))
        || (text.starts_with("<unused") && text.ends_with('>'))
}

/// `tokenizer.decode(tokenizer.encode(text, add_special_tokens=False))`, as `get_vocab_base` applies
/// it to a non-normalized added token. Added tokens are matched before the model runs, so the
/// encode step yields the token's own id. Only the tokenizer.json decoder and transformers'
/// optional space clean-up can change the text.
struct AddedTokenRoundTrip {
    decoder: TokenDecoder,
    clean_up_spaces: bool,
}

/// The tokenizer.json decoders whose effect on a single token can be replayed.
enum TokenDecoder {
    /// No decoder: tokenizers joins the tokens with spaces, which leaves one token as it is.
    Plain,
    ByteLevel,
    Other(String),
}

impl TokenDecoder {
    fn from_json(decoder: Option<&Value>) -> TokenDecoder {
        match decoder {
            None | Some(Value::Null) => TokenDecoder::Plain,
            Some(d) => match d.get("type").and_then(Value::as_str) {
                Some("ByteLevel") => TokenDecoder::ByteLevel,
                Some(other) => TokenDecoder::Other(other.to_string()),
                None => TokenDecoder::Other("without a type".to_string()),
            },
        }
    }
}

impl AddedTokenRoundTrip {
    fn apply(&self, path: &Path, text: &str) -> Result<String, VocabError> {
        let decoded = match &self.decoder {
            TokenDecoder::Plain => text.to_string(),
            TokenDecoder::ByteLevel => byte_level_decode(text),
            TokenDecoder::Other(kind) => {
                let message = format!(
                    "decoder {kind} cannot be replayed on the non-normalized added token {text:?} \
                     (supported decoders: ByteLevel, none)"
                );
                return Err(unsupported(path, message));
            }
        };
        Ok(if self.clean_up_spaces {
            clean_up_tokenization(&decoded)
        } else {
            decoded
        })
    }
}

/// tokenizers' ByteLevel decoder on one token. If every char is one of the 256 byte-level chars,
/// the token becomes those bytes, read as lossy UTF-8. Otherwise the token is kept as it is.
fn byte_level_decode(text: &str) -> String {
    match text
        .chars()
        .map(byte_level_byte)
        .collect::<Option<Vec<u8>>>()
    {
        Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        None => text.to_string(),
    }
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, and the
/// other 68 bytes (0x00–0x20, 0x7F–0xA0, 0xAD), in order, are U+0100–U+0143.
fn byte_level_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => u8::try_from(cp).ok(),
        0x100..=0x120 => u8::try_from(cp - 0x100).ok(),
        0x121..=0x142 => u8::try_from(cp - 0x121 + 0x7F).ok(),
        0x143 => Some(0xAD),
        _ => None,
    }
}

/// transformers `PreTrainedTokenizerBase.clean_up_tokenization`, used when tokenizer_config.json
/// sets `clean_up_tokenization_spaces` (off by default). transformers 4.x applies it to BPE
/// tokenizers as well; 5.x skips it for BPE.
fn clean_up_tokenization(text: &str) -> String {
    const REPLACEMENTS: [(&str, &str); 10] = [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ];
    REPLACEMENTS
        .iter()
        .fold(text.to_string(), |acc, &(from, to)| acc.replace(from, to))
}

/// gguf-py `SpecialVocab._try_load_from_tokenizer_json`, merges part. `model.merges` holds either
/// "a b" strings or, since transformers 4.45, ["a", "b"] pairs. In pairs, a space inside a part
/// becomes U+0120 so that the "a b" form still splits (llama.cpp issue #9692).
fn merges_from_tokenizer_json(
    path: &Path,
    model: &Map<String, Value>,
) -> Result<Vec<String>, VocabError> {
    let Some(merges) = model.get("merges").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let Some(first) = merges.first() else {
        return Ok(Vec::new());
    };
    if first.is_string() {
        return merges
            .iter()
            .enumerate()
            .map(|(i, merge)| {
                merge.as_str().map(str::to_string).ok_or_else(|| {
                    invalid(
                        path,
                        format!("model.merges[{i}] is not a string like model.merges[0]"),
                    )
                })
            })
            .collect();
    }
    let first_is_pair = first
        .as_array()
        .is_some_and(|pair| pair.len() == 2 && pair[0].is_string());
    if !first_is_pair {
        return Err(invalid(
            path,
            "unknown model.merges format: expected \"a b\" strings or [\"a\", \"b\"] pairs",
        ));
    }
    merges
        .iter()
        .enumerate()
        .map(|(i, merge)| match merge.as_array().map(Vec::as_slice) {
            Some([Value::String(a), Value::String(b)]) => Ok(format!(
                "{} {}",
                encode_merge_spaces(a),
                encode_merge_spaces(b)
            )),
            _ => Err(invalid(
                path,
                format!("model.merges[{i}] is not a pair of strings like model.merges[0]"),
            )),
        })
        .collect()
}

fn encode_merge_spaces(part: &str) -> String {
    part.replace(' ', "\u{120}")
}

/// gguf-py `SpecialVocab._try_load_merges_txt`, the fallback when tokenizer.json has no merges.
fn read_merges_txt(path: &Path) -> Result<Vec<String>, VocabError> {
    let text = universal_newlines(read_text(path)?);
    let mut lines = text.split('\n').peekable();
    // A first line starting with '#' is a version header.
    if lines
        .peek()
        .is_some_and(|first| first.trim_matches(is_py_space).starts_with('#'))
    {
        lines.next();
    }
    // Malformed lines (not exactly two parts) are skipped, as upstream does after a warning.
    Ok(lines
        .filter_map(|line| {
            let parts: Vec<&str> = line.split(is_py_space).filter(|p| !p.is_empty()).collect();
            match parts.as_slice() {
                [a, b] => Some(format!("{a} {b}")),
                _ => None,
            }
        })
        .collect())
}

/// Python's `str.isspace`, which `str.split()` and `str.strip()` use: Rust's whitespace plus the
/// information separators U+001C–U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// What gguf-py `SpecialVocab` contributes to [`Vocab`].
struct SpecialTokens {
    /// Indexed like [`SPECIAL_TYPES`].
    ids: [Option<u32>; 4],
    chat_template: Option<String>,
}

/// gguf-py `SpecialVocab._load` without its add flags (see [`add_special`]): tokenizer_config.json's
/// special tokens (a missing bos/eos falls back to cls/sep) and chat template, then
/// `_try_load_from_config_json`: `<type>_token_id` in config.json or its `text_config`, which fills
/// only ids still unset.
fn special_vocab(
    dir: &Path,
    tokenizer_config_path: &Path,
    tokenizer_config: Option<Map<String, Value>>,
    added: &[AddedToken],
) -> Result<SpecialTokens, VocabError> {
    // Upstream tests the config's truthiness: an empty tokenizer_config.json counts as absent.
    let mut tc = tokenizer_config.filter(|tc| !tc.is_empty());
    let mut special = SpecialTokens {
        ids: [None; 4],
        chat_template: None,
    };
    if let Some(tc) = tc.as_mut() {
        for (typ, fallback) in [("bos_token", "cls_token"), ("eos_token", "sep_token")] {
            let present = |k: &str| py_truthy(tc.get(k).filter(|v| !v.is_null()));
            if !present(typ) && present(fallback) {
                let value = tc[fallback].clone();
                tc.insert(typ.to_string(), value);
            }
        }
    }

    special.chat_template =
        chat_template::tokenizer_template(dir, tokenizer_config_path, tc.as_ref())?;
    if let Some(tc) = &tc {
        for (slot, typ) in special.ids.iter_mut().zip(SPECIAL_TYPES) {
            let content = match tc.get(&format!("{typ}_token")) {
                Some(Value::String(content)) => content.as_str(),
                Some(Value::Object(entry)) => match entry.get("content").and_then(Value::as_str) {
                    Some(content) => content,
                    None => continue,
                },
                _ => continue,
            };
            // Resolved through tokenizer.json's added_tokens only, first match, as upstream does.
            if slot.is_none() {
                *slot = added
                    .iter()
                    .find(|t| t.content == content)
                    .map(|t| t.listed_id);
            }
        }
    }

    let model_config_path = dir.join("config.json");
    if let Some(config) = read_json_object_opt(&model_config_path)? {
        let text_config = config.get("text_config").and_then(Value::as_object);
        for (slot, typ) in special.ids.iter_mut().zip(SPECIAL_TYPES) {
            let key = format!("{typ}_token_id");
            let value = config
                .get(&key)
                .filter(|v| !v.is_null())
                .or_else(|| text_config.and_then(|t| t.get(&key)));
            let id = special_token_id(&model_config_path, typ, value)?;
            if slot.is_none() {
                *slot = id;
            }
        }
    }
    Ok(special)
}

/// gguf-py `SpecialVocab._set_special_token` on a config.json value. Only integers count; a JSON
/// bool is a Python int. A list (several eos ids) is ignored, and a negative id is an error.
fn special_token_id(
    path: &Path,
    typ: &str,
    value: Option<&Value>,
) -> Result<Option<u32>, VocabError> {
    let id: i128 = match value {
        Some(Value::Bool(b)) => i128::from(*b),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => i128::from(u),
            (None, Some(i)) => i128::from(i),
            (None, None) => return Ok(None),
        },
        _ => return Ok(None),
    };
    u32::try_from(id)
        .map(Some)
        .map_err(|_| invalid(path, format!("{typ}_token_id {id} is not a valid token id")))
}

/// Python's truthiness of a JSON value; `None` is a missing key.
fn py_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, VocabError> {
    crate::input::read_regular_io(path, crate::input::MAX_JSON_BYTES).map_err(|source| {
        VocabError::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

fn read_text(path: &Path) -> Result<String, VocabError> {
    String::from_utf8(read_bytes(path)?).map_err(|e| invalid(path, format!("not valid UTF-8: {e}")))
}

/// Python reads text files with universal newlines: "\r\n" and "\r" arrive as "\n".
fn universal_newlines(text: String) -> String {
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    }
}

fn read_json_object(path: &Path) -> Result<Map<String, Value>, VocabError> {
    match serde_json::from_slice(&read_bytes(path)?) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid(path, "the top level is not a JSON object")),
        Err(source) => Err(VocabError::Json {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Like [`read_json_object`], for a file that may be absent (upstream checks `is_file()` first).
fn read_json_object_opt(path: &Path) -> Result<Option<Map<String, Value>>, VocabError> {
    if path.is_file() {
        read_json_object(path).map(Some)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_chars_invert_gpt2_bytes_to_unicode() {
        assert_eq!(byte_level_byte('\u{120}'), Some(b' ')); // 'Ġ'
        assert_eq!(byte_level_byte('\u{10a}'), Some(b'\n')); // 'Ċ'
        assert_eq!(byte_level_byte('\u{100}'), Some(0x00));
        assert_eq!(byte_level_byte('\u{121}'), Some(0x7f));
        assert_eq!(byte_level_byte('\u{142}'), Some(0xa0));
        assert_eq!(byte_level_byte('\u{143}'), Some(0xad));
        assert_eq!(byte_level_byte('a'), Some(b'a'));
        assert_eq!(byte_level_byte(' '), None);
        assert_eq!(byte_level_byte('\u{144}'), None);
        assert_eq!(byte_level_decode("\u{e9}"), "\u{fffd}"); // a lone Latin-1 byte is not UTF-8
        assert_eq!(byte_level_decode("a b"), "a b"); // a plain space is no byte-level char
    }

    #[test]
    fn look_special_matches_upstream_list() {
        for text in [
            "<pad>",
            "<|im_end|>",
            "<|>",
            "<\u{ff5c}begin\u{ff5c}>",
            "<unused12>",
            "[@BOS@]",
        ] {
            assert!(does_token_look_special(text), "{text}");
        }
        for text in ["<s>", "<think>", "|>", "<unused", "pad"] {
            assert!(!does_token_look_special(text), "{text}");
        }
    }
}
