//! Key management on a token: generate RSA keys inside it, read public keys, store and read
//! certificates.

use crate::{Pkcs11Error, RsaPublicKey};

/// A read/write session used for key management (not for the request path).
pub struct TokenSession {
    // helper: cryptoki Session + token label
}

impl TokenSession {
    /// Generates an RSA key pair inside the token. The private key is CKA_TOKEN, CKA_PRIVATE,
    /// CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN true, CKA_DECRYPT/CKA_UNWRAP false; both
    /// halves carry `label` and `id`. Fails with `KeyExists` if the label is taken.
    pub fn generate_rsa_key(&self, label: &str, id: &[u8], bits: u32) -> Result<RsaPublicKey, Pkcs11Error> {
        todo!("helper")
    }

    /// Whether a private key with this label exists.
    pub fn has_key(&self, label: &str) -> Result<bool, Pkcs11Error> {
        todo!("helper")
    }

    /// The public key of the key pair labelled `label` (read from the public key object, or
    /// from the private key's CKA_MODULUS / CKA_PUBLIC_EXPONENT).
    pub fn public_key(&self, label: &str) -> Result<RsaPublicKey, Pkcs11Error> {
        todo!("helper")
    }

    /// Stores a DER X.509 certificate object (CKO_CERTIFICATE, CKC_X_509) with label and id,
    /// replacing one with the same label.
    pub fn store_certificate(&self, label: &str, id: &[u8], der: &[u8]) -> Result<(), Pkcs11Error> {
        todo!("helper")
    }

    /// The DER certificate stored under `label`, if any.
    pub fn certificate(&self, label: &str) -> Result<Option<Vec<u8>>, Pkcs11Error> {
        todo!("helper")
    }
}
