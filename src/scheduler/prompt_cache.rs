//! Prompts kept in host memory after their sequence is given to another conversation (what
//! llama-server calls the prompt cache, `--cache-ram`). When more conversations are in flight than
//! there are sequences, a returning conversation finds its KV cells here instead of re-evaluating
//! its history, images included: restoring is a memory copy, re-encoding an image takes seconds.
//!
//! An entry is the KV state of one sequence (llama.cpp's `llama_state_seq_get_data`) with the units
//! it holds. Entries are evicted least recently used first when the total exceeds the limit; an
//! entry that is a prefix of a newer one is dropped as redundant.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::{LlamaStateSeqFlags, SeqState};

use super::{common_prefix, Unit};

struct Entry {
    units: Vec<Unit>,
    n_past: i32,
    state: SeqState,
    last_used: u64,
}

pub(super) struct PromptCache {
    entries: Vec<Entry>,
    limit: usize,
    used: usize,
    clock: u64,
}

/// What a restore gives back: the units the sequence now holds and its next position.
pub(super) struct Restored {
    pub units: Vec<Unit>,
    pub n_past: i32,
}

impl PromptCache {
    /// A cache of at most `limit` bytes of KV state; 0 turns it off.
    pub fn new(limit: usize) -> PromptCache {
        PromptCache {
            entries: Vec::new(),
            limit,
            used: 0,
            clock: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.used
    }

    /// How many positions entry `i` holds.
    pub fn positions(&self, i: usize) -> i32 {
        self.entries[i].n_past
    }

    /// The entry sharing the longest prefix with `units` (at most `cap` units), if any shares one.
    pub fn best(&self, units: &[Unit], cap: usize) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.units, units).min(cap)))
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(i, n)| (n, self.entries[i].last_used))
    }

    /// Keeps what sequence `seq` holds (`units`, `n_past` positions). Returns false when it does
    /// not fit the limit (or llama.cpp could not serialize it); nothing is kept then.
    pub fn save(&mut self, ctx: &LlamaContext<'_>, seq: i32, units: &[Unit], n_past: i32) -> bool {
        if self.limit == 0 || units.is_empty() {
            return false;
        }
        // already here in full (the sequence was restored from this entry and not extended)
        if let Some(e) = self.entries.iter_mut().find(|e| e.units == units) {
            self.clock += 1;
            e.last_used = self.clock;
            return true;
        }
        let size = ctx.state_seq_get_size_ext(seq, LlamaStateSeqFlags::empty());
        if size == 0 || size > self.limit {
            return false;
        }
        let Ok(state) = ctx.state_seq_get(seq, LlamaStateSeqFlags::empty()) else {
            return false;
        };
        // entries this one contains are redundant
        self.entries.retain(|e| {
            let dominated = e.units.len() <= units.len() && units.starts_with(&e.units);
            if dominated {
                self.used -= e.state.byte_len();
            }
            !dominated
        });
        while self.used + state.byte_len() > self.limit && !self.entries.is_empty() {
            let lru = (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].last_used)
                .expect("non-empty");
            self.used -= self.entries.swap_remove(lru).state.byte_len();
        }
        self.clock += 1;
        self.used += state.byte_len();
        self.entries.push(Entry {
            units: units.to_vec(),
            n_past,
            state,
            last_used: self.clock,
        });
        true
    }

    /// Loads entry `i` into sequence `seq` (which must be empty). On failure the entry is
    /// dropped and the sequence left empty.
    pub fn restore(&mut self, ctx: &mut LlamaContext<'_>, i: usize, seq: i32) -> Option<Restored> {
        self.clock += 1;
        let e = &mut self.entries[i];
        e.last_used = self.clock;
        match ctx.state_seq_set(&e.state, seq) {
            Ok(()) => Some(Restored {
                units: e.units.clone(),
                n_past: e.n_past,
            }),
            Err(_) => {
                let _ = ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                self.used -= self.entries.swap_remove(i).state.byte_len();
                None
            }
        }
    }
}
