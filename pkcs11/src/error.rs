//! The one error type of this crate. No variant ever carries a PIN.

/// What went wrong talking to the HSM.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The PKCS#11 module could not be loaded or initialized.
    #[error("cannot load PKCS#11 module {path}: {source}")]
    ModuleLoad { path: String, source: cryptoki::error::Error },
    /// No slot holds a token with this label.
    #[error("no token labelled {label:?} in PKCS#11 module {module}")]
    TokenNotFound { label: String, module: String },
    /// `init_token` found no uninitialized slot.
    #[error("no free (uninitialized) slot to create token {label:?}")]
    NoFreeSlot { label: String },
    /// A token label longer than the 32 bytes PKCS#11 allows.
    #[error("token label {label:?} is longer than 32 bytes")]
    LabelTooLong { label: String },
    /// Login was refused (the PIN itself is never part of the error).
    #[error("login to token {label:?} failed: {source}")]
    Login { label: String, source: cryptoki::error::Error },
    /// The PIN could not be read from its source.
    #[error("cannot read PIN from {source_desc}: {reason}")]
    PinUnavailable { source_desc: String, reason: String },
    /// No private key with this label on the token.
    #[error("no private key labelled {label:?} on token {token:?}")]
    KeyNotFound { label: String, token: String },
    /// A key with this label already exists.
    #[error("a key labelled {label:?} already exists on token {token:?}")]
    KeyExists { label: String, token: String },
    /// The key is not an RSA key with a usable modulus.
    #[error("key {label:?} is not a usable RSA key: {reason}")]
    NotRsa { label: String, reason: String },
    /// The digest handed to the signer does not have the length of its algorithm.
    #[error("digest of {got} bytes given for {alg:?}, which needs {expected}")]
    DigestLength { alg: crate::HashAlgorithm, expected: usize, got: usize },
    /// Any other PKCS#11 call failed; `op` names the call.
    #[error("PKCS#11 {op} failed: {source}")]
    Call { op: &'static str, source: cryptoki::error::Error },
}
