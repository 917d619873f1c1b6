//! The audit log: one JSON line per issued token and per refusal of a request from an
//! identified client (a card whose signature verified), appended to a file by one writer
//! thread with group commit.
//!
//! Durability is configurable: in `sync` mode a request's response waits until its record is
//! on disk (one `fdatasync` covers every record that arrived meanwhile, and the writer waits a
//! configurable commit delay after the first record so that more can join, so the cost per
//! record falls as load rises); in `async` mode the response does not wait and the file is synced
//! once a second. Operational logs (`tracing`) are separate and go to stderr/journald.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How durable a record is when its request is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The response is sent only after the record is on disk.
    #[default]
    Sync,
    /// The response does not wait; records reach the disk within about a second.
    Async,
}

/// Why a record could not be written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened.
    #[error("cannot open audit log {path}: {reason}")]
    Open { path: String, reason: String },
    /// Writing or syncing failed.
    #[error("audit log write failed: {0}")]
    Write(String),
    /// The writer thread is gone.
    #[error("the audit log writer has stopped")]
    Stopped,
}

/// The client a record is about: the certificate that signed its card.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditClient {
    /// Subject DN (RFC 1779).
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, decimal.
    pub serial: String,
}

impl AuditClient {
    /// The record's description of a certificate.
    pub fn of(cert: &crate::trust::SignerCertificate) -> AuditClient {
        AuditClient {
            subject: cert.subject_dn.clone(),
            issuer: cert.issuer_dn.clone(),
            serial: cert.serial_decimal.clone(),
        }
    }
}

