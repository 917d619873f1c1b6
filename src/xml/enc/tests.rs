use std::sync::OnceLock;

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;

use super::*;
use crate::xml::emit::CanonicalWriter;
use crate::xml::{Document, Limits, NodeId};

const ASSERTION: &str = "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_x\" \
IssueInstant=\"2026-12-03T10:00:00Z\" Version=\"2.0\"><saml:Issuer>https://sts.sosi.dk/</saml:Issuer>\
<saml:Subject><saml:NameID>C=DK,O=Test,CN=Æble Østergård,Serial=CVR:12345678-RID:1</saml:NameID></saml:Subject>\
</saml:Assertion>";

const ALL_CONTENT: [ContentEncryption; 4] = [
    ContentEncryption::Aes128Cbc,
    ContentEncryption::Aes256Cbc,
    ContentEncryption::Aes128Gcm,
    ContentEncryption::Aes256Gcm,
];
const ALL_TRANSPORT: [KeyTransport; 2] = [KeyTransport::Rsa1_5, KeyTransport::RsaOaepMgf1p];

struct TestKey {
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
}

fn generate() -> TestKey {
    let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let pkcs8 = key.as_der().unwrap().as_ref().to_vec();
    let spki = key.public_key().as_der().unwrap().as_ref().to_vec();
    TestKey { pkcs8, spki }
}

fn recipient() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(generate)
}

fn other() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(generate)
}

fn unwrapper(k: &TestKey) -> SoftwareKeyUnwrapper {
    SoftwareKeyUnwrapper::from_pkcs8_der(&k.pkcs8).unwrap()
}

fn encrypt(content: ContentEncryption, transport: KeyTransport) -> String {
    let key = RecipientKey::from_spki_der(&recipient().spki).unwrap();
    let mut w = CanonicalWriter::default();
    write_encrypted_assertion(&mut w, ASSERTION.as_bytes(), &key, content, transport).unwrap();
    String::from_utf8(w.into_bytes()).unwrap()
}

fn parse(xml: &str) -> Document {
    Document::parse(Bytes::from(xml.to_owned()), &Limits::default()).unwrap()
}

/// The first `xenc:EncryptedData` in the document.
fn encrypted_data(doc: &Document) -> NodeId {
    std::iter::once(doc.root())
        .chain(doc.descendants(doc.root()))
        .find(|&n| doc.is(n, XENC_NS, "EncryptedData"))
        .unwrap()
}

fn decrypt_with(xml: &str, key: &TestKey) -> Result<Vec<u8>, DecryptError> {
    let doc = parse(xml);
    let u = unwrapper(key);
    decrypt_encrypted_data(&doc, encrypted_data(&doc), |t, c| u.unwrap(t, c))
}

/// The (EncryptedKey, EncryptedData) CipherValue texts.
fn cipher_values(xml: &str) -> (String, String) {
    let doc = parse(xml);
    let values: Vec<String> = doc
        .descendants(doc.root())
        .filter(|&n| doc.is(n, XENC_NS, "CipherValue"))
        .map(|n| doc.text(n).into_owned())
        .collect();
    assert_eq!(values.len(), 2);
    (values[0].clone(), values[1].clone())
}

/// Replaces the data CipherValue by `f(decoded bytes)`.
fn tamper_data(xml: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let (_, data) = cipher_values(xml);
    let mut bytes = B64.decode(&data).unwrap();
    f(&mut bytes);
    xml.replace(&data, &B64.encode(&bytes))
}

/// Replaces the key CipherValue by `f(decoded bytes)`.
fn tamper_key(xml: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let (key, _) = cipher_values(xml);
    let mut bytes = B64.decode(&key).unwrap();
    f(&mut bytes);
    xml.replace(&key, &B64.encode(&bytes))
}

#[test]
fn every_algorithm_pair_round_trips() {
    for content in ALL_CONTENT {
        for transport in ALL_TRANSPORT {
            let xml = encrypt(content, transport);
            let plain = decrypt_with(&xml, recipient()).unwrap();
            assert_eq!(plain, ASSERTION.as_bytes(), "{content:?} {transport:?}");
        }
    }
}

