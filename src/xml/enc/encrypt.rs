//! Encrypting an assertion to a recipient certificate and writing the ENC-AUD element.

use aws_lc_rs::aead::{self, Aad, RandomizedNonceKey};
use aws_lc_rs::cipher::{self, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::rsa::{
    OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::algorithm::{ContentEncryption, KeyTransport, AES_BLOCK, GCM_IV, GCM_TAG};
use super::{DSIG_NS, SAML_NS, TYPE_ELEMENT, XENC_NS};
use crate::xml::emit::CanonicalWriter;

/// Why an assertion could not be encrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// The recipient certificate is not a parseable X.509 DER certificate.
    #[error("recipient certificate is not a valid DER X.509 certificate")]
    BadCertificate,
    /// The recipient certificate's public key is not an RSA key usable for encryption.
    #[error("recipient certificate does not carry a usable RSA public key")]
    NotRsaKey,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// Symmetric encryption of the content failed.
    #[error("content encryption failed")]
    ContentEncryption,
    /// RSA encryption of the symmetric key failed.
    #[error("key transport encryption failed")]
    KeyTransport,
}

/// A recipient's RSA public key, taken from its certificate once and reusable for many
/// encryptions (an audience's key, looked up per request).
pub struct RecipientKey {
    pkcs1: Pkcs1PublicEncryptingKey,
    oaep: OaepPublicEncryptingKey,
}

impl std::fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipientKey").field("bits", &self.pkcs1.key_size_bits()).finish()
    }
}

impl RecipientKey {
    /// Reads the RSA public key from a DER X.509 certificate.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, EncryptError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| EncryptError::BadCertificate)?;
        Self::from_spki_der(cert.tbs_certificate.subject_pki.raw)
    }

    /// Reads an RSA public key from a DER `SubjectPublicKeyInfo`.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, EncryptError> {
        let key = PublicEncryptingKey::from_der(spki).map_err(|_| EncryptError::NotRsaKey)?;
        let pkcs1 = Pkcs1PublicEncryptingKey::new(key.clone()).map_err(|_| EncryptError::NotRsaKey)?;
        let oaep = OaepPublicEncryptingKey::new(key).map_err(|_| EncryptError::NotRsaKey)?;
        Ok(Self { pkcs1, oaep })
    }

    /// RSA-encrypts a symmetric key with `transport`.
    fn encrypt_key(&self, transport: KeyTransport, key: &[u8]) -> Result<Vec<u8>, EncryptError> {
        let mut out = vec![0u8; self.pkcs1.ciphertext_size()];
        let len = match transport {
            KeyTransport::Rsa1_5 => self.pkcs1.encrypt(key, &mut out).map(|c| c.len()),
            KeyTransport::RsaOaepMgf1p => {
                self.oaep.encrypt(&OAEP_SHA1_MGF1SHA1, key, &mut out, None).map(|c| c.len())
            }
        }
        .map_err(|_| EncryptError::KeyTransport)?;
        out.truncate(len);
        Ok(out)
    }
}

/// Encrypts `plaintext` (the serialized, signed `saml:Assertion`) to the certificate's key and
/// returns the complete compact `saml:EncryptedAssertion` element.
pub fn encrypt_assertion(
    plaintext: &[u8],
    recipient_certificate_der: &[u8],
    content: ContentEncryption,
    transport: KeyTransport,
) -> Result<Vec<u8>, EncryptError> {
    let recipient = RecipientKey::from_certificate_der(recipient_certificate_der)?;
    encrypt_assertion_to(plaintext, &recipient, content, transport)
}

/// [`encrypt_assertion`] to a key read from its certificate beforehand (an audience's, once
/// per configuration rather than once per request).
pub fn encrypt_assertion_to(
    plaintext: &[u8],
    recipient: &RecipientKey,
    content: ContentEncryption,
    transport: KeyTransport,
) -> Result<Vec<u8>, EncryptError> {
    let mut w = CanonicalWriter::with_capacity(plaintext.len() * 4 / 3 + 1024);
    write_encrypted_assertion(&mut w, plaintext, recipient, content, transport)?;
    Ok(w.into_bytes())
}

