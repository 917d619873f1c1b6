//! A development JWT issuer for the citizen exchanges (JWT2Idws, JWT2OIOSaml): an RSA key and
//! its JWKS, and JTP-H-like access tokens signed with it, so that the demo and the tests have
//! an OIDC provider without running one.
//!
//! The key is a file, as the development service provider's: it stands for an OIDC provider's
//! key, which the STS never holds, so it does not belong on the STS's HSM.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use super::{io_err, DevError};

/// The `iss` of the development JWT issuer (a Keycloak-like realm URL).
pub const DEV_JWT_ISSUER: &str = "https://oidc.dev.segl.local/realms/citizens";

/// The `kid` of the development JWT issuer's key.
pub const DEV_JWT_KID: &str = "segl-dev-jwt-1";

/// The development citizen's person UUID (the JTP-H `sub` names it).
pub const DEV_CITIZEN_UUID: &str = "5d1c9ff4-1d0e-4b3a-9a43-2f1b0c8e7a21";

/// JTP-H's level of assurance (NSIS Substantial), as in the Seal.Java 3 example token.
pub const NSIS_SUBSTANTIAL: &str = "https://data.gov.dk/concept/core/nsis/loa/Substantial";

/// The development issuer's private key (PKCS#8 PEM) in the PKI directory.
pub fn key_path(pki_dir: &Path) -> PathBuf {
    pki_dir.join("dev-jwt-issuer-key.pem")
}

/// The development issuer's JWKS in the PKI directory (what `[[idws.jwt_issuer]] jwks` names).
pub fn jwks_path(pki_dir: &Path) -> PathBuf {
    pki_dir.join("dev-jwt-issuer.jwks.json")
}

/// Creates the key and the JWKS in `pki_dir` unless present; returns what it created.
pub fn ensure(pki_dir: &Path) -> Result<Vec<String>, DevError> {
    let key_file = key_path(pki_dir);
    let jwks_file = jwks_path(pki_dir);
    let mut created = Vec::new();
    let pkcs8 = if key_file.exists() {
        read_key(&key_file)?
    } else {
        let fail =
            |reason: &str| DevError::Certificate { label: "dev-jwt-issuer".into(), reason: reason.into() };
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| fail("RSA key generation failed"))?;
        let pkcs8 = key.as_der().map_err(|_| fail("PKCS#8 encoding failed"))?.as_ref().to_vec();
        let pem =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| fail(&e.to_string()))?
                .serialize_pem();
        std::fs::create_dir_all(pki_dir).map_err(io_err(pki_dir))?;
        super::audience::write_private(&key_file, &pem)?;
        created.push(format!("development JWT issuer key {}", key_file.display()));
        pkcs8
    };
    // A new key makes any JWKS beside it stale.
    if !created.is_empty() || !jwks_file.exists() {
        std::fs::write(&jwks_file, jwks(&pkcs8)?).map_err(io_err(&jwks_file))?;
        created.push(format!("development JWT issuer JWKS {} (kid {DEV_JWT_KID})", jwks_file.display()));
    }
    Ok(created)
}

/// The JWKS of an RSA key: one signature key, `kid` [`DEV_JWT_KID`].
fn jwks(pkcs8: &[u8]) -> Result<String, DevError> {
    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8)
        .map_err(|_| DevError::Jwt("the development JWT key is not an RSA key".into()))?;
    let public =
        aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(aws_lc_rs::signature::KeyPair::public_key(&key));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let set = serde_json::json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": DEV_JWT_KID,
            "n": b64.encode(&public.n),
            "e": b64.encode(&public.e),
        }]
    });
    serde_json::to_string_pretty(&set).map_err(|e| DevError::Jwt(e.to_string()))
}

/// Reads a PKCS#8 PEM private key.
fn read_key(path: &Path) -> Result<Vec<u8>, DevError> {
    let pem = std::fs::read_to_string(path).map_err(io_err(path))?;
    rcgen::KeyPair::from_pem(&pem)
        .map(|k| k.serialize_der())
        .map_err(|_| DevError::Jwt(format!("{} is not a PKCS#8 private key", path.display())))
}

