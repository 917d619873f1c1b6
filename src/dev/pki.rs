//! The development PKI: an OCES-like root and issuing CA, an untrusted CA, client certificates
//! of every kind the STS distinguishes (OCES2 MOCES/VOCES/FOCES, OCES3 employee/organisation),
//! an expired one, and the STS's own key and certificate on the STS token.
//!
//! `setup` is idempotent: it creates only what is missing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use segl_pkcs11::{HsmModule, SecretPin, Token};
use time::{Duration, OffsetDateTime};

use super::{io_err, DevError};
use crate::config::Config;
use crate::signing::token_key::TokenSigningKey;

/// Who a development certificate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Root CA (a trust anchor in the default configuration).
    RootCa,
    /// Issuing CA under the root (an intermediate in the default configuration).
    IssuingCa,
    /// A CA nobody trusts.
    UntrustedCa,
    /// OCES2 employee certificate (MOCES, `CVR:…-RID:…`): signs user cards.
    Moces,
    /// OCES2 organisation certificate (VOCES, `CVR:…-UID:…`): signs system cards.
    Voces,
    /// OCES2 function certificate (FOCES, `CVR:…-FID:…`): signs system cards.
    Foces,
    /// OCES3 employee certificate (`UI:DK-E:G:…`).
    Oces3Employee,
    /// OCES3 organisation certificate (`UI:DK-O:G:…`).
    Oces3Organisation,
    /// A MOCES-like certificate from the untrusted CA.
    UntrustedMoces,
    /// A MOCES certificate whose validity ended a year ago.
    ExpiredMoces,
    /// A MOCES certificate listed on the issuing CA's CRL.
    RevokedMoces,
    /// A MOCES certificate of an employee at a region (CVR 29190909, a trusted CVR in the
    /// default configuration).
    RegionMoces,
    /// A MOCES certificate whose key usage allows key encipherment only.
    EnciphermentOnlyMoces,
    /// The development identity provider's signing certificate: it signs bootstrap tokens.
    DevIdp,
}

/// Every development identity, CAs first (issuers before what they issue).
pub const ALL: [Identity; 14] = [
    Identity::RootCa,
    Identity::IssuingCa,
    Identity::UntrustedCa,
    Identity::Moces,
    Identity::Voces,
    Identity::Foces,
    Identity::Oces3Employee,
    Identity::Oces3Organisation,
    Identity::UntrustedMoces,
    Identity::ExpiredMoces,
    Identity::RevokedMoces,
    Identity::RegionMoces,
    Identity::EnciphermentOnlyMoces,
    Identity::DevIdp,
];

/// The CVR number of the development care provider.
pub const DEV_CVR: &str = "20921897";
/// The care provider's name.
pub const DEV_ORG: &str = "Lægehuset Testby";
/// The CPR number of the development user.
pub const DEV_CPR: &str = "0501792275";
/// The development citizen (Bst2Idws, JWT2Idws): CPR.
pub const DEV_CITIZEN_CPR: &str = "2512484916";
/// The development citizen's NemID PID (legacy and NemLog-in bootstrap tokens name it).
pub const DEV_CITIZEN_PID: &str = "9208-2002-2-514358910503";
/// A citizen the development citizen holds a procuration (power of attorney) for.
pub const DEV_PROCURATION_CPR: &str = "0707614285";
/// A child in the development citizen's parental custody.
pub const DEV_CHILD_CPR: &str = "1111111118";
/// A person in the development citizen's ward custody.
pub const DEV_WARD_CPR: &str = "0102034410";
/// A person in the development citizen's partial ward custody.
pub const DEV_PARTLY_WARD_CPR: &str = "0203044420";
/// A citizen whose procuration for the development citizen has expired.
pub const DEV_EXPIRED_PROCURATION_CPR: &str = "0304054430";

struct Subject {
    common_name: &'static str,
    serial_number: Option<&'static str>,
}

