//! The key-operation audit trail: one JSON object per line, appended to `[hsm] audit_log`.
//! Kept behind [`record`] so the full audit log (a later piece of work) can take its place.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One key operation, successful or refused.
#[derive(Debug, Serialize)]
pub struct KeyAuditRecord<'a> {
    /// When (RFC 3339, UTC).
    pub time: String,
    /// `generate`, `csr`, `import-cert`, `activate`, `retire`, `export-cert`.
    pub operation: &'a str,
    /// Token label.
    pub token: &'a str,
    /// Key label.
    pub key: &'a str,
    /// `ok` or `refused`.
    pub outcome: &'a str,
    /// What changed, or why it was refused.
    pub detail: String,
    /// Who ran it: the login name of the operator (`SUDO_USER`, else `USER`), when known.
    pub operator: Option<String>,
    /// Host the command ran on.
    pub host: Option<String>,
    /// Process id of the command.
    pub pid: u32,
}

impl<'a> KeyAuditRecord<'a> {
    /// A record for `operation` on `key`, stamped now.
    pub fn new(operation: &'a str, token: &'a str, key: &'a str, outcome: &'a str, detail: String) -> Self {
        KeyAuditRecord {
            time: jiff::Timestamp::now().to_string(),
            operation,
            token,
            key,
            outcome,
            detail,
            operator: std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).ok(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()),
            pid: std::process::id(),
        }
    }
}

/// Appends `record` to the audit file (created with mode 0640 if absent). One `write` of one
/// line, so concurrent writers never interleave within a record.
pub fn record(path: &Path, record: &KeyAuditRecord<'_>) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new().append(true).create(true).mode(0o640).open(path)?;
    file.write_all(&line)
}
