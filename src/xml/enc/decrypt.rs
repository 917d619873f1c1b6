//! Decrypting an `xenc:EncryptedData` element whose key is RSA-transported in an
//! `xenc:EncryptedKey`, with one error and one code path for every key-dependent failure.

use aws_lc_rs::aead::{self, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::cipher::{self, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;

use super::algorithm::{ContentEncryption, KeyTransport, AES_BLOCK, GCM_IV, SHA1};
use super::{DSIG_NS, TYPE_ELEMENT, XENC_NS};
use crate::xml::{Document, NodeId};

/// Why the key unwrapper (the HSM's `C_Decrypt`, or [`super::SoftwareKeyUnwrapper`]) returned no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyUnwrapError {
    /// The encrypted key did not decrypt (bad padding, wrong length, wrong key, anything that
    /// depends on the ciphertext). Handled exactly like a successful unwrap of a wrong key.
    #[error("encrypted key rejected")]
    Rejected,
    /// The unwrapper could not be asked at all (e.g. no HSM session). Use this ONLY for
    /// failures that do not depend on the ciphertext, or it becomes a padding oracle.
    #[error("key unwrapping unavailable")]
    Unavailable,
}

/// Why an `xenc:EncryptedData` element could not be decrypted.
///
/// Every variant except [`DecryptError::Undecryptable`] and [`DecryptError::KeyUnavailable`]
/// is decided from the document structure alone, before any key is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The node is not an `xenc:EncryptedData` element.
    #[error("not an xenc:EncryptedData element")]
    NotEncryptedData,
    /// A required element is missing.
    #[error("missing {element} in {parent}")]
    Missing {
        /// The missing element.
        element: &'static str,
        /// Where it was expected.
        parent: &'static str,
    },
    /// An `xenc:EncryptionMethod` has no `Algorithm` attribute.
    #[error("xenc:EncryptionMethod without Algorithm in {parent}")]
    MissingAlgorithm {
        /// `xenc:EncryptedData` or `xenc:EncryptedKey`.
        parent: &'static str,
    },
    /// The content encryption algorithm is not one segl supports.
    #[error("unsupported content encryption algorithm {0}")]
    UnsupportedContentAlgorithm(String),
    /// The key transport algorithm is not one segl supports.
    #[error("unsupported key transport algorithm {0}")]
    UnsupportedKeyTransport(String),
    /// RSA-OAEP parameters other than SHA-1, MGF1-SHA-1 and an empty label.
    #[error("unsupported RSA-OAEP parameters: {0}")]
    UnsupportedOaepParameters(&'static str),
    /// No `xenc:EncryptedKey` in `ds:KeyInfo` nor beside the `xenc:EncryptedData`.
    #[error("no xenc:EncryptedKey for the xenc:EncryptedData")]
    MissingEncryptedKey,
    /// More than one candidate `xenc:EncryptedKey`.
    #[error("more than one xenc:EncryptedKey for the xenc:EncryptedData")]
    AmbiguousEncryptedKey,
    /// `xenc:CipherReference` (cipher data by URI) is not supported.
    #[error("xenc:CipherReference is not supported (in {parent})")]
    CipherReference {
        /// `xenc:EncryptedData` or `xenc:EncryptedKey`.
        parent: &'static str,
    },
    /// A CipherValue is not valid base64.
    #[error("CipherValue of {parent} is not valid base64")]
    BadBase64 {
        /// `xenc:EncryptedData` or `xenc:EncryptedKey`.
        parent: &'static str,
    },
    /// The content CipherValue has a length no ciphertext of its algorithm can have.
    #[error("CipherValue of xenc:EncryptedData has an impossible length for {0}")]
    CipherLength(&'static str),
    /// The key unwrapper was unavailable (independent of the message).
    #[error("key unwrapping unavailable")]
    KeyUnavailable,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// The data could not be decrypted: wrong key, bad key padding, bad content padding,
    /// failed authentication or tampering. Deliberately one variant with one message.
    #[error("encrypted data could not be decrypted")]
    Undecryptable,
}

const ENCRYPTED_DATA: &str = "xenc:EncryptedData";
const ENCRYPTED_KEY: &str = "xenc:EncryptedKey";

/// Decrypts the `xenc:EncryptedData` element `encrypted_data` and returns the plaintext.
///
/// The symmetric key comes from an `xenc:EncryptedKey`, looked for first in the
/// `ds:KeyInfo` of the EncryptedData (ENC-AUD), otherwise among the EncryptedData's siblings
/// (the SAML `EncryptedAssertion/EncryptedKey` form; `ds:KeyInfo` may then hold anything,
/// e.g. a `ds:RetrievalMethod`, and is not followed). Exactly one candidate must exist.
/// `unwrap_key` receives the transport algorithm and the RSA ciphertext and returns the key
/// (in production an HSM `C_Decrypt`).
///
/// The plaintext must be UTF-8, and for `Type="…xmlenc#Element"` start with `<`; a plaintext
/// that is not is reported as [`DecryptError::Undecryptable`] like any other key-dependent
/// failure.
pub fn decrypt_encrypted_data<F>(
    doc: &Document,
    encrypted_data: NodeId,
    unwrap_key: F,
) -> Result<Vec<u8>, DecryptError>
where
    F: FnOnce(KeyTransport, &[u8]) -> Result<Vec<u8>, KeyUnwrapError>,
{
    if !doc.is(encrypted_data, XENC_NS, "EncryptedData") {
        return Err(DecryptError::NotEncryptedData);
    }
    let content = content_algorithm(doc, encrypted_data)?;
    let encrypted_key = find_encrypted_key(doc, encrypted_data)?;
    let transport = transport_algorithm(doc, encrypted_key)?;
    let wrapped_key = cipher_value(doc, encrypted_key, ENCRYPTED_KEY)?;
    let cipher = cipher_value(doc, encrypted_data, ENCRYPTED_DATA)?;
    check_cipher_length(content, &cipher)?;
    let element = doc.attribute(encrypted_data, "Type").is_some_and(|t| t == TYPE_ELEMENT);

    // Structure read: from here on every failure is `Undecryptable`, reached on one path.
    // The fallback key is drawn before asking the unwrapper so both outcomes cost the same.
    let mut key = vec![0u8; content.key_len()];
    aws_lc_rs::rand::fill(&mut key).map_err(|_| DecryptError::Random)?;
    let unwrapped = match unwrap_key(transport, &wrapped_key) {
        Ok(k) => Some(k),
        Err(KeyUnwrapError::Rejected) => None,
        Err(KeyUnwrapError::Unavailable) => return Err(DecryptError::KeyUnavailable),
    };
    select_key(&mut key, unwrapped);
    let plaintext = decrypt_content(content, &key, &cipher);
    key.fill(0);
    match plaintext {
        Some(p) if std::str::from_utf8(&p).is_ok() && (!element || p.first() == Some(&b'<')) => Ok(p),
        _ => Err(DecryptError::Undecryptable),
    }
}

/// Replaces the random `key` by the unwrapped one if that has the right length, without a
/// branch on the outcome (implicit rejection: a rejected key becomes a random key).
fn select_key(key: &mut [u8], unwrapped: Option<Vec<u8>>) {
    let mut candidate = unwrapped.unwrap_or_default();
    let ok = u8::from(candidate.len() == key.len());
    let mask = std::hint::black_box(0u8.wrapping_sub(ok));
    for (i, k) in key.iter_mut().enumerate() {
        let c = candidate.get(i).copied().unwrap_or(0);
        *k = (c & mask) | (*k & !mask);
    }
    candidate.fill(0);
}

/// The content algorithm from the EncryptedData's `xenc:EncryptionMethod`.
fn content_algorithm(doc: &Document, data: NodeId) -> Result<ContentEncryption, DecryptError> {
    let method = doc
        .child(data, XENC_NS, "EncryptionMethod")
        .ok_or(DecryptError::Missing { element: "xenc:EncryptionMethod", parent: ENCRYPTED_DATA })?;
    let uri = doc
        .attribute(method, "Algorithm")
        .ok_or(DecryptError::MissingAlgorithm { parent: ENCRYPTED_DATA })?;
    ContentEncryption::from_uri(&uri)
        .ok_or_else(|| DecryptError::UnsupportedContentAlgorithm(uri.into_owned()))
}

/// The transport algorithm from the EncryptedKey's `xenc:EncryptionMethod`, checking OAEP
/// parameters (SHA-1 digest, no label) when present.
fn transport_algorithm(doc: &Document, key: NodeId) -> Result<KeyTransport, DecryptError> {
    let method = doc
        .child(key, XENC_NS, "EncryptionMethod")
        .ok_or(DecryptError::Missing { element: "xenc:EncryptionMethod", parent: ENCRYPTED_KEY })?;
    let uri =
        doc.attribute(method, "Algorithm").ok_or(DecryptError::MissingAlgorithm { parent: ENCRYPTED_KEY })?;
    let transport = KeyTransport::from_uri(&uri)
        .ok_or_else(|| DecryptError::UnsupportedKeyTransport(uri.into_owned()))?;
    if transport == KeyTransport::RsaOaepMgf1p {
        for child in doc.children(method) {
            if doc.is(child, DSIG_NS, "DigestMethod") {
                if doc.attribute(child, "Algorithm").as_deref() != Some(SHA1) {
                    return Err(DecryptError::UnsupportedOaepParameters("digest other than SHA-1"));
                }
            } else if doc.is(child, XENC_NS, "OAEPparams") {
                if !doc.text(child).trim().is_empty() {
                    return Err(DecryptError::UnsupportedOaepParameters("non-empty OAEPparams"));
                }
            } else {
                return Err(DecryptError::UnsupportedOaepParameters("unknown parameter element"));
            }
        }
    }
    Ok(transport)
}

/// The one `xenc:EncryptedKey` belonging to `data` (see [`decrypt_encrypted_data`]).
fn find_encrypted_key(doc: &Document, data: NodeId) -> Result<NodeId, DecryptError> {
    let in_key_info =
        doc.child(data, DSIG_NS, "KeyInfo").map(|ki| only_encrypted_key(doc, ki)).transpose()?.flatten();
    if let Some(k) = in_key_info {
        return Ok(k);
    }
    let sibling = doc.parent(data).map(|p| only_encrypted_key(doc, p)).transpose()?.flatten();
    sibling.ok_or(DecryptError::MissingEncryptedKey)
}

/// The single `xenc:EncryptedKey` child of `parent`, if any.
fn only_encrypted_key(doc: &Document, parent: NodeId) -> Result<Option<NodeId>, DecryptError> {
    let mut keys = doc.children(parent).filter(|&c| doc.is(c, XENC_NS, "EncryptedKey"));
    let first = keys.next();
    if keys.next().is_some() {
        return Err(DecryptError::AmbiguousEncryptedKey);
    }
    Ok(first)
}

/// The decoded `xenc:CipherData/xenc:CipherValue` of `parent`.
fn cipher_value(doc: &Document, parent: NodeId, name: &'static str) -> Result<Vec<u8>, DecryptError> {
    let data = doc
        .child(parent, XENC_NS, "CipherData")
        .ok_or(DecryptError::Missing { element: "xenc:CipherData", parent: name })?;
    let Some(value) = doc.child(data, XENC_NS, "CipherValue") else {
        if doc.child(data, XENC_NS, "CipherReference").is_some() {
            return Err(DecryptError::CipherReference { parent: name });
        }
        return Err(DecryptError::Missing { element: "xenc:CipherValue", parent: name });
    };
    decode_b64(&doc.text(value)).ok_or(DecryptError::BadBase64 { parent: name })
}

/// Base64 with XML whitespace (Java's 76-column wrapping, `&#13;`) removed first.
fn decode_b64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let compact: Vec<u8> = text.bytes().filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

/// Rejects lengths that no ciphertext of `content` can have (independent of the key).
fn check_cipher_length(content: ContentEncryption, cipher: &[u8]) -> Result<(), DecryptError> {
    let block_aligned = content.is_gcm() || cipher.len().is_multiple_of(AES_BLOCK);
    if cipher.len() < content.min_cipher_len() || !block_aligned {
        return Err(DecryptError::CipherLength(content.name()));
    }
    Ok(())
}

/// IV-prefixed CBC (XML Encryption padding: last byte = pad length 1..=16, other pad bytes
/// arbitrary) or GCM (12-byte IV, 16-byte tag appended). `None` on any failure.
fn decrypt_content(content: ContentEncryption, key: &[u8], cipher: &[u8]) -> Option<Vec<u8>> {
    if content.is_gcm() {
        let alg = match content {
            ContentEncryption::Aes256Gcm => &aead::AES_256_GCM,
            _ => &aead::AES_128_GCM,
        };
        let (iv, body) = cipher.split_at_checked(GCM_IV)?;
        let nonce = Nonce::try_assume_unique_for_key(iv).ok()?;
        let opening = RandomizedNonceKey::new(alg, key).ok()?;
        let mut buf = body.to_vec();
        let len = opening.open_in_place(nonce, Aad::empty(), &mut buf).ok()?.len();
        buf.truncate(len);
        Some(buf)
    } else {
        let alg = match content {
            ContentEncryption::Aes256Cbc => &cipher::AES_256,
            _ => &cipher::AES_128,
        };
        let (iv, body) = cipher.split_at_checked(AES_BLOCK)?;
        let iv = FixedLength::<AES_BLOCK>::try_from(iv).ok()?;
        let dec = PaddedBlockDecryptingKey::cbc_iso10126(UnboundCipherKey::new(alg, key).ok()?).ok()?;
        let mut buf = body.to_vec();
        let len = dec.decrypt(&mut buf, DecryptionContext::Iv128(iv)).ok()?.len();
        buf.truncate(len);
        Some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::select_key;

    #[test]
    fn implicit_rejection_keeps_the_random_key_unless_the_length_is_right() {
        let random = [0xA5u8; 16];
        for unwrapped in [None, Some(vec![1u8; 15]), Some(vec![1u8; 17]), Some(Vec::new())] {
            let mut key = random;
            select_key(&mut key, unwrapped);
            assert_eq!(key, random);
        }
        let mut key = random;
        select_key(&mut key, Some(vec![1u8; 16]));
        assert_eq!(key, [1u8; 16]);
    }
}
