//! artemis-quantize: decoders get llama.cpp's own per-tensor choices (dry-run plan = file read
//! back) and stay close to the official logits; mmproj quantization keeps position embeddings,
//! patch kernels and norms, and its image embeddings stay close to the official ones; rows that
//! don't fit a type fall back and say so; bad inputs fail cleanly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use artemis_gguf::engine::{Engine, EngineOptions, Vision, VisionOptions};
use artemis_gguf::gguf::{GgmlType, GgufFile, GgufHeader, MetaValue};
use artemis_gguf::plan::OutType;
use artemis_gguf::quantize::{self, QuantizeOptions};
use common::*;

fn q(input: &Path, output: &Path, ty: &str, opts: &QuantizeOptions) -> quantize::QuantizeReport {
    quantize::quantize(input, Some(output), quantize::parse_type(ty).unwrap(), opts)
        .unwrap_or_else(|e| panic!("{ty}: {e}"))
}

fn quiet() -> QuantizeOptions {
    QuantizeOptions {
        quiet: true,
        threads: Some(2),
        ..Default::default()
    }
}

#[test]
fn decoder_quantizations_follow_llama_cpp_and_stay_close_to_official_logits() {
    let dir = temp_dir("quant-decoder");
    let (dec, _) = convert_fixture("small", &dir, OutType::BF16);
    let golden = Golden::load("small");
    let case = golden.case("text");
    let want = golden.tensor("text.last_logits");
    // (type, max |Δlogit| bound, cosine bound). Observed on `small` (random weights, which
    // quantize worse than trained ones; logit scale 50): q8_0 0.26 / 0.99990, q6_k 0.96 /
    // 0.99933, q4_k_m 4.4 / 0.989 (greedy agrees 12, 12 and 4 of 12 tokens).
    for (ty, tol, min_cos) in [
        ("q8_0", 0.6, 0.9998),
        ("q6_k", 2.0, 0.998),
        ("q4_k_m", 8.0, 0.98),
    ] {
        let plan = quantize::quantize(
            &dec,
            Some(&dir.join("unused.gguf")),
            quantize::parse_type(ty).unwrap(),
            &QuantizeOptions {
                dry_run: true,
                ..quiet()
            },
        )
        .unwrap();
        assert!(!dir.join("unused.gguf").exists(), "dry run writes nothing");
        let out = dir.join(format!("small-{ty}.gguf"));
        let done = q(&dec, &out, ty, &quiet());
        assert_eq!(
            plan.tensors, done.tensors,
            "{ty}: dry-run plan = what was written"
        );
        // what llama.cpp reported equals the file read back
        let g = GgufFile::open(&out).unwrap();
        assert_eq!(g.tensors.len(), done.tensors.len());
        for c in &done.tensors {
            let t = g.tensor(&c.name).unwrap();
            assert_eq!(
                quantize::ggml_name(t.ggml_type).unwrap(),
                c.to,
                "{ty}: {}",
                c.name
            );
        }
        assert_eq!(
            g.get("general.file_type").and_then(|v| v.as_u32()),
            Some(quantize::parse_type(ty).unwrap().ftype)
        );
        if ty == "q4_k_m" {
            // Q4_K_M's mixture: some attn_v / ffn_down at Q6_K, the rest Q4_K, norms F32.
            let types: Vec<String> = done.tensors.iter().map(|c| c.to.clone()).collect();
            assert!(
                types.iter().any(|t| t == "q6_K") && types.iter().any(|t| t == "q4_K"),
                "{types:?}"
            );
            assert_eq!(
                quantize::ggml_name(g.tensor("blk.0.attn_norm.weight").unwrap().ggml_type).unwrap(),
                "f32"
            );
        }
        let engine = Engine::load(
            &out,
            EngineOptions {
                threads: 2,
                kv_f32: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mut s = engine.session(128).unwrap();
        s.eval_tokens(&case.input_ids).unwrap();
        let logits = s.logits();
        let (diff, cos) = (max_abs_diff(&logits, want), cosine(&logits, want));
        let greedy = s.greedy(12, &[]).unwrap();
        let agree = greedy
            .iter()
            .zip(&case.greedy_ids)
            .take_while(|(a, b)| a == b)
            .count();
        eprintln!("small {ty}: max |Δlogit| {diff:.3} (logit scale {:.1}), cosine {cos:.5}, greedy agrees for {agree}/12 tokens, {:.2} bpw", max_abs(want), done.bits_per_weight());
        assert!(
            diff <= tol && cos >= min_cos,
            "{ty}: max |Δlogit| {diff} (≤ {tol}), cosine {cos} (≥ {min_cos})"
        );
    }
}

#[test]
fn mmproj_q8_0_keeps_fixed_tensors_and_embeddings_close_to_official() {
    let dir = temp_dir("quant-mmproj");
    let (dec, mm) = convert_fixture("small", &dir, OutType::F32);
    let out = dir.join("mmproj-small-q8_0.gguf");
    let report = q(&mm.unwrap(), &out, "q8_0", &quiet());
    assert!(report.is_mmproj);
    let g = GgufFile::open(&out).unwrap();
    let ty = |n: &str| g.tensor(n).unwrap().ggml_type;
    assert_eq!(ty("v.position_embd.weight"), GgmlType::F32);
    assert_eq!(ty("v.patch_embd.weight"), GgmlType::F32);
    assert_eq!(ty("v.blk.0.ln1.weight"), GgmlType::F32);
    assert_eq!(ty("v.post_ln.weight"), GgmlType::F32);
    assert_eq!(ty("mm.artemis_fc1.bias"), GgmlType::F32);
    for n in [
        "v.blk.0.attn_qkv.weight",
        "mm.0.weight",
        "mm.2.weight",
        "mm.artemis_fc1.weight",
        "mm.artemis_fc2.weight",
    ] {
        assert_eq!(ty(n), GgmlType::Q8_0, "{n}");
    }
    assert_eq!(g.get("general.file_type"), Some(&MetaValue::U32(7)));
    assert_eq!(
        g.get("clip.projector_type").and_then(|v| v.as_str()),
        Some("qwen3vl_merger")
    );

    let engine = Engine::load(
        &dec,
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut vision = Vision::load(
        &engine,
        &out,
        &VisionOptions {
            use_gpu: false,
            image_min_tokens: 1,
            image_max_tokens: 256,
            flash_attn: Some(false),
        },
    )
    .unwrap();
    let golden = Golden::load("small");
    let (w, h, rgb) = load_rgb(&fixtures().join("images/square_64.png"));
    let emb = vision.encode(&Vision::bitmap(w, h, &rgb).unwrap()).unwrap();
    let want = golden.tensor("img_square.image_embeds");
    let cos = cosine(&emb.data, want);
    eprintln!(
        "small mmproj q8_0: embeddings cosine {cos:.6}, max-abs {:.3e} (scale {:.2})",
        max_abs_diff(&emb.data, want),
        max_abs(want)
    );
    assert!(cos >= 0.999, "cosine {cos}");
}

fn quant_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_artemis-quantize"))
}

#[test]
fn tiny_rows_fall_back_and_say_so() {
    let dir = temp_dir("quant-tiny");
    let (dec, mm) = convert_fixture("tiny", &dir, OutType::F16);
    for input in [dec, mm.unwrap()] {
        let o = quant_bin()
            .arg(&input)
            .arg("q4_k_m")
            .arg("2")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{err}");
        assert!(
            err.contains("note:")
                && (err.contains("not divisible") || err.contains("does not fit")),
            "fallbacks must be reported: {err}"
        );
        let out = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        assert!(
            out.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("-q4_k_m.gguf"),
            "{}",
            out.display()
        );
        let g = GgufFile::open(&out).unwrap();
        assert!(g
            .tensors
            .iter()
            .all(|t| t.ggml_type != GgmlType::Other(12) || t.ne[0] % 256 == 0));
    }
}

fn expect_quant_error(args: &[&std::ffi::OsStr], needles: &[&str], must_not_exist: Option<&Path>) {
    let mut cmd = quant_bin();
    cmd.args(args);
    expect_one_line_error(cmd, needles);
    if let Some(p) = must_not_exist {
        assert!(!p.exists(), "{} left behind", p.display());
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let temps: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&name) && n.ends_with(".artemis.tmp"))
            .collect();
        assert!(temps.is_empty(), "temp file left behind: {temps:?}");
    }
}

