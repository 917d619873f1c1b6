//! The OIO WS-Trust request path up to the point where the server context is needed: the
//! admission hints on the raw bytes, the parser, `oio::request::read`, the header signature
//! (when the request says it is signed), every ActAs and header token through the token
//! verifier, the ID card reader and the CertificateInfo reader (Sosi2OIOSaml's pure steps,
//! with its presented-card selection reproduced), and every `xenc:EncryptedData` through the
//! decrypter with a fixed key, a wrong-length key, a rejection or an unavailable unwrapper.
//!
//! Besides "a typed answer, never a panic", what the reader returns must be where it says:
//! every handle is an element of the document in its place, an ActAs token is a child of the
//! ActAs or of the header `wsse:Security`, a verified header vouches for the Body the reader
//! read, and the decrypter's structural errors do not depend on the key.
//!
//! Seeds: `SEGL_FUZZ_WRITE_SEEDS=<dir>` makes the target write Sosi2OIOSaml requests built by
//! `segl::dev::oio::sosi2oiosaml_request` (the STS-signed card of a captured unsealed request,
//! in ActAs and in the header) into `<dir>` and exit (see tests/fuzz/README.md).
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use segl::exchange::error::RequestError;
use segl::exchange::hints::{self, ClientHint};
use segl::exchange::oio::request::{self, OioRequest};
use segl::token::bootstrap::{BootstrapToken, TokenProfile};
use segl::token::oiosaml::CertificateInfo;
use segl::token::privileges::{Privileges, PRIVILEGES_2, PRIVILEGES_3};
use segl::token::{ns, IdCard};
use segl::xml::dsig::{verify_element, verify_header, Policy};
use segl::xml::enc::{decrypt_encrypted_data, DecryptError, KeyTransport, KeyUnwrapError};
use segl::xml::{Document, Limits, NodeId};

const LIMITS: Limits = Limits { max_depth: 32, max_attributes: 16, max_nodes: 4096 };

/// The captured request whose STS-signed `saml:Assertion id="IDCard"` the seeds present.
const SEED_CARD_SOURCE: &str = "../shared/spec/examples/unsealed-sts-request-2.compact.xml";

fuzz_target!(
    init: {
        if let Some(dir) = std::env::var_os("SEGL_FUZZ_WRITE_SEEDS") {
            write_seeds(std::path::Path::new(&dir));
            std::process::exit(0);
        }
    },
    |data: &[u8]| {
        check_hints(data);
        let Ok(doc) = Document::parse(bytes::Bytes::copy_from_slice(data), &LIMITS) else {
            return;
        };
        let elements: HashSet<NodeId> = std::iter::once(doc.root()).chain(doc.descendants(doc.root())).collect();
        let unwrap_choice = data.last().copied().unwrap_or(0);

        match request::read(&doc) {
            Ok(rst) => exchange_steps(&doc, &elements, &rst),
            Err(e) => assert!(matches!(e, RequestError::NotStsRequest(_)), "read answered {e:?}"),
        }

        for &n in &elements {
            if doc.is(n, ns::SAML, "NameID") {
                check_certificate_info(&doc.text(n));
            }
            if doc.is(n, ns::XENC, "EncryptedData") {
                check_decryption(&doc, n, unwrap_choice);
            }
        }
        // Anything else is refused as such, before any key is asked for.
        if !doc.is(doc.root(), ns::XENC, "EncryptedData") {
            let answer = decrypt_encrypted_data(&doc, doc.root(), |_, _| -> Result<Vec<u8>, KeyUnwrapError> {
                panic!("unwrapper asked for a non-EncryptedData element")
            });
            assert_eq!(answer, Err(DecryptError::NotEncryptedData));
        }
    }
);

/// Admission hints are total functions of the raw bytes, and what they report is well formed.
fn check_hints(data: &[u8]) {
    let oio = hints::oio(data);
    assert_eq!(oio.priority, None, "OIO requests carry no priority");
    for client in [oio.client, hints::dgws(data).client].into_iter().flatten() {
        if let ClientHint::Cvr(cvr) = client {
            assert!(!cvr.is_empty() && cvr.len() <= 16 && cvr.bytes().all(|b| b.is_ascii_digit()), "{cvr:?}");
        }
    }
}

/// `n` is the child `{ns}local` of `parent`.
fn is_child(doc: &Document, n: NodeId, parent: NodeId, ns: &str, local: &str) -> bool {
    doc.parent(n) == Some(parent) && doc.is(n, ns, local)
}