#[test]
fn element_has_exactly_the_enc_aud_shape() {
    let xml = encrypt(ContentEncryption::default(), KeyTransport::default());
    let (key, data) = cipher_values(&xml);
    assert!(!key.contains(char::is_whitespace) && !data.contains(char::is_whitespace));
    let skeleton = xml.replace(&key, "KEY").replace(&data, "DATA");
    assert_eq!(
        skeleton,
        "<saml:EncryptedAssertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\">\
<xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\" Type=\"http://www.w3.org/2001/04/xmlenc#Element\">\
<xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#aes128-cbc\"></xenc:EncryptionMethod>\
<ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">\
<xenc:EncryptedKey xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\">\
<xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-1_5\"></xenc:EncryptionMethod>\
<xenc:CipherData><xenc:CipherValue>KEY</xenc:CipherValue></xenc:CipherData>\
</xenc:EncryptedKey></ds:KeyInfo>\
<xenc:CipherData><xenc:CipherValue>DATA</xenc:CipherValue></xenc:CipherData>\
</xenc:EncryptedData></saml:EncryptedAssertion>"
    );
    // RSA-2048 key ciphertext; IV + whole blocks of padded plaintext.
    assert_eq!(B64.decode(&key).unwrap().len(), 256);
    let padded = (ASSERTION.len() / 16 + 1) * 16;
    assert_eq!(B64.decode(&data).unwrap().len(), 16 + padded);
}

#[test]
fn gcm_layout_is_iv_ciphertext_tag_and_uris_are_xmlenc11() {
    let xml = encrypt(ContentEncryption::Aes256Gcm, KeyTransport::RsaOaepMgf1p);
    assert!(xml.contains("Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\""));
    assert!(xml.contains("Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p\""));
    let (_, data) = cipher_values(&xml);
    assert_eq!(B64.decode(&data).unwrap().len(), 12 + ASSERTION.len() + 16);
}

#[test]
fn every_encryption_uses_a_fresh_key_and_iv() {
    let a = cipher_values(&encrypt(ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5));
    let b = cipher_values(&encrypt(ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5));
    assert_ne!(a.0, b.0);
    assert_ne!(a.1[..22], b.1[..22], "IV repeated");
    let ua = unwrapper(recipient()).unwrap(KeyTransport::Rsa1_5, &B64.decode(&a.0).unwrap()).unwrap();
    let ub = unwrapper(recipient()).unwrap(KeyTransport::Rsa1_5, &B64.decode(&b.0).unwrap()).unwrap();
    assert_eq!(ua.len(), 16);
    assert_ne!(ua, ub);
}

#[test]
fn encrypt_assertion_takes_the_key_from_a_certificate() {
    let kp = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(recipient().pkcs8.clone()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["audience.example".to_owned()]).unwrap().self_signed(&kp).unwrap();
    let out = encrypt_assertion(
        ASSERTION.as_bytes(),
        cert.der(),
        ContentEncryption::Aes128Gcm,
        KeyTransport::Rsa1_5,
    )
    .unwrap();
    let plain = decrypt_with(std::str::from_utf8(&out).unwrap(), recipient()).unwrap();
    assert_eq!(plain, ASSERTION.as_bytes());

    assert_eq!(
        encrypt_assertion(
            b"<a/>",
            b"not a certificate",
            ContentEncryption::default(),
            KeyTransport::default()
        ),
        Err(EncryptError::BadCertificate)
    );
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_cert =
        rcgen::CertificateParams::new(vec!["ec.example".to_owned()]).unwrap().self_signed(&ec).unwrap();
    assert_eq!(
        encrypt_assertion(b"<a/>", ec_cert.der(), ContentEncryption::default(), KeyTransport::default()),
        Err(EncryptError::NotRsaKey)
    );
}

#[test]
fn enc_aud_from_java_with_iso10126_padding_decrypts() {
    // Java's AES/CBC/ISO10126Padding fills the padding with random bytes; only the last
    // byte (the pad length) counts.
    let aes_key = [7u8; 16];
    let iv = [9u8; 16];
    let mut body = ASSERTION.as_bytes().to_vec();
    let pad = 16 - body.len() % 16;
    body.extend((1..pad).map(|i| (i * 37 + 200) as u8));
    body.push(pad as u8);
    let enc = EncryptingKey::cbc(UnboundCipherKey::new(&AES_128, &aes_key).unwrap()).unwrap();
    enc.less_safe_encrypt(&mut body, EncryptionContext::Iv128(FixedLength::from(iv))).unwrap();
    let mut data = iv.to_vec();
    data.extend_from_slice(&body);

    let wrapped = {
        let pk = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&recipient().spki).unwrap();
        let pk = aws_lc_rs::rsa::Pkcs1PublicEncryptingKey::new(pk).unwrap();
        let mut out = vec![0u8; pk.ciphertext_size()];
        pk.encrypt(&aes_key, &mut out).unwrap().to_vec()
    };
    // Java (Santuario) wraps base64 at 76 columns with CR LF, sent as `&#13;` + LF.
    let wrap = |b: &[u8]| {
        let s = B64.encode(b);
        s.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("&#13;\n")
    };
    let xml = format!(
        "<saml:EncryptedAssertion xmlns:saml=\"{SAML_NS}\"><xenc:EncryptedData xmlns:xenc=\"{XENC_NS}\" \
Type=\"{TYPE_ELEMENT}\"><xenc:EncryptionMethod Algorithm=\"{AES128_CBC}\"/><ds:KeyInfo xmlns:ds=\"{DSIG_NS}\">\
<xenc:EncryptedKey xmlns:xenc=\"{XENC_NS}\"><xenc:EncryptionMethod Algorithm=\"{RSA_1_5}\"/><xenc:CipherData>\
<xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData>\
<xenc:CipherValue>{}</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>",
        wrap(&wrapped),
        wrap(&data)
    );
    assert_eq!(decrypt_with(&xml, recipient()).unwrap(), ASSERTION.as_bytes());
}

