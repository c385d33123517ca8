//! OpenAI request parsing (with errors a client can act on) and response shapes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::chat::{Message, Part};
use crate::engine::Sampling;

use super::image_url::ImageSource;

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, `code` a string.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: &'static str,
}

impl ApiError {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: "invalid_value",
        }
    }
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// A parsed chat or text completion request.
pub struct Request {
    pub messages: Vec<Message>,
    /// Raw text prompt (`/v1/completions`).
    pub prompt: Option<String>,
    /// Image sources in prompt order, with the JSON path for errors.
    pub images: Vec<(String, ImageSource)>,
    pub stream: bool,
    pub include_usage: bool,
    pub max_tokens: Option<usize>,
    pub sampling: Sampling,
    pub stop: Vec<String>,
    /// `chat_template_kwargs`: extra template variables (`enable_thinking`, …), passed as
    /// `apply_chat_template(**kwargs)` passes them.
    pub template_kwargs: serde_json::Map<String, Value>,
    /// llama-server's extension: generate `max_tokens` tokens even past end-of-generation.
    pub ignore_eos: bool,
}

fn num(v: &Value, param: &str, lo: f64, hi: f64) -> Result<Option<f64>, ApiError> {
    match v.get(param) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_f64() {
            Some(f) if f.is_finite() && (lo..=hi).contains(&f) => Ok(Some(f)),
            Some(_) => Err(ApiError::invalid(
                param,
                format!("{param} must be between {lo} and {hi}"),
            )),
            None => Err(ApiError::invalid(
                param,
                format!("{param} must be a number"),
            )),
        },
    }
}

fn int(v: &Value, param: &str, lo: i64, hi: i64) -> Result<Option<i64>, ApiError> {
    match v.get(param) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_i64() {
            Some(i) if (lo..=hi).contains(&i) => Ok(Some(i)),
            Some(_) => Err(ApiError::invalid(
                param,
                format!("{param} must be an integer from {lo} to {hi}"),
            )),
            None => Err(ApiError::invalid(
                param,
                format!("{param} must be an integer"),
            )),
        },
    }
}

/// Features a client may ask for that this server does not provide. A request that actually asks
/// for one (not `false`, `null`, `[]`, `{}` or the plain-text format, which clients send as
/// defaults) gets a 400 naming the field instead of an answer that silently lacks it.
fn refuse_unsupported(v: &Value) -> Result<(), ApiError> {
    let asked = |field: &str| match v.get(field) {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    };
    let unsupported = |field: &str, what: &str| ApiError {
        code: "unsupported_feature",
        ..ApiError::invalid(field, format!("{what} is not supported by artemis-serve"))
    };
    // (fields, what): the first field of a group that asks is named in the error
    let groups: [(&[&str], &str); 4] = [
        (&["logprobs", "top_logprobs"], "returning log probabilities"),
        (&["tools", "functions"], "tool calling"),
        (&["logit_bias"], "logit_bias"),
        // /v1/completions' extras
        (&["echo"], "echoing the prompt"),
    ];
    for (fields, what) in groups {
        if let Some(field) = fields.iter().find(|f| asked(f)) {
            return Err(unsupported(field, what));
        }
    }
    if v.get("suffix")
        .and_then(Value::as_str)
        .is_some_and(|x| !x.is_empty())
    {
        return Err(unsupported("suffix", "insertion (suffix)"));
    }
    if v.get("best_of")
        .and_then(Value::as_f64)
        .is_some_and(|b| b > 1.0)
    {
        return Err(unsupported("best_of", "best_of > 1"));
    }
    match v.get("response_format") {
        None | Some(Value::Null) => {}
        Some(f) if f.get("type").and_then(Value::as_str) == Some("text") => {}
        Some(_) => {
            return Err(unsupported(
                "response_format",
                "a response_format other than {\"type\": \"text\"}",
            ))
        }
    }
    Ok(())
}

