//! Signature verification: the strict reading of a `ds:Signature` shared by every profile,
//! and the enveloped profile (ID cards, issued assertions, third-party tokens).
//!
//! The enveloped profile accepts one reference to the Signature's parent, transforms
//! enveloped-signature then exclusive c14n (Canonical XML 1.0 only where the [`Policy`]
//! allows it), RSA PKCS#1 v1.5 with the key from an embedded X.509 certificate (or the one the
//! policy names). Everything else is refused, so a caller that reads only
//! [`VerifiedSignature::signed_element`] reads only signed content. The header profile is in
//! [`super::header`].

use base64::Engine as _;

use crate::xml::c14n::{Canonicalizer, Method, Sink};
use crate::xml::dsig::algorithm::{
    DigestAlgorithm, SignatureAlgorithm, C14N_10, DSIG_NS, ENVELOPED_SIGNATURE, EXC_C14N,
};
use crate::xml::dsig::policy::Policy;
use crate::xml::parse::{Document, NodeId};

/// Namespace of `ec:InclusiveNamespaces`.
const EC_NS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// What a successful verification vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The `ds:Signature` element.
    pub signature: NodeId,
    /// The element the single reference covered: the only element callers may read from.
    pub signed_element: NodeId,
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The reference's digest algorithm.
    pub digest_algorithm: DigestAlgorithm,
    /// DER of the certificate in `ds:KeyInfo/ds:X509Data/ds:X509Certificate` (trust unchecked).
    pub certificate_der: Vec<u8>,
}

