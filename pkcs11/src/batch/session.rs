//! One signing session with its cached key handles, and what happens when it fails: the
//! session is dropped and reopened with backoff (logging in again, finding the token again,
//! re-initializing the module if the module lost its device).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;

use super::status::{HsmStatus, SignerStats};
use crate::error::FaultScope;
use crate::module::call;
use crate::token::{rsa_signing_key, LiveSession};
use crate::{Pkcs11Error, Token};

/// First and longest wait between reopen attempts of a lost session.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Key handles kept per session; beyond this (many rotations in one run) the cache starts over.
const MAX_CACHED_KEYS: usize = 16;

/// A cached private-key handle.
#[derive(Clone, Copy)]
struct KeyHandle {
    handle: ObjectHandle,
    modulus_len: usize,
}

/// A lost session waiting to be reopened.
struct Lost {
    since: Instant,
    next_attempt: Instant,
    delay: Duration,
}

/// One signing session's place in the process's [`HsmStatus`]. A session whose call hangs is
/// replaced by a new one in the same place: the old session's seat is vacated, so nothing it
/// reports if its call ever returns is counted twice.
pub(crate) struct Seat {
    status: Arc<HsmStatus>,
    state: Mutex<SeatState>,
}

/// Where a seat's session stands; only a change between the first two is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeatState {
    Healthy,
    /// Lost, or not yet opened (a replacement): counted among the sessions, not healthy.
    Lost,
    /// Given up for good: nothing its session reports counts any more.
    Vacated,
}

impl Seat {
    /// The seat of a session just opened.
    fn occupied(status: &Arc<HsmStatus>) -> Arc<Seat> {
        status.session_opened();
        Arc::new(Seat { status: status.clone(), state: Mutex::new(SeatState::Healthy) })
    }

