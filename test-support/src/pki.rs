//! Throwaway certificates for the TLS tests (feature `pki`): a CA, and leaves it signs
//! for a server (`localhost`, and IP addresses where a test needs them) or a client.
//!
//! ```ignore
//! let ca = test_support::pki::Ca::new("pool-redis test CA");
//! let server = ca.server(&["localhost"]);          // a DNS name only: 127.0.0.1 must fail
//! let client = ca.client("pool-redis test client");
//! std::fs::write(dir.join("ca.pem"), ca.pem())?;
//! ```

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A certificate authority: a self-signed certificate and its key.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A leaf certificate and its private key, both PEM.
pub struct Leaf {
    /// The certificate, PEM.
    pub cert: String,
    /// Its private key, PEM (PKCS#8).
    pub key: String,
}

impl Ca {
    /// A new CA named `name` (its common name), allowed to sign certificates.
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = p.self_signed(&key).expect("self-signed CA");
        Ca { cert, key }
    }

    /// The CA's certificate, PEM (what a client trusts).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names`: each one an IP address (`"127.0.0.1"`) or a DNS
    /// name (`"localhost"`, also the common name when it is the first).
    pub fn server(&self, names: &[&str]) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().expect("a DNS name")),
            })
            .collect();
        p.distinguished_name
            .push(DnType::CommonName, *names.first().unwrap_or(&"server"));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(p)
    }

    /// A client certificate with the common name `name` (for servers that ask for one).
    pub fn client(&self, name: &str) -> Leaf {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(p)
    }

    fn sign(&self, mut p: CertificateParams) -> Leaf {
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("leaf key");
        let cert = p
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed leaf");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}
