//! Bst2Idws end to end: the real server signing on SoftHSM; citizens' bootstrap tokens of each
//! profile minted by the development IdP key; requests header-signed by development system
//! certificates (RSA-SHA256, as unsealed signs). Every success is checked with independent
//! tools (`common::assert_identity_token`: xmlsec1 on the header and the token, xmllint
//! against the IDWS-H identity-token and SAML schemas, holder-of-key = the requester, audience,
//! unsealed's lifetime rule); OnBehalfOf evidence is decoded and checked.

mod common;

use base64::Engine;
use common::{env, Server};
use segl::dev::oio::{bootstrap_token, oio_request, BootstrapSpec};
use segl::dev::pki::{
    Identity, DEV_CHILD_CPR, DEV_CITIZEN_CPR, DEV_PARTLY_WARD_CPR, DEV_PROCURATION_CPR, DEV_WARD_CPR,
};
use segl::token::bootstrap::TokenProfile;

const BST2IDWS: &str = "/sts/services/Bst2Idws";
const FMK: &str = "https://fmk";
const CPR_CLAIM: &str = "dk:gov:saml:attribute:CprNumberIdentifier";
const ON_BEHALF_OF: &str = "dk:healthcare:saml:attribute:OnBehalfOf";

fn cert(identity: Identity) -> Vec<u8> {
    env().client.certificate(identity).unwrap()
}

/// The configured issuer of `profile` (config/segl.toml's `[[idws.issuer]]`).
fn issuer(profile: TokenProfile) -> String {
    env().config.idws.issuer.iter().find(|i| i.token_profile == profile).unwrap().issuer.clone()
}

/// A citizen token of `profile`, holder-of-key bound to the VOCES certificate.
fn spec(profile: TokenProfile) -> BootstrapSpec {
    BootstrapSpec::citizen(profile, &issuer(profile), Some(cert(Identity::Voces)))
}

fn request(spec: &BootstrapSpec, claims: &[(&str, &str)], audience: &str, signer: Identity) -> Vec<u8> {
    let token = bootstrap_token(&env().client, spec).unwrap();
    oio_request(&env().client, &[&token], claims, audience, signer).unwrap()
}

fn decode(value: &str) -> String {
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(value).unwrap()).unwrap()
}

#[test]
fn each_citizen_profile_is_exchanged_for_an_identity_token() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    for (profile, level) in [
        (TokenProfile::Oio3BstCitizen, "3"),
        (TokenProfile::Oio2BstCitizen, "3"),
        (TokenProfile::NemLoginBst, "3"),
        (TokenProfile::LegacyBearer, "3"),
    ] {
        let spec = spec(profile);
        let reply =
            server.post(BST2IDWS, &request(&spec, &[(CPR_CLAIM, DEV_CITIZEN_CPR)], FMK, Identity::Voces));
        assert_eq!(reply.status, 200, "{profile:?}: {}\n{}", reply.text(), server.log());
        let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
        assert_eq!(common::attribute_value(&token, CPR_CLAIM), Some(DEV_CITIZEN_CPR), "{profile:?}: {token}");
        assert_eq!(
            common::attribute_value(&token, "dk:gov:saml:attribute:AssuranceLevel"),
            Some(level),
            "{profile:?}: {token}"
        );
        // The NameID is the bootstrap token's.
        let bootstrap = String::from_utf8(bootstrap_token(&env().client, &spec).unwrap()).unwrap();
        assert_eq!(
            common::xml_tag(&token, "saml:NameID").or_else(|| name_id(&token)),
            name_id(&bootstrap),
            "{profile:?}"
        );
        assert!(!token.contains("Privileges_intermediate") && !token.contains("SubjectRelations"), "{token}");
    }
    let audit = server.audit();
    assert!(audit.contains("\"kind\":\"identity-token\""), "{audit}");
}

/// The NameID text (its element has a Format attribute).
fn name_id(xml: &str) -> Option<&str> {
    let at = xml.find("<saml:NameID ")?;
    let rest = &xml[at..];
    let start = rest.find('>')? + 1;
    Some(&rest[start..start + rest[start..].find('<')?])
}

#[test]
fn an_encrypted_bootstrap_token_and_an_audience_that_takes_encrypted_tokens() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    // A bootstrap token encrypted to the STS is decrypted in the HSM.
    let spec = spec(TokenProfile::Oio3BstCitizen);
    let token = bootstrap_token(&env().client, &spec).unwrap();
    let sts_encryption = segl::dev::client::read_certificate(&env().pki("sts-decryption")).unwrap();
    let encrypted = segl::xml::enc::encrypt_assertion(
        &token,
        &sts_encryption,
        segl::xml::enc::ContentEncryption::Aes128Cbc,
        segl::xml::enc::KeyTransport::Rsa1_5,
    )
    .unwrap();
    let claims = [(CPR_CLAIM, DEV_CITIZEN_CPR)];
    let request = oio_request(&env().client, &[&encrypted], &claims, FMK, Identity::Voces).unwrap();
    let reply = server.post(BST2IDWS, &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));

    // An audience with an encryption certificate gets its token encrypted (ENC-AUD), which
    // xmlsec1 decrypts with the audience's key; the decrypted token verifies.
    let audience = "https://sp.dev.segl.example/";
    let reply = server.post(BST2IDWS, &self::request(&spec, &claims, audience, Identity::Voces));
    assert_eq!(reply.status, 200, "{}", reply.text());
    common::assert_oio_header_signed_by_sts(&reply.body);
    let text = reply.text();
    assert!(text.contains("<saml:EncryptedAssertion") && !text.contains(DEV_CITIZEN_CPR), "{text}");
    let decrypted = common::decrypt_for_dev_audience(&reply.body);
    let token = common::check_identity_token(decrypted.as_bytes(), audience, &cert(Identity::Voces));
    assert_eq!(common::attribute_value(&token, CPR_CLAIM), Some(DEV_CITIZEN_CPR));
}