    /// The seat a replacement session takes over: counted among the sessions, not healthy
    /// until the session opens.
    pub(crate) fn vacant(status: &Arc<HsmStatus>) -> Arc<Seat> {
        Arc::new(Seat { status: status.clone(), state: Mutex::new(SeatState::Lost) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SeatState> {
        // Poisoning only means a holder panicked; the state is written in one step.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lost(&self, session: &str, error: &Pkcs11Error) {
        let mut state = self.state();
        if *state == SeatState::Healthy {
            *state = SeatState::Lost;
            self.status.session_lost(session, error);
        }
    }

    fn recovered(&self, session: &str, after: Duration) {
        let mut state = self.state();
        if *state == SeatState::Lost {
            *state = SeatState::Healthy;
            self.status.session_recovered(session, after);
        }
    }

    /// Whether the seat was given up (its session's call hung, and the request was answered).
    fn vacated(&self) -> bool {
        *self.state() == SeatState::Vacated
    }

    /// Gives the seat up for good (its session's call hangs): counted lost if it was healthy.
    pub(crate) fn vacate(&self, session: &str, error: &Pkcs11Error) {
        let mut state = self.state();
        if *state == SeatState::Healthy {
            self.status.session_lost(session, error);
        }
        *state = SeatState::Vacated;
    }
}

/// A signing session owned by one core (inline) or one worker thread (pipelined).
pub(crate) struct SigningSession {
    name: String,
    token: Token,
    live: Option<LiveSession>,
    /// Looked up once per key label and session; refreshed when the module says a handle is
    /// stale, and forgotten with the session.
    keys: HashMap<Arc<str>, KeyHandle>,
    lost: Option<Lost>,
    seat: Arc<Seat>,
    stats: Arc<SignerStats>,
}

impl SigningSession {
    /// Opens the session; failing here fails startup, which is what an operator wants.
    pub(crate) fn open(
        name: String,
        token: &Token,
        status: Arc<HsmStatus>,
        stats: Arc<SignerStats>,
    ) -> Result<Self, Pkcs11Error> {
        let live = token.signing_session()?;
        Ok(Self {
            name,
            token: token.clone(),
            live: Some(live),
            keys: HashMap::new(),
            lost: None,
            seat: Seat::occupied(&status),
            stats,
        })
    }

    /// A session still to be opened, in `seat`: it opens on its first reopen, which is due now.
    pub(crate) fn lost(name: String, token: &Token, seat: Arc<Seat>, stats: Arc<SignerStats>) -> Self {
        let now = Instant::now();
        Self {
            name,
            token: token.clone(),
            live: None,
            keys: HashMap::new(),
            lost: Some(Lost { since: now, next_attempt: now, delay: BACKOFF_FIRST }),
            seat,
            stats,
        }
    }

    /// The session's name, for logs.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The session's place in the HSM's status.
    pub(crate) fn seat(&self) -> &Arc<Seat> {
        &self.seat
    }

    /// Whether the session is usable now (or may be reopened now).
    pub(crate) fn is_healthy(&self) -> bool {
        self.lost.is_none()
    }

    /// How long until a lost session may try to reopen (zero when healthy or due).
    pub(crate) fn until_reopen(&self) -> Duration {
        self.lost
            .as_ref()
            .map(|l| l.next_attempt.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }

    /// Reopens a lost session when its backoff has elapsed. True when the session is usable.
    pub(crate) fn try_reopen(&mut self) -> bool {
        let Some(lost) = &mut self.lost else { return true };
        if Instant::now() < lost.next_attempt {
            return false;
        }
        let opened = self.token.recover().and_then(|()| self.token.signing_session());
        match opened {
            Ok(live) => {
                let since = lost.since;
                self.live = Some(live);
                self.lost = None;
                self.seat.recovered(&self.name, since.elapsed());
                true
            }
            Err(e) => {
                tracing::debug!(session = %self.name, "reopening HSM session failed: {e}");
                lost.next_attempt = Instant::now() + lost.delay;
                lost.delay = (lost.delay * 2).min(BACKOFF_MAX);
                false
            }
        }
    }

    /// Signs a DigestInfo with the key labelled `key`. A stale key handle is looked up again
    /// and the operation repeated once on this session; a lost session is marked for reopening
    /// and the error returned (the caller retries once on a healthy session).
    pub(crate) fn sign(&mut self, key: &Arc<str>, digest_info: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        if !self.try_reopen() {
            return Err(Pkcs11Error::Unavailable { reason: format!("{} is reopening", self.name) });
        }
        let result = match self.sign_once(key, digest_info) {
            Err(e) if e.scope() == FaultScope::KeyHandle => {
                self.keys.remove(key);
                self.sign_once(key, digest_info)
            }
            other => other,
        };
        if let Err(e) = &result {
            if e.scope() == FaultScope::Session {
                self.mark_lost(e);
            }
        }
        result
    }

    fn sign_once(&mut self, key: &Arc<str>, digest_info: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let module = self.token.module().clone();
        let _gate = module.gate();
        let session =
            self.live.as_ref().and_then(LiveSession::session).ok_or_else(|| Pkcs11Error::Unavailable {
                reason: format!("{} belongs to a finished module generation", self.name),
            })?;
        let handle = match self.keys.get(key) {
            Some(h) => *h,
            None => {
                let (handle, modulus_len) = rsa_signing_key(session, key, self.token.label())?;
                if self.keys.len() >= MAX_CACHED_KEYS {
                    self.keys.clear();
                }
                let h = KeyHandle { handle, modulus_len };
                self.keys.insert(key.clone(), h);
                h
            }
        };
        let started = Instant::now();
        let cpu_started = thread_cpu_time();
        let signature =
            session.sign(&Mechanism::RsaPkcs, handle.handle, digest_info).map_err(call("C_Sign"))?;
        // A call that returns after the watchdog gave up on it is no measure of the HSM's
        // speed (admission control reads these), and its request was counted as failed.
        if !self.seat.vacated() {
            self.stats.signed(started.elapsed(), thread_cpu_time().saturating_sub(cpu_started));
        }
        if signature.len() != handle.modulus_len {
            tracing::warn!(key = %key, got = signature.len(), expected = handle.modulus_len, "RSA signature length differs from the modulus length");
        }
        Ok(signature)
    }

    fn mark_lost(&mut self, error: &Pkcs11Error) {
        if self.lost.is_some() {
            return;
        }
        self.seat.lost(&self.name, error);
        match self.live.take() {
            // Closing a session on a lost device fails too; and after the module is
            // re-initialized its handle number may name a new session.
            Some(live) if error.is_device_lost() => live.forget(),
            other => drop(other),
        }
        self.keys.clear();
        // The first reopen is immediate: most losses (a logout, a closed session) heal at once.
        let now = Instant::now();
        self.lost = Some(Lost { since: now, next_attempt: now, delay: BACKOFF_FIRST });
    }
}

/// CPU time of the calling thread so far (zero where the clock is unavailable), the clock
/// [`crate::SignerStats`] measures C_Sign with: a software HSM spends the appliance's own
/// cores, and capacity reports subtract exactly what it spent.
pub fn thread_cpu_time() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}
