//! Serving: the admin listener, configuration reload (file change and SIGHUP; invalid files
//! refused), the audit log's crash safety in `sync` mode, graceful shutdown, and TLS with real
//! clients (curl, openssl s_client), with and without client certificates.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{env, Server};
use segl::dev::client::RequestOptions;
use segl::token::{CardType, IdCard};
use segl::xml::{Document, Limits};

const NEW: &str = "/sts/services/NewSecurityTokenService";

fn request() -> Vec<u8> {
    env().client.request(&RequestOptions::new(CardType::User)).unwrap()
}

/// A request without a message id (as unsealed sends): it may be posted many times.
fn reusable_request() -> Vec<u8> {
    let text = String::from_utf8(request()).unwrap();
    let start = text.find("<wsse:Security id=\"").unwrap();
    let end = start + text[start..].find('>').unwrap();
    (text[..start].to_owned() + "<wsse:Security" + &text[end..]).into_bytes()
}

fn issued_card(body: &[u8]) -> IdCard {
    let doc = Document::parse(Bytes::copy_from_slice(body), &Limits::default()).unwrap();
    IdCard::from_element(&doc, doc.by_id("IDCard").unwrap()).unwrap()
}

use common::admin_get as get;

// ---- admin ----

#[test]
fn admin_endpoints_report_health_readiness_and_metrics() {
    let server = Server::start();
    assert_eq!(get(server.admin, "/healthz"), (200, "ok\n".into()));
    assert_eq!(get(server.admin, "/readyz").0, 200);
    assert_eq!(server.post(NEW, &request()).status, 200);
    let (status, metrics) = get(server.admin, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("segl_requests_total{endpoint=\"NewSecurityTokenService\",outcome=\"issued\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("segl_request_duration_seconds_bucket"), "{metrics}");
    // The issued card's audit record was synced (sync durability) and the sync was timed.
    assert!(common::metric_sum(&metrics, "segl_audit_sync_seconds_count", &[]) >= 1.0, "{metrics}");
    assert!(metrics.contains("segl_config_version 1"), "{metrics}");
    assert_eq!(get(server.admin, "/nope").0, 404);
    // The signer's figures are published by each core once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = get(server.admin, "/metrics");
        if metrics.contains("segl_hsm_signatures_total{core=")
            && metrics.contains("segl_active_key_info{key=\"sts-signing\"} 1")
            && metrics.contains("segl_hsm_state 0")
        {
            break;
        }
        assert!(Instant::now() < deadline, "signer metrics missing:\n{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---- admission control ----

#[test]
fn a_request_beyond_the_deadline_budget_gets_503_retry_after_and_a_soap_fault_at_once() {
    // A 50 ms deadline: once the cores have measured their rate, little more than the warm-up
    // allowance of 8 in flight per core fits, and admission must refuse part of a burst of 48
    // concurrent requests before reading them. Long enough for one request at a time to be
    // signed even in a debug build, so that the warm-up measures the rate (a request refused
    // by the signer's deadline check, see the next test, is not counted in it).
    let server = Server::start_with(|t| *t = t.replace(common::TEST_DEADLINE, "deadline_ms = 50"));
    let body = reusable_request();
    // Warm-up, one at a time so admission measures the cores' rate.
    for _ in 0..10 {
        let status = server.post(NEW, &body).status;
        assert!(status == 200 || status == 503, "{status}");
    }
    std::thread::sleep(Duration::from_millis(300));
    let server = Arc::new(server);
    let replies: Vec<common::Reply> = (0..48)
        .map(|_| {
            let (server, body) = (server.clone(), body.clone());
            std::thread::spawn(move || server.post(NEW, &body))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let shed: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        replies.iter().all(|r| r.status == 200 || r.status == 503),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let by_admission =
        shed.iter().filter(|r| r.text().contains("(capacity)") || r.text().contains("(fairness)"));
    assert!(
        by_admission.count() >= 1,
        "48 concurrent requests within a 50 ms deadline: admission must refuse some"
    );
    // Every 503, whether admission or the signer's deadline check refused it, is the same
    // kind of answer.
    for reply in shed {
        assert_eq!(reply.header("retry-after"), Some("1"));
        let doc = Document::parse(Bytes::copy_from_slice(&reply.body), &Limits::default()).unwrap();
        let fault = doc
            .child(doc.root(), segl::token::ns::SOAP, "Body")
            .and_then(|b| doc.child(b, segl::token::ns::SOAP, "Fault"))
            .expect("a SOAP fault");
        let code = doc.children(fault).next().map(|c| doc.text(c).into_owned());
        assert_eq!(code.as_deref(), Some("soapenv:Server"));
        if let Some(r) = common::xmllint_schema(&reply.body, "soap-specialized.xsd") {
            r.unwrap_or_else(|e| panic!("shed fault schema: {e}"));
        }
    }
    let metrics = server.metrics();
    assert!(common::metric_sum(&metrics, "segl_admission_total", &["decision=\"shed\""]) >= 1.0);
}

#[test]
fn after_a_stall_queued_requests_are_refused_at_once_instead_of_signed_late() {
    // A stall made with a real mechanism: the whole server is stopped (SIGSTOP) for twice the
    // 200 ms deadline while 24 clients keep it busy, as a descheduled VM or a hung HSM would.
    // What had been read and was waiting to be signed is past its deadline when the server
    // runs again: it must get a 503 at once, and the HSM must not sign it.
    let (server, audit) = server_with_own_audit("audit-stall", 200);
    let stop = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = replies.clone();
    let clients = clients_back_to_back(&server, 24, &stop, move |reply| kept.lock().unwrap().push(reply));
    std::thread::sleep(Duration::from_millis(1000));
    server.signal("STOP");
    std::thread::sleep(Duration::from_millis(400));
    server.signal("CONT");
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    clients.into_iter().for_each(|c| c.join().unwrap());

    let replies = replies.lock().unwrap();
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    let expired: Vec<_> = replies.iter().filter(|r| r.text().contains("queued past its deadline")).collect();
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    assert!(
        !expired.is_empty(),
        "no request was refused for waiting past its deadline ({} answered 200, {} 503)",
        count(200),
        count(503)
    );
    for reply in &expired {
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("1"));
        assert!(reply.text().contains("<faultcode>soapenv:Server</faultcode>"), "{}", reply.text());
    }
    let metrics = server.metrics();
    let outcome = common::metric_sum(&metrics, "segl_requests_total", &["outcome=\"expired\""]);
    let not_signed = common::metric_sum(&metrics, "segl_signer_expired_total", &[]);
    assert_eq!(outcome, expired.len() as f64, "{metrics}");
    assert!(not_signed >= outcome, "{metrics}");
    assert_eq!(common::metric_sum(&metrics, "segl_hsm_errors_total", &[]), 0.0, "not an HSM failure");
    // The cards were read, checked and recorded as issued before they waited for the signer
    // (the record is written while the card is signed): each refusal takes its card back with
    // a `withdrawn` record after that `issued` one, and no other card is withdrawn.
    let records = audit_records(&audit);
    let withdrawn = common::withdrawals(&records);
    for r in &withdrawn {
        assert!(r["reason"].as_str().unwrap_or("").contains("deadline"), "{r}");
        assert_eq!(r["fault"], "soapenv:Server", "{r}");
    }
    assert_eq!(withdrawn.len(), expired.len());
    assert_eq!(records.iter().filter(|r| r["outcome"] == "refused").count(), 0);
    // And the server goes on signing.
    assert_eq!(server.post(NEW, &request()).status, 200);
}

// ---- reload ----

/// Posts requests back to back until `stop`; keeps the answers other than 200.
fn steady_traffic(
    server: &Server,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>, Vec<String>)> {
    let addr = server.addr;
    let body = reusable_request();
    std::thread::spawn(move || {
        let (mut ok, mut failed, mut issuers) = (0, Vec::new(), Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let reply = common::post_to(addr, NEW, &body);
            if reply.status == 200 {
                ok += 1;
                issuers.push(issued_card(&reply.body).issuer);
            } else {
                failed.push(format!("{}: {}", reply.status, reply.text()));
            }
        }
        (ok, failed, issuers)
    })
}

fn wait_for_issuer(server: &Server, issuer: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = server.post(NEW, &reusable_request());
        if reply.status == 200 && issued_card(&reply.body).issuer == issuer {
            return;
        }
        assert!(Instant::now() < deadline, "issuer {issuer} not in force after 10 s:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_valid_change_takes_effect_on_file_change_and_sighup_without_dropped_requests() {
    let server = Server::start();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = steady_traffic(&server, stop.clone());
    std::thread::sleep(Duration::from_millis(300));

    // 1. The file changes: picked up by the watcher.
    let text = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(server.config_path(), text.replace("SEGL-DEV-STS", "SEGL-RELOADED-1")).unwrap();
    wait_for_issuer(&server, "SEGL-RELOADED-1");

    // 2. SIGHUP after an edit whose mtime may not have moved on a coarse clock.
    let text = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(server.config_path(), text.replace("SEGL-RELOADED-1", "SEGL-RELOADED-2")).unwrap();
    server.signal("HUP");
    wait_for_issuer(&server, "SEGL-RELOADED-2");

    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed, issuers) = traffic.join().unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed during reload ({ok} succeeded), the first: {}",
        failed.len(),
        failed[0]
    );
    assert!(ok > 10 && issuers.first().map(String::as_str) == Some("SEGL-DEV-STS"));
    assert_eq!(issuers.last().map(String::as_str), Some("SEGL-RELOADED-2"));
    assert!(server.log().contains("configuration reloaded"));
    let (_, metrics) = get(server.admin, "/metrics");
    assert!(metrics.contains("segl_config_version 3"), "{metrics}");
}

#[test]
fn an_invalid_change_is_refused_and_the_old_configuration_keeps_serving() {
    let server = Server::start();
    let text = std::fs::read_to_string(server.config_path()).unwrap();
    // An issuer with a space is not an NCName; a missing trust anchor file cannot load.
    for bad in
        [text.replace("SEGL-DEV-STS", "SEGL DEV STS"), text.replace("dev-root-ca.pem", "no-such-ca.pem")]
    {
        std::fs::write(server.config_path(), &bad).unwrap();
        server.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.log().contains("configuration refused") {
            assert!(Instant::now() < deadline, "no refusal logged:\n{}", server.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let reply = server.post(NEW, &request());
        assert_eq!(reply.status, 200);
        assert_eq!(issued_card(&reply.body).issuer, "SEGL-DEV-STS");
    }
    let (_, metrics) = get(server.admin, "/metrics");
    assert!(metrics.contains("segl_config_reloads_total{result=\"rejected\"}"), "{metrics}");
    assert!(metrics.contains("segl_config_version 1"), "{metrics}");
}

#[test]
fn config_check_runs_the_same_validation_offline() {
    let dir = env().dir.join("config-check");
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, &env().config_text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_segl")).args(["config", "check"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, env().config_text.replace("dev-root-ca.pem", "no-such-ca.pem")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_segl")).args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-ca.pem"));
    // The Redis replay store's files are read as `segl serve` reads them at start.
    let redis = dir.join("redis.toml");
    let missing = dir.join("no-such-redis-password");
    std::fs::write(
        &redis,
        env().config_text.replacen(
            "store = \"local\"\n",
            &format!(
                "store = \"redis\"\n[replay.redis]\naddresses = [\"127.0.0.1:6379\"]\npassword_file = \"{}\"\n",
                missing.display()
            ),
            1,
        ),
    )
    .unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_segl")).args(["config", "check"]).arg(&redis).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("replay.redis.password_file") && stderr.contains("no-such-redis-password"),
        "{stderr}"
    );
}

// ---- audit ----

/// A server whose audit log is a file of its own (under `dir`), and that file; its request
/// deadline is `deadline_ms`.
fn server_with_own_audit(dir: &str, deadline_ms: u64) -> (Server, PathBuf) {
    let audit = env().dir.join(dir).join("audit.jsonl");
    let server_audit = audit.clone();
    let server = Server::start_with(move |t| {
        *t = t.replace(common::TEST_DEADLINE, &format!("deadline_ms = {deadline_ms}")).replace(
            &format!("path = \"{}\"", env().dir.join("audit/segl-audit.jsonl").display()),
            &format!("path = \"{}\"", server_audit.display()),
        )
    });
    (server, audit)
}

/// `n` clients posting a reusable request back to back (a connection each) until `stop` or
/// the server is gone, handing every reply to `on_reply`.
fn clients_back_to_back(
    server: &Server,
    n: usize,
    stop: &Arc<AtomicBool>,
    on_reply: impl Fn(common::Reply) + Clone + Send + 'static,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (addr, stop, on_reply) = (server.addr, stop.clone(), on_reply.clone());
            let body = reusable_request();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(reply) = common::try_post_to(addr, NEW, &body) else { break };
                    on_reply(reply);
                }
            })
        })
        .collect()
}

