#!/usr/bin/env python3
"""Golden outputs for the image preprocessing (src/preprocess.rs) from the OFFICIAL processor.

Run with the pinned fixtures venv (see tools/make_fixtures.sh), after make_fixtures.py
(which recreates fixtures/images/ from scratch and would delete the images made here):

    HF_HUB_OFFLINE=1 tools/.venv/bin/python tools/make_preprocess_goldens.py fixtures

What it writes (deterministic; a second run reproduces every file byte for byte):

  <out>/images/<new test images>        PNG/JPEG inputs covering every code path (below)
  <out>/golden/preprocess/cases.json    per image: mode, h, w, h_bar, w_bar, grid_thw, n_tokens, ...
  <out>/golden/preprocess/rgb.safetensors           u8 [h, w, 3]: after transformers' convert_to_rgb
                                                    (the resize input), small images only
  <out>/golden/preprocess/resized.safetensors       u8 [h_bar, w_bar, 3]: the processor's resize output
  <out>/golden/preprocess/pixel_values.safetensors  f32 [gh*gw, 1536]: the processor's pixel_values,
                                                    images resized to <= 2048 px only (24 bytes a pixel)
  <out>/golden/preprocess/pillow_resize.json + .safetensors
                                        Pillow Image.resize(BICUBIC) on crops of one synthetic
                                        RGB source, ~30 (in_w, in_h, out_w, out_h) pairs

The official path is artemis_vlm.ArtemisVLMProcessor (0.1.4), built exactly as make_fixtures.py
builds it (tokenizer + vision_config of fixtures/tiny, min 32*32, max 512*512), which builds
transformers' Qwen2VLImageProcessor (PIL backend: torchvision is not installed) with patch 16,
temporal 2, merge 2 and the class-default OpenAI CLIP mean/std.  Images are handed over as PIL
images opened with Image.open (no EXIF transpose), like make_fixtures.py and the Merlina trainer
(HF datasets rows).  The resize output and the convert_to_rgb output are captured from inside the
processor (instance-level wrappers around its own `resize` / `convert_to_rgb`), not recomputed.

On top, the script checks an independent numpy re-implementation of Pillow's resampler (the
algorithm src/preprocess.rs ports) and of transformers' RGB conversion / normalization against
every golden, bit for bit, so a golden that the Rust port cannot match fails here first.
"""
from __future__ import annotations

import json
import math
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", message="Palette images with Transparency")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from transformers import AutoTokenizer  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize  # noqa: E402

from artemis_vlm import ArtemisVLMConfig, ArtemisVLMProcessor  # noqa: E402

PATCH, TEMPORAL, MERGE = 16, 2, 2
MIN_PIXELS, MAX_PIXELS = 32 * 32, 512 * 512
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PV_MAX_PIXELS = 2048      # store pixel_values only for images resized to at most this many pixels
RGB_MAX_PIXELS = 4096     # store the convert_to_rgb output only for inputs up to this many pixels
SIZE_BUDGET = 1_750_000   # bytes: new images + golden/preprocess together


# ---------------------------------------------------------------------------
# Test images
# ---------------------------------------------------------------------------

def gradient(w: int, h: int, c0, c1, c2) -> np.ndarray:
    """The smooth content generator of make_fixtures.py (uint8 HxWx3)."""
    from make_fixtures import _gradient  # tools/ is on sys.path when this script runs
    return _gradient(w, h, c0, c1, c2)


