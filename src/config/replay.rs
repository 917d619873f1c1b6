//! `[replay]`: where the message ids seen are remembered against replay — this node's memory,
//! or a Redis (or Valkey) server shared by every node of a cluster.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The replay store and its settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// `local` (this node's memory, the default) or `redis` (shared by the cluster).
    #[serde(default)]
    pub store: ReplayStore,
    /// The Redis server, for `store = "redis"`.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
}

/// Where message ids are remembered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStore {
    /// This node's memory: a request replayed to another node is not recognised.
    #[default]
    Local,
    /// A Redis server every node asks: a replay is refused whichever node it reaches.
    Redis,
}

/// A Redis (7.x) or Valkey server holding the cluster's message ids.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `host:port` addresses, tried in order when a core connects (a primary, then its
    /// replacements). Names are resolved when segl starts.
    pub addresses: Vec<String>,
    /// The logical database (`SELECT`).
    #[serde(default)]
    pub database: u32,
    /// The ACL user for `AUTH` (with `password_file`; without it, the default user).
    #[serde(default)]
    pub username: Option<String>,
    /// A file whose first line is the `AUTH` password (never in the configuration itself).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connect over TLS (Redis's `tls-port`), checking the server against `tls_ca`.
    #[serde(default)]
    pub tls: bool,
    /// PEM file of the CA certificate(s) that issued the server's certificate.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the address's host).
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Prefix of every key segl writes, so that a shared server can hold other data.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// How long a request waits for Redis's answer before the server counts as unavailable.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// What a request gets while Redis cannot answer in time.
    #[serde(default)]
    pub when_unavailable: WhenUnavailable,
}

/// What happens to a request whose message id Redis cannot check in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenUnavailable {
    /// Refused with a fault (503, Retry-After): no replay can slip through (the default).
    #[default]
    Refuse,
    /// Checked against this node's memory only: service goes on, and a replay to another
    /// node during the outage goes unnoticed.
    Local,
}

fn default_key_prefix() -> String {
    "segl:replay:".to_owned()
}

fn default_timeout_ms() -> u64 {
    50
}

impl ReplayConfig {
    /// Makes relative paths relative to the configuration file's directory.
    pub(super) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        if let Some(redis) = self.redis.as_mut() {
            redis.password_file.iter_mut().for_each(&fix);
            redis.tls_ca.iter_mut().for_each(&fix);
        }
    }

    /// Checks the settings against each other and the request deadline: `Err((key, reason))`.
    pub(super) fn validate(&self, deadline_ms: u64) -> Result<(), (&'static str, String)> {
        let redis = match (self.store, &self.redis) {
            (ReplayStore::Local, _) => return Ok(()),
            (ReplayStore::Redis, None) => {
                return Err(("replay.redis", "store = \"redis\" needs a [replay.redis] section".into()))
            }
            (ReplayStore::Redis, Some(redis)) => redis,
        };
        if redis.addresses.is_empty() {
            return Err(("replay.redis.addresses", "name at least one host:port".into()));
        }
        if let Some(a) = redis.addresses.iter().find(|a| split_host_port(a).is_none()) {
            return Err(("replay.redis.addresses", format!("{a:?} is not host:port")));
        }
        // The check must leave the request time for everything else before its deadline.
        if redis.timeout_ms == 0 || redis.timeout_ms * 2 > deadline_ms {
            return Err((
                "replay.redis.timeout_ms",
                format!("must be at least 1 and at most half of server.deadline_ms ({deadline_ms})"),
            ));
        }
        if redis.tls && redis.tls_ca.is_none() {
            return Err((
                "replay.redis.tls_ca",
                "tls = true needs the CA that issued the server's certificate".into(),
            ));
        }
        if redis.username.is_some() && redis.password_file.is_none() {
            return Err(("replay.redis.username", "a username needs a password_file".into()));
        }
        if redis.key_prefix.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(("replay.redis.key_prefix", "no spaces or control characters".into()));
        }
        Ok(())
    }
}

/// `host:port` split at its last colon (`[v6]:port` keeps its brackets off the host).
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

impl RedisConfig {
    /// The name `address`'s TLS certificate must carry: the setting, or the address's host.
    pub fn server_name_of<'a>(&'a self, address: &'a str) -> &'a str {
        match &self.tls_server_name {
            Some(name) => name,
            None => split_host_port(address).map_or("", |(host, _)| host),
        }
    }

    /// The password, read from `password_file` (its first line).
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else { return Ok(None) };
        read_first_line(path).map(Some)
    }
}

/// A secret file's first line. Errors name the file and the OS's cause, never its contents.
fn read_first_line(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(edit: impl FnOnce(&mut RedisConfig)) -> ReplayConfig {
        let mut r = RedisConfig {
            addresses: vec!["127.0.0.1:6379".into()],
            database: 0,
            username: None,
            password_file: None,
            tls: false,
            tls_ca: None,
            tls_server_name: None,
            key_prefix: default_key_prefix(),
            timeout_ms: 50,
            when_unavailable: WhenUnavailable::Refuse,
        };
        edit(&mut r);
        ReplayConfig { store: ReplayStore::Redis, redis: Some(r) }
    }

    #[test]
    fn redis_settings_are_checked() {
        assert_eq!(redis(|_| {}).validate(200), Ok(()));
        let key = |c: ReplayConfig| c.validate(200).unwrap_err().0;
        assert_eq!(key(ReplayConfig { store: ReplayStore::Redis, redis: None }), "replay.redis");
        assert_eq!(key(redis(|r| r.addresses.clear())), "replay.redis.addresses");
        assert_eq!(key(redis(|r| r.addresses = vec!["redis".into()])), "replay.redis.addresses");
        assert_eq!(key(redis(|r| r.timeout_ms = 0)), "replay.redis.timeout_ms");
        assert_eq!(key(redis(|r| r.timeout_ms = 101)), "replay.redis.timeout_ms");
        assert_eq!(key(redis(|r| r.tls = true)), "replay.redis.tls_ca");
        assert_eq!(key(redis(|r| r.username = Some("segl".into()))), "replay.redis.username");
        assert_eq!(key(redis(|r| r.key_prefix = "a b".into())), "replay.redis.key_prefix");
        // A local store ignores a [replay.redis] section it does not use.
        let mut local = redis(|r| r.addresses.clear());
        local.store = ReplayStore::Local;
        assert_eq!(local.validate(200), Ok(()));
    }

    #[test]
    fn addresses_and_server_names() {
        assert_eq!(split_host_port("10.0.0.5:6379"), Some(("10.0.0.5", 6379)));
        assert_eq!(split_host_port("[::1]:6380"), Some(("::1", 6380)));
        assert_eq!(split_host_port("redis.internal:6379"), Some(("redis.internal", 6379)));
        assert_eq!(split_host_port(":6379"), None);
        assert_eq!(split_host_port("redis:port"), None);
        let r = redis(|r| r.addresses = vec!["redis-a.internal:6380".into()]);
        assert_eq!(r.redis.as_ref().unwrap().server_name_of("redis-a.internal:6380"), "redis-a.internal");
        let r = redis(|r| r.tls_server_name = Some("redis".into()));
        assert_eq!(r.redis.as_ref().unwrap().server_name_of("127.0.0.1:6379"), "redis");
    }
}
