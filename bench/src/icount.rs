//! Instruction counts per request, the regression signal of issue 17: the exchange served in
//! process (as [`crate::inprocess`] does) under callgrind, with collection switched on only
//! around the measured requests, and the inclusive count of each stage's top-level function
//! read back from `callgrind_annotate --inclusive=yes`. A count moves only when the code does,
//! so two commits compare by a number rather than by a noisy time (rustls' ci-bench is the
//! model). Nothing here is a CI pass/fail check: `segl-icount` prints and writes the table.

use serde::{Deserialize, Serialize};

/// One stage of a request: its name, the function whose inclusive count is the stage, and
/// what that function does.
#[derive(Debug, Clone, Copy)]
pub struct StageSpec {
    /// The stage's name in the table.
    pub name: &'static str,
    /// Demangled names (without the hash suffix) as `callgrind_annotate` prints them; the
    /// stage is the sum of their inclusive counts (several when the stage is several calls,
    /// or one function monomorphised more than once).
    pub functions: &'static [&'static str],
    /// Functions called inside `functions` that are stages of their own, subtracted so that
    /// no instruction is counted in two stages.
    pub less: &'static [&'static str],
    /// What the stage is, for the README and the table.
    pub what: &'static str,
    /// Whether the stage runs in the HSM (SoftHSM here), not in segl: reported apart, since
    /// with a network HSM those instructions are spent elsewhere.
    pub hsm: bool,
}

/// One measured row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageCount {
    /// Stage name.
    pub stage: String,
    /// The functions counted (inclusive).
    pub functions: Vec<String>,
    /// Instructions per request.
    pub per_request: u64,
    /// Share of the whole request, percent.
    pub share_pct: f64,
    /// Whether this is the HSM's work.
    pub hsm: bool,
}

/// A whole measurement: the exchange, how many requests, the whole and the stages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The exchange measured (DGWS, BST2SOSI, …).
    pub exchange: String,
    /// Requests in the measured region.
    pub requests: u64,
    /// Of those, answered with something else than 200 (must be 0 for the counts to mean
    /// anything; the table says so).
    pub not_issued: u64,
    /// Instructions of the whole request, per request (SoftHSM's signature included).
    pub whole_per_request: u64,
    /// The whole less the HSM's stages: segl's own instructions per request.
    pub segl_per_request: u64,
    /// The stages, in pipeline order; `other` is the whole less every stage.
    pub stages: Vec<StageCount>,
    /// The commit the measured code was built from ([`segl::build_info::COMMIT`]), when known.
    pub commit: Option<String>,
    /// The valgrind version that counted.
    pub valgrind: String,
}

/// Function name → inclusive instructions, as `callgrind_annotate --inclusive=yes` lists them.
/// With debug line tables callgrind lists a function once per source file its code came
/// from (its own, and each file whose code was inlined into it): the row of its own file is
/// the whole inclusive count, the others are parts of it. So of rows with the same name the
/// largest is kept; summing them would count the inlined parts twice.
pub fn parse_annotate(text: &str) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = Vec::new();
    for line in text.lines() {
        let Some((count, function)) = annotate_row(line) else { continue };
        match rows.iter_mut().find(|(name, _)| *name == function) {
            Some(row) => row.1 = row.1.max(count),
            None => rows.push((function, count)),
        }
    }
    rows
}

/// A function row: `  1,234,567 (12.34%)  file:function [object]` (3.19) or without the
/// percentage; the count has thousands separators. Anything else (headers, the totals line,
/// source lines) is not a row.
fn annotate_row(line: &str) -> Option<(u64, String)> {
    let line = line.trim_start();
    let (count, rest) = line.split_once(' ')?;
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return None;
    }
    let count: u64 = count.replace(',', "").parse().ok()?;
    let rest = rest.trim_start();
    // The percentage column, when present.
    let rest = match rest.strip_prefix('(') {
        Some(r) => r.split_once(')')?.1.trim_start(),
        None => rest,
    };
    // `file:function [object]`: the object is bracketed at the end; the file ends at the first
    // ':' not part of a Rust path separator ("::").
    let rest = match rest.rfind(" [") {
        Some(at) if rest.ends_with(']') => &rest[..at],
        _ => rest,
    };
    let function = strip_file(rest)?;
    Some((count, strip_hash(function).to_owned()))
}

/// `file:function` → `function` (`???:function` when the file is unknown).
fn strip_file(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            if bytes.get(i + 1) == Some(&b':') {
                // A path separator inside a name with no file part before it.
                return None;
            }
            return Some(&s[i + 1..]);
        }
        i += 1;
    }
    None
}

/// Drops a legacy-mangling hash (`::h0123456789abcdef`), so that names stay the same from one
/// build to the next.
fn strip_hash(function: &str) -> &str {
    match function.rsplit_once("::h") {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name,
        _ => function,
    }
}

/// The sum of the inclusive counts of `functions` in `rows` (0 for a function not listed).
pub fn inclusive(rows: &[(String, u64)], functions: &[&str]) -> u64 {
    functions.iter().filter_map(|f| rows.iter().find(|(name, _)| name == f)).map(|(_, n)| n).sum()
}

