//! The OIO WS-Trust 1.3 family's shared machinery: reading the RST ([`request`]), the request's
//! WS-Security header signature and Timestamp ([`security`]), the RSTRC and fault envelopes
//! with the STS's own header signature ([`envelope`]). The six OIO exchanges are built on it.

pub mod citizen;
pub mod deliver;
pub mod envelope;
pub mod request;
pub mod security;
pub mod tokens;
pub mod usercard;

use std::time::Instant;

use jiff::Timestamp;

use super::error::RequestError;
use super::CoreContext;
use crate::signing::StsCredential;
use crate::xml::dsig::algorithm::SignatureAlgorithm;

/// An OIO request as every OIO exchange starts with it: read, what its answer echoes noted,
/// its header signature (when it has one) verified.
pub struct Received {
    /// The request.
    pub rst: request::OioRequest,
    /// Its verified header signature; `None` when it has none (each exchange decides whether
    /// that is acceptable).
    pub signed: Option<security::SignedRequest>,
}

/// Reads the request into `corr` and `exchange_request`'s audit trail, and verifies its header
/// signature and TokenType (SAML 2.0 for every OIO exchange).
pub fn receive(
    ctx: &CoreContext,
    policy: &crate::exchange::Policy,
    doc: &crate::xml::Document,
    exchange_request: &mut crate::exchange::pipeline::Request,
    corr: &mut envelope::Correlation,
) -> Result<Received, RequestError> {
    let rst = request::read(doc)?;
    corr.relates_to = rst.message_id.clone();
    corr.context = rst.context.clone();
    exchange_request.audit.message_id = rst.message_id.clone();
    let now = exchange_request.time.now;
    let signed = security::verify(ctx, policy, doc, &rst, now, &mut exchange_request.audit.client)?;
    if let Some(t) = &rst.token_type {
        if t != envelope::TOKEN_TYPE_SAML2 {
            return Err(RequestError::NotStsRequest(format!(
                "wst:TokenType {t:?} is not {}",
                envelope::TOKEN_TYPE_SAML2
            )));
        }
    }
    Ok(Received { rst, signed })
}

/// [`receive`] for an exchange that requires a header signature: the request and its signer.
pub fn receive_signed(
    ctx: &CoreContext,
    policy: &crate::exchange::Policy,
    doc: &crate::xml::Document,
    exchange_request: &mut crate::exchange::pipeline::Request,
    corr: &mut envelope::Correlation,
) -> Result<(request::OioRequest, std::sync::Arc<crate::trust::SignerCertificate>), RequestError> {
    let Received { rst, signed } = receive(ctx, policy, doc, exchange_request, corr)?;
    let signed = signed.ok_or(RequestError::RequestUnsigned)?;
    Ok((rst, signed.signer))
}

/// The STS signs OIO envelopes RSA-SHA1/SHA-1, as the captured TEST1 responses are signed and
/// seal clients validate (spec §1.4 SIG-HDR).
pub const ENVELOPE_SIGNATURE: SignatureAlgorithm = SignatureAlgorithm::RsaSha1;

/// Wraps `body_content` in an OIO answer and signs its header on the HSM.
pub async fn sign_envelope(
    ctx: &CoreContext,
    corr: &envelope::Correlation,
    now: Timestamp,
    body_content: &[u8],
    sign_by: Option<Instant>,
) -> Result<Vec<u8>, RequestError> {
    sign_envelope_as(ctx, &ctx.signer.credential(), corr, now, body_content, sign_by, false).await
}

/// [`sign_envelope`] with a given credential: an answer that carries a token the STS signed
/// signs its header with the same key, so that a rotation between the two signatures cannot
/// give one answer two certificates. The token's signature is made, so an overloaded core's
/// longest wait does not stop this one (only `sign_by`).
pub async fn sign_envelope_with(
    ctx: &CoreContext,
    credential: &StsCredential,
    corr: &envelope::Correlation,
    now: Timestamp,
    body_content: &[u8],
    sign_by: Option<Instant>,
) -> Result<Vec<u8>, RequestError> {
    sign_envelope_as(ctx, credential, corr, now, body_content, sign_by, true).await
}

async fn sign_envelope_as(
    ctx: &CoreContext,
    credential: &StsCredential,
    corr: &envelope::Correlation,
    now: Timestamp,
    body_content: &[u8],
    sign_by: Option<Instant>,
    continuing: bool,
) -> Result<Vec<u8>, RequestError> {
    let unsigned =
        envelope::prepare(corr, now, body_content, ENVELOPE_SIGNATURE, &credential.certificate_b64)?;
    let (alg, digest) = (ENVELOPE_SIGNATURE.digest(), unsigned.signed_info_digest());
    let value = if continuing {
        ctx.signer.sign_digest_continuing(credential, alg, digest, sign_by).await?
    } else {
        ctx.signer.sign_digest(credential, alg, digest, sign_by).await?
    };
    Ok(unsigned.finish(&value))
}
