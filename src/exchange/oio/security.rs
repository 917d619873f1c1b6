//! The request's own security header: the SIG-HDR signature (which parts it must cover, the
//! signer certificate and its trust, through this core's signer cache) and the freshness of
//! its `wsu:Timestamp`.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::request::OioRequest;
use crate::audit::AuditClient;
use crate::exchange::error::RequestError;
use crate::exchange::{CoreContext, Policy};
use crate::token::ns;
use crate::trust::SignerCertificate;
use crate::xml::dsig::verify_header_using;
use crate::xml::Document;

/// A request header signature that verified, by a trusted certificate, with a fresh Timestamp.
pub struct SignedRequest {
    /// The certificate that signed the request.
    pub signer: Arc<SignerCertificate>,
}

/// Verifies the request's SIG-HDR signature when it has one (`Ok(None)` when it has none; an
/// exchange that requires one refuses that itself). The Body the exchange reads is the one the
/// signature covered: the verifier resolves references only to the envelope's own header
/// parts and Body, so a moved or duplicated Body fails here.
pub fn verify(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &OioRequest,
    now: Timestamp,
    client: &mut Option<AuditClient>,
) -> Result<Option<SignedRequest>, RequestError> {
    if !request.signed {
        return Ok(None);
    }
    // No await below: the core's signer cache (parsed keys of validated certificates) stays
    // borrowed only while the request's signature and signer are checked.
    let mut signers = ctx.signers.borrow_mut();
    signers.refresh(policy.version, policy.trust.crls());
    let verified = verify_header_using(doc, &crate::xml::dsig::Policy::FEDERATION, &*signers)
        .map_err(RequestError::EnvelopeSignature)?;
    if verified.body != request.body {
        return Err(RequestError::EnvelopeSignature(crate::xml::dsig::DsigError::MissingCoverage {
            element: "soapenv:Body",
        }));
    }
    check_timestamp(policy, doc, verified.timestamp, now)?;
    let (validated, described) =
        crate::exchange::validate_signer(&mut signers, policy, &verified.certificate_der, now);
    drop(signers);
    *client = described;
    let signer = validated.map_err(RequestError::EnvelopeCertificate)?;
    Ok(Some(SignedRequest { signer }))
}

/// `wsu:Created` no later than now + skew and no earlier than now − skew; `wsu:Expires`, when
/// sent, not past (with the same skew).
fn check_timestamp(
    policy: &Policy,
    doc: &Document,
    timestamp: crate::xml::NodeId,
    now: Timestamp,
) -> Result<(), RequestError> {
    let skew = SignedDuration::from_secs(policy.config.sts.clock_skew_secs as i64);
    let read = |local: &str| -> Result<Option<Timestamp>, RequestError> {
        match doc.child(timestamp, ns::WSU, local) {
            None => Ok(None),
            Some(n) => crate::time::parse(&doc.text(n)).map(Some).ok_or_else(|| {
                RequestError::Timestamp(format!("has an unreadable wsu:{local} {:?}", doc.text(n)))
            }),
        }
    };
    let created = read("Created")?.ok_or_else(|| RequestError::Timestamp("has no wsu:Created".into()))?;
    let later = now.saturating_add(skew).unwrap_or(now);
    let earlier = now.saturating_sub(skew).unwrap_or(now);
    if created > later {
        return Err(RequestError::Timestamp(format!("was created in the future ({created})")));
    }
    if created < earlier {
        return Err(RequestError::Timestamp(format!(
            "was created at {created}, more than {} s ago",
            policy.config.sts.clock_skew_secs
        )));
    }
    if let Some(expires) = read("Expires")? {
        if expires < earlier {
            return Err(RequestError::Timestamp(format!("expired at {expires}")));
        }
    }
    Ok(())
}
