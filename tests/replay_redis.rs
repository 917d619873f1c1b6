//! The cluster's replay store on a real Redis server (`redis-server` from Debian, started by the
//! test on a port of its own): a message id accepted by one segl node is refused by another,
//! and while Redis is down `when_unavailable` decides between refusing (no replay can pass)
//! and the node's own memory (service goes on).
//!
//! Without `redis-server` on the machine the tests say so and pass (`tests/install-host-packages`
//! installs it; CI always has it).

mod common;
mod redis_support;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{admin_get, env, faultcode, metric_sum, Reply, Server};
use redis_support::Redis;

const NEW: &str = "/sts/services/NewSecurityTokenService";

/// The `[replay]` section pointing at `redis`, with `extra` lines in `[replay.redis]`.
fn use_redis(address: &str, extra: &str) -> impl FnOnce(&mut String) {
    // A request waits `timeout_ms` (50 ms by default) for Redis before the core counts it as
    // unavailable. On a loaded test machine (these tests run servers and Redis instances side
    // by side on two cores) an answer can take longer, and a test about something else would
    // see the store as down: unless a test sets its own, a second.
    let timeout = if extra.contains("timeout_ms") { "" } else { "timeout_ms = 1000\n" };
    let section =
        format!("store = \"redis\"\n[replay.redis]\naddresses = [\"{address}\"]\n{timeout}{extra}\n");
    move |text: &mut String| {
        assert!(text.contains("store = \"local\"\n"), "config/segl.toml no longer sets store = \"local\"");
        *text = text.replacen("store = \"local\"\n", &section, 1);
    }
}

fn request(message_id: &str) -> Vec<u8> {
    common::request_with_message_id(message_id)
}

#[track_caller]
fn assert_issued(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[track_caller]
fn assert_duplicate(reply: &Reply) {
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(faultcode(reply), "wsa:duplicatemessageid", "{}", reply.text());
}

/// Waits (polling `/readyz`) until `server` says ready without a degraded note.
fn wait_until_fully_ready(server: &Server, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = admin_get(server.admin, "/readyz");
        if status == 200 && body == "ready\n" {
            return;
        }
        assert!(Instant::now() < deadline, "not ready within {within:?}: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_message_id_accepted_by_one_node_is_refused_by_every_node() {
    let Some(redis) = Redis::start("two-nodes", "127.0.0.1", None) else { return };
    let a = Server::start_with(use_redis(&redis.address(), ""));
    let b = Server::start_with(use_redis(&redis.address(), ""));
    wait_until_fully_ready(&a, Duration::from_secs(10));
    wait_until_fully_ready(&b, Duration::from_secs(10));

    assert_issued(&a.post(NEW, &request("cluster-1")));
    // The same message (a new card, the same id, the same client) at the other node and at
    // the first: both refuse it.
    assert_duplicate(&b.post(NEW, &request("cluster-1")));
    assert_duplicate(&a.post(NEW, &request("cluster-1")));
    // Another id is new on either node.
    assert_issued(&b.post(NEW, &request("cluster-2")));
    assert_duplicate(&a.post(NEW, &request("cluster-2")));

    // One key per id, in Redis, expiring with the card (the default lifetime is 24 h, plus skew).
    let keys = redis.replay_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let ttl: i64 =
        redis.command(&["PTTL", &keys[0]]).unwrap().trim_start_matches(':').trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 24 * 3600 * 1000 + 10 * 60 * 1000, "PTTL {ttl}");
    // Nodes on a local store would not have seen each other's ids: the metric says none fell back.
    assert_eq!(metric_sum(&a.metrics(), "segl_replay_store_unavailable_total", &[]), 0.0);
    assert_eq!(metric_sum(&b.metrics(), "segl_replay_store_up", &[]), 2.0, "both cores connected");
}

#[test]
fn while_redis_is_down_a_refusing_node_refuses_and_a_falling_back_node_serves() {
    let Some(mut redis) = Redis::start("outage", "127.0.0.1", None) else { return };
    let refusing = Server::start_with(use_redis(&redis.address(), "when_unavailable = \"refuse\""));
    let falling_back = Server::start_with(use_redis(&redis.address(), "when_unavailable = \"local\""));
    wait_until_fully_ready(&refusing, Duration::from_secs(10));
    wait_until_fully_ready(&falling_back, Duration::from_secs(10));
    assert_issued(&refusing.post(NEW, &request("before-outage")));

    redis.stop();
    // Every request the refusing node gets while Redis is down is refused, as a temporary
    // server fault the client may retry, never issued.
    for i in 0..10 {
        let reply = refusing.post(NEW, &request(&format!("during-outage-{i}")));
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(faultcode(&reply), "soapenv:Server", "{}", reply.text());
        assert!(reply.header("retry-after").is_some(), "a 503 says when to retry");
        assert!(reply.text().contains("replay"), "{}", reply.text());
    }
    // The id accepted before the outage is not accepted either.
    assert_ne!(refusing.post(NEW, &request("before-outage")).status, 200);
    // Still ready (Redis is every node's: taking them all out of the pool would turn this
    // fault into reset connections), and saying what is degraded.
    let (status, body) = admin_get(refusing.admin, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready, degraded: replay store (Redis) unavailable"), "{body}");
    assert!(body.contains("refused (503)"), "{body}");
    let metrics = refusing.metrics();
    assert!(metric_sum(&metrics, "segl_replay_store_unavailable_total", &["action=\"refused\""]) >= 10.0);

    // The falling-back node serves, and still refuses a replay it saw itself.
    assert_issued(&falling_back.post(NEW, &request("fallback-1")));
    assert_duplicate(&falling_back.post(NEW, &request("fallback-1")));
    let (status, body) = admin_get(falling_back.admin, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready, degraded: replay store (Redis) unavailable"), "{body}");
    assert!(
        metric_sum(&falling_back.metrics(), "segl_replay_store_unavailable_total", &["action=\"local\""])
            >= 1.0
    );

    // Redis back, with the ids it had: the nodes connect again by themselves, and the id
    // accepted before the outage is still refused (no replay is ever accepted).
    redis.resume();
    wait_until_fully_ready(&refusing, Duration::from_secs(10));
    wait_until_fully_ready(&falling_back, Duration::from_secs(10));
    assert_duplicate(&refusing.post(NEW, &request("before-outage")));
    assert_duplicate(&falling_back.post(NEW, &request("before-outage")));
    assert_issued(&refusing.post(NEW, &request("after-outage")));

    // The operator reads one line when Redis went away and one when it came back, not a line
    // per refused request.
    let log = refusing.log();
    let went = log.matches("replay store: Redis cannot be reached").count();
    assert!((1..=2).contains(&went), "one warning per change of state (a core each at most):\n{log}");
    assert!(log.contains("replay store: Redis answers on every core"), "{log}");
}

#[test]
fn a_redis_that_accepts_connections_and_never_answers_is_timed_out() {
    // Not a Redis: a listener that takes connections and never answers (a hung server, a
    // half-open connection). Requests must not wait past timeout_ms for it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let address: SocketAddr = silent.local_addr().unwrap();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().take(64) {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => break,
            }
        }
    });
    let server = Server::start_with(use_redis(&address.to_string(), "timeout_ms = 50"));
    for i in 0..3 {
        let reply = server.post(NEW, &request(&format!("silent-{i}")));
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert_eq!(faultcode(&reply), "soapenv:Server");
    }
    assert!(
        metric_sum(&server.metrics(), "segl_replay_store_unavailable_total", &["action=\"refused\""]) >= 3.0
    );
    drop(server);
    drop(holder);
}

