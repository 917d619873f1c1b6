//! A key inside the token as rcgen's [`SigningKey`], so certificate requests are signed by the
//! HSM (SHA-256 hashed here, the DigestInfo signed there).

use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use segl_pkcs11::{HashAlgorithm, RsaSigner, Token};

/// An RSA key on the token, signing with RSA-SHA256.
pub struct TokenSigningKey {
    /// PKCS#1 `RSAPublicKey`, as rcgen wants it.
    public_pkcs1: Vec<u8>,
    signer: RsaSigner,
}

impl TokenSigningKey {
    /// The key labelled `label` on `token` (logged in).
    pub fn open(token: &Token, label: &str) -> Result<Self, segl_pkcs11::Pkcs11Error> {
        let public_pkcs1 = token.session()?.public_key(label)?.pkcs1_der();
        Ok(Self { public_pkcs1, signer: token.signer(label)? })
    }
}

impl PublicKeyData for TokenSigningKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public_pkcs1
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl SigningKey for TokenSigningKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, msg);
        self.signer.sign_digest(HashAlgorithm::Sha256, digest.as_ref()).map_err(|e| {
            tracing::error!("signing inside the HSM failed: {e}");
            rcgen::Error::RemoteKeyError
        })
    }
}
