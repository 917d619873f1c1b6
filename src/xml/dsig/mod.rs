//! XML-DSig: algorithms, verification, signing.

pub mod algorithm;
pub mod sign;
pub mod verify;

pub use verify::{verify_enveloped, DsigError, VerifiedSignature};
