//! The XML security core against libxml2, in one run: exclusive C14N (without comments) +
//! SHA-256 of the captured ID card (the card of `unsealed-sts-request-1.compact.xml`, without
//! its signature, as the enveloped-signature transform sees it) and of an ~11 KB WS-Trust
//! envelope (`unsealed-sts-request-2.compact.xml` with the bootstrap token of
//! `unsealed-bootstrap-token.xml` added to its ActAs), each (a) over an already parsed document
//! and (b) including the parse.
//!
//! segl is measured with criterion and, for the comparison table, with the same
//! median-of-rounds loop that `bench/support/lxml_c14n_timing.py` runs for libxml2 (through
//! lxml, one python process for all of it). The table prints µs/op for both and the ratio.
//!
//! Run: `nice -n 10 cargo bench -p segl-bench --bench xml`. Needs the spec data
//! (`$SEGL_SPEC_DIR`) and, for the libxml2 side, `/usr/bin/python3` with lxml.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, Criterion, Throughput};
use segl::xml::c14n::{Canonicalizer, Method};
use segl::xml::dsig::algorithm::{DigestAlgorithm, DSIG_NS};
use segl::xml::{Document, Limits, ParseArena};

/// One benchmark document: its bytes and, for a subtree, the id of the signed element.
struct Input {
    name: &'static str,
    bytes: Bytes,
    id: Option<&'static str>,
}

fn inputs() -> Option<Vec<Input>> {
    let req1 = segl::spec_data::example("unsealed-sts-request-1.compact.xml")?;
    let req2 = segl::spec_data::example("unsealed-sts-request-2.compact.xml")?;
    let bst = segl::spec_data::example("unsealed-bootstrap-token.xml")?;
    let bst = bst.trim_start();
    let bst = match bst.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or(bst, |(_, r)| r.trim_start()),
        None => bst,
    };
    let act_as = req2.find("<wst14:ActAs>")? + "<wst14:ActAs>".len();
    let envelope = format!("{}{}{}", &req2[..act_as], bst, &req2[act_as..]);
    Some(vec![
        Input { name: "id-card", bytes: Bytes::from(req1), id: Some("IDCard") },
        Input { name: "ws-trust-11k", bytes: Bytes::from(envelope), id: None },
    ])
}

/// segl's work for one document: canonicalize (the subtree without its signature, or the
/// whole document) into SHA-256.
struct Segl {
    arena: ParseArena,
    c14n: Canonicalizer,
    limits: Limits,
}

impl Segl {
    fn c14n_sha256(&mut self, doc: &Document, id: Option<&str>) -> usize {
        let mut h = DigestAlgorithm::Sha256.hasher();
        match id.and_then(|id| doc.by_id(id)) {
            Some(el) => {
                let sig = doc.child(el, DSIG_NS, "Signature");
                self.c14n.subtree(doc, el, sig, Method::Exclusive(&[]), &mut h);
            }
            None => self.c14n.document(doc, Method::Exclusive(&[]), &mut h),
        }
        h.finish_digest().as_ref().len()
    }

    fn parse_c14n_sha256(&mut self, bytes: &Bytes, id: Option<&str>) -> usize {
        let Ok(doc) = Document::parse_with(bytes.clone(), &self.limits, &mut self.arena) else {
            return 0;
        };
        let n = self.c14n_sha256(&doc, id);
        self.arena.recycle(doc);
        n
    }
}

fn segl() -> Segl {
    Segl { arena: ParseArena::default(), c14n: Canonicalizer::default(), limits: Limits::default() }
}

/// Canonical bytes of the input, for the throughput figure.
fn canonical_len(input: &Input) -> u64 {
    let doc = Document::parse(input.bytes.clone(), &Limits::default()).expect("input parses");
    let mut out = Vec::new();
    let mut c = Canonicalizer::default();
    match input.id.and_then(|id| doc.by_id(id)) {
        Some(el) => {
            c.subtree(&doc, el, doc.child(el, DSIG_NS, "Signature"), Method::Exclusive(&[]), &mut out)
        }
        None => c.document(&doc, Method::Exclusive(&[]), &mut out),
    }
    out.len() as u64
}

