//! Everything a run writes before it is complete, and how it disappears when the run does not
//! complete: temp files and directories are created here (never following or replacing anything
//! that is already there), committed here (all outputs of a run or none), and removed here — by
//! the drop of their guards on an error, by the signal handler on SIGINT/SIGTERM/SIGHUP, and, after
//! a SIGKILL, by the next run that writes into the same directory ([`sweep_stale`]).
//!
//! Creation, commit and the signal handler take one lock, so a signal can never land between the
//! creation of a temp file and its registration (the handler exits while holding the lock).
//! Each temp file or directory carries an exclusive `flock` for its owner's lifetime; the kernel
//! drops it when the owner dies, which is how a later run tells a stale temp from a live one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Suffix of every temp file (`<output name>.<pid>.artemis.tmp`).
pub const TEMP_FILE_SUFFIX: &str = ".artemis.tmp";
/// Prefix of run-scoped temp directories (`.artemis-run-<pid>.tmp`).
pub const TEMP_DIR_PREFIX: &str = ".artemis-run-";
const LOCK_FILE: &str = ".lock";

struct State {
    pending: Vec<PathBuf>,
    /// Directories this run created for its outputs: removed on interruption if still empty.
    created_dirs: Vec<PathBuf>,
    shutting_down: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    pending: Vec::new(),
    created_dirs: Vec::new(),
    shutting_down: false,
});

/// Records output directories this run created (deepest first), so that an interruption removes
/// them again when they are still empty.
pub fn note_created_dirs(dirs: &[PathBuf]) {
    state().created_dirs.extend_from_slice(dirs);
}

/// The run completed (or cleaned up itself): forget these directories.
pub fn forget_created_dirs(dirs: &[PathBuf]) {
    state().created_dirs.retain(|d| !dirs.contains(d));
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

fn new_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(path)
}

/// The temp path for `dest`: `<dest>.<pid>.artemis.tmp`, in the same directory.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}{TEMP_FILE_SUFFIX}", std::process::id()));
    dest.with_file_name(name)
}

/// A temp file of this run: removed on drop unless committed.
pub struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    /// Creates `path` exclusively (an existing file, link or FIFO there is an error, never
    /// written through), locks it and registers it, in one step with respect to signals.
    pub fn create(path: &Path) -> io::Result<TempFile> {
        let mut st = state();
        if st.shutting_down {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        let file = new_file(path)?;
        lock_exclusive(&file)?;
        st.pending.push(path.to_path_buf());
        Ok(TempFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("temp file used after commit")
    }
    /// Gives up the guard without removing the file (after [`commit_paths`] moved it).
    pub fn disarm(mut self) {
        self.file.take();
        unregister(&self.path);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
            unregister(&self.path);
        }
    }
}

/// A run-scoped temp directory (`.artemis-run-<pid>.tmp` in `parent`), removed with its contents
/// on drop.
pub struct TempDir {
    path: PathBuf,
    _lock: File,
}

impl TempDir {
    pub fn create(parent: &Path) -> io::Result<TempDir> {
        let path = parent.join(format!("{TEMP_DIR_PREFIX}{}.tmp", std::process::id()));
        let mut st = state();
        if st.shutting_down {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
        }
        std::fs::create_dir(&path)?;
        let lock = match new_file(&path.join(LOCK_FILE)).and_then(|f| lock_exclusive(&f).map(|_| f))
        {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                return Err(e);
            }
        };
        st.pending.push(path.clone());
        Ok(TempDir { path, _lock: lock })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        unregister(&self.path);
    }
}

fn unregister(path: &Path) {
    state().pending.retain(|p| p != path);
}

/// Why an existing `dest` may not be replaced.
pub fn check_replaceable(dest: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if !m.file_type().is_file() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "refusing to replace it: not a regular file ({})",
                kind(m.file_type())
            ),
        )),
        _ => Ok(()),
    }
}

fn kind(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "a socket"
    }
}

/// Renames each `from` onto its `to`, all or none: a failure undoes the renames already made (the
/// new files are removed) and leaves the sources to their owners' guards. An existing `to` that
/// is not a regular file is never replaced. Signals wait until the whole set is in place. On
/// failure returns the destination that failed and why.
pub fn commit_paths(moves: &[(PathBuf, PathBuf)]) -> Result<(), (PathBuf, io::Error)> {
    let _st = state();
    let mut done: Vec<&PathBuf> = Vec::new();
    for (from, to) in moves {
        let step = check_replaceable(to).and_then(|_| std::fs::rename(from, to));
        if let Err(e) = step {
            for d in done {
                let _ = std::fs::remove_file(d);
            }
            return Err((to.clone(), e));
        }
        done.push(to);
    }
    Ok(())
}

