//! TLS: `sslmode` as libpq spells it, and the connector that implements it.
//!
//! Without the `native-tls` cargo feature, connections are plain TCP (or Unix socket):
//! `sslmode=disable`, `allow` and `prefer` connect without TLS, and `require`,
//! `verify-ca` and `verify-full` are refused when the factory is built
//! ([`ConfigError::TlsUnavailable`]), never silently downgraded.
//!
//! With `native-tls` (OpenSSL on Linux), TLS is used as `sslmode` asks, and **whenever
//! TLS is required, the server certificate is verified by default**, against the system's
//! roots plus the `sslrootcert` file if one is given:
//!
//! | `sslmode` | TLS | certificate chain | host name |
//! |---|---|---|---|
//! | `disable` | never | - | - |
//! | `allow`, `prefer` (default) | if the server offers it | not checked | not checked |
//! | `require` | always | verified | verified |
//! | `verify-ca` | always | verified | not checked |
//! | `verify-full` | always | verified | verified |
//!
//! `require` is stricter than libpq's, which encrypts without checking the certificate.
//! `prefer` matches libpq: it is opportunistic encryption, which an active attacker can
//! defeat anyway by answering "no TLS", so checking the certificate there would only
//! break connections to servers with self-signed certificates without protecting anyone.
//! Ask for `require` or `verify-full` when it matters. To accept any certificate under
//! `require` (a test server), pass your own connector with `danger_accept_invalid_certs`
//! to `PostgresConnectionFactory::with_tls_connector`.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// The `sslmode` connection option, with all of libpq's values.
///
/// ```
/// use pool_postgres::SslMode;
/// assert_eq!("verify-full".parse::<SslMode>().unwrap(), SslMode::VerifyFull);
/// assert_eq!(SslMode::default(), SslMode::Prefer);
/// assert!("bogus".parse::<SslMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// TLS if the server offers it, certificate not checked (treated as `prefer`).
    Allow,
    /// TLS if the server offers it, certificate not checked, as libpq does (the default).
    /// Plain when built without TLS support.
    #[default]
    Prefer,
    /// TLS always; the certificate chain and host name are verified (stricter than libpq).
    Require,
    /// TLS always; the certificate chain is verified, the host name is not.
    VerifyCa,
    /// TLS always; the certificate chain and the host name are verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling (`verify-full`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether this mode refuses plain connections.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    fn driver_mode(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ConfigError::InvalidOption {
                    option: "sslmode".into(),
                    reason: "expected one of disable, allow, prefer, require, verify-ca, \
                             verify-full"
                        .into(),
                })
            }
        })
    }
}

impl From<postgres::config::SslMode> for SslMode {
    fn from(m: postgres::config::SslMode) -> Self {
        match m {
            postgres::config::SslMode::Disable => SslMode::Disable,
            postgres::config::SslMode::Require => SslMode::Require,
            _ => SslMode::Prefer,
        }
    }
}

/// How connections are opened: plain, or through a TLS connector.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    #[cfg(feature = "native-tls")]
    Native(postgres_native_tls::MakeTlsConnector),
}

impl Connector {
    /// Builds the connector for `mode` and sets the driver's own `sslmode` on `config`.
    pub(crate) fn for_mode(
        mode: SslMode,
        root_cert: Option<&std::path::Path>,
        config: &mut postgres::Config,
    ) -> Result<Connector, ConfigError> {
        config.ssl_mode(mode.driver_mode());
        if mode == SslMode::Disable {
            return Ok(Connector::Plain);
        }
        #[cfg(feature = "native-tls")]
        {
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
            match mode {
                SslMode::VerifyCa => {
                    builder.danger_accept_invalid_hostnames(true);
                }
                SslMode::Allow | SslMode::Prefer => {
                    builder.danger_accept_invalid_certs(true);
                }
                _ => {}
            }
            let connector = builder
                .build()
                .map_err(|e| ConfigError::Tls(e.to_string()))?;
            Ok(Connector::Native(
                postgres_native_tls::MakeTlsConnector::new(connector),
            ))
        }
        #[cfg(not(feature = "native-tls"))]
        {
            let _ = root_cert;
            if mode.requires_tls() {
                return Err(ConfigError::TlsUnavailable {
                    sslmode: mode.as_str().into(),
                });
            }
            Ok(Connector::Plain)
        }
    }

    pub(crate) fn connect(
        &self,
        config: &postgres::Config,
    ) -> Result<postgres::Client, postgres::Error> {
        match self {
            Connector::Plain => config.connect(postgres::NoTls),
            #[cfg(feature = "native-tls")]
            Connector::Native(tls) => config.connect(tls.clone()),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Connector::Plain => "none",
            #[cfg(feature = "native-tls")]
            Connector::Native(_) => "native-tls",
        }
    }
}
