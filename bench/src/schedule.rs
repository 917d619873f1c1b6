//! Arrival schedules: piecewise-linear offered rate over time, and the exact send times of an
//! open-loop generator following it.
//!
//! The k-th request (k = 0, 1, 2, …) is due when the integral of the rate reaches k, so the
//! generator never drifts from the schedule however long it runs, and a ramp is followed exactly
//! rather than in steps.

use serde::Serialize;

/// One stretch of a schedule: the rate moves linearly from `from_rate` to `to_rate`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Name in reports (`baseline`, `step 800/s`, …).
    pub label: String,
    /// Length in seconds.
    pub secs: f64,
    /// Offered rate at the start, requests per second.
    pub from_rate: f64,
    /// Offered rate at the end, requests per second.
    pub to_rate: f64,
    /// Whether the segment counts in summaries (warm-up segments do not).
    pub measured: bool,
}

impl Segment {
    /// A constant-rate segment.
    pub fn steady(label: impl Into<String>, secs: f64, rate: f64) -> Self {
        Segment { label: label.into(), secs, from_rate: rate, to_rate: rate, measured: true }
    }

    /// A linear ramp.
    pub fn ramp(label: impl Into<String>, secs: f64, from_rate: f64, to_rate: f64) -> Self {
        Segment { label: label.into(), secs, from_rate, to_rate, measured: true }
    }

    /// The same segment, excluded from summaries.
    pub fn warmup(mut self) -> Self {
        self.measured = false;
        self
    }

    /// Requests this segment offers (the integral of its rate).
    pub fn requests(&self) -> f64 {
        (self.from_rate + self.to_rate) / 2.0 * self.secs
    }

    /// Offset into the segment at which `count` requests have been offered.
    fn time_of(&self, count: f64) -> f64 {
        let (a, b, t) = (self.from_rate, self.to_rate, self.secs);
        let slope = (b - a) / t;
        if slope.abs() < 1e-9 {
            return count / a;
        }
        // a·τ + slope·τ²/2 = count, the root in [0, t].
        (-a + (a * a + 2.0 * slope * count).max(0.0).sqrt()) / slope
    }
}

/// A sequence of segments run back to back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// The segments in order.
    pub segments: Vec<Segment>,
}

/// One due request: when, relative to the start of the run, and in which segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Seconds after the start of the run.
    pub offset: f64,
    /// Index of its segment.
    pub segment: usize,
}

impl Schedule {
    /// A schedule of the given segments.
    pub fn new(segments: Vec<Segment>) -> Self {
        Schedule { segments }
    }

    /// Total length in seconds.
    pub fn secs(&self) -> f64 {
        self.segments.iter().map(|s| s.secs).sum()
    }

    /// Requests the whole schedule offers.
    pub fn requests(&self) -> f64 {
        self.segments.iter().map(Segment::requests).sum()
    }

    /// Start offset of each segment in seconds.
    pub fn starts(&self) -> Vec<f64> {
        let mut t = 0.0;
        self.segments
            .iter()
            .map(|s| {
                let start = t;
                t += s.secs;
                start
            })
            .collect()
    }

    /// The offered rate at `t` seconds into the run (0 outside it).
    pub fn rate_at(&self, t: f64) -> f64 {
        let mut start = 0.0;
        for s in &self.segments {
            if t < start + s.secs {
                let f = ((t - start) / s.secs).clamp(0.0, 1.0);
                return s.from_rate + (s.to_rate - s.from_rate) * f;
            }
            start += s.secs;
        }
        0.0
    }

    /// Every due request, in order.
    pub fn arrivals(&self) -> impl Iterator<Item = Arrival> + '_ {
        let mut seg = 0usize;
        let mut seg_start_time = 0.0;
        let mut seg_start_count = 0.0;
        let mut k: u64 = 0;
        std::iter::from_fn(move || loop {
            let s = self.segments.get(seg)?;
            let local = k as f64 - seg_start_count;
            if s.secs > 0.0 && s.from_rate.max(s.to_rate) > 0.0 && local < s.requests() {
                // A segment that starts at rate 0 reaches its first request only after a while.
                let offset = seg_start_time + s.time_of(local);
                k += 1;
                return Some(Arrival { offset, segment: seg });
            }
            seg_start_time += s.secs;
            seg_start_count += s.requests();
            seg += 1;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_is_evenly_spaced_and_exact() {
        let s = Schedule::new(vec![Segment::steady("a", 2.0, 100.0)]);
        let a: Vec<_> = s.arrivals().collect();
        assert_eq!(a.len(), 200);
        assert!((a[1].offset - 0.01).abs() < 1e-12);
        assert!((a[199].offset - 1.99).abs() < 1e-9);
    }

    #[test]
    fn ramp_follows_the_integral() {
        // 0 → 200/s over 2 s offers 200 requests, half of them in the last 0.586 s.
        let s = Schedule::new(vec![Segment::ramp("r", 2.0, 0.0, 200.0)]);
        let a: Vec<_> = s.arrivals().collect();
        assert_eq!(a.len(), 200);
        let t100 = a[100].offset;
        assert!((t100 - 2.0f64.sqrt()).abs() < 1e-9, "{t100}");
        assert!(a.windows(2).all(|w| w[0].offset < w[1].offset));
    }

    #[test]
    fn segments_chain_without_drift() {
        let s = Schedule::new(vec![
            Segment::steady("a", 1.0, 10.0),
            Segment::ramp("b", 1.0, 10.0, 30.0),
            Segment::steady("c", 1.5, 3.0),
        ]);
        let a: Vec<_> = s.arrivals().collect();
        assert_eq!(a.len() as f64, s.requests().round());
        assert_eq!(a.iter().filter(|x| x.segment == 1).count(), 20);
        assert!(a.last().is_some_and(|x| x.offset < s.secs()));
        assert_eq!(s.rate_at(1.5), 20.0);
        assert_eq!(s.rate_at(10.0), 0.0);
    }
}