/// The sampling, stop and streaming fields shared by both endpoints.
fn common(v: &Value) -> Result<(Sampling, Option<usize>, Vec<String>, bool, bool), ApiError> {
    refuse_unsupported(v)?;
    if let Some(n) = int(v, "n", i64::MIN, i64::MAX)? {
        if n != 1 {
            return Err(ApiError::invalid("n", "only n = 1 is supported"));
        }
    }
    let max_tokens = match int(v, "max_completion_tokens", 0, 1 << 20)? {
        Some(m) => Some(m as usize),
        None => int(v, "max_tokens", 0, 1 << 20)?.map(|m| m as usize),
    };
    let mut s = Sampling {
        temp: 1.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..Sampling::default()
    };
    if let Some(t) = num(v, "temperature", 0.0, 2.0)? {
        s.temp = t as f32;
    }
    if let Some(p) = num(v, "top_p", 0.0, 1.0)? {
        s.top_p = p as f32;
    }
    if let Some(k) = int(v, "top_k", 0, 1 << 20)? {
        s.top_k = k as i32;
    }
    if let Some(p) = num(v, "min_p", 0.0, 1.0)? {
        s.min_p = p as f32;
    }
    if let Some(p) = num(v, "repeat_penalty", 0.0, 10.0)? {
        s.repeat_penalty = p as f32;
    }
    if let Some(p) = num(v, "frequency_penalty", -2.0, 2.0)? {
        s.frequency_penalty = p as f32;
    }
    if let Some(p) = num(v, "presence_penalty", -2.0, 2.0)? {
        s.presence_penalty = p as f32;
    }
    if let Some(seed) = int(v, "seed", i64::MIN, i64::MAX)? {
        s.seed = seed as u32;
    }
    if s.top_k == 0 {
        s.top_k = 1 << 20; // "no top-k"
    }
    let stop = match v.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(x)) => vec![x.clone()],
        Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(_) => {
            return Err(ApiError::invalid(
                "stop",
                "stop must be a string or a list of up to 4 strings",
            ))
        }
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid("stop", "stop strings must not be empty"));
    }
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("stream", "stream must be a boolean")),
    };
    let include_usage = v
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((s, max_tokens, stop, stream, include_usage))
}

