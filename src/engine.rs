//! The runtime: a decoder GGUF and an Artemis mmproj loaded into the vendored llama.cpp (through
//! llama-cpp-2 and mtmd). Used by artemis-chat and by the parity tests. Never reads safetensors.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputChunkType, MtmdInputChunks, MtmdInputText,
};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use crate::gguf::GgufFile;
use crate::preprocess::{self, Params};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("{path}: mmproj width {mmproj} ≠ decoder width {decoder}: the mmproj and the decoder come from different models")]
    WidthMismatch {
        path: PathBuf,
        mmproj: u64,
        decoder: u64,
    },
    #[error("{0}")]
    Runtime(String),
    #[error(
        "prompt needs {needed} tokens (text + images) but the context holds {n_ctx}; raise -c"
    )]
    ContextFull { needed: usize, n_ctx: u32 },
}

fn rt<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> EngineError + '_ {
    move |e| EngineError::Runtime(format!("{what}: {e}"))
}

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The process-wide llama.cpp backend. llama.cpp's own logging is silenced unless `verbose`
/// (decided by the first call).
pub fn backend(verbose: bool) -> Result<&'static LlamaBackend, EngineError> {
    BACKEND
        .get_or_init(|| {
            // llama.cpp and mtmd log to stderr by default; silence both unless asked.
            if !verbose {
                llama_cpp_2::send_logs_to_tracing(
                    llama_cpp_2::LogOptions::default().with_logs_enabled(false),
                );
            }
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Runtime(format!("llama.cpp backend: {e}")))
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub n_gpu_layers: u32,
    pub threads: i32,
    pub verbose: bool,
    /// Exact-parity mode: F32 KV cache and no flash attention in the decoder (llama.cpp's
    /// defaults, F16 cache and auto flash attention, cost ~1e-2 in the logits of the fixtures).
    pub kv_f32: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            n_gpu_layers: 0,
            threads: std::thread::available_parallelism()
                .map(|n| n.get() as i32)
                .unwrap_or(1),
            verbose: false,
            kv_f32: false,
        }
    }
}

/// Checks what kind of GGUF a file is before llama.cpp sees it, so swapped files get a clear error.
fn expect_arch(path: &Path, want_clip: bool) -> Result<GgufFile, EngineError> {
    let gguf = GgufFile::open(path).map_err(|e| EngineError::Load {
        path: path.to_path_buf(),
        message: e.to_string().replace(&format!("{}: ", path.display()), ""),
    })?;
    let arch = gguf.architecture().unwrap_or("(none)").to_string();
    match (want_clip, arch == "clip") {
        (true, false) => Err(EngineError::Load { path: path.to_path_buf(), message: format!("not an mmproj (general.architecture = {arch:?}); pass the decoder GGUF as MODEL and this file's mmproj with --mmproj") }),
        (false, true) => Err(EngineError::Load { path: path.to_path_buf(), message: "this is an mmproj (general.architecture = \"clip\"), not a decoder; pass it with --mmproj".into() }),
        _ => {
            let check = if want_clip { crate::validate::mmproj(&gguf) } else { crate::validate::decoder(&gguf) };
            check.map_err(|message| EngineError::Load { path: path.to_path_buf(), message: format!("invalid {}: {message}", if want_clip { "mmproj" } else { "model" }) })?;
            Ok(gguf)
        }
    }
}

/// A loaded decoder.
pub struct Engine {
    pub model: LlamaModel,
    pub path: PathBuf,
    pub opts: EngineOptions,
}

impl Engine {
    pub fn load(path: &Path, opts: EngineOptions) -> Result<Engine, EngineError> {
        Engine::load_split(path, opts, &[])
    }

