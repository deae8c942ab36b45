//! Where and how to connect.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use pool_core::backend::Secret;

use crate::error::ConfigError;

/// Default response timeout: a command whose reply has not arrived after 30 seconds fails
/// (and the connection is discarded).
pub(crate) const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on the session reset run on release when no response timeout is set.
pub(crate) const DEFAULT_RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to connect to Redis.
///
/// Made from a URL ([`new`](Self::new)), then adjusted with the `with_*` methods (which
/// never fail, but for `with_tls_certificates`, with the `tls` feature):
///
/// | URL | meaning |
/// | --- | --- |
/// | `redis://127.0.0.1:6379` | TCP, database 0, no password |
/// | `redis://:secret@host:6379/2` | password only (`requirepass`), database 2 |
/// | `redis://alice:secret@host/0` | ACL user `alice` |
/// | `rediss://host:6380` | TLS (needs the `tls` cargo feature) |
/// | `redis+unix:///run/redis.sock?db=1&user=alice&pass=secret` | Unix socket |
///
/// Percent-encode reserved characters in usernames and passwords (`@` is `%40`).
///
/// Defaults: port 6379, database 0, no client name, connect timeout limited only by the
/// pool's `create_timeout`, response timeout 30 seconds.
///
/// `Debug` and `Display` show the URL without the password:
///
/// ```
/// use pool_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://alice:s3cret@127.0.0.1:6379/3")?;
/// assert_eq!(config.to_string(), "redis://alice:***@127.0.0.1:6379/3");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert_eq!(config.database(), 3);
/// # Ok::<(), pool_redis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) addr: ConnectionAddr,
    pub(crate) db: i64,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) client_name: Option<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) info: ConnectionInfo,
}