/// Why a signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsigError {
    /// The node passed in is not a `ds:Signature` element.
    #[error("element is not a ds:Signature")]
    NotASignature,
    /// A required element is missing.
    #[error("missing element {name}")]
    MissingElement {
        /// Name of the missing element.
        name: &'static str,
    },
    /// An element occurs more often than the profile allows, or is not allowed at all.
    #[error("unexpected element {name} in {parent}")]
    UnexpectedElement {
        /// Qualified name of the offending element.
        name: String,
        /// Where it was found.
        parent: &'static str,
    },
    /// A required attribute is missing.
    #[error("missing attribute {name} on {element}")]
    MissingAttribute {
        /// Attribute name.
        name: &'static str,
        /// Element name.
        element: &'static str,
    },
    /// The CanonicalizationMethod is not exclusive c14n without comments.
    #[error("unsupported canonicalization method {uri}")]
    UnsupportedCanonicalization {
        /// The Algorithm URI.
        uri: String,
    },
    /// Unknown SignatureMethod.
    #[error("unknown signature algorithm {uri}")]
    UnknownSignatureAlgorithm {
        /// The Algorithm URI.
        uri: String,
    },
    /// Unknown DigestMethod.
    #[error("unknown digest algorithm {uri}")]
    UnknownDigestAlgorithm {
        /// The Algorithm URI.
        uri: String,
    },
    /// SignedInfo does not hold exactly one Reference.
    #[error("expected exactly one ds:Reference, found {found}")]
    ReferenceCount {
        /// How many were found.
        found: usize,
    },
    /// The Reference URI is not a same-document `#id` reference.
    #[error("reference URI {uri:?} is not a same-document #id reference")]
    UnsupportedReferenceUri {
        /// The URI.
        uri: String,
    },
    /// No element carries the referenced ID.
    #[error("reference {uri} does not resolve")]
    ReferenceNotFound {
        /// The URI.
        uri: String,
    },
    /// The reference does not point at the Signature's parent (signature wrapping).
    #[error("reference {uri} does not point at the signature's parent element")]
    NotEnveloped {
        /// The URI.
        uri: String,
    },
    /// The transform chain differs from enveloped-signature, exc-c14n.
    #[error("reference {uri}: unexpected transform {transform}")]
    UnexpectedTransform {
        /// The reference URI.
        uri: String,
        /// The offending transform (or a description of what is missing).
        transform: String,
    },
    /// The digest of the referenced element does not match DigestValue.
    #[error("reference {uri}: digest mismatch (expected {expected_b64}, computed {computed_b64})")]
    DigestMismatch {
        /// The reference URI.
        uri: String,
        /// DigestValue from the document.
        expected_b64: String,
        /// Digest computed over the canonical form.
        computed_b64: String,
    },
    /// An element's base64 content does not decode.
    #[error("bad base64 in {element}")]
    BadBase64 {
        /// The element.
        element: &'static str,
    },
    /// KeyInfo holds no X509Certificate.
    #[error("no ds:X509Certificate in ds:KeyInfo")]
    NoCertificate,
    /// KeyInfo holds more than one X509Certificate: which one is the signer would be a guess.
    #[error("more than one ds:X509Certificate in ds:KeyInfo")]
    MultipleCertificates,
    /// The certificate does not parse.
    #[error("bad certificate: {reason}")]
    BadCertificate {
        /// Parser message.
        reason: String,
    },
    /// The certificate's key is not an RSA key.
    #[error("certificate key is not RSA")]
    NonRsaKey,
    /// The RSA key is shorter than the policy's minimum (old OCES test certificates are
    /// 1024-bit).
    #[error("RSA key of {bits} bits is below the {minimum}-bit minimum")]
    WeakKey {
        /// Modulus length.
        bits: usize,
        /// The policy's minimum.
        minimum: usize,
    },
    /// The RSA signature over SignedInfo does not verify.
    #[error("SignatureValue does not verify over SignedInfo")]
    SignatureValueInvalid,
    /// A known algorithm that the verification policy does not accept (SHA-1 under a strict
    /// policy, inclusive c14n outside legacy verification, inclusive c14n in a header
    /// signature).
    #[error("algorithm {uri} is not allowed here: {why}")]
    AlgorithmNotAllowed {
        /// The Algorithm URI.
        uri: String,
        /// Which rule refuses it.
        why: &'static str,
    },
    /// KeyInfo carries a certificate other than the one the signature must be made with.
    #[error("the certificate in ds:KeyInfo is not the expected signer certificate")]
    KeyInfoMismatch,
    /// The element holds a number of `ds:Signature` children other than the one the profile
    /// allows.
    #[error("expected exactly one ds:Signature in {element}, found {found}")]
    SignatureCount {
        /// Where the signature was looked for.
        element: String,
        /// How many were found.
        found: usize,
    },
    /// A reference resolves to an element the profile does not sign (signature wrapping).
    #[error("reference {uri} resolves to {element}, which this signature profile does not cover")]
    ReferenceOutsideProfile {
        /// The reference URI.
        uri: String,
        /// The element it resolved to (qualified name).
        element: String,
    },
    /// Two references cover the same element.
    #[error("reference {uri} covers an element another reference already covers")]
    DuplicateReference {
        /// The reference URI.
        uri: String,
    },
    /// An element the profile requires to be signed is not covered by any reference.
    #[error("the signature does not cover {element}")]
    MissingCoverage {
        /// The uncovered element.
        element: &'static str,
    },
    /// An element the profile reads occurs more than once where it may occur once.
    #[error("more than one {element} in {parent}")]
    Ambiguous {
        /// The repeated element.
        element: &'static str,
        /// Where.
        parent: &'static str,
    },
}

