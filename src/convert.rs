//! artemis-convert: checkpoint → plans (decoder, mmproj, vocab) → GGUF files, streamed one tensor
//! at a time through a bounded window, written atomically.

use std::collections::BTreeSet;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, CheckpointError, SrcDtype};
use crate::config::{ConfigError, TextConfig};
use crate::decoder::{self, MappingError};
use crate::encode;
use crate::families;
use crate::gguf::{align_up, AtomicFile, GgmlType, GgufError, GgufFile, GgufHeader, MetaValue};
use crate::plan::{FileKind, FilePlan, OutType, TensorPlan, Transform};
use crate::vocab::{AddSpecial, AddSpecialOverride, Vocab, VocabError};

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Vocab(#[from] VocabError),
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{dir}: {count} tensor(s) not used by any output: {names}")]
    ExtraTensors {
        dir: PathBuf,
        count: usize,
        names: String,
    },
    #[error("{path}: already exists (use --force to overwrite)")]
    Exists { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Usage { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    NonFinite { path: PathBuf, message: String },
    #[error("{flag}: {message}")]
    Flag { flag: &'static str, message: String },
    #[error("{path}: verification failed: {message}")]
    Verify { path: PathBuf, message: String },
}

/// `--outtype`: a concrete type, or `auto` = the checkpoint's 16-bit type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutTypeArg {
    Auto,
    Fixed(OutType),
}

impl std::str::FromStr for OutTypeArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "auto" => OutTypeArg::Auto,
            "f32" => OutTypeArg::Fixed(OutType::F32),
            "f16" => OutTypeArg::Fixed(OutType::F16),
            "bf16" => OutTypeArg::Fixed(OutType::BF16),
            "q8_0" => OutTypeArg::Fixed(OutType::Q8_0),
            other => {
                return Err(format!(
                    "unknown output type {other:?}; expected auto, f32, f16, bf16 or q8_0"
                ))
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub out_dir: PathBuf,
    pub outtype: OutTypeArg,
    /// None = same as `outtype`.
    pub mmproj_outtype: Option<OutTypeArg>,
    pub only: Option<FileKind>,
    pub name: Option<String>,
    pub dry_run: bool,
    pub threads: Option<usize>,
    pub force: bool,
    pub quiet: bool,
    pub verify: bool,
    /// `--add-bos` / `--add-eos`: replace the rule that reproduces the official tokenizer.
    pub add_special: AddSpecialOverride,
    /// Convert NaN/Inf (and F16 overflow) instead of refusing.
    pub allow_non_finite: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            out_dir: PathBuf::from("."),
            outtype: OutTypeArg::Auto,
            mmproj_outtype: None,
            only: None,
            name: None,
            dry_run: false,
            threads: None,
            force: false,
            quiet: false,
            verify: false,
            add_special: AddSpecialOverride::default(),
            allow_non_finite: false,
        }
    }
}

/// Everything a conversion will write, before any byte is written.
pub struct ConversionPlan {
    /// The family the checkpoint was recognised as.
    pub family: &'static str,
    pub files: Vec<FilePlan>,
    /// Checkpoint tensors deliberately not written, and why, for the dry-run report.
    pub dropped: BTreeSet<String>,
    pub dropped_reason: &'static str,
    /// Where the image preprocessing values came from (mmproj only).
    pub preprocessing: Option<String>,
    /// The decoder's add_bos/add_eos and where they came from (decoder only).
    pub add_special: Option<AddSpecial>,
}

fn resolve_outtype(arg: OutTypeArg, ckpt: &Checkpoint) -> OutType {
    match arg {
        OutTypeArg::Fixed(t) => t,
        OutTypeArg::Auto => match ckpt.dominant_dtype() {
            Some(SrcDtype::BF16) => OutType::BF16,
            _ => OutType::F16,
        },
    }
}

