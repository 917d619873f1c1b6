//! The open-loop engine: requests leave at the schedule's times whatever the server does, wait
//! for a free connection if all are busy, and their latency is counted from the time they were
//! due. A request still unanswered at its deadline (from the time it was due) counts as a
//! timeout, and one that waited in the generator past its deadline is not sent at all.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::client::{ClientError, Connection, Target};
use crate::pool::{RequestKind, RequestPool};
use crate::probe::{ServerDelta, ServerProbe};
use crate::procfs;
use crate::record::{Outcome, Recorder, RunRecord};
use crate::schedule::Schedule;

/// How the generator connects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EngineOptions {
    /// Connections (= requests in flight at most).
    pub connections: usize,
    /// Reuse connections (HTTP/1.1 keep-alive); otherwise one new connection per request.
    pub keep_alive: bool,
    /// Deadline of each request, from its intended send time, in milliseconds.
    pub timeout_ms: u64,
    /// Draw a progress bar on the terminal.
    #[serde(skip)]
    pub progress: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { connections: 128, keep_alive: true, timeout_ms: 5000, progress: true }
    }
}

/// Why an endpoint mix is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MixError {
    /// An entry is not `name=weight`.
    #[error("endpoint mix entry {0:?} is not NAME=WEIGHT")]
    Syntax(String),
    /// The pool has no requests for this endpoint.
    #[error("no requests for endpoint {0:?}: the pool builds DGWS ID-card requests (NewSecurityTokenService, SecurityTokenService) and the requests of Sosi2OIOSaml, BST2SOSI, OIOSaml2Sosi, Bst2Idws, JWT2Idws (alias JWTIdws) and JWT2OIOSaml; give a path starting with / to send DGWS requests elsewhere")]
    Unsupported(String),
    /// All weights are zero.
    #[error("the endpoint mix has no positive weight")]
    Empty,
}

/// Endpoints by weight, interleaved evenly (smooth weighted round robin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mix {
    /// `(path, weight)` as given.
    pub weights: Vec<(String, u32)>,
    cycle: Vec<usize>,
}

/// The endpoints the request pool serves: DGWS requests, and each OIO exchange's own (as segl
/// routes them: exact, case-sensitive names; JWTIdws is JWT2Idws's alias).
const ENDPOINTS: [&str; 9] = [
    "NewSecurityTokenService",
    "SecurityTokenService",
    "Sosi2OIOSaml",
    "BST2SOSI",
    "OIOSaml2Sosi",
    "Bst2Idws",
    "JWT2Idws",
    "JWTIdws",
    "JWT2OIOSaml",
];

