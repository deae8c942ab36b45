//! Why a database could not be opened: after `SQLITE_CANTOPEN`, [`diagnose_open`] asks the
//! filesystem, and names the reasons no retry can fix ([`OpenProblem`]).

use std::path::{Path, PathBuf};

use super::OpenProblem;

/// After `SQLITE_CANTOPEN` on `path`: asks the filesystem why, and returns the reason if it
/// is one that waiting cannot fix. `None` when the cause is unknown or passing (too many
/// open files, say). Side-effect free for the database file: the only thing it may create
/// is a uniquely named probe file, removed at once, to learn whether the directory is
/// writable.
pub(crate) fn diagnose_open(path: &Path, may_create: bool) -> Option<OpenProblem> {
    use std::io::ErrorKind;
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Some(OpenProblem::IsADirectory(path.to_owned())),
        Ok(_) => {
            // The file is there: can we open it the way SQLite does?
            match std::fs::OpenOptions::new()
                .read(true)
                .write(may_create)
                .open(path)
            {
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    Some(OpenProblem::PermissionDenied(path.to_owned()))
                }
                _ => None,
            }
        }
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            Some(OpenProblem::PermissionDenied(path.to_owned()))
        }
        Err(e) if e.kind() == ErrorKind::NotADirectory => {
            Some(OpenProblem::NotADirectory(first_file_ancestor(path)))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            match std::fs::metadata(dir) {
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    Some(OpenProblem::MissingDirectory(dir.to_owned()))
                }
                Err(e) if e.kind() == ErrorKind::NotADirectory => {
                    Some(OpenProblem::NotADirectory(first_file_ancestor(dir)))
                }
                Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                    Some(OpenProblem::PermissionDenied(dir.to_owned()))
                }
                Err(_) => None,
                Ok(meta) if !meta.is_dir() => Some(OpenProblem::NotADirectory(dir.to_owned())),
                Ok(_) if !may_create => Some(OpenProblem::MissingFile(path.to_owned())),
                Ok(_) => probe_writable(dir),
            }
        }
        Err(_) => None,
    }
}

/// The first ancestor of `path` that exists and is not a directory (for ENOTDIR).
pub(super) fn first_file_ancestor(path: &Path) -> PathBuf {
    path.ancestors()
        .skip(1)
        .find(|p| p.is_file())
        .unwrap_or(path)
        .to_owned()
}

/// Whether a file can be created in `dir`: `Some(PermissionDenied)` when the operating
/// system says no.
pub(super) fn probe_writable(dir: &Path) -> Option<OpenProblem> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let probe = dir.join(format!(
        ".pool-sqlite-probe-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Some(OpenProblem::PermissionDenied(dir.to_owned()))
        }
        Err(_) => None,
    }
}
