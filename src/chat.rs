//! artemis-chat's conversation layer: messages rendered with the chat template stored in the
//! decoder GGUF (a real Jinja engine, as the official tokenizer's apply_chat_template), images
//! placed before the text, turns appended to a live KV cache so an image is encoded once.

use std::path::Path;

use llama_cpp_2::mtmd::MtmdBitmap;
use serde::Serialize;

use crate::engine::{Engine, EngineError, GenStats, PromptStats, Sampling, Session, Vision};
use crate::gguf::GgufFile;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("{path}: {message}")]
    Template { path: String, message: String },
    #[error("{path}: cannot read image: {message}")]
    Image { path: String, message: String },
    #[error("{0}")]
    Usage(String),
}

/// The official processor's framing of one image in the rendered prompt (reference §6); mtmd
/// emits `<|vision_start|>`, the image embeddings and `<|vision_end|>` for its marker instead.
pub const IMAGE_FRAMING: &str = "<|vision_start|><|image_pad|><|vision_end|>";

/// One part of a message's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Image,
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: String,
    pub parts: Vec<Part>,
    /// The content was given as a plain string (an OpenAI client's `"content": "…"`), so the
    /// template sees a string, as the official `apply_chat_template` would, not a list of parts.
    pub plain: bool,
    /// The message's other fields as the client sent them (`name`, `reasoning_content`, …), which
    /// the official `apply_chat_template` passes to the template too.
    pub fields: Vec<(String, serde_json::Value)>,
}

/// Where transformers looks for a message's reasoning, in order (`_REASONING_FIELDS`).
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

impl Message {
    /// A user turn: one image part per image, before the text (as the official processor does);
    /// without images, the text as a plain string (see [`Message::text`]).
    pub fn user(n_images: usize, text: &str) -> Message {
        let mut parts = vec![Part::Image; n_images];
        parts.push(Part::Text(text.to_string()));
        Message {
            role: "user".into(),
            parts,
            plain: n_images == 0,
            fields: Vec::new(),
        }
    }
    /// A text-only turn, its content a plain string as `apply_chat_template` callers write it: a
    /// plain decoder's template (Mistral's, Llama's) reads only strings, and the vision families'
    /// templates render a string as they render one text part.
    pub fn text(role: &str, text: &str) -> Message {
        Message {
            role: role.into(),
            parts: vec![Part::Text(text.to_string())],
            plain: true,
            fields: Vec::new(),
        }
    }
    /// The message as the template sees it: `{"role", "content"}` in that order (templates that
    /// iterate a message or `tojson` it see Python's insertion order).
    fn to_value(&self) -> minijinja::Value {
        use minijinja::Value;
        let content = match (self.plain, self.parts.as_slice()) {
            (true, [Part::Text(t)]) => Some(Value::from(t.as_str())),
            // `"content": null` (an assistant turn that only called tools): apply_chat_template
            // drops None-valued keys, so the template sees no content at all
            (true, []) => None,
            _ => Some(Value::from_iter(self.parts.iter().map(|p| match p {
                Part::Image => Value::from_iter([("type", Value::from("image"))]),
                Part::Text(t) => Value::from_iter([
                    ("type", Value::from("text")),
                    ("text", Value::from(t.as_str())),
                ]),
            }))),
        };
        // transformers' `_alias_reasoning_fields`: {"thinking": r, **message, "reasoning_content": r}
        let reasoning = REASONING_FIELDS.iter().find_map(|k| {
            self.fields
                .iter()
                .find(|(name, v)| name == k && !v.is_null())
                .map(|(_, v)| v.clone())
        });
        // Built like the Python dict literal: a key given again keeps its place and takes the
        // later value (minijinja's map keeps insertion order, `preserve_order`).
        let reasoning = reasoning.as_ref().map(Value::from_serialize);
        let pairs = reasoning
            .clone()
            .map(|r| ("thinking", r))
            .into_iter()
            .chain([("role", Value::from(self.role.as_str()))])
            .chain(content.map(|c| ("content", c)))
            .chain(
                self.fields
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.as_str(), Value::from_serialize(v))),
            )
            .chain(reasoning.map(|r| ("reasoning_content", r)));
        Value::from_iter(pairs)
    }
    pub fn n_images(&self) -> usize {
        self.parts.iter().filter(|p| **p == Part::Image).count()
    }
}

pub use crate::jinja::TEMPLATE_FUEL;

