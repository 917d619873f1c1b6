//! The generator's HTTP/1.1 client: one connection, plain TCP or TLS (rustls), sending a
//! Content-Length framed POST and reading exactly one response.
//!
//! Written here rather than taken from an HTTP client crate because a load generator must
//! decide itself when a connection is opened, reused or dropped; response heads are parsed by
//! `httparse`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Why an exchange with the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    /// Reading or writing failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a complete response.
    #[error("connection closed before a complete response ({got} bytes)")]
    Closed {
        /// Bytes of the response received.
        got: usize,
    },
    /// The response is not HTTP/1.1 the client understands.
    #[error("bad response: {0}")]
    BadResponse(String),
    /// The CA file for TLS is unusable.
    #[error("TLS CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS server name is not a DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// Where requests go.
#[derive(Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("addr", &self.addr).field("tls", &self.tls.is_some()).finish()
    }
}

impl Target {
    /// A plain-HTTP target.
    pub fn plain(addr: SocketAddr) -> Self {
        Target { addr, host: addr.to_string(), tls: None }
    }

    /// A TLS target trusting the CA certificates in `ca_file` (PEM), checking the server
    /// certificate against `server_name`.
    pub fn tls(addr: SocketAddr, ca_file: &Path, server_name: &str) -> Result<Self, ClientError> {
        let ca_err = |reason: String| ClientError::CaFile { path: ca_file.display().to_string(), reason };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| ca_err(e.to_string()))? {
            roots.add(cert.map_err(|e| ca_err(e.to_string()))?).map_err(|e| ca_err(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca_err("no certificates".into()));
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ca_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| ClientError::ServerName(server_name.to_owned()))?;
        Ok(Target {
            addr,
            host: server_name.to_owned(),
            tls: Some((TlsConnector::from(Arc::new(config)), name)),
        })
    }

    /// Whether requests go over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Opens a connection (and completes the TLS handshake).
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        let tcp = TcpStream::connect(self.addr).await.map_err(ClientError::Connect)?;
        // Requests are written whole; Nagle would only add delay.
        tcp.set_nodelay(true).map_err(ClientError::Connect)?;
        let stream: Box<dyn Stream> = match &self.tls {
            None => Box::new(tcp),
            Some((connector, name)) => {
                Box::new(connector.connect(name.clone(), tcp).await.map_err(ClientError::Handshake)?)
            }
        };
        Ok(Connection {
            stream,
            out: Vec::with_capacity(16 * 1024),
            inp: Vec::with_capacity(16 * 1024),
            used: false,
            body: 0..0,
        })
    }

    /// The request head for a POST of `body_len` bytes to `path`.
    pub fn head(&self, path: &str, body_len: usize, close: bool) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"Issue\"\r\nContent-Length: {body_len}\r\n{}\r\n",
            self.host,
            if close { "Connection: close\r\n" } else { "" }
        )
    }
}

/// A byte stream the client can use.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One open connection.
pub struct Connection {
    stream: Box<dyn Stream>,
    out: Vec<u8>,
    inp: Vec<u8>,
    used: bool,
    /// Where the last response's body is in `inp`.
    body: std::ops::Range<usize>,
}

/// What came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body length.
    pub body_len: usize,
    /// Whether the server keeps the connection open.
    pub keep_alive: bool,
}

impl Connection {
    /// Whether a request was sent on this connection before.
    pub fn is_reused(&self) -> bool {
        self.used
    }

    /// Sends one request and reads its response.
    pub async fn exchange(&mut self, head: &[u8], body: &[u8]) -> Result<Reply, ClientError> {
        self.used = true;
        self.out.clear();
        self.out.extend_from_slice(head);
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        self.inp.clear();
        self.body = 0..0;
        let (head_len, status, content_length, keep_alive) = loop {
            if read_more(&mut self.stream, &mut self.inp).await? == 0 {
                return Err(ClientError::Closed { got: self.inp.len() });
            }
            if let Some(head) = parse_head(&self.inp)? {
                break head;
            }
        };
        let total = head_len + content_length;
        while self.inp.len() < total {
            if read_more(&mut self.stream, &mut self.inp).await? == 0 {
                return Err(ClientError::Closed { got: self.inp.len() });
            }
        }
        self.body = head_len..total;
        Ok(Reply { status, body_len: content_length, keep_alive })
    }

    /// The body of the last response (empty before the first, or after a failed exchange).
    pub fn body(&self) -> &[u8] {
        self.inp.get(self.body.clone()).unwrap_or_default()
    }
}

async fn read_more(stream: &mut Box<dyn Stream>, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < 8192 {
        buf.reserve(16 * 1024);
    }
    stream.read_buf(buf).await
}

/// Head length, status, Content-Length and keep-alive, once the head is complete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, usize, bool)>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ClientError::BadResponse(e.to_string())),
    };
    let status = response.code.unwrap_or(0);
    let mut content_length = None;
    let mut keep_alive = response.version == Some(1);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
            content_length = Some(v.ok_or_else(|| ClientError::BadResponse("bad Content-Length".into()))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ClientError::BadResponse("Transfer-Encoding is not supported".into()));
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !h.value.eq_ignore_ascii_case(b"close");
        }
    }
    let content_length =
        content_length.ok_or_else(|| ClientError::BadResponse("no Content-Length".into()))?;
    Ok(Some((head_len, status, content_length, keep_alive)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads_are_parsed_with_framing_and_keep_alive() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Len").unwrap(), None);
        let h = parse_head(b"HTTP/1.1 503 Busy\r\nContent-Length: 12\r\nRetry-After: 1\r\n\r\nxx").unwrap();
        assert_eq!(h, Some((57, 503, 12, true)));
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!(h.map(|h| h.3), Some(false));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
