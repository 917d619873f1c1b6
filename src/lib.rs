//! segl: an HSM-backed Security Token Service for the Danish healthcare federation, serving the
//! NSP SOSI STS wire protocol.
//!
//! The request path, top to bottom: [`server`] (executors, HTTP) → [`exchange`] (one module
//! per endpoint family) → [`xml`] (parse, verify, canonical emit) and [`trust`] (signer
//! certificates) → [`token`] (the tokens themselves) → [`signing`] (the HSM, via
//! `segl-pkcs11`).
#![forbid(unsafe_code)]

pub mod audit;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod dev;
pub mod exchange;
pub mod registers;
pub mod roles;
pub mod server;
pub mod signing;
pub mod spec_data;
pub mod telemetry;
pub mod time;
pub mod token;
pub mod trust;
pub mod xml;
