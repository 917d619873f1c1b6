//! Trust in card signers: X.509 path validation to configured anchors (rustls-webpki) and the
//! OCES identity read from the certificate (x509-parser).

pub mod cache;
pub mod crl;
pub mod dn;
pub mod idp;
pub mod jwt;
pub mod pinned;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{
    EndEntityCert, ExpirationPolicy, KeyPurposeIdIter, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy,
};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a signer certificate is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// The certificate could not be parsed.
    #[error("the certificate is not a valid X.509 certificate: {0}")]
    Malformed(String),
    /// No chain to a configured trust anchor.
    #[error("the certificate is not issued by a trusted CA ({0})")]
    UntrustedIssuer(String),
    /// Past notAfter.
    #[error("the certificate expired")]
    Expired,
    /// Before notBefore.
    #[error("the certificate is not yet valid")]
    NotYetValid,
    /// Listed on its issuer's CRL.
    #[error("the certificate is revoked")]
    Revoked,
    /// Its issuer's CRL is past nextUpdate and stale CRLs are a hard failure.
    #[error("the CRL of the certificate's issuer is out of date")]
    StaleCrl,
    /// No CRL for its issuer while CRLs are required.
    #[error("no CRL is available for the certificate's issuer")]
    RevocationUnknown,
    /// A KeyUsage extension that allows neither digitalSignature nor nonRepudiation.
    #[error("the certificate's key usage does not allow signing")]
    KeyUsage,
    /// Any other path-validation failure.
    #[error("the certificate chain is invalid: {0}")]
    InvalidChain(String),
}

/// Why the trust store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// The CRL directory could not be loaded.
    #[error("CRLs: {0}")]
    Crl(#[from] crl::CrlError),
    /// A PEM file held no usable certificate.
    #[error("{path}: {reason}")]
    BadCertificate { path: String, reason: String },
}

/// What an OCES certificate certifies, from its subject serialNumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateKind {
    /// MOCES (OCES2 `CVR:…-RID:…`) or OCES3 employee (`UI:DK-E:…`): may sign user cards.
    Employee,
    /// VOCES (OCES2 `CVR:…-UID:…`) or OCES3 organisation (`UI:DK-O:…`): may sign system cards.
    Organisation,
    /// FOCES function certificate (OCES2 `CVR:…-FID:…`): may sign system cards.
    Function,
    /// POCES personal certificate (`PID:…`) or OCES3 person (`UI:DK-P:…`).
    Person,
    /// No recognisable OCES serialNumber.
    Unknown,
}

impl CertificateKind {
    /// Classifies a subject serialNumber. Decision (spec silent on OCES3): `UI:DK-E:` is an
    /// employee, `UI:DK-O:` an organisation, `UI:DK-P:` a person.
    pub fn from_serial_number(serial: &str) -> Self {
        if serial.starts_with("CVR:") {
            if serial.contains("-RID:") {
                return Self::Employee;
            }
            if serial.contains("-UID:") {
                return Self::Organisation;
            }
            if serial.contains("-FID:") {
                return Self::Function;
            }
        }
        if serial.starts_with("PID:") || serial.starts_with("UI:DK-P:") {
            return Self::Person;
        }
        if serial.starts_with("UI:DK-E:") {
            return Self::Employee;
        }
        if serial.starts_with("UI:DK-O:") {
            return Self::Organisation;
        }
        Self::Unknown
    }

    /// The kind's name with its indefinite article, for messages: "an Employee", "a Function".
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Employee => "an Employee",
            Self::Organisation => "an Organisation",
            Self::Function => "a Function",
            Self::Person => "a Person",
            Self::Unknown => "an Unknown",
        }
    }
}

/// A validated signer certificate and what the STS needs to know about it.
#[derive(Debug, Clone)]
pub struct SignerCertificate {
    /// DER bytes.
    pub der: Vec<u8>,
    /// Subject DN, RFC 1779 form.
    pub subject_dn: String,
    /// Issuer DN, RFC 1779 form.
    pub issuer_dn: String,
    /// Serial number in decimal.
    pub serial_decimal: String,
    /// The subject's serialNumber attribute (OCES identity), if any.
    pub subject_serial_number: Option<String>,
    /// What kind of OCES certificate this is.
    pub kind: CertificateKind,
    /// The CVR of the organisation the certificate belongs to: from an OCES2 serialNumber
    /// (`CVR:<cvr>-…`) or an OCES3 organizationIdentifier (`NTRDK-<cvr>`).
    pub organisation_cvr: Option<String>,
    /// When the first certificate on the validated chain expires (the certificate's own
    /// notAfter when the chain was not validated): how long a validation may be remembered.
    pub chain_not_after: jiff::Timestamp,
}

