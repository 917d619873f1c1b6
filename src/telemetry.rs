//! Metrics (Prometheus text format on the admin listener) and their names, in one place.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests by endpoint and outcome (`issued`, `refused`, `shed`).
pub const REQUESTS: &str = "segl_requests_total";
/// Request latency by endpoint, from admission to response, in seconds.
pub const REQUEST_SECONDS: &str = "segl_request_duration_seconds";
/// Admission decisions by decision, reason and priority.
pub const ADMISSION: &str = "segl_admission_total";
/// Requests in flight, by core.
pub const IN_FLIGHT: &str = "segl_in_flight";
/// Measured service rate (requests/s), by core.
pub const SERVICE_RATE: &str = "segl_service_rate";
/// The configuration version in force (1 at start, +1 per reload).
pub const CONFIG_VERSION: &str = "segl_config_version";
/// Configuration reloads by result (`ok`, `rejected`).
pub const RELOADS: &str = "segl_config_reloads_total";
/// Unexpired message ids dropped because the replay cache was full.
pub const REPLAY_EVICTIONS: &str = "segl_replay_cache_evictions_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (idempotent) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Another recorder (in tests) means metrics go there; rendering still works.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
