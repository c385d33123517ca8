//! artemis-serve driven by a real OpenAI client (async-openai) and raw HTTP over loopback: image
//! chat (non-streamed and streamed) equals artemis-chat's greedy output, concurrent clients with
//! parallel sequences, a table of malformed requests each answered with its 4xx JSON error while
//! the server keeps serving, a disconnect freeing its sequence, and the API key.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::{
    ChatCompletionRequestMessageContentPartImageArgs,
    ChatCompletionRequestMessageContentPartTextArgs, ChatCompletionRequestUserMessageArgs,
    ChatCompletionRequestUserMessageContentPart, CreateChatCompletionRequestArgs, ImageUrlArgs,
};
use async_openai::Client;
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};

use artemis_gguf::plan::OutType;
use common::*;

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dec: &Path, mm: Option<&Path>, extra: &[&str]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_artemis-serve"));
    cmd.arg(dec)
        .args(["--port", "0", "-t", "2"])
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    if let Some(mm) = mm {
        cmd.arg("--mmproj").arg(mm);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("artemis-serve: listening on ") {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("server did not start");
    let server = Server { child, base };
    let started = Instant::now();
    loop {
        if get_status(&server.base, "/health") == Some(200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server never became healthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// The status of a plain blocking GET (readiness polling without an async runtime).
fn get_status(base: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = base.strip_prefix("http://")?;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_whitespace().nth(1)?.parse().ok()
}

fn converted(tag: &str) -> (PathBuf, PathBuf) {
    let out = temp_dir(&format!("serve-{tag}"));
    let (dec, mm) = convert_fixture("tiny", &out, OutType::F32);
    (dec, mm.unwrap())
}

fn client(base: &str, key: &str) -> Client<OpenAIConfig> {
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{base}/v1"))
            .with_api_key(key),
    )
}

const QUESTION: &str = "What shapes and colors do you see?";

fn data_url(path: &Path) -> String {
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(path).unwrap())
    )
}

/// POSTs a chat completion body; (status, JSON reply).
async fn post_chat(http: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn image_request(
    url: &str,
    stream: bool,
    max_tokens: u32,
) -> async_openai::types::CreateChatCompletionRequest {
    let parts: Vec<ChatCompletionRequestUserMessageContentPart> = vec![
        ChatCompletionRequestMessageContentPartImageArgs::default()
            .image_url(ImageUrlArgs::default().url(url).build().unwrap())
            .build()
            .unwrap()
            .into(),
        ChatCompletionRequestMessageContentPartTextArgs::default()
            .text(QUESTION)
            .build()
            .unwrap()
            .into(),
    ];
    CreateChatCompletionRequestArgs::default()
        .model("tiny")
        .messages([ChatCompletionRequestUserMessageArgs::default()
            .content(parts)
            .build()
            .unwrap()
            .into()])
        .temperature(0.0)
        .max_completion_tokens(max_tokens)
        .stream(stream)
        .build()
        .unwrap()
}

/// artemis-chat's greedy text for the same image and prompt (thinking included).
fn chat_reference(dec: &Path, mm: &Path, image: &Path, n: u32) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_artemis-chat"))
        .arg(dec)
        .arg("--mmproj")
        .arg(mm)
        .arg("--image")
        .arg(image)
        .args([
            "-p",
            QUESTION,
            "--temp",
            "0",
            "-n",
            &n.to_string(),
            "--json",
            "--keep-thinking",
            "-t",
            "2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["text"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_chat_through_the_openai_client_equals_artemis_chat() {
    let (dec, mm) = converted("eq");
    let image = fixtures().join("images/square_64.png");
    let want = chat_reference(&dec, &mm, &image, 16);
    let server = start(&dec, Some(&mm), &["--parallel", "1"]);
    let c = client(&server.base, "unused");
    let url = data_url(&image);
    // non-streamed: the raw JSON (reasoning_content is not in async-openai's types)
    let raw: Value = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&image_request(&url, false, 16))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let msg = &raw["choices"][0]["message"];
    let got = format!(
        "{}{}",
        msg["reasoning_content"].as_str().unwrap_or(""),
        msg["content"].as_str().unwrap_or("")
    );
    assert_eq!(got, want, "greedy server text = artemis-chat --json text");
    assert_eq!(raw["usage"]["completion_tokens"], 16);
    // the same through the client's types
    let resp = c
        .chat()
        .create(image_request(&url, false, 16))
        .await
        .unwrap();
    assert_eq!(resp.choices.len(), 1);
    assert_eq!(resp.usage.as_ref().unwrap().completion_tokens, 16);
    // streamed through the client: the deltas add up to the same text
    let mut stream = c
        .chat()
        .create_stream(image_request(&url, true, 16))
        .await
        .unwrap();
    let mut streamed = String::new();
    let mut finish = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for ch in &chunk.choices {
            if let Some(t) = &ch.delta.content {
                streamed.push_str(t);
            }
            if ch.finish_reason.is_some() {
                finish = ch.finish_reason;
            }
        }
    }
    assert!(finish.is_some(), "a finish chunk");
    assert_eq!(
        streamed,
        msg["content"].as_str().unwrap_or(""),
        "streamed content = non-streamed content"
    );
    // streamed raw: reasoning deltas + content deltas = the reference, usage chunk last
    let body = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": url}, {"type": "text", "text": QUESTION}]}], "temperature": 0, "max_tokens": 16, "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "role chunk first"
    );
    let usage = chunks.last().unwrap();
    assert!(
        usage["choices"].as_array().unwrap().is_empty()
            && usage["usage"]["completion_tokens"] == 16,
        "usage chunk last: {usage}"
    );
    let finish_chunk = &chunks[chunks.len() - 2];
    assert_eq!(finish_chunk["choices"][0]["finish_reason"], "length");
    let text: String = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap().iter())
        .map(|ch| {
            format!(
                "{}{}",
                ch["delta"]["reasoning_content"].as_str().unwrap_or(""),
                ch["delta"]["content"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(text, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_clients_on_four_sequences_all_get_complete_answers() {
    let (dec, mm) = converted("conc");
    let server = start(&dec, Some(&mm), &["--parallel", "4"]);
    let url = data_url(&fixtures().join("images/rect_84x56.png"));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = client(&server.base, "x");
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let r = c
                    .chat()
                    .create(image_request(&url, false, 12))
                    .await
                    .unwrap();
                (
                    r.choices[0].finish_reason.is_some(),
                    r.usage.unwrap().completion_tokens,
                )
            } else {
                let mut s = c
                    .chat()
                    .create_stream(image_request(&url, true, 12))
                    .await
                    .unwrap();
                let mut done = false;
                while let Some(ch) = s.next().await {
                    done |= ch
                        .unwrap()
                        .choices
                        .iter()
                        .any(|c| c.finish_reason.is_some());
                }
                (done, 12)
            }
        }));
    }
    for t in tasks {
        let (finished, n) = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .unwrap()
            .unwrap();
        assert!(finished && n == 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_requests_get_their_4xx_json_error_and_the_server_keeps_serving() {
    let (dec, mm) = converted("bad");
    let server = start(
        &dec,
        Some(&mm),
        &["--parallel", "2", "--body-limit", "200000", "-c", "256"],
    );
    let http = reqwest::Client::new();
    let good_png = data_url(&fixtures().join("images/square_64.png"));
    let png = std::fs::read(fixtures().join("images/square_64.png")).unwrap();
    let truncated = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png[..png.len() / 2])
    );
    let text_as_image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(b"not an image at all")
    );
    // a PNG header declaring 60000 x 60000 pixels: refused from the header, never decoded
    let mut bomb = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    bomb.extend_from_slice(&60000u32.to_be_bytes());
    bomb.extend_from_slice(&60000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let bomb = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bomb)
    );
    let msg = |content: Value| json!({"messages": [{"role": "user", "content": content}]});
    let img = |url: &str| {
        msg(
            json!([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "hi"}]),
        )
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("not JSON", "{\"messages\": [".into(), 400, "invalid_json"),
        ("array body", "[1, 2]".into(), 400, "invalid_value"),
        ("no messages", json!({"model": "x"}).to_string(), 400, "missing_field"),
        ("messages not a list", json!({"messages": "hi"}).to_string(), 400, "invalid_value"),
        ("empty messages", json!({"messages": []}).to_string(), 400, "invalid_value"),
        ("unknown role", json!({"messages": [{"role": "wizard", "content": "x"}]}).to_string(), 400, "invalid_value"),
        ("content a number", msg(json!(42)).to_string(), 400, "invalid_value"),
        ("negative max_tokens", json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}).to_string(), 400, "invalid_value"),
        ("max_tokens a string", json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}).to_string(), 400, "invalid_value"),
        ("n = 2", json!({"messages": [{"role": "user", "content": "x"}], "n": 2}).to_string(), 400, "invalid_value"),
        ("temperature 7", json!({"messages": [{"role": "user", "content": "x"}], "temperature": 7}).to_string(), 400, "invalid_value"),
        ("stream a string", json!({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}).to_string(), 400, "invalid_value"),
        ("audio part", msg(json!([{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}])).to_string(), 400, "invalid_value"),
        ("bad base64", img("data:image/png;base64,@@@@").to_string(), 400, "invalid_base64"),
        ("text as an image", img(&text_as_image).to_string(), 400, "invalid_image"),
        ("truncated PNG", img(&truncated).to_string(), 400, "invalid_image"),
        ("decompression bomb header", img(&bomb).to_string(), 400, "invalid_image"),
        ("http URL", img("http://example.com/cat.png").to_string(), 400, "unsupported_image_url"),
        ("file URL", img("file:///etc/passwd").to_string(), 400, "unsupported_image_url"),
        ("prompt over the context", msg(json!("word ".repeat(2000))).to_string(), 400, "context_length_exceeded"),
        ("over the body limit", img(&format!("{good_png}{}", "A".repeat(300_000))).to_string(), 413, "body_too_large"),
        ("stop of 5 strings", json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}).to_string(), 400, "invalid_value"),
        ("logprobs asked for", json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 2}).to_string(), 400, "unsupported_feature"),
        ("tools given", json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]}).to_string(), 400, "unsupported_feature"),
        ("JSON mode", json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}).to_string(), 400, "unsupported_feature"),
        ("logit_bias given", json!({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"42": -100}}).to_string(), 400, "unsupported_feature"),
        ("suffix given", json!({"messages": [{"role": "user", "content": "x"}], "suffix": "end"}).to_string(), 400, "unsupported_feature"),
        ("best_of 2", json!({"messages": [{"role": "user", "content": "x"}], "best_of": 2}).to_string(), 400, "unsupported_feature"),
        ("chat_template_kwargs not an object", json!({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": true}).to_string(), 400, "invalid_value"),
        ("chat_template_kwargs replacing messages", json!({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"messages": []}}).to_string(), 400, "invalid_value"),
    ];
    assert!(cases.len() >= 15);
    for (name, body, status, code) in &cases {
        let r = http
            .post(format!("{}/v1/chat/completions", server.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), *status, "{name}");
        let v: Value = r
            .json()
            .await
            .unwrap_or_else(|e| panic!("{name}: error body is not JSON: {e}"));
        assert_eq!(v["error"]["code"], *code, "{name}: {v}");
        assert!(
            v["error"]["message"].is_string() && v["error"]["type"].is_string(),
            "{name}: {v}"
        );
        // still serving
        assert_eq!(
            http.get(format!("{}/health", server.base))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "after {name}"
        );
    }
    let r = http
        .get(format!("{}/v1/nope", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let ok = client(&server.base, "x")
        .chat()
        .create(image_request(&good_png, false, 4))
        .await
        .unwrap();
    assert_eq!(ok.usage.unwrap().completion_tokens, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_disconnects_mid_stream_frees_its_sequence() {
    let (dec, mm) = converted("disc");
    let server = start(&dec, Some(&mm), &["--parallel", "1", "-c", "2048"]);
    let http = reqwest::Client::new();
    let body = json!({"messages": [{"role": "user", "content": "Tell me about the quick brown fox."}], "temperature": 0, "stream": true});
    let r = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut s = r.bytes_stream();
    let _ = s.next().await;
    let _ = s.next().await;
    drop(s); // disconnect with ~2000 tokens still to go
             // the only sequence must come free: a new request completes promptly
    let t0 = Instant::now();
    let ok = tokio::time::timeout(
        Duration::from_secs(30),
        client(&server.base, "x").chat().create(image_request(
            &data_url(&fixtures().join("images/square_64.png")),
            false,
            4,
        )),
    )
    .await;
    assert!(ok.is_ok(), "the disconnected stream kept the sequence");
    ok.unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(30));
    let m = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("artemis_active_sequences 0") || m.contains("artemis_active_sequences 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_key_is_enforced_except_on_health_and_models() {
    let (dec, _) = converted("key");
    let server = start(&dec, None, &["--api-key", "s3cret"]);
    let http = reqwest::Client::new();
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let r = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let r = http
        .post(format!("{}/v1/chat/completions", server.base))
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/v1/chat/completions", server.base))
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // /metrics is behind the key too; /health and the model list are not (below)
    let metrics = |key: Option<&'static str>| {
        let mut req = http.get(format!("{}/metrics", server.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401);
    assert_eq!(metrics(Some("s3cret")).await.unwrap().status(), 200);
    // the scheme is case-insensitive, and X-Api-Key is accepted as by llama-server
    for (header, value, want) in [
        ("authorization", "bearer s3cret", 200),
        ("authorization", "BEARER s3cret", 200),
        ("x-api-key", "s3cret", 200),
        ("x-api-key", "s3cre", 401),
        ("authorization", "Basic s3cret", 401),
        ("authorization", "Bearer s3cret-and-more", 401),
    ] {
        let r = http
            .post(format!("{}/v1/chat/completions", server.base))
            .header(header, value)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{header}: {value}");
    }
    assert_eq!(
        http.get(format!("{}/health", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let models: Value = http
        .get(format!("{}/v1/models", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["input_modalities"], json!(["text"]));
    // text completions
    let r: Value = http
        .post(format!("{}/v1/completions", server.base))
        .bearer_auth("s3cret")
        .json(&json!({"prompt": "The quick brown fox", "max_tokens": 3, "temperature": 0}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["object"], "text_completion");
    assert_eq!(r["usage"]["completion_tokens"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follow_up_turn_reuses_the_cached_image_prefix() {
    let (dec, mm) = converted("reuse");
    let server = start(&dec, Some(&mm), &["--parallel", "2"]);
    let http = reqwest::Client::new();
    let url = data_url(&fixtures().join("images/wide_300x120.png"));
    let user = json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]});
    let first: Value = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&json!({"messages": [user.clone()], "temperature": 0, "max_tokens": 8}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p1 = first["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    let answer = first["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let second: Value = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&json!({"messages": [user, {"role": "assistant", "content": answer}, {"role": "user", "content": "Tell me more."}], "temperature": 0, "max_tokens": 8}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    // the whole first prompt up to the assistant's turn (image included: 36 image tokens here)
    assert!(
        cached >= p1 - 4 && cached > 36,
        "cached {cached} of a first prompt of {p1}: {second}"
    );
    // and the reply is the one a fresh server computes from scratch
    let fresh_server = start(&dec, Some(&mm), &["--parallel", "1"]);
    let turn2 = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]}, {"role": "assistant", "content": answer}, {"role": "user", "content": "Tell me more."}], "temperature": 0, "max_tokens": 8});
    let fresh: Value = http
        .post(format!("{}/v1/chat/completions", fresh_server.base))
        .json(&turn2)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fresh["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        fresh["choices"][0]["message"], second["choices"][0]["message"],
        "reused prefix = fresh evaluation"
    );
}

/// More conversations than sequences: conversation A's sequence goes to B, and when A comes back
/// its KV state (image included) is restored from the host-memory prompt cache instead of being
/// evaluated again; with `--cache-ram 0` it is evaluated again. Both give the same reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_that_lost_its_sequence_is_restored_from_the_prompt_cache() {
    let (dec, mm) = converted("prompt_cache");
    let http = reqwest::Client::new();
    let url = data_url(&fixtures().join("images/wide_300x120.png"));
    let a = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": QUESTION}]}], "temperature": 0, "max_tokens": 8});
    let b = json!({"messages": [{"role": "user", "content": "Tell me a story about a fox in the snow."}], "temperature": 0, "max_tokens": 8});
    let mut replies = Vec::new();
    for cache in ["8192", "0"] {
        let server = start(&dec, Some(&mm), &["--parallel", "1", "--cache-ram", cache]);
        let ask = |body: &Value| {
            let (http, base, body) = (http.clone(), server.base.clone(), body.clone());
            async move { post_chat(&http, &base, &body).await.1 }
        };
        let first = ask(&a).await;
        let other = ask(&b).await;
        assert!(
            other["choices"][0]["message"]["content"].is_string(),
            "{other}"
        );
        let again = ask(&a).await;
        let p1 = first["usage"]["prompt_tokens"].as_u64().unwrap();
        let cached = again["usage"]["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap();
        let metrics = http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if cache == "0" {
            // only the template's opening is shared with B
            assert!(
                cached < 36,
                "cached {cached} without a prompt cache: {again}"
            );
            assert!(
                metrics.contains("artemis_prompt_cache_hits_total 0\n"),
                "{metrics}"
            );
        } else {
            assert!(
                cached >= p1 - 4 && cached > 36,
                "cached {cached} of a prompt of {p1}: {again}"
            );
            assert!(
                metrics.contains("artemis_prompt_cache_hits_total 1\n"),
                "{metrics}"
            );
        }
        assert_eq!(
            first["choices"][0]["message"], again["choices"][0]["message"],
            "cache {cache}: the restored conversation answers as the first time"
        );
        replies.push(again["choices"][0]["message"].clone());
    }
    assert_eq!(replies[0], replies[1], "restored = evaluated again");
}

/// Prompts of new requests share each decode with the tokens being generated, split over several
/// steps when they do not fit (`-b 16`): every answer equals the one the request gets alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prompts_batched_with_generation_answer_as_when_alone() {
    let (dec, _) = converted("batched");
    let http = reqwest::Client::new();
    let prompts: Vec<String> = [
        "Hi.",
        "What is the capital of France? Answer in one word.",
        "Tell me a story about a fox in the snow, with a river, a mill and an old miller who talks to the birds every morning.",
        "Count: one two three four five six seven eight nine ten eleven twelve.",
        "Why?",
        "Describe a calm lake at sunset, with mountains behind it, in a few sentences.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ask = |base: String, p: String| {
        let http = http.clone();
        async move {
            let body = json!({"messages": [{"role": "user", "content": p}], "temperature": 0, "max_tokens": 10, "ignore_eos": true});
            let (_, v) = post_chat(&http, &base, &body).await;
            assert_eq!(v["usage"]["completion_tokens"], 10, "{v}");
            v["choices"][0]["message"].clone()
        }
    };
    let alone = start(&dec, None, &["--parallel", "1"]);
    let mut expected = Vec::new();
    for p in &prompts {
        expected.push(ask(alone.base.clone(), p.clone()).await);
    }
    // per-sequence KV buffers (llama.cpp's default) and one shared buffer (--kv-unified)
    for unified in [false, true] {
        let mut args = vec!["--parallel", "4", "-b", "16", "-c", "256"];
        if unified {
            args.push("--kv-unified");
        }
        let shared = start(&dec, None, &args);
        let tasks: Vec<_> = prompts
            .iter()
            .map(|p| tokio::spawn(ask(shared.base.clone(), p.clone())))
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(120), t)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                got, expected[i],
                "kv_unified {unified}, prompt {i}: {:?}",
                prompts[i]
            );
        }
    }
}

/// A loopback image host for the URL tests: a PNG, the same behind a redirect, a redirect loop,
/// an oversized body (declared and streamed without a length), a slow answer, a 404 and text.
async fn image_host(png: Vec<u8>) -> String {
    use axum::body::Body;
    use axum::response::{IntoResponse, Redirect};
    use axum::routing::get;
    let png = std::sync::Arc::new(png);
    let p1 = png.clone();
    let app = axum::Router::new()
        .route("/img.png", get(move || async move { p1.to_vec() }))
        .route("/moved", get(|| async { Redirect::temporary("/img.png") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route("/big.png", get(|| async { vec![0u8; 300_000] }))
        .route(
            "/stream.png",
            get(|| async {
                let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(vec![0u8; 10_000]));
                Body::from_stream(tokio_stream::iter(chunks))
            }),
        )
        .route(
            "/slow.png",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(8)).await;
                "late"
            }),
        )
        .route("/text.png", get(|| async { "not an image" }))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no").into_response() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// `--allow-image-urls`: an image fetched from a URL (directly or through a redirect) gives the
/// answer the same image gives as a data: URL; every fetch that breaks a limit or fails is a 400
/// naming the field and the cause, and the server keeps serving. Without the flag URLs are a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_urls_are_fetched_only_when_allowed_and_within_limits() {
    let (dec, mm) = converted("urls");
    let png_path = fixtures().join("images/wide_300x120.png");
    let host = image_host(std::fs::read(&png_path).unwrap()).await;
    let http = reqwest::Client::new();
    let body = |url: &str| json!({"messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": url}}]}], "temperature": 0, "max_tokens": 6});
    let post = |base: String, b: Value| {
        let http = http.clone();
        async move { post_chat(&http, &base, &b).await }
    };
    let closed = start(&dec, Some(&mm), &[]);
    let (status, v) = post(closed.base.clone(), body(&format!("{host}/img.png"))).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("unsupported_image_url")),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-image-urls"),
        "{v}"
    );

    // --allow-image-urls alone fetches from public addresses only: the loopback image host is
    // refused whether named by a literal, by a name that resolves to loopback, or by IPv6, and
    // so is the cloud metadata address, before any connection is tried
    let public_only = start(&dec, Some(&mm), &["--allow-image-urls"]);
    let named = host.replace("127.0.0.1", "localhost");
    for url in [
        format!("{host}/img.png"),
        format!("{named}/img.png"),
        format!("{host}/moved").replace("127.0.0.1", "[::ffff:127.0.0.1]"),
        "http://[::1]:9/img.png".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.255.255.1/img.png".to_string(),
    ] {
        let t0 = Instant::now();
        let (status, v) = post(public_only.base.clone(), body(&url)).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("image_url_forbidden")),
            "{url}: {v}"
        );
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("--image-url-allow-private"), "{message}");
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "{url}: {:?}",
            t0.elapsed()
        );
    }
    drop(public_only);

    let server = start(
        &dec,
        Some(&mm),
        &[
            "--allow-image-urls",
            "--image-url-allow-private",
            "--image-url-max-bytes",
            "100000",
            "--image-url-timeout",
            "2",
        ],
    );
    let (status, inline) = post(server.base.clone(), body(&data_url(&png_path))).await;
    assert_eq!(status, 200, "{inline}");
    for path in ["/img.png", "/moved"] {
        let (status, v) = post(server.base.clone(), body(&format!("{host}{path}"))).await;
        assert_eq!(status, 200, "{path}: {v}");
        assert_eq!(
            v["choices"][0]["message"], inline["choices"][0]["message"],
            "{path}"
        );
        assert_eq!(
            v["usage"]["prompt_tokens"], inline["usage"]["prompt_tokens"],
            "{path}"
        );
    }
    let refused: [(&str, &str, &str); 7] = [
        ("/loop", "image_url_fetch_failed", "redirect"),
        ("/big.png", "image_too_large", "100000"),
        ("/stream.png", "image_too_large", "100000"),
        ("/slow.png", "image_url_fetch_failed", "longer than 2 s"),
        ("/missing.png", "image_url_fetch_failed", "404"),
        ("/text.png", "invalid_image", ""),
        ("file:///etc/passwd", "unsupported_image_url", "file"),
    ];
    for (path, code, needle) in refused {
        let url = if path.starts_with('/') {
            format!("{host}{path}")
        } else {
            path.to_string()
        };
        let t0 = Instant::now();
        let (status, v) = post(server.base.clone(), body(&url)).await;
        assert_eq!(status, 400, "{path}: {v}");
        assert_eq!(v["error"]["code"], code, "{path}: {v}");
        assert_eq!(v["error"]["param"], "messages[0].content[1]", "{path}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{path}: {message}");
        assert!(
            t0.elapsed() < Duration::from_secs(6),
            "{path} took {:?}",
            t0.elapsed()
        );
        assert_eq!(
            get_status(&server.base, "/health"),
            Some(200),
            "after {path}"
        );
    }
    // an unreachable host is a 400 too
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, v) = post(
        server.base.clone(),
        body(&format!("http://127.0.0.1:{port}/x.png")),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("image_url_fetch_failed")),
        "{v}"
    );
    let (status, _) = post(server.base.clone(), body(&format!("{host}/img.png"))).await;
    assert_eq!(status, 200, "still serving");
}

