//! `SecurityTokenService` and `NewSecurityTokenService` (spec §2.1/§2.2): a self-signed ID
//! card in, an STS-signed ID card out.
//!
//! The pipeline, in order: parse → find the card → verify its signature (and read the card
//! only from the element that signature covered) → check the card (level, type, validity
//! window) → check the signer certificate (chain, revocation, kind, OCESCertHash) → check the
//! national role → remember the message id (replays are refused) → build the STS card → sign
//! it in the HSM → wrap it in the response. The README's "DGWS rules" table lists every rule
//! with its fault and its test.

use base64::engine::general_purpose::STANDARD as B64;
use std::sync::Arc;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};

pub mod envelope;

use super::endpoint::Endpoint;
use super::error::RequestError;
use super::fault;
use super::pipeline::{Request, RequestTime};
use super::replay::{self, Remembered};
use super::{CoreContext, Policy};
use crate::audit::{AuditCard, AuditToken, AuditTrail};
use crate::config::LowLevelPolicy;
use crate::roles::{RoleEndpoint, RoleHolder};
use crate::time::DgwsVersion;
use crate::token::idcard::{IdCard, NameId};
use crate::token::{ns, CardType};
use crate::trust::{CertificateKind, SignerCertificate};
use crate::xml::dsig::algorithm::{DigestAlgorithm, SignatureAlgorithm};
use crate::xml::dsig::verify;
use crate::xml::{Document, NodeId};
use envelope::Correlation;

/// Which of the two DGWS endpoints was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DgwsEndpoint {
    /// `NewSecurityTokenService`: the issued card's NameID describes the client certificate.
    New,
    /// `SecurityTokenService` (legacy).
    Legacy,
}

/// How long an issued card is valid, and how far back it starts (spec §3.4).
const ISSUED_LIFETIME: SignedDuration = SignedDuration::from_hours(24);
const ISSUED_BACKDATE: SignedDuration = SignedDuration::from_mins(5);

/// The STS's own DGWS output is RSA-SHA1: seal clients validate it against a schema that
/// allows nothing else (spec §2.1 "Output constraint").
pub(super) const ISSUED_SIGNATURE: SignatureAlgorithm = SignatureAlgorithm::RsaSha1;

/// Serves one DGWS issue request on the parsed `doc`, returning the response envelope. What
/// the answer echoes and what the audit record names are filled into `request` as soon as the
/// request reveals them, so that a later refusal echoes the request's message id.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &mut Request,
) -> Result<Vec<u8>, RequestError> {
    let endpoint = match request.endpoint {
        Endpoint::SecurityTokenService => DgwsEndpoint::Legacy,
        _ => DgwsEndpoint::New,
    };
    let mut correlation = Correlation::fresh(request.time.now);
    let result = issue_parsed(ctx, policy, endpoint, doc, &mut correlation, request).await;
    request.correlation = fault::Correlation::Dgws(correlation);
    result
}

/// The pipeline's DGWS steps after parsing.
async fn issue_parsed(
    ctx: &CoreContext,
    policy: &Policy,
    endpoint: DgwsEndpoint,
    doc: &Document,
    correlation: &mut Correlation,
    pipeline: &mut Request,
) -> Result<Vec<u8>, RequestError> {
    let RequestTime { now, sign_by } = pipeline.time;
    let audit = &mut pipeline.audit;
    let request = read_request(doc)?;
    if let Some(id) = &request.message_id {
        correlation.message_id = id.clone();
    }
    audit.message_id = request.message_id.clone();
    correlation.version = request.version;
    correlation.context = request.context.clone();

    let accepted = accepted_card(ctx, policy, doc, &request, now, audit)?;
    check_national_role(policy, &accepted.card)?;
    // A failure from here on is segl's: the pipeline forgets the id, and the client may resend
    // the same message.
    pipeline.remembered = remember_message_id(ctx, policy, &request, &accepted, now).await?;

    let issued = issued_card(policy, endpoint, &accepted, now);
    let credential = ctx.signer.credential();
    let unsigned = issued.prepare_signature(ISSUED_SIGNATURE, &credential.certificate_b64);
    let token = AuditToken::new("idcard", &issued.id_card_id);
    pipeline.record_issue(ctx, token, &credential.key_label)?;
    let value = ctx
        .signer
        .sign_digest(&credential, ISSUED_SIGNATURE.digest(), unsigned.signed_info_digest(), sign_by)
        .await?;
    let signed = unsigned.finish(&value);
    Ok(envelope::issue_response(correlation, now, &signed, &policy.config.sts.issuer))
}

