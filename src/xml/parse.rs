//! The span-indexed XML parser.
//!
//! The document is kept as the received `Bytes` and an index of byte spans into it, so signed
//! content can be canonicalized and re-embedded byte-exactly and no per-node `String` is built.
//! Only what a SOAP/SAML security stack needs is accepted: UTF-8, no DTD, the five predefined
//! entities and character references, namespace-well-formed names.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use quick_xml::events::attributes::Attributes;
use quick_xml::parser::{ElementParser, Parser as _};

use crate::xml::dsig::algorithm::DSIG_NS;

/// The wsu namespace, whose `Id` attribute is an ID attribute.
pub const WSU_NS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// The namespace the `xml` prefix is permanently bound to.
pub const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of namespace declarations themselves; it may never be declared.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

const NONE: u32 = u32::MAX;

/// The arena always starts with the `xml` namespace so `xml:*` attributes can point at it.
const XML_NS_STR: Str = Str { start: 0, end: XML_NS.len() as u32, arena: true };

/// Resource limits applied while parsing untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum element nesting depth (the document element has depth 1).
    pub max_depth: usize,
    /// Maximum number of attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// Maximum number of indexed nodes (elements, text pieces, references, CDATA, PIs, comments).
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: 64, max_attributes: 64, max_nodes: 100_000 }
    }
}

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML (or not namespace-well-formed).
    #[error("malformed XML at byte {offset}: {reason}")]
    Malformed {
        /// Byte offset where the problem was detected.
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// A DOCTYPE declaration was present; DTDs are never processed.
    #[error("DOCTYPE declarations are not allowed")]
    Doctype,
    /// An entity reference other than the five predefined ones.
    #[error("unknown or invalid entity reference &{name};")]
    UnknownEntity {
        /// The entity name as written.
        name: String,
    },
    /// Nesting deeper than [`Limits::max_depth`].
    #[error("element nesting exceeds the limit of {limit}")]
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// More attributes on one element than [`Limits::max_attributes`].
    #[error("an element has more than {limit} attributes")]
    TooManyAttributes {
        /// The configured limit.
        limit: usize,
    },
    /// More nodes than [`Limits::max_nodes`].
    #[error("document has more than {limit} nodes")]
    TooManyNodes {
        /// The configured limit.
        limit: usize,
    },
    /// Two ID attributes (`id`, `ID`, `Id`, `wsu:Id`) share a value: a signature-wrapping vector.
    #[error("duplicate ID value {id:?}")]
    DuplicateId {
        /// The duplicated value.
        id: String,
    },
    /// A prefix used on an element or attribute is not declared.
    #[error("undeclared namespace prefix {prefix:?}")]
    UndeclaredPrefix {
        /// The prefix.
        prefix: String,
    },
    /// The input is not valid UTF-8.
    #[error("document is not valid UTF-8")]
    InvalidUtf8,
    /// The XML declaration names an encoding other than UTF-8.
    #[error("unsupported document encoding {encoding:?}")]
    UnsupportedEncoding {
        /// The declared encoding.
        encoding: String,
    },
}

fn malformed(offset: usize, reason: impl Into<String>) -> XmlError {
    XmlError::Malformed { offset, reason: reason.into() }
}

/// A handle to an element of a [`Document`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(u32);

impl NodeId {
    fn ix(self) -> usize {
        self.0 as usize
    }

    pub(crate) fn from_raw(n: u32) -> Self {
        Self(n)
    }
}

/// A string stored either in the input buffer or, when it had to be decoded, in the arena.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Str {
    start: u32,
    end: u32,
    arena: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug)]
struct Elem {
    /// Whole element, start tag to end of end tag.
    span: Span,
    /// Qualified name.
    name: Span,
    /// Length of the prefix (0 when unprefixed).
    prefix_len: u32,
    ns: Option<Str>,
    parent: u32,
    first_child: u32,
    last_child: u32,
    next_sibling: u32,
    /// One past the last descendant's id (ids are assigned in document order).
    subtree_end: u32,
    attrs: (u32, u32),
    nsdecls: (u32, u32),
    ev_start: u32,
    ev_end: u32,
}

#[derive(Debug)]
pub(crate) struct Attr {
    pub(crate) name: Span,
    pub(crate) prefix_len: u32,
    /// Raw value between the quotes (not yet normalized or decoded).
    pub(crate) value: Span,
    pub(crate) ns: Option<Str>,
}

#[derive(Debug)]
pub(crate) struct NsDecl {
    /// The declared prefix; empty for the default namespace.
    pub(crate) prefix: Span,
    /// `None` for `xmlns=""`.
    pub(crate) uri: Option<Str>,
}

/// One item of the document in order; c14n is a single linear walk over these.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ev {
    Start(u32),
    End(u32),
    /// Raw character data (may contain CR and `>`, never `&` or `<`).
    Text(Span),
    /// A decoded character or predefined entity reference.
    Ref(char),
    /// Raw CDATA content (between `<![CDATA[` and `]]>`).
    CData(Span),
    /// A whole processing instruction `<?...?>`.
    Pi(Span),
}

/// A parsed XML document: the input buffer plus a span index over it.
#[derive(Debug)]
pub struct Document {
    buf: Bytes,
    arena: String,
    elems: Vec<Elem>,
    attrs: Vec<Attr>,
    nsdecls: Vec<NsDecl>,
    events: Vec<Ev>,
    /// ID values sorted by value.
    ids: Vec<(Str, u32)>,
}

/// Storage reused from one parse to the next, so that a core parsing request after request
/// allocates nothing once the buffers have grown to the size of its largest request.
///
/// Hand a finished document back with [`ParseArena::recycle`]; a document that is simply
/// dropped takes its buffers with it and the next parse grows new ones.
#[derive(Debug, Default)]
pub struct ParseArena {
    index: Option<Index>,
    scratch: BuilderScratch,
}

/// The parts of a [`Document`] besides its buffer.
#[derive(Debug, Default)]
struct Index {
    arena: String,
    elems: Vec<Elem>,
    attrs: Vec<Attr>,
    nsdecls: Vec<NsDecl>,
    events: Vec<Ev>,
    ids: Vec<(Str, u32)>,
}

/// What the builder needs only while parsing.
#[derive(Debug, Default)]
struct BuilderScratch {
    stack: Vec<u32>,
    scope: Vec<(Span, Option<Str>)>,
    scope_marks: Vec<usize>,
    scratch: Vec<u8>,
}

impl ParseArena {
    /// Takes back the storage of a document that is no longer needed.
    pub fn recycle(&mut self, doc: Document) {
        let Document { arena, elems, attrs, nsdecls, events, ids, .. } = doc;
        self.index = Some(Index { arena, elems, attrs, nsdecls, events, ids });
    }

    fn take_index(&mut self) -> Index {
        let mut index = self.index.take().unwrap_or_default();
        index.arena.clear();
        index.arena.push_str(XML_NS);
        index.elems.clear();
        index.attrs.clear();
        index.nsdecls.clear();
        index.events.clear();
        index.ids.clear();
        index
    }
}

fn is_xml_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

/// XML 1.0 (fifth edition) NameStartChar, without the colon.
fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}'
        | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

