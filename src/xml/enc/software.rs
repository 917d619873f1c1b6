//! A software RSA key unwrapper, FOR DEVELOPMENT AND TESTS ONLY: in production the STS's
//! decryption key lives on the HSM and unwrapping is a `C_Decrypt` there.

use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey, OAEP_SHA1_MGF1SHA1,
};

use super::algorithm::KeyTransport;
use super::decrypt::KeyUnwrapError;

/// The private key was not a usable RSA PKCS#8 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a usable RSA PKCS#8 private key")]
pub struct BadPrivateKey;

/// An in-memory RSA private key that unwraps ENC-AUD keys (development and tests only).
pub struct SoftwareKeyUnwrapper {
    pkcs1: Pkcs1PrivateDecryptingKey,
    oaep: OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for SoftwareKeyUnwrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeyUnwrapper").finish_non_exhaustive()
    }
}

impl SoftwareKeyUnwrapper {
    /// Loads an unencrypted PKCS#8 DER RSA private key (development and tests only).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, BadPrivateKey> {
        let key = PrivateDecryptingKey::from_pkcs8(der).map_err(|_| BadPrivateKey)?;
        let pkcs1 = Pkcs1PrivateDecryptingKey::new(key.clone()).map_err(|_| BadPrivateKey)?;
        let oaep = OaepPrivateDecryptingKey::new(key).map_err(|_| BadPrivateKey)?;
        Ok(Self { pkcs1, oaep })
    }

    /// RSA-decrypts an encrypted key; usable as `decrypt_encrypted_data`'s `unwrap_key` via
    /// `|t, c| unwrapper.unwrap(t, c)`.
    pub fn unwrap(&self, transport: KeyTransport, encrypted_key: &[u8]) -> Result<Vec<u8>, KeyUnwrapError> {
        let mut out = vec![0u8; self.pkcs1.min_output_size()];
        let len = match transport {
            KeyTransport::Rsa1_5 => self.pkcs1.decrypt(encrypted_key, &mut out).map(|p| p.len()),
            KeyTransport::RsaOaepMgf1p => {
                self.oaep.decrypt(&OAEP_SHA1_MGF1SHA1, encrypted_key, &mut out, None).map(|p| p.len())
            }
        };
        match len {
            Ok(len) => {
                out.truncate(len);
                Ok(out)
            }
            Err(_) => {
                out.fill(0);
                Err(KeyUnwrapError::Rejected)
            }
        }
    }
}
