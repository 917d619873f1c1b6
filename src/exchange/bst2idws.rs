//! `Bst2Idws` (spec §2.6, addendum §3.1): a citizen's bootstrap token in, an IDWS identity
//! token for one audience out, holder-of-key bound to the system that asked.
//!
//! The rules, in order (the README's "citizen exchanges" table lists each with its fault and
//! test):
//! 1. an OIO WS-Trust 1.3 issue request whose header signature verifies, by a trusted
//!    certificate, with a fresh Timestamp (required: the signer becomes the token's holder);
//! 2. exactly one token in `wst14:ActAs`, a `saml:Assertion` (or a `saml:EncryptedAssertion`
//!    to the STS, decrypted in the HSM) whose own enveloped signature verifies; it is read only
//!    from the verified element;
//! 3. its Issuer is a trusted citizen issuer (`[[idws.issuer]]`) and the signature was made
//!    with one of that issuer's signing certificates;
//! 4. it is of the profile the issuer issues (OIOSAML 3 citizen, SEB OIO2BST citizen, NemLog-in,
//!    legacy bearer) with that profile's required attributes;
//! 5. it names the issuer's allowed audience (NSP's "BST2IDWS assertion has an invalid
//!    audience" fault) and is within NotBefore/NotOnOrAfter ± `idws.allowed_drift_secs`;
//! 6. holder-of-key (when the issuer's `validate_hok`, and never for the bearer profile): the
//!    request was signed with the certificate the token names;
//! 7. the request signer is whitelisted for the issuer (when `idws.whitelist_validation`);
//! 8. `wsp:AppliesTo` names a configured audience;
//! 9. the CPR claim is made and is the token's subject: its CPR, or the CPR the person
//!    register gives for its PID (NSP's PID-CPR service) or, for a NemLog-in token naming an
//!    employee certificate, for its CVR and RID;
//! 10. `medcom:UserRole` and `OnBehalfOf` (see [`super::oio::citizen`]);
//! 11. a `wsa:MessageID` is accepted once per request signer within the token's lifetime.

use jiff::{SignedDuration, Timestamp};

use super::error::RequestError;
use super::oio::citizen::{self, Citizen};
use super::oio::{self, envelope, tokens, usercard};
use super::pipeline::Request;
use super::{CoreContext, Policy};
use crate::audit::AuditToken;
use crate::token::bootstrap::{self, BootstrapToken, SubjectSerial, TokenProfile};

/// Serves one request on the parsed `doc`; `corr` is what its answer echoes.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &crate::xml::Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let (rst, signer) = oio::receive_signed(ctx, policy, doc, request, corr)?;

    let presented = tokens::presented_bootstrap(ctx, policy, doc, &rst.act_as, "Bst2Idws")?;
    let (token_doc, token_node) = presented.locate(doc);
    let (token, idp) =
        tokens::trusted_bootstrap(&policy.citizen_idps, &policy.pinned_keys, token_doc, token_node)?;
    request.audit.presented = Some(AuditToken::new("bootstrap", &token.id));
    tokens::check_profile(&token, idp)?;
    let cfg = &policy.config.idws;
    // Required of every citizen issuer when the configuration is read.
    let allowed = idp.config.allowed_audience.as_deref().unwrap_or_default();
    if !token.restricted_to(allowed) {
        return Err(RequestError::CitizenAudience { actual: token.audiences(), allowed: allowed.to_owned() });
    }
    tokens::check_validity(&token, cfg.allowed_drift_secs, now)?;
    tokens::check_holder_of_key(&token, idp, &signer)?;
    if cfg.whitelist_validation && !idp.whitelists(&signer) {
        return Err(RequestError::NotWhitelisted(signer.subject_dn.clone()));
    }

    let audience = citizen::audience(policy, &rst, false)?;
    let citizen = citizen_of(policy, &token, idp.profile(), cfg.allowed_drift_secs, now)?;
    let extra = citizen::claims(policy, &rst, &citizen, now)?;

    let until = token.not_on_or_after.unwrap_or(now);
    request.remembered =
        usercard::remember_message_id(ctx, &rst, &signer.der, until, cfg.allowed_drift_secs, now).await?;
    let issue = citizen::Issue { audience: &audience, holder: &signer, extra };
    citizen::issue_identity_token(ctx, policy, request, &rst, &citizen, issue, corr).await
}

/// Who the token names: its CPR (OIOSAML 3 and SEB citizen tokens) or the CPR registered for
/// its PID (NemLog-in and legacy tokens); the issued token keeps the token's NameID.
fn citizen_of(
    policy: &Policy,
    token: &BootstrapToken,
    profile: TokenProfile,
    drift_secs: u64,
    now: Timestamp,
) -> Result<Citizen, RequestError> {
    let persons = &policy.persons;
    let cpr = match (token.citizen_cpr(), token.subject_serial()) {
        (Some(cpr), _) => cpr.to_owned(),
        (None, Some(SubjectSerial::Pid(pid))) => persons
            .cpr_for_pid(pid)
            .map_err(RequestError::Register)?
            .ok_or_else(|| RequestError::PidLookup(pid.to_owned()))?,
        // NemLog-in's bootstrap tokens may name the person by an employee certificate (the
        // captured seal.java sample does): the CPR the CVR/RID register gives.
        (None, Some(SubjectSerial::CvrRid { cvr, rid })) => persons
            .cpr_for_rid(cvr, rid)
            .map_err(RequestError::Register)?
            .ok_or_else(|| RequestError::CprLookup(format!("CVR:{cvr}-RID:{rid}")))?,
        (None, None) => return Err(RequestError::TokenAttribute(bootstrap::CPR_2)),
    };
    let assurance_level = match profile {
        TokenProfile::Oio3BstCitizen => {
            citizen::assurance_level(token.attribute(bootstrap::NSIS_LOA).unwrap_or_default()).to_owned()
        }
        TokenProfile::Oio2BstCitizen => {
            token.attribute(bootstrap::ASSURANCE_LEVEL_2).unwrap_or("3").to_owned()
        }
        // The legacy token's one attribute is named "Attribute" (FriendlyName AssuranceLevel).
        TokenProfile::LegacyBearer => token.attribute("Attribute").unwrap_or("3").to_owned(),
        _ => "3".to_owned(),
    };
    let end = token.not_on_or_after.unwrap_or(now);
    let valid_until = end.saturating_add(SignedDuration::from_secs(drift_secs as i64)).unwrap_or(end);
    Ok(Citizen {
        cpr,
        name_id: (token.name_id_format.clone(), token.name_id.clone()),
        assurance_level,
        valid_until,
    })
}
