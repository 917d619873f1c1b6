//! The one error type of this crate. No variant ever carries a PIN.

use cryptoki::error::{Error as CkError, RvError};

/// What went wrong talking to the HSM.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The PKCS#11 module could not be loaded or initialized.
    #[error("cannot load PKCS#11 module {path}: {}", short(source))]
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
    #[error("login to token {label:?} failed: {}", short(source))]
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
    /// A ciphertext the RSA operation is undefined on (refused before the token is asked).
    #[error("the ciphertext is {reason}")]
    CiphertextInvalid { reason: &'static str },
    /// Any other PKCS#11 call failed; `op` names the call.
    #[error("PKCS#11 {op} failed: {}", short(source))]
    Call { op: &'static str, source: cryptoki::error::Error },
    /// No healthy session could take the operation (the HSM is down or recovering).
    #[error("HSM unavailable: {reason}")]
    Unavailable { reason: String },
    /// The key inventory object on the token cannot be read.
    #[error("key inventory on token {token:?} is unreadable: {reason}")]
    Inventory { token: String, reason: String },
    /// The signer was shut down while the operation waited.
    #[error("the signer stopped before the operation completed")]
    SignerStopped,
    /// The operation was not started: the instant by which it had to start (its deadline's, or
    /// the longest wait an overloaded core allows) passed while it waited `waited` in the
    /// signer's queue (its answer would have come too late to be of use).
    #[error("not signed: its start-by time passed after {waited:?} in the signer's queue")]
    Expired { waited: std::time::Duration },
    /// The HSM had not answered the call after `after` (the signer's call timeout): the
    /// request is answered with this, and the session is replaced.
    #[error("the HSM has not answered a signing call after {after:?}")]
    Hung { after: std::time::Duration },
}

/// How far the effect of a failed operation reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultScope {
    /// Only this request (bad input); retrying elsewhere would fail the same way.
    Request,
    /// The cached key handle is stale; look the key up again.
    KeyHandle,
    /// The session (or the login, or the device behind it) is gone: drop it and reopen.
    Session,
}

impl Pkcs11Error {
    /// The PKCS#11 return value, when the error came from the module.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Self::Call { source: CkError::Pkcs11(rv, _), .. }
            | Self::Login { source: CkError::Pkcs11(rv, _), .. }
            | Self::ModuleLoad { source: CkError::Pkcs11(rv, _), .. } => Some(*rv),
            _ => None,
        }
    }

    /// Whether the module answered CKR_GENERAL_ERROR: with a file-backed token (SoftHSM) this
    /// is what a read racing another process's change of the token looks like, and a retry
    /// shortly after succeeds.
    pub fn is_general_error(&self) -> bool {
        self.rv() == Some(RvError::GeneralError)
    }

    /// What a failed signing operation says about the session it ran on.
    pub fn scope(&self) -> FaultScope {
        match self {
            Self::DigestLength { .. }
            | Self::NotRsa { .. }
            | Self::Expired { .. }
            | Self::CiphertextInvalid { .. } => FaultScope::Request,
            Self::KeyNotFound { .. } | Self::Unavailable { .. } | Self::SignerStopped | Self::Hung { .. } => {
                FaultScope::Session
            }
            _ => match self.rv() {
                Some(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid) => FaultScope::KeyHandle,
                Some(
                    RvError::DataInvalid
                    | RvError::DataLenRange
                    | RvError::EncryptedDataInvalid
                    | RvError::EncryptedDataLenRange
                    | RvError::MechanismInvalid
                    | RvError::MechanismParamInvalid
                    | RvError::KeyTypeInconsistent
                    | RvError::KeyFunctionNotPermitted,
                ) => FaultScope::Request,
                // Everything else (session handle invalid or closed, device error or removed,
                // token not present, user not logged in, general error, …) is treated as a
                // lost session: reopening costs little, and a wrong guess the other way would
                // leave a dead session in service.
                _ => FaultScope::Session,
            },
        }
    }

    /// Whether the module reports its device as lost (for a networked HSM's client library:
    /// the connection is gone and only C_Finalize + C_Initialize bring it back).
    pub fn is_device_lost(&self) -> bool {
        matches!(
            self.rv(),
            Some(
                RvError::DeviceError
                    | RvError::DeviceRemoved
                    | RvError::GeneralError
                    | RvError::CryptokiNotInitialized
                    | RvError::FunctionFailed
            )
        )
    }
}

/// cryptoki's Display of a module error is the paragraph from the specification; the name of
/// the return value and the function are what an operator needs.
fn short(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, function) => format!("{rv:?} in {function:?}"),
        other => other.to_string(),
    }
}
