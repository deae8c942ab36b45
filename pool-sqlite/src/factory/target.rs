//! Where the connections go ([`Target`]: a file, a `file:` URI or a named in-memory
//! database), and the URI parsing that tells them apart.

use std::fmt;
use std::path::PathBuf;

use pool_core::backend::percent_decode;

/// Where the connections go.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// A file, by absolute path.
    File(PathBuf),
    /// A `file:` URI, as given.
    Uri(String),
    /// A named in-memory database shared by every connection of the process that opens
    /// the same name (`file:/NAME?vfs=memdb`).
    Memory(String),
}

impl Target {
    /// What SQLite is handed.
    pub(super) fn open_arg(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Target::File(p) => p.to_string_lossy(),
            Target::Uri(u) => u.as_str().into(),
            Target::Memory(name) => format!("file:/{name}?vfs=memdb").into(),
        }
    }

    /// The file on disk, if there is one (for diagnosing a failed open).
    pub(super) fn file(&self) -> Option<PathBuf> {
        match self {
            Target::File(p) => Some(p.clone()),
            Target::Uri(u) => uri_path(u),
            Target::Memory(_) => None,
        }
    }

    pub(super) fn is_memory(&self) -> bool {
        match self {
            Target::File(_) => false,
            Target::Uri(u) => {
                uri_has_param(u, "mode", "memory") || uri_has_param(u, "vfs", "memdb")
            }
            Target::Memory(_) => true,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::Uri(u) => f.write_str(u),
            Target::Memory(name) => write!(f, "memory:{name}"),
        }
    }
}

/// The query part of a `file:` URI has `key=value`.
pub(super) fn uri_has_param(uri: &str, key: &str, value: &str) -> bool {
    let Some((_, query)) = uri.split_once('?') else {
        return false;
    };
    let query = query.split('#').next().unwrap_or("");
    query.split('&').any(|kv| match kv.split_once('=') {
        Some((k, v)) => k == key && v == value,
        None => false,
    })
}

/// The file a `file:` URI names (percent-decoded), if it names one.
pub(super) fn uri_path(uri: &str) -> Option<PathBuf> {
    let rest = uri.strip_prefix("file:")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let rest = match rest.strip_prefix("//") {
        // An authority: empty or `localhost`, then the absolute path.
        Some(after) => &after[after.find('/')?..],
        None => rest,
    };
    if rest.is_empty() {
        return None;
    }
    Some(PathBuf::from(percent_decode(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths() {
        assert_eq!(uri_path("file:/srv/a.db?mode=ro"), Some("/srv/a.db".into()));
        assert_eq!(uri_path("file:///srv/a%20b.db"), Some("/srv/a b.db".into()));
        assert_eq!(
            uri_path("file://localhost/srv/a.db#x"),
            Some("/srv/a.db".into())
        );
        assert_eq!(uri_path("file:data/a.db"), Some("data/a.db".into()));
        assert_eq!(uri_path("file:"), None);
        assert!(uri_has_param(
            "file:x?mode=memory&cache=shared",
            "cache",
            "shared"
        ));
        assert!(!uri_has_param("file:x?mode=memory", "cache", "shared"));
    }
}
