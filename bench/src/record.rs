//! What a run measured: per segment (HdrHistogram latencies, outcome counts, CPU) and per
//! second (offered, answered, shed, failed, latency percentiles, CPU per core).
//!
//! Latency is always measured from a request's intended send time, so time spent queued in
//! the generator or the server is part of it (no coordinated omission).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest latency the histograms hold, µs (longer ones are clamped to it).
const MAX_LATENCY_US: u64 = 120_000_000;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: a token was issued.
    Ok,
    /// 503 or 429: refused by admission control.
    Shed,
    /// Any other HTTP status (a SOAP fault).
    Fault(u16),
    /// No response within the deadline (counted from the intended send time).
    Timeout,
    /// Connection refused, reset or closed early, or an unreadable response.
    Error,
}

impl Outcome {
    /// The outcome of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Outcome::Ok,
            503 | 429 => Outcome::Shed,
            s => Outcome::Fault(s),
        }
    }
}

/// Requests by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Answered with a token.
    pub ok: u64,
    /// Refused by admission control (503/429).
    pub shed: u64,
    /// Answered with another status.
    pub fault: u64,
    /// Not answered within the deadline.
    pub timeout: u64,
    /// Connection or protocol errors.
    pub error: u64,
}

impl Counts {
    fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Ok => self.ok += 1,
            Outcome::Shed => self.shed += 1,
            Outcome::Fault(_) => self.fault += 1,
            Outcome::Timeout => self.timeout += 1,
            Outcome::Error => self.error += 1,
        }
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.ok + self.shed + self.fault + self.timeout + self.error
    }

    /// Requests that failed outright (fault, timeout, error); shed requests are not failures
    /// of the server but a controlled refusal.
    pub fn failed(&self) -> u64 {
        self.fault + self.timeout + self.error
    }

    /// Requests the server answered (and so spent CPU on).
    pub fn answered(&self) -> u64 {
        self.ok + self.shed + self.fault
    }
}

/// Latency percentiles of the requests that got a token, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Requests counted.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl Latency {
    /// Percentiles of a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// One segment's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The segment's label.
    pub label: String,
    /// Whether it counts in summaries.
    pub measured: bool,
    /// Length, seconds.
    pub secs: f64,
    /// Mean offered rate, requests per second.
    pub offered_rate: f64,
    /// Requests due in the segment (each counted by its intended send time).
    pub sent: u64,
    /// Their outcomes.
    pub counts: Counts,
    /// Responses by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Tokens issued per second of the segment: successful responses that arrived within the
    /// segment's time window (whenever they were due), over its length.
    pub goodput: f64,
    /// Latency of the successful requests.
    pub latency: Latency,
    /// Time requests waited in the generator for a free connection.
    pub queue_delay: Latency,
    /// CPU the server used during the segment, nanoseconds (when its pid is known).
    pub server_cpu_ns: Option<u64>,
    /// CPU the generator used during the segment, nanoseconds.
    pub generator_cpu_ns: Option<u64>,
    /// The server's user time during the segment, nanoseconds (`/proc/<pid>/stat`).
    #[serde(default)]
    pub server_user_cpu_ns: Option<u64>,
    /// The server's system (kernel) time during the segment, nanoseconds.
    #[serde(default)]
    pub server_system_cpu_ns: Option<u64>,
    /// CPU the server's signing threads spent inside C_Sign during the segment, nanoseconds,
    /// as the server counts it (`/metrics`).
    #[serde(default)]
    pub hsm_cpu_ns: Option<u64>,
    /// Signatures the server made during the segment.
    #[serde(default)]
    pub hsm_signatures: Option<u64>,
    /// Per endpoint of the mix, when the mix has an OIO exchange (a mix of DGWS endpoints
    /// alone is recorded as before, without this).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<EndpointRecord>,
}

/// One endpoint's share of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The path.
    pub path: String,
    /// Outcomes of its requests due in the segment.
    pub counts: Counts,
    /// Its tokens issued per second of the segment (successes that arrived in the window).
    pub goodput: f64,
    /// Latency of its successful requests.
    pub latency: Latency,
}

