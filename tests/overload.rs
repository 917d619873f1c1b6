//! Overload: offered load at three times what segl can sign, loopback only, bounded in time.
//!
//! Three times over, one run measures capacity (closed loop), then offers 3× that open-loop
//! (latency measured from the intended send time, so queueing is not hidden); it checks what
//! issue "Serving at tax-day peak" promises: goodput ≥ 95 % of the capacity measured just
//! before (where the HSM is the bottleneck; below), admitted requests answered within the
//! deadline, refusals back in under 5 ms at p99, AKUT refused after RUTINE, and a flooding
//! client not starving a well-behaved one. The figures are printed.
//!
//! It runs in two shapes, one test each, one at a time:
//! - **The HSM on a CPU of its own** (the deployment segl is built for: a network HSM). SoftHSM
//!   runs in a `p11-kit server` process pinned to the last CPU, reached over p11-kit's RPC
//!   module with the pipelined signer; segl's one executor and the load generator share CPU 0,
//!   and segl's other threads (the signing threads, the audit writer) run where the scheduler
//!   puts them, the HSM's CPU included. The HSM is the bottleneck, and goodput is judged by
//!   what it spent its time on: the share of its CPU's available time (wall time less the
//!   hypervisor's steal) the HSM was busy during the overload, times the share of its
//!   signatures that became cards delivered to their clients within the deadline, must be
//!   ≥ 95 % of its busy share in the closed loop just before, and its CPU per signature must
//!   not have grown by more than a fifth (work that is not signing is not goodput). That is
//!   goodput relative to capacity with the machine's speed taken out: on this shared VM a
//!   capacity window and the overload right after it differ by up to 20 % in cards per wall
//!   second (and capacity windows within one run by 574–901/s), which swamps a 5 % criterion,
//!   while the HSM's busy share stays within about 3 % from window to window. Cards per wall
//!   second are printed beside it. The closed loop must also have saturated the HSM (busy
//!   ≥ 80 % of its CPU's time, which idled ≤ 10 %), or a segl that starved it in both phases
//!   alike would pass.
//! - **SoftHSM inline on the serving core** (the embedded default). segl serves on one
//!   executor (CPU 0) that also signs, and the generator is pinned to the other CPU. Here every
//!   refusal's work (reading its request, the kernel's loopback TCP, the answer) is CPU taken
//!   from signing, so goodput is capacity less what refusals cost, plus the machine's drift:
//!   92–110 % of capacity in cards per wall second on this machine (2026-12-03, Intel Xeon,
//!   9 runs). Every other promise is asserted as in the first shape; goodput only against
//!   collapse (≥ 75 %: a refusal that cost a signature, or admission letting the queue run dry,
//!   would give far less).
//!
//! Latency is a property of optimized code: in a debug build this test says so and skips; run it
//! with `cargo test --release --test overload -- --nocapture`.

mod common;
mod hsm_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env, Server};
use hsm_support::{p11kit_client_module, via_p11kit, P11KitServer};
use segl::dev::client::RequestOptions;
use segl::dev::pki::Identity;
use segl::token::CardType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const PATH: &str = "/sts/services/NewSecurityTokenService";
const DEADLINE: Duration = Duration::from_millis(200);
/// Capacity/overload pairs in the priority phase.
const ROUNDS: u32 = 3;
const CAPACITY_WINDOW: Duration = Duration::from_secs(2);
const OVERLOAD_WINDOW: Duration = Duration::from_millis(3500);
/// How long a closed-loop client waits after a refusal.
const CLOSED_LOOP_BACKOFF: Duration = Duration::from_millis(10);
/// The start of each overload whose answers are not counted (the budget adapts to it).
const OVERLOAD_WARMUP: Duration = Duration::from_millis(500);