def png_bytes(w: int, h: int, color_type: int, bit_depth: int, rows: list[bytes], trns: bytes | None = None) -> bytes:
    """Minimal deterministic PNG writer (filter 0, zlib level 9) for what Pillow cannot write (16-bit RGB)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def shapes(im: Image.Image, seed: int) -> Image.Image:
    """A few hard edges (exercise the cubic's negative lobes and clip8) on smooth content."""
    d = ImageDraw.Draw(im)
    w, h = im.size
    rs = np.random.default_rng(seed)
    for _ in range(3):
        x0, y0 = int(rs.integers(0, max(w - 2, 1))), int(rs.integers(0, max(h - 2, 1)))
        x1, y1 = min(w - 1, x0 + 1 + int(rs.integers(0, max(w // 3, 1)))), min(h - 1, y0 + 1 + int(rs.integers(0, max(h // 3, 1))))
        col = tuple(int(c) for c in rs.integers(0, 256, 3))
        if im.mode == "RGB":
            d.rectangle([x0, y0, x1, y1], fill=col)
        else:
            d.rectangle([x0, y0, x1, y1], fill=col[0])
    return im


def make_images(images: Path) -> list[tuple[str, str]]:
    """Creates the new test images; returns [(file name, what it covers)]."""
    images.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, str]] = []

    def save_rgb(name: str, w: int, h: int, cols, seed: int, note: str) -> None:
        im = shapes(Image.fromarray(gradient(w, h, *cols)), seed)
        assert im.mode == "RGB"
        im.save(images / name, optimize=False)
        made.append((name, note))

    save_rgb("up_20x14.png", 20, 14, ((250, 20, 20), (20, 20, 250), (20, 250, 20)), 1,
             "RGB, upscale in both axes (min-pixels branch: 14x20 -> 32x64)")
    save_rgb("odd_97x61.png", 97, 61, ((0, 0, 0), (255, 255, 255), (255, 0, 0)), 2,
             "RGB, odd size; width down 97->96, height up 61->64 (horizontal pass first)")
    save_rgb("odd_61x97.png", 61, 97, ((255, 255, 0), (0, 0, 128), (0, 200, 200)), 3,
             "RGB, odd size; width up 61->64, height down 97->96 (Pillow 13 runs the vertical pass first)")
    save_rgb("down_100x110.png", 100, 110, ((30, 90, 200), (220, 180, 40), (90, 20, 90)), 4,
             "RGB, downscale both axes, 2*(w-w')=8 < h-h'=14 (vertical pass first)")
    save_rgb("down_170x110.png", 170, 110, ((200, 30, 60), (40, 220, 120), (250, 250, 250)), 5,
             "RGB, downscale both axes, 2*(w-w')=20 >= h-h'=14 (horizontal pass first)")
    save_rgb("tall_20x900.png", 20, 900, ((10, 60, 10), (240, 240, 200), (60, 10, 120)), 6,
             "RGB, extreme aspect ratio 45:1 (900x20 -> 896x32)")

    # Over the pixel budget: round(64/32)*round(4113/32)*1024 > 262144 -> max-pixels branch with
    # floor(64/beta/32) = 1: 64x4113 -> 32x4096.  Chosen because its resize output (131072 px) is
    # the smallest any over-budget input can have; a photo-shaped 700x900 -> 448x576 would add
    # 774 KB of golden bytes for the same code path.
    im = Image.fromarray(gradient(4113, 64, (0, 40, 80), (255, 200, 120), (120, 255, 40)))
    d = ImageDraw.Draw(im)
    for i in range(0, 4113, 257):
        d.rectangle([i, 8 + (i // 257) % 40, i + 60, 30 + (i // 257) % 30], fill=((i * 7) % 256, 255 - (i * 3) % 256, 90))
    im.save(images / "budget_64x4113.png", optimize=False)
    made.append(("budget_64x4113.png", "RGB, over the 262144-pixel budget (max-pixels branch): 64x4113 -> 32x4096"))

    # L (8-bit grayscale)
    g = gradient(45, 38, (0, 0, 0), (255, 255, 255), (40, 40, 40))[..., 0]
    im = shapes(Image.fromarray(g), 7)
    assert im.mode == "L"
    im.save(images / "gray_45x38.png", optimize=False)
    made.append(("gray_45x38.png", "L (grayscale): expanded to RGB by convert('RGB')"))

    # RGBA with an alpha sweep 0..255 over saturated colours (every alpha level appears)
    rgb = gradient(50, 30, (255, 0, 0), (0, 0, 255), (0, 255, 0))
    a = (np.arange(50 * 30).reshape(30, 50) * 255 // (50 * 30 - 1)).astype(np.uint8)
    a[:, :3] = 0
    a[:, -3:] = 255
    im = Image.fromarray(np.dstack([rgb, a]))
    assert im.mode == "RGBA"
    im.save(images / "rgba_50x30.png", optimize=False)
    made.append(("rgba_50x30.png", "RGBA, alpha sweep 0..255: alpha-composited onto white"))

    # LA (grayscale + alpha)
    g = gradient(40, 40, (0, 0, 0), (255, 255, 255), (128, 128, 128))[..., 0]
    a = np.tile(np.linspace(0, 255, 40).round().astype(np.uint8)[None, :], (40, 1)).T.copy()
    im = Image.fromarray(np.dstack([g, a]))
    assert im.mode == "LA"
    im.save(images / "la_40x40.png", optimize=False)
    made.append(("la_40x40.png", "LA: grayscale with alpha, composited onto white"))

    # P without transparency (16-colour palette)
    idx = (np.add.outer(np.arange(28) // 4, np.arange(36) // 5) % 16).astype(np.uint8)
    pal = [int(v) for i in range(16) for v in ((i * 53) % 256, (i * 97 + 30) % 256, (255 - i * 16) % 256)]
    im = Image.frombytes("P", (36, 28), idx.tobytes())
    im.putpalette(pal)
    im.save(images / "palette_36x28.png", optimize=False)
    made.append(("palette_36x28.png", "P (palette), no transparency: convert('RGB')"))

    # P with a tRNS chunk (per-index alpha, some fully transparent, some partial)
    idx = (np.add.outer(np.arange(30) // 3, np.arange(44) // 4) % 8).astype(np.uint8)
    pal = [int(v) for i in range(8) for v in ((i * 31 + 200) % 256, (i * 71) % 256, (i * 113 + 50) % 256)]
    im = Image.frombytes("P", (44, 30), idx.tobytes())
    im.putpalette(pal)
    im.save(images / "palette_trns_44x30.png", optimize=False, transparency=bytes([0, 255, 128, 64, 255, 200, 10, 255]))
    made.append(("palette_trns_44x30.png", "P with tRNS (per-index alpha): convert('RGBA') then composited onto white"))

    # RGB with a tRNS colour key (info['transparency'] is a colour)
    rgb = gradient(30, 30, (10, 20, 30), (200, 100, 0), (0, 100, 200))
    rgb[5:15, 5:15] = (10, 20, 30)
    (images / "rgb_trns_30x30.png").write_bytes(
        png_bytes(30, 30, 2, 8, [rgb[y].tobytes() for y in range(30)], trns=struct.pack(">HHH", 10, 20, 30)))
    made.append(("rgb_trns_30x30.png", "RGB with a tRNS colour key: the keyed colour becomes white"))

    # 16-bit RGB (Pillow opens it as RGB with the high byte of each sample)
    y, x = np.mgrid[0:34, 0:30]
    r16 = (x * 2200 + y * 37).astype(np.uint16)
    g16 = (65535 - y * 1900 - x * 11).astype(np.uint16)
    b16 = ((x * y * 61) % 65536).astype(np.uint16)
    rows = [b"".join(struct.pack(">HHH", int(r16[j, i]), int(g16[j, i]), int(b16[j, i])) for i in range(30)) for j in range(34)]
    (images / "rgb16_30x34.png").write_bytes(png_bytes(30, 34, 2, 16, rows))
    made.append(("rgb16_30x34.png", "16-bit RGB: Pillow keeps the high byte (v >> 8)"))

    # 16-bit grayscale (Pillow mode I;16; convert('RGB') clamps to 255, it does not scale)
    y, x = np.mgrid[0:31, 0:33]
    v16 = (x * 13 + y * 7 + (x * y) % 5).astype(np.uint16)   # 0..~640: half of it above 255
    v16[0, 0] = 65535
    rows = [b"".join(struct.pack(">H", int(v16[j, i])) for i in range(33)) for j in range(31)]
    (images / "gray16_33x31.png").write_bytes(png_bytes(33, 31, 0, 16, rows))
    made.append(("gray16_33x31.png", "16-bit grayscale (I;16): convert('RGB') clamps to 0..255"))

    # JPEG, 4:4:4, with EXIF orientation 6 (rotate 90 CW when displayed): the official processor,
    # given Image.open(...), does NOT apply it
    im = shapes(Image.fromarray(gradient(72, 40, (230, 120, 30), (20, 60, 200), (250, 250, 250))), 8)
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(images / "photo_72x40_exif6.jpg", quality=90, subsampling=0, exif=exif.tobytes(), optimize=False)
    made.append(("photo_72x40_exif6.jpg", "JPEG 4:4:4 q90 with EXIF orientation 6, which is ignored (40x72 h x w)"))

    # The other formats OpenAI's vision API accepts (WebP, GIF), which clients of artemis-serve
    # send, and BMP.  Pillow decodes WebP with libwebp, GIF and BMP with its own decoders.
    im = shapes(Image.fromarray(gradient(46, 34, (240, 10, 90), (10, 200, 250), (250, 230, 20))), 9)
    im.save(images / "lossless_46x34.webp", lossless=True, method=4)
    made.append(("lossless_46x34.webp", "WebP lossless RGB (VP8L)"))
    im = shapes(Image.fromarray(gradient(50, 38, (20, 120, 40), (250, 250, 250), (200, 40, 20))), 10)
    im.save(images / "lossy_50x38.webp", quality=80, method=4)
    made.append(("lossy_50x38.webp", "WebP lossy RGB q80 (VP8, 4:2:0 YUV upsampled by the decoder)"))
    rgb = gradient(36, 44, (0, 90, 255), (255, 160, 0), (40, 40, 40))
    a = np.tile(np.linspace(0, 255, 36).round().astype(np.uint8)[None, :], (44, 1))
    im = Image.fromarray(np.dstack([rgb, a]))
    assert im.mode == "RGBA"
    im.save(images / "alpha_lossy_36x44.webp", quality=85, method=4)
    made.append(("alpha_lossy_36x44.webp", "WebP lossy with an alpha plane (VP8X + ALPH): composited onto white"))

    # GIF: a palette with a transparent index, two frames (the first one is the image)
    idx = (np.add.outer(np.arange(30) // 3, np.arange(38) // 4) % 12).astype(np.uint8)
    pal = [int(v) for i in range(12) for v in ((i * 41 + 10) % 256, (i * 89 + 70) % 256, (i * 23 + 140) % 256)]
    f0 = Image.frombytes("P", (38, 30), idx.tobytes())
    f0.putpalette(pal)
    f1 = Image.frombytes("P", (38, 30), ((idx + 5) % 12).tobytes())
    f1.putpalette(pal)
    f0.save(images / "anim_trns_38x30.gif", save_all=True, append_images=[f1], transparency=3, duration=100, loop=0, optimize=False)
    made.append(("anim_trns_38x30.gif", "GIF, palette with a transparent index, 2 frames: the first, composited onto white"))
    g = shapes(Image.fromarray(gradient(33, 21, (0, 0, 0), (255, 255, 255), (90, 90, 90))[..., 0]), 11)
    g.save(images / "gray_33x21.gif", optimize=False)
    made.append(("gray_33x21.gif", "GIF with a grayscale palette (Pillow opens it as L)"))

    # GIF whose first frame covers only part of the logical screen, no transparency: Pillow leaves
    # palette index 0 outside the frame (the image crate leaves it transparent).  Pillow cannot
    # write such a file, so its LZW-coded 10x12 frame is spliced behind a hand-made header.
    pal = bytes([200, 30, 30, 30, 200, 30, 30, 30, 200, 240, 240, 0])
    fr = Image.frombytes("P", (10, 12), bytes([(i // 10 + i % 10) % 4 for i in range(120)]))
    fr.putpalette(list(pal))
    import io
    buf = io.BytesIO()
    fr.save(buf, "GIF", optimize=False)
    enc = buf.getvalue()
    frame = bytearray(enc[enc.index(b"\x2c"):-1])          # image descriptor .. last data block
    frame[1:5] = struct.pack("<HH", 7, 5)                    # left 7, top 5
    screen = b"GIF89a" + struct.pack("<HH", 30, 26) + bytes([0x81, 2, 0]) + pal
    (images / "offset_frame_30x26.gif").write_bytes(screen + bytes(frame) + b";")
    made.append(("offset_frame_30x26.gif", "GIF, first frame 10x12 at (7, 5) on a 30x26 screen, no transparency: palette index 0 around it"))

    # BMP: 24-bit and 8-bit palette
    im = shapes(Image.fromarray(gradient(41, 23, (255, 255, 0), (0, 0, 90), (0, 255, 120))), 12)
    im.save(images / "rgb_41x23.bmp")
    made.append(("rgb_41x23.bmp", "BMP 24-bit (bottom-up rows, 4-byte row padding at an odd width)"))
    im.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(images / "pal_41x23.bmp")
    made.append(("pal_41x23.bmp", "BMP 8-bit palette"))
    return made


EXISTING = [
    ("rect_84x56.png", "existing fixture: RGB, upscale both axes"),
    ("square_64.png", "existing fixture: RGB, no resize"),
    ("rgba_40x72.png", "existing fixture: RGBA, composited onto white"),
    ("wide_300x120.png", "existing fixture: RGB, width down / height up"),
]


# ---------------------------------------------------------------------------
# Independent re-implementation (what src/preprocess.rs ports)
# ---------------------------------------------------------------------------

PRECISION_BITS = 32 - 8 - 2


def _bicubic(x: float) -> float:
    a = -0.5
    if x < 0.0:
        x = -x
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _coeffs(in_size: int, out_size: int):
    """Pillow precompute_coeffs + normalize_coeffs_8bpc for the full box (0, in_size)."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    inv = 1.0 / filterscale
    idx = np.zeros((out_size, ksize), np.int64)
    kk = np.zeros((out_size, ksize), np.int64)
    bounds = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_bicubic((x + xmin - center + 0.5) * inv) for x in range(xmax)]
        ww = 0.0
        for v in w:
            ww += v
        if ww != 0.0:
            w = [v / ww for v in w]
        for x, v in enumerate(w):
            kk[xx, x] = int(-0.5 + v * (1 << PRECISION_BITS)) if v < 0 else int(0.5 + v * (1 << PRECISION_BITS))
            idx[xx, x] = x + xmin
        bounds.append((xmin, xmax))
    return idx, kk, bounds


def _pass(img: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One 8bpc pass along axis (1 = horizontal, 0 = vertical); int64 sums never overflow."""
    idx, kk, _ = _coeffs(img.shape[axis], out_size)
    src = img.astype(np.int64)
    if axis == 1:
        ss = (src[:, idx, :] * kk[None, :, :, None]).sum(2)
    else:
        ss = (src[idx, :, :] * kk[:, :, None, None]).sum(1)
    ss = ss + (1 << (PRECISION_BITS - 1))
    return np.clip(ss >> PRECISION_BITS, 0, 255).astype(np.uint8)


def ref_resize(img: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """Pillow 13.0.0 Image.resize((out_w, out_h), BICUBIC) on uint8 RGB (HxWx3).

    Pass order: Pillow 13 runs the vertical pass first when the height shrinks and
    2*(in_w - out_w) < in_h - out_h, else horizontal first (Pillow <= 12 always ran horizontal
    first).  Established empirically against the pinned Pillow wheel on ~1000 random sizes,
    ties and near-ties included; the row cropping of the first pass ('box') is a no-op for a
    full-image resize."""
    in_h, in_w = img.shape[:2]
    if (in_w, in_h) == (out_w, out_h):
        return img.copy()
    vertical_first = out_h < in_h and 2 * (in_w - out_w) < (in_h - out_h)
    out = img
    if vertical_first:
        if out_h != in_h:
            out = _pass(out, out_h, 0)
        if out_w != in_w:
            out = _pass(out, out_w, 1)
    else:
        if out_w != in_w:
            out = _pass(out, out_w, 1)
        if out_h != in_h:
            out = _pass(out, out_h, 0)
    return out


def ref_convert_to_rgb(im: Image.Image) -> np.ndarray:
    """transformers' convert_to_rgb with PIL's integer alpha_composite spelled out (white background)."""
    if "A" in im.getbands() or im.info.get("transparency") is not None:
        rgba = np.asarray(im.convert("RGBA")).astype(np.int64)
        s, sa = rgba[..., :3], rgba[..., 3:4]
        t = 128 * (s * sa + 255 * (255 - sa) + 128)      # == PIL's coef1/coef2 form when dst is opaque white
        out = (((t >> 8) + t) >> 8) >> 7
        return np.where(sa == 0, 255, out).astype(np.uint8)
    return np.asarray(im.convert("RGB"))


def ref_pixel_values(resized: np.ndarray) -> np.ndarray:
    x = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    h, w = x.shape[:2]
    gh, gw = h // PATCH, w // PATCH
    chw = x.transpose(2, 0, 1)
    p = chw.reshape(3, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH).transpose(1, 4, 2, 5, 0, 3, 6)
    p = np.broadcast_to(p[:, :, :, :, :, None], (*p.shape[:5], TEMPORAL, PATCH, PATCH))
    return p.reshape(gh * gw, 3 * TEMPORAL * PATCH * PATCH)


# ---------------------------------------------------------------------------
# Official processor, with its internal steps captured
# ---------------------------------------------------------------------------

class _Tap:
    """Records what the image processor's own convert_to_rgb / resize return."""

    def __init__(self, ip):
        self.rgb, self.resized = [], []
        orig_rgb, orig_resize = ip.convert_to_rgb, ip.resize

        def convert_to_rgb(*a, **k):
            out = orig_rgb(*a, **k)
            self.rgb.append(np.array(out))
            return out

        def resize(*a, **k):
            out = orig_resize(*a, **k)
            self.resized.append(np.array(out))
            return out

        ip.convert_to_rgb = convert_to_rgb   # instance attributes shadow the methods
        ip.resize = resize


def build_processor(fixtures: Path) -> ArtemisVLMProcessor:
    ckpt = fixtures / "tiny"
    tok = AutoTokenizer.from_pretrained(ckpt)
    config = ArtemisVLMConfig.from_pretrained(ckpt)
    vc = config.vision_config
    assert (vc.patch_size, vc.temporal_patch_size, vc.spatial_merge_size) == (PATCH, TEMPORAL, MERGE)
    processor = ArtemisVLMProcessor(tokenizer=tok, vision_config=vc, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    ip = processor.image_processor
    assert type(ip).__name__ == "Qwen2VLImageProcessorPil", type(ip)
    assert list(ip.image_mean) == CLIP_MEAN and list(ip.image_std) == CLIP_STD, (ip.image_mean, ip.image_std)
    assert (ip.size["shortest_edge"], ip.size["longest_edge"]) == (MIN_PIXELS, MAX_PIXELS), ip.size
    return processor


def run_case(processor: ArtemisVLMProcessor, path: Path) -> dict:
    with Image.open(path) as im:
        im.load()
        pil = im.copy()
        mode, info_transparency = im.mode, im.info.get("transparency")
        exif_orientation = im.getexif().get(0x0112)
    ip = processor.image_processor
    saved = ip.__dict__.copy()
    tap = _Tap(ip)
    try:
        batch = processor(images=[pil], return_tensors="np")
    finally:
        ip.__dict__.clear()
        ip.__dict__.update(saved)
    assert len(tap.rgb) == 1 and len(tap.resized) == 1
    rgb = tap.rgb[0]                                   # HWC uint8 (convert_to_rgb(return_numpy=True))
    resized = tap.resized[0]                           # CHW uint8 (PilBackend works channels-first)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    assert resized.dtype == np.uint8 and resized.shape[0] == 3, (resized.dtype, resized.shape)
    resized = np.ascontiguousarray(resized.transpose(1, 2, 0))
    pv = np.asarray(batch["pixel_values"], dtype=np.float32)
    grid = [int(v) for v in np.asarray(batch["image_grid_thw"])[0]]
    h, w = pil.height, pil.width
    h_bar, w_bar = smart_resize(h, w, factor=PATCH * MERGE, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    assert resized.shape[:2] == (h_bar, w_bar), (resized.shape, h_bar, w_bar)
    assert grid == [1, h_bar // PATCH, w_bar // PATCH], grid

    # The independent re-implementation must agree bit for bit.
    assert np.array_equal(ref_convert_to_rgb(pil), rgb), f"{path.name}: convert_to_rgb"
    assert np.array_equal(ref_resize(rgb, w_bar, h_bar), resized), f"{path.name}: resampler"
    assert np.array_equal(ref_pixel_values(resized), pv), f"{path.name}: normalize/patchify"
    # ... and so must plain Pillow, used the way transformers uses it.
    assert np.array_equal(np.asarray(Image.fromarray(rgb).resize((w_bar, h_bar), Image.Resampling.BICUBIC)), resized)

    n_tokens = grid[0] * grid[1] * grid[2] // (MERGE * MERGE)
    # what transformers' load_image would do with a *path* (EXIF transpose, then convert('RGB'),
    # which drops alpha instead of compositing): recorded for documentation only
    with Image.open(path) as im2:
        from PIL import ImageOps
        via_path = ImageOps.exif_transpose(im2).convert("RGB")
        via_path_hw = list(smart_resize(via_path.height, via_path.width, PATCH * MERGE, MIN_PIXELS, MAX_PIXELS))
    return dict(
        mode=mode,
        transparency=(list(info_transparency) if isinstance(info_transparency, (bytes, tuple)) else info_transparency),
        exif_orientation=exif_orientation,
        h=h, w=w, h_bar=h_bar, w_bar=w_bar, grid_thw=grid, n_tokens=n_tokens,
        via_path_hw_bar=via_path_hw,
        _rgb=rgb, _resized=resized, _pv=pv,
    )


# ---------------------------------------------------------------------------
# Pillow-only resize table
# ---------------------------------------------------------------------------

RESIZE_PAIRS = [
    # (in_w, in_h, out_w, out_h)
    (1, 1, 1, 1), (1, 1, 5, 3), (1, 1, 1, 7), (7, 1, 1, 1), (1, 9, 1, 1), (96, 1, 7, 1),
    (1, 80, 1, 9), (96, 80, 1, 1), (96, 80, 2, 3), (96, 2, 48, 1),
    (13, 11, 40, 33), (5, 4, 47, 39), (2, 2, 31, 17), (20, 14, 64, 32),
    (96, 80, 48, 40), (96, 80, 31, 27), (95, 79, 32, 32), (96, 80, 13, 40),
    (61, 80, 64, 48), (80, 61, 48, 64), (40, 72, 32, 64), (42, 28, 48, 32),
    (48, 31, 47, 32), (31, 39, 32, 38), (50, 80, 46, 60),
    (90, 70, 80, 40), (45, 35, 44, 34), (33, 31, 32, 32), (47, 49, 32, 64), (96, 80, 96, 23),
    (17, 80, 17, 3), (96, 9, 5, 9),
]


def resize_source() -> np.ndarray:
    """80x96 RGB: smooth gradient + checkerboard + stripes + saturated blocks (0/255 overshoot)."""
    img = gradient(96, 80, (255, 0, 40), (0, 255, 200), (30, 30, 255)).astype(np.int64)
    y, x = np.mgrid[0:80, 0:96]
    checker = ((x // 3 + y // 3) % 2 == 0)
    img[40:60, 0:48][checker[40:60, 0:48]] = 255
    img[40:60, 0:48][~checker[40:60, 0:48]] = 0
    img[:, 60:96:2] = img[:, 60:96:2] // 4
    img[0:20, 70:90] = (255, 255, 255)
    img[20:24, 0:96] = (0, 0, 0)
    img[62:80, 50:58, 1] = 255
    img[5:7, 5:30, 2] = 0
    return img.astype(np.uint8)


def make_resize_table(gold: Path) -> None:
    src = resize_source()
    tensors = {"source": src}
    rows = []
    for i, (iw, ih, ow, oh) in enumerate(RESIZE_PAIRS):
        crop = np.ascontiguousarray(src[:ih, :iw])
        out = np.asarray(Image.fromarray(crop).resize((ow, oh), Image.Resampling.BICUBIC))
        assert out.shape == (oh, ow, 3)
        assert np.array_equal(ref_resize(crop, ow, oh), out), ("resampler", iw, ih, ow, oh)
        vfirst = oh < ih and 2 * (iw - ow) < (ih - oh)
        name = f"case{i:02d}"
        tensors[name] = np.ascontiguousarray(out)
        rows.append(dict(name=name, in_w=iw, in_h=ih, out_w=ow, out_h=oh, vertical_first=vfirst))
    doc = {
        "what": "PIL.Image.fromarray(source[:in_h, :in_w]).resize((out_w, out_h), Image.Resampling.BICUBIC)",
        "pillow": Image.__version__ if hasattr(Image, "__version__") else None,
        "source": "tensor 'source' (u8 [80, 96, 3]); each case resizes its top-left in_w x in_h crop",
        "cases": rows,
    }
    (gold / "pillow_resize.json").write_text(json.dumps(doc, indent=1) + "\n")
    save_file(tensors, str(gold / "pillow_resize.safetensors"))


# ---------------------------------------------------------------------------

def main() -> None:
    import PIL
    import transformers
    import artemis_vlm

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    images = out / "images"
    gold = out / "golden" / "preprocess"
    gold.mkdir(parents=True, exist_ok=True)
    for p in gold.iterdir():
        p.unlink()

    made = make_images(images)
    processor = build_processor(out)

    cases, rgb_t, resized_t, pv_t = [], {}, {}, {}
    for name, note in EXISTING + made:
        r = run_case(processor, images / name)
        key = Path(name).stem
        has_rgb = r["h"] * r["w"] <= RGB_MAX_PIXELS
        has_pv = r["h_bar"] * r["w_bar"] <= PV_MAX_PIXELS
        if has_rgb:
            rgb_t[key] = np.ascontiguousarray(r["_rgb"])
        resized_t[key] = r["_resized"]
        if has_pv:
            pv_t[key] = np.ascontiguousarray(r["_pv"])
        c = {k: v for k, v in r.items() if not k.startswith("_")}
        cases.append(dict(name=key, image=f"images/{name}", note=note, **c,
                          has_rgb=has_rgb, has_pixel_values=has_pv))
        print(f"{name:24s} {r['mode']:5s} {r['h']}x{r['w']} -> {r['h_bar']}x{r['w_bar']} grid {r['grid_thw']} "
              f"tokens {r['n_tokens']}", flush=True)

    doc = {
        "what": "artemis_vlm.ArtemisVLMProcessor (Qwen2VLImageProcessor, PIL backend) on Image.open(image)",
        "versions": {"artemis-vlm": artemis_vlm.__version__, "transformers": transformers.__version__,
                     "pillow": PIL.__version__, "numpy": np.__version__},
        "params": {"patch": PATCH, "temporal": TEMPORAL, "merge": MERGE, "min_pixels": MIN_PIXELS,
                   "max_pixels": MAX_PIXELS, "mean": CLIP_MEAN, "std": CLIP_STD},
        "tensors": {
            "rgb.safetensors": "<name>: u8 [h, w, 3], convert_to_rgb output (resize input); cases with has_rgb",
            "resized.safetensors": "<name>: u8 [h_bar, w_bar, 3], the processor's resize output; every case",
            "pixel_values.safetensors": "<name>: f32 [gh*gw, 1536]; cases with has_pixel_values",
        },
        "cases": cases,
    }
    (gold / "cases.json").write_text(json.dumps(doc, indent=1) + "\n")
    save_file(rgb_t, str(gold / "rgb.safetensors"))
    save_file(resized_t, str(gold / "resized.safetensors"))
    save_file(pv_t, str(gold / "pixel_values.safetensors"))
    make_resize_table(gold)

    total = sum(p.stat().st_size for p in gold.iterdir()) + sum((images / n).stat().st_size for n, _ in made)
    print(f"golden/preprocess + new images: {total} bytes")
    for p in sorted(gold.iterdir()):
        print(f"  {p.name}: {p.stat().st_size}")
    for n, _ in made:
        print(f"  images/{n}: {(images / n).stat().st_size}")
    assert total <= SIZE_BUDGET, total


if __name__ == "__main__":
    main()
