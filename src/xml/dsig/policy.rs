//! What a verification accepts beyond the federation's fixed profile: weak algorithms, legacy
//! canonicalization, and which key may have signed.

/// The verification policy. [`Policy::FEDERATION`] is what the STS endpoints use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy<'a> {
    /// Accept SHA-1 digests and RSA-SHA1 signatures. SHA-1 is weak, but the federation
    /// requires it: seal clients sign with it and validate the STS's own cards against a
    /// schema that allows nothing else (spec §1.4).
    pub sha1: bool,
    /// Accept Canonical XML 1.0 (inclusive) in enveloped signatures, for legacy signatures
    /// only; no federation source emits it (spec §7.2).
    pub inclusive_c14n: bool,
    /// Smallest RSA modulus accepted, in bits.
    pub min_rsa_bits: usize,
    /// DER of the certificate whose key must have signed. When set, a `ds:X509Certificate` in
    /// KeyInfo must be exactly this certificate; a KeyInfo without one (e.g. a KeyName) is
    /// verified with this certificate's key.
    pub certificate: Option<&'a [u8]>,
}

impl Policy<'static> {
    /// The federation's profile: exclusive c14n only, SHA-1 and SHA-256, RSA of at least 2048
    /// bits, key from the embedded certificate (whose trust the caller checks).
    pub const FEDERATION: Policy<'static> =
        Policy { sha1: true, inclusive_c14n: false, min_rsa_bits: 2048, certificate: None };

    /// The federation's profile without SHA-1.
    pub const STRICT: Policy<'static> = Policy { sha1: false, ..Self::FEDERATION };

    /// Everything segl can check, for inspecting legacy documents (`segl xml verify`).
    pub const LEGACY: Policy<'static> = Policy { inclusive_c14n: true, ..Self::FEDERATION };
}

impl Default for Policy<'static> {
    fn default() -> Self {
        Self::FEDERATION
    }
}

impl<'a> Policy<'a> {
    /// This policy, requiring the signature to be made with `certificate_der`'s key.
    pub fn with_certificate<'b>(self, certificate_der: &'b [u8]) -> Policy<'b>
    where
        'a: 'b,
    {
        Policy { certificate: Some(certificate_der), ..self }
    }
}
