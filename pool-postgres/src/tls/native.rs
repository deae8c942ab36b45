//! The `native-tls` stack: the connector for an `sslmode` and an `sslrootcert` (the
//! platform's TLS library; `verify-ca` skips the host name, `allow`/`prefer` verify
//! nothing).

use super::SslMode;
use crate::error::ConfigError;

/// native-tls's connector for `mode`, trusting `root_cert` (PEM) besides the system's
/// roots.
pub(super) fn connector(
    mode: SslMode,
    root_cert: Option<&std::path::Path>,
) -> Result<native_tls::TlsConnector, ConfigError> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = root_cert {
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::Tls(format!("cannot read sslrootcert {}: {e}", path.display()))
        })?;
        let certs = native_tls::Certificate::stack_from_pem(&pem).map_err(|e| {
            ConfigError::Tls(format!("sslrootcert {} is not PEM: {e}", path.display()))
        })?;
        if certs.is_empty() {
            return Err(ConfigError::Tls(format!(
                "sslrootcert {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            builder.add_root_certificate(cert);
        }
    }
    postgres_native_tls::set_postgresql_alpn(&mut builder);
    match mode {
        SslMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        SslMode::Allow | SslMode::Prefer => {
            builder.danger_accept_invalid_certs(true);
        }
        _ => {}
    }
    builder.build().map_err(|e| ConfigError::Tls(e.to_string()))
}