/// The JOSE library's RSA signing key from a PKCS#8 key: its RSA signer reads the
/// RSAPrivateKey (PKCS#1) that PKCS#8 wraps, so that is unwrapped here.
pub fn rsa_signing_key(pkcs8: &[u8]) -> Result<EncodingKey, DevError> {
    use x509_parser::asn1_rs::{FromDer, Integer, OctetString, Oid, Sequence};
    let malformed = || DevError::Jwt("the key is not an RSA key in PKCS#8".into());
    let (_, info) = Sequence::from_der(pkcs8).map_err(|_| malformed())?;
    let (rest, _version) = Integer::from_der(&info.content).map_err(|_| malformed())?;
    let (rest, algorithm) = Sequence::from_der(rest).map_err(|_| malformed())?;
    let (_, oid) = Oid::from_der(&algorithm.content).map_err(|_| malformed())?;
    if oid != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err(malformed());
    }
    let (_, key) = OctetString::from_der(rest).map_err(|_| malformed())?;
    Ok(EncodingKey::from_rsa_der(key.as_cow()))
}

/// What a development JWT says; [`JwtSpec::citizen`] is a valid JTP-H-like token and the
/// fields can be bent into any invalid one.
#[derive(Debug, Clone)]
pub struct JwtSpec {
    /// `iss`.
    pub issuer: String,
    /// The header's `kid`.
    pub kid: String,
    /// The header's `alg` (an RSA algorithm: the development key is RSA).
    pub alg: Algorithm,
    /// `aud`: one is written as a string, several as an array, none leaves `aud` out.
    pub audiences: Vec<String>,
    /// `cpr`.
    pub cpr: Option<String>,
    /// `scope`, space-separated.
    pub scope: Option<String>,
    /// `sub`.
    pub subject: Option<String>,
    /// `exp`, relative to the time of signing.
    pub expires_in: Option<SignedDuration>,
    /// `nbf`, relative to the time of signing.
    pub not_before: Option<SignedDuration>,
    /// `iat`, relative to the time of signing.
    pub issued_at: Option<SignedDuration>,
    /// `given_name`.
    pub given_name: Option<String>,
    /// `family_name`.
    pub family_name: Option<String>,
    /// Further claims; they override the ones above.
    pub extra: Map<String, Value>,
}

impl JwtSpec {
    /// A JTP-H-like access token of the development issuer for the development citizen, aimed
    /// at `audience`, valid for an hour from signing, with scope "openid sosi-sts".
    pub fn citizen(audience: &str) -> JwtSpec {
        let mut extra = Map::new();
        extra.insert("jti".into(), Value::String(crate::exchange::oio::envelope::uuid()));
        extra.insert("acr".into(), Value::String(NSIS_SUBSTANTIAL.into()));
        extra.insert("iss-policy".into(), Value::String("urn:dk:sundhed:oidc:policy_strict".into()));
        extra.insert("auth_time".into(), Value::from(Timestamp::now().as_second()));
        extra.insert("typ".into(), Value::String("Bearer".into()));
        JwtSpec {
            issuer: DEV_JWT_ISSUER.into(),
            kid: DEV_JWT_KID.into(),
            alg: Algorithm::RS256,
            audiences: vec![audience.to_owned()],
            cpr: Some(super::pki::DEV_CITIZEN_CPR.into()),
            scope: Some("openid sosi-sts".into()),
            subject: Some(format!("urn:dk:healthcare:eid:uuid:global:person:{DEV_CITIZEN_UUID}")),
            expires_in: Some(SignedDuration::from_hours(1)),
            not_before: None,
            issued_at: Some(SignedDuration::ZERO),
            given_name: Some("Nancy Ann".into()),
            family_name: Some("Berggren".into()),
            extra,
        }
    }

    /// The claims at `now`.
    pub fn claims(&self, now: Timestamp) -> Map<String, Value> {
        let at = |offset: SignedDuration| Value::from(now.as_second().saturating_add(offset.as_secs()));
        let text = |s: &String| Value::String(s.clone());
        let mut claims = Map::new();
        claims.insert("iss".into(), text(&self.issuer));
        match self.audiences.as_slice() {
            [] => {}
            [one] => {
                claims.insert("aud".into(), text(one));
            }
            several => {
                claims.insert("aud".into(), Value::from(several.to_vec()));
            }
        }
        let optional = [
            ("sub", self.subject.as_ref().map(text)),
            ("cpr", self.cpr.as_ref().map(text)),
            ("scope", self.scope.as_ref().map(text)),
            ("given_name", self.given_name.as_ref().map(text)),
            ("family_name", self.family_name.as_ref().map(text)),
            ("exp", self.expires_in.map(at)),
            ("nbf", self.not_before.map(at)),
            ("iat", self.issued_at.map(at)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                claims.insert(name.into(), value);
            }
        }
        claims.extend(self.extra.clone());
        claims
    }
}

