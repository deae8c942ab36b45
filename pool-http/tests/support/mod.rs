//! A real HTTP/1.1 server (tiny_http) on loopback, behind a thin counting front door that
//! counts the TCP connections the server side has open and can drop them all (a restart).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Counts of the server side's TCP connections.
#[derive(Default)]
pub struct Counts {
    /// Connections open right now.
    pub open: AtomicUsize,
    /// The most that were ever open at once.
    pub max_open: AtomicUsize,
    /// Connections accepted in total.
    pub accepted: AtomicUsize,
    /// Requests answered.
    pub requests: AtomicUsize,
}

impl Counts {
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The test service: tiny_http answering a few routes, reachable through `port`.
pub struct TestServer {
    pub port: u16,
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    clients: Arc<Mutex<Vec<TcpStream>>>,
    accept_thread: Option<JoinHandle<()>>,
    http: Arc<tiny_http::Server>,
    http_thread: Option<JoinHandle<()>>,
}

/// Routes:
/// * `/health` → 200 `ok`
/// * `/users/<id>` → 200 `{"id":<id>}`
/// * `/status/<code>` → that status
/// * `/slow/<ms>` → 200 after sleeping `ms`
/// * `/secure` → 200 with `Authorization: Basic dXNlcjpyaWdodA==` (user:right), else 401
/// * `/echo` → 200 with the request body
/// * `/big` → 200 with 100 000 bytes
/// * anything else → 404
fn handle(mut rq: tiny_http::Request, counts: &Counts) {
    counts.requests.fetch_add(1, Ordering::SeqCst);
    let url = rq.url().to_owned();
    let path = url.split('?').next().unwrap_or("").to_owned();
    let (status, body): (u16, Vec<u8>) = if path == "/health" || path == "/" {
        (200, b"ok".to_vec())
    } else if let Some(id) = path.strip_prefix("/users/") {
        (200, format!("{{\"id\":{id}}}").into_bytes())
    } else if let Some(code) = path.strip_prefix("/status/") {
        (code.parse().unwrap_or(500), Vec::new())
    } else if let Some(ms) = path.strip_prefix("/slow/") {
        thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
        (200, b"slow".to_vec())
    } else if path == "/secure" {
        let ok = rq.headers().iter().any(|h| {
            h.field.equiv("Authorization") && h.value.as_str() == "Basic dXNlcjpyaWdodA=="
        });
        if ok {
            (200, b"welcome".to_vec())
        } else {
            (401, b"who are you".to_vec())
        }
    } else if path == "/echo" {
        let mut body = Vec::new();
        let _ = rq.as_reader().read_to_end(&mut body);
        (200, body)
    } else if path == "/big" {
        (200, vec![b'x'; 100_000])
    } else {
        (404, b"not found".to_vec())
    };
    let response = tiny_http::Response::from_data(body).with_status_code(status);
    let _ = rq.respond(response);
}

impl TestServer {
    /// Starts on a free port.
    pub fn start() -> TestServer {
        Self::start_on(0)
    }

    /// Starts on `port` (0: any), retrying while a just-closed port is not free yet.
    pub fn start_on(port: u16) -> TestServer {
        let mut tries = 0;
        let front = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot bind 127.0.0.1:{port}: {e}"),
            }
        };
        let port = front.local_addr().unwrap().port();
        let back = TcpListener::bind("127.0.0.1:0").unwrap();
        let back_addr = back.local_addr().unwrap();
        let http = Arc::new(tiny_http::Server::from_listener(back, None).unwrap());
        let counts = Arc::new(Counts::default());

        let http_thread = {
            let http = http.clone();
            let counts = counts.clone();
            thread::spawn(move || {
                for rq in http.incoming_requests() {
                    let counts = counts.clone();
                    // one thread per request, so slow requests do not hold up others
                    thread::spawn(move || handle(rq, &counts));
                }
            })
        };

        let stop = Arc::new(AtomicBool::new(false));
        let clients: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accept_thread = {
            let stop = stop.clone();
            let clients = clients.clone();
            let counts = counts.clone();
            thread::spawn(move || accept_loop(front, back_addr, stop, clients, counts))
        };
        TestServer {
            port,
            counts,
            stop,
            clients,
            accept_thread: Some(accept_thread),
            http,
            http_thread: Some(http_thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops accepting and closes every open connection, as a dying server would.
    pub fn stop(&mut self) {
        if self.stop.swap(true, Ordering::SeqCst) {
            return;
        }
        // wake the accept loop
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for c in self.clients.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        self.http.unblock();
        if let Some(t) = self.http_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    front: TcpListener,
    back: SocketAddr,
    stop: Arc<AtomicBool>,
    clients: Arc<Mutex<Vec<TcpStream>>>,
    counts: Arc<Counts>,
) {
    for stream in front.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(client) = stream else { continue };
        let Ok(server) = TcpStream::connect(back) else {
            continue;
        };
        counts.accepted.fetch_add(1, Ordering::SeqCst);
        let now = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
        counts.max_open.fetch_max(now, Ordering::SeqCst);
        if let Ok(c) = client.try_clone() {
            clients.lock().unwrap().push(c);
        }
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        let counts = counts.clone();
        let clients = clients.clone();
        thread::spawn(move || {
            // client -> server until the client closes (or is killed)
            pump(client, server);
            counts.open.fetch_sub(1, Ordering::SeqCst);
            // forget the closed stream
            let mut list = clients.lock().unwrap();
            list.retain(|c| c.peer_addr().is_ok());
        });
        thread::spawn(move || pump(s2, c2));
    }
}

/// Copies `from` to `to` until either ends, then shuts both down.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Shared with every crate's tests (each test binary uses some of them).
#[allow(unused_imports)]
pub use test_support::{
    assert_no_repeated_causes, captured_logs, chain_text, closed_port, error_chain, eventually,
    install_logger,
};
