//! artemis-serve: an OpenAI-compatible HTTP server (chat completions with images, completions,
//! models, health, metrics). Flag names follow llama-server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use artemis_gguf::engine::{EngineOptions, VisionOptions};
use artemis_gguf::server::{serve, ImageUrlLimits, ServerConfig};

/// Serve a decoder GGUF (and its mmproj) over an OpenAI-compatible HTTP API.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Decoder GGUF.
    model: PathBuf,
    /// mmproj GGUF (image input).
    #[arg(long)]
    mmproj: Option<PathBuf>,
    /// Address to listen on (a non-loopback address exposes the server to the network).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences decoded together (-np N as in llama-server).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    parallel: u32,
    /// Context tokens per sequence.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(64..=1 << 20))]
    ctx_size: u32,
    /// Threads (default and -1: all cores).
    #[arg(short = 't', long, allow_hyphen_values = true, value_parser = |s: &str| artemis_gguf::cli::parse_threads("-t", s))]
    threads: Option<usize>,
    /// Decoder layers on the GPU (-ngl N|all|auto|-1).
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
    /// Require `Authorization: Bearer KEY` (also from ARTEMIS_API_KEY).
    #[arg(long = "api-key")]
    api_key: Option<String>,
    /// Model name reported by /v1/models and in responses (default: the file name).
    #[arg(long)]
    alias: Option<String>,
    /// Seconds a request may take in all.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Largest request body in bytes (images are sent inline).
    #[arg(long = "body-limit", default_value_t = 32 << 20)]
    body_limit: usize,
    /// Requests that may wait for a free sequence; more get 503.
    #[arg(long = "queue-limit", default_value_t = 64)]
    queue_limit: usize,
    /// Most tokens per decode: the prompt tokens of new requests share each step with the tokens
    /// being generated up to this many (llama-server's -b).
    #[arg(short = 'b', long = "batch-size", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    batch_size: u32,
    /// One KV buffer shared by all sequences (llama-server's -kvu).
    #[arg(long = "kv-unified")]
    kv_unified: bool,
    /// MiB of KV state kept in host memory for conversations whose sequence was given to another
    /// (llama-server's prompt cache; -1: no limit, 0: off).
    #[arg(long = "cache-ram", visible_alias = "cram", default_value_t = 8192, allow_hyphen_values = true, value_parser = clap::value_parser!(i64).range(-1..=1 << 30))]
    cache_ram: i64,
    /// Fetch images given as http(s) URLs (off: only data: URLs), from public addresses only.
    #[arg(long = "allow-image-urls")]
    allow_image_urls: bool,
    /// Let web pages from this origin read answers (CORS; repeatable, `*` for any). Off: no CORS
    /// headers, so browser pages on other origins cannot use the server.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// With --allow-image-urls: fetch from loopback, private and link-local addresses too (the
    /// server then reaches its own network on a client's behalf).
    #[arg(long = "image-url-allow-private", requires = "allow_image_urls")]
    image_url_allow_private: bool,
    /// Seconds one image URL fetch may take (connect, redirects, body).
    #[arg(long = "image-url-timeout", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    image_url_timeout: u64,
    /// Largest image fetched from a URL, in bytes.
    #[arg(long = "image-url-max-bytes", default_value_t = 20 << 20, value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
    image_url_max_bytes: u64,
    /// Most image tokens per image (default: the mmproj's budget).
    #[arg(long = "image-max-tokens", value_parser = clap::value_parser!(i32).range(1..=65536))]
    image_max_tokens: Option<i32>,
    #[arg(long = "image-min-tokens", value_parser = clap::value_parser!(i32).range(1..=65536))]
    image_min_tokens: Option<i32>,
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let args = Args::parse_from(artemis_gguf::cli::llama_style_args(std::env::args_os()));
    let n_gpu_layers = match artemis_gguf::cli::parse_gpu_layers(&args.n_gpu_layers) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("artemis-serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut args = args;
    let tensor_split = match args.rpc.attach() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("artemis-serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.rpc.rpc.is_some() {
        args.no_mmproj_offload = true; // the vision encoder stays local
    }
    let has_key =
        args.api_key.is_some() || std::env::var("ARTEMIS_API_KEY").is_ok_and(|k| !k.is_empty());
    if !matches!(args.host.as_str(), "127.0.0.1" | "localhost" | "::1") {
        eprintln!(
            "artemis-serve: warning: listening on {} exposes the server beyond this machine{}",
            args.host,
            if has_key {
                ""
            } else {
                " without an API key (--api-key)"
            }
        );
    }
    let alias = args.alias.clone().unwrap_or_else(|| {
        args.model
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let cfg = ServerConfig {
        model: args.model.clone(),
        mmproj: args.mmproj.clone(),
        host: args.host.clone(),
        port: args.port,
        parallel: args.parallel as usize,
        ctx_per_seq: args.ctx_size,
        engine: EngineOptions {
            n_gpu_layers,
            threads: args
                .threads
                .unwrap_or_else(artemis_gguf::cli::default_threads) as i32,
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
        api_key: args.api_key.clone().or_else(|| {
            std::env::var("ARTEMIS_API_KEY")
                .ok()
                .filter(|k| !k.is_empty())
        }),
        alias,
        timeout: Duration::from_secs(args.timeout.max(1)),
        body_limit: args.body_limit,
        queue_limit: args.queue_limit,
        batch_size: args.batch_size,
        kv_unified: args.kv_unified,
        image_urls: args.allow_image_urls.then(|| ImageUrlLimits {
            timeout: Duration::from_secs(args.image_url_timeout),
            max_bytes: args.image_url_max_bytes as usize,
            allow_private: args.image_url_allow_private,
        }),
        cors_origins: args.cors_origin.clone(),
        cache_ram: match args.cache_ram {
            -1 => usize::MAX,
            mib => (mib as usize).saturating_mul(1 << 20),
        },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("artemis-serve: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(serve(cfg, |addr| {
        eprintln!("artemis-serve: listening on http://{addr}")
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artemis-serve: {e}");
            ExitCode::FAILURE
        }
    }
}
