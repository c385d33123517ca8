//! artemis-serve: an OpenAI-compatible HTTP server over the same runtime as artemis-chat.
//!
//! HTTP (axum) threads parse and validate requests, decode and prepare images (the family's
//! official preprocessing, with the pixel budget checked from the header) and render the chat
//! template; one engine thread ([`scheduler`]) runs the model with `--parallel` sequences.

pub mod cors;
pub mod image_url;
pub mod metrics;
pub mod openai;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc::unbounded_channel;

use crate::chat::ChatTemplate;
use crate::engine::{EngineOptions, ImagePrep, VisionOptions};
use crate::scheduler::{
    Event, Job, ModelInfo, PreparedImage, Scheduler, SchedulerConfig, SubmitError,
};
pub use image_url::ImageUrlLimits;
use image_url::{ImageSource, UrlFetcher};
use metrics::Metrics;
use openai::{ApiError, Request, ThinkSplitter};

/// Everything `artemis-serve` is started with.
pub struct ServerConfig {
    pub model: PathBuf,
    pub mmproj: Option<PathBuf>,
    pub host: String,
    pub port: u16,
    pub parallel: usize,
    pub ctx_per_seq: u32,
    pub engine: EngineOptions,
    /// `--tensor-split` shares; empty = llama.cpp's default.
    pub tensor_split: Vec<f32>,
    pub vision: VisionOptions,
    pub api_key: Option<String>,
    pub alias: String,
    pub timeout: Duration,
    pub body_limit: usize,
    pub queue_limit: usize,
    /// Bytes of KV state the host-memory prompt cache may keep (0: none).
    pub cache_ram: usize,
    /// Most tokens per decode (`-b`).
    pub batch_size: u32,
    /// One KV buffer for all sequences (`--kv-unified`).
    pub kv_unified: bool,
    /// `--allow-image-urls` with its limits; None: `http(s)` image URLs are refused.
    pub image_urls: Option<ImageUrlLimits>,
    /// `--cors-origin`: origins whose pages may read answers (empty: no CORS headers).
    pub cors_origins: Vec<String>,
}

struct AppState {
    scheduler: Scheduler,
    metrics: Arc<Metrics>,
    info: tokio::sync::OnceCell<ModelInfo>,
    template: Option<ChatTemplate>,
    api_key: Option<String>,
    alias: String,
    timeout: Duration,
    /// `--allow-image-urls`: None refuses `http(s)` image URLs.
    fetcher: Option<UrlFetcher>,
}

type Shared = Arc<AppState>;

/// Binds, starts loading the model, and serves until ctrl-c. `on_bound` gets the bound address
/// (port 0 picks a free one).
pub async fn serve(cfg: ServerConfig, on_bound: impl FnOnce(SocketAddr)) -> Result<(), String> {
    let fetcher = match &cfg.image_urls {
        Some(limits) => Some(UrlFetcher::new(limits)?),
        None => None,
    };
    let template = ChatTemplate::from_gguf(&cfg.model).ok();
    let metrics = Arc::new(Metrics::default());
    let (scheduler, ready) = Scheduler::start(
        SchedulerConfig {
            model: cfg.model.clone(),
            mmproj: cfg.mmproj.clone(),
            engine: cfg.engine.clone(),
            tensor_split: cfg.tensor_split.clone(),
            vision: cfg.vision.clone(),
            parallel: cfg.parallel,
            ctx_per_seq: cfg.ctx_per_seq,
            queue_limit: cfg.queue_limit,
            cache_ram: cfg.cache_ram,
            batch_size: cfg.batch_size,
            kv_unified: cfg.kv_unified,
        },
        metrics.clone(),
    );
    let state = Arc::new(AppState {
        scheduler,
        metrics: metrics.clone(),
        info: tokio::sync::OnceCell::new(),
        template,
        api_key: cfg.api_key.clone(),
        alias: cfg.alias.clone(),
        timeout: cfg.timeout,
        fetcher,
    });
    let app = Router::new()
        // llama-server answers each path with and without /v1; clients configured with a bare
        // host as base URL depend on that
        .route("/health", get(health))
        .route("/v1/health", get(health))
        .route("/models", get(models))
        .route("/v1/models", get(models))
        .route("/metrics", get(metrics_text))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/completions", post(completions))
        .route("/v1/completions", post(completions))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .with_state(state.clone());
    let app = if cfg.cors_origins.is_empty() {
        app
    } else {
        app.layer(axum::middleware::from_fn_with_state(
            Arc::new(cors::CorsOrigins(cfg.cors_origins.clone())),
            cors::cors,
        ))
    };
    let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| {
            format!(
                "--host {} --port {}: cannot listen: {e}",
                cfg.host, cfg.port
            )
        })?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    on_bound(addr);
    // the model loads while the server already answers /health with 503
    let loaded = tokio::task::spawn_blocking(move || {
        ready
            .recv()
            .unwrap_or_else(|_| Err("the engine thread stopped".into()))
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let st = state.clone();
    let load_then_serve = async move {
        match loaded.await {
            Ok(Ok(info)) => {
                for w in &info.warnings {
                    eprintln!("artemis-serve: warning: {w}");
                }
                let _ = st.info.set(info);
                std::future::pending::<Result<(), String>>().await
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::select! {
        r = server => r.map_err(|e| e.to_string()),
        r = load_then_serve => r,
    }
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else {
        return Ok(());
    };
    // `Authorization: Bearer KEY` (the scheme is case-insensitive, RFC 9110) or, as llama-server
    // also accepts, `X-Api-Key: KEY`
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim());
    let x_api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let matches = |given: Option<&str>| given.is_some_and(|g| same_secret(g, key));
    if matches(bearer) || matches(x_api_key) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_api_key",
            "invalid or missing API key",
        ))
    }
}

