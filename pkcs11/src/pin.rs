//! Where a token PIN comes from. A PIN is read when needed and never printed.

use std::path::PathBuf;

/// A PIN held in memory; `Debug` never shows it.
#[derive(Clone)]
pub struct SecretPin(String);

impl SecretPin {
    /// Wraps a PIN.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(pin.into())
    }

    /// The PIN, for handing to C_Login / C_InitToken only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretPin(***)")
    }
}

/// Configured source of a PIN.
#[derive(Debug, Clone)]
pub enum PinSource {
    /// First line of a file (trailing newline stripped).
    File(PathBuf),
    /// The value of an environment variable.
    Env(String),
}

impl PinSource {
    /// Reads the PIN.
    pub fn read(&self) -> Result<SecretPin, crate::Pkcs11Error> {
        todo!("helper: read file (first line, trim trailing CR/LF) or env var; errors name the source, never the value")
    }
}
