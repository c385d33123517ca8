//! Image preprocessing exactly as the official Artemis processor does it (reference §4).
//!
//! The official path is `artemis_vlm.ArtemisVLMProcessor` (0.1.4), which builds transformers'
//! (5.23) `Qwen2VLImageProcessor` with patch 16, temporal patch 2, merge 2, `min_pixels` 1024,
//! `max_pixels` 262144 and the class-default OpenAI CLIP mean/std. Without torchvision that class
//! is the PIL backend, so every step below reproduces Pillow 13.0.0 / NumPy arithmetic:
//!
//! 1. [`convert_to_rgb`]: transformers' `convert_to_rgb` (transparency composited onto white with
//!    Pillow's integer `alpha_composite`).
//! 2. [`smart_resize`]: the target size, in f64 with Python's half-to-even `round`.
//! 3. [`resize_bicubic`]: Pillow's `Image.resize((w, h), BICUBIC)` on uint8 RGB, bit for bit.
//! 4. [`normalize_and_patchify`]: `f32(f64(u8) * (1/255))`, then `(x - mean) / std` in f32, laid
//!    out in merge-block order as `pixel_values` [gh·gw, 3·T·P·P] with `grid_thw` [1, gh, gw].
//!
//! [`preprocess`] chains 1–3 and counts the image tokens. Checked against goldens written by the
//! official processor (`tools/make_preprocess_goldens.py`, `tests/preprocess_matches_official.rs`).
//!
//! **EXIF orientation is not applied**, as in the official processor when it is handed a PIL
//! image (`Image.open(...)`, the way the Artemis examples, the fixtures and the Merlina trainer's
//! dataset rows feed it): `PilBackend.process_image` never calls `exif_transpose`. Only when a
//! *path or URL string* is passed does transformers' `load_image` run `ImageOps.exif_transpose`
//! and then `convert("RGB")` (which drops alpha instead of compositing it onto white); that
//! string route is not what this module reproduces. [`load_image`] decodes with the `image`
//! crate, which never applies the orientation tag either.

use std::path::Path;

use image::{DynamicImage, RgbImage};

pub use crate::config::{CLIP_MEAN, CLIP_STD};
/// `smart_resize` rejects images whose long side is more than this many times the short side.
pub const MAX_ASPECT_RATIO: f64 = 200.0;
/// Refuse resize targets above this many pixels (the official code has no cap; this one only
/// keeps absurd `min_pixels` values from turning into multi-gigabyte allocations).
pub const MAX_TARGET_PIXELS: u64 = 1 << 28;
/// Image files larger than this are refused before reading.
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;
/// Images with more pixels than this (about 33.5 Mpx, e.g. 6700x5000) are refused from the
/// header, before decoding: a small compressed file can declare a huge canvas.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 25;
/// Decoder allocation cap (16-bit RGBA at the pixel cap is 256 MiB).
pub const MAX_DECODE_ALLOC: u64 = 320 << 20;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessError {
    #[error("image is empty ({width}x{height} pixels, width x height)")]
    EmptyImage { width: u32, height: u32 },
    #[error("absolute aspect ratio must be at most 200, got {ratio} for a {height}x{width} (h x w) image")]
    AspectRatio { height: u32, width: u32, ratio: f64 },
    #[error("invalid preprocessing parameters: {0}")]
    InvalidParams(String),
    #[error("smart_resize maps {height}x{width} (h x w) to {h_bar}x{w_bar}, which cannot be used as an image size")]
    BadTargetSize {
        height: u32,
        width: u32,
        h_bar: u128,
        w_bar: u128,
    },
    #[error("{path}: cannot read image: {message}")]
    Load { path: String, message: String },
}

