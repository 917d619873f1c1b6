//! `segl-load`: segl's open-loop load generator and capacity report (see bench/README.md).
#![forbid(unsafe_code)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use segl::config::{ClientAuth, Config, TlsConfig};
use segl::dev::client::DevClient;
use segl_bench::client::Target;
use segl_bench::engine::{self, EngineOptions, Mix};
use segl_bench::pool::RequestPool;
use segl_bench::probe::ServerProbe;
use segl_bench::profiles::{self, TaxDay};
use segl_bench::record::RunRecord;
use segl_bench::record::SegmentRecord;
use segl_bench::report::run::{self as report_run, ReportOptions};
use segl_bench::report::sizing::{self, HsmClass, PeakDay};
use segl_bench::report::{files, markdown, Report, Settings, TaxDayShape};
use segl_bench::schedule::Schedule;
use segl_bench::servers::ChildServer;
use segl_bench::sweep::{self, Criteria, SweepPlan};
use segl_bench::tls::TlsFiles;

// The child that serves segl for a report runs segl's own server code; give it segl's allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Error = Box<dyn std::error::Error>;

/// segl's open-loop load generator and capacity report.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The standard capacity report: starts segl on the configuration, measures the raw HSM
    /// rate, sweeps to the knee, runs 50/80/100% of capacity and the tax-day profile, measures
    /// the generator's own ceiling, and writes JSON, CSV, SVG and SUMMARY.md to --out.
    Report(ReportArgs),
    /// Step the offered rate up until the p99 target is missed or requests fail.
    Sweep {
        #[command(flatten)]
        load: LoadArgs,
        /// Rates to try first, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "200,400,800,1200,1600")]
        rates: Vec<f64>,
        /// Multiply the last rate by this until a step fails.
        #[arg(long, default_value_t = 1.15)]
        growth: f64,
        /// Bisection steps after the first failing step.
        #[arg(long, default_value_t = 2)]
        refine: u32,
        /// Measured seconds per step.
        #[arg(long, default_value_t = 6.0)]
        step_secs: f64,
        /// Unmeasured warm-up seconds per step.
        #[arg(long, default_value_t = 2.0)]
        warmup_secs: f64,
        /// p99 target, ms.
        #[arg(long, default_value_t = 100.0)]
        p99_target_ms: f64,
    },
    /// Baseline, ramp to peak, hold, surge, recovery: every phase's rate and length.
    TaxDay {
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, default_value_t = 300.0)]
        baseline_rate: f64,
        #[arg(long, default_value_t = 1000.0)]
        peak_rate: f64,
        /// Default: 3 × the peak rate.
        #[arg(long)]
        surge_rate: Option<f64>,
        /// Default: the peak rate.
        #[arg(long)]
        recovery_rate: Option<f64>,
        #[arg(long, default_value_t = 15.0)]
        baseline_secs: f64,
        #[arg(long, default_value_t = 15.0)]
        ramp_secs: f64,
        #[arg(long, default_value_t = 20.0)]
        hold_secs: f64,
        #[arg(long, default_value_t = 10.0)]
        surge_secs: f64,
        #[arg(long, default_value_t = 30.0)]
        recovery_secs: f64,
    },
    /// One rate for a long time.
    Soak {
        #[command(flatten)]
        load: LoadArgs,
        /// Offered rate, requests/s.
        #[arg(long)]
        rate: f64,
        /// Seconds.
        #[arg(long, default_value_t = 600.0)]
        secs: f64,
    },
    /// Endpoint mixes one after the other against one segl (and one request pool), in
    /// alternating rounds: issued/s, segl's CPU per issued token and HSM signatures per token
    /// of each, and each mix's ratios to the first one, round by round.
    Compare {
        #[command(flatten)]
        load: LoadArgs,
        /// The mixes, separated by ';' (each as --mix takes it).
        #[arg(long, default_value = "NewSecurityTokenService=1;Sosi2OIOSaml=1;BST2SOSI=1;OIOSaml2Sosi=1")]
        mixes: String,
        /// Offered rate of each mix's runs, requests/s, comma separated (one rate: every mix);
        /// above a mix's capacity for its saturation.
        #[arg(long, value_delimiter = ',', required = true)]
        rate: Vec<f64>,
        /// Measured seconds of each run.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Unmeasured warm-up seconds before each run.
        #[arg(long, default_value_t = 2.0)]
        warmup_secs: f64,
        /// Rounds (each runs every mix once).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// The raw C_Sign rate of the STS token on 1..N sessions (the ceiling segl is compared with).
    Hsm {
        /// segl configuration naming the token and key.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Session counts to measure, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        sessions: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
    },
    /// segl's CPU per DGWS request without HTTP, TLS or the executor: `segl::exchange::serve` on
    /// one thread, as the report's in-process figure (distinct pre-signed requests)
    InProcess {
        /// segl configuration (the development PKI signs the requests).
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Requests to serve.
        #[arg(long, default_value_t = 2000)]
        requests: u64,
    },
    /// Write a report's files again from its report.json (after changing the writers).
    Render {
        /// The report's report.json.
        #[arg(long)]
        report: PathBuf,
        /// Directory to write to (default: the report's own).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Recompute the sizing of a report for a rate (and HSM rates) you type in.
    Size {
        /// A report's report.json.
        #[arg(long)]
        report: PathBuf,
        /// Peak rate to size for, requests/s.
        #[arg(long)]
        rate: f64,
        /// Signing rates of external HSMs to size with (signatures/s per HSM).
        #[arg(long, value_delimiter = ',')]
        hsm_rate: Vec<f64>,
        /// Planned utilisation at peak (default: the report's).
        #[arg(long)]
        headroom: Option<f64>,
    },
    /// (internal) segl's server, as a child of the report.
    #[command(hide = true)]
    ServeSegl {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        listen: SocketAddr,
        /// The admin listener (/metrics), instead of the configuration's.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// A TLS listener here, with --tls-cert and --tls-key (no client certificates); without
        /// it the child has no TLS listener, whatever the configuration says.
        #[arg(long, requires_all = ["tls_cert", "tls_key"])]
        tls_listen: Option<SocketAddr>,
        /// PEM certificate chain of the TLS listener.
        #[arg(long, requires = "tls_listen")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of the TLS listener.
        #[arg(long, requires = "tls_listen")]
        tls_key: Option<PathBuf>,
    },
    /// (internal) the trivial server for the generator's ceiling.
    #[command(hide = true)]
    ServeDummy {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 6000)]
        body_bytes: usize,
    },
}

