//! The `segl` command: serve, and development tooling.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use segl::config::Config;
use segl::dev::client::{CertHash, DevClient, RequestOptions};
use segl::dev::pki::{self, Identity};
use segl::time::DgwsVersion;
use segl::token::CardType;
use segl::xml::dsig::algorithm::SignatureAlgorithm;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// segl: an HSM-backed Security Token Service for the Danish healthcare federation.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the STS endpoints.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Listen address, overriding the configuration (e.g. 127.0.0.1:0 is not useful; pick a port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Development tooling.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Create whatever is missing of the development state: SoftHSM tokens, development PKI,
    /// the STS key and its certificate.
    Setup {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
    },
    /// `setup`, then `serve`: the one command that brings segl up on the embedded default.
    Up {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
    },
    /// Write a fresh DGWS request with a self-signed ID card to stdout (or --out).
    Request {
        /// Configuration file.
        #[arg(long, default_value = "config/segl.toml")]
        config: PathBuf,
        /// Card type.
        #[arg(long, value_enum, default_value = "user")]
        card: CardArg,
        /// The client's signature algorithm.
        #[arg(long, value_enum, default_value = "rsa-sha1")]
        alg: AlgArg,
        /// Signing identity (default: moces for user cards, voces for system cards).
        #[arg(long)]
        identity: Option<String>,
        /// DGWS version.
        #[arg(long, value_enum, default_value = "1.0.1")]
        dgws: DgwsArg,
        /// Make a card whose validity ended an hour ago.
        #[arg(long)]
        expired: bool,
        /// Output file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CardArg {
    User,
    System,
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgArg {
    #[value(name = "rsa-sha1")]
    RsaSha1,
    #[value(name = "rsa-sha256")]
    RsaSha256,
}

#[derive(Clone, Copy, ValueEnum)]
enum DgwsArg {
    #[value(name = "1.0")]
    V1_0,
    #[value(name = "1.0.1")]
    V1_0_1,
}

fn main() -> ExitCode {
    init_logging();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("segl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    // glommio reports through `log`; route it into tracing so its warnings are seen.
    let _ = tracing_log::LogTracer::init();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn setup(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let report = pki::setup(config)?;
    if report.created.is_empty() {
        eprintln!("development state complete; nothing to create");
    }
    for line in report.created {
        eprintln!("created {line}");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Serve { config, listen } => {
            let mut config = Config::load(&config)?;
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            segl::server::run(config)?;
        }
        Command::Dev { command: DevCommand::Setup { config } } => {
            setup(&Config::load(&config)?)?;
        }
        Command::Dev { command: DevCommand::Up { config } } => {
            let config = Config::load(&config)?;
            setup(&config)?;
            segl::server::run(config)?;
        }
        Command::Dev { command: DevCommand::Request { config, card, alg, identity, dgws, expired, out } } => {
            let config = Config::load(&config)?;
            let client = DevClient::open(&config)?;
            let mut opts = RequestOptions::new(match card {
                CardArg::User => CardType::User,
                CardArg::System => CardType::System,
            });
            opts.algorithm = match alg {
                AlgArg::RsaSha1 => SignatureAlgorithm::RsaSha1,
                AlgArg::RsaSha256 => SignatureAlgorithm::RsaSha256,
            };
            if matches!(alg, AlgArg::RsaSha256) {
                opts.cert_hash = CertHash::Sha256;
            }
            opts.version = match dgws {
                DgwsArg::V1_0 => DgwsVersion::V1_0,
                DgwsArg::V1_0_1 => DgwsVersion::V1_0_1,
            };
            if let Some(label) = identity {
                opts.identity = Some(Identity::from_label(&label).ok_or_else(|| {
                    let known: Vec<_> = pki::ALL.iter().map(|i| i.label()).collect();
                    format!("unknown identity {label:?}; known: {}", known.join(", "))
                })?);
            }
            if expired {
                opts.not_before_offset = jiff::SignedDuration::from_hours(-25);
            }
            let request = client.request(&opts)?;
            match out {
                Some(path) => std::fs::write(&path, request)?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &request)?,
            }
        }
    }
    Ok(())
}
