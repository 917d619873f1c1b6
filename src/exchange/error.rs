//! Every reason a request is refused, and — in one place — the SOAP fault and HTTP status
//! each maps to.
//!
//! Decisions where the spec is silent (§4.3, §6.1):
//! - ID-card rejections use the DGWS 1.1 lower-case `dgws:*` codes, with the `dgws` prefix
//!   bound to `http://www.dgws.dk/dgws/2007/12/dgws-1.1` on the fault; a request that is not a
//!   well-formed WS-Trust issue request gets `wst:InvalidRequest` (WS-Trust 2005/02, the
//!   family's own namespace); HTTP-level problems get SOAP 1.1 `soapenv:Client`, and
//!   failures of segl itself `dgws:internalerror`.
//! - HTTP status: SOAP 1.1 §6.2 prescribes 500 for a fault about the message; HTTP-level
//!   refusals use the status that names them (404, 405, 411, 413, 431). Clients look for a
//!   fault in every response regardless of status (spec §1.2).
//! - The OIO WS-Trust endpoints answer in their own dialect (see [`RequestError::fault`]): the
//!   WS-Trust 1.3 codes of NSP's fault catalogue (addendum §4), the faultstring prefixed with
//!   the code's standard text as the catalogue shows ("The request was invalid or malformed:
//!   …", "Authentication failed: …", "The specified request failed: …"), and the actor
//!   `dk:sosi:sts:<check>`. What a DGWS-shaped cause becomes there is decided per variant in
//!   `oio_fault` below: an untrusted, badly signed or expired input token is
//!   `wst:FailedAuthentication` (the captured OIO fault sample is exactly that), a replayed
//!   MessageID or a malformed message `wst:InvalidRequest`, an unknown audience
//!   `wst:InvalidScope` (AppliesTo is the request's scope), segl's own failures
//!   `wst:RequestFailed`. HTTP-level and load refusals keep `soapenv:Client`/`soapenv:Server`
//!   in both dialects: nothing about the token was judged.

use super::endpoint::Endpoint;
use super::fault::{Fault, FaultCode, FaultDialect};
use crate::roles::RoleError;
use crate::signing::SigningError;
use crate::token::CardError;
use crate::trust::{CertificateKind, TrustError};
use crate::xml::dsig::verify::DsigError;
use crate::xml::enc::DecryptError;
use crate::xml::XmlError;