/// Where to send load and how.
#[derive(Args)]
struct LoadArgs {
    /// segl configuration: the development PKI signs the requests, and segl is started on it
    /// unless --target is given.
    #[arg(long, default_value = "config/segl.toml")]
    config: PathBuf,
    /// An already running server, HOST:PORT. Without it, segl is started on free loopback
    /// ports with a TLS listener (a throwaway CA), and the load goes over TLS.
    #[arg(long)]
    target: Option<String>,
    /// Process id of the --target server, to measure its CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Admin listener of the --target server, HOST:PORT: its /metrics gives the CPU segl spent
    /// in C_Sign, to subtract from its CPU.
    #[arg(long, requires = "target")]
    admin_addr: Option<SocketAddr>,
    /// The segl started here serves the load over plain HTTP instead of TLS.
    #[arg(long, conflicts_with_all = ["target", "tls"])]
    plain: bool,
    /// Connect to --target with TLS, trusting the CA certificates in --ca-file.
    #[arg(long, requires_all = ["ca_file", "target"])]
    tls: bool,
    /// PEM file of the CA certificates to trust for --tls.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Server name to check the certificate against (default: the --target host).
    #[arg(long)]
    server_name: Option<String>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Pre-signed requests to build before the run (default: enough for the whole run, at most 100,000).
    #[arg(long)]
    pool: Option<usize>,
    /// Write run.json here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Log level of the segl started here (segl's default: info).
    #[arg(long, default_value = "info")]
    server_log_level: String,
    /// Seconds of the standalone C_Sign measurement (segl idle, one session) the in-server
    /// C_Sign CPU is compared with; 0: none. Only for the segl started here.
    #[arg(long, default_value_t = 2.0)]
    hsm_secs: f64,
}

