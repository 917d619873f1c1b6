//! What segl's batched signer costs against the HSM itself, in one run on one token:
//!
//! - `raw`: N threads, each with its own session and cached key handle, calling C_Sign
//!   (CKM_RSA_PKCS over a SHA-256 DigestInfo) back to back: the token's ceiling.
//! - `inline`: one glommio executor pinned per core, each with segl's batched signer in inline
//!   mode (one session per core) and many concurrent requests queuing digests.
//! - `pipelined`: the same executors with the signer in pipelined mode (K worker sessions per
//!   core fed through crossbeam channels).
//!
//! Configurations run in interleaved rounds (raw, inline, pipelined, raw, …) so that noise from
//! the shared machine falls on all of them alike; the report gives each round's rate, the
//! median per configuration and the ratios of the medians.
//!
//! `cargo bench -p segl-bench --bench hsm` (SoftHSMv2 must be installed). Environment:
//! `HSM_BENCH_SECONDS` per run (default 3), `HSM_BENCH_ROUNDS` (default 3), `HSM_BENCH_CORES`
//! (default: available cores), `HSM_BENCH_KEY_BITS` (default 2048).

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use segl_pkcs11::{
    BatchConfig, BatchSigner, HashAlgorithm, HsmModule, HsmStatus, SecretPin, SignerMode, Token,
};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const KEY: &str = "bench-key";
/// Requests in flight per core for the batched signer: enough to keep batches full.
const CONCURRENCY: usize = 32;

#[derive(Clone, Copy, Debug)]
enum Config {
    Raw,
    Inline,
    Pipelined(usize),
}