#[test]
fn auth_with_a_password_file_and_a_wrong_password_is_named_without_the_password() {
    let Some(redis) = Redis::start("auth", "127.0.0.1", Some("correct-horse-battery")) else { return };
    let right = write_secret("redis-right", "correct-horse-battery\n");
    let wrong = write_secret("redis-wrong", "not-the-password-at-all\n");
    let server =
        Server::start_with(use_redis(&redis.address(), &format!("password_file = \"{}\"", right.display())));
    wait_until_fully_ready(&server, Duration::from_secs(10));
    assert_issued(&server.post(NEW, &request("auth-1")));
    assert_duplicate(&server.post(NEW, &request("auth-1")));
    assert_eq!(redis.replay_keys().len(), 1);

    let refused =
        Server::start_with(use_redis(&redis.address(), &format!("password_file = \"{}\"", wrong.display())));
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = admin_get(refused.admin, "/readyz");
        if status == 200 && body.contains("AUTH refused") {
            break body;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!body.contains("not-the-password"), "{body}");
    assert_eq!(refused.post(NEW, &request("auth-2")).status, 503);
    let log = refused.log();
    assert!(log.contains("AUTH refused"), "{log}");
    assert!(!log.contains("not-the-password"), "the password is never logged:\n{log}");
}

fn write_secret(name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let path = env().dir.join(name);
    let mut f =
        std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

#[test]
fn tls_to_redis_checks_the_server_against_the_configured_ca() {
    let Some(redis) = Redis::start_tls("tls") else { return };
    let tls = redis.tls().expect("a TLS listener");
    let address = format!("127.0.0.1:{}", tls.port);
    let good = format!("tls = true\ntls_ca = \"{}\"\ntls_server_name = \"redis.test\"", tls.ca.display());
    let server = Server::start_with(use_redis(&address, &good));
    wait_until_fully_ready(&server, Duration::from_secs(10));
    assert_issued(&server.post(NEW, &request("tls-1")));
    assert_duplicate(&server.post(NEW, &request("tls-1")));
    assert_eq!(redis.replay_keys().len(), 1, "the id went to Redis over TLS");

    // A CA that did not issue the server's certificate: no connection, and /readyz says why.
    let stranger = env().pki("sts-signing");
    let bad = format!("tls = true\ntls_ca = \"{}\"\ntls_server_name = \"redis.test\"", stranger.display());
    let refused = Server::start_with(use_redis(&address, &bad));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = admin_get(refused.admin, "/readyz");
        if body.contains("TLS") {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(refused.post(NEW, &request("tls-2")).status, 503);
}

#[test]
fn a_redis_that_refuses_writes_counts_as_unavailable_until_it_takes_them_again() {
    let Some(redis) = Redis::start("readonly", "127.0.0.1", None) else { return };
    let server = Server::start_with(use_redis(&redis.address(), ""));
    wait_until_fully_ready(&server, Duration::from_secs(10));
    assert_issued(&server.post(NEW, &request("ro-1")));
    // A failover demotes the primary: it answers READONLY (its replication source is a port
    // nobody listens on, so it stays a replica until told otherwise).
    assert!(redis.command(&["REPLICAOF", "127.0.0.1", "1"]).unwrap().starts_with("+OK"));
    let refused = server.post(NEW, &request("ro-2"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = admin_get(server.admin, "/readyz");
        if body.contains("READONLY") || body.contains("replica") || body.contains("slave") {
            assert_eq!(status, 200, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "{status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric_sum(&server.metrics(), "segl_replay_store_up", &[]) < 2.0);
    // Promoted again: the node connects by itself, and the refused request may be sent again.
    assert!(redis.command(&["REPLICAOF", "NO", "ONE"]).unwrap().starts_with("+OK"));
    wait_until_fully_ready(&server, Duration::from_secs(10));
    let again = server.post(NEW, &request("ro-2"));
    // Seen once refused here in a full run (503, the store unavailable): the log says why.
    assert_eq!(again.status, 200, "{}\nthe server's log:\n{}", again.text(), server.log());
    assert_duplicate(&server.post(NEW, &request("ro-1")));
}

#[test]
fn a_set_that_lands_after_its_request_was_refused_is_taken_back() {
    let Some(redis) = Redis::start("late", "127.0.0.1", None) else { return };
    let server = Server::start_with(use_redis(&redis.address(), "timeout_ms = 50"));
    wait_until_fully_ready(&server, Duration::from_secs(10));
    // Writes paused for 400 ms: the SET waits in Redis past the request's 50 ms, then runs.
    assert!(redis.command(&["CLIENT", "PAUSE", "400", "WRITE"]).unwrap().starts_with("+OK"));
    let first = server.post(NEW, &request("late-1"));
    assert_eq!(first.status, 503, "{}", first.text());
    std::thread::sleep(Duration::from_millis(800));
    // The client retries with the same message id after Retry-After: it is not a replay.
    assert_issued(&server.post(NEW, &request("late-1")));
    assert_duplicate(&server.post(NEW, &request("late-1")));
    assert_eq!(redis.replay_keys().len(), 1);
}

#[test]
fn ids_accepted_from_memory_during_an_outage_reach_redis_afterwards() {
    let Some(mut redis) = Redis::start("backfill", "127.0.0.1", None) else { return };
    let local = "when_unavailable = \"local\"";
    let a = Server::start_with(use_redis(&redis.address(), local));
    let b = Server::start_with(use_redis(&redis.address(), local));
    wait_until_fully_ready(&a, Duration::from_secs(10));
    wait_until_fully_ready(&b, Duration::from_secs(10));
    redis.stop();
    for node in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !admin_get(node.admin, "/readyz").1.contains("unavailable") {
            assert!(Instant::now() < deadline, "a node did not notice Redis stopping");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Served from each node's memory meanwhile; the same id at both nodes is a replay that
    // passes during the outage, and is counted once Redis is back.
    assert_issued(&a.post(NEW, &request("outage-only-a")));
    assert_issued(&a.post(NEW, &request("outage-both")));
    assert_issued(&b.post(NEW, &request("outage-both")));
    redis.resume();
    wait_until_fully_ready(&a, Duration::from_secs(10));
    wait_until_fully_ready(&b, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.replay_keys().len() < 2 {
        assert!(Instant::now() < deadline, "the outage's ids were not written: {:?}", redis.replay_keys());
        std::thread::sleep(Duration::from_millis(50));
    }
    // After the outage, a replay to the other node of an id accepted during it is refused.
    assert_duplicate(&b.post(NEW, &request("outage-only-a")));
    let conflicts = metric_sum(&a.metrics(), "segl_replay_store_conflicts_total", &[])
        + metric_sum(&b.metrics(), "segl_replay_store_conflicts_total", &[]);
    assert_eq!(conflicts, 1.0, "the id both nodes accepted is counted once");
}
