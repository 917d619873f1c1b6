//! XML core: a span-indexed parser over one `Bytes` buffer, exclusive canonicalization streamed
//! into a digest, XML-DSig verification that hands back the element it verified, and the
//! canonical-form writer used to emit (and sign) the tokens segl issues.

pub mod c14n;
pub mod dsig;
pub mod emit;
pub mod escape;
pub mod parse;

pub use parse::{Document, Limits, NodeId, ParseArena, XmlError};
