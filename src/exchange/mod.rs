//! The token exchanges, one module per endpoint family, behind one router. Everything a
//! request needs is in [`CoreContext`]: what all cores share, and this core's own signer.

pub mod dgws;
pub mod error;
pub mod replay;
pub mod soap;

use std::sync::Arc;

use jiff::Timestamp;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::roles::{NationalRoles, RolesConfigError};
use crate::signing::CoreSigner;
use crate::trust::cache::SignerCache;
use crate::trust::crl::CrlSet;
use crate::trust::{TrustStore, TrustStoreError};
use crate::xml::parse::ParseArena;
use crate::xml::{Document, Limits};
use arc_swap::ArcSwap;
use error::RequestError;
use replay::ReplayCache;

/// Everything one configuration decides, built and validated as a unit and swapped in whole
/// on reload: a request sees one policy from start to end.
pub struct Policy {
    /// Increases with every successful reload (1 at startup).
    pub version: u64,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Trusted CAs (CRLs are shared across reloads, see [`Shared`]).
    pub trust: TrustStore,
    /// Parser limits.
    pub limits: Limits,
    /// The national-role policy.
    pub roles: NationalRoles,
}

/// What every core shares for the life of the process.
pub struct Shared {
    policy: ArcSwap<Policy>,
    /// The current CRLs; the cell outlives reloads so the CRL watcher has one place to update.
    pub crls: Arc<ArcSwap<CrlSet>>,
    /// DGWS message ids seen recently, shared by all cores (kept across reloads).
    pub replay: ReplayCache,
    /// The audit log (its file is chosen at startup).
    pub audit: AuditLog,
}

/// Why the shared state could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Trust anchors or CRLs.
    #[error("trust: {0}")]
    Trust(#[from] TrustStoreError),
    /// National roles.
    #[error("roles: {0}")]
    Roles(#[from] RolesConfigError),
    /// The audit log.
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
}

impl Policy {
    /// Builds (and so validates) the policy of `config`, loading its CRLs into `crls`.
    pub fn build(
        config: Arc<Config>,
        version: u64,
        crls: Arc<ArcSwap<CrlSet>>,
    ) -> Result<Policy, SharedError> {
        Ok(Policy {
            version,
            trust: TrustStore::from_config(&config.trust, crls)?,
            limits: config.limits.to_limits(),
            roles: NationalRoles::from_config(&config.roles)?,
            config,
        })
    }
}

impl Shared {
    /// Builds everything the cores share from a configuration.
    pub fn from_config(config: Arc<Config>) -> Result<Shared, SharedError> {
        let crls = Arc::new(ArcSwap::from_pointee(CrlSet::default()));
        let replay = ReplayCache::new(config.sts.replay_cache_entries);
        let audit = AuditLog::open_with_commit_delay(
            &config.audit.path,
            config.audit.durability,
            std::time::Duration::from_millis(config.audit.commit_delay_ms),
        )?;
        let policy = Policy::build(config, 1, crls.clone())?;
        Ok(Shared { policy: ArcSwap::from_pointee(policy), crls, replay, audit })
    }

    /// The policy in force now.
    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Validates `config` completely and, only if it is good, makes it the policy in force.
    /// Returns the new version. On error the old policy keeps serving, untouched.
    pub fn reload(&self, config: Config) -> Result<u64, SharedError> {
        let current = self.policy();
        for setting in restart_only_changes(&current.config, &config) {
            tracing::warn!(setting, "changed in the configuration; takes effect at the next restart");
        }
        // Build against a scratch CRL cell so a bad CRL directory cannot disturb the current one.
        let scratch = Arc::new(ArcSwap::from_pointee(CrlSet::default()));
        let policy = Policy::build(Arc::new(config), current.version + 1, scratch.clone())?;
        let policy = Policy { trust: policy.trust.with_crls(self.crls.clone()), ..policy };
        self.crls.store(scratch.load_full());
        let version = policy.version;
        self.policy.store(Arc::new(policy));
        Ok(version)
    }
}

/// Settings a running server cannot change: listeners, executors, the HSM, the replay cache size.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.server.listen != new.server.listen {
        changed.push("server.listen");
    }
    if old.server.cores != new.server.cores {
        changed.push("server.cores");
    }
    if format!("{:?}", old.hsm) != format!("{:?}", new.hsm) {
        changed.push("hsm");
    }
    if old.sts.replay_cache_entries != new.sts.replay_cache_entries {
        changed.push("sts.replay_cache_entries");
    }
    if old.audit.path != new.audit.path
        || old.audit.durability != new.audit.durability
        || old.audit.commit_delay_ms != new.audit.commit_delay_ms
    {
        changed.push("audit");
    }
    changed
}

