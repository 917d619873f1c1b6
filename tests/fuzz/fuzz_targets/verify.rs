//! Every ds:Signature of an accepted document through both profile verifiers and the
//! explainer: a typed answer, never a panic, and a "verified" answer only ever names elements
//! in the places the profile allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl::xml::dsig::algorithm::DSIG_NS;
use segl::xml::dsig::{explain, verify_element, verify_enveloped_with, verify_header, Policy};
use segl::xml::{Document, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_depth: 32, max_attributes: 16, max_nodes: 4096 };
    let Ok(doc) = Document::parse(bytes::Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    let root = doc.root();
    for n in std::iter::once(root).chain(doc.descendants(root)) {
        if doc.is(n, DSIG_NS, "Signature") {
            if let Ok(v) = verify_enveloped_with(&doc, n, &Policy::LEGACY) {
                assert_eq!(doc.parent(n), Some(v.signed_element));
            }
        }
        if let Ok(v) = verify_element(&doc, n, &Policy::FEDERATION) {
            assert_eq!(v.signed_element, n);
        }
    }
    if let Ok(v) = verify_header(&doc, &Policy::FEDERATION) {
        assert_eq!(doc.parent(v.body), Some(root));
        assert_eq!(doc.parent(v.signature), Some(v.security));
    }
    let _ = explain::explain(&doc, &Policy::LEGACY, true);
});