/// The table: the whole request (the marker function's inclusive count) over `requests`, each
/// stage per request with its share, and `other` (what no stage covers: routing, reading the
/// envelope, rule checks not listed, the executor and the signer's queue).
pub fn measure(
    rows: &[(String, u64)],
    marker: &str,
    stages: &[StageSpec],
    requests: u64,
) -> Option<(u64, u64, Vec<StageCount>)> {
    let whole = inclusive(rows, &[marker]);
    if whole == 0 || requests == 0 {
        return None;
    }
    let per = |n: u64| n / requests;
    let share = |n: u64| (n as f64 * 1000.0 / whole as f64).round() / 10.0;
    let mut out = Vec::with_capacity(stages.len() + 1);
    let mut covered = 0;
    let mut hsm = 0;
    for s in stages {
        let n = inclusive(rows, s.functions).saturating_sub(inclusive(rows, s.less));
        covered += n;
        if s.hsm {
            hsm += n;
        }
        out.push(StageCount {
            stage: s.name.to_owned(),
            functions: s
                .functions
                .iter()
                .map(|f| (*f).to_owned())
                .chain(s.less.iter().map(|f| format!("− {f}")))
                .collect(),
            per_request: per(n),
            share_pct: share(n),
            hsm: s.hsm,
        });
    }
    let other = whole.saturating_sub(covered);
    out.push(StageCount {
        stage: "other".to_owned(),
        functions: vec!["(the whole less every stage above)".to_owned()],
        per_request: per(other),
        share_pct: share(other),
        hsm: false,
    });
    Some((per(whole), per(whole.saturating_sub(hsm)), out))
}

/// Thousands separators, as the table prints counts.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Measurement {
    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "Instruction counts per request, {} ({} requests in process under {}; {} not issued){}\n\n",
            self.exchange,
            self.requests,
            self.valgrind,
            self.not_issued,
            self.commit.as_deref().map(|c| format!(", commit {c}")).unwrap_or_default(),
        );
        s.push_str("| stage | instructions / request | share | function (inclusive) |\n");
        s.push_str("|---|---:|---:|---|\n");
        s.push_str(&format!(
            "| **whole request** | **{}** | 100.0 % | the measured loop / requests |\n",
            grouped(self.whole_per_request)
        ));
        s.push_str(&format!(
            "| segl's own (whole less HSM) | {} | {:.1} % | |\n",
            grouped(self.segl_per_request),
            self.segl_per_request as f64 * 100.0 / self.whole_per_request.max(1) as f64
        ));
        for st in &self.stages {
            let name = if st.hsm { format!("{} (HSM, not segl)", st.stage) } else { st.stage.clone() };
            s.push_str(&format!(
                "| {} | {} | {:.1} % | {} |\n",
                name,
                grouped(st.per_request),
                st.share_pct,
                st.functions.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" + ")
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A cut-down `callgrind_annotate --inclusive=yes` output of valgrind 3.19.
    const SAMPLE: &str = "\
--------------------------------------------------------------------------------
Profile data file 'callgrind.out' (creator: callgrind-3.19.0)
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
10,000,000 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                  file:function
--------------------------------------------------------------------------------
10,000,000 (100.0%)  ???:segl_icount::icount_measured [/t/segl-icount]
 4,000,000 (40.00%)  ???:C_Sign [/usr/lib/softhsm/libsofthsm2.so]
 2,000,000 (20.00%)  src/xml/dsig/verify.rs:segl::xml::dsig::verify::verify_enveloped_using [/t/segl-icount]
 1,000,000 (10.00%)  ???:<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop [/t/segl-icount]
   750,000 ( 7.50%)  src/xml/parse.rs:segl::xml::parse::Document::parse_with::h0123456789abcdef [/t/segl-icount]
   250,000 ( 2.50%)  /x/memchr-2.8.3/src/arch/x86_64/memchr.rs:segl::xml::parse::Document::parse_with [/t/segl-icount]
";

    #[test]
    fn reads_rows_keeps_the_whole_of_a_function_listed_per_file_and_drops_hashes() {
        let rows = parse_annotate(SAMPLE);
        assert_eq!(inclusive(&rows, &["segl_icount::icount_measured"]), 10_000_000);
        assert_eq!(inclusive(&rows, &["C_Sign"]), 4_000_000);
        assert_eq!(inclusive(&rows, &["segl::xml::dsig::verify::verify_enveloped_using"]), 2_000_000);
        assert_eq!(inclusive(&rows, &["<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"]), 1_000_000);
        assert_eq!(inclusive(&rows, &["segl::xml::parse::Document::parse_with"]), 750_000);
        assert_eq!(inclusive(&rows, &["PROGRAM TOTALS"]), 0, "the totals line is not a function");
        assert_eq!(inclusive(&rows, &["absent"]), 0);
    }

    #[test]
    fn the_table_divides_by_requests_and_leaves_the_rest_as_other() {
        let rows = parse_annotate(SAMPLE);
        let stages = [
            StageSpec {
                name: "parse",
                functions: &["segl::xml::parse::Document::parse_with"],
                less: &[],
                what: "",
                hsm: false,
            },
            StageSpec { name: "sign", functions: &["C_Sign"], less: &[], what: "", hsm: true },
            StageSpec {
                name: "verify",
                functions: &["segl::xml::dsig::verify::verify_enveloped_using"],
                less: &["<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"],
                what: "",
                hsm: false,
            },
        ];
        let (whole, segl, rows) = measure(&rows, "segl_icount::icount_measured", &stages, 10).unwrap();
        assert_eq!((whole, segl), (1_000_000, 600_000));
        let got: Vec<(&str, u64, f64)> =
            rows.iter().map(|r| (r.stage.as_str(), r.per_request, r.share_pct)).collect();
        assert_eq!(
            got,
            [
                ("parse", 75_000, 7.5),
                ("sign", 400_000, 40.0),
                ("verify", 100_000, 10.0),
                ("other", 425_000, 42.5)
            ]
        );
        assert_eq!(rows[2].functions[1], "− <alloc::vec::Vec<T> as core::ops::drop::Drop>::drop");
        assert!(measure(&[], "segl_icount::icount_measured", &stages, 10).is_none());
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
    }
}
