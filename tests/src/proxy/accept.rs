//! The accept loop: listens (again, after `set_refuse`), accepts, rejects while
//! `set_reject_new` is on, and starts each connection's first pump thread.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

use super::pump::{client_to_upstream, finish};
use super::state::{Conn, Inner};
use super::STALL_TO_CLIENT;

/// How often the accept loop looks for new connections.
const ACCEPT_POLL: Duration = Duration::from_millis(1);

/// A listening socket on 127.0.0.1:`port` with SO_REUSEADDR (to listen again on the same
/// port after `set_refuse`), non-blocking (the accept loop polls).
fn listen(port: u16) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub(super) fn accept_loop(inner: Arc<Inner>, listener: TcpListener, addr: SocketAddr) {
    let mut listener = Some(listener);
    while !inner.stop.load(SeqCst) {
        let refuse = inner.refuse.load(SeqCst);
        if refuse && listener.is_some() {
            // Closing the listener resets connections queued but not accepted yet, as a
            // dying server's kernel would.
            listener = None;
        } else if !refuse && listener.is_none() {
            match listen(addr.port()) {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let Some(l) = &listener else {
            thread::sleep(ACCEPT_POLL);
            continue;
        };
        match l.accept() {
            Ok((client, _)) => on_accept(&inner, client),
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(_) => thread::sleep(ACCEPT_POLL),
        }
    }
}

fn on_accept(inner: &Arc<Inner>, client: TcpStream) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    if inner.reject_new.load(SeqCst) {
        inner.rejected.fetch_add(1, SeqCst);
        let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
        drop(client);
        return;
    }
    inner.accepted.fetch_add(1, SeqCst);
    let now = inner.open.fetch_add(1, SeqCst) + 1;
    inner.max_open.fetch_max(now, SeqCst);
    let stall_startup = inner
        .startups_to_stall
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if stall_startup {
        inner.startups_stalled.fetch_add(1, SeqCst);
    }
    let conn = Arc::new(Conn {
        client,
        upstream: Mutex::new(None),
        killed: AtomicBool::new(false),
        client_gone: AtomicBool::new(false),
        counted: AtomicBool::new(true),
        bytes: AtomicU64::new(0),
        pumps: AtomicUsize::new(1),
        stall: AtomicU8::new(if stall_startup { STALL_TO_CLIENT } else { 0 }),
        upstream_port: AtomicU16::new(0),
    });
    let id = inner.next_id.fetch_add(1, SeqCst);
    inner.conns.lock().unwrap().insert(id, conn.clone());
    inner.threads.fetch_add(1, SeqCst);
    let spawned = {
        let inner = inner.clone();
        let conn = conn.clone();
        thread::Builder::new()
            .name("cx-proxy-up".into())
            .spawn(move || {
                client_to_upstream(&inner, &conn, id);
                finish(&inner, &conn, id);
            })
    };
    if spawned.is_err() {
        inner.threads.fetch_sub(1, SeqCst);
        conn.kill();
        conn.uncount(inner);
        inner.conns.lock().unwrap().remove(&id);
    }
}