/// What the reader says, checked against the document; then Sosi2OIOSaml's pure steps.
fn exchange_steps(doc: &Document, elements: &HashSet<NodeId>, rst: &OioRequest) {
    let handles = [Some(rst.envelope), rst.header, Some(rst.body), rst.security, Some(rst.rst)];
    for n in handles.into_iter().flatten().chain(rst.act_as.iter().copied()) {
        assert!(elements.contains(&n), "{n:?} is not an element of the document");
    }
    assert_eq!(rst.envelope, doc.root());
    assert!(doc.is(rst.envelope, ns::SOAP, "Envelope"));
    assert!(is_child(doc, rst.body, rst.envelope, ns::SOAP, "Body"));
    if let Some(h) = rst.header {
        assert!(is_child(doc, h, rst.envelope, ns::SOAP, "Header"));
    }
    if let Some(s) = rst.security {
        assert!(rst.header.is_some_and(|h| is_child(doc, s, h, ns::WSSE, "Security")));
    }
    assert!(is_child(doc, rst.rst, rst.body, ns::WST_1_3, "RequestSecurityToken"));
    assert_eq!(
        rst.signed,
        rst.security.is_some_and(|s| doc.children(s).any(|c| doc.is(c, ns::DS, "Signature")))
    );
    for &token in &rst.act_as {
        let parent = doc.parent(token);
        let in_act_as = parent.is_some_and(|p| {
            doc.parent(p) == Some(rst.rst)
                && (doc.is(p, ns::WST_1_4, "ActAs") || doc.is(p, ns::WST_1_3, "ActAs"))
        });
        assert!(
            in_act_as || (rst.security.is_some() && parent == rst.security),
            "ActAs token {token:?} out of place"
        );
        // A reference in ActAs is resolved, never returned as the token.
        assert!(!in_act_as || !doc.is(token, ns::WSSE, "SecurityTokenReference"));
    }
    let _ = request::claim(&rst.claims, "dk:gov:saml:attribute:CprNumberIdentifier");

    if rst.signed {
        if let Ok(v) = verify_header(doc, &Policy::FEDERATION) {
            assert_eq!(v.body, rst.body, "the verified Body is not the one read");
            assert_eq!(Some(v.security), rst.security);
            assert_eq!(Some(doc.text(v.message_id).trim()), rst.message_id.as_deref());
            assert_eq!(doc.parent(v.signature), rst.security);
        }
    }

    // Every token presented, as Sosi2OIOSaml would read it if it were the presented one.
    let header_tokens = rst.security.map(|s| doc.children(s).collect::<Vec<_>>()).unwrap_or_default();
    let mut seen = HashSet::new();
    for token in rst.act_as.iter().copied().chain(header_tokens) {
        if !seen.insert(token) {
            continue;
        }
        if let Ok(v) = verify_element(doc, token, &Policy::FEDERATION) {
            assert_eq!(v.signed_element, token);
            assert_eq!(doc.parent(v.signature), Some(token));
        }
        if let Ok(card) = IdCard::from_element(doc, token) {
            check_certificate_info(&card.name_id.value);
        }
        // As BST2SOSI and OIOSaml2Sosi read a bootstrap token or an OIOSAML assertion, and the
        // OIO-BPP privileges it may carry.
        if let Ok(bst) = BootstrapToken::from_element(doc, token) {
            let _ = bst.profile();
            for profile in [TokenProfile::Oioh3Bst, TokenProfile::Oioh2Bst, TokenProfile::Oio3Bst] {
                if let Some(name) = bst.missing_attribute(profile) {
                    assert!(profile.required_attributes().contains(&name));
                }
            }
            for name in [PRIVILEGES_2, PRIVILEGES_3] {
                if let Some(value) = bst.attribute(name) {
                    if let Ok(p) = Privileges::from_base64(value, &Limits::default()) {
                        let _ = p.at_cvr("20921897");
                    }
                }
            }
        }
    }

    // Sosi2OIOSaml's own order: the presented card, verified, read from the verified element.
    if let Some(card) = presented_card(doc, rst) {
        if let Ok(v) = verify_element(doc, card, &Policy::FEDERATION) {
            if let Ok(card) = IdCard::from_element(doc, v.signed_element) {
                if card.name_id.format == "medcom:other" {
                    check_certificate_info(&card.name_id.value);
                }
            }
        }
    }
}

/// `sosi2oiosaml::presented_card`: the one ActAs token, else the header's saml:Assertion.
fn presented_card(doc: &Document, rst: &OioRequest) -> Option<NodeId> {
    let card = match rst.act_as.as_slice() {
        [one] => *one,
        [] => rst.security.and_then(|s| doc.child(s, ns::SAML, "Assertion"))?,
        _ => return None,
    };
    doc.is(card, ns::SAML, "Assertion").then_some(card)
}

