//! XML canonicalization, streamed from the span index: Exclusive XML Canonicalization 1.0
//! (what the federation signs with) and Canonical XML 1.0 (inclusive; only to verify legacy
//! signatures), both without comments.
//!
//! The canonical bytes are produced in one linear walk over the document's event list. Spans
//! that need no normalization or escaping are copied as they are; everything goes through one
//! output buffer that is handed to the [`Sink`] (normally a hasher) in large pieces, so the
//! hasher is called a few times per document rather than once per name and value. A
//! [`Canonicalizer`] keeps its buffers between runs: once warm it allocates nothing.

use crate::xml::dsig::algorithm::Hasher;
use crate::xml::escape;
use crate::xml::parse::{decode_attr_into, normalize_newlines_into, Document, Ev, NodeId, Span, Str};

/// Receiver of canonical bytes.
pub trait Sink {
    /// Appends `bytes` to the output.
    fn write(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn write(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Which canonicalization, by its XML-DSig algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'p> {
    /// Exclusive XML Canonicalization 1.0 with its InclusiveNamespaces PrefixList
    /// (`#default` names the default namespace).
    Exclusive(&'p [&'p str]),
    /// Canonical XML 1.0 (inclusive).
    Inclusive,
}

/// Output is handed to the sink whenever this much has accumulated.
const FLUSH_AT: usize = 16 * 1024;

/// A namespace binding: the declared prefix (empty for the default namespace) and its URI
/// (`None` for the empty default namespace).
type Binding = (Span, Option<Str>);

/// Reusable canonicalization state (see the module documentation).
#[derive(Debug, Default)]
pub struct Canonicalizer {
    /// Bindings in scope at the current element (prefix, uri), innermost last.
    scope: Vec<Binding>,
    scope_marks: Vec<u32>,
    /// Bindings rendered by output ancestors, innermost last (exclusive only).
    rendered: Vec<Binding>,
    rendered_marks: Vec<u32>,
    /// Namespace declarations to render on the current element.
    pending: Vec<Binding>,
    /// Attributes of the current element, as global indices, in canonical order.
    order: Vec<u32>,
    scratch: Vec<u8>,
    out: Vec<u8>,
}

/// Exclusive c14n (without comments) of the subtree at `apex`, omitting the subtree `exclude`.
///
/// `inclusive_prefixes` is the InclusiveNamespaces PrefixList; `#default` names the default
/// namespace.
pub fn exclusive(
    doc: &Document,
    apex: NodeId,
    exclude: Option<NodeId>,
    inclusive_prefixes: &[&str],
    out: &mut impl Sink,
) {
    Canonicalizer::default().subtree(doc, apex, exclude, Method::Exclusive(inclusive_prefixes), out);
}

/// [`exclusive`] into a fresh vector.
pub fn exclusive_to_vec(
    doc: &Document,
    apex: NodeId,
    exclude: Option<NodeId>,
    inclusive_prefixes: &[&str],
) -> Vec<u8> {
    let mut v = Vec::new();
    exclusive(doc, apex, exclude, inclusive_prefixes, &mut v);
    v
}

/// Canonical XML 1.0 (inclusive, without comments) of the subtree at `apex`, omitting the
/// subtree `exclude`.
pub fn inclusive(doc: &Document, apex: NodeId, exclude: Option<NodeId>, out: &mut impl Sink) {
    Canonicalizer::default().subtree(doc, apex, exclude, Method::Inclusive, out);
}

/// Exclusive c14n of the whole document: the document element plus the processing
/// instructions around it, each separated from it by a line feed as Canonical XML §2.1 requires.
pub fn exclusive_document(doc: &Document, out: &mut impl Sink) {
    Canonicalizer::default().document(doc, Method::Exclusive(&[]), out);
}

/// Canonical XML 1.0 of the whole document (see [`exclusive_document`]).
pub fn inclusive_document(doc: &Document, out: &mut impl Sink) {
    Canonicalizer::default().document(doc, Method::Inclusive, out);
}

fn needs_text_escape(raw: &[u8]) -> bool {
    // Text spans hold no `&` or `<` (those are references and markup); CDATA may.
    memchr::memchr3(b'>', b'\r', b'&', raw).is_some() || memchr::memchr(b'<', raw).is_some()
}

fn needs_attr_escape(raw: &[u8]) -> bool {
    raw.iter().any(|&b| matches!(b, b'&' | b'<' | b'"' | b'\t' | b'\n' | b'\r'))
}

impl Canonicalizer {
    /// Canonical form of the subtree at `apex` without the subtree `exclude` (the
    /// enveloped-signature transform), written to `out`.
    pub fn subtree(
        &mut self,
        doc: &Document,
        apex: NodeId,
        exclude: Option<NodeId>,
        method: Method<'_>,
        out: &mut impl Sink,
    ) {
        self.reset();
        self.load_ancestor_scope(doc, apex);
        self.walk(doc, apex, exclude, method, out);
        self.flush(out);
    }