/// Requests without a message id (as unsealed sends them) may be posted many times; a medcom
/// Priority header is added for admission control to read.
fn pool(identity: Identity, cvr: &str, priority: &str, n: usize) -> Vec<Arc<Vec<u8>>> {
    (0..n)
        .map(|_| {
            let mut opts = RequestOptions::new(CardType::User);
            opts.identity = Some(identity);
            opts.cvr = cvr.into();
            let text = String::from_utf8(env().client.request(&opts).unwrap()).unwrap();
            let start = text.find("<wsse:Security id=\"").unwrap();
            let end = start + text[start..].find('>').unwrap();
            let header = format!(
                "<medcom:Header><medcom:Priority>{priority}</medcom:Priority></medcom:Header><wsse:Security"
            );
            Arc::new((text[..start].to_owned() + &header + &text[end..]).into_bytes())
        })
        .collect()
}

/// Latencies by answer. `ok`/`shed` are timed from the intended send time (what a user of an
/// open system sees, queueing in the client included); `ok_sent`/`shed_sent` from the moment the
/// request was written (what the server is accountable for).
#[derive(Default, Clone)]
struct Tally {
    ok: Vec<Duration>,
    shed: Vec<Duration>,
    ok_sent: Vec<Duration>,
    shed_sent: Vec<Duration>,
    other: usize,
    /// Cards delivered within the deadline (from the request's send time) over the whole
    /// phase, warm-up included (the server's counters cover it).
    delivered: usize,
}

impl Tally {
    fn append(&mut self, mut other: Tally) {
        self.ok.append(&mut other.ok);
        self.shed.append(&mut other.shed);
        self.ok_sent.append(&mut other.ok_sent);
        self.shed_sent.append(&mut other.shed_sent);
        self.other += other.other;
        self.delivered += other.delivered;
    }
}

struct Connections {
    addr: SocketAddr,
    idle: Mutex<Vec<TcpStream>>,
}

impl Connections {
    /// The response status, or `None` for a connection error or no answer within 10 s (a lost
    /// connection must fail the test, not hang it).
    async fn send(&self, body: &[u8]) -> Option<u16> {
        tokio::time::timeout(Duration::from_secs(10), self.exchange(body)).await.ok().flatten()
    }

    async fn exchange(&self, body: &[u8]) -> Option<u16> {
        let stream = self.idle.lock().await.pop();
        let mut stream = match stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.addr).await.ok()?;
                s.set_nodelay(true).ok()?;
                s
            }
        };
        // One write: a head and a body in two writes meet Nagle and delayed ACKs (40 ms).
        let mut request = format!(
            "POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        stream.write_all(&request).await.ok()?;
        let mut buf = Vec::with_capacity(16 * 1024);
        let (status, close) = loop {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + length {
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                break (status, head.contains("connection: close"));
            }
        };
        if !close {
            self.idle.lock().await.push(stream);
        }
        Some(status)
    }
}

