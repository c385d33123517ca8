//! How much following the official preprocessing matters (BENCHMARKS.md, fidelity section).
//!
//!   cargo run --release --example fidelity [tiny|small]
//!
//! For every golden image case: image tokens and the cosine of the image embeddings to the
//! official output for (a) our mmproj (official preprocessing, eps 1e-6), (b) the same weights
//! written the fork's way (no budget keys, ViT eps = the decoder's rms eps 1e-5), so llama.cpp's
//! stock Qwen3-VL preprocessing and budget (8…4096 tokens) apply, and (c) = (b) with the fork's
//! documented override `--image-min-tokens 1 --image-max-tokens 256`. A cosine is only defined
//! when the token counts agree.

use std::path::PathBuf;

use artemis_gguf::chat;
use artemis_gguf::convert::{self, ConvertOptions, OutTypeArg};
use artemis_gguf::engine::{Engine, EngineOptions, Vision, VisionOptions};
use artemis_gguf::gguf::{self, MetaValue};
use artemis_gguf::plan::OutType;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    #[serde(default)]
    images: Vec<String>,
    n_image_tokens: usize,
}

fn golden_tensor(path: &std::path::Path, name: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn main() {
    let ckpt = std::env::args().nth(1).unwrap_or_else(|| "small".into());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = std::env::temp_dir().join(format!("artemis-fidelity-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let opts = ConvertOptions {
        out_dir: out.clone(),
        outtype: OutTypeArg::Fixed(OutType::F32),
        name: Some(ckpt.clone()),
        quiet: true,
        ..Default::default()
    };
    let report = convert::convert(&root.join(&ckpt), &opts).unwrap();
    let (dec, mm) = (&report.written[0], &report.written[1]);
    let fork = out.join("mmproj-fork-style.gguf");
    gguf::copy_with(
        mm,
        &fork,
        |meta| {
            meta.into_iter()
                .filter(|(k, _)| {
                    k != "clip.vision.image_min_pixels" && k != "clip.vision.image_max_pixels"
                })
                .map(|(k, v)| {
                    if k == "clip.vision.attention.layer_norm_epsilon" {
                        (k, MetaValue::F32(1e-5))
                    } else {
                        (k, v)
                    }
                })
                .collect()
        },
        |_| true,
    )
    .unwrap();

    let engine = Engine::load(
        dec,
        EngineOptions {
            threads: 2,
            kv_f32: true,
            ..Default::default()
        },
    )
    .unwrap();
    let vopts = |min: i32, max: i32| VisionOptions {
        use_gpu: false,
        image_min_tokens: min,
        image_max_tokens: max,
        flash_attn: Some(false),
    };
    let mut runs = [
        (
            "(a) ours",
            Vision::load(&engine, mm, &vopts(-1, -1)).unwrap(),
        ),
        (
            "(b) fork-style",
            Vision::load(&engine, &fork, &vopts(-1, -1)).unwrap(),
        ),
        (
            "(c) fork-style, 1…256 tokens",
            Vision::load(&engine, &fork, &vopts(1, 256)).unwrap(),
        ),
    ];
    let gdir = root.join("golden").join(&ckpt);
    let cases: Vec<Case> =
        serde_json::from_str(&std::fs::read_to_string(gdir.join("cases.json")).unwrap()).unwrap();
    println!("checkpoint `{ckpt}`, f32; image embeddings vs the official implementation (tokens, cosine)\n");
    print!("| case | images | official tokens |");
    for (name, _) in &runs {
        print!(" {name} |");
    }
    println!("\n|---|---|---|---|---|---|");
    for case in cases.iter().filter(|c| !c.images.is_empty()) {
        let want = golden_tensor(
            &gdir.join("tensors.safetensors"),
            &format!("{}.image_embeds", case.name),
        );
        let names: Vec<&str> = case
            .images
            .iter()
            .map(|p| p.trim_start_matches("images/"))
            .collect();
        print!(
            "| {} | {} | {} |",
            case.name,
            names.join(" + "),
            case.n_image_tokens
        );
        for (_, vision) in runs.iter_mut() {
            let mut data = Vec::new();
            let mut n = 0;
            for img in &case.images {
                let bmp = chat::image_bitmap(vision, &root.join(img)).unwrap();
                let e = vision.encode(&bmp).unwrap();
                n += e.n_tokens;
                data.extend(e.data);
            }
            if n == case.n_image_tokens {
                print!(" {n}, {:.7} |", cosine(&data, &want));
            } else {
                print!(" {n}, n/a |");
            }
        }
        println!();
    }
    let _ = std::fs::remove_dir_all(&out);
}
