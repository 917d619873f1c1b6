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

/// Marks the MessageID in a Sosi2OIOSaml request (the same id is the RST's Context).
const WSA_MESSAGE_ID_MARK: &[u8] = b"<wsa:MessageID>";

/// What a pooled request is: the pool keeps the two families apart, and the mix says which
/// one each endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum RequestKind {
    /// A DGWS request: a self-signed ID card (NewSecurityTokenService, SecurityTokenService).
    Dgws,
    /// A Sosi2OIOSaml request: an STS-signed user card in ActAs for an audience.
    Sosi2OioSaml,
}

impl RequestKind {
    /// The kind of requests a path takes: Sosi2OIOSaml's, else DGWS.
    pub fn of_path(path: &str) -> RequestKind {
        if path.trim_end_matches('/').ends_with("/Sosi2OIOSaml") {
            RequestKind::Sosi2OioSaml
        } else {
            RequestKind::Dgws
        }
    }
}

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
    /// A built Sosi2OIOSaml request has no `wsa:MessageID` to renew on reuse.
    #[error("a built Sosi2OIOSaml request has no wsa:MessageID")]
    NoWsaMessageId,
    /// The server under test did not issue the STS cards the Sosi2OIOSaml requests present.
    #[error("STS cards for the Sosi2OIOSaml requests: {0}")]
    Cards(String),
    /// The mix names an endpoint whose kind of request the pool does not hold.
    #[error("the request pool holds no {0:?} requests for the endpoint mix")]
    Missing(RequestKind),
}

struct Pooled {
    body: Bytes,
    /// Where the message id is (DGWS: once; Sosi2OIOSaml: the MessageID and the Context).
    message_id: Vec<std::ops::Range<usize>>,
}

/// One kind's requests.
struct Part {
    requests: Vec<Pooled>,
    next: AtomicUsize,
}

/// Pre-built, pre-signed requests handed out once each: DGWS requests and, for a mix with
/// Sosi2OIOSaml, Sosi2OIOSaml requests.
pub struct RequestPool {
    dgws: Option<Part>,
    oio: Option<Part>,
    reused: AtomicU64,
}

