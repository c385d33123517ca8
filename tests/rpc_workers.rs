//! llama.cpp RPC on loopback: two artemis-rpc-server workers take the decoder's layers
//! (`-ngl all --rpc a,b`) and the greedy output equals the official one; an unreachable worker, a
//! port that is not a worker, and a worker killed mid-run each end in one clear error line,
//! quickly.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use artemis_gguf::plan::OutType;
use common::*;

struct Worker(Child, u16);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn worker() -> Worker {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_artemis-rpc-server"))
        .args(["--port", &port.to_string(), "-t", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while artemis_gguf::rpc::probe(&format!("127.0.0.1:{port}"), Duration::from_millis(500))
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "worker on {port} never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Worker(child, port)
}

fn chat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_artemis-chat"))
}

#[test]
fn two_loopback_workers_give_the_official_greedy_ids() {
    let out = temp_dir("rpc-two");
    let (dec, mm) = convert_fixture("tiny", &out, OutType::F32);
    let (a, b) = (worker(), worker());
    let golden = Golden::load("tiny");
    for name in ["img_square", "text"] {
        let case = golden.case(name);
        let question = {
            let p = &case.prompt;
            let start = p
                .rfind("<|vision_end|>")
                .map(|i| i + "<|vision_end|>".len())
                .unwrap_or_else(|| p.find("user\n").unwrap() + 5);
            p[start..p.find("<|im_end|>").unwrap()].to_string()
        };
        let mut cmd = chat();
        cmd.arg(&dec).arg("--mmproj").arg(mm.as_ref().unwrap());
        cmd.args([
            "--temp",
            "0",
            "-n",
            "16",
            "--json",
            "-t",
            "2",
            "-ngl",
            "all",
            "--rpc",
            &format!("127.0.0.1:{},127.0.0.1:{}", a.1, b.1),
            "-p",
            &question,
        ]);
        if let Some(img) = &case.image {
            cmd.arg("--image").arg(fixtures().join(img));
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let ids: Vec<i32> = serde_json::from_value(v["token_ids"].clone()).unwrap();
        assert_eq!(
            ids, case.greedy_ids,
            "{name}: greedy ids with the decoder on two RPC workers"
        );
    }
}

#[test]
fn an_unreachable_or_foreign_endpoint_is_one_line_naming_it() {
    let out = temp_dir("rpc-bad");
    let (dec, _) = convert_fixture("tiny", &out, OutType::F32);
    // nothing listens on this port
    let port = free_port();
    let t0 = Instant::now();
    let mut cmd = chat();
    cmd.arg(&dec).args([
        "-p",
        "hi",
        "-n",
        "2",
        "-ngl",
        "all",
        "--rpc",
        &format!("127.0.0.1:{port}"),
    ]);
    expect_one_line_error(cmd, &[&format!("--rpc 127.0.0.1:{port}"), "cannot connect"]);
    assert!(t0.elapsed() < Duration::from_secs(10));
    // something that is not a worker: an HTTP-ish listener that closes at once
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p2 = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            drop(s);
        }
    });
    let mut cmd = chat();
    cmd.arg(&dec).args([
        "-p",
        "hi",
        "-n",
        "2",
        "-ngl",
        "all",
        "--rpc",
        &format!("127.0.0.1:{p2}"),
    ]);
    expect_one_line_error(cmd, &[&format!("--rpc 127.0.0.1:{p2}"), "handshake"]);
    let mut cmd = chat();
    cmd.arg(&dec).args(["-p", "hi", "--rpc", "nonsense"]);
    expect_one_line_error(cmd, &["--rpc nonsense", "HOST:PORT"]);
}

#[test]
fn a_worker_killed_mid_run_ends_the_run_with_a_clear_error() {
    let out = temp_dir("rpc-kill");
    let (dec, _) = convert_fixture("tiny", &out, OutType::F32);
    let mut w = worker();
    // interactive chat: the model loads onto the worker, then we kill it and ask a question
    let mut child = chat()
        .arg(&dec)
        .args([
            "-n",
            "64",
            "--temp",
            "0",
            "-t",
            "2",
            "-ngl",
            "all",
            "--rpc",
            &format!("127.0.0.1:{}", w.1),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "Hello there.").unwrap();
    std::thread::sleep(Duration::from_millis(1500)); // first turn answered over RPC
    let _ = w.0.kill();
    let _ = w.0.wait();
    let _ = writeln!(stdin, "And now?");
    let _ = stdin.flush();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "chat hung after its worker died"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("RPC") && !err.contains("panicked"), "{err}");
}

#[test]
fn tensor_split_places_the_layers_by_share_and_refuses_bad_shares() {
    let out = temp_dir("rpc-split");
    let (dec, _) = convert_fixture("tiny", &out, OutType::F32);
    let (a, b) = (worker(), worker());
    let rpc = format!("127.0.0.1:{},127.0.0.1:{}", a.1, b.1);
    let run = |split: &str| {
        chat()
            .arg(&dec)
            .args([
                "-p", "Hello", "-n", "4", "--temp", "0", "-t", "2", "-ngl", "all",
            ])
            .args(["--rpc", &rpc, "--tensor-split", split, "--verbose"])
            .output()
            .unwrap()
    };
    // llama.cpp names the added workers RPC0, RPC1 in --rpc order
    let devices = |split: &str| -> Vec<String> {
        let o = run(split);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "--tensor-split {split}: {err}");
        err.lines()
            .filter_map(|l| l.split_once("assigned to device ").map(|(_, d)| d))
            .map(|d| d.split(',').next().unwrap().trim().to_string())
            .collect()
    };
    let all_first = devices("1,0");
    assert!(
        !all_first.is_empty() && all_first.iter().all(|d| d == "RPC0"),
        "{all_first:?}"
    );
    let all_second = devices("0,1");
    assert!(all_second.iter().all(|d| d == "RPC1"), "{all_second:?}");
    let both = devices("1,1");
    assert!(
        both.contains(&"RPC0".to_string()) && both.contains(&"RPC1".to_string()),
        "{both:?}"
    );
    for (split, needle) in [
        ("1,x", "not a number"),
        ("-1,1", "≥ 0"),
        ("0,0", "every share is 0"),
        ("1,1,1", "3 shares for 2 offload device"),
        ("inf,1", "finite"),
    ] {
        let o = run(split);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{split}: {err}");
        assert!(
            err.contains("--tensor-split") && err.contains(needle),
            "{split}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{split}: {err}");
    }
}