    /// [`Engine::load`] with llama.cpp's `--tensor-split`: each offload device's share of the
    /// offloaded layers, in llama.cpp's device order (RPC workers as given, then local GPUs);
    /// empty = llama.cpp's default (by free memory).
    pub fn load_split(
        path: &Path,
        opts: EngineOptions,
        tensor_split: &[f32],
    ) -> Result<Engine, EngineError> {
        expect_arch(path, false)?;
        let backend = backend(opts.verbose)?;
        let mut params = LlamaModelParams::default().with_n_gpu_layers(opts.n_gpu_layers);
        if !tensor_split.is_empty() {
            params = params.with_tensor_split(tensor_split);
        }
        let model =
            LlamaModel::load_from_file(backend, path, &params).map_err(|e| EngineError::Load {
                path: path.to_path_buf(),
                message: format!(
                    "llama.cpp could not load the model ({e}); run with --verbose for its log"
                ),
            })?;
        Ok(Engine {
            model,
            path: path.to_path_buf(),
            opts,
        })
    }

    pub fn n_embd(&self) -> usize {
        self.model.n_embd() as usize
    }

    /// Whether llama.cpp puts BOS before a tokenized prompt (the GGUF's add_bos_token, or
    /// llama.cpp's default for its pre-tokenizer when the key is missing).
    pub fn adds_bos(&self) -> bool {
        self.model.vocab().should_add_bos()
    }
    pub fn n_vocab(&self) -> usize {
        self.model.n_vocab() as usize
    }

    /// Tokenizes with special tokens parsed; `add_bos` follows the model's add_bos flag when true.
    pub fn tokenize(&self, text: &str, add_special: bool) -> Vec<i32> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), add_special, true)
            .into_iter()
            .map(|t| t.0)
            .collect()
    }

    pub fn session(&self, n_ctx: u32) -> Result<Session<'_>, EngineError> {
        let n_ctx = n_ctx.max(16);
        let ctx = self.context(n_ctx, 1)?;
        Ok(Session {
            ctx,
            n_past: 0,
            n_ctx,
        })
    }

    /// A llama.cpp context of `n_ctx` cells shared by `n_seq` sequences (each gets
    /// `n_ctx / n_seq`), with this engine's threads and KV settings.
    pub fn context(&self, n_ctx: u32, n_seq: u32) -> Result<LlamaContext<'_>, EngineError> {
        self.context_batched(n_ctx, n_seq, 2048, false)
    }

    /// [`Engine::context`] with at most `n_batch` tokens per decode (llama.cpp's logical batch,
    /// `-b`; the physical one is at most 512). `unified`: one KV buffer shared by all sequences
    /// (llama.cpp's `--kv-unified`) instead of `n_ctx / n_seq` cells each.
    pub fn context_batched(
        &self,
        n_ctx: u32,
        n_seq: u32,
        n_batch: u32,
        unified: bool,
    ) -> Result<LlamaContext<'_>, EngineError> {
        let backend = backend(self.opts.verbose)?;
        let n_batch = n_ctx.min(n_batch).max(1);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_seq_max(n_seq.max(1))
            .with_kv_unified(unified)
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch.min(512))
            .with_n_threads(self.opts.threads)
            .with_n_threads_batch(self.opts.threads)
            // llama.cpp's own decode timers (one clock read per decode), so generation speed can
            // be quoted the way llama.cpp's tools quote it: decode time only.
            .with_no_perf(false);
        let params = if self.opts.kv_f32 {
            params
                .with_type_k(KvCacheType::F32)
                .with_type_v(KvCacheType::F32)
                .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED)
        } else {
            params
        };
        self.model
            .new_context(backend, params)
            .map_err(rt("creating the llama.cpp context"))
    }
}

#[derive(Debug, Clone)]
pub struct VisionOptions {
    pub use_gpu: bool,
    /// -1 = the mmproj's default.
    pub image_min_tokens: i32,
    pub image_max_tokens: i32,
    /// Flash attention in the vision encoder: None = llama.cpp's auto. It casts K/V to F16, so
    /// exact-parity runs turn it off.
    pub flash_attn: Option<bool>,
}

impl Default for VisionOptions {
    fn default() -> Self {
        VisionOptions {
            use_gpu: true,
            image_min_tokens: -1,
            image_max_tokens: -1,
            flash_attn: None,
        }
    }
}

