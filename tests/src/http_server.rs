//! A small HTTP/1.1 service (tiny_http) on loopback, for the HTTP backend's chaos runs.
//!
//! It is started from a thread named `cx-httpd`, and tiny_http's threads (unnamed)
//! inherit that name, so thread-count checks can leave the server out
//! ([`HTTPD_THREADS`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The name prefix of every thread the server runs on.
pub const HTTPD_THREADS: &str = "cx-httpd";

/// The service: `/health` and `/work` answer 200 `ok`, anything else 404.
pub struct HttpServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    /// Requests answered.
    pub requests: Arc<AtomicU64>,
}

impl HttpServer {
    /// Starts on 127.0.0.1:0 with a few worker threads.
    pub fn start() -> HttpServer {
        quiet_known_tiny_http_panic();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let (server, workers) = {
            let stop = stop.clone();
            let requests = requests.clone();
            thread::Builder::new()
                .name(HTTPD_THREADS.into())
                .spawn(move || {
                    let server = Arc::new(
                        tiny_http::Server::http("127.0.0.1:0").expect("tiny_http on loopback"),
                    );
                    let workers = (0..4)
                        .map(|_| {
                            let (server, stop, requests) =
                                (server.clone(), stop.clone(), requests.clone());
                            thread::Builder::new()
                                .name(HTTPD_THREADS.into())
                                .spawn(move || serve(&server, &stop, &requests))
                                .expect("spawn an HTTP worker")
                        })
                        .collect::<Vec<_>>();
                    (server, workers)
                })
                .expect("spawn the HTTP starter")
                .join()
                .expect("start the HTTP server")
        };
        let addr = server
            .server_addr()
            .to_ip()
            .expect("tiny_http listens on IP");
        HttpServer {
            addr,
            server,
            stop,
            workers,
            requests,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn serve(server: &tiny_http::Server, stop: &AtomicBool, requests: &AtomicU64) {
    while !stop.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(50)) {
            Ok(Some(rq)) => {
                requests.fetch_add(1, Ordering::Relaxed);
                let path = rq.url().split('?').next().unwrap_or("").to_owned();
                let (status, body): (u16, &[u8]) = match path.as_str() {
                    "/" | "/health" | "/work" => (200, b"ok"),
                    _ => (404, b"not found"),
                };
                let _ = rq.respond(tiny_http::Response::from_data(body).with_status_code(status));
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.server.unblock();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// tiny_http 0.12 unwraps the peer address of an accepted socket in its connection thread
/// (`client.rs:153`). When the fault proxy resets a connection right after accept, that
/// address is gone, and the thread panics; tiny_http spawns a fresh thread for the next
/// connection, so the server keeps serving. This hook prints one line for that known panic
/// instead of a full backtrace; every other panic goes to the previous hook unchanged.
fn quiet_known_tiny_http_panic() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_tiny_http = info
                .location()
                .is_some_and(|l| l.file().contains("tiny_http"));
            if in_tiny_http {
                eprintln!("note: a tiny_http connection thread panicked (known tiny_http 0.12 bug on reset sockets): {info}");
            } else {
                previous(info);
            }
        }));
    });
}