/// Compares without stopping at the first differing byte, so the time taken does not tell a
/// client how much of a guessed key was right.
fn same_secret(given: &str, key: &str) -> bool {
    let (g, k) = (given.as_bytes(), key.as_bytes());
    g.len() == k.len() && g.iter().zip(k).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn respond(state: &AppState, r: Result<Response, ApiError>) -> Response {
    let resp = r.unwrap_or_else(IntoResponse::into_response);
    state.metrics.count_request(resp.status().as_u16());
    resp
}

async fn health(State(st): State<Shared>) -> Response {
    let resp = if st.metrics.ready.load(Ordering::SeqCst) && st.info.get().is_some() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_error",
            "loading",
            "the model is loading",
        )
        .into_response()
    };
    respond(&st, Ok(resp))
}

async fn models(State(st): State<Shared>) -> Response {
    let vision = st.info.get().is_some_and(|i| i.has_vision);
    let modalities: Vec<&str> = if vision {
        vec!["text", "image"]
    } else {
        vec!["text"]
    };
    let body = json!({"object": "list", "data": [{"id": st.alias, "object": "model", "created": openai::now(), "owned_by": "artemis-gguf", "input_modalities": modalities}]});
    respond(&st, Ok(Json(body).into_response()))
}

/// Behind the API key, as in llama-server: only `/health` and the model list are public.
async fn metrics_text(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let r = authorize(&st, &headers).map(|()| {
        let body = st.metrics.render();
        ([("content-type", "text/plain; version=0.0.4")], body).into_response()
    });
    respond(&st, r)
}

async fn not_found(State(st): State<Shared>) -> Response {
    respond(
        &st,
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "not_found",
            "no such endpoint",
        )),
    )
}

async fn method_not_allowed(State(st): State<Shared>, method: axum::http::Method) -> Response {
    respond(
        &st,
        Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on this endpoint"),
        )),
    )
}

fn parse_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                "the request body is over the server's limit",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_body",
                e.body_text(),
            )
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

async fn chat_completions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        authorize(&st, &headers)?;
        let v = parse_body(body)?;
        let req = openai::chat_request(&v)?;
        run(&st, req, true).await
    }
    .await;
    respond(&st, r)
}

async fn completions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let r = async {
        authorize(&st, &headers)?;
        let v = parse_body(body)?;
        let req = openai::completion_request(&v)?;
        run(&st, req, false).await
    }
    .await;
    respond(&st, r)
}

/// The bytes of each image: inline ones as they are, URLs fetched (or refused).
async fn image_bytes(
    st: &AppState,
    images: Vec<(String, ImageSource)>,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let mut out = Vec::with_capacity(images.len());
    for (param, src) in images {
        let bytes = match src {
            ImageSource::Inline(b) => b,
            ImageSource::Url(url) => match &st.fetcher {
                Some(f) => f.fetch(&url, &param).await?,
                None => {
                    return Err(ApiError {
                        code: "unsupported_image_url",
                        ..ApiError::invalid(
                            &param,
                            "this server does not fetch image URLs (start it with --allow-image-urls); send the image as a data: URL",
                        )
                    })
                }
            },
        };
        out.push((param, bytes));
    }
    Ok(out)
}