impl SegmentRecord {
    /// The endpoint that had every request of the segment, when the segment has a breakdown
    /// and only one endpoint got requests: the segment's CPU and signatures are that
    /// endpoint's. In a segment of several endpoints the server's CPU is not attributed.
    pub fn sole_endpoint(&self) -> Option<&EndpointRecord> {
        let mut with_requests = self.endpoints.iter().filter(|e| e.counts.total() > 0);
        let one = with_requests.next()?;
        with_requests.next().is_none().then_some(one)
    }

    /// HSM signatures the server made per token issued in the segment (DGWS 1, Sosi2OIOSaml 2:
    /// the assertion and the answer's header).
    pub fn signatures_per_issued(&self) -> Option<f64> {
        let n = self.hsm_signatures?;
        (self.counts.ok > 0).then(|| n as f64 / self.counts.ok as f64)
    }

    /// Server CPU µs per answered request.
    pub fn server_cpu_us_per_request(&self) -> Option<f64> {
        let answered = self.counts.answered();
        (answered > 0).then_some(())?;
        Some(self.server_cpu_ns? as f64 / 1000.0 / answered as f64)
    }

    /// CPU of one C_Sign inside the server, µs (its signing threads' CPU over its signatures).
    pub fn hsm_cpu_us_per_signature(&self) -> Option<f64> {
        let n = self.hsm_signatures.filter(|&n| n > 0)?;
        Some(self.hsm_cpu_ns? as f64 / 1000.0 / n as f64)
    }

    /// C_Sign CPU inside the server per answered request, µs: the same window and the same
    /// divisor as [`Self::server_cpu_us_per_request`], so the two subtract.
    pub fn hsm_cpu_us_per_request(&self) -> Option<f64> {
        let answered = self.counts.answered();
        (answered > 0).then_some(())?;
        Some(self.hsm_cpu_ns? as f64 / 1000.0 / answered as f64)
    }

    /// Server CPU µs per answered request without what its own signing threads spent in
    /// C_Sign during the same window.
    pub fn cpu_us_excl_hsm_in_server(&self) -> Option<f64> {
        Some(self.server_cpu_us_per_request()? - self.hsm_cpu_us_per_request()?)
    }

    /// The kernel's share of the server's CPU (system over user + system).
    pub fn server_kernel_share(&self) -> Option<f64> {
        let (user, system) = (self.server_user_cpu_ns?, self.server_system_cpu_ns?);
        (user + system > 0).then(|| system as f64 / (user + system) as f64)
    }

    /// Generator CPU µs per request sent.
    pub fn generator_cpu_us_per_request(&self) -> Option<f64> {
        (self.sent > 0).then_some(())?;
        Some(self.generator_cpu_ns? as f64 / 1000.0 / self.sent as f64)
    }

    /// Fraction of requests that failed (fault, timeout, error).
    pub fn failure_rate(&self) -> f64 {
        ratio(self.counts.failed(), self.sent)
    }

