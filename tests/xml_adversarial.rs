//! The signature verifiers against attacks, on fresh vectors signed in the development
//! SoftHSM token: a DGWS request's ID card (SIG-IDCARD), an issued-assertion-shaped SAML
//! assertion in a WS-Trust response (SIG-ASSERTION) and an OIO WS-Trust message with a
//! WS-Security header signature (SIG-HDR).
//!
//! Every vector is first shown to verify, with segl and with xmlsec1, so that each attack
//! below fails because of the attack. The attacks: the eight signature-wrapping variants as
//! SAML Raider catalogues them (XSW1–XSW8), each with the forged copy keeping the original id
//! (caught by the parser's duplicate-id rule) and without it (caught by the profile checks),
//! and the header profile's own rules (coverage, references outside the profile, key).

mod common;

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use common::env;
use segl::dev::client::RequestOptions;
use segl::dev::pki::Identity;
use segl::token::CardType;
use segl::xml::dsig::algorithm::{SignatureAlgorithm, DSIG_NS};
use segl::xml::dsig::sign::{self, Reference, SignatureSpec};
use segl::xml::dsig::{verify_element, verify_header, DsigError, Policy};
use segl::xml::emit::CanonicalWriter;
use segl::xml::{Document, Limits, NodeId, XmlError};

const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const WSA: &str = "http://www.w3.org/2005/08/addressing";
const WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const WST13: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
const WST05: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";

/// A development key in the SoftHSM token and its certificate.
struct DevSigner {
    signer: segl_pkcs11::RsaSigner,
    cert_der: Vec<u8>,
    identity: Identity,
}

impl DevSigner {
    fn open(identity: Identity) -> DevSigner {
        let env = env();
        let dev = env.config.dev.as_ref().expect("[dev] section");
        let module = segl_pkcs11::HsmModule::load(&env.config.hsm.module).expect("module");
        let token = module.token(&dev.token_label).expect("dev token");
        token.login(&segl_pkcs11::PinSource::File(dev.pin_file.clone()).read().unwrap()).expect("login");
        let signer = token.signer(identity.label()).expect("signer");
        let cert_der = env.client.certificate(identity).expect("certificate");
        DevSigner { signer, cert_der, identity }
    }

    fn sign(&self, prepared: &sign::PreparedSignature, alg: SignatureAlgorithm) -> Vec<u8> {
        let value =
            self.signer.sign_digest(alg.digest().hsm(), &prepared.signed_info_digest).expect("HSM signs");
        sign::finish(prepared, &value)
    }

    fn cert_b64(&self) -> String {
        B64.encode(&self.cert_der)
    }

    fn pem(&self) -> std::path::PathBuf {
        env().pki(self.identity.label())
    }
}

fn parse(bytes: &[u8]) -> Result<Document, XmlError> {
    Document::parse(Bytes::copy_from_slice(bytes), &Limits::default())
}

