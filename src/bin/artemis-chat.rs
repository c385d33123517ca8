//! artemis-chat: image-grounded completions and chat with an Artemis decoder GGUF + mmproj
//! through llama.cpp's mtmd. One-shot (-p), interactive (no -p), batch captioning (--batch or an
//! image directory). Flag names follow llama-mtmd-cli.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use artemis_gguf::chat::{self, ChatTemplate, Conversation, Reply};
use artemis_gguf::engine::{Engine, EngineOptions, Sampling, Vision, VisionOptions};

/// Chat with an Artemis model (decoder GGUF + mmproj GGUF) through llama.cpp.
///
/// Exit status: 0 success; 1 error; 2 batch mode finished but some images failed (each failure
/// is reported in its JSON line).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Decoder GGUF (from artemis-convert / artemis-quantize).
    model: PathBuf,
    /// Artemis mmproj GGUF.
    #[arg(long)]
    mmproj: Option<PathBuf>,
    /// Image file (repeatable; all go into one prompt) or a directory (batch mode).
    #[arg(long)]
    image: Vec<PathBuf>,
    /// Prompt; without it (and without -f), chat interactively.
    #[arg(short = 'p', long = "prompt")]
    prompt: Option<String>,
    /// Read the prompt from a file (as llama.cpp's -f).
    #[arg(short = 'f', long = "file", conflicts_with = "prompt")]
    file: Option<PathBuf>,
    /// System message.
    #[arg(long)]
    system: Option<String>,
    /// Caption every image separately (one JSON line each) instead of one prompt with all images.
    #[arg(long)]
    batch: bool,
    /// Tokens to generate (at most 1048576); -1: until the context is full.
    #[arg(short = 'n', long = "n-predict", default_value = "256", allow_hyphen_values = true, value_parser = artemis_gguf::cli::parse_predict)]
    n_predict: artemis_gguf::cli::Predict,
    /// Temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    temp: f32,
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: i32,
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    #[arg(long = "min-p", default_value_t = 0.05)]
    min_p: f32,
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// RNG seed (default: random).
    #[arg(short = 's', long)]
    seed: Option<u32>,
    /// Context size (default: prompt + images + -n; 4096 for interactive chat).
    /// 0: the model's training context.
    #[arg(short = 'c', long = "ctx-size", allow_hyphen_values = true, value_parser = artemis_gguf::cli::parse_ctx)]
    ctx_size: Option<artemis_gguf::cli::CtxSize>,
    /// Threads (default and -1: all cores; at most 512).
    #[arg(short = 't', long, allow_hyphen_values = true, value_parser = |s: &str| artemis_gguf::cli::parse_threads("-t", s))]
    threads: Option<usize>,
    /// Decoder layers to offload to the GPU (-ngl N as in llama.cpp): a number, "all"/"auto", or
    /// a negative number (all).
    #[arg(
        long = "n-gpu-layers",
        visible_alias = "gpu-layers",
        default_value = "0",
        allow_hyphen_values = true
    )]
    n_gpu_layers: String,
    /// Keep the mmproj on the CPU.
    #[arg(long = "no-mmproj-offload")]
    no_mmproj_offload: bool,
    #[command(flatten)]
    rpc: artemis_gguf::rpc::RpcArgs,
    /// Most image tokens per image (default: the budget stored in the mmproj, 256 for Artemis).
    #[arg(long = "image-max-tokens", value_parser = clap::value_parser!(i32).range(1..=65536))]
    image_max_tokens: Option<i32>,
    /// Fewest image tokens per image (default: from the mmproj).
    #[arg(long = "image-min-tokens", value_parser = clap::value_parser!(i32).range(1..=65536))]
    image_min_tokens: Option<i32>,
    /// Render the template with thinking enabled.
    #[arg(long, conflicts_with = "no_think")]
    think: bool,
    /// Render the template with thinking disabled (A3-Instruct non-thinking prompts).
    #[arg(long = "no-think")]
    no_think: bool,
    /// One-shot: print one JSON object (text, token_ids, timings) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Keep the thinking block in --json / batch text.
    #[arg(long = "keep-thinking")]
    keep_thinking: bool,
    /// Batch mode: images captioned at once (sequences decoded together, -np N as llama-server).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel: u32,
    /// Show llama.cpp's log.
    #[arg(short, long)]
    verbose: bool,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Streams reply pieces to stdout, dimming the thinking block on a terminal.
