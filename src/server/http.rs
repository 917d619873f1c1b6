//! Minimal HTTP/1.1 server side for SOAP over HTTP: Content-Length framed requests, keep-alive,
//! pipelining, hard limits on head and body size, and a per-request deadline against slow clients.
//!
//! Deliberately unsupported: chunked request bodies (answered 411), any other
//! `Transfer-Encoding`, and trailers. SOAP clients send `Content-Length`, and refusing the rest
//! keeps the request-smuggling surface at zero.
//!
//! Timeouts: every request (head and body) must arrive in full within
//! [`HttpLimits::idle_timeout`], counted from the moment the server starts waiting for it; the
//! same span bounds writing each response. On a read timeout the connection is closed without a
//! response, also when part of a request had arrived: a 408 would only be useful to clients that
//! are by definition not keeping up, and writing it could block on them once more.

use std::future::Future;
use std::io;
use std::io::Write as _;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// Most headers accepted in one request; more is answered 400.
const MAX_HEADERS: usize = 32;

/// Largest step in which a body buffer is zero-filled before reading into it, so that a client
/// announcing a large body without sending it does not make us touch that much memory.
const BODY_READ_STEP: usize = 64 * 1024;

/// Size and time limits applied to every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest request head (request line and headers, including the blank line) accepted.
    pub max_header_bytes: usize,
    /// Largest request body accepted, checked against `Content-Length` before reading the body.
    pub max_body_bytes: usize,
    /// Time allowed for one whole request to arrive, and for one response to be written.
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// One complete HTTP request as handed to a [`Handler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Request method, as sent (methods are case-sensitive).
    pub method: String,
    /// Request target without the query string.
    pub path: String,
    /// `Content-Type` header value, trimmed.
    pub content_type: Option<String>,
    /// `SOAPAction` header value, trimmed but with any surrounding quotes kept.
    pub soap_action: Option<String>,
    /// Request body; empty when the request had none.
    pub body: Bytes,
    /// Who sent it.
    pub connection: ConnectionInfo,
    /// When its last byte had been read.
    pub received: std::time::Instant,
}

/// What is known about a connection before any request on it: the peer and, with TLS client
/// authentication, its certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer's address.
    pub peer: Option<std::net::SocketAddr>,
    /// The client certificate (DER) presented in the TLS handshake.
    pub client_certificate: Option<std::sync::Arc<[u8]>>,
}

/// A response to write back; framing headers are added by the connection layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (200..=599; anything else is sent as 500).
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// Response body.
    pub body: Vec<u8>,
    /// Extra headers such as `Allow` or `Retry-After`; framing headers here are dropped.
    pub headers: Vec<(&'static str, String)>,
    /// Close the connection after this response (e.g. while draining for shutdown).
    pub close: bool,
}

impl Response {
    /// A response without extra headers.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self { status, content_type, body: body.into(), headers: Vec::new(), close: false }
    }
}

/// Why a request was refused at the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request head did not fit in `limit` bytes.
    HeadTooLarge {
        /// The configured head limit in bytes.
        limit: usize,
    },
    /// The announced body is larger than `limit` bytes.
    BodyTooLarge {
        /// The configured body limit in bytes.
        limit: usize,
    },
    /// The body is not framed by a `Content-Length` (chunked, or a POST without one).
    LengthRequired,
    /// The request is malformed; the text says how.
    BadRequest(String),
}

impl Refusal {
    /// The HTTP status conventionally used for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::HeadTooLarge { .. } => 431,
            Refusal::BodyTooLarge { .. } => 413,
            Refusal::LengthRequired => 411,
            Refusal::BadRequest(_) => 400,
        }
    }
}

/// Application side of a connection.
pub trait Handler {
    /// Serves one complete request.
    fn handle(&self, request: Request) -> impl Future<Output = Response>;
    /// Builds the response for a request refused at the HTTP layer (the connection is closed
    /// after it); `path` is the request's, when its head could be read.
    fn refuse(&self, refusal: Refusal, path: Option<&str>) -> Response;
}

