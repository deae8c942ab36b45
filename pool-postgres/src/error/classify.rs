//! How PostgreSQL errors are classified for the pool: which ones end the session
//! (fatal: the connection is discarded) and which ones no retry can fix (permanent: the
//! pool fails its waiters at once).

use postgres::error::SqlState;

/// Whether a SQLSTATE means the session is gone: class `08` (connection exception),
/// `57P01` (admin shutdown: `pg_terminate_backend`), `57P02` (crash shutdown), `57P03`
/// (cannot connect now).
pub fn is_fatal_code(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
}

/// Whether a driver error means the connection must not be used again: the client is
/// closed, the I/O failed (no SQLSTATE, not a query-level problem), or the server sent a
/// fatal SQLSTATE (see [`is_fatal_code`]) or a message of severity `FATAL`/`PANIC`.
///
/// Query-level errors (a syntax error, a constraint violation, a statement timeout) leave
/// the session usable and are not fatal.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut client = postgres::Client::connect("host=127.0.0.1 user=postgres", postgres::NoTls)?;
/// if let Err(e) = client.batch_execute("SELECT pg_terminate_backend(pg_backend_pid())") {
///     assert!(pool_postgres::is_fatal_error(&e));
/// }
/// # Ok(()) }
/// ```
pub fn is_fatal_error(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.as_db_error() {
        Some(db) => is_fatal_code(db.code()) || matches!(db.severity(), "FATAL" | "PANIC"),
        // Not a server error: an I/O failure, a protocol error or a timeout leaves the
        // session in an unknown state (discard it); a value that did not convert or a
        // column that does not exist never touched the wire (keep it).
        None => is_wire_error(err),
    }
}

/// Driver errors about the wire itself (as opposed to a value that did not convert or a
/// column that does not exist, which leave the session intact). `postgres::Error` has no
/// public kind accessor; its `Display` starts with the kind's fixed text.
pub(super) fn is_wire_error(err: &postgres::Error) -> bool {
    const WIRE: [&str; 8] = [
        "error communicating with the server",
        "unexpected message from server",
        "error performing TLS handshake",
        "connection closed",
        "error parsing response from server",
        "error encoding message to server",
        "timeout waiting for server",
        "error connecting to server",
    ];
    let text = err.to_string();
    WIRE.iter().any(|w| text.starts_with(w))
}

/// Whether a SQLSTATE, seen while opening a connection, means waiting cannot help:
/// `28P01` (password authentication failed), `28000` (invalid authorization: unknown role,
/// rejected by `pg_hba.conf`), `3D000` (the database does not exist).
pub fn is_permanent_code(code: &SqlState) -> bool {
    *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        || *code == SqlState::INVALID_CATALOG_NAME
}

/// Whether a driver error from opening a connection means waiting cannot help:
///
/// * the server refused the login for good (see [`is_permanent_code`]);
/// * the client cannot even try: the server asks for a password and none was given
///   (`invalid configuration: password missing`), or an authentication method the
///   driver does not support, or channel binding it cannot do (`authentication error`);
/// * TLS failed for a reason other than the network: a certificate that does not
///   verify, a host name that does not match, a server that does not offer TLS when
///   `sslmode` requires it, a reply to the TLS request that is not PostgreSQL's.
///
/// Refused connections, resets, timeouts (a TLS handshake cut short by the network
/// included) and `too many connections` are not permanent: the server may come back or
/// free a slot.
pub fn is_permanent_error(err: &postgres::Error) -> bool {
    if let Some(db) = err.as_db_error() {
        return is_permanent_code(db.code());
    }
    let text = err.to_string();
    if text.starts_with("invalid configuration") || text.starts_with("authentication error") {
        return true;
    }
    text.starts_with("error performing TLS handshake")
        && !network_failure_in(err)
        && !error_reply_to_ssl_request(err)
}

/// Whether the server answered the `SSLRequest` with an `ErrorResponse`: what a server
/// that cannot start a backend (out of processes, memory) sends, which may pass.
fn error_reply_to_ssl_request(err: &postgres::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if matches!(
            e.downcast_ref::<crate::tls::SslRequestRefused>(),
            Some(crate::tls::SslRequestRefused::Error)
        ) {
            return true;
        }
        next = e.source();
    }
    false
}

/// Whether an I/O failure of the network (or a bound this crate put on it) is somewhere in
/// the error's causes.
pub(super) fn network_failure_in(err: &postgres::Error) -> bool {
    use std::io::ErrorKind::*;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if crate::io::io_timeout(e).is_some() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            let network = matches!(
                io.kind(),
                ConnectionReset
                    | ConnectionAborted
                    | ConnectionRefused
                    | BrokenPipe
                    | UnexpectedEof
                    | TimedOut
                    | NotConnected
                    | Interrupted
                    | WouldBlock
            );
            if network {
                return true;
            }
        }
        next = e.source();
    }
    false
}
