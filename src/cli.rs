//! Command-line conventions shared by the binaries (and the coming server): llama.cpp's spellings
//! that clap cannot express, and the bounds every count from a user must respect.

use std::ffi::OsString;

/// The most threads any command starts (`-t`, `--threads`, quantize's THREADS): far above any
/// machine we run on, low enough that a typo cannot start a hundred thousand threads.
pub const MAX_THREADS: usize = 512;
/// `-n` upper bound (tokens to generate).
pub const MAX_PREDICT: usize = 1 << 20;
/// `-c` upper bound (context tokens).
pub const MAX_CTX: u32 = 1 << 22;

/// Rewrites llama.cpp's multi-letter single-dash flags to their long names, so `-ngl 99`,
/// `-ngl=99` and `-ngl all` work as every llama.cpp user types them (clap alone would read
/// `-ngl` as `-n gl`). Everything after `--` is left alone.
pub fn llama_style_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    const MULTI: &[(&str, &str)] = &[
        ("-ngl", "--n-gpu-layers"),
        ("-np", "--parallel"),
        ("-cram", "--cache-ram"),
    ];
    let mut out = Vec::new();
    let mut literal = false;
    for a in args {
        if literal {
            out.push(a);
            continue;
        }
        if a == "--" {
            literal = true;
            out.push(a);
            continue;
        }
        let rewritten = a.to_str().and_then(|s| {
            MULTI.iter().find_map(|(short, long)| {
                if s == *short {
                    Some(OsString::from(*long))
                } else {
                    s.strip_prefix(short)
                        .and_then(|rest| rest.strip_prefix('='))
                        .map(|v| OsString::from(format!("{long}={v}")))
                }
            })
        });
        out.push(rewritten.unwrap_or(a));
    }
    out
}

/// GPU layers as llama.cpp takes them: a count, `all`/`auto`, or a negative number (= all).
pub fn parse_gpu_layers(s: &str) -> Result<u32, String> {
    const ALL: u32 = 999;
    match s {
        "all" | "auto" => Ok(ALL),
        n => match n.parse::<i64>() {
            Ok(v) if v < 0 => Ok(ALL),
            Ok(v) if v <= i32::MAX as i64 => Ok(v as u32),
            _ => Err(format!(
                "-ngl {n:?}: expected a number of layers, \"all\" or \"auto\""
            )),
        },
    }
}

/// A thread count within 1..=[`MAX_THREADS`], or -1 for every core (as llama.cpp), for `flag`
/// in the message.
pub fn parse_threads(flag: &str, s: &str) -> Result<usize, String> {
    match s.parse::<i64>() {
        Ok(-1) => Ok(default_threads()),
        Ok(n) if (1..=MAX_THREADS as i64).contains(&n) => Ok(n as usize),
        _ => Err(format!("{flag} {s:?}: expected a number of threads from 1 to {MAX_THREADS}, or -1 for all cores")),
    }
}

/// Every core, within [`MAX_THREADS`].
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .min(MAX_THREADS)
}

/// `-n`: how many tokens to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Predict {
    Tokens(usize),
    /// llama.cpp's -1 / -2: until the context is full.
    UntilContextFull,
}

/// `-c`: the context size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtxSize {
    Tokens(u32),
    /// llama.cpp's 0: the model's training context.
    Training,
}

/// `-n`: tokens to generate, 0..=[`MAX_PREDICT`], or -1 / -2 for "until the context is full".
pub fn parse_predict(s: &str) -> Result<Predict, String> {
    match s.parse::<i64>() {
        Ok(-1 | -2) => Ok(Predict::UntilContextFull),
        Ok(n) if (0..=MAX_PREDICT as i64).contains(&n) => Ok(Predict::Tokens(n as usize)),
        _ => Err(format!("-n {s:?}: expected a number of tokens from 0 to {MAX_PREDICT}, or -1 (until the context is full)")),
    }
}

/// `-c`: context tokens, 1..=[`MAX_CTX`], or 0 for the model's training context (as llama.cpp).
pub fn parse_ctx(s: &str) -> Result<CtxSize, String> {
    match s.parse::<i64>() {
        Ok(0) => Ok(CtxSize::Training),
        Ok(n) if (1..=MAX_CTX as i64).contains(&n) => Ok(CtxSize::Tokens(n as u32)),
        _ => Err(format!("-c {s:?}: expected a context size from 1 to {MAX_CTX}, or 0 for the model's training context")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: Vec<OsString>) -> Vec<String> {
        v.into_iter().map(|s| s.into_string().unwrap()).collect()
    }

    #[test]
    fn ngl_is_rewritten_in_both_spellings_but_not_after_double_dash() {
        let args = [
            "chat", "m.gguf", "-ngl", "99", "-ngl=all", "-n", "5", "--", "-ngl",
        ]
        .map(OsString::from);
        assert_eq!(
            strs(llama_style_args(args)),
            [
                "chat",
                "m.gguf",
                "--n-gpu-layers",
                "99",
                "--n-gpu-layers=all",
                "-n",
                "5",
                "--",
                "-ngl"
            ]
        );
    }

    #[test]
    fn gpu_layers_take_llama_cpp_values() {
        assert_eq!(parse_gpu_layers("12"), Ok(12));
        assert_eq!(parse_gpu_layers("-1"), Ok(999));
        assert_eq!(parse_gpu_layers("auto"), Ok(999));
        assert!(parse_gpu_layers("gl").unwrap_err().contains("-ngl \"gl\""));
        assert!(parse_gpu_layers("99999999999").is_err());
    }

    #[test]
    fn thread_counts_are_bounded() {
        assert_eq!(parse_threads("-t", "4"), Ok(4));
        assert_eq!(parse_threads("-t", "-1"), Ok(default_threads()));
        for bad in ["0", "100000", "-2", "x"] {
            assert!(
                parse_threads("-t", bad).unwrap_err().starts_with("-t "),
                "{bad}"
            );
        }
    }
}

/// `--tensor-split A,B,...`: non-negative, finite shares (not all zero), at most `devices` of
/// them (the offload devices present: GPUs and added RPC workers).
pub fn parse_tensor_split(s: &str, devices: usize) -> Result<Vec<f32>, String> {
    let mut v = Vec::new();
    for part in s.split(',') {
        let x: f32 = part.trim().parse().map_err(|_| {
            format!("--tensor-split {s}: {part:?} is not a number (expected shares like 3,1)")
        })?;
        if !x.is_finite() || x < 0.0 {
            return Err(format!(
                "--tensor-split {s}: {part:?} must be a finite share ≥ 0"
            ));
        }
        v.push(x);
    }
    if v.iter().all(|&x| x == 0.0) {
        return Err(format!("--tensor-split {s}: every share is 0"));
    }
    if v.len() > devices {
        return Err(format!(
            "--tensor-split {s}: {} shares for {devices} offload device(s) (the --rpc workers, then local GPUs)",
            v.len()
        ));
    }
    Ok(v)
}
