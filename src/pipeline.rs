//! One command from safetensors to quantized GGUFs: convert into a hidden temp directory inside
//! the output directory (16-bit), quantize from there into the final files, remove the
//! intermediates — also on failure or Ctrl-C.

use std::path::{Path, PathBuf};

use crate::convert::{self, ConvertError, ConvertOptions};
use crate::plan::FileKind;
use crate::quantize::{self, QuantType, QuantizeError, QuantizeOptions, QuantizeReport};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    #[error("{path}: already exists (use --force to overwrite)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct PipelineReport {
    pub written: Vec<PathBuf>,
    pub quantized: Vec<QuantizeReport>,
    /// Largest number of bytes this run had on disk at once (intermediates + outputs).
    pub peak_disk_bytes: u64,
    /// What convert-then-quantize would leave on disk (16-bit files kept + quantized files).
    pub two_step_disk_bytes: u64,
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// `<name>-<type>.gguf` for a quantized output (the 16-bit suffix replaced), else the convert
/// name.
fn final_name(file_name: &str, target: Option<&QuantType>) -> String {
    match target {
        Some(t) => {
            let stem = file_name.strip_suffix(".gguf").unwrap_or(file_name);
            let base = stem.rsplit_once('-').map_or(stem, |(b, _)| b);
            format!("{base}-{}.gguf", t.name.to_ascii_lowercase())
        }
        None => file_name.to_string(),
    }
}

/// Converts `ckpt` and quantizes the decoder to `dec_q` (and the mmproj to `mm_q` if given; else
/// the mmproj is written directly at its convert outtype).
pub fn convert_and_quantize(
    ckpt: &Path,
    opts: &ConvertOptions,
    dec_q: QuantType,
    mm_q: Option<QuantType>,
    qopts: &QuantizeOptions,
) -> Result<PipelineReport, PipelineError> {
    let out_dir = &opts.out_dir;
    // Everything that can be checked before the long conversion is checked first: the plan, the
    // mmproj quantization type, and every final output name.
    let checkpoint =
        crate::checkpoint::Checkpoint::open(ckpt).map_err(convert::ConvertError::from)?;
    let plan = convert::plan(&checkpoint, opts)?;
    drop(checkpoint);
    if let (Some(t), true) = (&mm_q, plan.files.iter().any(|f| f.kind == FileKind::Mmproj)) {
        quantize::check_mmproj_type(t).map_err(|message| convert::ConvertError::Flag {
            flag: "--mmproj-quantize",
            message,
        })?;
    }
    for file in &plan.files {
        let target = match file.kind {
            FileKind::Decoder => Some(&dec_q),
            FileKind::Mmproj => mm_q.as_ref(),
        };
        let dest = out_dir.join(final_name(&file.file_name, target));
        if std::fs::symlink_metadata(&dest).is_ok() && !opts.force {
            return Err(PipelineError::Exists { path: dest });
        }
        crate::cleanup::check_replaceable(&dest).map_err(|source| PipelineError::Io {
            path: dest.clone(),
            source,
        })?;
    }
    let created = convert::ensure_out_dir(out_dir)?;
    crate::cleanup::sweep_stale(out_dir);
    // The intermediates live in a run-scoped directory, removed on every exit path; after a
    // SIGKILL the next run in this directory removes it.
    let tmp = crate::cleanup::TempDir::create(out_dir).map_err(|source| PipelineError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;

    let mut copts = opts.clone();
    copts.out_dir = tmp.path().to_path_buf();
    copts.force = true;
    let report = convert::convert(ckpt, &copts)?;
    let mut written = Vec::new();
    let mut quantized = Vec::new();
    let intermediates: u64 = report.written.iter().map(|p| size(p)).sum();
    let mut on_disk = intermediates;
    let mut peak = on_disk;
    let mut finals = 0u64;
    // Quantized files are written into the temp directory too and moved into place only when
    // every step succeeded, so a failure leaves no partial set of outputs.
    let mut staged = Vec::new();
    for (file, path) in report.plan.files.iter().zip(&report.written) {
        let target = match file.kind {
            FileKind::Decoder => Some(dec_q),
            FileKind::Mmproj => mm_q,
        };
        let name = final_name(&file.file_name, target.as_ref());
        let dest = out_dir.join(&name);
        if std::fs::symlink_metadata(&dest).is_ok() && !opts.force {
            return Err(PipelineError::Exists { path: dest });
        }
        crate::cleanup::check_replaceable(&dest).map_err(|source| PipelineError::Io {
            path: dest.clone(),
            source,
        })?;
        let staged_path = match target {
            Some(t) => {
                let staged_path = tmp.path().join(format!("q-{name}"));
                let q = quantize::quantize(
                    path,
                    Some(&staged_path),
                    t,
                    &QuantizeOptions {
                        force: true,
                        ..qopts.clone()
                    },
                )?;
                on_disk += size(&staged_path);
                peak = peak.max(on_disk);
                on_disk -= size(path);
                let _ = std::fs::remove_file(path);
                quantized.push(q);
                staged_path
            }
            None => path.clone(),
        };
        finals += size(&staged_path);
        staged.push((staged_path, dest));
    }
    // All outputs appear together or not at all.
    crate::cleanup::commit_paths(&staged)
        .map_err(|(path, source)| PipelineError::Io { path, source })?;
    written.extend(staged.into_iter().map(|(_, to)| to));
    created.keep();
    Ok(PipelineReport {
        written,
        quantized,
        peak_disk_bytes: peak,
        two_step_disk_bytes: intermediates + finals,
    })
}
