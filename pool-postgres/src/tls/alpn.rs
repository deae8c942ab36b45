//! ALPN for `sslnegotiation=direct`, shared by both stacks' handshakes (the modules
//! `rustls_handshake` and `native_handshake`).
//!
//! With direct negotiation the client starts TLS at once, without the `SSLRequest` that
//! would have told it a PostgreSQL server is listening. ALPN takes that role: the client
//! offers the protocol `postgresql`, a PostgreSQL 17+ server picks it (and refuses a
//! direct handshake that does not offer it), and the client refuses a server that did not
//! pick it, so a TLS connection to some other service (one holding a certificate for the
//! same name, say an HTTPS server on that address) is never taken for PostgreSQL, and
//! the StartupMessage (and the password) never reach it. That is what libpq 17 does.
//!
//! Both stacks *offer* `postgresql` on every handshake, as libpq 17 does (older servers
//! ignore it); only a direct connection *requires* it back, since a server before 17 never
//! picks it after an `SSLRequest`.

use super::BoxError;

/// The ALPN protocol identifier of PostgreSQL (registered with IANA).
pub(super) const POSTGRESQL: &str = "postgresql";

/// A direct TLS connection whose server did not pick the ALPN protocol `postgresql`.
///
/// Permanent ([`is_permanent_error`](crate::is_permanent_error)): the server at that
/// address is not a PostgreSQL 17+ server, and asking again will not change that.
#[derive(Debug, thiserror::Error)]
#[error(
    "the server did not negotiate ALPN `postgresql` for a direct TLS connection; is this \
     a PostgreSQL 17+ server?"
)]
pub(crate) struct AlpnNotNegotiated;

/// Whether a handshake may go on: under direct negotiation only if the server picked
/// exactly `postgresql` (`negotiated` is what it picked, `None` for nothing).
pub(super) fn check(direct: bool, negotiated: Option<&[u8]>) -> Result<(), BoxError> {
    if direct && negotiated != Some(POSTGRESQL.as_bytes()) {
        return Err(Box::new(AlpnNotNegotiated));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgresql_passes_a_direct_handshake() {
        assert!(check(true, Some(b"postgresql")).is_ok());
        for other in [
            None,
            Some(&b"h2"[..]),
            Some(b"postgresq"),
            Some(b"postgresql\0"),
        ] {
            let e = check(true, other).unwrap_err();
            assert!(e.is::<AlpnNotNegotiated>(), "{other:?}: {e}");
        }
        // After an SSLRequest, the answer `S` already said PostgreSQL.
        for any in [None, Some(&b"h2"[..]), Some(b"postgresql")] {
            assert!(check(false, any).is_ok());
        }
    }
}