/// A tmpfs of `bytes` mounted at `dir` for one test, unmounted when dropped: a disk that
/// really fills up. `None` where mounting is not allowed (CI runs as root).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, bytes: usize) -> Option<SmallDisk> {
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(SmallDisk(dir))
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![b'x'; 4096];
        while file.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_message_id_whose_token_the_audit_log_could_not_take_may_be_sent_again() {
    // The audit log on a disk that really fills up: the token of a request whose record
    // cannot be written does not leave, so its MessageID must not count as used, or the
    // client's resend would be refused as a replay. And the failed write must not leave a torn
    // record for the next one to continue.
    let Some(disk) = SmallDisk::mount(env().dir.join("audit-small-disk"), 256 * 1024) else {
        eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
        return;
    };
    let audit = disk.0.join("audit.jsonl");
    let server = Server::start_with(|t| {
        *t = t
            .replace(
                &format!("path = \"{}\"", env().dir.join("audit/segl-audit.jsonl").display()),
                &format!("path = \"{}\"", audit.display()),
            )
            .replace("preallocate_mib = 4", "preallocate_mib = 0");
    });
    // Another appender (an operator's note; `copytruncate` moves the end the same way): the
    // file no longer ends where segl's own count says, and a failed write must still take back
    // only its own bytes, not the tail of a record written after this line.
    assert_eq!(server.post(NEW, &request()).status, 200, "{}", server.log());
    let mut answered = 1;
    let mut other = std::fs::OpenOptions::new().append(true).open(&audit).unwrap();
    other.write_all(b"{\"note\":\"appended by another writer\"}\n").unwrap();
    // Cards until the log's last page has less room than a record: the next record then fits
    // in part, and the write that fails has torn it.
    for n in 0.. {
        assert_eq!(server.post(NEW, &request()).status, 200, "{}", server.log());
        answered += 1;
        let len = std::fs::metadata(&audit).unwrap().len();
        if len % 4096 > 4096 - 200 {
            break;
        }
        assert!(n < 100, "the log's pages never came close to full: {len} bytes");
    }

    let body = common::request_with_message_id("resent-after-a-full-disk");
    let filler = disk.fill();
    let refused = server.post(NEW, &body);
    assert_eq!(refused.status, 500, "{}", refused.text());
    // The operator reads why.
    assert!(server.log().contains("audit log write failed: No space left on device"), "{}", server.log());
    std::fs::remove_file(filler).unwrap();

    let resent = server.post(NEW, &body);
    assert_eq!(resent.status, 200, "the resent request: {}", resent.text());
    // Once issued, the same message is a replay again.
    let replayed = server.post(NEW, &body);
    assert_eq!(replayed.status, 500, "{}", replayed.text());
    assert!(replayed.text().contains("was already received"), "{}", replayed.text());

    // Every line of the log is a whole record, and the resent card is in it once; every card
    // answered 200 has its record.
    let text = common::audit_text(&audit);
    for line in text.lines() {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "a torn record: {line:?}");
    }
    let records = audit_records(&audit);
    let issued = |r: &&serde_json::Value| r["outcome"] == "issued";
    let resent_issued =
        records.iter().filter(issued).filter(|r| r["message_id"] == "resent-after-a-full-disk");
    assert_eq!(resent_issued.count(), 1, "{text}");
    assert_eq!(records.iter().filter(issued).count(), answered + 1, "{text}");
}

