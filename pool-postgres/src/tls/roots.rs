//! Where the certificates that verify the server come from: one decision from `sslmode`
//! and `sslrootcert`, shared by both TLS stacks, after libpq.
//!
//! | `sslrootcert` | `disable`, `allow`, `prefer` | `require`, `verify-full` | `verify-ca` |
//! |---|---|---|---|
//! | a file | read (a bad path is a mistake), not used | that file **only** | that file **only** |
//! | `system` | `ConfigError` | `require`: `ConfigError`; `verify-full`: the platform's store | `ConfigError` |
//! | none | nothing | the platform's store (our default; libpq's `~/.postgresql/root.crt` is not read) | `ConfigError` |
//!
//! The platform's store is never added to a file: a file names the CAs the user trusts for
//! this database, and a certificate a public CA issued must not pass in their place.

use std::path::{Path, PathBuf};

use super::SslMode;
use crate::error::ConfigError;

/// libpq's spelling of "the platform's trusted roots" for `sslrootcert`.
pub(crate) const SYSTEM: &str = "system";

/// The certificates a verifying handshake trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Roots {
    /// Nothing is verified (`disable`, `allow`, `prefer`).
    Unverified,
    /// The platform's store (`sslrootcert=system`, or no `sslrootcert` with `require` or
    /// `verify-full`).
    Platform,
    /// The PEM file `sslrootcert` names, and nothing else.
    File(PathBuf),
}

/// Where the roots come from for `mode` and `sslrootcert` (the table above).
///
/// A file is not read here: each stack reads it (under every mode, as a bad path is a
/// mistake whatever the mode).
pub(crate) fn roots_for(mode: SslMode, sslrootcert: Option<&Path>) -> Result<Roots, ConfigError> {
    let system = sslrootcert.is_some_and(|p| p.as_os_str() == SYSTEM);
    if system && mode != SslMode::VerifyFull {
        return Err(ConfigError::Tls(format!(
            "sslrootcert=system may only be used with sslmode=verify-full (not {mode}), as \
             with libpq: the platform's roots trust certificates public CAs issued for any \
             name"
        )));
    }
    Ok(match (mode, sslrootcert) {
        (SslMode::Disable | SslMode::Allow | SslMode::Prefer, _) => Roots::Unverified,
        (_, Some(_)) if system => Roots::Platform,
        (_, Some(path)) => Roots::File(path.to_owned()),
        (SslMode::Require | SslMode::VerifyFull, None) => Roots::Platform,
        (SslMode::VerifyCa, None) => {
            return Err(ConfigError::Tls(
                "sslmode=verify-ca needs sslrootcert naming the CA file to trust: verify-ca \
                 does not check the host name, so the platform's roots would accept a \
                 certificate any public CA issued for any name (use verify-full to trust \
                 the platform's roots)"
                    .into(),
            ))
        }
    })
}

/// The default `sslmode` when the connection string names none: `verify-full` with
/// `sslrootcert=system` (as libpq), else `fallback`.
pub(crate) fn default_mode(sslrootcert: Option<&Path>, fallback: SslMode) -> SslMode {
    if sslrootcert.is_some_and(|p| p.as_os_str() == SYSTEM) {
        SslMode::VerifyFull
    } else {
        fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        let file = Path::new("/etc/app/ca.pem");
        let system = Path::new("system");
        for mode in [SslMode::Disable, SslMode::Allow, SslMode::Prefer] {
            assert_eq!(roots_for(mode, None).unwrap(), Roots::Unverified);
            assert_eq!(roots_for(mode, Some(file)).unwrap(), Roots::Unverified);
            assert!(roots_for(mode, Some(system)).is_err(), "{mode}");
        }
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            assert_eq!(
                roots_for(mode, Some(file)).unwrap(),
                Roots::File(file.into())
            );
        }
        assert_eq!(
            roots_for(SslMode::VerifyFull, Some(system)).unwrap(),
            Roots::Platform
        );
        assert_eq!(
            roots_for(SslMode::VerifyFull, None).unwrap(),
            Roots::Platform
        );
        assert_eq!(roots_for(SslMode::Require, None).unwrap(), Roots::Platform);
        let e = roots_for(SslMode::VerifyCa, None).unwrap_err();
        assert!(e.to_string().contains("needs sslrootcert"), "{e}");
        for mode in [SslMode::Require, SslMode::VerifyCa] {
            let e = roots_for(mode, Some(system)).unwrap_err();
            assert!(e.to_string().contains("only be used with"), "{e}");
        }
        assert_eq!(
            default_mode(Some(system), SslMode::Prefer),
            SslMode::VerifyFull
        );
        assert_eq!(default_mode(Some(file), SslMode::Prefer), SslMode::Prefer);
        assert_eq!(default_mode(None, SslMode::Require), SslMode::Require);
    }
}
