//! Typed configuration, read from TOML. Relative paths in the file are resolved against the
//! directory that holds the file, so a configuration works wherever the checkout lives.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The TOML is invalid or has unknown/missing keys.
    #[error("invalid configuration {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is syntactically fine but not acceptable.
    #[error("invalid configuration {path}: {key}: {reason}")]
    Invalid { path: PathBuf, key: &'static str, reason: String },
}

/// The whole configuration of one segl instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener and HTTP limits.
    pub server: ServerConfig,
    /// The PKCS#11 module, token and signing key.
    pub hsm: HsmConfig,
    /// How the STS names itself and judges cards.
    pub sts: StsConfig,
    /// Which CAs are trusted to certify card signers.
    pub trust: TrustConfig,
    /// Parser limits for request XML.
    #[serde(default)]
    pub limits: XmlLimitsConfig,
    /// Development PKI and client (only used by `segl dev …`).
    #[serde(default)]
    pub dev: Option<DevConfig>,
}

/// Listener and HTTP limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address every core's listener binds (SO_REUSEPORT).
    pub listen: SocketAddr,
    /// Number of executors, one pinned per core; default: every available core.
    #[serde(default)]
    pub cores: Option<usize>,
    /// Largest request body accepted; larger gets HTTP 413.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Largest request head (request line + headers) accepted; larger gets HTTP 431.
    #[serde(default = "default_max_header")]
    pub max_header_bytes: usize,
    /// A connection idle (or trickling) this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
}

fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_header() -> usize {
    16 * 1024
}
fn default_idle_timeout() -> u64 {
    30_000
}

/// The PKCS#11 module, token and signing key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Path of the vendor's PKCS#11 module (`.so`).
    pub module: PathBuf,
    /// Label of the token holding the STS key.
    pub token_label: String,
    /// Label of the STS signing key (and of its certificate object on the token).
    pub key_label: String,
    /// File whose first line is the user PIN.
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN (used when `pin_file` is absent).
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Environment variables the module reads, whose values are file paths (resolved
    /// relative to this file), e.g. `SOFTHSM2_CONF` or a vendor's client configuration.
    #[serde(default)]
    pub path_env: BTreeMap<String, PathBuf>,
}

impl HsmConfig {
    /// Where the PIN comes from.
    pub fn pin_source(&self) -> Option<segl_pkcs11::PinSource> {
        match (&self.pin_file, &self.pin_env) {
            (Some(f), _) => Some(segl_pkcs11::PinSource::File(f.clone())),
            (None, Some(v)) => Some(segl_pkcs11::PinSource::Env(v.clone())),
            (None, None) => None,
        }
    }

    /// Exports `path_env` into this process's environment. Must run before the module is
    /// loaded and before any other thread starts.
    pub fn export_module_environment(&self) {
        for (k, v) in &self.path_env {
            std::env::set_var(k, v);
        }
    }
}

/// How the STS names itself and judges cards.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StsConfig {
    /// `saml:Issuer` of issued cards and `wst:Issuer` of responses; must be an NCName
    /// because seal clients validate it as one.
    pub issuer: String,
    /// `faultactor` of every fault.
    #[serde(default = "default_fault_actor")]
    pub fault_actor: String,
    /// Tolerance when judging a card's validity window.
    #[serde(default = "default_skew")]
    pub clock_skew_secs: u64,
}

fn default_fault_actor() -> String {
    "http://www.sosi.dk/sts".to_owned()
}
fn default_skew() -> u64 {
    300
}

/// Which CAs are trusted to certify card signers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// PEM files of trusted CA certificates (roots or issuing CAs).
    pub anchors: Vec<PathBuf>,
    /// PEM files of intermediate CA certificates used to build chains (not trusted alone).
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
}

/// Parser limits for request XML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XmlLimitsConfig {
    /// Deepest element nesting accepted.
    #[serde(default = "default_depth")]
    pub max_depth: usize,
    /// Most attributes (including namespace declarations) on one element.
    #[serde(default = "default_attrs")]
    pub max_attributes: usize,
    /// Most nodes in one document.
    #[serde(default = "default_nodes")]
    pub max_nodes: usize,
}