/// Decodes and prepares a request's images on a blocking thread (the family's processor).
fn prepare_images(
    images: Vec<(String, Vec<u8>)>,
    prep: Option<ImagePrep>,
) -> Result<Vec<PreparedImage>, ApiError> {
    images
        .into_iter()
        .map(|(param, bytes)| {
            let bad = |m: String| ApiError {
                code: "invalid_image",
                ..ApiError::invalid(&param, m)
            };
            let img = crate::preprocess::load_image_bytes(&bytes, "the image")
                .map_err(|e| bad(e.to_string()))?;
            let rgb = match &prep {
                Some(ImagePrep::SmartResize(p)) => {
                    crate::preprocess::preprocess(&img, p)
                        .map_err(|e| bad(e.to_string()))?
                        .resized
                }
                Some(ImagePrep::ResizeCrop {
                    shortest_edge,
                    crop,
                }) => crate::preprocess::resize_shortest_and_crop(&img, *shortest_edge, *crop)
                    .map_err(|e| bad(e.to_string()))?,
                None => img.to_rgb8(),
            };
            Ok(PreparedImage::new(
                rgb.width(),
                rgb.height(),
                rgb.into_raw(),
            ))
        })
        .collect()
}

async fn run(st: &Shared, req: Request, chat: bool) -> Result<Response, ApiError> {
    let info = st
        .info
        .get()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable_error",
                "loading",
                "the model is loading",
            )
        })?
        .clone();
    if !req.images.is_empty() && !info.has_vision {
        return Err(ApiError::invalid(
            "messages",
            "this server was started without --mmproj: images are not supported",
        ));
    }
    // render the prompt
    let (prompt, opens_think) = if chat {
        let template = st.template.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "no_template",
                "the model has no chat template; use /v1/completions",
            )
        })?;
        let rendered = template
            .render_with(&req.messages, true, &req.template_kwargs)
            .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
        let opens = rendered.trim_end().ends_with(openai::THINK_OPEN);
        let marked = match &info.placeholder {
            Some(p) => rendered.replace(p.as_str(), llama_cpp_2::mtmd::mtmd_default_marker()),
            None => rendered,
        };
        (marked, opens)
    } else {
        (req.prompt.clone().unwrap_or_default(), false)
    };
    let n_markers = prompt
        .matches(llama_cpp_2::mtmd::mtmd_default_marker())
        .count();
    if n_markers != req.images.len() {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "the chat template placed {n_markers} images but the request has {}",
                req.images.len()
            ),
        ));
    }
    let prep = info.prep.clone();
    let images = image_bytes(st, req.images).await?;
    let images = tokio::task::spawn_blocking(move || prepare_images(images, prep))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal",
                e.to_string(),
            )
        })??;
    let (tx, mut rx) = unbounded_channel();
    let job = Job {
        prompt,
        images,
        sampling: req.sampling.clone(),
        max_tokens: req.max_tokens,
        stop: req.stop.clone(),
        ignore_eos: req.ignore_eos,
        stream: req.stream,
        events: tx,
    };
    st.scheduler.submit(job).map_err(|e| match e {
        SubmitError::QueueFull => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "queue_full",
            "the server is busy (queue full); retry later",
        ),
        SubmitError::Stopped => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "stopped",
            "the engine stopped",
        ),
    })?;
    // the prompt is evaluated first: errors about it are still a 4xx
    let started = tokio::time::timeout(st.timeout, rx.recv())
        .await
        .map_err(|_| timeout_error())?;
    let (prompt_tokens, cached_tokens) = match started {
        Some(Event::Started {
            prompt_tokens,
            cached_tokens,
        }) => (prompt_tokens, cached_tokens),
        Some(Event::Failed { message, context }) => {
            return Err(if context {
                ApiError {
                    code: "context_length_exceeded",
                    ..ApiError::invalid("messages", message)
                }
            } else {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "engine_error",
                    message,
                )
            })
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "engine_error",
                "the engine ended the request",
            ))
        }
    };
    let id = format!("{}-{:x}", if chat { "chatcmpl" } else { "cmpl" }, rand_id());
    let model = st.alias.clone();
    let created = openai::now();
    if req.stream {
        let (sse_tx, sse_rx) = tokio::sync::mpsc::channel::<Result<SseEvent, Infallible>>(64);
        let timeout = st.timeout;
        tokio::spawn(async move {
            let chunk = |delta: Value, finish: Option<&str>| {
                if chat {
                    json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                } else {
                    json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": [{"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")), "finish_reason": finish, "logprobs": null}]})
                }
            };
            let send = |v: Value| {
                let tx = sse_tx.clone();
                async move {
                    tx.send(Ok(SseEvent::default().data(v.to_string())))
                        .await
                        .is_ok()
                }
            };
            if chat && !send(chunk(json!({"role": "assistant", "content": ""}), None)).await {
                return;
            }
            let mut split = ThinkSplitter::new(opens_think && chat);
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(ev)) => ev,
                    _ => return, // timeout or engine gone: dropping rx cancels the sequence
                };
                match ev {
                    Event::Text(t) => {
                        let (r, c) = split.push(&t, false);
                        if !r.is_empty()
                            && !send(chunk(json!({"reasoning_content": r}), None)).await
                        {
                            return;
                        }
                        if !c.is_empty() && !send(chunk(json!({"content": c}), None)).await {
                            return;
                        }
                    }
                    Event::Done {
                        reason,
                        prompt_tokens,
                        completion_tokens,
                        timings,
                    } => {
                        let (r, c) = split.push("", true);
                        if !r.is_empty() {
                            send(chunk(json!({"reasoning_content": r}), None)).await;
                        }
                        if !c.is_empty() {
                            send(chunk(json!({"content": c}), None)).await;
                        }
                        // llama-server puts its timings on the finishing chunk
                        let mut last = chunk(json!({}), Some(reason.as_str()));
                        last["timings"] =
                            openai::timings(cached_tokens, completion_tokens, &timings);
                        send(last).await;
                        if req.include_usage {
                            let obj = if chat {
                                "chat.completion.chunk"
                            } else {
                                "text_completion"
                            };
                            send(json!({"id": id, "object": obj, "created": created, "model": model, "choices": [], "usage": openai::usage(prompt_tokens, completion_tokens, cached_tokens)})).await;
                        }
                        let _ = sse_tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
                        return;
                    }
                    Event::Failed { message, .. } => {
                        send(json!({"error": {"message": message, "type": "server_error", "param": null, "code": "engine_error"}})).await;
                        return;
                    }
                    Event::Started { .. } => {}
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(sse_rx);
        return Ok(Sse::new(stream)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    // non-streamed: collect
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + st.timeout;
    let (reason, completion_tokens, timings) = loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return Err(timeout_error()),
            Ok(None) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "engine_error",
                    "the engine ended the request",
                ))
            }
            Ok(Some(Event::Text(t))) => text.push_str(&t),
            Ok(Some(Event::Done {
                reason,
                completion_tokens,
                timings,
                ..
            })) => break (reason, completion_tokens, timings),
            Ok(Some(Event::Failed { message, .. })) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "engine_error",
                    message,
                ))
            }
            Ok(Some(Event::Started { .. })) => {}
        }
    };
    let usage = openai::usage(prompt_tokens, completion_tokens, cached_tokens);
    let timings = openai::timings(cached_tokens, completion_tokens, &timings);
    let body = if chat {
        let mut split = ThinkSplitter::new(opens_think);
        let (mut r, mut c) = split.push(&text, false);
        let (r2, c2) = split.push("", true);
        r += &r2;
        c += &c2;
        let mut message = json!({"role": "assistant", "content": c});
        if opens_think || !r.is_empty() {
            message["reasoning_content"] = json!(r);
        }
        json!({"id": id, "object": "chat.completion", "created": created, "model": model, "choices": [{"index": 0, "message": message, "finish_reason": reason.as_str(), "logprobs": null}], "usage": usage, "timings": timings})
    } else {
        json!({"id": id, "object": "text_completion", "created": created, "model": model, "choices": [{"index": 0, "text": text, "finish_reason": reason.as_str(), "logprobs": null}], "usage": usage, "timings": timings})
    };
    Ok(Json(body).into_response())
}

fn timeout_error() -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "server_error",
        "timeout",
        "the request ran past the server's --timeout",
    )
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
