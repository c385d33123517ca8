//! Hostile-input corpus for artemis-convert, artemis-quantize and artemis-chat (issue 10).
//!
//! `generate` writes broken and hostile inputs under `dir` and returns one [`Case`] per command
//! line to try, grouped by class. `tests/hostile_input.rs` runs every case and checks: the exit
//! status, no panic, abort or death by signal, no hang (time limit), one error line naming the
//! culprit, and no file left in the run's directory. Add a case here, not in the test.
//!
//! Used from the test suite through `#[path]`; it needs std, libc and the library's GGUF module
//! (to forge files from good ones).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use artemis_gguf::gguf::{self, GgmlType, MetaValue, TensorInfo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    Convert,
    Quantize,
    Chat,
}

#[derive(Clone, Debug)]
pub enum Expect {
    /// Non-zero exit with one stderr line that contains every needle.
    Error(Vec<String>),
    /// Exit 0, stderr contains every needle (a reported error the command survived, a warning).
    Survives(Vec<String>),
    /// Exit 0 with outputs written into the run's directory (allowed there), no temp file left,
    /// stderr contains every needle.
    Writes(Vec<String>),
    /// A command-line usage error in clap's own format: exit 2, first line `error: …` with every
    /// needle.
    Usage(Vec<String>),
}

#[derive(Clone, Debug)]
pub struct Case {
    pub class: &'static str,
    pub name: String,
    pub bin: Bin,
    pub args: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub expect: Expect,
}

/// Known-good files the cases start from.
pub struct Inputs {
    /// f32 decoder and mmproj converted from fixtures/tiny.
    pub dec: PathBuf,
    pub mm: PathBuf,
    /// fixtures/tiny (a checkpoint directory).
    pub tiny: PathBuf,
    /// A small valid PNG.
    pub image: PathBuf,
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|x| x.to_string()).collect()
}

fn err(needles: &[&str]) -> Expect {
    Expect::Error(v(needles))
}

fn usage(needles: &[&str]) -> Expect {
    Expect::Usage(v(needles))
}

