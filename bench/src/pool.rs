//! The request pool: every request the generator sends is built and signed before the timed
//! phase, each with its own ID card (own id, own signature) and its own DGWS message id, so the
//! generator's own signing never limits the offered load and no cache can flatter the result.
//!
//! Signing runs on SoftHSM (~865 signatures/s per session), so the pool is built by one thread
//! per core. When a run needs more requests than the pool holds, a pooled card is sent again
//! under a fresh message id; the pool counts those and the report says how many there were.
//!
//! BST2SOSI, OIOSaml2Sosi and the citizen exchanges' requests (Bst2Idws, JWT2Idws,
//! JWT2OIOSaml) are header-signed by the client, and the signature covers their
//! `wsa:MessageID` and `wsu:Timestamp`: they cannot be renewed, so the pool holds one per send,
//! and one sent again is a replay segl refuses (counted in [`RequestPool::replayed`]). segl
//! also refuses them once their Timestamp is older than its `clock_skew_secs` (300 s by
//! default), so they are built just before the run.

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

/// What a pooled request is: the pool keeps the families apart, and the mix says which one
/// each endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum RequestKind {
    /// A DGWS request: a self-signed ID card (NewSecurityTokenService, SecurityTokenService).
    Dgws,
    /// A Sosi2OIOSaml request: an STS-signed user card in ActAs for an audience.
    Sosi2OioSaml,
    /// A BST2SOSI request: an IdP's bootstrap token in ActAs, header-signed by its holder.
    Bst2Sosi,
    /// An OIOSaml2Sosi request: a NemLog-in assertion and a context token in ActAs,
    /// header-signed by the calling system.
    OioSaml2Sosi,
    /// A Bst2Idws request: a citizen's bootstrap token in ActAs and the CPR claim,
    /// header-signed by its holder.
    Bst2Idws,
    /// A JWT2Idws (alias JWTIdws) request: a citizen's JWT in ActAs and the CPR claim,
    /// header-signed by a whitelisted system.
    Jwt2Idws,
    /// A JWT2OIOSaml request: as JWT2Idws's, for an audience with an encryption certificate.
    Jwt2OioSaml,
}

impl RequestKind {
    /// Every kind, in the pool's order.
    pub const ALL: [RequestKind; 7] = [
        RequestKind::Dgws,
        RequestKind::Sosi2OioSaml,
        RequestKind::Bst2Sosi,
        RequestKind::OioSaml2Sosi,
        RequestKind::Bst2Idws,
        RequestKind::Jwt2Idws,
        RequestKind::Jwt2OioSaml,
    ];

    /// The kind of requests a path takes: an OIO exchange's by its last segment, else DGWS.
    pub fn of_path(path: &str) -> RequestKind {
        match path.trim_end_matches('/').rsplit_once('/').map(|(_, name)| name) {
            Some("Sosi2OIOSaml") => RequestKind::Sosi2OioSaml,
            Some("BST2SOSI") => RequestKind::Bst2Sosi,
            Some("OIOSaml2Sosi") => RequestKind::OioSaml2Sosi,
            Some("Bst2Idws") => RequestKind::Bst2Idws,
            // segl serves JWT2Idws under both names; the requests are the same.
            Some("JWT2Idws" | "JWTIdws") => RequestKind::Jwt2Idws,
            Some("JWT2OIOSaml") => RequestKind::Jwt2OioSaml,
            _ => RequestKind::Dgws,
        }
    }

