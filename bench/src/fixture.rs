//! A private development state for benches and tests: the embedded default configuration with
//! its state directory moved to a directory of the caller's choosing, and everything in it (the
//! SoftHSM tokens, the development PKI, the STS key) made by `segl::dev::pki::setup`, as the
//! end-to-end tests do.

use std::path::{Path, PathBuf};

use segl::config::Config;

/// The embedded default configuration, as shipped.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/segl.toml");

/// Why the private state could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The configuration did not load.
    #[error("configuration: {0}")]
    Config(#[from] segl::config::ConfigError),
    /// The development state could not be created.
    #[error("development state: {0}")]
    Dev(#[from] segl::dev::DevError),
}

/// A private state directory with its configuration.
pub struct PrivateState {
    /// The state directory.
    pub dir: PathBuf,
    /// The configuration file inside it.
    pub config_path: PathBuf,
    /// The loaded configuration.
    pub config: Config,
}

impl PrivateState {
    /// Creates (or completes) the state under `dir`.
    pub fn create(dir: &Path) -> Result<PrivateState, FixtureError> {
        std::fs::create_dir_all(dir)?;
        let dir = std::fs::canonicalize(dir)?;
        let text = DEFAULT_CONFIG.replace("../state", &dir.display().to_string());
        let config_path = dir.join("segl.toml");
        std::fs::write(&config_path, text)?;
        let config = Config::load(&config_path)?;
        segl::dev::pki::setup(&config)?;
        Ok(PrivateState { dir, config_path, config })
    }
}
