//! Typed configuration, read from TOML. Relative paths in the file are resolved against the
//! directory that holds the file, so a configuration works wherever the checkout lives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod audience;
mod bst2sosi;
mod idws;
pub mod jwt;
mod oiosaml2sosi;
pub mod replay;
pub use audience::{IboAudienceConfig, Sosi2OioSamlConfig};
pub use bst2sosi::{Bst2SosiConfig, TrustedIdpConfig, WhitelistEntry};
pub use idws::{IdwsAudienceConfig, IdwsConfig};
pub use oiosaml2sosi::OioSaml2SosiConfig;
pub use replay::{RedisConfig, ReplayConfig, ReplayStore, WhenUnavailable};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The TOML is invalid or has unknown/missing keys.
    #[error("invalid configuration {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is syntactically fine but not acceptable.
    #[error("invalid configuration {path}: {key}: {reason}")]
    Invalid { path: PathBuf, key: &'static str, reason: String },
}

/// The whole configuration of one segl instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and HTTP limits.
    pub server: ServerConfig,
    /// The PKCS#11 module, token and signing key.
    pub hsm: HsmConfig,
    /// How the STS names itself and judges cards.
    pub sts: StsConfig,
    /// Which CAs are trusted to certify card signers.
    pub trust: TrustConfig,
    /// Parser limits for request XML.
    #[serde(default)]
    pub limits: XmlLimitsConfig,
    /// National roles (the NSP's `sts_audconf.roleDefinitions` and `trustedCvr`).
    #[serde(default)]
    pub roles: RolesConfig,
    /// The audit log.
    pub audit: AuditConfig,
    /// The Sosi2OIOSaml exchange: its audiences (iboConfig).
    #[serde(default)]
    pub sosi2oiosaml: Sosi2OioSamlConfig,
    /// The BST2SOSI exchange: its settings and trusted issuers (trustedIdpConfiguration).
    #[serde(default)]
    pub bst2sosi: Bst2SosiConfig,
    /// The OIOSaml2Sosi exchange (nboConfiguration).
    #[serde(default)]
    pub oiosaml2sosi: OioSaml2SosiConfig,
    /// The citizen exchanges: audiences (audienceConfiguration), bootstrap and JWT issuers.
    #[serde(default)]
    pub idws: IdwsConfig,
    /// The person and authorisation registers.
    #[serde(default)]
    pub registers: RegistersConfig,
    /// Where message ids are remembered against replay (this node, or Redis for a cluster).
    #[serde(default)]
    pub replay: ReplayConfig,
    /// Development PKI and client (only used by `segl dev …`).
    #[serde(default)]
    pub dev: Option<DevConfig>,
}

/// Listener and HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address every core's listener binds (SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Number of executors, one pinned per core; default: every available core.
    #[serde(default)]
    pub cores: Option<usize>,
    /// Largest request body accepted; larger gets HTTP 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest request head (request line + headers) accepted; larger gets HTTP 431.
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// A connection idle (or trickling) this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Open connections per core; more are refused at accept.
    #[serde(default = "default_connections_per_core")]
    pub max_connections_per_core: usize,
    /// How long a request may take, end to end; what cannot finish in time is refused at once
    /// (HTTP 503, Retry-After) before any work is done.
    #[serde(default = "default_deadline")]
    pub deadline_ms: u64,
    /// How long an admitted request may wait for the HSM once its core is overloaded (a queue
    /// standing above this for `queue_interval_ms`): overload is refused, not queued.
    #[serde(default = "default_queue_target")]
    pub queue_target_ms: u64,
    /// How long waits must stay above `queue_target_ms` to count as overload rather than a
    /// burst (a burst shorter than this is admitted into the whole deadline).
    #[serde(default = "default_queue_interval")]
    pub queue_interval_ms: u64,
    /// How long SIGTERM waits for requests in flight before exiting.
    #[serde(default = "default_drain")]
    pub drain_timeout_ms: u64,
    /// How long after SIGTERM the node goes on serving with `/readyz` saying "draining", so that
    /// a load balancer's health check takes it out of the pool before it refuses anything.
    #[serde(default)]
    pub drain_grace_ms: u64,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    #[serde(default = "default_admin")]
    pub admin_listen: SocketAddr,
    /// Priority of requests that carry no `medcom:Priority`, by endpoint name (default RUTINE).
    #[serde(default)]
    pub default_priority: BTreeMap<String, crate::server::admission::Priority>,
    /// TLS on a listener of its own.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_connections_per_core() -> usize {
    10_000
}
/// The shortest request deadline accepted: a card check and a signature (a software HSM
/// takes about a millisecond, a network HSM a few) need a few milliseconds of it.
const MIN_DEADLINE_MS: u64 = 10;