#[derive(Args)]
struct EngineArgs {
    /// Connections (requests in flight at most).
    #[arg(long, default_value_t = 128)]
    connections: usize,
    /// A new connection per request instead of keep-alive.
    #[arg(long)]
    new_connections: bool,
    /// Request deadline from its intended send time, ms.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Endpoints by weight.
    #[arg(long, default_value = "NewSecurityTokenService=9,SecurityTokenService=1")]
    mix: String,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

impl EngineArgs {
    fn options(&self) -> EngineOptions {
        EngineOptions {
            connections: self.connections,
            keep_alive: !self.new_connections,
            timeout_ms: self.timeout_ms,
            progress: !self.no_progress,
        }
    }
}

#[derive(Args)]
struct ReportArgs {
    /// segl configuration (the embedded default by default).
    #[arg(long, default_value = "config/segl.toml")]
    config: PathBuf,
    /// Report directory (default: bench/results/<date>-<cpus>cpu-<host>).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// p99 latency target for capacity, ms.
    #[arg(long, default_value_t = 100.0)]
    p99_target_ms: f64,
    /// Largest fraction of failed requests in a passing step.
    #[arg(long, default_value_t = 0.001)]
    max_failure_rate: f64,
    /// Pre-signed requests to build (beyond them, pooled cards are re-sent under fresh message ids).
    #[arg(long, default_value_t = 30_000)]
    pool: usize,
    /// Seconds of each raw HSM measurement.
    #[arg(long, default_value_t = 3.0)]
    hsm_secs: f64,
    /// Sweep rates as fractions of the raw signing rate.
    #[arg(long, value_delimiter = ',', default_value = "0.25,0.5,0.7,0.8,0.9,0.95,1.0,1.05,1.1")]
    sweep_fractions: Vec<f64>,
    /// Multiply the last sweep rate by this until a step fails.
    #[arg(long, default_value_t = 1.15)]
    growth: f64,
    /// Bisection steps after the first failing step.
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// Measured seconds per sweep step.
    #[arg(long, default_value_t = 6.0)]
    step_secs: f64,
    /// Believe a failing sweep step at once (by default it is run once more).
    #[arg(long)]
    no_retry: bool,
    /// Unmeasured warm-up seconds per step.
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// The saturation step's rate over the highest of the first failing sweep rate, the raw
    /// signing rate and cores × 10⁶ / (CPU µs of one signature).
    #[arg(long, default_value_t = 1.5)]
    saturation_factor: f64,
    /// Measured seconds of each 50/80/100% run.
    #[arg(long, default_value_t = 15.0)]
    confirm_secs: f64,
    /// Tax-day baseline as a fraction of capacity.
    #[arg(long, default_value_t = 0.3)]
    taxday_baseline: f64,
    /// Tax-day peak as a fraction of capacity.
    #[arg(long, default_value_t = 0.8)]
    taxday_peak: f64,
    /// Tax-day surge over the peak.
    #[arg(long, default_value_t = 3.0)]
    surge_factor: f64,
    /// Tax-day seconds of baseline, ramp, hold, surge, recovery.
    #[arg(long, value_delimiter = ',', default_value = "15,15,20,10,30")]
    taxday_secs: Vec<f64>,
    /// Connections of the second tax-day run (a large client pool beside --connections); 0: no
    /// second run.
    #[arg(long, default_value_t = 1024)]
    taxday_large_pool: usize,
    /// Generator-ceiling rates as multiples of capacity.
    #[arg(long, value_delimiter = ',', default_value = "5,7.5,10,15")]
    ceiling_multiples: Vec<f64>,
    /// A peak rate to size for, requests/s.
    #[arg(long, default_value_t = 10_000.0)]
    target_rate: f64,
    /// Share of the tax day's 3.58 million logins in its busiest hour.
    #[arg(long, default_value_t = 0.15)]
    peak_hour_share: f64,
    /// Peak rate within the busiest hour over its mean.
    #[arg(long, default_value_t = 3.0)]
    peak_surge: f64,
    /// Planned utilisation of CPU and HSM at peak.
    #[arg(long, default_value_t = 0.7)]
    headroom: f64,
    /// segl's log level during the report (segl's default: info).
    #[arg(long, default_value = "info")]
    server_log_level: String,
    /// Send segl's load over plain HTTP instead of TLS (the report's default, with a throwaway CA).
    #[arg(long)]
    plain: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Report(args) => report(args),
        Command::Sweep { load, rates, growth, refine, step_secs, warmup_secs, p99_target_ms } => {
            let plan = SweepPlan {
                rates,
                growth,
                max_rate: 1_000_000.0,
                refine,
                warmup_secs,
                step_secs,
                retry_failed: true,
            };
            let criteria = Criteria { p99_target_ms, ..default_criteria() };
            let needed = (plan.rates.iter().sum::<f64>() * (step_secs + warmup_secs)) as usize;
            let mix = Mix::parse(&load.engine.mix);
            with_load(&load, mix, needed, |ctx| {
                let load = sweep::StepLoad {
                    target: &ctx.target,
                    mix: &ctx.mix,
                    pool: &ctx.pool,
                    engine: &ctx.engine,
                    server: &ctx.server,
                };
                let steps = ctx.rt.block_on(sweep::run(&plan, &criteria, load, &mut |s| {
                    eprintln!(
                        "{}; {}",
                        report_run::step_line(s),
                        report_run::cpu_line(&s.result, ctx.standalone_cpu_us_per_sign, ctx.signer)
                    )
                }));
                match sweep::knee(&steps) {
                    Some(k) => println!(
                        "knee: {:.0} issued/s at p99 ≤ {p99_target_ms} ms (offered {:.0}/s)",
                        k.result.goodput, k.rate
                    ),
                    None => println!("no step met p99 ≤ {p99_target_ms} ms without failures"),
                }
                let segments = steps.iter().map(|s| s.result.clone()).collect();
                Ok(RunRecord { segments, seconds: vec![], wall_secs: 0.0, reused_cards: ctx.pool.reused() })
            })
        }
        Command::TaxDay {
            load,
            baseline_rate,
            peak_rate,
            surge_rate,
            recovery_rate,
            baseline_secs,
            ramp_secs,
            hold_secs,
            surge_secs,
            recovery_secs,
        } => {
            let profile = TaxDay {
                baseline_rate,
                peak_rate,
                surge_rate: surge_rate.unwrap_or(3.0 * peak_rate),
                recovery_rate: recovery_rate.unwrap_or(peak_rate),
                baseline_secs,
                ramp_secs,
                hold_secs,
                surge_secs,
                recovery_secs,
            };
            scheduled(&load, profile.schedule(), "tax day")
        }
        Command::Soak { load, rate, secs } => scheduled(&load, profiles::soak(rate, secs, 0.0), "soak"),
        Command::Compare { load, mixes, rate, secs, warmup_secs, rounds } => {
            compare(&load, &mixes, &rate, secs, warmup_secs, rounds)
        }
        Command::Hsm { config, sessions, secs } => hsm(&config, &sessions, secs),
        Command::InProcess { config, requests } => in_process(&config, requests),
        Command::Render { report, out } => render(&report, out),
        Command::Size { report, rate, hsm_rate, headroom } => size(&report, rate, &hsm_rate, headroom),
        Command::ServeSegl { config, listen, admin_listen, tls_listen, tls_cert, tls_key } => {
            let tls = tls_listen.zip(tls_cert.zip(tls_key)).map(|(listen, (certificate, key))| TlsConfig {
                listen,
                certificate,
                key,
                client_auth: ClientAuth::None,
            });
            serve_segl(&config, listen, admin_listen, tls)
        }
        Command::ServeDummy { listen, body_bytes } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .and_then(|rt| rt.block_on(segl_bench::dummy::serve(listen, body_bytes)))
            .map_err(Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("segl-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn default_criteria() -> Criteria {
    Criteria {
        p99_target_ms: 100.0,
        max_failure_rate: 0.001,
        max_shed_rate: 0.001,
        min_goodput_fraction: 0.98,
    }
}

fn report(a: ReportArgs) -> Result<(), Error> {
    let secs: [f64; 5] = a
        .taxday_secs
        .clone()
        .try_into()
        .map_err(|_| "--taxday-secs takes five lengths: baseline,ramp,hold,surge,recovery")?;
    let settings = Settings {
        criteria: Criteria {
            p99_target_ms: a.p99_target_ms,
            max_failure_rate: a.max_failure_rate,
            ..default_criteria()
        },
        engine: a.engine.options(),
        mix: Mix::parse(&a.engine.mix)?.weights,
        sweep_fractions: a.sweep_fractions,
        sweep: SweepPlan {
            rates: vec![],
            growth: a.growth,
            max_rate: 1_000_000.0,
            refine: a.refine,
            warmup_secs: a.warmup_secs,
            step_secs: a.step_secs,
            retry_failed: !a.no_retry,
        },
        saturation_factor: a.saturation_factor,
        // 25 %: issue 17's ordinary load, where wake-ups would dominate segl's own CPU per card.
        confirm_fractions: vec![0.25, 0.5, 0.8, 1.0],
        confirm_secs: a.confirm_secs,
        headline_fraction: 0.8,
        tax_day: TaxDayShape {
            baseline_fraction: a.taxday_baseline,
            peak_fraction: a.taxday_peak,
            surge_factor: a.surge_factor,
            secs,
            large_pool_connections: (a.taxday_large_pool > 0).then_some(a.taxday_large_pool),
        },
        ceiling_multiples: a.ceiling_multiples,
        hsm_secs: a.hsm_secs,
        peak_day: PeakDay {
            peak_hour_share: a.peak_hour_share,
            surge_factor: a.peak_surge,
            ..PeakDay::NORWEGIAN_TAX_DAY
        },
        target_rate: a.target_rate,
        headroom: a.headroom,
        hsm_classes: default_hsm_classes(),
        server_log_level: a.server_log_level,
        tls: !a.plain,
    };
    let out = a.out.unwrap_or_else(default_out);
    let opts = ReportOptions {
        config: a.config,
        settings,
        pool_size: a.pool,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let report = report_run::run(&opts)?;
    files::write(&out, &report)?;
    let r = &report.results;
    println!("report written to {}", out.display());
    println!(
        "capacity {}/s at p99 ≤ {} ms ({}); issued/raw C_Sign {:.3}; segl CPU excl. HSM {} ({}; {} with C_Sign CPU measured standalone); generator ceiling {}",
        r.capacity.map(markdown::int).unwrap_or_else(|| "–".into()),
        report.settings.criteria.p99_target_ms,
        if report.settings.tls { "TLS" } else { "plain HTTP" },
        r.issue_ratio,
        r.cpu_us_excl_hsm.map(|u| format!("{u:.0} µs")).unwrap_or_else(|| "–".into()),
        r.excl_hsm_method.describe(),
        r.cpu_us_excl_hsm_standalone.map(|u| format!("{u:.0} µs")).unwrap_or_else(|| "–".into()),
        r.ceiling_ratio
            .map(|x| format!("{}{x:.1}× capacity", if r.ceiling_is_lower_bound { "≥ " } else { "" }))
            .unwrap_or_else(|| "–".into())
    );
    Ok(())
}

fn default_hsm_classes() -> Vec<HsmClass> {
    vec![
        HsmClass { name: "AWS CloudHSM (~1,000 RSA-2048/s per HSM)".into(), signs_per_sec: 1000.0 },
        HsmClass { name: "network HSM (10,000 RSA-2048/s)".into(), signs_per_sec: 10_000.0 },
        HsmClass { name: "network HSM (20,000 RSA-2048/s)".into(), signs_per_sec: 20_000.0 },
    ]
}

fn default_out() -> PathBuf {
    let machine = segl_bench::procfs::MachineInfo::detect();
    let date = jiff::Zoned::now().date();
    let host: String =
        machine.hostname.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(24).collect();
    PathBuf::from("bench/results").join(format!("{date}-{}cpu-{host}", machine.cpus))
}

fn render(path: &Path, out: Option<PathBuf>) -> Result<(), Error> {
    let mut report: Report = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    // Derived figures follow the current arithmetic.
    report.results = segl_bench::report::analyse(&report.settings, &report.measurements);
    let dir = out.unwrap_or_else(|| path.parent().map(Path::to_path_buf).unwrap_or_default());
    files::write(&dir, &report)?;
    println!("report written to {}", dir.display());
    Ok(())
}

fn hsm(config: &Path, sessions: &[usize], secs: f64) -> Result<(), Error> {
    let config = Config::load(config)?;
    segl::dev::pki::setup(&config)?;
    for &n in sessions {
        let r = segl_bench::hsm_rate::measure(&config, n, std::time::Duration::from_secs_f64(secs))?;
        println!(
            "{n} session(s): {:.0} signatures/s, {:.0} µs CPU per signature ({} in {:.1} s)",
            r.per_sec, r.cpu_us_per_sign, r.signatures, r.secs
        );
    }
    Ok(())
}

fn in_process(config: &Path, requests: u64) -> Result<(), Error> {
    let config = Config::load(config)?;
    segl::dev::pki::setup(&config)?;
    let client = DevClient::open(&config)?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (pool, _) = RequestPool::build(&client, requests.clamp(1, 100_000) as usize, threads, &|| {})?;
    let x = segl_bench::inprocess::measure(&config, &pool, requests)?;
    if x.not_issued > 0 {
        return Err(format!("{} of {} requests were not issued", x.not_issued, x.requests).into());
    }
    println!(
        "{} requests: {} segl's own",
        x.requests,
        x.describe(config.hsm.signer.signs_on_the_serving_core())
    );
    Ok(())
}

fn size(path: &Path, rate: f64, hsm_rates: &[f64], headroom: Option<f64>) -> Result<(), Error> {
    let report: Report = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut node = report.results.node.ok_or("the report found no capacity at its p99 target")?;
    if let Some(h) = headroom {
        node.headroom = h;
    }
    let classes: Vec<HsmClass> = if hsm_rates.is_empty() {
        default_hsm_classes()
    } else {
        hsm_rates.iter().map(|&r| HsmClass { name: format!("{r:.0}/s HSM"), signs_per_sec: r }).collect()
    };
    println!(
        "node: capacity {:.0}/s at p99 (embedded SoftHSM), segl CPU {:.1} µs/request excl. HSM, {} cores, utilisation {}",
        node.capacity_at_p99, node.cpu_us_per_request, node.cores, node.headroom
    );
    println!("rate {rate:.0}/s:");
    println!(
        "  embedded SoftHSM: {} nodes = ceil({rate:.0} / {:.0})",
        sizing::embedded_nodes(rate, &node),
        node.capacity_at_p99
    );
    for c in &classes {
        let s = sizing::size(rate, &node, c);
        println!(
            "  {}: {} HSMs = ceil({rate:.0} × {} / ({:.0} × {})), {} nodes = ceil({rate:.0} / {:.0})",
            c.name,
            s.hsms,
            node.signatures_per_request,
            c.signs_per_sec,
            node.headroom,
            s.nodes,
            s.node_cpu_rate
        );
    }
    Ok(())
}

struct LoadContext {
    rt: tokio::runtime::Runtime,
    target: Target,
    mix: Arc<Mix>,
    pool: Arc<RequestPool>,
    engine: EngineOptions,
    server: ServerProbe,
    /// CPU of one C_Sign on the same token while segl idles, µs, when measured.
    standalone_cpu_us_per_sign: Option<f64>,
    /// How segl signs (whether its C_Sign CPU is user time on its cores).
    signer: segl::config::SignerModeConfig,
}

/// Builds the pool, starts segl unless a target is given, and runs `f`.
fn with_load(
    load: &LoadArgs,
    mix: Result<Mix, engine::MixError>,
    needed: usize,
    f: impl FnOnce(&LoadContext) -> Result<RunRecord, Error>,
) -> Result<(), Error> {
    let config = Config::load(&load.config)?;
    let mix = Arc::new(mix?);
    let work = std::env::temp_dir().join(format!("segl-load-{}", std::process::id()));
    let (server, target, probe) = match &load.target {
        Some(t) => {
            let addr = t.to_socket_addrs()?.next().ok_or_else(|| format!("{t} resolves to no address"))?;
            let host =
                t.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']']).to_owned()).unwrap_or_default();
            let target = match (&load.tls, &load.ca_file) {
                (true, Some(ca)) => Target::tls(addr, ca, load.server_name.as_deref().unwrap_or(&host))?,
                _ => Target::plain(addr),
            };
            (None, target, ServerProbe { pid: load.server_pid, metrics: load.admin_addr })
        }
        None => {
            segl::dev::pki::setup(&config)?;
            std::fs::create_dir_all(&work)?;
            let tls = if load.plain { None } else { Some(TlsFiles::create(&work.join("tls"))?) };
            let log = work.join("segl.log");
            eprintln!(
                "segl-load: starting segl ({}; log {})",
                if tls.is_some() { "TLS, throwaway CA" } else { "plain HTTP" },
                log.display()
            );
            let s = ChildServer::segl(&load.config, &log, &load.server_log_level, tls.as_ref())?;
            let target = match (&tls, s.tls_addr) {
                (Some(files), Some(addr)) => Target::tls(addr, &files.ca, segl_bench::tls::SERVER_NAME)?,
                _ => Target::plain(s.addr),
            };
            let probe = s.probe();
            (Some(s), target, probe)
        }
    };
    if let Some(Err(e)) = probe.metrics.map(segl_bench::probe::scrape) {
        eprintln!("segl-load: no C_Sign CPU from the server ({e}); excl. HSM uses the standalone C_Sign CPU");
    }
    let size = load.pool.unwrap_or(needed.clamp(1, 100_000));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("segl-load: building {size} pre-signed requests");
    let client = DevClient::open(&config)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cpus).enable_all().build()?;
    let settings = segl_bench::pool::OioSettings::of(&config);
    let (pool, stats) =
        segl_bench::pool::build_for_mix(&client, &mix, size, cpus, &|| {}, &rt, &target, &settings)?;
    // build_secs counts every part of the pool; each header-signed part's own time follows.
    eprintln!("segl-load: pool built in {:.1} s: {} DGWS requests", stats.build_secs, stats.size);
    if let Some(oio) = &stats.sosi2oiosaml {
        eprintln!(
            "segl-load: {} Sosi2OIOSaml requests for {} presenting {} cards from the server's NewSecurityTokenService",
            oio.size, oio.audience, oio.cards
        );
    }
    for (kind, p) in stats.signed_oio() {
        eprintln!(
            "segl-load: {} {} requests header-signed by {} in {:.1} s, presenting {} tokens: {}",
            p.size,
            kind.name(),
            p.signer,
            p.build_secs,
            p.tokens,
            p.presented.join("; ")
        );
    }
    // The token is known to be segl's only when segl was started here.
    let standalone_cpu_us_per_sign = if server.is_some() && load.hsm_secs > 0.0 {
        let r = segl_bench::hsm_rate::measure(&config, 1, std::time::Duration::from_secs_f64(load.hsm_secs))?;
        eprintln!(
            "segl-load: C_Sign standalone (segl idle, 1 session): {:.0}/s, {:.0} µs CPU per signature",
            r.per_sec, r.cpu_us_per_sign
        );
        Some(r.cpu_us_per_sign)
    } else {
        None
    };
    let ctx = LoadContext {
        rt,
        target,
        mix,
        pool: Arc::new(pool),
        engine: load.engine.options(),
        server: probe,
        standalone_cpu_us_per_sign,
        signer: config.hsm.signer,
    };
    let record = f(&ctx)?;
    if ctx.pool.replayed() > 0 {
        eprintln!(
            "segl-load: WARNING {} header-signed requests (BST2SOSI, OIOSaml2Sosi, Bst2Idws, JWT2Idws, JWT2OIOSaml) went out twice (their part of the pool ran out): \
             segl refuses a replayed MessageID, so they failed; give a larger --pool",
            ctx.pool.replayed()
        );
    }
    if let Some(age) = ctx.pool.signed_age().filter(|a| a.as_secs() > config.sts.clock_skew_secs) {
        eprintln!(
            "segl-load: WARNING the run ended {:.0} s after the header-signed requests (BST2SOSI, OIOSaml2Sosi, Bst2Idws, JWT2Idws, JWT2OIOSaml) were built: segl refuses \
             a request Timestamp older than {} s (clock_skew_secs), so late requests may have failed",
            age.as_secs_f64(),
            config.sts.clock_skew_secs
        );
    }
    if record.reused_cards > 0 {
        eprintln!(
            "segl-load: {} requests re-sent a pooled card under a fresh message id",
            record.reused_cards
        );
    }
    if let Some(out) = &load.out {
        std::fs::create_dir_all(out)?;
        std::fs::write(out.join("run.json"), serde_json::to_string_pretty(&record)?)?;
    }
    drop(server);
    // The log stays for a look after the run; the throwaway TLS key does not.
    let _ = std::fs::remove_dir_all(work.join("tls"));
    Ok(())
}

