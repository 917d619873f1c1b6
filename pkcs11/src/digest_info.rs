//! PKCS#1 v1.5 DigestInfo encoding (RFC 8017 §9.2, note 1).

/// A hash whose DigestInfo the HSM signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-1 (20 bytes).
    Sha1,
    /// SHA-256 (32 bytes).
    Sha256,
}

impl HashAlgorithm {
    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    fn prefix(self) -> &'static [u8] {
        match self {
            Self::Sha1 => {
                &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14]
            }
            Self::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
                0x05, 0x00, 0x04, 0x20,
            ],
        }
    }
}

/// The DER DigestInfo for `digest`, or `None` when the digest has the wrong length.
pub fn digest_info(alg: HashAlgorithm, digest: &[u8]) -> Option<Vec<u8>> {
    if digest.len() != alg.output_len() {
        return None;
    }
    let mut out = Vec::with_capacity(alg.prefix().len() + digest.len());
    out.extend_from_slice(alg.prefix());
    out.extend_from_slice(digest);
    Some(out)
}