/// XML 1.0 (fifth edition) NameChar, without the colon.
fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Whether `b` is a non-colonized XML name (Namespaces in XML 1.0, NCName).
pub(crate) fn is_ncname(b: &[u8]) -> bool {
    let ascii_name_char = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    match b.first() {
        Some(&c) if (c.is_ascii_alphabetic() || c == b'_') && b.iter().all(ascii_name_char) => return true,
        Some(&c) if c.is_ascii() && !c.is_ascii_alphabetic() && c != b'_' => return false,
        _ => {}
    }
    let Ok(s) = std::str::from_utf8(b) else { return false };
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Offset of the first character outside XML 1.0's Char production: C0 controls other than
/// TAB, LF and CR, and U+FFFE/U+FFFF (the input is known to be UTF-8, so no surrogates).
fn first_non_xml_char(buf: &[u8]) -> Option<usize> {
    let suspicious = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF;
    // Chunks without an early exit let the compiler vectorize the common, clean case.
    let clean = buf.chunks(64).all(|c| !c.iter().fold(false, |acc, &b| acc | suspicious(b)));
    if clean {
        return None;
    }
    buf.iter().enumerate().position(|(i, &b)| {
        (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || (b == 0xEF && buf.get(i + 1) == Some(&0xBF) && matches!(buf.get(i + 2), Some(0xBE | 0xBF)))
    })
}

/// Resolves the name inside `&name;` to its character (predefined entities and char refs only).
pub(crate) fn decode_ref(name: &[u8]) -> Option<char> {
    let c = match name {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"apos" => '\'',
        b"quot" => '"',
        [b'#', b'x', hex @ ..] => parse_num(hex, 16)?,
        [b'#', dec @ ..] => parse_num(dec, 10)?,
        _ => return None,
    };
    is_xml_char(c).then_some(c)
}

fn parse_num(digits: &[u8], radix: u32) -> Option<char> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        v = v.checked_mul(radix)?.checked_add((d as char).to_digit(radix)?)?;
    }
    char::from_u32(v)
}

fn unknown_entity(name: &[u8]) -> XmlError {
    XmlError::UnknownEntity { name: String::from_utf8_lossy(name).into_owned() }
}

/// Whether a raw attribute value must be normalized/decoded before use.
pub(crate) fn attr_needs_decoding(raw: &[u8]) -> bool {
    raw.iter().any(|&b| matches!(b, b'&' | b'\t' | b'\n' | b'\r'))
}

/// Appends the normalized, decoded value of a raw attribute value (XML 1.0 §3.3.3, CDATA type).
pub(crate) fn decode_attr_into(raw: &[u8], out: &mut Vec<u8>) -> Result<(), XmlError> {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'\r' => {
                out.push(b' ');
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' | b'\t' => out.push(b' '),
            b'&' => {
                let rest = raw.get(i + 1..).unwrap_or_default();
                let semi = rest.iter().position(|&c| c == b';').ok_or_else(|| unknown_entity(rest))?;
                let name = rest.get(..semi).unwrap_or_default();
                let c = decode_ref(name).ok_or_else(|| unknown_entity(name))?;
                let mut tmp = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                i += semi + 1;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    Ok(())
}

/// Appends `raw` with CRLF and lone CR turned into LF (XML 1.0 §2.11).
pub(crate) fn normalize_newlines_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\r' {
            out.push(b'\n');
            if raw.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
}

fn offset_in(base: &[u8], part: &[u8]) -> Option<usize> {
    let off = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (off.checked_add(part.len())? <= base.len()).then_some(off)
}

fn span(start: usize, end: usize) -> Span {
    // Callers guarantee the buffer is shorter than u32::MAX.
    Span { start: start as u32, end: end as u32 }
}

fn ns_eq(a: &str, b: &[u8]) -> bool {
    a.as_bytes() == b
}

struct Builder<'a> {
    buf: &'a [u8],
    /// The same buffer as text (checked once), for slicing tag contents without rechecking.
    text: &'a str,
    limits: &'a Limits,
    arena: String,
    elems: Vec<Elem>,
    attrs: Vec<Attr>,
    nsdecls: Vec<NsDecl>,
    events: Vec<Ev>,
    ids: Vec<(Str, u32)>,
    /// Open elements.
    stack: Vec<u32>,
    /// In-scope namespace bindings (prefix, uri) and the binding count at each open element.
    scope: Vec<(Span, Option<Str>)>,
    scope_marks: Vec<usize>,
    nodes: usize,
    root: Option<u32>,
    root_closed: bool,
    scratch: Vec<u8>,
}

