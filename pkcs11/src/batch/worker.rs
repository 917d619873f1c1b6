//! The pipelined signer's worker threads (one session each) and their watchdog.
//!
//! A networked HSM can leave a call hanging: a server that stops answering, or p11-kit's
//! client, which after its server died can keep threads waiting forever for replies that will
//! not come. A blocked thread cannot be interrupted, so the watchdog does what the worker
//! cannot: it answers the request of a call that has not returned within the call timeout
//! (the client gets a fault instead of a hang), gives the session's seat up and starts a new
//! worker on a new session in its place. The old thread is abandoned: if its call ever
//! returns, it exits without a word. When no worker has been free for the whole call timeout,
//! the jobs waiting for one are answered too, so nothing waits forever for a stalled HSM.
//!
//! The call timeout covers the whole call, a wait for a re-initialization in progress
//! included (up to the gate's drain limit, 2 s, and the module's C_Finalize + C_Initialize):
//! a timeout shorter than that may give up on calls that were only waiting.
//!
//! Replacements are bounded: an HSM that opens sessions but never signs would otherwise cost a
//! blocked thread (and an open session) per worker and timeout. While as many threads are
//! blocked as the signer has workers, a hung worker's seat stays empty (readiness falls with
//! it); it is filled again when one of them returns.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_channel::oneshot;

use super::session::{Seat, SigningSession};
use super::status::{HsmStatus, SignerStats};
use super::Job;
use crate::error::FaultScope;
use crate::{Pkcs11Error, Token};

/// How often an idle worker checks for shutdown.
const IDLE_POLL: Duration = Duration::from_millis(200);

type Reply = oneshot::Sender<Result<Vec<u8>, Pkcs11Error>>;

/// What a worker shows its watchdog.
#[derive(Default)]
struct PostState {
    /// Since when the worker is inside an HSM call (signing, or reopening its session).
    busy_since: Option<Instant>,
    /// The reply of the job being signed, for the watchdog to answer if the call hangs.
    reply: Option<Reply>,
    /// The watchdog gave up on this worker: it exits as soon as its call returns.
    abandoned: bool,
    /// The watchdog has said that this worker's reopen hangs (said once per reopen).
    reopen_reported: bool,
}

/// One worker's post, shared with the watchdog.
struct Post {
    state: Mutex<PostState>,
    /// The worker's session's place in the HSM's status, which the watchdog gives up for it.
    seat: Arc<Seat>,
}

impl Post {
    fn lock(&self) -> MutexGuard<'_, PostState> {
        // Poisoning only means a holder panicked; every field is written in one step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Enters an HSM call, leaving the job's reply with the watchdog meanwhile.
    fn begin(&self, reply: Option<Reply>) {
        let mut state = self.lock();
        state.busy_since = Some(Instant::now());
        state.reply = reply;
        state.reopen_reported = false;
    }

    /// Leaves the call: the reply back, unless the watchdog abandoned this worker (then `Err`:
    /// the job was answered, and the worker must stop).
    fn end(&self) -> Result<Option<Reply>, Abandoned> {
        let mut state = self.lock();
        if state.abandoned {
            return Err(Abandoned);
        }
        state.busy_since = None;
        Ok(state.reply.take())
    }
}

/// The watchdog answered this worker's job and replaced it.
struct Abandoned;

/// What a new worker needs, kept by the watchdog to start replacements.
#[derive(Clone)]
pub(super) struct Crew {
    /// `core 0`: the signer's name, for thread and session names.
    pub(super) name: String,
    pub(super) token: Token,
    pub(super) status: Arc<HsmStatus>,
    pub(super) stats: Arc<SignerStats>,
    pub(super) work: crossbeam_channel::Receiver<Job>,
    pub(super) requeue: crossbeam_channel::Sender<Job>,
    pub(super) stop: Arc<AtomicBool>,
    /// A call that has not returned after this is given up on.
    pub(super) call_timeout: Duration,
    /// Abandoned threads still blocked in their call.
    pub(super) abandoned: Arc<AtomicUsize>,
}

/// A pipelined worker: one session, one thread, jobs from the core's channel.
struct Worker {
    session: SigningSession,
    crew: Crew,
    post: Arc<Post>,
}