/// xmlsec1's verdict on `xml`, trusting only `cert_pem`; `id_attrs` are its `--id-attr`
/// registrations (`attribute`, `ns:element`).
fn xmlsec(xml: &[u8], cert_pem: &Path, id_attrs: &[(&str, &str)]) -> Result<(), String> {
    let file = common::write_temp(&format!("adversarial-{}.xml", std::process::id()), xml);
    let mut cmd = Command::new("xmlsec1");
    cmd.arg("--verify");
    for (attr, node) in id_attrs {
        cmd.arg(format!("--id-attr:{attr}")).arg(node);
    }
    let out = cmd
        .arg("--pubkey-cert-pem")
        .arg(cert_pem)
        .args(["--enabled-key-data", "key-name"])
        .arg(&file)
        .output()
        .map_err(|e| format!("cannot run xmlsec1: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

// ---- the three signed vectors ----

/// A DGWS request with a fresh self-signed user card (MOCES key).
fn id_card_request() -> Vec<u8> {
    env().client.request(&RequestOptions::new(CardType::User)).expect("dev client request")
}

const ASSERTION_ID: &str = "_5f0b2c1e-7d7a-4c38-9a55-0c3c7b8e1a42";

/// A WS-Trust 1.3 response carrying an assertion signed the way segl issues OIOSAML and IDWS
/// tokens: `ID="_uuid"`, `ds:Signature Id="OCESSignature"` right after `saml:Issuer`.
fn issued_assertion_response(signer: &DevSigner) -> Vec<u8> {
    let mut head = CanonicalWriter::with_capacity(512);
    head.start(
        "saml:Assertion",
        &[("saml", SAML)],
        &[("ID", ASSERTION_ID), ("IssueInstant", "2026-01-01T10:00:00Z"), ("Version", "2.0")],
    );
    head.leaf("saml:Issuer", &[], &[], "SEGL-DEV-STS");
    let mut tail = CanonicalWriter::with_capacity(1024);
    tail.start("saml:Subject", &[], &[]);
    tail.leaf(
        "saml:NameID",
        &[],
        &[("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")],
        "C=DK,O=L\u{e6}gehuset Testby,CN=Lars Larsen,Serial=CVR:20921897-RID:1234",
    );
    tail.end("saml:Subject");
    tail.start(
        "saml:Conditions",
        &[],
        &[("NotBefore", "2026-01-01T10:00:00Z"), ("NotOnOrAfter", "2026-01-01T18:00:00Z")],
    );
    tail.start("saml:AudienceRestriction", &[], &[]);
    tail.leaf("saml:Audience", &[], &[], "https://sp.example/");
    tail.end("saml:AudienceRestriction");
    tail.end("saml:Conditions");
    tail.start("saml:AttributeStatement", &[], &[]);
    tail.start("saml:Attribute", &[], &[("Name", "dk:gov:saml:attribute:CprNumberIdentifier")]);
    tail.leaf("saml:AttributeValue", &[], &[], "0501792275");
    tail.end("saml:Attribute");
    tail.end("saml:AttributeStatement");
    tail.end("saml:Assertion");
    let spec = SignatureSpec {
        id_attribute: ("Id", "OCESSignature"),
        reference_uri: &format!("#{ASSERTION_ID}"),
        algorithm: SignatureAlgorithm::RsaSha256,
        certificate_b64: &signer.cert_b64(),
    };
    let prepared = sign::prepare(&[head.as_bytes(), tail.as_bytes()], &spec);
    let signature = signer.sign(&prepared, spec.algorithm);

    let mut w = CanonicalWriter::with_capacity(4096);
    w.start("soapenv:Envelope", &[("soapenv", SOAP)], &[]);
    w.start("soapenv:Body", &[], &[]);
    w.start("wst:RequestSecurityTokenResponseCollection", &[("wst", WST13)], &[]);
    w.start("wst:RequestSecurityTokenResponse", &[], &[("Context", "urn:uuid:ctx")]);
    w.start("wst:RequestedSecurityToken", &[], &[]);
    w.raw(head.as_bytes());
    w.raw(&signature);
    w.raw(tail.as_bytes());
    w.end("wst:RequestedSecurityToken");
    w.end("wst:RequestSecurityTokenResponse");
    w.end("wst:RequestSecurityTokenResponseCollection");
    w.end("soapenv:Body");
    w.end("soapenv:Envelope");
    w.into_bytes()
}

/// The signable parts of the OIO message, each written in its own exclusive canonical form.
struct HeaderParts {
    action: Vec<u8>,
    message_id: Vec<u8>,
    relates_to: Vec<u8>,
    timestamp: Vec<u8>,
    body: Vec<u8>,
}

fn header_parts() -> HeaderParts {
    let wsa_part = |name: &str, id: &str, text: &str| {
        let mut w = CanonicalWriter::default();
        w.leaf(name, &[("wsa", WSA), ("wsu", WSU)], &[("wsu:Id", id)], text);
        w.into_bytes()
    };
    let mut ts = CanonicalWriter::default();
    ts.start("wsu:Timestamp", &[("wsu", WSU)], &[("wsu:Id", "ts")]);
    ts.leaf("wsu:Created", &[], &[], "2026-01-01T10:00:00Z");
    ts.end("wsu:Timestamp");
    let mut body = CanonicalWriter::default();
    body.start("soapenv:Body", &[("soapenv", SOAP), ("wsu", WSU)], &[("wsu:Id", "body")]);
    body.start("wst:RequestSecurityTokenResponseCollection", &[("wst", WST13)], &[]);
    body.start("wst:RequestSecurityTokenResponse", &[], &[("Context", "urn:uuid:ctx")]);
    body.leaf(
        "wst:TokenType",
        &[],
        &[],
        "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0",
    );
    body.end("wst:RequestSecurityTokenResponse");
    body.end("wst:RequestSecurityTokenResponseCollection");
    body.end("soapenv:Body");
    HeaderParts {
        action: wsa_part(
            "wsa:Action",
            "action",
            "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue",
        ),
        message_id: wsa_part("wsa:MessageID", "messageID", "urn:uuid:447cbc9c-28cd-49cf-a8d7-65a732b5624b"),
        relates_to: wsa_part("wsa:RelatesTo", "relatesTo", "urn:uuid:52dc78f6-d8e7-4585-9d36-9f96d17d2daa"),
        timestamp: ts.into_bytes(),
        body: body.into_bytes(),
    }
}

/// An OIO WS-Trust response with a header signature over the parts named in `refs`
/// (`#messageID`, `#action`, `#relatesTo`, `#ts`, `#body`; anything else is digested over
/// nothing, for references that must be refused before any digest is computed).
fn header_message(signer: &DevSigner, refs: &[&str], alg: SignatureAlgorithm, enveloped: bool) -> Vec<u8> {
    let p = header_parts();
    let part = |uri: &str| -> &[u8] {
        match uri {
            "#messageID" => &p.message_id,
            "#action" => &p.action,
            "#relatesTo" => &p.relates_to,
            "#ts" => &p.timestamp,
            "#body" => &p.body,
            _ => b"",
        }
    };
    let parts: Vec<[&[u8]; 1]> = refs.iter().map(|u| [part(u)]).collect();
    let references: Vec<Reference<'_>> = refs
        .iter()
        .zip(&parts)
        .map(|(uri, canonical)| Reference { uri, canonical_parts: canonical, enveloped })
        .collect();
    let prepared = sign::prepare_references(&references, alg, &signer.cert_b64());
    let signature = signer.sign(&prepared, alg);
    let mut w = CanonicalWriter::with_capacity(8192);
    w.start("soapenv:Envelope", &[("soapenv", SOAP)], &[]);
    w.start("soapenv:Header", &[], &[]);
    w.raw(&p.action);
    w.raw(&p.message_id);
    w.raw(&p.relates_to);
    w.start(
        "wsse:Security",
        &[("wsse", WSSE), ("wsu", WSU)],
        &[("mustUnderstand", "1"), ("wsu:Id", "security")],
    );
    w.raw(&p.timestamp);
    w.raw(&signature);
    w.end("wsse:Security");
    w.end("soapenv:Header");
    w.raw(&p.body);
    w.end("soapenv:Envelope");
    w.into_bytes()
}

const ALL_REFS: &[&str] = &["#messageID", "#action", "#relatesTo", "#ts", "#body"];

fn header_xmlsec_ids() -> Vec<(&'static str, String)> {
    vec![
        ("Id", format!("{WSA}:MessageID")),
        ("Id", format!("{WSA}:Action")),
        ("Id", format!("{WSA}:RelatesTo")),
        ("Id", format!("{WSU}:Timestamp")),
        ("Id", format!("{SOAP}:Body")),
    ]
}

// ---- how the exchange code finds what it reads ----

fn path_child(doc: &Document, from: NodeId, steps: &[(&str, &str)]) -> Option<NodeId> {
    steps.iter().try_fold(from, |n, (ns, local)| doc.child(n, ns, local))
}

/// The ID card where the DGWS exchange reads it, verified under the enveloped profile.
fn read_id_card(bytes: &[u8]) -> Result<NodeId, String> {
    let doc = parse(bytes).map_err(|e| format!("parse: {e:?}"))?;
    let card = path_child(
        &doc,
        doc.root(),
        &[(SOAP, "Body"), (WST05, "RequestSecurityToken"), (WST05, "Claims"), (SAML, "Assertion")],
    )
    .ok_or("no card")?;
    verify_element(&doc, card, &Policy::FEDERATION)
        .map(|v| v.signed_element)
        .map_err(|e| format!("verify: {e:?}"))
}

/// The assertion where a WS-Trust client reads it, verified under the enveloped profile.
fn read_assertion(bytes: &[u8]) -> Result<NodeId, String> {
    let doc = parse(bytes).map_err(|e| format!("parse: {e:?}"))?;
    let assertion = path_child(
        &doc,
        doc.root(),
        &[
            (SOAP, "Body"),
            (WST13, "RequestSecurityTokenResponseCollection"),
            (WST13, "RequestSecurityTokenResponse"),
            (WST13, "RequestedSecurityToken"),
            (SAML, "Assertion"),
        ],
    )
    .ok_or("no assertion")?;
    verify_element(&doc, assertion, &Policy::FEDERATION)
        .map(|v| v.signed_element)
        .map_err(|e| format!("verify: {e:?}"))
}

/// The message as the OIO exchanges will read it: only through the verified header.
fn read_header(bytes: &[u8]) -> Result<NodeId, String> {
    let doc = parse(bytes).map_err(|e| format!("parse: {e:?}"))?;
    verify_header(&doc, &Policy::FEDERATION).map(|v| v.body).map_err(|e| format!("verify: {e:?}"))
}

// ---- XSW1–XSW8 ----

/// A signed element inside a document, as byte ranges.
struct Target {
    doc: Vec<u8>,
    /// The signed element.
    element: std::ops::Range<usize>,
    /// Its signature: inside `element` for enveloped signatures, elsewhere for the header.
    signature: std::ops::Range<usize>,
    /// The ID attributes inside the element as written, e.g. ` ID="_…"`.
    id_attrs: Vec<String>,
    /// A change that forges the element's content: (from, to).
    forge: (&'static str, &'static str),
    /// Where the document element ends (`</…>` of the root), for "appended at the end".
    root_close: usize,
}

impl Target {
    fn new(doc: Vec<u8>, element_id: &str, id_attrs: &[&str], forge: (&'static str, &'static str)) -> Target {
        let parsed = parse(&doc).expect("vector parses");
        let el = parsed.by_id(element_id).expect("signed element");
        let root = parsed.root();
        let signature = std::iter::once(root)
            .chain(parsed.descendants(root))
            .find(|&n| parsed.is(n, DSIG_NS, "Signature") && parsed.span(n).start > 0)
            .filter(|_| true)
            .expect("a signature");
        // The signature belonging to this element: its child for enveloped ones.
        let signature = parsed.child(el, DSIG_NS, "Signature").unwrap_or(signature);
        let root_span = parsed.span(root);
        let close = doc[..root_span.end].iter().rposition(|&b| b == b'<').expect("root end tag");
        Target {
            element: parsed.span(el),
            signature: parsed.span(signature),
            id_attrs: id_attrs.iter().map(|s| s.to_string()).collect(),
            forge,
            root_close: close,
            doc,
        }
    }

    fn text(&self, r: &std::ops::Range<usize>) -> String {
        String::from_utf8(self.doc[r.clone()].to_vec()).unwrap()
    }

    fn enveloped(&self) -> bool {
        self.signature.start >= self.element.start && self.signature.end <= self.element.end
    }

    /// The element as written.
    fn original(&self) -> String {
        self.text(&self.element)
    }

    /// The element without its (enveloped) signature.
    fn original_unsigned(&self) -> String {
        let s = self.original();
        if self.enveloped() {
            s.replace(&self.text(&self.signature), "")
        } else {
            s
        }
    }

    /// The forged element; `keep_id` false gives it no IDs so the parser's duplicate check
    /// cannot be what stops it.
    fn forged(&self, signed: bool, keep_id: bool) -> String {
        let base = if signed { self.original() } else { self.original_unsigned() };
        assert!(base.contains(self.forge.0), "forge pattern {:?} not in element", self.forge.0);
        let forged = base.replacen(self.forge.0, self.forge.1, 1);
        if keep_id {
            return forged;
        }
        self.id_attrs.iter().fold(forged, |f, id| {
            assert!(f.contains(id.as_str()), "id {id:?} not in element");
            f.replacen(id.as_str(), "", 1)
        })
    }

    fn signature_text(&self) -> String {
        self.text(&self.signature)
    }

    /// The document with the element replaced by `with` and `extra` inserted at byte
    /// `at` (an offset in the original document, outside the element).
    fn rebuild(&self, with: &str, insert: Option<(usize, String)>) -> Vec<u8> {
        let mut out = String::new();
        let doc = String::from_utf8(self.doc.clone()).unwrap();
        let mut pieces = vec![(self.element.start, self.element.end, with.to_owned())];
        if let Some((at, text)) = insert {
            pieces.push((at, at, text));
        }
        pieces.sort_by_key(|p| p.0);
        let mut pos = 0;
        for (start, end, text) in pieces {
            out.push_str(&doc[pos..start]);
            out.push_str(&text);
            pos = end;
        }
        out.push_str(&doc[pos..]);
        out.into_bytes()
    }

    /// Inserts `child` as the last child of the element text `host` (before its end tag).
    fn inside_end(host: &str, child: &str) -> String {
        let close = host.rfind("</").expect("end tag");
        format!("{}{child}{}", &host[..close], &host[close..])
    }

    /// `host` with `child` inserted as the last child of its ds:Signature.
    fn inside_signature(host: &str, signature: &str, child: &str) -> String {
        let grown = Self::inside_end(signature, child);
        host.replacen(signature, &grown, 1)
    }

    /// The eight wrapping variants, by SAML Raider's numbering.
    fn xsw(&self, variant: u8, keep_id: bool) -> Vec<u8> {
        let original = self.original();
        let sig = self.signature_text();
        let enveloped = self.enveloped();
        match variant {
            // The forged element takes the place; the original goes inside its signature.
            1 if enveloped => {
                let forged = self.forged(true, keep_id);
                self.rebuild(&Self::inside_signature(&forged, &sig, &original), None)
            }
            1 => self.rebuild(
                &self.forged(true, keep_id),
                Some((self.signature.end - "</ds:Signature>".len(), original)),
            ),
            // The original goes right before the signature, as the signature's sibling.
            2 if enveloped => {
                let forged = self.forged(true, keep_id);
                let grown = forged.replacen(&sig, &format!("{original}{sig}"), 1);
                self.rebuild(&grown, None)
            }
            2 => self.rebuild(&self.forged(true, keep_id), Some((self.signature.start, original))),
            // An unsigned forged copy before the original.
            3 => self.rebuild(&format!("{}{original}", self.forged(false, keep_id)), None),
            // An unsigned forged copy wrapping the original.
            4 => self.rebuild(&Self::inside_end(&self.forged(false, keep_id), &original), None),
            // The forged element keeps the signature; an unsigned copy of the original is
            // appended at the end of the document.
            5 => self.rebuild(&self.forged(true, keep_id), Some((self.root_close, self.original_unsigned()))),
            // The forged element keeps the signature; the unsigned original goes inside it.
            6 if enveloped => {
                let forged = self.forged(true, keep_id);
                self.rebuild(&Self::inside_signature(&forged, &sig, &self.original_unsigned()), None)
            }
            6 => self.rebuild(
                &self.forged(true, keep_id),
                Some((self.signature.end - "</ds:Signature>".len(), self.original_unsigned())),
            ),
            // The original hides in an Extensions element of another namespace, before an
            // unsigned forged copy.
            7 => {
                let ext =
                    format!("<ext:Extensions xmlns:ext=\"urn:x-extensions\">{original}</ext:Extensions>");
                self.rebuild(&format!("{ext}{}", self.forged(false, keep_id)), None)
            }
            // The forged element keeps the signature, which gains a ds:Object holding the
            // unsigned original.
            8 if enveloped => {
                let object = format!("<ds:Object>{}</ds:Object>", self.original_unsigned());
                let forged = self.forged(true, keep_id);
                self.rebuild(&Self::inside_signature(&forged, &sig, &object), None)
            }
            8 => {
                let object = format!("<ds:Object>{}</ds:Object>", self.original_unsigned());
                self.rebuild(
                    &self.forged(true, keep_id),
                    Some((self.signature.end - "</ds:Signature>".len(), object)),
                )
            }
            _ => unreachable!("XSW{variant}"),
        }
    }
}

/// Runs XSW1–XSW8 (with and without the original id on the forgery) against `target`, read
/// the way `read` reads it. Every variant must be refused; returns the reasons seen.
fn run_xsw(name: &str, target: &Target, read: fn(&[u8]) -> Result<NodeId, String>) -> Vec<String> {
    read(&target.doc).unwrap_or_else(|e| panic!("{name}: the unmodified vector must verify: {e}"));
    let mut reasons = Vec::new();
    for variant in 1..=8u8 {
        for keep_id in [true, false] {
            let forged = target.xsw(variant, keep_id);
            assert_ne!(forged, target.doc, "{name} XSW{variant}: nothing changed");
            let outcome = std::panic::catch_unwind(|| read(&forged));
            let result =
                outcome.unwrap_or_else(|_| panic!("{name} XSW{variant} (keep id {keep_id}): panicked"));
            let reason = match result {
                Ok(_) => panic!(
                    "{name} XSW{variant} (keep id {keep_id}) was accepted:\n{}",
                    String::from_utf8_lossy(&forged)
                ),
                Err(e) => e,
            };
            if keep_id {
                assert!(
                    reason.contains("DuplicateId"),
                    "{name} XSW{variant}: expected the duplicate id, got {reason}"
                );
            }
            reasons.push(format!("{name} XSW{variant} keep_id={keep_id}: {reason}"));
        }
    }
    reasons
}

#[test]
fn vectors_verify_with_segl_and_xmlsec1() {
    let moces = DevSigner::open(Identity::Moces);
    let foces = DevSigner::open(Identity::Foces);
    let card = id_card_request();
    read_id_card(&card).expect("card verifies");
    xmlsec(&card, &moces.pem(), &[("id", &format!("{SAML}:Assertion"))]).expect("xmlsec1 verifies the card");

    let assertion = issued_assertion_response(&foces);
    read_assertion(&assertion).expect("assertion verifies");
    xmlsec(&assertion, &foces.pem(), &[("ID", &format!("{SAML}:Assertion"))])
        .expect("xmlsec1 verifies the assertion");

    let header = header_message(&foces, ALL_REFS, SignatureAlgorithm::RsaSha256, false);
    let doc = parse(&header).unwrap();
    let v = verify_header(&doc, &Policy::FEDERATION).expect("header verifies");
    assert!(v.relates_to.is_some() && v.to.is_none());
    assert_eq!(v.certificate_der, foces.cert_der);
    let ids = header_xmlsec_ids();
    let ids: Vec<(&str, &str)> = ids.iter().map(|(a, n)| (*a, n.as_str())).collect();
    xmlsec(&header, &foces.pem(), &ids).expect("xmlsec1 verifies the header signature");
}

#[test]
fn xsw_against_the_id_card_signature() {
    let card = id_card_request();
    let target = Target::new(
        card,
        "IDCard",
        &[" id=\"IDCard\"", " id=\"IDCardData\"", " id=\"UserLog\"", " id=\"SystemLog\""],
        ("Lars", "Eve"),
    );
    let reasons = run_xsw("ID card", &target, read_id_card);
    println!("{}", reasons.join("\n"));
}

#[test]
fn xsw_against_an_issued_assertion_signature() {
    let foces = DevSigner::open(Identity::Foces);
    let doc = issued_assertion_response(&foces);
    let target =
        Target::new(doc, ASSERTION_ID, &[&format!(" ID=\"{ASSERTION_ID}\"")], ("0501792275", "1111111118"));
    let reasons = run_xsw("assertion", &target, read_assertion);
    println!("{}", reasons.join("\n"));
}

#[test]
fn xsw_against_the_header_signature() {
    let foces = DevSigner::open(Identity::Foces);
    let doc = header_message(&foces, ALL_REFS, SignatureAlgorithm::RsaSha1, false);
    let target = Target::new(doc, "body", &[" wsu:Id=\"body\""], ("urn:uuid:ctx", "urn:uuid:evil"));
    let reasons = run_xsw("header", &target, read_header);
    println!("{}", reasons.join("\n"));
    // Without the id, the forged Body is the envelope's and the signed one is elsewhere: the
    // profile names what went wrong.
    assert!(reasons.iter().any(|r| r.contains("ReferenceOutsideProfile") || r.contains("Ambiguous")));
}

#[test]
fn header_profile_rules_name_the_failed_check() {
    let foces = DevSigner::open(Identity::Foces);
    let alg = SignatureAlgorithm::RsaSha256;
    let check = |refs: &[&str], enveloped: bool| {
        let doc = header_message(&foces, refs, alg, enveloped);
        verify_header(&parse(&doc).unwrap(), &Policy::FEDERATION)
    };
    // Each message below is validly signed over what it names; the profile refuses it.
    assert_eq!(
        check(&["#messageID", "#action", "#ts", "#body"], false),
        Err(DsigError::MissingCoverage { element: "wsa:RelatesTo" })
    );
    assert_eq!(
        check(&["#messageID", "#action", "#relatesTo", "#body"], false),
        Err(DsigError::MissingCoverage { element: "wsu:Timestamp" })
    );
    assert_eq!(
        check(&["#messageID", "#relatesTo", "#ts", "#body"], false),
        Err(DsigError::MissingCoverage { element: "wsa:Action" })
    );
    assert_eq!(
        check(&["#messageID", "#action", "#relatesTo", "#ts", "#body", "#body"], false),
        Err(DsigError::DuplicateReference { uri: "#body".into() })
    );
    assert_eq!(
        check(&["#messageID", "#action", "#relatesTo", "#ts", "#body", "#security"], false),
        Err(DsigError::ReferenceOutsideProfile { uri: "#security".into(), element: "wsse:Security".into() })
    );
    assert!(matches!(check(ALL_REFS, true), Err(DsigError::UnexpectedTransform { .. })));

    let good = header_message(&foces, ALL_REFS, alg, false);
    let doc = parse(&good).unwrap();
    // KeyInfo must carry the certificate the caller expects.
    let voces = DevSigner::open(Identity::Voces);
    assert_eq!(
        verify_header(&doc, &Policy::FEDERATION.with_certificate(&voces.cert_der)),
        Err(DsigError::KeyInfoMismatch)
    );
    verify_header(&doc, &Policy::FEDERATION.with_certificate(&foces.cert_der))
        .expect("expected key verifies");
    // SHA-1 is accepted by the federation policy only.
    let sha1 = header_message(&foces, ALL_REFS, SignatureAlgorithm::RsaSha1, false);
    let sha1 = parse(&sha1).unwrap();
    verify_header(&sha1, &Policy::FEDERATION).expect("federation accepts SHA-1");
    assert!(matches!(verify_header(&sha1, &Policy::STRICT), Err(DsigError::AlgorithmNotAllowed { .. })));

    let text = String::from_utf8(good.clone()).unwrap();
    // A second signature in the Security header.
    let sig_start = text.find("<ds:Signature").unwrap();
    let sig_end = text.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let two = format!("{}{}{}", &text[..sig_end], &text[sig_start..sig_end], &text[sig_end..]);
    assert_eq!(
        verify_header(&parse(two.as_bytes()).unwrap(), &Policy::FEDERATION),
        Err(DsigError::SignatureCount { element: "wsse:Security".into(), found: 2 })
    );
    // A second MessageID header: which one is signed would be a guess.
    let dup = text.replacen("<wsa:Action", "<wsa:MessageID xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">urn:uuid:x</wsa:MessageID><wsa:Action", 1);
    assert_eq!(
        verify_header(&parse(dup.as_bytes()).unwrap(), &Policy::FEDERATION),
        Err(DsigError::Ambiguous { element: "wsa:MessageID", parent: "soapenv:Header" })
    );
    // A message without a MessageID at all.
    let start = text.find("<wsa:MessageID").unwrap();
    let end = text.find("</wsa:MessageID>").unwrap() + "</wsa:MessageID>".len();
    let none = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(
        verify_header(&parse(none.as_bytes()).unwrap(), &Policy::FEDERATION),
        Err(DsigError::MissingElement { name: "wsa:MessageID" })
    );
    // Tampering after signing.
    let tampered = text.replacen("urn:uuid:ctx", "urn:uuid:evil", 1);
    assert!(matches!(
        verify_header(&parse(tampered.as_bytes()).unwrap(), &Policy::FEDERATION),
        Err(DsigError::DigestMismatch { .. })
    ));
}

#[test]
fn comment_injection_in_signed_values_cannot_truncate() {
    // CVE-2017-11427 class: a comment inside a signed value leaves the digest unchanged, so
    // the signature still verifies; what matters is that the value read is the whole text.
    let foces = DevSigner::open(Identity::Foces);
    let doc = issued_assertion_response(&foces);
    let text = String::from_utf8(doc).unwrap();
    let injected = text.replacen("0501792275", "05017<!---->92275", 1);
    let parsed = parse(injected.as_bytes()).unwrap();
    let assertion = read_assertion(injected.as_bytes()).expect("comments are outside the canonical form");
    let value = parsed.descendants(assertion).find(|&n| parsed.local_name(n) == "AttributeValue").unwrap();
    assert_eq!(parsed.text(value), "0501792275");
    // Text split by a comment must not be mistaken for its first piece anywhere.
    let injected = text.replacen("0501792275", "0501792275<!---->9", 1);
    assert!(matches!(read_assertion(injected.as_bytes()), Err(e) if e.contains("DigestMismatch")));
}

#[test]
fn hostile_documents_are_refused_without_crashing() {
    let lol = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><lolz>&lol2;</lolz>"#;
    assert_eq!(parse(lol.as_bytes()).err(), Some(XmlError::Doctype));
    let xxe = r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
    assert_eq!(parse(xxe.as_bytes()).err(), Some(XmlError::Doctype));
    // Over-deep: a million open tags is refused at the depth limit, not by the stack.
    let deep = "<a>".repeat(1_000_000);
    assert_eq!(parse(deep.as_bytes()).err(), Some(XmlError::TooDeep { limit: Limits::default().max_depth }));
    // Over-large: many nodes, many attributes.
    let wide = format!("<a>{}</a>", "<b/>".repeat(200_000));
    assert_eq!(
        parse(wide.as_bytes()).err(),
        Some(XmlError::TooManyNodes { limit: Limits::default().max_nodes })
    );
    let attrs: String = (0..100).map(|i| format!(" a{i}=\"x\"")).collect();
    assert_eq!(
        parse(format!("<a{attrs}/>").as_bytes()).err(),
        Some(XmlError::TooManyAttributes { limit: Limits::default().max_attributes })
    );
    // Duplicate ids across spellings, in each vector's shape.
    let foces = DevSigner::open(Identity::Foces);
    let header =
        String::from_utf8(header_message(&foces, ALL_REFS, SignatureAlgorithm::RsaSha256, false)).unwrap();
    let dup = header.replacen("wsu:Id=\"security\"", "wsu:Id=\"body\"", 1);
    assert_eq!(parse(dup.as_bytes()).err(), Some(XmlError::DuplicateId { id: "body".into() }));
    let dup = header.replacen("Context=\"urn:uuid:ctx\"", "Context=\"urn:uuid:ctx\" ID=\"ts\"", 1);
    assert_eq!(parse(dup.as_bytes()).err(), Some(XmlError::DuplicateId { id: "ts".into() }));
}
