//! The JWTs the citizen exchanges accept (JWT2Idws, JWT2OIOSaml; the JTP-H profile, addendum
//! §2 OQ8): compact JWS tokens from operator-configured issuers, each with its keys (a JWKS or
//! certificates, chosen by `kid`), its algorithms, audiences, clock skew and required scope.
//!
//! The JWS signature is verified by the `jsonwebtoken` crate; everything around it is checked
//! here, in an order that touches as little unauthenticated input as possible: size first,
//! then the shape, the header (the algorithm is judged before any key is looked at), the
//! unverified `iss` only to choose the issuer's key set, the key by `kid`, the algorithm
//! against the issuer and the key, the signature, and only then the claims (read from what
//! the library returns after verification). Time is checked against the caller's `now`.
//!
//! Error texts reach clients as SOAP faultstrings: each says what is wrong and with what, and
//! none quotes more than a short, truncated piece of the token (never the token, never keys).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::SignerCertificate;
use crate::config::jwt::{JwtIssuerConfig, JwtIssuerConfigError};
use crate::config::WhitelistEntry;

/// The base64 of JWS (RFC 7515 §2): URL-safe alphabet, no padding, canonical trailing bits;
/// the engine `jsonwebtoken` uses too, so both read a part alike.
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How much of a token-supplied string (alg, kid, iss, aud) an error text quotes.
const SHOWN_CHARS: usize = 64;

/// Why the JWT issuers could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    /// An issuer's configuration is refused on its face.
    #[error(transparent)]
    Invalid(#[from] JwtIssuerConfigError),
    /// Two issuers with one `issuer`.
    #[error("jwt_issuer {issuer:?} is configured twice")]
    DuplicateIssuer { issuer: String },
    /// A JWKS file or certificate could not be read.
    #[error("jwt_issuer {issuer:?}: cannot read {path}: {source}")]
    Read { issuer: String, path: PathBuf, source: std::io::Error },
    /// A JWKS file is not a JWK Set.
    #[error("jwt_issuer {issuer:?}: {path} is not a JWK Set (RFC 7517 §5): {reason}")]
    NotJwks { issuer: String, path: PathBuf, reason: String },
    /// A JWK in a JWKS file has no `kid`, so no token could select it.
    #[error("jwt_issuer {issuer:?}: {path}: key #{index} has no kid")]
    MissingKid { issuer: String, path: PathBuf, index: usize },
    /// A key cannot verify JWS signatures as segl accepts them.
    #[error("jwt_issuer {issuer:?}: {path}: key {kid:?}: {reason}")]
    UnusableKey { issuer: String, path: PathBuf, kid: String, reason: String },
    /// A JWKS file holds no signature key at all (only encryption keys, or none).
    #[error("jwt_issuer {issuer:?}: {path} holds no signature key")]
    NoSignatureKey { issuer: String, path: PathBuf },
    /// A certificate file holds no readable certificate.
    #[error("jwt_issuer {issuer:?}: certificate {path} (kid {kid:?}): {reason}")]
    Certificate { issuer: String, path: PathBuf, kid: String, reason: String },
    /// Two keys of one issuer with one `kid`.
    #[error("jwt_issuer {issuer:?}: kid {kid:?} names two keys ({path} repeats it)")]
    DuplicateKid { issuer: String, kid: String, path: PathBuf },
}

/// Why a JWT is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// No JWT issuer is configured.
    #[error("this STS trusts no JWT issuer")]
    NoIssuers,
    /// Longer than the configured limit (checked before any decoding).
    #[error("the JWT is {size} bytes long, more than the {limit} accepted")]
    TooLarge { size: usize, limit: usize },
    /// Five parts: an encrypted JWT (JWE).
    #[error("the token is a JWE (five parts): encrypted JWTs are not accepted; send the signed JWT itself")]
    Encrypted,
    /// Not three dot-separated parts.
    #[error(
        "the token is not a compact JWS: it has {parts} dot-separated part(s), not three \
         (header.payload.signature)"
    )]
    NotCompact { parts: usize },
    /// The header or payload part is empty.
    #[error("the JWT's {part} is empty")]
    EmptyPart { part: &'static str },
    /// A part is not unpadded base64url.
    #[error("the JWT's {part} is not unpadded base64url")]
    NotBase64url { part: &'static str },
    /// The header is not a JSON object with unique names and usable parameters.
    #[error("the JWT header is unreadable: {reason}")]
    MalformedHeader { reason: String },
    /// The header has no `alg`.
    #[error("the JWT header names no alg")]
    MissingAlgorithm,
    /// `alg` is `none`.
    #[error("the JWT is unsigned (alg {alg:?}); unsigned tokens are never accepted")]
    AlgorithmNone { alg: String },
    /// `alg` is an HMAC algorithm.
    #[error(
        "the JWT names alg {alg:?}, a shared-secret (HMAC) algorithm; JWT issuers are trusted by \
         their public keys only"
    )]
    AlgorithmHmac { alg: String },
    /// `alg` is no JWS signature algorithm segl knows.
    #[error(
        "the JWT names alg {alg:?}, which is not a supported JWS algorithm ({})",
        crate::config::jwt::SUPPORTED_ALGORITHMS.join(", ")
    )]
    UnknownAlgorithm { alg: String },
    /// The header has `crit` (RFC 7515 §4.1.11): extensions segl does not implement.
    #[error("the JWT header lists critical extensions (crit), which this STS does not implement")]
    CriticalHeader,
    /// The payload is not a JSON object with unique names.
    #[error("the JWT claims are unreadable: {reason}")]
    MalformedClaims { reason: String },
    /// No `iss` (a string) to choose the issuer by.
    #[error("the JWT has no iss claim (a string naming its issuer)")]
    MissingIssuer,
    /// `iss` names no configured issuer.
    #[error("the JWT's issuer {issuer:?} is not a trusted JWT issuer")]
    UnknownIssuer { issuer: String },
    /// The header has no `kid` (a string).
    #[error("the JWT header names no kid; the keys of issuer {issuer} are chosen by kid")]
    MissingKid { issuer: String },
    /// `kid` names none of the issuer's keys.
    #[error("the JWT names kid {kid:?}, which issuer {issuer} has no key for")]
    UnknownKid { kid: String, issuer: String },
    /// `alg` is not among the issuer's algorithms.
    #[error("tokens of issuer {issuer} are not accepted with alg {alg} (accepted: {allowed})")]
    AlgorithmNotAllowed { alg: String, issuer: String, allowed: String },
    /// `alg` does not fit the key `kid` names.
    #[error("the JWT names alg {alg}, which key {kid:?} of issuer {issuer} cannot verify: it is {key}")]
    AlgorithmKeyMismatch { alg: String, kid: String, issuer: String, key: String },
    /// The signature is not by the key `kid` names.
    #[error("the JWT's signature does not verify with key {kid:?} of issuer {issuer}")]
    BadSignature { kid: String, issuer: String },
    /// The JOSE library refused the token for a reason the checks before it did not see.
    #[error("the JWT could not be verified: {reason}")]
    Verification { reason: String },
    /// The verified `iss` differs from the one the key set was chosen by (a parser mismatch).
    #[error("the JWT's verified iss {found:?} is not {issuer}")]
    IssuerMismatch { found: String, issuer: String },
    /// No `aud`.
    #[error("the JWT names no audience (aud); it must name {expected}")]
    MissingAudience { expected: String },
    /// `aud` names none of the accepted audiences.
    #[error("the JWT is for audience {found}, not {expected}")]
    WrongAudience { found: String, expected: String },
    /// No `exp`.
    #[error("the JWT has no expiry (exp)")]
    MissingExpiry,
    /// A claim of the wrong JSON type (or a time out of range).
    #[error("the JWT's {claim} claim is not {expected}")]
    MalformedClaim { claim: &'static str, expected: &'static str },
    /// `now` is at or past `exp` plus the clock skew.
    #[error("the JWT expired at {at} (it is now {now}; {skew_secs} s of clock skew allowed)")]
    Expired { at: Timestamp, now: Timestamp, skew_secs: i64 },
    /// `nbf` lies beyond `now` plus the clock skew.
    #[error("the JWT is not valid before {at} (it is now {now}; {skew_secs} s of clock skew allowed)")]
    NotYetValid { at: Timestamp, now: Timestamp, skew_secs: i64 },
    /// `iat` lies beyond `now` plus the clock skew.
    #[error(
        "the JWT was issued at {at}, in the future (it is now {now}; {skew_secs} s of clock skew allowed)"
    )]
    IssuedInFuture { at: Timestamp, now: Timestamp, skew_secs: i64 },
    /// No `cpr`.
    #[error("the JWT has no cpr claim (the citizen's CPR number)")]
    MissingCpr,
    /// `cpr` is not ten digits (the value is not repeated: it is personal data).
    #[error("the JWT's cpr claim is not a CPR number (ten digits)")]
    MalformedCpr,
    /// No `scope` while the issuer requires one.
    #[error("the JWT has no scope; it must include {required:?}")]
    MissingScope { required: String },
    /// `scope` lacks the required scope.
    #[error("the JWT's scope does not include {required:?}")]
    ScopeLacks { required: String },
}

