//! Loading a PKCS#11 module: C_Initialize exactly once per process, with OS locking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;

use crate::{Pkcs11Error, SecretPin, Token};

/// PKCS#11 token labels are a fixed 32-byte, space-padded field.
const MAX_LABEL_LEN: usize = 32;

/// One loaded library. The context is kept for the life of the process so that dropping every
/// `HsmModule` and loading again never calls C_Initialize a second time.
struct Registered {
    ctx: Pkcs11,
    module: Weak<HsmModule>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Registered>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Registered>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A loaded and initialized PKCS#11 module.
pub struct HsmModule {
    ctx: Pkcs11,
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
            let module = Arc::new(HsmModule { ctx: entry.ctx.clone(), path: path.to_path_buf() });
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
        let module = Arc::new(HsmModule { ctx: ctx.clone(), path: path.to_path_buf() });
        reg.insert(key, Registered { ctx, module: Arc::downgrade(&module) });
        Ok(module)
    }

    /// The module's file path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token with this label.
    pub fn token(self: &Arc<Self>, label: &str) -> Result<Token, Pkcs11Error> {
        let slots = self.ctx.get_slots_with_initialized_token().map_err(call("C_GetSlotList"))?;
        for slot in slots {
            let info = self.ctx.get_token_info(slot).map_err(call("C_GetTokenInfo"))?;
            if trim_label(info.label()) == label {
                return Ok(Token::new(Arc::clone(self), slot, label.to_owned()));
            }
        }
        Err(Pkcs11Error::TokenNotFound { label: label.to_owned(), module: self.path.display().to_string() })
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
        let slot = self
            .initialized_tokens()?
            .into_iter()
            .find(|(_, l, serial)| l == label && !before.iter().any(|(_, bl, bs)| bl == l && bs == serial))
            .map(|(slot, _, _)| slot)
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
        Ok(Token::new(Arc::clone(self), slot, label.to_owned()))
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
