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
//! [`max_open`]: FaultProxy::max_open

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{
    AtomicBool, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst,
};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

/// How often blocked reads wake to look at the fault switches.
const POLL: Duration = Duration::from_millis(20);
/// How often the accept loop looks for new connections.
const ACCEPT_POLL: Duration = Duration::from_millis(1);
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

#[derive(Default)]
struct Inner {
    upstream: Option<SocketAddr>,
    latency_us: AtomicU64,
    blackhole: AtomicBool,
    /// One direction stalled for every connection ([`FaultProxy::set_stall`]).
    stall_to_server: AtomicBool,
    stall_to_client: AtomicBool,
    /// New connections still to be accepted with their server → client direction stalled
    /// ([`FaultProxy::stall_next_startups`]).
    startups_to_stall: AtomicU64,
    /// Connections accepted that way, in total.
    startups_stalled: AtomicU64,
    refuse: AtomicBool,
    reject_new: AtomicBool,
    /// 0: off.
    cut_after: AtomicU64,
    stop: AtomicBool,
    open: AtomicUsize,
    max_open: AtomicUsize,
    accepted: AtomicU64,
    rejected: AtomicU64,
    resets: AtomicU64,
    cuts: AtomicU64,
    /// Connection threads still running (both pumps of every connection).
    threads: AtomicUsize,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// One proxied connection.
struct Conn {
    client: TcpStream,
    upstream: Mutex<Option<TcpStream>>,
    /// Reset by the proxy: both sides get an RST.
    killed: AtomicBool,
    /// The client side closed (or failed): the connection no longer counts as open.
    client_gone: AtomicBool,
    /// Whether it still counts in `open`.
    counted: AtomicBool,
    /// Bytes carried, both directions.
    bytes: AtomicU64,
    /// Pump threads still running for it.
    pumps: AtomicUsize,
    /// This connection's own stalls (`STALL_TO_SERVER` | `STALL_TO_CLIENT`), on top of the
    /// proxy-wide ones; cleared by `heal`.
    stall: AtomicU8,
    /// The proxy's local port towards the server (0: not connected upstream yet).
    upstream_port: AtomicU16,
}

impl Conn {
    fn uncount(&self, inner: &Inner) {
        if self.counted.swap(false, SeqCst) {
            inner.open.fetch_sub(1, SeqCst);
        }
    }

    /// Resets both sides: SO_LINGER 0 so the last close sends an RST, and a read shutdown
    /// (which sends nothing on Linux) to wake the pumps blocked in `read`.
    fn kill(&self) {
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

/// The proxy's open-connection counters, shareable with a monitor thread.
#[derive(Clone)]
pub struct OpenCounter(Arc<Inner>, u16);

impl OpenCounter {
    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.1
    }

    /// Connections whose client side is open right now, as the proxy's threads saw it.
    ///
    /// It can lag behind a client's close by up to the added latency (a pump holding a
    /// chunk does not read the FIN behind it until it has forwarded the chunk).
    pub fn get(&self) -> usize {
        self.0.open.load(SeqCst)
    }

    /// The proxy's local ports towards the server of the connections whose client side is
    /// open right now: a server lists them as its sessions' client ports. A session whose
    /// port is not listed has no client any more (it left, and a stall or a stopped server
    /// process kept the server from learning it yet), or is not this proxy's.
    pub fn upstream_ports(&self) -> HashSet<u16> {
        self.0
            .conns
            .lock()
            .unwrap()
            .values()
            .filter(|c| c.counted.load(SeqCst) && !c.killed.load(SeqCst))
            .map(|c| c.upstream_port.load(SeqCst))
            .filter(|&p| p != 0)
            .collect()
    }

    /// Connections the clients have open to the proxy, as the kernel sees them: the
    /// sockets whose peer is the proxy's port (only the pool under test connects there),
    /// in `ESTABLISHED` or `SYN_SENT` (connecting). A socket leaves that set inside the
    /// client's own `close` (or when the proxy's reset or FIN reaches it), so the figure
    /// is what the pool holds open to the server. Linux only (`/proc/net/tcp`); `None`
    /// elsewhere.
    ///
    /// Two things make the proxy's side of the table (local port = the proxy's) lag or
    /// over-count under load, which is why it is not what is counted:
    /// * loopback packets are processed in softirq context, which a loaded machine
    ///   defers to `ksoftirqd` per CPU: a client's FIN or RST queued on one CPU can reach
    ///   the proxy's socket after a newer connection's handshake queued on the other, so
    ///   the accepted side of a connection the client already closed stays
    ///   `ESTABLISHED` next to its replacement for as long as `ksoftirqd` waits;
    /// * one read of `/proc/net/tcp` is not an atomic snapshot (the kernel walks its hash
    ///   table bucket by bucket, over several `read` calls): a connection closed and its
    ///   replacement opened during the walk can both be listed.
    ///
    /// Against the second (which applies to any side), the count is of the sockets listed
    /// in each of two reads in a row, by local address and inode: a socket listed in both
    /// was open for the whole time between the end of the first read and the start of the
    /// second, so everything counted was open at one same moment. (The smaller of the two
    /// counts would not do: each read can list a different closed-and-replaced pair.)
    pub fn kernel(&self) -> Option<usize> {
        let first = client_sockets(self.1)?;
        let second = client_sockets(self.1)?;
        Some(first.intersection(&second).count())
    }
}

/// One read of `/proc/net/tcp`: the sockets whose peer is 127.0.0.1:`port` in state
/// `ESTABLISHED` (01) or `SYN_SENT` (02), as (local address, inode). The file is produced
/// in pages, and an entry can be listed twice when the table changes between two pages:
/// the set counts it once.
fn client_sockets(port: u16) -> Option<HashSet<(String, String)>> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let peer = format!("0100007F:{port:04X}");
    Some(
        table
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().take(10).collect();
                let &[_, local, remote, state, _, _, _, _, _, inode] = f.as_slice() else {
                    return None;
                };
                (remote == peer && matches!(state, "01" | "02"))
                    .then(|| (local.to_owned(), inode.to_owned()))
            })
            .collect(),
    )
}

