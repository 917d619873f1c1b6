//! Test-only software identities: a fresh RSA key generated in memory (not in the token) and a
//! certificate for it with a development identity's subject and validity, issued by that
//! identity's CA inside the development token. For clients that cannot sign inside the token,
//! such as Java's trifork/unsealed, which takes a `PrivateKey` (from a PKCS#12 key store).
//!
//! The key is not the identity's token key: the certificate has the same subject, issuer and
//! validity, so the STS treats it like the identity (it chains to the same trust anchor), but a
//! different serial number and public key (so the development CRL, which lists the token
//! certificate of `revoked-moces`, does not cover it). The caller decides where the private key
//! goes; the unsealed tests pipe it to `openssl pkcs12` and keep only the password-protected key
//! store (mode 0600) in their private state.

use rcgen::{Issuer, KeyPair, PKCS_RSA_SHA256};
use segl_pkcs11::HsmModule;

use super::pki::{ca_key, cert_err, Identity};
use super::DevError;
use crate::config::Config;

/// A software key and its certificate.
pub struct SoftwareIdentity {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The intermediate CA certificate that issued it (PEM; empty when a root issued it).
    pub issuer_pem: String,
    /// The private key, PKCS#8 DER. Secret: never print it.
    pub private_key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for SoftwareIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareIdentity")
            .field("certificate_pem", &self.certificate_pem)
            .finish_non_exhaustive()
    }
}

/// For each of `identities`: generates a 2048-bit RSA key in software and has the identity's CA
/// (in the development token, one login for all) certify it with the identity's subject and
/// validity. CAs cannot be exported.
pub fn software_identities(
    config: &Config,
    identities: &[Identity],
) -> Result<Vec<SoftwareIdentity>, DevError> {
    let dev = config.dev.as_ref().ok_or(DevError::NoDevConfig)?;
    config.hsm.export_module_environment();
    let module = HsmModule::load(&config.hsm.module)?;
    let token = module.token(&dev.token_label)?;
    token.login(&segl_pkcs11::PinSource::File(dev.pin_file.clone()).read()?)?;
    let mut out = Vec::with_capacity(identities.len());
    for &identity in identities {
        let issuer_identity = match (identity, identity.issuer()) {
            (Identity::IssuingCa, _) | (_, None) => {
                let reason = "a CA has no software identity".into();
                return Err(DevError::Certificate { label: identity.label().into(), reason });
            }
            (_, Some(issuer)) => issuer,
        };
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(cert_err(identity.label()))?;
        let issuer = Issuer::new(issuer_identity.params()?, ca_key(&token, issuer_identity)?);
        let cert = identity.params()?.signed_by(&key, &issuer).map_err(cert_err(identity.label()))?;
        let issuer_pem = match issuer_identity {
            Identity::IssuingCa => {
                let file = dev.state_dir.join("pki").join(format!("{}.pem", issuer_identity.label()));
                std::fs::read_to_string(&file).map_err(super::io_err(&file))?
            }
            _ => String::new(),
        };
        out.push(SoftwareIdentity {
            certificate_pem: cert.pem(),
            issuer_pem,
            private_key_pkcs8: key.serialize_der(),
        });
    }
    Ok(out)
}
