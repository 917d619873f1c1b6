//! Loading a PKCS#11 module: C_Initialize exactly once per process, with OS locking.

use std::path::Path;
use std::sync::Arc;

use crate::{Pkcs11Error, SecretPin, Token};

/// A loaded and initialized PKCS#11 module.
pub struct HsmModule {
    // helper: cryptoki::context::Pkcs11 + module path
}

impl HsmModule {
    /// Loads and initializes the module at `path`. Loading the same path twice in one process
    /// returns the same module (a second C_Initialize would fail).
    pub fn load(path: &Path) -> Result<Arc<HsmModule>, Pkcs11Error> {
        todo!("helper")
    }

    /// The module's file path, for messages.
    pub fn path(&self) -> &Path {
        todo!("helper")
    }

    /// The token with this label.
    pub fn token(self: &Arc<Self>, label: &str) -> Result<Token, Pkcs11Error> {
        todo!("helper")
    }

    /// Initializes a new token with `label` on the first uninitialized slot and sets its user
    /// PIN (C_InitToken, then C_InitPIN as SO). For development tokens on SoftHSM.
    pub fn init_token(
        self: &Arc<Self>,
        label: &str,
        so_pin: &SecretPin,
        user_pin: &SecretPin,
    ) -> Result<Token, Pkcs11Error> {
        todo!("helper")
    }
}