impl RedisConfig {
    /// Parses a Redis URL (see the table above).
    ///
    /// A URL that does not parse, has another scheme, a database that is not a number, or
    /// asks for TLS without the `tls` feature is a [`ConfigError::InvalidUrl`], whose
    /// message never repeats the URL (it may hold a password).
    ///
    /// ```
    /// use pool_redis::{ConfigError, RedisConfig};
    ///
    /// assert!(RedisConfig::new("redis://localhost").is_ok());
    /// assert!(matches!(
    ///     RedisConfig::new("http://localhost"),
    ///     Err(ConfigError::InvalidUrl(_))
    /// ));
    /// assert!(RedisConfig::new("redis://localhost/not-a-number").is_err());
    /// ```
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let url = url.trim();
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix") => {}
            Some("rediss" | "valkeys") => {
                if !cfg!(feature = "tls") {
                    return Err(ConfigError::InvalidUrl(
                        "rediss:// (TLS) URLs need the `tls` cargo feature of pool-redis".into(),
                    ));
                }
            }
            Some(other) => {
                return Err(ConfigError::InvalidUrl(format!(
                    "unsupported scheme `{}` (expected redis://, rediss:// or redis+unix://)",
                    truncate(other, 20)
                )))
            }
            None => {
                return Err(ConfigError::InvalidUrl(
                    "not a URL (expected redis://host:port/db)".into(),
                ))
            }
        }
        let info = url
            .into_connection_info()
            .map_err(|e| ConfigError::InvalidUrl(describe_parse_error(&e)))?;
        if info.redis_settings().db() < 0 {
            return Err(ConfigError::InvalidUrl(
                "the database index must not be negative".into(),
            ));
        }
        Ok(Self::from_info(info))
    }

    fn from_info(info: ConnectionInfo) -> Self {
        let settings = info.redis_settings();
        RedisConfig {
            addr: info.addr().clone(),
            db: settings.db(),
            username: settings.username().map(str::to_owned),
            password: settings.password().map(Secret::new),
            client_name: None,
            connect_timeout: None,
            response_timeout: Some(DEFAULT_RESPONSE_TIMEOUT),
            info,
        }
    }

    /// Selects database `db` (instead of the URL's) on every connection.
    pub fn with_database(mut self, db: u32) -> Self {
        self.db = i64::from(db);
        self.sync_info();
        self
    }

    /// Authenticates as ACL user `username` (Redis 6+), replacing the URL's.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self.sync_info();
        self
    }

    /// Authenticates with `password`, replacing the URL's. Never shown by `Debug`/`Display`.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret::new(password));
        self.sync_info();
        self
    }

    /// Which certificates a `rediss://` connection trusts and presents, as the `redis`
    /// crate's [`Client::build_with_tls`](redis::Client::build_with_tls) takes them:
    /// `root_cert`, PEM certificates to trust instead of the webpki roots (a private CA);
    /// `client_tls`, a client certificate and key in PEM for servers that demand one
    /// (`tls-auth-clients yes`). The server's certificate is always verified, its name
    /// against the URL's host.
    ///
    /// Unlike the other `with_*` methods this one can fail, with a
    /// [`ConfigError::InvalidTls`]: on a URL that is not `rediss://`, on PEM that does not
    /// parse, on a `root_cert` without any certificate.
    ///
    /// ```
    /// use pool_redis::RedisConfig;
    /// use pool_redis::redis::TlsCertificates;
    ///
    /// # let key = rcgen::KeyPair::generate().unwrap();
    /// # let ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    /// # let ca_pem = ca.self_signed(&key).unwrap().pem().into_bytes();
    /// // let ca_pem = std::fs::read("/etc/redis/ca.crt")?;
    /// let config = RedisConfig::new("rediss://redis.internal:6380")?
    ///     .with_tls_certificates(TlsCertificates {
    ///         client_tls: None,
    ///         root_cert: Some(ca_pem),
    ///     })?;
    /// assert_eq!(config.to_string(), "rediss://redis.internal:6380/0");
    ///
    /// // Certificates for a plain redis:// URL are a mistake, not ignored.
    /// let plain = RedisConfig::new("redis://127.0.0.1:6379")?;
    /// let none = TlsCertificates { client_tls: None, root_cert: None };
    /// assert!(plain.with_tls_certificates(none).is_err());
    /// # Ok::<(), pool_redis::ConfigError>(())
    /// ```
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn with_tls_certificates(
        mut self,
        certificates: redis::TlsCertificates,
    ) -> Result<Self, ConfigError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;

        if !self.is_tls() {
            return Err(ConfigError::InvalidTls(
                "TLS certificates need a rediss:// URL".into(),
            ));
        }
        if let Some(pem) = &certificates.root_cert {
            // The redis crate takes a PEM without any certificate as an empty root store,
            // which refuses every server.
            if CertificateDer::pem_slice_iter(pem).next().is_none() {
                return Err(ConfigError::InvalidTls(
                    "root_cert holds no PEM certificate".into(),
                ));
            }
        }
        // The redis crate parses the PEM here (its messages name what did not parse and
        // never show key material); the client only carries the connection info.
        let client = redis::Client::build_with_tls(self.info.clone(), certificates)
            .map_err(|e| ConfigError::InvalidTls(e.to_string()))?;
        self.info = client.get_connection_info().clone();
        self.addr = self.info.addr().clone();
        Ok(self)
    }

    /// Whether connections use TLS (a `rediss://` URL).
    #[cfg(feature = "tls")]
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.addr, ConnectionAddr::TcpTls { .. })
    }

    /// Names every connection with `CLIENT SETNAME` (visible in `CLIENT LIST`).
    ///
    /// Redis rejects names with spaces; such a name makes `create` fail with a permanent
    /// [`RedisError::Rejected`](crate::RedisError::Rejected).
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = Some(name.into());
        self
    }

    /// Caps the time to open one connection (TCP or TLS connect, `AUTH`, `SELECT`,
    /// `CLIENT SETNAME`). The pool's own `create_timeout` (the `timeout` passed to
    /// `create`) always applies; this can only make it shorter. Default: no extra cap.
    /// Not how long `acquire` waits for a connection: that is the pool's `wait_timeout`.
    pub fn with_connect_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for its reply (socket read and write timeouts).
    ///
    /// A command that times out fails with an I/O error and marks the connection broken:
    /// its late reply would otherwise be read by the next command. `None` waits forever.
    /// Default: 30 seconds.
    pub fn with_response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// The database index connections use.
    pub fn database(&self) -> i64 {
        self.db
    }

    /// The ACL username, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether a password is set (the password itself is not readable back).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The client name set with `CLIENT SETNAME`, if any.
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// The response timeout (see [`with_response_timeout`](Self::with_response_timeout)).
    pub fn response_timeout(&self) -> Option<Duration> {
        self.response_timeout
    }

    /// The connect timeout cap (see [`with_connect_timeout`](Self::with_connect_timeout)).
    pub fn connect_timeout(&self) -> Option<Duration> {
        self.connect_timeout
    }

    /// The server's address without credentials: `host:port` or the socket path.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The settings as a `redis` crate [`ConnectionInfo`] (which holds the password).
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn sync_info(&mut self) {
        let mut settings = self.info.redis_settings().clone().set_db(self.db);
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose());
        }
        self.info = self.info.clone().set_redis_settings(settings);
    }
}

