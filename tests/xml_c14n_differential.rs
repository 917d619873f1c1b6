//! segl's canonicalization against an independent implementation: libxml2 through lxml
//! (`tests/support/lxml_c14n.py`), over the captured messages in `spec/examples/` and over
//! generated documents with random namespaces, prefixes, default-namespace undeclarations,
//! attributes, escapable text, CDATA, comments and processing instructions.
//!
//! Skips (saying so) when python3 with lxml is missing; `tests/install-host-packages`
//! installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use segl::xml::c14n::{Canonicalizer, Method};
use segl::xml::{Document, Limits};

/// How many generated documents the comparison covers.
const GENERATED: usize = 1500;

fn python() -> Option<&'static str> {
    // The distribution's interpreter first: that is where python3-lxml installs.
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p).args(["-c", "import lxml.etree"]).output().is_ok_and(|o| o.status.success())
    })
}

fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_reference(python: &str, dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/lxml_c14n.py");
    let out = Command::new(python).arg(script).arg(dir).output().expect("run the lxml helper");
    assert!(out.status.success(), "lxml helper failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// One disagreement, kept for the failure message.
struct Difference {
    file: String,
    what: String,
    segl: String,
    libxml2: String,
}

/// Compares segl's canonical forms of every `*.xml` in `dir` with the reference's files.
/// Returns the number of comparisons made.
fn compare_dir(dir: &Path, differences: &mut Vec<Difference>) -> usize {
    let mut compared = 0;
    let mut c = Canonicalizer::default();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".xml"))
        .collect();
    names.sort();
    for name in names {
        let stem = name.trim_end_matches(".xml");
        let sibling = |ext: &str| dir.join(format!("{stem}.{ext}"));
        let input = std::fs::read(dir.join(&name)).unwrap();
        let parsed = Document::parse(Bytes::from(input), &Limits::default());
        let reference_err = std::fs::read_to_string(sibling("err")).ok();
        let doc = match (parsed, reference_err) {
            (Ok(doc), None) => doc,
            (Err(_), Some(_)) => continue,
            (Ok(_), Some(e)) => {
                differences.push(Difference {
                    file: name.clone(),
                    what: "acceptance".into(),
                    segl: "parsed".into(),
                    libxml2: e,
                });
                continue;
            }
            (Err(e), None) => {
                differences.push(Difference {
                    file: name.clone(),
                    what: "acceptance".into(),
                    segl: e.to_string(),
                    libxml2: "parsed".into(),
                });
                continue;
            }
        };
        let mut check = |what: String, ours: Vec<u8>, reference: PathBuf| {
            let theirs = std::fs::read(&reference).unwrap_or_else(|e| panic!("{}: {e}", reference.display()));
            compared += 1;
            if ours != theirs {
                differences.push(Difference {
                    file: name.clone(),
                    what,
                    segl: String::from_utf8_lossy(&ours).into_owned(),
                    libxml2: String::from_utf8_lossy(&theirs).into_owned(),
                });
            }
        };
        let mut exc = Vec::new();
        c.document(&doc, Method::Exclusive(&[]), &mut exc);
        check("exclusive document".into(), exc, sibling("exc"));
        let mut inc = Vec::new();
        c.document(&doc, Method::Inclusive, &mut inc);
        check("inclusive document".into(), inc, sibling("inc"));
        let root = doc.root();
        for (k, n) in doc.descendants(root).take(4).enumerate() {
            let mut exc = Vec::new();
            c.subtree(&doc, n, None, Method::Exclusive(&[]), &mut exc);
            check(format!("exclusive subtree {k}"), exc, sibling(&format!("sub{k}.exc")));
            // Inclusive subtrees are not compared: lxml canonicalizes a subtree by copying it
            // into a document of its own, after which libxml2 renders xmlns="" on descendants
            // whose default namespace never changed, and drops the xml:* attributes the apex
            // inherits (C14N 1.0 §2.4). The W3C vectors in src/xml/c14n.rs cover those.
        }
    }
    compared
}

fn report(differences: &[Difference]) -> String {
    let mut s = format!("{} differences from libxml2:\n", differences.len());
    for d in differences.iter().take(5) {
        s.push_str(&format!("--- {} ({})\n segl:    {}\n libxml2: {}\n", d.file, d.what, d.segl, d.libxml2));
    }
    s
}

