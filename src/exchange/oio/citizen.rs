//! What the citizen exchanges (Bst2Idws, JWT2Idws, JWT2OIOSaml) do alike once the presented
//! token has told who the citizen is: the audience (audienceConfiguration), the CPR claim and
//! its match with the token's subject, the optional `medcom:UserRole` and `OnBehalfOf` claims,
//! and issuing the identity token (spec §5.2) holder-of-key bound to the requesting system.
//!
//! Decisions where the sources are silent (each tested, and listed in the README's citizen
//! rule table):
//! - the token's lifetime is the audience's `token_lifetime_secs`, and it never outlives the
//!   presented token (plus the drift tolerated on it): an exchange never extends a login;
//! - `medcom:UserRole` (addendum §3.1: "may contain … a local role") is the requesting
//!   system's statement, not something the STS can verify for a citizen; it is written to the
//!   token as `medcom:UserRole` so the service sees who said what, and only a short, printable
//!   value is taken;
//! - a `wsa:MessageID` is accepted once per requesting system within the presented token's
//!   lifetime.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::{envelope, request};
use crate::audit::AuditToken;
use crate::exchange::audiences::IdwsAudience;
use crate::exchange::error::RequestError;
use crate::exchange::pipeline::Request;
use crate::exchange::{CoreContext, Policy};
use crate::token::identity::{self, IdentityToken};
use crate::token::oiosaml::Attribute;
use crate::trust::SignerCertificate;

/// The CPR claim (seal: mandatory).
pub const CLAIM_CPR: &str = "dk:gov:saml:attribute:CprNumberIdentifier";
/// The OnBehalfOf claim.
pub const CLAIM_ON_BEHALF_OF: &str = "dk:healthcare:saml:attribute:OnBehalfOf";
/// The role claim.
pub const CLAIM_ROLE: &str = "medcom:UserRole";
/// The longest `medcom:UserRole` value taken.
const MAX_ROLE_LEN: usize = 256;

/// The citizen, as the presented token proves them.
#[derive(Debug, Clone)]
pub struct Citizen {
    /// Their CPR.
    pub cpr: String,
    /// The issued token's NameID (Format, value).
    pub name_id: (String, String),
    /// `dk:gov:saml:attribute:AssuranceLevel` (NIST level, "3" for NSIS Substantial).
    pub assurance_level: String,
    /// When the presented token expires, plus the drift tolerated on it.
    pub valid_until: Timestamp,
}

/// The NIST assurance level of an NSIS level of assurance (OIOSAML 3 `loa`, a JWT's `acr`).
pub fn assurance_level(nsis_loa: &str) -> &'static str {
    match nsis_loa.rsplit('/').next().unwrap_or(nsis_loa) {
        "High" => "4",
        "Low" => "2",
        _ => "3",
    }
}

/// The ValueType of a JWT in a BinarySecurityToken (spec §2.7).
pub const JWT_VALUE_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The JWT in ActAs (a `wsse:BinarySecurityToken` of the JWT ValueType, the only token),
/// verified; the request signer must be on its issuer's whitelist. Returns the JWT and the
/// citizen it names (NameID: the persistent CPR form citizens' OIOSAML 3 tokens carry).
pub fn presented_jwt(
    policy: &Policy,
    doc: &crate::xml::Document,
    rst: &request::OioRequest,
    signer: &SignerCertificate,
    request: &mut Request,
) -> Result<(crate::trust::jwt::VerifiedJwt, Citizen), RequestError> {
    use crate::token::ns;
    let token = match rst.act_as.as_slice() {
        [one]
            if doc.is(*one, ns::WSSE, "BinarySecurityToken")
                && doc.attribute(*one, "ValueType").as_deref() == Some(JWT_VALUE_TYPE) =>
        {
            *one
        }
        [one] => {
            return Err(RequestError::NotStsRequest(format!(
                "the presented token is a {}, not a wsse:BinarySecurityToken of ValueType {JWT_VALUE_TYPE}",
                doc.qname(*one)
            )))
        }
        other => {
            return Err(RequestError::NotStsRequest(format!(
                "wst14:ActAs holds {} tokens; this exchange takes one JWT",
                other.len()
            )))
        }
    };
    let text = doc.text(token);
    let applies_to = rst.applies_to.as_deref().unwrap_or_default();
    let jwt =
        policy.jwt_issuers.verify(text.trim(), applies_to, request.time.now).map_err(RequestError::Jwt)?;
    request.audit.presented = Some(AuditToken::new("jwt", jwt.id.as_deref().unwrap_or_default()));
    if policy.config.idws.whitelist_validation && !jwt.whitelists(signer) {
        return Err(RequestError::NotWhitelisted(signer.subject_dn.clone()));
    }
    let citizen = Citizen {
        cpr: jwt.cpr.clone(),
        name_id: (identity::NAMEID_PERSISTENT.to_owned(), format!("{}:{}", identity::CPR, jwt.cpr)),
        assurance_level: assurance_level(jwt.assurance.as_deref().unwrap_or_default()).to_owned(),
        valid_until: jwt.valid_until,
    };
    Ok((jwt, citizen))
}

