//! segl's CPU per request without the network: the whole DGWS exchange
//! (`segl::exchange::serve`) called in this process on one thread, and the same thread's
//! signatures on the same token, each timed by the thread's own CPU clock. The difference
//! from the server's figure is what HTTP and the executor cost.

use std::sync::Arc;
use std::time::Instant;

use futures_lite::future::block_on;
use segl::config::Config;
use segl::exchange::{CoreContext, Shared, SharedError};
use segl::signing::{SigningError, StsKey};
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
    /// Thread CPU per request, µs (the HSM signature included when the signer signs inline; a
    /// pipelined signer's thread only hands it over).
    pub cpu_us_per_request: f64,
    /// Thread CPU per signature, signing back to back, µs (inline: the signature itself;
    /// pipelined: the handover to the signing threads).
    pub cpu_us_per_sign: f64,
    /// segl's own CPU per request without HTTP, µs: the thread's CPU minus what the signer
    /// counted inside C_Sign while serving (a signature between two requests costs more than
    /// one of a back-to-back series, so `cpu_us_per_sign` would overstate segl's share).
    pub cpu_us_excl_hsm: f64,
    /// C_Sign CPU per request while serving, as the signer counted it, µs.
    #[serde(default)]
    pub hsm_cpu_us_per_request: Option<f64>,
    /// Wall time per request, µs.
    pub wall_us_per_request: f64,
}

impl InProcess {
    /// The figure in one line: with the signer on the serving core, the thread's CPU less the
    /// C_Sign CPU it counted; pipelined, segl's own CPU alone.
    pub fn describe(&self, signs_on_the_serving_core: bool) -> String {
        if signs_on_the_serving_core {
            format!(
                "{:.0} µs per request − {:.0} µs of C_Sign = {:.0} µs",
                self.cpu_us_per_request,
                self.cpu_us_per_request - self.cpu_us_excl_hsm,
                self.cpu_us_excl_hsm
            )
        } else {
            format!(
                "{:.0} µs per request (the pipelined signer signs on threads of its own)",
                self.cpu_us_excl_hsm
            )
        }
    }
}

/// Why the in-process measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum InProcessError {
    /// The STS key is unusable.
    #[error("STS key: {0}")]
    Key(#[from] SigningError),
    /// Trust anchors, CRLs, roles or the audit log are unusable.
    #[error("{0}")]
    Shared(#[from] SharedError),
    /// The signer's driver stopped before the measurement finished.
    #[error("the signer stopped")]
    SignerStopped,
}

/// Serves `requests` pooled requests, with `requests / 2` signatures before and after.
pub fn measure(config: &Config, pool: &RequestPool, requests: u64) -> Result<InProcess, InProcessError> {
    let key = StsKey::open(&config.hsm)?;
    let shared = Arc::new(Shared::from_config(Arc::new(config.clone()))?);
    let (signer, driver) = key.core_signer(0)?;
    let ctx = CoreContext::new(shared, signer);
    let path = format!("{}NewSecurityTokenService", segl::exchange::SERVICES_PREFIX);
    let credential = ctx.signer.credential();
    let digest = DigestAlgorithm::Sha1.digest(b"in-process");
    let sign = |n: u64| {
        let (ctx, credential, digest) = (&ctx, &credential, &digest);
        async move {
            let cpu0 = procfs::thread_cpu_ns().unwrap_or(0);
            for _ in 0..n {
                ctx.signer.sign_digest(credential, DigestAlgorithm::Sha1, digest, None).await?;
            }
            Ok::<u64, SigningError>(procfs::thread_cpu_ns().unwrap_or(0).saturating_sub(cpu0))
        }
    };
    let serve = |n: u64| {
        let (ctx, path) = (&ctx, &path);
        async move {
            let mut not_issued = 0;
            let cpu0 = procfs::thread_cpu_ns().unwrap_or(0);
            for _ in 0..n {
                if segl::exchange::serve(ctx, path, pool.take(), None, None).await.status != 200 {
                    not_issued += 1;
                }
            }
            (procfs::thread_cpu_ns().unwrap_or(0).saturating_sub(cpu0), not_issued)
        }
    };
    let half = (requests / 2).max(1);
    // The batched signer's driver runs beside the measurement on this one thread.
    let measured = async {
        serve(requests / 10 + 1).await;
        let sign_before = sign(half).await?;
        let started = Instant::now();
        let hsm_before = ctx.signer.stats().hsm_cpu_time;
        let (serve_ns, not_issued) = serve(requests).await;
        let hsm_ns = ctx.signer.stats().hsm_cpu_time.saturating_sub(hsm_before).as_nanos() as u64;
        let wall = started.elapsed();
        let sign_after = sign(half).await?;
        Ok::<_, InProcessError>((sign_before, sign_after, serve_ns, hsm_ns, not_issued, wall))
    };
    let (sign_before, sign_after, serve_ns, hsm_ns, not_issued, wall) =
        block_on(futures_lite::future::or(measured, async {
            driver.run().await;
            Err(InProcessError::SignerStopped)
        }))?;
    let per = |ns: u64, n: u64| ns as f64 / 1000.0 / n.max(1) as f64;
    let cpu_us_per_request = per(serve_ns, requests);
    let cpu_us_per_sign = per(sign_before + sign_after, 2 * half);
    // A module whose CPU clock reads zero (not SoftHSM) leaves the back-to-back figure.
    let hsm_cpu_us_per_request = (hsm_ns > 0).then(|| per(hsm_ns, requests));
    Ok(InProcess {
        requests,
        not_issued,
        cpu_us_per_request,
        cpu_us_per_sign,
        // A pipelined signer signs on threads of its own: this thread's CPU holds no C_Sign.
        cpu_us_excl_hsm: if config.hsm.signer.signs_on_the_serving_core() {
            cpu_us_per_request - hsm_cpu_us_per_request.unwrap_or(cpu_us_per_sign)
        } else {
            cpu_us_per_request
        },
        hsm_cpu_us_per_request,
        wall_us_per_request: wall.as_secs_f64() * 1e6 / requests.max(1) as f64,
    })
}