fn case(
    class: &'static str,
    name: impl Into<String>,
    bin: Bin,
    args: Vec<String>,
    expect: Expect,
) -> Case {
    Case {
        class,
        name: name.into(),
        bin,
        args,
        stdin: None,
        expect,
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// A PNG with a valid signature and IHDR but nothing else: the header claims `w` x `h`.
/// A WebP file of just a VP8X header declaring a `w` x `h` canvas (no image data).
fn webp_vp8x(w: u32, h: u32) -> Vec<u8> {
    let mut chunk = b"VP8X".to_vec();
    chunk.extend_from_slice(&10u32.to_le_bytes());
    chunk.extend_from_slice(&[0, 0, 0, 0]);
    chunk.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    chunk.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    let mut f = b"RIFF".to_vec();
    f.extend_from_slice(&(4 + chunk.len() as u32).to_le_bytes());
    f.extend_from_slice(b"WEBP");
    f.extend_from_slice(&chunk);
    f
}

fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(b"IHDR");
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    // A tiny (invalid) IDAT and the IEND, so that a header reader gets past the metadata.
    for (kind, data) in [
        (&b"IDAT"[..], &b"\x78\x9c\x03\x00"[..]),
        (&b"IEND"[..], &b""[..]),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

pub fn generate(dir: &Path, inp: &Inputs) -> Vec<Case> {
    std::fs::create_dir_all(dir).unwrap();
    let mut cases = Vec::new();
    let (dec, mm) = (s(&inp.dec), s(&inp.mm));
    let chat = |extra: &[&str]| {
        let mut a = vec![
            dec.clone(),
            "-n".into(),
            "2".into(),
            "--temp".into(),
            "0".into(),
            "-t".into(),
            "2".into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };

    // --- tokenizer: long runs of one character (std::regex recursion overflowed the stack) ----
    for (tag, ch) in [
        ("a", "a"),
        ("equals", "="),
        ("space", " "),
        ("newline", "\n"),
        ("e-acute", "é"),
        ("digit", "7"),
    ] {
        let f = dir.join(format!("prompt-1mib-{tag}.txt"));
        std::fs::write(&f, ch.repeat((1 << 20) / ch.len())).unwrap();
        // The prompt tokenizes (the old crash), then cannot fit -c 512: a clean error.
        cases.push(case(
            "tokenizer",
            format!("1 MiB of {tag:?} via -f"),
            Bin::Chat,
            chat(&["-c", "512", "-f", &s(&f)]),
            err(&["context holds 512", "raise -c"]),
        ));
    }
    let long_system = "=".repeat(100_000);
    cases.push(case(
        "tokenizer",
        "100 KB --system of '='",
        Bin::Chat,
        chat(&["-c", "512", "-p", "hi", "--system", &long_system]),
        err(&["context holds 512"]),
    ));
    let mut line = "a".repeat(1 << 20);
    line.push_str("\n/exit\n");
    cases.push(Case {
        stdin: Some(line.into_bytes()),
        ..case(
            "tokenizer",
            "1 MiB interactive line",
            Bin::Chat,
            chat(&["-c", "512"]),
            Expect::Survives(v(&["context holds 512"])),
        )
    });
    let mut bad_utf8 = b"\xff\xfe not utf-8\n".to_vec();
    bad_utf8.extend_from_slice(b"/exit\n");
    cases.push(Case {
        stdin: Some(bad_utf8),
        ..case(
            "tokenizer",
            "invalid UTF-8 interactive line",
            Bin::Chat,
            chat(&["-c", "512"]),
            Expect::Survives(v(&["not valid UTF-8"])),
        )
    });

    // --- flags: llama.cpp spellings and bounds -----------------------------------------------
    for ngl in ["99", "all", "auto", "-1"] {
        cases.push(case(
            "flags",
            format!("-ngl {ngl} (CPU build)"),
            Bin::Chat,
            chat(&["-p", "hi", "-ngl", ngl]),
            Expect::Survives(v(&["no GPU backend"])),
        ));
    }
    cases.push(case(
        "flags",
        "-ngl=99",
        Bin::Chat,
        chat(&["-p", "hi", "-ngl=99"]),
        Expect::Survives(v(&["no GPU backend"])),
    ));
    cases.push(case(
        "flags",
        "--gpu-layers 0",
        Bin::Chat,
        chat(&["-p", "hi", "--gpu-layers", "0"]),
        Expect::Survives(vec![]),
    ));
    for (bad, needle) in [
        ("gl", "-ngl \"gl\""),
        ("99999999999", "-ngl \"99999999999\""),
        ("1.5", "-ngl \"1.5\""),
    ] {
        cases.push(case(
            "flags",
            format!("-ngl {bad}"),
            Bin::Chat,
            chat(&["-p", "hi", "-ngl", bad]),
            err(&[needle]),
        ));
    }
    for t in ["0", "100000", "-3", "many"] {
        cases.push(case(
            "flags",
            format!("chat -t {t}"),
            Bin::Chat,
            vec![dec.clone(), "-p".into(), "hi".into(), "-t".into(), t.into()],
            usage(&["-t", "1 to 512"]),
        ));
    }
    for n in ["4294967296", "-5", "2000000"] {
        cases.push(case(
            "flags",
            format!("chat -n {n}"),
            Bin::Chat,
            vec![dec.clone(), "-p".into(), "hi".into(), "-n".into(), n.into()],
            usage(&["-n", &format!("{n:?}")]),
        ));
    }
    for c in ["99999999999", "-1", "x"] {
        cases.push(case(
            "flags",
            format!("chat -c {c}"),
            Bin::Chat,
            vec![dec.clone(), "-p".into(), "hi".into(), "-c".into(), c.into()],
            usage(&["-c", &format!("{c:?}")]),
        ));
    }
    // llama.cpp's own meanings: -t -1 = all cores, -n -1 = until the context is full, -c 0 =
    // the model's training context.
    cases.push(case(
        "flags",
        "chat -t -1 -n -1 -c 64",
        Bin::Chat,
        vec![
            dec.clone(),
            "-p".into(),
            "hi".into(),
            "-t".into(),
            "-1".into(),
            "-n".into(),
            "-1".into(),
            "-c".into(),
            "64".into(),
            "--temp".into(),
            "0".into(),
        ],
        Expect::Survives(vec![]),
    ));
    cases.push(case(
        "flags",
        "chat -c 0 -n 1",
        Bin::Chat,
        vec![
            dec.clone(),
            "-p".into(),
            "hi".into(),
            "-c".into(),
            "0".into(),
            "-n".into(),
            "1".into(),
        ],
        Expect::Survives(vec![]),
    ));
    let out = dir.join("out-never");
    for t in ["0", "100000"] {
        cases.push(case(
            "flags",
            format!("convert --threads {t}"),
            Bin::Convert,
            vec![
                "--to".into(),
                "gguf".into(),
                s(&inp.tiny),
                "-o".into(),
                s(&out),
                "--threads".into(),
                t.into(),
            ],
            usage(&["--threads", "1 to 512"]),
        ));
        cases.push(case(
            "flags",
            format!("quantize THREADS {t}"),
            Bin::Quantize,
            vec![dec.clone(), s(&dir.join("q.gguf")), "q8_0".into(), t.into()],
            err(&["THREADS", "1 to 512"]),
        ));
    }
    cases.push(case(
        "flags",
        "--image-min-tokens 300 --image-max-tokens 4",
        Bin::Chat,
        chat(&[
            "--mmproj",
            &mm,
            "-p",
            "hi",
            "--image-min-tokens",
            "300",
            "--image-max-tokens",
            "4",
        ]),
        err(&["--image-min-tokens 300 is above --image-max-tokens 4"]),
    ));
    cases.push(case(
        "flags",
        "--image-max-tokens 0",
        Bin::Chat,
        chat(&["--mmproj", &mm, "-p", "hi", "--image-max-tokens", "0"]),
        usage(&["--image-max-tokens"]),
    ));
    cases.push(case(
        "flags",
        "convert --add-bos yes",
        Bin::Convert,
        vec![
            "--to".into(),
            "gguf".into(),
            s(&inp.tiny),
            "--dry-run".into(),
            "--add-bos".into(),
            "yes".into(),
        ],
        usage(&["--add-bos"]),
    ));

    // --- inputs that are not regular files: FIFOs hang a naive open, devices stream forever -----
    let fifo = dir.join("a.fifo");
    mkfifo(&fifo);
    let fifo_ckpt = dir.join("fifo-ckpt");
    std::fs::create_dir_all(&fifo_ckpt).unwrap();
    mkfifo(&fifo_ckpt.join("config.json"));
    let a_dir = dir.join("a-directory");
    std::fs::create_dir_all(&a_dir).unwrap();
    for (what, path, label) in [
        ("FIFO", s(&fifo), "a FIFO"),
        ("/dev/zero", "/dev/zero".to_string(), "a device"),
        ("directory", s(&a_dir), "a directory"),
    ] {
        cases.push(case(
            "non-regular input",
            format!("{what} as the model"),
            Bin::Chat,
            vec![path.clone(), "-p".into(), "hi".into()],
            err(&[&path, label]),
        ));
        cases.push(case(
            "non-regular input",
            format!("{what} as --mmproj"),
            Bin::Chat,
            chat(&["-p", "hi", "--mmproj", &path]),
            err(&[&path, label]),
        ));
        cases.push(case(
            "non-regular input",
            format!("{what} as -f"),
            Bin::Chat,
            chat(&["-f", &path]),
            err(&[&path, label]),
        ));
        cases.push(case(
            "non-regular input",
            format!("{what} as quantize input"),
            Bin::Quantize,
            vec![path.clone(), s(&dir.join("q.gguf")), "q8_0".into()],
            err(&[&path, label]),
        ));
        if what != "directory" {
            cases.push(case(
                "non-regular input",
                format!("{what} as --image"),
                Bin::Chat,
                chat(&["--mmproj", &mm, "-p", "hi", "--image", &path]),
                err(&[&path, label]),
            ));
        }
    }
    cases.push(case(
        "non-regular input",
        "FIFO as config.json",
        Bin::Convert,
        vec![
            "--to".into(),
            "gguf".into(),
            s(&fifo_ckpt),
            "--dry-run".into(),
        ],
        err(&["config.json", "a FIFO"]),
    ));
    let missing = dir.join("no-such-checkpoint");
    cases.push(case(
        "non-regular input",
        "missing checkpoint directory",
        Bin::Convert,
        vec![
            "--to".into(),
            "gguf".into(),
            s(&missing),
            "--dry-run".into(),
        ],
        err(&["no-such-checkpoint", "no such checkpoint directory"]),
    ));

    // --- images: the pixel budget is enforced from the header, before decoding --------------
    // decompression bombs in the other formats: a few hundred bytes whose decoder would allocate
    // the declared canvas (60000 x 60000 x 4 = 14 GB for the GIF) before reading any pixel
    let mut webp_bomb = std::fs::read(inp.image.with_file_name("alpha_lossy_36x44.webp")).unwrap();
    assert_eq!(&webp_bomb[12..16], b"VP8X");
    webp_bomb[24..27].copy_from_slice(&16383u32.to_le_bytes()[..3]);
    webp_bomb[27..30].copy_from_slice(&16383u32.to_le_bytes()[..3]);
    let mut gif_bomb = b"GIF89a".to_vec();
    gif_bomb.extend_from_slice(&60000u16.to_le_bytes());
    gif_bomb.extend_from_slice(&60000u16.to_le_bytes());
    gif_bomb.extend_from_slice(&[0, 0, 0]); // no global palette
                                            // a 1x1 frame at 0,0 with a 2-colour local palette, LZW minimum code size 2
    gif_bomb.extend_from_slice(&[0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0x80, 0, 0, 0, 255, 255, 255]);
    gif_bomb.extend_from_slice(&[2, 2, 0x44, 0x01, 0, b';']);
    let images: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "60000x60000 PNG header",
            png_header_only(60_000, 60_000),
            "more than the",
        ),
        (
            "100000x400 PNG header",
            png_header_only(100_000, 400),
            "more than the",
        ),
        ("empty file", Vec::new(), "unrecognized image format"),
        (
            "text as .png",
            b"just some text".to_vec(),
            "unrecognized image format",
        ),
        ("PNG signature only", b"\x89PNG\r\n\x1a\n".to_vec(), "PNG"),
        ("JPEG SOI only", b"\xff\xd8\xff".to_vec(), "Jpeg"),
        (
            "GIF without a frame",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            "Gif",
        ),
        (
            "WebP cut after its header",
            webp_vp8x(40, 30)[..20].to_vec(),
            "WebP",
        ),
        (
            "a real WebP declaring a 16384x16384 canvas",
            webp_bomb,
            "more than the",
        ),
        (
            "a 1x1 GIF frame on a 60000x60000 screen",
            gif_bomb,
            "more than the",
        ),
        (
            "TIFF (unsupported)",
            b"II*\x00\x08\x00\x00\x00\x00\x00".to_vec(),
            "not supported",
        ),
    ];
    for (name, bytes, needle) in images {
        let f = dir.join(format!("img-{}.png", name.replace([' ', '(', ')'], "_")));
        std::fs::write(&f, bytes).unwrap();
        cases.push(case(
            "image",
            name,
            Bin::Chat,
            chat(&["--mmproj", &mm, "-p", "hi", "--image", &s(&f)]),
            err(&[&s(&f), needle]),
        ));
    }
    let real = std::fs::read(&inp.image).unwrap();
    let truncated = dir.join("img-truncated.png");
    std::fs::write(&truncated, &real[..real.len() / 2]).unwrap();
    cases.push(case(
        "image",
        "PNG cut in half",
        Bin::Chat,
        chat(&["--mmproj", &mm, "-p", "hi", "--image", &s(&truncated)]),
        err(&[&s(&truncated), "decoding failed"]),
    ));

    // --- outputs: nothing written outside -o, through a link, or over a non-file ---------------
    let conv = |extra: &[&str]| {
        let mut a = vec![
            "--to".to_string(),
            "gguf".into(),
            s(&inp.tiny),
            "--quiet".into(),
            "--outtype".into(),
            "f32".into(),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a
    };
    for name in ["../escaped", "a/b", "", "..", "/abs"] {
        cases.push(case(
            "outputs",
            format!("--name {name:?}"),
            Bin::Convert,
            conv(&["-o", "out", "--name", name]),
            err(&["--name"]),
        ));
    }
    let victim = dir.join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let planted = dir.join("planted-out");
    std::fs::create_dir_all(&planted).unwrap();
    std::os::unix::fs::symlink(&victim, planted.join("x-f32.gguf")).unwrap();
    mkfifo(&planted.join("mmproj-x-f32.gguf"));
    cases.push(case(
        "outputs",
        "output name is a symlink (no --force)",
        Bin::Convert,
        conv(&["-o", &s(&planted), "--name", "x"]),
        err(&["x-f32.gguf", "already exists"]),
    ));
    cases.push(case(
        "outputs",
        "output name is a symlink (--force)",
        Bin::Convert,
        conv(&[
            "-o",
            &s(&planted),
            "--name",
            "x",
            "--force",
            "--only",
            "decoder",
        ]),
        err(&["x-f32.gguf", "not a regular file (a symbolic link)"]),
    ));
    cases.push(case(
        "outputs",
        "output name is a FIFO (--force)",
        Bin::Convert,
        conv(&[
            "-o",
            &s(&planted),
            "--name",
            "x",
            "--force",
            "--only",
            "mmproj",
        ]),
        err(&["mmproj-x-f32.gguf", "not a regular file (a FIFO)"]),
    ));
    cases.push(case(
        "outputs",
        "--quantize onto a symlink (--force)",
        Bin::Convert,
        conv(&[
            "-o",
            &s(&planted),
            "--name",
            "x",
            "--force",
            "--only",
            "decoder",
            "--quantize",
            "f32",
        ]),
        err(&["x-f32.gguf", "not a regular file"]),
    ));
    cases.push(case(
        "outputs",
        "-o is a regular file",
        Bin::Convert,
        conv(&["-o", &s(&victim)]),
        err(&["victim.txt", "cannot create the output directory"]),
    ));
    cases.push(case(
        "outputs",
        "quantize onto /dev/null (--force)",
        Bin::Quantize,
        vec![
            "--force".into(),
            dec.clone(),
            "/dev/null".into(),
            "q8_0".into(),
        ],
        err(&["/dev/null", "not a regular file (a device)"]),
    ));
    cases.push(case(
        "outputs",
        "quantize onto /dev/null",
        Bin::Quantize,
        vec![dec.clone(), "/dev/null".into(), "q8_0".into()],
        err(&["/dev/null", "already exists"]),
    ));
    cases.push(case(
        "outputs",
        "quantize onto a symlink (--force)",
        Bin::Quantize,
        vec![
            "--force".into(),
            dec.clone(),
            s(&planted.join("x-f32.gguf")),
            "q8_0".into(),
        ],
        err(&["x-f32.gguf", "not a regular file (a symbolic link)"]),
    ));
    cases.push(case(
        "outputs",
        "quantize mmproj onto a FIFO (--force)",
        Bin::Quantize,
        vec![
            "--force".into(),
            mm.clone(),
            s(&planted.join("mmproj-x-f32.gguf")),
            "q8_0".into(),
        ],
        err(&["mmproj-x-f32.gguf", "not a regular file (a FIFO)"]),
    ));
    cases.push(case(
        "outputs",
        "quantize into a missing directory",
        Bin::Quantize,
        vec![dec.clone(), "no/such/dir/q.gguf".into(), "q8_0".into()],
        err(&["no/such/dir/q.gguf"]),
    ));
    cases.push(case(
        "outputs",
        "quantize output = input",
        Bin::Quantize,
        vec!["--force".into(), dec.clone(), dec.clone(), "q8_0".into()],
        err(&["equals the input"]),
    ));

    forged_gguf_cases(dir, inp, &mut cases);
    cases
}

/// A copy of `src` with metadata key `key` set to `value` (None removes it).
fn with_key(src: &Path, dst: &Path, key: &str, value: Option<MetaValue>) {
    gguf::rewrite(
        src,
        dst,
        |mut kv| {
            kv.retain(|(k, _)| k != key);
            if let Some(v) = value {
                kv.push((key.to_string(), v));
            }
            kv
        },
        |t| Some(t.clone()),
    )
    .unwrap();
}

/// A copy of `src` with one tensor header changed (None drops it).
fn with_tensor(
    src: &Path,
    dst: &Path,
    name: &str,
    edit: impl Fn(&TensorInfo) -> Option<TensorInfo>,
) {
    gguf::rewrite(
        src,
        dst,
        |kv| kv,
        |t| {
            if t.name == name {
                edit(t)
            } else {
                Some(t.clone())
            }
        },
    )
    .unwrap();
}

fn transposed(t: &TensorInfo) -> Option<TensorInfo> {
    let mut t = t.clone();
    t.ne.swap(0, 1);
    Some(t)
}

/// A GGUF written byte by byte: `kv` (string values only), then tensor infos (name, ne, type id,
/// offset), then `data`.
fn raw_gguf(
    version: u32,
    kv: &[(&str, &str)],
    tensors: &[(&str, &[u64], u32, u64)],
    data: &[u8],
) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    let string = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    for (k, v) in kv {
        string(&mut b, k);
        b.extend_from_slice(&8u32.to_le_bytes());
        string(&mut b, v);
    }
    for (name, ne, ty, off) in tensors {
        string(&mut b, name);
        b.extend_from_slice(&(ne.len() as u32).to_le_bytes());
        for n in *ne {
            b.extend_from_slice(&n.to_le_bytes());
        }
        b.extend_from_slice(&ty.to_le_bytes());
        b.extend_from_slice(&off.to_le_bytes());
    }
    while b.len() % 32 != 0 {
        b.push(0);
    }
    b.extend_from_slice(data);
    b
}

fn forged_gguf_cases(dir: &Path, inp: &Inputs, cases: &mut Vec<Case>) {
    let (dec, mm) = (s(&inp.dec), s(&inp.mm));
    let forged = dir.join("forged");
    std::fs::create_dir_all(&forged).unwrap();
    let mut n = 0;
    let mut next = |tag: &str| {
        n += 1;
        forged.join(format!("{n:02}-{tag}.gguf"))
    };

    // --- mmproj hyperparameters and shapes, checked before mtmd builds its graph -------------
    let u32v = |v: u32| Some(MetaValue::U32(v));
    let mm_keys: Vec<(&str, Option<MetaValue>, &str)> = vec![
        (
            "clip.vision.patch_size",
            u32v(0),
            "clip.vision.patch_size = 0",
        ),
        (
            "clip.vision.spatial_merge_size",
            u32v(0),
            "clip.vision.spatial_merge_size = 0",
        ),
        (
            "clip.vision.attention.head_count",
            u32v(0),
            "clip.vision.attention.head_count = 0",
        ),
        (
            "clip.vision.attention.head_count",
            u32v(3),
            "not an even multiple",
        ),
        (
            "clip.vision.block_count",
            u32v(100_000),
            "clip.vision.block_count = 100000",
        ),
        (
            "clip.vision.block_count",
            u32v(3),
            "tensor v.blk.2.ln1.weight is missing",
        ),
        (
            "clip.vision.embedding_length",
            None,
            "clip.vision.embedding_length is missing",
        ),
        (
            "clip.vision.embedding_length",
            u32v(65),
            "not an even multiple",
        ),
        (
            "clip.vision.projection_dim",
            Some(MetaValue::Str("80".into())),
            "clip.vision.projection_dim is Str",
        ),
        (
            "clip.vision.attention.layer_norm_epsilon",
            Some(MetaValue::F32(-1.0)),
            "layer_norm_epsilon",
        ),
        (
            "clip.vision.attention.layer_norm_epsilon",
            Some(MetaValue::F32(f32::NAN)),
            "layer_norm_epsilon",
        ),
        (
            "clip.vision.image_mean",
            Some(MetaValue::Array(vec![MetaValue::F32(0.5); 2])),
            "clip.vision.image_mean",
        ),
        (
            "clip.vision.image_std",
            Some(MetaValue::Array(vec![MetaValue::F32(0.0); 3])),
            "clip.vision.image_std",
        ),
        (
            "clip.vision.image_min_pixels",
            u32v(1 << 20),
            "not a usable budget",
        ),
        (
            "clip.projector_type",
            Some(MetaValue::Str("ldp".into())),
            "clip.projector_type \"ldp\"",
        ),
        (
            "clip.vision.feed_forward_length",
            u32v(129),
            "tensor v.blk.0.ffn_up.weight has shape",
        ),
    ];
    for (key, value, needle) in mm_keys {
        let f = next("mmproj-key");
        with_key(&inp.mm, &f, key, value.clone());
        cases.push(case(
            "forged mmproj",
            format!("{key} = {value:?}"),
            Bin::Chat,
            vec![
                dec.clone(),
                "--mmproj".into(),
                s(&f),
                "-p".into(),
                "hi".into(),
            ],
            err(&[&s(&f), "invalid mmproj", needle]),
        ));
    }
    let mm_tensors: Vec<(&str, &str, fn(&TensorInfo) -> Option<TensorInfo>, &str)> = vec![
        (
            "transposed qkv",
            "v.blk.0.attn_qkv.weight",
            transposed,
            "tensor v.blk.0.attn_qkv.weight has shape [192, 64], expected [64, 192]",
        ),
        (
            "transposed merger",
            "mm.0.weight",
            |t| {
                let mut t = t.clone();
                t.ne = vec![128, 512];
                Some(t)
            },
            "tensor mm.0.weight has shape",
        ),
        (
            "no ffn_down",
            "v.blk.1.ffn_down.weight",
            |_| None,
            "tensor v.blk.1.ffn_down.weight is missing",
        ),
        (
            "fc1 without fc2",
            "mm.artemis_fc2.weight",
            |_| None,
            "needs both",
        ),
        (
            "non-square positions",
            "v.position_embd.weight",
            |t| {
                let mut t = t.clone();
                t.ne = vec![64, 60];
                Some(t)
            },
            "not a square grid",
        ),
        (
            "duplicate name",
            "v.blk.1.ln1.weight",
            |t| {
                let mut t = t.clone();
                t.name = "v.blk.0.ln1.weight".into();
                Some(t)
            },
            "appears twice",
        ),
        (
            "patch kernel for 4 channels",
            "v.patch_embd.weight.1",
            |t| {
                let mut t = t.clone();
                t.ne = vec![16, 16, 4, 48];
                Some(t)
            },
            "v.patch_embd.weight.1 has shape",
        ),
    ];
    for (tag, name, edit, needle) in mm_tensors {
        let f = next("mmproj-tensor");
        with_tensor(&inp.mm, &f, name, edit);
        cases.push(case(
            "forged mmproj",
            tag,
            Bin::Chat,
            vec![
                dec.clone(),
                "--mmproj".into(),
                s(&f),
                "-p".into(),
                "hi".into(),
            ],
            err(&[&s(&f), needle]),
        ));
    }

    // --- decoder hyperparameters and shapes, before llama.cpp loads or quantizes -------------
    let dec_keys: Vec<(&str, Option<MetaValue>, &str)> = vec![
        (
            "llama.attention.head_count",
            u32v(0),
            "llama.attention.head_count = 0",
        ),
        (
            "llama.attention.head_count_kv",
            u32v(0),
            "llama.attention.head_count_kv = 0",
        ),
        (
            "llama.attention.head_count",
            u32v(3),
            "not a multiple of head_count_kv",
        ),
        ("llama.block_count", u32v(5000), "llama.block_count = 5000"),
        (
            "llama.block_count",
            u32v(3),
            "tensor blk.2.attn_norm.weight is missing",
        ),
        (
            "llama.embedding_length",
            u32v(0),
            "llama.embedding_length = 0",
        ),
        ("llama.attention.key_length", u32v(0), "head size"),
        (
            "llama.rope.dimension_count",
            u32v(33),
            "llama.rope.dimension_count 33",
        ),
        (
            "tokenizer.ggml.eos_token_id",
            u32v(99_999),
            "tokenizer.ggml.eos_token_id",
        ),
        (
            "tokenizer.ggml.tokens",
            None,
            "tokenizer.ggml.tokens is missing",
        ),
        ("llama.context_length", u32v(0), "llama.context_length = 0"),
        (
            "llama.attention.layer_norm_rms_epsilon",
            Some(MetaValue::F32(f32::INFINITY)),
            "layer_norm_rms_epsilon",
        ),
        (
            "llama.feed_forward_length",
            Some(MetaValue::I32(-160)),
            "llama.feed_forward_length is I32(-160)",
        ),
    ];
    for (key, value, needle) in dec_keys {
        let f = next("decoder-key");
        with_key(&inp.dec, &f, key, value.clone());
        cases.push(case(
            "forged decoder",
            format!("chat: {key} = {value:?}"),
            Bin::Chat,
            vec![s(&f), "-p".into(), "hi".into()],
            err(&[&s(&f), "invalid model", needle]),
        ));
        cases.push(case(
            "forged decoder",
            format!("quantize: {key} = {value:?}"),
            Bin::Quantize,
            vec![s(&f), s(&dir.join("never.gguf")), "q8_0".into()],
            err(&[&s(&f), "invalid GGUF", needle]),
        ));
    }
    let f = next("decoder-q-transposed");
    with_tensor(&inp.dec, &f, "blk.0.attn_q.weight", transposed);
    cases.push(case(
        "forged decoder",
        "transposed attn_q (same element count)",
        Bin::Chat,
        vec![s(&f), "-p".into(), "hi".into()],
        err(&[&s(&f), "blk.0.attn_q.weight has shape"]),
    ));
    let f = next("decoder-no-embd");
    with_tensor(&inp.dec, &f, "token_embd.weight", |_| None);
    cases.push(case(
        "forged decoder",
        "no token_embd.weight",
        Bin::Quantize,
        vec![s(&f), s(&dir.join("never.gguf")), "q4_k_m".into()],
        err(&[&s(&f), "token_embd.weight is missing"]),
    ));

    // --- GGUF structure: every size from the file is checked arithmetic ----------------------
    let clip = [("general.architecture", "clip")];
    let structure: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "[2^31, 2^31] F32 (byte size wraps to 0)",
            raw_gguf(3, &clip, &[("t", &[1 << 31, 1 << 31], 0, 0)], &[]),
            "invalid shape or type",
        ),
        (
            "[2^62, 4] F32",
            raw_gguf(3, &clip, &[("t", &[1 << 62, 4], 0, 0)], &[]),
            "invalid shape or type",
        ),
        (
            "0-dimensional tensor",
            raw_gguf(3, &clip, &[("t", &[], 0, 0)], &[0; 32]),
            "shape []",
        ),
        (
            "zero-sized dimension",
            raw_gguf(3, &clip, &[("t", &[0, 4], 0, 0)], &[0; 32]),
            "shape [0, 4]",
        ),
        (
            "duplicate tensor names",
            raw_gguf(3, &clip, &[("t", &[8], 0, 0), ("t", &[8], 0, 32)], &[0; 64]),
            "tensor t appears twice",
        ),
        (
            "misaligned offset",
            raw_gguf(3, &clip, &[("t", &[8], 0, 4)], &[0; 64]),
            "not a multiple of the alignment",
        ),
        (
            "tensor past the end",
            raw_gguf(3, &clip, &[("t", &[1024], 0, 0)], &[0; 64]),
            "truncated",
        ),
        (
            "5 dimensions",
            raw_gguf(3, &clip, &[("t", &[1, 1, 1, 1, 1], 0, 0)], &[0; 32]),
            "5 dimensions",
        ),
        (
            "unknown tensor type",
            raw_gguf(3, &clip, &[("t", &[32], 9999, 0)], &[0; 64]),
            "invalid shape or type",
        ),
        ("version 99", raw_gguf(99, &clip, &[], &[]), "version"),
        (
            "not a GGUF",
            b"PK\x03\x04 this is a zip".to_vec(),
            "not a GGUF",
        ),
        ("empty file", Vec::new(), "magic"),
    ];
    for (tag, bytes, needle) in structure {
        let f = next("structure");
        std::fs::write(&f, bytes).unwrap();
        cases.push(case(
            "GGUF structure",
            format!("quantize: {tag}"),
            Bin::Quantize,
            vec![s(&f), s(&dir.join("never.gguf")), "q8_0".into()],
            err(&[&s(&f), needle]),
        ));
    }
    let mut huge_count = raw_gguf(3, &clip, &[], &[]);
    huge_count[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let f = next("structure");
    std::fs::write(&f, huge_count).unwrap();
    cases.push(case(
        "GGUF structure",
        "chat: tensor count 2^64-1",
        Bin::Chat,
        vec![
            dec.clone(),
            "--mmproj".into(),
            s(&f),
            "-p".into(),
            "hi".into(),
        ],
        err(&[&s(&f), "larger than the file"]),
    ));
    // NaN in an mmproj weight: the mmproj quantizer refuses instead of writing NaN scales
    let mut data = vec![0u8; 256];
    data[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    let f = next("nan");
    std::fs::write(
        &f,
        raw_gguf(3, &clip, &[("mm.0.weight", &[32, 2], 0, 0)], &data),
    )
    .unwrap();
    cases.push(case(
        "GGUF structure",
        "quantize: NaN in an mmproj weight",
        Bin::Quantize,
        vec![s(&f), s(&dir.join("never.gguf")), "q8_0".into()],
        err(&[&s(&f), "tensor mm.0.weight has a non-finite value"]),
    ));
    // --- chat templates: bounded rendering, parse errors caught at conversion ----------------
    let templates: Vec<(&str, &str, &str)> = vec![
        ("nested loops, 10^12 steps", "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}x{% endfor %}{% endfor %}{% endfor %}", "fuel"),
        ("endless recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion"),
        ("1e9-character string", "{{ 'x' * 1000000000 }}", "template"),
        ("does not parse", "{% for %}", "does not parse"),
        ("raises", "{{ raise_exception('no system role') }}", "template"),
    ];
    for (tag, source, needle) in templates {
        let f = next("template");
        with_key(
            &inp.dec,
            &f,
            "tokenizer.chat_template",
            Some(MetaValue::Str(source.into())),
        );
        cases.push(case(
            "chat template",
            tag,
            Bin::Chat,
            vec![s(&f), "-p".into(), "hi".into(), "-n".into(), "1".into()],
            err(&[&s(&f), needle]),
        ));
    }
    let ckpt = dir.join("ckpt-bad-template");
    std::fs::create_dir_all(&ckpt).unwrap();
    for e in std::fs::read_dir(&inp.tiny).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), ckpt.join(e.file_name())).unwrap();
    }
    std::fs::write(ckpt.join("chat_template.jinja"), "{% if %}broken").unwrap();
    cases.push(case(
        "chat template",
        "convert: template does not parse",
        Bin::Convert,
        vec![
            "--to".into(),
            "gguf".into(),
            s(&ckpt),
            "-o".into(),
            "out".into(),
        ],
        err(&["ckpt-bad-template", "does not parse"]),
    ));
    non_finite_cases(dir, inp, cases);
    config_cases(dir, inp, cases);
    llava_cases(dir, inp, cases);
    let _ = (mm, GgmlType::F32);
}