/// XML whitespace is stripped before decoding because Java tooling wraps base64 at 76 columns
/// (and writes CR as `&#13;`, which arrives here as a CR).
pub(crate) fn decode_b64(text: &str, element: &'static str) -> Result<Vec<u8>, DsigError> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let bytes = text.as_bytes();
    // Every request decodes a certificate and a signature: most arrive unwrapped, and those
    // that are wrapped are compacted into one buffer of the right size.
    let decoded = if bytes.iter().any(is_space) {
        let mut compact = Vec::with_capacity(bytes.len());
        compact.extend(bytes.iter().copied().filter(|b| !is_space(b)));
        base64::engine::general_purpose::STANDARD.decode(compact)
    } else {
        base64::engine::general_purpose::STANDARD.decode(bytes)
    };
    decoded.map_err(|_| DsigError::BadBase64 { element })
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The single `ds:*` child named `local`; any other copy or missing one is an error.
fn only_child(
    doc: &Document,
    parent: NodeId,
    local: &'static str,
    parent_name: &'static str,
) -> Result<NodeId, DsigError> {
    optional_child(doc, parent, local, parent_name)?.ok_or(DsigError::MissingElement { name: local })
}

/// The `ds:*` child named `local`, if any; a second copy is an error.
fn optional_child(
    doc: &Document,
    parent: NodeId,
    local: &'static str,
    parent_name: &'static str,
) -> Result<Option<NodeId>, DsigError> {
    let mut found = None;
    for c in doc.children(parent) {
        if doc.is(c, DSIG_NS, local) {
            if found.is_some() {
                return Err(DsigError::UnexpectedElement {
                    name: doc.qname(c).to_owned(),
                    parent: parent_name,
                });
            }
            found = Some(c);
        }
    }
    Ok(found)
}

fn algorithm_attr(doc: &Document, n: NodeId, element: &'static str) -> Result<String, DsigError> {
    doc.attribute(n, "Algorithm")
        .map(|v| v.into_owned())
        .ok_or(DsigError::MissingAttribute { name: "Algorithm", element })
}

/// Children of a c14n method element: at most one `ec:InclusiveNamespaces`, nothing else.
fn prefix_list(doc: &Document, method: NodeId, parent: &'static str) -> Result<String, DsigError> {
    let mut list = None;
    for c in doc.children(method) {
        if doc.is(c, EC_NS, "InclusiveNamespaces") && list.is_none() {
            list = Some(doc.attribute(c, "PrefixList").map(|v| v.into_owned()).unwrap_or_default());
        } else {
            return Err(DsigError::UnexpectedElement { name: doc.qname(c).to_owned(), parent });
        }
    }
    Ok(list.unwrap_or_default())
}

fn check_children(
    doc: &Document,
    n: NodeId,
    allowed: &[&str],
    parent: &'static str,
) -> Result<(), DsigError> {
    for c in doc.children(n) {
        let ok = doc.namespace(c) == Some(DSIG_NS) && allowed.contains(&doc.local_name(c));
        if !ok {
            return Err(DsigError::UnexpectedElement { name: doc.qname(c).to_owned(), parent });
        }
    }
    Ok(())
}

/// A canonicalization named by a CanonicalizationMethod or a reference's last transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum C14n {
    /// Exclusive c14n with its InclusiveNamespaces PrefixList (whitespace-separated).
    Exclusive(String),
    /// Canonical XML 1.0.
    Inclusive,
}

impl C14n {
    fn read(
        doc: &Document,
        n: NodeId,
        element: &'static str,
        policy: &Policy<'_>,
    ) -> Result<C14n, DsigError> {
        let uri = algorithm_attr(doc, n, element)?;
        match uri.as_str() {
            EXC_C14N => Ok(C14n::Exclusive(prefix_list(doc, n, element)?)),
            C14N_10 if policy.inclusive_c14n => {
                check_children(doc, n, &[], element)?;
                Ok(C14n::Inclusive)
            }
            C14N_10 => Err(DsigError::AlgorithmNotAllowed {
                uri,
                why: "inclusive c14n is accepted only when verifying legacy signatures",
            }),
            _ => Err(DsigError::UnsupportedCanonicalization { uri }),
        }
    }

    /// The algorithm URI.
    pub fn uri(&self) -> &'static str {
        match self {
            C14n::Exclusive(_) => EXC_C14N,
            C14n::Inclusive => C14N_10,
        }
    }

    /// Writes the canonical form of `apex` without `exclude` into `out`.
    pub(crate) fn run(&self, doc: &Document, apex: NodeId, exclude: Option<NodeId>, out: &mut impl Sink) {
        let mut c = Canonicalizer::default();
        match self {
            C14n::Exclusive(list) => {
                let prefixes: Vec<&str> =
                    list.split([' ', '\t', '\r', '\n']).filter(|s| !s.is_empty()).collect();
                c.subtree(doc, apex, exclude, Method::Exclusive(&prefixes), out);
            }
            C14n::Inclusive => c.subtree(doc, apex, exclude, Method::Inclusive, out),
        }
    }
}

/// A `ds:Signature` read strictly, before any cryptography.
#[derive(Debug, Clone)]
pub struct SignatureParts {
    /// The `ds:Signature` element.
    pub signature: NodeId,
    /// `ds:SignedInfo`.
    pub signed_info: NodeId,
    /// The CanonicalizationMethod of SignedInfo.
    pub c14n: C14n,
    /// The SignatureMethod.
    pub algorithm: SignatureAlgorithm,
    /// The `ds:Reference` elements, in order.
    pub references: Vec<NodeId>,
    /// `ds:SignatureValue`.
    pub signature_value: NodeId,
    /// `ds:KeyInfo`, if present.
    pub key_info: Option<NodeId>,
}

