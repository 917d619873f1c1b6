//! What the OIO exchanges do alike with a token presented in ActAs: verify its own enveloped
//! signature (the token is then read only from the verified element), require that one of a
//! trusted set of certificates made it, and judge its validity window.

use jiff::{SignedDuration, Timestamp};

use crate::exchange::error::RequestError;
use crate::token::bootstrap::{BootstrapError, BootstrapToken};
use crate::xml::dsig::{verify, VerifiedSignature};
use crate::xml::{Document, NodeId};

/// Verifies the enveloped signature `token` must carry on itself.
pub fn verify_token(doc: &Document, token: NodeId) -> Result<VerifiedSignature, RequestError> {
    verify::verify_element(doc, token, &crate::xml::dsig::Policy::FEDERATION)
        .map_err(RequestError::TokenSignature)
}

/// Requires the token's signer certificate to be one of `trusted`; the refusal names the
/// signer and, through `whom`, the trust that was expected ("not by this STS").
pub fn require_signer(
    verified: &VerifiedSignature,
    trusted: &[Vec<u8>],
    what: &str,
    whom: &str,
) -> Result<(), RequestError> {
    if trusted.contains(&verified.certificate_der) {
        return Ok(());
    }
    let who = crate::trust::describe(&verified.certificate_der)
        .map(|c| c.subject_dn)
        .unwrap_or_else(|_| "an unreadable certificate".into());
    Err(RequestError::UntrustedToken(format!("{what} was signed by {who}, {whom}")))
}

/// NotBefore/NotOnOrAfter ± `drift_secs`; a token without NotOnOrAfter is refused (nothing
/// would bound its replay).
pub fn check_validity(token: &BootstrapToken, drift_secs: u64, now: Timestamp) -> Result<(), RequestError> {
    let drift = SignedDuration::from_secs(drift_secs as i64);
    let not_valid = || RequestError::TokenNotValid { now: now.to_string(), drift: drift_secs };
    if token.not_before.is_some_and(|nb| now.saturating_add(drift).unwrap_or(now) < nb) {
        return Err(not_valid());
    }
    match token.not_on_or_after {
        Some(end) if now.saturating_sub(drift).unwrap_or(now) >= end => Err(not_valid()),
        None => Err(RequestError::Bootstrap(BootstrapError::Missing("Conditions/@NotOnOrAfter"))),
        Some(_) => Ok(()),
    }
}
