//! ENC-AUD interop with an independent implementation, xmlsec1 (libxmlsec1 on OpenSSL):
//! xmlsec1 decrypts what segl emits, and segl decrypts what xmlsec1 encrypts. Keys and a
//! self-signed certificate are made with the `openssl` CLI. Without `xmlsec1` or `openssl`
//! on PATH the tests print a line and pass (skip).

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use segl::xml::c14n::exclusive_to_vec;
use segl::xml::enc::{
    decrypt_encrypted_data, encrypt_assertion, ContentEncryption, KeyTransport, SoftwareKeyUnwrapper, XENC_NS,
};
use segl::xml::{Document, Limits};

/// A small signed-looking assertion, compact, as segl would emit it.
const ASSERTION: &str = "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_x\" \
IssueInstant=\"2026-12-03T10:00:00Z\" Version=\"2.0\"><saml:Issuer>https://sts.sosi.dk/</saml:Issuer>\
<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" Id=\"OCESSignature\"><ds:SignedInfo>\
<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"></ds:CanonicalizationMethod>\
</ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature>\
<saml:Subject><saml:NameID>C=DK,O=Test,CN=Æble Østergård,Serial=CVR:12345678-RID:1</saml:NameID></saml:Subject>\
</saml:Assertion>";

/// Exclusive c14n of the first `saml:Assertion` in `xml` (libxml2 re-serializes what it
/// parses: `<x/>` for empty elements, character references for non-ASCII).
fn canonical_assertion(xml: Vec<u8>) -> String {
    let doc = Document::parse(Bytes::from(xml), &Limits::default()).expect("parses");
    let assertion = std::iter::once(doc.root())
        .chain(doc.descendants(doc.root()))
        .find(|&n| doc.is(n, "urn:oasis:names:tc:SAML:2.0:assertion", "Assertion"))
        .expect("saml:Assertion");
    String::from_utf8(exclusive_to_vec(&doc, assertion, None, &[])).expect("utf-8")
}

const PAIRS: [(ContentEncryption, KeyTransport); 8] = [
    // What unsealed decrypts (the default).
    (ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5),
    (ContentEncryption::Aes256Gcm, KeyTransport::RsaOaepMgf1p),
    (ContentEncryption::Aes256Cbc, KeyTransport::Rsa1_5),
    (ContentEncryption::Aes128Gcm, KeyTransport::Rsa1_5),
    (ContentEncryption::Aes256Gcm, KeyTransport::Rsa1_5),
    (ContentEncryption::Aes128Cbc, KeyTransport::RsaOaepMgf1p),
    (ContentEncryption::Aes256Cbc, KeyTransport::RsaOaepMgf1p),
    (ContentEncryption::Aes128Gcm, KeyTransport::RsaOaepMgf1p),
];

fn available(tool: &str, arg: &str) -> bool {
    Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success())
}

fn tools() -> bool {
    for (tool, arg) in [("xmlsec1", "--version"), ("openssl", "version")] {
        if !available(tool, arg) {
            println!("SKIP: `{tool}` is not installed; ENC-AUD interop not checked");
            return false;
        }
    }
    true
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// An RSA-2048 key and self-signed certificate in a fresh directory.
struct Audience {
    dir: PathBuf,
}

impl Audience {
    fn new(test: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("xml_enc").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=audience.example",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.pem")));
        run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(dir.join("cert.pem"))
            .arg("-out")
            .arg(dir.join("cert.der")));
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("key.der")));
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read")
    }
}

