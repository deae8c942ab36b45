//! A fault-injecting TCP proxy for loopback chaos tests (std threads + socket2).
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:0` and forwards every accepted connection
//! to an upstream address. Faults are switched at run time, from any thread:
//!
//! * [`set_latency`](FaultProxy::set_latency): every chunk is held this long before it is
//!   forwarded, in each direction (a round trip gains twice the latency).
//! * [`set_blackhole`](FaultProxy::set_blackhole): nothing is forwarded in either
//!   direction and new connections are accepted but not connected upstream, as a network
//!   that drops every packet. Data the clients send meanwhile is held (the proxy keeps
//!   reading, so it still sees a client close its socket) and delivered when the
//!   blackhole heals, as TCP retransmission would; so are the servers' replies.
//!
//! Stalls: the network stops delivering but no socket is closed. The proxy keeps reading
//! from both sides while it holds data back (so each side's kernel acknowledges
//! everything it sends, as a middlebox that acknowledges and forwards nothing would), up
//! to [`MAX_HELD`] bytes per direction and connection, and delivers what it held when the
//! stall heals. A FIN is held like data, in either direction, and so is a reset from the
//! server; a reset from a client is passed on at once (both sides are reset, as with
//! [`reset_all`](FaultProxy::reset_all)). A blackhole is a stall of both directions for
//! every connection, new ones included. [`heal`](FaultProxy::heal) ends every stall.
//!
//! * [`set_stall`](FaultProxy::set_stall): one direction stalls (client → server or
//!   server → client) for every connection, new ones included; the other still flows.
//! * [`stall_existing`](FaultProxy::stall_existing): the connections open now stall in
//!   both directions (a blackhole that starts after their handshake); new connections
//!   flow normally.
//! * [`stall_next_startups`](FaultProxy::stall_next_startups): the next `n` connections
//!   accepted are connected upstream, but nothing the server sends them is forwarded (their
//!   startup never completes); every other connection flows.
//!
//! Other faults:
//!
//! * [`reset_all`](FaultProxy::reset_all) / [`reset_some`](FaultProxy::reset_some): both
//!   sides of current connections get an RST (`SO_LINGER` 0, then close).
//! * [`set_refuse`](FaultProxy::set_refuse): the listening socket is closed, so new
//!   connections are refused (`ECONNREFUSED`); healing listens on the same port again.
//! * [`set_reject_new`](FaultProxy::set_reject_new): new connections are accepted and
//!   reset at once (a server that dies during the handshake).
//! * [`set_cut_after`](FaultProxy::set_cut_after): a connection is reset once it has
//!   carried this many bytes (both directions, counted from its start).
//!
//! Counters: [`open`](FaultProxy::open) is the number of accepted connections whose client
//! side is still open (what the pool holds, handshakes included); [`max_open`] the most
//! ever open at once (counted at accept); [`accepted`](FaultProxy::accepted) all accepted.
//! [`OpenCounter::upstream_ports`] lists the proxy's local ports towards the server of the
//! connections whose client side is open, so that a server's own list of sessions (which
//! shows those ports as the client's) can be split into sessions a client still holds and
//! sessions whose client has left while a stall kept the server from learning it.
//!
//! Every thread the proxy starts is named `cx-proxy*`.
//!
//! This file holds [`FaultProxy`]'s control surface and [`Direction`]; beside it:
//! `state` (the shared switches and counters, one connection, its reset), `accept` (the
//! accept loop), `pump` (each connection's two forwarding threads, holding data through
//! stalls), `deliver` (stall, latency and cut applied to each chunk) and `counter`
//! ([`OpenCounter`], the kernel's view of the open connections).
//!
//! [`max_open`]: FaultProxy::max_open

mod accept;
mod counter;
mod deliver;
mod pump;
mod state;
#[cfg(test)]
mod tests;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use counter::{kernel_detail, OpenCounter};

use accept::accept_loop;
use state::{Conn, Inner};

/// Most bytes held per direction of a stalled connection before the proxy stops reading
/// that side (its kernel then stops acknowledging once its buffers are full).
pub const MAX_HELD: usize = 1 << 20;

/// Bits of a connection's own stall flags ([`Conn::stall`]).
const STALL_TO_SERVER: u8 = 1;
const STALL_TO_CLIENT: u8 = 2;

/// A direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server: requests (and the client's FIN).
    ToServer,
    /// Server → client: replies (and the server's FIN or reset).
    ToClient,
}

impl Direction {
    fn bit(self) -> u8 {
        match self {
            Direction::ToServer => STALL_TO_SERVER,
            Direction::ToClient => STALL_TO_CLIENT,
        }
    }
}

/// A fault-injecting TCP proxy in front of one upstream server. Stops when dropped.
pub struct FaultProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    accept_thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream`, with no fault on.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        // The first port is picked without SO_REUSEADDR, so that it is not the local port
        // of any other socket (the counts read the kernel's table by port).
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: listen on 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("proxy: non-blocking listener");
        let addr = listener.local_addr().expect("proxy: local address");
        let inner = Arc::new(Inner {
            upstream: Some(upstream),
            ..Inner::default()
        });
        let accept_thread = {
            let inner = inner.clone();
            thread::Builder::new()
                .name("cx-proxy-accept".into())
                .spawn(move || accept_loop(inner, listener, addr))
                .expect("proxy: spawn the accept thread")
        };
        FaultProxy {
            inner,
            addr,
            accept_thread: Some(accept_thread),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Holds every chunk `latency` before forwarding it (each direction). Zero: off.
    pub fn set_latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.inner.latency_us.store(us, SeqCst);
    }

    /// Forwards nothing (and connects nothing upstream) while on.
    pub fn set_blackhole(&self, on: bool) {
        self.inner.blackhole.store(on, SeqCst);
    }

    /// Stalls one direction of every connection, new ones included, while on (the other
    /// direction still flows, and new connections are still connected upstream).
    pub fn set_stall(&self, direction: Direction, on: bool) {
        match direction {
            Direction::ToServer => self.inner.stall_to_server.store(on, SeqCst),
            Direction::ToClient => self.inner.stall_to_client.store(on, SeqCst),
        }
    }

    /// Stalls both directions of every connection open now, until [`heal`](Self::heal);
    /// connections accepted later flow normally. Returns how many were stalled.
    pub fn stall_existing(&self) -> usize {
        let victims = self.victims(usize::MAX, true);
        for c in &victims {
            c.stall.fetch_or(STALL_TO_SERVER | STALL_TO_CLIENT, SeqCst);
        }
        victims.len()
    }

    /// The next `n` connections accepted are connected upstream and forward what the
    /// client sends, but nothing the server sends them, until [`heal`](Self::heal): their
    /// startup (greeting, authentication) never completes. Connections accepted after
    /// them, and those already open, flow normally.
    pub fn stall_next_startups(&self, n: u64) {
        self.inner.startups_to_stall.store(n, SeqCst);
    }

    /// Connections accepted with a stalled startup ([`stall_next_startups`]), in total.
    ///
    /// [`stall_next_startups`]: Self::stall_next_startups
    pub fn startups_stalled(&self) -> u64 {
        self.inner.startups_stalled.load(SeqCst)
    }

    /// Refuses new connections (the listening socket is closed) while on.
    pub fn set_refuse(&self, on: bool) {
        self.inner.refuse.store(on, SeqCst);
    }

    /// Accepts new connections and resets them at once while on.
    pub fn set_reject_new(&self, on: bool) {
        self.inner.reject_new.store(on, SeqCst);
    }

    /// Resets a connection once it has carried `bytes` bytes (None: off).
    pub fn set_cut_after(&self, bytes: Option<u64>) {
        self.inner
            .cut_after
            .store(bytes.map_or(0, |b| b.max(1)), SeqCst);
    }

    /// Turns every fault off, and ends every stall (held data is delivered).
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.set_blackhole(false);
        self.set_stall(Direction::ToServer, false);
        self.set_stall(Direction::ToClient, false);
        self.stall_next_startups(0);
        for c in self.inner.conns.lock().unwrap().values() {
            c.stall.store(0, SeqCst);
        }
        self.set_refuse(false);
        self.set_reject_new(false);
        self.set_cut_after(None);
    }

    /// Resets every open connection (both sides get an RST). Returns how many, counting
    /// only connections whose client side was still open (as [`open`](Self::open) does);
    /// half-closed leftovers still draining are reset too but not counted.
    pub fn reset_all(&self) -> usize {
        let n = self.reset_some(usize::MAX);
        // Leftovers: the client closed, a pump is still finishing.
        for c in self.victims(usize::MAX, false) {
            c.kill();
        }
        n
    }

    /// Resets up to `n` open connections (oldest first). Returns how many.
    pub fn reset_some(&self, n: usize) -> usize {
        let victims = self.victims(n, true);
        for c in &victims {
            c.kill();
        }
        self.inner.resets.fetch_add(victims.len() as u64, SeqCst);
        victims.len()
    }

    /// Up to `n` connections not yet killed, oldest first: those whose client side is
    /// open (`open_only`), or any.
    fn victims(&self, n: usize, open_only: bool) -> Vec<Arc<Conn>> {
        let conns = self.inner.conns.lock().unwrap();
        let mut ids: Vec<_> = conns.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .filter_map(|id| conns.get(id))
            .filter(|c| !c.killed.load(SeqCst))
            .filter(|c| !open_only || c.counted.load(SeqCst))
            .take(n)
            .cloned()
            .collect()
    }

    /// A handle on the `open` counter for a monitor thread.
    pub fn open_counter(&self) -> OpenCounter {
        OpenCounter(self.inner.clone(), self.addr.port())
    }

    /// Connections whose client side is open right now.
    pub fn open(&self) -> usize {
        self.inner.open.load(SeqCst)
    }

    /// The most connections ever open at once (counted when one is accepted).
    pub fn max_open(&self) -> usize {
        self.inner.max_open.load(SeqCst)
    }

    /// Starts counting `max_open` again from the current `open`.
    pub fn reset_max_open(&self) {
        self.inner.max_open.store(self.open(), SeqCst);
    }

    /// Connections accepted (and forwarded or held), in total.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(SeqCst)
    }

    /// Connections accepted and reset at once (`set_reject_new`).
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(SeqCst)
    }

    /// Connections reset by `reset_all` / `reset_some`.
    pub fn resets(&self) -> u64 {
        self.inner.resets.load(SeqCst)
    }

    /// Connections reset by `set_cut_after`.
    pub fn cuts(&self) -> u64 {
        self.inner.cuts.load(SeqCst)
    }

    /// Stops accepting, resets every connection and waits (up to 5 s) for every proxy
    /// thread to end. Also done on drop.
    pub fn stop(&mut self) {
        self.inner.stop.store(true, SeqCst);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        self.reset_all();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.inner.threads.load(SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}