/// The parts of the envelope the response echoes, the card element, and how many signatures
/// the document holds.
struct StsRequest {
    message_id: Option<String>,
    version: DgwsVersion,
    context: String,
    card: NodeId,
    signatures: usize,
}

fn read_request(doc: &Document) -> Result<StsRequest, RequestError> {
    let envelope = doc.root();
    if !doc.is(envelope, ns::SOAP, "Envelope") {
        return Err(RequestError::NotStsRequest("the document element is not a SOAP 1.1 Envelope".into()));
    }
    let security = doc.child(envelope, ns::SOAP, "Header").and_then(|h| doc.child(h, ns::WSSE, "Security"));
    let message_id = security.and_then(|s| doc.attribute(s, "id")).map(|id| id.into_owned());
    let version = security
        .and_then(|s| doc.child(s, ns::WSU, "Timestamp"))
        .and_then(|t| doc.child(t, ns::WSU, "Created"))
        .map(|c| DgwsVersion::of_timestamp(&doc.text(c)))
        .unwrap_or(DgwsVersion::V1_0_1);

    let body = doc
        .child(envelope, ns::SOAP, "Body")
        .ok_or_else(|| RequestError::NotStsRequest("no soapenv:Body".into()))?;
    let rst = doc.child(body, ns::WST_2005_02, "RequestSecurityToken").ok_or_else(|| {
        RequestError::NotStsRequest("the Body holds no wst:RequestSecurityToken (WS-Trust 2005/02)".into())
    })?;
    let context =
        doc.attribute(rst, "Context").map(|c| c.into_owned()).unwrap_or_else(|| "www.sosi.dk".into());
    let card = doc
        .child(rst, ns::WST_2005_02, "Claims")
        .and_then(|c| doc.child(c, ns::SAML, "Assertion"))
        .ok_or_else(|| {
            RequestError::NotStsRequest("wst:Claims holds no saml:Assertion (the ID card)".into())
        })?;
    let signatures = std::iter::once(envelope)
        .chain(doc.descendants(envelope))
        .filter(|&n| doc.is(n, ns::DS, "Signature"))
        .count();
    Ok(StsRequest { message_id, version, context, card, signatures })
}

/// A card that passed every check, and the certificate that signed it (levels 3 and 4).
struct AcceptedCard {
    card: IdCard,
    signer: Option<Arc<SignerCertificate>>,
}

/// Verifies the card's signature and everything about the card and its signer.
fn accepted_card(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &StsRequest,
    now: Timestamp,
    audit: &mut AuditTrail,
) -> Result<AcceptedCard, RequestError> {
    let accepted = match request.signatures {
        1 => signed_card(ctx, policy, doc, request.card, now, audit)?,
        0 => unsigned_card(policy, doc, request.card, audit)?,
        // seal requires exactly one signature in a DGWS STS request (spec §7.15); more is
        // either a broken client or an attempt to confuse which signature counts.
        n => return Err(RequestError::SignatureCount(n)),
    };
    check_validity(policy, &accepted.card, now)?;
    Ok(accepted)
}

/// A level 3/4 card: its signature verified, read only from the verified element, its signer
/// certificate trusted and of the kind the level requires.
fn signed_card(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    card: NodeId,
    now: Timestamp,
    audit: &mut AuditTrail,
) -> Result<AcceptedCard, RequestError> {
    let signature = doc.child(card, ns::DS, "Signature").ok_or(RequestError::SignatureCount(0))?;
    // No await below: the core's signer cache stays borrowed only while this card is checked.
    let mut signers = ctx.signers.borrow_mut();
    signers.refresh(policy.version, policy.trust.crls());
    let verified =
        verify::verify_enveloped_using(doc, signature, &crate::xml::dsig::Policy::FEDERATION, &*signers)?;
    if verified.signed_element != card {
        // verify_enveloped already insists on the enveloping element; this keeps the
        // invariant visible here: only the verified element is read below.
        return Err(RequestError::NotStsRequest("the signature does not cover the ID card".into()));
    }
    let card = IdCard::from_element(doc, verified.signed_element)?;
    // From here on the client is identified: its refusals are audited.
    audit.card = Some(audit_card(&card));
    audit.presented = Some(AuditToken::new("idcard", &card.id_card_id));
    let (validated, described) = super::validate_signer(&mut signers, policy, &verified.certificate_der, now);
    drop(signers);
    audit.client = described;
    check_level(&card)?;
    let signer = validated?;
    check_certificate_kind(&card, &signer)?;
    check_care_provider(&card, &signer)?;
    if let Some(hash) = &card.ocess_cert_hash {
        if !cert_hash_matches(hash, &signer.der) {
            return Err(RequestError::CertHashMismatch);
        }
    }
    Ok(AcceptedCard { card, signer: Some(signer) })
}