/// The signal path: removes every pending temp file and directory, then exits with `code` while
/// holding the lock, so that no other thread can create or commit anything in between.
pub fn remove_all_and_exit(message: &str, code: i32) -> ! {
    let mut st = state();
    st.shutting_down = true;
    for p in st.pending.drain(..) {
        if p.is_dir() {
            let _ = std::fs::remove_dir_all(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    for d in st.created_dirs.drain(..) {
        let _ = std::fs::remove_dir(&d); // only when empty: committed outputs stay
    }
    eprintln!("{message}");
    std::process::exit(code)
}

/// SIGINT, SIGTERM and SIGHUP all remove this run's temp files and exit with 130.
pub fn install_signal_handler(tool: &'static str) {
    let _ = ctrlc::set_handler(move || {
        remove_all_and_exit(
            &format!("{tool}: interrupted; temporary files removed"),
            130,
        )
    });
}

/// Removes temp files and directories in `dir` left by runs that are gone (killed with SIGKILL,
/// power loss): ours by name, and no longer locked by a live owner. Returns how many were removed.
pub fn sweep_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.file_type().is_file() && name.ends_with(TEMP_FILE_SUFFIX) {
            let open = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path);
            if let Ok(f) = open {
                if lock_exclusive(&f).unwrap_or(false) && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
        } else if meta.file_type().is_dir()
            && name.starts_with(TEMP_DIR_PREFIX)
            && name.ends_with(".tmp")
        {
            let lock = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path.join(LOCK_FILE));
            let stale = match lock {
                Ok(f) => lock_exclusive(&f).unwrap_or(false),
                // no lock file: the owner died between mkdir and creating it, or is about to
                // create it; the pid in the name tells (or the age, if the name has none)
                Err(_) => match name
                    .strip_prefix(TEMP_DIR_PREFIX)
                    .and_then(|r| r.strip_suffix(".tmp"))
                    .and_then(|p| p.parse::<i32>().ok())
                {
                    // SAFETY: signal 0 only asks whether the process exists.
                    Some(pid) => {
                        let alive = unsafe { libc::kill(pid, 0) } == 0;
                        !alive && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
                    }
                    None => meta
                        .modified()
                        .ok()
                        .and_then(|m| m.elapsed().ok())
                        .is_some_and(|age| age.as_secs() > 60),
                },
            };
            if stale && std::fs::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test, removed when the guard drops (also when the test fails).
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for Dir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn dir(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("artemis-cleanup-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    #[test]
    fn a_planted_link_at_the_temp_path_is_never_written_through() {
        let d = dir("link");
        let victim = d.join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let tmp = temp_path_for(&d.join("out.gguf"));
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        assert!(TempFile::create(&tmp).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_failed_commit_undoes_the_files_already_moved() {
        let d = dir("commit");
        let a = TempFile::create(&d.join("a.artemis.tmp")).unwrap();
        let b = TempFile::create(&d.join("b.artemis.tmp")).unwrap();
        std::fs::create_dir(d.join("B")).unwrap(); // the second destination is a directory
        let moves = vec![
            (a.path().to_path_buf(), d.join("A")),
            (b.path().to_path_buf(), d.join("B")),
        ];
        let (failed, e) = commit_paths(&moves).unwrap_err();
        assert_eq!(failed, d.join("B"));
        assert!(
            e.to_string().contains("not a regular file (a directory)"),
            "{e}"
        );
        assert!(!d.join("A").exists(), "the first move was undone");
        drop((a, b));
        let left: Vec<_> = std::fs::read_dir(&*d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("B")]);
    }

    #[test]
    fn sweep_removes_temps_whose_owner_is_gone_and_keeps_live_ones() {
        let d = dir("sweep");
        let live = TempFile::create(&d.join("live.gguf.1.artemis.tmp")).unwrap();
        std::fs::write(d.join("dead.gguf.2.artemis.tmp"), b"x").unwrap(); // nobody holds its lock
        std::fs::create_dir(d.join(".artemis-run-3.tmp")).unwrap();
        std::fs::write(d.join(".artemis-run-3.tmp/.lock"), b"").unwrap();
        std::fs::write(d.join("user-file.tmp"), b"x").unwrap(); // not ours: never touched
        std::os::unix::fs::symlink("/etc/passwd", d.join("link.artemis.tmp")).unwrap();
        assert_eq!(sweep_stale(&d), 2);
        let mut left: Vec<_> = std::fs::read_dir(&*d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "link.artemis.tmp",
                "live.gguf.1.artemis.tmp",
                "user-file.tmp"
            ]
        );
        drop(live);
    }
}
