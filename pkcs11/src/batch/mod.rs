//! The per-core batched signer. Requests queue their DigestInfo; the core's driver drains the
//! queue and submits what it found as one batch:
//!
//! - **inline** (in-process tokens such as SoftHSM): the driver first yields, so the cheap
//!   work of every request that is ready on the core (parsing, verifying, building the token,
//!   hashing) runs and queues its digest too; then it signs the batch on the core's own
//!   session, back to back. The executor is busy during C_Sign, which for an in-process token
//!   is CPU work the core would do anyway.
//! - **pipelined** (networked HSMs): K sessions per core, each owned by a blocking worker
//!   thread fed through one crossbeam channel; the driver hands each job of a batch to whichever
//!   worker is free, so K operations are in flight and the executor never blocks on the
//!   network. A watchdog answers the request of a call that hangs and replaces its worker
//!   (`worker.rs`).
//!
//! A request may say by when its signature must start ([`BatchSigner::sign_before`]): one still
//! queued after that is answered [`Pkcs11Error::Expired`] instead of signed, so after a stall
//! (a slow HSM, a descheduled VM) the HSM's time goes to requests that can still be answered in
//! time rather than to answers nobody waits for.
//!
//! The driver is a plain future (no executor types), run by whichever executor owns the core.
//! A failed operation on a lost session is retried once on a healthy session (pipelined: any
//! other worker; inline: the core's session after reopening it), else answered with the error.

mod session;
pub mod status;
mod worker;

pub use session::thread_cpu_time;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::{mpsc, oneshot};
use futures_lite::StreamExt;

use crate::error::FaultScope;
use crate::{digest_info, HashAlgorithm, Pkcs11Error, Token};
use session::SigningSession;
use status::{HsmStatus, SignerStats};

/// How a core's signer reaches the HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerMode {
    /// Sign on the core itself (in-process tokens).
    Inline,
    /// Sign on worker threads, several operations in flight (networked HSMs).
    Pipelined,
}

/// How one core's signer is set up.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Inline or pipelined.
    pub mode: SignerMode,
    /// Sessions for this signer: 1 for inline; K worker sessions for pipelined.
    pub sessions: usize,
    /// Most operations taken from the queue at once.
    pub max_batch: usize,
    /// Name for logs and thread names, e.g. `core 0`.
    pub name: String,
    /// Pipelined: an HSM call that has not returned after this is given up on (its request is
    /// answered with [`Pkcs11Error::Hung`] and a new session replaces the one it hangs on).
    pub call_timeout: Duration,
}

/// The call timeout when none is configured: far beyond any healthy signature, short enough
/// that a client still waits for the fault.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl BatchConfig {
    /// A signer's setup with the default call timeout.
    pub fn new(mode: SignerMode, sessions: usize, max_batch: usize, name: String) -> Self {
        Self { mode, sessions, max_batch, name, call_timeout: DEFAULT_CALL_TIMEOUT }
    }
}

/// One queued operation.
struct Job {
    key: Arc<str>,
    digest_info: Vec<u8>,
    retried: bool,
    queued_at: Instant,
    /// Not signed if it has not started by then.
    start_by: Option<Instant>,
    /// The second signature of a request whose first is made: the longest wait does not apply
    /// (refusing it would waste the first signature).
    continuing: bool,
    /// `None` once answered by a pipelined signer's watchdog (its call hung).
    reply: Option<oneshot::Sender<Result<Vec<u8>, Pkcs11Error>>>,
}

impl Job {
    fn finish(self, result: Result<Vec<u8>, Pkcs11Error>, stats: &SignerStats) {
        let Some(reply) = self.reply else { return };
        stats.done(result.is_ok());
        // The requester may have gone away (connection closed); the signature is then unused.
        let _ = reply.send(result);
    }

    /// Answers the job `Expired` instead of signing it if its start-by instant has passed, or
    /// it has waited longer than the signer's longest wait (set while the core is overloaded);
    /// otherwise hands it back to be signed. A job being retried (its first C_Sign failed on a
    /// lost session) has started, so it goes on.
    fn unless_expired(self, stats: &SignerStats) -> Option<Job> {
        let job = self.unless_late(stats)?;
        if !job.retried {
            stats.started_after(job.queued_at.elapsed());
        }
        Some(job)
    }

