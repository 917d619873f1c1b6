//! The batched signer against the real SoftHSMv2 module: both modes sign correctly under
//! concurrency, batching happens, and a real fault produced on demand (the application logged
//! out of the token) is recovered from without losing requests, with the health state
//! telling the story.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use glommio::{LocalExecutorBuilder, Placement};
use segl_pkcs11::{
    BatchConfig, BatchSigner, HashAlgorithm, HsmModule, HsmState, HsmStatus, SecretPin, SignerMode, Token,
};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "segl-batch-test";
const USER_PIN: &str = "user-pin-2468";
const KEY: &str = "batch-key";

struct Fixture {
    token: Token,
    public_pkcs1: Vec<u8>,
}

/// One token with one key in a directory private to this process; `None` without SoftHSM.
fn fixture() -> Option<&'static Fixture> {
    if !Path::new(MODULE).exists() {
        println!("SoftHSMv2 not installed at {MODULE}; skipping");
        return None;
    }
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    Some(FIXTURE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("segl-batch-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let module = HsmModule::load(Path::new(MODULE)).unwrap();
        let token =
            module.init_token(TOKEN, &SecretPin::new("so-pin-1357"), &SecretPin::new(USER_PIN)).unwrap();
        token.login(&SecretPin::new(USER_PIN)).unwrap();
        let public_pkcs1 = token.session().unwrap().generate_rsa_key(KEY, b"bk", 2048).unwrap().pkcs1_der();
        Fixture { token, public_pkcs1 }
    }))
}

/// Tests share one token and one login; faults injected by one must not hit another.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A raw cryptoki context on the same library: the "other part of the process" that logs out
/// or closes sessions. Login state is per process, so this is a real fault for the signer.
fn raw() -> &'static Pkcs11 {
    static CTX: OnceLock<Pkcs11> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Pkcs11::new(MODULE).unwrap();
        // Already initialized by HsmModule::load; the error is expected.
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        ctx
    })
}

fn raw_slot() -> cryptoki::slot::Slot {
    let ctx = raw();
    ctx.get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
        .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    /// C_Logout from another session: every session of the process loses the login.
    Logout,
}

struct Outcome {
    ok: usize,
    failed: Vec<String>,
    stats: segl_pkcs11::SignerStatsSnapshot,
}

