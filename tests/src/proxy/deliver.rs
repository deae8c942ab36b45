//! The faults applied to each chunk on its way: whether a direction is stalled, the
//! added latency, and the byte count against the cut limit ([`deliver`]).

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering::SeqCst;
use std::thread;
use std::time::{Duration, Instant};

use super::state::{Conn, Inner};
use super::Direction;

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
pub(super) fn stalled(inner: &Inner, conn: &Conn, direction: Direction) -> bool {
    inner.blackhole.load(SeqCst)
        || match direction {
            Direction::ToServer => inner.stall_to_server.load(SeqCst),
            Direction::ToClient => inner.stall_to_client.load(SeqCst),
        }
        || conn.stall.load(SeqCst) & direction.bit() != 0
}

/// Writes `data` to `to` after the added latency, counting it against the cut limit.
pub(super) fn deliver(conn: &Conn, inner: &Inner, to: &mut &TcpStream, data: &[u8]) -> Delivery {
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
pub(super) enum Delivery {
    Done,
    /// Cut or killed: the connection is being reset.
    Reset,
    /// The receiving side's socket failed.
    WriteFailed,
}
