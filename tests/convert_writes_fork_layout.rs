//! The converter writes the files llama.cpp and the Schneewolf-Labs fork expect: keys and values
//! from the checkpoint (not the fork's bugs), the fork's tensor names, Q/K rows permuted for
//! llama.cpp's RoPE, the patch kernel split in two, DeepStack dropped, the tokenizer and chat
//! template embedded so that llama.cpp tokenizes exactly like the official tokenizer.

mod common;

use std::collections::HashMap;

use artemis_gguf::encode;
use artemis_gguf::engine::{Engine, EngineOptions};
use artemis_gguf::gguf::{GgmlType, GgufFile, MetaValue};
use artemis_gguf::plan::OutType;
use common::*;

fn tensor_f32(g: &GgufFile, name: &str) -> Vec<f32> {
    let t = g.tensor(name).unwrap_or_else(|| panic!("{name} missing"));
    let bytes = std::fs::read(&g.path).unwrap();
    let start = (g.data_offset + t.offset) as usize;
    encode::decode(
        t.ggml_type,
        &bytes[start..start + t.nbytes().unwrap() as usize],
    )
    .unwrap()
}

/// All tensors of a safetensors file set as f32, read with the safetensors crate directly.
fn source_tensors(dir: &std::path::Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut out = HashMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "safetensors") {
            let bytes = std::fs::read(&p).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            for (name, v) in st.tensors() {
                let vals: Vec<f32> = match v.dtype() {
                    safetensors::Dtype::F32 => v
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                    safetensors::Dtype::BF16 => v
                        .data()
                        .chunks_exact(2)
                        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect(),
                    d => panic!("{d:?}"),
                };
                out.insert(name, (v.shape().to_vec(), vals));
            }
        }
    }
    out
}

fn meta<'a>(g: &'a GgufFile, key: &str) -> &'a MetaValue {
    g.get(key)
        .unwrap_or_else(|| panic!("{}: key {key} missing", g.path.display()))
}