/// `--name` becomes part of file names inside `-o`: a plain file name, nothing that could point
/// elsewhere.
fn check_model_name(name: &str) -> Result<(), ConvertError> {
    let bad = |why: &str| {
        Err(ConvertError::Flag {
            flag: "--name",
            message: format!("{name:?} {why}"),
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("is not a usable file name");
    }
    if name.contains(['/', '\\', '\0']) {
        return bad("must be a file name, without path separators");
    }
    if name.len() > 200 {
        return bad("is longer than 200 bytes");
    }
    Ok(())
}

/// Plans the conversion of `ckpt` (reads only headers and JSON).
pub fn plan(ckpt: &Checkpoint, opts: &ConvertOptions) -> Result<ConversionPlan, ConvertError> {
    let cfg_path = ckpt.config_path();
    let family = families::detect(&ckpt.config, &cfg_path)?;
    let name = opts.name.clone().unwrap_or_else(|| {
        ckpt.dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into())
    });
    check_model_name(&name)?;
    let outtype = resolve_outtype(opts.outtype, ckpt);
    let mm_outtype = resolve_outtype(opts.mmproj_outtype.unwrap_or(opts.outtype), ckpt);

    let (text_json, text_scope) = match family.text_config {
        Some(key) => (
            ckpt.config.get(key).ok_or_else(|| ConfigError {
                path: cfg_path.clone(),
                message: format!("missing {key}"),
            })?,
            format!("{key}."),
        ),
        None => (&ckpt.config, String::new()),
    };
    let text = TextConfig::from_json(text_json, &cfg_path, &text_scope)?;
    let arch = (family.decoder_arch)(text_json).map_err(|message| ConfigError {
        path: cfg_path.clone(),
        message,
    })?;
    if opts.only == Some(FileKind::Mmproj) && family.vision.is_none() {
        return Err(ConvertError::Usage {
            path: cfg_path,
            message: format!(
                "--only mmproj: this is a decoder-only checkpoint ({}); it has no vision tower",
                family.name
            ),
        });
    }

    let mut files = Vec::new();
    let mut consumed = BTreeSet::new();
    let mut dropped = BTreeSet::new();
    let mut dropped_reason = "";
    let mut preprocessing = None;

    let want_decoder = opts.only != Some(FileKind::Mmproj);
    let want_mmproj = family.vision.is_some() && opts.only != Some(FileKind::Decoder);

    // The decoder mapping always runs so that every decoder tensor is checked and accounted for.
    let vocab = if want_decoder {
        let mut vocab = Vocab::from_checkpoint_dir(&ckpt.dir, text.vocab_size, opts.add_special)?;
        if family.chat_template == crate::families::TemplateOwner::Processor {
            vocab.chat_template = crate::vocab::chat_template::processor_template(&ckpt.dir)?;
        }
        Some(vocab)
    } else {
        None
    };
    // A template that does not parse would only fail in chat, after loading the whole model.
    if let Some(source) = vocab.as_ref().and_then(|v| v.chat_template.as_deref()) {
        crate::chat::ChatTemplate::new(source, "", "", &ckpt.dir.display().to_string()).map_err(
            |e| ConvertError::Usage {
                path: ckpt.dir.clone(),
                message: e
                    .to_string()
                    .trim_start_matches(&format!("{}: ", ckpt.dir.display()))
                    .to_string(),
            },
        )?;
    }
    let vocab_meta = vocab.as_ref().map(Vocab::metadata).unwrap_or_default();
    let add_special = vocab.map(|v| v.add_special);
    let dec = decoder::plan(
        ckpt,
        &text,
        arch,
        family.decoder_prefixes,
        outtype,
        format!("{name}-{}.gguf", outtype.suffix()),
        &name,
        vocab_meta,
    )?;
    consumed.extend(dec.consumed);
    if want_decoder {
        files.push(dec.file);
    }

    if let Some(plan_vision) = family.vision {
        let mm = plan_vision(&families::VisionInput {
            ckpt,
            config_path: &cfg_path,
            text: &text,
            outtype: mm_outtype,
            file_name: format!("mmproj-{name}-{}.gguf", mm_outtype.suffix()),
            name: &name,
        })?;
        consumed.extend(mm.consumed);
        dropped.extend(mm.dropped);
        dropped_reason = mm.dropped_reason;
        if want_mmproj {
            files.push(mm.file);
            preprocessing = Some(mm.preprocessing_source);
        }
    }

    // What we would write must pass the checks the runtime applies to a downloaded file: a
    // config's eos_token_id past the vocabulary or a negative epsilon is refused here, not
    // discovered after the conversion.
    for f in &files {
        let header = header_of(f);
        let view = GgufFile {
            path: opts.out_dir.join(&f.file_name),
            version: 3,
            metadata: header.metadata,
            tensors: header.tensors,
            alignment: header.alignment,
            data_offset: 0,
            file_size: 0,
        };
        let checked = match f.kind {
            FileKind::Decoder => crate::validate::decoder(&view),
            FileKind::Mmproj => crate::validate::mmproj(&view),
        };
        checked.map_err(|message| ConfigError {
            path: cfg_path.clone(),
            message: format!(
                "the checkpoint would give an invalid {}: {message}",
                f.file_name
            ),
        })?;
    }

    let extra: Vec<&str> = ckpt
        .tensor_names()
        .filter(|n| !consumed.contains(*n) && !dropped.contains(*n))
        .collect();
    if !extra.is_empty() {
        let shown: Vec<&str> = extra.iter().take(8).copied().collect();
        let more = if extra.len() > 8 {
            format!(", … ({} more)", extra.len() - 8)
        } else {
            String::new()
        };
        return Err(ConvertError::ExtraTensors {
            dir: ckpt.dir.clone(),
            count: extra.len(),
            names: format!("{}{more}", shown.join(", ")),
        });
    }
    Ok(ConversionPlan {
        family: family.name,
        dropped_reason,
        files,
        dropped,
        preprocessing,
        add_special,
    })
}

/// Header (with tensor offsets) of a planned file.
pub fn header_of(file: &FilePlan) -> GgufHeader {
    GgufHeader::new(
        file.metadata.clone(),
        file.tensors
            .iter()
            .map(|t| (t.name.clone(), t.ne.clone(), t.ggml_type, t.nbytes()))
            .collect(),
    )
}

/// Human-readable `--dry-run` report.
pub fn describe(plan: &ConversionPlan, out_dir: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for f in &plan.files {
        let header = header_of(f);
        let size = header.file_size().unwrap_or(0);
        let _ = writeln!(
            s,
            "== {} ({:?}): {} tensors, {} metadata keys, {} bytes ({:.2} MiB)",
            out_dir.join(&f.file_name).display(),
            f.kind,
            f.tensors.len(),
            f.metadata.len(),
            size,
            size as f64 / (1 << 20) as f64
        );
        for (k, v) in &f.metadata {
            let _ = writeln!(s, "  kv  {k} = {}", short_value(v));
        }
        for t in &f.tensors {
            let _ = write!(
                s,
                "  t   {:<36} {:<18} {:<5} {:>12} B  <- {}",
                t.name,
                format!("{:?}", t.ne),
                t.ggml_type.name(),
                t.nbytes(),
                t.source
            );
            if let Some(note) = &t.fallback_note {
                let _ = write!(s, "  ({note})");
            }
            s.push('\n');
        }
    }
    if !plan.dropped.is_empty() {
        let _ = writeln!(
            s,
            "== not written: {} {}",
            plan.dropped.len(),
            plan.dropped_reason
        );
        for name in &plan.dropped {
            let _ = writeln!(s, "  -   {name}");
        }
    }
    if let Some(p) = &plan.preprocessing {
        let _ = writeln!(s, "== image preprocessing from {p}");
    }
    if let Some(a) = &plan.add_special {
        let _ = writeln!(s, "== add_bos = {}: {}", a.add_bos, a.bos_source);
        let _ = writeln!(s, "== add_eos = {}: {}", a.add_eos, a.eos_source);
    }
    s
}

fn short_value(v: &MetaValue) -> String {
    match v {
        MetaValue::Str(s) if s.len() > 60 => format!(
            "{:?}… ({} chars)",
            &s.chars().take(60).collect::<String>(),
            s.chars().count()
        ),
        MetaValue::Array(a) if a.len() > 6 => format!("[{} items]", a.len()),
        MetaValue::Array(a) => format!(
            "[{}]",
            a.iter().map(short_value).collect::<Vec<_>>().join(", ")
        ),
        MetaValue::Str(s) => format!("{s:?}"),
        other => format!("{other:?}"),
    }
}

/// Bytes of output converted per parallel work item; the in-flight window is this times the
/// thread count (times 2), independent of model size.
const CHUNK_BYTES: usize = 4 << 20;

/// Output rows of `t` split into work items of about CHUNK_BYTES each.
fn row_chunks(t: &TensorPlan) -> Vec<std::ops::Range<usize>> {
    let n_rows = (t.n_elements() / t.row_len() as u64) as usize;
    let row_bytes = (t.nbytes() as usize / n_rows.max(1)).max(1);
    let per_chunk = (CHUNK_BYTES / row_bytes).max(1);
    (0..n_rows)
        .step_by(per_chunk)
        .map(|s| s..(s + per_chunk).min(n_rows))
        .collect()
}

/// The source elements `[lo, hi)` that output rows `rows` of `t` read.
fn source_span(t: &TensorPlan, rows: std::ops::Range<usize>) -> (usize, usize) {
    let row_len = t.row_len();
    rows.fold((usize::MAX, 0), |(lo, hi), r| {
        let o = t.transform.source_offset(r, row_len);
        (lo.min(o), hi.max(o + row_len))
    })
}

/// A value the output cannot hold faithfully: NaN/Inf in the checkpoint, or a finite value past
/// F16's range (it would become Inf).
#[derive(Debug, Clone)]
pub struct NonFinite {
    pub row: usize,
    pub value: f32,
    pub overflow: bool,
}

/// Whether a raw 16/32-bit value is NaN or Inf (exponent all ones).
fn raw_non_finite(dtype: SrcDtype, bytes: &[u8]) -> Option<usize> {
    match dtype {
        SrcDtype::F32 => bytes.chunks_exact(4).position(|b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000
        }),
        SrcDtype::F16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00),
        SrcDtype::BF16 => bytes
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80),
    }
}

