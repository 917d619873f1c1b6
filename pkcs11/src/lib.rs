//! PKCS#11 access for segl: one module per process, tokens chosen by label, RSA keys that are
//! generated inside the token and never leave it, and signing of a PKCS#1 DigestInfo
//! (`CKM_RSA_PKCS`) so that hashing stays in-process and the HSM only does the RSA operation.
//!
//! Layering: [`HsmModule`] (C_Initialize once) → [`Token`] (a slot, logged in once) →
//! [`TokenSession`] (key management) and [`RsaSigner`] (one session + one cached key handle,
//! owned by one executor core).

#![forbid(unsafe_code)]

mod digest_info;
mod error;
mod module;
mod pin;
mod public_key;
mod session;
mod signer;
mod token;

pub use digest_info::{digest_info, HashAlgorithm};
pub use error::Pkcs11Error;
pub use module::HsmModule;
pub use pin::{PinSource, SecretPin};
pub use public_key::RsaPublicKey;
pub use session::TokenSession;
pub use signer::RsaSigner;
pub use token::Token;
