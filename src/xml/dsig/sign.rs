//! Creating XML signatures over bytes that are already canonical: enveloped (ID cards,
//! assertions) and, with several references, WS-Security header signatures (SIG-HDR).
//!
//! Signing is split in two so that a core can collect many signatures and send them to the HSM
//! together: [`prepare`] hashes the signed element's canonical bytes and builds the SignedInfo
//! (the SignedInfo digest is what the HSM signs as a PKCS#1 DigestInfo); [`finish`] wraps the
//! signature value into the `ds:Signature` element.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::algorithm::{SignatureAlgorithm, DSIG_NS, ENVELOPED_SIGNATURE, EXC_C14N};
use crate::xml::emit::CanonicalWriter;

/// What the signature looks like.
#[derive(Debug, Clone, Copy)]
pub struct SignatureSpec<'a> {
    /// The identifying attribute of `ds:Signature`: `("id", "OCESSignature")` on ID cards,
    /// `("Id", "OCESSignature")` on OIOSAML/IDWS assertions.
    pub id_attribute: (&'a str, &'a str),
    /// The reference, e.g. `#IDCard`.
    pub reference_uri: &'a str,
    /// Signature (and digest) algorithm.
    pub algorithm: SignatureAlgorithm,
    /// Base64 (one line) of the DER certificate placed in `ds:KeyInfo/ds:X509Data`.
    pub certificate_b64: &'a str,
}

/// A signature waiting for its RSA value.
#[derive(Debug, Clone)]
pub struct PreparedSignature {
    /// The digest of the canonical SignedInfo: the HSM signs its DigestInfo.
    pub signed_info_digest: Vec<u8>,
    signed_info_inner: Vec<u8>,
    id_attribute: (String, String),
    certificate_b64: String,
}

const SIGNED_INFO_START: &str = "ds:SignedInfo";

/// Hashes `canonical_parts` (the signed element's canonical bytes without the signature, in
/// document order) and builds the SignedInfo for `spec`.
pub fn prepare(canonical_parts: &[&[u8]], spec: &SignatureSpec<'_>) -> PreparedSignature {
    let reference = Reference { uri: spec.reference_uri, canonical_parts, enveloped: true };
    prepare_signed_info(&[reference], spec.algorithm, spec.id_attribute, spec.certificate_b64)
}

/// One reference of a signature with several: the element's canonical bytes, in parts.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    /// `#` and the element's id, e.g. `#messageID`.
    pub uri: &'a str,
    /// The element's exclusive canonical form, in document order.
    pub canonical_parts: &'a [&'a [u8]],
    /// Whether the signature sits inside the element (the enveloped-signature transform).
    pub enveloped: bool,
}

/// Prepares a signature over several elements, each digested from its canonical bytes with
/// the exclusive c14n transform alone: the WS-Security header signature (SIG-HDR), which
/// carries no Id of its own.
pub fn prepare_references(
    references: &[Reference<'_>],
    algorithm: SignatureAlgorithm,
    certificate_b64: &str,
) -> PreparedSignature {
    prepare_signed_info(references, algorithm, ("", ""), certificate_b64)
}

fn prepare_signed_info(
    references: &[Reference<'_>],
    algorithm: SignatureAlgorithm,
    id_attribute: (&str, &str),
    certificate_b64: &str,
) -> PreparedSignature {
    let digest_alg = algorithm.digest();
    // The SignedInfo children, written once; the canonical SignedInfo (what is hashed) adds
    // the ds declaration that exclusive C14N renders on the apex, the embedded one inherits it
    // from ds:Signature.
    let mut inner = CanonicalWriter::with_capacity(400 + 400 * references.len());
    inner.start("ds:CanonicalizationMethod", &[], &[("Algorithm", EXC_C14N)]);
    inner.end("ds:CanonicalizationMethod");
    inner.start("ds:SignatureMethod", &[], &[("Algorithm", algorithm.uri())]);
    inner.end("ds:SignatureMethod");
    for r in references {
        let mut hasher = digest_alg.hasher();
        for part in r.canonical_parts {
            hasher.update(part);
        }
        let digest_b64 = B64.encode(hasher.finish());
        inner.start("ds:Reference", &[], &[("URI", r.uri)]);
        inner.start("ds:Transforms", &[], &[]);
        if r.enveloped {
            inner.start("ds:Transform", &[], &[("Algorithm", ENVELOPED_SIGNATURE)]);
            inner.end("ds:Transform");
        }
        inner.start("ds:Transform", &[], &[("Algorithm", EXC_C14N)]);
        inner.end("ds:Transform");
        inner.end("ds:Transforms");
        inner.start("ds:DigestMethod", &[], &[("Algorithm", digest_alg.uri())]);
        inner.end("ds:DigestMethod");
        inner.leaf("ds:DigestValue", &[], &[], &digest_b64);
        inner.end("ds:Reference");
    }
    let signed_info_inner = inner.into_bytes();

    let mut canonical = CanonicalWriter::with_capacity(signed_info_inner.len() + 100);
    canonical.start(SIGNED_INFO_START, &[("ds", DSIG_NS)], &[]);
    canonical.raw(&signed_info_inner);
    canonical.end(SIGNED_INFO_START);
    let signed_info_digest = digest_alg.digest(canonical.as_bytes());

    PreparedSignature {
        signed_info_digest,
        signed_info_inner,
        id_attribute: (id_attribute.0.to_owned(), id_attribute.1.to_owned()),
        certificate_b64: certificate_b64.to_owned(),
    }
}

/// Builds the `ds:Signature` element from a prepared signature and the RSA signature value
/// over its SignedInfo digest.
pub fn finish(prepared: &PreparedSignature, signature_value: &[u8]) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(
        prepared.signed_info_inner.len() + prepared.certificate_b64.len() + 800,
    );
    let id = [(prepared.id_attribute.0.as_str(), prepared.id_attribute.1.as_str())];
    let attributes: &[(&str, &str)] = if prepared.id_attribute.0.is_empty() { &[] } else { &id };
    w.start("ds:Signature", &[("ds", DSIG_NS)], attributes);
    w.start(SIGNED_INFO_START, &[], &[]);
    w.raw(&prepared.signed_info_inner);
    w.end(SIGNED_INFO_START);
    w.leaf("ds:SignatureValue", &[], &[], &B64.encode(signature_value));
    w.start("ds:KeyInfo", &[], &[]);
    w.start("ds:X509Data", &[], &[]);
    w.leaf("ds:X509Certificate", &[], &[], &prepared.certificate_b64);
    w.end("ds:X509Data");
    w.end("ds:KeyInfo");
    w.end("ds:Signature");
    w.into_bytes()
}

/// Prepares an enveloped signature over an element whose bytes are not in canonical form
/// (e.g. one that embeds a token received from elsewhere): the element is parsed back and
/// digested from its exclusive canonical form. `unsigned_element` is the element as it will
/// be emitted, without its signature; since the enveloped-signature transform removes the
/// signature again, that is exactly what a verifier digests.
pub fn prepare_parsed(
    unsigned_element: &[u8],
    spec: &SignatureSpec<'_>,
) -> Result<PreparedSignature, crate::xml::XmlError> {
    let doc = crate::xml::Document::parse(
        bytes::Bytes::copy_from_slice(unsigned_element),
        &crate::xml::Limits::default(),
    )?;
    let mut canonical = Vec::with_capacity(unsigned_element.len());
    crate::xml::c14n::exclusive(&doc, doc.root(), None, &[], &mut canonical);
    Ok(prepare(&[&canonical], spec))
}
