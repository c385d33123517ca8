#!/usr/bin/env python3
"""Generate an A3-shaped synthetic Artemis checkpoint for conversion benchmarks.

    tools/.venv/bin/python tools/make_bench_checkpoint.py OUT_DIR \
        [--decoder-layers 2] [--shard-size 2GB] [--seed 0] \
        [--also-standalone-decoder DIR] [--force]
    tools/.venv/bin/python tools/make_bench_checkpoint.py STANDALONE_DIR \
        --standalone-from CKPT_DIR [--shard-size 2GB] [--force]

Shapes are the real ones (docs: artemis-format.md §1, §2.2): Qwen3-VL-2B vision
tower (24 blocks, width 1024, MLP 4096, 16 heads, patch 16, temporal 2, merge 2,
out 2048, 2304 positions, DeepStack mergers for layers 5/11/17), the Artemis
projector 2048 -> 5120 -> 5120, and an A2 decoder at full width (hidden 5120,
32 heads / 8 KV heads, head_dim 128, SwiGLU 14336, vocab 131072, untied
lm_head), but with only --decoder-layers layers (default 2; the real model has
40).  Weights are random bf16 with no model semantics: they exist to be
converted, not run.

Layout matches fixtures/small (and what transformers' save_pretrained writes):
keys `visual.*`, `multi_modal_projector.*`, `language_model.model.*`,
`language_model.lm_head.weight`; shards `model-0000k-of-0000n.safetensors`
filled greedily in module order up to --shard-size (transformers-style:
"2GB" = 2*10^9 bytes; transformers 5's own default, 50GB, would give a single
file, so a smaller size is used to get several shards) plus
`model.safetensors.index.json` (metadata.total_size, total_parameters,
weight_map).  Inside a shard, tensors are in name order with the header padded
with spaces to 8 bytes, as the safetensors package writes them.

config.json is fixtures/small/config.json with the real dimensions and
num_hidden_layers = N.  tokenizer.json, tokenizer_config.json,
chat_template.jinja, preprocessor_config.json and generation_config.json are
copied from fixtures/small, so the tokenizer has 768 tokens while
text_config.vocab_size is 131072 (converters pad the missing ids).

--also-standalone-decoder DIR additionally writes the standalone Mistral
decoder derived as in artemis-format.md §2.3 (the input
convert_hf_to_gguf.py needs): only `language_model.*`, renamed to `model.*` /
`lm_head.weight`, with the same values (same per-tensor seeds), config.json =
text_config with architectures ["MistralForCausalLM"], plus the tokenizer
files.  Renaming changes the shard headers, so new shards are written.
--standalone-from CKPT does only that derivation, for an existing (e.g. real
A3) checkpoint, copying the tensor bytes unchanged.

Random values: deterministic per (seed, tensor name), generated in fixed-size
chunks from numpy's PCG64 and assembled directly as bf16 bit patterns (no
float math, no torch): matrices and biases get a random sign and mantissa and
a geometric exponent distribution whose top is 2^-5 (roughly the magnitude
profile of trained weights, with a thin tail reaching f16-subnormal values,
which exercises f16 rounding); norm weights are positive in [0.5, 2).  The
safetensors files are written by hand (header + raw little-endian bytes), one
tensor chunk at a time, so peak RAM stays around a few hundred MB.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "fixtures" / "small"
COPY_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "generation_config.json",
]
STANDALONE_COPY_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"]

# Real dimensions.
V_DEPTH, V_HIDDEN, V_FFN, V_HEADS = 24, 1024, 4096, 16
V_PATCH, V_TEMPORAL, V_MERGE, V_OUT, V_POS = 16, 2, 2, 2048, 2304
V_DEEPSTACK = [5, 11, 17]
T_HIDDEN, T_HEADS, T_KV, T_HEAD_DIM, T_FFN, T_VOCAB = 5120, 32, 8, 128, 14336, 131072

CHUNK = 1 << 24  # elements per generation chunk (fixed: part of the determinism contract)


def tensor_specs(n_layers: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, torch shape, kind) in module order; kind is 'mat' or 'norm'."""
    s: list[tuple[str, tuple[int, ...], str]] = []
    m = V_HIDDEN * V_MERGE * V_MERGE  # 4096
    s.append(("visual.patch_embed.proj.weight", (V_HIDDEN, 3, V_TEMPORAL, V_PATCH, V_PATCH), "mat"))
    s.append(("visual.patch_embed.proj.bias", (V_HIDDEN,), "mat"))
    s.append(("visual.pos_embed.weight", (V_POS, V_HIDDEN), "mat"))
    for i in range(V_DEPTH):
        p = f"visual.blocks.{i}."
        s += [
            (p + "norm1.weight", (V_HIDDEN,), "norm"),
            (p + "norm1.bias", (V_HIDDEN,), "mat"),
            (p + "attn.qkv.weight", (3 * V_HIDDEN, V_HIDDEN), "mat"),
            (p + "attn.qkv.bias", (3 * V_HIDDEN,), "mat"),
            (p + "attn.proj.weight", (V_HIDDEN, V_HIDDEN), "mat"),
            (p + "attn.proj.bias", (V_HIDDEN,), "mat"),
            (p + "norm2.weight", (V_HIDDEN,), "norm"),
            (p + "norm2.bias", (V_HIDDEN,), "mat"),
            (p + "mlp.linear_fc1.weight", (V_FFN, V_HIDDEN), "mat"),
            (p + "mlp.linear_fc1.bias", (V_FFN,), "mat"),
            (p + "mlp.linear_fc2.weight", (V_HIDDEN, V_FFN), "mat"),
            (p + "mlp.linear_fc2.bias", (V_HIDDEN,), "mat"),
        ]
    s += [
        ("visual.merger.norm.weight", (V_HIDDEN,), "norm"),
        ("visual.merger.norm.bias", (V_HIDDEN,), "mat"),
        ("visual.merger.linear_fc1.weight", (m, m), "mat"),
        ("visual.merger.linear_fc1.bias", (m,), "mat"),
        ("visual.merger.linear_fc2.weight", (V_OUT, m), "mat"),
        ("visual.merger.linear_fc2.bias", (V_OUT,), "mat"),
    ]
    for j in range(len(V_DEEPSTACK)):
        p = f"visual.deepstack_merger_list.{j}."
        s += [
            (p + "norm.weight", (m,), "norm"),  # post-shuffle LayerNorm: width 4096
            (p + "norm.bias", (m,), "mat"),
            (p + "linear_fc1.weight", (m, m), "mat"),
            (p + "linear_fc1.bias", (m,), "mat"),
            (p + "linear_fc2.weight", (V_OUT, m), "mat"),
            (p + "linear_fc2.bias", (V_OUT,), "mat"),
        ]
    q, kv = T_HEADS * T_HEAD_DIM, T_KV * T_HEAD_DIM
    s.append(("language_model.model.embed_tokens.weight", (T_VOCAB, T_HIDDEN), "mat"))
    for i in range(n_layers):
        p = f"language_model.model.layers.{i}."
        s += [
            (p + "input_layernorm.weight", (T_HIDDEN,), "norm"),
            (p + "self_attn.q_proj.weight", (q, T_HIDDEN), "mat"),
            (p + "self_attn.k_proj.weight", (kv, T_HIDDEN), "mat"),
            (p + "self_attn.v_proj.weight", (kv, T_HIDDEN), "mat"),
            (p + "self_attn.o_proj.weight", (T_HIDDEN, q), "mat"),
            (p + "post_attention_layernorm.weight", (T_HIDDEN,), "norm"),
            (p + "mlp.gate_proj.weight", (T_FFN, T_HIDDEN), "mat"),
            (p + "mlp.up_proj.weight", (T_FFN, T_HIDDEN), "mat"),
            (p + "mlp.down_proj.weight", (T_HIDDEN, T_FFN), "mat"),
        ]
    s.append(("language_model.model.norm.weight", (T_HIDDEN,), "norm"))
    s += [
        ("multi_modal_projector.fc1.weight", (T_HIDDEN, V_OUT), "mat"),
        ("multi_modal_projector.fc1.bias", (T_HIDDEN,), "mat"),
        ("multi_modal_projector.fc2.weight", (T_HIDDEN, T_HIDDEN), "mat"),
        ("multi_modal_projector.fc2.bias", (T_HIDDEN,), "mat"),
    ]
    s.append(("language_model.lm_head.weight", (T_VOCAB, T_HIDDEN), "mat"))
    return s


def numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# bf16 exponent field indexed by the upper 16 random bits: 122 - trailing_zeros(r16),
# i.e. magnitude 2^-5 with probability 1/2, 2^-6 with 1/4, ... down to 2^-21.
def _exp_table() -> np.ndarray:
    r = np.arange(1 << 16, dtype=np.uint32)
    tz = np.zeros_like(r)
    x = r.copy()
    for _ in range(16):
        z = (x & 1) == 0
        tz += z & (x != 0)
        x = np.where(z, x >> 1, x)
    tz[0] = 16
    return ((122 - tz).astype(np.uint16) << 7).astype(np.uint16)


EXP_TABLE = _exp_table()


def gen_chunks(seed: int, name: str, kind: str, n: int):
    """Yield uint16 arrays (bf16 bit patterns) totalling n elements."""
    rng = np.random.Generator(np.random.PCG64([seed, zlib.crc32(name.encode())]))
    left = n
    while left:
        c = min(CHUNK, left)
        r = rng.integers(0, 1 << 32, size=c, dtype=np.uint32)
        if kind == "norm":
            # positive, exponent 126 or 127: [0.5, 2)
            out = (r & 0x7F).astype(np.uint16)
            out |= (((r >> 7) & 1).astype(np.uint16) + 126) << 7
        else:
            out = (r & 0x807F).astype(np.uint16)
            out |= EXP_TABLE[r >> 16]
        yield out
        left -= c