    /// Fraction of requests shed.
    pub fn shed_rate(&self) -> f64 {
        ratio(self.counts.shed, self.sent)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecondRecord {
    /// Seconds since the start of the run.
    pub t: u32,
    /// Requests due in this second.
    pub offered: u64,
    /// Outcomes of the requests that ended in this second.
    pub done: Counts,
    /// Median latency of the successful requests due in this second.
    pub p50_ms: f64,
    /// Their 99th percentile.
    pub p99_ms: f64,
    /// Their maximum.
    pub max_ms: f64,
    /// Busy fraction of each core during this second.
    pub core_busy: Vec<f64>,
    /// Server CPU during this second, in cores (CPU seconds per second).
    pub server_cores: Option<f64>,
    /// Generator CPU during this second, in cores.
    pub generator_cores: Option<f64>,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Per segment.
    pub segments: Vec<SegmentRecord>,
    /// Per second.
    pub seconds: Vec<SecondRecord>,
    /// Wall time including the drain at the end.
    pub wall_secs: f64,
    /// Requests whose card had been sent before (under a fresh message id).
    pub reused_cards: u64,
}

/// Accumulates completions while a run is going.
pub struct Recorder {
    segments: Vec<SegAcc>,
    /// The endpoints kept apart (none: no breakdown).
    paths: Vec<String>,
    /// End of each segment, µs since the start.
    ends_us: Vec<u64>,
    by_intended: Vec<SecAcc>,
    by_done: Vec<Counts>,
}

struct SegAcc {
    counts: Counts,
    statuses: BTreeMap<u16, u64>,
    latency: Histogram<u64>,
    queue: Histogram<u64>,
    ok_in_window: u64,
    endpoints: Vec<EndpointAcc>,
}

struct EndpointAcc {
    counts: Counts,
    latency: Histogram<u64>,
    ok_in_window: u64,
}

struct SecAcc {
    latency: Histogram<u64>,
}

fn histogram(sigfig: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig).expect("constant histogram bounds are valid")
}

impl Recorder {
    /// A recorder for the segments of `schedule`.
    pub fn new(schedule: &crate::schedule::Schedule) -> Self {
        Self::with_endpoints(schedule, Vec::new())
    }

    /// A recorder that also keeps each of `paths` apart (requests recorded with
    /// [`Recorder::record_for`] and the index of their path).
    pub fn with_endpoints(schedule: &crate::schedule::Schedule, paths: Vec<String>) -> Self {
        let mut end = 0.0;
        Recorder {
            segments: schedule
                .segments
                .iter()
                .map(|_| SegAcc {
                    counts: Counts::default(),
                    statuses: BTreeMap::new(),
                    latency: histogram(3),
                    queue: histogram(3),
                    ok_in_window: 0,
                    endpoints: paths
                        .iter()
                        .map(|_| EndpointAcc {
                            counts: Counts::default(),
                            latency: histogram(3),
                            ok_in_window: 0,
                        })
                        .collect(),
                })
                .collect(),
            paths,
            ends_us: schedule
                .segments
                .iter()
                .map(|s| {
                    end += s.secs;
                    (end * 1e6) as u64
                })
                .collect(),
            by_intended: Vec::new(),
            by_done: Vec::new(),
        }
    }

    /// Records one request: due at `intended_us`, picked up by a connection `queued_us` later,
    /// ended at `done_us` (both since the start of the run).
    pub fn record(
        &mut self,
        segment: usize,
        intended_us: u64,
        queued_us: u64,
        done_us: u64,
        outcome: Outcome,
    ) {
        self.record_for(None, segment, intended_us, queued_us, done_us, outcome);
    }

    /// [`Recorder::record`] for a request to the `endpoint`-th path of the breakdown.
    pub fn record_for(
        &mut self,
        endpoint: Option<usize>,
        segment: usize,
        intended_us: u64,
        queued_us: u64,
        done_us: u64,
        outcome: Outcome,
    ) {
        let latency = done_us.saturating_sub(intended_us).clamp(1, MAX_LATENCY_US);
        if let Some(s) = self.segments.get_mut(segment) {
            if let Some(e) = endpoint.and_then(|e| s.endpoints.get_mut(e)) {
                e.counts.add(outcome);
                if outcome == Outcome::Ok {
                    e.latency.saturating_record(latency);
                }
            }
            s.counts.add(outcome);
            if let Outcome::Ok | Outcome::Shed | Outcome::Fault(_) = outcome {
                let status = match outcome {
                    Outcome::Ok => 200,
                    Outcome::Shed => 503,
                    Outcome::Fault(st) => st,
                    _ => 0,
                };
                *s.statuses.entry(status).or_default() += 1;
            }
            s.queue.saturating_record(queued_us.clamp(1, MAX_LATENCY_US));
            if outcome == Outcome::Ok {
                s.latency.saturating_record(latency);
            }
        }
        if outcome == Outcome::Ok {
            if let Some(window) = self.ends_us.iter().position(|&end| done_us < end) {
                self.segments[window].ok_in_window += 1;
                if let Some(e) = endpoint.and_then(|e| self.segments[window].endpoints.get_mut(e)) {
                    e.ok_in_window += 1;
                }
            }
            let sec = (intended_us / 1_000_000) as usize;
            while self.by_intended.len() <= sec {
                self.by_intended.push(SecAcc { latency: histogram(2) });
            }
            self.by_intended[sec].latency.saturating_record(latency);
        }
        let sec = (done_us / 1_000_000) as usize;
        if self.by_done.len() <= sec {
            self.by_done.resize(sec + 1, Counts::default());
        }
        self.by_done[sec].add(outcome);
    }

