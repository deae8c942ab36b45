//! The `native-tls` stack: the connector for an `sslmode` and the roots it trusts (the
//! platform's TLS library; `verify-ca` skips the host name, `allow`/`prefer` verify
//! nothing). Where the roots come from is decided once for both stacks
//! ([`roots_for`](super::roots::roots_for)): with an `sslrootcert` file the library's
//! built-in store is switched off, so only that file's CAs are trusted.

use std::path::Path;

use super::roots::Roots;
use super::SslMode;
use crate::error::ConfigError;

/// native-tls's connector for `mode`, trusting what `roots` says.
pub(super) fn connector(
    mode: SslMode,
    roots: &Roots,
    root_cert: Option<&Path>,
) -> Result<native_tls::TlsConnector, ConfigError> {
    let mut builder = native_tls::TlsConnector::builder();
    // Read in every mode, as the rustls stack does: a bad path is a mistake whatever the
    // mode (`system` is no path).
    let file = match root_cert {
        Some(path) if path.as_os_str() != super::roots::SYSTEM => Some(read_root_file(path)?),
        _ => None,
    };
    if let (Roots::File(_), Some(certs)) = (roots, file) {
        // The file only: OpenSSL's default paths (and SSL_CERT_FILE / SSL_CERT_DIR) are
        // not loaded.
        builder.disable_built_in_roots(true);
        for cert in certs {
            builder.add_root_certificate(cert);
        }
    }
    // Offered on every handshake, as libpq 17 does; required back under direct
    // negotiation (see `alpn`).
    builder.request_alpns(&[super::alpn::POSTGRESQL]);
    match mode {
        SslMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        SslMode::Allow | SslMode::Prefer | SslMode::Disable => {
            builder.danger_accept_invalid_certs(true);
        }
        SslMode::Require | SslMode::VerifyFull => {}
    }
    builder.build().map_err(|e| ConfigError::Tls(e.to_string()))
}

/// The certificates in the PEM file `path` (at least one).
fn read_root_file(path: &Path) -> Result<Vec<native_tls::Certificate>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        ConfigError::Tls(format!("cannot read sslrootcert {}: {e}", path.display()))
    })?;
    let certs = native_tls::Certificate::stack_from_pem(&pem)
        .map_err(|e| ConfigError::Tls(format!("sslrootcert {} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::Tls(format!(
            "sslrootcert {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}
