//! With an mmproj written by artemis-convert, images reach the model exactly as the official
//! processor prepares them: every golden image (up- and down-scaled, RGBA, two images) gives the
//! official image-token count and embeddings, and greedy ids match; mtmd's own resize leaves an
//! image already at smart_resize's target unchanged.

mod common;

use artemis_gguf::chat;
use artemis_gguf::engine::{Engine, EngineOptions, Vision, VisionOptions};
use artemis_gguf::plan::OutType;
use common::*;

fn opts() -> VisionOptions {
    // no budget override: the mmproj's official budget applies
    VisionOptions {
        use_gpu: false,
        image_min_tokens: -1,
        image_max_tokens: -1,
        flash_attn: Some(false),
    }
}

#[test]
fn every_golden_image_gives_official_tokens_and_embeddings() {
    for ckpt in ["tiny", "small"] {
        let out = temp_dir(&format!("official-pre-{ckpt}"));
        let (dec, mm) = convert_fixture(ckpt, &out, OutType::F32);
        let engine = Engine::load(
            &dec,
            EngineOptions {
                threads: 2,
                kv_f32: true,
                ..Default::default()
            },
        )
        .unwrap();
        let mut vision = Vision::load(&engine, &mm.unwrap(), &opts()).unwrap();
        assert!(vision.official.is_some() && vision.warnings.is_empty());
        let golden = Golden::load(ckpt);
        for case in golden.cases.iter().filter(|c| !c.images.is_empty()) {
            let mut data = Vec::new();
            let mut n_tokens = 0;
            for img in &case.images {
                let bmp = chat::image_bitmap(&vision, &fixtures().join(img)).unwrap();
                let e = vision.encode(&bmp).unwrap();
                n_tokens += e.n_tokens;
                data.extend(e.data);
            }
            assert_eq!(
                n_tokens, case.n_image_tokens,
                "{ckpt} {}: image tokens",
                case.name
            );
            let want = golden.tensor(&format!("{}.image_embeds", case.name));
            let cos = cosine(&data, want);
            eprintln!(
                "{ckpt} {:<10} tokens {:>3}  cosine {cos:.7}  max-abs {:.3e}",
                case.name,
                n_tokens,
                max_abs_diff(&data, want)
            );
            assert!(cos >= 0.9999, "{ckpt} {}: cosine {cos}", case.name);
        }
    }
}

#[test]
fn greedy_ids_match_on_resized_images() {
    let out = temp_dir("official-pre-greedy");
    let (dec, mm) = convert_fixture("tiny", &out, OutType::F32);
    let engine = Engine::load(
        &dec,
        EngineOptions {
            threads: 2,
            kv_f32: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut vision = Vision::load(&engine, &mm.unwrap(), &opts()).unwrap();
    let golden = Golden::load("tiny");
    for name in ["img_rect", "img_wide", "img_rgba"] {
        let case = golden.case(name);
        let bmp =
            chat::image_bitmap(&vision, &fixtures().join(case.image.as_ref().unwrap())).unwrap();
        let mut s = engine.session(256).unwrap();
        s.eval_prompt(&mut vision, &mtmd_prompt(&case.prompt), &[&bmp], true)
            .unwrap();
        assert_eq!(s.n_past as usize, case.input_ids.len(), "{name}");
        let ids = s.greedy(case.greedy_ids.len(), &[]).unwrap();
        assert_eq!(ids, case.greedy_ids, "{name}");
    }
}