fn criterion_benches(c: &mut Criterion) {
    let Some(inputs) = inputs() else { return };
    for input in &inputs {
        let mut g = c.benchmark_group(format!("xml/{}", input.name));
        g.throughput(Throughput::Bytes(canonical_len(input)));
        let doc = Document::parse(input.bytes.clone(), &Limits::default()).expect("input parses");
        let mut s = segl();
        g.bench_function("c14n+sha256", |b| b.iter(|| s.c14n_sha256(black_box(&doc), input.id)));
        g.bench_function("parse+c14n+sha256", |b| {
            b.iter(|| s.parse_c14n_sha256(black_box(&input.bytes), input.id))
        });
        g.finish();
    }
}

criterion_group!(benches, criterion_benches);

const ITERATIONS: usize = 2000;
const ROUNDS: usize = 7;

/// Median µs/op over `ROUNDS` rounds of `ITERATIONS` calls, as the python side measures.
fn per_op(mut f: impl FnMut() -> usize) -> f64 {
    black_box(f());
    let mut samples: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(f());
            }
            start.elapsed().as_secs_f64() * 1e6 / ITERATIONS as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ROUNDS / 2]
}

fn libxml2(inputs: &[Input], dir: &Path) -> Option<Vec<(String, String, f64)>> {
    let python = "/usr/bin/python3";
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/lxml_c14n_timing.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(ITERATIONS.to_string()).arg(ROUNDS.to_string());
    for input in inputs {
        let path = dir.join(format!("{}.xml", input.name));
        std::fs::write(&path, &input.bytes).ok()?;
        let id = input.id.map(|id| format!("#{id}")).unwrap_or_default();
        cmd.arg(format!("{}={}{id}", input.name, path.display()));
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        eprintln!("libxml2 side failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Some(
        text.lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((parts.next()?.to_owned(), parts.next()?.to_owned(), parts.next()?.parse().ok()?))
            })
            .collect(),
    )
}

fn comparison() {
    let Some(inputs) = inputs() else {
        println!("SKIP: spec examples not found (set SEGL_SPEC_DIR)");
        return;
    };
    let dir: PathBuf = std::env::temp_dir().join(format!("segl-bench-xml-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let theirs = libxml2(&inputs, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    if theirs.is_none() {
        println!("libxml2 side skipped: /usr/bin/python3 with lxml is needed (apt install python3-lxml)");
    }

    println!();
    println!("exclusive C14N + SHA-256, µs/op (median of {ROUNDS} rounds of {ITERATIONS}); same process run");
    println!(
        "{:<14} {:<20} {:>8} {:>10} {:>10} {:>8}",
        "document", "scope", "bytes", "segl", "libxml2", "ratio"
    );
    for input in &inputs {
        let doc = Document::parse(input.bytes.clone(), &Limits::default()).expect("input parses");
        let mut s = segl();
        let ours = [
            ("c14n+sha256", per_op(|| s.c14n_sha256(&doc, input.id))),
            ("parse+c14n+sha256", per_op(|| s.parse_c14n_sha256(&input.bytes, input.id))),
        ];
        for (scope, us) in ours {
            let lib = theirs
                .as_ref()
                .and_then(|t| t.iter().find(|(n, sc, _)| n == input.name && sc == scope))
                .map(|(_, _, v)| *v);
            let (lib_s, ratio) = match lib {
                Some(v) => (format!("{v:.2}"), format!("{:.1}x", v / us)),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<14} {:<20} {:>8} {:>10.2} {:>10} {:>8}",
                input.name,
                scope,
                input.bytes.len(),
                us,
                lib_s,
                ratio
            );
        }
    }
    println!("(bytes: input document size; ratio: libxml2 time / segl time, higher is better for segl)");
}

fn main() {
    // `cargo test --benches` runs bench binaries in test mode: keep that quick. Profiling
    // segl alone: SEGL_BENCH_NO_LIBXML2=1.
    let quick = std::env::args().any(|a| a == "--test" || a == "--list")
        || std::env::var_os("SEGL_BENCH_NO_LIBXML2").is_some();
    benches();
    if !quick {
        comparison();
    }
    Criterion::default().configure_from_args().final_summary();
}
