//! Encoding f32 rows into the ggml storage types the converter writes, and decoding them back
//! (for `--verify` and tests). Bit-level behaviour follows ggml's reference code.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

use crate::gguf::GgmlType;

/// ggml.h QK8_0: elements per Q8_0 block; a block is an f16 scale and 32 int8 values.
pub const QK8_0: usize = 32;
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;

/// Appends `row` encoded as `t` to `out`. `t` must be F32, F16, BF16 or Q8_0, and for Q8_0 the
/// row length a multiple of 32 (the planner guarantees both).
pub fn encode_row(t: GgmlType, row: &[f32], out: &mut Vec<u8>) {
    match t {
        GgmlType::F32 => out.extend(row.iter().flat_map(|x| x.to_le_bytes())),
        // Round to nearest even, as numpy's astype(float16) in llama.cpp's converter (the slice
        // conversion uses F16C where the CPU has it).
        GgmlType::F16 => {
            let mut h = vec![f16::ZERO; row.len()];
            h.convert_from_f32_slice(row);
            out.extend(h.iter().flat_map(|x| x.to_le_bytes()));
        }
        // Round to nearest even with NaN kept quiet, as gguf-py's bf16 conversion.
        GgmlType::BF16 => out.extend(row.iter().flat_map(|&x| bf16::from_f32(x).to_le_bytes())),
        GgmlType::Q8_0 => {
            for block in row.chunks_exact(QK8_0) {
                // ggml-quants.c quantize_row_q8_0_ref
                let amax = block.iter().fold(0f32, |m, &x| m.max(x.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(block.iter().map(|&x| round_half_away(x * id) as u8));
            }
        }
        GgmlType::Other(id) => unreachable!("encode_row called with ggml type {id}"),
    }
}

/// C's `roundf` (half away from zero) for |x| ≤ 127.5, as an i8, without a libm call: the
/// fraction x − trunc(x) is exact in f32 for such x.
#[inline]
fn round_half_away(x: f32) -> i8 {
    let t = x as i32; // truncates toward zero
    let frac = x - t as f32;
    (t + if frac >= 0.5 {
        1
    } else if frac <= -0.5 {
        -1
    } else {
        0
    }) as i8
}

/// Decodes `bytes` of type `t` into f32. None for types this module does not know.
pub fn decode(t: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match t {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        GgmlType::Q8_0 => bytes
            .chunks_exact(Q8_0_BLOCK_BYTES)
            .flat_map(|b| {
                let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                b[2..].iter().map(move |&q| q as i8 as f32 * d)
            })
            .collect(),
        GgmlType::Other(_) => return None,
    })
}

/// `x` as stored by a 32/16-bit type and read back: the exact result a correct file must hold.
pub fn round_trip(t: GgmlType, x: f32) -> Option<f32> {
    match t {
        GgmlType::F32 => Some(x),
        GgmlType::F16 => Some(f16::from_f32(x).to_f32()),
        GgmlType::BF16 => Some(bf16::from_f32(x).to_f32()),
        _ => None,
    }
}

/// Largest error Q8_0 may introduce in a block whose largest magnitude is `amax`: half a step of
/// the scale d = amax/127, plus 127 times the f16 rounding of d (subnormal for tiny blocks).
pub fn q8_0_error_bound(amax: f32) -> f32 {
    let d = amax / 127.0;
    let d_rounding = (d * (1.0 / 2048.0)).max(2f32.powi(-25));
    0.5 * d + 127.0 * d_rounding
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_half_away_matches_roundf() {
        let mut x = -127.5f32;
        while x <= 127.5 {
            assert_eq!(super::round_half_away(x) as f32, x.round(), "{x}");
            x = f32::from_bits(if x < 0.0 {
                x.to_bits() - 997
            } else if x == 0.0 {
                1
            } else {
                x.to_bits() + 997
            });
            if x < 0.0 && x > -1e-30 {
                x = 0.0;
            }
        }
        for x in [
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            126.5,
            -126.5,
            0.49999997,
            -0.49999997,
            127.0,
            -127.0,
        ] {
            assert_eq!(super::round_half_away(x) as f32, x.round(), "{x}");
        }
    }
}