struct Printer {
    in_think: bool,
    color: bool,
}

impl Printer {
    fn print(&mut self, piece: &str) {
        let mut out = std::io::stdout().lock();
        let mut rest = piece;
        while !rest.is_empty() {
            let marker = if self.in_think { "</think>" } else { "<think>" };
            let (head, tail, hit) = match rest.find(marker) {
                Some(i) => (&rest[..i + marker.len()], &rest[i + marker.len()..], true),
                None => (rest, "", false),
            };
            if self.in_think && self.color {
                let _ = write!(out, "{DIM}{head}{RESET}");
            } else {
                let _ = write!(out, "{head}");
            }
            if hit {
                self.in_think = !self.in_think;
            }
            rest = tail;
        }
        if let Err(e) = out.flush() {
            stdout_failed(e);
        }
    }
}

/// Writes a line to stdout. SIGPIPE stays ignored (a lost RPC worker must surface as EPIPE
/// and an error line, not kill the process), so a reader that went away (`| head`) is handled
/// here: the program ends quietly, as a C tool would, instead of println!'s panic.
fn out_line(s: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{s}").and_then(|_| out.flush()) {
        stdout_failed(e);
    }
}

fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("artemis-chat: writing to stdout: {e}");
    std::process::exit(1);
}

fn image_files(args: &Args) -> Result<(Vec<PathBuf>, bool), String> {
    let mut files = Vec::new();
    let mut batch = args.batch;
    for p in &args.image {
        if p.is_dir() {
            batch = true;
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(p.clone());
        }
    }
    Ok((files, batch))
}

fn print_timings(r: &Reply) {
    eprintln!(
        "\n[image encode {:.1} ms ({} image tokens) | prompt {} tokens, {:.1} tok/s | generated {} tokens, {:.1} tok/s ({:.1} decode only)]",
        r.encode_ms, r.image_tokens, r.prompt_tokens, r.prompt_tok_per_s, r.generated_tokens, r.tok_per_s, r.decode_tok_per_s
    );
}

/// A context size computed from the prompt and -n, refused (not wrapped) when beyond -c's bound.
fn auto_ctx(tokens: usize) -> Result<u32, String> {
    u32::try_from(tokens)
        .ok()
        .filter(|&t| t <= artemis_gguf::cli::MAX_CTX)
        .ok_or_else(|| format!("the prompt and -n need {tokens} tokens of context, more than the {} that -c allows", artemis_gguf::cli::MAX_CTX))
}