impl Identity {
    /// Key and file label, also the `--identity` name of the development client.
    pub fn label(self) -> &'static str {
        match self {
            Self::RootCa => "dev-root-ca",
            Self::IssuingCa => "dev-issuing-ca",
            Self::UntrustedCa => "dev-untrusted-ca",
            Self::Moces => "moces",
            Self::Voces => "voces",
            Self::Foces => "foces",
            Self::Oces3Employee => "oces3-employee",
            Self::Oces3Organisation => "oces3-organisation",
            Self::UntrustedMoces => "untrusted-moces",
            Self::ExpiredMoces => "expired-moces",
            Self::RevokedMoces => "revoked-moces",
            Self::RegionMoces => "region-moces",
            Self::EnciphermentOnlyMoces => "encipherment-only-moces",
            Self::DevIdp => "dev-idp",
        }
    }

    /// Looks an identity up by label.
    pub fn from_label(label: &str) -> Option<Identity> {
        ALL.into_iter().find(|i| i.label() == label)
    }

    pub(super) fn issuer(self) -> Option<Identity> {
        match self {
            Self::RootCa | Self::UntrustedCa => None,
            Self::IssuingCa => Some(Self::RootCa),
            Self::UntrustedMoces => Some(Self::UntrustedCa),
            _ => Some(Self::IssuingCa),
        }
    }

    fn subject(self) -> Subject {
        let (common_name, serial_number) = match self {
            Self::RootCa => ("SEGL Development Root CA", None),
            Self::IssuingCa => ("SEGL Development Issuing CA 1", None),
            Self::UntrustedCa => ("Untrusted Test CA", None),
            Self::Moces => ("Lars Larsen", Some("CVR:20921897-RID:52723247")),
            Self::Voces => ("Testby Journal", Some("CVR:20921897-UID:11223344")),
            Self::Foces => ("Testby Integration (funktionscertifikat)", Some("CVR:20921897-FID:55667788")),
            Self::Oces3Employee => ("Karen Jensen", Some("UI:DK-E:G:6f0c2b6e-8a55-4a39-9c0e-3c1f2a7d9b01")),
            Self::Oces3Organisation => {
                ("Testby Journal OCES3", Some("UI:DK-O:G:0d4f7c1a-2b3e-4f5a-8b6c-7d8e9f0a1b2c"))
            }
            Self::UntrustedMoces => ("Mallory Larsen", Some("CVR:20921897-RID:66666666")),
            Self::ExpiredMoces => ("Lars Udløbet", Some("CVR:20921897-RID:52723248")),
            Self::RevokedMoces => ("Lars Spærret", Some("CVR:20921897-RID:52723249")),
            Self::RegionMoces => ("Rikke Region", Some("CVR:29190909-RID:10000001")),
            Self::EnciphermentOnlyMoces => ("Lars Krypto", Some("CVR:20921897-RID:52723250")),
            Self::DevIdp => ("SEGL Development IdP (funktionscertifikat)", Some("CVR:20921897-FID:99887766")),
        };
        Subject { common_name, serial_number }
    }

    fn is_ca(self) -> bool {
        self.issuer().is_none() || self == Self::IssuingCa
    }

    pub(super) fn params(self) -> Result<CertificateParams, DevError> {
        let subject = self.subject();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DK");
        if self.is_ca() {
            dn.push(DnType::OrganizationName, "SEGL Development");
        } else if self == Self::RegionMoces {
            dn.push(DnType::OrganizationName, "Region Testby // CVR:29190909");
        } else {
            dn.push(DnType::OrganizationName, format!("{DEV_ORG} // CVR:{DEV_CVR}"));
        }
        dn.push(DnType::CommonName, subject.common_name);
        if let Some(serial) = subject.serial_number {
            let printable = rcgen::string::PrintableString::try_from(serial)
                .map_err(|e| DevError::Certificate { label: self.label().into(), reason: e.to_string() })?;
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 5]), DnValue::PrintableString(printable));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = match self {
            Self::ExpiredMoces => (now - Duration::days(730), now - Duration::days(365)),
            _ if self.is_ca() => (now - Duration::days(1), now + Duration::days(3650)),
            _ => (now - Duration::days(1), now + Duration::days(1095)),
        };
        if self.is_ca() {
            params.is_ca = IsCa::Ca(match self {
                Self::IssuingCa => BasicConstraints::Constrained(0),
                _ => BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        } else if self == Self::EnciphermentOnlyMoces {
            params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        } else {
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        }
        params.use_authority_key_identifier_extension = !self.is_ca() || self == Self::IssuingCa;
        params.serial_number = Some(random_serial());
        Ok(params)
    }
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 8];
    // Serial uniqueness matters only within the development PKI; a failed RNG leaves zeros
    // and the time-based high bytes below still differ.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    SerialNumber::from((u64::from_be_bytes(bytes) ^ nanos) >> 1)
}

