//! The origin and the knobs.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pool_core::backend::Secret;

use crate::error::ConfigError;

/// Default connect timeout: 10 seconds (the pool's `create_timeout` also applies).
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read (and write) timeout: 30 seconds per phase of a request.
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default largest response body read into memory: 16 MiB.
pub(crate) const DEFAULT_MAX_RESPONSE_BODY: u64 = 16 * 1024 * 1024;

/// How requests authenticate.
#[derive(Clone)]
pub(crate) enum Auth {
    Basic { user: String, header: Secret },
    Bearer { header: Secret },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { user, .. } => write!(f, "Basic({user:?}, ***)"),
            Auth::Bearer { .. } => f.write_str("Bearer(***)"),
        }
    }
}

impl Auth {
    pub(crate) fn header_value(&self) -> &str {
        match self {
            Auth::Basic { header, .. } | Auth::Bearer { header } => header.expose(),
        }
    }
}

/// The origin to talk to and how.
///
/// Made from an origin URL, `scheme://host[:port]` with an optional trailing `/`
/// ([`new`](Self::new)), then adjusted with the `with_*` methods (which never fail).
///
/// Defaults: connect timeout 10 s, read timeout 30 s, probe `HEAD /`, responses up to
/// 16 MiB, user agent `pool-http/<version>`, no credentials.
///
/// ```
/// use std::time::Duration;
/// use pool_http::HttpConfig;
///
/// let config = HttpConfig::new("http://127.0.0.1:8080/")?
///     .with_connect_timeout(Duration::from_secs(1))
///     .with_basic_auth("svc", "s3cret");
/// assert_eq!(config.origin(), "http://127.0.0.1:8080");
/// assert!(!format!("{config:?}").contains("s3cret"));
///
/// assert!(HttpConfig::new("http://127.0.0.1:8080/api").is_err()); // a path
/// assert!(HttpConfig::new("ftp://127.0.0.1").is_err());            // a scheme
/// # Ok::<(), pool_http::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct HttpConfig {
    pub(crate) origin: String,
    pub(crate) https: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) probe_path: String,
    pub(crate) probe: bool,
    pub(crate) max_response_body: u64,
    pub(crate) user_agent: String,
    pub(crate) auth: Option<Auth>,
}

impl HttpConfig {
    /// Parses an origin: `http://host[:port]` or `https://host[:port]`.
    ///
    /// Rejected, with a [`ConfigError::InvalidOrigin`] that says why: anything with a
    /// path other than `/`, a query, a fragment, `user:password@`, an unknown scheme, an
    /// empty or malformed host, a port outside 1–65535, and `https://` without the `tls`
    /// cargo feature.
    pub fn new(origin: &str) -> Result<Self, ConfigError> {
        let (origin, https) = parse_origin(origin)?;
        Ok(HttpConfig {
            origin,
            https,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            probe_path: "/".to_owned(),
            probe: true,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            user_agent: concat!("pool-http/", env!("CARGO_PKG_VERSION")).to_owned(),
            auth: None,
        })
    }

    /// Caps the time to open the TCP (and TLS) connection. The pool's
    /// `create_timeout` applies too. Default: 10 seconds. Not how long `acquire` waits
    /// for a connection: that is the pool's `wait_timeout`.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each phase of a request may take: sending it, waiting for the response
    /// head, reading the body. A request that times out fails with
    /// [`HttpError::Request`](crate::HttpError::Request) and marks the connection broken.
    /// Default: 30 seconds.
    pub fn with_read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// The path `create` and the factory's `validate` send a `HEAD` request to (any
    /// status counts as "the server answers"), and [`PingValidation`](crate::PingValidation)
    /// a `GET` (which must answer 2xx). Turns probing on. Default: `/`.
    ///
    /// An invalid path makes `create` fail with
    /// [`HttpError::InvalidRequest`](crate::HttpError::InvalidRequest).
    pub fn with_probe_path(mut self, path: impl Into<String>) -> Self {
        self.probe_path = path.into();
        self.probe = true;
        self
    }

    /// Whether `create` and `validate` send the probe (default: on). Off, `create` only
    /// checks that a TCP connection can be opened (and closes it), and the socket is opened
    /// by the first request; `validate` then checks a TCP connect too. Turn it off for
    /// services where `HEAD /` is expensive or forbidden.
    pub fn with_probe(mut self, on: bool) -> Self {
        self.probe = on;
        self
    }

    /// The largest response body read into memory; a larger one fails the request with
    /// [`HttpError::Request`](crate::HttpError::Request) (the socket is closed, the
    /// connection stays usable). Default: 16 MiB.
    pub fn with_max_response_body(mut self, bytes: u64) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// The `User-Agent` header. Default: `pool-http/<version>`.
    pub fn with_user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// Sends `Authorization: Basic ...` with every request. The password is never shown.
    ///
    /// With credentials set, a `401` or `407` answer to the probe in `create` is a
    /// permanent [`HttpError::Unauthorized`](crate::HttpError::Unauthorized).
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl AsRef<str>) -> Self {
        let user = user.into();
        let token = base64(format!("{user}:{}", password.as_ref()).as_bytes());
        self.auth = Some(Auth::Basic {
            user,
            header: Secret::new(format!("Basic {token}")),
        });
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request. The token is never shown.
    pub fn with_bearer_token(mut self, token: impl AsRef<str>) -> Self {
        self.auth = Some(Auth::Bearer {
            header: Secret::new(format!("Bearer {}", token.as_ref())),
        });
        self
    }

    /// The canonical origin, `scheme://host[:port]` without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the origin is `https://`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The read timeout.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// The probe path, if probing is on.
    pub fn probe_path(&self) -> Option<&str> {
        self.probe.then_some(self.probe_path.as_str())
    }

    /// Whether credentials are set.
    pub fn has_credentials(&self) -> bool {
        self.auth.is_some()
    }
}

