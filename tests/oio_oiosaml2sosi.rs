//! OIOSaml2Sosi end to end: the real server signing on SoftHSM; NemLog-in-like OIOSAML 2.0
//! assertions minted by the development IdP key, the context token as seal and unsealed send
//! it, requests header-signed by a development system certificate. Successes are checked with
//! xmlsec1; every rule of the README's "OIOSaml2Sosi rules" table has its refusal here.

mod common;

use common::{env, Server};
use jiff::SignedDuration;
use segl::dev::oio::{
    context_token, issued_card, nemlogin_assertion, oio_request, oiosaml2sosi_request, NemLoginSpec,
};
use segl::dev::pki::{Identity, DEV_CPR, DEV_CVR};

const OIOSAML2SOSI: &str = "/sts/services/OIOSaml2Sosi";

fn request(spec: &NemLoginSpec, context: &[u8]) -> Vec<u8> {
    let assertion = nemlogin_assertion(&env().client, spec).unwrap();
    oiosaml2sosi_request(&env().client, &assertion, context, Identity::Voces).unwrap()
}

fn refused(server: &Server, request: &[u8], code: &str, actor: &str, text: &str) {
    common::assert_oio_refused(server, OIOSAML2SOSI, request, code, actor, text);
}

fn context() -> Vec<u8> {
    context_token("Testby Journal", "7170", "J0184")
}

#[test]
fn a_nemlogin_assertion_is_exchanged_for_a_signed_user_card() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let reply = server.post(OIOSAML2SOSI, &request(&NemLoginSpec::new(), &context()));
    let text = reply.text();
    assert_eq!(reply.status, 200, "{text}\n{}", server.log());
    common::assert_oio_header_signed_by_sts(&reply.body);
    assert!(text.contains("<wsa:Address>http://sosi.dk</wsa:Address>"), "{text}");
    let card = issued_card(&reply.body).unwrap();
    common::xmlsec_verify(&card, &env().pki("sts-signing")).unwrap();
    let card = String::from_utf8(card).unwrap();
    assert!(
        card.contains(&format!("<saml:NameID Format=\"medcom:cprnumber\">{DEV_CPR}</saml:NameID>")),
        "{card}"
    );
    for expected in
        [DEV_CVR, "Testby Journal", "Lars", "Larsen", "7170", "J0184", "lars.larsen@testby.example"]
    {
        assert!(card.contains(expected), "{expected:?} not in {card}");
    }
}

