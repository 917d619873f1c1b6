//! The fragment canonicalizer (an OIO answer's Body without a parse) against the parser's
//! canonicalization: whatever it accepts must parse, and its output must be the exclusive
//! canonical form of the parsed root, byte for byte. Seeded also with canonical forms, so that
//! inputs it accepts are common.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl::xml::c14n::{Canonicalizer, Method};
use segl::xml::{c14n_fragment, Document, Limits};

fn parse(data: &[u8]) -> Option<Document> {
    let limits = Limits { max_depth: 32, max_attributes: 16, max_nodes: 4096 };
    Document::parse(bytes::Bytes::copy_from_slice(data), &limits).ok()
}

fn check(data: &[u8]) {
    let Some(fast) = c14n_fragment::exclusive(data) else { return };
    // Whatever the fragment path accepts is well-formed (it has no size limits; these are wide).
    let limits = Limits { max_depth: 100_000, max_attributes: 100_000, max_nodes: 10_000_000 };
    let doc = Document::parse(bytes::Bytes::copy_from_slice(data), &limits).unwrap_or_else(|e| {
        panic!("fragment c14n accepted what the parser refuses ({e}): {}", String::from_utf8_lossy(data))
    });
    let mut slow = Vec::new();
    Canonicalizer::default().subtree(&doc, doc.root(), None, Method::Exclusive(&[]), &mut slow);
    assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&slow),
        "fragment c14n differs from the parser's for {}",
        String::from_utf8_lossy(data)
    );
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // The canonical form of what parses (declarations redistributed by the fuzzer's mutations
    // of it reach the fast path far more often than raw bytes do).
    if let Some(doc) = parse(data) {
        let mut canonical = Vec::new();
        Canonicalizer::default().document(&doc, Method::Inclusive, &mut canonical);
        check(&canonical);
    }
});