// ---- the uniform failure --------------------------------------------------------------

fn assert_undecryptable(result: Result<Vec<u8>, DecryptError>, case: &str) {
    let err = result.expect_err(case);
    assert_eq!(err, DecryptError::Undecryptable, "{case}");
    assert_eq!(err.to_string(), "encrypted data could not be decrypted", "{case}");
}

#[test]
fn wrong_recipient_key_is_undecryptable() {
    for content in ALL_CONTENT {
        for transport in ALL_TRANSPORT {
            let xml = encrypt(content, transport);
            assert_undecryptable(
                decrypt_with(&xml, other()),
                &format!("wrong key {content:?} {transport:?}"),
            );
        }
    }
}

#[test]
fn tampered_encrypted_key_is_undecryptable() {
    for content in ALL_CONTENT {
        for transport in ALL_TRANSPORT {
            let xml = encrypt(content, transport);
            for at in [0usize, 1, 100, 255] {
                let bad = tamper_key(&xml, |k| k[at] ^= 0x01);
                let case = format!("key byte {at} {content:?} {transport:?}");
                assert_undecryptable(decrypt_with(&bad, recipient()), &case);
            }
            let short = tamper_key(&xml, |k| k.truncate(128));
            assert_undecryptable(decrypt_with(&short, recipient()), "short key ciphertext");
        }
    }
}

#[test]
fn tampered_ciphertext_is_undecryptable() {
    for transport in ALL_TRANSPORT {
        for content in [ContentEncryption::Aes128Gcm, ContentEncryption::Aes256Gcm] {
            let xml = encrypt(content, transport);
            let n = B64.decode(cipher_values(&xml).1).unwrap().len();
            // IV, first ciphertext byte, middle, last tag byte.
            for at in [0, 12, n / 2, n - 1] {
                let bad = tamper_data(&xml, |d| d[at] ^= 0x01);
                assert_undecryptable(decrypt_with(&bad, recipient()), &format!("gcm byte {at}"));
            }
            let cut = tamper_data(&xml, |d| d.truncate(d.len() - 1));
            assert_undecryptable(decrypt_with(&cut, recipient()), "gcm truncated tag");
        }
        for content in [ContentEncryption::Aes128Cbc, ContentEncryption::Aes256Cbc] {
            let xml = encrypt(content, transport);
            // IV byte 0 turns the leading '<' into 0xBC: not UTF-8, not an element.
            let bad_iv = tamper_data(&xml, |d| d[0] ^= 0x80);
            assert_undecryptable(decrypt_with(&bad_iv, recipient()), "cbc iv");
            // A garbled first block.
            let bad_block = tamper_data(&xml, |d| d[16] ^= 0x01);
            assert_undecryptable(decrypt_with(&bad_block, recipient()), "cbc first block");
        }
    }
}

#[test]
fn bad_cbc_padding_is_undecryptable() {
    for content in [ContentEncryption::Aes128Cbc, ContentEncryption::Aes256Cbc] {
        let xml = encrypt(content, KeyTransport::Rsa1_5);
        // The last byte of the second-to-last block XORs into the pad-length byte: 0x80 makes
        // it > 16 whatever the pad length was.
        let bad = tamper_data(&xml, |d| {
            let i = d.len() - 17;
            d[i] ^= 0x80;
        });
        assert_undecryptable(decrypt_with(&bad, recipient()), "pad length > 16");
        // Pad length 0.
        let zero = tamper_data(&xml, |d| {
            let pad = ASSERTION.len().next_multiple_of(16) - ASSERTION.len();
            let pad = if pad == 0 { 16 } else { pad } as u8;
            let i = d.len() - 17;
            d[i] ^= pad;
        });
        assert_undecryptable(decrypt_with(&zero, recipient()), "pad length 0");
        // Dropping the last block leaves a plaintext block as "padding".
        let dropped = tamper_data(&xml, |d| d.truncate(d.len() - 16));
        let r = decrypt_with(&dropped, recipient());
        assert!(r.as_ref().map_or(true, |p| p != ASSERTION.as_bytes()));
    }
}

