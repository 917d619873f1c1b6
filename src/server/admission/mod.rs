//! Admission control: a request that cannot be served within its deadline is refused at once,
//! before any parsing or signing, so goodput holds at peak instead of collapsing into queues;
//! and when a core is overloaded, what it admits waits only a few milliseconds for the HSM.
//!
//! Each core judges its own requests (no shared state, no locks). It measures how many requests
//! it completes per second (its service rate, whatever the HSM behind it) and keeps as many in
//! flight as it can finish within the deadline: a request is admitted when
//! `(in_flight + 1) / rate ≤ deadline × share(priority)`. Service is first come, first served,
//! so what is admitted completes in time.
//!
//! Overload without a standing queue ([`standing_queue`]):
//! - A core that keeps up uses the whole deadline: a burst that fits in it is admitted and
//!   served late rather than refused.
//! - A core that does not keep up would fill that queue and keep it full: every admitted
//!   request would wait most of the deadline, and hold its client's connection that long. That
//!   queue buys no throughput (the HSM is busy anyway); it turns overload into latency, and a
//!   client with a bounded connection pool cannot even deliver the requests segl would refuse
//!   in a millisecond. So, as CoDel does for packet queues, the core tells a standing queue from
//!   a burst by the shortest wait of a signature in its signer queue: above a small target
//!   (`queue_target_ms`, default 5 ms) for a whole interval (`queue_interval_ms`, default
//!   20 ms), the core is *overloaded*. It then admits up to a limit on requests in flight that
//!   it adjusts every interval so that signatures wait about the target, and the signer does not
//!   make a signature that waited four targets (the queue left from before the overload was
//!   noticed clears as refusals, as Facebook's "Fail at Scale" shortens the queue timeout under
//!   load). An interval in which requests came and the limit refused none ends it.
//! - Why not adaptive LIFO: what is admitted waits about the target, so there is no stale
//!   backlog for LIFO to skip; refusing on arrival tells the client at once. Why not a
//!   concurrency limit that follows latency (Netflix's concurrency-limits, Envoy's adaptive
//!   concurrency): those compare with a no-load latency that a saturated core never shows, and
//!   probe for it by cutting concurrency; the signer queue's wait is the queueing itself,
//!   measured where it happens.
//!
//! Who is refused first:
//! - priority: the DGWS `medcom:Priority` header (AKUT > HASTER > RUTINE), or the endpoint's
//!   default, decides the share of the deadline a request may queue into (AKUT 90 %,
//!   HASTER 80 %, RUTINE 65 %: AKUT keeps a margin because the rate is an estimate), and while
//!   the core is overloaded the multiple of the target wait it may queue into (RUTINE 1,
//!   HASTER 1.5, AKUT 2), so lower priorities are refused while capacity is kept for higher ones;
//! - fairness: a client may hold at most `budget × share / (clients + 1)` of the in-flight
//!   requests, where `clients` counts the clients in flight including itself. There is always
//!   room for one more client, so one runaway client cannot starve the others; and a core with
//!   a few requests in flight is busy anyway, so the cap costs latency nothing and goodput
//!   nothing. Clients are told apart by TLS client certificate, else by
//!   the care provider CVR the request names (read cheaply from the raw bytes: it only groups
//!   requests for fairness, it grants nothing), else by peer address.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub use crate::exchange::hints::Priority;
use standing_queue::StandingQueue;
pub use standing_queue::{QueueSettings, SignerQueue};

mod standing_queue;

/// The share of the deadline a request of this priority may queue into.
fn share(priority: Priority) -> f64 {
    match priority {
        Priority::Rutine => 0.65,
        Priority::Haster => 0.80,
        // Not all of it: the rate is an estimate, and the deadline is a promise.
        Priority::Akut => 0.90,
    }
}

/// The multiple of the target wait a request of this priority may queue into while the core
/// is overloaded.
fn overload_share(priority: Priority) -> f64 {
    match priority {
        Priority::Rutine => 1.0,
        Priority::Haster => 1.5,
        Priority::Akut => 2.0,
    }
}

/// Who a request comes from, for fairness.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// SHA-256 prefix of the TLS client certificate.
    Certificate([u8; 16]),
    /// What the request says about its sender (its exchange knows where to look).
    Declared(crate::exchange::hints::ClientHint),
    /// The peer address (without port).
    Peer(std::net::IpAddr),
    /// Nothing identifies it.
    Unknown,
}

