//! GGUF v3 reading and writing. Knows nothing about Artemis.
//!
//! Layout (ggml/docs/gguf.md): magic, version, tensor count, kv count, kv pairs, tensor infos,
//! padding to `general.alignment`, tensor data (each tensor padded to the alignment).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use byteorder::{LittleEndian as LE, WriteBytesExt};

pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";
pub const GGUF_VERSION: u32 = 3;
/// ggml/include/gguf.h: GGUF_DEFAULT_ALIGNMENT.
pub const GGUF_DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value, one variant per GGUF value type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    /// Arrays are homogeneous in GGUF; every element has the same variant.
    Array(Vec<MetaValue>),
}

impl MetaValue {
    /// The GGUF value-type id (gguf.h `enum gguf_type`).
    fn type_id(&self) -> u32 {
        match self {
            MetaValue::U8(_) => 0,
            MetaValue::I8(_) => 1,
            MetaValue::U16(_) => 2,
            MetaValue::I16(_) => 3,
            MetaValue::U32(_) => 4,
            MetaValue::I32(_) => 5,
            MetaValue::F32(_) => 6,
            MetaValue::Bool(_) => 7,
            MetaValue::Str(_) => 8,
            MetaValue::Array(_) => 9,
            MetaValue::U64(_) => 10,
            MetaValue::I64(_) => 11,
            MetaValue::F64(_) => 12,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match *self {
            MetaValue::U32(v) => Some(v),
            MetaValue::I32(v) => u32::try_from(v).ok(),
            MetaValue::U64(v) => u32::try_from(v).ok(),
            MetaValue::U16(v) => Some(v as u32),
            MetaValue::U8(v) => Some(v as u32),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetaValue::F32(v) => Some(v),
            MetaValue::F64(v) => Some(v as f32),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }

    fn write_payload<W: Write>(&self, w: &mut W) -> io::Result<()> {
        match self {
            MetaValue::U8(v) => w.write_u8(*v),
            MetaValue::I8(v) => w.write_i8(*v),
            MetaValue::U16(v) => w.write_u16::<LE>(*v),
            MetaValue::I16(v) => w.write_i16::<LE>(*v),
            MetaValue::U32(v) => w.write_u32::<LE>(*v),
            MetaValue::I32(v) => w.write_i32::<LE>(*v),
            MetaValue::U64(v) => w.write_u64::<LE>(*v),
            MetaValue::I64(v) => w.write_i64::<LE>(*v),
            MetaValue::F32(v) => w.write_f32::<LE>(*v),
            MetaValue::F64(v) => w.write_f64::<LE>(*v),
            MetaValue::Bool(v) => w.write_u8(*v as u8),
            MetaValue::Str(s) => write_str(w, s),
            MetaValue::Array(items) => {
                let elem_type = items.first().map(MetaValue::type_id).unwrap_or(4);
                if items
                    .iter()
                    .any(|v| v.type_id() != elem_type || matches!(v, MetaValue::Array(_)))
                {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "GGUF arrays must be flat and homogeneous",
                    ));
                }
                w.write_u32::<LE>(elem_type)?;
                w.write_u64::<LE>(items.len() as u64)?;
                items.iter().try_for_each(|v| v.write_payload(w))
            }
        }
    }
}

fn write_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    w.write_u64::<LE>(s.len() as u64)?;
    w.write_all(s.as_bytes())
}

/// The ggml tensor types this project reads or writes directly (ggml.h `enum ggml_type`).
/// Quantized files written by llama.cpp may contain others; those read back as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q8_0,
    BF16,
    /// Any other ggml type id, with its block geometry looked up in [`GgmlType::block`].
    Other(u32),
}

