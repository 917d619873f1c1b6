//! JWT2Idws (and its alias JWTIdws) and JWT2OIOSaml end to end: the real server signing on
//! SoftHSM; JWTs of the development JWT issuer (whose JWKS the embedded configuration trusts),
//! and hostile ones, in requests header-signed by development systems. Successes are checked
//! with independent tools: xmlsec1 (header, identity token, and the OIOSAML assertion after
//! `xmlsec1 --decrypt` with the audience's key), xmllint against the schemas. Every kind of
//! bad JWT is refused by `trust::jwt`'s unit tests; here each reaches the client as its OIO
//! fault.

mod common;

use base64::Engine;
use common::{env, Server};
use segl::dev::jwt::{binary_security_token, sign, JwtSpec};
use segl::dev::oio::oio_request;
use segl::dev::pki::{Identity, DEV_CITIZEN_CPR, DEV_PROCURATION_CPR};

const JWT2IDWS: &str = "/sts/services/JWT2Idws";
const JWTIDWS: &str = "/sts/services/JWTIdws";
const JWT2OIOSAML: &str = "/sts/services/JWT2OIOSaml";
const FMK: &str = "https://fmk";
const SP: &str = "https://sp.dev.segl.example/";
const CPR_CLAIM: &str = "dk:gov:saml:attribute:CprNumberIdentifier";
const ITS: &str = "dk:sosi:sts:its";

fn pki() -> std::path::PathBuf {
    env().dir.join("pki")
}

fn cert(identity: Identity) -> Vec<u8> {
    env().client.certificate(identity).unwrap()
}

/// A request carrying `jwt` in ActAs with `claims`, for `audience`, signed by `signer`.
fn request_with(jwt: &str, claims: &[(&str, &str)], audience: &str, signer: Identity) -> Vec<u8> {
    let token = binary_security_token(jwt);
    oio_request(&env().client, &[&token], claims, audience, signer).unwrap()
}

/// A valid request for the development citizen at `audience`.
fn request(audience: &str) -> Vec<u8> {
    let jwt = sign(&pki(), &JwtSpec::citizen(audience)).unwrap();
    request_with(&jwt, &[(CPR_CLAIM, DEV_CITIZEN_CPR)], audience, Identity::Voces)
}

#[test]
fn a_jwt_is_exchanged_for_an_identity_token_at_both_paths() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    for path in [JWT2IDWS, JWTIDWS] {
        let reply = server.post(path, &request(FMK));
        assert_eq!(reply.status, 200, "{path}: {}\n{}", reply.text(), server.log());
        let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
        assert_eq!(common::attribute_value(&token, CPR_CLAIM), Some(DEV_CITIZEN_CPR), "{token}");
        // The JWT's acr (NSIS Substantial) is assurance level 3; the NameID is the CPR form.
        assert_eq!(common::attribute_value(&token, "dk:gov:saml:attribute:AssuranceLevel"), Some("3"));
        assert!(
            token.contains(&format!(">dk:gov:saml:attribute:CprNumberIdentifier:{DEV_CITIZEN_CPR}<")),
            "{token}"
        );
    }
    // The identity token never outlives the JWT (plus the issuer's skew).
    let mut short = JwtSpec::citizen(FMK);
    short.expires_in = Some(jiff::SignedDuration::from_mins(10));
    let jwt = sign(&pki(), &short).unwrap();
    let reply =
        server.post(JWT2IDWS, &request_with(&jwt, &[(CPR_CLAIM, DEV_CITIZEN_CPR)], FMK, Identity::Voces));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
    let conditions = &token[token.find("<saml:Conditions").unwrap()..];
    let end: jiff::Timestamp =
        conditions.split("NotOnOrAfter=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!(end <= jiff::Timestamp::now() + jiff::SignedDuration::from_mins(12), "{end}");

    // OnBehalfOf works as for bootstrap tokens.
    let jwt = sign(&pki(), &JwtSpec::citizen(FMK)).unwrap();
    let claim =
        format!("urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:{DEV_PROCURATION_CPR}");
    let claims = [(CPR_CLAIM, DEV_CITIZEN_CPR), ("dk:healthcare:saml:attribute:OnBehalfOf", claim.as_str())];
    let reply = server.post(JWT2IDWS, &request_with(&jwt, &claims, FMK, Identity::Voces));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
    let privileges =
        common::attribute_value(&token, "dk:gov:saml:attribute:Privileges_intermediate").unwrap();
    let privileges =
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(privileges).unwrap()).unwrap();
    assert!(privileges.contains(DEV_PROCURATION_CPR), "{privileges}");

    let audit = server.audit();
    assert!(audit.contains("\"kind\":\"jwt\""), "{audit}");
}