/// A loaded mmproj bound to a decoder.
pub struct Vision {
    pub mtmd: MtmdContext,
    pub path: PathBuf,
    n_embd: usize,
    /// The official processor's settings when this is an Artemis mmproj written by
    /// artemis-convert (artemis tensors + pixel-budget keys); None = llama.cpp's own
    /// preprocessing (stock Qwen3-VL mmprojs, fork-written Artemis mmprojs).
    pub official: Option<ImagePrep>,
    /// The text that stands for one image in this model's rendered prompts.
    pub placeholder: String,
    /// Values that were defaulted because the mmproj lacks them (fork-written files).
    pub warnings: Vec<String>,
}

/// How images are prepared in Rust before mtmd sees them, as the family's official processor
/// does; chosen from the mmproj's projector type and our own keys ([`crate::keys`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ImagePrep {
    /// Qwen2-VL / Artemis: `smart_resize` within a pixel budget (artemis-format.md §4).
    SmartResize(Params),
    /// CLIPImageProcessor: short side to `shortest_edge`, center crop [h, w] (llava-format.md §4.2).
    ResizeCrop { shortest_edge: u32, crop: [u32; 2] },
}

/// The text standing for one image in a rendered prompt, per projector type, when the mmproj
/// does not say it itself.
fn default_placeholder(projector: &str) -> &'static str {
    match projector {
        "mlp" => "<image>",
        _ => crate::chat::IMAGE_FRAMING,
    }
}

/// The official preprocessing for an mmproj, if it carries what it needs, plus warnings about
/// values llama.cpp will default.
fn official_prep(g: &GgufFile, opts: &VisionOptions) -> (Option<ImagePrep>, Vec<String>) {
    let projector = g
        .get("clip.projector_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if projector == "mlp" {
        let u = |k: &str| g.get(k).and_then(|v| v.as_u32());
        let crop = g
            .get(crate::keys::CROP_SIZE)
            .and_then(|v| v.as_array())
            .and_then(|a| match a {
                [h, w] => Some([h.as_u32()?, w.as_u32()?]),
                _ => None,
            });
        return match (u(crate::keys::RESIZE_SHORTEST_EDGE), crop) {
            (Some(shortest_edge), Some(crop)) => (Some(ImagePrep::ResizeCrop { shortest_edge, crop }), Vec::new()),
            _ => (None, vec!["no official preprocessing keys (written by another converter): llama.cpp letterboxes images where transformers resizes the short side and center-crops; re-convert with artemis-convert".into()]),
        };
    }
    let (p, w) = official_params(g, opts);
    (p.map(ImagePrep::SmartResize), w)
}

/// Qwen2-VL-style (qwen3vl_merger) preprocessing, if the mmproj carries the pixel budget
/// (artemis-format.md §4, §9).
fn official_params(g: &GgufFile, opts: &VisionOptions) -> (Option<Params>, Vec<String>) {
    let u = |k: &str| g.get(k).and_then(|v| v.as_u32());
    let mut warnings = Vec::new();
    let is_artemis =
        g.get("clip.projector_type").and_then(|v| v.as_str()) == Some("qwen3vl_merger");
    if let Some(eps) = g
        .get("clip.vision.attention.layer_norm_epsilon")
        .and_then(|v| v.as_f32())
    {
        if is_artemis && (eps - 1e-6).abs() > 1e-9 {
            warnings.push(format!("ViT LayerNorm epsilon is {eps:e} in this file (the official model uses 1e-6; the fork writes the decoder's rms eps)"));
        }
    }
    let (Some(min_px), Some(max_px)) = (
        u(crate::keys::IMAGE_MIN_PIXELS),
        u(crate::keys::IMAGE_MAX_PIXELS),
    ) else {
        if is_artemis {
            warnings.push("no pixel budget (clip.vision.image_min/max_pixels): llama.cpp's own Qwen-VL preprocessing and budget (8…4096 image tokens) apply, not the official processor's (1…256); re-convert with artemis-convert".into());
        }
        return (None, warnings);
    };
    if !is_artemis {
        return (None, warnings);
    }
    let patch = u("clip.vision.patch_size").unwrap_or(16) as usize;
    let merge = u("clip.vision.spatial_merge_size").unwrap_or(2) as usize;
    let per_token = ((patch * merge) * (patch * merge)) as u64;
    let f3 = |k: &str, d: [f32; 3]| -> [f32; 3] {
        match g.get(k).and_then(|v| v.as_array()) {
            Some(a) if a.len() == 3 => [0, 1, 2].map(|i| a[i].as_f32().unwrap_or(d[i])),
            _ => d,
        }
    };
    let params = Params {
        min_pixels: if opts.image_min_tokens > 0 {
            opts.image_min_tokens as u64 * per_token
        } else {
            min_px as u64
        },
        max_pixels: if opts.image_max_tokens > 0 {
            opts.image_max_tokens as u64 * per_token
        } else {
            max_px as u64
        },
        patch,
        merge,
        temporal: 2,
        mean: f3("clip.vision.image_mean", preprocess::CLIP_MEAN),
        std: f3("clip.vision.image_std", preprocess::CLIP_STD),
    };
    (Some(params), warnings)
}