impl FromStr for HttpConfig {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HttpConfig::new(s)
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("origin", &self.origin)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("probe_path", &self.probe_path())
            .field("max_response_body", &self.max_response_body)
            .field("user_agent", &self.user_agent)
            .field("auth", &self.auth)
            .finish()
    }
}

/// The origin (no credentials are ever part of it).
impl fmt::Display for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

fn invalid(why: impl Into<String>) -> ConfigError {
    ConfigError::InvalidOrigin(why.into())
}

/// Checks an origin and returns its canonical form and whether it is https.
fn parse_origin(input: &str) -> Result<(String, bool), ConfigError> {
    let input = input.trim();
    let Some((scheme, rest)) = input.split_once("://") else {
        return Err(invalid(
            "expected an origin such as http://host:port (no scheme found)",
        ));
    };
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => {
            if !cfg!(feature = "tls") {
                return Err(invalid(
                    "https:// origins need the `tls` cargo feature of pool-http",
                ));
            }
            true
        }
        _ => return Err(invalid("unsupported scheme (expected http:// or https://)")),
    };
    // Everything up to the first '/', '?' or '#' is the authority.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(invalid(
            "credentials in the origin are not supported (use with_basic_auth or with_bearer_token)",
        ));
    }
    match tail {
        "" | "/" => {}
        t if t.starts_with('?') || t.starts_with("/?") => {
            return Err(invalid("an origin has no query string"))
        }
        t if t.starts_with('#') || t.starts_with("/#") => {
            return Err(invalid("an origin has no fragment"))
        }
        _ => {
            return Err(invalid(
                "an origin has no path (pass paths to the requests instead)",
            ))
        }
    }
    let (host, port) = split_host_port(authority)?;
    let origin = match port {
        Some(p) => format!("{}://{host}:{p}", if https { "https" } else { "http" }),
        None => format!("{}://{host}", if https { "https" } else { "http" }),
    };
    // Last check: the http crate must accept it too.
    if format!("{origin}/").parse::<ureq::http::Uri>().is_err() {
        return Err(invalid("the host is not valid"));
    }
    Ok((origin, https))
}

fn split_host_port(authority: &str) -> Result<(String, Option<u16>), ConfigError> {
    if authority.is_empty() {
        return Err(invalid("the host is empty"));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(invalid("unterminated [IPv6] host"));
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("the [IPv6] host is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid("junk after [IPv6] host"))?,
            ),
        };
        (format!("[{v6}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (authority.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(invalid("the host is empty"));
    }
    if !host.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(invalid("the host has characters a host name cannot have"));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(invalid("the port must be a number from 1 to 65535")),
            Ok(n) => Some(n),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// Standard base64 with padding (for Basic auth).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_origins() {
        for (input, want) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            ("HTTP://LocalHost", "http://localhost"),
            ("http://[::1]:99", "http://[::1]:99"),
            ("  http://svc.internal:1  ", "http://svc.internal:1"),
        ] {
            assert_eq!(HttpConfig::new(input).unwrap().origin(), want, "{input}");
        }
    }

    #[test]
    fn bad_origins_are_typed_errors() {
        for input in [
            "",
            "127.0.0.1:8080",
            "ftp://host",
            "http://",
            "http://host/path",
            "http://host/?q=1",
            "http://host?q=1",
            "http://host#frag",
            "http://user:pw@host",
            "http://host:0",
            "http://host:99999",
            "http://host:abc",
            "http://ho st",
            "http://[::1",
            "http://[nothex]:80",
            "http://host:80:80",
            "http://\u{e9}t\u{e9}.example",
        ] {
            let err = HttpConfig::new(input).expect_err(input);
            assert!(
                matches!(err, ConfigError::InvalidOrigin(_)),
                "{input}: {err:?}"
            );
            assert!(!err.to_string().contains("pw@"), "{err}");
            assert!(crate::HttpError::from(err).is_permanent());
        }
    }

    #[test]
    fn credentials_in_an_origin_are_refused_without_showing_them() {
        const PW: &str = "Zq9-secret-Pw";
        for input in [
            format!("http://user:{PW}@host"),
            format!("http://user:{PW}@host:8080/"),
            format!("http://:{PW}@127.0.0.1"),
            format!("http://user:{PW}@[::1]:99"),
            format!("http://user:{PW}@host/path?q=1"),
            format!("http://user:{PW}@host:abc"),
            format!("http://user:{PW}@"),
            format!("ftp://user:{PW}@host"),
        ] {
            let err = HttpConfig::new(&input).expect_err(&input);
            let text = format!("{err} {err:?} {err:#?}");
            assert!(!text.contains(PW), "{input}: {text}");
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn https_needs_the_feature() {
        let err = HttpConfig::new("https://localhost").unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn debug_hides_credentials() {
        let c = HttpConfig::new("http://h")
            .unwrap()
            .with_basic_auth("u", "pw-123");
        let d = format!("{c:?} {c}");
        assert!(
            !d.contains("pw-123") && !d.contains(&base64(b"u:pw-123")),
            "{d}"
        );
        let c = c.with_bearer_token("tok-456");
        let d = format!("{c:?} {c}");
        assert!(!d.contains("tok-456"), "{d}");
    }
}
