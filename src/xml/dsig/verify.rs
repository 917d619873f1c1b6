//! Enveloped-signature verification.
//!
//! Only the profile the federation uses is accepted: one reference to the Signature's parent,
//! transforms enveloped-signature then exclusive c14n, RSA PKCS#1 v1.5 with the key from an
//! embedded X.509 certificate. Everything else is refused, so a caller that reads only
//! [`VerifiedSignature::signed_element`] reads only signed content.

use base64::Engine as _;

use crate::xml::c14n;
use crate::xml::dsig::algorithm::{
    DigestAlgorithm, SignatureAlgorithm, DSIG_NS, ENVELOPED_SIGNATURE, EXC_C14N,
};
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
    /// The RSA key is shorter than 2048 bits (old OCES test certificates are 1024-bit).
    #[error("RSA key of {bits} bits is below the 2048-bit minimum")]
    WeakKey {
        /// Modulus length.
        bits: usize,
    },
    /// The RSA signature over SignedInfo does not verify.
    #[error("SignatureValue does not verify over SignedInfo")]
    SignatureValueInvalid,
}

/// XML whitespace is stripped before decoding because Java tooling wraps base64 at 76 columns.
fn decode_b64(text: &str, element: &'static str) -> Result<Vec<u8>, DsigError> {
    let compact: Vec<u8> = text.bytes().filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| DsigError::BadBase64 { element })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The single `ds:*` child named `local`; any other copy or missing one is an error.
