//! segl against "any PKCS#11 module": the test's SoftHSM token exported by `p11-kit server`
//! and reached through p11-kit's RPC client module, which behaves like a networked HSM (a
//! socket between segl and the keys; when the server dies, every call fails until the module
//! is re-initialized). Both signer modes sign, and the signatures verify with the certificate
//! `segl keys export-cert` exports. Then the fault: the p11-kit server (and the connection it
//! serves) is killed under load and started again; segl recovers without a restart and says
//! what happened. And the other fault of a networked HSM: the server stops answering (stopped
//! with SIGSTOP, its connection open); requests get a fault while it hangs, not a hang. And the
//! freeze p11-kit's client can cause when its connection ends in the middle of a reply.

mod common;
mod hsm_support;

use std::time::{Duration, Instant};

use common::{env, try_admin_get, xmlsec_verify, Server};
use hsm_support::{
    config_path, fault_code, keys_ok, p11kit_client_module, post, request, signing_certificate, via_p11kit,
    write_pem, Load, P11KitServer, RpcRelay, NEW,
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
        if let Some(failed) = samples.iter().find(|s| s.status != 200) {
            panic!("{mode}: a request failed: {} {}", failed.status, String::from_utf8_lossy(&failed.body));
        }
        assert!(samples.len() >= 6, "{mode}: {} requests", samples.len());
    }
}

/// The answers (status, body) of requests that failed.
type Answers = Vec<(u16, Vec<u8>)>;

/// Polls until a request succeeds (and verifies), for at most `limit`; the answers of the tries
/// that failed before. If none succeeds, fails the test saying `what` did not happen, with the
/// server's log and where its threads wait.
fn until_signing(server: &Server, exported: &std::path::Path, limit: Duration, what: &str) -> Answers {
    let deadline = Instant::now() + limit;
    let mut failed = Vec::new();
    while Instant::now() < deadline {
        let (status, body) = post(server.addr, NEW, &request());
        if status == 200 {
            xmlsec_verify(&body, exported).unwrap_or_else(|e| panic!("xmlsec1 rejects after recovery: {e}"));
            return failed;
        }
        failed.push((status, body));
        std::thread::sleep(Duration::from_millis(100));
    }
    let statuses: Vec<u16> = failed.iter().map(|(status, _)| *status).collect();
    panic!(
        "{what} (tries: {statuses:?}):\n{}\nwhere its threads wait:\n{}",
        server.log(),
        server.thread_states()
    );
}

/// After a fault: waits for segl to sign again ([`until_signing`]), lets the load run on a
/// little, and stops it. The failed tries, when segl signed again, and the load's samples.
fn recover_and_finish(
    server: &mut Server,
    load: Load,
    exported: &std::path::Path,
    limit: Duration,
    what: &str,
) -> (Answers, Duration, Vec<hsm_support::Sample>) {
    let failed = until_signing(server, exported, limit, what);
    let recovered_at = load.now();
    std::thread::sleep(Duration::from_millis(800));
    let samples = load.finish();
    assert!(server.is_running(), "segl exited");
    (failed, recovered_at, samples)
}

/// Each failed answer of the load's `samples` and of the tries while `recovering` is in the
/// audit log once, as what it was: a card handed to the signer and then not delivered has its
/// `issued` record taken back by a `withdrawn` one (a 500, or a 503 for a signature still
/// queued at its deadline); a request the exchange refused before that has a `refused` record.
/// Admission control's own refusals (503, before the request is read) are not audited.
fn failures_are_audited(server: &Server, samples: &[hsm_support::Sample], recovering: &Answers) {
    let answers = samples
        .iter()
        .map(|s| (s.status, &s.body[..]))
        .chain(recovering.iter().map(|(status, body)| (*status, &body[..])));
    let records: Vec<serde_json::Value> =
        server.audit().lines().map(|l| serde_json::from_str(l).expect("an audit record")).collect();
    let withdrawn = common::withdrawals(&records).len();
    let refused = records.iter().filter(|r| r["outcome"] == "refused").count();
    let queued_past_deadline =
        |body: &[u8]| String::from_utf8_lossy(body).contains("queued past its deadline");
    let audited = answers
        .filter(|&(status, body)| status == 500 || (status == 503 && queued_past_deadline(body)))
        .count();
    assert_eq!(
        withdrawn + refused,
        audited,
        "withdrawn ({withdrawn}) and refused ({refused}) records against failed requests that reached the exchange"
    );
}

