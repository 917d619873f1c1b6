//! Picking up key switches without a restart: a thread reads the inventory object on the token
//! every `inventory_poll_ms` (one C_FindObjects and one C_GetAttributeValue) and, when its value
//! changed, loads the new key set and swaps it in. Watching the token rather than waiting for a
//! signal means every appliance sharing the HSM switches, whichever host ran `segl keys
//! activate`.
//!
//! A key set that does not check out (the newly active key's certificate does not match it) is
//! refused with an error log, and the server keeps signing with the key it has.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use segl_pkcs11::{FaultScope, Token, TokenSession};

use super::keyset::KeySet;
use super::{Published, SigningError, StsCredential};
use crate::config::HsmConfig;

/// The running watcher; dropping it stops the thread.
pub struct InventoryWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Disconnected when the thread ends.
    ended: std::sync::mpsc::Receiver<()>,
}

/// How long stopping waits for the thread: a poll interval and a read of the token are far
/// less; a thread still inside the module after this is in a call the HSM does not answer.
const STOP_WAIT: Duration = Duration::from_secs(2);

impl Drop for InventoryWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else { return };
        match self.ended.recv_timeout(STOP_WAIT) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Joining would wait for as long as the HSM hangs (forever, for some client
                // libraries), and hold up the process's exit with it.
                tracing::warn!(
                    waited_ms = STOP_WAIT.as_millis() as u64,
                    "the key inventory watcher is in an HSM call that has not returned; not waiting for it"
                );
            }
            _ => {
                let _ = thread.join();
            }
        }
    }
}

struct Watcher {
    token: Token,
    config: HsmConfig,
    current: Arc<ArcSwap<StsCredential>>,
    published: Arc<ArcSwap<Published>>,
    session: Option<TokenSession>,
    last: Option<Vec<u8>>,
    /// When the key set was last loaded: it is reloaded now and then even without a change,
    /// so retired certificates leave the metadata when their publication period ends.
    loaded: std::time::Instant,
}

/// How often the published certificates are rebuilt without an inventory change.
const REPUBLISH: Duration = Duration::from_secs(600);

impl InventoryWatch {
    pub(super) fn start(
        token: Token,
        config: HsmConfig,
        current: Arc<ArcSwap<StsCredential>>,
        published: Arc<ArcSwap<Published>>,
    ) -> Result<InventoryWatch, SigningError> {
        let session = token.session()?;
        let last = session.inventory_value()?;
        let loaded = std::time::Instant::now();
        let mut watcher = Watcher { token, config, current, published, session: Some(session), last, loaded };
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let interval = Duration::from_millis(watcher.config.inventory_poll_ms.max(10));
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("segl-key-watch".into())
            .spawn(move || {
                // Dropped when the thread ends, however it ends.
                let _ended = ended_tx;
                while !stopped.load(Ordering::Acquire) {
                    std::thread::sleep(interval);
                    watcher.poll();
                }
            })
            .map_err(|e| segl_pkcs11::Pkcs11Error::Unavailable {
                reason: format!("cannot start key watcher: {e}"),
            })?;
        Ok(InventoryWatch { stop, thread: Some(thread), ended })
    }
}

impl Watcher {
    fn poll(&mut self) {
        if let Err(e) = self.check() {
            tracing::debug!("key inventory check failed: {e}");
            if matches!(&e, SigningError::Hsm(h) if h.scope() == FaultScope::Session) {
                // The signers report the HSM's health; here the session is just replaced.
                self.session = None;
            }
        }
    }

    fn check(&mut self) -> Result<(), SigningError> {
        if self.session.is_none() {
            self.token.relogin()?;
            self.session = Some(self.token.session()?);
        }
        let Some(session) = &self.session else { return Ok(()) };
        let value = session.inventory_value()?;
        if value == self.last && self.loaded.elapsed() < REPUBLISH {
            return Ok(());
        }
        self.loaded = std::time::Instant::now();
        match KeySet::load(session, &self.config) {
            Ok(keys) => {
                let before = self.current.load();
                if before.key_label != keys.active.key_label {
                    tracing::info!(
                        from = %before.key_label,
                        to = %keys.active.key_label,
                        "active signing key switched; requests in flight finish with the key they started with"
                    );
                }
                self.current.store(keys.active);
                self.published.store(Arc::new(keys.published));
                tracing::debug!(generation = self.published.load().generation, "key inventory reloaded");
            }
            // The HSM failing mid-read is not a verdict on the key set: read it again next time.
            Err(e @ SigningError::Hsm(_)) => return Err(e),
            Err(e) => {
                tracing::error!(
                    "key inventory changed but the new key set is unusable; keeping the current key: {e}"
                );
            }
        }
        self.last = value;
        Ok(())
    }
}
