//! segl: an HSM-backed Security Token Service for the Danish healthcare federation.
#![forbid(unsafe_code)]

pub mod xml;
