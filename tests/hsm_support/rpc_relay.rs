//! A relay between p11-kit's RPC client (in segl) and `p11-kit server` that can cut one reply
//! short after its header and close the connection.
//!
//! This is fault injection, not a stand-in: the client and the server on either side are the
//! real ones. It produces on demand what real parts do only by chance: a server that dies
//! between writing a reply's 12-byte header and its body (its two writes), while other calls
//! share the socket. p11-kit's client then leaves every other call in flight waiting forever
//! (the reader that failed does not reset the reply code it read, nor wake the others). That is
//! the freeze this test suite once caught at random when it killed the server under load.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// p11-kit's RPC framing: a big-endian call code, options length and data length.
const HEADER: usize = 12;

/// The relay; it stops accepting when dropped.
pub struct RpcRelay {
    /// The socket segl's client module connects to.
    pub socket: PathBuf,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Cut the next reply sent while at least two other calls are in flight on its connection.
    armed: AtomicBool,
    /// Replies cut so far.
    cuts: AtomicUsize,
    stop: AtomicBool,
}

impl RpcRelay {
    /// Listens on `socket` and relays each connection to the server listening on `upstream`.
    pub fn start(socket: &Path, upstream: &Path) -> RpcRelay {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the relay's socket");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let shared = Arc::new(Shared::default());
        let (accepting, upstream) = (shared.clone(), upstream.to_owned());
        std::thread::spawn(move || {
            while !accepting.stop.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = UnixStream::connect(&upstream) {
                            relay(client, server, accepting.clone());
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        RpcRelay { socket: socket.to_owned(), shared }
    }

    /// The relay's address for `P11_KIT_SERVER_ADDRESS`.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    /// Cuts the next reply that leaves other calls waiting, after its header, and closes that
    /// connection (connections made later are relayed whole).
    pub fn cut_next_reply(&self) {
        self.shared.armed.store(true, Ordering::Release);
    }

    /// Replies cut so far.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::Acquire)
    }
}

impl Drop for RpcRelay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Relays one connection: requests as they come, replies message by message.
fn relay(client: UnixStream, server: UnixStream, shared: Arc<Shared>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else { return };
    let requests = in_flight.clone();
    std::thread::spawn(move || {
        let _ = forward_requests(client_reader, server_writer, &requests);
    });
    std::thread::spawn(move || {
        let _ = forward_replies(server, client, &in_flight, &shared);
    });
}

/// Reads one message (header and body) from `from`.
fn message(from: &mut UnixStream) -> std::io::Result<([u8; HEADER], Vec<u8>)> {
    let mut header = [0u8; HEADER];
    from.read_exact(&mut header)?;
    let len =
        |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]) as usize;
    let mut body = vec![0u8; len(4) + len(8)];
    from.read_exact(&mut body)?;
    Ok((header, body))
}

/// The protocol version byte each side sends first.
fn pass_version(from: &mut UnixStream, to: &mut UnixStream) -> std::io::Result<()> {
    let mut version = [0u8; 1];
    from.read_exact(&mut version)?;
    to.write_all(&version)
}

fn forward_requests(
    mut client: UnixStream,
    mut server: UnixStream,
    in_flight: &AtomicUsize,
) -> std::io::Result<()> {
    pass_version(&mut client, &mut server)?;
    loop {
        let (header, body) = message(&mut client)?;
        in_flight.fetch_add(1, Ordering::AcqRel);
        server.write_all(&header)?;
        server.write_all(&body)?;
    }
}

fn forward_replies(
    mut server: UnixStream,
    mut client: UnixStream,
    in_flight: &AtomicUsize,
    shared: &Shared,
) -> std::io::Result<()> {
    pass_version(&mut server, &mut client)?;
    loop {
        let (header, body) = message(&mut server)?;
        // Two others: one of them may be a call of a thread that is not a signer's (the key
        // inventory's reader), and the test needs a signer's call left hanging.
        let others_waiting = in_flight.fetch_sub(1, Ordering::AcqRel) >= 3;
        if others_waiting && shared.armed.swap(false, Ordering::AcqRel) {
            client.write_all(&header)?;
            shared.cuts.fetch_add(1, Ordering::AcqRel);
            let _ = client.shutdown(std::net::Shutdown::Both);
            let _ = server.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        client.write_all(&header)?;
        client.write_all(&body)?;
    }
}
