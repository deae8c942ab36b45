//! The `ConnectionFactory` implementation.

use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pool_core::error::Report;
use pool_core::ConnectionFactory;

use crate::config::HttpConfig;
use crate::connection::{HttpConnection, HttpRequest};
use crate::error::{ConfigError, HttpError};

/// Opens, checks and recycles [`HttpConnection`]s to one origin for a
/// `pool_core::ConnectionPool`.
///
/// * `create(timeout)`: a new client, then `HEAD <probe path>` bounded by `timeout` (and
///   the config's connect timeout), which opens its keep-alive socket. Any status counts
///   as success, except `401`/`407` when credentials are configured
///   ([`HttpError::Unauthorized`], permanent). With [`HttpConfig::with_probe`]`(false)` it only
///   checks that a TCP connection can be opened.
/// * `validate(conn, timeout)`: the same probe on the connection, bounded by `timeout`.
/// * `is_broken(conn)`: whether its last request failed without a response. No I/O.
/// * `is_permanent(err)`: [`HttpError::is_permanent`].
///
/// ```no_run
/// use pool_core::{ConnectionPool, PoolConfig};
/// use pool_http::HttpConnectionFactory;
///
/// let factory = HttpConnectionFactory::new("http://127.0.0.1:8080")?;
/// let pool = ConnectionPool::new(factory, PoolConfig::builder().max_size(4).build()?)?;
/// let mut conn = pool.acquire()?;
/// let response = conn.get("/users/123")?;
/// println!("{}", response.status());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpConnectionFactory {
    config: Arc<HttpConfig>,
}

impl HttpConnectionFactory {
    /// A factory for `origin` with default settings (see [`HttpConfig::new`]).
    ///
    /// ```
    /// use pool_http::HttpConnectionFactory;
    ///
    /// assert!(HttpConnectionFactory::new("http://127.0.0.1:8080").is_ok());
    /// assert!(HttpConnectionFactory::new("http://127.0.0.1:8080/v1").is_err());
    /// ```
    pub fn new(origin: &str) -> Result<Self, ConfigError> {
        Ok(Self::from_config(HttpConfig::new(origin)?))
    }

    /// A factory for `config`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_http::{HttpConfig, HttpConnectionFactory};
    ///
    /// let config = HttpConfig::new("http://127.0.0.1:8080")?
    ///     .with_read_timeout(Duration::from_secs(5))
    ///     .with_probe_path("/health");
    /// let factory = HttpConnectionFactory::from_config(config);
    /// assert_eq!(factory.config().probe_path(), Some("/health"));
    /// # Ok::<(), pool_http::ConfigError>(())
    /// ```
    pub fn from_config(config: HttpConfig) -> Self {
        HttpConnectionFactory {
            config: Arc::new(config),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Sends the probe on `conn` within `timeout`.
    fn probe(&self, conn: &mut HttpConnection, timeout: Duration) -> Result<(), HttpError> {
        if let Some(why) = conn.broken_reason() {
            return Err(HttpError::Broken(why.to_owned()));
        }
        let origin = self.config.origin.clone();
        let timeout = timeout.min(
            self.config
                .connect_timeout
                .saturating_add(self.config.read_timeout),
        );
        if timeout.is_zero() {
            return Err(HttpError::Connect {
                origin,
                source: timed_out(),
            });
        }
        match self.config.probe_path() {
            Some(path) => {
                let response = conn
                    .send(HttpRequest::new("HEAD", path).timeout(timeout))
                    .map_err(|e| match e {
                        HttpError::Request { origin, source } => {
                            HttpError::Connect { origin, source }
                        }
                        other => other,
                    })?;
                let status = response.status();
                if self.config.has_credentials() && matches!(status, 401 | 407) {
                    return Err(HttpError::Unauthorized { origin, status });
                }
                Ok(())
            }
            None => tcp_check(&self.config, timeout).map_err(|e| HttpError::Connect {
                origin,
                source: ureq::Error::Io(e),
            }),
        }
    }
}

fn timed_out() -> ureq::Error {
    ureq::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the timeout was used up before connecting",
    ))
}

/// Opens and closes a TCP connection to the origin within `timeout`.
fn tcp_check(config: &HttpConfig, timeout: Duration) -> std::io::Result<()> {
    let start = Instant::now();
    let authority = config
        .origin
        .split_once("://")
        .map(|(_, a)| a)
        .unwrap_or(&config.origin);
    let default_port = if config.https { 443 } else { 80 };
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:{default_port}")
    } else {
        authority.to_owned()
    };
    let mut last = None;
    for addr in with_port.to_socket_addrs()? {
        let left = timeout
            .min(config.connect_timeout)
            .saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "could not connect in time")
    }))
}

impl ConnectionFactory for HttpConnectionFactory {
    type Connection = HttpConnection;
    type Error = HttpError;

    fn create(&self, timeout: Duration) -> Result<HttpConnection, HttpError> {
        let mut conn = HttpConnection::new(self.config.clone());
        match self.probe(&mut conn, timeout) {
            Ok(()) => {
                log::debug!("opened an HTTP connection to {}", self.config.origin);
                // The probe's failure or success is not a request the caller made.
                Ok(conn)
            }
            Err(e) => {
                log::debug!(
                    "could not open an HTTP connection to {}: {}",
                    self.config.origin,
                    Report(&e)
                );
                Err(e)
            }
        }
    }

    fn validate(&self, conn: &mut HttpConnection, timeout: Duration) -> Result<(), HttpError> {
        self.probe(conn, timeout)
    }

    fn is_broken(&self, conn: &mut HttpConnection) -> bool {
        conn.is_broken()
    }

    fn is_permanent(&self, error: &HttpError) -> bool {
        error.is_permanent()
    }
}

impl fmt::Debug for HttpConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnectionFactory")
            .field("config", &*self.config)
            .finish()
    }
}

/// The origin.
impl fmt::Display for HttpConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.config.origin)
    }
}
