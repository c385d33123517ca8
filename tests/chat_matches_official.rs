//! artemis-chat reproduces the official implementation's greedy output (binary --json, library
//! API with two images, a two-turn conversation over one KV cache), batch mode reports every
//! file, and each error is one line with a non-zero exit.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use artemis_gguf::chat::{self, ChatTemplate, Conversation, Message};
use artemis_gguf::engine::{Engine, EngineOptions, Sampling, Vision, VisionOptions};
use artemis_gguf::plan::OutType;
use common::*;

fn greedy() -> Sampling {
    Sampling {
        temp: 0.0,
        ..Sampling::default()
    }
}

fn converted(tag: &str) -> (PathBuf, PathBuf) {
    let out = temp_dir(tag);
    let (dec, mm) = convert_fixture("tiny", &out, OutType::F32);
    (dec, mm.unwrap())
}

fn question(case: &Case) -> String {
    // the text part of the golden's single user message
    let start = case
        .prompt
        .rfind("<|vision_end|>")
        .map(|i| i + "<|vision_end|>".len())
        .unwrap_or_else(|| case.prompt.find("user\n").unwrap() + 5);
    case.prompt[start..case.prompt.find("<|im_end|>").unwrap()].to_string()
}

fn chat_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_artemis-chat"))
}