#[test]
fn spec_examples_match_libxml2() {
    let Some(python) = python() else {
        println!("SKIP: python3 with lxml not found (tests/install-host-packages installs python3-lxml)");
        return;
    };
    let Some(spec) = segl::spec_data::spec_dir() else {
        println!("SKIP: reference data not found (set SEGL_SPEC_DIR)");
        return;
    };
    let dir = work_dir("c14n-examples");
    let mut copied = 0;
    for e in std::fs::read_dir(spec.join("examples")).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        if name.ends_with(".xml") {
            // Spaces in names are awkward for nobody but keep the reference's file names simple.
            std::fs::copy(e.path(), dir.join(name.replace(' ', "_"))).unwrap();
            copied += 1;
        }
    }
    run_reference(python, &dir);
    let mut differences = Vec::new();
    let compared = compare_dir(&dir, &mut differences);
    println!("{copied} examples, {compared} canonical forms compared");
    assert!(compared > 100, "too few comparisons: {compared}");
    assert!(differences.is_empty(), "{}", report(&differences));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generated_documents_match_libxml2() {
    let Some(python) = python() else {
        println!("SKIP: python3 with lxml not found (tests/install-host-packages installs python3-lxml)");
        return;
    };
    let dir = work_dir("c14n-generated");
    let mut rng = Rng(0x5E61_C14E);
    for i in 0..GENERATED {
        std::fs::write(dir.join(format!("g{i:05}.xml")), generate(&mut rng)).unwrap();
    }
    run_reference(python, &dir);
    let mut differences = Vec::new();
    let compared = compare_dir(&dir, &mut differences);
    println!("{GENERATED} generated documents, {compared} canonical forms compared");
    assert!(compared >= GENERATED * 2, "too few comparisons: {compared}");
    assert!(differences.is_empty(), "{}", report(&differences));
    let _ = std::fs::remove_dir_all(&dir);
}

/// splitmix64: a fixed seed makes every run test the same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const WHITESPACE: &[&str] = &["\n", " ", "\r\n\t"];
const PREFIXES: &[&str] = &["a", "b", "ns1", "ds", "saml", "x-y"];
/// As written in the document (already escaped for a double-quoted attribute).
const URIS: &[&str] = &[
    "urn:a",
    "urn:b",
    "http://www.w3.org/2000/09/xmldsig#",
    "urn:oasis:names:tc:SAML:2.0:assertion",
    "http://example.org/x?q=1&amp;r=2",
    "urn:%C3%A6&amp;x",
];
const NAMES: &[&str] = &["e", "Assertion", "b", "zz", "Attr-1", "\u{e6}bler"];
const ATTR_NAMES: &[&str] = &["a", "b", "Name", "z", "Format", "\u{f8}"];

/// Text pieces, as written in element content.
const TEXT: &[&str] = &[
    "x",
    " ",
    "Hello, world",
    "&amp;",
    "&lt;",
    "&gt;",
    ">",
    "\"",
    "'",
    "&#13;",
    "\r\n",
    "\r",
    "\n",
    "\t",
    "&#xD;&#xA;",
    "&#169;",
    "\u{e6}\u{f8}\u{e5}",
    "\u{1F600}",
    "&quot;",
    "&apos;",
    "  ",
    "sosi:IDCard",
];
/// Attribute value pieces, as written inside double quotes.
const VALUE: &[&str] = &[
    "v",
    " ",
    "&amp;",
    "&lt;",
    ">",
    "&gt;",
    "&quot;",
    "'",
    "&#9;",
    "&#10;",
    "&#13;",
    "\t",
    "\n",
    "\r\n",
    "\u{e6}",
    "\u{1F600}",
    "a b",
    "&#x20;",
    "urn:x",
];

fn text(rng: &mut Rng, pieces: &[&str], max: usize) -> String {
    (0..rng.below(max) + 1).map(|_| *rng.pick(pieces)).collect()
}

struct Gen<'r> {
    rng: &'r mut Rng,
    out: String,
    /// In-scope (prefix, uri-as-written); "" is the default namespace, uri "" undeclares it.
    scope: Vec<(String, String)>,
}

