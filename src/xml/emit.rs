//! A writer whose output is already in exclusive canonical form (Exclusive XML C14N 1.0):
//! start/end tag pairs for empty elements, namespace declarations exactly where the
//! canonicalizer would render them, attributes in canonical order, canonical escaping.
//!
//! Tokens segl issues are written with it, so the digest of a token is taken over the bytes as
//! written, with no second canonicalization pass. The caller declares namespaces where they
//! are first visibly used (exclusive C14N's rule); `tests` in `token/` prove
//! c14n(emitted) == emitted for every token type.

use super::escape;

/// Builds canonical XML into a byte buffer.
#[derive(Debug, Default)]
pub struct CanonicalWriter {
    out: Vec<u8>,
}

impl CanonicalWriter {
    /// An empty writer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { out: Vec::with_capacity(capacity) }
    }

    /// Writes a start tag. `namespaces` are `(prefix, uri)` pairs, `""` for the default
    /// namespace, given in canonical order (default first, then by prefix); `attributes` are
    /// unqualified `(name, value)` pairs in canonical order (by name).
    pub fn start(&mut self, qname: &str, namespaces: &[(&str, &str)], attributes: &[(&str, &str)]) {
        debug_assert!(namespaces.windows(2).all(|w| w[0].0 < w[1].0), "namespaces out of canonical order");
        debug_assert!(attributes.windows(2).all(|w| w[0].0 < w[1].0), "attributes out of canonical order");
        self.out.push(b'<');
        self.out.extend_from_slice(qname.as_bytes());
        for (prefix, uri) in namespaces {
            if prefix.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(prefix.as_bytes());
                self.out.extend_from_slice(b"=\"");
            }
            escape::attribute(&mut self.out, uri.as_bytes());
            self.out.push(b'"');
        }
        for (name, value) in attributes {
            self.out.push(b' ');
            self.out.extend_from_slice(name.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape::attribute(&mut self.out, value.as_bytes());
            self.out.push(b'"');
        }
        self.out.push(b'>');
    }

    /// Writes an end tag.
    pub fn end(&mut self, qname: &str) {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(qname.as_bytes());
        self.out.push(b'>');
    }

    /// Writes escaped text content.
    pub fn text(&mut self, text: &str) {
        escape::text(&mut self.out, text.as_bytes());
    }

    /// Writes an element with only text content.
    pub fn leaf(
        &mut self,
        qname: &str,
        namespaces: &[(&str, &str)],
        attributes: &[(&str, &str)],
        text: &str,
    ) {
        self.start(qname, namespaces, attributes);
        self.text(text);
        self.end(qname);
    }

    /// Appends bytes verbatim (already serialized XML, e.g. a signed token).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.out
    }

    /// Number of bytes written so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The finished buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_elements_are_start_end_pairs_and_values_escaped() {
        let mut w = CanonicalWriter::default();
        w.start("a:x", &[("a", "urn:a?x=1&y=2")], &[("B", "1\"2"), ("a", "<")]);
        w.leaf("a:y", &[], &[], "x<y&z>\r");
        w.start("a:z", &[], &[]);
        w.end("a:z");
        w.end("a:x");
        assert_eq!(
            String::from_utf8(w.into_bytes()).unwrap(),
            "<a:x xmlns:a=\"urn:a?x=1&amp;y=2\" B=\"1&quot;2\" a=\"&lt;\"><a:y>x&lt;y&amp;z&gt;&#xD;</a:y><a:z></a:z></a:x>"
        );
    }
}