/// An image's embeddings: `n_tokens` rows of the decoder's width.
pub struct ImageEmbedding {
    pub n_tokens: usize,
    pub data: Vec<f32>,
}

impl Vision {
    pub fn load(engine: &Engine, path: &Path, opts: &VisionOptions) -> Result<Vision, EngineError> {
        let gguf = expect_arch(path, true)?;
        // Width check here, with both numbers, rather than mtmd's generic failure.
        let width = gguf
            .tensor("mm.artemis_fc2.weight")
            .or_else(|| {
                gguf.tensor("mm.2.weight").filter(|_| {
                    gguf.get("clip.projector_type").and_then(|v| v.as_str()) == Some("mlp")
                })
            })
            .map(|t| t.ne.get(1).copied().unwrap_or(0))
            .or_else(|| {
                gguf.get("clip.vision.projection_dim")
                    .and_then(|v| v.as_u32())
                    .map(u64::from)
            });
        if let Some(w) = width {
            if w != engine.n_embd() as u64 {
                return Err(EngineError::WidthMismatch {
                    path: path.to_path_buf(),
                    mmproj: w,
                    decoder: engine.n_embd() as u64,
                });
            }
        }
        let (official, warnings) = official_prep(&gguf, opts);
        let projector = gguf
            .get("clip.projector_type")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let placeholder = gguf
            .get(crate::keys::IMAGE_PLACEHOLDER)
            .and_then(|v| v.as_str())
            .unwrap_or(default_placeholder(projector))
            .to_string();
        // With official preprocessing, mtmd gets the same budget in tokens, so an image already
        // resized to smart_resize's target passes mtmd's own resize unchanged.
        let (min_tokens, max_tokens) = match &official {
            Some(ImagePrep::SmartResize(p)) => {
                let per_token = ((p.patch * p.merge) * (p.patch * p.merge)) as u64;
                (
                    (p.min_pixels / per_token).max(1) as i32,
                    (p.max_pixels / per_token).max(1) as i32,
                )
            }
            _ => (opts.image_min_tokens, opts.image_max_tokens),
        };
        let params = MtmdContextParams {
            use_gpu: opts.use_gpu,
            print_timings: engine.opts.verbose,
            n_threads: engine.opts.threads,
            media_marker: std::ffi::CString::new(llama_cpp_2::mtmd::mtmd_default_marker())
                .map_err(rt("marker"))?,
            image_min_tokens: min_tokens,
            image_max_tokens: max_tokens,
            flash_attn_type: match opts.flash_attn {
                None => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_AUTO,
                Some(true) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED,
                Some(false) => llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED,
            },
        };
        let path_str = path.to_str().ok_or_else(|| EngineError::Load {
            path: path.to_path_buf(),
            message: "path is not UTF-8".into(),
        })?;
        let mtmd = MtmdContext::init_from_file(path_str, &engine.model, &params).map_err(|e| {
            EngineError::Load {
                path: path.to_path_buf(),
                message: format!(
                    "mtmd could not load the mmproj ({e}); run with --verbose for its log"
                ),
            }
        })?;
        Ok(Vision {
            mtmd,
            path: path.to_path_buf(),
            n_embd: engine.n_embd(),
            official,
            placeholder,
            warnings,
        })
    }

