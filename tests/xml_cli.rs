//! `segl xml verify` and `segl xml c14n` as an operator runs them, on the captured messages:
//! every signature `spec/examples/README.md` marks "sig OK" verifies, every other one fails
//! and says why.

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::Engine;

fn segl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_segl")).args(args).env("RUST_LOG", "off").output().expect("run segl")
}

fn examples() -> Option<PathBuf> {
    let dir = segl::spec_data::spec_dir()?.join("examples");
    dir.is_dir().then_some(dir)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// "sig OK": verifies as-is.
const SIG_OK: &[&str] = &[
    "unsealed-sts-request-1.compact.xml",
    "unsealed-sts-request-2.compact.xml",
    "unsealed-sts-response-1.compact.xml",
    "unsealed-sts-response-2.compact.xml",
    "unsealed-bootstrap-token.xml",
    "seal.java-OIOBootstrapToIdentityToken-NemLog-In_bootstrap_valid_signature.xml",
    "seal.java-oiosaml-examples-NemLog-in_assertion_valid_signature.xml",
    "seal.java-oiosaml-examples-NemLog-in_sha256_assertion.xml",
    "seal.java-oiosaml-examples-test-new-nemlogin-authentication-assertion-2.xml",
];

/// Files whose signatures do not verify as they are, with the reason segl must give.
const NOT_OK: &[(&str, &str)] = &[
    // "sig OK after compaction": pretty-printed after signing.
    ("unsealed-sts-request-1.xml", "digest mismatch"),
    ("unsealed-sts-request-2.xml", "digest mismatch"),
    ("unsealed-sts-response-1.xml", "digest mismatch"),
    ("unsealed-sts-response-2.xml", "digest mismatch"),
    ("seal.java-OIOBootstrapToIdentityToken-NemLog-In_bootstrap.xml", "digest mismatch"),
    ("seal.java-oiosaml-examples-test-new-nemlogin-authentication-assertion-1.xml", "digest mismatch"),
    ("seal.java-oiosaml-examples-seal-generated-test-oiosamlassertion.xml", "digest mismatch"),
    // "signature does not verify".
    ("unsealed-assertion.xml", "digest mismatch"),
    ("seal.java-oiosaml-examples-test-oiosamljava-authentication-assertion.xml", "digest mismatch"),
    // "dummy sig".
    ("seal.java-stslevel3request.xml", "digest mismatch"),
    ("seal.java-stslevel3response.xml", "digest mismatch"),
    ("seal.java-stslevel4request.xml", "digest mismatch"),
    ("seal.java-stslevel4response.xml", "digest mismatch"),
    ("seal.java-idwsh-examples-OIO WS-Trust response.xml", "digest mismatch"),
    ("seal.java-idwsh-examples-IDWS-H Identity Token.xml", "digest mismatch"),
    ("seal.java-dgws-level4.xml", "missing element Transforms"),
    ("seal.java-IDCardToOIOSaml-OIO WS-Trust request.xml", "bad base64"),
    ("seal.java-IDCardToOIOSaml-OIO WS-Trust response.xml", "bad base64"),
    ("seal.java-OIOSamlToIDCard-OIO WS-Trust request.xml", "bad base64"),
    ("seal.java-OIOSamlToIDCard-OIO WS-Trust response.xml", "bad base64"),
    // Historical drafts and fixtures in shapes the federation never used.
    ("seal.java-DGWS-FullExample-signed.xml", "missing element Transforms"),
    ("seal.java-SignatureSamples.xml", "does not resolve"),
    // Not well-formed on purpose.
    ("seal.java-dgws-invalid.xml", "malformed XML"),
];

#[test]
fn every_sig_ok_example_verifies() {
    let Some(dir) = examples() else {
        println!("SKIP: reference data not found (set SEGL_SPEC_DIR)");
        return;
    };
    for name in SIG_OK {
        let out = segl(&["xml", "verify", dir.join(name).to_str().unwrap()]);
        let text = stdout(&out);
        assert!(out.status.success(), "{name}: {}\n{}", text, stderr(&out));
        assert!(text.contains("result:    OK"), "{name}: {text}");
        assert!(!text.contains("FAILED") && !text.contains("MISMATCH"), "{name}: {text}");
    }
}

#[test]
fn every_other_example_fails_with_its_reason() {
    let Some(dir) = examples() else {
        println!("SKIP: reference data not found (set SEGL_SPEC_DIR)");
        return;
    };
    for (name, reason) in NOT_OK {
        let out = segl(&["xml", "verify", dir.join(name).to_str().unwrap()]);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!out.status.success(), "{name} verified:\n{all}");
        assert!(all.contains(reason), "{name}: expected {reason:?} in:\n{all}");
    }
    // Files without any signature say so.
    let out = segl(&["xml", "verify", dir.join("seal.java-stserrorreply.xml").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no ds:Signature"), "{}", stderr(&out));
}

#[test]
fn verify_explains_references_and_checks_the_expected_certificate() {
    let Some(dir) = examples() else {
        println!("SKIP: reference data not found (set SEGL_SPEC_DIR)");
        return;
    };
    let file = dir.join("unsealed-sts-request-1.compact.xml");
    let out = segl(&["xml", "verify", "--explain", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    for expected in [
        "profile:   enveloped",
        "reference #IDCard",
        "covers:     /soapenv:Envelope/soapenv:Body/wst:RequestSecurityToken/wst:Claims/saml:Assertion (id \"IDCard\")",
        "transforms: enveloped-signature, exc-c14n",
        "expected:   fp4BunSUnP2Bxf10kOP6PRiw7Dw=",
        "computed:   fp4BunSUnP2Bxf10kOP6PRiw7Dw= (match)",
        "canonical bytes hashed",
        "canonical SignedInfo",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // The header signature of the STS response: every part it covers is listed.
    let out = segl(&["xml", "verify", dir.join("unsealed-sts-response-2.compact.xml").to_str().unwrap()]);
    let text = stdout(&out);
    assert!(text.contains("WS-Security header"), "{text}");
    for part in ["wsa:MessageID", "wsa:Action", "wsa:RelatesTo", "wsu:Timestamp", "soapenv:Body"] {
        assert!(text.contains(part), "{part} not listed:\n{text}");
    }

    // --cert: the certificate in KeyInfo must be the expected one.
    let xml = std::fs::read_to_string(&file).unwrap();
    let b64 = segl::spec_data::first_certificate_b64(&xml).unwrap();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let pem = |der: &[u8]| {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
    };
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let right = tmp.join(format!("xml-cli-right-{}.pem", std::process::id()));
    std::fs::write(&right, pem(&der)).unwrap();
    let out = segl(&["xml", "verify", "--cert", right.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    let other = segl::spec_data::example("unsealed-sts-response-1.compact.xml").unwrap();
    let other_der = base64::engine::general_purpose::STANDARD
        .decode(segl::spec_data::first_certificate_b64(&other).unwrap())
        .unwrap();
    let wrong = tmp.join(format!("xml-cli-wrong-{}.pem", std::process::id()));
    std::fs::write(&wrong, pem(&other_der)).unwrap();
    let out = segl(&["xml", "verify", "--cert", wrong.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("not the expected signer certificate"), "{}", stdout(&out));
}

#[test]
fn c14n_writes_the_canonical_bytes() {
    let Some(dir) = examples() else {
        println!("SKIP: reference data not found (set SEGL_SPEC_DIR)");
        return;
    };
    let file = dir.join("unsealed-sts-request-1.compact.xml");
    let file = file.to_str().unwrap();
    let card = segl(&["xml", "c14n", "--id", "IDCard", file]);
    assert!(card.status.success(), "{}", stderr(&card));
    let card = card.stdout;
    assert!(card.starts_with(b"<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\""));
    assert!(card.ends_with(b"</saml:Assertion>"));
    // Without its signature, the card's canonical form is what the DigestValue covers.
    let text = String::from_utf8(card).unwrap();
    let (before, rest) = text.split_once("<ds:Signature").unwrap();
    let after = &rest[rest.find("</ds:Signature>").unwrap() + "</ds:Signature>".len()..];
    let digest =
        segl::xml::dsig::algorithm::DigestAlgorithm::Sha1.digest(format!("{before}{after}").as_bytes());
    assert_eq!(base64::engine::general_purpose::STANDARD.encode(digest), "fp4BunSUnP2Bxf10kOP6PRiw7Dw=");

    let whole = segl(&["xml", "c14n", file]).stdout;
    assert!(whole.starts_with(b"<soapenv:Envelope xmlns:soapenv="), "the XML declaration is not output");
    let inclusive = segl(&["xml", "c14n", "--inclusive", "--id", "IDCard", file]).stdout;
    let inclusive = String::from_utf8(inclusive).unwrap();
    // Inclusive c14n renders every in-scope namespace of the envelope on the apex.
    assert!(inclusive.contains("xmlns:wst=") && inclusive.contains("xmlns:soapenv="), "{inclusive}");
    let with_list = segl(&["xml", "c14n", "--prefixes", "wst soapenv", "--id", "IDCard", file]).stdout;
    let with_list = String::from_utf8(with_list).unwrap();
    assert!(with_list.contains("xmlns:wst=") && !with_list.contains("xmlns:medcom=\"http"), "{with_list}");
    let missing = segl(&["xml", "c14n", "--id", "nope", file]);
    assert!(!missing.status.success() && stderr(&missing).contains("no element with ID \"nope\""));
}