impl<'a> Builder<'a> {
    fn count_node(&mut self) -> Result<(), XmlError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(XmlError::TooManyNodes { limit: self.limits.max_nodes });
        }
        Ok(())
    }

    fn bytes(&self, s: Span) -> &'a [u8] {
        self.buf.get(s.range()).unwrap_or_default()
    }

    fn str_bytes(&self, s: Str) -> &[u8] {
        let r = s.start as usize..s.end as usize;
        if s.arena {
            self.arena.as_bytes().get(r).unwrap_or_default()
        } else {
            self.buf.get(r).unwrap_or_default()
        }
    }

    /// Stores an attribute value, decoding into the arena only when the raw form differs.
    fn store_value(&mut self, raw: Span) -> Result<Str, XmlError> {
        let bytes = self.bytes(raw);
        if !attr_needs_decoding(bytes) {
            return Ok(Str { start: raw.start, end: raw.end, arena: false });
        }
        self.scratch.clear();
        decode_attr_into(bytes, &mut self.scratch)?;
        let decoded = std::str::from_utf8(&self.scratch).map_err(|_| XmlError::InvalidUtf8)?;
        let start = self.arena.len();
        self.arena.push_str(decoded);
        let end = self.arena.len();
        if end > u32::MAX as usize {
            return Err(malformed(raw.start as usize, "document too large"));
        }
        Ok(Str { start: start as u32, end: end as u32, arena: true })
    }

    fn resolve(&self, prefix: &[u8], at: usize) -> Result<Option<Str>, XmlError> {
        if prefix == b"xml" {
            return Ok(None);
        }
        for &(p, uri) in self.scope.iter().rev() {
            if self.bytes(p) == prefix {
                return match uri {
                    Some(u) => Ok(Some(u)),
                    None if prefix.is_empty() => Ok(None),
                    None => Err(malformed(at, "prefix undeclared with an empty value")),
                };
            }
        }
        if prefix.is_empty() {
            Ok(None)
        } else {
            Err(XmlError::UndeclaredPrefix { prefix: String::from_utf8_lossy(prefix).into_owned() })
        }
    }

    fn split_qname(&self, name: Span, at: usize) -> Result<u32, XmlError> {
        let b = self.bytes(name);
        let (prefix, local) = match b.iter().position(|&c| c == b':') {
            None => (&[][..], b),
            Some(p) => (b.get(..p).unwrap_or_default(), b.get(p + 1..).unwrap_or_default()),
        };
        let prefix_ok = prefix.is_empty() && !b.starts_with(b":") || is_ncname(prefix);
        if !prefix_ok || !is_ncname(local) {
            return Err(malformed(at, format!("invalid qualified name {:?}", String::from_utf8_lossy(b))));
        }
        Ok(prefix.len() as u32)
    }

    /// A start tag (or empty-element tag) at `pos`: `content` is what lies between `<` and `>`
    /// (without the `/` of an empty element), its first `name_len` bytes the name.
    fn start(
        &mut self,
        content: &'a str,
        name_len: usize,
        pos: usize,
        empty: bool,
        end_pos: usize,
    ) -> Result<(), XmlError> {
        if self.root_closed || (self.root.is_some() && self.stack.is_empty()) {
            return Err(malformed(pos, "more than one document element"));
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(XmlError::TooDeep { limit: self.limits.max_depth });
        }
        self.count_node()?;
        let id = self.elems.len() as u32;
        let name = span(pos + 1, pos + 1 + name_len);
        let prefix_len = self.split_qname(name, pos)?;

        let attr_start = self.attrs.len() as u32;
        let decl_start = self.nsdecls.len() as u32;
        self.scope_marks.push(self.scope.len());
        let mut count = 0usize;
        let mut attributes = Attributes::new(content, name_len);
        // quick-xml's own duplicate check allocates per element; ours below does not.
        attributes.with_checks(false);
        for a in attributes {
            let a = a.map_err(|err| malformed(pos, err.to_string()))?;
            count += 1;
            if count > self.limits.max_attributes {
                return Err(XmlError::TooManyAttributes { limit: self.limits.max_attributes });
            }
            let key = a.key.as_ref();
            let value: &[u8] = a.value.as_ref();
            let k_off =
                offset_in(self.buf, key).ok_or_else(|| malformed(pos, "attribute name outside buffer"))?;
            let v_off =
                offset_in(self.buf, value).ok_or_else(|| malformed(pos, "attribute value outside buffer"))?;
            if value.contains(&b'<') {
                return Err(malformed(v_off, "'<' in attribute value"));
            }
            let name = span(k_off, k_off + key.len());
            let value_span = span(v_off, v_off + value.len());
            if key == b"xmlns" || key.starts_with(b"xmlns:") {
                let prefix = if key == b"xmlns" {
                    span(k_off + 5, k_off + 5)
                } else {
                    span(k_off + 6, k_off + key.len())
                };
                let pbytes = self.bytes(prefix);
                if pbytes.contains(&b':') || pbytes == b"xmlns" {
                    return Err(malformed(k_off, "invalid namespace prefix"));
                }
                let uri = self.store_value(value_span)?;
                let uri = if self.str_bytes(uri).is_empty() {
                    if !pbytes.is_empty() {
                        return Err(malformed(k_off, "empty namespace URI for a prefix"));
                    }
                    None
                } else {
                    Some(uri)
                };
                if pbytes == b"xml" && uri.map(|u| self.str_bytes(u)) != Some(XML_NS.as_bytes()) {
                    return Err(malformed(k_off, "xml prefix bound to a foreign namespace"));
                }
                if uri.map(|u| self.str_bytes(u)) == Some(XML_NS.as_bytes()) && pbytes != b"xml" {
                    return Err(malformed(k_off, "the xml namespace bound to another prefix"));
                }
                if uri.map(|u| self.str_bytes(u)) == Some(XMLNS_NS.as_bytes()) {
                    return Err(malformed(k_off, "the xmlns namespace cannot be declared"));
                }
                let repeated = self
                    .nsdecls
                    .get(decl_start as usize..)
                    .unwrap_or_default()
                    .iter()
                    .any(|d| self.bytes(d.prefix) == pbytes);
                if repeated {
                    return Err(malformed(k_off, "duplicate namespace declaration"));
                }
                self.nsdecls.push(NsDecl { prefix, uri });
                self.scope.push((prefix, uri));
            } else {
                // Validates entity references even when the value is never read.
                if value.contains(&b'&') {
                    self.scratch.clear();
                    decode_attr_into(value, &mut self.scratch)?;
                }
                let prefix_len = self.split_qname(name, k_off)?;
                let repeated = self
                    .attrs
                    .get(attr_start as usize..)
                    .unwrap_or_default()
                    .iter()
                    .any(|a| self.bytes(a.name) == key);
                if repeated {
                    return Err(malformed(k_off, "duplicate attribute"));
                }
                self.attrs.push(Attr { name, prefix_len, value: value_span, ns: None });
            }
        }

        let qname = self.bytes(name);
        let prefix = qname.get(..prefix_len as usize).unwrap_or_default();
        if prefix == b"xmlns" {
            return Err(malformed(pos, "element uses the xmlns prefix"));
        }
        let ns = if prefix == b"xml" {
            return Err(malformed(pos, "element uses the xml prefix"));
        } else {
            self.resolve(prefix, pos)?
        };

        let attr_end = self.attrs.len() as u32;
        for i in attr_start as usize..attr_end as usize {
            let Some(a) = self.attrs.get(i) else { continue };
            let (aname, plen) = (a.name, a.prefix_len);
            if plen == 0 {
                continue;
            }
            let qn = self.bytes(aname);
            let ap = qn.get(..plen as usize).unwrap_or_default();
            let ans = if ap == b"xml" {
                Some(XML_NS_STR)
            } else if ap == b"xmlns" {
                return Err(malformed(aname.start as usize, "invalid xmlns attribute"));
            } else {
                self.resolve(ap, aname.start as usize)?
            };
            if let Some(a) = self.attrs.get_mut(i) {
                a.ns = ans;
            }
        }
        // Namespace-level duplicates (`a:x` and `b:x` bound to one URI) are not caught by
        // quick-xml, which only compares qualified names.
        for i in attr_start as usize..attr_end as usize {
            for j in i + 1..attr_end as usize {
                if let (Some(a), Some(b)) = (self.attrs.get(i), self.attrs.get(j)) {
                    if a.prefix_len != 0
                        && b.prefix_len != 0
                        && self.local(a) == self.local(b)
                        && a.ns.map(|s| self.str_bytes(s)) == b.ns.map(|s| self.str_bytes(s))
                    {
                        return Err(malformed(pos, "duplicate namespaced attribute"));
                    }
                }
            }
        }
        // ID registration. A ds:Signature's own id is deliberately not an ID: the federation's
        // formats legitimately repeat "OCESSignature" (an issued OIOSAML assertion's signature
        // and the ID card embedded in it both carry it), and the enveloped profile never lets a
        // reference resolve to a Signature, so no wrapping can hide behind it.
        let is_signature = ns.map(|u| self.str_bytes(u)) == Some(DSIG_NS.as_bytes())
            && qname.get(prefix_len as usize + usize::from(prefix_len != 0)..) == Some(&b"Signature"[..]);
        for i in attr_start as usize..attr_end as usize {
            if is_signature {
                break;
            }
            let Some(a) = self.attrs.get(i) else { continue };
            let is_id = if a.prefix_len == 0 {
                matches!(self.bytes(a.name), b"id" | b"ID" | b"Id")
            } else {
                self.local(a) == b"Id" && a.ns.map(|s| self.str_bytes(s)) == Some(WSU_NS.as_bytes())
            };
            if is_id {
                let v = self.store_value(a.value)?;
                self.ids.push((v, id));
            }
        }

        let parent = self.stack.last().copied().unwrap_or(NONE);
        if let Some(p) = self.elems.get_mut(parent as usize) {
            if p.first_child == NONE {
                p.first_child = id;
            } else {
                let prev = p.last_child;
                p.last_child = id;
                if let Some(prev) = self.elems.get_mut(prev as usize) {
                    prev.next_sibling = id;
                }
            }
            if let Some(p) = self.elems.get_mut(parent as usize) {
                p.last_child = id;
            }
        }
        let ev = self.events.len() as u32;
        self.events.push(Ev::Start(id));
        self.elems.push(Elem {
            span: span(pos, end_pos),
            name,
            prefix_len,
            ns,
            parent,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            subtree_end: id + 1,
            attrs: (attr_start, attr_end),
            nsdecls: (decl_start, self.nsdecls.len() as u32),
            ev_start: ev,
            ev_end: ev,
        });
        if self.root.is_none() {
            self.root = Some(id);
        }
        self.stack.push(id);
        if empty {
            self.end(end_pos)?;
        }
        Ok(())
    }

    fn local(&self, a: &Attr) -> &'a [u8] {
        let q = self.bytes(a.name);
        if a.prefix_len == 0 {
            q
        } else {
            q.get(a.prefix_len as usize + 1..).unwrap_or_default()
        }
    }

    fn end(&mut self, end_pos: usize) -> Result<(), XmlError> {
        let id = self.stack.pop().ok_or_else(|| malformed(end_pos, "end tag without start tag"))?;
        if let Some(mark) = self.scope_marks.pop() {
            self.scope.truncate(mark);
        }
        let ev = self.events.len() as u32;
        self.events.push(Ev::End(id));
        let subtree_end = self.elems.len() as u32;
        if let Some(e) = self.elems.get_mut(id as usize) {
            e.span.end = end_pos as u32;
            e.ev_end = ev;
            e.subtree_end = subtree_end;
        }
        if self.stack.is_empty() {
            self.root_closed = true;
        }
        Ok(())
    }

    fn content(&mut self, ev: Ev, pos: usize) -> Result<(), XmlError> {
        self.count_node()?;
        if self.stack.is_empty() {
            match ev {
                Ev::Text(s) if self.bytes(s).iter().all(|&b| is_xml_ws(b)) => return Ok(()),
                Ev::Pi(_) => {}
                _ => return Err(malformed(pos, "content outside the document element")),
            }
        }
        self.events.push(ev);
        Ok(())
    }
}

