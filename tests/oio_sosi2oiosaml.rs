//! Sosi2OIOSaml end to end: the real server signing on SoftHSM, requests shaped as unsealed and
//! seal send them, every answer checked with xmlsec1 (the header signature against the STS
//! certificate, decryption with the audience's key, the assertion's signature against the STS
//! certificate). One test per rule of the README's "Sosi2OIOSaml rules" table.

mod common;

use common::{env, Server};
use segl::dev::client::RequestOptions;
use segl::dev::oio::{issued_card, sosi2oiosaml_request, CardPlacement};
use segl::token::CardType;

const NEW: &str = "/sts/services/NewSecurityTokenService";
const SOSI2OIOSAML: &str = "/sts/services/Sosi2OIOSaml";
const AUDIENCE: &str = segl::dev::audience::DEV_AUDIENCE;

/// A fresh STS-signed user card from the server's own NewSecurityTokenService.
fn sts_card(server: &Server, card: CardType) -> Vec<u8> {
    let request = env().client.request(&RequestOptions::new(card)).unwrap();
    let reply = server.post(NEW, &request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    issued_card(&reply.body).unwrap()
}

fn sts_pem() -> std::path::PathBuf {
    env().pki("sts-signing")
}

/// Decrypts the EncryptedAssertion with the audience's key (xmlsec1) and returns the document.
fn decrypt(body: &[u8]) -> String {
    let key = env().dir.join("pki").join("dev-audience-key.pem");
    let out = common::xmlsec(&["--decrypt", "--privkey-pem", key.to_str().unwrap()], body)
        .unwrap_or_else(|e| panic!("xmlsec1 cannot decrypt: {e}"));
    String::from_utf8(out).unwrap()
}

fn fault_code(text: &str) -> Option<&str> {
    let start = text.find("<faultcode>")? + "<faultcode>".len();
    Some(&text[start..start + text[start..].find('<')?])
}

fn fault_actor(text: &str) -> Option<&str> {
    let start = text.find("<faultactor>")? + "<faultactor>".len();
    Some(&text[start..start + text[start..].find('<')?])
}

#[test]
fn issues_an_encrypted_signed_oiosaml_assertion_that_xmlsec1_verifies_and_decrypts() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    for placement in [CardPlacement::ActAs, CardPlacement::Header] {
        let card = sts_card(&server, CardType::User);
        let request = sosi2oiosaml_request(&card, AUDIENCE, placement);
        let reply = server.post(SOSI2OIOSAML, &request);
        let text = reply.text();
        assert_eq!(reply.status, 200, "{placement:?}: {text}");
        assert!(text.contains("<saml:EncryptedAssertion"), "{text}");
        assert!(text.contains("RequestSecurityTokenResponseCollection"), "{text}");
        assert!(text.contains(&format!("<wsa:Address>{AUDIENCE}</wsa:Address>")), "AppliesTo echoed: {text}");
        assert!(text.contains("wst:Lifetime"), "{text}");
        // RelatesTo is the request's MessageID, the Context is echoed.
        let request_text = String::from_utf8(request.clone()).unwrap();
        let id_start = request_text.find("<wsa:MessageID>").unwrap() + "<wsa:MessageID>".len();
        let message_id = &request_text[id_start..id_start + 45];
        assert!(text.contains(&format!(">{message_id}</wsa:RelatesTo>")), "{text}");
        assert!(text.contains(&format!("Context=\"{message_id}\"")), "{text}");
        common::assert_oio_header_signed_by_sts(&reply.body);

        let decrypted = decrypt(&reply.body);
        assert!(decrypted.contains("DK-SAML-2.0"), "{decrypted}");
        assert!(decrypted.contains(segl::dev::pki::DEV_CPR), "CPR attribute: {decrypted}");
        assert!(decrypted.contains("Lars Larsen"), "CommonName: {decrypted}");
        assert!(decrypted.contains(&format!("<saml:Audience>{AUDIENCE}</saml:Audience>")), "{decrypted}");
        assert!(decrypted.contains("RidNumberIdentifier"), "{decrypted}");
        assert!(decrypted.contains("urn:liberty:disco:2006-08:DiscoveryEPR"), "bootstrap card: {decrypted}");
        // The assertion's own signature, by the STS key, selected by its Id.
        let verified = {
            let args = common::xmlsec_assertion_args(&sts_pem());
            common::xmlsec(&args.iter().map(String::as_str).collect::<Vec<_>>(), decrypted.as_bytes())
        };
        assert!(verified.is_ok(), "xmlsec1 rejects the assertion signature: {verified:?}\n{decrypted}");
    }
    let audit = server.audit();
    assert!(audit.contains("\"kind\":\"oiosaml\""), "{audit}");
}