impl GgmlType {
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q8_0 => 8,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }
    pub fn from_id(id: u32) -> GgmlType {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }
    /// (elements per block, bytes per block), from ggml.c `type_traits`. None for unknown ids.
    pub fn block(self) -> Option<(u64, u64)> {
        Some(match self.id() {
            0 => (1, 4),
            1 | 30 => (1, 2),
            2 => (32, 18),   // Q4_0
            3 => (32, 20),   // Q4_1
            6 => (32, 22),   // Q5_0
            7 => (32, 24),   // Q5_1
            8 => (32, 34),   // Q8_0
            9 => (32, 36),   // Q8_1
            10 => (256, 84), // Q2_K
            11 => (256, 110),
            12 => (256, 144), // Q4_K
            13 => (256, 176), // Q5_K
            14 => (256, 210), // Q6_K
            15 => (256, 292), // Q8_K
            16 => (256, 66),  // IQ2_XXS
            17 => (256, 74),  // IQ2_XS
            18 => (256, 98),  // IQ3_XXS
            19 => (256, 50),  // IQ1_S
            20 => (32, 18),   // IQ4_NL
            21 => (256, 110), // IQ3_S
            22 => (256, 82),  // IQ2_S
            23 => (256, 136), // IQ4_XS
            24 => (1, 1),     // I8
            25 => (1, 2),     // I16
            26 => (1, 4),     // I32
            27 => (1, 8),     // I64
            28 => (1, 8),     // F64
            29 => (256, 56),  // IQ1_M
            34 => (256, 54),  // TQ1_0
            35 => (256, 66),  // TQ2_0
            39 => (32, 17),   // MXFP4
            _ => return None,
        })
    }
    pub fn name(self) -> String {
        match self {
            GgmlType::F32 => "F32".into(),
            GgmlType::F16 => "F16".into(),
            GgmlType::Q8_0 => "Q8_0".into(),
            GgmlType::BF16 => "BF16".into(),
            GgmlType::Other(id) => format!("type{id}"),
        }
    }
    /// Bytes for `n_elements` laid out as rows of `row_len`; None when the row does not fill blocks.
    pub fn nbytes(self, row_len: u64, n_elements: u64) -> Option<u64> {
        let (blk, bytes) = self.block()?;
        if row_len == 0 || row_len % blk != 0 {
            return None;
        }
        // checked: a hostile header's [2^31, 2^31] F32 must not wrap to 0 bytes
        (n_elements / blk).checked_mul(bytes)
    }
}

/// `general.alignment` if set, else the GGUF default.
fn alignment_of(metadata: &[(String, MetaValue)]) -> u64 {
    metadata
        .iter()
        .find(|(k, _)| k == "general.alignment")
        .and_then(|(_, v)| v.as_u32())
        .map(u64::from)
        .unwrap_or(GGUF_DEFAULT_ALIGNMENT)
}

pub fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// One tensor's header entry. `ne` is in ggml order (innermost first).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub ne: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }
    pub fn nbytes(&self) -> Option<u64> {
        self.ggml_type
            .nbytes(self.ne.first().copied().unwrap_or(1), self.n_elements())
    }
}

/// Header of a GGUF file to be written: metadata, then tensor infos whose offsets are assigned
/// here, in the order given. The data must then be streamed in the same order.
pub struct GgufHeader {
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
}

impl GgufHeader {
    /// Lays tensors out back to back at `alignment`. Each entry is (name, ne, type, nbytes).
    pub fn new(
        metadata: Vec<(String, MetaValue)>,
        tensors: Vec<(String, Vec<u64>, GgmlType, u64)>,
    ) -> GgufHeader {
        let alignment = alignment_of(&metadata);
        let mut offset = 0;
        let tensors = tensors
            .into_iter()
            .map(|(name, ne, ggml_type, nbytes)| {
                let info = TensorInfo {
                    name,
                    ne,
                    ggml_type,
                    offset,
                };
                offset = align_up(offset + nbytes, alignment);
                info
            })
            .collect();
        GgufHeader {
            metadata,
            tensors,
            alignment,
        }
    }

