//! XML Encryption for the ENC-AUD profile (spec §1.8, §7 item 20): the signed OIOSAML
//! assertion a `Sosi2OIOSaml` (or `JWT2OIOSaml`) response carries is encrypted to the
//! audience's certificate as
//!
//! ```text
//! saml:EncryptedAssertion
//!   xenc:EncryptedData Type="…xmlenc#Element"
//!     xenc:EncryptionMethod Algorithm=«content algorithm»
//!     ds:KeyInfo
//!       xenc:EncryptedKey
//!         xenc:EncryptionMethod Algorithm=«key transport»
//!         xenc:CipherData/xenc:CipherValue   «RSA-encrypted fresh AES key»
//!     xenc:CipherData/xenc:CipherValue       «IV ‖ ciphertext (‖ tag for GCM)»
//! ```
//!
//! compact, without `Id`, `ReferenceList`, `Recipient` or `MimeType`, base64 on one line.
//!
//! **Defaults.** `aes128-cbc` with `rsa-1_5` is the default because it is what the STS sends
//! today and the only pair trifork's unsealed can decrypt (`AES/CBC/ISO10126Padding`,
//! `RSA/ECB/PKCS1Padding`). Both are weak: CBC has no integrity and RSA PKCS#1 v1.5
//! encryption invites Bleichenbacher attacks. An audience whose software can do better is
//! configured with `aes128-gcm`/`aes256-gcm` (XML Encryption 1.1) and `rsa-oaep`
//! (`rsa-oaep-mgf1p`: SHA-1 and MGF1-SHA-1, the xmlsec1 and Santuario default).
//!
//! **Decryption and the padding oracle.** segl also decrypts (encrypted bootstrap tokens sent
//! to the STS). PKCS#1 v1.5 decryption is a padding oracle if a caller can tell a bad RSA
//! padding from a later failure, by error or by time. [`decrypt_encrypted_data`] therefore
//! reads and checks the whole structure first (those errors depend only on the document);
//! then it draws a random key, asks the unwrapper (an HSM `C_Decrypt` in production) for the
//! real one, and keeps the random key when unwrapping was rejected or returned a key of the
//! wrong length (implicit rejection, selected without branching on the outcome). The content
//! is always decrypted, and any failure from there on (wrong key, bad RSA padding, bad CBC
//! padding, GCM tag mismatch, tampering, a plaintext that is not UTF-8 XML) is the single
//! [`DecryptError::Undecryptable`]. A random key is not reported as a failure by itself: with
//! CBC it still has to fail the padding or plaintext check, exactly as a wrong but validly
//! padded key would, so the outcome says nothing about the RSA padding.
//!
//! `xml/` knows no HSM: the unwrapper is a closure. [`SoftwareKeyUnwrapper`] is an in-memory
//! one for development and tests.

mod algorithm;
mod decrypt;
mod encrypt;
mod software;

pub use algorithm::{
    ContentEncryption, KeyTransport, AES128_CBC, AES128_GCM, AES256_CBC, AES256_GCM, RSA_1_5, RSA_OAEP_MGF1P,
    SHA1,
};
pub use decrypt::{decrypt_encrypted_data, DecryptError, KeyUnwrapError};
pub use encrypt::{
    encrypt_assertion, encrypt_assertion_to, write_encrypted_assertion, EncryptError, RecipientKey,
};
pub use software::{BadPrivateKey, SoftwareKeyUnwrapper};

pub use crate::xml::dsig::algorithm::DSIG_NS;

/// The XML Encryption namespace.
pub const XENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
/// The SAML 2.0 assertion namespace (of `saml:EncryptedAssertion`).
pub const SAML_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// `EncryptedData/@Type` for an encrypted element.
pub const TYPE_ELEMENT: &str = "http://www.w3.org/2001/04/xmlenc#Element";

#[cfg(test)]
mod tests;
