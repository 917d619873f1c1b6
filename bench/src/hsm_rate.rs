//! The raw signing rate of the STS token: C_Sign of a SHA-1 DigestInfo (what an issued ID
//! card needs) through `segl_pkcs11`, on the same token and key the server signs with, one
//! thread and one session per `sessions`. This is the ceiling segl's issuing rate is compared
//! with, and the CPU one signature costs is what is taken off segl's CPU per request.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use segl::config::Config;
use segl_pkcs11::{HashAlgorithm, HsmModule, Pkcs11Error};
use serde::{Deserialize, Serialize};

use crate::procfs;

/// A raw signing measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HsmRate {
    /// Sessions (threads) signing at once.
    pub sessions: usize,
    /// Signatures made.
    pub signatures: u64,
    /// Wall time, seconds.
    pub secs: f64,
    /// Signatures per second, all sessions together.
    pub per_sec: f64,
    /// CPU of the signing threads per signature, µs (an in-process token signs on the
    /// caller's CPU).
    pub cpu_us_per_sign: f64,
}

/// Why the token could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum HsmRateError {
    /// The HSM refused or failed.
    #[error("HSM: {0}")]
    Hsm(#[from] Pkcs11Error),
    /// The configuration names no PIN for the STS token.
    #[error("no PIN source configured for token {0:?}")]
    NoPin(String),
}

/// Signs for `duration` on `sessions` sessions at once.
pub fn measure(config: &Config, sessions: usize, duration: Duration) -> Result<HsmRate, HsmRateError> {
    let hsm = &config.hsm;
    hsm.export_module_environment();
    let module = HsmModule::load(&hsm.module)?;
    let token = module.token(&hsm.token_label)?;
    let pin = hsm.pin_source().ok_or_else(|| HsmRateError::NoPin(hsm.token_label.clone()))?.read()?;
    token.login(&pin)?;
    let signers =
        (0..sessions.max(1)).map(|_| token.signer(&hsm.key_label)).collect::<Result<Vec<_>, _>>()?;
    // One signature first, so a broken key fails here and not as a zero rate.
    signers[0].sign_digest(HashAlgorithm::Sha1, &[0u8; 20])?;

    let sessions = signers.len();
    let barrier = Barrier::new(sessions + 1);
    let (per_thread, secs) = std::thread::scope(|scope| {
        let handles: Vec<_> = signers
            .into_iter()
            .enumerate()
            .map(|(t, signer)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let cpu0 = procfs::thread_cpu_ns();
                    let end = Instant::now() + duration;
                    let mut n = 0u64;
                    let mut digest = [t as u8; 20];
                    while Instant::now() < end {
                        digest[..8].copy_from_slice(&n.to_be_bytes());
                        if signer.sign_digest(HashAlgorithm::Sha1, &digest).is_err() {
                            break;
                        }
                        n += 1;
                    }
                    let cpu = procfs::thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
                    (n, cpu)
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap_or((0, None))).collect();
        (results, started.elapsed().as_secs_f64())
    });
    let signatures: u64 = per_thread.iter().map(|r| r.0).sum();
    let cpu_ns: u64 = per_thread.iter().filter_map(|r| r.1).sum();
    Ok(HsmRate {
        sessions,
        signatures,
        secs,
        per_sec: signatures as f64 / secs.max(1e-9),
        cpu_us_per_sign: if signatures == 0 { 0.0 } else { cpu_ns as f64 / 1000.0 / signatures as f64 },
    })
}