/// `CertificateInfo::parse` never panics, and the serial it reports is the decimal
/// `CertSerial` in lower-case hex (checked against `u128` where the serial fits).
fn check_certificate_info(name_id: &str) {
    let Some(info) = CertificateInfo::parse(name_id) else { return };
    let hex = &info.serial_hex;
    assert!(!hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{hex:?}");
    assert!(hex == "0" || !hex.starts_with('0'), "leading zero in {hex:?}");
    assert!(info.issuer.starts_with("C="));
    let _ = (info.name_id(), info.rid());
    if let Some(serial) = cert_serial(name_id) {
        if let Ok(n) = serial.trim().parse::<u128>() {
            assert_eq!(*hex, format!("{n:x}"), "CertSerial {serial:?}");
        }
    }
}

/// The text of `CertSerial={…}`, found the way the reader finds it (first occurrence).
fn cert_serial(name_id: &str) -> Option<&str> {
    const KEY: &str = "CertSerial=";
    let rest = name_id[name_id.find(KEY)? + KEY.len()..].strip_prefix('{')?;
    Some(&rest[..rest.find('}')?])
}

/// Decryption with the unwrapper the input's last byte picks, then with a rejecting one and
/// one returning a key of the wrong length: a structural answer is the same for all three.
fn check_decryption(doc: &Document, n: NodeId, choice: u8) {
    let chosen = decrypt_encrypted_data(doc, n, |_: KeyTransport, _: &[u8]| match choice % 4 {
        0 => Ok(vec![0x42; 16]),
        1 => Ok(vec![0x42; 32]),
        2 => Err(KeyUnwrapError::Rejected),
        _ => Err(KeyUnwrapError::Unavailable),
    });
    if choice % 4 == 3 {
        assert!(chosen.is_err(), "decrypted without a key");
    }
    if let Ok(p) = &chosen {
        assert!(std::str::from_utf8(p).is_ok());
    }
    let rejected = decrypt_encrypted_data(doc, n, |_, _| Err(KeyUnwrapError::Rejected));
    let wrong_length = decrypt_encrypted_data(doc, n, |_, _| Ok(vec![0x42; 7]));
    let structural = |r: &Result<Vec<u8>, DecryptError>| match r {
        Err(DecryptError::Undecryptable | DecryptError::KeyUnavailable) | Ok(_) => None,
        Err(e) => Some(e.clone()),
    };
    assert_eq!(structural(&rejected), structural(&wrong_length));
    assert_eq!(structural(&chosen), structural(&rejected));
}

/// Writes the Sosi2OIOSaml seed requests into `dir`.
fn write_seeds(dir: &std::path::Path) {
    use segl::dev::oio::{sosi2oiosaml_request, CardPlacement};
    let source = std::env::var("SEGL_FUZZ_SEED_CARD").unwrap_or_else(|_| SEED_CARD_SOURCE.to_owned());
    let bytes = std::fs::read(&source).unwrap_or_else(|e| panic!("{source}: {e}"));
    let doc = Document::parse(bytes::Bytes::from(bytes), &Limits::default()).expect("the seed source parses");
    let card = std::iter::once(doc.root())
        .chain(doc.descendants(doc.root()))
        .find(|&n| doc.is(n, ns::SAML, "Assertion") && doc.attribute(n, "id").as_deref() == Some("IDCard"))
        .expect("the seed source holds a saml:Assertion id=\"IDCard\"");
    let card = segl::xml::c14n::exclusive_to_vec(&doc, card, None, &[]);
    std::fs::create_dir_all(dir).expect("seed directory");
    for (name, placement) in [("actas", CardPlacement::ActAs), ("header", CardPlacement::Header)] {
        let req = sosi2oiosaml_request(&card, "https://oio.fuzz.example/audience", placement);
        // The seed reaches the end of the pipeline: it reads, and its card verifies and reads.
        let parsed = Document::parse(bytes::Bytes::copy_from_slice(&req), &LIMITS).expect("seed parses");
        let rst = request::read(&parsed).expect("seed reads");
        let presented = presented_card(&parsed, &rst).expect("seed presents a card");
        let verified = verify_element(&parsed, presented, &Policy::FEDERATION).expect("seed card verifies");
        let info = IdCard::from_element(&parsed, verified.signed_element)
            .ok()
            .and_then(|c| CertificateInfo::parse(&c.name_id.value));
        assert!(info.is_some(), "seed card's NameID is a CertificateInfo");
        let path = dir.join(format!("seed-sosi2oiosaml-{name}.xml"));
        std::fs::write(&path, &req).expect("write seed");
        eprintln!("wrote {} ({} bytes)", path.display(), req.len());
    }
}
