//! A TCP proxy in front of a real server with a stall switch, for the tests of what the
//! factory does when the network stops delivering without closing anything.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// A TCP proxy in front of the real server with a stall switch: while stalled, nothing is
/// forwarded in either direction and new connections are accepted but not connected
/// upstream (what clients send is held and delivered after the stall, as TCP would).
/// `live` counts accepted connections whose client has not closed.
pub struct StallProxy {
    pub addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accept: Option<thread::JoinHandle<()>>,
}

struct ProxyShared {
    upstream: SocketAddr,
    stalled: AtomicBool,
    stop: AtomicBool,
    live: AtomicUsize,
    max_live: AtomicUsize,
}

const POLL: Duration = Duration::from_millis(10);

impl StallProxy {
    pub fn start(upstream: SocketAddr) -> StallProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared {
            upstream,
            stalled: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            max_live: AtomicUsize::new(0),
        });
        let accept = {
            let shared = shared.clone();
            thread::spawn(move || {
                while !shared.stop.load(SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let live = shared.live.fetch_add(1, SeqCst) + 1;
                            shared.max_live.fetch_max(live, SeqCst);
                            let shared = shared.clone();
                            thread::spawn(move || client_to_upstream(&shared, client));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        };
        StallProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    pub fn set_stalled(&self, on: bool) {
        self.shared.stalled.store(on, SeqCst);
    }

    pub fn live(&self) -> usize {
        self.shared.live.load(SeqCst)
    }

    pub fn max_live(&self) -> usize {
        self.shared.max_live.load(SeqCst)
    }

    /// Connections to the proxy whose client has not closed, as the kernel sees them
    /// (`ESTABLISHED` or `SYN_RECV` entries for the proxy's port in `/proc/net/tcp`, once
    /// per peer; the smaller of two reads, since one read is not a snapshot). Unlike
    /// [`live`](Self::live) it does not lag behind a close that the proxy's thread has not
    /// read yet. Falls back to `live` where there is no `/proc/net/tcp`.
    pub fn kernel_live(&self) -> usize {
        let read = || -> Option<usize> {
            let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
            let local = format!("0100007F:{:04X}", self.addr.port());
            let peers: std::collections::HashSet<&str> = table
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let mut f = l.split_whitespace();
                    let (_, loc, rem, st) = (f.next(), f.next()?, f.next()?, f.next()?);
                    (loc == local && matches!(st, "01" | "03")).then_some(rem)
                })
                .collect();
            Some(peers.len())
        };
        match (read(), read()) {
            (Some(a), Some(b)) => a.min(b),
            _ => self.live(),
        }
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn client_to_upstream(shared: &Arc<ProxyShared>, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(POLL));
    let mut upstream: Option<TcpStream> = None;
    let mut held = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut reader = &client;
    loop {
        if shared.stop.load(SeqCst) {
            break;
        }
        let stalled = shared.stalled.load(SeqCst);
        if !stalled && upstream.is_none() {
            let Ok(up) = TcpStream::connect(shared.upstream) else {
                break;
            };
            let (down_from, down_to) = (up.try_clone().unwrap(), client.try_clone().unwrap());
            let shared = shared.clone();
            thread::spawn(move || upstream_to_client(&shared, down_from, down_to));
            upstream = Some(up);
        }
        if !stalled && !held.is_empty() {
            if upstream.as_ref().unwrap().write_all(&held).is_err() {
                break;
            }
            held.clear();
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => held.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    // The client closed (or the proxy stops): pass the close on after the stall.
    shared.live.fetch_sub(1, SeqCst);
    while shared.stalled.load(SeqCst) && !shared.stop.load(SeqCst) {
        thread::sleep(POLL);
    }
    if let Some(up) = upstream {
        if !held.is_empty() {
            let _ = (&up).write_all(&held);
        }
        let _ = up.shutdown(Shutdown::Write);
    }
    let _ = client.shutdown(Shutdown::Both);
}

fn upstream_to_client(shared: &ProxyShared, upstream: TcpStream, client: TcpStream) {
    let _ = upstream.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 16 * 1024];
    let (mut from, mut to) = (&upstream, &client);
    loop {
        if shared.stop.load(SeqCst) {
            break;
        }
        if shared.stalled.load(SeqCst) {
            thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = client.shutdown(Shutdown::Write);
    let _ = upstream.shutdown(Shutdown::Both);
}