/// How revocation is checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct RevocationPolicy {
    /// A CRL past nextUpdate fails validation.
    pub stale_is_failure: bool,
    /// A certificate whose issuer has no CRL fails validation.
    pub require_crl: bool,
}

/// The configured trust anchors, intermediates and CRLs.
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// Subject names (DER) of the anchors and intermediates: the issuers a CRL may have.
    ca_subjects: Vec<Vec<u8>>,
    crls: Arc<ArcSwap<crl::CrlSet>>,
    revocation: RevocationPolicy,
}

/// XML signatures with OCES certificates are not TLS: the EKU content of OCES certificates is
/// not defined for this use, so any EKU (or none) is accepted; chain, validity and signature
/// checks are unaffected.
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

static RSA_ALGORITHMS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
];

impl TrustStore {
    /// Builds the store from the `[trust]` configuration, loading the CRL directory into
    /// `crls` (the cell [`crl::watch`] keeps current).
    pub fn from_config(
        cfg: &crate::config::TrustConfig,
        crls: Arc<ArcSwap<crl::CrlSet>>,
    ) -> Result<Self, TrustStoreError> {
        let mut store = Self::load(&cfg.anchors, &cfg.intermediates)?;
        if let Some(dir) = &cfg.crl_dir {
            crls.store(Arc::new(store.load_crls(dir)?));
        }
        store.crls = crls;
        store.revocation = RevocationPolicy {
            stale_is_failure: cfg.stale_crl == crate::config::StaleCrlPolicy::Hard,
            require_crl: cfg.require_crl,
        };
        Ok(store)
    }

    /// Loads the CRLs of `dir`, refusing a CRL that none of this store's CAs issued (webpki
    /// would never consult it: the revocations it lists would silently not be enforced).
    /// Startup, reload, `segl config check` and the CRL watcher all load through here, so
    /// they accept and refuse the same directories.
    pub fn load_crls(&self, dir: &Path) -> Result<crl::CrlSet, crl::CrlError> {
        let set = crl::load_dir(dir)?;
        set.check_issuers(&self.ca_subjects)?;
        Ok(set)
    }

    /// The same store, reading its CRLs from another cell.
    pub fn with_crls(self, crls: Arc<ArcSwap<crl::CrlSet>>) -> Self {
        TrustStore { crls, ..self }
    }

    /// Loads anchors and intermediates from PEM files (no CRLs).
    pub fn load(
        anchors: &[impl AsRef<Path>],
        intermediates: &[impl AsRef<Path>],
    ) -> Result<Self, TrustStoreError> {
        let mut store = TrustStore {
            anchors: Vec::new(),
            intermediates: Vec::new(),
            ca_subjects: Vec::new(),
            crls: Arc::new(ArcSwap::from_pointee(crl::CrlSet::default())),
            revocation: RevocationPolicy::default(),
        };
        for path in anchors {
            for der in read_pem_certificates(path.as_ref())? {
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| TrustStoreError::BadCertificate {
                        path: path.as_ref().display().to_string(),
                        reason: format!("not usable as a trust anchor: {e}"),
                    })?
                    .to_owned();
                store.ca_subjects.push(anchor.subject.as_ref().to_vec());
                store.anchors.push(anchor);
            }
        }
        for path in intermediates {
            for der in read_pem_certificates(path.as_ref())? {
                // An intermediate webpki cannot parse builds no chain either; it names no issuer.
                if let Ok(cert) = EndEntityCert::try_from(&der) {
                    store.ca_subjects.push(cert.subject().to_vec());
                }
                store.intermediates.push(der);
            }
        }
        Ok(store)
    }

    /// Validates `der` as a signer certificate at `now`: a chain to an anchor, every
    /// certificate in it within its validity, every signature good, not revoked (end-entity
    /// CRL check), and a key usage that allows signing.
    pub fn validate(&self, der: &[u8], now: jiff::Timestamp) -> Result<SignerCertificate, TrustError> {
        let cert_der = CertificateDer::from(der);
        let ee = EndEntityCert::try_from(&cert_der).map_err(|e| TrustError::Malformed(e.to_string()))?;
        let secs = u64::try_from(now.as_second()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let crls = self.crls.load();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.crls.iter().map(|c| &c.crl).collect();
        // webpki refuses an empty CRL list; without CRLs there is nothing to check against.
        let revocation = match RevocationOptionsBuilder::new(&crl_refs) {
            Ok(builder) => Some(
                builder
                    .with_depth(RevocationCheckDepth::EndEntity)
                    .with_status_policy(if self.revocation.require_crl {
                        UnknownStatusPolicy::Deny
                    } else {
                        UnknownStatusPolicy::Allow
                    })
                    .with_expiration_policy(if self.revocation.stale_is_failure {
                        ExpirationPolicy::Enforce
                    } else {
                        ExpirationPolicy::Ignore
                    })
                    .build(),
            ),
            Err(_) if self.revocation.require_crl => return Err(TrustError::RevocationUnknown),
            Err(_) => None,
        };
        let path = ee
            .verify_for_usage(
                RSA_ALGORITHMS,
                &self.anchors,
                &self.intermediates,
                time,
                AnyExtendedKeyUsage,
                revocation,
                None,
            )
            .map_err(map_webpki_error)?;
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| TrustError::Malformed(e.to_string()))?;
        if let Ok(Some(ku)) = cert.key_usage() {
            if !ku.value.digital_signature() && !ku.value.non_repudiation() {
                return Err(TrustError::KeyUsage);
            }
        }
        let mut described = describe_parsed(der, &cert);
        for intermediate in path.intermediate_certificates() {
            let not_after = X509Certificate::from_der(&intermediate.der())
                .map(|(_, c)| not_after(&c))
                .map_err(|e| TrustError::Malformed(e.to_string()))?;
            described.chain_not_after = described.chain_not_after.min(not_after);
        }
        Ok(described)
    }

    /// Until when a validation made under this store may be reused, given the CRLs now in
    /// force: the chain's first expiry and, when a stale CRL fails validation, the earliest
    /// nextUpdate (a CRL change replaces the set, which callers notice separately).
    pub fn trusted_until(&self, signer: &SignerCertificate) -> jiff::Timestamp {
        let mut until = signer.chain_not_after;
        if self.revocation.stale_is_failure {
            let crls = self.crls.load();
            if let Some(earliest) = crls.crls.iter().filter_map(|c| c.next_update).min() {
                until = until.min(earliest);
            }
        }
        until
    }

    /// The CRL set validations are checked against now.
    pub fn crls(&self) -> Arc<crl::CrlSet> {
        self.crls.load_full()
    }
}

