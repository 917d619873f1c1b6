//! The tokens segl reads and issues.

pub mod idcard;
pub mod ns;

pub use idcard::{CardError, CardType, IdCard};
