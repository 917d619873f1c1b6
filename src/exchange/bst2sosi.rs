//! `BST2SOSI` (spec §2.5, addendum §3.3, OQ10): a professional's bootstrap token in, an
//! STS-signed user ID card out.
//!
//! The rules, in order (the README's "BST2SOSI rules" table lists each with its fault and test):
//! 1. an OIO WS-Trust 1.3 issue request whose header signature verifies, by a trusted
//!    certificate, with a fresh Timestamp (required here);
//! 2. exactly one token in `wst14:ActAs`, a `saml:Assertion` whose own enveloped signature
//!    verifies; it is read only from the verified element;
//! 3. its Issuer is a trusted issuer (`[[bst2sosi.issuer]]`) and the signature was made with one
//!    of that issuer's signing certificates;
//! 4. it is of the profile the issuer issues (OIOH3BST, OIOH2BST, OIO3BST, told apart by their
//!    spec-version attributes) and carries that profile's required attributes;
//! 5. it names the allowed audience and is within NotBefore/NotOnOrAfter ± the allowed drift;
//! 6. holder-of-key (when the issuer's `validate_hok`): the request was signed with the
//!    certificate the token names (certificate equality, as NSP's .NET library checks it);
//! 7. the request signer is whitelisted for the issuer (when `whitelist_validation`), by subject
//!    serialNumber or DN;
//! 8. claims: `medcom:ITSystemName` required; not both `medcom:UserRole` and
//!    `medcom:UserAuthorizationCode`;
//! 9. the CPR: from the token (OIOH2BST, OIO3BST when present), else looked up by the
//!    professional's RID at the CVR or their NSIS UUID; names and e-mail from the person
//!    register; a claimed authorisation code must be registered for the CPR (its education
//!    code becomes the role); a claimed national role must be held (or granted by the token's
//!    OIO-BPP privileges at the CVR; a single granted role is the role when none is claimed,
//!    several are refused);
//! 10. a `wsa:MessageID` is accepted once per request signer within the token's lifetime.
//!
//! Decisions where the sources are silent: the issued card is a DGWS 1.0.1 user card of level 4
//! without OCESCertHash or holder-of-key confirmation (nobody's certificate stands behind it),
//! its NameID the `sosi:SubjectNameID` claim (`medcom:other`) or else the CPR
//! (`medcom:cprnumber`); without a role or authorisation claim its role is
//! `urn:dk:healthcare:no-role` (seal consumers need a non-empty role).

use jiff::Timestamp;

use super::error::RequestError;
use super::oio::usercard::{self, CardSubject};
use super::oio::{self, envelope, request, tokens};
use super::pipeline::Request;
use super::{CoreContext, Policy};
use crate::audit::AuditToken;
use crate::roles::RoleEndpoint;
use crate::token::bootstrap::{self, BootstrapToken, TokenProfile};
use crate::token::idcard::{NameId, SystemLog, UserLog};
use crate::xml::Document;

/// Claim URIs (addendum §3.3).
pub const CLAIM_IT_SYSTEM: &str = "medcom:ITSystemName";
/// The role claim.
pub const CLAIM_ROLE: &str = "medcom:UserRole";
/// The authorisation-code claim.
pub const CLAIM_AUTHORISATION: &str = "medcom:UserAuthorizationCode";
/// The NameID claim.
pub const CLAIM_SUBJECT_NAME_ID: &str = "sosi:SubjectNameID";

/// The professional behind an accepted token, and what the card will say of them.
struct Professional {
    cpr: String,
    cvr: String,
    org_name: String,
}