/// Serves requests on one connection until the peer closes, asks to close, a refusal, an idle timeout, or an I/O error.
///
/// Must run on a glommio executor: the deadlines use its timer. Returns `Ok` when the connection
/// ended for a protocol reason (including refusals and read timeouts, which are logged at debug
/// level) and `Err` for socket errors and write timeouts.
pub async fn serve_connection<S, H>(
    stream: S,
    info: &ConnectionInfo,
    limits: &HttpLimits,
    handler: &H,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    H: Handler,
{
    let mut conn = Connection::new(stream, limits, info.clone());
    loop {
        let deadline = Instant::now().checked_add(limits.idle_timeout);
        match conn.read_request(deadline).await {
            Ok(Next::Request { request, persistence }) => {
                let head_only = request.method == "HEAD";
                let response = handler.handle(request).await;
                let persistence = if response.close { Persistence::Close } else { persistence };
                conn.write_response(&response, persistence, head_only)
                    .await
                    .inspect_err(|e| debug!(error = %e, "http: writing response failed"))?;
                if persistence == Persistence::Close {
                    conn.close().await;
                    return Ok(());
                }
            }
            Ok(Next::Done) => return Ok(()),
            Ok(Next::Refused(refusal, path)) => {
                debug!(?refusal, "http: request refused, closing connection");
                let response = handler.refuse(refusal, path.as_deref());
                conn.write_response(&response, Persistence::Close, false)
                    .await
                    .inspect_err(|e| debug!(error = %e, "http: writing refusal failed"))?;
                conn.close().await;
                return Ok(());
            }
            Err(e) => {
                debug!(error = %e, "http: read failed, closing connection");
                return Err(e);
            }
        }
    }
}

/// Whether the connection stays open after a response, and how that is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persistence {
    /// HTTP/1.1 default: nothing to announce.
    KeepAlive,
    /// HTTP/1.0 client that asked for keep-alive: must be confirmed explicitly.
    KeepAliveAnnounced,
    /// Send `Connection: close` and close.
    Close,
}

/// What reading the next request produced.
enum Next {
    Request {
        request: Request,
        persistence: Persistence,
    },
    /// Refused, with the request's path when its head could be read.
    Refused(Refusal, Option<String>),
    /// The connection ended without a (complete) request; the reason is already logged.
    Done,
}

/// Result of one deadline-bounded read.
enum Read {
    Data(usize),
    Eof,
    TimedOut,
}

/// The parts of a request head we keep, copied out so the read buffer can be reused.
struct Head {
    len: usize,
    method: String,
    path: String,
    http10: bool,
    content_type: Option<String>,
    soap_action: Option<String>,
    content_length: Option<u64>,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

struct Connection<'a, S> {
    stream: S,
    limits: &'a HttpLimits,
    /// Bytes read but not yet consumed live in `buf[start..end]`; its length is the head limit,
    /// so a head that does not fit is exactly a head that is too large.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Reused for encoding responses so each one goes out in a single write.
    out: Vec<u8>,
    /// Handed to every request on this connection.
    info: ConnectionInfo,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Connection<'a, S> {
    fn new(stream: S, limits: &'a HttpLimits, info: ConnectionInfo) -> Self {
        Self {
            stream,
            limits,
            buf: vec![0; limits.max_header_bytes.max(1)],
            start: 0,
            end: 0,
            out: Vec::new(),
            info,
        }
    }

