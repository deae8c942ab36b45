//! Reading RESP: the command names in what a connection sends (to see what it does to the
//! session) and a short description of what came back (for error messages).

use redis::Value;

/// A short description of a reply, for error messages.
pub(crate) fn describe_value(v: &Value) -> String {
    let s = match v {
        Value::Nil => "nil".to_owned(),
        Value::Okay => "OK".to_owned(),
        Value::Int(i) => format!("integer {i}"),
        Value::SimpleString(s) => format!("status {s:?}"),
        Value::BulkString(b) => format!("string {:?}", String::from_utf8_lossy(b)),
        Value::ServerError(e) => format!("error {e:?}"),
        Value::Array(a) => format!("array of {}", a.len()),
        other => format!("{other:?}"),
    };
    let mut s = s;
    if s.len() > 120 {
        let mut cut = 117;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// What a batch of commands does to the session (`pub` only for the sealed
/// [`Hooks`](crate::connection::sealed::Hooks); not nameable outside the crate).
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Only commands that leave the session as it was.
    Plain,
    /// Something that changes session state (or could not be read): reset on release.
    SessionState,
    /// A command after which replies no longer answer requests.
    ModeChange(&'static str),
}

/// Commands whose effect outlives the call on this connection.
const SESSION_COMMANDS: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SELECT",
    "CLIENT",
    "HELLO",
    "AUTH",
    "RESET",
    "READONLY",
    "READWRITE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
];

/// Commands that switch a RESP2 connection into push mode.
const MODE_COMMANDS: &[&str] = &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"];

/// Reads the command names out of packed RESP (`*<n>\r\n$<len>\r\n<name>\r\n...`).
/// `None` when the buffer is not well-formed packed RESP.
///
/// The buffer comes from the caller (`req_packed_command` is public), so every length in
/// it is untrusted: each is checked against the bytes actually there before it is used,
/// and nothing is allocated from a count (the names are slices of `buf`, at most one per
/// `*` header actually present).
fn command_names(mut buf: &[u8]) -> Option<Vec<&[u8]>> {
    let mut names = Vec::new();
    while !buf.is_empty() {
        let (count, rest) = read_header(buf, b'*')?;
        buf = rest;
        for i in 0..count {
            let (len, rest) = read_header(buf, b'$')?;
            // `len + 2` overflows for a length near `usize::MAX`: not well-formed.
            let (arg, after) = rest.split_at_checked(len)?;
            let after = after.strip_prefix(b"\r\n")?;
            if i == 0 {
                names.push(arg);
            }
            buf = after;
        }
    }
    Some(names)
}

fn is_one_of(name: &[u8], list: &[&'static str]) -> Option<&'static str> {
    list.iter()
        .find(|c| name.eq_ignore_ascii_case(c.as_bytes()))
        .copied()
}

/// What the commands in packed RESP do to the session.
pub(crate) fn scan_commands(buf: &[u8]) -> Scan {
    let Some(names) = command_names(buf) else {
        return Scan::SessionState;
    };
    let mut result = Scan::Plain;
    for name in names {
        if let Some(m) = is_one_of(name, MODE_COMMANDS) {
            return Scan::ModeChange(m);
        }
        if is_one_of(name, SESSION_COMMANDS).is_some() {
            result = Scan::SessionState;
        }
    }
    result
}

/// Like [`scan_commands`], but a complete `MULTI ... EXEC` block (what an atomic pipeline
/// sends) counts as [`Scan::Plain`]: the transaction is over when its replies are read.
pub(crate) fn scan_commands_closed_transactions(buf: &[u8]) -> Scan {
    let Some(names) = command_names(buf) else {
        return Scan::SessionState;
    };
    let is = |name: &[u8], c: &str| name.eq_ignore_ascii_case(c.as_bytes());
    if let [first, middle @ .., last] = names.as_slice() {
        if is(first, "MULTI") && is(last, "EXEC") {
            for name in middle {
                if let Some(m) = is_one_of(name, MODE_COMMANDS) {
                    return Scan::ModeChange(m);
                }
                if is_one_of(name, SESSION_COMMANDS).is_some() {
                    return Scan::SessionState;
                }
            }
            return Scan::Plain;
        }
    }
    scan_commands(buf)
}

/// Parses `<tag><decimal>\r\n` at the start of `buf`.
fn read_header(buf: &[u8], tag: u8) -> Option<(usize, &[u8])> {
    let rest = buf.strip_prefix(&[tag])?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    let n: usize = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    let rest = rest.get(end..)?.strip_prefix(b"\r\n")?;
    Some((n, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(args: &[&str]) -> Vec<u8> {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.get_packed_command()
    }

    #[test]
    fn scan_finds_session_commands() {
        assert_eq!(scan_commands(&packed(&["GET", "k"])), Scan::Plain);
        assert_eq!(scan_commands(&packed(&["SET", "multi", "x"])), Scan::Plain);
        assert_eq!(scan_commands(&packed(&["multi"])), Scan::SessionState);
        assert_eq!(scan_commands(&packed(&["SELECT", "3"])), Scan::SessionState);
        assert_eq!(
            scan_commands(&packed(&["SUBSCRIBE", "ch"])),
            Scan::ModeChange("SUBSCRIBE")
        );
        let mut pipe = redis::pipe();
        pipe.cmd("GET")
            .arg("a")
            .cmd("WATCH")
            .arg("b")
            .cmd("GET")
            .arg("c");
        assert_eq!(
            scan_commands(&pipe.get_packed_pipeline()),
            Scan::SessionState
        );
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("GET").arg("a");
        assert_eq!(
            scan_commands(&pipe.get_packed_pipeline()),
            Scan::SessionState
        );
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg("a").cmd("INCR").arg("b");
        assert_eq!(scan_commands(&pipe.get_packed_pipeline()), Scan::Plain);
    }

    #[test]
    fn closed_transactions_are_plain_for_cluster_scan() {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("SET").arg("a").arg(1).cmd("GET").arg("a");
        let atomic = pipe.get_packed_pipeline();
        assert_eq!(scan_commands_closed_transactions(&atomic), Scan::Plain);
        assert_eq!(scan_commands(&atomic), Scan::SessionState);
        assert_eq!(
            scan_commands_closed_transactions(&packed(&["MULTI"])),
            Scan::SessionState
        );
        assert_eq!(
            scan_commands_closed_transactions(&packed(&["WATCH", "k"])),
            Scan::SessionState
        );
        assert_eq!(
            scan_commands_closed_transactions(&packed(&["GET", "k"])),
            Scan::Plain
        );
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("SELECT").arg(1);
        assert_eq!(
            scan_commands_closed_transactions(&pipe.get_packed_pipeline()),
            Scan::SessionState
        );
        assert_eq!(
            scan_commands_closed_transactions(b"garbage"),
            Scan::SessionState
        );
    }

    #[test]
    fn scan_is_conservative_on_garbage() {
        assert_eq!(scan_commands(b"PING\r\n"), Scan::SessionState);
        assert_eq!(scan_commands(b"*1\r\n$10\r\nGET\r\n"), Scan::SessionState);
        assert_eq!(scan_commands(b"*x\r\n"), Scan::SessionState);
        assert_eq!(scan_commands(b""), Scan::Plain);
        // The argument is not followed by CRLF.
        assert_eq!(
            scan_commands(b"*1\r\n$3\r\nGETxx*1\r\n$4\r\nPING\r\n"),
            Scan::SessionState
        );
    }

    #[test]
    fn huge_lengths_are_garbage_not_a_panic() {
        // A bulk length of `usize::MAX` (or just under) made `len + 2` overflow: a panic
        // in debug builds, a wrapped bound and an out-of-range slice in release builds.
        for len in [usize::MAX, usize::MAX - 1, usize::MAX - 2] {
            let packed = format!("*1\r\n${len}\r\nGET\r\n");
            assert_eq!(
                scan_commands(packed.as_bytes()),
                Scan::SessionState,
                "{len}"
            );
            assert_eq!(
                scan_commands_closed_transactions(packed.as_bytes()),
                Scan::SessionState,
                "{len}"
            );
        }
        // A count near `usize::MAX` with nothing behind it allocates nothing and ends.
        let packed = format!("*{}\r\n$3\r\nGET\r\n", usize::MAX);
        assert_eq!(scan_commands(packed.as_bytes()), Scan::SessionState);
        // A length past `usize` does not parse.
        let packed = "*1\r\n$99999999999999999999999\r\nGET\r\n";
        assert_eq!(scan_commands(packed.as_bytes()), Scan::SessionState);
    }
}