/// Largest finite F16 (and the largest Q8_0 block maximum whose F16 scale stays finite).
const F16_MAX: f32 = 65504.0;

fn encode_rows(
    ckpt: &Checkpoint,
    t: &TensorPlan,
    rows: std::ops::Range<usize>,
    allow_non_finite: bool,
) -> Result<Vec<u8>, NonFinite> {
    if t.transform == Transform::Zero {
        let mut out = Vec::new();
        let zeros = vec![0f32; t.row_len()];
        for _ in rows {
            encode::encode_row(t.ggml_type, &zeros, &mut out);
        }
        return Ok(out);
    }
    let entry = ckpt.entry(&t.source).expect("planned source exists");
    let data = ckpt.data(entry);
    let row_len = t.row_len();
    let row_bytes = t.nbytes() as usize / (t.n_elements() as usize / row_len);
    let mut out = Vec::with_capacity(rows.len() * row_bytes);
    let same_type = matches!(
        (data.dtype, t.ggml_type),
        (SrcDtype::F32, GgmlType::F32)
            | (SrcDtype::F16, GgmlType::F16)
            | (SrcDtype::BF16, GgmlType::BF16)
    );
    if same_type {
        // Stored as-is: copy the (possibly permuted) rows' bytes.
        for r in rows {
            let raw = data.raw(t.transform.source_offset(r, row_len), row_len);
            if !allow_non_finite {
                if let Some(i) = raw_non_finite(data.dtype, raw) {
                    let mut v = [0f32];
                    data.read_f32(t.transform.source_offset(r, row_len) + i, &mut v);
                    return Err(NonFinite {
                        row: r,
                        value: v[0],
                        overflow: false,
                    });
                }
            }
            out.extend_from_slice(raw);
        }
        return Ok(out);
    }
    let mut buf = vec![0f32; row_len];
    // Q8_0 stores amax/127 as F16
    let limit = match t.ggml_type {
        GgmlType::F16 => F16_MAX,
        GgmlType::Q8_0 => F16_MAX * 127.0,
        _ => f32::INFINITY,
    };
    for r in rows {
        data.read_f32(t.transform.source_offset(r, row_len), &mut buf);
        if !allow_non_finite {
            if let Some(&v) = buf.iter().find(|v| !v.is_finite() || v.abs() > limit) {
                return Err(NonFinite {
                    row: r,
                    value: v,
                    overflow: v.is_finite(),
                });
            }
        }
        encode::encode_row(t.ggml_type, &buf, &mut out);
    }
    Ok(out)
}

