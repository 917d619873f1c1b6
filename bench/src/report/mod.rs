//! The capacity report: what was measured (sweep, confirmation runs, tax-day, raw HSM rate,
//! the generator's ceiling), what follows from it ([`analyse`]: capacity at the p99 target,
//! issued-to-raw-signing ratio, CPU per request excluding the HSM, sizing), and the files
//! written for it (JSON, CSV, SVG, Markdown).
//!
//! New fields carry `#[serde(default)]`: `segl-load render` must still read the report.json of
//! an older report.

pub mod files;
pub mod markdown;
pub mod run;
pub mod sizing;
pub mod svg;

use segl::config::SignerModeConfig;
use serde::{Deserialize, Serialize};

use crate::engine::EngineOptions;
use crate::hsm_rate::HsmRate;
use crate::pool::PoolStats;
use crate::procfs::MachineInfo;
use crate::profiles::TaxDay;
use crate::record::{RunRecord, SegmentRecord};
use crate::sweep::{self, Criteria, SweepPlan, SweepStep};
use sizing::{HsmClass, NodeProfile, PeakDay, Sizing};

/// The shape of the tax-day run relative to the measured capacity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaxDayShape {
    /// Baseline rate as a fraction of capacity.
    pub baseline_fraction: f64,
    /// Peak (hold) rate as a fraction of capacity.
    pub peak_fraction: f64,
    /// Surge rate over the peak rate.
    pub surge_factor: f64,
    /// Seconds of baseline, ramp, hold, surge, recovery.
    pub secs: [f64; 5],
    /// Connections of a second tax-day run (a large client pool beside the first run's small
    /// one: a queue that holds connections hurts a small pool most); `None`: one run only.
    #[serde(default)]
    pub large_pool_connections: Option<usize>,
}

/// The settings a report ran with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// What a passing sweep step must meet.
    pub criteria: Criteria,
    /// Connections, keep-alive, deadline.
    pub engine: EngineOptions,
    /// Endpoints by weight.
    pub mix: Vec<(String, u32)>,
    /// Sweep rates as fractions of the raw signing rate, then growth, refinement, lengths.
    pub sweep_fractions: Vec<f64>,
    /// The sweep plan (rates filled in from the fractions).
    pub sweep: SweepPlan,
    /// The saturation step's rate over the highest of the first failing sweep rate, the raw
    /// signing rate and the rate the cores could sign at given one signature's CPU.
    #[serde(default = "default_saturation_factor")]
    pub saturation_factor: f64,
    /// Confirmation runs as fractions of capacity.
    pub confirm_fractions: Vec<f64>,
    /// Measured seconds of each confirmation run.
    pub confirm_secs: f64,
    /// The confirmation run whose CPU figure is the headline.
    pub headline_fraction: f64,
    /// The tax-day run's shape.
    pub tax_day: TaxDayShape,
    /// Rates for the generator's ceiling, as multiples of capacity.
    pub ceiling_multiples: Vec<f64>,
    /// Seconds of each raw HSM measurement.
    pub hsm_secs: f64,
    /// The peak-day assumptions.
    pub peak_day: PeakDay,
    /// The rate the user asked to size for.
    pub target_rate: f64,
    /// Planned utilisation of CPU and HSM at peak.
    pub headroom: f64,
    /// External HSM classes to size with.
    pub hsm_classes: Vec<HsmClass>,
    /// The server's log level.
    pub server_log_level: String,
    /// segl's load went over TLS (older reports: plain HTTP).
    #[serde(default)]
    pub tls: bool,
}

fn default_saturation_factor() -> f64 {
    1.5
}

/// The server measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Executor cores.
    pub cores: usize,
    /// PKCS#11 module.
    pub hsm_module: String,
    /// How segl signed: inline on its cores (an in-process module) or pipelined on signing
    /// threads (a networked HSM); older reports, which have none, were all inline.
    #[serde(default)]
    pub signer: SignerModeConfig,
    /// Token label.
    pub token: String,
    /// Key label.
    pub key: String,
    /// segl version: `git describe --always --dirty` when the measured binary was built.
    pub version: String,
    /// Git commit the measured binary was built from (`-dirty` with local changes), when known.
    pub commit: Option<String>,
    /// Bytes of an issued-card response.
    pub response_bytes: usize,
    /// WARN lines in its log during the report.
    pub log_warnings: u64,
    /// ERROR lines in its log.
    pub log_errors: u64,
    /// A few of those lines.
    pub log_samples: Vec<String>,
    /// Whether segl had exited by the end of the load (it must not).
    #[serde(default)]
    pub exited: bool,
    /// How the load reached segl (TLS and its certificate, or plain HTTP); empty in older
    /// reports.
    #[serde(default)]
    pub transport: String,
}