/// A GGUF imatrix with entries for `names` (all ones).
fn write_imatrix(path: &Path, model: &GgufFile, names: &[&str]) {
    let mut tensors = Vec::new();
    let mut data = Vec::new();
    for n in names {
        let ne0 = model.tensor(n).unwrap().ne[0];
        tensors.push((format!("{n}.in_sum2"), vec![ne0, 1], GgmlType::F32, ne0 * 4));
        data.push(vec![1f32; ne0 as usize]);
        tensors.push((format!("{n}.counts"), vec![1, 1], GgmlType::F32, 4));
        data.push(vec![1f32]);
    }
    let header = GgufHeader::new(
        vec![("general.type".into(), MetaValue::Str("imatrix".into()))],
        tensors,
    );
    let mut bytes = Vec::new();
    let start = header.write(&mut bytes).unwrap();
    for (t, d) in header.tensors.iter().zip(&data) {
        bytes.resize((start + t.offset) as usize, 0);
        bytes.extend(d.iter().flat_map(|x| x.to_le_bytes()));
    }
    bytes.resize(header.file_size().unwrap() as usize, 0);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn quantize_errors_are_clear_and_leave_nothing_behind() {
    let dir = temp_dir("quant-errors");
    let (dec, mm) = convert_fixture("small", &dir, OutType::F16);
    let mm = mm.unwrap();
    let os = |p: &Path| p.as_os_str().to_owned();
    let s = |x: &str| std::ffi::OsString::from(x);
    let run = |v: Vec<std::ffi::OsString>, needles: &[&str], out: Option<&Path>| {
        expect_quant_error(
            &v.iter().map(|x| x.as_os_str()).collect::<Vec<_>>(),
            needles,
            out,
        )
    };
    let out = dir.join("out.gguf");
    run(
        vec![os(&dec), os(&out), s("q4_z")],
        &["unknown type", "q4_k_m", "q8_0"],
        Some(&out),
    );
    run(
        vec![os(&dec), os(&dec), s("q8_0")],
        &["equals the input"],
        None,
    );
    run(
        vec![os(&mm), os(&out), s("iq2_xs")],
        &["mmproj", "q8_0"],
        Some(&out),
    );
    let not_gguf = dir.join("notes.gguf");
    std::fs::write(&not_gguf, b"hello, not a gguf").unwrap();
    run(
        vec![os(&not_gguf), os(&out), s("q8_0")],
        &["notes.gguf", "not a GGUF"],
        Some(&out),
    );
    let truncated = dir.join("truncated.gguf");
    let bytes = std::fs::read(&dec).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    run(
        vec![os(&truncated), os(&out), s("q8_0")],
        &["truncated.gguf", "truncated"],
        Some(&out),
    );

    // already quantized
    let q8 = dir.join("small-q8_0.gguf");
    q(&dec, &q8, "q8_0", &quiet());
    run(
        vec![os(&q8), os(&out), s("q4_k_m")],
        &["already quantized", "--allow-requantize"],
        Some(&out),
    );
    let o = quant_bin()
        .arg("--allow-requantize")
        .arg(&q8)
        .arg(&out)
        .arg("q4_k_m")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(&out).unwrap();

    // an imatrix that does not cover the model names the first tensor it lacks
    let model = GgufFile::open(&dec).unwrap();
    let im = dir.join("partial.imatrix.gguf");
    write_imatrix(&im, &model, &["blk.0.attn_q.weight"]);
    run(
        vec![s("--imatrix"), os(&im), os(&dec), os(&out), s("q4_k_m")],
        &[
            "partial.imatrix.gguf",
            "no entry for tensor blk.0.attn_k.weight",
        ],
        Some(&out),
    );
    // a complete one is accepted
    let names: Vec<&str> = model
        .tensors
        .iter()
        .filter(|t| {
            t.ne.len() == 2 && !matches!(t.name.as_str(), "token_embd.weight" | "output.weight")
        })
        .map(|t| t.name.as_str())
        .collect();
    let full = dir.join("full.imatrix.gguf");
    write_imatrix(&full, &model, &names);
    let o = quant_bin()
        .arg("--imatrix")
        .arg(&full)
        .arg(&dec)
        .arg(&out)
        .arg("iq4_xs")
        .arg("2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        GgufFile::open(&out)
            .unwrap()
            .tensors
            .iter()
            .any(|t| t.ggml_type == GgmlType::Other(23)),
        "IQ4_XS tensors expected"
    );
}

#[test]
fn list_shows_every_type_with_bits_per_weight() {
    let o = quant_bin().arg("--list").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    for t in ["q4_k_m", "q8_0", "iq4_xs", "bf16"] {
        assert!(
            s.lines().any(|l| l.starts_with(t)),
            "{t} missing from --list"
        );
    }
    assert!(
        s.lines()
            .any(|l| l.starts_with("q8_0") && l.contains("8.5000")),
        "{s}"
    );
}

#[test]
fn convert_with_quantize_equals_convert_then_quantize_and_leaves_no_intermediate() {
    let dir = temp_dir("pipeline");
    let (one, two) = (dir.join("one"), dir.join("two"));
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&two).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(fixtures().join("small"))
        .arg("-o")
        .arg(&one)
        .args([
            "--name",
            "small",
            "--quantize",
            "q4_k_m",
            "--mmproj-quantize",
            "q8_0",
            "-t",
            "2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("peak disk use"));
    let mut names: Vec<String> = std::fs::read_dir(&one)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["mmproj-small-q8_0.gguf", "small-q4_k_m.gguf"],
        "no intermediate left"
    );

    let (dec, mm) = convert_fixture("small", &two, OutType::BF16);
    let d = two.join("small-q4_k_m.gguf");
    let m = two.join("mmproj-small-q8_0.gguf");
    q(&dec, &d, "q4_k_m", &quiet());
    q(&mm.unwrap(), &m, "q8_0", &quiet());
    assert_eq!(
        std::fs::read(one.join("small-q4_k_m.gguf")).unwrap(),
        std::fs::read(&d).unwrap()
    );
    assert_eq!(
        std::fs::read(one.join("mmproj-small-q8_0.gguf")).unwrap(),
        std::fs::read(&m).unwrap()
    );

    // a failing run (unknown mmproj type for the mmproj path) leaves nothing behind
    let three = dir.join("three");
    std::fs::create_dir_all(&three).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(fixtures().join("small"))
        .arg("-o")
        .arg(&three)
        .args([
            "--name",
            "small",
            "--quantize",
            "q4_k_m",
            "--mmproj-quantize",
            "iq2_xs",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_eq!(
        std::fs::read_dir(&three).unwrap().count(),
        0,
        "nothing left after a failure"
    );
}