/// Processor settings. [`Params::artemis`] (also `Default`) is the official configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Lower pixel budget (`size.shortest_edge`, despite its name a pixel count).
    pub min_pixels: u64,
    /// Upper pixel budget (`size.longest_edge`).
    pub max_pixels: u64,
    /// ViT patch size (16 for Artemis, not Qwen2-VL's default 14).
    pub patch: usize,
    /// Spatial merge size of the vision merger.
    pub merge: usize,
    /// Temporal patch size (a still image is repeated this many times).
    pub temporal: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Params {
    /// Artemis: patch 16, merge 2, temporal 2, 32·32 … 512·512 pixels, CLIP mean/std.
    pub const fn artemis() -> Params {
        Params {
            min_pixels: crate::config::ARTEMIS_MIN_PIXELS as u64,
            max_pixels: crate::config::ARTEMIS_MAX_PIXELS as u64,
            patch: 16,
            merge: 2,
            temporal: 2,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// The resize factor `patch * merge` (32 for Artemis).
    pub fn factor(&self) -> Result<u32, PreprocessError> {
        if self.patch == 0 || self.merge == 0 || self.temporal == 0 {
            return Err(PreprocessError::InvalidParams(format!(
                "patch ({}), merge ({}) and temporal ({}) must all be positive",
                self.patch, self.merge, self.temporal
            )));
        }
        match self.patch.checked_mul(self.merge) {
            Some(f) if f <= u32::MAX as usize => Ok(f as u32),
            _ => Err(PreprocessError::InvalidParams(format!(
                "patch {} x merge {} is too large",
                self.patch, self.merge
            ))),
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params::artemis()
    }
}

/// An image resized the official way, ready for normalization or for handing to mtmd.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// RGB after `convert_to_rgb` and the bicubic resize, `w_bar` x `h_bar` pixels.
    pub resized: RgbImage,
    pub h_bar: u32,
    pub w_bar: u32,
    /// `[1, h_bar / patch, w_bar / patch]`.
    pub grid_thw: [usize; 3],
    /// Image tokens the decoder sees: `(h_bar / (patch·merge)) · (w_bar / (patch·merge))`.
    pub n_tokens: usize,
}

impl Prepared {
    /// `pixel_values` [gh·gw, 3·T·P·P] and `grid_thw` of the resized image.
    pub fn pixel_values(&self, p: &Params) -> (Vec<f32>, [usize; 3]) {
        normalize_and_patchify(&self.resized, p.mean, p.std, p.patch, p.temporal, p.merge)
    }
}

/// Decodes a PNG, JPEG, WebP, GIF (first frame) or BMP file (format sniffed from the content,
/// like `PIL.Image.open`).
/// No EXIF orientation is applied (see the module docs).
pub fn load_image(path: &Path) -> Result<DynamicImage, PreprocessError> {
    let label = path.display().to_string();
    let bytes = crate::input::read_regular(path, MAX_IMAGE_FILE_BYTES).map_err(|e| {
        PreprocessError::Load {
            path: label.clone(),
            message: e.to_string(),
        }
    })?;
    load_image_bytes(&bytes, &label)
}

/// Decodes image bytes (any format [`load_image`] reads) under the same limits as [`load_image`]: the pixel budget
/// is enforced from the header, before any pixel is decoded. `label` names the source in errors.
pub fn load_image_bytes(bytes: &[u8], label: &str) -> Result<DynamicImage, PreprocessError> {
    let err = |message: String| PreprocessError::Load {
        path: label.to_string(),
        message,
    };
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(err(format!(
            "{} bytes, more than the {MAX_IMAGE_FILE_BYTES} allowed",
            bytes.len()
        )));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        err("unrecognized image format (supported: PNG, JPEG, WebP, GIF, BMP)".to_string())
    })?;
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| err(format!("{format:?} header: {e}")))?;
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(err(format!(
            "{w}x{h} pixels, more than the {MAX_IMAGE_PIXELS} this tool decodes"
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    let mut r = reader();
    r.limits(limits);
    let img = r
        .decode()
        .map_err(|e| err(format!("{format:?} decoding failed: {e}")))?;
    Ok(match format {
        image::ImageFormat::Gif => pillow_gif_first_frame(bytes, img),
        _ => img,
    })
}

/// The `image` crate leaves the part of a GIF's logical screen that the first frame does not
/// cover transparent. Pillow (`GifImagePlugin.load_prepare`) fills it with the frame's
/// transparent index when it has one (so it is transparent there too, and white after
/// `convert_to_rgb`), and otherwise leaves the new image's zeros: **palette index 0**, opaque.
/// This paints that colour (the frame's local palette, else the global one, else black).
fn pillow_gif_first_frame(bytes: &[u8], img: DynamicImage) -> DynamicImage {
    let Ok(mut dec) = gif::DecodeOptions::new().read_info(std::io::Cursor::new(bytes)) else {
        return img;
    };
    let global = dec.global_palette().map(<[u8]>::to_vec);
    let Ok(Some(f)) = dec.next_frame_info() else {
        return img;
    };
    let (w, h) = (img.width(), img.height());
    let (left, top) = (u32::from(f.left), u32::from(f.top));
    let (right, bottom) = (left + u32::from(f.width), top + u32::from(f.height));
    if f.transparent.is_some() || (left == 0 && top == 0 && right >= w && bottom >= h) {
        return img;
    }
    let palette = f.palette.clone().or(global).unwrap_or_default();
    let fill = match palette.get(0..3) {
        Some(c) => [c[0], c[1], c[2], 255],
        None => [0, 0, 0, 255],
    };
    let mut rgba = img.into_rgba8();
    for (x, y, p) in rgba.enumerate_pixels_mut() {
        if x < left || x >= right || y < top || y >= bottom {
            p.0 = fill;
        }
    }
    DynamicImage::ImageRgba8(rgba)
}

/// The full official pipeline up to the resized uint8 image: RGB conversion, `smart_resize`
/// with `factor = patch·merge`, and Pillow's bicubic resize. Errors (never panics) on empty
/// images, aspect ratios over 200, unusable parameters or targets.
pub fn preprocess(img: &DynamicImage, p: &Params) -> Result<Prepared, PreprocessError> {
    let (width, height) = (img.width(), img.height());
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }
    let factor = p.factor()?;
    let (h_bar, w_bar) = smart_resize(height, width, factor, p.min_pixels, p.max_pixels)?;
    if h_bar == 0 || w_bar == 0 || (h_bar as u64) * (w_bar as u64) > MAX_TARGET_PIXELS {
        return Err(PreprocessError::BadTargetSize {
            height,
            width,
            h_bar: h_bar as u128,
            w_bar: w_bar as u128,
        });
    }
    let rgb = convert_to_rgb(img);
    let resized = resize_bicubic(&rgb, w_bar, h_bar);
    let f = factor as usize;
    let grid_thw = [1, h_bar as usize / p.patch, w_bar as usize / p.patch];
    let n_tokens = (h_bar as usize / f) * (w_bar as usize / f);
    Ok(Prepared {
        resized,
        h_bar,
        w_bar,
        grid_thw,
        n_tokens,
    })
}

// ---------------------------------------------------------------------------------------------
// 1. RGB conversion
// ---------------------------------------------------------------------------------------------

/// transformers' `convert_to_rgb` on the image Pillow would have opened.
///
/// transformers: if the PIL image has an alpha band or a `transparency` entry, it is converted to
/// RGBA and alpha-composited onto an opaque white RGBA image (`Image.alpha_composite`, Pillow's
/// 7-bit-precision integer formula, reproduced exactly), then converted to RGB; otherwise it is
/// `convert("RGB")`. The `image` crate's PNG decoder expands palettes and tRNS chunks (to RGB or
/// RGBA, gray + tRNS to gray-alpha), which gives the same RGBA Pillow's `convert("RGBA")` builds.
/// Per decoded variant:
///
/// - RGB8: as is. Gray8: replicated (`L` → RGB). Gray-alpha8 / RGBA8: composited onto white.
/// - RGB16 / RGBA16 / gray-alpha16: Pillow opens 16-bit PNG colour and gray-alpha images as 8-bit
///   modes holding the **high byte** of each sample; so does this.
/// - Gray16: Pillow opens it as `I;16`, whose `convert("RGB")` **clamps** to 255 (it does not
///   scale); so does this.
/// - f32 images (not produced by the PNG/JPEG decoders): the `image` crate's own conversion.
///
/// Known gaps (all exotic): a tRNS colour key on a 16-bit PNG or on a 1/2/4-bit grayscale PNG is
/// honoured by the `image` crate but effectively ignored by Pillow (it compares the key with the
/// converted 8-bit values); CMYK JPEGs and JPEG decoding itself (zune-jpeg here, libjpeg-turbo in
/// Pillow: IDCT/colour rounding differs by a level or two on some pixels).
pub fn convert_to_rgb(img: &DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let n = w as usize * h as usize;
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        DynamicImage::ImageLuma8(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| [raw[i]; 3])
        }
        DynamicImage::ImageLumaA8(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| {
                let (l, a) = (raw[2 * i], raw[2 * i + 1]);
                let v = over_white(l, a);
                [v, v, v]
            })
        }
        DynamicImage::ImageRgba8(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| {
                let p = &raw[4 * i..4 * i + 4];
                [
                    over_white(p[0], p[3]),
                    over_white(p[1], p[3]),
                    over_white(p[2], p[3]),
                ]
            })
        }
        DynamicImage::ImageLuma16(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| [raw[i].min(255) as u8; 3])
        }
        DynamicImage::ImageLumaA16(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| {
                let v = over_white(hi(raw[2 * i]), hi(raw[2 * i + 1]));
                [v, v, v]
            })
        }
        DynamicImage::ImageRgb16(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| {
                [hi(raw[3 * i]), hi(raw[3 * i + 1]), hi(raw[3 * i + 2])]
            })
        }
        DynamicImage::ImageRgba16(b) => {
            let raw = b.as_raw();
            rgb_from_fn(w, h, n, |i| {
                let a = hi(raw[4 * i + 3]);
                [
                    over_white(hi(raw[4 * i]), a),
                    over_white(hi(raw[4 * i + 1]), a),
                    over_white(hi(raw[4 * i + 2]), a),
                ]
            })
        }
        DynamicImage::ImageRgb32F(_) => img.to_rgb8(),
        // ImageRgba32F and any variant a future `image` release adds: via 8-bit RGBA.
        _ => {
            let rgba = img.to_rgba8();
            let raw = rgba.as_raw();
            rgb_from_fn(w, h, n, |i| {
                let p = &raw[4 * i..4 * i + 4];
                [
                    over_white(p[0], p[3]),
                    over_white(p[1], p[3]),
                    over_white(p[2], p[3]),
                ]
            })
        }
    }
}

