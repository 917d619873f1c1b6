//! What the signers report: the HSM's health, shared by every signer of the process (for
//! readiness), and per-signer metrics (queue depth, batch sizes, HSM latency, errors). Plain
//! atomics, written on the signing path and read by whoever reports them.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The HSM as the signers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HsmState {
    /// Every signing session is healthy.
    Ready,
    /// Some sessions are lost and being reopened; signing continues on the others.
    Degraded,
    /// No session can sign.
    Down,
}

impl HsmState {
    /// The word for logs and readiness reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// Health of all signing sessions of the process.
#[derive(Debug, Default)]
pub struct HsmStatus {
    sessions: AtomicUsize,
    healthy: AtomicUsize,
    state: AtomicU8,
    lost: AtomicU64,
    recovered: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A point-in-time copy of [`HsmStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmStatusSnapshot {
    /// Derived state.
    pub state: HsmState,
    /// Signing sessions configured.
    pub sessions: usize,
    /// Of those, how many are healthy now.
    pub healthy: usize,
    /// Sessions lost since start.
    pub lost: u64,
    /// Sessions reopened since start.
    pub recovered: u64,
    /// The last failure that cost a session.
    pub last_error: Option<String>,
}

impl HsmStatus {
    /// The current state.
    pub fn state(&self) -> HsmState {
        match self.state.load(Relaxed) {
            0 => HsmState::Ready,
            1 => HsmState::Degraded,
            _ => HsmState::Down,
        }
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> HsmStatusSnapshot {
        HsmStatusSnapshot {
            state: self.state(),
            sessions: self.sessions.load(Relaxed),
            healthy: self.healthy.load(Relaxed),
            lost: self.lost.load(Relaxed),
            recovered: self.recovered.load(Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }

    pub(crate) fn session_opened(&self) {
        self.sessions.fetch_add(1, Relaxed);
        self.healthy.fetch_add(1, Relaxed);
        self.update();
    }

    pub(crate) fn session_lost(&self, session: &str, error: &crate::Pkcs11Error) {
        self.healthy.fetch_sub(1, Relaxed);
        self.lost.fetch_add(1, Relaxed);
        *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(format!("{session}: {error}"));
        tracing::warn!(session, "HSM session lost, will reopen: {error}");
        self.update();
    }

    pub(crate) fn session_recovered(&self, session: &str, after: Duration) {
        self.healthy.fetch_add(1, Relaxed);
        self.recovered.fetch_add(1, Relaxed);
        tracing::info!(session, down_ms = after.as_millis() as u64, "HSM session reopened");
        self.update();
    }

    fn update(&self) {
        let (total, healthy) = (self.sessions.load(Relaxed), self.healthy.load(Relaxed));
        let state = match healthy {
            h if h >= total => HsmState::Ready,
            0 => HsmState::Down,
            _ => HsmState::Degraded,
        };
        let before = self.state.swap(state as u8, Relaxed);
        if before != state as u8 {
            match state {
                HsmState::Ready => tracing::info!(sessions = total, "HSM ready"),
                _ => tracing::warn!(healthy, sessions = total, "HSM {}", state.as_str()),
            }
        }
    }
}

/// One signer's counters.
#[derive(Debug, Default)]
pub struct SignerStats {
    queue_depth: AtomicI64,
    batches: AtomicU64,
    batched_ops: AtomicU64,
    max_batch: AtomicU64,
    ops: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    expired: AtomicU64,
    hsm_nanos: AtomicU64,
    hsm_nanos_max: AtomicU64,
    hsm_cpu_nanos: AtomicU64,
    /// `u64::MAX` less the shortest wait (ns) of a job started since it was last taken; 0: none.
    shortest_wait_complement: AtomicU64,
    /// A job that has waited longer than this (ns) is not started; 0: no such limit.
    longest_wait_nanos: AtomicU64,
}

/// A point-in-time copy of [`SignerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignerStatsSnapshot {
    /// Operations queued or in flight now.
    pub queue_depth: i64,
    /// Batches drained.
    pub batches: u64,
    /// Operations in those batches (mean batch size = batched_ops / batches).
    pub batched_ops: u64,
    /// Largest batch.
    pub max_batch: u64,
    /// Signatures made.
    pub ops: u64,
    /// Operations answered with an error.
    pub errors: u64,
    /// Operations retried on another session.
    pub retries: u64,
    /// Operations not started because their deadline passed in the queue (not errors: the
    /// HSM was never asked).
    pub expired: u64,
    /// Total time inside C_Sign.
    pub hsm_time: Duration,
    /// Longest C_Sign.
    pub hsm_time_max: Duration,
    /// CPU time of the signing thread inside C_SignInit + C_Sign: what a software module such
    /// as SoftHSM costs the appliance's own cores (a network HSM costs almost none).
    pub hsm_cpu_time: Duration,
}

impl SignerStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> SignerStatsSnapshot {
        SignerStatsSnapshot {
            queue_depth: self.queue_depth.load(Relaxed),
            batches: self.batches.load(Relaxed),
            batched_ops: self.batched_ops.load(Relaxed),
            max_batch: self.max_batch.load(Relaxed),
            ops: self.ops.load(Relaxed),
            errors: self.errors.load(Relaxed),
            retries: self.retries.load(Relaxed),
            expired: self.expired.load(Relaxed),
            hsm_time: Duration::from_nanos(self.hsm_nanos.load(Relaxed)),
            hsm_time_max: Duration::from_nanos(self.hsm_nanos_max.load(Relaxed)),
            hsm_cpu_time: Duration::from_nanos(self.hsm_cpu_nanos.load(Relaxed)),
        }
    }

    pub(crate) fn queued(&self) {
        self.queue_depth.fetch_add(1, Relaxed);
    }

    pub(crate) fn done(&self, ok: bool) {
        self.queue_depth.fetch_sub(1, Relaxed);
        if !ok {
            self.errors.fetch_add(1, Relaxed);
        }
    }

    /// A job started `waited` after it was queued.
    pub(crate) fn started_after(&self, waited: Duration) {
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX - 1);
        self.shortest_wait_complement.fetch_max(u64::MAX - nanos, Relaxed);
    }