/// Posts a Sosi2OIOSaml request and checks it is refused with `code`, a signed OIO fault.
fn assert_refused(server: &Server, request: &[u8], code: &str, text_part: &str) -> String {
    let reply = server.post(SOSI2OIOSAML, request);
    let text = reply.text();
    assert_eq!(reply.status, 500, "{text}");
    assert_eq!(fault_code(&text), Some(code), "{text}");
    assert!(text.contains(text_part), "{text_part:?} not in {text}");
    assert!(fault_actor(&text).is_some_and(|a| a.starts_with("dk:sosi:sts:")), "{text}");
    // A request that could not be parsed has no MessageID to relate to.
    assert!(text.contains("<wsa:RelatesTo") || text.contains("not acceptable XML"), "{text}");
    common::assert_oio_header_signed_by_sts(&reply.body);
    text
}

#[test]
fn each_rule_refuses_with_its_oio_fault() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let card = sts_card(&server, CardType::User);

    // 5: AppliesTo names no configured audience.
    let req = sosi2oiosaml_request(&card, "https://unknown.example/", CardPlacement::ActAs);
    let text = assert_refused(&server, &req, "wst:InvalidScope", "no audience is configured");
    assert_eq!(fault_actor(&text), Some("dk:sosi:sts:ibo"));

    // 3: a card this STS did not sign: the client's own self-signed card.
    let request = env().client.request(&RequestOptions::new(CardType::User)).unwrap();
    let doc = segl::xml::Document::parse(bytes::Bytes::from(request), &Default::default()).unwrap();
    let self_signed = doc.by_id("IDCard").unwrap();
    let self_signed = segl::xml::c14n::exclusive_to_vec(&doc, self_signed, None, &[]);
    let req = sosi2oiosaml_request(&self_signed, AUDIENCE, CardPlacement::ActAs);
    assert_refused(&server, &req, "wst:FailedAuthentication", "signed by untrusted party");

    // 3: an STS card altered after signing (another CPR) says which reference failed.
    let text = String::from_utf8(card.clone()).unwrap();
    let altered = text.replace(segl::dev::pki::DEV_CPR, "0101010101");
    assert_ne!(altered, text);
    let req = sosi2oiosaml_request(altered.as_bytes(), AUDIENCE, CardPlacement::ActAs);
    assert_refused(&server, &req, "wst:FailedAuthentication", "reference #IDCard: digest mismatch");

    // 4: a system card.
    let system = sts_card(&server, CardType::System);
    let req = sosi2oiosaml_request(&system, AUDIENCE, CardPlacement::ActAs);
    assert_refused(&server, &req, "wst:InvalidRequest", "this exchange takes a user card");

    // 7: the same MessageID again for the same card.
    let req = sosi2oiosaml_request(&card, AUDIENCE, CardPlacement::ActAs);
    assert_eq!(server.post(SOSI2OIOSAML, &req).status, 200);
    assert_refused(&server, &req, "wst:InvalidRequest", "was already received");

    // 2: a second copy of the card in ActAs: two elements with one ID are refused outright
    // (the parser's duplicate-ID rule, which keeps signature wrapping from choosing a copy).
    let two = String::from_utf8(req.clone()).unwrap().replacen(
        "<wst14:ActAs>",
        &format!("<wst14:ActAs>{}", String::from_utf8(card.clone()).unwrap()),
        1,
    );
    assert_refused(&server, two.as_bytes(), "wst:InvalidRequest", "duplicate ID value \"IDCard\"");

    // 1: a header signature that does not verify is refused, not ignored.
    let bogus = String::from_utf8(sosi2oiosaml_request(&card, AUDIENCE, CardPlacement::ActAs)).unwrap().replacen(
        "</soapenv:Header>",
        "<wsse:Security><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/></wsse:Security></soapenv:Header>",
        1,
    );
    assert_refused(&server, bogus.as_bytes(), "wst:InvalidRequest", "Unable to validate envelope signature");

    // A DOCTYPE is refused before anything is read.
    let doctype = String::from_utf8(sosi2oiosaml_request(&card, AUDIENCE, CardPlacement::ActAs))
        .unwrap()
        .replacen("<soapenv:Envelope", "<!DOCTYPE x [<!ENTITY e \"e\">]><soapenv:Envelope", 1);
    let reply = server.post(SOSI2OIOSAML, doctype.as_bytes());
    assert_eq!(reply.status, 500);
    assert_eq!(fault_code(&reply.text()), Some("wst:InvalidRequest"), "{}", reply.text());
}