/// Raw C_Sign rates before the sweep and right after the saturation step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HsmRuns {
    /// One session, before the sweep.
    pub before_one: HsmRate,
    /// As many sessions as segl signs on (see [`signing_sessions`]), before the sweep.
    pub before_all: HsmRate,
    /// One session, after the saturation step.
    pub after_one: HsmRate,
    /// All sessions, after the saturation step.
    pub after_all: HsmRate,
}

/// A constant-rate run at a fraction of capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmRun {
    /// Fraction of capacity.
    pub fraction: f64,
    /// Offered rate.
    pub rate: f64,
    /// What happened.
    pub result: SegmentRecord,
}

/// The tax-day run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxDayRun {
    /// The rates and lengths used.
    pub profile: TaxDay,
    /// The generator's connections (its client pool) in this run.
    #[serde(default)]
    pub connections: Option<usize>,
    /// What happened.
    pub run: RunRecord,
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// UTC time the report started.
    pub started_at: String,
    /// The machine, described when the report started.
    pub machine: MachineInfo,
    /// Load average (1, 5, 15 min) when the report ended.
    #[serde(default)]
    pub load_average_at_end: String,
    /// The command line.
    pub command: String,
    /// The server.
    pub server: ServerInfo,
    /// The request pool.
    pub pool: PoolStats,
    /// Requests sent to segl in the report.
    pub requests_sent: u64,
    /// Of those, requests that repeated a pooled card under a fresh message id.
    pub reused_cards: u64,
    /// Raw signing.
    pub hsm: HsmRuns,
    /// The sweep.
    pub sweep: Vec<SweepStep>,
    /// One step well past the knee: what segl issues flat out.
    #[serde(default)]
    pub saturation: Option<SweepStep>,
    /// The confirmation runs.
    pub confirm: Vec<ConfirmRun>,
    /// The tax-day run.
    pub tax_day: Option<TaxDayRun>,
    /// The tax-day run again with a large client pool.
    #[serde(default)]
    pub tax_day_large_pool: Option<TaxDayRun>,
    /// The exchange called in the generator's process, without HTTP.
    #[serde(default)]
    pub in_process: Option<crate::inprocess::InProcess>,
    /// Why segl's `/metrics` gave no C_Sign CPU, when it did not (an older segl): segl's own
    /// CPU then falls back to subtracting the C_Sign CPU measured standalone.
    #[serde(default)]
    pub hsm_in_server_error: Option<String>,
    /// The generator against the trivial server.
    pub ceiling: Vec<SweepStep>,
    /// Generator CPU per request against the trivial server at its highest passing rate, µs.
    pub ceiling_body_bytes: usize,
}

/// One confirmation run's headline numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfirmSummary {
    /// Fraction of capacity.
    pub fraction: f64,
    /// Offered rate.
    pub rate: f64,
    /// Tokens issued per second.
    pub goodput: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Failed fraction.
    pub failure_rate: f64,
    /// Server CPU per answered request, µs (HSM signing included: SoftHSM runs in-process).
    pub server_cpu_us: Option<f64>,
    /// The same without the HSM operation, by `excl_hsm_method`.
    pub cpu_us_excl_hsm: Option<f64>,
    /// How `cpu_us_excl_hsm` was found.
    #[serde(default)]
    pub excl_hsm_method: ExclHsmMethod,
    /// CPU of one C_Sign inside the server during the run, µs.
    #[serde(default)]
    pub hsm_cpu_us_per_sign: Option<f64>,
    /// C_Sign CPU inside the server per answered request, µs.
    #[serde(default)]
    pub hsm_cpu_us_per_request: Option<f64>,
    /// Server CPU per request minus one C_Sign measured standalone (the older method), µs.
    #[serde(default)]
    pub cpu_us_excl_hsm_standalone: Option<f64>,
    /// `cpu_us_excl_hsm` in user space, µs (C_Sign is all user time).
    #[serde(default)]
    pub cpu_us_excl_hsm_user: Option<f64>,
    /// `cpu_us_excl_hsm` in the kernel, µs.
    #[serde(default)]
    pub cpu_us_excl_hsm_kernel: Option<f64>,
    /// Generator CPU per request, µs.
    pub generator_cpu_us: Option<f64>,
}

/// How segl's CPU per request excluding the HSM operation was found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclHsmMethod {
    /// segl's CPU minus the C_Sign CPU its own signing threads counted, in the same window.
    InServer,
    /// segl's CPU minus one C_Sign measured on its own while segl idled. A C_Sign inside a
    /// busy server costs more than that, so this overstates segl's own share.
    #[default]
    Standalone,
}

impl ExclHsmMethod {
    /// How the report names it.
    pub fn describe(self) -> &'static str {
        match self {
            ExclHsmMethod::InServer => "C_Sign CPU measured in the server",
            ExclHsmMethod::Standalone => "C_Sign CPU measured standalone",
        }
    }
}

