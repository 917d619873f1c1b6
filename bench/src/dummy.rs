//! A trivial HTTP/1.1 server that answers every request with a fixed 200 of a given size: the
//! target against which the generator's own ceiling is measured, so that a capacity figure is
//! known to be about segl and not about the client.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves until the process ends.
pub async fn serve(listen: SocketAddr, body_bytes: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let response = fixed_response(body_bytes);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = connection(stream, response).await;
        });
    }
}

/// The one response the trivial server sends: 200 with `body_bytes` of body.
pub fn fixed_response(body_bytes: usize) -> &'static [u8] {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {body_bytes}\r\n\r\n"
    )
    .into_bytes();
    response.resize(response.len() + body_bytes, b'x');
    // Made once per process and kept for its life.
    Box::leak(response.into_boxed_slice())
}

/// Answers every request on one connection with `response` until the client closes it.
pub async fn connection(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    response: &'static [u8],
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
    loop {
        // Read one request: head, then Content-Length bytes of body.
        let (head_len, body_len, close) = loop {
            if let Some(head) = parse_request(&buf) {
                break head;
            }
            if buf.capacity() - buf.len() < 8192 {
                buf.reserve(16 * 1024);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < head_len + body_len {
            if buf.capacity() - buf.len() < 8192 {
                buf.reserve(16 * 1024);
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        buf.drain(..head_len + body_len);
        stream.write_all(response).await?;
        stream.flush().await?;
        if close {
            return Ok(());
        }
    }
}

fn parse_request(buf: &[u8]) -> Option<(usize, usize, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let mut body_len = 0;
    let mut close = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(h.value).ok()?.trim().parse().ok()?;
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    Some((head_len, body_len, close))
}