#[test]
fn unwrapper_rejection_and_wrong_key_length_are_undecryptable() {
    for content in ALL_CONTENT {
        let xml = encrypt(content, KeyTransport::Rsa1_5);
        let doc = parse(&xml);
        let data = encrypted_data(&doc);
        let rejected = decrypt_encrypted_data(&doc, data, |_, _| Err(KeyUnwrapError::Rejected));
        assert_undecryptable(rejected, "rejected");
        for len in [0usize, 15, 24, 31, 33, 256] {
            let wrong_len = decrypt_encrypted_data(&doc, data, |_, _| Ok(vec![0x42; len]));
            assert_undecryptable(wrong_len, &format!("key of {len} bytes"));
        }
        // A key of the right length but the wrong value.
        let wrong = decrypt_encrypted_data(&doc, data, |_, _| Ok(vec![0x42; content.key_len()]));
        assert_undecryptable(wrong, "wrong key value");
    }
}

#[test]
fn unwrapper_sees_algorithm_and_ciphertext() {
    let xml = encrypt(ContentEncryption::Aes128Cbc, KeyTransport::RsaOaepMgf1p);
    let (key_b64, _) = cipher_values(&xml);
    let doc = parse(&xml);
    let mut seen = None;
    let u = unwrapper(recipient());
    let plain = decrypt_encrypted_data(&doc, encrypted_data(&doc), |t, c| {
        seen = Some((t, c.to_vec()));
        u.unwrap(t, c)
    })
    .unwrap();
    assert_eq!(plain, ASSERTION.as_bytes());
    assert_eq!(seen, Some((KeyTransport::RsaOaepMgf1p, B64.decode(key_b64).unwrap())));
}

#[test]
fn unavailable_unwrapper_is_its_own_error() {
    let xml = encrypt(ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5);
    let doc = parse(&xml);
    let r = decrypt_encrypted_data(&doc, encrypted_data(&doc), |_, _| Err(KeyUnwrapError::Unavailable));
    assert_eq!(r, Err(DecryptError::KeyUnavailable));
}

// ---- structure ------------------------------------------------------------------------

fn structural(xml: &str) -> DecryptError {
    let doc = parse(xml);
    let data = std::iter::once(doc.root())
        .chain(doc.descendants(doc.root()))
        .find(|&n| doc.local_name(n) == "EncryptedData")
        .unwrap_or(doc.root());
    decrypt_encrypted_data(&doc, data, |_, _| panic!("structure errors come before unwrapping")).unwrap_err()
}

