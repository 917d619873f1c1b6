//! The cluster's replay store: one Redis connection per core, driven by a task on the core's
//! own executor, so that asking Redis never blocks it.
//!
//! Each message id is one `SET <prefix><key> 1 NX PX <remaining lifetime>`: Redis answers `OK`
//! when the id is new and nil when any node has recorded it already, atomically. Requests
//! queue their commands to the core's driver; the driver writes everything queued in one write
//! and reads the answers in order (pipelining), so a busy core makes about one round trip per
//! batch, not per request. A request waits at most `timeout_ms` for its answer; a connection
//! that stops answering is dropped and made again with back-off, and while a core has no
//! connection its requests do not wait at all. The RESP encoding and decoding is the
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
    /// The connection failed while the command was on it.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// Redis answered with an error (`-ERR …`, `-NOAUTH …`, `-READONLY …`).
    #[error("redis answered {0:?}")]
    Server(String),
    /// Redis answered something a `SET … NX` cannot answer.
    #[error("unexpected answer {0}")]
    Unexpected(String),
}

/// How long connecting (TCP, TLS and AUTH) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A connection whose answers stop for this long is dropped (the requests waiting on it have
/// long given up; this bounds how long a silent server holds the core's connection).
const STALL_LIMIT: Duration = Duration::from_secs(1);
/// Waits between failed connection attempts: from the first to the last, doubling.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));
/// A connection without commands for this long is asked a PING.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Most commands written in one batch.
const MAX_BATCH: usize = 256;

/// The connection settings, resolved once when segl starts (names are looked up then: a
/// running core never blocks on DNS).
#[derive(Clone)]
pub struct RedisSettings {
    /// The addresses to try, in order, with the name each came from.
    addresses: Vec<(SocketAddr, String)>,
    auth: Option<(Option<String>, String)>,
    database: u32,
    tls: Option<(futures_rustls::TlsConnector, rustls_pki_types::ServerName<'static>)>,
    prefix: String,
    timeout: Duration,
    /// What a request gets when Redis cannot answer.
    pub when_unavailable: WhenUnavailable,
}

impl std::fmt::Debug for RedisSettings {
    // The password stays out of every log and error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("addresses", &self.addresses)
            .field("auth", &self.auth.as_ref().map(|(user, _)| user))
            .field("database", &self.database)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisSettings {
    /// Resolves the addresses and reads the password and CA file.
    pub fn from_config(config: &RedisConfig) -> Result<Self, String> {
        let mut addresses = Vec::new();
        for name in &config.addresses {
            let resolved = std::net::ToSocketAddrs::to_socket_addrs(name.as_str())
                .map_err(|e| format!("replay.redis.addresses: cannot resolve {name}: {e}"))?;
            addresses.extend(resolved.map(|a| (a, name.clone())));
        }
        if addresses.is_empty() {
            return Err("replay.redis.addresses: no address resolved".into());
        }
        let auth = config
            .password()
            .map_err(|e| format!("replay.redis.password_file: {e}"))?
            .map(|password| (config.username.clone(), password));
        let tls = if config.tls { Some(tls_connector(config)?) } else { None };
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
        let names: Vec<&str> = self.addresses.iter().map(|(_, n)| n.as_str()).collect();
        names.join(", ")
    }
}

fn tls_connector(
    config: &RedisConfig,
) -> Result<(futures_rustls::TlsConnector, rustls_pki_types::ServerName<'static>), String> {
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
    let name = rustls_pki_types::ServerName::try_from(config.server_name().to_owned()).map_err(|_| {
        format!("replay.redis.tls_server_name: {:?} is not a DNS name or IP", config.server_name())
    })?;
    Ok((futures_rustls::TlsConnector::from(Arc::new(client)), name))
}

/// One command on its way to Redis, and where its answer goes (none: nobody waits for it).
struct Command {
    bytes: Vec<u8>,
    reply: Option<oneshot::Sender<Result<OwnedFrame, RedisError>>>,
    /// Already sent once on a connection that broke before it answered.
    resent: bool,
}

/// This core's Redis client.
pub struct CoreRedis {
    commands: mpsc::UnboundedSender<Command>,
    /// Why the core has no connection now (None: connected).
    down: Rc<RefCell<Option<String>>>,
    settings: Rc<RedisSettings>,
}

impl CoreRedis {
    /// Starts the core's driver task (on the calling executor) and returns the client.
    pub fn start(settings: RedisSettings, core: usize, health: Arc<ReplayHealth>) -> CoreRedis {
        let (commands, queue) = mpsc::unbounded();
        let down = Rc::new(RefCell::new(Some("not connected yet".to_owned())));
        let settings = Rc::new(settings);
        let driver = Driver { settings: settings.clone(), queue, down: down.clone(), core, health };
        glommio::spawn_local(driver.run()).detach();
        CoreRedis { commands, down, settings }
    }

    /// What a request gets when Redis cannot answer.
    pub fn when_unavailable(&self) -> WhenUnavailable {
        self.settings.when_unavailable
    }

