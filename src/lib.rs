//! artemis-gguf: vision-language checkpoints (Artemis A3, LLaVA-1.5 recipe) and plain decoders
//! to llama.cpp GGUF, quantization and chat, run as their official implementations run them.
//!
//! Data flow: `checkpoint` (+ `config`) → `families` (which family; its decoder architecture and
//! vision planner) → `decoder` / `mmproj` / `families::llava` / `vocab` mappings → `plan` →
//! `convert` (driving `encode` and the `gguf` writer, `cleanup` for temp files) → `quantize`.
//! At run time: `validate` (a GGUF against what llama.cpp will build) → `engine` (llama.cpp + mtmd,
//! images prepared by `preprocess` as the family's processor does) → `chat`. `keys` spells our own
//! GGUF keys; `cli` and `input` are the command-line and input-file conventions.

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
pub mod jinja;
pub mod keys;
pub mod llama;
pub mod mmproj;
pub mod pipeline;
pub mod plan;
pub mod preprocess;
pub mod progress;
pub mod quantize;
pub mod rpc;
pub mod scheduler;
pub mod server;
pub mod validate;
pub mod vocab;
