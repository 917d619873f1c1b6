//! The cluster test bed: three segl nodes, each in a network namespace of its own with its own
//! address, behind HAProxy running `config/haproxy.cfg` as shipped (only its addresses
//! replaced), the message ids in one Redis, the keys on one HSM (the test's SoftHSM token
//! exported by `p11-kit server`), and steady load from a generator through HAProxy.
//!
//! Shown, in order, on one bed: a request accepted through the balancer and replayed to each
//! node directly is refused by every one; `kill -9` of a node fails only what was in flight on
//! it; a rolling restart of all three (SIGTERM, wait, start), a rolling upgrade (the same with
//! another binary) and a rolling configuration change (SIGHUP) fail nothing; Redis stopped and
//! started: refused with segl's fault while it is down, no replay accepted across the outage,
//! and (after a rolling change to `when_unavailable = "local"`) served on under load;
//! a key rotation on the shared HSM fails nothing and every node signs with the new key within
//! a second of its activation.
//!
//! Needs root (network namespaces, a bridge), `ip`, `haproxy`, `redis-server` and `p11-kit`
//! (`tests/install-host-packages` installs them; CI runs as root). Without them it says why and
//! passes. Its own test binary: the rotation changes the token's active key.

mod common;
mod hsm_support;
mod redis_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{admin_get, env, faultcode, request_with_message_id, try_admin_get, Reply};
use hsm_support::{keys_ok, signing_certificate, Load, Sample, NEW};
use redis_support::Redis;

/// How long a node serves on after SIGTERM while HAProxy's check (every 500 ms, out after two
/// failures) takes it out of the pool.
const GRACE_MS: u64 = 1500;

/// A bridge in the test's namespace and a namespace per node, joined to it by a veth pair.
struct Bed {
    id: String,
    nodes: usize,
    /// `10.x.y`: the bridge is `.1`, node i is `.11 + i`.
    prefix: String,
}

impl Bed {
    /// The network, or None (said on stderr) where the test cannot make one.
    fn create(nodes: usize) -> Option<Bed> {
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let missing: Vec<&str> = ["ip", "haproxy", "redis-server", "p11-kit"]
            .into_iter()
            .filter(|tool| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .is_ok_and(|o| !o.status.success())
            })
            .collect();
        if !is_root || !missing.is_empty() || hsm_support::p11kit_client_module().is_none() {
            eprintln!(
                "cluster test bed skipped: needs root (is root: {is_root}) and {missing:?} (tests/install-host-packages)"
            );
            return None;
        }
        let pid = std::process::id();
        sweep_stale_beds();
        let bed =
            Bed { id: pid.to_string(), nodes, prefix: format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250) };
        let bridge = bed.bridge();
        bed.ip(&["link", "add", &bridge, "type", "bridge"]);
        bed.ip(&["addr", "add", &format!("{}/24", bed.host_ip()), "dev", &bridge]);
        bed.ip(&["link", "set", &bridge, "up"]);
        for i in 0..nodes {
            let (ns, veth) = (bed.namespace(i), format!("sg{}v{i}", bed.id));
            bed.ip(&["netns", "add", &ns]);
            bed.ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            bed.ip(&["link", "set", &veth, "master", &bridge, "up"]);
            bed.ip(&["-n", &ns, "addr", "add", &format!("{}/24", bed.node_ip(i)), "dev", "eth0"]);
            bed.ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            bed.ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        Some(bed)
    }

    fn ip(&self, args: &[&str]) {
        let out = Command::new("ip").args(args).output().expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn bridge(&self) -> String {
        format!("sgb{}", self.id)
    }

    fn namespace(&self, i: usize) -> String {
        format!("segl-{}-{i}", self.id)
    }

    fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    fn node_ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 11 + i)
    }
}

/// Removes the namespaces and bridges of beds whose test process is gone (a run that was
/// killed before its `Drop`).
fn sweep_stale_beds() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name.strip_prefix("segl-").and_then(|r| r.split('-').next()) else { continue };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
            let _ =
                Command::new("ip").args(["link", "del", &format!("sgb{pid}")]).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = Command::new("ip").args(["netns", "del", &self.namespace(i)]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge()]).status();
    }
}