fn audit_records(path: &Path) -> Vec<serde_json::Value> {
    common::audit_text(path).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn in_sync_mode_every_answered_request_is_on_disk_after_kill_9() {
    let (mut server, audit) = server_with_own_audit("audit-crash", 5000);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = answered.clone();
    let clients = clients_back_to_back(&server, 4, &stop, move |reply| {
        if reply.status == 200 {
            kept.lock().unwrap().push(issued_card(&reply.body).id_card_id);
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.kill_9();
    stop.store(true, Ordering::Relaxed);
    clients.into_iter().for_each(|c| c.join().unwrap());
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 20, "only {} answers before the kill", answered.len());
    let on_disk: std::collections::HashSet<String> = audit_records(&audit)
        .iter()
        .filter(|r| r["outcome"] == "issued")
        .filter_map(|r| r["issued"]["id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<_> = answered.iter().filter(|id| !on_disk.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered cards have no audit record",
        missing.len(),
        answered.len()
    );
}

// ---- shutdown ----

#[test]
fn sigterm_drains_and_exits_cleanly() {
    let mut server = Server::start();
    assert_eq!(server.post(NEW, &request()).status, 200);
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15)).expect("segl exits after SIGTERM");
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("shutting down") && log.contains("drained"), "{log}");
    // The audit log was preallocated while serving; the shutdown cut the zeros off.
    let audit = std::fs::read(server.audit_path()).unwrap();
    assert!(!audit.is_empty() && !audit.contains(&0) && audit.ends_with(b"\n"), "{} bytes", audit.len());
    assert_eq!(server.audit().lines().count(), 1);
}

#[test]
fn sigterm_with_a_grace_period_leaves_the_pool_before_it_refuses() {
    let mut server = Server::start_with(|c| {
        *c = c.replace("drain_grace_ms = 0 ", "drain_grace_ms = 3000 ");
    });
    server.signal("TERM");
    // Within the grace period: not ready (a load balancer takes the node out), yet serving,
    // each answer telling the client to reconnect elsewhere.
    let deadline = Instant::now() + Duration::from_secs(2);
    let body = loop {
        let (status, body) = common::admin_get(server.admin, "/readyz");
        if status == 503 {
            break body;
        }
        assert!(Instant::now() < deadline, "/readyz still {status} {body} after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(body.contains("draining"), "{body}");
    let reply = server.post(NEW, &request());
    assert_eq!(reply.status, 200, "served during the grace period: {}", reply.text());
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(server.is_running(), "the grace period is not over");
    let status = server.wait_exit(Duration::from_secs(15)).expect("segl exits after the grace period");
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    let log = server.log();
    assert!(log.contains("serving on for the grace period") && log.contains("drained"), "{log}");
    assert_eq!(server.audit().lines().count(), 1);
}

// ---- TLS ----

struct TlsFiles {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A TLS CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl:
/// TLS transport keys are files, separate from the STS signing key in the HSM.
fn tls_files() -> &'static TlsFiles {
    static FILES: std::sync::OnceLock<TlsFiles> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = env().dir.join("tls");
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=segl test TLS CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &dir,
        );
        for (name, ext) in [
            ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            openssl(
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN=segl test {name}"),
                ],
                &dir,
            );
            openssl(
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
                &dir,
            );
        }
        TlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    })
}