/// A `ds:Reference` read strictly.
#[derive(Debug, Clone)]
pub struct ReferenceParts {
    /// The `ds:Reference` element.
    pub reference: NodeId,
    /// Its URI as written.
    pub uri: String,
    /// The element the URI resolves to.
    pub target: NodeId,
    /// Whether the transforms start with enveloped-signature.
    pub enveloped: bool,
    /// The canonicalization transform (always the last one).
    pub c14n: C14n,
    /// The DigestMethod.
    pub digest_algorithm: DigestAlgorithm,
    /// The decoded DigestValue.
    pub expected: Vec<u8>,
}

fn check_digest_allowed(alg: DigestAlgorithm, policy: &Policy<'_>) -> Result<(), DsigError> {
    if alg == DigestAlgorithm::Sha1 && !policy.sha1 {
        return Err(DsigError::AlgorithmNotAllowed {
            uri: alg.uri().to_owned(),
            why: "SHA-1 is not allowed by policy",
        });
    }
    Ok(())
}

/// Reads the structure of `signature`: exactly SignedInfo, SignatureValue and (optionally,
/// when the policy names the certificate) KeyInfo; SignedInfo with exactly one
/// CanonicalizationMethod, one SignatureMethod and its References. No `ds:Object`: nothing in
/// the federation needs one and it is a classic place to hide a wrapped copy.
pub fn read_signature(
    doc: &Document,
    signature: NodeId,
    policy: &Policy<'_>,
) -> Result<SignatureParts, DsigError> {
    if !doc.is(signature, DSIG_NS, "Signature") {
        return Err(DsigError::NotASignature);
    }
    check_children(doc, signature, &["SignedInfo", "SignatureValue", "KeyInfo"], "ds:Signature")?;
    let signed_info = only_child(doc, signature, "SignedInfo", "ds:Signature")?;
    let signature_value = only_child(doc, signature, "SignatureValue", "ds:Signature")?;
    let key_info = optional_child(doc, signature, "KeyInfo", "ds:Signature")?;
    if key_info.is_none() && policy.certificate.is_none() {
        return Err(DsigError::MissingElement { name: "KeyInfo" });
    }

    check_children(
        doc,
        signed_info,
        &["CanonicalizationMethod", "SignatureMethod", "Reference"],
        "ds:SignedInfo",
    )?;
    let c14n_method = only_child(doc, signed_info, "CanonicalizationMethod", "ds:SignedInfo")?;
    let c14n = C14n::read(doc, c14n_method, "ds:CanonicalizationMethod", policy)?;
    let sig_method = only_child(doc, signed_info, "SignatureMethod", "ds:SignedInfo")?;
    check_children(doc, sig_method, &[], "ds:SignatureMethod")?;
    let sig_uri = algorithm_attr(doc, sig_method, "ds:SignatureMethod")?;
    let algorithm = SignatureAlgorithm::from_uri(&sig_uri)
        .ok_or(DsigError::UnknownSignatureAlgorithm { uri: sig_uri })?;
    if algorithm == SignatureAlgorithm::RsaSha1 && !policy.sha1 {
        return Err(DsigError::AlgorithmNotAllowed {
            uri: algorithm.uri().to_owned(),
            why: "SHA-1 is not allowed by policy",
        });
    }
    let references: Vec<NodeId> =
        doc.children(signed_info).filter(|&c| doc.is(c, DSIG_NS, "Reference")).collect();
    if references.is_empty() {
        return Err(DsigError::ReferenceCount { found: 0 });
    }
    Ok(SignatureParts { signature, signed_info, c14n, algorithm, references, signature_value, key_info })
}

