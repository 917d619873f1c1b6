//! The Sosi2OIOSaml audiences: NSP's `sts_audconf.iboConfig` table (configuration guide,
//! `seeds/002_*`), one `[[sosi2oiosaml.audience]]` per service provider that may receive an
//! OIOSAML assertion made from an ID card.

use std::path::PathBuf;

use serde::Deserialize;

use crate::xml::enc::{ContentEncryption, KeyTransport};

/// The Sosi2OIOSaml exchange.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sosi2OioSamlConfig {
    /// The audiences (iboConfig rows).
    #[serde(default)]
    pub audience: Vec<IboAudienceConfig>,
}

/// One iboConfig row. Offsets are milliseconds from the moment of the exchange, as the NSP
/// table stores them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IboAudienceConfig {
    /// `audience`: the service provider's entity ID, matched exactly against the request's
    /// `wsp:AppliesTo` address and written as the assertion's `saml:Audience`.
    pub audience: String,
    /// `publicKey`: PEM certificate of the audience's encryption key.
    pub certificate: PathBuf,
    /// `recipientURL`: where the service provider receives assertions
    /// (`SubjectConfirmationData/@Recipient`).
    pub recipient_url: String,
    /// `includeBST`: put the presented ID card in the assertion as a DiscoveryEPR bootstrap.
    #[serde(default)]
    pub include_bst: bool,
    /// `deliveryNotOnOrAfterOffset`: `SubjectConfirmationData/@NotOnOrAfter`.
    #[serde(default = "default_delivery_offset")]
    pub delivery_not_on_or_after_offset_ms: i64,
    /// `notBeforeOffset`: `Conditions/@NotBefore` (negative: backdated against clock skew).
    #[serde(default = "default_not_before_offset")]
    pub not_before_offset_ms: i64,
    /// `notOnOrAfterOffset`: `Conditions/@NotOnOrAfter`.
    #[serde(default = "default_not_on_or_after_offset")]
    pub not_on_or_after_offset_ms: i64,
    /// `idCardMaxAgeMins`: the oldest ID card (by IssueInstant) accepted for this audience.
    #[serde(default = "default_id_card_max_age")]
    pub id_card_max_age_mins: u32,
    /// Content encryption; the default is what unsealed decrypts (aes128-cbc).
    #[serde(default = "default_content_encryption")]
    pub content_encryption: ContentEncryption,
    /// Key transport; the default is what unsealed decrypts (rsa-1_5).
    #[serde(default = "default_key_transport")]
    pub key_transport: KeyTransport,
}

fn default_delivery_offset() -> i64 {
    5 * 60 * 1000
}
/// TEST1 answered with Lifetime/Created = now − 5 min (spec §2.3).
fn default_not_before_offset() -> i64 {
    -5 * 60 * 1000
}
/// TEST1 answered with Lifetime/Expires = now + 12 h (spec §2.3).
fn default_not_on_or_after_offset() -> i64 {
    12 * 3600 * 1000
}
/// The NSP's default (configuration guide).
fn default_id_card_max_age() -> u32 {
    1440
}
pub(super) fn default_content_encryption() -> ContentEncryption {
    ContentEncryption::Aes128Cbc
}
pub(super) fn default_key_transport() -> KeyTransport {
    KeyTransport::Rsa1_5
}

/// Every audience has its URI, and no URI is configured twice.
pub(super) fn check_audience_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for uri in uris {
        if uri.is_empty() {
            return Err("an audience needs its audience URI".into());
        }
        if !seen.insert(uri) {
            return Err(format!("audience {uri:?} is configured twice"));
        }
    }
    Ok(())
}

impl Sosi2OioSamlConfig {
    /// Checks what a file alone can tell: unique audiences, a window that ends after it starts.
    pub fn validate(&self) -> Result<(), String> {
        check_audience_uris(self.audience.iter().map(|a| a.audience.as_str()))?;
        for a in &self.audience {
            if a.not_on_or_after_offset_ms <= a.not_before_offset_ms {
                return Err(format!(
                    "audience {:?}: not_on_or_after_offset_ms must be after not_before_offset_ms",
                    a.audience
                ));
            }
            if a.delivery_not_on_or_after_offset_ms <= 0 {
                return Err(format!(
                    "audience {:?}: delivery_not_on_or_after_offset_ms must be positive (an assertion \
                     delivered at once would already be late)",
                    a.audience
                ));
            }
        }
        Ok(())
    }
}
