//! artemis-quantize: decoder GGUFs through llama.cpp's own quantizer (same mixture rules as
//! llama-quantize); Artemis mmproj GGUFs (`general.architecture = clip`, which llama.cpp's
//! quantizer does not handle) by quantizing their matmul weights with ggml's kernels and the same
//! fallback table, keeping position embeddings, patch kernels, norms and biases as they are.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::encode;
use crate::gguf::{align_up, AtomicFile, GgmlType, GgufError, GgufFile, GgufHeader, MetaValue};

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("unknown type {given:?}; valid types: {valid}")]
    UnknownType { given: String, valid: String },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{path}: already exists (use --force to overwrite)")]
    Exists { path: PathBuf },
    #[error("{path}: llama.cpp could not quantize: {message}")]
    Llama { path: PathBuf, message: String },
}

/// One llama.cpp file type (`llama_ftype`), as llama-quantize names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantType {
    pub name: &'static str,
    pub ftype: u32,
    /// The ggml type most tensors get (mixtures keep some tensors at higher precision).
    pub base: GgmlType,
    pub note: &'static str,
}

const fn q(name: &'static str, ftype: u32, base: u32, note: &'static str) -> QuantType {
    QuantType {
        name,
        ftype,
        base: GgmlType::Other(base),
        note,
    }
}

/// llama.h `enum llama_ftype` with llama-quantize's names (tools/quantize/quantize.cpp). Base
/// ggml ids from ggml.h `enum ggml_type`.
pub const QUANT_TYPES: &[QuantType] = &[
    q("Q4_0", 2, 2, ""),
    q("Q4_1", 3, 3, ""),
    q("Q5_0", 8, 6, ""),
    q("Q5_1", 9, 7, ""),
    q("IQ2_XXS", 19, 16, "needs an imatrix"),
    q("IQ2_XS", 20, 17, "needs an imatrix"),
    q("IQ2_S", 28, 22, "needs an imatrix"),
    q("IQ2_M", 29, 22, "needs an imatrix"),
    q("IQ1_S", 24, 19, "needs an imatrix"),
    q("IQ1_M", 31, 29, "needs an imatrix"),
    q("TQ1_0", 36, 34, "ternary"),
    q("TQ2_0", 37, 35, "ternary"),
    q("Q2_K", 10, 10, "mixture"),
    q("Q2_K_S", 21, 10, "mixture"),
    q("IQ3_XXS", 23, 18, "needs an imatrix"),
    q("IQ3_S", 26, 21, ""),
    q("IQ3_M", 27, 21, "mixture"),
    q("Q3_K_S", 11, 11, "mixture"),
    q("Q3_K_M", 12, 11, "mixture"),
    q("Q3_K_L", 13, 11, "mixture"),
    q("IQ3_XS", 22, 21, "mixture"),
    q("IQ4_NL", 25, 20, ""),
    q("IQ4_XS", 30, 23, ""),
    q("Q4_K_S", 14, 12, "mixture"),
    q("Q4_K_M", 15, 12, "mixture: attn_v/ffn_down partly Q6_K"),
    q("Q5_K_S", 16, 13, "mixture"),
    q("Q5_K_M", 17, 13, "mixture"),
    q("Q6_K", 18, 14, ""),
    q("Q8_0", 7, 8, ""),
    q("MXFP4_MOE", 38, 39, "MoE experts only"),
    q("F16", 1, 1, ""),
    q("BF16", 32, 30, ""),
    q("F32", 0, 0, ""),
];

/// llama-quantize's aliases.
const ALIASES: &[(&str, &str)] = &[("Q3_K", "Q3_K_M"), ("Q4_K", "Q4_K_M"), ("Q5_K", "Q5_K_M")];