/// Decodes a `data:image/...;base64,` URL; `http(s)` URLs are kept for the fetcher (which
/// refuses them unless the server allows it); other schemes are refused.
fn image_source(url: &str, param: &str) -> Result<ImageSource, ApiError> {
    let Some(rest) = url.strip_prefix("data:") else {
        let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
        let message = match scheme.as_str() {
            "http" | "https" => return Ok(ImageSource::Url(url.to_string())),
            "file" => "file: URLs are never read",
            _ => "image_url must be a data:image/...;base64, URL",
        };
        return Err(ApiError {
            code: "unsupported_image_url",
            ..ApiError::invalid(param, message)
        });
    };
    let (meta, data) = rest
        .split_once(',')
        .ok_or_else(|| ApiError::invalid(param, "data: URL without a comma"))?;
    if !meta.starts_with("image/") || !meta.ends_with(";base64") {
        return Err(ApiError::invalid(
            param,
            "only data:image/...;base64, URLs are supported",
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map(ImageSource::Inline)
        .map_err(|e| ApiError {
            code: "invalid_base64",
            ..ApiError::invalid(param, format!("the image is not valid base64: {e}"))
        })
}

const ROLES: &[&str] = &["system", "user", "assistant", "tool", "developer"];

/// Parses a `/v1/chat/completions` body.
pub fn chat_request(v: &Value) -> Result<Request, ApiError> {
    if !v.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    let (sampling, max_tokens, stop, stream, include_usage) = common(v)?;
    let msgs = match v.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid("messages", "messages must not be empty"))
        }
        Some(_) => return Err(ApiError::invalid("messages", "messages must be a list")),
        None => {
            return Err(ApiError {
                code: "missing_field",
                ..ApiError::invalid("messages", "messages is required")
            })
        }
    };
    let mut messages = Vec::new();
    let mut images = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                format!("messages[{i}].role"),
                "each message needs a string role",
            )
        })?;
        if !ROLES.contains(&role) {
            return Err(ApiError::invalid(
                format!("messages[{i}].role"),
                format!("unknown role {role:?}"),
            ));
        }
        let role = if role == "developer" { "system" } else { role };
        let mut parts = Vec::new();
        match m.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => parts.push(Part::Text(t.clone())),
            Some(Value::Array(items)) => {
                for (j, p) in items.iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    match p.get("type").and_then(Value::as_str) {
                        Some("text") => parts.push(Part::Text(
                            p.get("text")
                                .and_then(Value::as_str)
                                .ok_or_else(|| {
                                    ApiError::invalid(&param, "a text part needs a string text")
                                })?
                                .to_string(),
                        )),
                        Some("image_url") => {
                            let url = match p.get("image_url") {
                                Some(Value::String(u)) => u.as_str(),
                                Some(o) => {
                                    o.get("url").and_then(Value::as_str).ok_or_else(|| {
                                        ApiError::invalid(&param, "image_url needs a url")
                                    })?
                                }
                                None => {
                                    return Err(ApiError::invalid(&param, "image_url needs a url"))
                                }
                            };
                            images.push((param.clone(), image_source(url, &param)?));
                            parts.push(Part::Image);
                        }
                        Some("input_audio") => {
                            return Err(ApiError::invalid(&param, "audio input is not supported"))
                        }
                        Some(other) => {
                            return Err(ApiError::invalid(
                                &param,
                                format!("unknown content part type {other:?}"),
                            ))
                        }
                        None => {
                            return Err(ApiError::invalid(&param, "each content part needs a type"))
                        }
                    }
                }
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    format!("messages[{i}].content"),
                    "content must be a string or a list of parts",
                ))
            }
        }
        let plain = matches!(
            m.get("content"),
            Some(Value::String(_)) | Some(Value::Null) | None
        );
        messages.push(Message {
            role: role.to_string(),
            parts,
            plain,
            fields: m
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| *k != "role" && *k != "content")
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    let template_kwargs = match v.get("chat_template_kwargs") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(o)) => {
            if let Some(k) = o
                .keys()
                .find(|k| crate::chat::ChatTemplate::RESERVED.contains(&k.as_str()))
            {
                return Err(ApiError::invalid(
                    format!("chat_template_kwargs.{k}"),
                    format!("{k} is set by the server and cannot be passed to the template"),
                ));
            }
            o.clone()
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "chat_template_kwargs",
                "chat_template_kwargs must be an object",
            ))
        }
    };
    Ok(Request {
        messages,
        prompt: None,
        images,
        stream,
        include_usage,
        max_tokens,
        sampling,
        stop,
        template_kwargs,
        ignore_eos: v
            .get("ignore_eos")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Parses a `/v1/completions` body (text only).
pub fn completion_request(v: &Value) -> Result<Request, ApiError> {
    if !v.is_object() {
        return Err(ApiError::invalid("body", "the body must be a JSON object"));
    }
    let (sampling, max_tokens, stop, stream, include_usage) = common(v)?;
    let prompt = match v.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or("").to_string()
        }
        Some(Value::Array(a)) if a.len() > 1 && a.iter().all(Value::is_string) => {
            return Err(ApiError::invalid(
                "prompt",
                format!(
                    "{} prompts in one request; this server takes one prompt per request (send them as separate requests)",
                    a.len()
                ),
            ))
        }
        Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_number) => {
            return Err(ApiError::invalid(
                "prompt",
                "token-id prompts are not supported; send the prompt as text",
            ))
        }
        Some(_) => return Err(ApiError::invalid("prompt", "prompt must be a string")),
        None => {
            return Err(ApiError {
                code: "missing_field",
                ..ApiError::invalid("prompt", "prompt is required")
            })
        }
    };
    Ok(Request {
        messages: Vec::new(),
        prompt: Some(prompt),
        images: Vec::new(),
        stream,
        include_usage,
        max_tokens,
        sampling,
        stop,
        template_kwargs: serde_json::Map::new(),
        ignore_eos: v
            .get("ignore_eos")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Splits generated text into reasoning (`<think>` … `</think>`) and answer, incrementally,
/// holding back a tail that could be the start of a marker.
pub struct ThinkSplitter {
    in_think: bool,
    buf: String,
}

pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";

impl ThinkSplitter {
    /// `opens`: the rendered prompt already opened a thinking block.
    pub fn new(opens: bool) -> ThinkSplitter {
        ThinkSplitter {
            in_think: opens,
            buf: String::new(),
        }
    }

    /// Feeds text; returns (reasoning, content) pieces ready to send.
    pub fn push(&mut self, text: &str, done: bool) -> (String, String) {
        self.buf.push_str(text);
        let (mut reasoning, mut content) = (String::new(), String::new());
        loop {
            let marker = if self.in_think {
                THINK_CLOSE
            } else {
                THINK_OPEN
            };
            if let Some(i) = self.buf.find(marker) {
                let before: String = self.buf.drain(..i).collect();
                self.buf.drain(..marker.len());
                if self.in_think {
                    reasoning.push_str(&before)
                } else {
                    content.push_str(&before)
                }
                if !self.in_think && !content.trim().is_empty() {
                    // a <think> after the answer started is text, not a block
                    content.push_str(marker);
                    continue;
                }
                self.in_think = !self.in_think;
                if !self.in_think {
                    // the answer starts after the blank line that follows </think>
                    let trimmed = self.buf.trim_start_matches('\n').len();
                    let cut = self.buf.len() - trimmed;
                    self.buf.drain(..cut);
                }
                continue;
            }
            // keep what could be the start of the marker
            let mut keep = if done {
                0
            } else {
                (1..marker.len())
                    .rev()
                    .find(|&k| self.buf.ends_with(&marker[..k]))
                    .unwrap_or(0)
            };
            while !self.buf.is_char_boundary(self.buf.len() - keep) {
                keep += 1;
            }
            let out: String = self.buf.drain(..self.buf.len() - keep).collect();
            if self.in_think {
                reasoning.push_str(&out)
            } else {
                content.push_str(&out)
            }
            break;
        }
        (reasoning, content)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// llama-server's `timings` object (prompt evaluation and generation speed of one request).
pub fn timings(cached: usize, completion: usize, t: &crate::scheduler::Timings) -> Value {
    let per = |n: usize, ms: f64| {
        (
            if n > 0 { ms / n as f64 } else { 0.0 },
            if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 },
        )
    };
    let (p_tok_ms, p_per_s) = per(t.prompt_n, t.prompt_ms);
    let (g_tok_ms, g_per_s) = per(completion, t.predicted_ms);
    json!({"cache_n": cached, "prompt_n": t.prompt_n, "prompt_ms": t.prompt_ms, "prompt_per_token_ms": p_tok_ms, "prompt_per_second": p_per_s, "predicted_n": completion, "predicted_ms": t.predicted_ms, "predicted_per_token_ms": g_tok_ms, "predicted_per_second": g_per_s})
}

/// `usage`, with OpenAI's `prompt_tokens_details.cached_tokens`: prompt tokens reused from the
/// sequence's cache (a follow-up turn with the same history and image).
pub fn usage(prompt: usize, completion: usize, cached: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_splitter_routes_reasoning_and_answer_across_chunk_boundaries() {
        let mut s = ThinkSplitter::new(true);
        let mut r = String::new();
        let mut c = String::new();
        for piece in ["I think", " so </th", "ink>\n\nThe ans", "wer."] {
            let (a, b) = s.push(piece, false);
            r += &a;
            c += &b;
        }
        let (a, b) = s.push("", true);
        r += &a;
        c += &b;
        assert_eq!((r.as_str(), c.as_str()), ("I think so ", "The answer."));
    }
}
