//! The server: one glommio executor pinned per core, each with its own SO_REUSEPORT listeners
//! (plain HTTP, TLS) and its own HSM session; admission control in front of the exchanges;
//! an admin listener on core 0; and the process lifecycle around them (reload, drain, systemd).

pub mod accept;
pub mod admin;
pub mod admission;
pub mod http;
pub mod lifecycle;
pub mod tls;

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_rustls::TlsAcceptor;
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, ReplayStore};
use crate::exchange::error::RequestError;
use crate::exchange::replay::redis::{CoreRedis, RedisSettings};
use crate::exchange::replay::ReplayCheck;
use crate::exchange::{self, CoreContext, Endpoint, Shared};
use crate::signing::{SigningError, StsKey};
use crate::telemetry;
use admission::{Admission, ClientKey, Priority, Shed};
use http::{ConnectionInfo, HttpLimits, Refusal, Request, Response};
use lifecycle::Lifecycle;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The STS key is not usable.
    #[error("STS key: {0}")]
    Key(#[from] SigningError),
    /// The shared state (trust anchors, CRLs, roles, audit log) could not be built.
    #[error("{0}")]
    Shared(#[from] crate::exchange::SharedError),
    /// TLS could not be configured.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// An executor could not be started or failed.
    #[error("executor for core {core}: {reason}")]
    Executor { core: usize, reason: String },
    /// Signal handling could not be set up.
    #[error("signals: {0}")]
    Signals(std::io::Error),
    /// The Redis replay store's settings could not be used (an address that does not resolve,
    /// an unreadable password or CA file).
    #[error("{0}")]
    ReplayStore(String),
}

/// What every core needs besides its exchange context.
struct CoreEnv {
    core: usize,
    limits: HttpLimits,
    lifecycle: Arc<Lifecycle>,
    tls: Option<TlsAcceptor>,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    max_connections: usize,
    connections: Cell<usize>,
}

/// Starts one executor per configured core, serves until SIGTERM/SIGINT, then drains.
pub fn run(config_path: PathBuf, config: Config) -> Result<(), ServeError> {
    let signals = lifecycle::register_signals().map_err(ServeError::Signals)?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = config.server.cores.unwrap_or(cpus);
    let metrics = telemetry::install();
    // Startup progress is logged stage by stage, so that a start that stalls (a token locked
    // by another process, an unreachable network HSM) says where.
    tracing::info!(module = %config.hsm.module.display(), cores, "starting: opening the HSM token");
    // Before any thread exists: the module environment is exported here.
    let key = StsKey::open(&config.hsm)?;
    tracing::info!(key = %key.credential().key_label, "starting: STS key found; building the shared state");
    // Picks up `segl keys activate` while serving; stops when `run` returns.
    let _inventory_watch = key.watch_inventory()?;
    let tls = config.server.tls.as_ref().map(|t| tls::server_config(t, &config.trust)).transpose()?;
    let limits = HttpLimits {
        max_header_bytes: config.server.max_header_bytes,
        max_body_bytes: config.server.max_body_bytes,
        idle_timeout: Duration::from_millis(config.server.idle_timeout_ms),
    };
    let drain_timeout = Duration::from_millis(config.server.drain_timeout_ms);
    let max_connections = config.server.max_connections_per_core;
    // Names are resolved and secrets read once, here: a core never blocks on them.
    let redis = match (&config.replay.store, &config.replay.redis) {
        (ReplayStore::Redis, Some(redis)) => {
            let settings = RedisSettings::from_config(redis).map_err(ServeError::ReplayStore)?;
            tracing::info!(
                addresses = settings.describe(),
                when_unavailable = ?redis.when_unavailable,
                "replay store: Redis, one connection per core"
            );
            Some(settings)
        }
        _ => None,
    };
    let when_unavailable = config.replay.redis.as_ref().map(|r| r.when_unavailable).unwrap_or_default();
    let shared = Arc::new(Shared::from_config(Arc::new(config))?);
    let (watched, loader) = (shared.clone(), shared.clone());
    crate::trust::crl::watch(
        move || watched.policy().config.trust.crl_dir.clone(),
        move |dir| loader.policy().trust.load_crls(dir),
        shared.crls.clone(),
    );
    metrics::gauge!(telemetry::CONFIG_VERSION).set(1.0);
    metrics::gauge!(
        telemetry::BUILD_INFO,
        "version" => crate::build_info::VERSION,
        "commit" => crate::build_info::COMMIT
    )
    .set(1.0);
    let lifecycle = Lifecycle::new(cores, when_unavailable, redis.is_some());
    tracing::info!("starting: opening each core's HSM sessions and listeners");

    let mut executors = Vec::with_capacity(cores);
    for core in 0..cores {
        // Each core gets its own session up front, so a token problem stops startup instead
        // of surfacing on the first request.
        let (signer, signer_driver) = key.core_signer(core)?;
        let shared = shared.clone();
        let redis = redis.clone();
        let env = CoreEnv {
            core,
            limits: limits.clone(),
            lifecycle: lifecycle.clone(),
            tls: tls.clone().map(TlsAcceptor::from),
            metrics: metrics.clone(),
            max_connections,
            connections: Cell::new(0),
        };
        let placement = if core < cpus { Placement::Fixed(core) } else { Placement::Unbound };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("segl-core-{core}"))
            // Small io_uring registrations so segl also runs without CAP_IPC_LOCK.
            .io_memory(1 << 20)
            .ring_depth(256)
            // The start-up task runs with glommio's default time slice; the serving work gets
            // its short one from its task queue (see `in_serving_queue`).
            .preempt_timer(STARTUP_SLICE)
            .spawn(move || async move {
                let lifecycle = env.lifecycle.clone();
                let result = in_serving_queue(async move {
                    glommio::spawn_local(signer_driver.run()).detach();
                    if let Ok(mut signers) = env.lifecycle.signer_stats.lock() {
                        signers.push((core, signer.stats_handle()));
                    }
                    let mut ctx = CoreContext::new(shared, signer);
                    if let Some(settings) = redis {
                        let client = CoreRedis::start(settings, core, env.lifecycle.replay.clone());
                        ctx = ctx.with_replay(ReplayCheck::Redis(client));
                    }
                    let ctx = Rc::new(ctx);
                    serve_core(ctx, Rc::new(env)).await
                })
                .await;
                if let Err(reason) = &result {
                    if let Ok(mut failure) = lifecycle.startup_failure.lock() {
                        failure.get_or_insert((core, reason.clone()));
                    }
                }
                result
            })
            .map_err(|e| ServeError::Executor { core, reason: e.to_string() })?;
        executors.push((core, handle));
    }

    // Ready once every core listens (or one of them failed to). A core that has not started in
    // a minute will not: exiting says so, and the service manager starts segl again.
    let started = Instant::now();
    while lifecycle.cores_ready.load(Ordering::SeqCst) < cores {
        let failure = lifecycle.startup_failure.lock().map(|f| f.clone()).unwrap_or(None);
        if let Some((core, reason)) = failure {
            return Err(ServeError::Executor { core, reason });
        }
        if started.elapsed() > CORE_START_LIMIT {
            let ready = lifecycle.cores_ready.load(Ordering::SeqCst);
            return Err(ServeError::Executor {
                core: ready,
                reason: format!("{ready} of {cores} cores started within {} s", CORE_START_LIMIT.as_secs()),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // The executors run until the process exits; their handles are not joined.
    drop(executors);
    let policy = shared.policy();
    tracing::info!(
        listen = %policy.config.server.listen,
        tls = ?policy.config.server.tls.as_ref().map(|t| t.listen),
        admin = %policy.config.server.admin_listen,
        cores,
        key = %key.credential().key_label,
        commit = crate::build_info::COMMIT,
        "segl serving"
    );
    lifecycle::notify_ready();
    lifecycle::spawn_watchdog(lifecycle.clone());
    lifecycle::run_signals(signals, shared.clone(), lifecycle.clone(), config_path)
        .map_err(ServeError::Signals)?;
    lifecycle::drain(&shared, &lifecycle, drain_timeout);
    Ok(())
}

/// How long the cores may take to start listening.
const CORE_START_LIMIT: Duration = Duration::from_secs(60);

/// The time slice of a core's start-up task (glommio's default).
const STARTUP_SLICE: Duration = Duration::from_millis(100);

/// The time slice of the serving work. glommio reaps I/O completions only between time slices
/// or when no task is runnable; the inline signer stays runnable while it has work, so the
/// slice is about one signature long (a 100 ms slice would hold new requests — and the
/// refusals admission control promises in microseconds — for up to 100 ms).
const SERVING_SLICE: Duration = Duration::from_millis(1);

/// How often the start-up task looks whether the serving task has started.
const STARTUP_NUDGE: Duration = Duration::from_millis(2);

/// Runs `serve` in a task queue whose latency requirement gives the core its short time slice,
/// and waits for it.
///
/// glommio 0.9 parks an executor that was preempted before it ran any task even when one is
/// runnable, and then only pending I/O or a timer wakes it. With the short slice as the
/// executor's default, a core descheduled for a millisecond right at start-up (a busy machine)
/// slept forever before its first task ran, and the server never became ready. So the start-up
/// task runs with glommio's default slice, and keeps a timer pending until the serving task has
/// run once; from then on the serving task's own timers (the accept loop's drain check, the
/// heartbeat) bound such a sleep.
///
/// The price: glommio wakes a task of a latency-sensitive queue from another thread (the audit
/// writer's answer, a pipelined signer's) with a forced eventfd write. Measured against the
/// single 1 ms default queue (`core_profile.sh 400 10 inline tls`, 4fe7f5e beside b3b1c2c, two
/// runs each): segl's own CPU per card 381 and 364 µs against 350 and 344 µs. Giving only the
/// inline signer the latency queue would avoid it; that changes how the core shares its time
/// between signing and requests, and is left for a change measured on its own.
async fn in_serving_queue(serve: impl Future<Output = Result<(), String>> + 'static) -> Result<(), String> {
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::default(),
        glommio::Latency::Matters(SERVING_SLICE),
        "serving",
    );
    let started = Rc::new(Cell::new(false));
    let flag = started.clone();
    let task = glommio::spawn_local_into(
        async move {
            flag.set(true);
            serve.await
        },
        queue,
    )
    .map_err(|e| format!("cannot start the serving task: {e}"))?;
    while !started.get() {
        glommio::timer::sleep(STARTUP_NUDGE).await;
    }
    task.await
}

async fn serve_core(ctx: Rc<CoreContext>, env: Rc<CoreEnv>) -> Result<(), String> {
    let config = ctx.shared.policy().config.clone();
    let bind = |addr| TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"));
    let plain = bind(config.server.listen)?;
    let tls = match (&env.tls, &config.server.tls) {
        (Some(acceptor), Some(t)) => Some((bind(t.listen)?, acceptor.clone())),
        _ => None,
    };
    // The admin listener lives on core 0 only: it is not on the request path.
    let admin = if env.core == 0 { Some(bind(config.server.admin_listen)?) } else { None };
    let queue = admission::QueueSettings {
        target: Duration::from_millis(config.server.queue_target_ms),
        interval: Duration::from_millis(config.server.queue_interval_ms),
    };
    let signer_stats = ctx.signer.stats_handle();
    let admission = Admission::new(
        Duration::from_millis(config.server.deadline_ms),
        queue,
        Box::new(signer_stats),
        Instant::now(),
        busy_clock(&ctx, &config),
    );
    let handler = Rc::new(StsHandler { ctx: ctx.clone(), admission: admission.clone(), env: env.clone() });

    glommio::spawn_local(heartbeat(env.clone(), admission, ctx.clone())).detach();
    if let Some((listener, acceptor)) = tls {
        glommio::spawn_local(accept_loop(listener, Some(acceptor), handler.clone(), env.clone())).detach();
    }
    if let Some(listener) = admin {
        let readiness_env = env.clone();
        let hsm = ctx.signer.hsm_status().clone();
        let readiness: admin::Readiness = Rc::new(move || {
            let mut reasons = Vec::new();
            let status = hsm.snapshot();
            // Degraded still signs (on the healthy sessions); down does not.
            if status.state == segl_pkcs11::HsmState::Down {
                reasons.push(format!(
                    "HSM down ({} of {} sessions healthy; last error: {})",
                    status.healthy,
                    status.sessions,
                    status.last_error.as_deref().unwrap_or("none")
                ));
            }
            if readiness_env.lifecycle.is_leaving() {
                reasons.push("draining".to_owned());
            }
            if readiness_env.lifecycle.replay.connecting() {
                reasons.push("connecting to the replay store (Redis)".to_owned());
            }
            let ready = readiness_env.lifecycle.cores_ready.load(Ordering::SeqCst);
            if ready < readiness_env.lifecycle.heartbeats.len() {
                reasons
                    .push(format!("{ready} of {} cores listening", readiness_env.lifecycle.heartbeats.len()));
            }
            if reasons.is_empty() {
                Ok(readiness_env.lifecycle.replay.degraded())
            } else {
                Err(reasons)
            }
        });
        let admin_handler = Rc::new(admin::AdminHandler {
            metrics: env.metrics.clone(),
            readiness,
            lifecycle: env.lifecycle.clone(),
        });
        glommio::spawn_local(accept_loop(listener, None, admin_handler, env.clone())).detach();
    }
    env.lifecycle.cores_ready.fetch_add(1, Ordering::SeqCst);
    tracing::debug!(core = env.core, "listeners ready");
    accept_loop(plain, None, handler, env).await;
    Ok(())
}

/// How busy this core and its HSM sessions have been, for admission control's capacity
/// estimate (read on the core's own thread).
fn busy_clock(ctx: &CoreContext, config: &crate::config::Config) -> admission::BusyClock {
    let stats = ctx.signer.stats_handle();
    // Inline signing runs on the core's thread (its CPU covers it): one lane.
    let lanes = config.hsm.signing_sessions_per_core();
    Box::new(move || admission::Busy {
        core_cpu: segl_pkcs11::thread_cpu_time(),
        hsm_per_session: stats.snapshot().hsm_time / lanes as u32,
    })
}

/// Proves the core is alive (for the watchdog) and publishes its metrics, once a second.
async fn heartbeat(env: Rc<CoreEnv>, admission: Rc<Admission>, ctx: Rc<CoreContext>) {
    let core = env.core.to_string();
    let mut active_key: Option<String> = None;
    let mut overloads = 0;
    loop {
        env.lifecycle.heartbeats[env.core].fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(telemetry::IN_FLIGHT, "core" => core.clone()).set(admission.in_flight() as f64);
        metrics::gauge!(telemetry::SERVICE_RATE, "core" => core.clone()).set(admission.rate());
        metrics::gauge!(telemetry::OVERLOADED, "core" => core.clone()).set(if admission.overloaded() {
            1.0
        } else {
            0.0
        });
        metrics::counter!(telemetry::OVERLOADS, "core" => core.clone()).absolute(admission.overloads());
        if let Some(floor) = admission.unqueued_latency() {
            metrics::gauge!(telemetry::UNQUEUED_SECONDS, "core" => core.clone()).set(floor.as_secs_f64());
        }
        if let Some(wait) = admission.signer_wait() {
            metrics::gauge!(telemetry::SIGNER_WAIT_SECONDS, "core" => core.clone()).set(wait.as_secs_f64());
        }
        metrics::gauge!(telemetry::OVERLOAD_LIMIT, "core" => core.clone())
            .set(admission.overload_limit().unwrap_or(0.0));
        // Once a second at most, so that an oscillating load does not flood the log.
        if admission.overloads() > overloads {
            tracing::info!(
                core = env.core,
                times = admission.overloads() - overloads,
                rate = admission.rate().round(),
                "core overloaded: refusing what would wait longer than server.queue_target_ms for the HSM"
            );
            overloads = admission.overloads();
        }
        if let Ok(cache) = ctx.signers.try_borrow() {
            let stats = cache.stats();
            metrics::counter!(telemetry::SIGNER_CACHE, "core" => core.clone(), "result" => "hit")
                .absolute(stats.hits);
            metrics::counter!(telemetry::SIGNER_CACHE, "core" => core.clone(), "result" => "miss")
                .absolute(stats.misses);
            metrics::gauge!(telemetry::SIGNER_CACHE_ENTRIES, "core" => core.clone()).set(cache.len() as f64);
        }
        if env.core == 0 {
            // Histogram samples are kept raw until upkeep folds them in; without it they grow
            // by one per request for as long as nobody scrapes /metrics.
            env.metrics.run_upkeep();
            let state = match ctx.signer.hsm_status().state() {
                segl_pkcs11::HsmState::Ready => 0.0,
                segl_pkcs11::HsmState::Degraded => 1.0,
                segl_pkcs11::HsmState::Down => 2.0,
            };
            metrics::gauge!(telemetry::HSM_STATE).set(state);
            metrics::counter!(telemetry::REPLAY_EVICTIONS).absolute(ctx.shared.replay.evicted());
            metrics::counter!(telemetry::AUDIT_SYNCS).absolute(ctx.shared.audit.syncs());
            let key = ctx.signer.credential().key_label.to_string();
            if active_key.as_deref() != Some(key.as_str()) {
                if let Some(old) = active_key.take() {
                    metrics::gauge!(telemetry::ACTIVE_KEY, "key" => old).set(0.0);
                }
                metrics::gauge!(telemetry::ACTIVE_KEY, "key" => key.clone()).set(1.0);
                active_key = Some(key);
            }
        }
        glommio::timer::sleep(Duration::from_secs(1)).await;
    }
}

/// Accepts connections until draining; each runs in its own task.
async fn accept_loop<H: http::Handler + 'static>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Rc<H>,
    env: Rc<CoreEnv>,
) {
    // Wake up now and then to notice a drain even when nobody connects.
    let mut incoming =
        accept::Incoming::new(&listener, Duration::from_millis(250), || env.lifecycle.is_draining());
    while let Some(accepted) = incoming.next().await {
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                // Running out of file descriptors must not end the core: back off and retry.
                tracing::warn!(core = env.core, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if env.connections.get() >= env.max_connections {
            tracing::warn!(
                core = env.core,
                limit = env.max_connections,
                "connection limit reached; closing a new connection"
            );
            drop(stream);
            continue;
        }
        env.connections.set(env.connections.get() + 1);
        let (handler, env, tls) = (handler.clone(), env.clone(), tls.clone());
        glommio::spawn_local(async move {
            let result = serve_stream(stream, tls, &*handler, &env).await;
            env.connections.set(env.connections.get() - 1);
            if let Err(e) = result {
                tracing::debug!("connection ended: {e}");
            }
        })
        .detach();
    }
}

async fn serve_stream<H: http::Handler>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    handler: &H,
    env: &CoreEnv,
) -> std::io::Result<()> {
    let peer = stream.peer_addr().ok();
    // Responses go out in one write each; nothing is gained by waiting to coalesce them.
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            http::serve_connection(
                stream,
                &ConnectionInfo { peer, client_certificate: None },
                &env.limits,
                handler,
            )
            .await
        }
        Some(acceptor) => {
            let handshake = glommio::timer::timeout(env.limits.idle_timeout, async {
                acceptor.accept(stream).await.map_err(glommio::GlommioError::from)
            });
            let tls_stream =
                handshake.await.map_err(|e| std::io::Error::other(format!("TLS handshake: {e}")))?;
            let info = ConnectionInfo { peer, client_certificate: tls::client_certificate(&tls_stream) };
            http::serve_connection(tls_stream, &info, &env.limits, handler).await
        }
    }
}