/// The checkpoint's chat template, rendered with minijinja (Python-compatible string methods).
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    pub bos_token: String,
    pub eos_token: String,
    /// `tokenizer.ggml.add_bos_token` as written in the GGUF (None: missing, so llama.cpp
    /// falls back to its per-pre-tokenizer default).
    pub add_bos_key: Option<bool>,
    /// `tokenizer.ggml.pre`, for messages about that default.
    pub pre_tokenizer: Option<String>,
    /// The special tokens the template sees (`bos_token`, `eos_token`, …): the official
    /// tokenizer's, from our GGUF key; for a GGUF without it, the texts of llama.cpp's ids.
    pub special_tokens: Vec<(String, String)>,
    origin: String,
}

impl ChatTemplate {
    pub fn new(
        source: &str,
        bos_token: &str,
        eos_token: &str,
        origin: &str,
    ) -> Result<ChatTemplate, ChatError> {
        let mut env = crate::jinja::environment();
        env.add_template_owned("chat", crate::jinja::python_source(source))
            .map_err(|e| ChatError::Template {
                path: origin.to_string(),
                message: format!("chat template does not parse: {e}"),
            })?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            add_bos_key: None,
            pre_tokenizer: None,
            special_tokens: [("bos_token", bos_token), ("eos_token", eos_token)]
                .into_iter()
                .filter(|(_, t)| !t.is_empty())
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            origin: origin.into(),
        })
    }

    /// Reads `tokenizer.chat_template` and the bos/eos token texts from a decoder GGUF.
    pub fn from_gguf(path: &Path) -> Result<ChatTemplate, ChatError> {
        let origin = path.display().to_string();
        let g = GgufFile::open(path).map_err(|e| ChatError::Template {
            path: origin.clone(),
            message: e.to_string(),
        })?;
        let source = g.get("tokenizer.chat_template").and_then(|v| v.as_str()).ok_or_else(|| ChatError::Template {
            path: origin.clone(),
            message: "no tokenizer.chat_template in this GGUF; convert it with artemis-convert from a checkpoint that has chat_template.jinja".into(),
        })?;
        let tokens = g.get("tokenizer.ggml.tokens").and_then(|v| v.as_array());
        let token = |key: &str| -> String {
            let id = g.get(key).and_then(|v| v.as_u32());
            id.and_then(|i| {
                tokens
                    .and_then(|t| t.get(i as usize))
                    .and_then(|v| v.as_str())
            })
            .unwrap_or_default()
            .to_string()
        };
        let mut template = ChatTemplate::new(
            source,
            &token("tokenizer.ggml.bos_token_id"),
            &token("tokenizer.ggml.eos_token_id"),
            &origin,
        )?;
        template.add_bos_key = g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool());
        template.pre_tokenizer = g
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        match g
            .get(crate::keys::CHAT_TEMPLATE_SPECIAL_TOKENS)
            .and_then(|v| v.as_array())
        {
            Some(entries) => {
                template.special_tokens = entries
                    .iter()
                    .filter_map(|e| e.as_str()?.split_once('='))
                    .map(|(n, t)| (n.to_string(), t.to_string()))
                    .collect();
            }
            None => {
                for (name, key) in [
                    ("unk_token", "tokenizer.ggml.unknown_token_id"),
                    ("pad_token", "tokenizer.ggml.padding_token_id"),
                ] {
                    let text = token(key);
                    if !text.is_empty() {
                        template.special_tokens.push((name.to_string(), text));
                    }
                }
            }
        }
        Ok(template)
    }

    /// One warning line when a prompt will start with two BOS tokens: the template renders the
    /// BOS text and llama.cpp (`model_adds_bos`, the loaded model's flag) adds one more. With the
    /// GGUF's key set that is what the official tokenizer does too; without it, the cause is
    /// llama.cpp's default.
    pub fn doubled_bos_warning(
        &self,
        enable_thinking: Option<bool>,
        model_adds_bos: bool,
    ) -> Option<String> {
        if !model_adds_bos || self.bos_token.is_empty() {
            return None;
        }
        let probe = self
            .render(&[Message::text("user", "x")], true, enable_thinking)
            .ok()?;
        if !probe.starts_with(&self.bos_token) {
            return None;
        }
        let bos = &self.bos_token;
        Some(match self.add_bos_key {
            Some(_) => format!(
                "the prompt starts with two BOS tokens: the chat template emits {bos} and tokenizer.ggml.add_bos_token = true adds another; the official tokenizer does the same for this checkpoint"
            ),
            None => format!(
                "the prompt starts with two BOS tokens: the chat template emits {bos} and llama.cpp adds another because this GGUF has no tokenizer.ggml.add_bos_token (llama.cpp's default for pre-tokenizer {:?}); re-convert with artemis-convert, which writes the official choice",
                self.pre_tokenizer.as_deref().unwrap_or("?")
            ),
        })
    }

    /// Renders `messages`; `enable_thinking` None leaves the template's default.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        enable_thinking: Option<bool>,
    ) -> Result<String, ChatError> {
        let mut kwargs = serde_json::Map::new();
        if let Some(t) = enable_thinking {
            kwargs.insert("enable_thinking".into(), t.into());
        }
        self.render_with(messages, add_generation_prompt, &kwargs)
    }

    /// Names the renderer itself sets, which template keyword arguments cannot replace
    /// (transformers raises on them too).
    pub const RESERVED: [&'static str; 4] =
        ["messages", "add_generation_prompt", "tools", "documents"];

    /// Renders `messages` with extra template variables, as `apply_chat_template(**kwargs)`
    /// passes them: they override the special tokens of the same name. Names in
    /// [`ChatTemplate::RESERVED`] are ignored.
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, ChatError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| ChatError::Template {
                path: self.origin.clone(),
                message: e.to_string(),
            })?;
        let msgs = minijinja::Value::from_iter(messages.iter().map(Message::to_value));
        let mut ctx: Vec<(String, minijinja::Value)> = vec![
            ("messages".into(), msgs),
            ("add_generation_prompt".into(), add_generation_prompt.into()),
            // transformers always passes these (None without tools or documents), so a template's
            // `tools is defined` / `tools is not none` tests see what they see officially
            ("tools".into(), minijinja::Value::from(())),
            ("documents".into(), minijinja::Value::from(())),
        ];
        // the tokenizer's special tokens: a token the tokenizer does not have (e.g. Qwen's BOS)
        // is left undefined, as in transformers' special_tokens_map
        for (name, text) in &self.special_tokens {
            ctx.push((name.clone(), text.as_str().into()));
        }
        // later pairs replace earlier ones of the same name
        for (name, value) in kwargs {
            if !Self::RESERVED.contains(&name.as_str()) {
                ctx.push((name.clone(), minijinja::Value::from_serialize(value)));
            }
        }
        tmpl.render(minijinja::Value::from_iter(ctx))
            .map_err(|e| ChatError::Template {
                path: self.origin.clone(),
                message: format!("rendering the chat template failed: {e}"),
            })
    }
}