impl ClientKey {
    /// The best identity available for a request: the TLS client certificate, else what the
    /// request declares, else the peer address.
    pub fn of(
        client_certificate: Option<&[u8]>,
        declared: Option<crate::exchange::hints::ClientHint>,
        peer: Option<std::net::SocketAddr>,
    ) -> ClientKey {
        if let Some(cert) = client_certificate {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert);
            let mut key = [0u8; 16];
            key.copy_from_slice(&digest.as_ref()[..16]);
            return ClientKey::Certificate(key);
        }
        if let Some(hint) = declared {
            return ClientKey::Declared(hint);
        }
        peer.map_or(ClientKey::Unknown, |p| ClientKey::Peer(p.ip()))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The core cannot finish it within the deadline at this priority.
    Capacity,
    /// Its client already holds more than its fair share.
    Fairness,
    /// The server is shutting down.
    Draining,
}

impl Shed {
    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Capacity => "capacity",
            Self::Fairness => "fairness",
            Self::Draining => "draining",
        }
    }
}

/// Where a core's serving time went so far: the basis of its capacity estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Busy {
    /// CPU time of the core's executor thread (an inline HSM signs on it).
    pub core_cpu: Duration,
    /// Busy time of each of the core's HSM sessions (their time inside C_Sign, divided by the
    /// sessions): what limits a core whose signing happens elsewhere (pipelined).
    pub hsm_per_session: Duration,
}

/// Reads the core's [`Busy`] times.
pub type BusyClock = Box<dyn Fn() -> Busy>;

/// Service rate: completions per second of the bottleneck's busy time (the core's CPU or its
/// HSM sessions, whichever was busier), smoothed over windows of a quarter second.
///
/// Completions per wall-clock second would be the offered rate under light load, not what the
/// core can do: the budget would shrink with the load, and a short stall at half load would
/// shed requests the core could well have served. Per busy second it is the core's capacity at
/// any load.
struct RateMeter {
    window_start: Instant,
    busy_at_start: Busy,
    completed_in_window: u32,
    rate: f64,
    clock: BusyClock,
}

const WINDOW: Duration = Duration::from_millis(250);
/// Until the core has measured itself, this many requests may be in flight.
const WARMUP_IN_FLIGHT: usize = 8;
/// The part of the deadline kept for signing and answering (see [`Admission::sign_by`]).
const ANSWERING_SHARE: f64 = 0.1;
/// The part of a priority's budget that only clients below their fair share may use.
const RESERVED_FOR_FAIR_SHARES: f64 = 0.25;

impl RateMeter {
    fn record(&mut self, now: Instant) -> bool {
        let rolled = self.roll(now);
        self.completed_in_window += 1;
        rolled
    }

    /// Closes windows that ended (and says whether one did); a window in which the core was
    /// busy updates the rate.
    fn roll(&mut self, now: Instant) -> bool {
        let elapsed = now.duration_since(self.window_start);
        if elapsed < WINDOW {
            return false;
        }
        let busy = (self.clock)();
        let core = busy.core_cpu.saturating_sub(self.busy_at_start.core_cpu);
        let hsm = busy.hsm_per_session.saturating_sub(self.busy_at_start.hsm_per_session);
        // Never more busy time than there was time: a clock that cannot be read (zero) or a
        // sample straddling the window falls back to wall time.
        let spent = core.max(hsm).min(elapsed);
        let spent = if spent.is_zero() { elapsed } else { spent };
        // Only windows with real work say something about capacity; idle ones keep the last
        // estimate rather than decaying it toward zero.
        if self.completed_in_window > 0 {
            let measured = f64::from(self.completed_in_window) / spent.as_secs_f64();
            self.rate = if self.rate == 0.0 { measured } else { 0.7 * self.rate + 0.3 * measured };
        }
        self.window_start = now;
        self.busy_at_start = busy;
        self.completed_in_window = 0;
        true
    }
}

/// One core's admission controller.
pub struct Admission {
    deadline: Duration,
    in_flight: Cell<usize>,
    per_client: RefCell<HashMap<ClientKey, usize>>,
    meter: RefCell<RateMeter>,
    queue: RefCell<StandingQueue>,
}

/// An admitted request; dropping it marks the request complete.
pub struct Ticket {
    admission: Rc<Admission>,
    client: ClientKey,
    admitted: Instant,
    /// How it ends when dropped.
    end: TicketEnd,
}

/// How an admitted request ended, as admission counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketEnd {
    /// Answered (a fault, say) without issuing a token: a completion in the core's rate.
    Served,
    /// Issued a token: a completion, and it says what a request takes with nothing ahead.
    Issued,
    /// Refused after admission without being served: frees its place, counts for nothing.
    Unserved,
}