#[test]
fn mmproj_has_fork_layout_with_official_values() {
    let out = temp_dir("layout-mmproj");
    let (_, mm) = convert_fixture("small", &out, OutType::F16);
    let g = GgufFile::open(&mm.unwrap()).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("small/config.json")).unwrap(),
    )
    .unwrap();
    let v = &cfg["vision_config"];
    let u = |k: &str| meta(&g, k).as_u32().unwrap();
    assert_eq!(meta(&g, "general.architecture").as_str(), Some("clip"));
    assert_eq!(
        meta(&g, "clip.projector_type").as_str(),
        Some("qwen3vl_merger")
    );
    assert_eq!(meta(&g, "clip.has_vision_encoder"), &MetaValue::Bool(true));
    assert_eq!(
        u("clip.vision.projection_dim") as u64,
        cfg["text_config"]["hidden_size"].as_u64().unwrap()
    );
    assert_eq!(
        u("clip.vision.embedding_length") as u64,
        v["hidden_size"].as_u64().unwrap()
    );
    assert_eq!(
        u("clip.vision.block_count") as u64,
        v["depth"].as_u64().unwrap()
    );
    assert_eq!(u("clip.vision.patch_size"), 16);
    assert_eq!(
        u("clip.vision.image_size"),
        16 * 16,
        "sqrt(256 positions) * patch 16"
    );
    assert_eq!(u("general.file_type"), 1);
    // the vision tower's epsilon, not the decoder's rms eps (which the fork writes)
    assert_eq!(
        meta(&g, "clip.vision.attention.layer_norm_epsilon").as_f32(),
        Some(1e-6)
    );
    let f3 = |k: &str| {
        meta(&g, k)
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f32().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        f3("clip.vision.image_mean"),
        vec![0.481_454_66, 0.457_827_5, 0.408_210_73]
    );
    assert_eq!(
        f3("clip.vision.image_std"),
        vec![0.268_629_54, 0.261_302_58, 0.275_777_11]
    );
    assert_eq!(u("clip.vision.image_min_pixels"), 1024);
    assert_eq!(u("clip.vision.image_max_pixels"), 262_144);
    assert!(g.get("clip.vision.is_deepstack_layers").is_none());

    // depth 1: 3 head + 12 per block + 6 merger + 4 projector + 1 extra patch slice
    assert_eq!(g.tensors.len(), 3 + 12 + 6 + 4 + 1);
    assert!(g.tensors.iter().all(|t| !t.name.contains("deepstack")));
    let ty = |n: &str| g.tensor(n).unwrap().ggml_type;
    assert_eq!(ty("v.position_embd.weight"), GgmlType::F32);
    assert_eq!(ty("v.patch_embd.weight"), GgmlType::F16);
    assert_eq!(ty("v.patch_embd.weight.1"), GgmlType::F16);
    assert_eq!(ty("v.blk.0.ln1.weight"), GgmlType::F32);
    assert_eq!(ty("mm.artemis_fc2.bias"), GgmlType::F32);
    assert_eq!(ty("mm.artemis_fc1.weight"), GgmlType::F16);
    assert_eq!(
        g.tensor("mm.artemis_fc1.weight").unwrap().ne,
        vec![512, 256]
    );
    assert_eq!(
        g.tensor("v.patch_embd.weight").unwrap().ne,
        vec![16, 16, 3, 256]
    );

    // the two kernel slices are the temporal halves of the Conv3d weight [O, C, 2, 16, 16]
    let src = source_tensors(&fixtures().join("small"));
    let (shape, w) = &src["visual.patch_embed.proj.weight"];
    assert_eq!(shape, &vec![256, 3, 2, 16, 16]);
    for (slice, name) in ["v.patch_embd.weight", "v.patch_embd.weight.1"]
        .iter()
        .enumerate()
    {
        let got = tensor_f32(&g, name);
        for (i, &x) in got.iter().enumerate() {
            let (oc, yx) = (i / 256, i % 256);
            let want = w[(oc * 2 + slice) * 256 + yx];
            assert_eq!(x, half::f16::from_f32(want).to_f32(), "{name}[{i}]");
        }
    }
}

#[test]
fn decoder_permutes_qk_for_llama_rope_and_keeps_the_rest() {
    let out = temp_dir("layout-decoder");
    let (dec, _) = convert_fixture("tiny", &out, OutType::F32);
    let g = GgufFile::open(&dec).unwrap();
    let u = |k: &str| meta(&g, k).as_u32().unwrap();
    assert_eq!(meta(&g, "general.architecture").as_str(), Some("llama"));
    assert_eq!(u("llama.embedding_length"), 80);
    assert_eq!(u("llama.attention.head_count"), 4);
    assert_eq!(u("llama.attention.head_count_kv"), 2);
    assert_eq!(
        u("llama.attention.key_length"),
        32,
        "head_dim ≠ hidden/heads must be written"
    );
    assert_eq!(u("llama.rope.dimension_count"), 32);
    assert_eq!(meta(&g, "llama.rope.freq_base").as_f32(), Some(1e6));
    assert_eq!(meta(&g, "tokenizer.ggml.pre").as_str(), Some("tekken"));
    assert_eq!(meta(&g, "tokenizer.ggml.model").as_str(), Some("gpt2"));
    assert!(
        g.tensor("output.weight").is_some(),
        "untied lm_head must be written"
    );
    assert_eq!(g.tensors.len(), 2 + 9 * 2 + 1);
    // the stored chat template is the checkpoint's template text verbatim
    let template = std::fs::read_to_string(fixtures().join("tiny/chat_template.jinja")).unwrap();
    assert_eq!(
        meta(&g, "tokenizer.chat_template").as_str(),
        Some(template.as_str())
    );

    let src = source_tensors(&fixtures().join("tiny"));
    let head_dim = 32;
    for (hf, gguf) in [("q_proj", "attn_q"), ("k_proj", "attn_k")] {
        let (shape, w) = &src[&format!("language_model.model.layers.1.self_attn.{hf}.weight")];
        let cols = shape[1];
        let got = tensor_f32(&g, &format!("blk.1.{gguf}.weight"));
        // HF rows per head are [x0..x15 | y0..y15] (rotate_half); llama.cpp wants x0 y0 x1 y1 …
        for head in 0..shape[0] / head_dim {
            for j in 0..head_dim / 2 {
                for (a, out_row) in [(0, 2 * j), (1, 2 * j + 1)] {
                    let src_row = head * head_dim + a * head_dim / 2 + j;
                    let dst_row = head * head_dim + out_row;
                    assert_eq!(
                        &got[dst_row * cols..(dst_row + 1) * cols],
                        &w[src_row * cols..(src_row + 1) * cols],
                        "{gguf} head {head} j {j} a {a}"
                    );
                }
            }
        }
    }
    let (_, v) = &src["language_model.model.layers.1.self_attn.v_proj.weight"];
    assert_eq!(&tensor_f32(&g, "blk.1.attn_v.weight"), v);
    let (_, lm) = &src["language_model.lm_head.weight"];
    assert_eq!(&tensor_f32(&g, "output.weight"), lm);
}

