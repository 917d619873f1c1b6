//! The request pool: every request the generator sends is built and signed before the timed
//! phase, each with its own ID card (own id, own signature) and its own DGWS message id, so the
//! generator's own signing never limits the offered load and no cache can flatter the result.
//!
//! Signing runs on SoftHSM (~865 signatures/s per session), so the pool is built by one thread
//! per core. When a run needs more requests than the pool holds, a pooled card is sent again
//! under a fresh message id; the pool counts those and the report says how many there were.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use segl::dev::client::{CertHash, DevClient, RequestOptions};
use segl::dev::pki::Identity;
use segl::dev::DevError;
use segl::token::CardType;
use segl::xml::dsig::algorithm::SignatureAlgorithm;
use serde::Serialize;

/// The card kinds the pool cycles through: user cards on employee certificates, system cards
/// on organisation and function certificates, signed as seal (RSA-SHA1) and unsealed
/// (RSA-SHA256) sign.
pub const CARD_MIX: [(CardType, Identity, SignatureAlgorithm); 6] = [
    (CardType::User, Identity::Moces, SignatureAlgorithm::RsaSha1),
    (CardType::User, Identity::Moces, SignatureAlgorithm::RsaSha256),
    (CardType::User, Identity::Oces3Employee, SignatureAlgorithm::RsaSha256),
    (CardType::System, Identity::Voces, SignatureAlgorithm::RsaSha1),
    (CardType::System, Identity::Foces, SignatureAlgorithm::RsaSha1),
    (CardType::System, Identity::Oces3Organisation, SignatureAlgorithm::RsaSha256),
];

/// Marks the message id in a DGWS request envelope.
const MESSAGE_ID_MARK: &[u8] = b"<wsse:Security id=\"";

/// Why the pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The development client failed.
    #[error("building a request: {0}")]
    Dev(#[from] DevError),
    /// A built request has no `wsse:Security/@id` to renew on reuse.
    #[error("a built request has no wsse:Security id attribute")]
    NoMessageId,
    /// A pool of no requests was asked for.
    #[error("the request pool must hold at least one request")]
    Empty,
}

struct Pooled {
    body: Bytes,
    message_id: std::ops::Range<usize>,
}

/// Pre-built, pre-signed requests handed out once each.
pub struct RequestPool {
    requests: Vec<Pooled>,
    next: AtomicUsize,
    reused: AtomicU64,
}

/// How the pool was built.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PoolStats {
    /// Requests in the pool (each a distinct card).
    pub size: usize,
    /// Threads (one HSM session each) that built it.
    pub threads: usize,
    /// Wall time to build it.
    pub build_secs: f64,
    /// The card kinds, cycled through.
    pub card_mix: Vec<String>,
    /// Bytes of the average request body.
    pub mean_body_bytes: usize,
}