/// Connects the HTTP layer to admission control and the exchanges.
struct StsHandler {
    ctx: Rc<CoreContext>,
    admission: Rc<Admission>,
    env: Rc<CoreEnv>,
}

impl http::Handler for StsHandler {
    async fn handle(&self, request: Request) -> Response {
        if request.path.trim_end_matches('/') == exchange::METADATA_PATH && request.method == "GET" {
            let body = exchange::certificates_metadata(&self.ctx);
            return Response::new(200, "application/json", body);
        }
        if request.method != "POST" {
            let endpoint = Endpoint::from_path(&request.path);
            let mut r = self.refuse_error(
                endpoint,
                RequestError::MethodNotAllowed(request.method.clone()),
                &request.path,
            );
            r.headers.push(("Allow", "POST".into()));
            return r;
        }
        let Some(endpoint) = Endpoint::from_path(&request.path) else {
            return self.refuse_error(
                None,
                RequestError::UnknownEndpoint(request.path.clone()),
                &request.path,
            );
        };
        let started = Instant::now();
        let request_received = request.received;
        let policy = self.ctx.shared.policy();
        // Admission reads only raw bytes, where the exchange says to look: a refusal costs
        // microseconds, not a parse or a signature.
        let hints = endpoint.admission_hints(&request.body);
        let priority = hints
            .priority
            .or_else(|| policy.config.server.default_priority.get(endpoint.name()).copied())
            .unwrap_or(Priority::Rutine);
        let client = ClientKey::of(
            request.connection.client_certificate.as_deref(),
            hints.client,
            request.connection.peer,
        );
        let admitted = if self.env.lifecycle.is_draining() {
            Err(Shed::Draining)
        } else {
            self.admission.admit(priority, client, started)
        };
        let ticket = match admitted {
            Ok(ticket) => ticket,
            Err(shed) => return self.shed(endpoint, priority, shed, request.received),
        };
        metrics::counter!(telemetry::ADMISSION, "decision" => "admitted", "reason" => "", "priority" => priority.as_str())
            .increment(1);
        let lifecycle = &self.env.lifecycle;
        lifecycle.in_flight.fetch_add(1, Ordering::SeqCst);
        let sign_by = self.admission.sign_by(request_received);
        let outcome =
            exchange::serve(&self.ctx, &request.path, request.body, request.connection.peer, Some(sign_by))
                .await;
        lifecycle.in_flight.fetch_sub(1, Ordering::SeqCst);
        match outcome.verdict {
            // It cost no signature: the rate admission works from counts only served requests.
            exchange::Verdict::Expired => ticket.unserved(),
            exchange::Verdict::Issued => ticket.issued(),
            exchange::Verdict::Refused => drop(ticket),
        }
        metrics::counter!(telemetry::REQUESTS, "endpoint" => endpoint.name(), "outcome" => outcome.verdict.as_str())
            .increment(1);
        metrics::histogram!(telemetry::REQUEST_SECONDS, "endpoint" => endpoint.name())
            .record(request_received.elapsed().as_secs_f64());
        let mut response = soap_response(outcome);
        // A leaving node tells its clients to reconnect (through the balancer, to another node).
        response.close = lifecycle.is_leaving();
        response
    }

