//! The decoder GGUF's tokenizer keys, read from hand-written tokenizer files shaped like a
//! Mistral-Nemo (Tekken) checkpoint's, against what upstream convert_hf_to_gguf.py would write.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use artemis_gguf::gguf::MetaValue;
use artemis_gguf::vocab::{AddSpecialOverride, Vocab};
use serde_json::{json, Value};

/// llama.cpp's tekken pre-tokenizer regex (artemis-format.md §7).
const TEKKEN_REGEX: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

// gguf-py TokenType.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "artemis-gguf-vocab-{}-{}-{}",
            std::process::id(),
            name,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, contents: &str) {
        fs::write(self.0.join(name), contents).unwrap();
    }

    fn write_json(&self, name: &str, value: &Value) {
        self.write(name, &serde_json::to_string_pretty(value).unwrap());
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tekken_pre_tokenizer(regex: &str) -> Value {
    json!({
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]
    })
}

fn added(id: u32, content: &str, special: bool, normalized: bool) -> Value {
    json!({
        "id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
        "normalized": normalized, "special": special
    })
}

/// A Tekken-shaped tokenizer.json: the added tokens are also in model.vocab (as in Mistral-Nemo's),
/// with a hole at id 4, byte-level model tokens, pair-form merges and a `<s> $A` post-processor.
/// The tokenizers library loads every added token at its listed id.
fn tokenizer_json(pre_tokenizer: Value) -> Value {
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            added(0, "<unk>", true, false),
            added(1, "<s>", true, false),
            added(2, "</s>", true, false),
            added(3, "<think>", true, false),
            // Not flagged special, but looks special to llama.cpp.
            added(12, "<|im_end|>", false, false),
            // Not normalized: upstream encodes and decodes it, and the ByteLevel decoder turns 'Ġ' into ' '.
            added(13, "\u{120}hi", false, false),
            // Normalized user-defined token: '▁' is pre-normalized to a space.
            added(14, "my\u{2581}word", false, true)
        ],
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": "<s>", "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}}
            ],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": true,
            "vocab": {
                "<unk>": 0, "<s>": 1, "</s>": 2, "<think>": 3,
                "a": 5, "b": 6, "ab": 7, "\u{120}": 8, "\u{120}a": 9, "h": 10, "i": 11,
                "<|im_end|>": 12, "\u{120}hi": 13, "my\u{2581}word": 14,
                "hi": 15, "x y": 16, "z": 17, "x yz": 18
            },
            "merges": [["a", "b"], ["\u{120}", "a"], ["h", "i"], ["x y", "z"]]
        }
    })
}

