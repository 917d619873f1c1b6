//! Certificate revocation lists from a directory, swapped in lock-free when the files change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateRevocationListDer;
use webpki::{BorrowedCertRevocationList, CertRevocationList};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// Why a CRL directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// A file is not a CRL.
    #[error("{path} is not a usable CRL: {reason}")]
    Invalid { path: String, reason: String },
    /// A CRL issued by none of the configured CAs: no certificate segl accepts could ever be
    /// checked against it, so the revocations the operator meant to enforce would not be.
    #[error(
        "{path}: the CRL's issuer {issuer} is not a configured CA (trust.anchors or trust.intermediates), so its revocations would never be checked"
    )]
    UnknownIssuer { path: String, issuer: String },
}

/// One loaded CRL and when it goes stale.
pub struct LoadedCrl {
    /// The CRL, as webpki checks it.
    pub crl: CertRevocationList<'static>,
    /// Its issuer, for messages.
    pub issuer: String,
    /// nextUpdate, if the CRL has one.
    pub next_update: Option<jiff::Timestamp>,
    /// The file it was read from.
    pub path: PathBuf,
}

/// All CRLs of the directory at one moment.
#[derive(Default)]
pub struct CrlSet {
    /// The CRLs.
    pub crls: Vec<LoadedCrl>,
    fingerprint: Vec<(PathBuf, SystemTime, u64)>,
}

impl CrlSet {
    /// Issuers whose CRL is past its nextUpdate at `now`.
    pub fn stale_issuers(&self, now: jiff::Timestamp) -> Vec<&str> {
        self.crls
            .iter()
            .filter(|c| c.next_update.is_some_and(|n| n < now))
            .map(|c| c.issuer.as_str())
            .collect()
    }

    /// Refuses a CRL whose issuer is none of `ca_subjects` (DER subject names, compared
    /// byte for byte as webpki matches a CRL to a certificate's issuer).
    pub fn check_issuers(&self, ca_subjects: &[Vec<u8>]) -> Result<(), CrlError> {
        match self.crls.iter().find(|c| !ca_subjects.iter().any(|s| s.as_slice() == c.crl.issuer())) {
            Some(unknown) => Err(CrlError::UnknownIssuer {
                path: unknown.path.display().to_string(),
                issuer: unknown.issuer.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Which files are in `dir`, with mtime and size: a cheap test for "something changed".
fn fingerprint(dir: &Path) -> Result<Vec<(PathBuf, SystemTime, u64)>, CrlError> {
    let read_err = |source| CrlError::Read { path: dir.display().to_string(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let meta = entry.metadata().map_err(read_err)?;
        if meta.is_file() {
            out.push((entry.path(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Loads every CRL in `dir` (DER, or PEM with `X509 CRL` blocks). An absent directory is an
/// empty set, so a deployment can add CRLs later.
pub fn load_dir(dir: &Path) -> Result<CrlSet, CrlError> {
    if !dir.exists() {
        return Ok(CrlSet::default());
    }
    let fingerprint = fingerprint(dir)?;
    let mut crls = Vec::new();
    for (path, _, _) in &fingerprint {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| CrlError::Read { path: shown.clone(), source })?;
        let ders: Vec<Vec<u8>> = if bytes.starts_with(b"-----") {
            CertificateRevocationListDer::pem_slice_iter(&bytes)
                .map(|r| r.map(|d| d.as_ref().to_vec()))
                .collect::<Result<_, _>>()
                .map_err(|e| CrlError::Invalid { path: shown.clone(), reason: format!("{e:?}") })?
        } else {
            vec![bytes]
        };
        for der in ders {
            let parsed =
                parse(&der, path).map_err(|reason| CrlError::Invalid { path: shown.clone(), reason })?;
            crls.push(parsed);
        }
    }
    Ok(CrlSet { crls, fingerprint })
}

fn parse(der: &[u8], path: &Path) -> Result<LoadedCrl, String> {
    let crl = BorrowedCertRevocationList::from_der(der)
        .map_err(|e| format!("{e:?}"))?
        .to_owned()
        .map_err(|e| format!("{e:?}"))?;
    let (_, parsed) = CertificateRevocationList::from_der(der).map_err(|e| e.to_string())?;
    let next_update = parsed.next_update().and_then(|t| jiff::Timestamp::from_second(t.timestamp()).ok());
    Ok(LoadedCrl {
        crl: CertRevocationList::Owned(crl),
        issuer: super::dn::rfc1779(parsed.issuer()),
        next_update,
        path: path.to_owned(),
    })
}

/// Keeps `current` in step with the CRL directory that `dir` names at each moment (it may
/// change on reload): checks once a second, reloads with `load` when the files changed, keeps
/// the previous set (and says why) when the new files are unusable. `load` is the trust store's
/// own ([`super::TrustStore::load_crls`]), so a file the watcher takes is one a reload takes.
pub fn watch(
    dir: impl Fn() -> Option<PathBuf> + Send + 'static,
    load: impl Fn(&Path) -> Result<CrlSet, CrlError> + Send + 'static,
    current: Arc<ArcSwap<CrlSet>>,
) {
    let spawned = std::thread::Builder::new().name("segl-crl-watch".into()).spawn(move || {
        let mut warned_stale: Vec<String> = Vec::new();
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(dir) = dir() else { continue };
            let changed = match fingerprint(&dir) {
                Ok(f) => f != current.load().fingerprint,
                Err(_) => !current.load().fingerprint.is_empty(),
            };
            if changed {
                match load(&dir) {
                    Ok(set) => {
                        tracing::info!(dir = %dir.display(), crls = set.crls.len(), "CRLs reloaded");
                        current.store(Arc::new(set));
                        warned_stale.clear();
                    }
                    Err(e) => tracing::error!("keeping the previous CRLs: {e}"),
                }
            }
            let now = jiff::Timestamp::now();
            for issuer in current.load().stale_issuers(now) {
                if !warned_stale.iter().any(|w| w == issuer) {
                    tracing::warn!(issuer, "CRL is past its nextUpdate; fetch a fresh one");
                    warned_stale.push(issuer.to_owned());
                }
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the CRL watcher; CRLs will not be reloaded: {e}");
    }
}