/// Every `/proc/net/tcp` entry with `port` at either end, one a line, for debugging a
/// count: which side, local and remote address, state, inode and whether the socket is
/// this process's.
pub fn kernel_detail(port: u16) -> String {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let ours = own_socket_inodes();
    let p = format!(":{port:04X}");
    let mut out = String::new();
    for l in table.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().take(10).collect();
        let &[_, local, remote, state, _, _, _, _, _, inode] = f.as_slice() else {
            continue;
        };
        let side = if local.ends_with(&p) {
            "proxy side"
        } else if remote.ends_with(&p) {
            "client side"
        } else {
            continue;
        };
        let whose = if ours.contains(inode) { "ours" } else { "-" };
        let _ = writeln!(
            out,
            "  {side:11} {local} -> {remote} state {state} inode {inode} {whose}"
        );
    }
    out
}

/// The inodes of this process's sockets (`/proc/self/fd`).
fn own_socket_inodes() -> HashSet<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect()
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

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

fn accept_loop(inner: Arc<Inner>, listener: TcpListener, addr: SocketAddr) {
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

/// One pump is done: the last one out forgets the connection (its sockets close when the
/// last `Arc` goes, with an RST if it was killed).
fn finish(inner: &Inner, conn: &Arc<Conn>, id: u64) {
    conn.uncount(inner);
    if conn.pumps.fetch_sub(1, SeqCst) == 1 {
        inner.conns.lock().unwrap().remove(&id);
    }
    inner.threads.fetch_sub(1, SeqCst);
}

/// Sleeps `d` in small steps; false if the connection was killed meanwhile.
fn hold(conn: &Conn, inner: &Inner, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if conn.killed.load(SeqCst) || inner.stop.load(SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}

/// Counts `n` more bytes; false (and the connection is reset) past the cut limit.
fn carry(conn: &Conn, inner: &Inner, n: usize) -> bool {
    let total = conn.bytes.fetch_add(n as u64, SeqCst) + n as u64;
    let cut = inner.cut_after.load(SeqCst);
    if cut > 0 && total > cut {
        inner.cuts.fetch_add(1, SeqCst);
        conn.kill();
        return false;
    }
    true
}

fn latency(inner: &Inner) -> Duration {
    Duration::from_micros(inner.latency_us.load(SeqCst))
}

/// Whether `direction` of `conn` is stalled now: a blackhole, a proxy-wide stall of that
/// direction, or the connection's own.
fn stalled(inner: &Inner, conn: &Conn, direction: Direction) -> bool {
    inner.blackhole.load(SeqCst)
        || match direction {
            Direction::ToServer => inner.stall_to_server.load(SeqCst),
            Direction::ToClient => inner.stall_to_client.load(SeqCst),
        }
        || conn.stall.load(SeqCst) & direction.bit() != 0
}

/// Writes `data` to `to` after the added latency, counting it against the cut limit.
fn deliver(conn: &Conn, inner: &Inner, to: &mut &TcpStream, data: &[u8]) -> Delivery {
    if !carry(conn, inner, data.len()) {
        return Delivery::Reset;
    }
    let lat = latency(inner);
    if !lat.is_zero() && !hold(conn, inner, lat) {
        conn.kill();
        return Delivery::Reset;
    }
    if to.write_all(data).is_err() {
        return Delivery::WriteFailed;
    }
    Delivery::Done
}

/// What became of a chunk handed to `deliver`.
enum Delivery {
    Done,
    /// Cut or killed: the connection is being reset.
    Reset,
    /// The receiving side's socket failed.
    WriteFailed,
}

/// The connection's first thread: connects upstream (not during a blackhole), starts the
/// reverse pump, then copies client → upstream, holding what the client sends while that
/// direction is stalled.
fn client_to_upstream(inner: &Arc<Inner>, conn: &Arc<Conn>, id: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use test_support::eventually;

    /// An upstream that echoes every byte back.
    fn echo_server() -> (SocketAddr, Arc<AtomicBool>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        l.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !s.load(SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        thread::spawn(move || {
                            let mut buf = [0u8; 4096];
                            while let Ok(n) = c.read(&mut buf) {
                                if n == 0 || c.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        (addr, stop)
    }

    fn roundtrip(c: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        c.write_all(msg)?;
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got)?;
        Ok(got)
    }

    /// How long the proxy may take to see a socket open or close.
    const PATIENCE: Duration = Duration::from_secs(3);

    #[test]
    fn forwards_counts_and_resets() {
        let (up, stop) = echo_server();
        let proxy = FaultProxy::start(up);
        let mut a = TcpStream::connect(proxy.addr()).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(roundtrip(&mut a, b"hello").unwrap(), b"hello");
        let mut b = TcpStream::connect(proxy.addr()).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(roundtrip(&mut b, b"x").unwrap(), b"x");
        assert_eq!(proxy.open(), 2);
        assert_eq!(proxy.open_counter().kernel(), Some(2));
        drop(b);
        assert!(eventually(PATIENCE, || proxy.open_counter().kernel() == Some(1)));
        assert!(
            eventually(PATIENCE, || proxy.open() == 1),
            "open {}",
            proxy.open()
        );

        assert_eq!(proxy.reset_all(), 1);
        let mut buf = [0u8; 1];
        let err = a.read(&mut buf).expect_err("reset");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        assert!(eventually(PATIENCE, || proxy.open() == 0));
        assert_eq!(proxy.max_open(), 2);
        stop.store(true, SeqCst);
    }

    #[test]
    fn refuse_blackhole_latency_cut() {
        let (up, stop) = echo_server();
        let proxy = FaultProxy::start(up);

        proxy.set_refuse(true);
        assert!(eventually(PATIENCE, || TcpStream::connect(proxy.addr())
            .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused)));
        proxy.set_refuse(false);
        assert!(eventually(PATIENCE, || TcpStream::connect(proxy.addr()).is_ok()));

        // Blackhole: the echo stalls, then arrives after healing.
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(roundtrip(&mut c, b"a").unwrap(), b"a");
        proxy.set_blackhole(true);
        let err = roundtrip(&mut c, b"b").expect_err("stalled");
        assert!(matches!(
            err.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
        proxy.set_blackhole(false);
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = [0u8; 1];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"b");

        // Latency: 100 ms each way.
        proxy.set_latency(Duration::from_millis(100));
        let t = Instant::now();
        assert_eq!(roundtrip(&mut c, b"c").unwrap(), b"c");
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        proxy.set_latency(Duration::ZERO);

        // Reject new: accepted, then reset.
        proxy.set_reject_new(true);
        let mut r = TcpStream::connect(proxy.addr()).unwrap();
        r.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert!(roundtrip(&mut r, b"z").is_err());
        proxy.set_reject_new(false);

        // Cut after 10 bytes.
        proxy.set_cut_after(Some(10));
        let mut d = TcpStream::connect(proxy.addr()).unwrap();
        d.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(roundtrip(&mut d, b"1234").unwrap(), b"1234");
        assert!(roundtrip(&mut d, b"567890").is_err());
        assert_eq!(proxy.cuts(), 1);
        proxy.heal();
        stop.store(true, SeqCst);
    }

    /// Reads what arrives on `c` within `wait` (nothing: empty).
    fn read_within(c: &mut TcpStream, wait: Duration) -> Vec<u8> {
        c.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 64];
        match c.read(&mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// An upstream that records what it receives and answers each chunk with `ack`.
    fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { return };
                let g = g.clone();
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = c.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        g.lock().unwrap().extend_from_slice(&buf[..n]);
                        if c.write_all(b"ack").is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, got)
    }

    #[test]
    fn one_way_stalls() {
        let (up, got) = recording_server();
        let proxy = FaultProxy::start(up);
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"1").unwrap();
        assert_eq!(read_within(&mut c, Duration::from_secs(2)), b"ack");

        // Server → client stalled: the request arrives, the reply is held until the heal.
        proxy.set_stall(Direction::ToClient, true);
        c.write_all(b"2").unwrap();
        assert!(eventually(PATIENCE, || got.lock().unwrap().as_slice() == b"12"));
        assert!(read_within(&mut c, Duration::from_millis(300)).is_empty());
        proxy.heal();
        assert_eq!(read_within(&mut c, Duration::from_secs(2)), b"ack");

        // Client → server stalled: the request is held (and acknowledged), delivered at
        // the heal.
        proxy.set_stall(Direction::ToServer, true);
        c.write_all(b"3").unwrap();
        assert!(read_within(&mut c, Duration::from_millis(300)).is_empty());
        assert_eq!(got.lock().unwrap().as_slice(), b"12");
        proxy.heal();
        assert_eq!(read_within(&mut c, Duration::from_secs(2)), b"ack");
        assert_eq!(got.lock().unwrap().as_slice(), b"123");
    }

    #[test]
    fn stall_existing_then_new_flow() {
        let (up, stop) = echo_server();
        let proxy = FaultProxy::start(up);
        let mut old = TcpStream::connect(proxy.addr()).unwrap();
        old.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(roundtrip(&mut old, b"a").unwrap(), b"a");
        assert!(eventually(PATIENCE, || proxy
            .open_counter()
            .upstream_ports()
            .len()
            == 1));
        assert_eq!(proxy.stall_existing(), 1);
        // The open connection is stalled...
        assert!(read_within(&mut old, Duration::from_millis(50)).is_empty());
        old.write_all(b"b").unwrap();
        assert!(read_within(&mut old, Duration::from_millis(300)).is_empty());
        // ...a new one flows.
        let mut new = TcpStream::connect(proxy.addr()).unwrap();
        new.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(roundtrip(&mut new, b"c").unwrap(), b"c");
        // The stalled client leaves: its server session is no longer listed as held.
        drop(old);
        assert!(eventually(PATIENCE, || proxy
            .open_counter()
            .upstream_ports()
            .len()
            == 1));
        proxy.heal();
        assert_eq!(roundtrip(&mut new, b"d").unwrap(), b"d");
        stop.store(true, SeqCst);
    }

    #[test]
    fn stalled_startups() {
        let (up, stop) = echo_server();
        let proxy = FaultProxy::start(up);
        let mut before = TcpStream::connect(proxy.addr()).unwrap();
        before
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(roundtrip(&mut before, b"x").unwrap(), b"x");
        proxy.stall_next_startups(2);
        let mut stalled: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(proxy.addr()).unwrap())
            .collect();
        for s in &mut stalled {
            s.write_all(b"hello").unwrap();
            assert!(read_within(s, Duration::from_millis(200)).is_empty());
        }
        // The third new one, and the old one, flow.
        let mut after = TcpStream::connect(proxy.addr()).unwrap();
        after
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(roundtrip(&mut after, b"y").unwrap(), b"y");
        assert_eq!(roundtrip(&mut before, b"z").unwrap(), b"z");
        assert_eq!(proxy.startups_stalled(), 2);
        // The stalled ones were connected upstream: their replies come at the heal.
        proxy.heal();
        for s in &mut stalled {
            let mut got = [0u8; 5];
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hello");
        }
        stop.store(true, SeqCst);
    }
}