impl Admission {
    /// A controller for requests that must complete within `deadline`, estimating the core's
    /// capacity from `clock`; when overloaded it keeps the waits in `signer` near `queue`'s
    /// target.
    pub fn new(
        deadline: Duration,
        queue: QueueSettings,
        signer: Box<dyn SignerQueue>,
        now: Instant,
        clock: BusyClock,
    ) -> Rc<Admission> {
        let busy_at_start = clock();
        Rc::new(Admission {
            deadline,
            in_flight: Cell::new(0),
            per_client: RefCell::new(HashMap::new()),
            meter: RefCell::new(RateMeter {
                window_start: now,
                busy_at_start,
                completed_in_window: 0,
                rate: 0.0,
                clock,
            }),
            queue: RefCell::new(StandingQueue::new(queue, signer, now)),
        })
    }

    /// Admits or refuses a request.
    pub fn admit(
        self: &Rc<Self>,
        priority: Priority,
        client: ClientKey,
        now: Instant,
    ) -> Result<Ticket, Shed> {
        let in_flight = self.in_flight.get();
        let (rate, deadline_budget) = self.budget(now);
        let mut queue = self.queue.borrow_mut();
        queue.observe(in_flight, rate, now);
        queue.arrived();
        let within_deadline = deadline_budget * share(priority);
        let (allowed, overloaded) = match queue.overloaded_budget(priority) {
            Some(short) => (short.min(within_deadline), true),
            // Until the core has measured itself, a few are always let in.
            None => (within_deadline, false),
        };
        if (in_flight + 1) as f64 > allowed && (overloaded || in_flight >= WARMUP_IN_FLIGHT) {
            queue.refused();
            return Err(Shed::Capacity);
        }
        let mut per_client = self.per_client.borrow_mut();
        let held = per_client.get(&client).copied().unwrap_or(0);
        let clients = per_client.len() + usize::from(held == 0);
        // An overloaded core's budget is a few requests: a floor of eight would be all of it.
        let least_fair = if overloaded { 1.0 } else { WARMUP_IN_FLIGHT as f64 };
        let fair = (allowed / (clients + 1) as f64).max(least_fair);
        // Beyond its fair share a client still gets what nobody else needs, up to the part of
        // the budget kept for clients below theirs: a lone client at 80 % load is not refused
        // over a short stall, and a newcomer always finds room.
        let spare = (in_flight + 1) as f64 <= allowed * (1.0 - RESERVED_FOR_FAIR_SHARES);
        if held as f64 >= fair && !spare {
            // Under the overload limit it is refused as surely as by capacity: demand does not fit.
            queue.refused();
            return Err(Shed::Fairness);
        }
        *per_client.entry(client.clone()).or_insert(0) += 1;
        self.in_flight.set(in_flight + 1);
        Ok(Ticket { admission: self.clone(), client, admitted: now, end: TicketEnd::Served })
    }

    /// The measured rate, and how many requests the core can finish within the deadline at it.
    fn budget(&self, now: Instant) -> (f64, f64) {
        let mut meter = self.meter.borrow_mut();
        if meter.roll(now) {
            self.queue.borrow_mut().end_window();
        }
        if meter.rate == 0.0 {
            return (0.0, f64::INFINITY);
        }
        (meter.rate, meter.rate * self.deadline.as_secs_f64())
    }

    /// The latest instant at which the signature of a request received at `received` may
    /// start: its deadline less a tenth of it, kept for signing and answering (a SoftHSM
    /// signature takes about a millisecond, the audit log's group commit a few). An admitted
    /// request still waiting then is refused rather than answered late: admission trusts an
    /// estimate of the core's rate, and a stall (a descheduled VM, a slow HSM) can make the
    /// estimate wrong for a moment.
    pub fn sign_by(&self, received: Instant) -> Instant {
        received + self.deadline.mul_f64(1.0 - ANSWERING_SHARE)
    }

    /// Requests admitted and not yet complete.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// The measured service rate (requests per second; 0 before the first measurement).
    pub fn rate(&self) -> f64 {
        self.meter.borrow().rate
    }

    /// Whether the core is overloaded (keeping waits near the target) right now.
    pub fn overloaded(&self) -> bool {
        self.queue.borrow().overloaded()
    }

    /// How often the core has become overloaded.
    pub fn overloads(&self) -> u64 {
        self.queue.borrow().overloads()
    }