/// Writes one planned file into `out_dir` atomically. Returns its path.
/// Writes one planned file into `out_dir` as a temp file; the caller commits it (renames it into
/// place) once every output of the run is complete, so a failure leaves nothing behind.
pub fn write_file(
    ckpt: &Checkpoint,
    file: &FilePlan,
    out_dir: &Path,
    pb: &ProgressBar,
    threads: usize,
    allow_non_finite: bool,
) -> Result<AtomicFile, ConvertError> {
    let path = out_dir.join(&file.file_name);
    let io = |source| ConvertError::Io {
        path: path.clone(),
        source,
    };
    let header = header_of(file);
    let mut atomic = AtomicFile::create(&path).map_err(io)?;
    let mut w = BufWriter::with_capacity(1 << 20, atomic.file());
    let data_start = header.write(&mut w).map_err(io)?;
    // The first value the output cannot hold, with its tensor; it stops the conversion.
    let bad: std::sync::Mutex<Option<(&TensorPlan, NonFinite)>> = std::sync::Mutex::new(None);
    // A writer thread takes converted parts in order while the pool converts the next window,
    // so disk writes overlap conversion; the bounded channel caps memory at ~3 windows.
    let written = std::thread::scope(|scope| -> std::io::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(threads * 4);
        let writer = scope.spawn(move || -> std::io::Result<()> {
            for part in rx {
                w.write_all(&part)?;
                pb.inc(part.len() as u64);
            }
            w.flush()
        });
        let mut pos = data_start;
        for (t, info) in file.tensors.iter().zip(&header.tensors) {
            debug_assert_eq!(pos - data_start, info.offset);
            let entry = ckpt.entry(&t.source);
            for window in row_chunks(t).chunks(threads * 2) {
                let parts: Result<Vec<Vec<u8>>, NonFinite> = window
                    .par_iter()
                    .map(|rows| encode_rows(ckpt, t, rows.clone(), allow_non_finite))
                    .collect();
                let parts = match parts {
                    Ok(p) => p,
                    Err(nf) => {
                        *bad.lock().unwrap_or_else(|e| e.into_inner()) = Some((t, nf));
                        drop(tx);
                        return writer.join().unwrap_or_else(|_| {
                            Err(std::io::Error::other("writer thread panicked"))
                        });
                    }
                };
                for part in parts {
                    pos += part.len() as u64;
                    if tx.send(part).is_err() {
                        break; // the writer failed; its error is returned below
                    }
                }
                // Keep the resident set to the window: drop the source rows just converted.
                let rows =
                    window.first().map_or(0, |r| r.start)..window.last().map_or(0, |r| r.end);
                if let Some(entry) = entry {
                    let (lo, hi) = source_span(t, rows);
                    ckpt.release_elements(entry, lo, hi);
                }
            }
            let padded = align_up(pos - data_start, header.alignment) + data_start;
            let _ = tx.send(vec![0u8; (padded - pos) as usize]);
            pos = padded;
        }
        drop(tx);
        writer
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("writer thread panicked")))
    });
    if let Some((tensor, nf)) = bad.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(ConvertError::NonFinite {
            path: path.clone(),
            message: if nf.overflow {
                format!("tensor {} ({}) row {} holds {}, beyond {}'s range (it would become Inf); use --outtype bf16 or f32, or --allow-non-finite", tensor.source, tensor.name, nf.row, nf.value, tensor.ggml_type.name())
            } else {
                format!("tensor {} ({}) row {} holds {} in the checkpoint; pass --allow-non-finite to convert it anyway", tensor.source, tensor.name, nf.row, nf.value)
            },
        });
    }
    written.map_err(io)?;
    atomic.sync().map_err(io)?;
    Ok(atomic)
}