/// Position of `needle` in `hay` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|at| from + at)
}

/// Position of `byte` in `hay[from..to]`, or `to`.
fn find_byte(hay: &[u8], from: usize, to: usize, byte: u8) -> usize {
    hay.get(from..to).and_then(|r| memchr::memchr(byte, r)).map_or(to, |at| from + at)
}

impl<'a> Builder<'a> {
    /// Tokenizes the whole buffer. The loop is segl's own so that it keeps no state between
    /// documents (quick-xml's reader grows a name stack per document); finding the end of a
    /// tag and reading its attributes is left to quick-xml's parsers.
    fn run(&mut self, skip: usize) -> Result<(), XmlError> {
        let buf = self.buf;
        let mut pos = skip;
        let mut seen_markup = false;
        while pos < buf.len() {
            let lt = find_byte(buf, pos, buf.len(), b'<');
            if lt > pos {
                self.text(pos, lt)?;
                seen_markup = true;
                pos = lt;
                continue;
            }
            let rest = buf.get(pos..).unwrap_or_default();
            if rest.starts_with(b"<?") {
                let end = find(buf, pos + 2, b"?>")
                    .ok_or_else(|| malformed(pos, "unterminated processing instruction"))?
                    + 2;
                let inner = buf.get(pos + 2..end - 2).unwrap_or_default();
                let t_end = inner.iter().position(|&b| is_xml_ws(b)).unwrap_or(inner.len());
                let target = inner.get(..t_end).unwrap_or_default();
                if target == b"xml" {
                    if seen_markup || pos != skip {
                        return Err(malformed(pos, "XML declaration not at document start"));
                    }
                    self.declaration(inner.get(t_end..).unwrap_or_default(), pos)?;
                } else {
                    if !is_ncname(target) || target.eq_ignore_ascii_case(b"xml") {
                        return Err(malformed(pos, "invalid processing instruction target"));
                    }
                    self.content(Ev::Pi(span(pos, end)), pos)?;
                }
                pos = end;
            } else if rest.starts_with(b"<!--") {
                let close =
                    find(buf, pos + 4, b"--").ok_or_else(|| malformed(pos, "unterminated comment"))?;
                if buf.get(close + 2) != Some(&b'>') {
                    return Err(malformed(close, "'--' inside a comment"));
                }
                self.count_node()?;
                pos = close + 3;
            } else if rest.starts_with(b"<![CDATA[") {
                if self.stack.is_empty() {
                    return Err(malformed(pos, "CDATA outside the document element"));
                }
                let close =
                    find(buf, pos + 9, b"]]>").ok_or_else(|| malformed(pos, "unterminated CDATA section"))?;
                self.content(Ev::CData(span(pos + 9, close)), pos)?;
                pos = close + 3;
            } else if rest.starts_with(b"<!DOCTYPE") {
                return Err(XmlError::Doctype);
            } else if rest.starts_with(b"<!") {
                return Err(malformed(pos, "unexpected markup declaration"));
            } else if rest.starts_with(b"</") {
                let close = find(buf, pos + 2, b">").ok_or_else(|| malformed(pos, "unterminated end tag"))?;
                let inner = buf.get(pos + 2..close).unwrap_or_default();
                let n_end = inner.iter().position(|&b| is_xml_ws(b)).unwrap_or(inner.len());
                if !inner.get(n_end..).unwrap_or_default().iter().all(|&b| is_xml_ws(b)) {
                    return Err(malformed(pos, "garbage in end tag"));
                }
                self.end_tag(inner.get(..n_end).unwrap_or_default(), pos, close + 1)?;
                pos = close + 1;
            } else {
                let after = buf.get(pos + 1..).unwrap_or_default();
                let len = ElementParser::default()
                    .feed(after)
                    .ok_or_else(|| malformed(pos, "unterminated start tag"))?;
                let end = pos + 1 + len + 1;
                let raw = after.get(..len).unwrap_or_default();
                let (raw, empty) = match raw.strip_suffix(b"/") {
                    Some(r) => (r, true),
                    None => (raw, false),
                };
                // Tag contents start after `<` and end before `>` or `/>`: ASCII boundaries.
                let content = self.text.get(pos + 1..pos + 1 + raw.len()).ok_or(XmlError::InvalidUtf8)?;
                let name_len = raw.iter().position(|&b| is_xml_ws(b)).unwrap_or(raw.len());
                if name_len == 0 {
                    return Err(malformed(pos, "tag without a name"));
                }
                self.start(content, name_len, pos, empty, end)?;
                pos = end;
            }
            seen_markup = true;
        }
        let end = buf.len();
        if !self.stack.is_empty() {
            return Err(malformed(end, "unexpected end of document"));
        }
        if self.root.is_none() {
            return Err(malformed(end, "no document element"));
        }
        Ok(())
    }