    /// The exchange's name, as the endpoint is called (DGWS for both DGWS endpoints).
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Dgws => "DGWS",
            RequestKind::Sosi2OioSaml => "Sosi2OIOSaml",
            RequestKind::Bst2Sosi => "BST2SOSI",
            RequestKind::OioSaml2Sosi => "OIOSaml2Sosi",
            RequestKind::Bst2Idws => "Bst2Idws",
            RequestKind::Jwt2Idws => "JWT2Idws",
            RequestKind::Jwt2OioSaml => "JWT2OIOSaml",
        }
    }

    /// HSM signatures segl makes per token issued: one for a DGWS card; two for an OIO
    /// answer (Sosi2OIOSaml and JWT2OIOSaml: the assertion and the answer's header; BST2SOSI
    /// and OIOSaml2Sosi: the card and the answer's header; Bst2Idws and JWT2Idws: the
    /// identity token and the answer's header). Encrypting to an audience uses its public key,
    /// not the HSM.
    pub fn signatures_per_token(self) -> u32 {
        match self {
            RequestKind::Dgws => 1,
            RequestKind::Sosi2OioSaml
            | RequestKind::Bst2Sosi
            | RequestKind::OioSaml2Sosi
            | RequestKind::Bst2Idws
            | RequestKind::Jwt2Idws
            | RequestKind::Jwt2OioSaml => 2,
        }
    }

    /// What segl signs on the HSM for one token of this kind, for the report.
    pub fn signed_by_the_sts(self) -> &'static str {
        match self {
            RequestKind::Dgws => "the card",
            RequestKind::Bst2Sosi | RequestKind::OioSaml2Sosi => "the card and the answer's header",
            RequestKind::Sosi2OioSaml | RequestKind::Jwt2OioSaml => "the assertion and the answer's header",
            RequestKind::Bst2Idws | RequestKind::Jwt2Idws => "the identity token and the answer's header",
        }
    }

    /// Who minted the tokens a header-signed kind's requests present, for the report.
    pub fn minted_by(self) -> &'static str {
        match self {
            RequestKind::Jwt2Idws | RequestKind::Jwt2OioSaml => "the development JWT issuer's key",
            _ => "the development IdP key",
        }
    }

    /// Whether a pooled request may go out again under a fresh message id: not when the
    /// client's own header signature covers the id (BST2SOSI, OIOSaml2Sosi and the citizen
    /// exchanges).
    pub fn renewable(self) -> bool {
        matches!(self, RequestKind::Dgws | RequestKind::Sosi2OioSaml)
    }

    fn slot(self) -> usize {
        match self {
            RequestKind::Dgws => 0,
            RequestKind::Sosi2OioSaml => 1,
            RequestKind::Bst2Sosi => 2,
            RequestKind::OioSaml2Sosi => 3,
            RequestKind::Bst2Idws => 4,
            RequestKind::Jwt2Idws => 5,
            RequestKind::Jwt2OioSaml => 6,
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
    /// The configuration trusts no bootstrap-token issuer for BST2SOSI.
    #[error("BST2SOSI requests: the configuration has no [[bst2sosi.issuer]]")]
    NoBstIssuer,
    /// The configuration trusts no citizen bootstrap-token issuer for Bst2Idws.
    #[error("Bst2Idws requests: the configuration has no [[idws.issuer]]")]
    NoCitizenIssuer,
    /// The configuration has no `[[idws.audience]]` a kind of request can name.
    #[error("{0} requests: the configuration has no [[idws.audience]] {1}")]
    NoIdwsAudience(&'static str, &'static str),
    /// The configuration does not trust the development JWT issuer, whose key signs the JWTs.
    #[error("JWT2Idws/JWT2OIOSaml requests: the configuration has no [[idws.jwt_issuer]] {0:?} (the development JWT issuer)")]
    NoJwtIssuer(&'static str),
    /// The configuration has no `[dev]` section, whose state holds the development JWT key.
    #[error(
        "JWT2Idws/JWT2OIOSaml requests: the configuration has no [dev] section (the development JWT key)"
    )]
    NoJwtKey,
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
    /// When its building started.
    built: Instant,
}

impl Part {
    fn new(requests: Vec<Pooled>, built: Instant) -> Part {
        Part { requests, next: AtomicUsize::new(0), built }
    }
}

/// Pre-built, pre-signed requests handed out once each: DGWS requests and, for a mix with OIO
/// exchanges, each exchange's requests.
pub struct RequestPool {
    /// By [`RequestKind::slot`].
    parts: [Option<Part>; RequestKind::ALL.len()],
    reused: AtomicU64,
    replayed: AtomicU64,
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

/// How a part of header-signed OIO requests (BST2SOSI, OIOSaml2Sosi, Bst2Idws, JWT2Idws,
/// JWT2OIOSaml) was built.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct SignedOioPoolStats {
    /// Requests (each with its own MessageID and header signature).
    pub size: usize,
    /// Distinct IdP tokens they present (each in many requests, under distinct MessageIDs).
    pub tokens: usize,
    /// What the tokens are, and the claims sent with them.
    pub presented: Vec<String>,
    /// Who signs the requests' headers.
    pub signer: String,
    /// Wall time to build them (tokens and requests).
    pub build_secs: f64,
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
    /// The BST2SOSI requests, when the mix has that endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bst2sosi: Option<SignedOioPoolStats>,
    /// The OIOSaml2Sosi requests, when the mix has that endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oiosaml2sosi: Option<SignedOioPoolStats>,
    /// The Bst2Idws requests, when the mix has that endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bst2idws: Option<SignedOioPoolStats>,
    /// The JWT2Idws requests, when the mix has that endpoint (or its alias JWTIdws).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt2idws: Option<SignedOioPoolStats>,
    /// The JWT2OIOSaml requests, when the mix has that endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt2oiosaml: Option<SignedOioPoolStats>,
}

