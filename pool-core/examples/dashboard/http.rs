//! Just enough HTTP/1.1 over `std::net` for a page on loopback: one request per
//! connection (`Connection: close`), a bounded request head, bounded reads and writes.
//!
//! Two checks keep other web pages away from it (a browser lets any site send requests to
//! 127.0.0.1): the `Host` header must name the loopback address it listens on (so a DNS
//! rebinding name is refused), and a `POST` that carries an `Origin` must come from the
//! dashboard's own page.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// Bound on reading a request's head (all of it, however slowly it trickles in) and on
/// each write of its response.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once at most (each on its own short-lived thread).
const MAX_CONNECTIONS: usize = 32;
/// How often the accept loop looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A request, as far as the dashboard cares.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string's `key=value` pairs (no percent-decoding: the dashboard's keys and
    /// values are plain).
    pub query: Vec<(String, String)>,
}

impl Request {
    /// The value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A response: status, content type, body.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// `200 OK` with `body` of type `content_type`.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    /// An error status with a plain-text explanation.
    pub fn error(status: u16, text: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{text}\n").into_bytes(),
        }
    }
}

/// What answers requests.
pub type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// The server: an accept thread, one thread per connection.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl HttpServer {
    /// Listens on 127.0.0.1:`port` (0: any free port) and serves `handler`.
    pub fn start(port: u16, handler: Arc<Handler>) -> io::Result<HttpServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        // Non-blocking, so the accept loop can see its stop flag: stop() is then bounded.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("dashboard-http".into())
            .spawn(move || accept_loop(listener, addr, flag, handler))?;
        Ok(HttpServer { addr, stop, thread })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting (within one poll interval); connections being served finish on
    /// their own, within their I/O timeouts.
    pub fn stop(self) {
        // Relaxed: a flag; the join below is what waits for the thread.
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}

/// Accepts until stopped; each connection is served on a thread of its own (a browser
/// keeps idle connections open, which must not hold up the next request).
fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handler: Arc<Handler>,
) {
    let serving = Arc::new(AtomicUsize::new(0));
    while !stop.load(Relaxed) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(POLL);
                continue;
            }
            Err(_) => continue, // a connection reset before it was accepted, ...
        };
        // Relaxed: a counter that bounds the threads; no data is published through it.
        if serving.fetch_add(1, Relaxed) >= MAX_CONNECTIONS {
            serving.fetch_sub(1, Relaxed);
            continue; // dropped: the client retries
        }
        let (handler, done) = (handler.clone(), serving.clone());
        let spawned = thread::Builder::new()
            .name("dashboard-http-conn".into())
            .spawn(move || {
                let _ = serve(stream, addr, &*handler);
                done.fetch_sub(1, Relaxed);
            });
        if spawned.is_err() {
            serving.fetch_sub(1, Relaxed);
        }
    }
}

/// Reads one request, answers it, closes.
fn serve(mut stream: TcpStream, addr: SocketAddr, handler: &Handler) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let response = match read_head(&mut stream)? {
        Some(head) => match parse(&head, addr) {
            Ok(request) => handler(&request),
            Err(refused) => refused,
        },
        None => Response::error(431, "request head too large"),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// The request head up to the blank line, within [`IO_TIMEOUT`]; `None` when it is
/// longer than [`MAX_HEAD`]. (A request body, which the dashboard's requests do not
/// have, is not read.)
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

/// The request line and the two checks (the module's docs): a refused request is the
/// response to send.
fn parse(head: &str, addr: SocketAddr) -> Result<Request, Response> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target)) = (first.next(), first.next()) else {
        return Err(Response::error(400, "bad request line"));
    };
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    };
    let port = addr.port();
    let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    if !header("host").is_some_and(|h| hosts.iter().any(|ok| ok == h)) {
        return Err(Response::error(
            421,
            "this server answers to 127.0.0.1 only",
        ));
    }
    if method == "POST" {
        if let Some(origin) = header("origin") {
            if !hosts.iter().any(|ok| origin == format!("http://{ok}")) {
                return Err(Response::error(
                    403,
                    "controls only from the dashboard's page",
                ));
            }
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect();
    Ok(Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query,
    })
}

/// The reason phrase of the statuses the dashboard sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}
