//! The parsed public keys of the certificates a policy pins by configuration rather than by a
//! chain: the bootstrap-token issuers of BST2SOSI and Bst2Idws and the identity providers
//! OIOSaml2Sosi trusts. Every token they sign is verified with one of a handful of keys, so
//! each key is parsed once per policy (and per signature algorithm, on first use) instead of
//! once per request; shared by all cores, rebuilt with the policy on reload.

use std::collections::HashMap;

use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::dsig::{DsigError, ParseEachTime, ParsedKeys, SignerKeys};

/// Parsed keys of pinned certificates, by the certificate's DER.
#[derive(Default)]
pub struct PinnedKeys {
    by_certificate: HashMap<Vec<u8>, ParsedKeys>,
}

impl std::fmt::Debug for PinnedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedKeys").field("certificates", &self.by_certificate.len()).finish()
    }
}

impl PinnedKeys {
    /// The keys of `certificates` (DER), parsed when first used.
    pub fn new<'a>(certificates: impl IntoIterator<Item = &'a Vec<u8>>) -> PinnedKeys {
        PinnedKeys {
            by_certificate: certificates
                .into_iter()
                .map(|der| (der.clone(), ParsedKeys::default()))
                .collect(),
        }
    }

    /// How many certificates are pinned.
    pub fn len(&self) -> usize {
        self.by_certificate.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_certificate.is_empty()
    }
}

/// A pinned certificate's key comes parsed; any other certificate's (a token signed by someone
/// else, about to be refused as untrusted) is parsed for the one verification.
impl SignerKeys for PinnedKeys {
    fn verify(
        &self,
        certificate_der: &[u8],
        algorithm: SignatureAlgorithm,
        min_rsa_bits: usize,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), DsigError> {
        match self.by_certificate.get(certificate_der) {
            Some(keys) => keys.verify(certificate_der, algorithm, min_rsa_bits, message, signature),
            None => ParseEachTime.verify(certificate_der, algorithm, min_rsa_bits, message, signature),
        }
    }
}