/// A card without a signature: only levels 1 and 2, and only when the policy issues them.
/// The card is read unverified here, so nothing from it is trusted beyond its level policy.
fn unsigned_card(
    policy: &Policy,
    doc: &Document,
    card: NodeId,
    audit: &mut AuditTrail,
) -> Result<AcceptedCard, RequestError> {
    let card = IdCard::from_element(doc, card)?;
    audit.card = Some(audit_card(&card));
    match card.authentication_level {
        3 | 4 => Err(RequestError::UnsignedCard(card.authentication_level)),
        level if policy.config.sts.low_levels == LowLevelPolicy::Refuse => {
            Err(RequestError::AuthenticationLevel(level))
        }
        _ => Ok(AcceptedCard { card, signer: None }),
    }
}

pub(super) fn audit_card(card: &IdCard) -> AuditCard {
    AuditCard {
        id: card.id_card_id.clone(),
        card_type: card.card_type.as_str().to_owned(),
        level: card.authentication_level,
        cpr: card.user.as_ref().and_then(|u| u.cpr.clone()),
        care_provider: card.system.care_provider_id.clone(),
        role: card.user.as_ref().and_then(|u| u.role.clone()),
    }
}

/// Levels with a signature: 4 (an employee vouches for themselves) only on user cards; 3 (a
/// system vouches) on system cards and on user cards a system signs for its user.
fn check_level(card: &IdCard) -> Result<(), RequestError> {
    match (card.authentication_level, card.card_type) {
        (4, CardType::User) | (3, _) => Ok(()),
        (4, CardType::System) => Err(RequestError::LevelForCardType { card: "system", level: 4 }),
        (level, _) => Err(RequestError::AuthenticationLevel(level)),
    }
}

/// IssueInstant ≤ now + skew, NotBefore − skew ≤ now < NotOnOrAfter + skew, and a window of at
/// most 24 h (spec §3.4), which also bounds the card's age.
pub(super) fn check_validity(policy: &Policy, card: &IdCard, now: Timestamp) -> Result<(), RequestError> {
    let skew = SignedDuration::from_secs(policy.config.sts.clock_skew_secs as i64);
    let fmt = |t: Timestamp| crate::time::format(t, DgwsVersion::V1_0_1);
    let later = now.saturating_add(skew).unwrap_or(now);
    let earlier = now.saturating_sub(skew).unwrap_or(now);
    if later < card.not_before {
        return Err(RequestError::CardNotYetValid(fmt(card.not_before)));
    }
    if earlier >= card.not_on_or_after {
        return Err(RequestError::CardExpired(fmt(card.not_on_or_after)));
    }
    if later < card.issue_instant {
        return Err(RequestError::CardIssuedInFuture(fmt(card.issue_instant)));
    }
    if card.not_before.duration_until(card.not_on_or_after) > ISSUED_LIFETIME {
        return Err(RequestError::CardLifetime);
    }
    Ok(())
}

/// Level 4 cards are signed by employee certificates (MOCES, OCES3 employee); level 3 cards by
/// organisation or function certificates (VOCES, FOCES, OCES3 organisation) (spec §2.1).
fn check_certificate_kind(card: &IdCard, signer: &SignerCertificate) -> Result<(), RequestError> {
    let card_name = card.card_type.as_str();
    match card.authentication_level {
        4 if signer.kind != CertificateKind::Employee => Err(RequestError::CertificateType {
            card: card_name,
            found: signer.kind,
            needed: "an employee certificate (MOCES / OCES3 employee) for level 4",
        }),
        3 if !matches!(signer.kind, CertificateKind::Organisation | CertificateKind::Function) => {
            Err(RequestError::CertificateType {
                card: card_name,
                found: signer.kind,
                needed:
                    "an organisation or function certificate (VOCES / FOCES / OCES3 organisation) for level 3",
            })
        }
        _ => Ok(()),
    }
}

/// A card speaks for the organisation its certificate belongs to: when the certificate names a
/// CVR, a `medcom:cvrnumber` CareProviderID must be that CVR. Without this, any employee could
/// claim a trusted CVR's national roles (the trusted-CVR rule trusts the care provider).
fn check_care_provider(card: &IdCard, signer: &SignerCertificate) -> Result<(), RequestError> {
    match &signer.organisation_cvr {
        Some(cvr)
            if card.system.care_provider_id_format == "medcom:cvrnumber"
                && &card.system.care_provider_id != cvr =>
        {
            Err(RequestError::CareProviderMismatch {
                card: card.system.care_provider_id.clone(),
                certificate: cvr.clone(),
            })
        }
        _ => Ok(()),
    }
}

