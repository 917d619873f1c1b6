//! Verification against the reference messages in the shared spec directory, plus adversarial
//! variants of them. The files are third-party data and are read in place.

use std::path::PathBuf;

use bytes::Bytes;
use segl::xml::dsig::algorithm::{DigestAlgorithm, SignatureAlgorithm, DSIG_NS};
use segl::xml::dsig::verify::{verify_enveloped, DsigError, VerifiedSignature};
use segl::xml::{Document, Limits, NodeId, XmlError};

const SAML_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

fn spec_dir() -> PathBuf {
    std::env::var_os("SEGL_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/spec")))
}

/// The example file's bytes, or `None` (with a note) when the spec data is not available.
fn example(name: &str) -> Option<Vec<u8>> {
    let path = spec_dir().join("examples").join(name);
    match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) => {
            println!(
                "skipping: spec example {} not readable: {e}",
                path.display()
            );
            None
        }
    }
}

fn parse(bytes: &[u8]) -> Result<Document, XmlError> {
    Document::parse(Bytes::copy_from_slice(bytes), &Limits::default())
}

/// The ds:Signature that is a direct child of the element with ID `id`.
fn signature_in(doc: &Document, id: &str) -> NodeId {
    let el = doc.by_id(id).expect("signed element present");
    doc.child(el, DSIG_NS, "Signature")
        .expect("enveloped signature present")
}

fn verify_file(name: &str, id: &str) -> Option<Result<VerifiedSignature, DsigError>> {
    let bytes = example(name)?;
    let doc = parse(&bytes).expect("example parses");
    let sig = signature_in(&doc, id);
    Some(verify_enveloped(&doc, sig))
}

fn root_id(bytes: &[u8]) -> String {
    let doc = parse(bytes).expect("parses");
    let root = doc.root();
    doc.attribute(root, "ID")
        .or_else(|| doc.attribute(root, "id"))
        .expect("root id")
        .into_owned()
}

#[test]
fn accepts_id_card_in_sts_request_1() {
    let Some(r) = verify_file("unsealed-sts-request-1.compact.xml", "IDCard") else {
        return;
    };
    let v = r.expect("ID card signature verifies");
    assert_eq!(v.algorithm, SignatureAlgorithm::RsaSha1);
    assert_eq!(v.digest_algorithm, DigestAlgorithm::Sha1);
    assert!(!v.certificate_der.is_empty());
}

#[test]
fn accepts_id_card_in_sts_response_1() {
    let Some(r) = verify_file("unsealed-sts-response-1.compact.xml", "IDCard") else {
        return;
    };
    r.expect("STS ID card signature verifies");
}

#[test]
fn accepts_id_card_inside_act_as() {
    let Some(bytes) = example("unsealed-sts-request-2.compact.xml") else {
        return;
    };
    let doc = parse(&bytes).expect("parses");
    let sig = signature_in(&doc, "IDCard");
    let v = verify_enveloped(&doc, sig).expect("ActAs ID card verifies");
    let act_as = doc.parent(v.signed_element).expect("card has a parent");
    assert_eq!(doc.local_name(act_as), "ActAs");
}

#[test]
fn accepts_nemlogin_assertions() {
    for (name, alg) in [
        (
            "seal.java-oiosaml-examples-NemLog-in_assertion_valid_signature.xml",
            SignatureAlgorithm::RsaSha1,
        ),
        (
            "seal.java-oiosaml-examples-NemLog-in_sha256_assertion.xml",
            SignatureAlgorithm::RsaSha256,
        ),
        (
            "seal.java-OIOBootstrapToIdentityToken-NemLog-In_bootstrap_valid_signature.xml",
            SignatureAlgorithm::RsaSha256,
        ),
        (
            "seal.java-oiosaml-examples-test-new-nemlogin-authentication-assertion-2.xml",
            SignatureAlgorithm::RsaSha1,
        ),
        ("unsealed-bootstrap-token.xml", SignatureAlgorithm::RsaSha1),
    ] {
        let Some(bytes) = example(name) else { return };
        let id = root_id(&bytes);
        let doc = parse(&bytes).expect("parses");
        let sig = signature_in(&doc, &id);
        let v = verify_enveloped(&doc, sig).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.algorithm, alg, "{name}");
        assert_eq!(v.signed_element, doc.root(), "{name}");
        assert!(doc.is(v.signed_element, SAML_NS, "Assertion"), "{name}");
    }
}

#[test]
fn rejects_pretty_printed_originals_with_digest_mismatch() {
    for name in ["unsealed-sts-request-1.xml", "unsealed-sts-response-1.xml"] {
        let Some(r) = verify_file(name, "IDCard") else {
            return;
        };
        match r {
            Err(DsigError::DigestMismatch { uri, .. }) => assert_eq!(uri, "#IDCard"),
            other => panic!("{name}: expected DigestMismatch, got {other:?}"),
        }
    }
}