/// A public key read from the token, as rcgen wants it (PKCS#1 `RSAPublicKey`).
struct TokenPublicKey(Vec<u8>);

impl PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// Paths of the development PKI's files.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    /// `<state>/pki`.
    pub dir: PathBuf,
}

/// The national role the development user holds at the development care provider.
pub const DEV_ROLE_CODE: &str = "40001";
/// The development user's NSIS professional UUID (in the person register).
pub const DEV_PROFESSIONAL_UUID: &str = "6f0c2b6e-8a55-4a39-9c0e-3c1f2a7d9b01";
/// The development user's authorisation code and its education code (authorisation register).
pub const DEV_AUTHORISATION_CODE: &str = "J0184";
/// The education code of [`DEV_AUTHORISATION_CODE`].
pub const DEV_EDUCATION_CODE: &str = "7170";

/// Issues a CRL of the development issuing CA, signed inside the development token, listing
/// the certificates of `revoked`.
pub fn issue_crl(
    token: &Token,
    paths: &PkiPaths,
    revoked: &[Identity],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, DevError> {
    use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevocationReason, RevokedCertParams};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let mut revoked_certs = Vec::new();
    for identity in revoked {
        let der = super::client::read_certificate(&paths.certificate(identity.label()))?;
        let (_, cert) = X509Certificate::from_der(&der)
            .map_err(|e| DevError::Certificate { label: identity.label().into(), reason: e.to_string() })?;
        revoked_certs.push(RevokedCertParams {
            serial_number: SerialNumber::from_slice(cert.raw_serial()),
            revocation_time: this_update,
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        });
    }
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: random_serial(),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let issuer = Issuer::new(Identity::IssuingCa.params()?, ca_key(token, Identity::IssuingCa)?);
    let crl = params.signed_by(&issuer).map_err(cert_err("dev-issuing-ca CRL"))?;
    Ok(crl.der().to_vec())
}

impl PkiPaths {
    /// The certificate file of an identity (or of the STS key, by its label).
    pub fn certificate(&self, label: &str) -> PathBuf {
        self.dir.join(format!("{label}.pem"))
    }
}

/// What `setup` did.
#[derive(Debug, Default)]
pub struct SetupReport {
    /// One line per thing created.
    pub created: Vec<String>,
    /// One line per thing deliberately not created, with the reason.
    pub skipped: Vec<String>,
}