fn tekken_checkpoint(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    dir.write_json(
        "tokenizer.json",
        &tokenizer_json(tekken_pre_tokenizer(TEKKEN_REGEX)),
    );
    dir.write_json(
        "tokenizer_config.json",
        &json!({
            "add_eos_token": false,
            "bos_token": "<s>",
            "eos_token": {"content": "</s>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false},
            "unk_token": "<unk>",
            "pad_token": "<|im_end|>",
            "clean_up_tokenization_spaces": false,
            "tokenizer_class": "PreTrainedTokenizerFast"
        }),
    );
    // Written with Windows line ends: Python reads text files with universal newlines.
    dir.write(
        "chat_template.jinja",
        "{% for m in messages %}<|im_start|>{{ m.role }}\r\n{{ m.content }}<|im_end|>\r\n{% endfor %}",
    );
    dir
}

#[test]
fn reads_a_tekken_tokenizer_like_upstream() {
    let dir = tekken_checkpoint("tekken");
    let vocab = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default()).unwrap();

    let expected: [(&str, i32); 20] = [
        ("<unk>", CONTROL),
        ("<s>", CONTROL),
        ("</s>", CONTROL),
        ("<think>", CONTROL),
        ("[PAD4]", UNUSED),
        ("a", NORMAL),
        ("b", NORMAL),
        ("ab", NORMAL),
        ("\u{120}", NORMAL),
        ("\u{120}a", NORMAL),
        ("h", NORMAL),
        ("i", NORMAL),
        ("<|im_end|>", CONTROL),
        (" hi", USER_DEFINED),
        ("my word", USER_DEFINED),
        ("hi", NORMAL),
        ("x y", NORMAL),
        ("z", NORMAL),
        ("x yz", NORMAL),
        ("[PAD19]", UNUSED),
    ];
    let tokens: Vec<&str> = expected.iter().map(|(t, _)| *t).collect();
    let types: Vec<i32> = expected.iter().map(|(_, t)| *t).collect();
    assert_eq!(vocab.tokens, tokens);
    assert_eq!(vocab.token_types, types);

    // Pair-form merges become "a b"; a space inside a part is written as U+0120.
    assert_eq!(vocab.merges, ["a b", "\u{120} a", "h i", "x\u{120}y z"]);
    assert_eq!(vocab.pre, "tekken");

    assert_eq!(vocab.bos_id, Some(1));
    assert_eq!(vocab.eos_id, Some(2));
    assert_eq!(vocab.unk_id, Some(0));
    assert_eq!(vocab.pad_id, Some(12));
    // add_bos from the `<s> $A` post-processor, which adds nothing after the text.
    assert!(vocab.add_special.add_bos);
    assert!(!vocab.add_special.add_eos);
    assert_eq!(
        vocab.chat_template.as_deref(),
        Some("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    );
}

#[test]
fn metadata_uses_llama_cpp_keys_in_order() {
    let dir = tekken_checkpoint("metadata");
    let vocab = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default()).unwrap();
    let meta = vocab.metadata();
    let keys: Vec<&str> = meta.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tokenizer.ggml.model",
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id",
            "tokenizer.ggml.padding_token_id",
            "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_eos_token",
            "tokenizer.chat_template",
            // ours, after llama.cpp's: the special tokens transformers gives the template
            "artemis.chat_template.special_tokens",
        ]
    );
    let value = |key: &str| &meta.iter().find(|(k, _)| k == key).unwrap().1;
    assert_eq!(
        value("tokenizer.ggml.model"),
        &MetaValue::Str("gpt2".into())
    );
    assert_eq!(
        value("tokenizer.ggml.pre"),
        &MetaValue::Str("tekken".into())
    );
    assert_eq!(value("tokenizer.ggml.bos_token_id"), &MetaValue::U32(1));
    assert_eq!(
        value("tokenizer.ggml.add_bos_token"),
        &MetaValue::Bool(true)
    );
    let MetaValue::Array(types) = value("tokenizer.ggml.token_type") else {
        panic!("token_type is not an array");
    };
    assert_eq!(types[..5], [3, 3, 3, 3, 5].map(MetaValue::I32));
    let MetaValue::Array(tokens) = value("tokenizer.ggml.tokens") else {
        panic!("tokens is not an array");
    };
    assert_eq!(tokens[1], MetaValue::Str("<s>".into()));
}

#[test]
fn chat_template_jinja_beats_the_config_template_and_the_config_add_flags_are_ignored() {
    let dir = tekken_checkpoint("precedence");
    dir.write_json(
        "tokenizer_config.json",
        &json!({
            "add_bos_token": false,
            "bos_token": "<s>",
            "eos_token": "</s>",
            // A plain model token: transformers makes it a special added token, but SpecialVocab
            // looks special tokens up in tokenizer.json's added_tokens only, so no pad id.
            "pad_token": "hi",
            "chat_template": [
                {"name": "tool_use", "template": "TOOLS"},
                {"name": "default", "template": "DEFAULT"}
            ]
        }),
    );
    let vocab = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default()).unwrap();
    // transformers 5's tokenizer reads chat_template.jinja first and the config's template only
    // without one (gguf-py has it the other way round); see chat_template_sources_match_official.
    // (read as Python reads text: universal newlines)
    let jinja = std::fs::read_to_string(dir.path().join("chat_template.jinja"))
        .unwrap()
        .replace("\r\n", "\n");
    assert_eq!(vocab.chat_template.as_deref(), Some(jinja.as_str()));
    std::fs::remove_file(dir.path().join("chat_template.jinja")).unwrap();
    let vocab = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default()).unwrap();
    // then the config's list gives its "default" entry
    assert_eq!(vocab.chat_template.as_deref(), Some("DEFAULT"));
    // add_bos_token false in tokenizer_config.json does not beat the post-processor: transformers
    // 5 drops the key when tokenizer.json exists, and the official tokenizer adds <s>. Both keys
    // are still written.
    assert!(vocab.add_special.add_bos, "{:?}", vocab.add_special);
    assert!(!vocab.add_special.add_eos);
    let meta = vocab.metadata();
    assert!(meta
        .iter()
        .any(|(k, v)| k == "tokenizer.ggml.add_eos_token" && *v == MetaValue::Bool(false)));
    assert_eq!(
        (vocab.tokens[15].as_str(), vocab.token_types[15]),
        ("hi", CONTROL)
    );
    assert_eq!(vocab.pad_id, None);
}