/// What follows from the measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Tokens per second one node issues within the p99 target (the knee's goodput).
    pub capacity: Option<f64>,
    /// The knee step's offered rate.
    pub knee_rate: Option<f64>,
    /// Highest goodput of any sweep step or the saturation step.
    pub saturated_goodput: f64,
    /// Raw C_Sign rate on as many sessions as server cores: the better of the two
    /// measurements (a neighbour's load only ever slows a measurement down).
    pub raw_sign_rate: f64,
    /// Raw C_Sign rate on one session, the better of the two.
    pub raw_sign_rate_one: f64,
    /// CPU one signature costs measured standalone while segl idles, µs (one session, mean of
    /// before and after).
    pub cpu_us_per_sign: f64,
    /// CPU one signature cost inside the server during the headline run, µs.
    #[serde(default)]
    pub hsm_cpu_us_per_sign_in_server: Option<f64>,
    /// That over the standalone figure.
    #[serde(default)]
    pub hsm_cpu_in_server_over_standalone: Option<f64>,
    /// Saturated goodput over the raw signing rate (target ≥ 0.90).
    pub issue_ratio: f64,
    /// Capacity at the p99 target over the raw signing rate.
    pub issue_ratio_at_target: Option<f64>,
    /// CPU of one raw C_Sign over segl's CPU per issued card (headline run): the rate ratio a
    /// machine with nothing else on its cores would show, and robust to neighbours' load.
    pub cpu_ratio: Option<f64>,
    /// Per confirmation run.
    pub confirm: Vec<ConfirmSummary>,
    /// segl CPU µs per request excluding the HSM operation, from the headline run.
    pub cpu_us_excl_hsm: Option<f64>,
    /// How it was found.
    #[serde(default)]
    pub excl_hsm_method: ExclHsmMethod,
    /// The same by subtracting the standalone C_Sign CPU, for comparison.
    #[serde(default)]
    pub cpu_us_excl_hsm_standalone: Option<f64>,
    /// Highest rate the generator sustained against the trivial server.
    pub generator_ceiling: Option<f64>,
    /// That over the capacity (target ≥ 5).
    pub ceiling_ratio: Option<f64>,
    /// Every rate tried against the trivial server passed: the ceiling is higher still.
    #[serde(default)]
    pub ceiling_is_lower_bound: bool,
    /// The node profile the sizing uses.
    pub node: Option<NodeProfile>,
    /// Peak rate of the tax day under the stated assumptions.
    pub tax_day_rate: f64,
    /// Nodes with the embedded default for the tax day.
    pub tax_day_embedded_nodes: Option<u64>,
    /// Per external HSM class, for the tax day.
    pub tax_day_sizing: Vec<Sizing>,
    /// The user's rate.
    pub target_rate: f64,
    /// Nodes with the embedded default for the user's rate.
    pub target_embedded_nodes: Option<u64>,
    /// Per external HSM class, for the user's rate.
    pub target_sizing: Vec<Sizing>,
}

/// A complete report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// How it was run.
    pub settings: Settings,
    /// What was measured.
    pub measurements: Measurements,
    /// What follows.
    pub results: Results,
}

/// CPU per request without the HSM operation: the server's CPU per answered request minus
/// what the HSM's signatures cost on the same token (SoftHSM signs on the server's CPU).
pub fn cpu_excluding_hsm(
    server_cpu_us_per_request: f64,
    cpu_us_per_sign: f64,
    signs_per_request: f64,
) -> f64 {
    server_cpu_us_per_request - cpu_us_per_sign * signs_per_request
}

/// segl's CPU per answered request without the HSM operation in one window, and how it was
/// found: the C_Sign CPU segl counted in the same window when there is one, else one
/// standalone C_Sign per request (`standalone_cpu_us_per_sign`).
pub fn excl_hsm(s: &SegmentRecord, standalone_cpu_us_per_sign: f64) -> Option<(f64, ExclHsmMethod)> {
    match s.cpu_us_excl_hsm_in_server() {
        Some(u) => Some((u, ExclHsmMethod::InServer)),
        None => s
            .server_cpu_us_per_request()
            .map(|u| (cpu_excluding_hsm(u, standalone_cpu_us_per_sign, 1.0), ExclHsmMethod::Standalone)),
    }
}

/// [`excl_hsm`] split into user and kernel time `(user, kernel)`, µs: the kernel's share of
/// the server's CPU is all kernel, and what C_Sign took came out of user time. That holds for
/// an in-process module signing inline; a networked HSM's C_Sign is mostly the kernel's socket
/// work, so for a pipelined signer there is no split, and none where the arithmetic shows the
/// assumption broken (a negative user part).
pub fn excl_hsm_user_kernel(
    s: &SegmentRecord,
    excl_hsm_us: f64,
    signer: SignerModeConfig,
) -> Option<(f64, f64)> {
    if !signer.signs_on_the_serving_core() {
        return None;
    }
    let kernel = s.server_cpu_us_per_request()? * s.server_kernel_share()?;
    let user = excl_hsm_us - kernel;
    (user >= 0.0).then_some((user, kernel))
}