    /// Records `key` for `ttl` unless any node recorded it already: `Ok(true)` when new.
    pub async fn set_if_new(&self, key: &super::Key, ttl: Duration) -> Result<bool, RedisError> {
        let name = self.key_name(key);
        let millis = ttl.as_millis().clamp(1, u64::MAX as u128).to_string();
        let answer = self.ask(&[b"SET", name.as_bytes(), b"1", b"NX", b"PX", millis.as_bytes()]).await?;
        match answer {
            OwnedFrame::SimpleString(s) if s == b"OK" => Ok(true),
            OwnedFrame::Null => Ok(false),
            OwnedFrame::Error(e) => Err(RedisError::Server(e)),
            other => Err(RedisError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Forgets `key` (a request that failed on segl's side may be resent with the same id).
    /// Nobody waits for the answer: if it is lost, the id stays until its card expires.
    pub fn delete(&self, key: &super::Key) {
        if self.down.borrow().is_some() {
            return;
        }
        let name = self.key_name(key);
        let _ = self.commands.unbounded_send(Command {
            bytes: encode(&[b"DEL", name.as_bytes()]),
            reply: None,
            resent: false,
        });
    }

    fn key_name(&self, key: &super::Key) -> String {
        let mut name = String::with_capacity(self.settings.prefix.len() + 64);
        name.push_str(&self.settings.prefix);
        for b in key {
            name.push(char::from(HEX[(b >> 4) as usize]));
            name.push(char::from(HEX[(b & 15) as usize]));
        }
        name
    }

    async fn ask(&self, args: &[&[u8]]) -> Result<OwnedFrame, RedisError> {
        if let Some(reason) = self.down.borrow().as_ref() {
            return Err(RedisError::NotConnected(reason.clone()));
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .unbounded_send(Command { bytes: encode(args), reply: Some(reply), resent: false })
            .map_err(|_| RedisError::NotConnected("the core's Redis driver stopped".into()))?;
        let timeout = self.settings.timeout;
        let waited = within(timeout, answer).await;
        match waited {
            None => Err(RedisError::Timeout(timeout.as_millis() as u64)),
            Some(Ok(answer)) => answer,
            Some(Err(_)) => Err(RedisError::ConnectionLost("the command was dropped".into())),
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

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
    down: Rc<RefCell<Option<String>>>,
    core: usize,
    health: Arc<ReplayHealth>,
}

impl Driver {
    async fn run(mut self) {
        let backoff = Cell::new(BACKOFF.0);
        // Commands a broken connection left unanswered, sent again once on the next one.
        let mut carried: Vec<Command> = Vec::new();
        loop {
            let connected = connect(&self.settings).await;
            let (mut conn, address) = match connected {
                Ok(c) => c,
                Err(reason) => {
                    fail(std::mem::take(&mut carried), &reason);
                    self.set_down(Some(reason));
                    // Commands queued before the core knew are answered now, not at their timeout.
                    self.fail_queued("not connected");
                    glommio::timer::sleep(backoff.get()).await;
                    backoff.set((backoff.get() * 2).min(BACKOFF.1));
                    continue;
                }
            };
            backoff.set(BACKOFF.0);
            if self.down.borrow().is_some() {
                self.health.connected(self.core, &address);
                self.set_down(None);
            }
            let since = std::time::Instant::now();
            let served = self.serve(&mut conn, std::mem::take(&mut carried)).await;
            // A server that closes connections as soon as they are made (out of clients, say)
            // is treated as one that does not answer: no reconnecting in a tight loop.
            let served = match served {
                Served::Broken { reason, unanswered } if since.elapsed() < BACKOFF.0 => {
                    Served::Stalled { reason, unanswered }
                }
                other => other,
            };
            match served {
                // Every client handle is gone: the core is stopping.
                Served::Stopped => return,
                // A connection that broke (Redis restarted, an idle connection closed by a
                // firewall) is made again at once, and what it left unanswered is sent once
                // more: no request fails for a connection that can be replaced. A resent SET
                // that had reached Redis answers nil (a request refused as a duplicate it is
                // not: the client sends a new message id), never OK for a replay.
                Served::Broken { reason, unanswered } => {
                    tracing::debug!(
                        core = self.core,
                        "replay store: connection to {address} lost ({reason})"
                    );
                    let (again, give_up): (Vec<_>, Vec<_>) = unanswered.into_iter().partition(|c| !c.resent);
                    fail(give_up, &reason);
                    carried = again.into_iter().map(|c| Command { resent: true, ..c }).collect();
                }
                // A server that stopped answering is not asked again before the back-off.
                Served::Stalled { reason, unanswered } => {
                    fail(unanswered, &reason);
                    self.set_down(Some(format!("{address}: {reason}")));
                    self.fail_queued("not connected");
                    glommio::timer::sleep(backoff.get()).await;
                }
            }
        }
    }

    fn set_down(&self, reason: Option<String>) {
        if let Some(r) = &reason {
            self.health.unavailable(self.core, r);
        }
        *self.down.borrow_mut() = reason;
    }

    fn fail_queued(&mut self, reason: &str) {
        while let Ok(command) = self.queue.try_recv() {
            if let Some(reply) = command.reply {
                let _ = reply.send(Err(RedisError::NotConnected(reason.to_owned())));
            }
        }
    }

    /// Writes what is queued (after `carried`), reads the answers in order, until the
    /// connection fails or every client handle is gone. An idle connection is checked with a
    /// PING every `IDLE_CHECK`, so that `/readyz` knows a lost server on a quiet core too.
    async fn serve(&mut self, conn: &mut Connection, carried: Vec<Command>) -> Served {
        let mut reader = Reader::new();
        let mut batch: Vec<Command> = carried;
        let mut out = Vec::with_capacity(4096);
        loop {
            if batch.is_empty() {
                match within(IDLE_CHECK, self.queue.next()).await {
                    Some(Some(command)) => batch.push(command),
                    Some(None) => return Served::Stopped,
                    None => batch.push(Command { bytes: encode(&[b"PING"]), reply: None, resent: true }),
                }
            }
            while batch.len() < MAX_BATCH {
                match self.queue.try_recv() {
                    Ok(command) => batch.push(command),
                    _ => break,
                }
            }
            out.clear();
            batch.iter().for_each(|c| out.extend_from_slice(&c.bytes));
            match within(STALL_LIMIT, conn.write_all(&out)).await {
                None => {
                    let reason = format!("write stalled for {} ms", STALL_LIMIT.as_millis());
                    return Served::Stalled { reason, unanswered: batch };
                }
                Some(Err(e)) => return Served::Broken { reason: e.to_string(), unanswered: batch },
                Some(Ok(())) => {}
            }
            let mut answered = 0;
            for command in batch.iter_mut() {
                match reader.frame(conn).await {
                    Ok(frame) => {
                        if let Some(reply) = command.reply.take() {
                            let _ = reply.send(Ok(frame));
                        }
                        answered += 1;
                    }
                    Err(ReadFailure::Stalled(reason)) => {
                        return Served::Stalled { reason, unanswered: batch.split_off(answered) }
                    }
                    Err(ReadFailure::Broken(reason)) => {
                        return Served::Broken { reason, unanswered: batch.split_off(answered) }
                    }
                }
            }
            batch.clear();
        }
    }
}

/// How a connection's service ended.
enum Served {
    /// The client handles are gone.
    Stopped,
    /// The connection broke (closed, reset, unreadable).
    Broken { reason: String, unanswered: Vec<Command> },
    /// The server stopped answering.
    Stalled { reason: String, unanswered: Vec<Command> },
}

/// Why no answer could be read.
enum ReadFailure {
    Broken(String),
    Stalled(String),
}

fn fail(commands: Vec<Command>, reason: &str) {
    for command in commands {
        if let Some(reply) = command.reply {
            let _ = reply.send(Err(RedisError::ConnectionLost(reason.to_owned())));
        }
    }
}

/// Connects to the first address that answers: TCP, TLS, AUTH and SELECT.
async fn connect(settings: &RedisSettings) -> Result<(Connection, String), String> {
    let mut errors = Vec::new();
    for (addr, name) in &settings.addresses {
        match within(CONNECT_TIMEOUT, connect_one(settings, *addr)).await {
            Some(Ok(conn)) => return Ok((conn, name.clone())),
            Some(Err(e)) => errors.push(format!("{name}: {e}")),
            None => errors.push(format!("{name}: no connection within {} ms", CONNECT_TIMEOUT.as_millis())),
        }
    }
    Err(errors.join("; "))
}

async fn connect_one(settings: &RedisSettings, addr: SocketAddr) -> Result<Connection, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    // Commands are written whole; Nagle would only add delay.
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut conn = match &settings.tls {
        None => Connection::Plain(tcp),
        Some((connector, name)) => Connection::Tls(Box::new(
            connector.connect(name.clone(), tcp).await.map_err(|e| format!("TLS: {e}"))?,
        )),
    };
    let mut setup = Vec::new();
    if let Some((user, password)) = &settings.auth {
        match user {
            Some(user) => setup.push(encode(&[b"AUTH", user.as_bytes(), password.as_bytes()])),
            None => setup.push(encode(&[b"AUTH", password.as_bytes()])),
        }
    }
    if settings.database != 0 {
        setup.push(encode(&[b"SELECT", settings.database.to_string().as_bytes()]));
    }
    let mut reader = Reader::new();
    for (i, command) in setup.iter().enumerate() {
        conn.write_all(command).await.map_err(|e| e.to_string())?;
        let answer = reader.frame(&mut conn).await.map_err(|e| match e {
            ReadFailure::Broken(r) | ReadFailure::Stalled(r) => r,
        })?;
        match answer {
            OwnedFrame::SimpleString(s) if s == b"OK" => {}
            // Redis's own error text (WRONGPASS, NOAUTH, ERR DB index) says what is wrong and
            // never echoes the password.
            OwnedFrame::Error(e) => {
                return Err(format!(
                    "{} refused: {e}",
                    if settings.auth.is_some() && i == 0 { "AUTH" } else { "SELECT" }
                ))
            }
            other => return Err(format!("unexpected answer to setup: {other:?}")),
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
            addresses: vec![("127.0.0.1:6379".parse().unwrap(), "127.0.0.1:6379".into())],
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
