//! The audiences as a running policy uses them: Sosi2OIOSaml's (iboConfig) and the citizen
//! exchanges' (audienceConfiguration), each configured row with its encryption certificate
//! read and checked at load (a reload with a bad certificate is refused whole, and the old
//! audiences keep serving).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::config::{IboAudienceConfig, IdwsAudienceConfig, IdwsConfig, Sosi2OioSamlConfig};
use crate::xml::enc::RecipientKey;

/// Why an audience could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    /// The certificate file could not be read or holds no certificate.
    #[error("audience {audience:?}: certificate {path}: {reason}")]
    Certificate { audience: String, path: std::path::PathBuf, reason: String },
}

/// One Sosi2OIOSaml audience, ready to encrypt to.
#[derive(Debug)]
pub struct Audience {
    /// Its configuration row.
    pub config: IboAudienceConfig,
    /// The public key of its encryption certificate, read once at load.
    pub recipient: RecipientKey,
}

/// One citizen-exchange audience.
#[derive(Debug)]
pub struct IdwsAudience {
    /// Its configuration row.
    pub config: IdwsAudienceConfig,
    /// The public key of its encryption certificate, when it has one.
    pub recipient: Option<RecipientKey>,
}

/// Audiences by their URI.
#[derive(Debug)]
pub struct AudienceRegister<A> {
    by_uri: HashMap<String, Arc<A>>,
}

impl<A> Default for AudienceRegister<A> {
    fn default() -> Self {
        AudienceRegister { by_uri: HashMap::new() }
    }
}

impl<A> AudienceRegister<A> {
    /// The audience `uri` names exactly, if configured.
    pub fn get(&self, uri: &str) -> Option<&Arc<A>> {
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

/// Reads the RSA public key of an audience's encryption certificate.
fn recipient_key(audience: &str, path: &Path) -> Result<RecipientKey, AudienceError> {
    let fail = |reason: String| AudienceError::Certificate {
        audience: audience.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let der = crate::signing::keys::read_certificate_file(path).map_err(|e| fail(e.to_string()))?;
    RecipientKey::from_certificate_der(&der)
        .map_err(|e| fail(format!("{e} (key transport needs an RSA certificate)")))
}

impl AudienceRegister<Audience> {
    /// Loads every Sosi2OIOSaml audience's certificate.
    pub fn from_config(config: &Sosi2OioSamlConfig) -> Result<Self, AudienceError> {
        let mut by_uri = HashMap::new();
        for row in &config.audience {
            let recipient = recipient_key(&row.audience, &row.certificate)?;
            by_uri.insert(row.audience.clone(), Arc::new(Audience { config: row.clone(), recipient }));
        }
        Ok(AudienceRegister { by_uri })
    }
}

impl AudienceRegister<IdwsAudience> {
    /// Loads every citizen-exchange audience, with its certificate when it has one.
    pub fn from_idws_config(config: &IdwsConfig) -> Result<Self, AudienceError> {
        let mut by_uri = HashMap::new();
        for row in &config.audience {
            let recipient = match &row.encryption_certificate {
                Some(path) => Some(recipient_key(&row.audience, path)?),
                None => None,
            };
            by_uri.insert(row.audience.clone(), Arc::new(IdwsAudience { config: row.clone(), recipient }));
        }
        Ok(AudienceRegister { by_uri })
    }
}