/// segl's CPU per request without the HSM operation, from the C_Sign CPU the server counted
/// in the same window, and from the standalone C_Sign CPU when measured.
fn scheduled(load: &LoadArgs, schedule: Schedule, label: &str) -> Result<(), Error> {
    let needed = schedule.requests().ceil() as usize;
    with_load(load, Mix::parse(&load.engine.mix), needed, |ctx| {
        let run = ctx.rt.block_on(engine::run(
            &schedule,
            &ctx.target,
            &ctx.mix,
            &ctx.pool,
            &ctx.engine,
            &ctx.server,
            label,
        ));
        println!(
            "{:<12} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10} {:>11} {:>11}",
            "phase",
            "offered/s",
            "issued/s",
            "shed",
            "failed",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "segl µs/req",
            "gen µs/req"
        );
        for s in &run.segments {
            let l = &s.latency;
            println!(
                "{:<12} {:>9.0} {:>9.0} {:>8} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>11.0} {:>11.0}",
                s.label,
                s.offered_rate,
                s.goodput,
                s.counts.shed,
                s.counts.failed(),
                l.p50_ms,
                l.p99_ms,
                l.p999_ms,
                l.max_ms,
                s.server_cpu_us_per_request().unwrap_or(f64::NAN),
                s.generator_cpu_us_per_request().unwrap_or(f64::NAN)
            );
        }
        for s in run.segments.iter().filter(|s| !s.endpoints.is_empty()) {
            for e in s.endpoints.iter().filter(|e| e.counts.total() > 0) {
                println!(
                    "{:<12} {:>9} {:>9.0} {:>8} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {}",
                    format!("  {}", e.path.rsplit('/').next().unwrap_or(&e.path)),
                    "",
                    e.goodput,
                    e.counts.shed,
                    e.counts.failed(),
                    e.latency.p50_ms,
                    e.latency.p99_ms,
                    e.latency.p999_ms,
                    e.latency.max_ms,
                    if s.sole_endpoint().is_some() { "" } else { "(CPU not attributed: mixed)" }
                );
            }
        }
        println!("transport: {}", if ctx.target.is_tls() { "TLS" } else { "plain HTTP" });
        for s in run.segments.iter().filter(|s| s.measured && s.server_cpu_us_per_request().is_some()) {
            println!("{}: {}", s.label, report_run::cpu_line(s, ctx.standalone_cpu_us_per_sign, ctx.signer));
        }
        Ok(run)
    })
}

