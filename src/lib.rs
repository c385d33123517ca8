//! artemis-gguf: Artemis (Schneewolf Labs A3) checkpoints to llama.cpp GGUF, quantization and chat.
//!
//! Stages, in data-flow order: `checkpoint` (+ `config`) → `decoder` / `mmproj` / `vocab`
//! mappings → `plan` → `convert` (which drives `encode` and the `gguf` writer). `llama` is the
//! vendored llama.cpp as seen from Rust.

pub mod chat;
pub mod checkpoint;
pub mod cleanup;
pub mod cli;
pub mod config;
pub mod convert;
pub mod decoder;
pub mod encode;
pub mod engine;
pub mod families;
pub mod gguf;
pub mod input;
pub mod keys;
pub mod llama;
pub mod mmproj;
pub mod pipeline;
pub mod plan;
pub mod preprocess;
pub mod progress;
pub mod quantize;
pub mod validate;
pub mod vocab;