impl PoolStats {
    /// Statistics of a pool without requests (the header-signed parts are added later).
    fn empty() -> PoolStats {
        PoolStats {
            size: 0,
            threads: 0,
            build_secs: 0.0,
            card_mix: vec![],
            mean_body_bytes: 0,
            sosi2oiosaml: None,
            bst2sosi: None,
            oiosaml2sosi: None,
            bst2idws: None,
            jwt2idws: None,
            jwt2oiosaml: None,
        }
    }

    /// The parts of header-signed requests the pool holds, with their kind.
    pub fn signed_oio(&self) -> impl Iterator<Item = (RequestKind, &SignedOioPoolStats)> {
        [
            (RequestKind::Bst2Sosi, &self.bst2sosi),
            (RequestKind::OioSaml2Sosi, &self.oiosaml2sosi),
            (RequestKind::Bst2Idws, &self.bst2idws),
            (RequestKind::Jwt2Idws, &self.jwt2idws),
            (RequestKind::Jwt2OioSaml, &self.jwt2oiosaml),
        ]
        .into_iter()
        .filter_map(|(kind, stats)| Some((kind, stats.as_ref()?)))
    }

    /// Where the statistics of a header-signed kind's part go; `None` for the other kinds.
    fn signed_oio_mut(&mut self, kind: RequestKind) -> Option<&mut Option<SignedOioPoolStats>> {
        match kind {
            RequestKind::Bst2Sosi => Some(&mut self.bst2sosi),
            RequestKind::OioSaml2Sosi => Some(&mut self.oiosaml2sosi),
            RequestKind::Bst2Idws => Some(&mut self.bst2idws),
            RequestKind::Jwt2Idws => Some(&mut self.jwt2idws),
            RequestKind::Jwt2OioSaml => Some(&mut self.jwt2oiosaml),
            RequestKind::Dgws | RequestKind::Sosi2OioSaml => None,
        }
    }
}

