//! Writing a report directory: `report.json`, CSV tables, SVG plots and `SUMMARY.md`.

use std::path::Path;

use super::svg::{Chart, Series};
use super::{markdown, Report};
use crate::record::{SecondRecord, SegmentRecord};
use crate::sweep::SweepStep;

/// The files of a report, by name.
pub fn render(report: &Report) -> Vec<(&'static str, String)> {
    let m = &report.measurements;
    let mut files = vec![
        (
            "report.json",
            serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        ),
        ("sweep.csv", steps_csv(&m.sweep)),
        ("saturation.csv", steps_csv(m.saturation.as_slice())),
        ("ceiling.csv", steps_csv(&m.ceiling)),
        ("confirm.csv", confirm_csv(report)),
        ("hsm.csv", hsm_csv(report)),
        ("sizing.csv", sizing_csv(report)),
        ("latency_vs_load.svg", latency_vs_load(report).render()),
        ("throughput_vs_load.svg", throughput_vs_load(report).render()),
        ("cpu_vs_load.svg", cpu_vs_load(report).render()),
    ];
    for (i, t) in m.tax_day.iter().chain(&m.tax_day_large_pool).enumerate() {
        let [phases, seconds, throughput, latency, cpu] = markdown::taxday_files(i);
        files.push((phases, segments_csv(&t.run.segments)));
        files.push((seconds, seconds_csv(&t.run.seconds)));
        let bands = phase_bands(&t.run.segments);
        files.push((throughput, taxday_throughput(&t.run.seconds, &bands).render()));
        files.push((latency, taxday_latency(&t.run.seconds, &bands, report).render()));
        files.push((cpu, cpu_per_core(&t.run.seconds, &bands).render()));
    }
    files.push(("SUMMARY.md", markdown::summary(report)));
    files
}

