//! The signing-key life cycle, as `segl keys …` runs it against the same token the server
//! uses: generate (inside the HSM) → csr (signed inside the HSM) → import-cert (refused unless
//! it certifies the key) → activate (the previous active key becomes retired) → retire.
//!
//! States live in the token's key inventory (see `segl_pkcs11::KeyInventory`); a running
//! server picks up a change within `inventory_poll_ms`. A token without an inventory (as
//! `segl dev setup` leaves it) has one implicit active key, `[hsm] key_label`; the first
//! change writes the inventory with that key recorded as active. Every operation, refused or
//! not, appends a record to the audit log.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue};
use segl_pkcs11::{hex_encode, InventoryEntry, KeyInventory, KeyState, Pkcs11Error, Token, TokenSession};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::audit::{self, KeyAuditRecord};
use super::keyset::{configured_key_label, credential_for};
use super::token_key::TokenSigningKey;
use super::{certificate_modulus, open_token, strip_zeros, SigningError};
use crate::config::HsmConfig;

/// Why a key operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The token, a certificate or the key failed a check.
    #[error("{0}")]
    Signing(#[from] SigningError),
    /// The HSM failed.
    #[error("HSM: {0}")]
    Hsm(#[from] Pkcs11Error),
    /// No key pair with this label.
    #[error("no key labelled {0:?} on the token")]
    NoSuchKey(String),
    /// The operation does not apply to a key in this state.
    #[error("key {label:?} is {state}; {hint}")]
    WrongState { label: String, state: String, hint: &'static str },
    /// The certificate's validity does not include now.
    #[error("the certificate of {label:?} is not valid now ({not_before} – {not_after})")]
    NotValidNow { label: String, not_before: String, not_after: String },
    /// The certificate certifies a different public key.
    #[error("the certificate is not for key {0:?}: it certifies a different public key")]
    NotForKey(String),
    /// The key label is not usable.
    #[error("key label {0:?} is not usable: {1}")]
    BadLabel(String, &'static str),
    /// The requested subject or certificate input is not usable.
    #[error("{0}")]
    BadInput(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The audit record could not be written (the operation itself was done).
    #[error("the operation was done, but its audit record could not be written to {path}: {source}")]
    Audit { path: String, source: std::io::Error },
}

/// One key as `segl keys list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyListing {
    /// Label of the key pair (and certificate).
    pub label: String,
    /// CKA_ID, hex.
    pub id: String,
    /// Always `RSA` today.
    pub algorithm: &'static str,
    /// Modulus size.
    pub bits: usize,
    /// `next`, `active`, `retired`, or `unmanaged` (on the token but not in the inventory).
    pub state: String,
    /// When it entered its state (RFC 3339).
    pub since: Option<String>,
    /// Certificate subject, serial (hex) and notAfter, if a certificate is on the token.
    pub certificate: Option<CertificateSummary>,
}

/// The parts of a certificate an operator checks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CertificateSummary {
    /// Subject DN.
    pub subject: String,
    /// Serial number, hex.
    pub serial: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
}

/// Key operations on the configured token.
pub struct KeyManager {
    token: Token,
    config: HsmConfig,
}

impl KeyManager {
    /// Opens the configured token and logs in.
    pub fn open(config: &HsmConfig) -> Result<KeyManager, KeyError> {
        Ok(KeyManager { token: open_token(config)?, config: config.clone() })
    }

    /// Every key pair on the token with its state and certificate.
    pub fn list(&self) -> Result<Vec<KeyListing>, KeyError> {
        let session = self.token.session()?;
        let inventory = self.inventory(&session)?;
        let mut listed = Vec::new();
        for (label, id) in session.private_keys()? {
            let entry = inventory.get(&label);
            let bits = session.public_key(&label).map(|k| k.bits()).unwrap_or(0);
            let certificate = session.certificate(&label)?.and_then(|der| summary(&der));
            listed.push(KeyListing {
                id: hex_encode(&id),
                algorithm: "RSA",
                bits,
                state: entry.map(|e| e.state.to_string()).unwrap_or_else(|| "unmanaged".into()),
                since: entry.and_then(|e| rfc3339(e.since)),
                certificate,
                label,
            });
        }
        // Inventory order (oldest first), then keys the inventory does not know.
        let rank =
            |l: &KeyListing| inventory.entries.iter().position(|e| e.label == l.label).unwrap_or(usize::MAX);
        listed.sort_by_key(|l| (rank(l), l.label.clone()));
        Ok(listed)
    }

    /// Generates an RSA key pair inside the token (non-extractable, sensitive, sign-only) and
    /// records it as `next`.
    pub fn generate(&self, label: &str, bits: u32) -> Result<KeyListing, KeyError> {
        self.generate_for(label, bits, false)
    }

    /// Generates an RSA key pair for decryption inside the token (non-extractable, sensitive,
    /// decrypt-only): the key issuers encrypt tokens to (`hsm.decryption_key`). It is not a
    /// signing key: it stays out of the signing inventory and can never be activated.
    pub fn generate_decryption(&self, label: &str, bits: u32) -> Result<KeyListing, KeyError> {
        self.generate_for(label, bits, true)
    }

    /// A signing key (recorded as `next` in the inventory) or a decryption key (never in it).
    fn generate_for(&self, label: &str, bits: u32, decryption: bool) -> Result<KeyListing, KeyError> {
        let operation = if decryption { "generate-decryption" } else { "generate" };
        self.audited(operation, label, || {
            check_label(label)?;
            if !matches!(bits, 2048 | 3072 | 4096) {
                return Err(KeyError::BadInput(format!(
                    "RSA key size {bits} is not offered; use 2048, 3072 or 4096"
                )));
            }
            let session = self.token.session()?;
            let mut id = [0u8; 8];
            aws_lc_rs::rand::fill(&mut id)
                .map_err(|_| KeyError::BadInput("no randomness for the key id".into()))?;
            let (public, state) = if decryption {
                (session.generate_rsa_decryption_key(label, &id, bits)?, "decryption")
            } else {
                let mut inventory = self.inventory(&session)?;
                let public = session.generate_rsa_key(label, &id, bits)?;
                inventory.entries.push(InventoryEntry {
                    label: label.to_owned(),
                    id: id.to_vec(),
                    state: KeyState::Next,
                    since: now(),
                });
                session.write_inventory(&mut inventory)?;
                (public, "next")
            };
            let listing = KeyListing {
                label: label.to_owned(),
                id: hex_encode(&id),
                algorithm: "RSA",
                bits: public.bits(),
                state: state.into(),
                since: rfc3339(now()),
                certificate: None,
            };
            let kind = if decryption { "decryption key pair" } else { "key pair" };
            Ok((format!("RSA-{bits} {kind} generated, id {}", listing.id), listing))
        })
    }

    /// The key's public key as a PEM SubjectPublicKeyInfo: what a CA certifies for a decryption
    /// key, which cannot sign a certificate request of its own.
    pub fn public_key_pem(&self, label: &str) -> Result<String, KeyError> {
        self.audited("public-key", label, || {
            self.require_key(label)?;
            let public = self.token.session()?.public_key(label)?;
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(public.spki_der());
            let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap_or_default());
                pem.push('\n');
            }
            pem.push_str("-----END PUBLIC KEY-----\n");
            Ok(("public key exported".into(), pem))
        })
    }

    /// A PKCS#10 request for the key, signed inside the HSM (RSA-SHA256), PEM.
    /// `subject` is a comma-separated DN such as `C=DK,O=Org // CVR:12345678,CN=STS`.
    pub fn csr(&self, label: &str, subject: Option<&str>) -> Result<String, KeyError> {
        self.audited("csr", label, || {
            let dn = parse_dn(subject.unwrap_or(&format!("CN={label}")))?;
            self.require_key(label)?;
            let key = TokenSigningKey::open(&self.token, label)?;
            let mut params = CertificateParams::default();
            params.distinguished_name = dn;
            let csr = params
                .serialize_request(&key)
                .and_then(|r| r.pem())
                .map_err(|e| KeyError::BadInput(format!("cannot make the certificate request: {e}")))?;
            Ok((format!("PKCS#10 request for {:?}", subject.unwrap_or("CN=<label>")), csr))
        })
    }

    /// Stores `der` as the key's certificate, refusing one that does not certify the key.
    pub fn import_cert(&self, label: &str, der: &[u8]) -> Result<CertificateSummary, KeyError> {
        self.audited("import-cert", label, || {
            let session = self.token.session()?;
            let id = self.require_key(label)?;
            let public = session.public_key(label)?;
            if certificate_modulus(der, label)? != strip_zeros(&public.modulus) {
                return Err(KeyError::NotForKey(label.to_owned()));
            }
            let (_, cert) = X509Certificate::from_der(der).map_err(|e| SigningError::BadCertificate {
                label: label.to_owned(),
                reason: e.to_string(),
            })?;
            session.store_certificate_with_subject(label, &id, der, cert.subject().as_raw())?;
            // A decryption key's certificate is published from `hsm.decryption_key` at the next
            // start; the key never enters the signing inventory.
            if session.is_decryption_key(label)? {
                let s = summary(der).ok_or_else(|| KeyError::BadInput("certificate unreadable".into()))?;
                return Ok((format!("decryption certificate serial {} subject {}", s.serial, s.subject), s));
            }
            // Bump the inventory so running servers republish the certificate.
            let mut inventory = self.inventory(&session)?;
            if inventory.get(label).is_none() {
                inventory.entries.push(InventoryEntry {
                    label: label.to_owned(),
                    id,
                    state: KeyState::Next,
                    since: now(),
                });
            }
            session.write_inventory(&mut inventory)?;
            let s = summary(der).ok_or_else(|| KeyError::BadInput("certificate unreadable".into()))?;
            Ok((format!("certificate serial {} subject {} notAfter {}", s.serial, s.subject, s.not_after), s))
        })
    }

    /// Makes `label` the active key; the previously active key becomes retired. Only a `next`
    /// key whose certificate matches it and is valid now can be activated.
    pub fn activate(&self, label: &str) -> Result<Option<String>, KeyError> {
        self.audited("activate", label, || {
            let session = self.token.session()?;
            let mut inventory = self.inventory(&session)?;
            let state = inventory.get(label).map(|e| e.state);
            match state {
                None => return Err(self.missing_or_unmanaged(&session, label)?),
                Some(KeyState::Next) => {}
                Some(other) => {
                    return Err(KeyError::WrongState {
                        label: label.into(),
                        state: other.to_string(),
                        hint: "only a next key can be activated (generate a new key to roll forward)",
                    })
                }
            }
            let credential = credential_for(&session, label, self.token.label())?;
            check_valid_now(label, &credential.certificate_der)?;
            let stamp = now();
            let previous = inventory.active().map(|e| e.label.clone());
            for entry in &mut inventory.entries {
                if entry.state == KeyState::Active {
                    entry.state = KeyState::Retired;
                    entry.since = stamp;
                }
            }
            if let Some(entry) = inventory.get_mut(label) {
                entry.state = KeyState::Active;
                entry.since = stamp;
            }
            session.write_inventory(&mut inventory)?;
            let detail = match &previous {
                Some(p) => {
                    format!("active (was {p:?}, now retired); inventory generation {}", inventory.generation)
                }
                None => format!("active; inventory generation {}", inventory.generation),
            };
            Ok((detail, previous))
        })
    }

    /// Retires a `next` key (one that will not be used). The active key is retired only by
    /// activating its successor, so the STS always has a key to sign with.
    pub fn retire(&self, label: &str) -> Result<(), KeyError> {
        self.audited("retire", label, || {
            let session = self.token.session()?;
            let mut inventory = self.inventory(&session)?;
            let Some(entry) = inventory.get_mut(label) else {
                return Err(self.missing_or_unmanaged(&session, label)?);
            };
            match entry.state {
                KeyState::Next => {}
                KeyState::Active => {
                    return Err(KeyError::WrongState {
                        label: label.into(),
                        state: "active".into(),
                        hint: "activate its successor instead; that retires it without a moment with no signing key",
                    })
                }
                KeyState::Retired => {
                    return Err(KeyError::WrongState { label: label.into(), state: "retired".into(), hint: "nothing to do" })
                }
            }
            entry.state = KeyState::Retired;
            entry.since = now();
            session.write_inventory(&mut inventory)?;
            Ok(("retired".to_owned(), ()))
        })
    }

    /// The key's certificate, PEM.
    pub fn export_cert(&self, label: &str) -> Result<String, KeyError> {
        self.audited("export-cert", label, || {
            let der = self.token.session()?.certificate(label)?.ok_or_else(|| {
                SigningError::NoCertificate { token: self.token.label().to_owned(), label: label.to_owned() }
            })?;
            Ok(("exported".to_owned(), pem("CERTIFICATE", &der)))
        })
    }

    /// Runs `op`, then writes its audit record (`ok` with the detail `op` returned, or
    /// `refused` with the error).
    fn audited<T>(
        &self,
        operation: &str,
        key: &str,
        op: impl FnOnce() -> Result<(String, T), KeyError>,
    ) -> Result<T, KeyError> {
        let result = op();
        let (outcome, detail) = match &result {
            Ok((detail, _)) => ("ok", detail.clone()),
            Err(e) => ("refused", e.to_string()),
        };
        let record = KeyAuditRecord::new(operation, self.token.label(), key, outcome, detail);
        let path = &self.config.audit_log;
        audit::record(path, &record)
            .map_err(|source| KeyError::Audit { path: path.display().to_string(), source })?;
        result.map(|(_, value)| value)
    }

    /// The inventory, or on a token without one, the configured key as the active key.
    fn inventory(&self, session: &TokenSession) -> Result<KeyInventory, KeyError> {
        if let Some(inventory) = session.read_inventory()? {
            return Ok(inventory);
        }
        let mut inventory = KeyInventory::default();
        let configured = configured_key_label(session, &self.config).ok();
        if let Some((label, id)) =
            session.private_keys()?.into_iter().find(|(l, _)| Some(l) == configured.as_ref())
        {
            inventory.entries.push(InventoryEntry { label, id, state: KeyState::Active, since: now() });
        }
        Ok(inventory)
    }

    /// The CKA_ID of the key pair labelled `label`.
    fn require_key(&self, label: &str) -> Result<Vec<u8>, KeyError> {
        self.token
            .session()?
            .private_keys()?
            .into_iter()
            .find(|(l, _)| l == label)
            .map(|(_, id)| id)
            .ok_or_else(|| KeyError::NoSuchKey(label.to_owned()))
    }

    fn missing_or_unmanaged(&self, session: &TokenSession, label: &str) -> Result<KeyError, KeyError> {
        Ok(if session.has_key(label)? {
            KeyError::WrongState {
                label: label.into(),
                state: "not managed by segl".into(),
                hint: "import a certificate for it (segl keys import-cert) to make it a next key",
            }
        } else {
            KeyError::NoSuchKey(label.to_owned())
        })
    }
}

