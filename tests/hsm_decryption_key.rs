//! The STS's decryption key on the HSM, as an operator manages it: `segl keys generate
//! --purpose decryption` (decrypt-only, non-extractable, outside the signing inventory), `segl
//! keys public-key` for the CA, `import-cert`; it can never become the signing key. A server
//! configured with it publishes its certificate (state `encryption`) beside the signing
//! certificates, and decrypts bootstrap tokens encrypted to it.
//!
//! Its own test binary: it adds a key to the test token.

mod common;
mod hsm_support;

use common::{env, Server};
use hsm_support::{config_path, get, keys, keys_ok, write_pem};
use segl::dev::oio::{bootstrap_token, bst2sosi_request, issued_card, BootstrapSpec};
use segl::dev::pki::Identity;
use segl::token::bootstrap::TokenProfile;
use segl::xml::enc::{encrypt_assertion, ContentEncryption, KeyTransport};

#[test]
fn an_operator_makes_a_decryption_key_that_decrypts_and_never_signs() {
    let config = config_path();
    let label = "bst-decryption-2";
    keys_ok(&config, &["generate", label, "--purpose", "decryption", "--bits", "2048"]);
    let public = keys_ok(&config, &["public-key", label]);
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    // A decryption key cannot sign its own certificate request.
    let (ok, _, stderr) = keys(&config, &["csr", label]);
    assert!(!ok, "a decrypt-only key must not sign a CSR");
    assert!(!stderr.is_empty());
    let cert = segl::dev::pki::issue_encryption_certificate(&env().config, &public, "SEGL STS encryption 2")
        .unwrap();
    let cert_path = write_pem("bst-decryption-2.pem", &cert);
    keys_ok(&config, &["import-cert", label, cert_path.to_str().unwrap()]);
    // It is not a signing key, and cannot become one.
    let (ok, _, stderr) = keys(&config, &["activate", label]);
    assert!(!ok, "a decryption key must never be activated for signing");
    assert!(stderr.contains(label), "{stderr}");
    let listed = keys_ok(&config, &["list"]);
    assert!(listed.lines().any(|l| l.starts_with(label)), "{listed}");

    // A server with it as its decryption key publishes it, and decrypts tokens encrypted to it.
    let server = Server::start_with(|c| {
        *c = c.replace("decryption_key = \"sts-decryption\"", &format!("decryption_key = \"{label}\""));
    });
    let (status, metadata) = get(server.addr, "/sts/metadata/certificates");
    assert_eq!(status, 200);
    let metadata: serde_json::Value = serde_json::from_slice(&metadata).unwrap();
    let published: Vec<_> = metadata["certificates"].as_array().unwrap().iter().collect();
    let encryption: Vec<_> = published.iter().filter(|c| c["state"] == "encryption").collect();
    assert_eq!(encryption.len(), 1, "{metadata}");
    assert_eq!(encryption[0]["label"], label);
    let der = segl::dev::client::read_certificate(&cert_path).unwrap();
    let token = bootstrap_token(
        &env().client,
        &BootstrapSpec::new(
            TokenProfile::Oioh3Bst,
            "https://idp.dev.segl.example",
            Some(env().client.certificate(Identity::Voces).unwrap()),
        ),
    )
    .unwrap();
    // The token encrypted to `certificate`, in a BST2SOSI request.
    let send_encrypted_to = |certificate: &[u8]| {
        let encrypted =
            encrypt_assertion(&token, certificate, ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5)
                .unwrap();
        let claims = [("medcom:ITSystemName", "Testby Journal")];
        let request = bst2sosi_request(&env().client, &encrypted, &claims, Identity::Voces).unwrap();
        server.post("/sts/services/BST2SOSI", &request)
    };
    let reply = send_encrypted_to(&der);
    assert_eq!(reply.status, 200, "{}\n{}", reply.text(), server.log());
    assert!(issued_card(&reply.body).is_ok());
    // Encrypted to the other decryption key (configured before, not now): refused.
    let old = segl::dev::client::read_certificate(&env().pki("sts-decryption")).unwrap();
    let reply = send_encrypted_to(&old);
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("could not be decrypted"), "{}", reply.text());
    // A wrapped key whose value is not below the modulus is the same refusal, not an HSM
    // failure (SoftHSM answers such input with CKR_GENERAL_ERROR, which once read as a lost
    // session: "key unwrapping unavailable", a different answer).
    use base64::Engine;
    let encrypted =
        encrypt_assertion(&token, &der, ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5).unwrap();
    let text = String::from_utf8(encrypted).unwrap();
    let start = text.find("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
    let end = start + text[start..].find('<').unwrap();
    let too_big = base64::engine::general_purpose::STANDARD.encode([0xffu8; 256]);
    let forged = format!("{}{too_big}{}", &text[..start], &text[end..]);
    let claims = [("medcom:ITSystemName", "Testby Journal")];
    let request = bst2sosi_request(&env().client, forged.as_bytes(), &claims, Identity::Voces).unwrap();
    let reply = server.post("/sts/services/BST2SOSI", &request);
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("could not be decrypted"), "{}\n{}", reply.text(), server.log());
}
