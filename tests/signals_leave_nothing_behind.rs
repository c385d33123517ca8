//! SIGINT, SIGTERM and SIGKILL at 20 different moments of a conversion and of a one-command
//! `--quantize` run: afterwards the output directory holds either nothing or the complete set of
//! outputs, never a temp file or a partial set. After SIGKILL (which nothing can handle) the next
//! run into the same directory removes what the killed run left.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use artemis_gguf::gguf::GgufFile;
use common::*;

const ROUNDS: u64 = 20;

fn start(ckpt: &Path, out: &Path, quantize: bool, force: bool) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artemis-convert"));
    cmd.args(["--to", "gguf"])
        .arg(ckpt)
        .arg("-o")
        .arg(out)
        .args(["--quiet", "--outtype", "f32", "--name", "m", "-t", "1"]);
    if quantize {
        cmd.args(["--quantize", "q8_0"]);
    }
    if force {
        cmd.arg("--force");
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn names(out: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(out) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Nothing, or exactly the complete outputs (each a readable GGUF).
fn assert_nothing_or_complete(out: &Path, expected: &str, what: &str) -> bool {
    let left = names(out);
    if left.is_empty() {
        return false;
    }
    assert_eq!(
        left,
        [expected],
        "{what}: partial or temp files left: {left:?}"
    );
    GgufFile::open(&out.join(expected))
        .unwrap_or_else(|e| panic!("{what}: output is not a complete GGUF: {e}"));
    true
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status();
}

#[test]
fn interrupted_and_killed_runs_leave_nothing_or_everything() {
    let dir = temp_dir("signals");
    let ckpt = dir.join("ckpt");
    // ~25 MB of f32 weights: a run takes long enough to be caught in every phase
    write_mistral_checkpoint(
        &ckpt,
        MistralDims {
            hidden: 512,
            ffn: 4096,
            heads: 8,
            kv_heads: 8,
            head_dim: 64,
        },
    );
    let mut completed = 0;
    let mut interrupted = 0;
    let mut stale_left = 0;
    for quantize in [false, true] {
        let expected = if quantize {
            "m-q8_0.gguf"
        } else {
            "m-f32.gguf"
        };
        for sig in ["INT", "TERM", "KILL"] {
            for round in 0..ROUNDS {
                let what = format!(
                    "{} SIG{sig} round {round}",
                    if quantize { "--quantize" } else { "convert" }
                );
                let out = dir.join(format!("out-{quantize}-{sig}-{round}"));
                let child = start(&ckpt, &out, quantize, false);
                // 0, 3, 6, … ms: from before the handler is installed to the final rename
                std::thread::sleep(Duration::from_millis(round * 3));
                signal(&child, sig);
                let o = child.wait_with_output().unwrap();
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(!err.contains("panicked"), "{what}: {err}");
                if sig == "KILL" {
                    // Whatever the killed run left, a rerun into the same directory finishes
                    // and removes it.
                    if names(&out).iter().any(|n| n.contains(".artemis")) {
                        stale_left += 1;
                    }
                    let rerun = start(&ckpt, &out, quantize, true)
                        .wait_with_output()
                        .unwrap();
                    assert!(
                        rerun.status.success(),
                        "{what}: rerun failed: {}",
                        String::from_utf8_lossy(&rerun.stderr)
                    );
                    assert!(
                        assert_nothing_or_complete(&out, expected, &what),
                        "{what}: rerun wrote nothing"
                    );
                } else if assert_nothing_or_complete(&out, expected, &what) {
                    completed += 1;
                } else {
                    interrupted += 1;
                    assert!(
                        !out.exists(),
                        "{what}: the output directory it created is left"
                    );
                    assert!(
                        o.status.code() == Some(130) || o.status.code().is_none(),
                        "{what}: {:?} {err}",
                        o.status
                    );
                }
            }
        }
    }
    eprintln!("SIGINT/SIGTERM: {interrupted} interrupted, {completed} finished before the signal; SIGKILL left temps {stale_left} times, all removed by the rerun");
    assert!(
        stale_left > 0,
        "no SIGKILL left a temp file: the rerun's cleanup was never exercised"
    );
    assert!(
        interrupted >= 40,
        "most signals must land mid-run ({interrupted} of 80 did); make the checkpoint bigger"
    );
}