/// A JWT exchange's request once its checks have passed.
pub struct JwtRequest {
    /// The request.
    pub rst: request::OioRequest,
    /// Its signer: the holder of the issued token's key.
    pub signer: Arc<SignerCertificate>,
    /// The verified JWT.
    pub jwt: crate::trust::jwt::VerifiedJwt,
    /// The citizen it names.
    pub citizen: Citizen,
    /// The audience (JWT support on).
    pub audience: Arc<IdwsAudience>,
    /// The role and OnBehalfOf attributes the claims give.
    pub extra: Vec<Attribute>,
}

/// What JWT2Idws and JWT2OIOSaml check alike, in order: the header-signed request, the JWT
/// ([`presented_jwt`]), the audience and its JWT switch (and, for `encrypted_only`, its
/// encryption certificate), the claims ([`claims`]), and the MessageID once per signer within
/// the JWT's lifetime (into [`Request::remembered`]).
pub async fn receive_jwt(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &crate::xml::Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
    encrypted_only: bool,
) -> Result<JwtRequest, RequestError> {
    let now = request.time.now;
    let (rst, signer) = super::receive_signed(ctx, policy, doc, request, corr)?;
    let (jwt, citizen) = presented_jwt(policy, doc, &rst, &signer, request)?;
    let audience = audience(policy, &rst, true)?;
    if encrypted_only && audience.recipient.is_none() {
        return Err(RequestError::AudienceWithoutEncryption(audience.config.audience.clone()));
    }
    let extra = claims(policy, &rst, &citizen, now)?;
    request.remembered =
        super::usercard::remember_message_id(ctx, &rst, &signer.der, jwt.valid_until, 0, now).await?;
    Ok(JwtRequest { rst, signer, jwt, citizen, audience, extra })
}

/// The claims every citizen exchange checks once it knows the citizen: the CPR claim
/// ([`check_cpr_claim`]), then the attributes `medcom:UserRole` and `OnBehalfOf` add.
pub fn claims(
    policy: &Policy,
    rst: &request::OioRequest,
    citizen: &Citizen,
    now: Timestamp,
) -> Result<Vec<Attribute>, RequestError> {
    check_cpr_claim(rst, citizen)?;
    let mut extra = Vec::new();
    extra.extend(role_attribute(rst)?);
    extra.extend(on_behalf_of(policy, rst, citizen, now)?);
    Ok(extra)
}

/// The audience `wsp:AppliesTo` names, configured in audienceConfiguration; `jwt`: the
/// presented token is a JWT, which the audience must have switched on.
pub fn audience(
    policy: &Policy,
    rst: &request::OioRequest,
    jwt: bool,
) -> Result<Arc<IdwsAudience>, RequestError> {
    let uri = rst.applies_to.clone().unwrap_or_default();
    let audience = policy.idws_audiences.get(&uri).ok_or(RequestError::UnknownAudience(uri))?;
    if jwt && !audience.config.jwt {
        return Err(RequestError::JwtNotEnabled(audience.config.audience.clone()));
    }
    Ok(audience.clone())
}

/// The CPR claim, required and equal to the presented token's subject (addendum §3.1).
pub fn check_cpr_claim(rst: &request::OioRequest, citizen: &Citizen) -> Result<(), RequestError> {
    let claimed = request::claim(&rst.claims, CLAIM_CPR).map(str::trim).filter(|v| !v.is_empty());
    match claimed {
        None => Err(RequestError::CprClaimMissing),
        Some(cpr) if cpr == citizen.cpr => Ok(()),
        Some(_) => Err(RequestError::CprPidMismatch),
    }
}

/// The `medcom:UserRole` claim as an attribute of the issued token, when made.
pub fn role_attribute(rst: &request::OioRequest) -> Result<Option<Attribute>, RequestError> {
    let Some(role) = request::claim(&rst.claims, CLAIM_ROLE).map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if role.chars().count() > MAX_ROLE_LEN || role.chars().any(char::is_control) {
        return Err(RequestError::ClaimValue(format!(
            "the {CLAIM_ROLE} claim must be at most {MAX_ROLE_LEN} printable characters"
        )));
    }
    Ok(Some(Attribute::new(CLAIM_ROLE, role.to_owned())))
}