/// The sessions the raw C_Sign rate is measured on: as many as segl signs on at once (one per
/// core inline, `sessions_per_core` per core pipelined), so that raw and issued keep the HSM
/// equally busy; fewer would leave a networked HSM idle between round trips and flatter segl.
pub fn signing_sessions(config: &segl::config::Config, cores: usize) -> usize {
    cores * config.hsm.signing_sessions_per_core()
}

/// Derives the results from the measurements.
pub fn analyse(settings: &Settings, m: &Measurements) -> Results {
    let knee = sweep::knee(&m.sweep);
    let capacity = knee.map(|k| k.result.goodput);
    let saturated_goodput =
        sweep::saturated_goodput(&m.sweep).max(m.saturation.as_ref().map_or(0.0, |s| s.result.goodput));
    let mean = |a: f64, b: f64| (a + b) / 2.0;
    let raw_sign_rate = m.hsm.before_all.per_sec.max(m.hsm.after_all.per_sec);
    let raw_sign_rate_one = m.hsm.before_one.per_sec.max(m.hsm.after_one.per_sec);
    let cpu_us_per_sign = mean(m.hsm.before_one.cpu_us_per_sign, m.hsm.after_one.cpu_us_per_sign);
    let ratio = |x: f64| if raw_sign_rate > 0.0 { x / raw_sign_rate } else { 0.0 };

    let confirm: Vec<ConfirmSummary> = m
        .confirm
        .iter()
        .map(|c| {
            let server_cpu_us = c.result.server_cpu_us_per_request();
            let excl = excl_hsm(&c.result, cpu_us_per_sign);
            let split = excl.and_then(|(u, _)| excl_hsm_user_kernel(&c.result, u, m.server.signer));
            ConfirmSummary {
                fraction: c.fraction,
                rate: c.rate,
                goodput: c.result.goodput,
                p50_ms: c.result.latency.p50_ms,
                p99_ms: c.result.latency.p99_ms,
                p999_ms: c.result.latency.p999_ms,
                failure_rate: c.result.failure_rate(),
                server_cpu_us,
                cpu_us_excl_hsm: excl.map(|e| e.0),
                excl_hsm_method: excl.map_or(ExclHsmMethod::Standalone, |e| e.1),
                hsm_cpu_us_per_sign: c.result.hsm_cpu_us_per_signature(),
                hsm_cpu_us_per_request: c.result.hsm_cpu_us_per_request(),
                cpu_us_excl_hsm_standalone: server_cpu_us.map(|u| cpu_excluding_hsm(u, cpu_us_per_sign, 1.0)),
                cpu_us_excl_hsm_user: split.map(|s| s.0),
                cpu_us_excl_hsm_kernel: split.map(|s| s.1),
                generator_cpu_us: c.result.generator_cpu_us_per_request(),
            }
        })
        .collect();
    let headline = confirm.iter().find(|c| (c.fraction - settings.headline_fraction).abs() < 1e-9);
    let cpu_us_excl_hsm = headline.and_then(|c| c.cpu_us_excl_hsm);
    let excl_hsm_method = headline.map_or(ExclHsmMethod::Standalone, |c| c.excl_hsm_method);
    let cpu_us_excl_hsm_standalone = headline.and_then(|c| c.cpu_us_excl_hsm_standalone);
    let hsm_cpu_us_per_sign_in_server = headline.and_then(|c| c.hsm_cpu_us_per_sign);
    // A model of an HSM that signs on segl's own cores: meaningless for a networked one, whose
    // signature costs segl only the client side of a call.
    let cpu_ratio = headline
        .and_then(|c| c.server_cpu_us)
        .filter(|&u| u > 0.0 && m.server.signer.signs_on_the_serving_core())
        .map(|u| cpu_us_per_sign / u);

    let ceiling = sweep::knee(&m.ceiling).map(|k| k.result.goodput);
    let node = capacity.map(|capacity_at_p99| NodeProfile {
        capacity_at_p99,
        cpu_us_per_request: cpu_us_excl_hsm.unwrap_or(f64::NAN),
        cores: m.server.cores as f64,
        headroom: settings.headroom,
        signatures_per_request: signatures_per_request(&settings.mix),
    });
    let tax_day_rate = settings.peak_day.peak_rate();
    let size_all = |rate: f64| -> Vec<Sizing> {
        match &node {
            Some(n) if n.cpu_us_per_request.is_finite() => {
                settings.hsm_classes.iter().map(|h| sizing::size(rate, n, h)).collect()
            }
            _ => Vec::new(),
        }
    };
    Results {
        capacity,
        knee_rate: knee.map(|k| k.rate),
        saturated_goodput,
        raw_sign_rate,
        raw_sign_rate_one,
        cpu_us_per_sign,
        hsm_cpu_us_per_sign_in_server,
        hsm_cpu_in_server_over_standalone: hsm_cpu_us_per_sign_in_server
            .filter(|_| cpu_us_per_sign > 0.0)
            .map(|u| u / cpu_us_per_sign),
        issue_ratio: ratio(saturated_goodput),
        issue_ratio_at_target: capacity.map(ratio),
        cpu_ratio,
        cpu_us_excl_hsm,
        excl_hsm_method,
        cpu_us_excl_hsm_standalone,
        confirm,
        generator_ceiling: ceiling,
        ceiling_ratio: ceiling.zip(capacity).map(|(g, c)| if c > 0.0 { g / c } else { 0.0 }),
        ceiling_is_lower_bound: m
            .ceiling
            .iter()
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
            .is_some_and(|s| s.passed()),
        node,
        tax_day_rate,
        tax_day_embedded_nodes: node.map(|n| sizing::embedded_nodes(tax_day_rate, &n)),
        tax_day_sizing: size_all(tax_day_rate),
        target_rate: settings.target_rate,
        target_embedded_nodes: node.map(|n| sizing::embedded_nodes(settings.target_rate, &n)),
        target_sizing: size_all(settings.target_rate),
    }
}