/// Writes the report into `dir` (created if needed).
pub fn write(dir: &Path, report: &Report) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in render(report) {
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let field = |f: &str| {
        if f.contains([',', '"', '\n']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    };
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        out.push_str(&row.iter().map(|f| field(f)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

fn num(v: f64) -> String {
    if v.is_finite() {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        String::new()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_default()
}

const SEGMENT_COLUMNS: [&str; 24] = [
    "label",
    "offered_rate",
    "secs",
    "sent",
    "ok",
    "shed",
    "fault",
    "timeout",
    "error",
    "goodput",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "p999_ms",
    "max_ms",
    "mean_ms",
    "queue_p99_ms",
    "server_cpu_us_per_request",
    "generator_cpu_us_per_request",
    "statuses",
    "hsm_cpu_us_per_signature",
    "hsm_cpu_us_per_request",
    "cpu_us_excl_hsm_in_server",
    "server_kernel_share",
];

fn segment_row(s: &SegmentRecord) -> Vec<String> {
    let l = &s.latency;
    vec![
        s.label.clone(),
        num(s.offered_rate),
        num(s.secs),
        s.sent.to_string(),
        s.counts.ok.to_string(),
        s.counts.shed.to_string(),
        s.counts.fault.to_string(),
        s.counts.timeout.to_string(),
        s.counts.error.to_string(),
        num(s.goodput),
        num(l.p50_ms),
        num(l.p90_ms),
        num(l.p99_ms),
        num(l.p999_ms),
        num(l.max_ms),
        num(l.mean_ms),
        num(s.queue_delay.p99_ms),
        opt(s.server_cpu_us_per_request()),
        opt(s.generator_cpu_us_per_request()),
        s.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" "),
        opt(s.hsm_cpu_us_per_signature()),
        opt(s.hsm_cpu_us_per_request()),
        opt(s.cpu_us_excl_hsm_in_server()),
        opt(s.server_kernel_share()),
    ]
}

fn segments_csv(segments: &[SegmentRecord]) -> String {
    csv(&SEGMENT_COLUMNS, segments.iter().map(segment_row))
}

fn steps_csv(steps: &[SweepStep]) -> String {
    let mut header = vec!["rate", "passed", "why"];
    header.extend(SEGMENT_COLUMNS);
    header.push("core_busy");
    csv(
        &header,
        steps.iter().map(|s| {
            let mut row = vec![num(s.rate), s.passed().to_string(), s.failed.clone().unwrap_or_default()];
            row.extend(segment_row(&s.result));
            row.push(s.core_busy.iter().map(|b| num(*b)).collect::<Vec<_>>().join(" "));
            row
        }),
    )
}

fn confirm_csv(report: &Report) -> String {
    let mut header = vec![
        "fraction",
        "cpu_us_excl_hsm",
        "excl_hsm_method",
        "cpu_us_excl_hsm_user",
        "cpu_us_excl_hsm_kernel",
        "cpu_us_excl_hsm_standalone",
    ];
    header.extend(SEGMENT_COLUMNS);
    let summaries = &report.results.confirm;
    csv(
        &header,
        report.measurements.confirm.iter().zip(summaries).map(|(c, s)| {
            let method = match s.excl_hsm_method {
                super::ExclHsmMethod::InServer => "in_server",
                super::ExclHsmMethod::Standalone => "standalone",
            };
            let mut row = vec![
                num(c.fraction),
                opt(s.cpu_us_excl_hsm),
                method.to_owned(),
                opt(s.cpu_us_excl_hsm_user),
                opt(s.cpu_us_excl_hsm_kernel),
                opt(s.cpu_us_excl_hsm_standalone),
            ];
            row.extend(segment_row(&c.result));
            row
        }),
    )
}

fn seconds_csv(seconds: &[SecondRecord]) -> String {
    let cores = seconds.iter().map(|s| s.core_busy.len()).max().unwrap_or(0);
    let core_names: Vec<String> = (0..cores).map(|c| format!("cpu{c}_busy")).collect();
    let mut header = vec![
        "t",
        "offered",
        "ok",
        "shed",
        "fault",
        "timeout",
        "error",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "server_cores",
        "generator_cores",
    ];
    header.extend(core_names.iter().map(String::as_str));
    csv(
        &header,
        seconds.iter().map(|s| {
            let mut row = vec![
                s.t.to_string(),
                s.offered.to_string(),
                s.done.ok.to_string(),
                s.done.shed.to_string(),
                s.done.fault.to_string(),
                s.done.timeout.to_string(),
                s.done.error.to_string(),
                num(s.p50_ms),
                num(s.p99_ms),
                num(s.max_ms),
                opt(s.server_cores),
                opt(s.generator_cores),
            ];
            row.extend((0..cores).map(|c| opt(s.core_busy.get(c).copied())));
            row
        }),
    )
}

fn hsm_csv(report: &Report) -> String {
    let h = &report.measurements.hsm;
    csv(
        &["when", "sessions", "signatures", "secs", "per_sec", "cpu_us_per_sign"],
        [
            ("before", &h.before_one),
            ("before", &h.before_all),
            ("after", &h.after_one),
            ("after", &h.after_all),
        ]
        .map(|(when, r)| {
            vec![
                when.to_owned(),
                r.sessions.to_string(),
                r.signatures.to_string(),
                num(r.secs),
                num(r.per_sec),
                num(r.cpu_us_per_sign),
            ]
        }),
    )
}

fn sizing_csv(report: &Report) -> String {
    let r = &report.results;
    let rows = [
        ("tax day", &r.tax_day_sizing, r.tax_day_embedded_nodes),
        ("target", &r.target_sizing, r.target_embedded_nodes),
    ]
    .into_iter()
    .flat_map(|(what, sizes, embedded)| {
        let rate = if what == "tax day" { r.tax_day_rate } else { r.target_rate };
        let mut rows = vec![vec![
            what.to_owned(),
            num(rate),
            "embedded SoftHSM (measured)".to_owned(),
            opt(r.capacity),
            String::new(),
            opt(r.capacity),
            embedded.map(|n| n.to_string()).unwrap_or_default(),
        ]];
        rows.extend(sizes.iter().map(|s| {
            vec![
                what.to_owned(),
                num(s.rate),
                s.hsm.name.clone(),
                num(s.hsm.signs_per_sec),
                s.hsms.to_string(),
                num(s.node_cpu_rate),
                s.nodes.to_string(),
            ]
        }));
        rows
    });
    csv(&["scenario", "rate", "hsm", "hsm_signs_per_sec", "hsms", "node_rate", "nodes"], rows)
}

fn phase_bands(segments: &[SegmentRecord]) -> Vec<(f64, f64, String)> {
    let mut t = 0.0;
    segments
        .iter()
        .map(|s| {
            let band = (t, t + s.secs, s.label.clone());
            t += s.secs;
            band
        })
        .collect()
}

fn latency_vs_load(report: &Report) -> Chart {
    let steps = &report.measurements.sweep;
    let pts = |f: fn(&SweepStep) -> f64| steps.iter().map(|s| (s.rate, f(s))).collect::<Vec<_>>();
    let mut vlines = Vec::new();
    if let Some(k) = report.results.knee_rate {
        vlines.push((k, format!("knee {k:.0}/s")));
    }
    Chart {
        title: "Latency vs offered load (sweep; from intended send time)".into(),
        x_label: "offered rate, requests/s".into(),
        y_label: "latency of issued cards, ms (log)".into(),
        series: vec![
            Series::dots("p50", pts(|s| s.result.latency.p50_ms)),
            Series::dots("p90", pts(|s| s.result.latency.p90_ms)),
            Series::dots("p99", pts(|s| s.result.latency.p99_ms)),
            Series::dots("p99.9", pts(|s| s.result.latency.p999_ms)),
        ],
        y_log: true,
        hlines: vec![(
            report.settings.criteria.p99_target_ms,
            format!("p99 target {} ms", report.settings.criteria.p99_target_ms),
        )],
        vlines,
        ..Chart::default()
    }
}

fn throughput_vs_load(report: &Report) -> Chart {
    let steps = &report.measurements.sweep;
    let max = steps.iter().chain(report.measurements.saturation.as_ref()).map(|s| s.rate).fold(0.0, f64::max);
    Chart {
        title: "Issued cards vs offered load (sweep)".into(),
        x_label: "offered rate, requests/s".into(),
        y_label: "requests/s".into(),
        series: vec![
            Series::dots(
                "issued (goodput)",
                steps
                    .iter()
                    .chain(report.measurements.saturation.as_ref())
                    .map(|s| (s.rate, s.result.goodput))
                    .collect(),
            ),
            Series::line("offered", vec![(0.0, 0.0), (max, max)]),
            Series::dots(
                "failed + shed /s",
                steps
                    .iter()
                    .map(|s| {
                        (s.rate, (s.result.counts.failed() + s.result.counts.shed) as f64 / s.result.secs)
                    })
                    .collect(),
            ),
        ],
        hlines: vec![(
            report.results.raw_sign_rate,
            format!("raw C_Sign {:.0}/s", report.results.raw_sign_rate),
        )],
        ..Chart::default()
    }
}

fn cpu_vs_load(report: &Report) -> Chart {
    let steps = &report.measurements.sweep;
    let cores = steps.iter().map(|s| s.core_busy.len()).max().unwrap_or(0);
    let mut series: Vec<Series> = (0..cores)
        .map(|c| {
            Series::dots(
                format!("cpu{c} busy %"),
                steps
                    .iter()
                    .map(|s| (s.rate, 100.0 * s.core_busy.get(c).copied().unwrap_or(f64::NAN)))
                    .collect(),
            )
        })
        .collect();
    series.push(Series::dots(
        "segl, % of one core",
        steps
            .iter()
            .map(|s| {
                (
                    s.rate,
                    s.result
                        .server_cpu_ns
                        .map(|ns| ns as f64 / 1e9 / s.result.secs * 100.0)
                        .unwrap_or(f64::NAN),
                )
            })
            .collect(),
    ));
    series.push(Series::dots(
        "generator, % of one core",
        steps
            .iter()
            .map(|s| {
                (
                    s.rate,
                    s.result
                        .generator_cpu_ns
                        .map(|ns| ns as f64 / 1e9 / s.result.secs * 100.0)
                        .unwrap_or(f64::NAN),
                )
            })
            .collect(),
    ));
    Chart {
        title: "CPU vs offered load (sweep)".into(),
        x_label: "offered rate, requests/s".into(),
        y_label: "% busy".into(),
        series,
        ..Chart::default()
    }
}

fn taxday_throughput(seconds: &[SecondRecord], bands: &[(f64, f64, String)]) -> Chart {
    let s =
        |f: fn(&SecondRecord) -> f64| seconds.iter().map(|x| (x.t as f64 + 0.5, f(x))).collect::<Vec<_>>();
    Chart {
        title: "Tax day: throughput and shed rate over time".into(),
        x_label: "seconds".into(),
        y_label: "requests/s".into(),
        series: vec![
            Series::line("offered", s(|x| x.offered as f64)),
            Series::line("issued (goodput)", s(|x| x.done.ok as f64)),
            Series::line("shed (503)", s(|x| x.done.shed as f64)),
            Series::line("failed", s(|x| x.done.failed() as f64)),
        ],
        bands: bands.to_vec(),
        ..Chart::default()
    }
}

fn taxday_latency(seconds: &[SecondRecord], bands: &[(f64, f64, String)], report: &Report) -> Chart {
    let s = |f: fn(&SecondRecord) -> f64| {
        seconds
            .iter()
            .map(|x| (x.t as f64 + 0.5, if x.p50_ms > 0.0 { f(x) } else { f64::NAN }))
            .collect::<Vec<_>>()
    };
    Chart {
        title: "Tax day: latency by intended send second".into(),
        x_label: "seconds".into(),
        y_label: "ms (log)".into(),
        series: vec![
            Series::line("p50", s(|x| x.p50_ms)),
            Series::line("p99", s(|x| x.p99_ms)),
            Series::line("max", s(|x| x.max_ms)),
        ],
        y_log: true,
        hlines: vec![(report.settings.criteria.p99_target_ms, "p99 target".into())],
        bands: bands.to_vec(),
        ..Chart::default()
    }
}

fn cpu_per_core(seconds: &[SecondRecord], bands: &[(f64, f64, String)]) -> Chart {
    let cores = seconds.iter().map(|s| s.core_busy.len()).max().unwrap_or(0);
    let mut series: Vec<Series> = (0..cores)
        .map(|c| {
            Series::line(
                format!("cpu{c} busy %"),
                seconds
                    .iter()
                    .map(|s| (s.t as f64 + 0.5, 100.0 * s.core_busy.get(c).copied().unwrap_or(f64::NAN)))
                    .collect(),
            )
        })
        .collect();
    series.push(Series::line(
        "segl, % of one core",
        seconds
            .iter()
            .map(|s| (s.t as f64 + 0.5, s.server_cores.map(|c| c * 100.0).unwrap_or(f64::NAN)))
            .collect(),
    ));
    series.push(Series::line(
        "generator, % of one core",
        seconds
            .iter()
            .map(|s| (s.t as f64 + 0.5, s.generator_cores.map(|c| c * 100.0).unwrap_or(f64::NAN)))
            .collect(),
    ));
    Chart {
        title: "Tax day: CPU per core (/proc/stat) and per process".into(),
        x_label: "seconds".into(),
        y_label: "% busy".into(),
        series,
        bands: bands.to_vec(),
        ..Chart::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_renders_and_the_csv_matches_the_data() {
        let (settings, m) = super::super::tests::synthetic();
        let results = super::super::analyse(&settings, &m);
        let report = Report { settings, measurements: m, results };
        let files = render(&report);
        let get = |n: &str| files.iter().find(|f| f.0 == n).map(|f| f.1.clone()).unwrap();
        let sweep = get("sweep.csv");
        assert_eq!(sweep.lines().count(), 1 + 5);
        let knee = sweep.lines().find(|l| l.starts_with("1500,")).unwrap();
        assert!(knee.starts_with("1500,true,,1500/s,1500,10,15000,14990,"), "{knee}");
        assert!(get("latency_vs_load.svg").contains("knee 1500/s"));
        let back: Report = serde_json::from_str(&get("report.json")).unwrap();
        assert_eq!(back.results, report.results);
        assert!(get("SUMMARY.md").contains("1,499"));
        assert!(get("sizing.csv").lines().any(|l| l.starts_with("target,10000,network HSM,10000,2,35000,1")));
        let confirm = get("confirm.csv");
        assert!(confirm.lines().nth(2).unwrap().starts_with("0.8,40,in_server,20,20,420,"), "{confirm}");
        assert!(confirm.lines().nth(2).unwrap().ends_with(",1500,1500,40,0.013"), "{confirm}");
        let summary = get("SUMMARY.md");
        assert!(summary.contains("Load to segl: TLS 1.3, rustls on both ends"), "{summary}");
        assert!(!summary.contains("TLS is not included"));
        assert!(summary.contains("**40 µs** at 80% of capacity"), "{summary}");
        assert!(summary.contains("− 1500 µs of C_Sign CPU per request measured in the server"), "{summary}");
        assert!(summary.contains("would give 420 µs"), "{summary}");
        assert!(summary.contains("| 80% | 1,199 | 1,199 | 2.00 ms | 8.00 ms | 16.0 ms | 0.00% | 1540 | 1500 | **40** | 20 | 20 | 420 | 20 |"), "{summary}");
        assert!(
            summary.contains("1500 µs per signature in the server at 80% of capacity vs 1120 µs standalone"),
            "{summary}"
        );
        assert!(summary.contains("over plain HTTP (segl's load went over TLS"), "{summary}");
    }

    #[test]
    fn both_tax_day_pools_are_reported_with_their_overload_ratios() {
        use crate::record::RunRecord;
        let (settings, mut m) = super::super::tests::synthetic();
        let tax_day = |connections: usize, surge_goodput: f64| {
            let phase = |label: &str, rate: f64, goodput: f64, p99: f64| {
                let mut s = super::super::tests::segment(rate, goodput, p99, None);
                s.label = label.into();
                s
            };
            let run = RunRecord {
                segments: vec![
                    phase("hold", 1200.0, 1200.0, 10.0),
                    phase("surge", 3600.0, surge_goodput, 20.0),
                    phase("recovery", 1200.0, 1200.0, 15.0),
                ],
                seconds: Vec::new(),
                wall_secs: 3.0,
                reused_cards: 0,
            };
            let profile =
                crate::profiles::TaxDay::relative_to(1500.0, 0.3, 0.8, 3.0, [0.0, 0.0, 1.0, 1.0, 1.0]);
            super::super::TaxDayRun { profile, connections: Some(connections), run }
        };
        m.tax_day = Some(tax_day(128, 1400.0));
        m.tax_day_large_pool = Some(tax_day(1024, 1200.0));
        let results = super::super::analyse(&settings, &m);
        let report = Report { settings, measurements: m, results };
        let files = render(&report);
        let names: Vec<_> = files.iter().map(|f| f.0).collect();
        for name in ["taxday_phases.csv", "taxday_large_pool_phases.csv", "taxday_large_pool_latency.svg"] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let summary = &files.iter().find(|f| f.0 == "SUMMARY.md").unwrap().1;
        // Capacity 1,500/s and p99 8 ms at 80 %: 1,400 / 1,500, 20 / 8 and 15 / 10.
        assert!(
            summary.contains("| overload, 128 connections | surge goodput / capacity **0.93** (target ≥ 0.90); surge p99 / p99 at 80 % **2.50** (≤ 3); recovery p99 / hold p99 **1.50** (≤ 2) |"),
            "{summary}"
        );
        assert!(
            summary.contains("| overload, 1,024 connections | surge goodput / capacity **0.80**"),
            "{summary}"
        );
        assert!(
            summary.contains("## Tax day, 128 connections")
                && summary.contains("## Tax day, 1,024 connections")
        );
        assert!(summary.contains("![tax day latency](taxday_large_pool_latency.svg)"), "{summary}");
    }

    #[test]
    fn without_c_sign_cpu_from_the_server_the_summary_says_it_fell_back() {
        let (mut settings, mut m) = super::super::tests::synthetic();
        settings.tls = false;
        for c in &mut m.confirm {
            c.result.hsm_cpu_ns = None;
        }
        m.hsm_in_server_error =
            Some("http://127.0.0.1:9/metrics has no segl_hsm_sign_cpu_seconds_total".into());
        let results = super::super::analyse(&settings, &m);
        let report = Report { settings, measurements: m, results };
        let summary = markdown::summary(&report);
        assert!(summary.contains("**420 µs** at 80% of capacity"), "{summary}");
        assert!(
            summary.contains("segl's /metrics gave no C_Sign CPU (http://127.0.0.1:9/metrics has no"),
            "{summary}"
        );
        assert!(summary.contains("plain HTTP: TLS is not included"), "{summary}");
        assert!(summary.contains("| **420**† |"), "{summary}");
        assert!(!summary.contains("C_Sign CPU measured in the server vs standalone"), "{summary}");
    }

    #[test]
    fn a_report_from_before_tls_and_in_server_c_sign_cpu_still_renders() {
        // The report.json of the first 2026-11-23 report (plain HTTP, standalone C_Sign), kept
        // as it was committed then.
        let json = include_str!("../../tests/data/report-2026-11-23-fba3aca-plain.json");
        let mut report: Report = serde_json::from_str(json).unwrap();
        report.results = super::super::analyse(&report.settings, &report.measurements);
        assert!(!report.settings.tls);
        assert_eq!(report.results.excl_hsm_method, super::super::ExclHsmMethod::Standalone);
        // The committed summary's figure: 1,622 µs per request − 1,162 µs per C_Sign = 460 µs.
        assert_eq!(report.results.cpu_us_excl_hsm.map(f64::round), Some(460.0));
        let files = render(&report);
        let summary = &files.iter().find(|f| f.0 == "SUMMARY.md").unwrap().1;
        assert!(summary.contains("**460 µs** at 80% of capacity"), "{summary}");
        assert!(summary.contains("TLS is not included"), "{summary}");
    }
}