fn default_deadline() -> u64 {
    200
}
fn default_queue_target() -> u64 {
    5
}
fn default_queue_interval() -> u64 {
    20
}
fn default_drain() -> u64 {
    10_000
}
fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

/// TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key of the TLS certificate (a transport key, not the STS signing key).
    pub key: PathBuf,
    /// Client certificates: `none`, `optional` or `required`; verified against `trust.anchors`.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// Whether TLS clients must present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// Asked for; connections without one are served too.
    Optional,
    /// Connections without a valid client certificate are refused in the handshake.
    Required,
}

fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_header() -> usize {
    16 * 1024
}
fn default_idle_timeout() -> u64 {
    30_000
}

/// The PKCS#11 module, token and signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Path of the vendor's PKCS#11 module (`.so`); may instead come from `uri`.
    #[serde(default)]
    pub module: PathBuf,
    /// Label of the token holding the STS key (this, `token_serial` or `uri` selects it).
    #[serde(default)]
    pub token_label: String,
    /// Serial number of the token holding the STS key.
    #[serde(default)]
    pub token_serial: Option<String>,
    /// Label of the STS signing key (and of its certificate object on the token): the active
    /// key while the token has no key inventory yet (see `segl keys`).
    #[serde(default)]
    pub key_label: String,
    /// CKA_ID (hex) of the STS signing key, to select it by id when `key_label` is empty.
    #[serde(default)]
    pub key_id: Option<String>,
    /// An RFC 7512 `pkcs11:` URI naming token (`token`, `serial`), key (`object`, `id`),
    /// `module-path` and `pin-source`; fills in the fields above that are not set.
    #[serde(default)]
    pub uri: Option<String>,
    /// How each core reaches the HSM: `inline` (in-process tokens) or `pipelined`
    /// (networked HSMs).
    #[serde(default)]
    pub signer: SignerModeConfig,
    /// Signing sessions per core (pipelined; inline always uses one).
    #[serde(default = "default_sessions_per_core")]
    pub sessions_per_core: usize,
    /// Most signatures a core submits in one batch.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Pipelined: how long a signing call may stay unanswered before segl gives up on it (the
    /// request gets a fault, and a new session replaces the one the call hangs on).
    #[serde(default = "default_call_timeout")]
    pub call_timeout_ms: u64,
    /// How often a running server reads the key inventory to pick up `segl keys activate`.
    #[serde(default = "default_inventory_poll")]
    pub inventory_poll_ms: u64,
    /// How long a retired key's certificate stays in the published metadata.
    #[serde(default = "default_publish_retired")]
    pub publish_retired_hours: u64,
    /// Append-only JSON-lines record of every key operation.
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    /// Label of the RSA key (CKA_DECRYPT, never a signing key) that decrypts tokens issuers
    /// encrypt to the STS (encrypted bootstrap tokens); its certificate is published beside the
    /// signing certificates. Without one, encrypted tokens are refused.
    #[serde(default)]
    pub decryption_key: Option<String>,
    /// File whose first line is the user PIN.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN (used when `pin_file` is absent).
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Environment variables the module reads, whose values are file paths (resolved
    /// relative to this file), e.g. `SOFTHSM2_CONF` or a vendor's client configuration.
    #[serde(default)]
    pub path_env: BTreeMap<String, PathBuf>,
    /// Other environment variables the module reads, exported as given (e.g. p11-kit's
    /// `P11_KIT_SERVER_ADDRESS = "unix:path=/run/hsm.sock"`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// The signer mode of `[hsm] signer`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerModeConfig {
    /// Sign on the core (in-process tokens such as SoftHSM).
    #[default]
    Inline,
    /// Sign on worker threads with several sessions per core (networked HSMs).
    Pipelined,
}

