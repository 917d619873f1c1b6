//! The development client: builds fresh DGWS requests whose self-signed ID card is signed by a
//! development key inside the development token, as seal.java or unsealed would.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use segl_pkcs11::{HsmModule, Token};

use super::pki::{self, Identity, PkiPaths};
use super::DevError;
use crate::config::Config;
use crate::exchange::dgws::envelope as soap;
use crate::time::{self, DgwsVersion};
use crate::token::idcard::{IdCard, NameId, SystemLog, UserLog};
use crate::token::CardType;
use crate::xml::dsig::algorithm::{DigestAlgorithm, SignatureAlgorithm};
use crate::xml::emit::CanonicalWriter;

/// How `sosi:OCESCertHash` is filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertHash {
    /// SHA-1 of the signing certificate (seal clients).
    Sha1,
    /// SHA-256 of the signing certificate (unsealed clients since 2024).
    Sha256,
    /// No OCESCertHash attribute.
    Omit,
}

/// What request to build.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// User or system card.
    pub card: CardType,
    /// The signing identity; default MOCES for user cards, VOCES for system cards.
    pub identity: Option<Identity>,
    /// The client's signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// DGWS version of the card and the message timestamp.
    pub version: DgwsVersion,
    /// The card's NotBefore relative to now (seal: −5 min).
    pub not_before_offset: SignedDuration,
    /// The card's lifetime (DGWS: at most 24 h).
    pub lifetime: SignedDuration,
    /// `sosi:AuthenticationLevel`; default 4 for user cards, 3 for system cards.
    pub level: Option<u8>,
    /// How OCESCertHash is written.
    pub cert_hash: CertHash,
    /// The DGWS message id (`wsse:Security/@id`); default a fresh seal-style nonce.
    pub message_id: Option<String>,
    /// `medcom:UserRole` of user cards (default `7170`, an education code, not a national role).
    pub role: String,
    /// The care provider's CVR (default the development CVR).
    pub cvr: String,
    /// The user's CPR (default the development CPR; `None` leaves it out as unsealed does).
    pub cpr: Option<String>,
    /// Whether the card is signed; level 1/2 cards carry no signature.
    pub sign: bool,
    /// A change to the card before it is signed (tests of the STS's card rules).
    pub edit: Option<fn(&mut IdCard)>,
}

impl RequestOptions {
    /// A fresh, valid request for `card`, signed RSA-SHA1 as seal.java does.
    pub fn new(card: CardType) -> Self {
        RequestOptions {
            card,
            identity: None,
            algorithm: SignatureAlgorithm::RsaSha1,
            version: DgwsVersion::V1_0_1,
            not_before_offset: SignedDuration::from_mins(-5),
            lifetime: SignedDuration::from_hours(24),
            level: None,
            cert_hash: CertHash::Sha1,
            message_id: None,
            role: "7170".into(),
            cvr: pki::DEV_CVR.into(),
            cpr: Some(pki::DEV_CPR.into()),
            sign: true,
            edit: None,
        }
    }
}

/// The development client, holding a session on the development token.
pub struct DevClient {
    token: Token,
    paths: PkiPaths,
}

impl DevClient {
    /// Opens the development token named by the configuration's `[dev]` section.
    pub fn open(config: &Config) -> Result<DevClient, DevError> {
        let dev = config.dev.as_ref().ok_or(DevError::NoDevConfig)?;
        config.hsm.export_module_environment();
        let module = HsmModule::load(&config.hsm.module)?;
        let token = module.token(&dev.token_label)?;
        token.login(&segl_pkcs11::PinSource::File(dev.pin_file.clone()).read()?)?;
        Ok(DevClient { token, paths: PkiPaths { dir: dev.state_dir.join("pki") } })
    }

    /// The DER certificate of a development identity.
    pub fn certificate(&self, identity: Identity) -> Result<Vec<u8>, DevError> {
        read_certificate(&self.paths.certificate(identity.label()))
            .map_err(|_| DevError::MissingCertificate(identity.label().to_owned()))
    }

    /// A CRL of the development issuing CA listing `revoked`, valid from `this_update` to
    /// `next_update` (DER).
    pub fn issue_crl(
        &self,
        revoked: &[Identity],
        this_update: ::time::OffsetDateTime,
        next_update: ::time::OffsetDateTime,
    ) -> Result<Vec<u8>, DevError> {
        pki::issue_crl(&self.token, &self.paths, revoked, this_update, next_update)
    }