#[test]
fn a_card_older_than_the_audience_accepts_is_refused() {
    if !common::have_xmlsec() {
        return;
    }
    // Issued cards start 5 minutes back (spec §7.7): older than a 1-minute limit at once.
    let server = Server::start_with(|c| {
        *c = c.replace("id_card_max_age_mins = 1440", "id_card_max_age_mins = 1");
    });
    let card = sts_card(&server, CardType::User);
    let req = sosi2oiosaml_request(&card, AUDIENCE, CardPlacement::ActAs);
    assert_refused(&server, &req, "wst:FailedAuthentication", "accepts cards up to 1 minutes old");
}

#[test]
fn oio_paths_answer_http_level_refusals_in_their_own_dialect() {
    let server = Server::start();
    // A body that is not a request: an OIO fault, with the actor of the endpoint's check.
    let reply = server.post("/sts/services/Bst2Idws", b"<x/>");
    let text = reply.text();
    assert_eq!(reply.status, 500, "{text}");
    assert!(text.contains("http://www.w3.org/2005/08/addressing"), "OIO envelope: {text}");
    assert!(text.contains("<wsa:Action"), "{text}");
    assert_eq!(fault_actor(&text), Some("dk:sosi:sts:its"));
    // The same refusal on a DGWS path keeps the DGWS envelope.
    let reply = server
        .raw(b"GET /sts/services/NewSecurityTokenService HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(reply.status, 405);
    assert!(reply.text().contains("id=\"Envelope\""), "DGWS envelope: {}", reply.text());
    let reply =
        server.raw(b"GET /sts/services/Sosi2OIOSaml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(reply.status, 405);
    assert!(reply.text().contains("<wsa:Action"), "OIO envelope: {}", reply.text());
    // A body over the limit, refused by the HTTP layer on an OIO path.
    let big = format!(
        "POST /sts/services/Sosi2OIOSaml HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        100 * 1024 * 1024
    );
    let reply = server.raw(big.as_bytes());
    assert_eq!(reply.status, 413);
    assert!(reply.text().contains("<wsa:Action"), "OIO envelope: {}", reply.text());
}

#[test]
fn audiences_reload_atomically_and_a_bad_one_leaves_the_old_set_serving() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let card = sts_card(&server, CardType::User);
    let new_audience = "https://sp2.dev.segl.example/";
    let refused = server.post(SOSI2OIOSAML, &sosi2oiosaml_request(&card, new_audience, CardPlacement::ActAs));
    assert_eq!(fault_code(&refused.text()), Some("wst:InvalidScope"));

    // A second audience, encrypting to the same development certificate, added while serving.
    let text = std::fs::read_to_string(server.config_path()).unwrap();
    let cert = env().dir.join("pki").join("dev-audience.pem");
    let added = format!(
        "{text}\n[[sosi2oiosaml.audience]]\naudience = \"{new_audience}\"\ncertificate = \"{}\"\nrecipient_url = \"{new_audience}acs\"\n",
        cert.display()
    );
    std::fs::write(server.config_path(), &added).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply =
            server.post(SOSI2OIOSAML, &sosi2oiosaml_request(&card, new_audience, CardPlacement::ActAs));
        if reply.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new audience was not picked up:\n{}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // An audience whose certificate cannot be read: the whole change is refused, both
    // audiences keep serving.
    std::fs::write(
        server.config_path(),
        added.replace(
            "dev-audience.pem\"\nrecipient_url = \"https://sp2",
            "no-such.pem\"\nrecipient_url = \"https://sp2",
        ),
    )
    .unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log().contains("configuration refused") {
        assert!(std::time::Instant::now() < deadline, "no refusal logged:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(server.log().contains("no-such.pem"), "the refusal names the file:\n{}", server.log());
    for audience in [AUDIENCE, new_audience] {
        let reply = server.post(SOSI2OIOSAML, &sosi2oiosaml_request(&card, audience, CardPlacement::ActAs));
        assert_eq!(reply.status, 200, "{audience}: {}", reply.text());
    }
}