impl Config {
    fn name(self) -> String {
        match self {
            Config::Raw => "raw C_Sign".into(),
            Config::Inline => "batched inline".into(),
            Config::Pipelined(k) => format!("batched pipelined K={k}"),
        }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if !Path::new(MODULE).exists() {
        eprintln!("SoftHSMv2 not installed at {MODULE}; nothing to measure");
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs with no such flag: be quick.
    let benching = std::env::args().any(|a| a == "--bench");
    let seconds = if benching { env_or("HSM_BENCH_SECONDS", 3) } else { 1 };
    let rounds = if benching { env_or("HSM_BENCH_ROUNDS", 3) } else { 1 } as usize;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = env_or("HSM_BENCH_CORES", cpus as u64) as usize;
    let bits = env_or("HSM_BENCH_KEY_BITS", 2048) as u32;
    let token = token(bits);
    let run_for = Duration::from_secs(seconds);
    let configs = [Config::Raw, Config::Inline, Config::Pipelined(1), Config::Pipelined(2)];
    // The raw loop again at the end of each round: a drift over the round shows as a gap
    // between the two raw figures.
    let configs = [&configs[..], &[Config::Raw]].concat();

    println!(
        "HSM bench: SoftHSMv2 RSA-{bits} CKM_RSA_PKCS, {cores} sessions/cores, {seconds} s per run, {rounds} rounds, {CONCURRENCY} requests in flight per core"
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut per_cpu: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        for (i, config) in configs.iter().enumerate() {
            let run = match config {
                Config::Raw => raw(&token, cores, run_for),
                Config::Inline => batched(&token, cores, SignerMode::Inline, 1, run_for),
                Config::Pipelined(k) => batched(&token, cores, SignerMode::Pipelined, *k, run_for),
            };
            let rate = run.ops as f64 / run.wall.as_secs_f64();
            let cpu_rate = run.ops as f64 / run.cpu.as_secs_f64().max(0.01);
            println!(
                "round {round}: {:<24} {:>7} signatures in {:.2} s = {rate:>7.0}/s wall, {:.2} s CPU = {cpu_rate:>6.0}/CPU-s",
                config.name(),
                run.ops,
                run.wall.as_secs_f64(),
                run.cpu.as_secs_f64()
            );
            rates[i].push(rate);
            per_cpu[i].push(cpu_rate);
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let cpu_medians: Vec<f64> = per_cpu.iter_mut().map(|r| median(r)).collect();
    println!("\nmedian of {rounds} rounds (ratios against the first raw C_Sign line):");
    println!("  {:<24} {:>9} {:>9} {:>12} {:>9}", "", "wall/s", "× raw", "per CPU-s", "× raw");
    for (i, config) in configs.iter().enumerate() {
        println!(
            "  {:<24} {:>9.0} {:>9.3} {:>12.0} {:>9.3}",
            config.name(),
            medians[i],
            medians[i] / medians[0],
            cpu_medians[i],
            cpu_medians[i] / cpu_medians[0]
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A fresh token with one RSA key, in a directory of its own under the target directory.
fn token(bits: u32) -> Token {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hsm-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).unwrap();
    let conf = dir.join("softhsm2.conf");
    let text = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
        dir.join("tokens").display()
    );
    std::fs::write(&conf, text).unwrap();
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let module = HsmModule::load(Path::new(MODULE)).unwrap();
    let pin = SecretPin::new("bench-pin-1234");
    let token = module.init_token("segl-bench", &SecretPin::new("bench-so-5678"), &pin).unwrap();
    token.login(&pin).unwrap();
    token.session().unwrap().generate_rsa_key(KEY, b"bench", bits).unwrap();
    token
}

/// What one measured run counted.
struct Run {
    ops: u64,
    wall: Duration,
    /// CPU time the whole process used meanwhile.
    cpu: Duration,
}

/// Operations counted over `run_for`, after a warm-up that excludes startup (sessions, threads).
fn measure(ops: &AtomicU64, run_for: Duration) -> Run {
    std::thread::sleep(Duration::from_millis(300));
    let (before, cpu_before, start) = (ops.load(Ordering::Relaxed), process_cpu(), Instant::now());
    std::thread::sleep(run_for);
    Run {
        ops: ops.load(Ordering::Relaxed) - before,
        wall: start.elapsed(),
        cpu: process_cpu().saturating_sub(cpu_before),
    }
}

/// User + system CPU time of this process (`/proc/self/stat`, clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    Duration::from_millis(ticks * 10)
}

/// N threads, a session and cached handle each, C_Sign back to back.
fn raw(token: &Token, sessions: usize, run_for: Duration) -> Run {
    let ops = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..sessions)
        .map(|_| {
            let signer = token.signer(KEY).unwrap();
            let (ops, stop) = (ops.clone(), stop.clone());
            std::thread::spawn(move || {
                let digest = [7u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    signer.sign_digest(HashAlgorithm::Sha256, &digest).unwrap();
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let run = measure(&ops, run_for);
    stop.store(true, Ordering::Relaxed);
    threads.into_iter().for_each(|t| t.join().unwrap());
    run
}

/// One pinned executor per core with segl's batched signer and CONCURRENCY request tasks.
fn batched(token: &Token, cores: usize, mode: SignerMode, sessions: usize, run_for: Duration) -> Run {
    let ops = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let status = Arc::new(HsmStatus::default());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let executors: Vec<_> = (0..cores)
        .map(|core| {
            let config = BatchConfig::new(mode, sessions, 64, format!("bench core {core}"));
            let (signer, driver) = BatchSigner::open(token, &config, status.clone()).unwrap();
            let (ops, stop) = (ops.clone(), stop.clone());
            let placement = if core < cpus { Placement::Fixed(core) } else { Placement::Unbound };
            LocalExecutorBuilder::new(placement)
                .spawn(move || async move {
                    glommio::spawn_local(driver.run()).detach();
                    let signer = Rc::new(signer);
                    let key: Arc<str> = Arc::from(KEY);
                    let tasks: Vec<_> = (0..CONCURRENCY)
                        .map(|_| {
                            let (signer, key, ops, stop) =
                                (signer.clone(), key.clone(), ops.clone(), stop.clone());
                            glommio::spawn_local(async move {
                                let digest = [7u8; 32];
                                while !stop.load(Ordering::Relaxed) {
                                    signer.sign(&key, HashAlgorithm::Sha256, &digest).await.unwrap();
                                    ops.fetch_add(1, Ordering::Relaxed);
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await;
                    }
                })
                .unwrap()
        })
        .collect();
    let run = measure(&ops, run_for);
    stop.store(true, Ordering::Relaxed);
    executors.into_iter().for_each(|e| e.join().unwrap());
    run
}