    /// As [`unless_expired`](Self::unless_expired), for a job that is not going to be started
    /// now either way (so its wait is no sign of how the queue drains).
    fn unless_late(self, stats: &SignerStats) -> Option<Job> {
        if self.retried {
            return Some(self);
        }
        let (now, waited) = (Instant::now(), self.queued_at.elapsed());
        let late = self.start_by.is_some_and(|start_by| now > start_by);
        let stale = !self.continuing && stats.longest_wait().is_some_and(|longest| waited > longest);
        if late || stale {
            stats.expired();
            if let Some(reply) = self.reply {
                let _ = reply.send(Err(Pkcs11Error::Expired { waited }));
            }
            return None;
        }
        Some(self)
    }
}

/// The request side of one core's signer. Cheap to share within the core.
pub struct BatchSigner {
    queue: mpsc::UnboundedSender<Job>,
    stats: Arc<SignerStats>,
}

/// The work side: run [`SignerDriver::run`] on the executor that owns the core.
pub struct SignerDriver {
    queue: mpsc::UnboundedReceiver<Job>,
    engine: Engine,
    max_batch: usize,
    stats: Arc<SignerStats>,
}

enum Engine {
    Inline(SigningSession),
    /// Jobs go to the workers one by one: a worker holds only the job it signs, which its
    /// watchdog can answer if the call hangs (a batch behind it could not be).
    Pipelined {
        work: crossbeam_channel::Sender<Job>,
        stop: Arc<AtomicBool>,
    },
}

impl BatchSigner {
    /// Opens the signer's sessions on `token` (all of them, so a token problem stops startup)
    /// and, for pipelined mode, starts its worker threads.
    pub fn open(
        token: &Token,
        config: &BatchConfig,
        status: Arc<HsmStatus>,
    ) -> Result<(BatchSigner, SignerDriver), Pkcs11Error> {
        let stats = Arc::new(SignerStats::default());
        let (tx, rx) = mpsc::unbounded();
        let engine = match config.mode {
            SignerMode::Inline => Engine::Inline(SigningSession::open(
                format!("{} session 0", config.name),
                token,
                status,
                stats.clone(),
            )?),
            SignerMode::Pipelined => {
                let workers = config.sessions.max(1);
                let (work, work_rx) = crossbeam_channel::unbounded::<Job>();
                let stop = Arc::new(AtomicBool::new(false));
                let mut sessions = Vec::with_capacity(workers);
                for n in 0..workers {
                    let name = format!("{} session {n}", config.name);
                    sessions.push(SigningSession::open(name, token, status.clone(), stats.clone())?);
                }
                let crew = worker::Crew {
                    name: config.name.clone(),
                    token: token.clone(),
                    status,
                    stats: stats.clone(),
                    work: work_rx,
                    requeue: work.clone(),
                    stop: stop.clone(),
                    call_timeout: config.call_timeout,
                    abandoned: Arc::default(),
                };
                if let Err(e) = worker::start(crew, sessions) {
                    stop.store(true, Ordering::Release);
                    return Err(e);
                }
                Engine::Pipelined { work, stop }
            }
        };
        let driver =
            SignerDriver { queue: rx, engine, max_batch: config.max_batch.max(1), stats: stats.clone() };
        Ok((BatchSigner { queue: tx, stats }, driver))
    }