    /// Outcomes of the requests that ended in second `t`.
    pub fn done_in(&self, t: usize) -> Counts {
        self.by_done.get(t).copied().unwrap_or_default()
    }

    /// p99 of the successful requests due in second `t`, ms.
    pub fn p99_in(&self, t: usize) -> Option<f64> {
        self.by_intended
            .get(t)
            .filter(|s| !s.latency.is_empty())
            .map(|s| s.latency.value_at_quantile(0.99) as f64 / 1000.0)
    }

    /// Per-segment results, given what the run knows besides completions.
    pub fn segment_records(
        &self,
        schedule: &crate::schedule::Schedule,
        sent: &[u64],
        server_cpu_ns: &[Option<u64>],
        generator_cpu_ns: &[Option<u64>],
    ) -> Vec<SegmentRecord> {
        schedule
            .segments
            .iter()
            .zip(&self.segments)
            .enumerate()
            .map(|(i, (seg, acc))| SegmentRecord {
                label: seg.label.clone(),
                measured: seg.measured,
                secs: seg.secs,
                offered_rate: seg.requests() / seg.secs.max(1e-9),
                sent: sent.get(i).copied().unwrap_or(0),
                counts: acc.counts,
                statuses: acc.statuses.clone(),
                goodput: acc.ok_in_window as f64 / seg.secs.max(1e-9),
                latency: Latency::of(&acc.latency),
                queue_delay: Latency::of(&acc.queue),
                server_cpu_ns: server_cpu_ns.get(i).copied().flatten(),
                generator_cpu_ns: generator_cpu_ns.get(i).copied().flatten(),
                server_user_cpu_ns: None,
                server_system_cpu_ns: None,
                hsm_cpu_ns: None,
                hsm_signatures: None,
                endpoints: acc
                    .endpoints
                    .iter()
                    .zip(&self.paths)
                    .map(|(e, path)| EndpointRecord {
                        path: path.clone(),
                        counts: e.counts,
                        goodput: e.ok_in_window as f64 / seg.secs.max(1e-9),
                        latency: Latency::of(&e.latency),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Per-second results, merged with the offered counts and CPU samples.
    pub fn second_records(&self, offered: &[u64], samples: &[crate::engine::CpuSample]) -> Vec<SecondRecord> {
        let len = offered.len().max(self.by_done.len()).max(self.by_intended.len());
        (0..len)
            .map(|t| {
                let lat = self.by_intended.get(t).map(|s| &s.latency);
                let q = |p: f64| {
                    lat.filter(|h| !h.is_empty())
                        .map(|h| h.value_at_quantile(p) as f64 / 1000.0)
                        .unwrap_or(0.0)
                };
                let sample = samples.get(t);
                SecondRecord {
                    t: t as u32,
                    offered: offered.get(t).copied().unwrap_or(0),
                    done: self.done_in(t),
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    max_ms: lat.map(|h| h.max() as f64 / 1000.0).unwrap_or(0.0),
                    core_busy: sample.map(|s| s.core_busy.clone()).unwrap_or_default(),
                    server_cores: sample.and_then(|s| s.server_cores),
                    generator_cores: sample.and_then(|s| s.generator_cores),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Schedule, Segment};

    #[test]
    fn latency_counts_from_the_intended_time_and_only_for_successes() {
        let schedule = Schedule::new(vec![Segment::steady("a", 1.0, 102.0), Segment::steady("b", 1.0, 1.0)]);
        let mut r = Recorder::new(&schedule);
        // 100 requests due at t=0 each answered after 1..=100 ms, one shed, one timeout.
        for i in 1..=100u64 {
            r.record(0, 0, 0, i * 1000, Outcome::Ok);
        }
        r.record(0, 0, 0, 500, Outcome::Shed);
        r.record(1, 1_500_000, 2_000_000, 7_500_000, Outcome::Timeout);
        // Due in the first second, answered in the second: counts for the second's goodput.
        r.record(0, 990_000, 0, 1_200_000, Outcome::Ok);
        let segs = r.segment_records(&schedule, &[102, 1], &[Some(51_000_000), None], &[None, None]);
        let a = &segs[0];
        assert_eq!(a.counts, Counts { ok: 101, shed: 1, ..Counts::default() });
        assert_eq!(a.goodput, 100.0);
        assert_eq!(segs[1].goodput, 1.0);
        assert_eq!(a.latency.count, 101);
        // 1..=100 ms and one of 210 ms: p50 = 51 ms, p99 = 100 ms, max 210 ms.
        assert!((a.latency.p50_ms - 51.0).abs() < 0.1, "{:?}", a.latency);
        assert!((a.latency.p99_ms - 100.0).abs() < 0.1, "{:?}", a.latency);
        assert!((a.latency.max_ms - 210.0).abs() < 0.1);
        assert_eq!(a.statuses.get(&503), Some(&1));
        // 51 ms of server CPU over 102 answered requests.
        assert!((a.server_cpu_us_per_request().unwrap() - 500.0).abs() < 0.01);
        assert_eq!(segs[1].counts.timeout, 1);
        assert_eq!(segs[1].failure_rate(), 1.0);
        assert_eq!(r.done_in(7).timeout, 1);
        let secs = r.second_records(&[102, 1], &[]);
        assert_eq!(secs.len(), 8);
        assert_eq!(secs[0].done.ok, 100);
        assert_eq!(secs[1].done.ok, 1);
        assert!((secs[0].p99_ms - 100.0).abs() < 1.0, "{}", secs[0].p99_ms);
        assert!(a.endpoints.is_empty() && a.sole_endpoint().is_none());
    }

    #[test]
    fn endpoints_are_kept_apart_when_asked() {
        let schedule = Schedule::new(vec![Segment::steady("a", 1.0, 4.0), Segment::steady("b", 1.0, 1.0)]);
        let mut r = Recorder::with_endpoints(&schedule, vec!["/x".into(), "/y".into()]);
        r.record_for(Some(0), 0, 0, 0, 2000, Outcome::Ok);
        r.record_for(Some(1), 0, 0, 0, 10_000, Outcome::Ok);
        r.record_for(Some(1), 0, 0, 0, 20_000, Outcome::Shed);
        // Due in a, answered in b's window.
        r.record_for(Some(1), 0, 900_000, 0, 1_100_000, Outcome::Ok);
        r.record_for(Some(1), 1, 1_000_000, 0, 1_050_000, Outcome::Ok);
        let segs = r.segment_records(&schedule, &[4, 1], &[None, None], &[None, None]);
        let (x, y) = (&segs[0].endpoints[0], &segs[0].endpoints[1]);
        assert_eq!((x.path.as_str(), x.counts.ok, x.goodput), ("/x", 1, 1.0));
        assert_eq!((y.counts.ok, y.counts.shed, y.goodput), (2, 1, 1.0));
        assert!((x.latency.p50_ms - 2.0).abs() < 0.01 && (y.latency.max_ms - 200.0).abs() < 0.5, "{y:?}");
        assert!(segs[0].sole_endpoint().is_none());
        assert_eq!(segs[1].sole_endpoint().map(|e| e.path.as_str()), Some("/y"));
        assert_eq!(segs[1].endpoints[1].goodput, 2.0);
        let mut seg = segs[1].clone();
        seg.hsm_signatures = Some(2);
        assert_eq!(seg.signatures_per_issued(), Some(2.0));
    }
}
