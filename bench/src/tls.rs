//! A throwaway TLS PKI for a segl the generator starts itself: a CA and a server certificate
//! for 127.0.0.1, made with rcgen in a directory of the caller's, so that the load can go over
//! TLS as clients' does without any certificate to manage.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The name the server certificate carries and the client checks.
pub const SERVER_NAME: &str = "127.0.0.1";

/// What the report says about the TLS it used.
pub const DESCRIPTION: &str = "TLS 1.3, rustls on both ends, ECDSA P-256 server certificate for 127.0.0.1 \
     from a throwaway CA, no client certificates";

/// Why the files could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsFilesError {
    /// rcgen refused.
    #[error("TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("TLS files in {dir}: {source}")]
    Io {
        /// The directory.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The files of the throwaway PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate (PEM), for the client to trust.
    pub ca: PathBuf,
    /// The server certificate chain (PEM), for `[server.tls] certificate`.
    pub certificate: PathBuf,
    /// The server's private key (PEM, PKCS#8), for `[server.tls] key`.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Makes a CA and a server certificate for 127.0.0.1 in `dir` (created if needed; paths
    /// are absolute, since segl resolves relative ones against its configuration's directory).
    pub fn create(dir: &Path) -> Result<TlsFiles, TlsFilesError> {
        let io = |source| TlsFilesError::Io { dir: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let dir = std::fs::canonicalize(dir).map_err(io)?;

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name.push(DnType::CommonName, "segl-load throwaway TLS CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;

        let key = KeyPair::generate()?;
        let mut server = CertificateParams::new(Vec::<String>::new())?;
        server.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        server.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let server_cert = server.signed_by(&key, &Issuer::new(ca, ca_key))?;

        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            certificate: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).map_err(io)?;
        std::fs::write(&files.certificate, server_cert.pem()).map_err(io)?;
        std::fs::write(&files.key, key.serialize_pem()).map_err(io)?;
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_pem_and_the_client_accepts_the_ca() {
        let dir = std::env::temp_dir().join(format!("segl-load-tls-test-{}", std::process::id()));
        let files = TlsFiles::create(&dir).unwrap();
        assert!(files.ca.is_absolute());
        assert!(std::fs::read_to_string(&files.certificate)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(std::fs::read_to_string(&files.key).unwrap().contains("PRIVATE KEY-----"));
        let addr = "127.0.0.1:1".parse().unwrap();
        assert!(crate::client::Target::tls(addr, &files.ca, SERVER_NAME).unwrap().is_tls());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