/// Reads one `ds:Reference`: a same-document `#id` URI that resolves, transforms
/// `[enveloped-signature,] c14n`, a known DigestMethod and a decodable DigestValue.
pub fn read_reference(
    doc: &Document,
    reference: NodeId,
    policy: &Policy<'_>,
) -> Result<ReferenceParts, DsigError> {
    let uri = doc
        .attribute(reference, "URI")
        .ok_or(DsigError::MissingAttribute { name: "URI", element: "ds:Reference" })?
        .into_owned();
    let id = uri
        .strip_prefix('#')
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DsigError::UnsupportedReferenceUri { uri: uri.clone() })?;
    let target = doc.by_id(id).ok_or_else(|| DsigError::ReferenceNotFound { uri: uri.clone() })?;

    check_children(doc, reference, &["Transforms", "DigestMethod", "DigestValue"], "ds:Reference")?;
    let transforms = only_child(doc, reference, "Transforms", "ds:Reference")?;
    check_children(doc, transforms, &["Transform"], "ds:Transforms")?;
    let chain: Vec<NodeId> = doc.children(transforms).collect();
    let (enveloped, last) = match chain.as_slice() {
        [only] => (false, *only),
        [first, second] => {
            let t1 = algorithm_attr(doc, *first, "ds:Transform")?;
            if t1 != ENVELOPED_SIGNATURE || doc.children(*first).next().is_some() {
                return Err(DsigError::UnexpectedTransform { uri, transform: t1 });
            }
            (true, *second)
        }
        _ => {
            return Err(DsigError::UnexpectedTransform {
                uri,
                transform: format!("{} transforms, expected [enveloped-signature,] c14n", chain.len()),
            })
        }
    };
    let c14n = match C14n::read(doc, last, "ds:Transform", policy) {
        Ok(c) => c,
        Err(DsigError::UnsupportedCanonicalization { uri: t }) => {
            return Err(DsigError::UnexpectedTransform { uri, transform: t })
        }
        Err(e) => return Err(e),
    };

    let digest_method = only_child(doc, reference, "DigestMethod", "ds:Reference")?;
    check_children(doc, digest_method, &[], "ds:DigestMethod")?;
    let digest_uri = algorithm_attr(doc, digest_method, "ds:DigestMethod")?;
    let digest_algorithm = DigestAlgorithm::from_uri(&digest_uri)
        .ok_or(DsigError::UnknownDigestAlgorithm { uri: digest_uri })?;
    check_digest_allowed(digest_algorithm, policy)?;
    let digest_value = only_child(doc, reference, "DigestValue", "ds:Reference")?;
    let expected = decode_b64(&doc.text(digest_value), "ds:DigestValue")?;
    Ok(ReferenceParts { reference, uri, target, enveloped, c14n, digest_algorithm, expected })
}

/// The canonical bytes a reference's digest is taken over.
pub fn reference_canonical(doc: &Document, signature: NodeId, r: &ReferenceParts, out: &mut impl Sink) {
    let exclude = r.enveloped.then_some(signature);
    r.c14n.run(doc, r.target, exclude, out);
}

/// Computes the reference's digest and compares it with DigestValue.
pub fn check_reference(doc: &Document, signature: NodeId, r: &ReferenceParts) -> Result<(), DsigError> {
    let mut hasher = r.digest_algorithm.hasher();
    reference_canonical(doc, signature, r, &mut hasher);
    let computed = hasher.finish();
    if computed != r.expected {
        return Err(DsigError::DigestMismatch {
            uri: r.uri.clone(),
            expected_b64: b64(&r.expected),
            computed_b64: b64(&computed),
        });
    }
    Ok(())
}

/// Where the verifier gets a signer's public key: parsed from its certificate each time
/// ([`ParseEachTime`]), or from a cache of keys already parsed (a server core keeps one, see
/// `trust::cache`). Either way the key is the one certified by `certificate_der`.
pub trait SignerKeys {
    /// Checks `signature` over `message` with the RSA key certified by `certificate_der`.
    fn verify(
        &self,
        certificate_der: &[u8],
        algorithm: SignatureAlgorithm,
        min_rsa_bits: usize,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), DsigError>;
}

/// Parses the key out of the certificate for every verification.
pub struct ParseEachTime;

impl SignerKeys for ParseEachTime {
    fn verify(
        &self,
        certificate_der: &[u8],
        algorithm: SignatureAlgorithm,
        min_rsa_bits: usize,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), DsigError> {
        SignerKey::from_certificate(certificate_der, algorithm)?.verify(min_rsa_bits, message, signature)
    }
}

/// One certificate's keys, parsed on first use for each signature algorithm (RSA-SHA1,
/// RSA-SHA256): what a cache of signer keys holds per certificate.
#[derive(Default)]
pub struct ParsedKeys([std::sync::OnceLock<Result<SignerKey, DsigError>>; 2]);