/// Batch captioning on the server's scheduler: `--parallel` sequences decoded together, images
/// prepared on this thread while the engine thread generates. One JSON line per image, in order.
fn batch_parallel(
    args: &Args,
    files: &[PathBuf],
    n_gpu_layers: u32,
    threads: i32,
    tensor_split: Vec<f32>,
) -> Result<u8, String> {
    use artemis_gguf::engine::ImagePrep;
    use artemis_gguf::scheduler::{Event, Job, PreparedImage, Scheduler, SchedulerConfig};
    let mm = args.mmproj.clone().ok_or("--image needs --mmproj")?;
    let template = ChatTemplate::from_gguf(&args.model).map_err(|x| x.to_string())?;
    let thinking = if args.think {
        Some(true)
    } else if args.no_think {
        Some(false)
    } else {
        None
    };
    let prompt = args.prompt.clone().unwrap_or_default();
    let metrics = std::sync::Arc::new(artemis_gguf::server::metrics::Metrics::default());
    let ctx_per_seq = args.ctx_size.and_then(|c| match c {
        artemis_gguf::cli::CtxSize::Tokens(n) => Some(n),
        artemis_gguf::cli::CtxSize::Training => None,
    });
    let max_tokens = match args.n_predict {
        artemis_gguf::cli::Predict::Tokens(n) => Some(n),
        artemis_gguf::cli::Predict::UntilContextFull => None,
    };
    let (sched, ready) = Scheduler::start(
        SchedulerConfig {
            model: args.model.clone(),
            mmproj: Some(mm.clone()),
            engine: EngineOptions {
                n_gpu_layers,
                threads,
                verbose: args.verbose,
                kv_f32: false,
            },
            tensor_split,
            vision: VisionOptions {
                use_gpu: !args.no_mmproj_offload,
                image_min_tokens: args.image_min_tokens.unwrap_or(-1),
                image_max_tokens: args.image_max_tokens.unwrap_or(-1),
                flash_attn: None,
            },
            parallel: args.parallel as usize,
            ctx_per_seq: ctx_per_seq.unwrap_or(256 + 512 + max_tokens.unwrap_or(256) as u32),
            queue_limit: files.len().max(1),
            // captions are independent: nothing to come back to
            cache_ram: 0,
            batch_size: 2048,
            kv_unified: false,
        },
        metrics,
    );
    let info = ready
        .recv()
        .map_err(|_| "the engine thread stopped".to_string())??;
    for w in &info.warnings {
        eprintln!("artemis-chat: warning: {}: {w}", mm.display());
    }
    let mut messages: Vec<chat::Message> = args
        .system
        .iter()
        .map(|s| chat::Message::text("system", s))
        .collect();
    messages.push(chat::Message::user(1, &prompt));
    let rendered = template
        .render(&messages, true, thinking)
        .map_err(|x| x.to_string())?;
    let opens_think = rendered.trim_end().ends_with("<think>");
    let placeholder = info.placeholder.clone().unwrap_or_default();
    let marked = rendered.replace(&placeholder, llama_cpp_2::mtmd::mtmd_default_marker());
    let sampling = Sampling {
        temp: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        seed: args.seed.unwrap_or(0xFFFF_FFFF),
        ..Sampling::default()
    };
    let pb = artemis_gguf::progress::items(files.len() as u64, false, "images");
    pb.set_message("captioning");
    // submit every image (preparation errors are reported in order below)
    let mut pending = Vec::new();
    for f in files {
        let prepared = chat::load_image(f)
            .map_err(|x| x.to_string())
            .and_then(|img| {
                let rgb = match &info.prep {
                    Some(ImagePrep::SmartResize(p)) => {
                        artemis_gguf::preprocess::preprocess(&img, p)
                            .map_err(|x| x.to_string())?
                            .resized
                    }
                    Some(ImagePrep::ResizeCrop {
                        shortest_edge,
                        crop,
                    }) => artemis_gguf::preprocess::resize_shortest_and_crop(
                        &img,
                        *shortest_edge,
                        *crop,
                    )
                    .map_err(|x| x.to_string())?,
                    None => img.to_rgb8(),
                };
                Ok(PreparedImage::new(
                    rgb.width(),
                    rgb.height(),
                    rgb.into_raw(),
                ))
            });
        let rx = prepared.and_then(|image| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let job = Job {
                prompt: marked.clone(),
                images: vec![image],
                sampling: sampling.clone(),
                max_tokens,
                stop: Vec::new(),
                ignore_eos: false,
                stream: false,
                events: tx,
            };
            sched.submit(job).map_err(|e| format!("{e:?}"))?;
            Ok(rx)
        });
        pending.push((f, rx));
    }
    let mut failed = 0;
    for (f, rx) in pending {
        let line = match rx {
            Err(err) => {
                failed += 1;
                serde_json::json!({"image": f.display().to_string(), "error": err})
            }
            Ok(mut rx) => {
                let mut text = String::new();
                let mut out = None;
                while let Some(ev) = rx.blocking_recv() {
                    match ev {
                        Event::Text(t) => text.push_str(&t),
                        Event::Done {
                            completion_tokens, ..
                        } => {
                            out = Ok(completion_tokens).into();
                            break;
                        }
                        Event::Failed { message, .. } => {
                            out = Some(Err(message));
                            break;
                        }
                        Event::Started { .. } => {}
                    }
                }
                match out {
                    Some(Ok(tokens)) => {
                        let text = if args.keep_thinking {
                            text
                        } else {
                            chat::strip_thinking(&text, opens_think)
                        };
                        serde_json::json!({"image": f.display().to_string(), "text": text, "tokens": tokens})
                    }
                    other => {
                        failed += 1;
                        let err = match other {
                            Some(Err(m)) => m,
                            _ => "the engine stopped".into(),
                        };
                        serde_json::json!({"image": f.display().to_string(), "error": err})
                    }
                }
            }
        };
        pb.suspend(|| out_line(&line.to_string()));
        pb.inc(1);
    }
    pb.finish_and_clear();
    Ok(if failed > 0 { 2 } else { 0 })
}

