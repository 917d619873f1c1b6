//! Signing with one key on one session: the unit a core owns.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

use crate::module::call;
use crate::{digest_info, HashAlgorithm, Pkcs11Error, Token};

/// One session and one cached private-key handle. `Send` but not `Sync`: each executor core
/// owns its own.
pub struct RsaSigner {
    session: Session,
    key: ObjectHandle,
    label: String,
    modulus_len: usize,
    /// Keeps the token's login session, and with it the login, alive while this signer exists.
    _token: Token,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaSigner")
            .field("token", &self._token.label())
            .field("key_label", &self.label)
            .field("modulus_len", &self.modulus_len)
            .finish()
    }
}

impl RsaSigner {
    pub(crate) fn new(
        session: Session,
        key: ObjectHandle,
        label: String,
        modulus_len: usize,
        token: Token,
    ) -> Self {
        Self { session, key, label, modulus_len, _token: token }
    }

    /// The label of the key this signer uses.
    pub fn key_label(&self) -> &str {
        &self.label
    }

    /// Signs an already computed digest: builds the DigestInfo and runs CKM_RSA_PKCS.
    pub fn sign_digest(&self, alg: HashAlgorithm, digest: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let info = digest_info(alg, digest).ok_or(Pkcs11Error::DigestLength {
            alg,
            expected: alg.output_len(),
            got: digest.len(),
        })?;
        let signature = self.session.sign(&Mechanism::RsaPkcs, self.key, &info).map_err(call("C_Sign"))?;
        if signature.len() != self.modulus_len {
            tracing::warn!(
                key = %self.label,
                got = signature.len(),
                expected = self.modulus_len,
                "RSA signature length differs from the modulus length"
            );
        }
        Ok(signature)
    }
}