pub fn valid_type_names() -> String {
    QUANT_TYPES
        .iter()
        .map(|t| t.name.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `q4_k_m`, `Q4_K_M`, an alias (`q4_k`) or the ftype number (`15`).
pub fn parse_type(s: &str) -> Result<QuantType, QuantizeError> {
    let up = s.trim().to_ascii_uppercase();
    let up = ALIASES
        .iter()
        .find(|(a, _)| *a == up)
        .map(|(_, t)| t.to_string())
        .unwrap_or(up);
    let found = match up.parse::<u32>() {
        Ok(n) => QUANT_TYPES.iter().find(|t| t.ftype == n),
        Err(_) => QUANT_TYPES.iter().find(|t| t.name == up),
    };
    found.copied().ok_or_else(|| QuantizeError::UnknownType {
        given: s.to_string(),
        valid: valid_type_names(),
    })
}

/// A single ggml tensor type by name (for --output-tensor-type, --tensor-type): `q6_k`, `f16`…
pub fn parse_ggml_type(s: &str) -> Result<GgmlType, QuantizeError> {
    let want = s.trim().to_ascii_lowercase();
    (0..43u32)
        .map(GgmlType::from_id)
        .find(|t| ggml_name(*t).is_some_and(|n| n.eq_ignore_ascii_case(&want)))
        .ok_or_else(|| QuantizeError::UnknownType {
            given: s.to_string(),
            valid: "a ggml type name such as q4_k, q6_k, q8_0, f16, bf16".into(),
        })
}

/// ggml's name for a type ("q4_K", "f16"…), None for unused ids.
pub fn ggml_name(t: GgmlType) -> Option<String> {
    // SAFETY: ggml_type_name returns a static string (or "NONE"/null for unknown ids).
    let p = unsafe { llama_cpp_sys_2::ggml_type_name(t.id() as llama_cpp_sys_2::ggml_type) };
    if p.is_null() {
        return None;
    }
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    (s != "NONE" && !s.is_empty()).then_some(s)
}

/// Bits per weight of a ggml type, from ggml's own block geometry.
pub fn bits_per_weight(t: GgmlType) -> f64 {
    let id = t.id() as llama_cpp_sys_2::ggml_type;
    // SAFETY: pure lookups in ggml's type table.
    unsafe {
        llama_cpp_sys_2::ggml_type_size(id) as f64 * 8.0
            / llama_cpp_sys_2::ggml_blck_size(id) as f64
    }
}

#[derive(Debug, Clone, Default)]
pub struct QuantizeOptions {
    pub imatrix: Option<PathBuf>,
    pub include_weights: Vec<String>,
    pub exclude_weights: Vec<String>,
    pub output_tensor_type: Option<GgmlType>,
    pub token_embedding_type: Option<GgmlType>,
    /// (regex pattern, type), first match wins, as llama-quantize's --tensor-type.
    pub tensor_types: Vec<(String, GgmlType)>,
    pub pure: bool,
    pub leave_output_tensor: bool,
    pub allow_requantize: bool,
    pub keep_split: bool,
    pub dry_run: bool,
    pub threads: Option<usize>,
    pub force: bool,
    pub quiet: bool,
    pub verbose: bool,
}

/// One tensor in a quantization plan or result.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorChoice {
    pub name: String,
    pub from: String,
    pub to: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QuantizeReport {
    pub output: Option<PathBuf>,
    pub is_mmproj: bool,
    pub tensors: Vec<TensorChoice>,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub n_elements: u64,
    pub seconds: f64,
}

impl QuantizeReport {
    pub fn bits_per_weight(&self) -> f64 {
        self.output_bytes as f64 * 8.0 / self.n_elements.max(1) as f64
    }
}

/// `<stem>-<type>.gguf` next to the input, with a trailing 16/32-bit or q8_0 type dropped from
/// the stem (`m-bf16.gguf` → `m-q4_k_m.gguf`).
pub fn default_output(input: &Path, t: &QuantType) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let stem = [
        "-f32", "-f16", "-bf16", "-q8_0", "-F32", "-F16", "-BF16", "-Q8_0",
    ]
    .iter()
    .find_map(|suf| stem.strip_suffix(suf))
    .map(str::to_string)
    .unwrap_or(stem.clone());
    input.with_file_name(format!("{stem}-{}.gguf", t.name.to_ascii_lowercase()))
}

fn is_float(t: GgmlType) -> bool {
    matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Quantizes `input` to `output` (default: next to the input) as `t`.
pub fn quantize(
    input: &Path,
    output: Option<&Path>,
    t: QuantType,
    opts: &QuantizeOptions,
) -> Result<QuantizeReport, QuantizeError> {
    let gguf = GgufFile::open(input)?;
    let output = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_output(input, &t));
    if !opts.dry_run {
        let same = output == input
            || (output.exists()
                && std::fs::canonicalize(&output).ok() == std::fs::canonicalize(input).ok());
        if same {
            return Err(QuantizeError::Input {
                path: output,
                message: "output path equals the input; choose another OUT".into(),
            });
        }
        if std::fs::symlink_metadata(&output).is_ok() && !opts.force {
            return Err(QuantizeError::Exists { path: output });
        }
        let parent = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(QuantizeError::Input {
                path: output.clone(),
                message: "the output's directory does not exist".into(),
            });
        }
        // temps left by a killed earlier run (SIGKILL) in the output's directory
        crate::cleanup::sweep_stale(parent);
    }
    if !opts.allow_requantize {
        if let Some(q) = gguf
            .tensors
            .iter()
            .find(|x| x.ne.len() >= 2 && !is_float(x.ggml_type))
        {
            return Err(QuantizeError::Input {
                path: input.to_path_buf(),
                message: format!(
                    "already quantized ({} is {}); requantizing loses quality, pass --allow-requantize to do it anyway",
                    q.name,
                    ggml_name(q.ggml_type).unwrap_or_else(|| q.ggml_type.name())
                ),
            });
        }
    }
    // Hyperparameters llama.cpp divides by, and shapes, are checked before any work starts.
    let checked = match gguf.architecture() {
        Some("clip")
            if gguf.get("clip.projector_type").and_then(MetaValue::as_str)
                == Some("qwen3vl_merger") =>
        {
            crate::validate::mmproj(&gguf)
        }
        Some("clip") | None => Ok(()),
        Some(_) => crate::validate::decoder(&gguf),
    };
    checked.map_err(|message| QuantizeError::Input {
        path: input.to_path_buf(),
        message: format!("invalid GGUF: {message}"),
    })?;
    match gguf.architecture() {
        Some("clip") => mmproj::quantize(&gguf, &output, t, opts),
        Some(_) => decoder::quantize(&gguf, &output, t, opts),
        None => Err(QuantizeError::Input {
            path: input.to_path_buf(),
            message: "no general.architecture key: not a llama.cpp model GGUF".into(),
        }),
    }
}

