//! The audit log: one JSON line per issued token and per refusal of a request from an
//! identified client (a card whose signature verified), appended to a file by one writer
//! thread with group commit. A token's record is written while the token is signed; if the
//! request fails after all, a `withdrawn` record naming the token follows it.
//!
//! Durability is configurable: in `sync` mode a request's response waits until its record is
//! on disk (one `fdatasync` covers every record that arrived meanwhile, and the writer waits a
//! configurable commit delay after the first record so that more can join, so the cost per
//! record falls as load rises); in `async` mode the response does not wait and the file is synced
//! once a second. Operational logs (`tracing`) are separate and go to stderr/journald.
//!
//! The file is preallocated: the writer extends it with zeros a few MiB ahead of the records and
//! writes the records over the zeros in place, so that a sync flushes data only. Appending
//! instead changes the file's size with every group, and each `fdatasync` then also commits that
//! metadata through the filesystem's journal (on ext4 here: 40 % more system CPU per sync and
//! 35–40 % more time, measured with a write-and-sync loop). NUL bytes are padding: while segl
//! runs the file ends in them, and a crash can leave a stretch of them where a batch that was
//! never acknowledged did not reach the disk; [`records`] drops them. A clean shutdown cuts the
//! trailing padding off, and after a crash the next start goes on after the last record.
//! `preallocate_mib = 0` appends (`O_APPEND`) instead, for readers that need a file that only
//! grows (`tail -f`, `copytruncate` rotation).

use std::fs::File;
use std::os::unix::fs::FileExt;
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
    /// `issued`, `refused`, or `withdrawn`: the token an earlier `issued` record of the same
    /// request names was not released after all (its signature or the answer failed).
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
    Close(Done),
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
        Self::open_with(path, &AuditOptions { durability, commit_delay, preallocate: 0 })
    }

    /// Opens the file with `options` and starts its writer thread.
    pub fn open_with(path: &Path, options: &AuditOptions) -> Result<AuditLog, AuditError> {
        use std::os::unix::fs::OpenOptionsExt;
        let open_err =
            |e: std::io::Error| AuditError::Open { path: path.display().to_string(), reason: e.to_string() };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(open_err)?;
        }
        // Without preallocation the file is opened for appending, so that it only grows and a
        // `copytruncate` rotation or another appender keeps working as before.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .append(options.preallocate == 0)
            .mode(0o600)
            .open(path)
            .map_err(open_err)?;
        // One writer per file: records are written in place over the preallocated zeros, so a
        // second process writing the same file would overwrite them (two segl instances given
        // the same path is refused here instead of losing records).
        file.try_lock().map_err(|e| AuditError::Open {
            path: path.display().to_string(),
            reason: match e {
                std::fs::TryLockError::WouldBlock => {
                    "another process (another segl?) is writing it; give each instance its own audit file"
                        .to_owned()
                }
                std::fs::TryLockError::Error(e) => format!("cannot lock it: {e}"),
            },
        })?;
        let segment = Segment::resume(file, options.preallocate).map_err(open_err)?;
        let (jobs, rx) = crossbeam_channel::bounded(64 * 1024);
        let syncs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let durability = options.durability;
        let writer = Writer {
            segment,
            jobs: rx,
            durability,
            commit_delay: options.commit_delay,
            syncs: syncs.clone(),
        };
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
        self.submit(record)?.written().await
    }

    /// Hands a record to the writer and returns at once; what the record says may be released
    /// once [`PendingRecord::written`] completes. A request submits the record of its token
    /// before the token's signature is made, so that writing it overlaps the signature.
    pub fn submit(&self, record: &AuditRecord) -> Result<PendingRecord, AuditError> {
        let mut line = serde_json::to_vec(record).map_err(|e| AuditError::Write(e.to_string()))?;
        line.push(b'\n');
        let (done, written) = match self.durability {
            Durability::Async => (None, None),
            Durability::Sync => {
                let (done, written) = futures_channel::oneshot::channel();
                (Some(done), Some(written))
            }
        };
        self.jobs.try_send(Job::Record { line, done }).map_err(|e| match e {
            crossbeam_channel::TrySendError::Full(_) => {
                AuditError::Write("the audit queue is full (the disk is not keeping up)".into())
            }
            crossbeam_channel::TrySendError::Disconnected(_) => AuditError::Stopped,
        })?;
        Ok(PendingRecord(written))
    }

    /// Waits until everything recorded so far is on disk.
    pub fn flush_blocking(&self) -> Result<(), AuditError> {
        self.ask_blocking(Job::Flush)
    }

    /// At shutdown: waits until everything recorded so far is on disk and cuts the file's
    /// preallocated padding off (records that still come are appended).
    pub fn close_blocking(&self) -> Result<(), AuditError> {
        self.ask_blocking(Job::Close)
    }

    fn ask_blocking(&self, job: fn(Done) -> Job) -> Result<(), AuditError> {
        let (done, written) = futures_channel::oneshot::channel();
        self.jobs.send(job(done)).map_err(|_| AuditError::Stopped)?;
        futures_lite::future::block_on(written).map_err(|_| AuditError::Stopped)?
    }
}

