//! The `segl` command line: one file per command group.

mod config;
mod dev;
mod keys;
mod xml;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;

/// segl: an HSM-backed Security Token Service for the Danish healthcare federation.
#[derive(Parser)]
#[command(version = crate::build_info::LONG_VERSION)]
pub struct Cli {
    /// Log format on stderr: `text` (colour codes only when stderr is a terminal and NO_COLOR
    /// is unset) or `json` (one JSON object per line, for log shippers).
    #[arg(long, global = true, value_enum, env = "SEGL_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the event's fields, `target`.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the STS endpoints.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Development tooling: PKI, client, one-command bring-up.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
    /// Signing keys on the HSM: list, generate, csr, import-cert, activate, retire, export-cert.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// XML tools: canonical form, signature verification with explanations.
    Xml {
        #[command(subcommand)]
        command: xml::XmlCommand,
    },
}

impl Cli {
    /// Runs the command.
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self.command {
            Command::Serve { config, listen } => {
                let path = config;
                let mut config = Config::load(&path)?;
                if let Some(listen) = listen {
                    config.server.listen = listen;
                }
                crate::server::run(path, config)?;
                Ok(())
            }
            Command::Dev { command } => command.run(),
            Command::Config { command } => command.run(),
            Command::Keys { command } => command.run(),
            Command::Xml { command } => command.run(),
        }
    }
}