    /// Writes everything up to (and including the padding before) the data section; returns the
    /// number of bytes written.
    pub fn write<W: Write>(&self, w: &mut W) -> io::Result<u64> {
        let mut buf = Vec::new();
        buf.write_all(GGUF_MAGIC)?;
        buf.write_u32::<LE>(GGUF_VERSION)?;
        buf.write_u64::<LE>(self.tensors.len() as u64)?;
        buf.write_u64::<LE>(self.metadata.len() as u64)?;
        for (key, value) in &self.metadata {
            write_str(&mut buf, key)?;
            buf.write_u32::<LE>(value.type_id())?;
            value.write_payload(&mut buf)?;
        }
        for t in &self.tensors {
            write_str(&mut buf, &t.name)?;
            buf.write_u32::<LE>(t.ne.len() as u32)?;
            for &n in &t.ne {
                buf.write_u64::<LE>(n)?;
            }
            buf.write_u32::<LE>(t.ggml_type.id())?;
            buf.write_u64::<LE>(t.offset)?;
        }
        let padded = align_up(buf.len() as u64, self.alignment);
        buf.resize(padded as usize, 0);
        w.write_all(&buf)?;
        Ok(padded)
    }

    /// Total file size once all tensor data is written.
    pub fn file_size(&self) -> io::Result<u64> {
        let header = self.write(&mut io::sink())?;
        let data = self
            .tensors
            .last()
            .map(|t| align_up(t.offset + t.nbytes().unwrap_or(0), self.alignment))
            .unwrap_or(0);
        Ok(header + data)
    }
}

/// Errors reading a GGUF file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a GGUF file (magic {magic:?})")]
    NotGguf { path: PathBuf, magic: [u8; 4] },
    #[error("{path}: unsupported GGUF version {version} (supported: 2, 3)")]
    Version { path: PathBuf, version: u32 },
    #[error("{path}: corrupt GGUF: {what} at byte {at}")]
    Corrupt {
        path: PathBuf,
        what: String,
        at: u64,
    },
}

/// A parsed GGUF file: metadata and tensor infos, with the data section's absolute offset.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: Vec<(String, MetaValue)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    pub data_offset: u64,
    pub file_size: u64,
}

