//! The load generator against real servers: segl (a child process on a private SoftHSM state),
//! the trivial server, a port nobody listens on, and a server that never answers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use segl::dev::client::DevClient;
use segl_bench::client::Target;
use segl_bench::engine::{self, EngineOptions, Mix};
use segl_bench::fixture::PrivateState;
use segl_bench::pool::{OioSettings, RequestKind, RequestPool};
use segl_bench::probe::ServerProbe;
use segl_bench::profiles;
use segl_bench::servers::ChildServer;
use segl_bench::tls::TlsFiles;

const EXE: &str = env!("CARGO_BIN_EXE_segl-load");

fn state() -> &'static (PrivateState, Arc<RequestPool>) {
    static STATE: OnceLock<(PrivateState, Arc<RequestPool>)> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("segl-load-e2e");
        let state = PrivateState::create(&dir).expect("private SoftHSM state");
        let client = DevClient::open(&state.config).expect("development client");
        let pool = RequestPool::build(&client, 40, 2, &|| {}).expect("pool").0;
        (state, Arc::new(pool))
    })
}

/// The tests that load a segl run one at a time: each asserts zero sheds and its own CPU per
/// token, which another test's server and generator on the same two cores would disturb (a
/// Sosi2OIOSaml request was once shed at 20/s beside the citizen test in a clean-clone CI run).
fn run_alone() -> std::sync::MutexGuard<'static, ()> {
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ALONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// SoftHSM reads every token's files when a process opens its tokens; a login by another
/// process at that moment can make that read fail (`C_GetTokenInfo`: GeneralError, seen once in
/// a clean-clone CI run). Server starts and development-client logins take turns.
fn token_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A segl on the private state (plain HTTP, info log `name`) and a development client, each
/// opened in its turn.
fn segl_and_client(state: &PrivateState, name: &str) -> (ChildServer, DevClient) {
    let server = {
        let _turn = token_turn();
        ChildServer::segl_from(Path::new(EXE), &state.config_path, &log(name), "info", None)
            .expect("segl starts")
    };
    let _turn = token_turn();
    (server, DevClient::open(&state.config).expect("development client"))
}

fn log(name: &str) -> PathBuf {
    state().0.dir.join(format!("{name}-{}.log", std::process::id()))
}

fn opts(connections: usize, keep_alive: bool, timeout_ms: u64) -> EngineOptions {
    EngineOptions { connections, keep_alive, timeout_ms, progress: false }
}

