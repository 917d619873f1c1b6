//! The DGWS ID-card exchange end to end: the real `segl serve`, a real SoftHSM token, requests
//! signed by the development client, and every response checked with `xmlsec1` (against the
//! STS certificate) and `xmllint` (against the federation's `soap-specialized.xsd`).

mod common;

use base64::Engine;
use bytes::Bytes;
use common::{env, xmllint_schema, xmlsec_verify, Server};
use jiff::{SignedDuration, Timestamp};
use segl::dev::client::{CertHash, RequestOptions};
use segl::dev::pki::Identity;
use segl::time::DgwsVersion;
use segl::token::{ns, CardType, IdCard};
use segl::xml::dsig::algorithm::SignatureAlgorithm;
use segl::xml::{Document, Limits};

const NEW: &str = "/sts/services/NewSecurityTokenService";
const LEGACY: &str = "/sts/services/SecurityTokenService";

fn request(opts: &RequestOptions) -> Vec<u8> {
    env().client.request(opts).expect("build request")
}

fn user() -> RequestOptions {
    RequestOptions::new(CardType::User)
}

fn system() -> RequestOptions {
    RequestOptions::new(CardType::System)
}

/// The issued card in a success response, read through segl's own verifier, plus checks that
/// do not depend on segl: xmlsec1 with the STS certificate and the seal schema.
fn issued_card(body: &[u8]) -> IdCard {
    let sts_cert = env().pki("sts-signing");
    xmlsec_verify(body, &sts_cert).unwrap_or_else(|e| panic!("xmlsec1 rejects the issued card: {e}"));
    if let Some(result) = xmllint_schema(body, "soap-specialized.xsd") {
        result.unwrap_or_else(|e| panic!("response does not validate against soap-specialized.xsd: {e}"));
    }
    let doc = Document::parse(Bytes::copy_from_slice(body), &Limits::default()).unwrap();
    let card = doc.by_id("IDCard").expect("a card with id IDCard");
    let signature = doc.child(card, ns::DS, "Signature").expect("card signature");
    let verified =
        segl::xml::dsig::verify::verify_enveloped(&doc, signature).expect("segl verifies the card");
    assert_eq!(
        verified.algorithm,
        SignatureAlgorithm::RsaSha1,
        "DGWS output must be RSA-SHA1 (seal's schema)"
    );
    let sts_der = segl::dev::client::read_certificate(&sts_cert).unwrap();
    assert_eq!(verified.certificate_der, sts_der, "KeyInfo carries the STS certificate");
    IdCard::from_element(&doc, verified.signed_element).expect("issued card parses")
}

fn fault_code(body: &[u8]) -> (String, String, String) {
    let doc = Document::parse(Bytes::copy_from_slice(body), &Limits::default())
        .unwrap_or_else(|e| panic!("fault is not XML ({e}): {}", String::from_utf8_lossy(body)));
    let root = doc.root();
    let fault = doc
        .child(root, ns::SOAP, "Body")
        .and_then(|b| doc.child(b, ns::SOAP, "Fault"))
        .unwrap_or_else(|| panic!("no soapenv:Fault in {}", String::from_utf8_lossy(body)));
    // seal's parser requires exactly these three unqualified children, in this order.
    let children: Vec<_> = doc.children(fault).collect();
    let names: Vec<_> = children.iter().map(|&c| (doc.namespace(c), doc.local_name(c))).collect();
    assert_eq!(names, vec![(None, "faultcode"), (None, "faultstring"), (None, "faultactor")]);
    let text = |i: usize| doc.text(children[i]).into_owned();
    (text(0), text(1), text(2))
}

fn assert_fault(reply: &common::Reply, status: u16, code: &str) -> String {
    assert_eq!(reply.status, status, "status; body: {}", reply.text());
    let (faultcode, faultstring, faultactor) = fault_code(&reply.body);
    assert_eq!(faultcode, code, "faultstring was: {faultstring}");
    assert_eq!(faultactor, "http://www.sosi.dk/sts");
    if let Some(result) = xmllint_schema(&reply.body, "soap-specialized.xsd") {
        result.unwrap_or_else(|e| panic!("fault does not validate against soap-specialized.xsd: {e}"));
    }
    faultstring
}