/// The card a request presented.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditCard {
    /// `sosi:IDCardID`.
    pub id: String,
    /// `user` or `system`.
    pub card_type: String,
    /// Authentication level.
    pub level: u8,
    /// The user's CPR, when the card has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpr: Option<String>,
    /// Care provider identifier.
    pub care_provider: String,
    /// `medcom:UserRole`, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A token a request presented or was issued, of any kind.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct AuditToken {
    /// `idcard`, `oiosaml`, `bootstrap`, `identity-token`, `jwt`, ...
    pub kind: String,
    /// Its identifier (`sosi:IDCardID`, the assertion's `ID`, a JWT's `jti`).
    pub id: String,
    /// Whom it is for, when it names an audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl AuditToken {
    /// A token of `kind` with `id`, for no particular audience.
    pub fn new(kind: &str, id: &str) -> AuditToken {
        AuditToken { kind: kind.to_owned(), id: id.to_owned(), audience: None }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AuditRecord {
    /// When the request was served (RFC 3339, UTC).
    pub time: String,
    /// The endpoint.
    pub endpoint: String,
    /// `issued` or `refused`.
    pub outcome: String,
    /// The fault code of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The request's message id, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The peer's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Who signed the presented card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<AuditClient>,
    /// The presented token (once its signature verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presented: Option<AuditToken>,
    /// The presented ID card's contents, when an ID card was presented.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<AuditCard>,
    /// The issued token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<AuditToken>,
    /// Label of the HSM key that signed the issued token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

type Done = futures_channel::oneshot::Sender<Result<(), AuditError>>;

enum Job {
    Record { line: Vec<u8>, done: Option<Done> },
    Flush(Done),
}

/// The handle requests write through; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    jobs: crossbeam_channel::Sender<Job>,
    durability: Durability,
    path: Arc<PathBuf>,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

/// Most records written (and synced) together.
const MAX_BATCH: usize = 4096;
/// How often `async` mode syncs.
const ASYNC_SYNC_INTERVAL: Duration = Duration::from_secs(1);

impl AuditLog {
    /// Opens (creating, mode 0600) the file for appending and starts its writer thread.
    pub fn open(path: &Path, durability: Durability) -> Result<AuditLog, AuditError> {
        Self::open_with_commit_delay(path, durability, Duration::ZERO)
    }

    /// [`AuditLog::open`], where in `sync` mode the writer waits `commit_delay` after a record
    /// arrives before it syncs, so that the records of concurrent requests share the
    /// `fdatasync` (each response waits up to that much longer).
    pub fn open_with_commit_delay(
        path: &Path,
        durability: Durability,
        commit_delay: Duration,
    ) -> Result<AuditLog, AuditError> {
        use std::os::unix::fs::OpenOptionsExt;
        let open_err =
            |e: std::io::Error| AuditError::Open { path: path.display().to_string(), reason: e.to_string() };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        let file =
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(open_err)?;
        let (jobs, rx) = crossbeam_channel::bounded(64 * 1024);
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = Writer { file, jobs: rx, durability, commit_delay, syncs: syncs.clone() };
        std::thread::Builder::new()
            .name("segl-audit".into())
            .spawn(move || writer.run())
            .map_err(open_err)?;
        Ok(AuditLog { jobs, durability, path: Arc::new(path.to_owned()), syncs })
    }

    /// How many times the file was synced (records per sync = records / this).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The file records go to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record. In `sync` mode this completes once the record is on disk.
    pub async fn record(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Write(e.to_string()))?;
        line.push(b'\n');
        match self.durability {
            Durability::Async => self.jobs.try_send(Job::Record { line, done: None }).map_err(|e| match e {
                crossbeam_channel::TrySendError::Full(_) => {
                    AuditError::Write("the audit queue is full (the disk is not keeping up)".into())
                }
                crossbeam_channel::TrySendError::Disconnected(_) => AuditError::Stopped,
            }),
            Durability::Sync => {
                let (done, written) = futures_channel::oneshot::channel();
                self.jobs
                    .try_send(Job::Record { line, done: Some(done) })
                    .map_err(|_| AuditError::Stopped)?;
                written.await.map_err(|_| AuditError::Stopped)?
            }
        }
    }

    /// Waits until everything recorded so far is on disk (at shutdown).
    pub fn flush_blocking(&self) -> Result<(), AuditError> {
        let (done, written) = futures_channel::oneshot::channel();
        self.jobs.send(Job::Flush(done)).map_err(|_| AuditError::Stopped)?;
        futures_lite::future::block_on(written).map_err(|_| AuditError::Stopped)?
    }
}

/// The writer thread's state.
struct Writer {
    file: File,
    jobs: crossbeam_channel::Receiver<Job>,
    durability: Durability,
    commit_delay: Duration,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    fn sync(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let synced = self.file.sync_data();
        // In sync mode every waiting response waits this long: a slow disk shows here first.
        metrics::histogram!(crate::telemetry::AUDIT_SYNC_SECONDS).record(started.elapsed().as_secs_f64());
        synced
    }

    fn run(mut self) {
        let mut batch = Vec::with_capacity(64 * 1024);
        let mut waiting: Vec<Done> = Vec::new();
        let mut last_sync = Instant::now();
        let mut dirty = false;
        loop {
            let first = match self.jobs.recv_timeout(ASYNC_SYNC_INTERVAL) {
                Ok(job) => Some(job),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => None,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            };
            // Senders do not wake a sleeping writer (only one parked in `recv`), so while it waits
            // here the records of other requests queue up for free and share the coming sync.
            if matches!(first, Some(Job::Record { done: Some(_), .. })) && !self.commit_delay.is_zero() {
                std::thread::sleep(self.commit_delay);
            }
            let mut must_sync = false;
            for job in first.into_iter().chain(self.jobs.try_iter().take(MAX_BATCH)) {
                match job {
                    Job::Record { line, done } => {
                        batch.extend_from_slice(&line);
                        must_sync |= done.is_some();
                        waiting.extend(done);
                    }
                    Job::Flush(done) => {
                        must_sync = true;
                        waiting.push(done);
                    }
                }
            }
            let mut result = Ok(());
            if !batch.is_empty() {
                result = self.file.write_all(&batch).map_err(|e| AuditError::Write(e.to_string()));
                batch.clear();
                dirty = true;
            }
            let sync_due =
                self.durability == Durability::Async && dirty && last_sync.elapsed() >= ASYNC_SYNC_INTERVAL;
            if result.is_ok() && (must_sync || sync_due) && dirty {
                result = self.sync().map_err(|e| AuditError::Write(e.to_string()));
                last_sync = Instant::now();
                dirty = false;
            }
            if let Err(e) = &result {
                tracing::error!("{e}");
            }
            for done in waiting.drain(..) {
                let _ = done.send(result.clone());
            }
        }
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("segl-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("audit.jsonl")
    }

    #[test]
    fn sync_records_are_in_the_file_when_record_returns() {
        let path = temp("sync");
        let log = AuditLog::open(&path, Durability::Sync).unwrap();
        for i in 0..3 {
            let rec = AuditRecord {
                outcome: "issued".into(),
                issued: Some(AuditToken::new("idcard", &format!("card-{i}"))),
                ..Default::default()
            };
            futures_lite::future::block_on(log.record(&rec)).unwrap();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&format!("\"issued\":{{\"kind\":\"idcard\",\"id\":\"card-{i}\"}}")),
                "{text}"
            );
        }
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["outcome"], "issued");
        assert!(lines[2].get("fault").is_none(), "absent fields are omitted");
    }

    #[test]
    fn concurrent_sync_records_share_batches_and_all_arrive() {
        let path = temp("group");
        let log = AuditLog::open(&path, Durability::Sync).unwrap();
        record_concurrently(&log, 8, 50);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 400);
    }

    fn record_concurrently(log: &AuditLog, threads: usize, each: usize) {
        let threads: Vec<_> = (0..threads)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..each {
                        let rec = AuditRecord {
                            issued: Some(AuditToken::new("idcard", &format!("{t}-{i}"))),
                            ..Default::default()
                        };
                        futures_lite::future::block_on(log.record(&rec)).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
    }

    #[test]
    fn a_commit_delay_lets_concurrent_records_share_one_sync() {
        let path = temp("delay");
        let log =
            AuditLog::open_with_commit_delay(&path, Durability::Sync, Duration::from_millis(50)).unwrap();
        // 16 requests at once, 4 times over: each round's records arrive within the delay.
        record_concurrently(&log, 16, 4);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 64);
        assert!(log.syncs() <= 12, "64 records in {} syncs", log.syncs());

        let path = temp("no-delay");
        let log = AuditLog::open(&path, Durability::Sync).unwrap();
        record_concurrently(&log, 1, 20);
        assert_eq!(log.syncs(), 20, "one writer, no delay: a sync per record");
    }

    #[test]
    fn async_records_arrive_after_a_flush() {
        let path = temp("async");
        let log = AuditLog::open(&path, Durability::Async).unwrap();
        futures_lite::future::block_on(log.record(&AuditRecord::default())).unwrap();
        log.flush_blocking().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp("mode");
        let _log = AuditLog::open(&path, Durability::Sync).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// What a request revealed about itself, collected along the pipeline; it becomes the
/// request's record once the outcome is known.
#[derive(Debug, Clone, Default)]
pub struct AuditTrail {
    /// The request's message id.
    pub message_id: Option<String>,
    /// Who signed the request or its presented card (set once that signature verified).
    pub client: Option<AuditClient>,
    /// The presented token (set once its signature verified).
    pub presented: Option<AuditToken>,
    /// The presented card (set once it was read from the verified element).
    pub card: Option<AuditCard>,
    /// The issued token.
    pub issued: Option<AuditToken>,
    /// The key that signed the issued token.
    pub key: Option<String>,
}

impl AuditTrail {
    /// Whether the request identified its client: only such refusals are audited (anything
    /// else is noise an attacker could fill the audit log with; it is in the operational log).
    pub fn identified(&self) -> bool {
        self.client.is_some() || self.presented.is_some()
    }

    /// The record of an issued token.
    pub fn issued(
        self,
        endpoint: &str,
        time: jiff::Timestamp,
        peer: Option<std::net::SocketAddr>,
    ) -> AuditRecord {
        self.into_record(endpoint, time, peer, "issued", None, None)
    }

    /// The record of a refusal with `fault` because of `reason`.
    pub fn refused(
        self,
        endpoint: &str,
        time: jiff::Timestamp,
        peer: Option<std::net::SocketAddr>,
        fault: String,
        reason: String,
    ) -> AuditRecord {
        self.into_record(endpoint, time, peer, "refused", Some(fault), Some(reason))
    }

    fn into_record(
        self,
        endpoint: &str,
        time: jiff::Timestamp,
        peer: Option<std::net::SocketAddr>,
        outcome: &str,
        fault: Option<String>,
        reason: Option<String>,
    ) -> AuditRecord {
        AuditRecord {
            time: time.to_string(),
            endpoint: endpoint.to_owned(),
            outcome: outcome.to_owned(),
            fault,
            reason,
            message_id: self.message_id,
            peer: peer.map(|p| p.to_string()),
            client: self.client,
            presented: self.presented,
            card: self.card,
            issued: self.issued,
            key: self.key,
        }
    }
}