    /// Canonical form of the whole document (see [`exclusive_document`]).
    pub fn document(&mut self, doc: &Document, method: Method<'_>, out: &mut impl Sink) {
        self.reset();
        let root = doc.root();
        let Some((start, end)) = doc.ev_range(root) else {
            return;
        };
        let events = doc.all_events();
        for ev in events.get(..start as usize).unwrap_or_default() {
            if let Ev::Pi(s) = *ev {
                self.pi(doc.span_bytes(s));
                self.out.extend_from_slice(b"\n");
            }
        }
        self.walk(doc, root, None, method, out);
        for ev in events.get(end as usize + 1..).unwrap_or_default() {
            if let Ev::Pi(s) = *ev {
                self.out.extend_from_slice(b"\n");
                self.pi(doc.span_bytes(s));
            }
        }
        self.flush(out);
    }

    fn reset(&mut self) {
        self.scope.clear();
        self.scope_marks.clear();
        self.rendered.clear();
        self.rendered_marks.clear();
        self.out.clear();
    }

    fn flush(&mut self, out: &mut impl Sink) {
        if !self.out.is_empty() {
            out.write(&self.out);
            self.out.clear();
        }
    }

    /// The bindings declared on the apex's ancestors, outermost first, as the scope the walk
    /// starts from.
    fn load_ancestor_scope(&mut self, doc: &Document, apex: NodeId) {
        let mut depth = 0usize;
        let mut cur = doc.parent(apex);
        while let Some(e) = cur {
            depth += 1;
            cur = doc.parent(e);
        }
        // Outermost first without allocating: walk up `depth - k` steps for each level k.
        for k in (0..depth).rev() {
            let mut e = doc.parent(apex);
            for _ in 0..k {
                e = e.and_then(|x| doc.parent(x));
            }
            if let Some(e) = e {
                for d in doc.nsdecls_of(e) {
                    self.scope.push((d.prefix, d.uri));
                }
            }
        }
    }

    fn walk(
        &mut self,
        doc: &Document,
        apex: NodeId,
        exclude: Option<NodeId>,
        method: Method<'_>,
        out: &mut impl Sink,
    ) {
        let events = doc.events_of(apex);
        let skip = exclude.and_then(|x| doc.ev_range(x));
        let base = doc.ev_range(apex).map_or(0, |r| r.0) as usize;
        let mut i = 0usize;
        while let Some(&ev) = events.get(i) {
            match ev {
                Ev::Start(n) => {
                    if let Some((s, e)) = skip {
                        if base + i == s as usize {
                            i += (e - s) as usize + 1;
                            continue;
                        }
                    }
                    let n = NodeId::from_raw(n);
                    self.start(doc, n, n == apex, method);
                }
                Ev::End(n) => self.end(doc, NodeId::from_raw(n)),
                // CDATA content is character data like any other; escaping makes it text.
                Ev::Text(s) | Ev::CData(s) => self.text(doc.span_bytes(s)),
                Ev::Ref(c) => {
                    let mut tmp = [0u8; 4];
                    escape::text(&mut self.out, c.encode_utf8(&mut tmp).as_bytes());
                }
                Ev::Pi(s) => self.pi(doc.span_bytes(s)),
            }
            if self.out.len() >= FLUSH_AT {
                self.flush(out);
            }
            i += 1;
        }
    }