impl ParsedKeys {
    /// Checks `signature` over `message` with the key `certificate_der` certifies (the one
    /// these keys were made for), parsing it for `algorithm` on first use.
    pub fn verify(
        &self,
        certificate_der: &[u8],
        algorithm: SignatureAlgorithm,
        min_rsa_bits: usize,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), DsigError> {
        let slot = match algorithm {
            SignatureAlgorithm::RsaSha1 => &self.0[0],
            SignatureAlgorithm::RsaSha256 => &self.0[1],
        };
        match slot.get_or_init(|| SignerKey::from_certificate(certificate_der, algorithm)) {
            Ok(key) => key.verify(min_rsa_bits, message, signature),
            Err(e) => Err(e.clone()),
        }
    }
}

/// A signer's RSA public key, parsed once for one signature algorithm.
pub struct SignerKey {
    key: aws_lc_rs::signature::ParsedPublicKey,
    bits: usize,
}

impl SignerKey {
    /// The RSA key certified by `certificate_der`, for verifying `algorithm` signatures.
    pub fn from_certificate(
        certificate_der: &[u8],
        algorithm: SignatureAlgorithm,
    ) -> Result<Self, DsigError> {
        let (spki, bits) = rsa_public_key(certificate_der)?;
        let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match algorithm {
            SignatureAlgorithm::RsaSha1 => {
                &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            SignatureAlgorithm::RsaSha256 => {
                &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            }
        };
        let key = aws_lc_rs::signature::ParsedPublicKey::new(alg, &spki)
            .map_err(|e| DsigError::BadCertificate { reason: format!("unusable RSA public key: {e}") })?;
        Ok(SignerKey { key, bits })
    }

    /// Checks `signature` over `message`; a key shorter than `min_rsa_bits` is refused as such
    /// rather than reported as a bad signature.
    pub fn verify(&self, min_rsa_bits: usize, message: &[u8], signature: &[u8]) -> Result<(), DsigError> {
        let minimum = min_rsa_bits.max(1024);
        if self.bits < minimum {
            return Err(DsigError::WeakKey { bits: self.bits, minimum });
        }
        self.key.verify_sig(message, signature).map_err(|_| DsigError::SignatureValueInvalid)
    }
}

/// Checks SignatureValue over the canonical SignedInfo with the signer's key (see
/// [`Policy::certificate`]); returns the signer certificate's DER.
pub fn check_signature_value(
    doc: &Document,
    parts: &SignatureParts,
    policy: &Policy<'_>,
    keys: &dyn SignerKeys,
) -> Result<Vec<u8>, DsigError> {
    let embedded = match parts.key_info {
        Some(k) => certificate(doc, k, policy.certificate.is_some())?,
        None => None,
    };
    let certificate_der = match (embedded, policy.certificate) {
        (Some(found), Some(expected)) if found != expected => return Err(DsigError::KeyInfoMismatch),
        (Some(found), _) => found,
        (None, Some(expected)) => expected.to_vec(),
        (None, None) => return Err(DsigError::NoCertificate),
    };
    let sig_bytes = decode_b64(&doc.text(parts.signature_value), "ds:SignatureValue")?;
    let mut canonical = Vec::with_capacity(1024);
    parts.c14n.run(doc, parts.signed_info, None, &mut canonical);
    keys.verify(&certificate_der, parts.algorithm, policy.min_rsa_bits, &canonical, &sig_bytes)?;
    Ok(certificate_der)
}

/// Verifies the enveloped signature `signature` (a `ds:Signature` element) in `doc` under the
/// federation's policy.
pub fn verify_enveloped(doc: &Document, signature: NodeId) -> Result<VerifiedSignature, DsigError> {
    verify_enveloped_with(doc, signature, &Policy::FEDERATION)
}

/// Verifies the enveloped signature `signature` under `policy`.
///
/// The reference digest is checked before the RSA signature so the error says which failed.
pub fn verify_enveloped_with(
    doc: &Document,
    signature: NodeId,
    policy: &Policy<'_>,
) -> Result<VerifiedSignature, DsigError> {
    verify_enveloped_using(doc, signature, policy, &ParseEachTime)
}

/// Verifies the enveloped signature `signature` under `policy`, taking the signer's key from
/// `keys`.
pub fn verify_enveloped_using(
    doc: &Document,
    signature: NodeId,
    policy: &Policy<'_>,
    keys: &dyn SignerKeys,
) -> Result<VerifiedSignature, DsigError> {
    let parts = read_signature(doc, signature, policy)?;
    let [reference] = parts.references.as_slice() else {
        return Err(DsigError::ReferenceCount { found: parts.references.len() });
    };
    let r = read_reference(doc, *reference, policy)?;
    if doc.parent(signature) != Some(r.target) {
        return Err(DsigError::NotEnveloped { uri: r.uri });
    }
    if !r.enveloped {
        return Err(DsigError::UnexpectedTransform {
            uri: r.uri,
            transform: "missing enveloped-signature transform".into(),
        });
    }
    check_reference(doc, signature, &r)?;
    let certificate_der = check_signature_value(doc, &parts, policy, keys)?;
    Ok(VerifiedSignature {
        signature,
        signed_element: r.target,
        algorithm: parts.algorithm,
        digest_algorithm: r.digest_algorithm,
        certificate_der,
    })
}

/// Verifies the one enveloped signature that `element` must carry as a direct child, and
/// that it signs `element` itself: the check for "the token I am about to read is the one
/// that is signed".
pub fn verify_element(
    doc: &Document,
    element: NodeId,
    policy: &Policy<'_>,
) -> Result<VerifiedSignature, DsigError> {
    verify_element_using(doc, element, policy, &ParseEachTime)
}

/// [`verify_element`] with the signer's key from `keys` (a cache of keys already parsed).
pub fn verify_element_using(
    doc: &Document,
    element: NodeId,
    policy: &Policy<'_>,
    keys: &dyn SignerKeys,
) -> Result<VerifiedSignature, DsigError> {
    let signatures: Vec<NodeId> =
        doc.children(element).filter(|&c| doc.is(c, DSIG_NS, "Signature")).collect();
    let [signature] = signatures.as_slice() else {
        return Err(DsigError::SignatureCount {
            element: doc.qname(element).to_owned(),
            found: signatures.len(),
        });
    };
    let verified = verify_enveloped_using(doc, *signature, policy, keys)?;
    if verified.signed_element != element {
        return Err(DsigError::NotEnveloped { uri: String::new() });
    }
    Ok(verified)
}

/// The DER certificate in `ds:KeyInfo/ds:X509Data/ds:X509Certificate`; `None` when KeyInfo
/// has none and `optional` says that is acceptable.
fn certificate(doc: &Document, key_info: NodeId, optional: bool) -> Result<Option<Vec<u8>>, DsigError> {
    let mut found = None;
    for data in doc.children(key_info) {
        if !doc.is(data, DSIG_NS, "X509Data") {
            continue;
        }
        for c in doc.children(data) {
            if doc.is(c, DSIG_NS, "X509Certificate") {
                if found.is_some() {
                    return Err(DsigError::MultipleCertificates);
                }
                found = Some(c);
            }
        }
    }
    match found {
        Some(cert) => decode_b64(&doc.text(cert), "ds:X509Certificate").map(Some),
        None if optional => Ok(None),
        None => Err(DsigError::NoCertificate),
    }
}

/// The PKCS#1 RSAPublicKey inside the certificate's SubjectPublicKeyInfo, and its size in bits.
fn rsa_public_key(der: &[u8]) -> Result<(Vec<u8>, usize), DsigError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| DsigError::BadCertificate { reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(DsigError::BadCertificate { reason: "trailing data after certificate".into() });
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(DsigError::NonRsaKey);
    }
    let bits = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
        _ => return Err(DsigError::BadCertificate { reason: "unparsable RSA public key".into() }),
    };
    Ok((spki.subject_public_key.data.to_vec(), bits))
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let start = modulus.iter().position(|&b| b != 0).unwrap_or(modulus.len());
    match modulus.get(start..) {
        Some([first, rest @ ..]) => rest.len() * 8 + (8 - first.leading_zeros() as usize),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_the_same_wrapped_or_not_and_refuses_garbage() {
        let bytes: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let flat = b64(&bytes);
        // As Java tooling writes it: 76 columns, CR LF (the CR arrives from `&#13;`), indented.
        let wrapped: String = flat
            .as_bytes()
            .chunks(76)
            .map(|line| format!("\r\n\t  {}", std::str::from_utf8(line).unwrap()))
            .collect();
        assert_eq!(decode_b64(&flat, "ds:SignatureValue"), Ok(bytes.clone()));
        assert_eq!(decode_b64(&wrapped, "ds:SignatureValue"), Ok(bytes));
        assert_eq!(
            decode_b64("not base64!", "ds:SignatureValue"),
            Err(DsigError::BadBase64 { element: "ds:SignatureValue" })
        );
    }
}
