//! Accepting connections while staying able to stop.
//!
//! An accept loop has to wake now and then to notice a drain even when nobody connects. It must
//! not do that by dropping the pending accept: glommio cancels a dropped io_uring accept, and if
//! the kernel completed it first the accepted socket is simply forgotten. Its client then waits
//! for an answer that never comes, and no idle timeout ever closes the socket, because no task
//! owns it. (Seen in the overload test: a connection ESTABLISHED for ten minutes with its request
//! unread.) So one accept stays in flight across the wake-ups, and only the wait is abandoned.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use glommio::GlommioError;

type Accept<'a> = Pin<Box<dyn Future<Output = glommio::Result<TcpStream, ()>> + 'a>>;

/// The connections a listener accepts until `stop` says otherwise, checked every `tick`.
pub struct Incoming<'a, Stop> {
    listener: &'a TcpListener,
    tick: Duration,
    stop: Stop,
    pending: Accept<'a>,
}

impl<'a, Stop: Fn() -> bool> Incoming<'a, Stop> {
    /// Starts accepting on `listener`.
    pub fn new(listener: &'a TcpListener, tick: Duration, stop: Stop) -> Self {
        Self { listener, tick, stop, pending: Box::pin(listener.accept()) }
    }

    /// The next accepted connection (or accept error); `None` once `stop` returns true.
    pub async fn next(&mut self) -> Option<glommio::Result<TcpStream, ()>> {
        while !(self.stop)() {
            let pending = &mut self.pending;
            // The timeout drops only this borrowing wrapper; the accept itself stays pending.
            match glommio::timer::timeout(self.tick, async { Ok(pending.as_mut().await) }).await {
                Ok(result) => {
                    self.pending = Box::pin(self.listener.accept());
                    return Some(result);
                }
                Err(GlommioError::TimedOut(_)) => continue,
                // The wrapper never fails; treat anything else as a failed accept.
                Err(e) => return Some(Err(e)),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Every connection is served even when accepts keep completing around the wake-ups: with a
    /// 50 µs tick the accept is interrupted thousands of times, which lost connections when each
    /// wake-up dropped the pending accept.
    #[test]
    fn no_connection_is_lost_to_the_wake_ups() {
        const CONNECTIONS: usize = 3000;
        let stop = Arc::new(AtomicBool::new(false));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let server_stop = stop.clone();
        let server = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                let mut incoming = Incoming::new(&listener, Duration::from_micros(50), || {
                    server_stop.load(Ordering::Relaxed)
                });
                let mut served = 0;
                while let Some(stream) = incoming.next().await {
                    let Ok(mut stream) = stream else { continue };
                    glommio::spawn_local(async move {
                        use futures_lite::AsyncWriteExt;
                        let _ = stream.write_all(b"x").await;
                        let _ = stream.close().await;
                    })
                    .detach();
                    served += 1;
                }
                served
            })
            .expect("executor");
        let addr = addr_rx.recv().expect("server address");
        let mut lost = 0;
        for _ in 0..CONNECTIONS {
            let mut client = std::net::TcpStream::connect(addr).expect("connect");
            client.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
            let mut byte = [0u8; 1];
            if !matches!(client.read(&mut byte), Ok(1)) {
                lost += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let served = server.join().expect("server thread");
        assert_eq!(lost, 0, "{lost} of {CONNECTIONS} connections were accepted but never served");
        assert_eq!(served, CONNECTIONS);
    }
}