/// Creates whatever of the development state is missing: SoftHSM configuration, PIN files,
/// the development token with CA and client keys and certificates, and the STS token with the
/// STS key and its certificate.
pub fn setup(config: &Config) -> Result<SetupReport, DevError> {
    let dev = config.dev.as_ref().ok_or(DevError::NoDevConfig)?;
    let mut report = SetupReport::default();
    let paths = PkiPaths { dir: dev.state_dir.join("pki") };
    for dir in [&dev.state_dir, &paths.dir, &dev.state_dir.join("tokens")] {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    if let Some(conf) = config.hsm.path_env.get("SOFTHSM2_CONF") {
        if !conf.exists() {
            let tokens =
                std::fs::canonicalize(dev.state_dir.join("tokens")).map_err(io_err(&dev.state_dir))?;
            let text = format!(
                "# written by `segl dev setup`\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            );
            std::fs::write(conf, text).map_err(io_err(conf))?;
            report.created.push(format!("SoftHSM configuration {}", conf.display()));
        }
    }
    let sts_pin_file = config.hsm.pin_file.clone().unwrap_or_else(|| dev.state_dir.join("sts-token.pin"));
    let sts_pin = ensure_pin(&sts_pin_file, &mut report)?;
    let dev_pin = ensure_pin(&dev.pin_file, &mut report)?;

    config.hsm.export_module_environment();
    let module = HsmModule::load(&config.hsm.module)?;
    let dev_token = ensure_token(&module, &dev.token_label, &dev_pin, &mut report)?;

    for identity in ALL {
        let session = dev_token.session()?;
        if !session.has_key(identity.label())? {
            session.generate_rsa_key(identity.label(), identity.label().as_bytes(), 2048)?;
            report.created.push(format!("key {} on token {}", identity.label(), dev.token_label));
        }
        let file = paths.certificate(identity.label());
        if file.exists() {
            continue;
        }
        let public = TokenPublicKey(session.public_key(identity.label())?.pkcs1_der());
        let params = identity.params()?;
        let pem = match identity.issuer() {
            None => {
                let key = ca_key(&dev_token, identity)?;
                params.self_signed(&key).map_err(cert_err(identity.label()))?.pem()
            }
            Some(issuer) => {
                let issuer = Issuer::new(issuer.params()?, ca_key(&dev_token, issuer)?);
                params.signed_by(&public, &issuer).map_err(cert_err(identity.label()))?.pem()
            }
        };
        std::fs::write(&file, pem).map_err(io_err(&file))?;
        report.created.push(format!("certificate {}", file.display()));
    }

    // The development CRL is written only into a CRL directory inside the development state
    // directory. A configuration's crl_dir may be an operator's real one (a copied production
    // file, or one shared with another instance): a development CA's CRL there would be loaded
    // by every instance reading it, and refused by those that do not trust the development CA,
    // so such an instance would fail its next start or reload. Skipped, not refused: the rest of
    // the development state is still useful, and the report says what is missing (revoked-moces
    // is then not revoked).
    match &config.trust.crl_dir {
        Some(crl_dir) if !super::is_inside(crl_dir, &dev.state_dir) => report.skipped.push(format!(
            "the development CRL: trust.crl_dir {} is not inside the development state directory {} \
             (dev.state_dir), and setup writes only there; revoked-moces is not revoked",
            crl_dir.display(),
            dev.state_dir.display()
        )),
        Some(crl_dir) => {
            let crl_file = crl_dir.join("dev-issuing-ca.crl");
            if !crl_file.exists() {
                std::fs::create_dir_all(crl_dir).map_err(io_err(crl_dir))?;
                let now = OffsetDateTime::now_utc();
                let der = issue_crl(
                    &dev_token,
                    &paths,
                    &[Identity::RevokedMoces],
                    now - Duration::hours(1),
                    now + Duration::days(30),
                )?;
                std::fs::write(&crl_file, der).map_err(io_err(&crl_file))?;
                report.created.push(format!("CRL {} (revokes revoked-moces)", crl_file.display()));
            }
        }
        None => {}
    }
    // The development service provider of the embedded configuration's Sosi2OIOSaml audience.
    for audience in &config.sosi2oiosaml.audience {
        if super::is_inside(&audience.certificate, &dev.state_dir) {
            report.created.extend(super::audience::ensure(&audience.certificate)?);
        }
    }
    // The development JWT issuer of the citizen exchanges (JWT2Idws, JWT2OIOSaml).
    report.created.extend(super::jwt::ensure(&paths.dir)?);
    if let Some(file) = &config.registers.file {
        // A register this setup wrote (its first line) is brought up to date when the
        // development identities grow; one an operator wrote is never touched.
        const HEADER: &str =
            "# Person and authorisation register of the development PKI (CPR lookups, names, authorisations).";
        let existing = std::fs::read_to_string(file).ok();
        if existing.as_deref().is_none_or(|t| t.starts_with(HEADER)) {
            let text = format!(
                "{HEADER}\n\
                 [[person]]\ncpr = \"{DEV_CPR}\"\ngiven_name = \"Lars\"\nsurname = \"Larsen\"\n\
                 email = \"lars.larsen@testby.example\"\nrid = [{{ cvr = \"{DEV_CVR}\", rid = \"52723247\" }}]\n\
                 professional_uuid = [\"{DEV_PROFESSIONAL_UUID}\"]\n\
                 authorisation = [{{ code = \"{DEV_AUTHORISATION_CODE}\", education_code = \"{DEV_EDUCATION_CODE}\" }}]\n\
                 \n# The development citizen, and whom they may act for (OnBehalfOf).\n\
                 [[person]]\ncpr = \"{DEV_CITIZEN_CPR}\"\ngiven_name = \"Nancy Ann\"\nsurname = \"Berggren\"\n\
                 pid = [\"{DEV_CITIZEN_PID}\"]\n\
                 [[relation]]\nkind = \"procuration\"\nactor = \"{DEV_CITIZEN_CPR}\"\nsubject = \"{DEV_PROCURATION_CPR}\"\n\
                 [[relation]]\nkind = \"parental_custody\"\nactor = \"{DEV_CITIZEN_CPR}\"\nsubject = \"{DEV_CHILD_CPR}\"\n\
                 [[relation]]\nkind = \"ward_custody\"\nactor = \"{DEV_CITIZEN_CPR}\"\nsubject = \"{DEV_WARD_CPR}\"\n\
                 [[relation]]\nkind = \"partly_ward_custody\"\nactor = \"{DEV_CITIZEN_CPR}\"\nsubject = \"{DEV_PARTLY_WARD_CPR}\"\n\
                 [[relation]]\nkind = \"procuration\"\nactor = \"{DEV_CITIZEN_CPR}\"\nsubject = \"{DEV_EXPIRED_PROCURATION_CPR}\"\n\
                 valid_from = \"2020-01-01T00:00:00Z\"\nvalid_until = \"2021-01-01T00:00:00Z\"\n"
            );
            if existing.as_deref() != Some(text.as_str()) {
                std::fs::write(file, &text).map_err(io_err(file))?;
                let verb = if existing.is_some() { "updated" } else { "" };
                report
                    .created
                    .push(format!("person register {} {verb}", file.display()).trim_end().to_owned());
            }
        }
    }
    if let Some(roles) = &config.roles.assignments_file {
        if !roles.exists() {
            let text = format!(
                "# Role register of the development PKI: who holds which national role where.\n[[assignment]]\ncpr = \"{DEV_CPR}\"\ncvr = \"{DEV_CVR}\"\nroles = [\"{DEV_ROLE_CODE}\"]\n"
            );
            std::fs::write(roles, text).map_err(io_err(roles))?;
            report.created.push(format!("role register {}", roles.display()));
        }
    }

    let sts_token = ensure_token(&module, &config.hsm.token_label, &sts_pin, &mut report)?;
    let session = sts_token.session()?;
    let label = &config.hsm.key_label;
    if !session.has_key(label)? {
        session.generate_rsa_key(label, label.as_bytes(), 2048)?;
        report.created.push(format!("STS key {label} on token {}", config.hsm.token_label));
    }
    let sts_file = paths.certificate(label);
    if session.certificate(label)?.is_none() || !sts_file.exists() {
        let public = TokenPublicKey(session.public_key(label)?.pkcs1_der());
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "DK");
        dn.push(DnType::OrganizationName, "SEGL Development // CVR:12345678");
        dn.push(DnType::CommonName, "SEGL Development STS (funktionscertifikat)");
        dn.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::PrintableString(
                rcgen::string::PrintableString::try_from("CVR:12345678-FID:00000001")
                    .map_err(|e| DevError::Certificate { label: label.clone(), reason: e.to_string() })?,
            ),
        );
        params.distinguished_name = dn;
        sts_certificate_terms(&mut params);
        let issuer = Issuer::new(Identity::IssuingCa.params()?, ca_key(&dev_token, Identity::IssuingCa)?);
        let cert = params.signed_by(&public, &issuer).map_err(cert_err(label))?;
        session.store_certificate(label, label.as_bytes(), cert.der())?;
        std::fs::write(&sts_file, cert.pem()).map_err(io_err(&sts_file))?;
        report.created.push(format!("STS certificate {} (also on the token)", sts_file.display()));
    }
    if let Some(label) = &config.hsm.decryption_key {
        if !session.has_key(label)? {
            session.generate_rsa_decryption_key(label, label.as_bytes(), 2048)?;
            report.created.push(format!("STS decryption key {label} on token {}", config.hsm.token_label));
        }
        let file = paths.certificate(label);
        if session.certificate(label)?.is_none() || !file.exists() {
            // A decryption key signs nothing, not even its own CSR: the CA certifies its public key.
            let public = TokenPublicKey(session.public_key(label)?.pkcs1_der());
            let mut params = CertificateParams::default();
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CountryName, "DK");
            dn.push(DnType::OrganizationName, "SEGL Development // CVR:12345678");
            dn.push(DnType::CommonName, "SEGL Development STS (encryption)");
            params.distinguished_name = dn;
            sts_certificate_terms(&mut params);
            params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
            let issuer = Issuer::new(Identity::IssuingCa.params()?, ca_key(&dev_token, Identity::IssuingCa)?);
            let cert = params.signed_by(&public, &issuer).map_err(cert_err(label))?;
            session.store_certificate(label, label.as_bytes(), cert.der())?;
            std::fs::write(&file, cert.pem()).map_err(io_err(&file))?;
            report.created.push(format!("STS encryption certificate {} (also on the token)", file.display()));
        }
    }
    Ok(report)
}