    fn pending(&self) -> usize {
        self.end - self.start
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    async fn read_request(&mut self, deadline: Option<Instant>) -> io::Result<Next> {
        let head = loop {
            if self.pending() > 0 {
                match parse_head(&self.buf[self.start..self.end]) {
                    Ok(Some(head)) => break head,
                    Ok(None) => {}
                    Err(message) => return Ok(Next::Refused(Refusal::BadRequest(message), None)),
                }
            }
            if self.pending() >= self.limits.max_header_bytes {
                return Ok(Next::Refused(
                    Refusal::HeadTooLarge { limit: self.limits.max_header_bytes },
                    None,
                ));
            }
            if self.end == self.buf.len() {
                // Only the unconsumed tail (a partial pipelined request) moves, never a whole buffer.
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let end = self.end;
            match read_before(&mut self.stream, &mut self.buf[end..], deadline).await? {
                Read::Data(n) => self.end += n,
                Read::Eof => {
                    if self.pending() > 0 {
                        debug!(
                            received = self.pending(),
                            "http: peer closed in the middle of a request head"
                        );
                    }
                    return Ok(Next::Done);
                }
                Read::TimedOut => {
                    if self.pending() > 0 {
                        debug!(received = self.pending(), "http: request head not received in time, closing");
                    } else {
                        debug!("http: idle connection timed out, closing");
                    }
                    return Ok(Next::Done);
                }
            }
        };
        let path = Some(head.path.clone());
        if head.len > self.limits.max_header_bytes {
            return Ok(Next::Refused(Refusal::HeadTooLarge { limit: self.limits.max_header_bytes }, path));
        }

        let length = match (head.transfer_encoding, head.content_length) {
            (true, _) => return Ok(Next::Refused(Refusal::LengthRequired, path)),
            (false, Some(length)) => length,
            // Without framing a POST's body would be read as the next request.
            (false, None) if matches!(head.method.as_str(), "POST" | "PUT" | "PATCH") => {
                return Ok(Next::Refused(Refusal::LengthRequired, path));
            }
            (false, None) => 0,
        };
        let length = match usize::try_from(length) {
            Ok(length) if length <= self.limits.max_body_bytes => length,
            _ => return Ok(Next::Refused(Refusal::BodyTooLarge { limit: self.limits.max_body_bytes }, path)),
        };
        self.consume(head.len);

        let body = if length == 0 {
            Bytes::new()
        } else {
            let buffered = self.pending().min(length);
            let mut body = Vec::with_capacity(length);
            body.extend_from_slice(&self.buf[self.start..self.start + buffered]);
            self.consume(buffered);
            if buffered < length && head.expect_continue && !head.http10 {
                write_before(&mut self.stream, b"HTTP/1.1 100 Continue\r\n\r\n", deadline).await?;
            }
            let mut filled = buffered;
            while filled < length {
                if filled == body.len() {
                    body.resize(length.min(filled + BODY_READ_STEP), 0);
                }
                // Reading straight into the body leaves any pipelined request in the socket.
                match read_before(&mut self.stream, &mut body[filled..], deadline).await? {
                    Read::Data(n) => filled += n,
                    Read::Eof => {
                        debug!(
                            received = filled,
                            expected = length,
                            "http: peer closed in the middle of a request body"
                        );
                        return Ok(Next::Done);
                    }
                    Read::TimedOut => {
                        debug!(
                            received = filled,
                            expected = length,
                            "http: request body not received in time, closing"
                        );
                        return Ok(Next::Done);
                    }
                }
            }
            Bytes::from(body)
        };

        let persistence = if head.close || (head.http10 && !head.keep_alive) {
            Persistence::Close
        } else if head.http10 {
            Persistence::KeepAliveAnnounced
        } else {
            Persistence::KeepAlive
        };
        Ok(Next::Request {
            request: Request {
                method: head.method,
                path: head.path,
                content_type: head.content_type,
                soap_action: head.soap_action,
                body,
                connection: self.info.clone(),
                received: Instant::now(),
            },
            persistence,
        })
    }

    async fn write_response(
        &mut self,
        response: &Response,
        persistence: Persistence,
        head_only: bool,
    ) -> io::Result<()> {
        self.out.clear();
        encode_response(&mut self.out, response, persistence, head_only)?;
        let deadline = Instant::now().checked_add(self.limits.idle_timeout);
        write_before(&mut self.stream, &self.out, deadline).await?;
        // A large one-off response should not stay pinned to an idle connection.
        if self.out.capacity() > 64 * 1024 {
            self.out = Vec::new();
        }
        Ok(())
    }

    /// Sends FIN now rather than whenever the caller drops the stream.
    async fn close(&mut self) {
        let deadline = Instant::now().checked_add(self.limits.idle_timeout);
        match before(deadline, self.stream.close()).await {
            Some(Ok(())) => {}
            Some(Err(e)) => debug!(error = %e, "http: closing connection failed"),
            None => debug!("http: closing connection timed out"),
        }
    }
}

/// Runs `future` unless `deadline` passes first (`None`); no deadline means wait forever.
async fn before<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    let Some(deadline) = deadline else {
        return Some(future.await);
    };
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return None;
    }
    glommio::timer::timeout(remaining, async { Ok(future.await) }).await.ok()
}

