//! `OIOSaml2Sosi` (spec §2.4, addendum §3.4): a NemLog-in OIOSAML 2.0 assertion and the
//! requesting system's healthcare context token in, an STS-signed user ID card out.
//!
//! The rules, in order (the README's "OIOSaml2Sosi rules" table lists each with its fault and
//! test):
//! 1. an OIO WS-Trust 1.3 issue request whose header signature verifies, by a trusted OCES
//!    certificate, with a fresh Timestamp (required: "the whole SOAP message must be signed");
//! 2. `wst14:ActAs` holds the NemLog-in assertion and, second, the context token;
//! 3. the assertion's own signature verifies, made by a trusted identity provider
//!    (`oiosaml2sosi.trusted_idps`); it is read only from the verified element;
//! 4. it is OIOSAML 2.0 (`DK-SAML-2.0`) with a CVR and a RID (or a `CVR:…-RID:…` Uid), within
//!    NotBefore/NotOnOrAfter ± the allowed drift;
//! 5. the context token names the IT system (`dk:healthcare:saml:attribute:ITSystemName`);
//! 6. the CPR is the one the CVR/RID register gives; a different CPR in the assertion is
//!    refused unless its identity provider is listed in `cpr_trust_certificates`;
//! 7. a claimed authorisation code must be registered for the CPR and match a claimed
//!    education code; a claimed national role must be held (trusted CVRs for `NBO` apply);
//! 8. a `wsa:MessageID` is accepted once per request signer within the assertion's lifetime.
//!
//! Decisions where the sources are silent: the context token is unsigned (the request
//! signature vouches for it, sender-vouches) and only read; OIOSAML 3 assertions are refused
//! (unsealed builds this request only from OIOSAML 2 ones); the card's NameID is the CPR
//! (`medcom:cprnumber`, what unsealed's test expects), its names come from the context token
//! or else CommonName and `-`, its e-mail from the assertion, its OCESCertHash is SHA-1 of the
//! user certificate the assertion carries (when it carries one).

use super::error::RequestError;
use super::oio::usercard::{self, CardSubject};
use super::oio::{self, envelope, tokens};
use super::pipeline::Request;
use super::{CoreContext, Policy};
use crate::audit::AuditToken;
use crate::roles::RoleEndpoint;
use crate::token::bootstrap::{self, BootstrapToken};
use crate::token::idcard::{NameId, SystemLog, UserLog};
use crate::token::ns;
use crate::xml::dsig::algorithm::DigestAlgorithm;
use crate::xml::{Document, NodeId};

/// OIOSAML 2 attribute names (spec §5.4).
const COMMON_NAME: &str = "urn:oid:2.5.4.3";
const SURNAME: &str = "urn:oid:2.5.4.4";
const EMAIL: &str = "urn:oid:0.9.2342.19200300.100.1.3";
const UID: &str = "urn:oid:0.9.2342.19200300.100.1.1";
const USER_CERTIFICATE: &str = "urn:oid:1.3.6.1.4.1.1466.115.121.1.8";
/// Context-token attributes (spec §2.4).
const CONTEXT_IT_SYSTEM: &str = "dk:healthcare:saml:attribute:ITSystemName";
const CONTEXT_AUTHORISATION: &str = "dk:healthcare:saml:attribute:UserAuthorizationCode";
const CONTEXT_EDUCATION: &str = "dk:healthcare:saml:attribute:UserEducationCode";
const CONTEXT_GIVEN_NAME: &str = "dk:healthcare:saml:attribute:UserGivenName";
const CONTEXT_SURNAME: &str = "dk:healthcare:saml:attribute:UserSurName";

