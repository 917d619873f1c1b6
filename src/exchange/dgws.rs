//! `SecurityTokenService` and `NewSecurityTokenService` (spec §2.1/§2.2): a self-signed ID
//! card in, an STS-signed ID card out.
//!
//! The pipeline, in order: parse → find the card → verify its signature (and read the card
//! only from the element that signature covered) → check the signer certificate → check the
//! card → build the STS card → sign it in the HSM → wrap it in the response.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};

use super::error::RequestError;
use super::soap::{self, Correlation};
use super::CoreContext;
use crate::time::DgwsVersion;
use crate::token::idcard::{IdCard, NameId};
use crate::token::{ns, CardType};
use crate::trust::{CertificateKind, SignerCertificate};
use crate::xml::dsig::algorithm::{DigestAlgorithm, SignatureAlgorithm};
use crate::xml::dsig::verify;
use crate::xml::{Document, NodeId};

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
const ISSUED_SIGNATURE: SignatureAlgorithm = SignatureAlgorithm::RsaSha1;

/// A refusal together with what the fault envelope echoes.
pub struct Refused {
    /// Why.
    pub error: RequestError,
    /// What the fault echoes.
    pub correlation: Correlation,
}

/// Serves one DGWS issue request, returning the response envelope.
pub async fn issue(
    ctx: &CoreContext,
    endpoint: DgwsEndpoint,
    body: Bytes,
    now: Timestamp,
) -> Result<Vec<u8>, Box<Refused>> {
    let mut correlation = Correlation::fresh(now);
    issue_card(ctx, endpoint, body, now, &mut correlation)
        .await
        .map_err(|error| Box::new(Refused { error, correlation }))
}

/// The pipeline; `correlation` is filled in as soon as the request is understood, so that a
/// later refusal echoes the request's message id.
async fn issue_card(
    ctx: &CoreContext,
    endpoint: DgwsEndpoint,
    body: Bytes,
    now: Timestamp,
    correlation: &mut Correlation,
) -> Result<Vec<u8>, RequestError> {
    let doc = Document::parse(body, &ctx.shared.limits)?;
    let request = read_request(&doc)?;
    if let Some(id) = request.message_id {
        correlation.message_id = id;
    }
    correlation.version = request.version;
    correlation.context = request.context;

    let (client_card, signer) = verified_card(ctx, &doc, request.card, now)?;
    let issued = issued_card(ctx, endpoint, &client_card, &signer, now);
    let credential = ctx.signer.credential();
    let unsigned = issued.prepare_signature(ISSUED_SIGNATURE, &credential.certificate_b64);
    let value =
        ctx.signer.sign_digest(&credential, ISSUED_SIGNATURE.digest(), unsigned.signed_info_digest()).await?;
    let signed = unsigned.finish(&value);
    Ok(soap::issue_response(correlation, now, &signed, &ctx.shared.config.sts.issuer))
}

/// The parts of the envelope the response echoes, and the card element.
struct StsRequest {
    message_id: Option<String>,
    version: DgwsVersion,
    context: String,
    card: NodeId,
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

    // seal requires exactly one signature in a DGWS STS request (spec §7.15); anything else
    // is either a broken client or an attempt to confuse which signature counts.
    let signatures = std::iter::once(envelope)
        .chain(doc.descendants(envelope))
        .filter(|&n| doc.is(n, ns::DS, "Signature"))
        .count();
    if signatures != 1 {
        return Err(RequestError::SignatureCount(signatures));
    }
    Ok(StsRequest { message_id, version, context, card })
}

/// Verifies the card's signature and everything about the card and its signer. Returns the
/// card as read from the verified element, and the validated signer certificate.
fn verified_card(
    ctx: &CoreContext,
    doc: &Document,
    card: NodeId,
    now: Timestamp,
) -> Result<(IdCard, SignerCertificate), RequestError> {
    let signature = doc.child(card, ns::DS, "Signature").ok_or(RequestError::SignatureCount(0))?;
    let verified = verify::verify_enveloped(doc, signature)?;
    if verified.signed_element != card {
        // verify_enveloped already insists on the enveloping element; this keeps the
        // invariant visible here: only the verified element is read below.
        return Err(RequestError::NotStsRequest("the signature does not cover the ID card".into()));
    }
    let client_card = IdCard::from_element(doc, verified.signed_element)?;

    if !matches!(client_card.authentication_level, 3 | 4) {
        return Err(RequestError::AuthenticationLevel(client_card.authentication_level));
    }
    check_validity(ctx, &client_card, now)?;

    let signer = ctx.shared.trust.validate(&verified.certificate_der, now)?;
    check_certificate_kind(&client_card, &signer)?;
    if let Some(hash) = &client_card.ocess_cert_hash {
        if !cert_hash_matches(hash, &signer.der) {
            return Err(RequestError::CertHashMismatch);
        }
    }
    Ok((client_card, signer))
}