    /// The shortest wait of a job in the queue since the last call: CoDel's signal of a
    /// standing queue (a queue that drains now and then lets some job through at once).
    pub fn take_shortest_wait(&self) -> Option<Duration> {
        match self.shortest_wait_complement.swap(0, Relaxed) {
            0 => None,
            complement => Some(Duration::from_nanos(u64::MAX - complement)),
        }
    }

    /// Jobs that have waited longer than `limit` in the queue are answered `Expired` instead of
    /// signed (`None`: only their own start-by instant counts). An overloaded core sets it, so
    /// that a queue left standing from before it noticed clears as refusals, not late answers.
    pub fn set_longest_wait(&self, limit: Option<Duration>) {
        let nanos = limit.map_or(0, |l| u64::try_from(l.as_nanos()).unwrap_or(u64::MAX).max(1));
        self.longest_wait_nanos.store(nanos, Relaxed);
    }

    /// The limit [`SignerStats::set_longest_wait`] set.
    pub(crate) fn longest_wait(&self) -> Option<Duration> {
        match self.longest_wait_nanos.load(Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    pub(crate) fn expired(&self) {
        self.queue_depth.fetch_sub(1, Relaxed);
        self.expired.fetch_add(1, Relaxed);
    }

    pub(crate) fn batch(&self, size: usize) {
        self.batches.fetch_add(1, Relaxed);
        self.batched_ops.fetch_add(size as u64, Relaxed);
        self.max_batch.fetch_max(size as u64, Relaxed);
    }

    pub(crate) fn signed(&self, took: Duration, cpu: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.ops.fetch_add(1, Relaxed);
        self.hsm_nanos.fetch_add(nanos, Relaxed);
        self.hsm_nanos_max.fetch_max(nanos, Relaxed);
        self.hsm_cpu_nanos.fetch_add(u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shortest_wait_is_taken_once_per_interval() {
        let stats = SignerStats::default();
        assert_eq!(stats.take_shortest_wait(), None);
        stats.started_after(Duration::from_millis(7));
        stats.started_after(Duration::from_micros(300));
        stats.started_after(Duration::from_millis(2));
        assert_eq!(stats.take_shortest_wait(), Some(Duration::from_micros(300)));
        assert_eq!(stats.take_shortest_wait(), None, "taken: the next interval starts empty");
        stats.started_after(Duration::ZERO);
        assert_eq!(stats.take_shortest_wait(), Some(Duration::ZERO));
    }

    #[test]
    fn the_longest_wait_is_set_and_cleared() {
        let stats = SignerStats::default();
        assert_eq!(stats.longest_wait(), None);
        stats.set_longest_wait(Some(Duration::from_millis(20)));
        assert_eq!(stats.longest_wait(), Some(Duration::from_millis(20)));
        stats.set_longest_wait(Some(Duration::ZERO));
        assert_eq!(stats.longest_wait(), Some(Duration::from_nanos(1)), "zero is a limit, not none");
        stats.set_longest_wait(None);
        assert_eq!(stats.longest_wait(), None);
    }
}
