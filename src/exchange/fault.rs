//! Fault dialects. Every answer on a path speaks that path's family: DGWS faults (DGWS 1.1
//! `dgws:*` codes, the DGWS envelope) on the two ID-card endpoints, OIO WS-Trust 1.3 faults
//! (WS-Addressing, the catalogue's `wst:*` codes and `dk:sosi:sts:*` actors) on the other six.
//! The shape is the same in both (spec §4.1): unqualified `faultcode`, `faultstring`,
//! `faultactor`, in that order, every prefix a code uses bound on the envelope.

use jiff::Timestamp;

use super::dgws::envelope as dgws_envelope;
use super::oio::envelope as oio_envelope;

/// The fault dialect of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultDialect {
    /// DGWS (WS-Trust 2005/02, `dgws:*` codes).
    Dgws,
    /// OIO WS-Trust 1.3 (WS-Addressing 1.0, `wst:*` codes of the 1.3 namespace).
    Oio,
}

/// A SOAP fault code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// SOAP 1.1 `Client`: the HTTP request itself is wrong.
    Client,
    /// SOAP 1.1 `Server`: the server cannot serve it now (overload, shutdown).
    Server,
    /// WS-Trust `InvalidRequest` (the family's WS-Trust namespace).
    InvalidRequest,
    /// A DGWS code (the local part, lower case).
    Dgws(&'static str),
    /// WS-Addressing `duplicatemessageid`, as DGWS names it.
    DuplicateMessageId,
    /// A WS-Trust code by its local name (`wst` is bound to the family's WS-Trust namespace).
    Trust(&'static str),
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
            Self::Trust(local) => format!("wst:{local}"),
        }
    }

    /// The WS-Trust 1.3 standard text of a WS-Trust code, which NSP's faultstrings start with.
    pub fn standard_text(self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest | Self::Trust("InvalidRequest") => {
                Some("The request was invalid or malformed")
            }
            Self::Trust("FailedAuthentication") => Some("Authentication failed"),
            Self::Trust("RequestFailed") => Some("The specified request failed"),
            Self::Trust("InvalidSecurityToken") => Some("Security token has been revoked"),
            Self::Trust("BadRequest") => Some("The specified RequestSecurityToken is not understood."),
            Self::Trust("ExpiredData") => Some("The request data is out-of-date"),
            Self::Trust("InvalidScope") => Some("The request scope is invalid or unsupported"),
            _ => None,
        }
    }
}

/// One fault, ready to be written in a dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode`.
    pub code: FaultCode,
    /// The HTTP status it is sent with.
    pub status: u16,
    /// `faultactor`.
    pub actor: String,
    /// `faultstring`.
    pub string: String,
}

/// What an answer echoes from its request, per dialect.
#[derive(Debug, Clone)]
pub enum Correlation {
    /// DGWS: message id, DGWS version, RST Context.
    Dgws(dgws_envelope::Correlation),
    /// OIO: the request's MessageID (→ RelatesTo) and RST Context.
    Oio(oio_envelope::Correlation),
}

impl Correlation {
    /// What an answer echoes when nothing could be read from the request.
    pub fn fresh(dialect: FaultDialect, now: Timestamp) -> Correlation {
        match dialect {
            FaultDialect::Dgws => Correlation::Dgws(dgws_envelope::Correlation::fresh(now)),
            FaultDialect::Oio => Correlation::Oio(oio_envelope::Correlation::default()),
        }
    }
}

/// A fault envelope without a signature: DGWS faults never carry one; OIO faults refused
/// before a request was understood (load, HTTP, an HSM that cannot sign) go unsigned too (the
/// captured OIO fault samples are unsigned, and unsealed accepts them).
pub fn unsigned_envelope(corr: &Correlation, now: Timestamp, fault: &Fault) -> Vec<u8> {
    match corr {
        Correlation::Dgws(c) => dgws_envelope::fault_response(c, now, fault),
        Correlation::Oio(c) => oio_envelope::unsigned_fault(c, now, fault),
    }
}