/// Serves one request on the parsed `doc`; `corr` is what its answer echoes.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let cfg = &policy.config.oiosaml2sosi;
    let (rst, signer) = oio::receive_signed(ctx, policy, doc, request, corr)?;

    let (assertion_node, context_node) = match rst.act_as.as_slice() {
        [a, c] if doc.is(*a, ns::SAML, "Assertion") && doc.is(*c, ns::SAML, "Assertion") => (*a, *c),
        other => {
            return Err(RequestError::NotStsRequest(format!(
                "wst14:ActAs must hold the OIOSAML assertion and the context token (two saml:Assertion); it holds {} element(s)",
                other.len()
            )))
        }
    };
    let (assertion, idp_der) = trusted_assertion(policy, doc, assertion_node)?;
    request.audit.presented = Some(AuditToken::new("oiosaml", &assertion.id));
    let spec = assertion.attribute(bootstrap::SPEC_VER_2).unwrap_or("no DK-SAML-2.0 SpecVer");
    if spec != "DK-SAML-2.0" {
        return Err(RequestError::AssertionProfile(spec.to_owned()));
    }
    tokens::check_validity(&assertion, cfg.allowed_drift_secs, now)?;
    // The context token is read only for what the system states about its own use; the
    // request's signature is what vouches for it.
    let context = BootstrapToken::from_element(doc, context_node)?;
    let it_system = context.attribute(CONTEXT_IT_SYSTEM).ok_or(RequestError::ItSystemMissing)?.to_owned();

    let cvr = assertion
        .attribute(bootstrap::CVR_2)
        .ok_or(RequestError::TokenAttribute(bootstrap::CVR_2))?
        .to_owned();
    let rid = assertion
        .attribute(bootstrap::RID_2)
        .map(str::to_owned)
        .or_else(|| assertion.attribute(UID).and_then(|u| u.split_once("-RID:")).map(|(_, r)| r.to_owned()))
        .ok_or(RequestError::TokenAttribute(bootstrap::RID_2))?;
    let cvr_rid = format!("CVR:{cvr}-RID:{rid}");
    let cpr_trusted = policy.cpr_trusted_idps.contains(&idp_der);
    let cpr =
        match policy.persons.cpr_for_rid(&cvr, &rid).map_err(|_| RequestError::CprLookup(cvr_rid.clone()))? {
            Some(looked_up) => match assertion.attribute(bootstrap::CPR_2) {
                Some(sent) if sent != looked_up && !cpr_trusted => {
                    return Err(RequestError::CvrRidCprMismatch(format!("{cvr_rid},{sent}")));
                }
                Some(sent) if cpr_trusted => sent.to_owned(),
                _ => looked_up,
            },
            None => match assertion.attribute(bootstrap::CPR_2) {
                Some(sent) if cpr_trusted => sent.to_owned(),
                _ => return Err(RequestError::IllegalCvrRid(cvr_rid)),
            },
        };

    let education = context.attribute(CONTEXT_EDUCATION);
    let authorisation = context.attribute(CONTEXT_AUTHORISATION);
    let (role, authorisation_code) = match (education, authorisation) {
        // Both sent: the authorisation decides, and must go with the education code claimed.
        (Some(education), Some(code)) if education != usercard::NO_ROLE => {
            let resolved = usercard::resolve_role(policy, RoleEndpoint::Nbo, &cpr, &cvr, None, Some(code))?;
            if resolved.0 != education {
                return Err(RequestError::AuthorisationNotFound(format!(
                    "{{{code}, {education}}} claimed; {{{code}, {}}} registered",
                    resolved.0
                )));
            }
            resolved
        }
        (education, authorisation) => {
            usercard::resolve_role(policy, RoleEndpoint::Nbo, &cpr, &cvr, education, authorisation)?
        }
    };

    let until = assertion.not_on_or_after.unwrap_or(now);
    request.remembered =
        usercard::remember_message_id(ctx, &rst, &signer.der, until, cfg.allowed_drift_secs, now).await?;
    let common_name = assertion.attribute(COMMON_NAME).unwrap_or_default();
    let surname =
        context.attribute(CONTEXT_SURNAME).or_else(|| assertion.attribute(SURNAME)).unwrap_or("-").to_owned();
    let given_name = context.attribute(CONTEXT_GIVEN_NAME).map(str::to_owned).unwrap_or_else(|| {
        common_name.strip_suffix(surname.as_str()).unwrap_or(common_name).trim().to_owned()
    });
    let ocess_cert_hash = assertion.attribute(USER_CERTIFICATE).and_then(|b64| {
        use base64::Engine;
        let b64: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        Some(base64::engine::general_purpose::STANDARD.encode(DigestAlgorithm::Sha1.digest(&der)))
    });
    let subject = CardSubject {
        name_id: NameId { format: "medcom:cprnumber".into(), value: cpr.clone() },
        user: UserLog {
            cpr: Some(cpr),
            given_name: if given_name.is_empty() { "-".into() } else { given_name },
            surname,
            email: assertion.attribute(EMAIL).map(str::to_owned),
            role: Some(role),
            authorization_code: authorisation_code,
            occupation: None,
        },
        system: SystemLog {
            it_system_name: it_system,
            care_provider_id: cvr,
            care_provider_id_format: "medcom:cvrnumber".into(),
            care_provider_name: assertion.attribute(bootstrap::ORG_NAME_2).unwrap_or_default().to_owned(),
        },
        ocess_cert_hash,
    };
    let card = usercard::user_card(policy, subject, now, cfg.fuzzy_time_ms, cfg.id_card_duration_ms);
    usercard::issue(ctx, policy, request, &rst, &card, corr).await
}

/// Verifies the assertion's own signature and that a trusted identity provider made it; reads
/// the assertion only from the verified element. Returns it with the signer's certificate.
fn trusted_assertion(
    policy: &Policy,
    doc: &Document,
    node: NodeId,
) -> Result<(BootstrapToken, Vec<u8>), RequestError> {
    let verified = tokens::verify_token(doc, node, &policy.pinned_keys)?;
    tokens::require_signer(
        &verified,
        &policy.nemlogin_idps,
        "the OIOSAML assertion",
        "not by a trusted identity provider",
    )?;
    Ok((BootstrapToken::from_element(doc, verified.signed_element)?, verified.certificate_der))
}