    /// The in-scope binding of `prefix` (the empty default namespace is `None`).
    fn in_scope(&self, doc: &Document, prefix: &[u8]) -> Option<Binding> {
        self.scope.iter().rev().find(|(p, _)| doc.span_bytes(*p) == prefix).copied()
    }

    fn uri_bytes(doc: &Document, uri: Option<Str>) -> &[u8] {
        uri.map_or(&[][..], |u| doc.str_bytes(u))
    }

    /// Exclusive c14n: queues the namespace node for `prefix` unless an output ancestor
    /// already rendered the same binding.
    fn consider(&mut self, doc: &Document, prefix: &[u8]) {
        if self.pending.iter().any(|(p, _)| doc.span_bytes(*p) == prefix) {
            return;
        }
        let Some((p, uri)) = self.in_scope(doc, prefix) else {
            return;
        };
        let latest = self.rendered.iter().rev().find(|(q, _)| doc.span_bytes(*q) == prefix);
        // Nothing rendered counts as the empty default namespace, so `xmlns=""` is only said
        // to undo a non-empty default an output ancestor rendered.
        let latest_uri = latest.map_or(&[][..], |&(_, u)| Self::uri_bytes(doc, u));
        if latest_uri != Self::uri_bytes(doc, uri) {
            self.pending.push((p, uri));
        }
    }

    fn start(&mut self, doc: &Document, n: NodeId, is_apex: bool, method: Method<'_>) {
        self.scope_marks.push(self.scope.len() as u32);
        self.rendered_marks.push(self.rendered.len() as u32);
        self.pending.clear();
        match method {
            Method::Exclusive(prefixes) => {
                for d in doc.nsdecls_of(n) {
                    self.scope.push((d.prefix, d.uri));
                }
                self.consider(doc, doc.prefix_bytes(n));
                for i in doc.attr_indices(n) {
                    let Some(a) = doc.attr_at(i) else { continue };
                    if a.prefix_len == 0 {
                        continue;
                    }
                    let p = doc.span_bytes(a.name).get(..a.prefix_len as usize).unwrap_or_default();
                    if p != b"xml" {
                        self.consider(doc, p);
                    }
                }
                for p in prefixes {
                    let p: &[u8] = match *p {
                        "#default" => b"",
                        "xml" => continue,
                        other => other.as_bytes(),
                    };
                    self.consider(doc, p);
                }
            }
            Method::Inclusive => {
                if is_apex {
                    for d in doc.nsdecls_of(n) {
                        self.scope.push((d.prefix, d.uri));
                    }
                    // Every binding in scope, the innermost of each prefix; the empty default
                    // namespace is the absence of one.
                    for k in (0..self.scope.len()).rev() {
                        let Some(&(p, u)) = self.scope.get(k) else { continue };
                        let pb = doc.span_bytes(p);
                        let shadowed = self
                            .scope
                            .get(k + 1..)
                            .unwrap_or_default()
                            .iter()
                            .any(|(q, _)| doc.span_bytes(*q) == pb);
                        if !shadowed && u.is_some() && pb != b"xml" {
                            self.pending.push((p, u));
                        }
                    }
                } else {
                    // The parent is in the output and rendered (or inherited) its whole scope,
                    // so only this element's own declarations that change a binding show.
                    for d in doc.nsdecls_of(n) {
                        let pb = doc.span_bytes(d.prefix);
                        let before = self.in_scope(doc, pb).map_or(&[][..], |(_, u)| Self::uri_bytes(doc, u));
                        if before != Self::uri_bytes(doc, d.uri) && pb != b"xml" {
                            self.pending.push((d.prefix, d.uri));
                        }
                        self.scope.push((d.prefix, d.uri));
                    }
                }
            }
        }
        self.pending.sort_unstable_by(|a, b| doc.span_bytes(a.0).cmp(doc.span_bytes(b.0)));

        self.out.push(b'<');
        self.out.extend_from_slice(doc.name_bytes(n));
        for k in 0..self.pending.len() {
            let Some(&(p, u)) = self.pending.get(k) else { break };
            let pb = doc.span_bytes(p);
            if pb.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(pb);
                self.out.extend_from_slice(b"=\"");
            }
            let ub = Self::uri_bytes(doc, u);
            // Namespace URIs are escaped like attribute values (C14N 1.0 §2.3), which is
            // where libxml2 differs: it writes them unescaped.
            if needs_attr_escape(ub) {
                escape::attribute(&mut self.out, ub);
            } else {
                self.out.extend_from_slice(ub);
            }
            self.out.push(b'"');
            self.rendered.push((p, u));
        }

