//! JWT verification (`segl::trust::jwt::JwtIssuers::verify`, the JWT2Idws / JWT2OIOSaml
//! check): a typed answer, never a panic; an accepted token is signed by a configured key
//! (checked again here with aws-lc-rs directly, not through the JOSE library) and carries what
//! the issuer requires; a refusal's text is short (it never echoes the token).
//!
//! The issuers' keys are throwaway keys generated at run time into `$TMPDIR/segl-fuzz-jwt/`
//! (nothing secret is in the repository) and reused by later runs, so that seed tokens written
//! by one run still carry good signatures in the next. The first input byte picks the mode:
//! - 1: `header JSON 0x00 payload JSON 0x00 signature bytes`, base64url-encoded and joined
//!   (fuzzed JSON in well-formed segments);
//! - 2: `header JSON 0x00 payload JSON`, validly signed over the fuzzed segments with the
//!   trusted EC key (so that the claim checks after the signature are reached);
//! - anything else: the whole input, as (lossy) UTF-8 text.
//!
//! Seeds: `SEGL_FUZZ_WRITE_SEEDS=<dir>` writes valid and invalid tokens into `<dir>` and exits
//! (see tests/fuzz/README.md).
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self as sig, KeyPair as _};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use segl::config::jwt::JwtIssuerConfig;
use segl::trust::jwt::JwtIssuers;
use serde_json::{json, Value};

const ISSUER: &str = "https://oidc.fuzz.test/realms/citizens";
/// A second issuer: configured audiences, no required scope, ES256 only, a small size limit.
const ISSUER_B: &str = "https://b.fuzz.test";
const AUD: &str = "https://fmk";
const NOW_SECS: i64 = 1_780_000_000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

struct Fixture {
    issuers: JwtIssuers,
    rsa: EncodingKey,
    rsa_public: (Vec<u8>, Vec<u8>),
    ec: EncodingKey,
    ec_public: Vec<u8>,
    /// A key nobody configured (for seeds signed by a stranger).
    stranger: EncodingKey,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join("segl-fuzz-jwt");
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let rsa_key = || {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("RSA key");
            key.as_der().expect("PKCS#8").as_ref().to_vec()
        };
        let rsa_pkcs8 = stored_key(&dir.join("rsa.pk8"), rsa_key);
        let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(&rsa_pkcs8).expect("RSA key");
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        let ec_pkcs8 = stored_key(&dir.join("ec.pk8"), || {
            let key = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).expect("EC key");
            key.to_pkcs8v1().expect("PKCS#8").as_ref().to_vec()
        });
        let ec = sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &ec_pkcs8).expect("EC key");
        let ec_point = ec.public_key().as_ref().to_vec();
        let stranger_pkcs8 = stored_key(&dir.join("stranger.pk8"), rsa_key);

        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa", "n": B64.encode(&public.n), "e": B64.encode(&public.e)},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": B64.encode(&ec_point[1..33]), "y": B64.encode(&ec_point[33..])},
        ]});
        let jwks_file = dir.join("issuer.jwks.json");
        std::fs::write(&jwks_file, jwks.to_string()).expect("JWKS");
        let config = |issuer: &str, jwks: PathBuf| JwtIssuerConfig {
            issuer: issuer.into(),
            jwks: vec![jwks],
            key: Vec::new(),
            algorithms: vec!["RS256".into(), "PS256".into(), "ES256".into()],
            audiences: Vec::new(),
            clock_skew_secs: 60,
            required_scope: "sosi-sts".into(),
            max_token_bytes: 8192,
            clients: Vec::new(),
        };
        let b = JwtIssuerConfig {
            audiences: vec!["fmk_mock".into()],
            required_scope: String::new(),
            algorithms: vec!["ES256".into()],
            max_token_bytes: 1024,
            ..config(ISSUER_B, jwks_file.clone())
        };
        let issuers = JwtIssuers::from_config(&[config(ISSUER, jwks_file), b]).expect("issuers");
        Fixture {
            issuers,
            rsa: segl::dev::jwt::rsa_signing_key(&rsa_pkcs8).expect("RSA signing key"),
            rsa_public: (public.n, public.e),
            ec: EncodingKey::from_ec_der(&ec_pkcs8),
            ec_public: ec_point,
            stranger: segl::dev::jwt::rsa_signing_key(&stranger_pkcs8).expect("RSA signing key"),
        }
    })
}