#[test]
fn user_card_level_4_moces_rsa_sha1_is_issued() {
    let server = Server::start();
    let mut opts = user();
    opts.message_id = Some("AAABcUSVr0hCh7tm8QcFy1NPU0k=".into());
    let sent = Timestamp::now();
    let reply = server.post(NEW, &request(&opts));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.header("content-type").unwrap().starts_with("text/xml"));
    let card = issued_card(&reply.body);

    assert_eq!(card.issuer, "SEGL-DEV-STS");
    assert_eq!(card.card_type, CardType::User);
    assert_eq!(card.authentication_level, 4);
    assert_eq!(card.version, DgwsVersion::V1_0_1);
    // NewSecurityTokenService: NameID describes the client certificate (spec §3.3).
    assert_eq!(card.name_id.format, "medcom:other");
    assert!(
        card.name_id.value.starts_with(
            "SubjectDN={SERIALNUMBER=CVR:20921897-RID:52723247, CN=Lars Larsen, O=Lægehuset Testby // CVR:20921897, C=DK},IssuerDN={CN=SEGL Development Issuing CA 1, O=SEGL Development, C=DK},CertSerial={"
        ),
        "{}",
        card.name_id.value
    );
    // OCESCertHash is the client's (SHA-1 of the MOCES certificate).
    let moces = segl::dev::client::read_certificate(&env().pki("moces")).unwrap();
    let sha1 = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &moces));
    assert_eq!(card.ocess_cert_hash.as_deref(), Some(sha1.as_str()));
    // IssueInstant = NotBefore = now − 5 min; NotOnOrAfter = NotBefore + 24 h (spec §3.4).
    assert_eq!(card.issue_instant, card.not_before);
    assert_eq!(card.not_before.duration_until(card.not_on_or_after), SignedDuration::from_hours(24));
    let backdate = card.not_before.duration_until(sent);
    assert!(
        backdate >= SignedDuration::from_secs(290) && backdate <= SignedDuration::from_secs(310),
        "{backdate:?}"
    );
    let user = card.user.expect("user log copied");
    assert_eq!(user.given_name, "Lars");
    assert_eq!(user.cpr.as_deref(), Some("0501792275"));
    // The DGWS message id is echoed.
    let text = reply.text();
    assert!(text.contains("<wsse:Security id=\"AAABcUSVr0hCh7tm8QcFy1NPU0k=\">"), "{text}");
    assert!(text.contains("<wst:Code>http://schemas.xmlsoap.org/ws/2005/02/trust/status/valid</wst:Code>"));
}

#[test]
fn user_card_rsa_sha256_with_sha256_cert_hash_is_issued() {
    let server = Server::start();
    let mut opts = user();
    opts.algorithm = SignatureAlgorithm::RsaSha256;
    opts.cert_hash = CertHash::Sha256;
    let reply = server.post(NEW, &request(&opts));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let card = issued_card(&reply.body);
    assert_eq!(
        card.ocess_cert_hash.as_deref().map(str::len),
        Some(44),
        "the client's SHA-256 hash is copied"
    );
}

#[test]
fn system_card_level_3_voces_both_algorithms_are_issued() {
    let server = Server::start();
    for alg in [SignatureAlgorithm::RsaSha1, SignatureAlgorithm::RsaSha256] {
        let mut opts = system();
        opts.algorithm = alg;
        let reply = server.post(NEW, &request(&opts));
        assert_eq!(reply.status, 200, "{alg:?}: {}", reply.text());
        let card = issued_card(&reply.body);
        assert_eq!(card.card_type, CardType::System);
        assert_eq!(card.authentication_level, 3);
        assert!(card.user.is_none());
        assert_eq!(card.system.care_provider_id, "20921897");
    }
}

#[test]
fn system_cards_from_foces_and_oces3_organisation_are_issued() {
    let server = Server::start();
    for identity in [Identity::Foces, Identity::Oces3Organisation] {
        let mut opts = system();
        opts.identity = Some(identity);
        let reply = server.post(NEW, &request(&opts));
        assert_eq!(reply.status, 200, "{identity:?}: {}", reply.text());
        issued_card(&reply.body);
    }
}

#[test]
fn legacy_endpoint_keeps_the_client_name_id() {
    let server = Server::start();
    let reply = server.post(LEGACY, &request(&user()));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let card = issued_card(&reply.body);
    assert_eq!(card.name_id.format, "medcom:cprnumber");
    assert_eq!(card.name_id.value, "0501792275");
}

#[test]
fn dgws_1_0_request_gets_local_time_card() {
    let server = Server::start();
    let mut opts = user();
    opts.version = DgwsVersion::V1_0;
    let reply = server.post(NEW, &request(&opts));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let card = issued_card(&reply.body);
    assert_eq!(card.version, DgwsVersion::V1_0);
    let text = reply.text();
    let created = text.split("<wsu:Created>").nth(1).unwrap().split('<').next().unwrap();
    assert!(!created.ends_with('Z'), "DGWS 1.0 timestamps carry no zone: {created}");
}