fn tls_server(client_auth: &str) -> (Server, u16) {
    let files = tls_files();
    let port = common::free_port();
    let section = format!(
        "\n[server.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\nkey = \"{}\"\nclient_auth = \"{client_auth}\"\n",
        files.server_cert.display(),
        files.server_key.display()
    );
    let ca = files.ca.clone();
    let server = Server::start_with(move |t| {
        // Client certificates are verified against the trust anchors: add the TLS CA.
        *t = t.replace("anchors = [", &format!("anchors = [\"{}\", ", ca.display()));
        let at = t.find("\n[hsm]").unwrap();
        t.insert_str(at, &section);
    });
    (server, port)
}

fn curl(port: u16, body: &Path, client: bool) -> std::process::Output {
    let files = tls_files();
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-H",
        "Content-Type: text/xml; charset=utf-8",
    ])
    .arg("--cacert")
    .arg(&files.ca)
    .arg("--data-binary")
    .arg(format!("@{}", body.display()));
    if client {
        cmd.arg("--cert").arg(&files.client_cert).arg("--key").arg(&files.client_key);
    }
    cmd.arg(format!("https://127.0.0.1:{port}{NEW}"));
    cmd.output().expect("curl")
}

#[test]
fn tls_serves_curl_with_and_without_a_client_certificate_when_optional() {
    let (server, port) = tls_server("optional");
    for client in [false, true] {
        // A fresh request each time: the same message id twice is a replay.
        let body = common::write_temp(&format!("tls-request-{client}.xml"), &request());
        let out = curl(port, &body, client);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "curl (client cert: {client}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.ends_with("\n200"), "client cert {client}: {text}");
        let card = text.rsplit_once('\n').unwrap().0;
        common::xmlsec_verify(card.as_bytes(), &env().pki("sts-signing")).unwrap();
    }
    // Plain HTTP keeps working beside TLS.
    assert_eq!(server.post(NEW, &request()).status, 200);
}

#[test]
fn tls_with_required_client_certificates_refuses_clients_without_one() {
    let (_server, port) = tls_server("required");
    let body = common::write_temp("tls-request-required.xml", &request());
    let out = curl(port, &body, false);
    assert!(
        !out.status.success(),
        "a client without a certificate got through: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let body = common::write_temp("tls-request-required-2.xml", &request());
    let out = curl(port, &body, true);
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("\n200"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn openssl_s_client_verifies_the_server_certificate() {
    let (_server, port) = tls_server("none");
    let files = tls_files();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-verify_return_error",
            "-brief",
            "-ign_eof",
            "-CAfile",
        ])
        .arg(&files.ca)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verification: OK"), "{text}");
    assert!(text.contains("HTTP/1.1 405"), "{text}");
}