/// One segl node in its namespace.
struct Node {
    name: &'static str,
    namespace: String,
    config: PathBuf,
    log: PathBuf,
    addr: SocketAddr,
    admin: SocketAddr,
    /// The executable it runs (an upgrade starts another one).
    binary: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn new(bed: &Bed, i: usize, name: &'static str, config_text: &str) -> Node {
        let ip = bed.node_ip(i);
        let audit = env().dir.join("audit").join(format!("cluster-{name}.jsonl"));
        let text = config_text
            .replace("127.0.0.1:8080", &format!("{ip}:8080"))
            .replace("127.0.0.1:9090", &format!("{ip}:9090"))
            .replace(
                &format!("path = \"{}\"", env().config.audit.path.display()),
                &format!("path = \"{}\"", audit.display()),
            );
        let config = env().dir.join(format!("cluster-{name}.toml"));
        std::fs::write(&config, text).unwrap();
        Node {
            name,
            namespace: bed.namespace(i),
            config,
            log: env().dir.join(format!("cluster-{name}.log")),
            addr: format!("{ip}:8080").parse().unwrap(),
            admin: format!("{ip}:9090").parse().unwrap(),
            binary: PathBuf::from(env!("CARGO_BIN_EXE_segl")),
            child: None,
        }
    }