async fn read_before<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Option<Instant>,
) -> io::Result<Read> {
    loop {
        match before(deadline, stream.read(buf)).await {
            None => return Ok(Read::TimedOut),
            Some(Ok(0)) => return Ok(Read::Eof),
            Some(Ok(n)) => return Ok(Read::Data(n)),
            Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Some(Err(e)) => return Err(e),
        }
    }
}

async fn write_before<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    deadline: Option<Instant>,
) -> io::Result<()> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match before(deadline, write).await {
        Some(result) => result,
        None => Err(io::Error::new(io::ErrorKind::TimedOut, "peer did not accept the response in time")),
    }
}

/// Parses a request head; `Ok(None)` means more bytes are needed.
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(format!("more than {MAX_HEADERS} headers")),
        Err(e) => return Err(format!("malformed request head: {e}")),
    };
    let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version) else {
        return Err("incomplete request line".to_owned());
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);

    let mut head = Head {
        len,
        method: method.to_owned(),
        path: path.to_owned(),
        http10: version == 0,
        content_type: None,
        soap_action: None,
        content_length: None,
        transfer_encoding: false,
        close: false,
        keep_alive: false,
        expect_continue: false,
    };
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value.trim_ascii();
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(parse_content_length(value, head.content_length)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                head.close |= token.eq_ignore_ascii_case(b"close");
                head.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("content-type") {
            set_once(&mut head.content_type, name, value)?;
        } else if name.eq_ignore_ascii_case("soapaction") {
            set_once(&mut head.soap_action, name, value)?;
        }
    }
    Ok(Some(head))
}

/// Stores a header that must appear at most once and be UTF-8.
fn set_once(slot: &mut Option<String>, name: &str, value: &[u8]) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("duplicate {name} header"));
    }
    let value = std::str::from_utf8(value).map_err(|_| format!("{name} is not UTF-8"))?;
    *slot = Some(value.to_owned());
    Ok(())
}

/// Parses one `Content-Length` field value (possibly a list, RFC 9110 §8.6), requiring every
/// value, including one seen in an earlier header, to agree.
fn parse_content_length(value: &[u8], previous: Option<u64>) -> Result<u64, String> {
    let mut length = previous;
    for item in value.split(|&b| b == b',') {
        let item = item.trim_ascii();
        // u64::from_str would also accept a leading '+'.
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err("invalid Content-Length".to_owned());
        }
        let parsed = std::str::from_utf8(item)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| "Content-Length out of range".to_owned())?;
        match length {
            Some(seen) if seen != parsed => return Err("conflicting Content-Length".to_owned()),
            _ => length = Some(parsed),
        }
    }
    length.ok_or_else(|| "invalid Content-Length".to_owned())
}

fn encode_response(
    out: &mut Vec<u8>,
    response: &Response,
    persistence: Persistence,
    head_only: bool,
) -> io::Result<()> {
    let status = if (200..=599).contains(&response.status) {
        response.status
    } else {
        debug!(status = response.status, "http: handler returned an invalid status, sending 500");
        500
    };
    out.reserve(256 + response.body.len());
    write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        reason_phrase(status),
        response.content_type,
        response.body.len()
    )?;
    for (name, value) in &response.headers {
        if is_framing_header(name) || value.bytes().any(|b| b == b'\r' || b == b'\n') {
            debug!(header = name, "http: dropping unsafe response header");
            continue;
        }
        write!(out, "{name}: {value}\r\n")?;
    }
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAliveAnnounced => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    // A response to HEAD carries the GET headers but never a body.
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    Ok(())
}

