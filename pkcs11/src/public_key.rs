//! An RSA public key read from the token.

/// Modulus and public exponent of an RSA key (big-endian, no leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus n.
    pub modulus: Vec<u8>,
    /// The public exponent e.
    pub public_exponent: Vec<u8>,
}

impl RsaPublicKey {
    /// Key size in bits.
    pub fn bits(&self) -> usize {
        todo!("helper")
    }

    /// DER `RSAPublicKey` (PKCS#1: SEQUENCE { n INTEGER, e INTEGER }).
    pub fn pkcs1_der(&self) -> Vec<u8> {
        todo!("helper: correct DER INTEGER encoding (leading 0x00 when the top bit is set)")
    }

    /// DER `SubjectPublicKeyInfo` with algorithm rsaEncryption and NULL parameters.
    pub fn spki_der(&self) -> Vec<u8> {
        todo!("helper")
    }
}