#[test]
fn a_jwt_is_exchanged_for_an_encrypted_oiosaml_assertion() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let reply = server.post(JWT2OIOSAML, &request(SP));
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), server.log());
    common::assert_oio_header_signed_by_sts(&reply.body);
    let text = reply.text();
    // Sosi2OIOSaml's answer shape (what unsealed's parser reads): the assertion encrypted in
    // RequestedSecurityToken, aes128-cbc + rsa-1_5 with the key inside EncryptedData.
    assert!(text.contains("<wst:RequestSecurityTokenResponseCollection"), "{text}");
    assert!(text.contains("<saml:EncryptedAssertion"), "{text}");
    assert!(text.contains("http://www.w3.org/2001/04/xmlenc#aes128-cbc"), "{text}");
    assert!(text.contains("http://www.w3.org/2001/04/xmlenc#rsa-1_5"), "{text}");
    assert!(!text.contains(DEV_CITIZEN_CPR), "the CPR travels encrypted: {text}");
    assert!(
        common::element_text(&text, "wst:Lifetime").is_some() || text.contains("<wst:Lifetime>"),
        "{text}"
    );

    let decrypted = common::decrypt_for_dev_audience(&reply.body);
    let assertion = segl::dev::oio::issued_card(decrypted.as_bytes()).unwrap();
    let args = common::xmlsec_assertion_args(&env().pki("sts-signing"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::xmlsec(&args, &assertion).unwrap_or_else(|e| panic!("xmlsec1 rejects the assertion: {e}"));
    if let Some(result) = common::xmllint_schema(&assertion, "oiosaml/standard-saml.xsd") {
        result.unwrap_or_else(|e| panic!("the assertion fails the SAML schema: {e}"));
    }
    let assertion = String::from_utf8(assertion).unwrap();
    for (name, value) in [
        ("dk:gov:saml:attribute:SpecVer", "DK-SAML-2.0"),
        ("dk:gov:saml:attribute:AssuranceLevel", "3"),
        (CPR_CLAIM, DEV_CITIZEN_CPR),
        ("urn:oid:2.5.4.4", "Berggren"),
        ("urn:oid:2.5.4.3", "Nancy Ann Berggren"),
    ] {
        assert_eq!(common::attribute_value(&assertion, name), Some(value), "{name}: {assertion}");
    }
    assert_eq!(common::xml_tag(&assertion, "saml:Audience"), Some(SP));
    assert!(assertion.contains("Recipient=\"https://sp.dev.segl.example/saml/SSO\""), "{assertion}");
    assert!(assertion.contains("<saml:AuthnStatement AuthnInstant="), "{assertion}");
    assert!(assertion.contains("Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\""), "{assertion}");
}

#[test]
fn bad_jwts_and_bad_requests_are_refused_with_their_faults() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let good = JwtSpec::citizen(FMK);
    let claims = [(CPR_CLAIM, DEV_CITIZEN_CPR)];
    let refused = |path: &str, request: &[u8], code: &str, text: &str| {
        common::assert_oio_refused(&server, path, request, code, ITS, text);
    };
    let signed = |spec: &JwtSpec| sign(&pki(), spec).unwrap();

    // An expired JWT: the fault says "expired" (unsealed's test looks for it).
    let mut spec = good.clone();
    spec.issued_at = Some(jiff::SignedDuration::from_hours(-2));
    spec.expires_in = Some(jiff::SignedDuration::from_hours(-1));
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "expired",
    );
    // alg none: the signature part dropped and the header rewritten.
    let jwt = signed(&good);
    let header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"segl-dev-jwt-1"}"#);
    let payload = jwt.split('.').nth(1).unwrap();
    let none = format!("{header}.{payload}.");
    refused(
        JWT2IDWS,
        &request_with(&none, &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "unsigned",
    );
    // A tampered payload with the original signature.
    let mut claims_json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap();
    claims_json["cpr"] = "0101010101".into();
    let forged = format!(
        "{}.{}.{}",
        jwt.split('.').next().unwrap(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims_json.to_string()),
        jwt.split('.').nth(2).unwrap()
    );
    let forged_claims = [(CPR_CLAIM, "0101010101")];
    refused(
        JWT2IDWS,
        &request_with(&forged, &forged_claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "does not verify",
    );
    // The JWT is for another audience than AppliesTo.
    let mut spec = good.clone();
    spec.audiences = vec!["https://audience.nspop.dk/dds".into()];
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "not \"https://fmk\"",
    );
    // Without sosi-sts in scope.
    let mut spec = good.clone();
    spec.scope = Some("openid fmk".into());
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "sosi-sts",
    );
    // Without cpr.
    let mut spec = good.clone();
    spec.cpr = None;
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "no cpr claim",
    );
    // An issuer nobody configured; an unknown kid.
    let mut spec = good.clone();
    spec.issuer = "https://evil.example/".into();
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "not a trusted JWT issuer",
    );
    let mut spec = good.clone();
    spec.kid = "another-kid".into();
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "another-kid",
    );
    // Not a JWS at all: a malformed request.
    refused(JWT2IDWS, &request_with("not.a-jwt", &claims, FMK, Identity::Voces), "wst:InvalidRequest", "");
    // Oversized: refused before decoding.
    let huge = "A".repeat(20_000);
    refused(
        JWT2IDWS,
        &request_with(&huge, &claims, FMK, Identity::Voces),
        "wst:InvalidRequest",
        "bytes long",
    );

    // The request: the CPR claim missing / not the JWT's; a signer not whitelisted for the
    // issuer; an audience without JWT support; a replayed MessageID.
    let jwt = signed(&good);
    refused(
        JWT2IDWS,
        &request_with(&jwt, &[], FMK, Identity::Voces),
        "wst:InvalidRequest",
        "CPR claim missing",
    );
    refused(
        JWT2IDWS,
        &request_with(&jwt, &[(CPR_CLAIM, "0101010101")], FMK, Identity::Voces),
        "wst:InvalidRequest",
        "CPR/PID mismatch",
    );
    refused(
        JWT2IDWS,
        &request_with(&jwt, &claims, FMK, Identity::Foces),
        "wst:FailedAuthentication",
        "not whitelisted",
    );
    let minspaerring = "https://audience.nspop.dk/minspaerring";
    let mut spec = good.clone();
    spec.audiences = vec![minspaerring.into()];
    refused(
        JWT2IDWS,
        &request_with(&signed(&spec), &claims, minspaerring, Identity::Voces),
        "wst:InvalidScope",
        "JWT support is not activated",
    );
    let once = request_with(&jwt, &claims, FMK, Identity::Voces);
    assert_eq!(server.post(JWT2IDWS, &once).status, 200);
    refused(JWT2IDWS, &once, "wst:InvalidRequest", "already received");
    // A bootstrap token is not a JWT.
    refused(
        JWT2IDWS,
        &oio_request(
            &env().client,
            &[b"<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"a\"/>"],
            &claims,
            FMK,
            Identity::Voces,
        )
        .unwrap(),
        "wst:InvalidRequest",
        "not a wsse:BinarySecurityToken",
    );
    // JWT2OIOSaml needs an audience with an encryption certificate.
    refused(JWT2OIOSAML, &request(FMK), "wst:InvalidScope", "has no encryption certificate");
}