#[test]
fn ignores_chat_template_json_and_falls_back_to_config_json_ids() {
    let dir = TempDir::new("fallbacks");
    let mut tokenizer = tokenizer_json(tekken_pre_tokenizer(TEKKEN_REGEX));
    tokenizer["model"]["merges"] = json!(["a b", "\u{120} a"]);
    dir.write_json("tokenizer.json", &tokenizer);
    dir.write_json("tokenizer_config.json", &json!({"bos_token": "<s>"}));
    dir.write_json("chat_template.json", &json!({"chat_template": "FROM JSON"}));
    dir.write_json(
        "config.json",
        &json!({"architectures": ["MistralForCausalLM"], "text_config": {"eos_token_id": 2, "bos_token_id": 7}}),
    );
    let vocab = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default()).unwrap();
    assert_eq!(vocab.merges, ["a b", "\u{120} a"]);
    // chat_template.json is the (legacy) processor's file: the tokenizer never reads it
    assert_eq!(vocab.chat_template, None);
    // tokenizer_config.json's bos wins; config.json only fills what is still unset.
    assert_eq!(vocab.bos_id, Some(1));
    assert_eq!(vocab.eos_id, Some(2));
    assert_eq!(vocab.unk_id, None);
}

#[test]
fn unknown_pre_tokenizer_regex_is_an_error_naming_it() {
    let dir = TempDir::new("unknown-pre");
    let regex = r"\p{L}+|\p{N}{1,3}";
    dir.write_json(
        "tokenizer.json",
        &tokenizer_json(tekken_pre_tokenizer(regex)),
    );
    let err = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    assert!(err.contains("unknown pre-tokenizer"), "{err}");
    assert!(err.contains(&format!("Split regex \"{regex}\"")), "{err}");
    assert!(err.contains("supported: tekken"), "{err}");
}

#[test]
fn non_bpe_model_is_an_error_naming_its_type() {
    let dir = TempDir::new("wordpiece");
    let mut tokenizer = tokenizer_json(tekken_pre_tokenizer(TEKKEN_REGEX));
    tokenizer["model"]["type"] = json!("WordPiece");
    dir.write_json("tokenizer.json", &tokenizer);
    let err = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    assert!(err.contains("\"WordPiece\""), "{err}");
}

#[test]
fn garbled_or_missing_tokenizer_json_names_the_file() {
    let dir = TempDir::new("garbled");
    dir.write("tokenizer.json", "{\n  \"model\": {\"type\": \"BPE\",\n");
    let err = Vocab::from_checkpoint_dir(dir.path(), 20, AddSpecialOverride::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    assert!(err.contains("line 3"), "{err}");

    let empty = TempDir::new("missing");
    let err = Vocab::from_checkpoint_dir(empty.path(), 20, AddSpecialOverride::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn added_tokens_missing_from_model_vocab_get_the_ids_the_tokenizer_gives_them() {
    let dir = TempDir::new("appended");
    let mut tokenizer = tokenizer_json(tekken_pre_tokenizer(TEKKEN_REGEX));
    // Fill the hole, so that model.vocab holds ids 0..=18.
    tokenizer["model"]["vocab"]["c"] = json!(4);
    // Listed as id 30, but absent from model.vocab: the tokenizers library ignores the listed id
    // and gives the token the first id above the 19 model tokens and every added id so far.
    tokenizer["added_tokens"]
        .as_array_mut()
        .unwrap()
        .push(added(30, "<extra>", true, false));
    dir.write_json("tokenizer.json", &tokenizer);
    let vocab = Vocab::from_checkpoint_dir(dir.path(), 32, AddSpecialOverride::default()).unwrap();
    assert_eq!(vocab.tokens[19], "<extra>");
    assert_eq!(vocab.token_types[19], CONTROL);
    assert_eq!(vocab.tokens[30], "[PAD30]");
    assert_eq!(vocab.token_types[30], UNUSED);

    let err = Vocab::from_checkpoint_dir(dir.path(), 19, AddSpecialOverride::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"<extra>\" has id 19"), "{err}");
    assert!(err.contains("vocab_size 19"), "{err}");
    assert!(err.contains("lists it as id 30"), "{err}");
}