    /// Character data between markup: text pieces and references.
    fn text(&mut self, from: usize, to: usize) -> Result<(), XmlError> {
        let buf = self.buf;
        if self.stack.is_empty() {
            let raw = buf.get(from..to).unwrap_or_default();
            if raw.iter().all(|&b| is_xml_ws(b)) {
                return Ok(());
            }
            return Err(malformed(from, "content outside the document element"));
        }
        let mut pos = from;
        while pos < to {
            let amp = find_byte(buf, pos, to, b'&');
            if amp > pos {
                if memchr::memchr(b'>', buf.get(pos..amp).unwrap_or_default()).is_some()
                    && find(buf.get(..amp).unwrap_or_default(), pos, b"]]>").is_some()
                {
                    return Err(malformed(pos, "']]>' in character data"));
                }
                self.content(Ev::Text(span(pos, amp)), pos)?;
            }
            if amp == to {
                break;
            }
            let semi = buf
                .get(amp + 1..to)
                .and_then(|r| r.iter().position(|&b| b == b';'))
                .ok_or_else(|| unknown_entity(buf.get(amp + 1..to).unwrap_or_default()))?;
            let name = buf.get(amp + 1..amp + 1 + semi).unwrap_or_default();
            let c = decode_ref(name).ok_or_else(|| unknown_entity(name))?;
            self.content(Ev::Ref(c), amp)?;
            pos = amp + semi + 2;
        }
        Ok(())
    }

    /// An end tag `</name>` spanning `pos..end`.
    fn end_tag(&mut self, name: &[u8], pos: usize, end: usize) -> Result<(), XmlError> {
        let open = self.stack.last().and_then(|&id| self.elems.get(id as usize)).map(|e| e.name);
        match open {
            Some(open) if self.bytes(open) == name => self.end(end),
            Some(_) => Err(malformed(pos, "end tag does not match the start tag")),
            None => Err(malformed(pos, "end tag without start tag")),
        }
    }

    /// The pseudo-attributes of `<?xml …?>`: only UTF-8 is accepted.
    fn declaration(&mut self, rest: &[u8], pos: usize) -> Result<(), XmlError> {
        let rest = std::str::from_utf8(rest).map_err(|_| XmlError::InvalidUtf8)?;
        let mut attributes = Attributes::new(rest, 0);
        attributes.with_checks(false);
        let mut version = false;
        for a in attributes {
            let a = a.map_err(|e| malformed(pos, e.to_string()))?;
            match a.key.as_ref() {
                b"version" => version = true,
                b"encoding" => {
                    let enc: &[u8] = &a.value;
                    if !enc.eq_ignore_ascii_case(b"utf-8") {
                        return Err(XmlError::UnsupportedEncoding {
                            encoding: String::from_utf8_lossy(enc).into_owned(),
                        });
                    }
                }
                b"standalone" => {}
                _ => return Err(malformed(pos, "unknown pseudo-attribute in the XML declaration")),
            }
        }
        if !version {
            return Err(malformed(pos, "XML declaration without version"));
        }
        Ok(())
    }
}

impl Document {
    /// Parses `buf` (UTF-8 XML) into a span index, enforcing `limits`.
    pub fn parse(buf: Bytes, limits: &Limits) -> Result<Document, XmlError> {
        Self::parse_with(buf, limits, &mut ParseArena::default())
    }

    /// [`Document::parse`] into storage taken from `arena` (see [`ParseArena`]).
    pub fn parse_with(buf: Bytes, limits: &Limits, arena: &mut ParseArena) -> Result<Document, XmlError> {
        if buf.len() >= u32::MAX as usize {
            return Err(malformed(0, "document too large"));
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            return Err(XmlError::InvalidUtf8);
        };
        if let Some(offset) = first_non_xml_char(&buf) {
            return Err(malformed(offset, "character not allowed in XML"));
        }
        let Index { arena: strings, elems, attrs, nsdecls, events, ids } = arena.take_index();
        let BuilderScratch { mut stack, mut scope, mut scope_marks, mut scratch } =
            std::mem::take(&mut arena.scratch);
        stack.clear();
        scope.clear();
        scope_marks.clear();
        scratch.clear();
        let mut b = Builder {
            buf: &buf,
            text,
            limits,
            arena: strings,
            elems,
            attrs,
            nsdecls,
            events,
            ids,
            stack,
            scope,
            scope_marks,
            nodes: 0,
            root: None,
            root_closed: false,
            scratch,
        };
        let skip = if buf.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
        let result = b.run(skip);
        let Builder {
            arena: strings,
            elems,
            attrs,
            nsdecls,
            events,
            mut ids,
            stack,
            scope,
            scope_marks,
            scratch,
            ..
        } = b;
        arena.scratch = BuilderScratch { stack, scope, scope_marks, scratch };
        let mut doc = Document { buf, arena: strings, elems, attrs, nsdecls, events, ids: Vec::new() };
        if let Err(e) = result {
            arena.recycle(doc);
            return Err(e);
        }
        ids.sort_unstable_by(|a, b| doc.str_bytes(a.0).cmp(doc.str_bytes(b.0)));
        let duplicate = ids
            .windows(2)
            .find(|w| matches!(w, [a, b] if doc.str_bytes(a.0) == doc.str_bytes(b.0)))
            .and_then(|w| w.first())
            .map(|a| doc.str(a.0).to_owned());
        doc.ids = ids;
        if let Some(id) = duplicate {
            arena.recycle(doc);
            return Err(XmlError::DuplicateId { id });
        }
        Ok(doc)
    }

    pub(crate) fn str_bytes(&self, s: Str) -> &[u8] {
        let r = s.start as usize..s.end as usize;
        if s.arena {
            self.arena.as_bytes().get(r).unwrap_or_default()
        } else {
            self.buf.get(r).unwrap_or_default()
        }
    }

    pub(crate) fn str(&self, s: Str) -> &str {
        std::str::from_utf8(self.str_bytes(s)).unwrap_or_default()
    }

    pub(crate) fn span_bytes(&self, s: Span) -> &[u8] {
        self.buf.get(s.range()).unwrap_or_default()
    }

    fn span_str(&self, s: Span) -> &str {
        std::str::from_utf8(self.span_bytes(s)).unwrap_or_default()
    }

    fn elem(&self, n: NodeId) -> Option<&Elem> {
        self.elems.get(n.ix())
    }

    /// The input buffer all spans point into.
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// The document element.
    pub fn root(&self) -> NodeId {
        NodeId(0)
    }

    /// The parent element, `None` for the document element.
    pub fn parent(&self, n: NodeId) -> Option<NodeId> {
        self.elem(n).map(|e| e.parent).filter(|&p| p != NONE).map(NodeId)
    }

    /// Element children of `n` in document order.
    pub fn children(&self, n: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let mut next = self.elem(n).map_or(NONE, |e| e.first_child);
        std::iter::from_fn(move || {
            if next == NONE {
                return None;
            }
            let cur = next;
            next = self.elems.get(cur as usize).map_or(NONE, |e| e.next_sibling);
            Some(NodeId(cur))
        })
    }

    /// All elements below `n` (excluding `n`) in document order.
    pub fn descendants(&self, n: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        let end = self.elem(n).map_or(0, |e| e.subtree_end);
        (n.0.saturating_add(1)..end).map(NodeId)
    }

    /// Local part of the element name.
    pub fn local_name(&self, n: NodeId) -> &str {
        self.elem(n).map_or("", |e| std::str::from_utf8(self.local_name_bytes(e)).unwrap_or_default())
    }

    /// The local part of an element's name (after `prefix:`), as bytes.
    fn local_name_bytes(&self, e: &Elem) -> &[u8] {
        let name = self.span_bytes(e.name);
        if e.prefix_len == 0 {
            name
        } else {
            name.get(e.prefix_len as usize + 1..).unwrap_or_default()
        }
    }

