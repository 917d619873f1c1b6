//! What the OIO exchanges that issue an ID card share (BST2SOSI, OIOSaml2Sosi): resolving the
//! user's role from the claims against the registers, building the user card, remembering the
//! request's MessageID, signing the card and answering with it.

use jiff::{SignedDuration, Timestamp};

use super::{envelope, request};
use crate::audit::AuditToken;
use crate::exchange::dgws::{check_validity, ISSUED_SIGNATURE};
use crate::exchange::error::RequestError;
use crate::exchange::pipeline::Request;
use crate::exchange::replay::{self, Remembered};
use crate::exchange::{CoreContext, Policy};
use crate::roles::{RoleEndpoint, RoleHolder};
use crate::time::DgwsVersion;
use crate::token::idcard::{IdCard, NameId, SystemLog, UserLog};
use crate::token::CardType;

/// The role of a card whose user claims none.
pub const NO_ROLE: &str = "urn:dk:healthcare:no-role";

/// The card's role and authorisation code from what the request claims: a claimed
/// authorisation code must be registered for the CPR (its education code becomes the role); a
/// claimed national role must be held; nothing claimed is `NO_ROLE`.
pub fn resolve_role(
    policy: &Policy,
    endpoint: RoleEndpoint,
    cpr: &str,
    cvr: &str,
    role: Option<&str>,
    authorisation: Option<&str>,
) -> Result<(String, Option<String>), RequestError> {
    match (role.filter(|r| !r.is_empty() && *r != NO_ROLE), authorisation.filter(|a| !a.is_empty())) {
        (Some(_), Some(_)) => Err(RequestError::RoleAndAuthorisation),
        (_, Some(code)) => {
            let held = policy.authorisations.authorisations(cpr).map_err(RequestError::Register)?;
            if held.is_empty() {
                return Err(RequestError::MissingAuthorisation);
            }
            match held.iter().find(|a| a.code == code) {
                Some(found) => Ok((found.education_code.clone(), Some(found.code.clone()))),
                None => {
                    let available: Vec<String> =
                        held.iter().map(|a| format!("{{{}, {}}}", a.code, a.education_code)).collect();
                    Err(RequestError::AuthorisationNotFound(available.join(", ")))
                }
            }
        }
        (Some(role), None) => {
            policy.roles.check(endpoint, role, RoleHolder { cpr: Some(cpr), cvr })?;
            Ok((role.to_owned(), None))
        }
        (None, None) => Ok((NO_ROLE.to_owned(), None)),
    }
}

/// Who the issued card is about and for.
pub struct CardSubject {
    /// `saml:NameID`.
    pub name_id: NameId,
    /// The UserLog statement.
    pub user: UserLog,
    /// The SystemLog statement.
    pub system: SystemLog,
    /// `sosi:OCESCertHash`, when the user's certificate is known.
    pub ocess_cert_hash: Option<String>,
}

/// A DGWS 1.0.1 user card of level 4 issued by this STS, valid from `now − backdate` for
/// `duration`.
pub fn user_card(
    policy: &Policy,
    subject: CardSubject,
    now: Timestamp,
    backdate_ms: u64,
    duration_ms: u64,
) -> IdCard {
    let not_before = now.saturating_sub(SignedDuration::from_millis(backdate_ms as i64)).unwrap_or(now);
    let not_on_or_after =
        not_before.saturating_add(SignedDuration::from_millis(duration_ms as i64)).unwrap_or(not_before);
    IdCard {
        version: DgwsVersion::V1_0_1,
        issue_instant: not_before,
        issuer: policy.config.sts.issuer.clone(),
        name_id: subject.name_id,
        holder_of_key: false,
        not_before,
        not_on_or_after,
        id_card_id: IdCard::fresh_id(),
        card_type: CardType::User,
        authentication_level: 4,
        ocess_cert_hash: subject.ocess_cert_hash,
        user: Some(subject.user),
        system: subject.system,
    }
}

/// Records the request's MessageID from `client` until `until` (plus skew); a repeat is
/// refused. Returns the key, for [`Request::remembered`]: the pipeline forgets it if the
/// request fails after this.
pub async fn remember_message_id(
    ctx: &CoreContext,
    rst: &request::OioRequest,
    client: &[u8],
    until: Timestamp,
    skew_secs: u64,
    now: Timestamp,
) -> Result<Option<Remembered>, RequestError> {
    let Some(message_id) = &rst.message_id else { return Ok(None) };
    let key = replay::key(client, message_id);
    let skew = SignedDuration::from_secs(skew_secs as i64);
    let expires = until.saturating_add(skew).unwrap_or(until);
    ctx.remember_message_id(key, message_id, expires, now).await.map(Some)
}

/// Signs `card` on the HSM and answers with it (RSTR with the attached references to
/// `#IDCard`), header signed on the HSM.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    request: &mut Request,
    rst: &request::OioRequest,
    card: &IdCard,
    corr: &envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    // A card this STS issues must pass its own checks (24 h window).
    check_validity(policy, card, request.time.now)?;
    let credential = ctx.signer.credential();
    let unsigned = card.prepare_signature(ISSUED_SIGNATURE, &credential.certificate_b64);
    let sign_by = request.time.sign_by;
    request.record_issue(ctx, AuditToken::new("idcard", &card.id_card_id), &credential.key_label)?;
    let value = ctx
        .signer
        .sign_digest(&credential, ISSUED_SIGNATURE.digest(), unsigned.signed_info_digest(), sign_by)
        .await?;
    let signed = unsigned.finish(&value);
    let body = envelope::TokenResponse {
        token_type: envelope::TOKEN_TYPE_SAML2,
        token: &signed,
        applies_to: rst.applies_to.as_deref(),
        lifetime: (card.not_before, card.not_on_or_after),
        reference: Some(crate::token::idcard::CARD_ID),
    }
    .body_content(corr);
    // The header is signed with the card's key (see `sign_envelope_with`).
    super::sign_envelope_with(ctx, &credential, corr, request.time.now, &body, sign_by).await
}