/// Why a request was not served.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No endpoint at this path.
    #[error("no STS endpoint at {0}")]
    UnknownEndpoint(String),
    /// Only POST is served.
    #[error("method {0} is not allowed; use POST")]
    MethodNotAllowed(String),
    /// Body larger than the configured limit.
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// Request head larger than the configured limit.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge { limit: usize },
    /// Neither Content-Length nor a supported transfer coding.
    #[error("request without Content-Length (chunked bodies are not accepted)")]
    LengthRequired,
    /// Refused by admission control: it could not be served within its deadline, or its
    /// client already holds its fair share, or the server is shutting down.
    #[error("the STS is at capacity ({reason}); retry in {retry_after_secs} s")]
    Overloaded { reason: &'static str, retry_after_secs: u32 },
    /// Admitted, but its signature had not started when its deadline was about to pass (the
    /// HSM was not asked): answered at once rather than late.
    #[error("the STS is at capacity (queued past its deadline, {} ms); retry in {} s", waited.as_millis(), super::SHED_RETRY_AFTER_SECS)]
    QueuedPastDeadline { waited: std::time::Duration },
    /// The HTTP request itself is malformed.
    #[error("malformed HTTP request: {0}")]
    BadHttp(String),
    /// The body is not acceptable XML.
    #[error("the request is not acceptable XML: {0}")]
    Xml(#[from] XmlError),
    /// The XML is not the SOAP/WS-Trust message this endpoint takes.
    #[error("not a security token request this endpoint takes: {0}")]
    NotStsRequest(String),
    /// The document holds a number of `ds:Signature` elements other than one.
    #[error("a DGWS STS request must hold exactly one ds:Signature (the ID card's); found {0}")]
    SignatureCount(usize),
    /// The card is structurally invalid.
    #[error("{0}")]
    Card(#[from] CardError),
    /// The card's authentication level is not served.
    #[error("authentication level {0} is not accepted here (levels 3 and 4 are)")]
    AuthenticationLevel(u8),
    /// The authentication level does not fit the card type.
    #[error("a {card} card cannot have authentication level {level}")]
    LevelForCardType { card: &'static str, level: u8 },
    /// A level 3 or 4 card without its OCES signature.
    #[error("an ID card of authentication level {0} must carry its ds:Signature")]
    UnsignedCard(u8),
    /// The card's signature does not verify.
    #[error("the ID card signature does not verify: {0}")]
    Signature(#[from] DsigError),
    /// The signer certificate is not trusted.
    #[error("the ID card signer certificate is not acceptable: {0}")]
    Certificate(#[from] TrustError),
    /// The certificate type does not fit the card type.
    #[error("a {card} card cannot be signed with {} certificate (it needs {needed})", .found.with_article())]
    CertificateType { card: &'static str, found: CertificateKind, needed: &'static str },
    /// The card names a care provider other than the organisation of its certificate.
    #[error(
        "the card's care provider CVR {card} is not the CVR {certificate} of the certificate that signed it"
    )]
    CareProviderMismatch { card: String, certificate: String },
    /// `sosi:OCESCertHash` names a different certificate than the one that signed.
    #[error("sosi:OCESCertHash does not match the certificate that signed the card")]
    CertHashMismatch,
    /// The card is not valid yet.
    #[error("the ID card is not valid before {0}")]
    CardNotYetValid(String),
    /// The card has expired.
    #[error("the ID card expired at {0}")]
    CardExpired(String),
    /// The card's IssueInstant lies in the future.
    #[error("the ID card was issued in the future ({0})")]
    CardIssuedInFuture(String),
    /// The card's validity window is longer than DGWS allows.
    #[error("the ID card's validity window exceeds 24 hours")]
    CardLifetime,
    /// The national role the card claims is not accepted.
    #[error("{0}")]
    Role(#[from] RoleError),
    /// The DGWS message id was already used by this client within the card's lifetime.
    #[error("message id {0:?} was already received; send a new request with a new message id")]
    DuplicateMessageId(String),
    /// The cluster's replay store (Redis) could not check the message id in time, and the
    /// configuration refuses such requests rather than risk a replay.
    #[error("the STS cannot check the message id against replay now; try again shortly")]
    ReplayStoreUnavailable,
    /// The request's WS-Security header signature does not verify.
    #[error("Unable to validate envelope signature: {0}")]
    EnvelopeSignature(DsigError),
    /// The certificate that signed the request's header is not acceptable.
    #[error("the request signer certificate is not acceptable: {0}")]
    EnvelopeCertificate(TrustError),
    /// The header Timestamp is missing, unreadable or outside the clock skew.
    #[error("the request's wsu:Timestamp {0}")]
    Timestamp(String),
    /// The presented token was not issued (signed) by this STS.
    #[error("Token in request signed by untrusted party ({0})")]
    UntrustedToken(String),
    /// The presented token's signature does not verify.
    #[error("the presented token's signature does not verify: {0}")]
    TokenSignature(DsigError),
    /// The exchange takes another kind of ID card.
    #[error("a {found} ID card was presented; this exchange takes a {needed} card")]
    CardKind { found: &'static str, needed: &'static str },
    /// The card is older than the audience accepts.
    #[error("the ID card was issued {age_mins} minutes ago; audience {audience} accepts cards up to {max_mins} minutes old")]
    CardTooOld { age_mins: i64, max_mins: u32, audience: String },
    /// The card lacks what the issued token must carry.
    #[error("the ID card cannot be exchanged: {0}")]
    CardContent(String),
    /// AppliesTo names no configured audience.
    #[error("no audience is configured for AppliesTo {0:?}")]
    UnknownAudience(String),
    /// The issued token could not be encrypted to its audience (its configured certificate).
    #[error("the token could not be encrypted to audience {audience}: {reason}")]
    Encryption { audience: String, reason: String },
    /// The exchange requires a header signature and the request carries none.
    #[error("Unable to validate envelope signature: the request carries no header signature")]
    RequestUnsigned,
    /// The bootstrap token could not be read.
    #[error("{0}")]
    Bootstrap(#[from] crate::token::bootstrap::BootstrapError),
    /// The bootstrap token's issuer is not trusted.
    #[error("the bootstrap token's issuer {0:?} is not a trusted issuer")]
    UntrustedIssuer(String),
    /// The token is not of the profile its issuer is configured for.
    #[error("Unknown OIOBSTSAMLAssertion specification: issuer {issuer:?} issues {expected}, the token announces {found}")]
    TokenProfile { issuer: String, expected: &'static str, found: &'static str },
    /// The token lacks an attribute its profile requires.
    #[error("the bootstrap token lacks the attribute {0}, which its profile requires")]
    TokenAttribute(&'static str),
    /// The token does not name the allowed audience (NSP's text).
    #[error(
        "BST2SOSI assertion does not have allowed audience. Actual type:{actual}, Allowed type:{allowed}"
    )]
    BootstrapAudience { actual: String, allowed: String },
    /// The token is outside its validity window (NSP's library text).
    #[error("OIOSAML token no longer valid - now: {now} Allowed clock drift: {drift} seconds")]
    TokenNotValid { now: String, drift: u64 },
    /// Holder-of-key is required and the token names no certificate (NSP's library text).
    #[error("Could not find holder-of-key certificate")]
    HolderOfKeyMissing,
    /// The request was not signed with the token's holder-of-key certificate (NSP's text).
    #[error("Signing certificate and holder-of-key certificate relation do not match.")]
    HolderOfKeyMismatch,
    /// The request signer is not whitelisted for the token's issuer.
    #[error("the client certificate {0} is not whitelisted for this issuer")]
    NotWhitelisted(String),
    /// The `medcom:ITSystemName` claim is missing (NSP's text).
    #[error("IT System must be specified.")]
    ItSystemMissing,
    /// Both a role and an authorisation code were claimed (NSP's text).
    #[error("Only one of UserAuthorizationCode or UserRole is allowed in request.")]
    RoleAndAuthorisation,
    /// The person register has no data for the CPR (NSP's text).
    #[error("Could not find userData for input CPR.")]
    UserDataNotFound,
    /// No CPR could be found for the professional (NSP's text, with the identifier tried).
    #[error("cvrrid-cpr lookup failed [{0}]")]
    CprLookup(String),
    /// The claimed authorisation code is not registered for the user (NSP's text).
    #[error("authorization not found (available [{0}])")]
    AuthorisationNotFound(String),
    /// The assertion is not of the OIOSAML generation this exchange takes.
    #[error("only OIOSAML 2.0 (DK-SAML-2.0) assertions are exchanged; this one announces {0}")]
    AssertionProfile(String),
    /// The CPR in the token differs from the one the CVR/RID register gives (NSP's text).
    #[error("cvrrid-cpr mismatch [{0}]")]
    CvrRidCprMismatch(String),
    /// No CPR is bound to the CVR/RID (NSP's text).
    #[error("illegal cvrrid [{0}]")]
    IllegalCvrRid(String),
    /// The token's OIO-BPP privileges are unreadable (NSP's text).
    #[error("BST2SOSI assertion contains an invalid basic privilege profile ({0})")]
    InvalidPrivileges(crate::token::privileges::PrivilegeError),
    /// The token grants several national roles and the request claims none (NSP's text).
    #[error("multiple national roles found ({0})")]
    MultipleNationalRoles(String),
    /// A role or authorisation code was claimed, and the register holds no authorisation at
    /// all for the user (NSP's text).
    #[error("missing authorization")]
    MissingAuthorisation,
    /// An encrypted token arrived and no decryption key is configured.
    #[error("this STS takes no encrypted tokens (no decryption key is configured)")]
    NoDecryptionKey,
    /// An encrypted token could not be decrypted. Every failure that depends on the key or the
    /// ciphertext (wrong key, RSA padding, content padding, tampering) is the one variant
    /// `DecryptError::Undecryptable`, with one text.
    #[error("the encrypted token could not be read: {0}")]
    Decryption(crate::xml::enc::DecryptError),
    /// A claim's value is not acceptable.
    #[error("{0}")]
    ClaimValue(String),
    /// The request makes no CPR claim (NSP's text).
    #[error("CPR claim missing")]
    CprClaimMissing,
    /// The claimed CPR is not the presented token's subject (NSP's text).
    #[error("CPR/PID mismatch")]
    CprPidMismatch,
    /// The PID-CPR lookup found no CPR for the token's PID.
    #[error("pid-cpr lookup failed [PID:{0}]")]
    PidLookup(String),
    /// A citizen bootstrap token does not name its issuer's allowed audience (NSP's text).
    #[error(
        "BST2IDWS assertion has an invalid audience. Actual audience:{actual}, Allowed audience:{allowed}"
    )]
    CitizenAudience { actual: String, allowed: String },
    /// The audience does not take JWTs (NSP's "JWT support" switch is off for it).
    #[error("JWT support is not activated for audience {0}")]
    JwtNotEnabled(String),
    /// The audience takes only encrypted assertions and has no encryption certificate.
    #[error("audience {0} has no encryption certificate; OIOSAML assertions are issued encrypted")]
    AudienceWithoutEncryption(String),
    /// The OnBehalfOf claim is empty or not understood.
    #[error("{0}")]
    OnBehalfOf(crate::token::onbehalfof::OnBehalfOfError),
    /// No relation lets the citizen act for the person the OnBehalfOf claim names.
    #[error("no {kind} relation is registered in which the citizen may act on behalf of {cpr}")]
    UnknownRelation { kind: &'static str, cpr: String },
    /// The relation existed, and has ended.
    #[error("the {kind} relation for acting on behalf of {cpr} ended at {until}")]
    RelationExpired { kind: &'static str, cpr: String, until: String },
    /// The relation is registered, and has not begun.
    #[error("the {kind} relation for acting on behalf of {cpr} begins at {from}")]
    RelationNotYetValid { kind: &'static str, cpr: String, from: String },
    /// The presented JWT is not acceptable.
    #[error("{0}")]
    Jwt(crate::trust::jwt::JwtError),
    /// A register could not be asked.
    #[error("{0}")]
    Register(crate::registers::RegisterError),
    /// The audit record of an issued token could not be written.
    #[error("the audit record could not be written: {0}")]
    Audit(crate::audit::AuditError),
    /// The HSM could not sign.
    #[error("the STS could not sign the token: {0}")]
    Signing(SigningError),
}

impl From<SigningError> for RequestError {
    /// A signature that had not started by its request's deadline was never asked of the HSM:
    /// that is an overload refusal (503, Retry-After), not a failure of the HSM.
    fn from(error: SigningError) -> Self {
        match error {
            SigningError::Hsm(segl_pkcs11::Pkcs11Error::Expired { waited }) => {
                RequestError::QueuedPastDeadline { waited }
            }
            other => RequestError::Signing(other),
        }
    }
}

impl RequestError {
    /// The fault this refusal gets on `endpoint` (whose dialect decides the code and actor),
    /// and its HTTP status.
    pub fn fault(&self, endpoint: Option<Endpoint>, dgws_actor: &str) -> Fault {
        let dialect = endpoint.map_or(FaultDialect::Dgws, Endpoint::dialect);
        let (code, status) = match dialect {
            FaultDialect::Dgws => self.dgws_fault(),
            FaultDialect::Oio => self.oio_fault(),
        };
        let (actor, string) = match dialect {
            FaultDialect::Dgws => (dgws_actor.to_owned(), self.fault_string()),
            FaultDialect::Oio => {
                let check = self.oio_check().unwrap_or_else(|| endpoint.map_or("sts", Endpoint::check_name));
                let string = match code.standard_text() {
                    Some(text) => format!("{text}: {}", self.fault_string()),
                    None => self.fault_string(),
                };
                (format!("dk:sosi:sts:{check}"), string)
            }
        };
        Fault { code, status, actor, string }
    }

    /// The DGWS family's fault code and HTTP status.
    fn dgws_fault(&self) -> (FaultCode, u16) {
        use FaultCode::*;
        match self {
            Self::UnknownEndpoint(_) => (Client, 404),
            Self::MethodNotAllowed(_) => (Client, 405),
            Self::BodyTooLarge { .. } => (Client, 413),
            Self::HeadTooLarge { .. } => (Client, 431),
            Self::LengthRequired => (Client, 411),
            Self::BadHttp(_) => (Client, 400),
            // Like a refusal for load: the service is there, but not able now (Retry-After).
            Self::Overloaded { .. } | Self::QueuedPastDeadline { .. } | Self::ReplayStoreUnavailable => {
                (Server, 503)
            }
            Self::Xml(_) | Self::NotStsRequest(_) => (InvalidRequest, 500),
            Self::SignatureCount(_) => (Dgws("invalidsignature"), 500),
            Self::Card(_) => (Dgws("invalidheader"), 500),
            Self::AuthenticationLevel(_) | Self::LevelForCardType { .. } => {
                (Dgws("authenticationlevel"), 500)
            }
            Self::UnsignedCard(_) => (Dgws("invalidsignature"), 500),
            Self::Signature(_) => (Dgws("invalidsignature"), 500),
            Self::Certificate(_)
            | Self::CertificateType { .. }
            | Self::CertHashMismatch
            | Self::CareProviderMismatch { .. } => (Dgws("invalidcertificate"), 500),
            Self::CardNotYetValid(_)
            | Self::CardExpired(_)
            | Self::CardLifetime
            | Self::CardIssuedInFuture(_) => (Dgws("idcardtooold"), 500),
            Self::Role(RoleError::Unavailable(_)) => (Dgws("internalerror"), 500),
            Self::Role(_) => (Dgws("notauthorized"), 500),
            Self::DuplicateMessageId(_) => (DuplicateMessageId, 500),
            Self::Signing(_) | Self::Audit(_) => (Dgws("internalerror"), 500),
            // Causes only the OIO endpoints meet; mapped for completeness.
            Self::EnvelopeSignature(_) | Self::TokenSignature(_) => (Dgws("invalidsignature"), 500),
            Self::EnvelopeCertificate(_) | Self::UntrustedToken(_) => (Dgws("invalidcertificate"), 500),
            Self::Timestamp(_) | Self::CardContent(_) | Self::UnknownAudience(_) => {
                (Dgws("invalidheader"), 500)
            }
            Self::CardKind { .. } => (Dgws("idcardtype"), 500),
            Self::CardTooOld { .. } => (Dgws("idcardtooold"), 500),
            Self::Encryption { .. } | Self::Register(_) => (Dgws("internalerror"), 500),
            Self::RequestUnsigned
            | Self::Bootstrap(_)
            | Self::TokenProfile { .. }
            | Self::TokenAttribute(_)
            | Self::ItSystemMissing
            | Self::RoleAndAuthorisation => (Dgws("invalidheader"), 500),
            Self::UntrustedIssuer(_)
            | Self::HolderOfKeyMissing
            | Self::HolderOfKeyMismatch
            | Self::NotWhitelisted(_) => (Dgws("invalidcertificate"), 500),
            Self::TokenNotValid { .. } => (Dgws("idcardtooold"), 500),
            Self::AssertionProfile(_) | Self::NoDecryptionKey | Self::Decryption(_) => {
                (Dgws("invalidheader"), 500)
            }
            Self::CvrRidCprMismatch(_)
            | Self::IllegalCvrRid(_)
            | Self::InvalidPrivileges(_)
            | Self::MultipleNationalRoles(_)
            | Self::MissingAuthorisation => (Dgws("notauthorized"), 500),
            Self::BootstrapAudience { .. }
            | Self::UserDataNotFound
            | Self::CprLookup(_)
            | Self::AuthorisationNotFound(_) => (Dgws("notauthorized"), 500),
            Self::CprClaimMissing | Self::OnBehalfOf(_) | Self::ClaimValue(_) => (Dgws("invalidheader"), 500),
            Self::CprPidMismatch
            | Self::PidLookup(_)
            | Self::CitizenAudience { .. }
            | Self::JwtNotEnabled(_)
            | Self::UnknownRelation { .. }
            | Self::RelationExpired { .. }
            | Self::RelationNotYetValid { .. }
            | Self::Jwt(_) => (Dgws("notauthorized"), 500),
            Self::AudienceWithoutEncryption(_) => (Dgws("internalerror"), 500),
        }
    }

    /// The OIO WS-Trust 1.3 family's fault code and HTTP status (decisions: module doc).
    fn oio_fault(&self) -> (FaultCode, u16) {
        use FaultCode::*;
        match self {
            Self::UnknownEndpoint(_)
            | Self::MethodNotAllowed(_)
            | Self::BodyTooLarge { .. }
            | Self::HeadTooLarge { .. }
            | Self::LengthRequired
            | Self::BadHttp(_)
            | Self::Overloaded { .. }
            | Self::QueuedPastDeadline { .. }
            | Self::ReplayStoreUnavailable => self.dgws_fault(),
            Self::Xml(_)
            | Self::NotStsRequest(_)
            | Self::SignatureCount(_)
            | Self::Card(_)
            | Self::EnvelopeSignature(_)
            | Self::Timestamp(_)
            | Self::DuplicateMessageId(_)
            | Self::CardKind { .. }
            | Self::CardContent(_) => (Trust("InvalidRequest"), 500),
            Self::AuthenticationLevel(_)
            | Self::LevelForCardType { .. }
            | Self::UnsignedCard(_)
            | Self::Signature(_)
            | Self::TokenSignature(_)
            | Self::Certificate(_)
            | Self::EnvelopeCertificate(_)
            | Self::CertificateType { .. }
            | Self::CareProviderMismatch { .. }
            | Self::CertHashMismatch
            | Self::UntrustedToken(_)
            | Self::CardNotYetValid(_)
            | Self::CardIssuedInFuture(_)
            | Self::CardLifetime
            | Self::CardExpired(_)
            | Self::CardTooOld { .. } => (Trust("FailedAuthentication"), 500),
            Self::Role(RoleError::Unavailable(_)) => (Trust("RequestFailed"), 500),
            Self::Role(_) => (Trust("FailedAuthentication"), 500),
            Self::UnknownAudience(_) => (Trust("InvalidScope"), 500),
            Self::Signing(_) | Self::Audit(_) | Self::Encryption { .. } | Self::Register(_) => {
                (Trust("RequestFailed"), 500)
            }
            Self::RequestUnsigned
            | Self::Bootstrap(_)
            | Self::TokenProfile { .. }
            | Self::TokenAttribute(_)
            | Self::ItSystemMissing
            | Self::AssertionProfile(_)
            | Self::NoDecryptionKey
            | Self::RoleAndAuthorisation => (Trust("InvalidRequest"), 500),
            Self::Decryption(DecryptError::KeyUnavailable | DecryptError::Random) => {
                (Trust("RequestFailed"), 500)
            }
            Self::Decryption(_) => (Trust("InvalidRequest"), 500),
            Self::CvrRidCprMismatch(_) | Self::IllegalCvrRid(_) => (Trust("FailedAuthentication"), 500),
            Self::UntrustedIssuer(_)
            | Self::TokenNotValid { .. }
            | Self::HolderOfKeyMissing
            | Self::HolderOfKeyMismatch
            | Self::NotWhitelisted(_)
            | Self::AuthorisationNotFound(_) => (Trust("FailedAuthentication"), 500),
            Self::MultipleNationalRoles(_) | Self::MissingAuthorisation => {
                (Trust("FailedAuthentication"), 500)
            }
            Self::BootstrapAudience { .. }
            | Self::UserDataNotFound
            | Self::CprLookup(_)
            | Self::InvalidPrivileges(_) => (Trust("RequestFailed"), 500),
            // The catalogue's codes (addendum §4).
            Self::CprClaimMissing | Self::CprPidMismatch | Self::OnBehalfOf(_) | Self::ClaimValue(_) => {
                (Trust("InvalidRequest"), 500)
            }
            Self::CitizenAudience { .. } | Self::PidLookup(_) => (Trust("RequestFailed"), 500),
            // The citizen has not shown the right to act for the other person.
            Self::UnknownRelation { .. }
            | Self::RelationExpired { .. }
            | Self::RelationNotYetValid { .. } => (Trust("FailedAuthentication"), 500),
            Self::JwtNotEnabled(_) | Self::AudienceWithoutEncryption(_) => (Trust("InvalidScope"), 500),
            Self::Jwt(e) if e.is_malformed() => (Trust("InvalidRequest"), 500),
            Self::Jwt(_) => (Trust("FailedAuthentication"), 500),
        }
    }

    /// The catalogue's check name for causes that belong to a specific check, not the endpoint.
    fn oio_check(&self) -> Option<&'static str> {
        match self {
            Self::Role(_)
            | Self::AuthorisationNotFound(_)
            | Self::MultipleNationalRoles(_)
            | Self::MissingAuthorisation => Some("autorisation"),
            Self::CprLookup(_) | Self::CvrRidCprMismatch(_) | Self::IllegalCvrRid(_) => Some("cvrridcpr"),
            _ => None,
        }
    }

    /// For refusals because of load, the seconds the client should wait (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::Overloaded { retry_after_secs, .. } => Some(*retry_after_secs),
            Self::QueuedPastDeadline { .. } | Self::ReplayStoreUnavailable => {
                Some(super::SHED_RETRY_AFTER_SECS)
            }
            _ => None,
        }
    }

    /// Whether this is segl's failure rather than the client's (logged at error level, and
    /// the fault text does not reveal internals).
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::Signing(_)
                | Self::Audit(_)
                | Self::Role(RoleError::Unavailable(_))
                | Self::Encryption { .. }
        )
    }

    /// The faultstring: what the client should fix. Internal failures are not described to
    /// the client; the log has the details.
    pub fn fault_string(&self) -> String {
        if self.is_internal() {
            "The STS could not complete the request; try again later".to_owned()
        } else {
            self.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_type_faults_put_the_right_article_before_the_kind() {
        let fault = |found| {
            RequestError::CertificateType { card: "user", found, needed: "an employee certificate" }
                .fault_string()
        };
        for (kind, phrase) in [
            (CertificateKind::Employee, "with an Employee certificate"),
            (CertificateKind::Organisation, "with an Organisation certificate"),
            (CertificateKind::Function, "with a Function certificate"),
            (CertificateKind::Person, "with a Person certificate"),
            (CertificateKind::Unknown, "with an Unknown certificate"),
        ] {
            let text = fault(kind);
            assert!(text.contains(phrase), "{kind:?}: {text}");
        }
        assert_eq!(
            fault(CertificateKind::Organisation),
            "a user card cannot be signed with an Organisation certificate (it needs an employee certificate)"
        );
    }
}