/// A generation that ends on the sequence's context limit delivers all of its text: streamed
/// (where a tail that could start a stop string is held back) equals non-streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_by_the_context_limit_still_delivers_its_whole_text() {
    let (dec, _) = converted("ctx_end");
    let server = start(&dec, None, &["--parallel", "1", "-c", "64"]);
    let http = reqwest::Client::new();
    let body = |stream: bool| json!({"messages": [{"role": "user", "content": "Hi."}], "temperature": 0, "stop": ["§§§§§§§§§§§§"], "ignore_eos": true, "stream": stream});
    let (_, whole) = post_chat(&http, &server.base, &body(false)).await;
    assert_eq!(whole["choices"][0]["finish_reason"], "length", "{whole}");
    // llama-server's timings: evaluated + cached = the prompt, predicted = the completion
    let (t, u) = (&whole["timings"], &whole["usage"]);
    assert_eq!(t["predicted_n"], u["completion_tokens"], "{whole}");
    assert_eq!(
        t["prompt_n"].as_u64().unwrap() + t["cache_n"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap(),
        "{whole}"
    );
    assert!(t["predicted_per_second"].as_f64().unwrap() > 0.0, "{whole}");
    let sse = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (mut content, mut reasoning, mut finish) = (String::new(), String::new(), Value::Null);
    for line in sse.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if let Some(c) = v["choices"].get(0) {
            content.push_str(c["delta"]["content"].as_str().unwrap_or(""));
            reasoning.push_str(c["delta"]["reasoning_content"].as_str().unwrap_or(""));
            if !c["finish_reason"].is_null() {
                finish = c["finish_reason"].clone();
                assert_eq!(
                    v["timings"]["predicted_n"], whole["usage"]["completion_tokens"],
                    "{v}"
                );
            }
        }
    }
    assert_eq!(finish, "length");
    let m = &whole["choices"][0]["message"];
    assert_eq!(content, m["content"].as_str().unwrap_or(""));
    assert_eq!(reasoning, m["reasoning_content"].as_str().unwrap_or(""));
    assert!(!(content.is_empty() && reasoning.is_empty()), "{whole}");
}