impl SignerModeConfig {
    /// Whether each signature is made on the serving core's own thread, in segl's process
    /// (inline), so that its CPU is the core's: false when signing threads of its own call a
    /// module that may do the work elsewhere (pipelined).
    pub fn signs_on_the_serving_core(self) -> bool {
        self == Self::Inline
    }

    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Pipelined => "pipelined",
        }
    }
}

fn default_sessions_per_core() -> usize {
    4
}
fn default_max_batch() -> usize {
    64
}
fn default_call_timeout() -> u64 {
    segl_pkcs11::DEFAULT_CALL_TIMEOUT.as_millis() as u64
}
fn default_inventory_poll() -> u64 {
    250
}
fn default_publish_retired() -> u64 {
    48
}
fn default_audit_log() -> PathBuf {
    PathBuf::from("key-audit.jsonl")
}

impl HsmConfig {
    /// The signing sessions each core opens: one for the inline signer, which signs on the
    /// core's own thread, `sessions_per_core` for the pipelined one.
    pub fn signing_sessions_per_core(&self) -> usize {
        match self.signer {
            SignerModeConfig::Inline => 1,
            SignerModeConfig::Pipelined => self.sessions_per_core.max(1),
        }
    }

    /// Which token to use.
    pub fn token_selector(&self) -> segl_pkcs11::TokenSelector {
        segl_pkcs11::TokenSelector {
            label: Some(self.token_label.clone()).filter(|l| !l.is_empty()),
            serial: self.token_serial.clone(),
        }
    }

    /// Fills the fields `uri` names and the configuration leaves empty; a URI that contradicts
    /// a field is refused.
    fn merge_uri(&mut self) -> Result<(), String> {
        let Some(text) = &self.uri else { return Ok(()) };
        let uri: segl_pkcs11::Pkcs11Uri = text.parse().map_err(|e| format!("{e}"))?;
        fn fill<T: PartialEq + Clone + std::fmt::Debug>(
            field: &mut T,
            empty: bool,
            from_uri: Option<T>,
            name: &str,
        ) -> Result<(), String> {
            match from_uri {
                Some(v) if empty => *field = v,
                Some(v) if *field != v => {
                    return Err(format!("uri says {name} {v:?}, the configuration {field:?}"))
                }
                _ => {}
            }
            Ok(())
        }
        let empty = self.token_label.is_empty();
        fill(&mut self.token_label, empty, uri.token, "token")?;
        let empty = self.token_serial.is_none();
        fill(&mut self.token_serial, empty, uri.serial.map(Some), "serial")?;
        let empty = self.key_label.is_empty();
        fill(&mut self.key_label, empty, uri.object, "object")?;
        let empty = self.module.as_os_str().is_empty();
        fill(&mut self.module, empty, uri.module_path, "module-path")?;
        if self.pin_file.is_none() && self.pin_env.is_none() {
            self.pin_file = uri.pin_source;
        }
        let empty = self.key_id.is_none();
        fill(&mut self.key_id, empty, uri.id.map(|id| Some(segl_pkcs11::hex_encode(&id))), "id")?;
        Ok(())
    }

    /// Where the PIN comes from.
    pub fn pin_source(&self) -> Option<segl_pkcs11::PinSource> {
        match (&self.pin_file, &self.pin_env) {
            (Some(f), _) => Some(segl_pkcs11::PinSource::File(f.clone())),
            (None, Some(v)) => Some(segl_pkcs11::PinSource::Env(v.clone())),
            (None, None) => None,
        }
    }

    /// Exports `path_env` into this process's environment. Must run before the module is
    /// loaded and before any other thread starts.
    pub fn export_module_environment(&self) {
        for (k, v) in &self.path_env {
            std::env::set_var(k, v);
        }
        for (k, v) in &self.env {
            std::env::set_var(k, v);
        }
    }
}

/// How the STS names itself and judges cards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StsConfig {
    /// `saml:Issuer` of issued cards and `wst:Issuer` of responses; must be an NCName
    /// because seal clients validate it as one.
    pub issuer: String,
    /// `faultactor` of every fault.
    #[serde(default = "default_fault_actor")]
    pub fault_actor: String,
    /// Tolerance when judging a card's validity window.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// What to do with cards of authentication level 1 (none) and 2 (username/password).
    #[serde(default)]
    pub low_levels: LowLevelPolicy,
    /// Most DGWS message ids remembered for replay detection (all cores together).
    #[serde(default = "default_replay_entries")]
    pub replay_cache_entries: usize,
}