#[test]
fn malformed_xml_gets_invalid_request_and_the_server_keeps_serving() {
    let mut server = Server::start();
    let reply = server.post(
        NEW,
        b"<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><unclosed>",
    );
    assert_fault(&reply, 500, "wst:InvalidRequest");
    let reply = server.post(NEW, b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>");
    assert_fault(&reply, 500, "wst:InvalidRequest");
    assert!(server.is_running());
    assert_eq!(server.post(NEW, &request(&user())).status, 200);
    assert!(server.log().contains("request refused"), "an operator-readable log line: {}", server.log());
}

#[test]
fn tampered_card_gets_invalid_signature() {
    let server = Server::start();
    let req = String::from_utf8(request(&user())).unwrap();
    let tampered = req.replacen(
        "<saml:AttributeValue>Lars</saml:AttributeValue>",
        "<saml:AttributeValue>Mads</saml:AttributeValue>",
        1,
    );
    assert_ne!(req, tampered);
    let faultstring = assert_fault(&server.post(NEW, tampered.as_bytes()), 500, "dgws:invalidsignature");
    assert!(faultstring.contains("#IDCard"), "names the failed reference: {faultstring}");
    assert_eq!(server.post(NEW, &request(&user())).status, 200);
}

#[test]
fn certificate_from_untrusted_ca_gets_invalid_certificate() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::UntrustedMoces);
    let faultstring = assert_fault(&server.post(NEW, &request(&opts)), 500, "dgws:invalidcertificate");
    assert!(faultstring.contains("trusted CA"), "{faultstring}");
}

#[test]
fn trusting_another_ca_is_a_configuration_line() {
    // The same untrusted card is accepted once its CA's PEM file is added to trust.anchors.
    let untrusted_ca = env().pki("dev-untrusted-ca");
    let server = Server::start_with(|text| {
        *text = text.replace("anchors = [", &format!("anchors = [\"{}\", ", untrusted_ca.display()));
    });
    let mut opts = user();
    opts.identity = Some(Identity::UntrustedMoces);
    assert_eq!(server.post(NEW, &request(&opts)).status, 200);
}

#[test]
fn expired_certificate_gets_invalid_certificate() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::ExpiredMoces);
    let faultstring = assert_fault(&server.post(NEW, &request(&opts)), 500, "dgws:invalidcertificate");
    assert!(faultstring.contains("expired"), "{faultstring}");
}

#[test]
fn employee_certificate_on_a_system_card_is_refused() {
    let server = Server::start();
    let mut opts = system();
    opts.identity = Some(Identity::Moces);
    let faultstring = assert_fault(&server.post(NEW, &request(&opts)), 500, "dgws:invalidcertificate");
    assert!(faultstring.contains("cannot be signed with an Employee certificate"), "{faultstring}");
    let mut opts = user();
    opts.identity = Some(Identity::Voces);
    let faultstring = assert_fault(&server.post(NEW, &request(&opts)), 500, "dgws:invalidcertificate");
    assert!(faultstring.contains("cannot be signed with an Organisation certificate"), "{faultstring}");
}

#[test]
fn expired_card_gets_idcardtooold() {
    let server = Server::start();
    let mut opts = user();
    opts.not_before_offset = SignedDuration::from_hours(-25);
    let faultstring = assert_fault(&server.post(NEW, &request(&opts)), 500, "dgws:idcardtooold");
    assert!(faultstring.contains("expired"), "{faultstring}");
}

#[test]
fn card_from_the_future_gets_idcardtooold() {
    let server = Server::start();
    let mut opts = user();
    opts.not_before_offset = SignedDuration::from_mins(30);
    assert_fault(&server.post(NEW, &request(&opts)), 500, "dgws:idcardtooold");
}

#[test]
fn unknown_path_gets_404_fault() {
    let server = Server::start();
    let reply = server.post("/sts/services/NoSuchService", &request(&user()));
    assert_fault(&reply, 404, "soapenv:Client");
}

#[test]
fn get_gets_405_with_allow() {
    let server = Server::start();
    let reply = server.raw(format!("GET {NEW} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    assert_fault(&reply, 405, "soapenv:Client");
    assert_eq!(reply.header("allow"), Some("POST"));
}

#[test]
fn body_over_the_limit_gets_413_and_the_server_keeps_serving() {
    let mut server =
        Server::start_with(|t| *t = t.replace("max_body_bytes = 1048576", "max_body_bytes = 65536"));
    let big = vec![b' '; 70_000];
    assert_fault(&server.post(NEW, &big), 413, "soapenv:Client");
    assert!(server.is_running());
    assert_eq!(server.post(NEW, &request(&user())).status, 200);
}

#[test]
fn a_second_signature_in_the_request_is_refused() {
    let server = Server::start();
    let req = String::from_utf8(request(&user())).unwrap();
    // Append a copy of the card's signature to the header: exactly one is allowed.
    let sig_start = req.find("<ds:Signature ").unwrap();
    let sig_end = req.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &req[sig_start..sig_end];
    let doubled = req.replacen("</wsse:Security>", &format!("{sig}</wsse:Security>"), 1);
    assert_fault(&server.post(NEW, doubled.as_bytes()), 500, "dgws:invalidsignature");
}