/// NotBefore − skew ≤ now < NotOnOrAfter + skew, and a window of at most 24 h (spec §3.4).
fn check_validity(ctx: &CoreContext, card: &IdCard, now: Timestamp) -> Result<(), RequestError> {
    let skew = SignedDuration::from_secs(ctx.shared.config.sts.clock_skew_secs as i64);
    let fmt = |t: Timestamp| crate::time::format(t, DgwsVersion::V1_0_1);
    if now.saturating_add(skew).is_ok_and(|t| t < card.not_before) {
        return Err(RequestError::CardNotYetValid(fmt(card.not_before)));
    }
    if now.saturating_sub(skew).is_ok_and(|t| t >= card.not_on_or_after) {
        return Err(RequestError::CardExpired(fmt(card.not_on_or_after)));
    }
    if card.not_before.duration_until(card.not_on_or_after) > ISSUED_LIFETIME {
        return Err(RequestError::CardLifetime);
    }
    Ok(())
}

/// User cards are signed by employee certificates, system cards by organisation or function
/// certificates (spec §2.1 step 1).
fn check_certificate_kind(card: &IdCard, signer: &SignerCertificate) -> Result<(), RequestError> {
    let ok = match card.card_type {
        CardType::User => signer.kind == CertificateKind::Employee,
        CardType::System => matches!(signer.kind, CertificateKind::Organisation | CertificateKind::Function),
    };
    if ok {
        return Ok(());
    }
    Err(match card.card_type {
        CardType::User => RequestError::CertificateType {
            card: "user",
            found: signer.kind,
            needed: "an employee certificate (MOCES / OCES3 employee)",
        },
        CardType::System => RequestError::CertificateType {
            card: "system",
            found: signer.kind,
            needed: "an organisation or function certificate (VOCES / FOCES / OCES3 organisation)",
        },
    })
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

/// The STS card: the client's user and system data, the STS as issuer, a fresh id and the
/// STS validity window (spec §2.1 step 2).
fn issued_card(
    ctx: &CoreContext,
    endpoint: DgwsEndpoint,
    client: &IdCard,
    signer: &SignerCertificate,
    now: Timestamp,
) -> IdCard {
    let not_before = now.saturating_sub(ISSUED_BACKDATE).unwrap_or(now);
    let name_id = match endpoint {
        DgwsEndpoint::New => NameId {
            format: "medcom:other".into(),
            value: format!(
                "SubjectDN={{{}}},IssuerDN={{{}}},CertSerial={{{}}}",
                signer.subject_dn, signer.issuer_dn, signer.serial_decimal
            ),
        },
        // Decision (spec §2.2 [?]): the legacy endpoint keeps the client's own NameID, as
        // seal's copyToVOCESSignedIDCard does when not asked for certificate attributes.
        DgwsEndpoint::Legacy => client.name_id.clone(),
    };
    let mut id = [0u8; 16];
    // An all-zero id on RNG failure would still be a valid card; uniqueness is best effort.
    let _ = aws_lc_rs::rand::fill(&mut id);
    IdCard {
        version: client.version,
        issue_instant: not_before,
        issuer: ctx.shared.config.sts.issuer.clone(),
        name_id,
        holder_of_key: true,
        not_before,
        not_on_or_after: not_before.saturating_add(ISSUED_LIFETIME).unwrap_or(not_before),
        id_card_id: B64.encode(id),
        card_type: client.card_type,
        authentication_level: client.authentication_level,
        ocess_cert_hash: Some(
            client
                .ocess_cert_hash
                .clone()
                .unwrap_or_else(|| B64.encode(DigestAlgorithm::Sha1.digest(&signer.der))),
        ),
        user: client.user.clone(),
        system: client.system.clone(),
    }
}