/// Prompt files larger than this are refused (a prompt that size would not fit any context).
const MAX_PROMPT_FILE_BYTES: u64 = 16 << 20;

fn run(mut args: Args) -> Result<u8, String> {
    // Flags that contradict each other are reported before anything is loaded.
    if let (Some(lo), Some(hi)) = (args.image_min_tokens, args.image_max_tokens) {
        if lo > hi {
            return Err(format!(
                "--image-min-tokens {lo} is above --image-max-tokens {hi}"
            ));
        }
    }
    if let Some(f) = &args.file {
        let bytes = artemis_gguf::input::read_regular(f, MAX_PROMPT_FILE_BYTES)
            .map_err(|x| format!("-f {}: {x}", f.display()))?;
        let text =
            String::from_utf8(bytes).map_err(|_| format!("-f {}: not valid UTF-8", f.display()))?;
        args.prompt = Some(text);
    }
    let e = |x: chat::ChatError| x.to_string();
    let n_gpu_layers = artemis_gguf::cli::parse_gpu_layers(&args.n_gpu_layers)?;
    let tensor_split = args.rpc.attach()?;
    if args.rpc.rpc.is_some() {
        // the vision encoder stays local
        args.no_mmproj_offload = true;
    }
    let threads = args
        .threads
        .unwrap_or_else(artemis_gguf::cli::default_threads) as i32;
    if args.parallel > 1 {
        let (files, batch) = image_files(&args)?;
        if batch && args.prompt.is_some() {
            return batch_parallel(&args, &files, n_gpu_layers, threads, tensor_split);
        }
        return Err(
            "--parallel applies to batch captioning (--batch or an image directory, with -p)"
                .into(),
        );
    }
    let engine = Engine::load_split(
        &args.model,
        EngineOptions {
            n_gpu_layers,
            threads,
            verbose: args.verbose,
            kv_f32: false,
        },
        &tensor_split,
    )
    .map_err(|x| x.to_string())?;
    if args.verbose {
        eprintln!(
            "artemis-chat: llama.cpp system info: {}",
            artemis_gguf::llama::system_info()
        );
    }
    if n_gpu_layers > 0 && artemis_gguf::llama::offload_devices() == 0 {
        eprintln!("artemis-chat: warning: this build has no GPU backend and no --rpc worker was given; -ngl {} ignored (build with --features cuda)", args.n_gpu_layers);
    }
    let template = ChatTemplate::from_gguf(&args.model).map_err(e)?;
    // -n -1: generate until the context is full; the automatic context then leaves 4096 tokens.
    use artemis_gguf::cli::{CtxSize, Predict};
    let (max_tokens, predict_for_ctx) = match args.n_predict {
        Predict::Tokens(n) => (n, n),
        Predict::UntilContextFull => (usize::MAX, 4096),
    };
    // -c 0: the model's training context.
    let fixed_ctx: Option<u32> = match args.ctx_size {
        None => None,
        Some(CtxSize::Training) => Some(
            engine
                .model
                .n_ctx_train()
                .clamp(1, artemis_gguf::cli::MAX_CTX),
        ),
        Some(CtxSize::Tokens(c)) => Some(c),
    };
    let mut vision = match &args.mmproj {
        Some(mm) => {
            // Budget: the mmproj's (official) unless overridden; see Vision::load.
            let opts = VisionOptions {
                use_gpu: !args.no_mmproj_offload,
                image_min_tokens: args.image_min_tokens.unwrap_or(-1),
                image_max_tokens: args.image_max_tokens.unwrap_or(-1),
                flash_attn: None,
            };
            let vision = Vision::load(&engine, mm, &opts).map_err(|x| x.to_string())?;
            for w in &vision.warnings {
                eprintln!("artemis-chat: warning: {}: {w}", mm.display());
            }
            Some(vision)
        }
        None => None,
    };
    let sampling = Sampling {
        temp: args.temp,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repeat_penalty: args.repeat_penalty,
        repeat_last_n: 64,
        seed: args.seed.unwrap_or(0xFFFF_FFFF),
        ..Sampling::default()
    };
    let thinking = if args.think {
        Some(true)
    } else if args.no_think {
        Some(false)
    } else {
        None
    };
    if let Some(w) = template.doubled_bos_warning(thinking, engine.adds_bos()) {
        eprintln!("artemis-chat: warning: {}: {w}", args.model.display());
    }
    let (files, batch) = image_files(&args)?;
    if !files.is_empty() && vision.is_none() {
        return Err("--image needs --mmproj".into());
    }
    let max_image_tokens = if vision.is_some() {
        256.max(args.image_max_tokens.unwrap_or(0) as usize)
    } else {
        0
    };

    match (&args.prompt, batch) {
        (Some(prompt), true) => {
            // Batch captioning: model and mmproj loaded once, context reset between images.
            let n_ctx = match fixed_ctx {
                Some(c) => c,
                None => auto_ctx(
                    engine.tokenize(prompt, true).len() + 64 + max_image_tokens + predict_for_ctx,
                )?,
            };
            let session = engine.session(n_ctx).map_err(|x| x.to_string())?;
            let mut conv = Conversation::new(session, &template, args.system.clone(), thinking);
            let opens_think = conv.opens_thinking().map_err(e)?;
            let pb = artemis_gguf::progress::items(files.len() as u64, false, "images");
            pb.set_message("captioning");
            let mut failed = 0;
            for f in &files {
                conv.clear();
                let bitmap = match vision.as_ref() {
                    Some(v) => chat::image_bitmap(v, f),
                    None => Err(chat::ChatError::Usage("--image needs --mmproj".into())),
                };
                let line = match bitmap.and_then(|bmp| {
                    conv.turn(
                        &engine,
                        vision.as_mut(),
                        &[&bmp],
                        prompt,
                        &sampling,
                        max_tokens,
                        |_| {},
                    )
                }) {
                    Ok(r) => {
                        let text = if args.keep_thinking {
                            r.text.clone()
                        } else {
                            chat::strip_thinking(&r.text, opens_think)
                        };
                        serde_json::json!({"image": f.display().to_string(), "text": text, "tokens": r.generated_tokens, "encode_ms": r.encode_ms, "tok_per_s": r.tok_per_s})
                    }
                    Err(err) => {
                        failed += 1;
                        serde_json::json!({"image": f.display().to_string(), "error": err.to_string()})
                    }
                };
                pb.suspend(|| out_line(&line.to_string()));
                pb.inc(1);
            }
            pb.finish_and_clear();
            Ok(if failed > 0 { 2 } else { 0 })
        }
        (Some(prompt), false) => {
            let bitmaps = match vision.as_ref() {
                Some(v) => files
                    .iter()
                    .map(|f| chat::image_bitmap(v, f))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(e)?,
                None => Vec::new(),
            };
            let refs: Vec<_> = bitmaps.iter().collect();
            let n_ctx = match fixed_ctx {
                Some(c) => c,
                None => {
                    let probe = template
                        .render(&[chat::Message::user(refs.len(), prompt)], true, thinking)
                        .map_err(e)?;
                    let prompt_tokens = match vision.as_ref() {
                        Some(v) => v
                            .tokenize(&v.mark_images(&probe), &refs, true)
                            .map_err(|x| x.to_string())?
                            .total_tokens(),
                        None => engine.tokenize(&probe, true).len(),
                    };
                    auto_ctx(
                        prompt_tokens
                            + args
                                .system
                                .as_ref()
                                .map_or(0, |s| engine.tokenize(s, false).len() + 8)
                            + predict_for_ctx
                            + 1,
                    )?
                }
            };
            let session = engine.session(n_ctx).map_err(|x| x.to_string())?;
            let mut conv = Conversation::new(session, &template, args.system.clone(), thinking);
            let opens_think = conv.opens_thinking().map_err(e)?;
            let mut printer = Printer {
                in_think: opens_think,
                color: std::io::stdout().is_terminal(),
            };
            let json = args.json;
            let reply = conv
                .turn(
                    &engine,
                    vision.as_mut(),
                    &refs,
                    prompt,
                    &sampling,
                    max_tokens,
                    |piece| {
                        if !json {
                            printer.print(piece)
                        }
                    },
                )
                .map_err(e)?;
            if json {
                let mut v = serde_json::to_value(&reply).map_err(|x| x.to_string())?;
                if !args.keep_thinking {
                    v["text"] = chat::strip_thinking(&reply.text, opens_think).into();
                }
                out_line(&v.to_string());
            } else {
                out_line("");
                print_timings(&reply);
            }
            Ok(0)
        }
        (None, _) => {
            let session = engine
                .session(fixed_ctx.unwrap_or(4096))
                .map_err(|x| x.to_string())?;
            let mut conv = Conversation::new(session, &template, args.system.clone(), thinking);
            let opens_think = conv.opens_thinking().map_err(e)?;
            let tty = std::io::stdin().is_terminal();
            let mut pending: Vec<PathBuf> = files.clone();
            if tty {
                eprintln!("artemis-chat: /image PATH attaches an image to your next message, /clear starts over, /exit quits");
            }
            let stdin = std::io::stdin();
            loop {
                if tty {
                    eprint!("> ");
                }
                let mut raw = Vec::new();
                if stdin
                    .lock()
                    .read_until(b'\n', &mut raw)
                    .map_err(|x| format!("reading standard input: {x}"))?
                    == 0
                {
                    break;
                }
                let Ok(line) = String::from_utf8(raw) else {
                    eprintln!("artemis-chat: that line is not valid UTF-8; nothing was sent");
                    continue;
                };
                let line = line.trim_end_matches(['\n', '\r']);
                if let Some(p) = line.strip_prefix("/image ") {
                    pending.push(PathBuf::from(p.trim()));
                    continue;
                }
                match line.trim() {
                    "/exit" | "/quit" => break,
                    "/clear" => {
                        conv.clear();
                        pending.clear();
                        continue;
                    }
                    "" => continue,
                    _ => {}
                }
                let loaded: Result<Vec<_>, _> = match vision.as_ref() {
                    Some(v) => pending
                        .drain(..)
                        .map(|f| chat::image_bitmap(v, &f))
                        .collect(),
                    None if !pending.is_empty() => {
                        Err(chat::ChatError::Usage("/image needs --mmproj".into()))
                    }
                    None => Ok(Vec::new()),
                };
                pending.clear();
                let bitmaps = match loaded {
                    Ok(b) => b,
                    Err(err) => {
                        eprintln!("artemis-chat: {err}");
                        continue;
                    }
                };
                let refs: Vec<_> = bitmaps.iter().collect();
                let mut printer = Printer {
                    in_think: opens_think,
                    color: std::io::stdout().is_terminal(),
                };
                match conv.turn(
                    &engine,
                    vision.as_mut(),
                    &refs,
                    line,
                    &sampling,
                    max_tokens,
                    |p| printer.print(p),
                ) {
                    Ok(r) => {
                        out_line("");
                        print_timings(&r);
                    }
                    Err(err) => {
                        eprintln!("artemis-chat: {err}");
                        conv.messages.pop();
                    }
                }
            }
            Ok(0)
        }
    }
}

fn main() -> ExitCode {
    match run(Args::parse_from(artemis_gguf::cli::llama_style_args(
        std::env::args_os(),
    ))) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("artemis-chat: {e}");
            ExitCode::FAILURE
        }
    }
}
