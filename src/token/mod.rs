//! The tokens segl reads and issues.

pub mod bootstrap;
pub mod idcard;
pub mod identity;
pub mod ns;
pub mod oiosaml;
pub mod onbehalfof;
pub mod privileges;

pub use idcard::{CardError, CardType, IdCard};