fn only_child(
    doc: &Document,
    parent: NodeId,
    local: &'static str,
    parent_name: &'static str,
) -> Result<NodeId, DsigError> {
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
    found.ok_or(DsigError::MissingElement { name: local })
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

fn split_prefixes(list: &str) -> Vec<&str> {
    list.split([' ', '\t', '\r', '\n']).filter(|s| !s.is_empty()).collect()
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

/// Verifies the enveloped signature `signature` (a `ds:Signature` element) in `doc`.
///
/// The reference digest is checked before the RSA signature so the error says which failed.
pub fn verify_enveloped(doc: &Document, signature: NodeId) -> Result<VerifiedSignature, DsigError> {
    if !doc.is(signature, DSIG_NS, "Signature") {
        return Err(DsigError::NotASignature);
    }
    check_children(doc, signature, &["SignedInfo", "SignatureValue", "KeyInfo"], "ds:Signature")?;
    let signed_info = only_child(doc, signature, "SignedInfo", "ds:Signature")?;
    let signature_value = only_child(doc, signature, "SignatureValue", "ds:Signature")?;
    let key_info = only_child(doc, signature, "KeyInfo", "ds:Signature")?;

    check_children(
        doc,
        signed_info,
        &["CanonicalizationMethod", "SignatureMethod", "Reference"],
        "ds:SignedInfo",
    )?;
    let c14n_method = only_child(doc, signed_info, "CanonicalizationMethod", "ds:SignedInfo")?;
    let c14n_uri = algorithm_attr(doc, c14n_method, "ds:CanonicalizationMethod")?;
    if c14n_uri != EXC_C14N {
        return Err(DsigError::UnsupportedCanonicalization { uri: c14n_uri });
    }
    let si_prefix_list = prefix_list(doc, c14n_method, "ds:CanonicalizationMethod")?;

    let sig_method = only_child(doc, signed_info, "SignatureMethod", "ds:SignedInfo")?;
    let sig_uri = algorithm_attr(doc, sig_method, "ds:SignatureMethod")?;
    let algorithm = SignatureAlgorithm::from_uri(&sig_uri)
        .ok_or(DsigError::UnknownSignatureAlgorithm { uri: sig_uri })?;

    let refs = doc.children(signed_info).filter(|&c| doc.is(c, DSIG_NS, "Reference")).count();
    if refs != 1 {
        return Err(DsigError::ReferenceCount { found: refs });
    }
    let reference = only_child(doc, signed_info, "Reference", "ds:SignedInfo")?;
    let uri = doc
        .attribute(reference, "URI")
        .ok_or(DsigError::MissingAttribute { name: "URI", element: "ds:Reference" })?
        .into_owned();
    let id = uri
        .strip_prefix('#')
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DsigError::UnsupportedReferenceUri { uri: uri.clone() })?;
    let signed_element = doc.by_id(id).ok_or_else(|| DsigError::ReferenceNotFound { uri: uri.clone() })?;
    if doc.parent(signature) != Some(signed_element) {
        return Err(DsigError::NotEnveloped { uri });
    }

    check_children(doc, reference, &["Transforms", "DigestMethod", "DigestValue"], "ds:Reference")?;
    let transforms = only_child(doc, reference, "Transforms", "ds:Reference")?;
    check_children(doc, transforms, &["Transform"], "ds:Transforms")?;
    let chain: Vec<NodeId> = doc.children(transforms).collect();
    let [first, second] = chain.as_slice() else {
        return Err(DsigError::UnexpectedTransform {
            uri,
            transform: format!("{} transforms, expected 2", chain.len()),
        });
    };
    let t1 = algorithm_attr(doc, *first, "ds:Transform")?;
    if t1 != ENVELOPED_SIGNATURE || doc.children(*first).next().is_some() {
        return Err(DsigError::UnexpectedTransform { uri, transform: t1 });
    }
    let t2 = algorithm_attr(doc, *second, "ds:Transform")?;
    if t2 != EXC_C14N {
        return Err(DsigError::UnexpectedTransform { uri, transform: t2 });
    }
    let ref_prefix_list = prefix_list(doc, *second, "ds:Transform")?;

    let digest_method = only_child(doc, reference, "DigestMethod", "ds:Reference")?;
    let digest_uri = algorithm_attr(doc, digest_method, "ds:DigestMethod")?;
    let digest_algorithm = DigestAlgorithm::from_uri(&digest_uri)
        .ok_or(DsigError::UnknownDigestAlgorithm { uri: digest_uri })?;
    let digest_value = only_child(doc, reference, "DigestValue", "ds:Reference")?;
    let expected = decode_b64(&doc.text(digest_value), "ds:DigestValue")?;

    let mut hasher = digest_algorithm.hasher();
    c14n::exclusive(doc, signed_element, Some(signature), &split_prefixes(&ref_prefix_list), &mut hasher);
    let computed = hasher.finish();
    if computed != expected {
        return Err(DsigError::DigestMismatch {
            uri,
            expected_b64: b64(&expected),
            computed_b64: b64(&computed),
        });
    }

    let certificate_der = certificate(doc, key_info)?;
    let spki = rsa_public_key(&certificate_der)?;
    let sig_bytes = decode_b64(&doc.text(signature_value), "ds:SignatureValue")?;
    let mut canonical = Vec::with_capacity(1024);
    c14n::exclusive(doc, signed_info, None, &split_prefixes(&si_prefix_list), &mut canonical);
    let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match algorithm {
        SignatureAlgorithm::RsaSha1 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        SignatureAlgorithm::RsaSha256 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, &spki)
        .verify(&canonical, &sig_bytes)
        .map_err(|_| DsigError::SignatureValueInvalid)?;

    Ok(VerifiedSignature { signature, signed_element, algorithm, digest_algorithm, certificate_der })
}

fn certificate(doc: &Document, key_info: NodeId) -> Result<Vec<u8>, DsigError> {
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
    let cert = found.ok_or(DsigError::NoCertificate)?;
    decode_b64(&doc.text(cert), "ds:X509Certificate")
}

/// The PKCS#1 RSAPublicKey inside the certificate's SubjectPublicKeyInfo.
fn rsa_public_key(der: &[u8]) -> Result<Vec<u8>, DsigError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| DsigError::BadCertificate { reason: e.to_string() })?;
    if !rest.is_empty() {
        return Err(DsigError::BadCertificate { reason: "trailing data after certificate".into() });
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(DsigError::NonRsaKey);
    }
    // Checked here so a short key is reported as such rather than as a bad signature.
    let bits = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => modulus_bits(rsa.modulus),
        _ => return Err(DsigError::BadCertificate { reason: "unparsable RSA public key".into() }),
    };
    if bits < 2048 {
        return Err(DsigError::WeakKey { bits });
    }
    Ok(spki.subject_public_key.data.to_vec())
}

fn modulus_bits(modulus: &[u8]) -> usize {
    let start = modulus.iter().position(|&b| b != 0).unwrap_or(modulus.len());
    match modulus.get(start..) {
        Some([first, rest @ ..]) => rest.len() * 8 + (8 - first.leading_zeros() as usize),
        _ => 0,
    }
}
