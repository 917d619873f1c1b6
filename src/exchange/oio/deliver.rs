//! How every OIO exchange that issues a SAML assertion (Sosi2OIOSaml, Bst2Idws, JWT2Idws,
//! JWT2OIOSaml) delivers it: the assertion signed on the HSM, encrypted to its audience when
//! that audience takes encrypted tokens, and answered in an RSTRC whose header is signed with
//! the same key. The audit record naming the token is handed to the writer before the signature
//! (`Request::record_issue`); the pipeline sends the answer only once it is written.

use jiff::Timestamp;

use super::envelope;
use crate::audit::AuditToken;
use crate::exchange::error::RequestError;
use crate::exchange::pipeline::Request;
use crate::exchange::CoreContext;
use crate::token::oiosaml::UnsignedAssertion;
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::enc::{ContentEncryption, KeyTransport, RecipientKey};

/// Issued assertions are signed RSA-SHA1 unless their audience asks otherwise, as seal's
/// builders sign and as the STS's other output is (spec §1.4 SIG-ASSERTION).
pub const ASSERTION_SIGNATURE: SignatureAlgorithm = SignatureAlgorithm::RsaSha1;

/// Where the assertion goes, and how.
pub struct Delivery<'a> {
    /// The audit record's token kind (`oiosaml`, `identity-token`).
    pub kind: &'static str,
    /// The assertion's signature algorithm (the one `prepare` was given).
    pub algorithm: SignatureAlgorithm,
    /// The audience, for the audit record and encryption errors.
    pub audience: &'a str,
    /// The audience's key, when the assertion travels encrypted (ENC-AUD).
    pub encrypt_to: Option<(&'a RecipientKey, ContentEncryption, KeyTransport)>,
    /// The AppliesTo the answer echoes.
    pub applies_to: Option<&'a str>,
    /// `wst:Lifetime`: the assertion's validity.
    pub lifetime: (Timestamp, Timestamp),
}

/// Signs the assertion `prepare` writes (given the algorithm and the certificate it names),
/// encrypts it when asked, and answers with it.
pub async fn sign_and_deliver(
    ctx: &CoreContext,
    request: &mut Request,
    assertion_id: &str,
    prepare: impl FnOnce(SignatureAlgorithm, &str) -> Result<UnsignedAssertion, crate::xml::XmlError>,
    delivery: Delivery<'_>,
    corr: &envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let now = request.time.now;
    let sign_by = request.time.sign_by;
    let credential = ctx.signer.credential();
    let algorithm = delivery.algorithm;
    let unsigned = prepare(algorithm, &credential.certificate_b64)?;
    let token = AuditToken {
        kind: delivery.kind.into(),
        id: assertion_id.to_owned(),
        audience: Some(delivery.audience.to_owned()),
    };
    request.record_issue(ctx, token, &credential.key_label)?;
    let value = ctx
        .signer
        .sign_digest(&credential, algorithm.digest(), unsigned.signed_info_digest(), sign_by)
        .await?;
    let signed = unsigned.finish(&value);
    let token = match delivery.encrypt_to {
        Some((recipient, content, transport)) => {
            crate::xml::enc::encrypt_assertion_to(&signed, recipient, content, transport).map_err(|e| {
                RequestError::Encryption { audience: delivery.audience.to_owned(), reason: e.to_string() }
            })?
        }
        None => signed,
    };
    let body = envelope::TokenResponse {
        token_type: envelope::TOKEN_TYPE_SAML2,
        token: &token,
        applies_to: delivery.applies_to,
        lifetime: delivery.lifetime,
        reference: None,
    }
    .body_content(corr);
    // The header with the assertion's key: a switch of the active key between the two
    // signatures must not give one answer two certificates.
    super::sign_envelope_with(ctx, &credential, corr, now, &body, sign_by).await
}
