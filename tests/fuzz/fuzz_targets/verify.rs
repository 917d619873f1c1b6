//! Every ds:Signature in an accepted document through the verifiers: a typed answer, never a
//! panic, and a "verified" answer only ever names an element of the document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl::xml::dsig::algorithm::DSIG_NS;
use segl::xml::dsig::verify::verify_enveloped;
use segl::xml::{Document, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_depth: 32, max_attributes: 16, max_nodes: 4096 };
    let Ok(doc) = Document::parse(bytes::Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    let root = doc.root();
    for n in std::iter::once(root).chain(doc.descendants(root)) {
        if doc.is(n, DSIG_NS, "Signature") {
            if let Ok(v) = verify_enveloped(&doc, n) {
                assert_eq!(doc.parent(n), Some(v.signed_element));
            }
        }
    }
});