/// A copy of the tiny checkpoint with `value` written at element `index` of tensor `name`
/// (an f32 tensor of model.safetensors).
fn tiny_with_value(tiny: &Path, dst: &Path, name: &str, index: usize, value: f32) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(tiny).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let path = dst.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let start = header[name]["data_offsets"][0].as_u64().unwrap() as usize + 8 + n + index * 4;
    bytes[start..start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
}

/// A copy of the tiny checkpoint (weights hard-linked) with config.json edited.
fn tiny_with_config(tiny: &Path, dst: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    std::fs::create_dir_all(dst).unwrap();
    let mut edit = Some(edit);
    for e in std::fs::read_dir(tiny).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_name() == "config.json" {
            let mut cfg: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            if let Some(edit) = edit.take() {
                edit(&mut cfg);
            }
            std::fs::write(&to, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        } else if std::fs::hard_link(e.path(), &to).is_err() {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}

/// LLaVA checkpoints the converter must refuse rather than write files that run wrong.
fn llava_cases(dir: &Path, inp: &Inputs, cases: &mut Vec<Case>) {
    use serde_json::json;
    let llava = inp.tiny.parent().unwrap().join("llava_qwen3");
    let edits: Vec<(&str, Box<dyn FnOnce(&mut serde_json::Value)>, &str)> = vec![
        (
            "SigLIP tower",
            Box::new(|c| c["vision_config"]["model_type"] = json!("siglip_vision_model")),
            "siglip_vision_model",
        ),
        (
            "two feature layers",
            Box::new(|c| c["vision_feature_layer"] = json!([-2, -1])),
            "only one layer converts",
        ),
        (
            "feature layer past the tower",
            Box::new(|c| c["vision_feature_layer"] = json!(7)),
            "selects no block",
        ),
        (
            "strategy full",
            Box::new(|c| c["vision_feature_select_strategy"] = json!("full")),
            "\"full\" is not supported",
        ),
        (
            "LLaVA-NeXT pinpoints",
            Box::new(|c| c["image_grid_pinpoints"] = json!([[336, 672]])),
            "image_grid_pinpoints",
        ),
        (
            "tanh-free exact GELU tower",
            Box::new(|c| c["vision_config"]["hidden_act"] = json!("gelu")),
            "hidden_act \"gelu\"",
        ),
        (
            "projector silu",
            Box::new(|c| c["projector_hidden_act"] = json!("silu")),
            "projector_hidden_act",
        ),
        (
            "gemma decoder",
            Box::new(|c| c["text_config"]["model_type"] = json!("gemma")),
            "text_config.model_type \"gemma\"",
        ),
    ];
    for (i, (tag, edit, needle)) in edits.into_iter().enumerate() {
        let ckpt = dir.join(format!("ckpt-llava-{i}"));
        tiny_with_config(&llava, &ckpt, edit);
        cases.push(case(
            "LLaVA refusals",
            tag,
            Bin::Convert,
            vec![
                "--to".into(),
                "gguf".into(),
                s(&ckpt),
                "-o".into(),
                "out".into(),
                "--quiet".into(),
            ],
            err(&["config.json", needle]),
        ));
    }
    // processor config variants
    let pads: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "do_pad",
            json!({"image_processor": {"do_pad": true, "size": {"shortest_edge": 56}, "crop_size": {"height": 56, "width": 56}}}),
            "do_pad",
        ),
        (
            "bilinear",
            json!({"image_processor": {"resample": 2, "size": {"shortest_edge": 56}}}),
            "resample 2",
        ),
        (
            "crop != image size",
            json!({"image_processor": {"size": {"shortest_edge": 64}, "crop_size": {"height": 64, "width": 64}}}),
            "differs from the tower's image_size",
        ),
        (
            "height/width size",
            json!({"image_processor": {"size": {"height": 56, "width": 56}}}),
            "shortest_edge",
        ),
    ];
    for (i, (tag, pc, needle)) in pads.into_iter().enumerate() {
        let ckpt = dir.join(format!("ckpt-llava-proc-{i}"));
        tiny_with_config(&llava, &ckpt, |_| {});
        let p = ckpt.join("processor_config.json");
        std::fs::remove_file(&p).unwrap(); // a hard link to the fixture: never write through it
        std::fs::write(&p, pc.to_string()).unwrap();
        cases.push(case(
            "LLaVA refusals",
            tag,
            Bin::Convert,
            vec![
                "--to".into(),
                "gguf".into(),
                s(&ckpt),
                "-o".into(),
                "out".into(),
                "--quiet".into(),
            ],
            err(&["processor_config.json", needle]),
        ));
    }
}

