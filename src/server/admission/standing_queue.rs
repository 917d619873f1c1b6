//! Telling a standing queue from a burst, CoDel's way, and keeping it short: the signal is the
//! shortest time a signature waited in the core's signer queue during an interval (a queue that
//! drains now and then lets some job through at once; one that stands delays them all). When
//! that stays above the target for a whole interval, the core is overloaded: it then keeps a
//! limit on requests in flight, cut in proportion whenever the shortest wait is above the
//! target and raised by a step whenever it is not and the limit refused requests, so the HSM
//! stays busy with about the target's wait ahead of each signature. While overloaded, a
//! signature that has waited four times the target is not made (its request is refused, as
//! Facebook's "Fail at Scale" shortens the queue timeout under load): the queue that stood
//! before the overload was noticed clears as refusals, not as late answers. An interval in which
//! requests arrived and the limit refused none of them ends the overload.

use std::time::{Duration, Instant};

use super::Priority;

/// How long admitted requests may wait for the HSM once a core is overloaded, and how long a
/// queue must stand before it counts as overload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// The wait kept while overloaded (`server.queue_target_ms`).
    pub target: Duration,
    /// How long the wait must stay above the target to be a standing queue rather than a
    /// burst (`server.queue_interval_ms`); also how often the limit is adjusted.
    pub interval: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings { target: Duration::from_millis(5), interval: Duration::from_millis(20) }
    }
}

/// What admission reads from, and sets on, the core's signer queue.
pub trait SignerQueue {
    /// Reads, and starts anew, the shortest wait of a signature in the queue since the last
    /// read (`None`: no signature started).
    fn take_shortest_wait(&self) -> Option<Duration>;
    /// Signatures that have waited longer than `limit` are not made (`None`: no such limit).
    fn set_longest_wait(&self, limit: Option<Duration>);
}

impl SignerQueue for std::sync::Arc<segl_pkcs11::SignerStats> {
    fn take_shortest_wait(&self) -> Option<Duration> {
        segl_pkcs11::SignerStats::take_shortest_wait(self)
    }
    fn set_longest_wait(&self, limit: Option<Duration>) {
        segl_pkcs11::SignerStats::set_longest_wait(self, limit);
    }
}

/// While overloaded, a signature that has waited this many targets is stale: a request served
/// within the limit waits about one (two for AKUT).
const STALE_WAIT: u32 = 4;
/// The fewest requests' service times a wait must span to count against the target: when one
/// request takes long (a slow network HSM, a debug build), a handful of concurrent clients
/// wait longer than the target without any queue standing.
const STANDING_REQUESTS: f64 = 6.0;

/// The most one interval's signal may cut the limit by (a queue standing far above the target
/// when the overload is first seen says how long it was, not how much too many are admitted).
const LARGEST_CUT: f64 = 0.5;
/// What an interval whose waits were within the target, and whose limit refused requests, adds
/// to the limit (at least one request).
const GROWTH: f64 = 0.1;

/// One core's standing-queue detector and overload limit.
pub(super) struct StandingQueue {
    settings: QueueSettings,
    signer: Box<dyn SignerQueue>,
    overloaded: bool,
    /// When the current interval began, whether requests arrived in it, and whether the
    /// overload limit refused one.
    interval_start: Instant,
    arrived_in_interval: bool,
    refused_in_interval: bool,
    /// While overloaded: the RUTINE requests the core keeps in flight.
    limit: f64,
    /// The shortest signer wait of the last interval in which a signature started.
    last_wait: Option<Duration>,
    /// The shortest admission-to-answer time of the current measuring window.
    shortest: Option<Duration>,
    /// Whether the core was overloaded at any time in the current measuring window.
    overloaded_in_window: bool,
    /// What a request takes with nothing ahead of it: its own parse, signature and audit.
    floor: Option<Duration>,
    /// Times the core became overloaded.
    overloads: u64,
}

impl StandingQueue {
    pub(super) fn new(settings: QueueSettings, signer: Box<dyn SignerQueue>, now: Instant) -> StandingQueue {
        StandingQueue {
            settings,
            signer,
            overloaded: false,
            interval_start: now,
            arrived_in_interval: false,
            refused_in_interval: false,
            limit: 0.0,
            last_wait: None,
            shortest: None,
            overloaded_in_window: false,
            floor: None,
            overloads: 0,
        }
    }