/// Bytes available to us on the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0)
        .then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// Whether an mmproj can be quantized to `t` (checked before a long conversion starts).
pub fn check_mmproj_type(t: &QuantType) -> Result<(), String> {
    mmproj::target_of(t).map(|_| ())
}

fn progress(total: u64, quiet: bool, what: &str) -> ProgressBar {
    let pb = crate::progress::items(total, quiet, "tensors");
    pb.set_message(what.to_string());
    pb
}

mod decoder {
    use super::*;

    /// What the log callback collects while llama.cpp quantizes.
    struct Capture {
        /// The thread calling llama_model_quantize: llama-quant logs its per-tensor lines
        /// there. The callback is process-wide, so text from other threads (a model loading
        /// elsewhere in the process: repack notes, mtmd) is not ours and would split a line.
        thread: std::thread::ThreadId,
        line: String,
        lines: Vec<String>,
        pb: ProgressBar,
        verbose: bool,
    }

    static CAPTURE: Mutex<Option<Capture>> = Mutex::new(None);
    /// llama.cpp's log callback is process-wide: one decoder quantization at a time, so each
    /// run's per-tensor report holds only its own lines.
    static RUN: Mutex<()> = Mutex::new(());

    unsafe extern "C" fn on_log(
        _level: llama_cpp_sys_2::ggml_log_level,
        text: *const c_char,
        _user: *mut c_void,
    ) {
        if text.is_null() {
            return;
        }
        let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
        let Ok(mut guard) = CAPTURE.lock() else {
            return;
        };
        let Some(cap) = guard.as_mut() else { return };
        if std::thread::current().id() != cap.thread {
            return;
        }
        if cap.verbose {
            eprint!("{text}");
        }
        cap.line.push_str(&text);
        while let Some(pos) = cap.line.find('\n') {
            let line: String = cap.line.drain(..=pos).collect();
            let line = line.trim_end().to_string();
            if line.trim_start().starts_with('[') && line.contains("] ") && line.contains(" - [") {
                cap.pb.inc(1);
            }
            if !line.is_empty() {
                cap.lines.push(line);
            }
        }
    }

