//! A development service provider for Sosi2OIOSaml: an RSA key and a self-signed certificate
//! that the embedded configuration names as its audience, so that the issued assertion can be
//! decrypted in the demo and the tests (`xmlsec1 --decrypt --privkey-pem`).
//!
//! Unlike the rest of the development PKI this key is a file: it stands for a service
//! provider's key, which lives in the provider's own system, not in the STS's HSM.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::{io_err, DevError};

/// The audience URI of the development service provider.
pub const DEV_AUDIENCE: &str = "https://sp.dev.segl.example/";

/// Where the development audience's private key lives, beside its certificate.
pub fn key_path(certificate: &Path) -> PathBuf {
    certificate.with_file_name(format!(
        "{}-key.pem",
        certificate.file_stem().and_then(|s| s.to_str()).unwrap_or("audience")
    ))
}

/// Creates the key and certificate at `certificate` (and [`key_path`]) unless present;
/// returns what it created.
pub fn ensure(certificate: &Path) -> Result<Vec<String>, DevError> {
    if certificate.exists() {
        return Ok(Vec::new());
    }
    let fail = |reason: String| DevError::Certificate { label: "dev-audience".into(), reason };
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .map_err(|_| fail("RSA key generation failed".into()))?;
    let pkcs8 = key.as_der().map_err(|_| fail("PKCS#8 encoding failed".into()))?;
    let rc_key = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_ref().into(), &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| fail(e.to_string()))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DK");
    dn.push(DnType::OrganizationName, "SEGL Development Service Provider");
    dn.push(DnType::CommonName, "sp.dev.segl.example (encryption)");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    let cert = params.self_signed(&rc_key).map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = certificate.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let key_file = key_path(certificate);
    write_private(&key_file, &rc_key.serialize_pem())?;
    std::fs::write(certificate, cert.pem()).map_err(io_err(certificate))?;
    Ok(vec![format!(
        "development audience key {} and certificate {}",
        key_file.display(),
        certificate.display()
    )])
}

/// Writes a private key readable by its owner only.
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), DevError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(text.as_bytes()).map_err(io_err(path))
}
