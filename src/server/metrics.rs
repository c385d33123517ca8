//! Counters behind `GET /metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    /// The model is loaded (`/health` answers 200).
    pub ready: AtomicBool,
    pub queue_depth: AtomicUsize,
    pub active: AtomicUsize,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Image encoding time, microseconds.
    pub image_encode_us: AtomicU64,
    /// Requests whose prompt was restored from the host-memory prompt cache.
    pub prompt_cache_hits: AtomicU64,
    /// Bytes of KV state the prompt cache holds.
    pub prompt_cache_bytes: AtomicUsize,
    requests: Mutex<BTreeMap<u16, u64>>,
}

impl Metrics {
    pub fn count_request(&self, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP artemis_requests_total HTTP requests by status code.\n# TYPE artemis_requests_total counter");
        for (code, n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(s, "artemis_requests_total{{status=\"{code}\"}} {n}");
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let rows = [
            (
                "artemis_prompt_tokens_total",
                "counter",
                "Prompt tokens evaluated (text and image).",
                load(&self.prompt_tokens),
            ),
            (
                "artemis_completion_tokens_total",
                "counter",
                "Tokens generated.",
                load(&self.completion_tokens),
            ),
            (
                "artemis_queue_depth",
                "gauge",
                "Requests waiting for a sequence.",
                self.queue_depth.load(Ordering::Relaxed) as f64,
            ),
            (
                "artemis_active_sequences",
                "gauge",
                "Sequences generating.",
                self.active.load(Ordering::Relaxed) as f64,
            ),
            (
                "artemis_image_encode_seconds_total",
                "counter",
                "Time spent encoding images.",
                load(&self.image_encode_us) / 1e6,
            ),
            (
                "artemis_prompt_cache_hits_total",
                "counter",
                "Requests whose prompt was restored from the host-memory prompt cache.",
                load(&self.prompt_cache_hits),
            ),
            (
                "artemis_prompt_cache_bytes",
                "gauge",
                "KV state kept in the host-memory prompt cache.",
                self.prompt_cache_bytes.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
        s
    }
}
