//! The OIO WS-Trust request reader against the messages clients really send: the captured
//! unsealed request and the seal.java samples (reference data read in place from
//! `$SEGL_SPEC_DIR`; skipped with a message when absent). Each is read as segl reads a request
//! (the exchange rules come after this and are tested end to end elsewhere).

use bytes::Bytes;
use segl::exchange::oio::request::{self, OioRequest};
use segl::token::ns;
use segl::xml::{Document, Limits};

fn read(name: &str) -> Option<(Document, OioRequest)> {
    let Some(bytes) = segl::spec_data::example(name) else {
        eprintln!("SKIP {name}: reference data not found (set SEGL_SPEC_DIR)");
        return None;
    };
    let doc =
        Document::parse(Bytes::from(bytes), &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let rst = request::read(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
    Some((doc, rst))
}

#[test]
fn unsealed_sosi2oiosaml_request() {
    let Some((doc, rst)) = read("unsealed-sts-request-2.compact.xml") else { return };
    assert_eq!(rst.message_id.as_deref(), Some("urn:uuid:52dc78f6-d8e7-4585-9d36-9f96d17d2daa"));
    assert_eq!(rst.context.as_deref(), Some("urn:uuid:bb2fa05f-dc3b-4691-ae2f-9d4e732b02aa"));
    assert_eq!(rst.applies_to.as_deref(), Some("https://saml.test1.fmk.netic.dk/fmk/"));
    assert!(!rst.signed, "unsealed sends Sosi2OIOSaml unsigned");
    let [card] = rst.act_as.as_slice() else { panic!("one ActAs token: {:?}", rst.act_as) };
    assert!(doc.is(*card, ns::SAML, "Assertion"));
    assert_eq!(doc.attribute(*card, "id").as_deref(), Some("IDCard"));
}

#[test]
fn seal_java_oio_requests() {
    for (name, tokens, signed) in [
        ("seal.java-IDCardToOIOSaml-OIO WS-Trust request.xml", 1, true),
        ("seal.java-OIOSamlToIDCard-OIO WS-Trust request.xml", 2, true),
        ("seal.java-idwsh-examples-OIO WS-Trust request - idkort i body.xml", 1, false),
        ("seal.java-idwsh-examples-OIO WS-Trust request - idkort i header.xml", 1, false),
    ] {
        let Some((doc, rst)) = read(name) else { return };
        assert_eq!(rst.act_as.len(), tokens, "{name}: {:?}", rst.act_as);
        for t in &rst.act_as {
            assert!(doc.is(*t, ns::SAML, "Assertion"), "{name}: ActAs holds {}", doc.qname(*t));
        }
        assert_eq!(rst.signed, signed, "{name}");
        assert!(
            rst.message_id.as_deref().is_some_and(|m| m.starts_with("urn:uuid:")),
            "{name}: {:?}",
            rst.message_id
        );
        assert!(rst.applies_to.is_some(), "{name}");
    }
}

/// The citizen bootstrap tokens captured from real clients, read as Bst2Idws reads them: their
/// own signature verifies (against the certificate they carry: which issuers are trusted is
/// configuration), and they announce the profile, subject and audience the exchange expects.
#[test]
fn captured_citizen_bootstrap_tokens() {
    use segl::token::bootstrap::{BootstrapToken, SubjectSerial, TokenProfile};
    let token = |name: &str| -> Option<BootstrapToken> {
        let Some(bytes) = segl::spec_data::example(name) else {
            eprintln!("SKIP {name}: reference data not found (set SEGL_SPEC_DIR)");
            return None;
        };
        let doc = Document::parse(Bytes::from(bytes), &Limits::default()).unwrap();
        let verified =
            segl::exchange::oio::tokens::verify_token(&doc, doc.root(), &segl::xml::dsig::ParseEachTime)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        Some(BootstrapToken::from_element(&doc, verified.signed_element).unwrap())
    };
    // NemLog-in's holder-of-key bootstrap token (seal.java's sample): the subject is an
    // employee certificate, whose CPR the CVR/RID register gives.
    let Some(nemlogin) =
        token("seal.java-OIOBootstrapToIdentityToken-NemLog-In_bootstrap_valid_signature.xml")
    else {
        return;
    };
    assert!(nemlogin.announces(TokenProfile::NemLoginBst));
    assert!(!nemlogin.announces(TokenProfile::LegacyBearer));
    assert_eq!(nemlogin.subject_serial(), Some(SubjectSerial::CvrRid { cvr: "25450442", rid: "27304742" }));
    assert!(nemlogin.holder_certificate.is_some());
    assert!(nemlogin.restricted_to("https://bootstrap.sts.nemlog-in.dk/"));
    assert!(!nemlogin.restricted_to("https://bootstrap.sts.nspop.dk/"));
    // unsealed's legacy bearer token (still accepted on TEST1): a citizen by PID.
    let Some(legacy) = token("unsealed-bootstrap-token.xml") else { return };
    assert!(legacy.announces(TokenProfile::LegacyBearer));
    assert!(!legacy.announces(TokenProfile::NemLoginBst));
    assert_eq!(legacy.pid(), Some("9208-2002-2-514358910503"));
    assert_eq!(legacy.attribute("Attribute"), Some("3"));
    assert!(legacy.restricted_to("https://bootstrap.sts.nspop.dk/"));
}
