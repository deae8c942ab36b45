//! Health checks for HTTP connections.
//!
//! Plug one into the pool builder with `.validation(...)`; the pool runs it when it hands
//! out a connection that has not been used for a while (`validate_on_acquire`) and on idle
//! connections in the background (`validation_interval`), bounded by the validation
//! timeout. A failed check discards the connection; the next one is opened fresh.
//!
//! ```
//! use std::time::Duration;
//! use pool_core::validation::MaxAgeValidation;
//! use pool_http::{CompositeValidation, PingValidation, QueryValidation};
//!
//! // The probe path (`HttpConfig::with_probe_path`) must answer 2xx, /ready must answer
//! // 200 "ready", and no connection lives longer than ten minutes (so DNS changes are
//! // picked up).
//! let check = CompositeValidation::new()
//!     .with(PingValidation)
//!     .with(QueryValidation::new("/ready").with_status(200).with_body_contains("ready"))
//!     .with(MaxAgeValidation::new(Duration::from_secs(600)));
//! assert_eq!(check.len(), 3);
//! ```

use std::time::Duration;

use pool_core::validation::{ConnectionInfo, ValidationError, ValidationStrategy};

use crate::connection::{HttpConnection, HttpRequest};
use crate::error::HttpError;

/// Several checks in order; the first failure fails the connection.
///
/// This is `pool_core`'s [`CompositeValidation`](pool_core::validation::CompositeValidation)
/// for [`HttpConnection`]: the timeout is shared, each step gets what is left of it.
pub type CompositeValidation = pool_core::validation::CompositeValidation<HttpConnection>;

/// `GET <probe path>` must answer 2xx within the validation timeout: the path set with
/// [`HttpConfig::with_probe_path`](crate::HttpConfig::with_probe_path) on the factory that
/// opened the connection (`/` by default, and when probing is off).
///
/// Stricter than the factory's own `validate` (a `HEAD` that any status passes): a health
/// path that answers `503` fails it. To check another path, or for a given status or body,
/// use [`QueryValidation`].
///
/// ```
/// use std::time::Duration;
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_http::{HttpConfig, HttpConnectionFactory, PingValidation};
///
/// let config = HttpConfig::new("http://127.0.0.1:8080")?.with_probe_path("/health");
/// let pool = ConnectionPool::builder(HttpConnectionFactory::from_config(config))
///     .config(PoolConfig::default())
///     .validation(PingValidation) // GET /health must answer 2xx
///     .build()?;
/// # let _ = pool;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PingValidation;

impl ValidationStrategy<HttpConnection> for PingValidation {
    fn validate(
        &self,
        conn: &mut HttpConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        let path = conn.config().probe_path().unwrap_or("/").to_owned();
        let response = conn.send(HttpRequest::get(path.as_str()).timeout(timeout))?;
        if response.is_success() {
            Ok(())
        } else {
            Err(HttpError::Status {
                path,
                status: response.status(),
                expected: "2xx".into(),
            }
            .into())
        }
    }

    fn name(&self) -> &str {
        "http-ping"
    }
}

/// `GET <path>` must answer a given status (default: any 2xx) and, optionally, a body
/// that equals or contains a given text.
///
/// ```
/// use pool_http::QueryValidation;
///
/// let exact = QueryValidation::new("/version")
///     .with_status(200)
///     .with_body_equals("v2");
/// let loose = QueryValidation::new("/status").with_body_contains("\"ok\":true");
/// # let _ = (exact, loose);
/// ```
#[derive(Debug, Clone)]
pub struct QueryValidation {
    path: String,
    status: Option<u16>,
    body: Option<BodyCheck>,
}

#[derive(Debug, Clone)]
enum BodyCheck {
    Equals(String),
    Contains(String),
}

impl QueryValidation {
    /// Checks `path` (relative to the origin); any 2xx status passes until
    /// [`with_status`](Self::with_status) says otherwise.
    pub fn new(path: impl Into<String>) -> Self {
        QueryValidation {
            path: path.into(),
            status: None,
            body: None,
        }
    }

    /// Requires exactly `status`.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Requires the body to be exactly `text` (surrounding whitespace ignored).
    pub fn with_body_equals(mut self, text: impl Into<String>) -> Self {
        self.body = Some(BodyCheck::Equals(text.into()));
        self
    }

    /// Requires the body to contain `text`.
    pub fn with_body_contains(mut self, text: impl Into<String>) -> Self {
        self.body = Some(BodyCheck::Contains(text.into()));
        self
    }
}

impl ValidationStrategy<HttpConnection> for QueryValidation {
    fn validate(
        &self,
        conn: &mut HttpConnection,
        _info: &ConnectionInfo,
        timeout: Duration,
    ) -> Result<(), ValidationError> {
        let response = conn.send(HttpRequest::get(self.path.as_str()).timeout(timeout))?;
        let status_ok = match self.status {
            Some(s) => response.status() == s,
            None => response.is_success(),
        };
        if !status_ok {
            return Err(HttpError::Status {
                path: self.path.clone(),
                status: response.status(),
                expected: match self.status {
                    Some(s) => s.to_string(),
                    None => "2xx".into(),
                },
            }
            .into());
        }
        let text = response.text_lossy();
        let (body_ok, expected) = match &self.body {
            None => (true, String::new()),
            Some(BodyCheck::Equals(want)) => (text.trim() == want.trim(), format!("{want:?}")),
            Some(BodyCheck::Contains(want)) => (
                text.contains(want.as_str()),
                format!("a body containing {want:?}"),
            ),
        };
        if body_ok {
            Ok(())
        } else {
            Err(HttpError::UnexpectedBody {
                path: self.path.clone(),
                expected,
            }
            .into())
        }
    }

    fn name(&self) -> &str {
        "http-query"
    }
}