    /// What a request takes with nothing ahead of it, once measured.
    pub fn unqueued_latency(&self) -> Option<Duration> {
        self.queue.borrow().floor()
    }

    /// While overloaded, the RUTINE requests the core keeps in flight.
    pub fn overload_limit(&self) -> Option<f64> {
        self.queue.borrow().limit()
    }

    /// The shortest wait of a signature in the signer queue, in the last interval with one.
    pub fn signer_wait(&self) -> Option<Duration> {
        self.queue.borrow().last_wait()
    }

    fn complete(&self, client: &ClientKey, admitted: Instant, issued: bool, now: Instant) {
        self.release(client);
        let mut meter = self.meter.borrow_mut();
        let mut queue = self.queue.borrow_mut();
        if meter.record(now) {
            queue.end_window();
        }
        if issued {
            // A fault answered without a signature would say a request takes microseconds.
            queue.answered(now.saturating_duration_since(admitted));
        }
        queue.observe(self.in_flight.get(), meter.rate, now);
    }

    /// Frees a request's place in flight and in its client's share.
    fn release(&self, client: &ClientKey) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        let mut per_client = self.per_client.borrow_mut();
        if let Some(n) = per_client.get_mut(client) {
            *n -= 1;
            if *n == 0 {
                per_client.remove(client);
            }
        }
    }
}

impl Ticket {
    /// Ends a request that was refused after admission without being served (its signature
    /// expired in the queue): it frees its place but is not counted in the core's rate, which
    /// would otherwise rise with every expiry, just when the core is slow.
    pub fn unserved(mut self) {
        self.end = TicketEnd::Unserved;
    }

