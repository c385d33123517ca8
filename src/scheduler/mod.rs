//! The engine thread: it alone owns the llama.cpp context and mtmd (neither is thread-safe) and
//! runs up to `parallel` sequences at once. Each step builds one batch: one token for every
//! generating sequence, then as many prompt tokens of newly admitted sequences as the batch holds
//! (continuous batching, as llama-server does: a new request's text joins the step instead of
//! costing a decode of its own). Image chunks are encoded and evaluated when their request is
//! admitted. Requests wait in a bounded queue; a request whose receiver is gone (the client
//! disconnected) is cancelled and its sequence freed at the next step.
//!
//! A sequence remembers what its KV cache holds; a new request whose prompt starts with that
//! content (the usual multi-turn pattern: history and the same image resent) keeps the common
//! prefix and evaluates only the rest. Images are compared by a hash of their prepared pixels.
//! When a sequence is given to another conversation, what it held goes to the host-memory
//! prompt cache ([`prompt_cache`]) first, so a conversation that comes back later is restored,
//! not re-evaluated.

mod prompt_cache;

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::mtmd::{MtmdBitmap, MtmdInputChunkType};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use crate::chat::Utf8Stream;
use crate::engine::{
    eval_chunk_into, eval_chunks_into, Engine, EngineOptions, ImagePrep, Sampling, Vision,
    VisionOptions,
};
use crate::server::metrics::Metrics;
use prompt_cache::PromptCache;

/// An image already prepared as the family's processor does (RGB, final size).
#[derive(Clone)]
pub struct PreparedImage {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    pub hash: u64,
}

impl PreparedImage {
    pub fn new(width: u32, height: u32, rgb: Vec<u8>) -> PreparedImage {
        let mut h = DefaultHasher::new();
        (width, height).hash(&mut h);
        rgb.hash(&mut h);
        PreparedImage {
            width,
            height,
            rgb,
            hash: h.finish(),
        }
    }
}

/// A sequence shorter than this is not worth a prompt-cache entry.
const MIN_CACHED_POSITIONS: i32 = 16;

/// A prompt-cache entry is restored only if it holds at most this many positions per position
/// it saves from evaluation.
const RESTORE_COPY_FACTOR: i32 = 32;

/// One generation request.
pub struct Job {
    /// The rendered prompt with mtmd markers where the images go.
    pub prompt: String,
    pub images: Vec<PreparedImage>,
    pub sampling: Sampling,
    /// None: until the sequence's context is full.
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    /// Keep generating through end-of-generation tokens (llama-server's `ignore_eos`, for
    /// benchmarks that need a fixed token count).
    pub ignore_eos: bool,
    /// Send text as it is generated; false: all of it just before `Done` (a waiting
    /// non-streamed request then wakes once, not once per token, and takes no CPU time from the
    /// decode threads meanwhile).
    pub stream: bool,
    pub events: UnboundedSender<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Where a request's time went, as llama-server reports it (`timings` in its replies).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Prompt tokens evaluated (not taken from a cache).
    pub prompt_n: usize,
    /// From admission to the first token (prompt evaluation, image encoding included).
    pub prompt_ms: f64,
    /// From the first token to the last one.
    pub predicted_ms: f64,
}

/// What the engine thread reports about a job, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// The prompt was evaluated (tokens include image tokens); `cached_tokens` of it were
    /// already in the sequence's cache and not evaluated again.
    Started {
        prompt_tokens: usize,
        cached_tokens: usize,
    },
    /// Generated text (complete UTF-8; stop strings never appear in it).
    Text(String),
    Done {
        reason: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
        timings: Timings,
    },
    /// The request cannot run: `context` is true when the prompt does not fit the context.
    Failed { message: String, context: bool },
}

/// What the engine thread learned when it loaded the files.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub prep: Option<ImagePrep>,
    pub placeholder: Option<String>,
    pub has_vision: bool,
    pub n_ctx_per_seq: u32,
    pub warnings: Vec<String>,
}

