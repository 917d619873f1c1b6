//! Where a token PIN comes from. A PIN is read when needed and never printed.

use std::path::PathBuf;

use crate::Pkcs11Error;

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

    /// The PIN in the wrapper cryptoki wants.
    pub(crate) fn auth_pin(&self) -> cryptoki::types::AuthPin {
        cryptoki::types::AuthPin::from(self.0.clone())
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
        let pin = match self {
            Self::File(path) => {
                // io::Error's Display names the OS cause only, never file contents.
                let text = std::fs::read_to_string(path).map_err(|e| self.unavailable(e.to_string()))?;
                let first = text.split('\n').next().unwrap_or_default();
                first.trim_end_matches(['\r', '\n']).to_owned()
            }
            Self::Env(name) => match std::env::var(name) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => return Err(self.unavailable("not set")),
                // VarError::NotUnicode's Display would print the value.
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(self.unavailable("value is not valid UTF-8"))
                }
            },
        };
        if pin.is_empty() {
            return Err(self.unavailable("PIN is empty"));
        }
        Ok(SecretPin(pin))
    }

    fn unavailable(&self, reason: impl Into<String>) -> Pkcs11Error {
        let source_desc = match self {
            Self::File(path) => format!("file {}", path.display()),
            Self::Env(name) => format!("environment variable {name}"),
        };
        Pkcs11Error::PinUnavailable { source_desc, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, content: &[u8]) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!("segl-pin-{}-{nanos}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn file_first_line_without_line_ending() {
        for (name, content) in
            [("lf", &b"1234\nsecond\n"[..]), ("crlf", b"1234\r\nsecond"), ("none", b"1234")]
        {
            let path = temp_file(name, content);
            let pin = PinSource::File(path.clone()).read().unwrap();
            assert_eq!(pin.expose(), "1234", "{name}");
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn empty_file_is_an_error() {
        let path = temp_file("empty", b"\n");
        let err = PinSource::File(path.clone()).read().unwrap_err();
        assert!(matches!(err, Pkcs11Error::PinUnavailable { .. }));
        assert!(err.to_string().contains(&path.display().to_string()));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = std::env::temp_dir().join("segl-pin-does-not-exist");
        let err = PinSource::File(path.clone()).read().unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn env_variable() {
        let name = format!("SEGL_PIN_TEST_{}", std::process::id());
        std::env::set_var(&name, "s3cret-pin");
        assert_eq!(PinSource::Env(name.clone()).read().unwrap().expose(), "s3cret-pin");
        std::env::set_var(&name, "");
        let err = PinSource::Env(name.clone()).read().unwrap_err();
        assert!(err.to_string().contains(&name));
        std::env::remove_var(&name);
        let err = PinSource::Env(name.clone()).read().unwrap_err();
        assert!(err.to_string().contains(&name));
        assert!(!err.to_string().contains("s3cret-pin"));
    }

    #[test]
    fn debug_hides_pin() {
        assert!(!format!("{:?}", SecretPin::new("4711")).contains("4711"));
    }
}
