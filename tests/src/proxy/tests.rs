//! The proxy's own tests, against an echoing and a recording upstream.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

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