/// The identity token's evidence for an `OnBehalfOf` claim: the relation is looked up in the
/// relation register, and must be in force now.
pub fn on_behalf_of(
    policy: &Policy,
    rst: &request::OioRequest,
    citizen: &Citizen,
    now: Timestamp,
) -> Result<Option<Attribute>, RequestError> {
    use crate::registers::RelationCheck;
    use crate::token::onbehalfof::{self, OnBehalfOfError};
    let Some(claim) = rst.claims.iter().find(|c| c.uri == CLAIM_ON_BEHALF_OF) else { return Ok(None) };
    let value = claim.values.first().map(|v| v.trim()).unwrap_or_default();
    if value.is_empty() {
        return Err(RequestError::OnBehalfOf(OnBehalfOfError::Empty));
    }
    let wanted = onbehalfof::parse(value).map_err(RequestError::OnBehalfOf)?;
    let relations = policy.relations.relations(&citizen.cpr, &wanted.cpr).map_err(RequestError::Register)?;
    let kind = wanted.kind.name();
    let relation = match crate::registers::relation_in_force(&relations, wanted.kind, now) {
        RelationCheck::InForce(relation) => relation,
        RelationCheck::Expired { until } => {
            return Err(RequestError::RelationExpired { kind, cpr: wanted.cpr, until: until.to_string() })
        }
        RelationCheck::NotYetValid { from } => {
            return Err(RequestError::RelationNotYetValid { kind, cpr: wanted.cpr, from: from.to_string() })
        }
        RelationCheck::None => return Err(RequestError::UnknownRelation { kind, cpr: wanted.cpr }),
    };
    let evidence = onbehalfof::evidence(&wanted, relation.kind);
    Ok(Some(Attribute::new(evidence.attribute, evidence.value)))
}

/// Everything the identity token says beyond the citizen.
pub struct Issue<'a> {
    /// Its audience.
    pub audience: &'a IdwsAudience,
    /// The requesting system: the holder of the token's key.
    pub holder: &'a SignerCertificate,
    /// Attributes after the citizen's (role, OnBehalfOf evidence), in order.
    pub extra: Vec<Attribute>,
}

/// Builds the identity token, signs it on the HSM (encrypting it when its audience has an
/// encryption certificate) and answers with it; the header is signed with the same key.
pub async fn issue_identity_token(
    ctx: &CoreContext,
    policy: &Policy,
    request: &mut Request,
    rst: &request::OioRequest,
    citizen: &Citizen,
    issue: Issue<'_>,
    corr: &envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let cfg = &issue.audience.config;
    let (not_before, not_on_or_after) = lifetime(cfg, now, citizen.valid_until);
    let mut attributes = vec![
        Attribute::new(identity::SPEC_VER, identity::DK_SAML_2_0.into()),
        Attribute::new(identity::ASSURANCE_LEVEL, citizen.assurance_level.clone()),
        Attribute::new(identity::CPR, citizen.cpr.clone()),
    ];
    attributes.extend(issue.extra);
    let token = IdentityToken {
        id: format!("_{}", envelope::uuid()),
        issue_instant: now,
        issuer: &policy.config.sts.issuer,
        name_id: (&citizen.name_id.0, &citizen.name_id.1),
        holder_certificate: &issue.holder.der,
        not_before,
        not_on_or_after,
        audience: &cfg.audience,
        attributes,
    };
    let delivery = super::deliver::Delivery {
        kind: "identity-token",
        algorithm: cfg.signature_algorithm,
        audience: &cfg.audience,
        encrypt_to: issue.audience.recipient.as_ref().map(|r| (r, cfg.content_encryption, cfg.key_transport)),
        applies_to: rst.applies_to.as_deref(),
        lifetime: (not_before, not_on_or_after),
    };
    let prepare = |algorithm, certificate: &str| token.prepare_signature(algorithm, certificate);
    super::deliver::sign_and_deliver(ctx, request, &token.id, prepare, delivery, corr).await
}

/// The issued token's validity: backdated against clock skew at the service, and ending at
/// the audience's lifetime or the presented token's end, whichever is first.
pub fn lifetime(
    cfg: &crate::config::IdwsAudienceConfig,
    now: Timestamp,
    valid_until: Timestamp,
) -> (Timestamp, Timestamp) {
    let not_before =
        now.saturating_sub(SignedDuration::from_secs(cfg.not_before_backdate_secs as i64)).unwrap_or(now);
    let end = now.saturating_add(SignedDuration::from_secs(cfg.token_lifetime_secs as i64)).unwrap_or(now);
    (not_before, end.min(valid_until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsis_levels_map_to_nist_levels() {
        assert_eq!(assurance_level("https://data.gov.dk/concept/core/nsis/loa/High"), "4");
        assert_eq!(assurance_level("https://data.gov.dk/concept/core/nsis/loa/Substantial"), "3");
        assert_eq!(assurance_level("Low"), "2");
        assert_eq!(assurance_level(""), "3");
    }

    #[test]
    fn the_token_never_outlives_what_it_was_exchanged_for() {
        let cfg: crate::config::IdwsAudienceConfig =
            toml::from_str("audience = \"https://fmk\"\ntoken_lifetime_secs = 3600").unwrap();
        let now: Timestamp = "2026-12-05T12:00:00Z".parse().unwrap();
        let late: Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        let soon: Timestamp = "2026-12-05T12:10:00Z".parse().unwrap();
        assert_eq!(
            lifetime(&cfg, now, late),
            ("2026-12-05T11:55:00Z".parse().unwrap(), "2026-12-05T13:00:00Z".parse().unwrap())
        );
        assert_eq!(lifetime(&cfg, now, soon).1, soon);
    }
}