        self.order.clear();
        self.order.extend(doc.attr_indices(n));
        if is_apex && method == Method::Inclusive {
            self.inherit_xml_attributes(doc, n);
        }
        self.order.sort_unstable_by(|&a, &b| match (doc.attr_at(a), doc.attr_at(b)) {
            (Some(a), Some(b)) => {
                (doc.attr_ns(a), doc.attr_local(a)).cmp(&(doc.attr_ns(b), doc.attr_local(b)))
            }
            _ => std::cmp::Ordering::Equal,
        });
        for k in 0..self.order.len() {
            let Some(a) = self.order.get(k).and_then(|&i| doc.attr_at(i)) else { break };
            self.out.push(b' ');
            self.out.extend_from_slice(doc.span_bytes(a.name));
            self.out.extend_from_slice(b"=\"");
            let raw = doc.span_bytes(a.value);
            if needs_attr_escape(raw) {
                self.scratch.clear();
                // Values were validated while parsing.
                let _ = decode_attr_into(raw, &mut self.scratch);
                escape::attribute(&mut self.out, &self.scratch);
            } else {
                self.out.extend_from_slice(raw);
            }
            self.out.push(b'"');
        }
        self.out.push(b'>');
    }

    /// Canonical XML 1.0 §2.4: the apex of a document subset carries the `xml:*` attributes
    /// of its ancestors that it does not override, the nearest ancestor's value winning.
    fn inherit_xml_attributes(&mut self, doc: &Document, apex: NodeId) {
        let mut cur = doc.parent(apex);
        while let Some(e) = cur {
            for i in doc.attr_indices(e) {
                let Some(a) = doc.attr_at(i) else { continue };
                if a.prefix_len == 0
                    || doc.span_bytes(a.name).get(..a.prefix_len as usize) != Some(&b"xml"[..])
                {
                    continue;
                }
                let local = doc.attr_local(a);
                let present = self.order.iter().any(|&j| {
                    doc.attr_at(j)
                        .is_some_and(|b| doc.attr_ns(b) == doc.attr_ns(a) && doc.attr_local(b) == local)
                });
                if !present {
                    self.order.push(i);
                }
            }
            cur = doc.parent(e);
        }
    }

    fn end(&mut self, doc: &Document, n: NodeId) {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(doc.name_bytes(n));
        self.out.push(b'>');
        if let Some(m) = self.scope_marks.pop() {
            self.scope.truncate(m as usize);
        }
        if let Some(m) = self.rendered_marks.pop() {
            self.rendered.truncate(m as usize);
        }
    }

    fn text(&mut self, raw: &[u8]) {
        if !needs_text_escape(raw) {
            self.out.extend_from_slice(raw);
            return;
        }
        if raw.contains(&b'\r') {
            self.scratch.clear();
            normalize_newlines_into(raw, &mut self.scratch);
            escape::text(&mut self.out, &self.scratch);
        } else {
            escape::text(&mut self.out, raw);
        }
    }