/// What `--verify` found: tensors checked, and the largest Q8_0 error (16/32-bit tensors must be
/// bit-exact roundings of the source or verification fails).
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyReport {
    pub tensors: usize,
    pub q8_0_max_abs_err: Option<f32>,
}

/// Re-opens a written file and checks every tensor against the checkpoint: header entries equal
/// the plan; 16/32-bit values equal the source rounded to the stored type; Q8_0 values stay
/// within the quantizer's error bound (the largest error is reported).
pub fn verify_file(
    ckpt: &Checkpoint,
    file: &FilePlan,
    path: &Path,
) -> Result<VerifyReport, ConvertError> {
    let fail = |message: String| ConvertError::Verify {
        path: path.to_path_buf(),
        message,
    };
    let gguf = GgufFile::open(path)?;
    let file_handle = std::fs::File::open(path).map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // SAFETY: read-only map of the file we just wrote and closed.
    let bytes = unsafe { memmap2::Mmap::map(&file_handle) }.map_err(|source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if gguf.tensors.len() != file.tensors.len() {
        return Err(fail(format!(
            "{} tensors in the file, {} planned",
            gguf.tensors.len(),
            file.tensors.len()
        )));
    }
    for (key, value) in &file.metadata {
        if gguf.get(key) != Some(value) {
            return Err(fail(format!("metadata {key} differs")));
        }
    }
    // Tensors one after the other, row chunks of each in parallel: memory stays at the window.
    let mut q8_max: Option<f32> = None;
    for (t, info) in file.tensors.iter().zip(&gguf.tensors) {
        if info.name != t.name || info.ne != t.ne || info.ggml_type != t.ggml_type {
            return Err(fail(format!(
                "tensor {} header differs from the plan",
                t.name
            )));
        }
        let start = (gguf.data_offset + info.offset) as usize;
        if t.transform == Transform::Zero {
            if bytes[start..start + t.nbytes() as usize]
                .iter()
                .any(|&b| b != 0)
            {
                return Err(fail(format!("{}: expected zeros", t.name)));
            }
            continue;
        }
        let entry = ckpt.entry(&t.source).expect("planned source exists");
        let data = ckpt.data(entry);
        let row_len = t.row_len();
        let row_bytes = t.nbytes() as usize / (t.n_elements() as usize / row_len).max(1);
        let chunks = row_chunks(t);
        let errs = chunks.par_iter().map(|rows| -> Result<f32, ConvertError> {
            let stored = &bytes[start + rows.start * row_bytes..start + rows.end * row_bytes];
            let values = encode::decode(t.ggml_type, stored).ok_or_else(|| fail(format!("{}: cannot decode {}", t.name, t.ggml_type.name())))?;
            let mut src = vec![0f32; row_len];
            let mut max_err = 0f32;
            for (i, row) in values.chunks_exact(row_len).enumerate() {
                let r = rows.start + i;
                data.read_f32(t.transform.source_offset(r, row_len), &mut src);
                if t.ggml_type == GgmlType::Q8_0 {
                    for (b, (got, want)) in row.chunks(encode::QK8_0).zip(src.chunks(encode::QK8_0)).enumerate() {
                        let bound = encode::q8_0_error_bound(want.iter().fold(0f32, |m, x| m.max(x.abs())));
                        for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
                            let err = (g - w).abs();
                            if !(err <= bound) {
                                return Err(fail(format!("{} row {r} col {}: stored {g}, source {w}, beyond the Q8_0 bound {bound:e}", t.name, b * encode::QK8_0 + k)));
                            }
                            max_err = max_err.max(err);
                        }
                    }
                } else {
                    for (c, (&g, &w)) in row.iter().zip(&src).enumerate() {
                        let exact = encode::round_trip(t.ggml_type, w).unwrap_or(f32::NAN);
                        if g.to_bits() != exact.to_bits() && !(g.is_nan() && exact.is_nan()) {
                            return Err(fail(format!("{} row {r} col {c}: stored {g}, expected {exact} ({})", t.name, t.source)));
                        }
                    }
                }
            }
            // Drop what this chunk touched, in the output and in the source.
            // SAFETY: read-only private mapping of a file nobody writes any more (see Checkpoint::release).
            let _ = unsafe { bytes.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, stored.as_ptr() as usize - bytes.as_ptr() as usize, stored.len()) };
            let (lo, hi) = source_span(t, rows.clone());
            ckpt.release_elements(entry, lo, hi);
            Ok(max_err)
        }).collect::<Result<Vec<f32>, _>>()?;
        ckpt.release(entry);
        if t.ggml_type == GgmlType::Q8_0 {
            q8_max = Some(errs.into_iter().fold(q8_max.unwrap_or(0.0), f32::max));
        }
    }
    Ok(VerifyReport {
        tensors: file.tensors.len(),
        q8_0_max_abs_err: q8_max,
    })
}

