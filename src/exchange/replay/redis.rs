//! The cluster's replay store: one Redis connection per core, driven by a task on the core's
//! own executor, so that asking Redis never blocks it.
//!
//! Each message id is one `SET <prefix><key> <token> NX PX <remaining lifetime> GET`, where the
//! token is unique to the request: Redis sets the key and answers nil when the id is new, and
//! answers the value it holds when any node recorded the id already, atomically. A request that
//! finds its own token (its command was sent again after a connection broke, and the first
//! send had landed) counts as new. Forgetting an id deletes the key only while it holds the
//! request's own token (a short Lua script), so it never removes another node's record.
//!
//! Requests queue their commands to the core's driver; the driver writes everything queued in
//! one write and reads the answers in order (pipelining), so a busy core makes about one round
//! trip per batch, not per request. A request waits at most `timeout_ms` for its answer; a
//! command whose request gave up before it was written is not written, and one that set its
//! key after its request gave up (and was refused) is undone. A connection that stops
//! answering, or a server that refuses writes (`READONLY` after a failover, `OOM`, `MISCONF`,
//! `LOADING`, `NOAUTH`), is dropped and made again with back-off, trying the addresses in order
//! for one that is a primary (`ROLE`); while a core has no connection its requests do not wait
//! at all, and at most `MAX_QUEUED` commands wait for one. The RESP encoding and decoding is the
//! `redis-protocol` crate's.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::{mpsc, oneshot};
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::net::TcpStream;
use redis_protocol::resp2::types::{BorrowedFrame, OwnedFrame};
use rustls_pki_types::ServerName;

use super::ReplayHealth;
use crate::config::{RedisConfig, WhenUnavailable};

/// Why Redis could not answer a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The core has no connection (the last attempt's error follows).
    #[error("not connected ({0})")]
    NotConnected(String),
    /// No answer within the request's wait.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// Too many commands already wait for the core's connection.
    #[error("{0} commands already wait for Redis")]
    Busy(usize),
    /// The connection failed while the command was on it.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Redis answered with an error (`-ERR …`, `-READONLY …`, `-OOM …`).
    #[error("redis answered {0:?}")]
    Server(String),
    /// Redis answered something a `SET … NX GET` cannot answer.
    #[error("unexpected answer {0}")]
    Unexpected(String),
}

/// How long connecting (TCP, TLS, AUTH, SELECT and ROLE) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A connection whose answers stop for this long is dropped (the requests waiting on it have
/// long given up; this bounds how long a silent server holds the core's connection).
const STALL_LIMIT: Duration = Duration::from_secs(1);
/// Waits between failed connection attempts: from the first to the last, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));
/// A connection without commands for this long is asked a PING.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Most commands written in one batch.
const MAX_BATCH: usize = 1024;
/// Most commands waiting for the core's connection; beyond, a request does not queue (it is
/// refused or checked locally at once, as when Redis is down) rather than wait in a backlog
/// that would outlive its deadline.
const MAX_QUEUED: usize = 4096;

/// Redis errors that say the server will not take writes on this connection now: the core
/// counts as unavailable and connects again (to the next address, when this one is a replica).
const REFUSING_WRITES: [&str; 7] =
    ["READONLY", "MASTERDOWN", "NOAUTH", "LOADING", "MISCONF", "OOM", "NOPERM"];

/// Deletes `KEYS[1]` only while it holds `ARGV[1]`, the token of the request that set it.
const DELETE_OWN: &[u8] =
    b"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";

/// One address to connect to.
#[derive(Clone)]
struct Address {
    socket: SocketAddr,
    /// As configured, for log lines.
    name: String,
    /// The name its TLS certificate must carry.
    server_name: Option<ServerName<'static>>,
}

/// The connection settings, resolved once when segl starts (names are looked up then: a
/// running core never blocks on DNS).
#[derive(Clone)]
pub struct RedisSettings {
    addresses: Vec<Address>,
    auth: Option<(Option<String>, String)>,
    database: u32,
    tls: Option<futures_rustls::TlsConnector>,
    prefix: String,
    timeout: Duration,
    /// What a request gets when Redis cannot answer.
    pub when_unavailable: WhenUnavailable,
}

