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
use crate::token::ns;
use crate::trust::SignerCertificate;
use crate::xml::{Document, NodeId};

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
    let oio::Received { rst, signed } = oio::receive(ctx, policy, doc, request, corr)?;
    let signed = signed.ok_or(RequestError::RequestUnsigned)?;

    let decrypted;
    let (token_doc, token_node) = match rst.act_as.as_slice() {
        [one] if doc.is(*one, ns::SAML, "Assertion") => (doc, *one),
        [one] if doc.is(*one, ns::SAML, "EncryptedAssertion") => {
            decrypted = decrypt_token(ctx, policy, doc, *one)?;
            (&decrypted, decrypted.root())
        }
        [one] => {
            return Err(RequestError::NotStsRequest(format!(
                "the presented token is a {}, not a saml:Assertion",
                doc.qname(*one)
            )))
        }
        other => {
            return Err(RequestError::NotStsRequest(format!(
                "wst14:ActAs holds {} tokens; BST2SOSI takes one bootstrap token",
                other.len()
            )))
        }
    };
    let (token, idp) = trusted_token(policy, token_doc, token_node)?;
    request.audit.presented = Some(AuditToken::new("bootstrap", &token.id));
    check_profile(&token, idp)?;
    check_audience_and_time(policy, &token, now)?;
    check_holder_of_key(&token, idp, &signed.signer)?;
    if policy.config.bst2sosi.whitelist_validation && !idp.whitelists(&signed.signer) {
        return Err(RequestError::NotWhitelisted(signed.signer.subject_dn.clone()));
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
    let replay_key = usercard::remember_message_id(ctx, &rst, &signed.signer.der, until, drift, now)?;
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
    usercard::issue(ctx, policy, request, &rst, &card, corr, replay_key).await
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

/// Decrypts a bootstrap token encrypted to the STS (`saml:EncryptedAssertion`, ENC-AUD shape)
/// with the decryption key in the HSM, and parses it. Whatever fails after the structure was
/// read gives the one `Undecryptable` answer: a wrong key, bad RSA padding, bad content padding
/// and a plaintext that is not XML look the same.
fn decrypt_token(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    encrypted: NodeId,
) -> Result<Document, RequestError> {
    use crate::xml::enc::{decrypt_encrypted_data, DecryptError};
    let decryptor = ctx.signer.decryptor().ok_or(RequestError::NoDecryptionKey)?;
    let data = doc
        .child(encrypted, ns::XENC, "EncryptedData")
        .ok_or(RequestError::Decryption(DecryptError::NotEncryptedData))?;
    let plaintext = decrypt_encrypted_data(doc, data, |transport, key| {
        crate::signing::decrypt::unwrap_key(decryptor, transport, key)
    })
    .map_err(RequestError::Decryption)?;
    let parsed = Document::parse(bytes::Bytes::from(plaintext), &policy.limits)
        .map_err(|_| RequestError::Decryption(DecryptError::Undecryptable))?;
    if !parsed.is(parsed.root(), ns::SAML, "Assertion") {
        return Err(RequestError::Decryption(DecryptError::Undecryptable));
    }
    Ok(parsed)
}

/// Verifies the token's own signature, finds its issuer among the trusted ones and checks the
/// signing certificate is one of that issuer's; reads the token only from the verified element.
fn trusted_token<'p>(
    policy: &'p Policy,
    doc: &Document,
    token: NodeId,
) -> Result<(BootstrapToken, &'p crate::trust::idp::TrustedIdp), RequestError> {
    let verified = tokens::verify_token(doc, token)?;
    let token = BootstrapToken::from_element(doc, verified.signed_element)?;
    let idp =
        policy.idps.get(&token.issuer).ok_or_else(|| RequestError::UntrustedIssuer(token.issuer.clone()))?;
    let whom = format!("which is not a signing key of issuer {}", token.issuer);
    tokens::require_signer(&verified, &idp.signing_certificates, "the bootstrap token", &whom)?;
    Ok((token, idp))
}

fn check_profile(token: &BootstrapToken, idp: &crate::trust::idp::TrustedIdp) -> Result<(), RequestError> {
    let expected = idp.profile();
    match token.profile() {
        Some(found) if found == expected => {}
        found => {
            return Err(RequestError::TokenProfile {
                issuer: token.issuer.clone(),
                expected: expected.name(),
                found: found.map_or("no known profile", TokenProfile::name),
            })
        }
    }
    match token.missing_attribute(expected) {
        Some(name) => Err(RequestError::TokenAttribute(name)),
        None => Ok(()),
    }
}

fn check_audience_and_time(
    policy: &Policy,
    token: &BootstrapToken,
    now: Timestamp,
) -> Result<(), RequestError> {
    let cfg = &policy.config.bst2sosi;
    if !token.audiences.contains(&cfg.allowed_audience) {
        return Err(RequestError::BootstrapAudience {
            actual: token.audiences.join(","),
            allowed: cfg.allowed_audience.clone(),
        });
    }
    tokens::check_validity(token, cfg.allowed_drift_secs, now)
}

fn check_holder_of_key(
    token: &BootstrapToken,
    idp: &crate::trust::idp::TrustedIdp,
    signer: &SignerCertificate,
) -> Result<(), RequestError> {
    if !idp.config.validate_hok {
        return Ok(());
    }
    match &token.holder_certificate {
        Some(cert) if token.holder_of_key && *cert == signer.der => Ok(()),
        Some(_) if token.holder_of_key => Err(RequestError::HolderOfKeyMismatch),
        _ => Err(RequestError::HolderOfKeyMissing),
    }
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