#[test]
fn xmlsec1_decrypts_what_segl_emits() {
    if !tools() {
        return;
    }
    // The assertion is in canonical form, as segl emits it.
    assert_eq!(canonical_assertion(ASSERTION.as_bytes().to_vec()), ASSERTION);
    let audience = Audience::new("segl_to_xmlsec1");
    let cert = audience.read("cert.der");
    for (content, transport) in PAIRS {
        let case = format!("{}+{}", content.name(), transport.name());
        let encrypted = encrypt_assertion(ASSERTION.as_bytes(), &cert, content, transport).expect("encrypt");
        // A response-like wrapper around the EncryptedAssertion, as a client receives it.
        let mut doc = b"<Response xmlns=\"urn:test\">".to_vec();
        doc.extend_from_slice(&encrypted);
        doc.extend_from_slice(b"</Response>");
        let decrypt = |name: &str, doc: &[u8]| {
            let input = audience.path(&format!("{case}.{name}.xml"));
            let output = audience.path(&format!("{case}.{name}.out"));
            std::fs::write(&input, doc).expect("write");
            run(Command::new("xmlsec1")
                .arg("--decrypt")
                .arg("--privkey-pem")
                .arg(audience.path("key.pem"))
                .arg("--output")
                .arg(&output)
                .arg(&input));
            std::fs::read(&output).expect("read")
        };
        // As emitted (Type="…#Element"): xmlsec1 puts the parsed assertion in place of
        // EncryptedData and re-serializes the document, so compare canonical forms.
        let replaced = decrypt("element", &doc);
        let prefix = "<Response xmlns=\"urn:test\"><saml:EncryptedAssertion \
xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\"><saml:Assertion ";
        assert!(String::from_utf8_lossy(&replaced).contains(prefix), "{case}: assertion not in place");
        assert_eq!(canonical_assertion(replaced), ASSERTION, "{case}");
        // Without Type, xmlsec1 writes the decrypted octets as they are: byte-exact check.
        let untyped = String::from_utf8(doc).expect("utf-8").replacen(
            " Type=\"http://www.w3.org/2001/04/xmlenc#Element\"",
            "",
            1,
        );
        let raw = decrypt("raw", untyped.as_bytes());
        assert!(raw == ASSERTION.as_bytes(), "{case}: xmlsec1 decrypted to different bytes");
    }
}

#[test]
fn segl_decrypts_what_xmlsec1_encrypts() {
    if !tools() {
        return;
    }
    let audience = Audience::new("xmlsec1_to_segl");
    let unwrapper = SoftwareKeyUnwrapper::from_pkcs8_der(&audience.read("key.der")).expect("key");
    let data = audience.path("data.xml");
    std::fs::write(&data, format!("<Response xmlns=\"urn:test\">{ASSERTION}</Response>")).expect("write");
    for (content, transport) in PAIRS {
        let case = format!("{}+{}", content.name(), transport.name());
        // xmlsec1 fills a template: the ENC-AUD shape, written by hand here.
        let template = format!(
            "<xenc:EncryptedData xmlns:xenc=\"{XENC_NS}\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
<xenc:EncryptionMethod Algorithm=\"{}\"/><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
<xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"{}\"/><xenc:CipherData><xenc:CipherValue/>\
</xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData>\
</xenc:EncryptedData>",
            content.uri(),
            transport.uri()
        );
        let template_path = audience.path(&format!("{case}.tmpl.xml"));
        let output = audience.path(&format!("{case}.xmlsec1.xml"));
        std::fs::write(&template_path, template).expect("write");
        let session_key = format!("aes-{}", content.key_len() * 8);
        run(Command::new("xmlsec1")
            .arg("--encrypt")
            .arg("--pubkey-cert-pem")
            .arg(audience.path("cert.pem"))
            .args(["--session-key", &session_key, "--node-xpath", "//*[local-name()='Assertion']"])
            .arg("--xml-data")
            .arg(&data)
            .arg("--output")
            .arg(&output)
            .arg(&template_path));

        let doc = Document::parse(Bytes::from(std::fs::read(&output).expect("read")), &Limits::default())
            .expect("xmlsec1 output parses");
        let encrypted_data = doc
            .descendants(doc.root())
            .find(|&n| doc.is(n, XENC_NS, "EncryptedData"))
            .expect("EncryptedData");
        let plaintext = decrypt_encrypted_data(&doc, encrypted_data, |t, c| unwrapper.unwrap(t, c))
            .expect("segl decrypts");
        // libxml2 serialized the node it encrypted; compare canonical forms.
        assert!(plaintext.starts_with(b"<saml:Assertion "), "{case}");
        assert_eq!(canonical_assertion(plaintext), ASSERTION, "{case}");
    }
}
