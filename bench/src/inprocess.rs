//! segl's CPU per request without the network: the whole DGWS exchange
//! (`segl::exchange::serve`) called in this process on one thread, and the same thread's
//! signatures on the same token, each timed by the thread's own CPU clock. The difference
//! from the server's figure is what HTTP and the executor cost.

use std::sync::Arc;
use std::time::Instant;

use futures_lite::future::block_on;
use segl::config::Config;
use segl::exchange::{CoreContext, Shared};
use segl::signing::{SigningError, StsKey};
use segl::trust::{TrustStore, TrustStoreError};
use segl::xml::dsig::algorithm::DigestAlgorithm;
use serde::{Deserialize, Serialize};

use crate::pool::RequestPool;
use crate::procfs;

/// The in-process measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InProcess {
    /// Requests served.
    pub requests: u64,
    /// Of those, answered with something else than 200 (must be 0).
    pub not_issued: u64,
    /// Thread CPU per request, µs (the HSM signature included).
    pub cpu_us_per_request: f64,
    /// Thread CPU per signature on the same session, µs.
    pub cpu_us_per_sign: f64,
    /// The difference: segl's own CPU per request without HTTP, µs.
    pub cpu_us_excl_hsm: f64,
    /// Wall time per request, µs.
    pub wall_us_per_request: f64,
}

/// Why the in-process measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum InProcessError {
    /// The STS key is unusable.
    #[error("STS key: {0}")]
    Key(#[from] SigningError),
    /// The trust anchors are unusable.
    #[error("trust anchors: {0}")]
    Trust(#[from] TrustStoreError),
}

/// Serves `requests` pooled requests, with `requests / 2` signatures before and after.
pub fn measure(config: &Config, pool: &RequestPool, requests: u64) -> Result<InProcess, InProcessError> {
    let key = StsKey::open(&config.hsm)?;
    let trust = TrustStore::load(&config.trust.anchors, &config.trust.intermediates)?;
    let shared =
        Arc::new(Shared { limits: config.limits.to_limits(), trust, config: Arc::new(config.clone()) });
    let ctx = CoreContext { shared, signer: key.core_signer()? };
    let path = format!("{}NewSecurityTokenService", segl::exchange::SERVICES_PREFIX);
    let credential = ctx.signer.credential();
    let digest = DigestAlgorithm::Sha1.digest(b"in-process");
    let sign = |n: u64| -> Result<u64, SigningError> {
        let cpu0 = procfs::thread_cpu_ns().unwrap_or(0);
        for _ in 0..n {
            block_on(ctx.signer.sign_digest(&credential, DigestAlgorithm::Sha1, &digest))?;
        }
        Ok(procfs::thread_cpu_ns().unwrap_or(0).saturating_sub(cpu0))
    };
    let serve = |n: u64| -> (u64, u64) {
        let mut not_issued = 0;
        let cpu0 = procfs::thread_cpu_ns().unwrap_or(0);
        for _ in 0..n {
            if block_on(segl::exchange::serve(&ctx, &path, pool.take())).status != 200 {
                not_issued += 1;
            }
        }
        (procfs::thread_cpu_ns().unwrap_or(0).saturating_sub(cpu0), not_issued)
    };
    serve(requests / 10 + 1);
    let half = (requests / 2).max(1);
    let sign_before = sign(half)?;
    let started = Instant::now();
    let (serve_ns, not_issued) = serve(requests);
    let wall = started.elapsed();
    let sign_after = sign(half)?;
    let per = |ns: u64, n: u64| ns as f64 / 1000.0 / n.max(1) as f64;
    let cpu_us_per_request = per(serve_ns, requests);
    let cpu_us_per_sign = per(sign_before + sign_after, 2 * half);
    Ok(InProcess {
        requests,
        not_issued,
        cpu_us_per_request,
        cpu_us_per_sign,
        cpu_us_excl_hsm: cpu_us_per_request - cpu_us_per_sign,
        wall_us_per_request: wall.as_secs_f64() * 1e6 / requests.max(1) as f64,
    })
}