/// Starts the workers on `sessions` and the watchdog that keeps them answering.
pub(super) fn start(crew: Crew, sessions: Vec<SigningSession>) -> Result<(), Pkcs11Error> {
    let workers = sessions.len();
    let mut posts = Vec::with_capacity(workers);
    for (n, session) in sessions.into_iter().enumerate() {
        posts.push((n, spawn_worker(&crew, n, session)?));
    }
    let watchdog =
        Watchdog { crew: crew.clone(), posts, workers, next: workers, empty_seats: 0, told_full: false };
    std::thread::Builder::new()
        .name(format!("segl-hsm-{}-watch", crew.name.replace(' ', "")))
        .spawn(move || watchdog.run())
        .map(|_| ())
        .map_err(|e| Pkcs11Error::Unavailable { reason: format!("cannot start the HSM watchdog: {e}") })
}

fn spawn_worker(crew: &Crew, n: usize, session: SigningSession) -> Result<Arc<Post>, Pkcs11Error> {
    let post = Arc::new(Post { state: Mutex::default(), seat: session.seat().clone() });
    let worker = Worker { session, crew: crew.clone(), post: post.clone() };
    std::thread::Builder::new()
        .name(format!("segl-hsm-{}-{n}", crew.name.replace(' ', "")))
        .spawn(move || worker.run())
        .map_err(|e| Pkcs11Error::Unavailable { reason: format!("cannot start HSM worker: {e}") })?;
    Ok(post)
}

fn session_name(signer: &str, n: usize) -> String {
    format!("{signer} session {n}")
}

impl Worker {
    fn run(mut self) {
        let abandoned = self.crew.abandoned.clone();
        if self.serve().is_err() {
            // Its call returned after all; the watchdog answered the job and replaced it.
            let left = abandoned.fetch_sub(1, Ordering::AcqRel).saturating_sub(1);
            tracing::info!(session = %self.session.name(), still_blocked = left, "an abandoned HSM call returned; its thread ends");
        }
    }