impl Mix {
    /// Parses `NAME=WEIGHT,…`; a name is an endpoint under `/sts/services/` or a path.
    pub fn parse(spec: &str) -> Result<Mix, MixError> {
        let mut weights = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = entry.split_once('=').unwrap_or((entry, "1"));
            let weight: u32 = weight.trim().parse().map_err(|_| MixError::Syntax(entry.to_owned()))?;
            let name = name.trim();
            let path = if name.starts_with('/') {
                name.to_owned()
            } else if ENDPOINTS.contains(&name) {
                format!("{}{name}", segl::exchange::SERVICES_PREFIX)
            } else {
                return Err(MixError::Unsupported(name.to_owned()));
            };
            weights.push((path, weight));
        }
        Mix::new(weights)
    }

    /// A mix of `(path, weight)`.
    pub fn new(weights: Vec<(String, u32)>) -> Result<Mix, MixError> {
        let total: u32 = weights.iter().map(|w| w.1).sum();
        if total == 0 {
            return Err(MixError::Empty);
        }
        let mut current = vec![0i64; weights.len()];
        let cycle = (0..total)
            .map(|_| {
                for (c, w) in current.iter_mut().zip(&weights) {
                    *c += i64::from(w.1);
                }
                let pick = (0..weights.len()).max_by_key(|&i| (current[i], -(i as i64))).unwrap_or(0);
                current[pick] -= i64::from(total);
                pick
            })
            .collect();
        Ok(Mix { weights, cycle })
    }

    /// The path of the k-th request.
    pub fn path(&self, k: u64) -> &str {
        &self.weights[self.index(k)].0
    }

    /// The index (into [`Mix::weights`]) of the k-th request's endpoint.
    pub fn index(&self, k: u64) -> usize {
        self.cycle[(k % self.cycle.len() as u64) as usize]
    }

    /// The kind of request the k-th request is.
    pub fn kind(&self, k: u64) -> RequestKind {
        RequestKind::of_path(self.path(k))
    }

    /// The kinds of request the mix sends (those of positive weight).
    pub fn kinds(&self) -> Vec<RequestKind> {
        let mut kinds = Vec::new();
        for (path, weight) in &self.weights {
            let kind = RequestKind::of_path(path);
            if *weight > 0 && !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds
    }

    /// The share of the requests that are of `kind`.
    pub fn share(&self, kind: RequestKind) -> f64 {
        let total: u32 = self.weights.iter().map(|w| w.1).sum();
        let of_kind: u32 =
            self.weights.iter().filter(|w| RequestKind::of_path(&w.0) == kind).map(|w| w.1).sum();
        f64::from(of_kind) / f64::from(total.max(1))
    }

    /// Whether runs keep each endpoint's figures apart: when the mix has an OIO exchange (a
    /// mix of DGWS endpoints alone is recorded as it always was).
    pub fn per_endpoint(&self) -> bool {
        self.kinds().iter().any(|k| *k != RequestKind::Dgws)
    }
}

/// CPU use during one second of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuSample {
    /// Busy fraction per core.
    pub core_busy: Vec<f64>,
    /// Server CPU, cores.
    pub server_cores: Option<f64>,
    /// Generator CPU, cores.
    pub generator_cores: Option<f64>,
}

struct Job {
    k: u64,
    intended: Instant,
    segment: usize,
}

