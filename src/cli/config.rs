//! `segl config check FILE`: the validation a reload runs, offline.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::Subcommand;

use crate::config::{Config, ReplayStore};
use crate::exchange::replay::redis::RedisSettings;
use crate::exchange::Policy;

/// Configuration commands.
#[derive(Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate a configuration completely (trust anchors, CRLs, roles included) without
    /// touching a running server; exits non-zero with the reason when it is not usable.
    Check {
        /// Configuration file.
        file: PathBuf,
    },
}

impl ConfigCommand {
    /// Runs the command.
    pub fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            ConfigCommand::Check { file } => {
                let config = Config::load(&file)?;
                // What `segl serve` reads once at start: Redis's addresses resolved, its
                // password file and CA file readable.
                if let (ReplayStore::Redis, Some(redis)) = (config.replay.store, &config.replay.redis) {
                    RedisSettings::from_config(redis)?;
                }
                let crls = Arc::new(ArcSwap::from_pointee(Default::default()));
                Policy::build(Arc::new(config), 0, crls)?;
                println!("{}: ok", file.display());
                Ok(())
            }
        }
    }
}