fn map_webpki_error(e: webpki::Error) -> TrustError {
    match e {
        webpki::Error::CertExpired { .. } => TrustError::Expired,
        webpki::Error::CertNotValidYet { .. } => TrustError::NotYetValid,
        webpki::Error::UnknownIssuer => {
            TrustError::UntrustedIssuer("no chain to a configured trust anchor".into())
        }
        webpki::Error::CertRevoked => TrustError::Revoked,
        webpki::Error::CrlExpired { .. } => TrustError::StaleCrl,
        webpki::Error::UnknownRevocationStatus => TrustError::RevocationUnknown,
        other => TrustError::InvalidChain(format!("{other:?}")),
    }
}

/// Reads the identity fields of a certificate without judging trust.
pub fn describe(der: &[u8]) -> Result<SignerCertificate, TrustError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| TrustError::Malformed(e.to_string()))?;
    Ok(describe_parsed(der, &cert))
}

fn describe_parsed(der: &[u8], cert: &X509Certificate<'_>) -> SignerCertificate {
    let subject_serial_number = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "2.5.4.5")
        .and_then(|a| a.as_str().ok())
        .map(str::to_owned);
    let kind = subject_serial_number
        .as_deref()
        .map(CertificateKind::from_serial_number)
        .unwrap_or(CertificateKind::Unknown);
    let organisation_identifier = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "2.5.4.97")
        .and_then(|a| a.as_str().ok());
    let organisation_cvr = subject_serial_number
        .as_deref()
        .and_then(|s| s.strip_prefix("CVR:"))
        .and_then(|s| s.split('-').next())
        .or_else(|| organisation_identifier.and_then(|o| o.strip_prefix("NTRDK-")))
        .map(str::to_owned);
    SignerCertificate {
        organisation_cvr,
        der: der.to_vec(),
        subject_dn: dn::rfc1779(cert.subject()),
        issuer_dn: dn::rfc1779(cert.issuer()),
        serial_decimal: cert.tbs_certificate.serial.to_string(),
        subject_serial_number,
        kind,
        chain_not_after: not_after(cert),
    }
}

fn not_after(cert: &X509Certificate<'_>) -> jiff::Timestamp {
    jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).unwrap_or(jiff::Timestamp::MIN)
}

