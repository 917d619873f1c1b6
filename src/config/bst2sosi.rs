//! BST2SOSI: the request handler's settings (NSP's `BST2SOSIRequestHandler` bean) and the
//! bootstrap-token issuers it trusts (NSP's `sts_audconf.trustedIdpConfiguration`, one
//! `[[bst2sosi.issuer]]` per issuer).

use std::path::PathBuf;

use serde::Deserialize;

use crate::token::bootstrap::TokenProfile;

/// The BST2SOSI exchange.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bst2SosiConfig {
    /// `allowedAudience`: the audience a bootstrap token must name.
    #[serde(default = "default_allowed_audience")]
    pub allowed_audience: String,
    /// `allowedDriftInSeconds`: tolerance on the token's NotBefore/NotOnOrAfter.
    #[serde(default = "default_drift")]
    pub allowed_drift_secs: u64,
    /// `fuzzyTime`: how far back the issued card's validity starts.
    #[serde(default = "default_fuzzy_time")]
    pub fuzzy_time_ms: u64,
    /// `idCardDuration`: how long the issued card is valid (at most 24 h, DGWS).
    #[serde(default = "default_card_duration")]
    pub id_card_duration_ms: u64,
    /// `whitelistValidation`: only whitelisted client certificates may call.
    #[serde(default = "default_true")]
    pub whitelist_validation: bool,
    /// The trusted issuers.
    #[serde(default)]
    pub issuer: Vec<TrustedIdpConfig>,
}

impl Default for Bst2SosiConfig {
    fn default() -> Self {
        Bst2SosiConfig {
            allowed_audience: default_allowed_audience(),
            allowed_drift_secs: default_drift(),
            fuzzy_time_ms: default_fuzzy_time(),
            id_card_duration_ms: default_card_duration(),
            whitelist_validation: true,
            issuer: Vec::new(),
        }
    }
}

/// One trusted bootstrap-token issuer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIdpConfig {
    /// `issuer`: the token's `saml:Issuer`.
    pub issuer: String,
    /// `tokenProfile`: OIOH3BST, OIOH2BST or OIO3BST.
    pub token_profile: TokenProfile,
    /// `allowedAudience` of a citizen issuer (Bst2Idws): the audience its tokens must name.
    /// BST2SOSI issuers share `bst2sosi.allowed_audience`.
    #[serde(default)]
    pub allowed_audience: Option<String>,
    /// `validateHOK`: the request must be signed with the token's holder-of-key certificate.
    #[serde(default = "default_true")]
    pub validate_hok: bool,
    /// `signingKey.*`: PEM certificates whose keys may sign this issuer's tokens.
    pub signing_certificates: Vec<PathBuf>,
    /// `certificate.*`: the client certificates allowed to present this issuer's tokens.
    #[serde(default)]
    pub clients: Vec<WhitelistEntry>,
}

/// A whitelisted client certificate: by subject serialNumber (NSP's `certificate.*` rows) or
/// by subject DN (RFC 1779, as the audit log writes it), which survives renewal.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WhitelistEntry {
    /// The subject's serialNumber, e.g. `CVR:20921897-UID:11223344`.
    #[serde(default)]
    pub subject_serial: Option<String>,
    /// The subject DN.
    #[serde(default)]
    pub subject_dn: Option<String>,
    /// Free text (NSP's `comment`).
    #[serde(default)]
    pub comment: Option<String>,
}

fn default_allowed_audience() -> String {
    "https://sts.sosi.dk/".into()
}
fn default_drift() -> u64 {
    300
}
fn default_fuzzy_time() -> u64 {
    5 * 60 * 1000
}
fn default_card_duration() -> u64 {
    24 * 3600 * 1000
}
fn default_true() -> bool {
    true
}

impl Bst2SosiConfig {
    /// Checks what a file alone can tell.
    pub fn validate(&self) -> Result<(), String> {
        if self.id_card_duration_ms == 0 || self.id_card_duration_ms > 24 * 3600 * 1000 {
            return Err(
                "id_card_duration_ms must be between 1 and 86400000 (DGWS cards live at most 24 h)".into()
            );
        }
        validate_issuers(&self.issuer, false)?;
        Ok(())
    }
}

/// Checks a list of trusted bootstrap issuers: each named once, with a signing certificate,
/// of the right family of profiles (`citizen`: Bst2Idws's, with an allowed audience each;
/// else BST2SOSI's), and whitelist entries that name something.
pub(super) fn validate_issuers(issuers: &[TrustedIdpConfig], citizen: bool) -> Result<(), String> {
    use crate::token::bootstrap::TokenProfile;
    let mut seen = std::collections::BTreeSet::new();
    for i in issuers {
        if !seen.insert(i.issuer.as_str()) {
            return Err(format!("issuer {:?} is configured twice", i.issuer));
        }
        if i.signing_certificates.is_empty() {
            return Err(format!("issuer {:?} needs at least one signing certificate", i.issuer));
        }
        match (citizen, i.token_profile.is_citizen()) {
            (false, true) => {
                return Err(format!(
                    "issuer {:?}: {} is a citizen's profile; citizen issuers go in [[idws.issuer]]",
                    i.issuer,
                    i.token_profile.name()
                ))
            }
            (true, false) => {
                return Err(format!(
                    "issuer {:?}: {} is a professional's profile; citizen issuers issue {}",
                    i.issuer,
                    i.token_profile.name(),
                    TokenProfile::CITIZEN.map(TokenProfile::name).join(", ")
                ))
            }
            _ => {}
        }
        if citizen && i.allowed_audience.as_deref().is_none_or(str::is_empty) {
            return Err(format!("issuer {:?} needs its allowed_audience", i.issuer));
        }
        for entry in &i.clients {
            entry.validate().map_err(|e| format!("issuer {:?}: {e}", i.issuer))?;
        }
    }
    Ok(())
}

impl WhitelistEntry {
    /// An entry must name a subject serialNumber or a DN.
    pub fn validate(&self) -> Result<(), String> {
        if self.subject_serial.is_none() && self.subject_dn.is_none() {
            return Err(format!("a client entry needs subject_serial or subject_dn ({self:?})"));
        }
        Ok(())
    }
}
