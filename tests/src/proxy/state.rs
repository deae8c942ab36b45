//! What the proxy's threads share: [`Inner`] (the fault switches, the counters and the
//! table of connections) and [`Conn`] (one proxied connection, and how it is reset: an RST
//! to both sides).

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::SockRef;

#[derive(Default)]
pub(super) struct Inner {
    pub(super) upstream: Option<SocketAddr>,
    pub(super) latency_us: AtomicU64,
    pub(super) blackhole: AtomicBool,
    /// One direction stalled for every connection
    /// ([`FaultProxy::set_stall`](super::FaultProxy::set_stall)).
    pub(super) stall_to_server: AtomicBool,
    pub(super) stall_to_client: AtomicBool,
    /// New connections still to be accepted with their server → client direction stalled
    /// ([`stall_next_startups`](super::FaultProxy::stall_next_startups)).
    pub(super) startups_to_stall: AtomicU64,
    /// Connections accepted that way, in total.
    pub(super) startups_stalled: AtomicU64,
    pub(super) refuse: AtomicBool,
    pub(super) reject_new: AtomicBool,
    /// 0: off.
    pub(super) cut_after: AtomicU64,
    pub(super) stop: AtomicBool,
    pub(super) open: AtomicUsize,
    pub(super) max_open: AtomicUsize,
    pub(super) accepted: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) resets: AtomicU64,
    pub(super) cuts: AtomicU64,
    /// Connection threads still running (both pumps of every connection).
    pub(super) threads: AtomicUsize,
    pub(super) next_id: AtomicU64,
    pub(super) conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// One proxied connection.
pub(super) struct Conn {
    pub(super) client: TcpStream,
    pub(super) upstream: Mutex<Option<TcpStream>>,
    /// Reset by the proxy: both sides get an RST.
    pub(super) killed: AtomicBool,
    /// The client side closed (or failed): the connection no longer counts as open.
    pub(super) client_gone: AtomicBool,
    /// Whether it still counts in `open`.
    pub(super) counted: AtomicBool,
    /// Bytes carried, both directions.
    pub(super) bytes: AtomicU64,
    /// Pump threads still running for it.
    pub(super) pumps: AtomicUsize,
    /// This connection's own stalls (`STALL_TO_SERVER` | `STALL_TO_CLIENT`), on top of the
    /// proxy-wide ones; cleared by `heal`.
    pub(super) stall: AtomicU8,
    /// The proxy's local port towards the server (0: not connected upstream yet).
    pub(super) upstream_port: AtomicU16,
}

impl Conn {
    pub(super) fn uncount(&self, inner: &Inner) {
        if self.counted.swap(false, SeqCst) {
            inner.open.fetch_sub(1, SeqCst);
        }
    }

    /// Resets both sides: SO_LINGER 0 so the last close sends an RST, and a read shutdown
    /// (which sends nothing on Linux) to wake the pumps blocked in `read`.
    pub(super) fn kill(&self) {
        if self.killed.swap(true, SeqCst) {
            return;
        }
        let _ = SockRef::from(&self.client).set_linger(Some(Duration::ZERO));
        let _ = self.client.shutdown(Shutdown::Read);
        if let Some(up) = &*self.upstream.lock().unwrap() {
            let _ = SockRef::from(up).set_linger(Some(Duration::ZERO));
            let _ = up.shutdown(Shutdown::Read);
        }
    }
}
