//! The signature and digest algorithms segl understands, by their XML-DSig URIs.

use aws_lc_rs::digest;

/// Exclusive XML Canonicalization 1.0, without comments.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// Canonical XML 1.0 (inclusive), without comments; only for verifying legacy signatures.
pub const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
/// The enveloped-signature transform.
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// The XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// A digest algorithm used for references and for the SignedInfo hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// SHA-1: what the STS itself must emit on DGWS output (seal's schemas allow nothing else).
    Sha1,
    /// SHA-256.
    Sha256,
}

impl DigestAlgorithm {
    /// The XML-DSig `DigestMethod` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Sha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
            Self::Sha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
        }
    }

    /// Looks an algorithm up by its `DigestMethod` URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            "http://www.w3.org/2000/09/xmldsig#sha1" => Some(Self::Sha1),
            "http://www.w3.org/2001/04/xmlenc#sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }

    /// The HSM-side name of this hash, for building a PKCS#1 DigestInfo.
    pub fn hsm(self) -> segl_pkcs11::HashAlgorithm {
        match self {
            Self::Sha1 => segl_pkcs11::HashAlgorithm::Sha1,
            Self::Sha256 => segl_pkcs11::HashAlgorithm::Sha256,
        }
    }

    /// A fresh streaming hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
        };
        Hasher(digest::Context::new(alg))
    }

    /// One-shot digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

/// A streaming hash; canonical bytes are written into it as they are produced.
pub struct Hasher(digest::Context);

impl Hasher {
    /// Feeds bytes into the hash.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Finishes and returns the digest bytes.
    pub fn finish(self) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }

    /// Finishes without allocating: the digest lives in the returned value.
    pub fn finish_digest(self) -> digest::Digest {
        self.0.finish()
    }
}

/// An RSA PKCS#1 v1.5 signature algorithm (in configuration: `rsa-sha1`, `rsa-sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureAlgorithm {
    /// RSA-SHA1: the STS's own DGWS output, and seal clients.
    RsaSha1,
    /// RSA-SHA256: unsealed clients since 2024.
    RsaSha256,
}

impl SignatureAlgorithm {
    /// The XML-DSig `SignatureMethod` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            Self::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        }
    }

    /// Looks an algorithm up by its `SignatureMethod` URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => Some(Self::RsaSha1),
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => Some(Self::RsaSha256),
            _ => None,
        }
    }

    /// The hash this signature algorithm signs.
    pub fn digest(self) -> DigestAlgorithm {
        match self {
            Self::RsaSha1 => DigestAlgorithm::Sha1,
            Self::RsaSha256 => DigestAlgorithm::Sha256,
        }
    }
}