/// segl's CPU per issued token, µs (its CPU in the window over the tokens issued).
fn cpu_us_per_issued(s: &SegmentRecord) -> Option<f64> {
    (s.counts.ok > 0).then_some(())?;
    Some(s.server_cpu_ns? as f64 / 1000.0 / s.counts.ok as f64)
}

/// The `compare` command: every mix in turn, `rounds` times, against one segl.
fn compare(
    load: &LoadArgs,
    mixes: &str,
    rates: &[f64],
    secs: f64,
    warmup_secs: f64,
    rounds: usize,
) -> Result<(), Error> {
    let mixes: Vec<Mix> =
        mixes.split(';').filter(|m| !m.trim().is_empty()).map(Mix::parse).collect::<Result<_, _>>()?;
    if mixes.is_empty() {
        return Err("--mixes names no mix".into());
    }
    let rates: Vec<f64> = match rates {
        [one] => vec![*one; mixes.len()],
        many if many.len() == mixes.len() => many.to_vec(),
        _ => return Err("--rate takes one rate, or one per mix".into()),
    };
    // One pool for all of them: each mix's endpoints weighted by the requests its runs send
    // (header-signed requests, BST2SOSI's, OIOSaml2Sosi's and the citizen exchanges', cannot go
    // out twice).
    let all = Mix::new(
        mixes
            .iter()
            .zip(&rates)
            .flat_map(|(m, rate)| {
                let total: u32 = m.weights.iter().map(|w| w.1).sum();
                m.weights.iter().filter(|w| w.1 > 0).map(move |(p, w)| {
                    (p.clone(), ((rate * f64::from(*w) / f64::from(total.max(1))).round() as u32).max(1))
                })
            })
            .collect(),
    );
    let rounds = rounds.max(1);
    let needed = rounds as f64 * rates.iter().sum::<f64>() * (secs + warmup_secs);
    with_load(load, all, needed.ceil() as usize, |ctx| {
        let mut segments = Vec::new();
        let mut table: Vec<Vec<SegmentRecord>> = vec![Vec::new(); mixes.len()];
        for round in 1..=rounds {
            for (i, mix) in mixes.iter().enumerate() {
                let name = mix
                    .weights
                    .iter()
                    .map(|(p, w)| format!("{}={w}", p.rsplit('/').next().unwrap_or(p)))
                    .collect::<Vec<_>>()
                    .join(",");
                let schedule = profiles::soak(rates[i], secs, warmup_secs);
                let label = format!("round {round}: {name}");
                let run = ctx.rt.block_on(engine::run(
                    &schedule,
                    &ctx.target,
                    &Arc::new(mix.clone()),
                    &ctx.pool,
                    &ctx.engine,
                    &ctx.server,
                    &label,
                ));
                if let Some(mut s) = run.segments.into_iter().find(|s| s.measured) {
                    s.label = label;
                    let per_issued = cpu_us_per_issued(&s);
                    let excl = s
                        .hsm_cpu_ns
                        .zip(per_issued)
                        .map(|(h, u)| u - h as f64 / 1000.0 / s.counts.ok.max(1) as f64);
                    println!(
                        "{:<48} offered {:>6.0}/s  issued {:>6.0}/s  shed {:>6}  failed {:>4}  p50 {:>7.2} ms  p99 {:>8.2} ms  segl {:>6} µs/token ({} excl. C_Sign)  {} signatures/token",
                        s.label,
                        s.offered_rate,
                        s.goodput,
                        s.counts.shed,
                        s.counts.failed(),
                        s.latency.p50_ms,
                        s.latency.p99_ms,
                        per_issued.map_or("–".into(), |u| format!("{u:.0}")),
                        excl.map_or("–".into(), |u| format!("{u:.0} µs")),
                        s.signatures_per_issued().map_or("–".into(), |x| format!("{x:.2}")),
                    );
                    table[i].push(s.clone());
                    segments.push(s);
                }
                ctx.rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(500)).await });
            }
        }
        println!("ratios to the first mix, round by round (issued/s; segl CPU per token):");
        for i in 1..mixes.len() {
            for (round, (a, b)) in table[0].iter().zip(&table[i]).enumerate() {
                let cpu = cpu_us_per_issued(b).zip(cpu_us_per_issued(a)).map(|(b, a)| b / a);
                println!(
                    "  round {}: {} / {}: issued {:.3}; CPU per token {}",
                    round + 1,
                    b.label.split(": ").nth(1).unwrap_or(""),
                    a.label.split(": ").nth(1).unwrap_or(""),
                    b.goodput / a.goodput.max(1e-9),
                    cpu.map_or("–".into(), |x| format!("{x:.3}"))
                );
            }
        }
        println!("transport: {}", if ctx.target.is_tls() { "TLS" } else { "plain HTTP" });
        Ok(RunRecord { segments, seconds: vec![], wall_secs: 0.0, reused_cards: ctx.pool.reused() })
    })
}

fn serve_segl(
    config: &Path,
    listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
    tls: Option<TlsConfig>,
) -> Result<(), Error> {
    // As `segl serve` does, but without colour codes: the log goes to a file.
    let _ = tracing_log::LogTracer::init();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    let path = config.to_path_buf();
    let mut config = Config::load(&path)?;
    config.server.listen = listen;
    if let Some(admin) = admin_listen {
        config.server.admin_listen = admin;
    }
    // A TLS listener from the configuration would bind its configured port, where a segl may
    // already serve; the child gets the one it is given or none.
    config.server.tls = tls;
    segl::server::run(path, config)?;
    Ok(())
}
