//! The process around the executors: reload on SIGHUP and when the configuration file changes,
//! drain on SIGTERM/SIGINT, and tell systemd (sd_notify READY / RELOADING / STOPPING, and the
//! watchdog, pinged only while every core makes progress).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sd_notify::NotifyState;

use crate::config::Config;
use crate::exchange::Shared;

/// State shared by the executors and the lifecycle threads.
pub struct Lifecycle {
    /// Set once SIGTERM arrives: `/readyz` says not ready and connections close after their
    /// current response, while requests are still served for `server.drain_grace_ms`.
    pub leaving: AtomicBool,
    /// Set when the grace period is over: new requests are refused, connections close after
    /// their current response, the listeners close.
    pub draining: AtomicBool,
    /// Requests admitted and not yet answered, all cores together.
    pub in_flight: AtomicUsize,
    /// Bumped by each core's heartbeat task; the watchdog pings only while all advance.
    pub heartbeats: Vec<AtomicU64>,
    /// Cores whose listeners are bound.
    pub cores_ready: AtomicUsize,
    /// The first core that could not start, and why.
    pub startup_failure: std::sync::Mutex<Option<(usize, String)>>,
    /// Every core's signer counters, so `/metrics` (on core 0) can publish them as of now.
    pub signer_stats: std::sync::Mutex<Vec<(usize, Arc<segl_pkcs11::SignerStats>)>>,
    /// Which cores reach the replay store (always all of them with a local store).
    pub replay: Arc<crate::exchange::replay::ReplayHealth>,
}

impl Lifecycle {
    /// State for `cores` executors, whose requests get `when_unavailable` while the replay
    /// store (Redis, when `redis`) cannot answer.
    pub fn new(
        cores: usize,
        when_unavailable: crate::config::WhenUnavailable,
        redis: bool,
    ) -> Arc<Lifecycle> {
        Arc::new(Lifecycle {
            leaving: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            heartbeats: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            cores_ready: AtomicUsize::new(0),
            startup_failure: std::sync::Mutex::new(None),
            signer_stats: std::sync::Mutex::new(Vec::new()),
            replay: Arc::new(crate::exchange::replay::ReplayHealth::new(cores, when_unavailable, redis)),
        })
    }

    /// Whether the node refuses new requests (the grace period after SIGTERM is over).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Whether shutdown has begun: the node is leaving its load balancer's pool.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }
}

/// Loads `path`, validates it completely and swaps it in; an invalid file is refused, the
/// reason logged, and the running configuration keeps serving.
pub fn reload(shared: &Shared, path: &std::path::Path) -> Result<u64, String> {
    // systemd wants RELOADING=1 with the monotonic time of the reload.
    let mut states = vec![NotifyState::Reloading];
    states.extend(NotifyState::monotonic_usec_now().ok());
    let _ = sd_notify::notify(false, &states);
    let result = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|c| shared.reload(c).map_err(|e| e.to_string()));
    match &result {
        Ok(version) => {
            tracing::info!(config = %path.display(), version, "configuration reloaded");
            metrics::counter!(crate::telemetry::RELOADS, "result" => "ok").increment(1);
            metrics::gauge!(crate::telemetry::CONFIG_VERSION).set(*version as f64);
        }
        Err(reason) => {
            tracing::error!(config = %path.display(), "configuration refused, the previous one keeps serving: {reason}");
            metrics::counter!(crate::telemetry::RELOADS, "result" => "rejected").increment(1);
        }
    }
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
    result
}

/// The signals segl handles, registered before anything else starts: a SIGHUP that arrived
/// before registration would end the process (its default action); after it, it waits.
pub fn register_signals() -> std::io::Result<signal_hook::iterator::Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
}

/// Reloads on SIGHUP and when the configuration file's modification time changes; drains on
/// SIGTERM and SIGINT. Returns when a drain is requested.
pub fn run_signals(
    mut signals: signal_hook::iterator::Signals,
    shared: Arc<Shared>,
    lifecycle: Arc<Lifecycle>,
    config_path: PathBuf,
) -> std::io::Result<()> {
    use signal_hook::consts::SIGHUP;
    let watched = config_path.clone();
    let watch_shared = shared.clone();
    let watch_lifecycle = lifecycle.clone();
    std::thread::Builder::new().name("segl-config-watch".into()).spawn(move || {
        let mtime = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut last: Option<SystemTime> = mtime(&watched);
        while !watch_lifecycle.is_draining() {
            std::thread::sleep(Duration::from_secs(1));
            let now = mtime(&watched);
            if now != last {
                last = now;
                let _ = reload(&watch_shared, &watched);
            }
        }
    })?;
    for signal in signals.forever() {
        match signal {
            SIGHUP => {
                let _ = reload(&shared, &config_path);
            }
            _ => {
                let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
                lifecycle.leaving.store(true, Ordering::SeqCst);
                // As configured now (a reload may have changed it).
                let grace = Duration::from_millis(shared.policy().config.server.drain_grace_ms);
                if !grace.is_zero() {
                    // Behind a load balancer: /readyz fails its check while the node still
                    // serves whatever the balancer sends until it notices.
                    tracing::info!(
                        signal,
                        grace_ms = grace.as_millis() as u64,
                        "shutting down: not ready, serving on for the grace period"
                    );
                    std::thread::sleep(grace);
                }
                tracing::info!(signal, "shutting down: refusing new requests, draining those in flight");
                lifecycle.draining.store(true, Ordering::SeqCst);
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Waits (up to `timeout`) for the requests in flight to finish, then flushes the audit log.
pub fn drain(shared: &Shared, lifecycle: &Lifecycle, timeout: Duration) {
    let start = Instant::now();
    while lifecycle.in_flight.load(Ordering::SeqCst) > 0 && start.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = lifecycle.in_flight.load(Ordering::SeqCst);
    if left > 0 {
        tracing::warn!(left, "drain timeout: exiting with requests in flight");
    } else {
        tracing::info!(waited_ms = start.elapsed().as_millis() as u64, "drained");
    }
    if let Err(e) = shared.audit.close_blocking() {
        tracing::error!("audit log flush at shutdown failed: {e}");
    }
}

/// Pings the systemd watchdog at half its interval while every core's heartbeat advances; a
/// wedged core stops the pings and systemd restarts the service.
pub fn spawn_watchdog(lifecycle: Arc<Lifecycle>) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let interval = Duration::from_micros(usec / 2);
    let spawned = std::thread::Builder::new().name("segl-watchdog".into()).spawn(move || {
        let mut last: Vec<u64> = lifecycle.heartbeats.iter().map(|h| h.load(Ordering::Relaxed)).collect();
        loop {
            std::thread::sleep(interval);
            let now: Vec<u64> = lifecycle.heartbeats.iter().map(|h| h.load(Ordering::Relaxed)).collect();
            if now.iter().zip(&last).all(|(n, l)| n != l) {
                let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
            } else {
                tracing::error!("a core stopped making progress; withholding the watchdog ping");
            }
            last = now;
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the watchdog thread: {e}");
    }
}

/// Tells systemd the service is ready.
pub fn notify_ready() {
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
}
