//! The backend's error type.

use std::fmt;

/// What opening, checking or using an HTTP connection can fail with.
///
/// The pool keeps it (shared) as the cause of `PoolError::Connection` and
/// `PoolError::AcquireTimeout`; get it back with `PoolError::connection_error()` and
/// `downcast_ref::<HttpPoolError>()`. Nothing here ever shows credentials.
///
/// `Display` says what failed but does not repeat the `ureq` error, which is `source()` (for
/// `Connect` and `Request`): print the chain to see it (`{:#}` with `anyhow`, the report of
/// `eyre`, or a loop over `source()`).
///
/// ```
/// use pool_http::{HttpConfig, HttpPoolError};
///
/// let err = HttpConfig::new("http://host/with/path").unwrap_err();
/// assert!(matches!(err, HttpPoolError::InvalidOrigin(_)));
/// assert!(err.is_permanent());
/// ```
#[non_exhaustive]
pub enum HttpPoolError {
    /// The origin URL is not `http(s)://host[:port]`. Permanent.
    InvalidOrigin(String),
    /// A request could not be built (bad path, method or header); nothing was sent and the
    /// connection is fine.
    InvalidRequest(String),
    /// Opening the connection failed: refused, timed out, DNS, TLS. Retried by the pool
    /// (TLS failures excepted, see [`is_permanent`](Self::is_permanent)).
    Connect {
        /// The origin.
        origin: String,
        /// The cause.
        source: ureq::Error,
    },
    /// The server rejected the configured credentials (`401`/`407` to the probe).
    /// Permanent.
    Unauthorized {
        /// The origin.
        origin: String,
        /// The status the server answered.
        status: u16,
    },
    /// A request got no (complete) response: I/O error, timeout, protocol error, or a body
    /// above the size limit.
    Request {
        /// The origin.
        origin: String,
        /// The cause.
        source: ureq::Error,
    },
    /// A health check got a status it did not want.
    Status {
        /// The path checked.
        path: String,
        /// The status received.
        status: u16,
        /// What was wanted.
        expected: String,
    },
    /// A health check got a body it did not want.
    UnexpectedBody {
        /// The path checked.
        path: String,
        /// What was wanted.
        expected: String,
    },
    /// The connection was already marked broken.
    Broken(String),
}

impl HttpPoolError {
    /// Whether waiting cannot help: a bad origin, rejected credentials, a failed TLS
    /// handshake.
    pub fn is_permanent(&self) -> bool {
        match self {
            HttpPoolError::InvalidOrigin(_)
            | HttpPoolError::InvalidRequest(_)
            | HttpPoolError::Unauthorized { .. } => true,
            HttpPoolError::Connect { source, .. } => is_tls_error(source),
            _ => false,
        }
    }

    /// The `ureq` error behind this one, if any.
    pub fn ureq_error(&self) -> Option<&ureq::Error> {
        match self {
            HttpPoolError::Connect { source, .. } | HttpPoolError::Request { source, .. } => {
                Some(source)
            }
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

impl fmt::Display for HttpPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpPoolError::InvalidOrigin(why) => write!(f, "invalid HTTP origin: {why}"),
            HttpPoolError::InvalidRequest(why) => write!(f, "invalid HTTP request: {why}"),
            // The ureq error is `source()`: its text is not repeated here.
            HttpPoolError::Connect { origin, .. } => write!(f, "could not connect to {origin}"),
            HttpPoolError::Unauthorized { origin, status } => write!(
                f,
                "{origin} rejected the configured credentials (status {status})"
            ),
            HttpPoolError::Request { origin, .. } => write!(f, "request to {origin} failed"),
            HttpPoolError::Status {
                path,
                status,
                expected,
            } => write!(f, "{path} answered status {status}, expected {expected}"),
            HttpPoolError::UnexpectedBody { path, expected } => {
                write!(
                    f,
                    "{path} answered an unexpected body (expected {expected})"
                )
            }
            HttpPoolError::Broken(why) => write!(f, "the HTTP connection is broken: {why}"),
        }
    }
}

impl fmt::Debug for HttpPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpPoolError::InvalidOrigin(why) => f.debug_tuple("InvalidOrigin").field(why).finish(),
            HttpPoolError::InvalidRequest(why) => {
                f.debug_tuple("InvalidRequest").field(why).finish()
            }
            HttpPoolError::Connect { origin, source } => f
                .debug_struct("Connect")
                .field("origin", origin)
                .field("source", source)
                .finish(),
            HttpPoolError::Unauthorized { origin, status } => f
                .debug_struct("Unauthorized")
                .field("origin", origin)
                .field("status", status)
                .finish(),
            HttpPoolError::Request { origin, source } => f
                .debug_struct("Request")
                .field("origin", origin)
                .field("source", source)
                .finish(),
            HttpPoolError::Status {
                path,
                status,
                expected,
            } => f
                .debug_struct("Status")
                .field("path", path)
                .field("status", status)
                .field("expected", expected)
                .finish(),
            HttpPoolError::UnexpectedBody { path, expected } => f
                .debug_struct("UnexpectedBody")
                .field("path", path)
                .field("expected", expected)
                .finish(),
            HttpPoolError::Broken(why) => f.debug_tuple("Broken").field(why).finish(),
        }
    }
}

impl std::error::Error for HttpPoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.ureq_error()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// [`pool_core::error::Report`] as a `String`, for this crate's logs.
pub(crate) fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    pool_core::error::Report(e).to_string()
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
                HttpPoolError::Connect {
                    origin: "http://127.0.0.1:9".into(),
                    source: refused(),
                },
                "could not connect to http://127.0.0.1:9",
            ),
            (
                HttpPoolError::Request {
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
            HttpPoolError::InvalidOrigin("no host".into()),
            HttpPoolError::InvalidRequest("bad header name".into()),
            HttpPoolError::Unauthorized {
                origin: "http://h".into(),
                status: 401,
            },
            HttpPoolError::Status {
                path: "/health".into(),
                status: 503,
                expected: "200".into(),
            },
            HttpPoolError::UnexpectedBody {
                path: "/health".into(),
                expected: "a body containing \"ok\"".into(),
            },
            HttpPoolError::Broken("read timed out".into()),
        ] {
            assert!(e.source().is_none(), "{e:?}");
            assert_no_repeated_causes(&e);
        }
    }
}
