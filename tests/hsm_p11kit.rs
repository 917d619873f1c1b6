//! segl against "any PKCS#11 module": the test's SoftHSM token exported by `p11-kit server`
//! and reached through p11-kit's RPC client module, which behaves like a networked HSM (a
//! socket between segl and the keys; when the server dies, every call fails until the module
//! is re-initialized). Both signer modes sign, and the signatures verify with the certificate
//! `segl keys export-cert` exports. Then the fault: the p11-kit server (and the connection it
//! serves) is killed under load and started again; segl recovers without a restart and says
//! what happened.

mod common;
mod hsm_support;

use std::time::{Duration, Instant};

use common::{env, xmlsec_verify, Server};
use hsm_support::{
    config_path, fault_code, keys_ok, p11kit_client_module, post, request, signing_certificate, via_p11kit,
    write_pem, Load, P11KitServer, NEW,
};

/// One p11-kit server at a time: SoftHSM in the test process and in p11-kit's forked server
/// share the token files.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn setup(name: &str) -> Option<(std::path::PathBuf, P11KitServer)> {
    let Some(module) = p11kit_client_module() else {
        eprintln!("SKIP: p11-kit client module not installed (tests/install-host-packages installs it)");
        return None;
    };
    let socket = env().dir.join(format!("p11kit-{name}.sock"));
    Some((module, P11KitServer::start(&socket)))
}

#[test]
fn both_signer_modes_sign_through_p11kit_rpc() {
    let _serial = serial();
    let Some((module, p11kit)) = setup("modes") else { return };
    let exported = keys_ok(&config_path(), &["export-cert", "sts-signing"]);
    let exported_path = write_pem("exported-sts.pem", &exported);
    let exported_der = segl::dev::client::read_certificate(&exported_path).unwrap();
    for mode in ["inline", "pipelined"] {
        let server = Server::start_with(|t| via_p11kit(t, &module, &p11kit.address(), mode));
        for _ in 0..3 {
            let (status, body) = post(server.addr, NEW, &request());
            assert_eq!(status, 200, "{mode}: {}", String::from_utf8_lossy(&body));
            assert_eq!(signing_certificate(&body), exported_der, "{mode}");
            xmlsec_verify(&body, &exported_path).unwrap_or_else(|e| panic!("{mode}: xmlsec1 rejects: {e}"));
        }
        // Concurrent requests keep several operations in flight.
        let load = Load::start(&server, 6, Duration::from_millis(800));
        std::thread::sleep(Duration::from_millis(800));
        let samples = load.finish();
        assert!(samples.iter().all(|s| s.status == 200), "{mode}: a request failed");
        assert!(samples.len() >= 6, "{mode}: {} requests", samples.len());
    }
}

#[test]
fn killed_hsm_server_is_survived_without_restart() {
    let _serial = serial();
    let Some((module, mut p11kit)) = setup("fault") else { return };
    let exported_path =
        write_pem("exported-sts-fault.pem", &keys_ok(&config_path(), &["export-cert", "sts-signing"]));
    let mut server = Server::start_with(|t| via_p11kit(t, &module, &p11kit.address(), "pipelined"));

    let load = Load::start(&server, 4, Duration::from_secs(40));
    std::thread::sleep(Duration::from_millis(600));
    let killed_at = load.now();
    p11kit.kill();
    // The HSM is away for a while; requests meanwhile must be answered, not hang.
    std::thread::sleep(Duration::from_millis(1200));
    let socket = p11kit.socket.clone();
    drop(p11kit);
    let p11kit = P11KitServer::start(&socket);
    let restarted_at = load.now();

    // Recovery: within a few seconds requests succeed again, on the same segl process.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut recovered = false;
    let mut failed_while_recovering = 0;
    while Instant::now() < deadline {
        let (status, body) = post(server.addr, NEW, &request());
        failed_while_recovering += usize::from(status == 500);
        if status == 200 {
            xmlsec_verify(&body, &exported_path)
                .unwrap_or_else(|e| panic!("xmlsec1 rejects after recovery: {e}"));
            recovered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        recovered,
        "segl did not recover after the HSM came back:\n{}\nwhere its threads wait:\n{}",
        server.log(),
        server.thread_states()
    );
    std::thread::sleep(Duration::from_millis(800));
    let samples = load.finish();
    assert!(server.is_running(), "segl exited");

    // Every request got an answer: success, or a SOAP fault saying the STS failed (never a
    // hang, a reset connection or another kind of fault).
    for s in &samples {
        match s.status {
            200 => {}
            500 => assert_eq!(
                fault_code(&s.body).as_deref(),
                Some("dgws:internalerror"),
                "{}",
                String::from_utf8_lossy(&s.body)
            ),
            other => panic!("status {other}: {}", String::from_utf8_lossy(&s.body)),
        }
    }
    let ok_before = samples.iter().filter(|s| s.status == 200 && s.done < killed_at).count();
    let failed = samples.iter().filter(|s| s.status != 200).count();
    let ok_after = samples.iter().filter(|s| s.status == 200 && s.sent > restarted_at).count();
    assert!(ok_before > 0 && ok_after > 0, "before {ok_before}, after {ok_after}, failed {failed}");
    // Failures only while the HSM was away (plus the time to notice it is back).
    for s in samples.iter().filter(|s| s.status != 200) {
        assert!(s.done >= killed_at, "a request failed at {:?}, before the fault at {killed_at:?}", s.done);
    }
    // Each card is recorded as issued before it is signed (the write overlaps the signature):
    // every request the HSM failed has that record taken back by a `withdrawn` one after it,
    // and no request that succeeded has.
    let records: Vec<serde_json::Value> =
        server.audit().lines().map(|l| serde_json::from_str(l).expect("an audit record")).collect();
    let withdrawn = common::withdrawals(&records);
    let failed_after_signing = samples.iter().filter(|s| s.status == 500).count() + failed_while_recovering;
    assert_eq!(withdrawn.len(), failed_after_signing, "withdrawn records against failed requests");
    for r in withdrawn {
        assert_eq!(r["fault"], "dgws:internalerror", "{r}");
    }
    // Every session reopens, the last ones on their backoff timer (at most 2 s apart).
    let deadline = Instant::now() + Duration::from_secs(8);
    while !server.log().contains("HSM ready") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.log();
    assert!(log.contains("HSM session lost"), "{log}");
    assert!(log.contains("PKCS#11 module re-initialized"), "{log}");
    assert!(log.contains("HSM ready"), "{log}");
    eprintln!(
        "HSM fault: {} requests, {ok_before} ok before the kill, {failed} answered with a fault while it was down, {ok_after} ok after the restart",
        samples.len()
    );
    drop(p11kit);
}

#[test]
fn token_and_key_chosen_by_pkcs11_uri_with_key_id() {
    let _serial = serial();
    // `segl dev setup` gives the STS key the CKA_ID of its label's bytes.
    let id: String = env().config.hsm.key_label.bytes().map(|b| format!("%{b:02x}")).collect();
    let server = Server::start_with(|t| {
        *t = t.replace("token_label = \"segl-sts\"\n", "").replace(
            "key_label = \"sts-signing\"\n",
            &format!("uri = \"pkcs11:token=segl-sts;id={id};type=private\"\n"),
        );
        assert!(!t.contains("key_label = \"sts-signing\""), "the edit must remove key_label");
    });
    let (status, body) = post(server.addr, NEW, &request());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    xmlsec_verify(&body, &env().pki("sts-signing")).unwrap();
}
