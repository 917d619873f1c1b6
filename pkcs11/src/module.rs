//! Loading a PKCS#11 module: C_Initialize exactly once per process, with OS locking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;

use crate::gate::{CallGuard, Gate, DRAIN_LIMIT};
use crate::{Pkcs11Error, SecretPin, Token};

/// PKCS#11 token labels are a fixed 32-byte, space-padded field.
const MAX_LABEL_LEN: usize = 32;

/// One loaded library. The context is kept for the life of the process so that dropping every
/// `HsmModule` and loading again never calls C_Initialize a second time.
struct Registered {
    ctx: Pkcs11,
    life: Arc<ModuleLife>,
    module: Weak<HsmModule>,
}

/// What every user of one initialized library shares: the gate that keeps calls out while the
/// library is re-initialized, and the count of re-initializations.
#[derive(Default)]
struct ModuleLife {
    /// Passed by every call made on a signing session; closed by `reinitialize`. Uncontended
    /// except during a recovery, so a call pays two uncontended lock operations.
    gate: Gate,
    /// Bumped by every C_Finalize + C_Initialize. Sessions and logins from an older
    /// generation are dead.
    generation: AtomicU64,
    /// When the library was last re-initialized: every lost session asks for it, once is enough.
    last_reinit: Mutex<Option<std::time::Instant>>,
}

/// Re-initializations closer together than this are skipped (the callers retry with backoff).
const REINIT_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Which token to use: by label, by serial number, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSelector {
    /// CKA_LABEL of the token (without padding).
    pub label: Option<String>,
    /// Serial number of the token (without padding).
    pub serial: Option<String>,
}

impl TokenSelector {
    /// Selects by label only.
    pub fn label(label: &str) -> Self {
        Self { label: Some(label.to_owned()), serial: None }
    }

    fn matches(&self, label: &str, serial: &str) -> bool {
        self.label.as_deref().is_none_or(|l| l == label) && self.serial.as_deref().is_none_or(|s| s == serial)
    }
}

impl std::fmt::Display for TokenSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.label, &self.serial) {
            (Some(l), Some(s)) => write!(f, "label {l:?} serial {s:?}"),
            (Some(l), None) => write!(f, "label {l:?}"),
            (None, Some(s)) => write!(f, "serial {s:?}"),
            (None, None) => f.write_str("any label"),
        }
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Registered>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Registered>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A loaded and initialized PKCS#11 module.
pub struct HsmModule {
    ctx: Pkcs11,
    life: Arc<ModuleLife>,
    path: PathBuf,
}

impl std::fmt::Debug for HsmModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmModule").field("path", &self.path).finish()
    }
}

