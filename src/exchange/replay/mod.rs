//! Replay detection for message ids ("pålidelig kommunikation", DGWS 1.1; the OIO exchanges'
//! `wsa:MessageID`).
//!
//! Decision: of the two strategies DGWS allows, segl takes the second — it remembers message
//! ids, not responses, and answers a repeated id with the fault `wsa:duplicatemessageid`
//! (`wst:InvalidRequest` on the OIO endpoints). Remembering whole responses would cost far more
//! memory at national scale, and a client that resends can always ask for a fresh card.
//!
//! Ids are remembered per client (the certificate that signed the card) for as long as the
//! card or token is valid. Requests without a message id (unsealed sends none) are not tracked.
//!
//! Where they are remembered is the `[replay]` setting: this node's memory ([`local`], the
//! embedded default), or a Redis server shared by every node of a cluster ([`redis`]), so that
//! a request captured on its way to one node is refused by every other. While Redis cannot
//! answer in time, `when_unavailable` decides: refuse the request (503, the safe default) or
//! check it against this node's memory only. Either way it is counted in `/metrics`, logged
//! when the state changes, and shown by `/readyz` (ready, degraded: see
//! [`ReplayHealth::degraded`]).

pub mod local;
pub mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

pub use local::{Duplicate, ReplayCache};

use crate::config::WhenUnavailable;
use crate::telemetry;

/// A remembered id: SHA-256 over the client and the message id.
pub type Key = [u8; 32];

/// The key for `message_id` sent by the holder of `client_certificate`.
pub fn key(client_certificate: &[u8], message_id: &str) -> Key {
    let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    h.update(&(client_certificate.len() as u64).to_be_bytes());
    h.update(client_certificate);
    h.update(message_id.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(h.finish().as_ref());
    key
}

/// A message id that was remembered, and where: forgetting it goes to the same store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    key: Key,
    /// The token of the request's record in Redis (None: in the node's memory only).
    redis_token: Option<u64>,
}

/// Why a message id was not remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRemembered {
    /// It was remembered before (by this node or, with Redis, by any node).
    Duplicate,
    /// Redis could not answer in time and `when_unavailable = "refuse"`.
    StoreUnavailable,
}

/// This core's replay check: the node's memory, or the cluster's Redis through this core's
/// own connection.
pub enum ReplayCheck {
    /// The node's memory only.
    Local,
    /// Redis, with the node's memory as the fallback `when_unavailable` may choose.
    Redis(redis::CoreRedis),
}

impl ReplayCheck {
    /// Remembers `key` until `expires`, unless it was remembered before.
    pub async fn remember(
        &self,
        local: &ReplayCache,
        key: Key,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<Remembered, NotRemembered> {
        let in_memory = || match local.insert(key, expires, now) {
            Ok(()) => Ok(Remembered { key, redis_token: None }),
            Err(Duplicate) => Err(NotRemembered::Duplicate),
        };
        let redis = match self {
            ReplayCheck::Local => return in_memory(),
            ReplayCheck::Redis(redis) => redis,
        };
        let lifetime = Duration::try_from(expires.duration_since(now)).unwrap_or(Duration::ZERO);
        let started = std::time::Instant::now();
        let token = redis.next_token();
        let answer = redis.set_if_new(&key, token, lifetime).await;
        metrics::histogram!(telemetry::REPLAY_STORE_SECONDS).record(started.elapsed().as_secs_f64());
        match answer {
            // The node remembers what Redis accepted too: a replay to this node is then refused
            // even while Redis cannot answer (with `when_unavailable = "local"`) or after it lost
            // its data. An id this node saw that Redis did not know is a replay all the same.
            Ok(true) => match local.insert(key, expires, now) {
                Ok(()) => Ok(Remembered { key, redis_token: Some(token) }),
                Err(Duplicate) => {
                    redis.delete(&key, token);
                    Err(NotRemembered::Duplicate)
                }
            },
            Ok(false) => Err(NotRemembered::Duplicate),
            Err(e) => {
                // The state change is logged by the core's driver (or, for a timeout on a live
                // connection, here at debug level: at peak these come by the thousand).
                tracing::debug!("replay store: {e}");
                match redis.when_unavailable() {
                    WhenUnavailable::Refuse => {
                        metrics::counter!(telemetry::REPLAY_STORE_UNAVAILABLE, "action" => "refused")
                            .increment(1);
                        Err(NotRemembered::StoreUnavailable)
                    }
                    WhenUnavailable::Local => {
                        metrics::counter!(telemetry::REPLAY_STORE_UNAVAILABLE, "action" => "local")
                            .increment(1);
                        let remembered = in_memory()?;
                        // Written to Redis when the core connects again; forgetting it takes it
                        // out of that backlog (or deletes it from Redis, by its token).
                        redis.write_later(&key, token, lifetime);
                        Ok(Remembered { redis_token: Some(token), ..remembered })
                    }
                }
            }
        }
    }

    /// Forgets a remembered id (the request failed on segl's side; the client may resend it).
    pub fn forget(&self, local: &ReplayCache, remembered: &Remembered) {
        local.remove(&remembered.key);
        if let (ReplayCheck::Redis(redis), Some(token)) = (self, remembered.redis_token) {
            redis.delete(&remembered.key, token);
        }
    }
}

/// The node's view of its replay store, for `/readyz`, `/metrics` and the log: which cores have
/// no connection to Redis now, and why.
pub struct ReplayHealth {
    /// Per core: its connection's state.
    cores: Mutex<Vec<CoreState>>,
    /// What a request gets meanwhile.
    when_unavailable: WhenUnavailable,
    /// Whether the last line logged said Redis cannot be reached (one line per change).
    warned: AtomicBool,
}

/// A core's connection to the replay store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CoreState {
    /// Connected (or a local store).
    Up,
    /// Not yet connected since start: the node is not ready.
    Connecting,
    /// No connection, for this reason.
    Down(String),
}

