//! For every tokenizer setup of the matrix in `fixtures/tokenizers/` (post-processor kinds,
//! tokenizer_config.json keys present / absent / contradicting, templates with and without BOS),
//! a converted GGUF gives artemis-chat exactly the official prompt ids (image + text and
//! text-only) and the official greedy ids; setups the rule cannot decide are refused with one
//! line that offers --add-bos / --add-eos, and the override converts them.
//! Goldens: `fixtures/golden/tokenizers.json`, from transformers 5.23 + artemis-vlm 0.1.4
//! (`tools/make_tokenizer_matrix.py`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use artemis_gguf::chat::{self, ChatTemplate, Conversation, Message};
use artemis_gguf::convert::{self, ConvertOptions, OutTypeArg};
use artemis_gguf::engine::{Engine, EngineOptions, Sampling, Vision, VisionOptions};
use artemis_gguf::gguf::{GgufFile, MetaValue};
use artemis_gguf::plan::OutType;
use artemis_gguf::vocab::AddSpecialOverride;
use common::*;
use llama_cpp_2::mtmd::MtmdInputChunkType;

const IMAGE_PAD: i32 = 22;
const BOS: i32 = 1;

#[derive(serde::Deserialize, Debug)]
struct Setup {
    description: String,
    #[serde(default)]
    refused: bool,
    #[serde(default)]
    official_prefix_ids: Vec<i32>,
    #[serde(default)]
    official_suffix_ids: Vec<i32>,
    #[serde(default)]
    cases: Vec<SetupCase>,
}

#[derive(serde::Deserialize, Debug)]
struct SetupCase {
    name: String,
    image: Option<String>,
    prompt: String,
    input_ids: Vec<i32>,
    n_image_tokens: usize,
    greedy_ids: Vec<i32>,
}

fn setups() -> BTreeMap<String, Setup> {
    serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("golden/tokenizers.json")).unwrap(),
    )
    .unwrap()
}

/// tiny's weights and configs + one setup's tokenizer files, as make_tokenizer_matrix.py does.
fn assemble(setup: &str, into: &Path) -> PathBuf {
    let ckpt = into.join(setup);
    std::fs::create_dir_all(&ckpt).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(fixtures().join("tiny").join(f), ckpt.join(f)).unwrap();
    }
    for e in std::fs::read_dir(fixtures().join("tokenizers").join(setup)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), ckpt.join(e.file_name())).unwrap();
    }
    ckpt
}

fn convert_setup(
    ckpt: &Path,
    out: &Path,
    overrides: AddSpecialOverride,
) -> Result<(PathBuf, PathBuf), String> {
    let opts = ConvertOptions {
        out_dir: out.to_path_buf(),
        outtype: OutTypeArg::Fixed(OutType::F32),
        quiet: true,
        add_special: overrides,
        ..ConvertOptions::default()
    };
    let report = convert::convert(ckpt, &opts).map_err(|e| e.to_string())?;
    let is_mm = |p: &&PathBuf| {
        p.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("mmproj-")
    };
    Ok((
        report.written.iter().find(|p| !is_mm(p)).unwrap().clone(),
        report.written.iter().find(is_mm).unwrap().clone(),
    ))
}

fn flag(gguf: &Path, key: &str) -> Option<bool> {
    match GgufFile::open(gguf).unwrap().get(key) {
        Some(MetaValue::Bool(b)) => Some(*b),
        None => None,
        other => panic!("{key} is {other:?}"),
    }
}

/// The prompt as mtmd tokenized it, with each image chunk written as its image-pad ids (the
/// official processor's expansion).
fn prompt_ids(
    vision: &Vision,
    rendered: &str,
    images: &[&llama_cpp_2::mtmd::MtmdBitmap],
) -> Vec<i32> {
    let chunks = vision
        .tokenize(&chat::to_mtmd_prompt(rendered), images, true)
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..chunks.len() {
        let c = chunks.get(i).unwrap();
        match c.chunk_type() {
            MtmdInputChunkType::Image => {
                ids.extend(std::iter::repeat(IMAGE_PAD).take(c.n_tokens()))
            }
            _ => ids.extend(c.text_tokens().unwrap_or(&[]).iter().map(|t| t.0)),
        }
    }
    ids
}