/// Closed loop with `concurrency` connections for `duration`: the completions per second.
///
/// Only answers that arrive within the window count. The requests still in flight when it
/// ends are answered up to one queue's time later (64 requests ≈ 90 ms here); counting them
/// as well would credit the window with ~4.5 % more capacity than the server has, and every
/// goodput ratio against it would read that much low.
async fn capacity(
    conns: Arc<Connections>,
    bodies: Vec<Arc<Vec<u8>>>,
    concurrency: usize,
    duration: Duration,
) -> f64 {
    let end = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let (conns, bodies) = (conns.clone(), bodies.clone());
            tokio::spawn(async move {
                let mut ok = 0u32;
                let mut n = i;
                while Instant::now() < end {
                    match conns.send(&bodies[n % bodies.len()]).await {
                        Some(200) if Instant::now() <= end => ok += 1,
                        // Refused (a closed loop keeps a queue standing, and overload is refused,
                        // not queued): wait a little, as a client honouring Retry-After would
                        // (shorter, so the loop stays closed), instead of spinning on refusals
                        // that take the core's time from the requests it admitted.
                        Some(503) => tokio::time::sleep(CLOSED_LOOP_BACKOFF).await,
                        _ => {}
                    }
                    n += concurrency;
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    f64::from(ok) / duration.as_secs_f64()
}

/// Open loop: `rate` requests per second from `bodies` for `duration`, each timed from its
/// intended send time. Results of the first `warmup` are not counted.
async fn open_loop(
    conns: Arc<Connections>,
    bodies: Vec<Arc<Vec<u8>>>,
    rate: f64,
    duration: Duration,
    warmup: Duration,
) -> Tally {
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let start = Instant::now();
    let total = (rate * duration.as_secs_f64()) as usize;
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(intended.into()).await;
        let (conns, body, tally) = (conns.clone(), bodies[i % bodies.len()].clone(), tally.clone());
        let counted = intended >= start + warmup;
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = conns.send(&body).await;
            let (latency, since_sent) = (intended.elapsed(), sent.elapsed());
            let mut t = tally.lock().unwrap();
            t.delivered += usize::from(status == Some(200) && since_sent <= DEADLINE);
            if counted {
                match status {
                    Some(200) => {
                        t.ok.push(latency);
                        t.ok_sent.push(since_sent);
                    }
                    Some(503) => {
                        t.shed.push(latency);
                        t.shed_sent.push(since_sent);
                    }
                    _ => t.other += 1,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let t = tally.lock().unwrap().clone();
    t
}

/// Prints `part` of `whole` as a share and asserts it is at least `at_least` (and that there
/// was something to count).
fn assert_share(what: &str, part: u64, whole: u64, at_least: f64, failure: &str) {
    println!("{what}: {part} of {whole} = {:.2} %", 100.0 * part as f64 / whole.max(1) as f64);
    assert!(whole > 0 && part as f64 >= at_least * whole as f64, "{failure}: {part} of {whole}");
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, t: &mut Tally, seconds: f64) {
    let (ok, shed) = (t.ok.len(), t.shed.len());
    println!(
        "{name}: ok {ok} ({:.0}/s), shed {shed} ({:.0}/s), other {}\n  from intended send: ok p50 {:?} p99 {:?} max {:?}; shed p50 {:?} p99 {:?}\n  from actual send:   ok p50 {:?} p99 {:?} max {:?}; shed p50 {:?} p99 {:?}",
        ok as f64 / seconds,
        shed as f64 / seconds,
        t.other,
        percentile(&mut t.ok, 0.5),
        percentile(&mut t.ok, 0.99),
        percentile(&mut t.ok, 1.0),
        percentile(&mut t.shed, 0.5),
        percentile(&mut t.shed, 0.99),
        percentile(&mut t.ok_sent, 0.5),
        percentile(&mut t.ok_sent, 0.99),
        percentile(&mut t.ok_sent, 1.0),
        percentile(&mut t.shed_sent, 0.5),
        percentile(&mut t.shed_sent, 0.99),
    );
}

/// From a Prometheus histogram on `admin`: the count in the bucket `le` and the total count,
/// over the series carrying `labels`.
fn histogram(admin: SocketAddr, name: &str, le: &str, labels: &[&str]) -> (u64, u64) {
    let metrics = common::admin_get(admin, "/metrics").1;
    let le = format!("le=\"{le}\"");
    let bucket_labels: Vec<&str> = labels.iter().copied().chain([le.as_str()]).collect();
    (
        common::metric_sum(&metrics, &format!("{name}_bucket"), &bucket_labels) as u64,
        common::metric_sum(&metrics, &format!("{name}_count"), labels) as u64,
    )
}

/// The server's CPU so far, and of it what its signer spent in C_Sign and on how many
/// signatures (from `/proc` and `/metrics`). With the HSM behind p11-kit's RPC module, segl's
/// part of a C_Sign is the client side of the call; the HSM's own CPU is in [`HsmBusy`].
struct Spent {
    cpu_seconds: f64,
    hsm_cpu_seconds: f64,
    signatures: f64,
}

impl Spent {
    fn read(server: &Server) -> Spent {
        let metrics = server.metrics();
        Spent {
            cpu_seconds: server.cpu_seconds(),
            hsm_cpu_seconds: common::metric_sum(&metrics, "segl_hsm_sign_cpu_seconds_total", &[]),
            signatures: common::metric_sum(&metrics, "segl_hsm_signatures_total", &[]),
        }
    }

    fn since(&self, before: &Spent) -> Spent {
        Spent {
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            hsm_cpu_seconds: self.hsm_cpu_seconds - before.hsm_cpu_seconds,
            signatures: self.signatures - before.signatures,
        }
    }
}

/// Where a card's CPU went: C_Sign per signature, and segl's own work per card (its refusals
/// included) = the server's CPU minus C_Sign, over the cards signed.
impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cards = self.signatures.max(1.0);
        write!(
            f,
            "C_Sign {:.0} µs, segl's own {:.0} µs per card",
            1e6 * self.hsm_cpu_seconds / cards,
            1e6 * (self.cpu_seconds - self.hsm_cpu_seconds) / cards
        )
    }
}

/// Pins the calling thread (the load generator) to `cpu`.
fn pin_generator(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).expect("CPU number in range");
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("pin the load generator");
}

/// The machine's CPU count.
fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Where signing happens, relative to segl's serving core.
enum Shape {
    /// SoftHSM in a `p11-kit server` process pinned to `cpu`, reached over RPC (pipelined
    /// signer), as a network HSM: the HSM, not segl's core, is the bottleneck.
    HsmOnItsOwnCpu { hsm: P11KitServer, cpu: usize },
    /// SoftHSM in segl's process, signing inline on the serving core (the embedded default).
    InlineOnTheServingCore,
}

/// The HSM's busy time so far, and its CPU's times: the time the CPU was there for it (the wall
/// clock less the hypervisor's steal) and the time it idled (nothing, not even the HSM, wanted it).
#[derive(Clone, Copy)]
struct HsmBusy {
    busy: f64,
    cpu: common::CpuTimes,
    at: Instant,
}

/// From one [`HsmBusy`] reading to the next (or a sum of such windows), in seconds.
#[derive(Clone, Copy, Default)]
struct HsmWindow {
    busy: f64,
    available: f64,
    idle: f64,
}

impl HsmWindow {
    /// The share of the available time the HSM was busy.
    fn share(&self) -> f64 {
        self.busy / self.available.max(1e-9)
    }

    /// The share of the available time its CPU idled.
    fn idle_share(&self) -> f64 {
        self.idle / self.available.max(1e-9)
    }
}

impl HsmBusy {
    fn read(hsm: &P11KitServer, cpu: usize) -> HsmBusy {
        HsmBusy { busy: hsm.cpu_seconds(), cpu: common::CpuTimes::of(cpu), at: Instant::now() }
    }

    fn since(&self, before: &HsmBusy) -> HsmWindow {
        let wall = self.at.duration_since(before.at).as_secs_f64();
        HsmWindow {
            busy: self.busy - before.busy,
            available: wall - (self.cpu.steal - before.cpu.steal),
            idle: self.cpu.idle - before.cpu.idle,
        }
    }
}

/// The HSM's windows of one kind in a run, summed, and the signatures made in them.
#[derive(Default)]
struct BusyShare {
    total: HsmWindow,
    signatures: f64,
}

impl BusyShare {
    /// Adds a window in which `signatures` were made; returns that window's own busy share.
    fn add_window(&mut self, w: HsmWindow, signatures: f64) -> f64 {
        self.total.busy += w.busy;
        self.total.available += w.available;
        self.total.idle += w.idle;
        self.signatures += signatures;
        w.share()
    }

    /// The HSM's CPU seconds per signature.
    fn cpu_per_signature(&self) -> f64 {
        self.total.busy / self.signatures.max(1.0)
    }

    fn share(&self) -> f64 {
        self.total.share()
    }

    fn idle_share(&self) -> f64 {
        self.total.idle_share()
    }
}

/// One test at a time: both shapes need the machine's CPUs to themselves.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Latency is a property of optimized code: a debug build says so and skips.
fn skip_in_debug_builds() -> bool {
    if cfg!(debug_assertions) {
        eprintln!("SKIP: latency is measured on release builds (cargo test --release --test overload)");
    }
    cfg!(debug_assertions)
}

#[test]
fn with_the_hsm_on_its_own_cpu_goodput_holds_at_three_times_capacity_and_refusals_are_fast_fair_and_by_priority(
) {
    let _serial = serial();
    if skip_in_debug_builds() {
        return;
    }
    let Some(module) = p11kit_client_module() else {
        eprintln!("SKIP: p11-kit client module not installed (tests/install-host-packages installs it)");
        return;
    };
    if cpus() < 2 {
        eprintln!("SKIP: one CPU only: the HSM cannot have a CPU of its own");
        return;
    }
    let cpu = cpus() - 1;
    let hsm = P11KitServer::start(&env().dir.join("p11kit-overload.sock"));
    hsm.pin_to_cpu(cpu);
    let server = Server::start_with(|t| {
        via_p11kit(t, &module, &hsm.address(), "pipelined");
        one_executor_with_the_test_deadline(t);
    });
    pin_generator(0);
    println!("segl (one executor) and the load generator on CPU 0, the HSM (p11-kit server) on CPU {cpu}");
    overload(&server, Shape::HsmOnItsOwnCpu { hsm, cpu });
}

#[test]
fn with_softhsm_inline_on_the_serving_core_overload_is_shed_fast_fair_and_by_priority_without_collapse() {
    let _serial = serial();
    if skip_in_debug_builds() {
        return;
    }
    let server = Server::start_with(one_executor_with_the_test_deadline);
    match cpus() {
        1 => println!("one CPU only: segl and the load generator share it"),
        n => {
            pin_generator(n - 1);
            println!("segl on CPU 0 (one executor, signing inline), the load generator on CPU {}", n - 1);
        }
    }
    overload(&server, Shape::InlineOnTheServingCore);
}

fn one_executor_with_the_test_deadline(t: &mut String) {
    *t = t
        .replace(common::TEST_DEADLINE, &format!("deadline_ms = {}", DEADLINE.as_millis()))
        .replace("# cores = 2 ", "cores = 1 ");
}

fn overload(server: &Server, shape: Shape) {
    let flood_rutine = pool(Identity::Moces, "20921897", "RUTINE", 48);
    let flood_akut = pool(Identity::Moces, "20921897", "AKUT", 16);
    let polite = pool(Identity::RegionMoces, "29190909", "RUTINE", 16);

    // One thread for the load, on the CPU it was pinned to above.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let conns = Arc::new(Connections { addr: server.addr, idle: Mutex::new(Vec::new()) });
        // Warm up (connections, caches, the admission rate meters).
        capacity(conns.clone(), flood_rutine.clone(), 64, Duration::from_secs(2)).await;

        // Rounds of: capacity (closed loop), then one client offering 3× that, a tenth of it
        // AKUT. Each overload is compared with the capacity measured just before it, and the
        // rounds are summed: this shared machine's speed drifts by more than 5 % within seconds,
        // so one pair alone measures the neighbours as much as segl.
        // The closed loop's 64 connections keep more in flight than an overloaded core admits:
        // the refused wait CLOSED_LOOP_BACKOFF and try again, so the HSM stays saturated.
        let (mut rutine, mut akut) = (Tally::default(), Tally::default());
        let (mut capacity_cards, mut goodput_cards) = (0.0, 0.0);
        // For cards per server CPU-second: what refusing costs the server.
        let (mut closed_loop_cards, mut closed_loop_cpu) = (0.0, 0.0);
        let (mut overload_all_ok, mut overload_cpu) = (0.0, 0.0);
        let mut cap = 0.0;
        // The HSM's busy share in the closed loops and in the overloads (first shape only).
        let (mut hsm_closed, mut hsm_overload) = (BusyShare::default(), BusyShare::default());
        // Cards delivered in time during the overloads (their signatures are in hsm_overload).
        let mut delivered = 0.0;
        let hsm_busy = || match &shape {
            Shape::HsmOnItsOwnCpu { hsm, cpu } => Some(HsmBusy::read(hsm, *cpu)),
            Shape::InlineOnTheServingCore => None,
        };
        // The hypervisor's steal: a deadline is wall-clock time, and a VM that is not running
        // answers nothing in time. Printed so a failure says whether the machine stalled.
        let steal = || (0..cpus()).map(|c| common::CpuTimes::of(c).steal).sum::<f64>();
        let steal_before = steal();
        // Admitted requests during the overloads (server side), and of them those answered
        // within a quarter of the deadline: a core that lets its queue stand answers them near
        // the deadline instead.
        let quick = || {
            histogram(server.admin, "segl_request_duration_seconds", "0.05", &["endpoint=\"NewSecurityTokenService\""])
        };
        // Refused after admission (signatures that waited too long): their 503s are quick, but
        // they are not answers, so they are left out of both counts.
        let expired = || {
            common::metric_sum(
                &server.metrics(),
                "segl_requests_total",
                &["endpoint=\"NewSecurityTokenService\"", "outcome=\"expired\""],
            ) as u64
        };
        let (mut quick_in_overload, mut admitted_in_overload) = (0, 0);
        for round in 1..=ROUNDS {
            let (before, hsm_before) = (Spent::read(server), hsm_busy());
            cap = capacity(conns.clone(), flood_rutine.clone(), 64, CAPACITY_WINDOW).await;
            let (closed, hsm_after_closed) = (Spent::read(server).since(&before), hsm_busy());
            assert!(cap > 50.0, "capacity {cap:.0}/s is implausibly low:\n{}", server.log());
            closed_loop_cpu += closed.cpu_seconds;
            closed_loop_cards += cap * CAPACITY_WINDOW.as_secs_f64();

            let before = Spent::read(server);
            let (quick_before, expired_before) = (quick(), expired());
            let (r, a) = tokio::join!(
                open_loop(conns.clone(), flood_rutine.clone(), cap * 2.7, OVERLOAD_WINDOW, OVERLOAD_WARMUP),
                open_loop(conns.clone(), flood_akut.clone(), cap * 0.3, OVERLOAD_WINDOW, OVERLOAD_WARMUP),
            );
            let (overload, hsm_after_overload) = (Spent::read(server).since(&before), hsm_busy());
            let (quick_after, expired_in_round) = (quick(), expired() - expired_before);
            quick_in_overload += (quick_after.0 - quick_before.0).saturating_sub(expired_in_round);
            admitted_in_overload += (quick_after.1 - quick_before.1).saturating_sub(expired_in_round);
            overload_cpu += overload.cpu_seconds;
            delivered += (r.delivered + a.delivered) as f64;
            let counted = (OVERLOAD_WINDOW - OVERLOAD_WARMUP).as_secs_f64();
            let ok = (r.ok.len() + a.ok.len()) as f64;
            println!(
                "round {round}: capacity {cap:.0}/s (closed loop, 64 connections, {CAPACITY_WINDOW:?}; {closed}); at 3x {:.0}/s issued = {:.1} % ({overload})",
                ok / counted,
                100.0 * ok / counted / cap,
            );
            if let (Some(b), Some(c), Some(o)) = (hsm_before, hsm_after_closed, hsm_after_overload) {
                let (closed_hsm, overload_hsm) = (c.since(&b), o.since(&c));
                let closed_share = hsm_closed.add_window(closed_hsm, closed.signatures);
                let overload_share = hsm_overload.add_window(overload_hsm, overload.signatures);
                // What the machine's drift does to the HSM: its CPU per signature moves
                // between adjacent windows, which cards per wall second inherit.
                println!(
                    "  HSM busy {:.1} % of its CPU's time in the closed loop, {:.1} % at 3x ({:.1} %); its CPU idle {:.1} %, {:.1} %; HSM CPU per signature {:.0} µs, at 3x {:.0} µs",
                    100.0 * closed_share,
                    100.0 * overload_share,
                    100.0 * overload_share / closed_share,
                    100.0 * closed_hsm.idle_share(),
                    100.0 * overload_hsm.idle_share(),
                    1e6 * closed_hsm.busy / closed.signatures.max(1.0),
                    1e6 * overload_hsm.busy / overload.signatures.max(1.0),
                );
            }
            capacity_cards += cap * counted;
            goodput_cards += ok;
            // The whole phase's cards (warm-up included), as its CPU covers them all.
            overload_all_ok += ok * OVERLOAD_WINDOW.as_secs_f64() / counted;
            rutine.append(r);
            akut.append(a);
        }
        let stolen = steal() - steal_before;
        println!("hypervisor steal during the rounds: {stolen:.2} CPU-seconds");
        let counted = ROUNDS as f64 * (OVERLOAD_WINDOW - OVERLOAD_WARMUP).as_secs_f64();
        report("3x RUTINE", &mut rutine, counted);
        report("3x AKUT", &mut akut, counted);
        let cap_per_cpu = closed_loop_cards / closed_loop_cpu.max(0.01);
        let per_cpu = overload_all_ok / overload_cpu.max(0.01);
        println!(
            "goodput at 3x over {ROUNDS} rounds: {goodput_cards:.0} cards where the capacity just measured would issue {capacity_cards:.0} = {:.1} %; {per_cpu:.0} cards per server CPU-second = {:.1} % of closed loop's {cap_per_cpu:.0}",
            100.0 * goodput_cards / capacity_cards,
            100.0 * per_cpu / cap_per_cpu
        );
        // Asserted last, after every other figure is printed and checked.
        let goodput = match &shape {
            Shape::HsmOnItsOwnCpu { .. } => {
                let (closed, overload) = (hsm_closed.share(), hsm_overload.share());
                // A signature whose card did not reach its client in time was HSM time wasted.
                let useful = delivered / hsm_overload.signatures.max(1.0);
                let goodput = useful * overload / closed;
                let cost_growth = hsm_overload.cpu_per_signature() / hsm_closed.cpu_per_signature().max(1e-9);
                println!(
                    "HSM busy at 3x over {ROUNDS} rounds: {:.1} % of its CPU's time, closed loop {:.1} % (its CPU idle {:.1} %); {delivered:.0} cards delivered in time of {:.0} signatures; HSM CPU per signature ×{cost_growth:.2} of the closed loop's: goodput = {:.1} % of capacity with the machine's speed taken out",
                    100.0 * overload,
                    100.0 * closed,
                    100.0 * hsm_closed.idle_share(),
                    hsm_overload.signatures,
                    100.0 * goodput
                );
                // The baseline must be the HSM's capacity: a segl that starved the HSM in both
                // phases alike would pass a comparison of the two.
                if closed < 0.80 || hsm_closed.idle_share() > 0.10 {
                    Err(format!(
                        "the closed loop did not saturate the HSM: busy {:.1} % of its CPU's time, which idled {:.1} %",
                        100.0 * closed,
                        100.0 * hsm_closed.idle_share()
                    ))
                } else if cost_growth > 1.2 {
                    Err(format!(
                        "the HSM spent ×{cost_growth:.2} the CPU per signature at 3x: work that is not signing"
                    ))
                } else if goodput < 0.95 {
                    Err(format!(
                        "goodput {:.1} % < 95 %: the HSM was busy {:.1} % of the time at 3x against {:.1} % in the closed loop, and {:.1} % of its signatures became cards delivered in time",
                        100.0 * goodput,
                        100.0 * overload,
                        100.0 * closed,
                        100.0 * useful
                    ))
                } else {
                    Ok(())
                }
            }
            Shape::InlineOnTheServingCore => (goodput_cards >= 0.75 * capacity_cards).then_some(()).ok_or_else(|| {
                format!("goodput collapsed: {goodput_cards:.0} cards < 75 % of the {capacity_cards:.0} the capacity just measured would issue")
            }),
        };
        assert_eq!(rutine.other + akut.other, 0, "answers other than 200/503");
        // Admitted requests within the deadline, as segl is accountable for it: from the last
        // byte read to the response ready (segl_request_duration_seconds).
        let (in_time, admitted) = histogram(
            server.admin,
            "segl_request_duration_seconds",
            "0.2",
            &["endpoint=\"NewSecurityTokenService\""],
        );
        // Admitted requests whose signature had not started by 9/10 of the deadline are
        // refused then instead of signed late; they count as answered in time.
        let expired = common::metric_sum(
            &server.metrics(),
            "segl_requests_total",
            &["endpoint=\"NewSecurityTokenService\"", "outcome=\"expired\""],
        );
        println!(
            "admitted within the 200 ms deadline (server side): {in_time} of {admitted} = {:.2} % ({} of them refused after queueing past 9/10 of it)",
            100.0 * in_time as f64 / admitted.max(1) as f64,
            expired as u64
        );
        // In sync durability every response waits for the audit log's fdatasync.
        let (quick_syncs, syncs) = histogram(server.admin, "segl_audit_sync_seconds", "0.02", &[]);
        let (slow_syncs, _) = histogram(server.admin, "segl_audit_sync_seconds", "0.1", &[]);
        println!(
            "audit fdatasync: {syncs} in all, {} over 20 ms, {} over 100 ms",
            syncs - quick_syncs,
            syncs - slow_syncs
        );
        // Without the expired ones (fast refusals), so that expiring more cannot make it easier.
        let (served_in_time, served) = (in_time as f64 - expired, admitted as f64 - expired);
        assert!(
            served > 0.0 && served_in_time >= 0.99 * served,
            "admitted p99 beyond the deadline: {served_in_time} of {served} served in time (the hypervisor stole {stolen:.2} CPU-seconds during the rounds)"
        );
        // Refusal latency as segl is accountable for it: from the request's last byte read to
        // the refusal ready to send (segl_shed_seconds). The client-side figures above also
        // hold the load generator's own waits for a CPU on this shared two-core machine.
        let (fast, total) = histogram(server.admin, "segl_shed_seconds", "0.005", &[]);
        assert_share("refusals ready within 5 ms (server side)", fast, total, 0.99, "refusals p99 ≥ 5 ms");
        // Overload is refused, not queued: what is admitted waits about queue_target_ms for the
        // HSM, not most of the deadline.
        assert_share(
            "admitted during the 3x overloads and answered within 50 ms (server side)",
            quick_in_overload,
            admitted_in_overload,
            0.9,
            "a standing queue: admitted requests answered near the deadline, not within a quarter of it",
        );
        let rate = |t: &Tally| t.ok.len() as f64 / (t.ok.len() + t.shed.len()).max(1) as f64;
        println!("admitted share: AKUT {:.1} %, RUTINE {:.1} %", 100.0 * rate(&akut), 100.0 * rate(&rutine));
        assert!(rate(&akut) >= 0.9, "AKUT admitted only {:.1} %", 100.0 * rate(&akut));
        assert!(rate(&rutine) < 0.5 && rate(&akut) > 2.0 * rate(&rutine));

        // Fairness: a flood at 3× capacity (the last one measured) beside a client asking for a
        // tenth of capacity.
        let secs = 6.0;
        let warmup = Duration::from_secs(1);
        let counted = secs - warmup.as_secs_f64();
        let (mut flood, mut good) = tokio::join!(
            open_loop(conns.clone(), flood_rutine.clone(), cap * 3.0, Duration::from_secs_f64(secs), warmup),
            open_loop(conns.clone(), polite.clone(), cap * 0.1, Duration::from_secs_f64(secs), warmup),
        );
        report("flood", &mut flood, counted);
        report("polite", &mut good, counted);
        println!("polite client admitted {:.1} %, flood {:.1} %", 100.0 * rate(&good), 100.0 * rate(&flood));
        assert_eq!(flood.other + good.other, 0, "answers other than 200/503");
        assert!(rate(&good) >= 0.9, "the well-behaved client got only {:.1} %", 100.0 * rate(&good));
        if let Err(why) = goodput {
            panic!("{why}");
        }
    });
    let metrics = server.metrics();
    let admission: Vec<&str> = metrics.lines().filter(|l| l.starts_with("segl_admission_total")).collect();
    println!("{}", admission.join("\n"));
    // Whether the flood's refusals count as "capacity" or "fairness" depends on how the budget
    // moved during the run; what fairness must achieve is asserted above (the polite client).
    assert!(
        common::metric_sum(&metrics, "segl_admission_total", &["decision=\"shed\""]) > 0.0,
        "shed requests are counted by reason"
    );
}
