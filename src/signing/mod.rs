//! The STS signing key on the HSM, as the request path uses it: one [`CoreSigner`] per
//! executor core (a batched signer on sessions that core owns), all reading the active
//! [`StsCredential`] from one atomically swapped snapshot that the inventory watcher replaces
//! when `segl keys activate` switches keys.
//!
//! A request takes the credential snapshot before it prepares its signature and signs with
//! that snapshot's key, so a request in flight during a switch finishes with the key it started
//! with (the retired key stays on the token and its handle stays valid).

pub mod audit;
pub mod decrypt;
pub mod keys;
pub mod keyset;
pub mod token_key;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use segl_pkcs11::{
    BatchConfig, BatchSigner, HsmModule, HsmStatus, Pkcs11Error, SignerDriver, SignerMode, Token,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::config::{HsmConfig, SignerModeConfig};
use crate::xml::dsig::algorithm::DigestAlgorithm;
pub use keyset::{KeySet, Published};
pub use watch::InventoryWatch;

/// Why the STS key could not be made ready, or a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The HSM refused or failed.
    #[error("HSM: {0}")]
    Hsm(#[from] Pkcs11Error),
    /// Neither a PIN file nor a PIN variable is configured.
    #[error("no PIN source configured for token {0:?}")]
    NoPinSource(String),
    /// The token holds no certificate for the signing key.
    #[error("token {token:?} holds no certificate labelled {label:?}; import one for the key")]
    NoCertificate { token: String, label: String },
    /// The certificate on the token is not for the signing key.
    #[error("the certificate labelled {label:?} does not match the key labelled {label:?}")]
    CertificateMismatch { label: String },
    /// The certificate on the token cannot be parsed.
    #[error("the certificate labelled {label:?} is unusable: {reason}")]
    BadCertificate { label: String, reason: String },
}

/// The active signing key's identity: label and certificate.
#[derive(Debug)]
pub struct StsCredential {
    /// Label of the private key (and of its certificate) on the token.
    pub key_label: Arc<str>,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// The certificate, base64 on one line, as placed in `ds:X509Certificate`.
    pub certificate_b64: String,
}

/// The opened HSM token with the STS key: made once at startup, then asked for one
/// [`CoreSigner`] per core.
pub struct StsKey {
    token: Token,
    config: HsmConfig,
    current: Arc<ArcSwap<StsCredential>>,
    published: Arc<ArcSwap<Published>>,
    status: Arc<HsmStatus>,
}

impl StsKey {
    /// Loads the module, logs in, reads the key inventory (or, on a token without one, takes
    /// `key_label` as the active key), and checks that the active key's certificate is on the
    /// token and certifies that key. Call before any other thread starts (it exports
    /// `path_env`).
    pub fn open(cfg: &HsmConfig) -> Result<StsKey, SigningError> {
        let token = open_token(cfg)?;
        let keys = KeySet::load(&token.session()?, cfg)?;
        Ok(StsKey {
            token,
            config: cfg.clone(),
            current: Arc::new(ArcSwap::new(keys.active)),
            published: Arc::new(ArcSwap::from_pointee(keys.published)),
            status: Arc::new(HsmStatus::default()),
        })
    }

    /// The credential new requests sign with now.
    pub fn credential(&self) -> Arc<StsCredential> {
        self.current.load_full()
    }

    /// The certificates published for relying parties (active, next, recently retired).
    pub fn published(&self) -> Arc<ArcSwap<Published>> {
        self.published.clone()
    }

    /// The HSM's health as all signers see it (for readiness).
    pub fn status(&self) -> Arc<HsmStatus> {
        self.status.clone()
    }

    /// A signer for one core, with its own sessions, and the driver to run on that core.
    pub fn core_signer(&self, core: usize) -> Result<(CoreSigner, SignerDriver), SigningError> {
        let mode = match self.config.signer {
            SignerModeConfig::Inline => SignerMode::Inline,
            SignerModeConfig::Pipelined => SignerMode::Pipelined,
        };
        let sessions = self.config.signing_sessions_per_core();
        let batch = BatchConfig {
            mode,
            sessions,
            max_batch: self.config.max_batch,
            name: format!("core {core}"),
            call_timeout: Duration::from_millis(self.config.call_timeout_ms),
        };
        let (signer, driver) = BatchSigner::open(&self.token, &batch, self.status.clone())?;
        let decryptor =
            self.config.decryption_key.as_deref().map(|label| self.token.decryptor(label)).transpose()?;
        let core_signer = CoreSigner {
            signer,
            decryptor,
            current: self.current.clone(),
            published: self.published.clone(),
            status: self.status.clone(),
        };
        Ok((core_signer, driver))
    }

