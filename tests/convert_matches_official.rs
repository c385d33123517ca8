//! A converted checkpoint behaves like the official implementation: the decoder GGUF reproduces
//! the golden last-position logits and greedy ids, and the mmproj (through the patched mtmd)
//! reproduces the golden image embeddings and image-conditioned logits.
//!
//! Runs use exact-parity settings (F32 KV cache, no flash attention: llama.cpp's F16 defaults
//! alone move these logits by ~1e-2). Observed on the fixtures (logit scale 30–50):
//! text logits ≤ 2e-5 max-abs (asserted ≤ 1e-3, the bound); image embeddings cosine
//! ≥ 0.9999998, max-abs ≤ 2.1e-3 on a scale of 6 (asserted cosine ≥ 0.9999); image-conditioned
//! logits ≤ 2.1e-3 (asserted ≤ 5e-3). The image residual comes from ggml's CPU tanh-GELU, which
//! reads an F16 lookup table (GGML_GELU_FP16) in the ViT MLP; the official model computes it in f32.

mod common;

use artemis_gguf::engine::{Engine, EngineOptions, Session, Vision, VisionOptions};
use artemis_gguf::plan::OutType;
use common::*;

/// The official training budget: 1…256 image tokens (reference §4, §8).
fn vision_opts() -> VisionOptions {
    VisionOptions {
        use_gpu: false,
        image_min_tokens: 1,
        image_max_tokens: 256,
        flash_attn: Some(false),
    }
}

fn eval_case(engine: &Engine, vision: Option<&mut Vision>, case: &Case) -> (Vec<f32>, Vec<i32>) {
    let mut session: Session = engine.session(512).unwrap();
    match (&case.image, vision) {
        (None, _) => {
            let ids = engine.tokenize(&case.prompt, true);
            assert_eq!(
                ids, case.input_ids,
                "{}: llama.cpp tokenization differs from the official one",
                case.name
            );
            session.eval_tokens(&ids).unwrap();
        }
        (Some(img), Some(vision)) => {
            let (w, h, rgb) = load_rgb(&fixtures().join(img));
            let bitmap = Vision::bitmap(w, h, &rgb).unwrap();
            session
                .eval_prompt(vision, &mtmd_prompt(&case.prompt), &[&bitmap], true)
                .unwrap();
            assert_eq!(
                session.n_past as usize,
                case.input_ids.len(),
                "{}: prompt length (text + image tokens)",
                case.name
            );
        }
        (Some(_), None) => panic!("image case without vision"),
    }
    let logits = session.logits();
    let greedy = session.greedy(case.greedy_ids.len(), &[]).unwrap();
    (logits, greedy)
}