fn config_cases(dir: &Path, inp: &Inputs, cases: &mut Vec<Case>) {
    use serde_json::json;
    let edits: Vec<(&str, Box<dyn FnOnce(&mut serde_json::Value)>, &str)> = vec![
        (
            "eos_token_id past the vocabulary",
            Box::new(|c| c["text_config"]["eos_token_id"] = json!(99_999)),
            "tokenizer.ggml.eos_token_id",
        ),
        (
            "max_position_embeddings 2^32+7",
            Box::new(|c| c["text_config"]["max_position_embeddings"] = json!(4_294_967_303u64)),
            "max_position_embeddings must be a positive integer below 2^32",
        ),
        (
            "negative rms_norm_eps",
            Box::new(|c| c["text_config"]["rms_norm_eps"] = json!(-1e-5)),
            "rms_norm_eps must be a positive number",
        ),
        (
            "rope_theta 1e300 (inf as f32)",
            Box::new(|c| c["text_config"]["rope_parameters"]["rope_theta"] = json!(1e300)),
            "rope_theta must be a positive number",
        ),
        (
            "zero attention heads",
            Box::new(|c| c["text_config"]["num_attention_heads"] = json!(0)),
            "num_attention_heads must be a positive integer",
        ),
        (
            "heads not a multiple of KV heads",
            Box::new(|c| c["text_config"]["num_key_value_heads"] = json!(3)),
            "num_key_value_heads 3",
        ),
        (
            "negative ViT layer_norm_eps",
            Box::new(|c| c["vision_config"]["layer_norm_eps"] = json!(-1.0)),
            "layer_norm_epsilon",
        ),
        (
            "hidden_size as a string",
            Box::new(|c| c["text_config"]["hidden_size"] = json!("80")),
            "hidden_size must be a positive integer",
        ),
        (
            "model_type unknown",
            Box::new(|c| c["model_type"] = json!("gemma3")),
            "unsupported model",
        ),
    ];
    for (i, (tag, edit, needle)) in edits.into_iter().enumerate() {
        let ckpt = dir.join(format!("ckpt-config-{i}"));
        tiny_with_config(&inp.tiny, &ckpt, edit);
        if i == 0 {
            // the config's id counts only when tokenizer_config.json names no eos_token
            let tc_path = ckpt.join("tokenizer_config.json");
            let mut tc: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&tc_path).unwrap()).unwrap();
            tc.as_object_mut().unwrap().remove("eos_token");
            std::fs::remove_file(&tc_path).unwrap(); // a hard link to the fixture: never write through it
            std::fs::write(&tc_path, serde_json::to_vec(&tc).unwrap()).unwrap();
        }
        cases.push(case(
            "config values",
            tag,
            Bin::Convert,
            vec![
                "--to".into(),
                "gguf".into(),
                s(&ckpt),
                "-o".into(),
                "out".into(),
                "--quiet".into(),
            ],
            err(&["config.json", needle]),
        ));
    }
    // --quantize checks what it can before the long conversion
    cases.push(case(
        "config values",
        "--mmproj-quantize q2_k (unsupported for mmproj)",
        Bin::Convert,
        vec![
            "--to".into(),
            "gguf".into(),
            s(&inp.tiny),
            "-o".into(),
            "out".into(),
            "--quantize".into(),
            "q8_0".into(),
            "--mmproj-quantize".into(),
            "q2_k".into(),
        ],
        err(&["--mmproj-quantize", "not q2_k"]),
    ));
}