/// A JWT whose signature, issuer, audience, times, CPR and scope were accepted.
#[derive(Debug, Clone)]
pub struct VerifiedJwt {
    /// `iss`: the configured issuer.
    pub issuer: String,
    /// `cpr`: the citizen's CPR number (ten digits).
    pub cpr: String,
    /// `sub`.
    pub subject: Option<String>,
    /// `aud` (a string or an array in the token).
    pub audiences: Vec<String>,
    /// `exp`.
    pub expires: Timestamp,
    /// `nbf`, when present and not zero (Keycloak writes 0 for "none").
    pub not_before: Option<Timestamp>,
    /// `iat`.
    pub issued_at: Option<Timestamp>,
    /// `jti`.
    pub id: Option<String>,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `family_name`.
    pub family_name: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `scope` (a space-separated string or an array in the token).
    pub scope: Vec<String>,
    /// `acr`: the authentication context (JTP-H: the NSIS level of assurance URI).
    pub assurance: Option<String>,
    /// `auth_time`: when the citizen logged in.
    pub authenticated_at: Option<Timestamp>,
    /// `exp` plus the issuer's clock skew: the last moment the token is accepted.
    pub valid_until: Timestamp,
    /// The issuer's client whitelist (shared with the issuer, not copied per token).
    pub clients: Arc<[WhitelistEntry]>,
}

impl JwtError {
    /// Whether the token is not a readable JWS at all (a malformed request rather than a
    /// failed authentication).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::Encrypted
                | Self::NotCompact { .. }
                | Self::EmptyPart { .. }
                | Self::NotBase64url { .. }
                | Self::MalformedHeader { .. }
                | Self::MalformedClaims { .. }
        )
    }
}

impl VerifiedJwt {
    /// Whether `client` is on the issuer's whitelist (the bootstrap issuers' matching rule).
    pub fn whitelists(&self, client: &SignerCertificate) -> bool {
        self.clients.iter().any(|entry| super::idp::matches(entry, client))
    }
}

/// The configured JWT issuers with their keys, read at load.
#[derive(Debug, Default)]
pub struct JwtIssuers {
    by_issuer: HashMap<String, Issuer>,
    /// The largest `max_token_bytes` of any issuer: the bound checked before anything else.
    max_token_bytes: usize,
}

#[derive(Debug)]
struct Issuer {
    issuer: String,
    keys: HashMap<String, IssuerKey>,
    /// The accepted algorithms, each with the library validation that checks its signature.
    algorithms: Vec<(Algorithm, Validation)>,
    audiences: Vec<String>,
    skew: SignedDuration,
    required_scope: String,
    max_token_bytes: usize,
    clients: Arc<[WhitelistEntry]>,
}

#[derive(Debug)]
struct IssuerKey {
    key_type: KeyType,
    /// A JWK's `alg`: the one algorithm its issuer declared for it.
    only: Option<Algorithm>,
    decoding: DecodingKey,
}

/// What kind of public key a `kid` names; it decides which algorithms may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyType {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            KeyType::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            KeyType::EcP256 => alg == ES256,
            KeyType::EcP384 => alg == ES384,
            KeyType::Ed25519 => alg == EdDSA,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyType::Rsa => "an RSA key (RS256, RS384, RS512, PS256, PS384, PS512)",
            KeyType::EcP256 => "an EC P-256 key (ES256)",
            KeyType::EcP384 => "an EC P-384 key (ES384)",
            KeyType::Ed25519 => "an Ed25519 key (EdDSA)",
        }
    }
}

impl JwtIssuers {
    /// Reads every issuer's JWKS files and certificates; errors name the issuer and the file.
    pub fn from_config(issuers: &[JwtIssuerConfig]) -> Result<JwtIssuers, JwtConfigError> {
        let mut by_issuer = HashMap::new();
        let mut max_token_bytes = 0;
        for config in issuers {
            // Validated again here: a caller may build issuers from a configuration that did
            // not pass through Config::load (tests, the fuzz harness).
            config.validate()?;
            if by_issuer.contains_key(&config.issuer) {
                return Err(JwtConfigError::DuplicateIssuer { issuer: config.issuer.clone() });
            }
            let issuer = Issuer::load(config)?;
            max_token_bytes = max_token_bytes.max(issuer.max_token_bytes);
            by_issuer.insert(config.issuer.clone(), issuer);
        }
        Ok(JwtIssuers { by_issuer, max_token_bytes })
    }

    /// Whether no issuer is configured (then every JWT is refused).
    pub fn is_empty(&self) -> bool {
        self.by_issuer.is_empty()
    }

    /// Verifies `token` (a compact JWS; surrounding XML whitespace is ignored) for the
    /// request's audience `applies_to` at `now`.
    pub fn verify(&self, token: &str, applies_to: &str, now: Timestamp) -> Result<VerifiedJwt, JwtError> {
        if self.is_empty() {
            return Err(JwtError::NoIssuers);
        }
        if token.len() > self.max_token_bytes {
            return Err(JwtError::TooLarge { size: token.len(), limit: self.max_token_bytes });
        }
        // The token is the text of a wsse:BinarySecurityToken: a pretty-printed request puts
        // line breaks around it. No other whitespace is allowed.
        let token = token.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n'));
        let parts = split_compact(token)?;

        let header =
            decode_object(parts.header, "header").map_err(|reason| JwtError::MalformedHeader { reason })?;
        let alg = judge_algorithm(&header)?;
        if header.contains_key("crit") {
            return Err(JwtError::CriticalHeader);
        }

        // Unverified: read only to choose whose keys verify the signature.
        let claims =
            decode_object(parts.payload, "payload").map_err(|reason| JwtError::MalformedClaims { reason })?;
        let iss = match claims.get("iss") {
            Some(Value::String(iss)) => iss,
            _ => return Err(JwtError::MissingIssuer),
        };
        let issuer = self.by_issuer.get(iss).ok_or_else(|| JwtError::UnknownIssuer { issuer: shown(iss) })?;
        if token.len() > issuer.max_token_bytes {
            return Err(JwtError::TooLarge { size: token.len(), limit: issuer.max_token_bytes });
        }

        let kid = match header.get("kid") {
            Some(Value::String(kid)) => kid,
            Some(_) => return Err(JwtError::MalformedHeader { reason: "its kid is not a string".into() }),
            None => return Err(JwtError::MissingKid { issuer: issuer.issuer.clone() }),
        };
        let key = issuer
            .keys
            .get(kid)
            .ok_or_else(|| JwtError::UnknownKid { kid: shown(kid), issuer: issuer.issuer.clone() })?;
        let validation =
            issuer.algorithms.iter().find(|(a, _)| *a == alg).map(|(_, v)| v).ok_or_else(|| {
                JwtError::AlgorithmNotAllowed {
                    alg: alg_name(alg).into(),
                    issuer: issuer.issuer.clone(),
                    allowed: issuer
                        .algorithms
                        .iter()
                        .map(|(a, _)| alg_name(*a))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            })?;
        let mismatch = |key: String| JwtError::AlgorithmKeyMismatch {
            alg: alg_name(alg).into(),
            kid: shown(kid),
            issuer: issuer.issuer.clone(),
            key,
        };
        if !key.key_type.fits(alg) {
            return Err(mismatch(key.key_type.describe().into()));
        }
        if let Some(only) = key.only.filter(|only| *only != alg) {
            return Err(mismatch(format!("declared for {} only (its JWK alg)", alg_name(only))));
        }

        // The library parses the header into its own type before verifying; whatever it
        // cannot read is reported as such, before the signature is looked at.
        // Its header type holds extension parameters as strings only: that is the one thing
        // it refuses in a header read above.
        jsonwebtoken::decode_header(token).map_err(|e| JwtError::MalformedHeader {
            reason: match e.kind() {
                jsonwebtoken::errors::ErrorKind::Json(j)
                    if j.classify() == serde_json::error::Category::Data =>
                {
                    "a header parameter has a type the JOSE library does not read (extension parameters \
                     must be strings)"
                        .into()
                }
                _ => library_reason(&e),
            },
        })?;
        let verified = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    JwtError::BadSignature { kid: shown(kid), issuer: issuer.issuer.clone() }
                }
                _ => JwtError::Verification { reason: library_reason(&e) },
            },
        )?;
        issuer.check_claims(&verified.claims, applies_to, now)
    }
}

impl Issuer {
    fn load(config: &JwtIssuerConfig) -> Result<Issuer, JwtConfigError> {
        let mut keys = HashMap::new();
        for path in &config.jwks {
            for (kid, key) in read_jwks(&config.issuer, path)? {
                if keys.insert(kid.clone(), key).is_some() {
                    return Err(JwtConfigError::DuplicateKid {
                        issuer: config.issuer.clone(),
                        kid,
                        path: path.clone(),
                    });
                }
            }
        }
        for entry in &config.key {
            let key = read_certificate_key(&config.issuer, &entry.kid, &entry.certificate)?;
            if keys.insert(entry.kid.clone(), key).is_some() {
                return Err(JwtConfigError::DuplicateKid {
                    issuer: config.issuer.clone(),
                    kid: entry.kid.clone(),
                    path: entry.certificate.clone(),
                });
            }
        }
        let mut algorithms: Vec<(Algorithm, Validation)> = Vec::new();
        for name in &config.algorithms {
            // validate() admitted only names the library parses.
            let Ok(alg) = name.parse::<Algorithm>() else {
                return Err(JwtIssuerConfigError::UnknownAlgorithm {
                    issuer: config.issuer.clone(),
                    alg: name.clone(),
                }
                .into());
            };
            if !algorithms.iter().any(|(a, _)| *a == alg) {
                algorithms.push((alg, signature_only(alg)));
            }
        }
        Ok(Issuer {
            issuer: config.issuer.clone(),
            keys,
            algorithms,
            audiences: config.audiences.clone(),
            skew: SignedDuration::from_secs(i64::try_from(config.clock_skew_secs).unwrap_or(i64::MAX)),
            required_scope: config.required_scope.clone(),
            max_token_bytes: config.max_token_bytes,
            clients: config.clients.clone().into(),
        })
    }

