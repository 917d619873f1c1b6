//! Exclusive XML Canonicalization 1.0 (without comments), streamed from the span index.
//!
//! The canonical bytes are produced in one linear walk over the document's event list and
//! written straight into a [`Sink`] (normally a hasher). Spans that need no normalization or
//! escaping are copied as they are; everything else goes through two scratch buffers that are
//! reused for the whole run, so the cost per node is a few comparisons and no allocation.

use crate::xml::dsig::algorithm::Hasher;
use crate::xml::escape;
use crate::xml::parse::{decode_attr_into, normalize_newlines_into, Document, Ev, NodeId};

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
    let mut c = Canon::new(doc, inclusive_prefixes, out);
    c.subtree(apex, exclude);
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

/// Exclusive c14n of the whole document: the document element plus the processing
/// instructions around it, each separated from it by a line feed as Canonical XML §2.1 requires.
pub fn exclusive_document(doc: &Document, out: &mut impl Sink) {
    let root = doc.root();
    let Some((start, end)) = doc.ev_range(root) else {
        return;
    };
    let events = doc.all_events();
    let mut c = Canon::new(doc, &[], out);
    for ev in events.get(..start as usize).unwrap_or_default() {
        if let Ev::Pi(s) = *ev {
            c.pi(doc.span_bytes(s));
            c.out.write(b"\n");
        }
    }
    c.subtree(root, None);
    for ev in events.get(end as usize + 1..).unwrap_or_default() {
        if let Ev::Pi(s) = *ev {
            c.out.write(b"\n");
            c.pi(doc.span_bytes(s));
        }
    }
}

struct Canon<'d, 'o, S: Sink> {
    doc: &'d Document,
    out: &'o mut S,
    inclusive: &'o [&'o str],
    /// Namespace declarations rendered by output ancestors (prefix, uri), innermost last.
    rendered: Vec<(&'d [u8], &'d [u8])>,
    /// Length of `rendered` before each open element.
    marks: Vec<usize>,
    pending: Vec<(&'d [u8], &'d [u8])>,
    order: Vec<usize>,
    scratch: Vec<u8>,
    escaped: Vec<u8>,
}

fn needs_text_escape(raw: &[u8]) -> bool {
    raw.iter().any(|&b| matches!(b, b'&' | b'<' | b'>' | b'\r'))
}

fn needs_attr_escape(raw: &[u8]) -> bool {
    raw.iter()
        .any(|&b| matches!(b, b'&' | b'<' | b'"' | b'\t' | b'\n' | b'\r'))
}

impl<'d, 'o, S: Sink> Canon<'d, 'o, S> {
    fn new(doc: &'d Document, inclusive: &'o [&'o str], out: &'o mut S) -> Self {
        Self {
            doc,
            out,
            inclusive,
            rendered: Vec::new(),
            marks: Vec::new(),
            pending: Vec::new(),
            order: Vec::new(),
            scratch: Vec::new(),
            escaped: Vec::new(),
        }
    }

    fn subtree(&mut self, apex: NodeId, exclude: Option<NodeId>) {
        let doc = self.doc;
        let events = doc.events_of(apex);
        let skip = exclude.and_then(|x| doc.ev_range(x));
        let base = doc.ev_range(apex).map_or(0, |r| r.0);
        let mut i = 0usize;
        while let Some(&ev) = events.get(i) {
            match ev {
                Ev::Start(n) => {
                    if let Some((s, e)) = skip {
                        if base as usize + i == s as usize {
                            i += (e - s) as usize + 1;
                            continue;
                        }
                    }
                    self.start(NodeId::from_raw(n));
                }
                Ev::End(n) => self.end(NodeId::from_raw(n)),
                Ev::Text(s) => self.text(doc.span_bytes(s), false),
                Ev::CData(s) => self.text(doc.span_bytes(s), true),
                Ev::Ref(c) => {
                    let mut tmp = [0u8; 4];
                    self.escaped.clear();
                    escape::text(&mut self.escaped, c.encode_utf8(&mut tmp).as_bytes());
                    self.out.write(&self.escaped);
                }
                Ev::Pi(s) => self.pi(doc.span_bytes(s)),
            }
            i += 1;
        }
    }

    fn latest(&self, prefix: &[u8]) -> Option<&'d [u8]> {
        self.rendered
            .iter()
            .rev()
            .find(|(p, _)| *p == prefix)
            .map(|&(_, u)| u)
    }