#[test]
fn on_behalf_of_puts_the_verified_relation_in_the_token() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let spec = spec(TokenProfile::Oio3BstCitizen);
    let procuration =
        format!("urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:{DEV_PROCURATION_CPR}");
    let reply = server.post(
        BST2IDWS,
        &request(&spec, &[(CPR_CLAIM, DEV_CITIZEN_CPR), (ON_BEHALF_OF, &procuration)], FMK, Identity::Voces),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
    let privileges = decode(
        common::attribute_value(&token, "dk:gov:saml:attribute:Privileges_intermediate")
            .unwrap_or_else(|| panic!("no Privileges_intermediate: {token}")),
    );
    assert!(privileges.contains("PrivilegeList"), "{privileges}");
    assert!(
        privileges.contains(&format!(
            "Scope=\"urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:{DEV_PROCURATION_CPR}\""
        )),
        "{privileges}"
    );
    assert!(!token.contains("SubjectRelations"), "{token}");

    for (kind, cpr) in [
        ("ParentalCustody", DEV_CHILD_CPR),
        ("WardCustody", DEV_WARD_CPR),
        ("PartlyWardCustody", DEV_PARTLY_WARD_CPR),
    ] {
        let claim = format!("urn:dk:healthcare:saml:actThrough:{kind}:cprNumberIdentifier:{cpr}");
        let reply = server.post(
            BST2IDWS,
            &request(&spec, &[(CPR_CLAIM, DEV_CITIZEN_CPR), (ON_BEHALF_OF, &claim)], FMK, Identity::Voces),
        );
        assert_eq!(reply.status, 200, "{kind}: {}", reply.text());
        let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
        let relations = decode(
            common::attribute_value(&token, "urn:dk:healthcare:saml:attribute:SubjectRelations")
                .unwrap_or_else(|| panic!("{kind}: no SubjectRelations: {token}")),
        );
        assert!(relations.contains(&format!("relatedPersonID=\"{cpr}\"")), "{kind}: {relations}");
        assert!(!token.contains("Privileges_intermediate"), "{token}");
    }
    // Custody of one kind does not prove another.
    let claim = format!("urn:dk:healthcare:saml:actThrough:WardCustody:cprNumberIdentifier:{DEV_CHILD_CPR}");
    common::assert_oio_refused(
        &server,
        BST2IDWS,
        &request(&spec, &[(CPR_CLAIM, DEV_CITIZEN_CPR), (ON_BEHALF_OF, &claim)], FMK, Identity::Voces),
        "wst:FailedAuthentication",
        "dk:sosi:sts:its",
        "no ward_custody relation is registered",
    );
}

#[test]
fn a_request_in_seals_shape_is_exchanged() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    // seal.java's shape: `soap` prefix, namespaces on the Envelope, Action/MessageID before
    // Security, an indented message, RSA-SHA1 SIG-HDR over #action #messageID #timestamp #body.
    for profile in [TokenProfile::Oio3BstCitizen, TokenProfile::Oio2BstCitizen] {
        let token = bootstrap_token(&env().client, &spec(profile)).unwrap();
        let claim = format!(
            "urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:{DEV_PROCURATION_CPR}"
        );
        let claims = [(CPR_CLAIM, DEV_CITIZEN_CPR), (ON_BEHALF_OF, claim.as_str())];
        let request =
            segl::dev::oio::seal_request(&env().client, &[&token], &claims, FMK, Identity::Voces).unwrap();
        let text = String::from_utf8_lossy(&request).into_owned();
        assert!(text.starts_with("<soap:Envelope") && text.contains("wsu:Id=\"timestamp\""), "{text}");
        assert!(text.find("<wsa:Action").unwrap() < text.find("<wsse:Security").unwrap());
        let reply = server.post(BST2IDWS, &request);
        assert_eq!(reply.status, 200, "{profile:?}: {}\n{}", reply.text(), server.log());
        let token = common::assert_identity_token(&reply.body, FMK, &cert(Identity::Voces));
        assert!(token.contains("Privileges_intermediate"), "{token}");
    }
}

#[test]
fn an_audience_may_ask_for_rsa_sha256_signed_tokens() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    // The embedded configuration's MinLog audience asks for RSA-SHA256 (a service whose
    // XML-DSig validation refuses SHA-1); the others keep seal's RSA-SHA1.
    let minlog = "https://audience.nspop.dk/minlog";
    for (audience, method) in [(minlog, "rsa-sha256"), (FMK, "xmldsig#rsa-sha1")] {
        let request = request(
            &spec(TokenProfile::Oio3BstCitizen),
            &[(CPR_CLAIM, DEV_CITIZEN_CPR)],
            audience,
            Identity::Voces,
        );
        let reply = server.post(BST2IDWS, &request);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let token = common::assert_identity_token(&reply.body, audience, &cert(Identity::Voces));
        let signature = &token[token.find("<ds:SignatureMethod").unwrap()..];
        assert!(signature[..signature.find('>').unwrap()].contains(method), "{audience}: {token}");
    }
}