fn question(prompt: &str) -> String {
    let start = prompt
        .rfind("<|vision_end|>")
        .map(|i| i + "<|vision_end|>".len())
        .unwrap_or_else(|| prompt.find("user\n").unwrap() + 5);
    prompt[start..prompt.find("<|im_end|>").unwrap()].to_string()
}

#[test]
fn every_setup_gives_the_official_prompt_ids_and_greedy_ids() {
    let tmp = temp_dir("tok-matrix");
    let all = setups();
    let decided: Vec<_> = all.iter().filter(|(_, s)| !s.refused).collect();
    assert!(decided.len() >= 10, "the matrix has at least 10 setups");
    let mut report = Vec::new();
    for (name, setup) in decided {
        let ckpt = assemble(name, &tmp);
        let (dec, mm) = convert_setup(
            &ckpt,
            &tmp.join(format!("{name}-out")),
            AddSpecialOverride::default(),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        // Both keys are always written, and say what the official tokenizer adds.
        let want_bos = match setup.official_prefix_ids.as_slice() {
            [] => false,
            [BOS] => true,
            other => panic!("{name}: prefix {other:?}"),
        };
        let want_eos = !setup.official_suffix_ids.is_empty();
        assert_eq!(
            flag(&dec, "tokenizer.ggml.add_bos_token"),
            Some(want_bos),
            "{name}: {}",
            setup.description
        );
        assert_eq!(
            flag(&dec, "tokenizer.ggml.add_eos_token"),
            Some(want_eos),
            "{name}: {}",
            setup.description
        );

        let engine = Engine::load(
            &dec,
            EngineOptions {
                threads: 2,
                kv_f32: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mut vision = Vision::load(
            &engine,
            &mm,
            &VisionOptions {
                use_gpu: false,
                image_min_tokens: 1,
                image_max_tokens: 256,
                flash_attn: Some(false),
            },
        )
        .unwrap();
        let template = ChatTemplate::from_gguf(&dec).unwrap();
        for case in &setup.cases {
            let bitmaps: Vec<_> = case
                .image
                .iter()
                .map(|p| chat::image_bitmap(&vision, &fixtures().join(p)).unwrap())
                .collect();
            let refs: Vec<_> = bitmaps.iter().collect();
            let q = question(&case.prompt);
            let rendered = template
                .render(&[Message::user(refs.len(), &q)], true, None)
                .unwrap();
            assert_eq!(
                rendered, case.prompt,
                "{name}/{}: rendered prompt",
                case.name
            );
            let ids = prompt_ids(&vision, &rendered, &refs);
            assert_eq!(
                ids, case.input_ids,
                "{name}/{}: prompt ids ({})",
                case.name, setup.description
            );
            if refs.is_empty() {
                assert_eq!(
                    engine.tokenize(&rendered, true),
                    case.input_ids,
                    "{name}/{}: text-only tokenizer path",
                    case.name
                );
            }
            let mut conv = Conversation::new(engine.session(256).unwrap(), &template, None, None);
            let reply = conv
                .turn(
                    &engine,
                    Some(&mut vision),
                    &refs,
                    &q,
                    &Sampling {
                        temp: 0.0,
                        ..Sampling::default()
                    },
                    16,
                    |_| {},
                )
                .unwrap();
            assert_eq!(
                reply.prompt_tokens,
                case.input_ids.len(),
                "{name}/{}",
                case.name
            );
            assert_eq!(
                reply.image_tokens, case.n_image_tokens,
                "{name}/{}",
                case.name
            );
            assert_eq!(
                reply.token_ids, case.greedy_ids,
                "{name}/{}: greedy ids ({})",
                case.name, setup.description
            );
            report.push(format!("{name}/{}: {} ids", case.name, ids.len()));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_doubled_bos_is_reproduced_and_warned_about_once() {
    let tmp = temp_dir("tok-double");
    let golden = setups();
    let case = &golden["tp_bos_tmplbos"].cases[0];
    assert_eq!(
        &case.input_ids[..2],
        &[BOS, BOS],
        "the official prompt has two BOS"
    );
    let (dec, _) = convert_setup(
        &assemble("tp_bos_tmplbos", &tmp),
        &tmp.join("out"),
        AddSpecialOverride::default(),
    )
    .unwrap();
    let template = ChatTemplate::from_gguf(&dec).unwrap();
    let w = template.doubled_bos_warning(None, true).expect("warned");
    assert!(
        w.contains("two BOS") && w.contains("official tokenizer does the same"),
        "{w}"
    );
    // A template without BOS, or a model that adds none: nothing to say.
    let (plain, _) = convert_setup(
        &assemble("tp_bos_plain", &tmp),
        &tmp.join("out-plain"),
        AddSpecialOverride::default(),
    )
    .unwrap();
    assert_eq!(
        ChatTemplate::from_gguf(&plain)
            .unwrap()
            .doubled_bos_warning(None, true),
        None
    );
    assert_eq!(template.doubled_bos_warning(None, false), None);
}

#[test]
fn a_gguf_without_the_add_bos_key_keeps_llama_cpp_behaviour_and_names_the_cause() {
    // As other converters write it: the key is missing, llama.cpp's tekken default adds BOS, and
    // the template's own BOS makes two, one more than the official prompt.
    let tmp = temp_dir("tok-nokey");
    let golden = setups();
    let setup = &golden["nokey_bytelevel_tmplbos"];
    let (dec, mm) = convert_setup(
        &assemble("nokey_bytelevel_tmplbos", &tmp),
        &tmp.join("out"),
        AddSpecialOverride::default(),
    )
    .unwrap();
    assert_eq!(flag(&dec, "tokenizer.ggml.add_bos_token"), Some(false));
    let foreign = tmp.join("foreign.gguf");
    artemis_gguf::gguf::copy_with(
        &dec,
        &foreign,
        |kv| {
            kv.into_iter()
                .filter(|(k, _)| !k.starts_with("tokenizer.ggml.add_"))
                .collect()
        },
        |_| true,
    )
    .unwrap();
    assert_eq!(flag(&foreign, "tokenizer.ggml.add_bos_token"), None);

    let engine = Engine::load(
        &foreign,
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(engine.adds_bos(), "llama.cpp's default for tekken");
    let template = ChatTemplate::from_gguf(&foreign).unwrap();
    let w = template
        .doubled_bos_warning(None, engine.adds_bos())
        .expect("warned");
    assert!(
        w.contains("no tokenizer.ggml.add_bos_token")
            && w.contains("\"tekken\"")
            && w.contains("re-convert"),
        "{w}"
    );
    let vision = Vision::load(
        &engine,
        &mm,
        &VisionOptions {
            use_gpu: false,
            image_min_tokens: 1,
            image_max_tokens: 256,
            flash_attn: Some(false),
        },
    )
    .unwrap();
    let case = setup.cases.iter().find(|c| c.image.is_none()).unwrap();
    let ids = prompt_ids(&vision, &case.prompt, &[]);
    assert_eq!(ids.len(), case.input_ids.len() + 1);
    assert_eq!(
        &ids[1..],
        &case.input_ids[..],
        "one extra BOS in front, the rest identical"
    );

    // The binary prints the warning once, as one line.
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-chat"))
        .arg(&foreign)
        .args(["-p", "Hi", "-n", "2", "--temp", "0", "-t", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("two BOS tokens").count(), 1, "{err}");
}

#[test]
fn undecidable_post_processors_are_refused_until_the_user_chooses() {
    let tmp = temp_dir("tok-refused");
    let cases = [
        (
            "unknown_pp_type",
            vec![
                "tokenizer.json",
                "\"FancyProcessing\"",
                "--add-bos",
                "--add-eos",
            ],
        ),
        (
            "tp_prefix_not_bos",
            vec![
                "tokenizer.json",
                "<|im_start|> (id 24) before the text",
                "--add-bos",
            ],
        ),
    ];
    for (setup, needles) in cases {
        assert!(setups()[setup].refused, "{setup}");
        let ckpt = assemble(setup, &tmp);
        let out = tmp.join(format!("{setup}-out"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_artemis-convert"));
        cmd.args(["--to", "gguf"])
            .arg(&ckpt)
            .arg("-o")
            .arg(&out)
            .arg("--quiet");
        expect_one_line_error(cmd, &needles);
        assert!(
            !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
            "{setup}: nothing written"
        );

        let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
            .args(["--to", "gguf"])
            .arg(&ckpt)
            .args(["--dry-run", "--add-bos", "true", "--add-eos", "false"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{setup}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let dry = String::from_utf8_lossy(&o.stdout);
        assert!(
            dry.contains("== add_bos = true: --add-bos true on the command line"),
            "{dry}"
        );
        assert!(
            dry.contains("== add_eos = false: --add-eos false on the command line"),
            "{dry}"
        );
    }
    // Only one override for an unknown type: the other flag is still undecided.
    let e = convert_setup(
        &assemble("unknown_pp_type", &tmp.join("again")),
        &tmp.join("again-out"),
        AddSpecialOverride {
            add_bos: Some(false),
            add_eos: None,
        },
    )
    .unwrap_err();
    assert!(e.contains("FancyProcessing"), "{e}");
}

#[test]
fn dry_run_shows_each_flag_and_where_it_came_from() {
    let tmp = temp_dir("tok-dry");
    let run = |setup: &str, extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
            .args(["--to", "gguf"])
            .arg(assemble(setup, &tmp))
            .arg("--dry-run")
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let dry = run("tp_bos_eos", &[]);
    assert!(
        dry.contains("kv  tokenizer.ggml.add_bos_token = Bool(true)"),
        "{dry}"
    );
    assert!(
        dry.contains("== add_bos = true: ")
            && dry.contains("post-processor TemplateProcessing adds <s> (id 1) before the text"),
        "{dry}"
    );
    assert!(
        dry.contains("== add_eos = true: ") && dry.contains("adds </s> (id 2) after the text"),
        "{dry}"
    );
    let dry = run("null_pp_keytrue", &[]);
    assert!(
        dry.contains("== add_bos = false: ")
            && dry.contains("no post-processor adds nothing before the text"),
        "{dry}"
    );
    assert!(
        dry.contains("kv  tokenizer.ggml.add_eos_token = Bool(false)"),
        "{dry}"
    );
    let dry = run("tp_bos_plain", &["--add-bos", "false"]);
    assert!(
        dry.contains("== add_bos = false: --add-bos false on the command line (overrides "),
        "{dry}"
    );
}

#[test]
fn a_missing_output_directory_is_created_for_a_plain_conversion() {
    let tmp = temp_dir("tok-mkdir");
    let out = tmp.join("a/b/c");
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(fixtures().join("tiny"))
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--only", "decoder"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    // A path that cannot be a directory is still one line naming it.
    let file = tmp.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artemis-convert"));
    cmd.args(["--to", "gguf"])
        .arg(fixtures().join("tiny"))
        .arg("-o")
        .arg(file.join("sub"))
        .args(["--quiet", "--only", "decoder"]);
    expect_one_line_error(
        cmd,
        &["plain-file/sub", "cannot create the output directory"],
    );
}