/// Writes the `saml:EncryptedAssertion` element for `plaintext` onto `w` (nothing is written
/// if encryption fails).
pub fn write_encrypted_assertion(
    w: &mut CanonicalWriter,
    plaintext: &[u8],
    recipient: &RecipientKey,
    content: ContentEncryption,
    transport: KeyTransport,
) -> Result<(), EncryptError> {
    let mut key = vec![0u8; content.key_len()];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| EncryptError::Random)?;
    let cipher_value = encrypt_content(content, &key, plaintext)?;
    let encrypted_key = recipient.encrypt_key(transport, &key)?;
    key.fill(0);

    w.start("saml:EncryptedAssertion", &[("saml", SAML_NS)], &[]);
    w.start("xenc:EncryptedData", &[("xenc", XENC_NS)], &[("Type", TYPE_ELEMENT)]);
    w.leaf("xenc:EncryptionMethod", &[], &[("Algorithm", content.uri())], "");
    w.start("ds:KeyInfo", &[("ds", DSIG_NS)], &[]);
    w.start("xenc:EncryptedKey", &[("xenc", XENC_NS)], &[]);
    w.leaf("xenc:EncryptionMethod", &[], &[("Algorithm", transport.uri())], "");
    write_cipher_data(w, &encrypted_key);
    w.end("xenc:EncryptedKey");
    w.end("ds:KeyInfo");
    write_cipher_data(w, &cipher_value);
    w.end("xenc:EncryptedData");
    w.end("saml:EncryptedAssertion");
    Ok(())
}

/// `xenc:CipherData/xenc:CipherValue` with the base64 of `bytes` on one line.
fn write_cipher_data(w: &mut CanonicalWriter, bytes: &[u8]) {
    w.start("xenc:CipherData", &[], &[]);
    w.start("xenc:CipherValue", &[], &[]);
    // The base64 alphabet needs no escaping.
    w.raw(B64.encode(bytes).as_bytes());
    w.end("xenc:CipherValue");
    w.end("xenc:CipherData");
}

/// IV ‖ ciphertext (CBC, PKCS#7 padding, which is valid XML Encryption padding), or
/// IV ‖ ciphertext ‖ tag (GCM).
fn encrypt_content(
    content: ContentEncryption,
    key: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    if content.is_gcm() {
        let alg = match content {
            ContentEncryption::Aes256Gcm => &aead::AES_256_GCM,
            _ => &aead::AES_128_GCM,
        };
        let sealing = RandomizedNonceKey::new(alg, key).map_err(|_| EncryptError::ContentEncryption)?;
        let mut body = Vec::with_capacity(plaintext.len() + GCM_TAG);
        body.extend_from_slice(plaintext);
        let nonce = sealing
            .seal_in_place_append_tag(Aad::empty(), &mut body)
            .map_err(|_| EncryptError::ContentEncryption)?;
        let mut out = Vec::with_capacity(GCM_IV + body.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&body);
        Ok(out)
    } else {
        let alg = match content {
            ContentEncryption::Aes256Cbc => &cipher::AES_256,
            _ => &cipher::AES_128,
        };
        let unbound = UnboundCipherKey::new(alg, key).map_err(|_| EncryptError::ContentEncryption)?;
        let enc =
            PaddedBlockEncryptingKey::cbc_pkcs7(unbound).map_err(|_| EncryptError::ContentEncryption)?;
        let mut body = Vec::with_capacity(plaintext.len() + AES_BLOCK);
        body.extend_from_slice(plaintext);
        // A fresh random IV is generated by `encrypt`.
        let ctx = enc.encrypt(&mut body).map_err(|_| EncryptError::ContentEncryption)?;
        let iv: &[u8] = (&ctx).try_into().map_err(|_| EncryptError::ContentEncryption)?;
        let mut out = Vec::with_capacity(AES_BLOCK + body.len());
        out.extend_from_slice(iv);
        out.extend_from_slice(&body);
        Ok(out)
    }
}
