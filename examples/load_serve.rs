//! Load test for artemis-serve over loopback, bounded in count and time.
//!
//!   cargo run --release --example load_serve -- MODEL.gguf MMPROJ.gguf [REQUESTS] [CLIENTS]
//!
//! Starts `target/release/artemis-serve` on a free port with `--parallel 4`, warms it up, reads
//! its resident memory, then sends REQUESTS (default 500) requests from CLIENTS (default 16)
//! concurrent clients, 10 % of them malformed (rotating through bad JSON, bad base64, an image
//! over the pixel limit, an unknown role, n = 2), the rest image or text chat with a few tokens.
//! Reports status counts, latency percentiles, throughput and the resident memory after the run.
//! Exits non-zero on any 5xx, a crash, or memory more than 10 % above the warmed-up figure once
//! the prompt cache's own growth is set aside (the server runs with `--cache-ram 16`, so the
//! cache fills and evicts during the run; `/metrics` says how much it holds).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Bytes the server's host-memory prompt cache holds (bounded by `--cache-ram`; by design it
/// grows up to that bound, so it is not counted as growth).
async fn prompt_cache_bytes(http: &reqwest::Client, base: &str) -> u64 {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return 0,
    };
    text.lines()
        .find_map(|l| l.strip_prefix("artemis_prompt_cache_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: load_serve MODEL.gguf MMPROJ.gguf [REQUESTS] [CLIENTS]");
        std::process::exit(2);
    }
    let total: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);
    let clients: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(16);
    let exe = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("artemis-serve");
    let mut child = Command::new(&exe)
        .arg(&args[1])
        .arg("--mmproj")
        .arg(&args[2])
        .args([
            "--port",
            "0",
            "--parallel",
            "4",
            "-c",
            "1024",
            "-t",
            "2",
            "--queue-limit",
            "256",
            "--timeout",
            "120",
            // a small bound so that the cache fills and evicts during the run
            "--cache-ram",
            "16",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("artemis-serve (build it with cargo build --release)");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("artemis-serve: listening on ") {
                let _ = tx.send(a.to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server start");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let t0 = Instant::now();
    while http
        .get(format!("{base}/health"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "server never healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let png = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/images/rect_84x56.png"
    ))
    .unwrap();
    let url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    );
    let good = move |i: usize| {
        if i % 2 == 0 {
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Describe this image."}]}], "max_tokens": 8, "temperature": 0.7, "seed": i})
        } else {
            json!({"messages": [{"role": "user", "content": format!("Question {i}: what is the quick brown fox?")}], "max_tokens": 8, "stream": i % 4 == 1})
        }
        .to_string()
    };
    let bad = |i: usize| -> String {
        match i % 5 {
            0 => "{\"messages\": [".into(),
            1 => json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%"}}]}]}).to_string(),
            2 => {
                let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
                b.extend_from_slice(&50000u32.to_be_bytes());
                b.extend_from_slice(&50000u32.to_be_bytes());
                b.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&b))}}]}]}).to_string()
            }
            3 => json!({"messages": [{"role": "pirate", "content": "x"}]}).to_string(),
            _ => json!({"messages": [{"role": "user", "content": "x"}], "n": 2}).to_string(),
        }
    };
    // warm-up
    for i in 0..8 {
        let _ = http
            .post(format!("{base}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(good(i))
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
    }
    let rss_warm = rss_kib(pid);
    let cache_warm = prompt_cache_bytes(&http, &base).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);
    let mut handles = Vec::new();
    for _ in 0..clients {
        let (http, base, next) = (http.clone(), base.clone(), next.clone());
        let (good, bad) = (good.clone(), bad);
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total || Instant::now() > deadline {
                    break;
                }
                let body = if i % 10 == 9 { bad(i / 10) } else { good(i) };
                let t = Instant::now();
                let status = match http
                    .post(format!("{base}/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                out.push((status, t.elapsed().as_secs_f64() * 1e3));
            }
            out
        }));
    }
    let mut results = Vec::new();
    for h in handles {
        results.extend(h.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    let rss_after = rss_kib(pid);
    let cache_after = prompt_cache_bytes(&http, &base).await;
    // what the run added beyond the prompt cache's own (bounded) growth
    let rss_other = rss_after.saturating_sub(cache_after.saturating_sub(cache_warm) / 1024);
    let alive = child.try_wait().unwrap().is_none();
    let mut by_status = std::collections::BTreeMap::new();
    for (s, _) in &results {
        *by_status.entry(*s).or_insert(0) += 1;
    }
    let mut lat: Vec<f64> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, l)| *l)
        .collect();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "requests {} from {clients} clients in {secs:.1} s ({:.1} req/s)",
        results.len(),
        results.len() as f64 / secs
    );
    println!("status counts {by_status:?}");
    println!(
        "latency of 200s: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms",
        pct(0.5),
        pct(0.9),
        pct(0.99)
    );
    println!(
        "resident memory: {rss_warm} KiB after warm-up, {rss_after} KiB after the run ({:+.1} %); prompt cache {} -> {} KiB (limit 16 MiB); without the cache's growth {rss_other} KiB ({:+.1} %)",
        (rss_after as f64 / rss_warm.max(1) as f64 - 1.0) * 100.0,
        cache_warm / 1024,
        cache_after / 1024,
        (rss_other as f64 / rss_warm.max(1) as f64 - 1.0) * 100.0
    );
    println!("server alive after the run: {alive}");
    let _ = child.kill();
    let fivexx = by_status
        .iter()
        .filter(|(s, _)| **s >= 500 || **s == 0)
        .map(|(_, n)| n)
        .sum::<usize>();
    if fivexx > 0 || !alive || rss_other as f64 > rss_warm as f64 * 1.10 {
        eprintln!("FAILED: {fivexx} 5xx/transport errors, alive {alive}");
        std::process::exit(1);
    }
}
