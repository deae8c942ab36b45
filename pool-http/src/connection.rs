//! The pooled connection: an agent bound to one origin with at most one socket.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ureq::http::{self, Method};
use ureq::Agent;

use crate::config::HttpConfig;
use crate::error::HttpError;

/// A client bound to one origin that holds at most one keep-alive TCP connection.
///
/// Requests take paths relative to the origin and return the whole response
/// ([`HttpResponse`]), body included: reading it to the end is what frees the socket for
/// the next request, so one connection never needs a second socket. A status code is not an
/// error. A request that fails without a response (I/O error, timeout, protocol error)
/// marks the connection broken; the pool discards it on release.
///
/// ```no_run
/// use std::time::Duration;
/// use pool_core::ConnectionFactory;
/// use pool_http::{HttpConnectionFactory, HttpRequest};
///
/// let factory = HttpConnectionFactory::new("http://127.0.0.1:8080")?;
/// let mut conn = factory.create(Duration::from_secs(5))?;
/// let user = conn.get("/users/123")?;
/// println!("{} {}", user.status(), user.text_lossy());
///
/// let created = conn.post("/users", "application/json", br#"{"name":"ada"}"#)?;
/// assert_eq!(created.status(), 201);
///
/// let custom = HttpRequest::new("PATCH", "/users/123")
///     .header("If-Match", "\"v1\"")
///     .body(br#"{"name":"ada lovelace"}"#.to_vec())
///     .timeout(Duration::from_secs(2));
/// let patched = conn.send(custom)?;
/// # let _ = patched;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HttpConnection {
    agent: Agent,
    config: Arc<HttpConfig>,
    broken: Option<String>,
    requests: u64,
}

/// A timeout as ureq can take it: ureq adds each to the call's start and panics when that
/// overflows, so a longer one (`Duration::MAX`, "no limit") becomes a century
/// ([`FAR_FUTURE`](pool_core::backend::FAR_FUTURE)).
fn for_ureq(timeout: Duration) -> Duration {
    timeout.min(pool_core::backend::FAR_FUTURE)
}

impl HttpConnection {
    pub(crate) fn new(config: Arc<HttpConfig>) -> Self {
        let agent_config = Agent::config_builder()
            // One origin, one socket: keep one idle connection, follow no redirects (they
            // could lead elsewhere), use no proxy (it would be the socket's other end).
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            // The pool decides when an idle connection is too old (idle_timeout).
            .max_idle_age(Duration::from_secs(24 * 3600))
            .max_redirects(0)
            .proxy(None)
            .http_status_as_error(false)
            .user_agent(config.user_agent.as_str())
            .timeout_connect(Some(for_ureq(config.connect_timeout)))
            .timeout_send_request(Some(for_ureq(config.read_timeout)))
            .timeout_send_body(Some(for_ureq(config.read_timeout)))
            .timeout_recv_response(Some(for_ureq(config.read_timeout)))
            .timeout_recv_body(Some(for_ureq(config.read_timeout)))
            .build();
        HttpConnection {
            agent: Agent::new_with_config(agent_config),
            config,
            broken: None,
            requests: 0,
        }
    }

    /// The origin requests go to, `scheme://host[:port]`.
    pub fn origin(&self) -> &str {
        &self.config.origin
    }

    /// The settings of the factory that opened this connection.
    pub(crate) fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> Result<HttpResponse, HttpError> {
        self.send(HttpRequest::new("GET", path))
    }

    /// `HEAD path`.
    pub fn head(&mut self, path: &str) -> Result<HttpResponse, HttpError> {
        self.send(HttpRequest::new("HEAD", path))
    }

    /// `DELETE path`.
    pub fn delete(&mut self, path: &str) -> Result<HttpResponse, HttpError> {
        self.send(HttpRequest::new("DELETE", path))
    }

    /// `POST path` with a body of type `content_type`.
    pub fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<HttpResponse, HttpError> {
        self.send(
            HttpRequest::new("POST", path)
                .header("Content-Type", content_type)
                .body(body),
        )
    }

    /// `PUT path` with a body of type `content_type`.
    pub fn put(
        &mut self,
        path: &str,
        content_type: &str,
        body: impl Into<Vec<u8>>,
    ) -> Result<HttpResponse, HttpError> {
        self.send(
            HttpRequest::new("PUT", path)
                .header("Content-Type", content_type)
                .body(body),
        )
    }