impl HsmModule {
    /// Loads and initializes the module at `path`. Loading the same path twice in one process
    /// returns the same module (a second C_Initialize would fail).
    pub fn load(path: &Path) -> Result<Arc<HsmModule>, Pkcs11Error> {
        // Symlinked and relative spellings of one library must share one C_Initialize.
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        // A poisoned lock only means another loader panicked; the map itself stays consistent.
        let mut reg = registry().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = reg.get_mut(&key) {
            if let Some(module) = entry.module.upgrade() {
                return Ok(module);
            }
            let module = Arc::new(HsmModule {
                ctx: entry.ctx.clone(),
                life: entry.life.clone(),
                path: path.to_path_buf(),
            });
            entry.module = Arc::downgrade(&module);
            return Ok(module);
        }

        let load_err = |source| Pkcs11Error::ModuleLoad { path: path.display().to_string(), source };
        let ctx = Pkcs11::new(&key).map_err(load_err)?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Another component of this process initialized the library; the state is shared.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                tracing::warn!(module = %path.display(), "PKCS#11 module was already initialized");
            }
            Err(e) => return Err(load_err(e)),
        }
        tracing::debug!(module = %path.display(), "PKCS#11 module initialized");
        let life = Arc::new(ModuleLife::default());
        let module = Arc::new(HsmModule { ctx: ctx.clone(), life: life.clone(), path: path.to_path_buf() });
        reg.insert(key, Registered { ctx, life, module: Arc::downgrade(&module) });
        Ok(module)
    }

    /// The module's file path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token with this label.
    pub fn token(self: &Arc<Self>, label: &str) -> Result<Token, Pkcs11Error> {
        self.find_token(&TokenSelector::label(label))
    }

    /// The token chosen by label and/or serial number.
    pub fn find_token(self: &Arc<Self>, selector: &TokenSelector) -> Result<Token, Pkcs11Error> {
        let (slot, label) = self.find_slot(selector)?;
        Ok(Token::new(Arc::clone(self), slot, label, selector.clone()))
    }

    /// The slot now holding the selected token (slot ids may change after a re-initialization).
    pub(crate) fn find_slot(&self, selector: &TokenSelector) -> Result<(Slot, String), Pkcs11Error> {
        for (slot, label, serial) in self.initialized_tokens()? {
            if selector.matches(&label, &serial) {
                return Ok((slot, label));
            }
        }
        Err(Pkcs11Error::TokenNotFound {
            label: selector.to_string(),
            module: self.path.display().to_string(),
        })
    }

    /// How many times this library was re-initialized in this process.
    pub fn generation(&self) -> u64 {
        self.life.generation.load(Ordering::Acquire)
    }

    /// Holds re-initialization off for the duration of one call on a session (for at most
    /// the gate's drain limit: a call that has not returned by then is left behind).
    pub(crate) fn gate(&self) -> CallGuard<'_> {
        self.life.gate.enter()
    }

    /// C_Finalize then C_Initialize, when the library itself has lost its device (a networked
    /// HSM's client library after its connection broke answers CKR_DEVICE_ERROR to everything,
    /// C_GetSlotList included, until it is re-initialized). Does nothing if another caller
    /// already re-initialized since `seen_generation`. Every session and the login are gone
    /// afterwards. Calls still in flight after the gate's drain limit are stuck (the device
    /// will not answer them): it goes ahead without them, since waiting would freeze every
    /// session for as long as they hang (forever, for p11-kit's client).
    pub fn reinitialize(&self, seen_generation: u64) -> Result<u64, Pkcs11Error> {
        // Every session that saw the device lost asks; one closes the gate, the others need
        // not hold the calls up again.
        let before = self.life.generation.load(Ordering::Acquire);
        if before != seen_generation {
            return Ok(before);
        }
        let exclusive = self.life.gate.close(DRAIN_LIMIT);
        let now = self.life.generation.load(Ordering::Acquire);
        if now != seen_generation {
            return Ok(now);
        }
        let mut last = self.life.last_reinit.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < REINIT_MIN_INTERVAL) {
            return Ok(now);
        }
        *last = Some(std::time::Instant::now());
        if exclusive.abandoned > 0 {
            tracing::warn!(
                module = %self.path.display(),
                calls = exclusive.abandoned,
                limit_ms = DRAIN_LIMIT.as_millis() as u64,
                "re-initializing with PKCS#11 calls still in flight: they have not returned within the limit and are left behind"
            );
        }
        // The finalize result does not matter: a library that lost its device may refuse it,
        // and C_Initialize below tells whether the library is usable again.
        let _ = self.ctx.clone().finalize();
        let next = now + 1;
        // Bumped before C_Initialize: whatever happens next, sessions from before are dead.
        self.life.generation.store(next, Ordering::Release);
        match self.ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(call("C_Initialize")(e)),
        }
        tracing::warn!(module = %self.path.display(), generation = next, "PKCS#11 module re-initialized");
        Ok(next)
    }

    /// Initializes a new token with `label` on the first uninitialized slot and sets its user
    /// PIN (C_InitToken, then C_InitPIN as SO). For development tokens on SoftHSM.
    pub fn init_token(
        self: &Arc<Self>,
        label: &str,
        so_pin: &SecretPin,
        user_pin: &SecretPin,
    ) -> Result<Token, Pkcs11Error> {
        if label.len() > MAX_LABEL_LEN {
            return Err(Pkcs11Error::LabelTooLong { label: label.to_owned() });
        }
        // Labels need not be unique, so the new token is told apart by its serial number.
        let before = self.initialized_tokens()?;
        let free = self
            .first_uninitialized_slot()?
            .ok_or_else(|| Pkcs11Error::NoFreeSlot { label: label.to_owned() })?;
        self.ctx.init_token(free, &so_pin.auth_pin(), label).map_err(call("C_InitToken"))?;

        // SoftHSM renumbers slots after C_InitToken, so the old slot id is stale.
        let (slot, serial) = self
            .initialized_tokens()?
            .into_iter()
            .find(|(_, l, serial)| l == label && !before.iter().any(|(_, bl, bs)| bl == l && bs == serial))
            .map(|(slot, _, serial)| (slot, serial))
            .ok_or_else(|| Pkcs11Error::TokenNotFound {
                label: label.to_owned(),
                module: self.path.display().to_string(),
            })?;

        let session = self.ctx.open_rw_session(slot).map_err(call("C_OpenSession"))?;
        session
            .login(UserType::So, Some(&so_pin.auth_pin()))
            .map_err(|source| Pkcs11Error::Login { label: label.to_owned(), source })?;
        let init_pin = session.init_pin(&user_pin.auth_pin());
        // Log out even when C_InitPIN failed, so the SO session does not linger.
        let logout = session.logout();
        init_pin.map_err(call("C_InitPIN"))?;
        logout.map_err(call("C_Logout"))?;
        session.close().map_err(call("C_CloseSession"))?;
        tracing::info!(token = label, slot = slot.id(), "initialized PKCS#11 token");
        let selector = TokenSelector { label: Some(label.to_owned()), serial: Some(serial) };
        Ok(Token::new(Arc::clone(self), slot, label.to_owned(), selector))
    }

    pub(crate) fn ctx(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// (slot, label, serial number) of every initialized token.
    fn initialized_tokens(&self) -> Result<Vec<(Slot, String, String)>, Pkcs11Error> {
        let slots = self.ctx.get_slots_with_initialized_token().map_err(call("C_GetSlotList"))?;
        slots
            .into_iter()
            .map(|slot| {
                let info = self.ctx.get_token_info(slot).map_err(call("C_GetTokenInfo"))?;
                Ok((slot, trim_label(info.label()).to_owned(), info.serial_number().trim().to_owned()))
            })
            .collect()
    }

    fn first_uninitialized_slot(&self) -> Result<Option<Slot>, Pkcs11Error> {
        let slots = self.ctx.get_slots_with_token().map_err(call("C_GetSlotList"))?;
        for slot in slots {
            let info = self.ctx.get_token_info(slot).map_err(call("C_GetTokenInfo"))?;
            if !info.token_initialized() {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }
}

/// A token label without its blank (or, for sloppy modules, NUL) padding.
fn trim_label(label: &str) -> &str {
    label.trim_end_matches([' ', '\0'])
}

/// Maps a failed cryptoki call to `Pkcs11Error::Call`.
pub(crate) fn call(op: &'static str) -> impl Fn(cryptoki::error::Error) -> Pkcs11Error {
    move |source| Pkcs11Error::Call { op, source }
}