/// What the development CA puts in every STS signing certificate: three years from yesterday,
/// signing key usages, an authority key identifier, a random serial.
fn sts_certificate_terms(params: &mut CertificateParams) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(1095);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
}

pub(super) fn cert_err(label: &str) -> impl FnOnce(rcgen::Error) -> DevError + '_ {
    move |e| DevError::Certificate { label: label.to_owned(), reason: e.to_string() }
}

/// A development CA's key on the token, as rcgen's signing key (the same adapter `segl keys csr`
/// uses for the STS key).
pub(super) fn ca_key(token: &Token, identity: Identity) -> Result<TokenSigningKey, DevError> {
    Ok(TokenSigningKey::open(token, identity.label())?)
}

/// Opens the token with `label`, creating it if absent, and logs in.
fn ensure_token(
    module: &Arc<HsmModule>,
    label: &str,
    pin: &SecretPin,
    report: &mut SetupReport,
) -> Result<Token, DevError> {
    let token = match module.token(label) {
        Ok(t) => t,
        Err(segl_pkcs11::Pkcs11Error::TokenNotFound { .. }) => {
            // The SO PIN is only needed to create the token; development tokens are re-created
            // rather than administered, so it is not kept.
            let so_pin = SecretPin::new(random_pin());
            let t = module.init_token(label, &so_pin, pin)?;
            report.created.push(format!("token {label}"));
            t
        }
        Err(e) => return Err(e.into()),
    };
    token.login(pin)?;
    Ok(token)
}

