//! The STS signing key on the HSM, as the request path uses it: one [`CoreSigner`] per
//! executor core, each with its own PKCS#11 session, sharing one [`StsCredential`].

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use segl_pkcs11::{HsmModule, Pkcs11Error, RsaSigner, Token};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::config::HsmConfig;
use crate::xml::dsig::algorithm::DigestAlgorithm;

/// Why the STS key could not be made ready, or a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The HSM refused or failed.
    #[error("HSM: {0}")]
    Hsm(#[from] Pkcs11Error),
    /// Neither a PIN file nor a PIN variable is configured.
    #[error("no PIN source configured for token {0:?}")]
    NoPinSource(String),
    /// The token holds no certificate for the signing key.
    #[error("token {token:?} holds no certificate labelled {label:?}; import one for the key")]
    NoCertificate { token: String, label: String },
    /// The certificate on the token is not for the signing key.
    #[error("the certificate labelled {label:?} does not match the key labelled {label:?}")]
    CertificateMismatch { label: String },
    /// The key a request started with is no longer available to this signer.
    #[error("key {label:?} is no longer available for signing")]
    KeyRetired { label: String },
    /// The certificate on the token cannot be parsed.
    #[error("the certificate labelled {label:?} is unusable: {reason}")]
    BadCertificate { label: String, reason: String },
}

/// The active signing key's identity: label and certificate.
#[derive(Debug)]
pub struct StsCredential {
    /// Label of the private key (and of its certificate) on the token.
    pub key_label: String,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The certificate, base64 on one line, as placed in `ds:X509Certificate`.
    pub certificate_b64: String,
}

/// The opened HSM token with the STS key: made once at startup, then asked for one
/// [`CoreSigner`] per core.
pub struct StsKey {
    token: Token,
    credential: Arc<StsCredential>,
}

impl StsKey {
    /// Loads the module, logs in, and checks that the key's certificate is on the token and
    /// certifies that key. Call before any other thread starts (it exports `path_env`).
    pub fn open(cfg: &HsmConfig) -> Result<StsKey, SigningError> {
        cfg.export_module_environment();
        let module = HsmModule::load(&cfg.module)?;
        let token = module.token(&cfg.token_label)?;
        let pin =
            cfg.pin_source().ok_or_else(|| SigningError::NoPinSource(cfg.token_label.clone()))?.read()?;
        token.login(&pin)?;
        let session = token.session()?;
        let der = session.certificate(&cfg.key_label)?.ok_or_else(|| SigningError::NoCertificate {
            token: cfg.token_label.clone(),
            label: cfg.key_label.clone(),
        })?;
        let public_key = session.public_key(&cfg.key_label)?;
        if certificate_modulus(&der, &cfg.key_label)? != strip_zeros(&public_key.modulus) {
            return Err(SigningError::CertificateMismatch { label: cfg.key_label.clone() });
        }
        let credential = StsCredential {
            key_label: cfg.key_label.clone(),
            certificate_b64: B64.encode(&der),
            certificate_der: der,
        };
        Ok(StsKey { token, credential: Arc::new(credential) })
    }

    /// The certificate and label of the key.
    pub fn credential(&self) -> &Arc<StsCredential> {
        &self.credential
    }

    /// A signer with its own session, for one core.
    pub fn core_signer(&self) -> Result<CoreSigner, SigningError> {
        Ok(CoreSigner {
            signer: self.token.signer(&self.credential.key_label)?,
            credential: self.credential.clone(),
        })
    }
}

/// One core's signer: its own session on the token and the shared credential.
pub struct CoreSigner {
    signer: RsaSigner,
    credential: Arc<StsCredential>,
}

impl CoreSigner {
    /// The credential a request starting now signs with. A request keeps this snapshot from
    /// preparing its signature to finishing it, so the certificate in its KeyInfo is always
    /// the one of the key that signs.
    pub fn credential(&self) -> Arc<StsCredential> {
        self.credential.clone()
    }

    /// Signs a digest (as a PKCS#1 DigestInfo) with the key of `credential`.
    pub async fn sign_digest(
        &self,
        credential: &StsCredential,
        alg: DigestAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        if credential.key_label != self.signer.key_label() {
            return Err(SigningError::KeyRetired { label: credential.key_label.clone() });
        }
        Ok(self.signer.sign_digest(alg.hsm(), digest)?)
    }
}

/// The RSA modulus certified by a DER certificate, without leading zero bytes.
pub fn certificate_modulus(der: &[u8], label: &str) -> Result<Vec<u8>, SigningError> {
    let bad = |reason: String| SigningError::BadCertificate { label: label.to_owned(), reason };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => Ok(strip_zeros(rsa.modulus)),
        Ok(_) => Err(bad("not an RSA key".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}
