//! The `rustls` feature: a [`rustls::ClientConfig`] that does what `sslmode` says (see the
//! table in [`crate::tls`]), with the `ring` crypto provider and the platform's roots.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    SignatureScheme,
};

use super::roots::{roots_for, Roots};
use super::SslMode;
use crate::error::ConfigError;

/// The [`rustls::ClientConfig`] the `rustls` feature builds for `mode`: the table in
/// [`crate::tls`], the `ring` provider, ALPN `postgresql`, and as roots the certificates
/// in `root_cert` (PEM) **only** when it names a file, or the platform's store (read with
/// `rustls-native-certs`, as OpenSSL would find it) for `root_cert` `system` or none (see
/// "Where the roots come from" in [`crate::tls`]).
///
/// | `mode` | certificate chain | host name |
/// |---|---|---|
/// | `disable`, `allow`, `prefer` | not checked | not checked |
/// | `require`, `verify-full` | verified | verified |
/// | `verify-ca` | verified | not checked |
///
/// (Under `disable` the factory never uses TLS; the config is the `prefer` one.) The
/// handshake's signatures are verified in every mode: "not checked" accepts any
/// certificate, not a peer that does not hold its key.
///
/// Use it to start from the crate's verification and hand the result to
/// [`with_rustls_config`](crate::PostgresConnectionFactory::with_rustls_config), e.g. to
/// choose rustls in a build that also has the `native-tls` feature (where `sslmode` builds
/// native-tls's connector):
///
/// ```no_run
/// use pool_postgres::{tls, PostgresConnectionFactory, SslMode};
///
/// let config = tls::rustls_client_config(SslMode::VerifyFull, Some("/etc/app/db-ca.pem".as_ref()))?;
/// let factory = PostgresConnectionFactory::new("postgres://app@db:5432/orders?sslmode=verify-full")?
///     .with_rustls_config(config);
/// assert!(format!("{factory:?}").contains("rustls"));
/// # Ok::<(), pool_postgres::ConfigError>(())
/// ```
///
/// # Errors
///
/// [`ConfigError::Tls`] when `root_cert` cannot be read or holds no usable certificate,
/// when `verify-ca` has no `root_cert` file, when `root_cert` is `system` with a mode other
/// than `verify-full`, or when the platform's store is needed and is empty or unreadable.
pub fn rustls_client_config(
    mode: SslMode,
    root_cert: Option<&Path>,
) -> Result<ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier_for(mode, root_cert, &provider)?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(format!("rustls: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![super::alpn::POSTGRESQL.as_bytes().to_vec()];
    Ok(config)
}

/// The certificate verifier for `mode` (the table above), over the roots
/// [`roots_for`] names.
fn verifier_for(
    mode: SslMode,
    root_cert: Option<&Path>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, ConfigError> {
    let roots = roots_for(mode, root_cert)?;
    // Read in every mode, as native-tls does: a bad path is a mistake whatever the mode
    // (`system` is no path).
    let file_roots = match root_cert {
        Some(path) if path.as_os_str() != super::roots::SYSTEM => read_root_file(path)?,
        _ => Vec::new(),
    };
    let trusted = match roots {
        Roots::Unverified => {
            return Ok(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
        }
        Roots::Platform => platform_roots()?,
        Roots::File(_) => file_store(file_roots)?,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(trusted), provider.clone())
        .build()
        .map_err(|e| ConfigError::Tls(format!("rustls certificate verifier: {e}")))?;
    Ok(match mode {
        SslMode::VerifyCa => Arc::new(ChainOnly(webpki)),
        _ => webpki,
    })
}

/// The platform's roots (read with `rustls-native-certs`; on Linux the OpenSSL locations,
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` honoured).
fn platform_roots() -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        log::debug!("pool-postgres: reading the platform's root certificates: {e}");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        log::debug!(
            "pool-postgres: {ignored} of the platform's root certificates are not usable \
             by rustls ({added} are)"
        );
    }
    if roots.is_empty() {
        return Err(ConfigError::Tls(
            "no root certificate to verify the server with: the platform's store is empty or \
             unreadable (install ca-certificates, or set SSL_CERT_FILE), and no sslrootcert \
             file was given"
                .into(),
        ));
    }
    Ok(roots)
}

/// A store of the `sslrootcert` file's certificates, and nothing else.
fn file_store(file_roots: Vec<CertificateDer<'static>>) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in file_roots {
        roots.add(cert).map_err(|e| {
            ConfigError::Tls(format!(
                "a certificate in sslrootcert is not usable as a root: {e}"
            ))
        })?;
    }
    Ok(roots)
}

/// The certificates in the PEM file `path` (at least one).
fn read_root_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| {
        ConfigError::Tls(format!("cannot read sslrootcert {}: {e}", path.display()))
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::Tls(format!("sslrootcert {} is not PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::Tls(format!(
            "sslrootcert {} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// `verify-ca`: rustls's verifier, minus the host name check.
///
/// [`WebPkiServerVerifier`] checks the chain (and the validity period) first and the name
/// last, so a name mismatch is only ever reported for a certificate whose chain verified;
/// every other error, an unknown issuer or an expired certificate included, still fails.
/// (A unit test holds rustls to that order.) Both spellings of the name error are caught:
/// rustls 0.23.24 added `NotValidForNameContext` beside `NotValidForName`.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.0.root_hint_subjects()
    }
}

/// `prefer` and `allow`: any certificate (opportunistic encryption, as libpq does); the
/// handshake's signatures are still verified against the certificate's key.
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyCertificate")
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA, and a server certificate it signed for `localhost` only.
    struct Pki {
        ca_pem: String,
        server: CertificateDer<'static>,
        /// An unrelated CA's certificate, PEM.
        other_ca_pem: String,
    }

    fn pki() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "pool-postgres unit test CA");
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let other = other.self_signed(&other_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            server: server.der().clone(),
            other_ca_pem: other.pem(),
        }
    }

    fn verifier(mode: SslMode, ca_pem: &str) -> Arc<dyn ServerCertVerifier> {
        let dir = std::env::temp_dir().join(format!(
            "pool-postgres-rustls-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca_pem).unwrap();
        let config = rustls_client_config(mode, Some(&path)).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"postgresql".to_vec()]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = verifier_for(mode, Some(&path), &provider).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        verifier
    }

    fn check(
        v: &Arc<dyn ServerCertVerifier>,
        cert: &CertificateDer<'_>,
        name: &str,
    ) -> Result<ServerCertVerified, rustls::Error> {
        v.verify_server_cert(
            cert,
            &[],
            &ServerName::try_from(name.to_owned()).unwrap(),
            &[],
            UnixTime::now(),
        )
    }

    fn is_name_error(e: &rustls::Error) -> bool {
        matches!(
            e,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        )
    }

    #[test]
    fn the_table() {
        let pki = pki();
        for mode in [SslMode::Require, SslMode::VerifyFull] {
            let v = verifier(mode, &pki.ca_pem);
            check(&v, &pki.server, "localhost").unwrap();
            let e = check(&v, &pki.server, "127.0.0.1").unwrap_err();
            assert!(is_name_error(&e), "{mode}: {e:?}");
            let e = check(&v, &pki.server, "db.example").unwrap_err();
            assert!(is_name_error(&e), "{mode}: {e:?}");
        }
        let v = verifier(SslMode::VerifyCa, &pki.ca_pem);
        check(&v, &pki.server, "localhost").unwrap();
        check(&v, &pki.server, "127.0.0.1").unwrap();
        check(&v, &pki.server, "db.example").unwrap();
        // The wrong CA: the chain fails, whatever the name.
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let v = verifier(mode, &pki.other_ca_pem);
            for name in ["localhost", "127.0.0.1"] {
                let e = check(&v, &pki.server, name).unwrap_err();
                assert!(
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    ),
                    "{mode} {name}: {e:?}"
                );
            }
        }
        for mode in [SslMode::Allow, SslMode::Prefer] {
            let v = verifier(mode, &pki.other_ca_pem);
            check(&v, &pki.server, "db.example").unwrap();
        }
    }

    /// `ChainOnly` relies on rustls checking the chain before the name: a certificate
    /// from an unknown issuer *and* for another name must report the issuer.
    #[test]
    fn rustls_checks_the_chain_before_the_name() {
        let pki = pki();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.other_ca_pem.as_bytes()).unwrap())
            .unwrap();
        let v = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let e = v
            .verify_server_cert(
                &pki.server,
                &[],
                &ServerName::try_from("db.example").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{e:?}"
        );
    }

    #[test]
    fn bad_root_files_are_config_errors() {
        let dir =
            std::env::temp_dir().join(format!("pool-postgres-rustls-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        for (path, want) in [
            (&missing, "cannot read sslrootcert"),
            (&empty, "holds no certificate"),
        ] {
            let e = rustls_client_config(SslMode::VerifyFull, Some(path)).unwrap_err();
            assert!(matches!(e, ConfigError::Tls(_)), "{e:?}");
            assert!(e.to_string().contains(want), "{e}");
        }
        // Read whatever the mode, as with native-tls.
        assert!(rustls_client_config(SslMode::Prefer, Some(&missing)).is_err());
        rustls_client_config(SslMode::Prefer, None).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
