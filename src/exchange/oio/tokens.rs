//! What the OIO exchanges do alike with a token presented in ActAs: verify its own enveloped
//! signature (the token is then read only from the verified element), require that one of a
//! trusted set of certificates made it, and judge its validity window.

use jiff::{SignedDuration, Timestamp};

use crate::exchange::error::RequestError;
use crate::exchange::{CoreContext, Policy};
use crate::token::bootstrap::{BootstrapError, BootstrapToken, TokenProfile};
use crate::token::ns;
use crate::trust::idp::{TrustedIdp, TrustedIdps};
use crate::trust::SignerCertificate;
use crate::xml::dsig::{verify, VerifiedSignature};
use crate::xml::{Document, NodeId};

/// Verifies the enveloped signature `token` must carry on itself, with the signer's key from
/// `keys` (the policy's pinned issuer keys, or parsed for the one verification).
pub fn verify_token(
    doc: &Document,
    token: NodeId,
    keys: &dyn crate::xml::dsig::SignerKeys,
) -> Result<VerifiedSignature, RequestError> {
    verify::verify_element_using(doc, token, &crate::xml::dsig::Policy::FEDERATION, keys)
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

/// Decrypts a bootstrap token encrypted to the STS (`saml:EncryptedAssertion`, ENC-AUD shape)
/// with the decryption key in the HSM, and parses it. Whatever fails after the structure was
/// read gives the one `Undecryptable` answer: a wrong key, bad RSA padding, bad content padding
/// and a plaintext that is not XML look the same.
pub fn decrypt_token(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    encrypted: NodeId,
) -> Result<Document, RequestError> {
    use crate::xml::enc::{decrypt_encrypted_data, DecryptError};
    let decryptor = ctx.signer.decryptor().ok_or(RequestError::NoDecryptionKey)?;
    let data = doc
        .child(encrypted, ns::XENC, "EncryptedData")
        .ok_or(RequestError::Decryption(DecryptError::NotEncryptedData))?;
    let plaintext = decrypt_encrypted_data(doc, data, |transport, key| {
        crate::signing::decrypt::unwrap_key(decryptor, transport, key)
    })
    .map_err(RequestError::Decryption)?;
    let parsed = Document::parse(bytes::Bytes::from(plaintext), &policy.limits)
        .map_err(|_| RequestError::Decryption(DecryptError::Undecryptable))?;
    if !parsed.is(parsed.root(), ns::SAML, "Assertion") {
        return Err(RequestError::Decryption(DecryptError::Undecryptable));
    }
    Ok(parsed)
}

/// The bootstrap token presented in ActAs: in the request, or decrypted from it.
pub enum PresentedToken {
    /// The `saml:Assertion` element of the request.
    InRequest(NodeId),
    /// The assertion decrypted from a `saml:EncryptedAssertion` (its root).
    Decrypted(Document),
}

impl PresentedToken {
    /// The document and element holding the assertion.
    pub fn locate<'d>(&'d self, request: &'d Document) -> (&'d Document, NodeId) {
        match self {
            PresentedToken::InRequest(node) => (request, *node),
            PresentedToken::Decrypted(plain) => (plain, plain.root()),
        }
    }
}

/// The one bootstrap token in ActAs, decrypted first when it arrives encrypted to the STS.
/// `exchange` names the endpoint in the refusal.
pub fn presented_bootstrap(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    act_as: &[NodeId],
    exchange: &str,
) -> Result<PresentedToken, RequestError> {
    match act_as {
        [one] if doc.is(*one, ns::SAML, "Assertion") => Ok(PresentedToken::InRequest(*one)),
        [one] if doc.is(*one, ns::SAML, "EncryptedAssertion") => {
            decrypt_token(ctx, policy, doc, *one).map(PresentedToken::Decrypted)
        }
        [one] => Err(RequestError::NotStsRequest(format!(
            "the presented token is a {}, not a saml:Assertion",
            doc.qname(*one)
        ))),
        other => Err(RequestError::NotStsRequest(format!(
            "wst14:ActAs holds {} tokens; {exchange} takes one bootstrap token",
            other.len()
        ))),
    }
}

/// Verifies the token's own signature, finds its issuer among `idps` and checks the signing
/// certificate is one of that issuer's; reads the token only from the verified element.
pub fn trusted_bootstrap<'p>(
    idps: &'p TrustedIdps,
    keys: &dyn crate::xml::dsig::SignerKeys,
    doc: &Document,
    token: NodeId,
) -> Result<(BootstrapToken, &'p TrustedIdp), RequestError> {
    let verified = verify_token(doc, token, keys)?;
    let token = BootstrapToken::from_element(doc, verified.signed_element)?;
    let idp = idps.get(&token.issuer).ok_or_else(|| RequestError::UntrustedIssuer(token.issuer.clone()))?;
    let whom = format!("which is not a signing key of issuer {}", token.issuer);
    require_signer(&verified, &idp.signing_certificates, "the bootstrap token", &whom)?;
    Ok((token, idp))
}

/// The token is of the profile its issuer issues, with that profile's required attributes.
pub fn check_profile(token: &BootstrapToken, idp: &TrustedIdp) -> Result<(), RequestError> {
    let expected = idp.profile();
    if !token.announces(expected) {
        // Named from the expected profile's own family first (a citizen's SEB token also
        // reads as the professional OIOH2BST).
        let same_family = |p: &TokenProfile| p.is_citizen() == expected.is_citizen();
        let (family, others): (Vec<_>, Vec<_>) = TokenProfile::ALL.into_iter().partition(same_family);
        let found = family.into_iter().chain(others).find(|p| token.announces(*p));
        return Err(RequestError::TokenProfile {
            issuer: token.issuer.clone(),
            expected: expected.name(),
            found: found.map_or("no known profile", TokenProfile::name),
        });
    }
    match token.missing_attribute(expected) {
        Some(name) => Err(RequestError::TokenAttribute(name)),
        None => Ok(()),
    }
}

/// Holder-of-key (when the issuer's `validate_hok`): the request was signed with the
/// certificate the token names (certificate equality, as NSP's .NET library checks it). The
/// legacy bearer profile names none by definition.
pub fn check_holder_of_key(
    token: &BootstrapToken,
    idp: &TrustedIdp,
    signer: &SignerCertificate,
) -> Result<(), RequestError> {
    if !idp.config.validate_hok || idp.profile() == TokenProfile::LegacyBearer {
        return Ok(());
    }
    match &token.holder_certificate {
        Some(cert) if token.holder_of_key && *cert == signer.der => Ok(()),
        Some(_) if token.holder_of_key => Err(RequestError::HolderOfKeyMismatch),
        _ => Err(RequestError::HolderOfKeyMissing),
    }
}
