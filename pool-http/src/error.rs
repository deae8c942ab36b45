//! Errors: [`ConfigError`] when a config or a factory is built, [`HttpError`] when the
//! pool opens or checks a connection, or a request fails.

/// An origin that cannot be used, found when the config is built. Never a panic; never
/// credentials in its text.
///
/// ```
/// use pool_http::{ConfigError, HttpConfig};
///
/// let err = HttpConfig::new("http://host/with/path").unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidOrigin(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The origin URL is not `http(s)://host[:port]`.
    #[error("invalid HTTP origin: {0}")]
    InvalidOrigin(String),
}

/// A bad setting of the factory, as a [`PoolError`](pool_core::PoolError):
/// `PoolError::Build(BuildError::Factory(..))`, with this error as its `source()`. So `?`
/// works on `HttpConnectionFactory::new(..)` in a function that returns `PoolError`:
///
/// ```
/// use pool_http::{HttpConnectionFactory, Pool, PoolError};
///
/// fn start() -> Result<Pool, PoolError> {
///     Pool::builder(HttpConnectionFactory::new("ftp://127.0.0.1")?).max_size(4).build()
/// }
/// let e = start().unwrap_err(); // an origin that is not HTTP
/// assert_eq!(e.to_string(), "invalid connection settings");
/// let cause = std::error::Error::source(&e).unwrap();
/// assert!(cause.is::<pool_http::ConfigError>());
/// ```
impl From<ConfigError> for pool_core::PoolError {
    fn from(e: ConfigError) -> Self {
        pool_core::PoolError::Build(pool_core::BuildError::Factory(std::sync::Arc::new(e)))
    }
}

/// What opening, checking or using an HTTP connection can fail with: the factory's `Error`.
///
/// The pool keeps it (shared) as the cause of `PoolError::Connection` and
/// `PoolError::AcquireTimeout`; get it back with `PoolError::connection_error()` and
/// `downcast_ref::<HttpError>()`. Nothing here ever shows credentials.
///
/// `Display` says what failed but does not repeat the `ureq` error, which is `source()` (for
/// `Connect` and `Request`): print the chain to see it (`{:#}` with `anyhow`, the report of
/// `eyre`, or a loop over `source()`).
///
/// ```
/// use pool_http::{ConfigError, HttpConfig, HttpError};
///
/// let err = HttpError::from(HttpConfig::new("http://host/with/path").unwrap_err());
/// assert!(matches!(err, HttpError::Config(ConfigError::InvalidOrigin(_))));
/// assert!(err.is_permanent());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The settings cannot work (a [`ConfigError`], converted). Permanent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A request could not be built (bad path, method or header); nothing was sent and the
    /// connection is fine.
    #[error("invalid HTTP request: {0}")]
    InvalidRequest(String),
    /// Opening the connection failed: refused, timed out, DNS, TLS. Retried by the pool
    /// (TLS failures excepted, see [`is_permanent`](Self::is_permanent)).
    #[error("could not connect to {origin}")]
    Connect {
        /// The origin.
        origin: String,
        /// The cause.
        source: ureq::Error,
    },
    /// The server rejected the configured credentials (`401`/`407` to the probe).
    /// Permanent.
    #[error("{origin} rejected the configured credentials (status {status})")]
    Unauthorized {
        /// The origin.
        origin: String,
        /// The status the server answered.
        status: u16,
    },
    /// A request got no (complete) response: I/O error, timeout, protocol error, or a body
    /// above the size limit.
    #[error("request to {origin} failed")]
    Request {
        /// The origin.
        origin: String,
        /// The cause.
        source: ureq::Error,
    },
    /// A health check got a status it did not want.
    #[error("{path} answered status {status}, expected {expected}")]
    Status {
        /// The path checked.
        path: String,
        /// The status received.
        status: u16,
        /// What was wanted.
        expected: String,
    },
    /// A health check got a body it did not want.
    #[error("{path} answered an unexpected body (expected {expected})")]
    UnexpectedBody {
        /// The path checked.
        path: String,
        /// What was wanted.
        expected: String,
    },
    /// The connection was already marked broken.
    #[error("the HTTP connection is broken: {0}")]
    Broken(String),
}

impl HttpError {
    /// Whether waiting cannot help: a bad origin, rejected credentials, a failed TLS
    /// handshake.
    pub fn is_permanent(&self) -> bool {
        match self {
            HttpError::Config(_)
            | HttpError::InvalidRequest(_)
            | HttpError::Unauthorized { .. } => true,
            HttpError::Connect { source, .. } => is_tls_error(source),
            _ => false,
        }
    }

    /// The `ureq` error behind this one, if any.
    pub fn ureq_error(&self) -> Option<&ureq::Error> {
        match self {
            HttpError::Connect { source, .. } | HttpError::Request { source, .. } => Some(source),
            _ => None,
        }
    }

    /// Whether this is a timeout (connecting or waiting for a response).
    pub fn is_timeout(&self) -> bool {
        match self.ureq_error() {
            Some(ureq::Error::Timeout(_)) => true,
            Some(ureq::Error::Io(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

fn is_tls_error(e: &ureq::Error) -> bool {
    // ureq reports TLS problems with its own variants, which exist only with a TLS feature.
    let text = format!("{e:?}");
    text.starts_with("Tls") || text.starts_with("Rustls") || text.starts_with("Pem")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use test_support::{assert_no_repeated_causes, error_chain as chain};

    fn refused() -> ureq::Error {
        ureq::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        ))
    }

    #[test]
    fn no_variant_repeats_the_ureq_error() {
        let cases = [
            (
                HttpError::Connect {
                    origin: "http://127.0.0.1:9".into(),
                    source: refused(),
                },
                "could not connect to http://127.0.0.1:9",
            ),
            (
                HttpError::Request {
                    origin: "http://127.0.0.1:9".into(),
                    source: ureq::Error::Timeout(ureq::Timeout::RecvResponse),
                },
                "request to http://127.0.0.1:9 failed",
            ),
        ];
        for (e, want) in &cases {
            assert_eq!(e.to_string(), *want);
            assert_no_repeated_causes(e);
            let source = e.source().expect("the ureq error is the source");
            let ureq = source
                .downcast_ref::<ureq::Error>()
                .expect("source is ureq's error");
            assert!(std::ptr::eq(ureq, e.ureq_error().unwrap()));
        }
        assert_eq!(
            chain(&cases[0].0)[1],
            "io: Connection refused (os error 111)"
        );
        assert!(cases[1].0.is_timeout());
    }

    #[test]
    fn variants_without_a_source() {
        for e in [
            HttpError::from(ConfigError::InvalidOrigin("no host".into())),
            HttpError::InvalidRequest("bad header name".into()),
            HttpError::Unauthorized {
                origin: "http://h".into(),
                status: 401,
            },
            HttpError::Status {
                path: "/health".into(),
                status: 503,
                expected: "200".into(),
            },
            HttpError::UnexpectedBody {
                path: "/health".into(),
                expected: "a body containing \"ok\"".into(),
            },
            HttpError::Broken("read timed out".into()),
        ] {
            assert!(e.source().is_none(), "{e:?}");
            assert_no_repeated_causes(&e);
        }
    }
}