/// One core's view: the shared state, this core's own HSM session, and its reusable XML
/// storage.
pub struct CoreContext {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// This core's signer.
    pub signer: CoreSigner,
    /// Parse storage reused request after request, so a warm core parses without allocating.
    xml: std::cell::RefCell<ParseArena>,
    /// Signer certificates this core validated recently, with their parsed keys.
    pub signers: std::cell::RefCell<SignerCache>,
    /// Admission control's refusal envelopes of the current second, one per reason.
    shed_faults: std::cell::RefCell<Vec<ShedFault>>,
}

impl CoreContext {
    /// A core's context.
    pub fn new(shared: Arc<Shared>, signer: CoreSigner) -> Self {
        CoreContext {
            shared,
            signer,
            xml: Default::default(),
            signers: Default::default(),
            shed_faults: Default::default(),
        }
    }

    /// Parses a request into storage reused across requests (see [`CoreContext::recycle`]).
    pub fn parse(&self, body: bytes::Bytes, limits: &Limits) -> Result<Document, crate::xml::XmlError> {
        // The borrow ends with the parse; a request waiting on the HSM holds only its Document.
        match self.xml.try_borrow_mut() {
            Ok(mut arena) => Document::parse_with(body, limits, &mut arena),
            Err(_) => Document::parse(body, limits),
        }
    }

    /// Hands a finished request's document storage back for the next parse.
    pub fn recycle(&self, doc: Document) {
        if let Ok(mut arena) = self.xml.try_borrow_mut() {
            arena.recycle(doc);
        }
    }
}

/// The endpoints, by the last path segment under `/sts/services/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A DGWS ID-card endpoint.
    Dgws(dgws::DgwsEndpoint),
}

/// The path prefix of every STS endpoint.
pub const SERVICES_PREFIX: &str = "/sts/services/";

/// Where relying parties fetch the STS's certificates: active, next and recently retired
/// (`GET`, JSON), so they can trust the next key before it signs.
pub const METADATA_PATH: &str = "/sts/metadata/certificates";

/// The body of `GET /sts/metadata/certificates` (rendered when the key inventory changes).
pub fn certificates_metadata(ctx: &CoreContext) -> Vec<u8> {
    ctx.signer.published().json.to_vec()
}

impl Endpoint {
    /// Routes on the URL path only; SOAPAction is ignored (spec §1.2).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.strip_prefix(SERVICES_PREFIX)?.trim_end_matches('/') {
            "NewSecurityTokenService" => Some(Endpoint::Dgws(dgws::DgwsEndpoint::New)),
            "SecurityTokenService" => Some(Endpoint::Dgws(dgws::DgwsEndpoint::Legacy)),
            _ => None,
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Dgws(dgws::DgwsEndpoint::New) => "NewSecurityTokenService",
            Endpoint::Dgws(dgws::DgwsEndpoint::Legacy) => "SecurityTokenService",
        }
    }
}

/// The outcome of one request, ready for the HTTP layer.
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// SOAP envelope.
    pub body: Vec<u8>,
    /// How it ended.
    pub verdict: Verdict,
    /// For refusals because of load: seconds to wait before retrying (`Retry-After`).
    pub retry_after_secs: Option<u32>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A token was issued.
    Issued,
    /// Refused (a fault).
    Refused,
    /// Admitted, but refused because its signature had not started by its deadline.
    Expired,
}

impl Verdict {
    /// The `outcome` label of the request metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Refused => "refused",
            Self::Expired => "expired",
        }
    }
}

impl Outcome {
    fn issued(body: Vec<u8>) -> Outcome {
        Outcome { status: 200, body, verdict: Verdict::Issued, retry_after_secs: None }
    }

    /// The answer to a request refused with `error`, whose fault envelope is `body`.
    fn refused(error: &RequestError, body: Vec<u8>) -> Outcome {
        let verdict = match error {
            RequestError::QueuedPastDeadline { .. } => Verdict::Expired,
            _ => Verdict::Refused,
        };
        Outcome { status: error.fault().1, body, verdict, retry_after_secs: error.retry_after_secs() }
    }
}