pub struct SchedulerConfig {
    pub model: PathBuf,
    pub mmproj: Option<PathBuf>,
    pub engine: EngineOptions,
    /// `--tensor-split` (see [`Engine::load_split`]); empty = llama.cpp's default.
    pub tensor_split: Vec<f32>,
    pub vision: VisionOptions,
    pub parallel: usize,
    /// Context cells per sequence.
    pub ctx_per_seq: u32,
    pub queue_limit: usize,
    /// Bytes of KV state the prompt cache may keep in host memory (0: none).
    pub cache_ram: usize,
    /// Most tokens per decode (prompt tokens beyond it wait for the next step).
    pub batch_size: u32,
    /// One KV buffer for all sequences (see [`Engine::context_batched`]).
    pub kv_unified: bool,
}

/// The handle request handlers use.
#[derive(Clone)]
pub struct Scheduler {
    tx: SyncSender<Job>,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug)]
pub enum SubmitError {
    QueueFull,
    Stopped,
}

impl Scheduler {
    /// Starts the engine thread; `ready` receives the model info once loaded (or why not).
    pub fn start(
        cfg: SchedulerConfig,
        metrics: Arc<Metrics>,
    ) -> (
        Scheduler,
        std::sync::mpsc::Receiver<Result<ModelInfo, String>>,
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(cfg.queue_limit.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let m = metrics.clone();
        std::thread::Builder::new()
            .name("artemis-engine".into())
            .spawn(move || engine_thread(cfg, rx, ready_tx, m))
            .expect("spawning the engine thread");
        (Scheduler { tx, metrics }, ready_rx)
    }

    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.metrics.queue_depth.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => SubmitError::QueueFull,
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }
}

/// One unit of what a sequence's KV cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unit {
    Token(i32),
    /// An image chunk: its pixels' hash and the positions it occupies.
    Image {
        hash: u64,
        n_pos: i32,
    },
}

struct Active {
    job: Job,
    picker: crate::engine::TokenPicker,
    utf8: Utf8Stream,
    /// Text generated so far and how much of it was sent.
    text: String,
    sent: usize,
    pending: i32,
    completion_tokens: usize,
    prompt_tokens: usize,
    cached_tokens: usize,
    /// `Event::Started` was sent.
    announced: bool,
    admitted: std::time::Instant,
    /// When the first token was picked.
    first_token: Option<std::time::Instant>,
    /// Prompt tokens not evaluated yet; they join the next steps' batches. The sequence
    /// generates once this is empty.
    prefill: VecDeque<i32>,
}

struct Slot {
    seq: i32,
    n_past: i32,
    history: Vec<Unit>,
    active: Option<Active>,
}

impl Unit {
    fn token(&self) -> Option<i32> {
        match self {
            Unit::Token(t) => Some(*t),
            Unit::Image { .. } => None,
        }
    }

    fn positions(&self) -> i32 {
        match self {
            Unit::Token(_) => 1,
            Unit::Image { n_pos, .. } => *n_pos,
        }
    }
}

