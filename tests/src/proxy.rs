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
//!   blackhole heals, as TCP retransmission would; replies stay stalled upstream.
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
//!
//! Every thread the proxy starts is named `cx-proxy*`.
//!
//! [`max_open`]: FaultProxy::max_open

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

/// How often blocked reads wake to look at the fault switches.
const POLL: Duration = Duration::from_millis(20);
/// How often the accept loop looks for new connections.
const ACCEPT_POLL: Duration = Duration::from_millis(1);
/// Most bytes held from a client during a blackhole before the proxy stops reading it.
const MAX_HELD: usize = 1 << 20;

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

    /// Turns every fault off.
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.set_blackhole(false);
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
    let conn = Arc::new(Conn {
        client,
        upstream: Mutex::new(None),
        killed: AtomicBool::new(false),
        client_gone: AtomicBool::new(false),
        counted: AtomicBool::new(true),
        bytes: AtomicU64::new(0),
        pumps: AtomicUsize::new(1),
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

/// The connection's first thread: connects upstream (not during a blackhole), starts the
/// reverse pump, then copies client → upstream.
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
        let blackhole = inner.blackhole.load(SeqCst);
        if !blackhole && upstream.is_none() {
            // Connect upstream now (first time, or after a blackhole).
            let target = inner.upstream.expect("upstream address");
            match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                Ok(up) => {
                    let _ = up.set_nodelay(true);
                    let _ = up.set_write_timeout(Some(Duration::from_secs(2)));
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
        if !blackhole && !held.is_empty() {
            if let Some(up) = upstream.as_mut() {
                if !carry(conn, inner, held.len()) {
                    return;
                }
                let lat = latency(inner);
                if !lat.is_zero() && !hold(conn, inner, lat) {
                    conn.kill();
                    return;
                }
                if up.write_all(&held).is_err() {
                    conn.kill();
                    return;
                }
                held.clear();
            }
        }
        if blackhole && held.len() >= MAX_HELD {
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
                wait_out_blackhole(inner, conn);
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
        if inner.blackhole.load(SeqCst) || upstream.is_none() {
            held.extend_from_slice(&buf[..n]);
            continue;
        }
        if !carry(conn, inner, n) {
            return;
        }
        let lat = latency(inner);
        if !lat.is_zero() && !hold(conn, inner, lat) {
            conn.kill();
            return;
        }
        let up = upstream.as_mut().expect("connected");
        if up.write_all(&buf[..n]).is_err() {
            conn.kill();
            return;
        }
    }
}

/// Waits while a blackhole is on (the FIN is delivered when it heals).
fn wait_out_blackhole(inner: &Inner, conn: &Conn) {
    while inner.blackhole.load(SeqCst) && !conn.killed.load(SeqCst) && !inner.stop.load(SeqCst) {
        thread::sleep(POLL);
    }
}

/// Copies upstream → client; stalls (reads nothing) during a blackhole.
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
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if conn.killed.load(SeqCst) || inner.stop.load(SeqCst) {
            conn.kill();
            return;
        }
        if inner.blackhole.load(SeqCst) {
            thread::sleep(POLL);
            continue;
        }
        let n = match up.read(&mut buf) {
            Ok(0) => {
                // The server closed (pass the FIN on), or kill() shut our read side.
                if !conn.killed.load(SeqCst) {
                    let _ = conn.client.shutdown(Shutdown::Write);
                }
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                // Reset by the server (or woken by kill()): reset the client too.
                conn.kill();
                return;
            }
        };
        if conn.killed.load(SeqCst) {
            conn.kill();
            return;
        }
        if !carry(conn, inner, n) {
            return;
        }
        let lat = latency(inner);
        if !lat.is_zero() && !hold(conn, inner, lat) {
            conn.kill();
            return;
        }
        if client.write_all(&buf[..n]).is_err() {
            if conn.client_gone.load(SeqCst) {
                // The client already left: nothing to deliver, close upstream quietly.
                return;
            }
            conn.kill();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn eventually(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if f() {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        f()
    }

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
        assert!(eventually(|| proxy.open_counter().kernel() == Some(1)));
        assert!(eventually(|| proxy.open() == 1), "open {}", proxy.open());

        assert_eq!(proxy.reset_all(), 1);
        let mut buf = [0u8; 1];
        let err = a.read(&mut buf).expect_err("reset");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
        assert!(eventually(|| proxy.open() == 0));
        assert_eq!(proxy.max_open(), 2);
        stop.store(true, SeqCst);
    }

    #[test]
    fn refuse_blackhole_latency_cut() {
        let (up, stop) = echo_server();
        let proxy = FaultProxy::start(up);

        proxy.set_refuse(true);
        assert!(eventually(|| TcpStream::connect(proxy.addr())
            .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused)));
        proxy.set_refuse(false);
        assert!(eventually(|| TcpStream::connect(proxy.addr()).is_ok()));

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
}