    /// Wraps packed RGB pixels for mtmd as they are.
    pub fn bitmap(width: u32, height: u32, rgb: &[u8]) -> Result<MtmdBitmap, EngineError> {
        MtmdBitmap::from_image_data(width, height, rgb).map_err(rt("image bitmap"))
    }

    /// An image as the model expects it: with official preprocessing, converted to RGB on white
    /// and resized to smart_resize's target with Pillow's bicubic (mtmd then leaves it as is);
    /// otherwise plain RGB for llama.cpp's own preprocessing.
    pub fn prepare(&self, img: &image::DynamicImage) -> Result<MtmdBitmap, EngineError> {
        match &self.official {
            Some(ImagePrep::SmartResize(p)) => {
                let prepared = preprocess::preprocess(img, p)
                    .map_err(|e| EngineError::Runtime(e.to_string()))?;
                Self::bitmap(prepared.w_bar, prepared.h_bar, prepared.resized.as_raw())
            }
            Some(ImagePrep::ResizeCrop {
                shortest_edge,
                crop,
            }) => {
                let rgb = preprocess::resize_shortest_and_crop(img, *shortest_edge, *crop)
                    .map_err(|e| EngineError::Runtime(e.to_string()))?;
                Self::bitmap(rgb.width(), rgb.height(), rgb.as_raw())
            }
            None => {
                let rgb = img.to_rgb8();
                Self::bitmap(rgb.width(), rgb.height(), rgb.as_raw())
            }
        }
    }

    /// A rendered prompt in mtmd's terms: each of this model's image placeholders becomes mtmd's
    /// media marker (mtmd adds the model's own image framing tokens itself).
    pub fn mark_images(&self, rendered: &str) -> String {
        rendered.replace(&self.placeholder, llama_cpp_2::mtmd::mtmd_default_marker())
    }

    /// Splits a prompt (one mtmd marker per image) into text and image chunks.
    pub fn tokenize(
        &self,
        text: &str,
        images: &[&MtmdBitmap],
        add_special: bool,
    ) -> Result<MtmdInputChunks, EngineError> {
        let input = MtmdInputText {
            text: text.to_string(),
            add_special,
            parse_special: true,
        };
        self.mtmd
            .tokenize(input, images)
            .map_err(rt("tokenizing the prompt with images"))
    }

    /// Runs the vision tower + merger + projector on one image.
    pub fn encode(&mut self, bitmap: &MtmdBitmap) -> Result<ImageEmbedding, EngineError> {
        let text = MtmdInputText {
            text: llama_cpp_2::mtmd::mtmd_default_marker().to_string(),
            add_special: false,
            parse_special: true,
        };
        let chunks = self
            .mtmd
            .tokenize(text, &[bitmap])
            .map_err(rt("image preprocessing"))?;
        for i in 0..chunks.len() {
            let chunk = chunks
                .get(i)
                .ok_or_else(|| EngineError::Runtime("missing chunk".into()))?;
            if chunk.chunk_type() == MtmdInputChunkType::Image {
                let n_tokens = chunk.n_tokens();
                let data = self
                    .mtmd
                    .encode_chunk_embeddings(&chunk, self.n_embd)
                    .map_err(rt("image encoding"))?;
                return Ok(ImageEmbedding { n_tokens, data });
            }
        }
        Err(EngineError::Runtime("mtmd produced no image chunk".into()))
    }
}

/// One llama.cpp context with its KV cache.
pub struct Session<'m> {
    pub ctx: LlamaContext<'m>,
    pub n_past: i32,
    pub n_ctx: u32,
}