impl ReplayHealth {
    /// Health for `cores` cores: connecting to Redis (`redis`), or on the node's memory.
    pub fn new(cores: usize, when_unavailable: WhenUnavailable, redis: bool) -> Self {
        let state = if redis { CoreState::Connecting } else { CoreState::Up };
        ReplayHealth {
            cores: Mutex::new(vec![state; cores]),
            when_unavailable,
            warned: AtomicBool::new(false),
        }
    }

    /// `core` connected to `address`.
    pub fn connected(&self, core: usize, address: &str) {
        metrics::gauge!(telemetry::REPLAY_STORE_UP, "core" => core.to_string()).set(1.0);
        let down = self.set(core, CoreState::Up);
        if down == 0 && self.warned.swap(false, Ordering::Relaxed) {
            tracing::info!(core, address, "replay store: Redis answers on every core");
        }
    }

    /// `core` has no connection, for `reason`.
    pub fn unavailable(&self, core: usize, reason: &str) {
        metrics::gauge!(telemetry::REPLAY_STORE_UP, "core" => core.to_string()).set(0.0);
        self.set(core, CoreState::Down(reason.to_owned()));
        if !self.warned.swap(true, Ordering::Relaxed) {
            let meanwhile = self.meanwhile();
            tracing::warn!(core, "replay store: Redis cannot be reached ({reason}); {meanwhile}");
        }
    }

    /// Sets `core`'s state; how many cores are not up afterwards.
    fn set(&self, core: usize, state: CoreState) -> usize {
        let mut cores = self.cores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = cores.get_mut(core) {
            *slot = state;
        }
        cores.iter().filter(|c| **c != CoreState::Up).count()
    }

    /// Whether a core has not tried Redis yet since start (the node is not ready until each
    /// has, so that a balancer sends it nothing it would refuse for want of a connection).
    pub fn connecting(&self) -> bool {
        self.cores.lock().unwrap_or_else(|p| p.into_inner()).contains(&CoreState::Connecting)
    }

    /// What `/readyz` adds while a core has no connection (None: every core is connected).
    ///
    /// Decision: the node stays ready (200, "ready, degraded: …") under either policy. The
    /// store is shared, so when Redis is down it is down for every node; taking them all out
    /// of the balancer's pool would turn segl's precise fault (503, Retry-After) into
    /// connections the balancer resets. A node cut off from Redis alone shows here, in
    /// `segl_replay_store_up` and in the log; under `refuse` the balancer keeps sending it
    /// requests it refuses at once (and `leastconn` favours a node that answers fast), so
    /// alert on `segl_replay_store_up`.
    pub fn degraded(&self) -> Option<String> {
        let cores = self.cores.lock().unwrap_or_else(|p| p.into_inner());
        let down: Vec<String> = cores
            .iter()
            .enumerate()
            .filter_map(|(core, c)| match c {
                CoreState::Down(r) => Some(format!("core {core}: {r}")),
                _ => None,
            })
            .collect();
        if down.is_empty() {
            return None;
        }
        Some(format!("replay store (Redis) unavailable ({}); {}", down.join("; "), self.meanwhile()))
    }

    /// What requests get while Redis cannot answer.
    fn meanwhile(&self) -> &'static str {
        match self.when_unavailable {
            WhenUnavailable::Refuse => "requests are refused (503) until it answers",
            WhenUnavailable::Local => "message ids are checked on this node only until it answers",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_degraded_note_follows_the_cores_and_the_policy() {
        let refuse = ReplayHealth::new(2, WhenUnavailable::Refuse, true);
        assert!(refuse.connecting(), "not ready before the first attempt");
        refuse.connected(0, "10.0.0.5:6379");
        refuse.connected(1, "10.0.0.5:6379");
        assert!(!refuse.connecting());
        assert_eq!(refuse.degraded(), None);
        refuse.unavailable(1, "10.0.0.5:6379: connection refused");
        let why = refuse.degraded().unwrap();
        assert!(why.contains("core 1: 10.0.0.5:6379: connection refused"), "{why}");
        assert!(why.contains("refused (503)"), "{why}");
        refuse.connected(1, "10.0.0.5:6379");
        assert_eq!(refuse.degraded(), None);

        let fallback = ReplayHealth::new(2, WhenUnavailable::Local, true);
        fallback.unavailable(0, "timeout");
        let note = fallback.degraded().unwrap();
        assert!(note.contains("this node only"), "{note}");
    }

    #[test]
    fn the_local_check_refuses_a_repeat_and_forgets_on_request() {
        let cache = ReplayCache::new(4096);
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let expires = Timestamp::from_second(1_700_000_300).unwrap();
        let check = ReplayCheck::Local;
        let k = key(b"cert", "m-1");
        let first = futures_lite::future::block_on(check.remember(&cache, k, expires, now)).unwrap();
        assert_eq!(
            futures_lite::future::block_on(check.remember(&cache, k, expires, now)),
            Err(NotRemembered::Duplicate)
        );
        check.forget(&cache, &first);
        assert!(futures_lite::future::block_on(check.remember(&cache, k, expires, now)).is_ok());
    }
}
