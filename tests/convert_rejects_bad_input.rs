//! Broken inputs give a one-line error that names the file and the problem, a non-zero exit, no
//! panic, and leave no output or temp file behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A writable copy of a fixture checkpoint.
fn copy_fixture(name: &str, tag: &str) -> PathBuf {
    let dir = temp_dir(tag).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    dir
}

/// Runs artemis-convert; returns (success, stderr) and checks the output dir stays clean on failure.
fn run_convert(ckpt: &Path, extra: &[&str]) -> (bool, String, PathBuf) {
    let out = ckpt.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(ckpt)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--outtype", "f32"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    if !o.status.success() {
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "error must be one line: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    (o.status.success(), stderr, out)
}

fn expect_error(ckpt: &Path, needles: &[&str]) {
    let (ok, err, _) = run_convert(ckpt, &[]);
    assert!(!ok, "conversion of {} should fail", ckpt.display());
    for n in needles {
        assert!(err.contains(n), "error {err:?} should mention {n:?}");
    }
}

/// Rewrites `model.safetensors` of `dir` through `edit` (on name → (dtype, shape, bytes)).
fn rewrite_weights(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn missing_config_json() {
    let d = copy_fixture("tiny", "err-noconfig");
    std::fs::remove_file(d.join("config.json")).unwrap();
    expect_error(&d, &["config.json", "No such file"]);
}

#[test]
fn garbled_config_json() {
    let d = copy_fixture("tiny", "err-garbled");
    std::fs::write(d.join("config.json"), "{\"model_type\": \"artemis_vlm\", ").unwrap();
    expect_error(&d, &["config.json", "invalid JSON", "line 1"]);
}

#[test]
fn unknown_model_type() {
    let d = copy_fixture("tiny", "err-modeltype");
    edit_config(&d, |v| v["model_type"] = "gemma3".into());
    expect_error(&d, &["config.json", "\"gemma3\"", "supported"]);
}

#[test]
fn missing_tensor_is_named() {
    let d = copy_fixture("tiny", "err-missing");
    rewrite_weights(&d, |t| {
        t.retain(|(n, ..)| n != "language_model.model.layers.1.mlp.up_proj.weight")
    });
    expect_error(
        &d,
        &[
            "missing tensor",
            "language_model.model.layers.1.mlp.up_proj.weight",
        ],
    );
}

#[test]
fn extra_tensor_is_named() {
    let d = copy_fixture("tiny", "err-extra");
    rewrite_weights(&d, |t| {
        t.push((
            "visual.surprise.weight".into(),
            safetensors::Dtype::F32,
            vec![2],
            vec![0; 8],
        ))
    });
    expect_error(&d, &["not used by any output", "visual.surprise.weight"]);
}

#[test]
fn shape_disagreeing_with_config() {
    let d = copy_fixture("tiny", "err-shape");
    edit_config(&d, |v| v["text_config"]["intermediate_size"] = 96.into());
    expect_error(
        &d,
        &[
            "model.safetensors",
            "gate_proj.weight",
            "[160, 80]",
            "[96, 80]",
        ],
    );
}

#[test]
fn truncated_shard() {
    let d = copy_fixture("small", "err-truncated");
    let shard = d.join("model-00002-of-00004.safetensors");
    let len = std::fs::metadata(&shard).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap()
        .set_len(len - 1000)
        .unwrap();
    expect_error(&d, &["model-00002-of-00004.safetensors", "truncated"]);
}

#[test]
fn header_offsets_out_of_range() {
    let d = copy_fixture("tiny", "err-offsets");
    let p = d.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["visual.pos_embed.weight"]["data_offsets"][1] = (1u64 << 40).into();
    let h = serde_json::to_vec(&header).unwrap();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&p, out).unwrap();
    expect_error(&d, &["model.safetensors", "corrupt header"]);
}

#[test]
fn unsupported_dtype_is_named() {
    let d = copy_fixture("tiny", "err-dtype");
    rewrite_weights(&d, |t| {
        let e = t
            .iter_mut()
            .find(|(n, ..)| n == "language_model.model.norm.weight")
            .unwrap();
        e.1 = safetensors::Dtype::I32;
    });
    expect_error(
        &d,
        &[
            "model.safetensors",
            "language_model.model.norm.weight",
            "I32",
            "supported",
        ],
    );
}

#[test]
fn existing_output_is_not_overwritten_without_force() {
    let d = copy_fixture("tiny", "err-exists");
    let (ok, _, out) = run_convert(&d, &["--name", "x"]);
    assert!(ok);
    let dec = out.join("x-f32.gguf");
    let before = std::fs::read(&dec).unwrap();
    std::fs::write(&dec, b"sentinel").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(&d)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--outtype", "f32", "--name", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&dec).unwrap(), b"sentinel");
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(&d)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--outtype", "f32", "--name", "x", "--force"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(std::fs::read(&dec).unwrap(), before);
}

#[test]
fn a_write_error_leaves_nothing_behind() {
    // A file size limit of 64 KiB: the first output's writes fail (EFBIG), as on a full disk.
    let d = copy_fixture("tiny", "err-full");
    let out = d.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artemis-convert"));
    cmd.args(["--to", "gguf"])
        .arg(&d)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--outtype", "f32", "--name", "x"]);
    limit_file_size(&mut cmd, 64 << 10);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("x-f32.gguf") && err.contains("File too large"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn dry_run_lists_every_tensor_and_key_and_writes_nothing() {
    let d = copy_fixture("tiny", "dry-run");
    let out = d.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf", "--dry-run"])
        .arg(&d)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("blk.1.attn_q.weight")
            && s.contains("mm.artemis_fc2.weight")
            && s.contains("v.patch_embd.weight.1")
    );
    assert!(
        s.contains("clip.vision.attention.layer_norm_epsilon") && s.contains("tokenizer.ggml.pre")
    );
    assert!(s.contains("not written") && s.contains("DeepStack"));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn failure_on_the_second_file_leaves_no_first_file() {
    // The decoder (1068224 bytes) is written fine; the mmproj (1100000 bytes) exceeds the file
    // size limit: neither appears.
    let d = copy_fixture("tiny", "err-second");
    let out = d.parent().unwrap().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artemis-convert"));
    cmd.args(["--to", "gguf"])
        .arg(&d)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--outtype", "f32", "--name", "x"]);
    limit_file_size(&mut cmd, 1_080_000);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("mmproj-x-f32.gguf") && err.contains("File too large"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn ctrl_c_leaves_no_output_and_no_temp_file() {
    // A Mistral checkpoint big enough (~100 MB f32) that the conversion is still running when
    // SIGINT arrives right after the temp file appears.
    let dir = temp_dir("ctrl-c");
    let ckpt = dir.join("ckpt");
    write_mistral_checkpoint(
        &ckpt,
        MistralDims {
            hidden: 1024,
            ffn: 8192,
            heads: 8,
            kv_heads: 8,
            head_dim: 128,
        },
    );

    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(&ckpt)
        .arg("-o")
        .arg(&out)
        .args([
            "--quiet",
            "--outtype",
            "q8_0",
            "--verify",
            "--name",
            "m",
            "-t",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let tmp = out.join(format!("m-q8_0.gguf.{}.artemis.tmp", child.id()));
    let start = std::time::Instant::now();
    while !tmp.exists() && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(tmp.exists(), "conversion never started");
    // SIGINT, as Ctrl-C sends it
    let rc = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    let o = child.wait_with_output().unwrap();
    assert!(
        !o.status.success(),
        "the run must be interrupted (it finished first: make the checkpoint bigger)"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("interrupted"));
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