/// How many units two histories share from the start.
pub(crate) fn common_prefix(a: &[Unit], b: &[Unit]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn engine_thread(
    cfg: SchedulerConfig,
    rx: Receiver<Job>,
    ready: std::sync::mpsc::Sender<Result<ModelInfo, String>>,
    metrics: Arc<Metrics>,
) {
    let engine = match Engine::load_split(&cfg.model, cfg.engine.clone(), &cfg.tensor_split) {
        Ok(e) => e,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let mut vision = match &cfg.mmproj {
        Some(mm) => match Vision::load(&engine, mm, &cfg.vision) {
            Ok(v) => Some(v),
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        },
        None => None,
    };
    let parallel = cfg.parallel.max(1);
    let n_ctx = cfg.ctx_per_seq.saturating_mul(parallel as u32);
    let n_batch = cfg.batch_size.max(parallel as u32);
    let mut ctx = match engine.context_batched(n_ctx, parallel as u32, n_batch, cfg.kv_unified) {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(ModelInfo {
        prep: vision.as_ref().and_then(|v| v.official.clone()),
        placeholder: vision.as_ref().map(|v| v.placeholder.clone()),
        has_vision: vision.is_some(),
        n_ctx_per_seq: cfg.ctx_per_seq,
        warnings: vision
            .as_ref()
            .map(|v| v.warnings.clone())
            .unwrap_or_default(),
    }));
    metrics.ready.store(true, Ordering::SeqCst);
    let vocab = engine.model.vocab();
    let n_vocab = engine.n_vocab() as i32;
    let mut slots: Vec<Slot> = (0..parallel)
        .map(|i| Slot {
            seq: i as i32,
            n_past: 0,
            history: Vec::new(),
            active: None,
        })
        .collect();
    let mut cache = PromptCache::new(cfg.cache_ram);
    let n_batch = (ctx.n_batch() as usize).max(parallel);
    let mut batch = LlamaBatch::new(n_batch, 1);

    loop {
        // Admit: block only when nothing is running.
        while slots.iter().any(|s| s.active.is_none()) {
            let job = if slots.iter().any(|s| s.active.is_some()) {
                match rx.try_recv() {
                    Ok(j) => j,
                    Err(_) => break,
                }
            } else {
                match rx.recv() {
                    Ok(j) => j,
                    Err(_) => return, // server shutting down
                }
            };
            metrics.queue_depth.fetch_sub(1, Ordering::SeqCst);
            if job.events.is_closed() {
                continue;
            }
            start_job(
                &engine,
                &mut ctx,
                vision.as_mut(),
                &mut slots,
                &mut cache,
                job,
                cfg.ctx_per_seq,
                n_vocab,
                &metrics,
            );
        }
        metrics
            .prompt_cache_bytes
            .store(cache.bytes(), Ordering::Relaxed);
        // One token for every generating sequence, then prompt tokens while the batch has room.
        batch.clear();
        let mut outputs: Vec<(usize, i32)> = Vec::new();
        let mut fed: Vec<usize> = Vec::new();
        for (i, s) in slots.iter_mut().enumerate() {
            let Some(a) = s.active.as_mut() else { continue };
            if a.job.events.is_closed() {
                // the client went away: free the sequence
                finish(s, None, &metrics);
                continue;
            }
            if !a.prefill.is_empty() {
                continue;
            }
            if s.n_past as u32 >= cfg.ctx_per_seq {
                finish(s, Some(FinishReason::Length), &metrics);
                continue;
            }
            let idx = batch.n_tokens();
            if batch
                .add(LlamaToken(a.pending), s.n_past, &[s.seq], true)
                .is_err()
            {
                finish_failed(s, "batch full", &metrics);
                continue;
            }
            s.history.push(Unit::Token(a.pending));
            s.n_past += 1;
            outputs.push((i, idx));
            fed.push(i);
        }
        for (i, s) in slots.iter_mut().enumerate() {
            let room = n_batch.saturating_sub(batch.n_tokens() as usize);
            if room == 0 {
                break;
            }
            let Some(a) = s.active.as_mut() else { continue };
            if a.prefill.is_empty() {
                continue;
            }
            for _ in 0..room.min(a.prefill.len()) {
                let t = a.prefill.pop_front().expect("prompt token");
                let last = a.prefill.is_empty();
                let idx = batch.n_tokens();
                if batch.add(LlamaToken(t), s.n_past, &[s.seq], last).is_err() {
                    break; // cannot happen: room was counted
                }
                s.history.push(Unit::Token(t));
                s.n_past += 1;
                if last {
                    outputs.push((i, idx));
                }
            }
            fed.push(i);
        }
        if batch.n_tokens() == 0 {
            continue;
        }
        if let Err(e) = ctx.decode(&mut batch) {
            for &i in &fed {
                finish_failed(
                    &mut slots[i],
                    &format!("llama_decode failed: {e}"),
                    &metrics,
                );
            }
            continue;
        }
        metrics.active.store(
            slots.iter().filter(|s| s.active.is_some()).count(),
            Ordering::SeqCst,
        );
        for &(i, idx) in &outputs {
            let s = &mut slots[i];
            let a = s.active.as_mut().expect("active");
            if !a.announced {
                a.announced = true;
                announce(a, &metrics);
            }
            let token = a.picker.pick(&ctx, idx);
            advance(s, token, &vocab, &metrics);
        }
    }
}

/// The prompt is in the cache: tell the client (and the counters) before the first token.
fn announce(a: &Active, metrics: &Metrics) {
    metrics
        .prompt_tokens
        .fetch_add(a.prompt_tokens as u64, Ordering::Relaxed);
    let _ = a.job.events.send(Event::Started {
        prompt_tokens: a.prompt_tokens,
        cached_tokens: a.cached_tokens,
    });
}

/// Handles a sampled token: end of generation, limits, stop strings, or text to send.
fn advance(
    s: &mut Slot,
    token: LlamaToken,
    vocab: &llama_cpp_2::vocab::LlamaVocab<'_>,
    metrics: &Metrics,
) {
    let a = s.active.as_mut().expect("active");
    a.first_token.get_or_insert_with(std::time::Instant::now);
    if vocab.is_eog(token) && !a.job.ignore_eos {
        return finish(s, Some(FinishReason::Stop), metrics);
    }
    a.completion_tokens += 1;
    let piece = vocab.token_to_piece(token, true, None);
    let text = a.utf8.push(&piece);
    a.text.push_str(&text);
    if let Some(pos) = a
        .job
        .stop
        .iter()
        .filter_map(|st| a.text.find(st.as_str()))
        .min()
    {
        a.text.truncate(pos);
        // bytes still pending in the UTF-8 decoder come after the stop string
        a.utf8 = Utf8Stream::default();
        return finish(s, Some(FinishReason::Stop), metrics);
    }
    flush_text(a, false);
    if a.job.max_tokens.is_some_and(|m| a.completion_tokens >= m) {
        return finish(s, Some(FinishReason::Length), metrics);
    }
    a.pending = token.0;
}

/// Sends what can be sent: everything at the end, else (streaming only) all but a tail that
/// could still become the start of a stop string.
fn flush_text(a: &mut Active, all: bool) {
    if !all && !a.job.stream {
        return;
    }
    if all {
        let rest = a.utf8.finish();
        a.text.push_str(&rest);
    }
    let hold = if all {
        0
    } else {
        a.job
            .stop
            .iter()
            .map(|s| s.len().saturating_sub(1))
            .max()
            .unwrap_or(0)
    };
    let mut end = a.text.len().saturating_sub(hold).max(a.sent);
    while !a.text.is_char_boundary(end) {
        end -= 1;
    }
    if end > a.sent {
        let _ = a
            .job
            .events
            .send(Event::Text(a.text[a.sent..end].to_string()));
        a.sent = end;
    }
}

fn finish(s: &mut Slot, reason: Option<FinishReason>, metrics: &Metrics) {
    if let Some(mut a) = s.active.take() {
        if let Some(reason) = reason {
            flush_text(&mut a, true);
            metrics
                .completion_tokens
                .fetch_add(a.completion_tokens as u64, Ordering::Relaxed);
            let first = a.first_token.unwrap_or(a.admitted);
            let timings = Timings {
                prompt_n: a.prompt_tokens.saturating_sub(a.cached_tokens),
                prompt_ms: (first - a.admitted).as_secs_f64() * 1e3,
                predicted_ms: first.elapsed().as_secs_f64() * 1e3,
            };
            let _ = a.job.events.send(Event::Done {
                reason,
                prompt_tokens: a.prompt_tokens,
                completion_tokens: a.completion_tokens,
                timings,
            });
        }
    }
}

fn finish_failed(s: &mut Slot, message: &str, _metrics: &Metrics) {
    if let Some(a) = s.active.take() {
        let _ = a.job.events.send(Event::Failed {
            message: message.to_string(),
            context: false,
        });
    }
    // what the cache holds is unknown now
    s.history.clear();
}

/// Evaluates a new job's prompt into a free slot (the one whose cache shares the longest prefix
/// with it) and samples its first token.
#[allow(clippy::too_many_arguments)]
fn start_job(
    engine: &Engine,
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    vision: Option<&mut Vision>,
    slots: &mut [Slot],
    cache: &mut PromptCache,
    job: Job,
    ctx_per_seq: u32,
    n_vocab: i32,
    metrics: &Metrics,
) {
    let admitted = std::time::Instant::now();
    let fail = |job: &Job, message: String, context: bool| {
        let _ = job.events.send(Event::Failed { message, context });
    };
    // tokenize into chunks
    let (chunks, units) = match &vision {
        Some(v) => {
            let bitmaps: Result<Vec<MtmdBitmap>, _> = job
                .images
                .iter()
                .map(|im| Vision::bitmap(im.width, im.height, &im.rgb))
                .collect();
            let bitmaps = match bitmaps {
                Ok(b) => b,
                Err(e) => return fail(&job, e.to_string(), false),
            };
            let refs: Vec<&MtmdBitmap> = bitmaps.iter().collect();
            let chunks = match v.tokenize(&job.prompt, &refs, true) {
                Ok(c) => c,
                Err(e) => return fail(&job, e.to_string(), false),
            };
            let mut units = Vec::new();
            let mut img = 0;
            for i in 0..chunks.len() {
                let c = chunks.get(i).expect("chunk");
                if c.chunk_type() == MtmdInputChunkType::Image {
                    let hash = job.images.get(img).map_or(0, |im| im.hash);
                    img += 1;
                    units.push(Unit::Image {
                        hash,
                        n_pos: c.n_positions(),
                    });
                } else {
                    units.extend(
                        c.text_tokens()
                            .unwrap_or(&[])
                            .iter()
                            .map(|t| Unit::Token(t.0)),
                    );
                }
            }
            (Some(chunks), units)
        }
        None => {
            if !job.images.is_empty() {
                return fail(
                    &job,
                    "this server has no --mmproj: images are not supported".into(),
                    false,
                );
            }
            (
                None,
                engine
                    .tokenize(&job.prompt, true)
                    .into_iter()
                    .map(Unit::Token)
                    .collect(),
            )
        }
    };
    let positions: i64 = units.iter().map(|u| u.positions() as i64).sum();
    let prompt_tokens = match &chunks {
        Some(c) => c.total_tokens(),
        None => units.len(),
    };
    if positions + 1 > ctx_per_seq as i64 {
        return fail(&job, format!("the prompt needs {positions} positions (text and image tokens) but a sequence's context holds {ctx_per_seq}"), true);
    }
    // Keep at least one unit to evaluate: its logits give the first token.
    let cap = units.len().saturating_sub(1);
    let free: Vec<usize> = (0..slots.len())
        .filter(|&i| slots[i].active.is_none())
        .collect();
    // The free slot with the longest cached prefix; among equals the lowest-numbered one. Packing
    // work into low sequence ids matters: with llama.cpp's per-sequence KV buffers a decode
    // batch is split into one pass per run of consecutive sequence ids, so sequences 0,1,2,3
    // decode in one pass and 0,2,5,7 in four.
    let Some(&best) = free.iter().max_by_key(|&&i| {
        (
            common_prefix(&slots[i].history, &units).min(cap),
            std::cmp::Reverse(i),
        )
    }) else {
        return fail(&job, "no free sequence".into(), false);
    };
    let in_slot = common_prefix(&slots[best].history, &units).min(cap);
    // A restore copies the whole entry; evaluating a position costs far more than copying one
    // (~25x on a GPU, ~1000x on a CPU), so restore unless the entry is more than 32 times the
    // positions it saves (an image counts with all of its).
    let pos_of = |n: usize| units[..n].iter().map(Unit::positions).sum::<i32>();
    let from_cache = cache.best(&units, cap).filter(|&(e, n)| {
        let saved = pos_of(n) - pos_of(in_slot);
        n > in_slot && cache.positions(e) <= saved.saturating_mul(RESTORE_COPY_FACTOR)
    });
    // a restore goes to the lowest-numbered free slot (what it held is saved below if worth it)
    let si = match from_cache {
        Some(_) => free[0],
        None => best,
    };
    let slot = &mut slots[si];
    // What the slot holds goes to the prompt cache if most of it is about to be lost
    // (llama-server's rule: less than half kept).
    let kept_here = if from_cache.is_some() { 0 } else { in_slot };
    if slot.n_past >= MIN_CACHED_POSITIONS && kept_here * 2 < slot.history.len() {
        cache.save(ctx, slot.seq, &slot.history, slot.n_past);
    }
    if let Some((ei, _)) = from_cache {
        let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
        slot.history.clear();
        slot.n_past = 0;
        if let Some(r) = cache.restore(ctx, ei, slot.seq) {
            slot.history = r.units;
            slot.n_past = r.n_past;
            metrics.prompt_cache_hits.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut keep = common_prefix(&slot.history, &units).min(cap);
    let keep_pos: i32 = slot.history[..keep].iter().map(Unit::positions).sum();
    if ctx
        .clear_kv_cache_seq(Some(slot.seq as u32), Some(keep_pos as u32), None)
        .is_err()
    {
        keep = 0;
        let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
    }
    let keep_pos = if keep == 0 { 0 } else { keep_pos };
    slot.history.truncate(keep);
    slot.n_past = keep_pos;
    let mut active = Active {
        picker: job.sampling.picker(n_vocab),
        job,
        utf8: Utf8Stream::default(),
        text: String::new(),
        sent: 0,
        pending: 0,
        completion_tokens: 0,
        prompt_tokens,
        cached_tokens: keep_pos as usize,
        announced: false,
        admitted,
        first_token: None,
        prefill: VecDeque::new(),
    };
    let rest = &units[keep..];
    if let Some(prefill) = rest
        .iter()
        .map(Unit::token)
        .collect::<Option<VecDeque<i32>>>()
    {
        // text only: the tokens join the next batches
        active.prefill = prefill;
        slot.active = Some(active);
        return;
    }
    // images to encode: evaluate the rest now, chunk by chunk
    let (Some(v), Some(chunks)) = (vision, chunks) else {
        return fail(
            &active.job,
            "image chunk without a vision encoder".into(),
            false,
        );
    };
    match eval_remaining(ctx, v, &chunks, &units, keep, slot.n_past, slot.seq) {
        Ok((n_past, encode_ms)) => {
            slot.n_past = n_past;
            slot.history = units;
            metrics
                .image_encode_us
                .fetch_add((encode_ms * 1000.0) as u64, Ordering::Relaxed);
        }
        Err(e) => {
            slot.history.clear();
            slot.n_past = 0;
            let _ = ctx.clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            return fail(&active.job, e, false);
        }
    }
    active.announced = true;
    announce(&active, metrics);
    let token = active.picker.pick(ctx, -1);
    slot.active = Some(active);
    let vocab = engine.model.vocab();
    advance(slot, token, &vocab, metrics);
}

/// Evaluates the chunks of a prompt from unit index `keep` on. Text chunks are split at `keep`
/// by evaluating the remaining tokens directly; image chunks after it are evaluated whole.
fn eval_remaining(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    vision: &mut Vision,
    chunks: &llama_cpp_2::mtmd::MtmdInputChunks,
    units: &[Unit],
    keep: usize,
    n_past: i32,
    seq: i32,
) -> Result<(i32, f64), String> {
    if keep == 0 {
        let (n, stats) =
            eval_chunks_into(ctx, vision, chunks, n_past, seq).map_err(|e| e.to_string())?;
        return Ok((n, stats.encode_ms));
    }
    // Walk the chunks: skip whole chunks inside the kept prefix; feed the rest.
    let mut unit = 0;
    let mut n_past = n_past;
    let mut encode_ms = 0.0;
    let n = chunks.len();
    for i in 0..n {
        let c = chunks.get(i).expect("chunk");
        let len = if c.chunk_type() == MtmdInputChunkType::Image {
            1
        } else {
            c.n_tokens()
        };
        let (start, end) = (unit, unit + len);
        unit = end;
        if end <= keep {
            continue;
        }
        let last = i + 1 == n;
        if c.chunk_type() == MtmdInputChunkType::Image {
            let mut stats = crate::engine::PromptStats::default();
            n_past = eval_chunk_into(ctx, vision, &c, n_past, seq, last, &mut stats)
                .map_err(|e| e.to_string())?;
            encode_ms += stats.encode_ms;
        } else {
            let skip = keep.saturating_sub(start);
            let toks: Vec<i32> = units[start + skip..end]
                .iter()
                .filter_map(Unit::token)
                .collect();
            n_past = eval_tokens(ctx, &toks, n_past, seq, last)?;
        }
    }
    Ok((n_past, encode_ms))
}

/// Evaluates text tokens of sequence `seq` from `n_past` on, in batches of `n_batch`; logits
/// only for the last one, when `logits_last`. Returns the next position.
fn eval_tokens(
    ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
    toks: &[i32],
    mut n_past: i32,
    seq: i32,
    logits_last: bool,
) -> Result<i32, String> {
    let n_batch = ctx.n_batch() as usize;
    for (ci, chunk) in toks.chunks(n_batch.max(1)).enumerate() {
        let mut batch = LlamaBatch::new(chunk.len(), 1);
        let last_chunk = (ci + 1) * n_batch >= toks.len();
        for (i, &t) in chunk.iter().enumerate() {
            let logits = logits_last && last_chunk && i + 1 == chunk.len();
            batch
                .add(LlamaToken(t), n_past, &[seq], logits)
                .map_err(|e| e.to_string())?;
            n_past += 1;
        }
        ctx.decode(&mut batch)
            .map_err(|e| format!("llama_decode failed: {e}"))?;
    }
    Ok(n_past)
}
