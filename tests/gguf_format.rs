//! Our GGUF writer produces files that ggml's own GGUF reader accepts with the same keys, values,
//! tensor types and offsets; our reader rejects damaged or hostile files with an error that names
//! the file, without panicking or allocating from lengths it cannot back.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use artemis_gguf::gguf::{GgmlType, GgufFile, GgufHeader, MetaValue};

mod common;

fn tmp(name: &str) -> PathBuf {
    common::temp_dir(&format!("gguf-{name}")).join("f.gguf")
}

fn sample() -> (GgufHeader, Vec<Vec<u8>>) {
    let metadata = vec![
        (
            "general.architecture".to_string(),
            MetaValue::Str("llama".into()),
        ),
        ("a.u32".into(), MetaValue::U32(7)),
        ("a.f32".into(), MetaValue::F32(1e-6)),
        ("a.bool".into(), MetaValue::Bool(true)),
        (
            "a.strs".into(),
            MetaValue::Array(vec![
                MetaValue::Str("x".into()),
                MetaValue::Str("ü y".into()),
            ]),
        ),
        (
            "a.i32s".into(),
            MetaValue::Array(vec![MetaValue::I32(-1), MetaValue::I32(3)]),
        ),
        (
            "a.f32s".into(),
            MetaValue::Array(vec![MetaValue::F32(0.5); 3]),
        ),
    ];
    let t1: Vec<u8> = (0..5 * 3).flat_map(|i| (i as f32).to_le_bytes()).collect(); // F32 [5,3]
    let t2: Vec<u8> = (0..64)
        .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
        .collect(); // F16 [64]
    let header = GgufHeader::new(
        metadata,
        vec![
            ("t.one".into(), vec![5, 3], GgmlType::F32, t1.len() as u64),
            ("t.two".into(), vec![64], GgmlType::F16, t2.len() as u64),
        ],
    );
    (header, vec![t1, t2])
}

fn write(path: &Path, header: &GgufHeader, data: &[Vec<u8>]) {
    let mut bytes = Vec::new();
    let start = header.write(&mut bytes).unwrap();
    for (t, d) in header.tensors.iter().zip(data) {
        bytes.resize((start + t.offset) as usize, 0);
        bytes.extend_from_slice(d);
    }
    bytes.resize(header.file_size().unwrap() as usize, 0);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn ggml_reads_what_we_write() {
    let path = tmp("ggml-reads");
    let (header, data) = sample();
    write(&path, &header, &data);
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        header.file_size().unwrap()
    );

    let c = CString::new(path.to_str().unwrap()).unwrap();
    let params = llama_cpp_sys_2::gguf_init_params {
        no_alloc: true,
        ctx: std::ptr::null_mut(),
    };
    unsafe {
        let ctx = llama_cpp_sys_2::gguf_init_from_file(c.as_ptr(), params);
        assert!(!ctx.is_null(), "ggml rejected our file");
        assert_eq!(llama_cpp_sys_2::gguf_get_n_kv(ctx), 7);
        let key = |k: &str| llama_cpp_sys_2::gguf_find_key(ctx, CString::new(k).unwrap().as_ptr());
        assert_eq!(llama_cpp_sys_2::gguf_get_val_u32(ctx, key("a.u32")), 7);
        assert_eq!(llama_cpp_sys_2::gguf_get_val_f32(ctx, key("a.f32")), 1e-6);
        assert_eq!(
            CStr::from_ptr(llama_cpp_sys_2::gguf_get_val_str(
                ctx,
                key("general.architecture")
            ))
            .to_str()
            .unwrap(),
            "llama"
        );
        assert_eq!(llama_cpp_sys_2::gguf_get_arr_n(ctx, key("a.strs")), 2);
        assert_eq!(
            CStr::from_ptr(llama_cpp_sys_2::gguf_get_arr_str(ctx, key("a.strs"), 1))
                .to_str()
                .unwrap(),
            "ü y"
        );
        assert_eq!(llama_cpp_sys_2::gguf_get_n_tensors(ctx), 2);
        for (i, t) in header.tensors.iter().enumerate() {
            let name = CStr::from_ptr(llama_cpp_sys_2::gguf_get_tensor_name(ctx, i as i64))
                .to_str()
                .unwrap();
            assert_eq!(name, t.name);
            assert_eq!(
                llama_cpp_sys_2::gguf_get_tensor_offset(ctx, i as i64) as u64,
                t.offset
            );
            assert_eq!(
                llama_cpp_sys_2::gguf_get_tensor_type(ctx, i as i64) as u32,
                t.ggml_type.id()
            );
        }
        llama_cpp_sys_2::gguf_free(ctx);
    }

    let ours = GgufFile::open(&path).unwrap();
    assert_eq!(ours.metadata, header.metadata);
    assert_eq!(ours.tensors, header.tensors);
}

#[test]
fn damaged_files_are_rejected_with_the_file_name() {
    let path = tmp("damaged");
    let (header, data) = sample();
    write(&path, &header, &data);
    let good = std::fs::read(&path).unwrap();
    let name = path.display().to_string();

    // truncated inside the data section
    let err = GgufFile::parse(&path, &good[..good.len() - 40])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&name) && err.contains("truncated"), "{err}");
    // truncated inside the header
    let header_len = header.write(&mut std::io::sink()).unwrap() as usize;
    let err = GgufFile::parse(&path, &good[..header_len - 40])
        .unwrap_err()
        .to_string();
    assert!(err.contains(&name) && err.contains("past the end"), "{err}");
    // wrong magic
    let mut bad = good.clone();
    bad[0] = b'X';
    let err = GgufFile::parse(&path, &bad).unwrap_err().to_string();
    assert!(err.contains("not a GGUF"), "{err}");
    // an array claiming 2^60 elements must fail fast, not allocate
    let mut bad = good.clone();
    let pos = good.windows(6).position(|w| w == b"a.strs").unwrap() + 6 + 4 + 4; // key, value type, elem type
    bad[pos..pos + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let err = GgufFile::parse(&path, &bad).unwrap_err().to_string();
    assert!(err.contains("longer than the file"), "{err}");
    // a tensor count no file could hold
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = GgufFile::parse(&path, &bad).unwrap_err().to_string();
    assert!(err.contains("count larger than the file"), "{err}");
}
