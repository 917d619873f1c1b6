//! OIOSaml2Sosi: NSP's `nboConfiguration` bean (configuration guide): the card's timing, the
//! drift allowed on the NemLog-in assertion, the identity providers trusted to sign it (NSP's
//! `trustedVault` key store) and those whose CPR is taken without a CVR/RID lookup
//! (`cprTrustCertificates`).

use std::path::PathBuf;

use serde::Deserialize;

/// The OIOSaml2Sosi exchange.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OioSaml2SosiConfig {
    /// `fuzzyTime`: how far back the issued card's validity starts.
    #[serde(default = "default_fuzzy_time")]
    pub fuzzy_time_ms: u64,
    /// `idCardDuration`: how long the issued card is valid (at most 24 h).
    #[serde(default = "default_card_duration")]
    pub id_card_duration_ms: u64,
    /// `allowedDriftInSeconds`: tolerance on the assertion's NotBefore/NotOnOrAfter.
    #[serde(default = "default_drift")]
    pub allowed_drift_secs: u64,
    /// `trustedVault`: PEM certificates of the identity providers (NemLog-in) whose assertions
    /// are exchanged.
    #[serde(default)]
    pub trusted_idps: Vec<PathBuf>,
    /// `cprTrustCertificates`: subject serialNumbers of identity providers whose CPR is taken as
    /// sent (for the others, the CPR is the one the CVR/RID register gives, and a different CPR
    /// in the assertion is refused).
    #[serde(default)]
    pub cpr_trust_certificates: Vec<String>,
}

impl Default for OioSaml2SosiConfig {
    fn default() -> Self {
        OioSaml2SosiConfig {
            fuzzy_time_ms: default_fuzzy_time(),
            id_card_duration_ms: default_card_duration(),
            allowed_drift_secs: default_drift(),
            trusted_idps: Vec::new(),
            cpr_trust_certificates: Vec::new(),
        }
    }
}

fn default_fuzzy_time() -> u64 {
    5 * 60 * 1000
}
fn default_card_duration() -> u64 {
    24 * 3600 * 1000
}
fn default_drift() -> u64 {
    300
}

impl OioSaml2SosiConfig {
    /// Checks what a file alone can tell.
    pub fn validate(&self) -> Result<(), String> {
        if self.id_card_duration_ms == 0 || self.id_card_duration_ms > 24 * 3600 * 1000 {
            return Err(
                "id_card_duration_ms must be between 1 and 86400000 (DGWS cards live at most 24 h)".into()
            );
        }
        Ok(())
    }
}
