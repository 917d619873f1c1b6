//! The server: one glommio executor pinned per core, each with its own SO_REUSEPORT listener
//! and its own HSM session, serving HTTP/1.1 connections into the exchanges.

pub mod http;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::exchange::error::RequestError;
use crate::exchange::{self, CoreContext, Shared};
use crate::signing::{SigningError, StsKey};
use crate::trust::{TrustStore, TrustStoreError};
use http::{HttpLimits, Refusal, Request, Response};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The STS key is not usable.
    #[error("STS key: {0}")]
    Key(#[from] SigningError),
    /// The trust anchors could not be loaded.
    #[error("trust anchors: {0}")]
    Trust(#[from] TrustStoreError),
    /// An executor could not be started or failed.
    #[error("executor for core {core}: {reason}")]
    Executor { core: usize, reason: String },
}

/// Starts one executor per configured core and serves until they stop.
pub fn run(config: Config) -> Result<(), ServeError> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cores = config.server.cores.unwrap_or(cpus);
    // Before any thread exists: the module environment is exported here.
    let key = StsKey::open(&config.hsm)?;
    // Picks up `segl keys activate` while serving; stops when `run` returns.
    let _inventory_watch = key.watch_inventory()?;
    let trust = TrustStore::load(&config.trust.anchors, &config.trust.intermediates)?;
    let limits = HttpLimits {
        max_header_bytes: config.server.max_header_bytes,
        max_body_bytes: config.server.max_body_bytes,
        idle_timeout: Duration::from_millis(config.server.idle_timeout_ms),
    };
    let shared = Arc::new(Shared { limits: config.limits.to_limits(), trust, config: Arc::new(config) });
    let listen = shared.config.server.listen;

    let mut executors = Vec::with_capacity(cores);
    for core in 0..cores {
        // Each core gets its own session up front, so a token problem stops startup instead
        // of surfacing on the first request.
        let (signer, signer_driver) = key.core_signer(core)?;
        let shared = shared.clone();
        let limits = limits.clone();
        let placement = if core < cpus { Placement::Fixed(core) } else { Placement::Unbound };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("segl-core-{core}"))
            // Small io_uring registrations so segl also runs without CAP_IPC_LOCK.
            .io_memory(1 << 20)
            .ring_depth(256)
            .spawn(move || async move {
                glommio::spawn_local(signer_driver.run()).detach();
                let ctx = Rc::new(CoreContext { shared, signer });
                serve_core(core, ctx, limits).await
            })
            .map_err(|e| ServeError::Executor { core, reason: e.to_string() })?;
        executors.push((core, handle));
    }
    tracing::info!(%listen, cores, key = %key.credential().key_label, "segl serving");
    for (core, handle) in executors {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(ServeError::Executor { core, reason }),
            Err(_) => return Err(ServeError::Executor { core, reason: "executor thread panicked".into() }),
        }
    }
    Ok(())
}

async fn serve_core(core: usize, ctx: Rc<CoreContext>, limits: HttpLimits) -> Result<(), String> {
    let listen = ctx.shared.config.server.listen;
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::debug!(core, %listen, "listener ready");
    let limits = Rc::new(limits);
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Running out of file descriptors must not end the core: back off and retry.
                tracing::warn!(core, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let handler = StsHandler { ctx: ctx.clone() };
        let limits = limits.clone();
        glommio::spawn_local(async move {
            if let Err(e) = http::serve_connection(stream, &limits, &handler).await {
                tracing::debug!("connection ended: {e}");
            }
        })
        .detach();
    }
}

/// Connects the HTTP layer to the exchanges.
struct StsHandler {
    ctx: Rc<CoreContext>,
}

impl http::Handler for StsHandler {
    async fn handle(&self, request: Request) -> Response {
        if request.path.trim_end_matches('/') == exchange::METADATA_PATH && request.method == "GET" {
            let body = exchange::certificates_metadata(&self.ctx);
            return Response { status: 200, content_type: "application/json", body, headers: Vec::new() };
        }
        let outcome = if request.method != "POST" {
            let mut r =
                self.refuse_error(RequestError::MethodNotAllowed(request.method.clone()), &request.path);
            r.headers.push(("Allow", "POST".into()));
            return r;
        } else {
            exchange::serve(&self.ctx, &request.path, request.body).await
        };
        soap_response(outcome)
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let error = match refusal {
            Refusal::HeadTooLarge { limit } => RequestError::HeadTooLarge { limit },
            Refusal::BodyTooLarge { limit } => RequestError::BodyTooLarge { limit },
            Refusal::LengthRequired => RequestError::LengthRequired,
            Refusal::BadRequest(why) => RequestError::BadHttp(why),
        };
        self.refuse_error(error, "http")
    }
}

impl StsHandler {
    fn refuse_error(&self, error: RequestError, what: &str) -> Response {
        soap_response(exchange::refusal(&self.ctx, error, what, jiff::Timestamp::now()))
    }
}

fn soap_response(outcome: exchange::Outcome) -> Response {
    Response {
        status: outcome.status,
        content_type: "text/xml; charset=utf-8",
        body: outcome.body,
        headers: Vec::new(),
    }
}