    /// The checks on verified claims.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        applies_to: &str,
        now: Timestamp,
    ) -> Result<VerifiedJwt, JwtError> {
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(iss)) => {
                return Err(JwtError::IssuerMismatch { found: shown(iss), issuer: self.issuer.clone() })
            }
            _ => return Err(JwtError::MissingIssuer),
        }

        let audiences = string_or_array(claims, "aud")?;
        let accepted = |aud: &String| {
            if self.audiences.is_empty() {
                aud == applies_to
            } else {
                self.audiences.contains(aud)
            }
        };
        let expected = || {
            if self.audiences.is_empty() {
                format!("{:?} (the requested AppliesTo)", shown(applies_to))
            } else {
                format!("one of the audiences accepted from {}: {:?}", self.issuer, self.audiences)
            }
        };
        match &audiences {
            None => return Err(JwtError::MissingAudience { expected: expected() }),
            Some(list) if list.is_empty() => return Err(JwtError::MissingAudience { expected: expected() }),
            Some(list) if !list.iter().any(accepted) => {
                return Err(JwtError::WrongAudience { found: shown_list(list), expected: expected() })
            }
            Some(_) => {}
        }

        let skew_secs = self.skew.as_secs();
        let horizon = plus(now, self.skew);
        let expires = numeric_date(claims, "exp")?.ok_or(JwtError::MissingExpiry)?;
        if now >= plus(expires, self.skew) {
            return Err(JwtError::Expired { at: expires, now, skew_secs });
        }
        // Keycloak writes nbf 0 for "no nbf".
        let not_before = numeric_date(claims, "nbf")?.filter(|t| *t != Timestamp::UNIX_EPOCH);
        if let Some(at) = not_before.filter(|nbf| *nbf > horizon) {
            return Err(JwtError::NotYetValid { at, now, skew_secs });
        }
        let issued_at = numeric_date(claims, "iat")?;
        if let Some(at) = issued_at.filter(|iat| *iat > horizon) {
            return Err(JwtError::IssuedInFuture { at, now, skew_secs });
        }

        let cpr = match claims.get("cpr") {
            None | Some(Value::Null) => return Err(JwtError::MissingCpr),
            Some(Value::String(cpr)) if cpr.len() == 10 && cpr.bytes().all(|b| b.is_ascii_digit()) => cpr,
            Some(_) => return Err(JwtError::MalformedCpr),
        };

        let scope = scope_claim(claims)?;
        if !self.required_scope.is_empty() {
            match &scope {
                None => return Err(JwtError::MissingScope { required: self.required_scope.clone() }),
                Some(list) if !list.contains(&self.required_scope) => {
                    return Err(JwtError::ScopeLacks { required: self.required_scope.clone() })
                }
                Some(_) => {}
            }
        }

        Ok(VerifiedJwt {
            issuer: self.issuer.clone(),
            cpr: cpr.clone(),
            subject: optional_string(claims, "sub")?,
            audiences: audiences.unwrap_or_default(),
            expires,
            not_before,
            issued_at,
            id: optional_string(claims, "jti")?,
            given_name: optional_string(claims, "given_name")?,
            family_name: optional_string(claims, "family_name")?,
            name: optional_string(claims, "name")?,
            scope: scope.unwrap_or_default(),
            assurance: optional_string(claims, "acr")?,
            authenticated_at: numeric_date(claims, "auth_time")?,
            valid_until: expires.saturating_add(self.skew).unwrap_or(expires),
            clients: Arc::clone(&self.clients),
        })
    }
}

/// A library validation that checks the signature with `alg` and nothing else: time, audience
/// and issuer are checked by [`Issuer::check_claims`] against the caller's `now` (the
/// library's checks read the wall clock and would make the tests' pinned time meaningless).
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    validation
}

/// The three parts of a compact JWS, still encoded.
struct CompactParts<'a> {
    header: &'a str,
    payload: &'a str,
}

fn split_compact(token: &str) -> Result<CompactParts<'_>, JwtError> {
    let dots = token.bytes().filter(|b| *b == b'.').count();
    if dots == 4 {
        return Err(JwtError::Encrypted);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotCompact { parts: dots + 1 });
    };
    if header.is_empty() {
        return Err(JwtError::EmptyPart { part: "header" });
    }
    if payload.is_empty() {
        return Err(JwtError::EmptyPart { part: "payload" });
    }
    // An empty signature is left to the algorithm check: it is what alg "none" sends.
    for (part, text) in [("header", header), ("payload", payload), ("signature", signature)] {
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            || B64URL.decode(text).is_err()
        {
            return Err(JwtError::NotBase64url { part });
        }
    }
    Ok(CompactParts { header, payload })
}

/// Decodes a base64url part holding a JSON object with unique names.
fn decode_object(part: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = B64URL.decode(part).map_err(|_| format!("its {what} is not base64url"))?;
    serde_json::from_slice::<UniqueObject>(&bytes).map(|o| o.0).map_err(|e| json_reason(&e))
}

/// The algorithm the header names, refused outright when it is `none`, HMAC or unknown: these
/// are never acceptable, whoever the issuer.
fn judge_algorithm(header: &Map<String, Value>) -> Result<Algorithm, JwtError> {
    let alg = match header.get("alg") {
        None | Some(Value::Null) => return Err(JwtError::MissingAlgorithm),
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(JwtError::MalformedHeader { reason: "its alg is not a string".into() }),
    };
    // Case-insensitive: libraries that match "none" loosely were forged with "None"/"NONE".
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgorithmNone { alg: shown(alg) });
    }
    if alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
        return Err(JwtError::AlgorithmHmac { alg: shown(alg) });
    }
    alg.parse::<Algorithm>().map_err(|_| JwtError::UnknownAlgorithm { alg: shown(alg) })
}

/// The JWS name of an algorithm (its Debug form is that name).
fn alg_name(alg: Algorithm) -> &'static str {
    use Algorithm::*;
    match alg {
        HS256 => "HS256",
        HS384 => "HS384",
        HS512 => "HS512",
        ES256 => "ES256",
        ES384 => "ES384",
        RS256 => "RS256",
        RS384 => "RS384",
        RS512 => "RS512",
        PS256 => "PS256",
        PS384 => "PS384",
        PS512 => "PS512",
        EdDSA => "EdDSA",
    }
}

/// A short, quoted-safe rendering of a library error; JSON errors are reduced to their
/// category and position, as their text may quote the token.
fn library_reason(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::Json(json) => json_reason(json),
        ErrorKind::Base64(_) => "a part is not base64url".into(),
        ErrorKind::Utf8(_) => "a part is not UTF-8".into(),
        ErrorKind::InvalidToken => "it is not a compact JWS".into(),
        ErrorKind::InvalidAlgorithm => "its alg does not fit the key".into(),
        ErrorKind::InvalidKeyFormat => "the key does not fit the algorithm".into(),
        // The remaining kinds describe keys and validation settings, not the token.
        other => format!("{other:?}"),
    }
}

/// A JSON error without the token text serde_json may quote.
fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax => format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        Category::Eof => "truncated JSON".into(),
        Category::Io => "unreadable".into(),
        Category::Data if e.to_string().starts_with(DUPLICATE_NAME) => DUPLICATE_NAME.into(),
        Category::Data => "not a JSON object".into(),
    }
}

const DUPLICATE_NAME: &str = "a member name appears twice";

/// A JSON object whose member names are unique: RFC 7515 §5.2 and RFC 7519 §4 let a parser
/// refuse duplicates or keep the last; refusing them leaves no room for two readers to
/// disagree on which `iss` or `alg` a token carries.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    if map.contains_key(&name) {
                        return Err(A::Error::custom(DUPLICATE_NAME));
                    }
                    let value = access.next_value::<Value>()?;
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// A claim that is a string or an array of strings (`aud`); `None` when absent.
fn string_or_array(
    claims: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<Vec<String>>, JwtError> {
    let malformed = JwtError::MalformedClaim { claim, expected: "a string or an array of strings" };
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or(malformed),
        Some(_) => Err(malformed),
    }
}

/// `scope` (RFC 6749 §3.3: space-delimited; some issuers send an array); `None` when absent.
fn scope_claim(claims: &Map<String, Value>) -> Result<Option<Vec<String>>, JwtError> {
    let malformed = JwtError::MalformedClaim {
        claim: "scope",
        expected: "a space-separated string or an array of strings",
    };
    match claims.get("scope") {
        Some(Value::String(s)) => {
            Ok(Some(s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()))
        }
        Some(Value::Array(_)) => string_or_array(claims, "scope").map_err(|_| malformed),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(malformed),
    }
}

