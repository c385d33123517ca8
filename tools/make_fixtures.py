#!/usr/bin/env python3
"""Generate small random-weight Artemis checkpoints and golden outputs.

Everything here is computed by the OFFICIAL implementation: the `artemis-vlm`
package (0.1.4) on transformers 5.23 (torch, CPU).  Run through
tools/make_fixtures.sh, which pins every version:

    HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/make_fixtures.py fixtures

Output (all deterministic, byte-identical across runs on the same versions):

    <out>/tiny/     f32 checkpoint, single model.safetensors
    <out>/small/    bf16 checkpoint, sharded (model-0000k-of-0000n + index)
    <out>/images/   synthetic PNG test images
    <out>/golden/<ckpt>/cases.json, tensors.safetensors
    <out>/golden/smart_resize.json
    <out>/README.md

Checkpoints are built with the package's own classes (ArtemisVLMConfig,
ArtemisVLMForConditionalGeneration) and written with `save_pretrained`; the
tokenizer files with the transformers tokenizer's `save_pretrained`; the
preprocessor_config.json with the image processor that ArtemisVLMProcessor
builds.  Goldens are computed after re-loading the saved directories through
the Auto classes, exactly as a user of the package would load a checkpoint.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize  # noqa: E402

import artemis_vlm  # noqa: E402  (registers model_type "artemis_vlm" with the Auto classes)
from artemis_vlm import (  # noqa: E402
    ArtemisVLMConfig,
    ArtemisVLMForConditionalGeneration,
    ArtemisVLMProcessor,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_llava_fixtures  # noqa: E402
import make_tokenizer_matrix  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------

# Tekken pre-tokenizer regex, verbatim from Mistral-Nemo's tokenizer.json.
TEKKEN_REGEX = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
    r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ids 0..25.  0-2 and 14-23 follow the A-series (Tekken) layout; 3-13 are
# fillers (10 doubles as the pad token); 24/25 are the ChatML turn markers.
SPECIAL_TOKENS = (
    ["<unk>", "<s>", "</s>"]
    + [f"<SPECIAL_{i}>" if i != 10 else "<pad>" for i in range(3, 14)]
    + [
        "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
        "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
        "<|im_start|>", "<|im_end|>",
    ]
)
assert len(SPECIAL_TOKENS) == 26
VOCAB_TARGET = 768

# Deterministic English training text for the BPE (a few KB, written for this script).
CORPUS = """\
Describe this image. What is in this picture? What color is the square?
The picture shows a red square on a blue background, with a small yellow circle
in the upper left corner and a green triangle near the bottom edge.
This image is a simple drawing. There is a gradient that goes from dark to light.
The left side of the image is darker than the right side, and the top is brighter.
A cat is sitting on a wooden table next to a window. The sun is shining.
Two dogs are running across a green field under a clear blue sky.
A person is reading a book in a quiet library; the shelves are full of old books.
The photo was taken at night, so most of the scene is dark, except for the lights.
Question: How many circles are in the image? Answer: There are three circles.
Question: Is the background white or black? Answer: The background is white.
Question: What shape is in the center? Answer: A large orange rectangle.
Please look at the image carefully and answer the question in one sentence.
You are a helpful assistant. Think step by step before you answer.
<think>
The user wants a description. I should mention the colors, the shapes, and where
they are placed. Then I will write a short answer.
</think>
The image contains colored shapes on a smooth gradient background.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 12 16 24 32 48 64 96 128 256 512 1024 2048 4096.
Sizes like 84x56, 64x64, 40x72 and 300x120 are common test sizes for images.
In 2024, the model was trained on 1,000,000 image and text pairs.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
How vexingly quick daft zebras jump! Sphinx of black quartz, judge my vow.
Vision language models read images and text together. The vision encoder turns the
image into patches, each patch becomes a vector, and the projector maps those vectors
into the space of the language model. The decoder then writes the answer token by token.
When the image is very wide, it is resized so that both sides are multiples of the
patch size, and the total number of pixels stays inside the budget.
Colors: red, green, blue, yellow, orange, purple, pink, brown, black, white, gray.
Shapes: square, rectangle, circle, triangle, line, dot, star, ring, cross, stripe.
Places: kitchen, garden, street, beach, forest, mountain, river, city, room, office.
Objects: chair, table, lamp, phone, cup, bottle, car, bike, tree, flower, house, door.
Tell me what you see. Can you read the text in the image? Where is the ball?
I see a blue ball on the grass, a tree behind it, and a house in the distance.
Is it day or night? It looks like early morning, because the light is soft and warm.
Write a short caption for this photo. "A calm lake at sunset, with mountains behind."
Explain the chart: the bars grow from left to right, so the values are increasing.
The answer is yes. The answer is no. I am not sure. It depends on the context.
Thank you! You're welcome. Let's try another example; here it is:
def describe(image): return "a small test image" # a line of code
{"type": "image"}, {"type": "text", "text": "What is this?"}
Mixed case: Hello World, HELLO, hello, McDonald, iPhone, eBay, NASA, OpenAI.
Punctuation... commas, semicolons; colons: dashes - and -- and quotes 'single' "double".
Tabs\tand  double  spaces,   and newlines