/// Waits up to 8 s for `/readyz` to say ready: every seat is filled again, the replacement
/// sessions opened once the HSM answered.
fn ready_again(server: &Server) {
    let ready = || try_admin_get(server.admin, "/readyz").map(|(status, _)| status) == Some(200);
    let deadline = Instant::now() + Duration::from_secs(8);
    while !ready() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ready(), "/readyz does not say ready:\n{}", server.log());
}

/// segl signing through p11-kit's client at `address`, pipelined on `sessions` sessions per
/// core, giving up on a call after `call_timeout`.
fn start_pipelined(
    module: &std::path::Path,
    address: &str,
    sessions: usize,
    call_timeout: Duration,
) -> Server {
    Server::start_with(|t| {
        via_p11kit(t, module, address, "pipelined");
        for (setting, value) in [
            ("call_timeout_ms = 5000", call_timeout.as_millis()),
            ("sessions_per_core = 4", sessions as u128),
        ] {
            assert!(t.contains(setting), "the configuration no longer sets {setting}");
            let name = setting.split(' ').next().unwrap_or_default();
            *t = t.replace(setting, &format!("{name} = {value}"));
        }
    })
}

/// Every answer is a success or the STS's failure (500 dgws:internalerror), or, where
/// `refusals` allows, a 503 (admission control refusing, or a signature still queued at its
/// deadline, while the signer is stalled); and no request failed before `fault_at`.
fn only_hsm_faults(samples: &[hsm_support::Sample], fault_at: Duration, refusals: bool) {
    for s in samples {
        match s.status {
            200 => {}
            500 => assert_eq!(
                fault_code(&s.body).as_deref(),
                Some("dgws:internalerror"),
                "{}",
                String::from_utf8_lossy(&s.body)
            ),
            503 if refusals => {}
            other => {
                panic!("status {other} (0: no answer within 20 s): {}", String::from_utf8_lossy(&s.body))
            }
        }
        if s.status != 200 {
            assert!(s.done >= fault_at, "a request failed at {:?}, before the fault at {fault_at:?}", s.done);
        }
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
    let (failed_while_recovering, _, samples) = recover_and_finish(
        &mut server,
        load,
        &exported_path,
        Duration::from_secs(15),
        "segl did not recover after the HSM came back",
    );

    // Every request got an answer: success, or a SOAP fault saying the STS failed (never a
    // hang, a reset connection or another kind of fault).
    only_hsm_faults(&samples, killed_at, false);
    let ok_before = samples.iter().filter(|s| s.status == 200 && s.done < killed_at).count();
    let failed = samples.iter().filter(|s| s.status != 200).count();
    let ok_after = samples.iter().filter(|s| s.status == 200 && s.sent > restarted_at).count();
    assert!(ok_before > 0 && ok_after > 0, "before {ok_before}, after {ok_after}, failed {failed}");
    // Each card is recorded as issued before it is signed (the write overlaps the signature):
    // every request the HSM failed has that record taken back by a `withdrawn` one after it,
    // and no request that succeeded has.
    let records: Vec<serde_json::Value> =
        server.audit().lines().map(|l| serde_json::from_str(l).expect("an audit record")).collect();
    let withdrawn = common::withdrawals(&records);
    let failed_after_signing = samples.iter().filter(|s| s.status == 500).count()
        + failed_while_recovering.iter().filter(|(status, _)| *status == 500).count();
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

/// The HSM stops answering without closing anything (its server and the connection it serves
/// stopped with SIGSTOP). The calls in flight can never be interrupted: segl answers their
/// requests with a fault after `call_timeout_ms`, puts new sessions in the hung ones' places,
/// answers what queues behind them, says it is not ready, and signs again when the HSM answers
/// again.
#[test]
fn hung_hsm_server_is_answered_and_survived() {
    const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
    const HANG: Duration = Duration::from_secs(8);
    let _serial = serial();
    let Some((module, p11kit)) = setup("hang") else { return };
    let exported_path =
        write_pem("exported-sts-hang.pem", &keys_ok(&config_path(), &["export-cert", "sts-signing"]));
    // One session per core and more clients than sessions: signatures queue behind a call
    // when it hangs, in the worker's hands too (they must be answered all the same).
    let mut server = start_pipelined(&module, &p11kit.address(), 1, CALL_TIMEOUT);

    let load = Load::start(&server, 6, Duration::from_secs(40));
    std::thread::sleep(Duration::from_millis(600));
    p11kit.pause();
    // After the stop: a request answered between this and the stop would count as sent during
    // the hang.
    let paused_at = load.now();
    // While it hangs the node must say it cannot sign.
    let hang_ends = Instant::now() + HANG;
    let mut readiness = Vec::new();
    while Instant::now() < hang_ends {
        readiness.push(try_admin_get(server.admin, "/readyz"));
        std::thread::sleep(Duration::from_millis(200));
    }
    let resumed_at = load.now();
    p11kit.resume();

    let (failed_recovering, _, samples) = recover_and_finish(
        &mut server,
        load,
        &exported_path,
        Duration::from_secs(15),
        "segl did not sign again after the HSM answered again",
    );
    let log = server.log();

    only_hsm_faults(&samples, paused_at, true);
    // The point of the test: a request sent while the HSM hangs is answered while it still
    // hangs (the calls in flight when it stopped get their replies only when it resumes, and a
    // request waiting on one of them would wait as long as the hang). The margin is the time
    // to notice (the call timeout, twice: the sessions that replace the hung ones block too).
    let margin = CALL_TIMEOUT * 3;
    let during: Vec<_> =
        samples.iter().filter(|s| s.sent >= paused_at && s.sent + margin <= resumed_at).collect();
    assert!(during.len() >= 4, "only {} requests were sent during the hang", during.len());
    for s in &during {
        assert!(
            s.done < resumed_at && s.status != 200,
            "a request sent {:?} into the hang was answered {} at {:?}, {:?} after the HSM came back",
            s.sent - paused_at,
            s.status,
            s.done,
            s.done.saturating_sub(resumed_at)
        );
    }
    // Nor was any request, sent before or during the hang, held for the hang: one queued
    // behind the call that hung (in the worker's hands) is answered too.
    for s in &samples {
        assert!(
            s.done - s.sent <= margin,
            "a request sent {:?} after the HSM stopped was held {:?} (answered {})",
            s.sent.saturating_sub(paused_at),
            s.done - s.sent,
            s.status
        );
    }
    let not_ready = readiness.iter().flatten().filter(|(status, _)| *status == 503).count();
    assert!(
        not_ready > 0,
        "/readyz never said not ready while the HSM hung: {:?}\n{log}",
        readiness.iter().flatten().last()
    );
    assert!(log.contains("HSM call has not returned"), "{log}");
    let failed = samples.iter().filter(|s| s.status != 200).count() + failed_recovering.len();
    failures_are_audited(&server, &samples, &failed_recovering);
    let ok_after = samples.iter().filter(|s| s.status == 200 && s.sent > resumed_at).count();
    assert!(ok_after > 0, "no request succeeded after the HSM came back");
    ready_again(&server);
    eprintln!(
        "HSM hang: {} requests, {} sent during the hang and answered during it, {not_ready} of {} readiness polls not ready, {failed} failed, {ok_after} ok after",
        samples.len(),
        during.len(),
        readiness.len()
    );
    drop(p11kit);
}

/// The connection to the HSM ends in the middle of a reply, after its header, while other
/// calls share it (a relay cuts it there; a server killed under load does it by chance). p11-kit's
/// client never returns those other calls: before segl gave up on hung calls, the module's
/// re-initialization waited for them forever and every session queued behind it. Now their
/// requests are answered after `call_timeout_ms`, the module is re-initialized without them,
/// and new sessions sign.
#[test]
fn reply_cut_mid_way_freezes_no_session() {
    let _serial = serial();
    let Some((module, p11kit)) = setup("cut") else { return };
    let relay = RpcRelay::start(&env().dir.join("p11kit-cut-relay.sock"), &p11kit.socket);
    let exported_path =
        write_pem("exported-sts-cut.pem", &keys_ok(&config_path(), &["export-cert", "sts-signing"]));
    let mut server = start_pipelined(&module, &relay.address(), 4, Duration::from_millis(1000));

    let load = Load::start(&server, 8, Duration::from_secs(40));
    std::thread::sleep(Duration::from_millis(600));
    let cut_at = load.now();
    // A cut does not always leave a call hanging: the calls in flight may not be waiting for
    // their replies yet (they then fail at once, as after any lost connection). Cut again until
    // one hangs: the watchdog says so within the call timeout.
    for attempt in 1..=8 {
        relay.cut_next_reply();
        let deadline = Instant::now() + Duration::from_secs(10);
        while relay.cuts() < attempt {
            assert!(Instant::now() < deadline, "no reply was cut: never three calls in flight at once?");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(2000));
        if server.log().contains("HSM call has not returned") {
            break;
        }
    }
    let (failed_recovering, recovered_at, samples) = recover_and_finish(
        &mut server,
        load,
        &exported_path,
        Duration::from_secs(20),
        "segl froze after the reply was cut",
    );
    let log = server.log();
    // A cut did leave calls hanging (else this test would not test the freeze), and the
    // module was re-initialized without them.
    assert!(log.contains("HSM call has not returned"), "no call hung after {} cuts:\n{log}", relay.cuts());
    assert!(log.contains("re-initializing with PKCS#11 calls still in flight"), "{log}");
    assert!(log.contains("PKCS#11 module re-initialized"), "{log}");
    only_hsm_faults(&samples, cut_at, true);
    let failed = samples.iter().filter(|s| s.status != 200).count() + failed_recovering.len();
    failures_are_audited(&server, &samples, &failed_recovering);
    let ok_after = samples.iter().filter(|s| s.status == 200 && s.sent > recovered_at).count();
    assert!(
        ok_after > 0,
        "no request succeeded after the recovery: {:?}\n{log}",
        samples
            .iter()
            .filter(|s| s.sent > cut_at)
            .map(|s| (s.sent.as_millis(), s.done.as_millis(), s.status))
            .collect::<Vec<_>>()
    );
    ready_again(&server);
    eprintln!(
        "reply cut {} times: {} requests, {failed} failed, {ok_after} ok after the recovery",
        relay.cuts(),
        samples.len()
    );
    drop(relay);
    drop(p11kit);
}

/// SIGTERM while the HSM hangs: segl still stops, within its drain timeout, instead of waiting
/// for calls the HSM does not answer (the signing sessions', and the key inventory watcher's,
/// which reads the token every 250 ms).
#[test]
fn stops_while_the_hsm_hangs() {
    let _serial = serial();
    let Some((module, p11kit)) = setup("hang-stop") else { return };
    let mut server = start_pipelined(&module, &p11kit.address(), 1, Duration::from_millis(1000));
    let load = Load::start(&server, 2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    p11kit.pause();
    // Long enough for the inventory watcher's next read to be stuck too.
    std::thread::sleep(Duration::from_millis(1500));
    server.signal("TERM");
    // The configuration's drain timeout is 10 s; the requests in flight are answered within the
    // call timeout, so the drain itself ends long before.
    let exited = server.wait_exit(Duration::from_secs(20));
    let threads = server.thread_states();
    p11kit.resume();
    load.finish();
    let status = exited.unwrap_or_else(|| {
        panic!("segl did not stop while the HSM hung:\n{}\nwhere its threads wait:\n{threads}", server.log())
    });
    assert!(status.success(), "segl exited with {status}:\n{}", server.log());
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