    fn serve(&mut self) -> Result<(), Abandoned> {
        while !self.crew.stop.load(Ordering::Acquire) {
            // A lost session reopens here, holding no job, so that a reopen the HSM never
            // answers strands no request (and the watchdog has nothing to replace).
            if !self.session.is_healthy() && self.session.until_reopen().is_zero() {
                self.post.begin(None);
                self.session.try_reopen();
                self.post.end()?;
            }
            let wait = if self.session.is_healthy() {
                IDLE_POLL
            } else {
                self.session.until_reopen().max(Duration::from_millis(1))
            };
            match self.crew.work.recv_timeout(wait) {
                Ok(job) => self.process(job)?,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    fn process(&mut self, job: Job) -> Result<(), Abandoned> {
        let stats = &self.crew.stats;
        let Some(mut job) = job.unless_expired(stats) else { return Ok(()) };
        let mut result = if self.session.is_healthy() {
            sign_at_post(&mut self.session, &self.post, &mut job)?
        } else {
            Err(Pkcs11Error::Unavailable { reason: format!("{} is reopening", self.session.name()) })
        };
        if job.retried && matches!(&result, Err(e) if e.scope() == FaultScope::Session) {
            // The retry met a lost session too: a logout is token-wide and reaches every
            // session before any has logged in again. This session was just marked lost, and
            // its first reopen is immediate and logs in (as the inline signer relies on). The
            // reopen holds the job, so if it hangs the watchdog answers the job.
            stats.retried();
            result = sign_at_post(&mut self.session, &self.post, &mut job)?;
        }
        match result {
            Err(e) if e.scope() == FaultScope::Session && !job.retried => {
                job.retried = true;
                stats.retried();
                if let Err(crossbeam_channel::SendError(job)) = self.crew.requeue.send(job) {
                    job.finish(Err(Pkcs11Error::Unavailable { reason: e.to_string() }), stats);
                }
            }
            result => job.finish(result, stats),
        }
        Ok(())
    }
}

/// One signature, with the job's reply left at the post for the watchdog while the HSM has the
/// call.
fn sign_at_post(
    session: &mut SigningSession,
    post: &Post,
    job: &mut Job,
) -> Result<Result<Vec<u8>, Pkcs11Error>, Abandoned> {
    post.begin(job.reply.take());
    let result = session.sign(&job.key, &job.digest_info);
    job.reply = post.end()?;
    Ok(result)
}

/// Watches one signer's workers.
struct Watchdog {
    crew: Crew,
    /// (worker number, post) of the workers in service.
    posts: Vec<(usize, Arc<Post>)>,
    /// The signer's workers when complete; also the most abandoned threads it tolerates.
    workers: usize,
    /// The number the next replacement worker gets.
    next: usize,
    /// Seats left empty: a hung worker not replaced (too many threads blocked, or its
    /// replacement could not start). Filled again on a later tick when possible.
    empty_seats: usize,
    /// The operator has been told that seats stay empty (said again once one is filled).
    told_full: bool,
}

impl Watchdog {
    fn run(mut self) {
        let tick = (self.crew.call_timeout / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        while !self.crew.stop.load(Ordering::Acquire) {
            std::thread::sleep(tick);
            self.check(Instant::now());
        }
    }

    fn check(&mut self, now: Instant) {
        let timeout = self.crew.call_timeout;
        let mut all_stuck = true;
        let mut i = 0;
        while i < self.posts.len() {
            let (n, post) = &self.posts[i];
            let mut state = post.lock();
            let since = match state.busy_since {
                Some(since) if now.duration_since(since) >= timeout => since,
                _ => {
                    all_stuck = false;
                    i += 1;
                    continue;
                }
            };
            let after = now.duration_since(since);
            let name = session_name(&self.crew.name, *n);
            let Some(reply) = state.reply.take() else {
                // A reopen (holding no job) that hangs: nothing to answer, and a replacement
                // would hang the same way. Said once, so that an operator sees why the session
                // stays away.
                if !state.reopen_reported {
                    state.reopen_reported = true;
                    tracing::warn!(session = %name, after_ms = after.as_millis() as u64, "HSM session reopen has not returned");
                }
                i += 1;
                continue;
            };
            // A call with a request waiting on it hangs: answer the request, give the seat up.
            // Counted before the worker can see it is abandoned (it counts itself out).
            let blocked = self.crew.abandoned.fetch_add(1, Ordering::AcqRel) + 1;
            state.abandoned = true;
            drop(state);
            tracing::error!(
                session = %name,
                after_ms = after.as_millis() as u64,
                blocked_threads = blocked,
                "HSM call has not returned: its request is answered with an error, and a new session takes the place of this one (its thread is left blocked in the module)"
            );
            self.crew.stats.done(false);
            let _ = reply.send(Err(Pkcs11Error::Hung { after }));
            post.seat.vacate(&name, &Pkcs11Error::Hung { after });
            self.posts.swap_remove(i);
            self.empty_seats += 1;
        }
        self.fill_empty_seats();
        // Every worker in a call for the whole timeout (or none left): what waits for one
        // would wait for as long as the HSM hangs.
        if all_stuck {
            self.answer_waiting_jobs();
        }
    }

    /// Starts a worker on a new session in each empty seat, while fewer threads are blocked
    /// in the module than the signer has workers.
    fn fill_empty_seats(&mut self) {
        while self.empty_seats > 0 {
            let blocked = self.crew.abandoned.load(Ordering::Acquire);
            if blocked >= self.workers {
                if std::mem::replace(&mut self.told_full, true) {
                    return;
                }
                tracing::error!(
                    signer = %self.crew.name,
                    blocked_threads = blocked,
                    empty_seats = self.empty_seats,
                    "HSM sessions not replaced: as many threads are blocked in the module as this signer has workers (replaced when some return)"
                );
                return;
            }
            let number = self.next;
            let name = session_name(&self.crew.name, number);
            let session = SigningSession::lost(
                name.clone(),
                &self.crew.token,
                Seat::vacant(&self.crew.status),
                self.crew.stats.clone(),
            );
            match spawn_worker(&self.crew, number, session) {
                Ok(post) => {
                    self.next += 1;
                    self.empty_seats -= 1;
                    self.told_full = false;
                    self.posts.push((number, post));
                }
                Err(e) => {
                    tracing::error!(session = %name, "cannot start a replacement HSM session (tried again on the next check): {e}");
                    return;
                }
            }
        }
    }

    /// Answers the jobs queued for the workers with an error.
    fn answer_waiting_jobs(&self) {
        let mut answered = 0;
        // A job past its start-by instant is refused as any late job is; the rest fail.
        while let Ok(job) = self.crew.work.try_recv() {
            let Some(job) = job.unless_late(&self.crew.stats) else { continue };
            answered += 1;
            let reason = format!(
                "no HSM session of {} has come back from the HSM within {} ms",
                self.crew.name,
                self.crew.call_timeout.as_millis()
            );
            job.finish(Err(Pkcs11Error::Unavailable { reason }), &self.crew.stats);
        }
        if answered > 0 {
            tracing::warn!(signer = %self.crew.name, answered, "HSM stalled: queued signatures answered with an error");
        }
    }
}
