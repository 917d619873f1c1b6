//! XML-DSig: algorithms, the verification policy, verification of the enveloped and header
//! profiles, signing.

pub mod algorithm;
pub mod explain;
pub mod header;
pub mod policy;
pub mod sign;
pub mod verify;

pub use header::{verify_header, verify_header_using, VerifiedHeader};
pub use policy::Policy;
pub use verify::{
    verify_element, verify_enveloped, verify_enveloped_using, verify_enveloped_with, DsigError,
    ParseEachTime, ParsedKeys, SignerKey, SignerKeys, VerifiedSignature,
};
