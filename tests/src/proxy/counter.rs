//! The open-connection counters as a monitor thread reads them ([`OpenCounter`]): the
//! proxy's own count, the upstream ports of the connections still held, and the count as
//! the kernel sees it (`/proc/net/tcp`), with [`kernel_detail`] to debug it.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use super::state::Inner;

/// The proxy's open-connection counters, shareable with a monitor thread.
#[derive(Clone)]
pub struct OpenCounter(pub(super) Arc<Inner>, pub(super) u16);

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
