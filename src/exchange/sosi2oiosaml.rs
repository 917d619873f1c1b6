//! `Sosi2OIOSaml` (spec §2.3, addendum §1, §3.4): a user's STS-signed ID card in, an OIOSAML
//! 2.0 assertion for a configured audience out, signed on the HSM and encrypted to the
//! audience (ENC-AUD).
//!
//! The rules, in order (the README's "Sosi2OIOSaml rules" table lists each with its fault and
//! its test):
//! 1. the message is an OIO WS-Trust 1.3 issue request; a header signature is not required
//!    (unsealed sends none, and NSP's guide says this exchange "requires no certificate"), but
//!    one that is present must verify, by a trusted certificate, with a fresh Timestamp;
//! 2. the card comes from `wst14:ActAs` (or, by a SecurityTokenReference, from the header, as
//!    seal's "ID card in header" option sends it); exactly one token;
//! 3. its signature verifies and was made with one of this STS's published certificates
//!    (active, next, recently retired): only a card this STS issued is exchanged;
//! 4. it is a user card, within its validity window, and no older (by IssueInstant) than the
//!    audience's `idCardMaxAgeMins`;
//! 5. `wsp:AppliesTo` names a configured audience (iboConfig);
//! 6. its NameID describes the user's certificate (the `medcom:other` CertificateInfo form a
//!    NewSecurityTokenService card carries, spec §3.3): the assertion's subject comes from it;
//! 7. a `wsa:MessageID` is accepted once per card within the card's lifetime.
//!
//! Decisions where the spec is silent: OCES3 employee cards (no RID) are exchanged, with
//! RidNumberIdentifier left out (unsealed's enabled OCES3 test passes against TEST1); the
//! assertion's lifetime and delivery window are the audience's offsets (defaults: −5 min,
//! +12 h and +5 min, what TEST1 answered with), capped at the card's own expiry so that an
//! exchange never extends a login.

use jiff::{SignedDuration, Timestamp};

use super::dgws::{audit_card, check_validity};
use super::error::RequestError;
use super::oio::{self, envelope, request, tokens};
use super::pipeline::Request;
use super::replay::{self, Remembered};
use super::{CoreContext, Policy};
use crate::audit::AuditToken;
use crate::token::oiosaml::{Attribute, Bootstrap, CertificateInfo, OioSamlAssertion};
use crate::token::{ns, CardType, IdCard};
use crate::xml::{Document, NodeId};

/// The CertificateInfo NameID format of NewSecurityTokenService cards.
const CERTIFICATE_INFO_FORMAT: &str = "medcom:other";

/// Serves one Sosi2OIOSaml request on the parsed `doc`; `corr` is what its answer echoes.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    // No header signature is required here; one that is present has verified.
    let oio::Received { rst, signed: _ } = oio::receive(ctx, policy, doc, request, corr)?;

    let card_node = presented_card(doc, &rst)?;
    let card = sts_card(ctx, doc, card_node)?;
    request.audit.card = Some(audit_card(&card));
    request.audit.presented = Some(AuditToken::new("idcard", &card.id_card_id));
    if card.card_type != CardType::User {
        return Err(RequestError::CardKind { found: card.card_type.as_str(), needed: "user" });
    }
    check_validity(policy, &card, now)?;

    let audience_uri = rst.applies_to.clone().unwrap_or_default();
    let audience =
        policy.audiences.get(&audience_uri).ok_or(RequestError::UnknownAudience(audience_uri))?.clone();
    let age = card.issue_instant.duration_until(now);
    let max = SignedDuration::from_mins(i64::from(audience.config.id_card_max_age_mins));
    if age > max {
        return Err(RequestError::CardTooOld {
            age_mins: age.as_mins(),
            max_mins: audience.config.id_card_max_age_mins,
            audience: audience.config.audience.clone(),
        });
    }
    if card.name_id.format != CERTIFICATE_INFO_FORMAT {
        return Err(RequestError::CardContent(format!(
            "its NameID has format {:?}; a NewSecurityTokenService card describes the user's certificate ({CERTIFICATE_INFO_FORMAT})",
            card.name_id.format
        )));
    }
    let info = CertificateInfo::parse(&card.name_id.value).ok_or_else(|| {
        RequestError::CardContent(
            "its NameID is not the SubjectDN/IssuerDN/CertSerial certificate description".into(),
        )
    })?;

    request.remembered = remember_message_id(ctx, policy, &rst, &card, now).await?;
    build_and_sign(ctx, policy, doc, request, &rst, &card, card_node, &audience, &info, corr).await
}

/// The one token in ActAs, or the card in the header when ActAs is absent (seal accepts the
/// card from ActAs first, else from `wsse:Security`).
fn presented_card(doc: &Document, rst: &request::OioRequest) -> Result<NodeId, RequestError> {
    let card = match rst.act_as.as_slice() {
        [one] => *one,
        [] => rst.security.and_then(|s| doc.child(s, ns::SAML, "Assertion")).ok_or_else(|| {
            RequestError::NotStsRequest("no ID card in wst14:ActAs or in wsse:Security".into())
        })?,
        more => {
            return Err(RequestError::NotStsRequest(format!(
                "wst14:ActAs holds {} tokens; Sosi2OIOSaml takes one",
                more.len()
            )))
        }
    };
    if !doc.is(card, ns::SAML, "Assertion") {
        return Err(RequestError::NotStsRequest(format!(
            "the presented token is a {}, not a saml:Assertion",
            doc.qname(card)
        )));
    }
    Ok(card)
}