impl AuditRecord {
    /// The record that takes this `issued` record back: the token it names did not leave,
    /// refused with `fault` because of `reason`.
    pub fn withdrawn(self, fault: String, reason: String) -> AuditRecord {
        AuditRecord { outcome: "withdrawn".to_owned(), fault: Some(fault), reason: Some(reason), ..self }
    }

    /// The record of a request refused after this `issued` record was handed over but never
    /// written: a plain refusal, naming no token (none was issued, and no record says so).
    pub fn not_issued(self, fault: String, reason: String) -> AuditRecord {
        AuditRecord {
            outcome: "refused".to_owned(),
            fault: Some(fault),
            reason: Some(reason),
            issued: None,
            key: None,
            ..self
        }
    }
}

/// A record handed to the writer: in `sync` mode, on disk once [`PendingRecord::written`]
/// completes; in `async` mode that completes at once.
pub struct PendingRecord(Option<futures_channel::oneshot::Receiver<Result<(), AuditError>>>);

impl PendingRecord {
    /// Completes when the record is as durable as the log's durability promises.
    pub async fn written(self) -> Result<(), AuditError> {
        match self.0 {
            None => Ok(()),
            Some(written) => written.await.map_err(|_| AuditError::Stopped)?,
        }
    }
}

/// How the audit log is written.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// Whether a response waits for its record to be on disk.
    pub durability: Durability,
    /// In `sync` mode, how long the writer waits after a record arrives before it syncs.
    pub commit_delay: Duration,
    /// How far ahead of the records the file is extended with zeros (0: append).
    pub preallocate: u64,
}

/// The records of an audit log file's text: its lines, NUL bytes (the preallocated padding, and
/// any stretch a crash left unwritten) dropped.
pub fn records(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|line| line.trim_matches('\0')).filter(|line| !line.is_empty())
}

/// The file as the writer sees it: where the records end and how far it is allocated.
struct Segment {
    file: File,
    /// Where the next record goes.
    end: u64,
    /// The file's length: records, then zeros.
    allocated: u64,
    /// How far ahead to extend (0: not any more, or not at all).
    preallocate: u64,
    /// Opened for appending (no preallocation): the kernel places each write at the end.
    appending: bool,
}

/// The size of the zero blocks written to extend the file.
const ZEROS: usize = 64 * 1024;

impl Segment {
    /// Finds the end of the records of a file a previous run may have left padded (a crash
    /// keeps the padding): after the last byte that is not NUL.
    fn resume(file: File, preallocate: u64) -> std::io::Result<Segment> {
        let allocated = file.metadata()?.len();
        let mut end = allocated;
        let mut block = vec![0u8; ZEROS];
        while end > 0 {
            let start = end.saturating_sub(ZEROS as u64);
            let chunk = &mut block[..(end - start) as usize];
            file.read_exact_at(chunk, start)?;
            match chunk.iter().rposition(|b| *b != 0) {
                Some(last) => {
                    end = start + last as u64 + 1;
                    break;
                }
                None => end = start,
            }
        }
        let mut segment = Segment { file, end, allocated, preallocate, appending: preallocate == 0 };
        if preallocate == 0 && allocated > end {
            // Padding a preallocating run left behind (a crash): appending starts after the
            // records.
            segment.file.set_len(end)?;
            segment.allocated = end;
        }
        if end > 0 {
            let mut last = [0u8];
            segment.file.read_exact_at(&mut last, end - 1)?;
            if last[0] != b'\n' {
                // A record torn by a crash: the next one starts on a line of its own.
                segment.write(b"\n")?;
            }
        }
        Ok(segment)
    }

