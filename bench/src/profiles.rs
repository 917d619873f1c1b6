//! The load profiles: `tax-day` (baseline, ramp to peak, hold, surge, recovery) and `soak`
//! (one rate for a long time). The sweep is in [`crate::sweep`].

use serde::{Deserialize, Serialize};

use crate::schedule::{Schedule, Segment};

/// The tax-day profile: every phase's length and rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TaxDay {
    /// Rate before the peak, requests/s.
    pub baseline_rate: f64,
    /// Rate held at the peak.
    pub peak_rate: f64,
    /// Rate during the surge (by default 3× the peak).
    pub surge_rate: f64,
    /// Rate after the surge.
    pub recovery_rate: f64,
    /// Seconds at baseline.
    pub baseline_secs: f64,
    /// Seconds ramping from baseline to peak.
    pub ramp_secs: f64,
    /// Seconds holding the peak.
    pub hold_secs: f64,
    /// Seconds of surge.
    pub surge_secs: f64,
    /// Seconds of recovery.
    pub recovery_secs: f64,
}

impl TaxDay {
    /// Phases relative to a capacity: baseline and peak as fractions of it, the surge a
    /// multiple of the peak, recovery back at the peak.
    pub fn relative_to(capacity: f64, baseline: f64, peak: f64, surge_factor: f64, secs: [f64; 5]) -> Self {
        TaxDay {
            baseline_rate: capacity * baseline,
            peak_rate: capacity * peak,
            surge_rate: capacity * peak * surge_factor,
            recovery_rate: capacity * peak,
            baseline_secs: secs[0],
            ramp_secs: secs[1],
            hold_secs: secs[2],
            surge_secs: secs[3],
            recovery_secs: secs[4],
        }
    }

    /// The schedule, one segment per phase (phases of zero length are left out).
    pub fn schedule(&self) -> Schedule {
        let phases = [
            Segment::steady("baseline", self.baseline_secs, self.baseline_rate),
            Segment::ramp("ramp", self.ramp_secs, self.baseline_rate, self.peak_rate),
            Segment::steady("hold", self.hold_secs, self.peak_rate),
            Segment::steady("surge", self.surge_secs, self.surge_rate),
            Segment::steady("recovery", self.recovery_secs, self.recovery_rate),
        ];
        Schedule::new(phases.into_iter().filter(|p| p.secs > 0.0).collect())
    }
}

/// A soak: a short warm-up, then `rate` for `secs`.
pub fn soak(rate: f64, secs: f64, warmup_secs: f64) -> Schedule {
    let mut segments = Vec::new();
    if warmup_secs > 0.0 {
        segments.push(Segment::steady("warm-up", warmup_secs, rate).warmup());
    }
    segments.push(Segment::steady(format!("soak {rate:.0}/s"), secs, rate));
    Schedule::new(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_day_phases_follow_the_capacity() {
        let t = TaxDay::relative_to(1000.0, 0.3, 0.8, 3.0, [10.0, 10.0, 10.0, 5.0, 0.0]);
        assert_eq!((t.baseline_rate, t.peak_rate, t.surge_rate), (300.0, 800.0, 2400.0));
        let s = t.schedule();
        let labels: Vec<_> = s.segments.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["baseline", "ramp", "hold", "surge"]);
        // 3000 + 5500 + 8000 + 12000 requests.
        assert_eq!(s.requests(), 28_500.0);
    }
}
