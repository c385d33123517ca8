//! Reading files a user (or a client) names: regular files only, opened without blocking (a FIFO
//! or a device never hangs or streams forever), with a size cap checked before reading.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why an input file was refused; the message is meant to follow "PATH: ".
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    #[error("{size} bytes, more than the {max} allowed")]
    TooLarge { size: u64, max: u64 },
}

fn kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading if it is a regular file (after following links). The open itself
/// cannot block: O_NONBLOCK makes a FIFO open return at once, and the type is checked on the
/// opened descriptor, so a swap between check and use changes nothing.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(InputError::NotRegular(kind(meta.file_type())));
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path)?;
    if size > max {
        return Err(InputError::TooLarge { size, max });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // take(): a file that grows while we read still stops at the cap
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(InputError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

impl From<InputError> for std::io::Error {
    fn from(e: InputError) -> std::io::Error {
        match e {
            InputError::Io(io) => io,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

/// Caps for the kinds of files we read whole.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// [`open_regular`] for callers whose errors carry an `io::Error`.
pub fn open_regular_io(path: &Path) -> std::io::Result<File> {
    Ok(open_regular(path)?.0)
}

/// [`read_regular`] for callers whose errors carry an `io::Error`.
pub fn read_regular_io(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    Ok(read_regular(path, max)?)
}

/// A whole UTF-8 text file (JSON, templates) of at most [`MAX_JSON_BYTES`].
pub fn read_text_io(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_regular_io(path, MAX_JSON_BYTES)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}