impl std::fmt::Debug for RedisSettings {
    // The password stays out of every log and error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("addresses", &self.describe())
            .field("auth", &self.auth.as_ref().map(|(user, _)| user))
            .field("database", &self.database)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// Resolves the addresses and reads the password and CA file.
    pub fn from_config(config: &RedisConfig) -> Result<Self, String> {
        let tls = if config.tls { Some(tls_connector(config)?) } else { None };
        let mut addresses = Vec::new();
        for name in &config.addresses {
            // With TLS each address's certificate carries its own host name, unless the
            // configuration names one for all.
            let server_name = match &tls {
                None => None,
                Some(_) => Some(server_name(config.server_name_of(name))?),
            };
            let resolved = std::net::ToSocketAddrs::to_socket_addrs(name.as_str())
                .map_err(|e| format!("replay.redis.addresses: cannot resolve {name}: {e}"))?;
            addresses.extend(resolved.map(|socket| Address {
                socket,
                name: name.clone(),
                server_name: server_name.clone(),
            }));
        }
        if addresses.is_empty() {
            return Err("replay.redis.addresses: no address resolved".into());
        }
        let auth = config
            .password()
            .map_err(|e| format!("replay.redis.password_file: {e}"))?
            .map(|password| (config.username.clone(), password));
        Ok(RedisSettings {
            addresses,
            auth,
            database: config.database,
            tls,
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            when_unavailable: config.when_unavailable,
        })
    }

    /// The addresses, for log lines.
    pub fn describe(&self) -> String {
        let mut names: Vec<&str> = self.addresses.iter().map(|a| a.name.as_str()).collect();
        names.dedup();
        names.join(", ")
    }
}

fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_owned())
        .map_err(|_| format!("replay.redis: {name:?} is not a DNS name or IP address for TLS"))
}

