//! The `rustls` stack's handshake: [`tokio_rustls`] with the factory's
//! [`ClientConfig`](rustls::ClientConfig) (ALPN `postgresql` offered, see
//! [`alpn`]), the protocol the server picked checked under direct
//! negotiation, and the SCRAM channel binding computed here.
//!
//! # Channel binding
//!
//! SCRAM-SHA-256-PLUS binds the login to the TLS session with `tls-server-end-point`
//! (RFC 5929, section 4.1): a hash of the server's leaf certificate, which a
//! man-in-the-middle holding another certificate cannot reproduce. The hash is the one
//! of the certificate's own signature algorithm, with MD5 and SHA-1 raised to SHA-256:
//!
//! | the leaf is signed with | hashed with |
//! |---|---|
//! | MD5, SHA-1 or SHA-256 (RSA, ECDSA, DSA) | SHA-256 |
//! | SHA-224 | SHA-224 |
//! | SHA-384 | SHA-384 |
//! | SHA-512 | SHA-512 |
//! | anything else (Ed25519, RSA-PSS, ...) | no binding offered |
//!
//! That matches what the server (OpenSSL) computes for its side. With no binding, the
//! driver logs in without one (`channel_binding=prefer`) or refuses
//! (`channel_binding=require`).

use std::sync::Arc;

use postgres::tls::ChannelBinding;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode;

use super::connector::{ErasedTls, Handshake, TlsIo};
use super::session::{ChannelBindingOf, Session};
use super::{alpn, BoxError, PgSocket};

/// The factory's rustls connector.
pub(super) struct RustlsHandshake(tokio_rustls::TlsConnector);

impl RustlsHandshake {
    /// A connector for `config`, which is made to offer ALPN `postgresql` (and only that:
    /// the connection speaks nothing else), as libpq 17 does on every handshake.
    pub(super) fn new(mut config: rustls::ClientConfig) -> RustlsHandshake {
        config.alpn_protocols = vec![alpn::POSTGRESQL.as_bytes().to_vec()];
        RustlsHandshake(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

impl ErasedTls for RustlsHandshake {
    fn handshake(
        &self,
        domain: &str,
        socket: PgSocket,
        direct: bool,
    ) -> Result<Handshake, BoxError> {
        // A host name, or an IP address (checked against the certificate's IP entries).
        let name = ServerName::try_from(domain.to_owned())?;
        let connect = self.0.connect(name, socket);
        Ok(Box::pin(async move {
            let stream = connect.await?;
            alpn::check(direct, stream.get_ref().1.alpn_protocol())?;
            Ok(Box::new(Session(stream)) as Box<dyn TlsIo>)
        }))
    }
}

/// A rustls session's channel binding: computed here from the leaf certificate.
impl ChannelBindingOf for tokio_rustls::client::TlsStream<PgSocket> {
    fn channel_binding(&self) -> ChannelBinding {
        let leaf = self.get_ref().1.peer_certificates().and_then(|c| c.first());
        match leaf.and_then(|cert| server_end_point(cert)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// The hashes `tls-server-end-point` may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

const fn oid(dotted: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(dotted)
}

/// Signature algorithms (by OID) and the hash the binding uses for them (the table in
/// the module docs).
const SIGNATURE_HASHES: &[(ObjectIdentifier, EndPointHash)] = &[
    // md5WithRSAEncryption, sha1WithRSAEncryption, ecdsa-with-SHA1, dsa-with-sha1:
    // raised to SHA-256 (RFC 5929).
    (oid("1.2.840.113549.1.1.4"), EndPointHash::Sha256),
    (oid("1.2.840.113549.1.1.5"), EndPointHash::Sha256),
    (oid("1.2.840.10045.4.1"), EndPointHash::Sha256),
    (oid("1.2.840.10040.4.3"), EndPointHash::Sha256),
    // sha224WithRSAEncryption, ecdsa-with-SHA224, dsa-with-sha224.
    (oid("1.2.840.113549.1.1.14"), EndPointHash::Sha224),
    (oid("1.2.840.10045.4.3.1"), EndPointHash::Sha224),
    (oid("2.16.840.1.101.3.4.3.1"), EndPointHash::Sha224),
    // sha256WithRSAEncryption, ecdsa-with-SHA256, dsa-with-sha256.
    (oid("1.2.840.113549.1.1.11"), EndPointHash::Sha256),
    (oid("1.2.840.10045.4.3.2"), EndPointHash::Sha256),
    (oid("2.16.840.1.101.3.4.3.2"), EndPointHash::Sha256),
    // sha384WithRSAEncryption, ecdsa-with-SHA384.
    (oid("1.2.840.113549.1.1.12"), EndPointHash::Sha384),
    (oid("1.2.840.10045.4.3.3"), EndPointHash::Sha384),
    // sha512WithRSAEncryption, ecdsa-with-SHA512.
    (oid("1.2.840.113549.1.1.13"), EndPointHash::Sha512),
    (oid("1.2.840.10045.4.3.4"), EndPointHash::Sha512),
];

/// The hash `tls-server-end-point` uses for a certificate signed with `algorithm`.
fn end_point_hash(algorithm: &ObjectIdentifier) -> Option<EndPointHash> {
    SIGNATURE_HASHES
        .iter()
        .find(|(known, _)| known == algorithm)
        .map(|&(_, hash)| hash)
}

/// `tls-server-end-point` for the leaf certificate `der`: `None` when it does not parse
/// or its signature algorithm names no single hash.
fn server_end_point(der: &[u8]) -> Option<Vec<u8>> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    Some(match end_point_hash(&cert.signature_algorithm.oid)? {
        EndPointHash::Sha224 => Sha224::digest(der).to_vec(),
        EndPointHash::Sha256 => Sha256::digest(der).to_vec(),
        EndPointHash::Sha384 => Sha384::digest(der).to_vec(),
        EndPointHash::Sha512 => Sha512::digest(der).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        cert.der().to_vec()
    }

    #[test]
    fn the_hash_follows_the_signature() {
        let p256 = leaf(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            server_end_point(&p256).unwrap(),
            Sha256::digest(&p256).to_vec()
        );
        let p384 = leaf(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(
            server_end_point(&p384).unwrap(),
            Sha384::digest(&p384).to_vec()
        );
        // Ed25519 names no hash: no binding.
        assert_eq!(server_end_point(&leaf(&rcgen::PKCS_ED25519)), None);
        // Not a certificate.
        assert_eq!(server_end_point(b"\x30\x03\x02\x01\x00"), None);
        assert_eq!(server_end_point(b""), None);
    }

    #[test]
    fn md5_and_sha1_are_raised_to_sha256() {
        for (dotted, want) in [
            ("1.2.840.113549.1.1.4", Some(EndPointHash::Sha256)),
            ("1.2.840.113549.1.1.5", Some(EndPointHash::Sha256)),
            ("1.2.840.10045.4.1", Some(EndPointHash::Sha256)),
            ("1.2.840.113549.1.1.11", Some(EndPointHash::Sha256)),
            ("1.2.840.113549.1.1.12", Some(EndPointHash::Sha384)),
            ("1.2.840.113549.1.1.13", Some(EndPointHash::Sha512)),
            ("1.2.840.10045.4.3.4", Some(EndPointHash::Sha512)),
            // RSASSA-PSS (the hash is in its parameters), Ed25519: none.
            ("1.2.840.113549.1.1.10", None),
            ("1.3.101.112", None),
        ] {
            assert_eq!(end_point_hash(&oid(dotted)), want, "{dotted}");
        }
    }
}