    /// Ends the interval if it is over: reads the signal and decides, for a core serving `rate`
    /// requests per second with `in_flight` admitted.
    pub(super) fn observe(&mut self, in_flight: usize, rate: f64, now: Instant) {
        let target = self.target_at(rate);
        if now.duration_since(self.interval_start) < self.settings.interval.max(target) {
            return;
        }
        let wait = self.signer.take_shortest_wait();
        let (arrived, refused) = (self.arrived_in_interval, self.refused_in_interval);
        self.interval_start = now;
        self.arrived_in_interval = false;
        self.refused_in_interval = false;
        if wait.is_some() {
            self.last_wait = wait;
        }
        if rate <= 0.0 {
            return;
        }
        if !self.overloaded {
            // Every signature of a whole interval waited longer than the target.
            if wait.is_some_and(|w| w > target) {
                self.overloaded = true;
                self.overloaded_in_window = true;
                self.overloads += 1;
                self.signer.set_longest_wait(Some(target.saturating_mul(STALE_WAIT)));
                // A first guess: what is in flight, cut as the signal says (a queue of twice
                // the target holds about twice too many), but never below the least limit. The
                // signal corrects it from the next interval on.
                self.limit = (in_flight as f64 * Self::cut(target, wait)).max(self.least_limit(rate, target));
            }
            return;
        }
        // Requests came and the limit refused none: demand fits again. Or nothing is in flight:
        // no queue stands, whatever the last busy interval said (after an idle gap, the flags
        // are those of the interval before it).
        if (arrived && !refused) || in_flight == 0 {
            self.overloaded = false;
            self.signer.set_longest_wait(None);
            return;
        }
        match wait {
            // Waits above the target can still come from work admitted before a cut: never
            // below the least limit.
            Some(w) if w > target => {
                self.limit = (self.limit * Self::cut(target, wait)).max(self.least_limit(rate, target));
            }
            // Within the target and still refusing: the HSM may be idling for want of work.
            Some(_) if refused => self.limit += (self.limit * GROWTH).max(1.0),
            _ => {}
        }
    }

    /// The target at `rate` requests per second: the configured one, or the time of
    /// [`STANDING_REQUESTS`] requests if that is longer.
    fn target_at(&self, rate: f64) -> Duration {
        let service =
            if rate > 0.0 { Duration::from_secs_f64(STANDING_REQUESTS / rate) } else { Duration::ZERO };
        self.settings.target.max(service)
    }

    /// The fewest requests an overloaded core keeps in flight at RUTINE: what it finishes in a
    /// calm request's time plus the target, so the HSM does not idle between them. Never fewer
    /// than [`STANDING_REQUESTS`], as the target spans at least that many requests.
    fn least_limit(&self, rate: f64, target: Duration) -> f64 {
        rate * (self.floor.unwrap_or_default() + target).as_secs_f64()
    }

    /// What a wait above the target says to multiply the requests in flight by.
    fn cut(target: Duration, wait: Option<Duration>) -> f64 {
        wait.map_or(1.0, |w| (target.as_secs_f64() / w.as_secs_f64()).clamp(LARGEST_CUT, 1.0))
    }

    /// While overloaded, the requests the core may hold in flight for `priority`.
    pub(super) fn overloaded_budget(&self, priority: Priority) -> Option<f64> {
        self.overloaded.then(|| self.limit * super::overload_share(priority))
    }

    /// A request arrived (admitted or not).
    pub(super) fn arrived(&mut self) {
        self.arrived_in_interval = true;
    }

    /// The overload limit refused a request.
    pub(super) fn refused(&mut self) {
        self.refused_in_interval = true;
    }

    /// A request was answered `latency` after its admission.
    pub(super) fn answered(&mut self, latency: Duration) {
        self.shortest = Some(self.shortest.map_or(latency, |s| s.min(latency)));
    }

    /// Ends a measuring window: the shortest answer of a window in which the core was never
    /// overloaded is what a request takes with nothing ahead of it (a burst in it only makes
    /// the others longer). It follows a slower machine a quarter of the way per window, and a
    /// faster one at once; overloaded windows say nothing about it.
    pub(super) fn end_window(&mut self) {
        if let (Some(shortest), false) = (self.shortest, self.overloaded_in_window) {
            self.floor = Some(match self.floor {
                Some(floor) if shortest > floor => floor + (shortest - floor) / 4,
                _ => shortest,
            });
        }
        self.shortest = None;
        self.overloaded_in_window = self.overloaded;
    }

    /// Whether the core is overloaded now.
    pub(super) fn overloaded(&self) -> bool {
        self.overloaded
    }

    /// While overloaded, the RUTINE requests the core keeps in flight.
    pub(super) fn limit(&self) -> Option<f64> {
        self.overloaded.then_some(self.limit)
    }

    /// The shortest signer wait of the last interval in which a signature started.
    pub(super) fn last_wait(&self) -> Option<Duration> {
        self.last_wait
    }

    /// What a request takes with nothing ahead of it, once measured.
    pub(super) fn floor(&self) -> Option<Duration> {
        self.floor
    }

