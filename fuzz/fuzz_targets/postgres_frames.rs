//! Any byte stream a server (or anything on its port) sends to a pooled PostgreSQL
//! connection, in any chunking: the framing that counts requests and caps message lengths
//! never panics, allocates nothing from a length it reads, and decides the same whatever
//! the chunking: the same messages, the same count of outstanding requests, the same
//! transaction status known without asking, the same refusal of a header past
//! `MAX_MESSAGE_LEN`.
//!
//! Input: a flags byte, a count `k`, `k` piece sizes (one byte each), a split point (two
//! bytes) between the client's stream and the server's, then the bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pool_postgres::io::fuzzing::{frames, WatchedStream};
use pool_postgres::MAX_MESSAGE_LEN;

/// Feeds `stream` to `feed` in the given piece sizes, then the rest.
fn in_pieces(stream: &[u8], pieces: &[usize], mut feed: impl FnMut(&[u8])) {
    let mut rest = stream;
    for &n in pieces {
        let (piece, after) = rest.split_at(n.min(rest.len()));
        feed(piece);
        rest = after;
    }
    feed(rest);
}

fuzz_target!(|data: &[u8]| {
    let [flags, k, rest @ ..] = data else {
        return;
    };
    let k = usize::from(*k % 16).min(rest.len());
    let (sizes, rest) = rest.split_at(k);
    let pieces: Vec<usize> = sizes.iter().map(|&b| usize::from(b)).collect();
    let [hi, lo, bytes @ ..] = rest else {
        return;
    };
    let split = usize::from(u16::from_be_bytes([*hi, *lo])).min(bytes.len());
    let (client, server) = bytes.split_at(split);

    // The framing alone: the chunking changes nothing.
    for untyped in [false, true] {
        let whole = frames(server, &[], untyped);
        assert_eq!(frames(server, &pieces, untyped), whole);
        assert!(whole.len() <= server.len() / 4 + 1);
    }

    // A connection's bookkeeping: everything the client sent, then what the server sent.
    let messages = frames(server, &[], false);
    let too_long = messages.iter().any(|&(_, len)| len > MAX_MESSAGE_LEN);
    let run = |pieces: &[usize]| {
        let mut w = WatchedStream::new();
        in_pieces(client, pieces, |b| w.sent(b));
        let mut error = None;
        in_pieces(server, pieces, |b| {
            if let Err(e) = w.received(b) {
                error.get_or_insert(e);
            }
        });
        (w.outstanding(), w.is_refused(), w.session(), error)
    };
    let (outstanding, refused, session, error) = run(&[]);
    assert_eq!(refused, too_long, "{messages:?}");
    if let Some(e) = &error {
        assert!(e.contains("1 GiB cap"), "{e}");
    }
    let (chunked_outstanding, chunked_refused, chunked_session, _) = run(&pieces);
    assert_eq!(chunked_outstanding, outstanding);
    assert_eq!(chunked_refused, refused);
    assert_eq!(chunked_session, session);
    if outstanding > 0 {
        assert_eq!(session, None, "a request is outstanding: the status is unknown");
    }

    // Interleaved, as a real connection goes: never a panic.
    let mut w = WatchedStream::new();
    let (mut c, mut s) = (client, server);
    for (i, &n) in pieces.iter().enumerate() {
        if (flags >> (i % 8)) & 1 == 0 {
            let (piece, after) = c.split_at(n.min(c.len()));
            w.sent(piece);
            c = after;
        } else {
            let (piece, after) = s.split_at(n.min(s.len()));
            let _ = w.received(piece);
            s = after;
        }
    }
    w.sent(c);
    let _ = w.received(s);
});