/// Runs `schedule` against `target`. The `server` is read at every segment boundary (CPU,
/// and the HSM counters when its admin listener is known) and its CPU once a second.
pub async fn run(
    schedule: &Schedule,
    target: &Target,
    mix: &Arc<Mix>,
    pool: &Arc<RequestPool>,
    opts: &EngineOptions,
    server: &ServerProbe,
    label: &str,
) -> RunRecord {
    let server_pid = server.pid;
    let recorder = Arc::new(Mutex::new(if mix.per_endpoint() {
        Recorder::with_endpoints(schedule, mix.weights.iter().map(|w| w.0.clone()).collect())
    } else {
        Recorder::new(schedule)
    }));
    let per_endpoint = mix.per_endpoint();
    let reused_before = pool.reused();
    let (tx, rx) = async_channel::unbounded::<Job>();
    let start = Instant::now();
    let timeout = Duration::from_millis(opts.timeout_ms);

    let workers: Vec<_> = (0..opts.connections.max(1))
        .map(|_| {
            let rx = rx.clone();
            let w = Worker {
                target: target.clone(),
                mix: mix.clone(),
                pool: pool.clone(),
                recorder: recorder.clone(),
                keep_alive: opts.keep_alive,
                timeout,
                start,
                per_endpoint,
            };
            tokio::spawn(w.run(rx))
        })
        .collect();
    drop(rx);

    let bar = progress_bar(opts.progress, schedule.secs(), label);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler =
        tokio::spawn(sample(start, server_pid, recorder.clone(), schedule.clone(), bar.clone(), stop_rx));

    // Dispatch.
    let own_pid = std::process::id();
    let starts = schedule.starts();
    let mut boundary = 0usize;
    // Each boundary's reading of the server runs beside the dispatch: a scrape of its
    // /metrics may wait behind requests on its core 0, and the schedule must not.
    let mut server_at = Vec::with_capacity(starts.len() + 1);
    let read_server = || {
        let probe = *server;
        tokio::task::spawn_blocking(move || probe.sample())
    };
    let mut generator_cpu_at = vec![None; starts.len() + 1];
    let mut offered = vec![0u64; schedule.secs().ceil() as usize];
    let mut sent = vec![0u64; starts.len()];
    let at = |offset: f64| start + Duration::from_secs_f64(offset.max(0.0));
    for (k, arrival) in schedule.arrivals().enumerate() {
        while boundary < starts.len() && starts[boundary] <= arrival.offset {
            sleep_until(at(starts[boundary])).await;
            server_at.push(read_server());
            generator_cpu_at[boundary] = procfs::process_cpu_ns(own_pid);
            boundary += 1;
        }
        let intended = at(arrival.offset);
        sleep_until(intended).await;
        if let Some(o) = offered.get_mut(arrival.offset as usize) {
            *o += 1;
        }
        sent[arrival.segment] += 1;
        // The receivers live until the channel is closed below; a send cannot fail before.
        let _ = tx.send(Job { k: k as u64, intended, segment: arrival.segment }).await;
    }
    while boundary <= starts.len() {
        let t = starts.get(boundary).copied().unwrap_or_else(|| schedule.secs());
        sleep_until(at(t)).await;
        server_at.push(read_server());
        generator_cpu_at[boundary] = procfs::process_cpu_ns(own_pid);
        boundary += 1;
    }
    tx.close();
    for w in workers {
        let _ = w.await;
    }
    let wall_secs = start.elapsed().as_secs_f64();
    let mut server_samples = Vec::with_capacity(server_at.len());
    for s in server_at {
        server_samples.push(s.await.unwrap_or_default());
    }
    let server_deltas: Vec<ServerDelta> =
        server_samples.windows(2).map(|w| ServerDelta::between(&w[0], &w[1])).collect();
    let _ = stop_tx.send(true);
    let samples = sampler.await.unwrap_or_default();
    bar.finish_and_clear();

    let delta = |at: &[Option<u64>]| -> Vec<Option<u64>> {
        at.windows(2).map(|w| Some(w[1]?.saturating_sub(w[0]?))).collect()
    };
    let rec = recorder.lock().unwrap_or_else(PoisonError::into_inner);
    let server_cpu: Vec<Option<u64>> = server_deltas.iter().map(|d| d.cpu_ns).collect();
    let mut segments = rec.segment_records(schedule, &sent, &server_cpu, &delta(&generator_cpu_at));
    for (s, d) in segments.iter_mut().zip(&server_deltas) {
        s.server_user_cpu_ns = d.user_ns;
        s.server_system_cpu_ns = d.system_ns;
        s.hsm_cpu_ns = d.hsm_cpu_ns;
        s.hsm_signatures = d.hsm_signatures;
    }
    RunRecord {
        segments,
        seconds: rec.second_records(&offered, &samples),
        wall_secs,
        reused_cards: pool.reused() - reused_before,
    }
}

async fn sleep_until(t: Instant) {
    if t > Instant::now() {
        tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
    }
}

fn progress_bar(enabled: bool, secs: f64, label: &str) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(secs.ceil() as u64);
    if let Ok(style) = ProgressStyle::with_template("{prefix:>14} [{bar:28}] {pos:>4}/{len}s {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label.to_owned());
    bar
}