/// The rendered prompt in mtmd's terms for an Artemis (Qwen-VL framing) model; with a loaded
/// mmproj use [`Vision::mark_images`], which knows the model's own placeholder.
pub fn to_mtmd_prompt(rendered: &str) -> String {
    rendered.replace(IMAGE_FRAMING, llama_cpp_2::mtmd::mtmd_default_marker())
}

/// Decodes an image file (PNG, JPEG, WebP, GIF or BMP, sniffed from its content).
pub fn load_image(path: &Path) -> Result<image::DynamicImage, ChatError> {
    crate::preprocess::load_image(path).map_err(|e| match e {
        crate::preprocess::PreprocessError::Load { path, message } => {
            ChatError::Image { path, message }
        }
        other => ChatError::Image {
            path: path.display().to_string(),
            message: other.to_string(),
        },
    })
}

/// Decodes and prepares an image for `vision` (see [`Vision::prepare`]).
pub fn image_bitmap(vision: &Vision, path: &Path) -> Result<MtmdBitmap, ChatError> {
    let img = load_image(path)?;
    vision.prepare(&img).map_err(|e| ChatError::Image {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Result of one assistant turn.
#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub text: String,
    pub token_ids: Vec<i32>,
    pub prompt_tokens: usize,
    pub image_tokens: usize,
    pub encode_ms: f64,
    pub prompt_ms: f64,
    pub prompt_tok_per_s: f64,
    pub generated_tokens: usize,
    pub gen_ms: f64,
    pub tok_per_s: f64,
    /// Decode time only, as llama.cpp's tools report "eval time" (sampling excluded).
    pub decode_ms: f64,
    pub decode_tok_per_s: f64,
}

impl Reply {
    fn new(text: String, p: PromptStats, g: &GenStats) -> Reply {
        let n_prompt = p.text_tokens + p.image_tokens;
        Reply {
            text,
            token_ids: g.tokens.clone(),
            prompt_tokens: n_prompt,
            image_tokens: p.image_tokens,
            encode_ms: p.encode_ms,
            prompt_ms: p.prefill_ms,
            prompt_tok_per_s: n_prompt as f64 / (p.prefill_ms / 1e3).max(1e-9),
            generated_tokens: g.tokens.len(),
            gen_ms: g.ms,
            tok_per_s: g.tok_per_s(),
            decode_ms: g.decode_ms,
            decode_tok_per_s: g.decode_tok_per_s(),
        }
    }
}

/// Removes a leading thinking block (`…</think>`) for output that should carry only the answer.
pub fn strip_thinking(text: &str, prompt_opens_think: bool) -> String {
    let t = if prompt_opens_think {
        text
    } else {
        text.trim_start()
    };
    let body = if prompt_opens_think {
        Some(t)
    } else {
        t.strip_prefix("<think>")
    };
    match body.and_then(|b| b.split_once("</think>")) {
        Some((_, answer)) => answer.trim_start().to_string(),
        None if prompt_opens_think => String::new(),
        None => text.to_string(),
    }
}

/// A multi-turn conversation over one KV cache.
pub struct Conversation<'m> {
    pub session: Session<'m>,
    template: &'m ChatTemplate,
    pub messages: Vec<Message>,
    /// Exactly the text whose tokens are in the KV cache (rendered prompts + generated replies).
    fed: String,
    pub enable_thinking: Option<bool>,
    pub system: Option<String>,
}

impl<'m> Conversation<'m> {
    pub fn new(
        session: Session<'m>,
        template: &'m ChatTemplate,
        system: Option<String>,
        enable_thinking: Option<bool>,
    ) -> Conversation<'m> {
        let messages = system.iter().map(|s| Message::text("system", s)).collect();
        Conversation {
            session,
            template,
            messages,
            fed: String::new(),
            enable_thinking,
            system,
        }
    }

    /// Forgets every turn (and clears the KV cache); keeps the system prompt.
    pub fn clear(&mut self) {
        self.session.ctx.clear_kv_cache();
        self.session.n_past = 0;
        self.fed.clear();
        self.messages = self
            .system
            .iter()
            .map(|s| Message::text("system", s))
            .collect();
    }

    /// Does the rendered generation prompt open a thinking block (so the reply starts inside it)?
    pub fn opens_thinking(&self) -> Result<bool, ChatError> {
        Ok(self
            .template
            .render(&[Message::text("user", "x")], true, self.enable_thinking)?
            .trim_end()
            .ends_with("<think>"))
    }

    /// Adds a user turn with `images` (placed before the text), evaluates only what is new since
    /// the last turn, generates a reply and keeps it in the cache.
    pub fn turn(
        &mut self,
        engine: &Engine,
        vision: Option<&mut Vision>,
        images: &[&MtmdBitmap],
        text: &str,
        sampling: &Sampling,
        max_tokens: usize,
        on_piece: impl FnMut(&str),
    ) -> Result<Reply, ChatError> {
        self.messages.push(Message::user(images.len(), text));
        let rendered = self
            .template
            .render(&self.messages, true, self.enable_thinking)?;
        // Only the new suffix is evaluated; earlier turns (and their images) stay in the cache.
        let (delta, add_special) = match rendered.strip_prefix(self.fed.as_str()) {
            Some(rest) if !self.fed.is_empty() => (rest.to_string(), false),
            _ => {
                if !self.fed.is_empty() {
                    return Err(ChatError::Usage(
                        "the chat template rewrote earlier turns; use /clear to start over".into(),
                    ));
                }
                (rendered.clone(), true)
            }
        };
        let prompt = match vision {
            Some(v) => {
                let chunks = v.tokenize(&v.mark_images(&delta), images, add_special)?;
                self.session.eval_chunks(v, &chunks)?
            }
            None => {
                if !images.is_empty() {
                    return Err(ChatError::Usage("images need --mmproj".into()));
                }
                let ids = engine.tokenize(&delta, add_special);
                let t0 = std::time::Instant::now();
                self.session.eval_tokens(&ids)?;
                PromptStats {
                    text_tokens: ids.len(),
                    prefill_ms: t0.elapsed().as_secs_f64() * 1e3,
                    ..Default::default()
                }
            }
        };
        let mut decoder = Utf8Stream::default();
        let mut on_piece = on_piece;
        let mut text_out = String::new();
        let gen = self
            .session
            .generate(engine, sampling, max_tokens, |_, bytes| {
                let s = decoder.push(bytes);
                on_piece(&s);
                text_out.push_str(&s);
                true
            })?;
        let rest = decoder.finish();
        on_piece(&rest);
        text_out.push_str(&rest);
        // What the cache now holds: the prompt and the reply; the end-of-turn token was sampled
        // but not evaluated, so the next turn's text starts with it.
        self.fed = format!("{rendered}{text_out}");
        let assistant_prefix = rendered
            .rsplit_once("<|im_start|>assistant\n")
            .map(|(_, g)| g.to_string())
            .unwrap_or_default();
        self.messages.push(Message::text(
            "assistant",
            &format!("{assistant_prefix}{text_out}"),
        ));
        Ok(Reply::new(text_out, prompt, &gen))
    }
}

/// Turns a stream of token bytes into UTF-8 text without splitting multi-byte characters.
#[derive(Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let s = s.to_string();
                self.pending.clear();
                s
            }
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let s = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                s
            }
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                s
            }
        }
    }
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}
