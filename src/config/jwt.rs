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

/// The algorithm names an issuer may be configured with: the public-key JWS algorithms
/// (RFC 7518 §3.3–3.5, RFC 8037) the JOSE library verifies. `none` and the HMAC family are
/// absent on purpose: an HMAC "verification" key is the signing secret, and a public key read
/// as an HMAC secret is the classic algorithm-confusion forgery.
pub const SUPPORTED_ALGORITHMS: [&str; 9] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/// The largest clock skew an issuer may be given (a day): beyond it `exp` means little.
pub const MAX_CLOCK_SKEW_SECS: u64 = 24 * 3600;

/// The bounds of `max_token_bytes`: no JWS with a signature fits in fewer than 128 bytes, and
/// a token is one element of a request body (1 MiB at most by default).
pub const TOKEN_BYTES_RANGE: std::ops::RangeInclusive<usize> = 128..=1024 * 1024;

/// Why a `[[idws.jwt_issuer]]` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtIssuerConfigError {
    /// `issuer` is empty.
    #[error("a jwt_issuer needs its issuer (the iss its tokens carry)")]
    EmptyIssuer,
    /// Neither a JWKS file nor a certificate.
    #[error("jwt_issuer {issuer:?} needs a jwks file or a key")]
    NoKeys { issuer: String },
    /// `algorithms` is empty.
    #[error(
        "jwt_issuer {issuer:?}: algorithms is empty; name at least one of {}",
        SUPPORTED_ALGORITHMS.join(", ")
    )]
    NoAlgorithms { issuer: String },
    /// `none` among the algorithms.
    #[error("jwt_issuer {issuer:?}: algorithm {alg:?} is refused: unsigned tokens prove nothing")]
    AlgorithmNone { issuer: String, alg: String },
    /// An HMAC algorithm among the algorithms.
    #[error(
        "jwt_issuer {issuer:?}: algorithm {alg:?} is refused: HMAC needs the issuer's secret, and \
         segl verifies issuers' public keys only"
    )]
    AlgorithmHmac { issuer: String, alg: String },
    /// An algorithm name that is not a supported JWS algorithm.
    #[error(
        "jwt_issuer {issuer:?}: unknown algorithm {alg:?}; supported: {}",
        SUPPORTED_ALGORITHMS.join(", ")
    )]
    UnknownAlgorithm { issuer: String, alg: String },
    /// A `[[key]]` with an empty `kid`.
    #[error("jwt_issuer {issuer:?}: a key needs its kid")]
    EmptyKid { issuer: String },
    /// Two `[[key]]` entries with one `kid`.
    #[error("jwt_issuer {issuer:?}: kid {kid:?} is configured twice")]
    DuplicateKid { issuer: String, kid: String },
    /// An empty string among the audiences.
    #[error("jwt_issuer {issuer:?}: audiences holds an empty string")]
    EmptyAudience { issuer: String },
    /// `clock_skew_secs` beyond [`MAX_CLOCK_SKEW_SECS`].
    #[error("jwt_issuer {issuer:?}: clock_skew_secs {secs} is more than {MAX_CLOCK_SKEW_SECS}")]
    ClockSkew { issuer: String, secs: u64 },
    /// `max_token_bytes` outside [`TOKEN_BYTES_RANGE`].
    #[error(
        "jwt_issuer {issuer:?}: max_token_bytes {bytes} is outside {}..={}",
        TOKEN_BYTES_RANGE.start(),
        TOKEN_BYTES_RANGE.end()
    )]
    MaxTokenBytes { issuer: String, bytes: usize },
}

impl JwtIssuerConfig {
    /// Checks what the configuration alone can tell (the key files are read by
    /// `trust::jwt::JwtIssuers::from_config`).
    pub fn validate(&self) -> Result<(), JwtIssuerConfigError> {
        use JwtIssuerConfigError as E;
        let issuer = || self.issuer.clone();
        if self.issuer.is_empty() {
            return Err(E::EmptyIssuer);
        }
        if self.jwks.is_empty() && self.key.is_empty() {
            return Err(E::NoKeys { issuer: issuer() });
        }
        if self.algorithms.is_empty() {
            return Err(E::NoAlgorithms { issuer: issuer() });
        }
        for alg in &self.algorithms {
            // Case-insensitive, as the verifier refuses these: "None" or "hs256" is no typo to
            // be forgiven but the same mistake.
            if alg.eq_ignore_ascii_case("none") {
                return Err(E::AlgorithmNone { issuer: issuer(), alg: alg.clone() });
            }
            if alg.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("HS")) {
                return Err(E::AlgorithmHmac { issuer: issuer(), alg: alg.clone() });
            }
            if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
                return Err(E::UnknownAlgorithm { issuer: issuer(), alg: alg.clone() });
            }
        }
        let mut kids = std::collections::BTreeSet::new();
        for key in &self.key {
            if key.kid.is_empty() {
                return Err(E::EmptyKid { issuer: issuer() });
            }
            if !kids.insert(key.kid.as_str()) {
                return Err(E::DuplicateKid { issuer: issuer(), kid: key.kid.clone() });
            }
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(E::EmptyAudience { issuer: issuer() });
        }
        if self.clock_skew_secs > MAX_CLOCK_SKEW_SECS {
            return Err(E::ClockSkew { issuer: issuer(), secs: self.clock_skew_secs });
        }
        if !TOKEN_BYTES_RANGE.contains(&self.max_token_bytes) {
            return Err(E::MaxTokenBytes { issuer: issuer(), bytes: self.max_token_bytes });
        }
        Ok(())
    }

    /// Resolves the key files' relative paths with `fix` (against the configuration's
    /// directory, as every other path).
    pub fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        self.jwks.iter_mut().for_each(&fix);
        self.key.iter_mut().for_each(|k| fix(&mut k.certificate));
    }
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