/// HSM signatures per request of a mix: one for a DGWS card, two for an OIO answer
/// (Sosi2OIOSaml, JWT2OIOSaml: the assertion and the header; BST2SOSI, OIOSaml2Sosi: the card
/// and the header; Bst2Idws, JWT2Idws: the identity token and the header); weighted by the
/// mix.
pub fn signatures_per_request(mix: &[(String, u32)]) -> f64 {
    let total: u32 = mix.iter().map(|w| w.1).sum();
    if total == 0 {
        return 1.0;
    }
    let signatures: u32 =
        mix.iter().map(|(path, w)| crate::pool::RequestKind::of_path(path).signatures_per_token() * w).sum();
    f64::from(signatures) / f64::from(total)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::record::{Counts, Latency};

    pub(crate) fn segment(rate: f64, goodput: f64, p99_ms: f64, server_cpu_ns: Option<u64>) -> SegmentRecord {
        let sent = (rate * 10.0) as u64;
        let ok = (goodput * 10.0) as u64;
        SegmentRecord {
            label: format!("{rate}/s"),
            measured: true,
            secs: 10.0,
            offered_rate: rate,
            sent,
            counts: Counts { ok, timeout: sent - ok, ..Counts::default() },
            statuses: BTreeMap::new(),
            goodput,
            latency: Latency {
                count: ok,
                mean_ms: p99_ms / 4.0,
                p50_ms: p99_ms / 4.0,
                p90_ms: p99_ms / 2.0,
                p99_ms,
                p999_ms: p99_ms * 2.0,
                max_ms: p99_ms * 3.0,
            },
            queue_delay: Latency::default(),
            server_cpu_ns,
            generator_cpu_ns: Some(sent * 20_000),
            server_user_cpu_ns: None,
            server_system_cpu_ns: None,
            hsm_cpu_ns: None,
            hsm_signatures: None,
            endpoints: vec![],
        }
    }

    fn step(criteria: &Criteria, rate: f64, goodput: f64, p99_ms: f64) -> SweepStep {
        let result = segment(rate, goodput, p99_ms, None);
        SweepStep {
            rate,
            failed: criteria.verdict(&result),
            result,
            core_busy: vec![0.5, 0.5],
            first_try: None,
        }
    }

    fn rate(sessions: usize, per_sec: f64, cpu_us_per_sign: f64) -> HsmRate {
        HsmRate { sessions, signatures: per_sec as u64 * 3, secs: 3.0, per_sec, cpu_us_per_sign }
    }

    pub(crate) fn synthetic() -> (Settings, Measurements) {
        let criteria = Criteria {
            p99_target_ms: 100.0,
            max_failure_rate: 0.001,
            max_shed_rate: 0.001,
            min_goodput_fraction: 0.98,
        };
        let settings = Settings {
            criteria,
            engine: EngineOptions::default(),
            mix: vec![("/sts/services/NewSecurityTokenService".into(), 1)],
            sweep_fractions: vec![0.5, 1.0],
            saturation_factor: 1.5,
            sweep: SweepPlan {
                rates: vec![],
                growth: 1.2,
                max_rate: 1e6,
                refine: 2,
                warmup_secs: 2.0,
                step_secs: 10.0,
                retry_failed: true,
            },
            confirm_fractions: vec![0.5, 0.8, 1.0],
            confirm_secs: 10.0,
            headline_fraction: 0.8,
            tax_day: TaxDayShape {
                baseline_fraction: 0.3,
                peak_fraction: 0.8,
                surge_factor: 3.0,
                secs: [1.0; 5],
                large_pool_connections: Some(1024),
            },
            ceiling_multiples: vec![5.0, 10.0],
            hsm_secs: 3.0,
            peak_day: PeakDay::NORWEGIAN_TAX_DAY,
            target_rate: 10_000.0,
            headroom: 0.7,
            hsm_classes: vec![HsmClass { name: "network HSM".into(), signs_per_sec: 10_000.0 }],
            server_log_level: "info".into(),
            tls: true,
        };
        // Raw signing: 1,700/s on two sessions, then 1,720/s → the better, 1,720/s; one session
        // costs 1,100 then 1,140 µs of CPU per signature → mean 1,120 µs.
        let hsm = HsmRuns {
            before_one: rate(1, 860.0, 1100.0),
            before_all: rate(2, 1700.0, 1150.0),
            after_one: rate(1, 880.0, 1140.0),
            after_all: rate(2, 1720.0, 1150.0),
        };
        let sweep = vec![
            step(&criteria, 400.0, 400.0, 5.0),
            step(&criteria, 1200.0, 1199.0, 20.0),
            // Knee: passes with the most goodput.
            step(&criteria, 1500.0, 1499.0, 80.0),
            // Misses the p99 target but issues the most: saturation.
            step(&criteria, 1600.0, 1590.0, 400.0),
            step(&criteria, 2000.0, 1560.0, 3000.0),
        ];
        // Flat out: 1,650/s issued while 2,400/s are offered.
        let saturation = Some(step(&criteria, 2400.0, 1650.0, 4000.0));
        let confirm = [0.5, 0.8, 1.0]
            .iter()
            .map(|&f| {
                let r = 1499.0 * f;
                let n = (r * 10.0) as u64;
                // At 80%: 1,540 µs of server CPU per request (20 of it kernel), of which segl's
                // signing threads counted 1,500 µs in C_Sign (one signature per request) → 40 µs
                // of segl's own. The standalone C_Sign (1,120 µs) would leave 420 µs.
                let (cpu_ns, hsm_ns) = if f == 0.8 { (1_540_000, 1_500_000) } else { (1_600_000, 1_450_000) };
                let mut result = segment(r, r, 10.0 * f, Some(n * cpu_ns));
                result.server_user_cpu_ns = Some(n * (cpu_ns - 20_000));
                result.server_system_cpu_ns = Some(n * 20_000);
                result.hsm_cpu_ns = Some(n * hsm_ns);
                result.hsm_signatures = Some(n);
                ConfirmRun { fraction: f, rate: r, result }
            })
            .collect();
        let ceiling = vec![
            step(&criteria, 7495.0, 7495.0, 2.0),
            step(&criteria, 14990.0, 14990.0, 3.0),
            step(&criteria, 29980.0, 20000.0, 900.0),
        ];
        let machine = MachineInfo {
            hostname: "test".into(),
            cpu_model: "synthetic".into(),
            cpus: 2,
            machine_cpus: 2,
            memory_gib: 24.0,
            kernel: "6".into(),
            load_average: "0.00 0.00 0.00".into(),
        };
        let m = Measurements {
            started_at: "2025-01-01T00:00:00Z".into(),
            machine,
            load_average_at_end: "0.00 0.00 0.00".into(),
            command: "segl-load report".into(),
            server: ServerInfo {
                cores: 2,
                hsm_module: "softhsm".into(),
                signer: SignerModeConfig::Inline,
                token: "segl-sts".into(),
                key: "sts-signing".into(),
                version: "0".into(),
                commit: None,
                response_bytes: 6000,
                log_warnings: 0,
                log_errors: 0,
                log_samples: vec![],
                exited: false,
                transport: crate::tls::DESCRIPTION.into(),
            },
            pool: PoolStats {
                size: 10,
                threads: 2,
                build_secs: 1.0,
                card_mix: vec![],
                mean_body_bytes: 6000,
                sosi2oiosaml: None,
                bst2sosi: None,
                oiosaml2sosi: None,
                bst2idws: None,
                jwt2idws: None,
                jwt2oiosaml: None,
            },
            requests_sent: 100,
            reused_cards: 0,
            hsm,
            sweep,
            saturation,
            confirm,
            tax_day: None,
            tax_day_large_pool: None,
            in_process: None,
            hsm_in_server_error: None,
            ceiling,
            ceiling_body_bytes: 6000,
        };
        (settings, m)
    }

    #[test]
    fn report_arithmetic_on_a_synthetic_run() {
        let (settings, m) = synthetic();
        let r = analyse(&settings, &m);
        assert_eq!(r.capacity, Some(1499.0));
        assert_eq!(r.knee_rate, Some(1500.0));
        assert_eq!(r.saturated_goodput, 1650.0);
        assert_eq!(r.raw_sign_rate, 1720.0);
        assert_eq!(r.raw_sign_rate_one, 880.0);
        assert_eq!(r.cpu_us_per_sign, 1120.0);
        assert!((r.issue_ratio - 1650.0 / 1720.0).abs() < 1e-12);
        assert!((r.issue_ratio_at_target.unwrap() - 1499.0 / 1720.0).abs() < 1e-12);
        // Headline CPU from the 80% run: 1,540 µs − 1,500 µs of C_Sign counted in the server
        // in the same window = 40 µs; 20 µs of the 1,540 were kernel, so 20 user + 20 kernel.
        let c80 = r.confirm.iter().find(|c| c.fraction == 0.8).unwrap();
        assert!((c80.server_cpu_us.unwrap() - 1540.0).abs() < 1e-6);
        assert!((c80.hsm_cpu_us_per_sign.unwrap() - 1500.0).abs() < 1e-6);
        assert!((c80.hsm_cpu_us_per_request.unwrap() - 1500.0).abs() < 1e-6);
        assert_eq!(c80.excl_hsm_method, ExclHsmMethod::InServer);
        assert!((r.cpu_us_excl_hsm.unwrap() - 40.0).abs() < 1e-6);
        assert_eq!(r.excl_hsm_method, ExclHsmMethod::InServer);
        assert!((c80.cpu_us_excl_hsm_user.unwrap() - 20.0).abs() < 1e-6);
        assert!((c80.cpu_us_excl_hsm_kernel.unwrap() - 20.0).abs() < 1e-6);
        // The old way, kept for comparison: 1,540 − 1,120 standalone = 420 µs.
        assert!((c80.cpu_us_excl_hsm_standalone.unwrap() - 420.0).abs() < 1e-6);
        assert!((r.cpu_us_excl_hsm_standalone.unwrap() - 420.0).abs() < 1e-6);
        assert!((r.hsm_cpu_us_per_sign_in_server.unwrap() - 1500.0).abs() < 1e-6);
        assert!((r.hsm_cpu_in_server_over_standalone.unwrap() - 1500.0 / 1120.0).abs() < 1e-9);
        // Other runs: their own windows (1,600 − 1,450 = 150 µs).
        assert!((r.confirm[0].cpu_us_excl_hsm.unwrap() - 150.0).abs() < 1e-6);
        // 1,120 µs per raw signature (standalone) / 1,540 µs per issued card.
        assert!((r.cpu_ratio.unwrap() - 1120.0 / 1540.0).abs() < 1e-9);
        assert!((c80.generator_cpu_us.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(r.confirm[2].p99_ms, 10.0);
        // Ceiling: 14,990/s passes, 29,980/s does not → 10× capacity.
        assert_eq!(r.generator_ceiling, Some(14990.0));
        assert!((r.ceiling_ratio.unwrap() - 10.0).abs() < 1e-12);
        assert!(!r.ceiling_is_lower_bound);
        // Tax day: 447.5/s → one node of 1,499/s; one network HSM (447.5 / 7,000).
        assert_eq!(r.tax_day_rate, 447.5);
        assert_eq!(r.tax_day_embedded_nodes, Some(1));
        assert_eq!(r.tax_day_sizing[0].hsms, 1);
        assert_eq!(r.tax_day_sizing[0].nodes, 1);
        // 10,000/s: ⌈10,000 / 1,499⌉ = 7 embedded nodes; with network HSMs the node's CPU
        // allows 2 × 0.7 × 10⁶ / 40 = 35,000/s → 1 node, and ⌈10,000 / 7,000⌉ = 2 HSMs.
        assert_eq!(r.target_embedded_nodes, Some(7));
        assert_eq!(r.target_sizing[0].node_cpu_rate, 35_000.0);
        assert_eq!(r.target_sizing[0].nodes, 1);
        assert_eq!(r.target_sizing[0].hsms, 2);
    }

    #[test]
    fn with_a_pipelined_signer_c_sign_is_not_taken_from_user_time_nor_modelled_as_local_cpu() {
        let (settings, mut m) = synthetic();
        m.server.signer = SignerModeConfig::Pipelined;
        let r = analyse(&settings, &m);
        // segl's own CPU is still the server's less what its signing threads counted...
        assert!((r.cpu_us_excl_hsm.unwrap() - 40.0).abs() < 1e-6);
        let c80 = r.confirm.iter().find(|c| c.fraction == 0.8).unwrap();
        // ...but that was the client side of a call, not user time, and a networked HSM's
        // signature is not CPU of segl's cores to divide by.
        assert_eq!((c80.cpu_us_excl_hsm_user, c80.cpu_us_excl_hsm_kernel), (None, None));
        assert_eq!(r.cpu_ratio, None);
        // Older reports have no signer recorded: they were inline.
        let mut json = serde_json::to_value(&m).unwrap();
        json["server"].as_object_mut().unwrap().remove("signer");
        let older: Measurements = serde_json::from_value(json).unwrap();
        assert_eq!(older.server.signer, SignerModeConfig::Inline);
        assert!(analyse(&settings, &older).cpu_ratio.is_some());
    }

    #[test]
    fn a_split_with_a_negative_user_part_is_not_given() {
        let (_, m) = synthetic();
        let c80 = &m.confirm.iter().find(|c| c.fraction == 0.8).unwrap().result;
        // 20 µs of the 1,540 are kernel: 40 µs excluding the HSM splits, 10 µs cannot.
        let inline = SignerModeConfig::Inline;
        assert_eq!(
            excl_hsm_user_kernel(c80, 40.0, inline).map(|(u, k)| (u.round(), k.round())),
            Some((20.0, 20.0))
        );
        assert_eq!(excl_hsm_user_kernel(c80, 10.0, inline), None);
        assert_eq!(excl_hsm_user_kernel(c80, 40.0, SignerModeConfig::Pipelined), None);
    }

    #[test]
    fn the_raw_rate_is_measured_on_as_many_sessions_as_segl_signs_on() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/segl.toml"));
        let text = std::fs::read_to_string(path).unwrap();
        let inline = segl::config::Config::from_toml(&text, path).unwrap();
        assert_eq!(signing_sessions(&inline, 2), 2);
        let pipelined = text
            .replace("signer = \"inline\"", "signer = \"pipelined\"\nsessions_per_core = 3")
            .replace("sessions_per_core = 4\n", "");
        let pipelined = segl::config::Config::from_toml(&pipelined, path).unwrap();
        assert_eq!(signing_sessions(&pipelined, 2), 6);
    }

    #[test]
    fn without_c_sign_cpu_from_the_server_the_standalone_figure_is_subtracted() {
        let (settings, mut m) = synthetic();
        for c in &mut m.confirm {
            c.result.hsm_cpu_ns = None;
            c.result.hsm_signatures = None;
        }
        m.hsm_in_server_error =
            Some("http://127.0.0.1:9/metrics has no segl_hsm_sign_cpu_seconds_total".into());
        let r = analyse(&settings, &m);
        // 1,540 µs − 1,120 µs per C_Sign measured standalone.
        assert!((r.cpu_us_excl_hsm.unwrap() - 420.0).abs() < 1e-6);
        assert_eq!(r.excl_hsm_method, ExclHsmMethod::Standalone);
        assert_eq!(r.hsm_cpu_us_per_sign_in_server, None);
        let c80 = r.confirm.iter().find(|c| c.fraction == 0.8).unwrap();
        // Kernel 20 µs of 1,540; the rest of the 420 µs is user.
        assert!((c80.cpu_us_excl_hsm_kernel.unwrap() - 20.0).abs() < 1e-6);
        assert!((c80.cpu_us_excl_hsm_user.unwrap() - 400.0).abs() < 1e-6);
        // The sizing follows: 2 × 0.7 × 10⁶ / 420 µs per node.
        assert!((r.target_sizing[0].node_cpu_rate - 1.4e6 / 420.0).abs() < 1e-6);
        assert_eq!(r.target_sizing[0].nodes, 3);
        // A window with signatures but no CPU counted falls back on its own; no signatures at
        // all gives no per-signature figure rather than a division by zero.
        let mut s = m.confirm[1].result.clone();
        s.hsm_signatures = Some(0);
        s.hsm_cpu_ns = Some(0);
        assert_eq!(s.hsm_cpu_us_per_signature(), None);
        assert_eq!(excl_hsm(&s, 1120.0).map(|e| e.1), Some(ExclHsmMethod::InServer));
        s.hsm_cpu_ns = None;
        assert_eq!(
            excl_hsm(&s, 1120.0).map(|e| (e.0.round(), e.1)),
            Some((420.0, ExclHsmMethod::Standalone))
        );
        s.server_cpu_ns = None;
        assert_eq!(excl_hsm(&s, 1120.0), None);
    }

    #[test]
    fn no_passing_step_means_no_capacity_and_no_sizing() {
        let (settings, mut m) = synthetic();
        for s in &mut m.sweep {
            s.failed = Some("p99".into());
        }
        m.saturation = None;
        let r = analyse(&settings, &m);
        assert_eq!(r.capacity, None);
        assert_eq!(r.ceiling_ratio, None);
        assert_eq!(r.tax_day_embedded_nodes, None);
        assert!(r.target_sizing.is_empty());
        assert_eq!(r.saturated_goodput, 1590.0);
    }
}