    /// Signs `digest` (as a PKCS#1 DigestInfo, CKM_RSA_PKCS) with the private key labelled `key`.
    pub async fn sign(
        &self,
        key: &Arc<str>,
        alg: HashAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, Pkcs11Error> {
        self.sign_before(key, alg, digest, None).await
    }

    /// As [`sign`](Self::sign), but answers [`Pkcs11Error::Expired`] without signing if the
    /// operation is still queued at `start_by`.
    pub async fn sign_before(
        &self,
        key: &Arc<str>,
        alg: HashAlgorithm,
        digest: &[u8],
        start_by: Option<Instant>,
    ) -> Result<Vec<u8>, Pkcs11Error> {
        self.enqueue(key, alg, digest, start_by, false).await
    }

    /// As [`sign_before`](Self::sign_before), for the second signature of a request whose first
    /// is made: only `start_by` can stop it, not the longest wait of an overloaded core
    /// ([`SignerStats::set_longest_wait`]), which would waste the first signature.
    pub async fn sign_continuing(
        &self,
        key: &Arc<str>,
        alg: HashAlgorithm,
        digest: &[u8],
        start_by: Option<Instant>,
    ) -> Result<Vec<u8>, Pkcs11Error> {
        self.enqueue(key, alg, digest, start_by, true).await
    }

    async fn enqueue(
        &self,
        key: &Arc<str>,
        alg: HashAlgorithm,
        digest: &[u8],
        start_by: Option<Instant>,
        continuing: bool,
    ) -> Result<Vec<u8>, Pkcs11Error> {
        let digest_info = digest_info(alg, digest).ok_or(Pkcs11Error::DigestLength {
            alg,
            expected: alg.output_len(),
            got: digest.len(),
        })?;
        let (reply, answer) = oneshot::channel();
        self.stats.queued();
        let job = Job {
            key: key.clone(),
            digest_info,
            retried: false,
            queued_at: Instant::now(),
            start_by,
            continuing,
            reply: Some(reply),
        };
        if self.queue.unbounded_send(job).is_err() {
            self.stats.done(false);
            return Err(Pkcs11Error::SignerStopped);
        }
        // A dropped reply means the job was dropped unanswered: the driver is gone.
        answer.await.unwrap_or(Err(Pkcs11Error::SignerStopped))
    }

    /// This signer's counters.
    pub fn stats(&self) -> &Arc<SignerStats> {
        &self.stats
    }
}

/// How long the inline signer keeps the core before it lets the core's other tasks run: about
/// three SoftHSM signatures. Measured with `cargo test --release --test overload` on one core:
/// signing a batch back to back rather than yielding after every signature raised cards per
/// CPU-second from 628 to 730 (the module's code and key stay in the CPU's caches), while
/// every admission refusal was still ready within 5 ms.
const INLINE_HOLD: Duration = Duration::from_micros(2500);

impl SignerDriver {
    /// Drains the queue in batches until every [`BatchSigner`] handle is gone.
    pub async fn run(mut self) {
        while let Some(first) = self.queue.next().await {
            if matches!(self.engine, Engine::Inline(_)) {
                // Let every other ready task of the core do its cheap work (and queue its
                // digest) before the core spends its time in the HSM.
                futures_lite::future::yield_now().await;
            }
            let mut batch = Vec::with_capacity(self.max_batch.min(64));
            batch.push(first);
            while batch.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(job) => batch.push(job),
                    _ => break,
                }
            }
            self.stats.batch(batch.len());
            match &mut self.engine {
                Engine::Inline(session) => {
                    let mut held_since = std::time::Instant::now();
                    for job in batch {
                        let Some(job) = job.unless_expired(&self.stats) else { continue };
                        let mut result = session.sign(&job.key, &job.digest_info);
                        if matches!(&result, Err(e) if e.scope() == FaultScope::Session) {
                            // The session was marked lost; its first reopen is immediate.
                            self.stats.retried();
                            result = session.sign(&job.key, &job.digest_info);
                        }
                        job.finish(result, &self.stats);
                        // An inline signature holds the core for about a millisecond. Signing
                        // back to back keeps the module's code and key in the CPU's caches;
                        // every INLINE_HOLD the core answers what is cheap (admission refusals,
                        // finished responses), so a refusal never waits for a whole batch.
                        if held_since.elapsed() >= INLINE_HOLD {
                            futures_lite::future::yield_now().await;
                            held_since = std::time::Instant::now();
                        }
                    }
                }
                Engine::Pipelined { work, .. } => {
                    for job in batch {
                        if let Err(crossbeam_channel::SendError(job)) = work.send(job) {
                            job.finish(Err(Pkcs11Error::SignerStopped), &self.stats);
                        }
                    }
                }
            }
        }
    }
}

impl Drop for SignerDriver {
    fn drop(&mut self) {
        if let Engine::Pipelined { stop, .. } = &self.engine {
            stop.store(true, Ordering::Release);
        }
    }
}