impl<'m> Session<'m> {
    /// Appends `tokens` to the sequence; logits are computed for the last one.
    pub fn eval_tokens(&mut self, tokens: &[i32]) -> Result<(), EngineError> {
        if self.n_past as usize + tokens.len() > self.n_ctx as usize {
            return Err(EngineError::ContextFull {
                needed: self.n_past as usize + tokens.len(),
                n_ctx: self.n_ctx,
            });
        }
        let n_batch = self.ctx.n_batch() as usize;
        for (ci, chunk) in tokens.chunks(n_batch.max(1)).enumerate() {
            let mut batch = LlamaBatch::new(chunk.len(), 1);
            let last_chunk = (ci + 1) * n_batch >= tokens.len();
            for (i, &t) in chunk.iter().enumerate() {
                let logits = last_chunk && i + 1 == chunk.len();
                batch
                    .add(LlamaToken(t), self.n_past, &[0], logits)
                    .map_err(rt("batch"))?;
                self.n_past += 1;
            }
            self.ctx.decode(&mut batch).map_err(rt("llama_decode"))?;
        }
        Ok(())
    }

    /// Appends a prompt whose text holds one mtmd marker per image; logits for the last token.
    pub fn eval_prompt(
        &mut self,
        vision: &mut Vision,
        text: &str,
        images: &[&MtmdBitmap],
        add_special: bool,
    ) -> Result<PromptStats, EngineError> {
        let chunks = vision.tokenize(text, images, add_special)?;
        self.eval_chunks(vision, &chunks)
    }

    /// Evaluates tokenized prompt chunks one at a time, timing image encoding apart from prefill.
    pub fn eval_chunks(
        &mut self,
        vision: &mut Vision,
        chunks: &MtmdInputChunks,
    ) -> Result<PromptStats, EngineError> {
        let needed = self.n_past as usize + chunks.total_tokens();
        if needed > self.n_ctx as usize {
            return Err(EngineError::ContextFull {
                needed,
                n_ctx: self.n_ctx,
            });
        }
        let (n_past, stats) = eval_chunks_into(&mut self.ctx, vision, chunks, self.n_past, 0)?;
        self.n_past = n_past;
        Ok(stats)
    }

    /// Samples up to `max_tokens` tokens, stopping at an end-of-generation token (not emitted)
    /// or when `on_token` returns false. Each kept token is evaluated so the KV cache holds it.
    pub fn generate(
        &mut self,
        engine: &Engine,
        sampling: &Sampling,
        max_tokens: usize,
        mut on_token: impl FnMut(i32, &[u8]) -> bool,
    ) -> Result<GenStats, EngineError> {
        let mut picker = sampling.picker(engine.n_vocab() as i32);
        let vocab = engine.model.vocab();
        self.ctx.reset_timings();
        let started = std::time::Instant::now();
        let mut stats = GenStats::default();
        for _ in 0..max_tokens {
            let token = picker.pick(&self.ctx, -1);
            if vocab.is_eog(token) {
                stats.stopped_at_eog = true;
                break;
            }
            stats.tokens.push(token.0);
            let piece = vocab.token_to_piece(token, true, None);
            if !on_token(token.0, &piece) {
                break;
            }
            if self.n_past as u32 >= self.n_ctx {
                stats.context_full = true;
                break;
            }
            self.eval_tokens(&[token.0])?;
        }
        stats.ms = started.elapsed().as_secs_f64() * 1e3;
        let perf = self.ctx.timings();
        // n_eval is reported as at least 1 even when nothing was decoded.
        if perf.n_eval() > 0 && !stats.tokens.is_empty() {
            stats.decode_ms = perf.t_eval_ms();
            stats.n_decode = perf.n_eval() as usize;
        }
        Ok(stats)
    }

    /// Logits after the last evaluated token.
    pub fn logits(&self) -> Vec<f32> {
        self.ctx.get_logits_ith(-1).to_vec()
    }