def parse_size(s: str) -> int:
    s = s.strip().upper()
    for suf, mul in (("GIB", 1 << 30), ("MIB", 1 << 20), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if s.endswith(suf):
            return int(float(s[: -len(suf)]) * mul)
    return int(s)


# A shard entry: (out_name, dtype, shape, nbytes, produce) where produce() yields the
# tensor's raw little-endian bytes in chunks.
Entry = tuple


def synthetic_entries(specs, seed: int, rename=lambda n: n) -> list[Entry]:
    def producer(src, kind, n):
        return lambda: (c.tobytes() for c in gen_chunks(seed, src, kind, n))  # uint16 LE == bf16 bits

    return [(rename(src), "BF16", shape, numel(shape) * 2, producer(src, kind, numel(shape)))
            for src, shape, kind in specs]


def plan_shards(entries: list[Entry], max_bytes: int) -> list[list[Entry]]:
    """Greedy, in the given (module) order, like transformers' save_pretrained."""
    shards: list[list[Entry]] = [[]]
    cur = 0
    for e in entries:
        if shards[-1] and cur + e[3] > max_bytes:
            shards.append([])
            cur = 0
        shards[-1].append(e)
        cur += e[3]
    return shards


def write_shard(path: Path, entries: list[Entry]) -> int:
    entries = sorted(entries, key=lambda e: e[0])
    header: dict = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dtype, shape, nbytes, _ in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((-len(hj)) % 8)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, _, _, nbytes, produce in entries:
            written = 0
            for chunk in produce():
                f.write(chunk)
                written += len(chunk)
            if written != nbytes:
                raise RuntimeError(f"{name}: produced {written} bytes, expected {nbytes}")
    os.replace(tmp, path)
    return off


def write_checkpoint(out: Path, entries: list[Entry], shard_bytes: int, quiet: bool) -> tuple[int, int]:
    shards = plan_shards(entries, shard_bytes)
    n = len(shards)
    weight_map: dict[str, str] = {}
    total = 0
    total_params = 0
    for k, shard in enumerate(shards, 1):
        fname = f"model-{k:05d}-of-{n:05d}.safetensors"
        t0 = time.time()
        nbytes = write_shard(out / fname, shard)
        total += nbytes
        for name, dtype, shape, _, _ in shard:
            weight_map[name] = fname
            total_params += numel(shape)
        if not quiet:
            print(f"  {out / fname}: {len(shard)} tensors, {nbytes / 1e9:.3f} GB, {time.time() - t0:.1f} s", file=sys.stderr)
    index = {
        "metadata": {"total_parameters": total_params, "total_size": total},
        "weight_map": dict(sorted(weight_map.items())),
    }
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total, n


def read_st_header(path: Path) -> tuple[dict, int]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
    h.pop("__metadata__", None)
    return h, 8 + n


def existing_decoder_entries(src: Path) -> list[Entry]:
    """Decoder tensors of an existing full Artemis checkpoint, renamed per §2.3, read lazily."""
    idx = src / "model.safetensors.index.json"
    files = sorted(set(json.loads(idx.read_text())["weight_map"].values())) if idx.exists() else ["model.safetensors"]

    def producer(path: Path, start: int, nbytes: int):
        def gen():
            with open(path, "rb") as f:
                f.seek(start)
                left = nbytes
                while left:
                    b = f.read(min(left, 64 << 20))
                    if not b:
                        raise RuntimeError(f"{path}: truncated")
                    left -= len(b)
                    yield b
        return gen

    out: list[tuple] = []
    for fname in files:
        h, data_start = read_st_header(src / fname)
        for name, info in h.items():
            if name.startswith("language_model.model.") or name == "language_model.lm_head.weight":
                new = standalone_rename(name)
            elif name.startswith("lm_head."):  # bare top-level lm_head, accepted like the fork does
                new = name
            else:
                continue
            a, b = info["data_offsets"]
            out.append((new, info["dtype"], tuple(info["shape"]), b - a, producer(src / fname, data_start + a, b - a)))

    def order(e):  # module order: embed, layers by index, norm, lm_head
        m = re.match(r"model\.layers\.(\d+)\.", e[0])
        if e[0].startswith("model.embed_tokens"):
            return (0, 0, e[0])
        if m:
            return (1, int(m.group(1)), e[0])
        if e[0].startswith("lm_head"):
            return (3, 0, e[0])
        return (2, 0, e[0])

    return sorted(out, key=order)


def make_config(n_layers: int) -> dict:
    cfg = json.loads((FIXTURE / "config.json").read_text())
    t = cfg["text_config"]
    t.update(
        hidden_size=T_HIDDEN,
        intermediate_size=T_FFN,
        num_hidden_layers=n_layers,
        num_attention_heads=T_HEADS,
        num_key_value_heads=T_KV,
        head_dim=T_HEAD_DIM,
        vocab_size=T_VOCAB,
        max_position_embeddings=1024000,
        rms_norm_eps=1e-05,
        tie_word_embeddings=False,
        sliding_window=None,
    )
    t["rope_parameters"] = {"rope_theta": 1000000.0, "rope_type": "default"}
    v = cfg["vision_config"]
    v.update(
        depth=V_DEPTH,
        hidden_size=V_HIDDEN,
        intermediate_size=V_FFN,
        num_heads=V_HEADS,
        hidden_act="gelu_pytorch_tanh",
        in_channels=3,
        patch_size=V_PATCH,
        temporal_patch_size=V_TEMPORAL,
        spatial_merge_size=V_MERGE,
        out_hidden_size=V_OUT,
        num_position_embeddings=V_POS,
        deepstack_visual_indexes=list(V_DEEPSTACK),
    )
    return cfg


def standalone_config(cfg: dict) -> dict:
    """§2.3: text_config as config.json, with the Mistral architecture."""
    t = dict(cfg["text_config"])
    t["architectures"] = ["MistralForCausalLM"]
    t["model_type"] = "mistral"
    t["dtype"] = "bfloat16"
    t["transformers_version"] = cfg.get("transformers_version", "5.23.0")
    return t


def standalone_rename(name: str) -> str:
    if name.startswith("language_model.model."):
        return "model." + name[len("language_model.model."):]
    if name == "language_model.lm_head.weight":
        return "lm_head.weight"
    raise ValueError(name)


def prepare_dir(d: Path, force: bool) -> None:
    if (d / "model.safetensors.index.json").exists() and not force:
        sys.exit(f"{d} already holds a checkpoint (use --force to overwrite)")
    d.mkdir(parents=True, exist_ok=True)
    for p in d.glob("model-*-of-*.safetensors"):
        p.unlink()


def write_standalone(d: Path, text_cfg: dict, src_files_dir: Path, entries: list[Entry], shard_bytes: int,
                     force: bool, quiet: bool) -> None:
    t0 = time.time()
    prepare_dir(d, force)
    (d / "config.json").write_text(json.dumps(standalone_config(text_cfg), indent=2, sort_keys=True) + "\n")
    for f in STANDALONE_COPY_FILES:
        if (src_files_dir / f).exists():
            shutil.copyfile(src_files_dir / f, d / f)
    total, n = write_checkpoint(d, entries, shard_bytes, quiet)
    print(f"{d}: {len(entries)} tensors, {total} bytes ({total / 1e9:.3f} GB) in {n} shards, "
          f"{time.time() - t0:.1f} s", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path, help="synthetic checkpoint to write (with --standalone-from: the standalone decoder dir)")
    ap.add_argument("--decoder-layers", type=int, default=2)
    ap.add_argument("--shard-size", default="2GB", help='max shard size, transformers-style ("2GB" = 2e9 bytes)')
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--also-standalone-decoder", type=Path, metavar="DIR",
                    help="also write the standalone Mistral decoder (§2.3) of the synthetic checkpoint to DIR")
    ap.add_argument("--standalone-from", type=Path, metavar="CKPT",
                    help="generate nothing: derive OUT_DIR as the standalone decoder of an existing checkpoint CKPT")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    shard_bytes = parse_size(a.shard_size)

    if a.standalone_from:
        src = a.standalone_from
        cfg = json.loads((src / "config.json").read_text())
        write_standalone(a.out_dir, cfg, src, existing_decoder_entries(src), shard_bytes, a.force, a.quiet)
        return

    if a.decoder_layers < 1:
        sys.exit("--decoder-layers must be >= 1")
    specs = tensor_specs(a.decoder_layers)
    cfg = make_config(a.decoder_layers)

    t0 = time.time()
    prepare_dir(a.out_dir, a.force)
    (a.out_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for f in COPY_FILES:
        if (FIXTURE / f).exists():
            shutil.copyfile(FIXTURE / f, a.out_dir / f)
    total, n = write_checkpoint(a.out_dir, synthetic_entries(specs, a.seed), shard_bytes, a.quiet)
    print(f"{a.out_dir}: {len(specs)} tensors, {total} bytes ({total / 1e9:.3f} GB) in {n} shards, "
          f"{time.time() - t0:.1f} s", file=sys.stderr)

    if a.also_standalone_decoder:
        # Same values as the full checkpoint (seeded by the Artemis name), same module order.
        dec = [sp for sp in specs if sp[0].startswith("language_model.")]
        write_standalone(a.also_standalone_decoder, cfg, FIXTURE,
                         synthetic_entries(dec, a.seed, standalone_rename), shard_bytes, a.force, a.quiet)


if __name__ == "__main__":
    main()
