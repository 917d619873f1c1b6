//! The node-local replay store: message ids in this process's memory.
//!
//! A bounded cache shared by all cores: sharded, so cores rarely meet on the same lock. When a
//! shard is full, its oldest entry is dropped (and counted) rather than refusing service.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use jiff::Timestamp;

const SHARDS: usize = 64;

use super::Key;

#[derive(Default)]
struct Shard {
    expiry: HashMap<Key, Timestamp>,
    /// Insertion order; a record whose expiry no longer matches `expiry` is stale (the key
    /// was removed or re-recorded) and is skipped.
    order: VecDeque<(Key, Timestamp)>,
}

/// Message ids seen recently, with when they may be forgotten.
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    evicted: AtomicU64,
}

/// The message id was seen before, within the lifetime of its card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate;

impl ReplayCache {
    /// A cache for about `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            evicted: AtomicU64::new(0),
        }
    }

    /// Records `key` until `expires`; `Err(Duplicate)` when it is already recorded and not yet
    /// expired at `now`.
    pub fn insert(&self, key: Key, expires: Timestamp, now: Timestamp) -> Result<(), Duplicate> {
        let mut shard = self.lock(&key);
        if shard.expiry.get(&key).is_some_and(|&e| e > now) {
            return Err(Duplicate);
        }
        // Forget what has expired at the old end, then make room if still full.
        while let Some(&(front, recorded)) = shard.order.front() {
            let live = shard.expiry.get(&front) == Some(&recorded);
            if live && recorded > now && shard.expiry.len() < self.per_shard {
                break;
            }
            shard.order.pop_front();
            if live {
                shard.expiry.remove(&front);
                if recorded > now {
                    self.evicted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        shard.expiry.insert(key, expires);
        shard.order.push_back((key, expires));
        Ok(())
    }

    /// Forgets `key` (a request that failed on segl's side may be resent with the same id).
    pub fn remove(&self, key: &Key) {
        self.lock(key).expiry.remove(key);
    }

    /// Unexpired ids dropped because the cache was full (replays of those go undetected).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn lock(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        let shard = &self.shards[key[0] as usize % SHARDS];
        // A panic while holding the lock leaves a consistent map; keep using it.
        shard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    #[test]
    fn repeats_are_duplicates_until_they_expire() {
        let cache = ReplayCache::new(4096);
        let k = crate::exchange::replay::key(b"cert", "id-1");
        assert_eq!(cache.insert(k, t(100), t(0)), Ok(()));
        assert_eq!(cache.insert(k, t(100), t(50)), Err(Duplicate));
        assert_eq!(cache.insert(k, t(200), t(100)), Ok(()), "expired entries are forgotten");
        assert_eq!(cache.insert(k, t(200), t(150)), Err(Duplicate));
    }

    #[test]
    fn the_same_id_from_another_client_is_not_a_duplicate() {
        let cache = ReplayCache::new(4096);
        assert_eq!(cache.insert(crate::exchange::replay::key(b"a", "id"), t(100), t(0)), Ok(()));
        assert_eq!(cache.insert(crate::exchange::replay::key(b"b", "id"), t(100), t(0)), Ok(()));
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(crate::exchange::replay::key(b"ab", "c"), crate::exchange::replay::key(b"a", "bc"));
    }

    /// Keys of one shard, so that entries queue behind each other.
    fn same_shard(n: usize) -> Vec<Key> {
        let first = crate::exchange::replay::key(b"cert", "0");
        (0..)
            .map(|i| crate::exchange::replay::key(b"cert", &i.to_string()))
            .filter(|k| k[0] as usize % SHARDS == first[0] as usize % SHARDS)
            .take(n)
            .collect()
    }

    #[test]
    fn removed_ids_may_be_resent() {
        let cache = ReplayCache::new(4096);
        let [a, k, other] = same_shard(3).try_into().unwrap();
        cache.insert(a, t(150), t(0)).unwrap();
        cache.insert(k, t(100), t(0)).unwrap();
        cache.remove(&k);
        assert_eq!(cache.insert(k, t(300), t(1)), Ok(()), "a removed id may be resent");
        // The first record of k is now stale and queued behind `a`; when `a` expires, the
        // stale record must not take the re-recorded k with it.
        cache.insert(other, t(400), t(200)).unwrap();
        assert_eq!(cache.insert(k, t(300), t(250)), Err(Duplicate));
    }

    #[test]
    fn stays_bounded_and_counts_evictions() {
        let cache = ReplayCache::new(SHARDS * 8);
        let expires = t(0).saturating_add(SignedDuration::from_hours(24)).unwrap();
        for i in 0..10_000 {
            cache.insert(crate::exchange::replay::key(b"c", &i.to_string()), expires, t(0)).unwrap();
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().expiry.len()).sum();
        assert!(held <= SHARDS * 8, "{held}");
        assert_eq!(cache.evicted(), 10_000 - held as u64);
    }
}