fn non_finite_cases(dir: &Path, inp: &Inputs, cases: &mut Vec<Case>) {
    let down = "language_model.model.layers.0.mlp.down_proj.weight";
    let vit = "visual.blocks.0.attn.qkv.weight";
    let variants: Vec<(&str, &str, usize, f32)> = vec![
        ("nan-decoder", down, 170, f32::NAN),
        ("inf-decoder", down, 0, f32::INFINITY),
        ("neginf-vit", vit, 5, f32::NEG_INFINITY),
        ("big-decoder", down, 333, 1.0e6),
    ];
    for (tag, name, index, value) in variants {
        let ckpt = dir.join(format!("ckpt-{tag}"));
        tiny_with_value(&inp.tiny, &ckpt, name, index, value);
        let conv = |extra: &[&str]| {
            let mut a = vec![
                "--to".to_string(),
                "gguf".into(),
                s(&ckpt),
                "-o".into(),
                "out".into(),
                "--quiet".into(),
            ];
            a.extend(extra.iter().map(|x| x.to_string()));
            a
        };
        let row = index / if name == down { 160 } else { 64 };
        if value.is_finite() {
            // 1e6 fits f32 and bf16, not f16
            cases.push(case(
                "non-finite weights",
                format!("{tag} --outtype f16"),
                Bin::Convert,
                conv(&["--outtype", "f16"]),
                err(&[name, &format!("row {row}"), "beyond F16's range"]),
            ));
            cases.push(case(
                "non-finite weights",
                format!("{tag} --outtype q8_0"),
                Bin::Convert,
                conv(&["--outtype", "q8_0"]),
                Expect::Writes(vec![]),
            ));
            cases.push(case(
                "non-finite weights",
                format!("{tag} --outtype bf16"),
                Bin::Convert,
                conv(&["--outtype", "bf16"]),
                Expect::Writes(vec![]),
            ));
        } else {
            for outtype in ["f32", "f16", "q8_0"] {
                cases.push(case(
                    "non-finite weights",
                    format!("{tag} --outtype {outtype}"),
                    Bin::Convert,
                    conv(&["--outtype", outtype]),
                    err(&[name, &format!("row {row}"), "--allow-non-finite"]),
                ));
            }
            cases.push(case(
                "non-finite weights",
                format!("{tag} --quantize q8_0"),
                Bin::Convert,
                conv(&["--quantize", "q8_0"]),
                err(&[name, "--allow-non-finite"]),
            ));
            cases.push(case(
                "non-finite weights",
                format!("{tag} --allow-non-finite"),
                Bin::Convert,
                conv(&["--outtype", "f32", "--allow-non-finite"]),
                Expect::Writes(vec![]),
            ));
        }
    }
}