/// High byte of a 16-bit sample (Pillow's `;16B` unpackers for 8-bit modes).
#[inline]
fn hi(v: u16) -> u8 {
    (v >> 8) as u8
}

fn rgb_from_fn(w: u32, h: u32, n: usize, mut px: impl FnMut(usize) -> [u8; 3]) -> RgbImage {
    let mut data = Vec::with_capacity(n * 3);
    for i in 0..n {
        data.extend_from_slice(&px(i));
    }
    RgbImage::from_raw(w, h, data).unwrap_or_else(|| RgbImage::new(w, h))
}

/// One channel of Pillow's `ImagingAlphaComposite(dst = opaque white, src = (c, a))`
/// (libImaging/AlphaComposite.c, PRECISION_BITS 7, `SHIFTFORDIV255` rounding).
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    if a == 0 {
        return 255;
    }
    const PREC: u32 = 7;
    let (src_a, dst_a, dst_c) = (a as u32, 255u32, 255u32);
    let blend = dst_a * (255 - src_a);
    let outa255 = src_a * 255 + blend;
    let coef1 = src_a * 255 * 255 * (1 << PREC) / outa255;
    let coef2 = 255 * (1 << PREC) - coef1;
    let tmp = c as u32 * coef1 + dst_c * coef2 + (0x80 << PREC);
    let div255 = ((tmp >> 8) + tmp) >> 8;
    (div255 >> PREC) as u8
}