/// Samples CPU once a second until told to stop, and keeps the progress bar current.
async fn sample(
    start: Instant,
    server_pid: Option<u32>,
    recorder: Arc<Mutex<Recorder>>,
    schedule: Schedule,
    bar: ProgressBar,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<CpuSample> {
    let own = std::process::id();
    let mut samples = Vec::new();
    let mut cores = procfs::core_times();
    let mut server = server_pid.and_then(procfs::process_cpu_ns);
    let mut generator = procfs::process_cpu_ns(own);
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(start + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return samples,
        }
        let now_cores = procfs::core_times();
        let now_server = server_pid.and_then(procfs::process_cpu_ns);
        let now_generator = procfs::process_cpu_ns(own);
        let per_sec = |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / 1e9);
        samples.push(CpuSample {
            core_busy: procfs::utilisation(&cores, &now_cores),
            server_cores: per_sec(server, now_server),
            generator_cores: per_sec(generator, now_generator),
        });
        (cores, server, generator) = (now_cores, now_server, now_generator);
        let t = samples.len();
        let (done, p99) = {
            let r = recorder.lock().unwrap_or_else(PoisonError::into_inner);
            (r.done_in(t - 1), r.p99_in(t - 1))
        };
        bar.set_position(t as u64);
        bar.set_message(format!(
            "offered {:>6.0}/s  ok {:>6}/s  shed {:>5}  failed {:>5}  p99 {}",
            schedule.rate_at(t as f64 - 0.5),
            done.ok,
            done.shed,
            done.failed(),
            p99.map(|p| format!("{p:.1} ms")).unwrap_or_else(|| "-".into())
        ));
    }
}

struct Worker {
    target: Target,
    mix: Arc<Mix>,
    pool: Arc<RequestPool>,
    recorder: Arc<Mutex<Recorder>>,
    keep_alive: bool,
    timeout: Duration,
    start: Instant,
    per_endpoint: bool,
}

impl Worker {
    async fn run(self, rx: async_channel::Receiver<Job>) {
        let mut conn: Option<Connection> = None;
        while let Ok(job) = rx.recv().await {
            let picked = Instant::now();
            let deadline = job.intended + self.timeout;
            let outcome = if picked >= deadline {
                Outcome::Timeout
            } else {
                let body = self.pool.take_for(self.mix.kind(job.k));
                let head = self.target.head(self.mix.path(job.k), body.len(), !self.keep_alive);
                let exchange = exchange(&mut conn, &self.target, head.as_bytes(), &body);
                match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), exchange).await {
                    Err(_) => {
                        conn = None;
                        Outcome::Timeout
                    }
                    Ok(Err(e)) => {
                        tracing::debug!("request failed: {e}");
                        conn = None;
                        Outcome::Error
                    }
                    Ok(Ok(reply)) => {
                        if !(reply.keep_alive && self.keep_alive) {
                            conn = None;
                        }
                        Outcome::of_status(reply.status)
                    }
                }
            };
            let us = |t: Instant| t.saturating_duration_since(self.start).as_micros() as u64;
            let done = Instant::now();
            let intended = us(job.intended);
            self.recorder.lock().unwrap_or_else(PoisonError::into_inner).record_for(
                self.per_endpoint.then(|| self.mix.index(job.k)),
                job.segment,
                intended,
                us(picked).saturating_sub(intended),
                us(done),
                outcome,
            );
        }
    }
}