impl Gen<'_> {
    fn bound(&self, prefix: &str) -> Option<&str> {
        self.scope.iter().rev().find(|(p, _)| p == prefix).map(|(_, u)| u.as_str())
    }

    fn element(&mut self, depth: usize) {
        let mark = self.scope.len();
        let mut decls = Vec::new();
        for _ in 0..self.rng.below(4) {
            let prefix = if self.rng.percent(30) { "" } else { *self.rng.pick(PREFIXES) };
            if decls.iter().any(|(p, _): &(String, String)| p == prefix) {
                continue;
            }
            let uri = if prefix.is_empty() && self.rng.percent(30) { "" } else { *self.rng.pick(URIS) };
            decls.push((prefix.to_owned(), uri.to_owned()));
        }
        self.scope.extend(decls.iter().cloned());
        let prefixed: Vec<String> =
            PREFIXES.iter().filter(|p| self.bound(p).is_some()).map(|p| p.to_string()).collect();
        let name = *self.rng.pick(NAMES);
        let qname = if !prefixed.is_empty() && self.rng.percent(60) {
            format!("{}:{name}", self.rng.pick(&prefixed))
        } else {
            name.to_owned()
        };
        self.out.push('<');
        self.out.push_str(&qname);
        // Declarations and attributes in random order, as a document would have them.
        let mut items: Vec<String> = decls
            .iter()
            .map(|(p, u)| if p.is_empty() { format!("xmlns=\"{u}\"") } else { format!("xmlns:{p}=\"{u}\"") })
            .collect();
        let mut expanded: Vec<(String, String)> = Vec::new();
        for _ in 0..self.rng.below(5) {
            let local = *self.rng.pick(ATTR_NAMES);
            let (qn, ns) = match self.rng.below(10) {
                0 => (format!("xml:{}", self.rng.pick(&["lang", "space"])), "xml".to_owned()),
                1..=4 if !prefixed.is_empty() => {
                    let p = self.rng.pick(&prefixed).clone();
                    let ns = self.bound(&p).unwrap_or_default().to_owned();
                    (format!("{p}:{local}"), ns)
                }
                _ => (local.to_owned(), String::new()),
            };
            let local_part = qn.rsplit(':').next().unwrap_or_default().to_owned();
            if expanded.iter().any(|(n, l)| *n == ns && *l == local_part) {
                continue;
            }
            expanded.push((ns, local_part));
            let value = if qn == "xml:space" {
                self.rng.pick(&["preserve", "default"]).to_string()
            } else {
                text(self.rng, VALUE, 6)
            };
            items.push(format!("{qn}=\"{value}\""));
        }
        for k in (1..items.len()).rev() {
            let j = self.rng.below(k + 1);
            items.swap(k, j);
        }
        for item in items {
            self.out.push(" \t\n".chars().nth(self.rng.below(3)).unwrap_or(' '));
            self.out.push_str(&item);
        }
        if self.rng.percent(20) {
            self.out.push(' ');
        }
        if self.rng.percent(20) {
            self.out.push_str("/>");
        } else {
            self.out.push('>');
            for _ in 0..self.rng.below(5) {
                match self.rng.below(10) {
                    0..=3 if depth < 6 => self.element(depth + 1),
                    4 => self.out.push_str(&format!(
                        "<![CDATA[{}]]>",
                        text(self.rng, &["<", "&", ">", "x", "\r\n", " ", "]x"], 5)
                    )),
                    5 => self.out.push_str(&format!("<!--{}-->", text(self.rng, &["c", " ", "<a>", "&"], 4))),
                    6 => self.pi(),
                    _ => self.out.push_str(&text(self.rng, TEXT, 5)),
                }
            }
            self.out.push_str("</");
            self.out.push_str(&qname);
            self.out.push('>');
        }
        self.scope.truncate(mark);
    }

    fn pi(&mut self) {
        let target = *self.rng.pick(&["pi", "x-y", "target"]);
        let data = if self.rng.percent(30) {
            String::new()
        } else {
            text(self.rng, &["d", " ", "a=\"1\"", "\r\n", "&"], 4)
        };
        let sep = *self.rng.pick(&[" ", "  ", "\n"]);
        self.out.push_str(&format!("<?{target}{sep}{data}?>"));
    }

    fn misc(&mut self) {
        for _ in 0..self.rng.below(3) {
            match self.rng.below(3) {
                0 => self.pi(),
                1 => self.out.push_str("<!-- outside -->"),
                _ => {
                    let ws: &&str = self.rng.pick(WHITESPACE);
                    self.out.push_str(ws)
                }
            }
        }
    }
}

fn generate(rng: &mut Rng) -> String {
    let mut g = Gen { rng, out: String::new(), scope: Vec::new() };
    if g.rng.percent(50) {
        g.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    }
    g.misc();
    g.element(0);
    g.misc();
    g.out
}