#[test]
fn structural_errors_are_specific_and_come_before_unwrapping() {
    let xml = encrypt(ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5);
    let (key, data) = cipher_values(&xml);

    let tdes = xml.replace(AES128_CBC, "http://www.w3.org/2001/04/xmlenc#tripledes-cbc");
    assert_eq!(
        structural(&tdes),
        DecryptError::UnsupportedContentAlgorithm("http://www.w3.org/2001/04/xmlenc#tripledes-cbc".into())
    );
    let oaep11 = xml.replace(RSA_1_5, "http://www.w3.org/2009/xmlenc11#rsa-oaep");
    assert_eq!(
        structural(&oaep11),
        DecryptError::UnsupportedKeyTransport("http://www.w3.org/2009/xmlenc11#rsa-oaep".into())
    );
    let no_alg = xml.replacen(&format!(" Algorithm=\"{AES128_CBC}\""), "", 1);
    assert_eq!(structural(&no_alg), DecryptError::MissingAlgorithm { parent: "xenc:EncryptedData" });
    let no_method = xml.replacen(
        &format!("<xenc:EncryptionMethod Algorithm=\"{AES128_CBC}\"></xenc:EncryptionMethod>"),
        "",
        1,
    );
    assert_eq!(
        structural(&no_method),
        DecryptError::Missing { element: "xenc:EncryptionMethod", parent: "xenc:EncryptedData" }
    );

    let no_value = xml.replace(&format!("<xenc:CipherValue>{data}</xenc:CipherValue>"), "");
    assert_eq!(
        structural(&no_value),
        DecryptError::Missing { element: "xenc:CipherValue", parent: "xenc:EncryptedData" }
    );
    let reference = xml.replace(
        &format!("<xenc:CipherValue>{data}</xenc:CipherValue>"),
        "<xenc:CipherReference URI=\"http://example/x\"></xenc:CipherReference>",
    );
    assert_eq!(structural(&reference), DecryptError::CipherReference { parent: "xenc:EncryptedData" });
    let bad_b64 = xml.replace(&key, &format!("{}*", &key[1..]));
    assert_eq!(structural(&bad_b64), DecryptError::BadBase64 { parent: "xenc:EncryptedKey" });
    let odd_len = tamper_data(&xml, |d| d.truncate(d.len() - 1));
    assert_eq!(structural(&odd_len), DecryptError::CipherLength("aes128-cbc"));
    let iv_only = tamper_data(&xml, |d| d.truncate(16));
    assert_eq!(structural(&iv_only), DecryptError::CipherLength("aes128-cbc"));

    let start = xml.find("<ds:KeyInfo").unwrap();
    let end = xml.find("</ds:KeyInfo>").unwrap() + "</ds:KeyInfo>".len();
    let no_key = format!("{}{}", &xml[..start], &xml[end..]);
    assert_eq!(structural(&no_key), DecryptError::MissingEncryptedKey);
    let encrypted_key = &xml[xml.find("<xenc:EncryptedKey").unwrap()..xml.find("</ds:KeyInfo>").unwrap()];
    let two = xml.replace("</ds:KeyInfo>", &format!("{encrypted_key}</ds:KeyInfo>"));
    assert_eq!(structural(&two), DecryptError::AmbiguousEncryptedKey);

    let wrapper = format!("<w xmlns=\"urn:x\">{xml}</w>");
    let doc = parse(&wrapper);
    assert_eq!(
        decrypt_encrypted_data(&doc, doc.root(), |_, _| Err(KeyUnwrapError::Rejected)),
        Err(DecryptError::NotEncryptedData)
    );
}

#[test]
fn oaep_parameters_other_than_sha1_are_refused() {
    let xml = encrypt(ContentEncryption::Aes128Gcm, KeyTransport::RsaOaepMgf1p);
    let method = format!("<xenc:EncryptionMethod Algorithm=\"{RSA_OAEP_MGF1P}\"></xenc:EncryptionMethod>");
    let with = |inner: &str| {
        xml.replace(
            &method,
            &format!("<xenc:EncryptionMethod Algorithm=\"{RSA_OAEP_MGF1P}\">{inner}</xenc:EncryptionMethod>"),
        )
    };
    let sha1 = with(&format!("<ds:DigestMethod xmlns:ds=\"{DSIG_NS}\" Algorithm=\"{SHA1}\"/>"));
    assert_eq!(decrypt_with(&sha1, recipient()).unwrap(), ASSERTION.as_bytes());
    let sha256 = with(&format!(
        "<ds:DigestMethod xmlns:ds=\"{DSIG_NS}\" Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>"
    ));
    assert_eq!(structural(&sha256), DecryptError::UnsupportedOaepParameters("digest other than SHA-1"));
    let label = with("<xenc:OAEPparams>AAAA</xenc:OAEPparams>");
    assert_eq!(structural(&label), DecryptError::UnsupportedOaepParameters("non-empty OAEPparams"));
}

#[test]
fn saml_sibling_encrypted_key_is_accepted() {
    // SAML 2.0 core §2.5.2 style: EncryptedKey beside EncryptedData, KeyInfo holding a
    // RetrievalMethod (not followed).
    let xml = encrypt(ContentEncryption::Aes256Cbc, KeyTransport::RsaOaepMgf1p);
    let start = xml.find("<xenc:EncryptedKey").unwrap();
    let end = xml.find("</xenc:EncryptedKey>").unwrap() + "</xenc:EncryptedKey>".len();
    let encrypted_key = &xml[start..end];
    let moved =
        format!("{}<ds:RetrievalMethod URI=\"#k\"></ds:RetrievalMethod>{}", &xml[..start], &xml[end..])
            .replace("</xenc:EncryptedData>", &format!("</xenc:EncryptedData>{encrypted_key}"));
    assert_eq!(decrypt_with(&moved, recipient()).unwrap(), ASSERTION.as_bytes());
}

#[test]
fn errors_never_show_key_material() {
    let xml = encrypt(ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5);
    let (key, data) = cipher_values(&xml);
    let e = decrypt_with(&xml, other()).unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&key[..16]) && !shown.contains(&data[..16]));
    let u = format!("{:?}", unwrapper(recipient()));
    assert!(!u.contains(&B64.encode(&recipient().pkcs8)[..16]));
}
