//! Metrics (Prometheus text format on the admin listener) and their names, in one place.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Requests by endpoint and outcome (`issued`, `refused`, `shed` by admission control,
/// `expired`: admitted, but refused because its signature had not started by its deadline).
pub const REQUESTS: &str = "segl_requests_total";
/// Latency of admitted requests by endpoint, from the request's last byte read to its response
/// being ready to send, in seconds.
pub const REQUEST_SECONDS: &str = "segl_request_duration_seconds";
/// Time from a request's last byte read to its refusal being ready to send, for requests
/// refused by admission control, in seconds.
pub const SHED_SECONDS: &str = "segl_shed_seconds";
/// Admission decisions by decision, reason and priority.
pub const ADMISSION: &str = "segl_admission_total";
/// Requests in flight, by core.
pub const IN_FLIGHT: &str = "segl_in_flight";
/// Measured service rate (requests/s), by core.
pub const SERVICE_RATE: &str = "segl_service_rate";
/// 1 while a core is overloaded (admitting only what waits about `server.queue_target_ms`), by core.
pub const OVERLOADED: &str = "segl_admission_overloaded";
/// Times a core became overloaded, by core.
pub const OVERLOADS: &str = "segl_admission_overloads_total";
/// What a request takes with nothing ahead of it (admission to answer), by core, in seconds.
pub const UNQUEUED_SECONDS: &str = "segl_admission_unqueued_seconds";
/// The shortest wait of a signature in a core's signer queue in the last admission interval
/// with one (CoDel's signal: above `server.queue_target_ms` for a whole interval is overload).
pub const SIGNER_WAIT_SECONDS: &str = "segl_admission_signer_wait_seconds";
/// While a core is overloaded, the RUTINE requests it keeps in flight (0 when it is not).
pub const OVERLOAD_LIMIT: &str = "segl_admission_overload_limit";
/// The configuration version in force (1 at start, +1 per reload).
pub const CONFIG_VERSION: &str = "segl_config_version";
/// Always 1; its labels say which code runs (`version`, `commit`).
pub const BUILD_INFO: &str = "segl_build_info";
/// Configuration reloads by result (`ok`, `rejected`).
pub const RELOADS: &str = "segl_config_reloads_total";
/// Unexpired message ids dropped because the replay cache was full.
pub const REPLAY_EVICTIONS: &str = "segl_replay_cache_evictions_total";
/// Whether each core has a connection to the Redis replay store (1) or not (0).
pub const REPLAY_STORE_UP: &str = "segl_replay_store_up";
/// Message ids Redis could not check in time, by what the request got (`refused`, `local`).
pub const REPLAY_STORE_UNAVAILABLE: &str = "segl_replay_store_unavailable_total";
/// Message ids that, written to Redis after an outage, another node had accepted meanwhile
/// (replays that passed while the nodes checked their own memory).
pub const REPLAY_STORE_CONFLICTS: &str = "segl_replay_store_conflicts_total";
/// How long asking Redis took, per request (seconds).
pub const REPLAY_STORE_SECONDS: &str = "segl_replay_store_seconds";

/// Signer-certificate validations by core and result (`hit`: answered from the core's cache,
/// `miss`: validated in full).
pub const SIGNER_CACHE: &str = "segl_signer_certificate_cache_total";
/// Signer certificates a core's cache holds.
pub const SIGNER_CACHE_ENTRIES: &str = "segl_signer_certificate_cache_entries";

/// Times the audit log was synced to disk (records per sync shows how well group commit works).
pub const AUDIT_SYNCS: &str = "segl_audit_syncs_total";
/// How long each `fdatasync` of the audit log took (in `sync` mode, responses wait for it).
pub const AUDIT_SYNC_SECONDS: &str = "segl_audit_sync_seconds";

/// Signatures queued or in flight in a core's signer.
pub const SIGNER_QUEUE: &str = "segl_signer_queue_depth";
/// Batches a core's signer drained.
pub const SIGNER_BATCHES: &str = "segl_signer_batches_total";
/// Signatures in those batches (mean batch size = this / batches).
pub const SIGNER_BATCHED: &str = "segl_signer_batched_signatures_total";
/// Largest batch so far.
pub const SIGNER_MAX_BATCH: &str = "segl_signer_max_batch";
/// Signatures not started because their request's deadline was passing while they queued.
pub const SIGNER_EXPIRED: &str = "segl_signer_expired_total";
/// Signatures made by the HSM.
pub const HSM_SIGNATURES: &str = "segl_hsm_signatures_total";
/// Signing operations that failed.
pub const HSM_ERRORS: &str = "segl_hsm_errors_total";
/// Signing operations retried on another session.
pub const HSM_RETRIES: &str = "segl_hsm_retries_total";
/// Total time inside C_Sign, seconds (rate ÷ signatures rate = mean HSM latency).
pub const HSM_SECONDS: &str = "segl_hsm_sign_seconds_total";
/// CPU time the signing threads spent inside C_SignInit + C_Sign, seconds: what a software
/// module (SoftHSM) takes from the appliance's cores; capacity reports subtract it.
pub const HSM_CPU_SECONDS: &str = "segl_hsm_sign_cpu_seconds_total";
/// Longest C_Sign so far, seconds.
pub const HSM_SECONDS_MAX: &str = "segl_hsm_sign_seconds_max";
/// HSM health: 0 ready, 1 degraded, 2 down.
pub const HSM_STATE: &str = "segl_hsm_state";
/// The active signing key (label), value 1.
pub const ACTIVE_KEY: &str = "segl_active_key_info";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Publishes one core's signer counters; `/metrics` calls it for every core just before
/// rendering, so a scrape sees the counters as of now.
pub fn publish_signer(core: usize, s: &segl_pkcs11::SignerStatsSnapshot) {
    let c = || core.to_string();
    metrics::gauge!(SIGNER_QUEUE, "core" => c()).set(s.queue_depth as f64);
    metrics::counter!(SIGNER_BATCHES, "core" => c()).absolute(s.batches);
    metrics::counter!(SIGNER_BATCHED, "core" => c()).absolute(s.batched_ops);
    metrics::gauge!(SIGNER_MAX_BATCH, "core" => c()).set(s.max_batch as f64);
    metrics::counter!(SIGNER_EXPIRED, "core" => c()).absolute(s.expired);
    metrics::counter!(HSM_SIGNATURES, "core" => c()).absolute(s.ops);
    metrics::counter!(HSM_ERRORS, "core" => c()).absolute(s.errors);
    metrics::counter!(HSM_RETRIES, "core" => c()).absolute(s.retries);
    metrics::gauge!(HSM_SECONDS, "core" => c()).set(s.hsm_time.as_secs_f64());
    metrics::gauge!(HSM_CPU_SECONDS, "core" => c()).set(s.hsm_cpu_time.as_secs_f64());
    metrics::gauge!(HSM_SECONDS_MAX, "core" => c()).set(s.hsm_time_max.as_secs_f64());
}

/// Installs the process-wide recorder (idempotent) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];
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
