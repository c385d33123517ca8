//! Temp files and directories to remove if the process is interrupted (Ctrl-C) before they are
//! committed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

pub fn register(path: &Path) {
    if let Ok(mut v) = PENDING.lock() {
        v.push(path.to_path_buf());
    }
}

pub fn unregister(path: &Path) {
    if let Ok(mut v) = PENDING.lock() {
        v.retain(|p| p != path);
    }
}

/// Removes every registered temp file or directory. Called from the Ctrl-C handler.
pub fn remove_all() {
    if let Ok(mut v) = PENDING.lock() {
        for p in v.drain(..) {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
