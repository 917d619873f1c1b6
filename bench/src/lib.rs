//! Benchmarks, load generator and capacity report for segl (see bench/README.md).
//!
//! The generator (`segl-load`) is open-loop: requests leave at the times a [`schedule`] says,
//! whatever the server does, and latency is counted from those times. Every request is a
//! distinct, pre-signed card from the [`pool`]. A [`report`] strings the profiles together:
//! raw HSM rate, [`sweep`] to the knee, confirmation runs, the tax-day profile and the
//! generator's own ceiling, and writes JSON, CSV, SVG and a Markdown summary with the sizing
//! arithmetic.
#![forbid(unsafe_code)]

pub mod client;
pub mod dummy;
pub mod engine;
pub mod fixture;
pub mod hsm_rate;
pub mod icount;
pub mod inprocess;
pub mod pool;
pub mod probe;
pub mod procfs;
pub mod profiles;
pub mod record;
pub mod report;
pub mod schedule;
pub mod servers;
pub mod sweep;
pub mod tls;