    /// Signs `digest` (a DigestInfo's hash) with `identity`'s key on the development token.
    pub fn sign_digest(
        &self,
        identity: Identity,
        algorithm: SignatureAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>, DevError> {
        let signer = self.token.signer(identity.label())?;
        Ok(signer.sign_digest(algorithm.digest().hsm(), digest)?)
    }

    /// A header signature (SIG-HDR) by `identity`: the `ds:Signature` element over `parts`, each
    /// a reference URI (`#body`, …) and its element's exclusive canonical form.
    pub fn header_signature(
        &self,
        identity: Identity,
        algorithm: SignatureAlgorithm,
        parts: &[(&str, &[u8])],
    ) -> Result<Vec<u8>, DevError> {
        use crate::xml::dsig::sign;
        let canonical: Vec<[&[u8]; 1]> = parts.iter().map(|(_, c)| [*c]).collect();
        let references: Vec<sign::Reference> = parts
            .iter()
            .zip(&canonical)
            .map(|((uri, _), c)| sign::Reference { uri, canonical_parts: c, enveloped: false })
            .collect();
        let prepared =
            sign::prepare_references(&references, algorithm, &B64.encode(self.certificate(identity)?));
        let value = self.sign_digest(identity, algorithm, &prepared.signed_info_digest)?;
        Ok(sign::finish(&prepared, &value))
    }

    /// Builds a complete DGWS request to (New)SecurityTokenService.
    pub fn request(&self, opts: &RequestOptions) -> Result<Vec<u8>, DevError> {
        let now = Timestamp::now();
        let identity = opts.identity.unwrap_or(match opts.card {
            CardType::User => Identity::Moces,
            CardType::System => Identity::Voces,
        });
        let cert = self.certificate(identity)?;
        let mut card = self.card(opts, now, &cert);
        if let Some(edit) = opts.edit {
            edit(&mut card);
        }
        let signed = if opts.sign {
            let signer = self.token.signer(identity.label())?;
            let unsigned = card.prepare_signature(opts.algorithm, &B64.encode(&cert));
            let value = signer.sign_digest(opts.algorithm.digest().hsm(), unsigned.signed_info_digest())?;
            unsigned.finish(&value)
        } else {
            let mut w = CanonicalWriter::default();
            card.write_unsigned(&mut w);
            w.raw(crate::token::idcard::CARD_END);
            w.into_bytes()
        };
        let message_id = opts.message_id.clone().unwrap_or_else(|| soap::new_message_id(now));
        Ok(request_envelope(&signed, &message_id, &time::format(now, opts.version)))
    }

    fn card(&self, opts: &RequestOptions, now: Timestamp, cert: &[u8]) -> IdCard {
        let not_before = now.saturating_add(opts.not_before_offset).unwrap_or(now);
        let ocess_cert_hash = match opts.cert_hash {
            CertHash::Sha1 => Some(B64.encode(DigestAlgorithm::Sha1.digest(cert))),
            CertHash::Sha256 => Some(B64.encode(DigestAlgorithm::Sha256.digest(cert))),
            CertHash::Omit => None,
        };
        let (name_id, level, user) = match opts.card {
            CardType::User => (
                NameId { format: "medcom:cprnumber".into(), value: opts.cpr.clone().unwrap_or_default() },
                4,
                Some(UserLog {
                    cpr: opts.cpr.clone(),
                    given_name: "Lars".into(),
                    surname: "Larsen".into(),
                    email: Some("lars.larsen@testby.example".into()),
                    role: Some(opts.role.clone()),
                    authorization_code: Some("J0184".into()),
                    occupation: Some("Læge".into()),
                }),
            ),
            CardType::System => {
                (NameId { format: "medcom:cvrnumber".into(), value: pki::DEV_CVR.into() }, 3, None)
            }
        };
        let mut id = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut id);
        IdCard {
            version: opts.version,
            issue_instant: not_before,
            issuer: "SeglDevClient".into(),
            name_id,
            holder_of_key: opts.sign,
            not_before,
            not_on_or_after: not_before.saturating_add(opts.lifetime).unwrap_or(not_before),
            id_card_id: B64.encode(id),
            card_type: opts.card,
            authentication_level: opts.level.unwrap_or(level),
            ocess_cert_hash,
            user,
            system: SystemLog {
                it_system_name: "Testby Journal".into(),
                care_provider_id: opts.cvr.clone(),
                care_provider_id_format: "medcom:cvrnumber".into(),
                care_provider_name: pki::DEV_ORG.into(),
            },
        }
    }
}

/// Wraps a signed card in a DGWS RequestSecurityToken envelope (spec §2.1 "Request").
pub fn request_envelope(signed_card: &[u8], message_id: &str, created: &str) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(signed_card.len() + 1500);
    soap::start_envelope(&mut w, message_id, created);
    w.start("soapenv:Body", &[], &[]);
    w.start("wst:RequestSecurityToken", &[], &[("Context", "www.sosi.dk")]);
    w.leaf("wst:TokenType", &[], &[], soap::ID_CARD_TOKEN_TYPE);
    w.leaf("wst:RequestType", &[], &[], "http://schemas.xmlsoap.org/ws/2005/02/trust/Issue");
    w.start("wst:Claims", &[], &[]);
    w.raw(signed_card);
    w.end("wst:Claims");
    w.start("wst:Issuer", &[], &[]);
    w.leaf("wsa:Address", &[], &[], "SeglDevClient");
    w.end("wst:Issuer");
    w.end("wst:RequestSecurityToken");
    w.end("soapenv:Body");
    w.end("soapenv:Envelope");
    w.into_bytes()
}

/// Reads the first certificate of a PEM file as DER.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, DevError> {
    let certs = crate::trust::read_pem_certificates(path).map_err(|e| DevError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    certs
        .into_iter()
        .next()
        .map(|c| c.to_vec())
        .ok_or_else(|| DevError::MissingCertificate(path.display().to_string()))
}
