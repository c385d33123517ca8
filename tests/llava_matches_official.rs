//! LLaVA-1.5-recipe checkpoints (CLIP + MLP projector + Qwen3 / Mistral decoder) convert and run
//! like transformers' `LlavaForConditionalGeneration`: pixel values equal the official processor's,
//! image embeddings and last logits match, and artemis-chat's greedy ids equal the official ones
//! for every golden run of both fixtures. Goldens: tools/make_llava_fixtures.py (transformers 5.23).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use artemis_gguf::chat::{self, ChatTemplate, Conversation, Message};
use artemis_gguf::engine::{Engine, EngineOptions, ImagePrep, Sampling, Vision, VisionOptions};
use artemis_gguf::gguf::{GgufFile, MetaValue};
use artemis_gguf::plan::OutType;
use common::*;

#[derive(serde::Deserialize, Debug)]
struct LlavaCase {
    name: String,
    image: Option<String>,
    prompt: String,
    input_ids: Vec<i32>,
    n_image_tokens: usize,
    greedy_ids: Vec<i32>,
}

struct LlavaGolden {
    cases: Vec<LlavaCase>,
    tensors: HashMap<String, Vec<f32>>,
}

fn golden(ckpt: &str) -> LlavaGolden {
    let dir = fixtures().join("golden").join(ckpt);
    let cases =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("tensors.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                v.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        })
        .collect();
    LlavaGolden { cases, tensors }
}

/// `tag`: each test converts into its own directory (tests run in parallel).
fn convert(ckpt: &str, outtype: OutType, tag: &str) -> (PathBuf, PathBuf) {
    let out = temp_dir(&format!("llava-{ckpt}-{outtype:?}-{tag}"));
    let (dec, mm) = convert_fixture(ckpt, &out, outtype);
    (dec, mm.unwrap())
}

fn load(dec: &PathBuf, mm: &PathBuf) -> (Engine, Vision, ChatTemplate) {
    let engine = Engine::load(
        dec,
        EngineOptions {
            threads: 2,
            kv_f32: true,
            ..Default::default()
        },
    )
    .unwrap();
    let vision = Vision::load(
        &engine,
        mm,
        &VisionOptions {
            use_gpu: false,
            image_min_tokens: -1,
            image_max_tokens: -1,
            flash_attn: Some(false),
        },
    )
    .unwrap();
    let template = ChatTemplate::from_gguf(dec).unwrap();
    (engine, vision, template)
}

fn question(prompt: &str) -> String {
    let start = prompt
        .rfind("<image>\n")
        .map(|i| i + "<image>\n".len())
        .unwrap_or_else(|| prompt.find("user\n").unwrap() + 5);
    prompt[start..prompt.find("<|im_end|>").unwrap()].to_string()
}

fn greedy() -> Sampling {
    Sampling {
        temp: 0.0,
        ..Sampling::default()
    }
}

/// The official CLIPImageProcessor output from our uint8 crop: rescale in f64, cast to f32,
/// normalize in f32, channels first.
fn pixel_values(rgb: &image::RgbImage, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut out = vec![0f32; 3 * w * h];
    for (x, y, p) in rgb.enumerate_pixels() {
        for c in 0..3 {
            let v = (p[c] as f64 * (1.0 / 255.0)) as f32;
            out[c * w * h + y as usize * w + x as usize] = (v - mean[c]) / std[c];
        }
    }
    out
}

fn check_checkpoint(ckpt: &str) {
    let g = golden(ckpt);
    let (dec, mm) = convert(ckpt, OutType::F32, "check");
    let (engine, mut vision, template) = load(&dec, &mm);
    let Some(ImagePrep::ResizeCrop {
        shortest_edge,
        crop,
    }) = vision.official.clone()
    else {
        panic!(
            "{ckpt}: the mmproj does not select CLIP resize + crop: {:?}",
            vision.official
        )
    };
    assert_eq!(vision.placeholder, "<image>");
    let mmf = GgufFile::open(&mm).unwrap();
    let f3 = |k: &str| -> [f32; 3] {
        let a = mmf.get(k).and_then(MetaValue::as_array).unwrap();
        [0, 1, 2].map(|i| a[i].as_f32().unwrap())
    };
    let (mean, std) = (f3("clip.vision.image_mean"), f3("clip.vision.image_std"));
    let mut report = Vec::new();
    for case in &g.cases {
        let name = &case.name;
        let rendered = template
            .render(
                &[Message::user(
                    usize::from(case.image.is_some()),
                    &question(&case.prompt),
                )],
                true,
                None,
            )
            .unwrap();
        assert_eq!(rendered, case.prompt, "{ckpt}/{name}: rendered prompt");
        let mut bitmaps = Vec::new();
        if let Some(img) = &case.image {
            let path = fixtures().join(img);
            // pixel values: exactly the official processor's
            let rgb = artemis_gguf::preprocess::resize_shortest_and_crop(
                &chat::load_image(&path).unwrap(),
                shortest_edge,
                crop,
            )
            .unwrap();
            let ours = pixel_values(&rgb, mean, std);
            let want = &g.tensors[&format!("{name}.pixel_values")];
            assert_eq!(ours.len(), want.len());
            let max = max_abs_diff(&ours, want);
            assert!(
                max == 0.0,
                "{ckpt}/{name}: pixel values differ by up to {max}"
            );
            let bmp = chat::image_bitmap(&vision, &path).unwrap();
            // image embeddings after the projector
            let emb = vision.encode(&bmp).unwrap();
            assert_eq!(
                emb.n_tokens, case.n_image_tokens,
                "{ckpt}/{name}: image rows"
            );
            let want = &g.tensors[&format!("{name}.image_embeds")];
            let cos = cosine(&emb.data, want);
            report.push(format!(
                "{name}: embeddings cosine {cos:.8}, max-abs {:.2e}",
                max_abs_diff(&emb.data, want)
            ));
            assert!(cos >= 0.99999, "{ckpt}/{name}: embeddings cosine {cos}");
            bitmaps.push(bmp);
        }
        let refs: Vec<_> = bitmaps.iter().collect();
        // last logits of the whole prompt
        let mut s = engine.session(256).unwrap();
        let marked = vision.mark_images(&rendered);
        s.eval_prompt(&mut vision, &marked, &refs, true).unwrap();
        assert_eq!(
            s.n_past as usize,
            case.input_ids.len(),
            "{ckpt}/{name}: prompt length"
        );
        let logits = s.logits();
        let want = &g.tensors[&format!("{name}.last_logits")];
        let d = max_abs_diff(&logits, want);
        report.push(format!(
            "{name}: last logits max-abs {d:.2e} (scale {:.1})",
            max_abs(want)
        ));
        // image cases: the ViT's quick-GELU reads an F16 table on CPU (embeddings max-abs ~5e-3)
        // (observed ≤ 5.1e-3 on logit scales 22–38; the issue bounds text-only logits only)
        let tol = if case.image.is_none() { 1e-4 } else { 1e-2 };
        assert!(d <= tol, "{ckpt}/{name}: last logits differ by {d} > {tol}");
        // greedy ids through the chat API
        let mut conv = Conversation::new(engine.session(256).unwrap(), &template, None, None);
        let reply = conv
            .turn(
                &engine,
                Some(&mut vision),
                &refs,
                &question(&case.prompt),
                &greedy(),
                case.greedy_ids.len(),
                |_| {},
            )
            .unwrap();
        assert_eq!(reply.prompt_tokens, case.input_ids.len(), "{ckpt}/{name}");
        assert_eq!(
            reply.token_ids, case.greedy_ids,
            "{ckpt}/{name}: greedy ids"
        );
    }
    eprintln!("{ckpt}:\n  {}", report.join("\n  "));
}

#[test]
fn qwen3_llava_matches_transformers_pixels_embeddings_logits_and_greedy_ids() {
    check_checkpoint("llava_qwen3");
}

#[test]
fn mistral_llava_without_projector_bias_matches_transformers() {
    check_checkpoint("llava_mistral");
}

#[test]
fn text_tokenization_through_the_qwen2_pre_tokenizer_equals_the_official_ids() {
    let g = golden("llava_qwen3");
    let (dec, _) = convert("llava_qwen3", OutType::F32, "tok");
    let engine = Engine::load(
        &dec,
        EngineOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let case = g.cases.iter().find(|c| c.image.is_none()).unwrap();
    assert_eq!(engine.tokenize(&case.prompt, true), case.input_ids);
    assert!(
        !engine.adds_bos(),
        "qwen2: no BOS, as the official tokenizer"
    );
}

#[test]
fn files_follow_the_llava_format_reference() {
    let (dec, mm) = convert("llava_qwen3", OutType::F16, "format");
    let d = GgufFile::open(&dec).unwrap();
    assert_eq!(d.architecture(), Some("qwen3"));
    assert!(
        d.tensor("output.weight").is_none(),
        "tied: no output.weight"
    );
    assert!(d.tensor("blk.0.attn_q_norm.weight").is_some());
    let m = GgufFile::open(&mm).unwrap();
    assert_eq!(
        m.get("clip.projector_type").and_then(MetaValue::as_str),
        Some("mlp")
    );
    assert_eq!(
        m.get("clip.vision.feature_layer"),
        Some(&MetaValue::Array(vec![MetaValue::I32(2)]))
    );
    assert_eq!(
        m.get("clip.vision.block_count").and_then(MetaValue::as_u32),
        Some(2),
        "only the blocks that run"
    );
    assert!(m.tensor("v.blk.2.attn_q.weight").is_none() && m.tensor("v.post_ln.weight").is_none());
    assert_eq!(
        m.get("clip.vision.projector.gelu_erf"),
        Some(&MetaValue::Bool(true))
    );
    // the Mistral variant has no projector bias: zeros are written
    let (_, mm2) = convert("llava_mistral", OutType::F32, "format");
    let m2 = GgufFile::open(&mm2).unwrap();
    let b = m2.tensor("mm.0.bias").unwrap();
    let bytes = std::fs::read(&mm2).unwrap();
    let start = (m2.data_offset + b.offset) as usize;
    assert!(bytes[start..start + b.nbytes().unwrap() as usize]
        .iter()
        .all(|&x| x == 0));
}

#[test]
fn dry_run_lists_the_llava_plan() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf", "--dry-run"])
        .arg(fixtures().join("llava_mistral"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "general.architecture = \"llama\"",
        "clip.projector_type = \"mlp\"",
        "v.class_embd",
        "mm.0.bias",
        "(zeros: multi_modal_projector.linear_1.bias absent)",
        "blk.0.attn_q.weight",
        "== not written: ",
        "vision_tower.encoder.layers.2.",
        "== image preprocessing from ",
    ] {
        assert!(s.contains(needle), "dry run lacks {needle:?}:\n{s}");
    }
}

#[test]
fn quantized_llava_q4_k_m_with_q8_0_mmproj_still_chats() {
    let g = golden("llava_qwen3");
    let out = temp_dir("llava-q");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_artemis-convert"))
        .args(["--to", "gguf"])
        .arg(fixtures().join("llava_qwen3"))
        .arg("-o")
        .arg(&out)
        .args([
            "--quiet",
            "--quantize",
            "q4_k_m",
            "--mmproj-quantize",
            "q8_0",
            "--name",
            "q",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (dec, mm) = (out.join("q-q4_k_m.gguf"), out.join("mmproj-q-q8_0.gguf"));
    let (engine, mut vision, template) = load(&dec, &mm);
    let case = g.cases.iter().find(|c| c.image.is_some()).unwrap();
    let bmp = chat::image_bitmap(&vision, &fixtures().join(case.image.as_ref().unwrap())).unwrap();
    let mut conv = Conversation::new(engine.session(256).unwrap(), &template, None, None);
    let reply = conv
        .turn(
            &engine,
            Some(&mut vision),
            &[&bmp],
            &question(&case.prompt),
            &greedy(),
            8,
            |_| {},
        )
        .unwrap();
    assert_eq!(reply.prompt_tokens, case.input_ids.len());
    assert_eq!(reply.token_ids.len(), 8);
}