    /// Greedy decoding of `n` tokens (argmax, ties to the lowest id), stopping early at `stop`.
    pub fn greedy(&mut self, n: usize, stop: &[i32]) -> Result<Vec<i32>, EngineError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let next = argmax(&self.logits()) as i32;
            out.push(next);
            if stop.contains(&next) {
                break;
            }
            self.eval_tokens(&[next])?;
        }
        Ok(out)
    }
}

/// Evaluates prompt chunks (text and images) into sequence `seq` of `ctx` from position
/// `n_past`, logits for the last one; returns the new position and the timings. Shared by the
/// one-sequence [`Session`] and the server's scheduler.
pub fn eval_chunks_into(
    ctx: &mut LlamaContext<'_>,
    vision: &mut Vision,
    chunks: &MtmdInputChunks,
    mut n_past: i32,
    seq: i32,
) -> Result<(i32, PromptStats), EngineError> {
    let mut stats = PromptStats::default();
    let started = std::time::Instant::now();
    for i in 0..chunks.len() {
        let chunk = chunks
            .get(i)
            .ok_or_else(|| EngineError::Runtime("missing prompt chunk".into()))?;
        n_past = eval_chunk_into(
            ctx,
            vision,
            &chunk,
            n_past,
            seq,
            i + 1 == chunks.len(),
            &mut stats,
        )
        .map_err(|e| EngineError::Runtime(format!("{e} (prompt chunk {i})")))?;
    }
    stats.prefill_ms = started.elapsed().as_secs_f64() * 1e3 - stats.encode_ms;
    Ok((n_past, stats))
}

/// Evaluates one text or image chunk into sequence `seq` (see [`eval_chunks_into`]).
pub fn eval_chunk_into(
    ctx: &mut LlamaContext<'_>,
    vision: &mut Vision,
    chunk: &llama_cpp_2::mtmd::MtmdInputChunk<'_>,
    n_past: i32,
    seq: i32,
    logits_last: bool,
    stats: &mut PromptStats,
) -> Result<i32, EngineError> {
    let n_batch = ctx.n_batch() as i32;
    let mut new_n_past = n_past;
    let rc = if chunk.chunk_type() == MtmdInputChunkType::Image {
        let t0 = std::time::Instant::now();
        // SAFETY: raw handles of live objects; mtmd's output buffer stays valid until the
        // next encode, which happens after decode_image_chunk below.
        let rc =
            unsafe { llama_cpp_sys_2::mtmd_encode_chunk(vision.mtmd.as_raw(), chunk.as_raw()) };
        if rc != 0 {
            return Err(EngineError::Runtime(format!(
                "image encoding failed ({rc})"
            )));
        }
        stats.encode_ms += t0.elapsed().as_secs_f64() * 1e3;
        stats.image_tokens += chunk.n_tokens();
        unsafe {
            let embd = llama_cpp_sys_2::mtmd_get_output_embd(vision.mtmd.as_raw());
            llama_cpp_sys_2::mtmd_helper_decode_image_chunk(
                vision.mtmd.as_raw(),
                ctx.as_raw(),
                chunk.as_raw(),
                embd,
                n_past,
                seq,
                n_batch,
                &mut new_n_past,
                None,
                std::ptr::null_mut(),
            )
        }
    } else {
        stats.text_tokens += chunk.n_tokens();
        // SAFETY: raw handles of live objects.
        unsafe {
            llama_cpp_sys_2::mtmd_helper_eval_chunk_single(
                vision.mtmd.as_raw(),
                ctx.as_raw(),
                chunk.as_raw(),
                n_past,
                seq,
                n_batch,
                logits_last,
                &mut new_n_past,
            )
        }
    };
    if rc != 0 {
        return Err(EngineError::Runtime(format!("llama_decode failed ({rc})")));
    }
    Ok(new_n_past)
}

/// Timings of one prompt evaluation.
#[derive(Debug, Clone, Copy, Default)]
pub struct PromptStats {
    pub text_tokens: usize,
    pub image_tokens: usize,
    /// Vision tower + merger + projector time.
    pub encode_ms: f64,
    /// Decoder time over the prompt (text and image embeddings).
    pub prefill_ms: f64,
}

