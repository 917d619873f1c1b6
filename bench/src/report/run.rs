//! Runs the standard capacity report end to end: development state, segl as a child process
//! (over TLS unless the settings say plain HTTP), the request pool, raw HSM rate, sweep,
//! confirmation runs, tax-day, raw HSM rate again, and the generator's ceiling against the
//! trivial server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use segl::config::Config;
use segl::dev::client::DevClient;

use super::{analyse, ConfirmRun, HsmRuns, Measurements, Report, ServerInfo, Settings, TaxDayRun};
use crate::client::Target;
use crate::engine::{self, Mix, MixError};
use crate::hsm_rate::{self, HsmRateError};
use crate::pool::{PoolError, RequestPool};

use crate::probe::{self, ServerProbe};
use crate::procfs::MachineInfo;
use crate::profiles::{self, TaxDay};
use crate::servers::{ChildServer, ServerError};
use crate::sweep::{self, Criteria, StepLoad, SweepPlan};
use crate::tls::{self, TlsFiles, TlsFilesError};

/// What the report command was given.
pub struct ReportOptions {
    /// segl configuration file.
    pub config: PathBuf,
    /// Report settings.
    pub settings: Settings,
    /// Pre-signed requests to build.
    pub pool_size: usize,
    /// The command line, for the record.
    pub command: String,
}

