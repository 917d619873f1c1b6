//! "Emit canonical": every token segl writes is already in exclusive canonical form, so its
//! digest is taken over the bytes as written. For each, c14n(emitted subtree) == emitted bytes:
//! the ID card (with and without its signature, user and system, both DGWS versions), its
//! SignedInfo and the header-signature shape, standing alone and inside the DGWS envelopes.

use bytes::Bytes;
use jiff::Timestamp;
use segl::exchange::dgws::envelope::{self as soap, Correlation};
use segl::exchange::error::RequestError;
use segl::exchange::Endpoint;
use segl::time::DgwsVersion;
use segl::token::idcard::{NameId, SystemLog, UserLog, CARD_END};
use segl::token::{CardType, IdCard};
use segl::xml::c14n::{self, Canonicalizer, Method};
use segl::xml::dsig::algorithm::{SignatureAlgorithm, DSIG_NS};
use segl::xml::dsig::sign::{self, Reference};
use segl::xml::emit::CanonicalWriter;
use segl::xml::{Document, Limits, NodeId};

fn parse(bytes: &[u8]) -> Document {
    Document::parse(Bytes::copy_from_slice(bytes), &Limits::default())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

fn exclusive(doc: &Document, n: NodeId, exclude: Option<NodeId>) -> String {
    String::from_utf8(c14n::exclusive_to_vec(doc, n, exclude, &[])).unwrap()
}

fn whole(doc: &Document) -> String {
    let mut out = Vec::new();
    Canonicalizer::default().document(doc, Method::Exclusive(&[]), &mut out);
    String::from_utf8(out).unwrap()
}

/// A card with values that need escaping wherever escaping can happen.
fn card(card_type: CardType, version: DgwsVersion) -> IdCard {
    let t = |s: &str| s.parse::<Timestamp>().unwrap();
    IdCard {
        version,
        issue_instant: t("2026-01-01T09:55:00Z"),
        issuer: "SEGL-DEV-STS".into(),
        name_id: NameId {
            format: "medcom:other".into(),
            value:
                "SubjectDN={SERIALNUMBER=CVR:20921897-RID:1 + CN=Lars \"L\" <Larsen> & Co},IssuerDN={CN=x}"
                    .into(),
        },
        holder_of_key: true,
        not_before: t("2026-01-01T09:55:00Z"),
        not_on_or_after: t("2026-01-02T09:55:00Z"),
        id_card_id: "hRyC+neSxkdwzcYGLfF/Ww==".into(),
        card_type,
        authentication_level: if card_type == CardType::User { 4 } else { 3 },
        ocess_cert_hash: Some("fp4BunSUnP2Bxf10kOP6PRiw7Dw=".into()),
        user: (card_type == CardType::User).then(|| UserLog {
            cpr: Some("0501792275".into()),
            given_name: "Lars\r\n".into(),
            surname: "Larsen & <S\u{f8}n>".into(),
            email: Some("lars@example".into()),
            role: Some("7170".into()),
            authorization_code: Some("J0184".into()),
            occupation: Some("L\u{e6}ge\t".into()),
        }),
        system: SystemLog {
            it_system_name: "Testby \"Journal\"".into(),
            care_provider_id: "20921897".into(),
            care_provider_id_format: "medcom:cvrnumber".into(),
            care_provider_name: "L\u{e6}gehuset Testby".into(),
        },
    }
}

fn signed_card(c: &IdCard) -> (Vec<u8>, Vec<u8>) {
    let unsigned = c.prepare_signature(SignatureAlgorithm::RsaSha1, "MIIBdGVzdA==");
    let digest = unsigned.signed_info_digest().to_vec();
    (unsigned.finish(&[0x5a; 256]), digest)
}

#[test]
fn id_cards_are_emitted_in_canonical_form() {
    for card_type in [CardType::User, CardType::System] {
        for version in [DgwsVersion::V1_0_1, DgwsVersion::V1_0] {
            let c = card(card_type, version);
            let mut unsigned = CanonicalWriter::default();
            c.write_unsigned(&mut unsigned);
            unsigned.raw(CARD_END);
            let doc = parse(unsigned.as_bytes());
            assert_eq!(
                exclusive(&doc, doc.root(), None).as_bytes(),
                unsigned.as_bytes(),
                "{card_type:?} {version:?}"
            );

            let (signed, signed_info_digest) = signed_card(&c);
            let doc = parse(&signed);
            let root = doc.root();
            assert_eq!(
                exclusive(&doc, root, None).as_bytes(),
                &signed[..],
                "signed card {card_type:?} {version:?}"
            );
            let sig = doc.child(root, DSIG_NS, "Signature").unwrap();
            // The enveloped-signature transform's input is what prepare_signature hashed.
            assert_eq!(exclusive(&doc, root, Some(sig)).as_bytes(), unsigned.as_bytes());
            // The embedded SignedInfo canonicalizes to what the HSM was asked to sign.
            let si = doc.child(sig, DSIG_NS, "SignedInfo").unwrap();
            let canonical_si = c14n::exclusive_to_vec(&doc, si, None, &[]);
            assert_eq!(SignatureAlgorithm::RsaSha1.digest().digest(&canonical_si), signed_info_digest);
            // And so does the card inside the envelope that carries it.
            let env = soap::issue_response(&correlation(version), now(), &signed, "SEGL-DEV-STS");
            let doc = parse(&env);
            let card = doc.by_id("IDCard").unwrap();
            assert_eq!(exclusive(&doc, card, None).as_bytes(), &signed[..]);
        }
    }
}

fn now() -> Timestamp {
    "2026-01-01T10:00:00Z".parse().unwrap()
}

fn correlation(version: DgwsVersion) -> Correlation {
    Correlation { message_id: "AAABjL1R5wAi+Y1lR3PX8FNPU0k=".into(), version, context: "www.sosi.dk".into() }
}

/// The DGWS envelopes are not signed and, like seal's and the STS's, declare every namespace
/// on `soapenv:Envelope`, so the envelope as a whole is not in exclusive canonical form (its
/// canonical form drops the unused declarations). What is signed inside them is: the card, its
/// signature and SignedInfo are byte-identical to their canonical forms in place.
#[test]
fn tokens_inside_dgws_envelopes_are_canonical_in_place() {
    let (signed, _) = signed_card(&card(CardType::User, DgwsVersion::V1_0_1));
    let envelopes = [
        (
            "issue response",
            soap::issue_response(&correlation(DgwsVersion::V1_0_1), now(), &signed, "SEGL-DEV-STS"),
        ),
        ("request", segl::dev::client::request_envelope(&signed, "AAAB", "2026-01-01T10:00:00Z")),
    ];
    for (name, bytes) in envelopes {
        let doc = parse(&bytes);
        let card = doc.by_id("IDCard").expect("card");
        let sig = doc.child(card, DSIG_NS, "Signature").expect("signature");
        let si = doc.child(sig, DSIG_NS, "SignedInfo").expect("SignedInfo");
        for n in [card, sig, si] {
            let emitted = &bytes[doc.span(n)];
            let mut canonical = exclusive(&doc, n, None).into_bytes();
            if n == si {
                // The embedded SignedInfo inherits ds from ds:Signature; as an apex it declares it.
                canonical = String::from_utf8(canonical)
                    .unwrap()
                    .replacen(" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"", "", 1)
                    .into_bytes();
            }
            assert_eq!(
                String::from_utf8_lossy(&canonical),
                String::from_utf8_lossy(emitted),
                "{name}: {}",
                doc.qname(n)
            );
        }
    }
    // The fault envelope carries no token; it must still be well-formed and escape the reason.
    let error = RequestError::NotStsRequest("a <reason> & \"more\"".into());
    let fault = soap::fault_response(
        &correlation(DgwsVersion::V1_0),
        now(),
        &error.fault(Some(Endpoint::NewSecurityTokenService), "http://www.sosi.dk/sts"),
    );
    let doc = parse(&fault);
    let text = whole(&doc);
    assert!(text.contains("a &lt;reason&gt; &amp; \"more\""), "{text}");
}

#[test]
fn header_signature_shape_is_canonical() {
    let part = {
        let mut w = CanonicalWriter::default();
        w.leaf(
            "wsa:MessageID",
            &[("wsa", "http://www.w3.org/2005/08/addressing"), ("wsu", segl::xml::parse::WSU_NS)],
            &[("wsu:Id", "messageID")],
            "urn:uuid:1",
        );
        w.into_bytes()
    };
    let parts = [&part[..]];
    let prepared = sign::prepare_references(
        &[Reference { uri: "#messageID", canonical_parts: &parts, enveloped: false }],
        SignatureAlgorithm::RsaSha256,
        "MIIB",
    );
    let signature = sign::finish(&prepared, &[1, 2, 3]);
    let doc = parse(&signature);
    assert_eq!(exclusive(&doc, doc.root(), None).as_bytes(), &signature[..]);
    assert_eq!(doc.attribute(doc.root(), "Id"), None, "header signatures carry no Id");
    let si = doc.child(doc.root(), DSIG_NS, "SignedInfo").unwrap();
    let canonical_si = c14n::exclusive_to_vec(&doc, si, None, &[]);
    assert_eq!(SignatureAlgorithm::RsaSha256.digest().digest(&canonical_si), prepared.signed_info_digest);
    let doc = parse(&part);
    assert_eq!(exclusive(&doc, doc.root(), None).as_bytes(), &part[..]);
}