fn check_decoder_text(ckpt: &str, outtype: OutType, tol: f32) {
    let golden = Golden::load(ckpt);
    let out = temp_dir(&format!("{ckpt}-{outtype:?}-text"));
    let (dec, _) = convert_fixture(ckpt, &out, outtype);
    let engine = Engine::load(
        &dec,
        EngineOptions {
            threads: 2,
            kv_f32: true,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let case = golden.case("text");
    let (logits, greedy) = eval_case(&engine, None, case);
    let want = golden.tensor("text.last_logits");
    let diff = max_abs_diff(&logits, want);
    eprintln!(
        "{ckpt} {outtype:?} text: max |Δlogit| = {diff:.3e} (logit scale {:.2})",
        max_abs(want)
    );
    assert!(
        diff <= tol,
        "{ckpt} {outtype:?}: max |Δlogit| {diff} > {tol}"
    );
    assert_eq!(greedy, case.greedy_ids, "{ckpt} {outtype:?}: greedy ids");
}

#[test]
fn tiny_f32_decoder_matches_official_text_logits_and_greedy_ids() {
    check_decoder_text("tiny", OutType::F32, 1e-3);
}

#[test]
fn small_sharded_bf16_converted_to_f32_matches_official_text_logits() {
    check_decoder_text("small", OutType::F32, 1e-3);
}

fn check_image(ckpt: &str, outtype: OutType, case_name: &str, min_cos: f64, logit_tol: f32) {
    let golden = Golden::load(ckpt);
    let out = temp_dir(&format!("{ckpt}-{outtype:?}-{case_name}"));
    let (dec, mm) = convert_fixture(ckpt, &out, outtype);
    let engine = Engine::load(
        &dec,
        EngineOptions {
            threads: 2,
            kv_f32: true,
            ..EngineOptions::default()
        },
    )
    .unwrap();
    let mut vision = Vision::load(&engine, &mm.unwrap(), &vision_opts()).unwrap();
    let case = golden.case(case_name);

    let (w, h, rgb) = load_rgb(&fixtures().join(case.image.as_ref().unwrap()));
    let emb = vision.encode(&Vision::bitmap(w, h, &rgb).unwrap()).unwrap();
    assert_eq!(
        emb.n_tokens, case.n_image_tokens,
        "{ckpt} {case_name}: image token count"
    );
    let want = golden.tensor(&format!("{case_name}.image_embeds"));
    let cos = cosine(&emb.data, want);
    let diff = max_abs_diff(&emb.data, want);
    eprintln!("{ckpt} {outtype:?} {case_name}: embeddings cosine {cos:.7}, max-abs {diff:.3e} (scale {:.2})", max_abs(want));
    assert!(
        cos >= min_cos,
        "{ckpt} {case_name}: cosine {cos} < {min_cos}"
    );

    let (logits, greedy) = eval_case(&engine, Some(&mut vision), case);
    let want = golden.tensor(&format!("{case_name}.last_logits"));
    let ldiff = max_abs_diff(&logits, want);
    eprintln!("{ckpt} {outtype:?} {case_name}: max |Δlogit| = {ldiff:.3e}");
    assert!(
        ldiff <= logit_tol,
        "{ckpt} {case_name}: max |Δlogit| {ldiff} > {logit_tol}"
    );
    assert_eq!(greedy, case.greedy_ids, "{ckpt} {case_name}: greedy ids");
}

#[test]
fn tiny_f32_mmproj_matches_official_image_embeddings_and_logits() {
    check_image("tiny", OutType::F32, "img_square", 0.9999, 5e-3);
}

#[test]
fn small_f32_mmproj_matches_official_image_embeddings_and_logits() {
    check_image("small", OutType::F32, "img_square", 0.9999, 5e-3);
}

/// The 16-bit and Q8_0 outputs compute in lower precision; they must stay close to the official
/// f32 logits (logit scale 50) and keep the greedy continuation. Observed max |Δlogit|: BF16
/// 9.6e-2, F16 7.9e-3, Q8_0 2.6e-1 (cosine ≥ 0.9999); asserted 0.25 / 0.05 / 0.6.
#[test]
fn small_bf16_f16_q8_0_decoders_stay_close_to_official_logits() {
    let golden = Golden::load("small");
    let case = golden.case("text");
    let want = golden.tensor("text.last_logits");
    for (outtype, tol) in [
        (OutType::BF16, 0.25),
        (OutType::F16, 0.05),
        (OutType::Q8_0, 0.6),
    ] {
        let out = temp_dir(&format!("small-{outtype:?}-lowp"));
        let (dec, _) = convert_fixture("small", &out, outtype);
        let engine = Engine::load(
            &dec,
            EngineOptions {
                threads: 2,
                kv_f32: true,
                ..EngineOptions::default()
            },
        )
        .unwrap();
        let (logits, greedy) = eval_case(&engine, None, case);
        let diff = max_abs_diff(&logits, want);
        let cos = cosine(&logits, want);
        eprintln!("small {outtype:?} text: max |Δlogit| = {diff:.3e}, cosine {cos:.6}");
        assert!(diff <= tol, "{outtype:?}: max |Δlogit| {diff} > {tol}");
        assert!(cos >= 0.9999, "{outtype:?}: cosine {cos}");
        assert_eq!(greedy, case.greedy_ids, "{outtype:?}: greedy ids");
    }
}