    /// Starts the node and waits until it says it is ready.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespace])
            .arg(&self.binary)
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start segl in its namespace");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while try_admin_get(self.admin, "/readyz").map(|(s, _)| s) != Some(200) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            assert!(Instant::now() < deadline, "{} not ready:\n{}", self.name, self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and waits for the exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        assert!(status.success(), "{} exited with {status} after SIGTERM:\n{}", self.name, self.log_text());
    }

    /// SIGKILL: the node dies with its requests in flight.
    fn kill_9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The configuration version the node serves (1 at start, +1 per reload).
    fn config_version(&self) -> f64 {
        try_admin_get(self.admin, "/metrics")
            .map_or(0.0, |(_, m)| common::metric_sum(&m, "segl_config_version", &[]))
    }

    /// Changes its configuration file with `edit` and reloads it (SIGHUP), waiting until the
    /// node serves the new version.
    fn reconfigure(&mut self, edit: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, edit(text)).unwrap();
        let before = self.config_version();
        let pid = self.child.as_ref().expect("running").id();
        let _ = Command::new("kill").args(["-HUP", &pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.config_version() <= before {
            assert!(Instant::now() < deadline, "{} did not reload:\n{}", self.name, self.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy on `config/haproxy.cfg` with the bed's addresses, and its stats socket.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
    socket: PathBuf,
    log: PathBuf,
}

impl Haproxy {
    fn start(bed: &Bed, nodes: &[Node]) -> Haproxy {
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/haproxy.cfg"))
                .unwrap();
        let port = common::free_port_on(bed.host_ip().parse().unwrap());
        let addr: SocketAddr = format!("{}:{port}", bed.host_ip()).parse().unwrap();
        let socket = env().dir.join("haproxy.sock");
        let mut text = shipped.replacen(
            "global\n",
            &format!("global\n    stats socket {} mode 600 level admin\n", socket.display()),
            1,
        );
        assert!(text.contains("    bind :8443\n"), "config/haproxy.cfg no longer binds :8443");
        text = text.replace("    bind :8443\n", &format!("    bind {addr}\n"));
        for (node, shipped_ip) in nodes.iter().zip(["10.0.0.11", "10.0.0.12", "10.0.0.13"]) {
            let line = format!("    server segl-{} {shipped_ip}:8443\n", node.name);
            assert!(text.contains(&line), "config/haproxy.cfg no longer has {line:?}");
            text = text.replace(&line, &format!("    server segl-{} {}\n", node.name, node.addr));
        }
        let cfg = env().dir.join("haproxy.cfg");
        std::fs::write(&cfg, text).unwrap();
        let check = Command::new("haproxy").args(["-c", "-f"]).arg(&cfg).output().unwrap();
        assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stdout));
        let log = env().dir.join("haproxy.log");
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let haproxy = Haproxy { child, addr, socket, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while nodes.iter().any(|n| haproxy.status(n.name) != "UP") {
            assert!(
                Instant::now() < deadline,
                "HAProxy does not see every node UP: {:?}\n{}",
                nodes.iter().map(|n| haproxy.status(n.name)).collect::<Vec<_>>(),
                haproxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        haproxy
    }

    /// The backend's view of a node: UP, DOWN, NOLB (going down), MAINT...
    fn status(&self, node: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return "NOSOCKET".into();
        };
        let _ = s.write_all(b"show stat\n");
        let mut csv = String::new();
        let _ = s.read_to_string(&mut csv);
        let header: Vec<&str> =
            csv.lines().next().unwrap_or("").trim_start_matches("# ").split(',').collect();
        let column = header.iter().position(|h| *h == "status").unwrap_or(17);
        csv.lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.first() == Some(&"segl") && f.get(1) == Some(&format!("segl-{node}").as_str()))
            .and_then(|f| f.get(column).map(|s| s.to_string()))
            .unwrap_or_default()
    }

    fn wait_status(&self, node: &str, want: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while !self.status(node).starts_with(want) {
            assert!(start.elapsed() < within, "{node} not {want} within {within:?}: {}", self.status(node));
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reply(addr: SocketAddr, body: &[u8]) -> Reply {
    common::post_to(addr, NEW, body)
}

fn failures(samples: &[Sample], from: Duration, to: Duration) -> Vec<&Sample> {
    samples.iter().filter(|s| s.sent >= from && s.sent < to && s.status != 200).collect()
}

fn describe(failed: &[&Sample]) -> String {
    failed
        .iter()
        .take(5)
        .map(|s| {
            let text = String::from_utf8_lossy(&s.body);
            let why = text
                .find("<faultstring>")
                .map_or(&text[..text.len().min(200)], |i| &text[i..text.len().min(i + 300)]);
            format!("{} at {:?}: {why}", s.status, s.sent)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn three_nodes_behind_haproxy_on_one_redis_and_one_hsm() {
    let Some(bed) = Bed::create(3) else { return };
    let Some(mut redis) = Redis::start("cluster", &bed.host_ip(), None) else { return };
    let module = hsm_support::p11kit_client_module().expect("checked by Bed::create");
    let p11 = hsm_support::P11KitServer::start(&env().dir.join("cluster-hsm.sock"));

    // One configuration for all nodes but their addresses: pipelined signing through p11-kit,
    // one core each (three nodes share two CPUs with the generator), Redis refusing while
    // unavailable, a grace period after SIGTERM, a quick key-inventory poll.
    let mut text = env().config_text.replace("deadline_ms = 200", common::TEST_DEADLINE);
    hsm_support::via_p11kit(&mut text, &module, &p11.address(), "pipelined");
    let edits = [
        ("# cores = 2 ", "cores = 1 "),
        ("drain_grace_ms = 0 ", &format!("drain_grace_ms = {GRACE_MS} ")),
        ("inventory_poll_ms = 250", "inventory_poll_ms = 100"),
        (
            "store = \"local\"\n",
            // A generous wait: two CPUs run three debug-built nodes, the generator, the HSM and a
            // Redis that syncs every write; a timeout here would be the machine, not the bed.
            &format!(
                "store = \"redis\"\n[replay.redis]\naddresses = [\"{}\"]\nwhen_unavailable = \"refuse\"\ntimeout_ms = 1000\n",
                redis.address()
            ),
        ),
    ];
    for (from, to) in edits {
        assert!(text.contains(from), "config/segl.toml no longer has {from:?}");
        text = text.replacen(from, to, 1);
    }
    let mut nodes: Vec<Node> =
        ["a", "b", "c"].iter().enumerate().map(|(i, name)| Node::new(&bed, i, name, &text)).collect();
    // One at a time: a SoftHSM login rewrites the token's file.
    nodes.iter_mut().for_each(Node::start);
    let haproxy = Haproxy::start(&bed, &nodes);
    let lb = haproxy.addr;

    // ---- a replay, to every node, under load ----
    let load = Load::start_mixed_at(lb, 3, 0, Duration::from_secs(300));
    let original = request_with_message_id("cluster-replay-1");
    let accepted = reply(lb, &original);
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    for node in &nodes {
        let again = reply(node.addr, &original);
        assert_eq!(faultcode(&again), "wsa:duplicatemessageid", "node {}: {}", node.name, again.text());
    }
    assert_eq!(faultcode(&reply(lb, &original)), "wsa:duplicatemessageid");

    // ---- kill -9 of one node ----
    std::thread::sleep(Duration::from_millis(500));
    let killed_at = load.now();
    nodes[1].kill_9();
    // The process is gone (reaped) by now: whatever was sent before this was in flight on it.
    let dead_at = load.now();
    let noticed = haproxy.wait_status("b", "DOWN", Duration::from_secs(5));
    let noticed_at = dead_at + noticed;
    std::thread::sleep(Duration::from_millis(1500));
    let after_kill = load.now();
    nodes[1].start();
    haproxy.wait_status("b", "UP", Duration::from_secs(10));

    // ---- rolling restart, upgrade and configuration change of every node ----
    let rolling_from = load.now();
    // The upgrade's binary: another file, as a package upgrade installs.
    let upgraded = env().dir.join("segl-upgraded");
    std::fs::copy(env!("CARGO_BIN_EXE_segl"), &upgraded).unwrap();
    for upgrade in [false, true] {
        for node in nodes.iter_mut() {
            node.stop();
            if upgrade {
                node.binary = upgraded.clone();
            }
            node.start();
            haproxy.wait_status(node.name, "UP", Duration::from_secs(10));
        }
    }
    for node in nodes.iter_mut() {
        node.reconfigure(|t| t.replacen("clock_skew_secs = 300", "clock_skew_secs = 240", 1));
    }
    let rolling_to = load.now();
    std::thread::sleep(Duration::from_millis(500));
    let samples = load.finish();

    let during_kill = failures(&samples, Duration::ZERO, after_kill);
    eprintln!(
        "kill -9 of node b: HAProxy marked it DOWN {noticed:?} after the kill; {} of {} requests sent in the {:?} around it failed",
        during_kill.len(),
        samples.iter().filter(|s| s.sent < after_kill).count(),
        after_kill
    );
    // Only what was in flight on the killed node fails: at most one request per generator
    // thread, each sent before the kill.
    assert!(during_kill.len() <= 3, "{}", describe(&during_kill));
    // The generator's clock and the kill's are read on different threads of a busy machine:
    // 50 ms of slack on the side of "sent before the node was gone".
    assert!(
        during_kill.iter().all(|s| s.sent <= dead_at + Duration::from_millis(50) && s.done >= killed_at),
        "a request not in flight at the kill ({killed_at:?}..{dead_at:?}) failed:\n{}",
        describe(&during_kill)
    );
    let late = failures(&samples, noticed_at, rolling_from);
    assert!(late.is_empty(), "failures after HAProxy noticed:\n{}", describe(&late));
    let rolling = failures(&samples, rolling_from, rolling_to + Duration::from_millis(500));
    let rolled = samples.iter().filter(|s| s.sent >= rolling_from && s.sent < rolling_to).count();
    eprintln!(
        "rolling restart, upgrade and reload of 3 nodes: {rolled} requests, {} failed, {:?}",
        rolling.len(),
        rolling_to - rolling_from
    );
    assert!(rolling.is_empty(), "the rolling operations failed requests:\n{}", describe(&rolling));
    assert!(nodes.iter().all(|n| n.log_text().contains("serving on for the grace period")));
    assert!(rolled >= 30, "too little load during the rolling restart to show anything: {rolled}");

    // ---- Redis stopped and started ----
    let before = request_with_message_id("cluster-before-outage");
    assert_eq!(reply(lb, &before).status, 200);
    redis.stop();
    // Every node notices within its idle check (a second); until Redis is back, each request
    // gets segl's own refusal and nothing is issued, replays least of all.
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes.iter().any(|n| !admin_get(n.admin, "/readyz").1.contains("replay store (Redis) unavailable"))
    {
        assert!(Instant::now() < deadline, "a node did not notice Redis stopping");
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..6 {
        let fresh = reply(lb, &request_with_message_id(&format!("cluster-outage-{i}")));
        assert_eq!((fresh.status, faultcode(&fresh)), (503, "soapenv:Server".to_owned()), "{}", fresh.text());
        let replayed = reply(nodes[i % 3].addr, &before);
        assert_ne!(replayed.status, 200, "a replay was accepted while Redis was down");
    }
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.iter().any(|n| admin_get(n.admin, "/readyz").1 != "ready\n") {
        assert!(Instant::now() < deadline, "a node did not reconnect to Redis");
        std::thread::sleep(Duration::from_millis(50));
    }
    for node in &nodes {
        assert_eq!(faultcode(&reply(node.addr, &before)), "wsa:duplicatemessageid", "node {}", node.name);
    }
    assert_eq!(reply(lb, &request_with_message_id("cluster-after-outage")).status, 200);

    // ---- the other policy: served from each node's memory while Redis is down ----
    // A rolling change of a setting that needs a restart, then Redis stopped under load.
    for node in nodes.iter_mut() {
        let text = std::fs::read_to_string(&node.config).unwrap();
        assert!(text.contains("when_unavailable = \"refuse\""));
        std::fs::write(
            &node.config,
            text.replace("when_unavailable = \"refuse\"", "when_unavailable = \"local\""),
        )
        .unwrap();
        node.stop();
        node.start();
        haproxy.wait_status(node.name, "UP", Duration::from_secs(10));
    }
    let load = Load::start_mixed_at(lb, 3, 0, Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(300));
    redis.stop();
    let down_at = load.now();
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes.iter().any(|n| !admin_get(n.admin, "/readyz").1.contains("checked on this node only")) {
        assert!(Instant::now() < deadline, "a node did not notice Redis stopping");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1000));
    redis.resume();
    let up_at = load.now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.iter().any(|n| admin_get(n.admin, "/readyz").1 != "ready\n") {
        assert!(Instant::now() < deadline, "a node did not reconnect to Redis");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let samples = load.finish();
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    let during = samples.iter().filter(|s| s.sent > down_at && s.sent < up_at).count();
    eprintln!(
        "Redis down {:?} with when_unavailable = \"local\": {during} requests served meanwhile, {} failed",
        up_at - down_at,
        failed.len()
    );
    assert!(failed.is_empty(), "the fallback failed requests:\n{}", describe(&failed));
    assert!(during >= 10, "too little load while Redis was down: {during}");
    let fell_back: f64 = nodes
        .iter()
        .map(|n| admin_get(n.admin, "/metrics").1)
        .map(|m| common::metric_sum(&m, "segl_replay_store_unavailable_total", &["action=\"local\""]))
        .sum();
    assert!(fell_back >= 1.0, "no request was checked on a node's memory");

    // ---- key rotation on the shared HSM ----
    let config = &nodes[0].config;
    let old_der = segl::dev::client::read_certificate(&env().pki("sts-signing")).unwrap();
    let load = Load::start_mixed_at(lb, 3, 0, Duration::from_secs(120));
    keys_ok(config, &["generate", "cluster-rotated", "--bits", "2048"]);
    let csr = keys_ok(
        config,
        &["csr", "cluster-rotated", "--subject", "C=DK,O=SEGL Development // CVR:12345678,CN=SEGL STS cluster,serialNumber=CVR:12345678-FID:00000003"],
    );
    let issued =
        segl::dev::pki::issue_sts_certificate(&env().config, &csr).expect("development CA issues it");
    let issued_path = hsm_support::write_pem("cluster-rotated.pem", &issued);
    keys_ok(config, &["import-cert", "cluster-rotated", issued_path.to_str().unwrap()]);
    let new_der = segl::dev::client::read_certificate(&issued_path).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let activated = Instant::now();
    let activated_at = load.now();
    keys_ok(config, &["activate", "cluster-rotated"]);
    // Each node, asked directly until it answers with the new key.
    for node in &nodes {
        loop {
            let sent = activated.elapsed();
            let r = reply(node.addr, &hsm_support::request());
            assert_eq!(r.status, 200, "node {}: {}", node.name, r.text());
            let cert = signing_certificate(&r.body);
            if cert == new_der {
                eprintln!("node {} signs with the new key {sent:?} after activation", node.name);
                break;
            }
            assert_eq!(cert, old_der, "node {} signed with neither key", node.name);
            assert!(
                sent < Duration::from_secs(1),
                "node {} still signs with the old key {sent:?} after activation",
                node.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    let samples = load.finish();
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.status != 200).collect();
    assert!(failed.is_empty(), "the rotation failed requests:\n{}", describe(&failed));
    let late_old = samples
        .iter()
        .filter(|s| s.sent > activated_at + Duration::from_secs(1))
        .filter(|s| signing_certificate(&s.body) == old_der)
        .count();
    assert_eq!(late_old, 0, "answers signed with the old key more than a second after activation");
    let new = samples.iter().filter(|s| signing_certificate(&s.body) == new_der).count();
    assert!(new >= 10, "only {new} of {} answers with the new key", samples.len());
    drop(haproxy);
    drop(p11);
}