/// How the Sosi2OIOSaml part of the pool was built.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct OioPoolStats {
    /// Requests (each with its own MessageID).
    pub size: usize,
    /// Distinct STS-signed cards they present (each card many times, under distinct MessageIDs).
    pub cards: usize,
    /// Where the cards came from.
    pub card_source: String,
    /// The audience (AppliesTo).
    pub audience: String,
    /// Bytes of the average request body.
    pub mean_body_bytes: usize,
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
    /// The Sosi2OIOSaml requests, when the mix has that endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sosi2oiosaml: Option<OioPoolStats>,
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
            sosi2oiosaml: None,
        };
        Ok((RequestPool::from_parts(Some(requests), None), stats))
    }

    /// A pool over ready-made DGWS request bodies.
    pub fn from_bodies(bodies: Vec<Bytes>) -> Result<RequestPool, PoolError> {
        if bodies.is_empty() {
            return Err(PoolError::Empty);
        }
        let requests = bodies.into_iter().map(pooled).collect::<Result<_, _>>()?;
        Ok(RequestPool::from_parts(Some(requests), None))
    }

    /// A pool without DGWS requests (for a mix of Sosi2OIOSaml alone), and its statistics.
    pub fn without_dgws() -> (RequestPool, PoolStats) {
        let stats = PoolStats {
            size: 0,
            threads: 0,
            build_secs: 0.0,
            card_mix: vec![],
            mean_body_bytes: 0,
            sosi2oiosaml: None,
        };
        (RequestPool::from_parts(None, None), stats)
    }

    /// Adds `size` Sosi2OIOSaml requests for `audience`, each with its own MessageID, presenting
    /// the STS-signed `cards` in turn (in ActAs, as unsealed sends them).
    pub fn add_sosi2oiosaml(
        &mut self,
        cards: &[Vec<u8>],
        audience: &str,
        size: usize,
        card_source: &str,
    ) -> Result<OioPoolStats, PoolError> {
        if size == 0 || cards.is_empty() {
            return Err(PoolError::Empty);
        }
        let requests = (0..size)
            .map(|i| {
                let body = segl::dev::oio::sosi2oiosaml_request(
                    &cards[i % cards.len()],
                    audience,
                    segl::dev::oio::CardPlacement::ActAs,
                );
                pooled_oio(Bytes::from(body))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stats = OioPoolStats {
            size,
            cards: cards.len(),
            card_source: card_source.to_owned(),
            audience: audience.to_owned(),
            mean_body_bytes: requests.iter().map(|r| r.body.len()).sum::<usize>() / size,
        };
        self.oio = Some(Part { requests, next: AtomicUsize::new(0) });
        Ok(stats)
    }

    fn from_parts(dgws: Option<Vec<Pooled>>, oio: Option<Vec<Pooled>>) -> RequestPool {
        let part = |requests| Part { requests, next: AtomicUsize::new(0) };
        RequestPool { dgws: dgws.map(part), oio: oio.map(part), reused: AtomicU64::new(0) }
    }

    fn part(&self, kind: RequestKind) -> Option<&Part> {
        match kind {
            RequestKind::Dgws => self.dgws.as_ref(),
            RequestKind::Sosi2OioSaml => self.oio.as_ref(),
        }
    }

    /// Whether the pool holds requests of `kind`.
    pub fn holds(&self, kind: RequestKind) -> bool {
        self.part(kind).is_some()
    }

    /// DGWS requests in the pool.
    pub fn len(&self) -> usize {
        self.dgws.as_ref().map_or(0, |p| p.requests.len())
    }

    /// Whether the pool has no DGWS requests.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next DGWS request (see [`RequestPool::take_for`]).
    pub fn take(&self) -> Bytes {
        self.take_for(RequestKind::Dgws)
    }

    /// The next request of `kind`: one not sent before while the pool lasts, then a pooled one
    /// again under a fresh message id (counted in [`RequestPool::reused`]). An empty body
    /// when the pool holds no such requests (check with [`RequestPool::holds`] first).
    pub fn take_for(&self, kind: RequestKind) -> Bytes {
        let Some(part) = self.part(kind) else { return Bytes::new() };
        let i = part.next.fetch_add(1, Ordering::Relaxed);
        let p = &part.requests[i % part.requests.len()];
        if i < part.requests.len() {
            return p.body.clone();
        }
        self.reused.fetch_add(1, Ordering::Relaxed);
        let fresh = match kind {
            RequestKind::Dgws => segl::exchange::dgws::envelope::new_message_id(jiff::Timestamp::now()),
            RequestKind::Sosi2OioSaml => segl::exchange::oio::envelope::new_uuid_urn(),
        };
        let mut body = p.body.to_vec();
        for range in &p.message_id {
            if fresh.len() == range.len() {
                body[range.clone()].copy_from_slice(fresh.as_bytes());
            }
        }
        Bytes::from(body)
    }

    /// Requests handed out so far.
    pub fn taken(&self) -> u64 {
        [&self.dgws, &self.oio]
            .iter()
            .filter_map(|p| p.as_ref())
            .map(|p| p.next.load(Ordering::Relaxed) as u64)
            .sum()
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
    Ok(Pooled { body, message_id: std::iter::once(at..at + len).collect() })
}

/// A Sosi2OIOSaml request with the places of its MessageID: the header's and every other
/// occurrence of the same id (the RST's Context).
fn pooled_oio(body: Bytes) -> Result<Pooled, PoolError> {
    let at = body
        .windows(WSA_MESSAGE_ID_MARK.len())
        .position(|w| w == WSA_MESSAGE_ID_MARK)
        .ok_or(PoolError::NoWsaMessageId)?
        + WSA_MESSAGE_ID_MARK.len();
    let len = body[at..].iter().position(|&b| b == b'<').ok_or(PoolError::NoWsaMessageId)?;
    let id = &body[at..at + len];
    if id.is_empty() {
        return Err(PoolError::NoWsaMessageId);
    }
    let message_id =
        body.windows(len).enumerate().filter(|(_, w)| *w == id).map(|(i, _)| i..i + len).collect();
    Ok(Pooled { body, message_id })
}

/// STS cards the Sosi2OIOSaml requests present in turn (each many times, under distinct
/// MessageIDs, as a user exchanges the card of a session for several services).
pub const STS_CARDS: usize = 64;

/// Where the Sosi2OIOSaml requests' cards come from, for the report.
pub const STS_CARD_SOURCE: &str = "the server under test's NewSecurityTokenService, before the run (user cards of the development client: MOCES RSA-SHA1, MOCES RSA-SHA256, OCES3 employee RSA-SHA256)";

/// The audience Sosi2OIOSaml requests name: the configuration's first, else the development one.
pub fn audience(config: &segl::config::Config) -> String {
    config
        .sosi2oiosaml
        .audience
        .first()
        .map_or_else(|| segl::dev::audience::DEV_AUDIENCE.to_owned(), |a| a.audience.clone())
}

/// The pool a mix needs, `size` requests in all: DGWS requests for its DGWS share (built as
/// [`RequestPool::build`] does) and, for its Sosi2OIOSaml share, requests presenting
/// [`STS_CARDS`] cards fetched from `target` (which must be up). A mix of DGWS endpoints alone
/// gets exactly what [`RequestPool::build`] makes.
#[allow(clippy::too_many_arguments)]
pub fn build_for_mix(
    client: &DevClient,
    mix: &crate::engine::Mix,
    size: usize,
    threads: usize,
    on_built: &(dyn Fn() + Sync),
    rt: &tokio::runtime::Runtime,
    target: &crate::client::Target,
    audience: &str,
) -> Result<(RequestPool, PoolStats), PoolError> {
    let oio_share = mix.share(RequestKind::Sosi2OioSaml);
    let oio_size = if oio_share > 0.0 { ((size as f64 * oio_share).ceil() as usize).max(1) } else { 0 };
    let dgws_size = if mix.share(RequestKind::Dgws) > 0.0 { size.saturating_sub(oio_size).max(1) } else { 0 };
    let (mut pool, mut stats) = if dgws_size > 0 {
        RequestPool::build(client, dgws_size, threads, on_built)?
    } else {
        RequestPool::without_dgws()
    };
    if oio_size > 0 {
        let started = Instant::now();
        let cards = rt.block_on(sts_cards(target, client, STS_CARDS.min(oio_size)))?;
        stats.sosi2oiosaml = Some(pool.add_sosi2oiosaml(&cards, audience, oio_size, STS_CARD_SOURCE)?);
        stats.build_secs += started.elapsed().as_secs_f64();
        for _ in 0..oio_size {
            on_built();
        }
    }
    Ok((pool, stats))
}

/// User cards issued by the server under test: `count` requests of the development client's
/// user cards (the user-card kinds of [`CARD_MIX`] in turn) to its NewSecurityTokenService, one
/// after the other on one connection; the STS-signed card of each answer, canonical.
pub async fn sts_cards(
    target: &crate::client::Target,
    client: &DevClient,
    count: usize,
) -> Result<Vec<Vec<u8>>, PoolError> {
    let path = format!("{}NewSecurityTokenService", segl::exchange::SERVICES_PREFIX);
    let user_kinds: Vec<usize> = (0..CARD_MIX.len()).filter(|&i| CARD_MIX[i].0 == CardType::User).collect();
    let mut conn: Option<crate::client::Connection> = None;
    let mut cards = Vec::with_capacity(count);
    for i in 0..count {
        let body = client.request(&options(user_kinds[i % user_kinds.len()]))?;
        let head = target.head(&path, body.len(), false);
        if conn.is_none() {
            conn = Some(target.connect().await.map_err(|e| PoolError::Cards(e.to_string()))?);
        }
        let c = conn.as_mut().ok_or(PoolError::Empty)?;
        let exchange = tokio::time::timeout(Duration::from_secs(10), c.exchange(head.as_bytes(), &body));
        let reply = exchange
            .await
            .map_err(|_| PoolError::Cards(format!("no answer from {path} within 10 s")))?
            .map_err(|e| PoolError::Cards(e.to_string()))?;
        if reply.status != 200 {
            return Err(PoolError::Cards(format!("{path} answered HTTP {}", reply.status)));
        }
        cards.push(segl::dev::oio::issued_card(c.body())?);
        if !reply.keep_alive {
            conn = None;
        }
    }
    Ok(cards)
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
    fn sosi2oiosaml_requests_are_handed_out_apart_and_renewed_in_both_places() {
        let (mut pool, _) = RequestPool::without_dgws();
        assert!(!pool.holds(RequestKind::Sosi2OioSaml) && pool.take().is_empty());
        let card = b"<saml:Assertion ID=\"IDCard\"/>".to_vec();
        let stats = pool.add_sosi2oiosaml(&[card], "https://sp.example/", 2, "test").unwrap();
        assert_eq!((stats.size, stats.cards), (2, 1));
        let id = |b: &Bytes| {
            let t = String::from_utf8(b.to_vec()).unwrap();
            let at = t.find("<wsa:MessageID>").unwrap() + 15;
            let id = t[at..at + t[at..].find('<').unwrap()].to_owned();
            assert!(t.contains(&format!("Context=\"{id}\"")), "{t}");
            id
        };
        let (a, b) = (pool.take_for(RequestKind::Sosi2OioSaml), pool.take_for(RequestKind::Sosi2OioSaml));
        assert_ne!(id(&a), id(&b));
        assert_eq!(pool.reused(), 0);
        let again = pool.take_for(RequestKind::Sosi2OioSaml);
        assert_eq!(pool.reused(), 1);
        assert!(![id(&a), id(&b)].contains(&id(&again)), "a reused card goes out under a new MessageID");
        assert_eq!(pool.taken(), 3);
        assert_eq!(RequestKind::of_path("/sts/services/Sosi2OIOSaml"), RequestKind::Sosi2OioSaml);
        assert_eq!(RequestKind::of_path("/sts/services/SecurityTokenService"), RequestKind::Dgws);
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
