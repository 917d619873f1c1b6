//! The citizen exchanges (Bst2Idws, JWT2Idws, JWT2OIOSaml; spec §2.6–§2.8, addendum §3.1):
//! NSP's `audienceConfiguration` table (one `[[idws.audience]]` per service an identity token
//! may be aimed at, with its JWT switch), the citizen bootstrap issuers
//! (`[[idws.issuer]]`, trustedIdpConfiguration rows with their allowed audience) and the
//! trusted JWT issuers (`[[idws.jwt_issuer]]`).

use std::path::PathBuf;

use serde::Deserialize;

use super::audience::{default_content_encryption, default_key_transport};
use super::jwt::JwtIssuerConfig;
use super::TrustedIdpConfig;
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::enc::{ContentEncryption, KeyTransport};

/// The citizen exchanges.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdwsConfig {
    /// Tolerance on a bootstrap token's NotBefore/NotOnOrAfter.
    #[serde(default = "default_drift")]
    pub allowed_drift_secs: u64,
    /// Only whitelisted client certificates may present an issuer's tokens.
    #[serde(default = "default_true")]
    pub whitelist_validation: bool,
    /// The audiences (audienceConfiguration rows).
    #[serde(default)]
    pub audience: Vec<IdwsAudienceConfig>,
    /// The citizen bootstrap-token issuers.
    #[serde(default)]
    pub issuer: Vec<TrustedIdpConfig>,
    /// The JWT issuers.
    #[serde(default)]
    pub jwt_issuer: Vec<JwtIssuerConfig>,
}

impl Default for IdwsConfig {
    fn default() -> Self {
        IdwsConfig {
            allowed_drift_secs: default_drift(),
            whitelist_validation: true,
            audience: Vec::new(),
            issuer: Vec::new(),
            jwt_issuer: Vec::new(),
        }
    }
}

/// One audienceConfiguration row.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdwsAudienceConfig {
    /// The service's audience URI, matched exactly against `wsp:AppliesTo`.
    pub audience: String,
    /// How long an issued token lives (it never outlives the token it was exchanged for).
    #[serde(default = "default_lifetime")]
    pub token_lifetime_secs: u64,
    /// How far back the token's NotBefore lies, against clock skew at the service.
    #[serde(default = "default_backdate")]
    pub not_before_backdate_secs: u64,
    /// Whether JWTs may be exchanged for this audience (NSP's "JWT support").
    #[serde(default)]
    pub jwt: bool,
    /// PEM certificate of the audience's encryption key: identity tokens are then encrypted
    /// to it, and JWT2OIOSaml (whose assertions are always encrypted) may serve it.
    #[serde(default)]
    pub encryption_certificate: Option<PathBuf>,
    /// Where the service receives OIOSAML assertions (JWT2OIOSaml's
    /// `SubjectConfirmationData/@Recipient`); default: the audience URI.
    #[serde(default)]
    pub recipient_url: Option<String>,
    /// How issued tokens are signed: `rsa-sha1` (default: seal's SIG-ASSERTION, what the STS's
    /// other output uses) or `rsa-sha256`, for services whose XML-DSig validation refuses SHA-1
    /// (Java's secure validation does).
    #[serde(default = "default_signature")]
    pub signature_algorithm: SignatureAlgorithm,
    /// Content encryption; the default is what unsealed decrypts (aes128-cbc).
    #[serde(default = "default_content_encryption")]
    pub content_encryption: ContentEncryption,
    /// Key transport; the default is what unsealed decrypts (rsa-1_5).
    #[serde(default = "default_key_transport")]
    pub key_transport: KeyTransport,
}

fn default_drift() -> u64 {
    300
}
fn default_true() -> bool {
    true
}
/// OIO IDWS identity tokens commonly live a working day; NSP's value is not published (OQ5).
fn default_lifetime() -> u64 {
    8 * 3600
}
fn default_signature() -> SignatureAlgorithm {
    SignatureAlgorithm::RsaSha1
}
fn default_backdate() -> u64 {
    5 * 60
}

impl IdwsConfig {
    /// Checks what a file alone can tell.
    pub fn validate(&self) -> Result<(), String> {
        super::audience::check_audience_uris(self.audience.iter().map(|a| a.audience.as_str()))?;
        for a in &self.audience {
            if a.token_lifetime_secs < 10 {
                return Err(format!("audience {:?}: token_lifetime_secs must be at least 10", a.audience));
            }
        }
        super::bst2sosi::validate_issuers(&self.issuer, true)?;
        let mut seen = std::collections::BTreeSet::new();
        for j in &self.jwt_issuer {
            if !seen.insert(j.issuer.as_str()) {
                return Err(format!("jwt_issuer {:?} is configured twice", j.issuer));
            }
            j.validate().map_err(|e| e.to_string())?;
            for entry in &j.clients {
                entry.validate().map_err(|e| format!("jwt_issuer {:?}: {e}", j.issuer))?;
            }
        }
        Ok(())
    }
}