/// Runs `total` signatures from `concurrency` tasks on one pinned executor, as the server
/// does, injecting `fault` after `fault_after` of them completed.
fn run(
    mode: SignerMode,
    sessions: usize,
    total: usize,
    concurrency: usize,
    fault: Fault,
    status: Arc<HsmStatus>,
) -> Outcome {
    let config = BatchConfig::new(mode, sessions, 64, format!("test {mode:?}"));
    let public = fixture().unwrap().public_pkcs1.clone();
    with_signer(config, status, move |signer| async move {
        let key: Arc<str> = Arc::from(KEY);
        let done = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let fault_at = total / 3;
        let tasks: Vec<_> = (0..concurrency)
            .map(|t| {
                let (signer, key, public, done) = (signer.clone(), key.clone(), public.clone(), done.clone());
                glommio::spawn_local(async move {
                    let mut ok = 0;
                    let mut failed = Vec::new();
                    for n in (t..total).step_by(concurrency) {
                        let msg = format!("request {n}");
                        let d = digest::digest(&digest::SHA256, msg.as_bytes());
                        match signer.sign(&key, HashAlgorithm::Sha256, d.as_ref()).await {
                            Ok(sig) => {
                                UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
                                    .verify(msg.as_bytes(), &sig)
                                    .expect("signature verifies");
                                ok += 1;
                            }
                            Err(e) => failed.push(e.to_string()),
                        }
                        done.set(done.get() + 1);
                        if done.get() == fault_at {
                            inject(fault);
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut outcome = Outcome { ok: 0, failed: Vec::new(), stats: Default::default() };
        for t in tasks {
            let (ok, failed) = t.await;
            outcome.ok += ok;
            outcome.failed.extend(failed);
        }
        outcome.stats = signer.stats().snapshot();
        outcome
    })
}

/// Opens a signer on the test token and runs `body` with it on one executor, its driver
/// running beside it as on a server core; returns what `body` returns.
fn with_signer<T, F, Fut>(config: BatchConfig, status: Arc<HsmStatus>, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(std::rc::Rc<BatchSigner>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let (signer, driver) = BatchSigner::open(&fixture().unwrap().token, &config, status).unwrap();
    LocalExecutorBuilder::new(Placement::Unbound)
        .spawn(move || async move {
            glommio::spawn_local(driver.run()).detach();
            body(std::rc::Rc::new(signer)).await
        })
        .unwrap()
        .join()
        .unwrap()
}

fn inject(fault: Fault) {
    match fault {
        Fault::None => {}
        Fault::Logout => {
            let session = raw().open_ro_session(raw_slot()).unwrap();
            session.logout().unwrap();
        }
    }
}

#[test]
fn inline_mode_batches_and_signs() {
    let _serial = serial();
    let Some(_) = fixture() else { return };
    let status = Arc::new(HsmStatus::default());
    let out = run(SignerMode::Inline, 1, 200, 16, Fault::None, status.clone());
    assert_eq!(out.ok, 200, "{:?}", out.failed);
    assert_eq!(out.stats.ops, 200);
    assert_eq!(out.stats.queue_depth, 0);
    // 16 requests ready at once are drained together, not one by one.
    assert!(out.stats.max_batch > 1 && out.stats.batches < 200, "{:?}", out.stats);
    assert_eq!(status.snapshot().state, HsmState::Ready);
}

#[test]
fn pipelined_mode_signs_on_worker_sessions() {
    let _serial = serial();
    let Some(_) = fixture() else { return };
    let status = Arc::new(HsmStatus::default());
    let out = run(SignerMode::Pipelined, 3, 150, 12, Fault::None, status.clone());
    assert_eq!(out.ok, 150, "{:?}", out.failed);
    assert_eq!(out.stats.ops, 150);
    assert!(out.stats.hsm_time > Duration::ZERO);
    // SoftHSM signs in this process: the signing threads' CPU is measured, and an RSA-2048
    // signature takes well over 50 µs of it (and no more CPU than wall time on one thread).
    assert!(out.stats.hsm_cpu_time > Duration::from_micros(50 * 150), "{:?}", out.stats);
    assert!(out.stats.hsm_cpu_time <= out.stats.hsm_time + Duration::from_millis(50), "{:?}", out.stats);
    let s = status.snapshot();
    assert_eq!((s.state, s.sessions, s.healthy), (HsmState::Ready, 3, 3));
}

#[test]
fn logout_under_load_is_recovered_by_logging_in_again() {
    let _serial = serial();
    let Some(_) = fixture() else { return };
    for mode in [SignerMode::Inline, SignerMode::Pipelined] {
        let status = Arc::new(HsmStatus::default());
        let out = run(mode, 2, 120, 8, Fault::Logout, status.clone());
        // A request that hit the lost login is retried on a reopened session: none fails.
        assert_eq!(out.ok, 120, "{mode:?}: {:?}", out.failed);
        let s = status.snapshot();
        assert!(s.lost >= 1 && s.recovered >= 1, "{mode:?}: {s:?}");
        assert_eq!(s.state, HsmState::Ready, "{mode:?}: {s:?}");
        assert!(out.stats.retries >= 1, "{mode:?}: {:?}", out.stats);
    }
}

#[test]
fn wrong_digest_length_fails_only_that_request() {
    let _serial = serial();
    let Some(_) = fixture() else { return };
    let status = Arc::new(HsmStatus::default());
    let config = BatchConfig::new(SignerMode::Inline, 1, 8, "len".into());
    with_signer(config, status, |signer| async move {
        let key: Arc<str> = Arc::from(KEY);
        let err = signer.sign(&key, HashAlgorithm::Sha256, &[0u8; 20]).await.unwrap_err();
        assert!(matches!(err, segl_pkcs11::Pkcs11Error::DigestLength { .. }), "{err}");
        let missing: Arc<str> = Arc::from("no-such-key");
        assert!(signer.sign(&missing, HashAlgorithm::Sha1, &[0u8; 20]).await.is_err());
        signer.sign(&key, HashAlgorithm::Sha1, &[0u8; 20]).await.expect("the signer still works");
    });
}

#[test]
fn while_a_longest_wait_is_set_jobs_that_waited_longer_are_answered_expired() {
    let _serial = serial();
    let Some(_) = fixture() else { return };
    for mode in [SignerMode::Inline, SignerMode::Pipelined] {
        let status = Arc::new(HsmStatus::default());
        let config = BatchConfig::new(mode, 1, 64, format!("stale {mode:?}"));
        with_signer(config, status, move |signer| async move {
            let key: Arc<str> = Arc::from(KEY);
            // What an overloaded core sets: twenty jobs queued at once on one session take
            // well over a millisecond to sign, so not all of them start within it.
            signer.stats().set_longest_wait(Some(Duration::from_millis(1)));
            let tasks: Vec<_> = (0..20)
                .map(|n| {
                    let (signer, key) = (signer.clone(), key.clone());
                    glommio::spawn_local(async move {
                        let d = digest::digest(&digest::SHA256, format!("stale {n}").as_bytes());
                        signer.sign_before(&key, HashAlgorithm::Sha256, d.as_ref(), None).await
                    })
                })
                .collect();
            let mut signed = Vec::new();
            for t in tasks {
                match t.await {
                    Ok(_) => signed.push(true),
                    Err(segl_pkcs11::Pkcs11Error::Expired { waited }) => {
                        assert!(waited > Duration::from_millis(1), "{mode:?}: expired after {waited:?}");
                        signed.push(false);
                    }
                    Err(e) => panic!("{mode:?}: {e}"),
                }
            }
            // Some were signed before the queue behind them grew stale, and some were not.
            assert!(signed.contains(&true) && signed.contains(&false), "{mode:?}: {signed:?}");
            let s = signer.stats().snapshot();
            assert_eq!(s.ops + s.expired, 20, "{mode:?}: {s:?}");
            assert!(signer.stats().take_shortest_wait().is_some());
            // A request's second signature (its first is made) is not stopped by the limit.
            let continuing: Vec<_> = (0..20)
                .map(|n| {
                    let (signer, key) = (signer.clone(), key.clone());
                    glommio::spawn_local(async move {
                        let d = digest::digest(&digest::SHA256, format!("second {n}").as_bytes());
                        signer.sign_continuing(&key, HashAlgorithm::Sha256, d.as_ref(), None).await
                    })
                })
                .collect();
            for t in continuing {
                t.await.unwrap_or_else(|e| panic!("{mode:?}: a continuing signature was refused: {e}"));
            }
            // Cleared when the overload ends: signed however long it waited.
            signer.stats().set_longest_wait(None);
            let d = digest::digest(&digest::SHA256, b"calm");
            signer.sign_before(&key, HashAlgorithm::Sha256, d.as_ref(), None).await.expect("signs");
        });
    }
}

#[test]
fn a_job_still_queued_at_its_start_by_instant_is_answered_expired_and_not_signed() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    for mode in [SignerMode::Inline, SignerMode::Pipelined] {
        let status = Arc::new(HsmStatus::default());
        let config = BatchConfig::new(mode, 1, 64, format!("expiry {mode:?}"));
        let public = f.public_pkcs1.clone();
        with_signer(config, status, move |signer| async move {
            let key: Arc<str> = Arc::from(KEY);
            let d = digest::digest(&digest::SHA256, b"late");

            // Already past: answered without asking the HSM.
            let past = Some(Instant::now() - Duration::from_millis(1));
            let err = signer.sign_before(&key, HashAlgorithm::Sha256, d.as_ref(), past).await.unwrap_err();
            assert!(matches!(err, segl_pkcs11::Pkcs11Error::Expired { .. }), "{mode:?}: {err}");
            let s = signer.stats().snapshot();
            assert_eq!((s.ops, s.expired, s.errors, s.queue_depth), (0, 1, 0, 0), "{mode:?}: {s:?}");

            // Ten requests without a start-by instant queued ahead of one that must start
            // within a millisecond, all on one session: the ten take several milliseconds
            // of signing on any CPU, so the ten are signed (and verify) and the last one
            // expires in the queue instead of being signed late.
            let tasks: Vec<_> = (0..11)
                .map(|n| {
                    let (signer, key, public) = (signer.clone(), key.clone(), public.clone());
                    glommio::spawn_local(async move {
                        let msg = format!("queued {n}");
                        let d = digest::digest(&digest::SHA256, msg.as_bytes());
                        let start_by = (n == 10).then(|| Instant::now() + Duration::from_millis(1));
                        let result =
                            signer.sign_before(&key, HashAlgorithm::Sha256, d.as_ref(), start_by).await;
                        if let Ok(sig) = &result {
                            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
                                .verify(msg.as_bytes(), sig)
                                .expect("signature verifies");
                        }
                        result.map(|_| ()).map_err(|e| matches!(e, segl_pkcs11::Pkcs11Error::Expired { .. }))
                    })
                })
                .collect();
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await);
            }
            let mut expected = vec![Ok(()); 10];
            expected.push(Err(true));
            assert_eq!(outcomes, expected, "{mode:?}: Ok = signed, Err(true) = expired");
            let s = signer.stats().snapshot();
            assert_eq!((s.ops, s.expired, s.errors, s.queue_depth), (10, 2, 0, 0), "{mode:?}: {s:?}");

            // No start-by instant: signed however long it waited.
            signer.sign_before(&key, HashAlgorithm::Sha256, d.as_ref(), None).await.expect("signs");
        });
    }
}
