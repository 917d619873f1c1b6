//! trifork/unsealed, a real Java client of the NSP STS, against the real `segl serve`:
//! unsealed builds and signs a level-4 user ID card (IdCardBuilder, IdCard.sign()), segl issues
//! it at NewSecurityTokenService, unsealed parses and validates the answer (IdCard.validate():
//! times and signature), and the issued card is checked once more with xmlsec1 against the STS
//! certificate alone (unsealed trusts any certificate in KeyInfo). Cards segl must refuse (a
//! national role the user does not hold; level 4 signed with a function certificate) reach
//! unsealed as SOAP faults.
//!
//! unsealed needs its key in software: the identities are `segl::dev::export` copies (a fresh
//! software key with the identity's subject, certified by the development CA in the token).
//!
//! Skipped (with a message) when the unsealed sources or `javac` are missing; see
//! `tests/unsealed_support`.

mod common;
mod unsealed_support;

use common::{env, Server};
use segl::dev::pki::{Identity, DEV_CPR, DEV_CVR};
use unsealed_support::Unsealed;

const NATIONAL_ROLE: &str = "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer";
const ROLE_NOT_HELD: &str = "urn:dk:healthcare:national-federation-role:code:41003:value:PlejeAssR3";

fn sts_url(server: &Server) -> String {
    format!("http://{}", server.addr)
}

/// The driver options of a level-4 card of the development user (the role register gives
/// DEV_CPR national role 40001 at DEV_CVR, the MOCES certificate's organisation).
fn card_args<'a>(sts: &'a str, keystore: &'a str, role: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "--sts",
        sts,
        "--keystore",
        keystore,
        "--cpr",
        DEV_CPR,
        "--role",
        role,
        "--occupation",
        "Lægesekretær",
        "--authorization-code",
        "J0184",
        "--email",
        "lars.larsen@testby.example",
        "--system-name",
        "Testby Journal",
        "--out",
        out,
    ]
}

#[test]
fn unsealed_gets_a_level_4_card_that_it_and_xmlsec1_verify() {
    let Some(unsealed) = Unsealed::get() else { return };
    let keystore = unsealed.keystore(Identity::Moces);
    let server = Server::start();
    let sts = sts_url(&server);
    let out = unsealed.dir.join("issued-card.xml");
    let run = unsealed.run(
        "dgws-idcard",
        &card_args(&sts, keystore.to_str().unwrap(), NATIONAL_ROLE, out.to_str().unwrap()),
    );
    assert_eq!(run.get("status"), "ok", "{run:?}\nserver log:\n{}", server.log());
    assert_eq!(run.code, Some(0));
    // unsealed's own checks passed: IdCard.validate() (NotBefore/NotOnOrAfter and the
    // enveloped signature) ran after it parsed the response.
    assert_eq!(run.get("card_validated"), "true", "{run:?}");
    // What unsealed read from the issued card.
    assert_eq!(run.get("card_issuer"), "SEGL-DEV-STS");
    assert_eq!(run.get("card_auth_level"), "4");
    // NewSecurityTokenService names the subject by its certificate (medcom:other), as NSP does.
    let subject = run.get("card_subject");
    assert!(
        subject.starts_with("SubjectDN={SERIALNUMBER=CVR:20921897-RID:52723247, CN=Lars Larsen"),
        "{subject}"
    );
    assert!(subject.contains("IssuerDN={CN=SEGL Development Issuing CA 1"), "{subject}");
    assert_eq!(run.get("card_cpr"), DEV_CPR);
    assert_eq!(run.get("card_role"), NATIONAL_ROLE);
    assert_eq!(run.get("card_care_provider_id"), DEV_CVR);
    assert_eq!(run.get("card_given_name"), "Lars");
    assert_eq!(run.get("card_surname"), "Larsen");

    // Independently: the card unsealed wrote is signed by the STS key, nothing else.
    let card = std::fs::read(&out).unwrap();
    common::xmlsec_verify(&card, &env().pki("sts-signing")).unwrap_or_else(|e| panic!("xmlsec1: {e}"));
    let text = String::from_utf8(card).unwrap();
    assert!(text.contains("id=\"IDCard\""), "{text}");
    // A card signed by the client's own key must not verify as the STS's: the check is real.
    assert!(common::xmlsec_verify(text.as_bytes(), &unsealed.certificate(Identity::Moces)).is_err());
}

#[test]
fn a_card_segl_refuses_reaches_unsealed_as_a_soap_fault() {
    let Some(unsealed) = Unsealed::get() else { return };
    let keystore = unsealed.keystore(Identity::Moces);
    let server = Server::start();
    let sts = sts_url(&server);
    let out = unsealed.dir.join("refused-card.xml");
    // A defined national role the development user does not hold at this care provider.
    let run = unsealed.run(
        "dgws-idcard",
        &card_args(&sts, keystore.to_str().unwrap(), ROLE_NOT_HELD, out.to_str().unwrap()),
    );
    assert_eq!(run.get("status"), "fault", "{run:?}\nserver log:\n{}", server.log());
    assert_eq!(run.code, Some(2));
    // unsealed's STSInvocationException carries segl's fault fields.
    assert_eq!(run.get("faultcode"), "dgws:notauthorized", "{run:?}");
    assert!(run.get("faultstring").contains("does not hold national role 41003"), "{run:?}");
    assert_eq!(run.get("faultactor"), "http://www.sosi.dk/sts", "{run:?}");
    assert!(!out.exists(), "no card is written for a refusal");

    // unsealed signs every user card at level 4 with whatever key it is given: a function
    // certificate (FOCES) is not an employee's.
    let foces = unsealed.keystore(Identity::Foces);
    let run = unsealed
        .run("dgws-idcard", &card_args(&sts, foces.to_str().unwrap(), NATIONAL_ROLE, out.to_str().unwrap()));
    assert_eq!(run.get("status"), "fault", "{run:?}\nserver log:\n{}", server.log());
    assert_eq!(run.get("faultcode"), "dgws:invalidcertificate", "{run:?}");
    assert!(run.get("faultstring").contains("employee certificate"), "{run:?}");
    assert!(!out.exists(), "no card is written for a refusal");
}
