//! PKCS#11 access for segl: one module per process, tokens chosen by label or serial number,
//! RSA keys that are generated inside the token and never leave it, and signing of a PKCS#1
//! DigestInfo (`CKM_RSA_PKCS`) so that hashing stays in-process and the HSM only does the RSA
//! operation.
//!
//! Layering: [`HsmModule`] (C_Initialize once) → [`Token`] (a slot, logged in once) →
//! [`TokenSession`] (key management, the [`KeyInventory`]) and [`BatchSigner`] (the per-core
//! batched signer on sessions it owns; [`RsaSigner`] is the plain one-session signer for
//! tools).

#![forbid(unsafe_code)]

mod batch;
mod decrypt;
mod digest_info;
mod error;
mod gate;
mod inventory;
mod module;
mod pin;
mod public_key;
mod session;
mod signer;
mod token;
mod uri;

pub use batch::status::{HsmState, HsmStatus, HsmStatusSnapshot, SignerStats, SignerStatsSnapshot};
pub use batch::{thread_cpu_time, BatchConfig, BatchSigner, SignerDriver, SignerMode, DEFAULT_CALL_TIMEOUT};
pub use decrypt::RsaDecryptor;
pub use digest_info::{digest_info, HashAlgorithm};
pub use error::{FaultScope, Pkcs11Error};
pub use inventory::{hex_decode, hex_encode, InventoryEntry, KeyInventory, KeyState, INVENTORY_LABEL};
pub use module::{HsmModule, TokenSelector};
pub use pin::{PinSource, SecretPin};
pub use public_key::RsaPublicKey;
pub use session::TokenSession;
pub use signer::RsaSigner;
pub use token::Token;
pub use uri::{Pkcs11Uri, UriError};
