//! Key rotation while serving: steady traffic against the real server, and meanwhile the
//! operator's `segl keys generate → csr → import-cert → activate` (the certificate issued by
//! the development CA). No request may fail; responses finished before the switch carry and
//! verify with the old certificate, responses started after it the new one. Also: the
//! metadata endpoint publishes the next certificate before it signs and the retired one after,
//! every key operation is in the audit log, and a second server on the same token switches
//! too.
//!
//! Half the load is Sosi2OIOSaml: its answers carry two STS signatures (the assertion and the
//! header), both by one key, the new one once the switch is done; and a card the old key
//! signed is still exchanged after the switch (the retired certificate stays published, and a
//! card signed by any published certificate is accepted).
//!
//! Its own test binary: rotating changes the token's active key for everything in the binary.

mod common;
mod hsm_support;

use std::time::Duration;

use base64::Engine as _;
use common::{env, xmlsec_verify, Server};
use hsm_support::{
    config_path, get, keys, keys_ok, oio_header_certificate, pem, response_certificate, signing_certificate,
    write_pem, Exchange, Load, Sample, NEW, SOSI2OIOSAML,
};

#[test]
fn rotation_under_load_fails_no_request() {
    let config = config_path();
    // A quick poll keeps the test short; the default (250 ms) is what the README promises.
    let server = Server::start_with(|t| *t = t.replace("inventory_poll_ms = 250", "inventory_poll_ms = 100"));
    // A second appliance on the same HSM, idle: it must switch too.
    let other = Server::start_with(|t| *t = t.replace("inventory_poll_ms = 250", "inventory_poll_ms = 100"));
    let old_der = segl::dev::client::read_certificate(&env().pki("sts-signing")).unwrap();

    // Two threads of DGWS, two of Sosi2OIOSaml (each also fetching its cards from
    // NewSecurityTokenService).
    let load = Load::start_mixed(&server, 2, 2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(700));

    // The operator's steps, each a separate `segl keys` process talking to the same token.
    keys_ok(&config, &["generate", "sts-rotated", "--bits", "2048"]);
    let csr = keys_ok(
        &config,
        &["csr", "sts-rotated", "--subject", "C=DK,O=SEGL Development // CVR:12345678,CN=SEGL STS rotated,serialNumber=CVR:12345678-FID:00000002"],
    );
    let issued = segl::dev::pki::issue_sts_certificate(&env().config, &csr)
        .expect("development CA issues the certificate");
    let issued_path = write_pem("sts-rotated.pem", &issued);
    // A certificate for another key is refused.
    let (ok, _, stderr) =
        keys(&config, &["import-cert", "sts-rotated", env().pki("sts-signing").to_str().unwrap()]);
    assert!(!ok && stderr.contains("not for key"), "{stderr}");
    keys_ok(&config, &["import-cert", "sts-rotated", issued_path.to_str().unwrap()]);
    let new_der = segl::dev::client::read_certificate(&issued_path).unwrap();

    // Relying parties see the next certificate before it signs.
    std::thread::sleep(Duration::from_millis(400));
    let published = fetch_metadata(&server);
    assert_eq!(state_of(&published, "sts-rotated"), Some("next".into()), "{published}");
    assert_eq!(state_of(&published, "sts-signing"), Some("active".into()), "{published}");

    // A card the old key signs, to be exchanged once the new key is active.
    let (status, reply) = hsm_support::post(server.addr, NEW, &hsm_support::request());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(signing_certificate(&reply), old_der);
    let pre_switch_card = segl::dev::oio::issued_card(&reply).unwrap();

    let before_switch = load.now();
    keys_ok(&config, &["activate", "sts-rotated"]);
    let after_switch = load.now();
    // Traffic goes on well past the pickup interval.
    std::thread::sleep(Duration::from_millis(1500));
    let samples = load.finish();

    let failed: Vec<_> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed; first: {} {}",
        failed.len(),
        samples.len(),
        failed[0].status,
        String::from_utf8_lossy(&failed[0].body)
    );
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for s in &samples {
        let cert = response_certificate(s);
        if cert == old_der {
            assert!(
                s.sent < after_switch + Duration::from_secs(1),
                "old key used {:?} after the switch",
                s.sent - after_switch
            );
            old.push(s);
        } else if cert == new_der {
            assert!(s.done > before_switch, "new key used before the switch");
            new.push(s);
        } else {
            panic!("a response signed with neither the old nor the new certificate");
        }
    }
    assert!(old.len() >= 5 && new.len() >= 5, "old {} new {} of {}", old.len(), new.len(), samples.len());
    let oio = |v: &[&Sample]| v.iter().filter(|s| s.exchange == Exchange::Sosi2OioSaml).count();
    let (old_oio, new_oio) = (oio(&old), oio(&new));
    assert!(old_oio >= 3 && new_oio >= 3, "Sosi2OIOSaml answers: old {old_oio} new {new_oio}");
    // Independent check: xmlsec1 with only the expected certificate's key.
    let old_pem = env().pki("sts-signing");
    let dgws = |v: &[&Sample]| -> Vec<Sample> {
        v.iter().filter(|s| s.exchange == Exchange::Dgws).map(|s| (*s).clone()).collect()
    };
    let (old_dgws, new_dgws) = (dgws(&old), dgws(&new));
    for s in old_dgws.iter().rev().take(3) {
        xmlsec_verify(&s.body, &old_pem)
            .unwrap_or_else(|e| panic!("xmlsec1 rejects a pre-switch response: {e}"));
    }
    for s in new_dgws.iter().take(3) {
        xmlsec_verify(&s.body, &issued_path)
            .unwrap_or_else(|e| panic!("xmlsec1 rejects a post-switch response: {e}"));
        assert!(
            xmlsec_verify(&s.body, &old_pem).is_err(),
            "a post-switch response verifies with the old key"
        );
    }

    // Sosi2OIOSaml answers: the header signature by the expected key (xmlsec1 with only that
    // certificate), and the assertion inside signed by the same key as the header, for every
    // answer finished around the switch.
    let oio_old: Vec<&Sample> =
        old.iter().copied().filter(|s| s.exchange == Exchange::Sosi2OioSaml).collect();
    let oio_new: Vec<&Sample> =
        new.iter().copied().filter(|s| s.exchange == Exchange::Sosi2OioSaml).collect();
    for s in oio_old.iter().rev().take(3) {
        assert!(header_verifies(&s.body, &old_pem), "xmlsec1 rejects a pre-switch OIO header signature");
    }
    for s in oio_new.iter().take(3) {
        assert!(header_verifies(&s.body, &issued_path), "xmlsec1 rejects a post-switch OIO header signature");
        assert!(!header_verifies(&s.body, &old_pem), "a post-switch OIO header verifies with the old key");
        let assertion = decrypt(&s.body);
        assert!(assertion_verifies(&assertion, &issued_path), "xmlsec1 rejects a post-switch assertion");
    }
    let window =
        before_switch.saturating_sub(Duration::from_millis(500))..after_switch + Duration::from_secs(1);
    let around: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.exchange == Exchange::Sosi2OioSaml && window.contains(&s.done))
        .take(80)
        .collect();
    for s in &around {
        let header = oio_header_certificate(&s.body);
        assert_eq!(
            assertion_certificate(&decrypt(&s.body)),
            header,
            "assertion and header signed by different keys"
        );
    }
    // Cards the old key signed, exchanged well after the switch, answered by the new key.
    let late_old_cards = samples
        .iter()
        .filter(|s| {
            s.card.as_ref().is_some_and(|(cert, issued)| *cert == old_der && *issued < before_switch)
                && s.sent > after_switch + Duration::from_millis(300)
        })
        .inspect(|s| assert_eq!(oio_header_certificate(&s.body), new_der))
        .count();
    assert!(late_old_cards >= 1, "no card of the old key was exchanged after the switch");
    // The same with a card taken just before `activate`, once the load has stopped.
    let request = segl::dev::oio::sosi2oiosaml_request(
        &pre_switch_card,
        segl::dev::audience::DEV_AUDIENCE,
        segl::dev::oio::CardPlacement::ActAs,
    );
    let (status, body) = hsm_support::post(server.addr, SOSI2OIOSAML, &request);
    assert_eq!(
        status,
        200,
        "a card signed by the retired key is refused: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(oio_header_certificate(&body), new_der);
    assert!(header_verifies(&body, &issued_path) && !header_verifies(&body, &old_pem));
    let assertion = decrypt(&body);
    assert!(assertion_verifies(&assertion, &issued_path) && !assertion_verifies(&assertion, &old_pem));
    assert_eq!(assertion_certificate(&assertion), new_der);

    // After the switch: the new key is active, the old one retired and still published.
    let published = fetch_metadata(&server);
    assert_eq!(state_of(&published, "sts-rotated"), Some("active".into()), "{published}");
    assert_eq!(state_of(&published, "sts-signing"), Some("retired".into()), "{published}");
    let (status, body) = hsm_support::post(other.addr, hsm_support::NEW, &hsm_support::request());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(signing_certificate(&body), new_der, "the second appliance switched too");
    let list = keys_ok(&config, &["list"]);
    assert!(list.lines().any(|l| l.starts_with("sts-rotated") && l.contains(" active ")), "{list}");
    assert!(list.lines().any(|l| l.starts_with("sts-signing") && l.contains(" retired ")), "{list}");
    // The exported certificate is the imported one.
    let exported = keys_ok(&config, &["export-cert", "sts-rotated"]);
    assert_eq!(exported, pem(&new_der));
    assert!(server.log().contains("active signing key switched"), "{}", server.log());

    // The active key cannot be retired, a retired key cannot come back.
    let (ok, _, stderr) = keys(&config, &["retire", "sts-rotated"]);
    assert!(!ok && stderr.contains("activate its successor"), "{stderr}");
    let (ok, _, stderr) = keys(&config, &["activate", "sts-signing"]);
    assert!(!ok && stderr.contains("only a next key"), "{stderr}");

    // Every operation, refused ones included, is in the audit log.
    let audit = std::fs::read_to_string(env().dir.join("key-audit.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ops: Vec<(String, String)> = records
        .iter()
        .map(|r| (r["operation"].as_str().unwrap().to_owned(), r["outcome"].as_str().unwrap().to_owned()))
        .collect();
    for expected in [
        ("generate", "ok"),
        ("csr", "ok"),
        ("import-cert", "refused"),
        ("import-cert", "ok"),
        ("activate", "ok"),
        ("export-cert", "ok"),
        ("retire", "refused"),
        ("activate", "refused"),
    ] {
        assert!(ops.contains(&(expected.0.into(), expected.1.into())), "{expected:?} missing from {ops:?}");
    }
    assert!(records.iter().all(|r| r["token"] == "segl-sts" && r["time"].is_string()));
    eprintln!(
        "rotation under load: {} requests ({} Sosi2OIOSaml), {} by the old key ({old_oio} OIO), {} by the new ({new_oio} OIO), 0 failed; {} OIO answers around the switch with one key each; {late_old_cards} old-key cards exchanged after the switch",
        samples.len(),
        samples.iter().filter(|s| s.exchange == Exchange::Sosi2OioSaml).count(),
        old.len(),
        new.len(),
        around.len(),
    );
}

/// xmlsec1 verifies an OIO answer's header signature with `cert_pem`'s key alone.
fn header_verifies(body: &[u8], cert_pem: &std::path::Path) -> bool {
    let args = common::xmlsec_oio_header_args(cert_pem);
    common::xmlsec(&args.iter().map(String::as_str).collect::<Vec<_>>(), body).is_ok()
}

/// The answer with its EncryptedAssertion decrypted by the development audience's key (xmlsec1).
fn decrypt(body: &[u8]) -> Vec<u8> {
    let key = env().dir.join("pki").join("dev-audience-key.pem");
    common::xmlsec(&["--decrypt", "--privkey-pem", key.to_str().unwrap()], body)
        .unwrap_or_else(|e| panic!("xmlsec1 cannot decrypt: {e}"))
}

/// xmlsec1 verifies the decrypted assertion's own signature with `cert_pem`'s key alone.
fn assertion_verifies(decrypted: &[u8], cert_pem: &std::path::Path) -> bool {
    let args = common::xmlsec_assertion_args(cert_pem);
    common::xmlsec(&args.iter().map(String::as_str).collect::<Vec<_>>(), decrypted).is_ok()
}

/// The certificate in the KeyInfo of the assertion's own signature: the first
/// `ds:X509Certificate` of the decrypted answer (the signature follows the assertion's Issuer;
/// the bootstrap card, with its own signature, comes later in the attributes).
fn assertion_certificate(decrypted: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(decrypted);
    let assertion = text.find("<saml:Assertion").expect("a decrypted assertion");
    let start = text[assertion..].find("X509Certificate>").expect("KeyInfo certificate") + assertion + 16;
    let end = text[start..].find('<').unwrap() + start;
    let b64: String = text[start..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).expect("base64 certificate")
}

fn fetch_metadata(server: &Server) -> String {
    let (status, body) = get(server.addr, "/sts/metadata/certificates");
    assert_eq!(status, 200);
    String::from_utf8(body).unwrap()
}

fn state_of(metadata: &str, label: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(metadata).unwrap();
    doc["certificates"]
        .as_array()?
        .iter()
        .find(|c| c["label"] == label)
        .map(|c| c["state"].as_str().unwrap_or_default().to_owned())
}
