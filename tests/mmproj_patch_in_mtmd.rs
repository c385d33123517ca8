//! The vendored mtmd carries the Artemis patch: an mmproj with `mm.artemis_fc*` reports the
//! decoder width and is refused next to a decoder of another width with both numbers named; a
//! stock Qwen3-VL mmproj (same file without the artemis tensors) still reports the merger width.
//! Also exercises the standalone Mistral-decoder conversion path.

mod common;

use std::path::Path;

use artemis_gguf::engine::{Engine, EngineError, EngineOptions, Vision, VisionOptions};
use artemis_gguf::gguf::MetaValue;
use artemis_gguf::plan::OutType;
use common::*;

/// Copies `src` to `dst` without the Artemis projector: a stock Qwen3-VL-style mmproj.
fn strip_artemis(src: &Path, dst: &Path, merger_width: u32) {
    artemis_gguf::gguf::copy_with(
        src,
        dst,
        |meta| {
            meta.into_iter()
                .map(|(k, v)| {
                    if k == "clip.vision.projection_dim" {
                        (k, MetaValue::U32(merger_width))
                    } else {
                        (k, v)
                    }
                })
                .collect()
        },
        |t| !t.name.starts_with("mm.artemis_"),
    )
    .unwrap();
}

#[test]
fn artemis_mmproj_reports_decoder_width_and_stock_mmproj_reports_merger_width() {
    let dir = temp_dir("patch-widths");
    let (tiny_dec, tiny_mm) = convert_fixture("tiny", &dir, OutType::F32);
    let tiny_mm = tiny_mm.unwrap();
    let opts = VisionOptions {
        use_gpu: false,
        image_min_tokens: 1,
        image_max_tokens: 256,
        flash_attn: Some(false),
    };

    // Artemis mmproj + its decoder (width 80): accepted.
    let engine80 = Engine::load(
        &tiny_dec,
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(engine80.n_embd(), 80);
    Vision::load(&engine80, &tiny_mm, &opts).expect("Artemis mmproj must load next to its decoder");

    // A standalone Mistral decoder of width 96 (= the tiny merger's output width).
    let ckpt = dir.join("mistral96");
    write_mistral_checkpoint(
        &ckpt,
        MistralDims {
            hidden: 96,
            ffn: 128,
            heads: 4,
            kv_heads: 2,
            head_dim: 32,
        },
    );
    let out = dir.join("mistral-out");
    std::fs::create_dir_all(&out).unwrap();
    let report = artemis_gguf::convert::convert(
        &ckpt,
        &artemis_gguf::convert::ConvertOptions {
            out_dir: out.clone(),
            outtype: artemis_gguf::convert::OutTypeArg::Fixed(OutType::F32),
            quiet: true,
            verify: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        report.written.len(),
        1,
        "a Mistral checkpoint gives only the decoder"
    );
    let engine96 = Engine::load(
        &report.written[0],
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(engine96.n_embd(), 96);

    // The Artemis mmproj next to the width-96 decoder: refused, both widths named.
    match Vision::load(&engine96, &tiny_mm, &opts) {
        Err(EngineError::WidthMismatch {
            mmproj: 80,
            decoder: 96,
            ..
        }) => {}
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("width mismatch accepted"),
    }

    // Without the artemis tensors, mtmd computes the stock merger width (96) and accepts it.
    let stock = dir.join("mmproj-stock.gguf");
    strip_artemis(&tiny_mm, &stock, 96);
    let mut vision = Vision::load(&engine96, &stock, &opts)
        .expect("stock Qwen3-VL mmproj must report the merger width");
    let (w, h, rgb) = load_rgb(&fixtures().join("images/square_64.png"));
    let emb = vision.encode(&Vision::bitmap(w, h, &rgb).unwrap()).unwrap();
    assert_eq!(emb.data.len(), emb.n_tokens * 96);
    // Stock path = the merger alone (its tanh GELU differs from the exact one by < 1e-3), so
    // the output is the official merger output, not the projector's.
    let golden = Golden::load("tiny");
    let cos = cosine(&emb.data, golden.tensor("img_square.merger_out"));
    eprintln!("stock merger vs official merger output: cosine {cos:.6}");
    assert!(
        cos > 0.99,
        "stock merger output should resemble the merger output, cosine {cos}"
    );
}

#[test]
fn swapped_files_are_refused_with_a_clear_error() {
    let dir = temp_dir("swapped");
    let (dec, mm) = convert_fixture("tiny", &dir, OutType::F32);
    let err = Engine::load(&mm.unwrap(), EngineOptions::default())
        .err()
        .expect("mmproj as model must fail")
        .to_string();
    assert!(
        err.contains("mmproj") && err.contains("not a decoder"),
        "{err}"
    );
    let engine = Engine::load(&dec, EngineOptions::default()).unwrap();
    let err = Vision::load(&engine, &dec, &VisionOptions::default())
        .err()
        .expect("decoder as mmproj must fail")
        .to_string();
    assert!(err.contains("not an mmproj"), "{err}");
}