fn default_replay_entries() -> usize {
    1_000_000
}

/// Policy for ID cards of authentication level 1 and 2, which carry no OCES signature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LowLevelPolicy {
    /// Refuse them with `dgws:authenticationlevel` (the default).
    #[default]
    Refuse,
    /// Issue them unsigned-in, at their own level (test environments only: nothing about the
    /// user is verified).
    Issue,
}

fn default_fault_actor() -> String {
    "http://www.sosi.dk/sts".to_owned()
}
fn default_skew() -> u64 {
    300
}

/// Which CAs are trusted to certify card signers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// PEM files of trusted CA certificates (roots or issuing CAs).
    pub anchors: Vec<PathBuf>,
    /// PEM files of intermediate CA certificates used to build chains (not trusted alone).
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    /// Directory of CRLs (DER or PEM, any file name), re-read when its files change.
    #[serde(default)]
    pub crl_dir: Option<PathBuf>,
    /// Whether a CRL past its nextUpdate fails validation (`hard`) or only logs (`soft`).
    #[serde(default)]
    pub stale_crl: StaleCrlPolicy,
    /// Whether a certificate whose issuer has no CRL in `crl_dir` is refused.
    #[serde(default)]
    pub require_crl: bool,
    /// Validated signer certificates each core remembers (0: validate every time); see
    /// `trust::cache` for what makes an entry reusable.
    #[serde(default = "default_signer_cache_entries")]
    pub signer_cache_entries: usize,
}

fn default_signer_cache_entries() -> usize {
    4096
}

/// What a CRL past its nextUpdate means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaleCrlPolicy {
    /// Certificates it covers are refused until a fresh CRL arrives.
    #[default]
    Hard,
    /// The stale CRL is still used (revoked stays revoked) and a warning is logged.
    Soft,
}

/// National roles: which roles exist, which CVRs may claim them unchecked, and where users'
/// role assignments are looked up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolesConfig {
    /// Valid national roles (`sts_audconf.roleDefinitions`).
    #[serde(default)]
    pub definitions: Vec<RoleDefinition>,
    /// Care providers whose cards may claim national roles without validation
    /// (`sts_audconf.trustedCvr`).
    #[serde(default)]
    pub trusted_cvrs: Vec<TrustedCvr>,
    /// The role register: a TOML file of `[[assignment]] cpr, cvr, roles` entries. Without
    /// one, only trusted CVRs can claim national roles.
    #[serde(default)]
    pub assignments_file: Option<PathBuf>,
}

/// The person, authorisation and relation registers (CVR/RID, professional UUID or PID → CPR,
/// names, authorisations, who may act for whom).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistersConfig {
    /// The TOML register file (`[[person]]` and `[[relation]]` entries); without one every lookup
    /// misses.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

/// One national role.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleDefinition {
    /// Where the role is defined (the NSP uses `NationalFederation`).
    #[serde(default)]
    pub source: Option<String>,
    /// The role's name in the external register, e.g. `nspLaegesekretaer`.
    #[serde(default)]
    pub external_name: Option<String>,
    /// The code in the card, e.g. `40001`.
    pub code: String,
    /// The value in the card, e.g. `Laegesekretaer`.
    pub value: String,
}

/// A CVR whose cards' national roles are accepted without validation, for one endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustedCvr {
    /// The CVR number.
    pub cvr: String,
    /// `STS` (the DGWS endpoints) or `NBO` (OIOSaml2Sosi).
    pub endpoint: String,
}

/// The audit log: where, and how durable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The JSON-lines file records are appended to (created with mode 0600).
    pub path: PathBuf,
    /// `sync`: a response waits until its record is on disk; `async`: it does not.
    #[serde(default)]
    pub durability: crate::audit::Durability,
    /// In `sync` mode, how long the writer waits after a record arrives before it syncs, so
    /// that concurrent requests share one `fdatasync` (0: sync at once). Adds at most this much
    /// latency to each response.
    #[serde(default = "default_commit_delay_ms")]
    pub commit_delay_ms: u64,
    /// How far ahead of the records the file is extended with zeros, in MiB, so that a sync
    /// flushes data only (0: append, the file only grows; see [`crate::audit`]).
    #[serde(default = "default_preallocate_mib")]
    pub preallocate_mib: u64,
}