    /// Writes `bytes` after the records, extending the file with zeros first when they do not
    /// fit in what is allocated. A write that fails (a full disk) may have put part of them in
    /// the file: the file is cut back to where it ended before, so that the next batch does not
    /// continue a torn line (the preallocation is given up; the next batch extends again).
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Where the records end: when appending, the file's own length, which another appender
        // or a `copytruncate` moves without segl knowing (its `end` is then not the file's).
        let before = if self.appending { self.file.metadata().map(|m| m.len()).ok() } else { Some(self.end) };
        let written = self.write_unchecked(bytes);
        if let (Err(_), Some(before)) = (&written, before) {
            self.cut_back(before);
        }
        written
    }

    /// Takes off what a failed write left after `before`; never lengthens the file.
    fn cut_back(&mut self, before: u64) {
        let len = match self.file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return tracing::error!("audit log: cannot read its length after a failed write ({e})"),
        };
        if len <= before {
            return;
        }
        match self.file.set_len(before) {
            Ok(()) if !self.appending => self.allocated = before,
            Ok(()) => {}
            Err(e) => tracing::error!(
                "audit log: cannot take a failed write back ({e}); the next record may follow a torn one"
            ),
        }
    }

    fn write_unchecked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let end = self.end + bytes.len() as u64;
        if self.appending {
            // Opened for appending: the kernel puts the bytes at the end.
            std::io::Write::write_all(&mut self.file, bytes)?;
            self.end = end;
            self.allocated = end;
            return Ok(());
        }
        if self.preallocate > 0 && end > self.allocated {
            let target = end.max(self.allocated + self.preallocate).next_multiple_of(4096);
            if let Err(e) = self.extend(target) {
                // A nearly full disk: the records themselves may still fit, as they would when
                // appending; the next batch tries to extend again.
                tracing::warn!(
                    "audit log: cannot preallocate {} KiB ahead ({e}); writing the records without",
                    (target - self.allocated) / 1024
                );
                self.allocated = self.file.metadata()?.len();
            }
        }
        self.file.write_all_at(bytes, self.end)?;
        self.end = end;
        self.allocated = self.allocated.max(end);
        Ok(())
    }

    /// Writes zeros from the allocated end up to `target`.
    fn extend(&mut self, target: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; ZEROS];
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(ZEROS as u64) as usize;
            self.file.write_all_at(&zeros[..n], at)?;
            at += n as u64;
        }
        self.allocated = target;
        Ok(())
    }

    /// Cuts the padding off: the file then holds the records only, and later ones are appended.
    fn close(&mut self) -> std::io::Result<()> {
        self.preallocate = 0;
        if self.allocated > self.end {
            self.file.set_len(self.end)?;
            self.allocated = self.end;
        }
        self.file.sync_all()
    }
}