/// The throwaway key at `path`, made by `generate` (and stored, owner-only) when absent.
fn stored_key(path: &Path, generate: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    if let Ok(der) = std::fs::read(path) {
        return der;
    }
    let der = generate();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .expect("key file");
    file.write_all(&der).expect("key file");
    der
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(NOW_SECS).expect("a time")
}

/// `header.payload.signature` with the fuzzed segments encoded.
fn assemble(header: &[u8], payload: &[u8], signature: &[u8]) -> String {
    format!("{}.{}.{}", B64.encode(header), B64.encode(payload), B64.encode(signature))
}

/// `header.payload` signed with the trusted EC key, whatever the header says.
fn sign_es256(header: &[u8], payload: &[u8]) -> String {
    let message = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &fixture().ec, Algorithm::ES256)
        .expect("ES256 signing");
    format!("{message}.{signature}")
}

fn split3(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    (parts.next().unwrap_or_default(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
}

/// The invariant of an accepted token: its signature verifies, by aws-lc-rs directly, with the
/// configured key its kid names, under the algorithm its header names; and its claims are what
/// the issuer requires.
fn check_accepted(token: &str, v: &segl::trust::jwt::VerifiedJwt) {
    let f = fixture();
    let token = token.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n'));
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        panic!("accepted a token that is not three parts");
    };
    let header: Value = serde_json::from_slice(&B64.decode(h).expect("header base64")).expect("header JSON");
    let signature = B64.decode(s).expect("signature base64");
    let message = format!("{h}.{p}");
    let alg = header["alg"].as_str().expect("alg");
    let kid = header["kid"].as_str().expect("kid");
    let verified = match (kid, alg) {
        ("rsa", "RS256" | "PS256") => {
            let params = if alg == "RS256" {
                &sig::RSA_PKCS1_2048_8192_SHA256
            } else {
                &sig::RSA_PSS_2048_8192_SHA256
            };
            let (n, e) = &f.rsa_public;
            sig::RsaPublicKeyComponents { n, e }.verify(params, message.as_bytes(), &signature).is_ok()
        }
        ("ec", "ES256") => sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, &f.ec_public)
            .verify(message.as_bytes(), &signature)
            .is_ok(),
        other => panic!("accepted kid/alg {other:?}"),
    };
    assert!(verified, "accepted a token whose signature is not by the configured key");
    assert!(v.cpr.len() == 10 && v.cpr.bytes().all(|b| b.is_ascii_digit()), "cpr {:?}", v.cpr);
    assert!(v.expires.as_second() + 60 > NOW_SECS, "accepted an expired token");
    match v.issuer.as_str() {
        ISSUER => {
            assert!(v.audiences.iter().any(|a| a == AUD));
            assert!(v.scope.iter().any(|s| s == "sosi-sts"));
        }
        ISSUER_B => {
            assert!(v.audiences.iter().any(|a| a == "fmk_mock"));
            assert_eq!(alg, "ES256");
            assert!(token.len() <= 1024);
        }
        other => panic!("accepted issuer {other:?}"),
    }
}

fn run(token: &str) {
    match fixture().issuers.verify(token, AUD, now()) {
        Ok(v) => check_accepted(token, &v),
        Err(e) => {
            let text = e.to_string();
            assert!(text.len() < 1024, "a refusal text of {} bytes", text.len());
        }
    }
}