#[test]
fn sharded_bf16_and_single_file_f32_export_give_identical_tensors() {
    // Export the sharded bf16 `small` checkpoint as one f32 model.safetensors (exact upcast).
    let export = temp_dir("single-file-export");
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "preprocessor_config.json",
    ] {
        std::fs::copy(fixtures().join("small").join(f), export.join(f)).unwrap();
    }
    let src = source_tensors(&fixtures().join("small"));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = src
        .iter()
        .map(|(n, (shape, v))| {
            (
                n.clone(),
                shape.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &export.join("model.safetensors")).unwrap();

    let opts = |dir: &std::path::Path| artemis_gguf::convert::ConvertOptions {
        out_dir: dir.to_path_buf(),
        outtype: artemis_gguf::convert::OutTypeArg::Fixed(OutType::F32),
        name: Some("m".into()),
        quiet: true,
        ..Default::default()
    };
    let (a, b) = (temp_dir("export-a"), temp_dir("export-b"));
    let ra = artemis_gguf::convert::convert(&fixtures().join("small"), &opts(&a)).unwrap();
    let rb = artemis_gguf::convert::convert(&export, &opts(&b)).unwrap();
    assert_eq!(ra.written.len(), 2);
    for (pa, pb) in ra.written.iter().zip(&rb.written) {
        assert_eq!(
            std::fs::read(pa).unwrap(),
            std::fs::read(pb).unwrap(),
            "{} differs",
            pa.display()
        );
    }
}

#[derive(serde::Deserialize)]
struct TokCase {
    text: String,
    ids_with_special: Vec<i32>,
    ids_no_special: Vec<i32>,
}

#[test]
fn llama_cpp_tokenizes_like_the_official_tokenizer() {
    let out = temp_dir("tokenize");
    let (dec, _) = convert_fixture("tiny", &out, OutType::F32);
    let engine = Engine::load(
        &dec,
        EngineOptions {
            threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let cases: Vec<TokCase> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("golden/tokenize.json")).unwrap(),
    )
    .unwrap();
    assert!(cases.len() >= 10);
    for c in &cases {
        assert_eq!(
            engine.tokenize(&c.text, true),
            c.ids_with_special,
            "with specials: {:?}",
            c.text
        );
        assert_eq!(
            engine.tokenize(&c.text, false),
            c.ids_no_special,
            "without specials: {:?}",
            c.text
        );
    }
    // and every golden prompt, as rendered by the official chat template
    for c in Golden::load("tiny")
        .cases
        .iter()
        .filter(|c| c.images.is_empty())
    {
        assert_eq!(engine.tokenize(&c.prompt, true), c.input_ids, "{}", c.name);
    }
}
