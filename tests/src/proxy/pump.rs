//! The two threads of each connection (the pumps): client → server, which also connects
//! upstream and starts the other, and server → client. Each holds what a stall keeps
//! back (up to [`MAX_HELD`] bytes, and a FIN or a server's reset) and delivers it when the
//! stall heals.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::deliver::{deliver, stalled, Delivery};
use super::state::{Conn, Inner};
use super::{Direction, MAX_HELD};

/// How often blocked reads wake to look at the fault switches.
const POLL: Duration = Duration::from_millis(20);

/// One pump is done: the last one out forgets the connection (its sockets close when the
/// last `Arc` goes, with an RST if it was killed).
pub(super) fn finish(inner: &Inner, conn: &Arc<Conn>, id: u64) {
    conn.uncount(inner);
    if conn.pumps.fetch_sub(1, SeqCst) == 1 {
        inner.conns.lock().unwrap().remove(&id);
    }
    inner.threads.fetch_sub(1, SeqCst);
}

/// The connection's first thread: connects upstream (not during a blackhole), starts the
/// reverse pump, then copies client → upstream, holding what the client sends while that
/// direction is stalled.
pub(super) fn client_to_upstream(inner: &Arc<Inner>, conn: &Arc<Conn>, id: u64) {
    let _ = conn.client.set_read_timeout(Some(POLL));
    let _ = conn.client.set_write_timeout(Some(Duration::from_secs(2)));
    let mut client = &conn.client;
    let mut held: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut upstream: Option<TcpStream> = None;
    loop {
        if conn.killed.load(SeqCst) || inner.stop.load(SeqCst) {
            conn.kill();
            return;
        }
        if !inner.blackhole.load(SeqCst) && upstream.is_none() {
            // Connect upstream now (first time, or after a blackhole).
            let target = inner.upstream.expect("upstream address");
            match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                Ok(up) => {
                    let _ = up.set_nodelay(true);
                    let _ = up.set_write_timeout(Some(Duration::from_secs(2)));
                    if let Ok(local) = up.local_addr() {
                        conn.upstream_port.store(local.port(), SeqCst);
                    }
                    let Ok(up2) = up.try_clone() else {
                        conn.kill();
                        return;
                    };
                    *conn.upstream.lock().unwrap() = Some(up2);
                    if conn.killed.load(SeqCst) {
                        // Killed while connecting: make sure the new socket is reset too.
                        conn.killed.store(false, SeqCst);
                        conn.kill();
                        return;
                    }
                    inner.threads.fetch_add(1, SeqCst);
                    conn.pumps.fetch_add(1, SeqCst);
                    let spawned = {
                        let inner = inner.clone();
                        let conn = conn.clone();
                        thread::Builder::new()
                            .name("cx-proxy-down".into())
                            .spawn(move || {
                                upstream_to_client(&inner, &conn);
                                finish(&inner, &conn, id);
                            })
                    };
                    if spawned.is_err() {
                        inner.threads.fetch_sub(1, SeqCst);
                        conn.pumps.fetch_sub(1, SeqCst);
                        conn.kill();
                        return;
                    }
                    upstream = Some(up);
                }
                Err(_) => {
                    // The server is down: the client sees a reset, as with no proxy.
                    conn.kill();
                    return;
                }
            }
        }
        let stall = stalled(inner, conn, Direction::ToServer);
        if !stall && !held.is_empty() {
            if let Some(up) = upstream.as_ref() {
                let mut up = up;
                if !matches!(deliver(conn, inner, &mut up, &held), Delivery::Done) {
                    conn.kill();
                    return;
                }
                held.clear();
            }
        }
        if stall && held.len() >= MAX_HELD {
            thread::sleep(POLL);
            continue;
        }
        let n = match client.read(&mut buf) {
            Ok(0) if conn.killed.load(SeqCst) => {
                // kill() shut our read side: no FIN, the RST comes with the close.
                conn.uncount(inner);
                return;
            }
            Ok(0) => {
                // The client closed its side: pass the FIN on (after any held data).
                conn.client_gone.store(true, SeqCst);
                conn.uncount(inner);
                wait_out_stall(inner, conn, Direction::ToServer);
                if conn.killed.load(SeqCst) {
                    conn.kill();
                    return;
                }
                if let Some(up) = upstream.as_mut() {
                    if !held.is_empty() {
                        let _ = up.write_all(&held);
                    }
                    let _ = up.shutdown(Shutdown::Write);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // Reset by the client, or woken by kill().
                conn.client_gone.store(true, SeqCst);
                conn.uncount(inner);
                conn.kill();
                return;
            }
        };
        if conn.killed.load(SeqCst) {
            conn.kill();
            return;
        }
        if stalled(inner, conn, Direction::ToServer) || upstream.is_none() {
            held.extend_from_slice(&buf[..n]);
            continue;
        }
        let mut up = upstream.as_ref().expect("connected");
        if !matches!(deliver(conn, inner, &mut up, &buf[..n]), Delivery::Done) {
            conn.kill();
            return;
        }
    }
}