    /// Qualified name of the element as written.
    pub fn qname(&self, n: NodeId) -> &str {
        self.elem(n).map_or("", |e| self.span_str(e.name))
    }

    /// Prefix of the element name, if any.
    pub fn prefix(&self, n: NodeId) -> Option<&str> {
        let e = self.elem(n)?;
        if e.prefix_len == 0 {
            return None;
        }
        self.span_str(e.name).get(..e.prefix_len as usize)
    }

    /// Resolved namespace URI of the element (`None` = no namespace).
    pub fn namespace(&self, n: NodeId) -> Option<&str> {
        self.elem(n)?.ns.map(|s| self.str(s))
    }

    /// Whether `n` is the element `{ns}local`.
    pub fn is(&self, n: NodeId, ns: &str, local: &str) -> bool {
        // Compared as bytes: the document is valid UTF-8, and this runs dozens of times per
        // request, where re-validating each name as `str` showed in profiles.
        let Some(e) = self.elem(n) else { return false };
        self.local_name_bytes(e) == local.as_bytes()
            && e.ns.is_some_and(|s| self.str_bytes(s) == ns.as_bytes())
    }

    /// First element child named `{ns}local`.
    pub fn child(&self, n: NodeId, ns: &str, local: &str) -> Option<NodeId> {
        self.children(n).find(|&c| self.is(c, ns, local))
    }

    pub(crate) fn attrs_of(&self, n: NodeId) -> &[Attr] {
        self.elem(n).and_then(|e| self.attrs.get(e.attrs.0 as usize..e.attrs.1 as usize)).unwrap_or_default()
    }

    /// Global indices of `n`'s attributes (for [`Document::attr_at`]).
    pub(crate) fn attr_indices(&self, n: NodeId) -> std::ops::Range<u32> {
        self.elem(n).map_or(0..0, |e| e.attrs.0..e.attrs.1)
    }

    pub(crate) fn attr_at(&self, i: u32) -> Option<&Attr> {
        self.attrs.get(i as usize)
    }

    pub(crate) fn nsdecls_of(&self, n: NodeId) -> &[NsDecl] {
        self.elem(n)
            .and_then(|e| self.nsdecls.get(e.nsdecls.0 as usize..e.nsdecls.1 as usize))
            .unwrap_or_default()
    }

    pub(crate) fn attr_local(&self, a: &Attr) -> &[u8] {
        let q = self.span_bytes(a.name);
        if a.prefix_len == 0 {
            q
        } else {
            q.get(a.prefix_len as usize + 1..).unwrap_or_default()
        }
    }

    pub(crate) fn attr_ns(&self, a: &Attr) -> &[u8] {
        a.ns.map_or(&[][..], |s| self.str_bytes(s))
    }

    fn attr_value(&self, a: &Attr) -> Cow<'_, str> {
        let raw = self.span_bytes(a.value);
        if !attr_needs_decoding(raw) {
            return Cow::Borrowed(std::str::from_utf8(raw).unwrap_or_default());
        }
        let mut out = Vec::with_capacity(raw.len());
        // Values were validated during parsing, so decoding cannot fail here.
        let _ = decode_attr_into(raw, &mut out);
        Cow::Owned(String::from_utf8(out).unwrap_or_default())
    }

    /// Value of the unqualified attribute `local`, normalized and decoded.
    pub fn attribute(&self, n: NodeId, local: &str) -> Option<Cow<'_, str>> {
        self.attrs_of(n)
            .iter()
            .find(|a| a.prefix_len == 0 && self.span_bytes(a.name) == local.as_bytes())
            .map(|a| self.attr_value(a))
    }

    /// Value of the attribute `{ns}local`, normalized and decoded.
    pub fn attribute_ns(&self, n: NodeId, ns: &str, local: &str) -> Option<Cow<'_, str>> {
        self.attrs_of(n)
            .iter()
            .find(|a| {
                a.prefix_len != 0 && self.attr_local(a) == local.as_bytes() && ns_eq(ns, self.attr_ns(a))
            })
            .map(|a| self.attr_value(a))
    }

    pub(crate) fn events_of(&self, n: NodeId) -> &[Ev] {
        self.elem(n)
            .and_then(|e| self.events.get(e.ev_start as usize..=e.ev_end as usize))
            .unwrap_or_default()
    }

    pub(crate) fn all_events(&self) -> &[Ev] {
        &self.events
    }

    pub(crate) fn ev_range(&self, n: NodeId) -> Option<(u32, u32)> {
        self.elem(n).map(|e| (e.ev_start, e.ev_end))
    }

    pub(crate) fn name_bytes(&self, n: NodeId) -> &[u8] {
        self.elem(n).map_or(&[][..], |e| self.span_bytes(e.name))
    }

    pub(crate) fn prefix_bytes(&self, n: NodeId) -> &[u8] {
        self.elem(n)
            .map_or(&[][..], |e| self.span_bytes(e.name).get(..e.prefix_len as usize).unwrap_or_default())
    }

    /// All direct text and CDATA content of `n`, concatenated and decoded, untrimmed.
    pub fn text(&self, n: NodeId) -> Cow<'_, str> {
        let evs = self.events_of(n);
        let mut pieces = DirectContent { evs, i: 1, doc: self };
        let mut out: Option<Vec<u8>> = None;
        let mut single: Option<&[u8]> = None;
        while let Some(ev) = pieces.next_piece() {
            // A lone raw piece without CR can be borrowed as is.
            if out.is_none() && single.is_none() {
                if let Ev::Text(s) | Ev::CData(s) = ev {
                    let raw = self.span_bytes(s);
                    if !raw.contains(&b'\r') {
                        single = Some(raw);
                        continue;
                    }
                }
            }
            let buf = out.get_or_insert_with(Vec::new);
            if let Some(s) = single.take() {
                buf.extend_from_slice(s);
            }
            match ev {
                Ev::Text(s) | Ev::CData(s) => normalize_newlines_into(self.span_bytes(s), buf),
                Ev::Ref(c) => {
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
                _ => {}
            }
        }
        match (out, single) {
            (Some(v), _) => Cow::Owned(String::from_utf8(v).unwrap_or_default()),
            (None, Some(s)) => Cow::Borrowed(std::str::from_utf8(s).unwrap_or_default()),
            (None, None) => Cow::Borrowed(""),
        }
    }

    /// Byte range of the whole element (start tag to end of end tag) in [`Document::buffer`].
    pub fn span(&self, n: NodeId) -> Range<usize> {
        self.elem(n).map_or(0..0, |e| e.span.range())
    }

    /// The element carrying ID attribute (`id`, `ID`, `Id`, `wsu:Id`; not on `ds:Signature`) value `id`.
    pub fn by_id(&self, id: &str) -> Option<NodeId> {
        self.ids
            .binary_search_by(|(v, _)| self.str_bytes(*v).cmp(id.as_bytes()))
            .ok()
            .and_then(|i| self.ids.get(i))
            .map(|&(_, n)| NodeId(n))
    }
}

/// Iterates the direct (depth-1) text-like children of an element's event slice.
struct DirectContent<'d> {
    evs: &'d [Ev],
    i: usize,
    doc: &'d Document,
}