/// The result of a conversion: the files written, in order.
pub struct ConvertReport {
    pub plan: ConversionPlan,
    pub written: Vec<PathBuf>,
    /// One entry per written file when `verify` was set.
    pub verified: Vec<VerifyReport>,
}

/// Creates the output directory and its parents if missing (`mkdir -p`), for a plain conversion
/// and for `--quantize` alike.
/// The directories are removed again (when still empty) if the run fails: see [`CreatedDirs`].
pub fn ensure_out_dir(dir: &Path) -> Result<CreatedDirs, ConvertError> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    crate::cleanup::note_created_dirs(&missing);
    let created = CreatedDirs(missing);
    std::fs::create_dir_all(dir).map_err(|e| ConvertError::Usage {
        path: dir.to_path_buf(),
        message: format!("cannot create the output directory: {e}"),
    })?;
    if !dir.is_dir() {
        return Err(ConvertError::Usage {
            path: dir.to_path_buf(),
            message: "cannot create the output directory: not a directory".into(),
        });
    }
    Ok(created)
}

/// Output directories this run created (deepest first); a failed run removes them again when
/// they are still empty, so that it leaves nothing behind. [`CreatedDirs::keep`] on success.
pub struct CreatedDirs(Vec<PathBuf>);

impl CreatedDirs {
    pub fn keep(mut self) {
        crate::cleanup::forget_created_dirs(&self.0);
        self.0.clear();
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
        crate::cleanup::forget_created_dirs(&self.0);
    }
}

