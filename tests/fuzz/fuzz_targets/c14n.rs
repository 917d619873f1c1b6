//! Canonicalization of every accepted document, whole and per subtree, exclusive and
//! inclusive. Besides "no panic", canonical form is a fixed point: the canonical bytes parse,
//! and canonicalizing them again changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl::xml::c14n::{Canonicalizer, Method};
use segl::xml::{Document, Limits};

fn parse(data: &[u8]) -> Option<Document> {
    let limits = Limits { max_depth: 32, max_attributes: 16, max_nodes: 4096 };
    Document::parse(bytes::Bytes::copy_from_slice(data), &limits).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(doc) = parse(data) else { return };
    let mut c = Canonicalizer::default();
    for method in [Method::Exclusive(&[]), Method::Exclusive(&["#default", "a", "b"]), Method::Inclusive] {
        let mut once = Vec::new();
        c.document(&doc, method, &mut once);
        let again = parse(&once)
            .unwrap_or_else(|| panic!("canonical form does not parse: {}", String::from_utf8_lossy(&once)));
        let mut twice = Vec::new();
        c.document(&again, method, &mut twice);
        assert_eq!(String::from_utf8_lossy(&once), String::from_utf8_lossy(&twice), "not a fixed point");

        let root = doc.root();
        for (k, n) in doc.descendants(root).enumerate().take(16) {
            let mut sub = Vec::new();
            let exclude = doc.children(n).next();
            c.subtree(&doc, n, exclude, method, &mut sub);
            assert!(sub.starts_with(b"<"), "subtree {k} does not start with a tag");
            assert!(parse(&sub).is_some(), "subtree form does not parse: {}", String::from_utf8_lossy(&sub));
        }
    }
});