/// Verifies the card's own signature and that this STS made it; reads the card only from the
/// verified element.
fn sts_card(ctx: &CoreContext, doc: &Document, card: NodeId) -> Result<IdCard, RequestError> {
    let verified = tokens::verify_token(doc, card, &crate::xml::dsig::ParseEachTime)?;
    tokens::require_signer(
        &verified,
        &ctx.signer.published().certificates,
        "the ID card",
        "not by this STS",
    )?;
    Ok(IdCard::from_element(doc, verified.signed_element)?)
}

/// Records the request's MessageID for the card's lifetime, keyed by the card; a repeat is
/// refused. Requests without a MessageID (allowed by the IDWS-H schema) cannot be told apart.
async fn remember_message_id(
    ctx: &CoreContext,
    policy: &Policy,
    rst: &request::OioRequest,
    card: &IdCard,
    now: Timestamp,
) -> Result<Option<Remembered>, RequestError> {
    let Some(message_id) = &rst.message_id else { return Ok(None) };
    let client = format!("sosi2oiosaml\n{}", card.id_card_id);
    let key = replay::key(client.as_bytes(), message_id);
    let skew = SignedDuration::from_secs(policy.config.sts.clock_skew_secs as i64);
    let expires = card.not_on_or_after.saturating_add(skew).unwrap_or(card.not_on_or_after);
    ctx.remember_message_id(key, message_id, expires, now).await.map(Some)
}

/// The OIOSAML attributes of a user card (spec §5.1), in seal's order.
fn attributes(card: &IdCard, info: &CertificateInfo) -> Vec<Attribute> {
    let user = card.user.clone().unwrap_or_default();
    let attr = |name, friendly_name, value: String| Attribute { name, friendly_name, value };
    let mut out = vec![
        attr("urn:oid:2.5.4.4", Some("surName"), user.surname.clone()),
        attr("urn:oid:2.5.4.3", Some("CommonName"), format!("{} {}", user.given_name, user.surname)),
        attr("urn:oid:0.9.2342.19200300.100.1.3", Some("email"), user.email.clone().unwrap_or_default()),
        attr("dk:gov:saml:attribute:AssuranceLevel", None, "3".into()),
        attr("dk:gov:saml:attribute:SpecVer", None, "DK-SAML-2.0".into()),
    ];
    if card.system.care_provider_id_format == "medcom:cvrnumber" {
        out.push(attr(
            "dk:gov:saml:attribute:CvrNumberIdentifier",
            None,
            card.system.care_provider_id.clone(),
        ));
    }
    out.push(attr("urn:oid:2.5.4.10", Some("organizationName"), card.system.care_provider_name.clone()));
    if let Some(cpr) = &user.cpr {
        out.push(attr("dk:gov:saml:attribute:CprNumberIdentifier", None, cpr.clone()));
    }
    out.push(attr("urn:oid:2.5.29.29", None, info.issuer.clone()));
    out.push(attr("urn:oid:0.9.2342.19200300.100.1.1", Some("Uid"), info.subject_serial.clone()));
    if let Some(rid) = info.rid() {
        out.push(attr("dk:gov:saml:attribute:RidNumberIdentifier", None, rid.to_owned()));
    }
    out.push(attr("urn:oid:2.5.4.5", Some("serialNumber"), info.serial_hex.clone()));
    out.push(attr("dk:gov:saml:attribute:IsYouthCert", None, "false".into()));
    out
}

/// Builds the assertion, signs it on the HSM, encrypts it to the audience and signs the
/// answer's header on the HSM.
#[allow(clippy::too_many_arguments)]
async fn build_and_sign(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &mut Request,
    rst: &request::OioRequest,
    card: &IdCard,
    card_node: NodeId,
    audience: &super::audiences::Audience,
    info: &CertificateInfo,
    corr: &envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let cfg = &audience.config;
    let offset = |ms: i64| now.saturating_add(SignedDuration::from_millis(ms)).unwrap_or(now);
    // An exchange never outlives the login it stands for.
    let cap = |t: Timestamp| t.min(card.not_on_or_after);
    let not_before = offset(cfg.not_before_offset_ms);
    let not_on_or_after = cap(offset(cfg.not_on_or_after_offset_ms));
    let bootstrap_bytes =
        cfg.include_bst.then(|| crate::xml::c14n::exclusive_to_vec(doc, card_node, None, &[]));
    let assertion = OioSamlAssertion {
        id: format!("_{}", envelope::uuid()),
        issue_instant: now,
        issuer: &policy.config.sts.issuer,
        name_id_format: crate::token::oiosaml::NAMEID_X509,
        name_id: info.name_id(),
        recipient: &cfg.recipient_url,
        delivery_not_on_or_after: cap(offset(cfg.delivery_not_on_or_after_offset_ms)),
        not_before,
        not_on_or_after,
        audience: &cfg.audience,
        authn_instant: card.issue_instant,
        authn_context: crate::token::oiosaml::AC_X509,
        attributes: attributes(card, info),
        bootstrap: bootstrap_bytes
            .as_deref()
            .map(|token| Bootstrap { provider: &policy.config.sts.fault_actor, token }),
    };
    let delivery = oio::deliver::Delivery {
        kind: "oiosaml",
        algorithm: oio::deliver::ASSERTION_SIGNATURE,
        audience: &cfg.audience,
        encrypt_to: Some((&audience.recipient, cfg.content_encryption, cfg.key_transport)),
        applies_to: rst.applies_to.as_deref(),
        lifetime: (not_before, not_on_or_after),
    };
    let prepare = |algorithm, certificate: &str| assertion.prepare_signature(algorithm, certificate);
    oio::deliver::sign_and_deliver(ctx, request, &assertion.id, prepare, delivery, corr).await
}