    fn pi(&mut self, raw: &[u8]) {
        let inner = raw.get(2..raw.len().saturating_sub(2)).unwrap_or_default();
        let t_end =
            inner.iter().position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')).unwrap_or(inner.len());
        let (target, rest) = inner.split_at(t_end);
        let data_start =
            rest.iter().position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).unwrap_or(rest.len());
        let data = rest.get(data_start..).unwrap_or_default();
        self.out.extend_from_slice(b"<?");
        self.out.extend_from_slice(target);
        if !data.is_empty() {
            self.out.push(b' ');
            normalize_newlines_into(data, &mut self.out);
        }
        self.out.extend_from_slice(b"?>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::dsig::algorithm::DigestAlgorithm;
    use crate::xml::Limits;
    use base64::Engine as _;
    use bytes::Bytes;

    fn doc(s: &str) -> Document {
        Document::parse(Bytes::copy_from_slice(s.as_bytes()), &Limits::default()).unwrap()
    }

    fn whole(s: &str) -> String {
        let d = doc(s);
        let mut out = Vec::new();
        exclusive_document(&d, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn subtree(d: &Document, n: NodeId, prefixes: &[&str]) -> String {
        String::from_utf8(exclusive_to_vec(d, n, None, prefixes)).unwrap()
    }

    /// Canonical XML 1.0 §3.1, without comments; the DOCTYPE line is dropped because segl
    /// refuses DTDs outright.
    #[test]
    fn c14n_3_1_pis_comments_and_outside_of_document_element() {
        let input = "<?xml version=\"1.0\"?>\n\n<?xml-stylesheet   href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n\n<doc>Hello, world!<!-- Comment 1 --></doc>\n\n<?pi-without-data     ?>\n\n<!-- Comment 2 -->\n\n<!-- Comment 3 -->\n";
        let expected = "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!</doc>\n<?pi-without-data?>";
        assert_eq!(whole(input), expected);
    }

    /// Canonical XML 1.0 §3.2: whitespace in content is preserved exactly.
    #[test]
    fn c14n_3_2_whitespace_in_document_content() {
        let body = "<doc>\n   <clean>   </clean>\n   <dirty>   A   B   </dirty>\n   <mixed>\n      A\n      <clean>   </clean>\n      B\n      <dirty>   A   B   </dirty>\n      C\n   </mixed>\n</doc>";
        assert_eq!(whole(body), body);
    }

    /// Canonical XML 1.0 §3.3 under exclusive rules (no DTD defaults; namespace declarations
    /// only where visibly utilized, `xmlns=""` only to undo a rendered default).
    #[test]
    fn c14n_3_3_start_and_end_tags() {
        let input = r#"<doc>
   <e1   />
   <e2   ></e2>
   <e3   name = "elem3"   id="elem3"   />
   <e4   name="elem4"   id="elem4"   ></e4>
   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I'm"
      xmlns:b="http://www.ietf.org"
      xmlns:a="http://www.w3.org"
      xmlns="http://example.org"/>
   <e6 xmlns="" xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="" xmlns:a="http://www.w3.org">
            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>
         </e8>
      </e7>
   </e6>
</doc>"#;
        let expected = r#"<doc>
   <e1></e1>
   <e2></e2>
   <e3 id="elem3" name="elem3"></e3>
   <e4 id="elem4" name="elem4"></e4>
   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>
   <e6>
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="">
            <e9></e9>
         </e8>
      </e7>
   </e6>
</doc>"#;
        assert_eq!(whole(input), expected);
    }

    /// Canonical XML 1.0 §3.4; the normNames/normId attributes keep CDATA normalization since
    /// there is no DTD to declare them NMTOKENS/ID.
    #[test]
    fn c14n_3_4_character_modifications_and_references() {
        let input = r#"<doc>
   <text>First line&#x0d;&#10;Second line</text>
   <value>&#x32;</value>
   <compute><![CDATA[value>"0" && value<"10" ?"valid":"error"]]></compute>
   <compute expr='value>"0" &amp;&amp; value&lt;"10" ?"valid":"error"'>valid</compute>
   <norm attr=' &apos;   &#x20;&#13;&#xa;&#9;   &apos; '/>
   <normNames attr='   A   &#x20;&#13;&#xa;&#9;   B   '/>
</doc>"#;
        let expected = r#"<doc>
   <text>First line&#xD;
Second line</text>
   <value>2</value>
   <compute>value&gt;"0" &amp;&amp; value&lt;"10" ?"valid":"error"</compute>
   <compute expr="value>&quot;0&quot; &amp;&amp; value&lt;&quot;10&quot; ?&quot;valid&quot;:&quot;error&quot;">valid</compute>
   <norm attr=" '    &#xD;&#xA;&#x9;   ' "></norm>
   <normNames attr="   A    &#xD;&#xA;&#x9;   B   "></normNames>
</doc>"#;
        assert_eq!(whole(input), expected);
    }

    /// Canonical XML 1.0 §3.6: character references come out as UTF-8.
    #[test]
    fn c14n_3_6_utf8() {
        assert_eq!(whole("<doc>&#169;</doc>"), "<doc>\u{a9}</doc>");
    }

    #[test]
    fn literal_line_endings_are_normalized() {
        assert_eq!(whole("<a b=\"x\r\ny\">1\r\n2\r3<![CDATA[4\r\n]]></a>"), "<a b=\"x y\">1\n2\n34\n</a>");
        assert_eq!(whole("<a>&#13;&gt;</a>"), "<a>&#xD;&gt;</a>");
    }

    /// The two documents of Exclusive XML Canonicalization §2.2: the `n1:elem2` subtree has the
    /// same exclusive canonical form in both, although its inclusive forms differ.
    #[test]
    fn exc_c14n_2_2_subtree_independent_of_context() {
        let d1 = doc(
            r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#,
        );
        let d2 = doc(
            r#"<n2:pdu xmlns:n1="http://example.com" xmlns:n2="http://foo.example" xml:lang="fr" xml:space="retain"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n2:pdu>"#,
        );
        let expected = r#"<n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>"#;
        let e1 = d1.children(d1.root()).next().unwrap();
        let e2 = d2.children(d2.root()).next().unwrap();
        assert_eq!(subtree(&d1, e1, &[]), expected);
        assert_eq!(subtree(&d2, e2, &[]), expected);
    }

    fn inclusive_subtree(d: &Document, n: NodeId) -> String {
        let mut out = Vec::new();
        inclusive(d, n, None, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn inclusive_whole(s: &str) -> String {
        let mut out = Vec::new();
        inclusive_document(&doc(s), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Exclusive XML Canonicalization §2.2 gives the inclusive (Canonical XML 1.0) forms of
    /// the same subtree in its two documents: they differ, by the inherited namespaces and,
    /// in the second, the inherited `xml:space` (C14N 1.0 §2.4).
    #[test]
    fn exc_c14n_2_2_inclusive_forms_depend_on_context() {
        let d1 = doc(
            r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#,
        );
        let d2 = doc(
            r#"<n2:pdu xmlns:n1="http://example.com" xmlns:n2="http://foo.example" xml:lang="fr" xml:space="retain"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n2:pdu>"#,
        );
        let e1 = d1.children(d1.root()).next().unwrap();
        let e2 = d2.children(d2.root()).next().unwrap();
        assert_eq!(
            inclusive_subtree(&d1, e1),
            r#"<n1:elem2 xmlns:n0="foo:bar" xmlns:n1="http://example.net" xmlns:n3="ftp://example.org" xml:lang="en"><n3:stuff></n3:stuff></n1:elem2>"#
        );
        assert_eq!(
            inclusive_subtree(&d2, e2),
            r#"<n1:elem2 xmlns:n1="http://example.net" xmlns:n2="http://foo.example" xml:lang="en" xml:space="retain"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2>"#
        );
    }

    /// Canonical XML 1.0 §3.1–§3.4 and §3.6 under inclusive rules (DTD-dependent parts
    /// removed, as segl refuses DTDs): §3.3 keeps redundant-free namespace declarations where
    /// the exclusive form drops unused ones.
    #[test]
    fn c14n_3_x_inclusive() {
        let input = "<?xml version=\"1.0\"?>\n\n<?xml-stylesheet   href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n\n<doc>Hello, world!<!-- Comment 1 --></doc>\n\n<?pi-without-data     ?>\n\n<!-- Comment 2 -->\n\n<!-- Comment 3 -->\n";
        assert_eq!(
            inclusive_whole(input),
            "<?xml-stylesheet href=\"doc.xsl\"\n   type=\"text/xsl\"   ?>\n<doc>Hello, world!</doc>\n<?pi-without-data?>"
        );
        let input = r#"<doc>
   <e5 a:attr="out" b:attr="sorted" attr2="all" attr="I'm"
      xmlns:b="http://www.ietf.org"
      xmlns:a="http://www.w3.org"
      xmlns="http://example.org"/>
   <e6 xmlns="" xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="" xmlns:a="http://www.w3.org">
            <e9 xmlns="" xmlns:a="http://www.ietf.org"/>
         </e8>
      </e7>
   </e6>
</doc>"#;
        let expected = r#"<doc>
   <e5 xmlns="http://example.org" xmlns:a="http://www.w3.org" xmlns:b="http://www.ietf.org" attr="I'm" attr2="all" b:attr="sorted" a:attr="out"></e5>
   <e6 xmlns:a="http://www.w3.org">
      <e7 xmlns="http://www.ietf.org">
         <e8 xmlns="">
            <e9 xmlns:a="http://www.ietf.org"></e9>
         </e8>
      </e7>
   </e6>
</doc>"#;
        assert_eq!(inclusive_whole(input), expected);
        assert_eq!(
            inclusive_whole("<doc>&#169;&#x0d;<![CDATA[<&>]]></doc>"),
            "<doc>\u{a9}&#xD;&lt;&amp;&gt;</doc>"
        );
    }

    #[test]
    fn inherited_namespaces_are_rendered_at_the_apex_and_not_repeated() {
        let d = doc(
            r#"<s:E xmlns:s="urn:s" xmlns:p="urn:p" xmlns:unused="urn:u"><p:a><p:b p:x="1"/></p:a></s:E>"#,
        );
        let a = d.children(d.root()).next().unwrap();
        assert_eq!(subtree(&d, a, &[]), r#"<p:a xmlns:p="urn:p"><p:b p:x="1"></p:b></p:a>"#);
        assert_eq!(
            subtree(&d, d.root(), &[]),
            r#"<s:E xmlns:s="urn:s"><p:a xmlns:p="urn:p"><p:b p:x="1"></p:b></p:a></s:E>"#
        );
    }

    #[test]
    fn redeclaration_with_another_value_is_rendered() {
        let d = doc(r#"<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:2"><p:c xmlns:p="urn:2"/></p:b></p:a>"#);
        assert_eq!(
            subtree(&d, d.root(), &[]),
            r#"<p:a xmlns:p="urn:1"><p:b xmlns:p="urn:2"><p:c></p:c></p:b></p:a>"#
        );
    }

    #[test]
    fn default_namespace_and_undeclaration() {
        let d = doc(r#"<a xmlns="urn:d"><b xmlns=""><c/></b><d/></a>"#);
        assert_eq!(subtree(&d, d.root(), &[]), r#"<a xmlns="urn:d"><b xmlns=""><c></c></b><d></d></a>"#);
        // As apex, an element without a default namespace needs no undeclaration.
        let b = d.children(d.root()).next().unwrap();
        assert_eq!(subtree(&d, b, &[]), "<b><c></c></b>");
        // A prefixed element does not utilize the default namespace.
        let d = doc(r#"<a xmlns="urn:d" xmlns:p="urn:p"><p:b><c/></p:b></a>"#);
        let b = d.children(d.root()).next().unwrap();
        assert_eq!(subtree(&d, b, &[]), r#"<p:b xmlns:p="urn:p"><c xmlns="urn:d"></c></p:b>"#);
    }

    #[test]
    fn prefixes_in_attribute_values_are_not_visibly_utilized() {
        let d = doc(
            r#"<r xmlns:sosi="urn:s" xmlns:xsi="urn:xsi"><a Name="sosi:IDCardID" xsi:type="sosi:T"/></r>"#,
        );
        let a = d.children(d.root()).next().unwrap();
        assert_eq!(
            subtree(&d, a, &[]),
            r#"<a xmlns:xsi="urn:xsi" Name="sosi:IDCardID" xsi:type="sosi:T"></a>"#
        );
    }

    #[test]
    fn attributes_sort_by_namespace_uri_then_local_name() {
        let d = doc(r#"<e xmlns:z="urn:a" xmlns:a="urn:b" a:k="1" z:k="2" b="3" a="4" xml:lang="da"/>"#);
        assert_eq!(
            subtree(&d, d.root(), &[]),
            r#"<e xmlns:a="urn:b" xmlns:z="urn:a" a="4" b="3" xml:lang="da" z:k="2" a:k="1"></e>"#
        );
    }

    #[test]
    fn inclusive_prefix_list_renders_in_scope_namespaces() {
        let d = doc(
            r#"<n0:local xmlns:n0="foo:bar" xmlns="urn:d" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net"><n3:stuff/><x/></n1:elem2></n0:local>"#,
        );
        let e = d.children(d.root()).next().unwrap();
        assert_eq!(
            subtree(&d, e, &["n0", "#default", "missing"]),
            r#"<n1:elem2 xmlns="urn:d" xmlns:n0="foo:bar" xmlns:n1="http://example.net"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff><x></x></n1:elem2>"#
        );
        assert_eq!(
            subtree(&d, e, &[]),
            r#"<n1:elem2 xmlns:n1="http://example.net"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff><x xmlns="urn:d"></x></n1:elem2>"#
        );
    }

    #[test]
    fn comments_and_excluded_subtree_are_omitted_pis_kept() {
        let d = doc("<a>1<!-- c -->2<sig><x/></sig>3<?p  d ?></a>");
        let sig = d.children(d.root()).next().unwrap();
        let out = exclusive_to_vec(&d, d.root(), Some(sig), &[]);
        assert_eq!(out, b"<a>123<?p d ?></a>");
    }

    #[test]
    fn streams_into_a_hasher() {
        let d = doc("<a>x</a>");
        let mut h = DigestAlgorithm::Sha1.hasher();
        exclusive(&d, d.root(), None, &[], &mut h);
        assert_eq!(h.finish(), DigestAlgorithm::Sha1.digest(b"<a>x</a>"));
    }

    /// The self-signed card of `unsealed-sts-request-1.compact.xml`: its DigestValue is the
    /// SHA-1 of the card's exclusive canonical form without the Signature.
    #[test]
    fn id_card_digest_matches_reference_vector() {
        let dir = std::env::var_os("SEGL_SPEC_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/spec"))
        });
        let path = dir.join("examples/unsealed-sts-request-1.compact.xml");
        let Ok(bytes) = std::fs::read(&path) else {
            println!("skipping: {} not readable", path.display());
            return;
        };
        let d = Document::parse(Bytes::from(bytes), &Limits::default()).unwrap();
        let card = d.by_id("IDCard").unwrap();
        let sig = d.child(card, crate::xml::dsig::algorithm::DSIG_NS, "Signature").unwrap();
        assert_eq!(d.parent(sig), Some(card));
        let mut h = DigestAlgorithm::Sha1.hasher();
        exclusive(&d, card, Some(sig), &[], &mut h);
        let got = base64::engine::general_purpose::STANDARD.encode(h.finish());
        assert_eq!(got, "fp4BunSUnP2Bxf10kOP6PRiw7Dw=");
    }
}