    /// Starts the thread that picks up key inventory changes (`segl keys activate`) within
    /// `inventory_poll_ms`. It stops when the returned handle is dropped.
    pub fn watch_inventory(&self) -> Result<InventoryWatch, SigningError> {
        InventoryWatch::start(
            self.token.clone(),
            self.config.clone(),
            self.current.clone(),
            self.published.clone(),
        )
    }
}

/// Loads the module, finds the token and logs in.
pub fn open_token(cfg: &HsmConfig) -> Result<Token, SigningError> {
    cfg.export_module_environment();
    let module = HsmModule::load(&cfg.module)?;
    let selector = cfg.token_selector();
    // A file-backed token (SoftHSM) can fail to be read while another process is changing it
    // (`segl keys`, a login, a key generation): CKR_GENERAL_ERROR from C_GetTokenInfo. That is
    // transient; a few short retries keep a start from failing on it.
    let mut attempt = 0;
    let token = loop {
        match module.find_token(&selector) {
            Err(e) if e.is_general_error() && attempt < 5 => {
                attempt += 1;
                tracing::warn!(attempt, "reading the token failed ({e}); retrying");
                std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
            }
            other => break other?,
        }
    };
    let pin = cfg.pin_source().ok_or_else(|| SigningError::NoPinSource(selector.to_string()))?.read()?;
    token.login(&pin)?;
    Ok(token)
}

/// One core's signer: a batched signer on sessions this core owns, and the shared credential.
pub struct CoreSigner {
    signer: BatchSigner,
    /// This core's session on the STS decryption key, when one is configured.
    decryptor: Option<segl_pkcs11::RsaDecryptor>,
    current: Arc<ArcSwap<StsCredential>>,
    published: Arc<ArcSwap<Published>>,
    status: Arc<HsmStatus>,
}

impl CoreSigner {
    /// The credential a request starting now signs with. A request keeps this snapshot from
    /// preparing its signature to finishing it, so the certificate in its KeyInfo is always
    /// the one of the key that signs.
    pub fn credential(&self) -> Arc<StsCredential> {
        self.current.load_full()
    }

    /// Signs a digest (as a PKCS#1 DigestInfo) with the key of `credential`, unless it is
    /// still queued at `start_by` (then `Pkcs11Error::Expired`, and the HSM is not asked).
    pub async fn sign_digest(
        &self,
        credential: &StsCredential,
        alg: DigestAlgorithm,
        digest: &[u8],
        start_by: Option<std::time::Instant>,
    ) -> Result<Vec<u8>, SigningError> {
        Ok(self.signer.sign_before(&credential.key_label, alg.hsm(), digest, start_by).await?)
    }

    /// [`sign_digest`](Self::sign_digest) for the second signature of a request whose first is
    /// made (an OIO answer's header after its token): an overloaded core's longest wait does not
    /// stop it, only `start_by`.
    pub async fn sign_digest_continuing(
        &self,
        credential: &StsCredential,
        alg: DigestAlgorithm,
        digest: &[u8],
        start_by: Option<std::time::Instant>,
    ) -> Result<Vec<u8>, SigningError> {
        Ok(self.signer.sign_continuing(&credential.key_label, alg.hsm(), digest, start_by).await?)
    }

    /// Unwraps the content key of a token encrypted to the STS, on this core's HSM session
    /// (a blocking call of about one RSA operation; encrypted tokens are rare). `None` when no
    /// decryption key is configured.
    pub fn decryptor(&self) -> Option<&segl_pkcs11::RsaDecryptor> {
        self.decryptor.as_ref()
    }

    /// The certificates published now (active, next, recently retired).
    pub fn published(&self) -> Arc<Published> {
        self.published.load_full()
    }

    /// The HSM's health as every signer of the process sees it (readiness reads this).
    pub fn hsm_status(&self) -> &Arc<HsmStatus> {
        &self.status
    }

    /// This core's signer counters (queue depth, batches, HSM latency, errors).
    pub fn stats(&self) -> segl_pkcs11::SignerStatsSnapshot {
        self.signer.stats().snapshot()
    }

    /// The live counters themselves, for publishing them from another thread.
    pub fn stats_handle(&self) -> Arc<segl_pkcs11::SignerStats> {
        self.signer.stats().clone()
    }
}

/// The RSA modulus certified by a DER certificate, without leading zero bytes.
pub fn certificate_modulus(der: &[u8], label: &str) -> Result<Vec<u8>, SigningError> {
    let bad = |reason: String| SigningError::BadCertificate { label: label.to_owned(), reason };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(rsa)) => Ok(strip_zeros(rsa.modulus)),
        Ok(_) => Err(bad("not an RSA key".into())),
        Err(e) => Err(bad(e.to_string())),
    }
}

fn strip_zeros(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}
