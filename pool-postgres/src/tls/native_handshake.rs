//! The `native-tls` stack's handshake: [`tokio_native_tls`] with the factory's
//! [`native_tls::TlsConnector`], the protocol the server picked checked under direct
//! negotiation (see [`alpn`]), and the SCRAM channel binding
//! (`tls-server-end-point`, computed by the TLS library: the leaf certificate hashed
//! with its signature's hash, MD5 and SHA-1 raised to SHA-256, RFC 5929).
//!
//! The connector is built already, so this module cannot make it offer ALPN: the one
//! `sslmode` builds does ([`native`](super::native)); one given to
//! [`with_tls_connector`](crate::PostgresConnectionFactory::with_tls_connector) must ask
//! for it (`request_alpns(&["postgresql"])`) to connect with `sslnegotiation=direct`.

use postgres::tls::ChannelBinding;

use super::connector::{ErasedTls, Handshake, TlsIo};
use super::session::{ChannelBindingOf, Session};
use super::{alpn, BoxError, PgSocket};

/// The factory's native-tls connector.
pub(super) struct NativeHandshake(tokio_native_tls::TlsConnector);

impl NativeHandshake {
    pub(super) fn new(connector: native_tls::TlsConnector) -> NativeHandshake {
        NativeHandshake(connector.into())
    }
}

impl ErasedTls for NativeHandshake {
    fn handshake(
        &self,
        domain: &str,
        socket: PgSocket,
        direct: bool,
    ) -> Result<Handshake, BoxError> {
        let connector = self.0.clone();
        let domain = domain.to_owned();
        Ok(Box::pin(async move {
            let stream = connector.connect(&domain, socket).await?;
            // Asked only when it matters: some TLS libraries may fail to say.
            let negotiated = if direct {
                stream.get_ref().negotiated_alpn()?
            } else {
                None
            };
            alpn::check(direct, negotiated.as_deref())?;
            Ok(Box::new(Session(stream)) as Box<dyn TlsIo>)
        }))
    }
}

/// A native-tls session's channel binding: computed by the TLS library.
impl ChannelBindingOf for tokio_native_tls::TlsStream<PgSocket> {
    fn channel_binding(&self) -> ChannelBinding {
        match self.get_ref().tls_server_end_point() {
            Ok(Some(hash)) => ChannelBinding::tls_server_end_point(hash),
            // No single hash in the signature (or the library could not say): no binding.
            _ => ChannelBinding::none(),
        }
    }
}