/// Serves one request on the parsed `doc`; `corr` is what its answer echoes.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let (rst, signer) = oio::receive_signed(ctx, policy, doc, request, corr)?;

    let presented = tokens::presented_bootstrap(ctx, policy, doc, &rst.act_as, "BST2SOSI")?;
    let (token_doc, token_node) = presented.locate(doc);
    let (token, idp) = tokens::trusted_bootstrap(&policy.idps, &policy.pinned_keys, token_doc, token_node)?;
    request.audit.presented = Some(AuditToken::new("bootstrap", &token.id));
    tokens::check_profile(&token, idp)?;
    check_audience_and_time(policy, &token, now)?;
    tokens::check_holder_of_key(&token, idp, &signer)?;
    if policy.config.bst2sosi.whitelist_validation && !idp.whitelists(&signer) {
        return Err(RequestError::NotWhitelisted(signer.subject_dn.clone()));
    }

    let it_system = request::claim(&rst.claims, CLAIM_IT_SYSTEM).filter(|v| !v.is_empty());
    let it_system = it_system.ok_or(RequestError::ItSystemMissing)?.to_owned();
    let role_claim = request::claim(&rst.claims, CLAIM_ROLE).filter(|v| !v.is_empty());
    let authorisation_claim = request::claim(&rst.claims, CLAIM_AUTHORISATION).filter(|v| !v.is_empty());
    // Checked before any lookup: the request itself is contradictory.
    if role_claim.is_some() && authorisation_claim.is_some() {
        return Err(RequestError::RoleAndAuthorisation);
    }
    let professional = professional(policy, &token, idp.profile())?;
    let user = policy
        .persons
        .user_data(&professional.cpr)
        .map_err(RequestError::Register)?
        .ok_or(RequestError::UserDataNotFound)?;
    // National roles the token's OIO-BPP privileges grant at the organisation: the issuer vouches
    // for them, so a claimed one among them needs no register, and an unclaimed single one is
    // the card's role.
    let granted = granted_national_roles(policy, &token, &professional.cvr)?;
    let (role, authorisation_code) = match (role_claim, authorisation_claim) {
        (Some(role), None) if granted.iter().any(|g| g == role) => (role.to_owned(), None),
        (None, None) if granted.len() == 1 => (granted[0].clone(), None),
        (None, None) if granted.len() > 1 => {
            return Err(RequestError::MultipleNationalRoles(granted.join(", ")))
        }
        _ => usercard::resolve_role(
            policy,
            RoleEndpoint::Sts,
            &professional.cpr,
            &professional.cvr,
            role_claim,
            authorisation_claim,
        )?,
    };

    let until = token.not_on_or_after.unwrap_or(now);
    let drift = policy.config.bst2sosi.allowed_drift_secs;
    request.remembered = usercard::remember_message_id(ctx, &rst, &signer.der, until, drift, now).await?;
    let name_id = match request::claim(&rst.claims, CLAIM_SUBJECT_NAME_ID).filter(|v| !v.is_empty()) {
        Some(alternative) => NameId { format: "medcom:other".into(), value: alternative.to_owned() },
        None => NameId { format: "medcom:cprnumber".into(), value: professional.cpr.clone() },
    };
    let cfg = &policy.config.bst2sosi;
    let subject = CardSubject {
        name_id,
        user: UserLog {
            cpr: Some(professional.cpr.clone()),
            given_name: user.given_name,
            surname: user.surname,
            email: user.email.or_else(|| token.attribute(bootstrap::EMAIL_3).map(str::to_owned)),
            role: Some(role),
            authorization_code: authorisation_code,
            occupation: None,
        },
        system: SystemLog {
            it_system_name: it_system,
            care_provider_id: professional.cvr,
            care_provider_id_format: "medcom:cvrnumber".into(),
            care_provider_name: professional.org_name,
        },
        ocess_cert_hash: None,
    };
    let card = usercard::user_card(policy, subject, now, cfg.fuzzy_time_ms, cfg.id_card_duration_ms);
    usercard::issue(ctx, policy, request, &rst, &card, corr).await
}

