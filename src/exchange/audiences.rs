//! The Sosi2OIOSaml audiences as a running policy uses them: each configured row with its
//! encryption certificate read and checked at load (a reload with a bad certificate is refused
//! whole, and the old audiences keep serving).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{IboAudienceConfig, Sosi2OioSamlConfig};

/// Why an audience could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// The certificate file could not be read or holds no certificate.
    #[error("audience {audience:?}: certificate {path}: {reason}")]
    Certificate { audience: String, path: PathBuf, reason: String },
}

/// One audience, ready to encrypt to.
#[derive(Debug)]
pub struct Audience {
    /// Its configuration row.
    pub config: IboAudienceConfig,
    /// The public key of its encryption certificate, read once at load.
    pub recipient: crate::xml::enc::RecipientKey,
}

/// The audiences by their URI.
#[derive(Debug, Default)]
pub struct AudienceRegister {
    by_uri: HashMap<String, Arc<Audience>>,
}

impl AudienceRegister {
    /// Loads every configured audience's certificate.
    pub fn from_config(config: &Sosi2OioSamlConfig) -> Result<AudienceRegister, AudienceError> {
        let mut by_uri = HashMap::new();
        for row in &config.audience {
            let fail = |reason: String| AudienceError::Certificate {
                audience: row.audience.clone(),
                path: row.certificate.clone(),
                reason,
            };
            let der = crate::signing::keys::read_certificate_file(&row.certificate)
                .map_err(|e| fail(e.to_string()))?;
            let recipient = crate::xml::enc::RecipientKey::from_certificate_der(&der)
                .map_err(|e| fail(format!("{e} (key transport needs an RSA certificate)")))?;
            by_uri.insert(row.audience.clone(), Arc::new(Audience { config: row.clone(), recipient }));
        }
        Ok(AudienceRegister { by_uri })
    }

    /// The audience `uri` names exactly, if configured.
    pub fn get(&self, uri: &str) -> Option<&Arc<Audience>> {
        self.by_uri.get(uri)
    }

    /// How many audiences are configured.
    pub fn len(&self) -> usize {
        self.by_uri.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.by_uri.is_empty()
    }
}
