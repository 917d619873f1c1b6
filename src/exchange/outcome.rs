//! How a request ended, ready for the HTTP layer.

use super::error::RequestError;
use super::fault::Fault;

/// The outcome of one request, ready for the HTTP layer.
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// SOAP envelope.
    pub body: Vec<u8>,
    /// How it ended.
    pub verdict: Verdict,
    /// For refusals because of load: seconds to wait before retrying (`Retry-After`).
    pub retry_after_secs: Option<u32>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A token was issued.
    Issued,
    /// Refused (a fault).
    Refused,
    /// Admitted, but refused because its signature had not started by its deadline.
    Expired,
}

impl Verdict {
    /// The `outcome` label of the request metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Refused => "refused",
            Self::Expired => "expired",
        }
    }
}

impl Outcome {
    /// A token was issued; `body` is the response envelope.
    pub fn issued(body: Vec<u8>) -> Outcome {
        Outcome { status: 200, body, verdict: Verdict::Issued, retry_after_secs: None }
    }

    /// The answer to a request refused with `error` (as `fault`), whose envelope is `body`.
    pub fn refused(error: &RequestError, fault: &Fault, body: Vec<u8>) -> Outcome {
        let verdict = match error {
            RequestError::QueuedPastDeadline { .. } => Verdict::Expired,
            _ => Verdict::Refused,
        };
        Outcome { status: fault.status, body, verdict, retry_after_secs: error.retry_after_secs() }
    }
}