/// Plans and (unless `dry_run`) writes every output of `ckpt_dir`.
pub fn convert(ckpt_dir: &Path, opts: &ConvertOptions) -> Result<ConvertReport, ConvertError> {
    let ckpt = Checkpoint::open(ckpt_dir)?;
    let plan = plan(&ckpt, opts)?;
    if opts.dry_run {
        return Ok(ConvertReport {
            plan,
            written: Vec::new(),
            verified: Vec::new(),
        });
    }
    let created = ensure_out_dir(&opts.out_dir)?;
    crate::cleanup::sweep_stale(&opts.out_dir);
    for f in &plan.files {
        let p = opts.out_dir.join(&f.file_name);
        if std::fs::symlink_metadata(&p).is_ok() && !opts.force {
            return Err(ConvertError::Exists { path: p });
        }
        crate::cleanup::check_replaceable(&p).map_err(|source| ConvertError::Io {
            path: p.clone(),
            source,
        })?;
    }
    let threads = opts
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ConvertError::Usage {
            path: opts.out_dir.clone(),
            message: format!("cannot start {threads} threads: {e}"),
        })?;
    let total: u64 = plan
        .files
        .iter()
        .flat_map(|f| &f.tensors)
        .map(TensorPlan::nbytes)
        .sum();
    let pb = crate::progress::bytes(total, opts.quiet);
    let mut pending = Vec::new();
    let mut verified = Vec::new();
    for f in &plan.files {
        pb.set_message(f.file_name.clone());
        let tmp = pool
            .install(|| write_file(&ckpt, f, &opts.out_dir, &pb, threads, opts.allow_non_finite))?;
        if opts.verify {
            pb.set_message(format!("verifying {}", f.file_name));
            let report = pool.install(|| verify_file(&ckpt, f, tmp.tmp_path()))?;
            verified.push(report);
        }
        pending.push(tmp);
    }
    pb.finish_and_clear();
    // Every output is complete (and verified): only now do they appear under their names, all
    // of them or none.
    let written: Vec<PathBuf> = pending.iter().map(|t| t.dest().to_path_buf()).collect();
    AtomicFile::commit_all(pending).map_err(|(path, source)| ConvertError::Io { path, source })?;
    created.keep();
    Ok(ConvertReport {
        plan,
        written,
        verified,
    })
}