fn is_framing_header(name: &str) -> bool {
    ["content-length", "content-type", "transfer-encoding", "connection"]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        // The reason phrase is optional (RFC 9112 §4); an empty one is valid.
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::net::{SocketAddr, TcpStream};
    use std::rc::Rc;
    use std::sync::OnceLock;

    const LIMITS: HttpLimits =
        HttpLimits { max_header_bytes: 1024, max_body_bytes: 4096, idle_timeout: Duration::from_secs(5) };
    const SHORT_TIMEOUT: Duration = Duration::from_millis(200);

    struct Echo;

    impl Handler for Echo {
        async fn handle(&self, request: Request) -> Response {
            if request.method == "GET" {
                assert!(request.body.is_empty());
                let mut response = Response::new(405, "text/plain", "POST only");
                response.headers.push(("Allow", "POST".to_owned()));
                return response;
            }
            let mut response = Response::new(
                200,
                "text/plain",
                format!("{} {} {}", request.method, request.path, request.body.len()),
            );
            if let Some(ct) = request.content_type {
                response.headers.push(("X-Content-Type", ct));
            }
            if let Some(action) = request.soap_action {
                response.headers.push(("X-Soap-Action", action));
            }
            if request.body.starts_with(b"echo:") {
                response.body = request.body.to_vec();
            }
            response
        }

        fn refuse(&self, refusal: Refusal, _path: Option<&str>) -> Response {
            Response::new(refusal.status(), "text/plain", format!("{refusal:?}"))
        }
    }

    struct Servers {
        normal: SocketAddr,
        short_timeout: SocketAddr,
    }

    /// One executor thread for the whole test binary, with a listener per timeout setting.
    fn servers() -> &'static Servers {
        static SERVERS: OnceLock<Servers> = OnceLock::new();
        SERVERS.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            glommio::LocalExecutorBuilder::default()
                .name("http-test")
                .spawn(move || async move {
                    let normal = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    let short = glommio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                    tx.send(Servers {
                        normal: normal.local_addr().expect("addr"),
                        short_timeout: short.local_addr().expect("addr"),
                    })
                    .expect("send addresses");
                    let short_limits = HttpLimits { idle_timeout: SHORT_TIMEOUT, ..LIMITS };
                    let a = glommio::spawn_local(accept_loop(normal, LIMITS));
                    let b = glommio::spawn_local(accept_loop(short, short_limits));
                    a.await;
                    b.await;
                })
                .expect("spawn executor");
            rx.recv().expect("server addresses")
        })
    }

    async fn accept_loop(listener: glommio::net::TcpListener, limits: HttpLimits) {
        let limits = Rc::new(limits);
        loop {
            let Ok(stream) = listener.accept().await else {
                continue;
            };
            let limits = limits.clone();
            glommio::spawn_local(async move {
                let _ = serve_connection(stream, &ConnectionInfo::default(), &limits, &Echo).await;
            })
            .detach();
        }
    }

    struct Client {
        stream: TcpStream,
        buf: Vec<u8>,
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
        fn text(&self) -> &str {
            std::str::from_utf8(&self.body).expect("utf-8 body")
        }
    }

    impl Client {
        fn connect(addr: SocketAddr) -> Self {
            let stream = TcpStream::connect(addr).expect("connect");
            stream.set_read_timeout(Some(Duration::from_secs(2))).expect("read timeout");
            Self { stream, buf: Vec::new() }
        }
        fn normal() -> Self {
            Self::connect(servers().normal)
        }
        fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).expect("write");
        }
        fn fill(&mut self) -> usize {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).expect("read");
            self.buf.extend_from_slice(&chunk[..n]);
            n
        }
        fn reply(&mut self) -> Reply {
            loop {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut parsed = httparse::Response::new(&mut headers);
                if let httparse::Status::Complete(len) = parsed.parse(&self.buf).expect("parse") {
                    let headers: Vec<(String, String)> = parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_owned(), String::from_utf8(h.value.to_vec()).expect("utf-8")))
                        .collect();
                    let status = parsed.code.expect("status");
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .expect("content-length")
                        .1
                        .parse()
                        .expect("length");
                    while self.buf.len() < len + length {
                        assert!(self.fill() > 0, "eof in response body");
                    }
                    let body = self.buf[len..len + length].to_vec();
                    self.buf.drain(..len + length);
                    return Reply { status, headers, body };
                }
                assert!(self.fill() > 0, "eof in response head");
            }
        }
        /// True when the server has closed (EOF or reset), false on a read timeout.
        fn closed_by_server(&mut self) -> bool {
            assert!(self.buf.is_empty(), "unexpected extra bytes: {:?}", self.buf);
            let mut byte = [0u8; 1];
            match self.stream.read(&mut byte) {
                Ok(0) => true,
                Ok(_) => panic!("unexpected byte after response"),
                Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            }
        }
    }

    fn post(path: &str, body: &str, extra: &str) -> Vec<u8> {
        format!(
            "POST {path} HTTP/1.1\r\nHost: sts\r\nContent-Type: text/xml\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn post_with_body_gets_200_and_headers_pass_through() {
        let mut client = Client::normal();
        client.send(&post(
            "/sts/services/SecurityTokenService?wsdl=1",
            "<Envelope/>",
            "SOAPAction: \"http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue\"\r\n",
        ));
        let reply = client.reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "POST /sts/services/SecurityTokenService 11");
        assert_eq!(reply.header("content-type"), Some("text/plain"));
        assert_eq!(reply.header("x-content-type"), Some("text/xml"));
        assert_eq!(
            reply.header("x-soap-action"),
            Some("\"http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue\"")
        );
        assert_eq!(reply.header("connection"), None);
    }

    #[test]
    fn keep_alive_serves_two_requests() {
        let mut client = Client::normal();
        client.send(&post("/a", "echo:first", ""));
        assert_eq!(client.reply().text(), "echo:first");
        client.send(&post("/b", "echo:second", ""));
        assert_eq!(client.reply().text(), "echo:second");
    }

    #[test]
    fn pipelined_requests_answered_in_order() {
        let mut client = Client::normal();
        let mut bytes = post("/a", "echo:one", "");
        bytes.extend_from_slice(b"GET /wsdl HTTP/1.1\r\nHost: sts\r\n\r\n");
        bytes.extend(post("/c", "echo:three", ""));
        client.send(&bytes);
        assert_eq!(client.reply().text(), "echo:one");
        let second = client.reply();
        assert_eq!(second.status, 405);
        assert_eq!(second.header("allow"), Some("POST"));
        assert_eq!(client.reply().text(), "echo:three");
    }

    #[test]
    fn connection_close_closes_after_response() {
        let mut client = Client::normal();
        client.send(&post("/a", "x", "Connection: Close\r\n"));
        let reply = client.reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(client.closed_by_server());
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let mut client = Client::normal();
        client.send(b"POST /a HTTP/1.0\r\nContent-Length: 1\r\n\r\nx");
        assert_eq!(client.reply().header("connection"), Some("close"));
        assert!(client.closed_by_server());

        let mut client = Client::normal();
        let request = b"POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";
        client.send(request);
        assert_eq!(client.reply().header("connection"), Some("keep-alive"));
        client.send(request);
        assert_eq!(client.reply().status, 200);
    }

    #[test]
    fn body_over_limit_refused_without_reading_it() {
        let mut client = Client::normal();
        // Only the head is sent: a 413 proves the server answered without waiting for the body.
        client.send(b"POST /a HTTP/1.1\r\nHost: sts\r\nContent-Length: 4097\r\n\r\n");
        let reply = client.reply();
        assert_eq!(reply.status, 413);
        assert_eq!(reply.text(), "BodyTooLarge { limit: 4096 }");
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(client.closed_by_server());
    }

    #[test]
    fn body_at_limit_accepted() {
        let mut client = Client::normal();
        client.send(&post("/a", &"x".repeat(4096), ""));
        assert_eq!(client.reply().text(), "POST /a 4096");
    }

    #[test]
    fn head_over_limit_gets_431() {
        let mut client = Client::normal();
        // Exactly the limit and no blank line: the server consumes everything it was sent, so
        // closing does not reset the connection before the reply is read.
        let mut head = b"POST /a HTTP/1.1\r\nX-Pad: ".to_vec();
        head.resize(LIMITS.max_header_bytes, b'a');
        client.send(&head);
        let reply = client.reply();
        assert_eq!(reply.status, 431);
        assert!(client.closed_by_server());
    }

    #[test]
    fn chunked_gets_411() {
        let mut client = Client::normal();
        client.send(b"POST /a HTTP/1.1\r\nHost: sts\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(client.reply().status, 411);
        assert!(client.closed_by_server());
    }

    #[test]
    fn post_without_length_gets_411() {
        let mut client = Client::normal();
        client.send(b"POST /a HTTP/1.1\r\nHost: sts\r\n\r\n");
        assert_eq!(client.reply().status, 411);
    }

    #[test]
    fn bad_content_length_gets_400() {
        for bad in [
            "Content-Length: abc\r\n",
            "Content-Length: +5\r\n",
            "Content-Length: 5, 6\r\n",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
            "Content-Length: 99999999999999999999999\r\n",
        ] {
            let mut client = Client::normal();
            client.send(format!("POST /a HTTP/1.1\r\nHost: sts\r\n{bad}\r\n").as_bytes());
            let reply = client.reply();
            assert_eq!(reply.status, 400, "{bad:?}");
            assert!(client.closed_by_server());
        }
    }

    #[test]
    fn agreeing_duplicate_content_length_accepted() {
        let mut client = Client::normal();
        client.send(b"POST /a HTTP/1.1\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nab");
        assert_eq!(client.reply().text(), "POST /a 2");
    }

    #[test]
    fn garbage_gets_400() {
        for garbage in [
            &b"\x00\x01\x02garbage\xff\xfe\r\n\r\n"[..],
            b"POST /a HTTP/9.9\r\n\r\n",
            b"POST /a HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            let mut client = Client::normal();
            client.send(garbage);
            assert_eq!(client.reply().status, 400, "{garbage:?}");
            assert!(client.closed_by_server());
        }
        // The server survived all of it.
        let mut client = Client::normal();
        client.send(&post("/a", "x", ""));
        assert_eq!(client.reply().status, 200);
    }

    #[test]
    fn too_many_headers_gets_400() {
        let mut client = Client::normal();
        let mut head = "GET / HTTP/1.1\r\n".to_owned();
        for i in 0..=MAX_HEADERS {
            head.push_str(&format!("X-{i}: v\r\n"));
        }
        head.push_str("\r\n");
        client.send(head.as_bytes());
        assert_eq!(client.reply().status, 400);
    }

    #[test]
    fn expect_continue_gets_interim_response() {
        let mut client = Client::normal();
        client.send(b"POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n");
        let mut interim = Vec::new();
        while !interim.ends_with(b"\r\n\r\n") {
            assert!(client.fill() > 0);
            interim = client.buf.clone();
        }
        assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        client.buf.clear();
        client.send(b"echo:body");
        assert_eq!(client.reply().text(), "echo:body");
    }

    #[test]
    fn stalled_head_disconnected_after_idle_timeout() {
        let mut client = Client::connect(servers().short_timeout);
        client.send(b"POST /a HTTP/1.1\r\nHost: sts\r\n");
        let started = Instant::now();
        assert!(client.closed_by_server());
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn trickling_client_disconnected_by_total_deadline() {
        let mut client = Client::connect(servers().short_timeout);
        client.send(b"POST /a HTTP/1.1\r\nX-Pad: ");
        client.stream.set_read_timeout(Some(Duration::from_millis(1))).expect("read timeout");
        // Each byte arrives well within the timeout, so only a whole-request deadline ends this.
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(20));
            if client.stream.write_all(b"a").is_err() || client.closed_by_server() {
                return;
            }
        }
        panic!("server kept a trickling client for 2 s");
    }

    #[test]
    fn idle_keep_alive_connection_closed_silently() {
        let mut client = Client::connect(servers().short_timeout);
        client.send(&post("/a", "x", ""));
        assert_eq!(client.reply().status, 200);
        assert!(client.closed_by_server());
    }

    #[test]
    fn content_length_parsing() {
        assert_eq!(parse_content_length(b"0", None), Ok(0));
        assert_eq!(parse_content_length(b"12 , 12", None), Ok(12));
        assert_eq!(parse_content_length(b"12", Some(12)), Ok(12));
        assert!(parse_content_length(b"12", Some(13)).is_err());
        assert!(parse_content_length(b"", None).is_err());
        assert!(parse_content_length(b"1,", None).is_err());
        assert!(parse_content_length(b"-1", None).is_err());
        assert!(parse_content_length(b"0x10", None).is_err());
    }

    #[test]
    fn response_encoding() {
        let mut out = Vec::new();
        let mut response = Response::new(503, "text/xml; charset=utf-8", "busy");
        response.headers.push(("Retry-After", "1".to_owned()));
        response.headers.push(("Content-Length", "99".to_owned()));
        response.headers.push(("X-Evil", "a\r\nSet-Cookie: x".to_owned()));
        encode_response(&mut out, &response, Persistence::Close, false).expect("encode");
        assert_eq!(
            out,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml; charset=utf-8\r\n\
              Content-Length: 4\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy"
        );
        out.clear();
        encode_response(&mut out, &Response::new(42, "text/plain", "x"), Persistence::KeepAlive, true)
            .expect("encode");
        assert_eq!(
            out,
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n"
        );
    }
}