    /// Sends any request and reads the whole response.
    pub fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let builder = self.builder(&request)?;
        let result = match &request.body {
            None => {
                let built = builder.body(()).map_err(invalid_request)?;
                self.requests += 1;
                self.run(built, request.timeout)
            }
            Some(body) => {
                let built = builder.body(body.as_slice()).map_err(invalid_request)?;
                self.requests += 1;
                self.run(built, request.timeout)
            }
        };
        result.map_err(|source| {
            if breaks_connection(&source) {
                let why = format!(
                    "{} {} failed: {source}",
                    request.method,
                    request.path_only()
                );
                self.mark_broken(why);
            }
            HttpError::Request {
                origin: self.config.origin.clone(),
                source,
            }
        })
    }

    fn run<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        timeout: Option<Duration>,
    ) -> Result<HttpResponse, ureq::Error> {
        let request = match timeout {
            Some(t) => self
                .agent
                .configure_request(request)
                .timeout_global(Some(for_ureq(t)))
                .build(),
            None => request,
        };
        let mut response = self.agent.run(request)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response
            .body_mut()
            .with_config()
            .limit(self.config.max_response_body)
            .read_to_vec()?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// Whether the last request failed without a response (or the connection was marked
    /// broken by hand). No I/O.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Why the connection is broken, if it is.
    pub fn broken_reason(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Marks the connection broken: the pool will close it instead of reusing it.
    pub fn mark_broken(&mut self, reason: impl Into<String>) {
        if self.broken.is_none() {
            let reason = reason.into();
            log::debug!(
                "HTTP connection to {} marked broken: {reason}",
                self.config.origin
            );
            self.broken = Some(reason);
        }
    }

    /// How many requests this connection has sent.
    pub fn requests_sent(&self) -> u64 {
        self.requests
    }

    /// Checks `request` and starts its `http::Request`.
    fn builder(&self, request: &HttpRequest) -> Result<http::request::Builder, HttpError> {
        check_path(&request.path)?;
        let method = Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            HttpError::InvalidRequest(format!("{:?} is not an HTTP method", request.method))
        })?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.config.origin, request.path));
        if let Some(auth) = &self.config.auth {
            builder = builder.header(http::header::AUTHORIZATION, auth.header_value());
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        Ok(builder)
    }
}

fn invalid_request(e: http::Error) -> HttpError {
    HttpError::InvalidRequest(format!("{e}"))
}

/// Errors after which the connection may hold a dead or confused socket.
fn breaks_connection(e: &ureq::Error) -> bool {
    !matches!(
        e,
        ureq::Error::Http(_)
            | ureq::Error::BadUri(_)
            | ureq::Error::BodyExceedsLimit(_)
            | ureq::Error::LargeResponseHeader(..)
            | ureq::Error::StatusCode(_)
    )
}

/// A path relative to the origin: starts with one `/`, printable ASCII, no fragment.
fn check_path(path: &str) -> Result<(), HttpError> {
    let bad = |why: &str| Err(HttpError::InvalidRequest(format!("invalid path: {why}")));
    if !path.starts_with('/') {
        return bad("it must start with '/' (paths are relative to the origin)");
    }
    if path.starts_with("//") {
        return bad("it must not start with '//'");
    }
    if path.contains('#') {
        return bad("it must not contain a fragment ('#')");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("it must be printable ASCII without spaces (percent-encode the rest)");
    }
    Ok(())
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnection")
            .field("origin", &self.config.origin)
            .field("broken", &self.broken)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// A request to send on an [`HttpConnection`]: method, path, headers, body, timeout.
///
/// ```
/// use std::time::Duration;
/// use pool_http::HttpRequest;
///
/// let request = HttpRequest::new("POST", "/jobs?priority=high")
///     .header("Content-Type", "application/json")
///     .body(br#"{"task":"reindex"}"#.to_vec())
///     .timeout(Duration::from_secs(3));
/// assert_eq!(request.method(), "POST");
/// ```
#[derive(Clone)]
pub struct HttpRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl HttpRequest {
    /// A request with `method` (`"GET"`, `"POST"`, ...) for `path` (relative to the origin,
    /// starting with `/`, query allowed). Checked when sent.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        HttpRequest::new("GET", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Bounds the whole request (connect, send, response, body) by `timeout`, on top of
    /// the config's connect and read timeouts.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path (with query).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path without its query (which may hold tokens), for messages.
    fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values and the query may carry secrets: show names and the bare path.
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path_only())
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A complete response: status, headers and the body, read to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, names in lower case, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as UTF-8, if it is.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Takes the body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(check_path("/").is_ok());
        assert!(check_path("/users/123?x=1&y=%20").is_ok());
        for bad in [
            "",
            "users",
            "//evil.example/x",
            "/a b",
            "/a#b",
            "/caf\u{e9}",
            "/a\r\nHost: x",
        ] {
            assert!(
                matches!(check_path(bad), Err(HttpError::InvalidRequest(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_requests_send_nothing_and_keep_the_connection() {
        let config = Arc::new(HttpConfig::new("http://127.0.0.1:9").unwrap());
        let mut conn = HttpConnection::new(config);
        assert!(matches!(
            conn.get("no-slash"),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(matches!(
            conn.send(HttpRequest::new("BAD METHOD", "/")),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(matches!(
            conn.send(HttpRequest::get("/").header("X-Bad", "a\nb")),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(!conn.is_broken());
        assert_eq!(conn.requests_sent(), 0);
    }
}