/// OCESCertHash is base64 SHA-1 (28 characters, seal) or SHA-256 (44 characters, unsealed)
/// of the signing certificate's DER (spec §3.5).
fn cert_hash_matches(claimed: &str, cert_der: &[u8]) -> bool {
    let alg = match claimed.len() {
        28 => DigestAlgorithm::Sha1,
        44 => DigestAlgorithm::Sha256,
        _ => return false,
    };
    B64.encode(alg.digest(cert_der)) == claimed
}

/// A national role claimed in `medcom:UserRole` must be defined and held (or the care
/// provider trusted for the DGWS endpoints).
fn check_national_role(policy: &Policy, card: &IdCard) -> Result<(), RequestError> {
    let Some(user) = &card.user else { return Ok(()) };
    let Some(role) = &user.role else { return Ok(()) };
    let cvr = if card.system.care_provider_id_format == "medcom:cvrnumber" {
        card.system.care_provider_id.as_str()
    } else {
        ""
    };
    policy.roles.check(RoleEndpoint::Sts, role, RoleHolder { cpr: user.cpr.as_deref(), cvr })?;
    Ok(())
}

/// Records the request's message id for the card's lifetime; a repeat from the same client is
/// refused. Returns the key, so that a failure on segl's side can forget it again.
async fn remember_message_id(
    ctx: &CoreContext,
    policy: &Policy,
    request: &StsRequest,
    accepted: &AcceptedCard,
    now: Timestamp,
) -> Result<Option<Remembered>, RequestError> {
    let Some(message_id) = &request.message_id else { return Ok(None) };
    // The client is its certificate; an unsigned (level 1/2) card has none, so its issuer and
    // system stand in.
    let client: Vec<u8> = match &accepted.signer {
        Some(cert) => cert.der.clone(),
        None => format!("{}\n{}", accepted.card.issuer, accepted.card.system.it_system_name).into_bytes(),
    };
    let key = replay::key(&client, message_id);
    let skew = SignedDuration::from_secs(policy.config.sts.clock_skew_secs as i64);
    let expires = accepted.card.not_on_or_after.saturating_add(skew).unwrap_or(accepted.card.not_on_or_after);
    ctx.remember_message_id(key, message_id, expires, now).await.map(Some)
}

/// The STS card: the client's user and system data, the STS as issuer, a fresh id and the
/// STS validity window (spec §2.1 step 2).
fn issued_card(policy: &Policy, endpoint: DgwsEndpoint, accepted: &AcceptedCard, now: Timestamp) -> IdCard {
    let client = &accepted.card;
    let not_before = now.saturating_sub(ISSUED_BACKDATE).unwrap_or(now);
    let name_id = match (endpoint, &accepted.signer) {
        (DgwsEndpoint::New, Some(signer)) => NameId {
            format: "medcom:other".into(),
            value: format!(
                "SubjectDN={{{}}},IssuerDN={{{}}},CertSerial={{{}}}",
                signer.subject_dn, signer.issuer_dn, signer.serial_decimal
            ),
        },
        // Decision (spec §2.2 [?]): the legacy endpoint keeps the client's own NameID, as
        // seal's copyToVOCESSignedIDCard does when not asked for certificate attributes; so do
        // unsigned (level 1/2) cards, which have no certificate to describe.
        _ => client.name_id.clone(),
    };
    IdCard {
        version: client.version,
        issue_instant: not_before,
        issuer: policy.config.sts.issuer.clone(),
        name_id,
        // Holder-of-key names the OCES signature; cards of level 1/2 have none.
        holder_of_key: accepted.signer.is_some(),
        not_before,
        not_on_or_after: not_before.saturating_add(ISSUED_LIFETIME).unwrap_or(not_before),
        id_card_id: IdCard::fresh_id(),
        card_type: client.card_type,
        authentication_level: client.authentication_level,
        // The client's value is copied; when absent, SHA-1 of its certificate (spec §3.5).
        // Level 1/2 cards have no certificate and get none.
        ocess_cert_hash: accepted.signer.as_ref().map(|signer| {
            client
                .ocess_cert_hash
                .clone()
                .unwrap_or_else(|| B64.encode(DigestAlgorithm::Sha1.digest(&signer.der)))
        }),
        user: client.user.clone(),
        system: client.system.clone(),
    }
}
