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
fn command_names(mut buf: &[u8]) -> Option<Vec<&[u8]>> {
    let mut names = Vec::new();
    while !buf.is_empty() {
        let (count, rest) = read_header(buf, b'*')?;
        buf = rest;
        for i in 0..count {
            let (len, rest) = read_header(buf, b'$')?;
            if rest.len() < len + 2 {
                return None;
            }
            if i == 0 {
                names.push(&rest[..len]);
            }
            buf = &rest[len + 2..];
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
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
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
    }
}
