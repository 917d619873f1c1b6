//! An RSA public key read from the token.

/// Modulus and public exponent of an RSA key (big-endian, no leading zero bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus n.
    pub modulus: Vec<u8>,
    /// The public exponent e.
    pub public_exponent: Vec<u8>,
}

/// AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
const RSA_ENCRYPTION_ALG_ID: &[u8] =
    &[0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_SEQUENCE: u8 = 0x30;

impl RsaPublicKey {
    /// Key size in bits.
    pub fn bits(&self) -> usize {
        let n = strip_leading_zeros(&self.modulus);
        match n.first() {
            None => 0,
            Some(&top) => (n.len() - 1) * 8 + (8 - top.leading_zeros() as usize),
        }
    }

    /// DER `RSAPublicKey` (PKCS#1: SEQUENCE { n INTEGER, e INTEGER }).
    pub fn pkcs1_der(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.modulus.len() + self.public_exponent.len() + 16);
        der_unsigned_integer(&mut body, &self.modulus);
        der_unsigned_integer(&mut body, &self.public_exponent);
        let mut out = Vec::with_capacity(body.len() + 5);
        der_tlv(&mut out, TAG_SEQUENCE, &body);
        out
    }

    /// DER `SubjectPublicKeyInfo` with algorithm rsaEncryption and NULL parameters.
    pub fn spki_der(&self) -> Vec<u8> {
        let pkcs1 = self.pkcs1_der();
        // The BIT STRING content starts with the count of unused bits in the last byte: none.
        let mut bits = Vec::with_capacity(pkcs1.len() + 1);
        bits.push(0x00);
        bits.extend_from_slice(&pkcs1);
        let mut body = Vec::with_capacity(RSA_ENCRYPTION_ALG_ID.len() + bits.len() + 5);
        body.extend_from_slice(RSA_ENCRYPTION_ALG_ID);
        der_tlv(&mut body, TAG_BIT_STRING, &bits);
        let mut out = Vec::with_capacity(body.len() + 5);
        der_tlv(&mut out, TAG_SEQUENCE, &body);
        out
    }
}

/// `bytes` without its leading zero bytes (PKCS#11 may hand back zero-padded big integers).
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Short form; the cast cannot truncate below 0x80.
        out.push(len as u8);
        return;
    }
    let be = len.to_be_bytes();
    let significant = strip_leading_zeros(&be);
    // Long form: 0x80 | number of length octets, then the minimal big-endian length.
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    der_length(out, content.len());
    out.extend_from_slice(content);
}

/// A non-negative INTEGER from big-endian magnitude bytes, minimally encoded.
fn der_unsigned_integer(out: &mut Vec<u8>, magnitude: &[u8]) {
    let m = strip_leading_zeros(magnitude);
    match m.first() {
        None => der_tlv(out, TAG_INTEGER, &[0x00]),
        Some(&top) if top & 0x80 != 0 => {
            // Without the 0x00 the top bit would make the INTEGER negative.
            let mut content = Vec::with_capacity(m.len() + 1);
            content.push(0x00);
            content.extend_from_slice(m);
            der_tlv(out, TAG_INTEGER, &content);
        }
        Some(_) => der_tlv(out, TAG_INTEGER, m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(modulus: Vec<u8>, e: Vec<u8>) -> RsaPublicKey {
        RsaPublicKey { modulus, public_exponent: e }
    }

    #[test]
    fn lengths() {
        let mut v = Vec::new();
        der_length(&mut v, 0);
        der_length(&mut v, 0x7f);
        der_length(&mut v, 0x80);
        der_length(&mut v, 0xff);
        der_length(&mut v, 0x100);
        der_length(&mut v, 0x10203);
        assert_eq!(v, [0x00, 0x7f, 0x81, 0x80, 0x81, 0xff, 0x82, 0x01, 0x00, 0x83, 0x01, 0x02, 0x03]);
    }

    #[test]
    fn integers() {
        let enc = |m: &[u8]| {
            let mut v = Vec::new();
            der_unsigned_integer(&mut v, m);
            v
        };
        assert_eq!(enc(&[]), [0x02, 0x01, 0x00]);
        assert_eq!(enc(&[0x00, 0x00]), [0x02, 0x01, 0x00]);
        assert_eq!(enc(&[0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(enc(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(enc(&[0x00, 0x01, 0x00]), [0x02, 0x02, 0x01, 0x00]);
        assert_eq!(enc(&[0x01, 0x00, 0x01]), [0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn small_key() {
        let k = key(vec![0x00, 0xc5], vec![0x03]);
        assert_eq!(k.bits(), 8);
        assert_eq!(k.pkcs1_der(), [0x30, 0x07, 0x02, 0x02, 0x00, 0xc5, 0x02, 0x01, 0x03]);
        let spki = k.spki_der();
        assert_eq!(&spki[..2], [0x30, 0x1b]);
        assert_eq!(&spki[2..17], RSA_ENCRYPTION_ALG_ID);
        assert_eq!(&spki[17..20], [0x03, 0x0a, 0x00]);
        assert_eq!(&spki[20..], k.pkcs1_der());
    }

    #[test]
    fn bits_and_long_form_2048() {
        let mut n = vec![0xff; 256];
        n[255] = 0x01;
        let k = key(n, vec![0x01, 0x00, 0x01]);
        assert_eq!(k.bits(), 2048);
        let der = k.pkcs1_der();
        // INTEGER n: 257 content bytes (leading 0x00) → 0x82 0x01 0x01; e: 5 bytes; total 266.
        assert_eq!(&der[..4], [0x30, 0x82, 0x01, 0x0a]);
        assert_eq!(&der[4..9], [0x02, 0x82, 0x01, 0x01, 0x00]);
        assert_eq!(&der[der.len() - 5..], [0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(der.len(), 270);
        assert_eq!(key(vec![0x01, 0x00], vec![0x03]).bits(), 9);
        assert_eq!(key(vec![], vec![0x03]).bits(), 0);
    }
}
