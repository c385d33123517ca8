//! GGUF keys of our own (llama.cpp ignores them; the runtime reads them). Each is spelled here
//! only.

/// Official Qwen2-VL/Artemis pixel budget (upstream's key names, ignored by the Artemis fork).
pub const IMAGE_MIN_PIXELS: &str = "clip.vision.image_min_pixels";
pub const IMAGE_MAX_PIXELS: &str = "clip.vision.image_max_pixels";
/// LLaVA MLP projector with exact (erf) GELU, read by patch 0004 (llava-format.md §3.2).
pub const PROJECTOR_GELU_ERF: &str = "clip.vision.projector.gelu_erf";
/// Official CLIPImageProcessor geometry: the short side is resized to this, then center-cropped.
pub const RESIZE_SHORTEST_EDGE: &str = "clip.vision.preproc.shortest_edge";
/// Center crop [height, width].
pub const CROP_SIZE: &str = "clip.vision.preproc.crop_size";
/// The text that stands for one image in the checkpoint's chat template (e.g. `<image>`).
pub const IMAGE_PLACEHOLDER: &str = "clip.vision.preproc.image_placeholder";
/// The special tokens transformers hands the chat template (`tokenizer.special_tokens_map`), as
/// `name=text` strings (`bos_token=<s>`); a token the official tokenizer lacks is not listed,
/// whatever ids llama.cpp is given.
pub const CHAT_TEMPLATE_SPECIAL_TOKENS: &str = "artemis.chat_template.special_tokens";