/// Builds requests `0..size` on `threads` threads (thread `t` builds `t, t + threads, …`, each
/// thread signing through its own HSM session); returns each thread's requests in its order.
fn build_on_threads(
    size: usize,
    threads: usize,
    build: &(dyn Fn(usize) -> Result<Pooled, PoolError> + Sync),
) -> Result<Vec<Vec<Pooled>>, PoolError> {
    let parts: Vec<Result<Vec<Pooled>, PoolError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || (t..size).step_by(threads).map(build).collect()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Err(PoolError::Empty))).collect()
    });
    parts.into_iter().collect()
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
        let parts = build_on_threads(size, threads, &|i| {
            let body = Bytes::from(client.request(&options(i))?);
            on_built();
            pooled(body)
        })?;
        let requests: Vec<Pooled> = parts.into_iter().flatten().collect();
        let stats = PoolStats {
            size,
            threads,
            build_secs: started.elapsed().as_secs_f64(),
            card_mix: CARD_MIX.iter().map(|(card, id, alg)| describe(*card, *id, *alg)).collect(),
            mean_body_bytes: requests.iter().map(|r| r.body.len()).sum::<usize>() / size,
            ..PoolStats::empty()
        };
        Ok((RequestPool::with_dgws(Some(Part::new(requests, started))), stats))
    }

    /// A pool over ready-made DGWS request bodies.
    pub fn from_bodies(bodies: Vec<Bytes>) -> Result<RequestPool, PoolError> {
        if bodies.is_empty() {
            return Err(PoolError::Empty);
        }
        let requests = bodies.into_iter().map(pooled).collect::<Result<_, _>>()?;
        Ok(RequestPool::with_dgws(Some(Part::new(requests, Instant::now()))))
    }

    /// A pool without DGWS requests (for a mix of OIO exchanges alone), and its statistics.
    pub fn without_dgws() -> (RequestPool, PoolStats) {
        (RequestPool::with_dgws(None), PoolStats::empty())
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
        let started = Instant::now();
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
        self.parts[RequestKind::Sosi2OioSaml.slot()] = Some(Part::new(requests, started));
        Ok(stats)
    }

    /// Adds `size` header-signed requests of `kind` (BST2SOSI, OIOSaml2Sosi, Bst2Idws, JWT2Idws
    /// or JWT2OIOSaml), each with its own MessageID, built on `threads` threads (one HSM
    /// session each) and presenting the tokens of [`signed_oio_tokens`] in turn. `on_built` is
    /// called once per request.
    pub fn add_signed_oio(
        &mut self,
        client: &DevClient,
        kind: RequestKind,
        settings: &OioSettings,
        size: usize,
        threads: usize,
        on_built: &(dyn Fn() + Sync),
    ) -> Result<SignedOioPoolStats, PoolError> {
        if size == 0 || kind.renewable() {
            return Err(PoolError::Empty);
        }
        let started = Instant::now();
        let tokens = signed_oio_tokens(client, kind, settings, OIO_TOKENS.min(size))?;
        let threads = threads.clamp(1, size);
        let tokens = &tokens;
        let parts = build_on_threads(size, threads, &|i| {
            let body = tokens[i % tokens.len()].request(client)?;
            on_built();
            Ok(Pooled { body: Bytes::from(body), message_id: vec![] })
        })?;
        // Back into index order, so that requests go out about in the order they were built.
        let mut by_thread: Vec<std::vec::IntoIter<Pooled>> = parts.into_iter().map(Vec::into_iter).collect();
        let requests: Vec<Pooled> = (0..size).filter_map(|i| by_thread[i % threads].next()).collect();
        let mut presented: Vec<String> = tokens.iter().map(|t| t.describe()).collect();
        presented.sort();
        presented.dedup();
        let stats = SignedOioPoolStats {
            size,
            tokens: tokens.len(),
            presented,
            signer: format!("{} (RSA-SHA256)", SIGNED_OIO_SIGNER.label()),
            build_secs: started.elapsed().as_secs_f64(),
            mean_body_bytes: requests.iter().map(|r| r.body.len()).sum::<usize>() / size,
        };
        self.parts[kind.slot()] = Some(Part::new(requests, started));
        Ok(stats)
    }

    fn with_dgws(dgws: Option<Part>) -> RequestPool {
        RequestPool {
            parts: [dgws, None, None, None, None, None, None],
            reused: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        }
    }

    fn part(&self, kind: RequestKind) -> Option<&Part> {
        self.parts[kind.slot()].as_ref()
    }

    /// Whether the pool holds requests of `kind`.
    pub fn holds(&self, kind: RequestKind) -> bool {
        self.part(kind).is_some()
    }

    /// DGWS requests in the pool.
    pub fn len(&self) -> usize {
        self.part(RequestKind::Dgws).map_or(0, |p| p.requests.len())
    }

    /// Requests of `kind` in the pool.
    pub fn len_of(&self, kind: RequestKind) -> usize {
        self.part(kind).map_or(0, |p| p.requests.len())
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
    /// again under a fresh message id (counted in [`RequestPool::reused`]), or, for a kind
    /// whose message id is signed, the same request again (a replay segl refuses, counted in
    /// [`RequestPool::replayed`]). An empty body when the pool holds no such requests (check
    /// with [`RequestPool::holds`] first).
    pub fn take_for(&self, kind: RequestKind) -> Bytes {
        let Some(part) = self.part(kind) else { return Bytes::new() };
        let i = part.next.fetch_add(1, Ordering::Relaxed);
        let p = &part.requests[i % part.requests.len()];
        if i < part.requests.len() {
            return p.body.clone();
        }
        if !kind.renewable() {
            self.replayed.fetch_add(1, Ordering::Relaxed);
            return p.body.clone();
        }
        self.reused.fetch_add(1, Ordering::Relaxed);
        let fresh = match kind {
            RequestKind::Dgws => segl::exchange::dgws::envelope::new_message_id(jiff::Timestamp::now()),
            _ => segl::exchange::oio::envelope::new_uuid_urn(),
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
        self.parts.iter().filter_map(|p| p.as_ref()).map(|p| p.next.load(Ordering::Relaxed) as u64).sum()
    }

    /// Requests handed out that repeated a pooled card (with a fresh message id).
    pub fn reused(&self) -> u64 {
        self.reused.load(Ordering::Relaxed)
    }

    /// Header-signed requests (BST2SOSI, OIOSaml2Sosi, the citizen exchanges') handed out a
    /// second time because their part of the pool ran out: replays, which segl refuses.
    pub fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Time since the oldest part of header-signed requests began to be built (segl refuses
    /// them once their Timestamp is older than its `clock_skew_secs`); `None` without such.
    pub fn signed_age(&self) -> Option<Duration> {
        RequestKind::ALL
            .iter()
            .filter(|k| !k.renewable())
            .filter_map(|k| self.part(*k))
            .map(|p| p.built.elapsed())
            .max()
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

/// What the OIO requests need from the configuration of the server under test.
#[derive(Debug, Clone, PartialEq)]
pub struct OioSettings {
    /// The audience Sosi2OIOSaml requests name ([`audience`]).
    pub sosi2oiosaml_audience: String,
    /// The trusted bootstrap-token issuers and their profiles (`[[bst2sosi.issuer]]`).
    pub bst_issuers: Vec<(segl::token::bootstrap::TokenProfile, String)>,
    /// The audience a bootstrap token must name (`bst2sosi.allowed_audience`).
    pub bst_audience: String,
    /// The citizen bootstrap-token issuers (`[[idws.issuer]]`): profile, issuer, the audience
    /// their tokens must name.
    pub citizen_issuers: Vec<(segl::token::bootstrap::TokenProfile, String, Option<String>)>,
    /// The audience Bst2Idws requests name: the first `[[idws.audience]]` without an
    /// encryption certificate (an identity token in the clear, the common case).
    pub idws_audience: Option<String>,
    /// The audience JWT2Idws requests name: the first with JWT support and no encryption
    /// certificate.
    pub jwt2idws_audience: Option<String>,
    /// The audience JWT2OIOSaml requests name: the first with JWT support and an encryption
    /// certificate (JWT2OIOSaml serves no other).
    pub jwt2oiosaml_audience: Option<String>,
    /// The `aud` values the development JWT issuer's `[[idws.jwt_issuer]]` accepts (empty:
    /// the AppliesTo audience); `None` when the configuration does not trust that issuer.
    pub jwt_accepted_audiences: Option<Vec<String>>,
    /// The development PKI directory, where the development JWT issuer's key is.
    pub pki_dir: Option<std::path::PathBuf>,
}

impl OioSettings {
    /// The settings `config` gives.
    pub fn of(config: &segl::config::Config) -> OioSettings {
        let idws = &config.idws;
        let first = |jwt: bool, encrypted: bool| {
            idws.audience
                .iter()
                .find(|a| (!jwt || a.jwt) && a.encryption_certificate.is_some() == encrypted)
                .map(|a| a.audience.clone())
        };
        OioSettings {
            sosi2oiosaml_audience: audience(config),
            bst_issuers: config.bst2sosi.issuer.iter().map(|i| (i.token_profile, i.issuer.clone())).collect(),
            bst_audience: config.bst2sosi.allowed_audience.clone(),
            citizen_issuers: idws
                .issuer
                .iter()
                .map(|i| (i.token_profile, i.issuer.clone(), i.allowed_audience.clone()))
                .collect(),
            idws_audience: first(false, false),
            jwt2idws_audience: first(true, false),
            jwt2oiosaml_audience: first(true, true),
            jwt_accepted_audiences: idws
                .jwt_issuer
                .iter()
                .find(|j| j.issuer == segl::dev::jwt::DEV_JWT_ISSUER)
                .map(|j| j.audiences.clone()),
            pki_dir: config.dev.as_ref().map(|d| d.state_dir.join("pki")),
        }
    }
}

/// Distinct IdP tokens (or JWTs) the header-signed requests present in turn (each many times,
/// under distinct MessageIDs, as a system exchanges one session's token more than once: segl
/// refuses a repeated MessageID of one signer, not a repeated token).
pub const OIO_TOKENS: usize = 64;

/// Who header-signs the BST2SOSI, OIOSaml2Sosi and citizen requests: the development VOCES
/// system, the holder of the bootstrap tokens and the client the development configuration
/// whitelists (for every `[[idws.issuer]]` and `[[idws.jwt_issuer]]` too).
pub const SIGNED_OIO_SIGNER: Identity = Identity::Voces;

/// The IT system the OIO requests claim (BST2SOSI) or name in the context token (OIOSaml2Sosi).
const IT_SYSTEM: &str = "Testby Journal";

/// What a header-signed OIO request presents: a bootstrap token with claims, a NemLog-in
/// assertion with a context token, a citizen's bootstrap token or a citizen's JWT.
pub enum Presented {
    /// BST2SOSI.
    Bootstrap {
        /// Its profile.
        profile: segl::token::bootstrap::TokenProfile,
        /// Its issuer.
        issuer: String,
        /// The token.
        token: Vec<u8>,
        /// The claims (URI, value).
        claims: Vec<(&'static str, &'static str)>,
    },
    /// OIOSaml2Sosi.
    NemLogIn {
        /// The OIOSAML 2.0 assertion.
        assertion: Vec<u8>,
        /// The context token.
        context: Vec<u8>,
    },
    /// Bst2Idws: a citizen's bootstrap token, with the CPR claim.
    CitizenBootstrap {
        /// Its profile.
        profile: segl::token::bootstrap::TokenProfile,
        /// Its issuer.
        issuer: String,
        /// The token.
        token: Vec<u8>,
        /// The identity token's audience (AppliesTo).
        audience: String,
    },
    /// JWT2Idws, JWT2OIOSaml: a citizen's JWT as a `wsse:BinarySecurityToken`, with the CPR
    /// claim.
    Jwt {
        /// The BinarySecurityToken.
        token: Vec<u8>,
        /// The audience (AppliesTo; the JWT's `aud` names it unless the issuer accepts others).
        audience: String,
    },
}

impl Presented {
    /// A request presenting this, with a fresh MessageID and Timestamp, header-signed by
    /// [`SIGNED_OIO_SIGNER`].
    pub fn request(&self, client: &DevClient) -> Result<Vec<u8>, DevError> {
        match self {
            Presented::Bootstrap { token, claims, .. } => {
                segl::dev::oio::bst2sosi_request(client, token, claims, SIGNED_OIO_SIGNER)
            }
            Presented::NemLogIn { assertion, context } => {
                segl::dev::oio::oiosaml2sosi_request(client, assertion, context, SIGNED_OIO_SIGNER)
            }
            Presented::CitizenBootstrap { token, audience, .. } | Presented::Jwt { token, audience } => {
                segl::dev::oio::oio_request(client, &[token], &CITIZEN_CLAIMS, audience, SIGNED_OIO_SIGNER)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Presented::Bootstrap { profile, issuer, claims, .. } => format!(
                "{} from {issuer}, claims {}",
                profile.name(),
                claims.iter().map(|(uri, value)| format!("{uri}={value}")).collect::<Vec<_>>().join(", ")
            ),
            Presented::NemLogIn { .. } => format!(
                "NemLog-in OIOSAML 2.0 assertion of the development employee (CVR/RID), context token \
                 {IT_SYSTEM}, education code 7170, authorisation J0184"
            ),
            Presented::CitizenBootstrap { profile, issuer, audience, .. } => format!(
                "{} from {issuer} of the development citizen, for {audience}, CPR claim",
                profile.name()
            ),
            Presented::Jwt { audience, .. } => format!(
                "RS256 JWT of {} for the development citizen (1 h, scope \"openid sosi-sts\"), for {audience}, CPR claim",
                segl::dev::jwt::DEV_JWT_ISSUER
            ),
        }
    }
}

/// The claims of a citizen request: the CPR of the development citizen, whom every citizen
/// token of the development issuers names (directly, or by a PID the person register maps).
const CITIZEN_CLAIMS: [(&str, &str); 1] =
    [(segl::exchange::oio::citizen::CLAIM_CPR, segl::dev::pki::DEV_CITIZEN_CPR)];

/// The claims a BST2SOSI request sends with a token of `profile`, as the end-to-end tests do:
/// OIOH3BST claims an authorisation code (its education code becomes the role), OIOH2BST a
/// national role the user holds, OIO3BST the IT system alone (no role). The citizen profiles
/// never get here (a `[[bst2sosi.issuer]]` of one is refused when the configuration is read);
/// they get the IT system alone, as OIO3BST.
fn bst_claims(profile: segl::token::bootstrap::TokenProfile) -> Vec<(&'static str, &'static str)> {
    use segl::token::bootstrap::TokenProfile;
    let it = ("medcom:ITSystemName", IT_SYSTEM);
    match profile {
        TokenProfile::Oioh3Bst => vec![it, ("medcom:UserAuthorizationCode", "J0184")],
        TokenProfile::Oioh2Bst => vec![
            it,
            ("medcom:UserRole", "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer"),
        ],
        TokenProfile::Oio3Bst
        | TokenProfile::Oio3BstCitizen
        | TokenProfile::Oio2BstCitizen
        | TokenProfile::NemLoginBst
        | TokenProfile::LegacyBearer => vec![it],
    }
}

/// `count` tokens for `kind`'s requests, minted by the development IdP key: bootstrap tokens of
/// each configured issuer in turn (holder-of-key: [`SIGNED_OIO_SIGNER`]; BST2SOSI's issuers,
/// or the citizen issuers for Bst2Idws), or NemLog-in assertions of the development employee,
/// each with its context token; or, for JWT2Idws and JWT2OIOSaml, JWTs of the development
/// citizen minted by the development JWT issuer's key. Each token is valid for an hour, so a
/// run that starts soon after the pool is built (the header Timestamps allow five minutes)
/// presents them well inside their lifetime.
pub fn signed_oio_tokens(
    client: &DevClient,
    kind: RequestKind,
    settings: &OioSettings,
    count: usize,
) -> Result<Vec<Presented>, PoolError> {
    use segl::dev::oio;
    match kind {
        RequestKind::Bst2Sosi => {
            if settings.bst_issuers.is_empty() {
                return Err(PoolError::NoBstIssuer);
            }
            let holder = client.certificate(SIGNED_OIO_SIGNER)?;
            (0..count)
                .map(|i| {
                    let (profile, issuer) = &settings.bst_issuers[i % settings.bst_issuers.len()];
                    let mut spec = oio::BootstrapSpec::new(*profile, issuer, Some(holder.clone()));
                    spec.audience = settings.bst_audience.clone();
                    Ok(Presented::Bootstrap {
                        profile: *profile,
                        issuer: issuer.clone(),
                        token: oio::bootstrap_token(client, &spec)?,
                        claims: bst_claims(*profile),
                    })
                })
                .collect()
        }
        RequestKind::OioSaml2Sosi => (0..count)
            .map(|_| {
                Ok(Presented::NemLogIn {
                    assertion: oio::nemlogin_assertion(client, &oio::NemLoginSpec::new())?,
                    context: oio::context_token(IT_SYSTEM, "7170", "J0184"),
                })
            })
            .collect(),
        RequestKind::Bst2Idws => {
            if settings.citizen_issuers.is_empty() {
                return Err(PoolError::NoCitizenIssuer);
            }
            let audience = settings
                .idws_audience
                .clone()
                .ok_or(PoolError::NoIdwsAudience("Bst2Idws", "without an encryption certificate"))?;
            let holder = client.certificate(SIGNED_OIO_SIGNER)?;
            (0..count)
                .map(|i| {
                    let (profile, issuer, allowed) =
                        &settings.citizen_issuers[i % settings.citizen_issuers.len()];
                    // The legacy profile is a bearer token: citizen() leaves the holder out.
                    let mut spec = oio::BootstrapSpec::citizen(*profile, issuer, Some(holder.clone()));
                    if let Some(allowed) = allowed {
                        spec.audience = allowed.clone();
                    }
                    Ok(Presented::CitizenBootstrap {
                        profile: *profile,
                        issuer: issuer.clone(),
                        token: oio::bootstrap_token(client, &spec)?,
                        audience: audience.clone(),
                    })
                })
                .collect()
        }
        RequestKind::Jwt2Idws | RequestKind::Jwt2OioSaml => {
            let audience = if kind == RequestKind::Jwt2Idws {
                settings.jwt2idws_audience.clone().ok_or(PoolError::NoIdwsAudience(
                    "JWT2Idws",
                    "with jwt = true and no encryption certificate",
                ))?
            } else {
                settings.jwt2oiosaml_audience.clone().ok_or(PoolError::NoIdwsAudience(
                    "JWT2OIOSaml",
                    "with jwt = true and an encryption certificate",
                ))?
            };
            let accepted = settings
                .jwt_accepted_audiences
                .as_ref()
                .ok_or(PoolError::NoJwtIssuer(segl::dev::jwt::DEV_JWT_ISSUER))?;
            // An issuer configured with its own list of audiences checks `aud` against it
            // instead of against AppliesTo.
            let aud = accepted.first().unwrap_or(&audience).clone();
            let pki_dir = settings.pki_dir.as_deref().ok_or(PoolError::NoJwtKey)?;
            (0..count)
                .map(|_| {
                    // Each its own jti and auth_time, as a citizen's separate logins.
                    let jwt = segl::dev::jwt::sign(pki_dir, &segl::dev::jwt::JwtSpec::citizen(&aud))?;
                    Ok(Presented::Jwt {
                        token: segl::dev::jwt::binary_security_token(&jwt),
                        audience: audience.clone(),
                    })
                })
                .collect()
        }
        RequestKind::Dgws | RequestKind::Sosi2OioSaml => Err(PoolError::Empty),
    }
}

/// The pool a mix needs, `size` requests in all: DGWS requests for its DGWS share (built as
/// [`RequestPool::build`] does); for its Sosi2OIOSaml share, requests presenting
/// [`STS_CARDS`] cards fetched from `target` (which must be up); for its BST2SOSI,
/// OIOSaml2Sosi, Bst2Idws, JWT2Idws and JWT2OIOSaml shares, header-signed requests
/// ([`RequestPool::add_signed_oio`]). A mix of
/// DGWS endpoints alone gets exactly what [`RequestPool::build`] makes.
#[allow(clippy::too_many_arguments)]
pub fn build_for_mix(
    client: &DevClient,
    mix: &crate::engine::Mix,
    size: usize,
    threads: usize,
    on_built: &(dyn Fn() + Sync),
    rt: &tokio::runtime::Runtime,
    target: &crate::client::Target,
    settings: &OioSettings,
) -> Result<(RequestPool, PoolStats), PoolError> {
    let share_of = |kind| {
        let share = mix.share(kind);
        if share > 0.0 {
            ((size as f64 * share).ceil() as usize).max(1)
        } else {
            0
        }
    };
    let oio: Vec<(RequestKind, usize)> =
        RequestKind::ALL.iter().filter(|k| **k != RequestKind::Dgws).map(|&k| (k, share_of(k))).collect();
    let oio_size: usize = oio.iter().map(|o| o.1).sum();
    let dgws_size = if mix.share(RequestKind::Dgws) > 0.0 { size.saturating_sub(oio_size).max(1) } else { 0 };
    let (mut pool, mut stats) = if dgws_size > 0 {
        RequestPool::build(client, dgws_size, threads, on_built)?
    } else {
        RequestPool::without_dgws()
    };
    for (kind, n) in oio.into_iter().filter(|o| o.1 > 0) {
        let started = Instant::now();
        match kind {
            RequestKind::Sosi2OioSaml => {
                let cards = rt.block_on(sts_cards(target, client, STS_CARDS.min(n)))?;
                stats.sosi2oiosaml = Some(pool.add_sosi2oiosaml(
                    &cards,
                    &settings.sosi2oiosaml_audience,
                    n,
                    STS_CARD_SOURCE,
                )?);
                for _ in 0..n {
                    on_built();
                }
            }
            RequestKind::Dgws => {}
            signed => {
                let built = pool.add_signed_oio(client, signed, settings, n, threads, on_built)?;
                if let Some(slot) = stats.signed_oio_mut(signed) {
                    *slot = Some(built);
                }
            }
        }
        stats.build_secs += started.elapsed().as_secs_f64();
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
        assert_eq!(RequestKind::of_path("/sts/services/BST2SOSI/"), RequestKind::Bst2Sosi);
        assert_eq!(RequestKind::of_path("/sts/services/OIOSaml2Sosi"), RequestKind::OioSaml2Sosi);
        assert_eq!(RequestKind::of_path("/x/BST2SOSI2"), RequestKind::Dgws);
        assert_eq!(RequestKind::of_path("/sts/services/Bst2Idws"), RequestKind::Bst2Idws);
        assert_eq!(RequestKind::of_path("/sts/services/JWT2Idws"), RequestKind::Jwt2Idws);
        assert_eq!(RequestKind::of_path("/sts/services/JWTIdws/"), RequestKind::Jwt2Idws);
        assert_eq!(RequestKind::of_path("/sts/services/JWT2OIOSaml"), RequestKind::Jwt2OioSaml);
        // Matching is exact, as segl's routing is.
        assert_eq!(RequestKind::of_path("/sts/services/bst2idws"), RequestKind::Dgws);
        let names: Vec<&str> = RequestKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            ["DGWS", "Sosi2OIOSaml", "BST2SOSI", "OIOSaml2Sosi", "Bst2Idws", "JWT2Idws", "JWT2OIOSaml"]
        );
        let signatures: Vec<u32> = RequestKind::ALL.iter().map(|k| k.signatures_per_token()).collect();
        assert_eq!(signatures, [1, 2, 2, 2, 2, 2, 2]);
        let renewable: Vec<bool> = RequestKind::ALL.iter().map(|k| k.renewable()).collect();
        assert_eq!(renewable, [true, true, false, false, false, false, false]);
        let slots: Vec<usize> = RequestKind::ALL.iter().map(|k| k.slot()).collect();
        assert_eq!(slots, (0..RequestKind::ALL.len()).collect::<Vec<_>>());
        assert!(!pool.holds(RequestKind::Bst2Sosi) && pool.signed_age().is_none());
        assert!(!pool.holds(RequestKind::Jwt2OioSaml) && pool.take_for(RequestKind::Bst2Idws).is_empty());
    }

    #[test]
    fn the_citizen_requests_take_their_issuers_and_audiences_from_the_configuration() {
        let path = std::path::Path::new("/nonexistent/config/segl.toml");
        let config = segl::config::Config::from_toml(crate::fixture::DEFAULT_CONFIG, path).unwrap();
        let s = OioSettings::of(&config);
        // Bst2Idws and JWT2Idws: an identity token in the clear; JWT2OIOSaml: the audience it
        // encrypts to.
        assert_eq!(s.idws_audience.as_deref(), Some("https://fmk"));
        assert_eq!(s.jwt2idws_audience.as_deref(), Some("https://fmk"));
        assert_eq!(s.jwt2oiosaml_audience.as_deref(), Some("https://sp.dev.segl.example/"));
        let first = &s.citizen_issuers[0];
        assert_eq!(
            (first.0, first.1.as_str(), first.2.as_deref()),
            (
                segl::token::bootstrap::TokenProfile::Oio3BstCitizen,
                "https://idp.test.nspop.dk",
                Some("https://bootstrap.sts.nspop.dk/")
            )
        );
        assert_eq!(s.citizen_issuers.len(), config.idws.issuer.len());
        // The development JWT issuer is trusted, its aud checked against AppliesTo.
        assert_eq!(s.jwt_accepted_audiences, Some(vec![]));
        assert!(s.pki_dir.as_deref().is_some_and(|d| d.ends_with("state/pki")), "{:?}", s.pki_dir);
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
