//! artemis-gguf: Artemis (Schneewolf Labs A3) checkpoints to llama.cpp GGUF, quantization and chat.

pub mod llama;
