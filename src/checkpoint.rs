//! A Hugging Face checkpoint directory: `config.json` plus safetensors weights, single-file or
//! sharded (`model.safetensors.index.json`), memory-mapped and read lazily, one tensor at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

/// Errors reading a checkpoint. Every variant names the file it is about.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("while reading shard {path}: {message}")]
    Shard { path: PathBuf, message: String },
    #[error(
        "{dir}: no weights found (expected model.safetensors or model.safetensors.index.json)"
    )]
    NoWeights { dir: PathBuf },
    #[error("{path}: tensor {name} has dtype {dtype}; supported: F32, F16, BF16")]
    Dtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },
}

/// Source element type of a checkpoint tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcDtype {
    F32,
    F16,
    BF16,
}

impl SrcDtype {
    pub fn size(self) -> usize {
        match self {
            SrcDtype::F32 => 4,
            SrcDtype::F16 | SrcDtype::BF16 => 2,
        }
    }
}

struct Shard {
    path: PathBuf,
    map: memmap2::Mmap,
}

/// Where a tensor lives: shard index, dtype, shape, absolute byte range.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    pub shard: usize,
    pub dtype: SrcDtype,
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

impl TensorEntry {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A borrowed view of one tensor's raw little-endian data.
#[derive(Clone, Copy)]
pub struct TensorData<'a> {
    pub dtype: SrcDtype,
    pub bytes: &'a [u8],
}

impl<'a> TensorData<'a> {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// Element `i` as f32 (exact for every source dtype).
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        let s = self.dtype.size();
        let b = &self.bytes[i * s..(i + 1) * s];
        match self.dtype {
            SrcDtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            SrcDtype::F16 => f16::from_le_bytes([b[0], b[1]]).to_f32(),
            SrcDtype::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        }
    }
    /// Elements `[start, start + out.len())` as f32.
    pub fn read_f32(&self, start: usize, out: &mut [f32]) {
        let s = self.dtype.size();
        let bytes = &self.bytes[start * s..(start + out.len()) * s];
        match self.dtype {
            SrcDtype::F32 => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            SrcDtype::F16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| *o = f16::from_le_bytes([b[0], b[1]]).to_f32()),
            // bf16 is the upper half of an f32: widening is exact and needs no table.
            SrcDtype::BF16 => out
                .iter_mut()
                .zip(bytes.chunks_exact(2))
                .for_each(|(o, b)| {
                    *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
                }),
        }
    }

    /// The raw little-endian bytes of elements `[start, start + n)`.
    pub fn raw(&self, start: usize, n: usize) -> &'a [u8] {
        let s = self.dtype.size();
        &self.bytes[start * s..(start + n) * s]
    }
}

/// An opened checkpoint directory.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, TensorEntry>,
}

pub fn read_json(path: &Path) -> Result<serde_json::Value, CheckpointError> {
    let text = crate::input::read_text_io(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| CheckpointError::Json {
        path: path.to_path_buf(),
        source,
    })
}