/// Waits while `direction` of `conn` is stalled (a FIN is delivered when it heals).
fn wait_out_stall(inner: &Inner, conn: &Conn, direction: Direction) {
    while stalled(inner, conn, direction) && !conn.killed.load(SeqCst) && !inner.stop.load(SeqCst) {
        thread::sleep(POLL);
    }
}

/// How the server ended its side, while a stall held that back from the client.
#[derive(Clone, Copy)]
enum ServerEnd {
    Fin,
    Reset,
}

/// Copies upstream → client, holding what the server sends (and its FIN or reset) while
/// that direction is stalled.
fn upstream_to_client(inner: &Inner, conn: &Conn) {
    let Some(up) = conn
        .upstream
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|u| u.try_clone().ok())
    else {
        conn.kill();
        return;
    };
    let _ = up.set_read_timeout(Some(POLL));
    let mut up = &up;
    let mut client = &conn.client;
    let mut held: Vec<u8> = Vec::new();
    let mut ended: Option<ServerEnd> = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if conn.killed.load(SeqCst) || inner.stop.load(SeqCst) {
            conn.kill();
            return;
        }
        let stall = stalled(inner, conn, Direction::ToClient);
        if !stall {
            if !held.is_empty() {
                match deliver(conn, inner, &mut client, &held) {
                    Delivery::Done => held.clear(),
                    Delivery::Reset => return,
                    Delivery::WriteFailed => return client_write_failed(conn),
                }
            }
            match ended {
                Some(ServerEnd::Fin) => {
                    let _ = conn.client.shutdown(Shutdown::Write);
                    return;
                }
                Some(ServerEnd::Reset) => {
                    conn.kill();
                    return;
                }
                None => {}
            }
        }
        if ended.is_some() || (stall && held.len() >= MAX_HELD) {
            thread::sleep(POLL);
            continue;
        }
        let n = match up.read(&mut buf) {
            Ok(0) if conn.killed.load(SeqCst) => return, // kill() shut our read side
            Ok(0) => {
                // The server closed: pass the FIN on (after any held data).
                ended = Some(ServerEnd::Fin);
                continue;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) if conn.killed.load(SeqCst) => {
                conn.kill();
                return;
            }
            Err(_) => {
                // Reset by the server: reset the client too (once any stall heals).
                ended = Some(ServerEnd::Reset);
                continue;
            }
        };
        if conn.killed.load(SeqCst) {
            conn.kill();
            return;
        }
        if stalled(inner, conn, Direction::ToClient) {
            held.extend_from_slice(&buf[..n]);
            continue;
        }
        match deliver(conn, inner, &mut client, &buf[..n]) {
            Delivery::Done => {}
            Delivery::Reset => return,
            Delivery::WriteFailed => return client_write_failed(conn),
        }
    }
}

/// A write to the client failed: if the client already left there is nothing to deliver
/// (close upstream quietly), otherwise reset both sides.
fn client_write_failed(conn: &Conn) {
    if !conn.client_gone.load(SeqCst) {
        conn.kill();
    }
}