#[test]
fn each_rule_refuses_with_its_oio_fault() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let actor = "dk:sosi:sts:nbo";
    let good = NemLoginSpec::new();

    // 1: the request must be signed (here: a request with only the assertion is refused for
    // its missing context token first, so strip the signature from a complete one).
    let signed = String::from_utf8(request(&good, &context())).unwrap();
    let start =
        signed.find("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>").unwrap();
    let end = signed[start..].find("</ds:Signature>").unwrap() + start + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &signed[..start], &signed[end..]);
    refused(
        &server,
        unsigned.as_bytes(),
        "wst:InvalidRequest",
        actor,
        "Unable to validate envelope signature",
    );

    // 2: the context token is required.
    let assertion = nemlogin_assertion(&env().client, &good).unwrap();
    let only = oio_request(&env().client, &[&assertion], &[], "http://sosi.dk", Identity::Voces).unwrap();
    refused(&server, &only, "wst:InvalidRequest", actor, "two saml:Assertion");

    // 3: the assertion altered after signing (another CPR).
    let altered = String::from_utf8(assertion.clone()).unwrap().replace(DEV_CPR, "1111111118");
    let req = oiosaml2sosi_request(&env().client, altered.as_bytes(), &context(), Identity::Voces).unwrap();
    refused(&server, &req, "wst:FailedAuthentication", actor, "digest mismatch");

    // 3: signature wrapping: an unsigned copy naming another employee (RID), with the signed
    // original tucked inside it. Only an assertion whose own signature covers it is read.
    let original = String::from_utf8(assertion.clone()).unwrap();
    let id_start = original.find("ID=\"").unwrap() + 4;
    let id_end = id_start + original[id_start..].find('"').unwrap();
    let sig_start = original.find("<ds:Signature").unwrap();
    let sig_end = original.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let wrapped = format!(
        "{}_forged{}<saml:Advice>{}</saml:Advice>{}",
        &original[..id_start],
        &original[id_end..sig_start],
        original,
        original[sig_end..].replace("52723247", "10000001")
    );
    let req = oiosaml2sosi_request(&env().client, wrapped.as_bytes(), &context(), Identity::Voces).unwrap();
    refused(&server, &req, "wst:FailedAuthentication", actor, "expected exactly one ds:Signature");

    // 4: an OIOSAML 3 token is not this exchange's input.
    let oio3 = segl::dev::oio::bootstrap_token(
        &env().client,
        &segl::dev::oio::BootstrapSpec::new(
            segl::token::bootstrap::TokenProfile::Oio3Bst,
            "https://saml.nemlog-in.dev.segl.example",
            None,
        ),
    )
    .unwrap();
    let req = oiosaml2sosi_request(&env().client, &oio3, &context(), Identity::Voces).unwrap();
    refused(&server, &req, "wst:InvalidRequest", actor, "only OIOSAML 2.0 (DK-SAML-2.0)");

    // 4: expired beyond the drift.
    let expired = NemLoginSpec { not_on_or_after_offset: SignedDuration::from_mins(-10), ..good.clone() };
    refused(
        &server,
        &request(&expired, &context()),
        "wst:FailedAuthentication",
        actor,
        "OIOSAML token no longer valid",
    );

    // 5: the context token must name the IT system (NSP's text).
    let no_system = context_token("", "7170", "J0184");
    refused(
        &server,
        &request(&good, &no_system),
        "wst:InvalidRequest",
        actor,
        "IT System must be specified.",
    );

    // 6: the CPR sent is not the one the CVR/RID register gives; a RID with no CPR at all.
    let other_cpr = NemLoginSpec { cpr: Some("1111111118".into()), ..good.clone() };
    refused(
        &server,
        &request(&other_cpr, &context()),
        "wst:FailedAuthentication",
        "dk:sosi:sts:cvrridcpr",
        &format!("cvrrid-cpr mismatch [CVR:{DEV_CVR}-RID:52723247,1111111118]"),
    );
    let unknown_rid = NemLoginSpec { rid: "99999999".into(), ..good.clone() };
    refused(
        &server,
        &request(&unknown_rid, &context()),
        "wst:FailedAuthentication",
        "dk:sosi:sts:cvrridcpr",
        &format!("illegal cvrrid [CVR:{DEV_CVR}-RID:99999999]"),
    );

    // 7: an authorisation that does not go with the education code claimed; one not held.
    let wrong_education = context_token("Testby Journal", "5166", "J0184");
    refused(
        &server,
        &request(&good, &wrong_education),
        "wst:FailedAuthentication",
        "dk:sosi:sts:autorisation",
        "{J0184, 7170} registered",
    );
    let not_held = context_token("Testby Journal", "", "ZZ999");
    refused(
        &server,
        &request(&good, &not_held),
        "wst:FailedAuthentication",
        "dk:sosi:sts:autorisation",
        "authorization not found (available [{J0184, 7170}])",
    );

    // 8: the same request twice.
    let once = request(&good, &context());
    assert_eq!(server.post(OIOSAML2SOSI, &once).status, 200);
    refused(&server, &once, "wst:InvalidRequest", actor, "was already received");
}

#[test]
fn identity_providers_are_trusted_by_configuration_only() {
    if !common::have_xmlsec() {
        return;
    }
    // 3: with another certificate as the only trusted IdP, the development IdP's assertion is
    // refused; and with the development IdP in cpr_trust_certificates, its CPR is taken as sent.
    let voces = env().pki("voces");
    let untrusting = Server::start_with(|c| {
        let dev_idp = format!("{}", env().dir.join("pki").join("dev-idp.pem").display());
        *c = c.replace(
            &format!("trusted_idps = [\"{dev_idp}\"]"),
            &format!("trusted_idps = [\"{}\"]", voces.display()),
        );
    });
    refused(
        &untrusting,
        &request(&NemLoginSpec::new(), &context()),
        "wst:FailedAuthentication",
        "dk:sosi:sts:nbo",
        "not by a trusted identity provider",
    );
    drop(untrusting);
    let trusting = Server::start_with(|c| {
        *c = c.replace(
            "cpr_trust_certificates = []",
            "cpr_trust_certificates = [\"CVR:20921897-FID:99887766\"]",
        );
    });
    let other_cpr = NemLoginSpec { cpr: Some("1111111118".into()), ..NemLoginSpec::new() };
    let reply = trusting.post(OIOSAML2SOSI, &request(&other_cpr, &context_token("Testby Journal", "", "")));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let card = String::from_utf8(issued_card(&reply.body).unwrap()).unwrap();
    assert!(card.contains(">1111111118</saml:NameID>"), "{card}");
}