fn write_seeds(dir: &Path) {
    let f = fixture();
    std::fs::create_dir_all(dir).expect("seed directory");
    let claims = json!({
        "iss": ISSUER, "aud": AUD, "exp": NOW_SECS + 3600, "iat": NOW_SECS - 5, "nbf": 0,
        "sub": "urn:dk:healthcare:eid:uuid:global:person:5d1c9ff4-1d0e-4b3a-9a43-2f1b0c8e7a21",
        "jti": "b0f1c4a2", "cpr": "2512484916", "scope": "openid sosi-sts",
        "given_name": "Nancy Ann", "family_name": "Berggren",
        "acr": "https://data.gov.dk/concept/core/nsis/loa/Substantial",
    });
    let sign = |alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value| {
        let header = Header { kid: Some(kid.into()), ..Header::new(alg) };
        jsonwebtoken::encode(&header, claims, key).expect("signing")
    };
    let with = |name: &str, value: Value| {
        let mut c = claims.clone();
        c[name] = value;
        c
    };
    let b_claims =
        json!({"iss": ISSUER_B, "aud": ["fmk_mock", "x"], "exp": NOW_SECS + 60, "cpr": "0101010101"});
    let header_es = br#"{"alg":"ES256","kid":"ec","typ":"JWT"}"#;
    let mut seeds: Vec<(&str, Vec<u8>)> = vec![
        ("rs256", sign(Algorithm::RS256, "rsa", &f.rsa, &claims).into_bytes()),
        ("ps256", sign(Algorithm::PS256, "rsa", &f.rsa, &claims).into_bytes()),
        ("es256", sign(Algorithm::ES256, "ec", &f.ec, &claims).into_bytes()),
        ("issuer-b", sign(Algorithm::ES256, "ec", &f.ec, &b_claims).into_bytes()),
        ("expired", sign(Algorithm::RS256, "rsa", &f.rsa, &with("exp", json!(NOW_SECS - 3600))).into_bytes()),
        ("wrong-aud", sign(Algorithm::ES256, "ec", &f.ec, &with("aud", json!(["a", "b"]))).into_bytes()),
        ("stranger", sign(Algorithm::RS256, "rsa", &f.stranger, &claims).into_bytes()),
        (
            "hs256",
            sign(Algorithm::HS256, "rsa", &EncodingKey::from_secret(&f.rsa_public.0), &claims).into_bytes(),
        ),
        (
            "none",
            format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), B64.encode(claims.to_string())).into_bytes(),
        ),
        ("jwe", b"eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d".to_vec()),
    ];
    // Structured seeds: mode byte, then the JSON segments.
    let mut structured = vec![1u8];
    structured.extend_from_slice(br#"{"alg":"RS256","kid":"rsa"}"#);
    structured.push(0);
    structured.extend_from_slice(claims.to_string().as_bytes());
    structured.push(0);
    structured.extend_from_slice(&[7; 256]);
    seeds.push(("structured-unsigned", structured));
    for (name, c) in [("signed", claims.clone()), ("signed-b", b_claims.clone())] {
        let mut signed = vec![2u8];
        signed.extend_from_slice(header_es);
        signed.push(0);
        signed.extend_from_slice(c.to_string().as_bytes());
        seeds.push((name, signed));
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("seed");
    }
}

fuzz_target!(
    init: {
        if let Some(dir) = std::env::var_os("SEGL_FUZZ_WRITE_SEEDS") {
            write_seeds(Path::new(&dir));
            std::process::exit(0);
        }
        // The keys are made before the first input, not inside the first run's timing.
        fixture();
    },
    |data: &[u8]| {
        match data.first() {
            Some(1) => {
                let (header, payload, signature) = split3(&data[1..]);
                run(&assemble(header, payload, signature));
            }
            Some(2) => {
                let (header, payload, _) = split3(&data[1..]);
                run(&sign_es256(header, payload));
            }
            _ => run(&String::from_utf8_lossy(data)),
        }
    }
);
