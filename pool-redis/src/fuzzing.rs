//! Entry points for the fuzz targets in `fuzz/` (not part of the public API: hidden from the
//! docs, may change in any release).
//!
//! The RESP reader behind [`RedisConnection`](crate::RedisConnection)'s
//! `req_packed_command` reads whatever bytes a caller hands it; these functions run it on
//! arbitrary input without a connection.

/// What the session tracking makes of a packed command buffer: `"plain"`, `"session"` or
/// the mode-changing command's name. Never panics, whatever `packed` holds.
pub fn scan_commands(packed: &[u8]) -> &'static str {
    describe(crate::resp::scan_commands(packed))
}

/// As [`scan_commands`], with a complete `MULTI ... EXEC` block counted as plain (what a
/// cluster connection does).
pub fn scan_commands_closed_transactions(packed: &[u8]) -> &'static str {
    describe(crate::resp::scan_commands_closed_transactions(packed))
}

fn describe(scan: crate::resp::Scan) -> &'static str {
    use crate::resp::Scan;
    match scan {
        Scan::Plain => "plain",
        Scan::SessionState => "session",
        Scan::ModeChange(name) => name,
    }
}