// ---------------------------------------------------------------------------------------------
// 2. smart_resize
// ---------------------------------------------------------------------------------------------

/// transformers' `smart_resize(height, width, factor, min_pixels, max_pixels)` → `(h_bar, w_bar)`.
///
/// Same f64 operations in the same order as the Python (`round` is half-to-even; `h / beta /
/// factor` and `h * beta / factor`), with the integer comparisons done exactly. Python's
/// int/int true divisions are correctly rounded; so are these as long as `h·w < 2^53`.
/// Errors instead of Python's exceptions: empty sides or `factor == 0` (ZeroDivisionError),
/// aspect ratio over 200 (ValueError), `max_pixels == 0` when the max branch is reached, and
/// results that do not fit in `u32`. Like the Python, it may return 0 when `min_pixels` is 0.
pub fn smart_resize(
    h: u32,
    w: u32,
    factor: u32,
    min_pixels: u64,
    max_pixels: u64,
) -> Result<(u32, u32), PreprocessError> {
    if h == 0 || w == 0 {
        return Err(PreprocessError::EmptyImage {
            width: w,
            height: h,
        });
    }
    if factor == 0 {
        return Err(PreprocessError::InvalidParams(
            "factor must be positive".to_string(),
        ));
    }
    let (hf, wf, ff) = (h as f64, w as f64, factor as f64);
    let ratio = hf.max(wf) / hf.min(wf);
    if ratio > MAX_ASPECT_RATIO {
        return Err(PreprocessError::AspectRatio {
            height: h,
            width: w,
            ratio,
        });
    }
    let f = factor as u128;
    let mut h_bar = ((hf / ff).round_ties_even() as u128) * f;
    let mut w_bar = ((wf / ff).round_ties_even() as u128) * f;
    let area = (h as u64 * w as u64) as f64;
    if h_bar * w_bar > max_pixels as u128 {
        if max_pixels == 0 {
            return Err(PreprocessError::InvalidParams(
                "max_pixels must be positive".to_string(),
            ));
        }
        let beta = (area / max_pixels as f64).sqrt();
        h_bar = f.max(((hf / beta / ff).floor() as u128) * f);
        w_bar = f.max(((wf / beta / ff).floor() as u128) * f);
    } else if h_bar * w_bar < min_pixels as u128 {
        let beta = (min_pixels as f64 / area).sqrt();
        h_bar = ((hf * beta / ff).ceil() as u128) * f;
        w_bar = ((wf * beta / ff).ceil() as u128) * f;
    }
    match (u32::try_from(h_bar), u32::try_from(w_bar)) {
        (Ok(hb), Ok(wb)) => Ok((hb, wb)),
        _ => Err(PreprocessError::BadTargetSize {
            height: h,
            width: w,
            h_bar,
            w_bar,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Pillow's bicubic resampler (libImaging/Resample.c, 8 bits per channel)
// ---------------------------------------------------------------------------------------------

/// Pillow `PRECISION_BITS`: 32 - 8 - 2 (22-bit fixed-point coefficients).
const PRECISION_BITS: u32 = 32 - 8 - 2;
const BICUBIC_SUPPORT: f64 = 2.0;

/// Bit-exact Pillow 13.0.0 `Image.resize((out_w, out_h), Image.BICUBIC)` of an RGB image.
///
/// Separable, as `ImagingResampleInner`: per axis `precompute_coeffs` (cubic a = −0.5, support
/// 2 scaled by max(in/out, 1), output pixel centred at (i + 0.5)·in/out, weights normalized to
/// sum 1), `normalize_coeffs_8bpc` (22-bit fixed point rounded half away from zero), passes that
/// start each sum at half a unit and `clip8` the shifted result into a uint8 intermediate. The
/// horizontal pass only computes the source rows the vertical pass reads (Pillow's box crop).
///
/// Pass order (Pillow 13): the vertical pass runs first when the height shrinks and
/// `2·(in_w − out_w) < in_h − out_h`, else the horizontal pass runs first (Pillow ≤ 12 always ran
/// it first; the order changes rounding only). This rule was established against the pinned
/// Pillow 13.0.0 wheel on ~1000 random sizes, exact ties and near-ties included.
///
/// Same size is the identity. Degenerate requests (a zero input or output side), which Pillow
/// rejects, return a black image of the requested size instead of panicking.
pub fn resize_bicubic(img: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = img.dimensions();
    if in_w == out_w && in_h == out_h {
        return img.clone();
    }
    if in_w == 0 || in_h == 0 || out_w == 0 || out_h == 0 {
        return RgbImage::new(out_w, out_h);
    }
    let (iw, ih, ow, oh) = (in_w as usize, in_h as usize, out_w as usize, out_h as usize);
    let need_horizontal = ow != iw;
    let need_vertical = oh != ih;
    let vertical_first = oh < ih && 2 * (iw as i64 - ow as i64) < ih as i64 - oh as i64;
    let src: &[u8] = img.as_raw();

    let data: Vec<u8> = if vertical_first {
        // need_vertical holds here (oh < ih)
        let vert = precompute_coeffs(ih, 0.0, in_h as f32, oh);
        let tmp = resample_vertical(src, iw, &vert);
        if need_horizontal {
            let horiz = precompute_coeffs(iw, 0.0, in_w as f32, ow);
            resample_horizontal(&tmp, iw, 0, oh, &horiz)
        } else {
            tmp
        }
    } else {
        let mut vert = precompute_coeffs(ih, 0.0, in_h as f32, oh);
        let horizontal: Option<Vec<u8>> = if need_horizontal {
            let (first, last) = if need_vertical {
                // First and last source rows the vertical pass uses; shift its bounds to them.
                let first = vert.bounds[0].0;
                let (lmin, lcount) = vert.bounds[oh - 1];
                for b in vert.bounds.iter_mut() {
                    b.0 -= first;
                }
                (first, lmin + lcount)
            } else {
                (0, ih)
            };
            let horiz = precompute_coeffs(iw, 0.0, in_w as f32, ow);
            Some(resample_horizontal(
                src,
                iw,
                first,
                last.saturating_sub(first),
                &horiz,
            ))
        } else {
            None
        };
        let (cur, cur_w): (&[u8], usize) = match &horizontal {
            Some(v) => (v.as_slice(), ow),
            None => (src, iw),
        };
        if need_vertical {
            resample_vertical(cur, cur_w, &vert)
        } else {
            cur.to_vec()
        }
    };
    RgbImage::from_raw(out_w, out_h, data).unwrap_or_else(|| RgbImage::new(out_w, out_h))
}

/// Coefficients of one axis: per output pixel `(first source index, tap count)` and `ksize`
/// fixed-point weights (only the first `count` are used).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    k: Vec<i32>,
}

/// Pillow's `bicubic_filter` (a = −0.5), same operation order.
#[inline]
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    }
    if x < 2.0 {
        return (((x - 5.0) * x + 8.0) * x - 4.0) * A;
    }
    0.0
}

/// Pillow's `precompute_coeffs` for the box `[in0, in1)` followed by `normalize_coeffs_8bpc`.
fn precompute_coeffs(in_size: usize, in0: f32, in1: f32, out_size: usize) -> Coeffs {
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = BICUBIC_SUPPORT * filterscale;
    let ksize = (support.ceil() as usize) * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;
    let mut kk = vec![0f64; out_size * ksize];
    let mut bounds = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        let mut ww = 0.0f64;
        // C `(int)` casts: truncation toward zero
        let mut xmin = (center - support + 0.5) as i64;
        if xmin < 0 {
            xmin = 0;
        }
        let mut xmax = (center + support + 0.5) as i64;
        if xmax > in_size as i64 {
            xmax = in_size as i64;
        }
        let count = (xmax - xmin).clamp(0, ksize as i64) as usize;
        let k = &mut kk[xx * ksize..(xx + 1) * ksize];
        for (x, kx) in k.iter_mut().enumerate().take(count) {
            let w = bicubic_filter(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
            *kx = w;
            ww += w;
        }
        if ww != 0.0 {
            for kx in k.iter_mut().take(count) {
                *kx /= ww;
            }
        }
        bounds.push((xmin as usize, count));
    }
    let one = (1u32 << PRECISION_BITS) as f64;
    let k = kk
        .iter()
        .map(|&v| {
            if v < 0.0 {
                (-0.5 + v * one) as i32
            } else {
                (0.5 + v * one) as i32
            }
        })
        .collect();
    Coeffs { ksize, bounds, k }
}

/// Pillow's `clip8`: arithmetic shift out of fixed point, clamp to 0..=255.
#[inline]
fn clip8(ss: i64) -> u8 {
    let v = ss >> PRECISION_BITS;
    if v < 0 {
        0
    } else if v > 255 {
        255
    } else {
        v as u8
    }
}

const HALF: i64 = 1 << (PRECISION_BITS - 1);

/// `ImagingResampleHorizontal_8bpc` over `rows` rows of `src` (width `src_w`) starting at
/// `row_offset`; output width is the number of coefficient sets.
fn resample_horizontal(
    src: &[u8],
    src_w: usize,
    row_offset: usize,
    rows: usize,
    c: &Coeffs,
) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; out_w * rows * 3];
    let in_row = src_w * 3;
    for yy in 0..rows {
        let start = (yy + row_offset) * in_row;
        let line = &src[start..start + in_row];
        let out_line = &mut out[yy * out_w * 3..(yy + 1) * out_w * 3];
        for (xx, &(xmin, count)) in c.bounds.iter().enumerate() {
            let k = &c.k[xx * c.ksize..xx * c.ksize + count];
            let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
            for (x, &kv) in k.iter().enumerate() {
                let p = (xmin + x) * 3;
                let kv = kv as i64;
                s0 += line[p] as i64 * kv;
                s1 += line[p + 1] as i64 * kv;
                s2 += line[p + 2] as i64 * kv;
            }
            out_line[xx * 3] = clip8(s0);
            out_line[xx * 3 + 1] = clip8(s1);
            out_line[xx * 3 + 2] = clip8(s2);
        }
    }
    out
}