    fn refuse(&self, refusal: Refusal, path: Option<&str>) -> Response {
        let error = match refusal {
            Refusal::HeadTooLarge { limit } => RequestError::HeadTooLarge { limit },
            Refusal::BodyTooLarge { limit } => RequestError::BodyTooLarge { limit },
            Refusal::LengthRequired => RequestError::LengthRequired,
            Refusal::BadRequest(why) => RequestError::BadHttp(why),
        };
        self.refuse_error(path.and_then(Endpoint::from_path), error, path.unwrap_or("http"))
    }
}

impl StsHandler {
    fn refuse_error(&self, endpoint: Option<Endpoint>, error: RequestError, what: &str) -> Response {
        soap_response(exchange::refusal(&self.ctx, endpoint, error, what, jiff::Timestamp::now()))
    }

    /// The immediate refusal of admission control: 503, Retry-After, a SOAP fault.
    fn shed(&self, endpoint: Endpoint, priority: Priority, shed: Shed, received: Instant) -> Response {
        metrics::counter!(telemetry::ADMISSION, "decision" => "shed", "reason" => shed.as_str(), "priority" => priority.as_str())
            .increment(1);
        metrics::counter!(telemetry::REQUESTS, "endpoint" => endpoint.name(), "outcome" => "shed")
            .increment(1);
        let outcome = exchange::shed(&self.ctx, endpoint, shed.as_str(), jiff::Timestamp::now());
        let mut response = soap_response(outcome);
        response.close = shed == Shed::Draining;
        metrics::histogram!(telemetry::SHED_SECONDS).record(received.elapsed().as_secs_f64());
        response
    }
}

fn soap_response(outcome: exchange::Outcome) -> Response {
    let mut response = Response::new(outcome.status, "text/xml; charset=utf-8", outcome.body);
    if let Some(secs) = outcome.retry_after_secs {
        response.headers.push(("Retry-After", secs.to_string()));
    }
    response
}