#[test]
fn audience_jwt_switch_and_jwt_issuers_reload_and_a_bad_issuer_leaves_the_old_policy_serving() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let minspaerring = "https://audience.nspop.dk/minspaerring";
    let request = || request(minspaerring);
    let refused = server.post(JWT2IDWS, &request());
    assert!(refused.text().contains("JWT support is not activated"), "{}", refused.text());

    // The operator switches JWT support on for the audience while segl serves.
    let text = std::fs::read_to_string(server.config_path()).unwrap();
    let switched_off = format!("audience = \"{minspaerring}\"\njwt = false");
    assert!(text.contains(&switched_off), "the embedded configuration has the audience with JWT off");
    let on = text.replace(&switched_off, &format!("audience = \"{minspaerring}\"\njwt = true"));
    std::fs::write(server.config_path(), &on).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.post(JWT2IDWS, &request()).status != 200 {
        assert!(std::time::Instant::now() < deadline, "the switch was not picked up:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A JWT issuer whose JWKS cannot be read: the whole change is refused (the log names the
    // file), and the policy in force keeps serving.
    let jwks = env().dir.join("pki").join("dev-jwt-issuer.jwks.json");
    let broken = on.replace(
        &jwks.display().to_string(),
        &jwks.with_file_name("missing.jwks.json").display().to_string(),
    );
    assert_ne!(broken, on, "the configuration names the development JWKS");
    std::fs::write(server.config_path(), &broken).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log().contains("configuration refused") {
        assert!(std::time::Instant::now() < deadline, "no refusal logged:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(server.log().contains("missing.jwks.json"), "the refusal names the file:\n{}", server.log());
    let reply = server.post(JWT2IDWS, &request());
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn requests_in_seals_shape_are_exchanged() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    for (path, audience) in [(JWT2IDWS, FMK), (JWT2OIOSAML, SP)] {
        let jwt = sign(&pki(), &JwtSpec::citizen(audience)).unwrap();
        let token = binary_security_token(&jwt);
        let request = segl::dev::oio::seal_request(
            &env().client,
            &[&token],
            &[(CPR_CLAIM, DEV_CITIZEN_CPR)],
            audience,
            Identity::Voces,
        )
        .unwrap();
        let reply = server.post(path, &request);
        assert_eq!(reply.status, 200, "{path}: {}\n{}", reply.text(), server.log());
        common::assert_oio_header_signed_by_sts(&reply.body);
    }
}
