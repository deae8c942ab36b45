//! The crypto provider behind `rediss://` connections (the `tls` feature).
//!
//! The `redis` crate builds each TLS connection's rustls `ClientConfig` with
//! `ClientConfig::builder()`, which uses the process-level default `CryptoProvider` and
//! panics when there is none and rustls's crate features do not name exactly one (`ring`
//! or `aws-lc-rs`). The `redis` crate turns rustls on with neither, and offers no way to
//! pass a provider. So before opening a TLS connection this crate installs rustls's `ring`
//! provider as the process default, only when no default is installed yet: a program that
//! installs its own (`CryptoProvider::install_default`, say aws-lc-rs for FIPS) before the
//! first `rediss://` connect keeps it. This is what rustls itself would do when `ring` is
//! its only provider feature; installing it here also covers a build in which another crate
//! turns rustls's `aws-lc-rs` feature on as well (then rustls would not choose, and
//! panic).

use std::error::Error;

use rustls::crypto::CryptoProvider;

/// Installs rustls's `ring` provider as the process default if no default is installed.
pub(crate) fn ensure_crypto_provider() {
    if CryptoProvider::get_default().is_none() {
        // Err means another thread installed a provider meanwhile: there is one, as
        // needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Whether rustls refused the connection (a certificate that does not verify, a name it
/// does not hold, no TLS version in common, a server that does not speak TLS, an alert from
/// the server): a `rustls::Error` in `e`'s chain. A handshake cut short by the network is
/// an I/O error without one.
pub(crate) fn is_handshake_refusal(e: &redis::RedisError) -> bool {
    let mut next: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(mut err) = next {
        // The redis crate keeps its cause as an `Arc<dyn Error>` and returns the Arc itself
        // from source(): look through it.
        if let Some(arc) = err.downcast_ref::<std::sync::Arc<dyn Error + Send + Sync>>() {
            err = &**arc;
        }
        if err.is::<rustls::Error>() {
            return true;
        }
        // rustls reports through an io::Error around its own error; io::Error's source()
        // skips the error it wraps, so look inside.
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_provider_is_installed_once_and_kept() {
        // This unit-test binary installs no provider anywhere else.
        ensure_crypto_provider();
        let first = CryptoProvider::get_default().expect("a default provider") as *const _;
        ensure_crypto_provider();
        let second = CryptoProvider::get_default().unwrap() as *const _;
        assert_eq!(first, second, "the installed provider was replaced");
    }

    #[test]
    fn rustls_errors_are_refusals_io_errors_are_not() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_handshake_refusal(&redis::RedisError::from(refused)));
        let cut = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof");
        assert!(!is_handshake_refusal(&redis::RedisError::from(cut)));
    }
}
