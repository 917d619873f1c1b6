//! The sizing arithmetic: how many appliances and HSMs a peak rate needs.
//!
//! Two limits bound a node. Its own CPU: `cores × headroom × 10⁶ / c` requests per second,
//! where `c` is segl's CPU µs per request excluding the HSM operation. And the HSM: each
//! request needs `s` signatures, an HSM makes `H` per second, run at `headroom` of that.
//! With the embedded default (SoftHSM in-process, signing on the node's own cores) the two are
//! one measured number: the node's capacity at the p99 target.

use serde::{Deserialize, Serialize};

/// Assumptions that turn a day's logins into a peak rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeakDay {
    /// Logins (tokens issued) in the day.
    pub logins_per_day: f64,
    /// Share of the day's logins in its busiest hour.
    pub peak_hour_share: f64,
    /// Peak rate within that hour over the hour's mean.
    pub surge_factor: f64,
}

impl PeakDay {
    /// The Norwegian tax-day record (3.58 million logins in a day), with the busiest hour
    /// carrying 15% of the day and surging to 3× that hour's mean (the tax-day profile's
    /// surge). Both shares are assumptions, stated in the report.
    pub const NORWEGIAN_TAX_DAY: PeakDay =
        PeakDay { logins_per_day: 3_580_000.0, peak_hour_share: 0.15, surge_factor: 3.0 };

    /// Mean rate of the busiest hour, per second.
    pub fn peak_hour_rate(&self) -> f64 {
        self.logins_per_day * self.peak_hour_share / 3600.0
    }

    /// The rate to plan for, per second.
    pub fn peak_rate(&self) -> f64 {
        self.peak_hour_rate() * self.surge_factor
    }
}

/// What was measured about one node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// Requests per second one node serves at the p99 target with the embedded default.
    pub capacity_at_p99: f64,
    /// segl's CPU per request excluding the HSM operation, µs.
    pub cpu_us_per_request: f64,
    /// Cores per node.
    pub cores: f64,
    /// Fraction of CPU and HSM capacity planned to be used at peak.
    pub headroom: f64,
    /// HSM signatures per request (1 for an ID card).
    pub signatures_per_request: f64,
}

/// An HSM model by signing rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HsmClass {
    /// Name in the report.
    pub name: String,
    /// RSA-2048 signatures per second of one HSM.
    pub signs_per_sec: f64,
}

/// The answer for one rate and one HSM class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    /// The rate sized for, requests per second.
    pub rate: f64,
    /// The HSM class.
    pub hsm: HsmClass,
    /// HSMs needed: ⌈rate × s / (H × headroom)⌉.
    pub hsms: u64,
    /// One node's CPU-bound rate: cores × headroom × 10⁶ / c.
    pub node_cpu_rate: f64,
    /// Nodes needed for CPU: ⌈rate / node_cpu_rate⌉.
    pub nodes: u64,
}

/// Floor for the CPU per request, µs: a measurement at or below it is resolution, not speed.
pub const MIN_CPU_US: f64 = 1.0;

/// Nodes with the embedded default (each its own in-process HSM): ⌈rate / capacity⌉, at
/// least 1.
pub fn embedded_nodes(rate: f64, node: &NodeProfile) -> u64 {
    ceil_div(rate, node.capacity_at_p99)
}

/// Nodes and HSMs for `rate` with an external HSM of class `hsm`.
pub fn size(rate: f64, node: &NodeProfile, hsm: &HsmClass) -> Sizing {
    let node_cpu_rate = node.cores * node.headroom * 1e6 / node.cpu_us_per_request.max(MIN_CPU_US);
    Sizing {
        rate,
        hsm: hsm.clone(),
        hsms: ceil_div(rate * node.signatures_per_request, hsm.signs_per_sec * node.headroom),
        node_cpu_rate,
        nodes: ceil_div(rate, node_cpu_rate),
    }
}

fn ceil_div(a: f64, b: f64) -> u64 {
    if b <= 0.0 || !b.is_finite() {
        return u64::MAX;
    }
    ((a / b) - 1e-9).ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_day_peak_rate() {
        let d = PeakDay::NORWEGIAN_TAX_DAY;
        // 3.58e6 × 0.15 / 3600 = 149.17/s; × 3 = 447.5/s.
        assert!((d.peak_hour_rate() - 149.1667).abs() < 1e-3);
        assert!((d.peak_rate() - 447.5).abs() < 1e-9);
    }

    #[test]
    fn nodes_and_hsms() {
        let node = NodeProfile {
            capacity_at_p99: 1500.0,
            cpu_us_per_request: 40.0,
            cores: 2.0,
            headroom: 0.7,
            signatures_per_request: 1.0,
        };
        assert_eq!(embedded_nodes(447.5, &node), 1);
        assert_eq!(embedded_nodes(3000.0, &node), 2);
        assert_eq!(embedded_nodes(3000.1, &node), 3);
        let net = HsmClass { name: "network".into(), signs_per_sec: 10_000.0 };
        let s = size(100_000.0, &node, &net);
        // 2 × 0.7 × 1e6 / 40 = 35,000/s per node → 3 nodes; 100,000 / 7,000 → 15 HSMs.
        assert_eq!(s.node_cpu_rate, 35_000.0);
        assert_eq!(s.nodes, 3);
        assert_eq!(s.hsms, 15);
        // A CPU figure below resolution is floored, never divides by zero.
        let free = NodeProfile { cpu_us_per_request: -3.0, ..node };
        assert_eq!(size(10.0, &free, &net).node_cpu_rate, 1.4e6);
        assert_eq!(embedded_nodes(1.0, &NodeProfile { capacity_at_p99: 0.0, ..node }), u64::MAX);
    }
}