    /// Parses llama-quant.cpp's per-tensor log line into (name, from, to, fallback note).
    fn parse_tensor_line(line: &str, fallbacks: &[(String, String)]) -> Option<TensorChoice> {
        let rest = line.trim_start().strip_prefix('[')?;
        let (_, rest) = rest.split_once("] ")?;
        let (name, rest) = rest.split_once(" - [")?;
        let name = name.trim().to_string();
        let from = rest
            .split_once("type = ")?
            .1
            .split(',')
            .next()?
            .trim()
            .to_string();
        let to = if let Some(after) = rest.split_once("converting to ") {
            after.1.split_whitespace().next()?.to_string()
        } else if let Some(open) = rest.rfind('(') {
            rest[open + 1..].trim_end_matches(')').trim().to_string()
        } else {
            from.clone()
        };
        let note = fallbacks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, w)| w.clone());
        Some(TensorChoice {
            name,
            from,
            to,
            note,
        })
    }

    fn cstring(s: &str) -> CString {
        CString::new(s.replace('\0', "")).unwrap_or_default()
    }

    pub fn quantize(
        gguf: &GgufFile,
        output: &Path,
        t: QuantType,
        opts: &QuantizeOptions,
    ) -> Result<QuantizeReport, QuantizeError> {
        let started = std::time::Instant::now();
        let imatrix = match &opts.imatrix {
            Some(p) => Some(super::imatrix::load(p, gguf, opts)?),
            None => None,
        };
        let mut tmp = None;
        let out_path = if opts.dry_run {
            output.to_path_buf()
        } else {
            let file = AtomicFile::create(output).map_err(|source| QuantizeError::Io {
                path: output.to_path_buf(),
                source,
            })?;
            let p = file.tmp_path().to_path_buf();
            tmp = Some(file);
            p
        };
        let c_in = cstring(&gguf.path.to_string_lossy());
        let c_out = cstring(&out_path.to_string_lossy());
        let patterns: Vec<(CString, GgmlType)> = opts
            .tensor_types
            .iter()
            .map(|(p, t)| (cstring(p), *t))
            .collect();
        let mut tt: Vec<llama_cpp_sys_2::llama_model_tensor_override> = patterns
            .iter()
            .map(|(p, t)| llama_cpp_sys_2::llama_model_tensor_override {
                pattern: p.as_ptr(),
                type_: t.id() as llama_cpp_sys_2::ggml_type,
            })
            .collect();
        tt.push(llama_cpp_sys_2::llama_model_tensor_override {
            pattern: std::ptr::null(),
            type_: llama_cpp_sys_2::GGML_TYPE_COUNT,
        });
        let im_names: Vec<CString> = imatrix.iter().flatten().map(|(n, _)| cstring(n)).collect();
        let mut im: Vec<llama_cpp_sys_2::llama_model_imatrix_data> = imatrix
            .iter()
            .flatten()
            .zip(&im_names)
            .map(|((_, v), n)| llama_cpp_sys_2::llama_model_imatrix_data {
                name: n.as_ptr(),
                data: v.as_ptr(),
                size: v.len(),
            })
            .collect();
        im.push(llama_cpp_sys_2::llama_model_imatrix_data {
            name: std::ptr::null(),
            data: std::ptr::null(),
            size: 0,
        });

        // SAFETY: plain struct returned by value.
        let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
        params.nthread = opts.threads.unwrap_or(0) as i32;
        params.ftype = t.ftype as llama_cpp_sys_2::llama_ftype;
        params.allow_requantize = opts.allow_requantize;
        params.quantize_output_tensor = !opts.leave_output_tensor;
        params.pure_ = opts.pure;
        params.keep_split = opts.keep_split;
        params.dry_run = opts.dry_run;
        if let Some(o) = opts.output_tensor_type {
            params.output_tensor_type = o.id() as llama_cpp_sys_2::ggml_type;
        }
        if let Some(e) = opts.token_embedding_type {
            params.token_embedding_type = e.id() as llama_cpp_sys_2::ggml_type;
        }
        if patterns.len() > 0 {
            params.tt_overrides = tt.as_ptr();
        }
        if imatrix.is_some() {
            params.imatrix = im.as_ptr();
        }

        let _run = RUN.lock().unwrap_or_else(|e| e.into_inner());
        let pb = progress(
            gguf.tensors.len() as u64,
            opts.quiet || opts.dry_run,
            "quantizing",
        );
        crate::engine::backend(false).map_err(|e| QuantizeError::Llama {
            path: gguf.path.clone(),
            message: e.to_string(),
        })?;
        *CAPTURE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Capture {
            thread: std::thread::current().id(),
            line: String::new(),
            lines: Vec::new(),
            pb: pb.clone(),
            verbose: opts.verbose,
        });
        // SAFETY: the callback only touches CAPTURE; it is replaced again below.
        unsafe { llama_cpp_sys_2::llama_log_set(Some(on_log), std::ptr::null_mut()) };
        // SAFETY: all pointers in params (strings, override and imatrix arrays) outlive the call.
        let rc = unsafe {
            llama_cpp_sys_2::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params)
        };
        unsafe { llama_cpp_sys_2::llama_log_set(Some(silent), std::ptr::null_mut()) };
        let cap = CAPTURE.lock().unwrap_or_else(|e| e.into_inner()).take();
        pb.finish_and_clear();
        let lines = cap.map(|c| c.lines).unwrap_or_default();
        if rc != 0 {
            let message = lines
                .iter()
                .rev()
                .find(|l| {
                    l.contains("failed to quantize") || l.contains("error") || l.contains("ERROR")
                })
                .cloned()
                .unwrap_or_else(|| format!("llama_model_quantize returned {rc}"));
            let message = message
                .trim()
                .rsplit(".. ")
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            // llama.cpp reports a failed write as a bare stream error: name the output and say
            // how much room its filesystem has left.
            if message.contains("iostream") || message.contains("write") {
                let free = free_bytes(
                    output
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                );
                return Err(QuantizeError::Llama {
                    path: output.to_path_buf(),
                    message: format!(
                        "writing the output failed ({message}){}",
                        free.map_or(String::new(), |f| if f < gguf.file_size {
                            format!("; no space left: {f} bytes free")
                        } else {
                            format!("; {f} bytes free (a file size limit or I/O error?)")
                        })
                    ),
                });
            }
            return Err(QuantizeError::Llama {
                path: gguf.path.clone(),
                message,
            });
        }
        let fallbacks: Vec<(String, String)> = lines
            .iter()
            .filter_map(|l| {
                let rest = l.strip_prefix("warning: ")?;
                let (name, why) = rest.split_once(" - ")?;
                Some((
                    name.trim().to_string(),
                    why.split_whitespace().collect::<Vec<_>>().join(" "),
                ))
            })
            .collect();
        let tensors: Vec<TensorChoice> = lines
            .iter()
            .filter_map(|l| parse_tensor_line(l, &fallbacks))
            .collect();
        let output_bytes = match tmp {
            Some(file) => {
                let size = std::fs::metadata(file.tmp_path())
                    .map(|m| m.len())
                    .unwrap_or(0);
                file.commit().map_err(|source| QuantizeError::Io {
                    path: output.to_path_buf(),
                    source,
                })?;
                size
            }
            None => planned_size(gguf, &tensors),
        };
        Ok(QuantizeReport {
            output: (!opts.dry_run).then(|| output.to_path_buf()),
            is_mmproj: false,
            tensors,
            input_bytes: gguf.file_size,
            output_bytes,
            n_elements: gguf.tensors.iter().map(|x| x.n_elements()).sum(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Tensor bytes of a dry-run plan (header excluded).
    fn planned_size(gguf: &GgufFile, tensors: &[TensorChoice]) -> u64 {
        tensors
            .iter()
            .filter_map(|c| {
                let info = gguf.tensor(&c.name)?;
                let t = parse_ggml_type(&c.to).ok()?;
                t.nbytes(info.ne[0], info.n_elements())
            })
            .sum()
    }

    unsafe extern "C" fn silent(
        _level: llama_cpp_sys_2::ggml_log_level,
        _text: *const c_char,
        _user: *mut c_void,
    ) {
    }
}

mod mmproj {
    use super::*;

    /// The ggml types an mmproj may be quantized to (issue: q8_0, q6_k, q5_k, q4_k, q5_0, q4_0, f16, bf16).
    const MMPROJ_TYPES: &[(&str, u32)] = &[
        ("Q8_0", 8),
        ("Q6_K", 14),
        ("Q5_K_M", 13),
        ("Q5_K_S", 13),
        ("Q4_K_M", 12),
        ("Q4_K_S", 12),
        ("Q5_0", 6),
        ("Q4_0", 2),
        ("F16", 1),
        ("BF16", 30),
    ];

    /// The ggml type an mmproj quantization to `t` uses, or why there is none.
    pub fn target_of(t: &QuantType) -> Result<u32, String> {
        MMPROJ_TYPES.iter().find(|(n, _)| *n == t.name).map(|(_, id)| *id).ok_or_else(|| {
            format!("mmproj files can be quantized to q8_0, q6_k, q5_k, q4_k, q5_0, q4_0, f16 or bf16, not {}", t.name.to_ascii_lowercase())
        })
    }

    /// llama-quant.cpp `tensor_type_fallback`: the type used when rows don't fill the target's blocks.
    fn fallback(target: u32) -> u32 {
        match target {
            12 => 6, // Q4_K → Q5_0
            13 => 7, // Q5_K → Q5_1
            14 => 8, // Q6_K → Q8_0
            other => other,
        }
    }

    /// Tensors kept as they are: position embeddings, patch kernels, norms, biases, anything not 2-D.
    fn keep(name: &str, ne: &[u64]) -> bool {
        ne.len() != 2
            || !name.ends_with(".weight")
            || name.contains("position_embd")
            || name.contains("patch_embd")
            || name.contains("norm")
            || name.contains(".ln")
            || name.contains("post_ln")
            || name.contains("pre_ln")
    }

    pub fn quantize(
        gguf: &GgufFile,
        output: &Path,
        t: QuantType,
        opts: &QuantizeOptions,
    ) -> Result<QuantizeReport, QuantizeError> {
        let started = std::time::Instant::now();
        let target = target_of(&t).map_err(|message| QuantizeError::Input {
            path: gguf.path.clone(),
            message,
        })?;
        if opts.imatrix.is_some() {
            return Err(QuantizeError::Input {
                path: gguf.path.clone(),
                message: "an imatrix does not apply to mmproj files".into(),
            });
        }
        // Plan every tensor.
        let mut plan = Vec::new();
        for info in &gguf.tensors {
            let mut to = info.ggml_type;
            let mut note = None;
            if !keep(&info.name, &info.ne) {
                let over = opts
                    .tensor_types
                    .iter()
                    .find(|(p, _)| info.name.contains(p.as_str()))
                    .map(|(_, ty)| *ty);
                let want = over.map(|o| o.id()).unwrap_or(target);
                let mut chosen = want;
                let blk = |id: u32| GgmlType::from_id(id).block().map(|b| b.0).unwrap_or(1);
                if info.ne[0] % blk(chosen) != 0 {
                    chosen = fallback(chosen);
                    if info.ne[0] % blk(chosen) != 0 {
                        chosen = 1; // F16, as llama.cpp does for unusual shapes
                    }
                    note = Some(format!(
                        "row length {} does not fit {}: {} instead",
                        info.ne[0],
                        ggml_name(GgmlType::from_id(want)).unwrap_or_default(),
                        ggml_name(GgmlType::from_id(chosen)).unwrap_or_default()
                    ));
                }
                to = GgmlType::from_id(chosen);
            }
            plan.push((info, to, note));
        }
        let tensors: Vec<TensorChoice> = plan
            .iter()
            .map(|(info, to, note)| TensorChoice {
                name: info.name.clone(),
                from: ggml_name(info.ggml_type).unwrap_or_default(),
                to: ggml_name(*to).unwrap_or_default(),
                note: note.clone(),
            })
            .collect();
        let metadata: Vec<(String, MetaValue)> = gguf
            .metadata
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if k == "general.file_type" {
                        MetaValue::U32(t.ftype)
                    } else {
                        v.clone()
                    },
                )
            })
            .collect();
        let header = GgufHeader::new(
            metadata,
            plan.iter()
                .map(|(info, to, _)| {
                    (
                        info.name.clone(),
                        info.ne.clone(),
                        *to,
                        to.nbytes(info.ne[0], info.n_elements()).unwrap_or(0),
                    )
                })
                .collect(),
        );
        let n_elements = gguf.tensors.iter().map(|x| x.n_elements()).sum();
        let planned = header.file_size().map_err(|source| QuantizeError::Io {
            path: output.to_path_buf(),
            source,
        })?;
        if opts.dry_run {
            return Ok(QuantizeReport {
                output: None,
                is_mmproj: true,
                tensors,
                input_bytes: gguf.file_size,
                output_bytes: planned,
                n_elements,
                seconds: 0.0,
            });
        }

        let io = |source| QuantizeError::Io {
            path: output.to_path_buf(),
            source,
        };
        let src_file = std::fs::File::open(&gguf.path).map_err(|source| QuantizeError::Io {
            path: gguf.path.clone(),
            source,
        })?;
        // SAFETY: read-only map of the input file.
        let src = unsafe { memmap2::Mmap::map(&src_file) }.map_err(|source| QuantizeError::Io {
            path: gguf.path.clone(),
            source,
        })?;
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
            .map_err(|e| QuantizeError::Input {
                path: gguf.path.clone(),
                message: e.to_string(),
            })?;
        let pb = progress(plan.len() as u64, opts.quiet, "quantizing mmproj");
        let mut file = AtomicFile::create(output).map_err(io)?;
        {
            use std::io::Write;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file.file());
            let data_start = header.write(&mut w).map_err(io)?;
            let mut pos = data_start;
            for ((info, to, _), out_info) in plan.iter().zip(&header.tensors) {
                let start = (gguf.data_offset + info.offset) as usize;
                let nbytes = info.nbytes().unwrap_or(0) as usize;
                let bytes = &src[start..start + nbytes];
                let out: Vec<u8> = if *to == info.ggml_type {
                    bytes.to_vec()
                } else {
                    let values = encode::decode(info.ggml_type, bytes).ok_or_else(|| {
                        QuantizeError::Input {
                            path: gguf.path.clone(),
                            message: format!(
                                "tensor {} is {}; only F32/F16/BF16 tensors can be converted",
                                info.name,
                                info.ggml_type.name()
                            ),
                        }
                    })?;
                    // NaN/Inf would become NaN block scales: refuse, as llama.cpp's quantizer does
                    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                        return Err(QuantizeError::Input {
                            path: gguf.path.clone(),
                            message: format!(
                                "tensor {} has a non-finite value ({}) in row {}; refusing to quantize it",
                                info.name,
                                values[i],
                                i / info.ne[0].max(1) as usize
                            ),
                        });
                    }
                    pool.install(|| quantize_rows(*to, &values, info.ne[0] as usize))
                };
                debug_assert_eq!(pos - data_start, out_info.offset);
                w.write_all(&out).map_err(io)?;
                pos += out.len() as u64;
                let padded = align_up(pos - data_start, header.alignment) + data_start;
                w.write_all(&vec![0u8; (padded - pos) as usize])
                    .map_err(io)?;
                pos = padded;
                pb.inc(1);
            }
            w.flush().map_err(io)?;
        }
        pb.finish_and_clear();
        file.commit().map_err(io)?;
        Ok(QuantizeReport {
            output: Some(output.to_path_buf()),
            is_mmproj: true,
            tensors,
            input_bytes: gguf.file_size,
            output_bytes: planned,
            n_elements,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Quantizes rows of `row_len` with ggml's reference-quality kernels, in parallel chunks.
    fn quantize_rows(to: GgmlType, values: &[f32], row_len: usize) -> Vec<u8> {
        if matches!(to, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
            let mut out = Vec::new();
            values
                .chunks(row_len)
                .for_each(|r| encode::encode_row(to, r, &mut out));
            return out;
        }
        let row_bytes = to.nbytes(row_len as u64, row_len as u64).unwrap_or(0) as usize;
        let rows_per_chunk = ((1 << 20) / row_bytes.max(1)).max(1);
        values
            .par_chunks(rows_per_chunk * row_len)
            .map(|chunk| {
                let nrows = chunk.len() / row_len;
                let mut out = vec![0u8; nrows * row_bytes];
                // SAFETY: `out` holds nrows rows of `to`; `chunk` holds nrows * row_len floats.
                let written = unsafe {
                    llama_cpp_sys_2::ggml_quantize_chunk(
                        to.id() as llama_cpp_sys_2::ggml_type,
                        chunk.as_ptr(),
                        out.as_mut_ptr().cast(),
                        0,
                        nrows as i64,
                        row_len as i64,
                        std::ptr::null(),
                    )
                };
                out.truncate(written);
                out
            })
            .collect::<Vec<_>>()
            .concat()
    }
}

mod imatrix {
    use super::*;

    /// Loads an importance matrix (llama-imatrix's GGUF format, or the legacy .dat format) and
    /// applies --include-weights / --exclude-weights. Every entry is checked against the model:
    /// a quantizable 2-D weight without an entry is an error naming it.
    pub fn load(
        path: &Path,
        model: &GgufFile,
        opts: &QuantizeOptions,
    ) -> Result<Vec<(String, Vec<f32>)>, QuantizeError> {
        let bad = |message: String| QuantizeError::Input {
            path: path.to_path_buf(),
            message,
        };
        let bytes =
            crate::input::read_regular_io(path, 16 << 30).map_err(|source| QuantizeError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        let mut entries = if bytes.starts_with(b"GGUF") {
            from_gguf(path, &bytes)?
        } else {
            from_legacy(&bytes).ok_or_else(|| {
                bad("not an imatrix file (neither GGUF nor the legacy .dat format)".into())
            })?
        };
        if !opts.include_weights.is_empty() {
            entries.retain(|(n, _)| opts.include_weights.iter().any(|p| n.contains(p.as_str())));
        }
        entries.retain(|(n, _)| !opts.exclude_weights.iter().any(|p| n.contains(p.as_str())));
        for t in &model.tensors {
            let quantizable = t.ne.len() == 2
                && t.name.ends_with(".weight")
                && !t.name.contains("_norm")
                && t.name != "token_embd.weight"
                && t.name != "output.weight";
            let wanted = opts.include_weights.is_empty()
                || opts
                    .include_weights
                    .iter()
                    .any(|p| t.name.contains(p.as_str()));
            let excluded = opts
                .exclude_weights
                .iter()
                .any(|p| t.name.contains(p.as_str()));
            if !quantizable || !wanted || excluded {
                continue;
            }
            match entries.iter().find(|(n, _)| *n == t.name) {
                None => {
                    return Err(bad(format!(
                        "does not match {}: no entry for tensor {}",
                        model.path.display(),
                        t.name
                    )))
                }
                Some((_, v)) if v.len() as u64 != t.ne[0] => {
                    return Err(bad(format!(
                        "entry {} has {} values but the tensor's rows have {}",
                        t.name,
                        v.len(),
                        t.ne[0]
                    )))
                }
                _ => {}
            }
        }
        Ok(entries)
    }

    /// GGUF imatrix: `<name>.in_sum2` [n_per_row, n_mat] and `<name>.counts` [1, n_mat];
    /// value = in_sum2 / count (tools/quantize/quantize.cpp load_imatrix).
    fn from_gguf(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Vec<f32>)>, QuantizeError> {
        let g = GgufFile::parse(path, bytes)?;
        let read = |name: &str| -> Option<Vec<f32>> {
            let t = g.tensor(name)?;
            if t.ggml_type != GgmlType::F32 {
                return None;
            }
            let s = (g.data_offset + t.offset) as usize;
            encode::decode(GgmlType::F32, &bytes[s..s + t.nbytes()? as usize])
        };
        let mut out = Vec::new();
        for t in &g.tensors {
            let Some(name) = t.name.strip_suffix(".in_sum2") else {
                continue;
            };
            let sums = read(&t.name).ok_or_else(|| QuantizeError::Input {
                path: path.to_path_buf(),
                message: format!("{} is not F32", t.name),
            })?;
            let counts = read(&format!("{name}.counts")).ok_or_else(|| QuantizeError::Input {
                path: path.to_path_buf(),
                message: format!("{name}.counts missing"),
            })?;
            let n = t.ne[0] as usize;
            let mut v = sums;
            for (m, row) in v.chunks_mut(n.max(1)).enumerate() {
                let c = counts.get(m).copied().unwrap_or(0.0);
                row.iter_mut()
                    .for_each(|x| *x = if c > 0.0 { *x / c } else { 1.0 });
            }
            out.push((name.to_string(), v));
        }
        Ok(out)
    }

    /// Legacy .dat: i32 n; n × (i32 len, name, i32 ncall, i32 nval, f32[nval]); values / ncall.
    fn from_legacy(b: &[u8]) -> Option<Vec<(String, Vec<f32>)>> {
        let mut pos = 0usize;
        let i32_at = |pos: &mut usize| -> Option<i32> {
            let v = i32::from_le_bytes(b.get(*pos..*pos + 4)?.try_into().ok()?);
            *pos += 4;
            Some(v)
        };
        let n = i32_at(&mut pos)?;
        if n <= 0 || n as usize > b.len() / 12 {
            return None;
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = usize::try_from(i32_at(&mut pos)?).ok()?;
            let name = String::from_utf8(b.get(pos..pos + len)?.to_vec()).ok()?;
            pos += len;
            let ncall = i32_at(&mut pos)?;
            let nval = usize::try_from(i32_at(&mut pos)?).ok()?;
            let raw = b.get(pos..pos.checked_add(nval.checked_mul(4)?)?)?;
            pos += nval * 4;
            let mut v: Vec<f32> = raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if ncall > 0 {
                v.iter_mut().for_each(|x| *x /= ncall as f32);
            }
            out.push((name, v));
        }
        Some(out)
    }
}
