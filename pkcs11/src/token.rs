//! A token (one slot), logged in once for the whole process.

use crate::{Pkcs11Error, RsaSigner, SecretPin, TokenSession};

/// A token, found by label.
#[derive(Clone)]
pub struct Token {
    // helper: Arc<HsmModule>, Slot, label
}

impl Token {
    /// The token label.
    pub fn label(&self) -> &str {
        todo!("helper")
    }

    /// Logs the user in. Idempotent: CKR_USER_ALREADY_LOGGED_IN is success (login state is
    /// per application and token in PKCS#11, so one login serves every session).
    pub fn login(&self, pin: &SecretPin) -> Result<(), Pkcs11Error> {
        todo!("helper")
    }

    /// A new read/write session for key management (caller must have logged in).
    pub fn session(&self) -> Result<TokenSession, Pkcs11Error> {
        todo!("helper")
    }

    /// A new session dedicated to signing with the private key labelled `key_label`; the key
    /// handle is looked up once here and cached in the signer.
    pub fn signer(&self, key_label: &str) -> Result<RsaSigner, Pkcs11Error> {
        todo!("helper")
    }
}