fn default_commit_delay_ms() -> u64 {
    2
}

fn default_preallocate_mib() -> u64 {
    4
}

impl AuditConfig {
    /// How the audit log is written.
    pub fn options(&self) -> crate::audit::AuditOptions {
        crate::audit::AuditOptions {
            durability: self.durability,
            commit_delay: std::time::Duration::from_millis(self.commit_delay_ms),
            preallocate: self.preallocate_mib << 20,
        }
    }
}

/// Parser limits for request XML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmlLimitsConfig {
    /// Deepest element nesting accepted.
    #[serde(default = "default_depth")]
    pub max_depth: usize,
    /// Most attributes (including namespace declarations) on one element.
    #[serde(default = "default_attrs")]
    pub max_attributes: usize,
    /// Most nodes in one document.
    #[serde(default = "default_nodes")]
    pub max_nodes: usize,
}

fn default_depth() -> usize {
    64
}
fn default_attrs() -> usize {
    64
}
fn default_nodes() -> usize {
    100_000
}

impl Default for XmlLimitsConfig {
    fn default() -> Self {
        Self { max_depth: default_depth(), max_attributes: default_attrs(), max_nodes: default_nodes() }
    }
}

impl XmlLimitsConfig {
    /// The parser's view of these limits.
    pub fn to_limits(&self) -> crate::xml::Limits {
        crate::xml::Limits {
            max_depth: self.max_depth,
            max_attributes: self.max_attributes,
            max_nodes: self.max_nodes,
        }
    }
}

/// Development PKI and client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// Directory for the development PKI (certificates, PIN files).
    pub state_dir: PathBuf,
    /// Label of the SoftHSM token holding the development CA and client keys.
    pub token_label: String,
    /// File with the development token's user PIN.
    pub pin_file: PathBuf,
}

