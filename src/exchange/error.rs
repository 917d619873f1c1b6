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

use crate::roles::RoleError;
use crate::signing::SigningError;
use crate::token::CardError;
use crate::trust::{CertificateKind, TrustError};
use crate::xml::dsig::verify::DsigError;
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
    #[error("not a DGWS security token request: {0}")]
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
    #[error("a {card} card cannot be signed with a {found:?} certificate (it needs {needed})")]
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

/// A SOAP fault code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// SOAP 1.1 `Client`: the HTTP request itself is wrong.
    Client,
    /// SOAP 1.1 `Server`: the server cannot serve it now (overload, shutdown).
    Server,
    /// WS-Trust `InvalidRequest`.
    InvalidRequest,
    /// A DGWS code (the local part, lower case).
    Dgws(&'static str),
    /// WS-Addressing `duplicatemessageid`, as DGWS names it.
    DuplicateMessageId,
}

impl FaultCode {
    /// The faultcode text; the prefix is bound on every fault envelope segl writes.
    pub fn qname(self) -> String {
        match self {
            Self::Client => "soapenv:Client".to_owned(),
            Self::Server => "soapenv:Server".to_owned(),
            Self::InvalidRequest => "wst:InvalidRequest".to_owned(),
            Self::Dgws(local) => format!("dgws:{local}"),
            Self::DuplicateMessageId => "wsa:duplicatemessageid".to_owned(),
        }
    }
}

impl RequestError {
    /// The fault code and HTTP status for this refusal.
    pub fn fault(&self) -> (FaultCode, u16) {
        use FaultCode::*;
        match self {
            Self::UnknownEndpoint(_) => (Client, 404),
            Self::MethodNotAllowed(_) => (Client, 405),
            Self::BodyTooLarge { .. } => (Client, 413),
            Self::HeadTooLarge { .. } => (Client, 431),
            Self::LengthRequired => (Client, 411),
            Self::BadHttp(_) => (Client, 400),
            Self::Overloaded { .. } | Self::QueuedPastDeadline { .. } => (Server, 503),
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
        }
    }

    /// For refusals because of load, the seconds the client should wait (`Retry-After`).
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Self::Overloaded { retry_after_secs, .. } => Some(*retry_after_secs),
            Self::QueuedPastDeadline { .. } => Some(super::SHED_RETRY_AFTER_SECS),
            _ => None,
        }
    }

    /// Whether this is segl's failure rather than the client's (logged at error level, and
    /// the fault text does not reveal internals).
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Signing(_) | Self::Audit(_) | Self::Role(RoleError::Unavailable(_)))
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
