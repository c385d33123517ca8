//! Hostile input (issue 10): every case of `tools/hostile_corpus.rs` ends with the expected exit
//! status, no panic, abort, signal death or hang, one error line naming the culprit, and nothing
//! left in the directory the command ran in.

mod common;

#[path = "../tools/hostile_corpus.rs"]
mod hostile_corpus;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use artemis_gguf::plan::OutType;
use common::*;
use hostile_corpus::{Bin, Case, Expect, Inputs};

/// No case may run longer than this: a hang is a failure, not a stuck test.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

fn binary(bin: Bin) -> &'static str {
    match bin {
        Bin::Convert => env!("CARGO_BIN_EXE_artemis-convert"),
        Bin::Quantize => env!("CARGO_BIN_EXE_artemis-quantize"),
        Bin::Chat => env!("CARGO_BIN_EXE_artemis-chat"),
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            // size and mtime too: a file written through a link changes, even if no name does
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let stamp = if ft.is_file() {
                format!(" {} {:?}", meta.len(), meta.modified().ok())
            } else {
                String::new()
            };
            out.push(format!(
                "{}{stamp}",
                e.path().strip_prefix(dir).unwrap().display()
            ));
            if ft.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Runs one case in an empty working directory; returns a description of what went wrong.
fn run(case: &Case, work: &Path, corpus: &Path, corpus_before: &[String]) -> Result<(), String> {
    let mut child = Command::new(binary(case.bin))
        .args(&case.args)
        .current_dir(work)
        .stdin(if case.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    if let Some(input) = &case.stdin {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.clone();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out_pipe = child.stdout.take().unwrap();
    let err_pipe = child.stderr.take().unwrap();
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let (out_t, err_t) = (read_all(Box::new(out_pipe)), read_all(Box::new(err_pipe)));
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if started.elapsed() > CASE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("hung for more than {CASE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = out_t.join();
    let stderr = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
    let Some(code) = status.code() else {
        return Err(format!("killed by a signal ({status}); stderr: {stderr}"));
    };
    if stderr.contains("panicked")
        || stderr.contains("GGML_ASSERT")
        || stderr.contains("overflowed its stack")
    {
        return Err(format!("crashed: {stderr}"));
    }
    let left = listing(work);
    let writes = matches!(case.expect, Expect::Writes(_));
    let temps = left
        .iter()
        .any(|l| l.contains(".artemis.tmp") || l.contains(".artemis-run-"));
    if temps || (!left.is_empty() && !writes) {
        return Err(format!(
            "left files behind in the working directory: {left:?}"
        ));
    }
    if listing(corpus) != corpus_before {
        return Err("changed the corpus directory".into());
    }
    match &case.expect {
        Expect::Error(needles) => {
            if code == 0 {
                return Err(format!("exit 0, expected an error; stderr: {stderr}"));
            }
            let lines: Vec<&str> = stderr.trim_end().lines().collect();
            if lines.len() != 1 {
                return Err(format!(
                    "expected one error line, got {}: {stderr}",
                    lines.len()
                ));
            }
            for n in needles {
                if !stderr.contains(n.as_str()) {
                    return Err(format!("error does not mention {n:?}: {stderr}"));
                }
            }
        }
        Expect::Usage(needles) => {
            let first = stderr.lines().next().unwrap_or("");
            if code != 2 || !first.starts_with("error: ") {
                return Err(format!(
                    "expected a usage error (exit 2, \"error: ...\"), got exit {code}: {stderr}"
                ));
            }
            for n in needles {
                if !first.contains(n.as_str()) {
                    return Err(format!("usage error does not mention {n:?}: {stderr}"));
                }
            }
        }
        Expect::Survives(needles) | Expect::Writes(needles) => {
            if code != 0 {
                return Err(format!("exit {code}, expected 0; stderr: {stderr}"));
            }
            for n in needles {
                if !stderr.contains(n.as_str()) {
                    return Err(format!("stderr does not mention {n:?}: {stderr}"));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn every_hostile_case_fails_cleanly_or_survives() {
    let root = temp_dir("hostile");
    let (dec, mm) = convert_fixture("tiny", &root.join("converted"), OutType::F32);
    let inputs = Inputs {
        dec,
        mm: mm.unwrap(),
        tiny: fixtures().join("tiny"),
        image: fixtures().join("images/square_64.png"),
    };
    let corpus = root.join("corpus");
    let cases = hostile_corpus::generate(&corpus, &inputs);
    let corpus_before = listing(&corpus);
    let mut per_class: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let work = root.join(format!("work-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        *per_class.entry(case.class).or_default() += 1;
        if let Err(why) = run(case, &work, &corpus, &corpus_before) {
            failures.push(format!("[{}] {}: {why}", case.class, case.name));
        }
        let _ = std::fs::remove_dir_all(&work);
    }
    eprintln!("{} cases: {per_class:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_quantize_write_failure_names_the_output_and_leaves_nothing() {
    let root = temp_dir("hostile-write");
    let (dec, _) = convert_fixture("tiny", &root, OutType::F32);
    let out = root.join("q.gguf");
    let mut cmd = Command::new(binary(Bin::Quantize));
    cmd.arg(&dec).arg(&out).arg("q8_0");
    limit_file_size(&mut cmd, 200 << 10);
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && o.status.code().is_some(), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("q.gguf") && err.contains("writing the output failed"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("q.gguf"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&root);
}
