//! `segl keys …`: the signing-key life cycle on the configured token (see
//! `crate::signing::keys`). Each command writes an audit record.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;
use crate::signing::keys::{self, KeyManager};

/// Key commands.
#[derive(Subcommand)]
pub(super) enum KeysCommand {
    /// List the key pairs on the token: label, id, algorithm, size, state, certificate.
    List {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Generate an RSA key pair inside the HSM (non-extractable, sensitive, sign-only) as `next`.
    Generate {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Label for the key pair and its certificate.
        label: String,
        /// Modulus size: 2048, 3072 (default) or 4096.
        #[arg(long, default_value_t = 3072)]
        bits: u32,
        /// `signing` (default): a next signing key; `decryption`: a decrypt-only key for
        /// `hsm.decryption_key`, certified from its public key (`segl keys public-key`).
        #[arg(long, default_value = "signing")]
        purpose: String,
    },
    /// Write the key's public key (PEM SubjectPublicKeyInfo), for a CA to certify a decryption
    /// key, which cannot sign a certificate request.
    PublicKey {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Key label.
        label: String,
        /// Output file (default stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a PKCS#10 certificate request for the key, signed inside the HSM.
    Csr {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Key label.
        label: String,
        /// Subject, e.g. "C=DK,O=Org // CVR:12345678,CN=STS,serialNumber=CVR:12345678-FID:1"
        /// (default CN=<label>).
        #[arg(long)]
        subject: Option<String>,
        /// Output file (default stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Store the certificate issued for the key (PEM or DER); refused if it is for another key.
    ImportCert {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Key label.
        label: String,
        /// Certificate file.
        certificate: PathBuf,
    },
    /// Make a next key the active signing key; the active key becomes retired. Running
    /// servers switch within `inventory_poll_ms`.
    Activate {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Key label.
        label: String,
    },
    /// Retire a next key that will not be used.
    Retire {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Key label.
        label: String,
    },
    /// Write the key's certificate (PEM).
    ExportCert {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Key label.
        label: String,
        /// Output file (default stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl KeysCommand {
    /// Runs the command.
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        let manager = |config: &PathBuf| -> Result<KeyManager, Box<dyn std::error::Error>> {
            Ok(KeyManager::open(&Config::load(config)?.hsm)?)
        };
        match self {
            KeysCommand::List { config, json } => {
                let listed = manager(&config)?.list()?;
                if json {
                    keys::output(None, &(serde_json::to_string_pretty(&listed)? + "\n"))?;
                    return Ok(());
                }
                let mut text = format!(
                    "{:<20} {:<16} {:<5} {:>5} {:<9} {:<20} {}\n",
                    "LABEL", "ID", "ALG", "BITS", "STATE", "CERT NOT AFTER", "CERT SERIAL / SUBJECT"
                );
                for k in listed {
                    let (after, cert) = match &k.certificate {
                        Some(c) => (c.not_after.clone(), format!("{} {}", c.serial, c.subject)),
                        None => ("-".into(), "(no certificate)".into()),
                    };
                    text.push_str(&format!(
                        "{:<20} {:<16} {:<5} {:>5} {:<9} {:<20} {}\n",
                        k.label, k.id, k.algorithm, k.bits, k.state, after, cert
                    ));
                }
                keys::output(None, &text)?;
            }
            KeysCommand::Generate { config, label, bits, purpose } => {
                let k = match purpose.as_str() {
                    "signing" => manager(&config)?.generate(&label, bits)?,
                    "decryption" => manager(&config)?.generate_decryption(&label, bits)?,
                    other => return Err(format!("unknown purpose {other:?}: signing or decryption").into()),
                };
                eprintln!(
                    "generated {} ({}-{}, id {}), state {}",
                    k.label, k.algorithm, k.bits, k.id, k.state
                );
            }
            KeysCommand::PublicKey { config, label, out } => {
                let pem = manager(&config)?.public_key_pem(&label)?;
                keys::output(out.as_ref(), &pem)?;
            }
            KeysCommand::Csr { config, label, subject, out } => {
                let pem = manager(&config)?.csr(&label, subject.as_deref())?;
                keys::output(out.as_ref(), &pem)?;
            }
            KeysCommand::ImportCert { config, label, certificate } => {
                let der = keys::read_certificate_file(&certificate)?;
                let s = manager(&config)?.import_cert(&label, &der)?;
                eprintln!(
                    "imported certificate {} for {label}: {} (not after {})",
                    s.serial, s.subject, s.not_after
                );
            }
            KeysCommand::Activate { config, label } => {
                let previous = manager(&config)?.activate(&label)?;
                match previous {
                    Some(p) => eprintln!("{label} is now active; {p} is retired"),
                    None => eprintln!("{label} is now active"),
                }
            }
            KeysCommand::Retire { config, label } => {
                manager(&config)?.retire(&label)?;
                eprintln!("{label} is retired");
            }
            KeysCommand::ExportCert { config, label, out } => {
                let pem = manager(&config)?.export_cert(&label)?;
                keys::output(out.as_ref(), &pem)?;
            }
        }
        Ok(())
    }
}