fn tls_connector(config: &RedisConfig) -> Result<futures_rustls::TlsConnector, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let Some(ca) = &config.tls_ca else { return Err("replay.redis.tls_ca is not set".into()) };
    let ca_err = |e: String| format!("replay.redis.tls_ca {}: {e}", ca.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| ca_err(format!("{e:?}")))? {
        roots.add(cert.map_err(|e| ca_err(format!("{e:?}")))?).map_err(|e| ca_err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_err("no certificates".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(futures_rustls::TlsConnector::from(Arc::new(client)))
}

/// One command on its way to Redis.
struct Command {
    bytes: Vec<u8>,
    /// Where its answer goes (none: nobody waits for it).
    reply: Option<oneshot::Sender<Result<OwnedFrame, RedisError>>>,
    /// For a SET whose request may give up: its key name and token, to take the key back if
    /// the SET lands after the request was refused for want of an answer.
    undo: Option<(String, String)>,
    /// Already sent once on a connection that broke before it answered.
    resent: bool,
    /// For a write of an id accepted from the node's memory during an outage, its token: an
    /// answer holding another token means another node accepted the same id meanwhile (a
    /// replay that passed).
    backfill: Option<Vec<u8>>,
}

impl Command {
    fn unanswered(bytes: Vec<u8>) -> Command {
        Command { bytes, reply: None, undo: None, resent: false, backfill: None }
    }

    /// Whether its request gave up before it was written (then it is not written at all).
    fn abandoned(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| r.is_canceled())
    }
}

/// This core's Redis client.
pub struct CoreRedis {
    commands: mpsc::UnboundedSender<Command>,
    /// Commands sent to the driver and not yet taken by it.
    queued: Rc<Cell<usize>>,
    /// Why the core has no connection now (None: connected).
    down: Rc<RefCell<Option<String>>>,
    settings: Rc<RedisSettings>,
    /// Tokens: this core's random prefix and a counter.
    instance: String,
    issued: Cell<u64>,
    /// Ids accepted from the node's memory while Redis could not answer, written to Redis when
    /// the core connects again.
    backlog: Rc<RefCell<Backlog>>,
}

/// Ids waiting to be written to Redis: key name, token, and when the id expires.
type Backlog = std::collections::VecDeque<(String, String, std::time::Instant)>;

/// Most ids a core keeps for writing to Redis after an outage (beyond, the newest are not
/// kept: they stay in the node's memory only).
const MAX_BACKLOG: usize = 100_000;

impl CoreRedis {
    /// Starts the core's driver task (on the calling executor) and returns the client.
    pub fn start(settings: RedisSettings, core: usize, health: Arc<ReplayHealth>) -> CoreRedis {
        let (commands, queue) = mpsc::unbounded();
        let down = Rc::new(RefCell::new(Some("connecting".to_owned())));
        let queued = Rc::new(Cell::new(0));
        let settings = Rc::new(settings);
        let backlog = Rc::new(RefCell::new(Backlog::new()));
        let driver = Driver {
            settings: settings.clone(),
            queue,
            queued: queued.clone(),
            down: down.clone(),
            backlog: backlog.clone(),
            core,
            health,
        };
        glommio::spawn_local(driver.run()).detach();
        let mut random = [0u8; 8];
        // Without randomness the tokens are still unique per core and process start.
        if aws_lc_rs::rand::fill(&mut random).is_err() {
            random = (std::process::id() as u64).to_be_bytes();
        }
        let instance = format!("{}-{core}", hex(&random));
        CoreRedis { commands, queued, down, settings, instance, issued: Cell::new(0), backlog }
    }

    /// What a request gets when Redis cannot answer.
    pub fn when_unavailable(&self) -> WhenUnavailable {
        self.settings.when_unavailable
    }

    /// A token for one request's SET, unique across the cluster.
    pub fn next_token(&self) -> u64 {
        let n = self.issued.get() + 1;
        self.issued.set(n);
        n
    }

    fn token_text(&self, token: u64) -> String {
        format!("{}-{token}", self.instance)
    }

    /// Records `key` for `ttl` with `token` unless another request recorded it already:
    /// `Ok(true)` when new (or recorded by this very request before a connection broke).
    pub async fn set_if_new(&self, key: &super::Key, token: u64, ttl: Duration) -> Result<bool, RedisError> {
        let name = self.key_name(key);
        let value = self.token_text(token);
        let millis = ttl.as_millis().clamp(1, u64::MAX as u128).to_string();
        let set =
            encode(&[b"SET", name.as_bytes(), value.as_bytes(), b"NX", b"PX", millis.as_bytes(), b"GET"]);
        // A SET that lands after its request was refused takes the id back; one whose request
        // fell back to the node's memory keeps it (that request was served).
        let refuse = self.settings.when_unavailable == WhenUnavailable::Refuse;
        let undo = refuse.then(|| (name, value.clone()));
        match self.ask(set, undo).await? {
            OwnedFrame::Null => Ok(true),
            OwnedFrame::BulkString(held) => Ok(held == value.as_bytes()),
            OwnedFrame::Error(e) => Err(RedisError::Server(e)),
            other => Err(RedisError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Keeps `key`, accepted from the node's memory while Redis could not answer, for writing
    /// to Redis (with `token`, for `ttl`) when the core connects again: so that after the outage
    /// a replay of it to another node is refused too.
    pub fn write_later(&self, key: &super::Key, token: u64, ttl: Duration) {
        let mut backlog = self.backlog.borrow_mut();
        if backlog.len() < MAX_BACKLOG {
            let expires = std::time::Instant::now() + ttl;
            backlog.push_back((self.key_name(key), self.token_text(token), expires));
        }
    }

    /// Forgets `key` if it still holds `token` (a request that failed on segl's side may be
    /// resent with the same id). Nobody waits for the answer: if it is lost, the id stays until
    /// its card expires.
    pub fn delete(&self, key: &super::Key, token: u64) {
        let name = self.key_name(key);
        let value = self.token_text(token);
        self.backlog.borrow_mut().retain(|(n, v, _)| !(n == &name && v == &value));
        if self.down.borrow().is_some() || self.queued.get() >= MAX_QUEUED {
            return;
        }
        let command = delete_own(&name, &value);
        self.queued.set(self.queued.get() + 1);
        let _ = self.commands.unbounded_send(Command::unanswered(command));
    }

    fn key_name(&self, key: &super::Key) -> String {
        format!("{}{}", self.settings.prefix, hex(key))
    }

    async fn ask(&self, bytes: Vec<u8>, undo: Option<(String, String)>) -> Result<OwnedFrame, RedisError> {
        if let Some(reason) = self.down.borrow().as_ref() {
            return Err(RedisError::NotConnected(reason.clone()));
        }
        if self.queued.get() >= MAX_QUEUED {
            return Err(RedisError::Busy(self.queued.get()));
        }
        let (reply, answer) = oneshot::channel();
        self.queued.set(self.queued.get() + 1);
        self.commands
            .unbounded_send(Command { bytes, reply: Some(reply), undo, resent: false, backfill: None })
            .map_err(|_| RedisError::NotConnected("the core's Redis driver stopped".into()))?;
        let timeout = self.settings.timeout;
        match within(timeout, answer).await {
            None => Err(RedisError::Timeout(timeout.as_millis() as u64)),
            Some(Ok(answer)) => answer,
            Some(Err(_)) => Err(RedisError::ConnectionLost("the command was dropped".into())),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[(b >> 4) as usize]));
        out.push(char::from(HEX[(b & 15) as usize]));
    }
    out
}

/// Deletes the key `name` while it holds `value`.
fn delete_own(name: &str, value: &str) -> Vec<u8> {
    encode(&[b"EVAL", DELETE_OWN, b"1", name.as_bytes(), value.as_bytes()])
}

/// A command as RESP: an array of bulk strings.
fn encode(args: &[&[u8]]) -> Vec<u8> {
    let parts: Vec<BorrowedFrame> = args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
    let frame = BorrowedFrame::Array(&parts);
    let mut buf = vec![0; frame.encode_len(false)];
    // The buffer has the frame's own length, the only cause of an encoding error.
    let written = redis_protocol::resp2::encode::encode_borrowed(&mut buf, &frame, false).unwrap_or(0);
    buf.truncate(written);
    buf
}

/// The core's connection: plain TCP or TLS over it.
enum Connection {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Connection {
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Connection::Plain(s) => s.write_all(bytes).await,
            Connection::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Connection::Plain(s) => s.read(buf).await,
            Connection::Tls(s) => s.read(buf).await,
        }
    }
}

/// Answers read from a connection, one RESP frame at a time.
struct Reader {
    buf: Vec<u8>,
    start: usize,
}

impl Reader {
    fn new() -> Self {
        Reader { buf: Vec::with_capacity(4096), start: 0 }
    }

    /// The next frame, reading more as needed; gives up after `STALL_LIMIT` without one.
    async fn frame(&mut self, conn: &mut Connection) -> Result<OwnedFrame, ReadFailure> {
        loop {
            match redis_protocol::resp2::decode::decode(&self.buf[self.start..]) {
                Ok(Some((frame, used))) => {
                    self.start += used;
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(e) => return Err(ReadFailure::Broken(format!("unreadable answer: {e:?}"))),
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let filled = self.buf.len();
            self.buf.resize(filled + 4096, 0);
            let read = within(STALL_LIMIT, conn.read(&mut self.buf[filled..])).await;
            let n = match read {
                None => {
                    return Err(ReadFailure::Stalled(format!("no answer for {} ms", STALL_LIMIT.as_millis())))
                }
                Some(Err(e)) => return Err(ReadFailure::Broken(e.to_string())),
                Some(Ok(0)) => return Err(ReadFailure::Broken("closed by the server".into())),
                Some(Ok(n)) => n,
            };
            self.buf.truncate(filled + n);
        }
    }
}

/// `fut`'s output, or None after `limit`.
async fn within<T>(limit: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// The task that owns the core's connection.
struct Driver {
    settings: Rc<RedisSettings>,
    queue: mpsc::UnboundedReceiver<Command>,
    queued: Rc<Cell<usize>>,
    down: Rc<RefCell<Option<String>>>,
    backlog: Rc<RefCell<Backlog>>,
    core: usize,
    health: Arc<ReplayHealth>,
}

/// How a connection's service ended.
enum Served {
    /// The client handles are gone.
    Stopped,
    /// The connection broke (closed, reset, unreadable): made again at once.
    Broken { reason: String, unanswered: Vec<Command> },
    /// The server stopped answering, or refuses writes: made again after the back-off.
    Unavailable { reason: String, unanswered: Vec<Command> },
}

/// Why no answer could be read.
enum ReadFailure {
    Broken(String),
    Stalled(String),
}

impl Driver {
    async fn run(mut self) {
        let mut backoff = BACKOFF.0;
        // Commands a broken connection left unanswered, sent again once on the next one.
        let mut carried: Vec<Command> = Vec::new();
        loop {
            let (mut conn, address) = match connect(&self.settings).await {
                Ok(c) => c,
                Err(reason) => {
                    fail(std::mem::take(&mut carried), &reason);
                    self.unavailable(reason, &mut backoff).await;
                    continue;
                }
            };
            // The connection answered its setup (ROLE included): the server is there.
            backoff = BACKOFF.0;
            if self.down.borrow().is_some() {
                *self.down.borrow_mut() = None;
                self.health.connected(self.core, &address);
            }
            carried.extend(self.backfill(true));
            let since = std::time::Instant::now();
            let served = self.serve(&mut conn, std::mem::take(&mut carried)).await;
            match served {
                // Every client handle is gone: the core is stopping.
                Served::Stopped => return,
                // A connection that broke (Redis restarted, an idle connection closed by a
                // firewall) is made again at once, and what it left unanswered is sent once
                // more: a SET finds its own token if its first send landed, a delete deletes
                // only its own. A server that closes connections as soon as they are made is
                // treated as unavailable: no reconnecting in a tight loop.
                Served::Broken { reason, unanswered } if since.elapsed() >= BACKOFF.0 => {
                    tracing::debug!(
                        core = self.core,
                        "replay store: connection to {address} lost ({reason})"
                    );
                    let (again, give_up): (Vec<_>, Vec<_>) = unanswered.into_iter().partition(|c| !c.resent);
                    fail(give_up, &reason);
                    carried = again.into_iter().map(|c| Command { resent: true, ..c }).collect();
                }
                Served::Broken { reason, unanswered } | Served::Unavailable { reason, unanswered } => {
                    fail(unanswered, &reason);
                    self.unavailable(format!("{address}: {reason}"), &mut backoff).await;
                }
            }
        }
    }

    /// The ids accepted from the node's memory while Redis could not answer, as SETs for the
    /// connection (those that have not expired meanwhile); logged when they waited for a new
    /// connection.
    fn backfill(&self, reconnected: bool) -> Vec<Command> {
        let now = std::time::Instant::now();
        let mut backlog = self.backlog.borrow_mut();
        let commands: Vec<Command> = backlog
            .drain(..)
            .filter(|(_, _, expires)| *expires > now)
            .map(|(name, value, expires)| {
                let millis = expires.duration_since(now).as_millis().max(1).to_string();
                let bytes = encode(&[
                    b"SET",
                    name.as_bytes(),
                    value.as_bytes(),
                    b"NX",
                    b"PX",
                    millis.as_bytes(),
                    b"GET",
                ]);
                Command { backfill: Some(value.into_bytes()), ..Command::unanswered(bytes) }
            })
            .collect();
        if reconnected && !commands.is_empty() {
            tracing::info!(
                core = self.core,
                ids = commands.len(),
                "replay store: writing the ids accepted during the outage"
            );
        }
        commands
    }

    /// Marks the core unavailable for `reason`, answers what waits, and sleeps the back-off.
    async fn unavailable(&mut self, reason: String, backoff: &mut Duration) {
        self.health.unavailable(self.core, &reason);
        *self.down.borrow_mut() = Some(reason);
        // Commands queued before the core knew are answered now, not at their timeout.
        while let Ok(command) = self.queue.try_recv() {
            self.queued.set(self.queued.get().saturating_sub(1));
            if let Some(reply) = command.reply {
                let _ = reply.send(Err(RedisError::NotConnected("not connected".into())));
            }
        }
        glommio::timer::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(BACKOFF.1);
    }

    /// The next command from the queue, without waiting.
    fn take(&mut self) -> Option<Command> {
        let command = self.queue.try_recv().ok()?;
        self.queued.set(self.queued.get().saturating_sub(1));
        Some(command)
    }

    /// Writes what is queued (after `carried`), reads the answers in order, until the
    /// connection fails or every client handle is gone. An idle connection is checked with a
    /// PING every `IDLE_CHECK`, so that `/readyz` knows a lost server on a quiet core too.
    async fn serve(&mut self, conn: &mut Connection, carried: Vec<Command>) -> Served {
        let mut reader = Reader::new();
        let mut batch: Vec<Command> = carried;
        let mut undo: Vec<Command> = Vec::new();
        let mut out = Vec::with_capacity(4096);
        loop {
            batch.append(&mut undo);
            // Ids a request accepted from memory while this connection was slow to answer.
            if !self.backlog.borrow().is_empty() {
                batch.extend(self.backfill(false));
            }
            if batch.is_empty() {
                match within(IDLE_CHECK, self.queue.next()).await {
                    Some(Some(command)) => {
                        self.queued.set(self.queued.get().saturating_sub(1));
                        batch.push(command);
                    }
                    Some(None) => return Served::Stopped,
                    None => batch.push(Command::unanswered(encode(&[b"PING"]))),
                }
            }
            while batch.len() < MAX_BATCH {
                match self.take() {
                    Some(command) => batch.push(command),
                    None => break,
                }
            }
            // A request that gave up before its command was written gets nothing written.
            batch.retain(|c| !c.abandoned());
            if batch.is_empty() {
                continue;
            }
            out.clear();
            batch.iter().for_each(|c| out.extend_from_slice(&c.bytes));
            match within(STALL_LIMIT, conn.write_all(&out)).await {
                None => {
                    let reason = format!("write stalled for {} ms", STALL_LIMIT.as_millis());
                    return Served::Unavailable { reason, unanswered: batch };
                }
                Some(Err(e)) => return Served::Broken { reason: e.to_string(), unanswered: batch },
                Some(Ok(())) => {}
            }
            let mut refusing: Option<String> = None;
            for answered in 0..batch.len() {
                let frame = match reader.frame(conn).await {
                    Ok(frame) => frame,
                    Err(ReadFailure::Stalled(reason)) => {
                        return Served::Unavailable { reason, unanswered: batch.split_off(answered) }
                    }
                    Err(ReadFailure::Broken(reason)) => {
                        return Served::Broken { reason, unanswered: batch.split_off(answered) }
                    }
                };
                if let OwnedFrame::Error(e) = &frame {
                    if REFUSING_WRITES.iter().any(|code| e.starts_with(code)) {
                        refusing.get_or_insert_with(|| format!("Redis refuses writes: {e}"));
                    } else if e.starts_with("ERR syntax error") {
                        // Redis before 7.0 does not take NX and GET together.
                        refusing
                            .get_or_insert_with(|| format!("{e} (SET … NX GET needs Redis 7.0 or later)"));
                    }
                }
                let command = &mut batch[answered];
                let conflict = match (&command.backfill, &frame) {
                    // A write sent again after a broken connection may find its own token.
                    (Some(token), OwnedFrame::BulkString(held)) => held != token,
                    _ => false,
                };
                if conflict {
                    // Another node accepted the same message id while this one served it from
                    // its memory: one replay passed during the outage.
                    metrics::counter!(crate::telemetry::REPLAY_STORE_CONFLICTS).increment(1);
                    tracing::warn!(core = self.core, "replay store: a message id accepted here during the outage was accepted by another node too");
                }
                let set_by_it = match (&frame, &command.undo) {
                    (OwnedFrame::Null, Some(_)) => true,
                    (OwnedFrame::BulkString(held), Some((_, token))) => held == token.as_bytes(),
                    _ => false,
                };
                let delivered = match command.reply.take() {
                    Some(reply) => reply.send(Ok(frame)).is_ok(),
                    None => true,
                };
                if !delivered && set_by_it {
                    // Its request was refused for want of this answer: take the id back, so
                    // that the client's retry is not refused as a replay.
                    if let Some((name, token)) = command.undo.take() {
                        undo.push(Command::unanswered(delete_own(&name, &token)));
                    }
                }
            }
            batch.clear();
            if let Some(reason) = refusing {
                // Answered, but the server will not take writes: the undo commands could not
                // run either, and the id they would free expires with its card.
                return Served::Unavailable { reason, unanswered: Vec::new() };
            }
        }
    }
}

fn fail(commands: Vec<Command>, reason: &str) {
    for command in commands {
        if let Some(reply) = command.reply {
            let _ = reply.send(Err(RedisError::ConnectionLost(reason.to_owned())));
        }
    }
}

/// Connects to the first address that answers and is a primary: TCP, TLS, AUTH, SELECT, ROLE.
async fn connect(settings: &RedisSettings) -> Result<(Connection, String), String> {
    let mut errors = Vec::new();
    for address in &settings.addresses {
        match within(CONNECT_TIMEOUT, connect_one(settings, address)).await {
            Some(Ok(conn)) => return Ok((conn, address.name.clone())),
            Some(Err(e)) => errors.push(format!("{}: {e}", address.name)),
            None => errors.push(format!(
                "{}: no connection within {} ms",
                address.name,
                CONNECT_TIMEOUT.as_millis()
            )),
        }
    }
    Err(errors.join("; "))
}

async fn connect_one(settings: &RedisSettings, address: &Address) -> Result<Connection, String> {
    let tcp = TcpStream::connect(address.socket).await.map_err(|e| e.to_string())?;
    // Commands are written whole; Nagle would only add delay.
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = match (&settings.tls, &address.server_name) {
        (Some(connector), Some(name)) => Connection::Tls(Box::new(
            connector.connect(name.clone(), tcp).await.map_err(|e| format!("TLS: {e}"))?,
        )),
        _ => Connection::Plain(tcp),
    };
    let mut setup: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some((user, password)) = &settings.auth {
        match user {
            Some(user) => setup.push(("AUTH", encode(&[b"AUTH", user.as_bytes(), password.as_bytes()]))),
            None => setup.push(("AUTH", encode(&[b"AUTH", password.as_bytes()]))),
        }
    }
    if settings.database != 0 {
        setup.push(("SELECT", encode(&[b"SELECT", settings.database.to_string().as_bytes()])));
    }
    // A replica (a primary demoted by a failover) refuses writes: the next address is tried.
    setup.push(("ROLE", encode(&[b"ROLE"])));
    let mut reader = Reader::new();
    for (what, command) in &setup {
        conn.write_all(command).await.map_err(|e| e.to_string())?;
        let answer = reader.frame(&mut conn).await.map_err(|e| match e {
            ReadFailure::Broken(r) | ReadFailure::Stalled(r) => r,
        })?;
        match (*what, answer) {
            ("ROLE", OwnedFrame::Array(parts)) => match parts.first() {
                Some(OwnedFrame::BulkString(role)) if role == b"master" => {}
                Some(OwnedFrame::BulkString(role)) => {
                    return Err(format!("a {} (writes go to the primary)", String::from_utf8_lossy(role)))
                }
                _ => return Err("unexpected answer to ROLE".into()),
            },
            (_, OwnedFrame::SimpleString(s)) if s == b"OK" => {}
            // Redis's own error text (WRONGPASS, NOAUTH, ERR DB index) says what is wrong and
            // never echoes the password.
            (what, OwnedFrame::Error(e)) => return Err(format!("{what} refused: {e}")),
            (what, other) => return Err(format!("unexpected answer to {what}: {other:?}")),
        }
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&[b"SET", b"k", b"1", b"NX", b"PX", b"1500"]),
            b"*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nPX\r\n$4\r\n1500\r\n"
        );
        // Binary-safe: a password with CR LF stays one argument.
        assert_eq!(encode(&[b"AUTH", b"a\r\nb"]), b"*2\r\n$4\r\nAUTH\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn the_password_is_not_in_debug_output() {
        let settings = RedisSettings {
            addresses: vec![Address {
                socket: "127.0.0.1:6379".parse().unwrap(),
                name: "127.0.0.1:6379".into(),
                server_name: None,
            }],
            auth: Some((Some("segl".into()), "s3cret-password".into())),
            database: 0,
            tls: None,
            prefix: "p:".into(),
            timeout: Duration::from_millis(50),
            when_unavailable: WhenUnavailable::Refuse,
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("segl"), "{shown}");
    }
}
