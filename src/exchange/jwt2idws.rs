//! `JWT2Idws` (alias `JWTIdws`; spec §2.7, addendum §2 OQ8, §3.2): a citizen's JWT (JTP-H, an
//! OpenID Connect access token) in, an IDWS identity token for one audience out, holder-of-key
//! bound to the system that asked. Claims, checks and the issued token are Bst2Idws's
//! ([`super::oio::citizen`]); what differs is the presented token:
//! 1. an OIO WS-Trust 1.3 issue request whose header signature verifies (required);
//! 2. exactly one token in `wst14:ActAs`: a `wsse:BinarySecurityToken` of ValueType
//!    `urn:ietf:params:oauth:token-type:jwt` holding a compact JWS;
//! 3. the JWT verifies ([`crate::trust::jwt`]: issuer, key by `kid`, algorithm allow-list,
//!    `aud`, `exp`/`nbf`/`iat` with skew, `cpr`, `scope` ∋ `sosi-sts`);
//! 4. the request signer is whitelisted for the JWT's issuer (when
//!    `idws.whitelist_validation`);
//! 5. `wsp:AppliesTo` names a configured audience whose JWT support is on;
//! 6. the CPR claim is the JWT's `cpr`; `medcom:UserRole`, `OnBehalfOf` as Bst2Idws;
//! 7. a `wsa:MessageID` is accepted once per request signer within the JWT's lifetime.
//!
//! Decision where the sources are silent: the issued token's NameID is the persistent
//! `dk:gov:saml:attribute:CprNumberIdentifier:<cpr>` that citizens' OIOSAML 3 bootstrap
//! tokens carry, so a service sees one citizen under one NameID whichever way they logged in;
//! the assurance level follows the JWT's `acr` (NSIS `loa`), 3 when it names none.

use super::error::RequestError;
use super::oio::citizen;
use super::oio::envelope;
use super::pipeline::Request;
use super::{CoreContext, Policy};

/// Serves one request on the parsed `doc`; `corr` is what its answer echoes.
pub async fn issue(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &crate::xml::Document,
    request: &mut Request,
    corr: &mut envelope::Correlation,
) -> Result<Vec<u8>, RequestError> {
    let presented = citizen::receive_jwt(ctx, policy, doc, request, corr, false).await?;
    let issue =
        citizen::Issue { audience: &presented.audience, holder: &presented.signer, extra: presented.extra };
    citizen::issue_identity_token(ctx, policy, request, &presented.rst, &presented.citizen, issue, corr).await
}
