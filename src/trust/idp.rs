//! The bootstrap-token issuers BST2SOSI and Bst2Idws trust (NSP's `trustedIdpConfiguration`), with their
//! signing certificates read at load and their client whitelists.

use std::collections::HashMap;
use std::path::PathBuf;

use super::SignerCertificate;
use crate::config::{TrustedIdpConfig, WhitelistEntry};
use crate::token::bootstrap::TokenProfile;

/// Why the trusted issuers could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdpConfigError {
    /// A signing certificate could not be read.
    #[error("issuer {issuer:?}: signing certificate {path}: {reason}")]
    Certificate { issuer: String, path: PathBuf, reason: String },
}

/// One trusted issuer.
#[derive(Debug)]
pub struct TrustedIdp {
    /// Its configuration.
    pub config: TrustedIdpConfig,
    /// DER of the certificates whose keys may sign its tokens.
    pub signing_certificates: Vec<Vec<u8>>,
}

impl TrustedIdp {
    /// The token profile this issuer issues.
    pub fn profile(&self) -> TokenProfile {
        self.config.token_profile
    }

    /// Whether `client` is on this issuer's whitelist (by subject serialNumber or DN).
    pub fn whitelists(&self, client: &SignerCertificate) -> bool {
        self.config.clients.iter().any(|entry| matches(entry, client))
    }
}

/// Whether whitelist `entry` names `client` (by subject serialNumber or DN); the one matching
/// rule of every issuer's whitelist, bootstrap and JWT alike.
pub(crate) fn matches(entry: &WhitelistEntry, client: &SignerCertificate) -> bool {
    let by_serial =
        entry.subject_serial.as_deref().is_some_and(|s| client.subject_serial_number.as_deref() == Some(s));
    let by_dn = entry.subject_dn.as_deref().is_some_and(|dn| dn == client.subject_dn);
    by_serial || by_dn
}

/// The trusted issuers by `saml:Issuer`.
#[derive(Debug, Default)]
pub struct TrustedIdps {
    by_issuer: HashMap<String, TrustedIdp>,
}

impl TrustedIdps {
    /// Loads every issuer's signing certificates.
    pub fn from_config(issuers: &[TrustedIdpConfig]) -> Result<TrustedIdps, IdpConfigError> {
        let mut by_issuer = HashMap::new();
        for idp in issuers {
            let mut certificates = Vec::new();
            for path in &idp.signing_certificates {
                let der = crate::signing::keys::read_certificate_file(path).map_err(|e| {
                    IdpConfigError::Certificate {
                        issuer: idp.issuer.clone(),
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                certificates.push(der);
            }
            by_issuer.insert(
                idp.issuer.clone(),
                TrustedIdp { config: idp.clone(), signing_certificates: certificates },
            );
        }
        Ok(TrustedIdps { by_issuer })
    }

    /// Every issuer's signing certificates (DER).
    pub fn signing_certificates(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.by_issuer.values().flat_map(|idp| idp.signing_certificates.iter())
    }

    /// The issuer named exactly `issuer`, if trusted.
    pub fn get(&self, issuer: &str) -> Option<&TrustedIdp> {
        self.by_issuer.get(issuer)
    }
}

/// Reads PEM (or DER) certificates, naming `setting` in errors.
pub fn read_certificates(setting: &str, paths: &[PathBuf]) -> Result<Vec<Vec<u8>>, IdpConfigError> {
    paths
        .iter()
        .map(|path| {
            crate::signing::keys::read_certificate_file(path).map_err(|e| IdpConfigError::Certificate {
                issuer: setting.to_owned(),
                path: path.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}
