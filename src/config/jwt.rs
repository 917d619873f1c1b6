//! The JWT issuers the citizen exchanges trust (JWT2Idws, JWT2OIOSaml; JTP-H, addendum §2
//! OQ8): NSP sets each new issuer up in the STS, and no source mentions JWKS discovery, so an
//! issuer's keys are operator-configured files (a JWKS, or certificates named by `kid`).

use std::path::PathBuf;

use serde::Deserialize;

use super::WhitelistEntry;

/// One trusted JWT issuer (`[[idws.jwt_issuer]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerConfig {
    /// The `iss` its tokens carry, matched exactly.
    pub issuer: String,
    /// JWKS files (RFC 7517) with the issuer's public keys; a token's `kid` selects one.
    #[serde(default)]
    pub jwks: Vec<PathBuf>,
    /// Certificates with the issuer's public keys, each under the `kid` tokens name it by.
    #[serde(default)]
    pub key: Vec<JwtKeyConfig>,
    /// The algorithms accepted from this issuer (never `none`, never HMAC).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The `aud` values accepted; empty: the token's `aud` must name the requested audience
    /// (the request's AppliesTo), as JTP-H tokens do.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Tolerance on `exp`, `nbf` and `iat`.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
    /// A scope the token's `scope` must contain; empty: none is required.
    #[serde(default = "default_scope")]
    pub required_scope: String,
    /// The largest token accepted, checked before any decoding.
    #[serde(default = "default_max_bytes")]
    pub max_token_bytes: usize,
    /// The client certificates allowed to present this issuer's tokens (when
    /// `idws.whitelist_validation`).
    #[serde(default)]
    pub clients: Vec<WhitelistEntry>,
}

/// A certificate holding one of an issuer's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// The `kid` tokens signed with this key name.
    pub kid: String,
    /// PEM certificate.
    pub certificate: PathBuf,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "PS256".into(), "ES256".into()]
}
fn default_skew() -> u64 {
    60
}
fn default_scope() -> String {
    "sosi-sts".into()
}
fn default_max_bytes() -> usize {
    8 * 1024
}
