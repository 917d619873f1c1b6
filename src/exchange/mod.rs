//! The token exchanges: the endpoint table ([`endpoint`]), the one request pipeline every
//! exchange runs through ([`pipeline`]), fault dialects ([`fault`]), the message families
//! ([`dgws`], [`oio`]) and, one file each, the rules of the exchanges built on them. Everything
//! a request needs is in [`CoreContext`]: what all cores share, and this core's own signer.

pub mod audiences;
pub mod bst2idws;
pub mod bst2sosi;
pub mod dgws;
pub mod endpoint;
pub mod error;
pub mod fault;
pub mod hints;
pub mod jwt2idws;
pub mod jwt2oiosaml;
pub mod oio;
pub mod oiosaml2sosi;
pub mod outcome;
pub mod pipeline;
pub mod replay;
pub mod sosi2oiosaml;

pub use endpoint::{Endpoint, SERVICES_PREFIX};
pub use outcome::{Outcome, Verdict};
pub use pipeline::{refusal, serve, shed, SHED_RETRY_AFTER_SECS};

use jiff::Timestamp;
use std::sync::Arc;

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
    /// The Sosi2OIOSaml audiences, with their encryption certificates.
    pub audiences: audiences::AudienceRegister<audiences::Audience>,
    /// The citizen exchanges' audiences (audienceConfiguration).
    pub idws_audiences: audiences::AudienceRegister<audiences::IdwsAudience>,
    /// The citizen bootstrap-token issuers Bst2Idws trusts.
    pub citizen_idps: crate::trust::idp::TrustedIdps,
    /// The parsed keys of every pinned token signer (bootstrap issuers, NemLog-in IdPs).
    pub pinned_keys: crate::trust::pinned::PinnedKeys,
    /// The JWT issuers JWT2Idws and JWT2OIOSaml trust, with their keys.
    pub jwt_issuers: crate::trust::jwt::JwtIssuers,
    /// The bootstrap-token issuers BST2SOSI trusts.
    pub idps: crate::trust::idp::TrustedIdps,
    /// DER of the identity providers OIOSaml2Sosi trusts (nboConfiguration's trustedVault).
    pub nemlogin_idps: Vec<Vec<u8>>,
    /// Those of them whose CPR is taken as sent (their subject serialNumber is in
    /// `cpr_trust_certificates`), worked out once here rather than per request.
    pub cpr_trusted_idps: Vec<Vec<u8>>,
    /// Who a professional is, and what may be written about them.
    pub persons: Arc<dyn crate::registers::PersonRegister>,
    /// Which authorisations a person holds.
    pub authorisations: Arc<dyn crate::registers::AuthorisationRegister>,
    /// Whom a citizen may act for (OnBehalfOf).
    pub relations: Arc<dyn crate::registers::RelationRegister>,
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
    /// An audience's configuration.
    #[error("sosi2oiosaml.audience: {0}")]
    Audience(#[from] audiences::AudienceError),
    /// A trusted bootstrap issuer's configuration.
    #[error("bst2sosi.issuer: {0}")]
    Idp(#[from] crate::trust::idp::IdpConfigError),
    /// A JWT issuer's configuration or keys.
    #[error("idws.jwt_issuer: {0}")]
    JwtIssuer(#[from] crate::trust::jwt::JwtConfigError),
    /// The register file.
    #[error("registers: {0}")]
    Register(#[from] crate::registers::RegisterFileError),
}

impl Policy {
    /// Builds (and so validates) the policy of `config`, loading its CRLs into `crls`.
    pub fn build(
        config: Arc<Config>,
        version: u64,
        crls: Arc<ArcSwap<CrlSet>>,
    ) -> Result<Policy, SharedError> {
        let nemlogin_idps = crate::trust::idp::read_certificates(
            "oiosaml2sosi.trusted_idps",
            &config.oiosaml2sosi.trusted_idps,
        )?;
        let register = Arc::new(match &config.registers.file {
            Some(path) => crate::registers::FileRegister::load(path)?,
            None => crate::registers::FileRegister::default(),
        });
        let idps = crate::trust::idp::TrustedIdps::from_config(&config.bst2sosi.issuer)?;
        let citizen_idps = crate::trust::idp::TrustedIdps::from_config(&config.idws.issuer)?;
        let pinned_keys = crate::trust::pinned::PinnedKeys::new(
            idps.signing_certificates()
                .chain(citizen_idps.signing_certificates())
                .chain(nemlogin_idps.iter()),
        );
        Ok(Policy {
            version,
            trust: TrustStore::from_config(&config.trust, crls)?,
            limits: config.limits.to_limits(),
            roles: NationalRoles::from_config(&config.roles)?,
            audiences: audiences::AudienceRegister::from_config(&config.sosi2oiosaml)?,
            idws_audiences: audiences::AudienceRegister::from_idws_config(&config.idws)?,
            idps,
            citizen_idps,
            pinned_keys,
            jwt_issuers: crate::trust::jwt::JwtIssuers::from_config(&config.idws.jwt_issuer)?,
            cpr_trusted_idps: nemlogin_idps
                .iter()
                .filter(|der| {
                    let serial = crate::trust::describe(der).ok().and_then(|c| c.subject_serial_number);
                    serial.is_some_and(|s| config.oiosaml2sosi.cpr_trust_certificates.contains(&s))
                })
                .cloned()
                .collect(),
            nemlogin_idps,
            persons: register.clone(),
            authorisations: register.clone(),
            relations: register,
            config,
        })
    }
}

impl Shared {
    /// Builds everything the cores share from a configuration.
    pub fn from_config(config: Arc<Config>) -> Result<Shared, SharedError> {
        let crls = Arc::new(ArcSwap::from_pointee(CrlSet::default()));
        let replay = ReplayCache::new(config.sts.replay_cache_entries);
        let audit = AuditLog::open_with(&config.audit.path, &config.audit.options())?;
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

/// Settings a running server cannot change: listeners, executors, the HSM, the replay store.
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
    // Each core's admission control is built with these at start.
    if (old.server.deadline_ms, old.server.queue_target_ms, old.server.queue_interval_ms)
        != (new.server.deadline_ms, new.server.queue_target_ms, new.server.queue_interval_ms)
    {
        changed.push("server.deadline_ms/queue_target_ms/queue_interval_ms");
    }
    if old.sts.replay_cache_entries != new.sts.replay_cache_entries {
        changed.push("sts.replay_cache_entries");
    }
    // Each core connects to the replay store once, at start.
    if old.replay != new.replay {
        changed.push("replay");
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
    /// Admission control's refusal envelopes of the current second, one per reason and dialect.
    shed_faults: std::cell::RefCell<Vec<pipeline::ShedFault>>,
    /// Where this core remembers message ids: the node's memory, or Redis over its connection.
    replay: replay::ReplayCheck,
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
            replay: replay::ReplayCheck::Local,
        }
    }

    /// The same context, remembering message ids through `replay`.
    pub fn with_replay(self, replay: replay::ReplayCheck) -> Self {
        CoreContext { replay, ..self }
    }

    /// Remembers the request's `message_id` (as `key`) until `expires`: a repeat, from any
    /// node when the store is shared, is refused.
    pub async fn remember_message_id(
        &self,
        key: replay::Key,
        message_id: &str,
        expires: Timestamp,
        now: Timestamp,
    ) -> Result<replay::Remembered, RequestError> {
        self.replay.remember(&self.shared.replay, key, expires, now).await.map_err(|refusal| match refusal {
            replay::NotRemembered::Duplicate => RequestError::DuplicateMessageId(message_id.to_owned()),
            replay::NotRemembered::StoreUnavailable => RequestError::ReplayStoreUnavailable,
        })
    }

    /// Forgets a remembered message id: the request failed on segl's side and may be resent.
    pub fn forget_message_id(&self, remembered: &replay::Remembered) {
        self.replay.forget(&self.shared.replay, remembered);
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

/// Where relying parties fetch the STS's certificates: active, next and recently retired
/// (`GET`, JSON), so they can trust the next key before it signs.
pub const METADATA_PATH: &str = "/sts/metadata/certificates";

/// The body of `GET /sts/metadata/certificates` (rendered when the key inventory changes).
pub fn certificates_metadata(ctx: &CoreContext) -> Vec<u8> {
    ctx.signer.published().json.to_vec()
}

/// Validates a signer certificate through this core's cache, and describes it for the audit
/// record whether or not it is trusted. The certificate is parsed once: by validation when it
/// succeeds, for the record alone when validation refuses it.
pub fn validate_signer(
    signers: &mut SignerCache,
    policy: &Policy,
    der: &[u8],
    now: jiff::Timestamp,
) -> (Result<Arc<crate::trust::SignerCertificate>, crate::trust::TrustError>, Option<crate::audit::AuditClient>)
{
    let capacity = policy.config.trust.signer_cache_entries;
    let validated = signers.validate(&policy.trust, der, now, capacity);
    let described = match &validated {
        Ok(signer) => Some(crate::audit::AuditClient::of(signer)),
        Err(_) => crate::trust::describe(der).ok().map(|c| crate::audit::AuditClient::of(&c)),
    };
    (validated, described)
}