impl Checkpoint {
    pub fn open(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        if !dir.is_dir() {
            let message = if dir.exists() {
                "not a directory (expected a checkpoint directory)"
            } else {
                "no such checkpoint directory"
            };
            return Err(CheckpointError::Invalid {
                path: dir.to_path_buf(),
                message: message.into(),
            });
        }
        let config_path = dir.join("config.json");
        let config = read_json(&config_path)?;
        if !config.is_object() {
            return Err(CheckpointError::Invalid {
                path: config_path,
                message: "expected a JSON object".into(),
            });
        }
        let shard_files = Self::shard_files(dir)?;
        let mut shards = Vec::new();
        let mut tensors = BTreeMap::new();
        for (index, (path, expected)) in shard_files.into_iter().enumerate() {
            let (shard, entries) = Self::open_shard(&path, index)?;
            for (name, entry) in entries {
                if let Some(expected) = &expected {
                    if !expected.contains(&name) {
                        return Err(CheckpointError::Invalid {
                            path: dir.join("model.safetensors.index.json"),
                            message: format!(
                                "tensor {name} is in {} but the index puts it elsewhere",
                                path.display()
                            ),
                        });
                    }
                }
                if tensors.insert(name.clone(), entry).is_some() {
                    return Err(CheckpointError::Shard {
                        path,
                        message: format!("tensor {name} appears in two shards"),
                    });
                }
            }
            if let Some(expected) = expected {
                if let Some(missing) = expected.iter().find(|n| !tensors.contains_key(*n)) {
                    return Err(CheckpointError::Shard {
                        path: shard.path,
                        message: format!(
                            "tensor {missing} is listed in the index but missing from this shard"
                        ),
                    });
                }
            }
            shards.push(shard);
        }
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            shards,
            tensors,
        })
    }

    /// (shard path, tensors the index assigns to it) in shard order.
    #[allow(clippy::type_complexity)]
    fn shard_files(dir: &Path) -> Result<Vec<(PathBuf, Option<Vec<String>>)>, CheckpointError> {
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.is_file() {
            let index = read_json(&index_path)?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| CheckpointError::Invalid {
                    path: index_path.clone(),
                    message: "missing \"weight_map\" object".into(),
                })?;
            let mut by_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (name, file) in map {
                let file = file.as_str().ok_or_else(|| CheckpointError::Invalid {
                    path: index_path.clone(),
                    message: format!("weight_map entry for {name} is not a file name"),
                })?;
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(CheckpointError::Invalid {
                        path: index_path.clone(),
                        message: format!("shard name {file:?} must be a plain file name"),
                    });
                }
                by_file
                    .entry(file.to_string())
                    .or_default()
                    .push(name.clone());
            }
            return Ok(by_file
                .into_iter()
                .map(|(f, names)| (dir.join(f), Some(names)))
                .collect());
        }
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Ok(vec![(single, None)]);
        }
        Err(CheckpointError::NoWeights {
            dir: dir.to_path_buf(),
        })
    }

    fn open_shard(
        path: &Path,
        index: usize,
    ) -> Result<(Shard, Vec<(String, TensorEntry)>), CheckpointError> {
        let file = crate::input::open_regular_io(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // SAFETY: read-only mapping of a file we do not modify.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Tensors are read front to back: let the kernel read ahead.
        let _ = map.advise(memmap2::Advice::Sequential);
        let shard_err = |message: String| CheckpointError::Shard {
            path: path.to_path_buf(),
            message,
        };
        let (header_len, metadata): (usize, Metadata) = SafeTensors::read_metadata(&map).map_err(|e| match e {
            safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                shard_err(format!("file size {} does not match its header (truncated or padded shard)", map.len()))
            }
            safetensors::SafeTensorError::InvalidHeaderLength | safetensors::SafeTensorError::HeaderTooSmall => {
                shard_err(format!("header length runs past the end of the file ({} bytes): truncated or not safetensors", map.len()))
            }
            other => shard_err(format!("corrupt header: {other}")),
        })?;
        let data_start = 8 + header_len;
        let mut entries = Vec::new();
        for (name, info) in metadata.tensors() {
            let dtype = match info.dtype {
                Dtype::F32 => SrcDtype::F32,
                Dtype::F16 => SrcDtype::F16,
                Dtype::BF16 => SrcDtype::BF16,
                other => {
                    return Err(CheckpointError::Dtype {
                        path: path.to_path_buf(),
                        name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            let (s, e) = info.data_offsets;
            let start = data_start
                .checked_add(s)
                .ok_or_else(|| shard_err(format!("tensor {name}: offsets out of range")))?;
            let end = data_start
                .checked_add(e)
                .ok_or_else(|| shard_err(format!("tensor {name}: offsets out of range")))?;
            if end > map.len() || start > end {
                return Err(shard_err(format!(
                    "tensor {name}: offsets [{s}, {e}) out of range"
                )));
            }
            entries.push((
                name,
                TensorEntry {
                    shard: index,
                    dtype,
                    shape: info.shape.clone(),
                    start,
                    end,
                },
            ));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((
            Shard {
                path: path.to_path_buf(),
                map,
            },
            entries,
        ))
    }

    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.tensors.get(name)
    }
    pub fn data(&self, entry: &TensorEntry) -> TensorData<'_> {
        TensorData {
            dtype: entry.dtype,
            bytes: &self.shards[entry.shard].map[entry.start..entry.end],
        }
    }
    /// Drops the tensor's pages from this process's mapping once it has been converted, so the
    /// resident set stays bounded by the work window instead of growing to the model size (the
    /// pages stay in the page cache and are re-read from the file if touched again).
    pub fn release(&self, entry: &TensorEntry) {
        self.release_elements(entry, 0, entry.n_elements());
    }

    /// [`Checkpoint::release`] for the elements `[from, to)` of a tensor.
    pub fn release_elements(&self, entry: &TensorEntry, from: usize, to: usize) {
        let map = &self.shards[entry.shard].map;
        let size = entry.dtype.size();
        let start = entry.start + from * size;
        let end = (entry.start + to * size).min(entry.end);
        if end > start {
            // SAFETY: a read-only private file mapping; after MADV_DONTNEED an access re-faults
            // the same bytes from the unchanged file, so no reference can observe different data.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
    pub fn shard_path(&self, entry: &TensorEntry) -> &Path {
        &self.shards[entry.shard].path
    }
    pub fn shard_paths(&self) -> impl Iterator<Item = &Path> {
        self.shards.iter().map(|s| s.path.as_path())
    }
    /// The most common source dtype of the floating-point weights (for `--outtype auto`).
    pub fn dominant_dtype(&self) -> Option<SrcDtype> {
        let mut counts = [0usize; 3];
        for e in self.tensors.values() {
            counts[e.dtype as usize] += e.end - e.start;
        }
        let best = (0..3).max_by_key(|&i| counts[i])?;
        (counts[best] > 0).then_some([SrcDtype::F32, SrcDtype::F16, SrcDtype::BF16][best])
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}