/// `ImagingResampleVertical_8bpc` of `src` (width `width`); output height is the number of
/// coefficient sets. Integer sums, so accumulating row by row equals Pillow's order.
fn resample_vertical(src: &[u8], width: usize, c: &Coeffs) -> Vec<u8> {
    let out_h = c.bounds.len();
    let row = width * 3;
    let mut out = vec![0u8; out_h * row];
    let mut acc = vec![0i64; row];
    for (yy, &(ymin, count)) in c.bounds.iter().enumerate() {
        let k = &c.k[yy * c.ksize..yy * c.ksize + count];
        acc.iter_mut().for_each(|a| *a = HALF);
        for (y, &kv) in k.iter().enumerate() {
            let start = (ymin + y) * row;
            let line = &src[start..start + row];
            let kv = kv as i64;
            for (a, &v) in acc.iter_mut().zip(line.iter()) {
                *a += v as i64 * kv;
            }
        }
        for (o, &a) in out[yy * row..(yy + 1) * row].iter_mut().zip(acc.iter()) {
            *o = clip8(a);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 4. Rescale, normalize, patchify
// ---------------------------------------------------------------------------------------------

/// `pixel_values` and `grid_thw` as `Qwen2VLImageProcessorPil` computes them from the resized
/// uint8 image: `x = f32(f64(u8) · (1/255))` (`rescale` upcasts to f64, then casts to f32),
/// then `(x − mean) / std` in f32 (`normalize`; bit-exact with the goldens, unlike the fused
/// `(u8 − 255·mean) / (255·std)` form), then `patchify`:
///
/// - row `((by·(gw/merge) + bx)·merge + iy)·merge + ix` holds the patch at grid row
///   `by·merge + iy`, column `bx·merge + ix` (block row, block column, row and column in block);
/// - column `((c·temporal + t)·patch + py)·patch + px` holds channel c of pixel
///   `(patch·y + py, patch·x + px)`; the `temporal` copies t are identical (a still image).
///
/// Returns `(pixel_values` of `gh·gw · 3·temporal·patch²` values, `[1, gh, gw])`. The official
/// code requires sides divisible by `patch·merge` (smart_resize guarantees it); here a
/// remainder is ignored (bottom/right pixels dropped) and zero parameters give an empty result.
pub fn normalize_and_patchify(
    img: &RgbImage,
    mean: [f32; 3],
    std: [f32; 3],
    patch: usize,
    temporal: usize,
    merge: usize,
) -> (Vec<f32>, [usize; 3]) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let block = match patch.checked_mul(merge) {
        Some(b) if b > 0 => b,
        _ => return (Vec::new(), [1, 0, 0]),
    };
    let (bh, bw) = (h / block, w / block);
    let (gh, gw) = (bh * merge, bw * merge);
    let row_len = match patch
        .checked_mul(patch)
        .and_then(|p2| p2.checked_mul(temporal))
        .and_then(|v| v.checked_mul(3))
    {
        Some(r) => r,
        None => return (Vec::new(), [1, gh, gw]),
    };
    let total = match (gh * gw).checked_mul(row_len) {
        Some(t) => t,
        None => return (Vec::new(), [1, gh, gw]),
    };

    // Every u8 value maps to one f32 per channel: a lookup table holds the exact results.
    let inv255 = 1.0f64 / 255.0;
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, out) in table.iter_mut().enumerate() {
            let x = (v as f64 * inv255) as f32;
            *out = (x - mean[c]) / std[c];
        }
    }

    let raw = img.as_raw();
    let mut out = vec![0f32; total];
    for by in 0..bh {
        for bx in 0..bw {
            for iy in 0..merge {
                for ix in 0..merge {
                    let r = ((by * bw + bx) * merge + iy) * merge + ix;
                    let dst = &mut out[r * row_len..(r + 1) * row_len];
                    let y0 = (by * merge + iy) * patch;
                    let x0 = (bx * merge + ix) * patch;
                    for c in 0..3 {
                        for t in 0..temporal {
                            for py in 0..patch {
                                let src_row = ((y0 + py) * w + x0) * 3;
                                let col0 = ((c * temporal + t) * patch + py) * patch;
                                for px in 0..patch {
                                    dst[col0 + px] = lut[c][raw[src_row + px * 3 + c] as usize];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (out, [1, gh, gw])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keeps_opaque_and_whitens_transparent() {
        for c in 0..=255u8 {
            assert_eq!(over_white(c, 255), c);
            assert_eq!(over_white(c, 0), 255);
        }
        // PIL: alpha_composite(white, (0, 0, 0, 128)) -> 127
        assert_eq!(over_white(0, 128), 127);
    }

    #[test]
    fn half_to_even_in_smart_resize() {
        assert_eq!(smart_resize(80, 80, 32, 1024, 262144).unwrap(), (64, 64));
        assert_eq!(
            smart_resize(336, 336, 32, 1024, 262144).unwrap(),
            (320, 320)
        );
        assert_eq!(smart_resize(16, 16, 32, 1024, 262144).unwrap(), (32, 32));
    }
}

/// transformers' CLIPImageProcessor (PIL backend) up to the uint8 crop: RGB on white, the short
/// side resized to `shortest_edge` and the long side to `int(shortest_edge * long / short)`
/// (floored, `get_resize_output_image_size`), Pillow bicubic, then a center crop at
/// `((H - h) // 2, (W - w) // 2)` (llava-format.md §4.2). `crop` is [height, width].
pub fn resize_shortest_and_crop(
    img: &DynamicImage,
    shortest_edge: u32,
    crop: [u32; 2],
) -> Result<RgbImage, PreprocessError> {
    let (width, height) = (img.width(), img.height());
    if width == 0 || height == 0 {
        return Err(PreprocessError::EmptyImage { width, height });
    }
    if shortest_edge == 0 || crop[0] == 0 || crop[1] == 0 {
        return Err(PreprocessError::InvalidParams(format!(
            "shortest edge {shortest_edge} and crop {crop:?} must be positive"
        )));
    }
    let (short, long) = (width.min(height), width.max(height));
    let new_long = (shortest_edge as f64 * long as f64 / short as f64) as u64;
    let (w, h) = if width <= height {
        (shortest_edge as u64, new_long)
    } else {
        (new_long, shortest_edge as u64)
    };
    if w * h > MAX_TARGET_PIXELS {
        return Err(PreprocessError::InvalidParams(format!(
            "resize target {w}x{h} is too large"
        )));
    }
    let rgb = convert_to_rgb(img);
    let resized = if (w as u32, h as u32) == (width, height) {
        rgb
    } else {
        resize_bicubic(&rgb, w as u32, h as u32)
    };
    let (ch, cw) = (crop[0], crop[1]);
    if ch > resized.height() || cw > resized.width() {
        return Err(PreprocessError::InvalidParams(format!(
            "crop {ch}x{cw} is larger than the resized {}x{} image",
            resized.height(),
            resized.width()
        )));
    }
    let top = (resized.height() - ch) / 2;
    let left = (resized.width() - cw) / 2;
    Ok(image::imageops::crop_imm(&resized, left, top, cw, ch).to_image())
}