/// One request on the kept connection (or a new one). A kept connection the server closed
/// while idle is replaced once, as HTTP clients do.
async fn exchange(
    conn: &mut Option<Connection>,
    target: &Target,
    head: &[u8],
    body: &[u8],
) -> Result<crate::client::Reply, ClientError> {
    if let Some(c) = conn.as_mut() {
        match c.exchange(head, body).await {
            Err(ClientError::Closed { got: 0 } | ClientError::Io(_)) if c.is_reused() => *conn = None,
            other => return other,
        }
    }
    let c = conn.insert(target.connect().await?);
    c.exchange(head, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_interleaves_by_weight() {
        let mix = Mix::parse("NewSecurityTokenService=3, SecurityTokenService=1").unwrap();
        let paths: Vec<_> = (0..8).map(|k| mix.path(k).rsplit('/').next().unwrap().to_owned()).collect();
        assert_eq!(paths.iter().filter(|p| *p == "SecurityTokenService").count(), 2);
        assert!(paths.windows(2).all(|w| w[0] != w[1] || w[0] == "NewSecurityTokenService"), "{paths:?}");
        assert_eq!(Mix::parse("/x=1").unwrap().path(5), "/x");
        assert_eq!(Mix::parse("Bst2Idw=1"), Err(MixError::Unsupported("Bst2Idw".into())));
        // Names are segl's paths, matched exactly.
        assert_eq!(Mix::parse("BST2IDWS=1"), Err(MixError::Unsupported("BST2IDWS".into())));
        assert_eq!(Mix::parse("jwt2oiosaml=1"), Err(MixError::Unsupported("jwt2oiosaml".into())));
        let oio = Mix::parse("NewSecurityTokenService=1,Sosi2OIOSaml=1").unwrap();
        assert_eq!(oio.path(1), "/sts/services/Sosi2OIOSaml");
        assert_eq!(oio.kinds(), [RequestKind::Dgws, RequestKind::Sosi2OioSaml]);
        assert_eq!(oio.share(RequestKind::Sosi2OioSaml), 0.5);
        assert!(oio.per_endpoint() && !mix.per_endpoint());
        assert_eq!((0..4).filter(|&k| oio.kind(k) == RequestKind::Sosi2OioSaml).count(), 2);
        let all = Mix::parse("NewSecurityTokenService=1,Sosi2OIOSaml=1,BST2SOSI=1,OIOSaml2Sosi=1").unwrap();
        assert_eq!(all.kinds(), RequestKind::ALL[..4]);
        assert_eq!(all.share(RequestKind::Bst2Sosi), 0.25);
        let every = Mix::parse(
            "NewSecurityTokenService=1,Sosi2OIOSaml=1,BST2SOSI=1,OIOSaml2Sosi=1,Bst2Idws=1,JWT2Idws=1,JWT2OIOSaml=1",
        )
        .unwrap();
        assert_eq!(every.kinds(), RequestKind::ALL);
        assert!(Mix::parse("BST2SOSI=1").unwrap().per_endpoint());
        assert!(Mix::parse("OIOSaml2Sosi=1").unwrap().per_endpoint());
        let citizen =
            Mix::parse("NewSecurityTokenService=2,Bst2Idws=1,JWT2Idws=1,JWTIdws=1,JWT2OIOSaml=1").unwrap();
        assert_eq!(
            citizen.kinds(),
            [RequestKind::Dgws, RequestKind::Bst2Idws, RequestKind::Jwt2Idws, RequestKind::Jwt2OioSaml]
        );
        // The alias takes JWT2Idws's requests but is its own endpoint (and path) in the report.
        assert_eq!(citizen.share(RequestKind::Jwt2Idws), 2.0 / 6.0);
        assert_eq!(citizen.weights[3].0, "/sts/services/JWTIdws");
        assert_eq!(citizen.share(RequestKind::Jwt2OioSaml), 1.0 / 6.0);
        let paths: Vec<&str> = (0..6).map(|k| citizen.path(k)).collect();
        assert!(paths.contains(&"/sts/services/Bst2Idws") && paths.contains(&"/sts/services/JWT2OIOSaml"));
        assert!(citizen.per_endpoint());
        for (name, kind) in [
            ("Bst2Idws", RequestKind::Bst2Idws),
            ("JWT2Idws", RequestKind::Jwt2Idws),
            ("JWTIdws", RequestKind::Jwt2Idws),
            ("JWT2OIOSaml", RequestKind::Jwt2OioSaml),
        ] {
            let alone = Mix::parse(&format!("{name}=1")).unwrap();
            assert!(alone.per_endpoint(), "{name}");
            assert_eq!(alone.kinds(), [kind], "{name}");
        }
        assert_eq!(Mix::parse("NewSecurityTokenService=0"), Err(MixError::Empty));
        assert!(matches!(Mix::parse("NewSecurityTokenService=x"), Err(MixError::Syntax(_))));
    }
}
