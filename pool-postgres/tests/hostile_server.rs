//! A hostile (or broken) server on loopback, faked with a `std` TCP listener: whatever it
//! sends, the client neither reserves memory past [`MAX_MESSAGE_LEN`] nor waits for bytes
//! that a bogus header promised. Needs no PostgreSQL server.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use pool_core::error::Report;
use pool_core::ConnectionFactory;
use pool_postgres::{MessageTooLong, PostgresConnectionFactory, MAX_MESSAGE_LEN};

/// The system allocator, recording the largest single request (to see a reservation the
/// driver makes from a header without the test touching that memory).
struct Largest;

/// The largest allocation or reallocation requested so far. Relaxed: a statistic read
/// after the work it records, on the same thread or after a join.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method hands its arguments, unchanged, to the system allocator, whose
// contract is the same as the caller's; the only addition is an atomic maximum.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

/// Reads one startup-style message (a 4-byte length, then the rest) from the client.
fn read_startup(s: &mut TcpStream) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![
        0u8;
        (u32::from_be_bytes(len) as usize)
            .saturating_sub(4)
            .min(1 << 16)
    ];
    s.read_exact(&mut body)
}

/// A fake server that reads the startup packet, answers with the `header` of a message,
/// then streams `body` bytes of it (as fast as the client reads them), and then keeps the
/// socket open, saying nothing more, for `hold`.
fn fake_server(header: Vec<u8>, body: usize, hold: Duration) -> u16 {
    fake_server_after(Vec::new(), false, header, body, hold)
}

/// As [`fake_server`], but first sends `prelude` after the startup packet and, if
/// `await_request`, waits for the client's next request before the lying header.
fn fake_server_after(
    prelude: Vec<u8>,
    await_request: bool,
    header: Vec<u8>,
    body: usize,
    hold: Duration,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        if read_startup(&mut s).is_err() || s.write_all(&prelude).is_err() {
            return;
        }
        if await_request {
            let mut ty = [0u8; 1];
            if s.read_exact(&mut ty).is_err() || read_startup(&mut s).is_err() {
                return;
            }
        }
        if s.write_all(&header).is_err() {
            return;
        }
        let chunk = vec![0u8; 1 << 16];
        let mut left = body;
        while left > 0 {
            let n = left.min(chunk.len());
            if s.write_all(&chunk[..n]).is_err() {
                return; // the client hung up: what a capped client does
            }
            left -= n;
        }
        thread::sleep(hold);
    });
    port
}

/// The error of a connect to a server that answers the startup packet with a message
/// header claiming `claimed` bytes and then 64 MiB of its body, and how long it took.
fn connect_to_liar(ty: u8, claimed: u32) -> (pool_postgres::PostgresError, Duration) {
    let mut header = vec![ty];
    header.extend_from_slice(&claimed.to_be_bytes());
    let port = fake_server(header, 64 << 20, Duration::from_secs(30));
    let factory = PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={port} user=postgres dbname=test sslmode=disable"
    ))
    .unwrap();
    let started = Instant::now();
    let err = factory
        .create(Duration::from_secs(10))
        .expect_err("a message past the cap must not open a connection");
    (err, started.elapsed())
}

#[test]
fn a_header_past_the_cap_fails_the_connect_at_once() {
    // Past the cap but below 2 GiB: the driver reads the length as an i32 and refuses a
    // negative one by itself, but anything up to 2 GiB - 1 it buffers as it arrives.
    for claimed in [MAX_MESSAGE_LEN + 1, 3 << 29] {
        LARGEST.store(0, Ordering::Relaxed);
        let (err, took) = connect_to_liar(b'R', claimed);
        let largest = LARGEST.load(Ordering::Relaxed);
        let text = Report(&err).to_string();
        eprintln!(
            "claimed {claimed}: failed after {took:?}, largest allocation {largest} bytes: {text}"
        );

        // Before the cap, the driver buffered the 64 MiB the server sent (its buffer
        // doubling up to 128 MiB here, up to 4 GiB with a server that keeps sending), then
        // waited for the rest until the connect's deadline (10 s), failing with a timeout
        // that said nothing of the cause.
        assert!(took < Duration::from_secs(5), "took {took:?}: {text}");
        assert!(
            largest < 4 << 20,
            "the client allocated {largest} bytes at once"
        );
        assert!(
            text.contains(&format!("claiming {claimed} bytes")),
            "{text}"
        );
        assert!(text.contains("1 GiB cap"), "{text}");
        let mut found = None;
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(e) = next {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                found = io
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<MessageTooLong>());
            }
            if found.is_some() {
                break;
            }
            next = e.source();
        }
        assert_eq!(found, Some(&MessageTooLong::new(b'R', claimed)), "{text}");
    }
}

/// Whether a `MessageTooLong` is in the error's chain (as an io::Error's payload).
fn too_long_in(err: &(dyn std::error::Error + 'static)) -> Option<MessageTooLong> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(t) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<MessageTooLong>())
        {
            return Some(*t);
        }
        next = e.source();
    }
    None
}

#[test]
fn a_data_row_past_the_cap_breaks_an_open_connection_at_once() {
    // Startup: AuthenticationOk, ReadyForQuery (idle). Then, to the first query, a data
    // row whose header claims 1.5 GiB, and 64 MiB of it.
    let mut prelude = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 0];
    prelude.extend_from_slice(&[b'Z', 0, 0, 0, 5, b'I']);
    let claimed: u32 = 3 << 29;
    let mut header = vec![b'D'];
    header.extend_from_slice(&claimed.to_be_bytes());
    let port = fake_server_after(prelude, true, header, 64 << 20, Duration::from_secs(30));
    // With a network timeout, so that the query cannot hang the test before the cap.
    let factory = PostgresConnectionFactory::new(&format!(
        "host=127.0.0.1 port={port} user=postgres dbname=test sslmode=disable"
    ))
    .unwrap()
    .with_network_timeout(Duration::from_secs(5));
    let mut conn = factory
        .create(Duration::from_secs(10))
        .expect("the fake startup");
    assert!(!factory.is_broken(&mut conn));

    LARGEST.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let err = conn.simple_query("SELECT 1").expect_err("a 1.5 GiB row");
    let took = started.elapsed();
    let largest = LARGEST.load(Ordering::Relaxed);
    let text = Report(&err).to_string();
    eprintln!("failed after {took:?}, largest allocation {largest} bytes: {text}");

    // Before the cap: the driver buffered the 64 MiB (128 MiB of buffer), then waited
    // until the network timeout (5 s) cut the connection.
    assert!(took < Duration::from_secs(3), "took {took:?}: {text}");
    assert!(
        largest < 4 << 20,
        "the client allocated {largest} bytes at once"
    );
    assert_eq!(
        too_long_in(&err),
        Some(MessageTooLong::new(b'D', claimed)),
        "{text}"
    );
    assert!(pool_postgres::is_fatal_error(&err), "{text}");
    assert!(factory.is_broken(&mut conn), "the pool must discard it");
}