/// The file at `path` as DER: PEM (first certificate) or DER as is.
pub fn read_certificate_file(path: &std::path::Path) -> Result<Vec<u8>, KeyError> {
    let bytes =
        std::fs::read(path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    if bytes.starts_with(b"-----BEGIN") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs =
            crate::trust::read_pem_certificates(path).map_err(|e| KeyError::BadInput(e.to_string()))?;
        return certs
            .into_iter()
            .next()
            .map(|c| c.to_vec())
            .ok_or_else(|| KeyError::BadInput("no certificate".into()));
    }
    Ok(bytes)
}

/// Where a command writes: a file or stdout.
pub fn output(path: Option<&PathBuf>, text: &str) -> Result<(), KeyError> {
    match path {
        Some(p) => {
            std::fs::write(p, text).map_err(|source| KeyError::Io { path: p.display().to_string(), source })
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|source| KeyError::Io { path: "stdout".into(), source })
        }
    }
}

fn check_label(label: &str) -> Result<(), KeyError> {
    if label.is_empty() || label.len() > 64 {
        return Err(KeyError::BadLabel(label.into(), "use 1 to 64 characters"));
    }
    if label.chars().any(|c| c.is_control()) {
        return Err(KeyError::BadLabel(label.into(), "control characters are not allowed"));
    }
    Ok(())
}