    /// Queues the namespace node for `prefix` unless an output ancestor already rendered it.
    fn consider(&mut self, n: NodeId, prefix: &'d [u8]) {
        if self.pending.iter().any(|(p, _)| *p == prefix) {
            return;
        }
        let uri = self.doc.lookup_ns(n, prefix);
        if prefix.is_empty() {
            // An empty default namespace is only worth saying (xmlns="") when an output
            // ancestor rendered a non-empty one.
            let uri = uri.unwrap_or_default();
            if self.latest(prefix).unwrap_or_default() != uri {
                self.pending.push((prefix, uri));
            }
        } else if let Some(uri) = uri {
            if self.latest(prefix) != Some(uri) {
                self.pending.push((prefix, uri));
            }
        }
    }

    fn start(&mut self, n: NodeId) {
        let doc = self.doc;
        self.marks.push(self.rendered.len());
        self.pending.clear();
        self.consider(n, doc.prefix_bytes(n));
        let attrs = doc.attrs_of(n);
        for a in attrs {
            if a.prefix_len == 0 {
                continue;
            }
            let p = doc
                .span_bytes(a.name)
                .get(..a.prefix_len as usize)
                .unwrap_or_default();
            if p != b"xml" {
                self.consider(n, p);
            }
        }
        for p in self.inclusive {
            let p: &'d [u8] = match *p {
                "#default" => b"",
                // Prefixes from the list are not tied to the document's lifetime; only
                // in-scope ones can be rendered, so look them up by the document's own copy.
                other => match doc.nsdecls_in_scope(n).find(|d| d == &other.as_bytes()) {
                    Some(d) => d,
                    None => continue,
                },
            };
            self.consider(n, p);
        }
        self.pending.sort_unstable_by(|a, b| a.0.cmp(b.0));

        self.out.write(b"<");
        self.out.write(doc.name_bytes(n));
        for i in 0..self.pending.len() {
            let Some(&(p, u)) = self.pending.get(i) else {
                break;
            };
            if p.is_empty() {
                self.out.write(b" xmlns=\"");
            } else {
                self.out.write(b" xmlns:");
                self.out.write(p);
                self.out.write(b"=\"");
            }
            if needs_attr_escape(u) {
                self.escaped.clear();
                escape::attribute(&mut self.escaped, u);
                self.out.write(&self.escaped);
            } else {
                self.out.write(u);
            }
            self.out.write(b"\"");
            self.rendered.push((p, u));
        }

        self.order.clear();
        self.order.extend(0..attrs.len());
        self.order
            .sort_unstable_by(|&a, &b| match (attrs.get(a), attrs.get(b)) {
                (Some(a), Some(b)) => {
                    (doc.attr_ns(a), doc.attr_local(a)).cmp(&(doc.attr_ns(b), doc.attr_local(b)))
                }
                _ => std::cmp::Ordering::Equal,
            });
        for i in 0..self.order.len() {
            let Some(a) = self.order.get(i).and_then(|&k| attrs.get(k)) else {
                break;
            };
            self.out.write(b" ");
            self.out.write(doc.span_bytes(a.name));
            self.out.write(b"=\"");
            let raw = doc.span_bytes(a.value);
            if needs_attr_escape(raw) {
                self.scratch.clear();
                // Values were validated while parsing.
                let _ = decode_attr_into(raw, &mut self.scratch);
                self.escaped.clear();
                escape::attribute(&mut self.escaped, &self.scratch);
                self.out.write(&self.escaped);
            } else {
                self.out.write(raw);
            }
            self.out.write(b"\"");
        }
        self.out.write(b">");
    }

    fn end(&mut self, n: NodeId) {
        self.out.write(b"</");
        self.out.write(self.doc.name_bytes(n));
        self.out.write(b">");
        if let Some(m) = self.marks.pop() {
            self.rendered.truncate(m);
        }
    }

    fn text(&mut self, raw: &[u8], cdata: bool) {
        let _ = cdata;
        if !needs_text_escape(raw) {
            self.out.write(raw);
            return;
        }
        self.scratch.clear();
        normalize_newlines_into(raw, &mut self.scratch);
        self.escaped.clear();
        escape::text(&mut self.escaped, &self.scratch);
        self.out.write(&self.escaped);
    }

    fn pi(&mut self, raw: &[u8]) {
        let inner = raw.get(2..raw.len().saturating_sub(2)).unwrap_or_default();
        let t_end = inner
            .iter()
            .position(|&b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(inner.len());
        let (target, rest) = inner.split_at(t_end);
        let data_start = rest
            .iter()
            .position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            .unwrap_or(rest.len());
        let data = rest.get(data_start..).unwrap_or_default();
        self.out.write(b"<?");
        self.out.write(target);
        if !data.is_empty() {
            self.out.write(b" ");
            self.scratch.clear();
            normalize_newlines_into(data, &mut self.scratch);
            self.out.write(&self.scratch);
        }
        self.out.write(b"?>");
    }
}