impl Config {
    /// Reads, resolves and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, path)
    }

    /// Parses configuration text; `path` locates relative paths and names the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.hsm.merge_uri().map_err(|reason| ConfigError::Invalid {
            path: path.to_owned(),
            key: "hsm.uri",
            reason,
        })?;
        config.resolve_paths(&base);
        config.validate(path)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(f) = self.hsm.pin_file.as_mut() {
            fix(f);
        }
        self.hsm.path_env.values_mut().for_each(fix);
        fix(&mut self.hsm.audit_log);
        self.trust.anchors.iter_mut().for_each(fix);
        self.trust.intermediates.iter_mut().for_each(fix);
        if let Some(d) = self.trust.crl_dir.as_mut() {
            fix(d);
        }
        if let Some(f) = self.roles.assignments_file.as_mut() {
            fix(f);
        }
        if let Some(tls) = self.server.tls.as_mut() {
            fix(&mut tls.certificate);
            fix(&mut tls.key);
        }
        fix(&mut self.audit.path);
        self.sosi2oiosaml.audience.iter_mut().for_each(|a| fix(&mut a.certificate));
        self.bst2sosi.issuer.iter_mut().for_each(|i| i.signing_certificates.iter_mut().for_each(fix));
        self.oiosaml2sosi.trusted_idps.iter_mut().for_each(fix);
        for a in &mut self.idws.audience {
            if let Some(c) = a.encryption_certificate.as_mut() {
                fix(c);
            }
        }
        self.idws.issuer.iter_mut().for_each(|i| i.signing_certificates.iter_mut().for_each(fix));
        self.idws.jwt_issuer.iter_mut().for_each(|j| j.resolve_paths(fix));
        if let Some(f) = self.registers.file.as_mut() {
            fix(f);
        }
        self.replay.resolve_paths(fix);
        if let Some(dev) = self.dev.as_mut() {
            fix(&mut dev.state_dir);
            fix(&mut dev.pin_file);
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason: reason.to_owned(),
        };
        if !is_ncname(&self.sts.issuer) {
            return Err(invalid("sts.issuer", "must be an XML NCName (seal clients validate it as one)"));
        }
        if self.hsm.pin_source().is_none() {
            return Err(invalid("hsm", "set pin_file or pin_env"));
        }
        if self.audit.path == self.hsm.audit_log {
            // The request audit log is written in place by its one writer; the key audit trail
            // appends to its own file.
            return Err(invalid("audit.path", "must not be the key audit trail's file (hsm.audit_log)"));
        }
        if self.hsm.module.as_os_str().is_empty() {
            return Err(invalid("hsm.module", "name the PKCS#11 module (or module-path in hsm.uri)"));
        }
        if self.hsm.token_label.is_empty() && self.hsm.token_serial.is_none() {
            return Err(invalid("hsm", "select the token by token_label, token_serial or hsm.uri"));
        }
        if self.hsm.key_label.is_empty() && self.hsm.key_id.is_none() {
            return Err(invalid(
                "hsm.key_label",
                "name the signing key by key_label or key_id (or object/id in hsm.uri)",
            ));
        }
        if self.hsm.key_id.as_deref().is_some_and(|id| segl_pkcs11::hex_decode(id).is_none()) {
            return Err(invalid("hsm.key_id", "must be hex"));
        }
        if self.hsm.sessions_per_core == 0 || self.hsm.max_batch == 0 {
            return Err(invalid("hsm", "sessions_per_core and max_batch must be at least 1"));
        }
        if self.hsm.call_timeout_ms < 100 {
            return Err(invalid(
                "hsm",
                "call_timeout_ms must be at least 100 (a slow signature is not a hung one)",
            ));
        }
        if self.trust.anchors.is_empty() {
            return Err(invalid("trust.anchors", "at least one trusted CA certificate is needed"));
        }
        if self.server.cores == Some(0) {
            return Err(invalid("server.cores", "must be at least 1"));
        }
        if let Some(t) =
            self.roles.trusted_cvrs.iter().find(|t| !matches!(t.endpoint.as_str(), "STS" | "NBO"))
        {
            return Err(invalid(
                "roles.trusted_cvrs",
                &format!("endpoint {:?} is neither STS nor NBO", t.endpoint),
            ));
        }
        if let Some(d) = self.roles.definitions.iter().find(|d| d.code.is_empty() || d.value.is_empty()) {
            return Err(invalid("roles.definitions", &format!("a role needs a code and a value: {d:?}")));
        }
        if self.sts.replay_cache_entries < 1024 {
            return Err(invalid("sts.replay_cache_entries", "must be at least 1024"));
        }
        self.replay.validate(self.server.deadline_ms).map_err(|(key, reason)| invalid(key, &reason))?;
        if self.server.deadline_ms < MIN_DEADLINE_MS {
            // Below this no request can be parsed, checked and signed in time: every admitted
            // one would be refused by the signer's deadline check, and admission, which learns
            // the core's rate from served requests, would never learn it.
            return Err(invalid("server.deadline_ms", &format!("must be at least {MIN_DEADLINE_MS}")));
        }
        let queue = (self.server.queue_target_ms, self.server.queue_interval_ms);
        if queue.0 == 0 || queue.0 >= self.server.deadline_ms {
            return Err(invalid("server.queue_target_ms", "must be at least 1 and below server.deadline_ms"));
        }
        // The interval has no upper bound (a short deadline with the default interval is
        // fine): until overload is seen, the signer's deadline check bounds the waits.
        if queue.1 < queue.0 {
            return Err(invalid("server.queue_interval_ms", "must be at least server.queue_target_ms"));
        }
        self.sosi2oiosaml.validate().map_err(|reason| invalid("sosi2oiosaml.audience", &reason))?;
        self.bst2sosi.validate().map_err(|reason| invalid("bst2sosi", &reason))?;
        self.oiosaml2sosi.validate().map_err(|reason| invalid("oiosaml2sosi", &reason))?;
        self.idws.validate().map_err(|reason| invalid("idws", &reason))?;
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}