/// An optional string claim.
fn optional_string(claims: &Map<String, Value>, claim: &'static str) -> Result<Option<String>, JwtError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::MalformedClaim { claim, expected: "a string" }),
    }
}

/// An optional NumericDate claim (RFC 7519 §2: seconds, possibly fractional, truncated here).
fn numeric_date(claims: &Map<String, Value>, claim: &'static str) -> Result<Option<Timestamp>, JwtError> {
    let malformed = JwtError::MalformedClaim { claim, expected: "a NumericDate (seconds since 1970)" };
    let seconds = match claims.get(claim) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(s) => s,
            // The float range check keeps the cast from saturating to a time far away.
            None => match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => f.floor() as i64,
                _ => return Err(malformed),
            },
        },
        Some(_) => return Err(malformed),
    };
    Timestamp::from_second(seconds).map(Some).map_err(|_| malformed)
}

/// `t + d`, at the end of time when that lies beyond it (a far `exp` plus skew is no error).
fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// A token-supplied string cut to [`SHOWN_CHARS`] characters for an error text.
fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Token-supplied strings, each cut, at most four of them.
fn shown_list(list: &[String]) -> String {
    let mut out: Vec<String> = list.iter().take(4).map(|s| format!("{:?}", shown(s))).collect();
    if list.len() > 4 {
        out.push(format!("and {} more", list.len() - 4));
    }
    out.join(", ")
}

/// Reads a JWKS file: every signature key with its `kid`; encryption keys (`use` "enc", which
/// an OIDC provider's JWKS lists beside its signature keys) are passed over.
fn read_jwks(issuer: &str, path: &Path) -> Result<Vec<(String, IssuerKey)>, JwtConfigError> {
    let bytes = std::fs::read(path).map_err(|source| JwtConfigError::Read {
        issuer: issuer.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    let not_jwks =
        |reason: String| JwtConfigError::NotJwks { issuer: issuer.to_owned(), path: path.to_owned(), reason };
    let set: Value = serde_json::from_slice(&bytes).map_err(|e| not_jwks(json_reason(&e)))?;
    let Some(Value::Array(keys)) = set.get("keys") else {
        return Err(not_jwks("it has no \"keys\" array".into()));
    };
    let mut out = Vec::new();
    for (index, jwk) in keys.iter().enumerate() {
        let Some(jwk) = jwk.as_object() else {
            return Err(not_jwks(format!("key #{index} is not a JSON object")));
        };
        let kid = match jwk.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
            _ => {
                return Err(JwtConfigError::MissingKid {
                    issuer: issuer.to_owned(),
                    path: path.to_owned(),
                    index,
                })
            }
        };
        let unusable = |reason: String| JwtConfigError::UnusableKey {
            issuer: issuer.to_owned(),
            path: path.to_owned(),
            kid: kid.clone(),
            reason,
        };
        match jwk.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(Value::String(u)) if u == "enc" => continue,
            Some(other) => return Err(unusable(format!("use {other} is neither \"sig\" nor \"enc\""))),
        }
        let key = jwk_key(jwk).map_err(unusable)?;
        out.push((kid, key));
    }
    if out.is_empty() {
        return Err(JwtConfigError::NoSignatureKey { issuer: issuer.to_owned(), path: path.to_owned() });
    }
    Ok(out)
}

/// One JWK's public key (RFC 7518 §6).
fn jwk_key(jwk: &Map<String, Value>) -> Result<IssuerKey, String> {
    let member = |name: &str| -> Result<Vec<u8>, String> {
        let text = jwk.get(name).and_then(Value::as_str).ok_or_else(|| format!("it has no {name}"))?;
        B64URL.decode(text).map_err(|_| format!("its {name} is not base64url"))
    };
    let kty = jwk.get("kty").and_then(Value::as_str).ok_or("it has no kty")?;
    let (key_type, decoding) = match kty {
        "RSA" => {
            let (n, e) = (member("n")?, member("e")?);
            let (n, e) = rsa_components(&n, &e)?;
            (KeyType::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        "EC" => {
            let crv = jwk.get("crv").and_then(Value::as_str).ok_or("it has no crv")?;
            let (key_type, size) = match crv {
                "P-256" => (KeyType::EcP256, 32),
                "P-384" => (KeyType::EcP384, 48),
                other => return Err(format!("curve {other:?} is not supported (P-256, P-384)")),
            };
            let (x, y) = (member("x")?, member("y")?);
            if x.len() != size || y.len() != size {
                return Err(format!("its x and y must be {size} bytes each on {crv}"));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (key_type, ec_key(key_type, &point)?)
        }
        "OKP" => {
            let crv = jwk.get("crv").and_then(Value::as_str).ok_or("it has no crv")?;
            if crv != "Ed25519" {
                return Err(format!("curve {crv:?} is not supported (Ed25519)"));
            }
            (KeyType::Ed25519, ed25519_key(&member("x")?)?)
        }
        "oct" => return Err("it is a symmetric (oct) key; HMAC is refused".into()),
        other => return Err(format!("key type {other:?} is not supported (RSA, EC, OKP)")),
    };
    let only = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => {
            let alg = name.parse::<Algorithm>().ok().filter(|a| key_type.fits(*a)).ok_or_else(|| {
                format!("its alg {name:?} is not a signature algorithm for {}", key_type.describe())
            })?;
            Some(alg)
        }
        Some(_) => return Err("its alg is not a string".into()),
    };
    Ok(IssuerKey { key_type, only, decoding })
}

/// RSA `n` and `e` without leading zeros, refused unless the library's verifiers (2048 to
/// 8192 bits) could use them: a key they refuse would fail every token, silently.
fn rsa_components<'a>(n: &'a [u8], e: &'a [u8]) -> Result<(&'a [u8], &'a [u8]), String> {
    let strip = |b: &'a [u8]| &b[b.iter().take_while(|x| **x == 0).count()..];
    let (n, e) = (strip(n), strip(e));
    let bits = n.first().map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(format!("its modulus has {bits} bits; 2048 to 8192 are accepted"));
    }
    if e.is_empty() || e.len() > 4 || e.last().is_some_and(|b| b & 1 == 0) || e == [1] {
        return Err("its public exponent is not an odd number between 3 and 2^32".into());
    }
    Ok((n, e))
}

/// An EC public key (an uncompressed point), checked to lie on its curve.
fn ec_key(key_type: KeyType, point: &[u8]) -> Result<DecodingKey, String> {
    let curve: &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm = match key_type {
        KeyType::EcP384 => &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED,
        _ => &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
    };
    aws_lc_rs::signature::ParsedPublicKey::new(curve, point)
        .map_err(|_| "its point is not on the curve".to_owned())?;
    Ok(DecodingKey::from_ec_der(point))
}

/// An Ed25519 public key (32 bytes).
fn ed25519_key(x: &[u8]) -> Result<DecodingKey, String> {
    aws_lc_rs::signature::ParsedPublicKey::new(&aws_lc_rs::signature::ED25519, x)
        .map_err(|_| "it is not an Ed25519 public key".to_owned())?;
    Ok(DecodingKey::from_ed_der(x))
}