impl GgufFile {
    /// Parses the header of `path`. Every length read from the file is checked against the bytes
    /// that remain, so a hostile file cannot make us allocate more than its own size.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io_err = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = crate::input::open_regular_io(path).map_err(io_err)?;
        // SAFETY: read-only map; we only read it while `file` stays unmodified by us.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
        Self::parse(path, &map)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<GgufFile, GgufError> {
        let mut r = Reader {
            path,
            bytes,
            pos: 0,
        };
        let magic: [u8; 4] = r.take(4, "magic")?.try_into().unwrap_or([0; 4]);
        if &magic != GGUF_MAGIC {
            return Err(GgufError::NotGguf {
                path: path.to_path_buf(),
                magic,
            });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version {
                path: path.to_path_buf(),
                version,
            });
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;
        // Each kv needs at least 12 bytes and each tensor info at least 24: bound the counts.
        if n_kv.saturating_mul(12) > r.remaining() || n_tensors.saturating_mul(24) > r.remaining() {
            return Err(r.corrupt("tensor or metadata count larger than the file"));
        }
        let mut metadata = Vec::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key = r.string("metadata key")?;
            let ty = r.u32("value type")?;
            let value = r.value(ty, 0)?;
            metadata.push((key, value));
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = r.string("tensor name")?;
            let n_dims = r.u32("tensor n_dims")?;
            if n_dims > 4 {
                return Err(r.corrupt(&format!("tensor {name} has {n_dims} dimensions (max 4)")));
            }
            let ne = (0..n_dims)
                .map(|_| r.u64("tensor dim"))
                .collect::<Result<Vec<_>, _>>()?;
            let ggml_type = GgmlType::from_id(r.u32("tensor type")?);
            let offset = r.u64("tensor offset")?;
            tensors.push(TensorInfo {
                name,
                ne,
                ggml_type,
                offset,
            });
        }
        let alignment = alignment_of(&metadata);
        if alignment == 0 || !alignment.is_power_of_two() {
            return Err(r.corrupt(&format!(
                "general.alignment {alignment} is not a power of two"
            )));
        }
        let data_offset = align_up(r.pos, alignment);
        let file_size = bytes.len() as u64;
        let mut seen = std::collections::HashSet::new();
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(r.corrupt(&format!("tensor {} appears twice", t.name)));
            }
            if t.ne.is_empty() || t.ne.iter().any(|&n| n == 0 || n > i64::MAX as u64) {
                return Err(r.corrupt(&format!("tensor {} has shape {:?}: every tensor needs 1 to 4 dimensions of 1 to 2^63-1 elements", t.name, t.ne)));
            }
            if t.offset % alignment != 0 {
                return Err(r.corrupt(&format!("tensor {} starts at data offset {}, not a multiple of the alignment {alignment}", t.name, t.offset)));
            }
            let nbytes =
                t.ne.iter()
                    .try_fold(1u64, |a, &n| a.checked_mul(n))
                    .and_then(|_| t.nbytes());
            let end = nbytes.and_then(|n| data_offset.checked_add(t.offset)?.checked_add(n));
            match end {
                Some(end) if end <= file_size => {}
                Some(end) => {
                    return Err(r.corrupt(&format!(
                        "tensor {} ends at byte {end} but the file has {file_size} (truncated?)",
                        t.name
                    )))
                }
                None => {
                    return Err(
                        r.corrupt(&format!("tensor {} has an invalid shape or type", t.name))
                    )
                }
            }
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
            file_size,
        })
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(MetaValue::as_str)
    }
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: u64,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        self.bytes.len() as u64 - self.pos
    }
    fn corrupt(&self, what: &str) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_path_buf(),
            what: what.to_string(),
            at: self.pos,
        }
    }
    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(self.corrupt(&format!("{what} runs past the end of the file")));
        }
        let s = &self.bytes[self.pos as usize..(self.pos + n) as usize];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        let s = self.take(n, what)?;
        String::from_utf8(s.to_vec()).map_err(|_| self.corrupt(&format!("{what} is not UTF-8")))
    }
    fn value(&mut self, ty: u32, depth: u32) -> Result<MetaValue, GgufError> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>("u8")?[0]),
            1 => MetaValue::I8(self.array::<1>("i8")?[0] as i8),
            2 => MetaValue::U16(u16::from_le_bytes(self.array("u16")?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array("i16")?)),
            4 => MetaValue::U32(self.u32("u32")?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array("i32")?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array("f32")?)),
            7 => MetaValue::Bool(self.array::<1>("bool")?[0] != 0),
            8 => MetaValue::Str(self.string("string value")?),
            9 if depth == 0 => {
                let elem = self.u32("array type")?;
                let n = self.u64("array length")?;
                // Every element takes at least one byte: bound the allocation by the file.
                if n > self.remaining() {
                    return Err(
                        self.corrupt(&format!("array of {n} elements is longer than the file"))
                    );
                }
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1)?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64("u64")?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array("i64")?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array("f64")?)),
            other => return Err(self.corrupt(&format!("unknown metadata value type {other}"))),
        })
    }
}

