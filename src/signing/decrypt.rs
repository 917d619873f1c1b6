//! The STS's decryption key on the HSM as the request path uses it: unwrapping the content key
//! of a token an issuer encrypted to the STS.
//!
//! RSA PKCS#1 v1.5 key transport is a padding oracle when its failures can be told apart: the
//! HSM does only the raw RSA operation (its answer does not depend on the padding), and the
//! padding is checked here by scanning the whole block without an early exit, so a bad block
//! and a good one take the same path. A bad block is `Rejected`, which `xml::enc` answers by
//! decrypting the content with a random key and failing there, like a wrong key would.

use segl_pkcs11::{FaultScope, RsaDecryptor};

use crate::xml::enc::{KeyTransport, KeyUnwrapError};

/// Unwraps `encrypted_key` with the HSM key behind `decryptor`.
pub fn unwrap_key(
    decryptor: &RsaDecryptor,
    transport: KeyTransport,
    encrypted_key: &[u8],
) -> Result<Vec<u8>, KeyUnwrapError> {
    let result = match transport {
        KeyTransport::Rsa1_5 => decryptor.raw(encrypted_key).map(|block| pkcs1_v15_message(&block)),
        KeyTransport::RsaOaepMgf1p => decryptor.oaep_sha1(encrypted_key).map(Some),
    };
    match result {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(KeyUnwrapError::Rejected),
        // An HSM that cannot be reached says nothing about the ciphertext; any other refusal is
        // about the input (its length, a value not below the modulus) and is a rejection.
        Err(e) if matches!(e.scope(), FaultScope::Session | FaultScope::KeyHandle) => {
            tracing::error!("decryption key unavailable: {e}");
            Err(KeyUnwrapError::Unavailable)
        }
        Err(_) => Err(KeyUnwrapError::Rejected),
    }
}

/// The message of an EME-PKCS1-v1_5 block `00 02 PS 00 M` (PS at least 8 non-zero bytes), or
/// `None`. Every byte is looked at whatever the block holds.
fn pkcs1_v15_message(block: &[u8]) -> Option<Vec<u8>> {
    let mut good = u8::from(block.len() >= 11);
    good &= u8::from(block.first() == Some(&0)) & u8::from(block.get(1) == Some(&2));
    // The index of the first zero byte after the header; 0 while none was seen.
    let mut separator = 0usize;
    for (i, &b) in block.iter().enumerate().skip(2) {
        let is_first_zero = usize::from(b == 0) & usize::from(separator == 0);
        separator |= i * is_first_zero;
    }
    good &= u8::from(separator >= 10);
    let message = block.get(separator.saturating_add(1)..).unwrap_or_default().to_vec();
    (good == 1).then_some(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ps: &[u8], message: &[u8]) -> Vec<u8> {
        [&[0u8, 2][..], ps, &[0], message].concat()
    }

    #[test]
    fn reads_well_formed_blocks_and_rejects_every_malformed_one() {
        let m = [7u8; 16];
        assert_eq!(pkcs1_v15_message(&block(&[9; 237], &m)), Some(m.to_vec()));
        assert_eq!(pkcs1_v15_message(&block(&[9; 8], &m)), Some(m.to_vec()));
        // Padding string shorter than 8 bytes.
        assert_eq!(pkcs1_v15_message(&block(&[9; 7], &m)), None);
        // Wrong header bytes.
        let mut b = block(&[9; 237], &m);
        b[0] = 1;
        assert_eq!(pkcs1_v15_message(&b), None);
        let mut b = block(&[9; 237], &m);
        b[1] = 1;
        assert_eq!(pkcs1_v15_message(&b), None);
        // No separator at all.
        assert_eq!(pkcs1_v15_message(&[&[0u8, 2][..], &[9; 254]].concat()), None);
        // Too short to be a block.
        assert_eq!(pkcs1_v15_message(&[0, 2, 0]), None);
        assert_eq!(pkcs1_v15_message(&[]), None);
    }
}