/// The public key of a configured certificate (the certificate only carries the key: its
/// validity and issuer are the operator's business, as a JWKS has neither).
fn read_certificate_key(issuer: &str, kid: &str, path: &Path) -> Result<IssuerKey, JwtConfigError> {
    let fail = |reason: String| JwtConfigError::Certificate {
        issuer: issuer.to_owned(),
        path: path.to_owned(),
        kid: kid.to_owned(),
        reason,
    };
    if let Err(source) = std::fs::metadata(path) {
        return Err(JwtConfigError::Read { issuer: issuer.to_owned(), path: path.to_owned(), source });
    }
    let der = crate::signing::keys::read_certificate_file(path).map_err(|e| fail(e.to_string()))?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|e| fail(format!("not an X.509 certificate: {e}")))?;
    let spki = cert.public_key();
    let unusable = |reason: String| JwtConfigError::UnusableKey {
        issuer: issuer.to_owned(),
        path: path.to_owned(),
        kid: kid.to_owned(),
        reason,
    };
    if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 {
        let decoding = ed25519_key(&spki.subject_public_key.data).map_err(unusable)?;
        return Ok(IssuerKey { key_type: KeyType::Ed25519, only: None, decoding });
    }
    let (key_type, decoding) = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let (n, e) = rsa_components(rsa.modulus, rsa.exponent).map_err(unusable)?;
            (KeyType::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        Ok(PublicKey::EC(point)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            let key_type = match curve {
                Some(oid) if oid == x509_parser::oid_registry::OID_EC_P256 => KeyType::EcP256,
                Some(oid) if oid == x509_parser::oid_registry::OID_NIST_EC_P384 => KeyType::EcP384,
                _ => return Err(unusable("its EC curve is not supported (P-256, P-384)".into())),
            };
            (key_type, ec_key(key_type, point.data()).map_err(unusable)?)
        }
        Ok(_) => return Err(unusable("its key type is not supported (RSA, EC, Ed25519)".into())),
        Err(e) => return Err(unusable(format!("its public key is unreadable: {e}"))),
    };
    Ok(IssuerKey { key_type, only: None, decoding })
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://oidc.test/realms/citizens";
    const OTHER: &str = "https://other-oidc.test/realms/citizens";
    const AUD: &str = "https://fmk";
    const CPR: &str = "2512484916";
    /// 2026-05-28T20:26:40Z: every token and check is pinned to it.
    const NOW_SECS: i64 = 1_780_000_000;

    fn now() -> Timestamp {
        Timestamp::from_second(NOW_SECS).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        B64URL.encode(bytes)
    }

    /// A software RSA key: PKCS#8, the library's signing key and the public parts.
    struct Rsa {
        pkcs8: Vec<u8>,
        signing: EncodingKey,
        n: Vec<u8>,
        e: Vec<u8>,
        spki: Vec<u8>,
    }

    impl Rsa {
        fn generate() -> Rsa {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let pkcs8 = key.as_der().unwrap().as_ref().to_vec();
            let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(key.public_key());
            let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
            Rsa {
                signing: crate::dev::jwt::rsa_signing_key(&pkcs8).unwrap(),
                pkcs8,
                n: public.n,
                e: public.e,
                spki,
            }
        }

        fn jwk(&self, kid: &str) -> Value {
            json!({"kty": "RSA", "kid": kid, "n": b64(&self.n), "e": b64(&self.e)})
        }

        /// The public key as PKCS#1 RSAPublicKey DER (what `openssl rsa -RSAPublicKey_out`
        /// writes): the SPKI's BIT STRING content.
        fn pkcs1_public(&self) -> Vec<u8> {
            let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&self.spki).expect("an SPKI");
            spki.subject_public_key.data.to_vec()
        }

        fn spki_pem(&self) -> String {
            let body = base64::engine::general_purpose::STANDARD.encode(&self.spki);
            let lines: Vec<&str> =
                body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
            format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
        }
    }

    /// A software EC P-256 key.
    struct Ec {
        pkcs8: Vec<u8>,
        signing: EncodingKey,
        point: Vec<u8>,
    }

    impl Ec {
        fn generate() -> Ec {
            let alg = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
            let key = aws_lc_rs::signature::EcdsaKeyPair::generate(alg).unwrap();
            let pkcs8 = key.to_pkcs8v1().unwrap().as_ref().to_vec();
            Ec { signing: EncodingKey::from_ec_der(&pkcs8), point: key.public_key().as_ref().to_vec(), pkcs8 }
        }

        fn jwk(&self, kid: &str) -> Value {
            json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                   "x": b64(&self.point[1..33]), "y": b64(&self.point[33..])})
        }
    }

    struct Keys {
        /// The issuer's main key, JWKS kid "rsa-1" (no JWK alg: any RSA algorithm).
        rsa: Rsa,
        /// The issuer's second RSA key, JWKS kid "rsa-rs256", declared for RS256 only.
        rsa_rs256: Rsa,
        /// A key nobody trusts; also the other issuer's "rsa-1".
        stranger: Rsa,
        /// The issuer's EC key, JWKS kid "ec-1".
        ec: Ec,
        /// Keys of certificates: kid "cert-rsa" and "cert-ec".
        cert_rsa: Rsa,
        cert_ec: Ec,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| Keys {
            rsa: Rsa::generate(),
            rsa_rs256: Rsa::generate(),
            stranger: Rsa::generate(),
            ec: Ec::generate(),
            cert_rsa: Rsa::generate(),
            cert_ec: Ec::generate(),
        })
    }

    /// The key files, written once per test process.
    fn files() -> &'static Path {
        static DIR: OnceLock<PathBuf> = OnceLock::new();
        DIR.get_or_init(|| {
            const PREFIX: &str = "segl-jwt-verify-";
            // Directories of earlier test processes that have ended go first.
            for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix(PREFIX));
                if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
            let dir = std::env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let k = keys();
            let mut rs256 = k.rsa_rs256.jwk("rsa-rs256");
            rs256["alg"] = json!("RS256");
            rs256["use"] = json!("sig");
            // An OIDC provider lists its encryption key too; it is passed over.
            let mut enc = k.stranger.jwk("enc-1");
            enc["use"] = json!("enc");
            let jwks = json!({"keys": [k.rsa.jwk("rsa-1"), k.ec.jwk("ec-1"), rs256, enc]});
            std::fs::write(dir.join("issuer.jwks.json"), jwks.to_string()).unwrap();
            let other = json!({"keys": [k.stranger.jwk("rsa-1")]});
            std::fs::write(dir.join("other.jwks.json"), other.to_string()).unwrap();
            let certificate = |pkcs8: &[u8], alg: &'static rcgen::SignatureAlgorithm, name: &str| {
                let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.into(), alg).unwrap();
                let cert = rcgen::CertificateParams::new(vec!["oidc.test".to_owned()])
                    .unwrap()
                    .self_signed(&key)
                    .unwrap();
                std::fs::write(dir.join(name), cert.pem()).unwrap();
            };
            certificate(&k.cert_rsa.pkcs8, &rcgen::PKCS_RSA_SHA256, "cert-rsa.pem");
            certificate(&k.cert_ec.pkcs8, &rcgen::PKCS_ECDSA_P256_SHA256, "cert-ec.pem");
            dir
        })
    }

    /// The issuer's configuration (defaults as a file would get them) with `extra` TOML lines.
    fn config(issuer: &str, jwks: &str, extra: &str) -> JwtIssuerConfig {
        let dir = files();
        let text = format!(
            "issuer = {issuer:?}\njwks = [{:?}]\nkey = [{{ kid = \"cert-rsa\", certificate = {:?} }}, \
             {{ kid = \"cert-ec\", certificate = {:?} }}]\n{extra}\n",
            dir.join(jwks).display().to_string(),
            dir.join("cert-rsa.pem").display().to_string(),
            dir.join("cert-ec.pem").display().to_string(),
        );
        toml::from_str(&text).unwrap()
    }

    fn issuers_with(extra: &str) -> JwtIssuers {
        JwtIssuers::from_config(&[
            config(ISSUER, "issuer.jwks.json", extra),
            toml::from_str(&format!(
                "issuer = {OTHER:?}\njwks = [{:?}]\n",
                files().join("other.jwks.json").display().to_string()
            ))
            .unwrap(),
        ])
        .unwrap()
    }

    fn issuers() -> JwtIssuers {
        issuers_with("clients = [{ subject_serial = \"CVR:20921897-UID:11223344\" }]")
    }

    /// Valid JTP-H-like claims at [`now`].
    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": AUD,
            "sub": "urn:dk:healthcare:eid:uuid:global:person:5d1c9ff4-1d0e-4b3a-9a43-2f1b0c8e7a21",
            "iat": NOW_SECS - 10,
            "exp": NOW_SECS + 3600,
            "nbf": 0,
            "jti": "b0f1c4a2-0d5e-4c1f-9d55-3f0c2a9e8b11",
            "cpr": CPR,
            "scope": "openid sosi-sts profile",
            "given_name": "Nancy Ann",
            "family_name": "Berggren",
            "name": "Nancy Ann Berggren",
            "acr": "https://data.gov.dk/concept/core/nsis/loa/Substantial",
        })
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    /// A token signed by the library.
    fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let header = Header { kid: kid.map(str::to_owned), ..Header::new(alg) };
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn rs256(claims: &Value) -> String {
        sign(Algorithm::RS256, Some("rsa-1"), &keys().rsa.signing, claims)
    }

    /// A token assembled by hand: header JSON, claims JSON, signature bytes.
    fn raw(header: &str, claims: &str, signature: &[u8]) -> String {
        format!("{}.{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()), b64(signature))
    }

    fn verify(token: &str) -> Result<VerifiedJwt, JwtError> {
        issuers().verify(token, AUD, now())
    }

    #[track_caller]
    fn refused(token: &str) -> JwtError {
        let err = verify(token).expect_err("the token must be refused");
        let text = err.to_string();
        // A faultstring never carries the token or a signature.
        assert!(token.len() < 8 || !text.contains(token), "{text}");
        if let Some(signature) = token.rsplit('.').next().filter(|s| s.len() > 16) {
            assert!(!text.contains(signature), "{text}");
        }
        err
    }

    #[test]
    fn accepts_rs256_ps256_es256_from_a_jwks_with_several_keys() {
        let k = keys();
        for (alg, kid, key) in [
            (Algorithm::RS256, "rsa-1", &k.rsa.signing),
            (Algorithm::PS256, "rsa-1", &k.rsa.signing),
            (Algorithm::RS256, "rsa-rs256", &k.rsa_rs256.signing),
            (Algorithm::ES256, "ec-1", &k.ec.signing),
        ] {
            let v = verify(&sign(alg, Some(kid), key, &claims())).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(v.issuer, ISSUER);
            assert_eq!(v.cpr, CPR);
            assert_eq!(v.audiences, [AUD]);
            assert_eq!(v.expires, Timestamp::from_second(NOW_SECS + 3600).unwrap());
            assert_eq!(v.issued_at, Some(Timestamp::from_second(NOW_SECS - 10).unwrap()));
            assert_eq!(v.not_before, None, "nbf 0 means none");
            assert_eq!(v.scope, ["openid", "sosi-sts", "profile"]);
            assert_eq!(v.id.as_deref(), Some("b0f1c4a2-0d5e-4c1f-9d55-3f0c2a9e8b11"));
            assert_eq!(v.given_name.as_deref(), Some("Nancy Ann"));
            assert_eq!(v.family_name.as_deref(), Some("Berggren"));
            assert_eq!(v.name.as_deref(), Some("Nancy Ann Berggren"));
            assert!(v.subject.unwrap().starts_with("urn:dk:healthcare:eid:uuid:global:person:"));
        }
    }

    #[test]
    fn accepts_keys_from_certificates() {
        let k = keys();
        let v = verify(&sign(Algorithm::RS256, Some("cert-rsa"), &k.cert_rsa.signing, &claims())).unwrap();
        assert_eq!(v.cpr, CPR);
        verify(&sign(Algorithm::PS384, Some("cert-rsa"), &k.cert_rsa.signing, &claims()))
            .expect_err("PS384 is not among the default algorithms");
        verify(&sign(Algorithm::ES256, Some("cert-ec"), &k.cert_ec.signing, &claims())).unwrap();
        // The certificate's key is the one that counts: another key under its kid fails.
        let err = refused(&sign(Algorithm::ES256, Some("cert-ec"), &k.ec.signing, &claims()));
        assert!(matches!(err, JwtError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn alg_none_is_refused_with_or_without_a_signature() {
        let claims = claims().to_string();
        for alg in ["none", "None", "NONE"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"rsa-1"}}"#);
            let unsigned = format!("{}.{}.", b64(header.as_bytes()), b64(claims.as_bytes()));
            let err = refused(&unsigned);
            assert!(matches!(err, JwtError::AlgorithmNone { .. }), "{err}");
            let err = refused(&raw(&header, &claims, b"not a signature at all"));
            assert!(matches!(err, JwtError::AlgorithmNone { .. }), "{err}");
        }
        // Without the trailing dot it is not a JWS at all.
        let two = format!("{}.{}", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes()));
        assert!(matches!(refused(&two), JwtError::NotCompact { parts: 2 }));
    }

    #[test]
    fn hs256_keyed_with_the_issuers_public_key_is_refused() {
        let rsa = &keys().rsa;
        let pem = rsa.spki_pem();
        let secrets: [(&str, &[u8]); 4] = [
            ("PEM", pem.as_bytes()),
            ("SPKI DER", &rsa.spki),
            ("PKCS#1 DER", &rsa.pkcs1_public()),
            ("JWK n", &rsa.n),
        ];
        for (what, secret) in secrets {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let token = sign(alg, Some("rsa-1"), &EncodingKey::from_secret(secret), &claims());
                let err = refused(&token);
                assert!(matches!(err, JwtError::AlgorithmHmac { .. }), "{what} {alg:?}: {err}");
                assert!(err.to_string().contains("HMAC"), "{err}");
            }
        }
        // Lower case is no way round it either.
        let lower = raw(r#"{"alg":"hs256","kid":"rsa-1"}"#, &claims().to_string(), &[1; 32]);
        assert!(matches!(refused(&lower), JwtError::AlgorithmHmac { .. }));
    }

    #[test]
    fn kid_is_required_and_must_name_a_key_of_the_issuer() {
        let k = keys();
        let err = refused(&sign(Algorithm::RS256, None, &k.rsa.signing, &claims()));
        assert!(matches!(&err, JwtError::MissingKid { issuer } if issuer == ISSUER), "{err}");
        let err = refused(&sign(Algorithm::RS256, Some("rsa-2"), &k.rsa.signing, &claims()));
        assert!(matches!(&err, JwtError::UnknownKid { kid, .. } if kid == "rsa-2"), "{err}");
        assert_eq!(
            err.to_string(),
            format!("the JWT names kid \"rsa-2\", which issuer {ISSUER} has no key for")
        );
        // The encryption key of the JWKS is no signature key.
        let err = refused(&sign(Algorithm::RS256, Some("enc-1"), &k.stranger.signing, &claims()));
        assert!(matches!(err, JwtError::UnknownKid { .. }), "{err}");
        // A kid naming another issuer's key selects nothing for this issuer.
        let err = refused(&sign(Algorithm::RS256, Some("kid-of-nobody"), &k.rsa.signing, &claims()));
        assert!(matches!(err, JwtError::UnknownKid { .. }), "{err}");
        let long = "k".repeat(5000);
        let err = refused(&sign(Algorithm::RS256, Some(&long), &k.rsa.signing, &claims()));
        assert!(err.to_string().len() < 200, "a long kid is cut: {err}");
        let err = refused(&raw(r#"{"alg":"RS256","kid":7}"#, &claims().to_string(), &[1; 256]));
        assert!(matches!(err, JwtError::MalformedHeader { .. }), "{err}");
    }

    #[test]
    fn wrong_and_unknown_issuers_are_refused() {
        let k = keys();
        // Signed with this issuer's key but naming the other issuer: its "rsa-1" is another key.
        let token = rs256(&with(claims(), "iss", json!(OTHER)));
        let err = refused(&token);
        assert!(matches!(&err, JwtError::BadSignature { issuer, .. } if issuer == OTHER), "{err}");
        // And the other issuer's own tokens verify with its key only.
        let theirs =
            sign(Algorithm::RS256, Some("rsa-1"), &k.stranger.signing, &with(claims(), "iss", json!(OTHER)));
        assert_eq!(verify(&theirs).unwrap().issuer, OTHER);
        let err = refused(&sign(Algorithm::RS256, Some("rsa-1"), &k.stranger.signing, &claims()));
        assert!(matches!(err, JwtError::BadSignature { .. }), "{err}");

        let err = refused(&rs256(&with(claims(), "iss", json!("https://evil.example/realms/citizens"))));
        assert!(matches!(&err, JwtError::UnknownIssuer { issuer } if issuer.contains("evil")), "{err}");
        // Exact match only: a trailing slash is another issuer.
        let err = refused(&rs256(&with(claims(), "iss", json!(format!("{ISSUER}/")))));
        assert!(matches!(err, JwtError::UnknownIssuer { .. }), "{err}");
        let err = refused(&rs256(&without(claims(), "iss")));
        assert!(matches!(err, JwtError::MissingIssuer), "{err}");
        let err = refused(&rs256(&with(claims(), "iss", json!([ISSUER]))));
        assert!(matches!(err, JwtError::MissingIssuer), "{err}");
    }

    #[test]
    fn verified_claims_must_name_the_issuer_whose_key_verified_them() {
        // Unreachable through verify() while both readers agree on iss (duplicates are
        // refused); the check stays for the day they do not.
        let issuers = issuers();
        let issuer = &issuers.by_issuer[ISSUER];
        let other = with(claims(), "iss", json!(OTHER));
        let err = issuer.check_claims(other.as_object().unwrap(), AUD, now()).unwrap_err();
        assert!(matches!(&err, JwtError::IssuerMismatch { found, .. } if found == OTHER), "{err}");
        assert!(issuer.check_claims(claims().as_object().unwrap(), AUD, now()).is_ok());
    }

    #[test]
    fn audience_must_name_applies_to_or_a_configured_audience() {
        let err = refused(&rs256(&with(claims(), "aud", json!("https://other-service"))));
        assert!(matches!(err, JwtError::WrongAudience { .. }), "{err}");
        assert!(err.to_string().contains(AUD), "{err}");
        let err = refused(&rs256(&without(claims(), "aud")));
        assert!(matches!(err, JwtError::MissingAudience { .. }), "{err}");
        let err = refused(&rs256(&with(claims(), "aud", json!([]))));
        assert!(matches!(err, JwtError::MissingAudience { .. }), "{err}");
        let err = refused(&rs256(&with(claims(), "aud", json!(42))));
        assert!(matches!(err, JwtError::MalformedClaim { claim: "aud", .. }), "{err}");
        let v = verify(&rs256(&with(claims(), "aud", json!(["fmk_mock", AUD])))).unwrap();
        assert_eq!(v.audiences, ["fmk_mock", AUD]);
        // The same token for another AppliesTo is refused.
        let token = rs256(&claims());
        assert!(matches!(
            issuers().verify(&token, "https://audience.nspop.dk/dds", now()),
            Err(JwtError::WrongAudience { .. })
        ));

        // Configured audiences replace AppliesTo.
        let configured = issuers_with("audiences = [\"fmk_mock\"]");
        assert!(matches!(configured.verify(&token, AUD, now()), Err(JwtError::WrongAudience { .. })));
        let mock = rs256(&with(claims(), "aud", json!("fmk_mock")));
        assert!(configured.verify(&mock, "https://anything", now()).is_ok());
    }

    #[test]
    fn expiry_is_required_and_checked_with_the_clock_skew() {
        let err = refused(&rs256(&with(claims(), "exp", json!(NOW_SECS - 61))));
        assert!(matches!(err, JwtError::Expired { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("expired"), "{text}");
        assert!(text.starts_with("the JWT expired at 2026-05-28T20:25:39Z"), "{text}");
        // Inside the default 60 s of skew it is still good; at exp + skew it is not.
        assert!(verify(&rs256(&with(claims(), "exp", json!(NOW_SECS - 30)))).is_ok());
        assert!(verify(&rs256(&with(claims(), "exp", json!(NOW_SECS - 59)))).is_ok());
        assert!(matches!(
            refused(&rs256(&with(claims(), "exp", json!(NOW_SECS - 60)))),
            JwtError::Expired { .. }
        ));
        let strict = issuers_with("clock_skew_secs = 0");
        let token = rs256(&with(claims(), "exp", json!(NOW_SECS)));
        assert!(matches!(strict.verify(&token, AUD, now()), Err(JwtError::Expired { .. })));

        assert!(matches!(refused(&rs256(&without(claims(), "exp"))), JwtError::MissingExpiry));
        let err = refused(&rs256(&with(claims(), "exp", json!("tomorrow"))));
        assert!(matches!(err, JwtError::MalformedClaim { claim: "exp", .. }), "{err}");
        let err = refused(&rs256(&with(claims(), "exp", json!(1e300))));
        assert!(matches!(err, JwtError::MalformedClaim { claim: "exp", .. }), "{err}");
        // A fractional NumericDate is allowed.
        assert!(verify(&rs256(&with(claims(), "exp", json!(NOW_SECS as f64 + 10.5)))).is_ok());
    }

    #[test]
    fn not_before_and_issued_at_may_not_lie_in_the_future() {
        let err = refused(&rs256(&with(claims(), "nbf", json!(NOW_SECS + 120))));
        assert!(matches!(err, JwtError::NotYetValid { .. }), "{err}");
        assert!(err.to_string().contains("not valid before"), "{err}");
        let v = verify(&rs256(&with(claims(), "nbf", json!(NOW_SECS + 60)))).unwrap();
        assert_eq!(v.not_before, Some(Timestamp::from_second(NOW_SECS + 60).unwrap()));

        let err = refused(&rs256(&with(claims(), "iat", json!(NOW_SECS + 120))));
        assert!(matches!(err, JwtError::IssuedInFuture { .. }), "{err}");
        assert!(verify(&rs256(&with(claims(), "iat", json!(NOW_SECS + 60)))).is_ok());
        assert!(verify(&rs256(&without(claims(), "iat"))).is_ok());
    }

    #[test]
    fn cpr_is_required_and_ten_digits() {
        assert!(matches!(refused(&rs256(&without(claims(), "cpr"))), JwtError::MissingCpr));
        for bad in [
            json!("251248491"),
            json!("25124849160"),
            json!("251248-4916"),
            json!("25124849l6"),
            json!(2512484916u64),
        ] {
            let err = refused(&rs256(&with(claims(), "cpr", bad.clone())));
            assert!(matches!(err, JwtError::MalformedCpr), "{bad}: {err}");
            // The text does not repeat the (personal) value.
            assert!(!err.to_string().contains("2512484"), "{err}");
        }
        // Fullwidth digits are no ASCII digits.
        let err = refused(&rs256(&with(claims(), "cpr", json!("２５１２４８４９１６"))));
        assert!(matches!(err, JwtError::MalformedCpr), "{err}");
    }

    #[test]
    fn scope_must_include_the_required_scope() {
        let err = refused(&rs256(&with(claims(), "scope", json!("openid profile"))));
        assert!(matches!(&err, JwtError::ScopeLacks { required } if required == "sosi-sts"), "{err}");
        // A scope is a word, not a substring.
        let err = refused(&rs256(&with(claims(), "scope", json!("openid sosi-sts-extra"))));
        assert!(matches!(err, JwtError::ScopeLacks { .. }), "{err}");
        assert!(matches!(refused(&rs256(&without(claims(), "scope"))), JwtError::MissingScope { .. }));
        let v = verify(&rs256(&with(claims(), "scope", json!(["openid", "sosi-sts"])))).unwrap();
        assert_eq!(v.scope, ["openid", "sosi-sts"]);
        let err = refused(&rs256(&with(claims(), "scope", json!(7))));
        assert!(matches!(err, JwtError::MalformedClaim { claim: "scope", .. }), "{err}");

        let none_required = issuers_with("required_scope = \"\"");
        let v = none_required.verify(&rs256(&without(claims(), "scope")), AUD, now()).unwrap();
        assert!(v.scope.is_empty());
        let fmk = issuers_with("required_scope = \"fmk\"");
        assert!(matches!(fmk.verify(&rs256(&claims()), AUD, now()), Err(JwtError::ScopeLacks { .. })));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let token = rs256(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();

        let forged = with(claims(), "cpr", json!("0101010101"));
        let payload = b64(forged.to_string().as_bytes());
        let err = refused(&format!("{}.{payload}.{}", parts[0], parts[2]));
        assert!(matches!(err, JwtError::BadSignature { .. }), "{err}");

        let header = b64(br#"{"alg":"RS256","typ":"JWT","kid":"rsa-1","x":"y"}"#);
        let err = refused(&format!("{header}.{}.{}", parts[1], parts[2]));
        assert!(matches!(err, JwtError::BadSignature { .. }), "{err}");

        // One bit of the signature.
        let mut signature = B64URL.decode(&parts[2]).unwrap();
        signature[17] ^= 1;
        parts[2] = b64(&signature);
        let err = refused(&parts.join("."));
        assert!(matches!(err, JwtError::BadSignature { .. }), "{err}");

        // The untouched token still verifies.
        assert!(verify(&token).is_ok());
    }

    #[test]
    fn size_is_checked_before_any_decoding() {
        // Garbage that every later check would refuse differently: only the size is read.
        let huge = "\u{0}%not-a-jwt".repeat(1_000_000);
        let err = refused(&huge);
        assert_eq!(err, JwtError::TooLarge { size: huge.len(), limit: 8192 });
        let dots = ".".repeat(8193);
        assert!(matches!(refused(&dots), JwtError::TooLarge { .. }));

        // The largest limit of any issuer first, then the issuer's own.
        let small = issuers_with("max_token_bytes = 1024");
        let padded = with(claims(), "padding", json!("p".repeat(1500)));
        let token = rs256(&padded);
        assert!(matches!(small.verify(&token, AUD, now()), Err(JwtError::TooLarge { limit: 1024, .. })));
        assert!(verify(&token).is_ok());
    }

    #[test]
    fn a_trusted_kid_on_an_untrusted_key_is_refused() {
        let k = keys();
        for kid in ["rsa-1", "rsa-rs256", "cert-rsa"] {
            let err = refused(&sign(Algorithm::RS256, Some(kid), &k.stranger.signing, &claims()));
            assert!(matches!(&err, JwtError::BadSignature { kid: named, .. } if named == kid), "{err}");
        }
        let err = refused(&sign(Algorithm::ES256, Some("ec-1"), &k.cert_ec.signing, &claims()));
        assert!(matches!(err, JwtError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn the_algorithm_must_fit_the_key_and_the_issuer() {
        let k = keys();
        // ES256 named on an RSA key: refused before the signature is looked at.
        let err = refused(&sign(Algorithm::ES256, Some("rsa-1"), &k.ec.signing, &claims()));
        assert!(matches!(err, JwtError::AlgorithmKeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("RSA key"), "{err}");
        let err = refused(&sign(Algorithm::RS256, Some("ec-1"), &k.rsa.signing, &claims()));
        assert!(matches!(err, JwtError::AlgorithmKeyMismatch { .. }), "{err}");
        // A JWK declared for RS256 is not used for PS256.
        let err = refused(&sign(Algorithm::PS256, Some("rsa-rs256"), &k.rsa_rs256.signing, &claims()));
        assert!(matches!(err, JwtError::AlgorithmKeyMismatch { .. }), "{err}");

        // Not in the issuer's allow-list, with the right key.
        let only_rs256 = issuers_with("algorithms = [\"RS256\"]");
        let token = sign(Algorithm::PS256, Some("rsa-1"), &k.rsa.signing, &claims());
        assert!(verify(&token).is_ok());
        let err = only_rs256.verify(&token, AUD, now()).unwrap_err();
        assert!(matches!(&err, JwtError::AlgorithmNotAllowed { alg, .. } if alg == "PS256"), "{err}");
        assert!(err.to_string().contains("accepted: RS256"), "{err}");
        let err = refused(&raw(r#"{"alg":"RS1","kid":"rsa-1"}"#, &claims().to_string(), &[1; 256]));
        assert!(matches!(err, JwtError::UnknownAlgorithm { .. }), "{err}");
        let err = refused(&raw(r#"{"kid":"rsa-1"}"#, &claims().to_string(), &[1; 256]));
        assert!(matches!(err, JwtError::MissingAlgorithm), "{err}");
    }

    #[test]
    fn only_the_compact_jws_shape_is_read() {
        let token = rs256(&claims());
        let jwe =
            format!("{}.{}.{}.{}.{}", b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#), "a", "b", "c", "d");
        assert!(matches!(refused(&jwe), JwtError::Encrypted));
        assert!(matches!(refused(&format!("{token}.x")), JwtError::NotCompact { parts: 4 }));
        assert!(matches!(refused(""), JwtError::NotCompact { parts: 1 }));
        assert!(matches!(refused("garbage"), JwtError::NotCompact { parts: 1 }));
        assert!(matches!(refused(".."), JwtError::EmptyPart { part: "header" }));
        let header = token.split('.').next().unwrap();
        assert!(matches!(refused(&format!("{header}..sig")), JwtError::EmptyPart { part: "payload" }));
        assert!(matches!(refused("a$b.c.d"), JwtError::NotBase64url { part: "header" }));
        assert!(matches!(refused("ab+/.cd.ef"), JwtError::NotBase64url { part: "header" }));
        // Padding, and a length no base64 has.
        let padded = token.replacen('.', "==.", 1);
        assert!(matches!(refused(&padded), JwtError::NotBase64url { part: "header" }));
        let odd = format!("{token}AAA");
        assert!(matches!(refused(&odd), JwtError::NotBase64url { part: "signature" }));
        assert!(matches!(refused("e30.e30.%%%"), JwtError::NotBase64url { part: "signature" }));
        assert!(matches!(refused(&format!("{token} x")), JwtError::NotBase64url { .. }));
        // Line breaks around the token (pretty-printed XML) are not part of it.
        assert!(verify(&format!("\n    {token}\n  ")).is_ok());
    }

    #[test]
    fn headers_and_claims_must_be_unambiguous_json_objects() {
        let c = claims().to_string();
        let err = refused(&raw("[1,2]", &c, &[1; 8]));
        assert!(
            matches!(&err, JwtError::MalformedHeader { reason } if reason == "not a JSON object"),
            "{err}"
        );
        let err = refused(&raw(r#"{"alg":"RS256","kid":"rsa-1""#, &c, &[1; 8]));
        assert!(matches!(err, JwtError::MalformedHeader { .. }), "{err}");
        let err = refused(&raw(r#"{"alg":"RS256","kid":"rsa-1","alg":"none"}"#, &c, &[1; 8]));
        assert!(matches!(&err, JwtError::MalformedHeader { reason } if reason.contains("twice")), "{err}");
        let err = refused(&raw(r#"{"alg":"RS256","kid":"rsa-1","crit":["exp"]}"#, &c, &[1; 8]));
        assert!(matches!(err, JwtError::CriticalHeader), "{err}");
        // A header the library cannot read (a non-string extension parameter).
        let err = refused(&raw(r#"{"alg":"RS256","kid":"rsa-1","ext":5}"#, &c, &[1; 256]));
        assert!(
            matches!(&err, JwtError::MalformedHeader { reason } if reason.contains("extension")),
            "{err}"
        );

        let h = r#"{"alg":"RS256","kid":"rsa-1"}"#;
        let err = refused(&raw(h, "\"just a string\"", &[1; 8]));
        assert!(matches!(err, JwtError::MalformedClaims { .. }), "{err}");
        assert!(!err.to_string().contains("just a string"), "{err}");
        let twice = format!(r#"{{"iss":"{OTHER}","iss":"{ISSUER}"}}"#);
        let err = refused(&raw(h, &twice, &[1; 8]));
        assert!(matches!(err, JwtError::MalformedClaims { .. }), "{err}");
        let deep = format!("{}{}", "[".repeat(10_00), "]".repeat(10_00));
        let err = refused(&raw(h, &format!(r#"{{"iss":"{ISSUER}","x":{deep}}}"#), &[1; 8]));
        assert!(matches!(err, JwtError::MalformedClaims { .. }), "{err}");
        let err = refused(&format!("{}.{}.{}", b64(h.as_bytes()), b64(&[0xff, 0xfe, b'{']), b64(&[1; 8])));
        assert!(matches!(err, JwtError::MalformedClaims { .. }), "{err}");
    }

    #[test]
    fn verified_tokens_carry_the_issuers_whitelist() {
        let v = verify(&rs256(&claims())).unwrap();
        let mut client = crate::trust::SignerCertificate {
            der: Vec::new(),
            subject_dn: "CN=Testby Journal, O=Testby, C=DK".into(),
            issuer_dn: "CN=CA".into(),
            serial_decimal: "1".into(),
            subject_serial_number: Some("CVR:20921897-UID:11223344".into()),
            kind: crate::trust::CertificateKind::Organisation,
            organisation_cvr: Some("20921897".into()),
            chain_not_after: now(),
        };
        assert!(v.whitelists(&client));
        client.subject_serial_number = Some("CVR:20921897-UID:99999999".into());
        assert!(!v.whitelists(&client));
        let empty = issuers_with("");
        assert!(!empty.verify(&rs256(&claims()), AUD, now()).unwrap().whitelists(&client));
    }

    #[test]
    fn no_issuers_refuse_everything() {
        let none = JwtIssuers::from_config(&[]).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.verify(&rs256(&claims()), AUD, now()).unwrap_err(), JwtError::NoIssuers);
        assert!(!issuers().is_empty());
    }

    #[test]
    fn configuration_refuses_unsafe_algorithms_and_names_missing_files() {
        for (alg, expect) in [
            ("none", "AlgorithmNone"),
            ("HS256", "AlgorithmHmac"),
            ("hs512", "AlgorithmHmac"),
            ("RS1", "UnknownAlgorithm"),
        ] {
            let cfg = config(ISSUER, "issuer.jwks.json", &format!("algorithms = [\"RS256\", {alg:?}]"));
            let err = cfg.validate().unwrap_err();
            assert!(format!("{err:?}").starts_with(expect), "{alg}: {err:?}");
            assert!(err.to_string().contains(alg), "{err}");
            assert!(matches!(JwtIssuers::from_config(&[cfg]), Err(JwtConfigError::Invalid(_))));
        }
        let cfg = config(ISSUER, "issuer.jwks.json", "algorithms = []");
        assert!(matches!(cfg.validate(), Err(JwtIssuerConfigError::NoAlgorithms { .. })));
        for extra in ["clock_skew_secs = 86401", "max_token_bytes = 0", "audiences = [\"\"]"] {
            assert!(config(ISSUER, "issuer.jwks.json", extra).validate().is_err(), "{extra}");
        }
        let twice = config(ISSUER, "issuer.jwks.json", "");
        assert!(matches!(
            JwtIssuers::from_config(&[twice.clone(), twice]),
            Err(JwtConfigError::DuplicateIssuer { .. })
        ));

        let err = JwtIssuers::from_config(&[config(ISSUER, "absent.jwks.json", "")]).unwrap_err();
        assert!(matches!(err, JwtConfigError::Read { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("absent.jwks.json") && text.contains(ISSUER), "{text}");
        let mut cfg = config(ISSUER, "issuer.jwks.json", "");
        cfg.key[0].certificate = files().join("absent-cert.pem");
        let err = JwtIssuers::from_config(&[cfg]).unwrap_err();
        assert!(matches!(err, JwtConfigError::Read { .. }), "{err}");
        assert!(err.to_string().contains("absent-cert.pem"), "{err}");

        // The [idws] section runs the same checks.
        let idws: crate::config::IdwsConfig = toml::from_str(
            "[[jwt_issuer]]\nissuer = \"https://x\"\njwks = [\"x.json\"]\nalgorithms = [\"HS256\"]\n",
        )
        .unwrap();
        assert!(idws.validate().unwrap_err().contains("HS256"));
    }

    #[test]
    fn jwks_files_are_checked_key_by_key() {
        let dir = files();
        let load = |name: &str, jwks: Value| {
            std::fs::write(dir.join(name), jwks.to_string()).unwrap();
            JwtIssuers::from_config(&[config(ISSUER, name, "")])
        };
        let k = keys();
        let err =
            load("oct.json", json!({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]})).unwrap_err();
        assert!(matches!(err, JwtConfigError::UnusableKey { .. }), "{err}");
        assert!(err.to_string().contains("oct.json") && err.to_string().contains("HMAC"), "{err}");
        let small = json!({"keys": [{"kty": "RSA", "kid": "small", "n": b64(&[0xc1; 128]), "e": "AQAB"}]});
        let err = load("small.json", small).unwrap_err();
        assert!(err.to_string().contains("1024 bits"), "{err}");
        let mut off_curve = k.ec.jwk("bad");
        off_curve["y"] = json!(b64(&[7; 32]));
        let err = load("curve.json", json!({"keys": [off_curve]})).unwrap_err();
        assert!(err.to_string().contains("not on the curve"), "{err}");
        let mut rsa_as_es = k.rsa.jwk("x");
        rsa_as_es["alg"] = json!("ES256");
        assert!(matches!(
            load("alg.json", json!({"keys": [rsa_as_es]})),
            Err(JwtConfigError::UnusableKey { .. })
        ));
        let no_kid = json!({"keys": [{"kty": "RSA", "n": b64(&k.rsa.n), "e": b64(&k.rsa.e)}]});
        assert!(matches!(load("nokid.json", no_kid), Err(JwtConfigError::MissingKid { index: 0, .. })));
        let dup = json!({"keys": [k.rsa.jwk("cert-rsa")]});
        assert!(matches!(load("dup.json", dup), Err(JwtConfigError::DuplicateKid { .. })));
        let mut enc = k.rsa.jwk("e");
        enc["use"] = json!("enc");
        assert!(matches!(
            load("enc.json", json!({"keys": [enc]})),
            Err(JwtConfigError::NoSignatureKey { .. })
        ));
        assert!(matches!(load("notjwks.json", json!([1])), Err(JwtConfigError::NotJwks { .. })));
        std::fs::write(dir.join("garbage.json"), "{ not json").unwrap();
        assert!(matches!(
            JwtIssuers::from_config(&[config(ISSUER, "garbage.json", "")]),
            Err(JwtConfigError::NotJwks { .. })
        ));
        // Key material never appears in an error.
        let err = load(
            "small2.json",
            json!({"keys": [{"kty": "RSA", "kid": "s", "n": b64(&[0xc1; 128]), "e": "AQAB"}]}),
        )
        .unwrap_err();
        assert!(!err.to_string().contains(&b64(&[0xc1; 16])), "{err}");
    }
}