/// What clients other than the OpenAI SDK send: a base URL without `/v1`, every optional field
/// spelled out with its default or `null`, a `developer` message, `detail` on an image. The
/// answer is the one the minimal request gets, and a wrong method is a JSON 405, not an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_send_defaults_nulls_or_no_v1_prefix_get_the_same_answer() {
    let (dec, mm) = converted("clients");
    let server = start(&dec, Some(&mm), &["--parallel", "1"]);
    let http = reqwest::Client::new();
    let url = data_url(&fixtures().join("images/square_64.png"));
    let minimal = json!({
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": QUESTION}]}],
        "temperature": 0, "max_tokens": 8});
    let (status, want) = post_chat(&http, &server.base, &minimal).await;
    assert_eq!(status, 200, "{want}");
    let mut verbose = json!({
        "model": "whatever-the-client-calls-it",
        "messages": [{"role": "user", "name": "u1", "content": [
            {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
            {"type": "text", "text": QUESTION}]}],
        "temperature": 0, "max_tokens": null, "max_completion_tokens": 8,
        "n": 1, "stream": false, "stream_options": null, "stop": null, "seed": null,
        "top_p": null, "frequency_penalty": 0, "presence_penalty": 0,
        "logprobs": false, "top_logprobs": null, "logit_bias": null, "tools": [],
        "tool_choice": "none", "parallel_tool_calls": null, "functions": null,
        "response_format": {"type": "text"}, "user": "someone", "metadata": {}, "store": false,
    });
    for path in ["/v1/chat/completions", "/chat/completions"] {
        let r = http
            .post(format!("{}{path}", server.base))
            .json(&verbose)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let got: Value = r.json().await.unwrap();
        assert_eq!(
            got["choices"][0]["message"]["content"], want["choices"][0]["message"]["content"],
            "{path}"
        );
        for n in ["prompt_tokens", "completion_tokens"] {
            assert_eq!(got["usage"][n], want["usage"][n], "{path}: {n}");
        }
    }
    // an empty developer message renders like an empty system one: it changes the prompt, so
    // only the status and shape are compared
    verbose["messages"]
        .as_array_mut()
        .unwrap()
        .insert(0, json!({"role": "developer", "content": "Be brief."}));
    let (status, v) = post_chat(&http, &server.base, &verbose).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["choices"][0]["message"]["content"].is_string());
    // OpenAI's vision API takes WebP and GIF too, and so do its clients
    for (file, mime) in [
        ("lossy_50x38.webp", "image/webp"),
        ("anim_trns_38x30.gif", "image/gif"),
    ] {
        let bytes = std::fs::read(fixtures().join("images").join(file)).unwrap();
        let url = format!(
            "data:{mime};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        );
        let body = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": QUESTION}]}], "max_tokens": 2});
        let (status, v) = post_chat(&http, &server.base, &body).await;
        assert_eq!(status, 200, "{file}: {v}");
    }
    for path in ["/models", "/v1/models", "/v1/health"] {
        let r = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r: Value = http
        .post(format!("{}/completions", server.base))
        .json(&json!({"prompt": "The quick brown fox", "max_tokens": 3, "echo": false, "suffix": null, "best_of": 1, "logprobs": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["usage"]["completion_tokens"], 3, "{r}");
    // several prompts, or token ids, get a 400 that says so
    for (prompt, needle) in [
        (json!(["a", "b"]), "one prompt per request"),
        (json!([1, 2, 3]), "token-id prompts"),
        (json!(["only one"]), ""),
    ] {
        let r = http
            .post(format!("{}/v1/completions", server.base))
            .json(&json!({"prompt": prompt, "max_tokens": 1}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        if needle.is_empty() {
            assert_eq!(status, 200, "{v}");
        } else {
            assert_eq!(status, 400, "{v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle),
                "{v}"
            );
        }
    }
    let r = http
        .post(format!("{}/v1/completions", server.base))
        .json(&json!({"prompt": "x", "echo": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "echo");
    let r = http
        .get(format!("{}/v1/chat/completions", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

/// CORS is off unless `--cors-origin` names an origin: then that origin's pages may read answers,
/// its preflights are answered without the API key, and other origins still get no headers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_origins_are_allowed_only_when_named() {
    let (dec, _) = converted("cors");
    let http = reqwest::Client::new();
    let allow = |r: &reqwest::Response| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string())
    };
    let closed = start(&dec, None, &["--api-key", "k"]);
    let r = http
        .get(format!("{}/v1/models", closed.base))
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), allow(&r)), (200, None));
    drop(closed);

    let server = start(
        &dec,
        None,
        &["--api-key", "k", "--cors-origin", "http://app.example"],
    );
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/chat/completions", server.base),
        )
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(allow(&preflight).as_deref(), Some("http://app.example"));
    let headers = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization") && headers.contains("content-type"));
    // the real request: allowed origin gets the header on success and on errors alike
    let body = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    for (key, want) in [("k", 200), ("wrong", 401)] {
        let r = http
            .post(format!("{}/v1/chat/completions", server.base))
            .header("origin", "http://app.example")
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
        assert_eq!(allow(&r).as_deref(), Some("http://app.example"));
    }
    let r = http
        .get(format!("{}/v1/models", server.base))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), allow(&r)), (200, None));
}