fn random_pin() -> String {
    let mut bytes = [0u8; 12];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the PIN file, creating it (mode 0600) with a random PIN if absent.
fn ensure_pin(path: &Path, report: &mut SetupReport) -> Result<SecretPin, DevError> {
    if !path.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err(path))?;
        writeln!(f, "{}", random_pin()).map_err(io_err(path))?;
        report.created.push(format!("PIN file {}", path.display()));
    }
    Ok(segl_pkcs11::PinSource::File(path.to_owned()).read()?)
}

/// Issues an STS signing certificate for a PKCS#10 request, signed by the development issuing
/// CA (validity: from yesterday for three years), PEM. For `segl keys` rotation in tests and
/// demos; a production certificate comes from the operator's CA.
pub fn issue_sts_certificate(config: &Config, csr_pem: &str) -> Result<String, DevError> {
    let dev = config.dev.as_ref().ok_or(DevError::NoDevConfig)?;
    config.hsm.export_module_environment();
    let module = HsmModule::load(&config.hsm.module)?;
    let token = module.token(&dev.token_label)?;
    token.login(&segl_pkcs11::PinSource::File(dev.pin_file.clone()).read()?)?;
    let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem).map_err(cert_err("csr"))?;
    let mut params = csr.params;
    sts_certificate_terms(&mut params);
    let issuer = Issuer::new(Identity::IssuingCa.params()?, ca_key(&token, Identity::IssuingCa)?);
    let cert = rcgen::CertificateSigningRequestParams { params, public_key: csr.public_key }
        .signed_by(&issuer)
        .map_err(cert_err("csr"))?;
    Ok(cert.pem())
}

/// An encryption certificate for a public key (PEM SubjectPublicKeyInfo, as `segl keys
/// public-key` writes it), issued by the development CA: how a decryption key, which cannot
/// sign a certificate request, gets its certificate in development and tests.
pub fn issue_encryption_certificate(
    config: &Config,
    spki_pem: &str,
    common_name: &str,
) -> Result<String, DevError> {
    let dev = config.dev.as_ref().ok_or(DevError::NoDevConfig)?;
    config.hsm.export_module_environment();
    let module = HsmModule::load(&config.hsm.module)?;
    let token = module.token(&dev.token_label)?;
    token.login(&segl_pkcs11::PinSource::File(dev.pin_file.clone()).read()?)?;
    let public = rcgen::SubjectPublicKeyInfo::from_pem(spki_pem).map_err(cert_err("public key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "DK");
    dn.push(DnType::OrganizationName, "SEGL Development // CVR:12345678");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    sts_certificate_terms(&mut params);
    params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let issuer = Issuer::new(Identity::IssuingCa.params()?, ca_key(&token, Identity::IssuingCa)?);
    Ok(params.signed_by(&public, &issuer).map_err(cert_err(common_name))?.pem())
}
