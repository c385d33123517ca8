//! artemis-convert: Artemis / Mistral safetensors checkpoint → decoder GGUF + Artemis mmproj GGUF.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use artemis_gguf::convert::{self, ConvertOptions, OutTypeArg};
use artemis_gguf::plan::FileKind;
use artemis_gguf::vocab::AddSpecialOverride;

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Gguf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Only {
    Decoder,
    Mmproj,
}

/// Convert an Artemis (A3 / A3-Instruct) or Mistral-family safetensors checkpoint to llama.cpp GGUF.
///
/// A full Artemis checkpoint gives two files: `<name>-<type>.gguf` (decoder) and
/// `mmproj-<name>-<type>.gguf` (vision tower + merger + Artemis projector).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// Output format.
    #[arg(long = "to", value_enum, default_value = "gguf")]
    to: Target,
    /// Checkpoint directory (config.json + safetensors, single-file or sharded).
    ckpt_dir: PathBuf,
    /// Output directory.
    #[arg(short = 'o', long = "outdir", default_value = ".")]
    out_dir: PathBuf,
    /// Tensor type for matrices: auto (the checkpoint's 16-bit type), f32, f16, bf16, q8_0.
    #[arg(long, default_value = "auto")]
    outtype: OutTypeArg,
    /// Tensor type for the mmproj's matrices (default: --outtype).
    #[arg(long)]
    mmproj_outtype: Option<OutTypeArg>,
    /// Write only one of the two files.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Model name used in file names and general.name (default: the directory name).
    #[arg(long)]
    name: Option<String>,
    /// Print every output tensor and metadata key, and the output sizes, without writing.
    #[arg(long)]
    dry_run: bool,
    /// Worker threads (default: all cores).
    #[arg(short = 't', long, value_parser = |s: &str| artemis_gguf::cli::parse_threads("--threads", s))]
    threads: Option<usize>,
    /// Overwrite existing output files.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// After writing, re-read every tensor and compare it with the checkpoint.
    #[arg(long)]
    verify: bool,
    /// Quantize the decoder with llama.cpp (e.g. q4_k_m); the 16-bit intermediate is a temp file.
    #[arg(long)]
    quantize: Option<String>,
    /// Quantize the mmproj too (q8_0, q6_k, q5_k, q4_k, q5_0, q4_0, f16, bf16).
    #[arg(long = "mmproj-quantize")]
    mmproj_quantize: Option<String>,
    /// Whether llama.cpp adds BOS before a prompt (default: what the official tokenizer does,
    /// read from tokenizer.json's post-processor; --dry-run shows the decision).
    #[arg(long, value_name = "true|false")]
    add_bos: Option<bool>,
    /// Whether llama.cpp adds EOS after a prompt (default: as the official tokenizer does).
    #[arg(long, value_name = "true|false")]
    add_eos: Option<bool>,
    /// Convert tensors holding NaN/Inf (or values past F16's range with --outtype f16) instead of
    /// refusing with the tensor's name.
    #[arg(long)]
    allow_non_finite: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    artemis_gguf::cleanup::install_signal_handler("artemis-convert");
    let Target::Gguf = args.to;
    let opts = ConvertOptions {
        out_dir: args.out_dir.clone(),
        outtype: args.outtype,
        mmproj_outtype: args.mmproj_outtype,
        only: args.only.map(|o| match o {
            Only::Decoder => FileKind::Decoder,
            Only::Mmproj => FileKind::Mmproj,
        }),
        name: args.name.clone(),
        dry_run: args.dry_run,
        threads: args.threads,
        force: args.force,
        quiet: args.quiet,
        verify: args.verify,
        add_special: AddSpecialOverride {
            add_bos: args.add_bos,
            add_eos: args.add_eos,
        },
        allow_non_finite: args.allow_non_finite,
    };
    let started = std::time::Instant::now();
    if let Some(q) = &args.quantize {
        return quantize_pipeline(&args, &opts, q, started);
    }
    if args.mmproj_quantize.is_some() {
        eprintln!("artemis-convert: --mmproj-quantize needs --quantize (use artemis-quantize for the mmproj alone)");
        return ExitCode::FAILURE;
    }
    match convert::convert(&args.ckpt_dir, &opts) {
        Ok(report) => {
            if args.dry_run {
                print!("{}", convert::describe(&report.plan, &args.out_dir));
            } else {
                for (i, p) in report.written.iter().enumerate() {
                    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    print!(
                        "{} ({:.1} MiB)",
                        p.display(),
                        size as f64 / (1 << 20) as f64
                    );
                    if let Some(v) = report.verified.get(i) {
                        print!(": verified {} tensors, 16/32-bit exact", v.tensors);
                        if let Some(e) = v.q8_0_max_abs_err {
                            print!(", Q8_0 max |err| {e:.3e}");
                        }
                    }
                    println!();
                }
                if !args.quiet {
                    eprintln!("converted in {:.1} s", started.elapsed().as_secs_f64());
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("artemis-convert: {e}");
            ExitCode::FAILURE
        }
    }
}

fn quantize_pipeline(
    args: &Args,
    opts: &ConvertOptions,
    q: &str,
    started: std::time::Instant,
) -> ExitCode {
    use artemis_gguf::quantize::{parse_type, QuantizeOptions};
    let parsed = parse_type(q).and_then(|d| {
        Ok((
            d,
            args.mmproj_quantize
                .as_deref()
                .map(parse_type)
                .transpose()?,
        ))
    });
    let (dec_q, mm_q) = match parsed {
        Ok(t) => t,
        Err(e) => {
            eprintln!("artemis-convert: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run {
        eprintln!("artemis-convert: --dry-run with --quantize: plan the conversion without --quantize, then use artemis-quantize --dry-run");
        return ExitCode::FAILURE;
    }
    let qopts = QuantizeOptions {
        quiet: args.quiet,
        threads: args.threads,
        ..Default::default()
    };
    match artemis_gguf::pipeline::convert_and_quantize(&args.ckpt_dir, opts, dec_q, mm_q, &qopts) {
        Ok(r) => {
            for p in &r.written {
                let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                println!(
                    "{} ({:.1} MiB)",
                    p.display(),
                    size as f64 / (1 << 20) as f64
                );
            }
            if !args.quiet {
                let mib = |b: u64| b as f64 / (1 << 20) as f64;
                eprintln!(
                    "converted and quantized in {:.1} s; peak disk use {:.1} MiB (convert-then-quantize keeps {:.1} MiB)",
                    started.elapsed().as_secs_f64(),
                    mib(r.peak_disk_bytes),
                    mib(r.two_step_disk_bytes)
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("artemis-convert: {e}");
            ExitCode::FAILURE
        }
    }
}