#[derive(Debug, Clone, Default)]
pub struct GenStats {
    pub tokens: Vec<i32>,
    /// Wall time of the whole loop: sampling, detokenizing, the caller's callback and decoding.
    pub ms: f64,
    /// llama.cpp's decode timer over the loop's one-token decodes (how llama.cpp's tools
    /// report "eval time"), and how many there were.
    pub decode_ms: f64,
    pub n_decode: usize,
    pub stopped_at_eog: bool,
    pub context_full: bool,
}

impl GenStats {
    pub fn tok_per_s(&self) -> f64 {
        self.tokens.len() as f64 / (self.ms / 1e3).max(1e-9)
    }

    /// Decode-only speed, llama.cpp's definition (`n_eval / t_eval`); 0 when nothing was decoded.
    pub fn decode_tok_per_s(&self) -> f64 {
        if self.n_decode == 0 {
            return 0.0;
        }
        self.n_decode as f64 / (self.decode_ms / 1e3).max(1e-9)
    }
}

/// Sampling parameters with llama.cpp's defaults (common/common.h `common_params_sampling`).
#[derive(Debug, Clone)]
pub struct Sampling {
    /// ≤ 0: greedy.
    pub temp: f32,
    pub top_k: i32,
    pub top_p: f32,
    pub min_p: f32,
    pub repeat_penalty: f32,
    pub repeat_last_n: i32,
    /// OpenAI-style penalties (llama.cpp's penalties sampler); 0 = off.
    pub frequency_penalty: f32,
    pub presence_penalty: f32,
    pub seed: u32,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temp: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0xFFFF_FFFF,
        }
    }
}

impl Sampling {
    fn has_penalties(&self) -> bool {
        self.repeat_penalty != 1.0 || self.frequency_penalty != 0.0 || self.presence_penalty != 0.0
    }

    /// How tokens are picked: an argmax for plain greedy decoding, else [`Self::sampler`].
    pub fn picker(&self, n_vocab: i32) -> TokenPicker {
        if self.temp <= 0.0 && !self.has_penalties() {
            TokenPicker::Argmax
        } else {
            TokenPicker::Chain(self.sampler(n_vocab))
        }
    }

    /// llama.cpp's sampler order: penalties, top-k, top-p, min-p, temperature, then draw.
    pub fn sampler(&self, n_vocab: i32) -> LlamaSampler {
        let mut chain = Vec::new();
        if self.has_penalties() {
            chain.push(LlamaSampler::penalties(
                n_vocab,
                self.repeat_last_n,
                self.repeat_penalty,
                self.frequency_penalty,
                self.presence_penalty,
            ));
        }
        if self.temp <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            chain.extend([
                LlamaSampler::top_k(self.top_k),
                LlamaSampler::top_p(self.top_p, 1),
                LlamaSampler::min_p(self.min_p, 1),
                LlamaSampler::temp(self.temp),
                LlamaSampler::dist(self.seed),
            ]);
        }
        LlamaSampler::chain_simple(chain)
    }
}

/// Picks each next token. Plain greedy decoding (temperature ≤ 0, no penalties) is a scan of
/// the logits row for its first maximum, which is exactly what llama.cpp's greedy sampler
/// selects, without `llama_sampler_sample` copying the whole vocabulary (131072 entries for
/// Mistral's) into a candidate array every token. Everything else is llama.cpp's chain.
pub enum TokenPicker {
    Argmax,
    Chain(LlamaSampler),
}

impl TokenPicker {
    /// The token for output row `idx` of the last decode (-1: the last row); the chain sees it
    /// accepted, as llama.cpp's tools do.
    pub fn pick(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        match self {
            TokenPicker::Argmax => LlamaToken(argmax(ctx.get_logits_ith(idx)) as i32),
            TokenPicker::Chain(s) => {
                let t = s.sample(ctx, idx);
                s.accept(t);
                t
            }
        }
    }
}

pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