/// Serves one POST to `path` from `peer`. A request whose signature has not started by
/// `sign_by` (it waited that long behind others) is refused as overloaded (503) instead of
/// signed: its answer would come after its deadline, and the HSM's time is better spent on a
/// request that can still be answered in time.
pub async fn serve(
    ctx: &CoreContext,
    path: &str,
    body: bytes::Bytes,
    peer: Option<std::net::SocketAddr>,
    sign_by: Option<std::time::Instant>,
) -> Outcome {
    let now = Timestamp::now();
    let Some(endpoint) = Endpoint::from_path(path) else {
        return refusal(ctx, RequestError::UnknownEndpoint(path.to_owned()), path, now);
    };
    let actor = |ctx: &CoreContext| ctx.shared.policy().config.sts.fault_actor.clone();
    match endpoint {
        Endpoint::Dgws(which) => match dgws::issue(ctx, which, body, now, sign_by).await {
            Ok(issued) => {
                let record = issued.audit.issued(endpoint.name(), now, peer);
                // A token whose audit record cannot be written is not released.
                if let Err(e) = ctx.shared.audit.record(&record).await {
                    let error = RequestError::Audit(e);
                    log_refusal(endpoint.name(), &error);
                    let body = soap::fault_response(&issued.correlation, now, &error, &actor(ctx));
                    return Outcome::refused(&error, body);
                }
                // The audit log has a record of every card and the metrics count them; a log
                // line each would be thousands a second at peak.
                tracing::debug!(endpoint = endpoint.name(), "issued ID card");
                Outcome::issued(issued.response)
            }
            Err(refused) => {
                log_refusal(endpoint.name(), &refused.error);
                if refused.audit.identified() {
                    let (code, _) = refused.error.fault();
                    let record = refused.audit.refused(
                        endpoint.name(),
                        now,
                        peer,
                        code.qname(),
                        refused.error.fault_string(),
                    );
                    if let Err(e) = ctx.shared.audit.record(&record).await {
                        tracing::error!("the refusal was not audited: {e}");
                    }
                }
                let body = soap::fault_response(&refused.correlation, now, &refused.error, &actor(ctx));
                Outcome::refused(&refused.error, body)
            }
        },
    }
}

/// A fault for a request refused before any endpoint logic ran (HTTP-level refusals).
pub fn refusal(ctx: &CoreContext, error: RequestError, what: &str, now: Timestamp) -> Outcome {
    log_refusal(what, &error);
    let corr = soap::Correlation::fresh(now);
    let body = soap::fault_response(&corr, now, &error, &ctx.shared.policy().config.sts.fault_actor);
    Outcome::refused(&error, body)
}

/// The fault for a request refused by admission control, built without looking at the request
/// and without a log line per refusal (at peak there are thousands a second; the metrics
/// count them).
///
/// At peak most requests are refused, so the envelope is built once per second, reason and
/// policy on each core and reused: refusals within that second share its MessageID and
/// Created time. Nothing correlates by them (a refused request is not parsed, so the fault
/// relates to no message), and seal clients read only the fault code and string.
pub fn shed(ctx: &CoreContext, reason: &'static str, now: Timestamp) -> Outcome {
    let error = RequestError::Overloaded { reason, retry_after_secs: SHED_RETRY_AFTER_SECS };
    let policy = ctx.shared.policy();
    let second = now.as_second();
    let mut cached = ctx.shed_faults.borrow_mut();
    let fresh =
        |f: &ShedFault| f.second == second && f.policy_version == policy.version && f.reason == reason;
    let body = match cached.iter().find(|f| fresh(f)) {
        Some(fault) => fault.body.clone(),
        None => {
            let corr = soap::Correlation::fresh(now);
            let body = soap::fault_response(&corr, now, &error, &policy.config.sts.fault_actor);
            // One entry per reason: the list never grows beyond the handful of shed reasons.
            cached.retain(|f| f.reason != reason);
            cached.push(ShedFault { second, policy_version: policy.version, reason, body: body.clone() });
            body
        }
    };
    Outcome::refused(&error, body)
}

/// What a shed request is told to wait before retrying (the `Retry-After` header says the same).
pub const SHED_RETRY_AFTER_SECS: u32 = 1;

/// A refusal envelope of admission control, reused for one second (see [`shed`]).
struct ShedFault {
    second: i64,
    policy_version: u64,
    reason: &'static str,
    body: Vec<u8>,
}

fn log_refusal(what: &str, error: &RequestError) {
    let (code, status) = error.fault();
    if error.retry_after_secs().is_some() {
        // At peak these come by the thousand a second: the metrics count them by reason.
        tracing::debug!(endpoint = what, fault = %code.qname(), status, "request refused: {error}");
    } else if error.is_internal() {
        tracing::error!(endpoint = what, fault = %code.qname(), status, "request failed: {error}");
    } else {
        tracing::warn!(endpoint = what, fault = %code.qname(), status, "request refused: {error}");
    }
}