    /// Ends a request that issued a token.
    pub fn issued(mut self) {
        self.end = TicketEnd::Issued;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        match self.end {
            TicketEnd::Unserved => self.admission.release(&self.client),
            end => {
                self.admission.complete(&self.client, self.admitted, end == TicketEnd::Issued, Instant::now())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::hints::ClientHint;

    /// A clock the test advances by hand.
    fn manual_clock() -> (Rc<Cell<Busy>>, BusyClock) {
        let busy = Rc::new(Cell::new(Busy::default()));
        let read = busy.clone();
        (busy, Box::new(move || read.get()))
    }

    /// A core that completed `completed` requests per second for a while, spending `core` of
    /// each second's CPU and keeping each HSM session busy for `hsm` of it.
    fn served(completed: u32, core: f64, hsm: f64, deadline_ms: u64) -> (Rc<Admission>, Instant) {
        let (a, now, _) = served_with_waits(completed, core, hsm, deadline_ms);
        (a, now)
    }

    /// The shortest signer wait every interval's end reads, set by hand.
    type Wait = Rc<standing_queue::tests::ManualQueue>;

    /// [`served`], with the signer waits set by hand.
    fn served_with_waits(
        completed: u32,
        core: f64,
        hsm: f64,
        deadline_ms: u64,
    ) -> (Rc<Admission>, Instant, Wait) {
        let (busy, clock) = manual_clock();
        let wait: Wait = Rc::default();
        let t0 = Instant::now();
        let a = Admission::new(
            Duration::from_millis(deadline_ms),
            QueueSettings::default(),
            Box::new(wait.clone()),
            t0,
            clock,
        );
        let per_window = completed / 4;
        let mut now = t0;
        for _ in 0..8 {
            for _ in 0..per_window {
                a.admit(Priority::Rutine, ClientKey::Unknown, now).unwrap().issued();
            }
            now += WINDOW;
            let b = busy.get();
            busy.set(Busy {
                core_cpu: b.core_cpu + WINDOW.mul_f64(core),
                hsm_per_session: b.hsm_per_session + WINDOW.mul_f64(hsm),
            });
        }
        a.meter.borrow_mut().roll(now);
        (a, now, wait)
    }

    /// A saturated core that completed `rate` requests per second.
    fn measured(rate: u32, deadline_ms: u64) -> (Rc<Admission>, Instant) {
        served(rate, 1.0, 0.9, deadline_ms)
    }

    #[test]
    fn capacity_is_measured_per_busy_second_not_per_wall_second() {
        // 200 completions a second using a quarter of the core: it could do 800.
        let (a, _) = served(200, 0.25, 0.2, 200);
        assert!((a.rate() - 800.0).abs() < 80.0, "inline at light load: {}", a.rate());
        // Signing elsewhere (pipelined): the HSM sessions, busy 80 % of the time, are the limit.
        let (a, _) = served(400, 0.1, 0.8, 200);
        assert!((a.rate() - 500.0).abs() < 50.0, "pipelined: {}", a.rate());
        // No busy clock (zero): completions per wall second, as a last resort.
        let (a, _) = served(400, 0.0, 0.0, 200);
        assert!((a.rate() - 400.0).abs() < 40.0, "no clock: {}", a.rate());
    }

    #[test]
    fn requests_refused_after_admission_free_their_place_but_do_not_raise_the_rate() {
        let (a, mut now) = measured(400, 200);
        let (busy, clock) = manual_clock();
        *a.meter.borrow_mut() = RateMeter {
            window_start: now,
            busy_at_start: busy.get(),
            completed_in_window: 0,
            rate: 400.0,
            clock,
        };
        // A window in which the core spent all its time and completed 100 requests, while
        // 300 more expired unsigned: the rate is what the served ones say.
        for _ in 0..100 {
            drop(a.admit(Priority::Akut, ClientKey::Unknown, now).unwrap());
        }
        for _ in 0..300 {
            a.admit(Priority::Akut, ClientKey::Declared(ClientHint::Cvr("12345678".into())), now)
                .unwrap()
                .unserved();
        }
        assert_eq!(a.in_flight(), 0);
        assert!(a.per_client.borrow().is_empty());
        now += WINDOW;
        busy.set(Busy { core_cpu: WINDOW, hsm_per_session: WINDOW });
        a.meter.borrow_mut().roll(now);
        // 0.7 × 400 + 0.3 × 400 (100 per quarter second): counting the expired ones would say 1,120.
        assert!((a.rate() - 400.0).abs() < 1.0, "{}", a.rate());
    }

    #[test]
    fn admits_what_fits_in_the_deadline_and_no_more() {
        // 800/s and 200 ms: 160 requests fit; RUTINE may queue into 65 % of that.
        let (a, now) = measured(800, 200);
        assert!((a.rate() - 800.0).abs() < 80.0, "{}", a.rate());
        let mut held = Vec::new();
        while let Ok(t) =
            a.admit(Priority::Rutine, ClientKey::Peer([127, 0, 0, held.len() as u8].into()), now)
        {
            held.push(t);
            assert!(held.len() < 1000);
        }
        assert!((95..=115).contains(&held.len()), "RUTINE admitted {}", held.len());
        // AKUT still gets in until the full budget is used.
        let mut akut = 0;
        while a
            .admit(Priority::Akut, ClientKey::Peer([10, 0, 0, akut as u8].into()), now)
            .map(|t| held.push(t))
            .is_ok()
        {
            akut += 1;
        }
        assert!((25..=50).contains(&akut), "AKUT admitted {akut} beyond RUTINE");
        // Completions make room again.
        held.truncate(held.len() - 10);
        assert!(a.admit(Priority::Akut, ClientKey::Unknown, now).is_ok());
    }

    #[test]
    fn a_flooding_client_is_held_to_its_fair_share() {
        let (a, now) = measured(800, 200);
        let flood = ClientKey::Declared(ClientHint::Cvr("11111111".into()));
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..200 {
            match a.admit(Priority::Rutine, flood.clone(), now) {
                Ok(t) => held.push(t),
                Err(shed) => {
                    assert_eq!(shed, Shed::Fairness);
                    refused += 1;
                }
            }
        }
        // Alone, the flood gets three quarters of the RUTINE budget (104): the rest is kept
        // for clients below their fair share.
        assert!((74..=82).contains(&held.len()), "flood holds {}", held.len());
        assert_eq!(refused, 200 - held.len());
        // A second client gets in, and so does a third.
        let polite: Vec<_> = (0..10)
            .map(|i| {
                a.admit(Priority::Rutine, ClientKey::Declared(ClientHint::Cvr(format!("2222222{i}"))), now)
            })
            .collect();
        assert!(
            polite.iter().all(Result::is_ok),
            "polite clients refused while the flood holds {}",
            held.len()
        );
        // The reserve is theirs: the flood still gets nothing more.
        assert!(matches!(a.admit(Priority::Rutine, flood, now), Err(Shed::Fairness)));
    }

    fn peer(i: usize) -> ClientKey {
        ClientKey::Peer(std::net::IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]))
    }

    #[test]
    fn a_standing_signer_queue_cuts_admission_to_the_target_wait_by_priority() {
        // 4,000/s: the deadline lets RUTINE queue 520.
        let (a, t0, wait) = served_with_waits(4000, 1.0, 0.9, 200);
        let interval = QueueSettings::default().interval;
        let at = |n: u32| t0 + interval * n;
        let ms = Duration::from_millis;
        // A burst fits the deadline and is admitted whole.
        let mut held: Vec<_> = (0..100).map(|i| a.admit(Priority::Rutine, peer(i), t0).unwrap()).collect();
        // An interval in which some signature started within the target: still a burst.
        wait.wait.set(Some(ms(3)));
        held.push(a.admit(Priority::Rutine, peer(100), at(1)).unwrap());
        assert!(!a.overloaded());
        // One in which every signature waited longer: a standing queue. The limit starts from
        // the 101 in flight, cut as the signal says (by half at most).
        wait.wait.set(Some(ms(40)));
        assert_eq!(a.admit(Priority::Rutine, peer(101), at(2)).err(), Some(Shed::Capacity));
        assert!(a.overloaded());
        assert_eq!((a.overloads(), a.overload_limit()), (1, Some(50.5)));
        held.truncate(10);
        let rutine: Vec<_> =
            (0..80).filter_map(|i| a.admit(Priority::Rutine, peer(200 + i), at(2)).ok()).collect();
        assert_eq!(rutine.len(), 40, "RUTINE fills the limit");
        let akut: Vec<_> =
            (0..80).filter_map(|i| a.admit(Priority::Akut, peer(300 + i), at(2)).ok()).collect();
        assert_eq!(akut.len(), 51, "AKUT may hold twice the limit");
        // Signatures still waiting 1.6 times the target: the limit is cut in proportion.
        wait.wait.set(Some(ms(8)));
        assert!(a.admit(Priority::Rutine, peer(400), at(3)).is_err());
        assert_eq!(a.overload_limit(), Some(50.5 * 5.0 / 8.0));
        // Within the target while refusing: the HSM may want more, the limit grows a tenth.
        wait.wait.set(Some(ms(4)));
        held.truncate(1);
        drop((rutine, akut));
        assert!(a.admit(Priority::Rutine, peer(401), at(4)).is_ok());
        assert_eq!(a.overload_limit(), Some(50.5 * 5.0 / 8.0 * 1.1));
        // An interval that admitted and refused nothing ends the overload: the whole deadline
        // is open to a burst again.
        wait.wait.set(Some(ms(1)));
        let burst: Vec<_> =
            (0..100).filter_map(|i| a.admit(Priority::Rutine, peer(500 + i), at(5)).ok()).collect();
        assert!(!a.overloaded());
        assert_eq!(burst.len(), 100);
        drop(held);
    }

    #[test]
    fn an_overloaded_core_keeps_room_for_a_client_below_its_fair_share() {
        let (a, t0, wait) = served_with_waits(4000, 1.0, 0.9, 200);
        let interval = QueueSettings::default().interval;
        let flood = ClientKey::Declared(ClientHint::Cvr("11111111".into()));
        // Nothing in flight when the standing queue is seen: the limit is what 4,000/s finishes
        // in the target's 5 ms (this core's calm requests took no time, so they add nothing).
        wait.wait.set(Some(Duration::from_millis(40)));
        let _ = a.admit(Priority::Rutine, flood.clone(), t0 + interval);
        assert_eq!(a.overload_limit(), Some(20.0));
        let flooded: Vec<_> =
            (0..40).map_while(|_| a.admit(Priority::Rutine, flood.clone(), t0 + interval).ok()).collect();
        assert_eq!(flooded.len(), 15, "alone, the flood gets three quarters of the limit");
        assert_eq!(a.admit(Priority::Rutine, flood, t0 + interval).err(), Some(Shed::Fairness));
        let polite = ClientKey::Declared(ClientHint::Cvr("22222222".into()));
        assert!(a.admit(Priority::Rutine, polite, t0 + interval).is_ok());
    }

    #[test]
    fn before_measuring_a_few_requests_are_always_admitted() {
        let a = Admission::new(
            Duration::from_millis(200),
            QueueSettings::default(),
            Box::new(Rc::new(standing_queue::tests::ManualQueue::default())),
            Instant::now(),
            manual_clock().1,
        );
        let tickets: Vec<_> = (0..WARMUP_IN_FLIGHT)
            .map(|_| a.admit(Priority::Rutine, ClientKey::Unknown, Instant::now()).unwrap())
            .collect();
        assert_eq!(a.in_flight(), WARMUP_IN_FLIGHT);
        drop(tickets);
        assert_eq!(a.in_flight(), 0);
    }
}
