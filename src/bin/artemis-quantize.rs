//! artemis-quantize: llama.cpp quantization for decoder and Artemis mmproj GGUFs, with
//! llama-quantize's positional form: `artemis-quantize [options] IN.gguf [OUT.gguf] TYPE [THREADS]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use artemis_gguf::quantize::{self, QuantizeOptions};

/// Quantize a decoder GGUF (llama.cpp's quantizer, same mixtures as llama-quantize) or an
/// Artemis mmproj GGUF (matmul weights only; position embeddings, patch kernels, norms stay).
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Args {
    /// IN.gguf [OUT.gguf] TYPE [THREADS]
    #[arg(required_unless_present = "list", num_args = 0..=4)]
    positional: Vec<String>,
    /// Importance matrix (llama-imatrix output, GGUF or legacy .dat); decoders only.
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Use imatrix entries only for tensors whose names contain this (repeatable).
    #[arg(long = "include-weights")]
    include_weights: Vec<String>,
    /// Do not use imatrix entries for tensors whose names contain this (repeatable).
    #[arg(long = "exclude-weights")]
    exclude_weights: Vec<String>,
    /// Type for output.weight.
    #[arg(long = "output-tensor-type")]
    output_tensor_type: Option<String>,
    /// Type for token_embd.weight.
    #[arg(long = "token-embedding-type")]
    token_embedding_type: Option<String>,
    /// PATTERN=TYPE: tensors matching the regex PATTERN get TYPE (repeatable).
    #[arg(long = "tensor-type")]
    tensor_type: Vec<String>,
    /// Every tensor gets TYPE (no mixture).
    #[arg(long)]
    pure: bool,
    /// Leave output.weight unquantized.
    #[arg(long = "leave-output-tensor")]
    leave_output_tensor: bool,
    /// Allow quantizing an already quantized file.
    #[arg(long = "allow-requantize")]
    allow_requantize: bool,
    /// Keep the input's split into files.
    #[arg(long = "keep-split")]
    keep_split: bool,
    /// Print each tensor's planned type and the resulting size; write nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// List the types with bits per weight.
    #[arg(long)]
    list: bool,
    /// Overwrite OUT if it exists.
    #[arg(long)]
    force: bool,
    /// No progress bar or summary.
    #[arg(short, long)]
    quiet: bool,
    /// Show llama.cpp's per-tensor log.
    #[arg(short, long)]
    verbose: bool,
}

fn run(args: Args) -> Result<(), String> {
    if args.list {
        println!(
            "{:<10} {:>5}  {:>8}  {}",
            "type",
            "ftype",
            "bpw",
            "notes (bpw of the base type; mixtures keep some tensors higher)"
        );
        for t in quantize::QUANT_TYPES {
            println!(
                "{:<10} {:>5}  {:>8.4}  {}",
                t.name.to_ascii_lowercase(),
                t.ftype,
                quantize::bits_per_weight(t.base),
                t.note
            );
        }
        return Ok(());
    }
    let p = &args.positional;
    // IN TYPE | IN TYPE THREADS | IN OUT TYPE | IN OUT TYPE THREADS, as llama-quantize decides.
    let (input, output, ty, threads) = match p.len() {
        2 => (&p[0], None, &p[1], None),
        3 if quantize::parse_type(&p[1]).is_ok() && p[2].parse::<usize>().is_ok() => (&p[0], None, &p[1], Some(&p[2])),
        3 => (&p[0], Some(&p[1]), &p[2], None),
        4 => (&p[0], Some(&p[1]), &p[2], Some(&p[3])),
        _ => return Err("usage: artemis-quantize [options] IN.gguf [OUT.gguf] TYPE [THREADS] (see --help, --list)".into()),
    };
    let t = quantize::parse_type(ty).map_err(|e| e.to_string())?;
    let ggml = |s: &Option<String>| {
        s.as_deref()
            .map(quantize::parse_ggml_type)
            .transpose()
            .map_err(|e| e.to_string())
    };
    let tensor_types = args
        .tensor_type
        .iter()
        .map(|s| {
            let (pat, ty) = s
                .split_once('=')
                .ok_or_else(|| format!("--tensor-type {s:?}: expected PATTERN=TYPE"))?;
            Ok((
                pat.to_string(),
                quantize::parse_ggml_type(ty).map_err(|e| e.to_string())?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let opts = QuantizeOptions {
        imatrix: args.imatrix.clone(),
        include_weights: args.include_weights.clone(),
        exclude_weights: args.exclude_weights.clone(),
        output_tensor_type: ggml(&args.output_tensor_type)?,
        token_embedding_type: ggml(&args.token_embedding_type)?,
        tensor_types,
        pure: args.pure,
        leave_output_tensor: args.leave_output_tensor,
        allow_requantize: args.allow_requantize,
        keep_split: args.keep_split,
        dry_run: args.dry_run,
        threads: threads
            .map(|s| artemis_gguf::cli::parse_threads("THREADS", s))
            .transpose()?,
        force: args.force,
        quiet: args.quiet,
        verbose: args.verbose,
    };
    let input = PathBuf::from(input);
    let report = quantize::quantize(&input, output.map(PathBuf::from).as_deref(), t, &opts)
        .map_err(|e| e.to_string())?;
    if args.dry_run {
        for c in &report.tensors {
            print!("{:<40} {:>8} -> {:<8}", c.name, c.from, c.to);
            if let Some(n) = &c.note {
                print!("  ({n})");
            }
            println!();
        }
        println!(
            "planned size: {:.2} MiB ({:.2} bits per weight)",
            report.output_bytes as f64 / (1 << 20) as f64,
            report.bits_per_weight()
        );
        return Ok(());
    }
    for c in report.tensors.iter().filter(|c| c.note.is_some()) {
        eprintln!(
            "note: {}: {}",
            c.name,
            c.note.as_deref().unwrap_or_default()
        );
    }
    if let Some(out) = &report.output {
        println!("{}", out.display());
    }
    if !args.quiet {
        eprintln!(
            "{} {:.2} MiB -> {:.2} MiB ({:.2} bits per weight) in {:.1} s",
            if report.is_mmproj {
                "mmproj"
            } else {
                "decoder"
            },
            report.input_bytes as f64 / (1 << 20) as f64,
            report.output_bytes as f64 / (1 << 20) as f64,
            report.bits_per_weight(),
            report.seconds
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    artemis_gguf::cleanup::install_signal_handler("artemis-quantize");
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("artemis-quantize: {e}");
            ExitCode::FAILURE
        }
    }
}