are all part of normal text.
"""


def build_tokenizer() -> Tokenizer:
    bpe = models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False, ignore_merges=True)
    tok = Tokenizer(bpe)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(TEKKEN_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET,
        min_frequency=2,
        show_progress=False,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    lines = CORPUS.splitlines(keepends=True)
    # Repeat the corpus so that the frequency statistics are well defined.
    tok.train_from_iterator(lines * 4, trainer=trainer, length=len(lines) * 4)
    # Mistral-style add_bos: the post-processor prepends <s>; the chat template does not emit it.
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)]
    )
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    return tok


# Qwen3-style ChatML with enable_thinking (default true: the generation prompt
# opens a think block; false: an empty think block is pre-filled).  Never
# emits bos_token: the tokenizer's post-processor adds the single <s>.
CHAT_TEMPLATE = """\
{%- macro render_content(content) -%}
    {%- if content is string -%}
        {{- content -}}
    {%- else -%}
        {%- for part in content -%}
            {%- if part.type == 'image' or 'image' in part or 'image_url' in part -%}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
            {%- elif part.type == 'video' or 'video' in part -%}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
            {%- elif 'text' in part -%}
                {{- part.text -}}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- for message in messages -%}
    {%- if message.role == 'assistant' -%}
        {{- '<|im_start|>assistant\\n' -}}
        {%- set content = render_content(message.content) -%}
        {%- if message.reasoning_content is defined and message.reasoning_content is string -%}
            {{- '<think>\\n' + message.reasoning_content.strip('\\n') + '\\n</think>\\n\\n' -}}
        {%- endif -%}
        {{- content + '<|im_end|>\\n' -}}
    {%- elif message.role == 'tool' -%}
        {{- '<|im_start|>user\\n<tool_response>\\n' + render_content(message.content) + '\\n</tool_response><|im_end|>\\n' -}}
    {%- else -%}
        {{- '<|im_start|>' + message.role + '\\n' + render_content(message.content) + '<|im_end|>\\n' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- '<|im_start|>assistant\\n' -}}
    {%- if enable_thinking is defined and enable_thinking is false -%}
        {{- '<think>\\n\\n</think>\\n\\n' -}}
    {%- else -%}
        {{- '<think>\\n' -}}
    {%- endif -%}
{%- endif -%}
"""


def make_hf_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token="<pad>",
        add_bos_token=True,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
        chat_template=CHAT_TEMPLATE,
    )
    return hf


def save_tokenizer_files(hf_tok: PreTrainedTokenizerFast, out: Path) -> None:
    """save_pretrained, then add the v4-style fields that Mistral-derived
    checkpoints carry (transformers 5 no longer writes them itself):
    add_bos_token / add_eos_token and added_tokens_decoder."""
    hf_tok.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["add_bos_token"] = True
    cfg["add_eos_token"] = False
    tj = json.loads((out / "tokenizer.json").read_text())
    cfg["added_tokens_decoder"] = {
        str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
        for t in tj["added_tokens"]
    }
    cfg = dict(sorted(cfg.items()))
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------

def _gradient(w: int, h: int, c0, c1, c2) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = x / max(w - 1, 1)
    v = y / max(h - 1, 1)
    img = (np.array(c0)[None, None] * (1 - u)[..., None] + np.array(c1)[None, None] * u[..., None]) * (1 - 0.5 * v)[..., None]
    img = img + np.array(c2)[None, None] * (0.5 * v)[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}

    # 84 wide x 56 high -> smart_resize 64 x 96 (upscale in both axes)
    im = Image.fromarray(_gradient(84, 56, (20, 40, 160), (230, 200, 60), (10, 120, 30)), "RGB")
    d = ImageDraw.Draw(im)
    d.rectangle([8, 10, 40, 44], fill=(220, 30, 30))
    d.ellipse([50, 6, 76, 32], fill=(250, 250, 240))
    d.line([0, 55, 83, 20], fill=(0, 0, 0), width=3)
    paths["rect_84x56"] = out / "rect_84x56.png"
    im.save(paths["rect_84x56"], optimize=False)

    # 64 x 64 -> no resize
    im = Image.fromarray(_gradient(64, 64, (240, 240, 240), (30, 30, 90), (200, 60, 20)), "RGB")
    d = ImageDraw.Draw(im)
    d.polygon([(32, 4), (60, 58), (4, 58)], fill=(20, 160, 60))
    d.rectangle([24, 30, 40, 46], fill=(250, 220, 0))
    paths["square_64"] = out / "square_64.png"
    im.save(paths["square_64"], optimize=False)

    # 64 wide x 96 high -> no resize (a second image for the two-image case)
    im = Image.fromarray(_gradient(64, 96, (20, 20, 120), (250, 230, 200), (90, 200, 90)), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse([8, 20, 56, 68], fill=(200, 30, 160))
    d.rectangle([20, 74, 44, 90], fill=(10, 10, 10))
    paths["tall_64x96"] = out / "tall_64x96.png"
    im.save(paths["tall_64x96"], optimize=False)

    # 40 wide x 72 high RGBA with fully transparent, half transparent and opaque
    # areas; transparent pixels carry saturated colour so that compositing onto
    # white (not dropping alpha) is what the goldens test.  -> 64 x 32
    rgb = _gradient(40, 72, (255, 0, 255), (0, 255, 0), (0, 0, 255))
    alpha = np.full((72, 40), 255, np.uint8)
    alpha[:, :12] = 0                 # left band fully transparent
    alpha[40:, 12:] = 128             # lower right half transparent
    y, x = np.mgrid[0:72, 0:40]
    alpha[(x - 26) ** 2 + (y - 20) ** 2 < 64] = 0   # transparent hole
    im = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    paths["rgba_40x72"] = out / "rgba_40x72.png"
    im.save(paths["rgba_40x72"], optimize=False)

    # 300 wide x 120 high -> 128 x 288 (upscale h, antialiased downscale w)
    im = Image.fromarray(_gradient(300, 120, (10, 10, 10), (250, 250, 250), (200, 40, 40)), "RGB")
    d = ImageDraw.Draw(im)
    for i in range(6):
        x0 = 10 + i * 48
        d.rectangle([x0, 20 + 8 * i, x0 + 30, 100 - 4 * i], fill=(40 * i, 255 - 40 * i, 128))
    d.ellipse([120, 30, 180, 90], outline=(255, 255, 0), width=4)
    for xx in range(0, 300, 6):       # fine stripes: exercise the antialias filter
        d.line([xx, 0, xx, 8], fill=(255, 255, 255) if (xx // 6) % 2 else (0, 0, 0))
    paths["wide_300x120"] = out / "wide_300x120.png"
    im.save(paths["wide_300x120"], optimize=False)
    return paths


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

N_SPECIAL = len(SPECIAL_TOKENS)
BOS_ID, PAD_ID, IM_END_ID = 1, 10, 25

CKPTS = {
    "tiny": dict(
        dtype=torch.float32,
        max_shard_size=None,
        vision=dict(
            depth=2, hidden_size=64, num_heads=4, intermediate_size=128, hidden_act="gelu_pytorch_tanh",
            in_channels=3, patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
            out_hidden_size=96, num_position_embeddings=64, deepstack_visual_indexes=[0, 1],
        ),
        text=dict(
            hidden_size=80, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
            intermediate_size=160, num_hidden_layers=2,
        ),
        cases=["img_rect", "img_square", "img_rgba", "img_wide", "text"],
    ),
    "small": dict(
        dtype=torch.bfloat16,
        max_shard_size="4MB",
        vision=dict(
            depth=1, hidden_size=256, num_heads=4, intermediate_size=512, hidden_act="gelu_pytorch_tanh",
            in_channels=3, patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
            out_hidden_size=512, num_position_embeddings=256, deepstack_visual_indexes=[0],
        ),
        text=dict(
            hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=128,
            intermediate_size=512, num_hidden_layers=2,
        ),
        cases=["img_rect", "img_square", "img_rgba", "img_wide", "text"],
    ),
}

CASES = {
    "img_rect": ("rect_84x56", "Describe this image."),
    "img_square": ("square_64", "What shapes and colors do you see?"),
    "img_rgba": ("rgba_40x72", "Is the background white or black?"),
    "img_wide": ("wide_300x120", "Write a short caption for this photo."),
    "text": (None, "Tell me about the quick brown fox."),
}
# Goldens computed after the seed is chosen (so adding one does not change the weights).
EXTRA_CASES = {
    "img_two": (("square_64", "tall_64x96"), "Compare the two pictures."),
}
N_GREEDY = 16
MIN_DISTINCT = 4
LM_HEAD_ROW_LOGSTD = 1.0


def make_config(spec: dict, vocab_size: int) -> ArtemisVLMConfig:
    text = dict(
        model_type="mistral",
        vocab_size=vocab_size,
        hidden_act="silu",
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False,
        sliding_window=None,
        bos_token_id=BOS_ID,
        eos_token_id=IM_END_ID,
        pad_token_id=PAD_ID,
        **spec["text"],
    )
    return ArtemisVLMConfig(
        vision_config=dict(spec["vision"]),
        text_config=text,
        image_token_id=22,
        video_token_id=23,
        projector_hidden_act="gelu",
    )


def _name_seed(base: int, name: str) -> int:
    return (base * 1_000_003 + zlib.crc32(name.encode())) & 0x7FFF_FFFF_FFFF


@torch.no_grad()
def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    """Deterministic, non-degenerate random weights; each tensor gets its own
    generator seeded from (seed, name), so the result does not depend on the
    order in which modules are visited."""
    for name, p in model.named_parameters():
        g = torch.Generator().manual_seed(_name_seed(seed, name))

        def randn(*shape, std=1.0):
            return torch.randn(*shape, generator=g, dtype=torch.float64) * std

        leaf = name.rsplit(".", 1)[-1]
        shape = tuple(p.shape)
        is_norm = any(s in name for s in ("norm", "layernorm"))
        if is_norm and leaf == "weight":
            v = 1.0 + randn(*shape, std=0.15)         # around 1, never exactly 1
        elif is_norm and leaf == "bias":
            v = randn(*shape, std=0.05)               # LayerNorm biases nonzero
        elif name.endswith("embed_tokens.weight"):
            v = randn(*shape, std=1.0)
        elif name.endswith("pos_embed.weight"):
            v = randn(*shape, std=0.5)
        elif name.endswith("lm_head.weight"):
            # heavy-tailed row norms give clear top-1 margins; special-token
            # rows are shrunk so greedy decoding never emits an EOG token.
            row = torch.exp(randn(shape[0], 1, std=LM_HEAD_ROW_LOGSTD))
            row[:N_SPECIAL] *= 0.05
            v = randn(*shape, std=1.0 / math.sqrt(shape[1])) * row
        elif leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            gain = 2.0 if "multi_modal_projector" in name else 1.0
            v = randn(*shape, std=gain / math.sqrt(fan_in))
        elif leaf == "bias":
            v = randn(*shape, std=0.05)
        else:
            raise ValueError(f"unexpected parameter {name}")
        p.copy_(v.to(p.dtype))


def build_model(spec: dict, vocab_size: int, seed: int) -> ArtemisVLMForConditionalGeneration:
    torch.manual_seed(seed)
    config = make_config(spec, vocab_size)
    model = ArtemisVLMForConditionalGeneration(config)
    model = model.float()
    randomize_weights(model, seed)
    if spec["dtype"] != torch.float32:
        # the stored low-precision weights are the truth: round the parameters
        # (not the buffers: RoPE inv_freq stays f32, as from_pretrained builds it)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(spec["dtype"]).float())
    return model.eval()


# ---------------------------------------------------------------------------
# Goldens
# ---------------------------------------------------------------------------

def case_messages(text: str, with_image: bool) -> list:
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def prepare_case(processor: ArtemisVLMProcessor, name: str, images_dir: Path) -> dict:
    img_key, question = CASES[name] if name in CASES else EXTRA_CASES[name]
    keys = [] if img_key is None else [img_key] if isinstance(img_key, str) else list(img_key)
    content = [{"type": "image"} for _ in keys] + [{"type": "text", "text": question}]
    messages = [{"role": "user", "content": content}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    images = []
    for k in keys:
        with Image.open(images_dir / f"{k}.png") as im:
            im.load()
            images.append(im.copy())
    batch = processor(text=prompt, images=images, return_tensors="pt")
    unexpanded = processor.tokenizer(prompt)["input_ids"]
    c = dict(
        name=name,
        image=f"images/{keys[0]}.png" if len(keys) == 1 else None,
        images=[f"images/{k}.png" for k in keys],
        messages=messages,
        prompt=prompt,
        input_ids=batch["input_ids"][0].tolist(),
        prompt_ids_unexpanded=list(unexpanded),
        pixel_values=batch.get("pixel_values"),
        image_grid_thw=batch["image_grid_thw"] if "image_grid_thw" in batch else None,
    )
    return c


@torch.no_grad()
def full_logits(model, ids: list[int], case: dict) -> torch.Tensor:
    kw = {}
    if case["pixel_values"] is not None:
        kw = dict(pixel_values=case["pixel_values"], image_grid_thw=case["image_grid_thw"])
    out = model(input_ids=torch.tensor([ids]), use_cache=False, **kw)
    return out.logits[0, -1].float()


@torch.no_grad()
def greedy(model, case: dict, n: int) -> tuple[list[int], list[float], list[float], torch.Tensor]:
    """Explicit argmax loop over FULL forward passes (pixels every step, no KV
    cache): artemis-vlm 0.1.4's generate() drops the image once a cache exists."""
    ids = list(case["input_ids"])
    out_ids, margins, rel = [], [], []
    first = None
    for _ in range(n):
        logits = full_logits(model, ids, case)
        if first is None:
            first = logits.clone()
        top = torch.topk(logits, 2)
        nxt = int(top.indices[0])
        m = float(top.values[0] - top.values[1])
        out_ids.append(nxt)
        margins.append(m)
        rel.append(m / float(logits.std()))
        ids.append(nxt)
    return out_ids, margins, rel, first