/// Writes a file atomically: content goes to a temp file beside `dest`
/// (`<dest>.<pid>.artemis.tmp`, created exclusively, never through a link), is fsynced and
/// renamed over `dest` only on commit; an existing `dest` that is not a regular file is refused.
/// On error (or drop without commit) the temp file is removed; see [`crate::cleanup`].
pub struct AtomicFile {
    tmp: crate::cleanup::TempFile,
    dest: PathBuf,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> io::Result<AtomicFile> {
        crate::cleanup::check_replaceable(dest)?;
        let tmp = crate::cleanup::TempFile::create(&crate::cleanup::temp_path_for(dest))?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.file()
    }
    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }
    pub fn dest(&self) -> &Path {
        &self.dest
    }
    /// Flushes the temp file to disk (commit does it too; this lets a caller sync before
    /// deciding to commit).
    pub fn sync(&mut self) -> io::Result<()> {
        self.file().sync_all()
    }
    pub fn commit(self) -> io::Result<()> {
        Self::commit_all(vec![self]).map_err(|(_, e)| e)
    }
    /// Commits several files as one: all are in place afterwards, or none (renames already made
    /// are undone). On failure, the destination that failed and why.
    pub fn commit_all(mut files: Vec<AtomicFile>) -> Result<(), (PathBuf, io::Error)> {
        for f in &mut files {
            f.sync().map_err(|e| (f.dest.clone(), e))?;
        }
        let moves: Vec<(PathBuf, PathBuf)> = files
            .iter()
            .map(|f| (f.tmp.path().to_path_buf(), f.dest.clone()))
            .collect();
        crate::cleanup::commit_paths(&moves)?;
        for f in files {
            f.tmp.disarm();
        }
        Ok(())
    }
}

/// Copies `src` to `dst` (atomically) with edited metadata and a subset of its tensors, byte for
/// byte otherwise. For tools and tests that derive variants of a file (e.g. a fork-style mmproj).
pub fn copy_with(
    src: &Path,
    dst: &Path,
    edit_metadata: impl FnOnce(Vec<(String, MetaValue)>) -> Vec<(String, MetaValue)>,
    keep: impl Fn(&TensorInfo) -> bool,
) -> Result<(), GgufError> {
    rewrite(src, dst, edit_metadata, |t| keep(t).then(|| t.clone()))
}

/// [`copy_with`] that may also rename, reshape or retype tensor headers (`edit` returns the new
/// header, None drops the tensor); each tensor's bytes are copied unchanged. For building test
/// corpora of inconsistent files.
pub fn rewrite(
    src: &Path,
    dst: &Path,
    edit_metadata: impl FnOnce(Vec<(String, MetaValue)>) -> Vec<(String, MetaValue)>,
    edit: impl Fn(&TensorInfo) -> Option<TensorInfo>,
) -> Result<(), GgufError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GgufError::Io { path, source }
    };
    let g = GgufFile::open(src)?;
    let bytes = std::fs::read(src).map_err(io(src))?;
    let kept: Vec<(&TensorInfo, TensorInfo)> = g
        .tensors
        .iter()
        .filter_map(|t| edit(t).map(|new| (t, new)))
        .collect();
    let header = GgufHeader::new(
        edit_metadata(g.metadata.clone()),
        kept.iter()
            .map(|(t, new)| {
                (
                    new.name.clone(),
                    new.ne.clone(),
                    new.ggml_type,
                    t.nbytes().unwrap_or(0),
                )
            })
            .collect(),
    );
    let mut out = AtomicFile::create(dst).map_err(io(dst))?;
    {
        let mut w = std::io::BufWriter::new(out.file());
        let start = header.write(&mut w).map_err(io(dst))?;
        let mut pos = start;
        for ((t, _), info) in kept.iter().zip(&header.tensors) {
            let from = (g.data_offset + t.offset) as usize;
            let n = t.nbytes().unwrap_or(0) as usize;
            w.write_all(&vec![0u8; (start + info.offset - pos) as usize])
                .map_err(io(dst))?;
            w.write_all(&bytes[from..from + n]).map_err(io(dst))?;
            pos = start + info.offset + n as u64;
        }
        w.write_all(&vec![
            0u8;
            (align_up(pos - start, header.alignment) + start - pos)
                as usize
        ])
        .map_err(io(dst))?;
        w.flush().map_err(io(dst))?;
    }
    out.commit().map_err(io(dst))
}