/// The writer thread's state.
struct Writer {
    segment: Segment,
    jobs: crossbeam_channel::Receiver<Job>,
    durability: Durability,
    commit_delay: Duration,
    syncs: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    fn sync(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let synced = self.segment.file.sync_data();
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
            let mut close = false;
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
                    Job::Close(done) => {
                        must_sync = true;
                        close = true;
                        waiting.push(done);
                    }
                }
            }
            let mut result = Ok(());
            if !batch.is_empty() {
                result = self.segment.write(&batch).map_err(|e| AuditError::Write(e.to_string()));
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
            if result.is_ok() && close {
                result = self.segment.close().map_err(|e| AuditError::Write(e.to_string()));
            }
            if let Err(e) = &result {
                tracing::error!("{e}");
            }
            for done in waiting.drain(..) {
                let _ = done.send(result.clone());
            }
        }
        let _ = self.segment.close();
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
        let lines = json_lines(&path);
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

    fn json_lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
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
    fn a_record_submitted_ahead_is_on_disk_once_written_and_its_withdrawal_follows_it() {
        let path = temp("ahead");
        let log = AuditLog::open(&path, Durability::Sync).unwrap();
        let issued = AuditRecord {
            outcome: "issued".into(),
            issued: Some(AuditToken::new("idcard", "card-1")),
            ..Default::default()
        };
        let pending = log.submit(&issued).unwrap();
        let other = log.submit(&AuditRecord { outcome: "issued".into(), ..Default::default() }).unwrap();
        futures_lite::future::block_on(pending.written()).unwrap();
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert!(on_disk.lines().next().is_some_and(|l| l.contains("card-1")), "{on_disk}");
        // The signature failed: the same token, taken back, after everything submitted before.
        let withdrawn = issued.withdrawn("soapenv:Server".into(), "the HSM failed".into());
        futures_lite::future::block_on(log.record(&withdrawn)).unwrap();
        futures_lite::future::block_on(other.written()).unwrap();
        let lines = json_lines(&path);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["outcome"], "issued");
        assert_eq!(lines[2]["outcome"], "withdrawn");
        assert_eq!(lines[2]["issued"]["id"], "card-1");
        assert_eq!(lines[2]["fault"], "soapenv:Server");
        assert_eq!(lines[2]["reason"], "the HSM failed");
        // An issued record that never reached the file turns into a plain refusal instead.
        let source = AuditRecord {
            outcome: "issued".into(),
            issued: Some(AuditToken::new("idcard", "card-2")),
            key: Some("sts-signing".into()),
            message_id: Some("m-2".into()),
            ..Default::default()
        };
        let refused = source.not_issued("soapenv:Server".into(), "disk".into());
        assert_eq!(
            (refused.outcome.as_str(), refused.issued.is_none(), refused.key.is_none()),
            ("refused", true, true)
        );
    }

    #[test]
    fn async_records_arrive_after_a_flush() {
        let path = temp("async");
        let log = AuditLog::open(&path, Durability::Async).unwrap();
        futures_lite::future::block_on(log.record(&AuditRecord::default())).unwrap();
        log.flush_blocking().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    fn preallocated(path: &Path) -> AuditLog {
        let options =
            AuditOptions { durability: Durability::Sync, commit_delay: Duration::ZERO, preallocate: 1 << 16 };
        AuditLog::open_with(path, &options).unwrap()
    }

    fn record(log: &AuditLog, id: &str) {
        let rec = AuditRecord { issued: Some(AuditToken::new("idcard", id)), ..Default::default() };
        futures_lite::future::block_on(log.record(&rec)).unwrap();
    }

    fn ids(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap();
        records(&text)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["issued"]["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn a_preallocated_file_keeps_its_size_while_records_are_synced_and_is_cut_at_close() {
        let path = temp("prealloc");
        let log = preallocated(&path);
        record(&log, "a");
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size >= 1 << 16, "extended ahead: {size}");
        for i in 0..50 {
            record(&log, &format!("r{i}"));
        }
        // Each record was synced without the file's size changing.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert_eq!(ids(&path).len(), 51);
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(*raw.last().unwrap(), 0, "padding while open");
        log.close_blocking().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains('\0') && text.ends_with('\n'), "cut at close");
        assert_eq!(text.lines().count(), 51);
        // A record after the close is appended.
        record(&log, "late");
        assert_eq!(ids(&path).last().map(String::as_str), Some("late"));
    }

    #[test]
    fn records_beyond_the_preallocation_extend_the_file_again() {
        let path = temp("extend");
        let log = preallocated(&path);
        // ~150 bytes per record: 1,000 records need more than the 64 KiB preallocated at first.
        for i in 0..1000 {
            record(&log, &format!("{i:06}"));
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 1 << 16);
        let got = ids(&path);
        assert_eq!(got.len(), 1000);
        assert_eq!(got[999], "000999");
    }

    #[test]
    fn after_a_crash_the_next_start_goes_on_after_the_last_record() {
        let path = temp("crash");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // What a kill -9 leaves: synced records, then the preallocated zeros.
        let mut bytes = Vec::new();
        for id in ["before-1", "before-2"] {
            let rec = AuditRecord { issued: Some(AuditToken::new("idcard", id)), ..Default::default() };
            bytes.extend(serde_json::to_vec(&rec).unwrap());
            bytes.push(b'\n');
        }
        bytes.resize(200_000, 0);
        std::fs::write(&path, &bytes).unwrap();
        let log = preallocated(&path);
        record(&log, "after");
        assert_eq!(ids(&path), ["before-1", "before-2", "after"]);

        // A record torn mid-write: the next one starts on its own line.
        let torn = temp("torn");
        std::fs::create_dir_all(torn.parent().unwrap()).unwrap();
        let mut bytes = b"{\"issued\":{\"kind\":\"idcard\",\"id\":\"whole\"}}\n{\"iss".to_vec();
        bytes.resize(bytes.len() + 5000, 0);
        std::fs::write(&torn, &bytes).unwrap();
        let log = preallocated(&torn);
        record(&log, "next");
        let text = std::fs::read_to_string(&torn).unwrap();
        let lines: Vec<&str> = records(&text).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[1], "{\"iss");
        assert!(lines[2].contains("\"next\""));
    }

    #[test]
    fn records_behind_a_stretch_of_zeros_a_crash_left_stay_readable() {
        // A batch whose page never reached the disk reads as zeros between synced records.
        let path = temp("hole");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let line = |id: &str| {
            let rec = AuditRecord { issued: Some(AuditToken::new("idcard", id)), ..Default::default() };
            let mut bytes = serde_json::to_vec(&rec).unwrap();
            bytes.push(b'\n');
            bytes
        };
        let mut bytes = line("a");
        bytes.resize(4096, 0);
        bytes.extend(line("b"));
        bytes.resize(20_000, 0);
        std::fs::write(&path, &bytes).unwrap();
        let log = preallocated(&path);
        record(&log, "after");
        assert_eq!(ids(&path), ["a", "b", "after"]);
        log.close_blocking().unwrap();
        assert_eq!(ids(&path), ["a", "b", "after"]);
    }

    #[test]
    fn without_preallocation_records_are_appended_even_after_a_truncation_or_a_padded_crash() {
        // A preallocating run's crash left padding: appending starts after the records.
        let path = temp("append-after-padding");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let rec = AuditRecord { issued: Some(AuditToken::new("idcard", "old")), ..Default::default() };
        let mut bytes = serde_json::to_vec(&rec).unwrap();
        bytes.push(b'\n');
        bytes.resize(10_000, 0);
        std::fs::write(&path, &bytes).unwrap();
        let log = AuditLog::open(&path, Durability::Sync).unwrap();
        record(&log, "new");
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.contains(&0), "padding cut");
        assert_eq!(ids(&path), ["old", "new"]);
        // A copytruncate rotation: the next record starts the file, without a hole before it.
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        record(&log, "rotated");
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.contains(&0) && raw.starts_with(b"{"), "{}", String::from_utf8_lossy(&raw));
        assert_eq!(ids(&path), ["rotated"]);
    }

    #[test]
    fn without_preallocation_the_file_only_grows() {
        let path = temp("append");
        let log = AuditLog::open(&path, Durability::Sync).unwrap();
        record(&log, "one");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains('\0') && text.ends_with("}\n"), "{text}");
        // An existing file is continued, not overwritten (once the first writer has let go).
        drop(log);
        let started = std::time::Instant::now();
        let log = loop {
            match AuditLog::open(&path, Durability::Sync) {
                Ok(log) => break log,
                Err(e) if started.elapsed() > Duration::from_secs(5) => panic!("{e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        record(&log, "two");
        assert_eq!(ids(&path), ["one", "two"]);
    }

    #[test]
    fn a_second_writer_of_the_same_file_is_refused() {
        let path = temp("two-writers");
        let first = preallocated(&path);
        record(&first, "mine");
        // flock locks belong to the open file: a second open in this process is refused as a
        // second process would be.
        let options =
            AuditOptions { durability: Durability::Sync, commit_delay: Duration::ZERO, preallocate: 0 };
        let err = AuditLog::open_with(&path, &options).err().expect("refused");
        assert!(err.to_string().contains("another process"), "{err}");
        assert_eq!(ids(&path), ["mine"]);
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