/// Signs `spec` with the development issuer's key in `pki_dir` (see [`ensure`]).
pub fn sign(pki_dir: &Path, spec: &JwtSpec) -> Result<String, DevError> {
    let key_file = key_path(pki_dir);
    if !key_file.exists() {
        return Err(DevError::MissingCertificate(key_file.display().to_string()));
    }
    if !jsonwebtoken::AlgorithmFamily::Rsa.algorithms().contains(&spec.alg) {
        return Err(DevError::BadInput(format!(
            "the development JWT key is RSA; alg {:?} cannot be signed with it",
            spec.alg
        )));
    }
    let key = rsa_signing_key(&read_key(&key_file)?)?;
    let header = Header { kid: Some(spec.kid.clone()), ..Header::new(spec.alg) };
    jsonwebtoken::encode(&header, &spec.claims(Timestamp::now()), &key)
        .map_err(|e| DevError::Jwt(e.to_string()))
}

/// `jwt` as JWT2Idws and JWT2OIOSaml take it in `wst14:ActAs` (spec §2.7): a
/// `wsse:BinarySecurityToken` of the JWT ValueType, no EncodingType, the compact JWS as is.
pub fn binary_security_token(jwt: &str) -> Vec<u8> {
    let mut w = crate::xml::emit::CanonicalWriter::with_capacity(jwt.len() + 256);
    w.leaf(
        "wsse:BinarySecurityToken",
        &[("wsse", crate::token::ns::WSSE)],
        &[("ValueType", crate::exchange::oio::citizen::JWT_VALUE_TYPE)],
        jwt,
    );
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::jwt::JwtIssuerConfig;
    use crate::trust::jwt::{JwtError, JwtIssuers};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segl-dev-jwt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn issuers(dir: &Path) -> JwtIssuers {
        let config: JwtIssuerConfig = toml::from_str(&format!(
            "issuer = {DEV_JWT_ISSUER:?}\njwks = [{:?}]\n",
            jwks_path(dir).display().to_string()
        ))
        .unwrap();
        JwtIssuers::from_config(&[config]).unwrap()
    }

    #[test]
    fn ensure_creates_once_and_its_tokens_verify() {
        let dir = scratch("ensure");
        let created = ensure(&dir).unwrap();
        assert_eq!(created.len(), 2, "{created:?}");
        assert!(ensure(&dir).unwrap().is_empty());
        let pem = std::fs::read_to_string(key_path(&dir)).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM expected");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(key_path(&dir)).unwrap().permissions().mode() & 0o777, 0o600);

        let token = sign(&dir, &JwtSpec::citizen("https://fmk")).unwrap();
        let verified = issuers(&dir).verify(&token, "https://fmk", Timestamp::now()).unwrap();
        assert_eq!(verified.cpr, crate::dev::pki::DEV_CITIZEN_CPR);
        assert_eq!(verified.given_name.as_deref(), Some("Nancy Ann"));
        assert_eq!(verified.scope, ["openid", "sosi-sts"]);
        assert!(verified.subject.unwrap().ends_with(DEV_CITIZEN_UUID));

        // A lost JWKS is rewritten from the key, which stays.
        std::fs::remove_file(jwks_path(&dir)).unwrap();
        assert_eq!(ensure(&dir).unwrap().len(), 1);
        assert!(issuers(&dir).verify(&token, "https://fmk", Timestamp::now()).is_ok());

        let mut expired = JwtSpec::citizen("https://fmk");
        expired.expires_in = Some(SignedDuration::from_hours(-1));
        let token = sign(&dir, &expired).unwrap();
        let err = issuers(&dir).verify(&token, "https://fmk", Timestamp::now()).unwrap_err();
        assert!(matches!(err, JwtError::Expired { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_rsa_algorithms_are_signed() {
        let dir = scratch("alg");
        ensure(&dir).unwrap();
        let mut spec = JwtSpec::citizen("https://fmk");
        spec.alg = Algorithm::ES256;
        assert!(matches!(sign(&dir, &spec), Err(DevError::BadInput(_))));
        spec.alg = Algorithm::PS256;
        assert!(sign(&dir, &spec).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
