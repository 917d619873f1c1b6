//! Signing with one key on one session: the unit a core owns.

use crate::{HashAlgorithm, Pkcs11Error};

/// One session and one cached private-key handle. `Send` but not `Sync`: each executor core
/// owns its own.
pub struct RsaSigner {
    // helper: Session, ObjectHandle, key label, modulus length
}

impl RsaSigner {
    /// The label of the key this signer uses.
    pub fn key_label(&self) -> &str {
        todo!("helper")
    }

    /// Signs an already computed digest: builds the DigestInfo and runs CKM_RSA_PKCS.
    pub fn sign_digest(&self, alg: HashAlgorithm, digest: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        todo!("helper")
    }
}