    /// Times the core became overloaded.
    pub(super) fn overloads(&self) -> u64 {
        self.overloads
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A signer queue whose waits the test sets.
    #[derive(Default)]
    pub(crate) struct ManualQueue {
        pub wait: Cell<Option<Duration>>,
        pub longest: Cell<Option<Duration>>,
    }

    impl SignerQueue for Rc<ManualQueue> {
        fn take_shortest_wait(&self) -> Option<Duration> {
            self.wait.get()
        }
        fn set_longest_wait(&self, limit: Option<Duration>) {
            self.longest.set(limit);
        }
    }

    /// A queue whose every interval says `wait`.
    fn waiting(wait: Option<Duration>) -> (Rc<ManualQueue>, Box<dyn SignerQueue>) {
        let q = Rc::new(ManualQueue::default());
        q.wait.set(wait);
        (q.clone(), Box::new(q))
    }

    #[test]
    fn the_floor_is_the_shortest_answer_of_windows_that_were_not_overloaded() {
        let t0 = Instant::now();
        let (signer, queue) = waiting(Some(50 * MS));
        let mut q = StandingQueue::new(QueueSettings::default(), queue, t0);
        assert_eq!(q.floor(), None);
        q.answered(4 * MS);
        q.answered(3 * MS);
        q.end_window();
        assert_eq!(q.floor(), Some(3 * MS));
        // A slower machine is followed a quarter of the way per window, a faster one at once.
        q.answered(7 * MS);
        q.end_window();
        assert_eq!(q.floor(), Some(4 * MS));
        q.answered(2 * MS);
        q.end_window();
        assert_eq!(q.floor(), Some(2 * MS));
        // The first limit of an overload: the floor plus the target at the rate.
        q.observe(0, 2000.0, t0 + 20 * MS);
        assert!(q.overloaded());
        assert_eq!(q.limit(), Some(14.0));
        // The signer now refuses what waited four targets.
        assert_eq!(signer.longest.get(), Some(20 * MS));
        assert_eq!(q.overloaded_budget(Priority::Akut), Some(28.0));
        // An overloaded window's answers all queued: they say nothing about the floor.
        q.answered(50 * MS);
        q.end_window();
        assert_eq!(q.floor(), Some(2 * MS));
        // Never fewer in flight than the target spans at the rate: at 400/s the target
        // stretches to six requests' time (15 ms).
        let mut q = StandingQueue::new(QueueSettings::default(), waiting(Some(50 * MS)).1, t0);
        q.observe(0, 400.0, t0 + 20 * MS);
        assert_eq!(q.limit(), Some(STANDING_REQUESTS));
    }

    #[test]
    fn on_a_slow_core_the_target_spans_a_few_requests() {
        // 50 requests a second (a slow network HSM, a debug build): 50 ms waits are a few
        // concurrent clients, not a standing queue; 6 requests' time (120 ms) is the target.
        let t0 = Instant::now();
        let (signer, queue) = waiting(Some(50 * MS));
        let mut q = StandingQueue::new(QueueSettings::default(), queue, t0);
        for i in 1..50 {
            q.observe(3, 50.0, t0 + i * 20 * MS);
        }
        assert!(!q.overloaded());
        signer.wait.set(Some(200 * MS));
        q.observe(3, 50.0, t0 + 2000 * MS);
        assert!(q.overloaded());
        assert_eq!(signer.longest.get(), Some(480 * MS), "four of the stretched target");
    }

    #[test]
    fn nothing_is_decided_without_a_signal_or_a_rate() {
        let t0 = Instant::now();
        let mut q = StandingQueue::new(QueueSettings::default(), waiting(None).1, t0);
        for i in 1..100 {
            q.observe(0, 1000.0, t0 + i * 20 * MS);
        }
        assert!(!q.overloaded(), "no signature started: nothing says the queue stands");
        let (signer, queue) = waiting(Some(50 * MS));
        let mut q = StandingQueue::new(QueueSettings::default(), queue, t0);
        q.observe(0, 0.0, t0 + 20 * MS);
        assert!(!q.overloaded(), "the rate is not known yet");
        assert_eq!(q.last_wait(), Some(50 * MS));
        // An interval in which nothing arrived says nothing about demand (the core may not have
        // read the requests): the overload stays until one arrives and is admitted.
        q.observe(1, 2000.0, t0 + 40 * MS);
        assert!(q.overloaded());
        q.observe(1, 2000.0, t0 + 60 * MS);
        assert!(q.overloaded());
        assert_eq!(signer.longest.get(), Some(20 * MS));
        q.arrived();
        q.observe(1, 2000.0, t0 + 80 * MS);
        assert!(!q.overloaded());
        assert_eq!(q.overloads(), 1);
        assert_eq!(signer.longest.get(), None, "the overload ended: no wait is stale");
        // Nothing in flight at an interval's end: no queue stands, whatever came before (a
        // burst after an idle gap is judged afresh, not by the flags of the last busy interval).
        q.observe(1, 2000.0, t0 + 100 * MS);
        assert!(q.overloaded());
        q.refused();
        q.observe(0, 2000.0, t0 + 60_000 * MS);
        assert!(!q.overloaded());
        assert_eq!(signer.longest.get(), None);
    }
}
