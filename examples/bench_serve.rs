//! Paired benchmark of two OpenAI-compatible servers already running on loopback (artemis-serve
//! and llama-server on the same model file), alternating them for ROUNDS rounds:
//!
//!   cargo run --release --example bench_serve -- OURS_URL THEIRS_URL [ROUNDS] [TOKENS]
//!
//! Per round and server: one streamed request (time to first token, generation tok/s after it),
//! then 4 and 8 concurrent requests (aggregate completion tok/s). Greedy, `ignore_eos`, fixed
//! token count. Prints each round and the median of the per-round ratios (ours / theirs) with
//! min–max.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PROMPT: &str =
    "Describe a calm lake at sunset, with mountains behind it, in a few sentences.";

/// (time to first token, generation tok/s, generation tok/s as the server reports it): a 1-token
/// request gives the time to first token; a TOKENS-token request then gives (TOKENS - 1) / (its
/// time - that), so empty pieces (ids past a synthetic tokenizer) count as tokens too. The
/// third figure is `timings.predicted_per_second` of the TOKENS-token reply (llama-server's
/// field, which artemis-serve fills the same way): generation inside the server, without HTTP.
async fn single(http: &reqwest::Client, base: &str, tokens: u32) -> (f64, f64, f64) {
    let run = |n: u32| {
        let http = http.clone();
        let base = base.to_string();
        async move {
            let t0 = Instant::now();
            let v: Value = http
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": n, "temperature": 0, "ignore_eos": true}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                v["usage"]["completion_tokens"].as_u64(),
                Some(n as u64),
                "{v}"
            );
            (
                t0.elapsed().as_secs_f64(),
                v["timings"]["predicted_per_second"].as_f64().unwrap_or(0.0),
            )
        }
    };
    let (t1, _) = run(1).await;
    let (tn, server_tps) = run(tokens).await;
    (
        t1 * 1e3,
        (tokens - 1) as f64 / (tn - t1).max(1e-9),
        server_tps,
    )
}

async fn concurrent(http: &reqwest::Client, base: &str, clients: usize, tokens: u32) -> f64 {
    let t0 = Instant::now();
    let mut hs = Vec::new();
    for i in 0..clients {
        let (http, base) = (http.clone(), base.to_string());
        hs.push(tokio::spawn(async move {
            let v: Value = http
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"messages": [{"role": "user", "content": format!("{PROMPT} ({i})")}], "max_tokens": tokens, "temperature": 0, "ignore_eos": true}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["usage"]["completion_tokens"].as_u64().unwrap_or(0)
        }));
    }
    let mut total = 0;
    for h in hs {
        total += h.await.unwrap();
    }
    total as f64 / t0.elapsed().as_secs_f64()
}

fn median_range(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.3}x ({:.3}–{:.3})", v[v.len() / 2], v[0], v[v.len() - 1])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (ours, theirs) = (args[1].clone(), args[2].clone());
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let tokens: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(64);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .unwrap();
    // warm both
    for b in [&ours, &theirs] {
        single(&http, b, 4).await;
    }
    let (mut r_ttft, mut r_tps, mut r_stps, mut r_c4, mut r_c8) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    println!("| round | server | TTFT ms | tok/s (1 client) | server-reported tok/s (1 client) | agg tok/s (4) | agg tok/s (8) |");
    println!("|---|---|---|---|---|---|---|");
    for round in 1..=rounds {
        let mut res = Vec::new();
        // alternate which goes first
        let order = if round % 2 == 1 {
            [(&ours, "artemis-serve"), (&theirs, "llama-server")]
        } else {
            [(&theirs, "llama-server"), (&ours, "artemis-serve")]
        };
        for (base, name) in order {
            let (ttft, tps, stps) = single(&http, base, tokens).await;
            let c4 = concurrent(&http, base, 4, tokens).await;
            let c8 = concurrent(&http, base, 8, tokens).await;
            println!("| {round} | {name} | {ttft:.0} | {tps:.2} | {stps:.2} | {c4:.2} | {c8:.2} |");
            res.push((name, ttft, tps, c4, c8, stps));
        }
        let o = res.iter().find(|r| r.0 == "artemis-serve").unwrap();
        let t = res.iter().find(|r| r.0 == "llama-server").unwrap();
        r_ttft.push(t.1 / o.1); // >1: ours answers sooner
        r_tps.push(o.2 / t.2);
        if o.5 > 0.0 && t.5 > 0.0 {
            r_stps.push(o.5 / t.5);
        }
        r_c4.push(o.3 / t.3);
        r_c8.push(o.4 / t.4);
    }
    println!();
    println!("median of per-round ratios (ours/theirs, min–max) over {rounds} rounds:");
    println!(
        "- time to first token (theirs/ours, >1 = ours sooner): {}",
        median_range(r_ttft)
    );
    println!("- single-request generation tok/s: {}", median_range(r_tps));
    if !r_stps.is_empty() {
        println!(
            "- single-request generation tok/s as each server reports it: {}",
            median_range(r_stps)
        );
    }
    println!("- aggregate tok/s, 4 clients: {}", median_range(r_c4));
    println!("- aggregate tok/s, 8 clients: {}", median_range(r_c8));
}
