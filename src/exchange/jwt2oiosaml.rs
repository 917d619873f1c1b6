//! `JWT2OIOSaml` (spec §2.8, addendum §1, OQ9): a citizen's JWT in, an OIOSAML 2.0 assertion
//! for a service provider (an audience with an encryption certificate) out, signed on the HSM
//! and encrypted to the audience.
//!
//! No source shows this exchange's wire format. Decisions (README, "JWT2OIOSaml"), made so
//! that what unsealed's Sosi2OIOSaml parser reads works unchanged:
//! - the request is JWT2Idws's (spec §2.7): the JWT in `wst14:ActAs` as a
//!   `wsse:BinarySecurityToken`, AppliesTo the service provider's entity ID, the CPR claim,
//!   header-signed by a whitelisted system; the same checks, in the same order;
//! - the audience is an audienceConfiguration row with JWT support and an encryption
//!   certificate (an assertion is always encrypted, as Sosi2OIOSaml's); one without a
//!   certificate is refused as out of scope (`wst:InvalidScope`);
//! - the answer is Sosi2OIOSaml's (spec §2.3): RSTRC/RSTR with TokenType SAMLV2.0,
//!   `RequestedSecurityToken/saml:EncryptedAssertion` (ENC-AUD: aes128-cbc + rsa-1_5 by
//!   default, the only pair unsealed decrypts), AppliesTo and Lifetime, header signed by the
//!   STS with the assertion's key;
//! - the assertion is OIOSAML 2.0 (`DK-SAML-2.0`, the generation unsealed's `OIOSAMLToken`
//!   reads fully): Issuer the STS, SIG-ASSERTION after Issuer, NameID the persistent
//!   `dk:gov:saml:attribute:CprNumberIdentifier:<cpr>`, bearer confirmation to the audience's
//!   recipient URL (delivery within 5 minutes), Conditions with the identity token's lifetime
//!   rule, an AuthnStatement at the JWT's `auth_time` (else `iat`) with the JWT's `acr` as the
//!   class, and the citizen attributes: surName, CommonName (the JWT's names, else the person
//!   register's), AssuranceLevel, SpecVer, CprNumberIdentifier, then the role and OnBehalfOf
//!   evidence as the identity token carries them.

use jiff::SignedDuration;

use super::error::RequestError;
use super::oio::citizen::{self, Citizen};
use super::oio::{self, envelope};
use super::pipeline::Request;
use super::{CoreContext, Policy};
use crate::token::identity;
use crate::token::oiosaml::{Attribute, OioSamlAssertion};
use crate::trust::jwt::VerifiedJwt;

/// How long the service provider has to receive the assertion (SubjectConfirmationData).
const DELIVERY: SignedDuration = SignedDuration::from_mins(5);
/// The authentication class when the JWT names none.
const AC_UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified";

/// Serves one request on the parsed `doc`; `corr` is what its answer echoes.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &crate::xml::Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let presented = citizen::receive_jwt(ctx, policy, doc, request, corr, true).await?;
    build_and_deliver(ctx, policy, request, presented, corr).await
}

/// Builds the assertion from the accepted request and delivers it encrypted to the audience.
async fn build_and_deliver(
    ctx: &CoreContext,
    policy: &Policy,
    request: &mut Request,
    presented: citizen::JwtRequest,
    corr: &envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let citizen::JwtRequest { rst, jwt, citizen, audience, extra, .. } = presented;
    // Checked by `receive_jwt` (the audience takes only encrypted assertions).
    let recipient = audience
        .recipient
        .as_ref()
        .ok_or_else(|| RequestError::AudienceWithoutEncryption(audience.config.audience.clone()))?;
    let mut attributes = subject_attributes(policy, &jwt, &citizen)?;
    attributes.extend(extra);

    let cfg = &audience.config;
    let (not_before, not_on_or_after) = citizen::lifetime(cfg, now, citizen.valid_until);
    let assertion = OioSamlAssertion {
        id: format!("_{}", envelope::uuid()),
        issue_instant: now,
        issuer: &policy.config.sts.issuer,
        name_id_format: &citizen.name_id.0,
        name_id: citizen.name_id.1.clone(),
        recipient: cfg.recipient_url.as_deref().unwrap_or(&cfg.audience),
        delivery_not_on_or_after: now.saturating_add(DELIVERY).unwrap_or(now).min(not_on_or_after),
        not_before,
        not_on_or_after,
        audience: &cfg.audience,
        authn_instant: jwt.authenticated_at.or(jwt.issued_at).unwrap_or(now),
        authn_context: jwt.assurance.as_deref().filter(|acr| acr.contains(':')).unwrap_or(AC_UNSPECIFIED),
        attributes,
        bootstrap: None,
    };
    let delivery = oio::deliver::Delivery {
        kind: "oiosaml",
        algorithm: cfg.signature_algorithm,
        audience: &cfg.audience,
        encrypt_to: Some((recipient, cfg.content_encryption, cfg.key_transport)),
        applies_to: rst.applies_to.as_deref(),
        lifetime: (not_before, not_on_or_after),
    };
    let prepare = |algorithm, certificate: &str| assertion.prepare_signature(algorithm, certificate);
    oio::deliver::sign_and_deliver(ctx, request, &assertion.id, prepare, delivery, corr).await
}

/// The OIOSAML 2 attributes about the citizen, in seal's order: names (the JWT's, else the
/// person register's; left out when neither has them), assurance, spec version, CPR.
fn subject_attributes(
    policy: &Policy,
    jwt: &VerifiedJwt,
    citizen: &Citizen,
) -> Result<Vec<Attribute>, RequestError> {
    let registered = match (&jwt.family_name, &jwt.name) {
        (Some(_), Some(_)) => None,
        _ => policy.persons.user_data(&citizen.cpr).map_err(RequestError::Register)?,
    };
    let surname = jwt.family_name.clone().or_else(|| registered.as_ref().map(|u| u.surname.clone()));
    let common_name = jwt
        .name
        .clone()
        .or_else(|| match (&jwt.given_name, &jwt.family_name) {
            (Some(given), Some(family)) => Some(format!("{given} {family}")),
            _ => None,
        })
        .or_else(|| registered.as_ref().map(|u| format!("{} {}", u.given_name, u.surname)));
    let mut out = Vec::new();
    if let Some(surname) = surname {
        out.push(Attribute { name: "urn:oid:2.5.4.4", friendly_name: Some("surName"), value: surname });
    }
    if let Some(common_name) = common_name {
        out.push(Attribute {
            name: "urn:oid:2.5.4.3",
            friendly_name: Some("CommonName"),
            value: common_name,
        });
    }
    out.push(Attribute::new(identity::ASSURANCE_LEVEL, citizen.assurance_level.clone()));
    out.push(Attribute::new(identity::SPEC_VER, identity::DK_SAML_2_0.into()));
    out.push(Attribute::new(identity::CPR, citizen.cpr.clone()));
    Ok(out)
}