/// Takes one more request of `kind` than its part of `pool` holds (a request sent again: a
/// replay) and checks that segl refuses it.
fn a_replay_is_refused(pool: &RequestPool, target: &Target, rt: &tokio::runtime::Runtime, kind: RequestKind) {
    let again = pool.take_for(kind);
    assert_eq!(pool.replayed(), 1);
    let path = format!("/sts/services/{}", kind.name());
    let reply = rt.block_on(async {
        let mut conn = target.connect().await.unwrap();
        let head = target.head(&path, again.len(), true);
        conn.exchange(head.as_bytes(), &again).await.unwrap().status
    });
    assert_eq!(reply, 500, "a replayed {path} request is refused");
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn issues_distinct_cards_open_loop_against_segl_over_tls_and_plain_and_counts_c_sign_cpu_in_the_server() {
    let _alone = run_alone();
    let (state, pool) = state();
    let tls_dir = state.dir.join(format!("tls-{}", std::process::id()));
    let tls = TlsFiles::create(&tls_dir).expect("TLS files");
    // segl logs each issued card at debug level: the test reads the endpoints from the log.
    let level = "info,segl::exchange=debug";
    let server = {
        let _turn = token_turn();
        ChildServer::segl_from(Path::new(EXE), &state.config_path, &log("segl"), level, Some(&tls))
            .expect("segl starts")
    };
    // Its own ports, none of the configuration's (a segl running on those must not matter).
    let admin = server.admin_addr.expect("admin listener");
    let tls_addr = server.tls_addr.expect("TLS listener");
    assert_ne!(admin, state.config.server.admin_listen);
    assert_ne!(server.addr, state.config.server.listen);
    let mix = Arc::new(Mix::parse("NewSecurityTokenService=3,SecurityTokenService=1").unwrap());
    let target = Target::tls(tls_addr, &tls.ca, segl_bench::tls::SERVER_NAME).expect("TLS target");
    // 30/s for 2 s: 60 requests from a pool of 40, so 20 re-send a card under a new message id.
    let schedule = profiles::soak(30.0, 2.0, 0.0);
    let run = rt().block_on(engine::run(
        &schedule,
        &target,
        &mix,
        pool,
        &opts(4, true, 10_000),
        &server.probe(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!(s.sent, 60);
    assert_eq!(s.counts.ok, 60, "every request issued a card: {s:?}\n{}", server.log_tail(20));
    assert_eq!(s.statuses.get(&200), Some(&60));
    assert!(run.reused_cards >= 20, "{}", run.reused_cards);
    assert!(s.goodput > 25.0 && s.goodput <= 30.5, "{}", s.goodput);
    assert!(s.latency.p50_ms > 0.0 && s.latency.max_ms < 10_000.0);
    // segl's CPU per request includes one SoftHSM signature (hundreds of µs at least).
    let cpu = s.server_cpu_us_per_request().expect("server CPU measured");
    assert!(cpu > 100.0, "{cpu}");
    assert!(s.server_user_cpu_ns.is_some() && s.server_system_cpu_ns.is_some(), "{s:?}");
    // segl counted its C_Sign CPU in the same window: every card signed once, a few may
    // finish after the window's end.
    let signatures = s.hsm_signatures.expect("signatures from /metrics");
    assert!((50..=60).contains(&signatures), "{signatures}");
    let per_sign = s.hsm_cpu_us_per_signature().expect("C_Sign CPU from /metrics");
    assert!(per_sign > 100.0, "{per_sign}");
    let excl = s.cpu_us_excl_hsm_in_server().expect("excl. HSM");
    assert!(excl > 0.0 && excl < cpu, "{excl} of {cpu}");
    assert!(run.seconds.iter().map(|x| x.done.ok).sum::<u64>() == 60);
    assert!(run.seconds.first().is_some_and(|x| !x.core_busy.is_empty()));

    // The plain listener serves too; without the admin address there is no C_Sign CPU.
    let run = rt().block_on(engine::run(
        &profiles::soak(20.0, 1.0, 0.0),
        &Target::plain(server.addr),
        &mix,
        pool,
        &opts(4, true, 10_000),
        &ServerProbe::pid(Some(server.pid())),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!(s.counts.ok, 20, "{s:?}");
    assert!(s.server_cpu_ns.is_some() && s.hsm_cpu_ns.is_none());
    // Both endpoints were called (the log names them).
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        log.contains("endpoint=\"SecurityTokenService\"")
            && log.contains("endpoint=\"NewSecurityTokenService\"")
    );
    let _ = std::fs::remove_dir_all(&tls_dir);
}

#[test]
fn a_mix_with_sosi2oiosaml_issues_oio_tokens_with_zero_errors_and_two_signatures_each() {
    let _alone = run_alone();
    let (state, _) = state();
    let (server, client) = segl_and_client(state, "segl-oio");
    let target = Target::plain(server.addr);
    let mix = Mix::parse("NewSecurityTokenService=1,Sosi2OIOSaml=1").unwrap();
    let settings = OioSettings::of(&state.config);
    let rt = rt();
    // 20 requests for each kind; the run sends 30 of each, so 10 go out again under new ids.
    let (pool, stats) =
        segl_bench::pool::build_for_mix(&client, &mix, 40, 2, &|| {}, &rt, &target, &settings).expect("pool");
    let oio = stats.sosi2oiosaml.as_ref().expect("Sosi2OIOSaml requests in the pool");
    assert_eq!((stats.size, oio.size, oio.cards), (20, 20, 20), "{stats:?}");
    let pool = Arc::new(pool);
    let run = rt.block_on(engine::run(
        &profiles::soak(30.0, 2.0, 0.0),
        &target,
        &Arc::new(mix),
        &pool,
        &opts(4, true, 10_000),
        &server.probe(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!((s.sent, s.counts.ok, s.counts.failed()), (60, 60, 0), "{s:?}\n{}", server.log_tail(20));
    assert!(run.reused_cards >= 20, "{}", run.reused_cards);
    let [dgws, sosi] = s.endpoints.as_slice() else { panic!("two endpoints: {:?}", s.endpoints) };
    assert_eq!(dgws.path, "/sts/services/NewSecurityTokenService");
    assert_eq!(sosi.path, "/sts/services/Sosi2OIOSaml");
    assert_eq!((dgws.counts.ok, sosi.counts.ok, sosi.counts.failed()), (30, 30, 0), "{s:?}");
    assert!(sosi.goodput > 10.0 && sosi.latency.p50_ms > 0.0, "{sosi:?}");
    assert!(s.sole_endpoint().is_none());
    // 30 cards (one signature each) and 30 OIO answers (two each), a few may finish late.
    let signatures = s.hsm_signatures.expect("signatures from /metrics");
    assert!((80..=90).contains(&signatures), "{signatures}");

    // Sosi2OIOSaml alone: two signatures per token, and its CPU is its own.
    let run = rt.block_on(engine::run(
        &profiles::soak(20.0, 1.5, 0.0),
        &target,
        &Arc::new(Mix::parse("Sosi2OIOSaml=1").unwrap()),
        &pool,
        &opts(4, true, 10_000),
        &server.probe(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!((s.counts.ok, s.counts.failed()), (30, 0), "{s:?}\n{}", server.log_tail(20));
    assert_eq!(s.sole_endpoint().map(|e| e.path.as_str()), Some("/sts/services/Sosi2OIOSaml"));
    let per_token = s.signatures_per_issued().expect("signatures per token");
    assert!((1.7..=2.0).contains(&per_token), "{per_token}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(" WARN ") && !log.contains(" ERROR "), "{log}");
}

#[test]
fn a_mix_of_all_four_endpoints_issues_tokens_of_each_with_zero_errors() {
    let _alone = run_alone();
    let (state, _) = state();
    let (server, client) = segl_and_client(state, "segl-all");
    let target = Target::plain(server.addr);
    let mix = Mix::parse("NewSecurityTokenService=1,Sosi2OIOSaml=1,BST2SOSI=1,OIOSaml2Sosi=1").unwrap();
    let rt = rt();
    // 60 requests of each kind: 30 of each for the mixed run, 30 for each OIO exchange alone
    // (a BST2SOSI or OIOSaml2Sosi request goes out once: its MessageID is signed).
    let (pool, stats) = segl_bench::pool::build_for_mix(
        &client,
        &mix,
        240,
        2,
        &|| {},
        &rt,
        &target,
        &OioSettings::of(&state.config),
    )
    .expect("pool");
    let (bst, nbo) =
        (stats.bst2sosi.as_ref().expect("BST2SOSI"), stats.oiosaml2sosi.as_ref().expect("OIOSaml2Sosi"));
    assert_eq!((stats.size, bst.size, nbo.size), (60, 60, 60), "{stats:?}");
    // Every configured issuer's profile, each token presented more than once.
    assert_eq!((bst.tokens, nbo.tokens), (60, 60), "{stats:?}");
    assert_eq!(bst.presented.len(), state.config.bst2sosi.issuer.len(), "{bst:?}");
    assert!(["OIOH3BST", "OIOH2BST", "OIO3BST"]
        .iter()
        .all(|p| bst.presented.iter().any(|d| d.starts_with(p))));
    let pool = Arc::new(pool);
    assert_eq!((pool.len_of(RequestKind::Bst2Sosi), pool.len_of(RequestKind::OioSaml2Sosi)), (60, 60));
    let run = rt.block_on(engine::run(
        &profiles::soak(40.0, 3.0, 0.0),
        &target,
        &Arc::new(mix),
        &pool,
        &opts(4, true, 10_000),
        &server.probe(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!((s.sent, s.counts.ok, s.counts.failed()), (120, 120, 0), "{s:?}\n{}", server.log_tail(20));
    let paths: Vec<&str> = s.endpoints.iter().map(|e| e.path.rsplit('/').next().unwrap()).collect();
    assert_eq!(paths, ["NewSecurityTokenService", "Sosi2OIOSaml", "BST2SOSI", "OIOSaml2Sosi"]);
    for e in &s.endpoints {
        assert_eq!((e.counts.ok, e.counts.failed()), (30, 0), "{e:?}");
        assert!(e.goodput > 5.0 && e.latency.p50_ms > 0.0, "{e:?}");
    }
    assert!(s.sole_endpoint().is_none());
    // 30 DGWS cards (one signature each) and 90 OIO answers (two each); a few may finish late.
    let signatures = s.hsm_signatures.expect("signatures from /metrics");
    assert!((195..=210).contains(&signatures), "{signatures}");

    // Each header-signed exchange alone: two signatures per token, its CPU its own.
    for name in ["BST2SOSI", "OIOSaml2Sosi"] {
        let run = rt.block_on(engine::run(
            &profiles::soak(20.0, 1.5, 0.0),
            &target,
            &Arc::new(Mix::parse(&format!("{name}=1")).unwrap()),
            &pool,
            &opts(4, true, 10_000),
            &server.probe(),
            "t",
        ));
        let s = &run.segments[0];
        assert_eq!((s.counts.ok, s.counts.failed()), (30, 0), "{name}: {s:?}\n{}", server.log_tail(20));
        assert_eq!(
            s.sole_endpoint().map(|e| e.path.as_str()),
            Some(format!("/sts/services/{name}").as_str())
        );
        let per_token = s.signatures_per_issued().expect("signatures per token");
        assert!((1.7..=2.0).contains(&per_token), "{name}: {per_token}");
        assert!(s.server_cpu_us_per_request().is_some_and(|u| u > 100.0), "{s:?}");
    }
    assert_eq!(pool.replayed(), 0, "no BST2SOSI or OIOSaml2Sosi request went out twice");
    // Past its part's end a header-signed request goes out again: a replay, which segl refuses.
    a_replay_is_refused(&pool, &target, &rt, RequestKind::Bst2Sosi);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(" ERROR "), "{log}");
}

#[test]
fn the_citizen_endpoints_issue_tokens_of_each_with_zero_errors() {
    let _alone = run_alone();
    let (state, _) = state();
    let (server, client) = segl_and_client(state, "segl-citizen");
    let target = Target::plain(server.addr);
    let rt = rt();
    // 60 Bst2Idws, 90 JWT2Idws and 60 JWT2OIOSaml requests: 30 of each endpoint (JWTIdws being
    // JWT2Idws's alias) for the mixed run, then 30 of each kind alone; none goes out twice.
    let (pool, stats) = segl_bench::pool::build_for_mix(
        &client,
        &Mix::parse("Bst2Idws=2,JWT2Idws=3,JWT2OIOSaml=2").unwrap(),
        210,
        2,
        &|| {},
        &rt,
        &target,
        &OioSettings::of(&state.config),
    )
    .expect("pool");
    let part = |p: &Option<segl_bench::pool::SignedOioPoolStats>| p.clone().expect("a citizen part");
    let (bst, jwt, oiosaml) = (part(&stats.bst2idws), part(&stats.jwt2idws), part(&stats.jwt2oiosaml));
    assert_eq!((stats.size, bst.size, jwt.size, oiosaml.size), (0, 60, 90, 60), "{stats:?}");
    assert_eq!((bst.tokens, jwt.tokens, oiosaml.tokens), (60, 64, 60), "{stats:?}");
    // Every configured citizen issuer's profile; the JWTs for the audience each path serves.
    assert_eq!(bst.presented.len(), state.config.idws.issuer.len(), "{bst:?}");
    assert!(bst.presented.iter().all(|d| d.contains("for https://fmk")), "{bst:?}");
    assert!(jwt.presented.iter().all(|d| d.ends_with("for https://fmk, CPR claim")), "{jwt:?}");
    assert!(oiosaml.presented.iter().all(|d| d.contains("for https://sp.dev.segl.example/")), "{oiosaml:?}");
    let pool = Arc::new(pool);
    let mix = Mix::parse("Bst2Idws=1,JWT2Idws=1,JWTIdws=1,JWT2OIOSaml=1").unwrap();
    let run = rt.block_on(engine::run(
        &profiles::soak(40.0, 3.0, 0.0),
        &target,
        &Arc::new(mix),
        &pool,
        &opts(4, true, 10_000),
        &server.probe(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!((s.sent, s.counts.ok, s.counts.failed()), (120, 120, 0), "{s:?}\n{}", server.log_tail(20));
    let paths: Vec<&str> = s.endpoints.iter().map(|e| e.path.rsplit('/').next().unwrap()).collect();
    assert_eq!(paths, ["Bst2Idws", "JWT2Idws", "JWTIdws", "JWT2OIOSaml"]);
    for e in &s.endpoints {
        assert_eq!((e.counts.ok, e.counts.failed()), (30, 0), "{e:?}");
    }
    // Two signatures per answer (the token or assertion and the header); a few may finish late.
    let signatures = s.hsm_signatures.expect("signatures from /metrics");
    assert!((230..=240).contains(&signatures), "{signatures}");

    // Each alone: two signatures per token, its CPU its own.
    for name in ["Bst2Idws", "JWT2Idws", "JWT2OIOSaml"] {
        let run = rt.block_on(engine::run(
            &profiles::soak(20.0, 1.5, 0.0),
            &target,
            &Arc::new(Mix::parse(&format!("{name}=1")).unwrap()),
            &pool,
            &opts(4, true, 10_000),
            &server.probe(),
            "t",
        ));
        let s = &run.segments[0];
        assert_eq!((s.counts.ok, s.counts.failed()), (30, 0), "{name}: {s:?}\n{}", server.log_tail(20));
        let per_token = s.signatures_per_issued().expect("signatures per token");
        assert!((1.7..=2.0).contains(&per_token), "{name}: {per_token}");
        assert!(s.server_cpu_us_per_request().is_some_and(|u| u > 100.0), "{s:?}");
    }
    assert_eq!(pool.replayed(), 0, "no citizen request went out twice");
    // A JWT request again: the JWT may be presented many times, its MessageID only once.
    a_replay_is_refused(&pool, &target, &rt, RequestKind::Jwt2Idws);
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(!log.contains(" ERROR "), "{log}");
}

/// `segl-load in-process` (the floor script's request row): every request issued, and segl's own
/// CPU is the thread's CPU less what the signer counted inside C_Sign.
#[test]
fn in_process_serves_every_request_and_takes_the_signature_off_its_own_cpu() {
    let (state, _) = state();
    // An audit file of its own: the other tests' servers hold the state's one.
    let config = state.dir.join("in-process.toml");
    let text = std::fs::read_to_string(&state.config_path).unwrap();
    assert!(text.contains("audit/segl-audit.jsonl"));
    std::fs::write(&config, text.replace("audit/segl-audit.jsonl", "audit/in-process.jsonl")).unwrap();
    let out = {
        let _turn = token_turn();
        std::process::Command::new(EXE)
            .args(["in-process", "--requests", "30", "--config"])
            .arg(&config)
            .output()
            .expect("segl-load runs")
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // "30 requests: A µs per request − B µs of C_Sign = C µs segl's own"
    let numbers: Vec<f64> = stdout
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().unwrap())
        .collect();
    let [requests, whole, c_sign, own] = numbers[..] else { panic!("unexpected output: {stdout}") };
    assert_eq!(requests, 30.0, "{stdout}");
    assert!(c_sign > 0.0 && own > 0.0 && whole > c_sign, "{stdout}");
    assert!((whole - c_sign - own).abs() <= 1.0, "{stdout}");
}

#[test]
fn new_connection_per_request_against_the_trivial_server() {
    let (_, pool) = state();
    let server = ChildServer::dummy_from(Path::new(EXE), 5000, &log("dummy")).expect("trivial server starts");
    let mix = Arc::new(Mix::parse("/anything=1").unwrap());
    let schedule = profiles::soak(400.0, 1.0, 0.0);
    let run = rt().block_on(engine::run(
        &schedule,
        &Target::plain(server.addr),
        &mix,
        pool,
        &opts(16, false, 5000),
        &ServerProbe::default(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!((s.sent, s.counts.ok), (400, 400), "{s:?}");
}

#[test]
fn refused_connections_are_errors_not_hangs() {
    let (_, pool) = state();
    // Nobody listens there (and, below the ephemeral range, no client can connect to itself).
    let addr = segl_bench::servers::free_loopback().unwrap();
    let mix = Arc::new(Mix::parse("NewSecurityTokenService=1").unwrap());
    let run = rt().block_on(engine::run(
        &profiles::soak(20.0, 0.5, 0.0),
        &Target::plain(addr),
        &mix,
        pool,
        &opts(2, true, 1000),
        &ServerProbe::default(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!(s.counts.error, 10, "{s:?}");
    assert_eq!(s.counts.ok, 0);
}

#[test]
fn a_server_that_never_answers_gives_timeouts_from_the_intended_send_time() {
    let (_, pool) = state();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections, never answers.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let mix = Arc::new(Mix::parse("NewSecurityTokenService=1").unwrap());
    // Two connections, 20 requests due over 0.5 s, 300 ms deadline: the two in flight time
    // out on the wire, the rest expire waiting for a connection; none is lost.
    let run = rt().block_on(engine::run(
        &profiles::soak(40.0, 0.5, 0.0),
        &Target::plain(addr),
        &mix,
        pool,
        &opts(2, true, 300),
        &ServerProbe::default(),
        "t",
    ));
    let s = &run.segments[0];
    assert_eq!(s.counts.timeout, 20, "{s:?}");
    assert!(run.wall_secs < 3.0, "stops by itself: {}", run.wall_secs);
}

#[test]
fn tls_client_checks_the_certificate_against_the_ca_file_and_name() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::ServerConfig;

    let (state, pool) = state();
    // A rustls server in this process checks the generator's --tls path on its own (certificate
    // and name verification), apart from segl's TLS listener, which tests/serving.rs covers.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_file = state.dir.join(format!("tls-ca-{}.pem", std::process::id()));
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &Issuer::new(ca_params, ca_key))
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let rt = rt();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let response = segl_bench::dummy::fixed_response(3000);
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let _ = segl_bench::dummy::connection(tls, response).await;
                }
            });
        }
    });
    let mix = Arc::new(Mix::parse("NewSecurityTokenService=1").unwrap());
    let good = Target::tls(addr, &ca_file, "localhost").unwrap();
    assert!(good.is_tls());
    let run = rt.block_on(engine::run(
        &profiles::soak(50.0, 1.0, 0.0),
        &good,
        &mix,
        pool,
        &opts(4, true, 5000),
        &ServerProbe::default(),
        "t",
    ));
    assert_eq!((run.segments[0].sent, run.segments[0].counts.ok), (50, 50), "{:?}", run.segments[0]);
    // The same server under a name its certificate does not carry: every handshake fails.
    let wrong = Target::tls(addr, &ca_file, "sts.example").unwrap();
    let run = rt.block_on(engine::run(
        &profiles::soak(20.0, 0.5, 0.0),
        &wrong,
        &mix,
        pool,
        &opts(2, true, 5000),
        &ServerProbe::default(),
        "t",
    ));
    assert_eq!(run.segments[0].counts.error, 10, "{:?}", run.segments[0]);
    // A CA file without certificates is refused up front.
    let empty = state.dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    assert!(Target::tls(addr, &empty, "localhost").is_err());
}