/// Reads every `CERTIFICATE` block of a PEM file.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustStoreError> {
    use rustls_pki_types::pem::PemObject;
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|source| TrustStoreError::Read { path: shown.clone(), source })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TrustStoreError::BadCertificate { path: shown.clone(), reason: format!("{e:?}") })?;
    if certs.is_empty() {
        return Err(TrustStoreError::BadCertificate { path: shown, reason: "no CERTIFICATE block".into() });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_oces_serial_numbers() {
        use CertificateKind::*;
        assert_eq!(CertificateKind::from_serial_number("CVR:20921897-RID:52723247"), Employee);
        assert_eq!(CertificateKind::from_serial_number("CVR:33257872-UID:1234"), Organisation);
        assert_eq!(CertificateKind::from_serial_number("CVR:33257872-FID:18911861"), Function);
        assert_eq!(CertificateKind::from_serial_number("PID:9208-2002-2-123456789012"), Person);
        assert_eq!(
            CertificateKind::from_serial_number("UI:DK-E:G:0a1b2c3d-0000-4000-8000-000000000001"),
            Employee
        );
        assert_eq!(
            CertificateKind::from_serial_number("UI:DK-O:G:0a1b2c3d-0000-4000-8000-000000000002"),
            Organisation
        );
        assert_eq!(CertificateKind::from_serial_number("something else"), Unknown);
    }

    /// CAs made in memory (ECDSA, quick) and CRLs they sign, in a directory of their own.
    mod crl_issuers {
        use super::super::*;
        use crate::config::{StaleCrlPolicy, TrustConfig};
        use rcgen::{
            BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
            KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
        };
        use std::path::PathBuf;
        use time::{Duration, OffsetDateTime};

        struct Ca {
            issuer: Issuer<'static, KeyPair>,
            pem: PathBuf,
        }

        fn dir(name: &str) -> PathBuf {
            let dir = std::env::temp_dir().join(format!("segl-crl-issuers-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("crl")).unwrap();
            dir
        }

        /// A CA named `name`, self-signed or issued by `parent`, its certificate in `dir`.
        fn ca(dir: &Path, name: &str, parent: Option<&Ca>) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = match parent {
                None => params.self_signed(&key).unwrap(),
                Some(parent) => params.signed_by(&key, &parent.issuer).unwrap(),
            };
            let pem = dir.join(format!("{name}.pem"));
            std::fs::write(&pem, cert.pem()).unwrap();
            Ca { issuer: Issuer::new(params, key), pem }
        }

        fn write_crl(dir: &Path, file: &str, by: &Ca) {
            let now = OffsetDateTime::now_utc();
            let crl = CertificateRevocationListParams {
                this_update: now - Duration::hours(1),
                next_update: now + Duration::days(1),
                crl_number: SerialNumber::from_slice(&[1]),
                issuing_distribution_point: None,
                revoked_certs: Vec::new(),
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&by.issuer)
            .unwrap();
            std::fs::write(dir.join("crl").join(file), crl.der()).unwrap();
        }

        fn store(dir: &Path, anchors: &[&Ca], intermediates: &[&Ca]) -> Result<TrustStore, TrustStoreError> {
            let cfg = TrustConfig {
                anchors: anchors.iter().map(|c| c.pem.clone()).collect(),
                intermediates: intermediates.iter().map(|c| c.pem.clone()).collect(),
                crl_dir: Some(dir.join("crl")),
                stale_crl: StaleCrlPolicy::Hard,
                require_crl: false,
                signer_cache_entries: 0,
            };
            TrustStore::from_config(&cfg, Arc::new(ArcSwap::from_pointee(crl::CrlSet::default())))
        }

        #[test]
        fn crls_of_anchors_and_intermediates_are_loaded() {
            let dir = dir("known");
            let root = ca(&dir, "Root CA", None);
            let issuing = ca(&dir, "Issuing CA", Some(&root));
            write_crl(&dir, "root.crl", &root);
            write_crl(&dir, "issuing.crl", &issuing);
            let store = store(&dir, &[&root], &[&issuing]).unwrap();
            assert_eq!(store.crls().crls.len(), 2);
        }

        #[test]
        fn a_crl_of_an_unconfigured_ca_is_refused_naming_file_and_issuer() {
            let dir = dir("unknown");
            let root = ca(&dir, "Root CA", None);
            let issuing = ca(&dir, "Issuing CA", Some(&root));
            let stranger = ca(&dir, "Stranger CA", None);
            write_crl(&dir, "root.crl", &root);
            write_crl(&dir, "stranger.crl", &stranger);
            let err = store(&dir, &[&root], &[&issuing]).err().expect("a stranger's CRL was accepted");
            let text = err.to_string();
            assert!(matches!(err, TrustStoreError::Crl(crl::CrlError::UnknownIssuer { .. })), "{text}");
            assert!(text.contains(&dir.join("crl/stranger.crl").display().to_string()), "{text}");
            assert!(text.contains("CN=Stranger CA"), "{text}");
            // An issuing CA's CRL needs its CA configured too: without the intermediate it is refused.
            std::fs::remove_file(dir.join("crl/stranger.crl")).unwrap();
            write_crl(&dir, "issuing.crl", &issuing);
            let err = store(&dir, &[&root], &[]).err().expect("the issuing CA's CRL was accepted");
            assert!(err.to_string().contains("CN=Issuing CA"), "{err}");
        }
    }
}
