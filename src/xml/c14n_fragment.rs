//! Exclusive c14n of a fragment that segl wrote itself, without parsing it.
//!
//! An answer's Body is written by segl in canonical form piece by piece (the RSTR, the embedded
//! token), and each piece declares what it uses. Put together, the pieces are canonical except
//! for namespace declarations: exclusive c14n renders a declaration only where its prefix is
//! visibly used and an output ancestor has not rendered the same binding, so a declaration that
//! repeats an ancestor's (a `wsu` on `wsu:Created` inside a Body that declares `wsu`, the nested
//! `xenc` of an EncryptedAssertion) is dropped, and one that an element inherits without
//! rendering is added. This module does exactly that in one pass over the bytes, and copies
//! everything else as it is: about a tenth of the instructions of parsing the Body and
//! canonicalizing the tree.
//!
//! It accepts only what canonical form allows: double-quoted attributes separated by single
//! spaces, no self-closing tags, no comments, processing instructions, CDATA or DOCTYPE, only the
//! escapes canonical form uses. Anything else returns `None`, and the caller takes the parser
//! path.

/// A namespace binding: prefix (empty for the default namespace) and URI, as written (its
/// escaping is already canonical).
type Binding<'a> = (&'a [u8], &'a [u8]);

/// The exclusive canonical form of `fragment` (one element, written in canonical form but for
/// its namespace declarations) as the apex of a reference, or `None` when it is not in the
/// shape this module accepts.
pub fn exclusive(fragment: &[u8]) -> Option<Vec<u8>> {
    // Characters XML does not allow (and the parser refuses) are not copied into a signed Body.
    let utf8 = std::str::from_utf8(fragment).ok()?;
    if utf8
        .chars()
        .any(|c| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
    {
        return None;
    }
    let mut out = Vec::with_capacity(fragment.len());
    // In scope from the input's declarations, and rendered by output ancestors; each element
    // pushes onto both and records where its entries begin.
    let mut scope: Vec<Binding> = Vec::with_capacity(32);
    let mut rendered: Vec<Binding> = Vec::with_capacity(32);
    let mut marks: Vec<(usize, usize)> = Vec::with_capacity(32);
    let mut names: Vec<&[u8]> = Vec::with_capacity(32);
    let mut attributes: Vec<(&[u8], &[u8])> = Vec::with_capacity(16);
    let mut used: Vec<&[u8]> = Vec::with_capacity(8);
    let mut at = 0;
    while at < fragment.len() {
        // Character data up to the next tag; none outside the apex element.
        let lt = fragment[at..].iter().position(|b| *b == b'<')?;
        let chars = &fragment[at..at + lt];
        if names.is_empty() && !chars.is_empty() {
            return None;
        }
        text(chars, &mut out)?;
        at += lt + 1;
        match fragment.get(at) {
            Some(b'/') => {
                let end = at + fragment[at..].iter().position(|b| *b == b'>')?;
                let name = &fragment[at + 1..end];
                if names.pop()? != name {
                    return None;
                }
                let (s, r) = marks.pop()?;
                scope.truncate(s);
                rendered.truncate(r);
                out.extend_from_slice(b"</");
                out.extend_from_slice(name);
                out.push(b'>');
                at = end + 1;
                if names.is_empty() {
                    // The apex is closed: nothing may follow.
                    return (at == fragment.len()).then_some(out);
                }
            }
            Some(b'!' | b'?') | None => return None,
            Some(_) => {
                let (name, end) = start_tag(fragment, at, &mut attributes)?;
                if !is_qname(name) || matches!(prefix_of(name), b"xml" | b"xmlns") {
                    return None;
                }
                marks.push((scope.len(), rendered.len()));
                // The input's declarations come into scope; the other attributes stay.
                let declared_from = scope.len();
                for (attr, value) in &attributes {
                    if let Some(prefix) = declared_prefix(attr) {
                        // Well-formed declarations only: each prefix once, none of `xml` and
                        // `xmlns`, no undeclaring of a prefix, and URIs whose order is their
                        // escaped order (no character references).
                        if matches!(prefix, b"xml" | b"xmlns")
                            || (!prefix.is_empty() && !is_ncname(prefix))
                            || (value.is_empty() && !prefix.is_empty())
                            || value.contains(&b'&')
                            || scope[declared_from..].iter().any(|(p, _)| *p == prefix)
                        {
                            return None;
                        }
                        scope.push((prefix, value));
                    } else if !is_qname(attr) || prefix_of(attr) == b"xmlns" {
                        return None;
                    }
                }
                used.clear();
                used.push(prefix_of(name));
                for (attr, _) in &attributes {
                    if declared_prefix(attr).is_none() && attr.contains(&b':') && !attr.starts_with(b"xml:") {
                        used.push(prefix_of(attr));
                    }
                }
                used.sort_unstable();
                used.dedup();
                out.push(b'<');
                out.extend_from_slice(name);
                if !attributes_in_canonical_order(&attributes, &scope) {
                    return None;
                }
                for prefix in &used {
                    // A prefix used without a declaration in scope is not namespace-well-formed.
                    let uri = if prefix.is_empty() {
                        lookup(&scope, prefix).unwrap_or(b"")
                    } else {
                        lookup(&scope, prefix)?
                    };
                    let shown = lookup(&rendered, prefix).unwrap_or(b"");
                    if uri == shown {
                        continue;
                    }
                    if uri.is_empty() && !prefix.is_empty() {
                        return None;
                    }
                    out.extend_from_slice(if prefix.is_empty() { b" xmlns=\"" } else { b" xmlns:" });
                    if !prefix.is_empty() {
                        out.extend_from_slice(prefix);
                        out.extend_from_slice(b"=\"");
                    }
                    out.extend_from_slice(uri);
                    out.push(b'"');
                    rendered.push((prefix, uri));
                }
                for (attr, value) in &attributes {
                    if declared_prefix(attr).is_none() {
                        out.push(b' ');
                        out.extend_from_slice(attr);
                        out.extend_from_slice(b"=\"");
                        out.extend_from_slice(value);
                        out.push(b'"');
                    }
                }
                out.push(b'>');
                names.push(name);
                at = end + 1;
            }
        }
    }
    None
}

/// Reads the start tag whose name begins at `at`: its name, its attributes (into `attributes`,
/// in their order) and the position of its `>`.
fn start_tag<'a>(
    bytes: &'a [u8],
    at: usize,
    attributes: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Option<(&'a [u8], usize)> {
    attributes.clear();
    let name_end = at + bytes[at..].iter().position(|b| matches!(b, b' ' | b'>' | b'/'))?;
    let name = &bytes[at..name_end];
    let mut i = name_end;
    loop {
        match bytes.get(i)? {
            b'>' => return (!name.is_empty()).then_some((name, i)),
            b' ' => {
                let attr_start = i + 1;
                let eq = attr_start + bytes[attr_start..].iter().position(|b| *b == b'=')?;
                let attr = &bytes[attr_start..eq];
                if attr.is_empty() || attr.iter().any(|b| b" \t\n\r<>\"'/".contains(b)) {
                    return None;
                }
                if bytes.get(eq + 1) != Some(&b'"') {
                    return None;
                }
                let value_start = eq + 2;
                let value_end = value_start + bytes[value_start..].iter().position(|b| *b == b'"')?;
                let value = &bytes[value_start..value_end];
                // Canonical attribute values escape tabs, newlines and carriage returns.
                if value.iter().any(|b| matches!(b, b'\t' | b'\n' | b'\r' | b'<'))
                    || !canonical_escapes(value, ATTRIBUTE_ESCAPES)
                {
                    return None;
                }
                attributes.push((attr, value));
                i = value_end + 1;
            }
            // A self-closing tag, or anything else canonical form does not write.
            _ => return None,
        }
    }
}

/// The XML namespace, bound to `xml` without a declaration.
const XML_NAMESPACE: &[u8] = b"http://www.w3.org/XML/1998/namespace";

/// Whether the attributes other than namespace declarations come in canonical order: by
/// namespace URI (none first), then local name.
fn attributes_in_canonical_order(attributes: &[(&[u8], &[u8])], scope: &[Binding]) -> bool {
    let mut previous: Option<(&[u8], &[u8])> = None;
    for (attr, _) in attributes {
        if declared_prefix(attr).is_some() {
            continue;
        }
        let key = match attr.iter().position(|b| *b == b':') {
            None => (&b""[..], &attr[..]),
            Some(colon) => {
                let prefix = &attr[..colon];
                let uri = if prefix == b"xml" { Some(XML_NAMESPACE) } else { lookup(scope, prefix) };
                match uri {
                    Some(uri) => (uri, &attr[colon + 1..]),
                    None => return false,
                }
            }
        };
        if previous.is_some_and(|p| p >= key) {
            return false;
        }
        previous = Some(key);
    }
    true
}

/// The escapes canonical form writes in character data.
const TEXT_ESCAPES: &[&[u8]] = &[b"&amp;", b"&lt;", b"&gt;", b"&#xD;"];
/// The escapes canonical form writes in attribute values.
const ATTRIBUTE_ESCAPES: &[&[u8]] = &[b"&amp;", b"&lt;", b"&quot;", b"&#x9;", b"&#xA;", b"&#xD;"];

/// Copies character data, which must already be in canonical form (`>` and carriage returns
/// escaped, nothing else).
fn text(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if bytes.iter().any(|b| matches!(b, b'\r' | b'>')) || !canonical_escapes(bytes, TEXT_ESCAPES) {
        return None;
    }
    out.extend_from_slice(bytes);
    Some(())
}

/// Whether every `&` starts one of `escapes`.
fn canonical_escapes(bytes: &[u8], escapes: &[&[u8]]) -> bool {
    let mut rest = bytes;
    while let Some(amp) = rest.iter().position(|b| *b == b'&') {
        rest = &rest[amp..];
        if !escapes.iter().any(|e| rest.starts_with(e)) {
            return false;
        }
        rest = &rest[1..];
    }
    true
}

/// Whether `name` is an ASCII qualified name: a name, or a prefix and a local name joined by
/// one colon (segl writes no other names; the parser takes any other shape).
fn is_qname(name: &[u8]) -> bool {
    match name.iter().position(|b| *b == b':') {
        None => is_ncname(name),
        Some(colon) => is_ncname(&name[..colon]) && is_ncname(&name[colon + 1..]),
    }
}

/// Whether `part` is an ASCII name without a colon.
fn is_ncname(part: &[u8]) -> bool {
    part.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
        && part.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// The prefix an `xmlns:p` (or `xmlns`) attribute declares.
fn declared_prefix(attr: &[u8]) -> Option<&[u8]> {
    if attr == b"xmlns" {
        Some(b"")
    } else {
        attr.strip_prefix(b"xmlns:")
    }
}

/// The prefix of a qualified name (empty when unprefixed).
fn prefix_of(qname: &[u8]) -> &[u8] {
    qname.iter().position(|b| *b == b':').map_or(&[][..], |colon| &qname[..colon])
}

/// The innermost binding of `prefix`.
fn lookup<'a>(bindings: &[Binding<'a>], prefix: &[u8]) -> Option<&'a [u8]> {
    bindings.iter().rev().find(|(p, _)| *p == prefix).map(|(_, uri)| *uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{c14n, Document, Limits};

    fn by_parser(fragment: &[u8]) -> Vec<u8> {
        let doc = Document::parse(bytes::Bytes::copy_from_slice(fragment), &Limits::default()).unwrap();
        let mut out = Vec::new();
        c14n::exclusive(&doc, doc.root(), None, &[], &mut out);
        out
    }

    fn same_as_the_parser(fragment: &str) {
        let fast = exclusive(fragment.as_bytes()).unwrap_or_else(|| panic!("refused: {fragment}"));
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(by_parser(fragment.as_bytes())).unwrap(),
            "{fragment}"
        );
    }

    #[test]
    fn redundant_declarations_are_dropped_and_inherited_ones_rendered_as_the_parser_does() {
        // A declaration repeating the ancestor's is dropped.
        same_as_the_parser(
            r#"<soapenv:Body xmlns:soapenv="urn:s" xmlns:wsu="urn:u" wsu:Id="body"><wst:R xmlns:wst="urn:t"><wsu:Created xmlns:wsu="urn:u">2026</wsu:Created></wst:R></soapenv:Body>"#,
        );
        // A nested re-declaration (an EncryptedAssertion's xenc) is dropped.
        same_as_the_parser(
            r#"<a:E xmlns:a="urn:a"><x:D xmlns:x="urn:x" Type="t"><x:K xmlns:x="urn:x"><x:V>v</x:V></x:K></x:D></a:E>"#,
        );
        // A declaration of another URI for the same prefix is kept.
        same_as_the_parser(r#"<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:2">t</p:b><p:c>u</p:c></p:a>"#);
        // Declared on an ancestor that does not use it: rendered where it is used, and again in
        // a sibling subtree.
        same_as_the_parser(
            r#"<a:r xmlns:a="urn:a" xmlns:xsi="urn:xsi"><a:v xsi:type="s">1</a:v><a:v xsi:type="s">2</a:v></a:r>"#,
        );
        // The default namespace, set and unset.
        same_as_the_parser(r#"<r xmlns="urn:d"><c xmlns="urn:d">x</c><e xmlns="">y</e></r>"#);
        // Escapes, attributes with and without prefixes, xml:lang.
        same_as_the_parser(
            r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" Id="1" xml:lang="da" b:k="&lt;&quot;&amp;&#xA;>">x &amp;&lt;&gt; "y"<a:e></a:e></a:r>"#,
        );
    }

    #[test]
    fn what_canonical_form_does_not_write_takes_the_parser_path() {
        for fragment in [
            r#"<a:r xmlns:a="urn:a"><a:e/></a:r>"#,
            r#"<a:r xmlns:a="urn:a"><!-- c --></a:r>"#,
            r#"<a:r xmlns:a="urn:a"><?pi x?></a:r>"#,
            r#"<a:r xmlns:a="urn:a"><![CDATA[x]]></a:r>"#,
            r#"<a:r xmlns:a='urn:a'></a:r>"#,
            r#"<a:r  xmlns:a="urn:a"></a:r>"#,
            r#"<a:r xmlns:a="urn:a">&apos;</a:r>"#,
            r#"<a:r xmlns:a="urn:a">&quot;</a:r>"#,
            r#"<a:r xmlns:a="urn:a">&#xA;</a:r>"#,
            r#"<a:r xmlns:a="urn:a" k="&gt;"></a:r>"#,
            r#"<a:r xmlns:a="urn:a">x</a:r>tail"#,
            r#"<a:r xmlns:a="urn:a">a > b</a:r>"#,
            "<a:r xmlns:a=\"urn:a\">a\r\nb</a:r>",
            "<a:r xmlns:a=\"urn:a\" k=\"a\tb\"></a:r>",
            r#"<a:r xmlns:a="urn:a"></a:s>"#,
            r#"<a:r xmlns:a="urn:a"></a:r><a:r xmlns:a="urn:a"></a:r>"#,
            r#"<a:r xmlns:a="urn:a"><b:e></b:e></a:r>"#,
            r#"<a:r xmlns:a="urn:a" xmlns:b="urn:b" b:k="1" Id="2"></a:r>"#,
            r#"<a:r xmlns:a="urn:a" b:k="1"></a:r>"#,
            r#"<a:r xmlns:a="urn:a">"#,
            // Namespace URIs with character references sort by what they stand for.
            r#"<r xmlns:a="urn:&lt;" xmlns:b="urn:0" a:x="1" b:y="2"></r>"#,
            // Not well-formed, though the shape is canonical.
            r#"<a:r xmlns:a="urn:a" xmlns:a="urn:b"></a:r>"#,
            r#"<a:r xmlns:a="urn:a" xmlns:p=""></a:r>"#,
            r#"<a:r xmlns:a="urn:a" xmlns:xmlns="urn:x"></a:r>"#,
            r#"<a:r xmlns:a="urn:a" xmlns:u:Id="body"></a:r>"#,
            r#"<xml:r></xml:r>"#,
            r#"<1r></1r>"#,
            r#"<:r></:r>"#,
            r#"<a:b:c xmlns:a="urn:a"></a:b:c>"#,
            "<r>\u{1}</r>",
            "<r>\u{FFFE}</r>",
        ] {
            assert!(exclusive(fragment.as_bytes()).is_none(), "accepted: {fragment}");
        }
    }
}