impl RequestPool {
    /// Builds `size` distinct requests on `threads` threads, each signing through its own HSM
    /// session. `on_built` is called once per request (for a progress bar).
    pub fn build(
        client: &DevClient,
        size: usize,
        threads: usize,
        on_built: &(dyn Fn() + Sync),
    ) -> Result<(RequestPool, PoolStats), PoolError> {
        if size == 0 {
            return Err(PoolError::Empty);
        }
        let threads = threads.clamp(1, size);
        let started = Instant::now();
        let parts: Vec<Result<Vec<Pooled>, PoolError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    scope.spawn(move || {
                        (t..size)
                            .step_by(threads)
                            .map(|i| {
                                let body = Bytes::from(client.request(&options(i))?);
                                on_built();
                                pooled(body)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(Err(PoolError::Empty))).collect()
        });
        let mut requests = Vec::with_capacity(size);
        for part in parts {
            requests.extend(part?);
        }
        let stats = PoolStats {
            size,
            threads,
            build_secs: started.elapsed().as_secs_f64(),
            card_mix: CARD_MIX.iter().map(|(card, id, alg)| describe(*card, *id, *alg)).collect(),
            mean_body_bytes: requests.iter().map(|r| r.body.len()).sum::<usize>() / size,
        };
        Ok((RequestPool::from_pooled(requests), stats))
    }

    /// A pool over ready-made DGWS request bodies.
    pub fn from_bodies(bodies: Vec<Bytes>) -> Result<RequestPool, PoolError> {
        if bodies.is_empty() {
            return Err(PoolError::Empty);
        }
        Ok(RequestPool::from_pooled(bodies.into_iter().map(pooled).collect::<Result<_, _>>()?))
    }

    fn from_pooled(requests: Vec<Pooled>) -> RequestPool {
        RequestPool { requests, next: AtomicUsize::new(0), reused: AtomicU64::new(0) }
    }

    /// Requests in the pool.
    pub fn len(&self) -> usize {
        self.requests.len()
    }

    /// Whether the pool is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// The next request: a card not sent before while the pool lasts, then a pooled card again
    /// under a fresh message id (counted in [`RequestPool::reused`]).
    pub fn take(&self) -> Bytes {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let p = &self.requests[i % self.requests.len()];
        if i < self.requests.len() {
            return p.body.clone();
        }
        self.reused.fetch_add(1, Ordering::Relaxed);
        let fresh = segl::exchange::dgws::envelope::new_message_id(jiff::Timestamp::now());
        let mut body = p.body.to_vec();
        if fresh.len() == p.message_id.len() {
            body[p.message_id.clone()].copy_from_slice(fresh.as_bytes());
        }
        Bytes::from(body)
    }

    /// Requests handed out so far.
    pub fn taken(&self) -> u64 {
        self.next.load(Ordering::Relaxed) as u64
    }

    /// Requests handed out that repeated a pooled card (with a fresh message id).
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// Estimated time to build `size` requests at a measured build rate.
    pub fn estimate(size: usize, rate_per_sec: f64) -> Duration {
        Duration::from_secs_f64(size as f64 / rate_per_sec.max(1.0))
    }
}

fn options(i: usize) -> RequestOptions {
    let (card, identity, algorithm) = CARD_MIX[i % CARD_MIX.len()];
    let mut opts = RequestOptions::new(card);
    opts.identity = Some(identity);
    opts.algorithm = algorithm;
    if algorithm == SignatureAlgorithm::RsaSha256 {
        opts.cert_hash = CertHash::Sha256;
    }
    opts
}

fn pooled(body: Bytes) -> Result<Pooled, PoolError> {
    let at = body
        .windows(MESSAGE_ID_MARK.len())
        .position(|w| w == MESSAGE_ID_MARK)
        .ok_or(PoolError::NoMessageId)?
        + MESSAGE_ID_MARK.len();
    let len = body[at..].iter().position(|&b| b == b'"').ok_or(PoolError::NoMessageId)?;
    Ok(Pooled { body, message_id: at..at + len })
}

fn describe(card: CardType, identity: Identity, alg: SignatureAlgorithm) -> String {
    let card = match card {
        CardType::User => "user card",
        CardType::System => "system card",
    };
    let alg = match alg {
        SignatureAlgorithm::RsaSha1 => "RSA-SHA1",
        SignatureAlgorithm::RsaSha256 => "RSA-SHA256",
    };
    format!("{card}, {}, {alg}", identity.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &str) -> Bytes {
        segl::dev::client::request_envelope(b"<card/>", id, "2024-01-01T00:00:00Z").into()
    }

    #[test]
    fn hands_out_each_request_once_then_renews_the_message_id() {
        let pool = RequestPool::from_bodies(vec![envelope("AAAAAAAAAAAAAAAAAAAAAAAAAAA="), envelope("BBBB")])
            .unwrap();
        let first = pool.take();
        assert_eq!(first, envelope("AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert_eq!(pool.take(), envelope("BBBB"));
        assert_eq!(pool.reused(), 0);
        let again = pool.take();
        assert_eq!(pool.reused(), 1);
        assert_eq!(again.len(), first.len());
        assert_ne!(again, first, "a reused card goes out under a new message id");
        let text = String::from_utf8(again.to_vec()).unwrap();
        assert!(text.contains("<card/>") && !text.contains("AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert_eq!(pool.taken(), 3);
    }

    #[test]
    fn a_body_without_message_id_is_refused() {
        assert!(matches!(
            RequestPool::from_bodies(vec![Bytes::from_static(b"<x/>")]),
            Err(PoolError::NoMessageId)
        ));
        assert!(matches!(RequestPool::from_bodies(vec![]), Err(PoolError::Empty)));
    }
}