def score_seed(model, cases: list[dict]) -> tuple[float, bool]:
    """min relative top1-top2 margin over every greedy step of every case, and
    whether the outputs are usable: no special (EOG) token, at least
    MIN_DISTINCT distinct tokens per case, and every case's sequence distinct
    (so a runner that ignores the image or the prompt is caught)."""
    rel_min, ok, seqs = float("inf"), True, set()
    for c in cases:
        gid, _, rel, _ = greedy(model, c, N_GREEDY)
        rel_min = min(rel_min, min(rel))
        ok = ok and all(t >= N_SPECIAL for t in gid) and len(set(gid)) >= MIN_DISTINCT
        seqs.add(tuple(gid))
    ok = ok and len(seqs) == len(cases)
    return rel_min, ok


def choose_seed(spec: dict, vocab_size: int, cases: list[dict], n_seeds: int) -> tuple[int, float]:
    """Deterministic search: among seeds 0..n_seeds-1 whose greedy outputs are
    usable, the one with the largest minimum relative margin."""
    best = None
    for seed in range(n_seeds):
        model = build_model(spec, vocab_size, seed)
        rel_min, ok = score_seed(model, cases)
        if ok and (best is None or rel_min > best[1]):
            best = (seed, rel_min)
    assert best is not None, "no usable seed; raise ARTEMIS_FIXTURE_SEEDS"
    return best