fn default_depth() -> usize {
    64
}
fn default_attrs() -> usize {
    64
}
fn default_nodes() -> usize {
    100_000
}

impl Default for XmlLimitsConfig {
    fn default() -> Self {
        Self { max_depth: default_depth(), max_attributes: default_attrs(), max_nodes: default_nodes() }
    }
}

impl XmlLimitsConfig {
    /// The parser's view of these limits.
    pub fn to_limits(&self) -> crate::xml::Limits {
        crate::xml::Limits {
            max_depth: self.max_depth,
            max_attributes: self.max_attributes,
            max_nodes: self.max_nodes,
        }
    }
}

/// Development PKI and client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// Directory for the development PKI (certificates, PIN files).
    pub state_dir: PathBuf,
    /// Label of the SoftHSM token holding the development CA and client keys.
    pub token_label: String,
    /// File with the development token's user PIN.
    pub pin_file: PathBuf,
}

impl Config {
    /// Reads, resolves and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, path)
    }

    /// Parses configuration text; `path` locates relative paths and names the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: path.to_owned(), message: e.to_string() })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        config.resolve_paths(&base);
        config.validate(path)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(f) = self.hsm.pin_file.as_mut() {
            fix(f);
        }
        self.hsm.path_env.values_mut().for_each(fix);
        self.trust.anchors.iter_mut().for_each(fix);
        self.trust.intermediates.iter_mut().for_each(fix);
        if let Some(dev) = self.dev.as_mut() {
            fix(&mut dev.state_dir);
            fix(&mut dev.pin_file);
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            reason: reason.to_owned(),
        };
        if !is_ncname(&self.sts.issuer) {
            return Err(invalid("sts.issuer", "must be an XML NCName (seal clients validate it as one)"));
        }
        if self.hsm.pin_source().is_none() {
            return Err(invalid("hsm", "set pin_file or pin_env"));
        }
        if self.trust.anchors.is_empty() {
            return Err(invalid("trust.anchors", "at least one trusted CA certificate is needed"));
        }
        if self.server.cores == Some(0) {
            return Err(invalid("server.cores", "must be at least 1"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(invalid("server.max_body_bytes", "must be at least 1024"));
        }
        Ok(())
    }
}

/// Whether `s` is an XML NCName (ASCII subset: segl's own names never need more).
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [server]
        listen = "127.0.0.1:0"
        [hsm]
        module = "/usr/lib/softhsm/libsofthsm2.so"
        token_label = "t"
        key_label = "k"
        pin_file = "pin"
        path_env = { SOFTHSM2_CONF = "../state/softhsm2.conf" }
        [sts]
        issuer = "SEGL-TEST"
        [trust]
        anchors = ["ca.pem", "/abs/ca.pem"]
    "#;

    #[test]
    fn relative_paths_follow_the_file() {
        let c = Config::from_toml(MINIMAL, Path::new("/etc/segl/segl.toml")).unwrap();
        assert_eq!(c.hsm.pin_file.unwrap(), Path::new("/etc/segl/pin"));
        assert_eq!(c.trust.anchors[0], Path::new("/etc/segl/ca.pem"));
        assert_eq!(c.trust.anchors[1], Path::new("/abs/ca.pem"));
        assert_eq!(c.hsm.path_env["SOFTHSM2_CONF"], Path::new("/etc/segl/../state/softhsm2.conf"));
        assert_eq!(c.server.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn issuer_must_be_an_ncname() {
        let bad = MINIMAL.replace("SEGL-TEST", "SEGL TEST");
        let err = Config::from_toml(&bad, Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("sts.issuer"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = MINIMAL.replace("[sts]", "[sts]\nisuer = \"typo\"");
        assert!(matches!(Config::from_toml(&bad, Path::new("x.toml")), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn shipped_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/segl.toml");
        let c = Config::load(&path).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert!(c.dev.is_some());
    }
}
