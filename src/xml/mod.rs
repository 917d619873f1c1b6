//! XML core: a span-indexed parser over one `Bytes` buffer (storage reusable across requests),
//! exclusive (and, for legacy signatures, inclusive) canonicalization streamed into a digest,
//! XML-DSig verification that hands back the elements it verified (enveloped and header
//! profiles), and the canonical-form writer used to emit (and sign) the tokens segl issues.

pub mod c14n;
pub mod dsig;
pub mod emit;
pub mod enc;
pub mod escape;
pub mod parse;

pub use parse::{Document, Limits, NodeId, ParseArena, XmlError};