def to_jsonable(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x


SMART_RESIZE_INPUTS = [
    (16, 16), (48, 48), (56, 84), (84, 56), (80, 80), (64, 64), (72, 40), (120, 300), (224, 224),
    (336, 336), (512, 512), (480, 640), (768, 1024), (1080, 1920), (1920, 1080), (100, 3000),
    (97, 61), (61, 97), (1, 1), (2, 400), (10, 500), (20, 20), (31, 33), (33, 31), (47, 49),
    (95, 97), (112, 80), (144, 176), (208, 208), (400, 400), (464, 464), (250, 250), (255, 257),
    (513, 513), (600, 600), (700, 500), (720, 1280), (1000, 1000), (2000, 3000), (3840, 2160),
    (4000, 100), (50, 9000), (8, 1600), (33, 6600),
]
SMART_RESIZE_ERRORS = [(1, 201), (10, 2001), (3000, 14)]


TOKENIZE_STRINGS = [
    "Hello world",
    "Describe this image.",
    "  leading spaces and   runs of spaces ",
    "digits 1234567890 and 3.14159, 1,000,000",
    "Line one\nLine two\r\nTabs\tand\n\nblank lines\n",
    "Unicode: café, naïve, Straße, 東京, Ελληνικά, emoji 🦊🎉",
    "CamelCaseWords and ALLCAPS and mixedCASE123",
    "punctuation!? (brackets) [square] {curly} <angle> /slash\\back 'quote' \"dq\"",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<|vision_start|><|image_pad|><|vision_end|>What is in the picture?",
    "<s>literal bos</s> and <unk>",
    "",
]


def write_tokenize_goldens(out: Path, hf_tok) -> None:
    """Official token ids for strings covering plain text, specials, digits, unicode, newlines."""
    rows = [
        dict(text=t,
             ids_with_special=hf_tok(t, add_special_tokens=True)["input_ids"],
             ids_no_special=hf_tok(t, add_special_tokens=False)["input_ids"])
        for t in TOKENIZE_STRINGS
    ]
    (out / "tokenize.json").write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def write_smart_resize(out: Path) -> None:
    rows = []
    for h, w in SMART_RESIZE_INPUTS:
        hb, wb = smart_resize(h, w, factor=32, min_pixels=1024, max_pixels=262144)
        rows.append([h, w, hb, wb])
    errors = []
    for h, w in SMART_RESIZE_ERRORS:
        try:
            smart_resize(h, w, factor=32, min_pixels=1024, max_pixels=262144)
        except ValueError:
            errors.append([h, w])
    assert len(errors) == len(SMART_RESIZE_ERRORS)
    doc = {
        "function": "transformers.models.qwen2_vl.image_processing_pil_qwen2_vl.smart_resize",
        "factor": 32, "min_pixels": 1024, "max_pixels": 262144,
        "columns": ["h", "w", "h_bar", "w_bar"],
        "rows": rows,
        "errors_aspect_ratio_over_200": errors,
    }
    (out / "smart_resize.json").write_text(json.dumps(doc, indent=1) + "\n")


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def make_checkpoint(name: str, spec: dict, hf_tok, out: Path, images_dir: Path, n_seeds: int) -> dict:
    ckpt_dir = out / name
    gold_dir = out / "golden" / name
    ckpt_dir.mkdir(parents=True)
    gold_dir.mkdir(parents=True)
    vocab_size = len(hf_tok)

    # tokenizer files first, so that every golden comes from the saved tokenizer
    save_tokenizer_files(hf_tok, ckpt_dir)
    tok = AutoTokenizer.from_pretrained(ckpt_dir)
    assert len(tok) == vocab_size

    config = make_config(spec, vocab_size)
    processor = ArtemisVLMProcessor(tokenizer=tok, vision_config=config.vision_config)
    # Without torchvision, transformers resolves Qwen2VLImageProcessor to its
    # PIL backend (Pillow bicubic on uint8).  With torchvision installed the
    # same class silently becomes the torchvision backend, whose antialiased
    # downscale differs by +-1 level (more at hard edges): refuse to mix them.
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil", type(processor.image_processor)
    cases = [prepare_case(processor, c, images_dir) for c in spec["cases"]]

    seed, rel_min = choose_seed(spec, vocab_size, cases, n_seeds)
    print(f"[{name}] seed {seed}: min relative margin {rel_min:.4f}", flush=True)
    model = build_model(spec, vocab_size, seed)
    cases = cases + [prepare_case(processor, c, images_dir) for c in EXTRA_CASES]
    mem_greedy = {c["name"]: greedy(model, c, N_GREEDY)[0] for c in cases}

    ref_model = model
    if name == "small":
        # every matmul row (in_features) a multiple of 256, so K-quants apply
        for k, v in model.state_dict().items():
            if v.ndim >= 2 and not k.endswith(("embed_tokens.weight", "pos_embed.weight")):
                assert int(np.prod(v.shape[1:])) % 256 == 0, (k, tuple(v.shape))
    save_model = build_model(spec, vocab_size, seed).to(spec["dtype"])
    kw = {"max_shard_size": spec["max_shard_size"]} if spec["max_shard_size"] else {}
    save_model.save_pretrained(ckpt_dir, **kw)
    processor.image_processor.save_pretrained(ckpt_dir)
    del model, save_model

    # ---- reload exactly as a user of the package would -------------------
    model = AutoModelForCausalLM.from_pretrained(ckpt_dir)
    assert isinstance(model, ArtemisVLMForConditionalGeneration)
    assert model.dtype == spec["dtype"], model.dtype
    model = model.float().eval()
    # the reloaded model must equal the in-memory one exactly (params AND buffers)
    ref_state = dict(ref_model.named_parameters()) | dict(ref_model.named_buffers())
    got_state = dict(model.named_parameters()) | dict(model.named_buffers())
    assert ref_state.keys() == got_state.keys()
    for k, v in ref_state.items():
        assert v.dtype == got_state[k].dtype and torch.equal(v, got_state[k]), k
    del ref_model
    tok = AutoTokenizer.from_pretrained(ckpt_dir)
    processor = ArtemisVLMProcessor(
        tokenizer=tok, vision_config=model.visual.config, min_pixels=32 * 32, max_pixels=512 * 512
    )

    tensors = {}
    records = []
    all_margins, all_rel = [], []
    for c0 in cases:
        c = prepare_case(processor, c0["name"], images_dir)
        assert c["input_ids"] == c0["input_ids"]
        n = c["name"]
        gid, margins, rel, last_logits = greedy(model, c, N_GREEDY)
        assert gid == mem_greedy[n], (n, gid, mem_greedy[n])
        all_margins += margins
        all_rel += rel
        tensors[f"{n}.last_logits"] = last_logits.contiguous()
        grid = []
        resized = None
        n_img = 0
        if c["pixel_values"] is not None:
            pv, thw = c["pixel_values"].float(), c["image_grid_thw"]
            with torch.no_grad():
                merger_out = model.visual(pv, grid_thw=thw, return_dict=True).pooler_output.float()
                image_embeds = model.get_image_features(pv, thw).float()
                no_img = full_logits(model, c["input_ids"], dict(pixel_values=None))
            tensors[f"{n}.pixel_values"] = pv.contiguous()
            tensors[f"{n}.merger_out"] = merger_out.contiguous()
            tensors[f"{n}.image_embeds"] = image_embeds.contiguous()
            grid = thw.tolist()
            resized = [grid[0][1] * 16, grid[0][2] * 16] if len(grid) == 1 else None
            for g, path in zip(grid, c["images"]):
                with Image.open(images_dir.parent / path) as im:
                    assert (g[1] * 16, g[2] * 16) == smart_resize(im.height, im.width, 32, 1024, 262144)
            n_img = int(sum(1 for t in c["input_ids"] if t == config.image_token_id))
            assert n_img == image_embeds.shape[0] == sum(g[1] * g[2] // 4 for g in grid)
            print(f"[{name}] {n}: grid {grid} image-token rms {image_embeds.pow(2).mean().sqrt():.3f} "
                  f"| max |logit diff| vs image-pad embedding {float((last_logits - no_img).abs().max()):.3f}",
                  flush=True)
        with torch.no_grad():
            emb = model.get_input_embeddings()(torch.tensor(c["input_ids"]))
        tensors[f"{n}.text_embeds_first"] = emb[0].float().contiguous()
        records.append(dict(
            name=n,
            image=c["image"],
            images=c["images"],
            messages=c["messages"],
            prompt=c["prompt"],
            input_ids=c["input_ids"],
            prompt_ids_unexpanded=c["prompt_ids_unexpanded"],
            image_grid_thw=grid,
            resized_hw=resized,
            n_image_tokens=n_img,
            greedy_ids=gid,
            greedy_text=tok.decode(gid),
            greedy_margins=[round(m, 6) for m in margins],
            greedy_rel_margins=[round(r, 6) for r in rel],
        ))
        print(f"[{name}] {n}: greedy {gid} min margin {min(margins):.4f} (rel {min(rel):.4f})", flush=True)

    write_json(gold_dir / "cases.json", records)
    save_file(tensors, str(gold_dir / "tensors.safetensors"))
    return dict(seed=seed, min_margin=min(all_margins), min_rel_margin=min(all_rel))


def versions() -> dict:
    import PIL
    import safetensors
    import tokenizers
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "artemis-vlm": artemis_vlm.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }


def write_readme(out: Path, summary: dict) -> None:
    v = versions()
    lines = [
        "# Test fixtures: tiny random-weight Artemis checkpoints + golden outputs",
        "",
        "Generated by `tools/make_fixtures.sh` (creates `tools/.venv` with pinned versions, then runs",
        "`HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/make_fixtures.py fixtures`). Deterministic:",
        "a second run reproduces every file byte for byte. Do not edit by hand; regenerate.",
        "",
        "Everything is produced by the official implementation: checkpoints are built with",
        "`artemis_vlm.ArtemisVLMConfig` / `ArtemisVLMForConditionalGeneration` and written with",
        "`save_pretrained`; goldens come from re-loading them with `AutoModelForCausalLM` /",
        "`AutoTokenizer` and preprocessing with `artemis_vlm.ArtemisVLMProcessor`.",
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + " (CPU; no torchvision, so",
        "`Qwen2VLImageProcessor` is transformers' PIL backend, i.e. Pillow bicubic on uint8).",
        "",
        "## Layout",
        "",
        "- `tiny/`: f32 checkpoint, single `model.safetensors`. Vision depth 2, hidden 64, 4 heads,",
        "  MLP 128, patch 16, temporal 2, merge 2, out_hidden 96, 8x8 position table, DeepStack",
        "  layers [0, 1] (weights present, unused). Decoder: hidden 80, 4 heads / 2 KV heads,",
        "  head_dim 32 (not 80/4), MLP 160, 2 layers, rms eps 1e-5, rope theta 1e6, untied lm_head.",
        "- `small/`: bf16 checkpoint sharded into `model-0000k-of-00004.safetensors` +",
        "  `model.safetensors.index.json`. Every matmul's in_features is a multiple of 256",
        "  (K-quants apply). Vision depth 1, hidden 256, 4 heads, MLP 512, out_hidden 512, 16x16",
        "  position table, DeepStack [0]. Decoder: hidden 256, 4 heads / 2 KV heads, head_dim 128,",
        "  MLP 512, 2 layers. Goldens use the bf16 weights upcast exactly to f32.",
        "- Both: `config.json`, `generation_config.json`, `tokenizer.json`, `tokenizer_config.json`,",
        "  `chat_template.jinja`, `preprocessor_config.json` (CLIP mean/std, size",
        "  {shortest_edge 1024, longest_edge 262144}, patch 16, temporal 2, merge 2).",
        "- `images/`: synthetic PNGs: `rect_84x56` (-> 64x96), `square_64` (no resize),",
        "  `rgba_40x72` (RGBA, transparent areas composite onto white; -> 64x32),",
        "  `wide_300x120` (-> 128x288, antialiased downscale in width), `tall_64x96` (no resize;",
        "  second image of the two-image case). The other images and `golden/preprocess/` come from",
        "  `tools/make_preprocess_goldens.py`, which `make_fixtures.sh` runs afterwards.",
        "- `golden/smart_resize.json`: [h, w, h_bar, w_bar] from transformers' `smart_resize`",
        "  (factor 32, min 1024, max 262144), plus inputs that raise (aspect ratio > 200).",
        "- `golden/tokenize.json`: official token ids (with and without special tokens) of strings",
        "  covering plain text, specials, digits, unicode and newlines.",
        "- `golden/<ckpt>/cases.json`: per case (`img_two` has two images, computed after the seed",
        "  choice) `name`, `image` (path relative to fixtures/, or null), `images` (all of them),",
        "  `messages`, rendered `prompt`, `input_ids` (after <|image_pad|> expansion: exactly what the",
        "  model gets), `prompt_ids_unexpanded`, `image_grid_thw`, `resized_hw`, `n_image_tokens`,",
        f"  `greedy_ids` ({N_GREEDY} tokens), `greedy_text`, `greedy_margins` (top1-top2 logit),",
        "  `greedy_rel_margins` (margin / std of that step's logits).",
        "- `tokenizers/<setup>/` + `golden/tokenizers.json` (`tools/make_tokenizer_matrix.py`;",
        "  `make_fixtures.py --only-tokenizers` regenerates just these): 14 tokenizer-only variants of",
        "  `tiny` (post-processor absent / null / ByteLevel / TemplateProcessing with BOS, BOS+EOS, EOS,",
        "  nothing / Sequence / Roberta / Bert; tokenizer_config.json add_* keys present, absent and",
        "  contradicting; templates with and without `{{ bos_token }}`) plus 2 the converter must",
        "  refuse. Per setup: the ids the loaded tokenizer adds around a text, and per case",
        "  (`img_square`, `text`) the prompt, input_ids and 16 greedy ids on tiny's weights.",
        "- `llava_qwen3/`, `llava_mistral/` + `golden/llava_*/` (`tools/make_llava_fixtures.py`;",
        "  `make_fixtures.py --only-llava` regenerates just these): tiny `LlavaForConditionalGeneration`",
        "  checkpoints saved by transformers 5.23 with a `LlavaProcessor` (CLIPImageProcessor PIL backend,",
        "  56 px, patch 14, 3-layer CLIP, vision_feature_layer -2, \"default\"; Qwen2-style BPE tokenizer",
        "  with `<image>` last). `llava_qwen3`: Qwen3 decoder, head_dim 16 != 48/4, tied embeddings, vocab",
        "  padded past the tokenizer. `llava_mistral`: Mistral decoder, untied, no projector bias. Goldens",
        "  per case (square, wide, tall, RGBA, upscaled image, text): prompt, input_ids, pixel_values,",
        "  vision_features (hidden_states[-2] without CLS), image_embeds, last_logits, 12 greedy ids.",
        "- `golden/<ckpt>/tensors.safetensors` (f32): `<case>.pixel_values` [gh*gw, 1536],",
        "  `<case>.merger_out` [N, out_hidden] (vision pooler_output), `<case>.image_embeds`",
        "  [N, text_hidden] (after the projector), `<case>.last_logits` [vocab] (last prompt position,",
        "  full forward with the image), `<case>.text_embeds_first` [text_hidden] (embedding row of",
        "  input_ids[0], the BOS).",
        "",
        "## Tokenizer (shared)",
        "",
        f"Byte-level BPE trained by the script ({VOCAB_TARGET} entries, no byte fallback,",
        "ignore_merges), Tekken pre-tokenizer (Split with the Tekken regex, Isolated, then ByteLevel",
        "without prefix space or regex), no normalizer, ByteLevel decoder. Ids: 0 `<unk>`, 1 `<s>`,",
        "2 `</s>`, 3-13 fillers `<SPECIAL_n>` except 10 = `<pad>`, 14 `<think>`, 15 `</think>`,",
        "16-19 tool tokens, 20 `<|vision_start|>`, 21 `<|vision_end|>`, 22 `<|image_pad|>`,",
        "23 `<|video_pad|>`, 24 `<|im_start|>`, 25 `<|im_end|>`; all 26 are special added tokens.",
        "bos `<s>` (1), eos `<|im_end|>` (25), pad `<pad>` (10), unk `<unk>` (0).",
        "The post-processor (TemplateProcessing) prepends `<s>`; `tokenizer_config.json` says",
        "add_bos_token true, add_eos_token false. The chat template never emits `<s>`, so the",
        "official path (render with tokenize=False, then tokenize with special tokens) has exactly",
        "one BOS. (`apply_chat_template(tokenize=True)` in transformers 5 adds none.)",
        "Chat template: Qwen3-style ChatML; generation prompt `<|im_start|>assistant\\n<think>\\n`,",
        "or `<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n` with enable_thinking=false; an image",
        "part renders `<|vision_start|><|image_pad|><|vision_end|>`.",
        "",
        "## Weights and greedy goldens",
        "",
        "Weights are random (per-tensor generators seeded from the tensor name): embeddings std 1,",
        "linear weights std 1/sqrt(in) (projector 2/sqrt(in)), biases std 0.05, norm weights",
        "1 + N(0, 0.15), LayerNorm biases std 0.05, lm_head rows with log-normal norms (special",
        "rows shrunk so no special token is ever generated). The seed is the one among the first",
        "96 whose greedy outputs are usable (no special token, >= 4 distinct tokens per case, all",
        "cases different) with the largest minimum relative margin.",
        "Greedy ids come from an explicit argmax loop over FULL forward passes (pixel_values every",
        "step, use_cache=False): artemis-vlm 0.1.4's generate() drops the image once the KV cache",
        "exists.",
        "",
    ]
    for name, sm in summary.items():
        lines.append(f"- `{name}`: seed {sm['seed']}, min margin {sm['min_margin']:.4f}, "
                     f"min relative margin {sm['min_rel_margin']:.4f}")
    lines.append("")
    (out / "README.md").write_text("\n".join(lines))


def main() -> None:
    args = sys.argv[1:]
    only_tokenizers = "--only-tokenizers" in args
    only_llava = "--only-llava" in args
    args = [a for a in args if a not in ("--only-tokenizers", "--only-llava")]
    out = Path(args[0] if args else "fixtures")
    if only_llava:
        # just the LLaVA-recipe checkpoints, from the committed images
        print(json.dumps(make_llava_fixtures.make(out, sys.modules[__name__]), indent=1))
        return
    if only_tokenizers:
        # just the tokenizer-setup matrix, from the committed tiny checkpoint and images
        make_tokenizer_matrix.make(out, sys.modules[__name__])
        return
    n_seeds = int(os.environ.get("ARTEMIS_FIXTURE_SEEDS", "96"))
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("tiny", "small", "images", "golden"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    (out / "golden").mkdir()

    hf_tok = make_hf_tokenizer(build_tokenizer())
    images = make_images(out / "images")
    write_smart_resize(out / "golden")
    write_tokenize_goldens(out / "golden", hf_tok)
    summary = {}
    for name, spec in CKPTS.items():
        summary[name] = make_checkpoint(name, spec, hf_tok, out, out / "images", n_seeds)
    make_tokenizer_matrix.make(out, sys.modules[__name__])
    summary.update(make_llava_fixtures.make(out, sys.modules[__name__]))
    write_readme(out, summary)
    print(json.dumps(summary, indent=1))
    del images


if __name__ == "__main__":
    main()