fn check_valid_now(label: &str, der: &[u8]) -> Result<(), KeyError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| SigningError::BadCertificate { label: label.to_owned(), reason: e.to_string() })?;
    let validity = cert.validity();
    if !validity.is_valid() {
        return Err(KeyError::NotValidNow {
            label: label.to_owned(),
            not_before: rfc3339_i(validity.not_before.timestamp()).unwrap_or_default(),
            not_after: rfc3339_i(validity.not_after.timestamp()).unwrap_or_default(),
        });
    }
    Ok(())
}

fn summary(der: &[u8]) -> Option<CertificateSummary> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(CertificateSummary {
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_after: rfc3339_i(cert.validity().not_after.timestamp())?,
    })
}

/// `C=DK,O=Org // CVR:1,CN=Name,serialNumber=CVR:1-FID:2` (a `\,` is a literal comma).
fn parse_dn(text: &str) -> Result<DistinguishedName, KeyError> {
    let mut dn = DistinguishedName::new();
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ',' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    for part in parts {
        let (ty, value) = part
            .split_once('=')
            .ok_or_else(|| KeyError::BadInput(format!("subject part {part:?} has no '='")))?;
        let value = value.trim();
        match ty.trim().to_ascii_uppercase().as_str() {
            "C" => dn.push(DnType::CountryName, value),
            "ST" => dn.push(DnType::StateOrProvinceName, value),
            "L" => dn.push(DnType::LocalityName, value),
            "O" => dn.push(DnType::OrganizationName, value),
            "OU" => dn.push(DnType::OrganizationalUnitName, value),
            "CN" => dn.push(DnType::CommonName, value),
            // OCES puts CVR/FID identifiers in serialNumber (2.5.4.5), a PrintableString.
            "SERIALNUMBER" => dn.push(
                DnType::CustomDnType(vec![2, 5, 4, 5]),
                DnValue::PrintableString(
                    rcgen::string::PrintableString::try_from(value)
                        .map_err(|e| KeyError::BadInput(format!("serialNumber {value:?}: {e}")))?,
                ),
            ),
            other => {
                return Err(KeyError::BadInput(format!(
                    "subject attribute {other:?} is not supported (C, ST, L, O, OU, CN, serialNumber)"
                )))
            }
        }
    }
    Ok(dn)
}

/// PEM armour around DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn now() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

fn rfc3339(secs: u64) -> Option<String> {
    rfc3339_i(i64::try_from(secs).ok()?)
}

fn rfc3339_i(secs: i64) -> Option<String> {
    jiff::Timestamp::from_second(secs).ok().map(|t| t.to_string())
}
