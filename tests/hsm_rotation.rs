//! Key rotation while serving: steady traffic against the real server, and meanwhile the
//! operator's `segl keys generate → csr → import-cert → activate` (the certificate issued by
//! the development CA). No request may fail; responses finished before the switch carry and
//! verify with the old certificate, responses started after it the new one. Also: the
//! metadata endpoint publishes the next certificate before it signs and the retired one after,
//! every key operation is in the audit log, and a second server on the same token switches
//! too.
//!
//! Its own test binary: rotating changes the token's active key for everything in the binary.

mod common;
mod hsm_support;

use std::time::Duration;

use common::{env, xmlsec_verify, Server};
use hsm_support::{config_path, get, keys, keys_ok, pem, signing_certificate, write_pem, Load};

#[test]
fn rotation_under_load_fails_no_request() {
    let config = config_path();
    // A quick poll keeps the test short; the default (250 ms) is what the README promises.
    let server = Server::start_with(|t| *t = t.replace("inventory_poll_ms = 250", "inventory_poll_ms = 100"));
    // A second appliance on the same HSM, idle: it must switch too.
    let other = Server::start_with(|t| *t = t.replace("inventory_poll_ms = 250", "inventory_poll_ms = 100"));
    let old_der = segl::dev::client::read_certificate(&env().pki("sts-signing")).unwrap();

    let load = Load::start(&server, 4, Duration::from_secs(60));
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
        let cert = signing_certificate(&s.body);
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
    // Independent check: xmlsec1 with only the expected certificate's key.
    let old_pem = env().pki("sts-signing");
    for s in old.iter().rev().take(3) {
        xmlsec_verify(&s.body, &old_pem)
            .unwrap_or_else(|e| panic!("xmlsec1 rejects a pre-switch response: {e}"));
    }
    for s in new.iter().take(3) {
        xmlsec_verify(&s.body, &issued_path)
            .unwrap_or_else(|e| panic!("xmlsec1 rejects a post-switch response: {e}"));
        assert!(
            xmlsec_verify(&s.body, &old_pem).is_err(),
            "a post-switch response verifies with the old key"
        );
    }

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
        "rotation under load: {} requests, {} before the switch, {} after, 0 failed",
        samples.len(),
        old.len(),
        new.len()
    );
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