#[test]
fn binary_json_greedy_reproduces_official_ids() {
    let (dec, mm) = converted("chat-bin");
    let golden = Golden::load("tiny");
    for name in ["img_square", "text"] {
        let case = golden.case(name);
        let mut cmd = chat_bin();
        cmd.arg(&dec).arg("--mmproj").arg(&mm).args([
            "--temp",
            "0",
            "-n",
            "16",
            "--json",
            "-t",
            "2",
            "-p",
            &question(case),
        ]);
        if let Some(img) = &case.image {
            cmd.arg("--image").arg(fixtures().join(img));
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ids: Vec<i32> = serde_json::from_value(v["token_ids"].clone()).unwrap();
        assert!(ids.len() >= 10);
        assert_eq!(ids, case.greedy_ids, "{name}");
        assert_eq!(
            v["prompt_tokens"].as_u64().unwrap() as usize,
            case.input_ids.len(),
            "{name}: prompt tokens incl. image tokens"
        );
        assert_eq!(
            v["image_tokens"].as_u64().unwrap() as usize,
            case.n_image_tokens
        );
    }
}

fn load(dec: &Path, mm: &Path) -> (Engine, Vision, ChatTemplate) {
    let engine = Engine::load(
        dec,
        EngineOptions {
            threads: 2,
            kv_f32: true,
            ..Default::default()
        },
    )
    .unwrap();
    let vision = Vision::load(
        &engine,
        mm,
        &VisionOptions {
            use_gpu: false,
            image_min_tokens: 1,
            image_max_tokens: 256,
            flash_attn: Some(false),
        },
    )
    .unwrap();
    let template = ChatTemplate::from_gguf(dec).unwrap();
    (engine, vision, template)
}

fn bitmap(vision: &Vision, rel: &str) -> llama_cpp_2::mtmd::MtmdBitmap {
    chat::image_bitmap(vision, &fixtures().join(rel)).unwrap()
}

#[test]
fn library_two_images_in_one_prompt_reproduce_official_ids() {
    let (dec, mm) = converted("chat-two");
    let (engine, mut vision, template) = load(&dec, &mm);
    let golden = Golden::load("tiny");
    let case = golden.case("img_two");
    assert_eq!(case.images.len(), 2);
    // the rendered prompt equals the official processor's
    let rendered = template
        .render(&[Message::user(2, &question(case))], true, None)
        .unwrap();
    assert_eq!(rendered, case.prompt);
    let bitmaps: Vec<_> = case.images.iter().map(|p| bitmap(&vision, p)).collect();
    let refs: Vec<_> = bitmaps.iter().collect();
    let mut conv = Conversation::new(engine.session(256).unwrap(), &template, None, None);
    let reply = conv
        .turn(
            &engine,
            Some(&mut vision),
            &refs,
            &question(case),
            &greedy(),
            16,
            |_| {},
        )
        .unwrap();
    assert_eq!(reply.image_tokens, case.n_image_tokens);
    assert_eq!(reply.prompt_tokens, case.input_ids.len());
    assert_eq!(reply.token_ids, case.greedy_ids);
}

#[test]
fn second_turn_matches_a_fresh_run_over_the_whole_conversation() {
    let (dec, mm) = converted("chat-turns");
    let (engine, mut vision, template) = load(&dec, &mm);
    let golden = Golden::load("tiny");
    let case = golden.case("img_square");
    let img = bitmap(&vision, case.image.as_ref().unwrap());

    let mut conv = Conversation::new(engine.session(512).unwrap(), &template, None, None);
    let first = conv
        .turn(
            &engine,
            Some(&mut vision),
            &[&img],
            &question(case),
            &greedy(),
            16,
            |_| {},
        )
        .unwrap();
    assert_eq!(
        first.token_ids, case.greedy_ids,
        "first turn = official greedy"
    );
    let second = conv
        .turn(
            &engine,
            Some(&mut vision),
            &[],
            "Tell me more about it.",
            &greedy(),
            12,
            |_| {},
        )
        .unwrap();
    assert_eq!(
        second.image_tokens, 0,
        "the image stays in the KV cache, it is not encoded again"
    );
    let turn1 = template.render(&conv.messages[..1], true, None).unwrap();
    let turn2 = template.render(&conv.messages[..3], true, None).unwrap();
    let delta = turn2
        .strip_prefix(&format!("{turn1}{}", first.text))
        .expect("turn 2 extends turn 1");
    assert!(
        delta.starts_with("<|im_end|>") && delta.ends_with("<|im_start|>assistant\n<think>\n"),
        "{delta:?}"
    );
    assert_eq!(
        second.prompt_tokens,
        engine.tokenize(delta, false).len(),
        "only the new turn is evaluated"
    );

    // Fresh: a new context evaluating the same token sequence from scratch: turn 1's prompt
    // (with the image), turn 1's reply tokens, then turn 2's prompt. (The reply is compared at
    // token level: byte-level BPE output need not re-tokenize to the same ids.)
    let mut fresh = engine.session(512).unwrap();
    fresh
        .eval_prompt(&mut vision, &chat::to_mtmd_prompt(&turn1), &[&img], true)
        .unwrap();
    fresh.eval_tokens(&first.token_ids).unwrap();
    fresh.eval_prompt(&mut vision, delta, &[], false).unwrap();
    let ids = fresh
        .generate(&engine, &greedy(), 12, |_, _| true)
        .unwrap()
        .tokens;
    assert_eq!(second.token_ids, ids);
}

#[test]
fn batch_mode_reports_every_file_and_exits_2_when_some_fail() {
    let (dec, mm) = converted("chat-batch");
    let dir = temp_dir("chat-batch-images");
    std::fs::copy(
        fixtures().join("images/square_64.png"),
        dir.join("a_good.png"),
    )
    .unwrap();
    std::fs::write(
        dir.join("b_corrupt.png"),
        b"\x89PNG\r\n\x1a\nthis is not really a png",
    )
    .unwrap();
    std::fs::write(dir.join("c_notes.txt"), b"just text").unwrap();
    let o = chat_bin()
        .arg(&dec)
        .arg("--mmproj")
        .arg(&mm)
        .arg("--image")
        .arg(&dir)
        .args([
            "-p",
            "Describe this image.",
            "--temp",
            "0",
            "-n",
            "4",
            "-t",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "one JSON line per file, stdout holds nothing else"
    );
    assert!(lines[0]["image"].as_str().unwrap().ends_with("a_good.png"));
    assert_eq!(lines[0]["tokens"].as_u64(), Some(4));
    assert!(lines[0]["encode_ms"].is_number() && lines[0]["tok_per_s"].is_number());
    assert!(
        lines[1]["error"]
            .as_str()
            .unwrap()
            .contains("b_corrupt.png"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2]["error"].as_str().unwrap().contains("c_notes.txt"),
        "{}",
        lines[2]
    );
}

fn expect_chat_error(args: &[&std::ffi::OsStr], needles: &[&str]) {
    let mut cmd = chat_bin();
    cmd.args(args);
    expect_one_line_error(cmd, needles);
}

#[test]
fn chat_errors_are_one_line_and_name_the_problem() {
    let (dec, mm) = converted("chat-errors");
    let small_out = temp_dir("chat-errors-small");
    let (_, small_mm) = convert_fixture("small", &small_out, OutType::F16);
    let small_mm = small_mm.unwrap();
    let missing = PathBuf::from("/nonexistent/model.gguf");
    let bad_img = temp_dir("chat-errors-img").join("broken.jpg");
    std::fs::write(&bad_img, b"\xff\xd8\xff\xe0 not a jpeg at all").unwrap();
    let os = |p: &Path| p.as_os_str().to_owned();
    let s = |x: &str| std::ffi::OsString::from(x);

    expect_chat_error(
        &[os(&missing), s("-p"), s("hi")]
            .iter()
            .map(|x| x.as_os_str())
            .collect::<Vec<_>>(),
        &["/nonexistent/model.gguf", "No such file"],
    );
    expect_chat_error(
        &[os(&mm), s("-p"), s("hi")]
            .iter()
            .map(|x| x.as_os_str())
            .collect::<Vec<_>>(),
        &["mmproj", "not a decoder"],
    );
    expect_chat_error(
        &[os(&dec), s("--mmproj"), os(&dec), s("-p"), s("hi")]
            .iter()
            .map(|x| x.as_os_str())
            .collect::<Vec<_>>(),
        &["not an mmproj"],
    );
    expect_chat_error(
        &[os(&dec), s("--mmproj"), os(&small_mm), s("-p"), s("hi")]
            .iter()
            .map(|x| x.as_os_str())
            .collect::<Vec<_>>(),
        &["256", "80", "different models"],
    );
    expect_chat_error(
        &[
            os(&dec),
            s("--mmproj"),
            os(&mm),
            s("--image"),
            os(&bad_img),
            s("-p"),
            s("hi"),
        ]
        .iter()
        .map(|x| x.as_os_str())
        .collect::<Vec<_>>(),
        &["broken.jpg", "Jpeg"],
    );
    expect_chat_error(
        &[
            os(&dec),
            s("--mmproj"),
            os(&mm),
            s("--image"),
            os(&fixtures().join("images/square_64.png")),
            s("-p"),
            s("hi"),
            s("-c"),
            s("16"),
        ]
        .iter()
        .map(|x| x.as_os_str())
        .collect::<Vec<_>>(),
        &["needs", "tokens", "context holds 16"],
    );
}

#[test]
fn interactive_mode_keeps_images_across_turns_and_handles_commands() {
    use std::io::Write;
    let (dec, mm) = converted("chat-interactive");
    let golden = Golden::load("tiny");
    let case = golden.case("img_square");
    let mut child = chat_bin()
        .arg(&dec)
        .arg("--mmproj")
        .arg(&mm)
        .args(["--temp", "0", "-n", "16", "-t", "2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = format!(
        "/image {}\n{}\nTell me more about it.\n/image /nonexistent.png\nstill there?\n/clear\n/exit\n",
        fixtures().join(case.image.as_ref().unwrap()).display(),
        question(case)
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // turn 1 with the image, turn 2 without re-encoding, a bad /image reported without ending the session
    let timings: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("[image encode"))
        .collect();
    assert_eq!(timings.len(), 2, "{err}");
    assert!(timings[0].contains("(4 image tokens)"), "{}", timings[0]);
    assert!(
        timings[1].contains("(0 image tokens)"),
        "the image stays in the cache: {}",
        timings[1]
    );
    assert!(err.contains("/nonexistent.png"), "{err}");
    assert!(!o.stdout.is_empty(), "replies go to stdout");
}

#[test]
fn batch_captioning_with_parallel_sequences_equals_one_at_a_time() {
    let (dec, mm) = converted("chat-batch-par");
    let dir = temp_dir("chat-batch-par-images");
    for f in [
        "square_64.png",
        "rect_84x56.png",
        "wide_300x120.png",
        "tall_64x96.png",
        "rgba_40x72.png",
    ] {
        std::fs::copy(fixtures().join("images").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("z_broken.png"), b"not a png").unwrap();
    let run = |parallel: &str| {
        let o = chat_bin()
            .arg(&dec)
            .arg("--mmproj")
            .arg(&mm)
            .arg("--image")
            .arg(&dir)
            .args([
                "-p",
                "Write a caption.",
                "--temp",
                "0",
                "-n",
                "10",
                "-t",
                "2",
                "--keep-thinking",
                "--parallel",
                parallel,
            ])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["image"].as_str().unwrap().to_string(),
                    v.get("text").cloned(),
                    v.get("error").is_some(),
                )
            })
            .collect::<Vec<_>>()
    };
    let one = run("1");
    let four = run("4");
    assert_eq!(one.len(), 6);
    assert_eq!(
        one, four,
        "the same captions, in the same order, with 4 sequences"
    );
    assert!(four[5].2, "the broken file is reported in its line");
}

#[test]
fn a_reader_that_goes_away_ends_chat_quietly_without_a_panic() {
    let (dec, _) = converted("chat-pipe");
    // streamed text and --json both: stdout's reader is gone before the first byte is written
    for json in [false, true] {
        let mut cmd = chat_bin();
        cmd.arg(&dec)
            .args(["--temp", "0", "-n", "16", "-t", "2", "-p", "Hello"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd.spawn().unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "json={json}: {err}");
        assert_eq!(out.status.code(), Some(141), "json={json}: {err}");
    }
}
