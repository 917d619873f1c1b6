//! The key set a server works with, read from the token: the active credential, and the
//! certificates it publishes so relying parties can trust the next key before it signs and
//! still verify tokens signed by a recently retired one.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use segl_pkcs11::{KeyInventory, KeyState, TokenSession};
use serde::Serialize;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{certificate_modulus, strip_zeros, SigningError, StsCredential};
use crate::config::HsmConfig;

/// The active credential and what is published.
pub struct KeySet {
    /// The key new requests sign with.
    pub active: Arc<StsCredential>,
    /// The published certificates.
    pub published: Published,
}

/// The document served at `GET /sts/metadata/certificates`, rendered once per inventory change.
#[derive(Debug, Clone)]
pub struct Published {
    /// Inventory generation it was built from (0 without an inventory).
    pub generation: u64,
    /// The JSON body.
    pub json: Arc<[u8]>,
    /// The published certificates (DER): a token carrying one of them was issued by this STS.
    pub certificates: Arc<[Vec<u8>]>,
}

/// One published certificate.
#[derive(Debug, Serialize)]
pub struct PublishedCertificate {
    /// `active`, `next` or `retired` (signing), or `encryption` (the key tokens are encrypted to).
    pub state: &'static str,
    /// Key (and certificate) label on the token.
    pub label: String,
    /// When the key entered this state (RFC 3339), when known.
    pub since: Option<String>,
    /// Subject DN (RFC 4514 as x509-parser renders it).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Validity start (RFC 3339).
    pub not_before: String,
    /// Validity end (RFC 3339).
    pub not_after: String,
    /// SHA-256 of the DER certificate, hex (for pinning).
    pub sha256: String,
    /// The DER certificate, base64.
    pub certificate: String,
}

#[derive(Serialize)]
struct MetadataDocument<'a> {
    generation: u64,
    certificates: &'a [PublishedCertificate],
}

impl KeySet {
    /// Reads the inventory (or, on a token without one, takes the configured `key_label` as
    /// the active key) and checks the active key's certificate.
    pub fn load(session: &TokenSession, cfg: &HsmConfig) -> Result<KeySet, SigningError> {
        let inventory = session.read_inventory()?;
        let active_label = inventory
            .as_ref()
            .and_then(KeyInventory::active)
            .map(|e| Ok(e.label.clone()))
            .unwrap_or_else(|| configured_key_label(session, cfg))?;
        let active = Arc::new(credential_for(session, &active_label, &cfg.token_label)?);
        let published = publish(
            session,
            inventory.as_ref(),
            &active,
            cfg.publish_retired_hours,
            cfg.decryption_key.as_deref(),
        )?;
        Ok(KeySet { active, published })
    }
}

/// The configured signing key's label: `key_label`, or the label of the private key whose
/// CKA_ID is `key_id`. This key is the active one while the token has no inventory.
pub fn configured_key_label(session: &TokenSession, cfg: &HsmConfig) -> Result<String, SigningError> {
    if !cfg.key_label.is_empty() {
        return Ok(cfg.key_label.clone());
    }
    let id = cfg.key_id.as_deref().and_then(segl_pkcs11::hex_decode).unwrap_or_default();
    session.private_keys()?.into_iter().find(|(_, key_id)| *key_id == id).map(|(label, _)| label).ok_or_else(
        || {
            SigningError::Hsm(segl_pkcs11::Pkcs11Error::KeyNotFound {
                label: format!("with id {}", cfg.key_id.as_deref().unwrap_or_default()),
                token: cfg.token_label.clone(),
            })
        },
    )
}

/// The credential of the key labelled `label`: its certificate, checked to certify that key.
pub fn credential_for(
    session: &TokenSession,
    label: &str,
    token: &str,
) -> Result<StsCredential, SigningError> {
    let der = session
        .certificate(label)?
        .ok_or_else(|| SigningError::NoCertificate { token: token.to_owned(), label: label.to_owned() })?;
    let public_key = session.public_key(label)?;
    if certificate_modulus(&der, label)? != strip_zeros(&public_key.modulus) {
        return Err(SigningError::CertificateMismatch { label: label.to_owned() });
    }
    Ok(StsCredential { key_label: Arc::from(label), certificate_b64: B64.encode(&der), certificate_der: der })
}

fn publish(
    session: &TokenSession,
    inventory: Option<&KeyInventory>,
    active: &StsCredential,
    retired_hours: u64,
    decryption_key: Option<&str>,
) -> Result<Published, SigningError> {
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let mut certificates = Vec::new();
    let mut ders = Vec::new();
    match inventory {
        None => {
            certificates.push(describe("active", &active.key_label, None, &active.certificate_der)?);
            ders.push(active.certificate_der.clone());
        }
        Some(inv) => {
            for entry in &inv.entries {
                let keep = match entry.state {
                    KeyState::Active | KeyState::Next => true,
                    KeyState::Retired => now.saturating_sub(entry.since) <= retired_hours * 3600,
                };
                if !keep {
                    continue;
                }
                // A next key without its certificate yet has nothing to publish.
                let Some(der) = session.certificate(&entry.label)? else { continue };
                certificates.push(describe(entry.state.as_str(), &entry.label, Some(entry.since), &der)?);
                ders.push(der);
            }
        }
    }
    // Issuers encrypt tokens for the STS to this certificate. It is not a signing certificate:
    // it stays out of `ders`, so nothing it might have signed is taken for the STS's own.
    if let Some(label) = decryption_key {
        if let Some(der) = session.certificate(label)? {
            certificates.push(describe("encryption", label, None, &der)?);
        }
    }
    let generation = inventory.map(|i| i.generation).unwrap_or(0);
    let json = serde_json::to_vec_pretty(&MetadataDocument { generation, certificates: &certificates })
        .map_err(|e| SigningError::BadCertificate { label: "metadata".into(), reason: e.to_string() })?;
    Ok(Published { generation, json: json.into(), certificates: ders.into() })
}

/// The published description of one certificate.
pub fn describe(
    state: &'static str,
    label: &str,
    since: Option<u64>,
    der: &[u8],
) -> Result<PublishedCertificate, SigningError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| SigningError::BadCertificate { label: label.to_owned(), reason: e.to_string() })?;
    let rfc3339 = |secs: i64| jiff::Timestamp::from_second(secs).map(|t| t.to_string()).unwrap_or_default();
    Ok(PublishedCertificate {
        state,
        label: label.to_owned(),
        since: since.and_then(|s| i64::try_from(s).ok()).map(rfc3339),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: rfc3339(cert.validity().not_before.timestamp()),
        not_after: rfc3339(cert.validity().not_after.timestamp()),
        sha256: segl_pkcs11::hex_encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
        certificate: B64.encode(der),
    })
}