impl DirectContent<'_> {
    fn next_piece(&mut self) -> Option<Ev> {
        // The last event is the element's own End.
        while self.i + 1 < self.evs.len() {
            let ev = *self.evs.get(self.i)?;
            self.i += 1;
            match ev {
                Ev::Start(c) => {
                    let (s, e) = self.doc.ev_range(NodeId(c))?;
                    self.i += (e - s) as usize;
                }
                Ev::Text(_) | Ev::CData(_) | Ev::Ref(_) => return Some(ev),
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Result<Document, XmlError> {
        Document::parse(Bytes::copy_from_slice(s), &Limits::default())
    }

    fn limits(max_depth: usize, max_attributes: usize, max_nodes: usize) -> Limits {
        Limits { max_depth, max_attributes, max_nodes }
    }

    #[test]
    fn navigation_and_names() {
        let src = br#"<?xml version="1.0" encoding="utf-8"?>
<!-- c --><?pi x?>
<r:root xmlns:r="urn:r" xmlns="urn:d"><a id="1"><b/></a><r:c x="y"/><d xmlns=""/></r:root>
<!-- trailing --> "#;
        let doc = p(src).unwrap();
        let root = doc.root();
        assert_eq!(doc.local_name(root), "root");
        assert_eq!(doc.prefix(root), Some("r"));
        assert_eq!(doc.namespace(root), Some("urn:r"));
        assert!(doc.is(root, "urn:r", "root"));
        assert_eq!(doc.parent(root), None);
        let kids: Vec<_> = doc.children(root).map(|n| doc.local_name(n)).collect();
        assert_eq!(kids, ["a", "c", "d"]);
        let all: Vec<_> = doc.descendants(root).map(|n| doc.local_name(n)).collect();
        assert_eq!(all, ["a", "b", "c", "d"]);
        let a = doc.child(root, "urn:d", "a").unwrap();
        assert_eq!(doc.namespace(a), Some("urn:d"));
        assert_eq!(doc.prefix(a), None);
        let b = doc.children(a).next().unwrap();
        assert_eq!(doc.parent(b), Some(a));
        assert_eq!(doc.descendants(b).count(), 0);
        assert_eq!(&doc.buffer()[doc.span(b)], b"<b/>");
        assert_eq!(&doc.buffer()[doc.span(a)], br#"<a id="1"><b/></a>"#);
        let d = doc.children(root).nth(2).unwrap();
        assert_eq!(doc.namespace(d), None, "xmlns=\"\" undeclares the default");
        assert_eq!(doc.by_id("1"), Some(a));
        assert_eq!(doc.by_id("2"), None);
        let c = doc.child(root, "urn:r", "c").unwrap();
        assert_eq!(doc.attribute(c, "x").as_deref(), Some("y"));
        assert_eq!(doc.child(root, "urn:r", "a"), None);
    }

    #[test]
    fn text_is_decoded_normalized_and_complete() {
        let doc = p(b"<a>x\r\ny\rz &lt;&#x41;&#66;<!--c--><![CDATA[<&>]]><b>no</b>end</a>").unwrap();
        assert_eq!(doc.text(doc.root()), "x\ny\nz <AB<&>end");
        let doc = p(b"<a>plain</a>").unwrap();
        assert!(matches!(doc.text(doc.root()), Cow::Borrowed("plain")));
        let doc = p(b"<a><b/></a>").unwrap();
        assert_eq!(doc.text(doc.root()), "");
    }

    #[test]
    fn attribute_values_are_normalized() {
        let doc = p(b"<a v=\"x\ty\r\nz\rw\nq\" r=\"&#9;&#10;&#13;&amp;&quot;\" s='it\"s'/>").unwrap();
        let a = doc.root();
        assert_eq!(doc.attribute(a, "v").as_deref(), Some("x y z w q"));
        assert_eq!(doc.attribute(a, "r").as_deref(), Some("\t\n\r&\""));
        assert_eq!(doc.attribute(a, "s").as_deref(), Some("it\"s"));
        assert_eq!(doc.attribute(a, "missing"), None);
    }

    #[test]
    fn qualified_attributes_and_wsu_id() {
        let src = format!(r#"<a xmlns:u="{WSU_NS}" xmlns:p="urn:p" p:x="1" x="2"><b u:Id="body"/></a>"#);
        let doc = p(src.as_bytes()).unwrap();
        let a = doc.root();
        assert_eq!(doc.attribute(a, "x").as_deref(), Some("2"));
        assert_eq!(doc.attribute_ns(a, "urn:p", "x").as_deref(), Some("1"));
        assert_eq!(doc.attribute_ns(a, "urn:q", "x"), None);
        let b = doc.children(a).next().unwrap();
        assert_eq!(doc.by_id("body"), Some(b));
        assert_eq!(doc.attribute(b, "Id"), None, "qualified Id is not unqualified");
    }

    #[test]
    fn ids_in_all_spellings_are_registered() {
        let doc = p(br#"<a id="x"><b ID="y"/><c Id="z"/><d iD="w"/></a>"#).unwrap();
        assert!(doc.by_id("x").is_some());
        assert!(doc.by_id("y").is_some());
        assert!(doc.by_id("z").is_some());
        assert_eq!(doc.by_id("w"), None);
    }

    #[test]
    fn signature_ids_may_repeat_and_are_not_resolvable() {
        let src = format!(
            r#"<a ID="_1" xmlns:ds="{DSIG_NS}"><ds:Signature Id="S"/><c id="c"><ds:Signature id="S"/></c></a>"#
        );
        let doc = p(src.as_bytes()).unwrap();
        assert_eq!(doc.by_id("S"), None);
        assert!(doc.by_id("c").is_some());
        let dup = format!(r#"<a xmlns:ds="{DSIG_NS}"><ds:Other Id="S"/><c id="S"/></a>"#);
        assert!(matches!(p(dup.as_bytes()), Err(XmlError::DuplicateId { .. })));
    }

    #[test]
    fn tokenizer_accepts_what_xml_allows() {
        for ok in [
            &b"<a></a >"[..],
            b"<a\n x = '1'\t/>",
            b"<a><!----></a>",
            b"<a><!-- > - --></a>",
            b"<a>x > y ]] z</a>",
            b"<a x=\"a>b\"/>",
            b"<?xml version='1.0' encoding='utf-8' standalone='yes'?><a/>",
            b"<?pi?><a/><?pi data?>",
        ] {
            assert!(p(ok).is_ok(), "{:?} -> {:?}", String::from_utf8_lossy(ok), p(ok));
        }
        let doc = p(b"<a x=\"a>b\">t</a>").unwrap();
        assert_eq!(doc.attribute(doc.root(), "x").as_deref(), Some("a>b"));
        assert_eq!(doc.text(doc.root()), "t");
    }

    #[test]
    fn names_and_characters_beyond_ascii_are_accepted() {
        let doc = p("<\u{e6}bler \u{f8}=\"\u{1F600}\"><?x-y.z d?>\u{FFFD}</\u{e6}bler>".as_bytes()).unwrap();
        assert_eq!(doc.local_name(doc.root()), "\u{e6}bler");
        assert!(p(b"<a xmlns:xml=\"http://www.w3.org/XML/1998/namespace\"/>").is_ok());
    }

    #[test]
    fn bom_and_prolog_are_accepted() {
        // Spans stay offsets into the buffer, byte order mark included.
        let doc = p(b"\xEF\xBB\xBF<r a=\"1\">x</r>").unwrap();
        assert_eq!(doc.qname(doc.root()), "r");
        assert_eq!(&doc.buffer()[doc.span(doc.root())], b"<r a=\"1\">x</r>");
        assert_eq!(doc.attribute(doc.root(), "a").as_deref(), Some("1"));
        assert_eq!(crate::xml::c14n::exclusive_to_vec(&doc, doc.root(), None, &[]), b"<r a=\"1\">x</r>");
        let bom = p(b"\xEF\xBB\xBF<?xml version=\"1.0\"?><a/>");
        assert!(bom.is_ok(), "{bom:?}");
        assert!(p(b"  \n<!-- x --><a/>\n").is_ok());
    }

    #[test]
    fn malformed_inputs() {
        for bad in [
            &b""[..],
            b"   ",
            b"<a>",
            b"<a><b></a>",
            b"<a></b>",
            b"</a>",
            b"<a/><b/>",
            b"<a/>text",
            b"text<a/>",
            b"<a x=\"<\"/>",
            b"<a x=1/>",
            b"<a x=\"1\" x=\"2\"/>",
            b"<a xmlns:p=\"urn:x\" xmlns:q=\"urn:x\" p:y=\"1\" q:y=\"2\"/>",
            b"<a/><?xml version=\"1.0\"?>",
            b"<a xmlns:p=\"\"/>",
            b"<a:b:c xmlns:a=\"urn:a\"/>",
            b"<:a/>",
            b"<a><!-- -- --></a>",
            // Found by the c14n fuzz target: quick-xml takes "l`/" as the name, and its
            // canonical form `<l`/></l`/>` would not parse again.
            b"<l`//> ",
            b"<a b`=\"1\"/>",
            b"<1a/>",
            b"<a:1b xmlns:a=\"urn:a\"/>",
            b"<a>\x01</a>",
            b"<a x=\"\x1f\"/>",
            b"<a>\xEF\xBF\xBF</a>",
            b"<?XML x?><a/>",
            b"<a><?x:y z?></a>",
            b"<a xmlns:p=\"http://www.w3.org/XML/1998/namespace\"/>",
            b"<a xmlns=\"http://www.w3.org/2000/xmlns/\"/>",
            b"<a xmlns:p=\"urn:x\" xmlns:p=\"urn:y\"/>",
            b"<a xmlns=\"urn:x\" xmlns=\"urn:x\"/>",
            // segl's own tokenizer loop.
            b"<a>]]></a>",
            b"<a><![CDATA[x</a>",
            b"<a></a x>",
            b"<a><!-- x ---></a>",
            b"<a><!--->",
            b"<a x='1'",
            b"<a><b></a></b>",
            b"<?xml encoding=\"UTF-8\"?><a/>",
            b"<?xml version=\"1.0\" foo=\"x\"?><a/>",
            b" <?xml version=\"1.0\"?><a/>",
            b"<![CDATA[x]]><a/>",
            b"<a/>&amp;",
            b"<!ELEMENT a ANY><a/>",
            b"< a/>",
        ] {
            assert!(
                matches!(p(bad), Err(XmlError::Malformed { .. })),
                "{:?} -> {:?}",
                String::from_utf8_lossy(bad),
                p(bad)
            );
        }
    }

    #[test]
    fn doctype_is_rejected() {
        assert_eq!(p(b"<!DOCTYPE a><a/>").err(), Some(XmlError::Doctype));
        assert_eq!(
            p(b"<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>").err(),
            Some(XmlError::Doctype)
        );
    }

    #[test]
    fn only_predefined_entities_and_valid_char_refs() {
        for (src, name) in [
            (&b"<a>&nbsp;</a>"[..], "nbsp"),
            (b"<a x=\"&e;\"/>", "e"),
            (b"<a>&#0;</a>", "#0"),
            (b"<a>&#xD800;</a>", "#xD800"),
            (b"<a>&#x110000;</a>", "#x110000"),
            (b"<a>&#1;</a>", "#1"),
        ] {
            assert_eq!(
                p(src).err(),
                Some(XmlError::UnknownEntity { name: name.into() }),
                "{}",
                String::from_utf8_lossy(src)
            );
        }
    }

    #[test]
    fn limits_are_enforced() {
        let l = limits(2, 2, 5);
        let parse = |s: &[u8], l: &Limits| Document::parse(Bytes::copy_from_slice(s), l);
        assert_eq!(parse(b"<a><b><c/></b></a>", &l).err(), Some(XmlError::TooDeep { limit: 2 }));
        assert!(parse(b"<a><b/></a>", &l).is_ok());
        assert_eq!(
            parse(b"<a x=\"1\" y=\"2\" xmlns=\"urn:z\"/>", &l).err(),
            Some(XmlError::TooManyAttributes { limit: 2 })
        );
        assert_eq!(
            parse(b"<a><b/><b/><b/><b/><b/></a>", &l).err(),
            Some(XmlError::TooManyNodes { limit: 5 })
        );
        assert_eq!(parse(b"<a>x<!--c-->y<!--c-->z</a>", &l).err(), Some(XmlError::TooManyNodes { limit: 5 }));
    }

    #[test]
    fn duplicate_ids_are_rejected_across_spellings() {
        assert_eq!(p(br#"<a id="x"><b ID="x"/></a>"#).err(), Some(XmlError::DuplicateId { id: "x".into() }));
        let src = format!(r#"<a Id="x"><b xmlns:w="{WSU_NS}" w:Id="x"/></a>"#);
        assert!(matches!(p(src.as_bytes()), Err(XmlError::DuplicateId { .. })));
        // Decoded values are compared, not raw spellings.
        assert!(matches!(p(br#"<a id="x&amp;"><b id="x&#38;"/></a>"#), Err(XmlError::DuplicateId { .. })));
    }

    #[test]
    fn undeclared_prefixes_are_rejected() {
        assert_eq!(p(b"<p:a/>").err(), Some(XmlError::UndeclaredPrefix { prefix: "p".into() }));
        assert_eq!(p(b"<a q:x=\"1\"/>").err(), Some(XmlError::UndeclaredPrefix { prefix: "q".into() }));
        assert_eq!(
            p(b"<a><p:b xmlns:p=\"urn:p\"/><p:c/></a>").err(),
            Some(XmlError::UndeclaredPrefix { prefix: "p".into() })
        );
        assert!(p(b"<a xml:lang=\"da\"/>").is_ok());
    }

    #[test]
    fn encodings_other_than_utf8_are_rejected() {
        assert_eq!(p(b"<a>\xff</a>").err(), Some(XmlError::InvalidUtf8));
        assert_eq!(p(b"\xff\xfe<\x00a\x00/\x00>\x00").err(), Some(XmlError::InvalidUtf8));
        assert_eq!(
            p(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>").err(),
            Some(XmlError::UnsupportedEncoding { encoding: "ISO-8859-1".into() })
        );
        assert!(p(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>").is_ok());
    }

    #[test]
    fn escaped_namespace_uris_are_decoded() {
        let doc = p(b"<p:a xmlns:p=\"urn:a&amp;b\"/>").unwrap();
        assert_eq!(doc.namespace(doc.root()), Some("urn:a&b"));
    }
}