/// Whether `s` is an XML NCName (ASCII subset: segl's own names never need more).
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:0"
        [hsm]
        module = "/usr/lib/softhsm/libsofthsm2.so"
        token_label = "t"
        key_label = "k"
        pin_file = "pin"
        path_env = { SOFTHSM2_CONF = "../state/softhsm2.conf" }
        [sts]
        issuer = "SEGL-TEST"
        [trust]
        anchors = ["ca.pem", "/abs/ca.pem"]
        [audit]
        path = "audit.jsonl"
    "#;

    #[test]
    fn relative_paths_follow_the_file() {
        let c = Config::from_toml(MINIMAL, Path::new("/etc/segl/segl.toml")).unwrap();
        assert_eq!(c.hsm.pin_file.unwrap(), Path::new("/etc/segl/pin"));
        assert_eq!(c.trust.anchors[0], Path::new("/etc/segl/ca.pem"));
        assert_eq!(c.trust.anchors[1], Path::new("/abs/ca.pem"));
        assert_eq!(c.hsm.path_env["SOFTHSM2_CONF"], Path::new("/etc/segl/../state/softhsm2.conf"));
        assert_eq!(c.server.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn jwt_issuers_key_files_follow_the_file_and_unsafe_algorithms_are_refused() {
        let issuer = "[[idws.jwt_issuer]]\nissuer = \"https://oidc.example/realms/x\"\n\
                      jwks = [\"keys/x.jwks.json\"]\nkey = [{ kid = \"k\", certificate = \"/abs/k.pem\" }]\n";
        let c = Config::from_toml(&format!("{MINIMAL}\n{issuer}"), Path::new("/etc/segl/segl.toml")).unwrap();
        assert_eq!(c.idws.jwt_issuer[0].jwks[0], Path::new("/etc/segl/keys/x.jwks.json"));
        assert_eq!(c.idws.jwt_issuer[0].key[0].certificate, Path::new("/abs/k.pem"));
        assert_eq!(c.idws.jwt_issuer[0].algorithms, ["RS256", "PS256", "ES256"]);
        for alg in ["none", "HS256"] {
            let bad = format!("{MINIMAL}\n{issuer}algorithms = [\"RS256\", \"{alg}\"]\n");
            let err = Config::from_toml(&bad, Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains("idws") && err.contains(alg), "{err}");
        }
    }

    #[test]
    fn citizen_issuers_and_audiences_are_checked_when_read() {
        let good = "[[idws.issuer]]\nissuer = \"https://idp.example\"\ntoken_profile = \"OIO3BST_CITIZEN\"\n\
                    allowed_audience = \"https://bootstrap.sts.nspop.dk/\"\nsigning_certificates = [\"idp.pem\"]\n\
                    [[idws.audience]]\naudience = \"https://fmk\"\njwt = true\n";
        let c = Config::from_toml(&format!("{MINIMAL}\n{good}"), Path::new("/etc/segl/segl.toml")).unwrap();
        assert_eq!(c.idws.issuer[0].signing_certificates[0], Path::new("/etc/segl/idp.pem"));
        assert_eq!(c.idws.audience[0].token_lifetime_secs, 8 * 3600);
        let refused = |edit: &dyn Fn(&str) -> String, expected: &str| {
            let text = format!("{MINIMAL}\n{}", edit(good));
            let err = Config::from_toml(&text, Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains("idws") && err.contains(expected), "{expected}: {err}");
        };
        refused(&|t| t.replace("OIO3BST_CITIZEN", "OIOH3BST"), "professional's profile");
        refused(
            &|t| t.replace("allowed_audience = \"https://bootstrap.sts.nspop.dk/\"\n", ""),
            "allowed_audience",
        );
        refused(
            &|t| t.replace("[[idws.audience]]", "clients = [{ comment = \"nobody\" }]\n[[idws.audience]]"),
            "subject_serial or subject_dn",
        );
        refused(&|t| format!("{t}[[idws.audience]]\naudience = \"https://fmk\"\n"), "configured twice");
        refused(&|t| t.replace("jwt = true", "token_lifetime_secs = 5"), "at least 10");
        // A citizen profile among BST2SOSI's issuers is refused there.
        let bst = good
            .replace("[[idws.issuer]]", "[[bst2sosi.issuer]]")
            .replace("allowed_audience = \"https://bootstrap.sts.nspop.dk/\"\n", "");
        let err =
            Config::from_toml(&format!("{MINIMAL}\n{bst}"), Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("citizen's profile"), "{err}");
    }

    #[test]
    fn issuer_must_be_an_ncname() {
        let bad = MINIMAL.replace("SEGL-TEST", "SEGL TEST");
        let err = Config::from_toml(&bad, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("sts.issuer"), "{err}");
    }

    #[test]
    fn the_overload_queue_target_fits_inside_the_deadline_and_the_interval_holds_it() {
        let parsed = Config::from_toml(MINIMAL, Path::new("x.toml")).unwrap().server;
        assert_eq!((parsed.queue_target_ms, parsed.queue_interval_ms), (5, 20));
        for (bad, field) in [
            ("queue_target_ms = 0", "server.queue_target_ms"),
            ("queue_target_ms = 200", "server.queue_target_ms"),
            ("queue_target_ms = 10\nqueue_interval_ms = 5", "server.queue_interval_ms"),
        ] {
            let text = MINIMAL.replace("[server]", &format!("[server]\n{bad}"));
            let err = Config::from_toml(&text, Path::new("x.toml")).unwrap_err();
            assert!(err.to_string().contains(field), "{bad}: {err}");
        }
        let ok = MINIMAL.replace("[server]", "[server]\nqueue_target_ms = 2\nqueue_interval_ms = 500");
        let parsed = Config::from_toml(&ok, Path::new("x.toml")).unwrap().server;
        assert_eq!((parsed.queue_target_ms, parsed.queue_interval_ms), (2, 500));
    }

    #[test]
    fn a_deadline_too_short_to_sign_in_is_refused() {
        let bad = MINIMAL.replace("[server]", "[server]\ndeadline_ms = 9");
        let err = Config::from_toml(&bad, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("server.deadline_ms"), "{err}");
        let ok = MINIMAL.replace("[server]", "[server]\ndeadline_ms = 10");
        assert_eq!(Config::from_toml(&ok, Path::new("x.toml")).unwrap().server.deadline_ms, 10);
    }

    #[test]
    fn the_audit_log_and_the_key_audit_trail_are_different_files() {
        let bad = MINIMAL.replace("path = \"audit.jsonl\"", "path = \"key-audit.jsonl\"");
        let err = Config::from_toml(&bad, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("audit.path"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = MINIMAL.replace("[sts]", "[sts]\nisuer = \"typo\"");
        assert!(matches!(Config::from_toml(&bad, Path::new("x.toml")), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn hsm_uri_fills_token_key_module_and_pin() {
        let text = MINIMAL
            .replace("module = \"/usr/lib/softhsm/libsofthsm2.so\"\n", "")
            .replace("token_label = \"t\"\n", "")
            .replace("key_label = \"k\"\n", "")
            .replace("pin_file = \"pin\"\n", "")
            .replace(
                "[hsm]",
                "[hsm]\nuri = \"pkcs11:serial=0123;object=sts-2026;id=%0a%ff?module-path=/opt/hsm.so&pin-source=file:pin\"\nsigner = \"pipelined\"",
            );
        let c = Config::from_toml(&text, Path::new("/etc/segl/segl.toml")).unwrap();
        assert_eq!(c.hsm.token_serial.as_deref(), Some("0123"));
        assert_eq!(c.hsm.token_selector().label, None);
        assert_eq!(c.hsm.key_label, "sts-2026");
        assert_eq!(c.hsm.key_id.as_deref(), Some("0aff"));
        assert_eq!(c.hsm.module, Path::new("/opt/hsm.so"));
        assert_eq!(c.hsm.pin_file.as_deref(), Some(Path::new("/etc/segl/pin")));
        assert_eq!(c.hsm.signer, SignerModeConfig::Pipelined);
        let clash = MINIMAL.replace("[hsm]", "[hsm]\nuri = \"pkcs11:token=other\"");
        let err = Config::from_toml(&clash, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("hsm.uri"), "{err}");
        let pin_value = MINIMAL.replace("[hsm]", "[hsm]\nuri = \"pkcs11:token=t?pin-value=9999\"");
        let err = Config::from_toml(&pin_value, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("pin-value") && !err.contains("9999"), "{err}");
    }

    #[test]
    fn shipped_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/segl.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert!(c.dev.is_some());
    }
}