impl FromStr for RedisConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedisConfig::new(s)
    }
}

/// The URL without the password: `redis://user:***@host:port/db`.
impl fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.username.as_deref().unwrap_or("");
        let creds = match (&self.username, &self.password) {
            (None, None) => String::new(),
            (_, Some(_)) => format!("{user}:***@"),
            (Some(_), None) => format!("{user}@"),
        };
        match &self.addr {
            ConnectionAddr::Tcp(host, port) => {
                write!(f, "redis://{creds}{}:{port}/{}", bracket(host), self.db)
            }
            ConnectionAddr::TcpTls { host, port, .. } => {
                write!(f, "rediss://{creds}{}:{port}/{}", bracket(host), self.db)
            }
            ConnectionAddr::Unix(path) => {
                write!(f, "redis+unix://{}?db={}", path.display(), self.db)?;
                if self.username.is_some() {
                    write!(f, "&user={user}")?;
                }
                if self.password.is_some() {
                    f.write_str("&pass=***")?;
                }
                Ok(())
            }
            other => write!(f, "redis://{creds}{other}/{}", self.db),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.to_string())
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("client_name", &self.client_name)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The redis crate's parse error, described without echoing the input.
fn describe_parse_error(e: &redis::RedisError) -> String {
    // The redis crate's messages are fixed strings ("Redis URL did not parse", "Invalid
    // database number", ...), optionally with a detail that is not the password.
    let mut msg = e.to_string();
    if msg.is_empty() {
        msg = "the URL did not parse".into();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_hides_password() {
        let c = RedisConfig::new("redis://:hunter2@localhost:6380/4").unwrap();
        assert_eq!(c.to_string(), "redis://:***@localhost:6380/4");
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = c.with_password("other-secret").with_username("bob");
        assert_eq!(c.to_string(), "redis://bob:***@localhost:6380/4");
        assert!(!format!("{c:?}").contains("other-secret"));
        assert_eq!(
            c.connection_info().redis_settings().password(),
            Some("other-secret")
        );
        assert_eq!(c.connection_info().redis_settings().username(), Some("bob"));
    }

    #[test]
    fn unix_urls() {
        let c = RedisConfig::new("redis+unix:///tmp/redis.sock?db=2&pass=pw").unwrap();
        assert_eq!(c.database(), 2);
        assert_eq!(c.to_string(), "redis+unix:///tmp/redis.sock?db=2&pass=***");
    }

    #[test]
    fn bad_urls_are_errors_without_the_url() {
        for bad in [
            "",
            "localhost:6379",
            "http://localhost",
            "redis://:pw-in-bad-url@localhost/abc",
            "redis://",
            "redis://0.0.0.0",
            "redis://h/?protocol=9",
            "redis://[::1",
        ] {
            let err = RedisConfig::new(bad).expect_err(bad);
            assert!(matches!(err, ConfigError::InvalidUrl(_)), "{bad}: {err:?}");
            assert!(!err.to_string().contains("pw-in-bad-url"));
            assert!(crate::RedisError::from(err).is_permanent());
        }
    }

    #[test]
    fn no_text_shows_the_password_good_url_or_bad() {
        const PW: &str = "Zq9-secret-Pw";
        for url in [
            format!("redis://:{PW}@localhost:6380/4"),
            format!("redis://alice:{PW}@127.0.0.1/0"),
            format!("redis://alice:{PW}@[::1]:7000"),
            format!("redis+unix:///tmp/redis.sock?db=1&user=alice&pass={PW}"),
            format!("redis://:{PW}@localhost:notaport"),
            format!("redis://:{PW}@localhost/notadb"),
            format!("redis://:{PW}@[::1"),
            format!("redis://:{PW}@localhost/?protocol=9"),
            format!("redis+unix://?pass={PW}"),
            format!("rediss://:{PW}@localhost"),
            format!("http://:{PW}@localhost"),
            format!("redis://alice:{PW}@"),
        ] {
            let text = match RedisConfig::new(&url) {
                Ok(c) => {
                    let info = c.connection_info();
                    assert_eq!(info.redis_settings().password(), Some(PW), "{url}");
                    format!("{c} {c:?} {c:#?} {info:?} {}", c.address())
                }
                Err(e) => format!("{e} {e:?} {e:#?}"),
            };
            assert!(!text.contains(PW), "{url}: {text}");
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_needs_the_feature() {
        for url in [
            "rediss://localhost",
            "REDISS://:pw@localhost:6380/1",
            "valkeys://h",
        ] {
            let err = RedisConfig::new(url).unwrap_err();
            assert_eq!(
                err,
                ConfigError::InvalidUrl(
                    "rediss:// (TLS) URLs need the `tls` cargo feature of pool-redis".into()
                ),
                "{url}"
            );
            assert!(crate::RedisError::from(err).is_permanent());
        }
        let err = crate::RedisConnectionFactory::new("rediss://localhost").unwrap_err();
        assert!(err.to_string().contains("`tls` cargo feature"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_certificates_are_checked_when_given_and_kept() {
        use redis::TlsCertificates;
        let roots = |pem: &str| TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.as_bytes().to_vec()),
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();

        // Not rediss://, no certificate in the PEM, a certificate that does not parse.
        let plain = RedisConfig::new("redis://localhost").unwrap();
        let tls = RedisConfig::new("rediss://:Pw-7x@localhost:6380/2").unwrap();
        let broken = ca.replace("MII", "MIX");
        for (config, pem, want) in [
            (&plain, ca.as_str(), "need a rediss:// URL"),
            (&tls, "no certificate here", "no PEM certificate"),
            (&tls, broken.as_str(), "trust anchors"),
        ] {
            let err = config
                .clone()
                .with_tls_certificates(roots(pem))
                .unwrap_err();
            assert!(matches!(err, ConfigError::InvalidTls(_)), "{err:?}");
            assert!(err.to_string().contains(want), "{err}");
            assert!(crate::RedisError::from(err).is_permanent());
        }

        // Kept by the connection info, along with the password and database, also
        // through the with_* methods that rebuild it.
        let config = tls
            .with_tls_certificates(roots(&ca))
            .unwrap()
            .with_database(3);
        let info = config.connection_info();
        assert!(
            matches!(
                info.addr(),
                ConnectionAddr::TcpTls {
                    tls_params: Some(_),
                    ..
                }
            ),
            "{:?}",
            info.addr()
        );
        assert_eq!(info.redis_settings().password(), Some("Pw-7x"));
        assert_eq!(info.redis_settings().db(), 3);
        assert_eq!(config.to_string(), "rediss://:***@localhost:6380/3");
    }

    #[test]
    fn db_override() {
        let c = RedisConfig::new("redis://localhost/1")
            .unwrap()
            .with_database(5);
        assert_eq!(c.database(), 5);
        assert_eq!(c.connection_info().redis_settings().db(), 5);
    }
}