/// The national roles the token's OIO-BPP privileges grant at `cvr` (none without privileges).
fn granted_national_roles(
    policy: &Policy,
    token: &BootstrapToken,
    cvr: &str,
) -> Result<Vec<String>, RequestError> {
    use crate::token::privileges::{Privileges, PRIVILEGES_2, PRIVILEGES_3};
    let Some(value) = token.attribute(PRIVILEGES_2).or_else(|| token.attribute(PRIVILEGES_3)) else {
        return Ok(Vec::new());
    };
    let privileges =
        Privileges::from_base64(value, &policy.limits).map_err(RequestError::InvalidPrivileges)?;
    Ok(privileges
        .at_cvr(cvr)
        .into_iter()
        .filter(|p| p.starts_with(crate::roles::NATIONAL_ROLE_PREFIX))
        .map(str::to_owned)
        .collect())
}

fn check_audience_and_time(
    policy: &Policy,
    token: &BootstrapToken,
    now: Timestamp,
) -> Result<(), RequestError> {
    let cfg = &policy.config.bst2sosi;
    if !token.restricted_to(&cfg.allowed_audience) {
        return Err(RequestError::BootstrapAudience {
            actual: token.audiences(),
            allowed: cfg.allowed_audience.clone(),
        });
    }
    tokens::check_validity(token, cfg.allowed_drift_secs, now)
}

/// CPR, CVR and organisation name of the professional the token names.
fn professional(
    policy: &Policy,
    token: &BootstrapToken,
    profile: TokenProfile,
) -> Result<Professional, RequestError> {
    let (cvr, org_name) = match profile {
        TokenProfile::Oioh2Bst => (token.attribute(bootstrap::CVR_2), token.attribute(bootstrap::ORG_NAME_2)),
        _ => {
            (token.attribute(bootstrap::PROFESSIONAL_CVR), token.attribute(bootstrap::PROFESSIONAL_ORG_NAME))
        }
    };
    // Both are required attributes of every profile: checked before this is reached.
    let cvr = cvr.unwrap_or_default().to_owned();
    let org_name = org_name.unwrap_or_default().to_owned();
    let in_token = match profile {
        TokenProfile::Oioh2Bst => token.attribute(bootstrap::CPR_2),
        TokenProfile::Oio3Bst => token.attribute(bootstrap::CPR_3),
        // Citizen profiles are refused for BST2SOSI issuers when the configuration is read.
        _ => None,
    };
    if let Some(cpr) = in_token {
        return Ok(Professional { cpr: cpr.to_owned(), cvr, org_name });
    }
    let rid = token.attribute(bootstrap::PROFESSIONAL_RID).or_else(|| token.attribute(bootstrap::RID_2));
    // NSIS writes the persistent UUID as `urn:uuid:<uuid>` (unsealed's issuer does too); the
    // register keys on the bare UUID.
    let uuid = token
        .attribute(bootstrap::PROFESSIONAL_UUID)
        .map(|u| u.trim_start_matches("urn:uuid:").to_owned())
        .or_else(|| {
            // OIOH3/OIO3 NameIDs are the persistent UUID (`urn:uuid:<uuid>` or a data.gov.dk URI).
            token.name_id.rsplit([':', '/']).next().filter(|u| u.len() == 36).map(str::to_owned)
        });
    let persons = &policy.persons;
    if let Some(rid) = rid {
        if let Some(cpr) = persons.cpr_for_rid(&cvr, rid).map_err(RequestError::Register)? {
            return Ok(Professional { cpr, cvr, org_name });
        }
    }
    if let Some(uuid) = &uuid {
        if let Some(cpr) = persons.cpr_for_professional_uuid(uuid).map_err(RequestError::Register)? {
            return Ok(Professional { cpr, cvr, org_name });
        }
    }
    let tried = match (rid, uuid) {
        (Some(rid), _) => format!("CVR:{cvr}-RID:{rid}"),
        (None, Some(uuid)) => uuid,
        (None, None) => token.name_id.clone(),
    };
    Err(RequestError::CprLookup(tried))
}
