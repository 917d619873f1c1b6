//! Arbitrary bytes into the parser: it must answer Ok or a typed error, never panic, and a
//! document it accepts must be navigable end to end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl::xml::{Document, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_depth: 32, max_attributes: 16, max_nodes: 4096 };
    let Ok(doc) = Document::parse(bytes::Bytes::copy_from_slice(data), &limits) else {
        return;
    };
    let root = doc.root();
    for n in std::iter::once(root).chain(doc.descendants(root)) {
        let _ = doc.text(n);
        let _ = (doc.qname(n), doc.namespace(n), doc.prefix(n), doc.parent(n));
        let span = doc.span(n);
        assert!(span.start < span.end && span.end <= data.len());
        for name in ["id", "ID", "Id", "Algorithm"] {
            if let Some(v) = doc.attribute(n, name) {
                if name != "Algorithm" && doc.by_id(&v) != Some(n) {
                    // Only ds:Signature ids are exempt from the id index.
                    assert_eq!(doc.local_name(n), "Signature");
                }
            }
        }
    }
});