/// Why the report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(#[from] segl::config::ConfigError),
    /// The development state could not be made.
    #[error("development state: {0}")]
    Dev(#[from] segl::dev::DevError),
    /// A server would not start.
    #[error("{0}")]
    Server(#[from] ServerError),
    /// The request pool could not be built.
    #[error("request pool: {0}")]
    Pool(#[from] PoolError),
    /// The raw HSM rate could not be measured.
    #[error("raw HSM rate: {0}")]
    Hsm(#[from] HsmRateError),
    /// The endpoint mix is unusable.
    #[error("{0}")]
    Mix(#[from] MixError),
    /// segl did not issue cards for the pool's requests.
    #[error("segl does not issue cards for the generated requests: {0}")]
    Smoke(String),
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// The throwaway TLS certificate could not be made.
    #[error("{0}")]
    TlsFiles(#[from] TlsFilesError),
    /// The TLS client could not be set up.
    #[error("TLS client: {0}")]
    TlsClient(#[from] crate::client::ClientError),
}

/// Runs the report; progress goes to stderr.
pub fn run(opts: &ReportOptions) -> Result<Report, ReportError> {
    let st = &opts.settings;
    let machine = MachineInfo::detect();
    let started_at =
        jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or(jiff::Timestamp::now()).to_string();
    let config = Config::load(&opts.config)?;
    say("checking the development state (segl dev setup)");
    for line in segl::dev::pki::setup(&config)?.created {
        say(&format!("  created {line}"));
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = config.server.cores.unwrap_or(cpus);
    let work = std::env::temp_dir().join(format!("segl-load-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| ReportError::Smoke(format!("{}: {e}", work.display())))?;
    let _cleanup = RemoveOnDrop(work.clone());

    let segl_log = work.join("segl.log");
    let tls_files = if st.tls { Some(TlsFiles::create(&work.join("tls"))?) } else { None };
    say(if st.tls {
        "starting segl with a TLS listener (throwaway CA)"
    } else {
        "starting segl (plain HTTP)"
    });
    let mut segl = ChildServer::segl(&opts.config, &segl_log, &st.server_log_level, tls_files.as_ref())?;
    let client = DevClient::open(&config)?;
    say(&format!("building {} pre-signed requests on {cpus} HSM sessions", opts.pool_size));
    let bar = bar(
        opts.pool_size as u64,
        st.engine.progress,
        "{prefix:>14} [{bar:28}] {pos}/{len} {per_sec} eta {eta}",
    );
    bar.set_prefix("request pool");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .enable_all()
        .build()
        .map_err(ReportError::Runtime)?;
    let mix = Arc::new(Mix::new(st.mix.clone())?);
    let (target, transport) = match (&tls_files, segl.tls_addr) {
        (Some(files), Some(addr)) => {
            (Target::tls(addr, &files.ca, tls::SERVER_NAME)?, tls::DESCRIPTION.to_owned())
        }
        _ => (Target::plain(segl.addr), "plain HTTP".to_owned()),
    };
    let oio_settings = crate::pool::OioSettings::of(&config);
    let (pool, pool_stats) = crate::pool::build_for_mix(
        &client,
        &mix,
        opts.pool_size,
        cpus,
        &|| bar.inc(1),
        &rt,
        &target,
        &oio_settings,
    )?;
    bar.finish_and_clear();
    say(&format!("  {} requests in {:.1} s", pool_stats.size, pool_stats.build_secs));
    if let Some(oio) = &pool_stats.sosi2oiosaml {
        say(&format!("  and {} Sosi2OIOSaml requests presenting {} cards segl issued", oio.size, oio.cards));
    }
    for (kind, p) in pool_stats.signed_oio() {
        say(&format!(
            "  and {} header-signed {} requests presenting {} tokens (segl refuses them {} s after they were built)",
            p.size,
            kind.name(),
            p.tokens,
            config.sts.clock_skew_secs
        ));
    }
    let pool = Arc::new(pool);
    let response_bytes = rt
        .block_on(smoke(&target, &mix, &pool))
        .map_err(|e| ReportError::Smoke(format!("{e}\nsegl's log ends:\n{}", segl.log_tail(15))))?;

    let hsm_secs = Duration::from_secs_f64(st.hsm_secs);
    let sessions = super::signing_sessions(&config, cores);
    say(&format!("raw C_Sign rate on the STS token (1 session, then {sessions}: as many as segl signs on)"));
    let before_one = hsm_rate::measure(&config, 1, hsm_secs)?;
    let before_all = hsm_rate::measure(&config, sessions, hsm_secs)?;
    say(&format!("  {:.0}/s on 1 session, {:.0}/s on {sessions}", before_one.per_sec, before_all.per_sec));

    let mut plan = st.sweep.clone();
    plan.rates = st.sweep_fractions.iter().map(|f| (f * before_all.per_sec).round().max(1.0)).collect();
    let mut server = segl.probe();
    let hsm_in_server_error = match server.metrics.map(probe::scrape) {
        Some(Ok(_)) => {
            say("segl's /metrics counts the CPU its signing threads spend in C_Sign; each window subtracts its own");
            None
        }
        Some(Err(e)) => Some(e.to_string()),
        None => Some("segl's admin listener is not known".to_owned()),
    };
    if let Some(e) = &hsm_in_server_error {
        say(&format!("  no C_Sign CPU from segl ({e}): falling back to the C_Sign CPU measured standalone"));
        server.metrics = None;
    }
    say(&format!("sweep (p99 target {} ms)", st.criteria.p99_target_ms));
    let load = StepLoad { target: &target, mix: &mix, pool: &pool, engine: &st.engine, server: &server };
    let steps = rt.block_on(sweep::run(&plan, &st.criteria, load, &mut |s| {
        say(&format!(
            "{}; {}",
            step_line(s),
            cpu_line(&s.result, Some(before_one.cpu_us_per_sign), config.hsm.signer)
        ))
    }));
    let capacity = sweep::knee(&steps).map(|k| k.result.goodput);
    let base = capacity.unwrap_or_else(|| sweep::saturated_goodput(&steps)).max(1.0);
    match capacity {
        Some(c) => say(&format!("  capacity at the p99 target: {c:.0}/s")),
        None => say(&format!(
            "  no step met the criteria; later phases are relative to the best goodput, {base:.0}/s"
        )),
    }
    let first_failing = steps.iter().filter(|s| !s.passed()).map(|s| s.rate).fold(f64::INFINITY, f64::min);
    let sat_base = if first_failing.is_finite() { first_failing } else { base };
    // The CPU one signature costs bounds the signing rate of these cores whatever neighbours
    // do to the measured rates; going past it makes sure the step saturates. Only where the
    // signing happens on these cores: a networked HSM's signature costs them the client side
    // of a call, and a bound from that would have the generator offer ten times what any step
    // needs.
    let cpu_bound = if config.hsm.signer.signs_on_the_serving_core() {
        cores as f64 * 1e6 / before_one.cpu_us_per_sign.max(1.0)
    } else {
        0.0
    };
    let sat_rate = (sat_base.max(before_all.per_sec).max(cpu_bound) * st.saturation_factor).round();
    say(&format!("saturation: one step at {sat_rate:.0}/s"));
    let saturation = rt.block_on(sweep::run_step(sat_rate, &plan, &st.criteria, load));
    if let Some(s) = &saturation {
        say(&format!(
            "{}; {}",
            step_line(s),
            cpu_line(&s.result, Some(before_one.cpu_us_per_sign), config.hsm.signer)
        ));
    }
    // Raw signing again right after the sweep, so that the issued/raw ratio compares figures
    // taken minutes apart at most; the machine is shared.
    say("raw C_Sign rate again");
    let after_one = hsm_rate::measure(&config, 1, hsm_secs)?;
    let after_all = hsm_rate::measure(&config, sessions, hsm_secs)?;
    say(&format!("  {:.0}/s on 1 session, {:.0}/s on {sessions}", after_one.per_sec, after_all.per_sec));

    let mut confirm = Vec::new();
    for &fraction in &st.confirm_fractions {
        let rate = (base * fraction).round().max(1.0);
        let schedule = profiles::soak(rate, st.confirm_secs, st.sweep.warmup_secs);
        let label = format!("{:.0}% {rate:.0}/s", fraction * 100.0);
        let run = rt.block_on(engine::run(&schedule, &target, &mix, &pool, &st.engine, &server, &label));
        if let Some(result) = run.segments.into_iter().last() {
            say(&format!(
                "  {:>4.0}% of capacity, {rate:.0}/s: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} failed; {}",
                fraction * 100.0,
                result.latency.p50_ms,
                result.latency.p99_ms,
                result.latency.p999_ms,
                result.counts.failed(),
                cpu_line(&result, Some(before_one.cpu_us_per_sign), config.hsm.signer)
            ));
            confirm.push(ConfirmRun { fraction, rate, result });
        }
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    }

    let t = &st.tax_day;
    let profile = TaxDay::relative_to(base, t.baseline_fraction, t.peak_fraction, t.surge_factor, t.secs);
    // The same day twice: with the generator's connections (a small client pool), then with a
    // large pool. A server that lets a queue stand holds every connection for its length, and
    // a small pool then cannot even deliver the requests it would refuse at once.
    let pools = std::iter::once(st.engine.connections).chain(t.large_pool_connections);
    let mut runs = Vec::new();
    for connections in pools {
        say(&format!(
            "tax day ({connections} connections): baseline {:.0}/s, peak {:.0}/s, surge {:.0}/s ({:.0} s)",
            profile.baseline_rate,
            profile.peak_rate,
            profile.surge_rate,
            profile.schedule().secs()
        ));
        let engine_options = crate::engine::EngineOptions { connections, ..st.engine.clone() };
        let label = format!("tax day, {connections} connections");
        let run = rt.block_on(engine::run(
            &profile.schedule(),
            &target,
            &mix,
            &pool,
            &engine_options,
            &server,
            &label,
        ));
        for s in &run.segments {
            say(&format!(
                "  {:>9}: offered {:>6.0}/s, issued {:>6.0}/s, p99 {:>8.1} ms, shed {}, failed {}",
                s.label,
                s.offered_rate,
                s.goodput,
                s.latency.p99_ms,
                s.counts.shed,
                s.counts.failed()
            ));
        }
        runs.push(TaxDayRun { profile, connections: Some(connections), run });
        rt.block_on(async { tokio::time::sleep(Duration::from_secs(2)).await });
    }
    let mut runs = runs.into_iter();
    let (tax_day, tax_day_large_pool) = (runs.next(), runs.next());

    let requests_sent = pool.taken();
    let reused_cards = pool.reused();
    if pool.replayed() > 0 {
        say(&format!(
            "{} header-signed OIO requests went out twice (the pool ran out; segl refuses the replays): give a larger --pool",
            pool.replayed()
        ));
    }
    let (log_warnings, log_errors, log_samples) = log_stats(&segl_log);
    let exited = !segl.is_running();
    if exited {
        say(&format!("segl exited during the run; its log ends:\n{}", segl.log_tail(15)));
    }
    drop(segl);
    say("segl's CPU per request in-process, without HTTP (2,000 requests on one thread)");
    let measured = if pool.holds(crate::pool::RequestKind::Dgws) {
        crate::inprocess::measure(&config, &pool, 2000).map_err(|e| e.to_string())
    } else {
        Err("the mix has no DGWS requests (the in-process measurement serves DGWS)".to_owned())
    };
    let in_process = match measured {
        Ok(x) => {
            say(&format!("  {}", x.describe(config.hsm.signer.signs_on_the_serving_core())));
            Some(x)
        }
        Err(e) => {
            say(&format!("  not measured: {e}"));
            None
        }
    };

    say("the generator's own ceiling, against a trivial server");
    let dummy = ChildServer::dummy(response_bytes, &work.join("dummy.log"))?;
    // Every multiple is tried, also after one misses: on a shared machine a single step can
    // fail to a neighbour's burst, and the highest passing rate is what counts.
    let ceiling_plan = SweepPlan {
        rates: Vec::new(),
        growth: 1.0,
        max_rate: f64::MAX,
        refine: 0,
        retry_failed: false,
        warmup_secs: 1.0,
        step_secs: st.sweep.step_secs.min(5.0),
    };
    let ceiling_criteria = Criteria { max_shed_rate: 0.0, ..st.criteria };
    let dummy_target = Target::plain(dummy.addr);
    let dummy_probe = ServerProbe::pid(Some(dummy.pid()));
    let dummy_load = StepLoad { target: &dummy_target, server: &dummy_probe, ..load };
    let mut ceiling = Vec::new();
    for m in &st.ceiling_multiples {
        let rate = (m * base).round();
        let step = rt.block_on(sweep::run_step(rate, &ceiling_plan, &ceiling_criteria, dummy_load));
        if let Some(step) = step {
            say(&step_line(&step));
            ceiling.push(step);
        }
    }
    drop(dummy);

    let measurements = Measurements {
        started_at,
        machine,
        load_average_at_end: MachineInfo::detect().load_average,
        command: opts.command.clone(),
        server: ServerInfo {
            cores,
            hsm_module: config.hsm.module.display().to_string(),
            signer: config.hsm.signer,
            token: config.hsm.token_label.clone(),
            key: config.hsm.key_label.clone(),
            // The code measured: the build's own record, not the checkout this runs in.
            version: segl::build_info::DESCRIBE.to_owned(),
            commit: Some(segl::build_info::COMMIT.to_owned()).filter(|c| c != "unknown"),
            response_bytes,
            log_warnings,
            log_errors,
            log_samples,
            exited,
            transport,
        },
        pool: pool_stats,
        requests_sent,
        reused_cards,
        hsm: HsmRuns { before_one, before_all, after_one, after_all },
        sweep: steps,
        saturation,
        confirm,
        tax_day,
        tax_day_large_pool,
        in_process,
        hsm_in_server_error,
        ceiling,
        ceiling_body_bytes: response_bytes,
    };
    let results = analyse(st, &measurements);
    Ok(Report { settings: st.clone(), measurements, results })
}

/// A few requests one after the other: each must be answered 200. Returns the response size.
async fn smoke(target: &Target, mix: &Mix, pool: &RequestPool) -> Result<usize, String> {
    let mut size = 0;
    for k in 0..4u64 {
        let body = pool.take_for(mix.kind(k));
        let path = mix.path(k);
        let mut conn = target.connect().await.map_err(|e| e.to_string())?;
        let head = target.head(path, body.len(), true);
        let reply = tokio::time::timeout(Duration::from_secs(10), conn.exchange(head.as_bytes(), &body))
            .await
            .map_err(|_| format!("no answer from {path} within 10 s"))?
            .map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("{path} answered HTTP {}", reply.status));
        }
        size = reply.body_len;
    }
    Ok(size)
}

/// One sweep step for the progress log.
pub fn step_line(s: &sweep::SweepStep) -> String {
    format!(
        "  {:>8.0}/s: issued {:>7.0}/s, p50 {:>8.2} ms, p99 {:>8.2} ms, p99.9 {:>8.2} ms  {}",
        s.rate,
        s.result.goodput,
        s.result.latency.p50_ms,
        s.result.latency.p99_ms,
        s.result.latency.p999_ms,
        s.failed.as_deref().map(|w| format!("FAIL {w}")).unwrap_or_else(|| "pass".into())
    )
}

/// segl's CPU per request with and without the HSM operation, for the progress log: by the
/// C_Sign CPU segl counted, and by one C_Sign measured standalone when there is one.
pub fn cpu_line(
    s: &crate::record::SegmentRecord,
    standalone_cpu_us_per_sign: Option<f64>,
    signer: segl::config::SignerModeConfig,
) -> String {
    let Some(server) = s.server_cpu_us_per_request() else { return "segl CPU not measured".into() };
    let mut out = format!("segl {server:.0} µs/request");
    match (s.hsm_cpu_us_per_signature(), s.cpu_us_excl_hsm_in_server()) {
        (Some(sign), Some(excl)) => {
            out.push_str(&format!("; C_Sign {sign:.0} µs in the server; excl. HSM {excl:.0} µs (in-server)"));
            if let Some((user, kernel)) = super::excl_hsm_user_kernel(s, excl, signer) {
                out.push_str(&format!(" = {user:.0} user + {kernel:.0} kernel"));
            }
        }
        _ => out.push_str("; no C_Sign CPU from the server"),
    }
    if let Some(sign) = standalone_cpu_us_per_sign {
        out.push_str(&format!(
            "; C_Sign {sign:.0} µs standalone; excl. HSM {:.0} µs (standalone)",
            super::cpu_excluding_hsm(server, sign, 1.0)
        ));
    }
    out
}

fn say(line: &str) {
    eprintln!("segl-load: {line}");
}

fn bar(len: u64, enabled: bool, template: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        b.set_style(style.progress_chars("=> "));
    }
    b
}

/// Counts WARN and ERROR lines of a log and keeps a few distinct ones.
fn log_stats(path: &std::path::Path) -> (u64, u64, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut warn, mut error, mut samples) = (0, 0, Vec::<String>::new());
    for line in text.lines() {
        let is_warn = line.contains(" WARN ");
        let is_error = line.contains(" ERROR ");
        warn += u64::from(is_warn);
        error += u64::from(is_error);
        if (is_warn || is_error) && samples.len() < 5 {
            // Timestamps differ; keep one line per message.
            let msg = line.split_once(": ").map(|(_, m)| m).unwrap_or(line).to_owned();
            if !samples.contains(&msg) {
                samples.push(msg);
            }
        }
    }
    (warn, error, samples)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
