//! The servers a report runs against, each a child process of the generator so that its CPU
//! time is its own: segl itself (`segl-load serve-segl`, the same `segl::server::run` that
//! `segl serve` runs) and the trivial server for the generator's ceiling.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::probe::ServerProbe;
use crate::tls::TlsFiles;

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The process could not be spawned.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// Which server.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The process exited during startup.
    #[error("{what} exited during startup ({status}); its log {log}:\n{tail}")]
    Exited {
        /// Which server.
        what: &'static str,
        /// Exit status.
        status: String,
        /// Its log file.
        log: String,
        /// The end of its log.
        tail: String,
    },
    /// The process did not listen in time.
    #[error("{what} did not listen on {addr} within {secs} s; its log {log}:\n{tail}")]
    NotListening {
        /// Which server.
        what: &'static str,
        /// Where it should listen.
        addr: SocketAddr,
        /// How long we waited.
        secs: u64,
        /// Its log file.
        log: String,
        /// The end of its log.
        tail: String,
    },
    /// No free loopback port.
    #[error("no free loopback port: {0}")]
    Port(std::io::Error),
}

/// A server child process, killed when dropped.
pub struct ChildServer {
    child: Child,
    /// Where it listens (plain HTTP).
    pub addr: SocketAddr,
    /// Where segl's TLS listener is, when it has one.
    pub tls_addr: Option<SocketAddr>,
    /// segl's admin listener (`/metrics`); `None` for the trivial server.
    pub admin_addr: Option<SocketAddr>,
    /// Its stderr.
    pub log: PathBuf,
}

impl ChildServer {
    /// Starts segl on `config`, its plain, admin and (with `tls`) TLS listeners moved to free
    /// loopback ports so that it never meets a segl already running on the configured ones,
    /// logging at `log_level` to `log`.
    pub fn segl(
        config: &Path,
        log: &Path,
        log_level: &str,
        tls: Option<&TlsFiles>,
    ) -> Result<ChildServer, ServerError> {
        Self::segl_from(&self_exe(), config, log, log_level, tls)
    }

    /// [`ChildServer::segl`] run by the `segl-load` executable at `exe`.
    pub fn segl_from(
        exe: &Path,
        config: &Path,
        log: &Path,
        log_level: &str,
        tls: Option<&TlsFiles>,
    ) -> Result<ChildServer, ServerError> {
        let ports = free_loopback_ports(3)?;
        let (addr, admin, tls_addr) = (ports[0], ports[1], ports[2]);
        let mut cmd = Command::new(exe);
        cmd.arg("serve-segl");
        cmd.arg("--config").arg(config).arg("--listen").arg(addr.to_string());
        cmd.arg("--admin-listen").arg(admin.to_string());
        if let Some(t) = tls {
            cmd.arg("--tls-listen").arg(tls_addr.to_string());
            cmd.arg("--tls-cert").arg(&t.certificate).arg("--tls-key").arg(&t.key);
        }
        cmd.env("RUST_LOG", log_level);
        let tls_addr = tls.map(|_| tls_addr);
        let listens: Vec<SocketAddr> = [Some(addr), Some(admin), tls_addr].into_iter().flatten().collect();
        let mut server = Self::start(cmd, "segl", &listens, log, Duration::from_secs(60))?;
        server.tls_addr = tls_addr;
        server.admin_addr = Some(admin);
        Ok(server)
    }

    /// Starts the trivial server answering `body_bytes`-byte responses.
    pub fn dummy(body_bytes: usize, log: &Path) -> Result<ChildServer, ServerError> {
        Self::dummy_from(&self_exe(), body_bytes, log)
    }

    /// [`ChildServer::dummy`] run by the `segl-load` executable at `exe`.
    pub fn dummy_from(exe: &Path, body_bytes: usize, log: &Path) -> Result<ChildServer, ServerError> {
        let addr = free_loopback()?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve-dummy");
        cmd.arg("--listen").arg(addr.to_string()).arg("--body-bytes").arg(body_bytes.to_string());
        Self::start(cmd, "the trivial server", &[addr], log, Duration::from_secs(20))
    }

    /// Spawns `cmd` and waits until every address in `listens` accepts connections; the
    /// first is the server's [`ChildServer::addr`].
    fn start(
        mut cmd: Command,
        what: &'static str,
        listens: &[SocketAddr],
        log: &Path,
        wait: Duration,
    ) -> Result<ChildServer, ServerError> {
        let addr = listens[0];
        let file = std::fs::File::create(log).map_err(|source| ServerError::Spawn { what, source })?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .map_err(|source| ServerError::Spawn { what, source })?;
        let mut server = ChildServer { child, addr, tls_addr: None, admin_addr: None, log: log.to_owned() };
        let deadline = Instant::now() + wait;
        let mut waiting = listens.to_vec();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(ServerError::Exited {
                    what,
                    status: status.to_string(),
                    log: log.display().to_string(),
                    tail: server.log_tail(20),
                });
            }
            waiting.retain(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err());
            if waiting.is_empty() {
                return Ok(server);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ServerError::NotListening {
            what,
            addr: waiting.first().copied().unwrap_or(addr),
            secs: wait.as_secs(),
            log: log.display().to_string(),
            tail: server.log_tail(20),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the generator reads about this server: its CPU, and segl's HSM counters.
    pub fn probe(&self) -> ServerProbe {
        ServerProbe { pid: Some(self.pid()), metrics: self.admin_addr }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running executable: `segl-load` serves its own child servers.
fn self_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("segl-load"))
}

/// A loopback port free right now.
pub fn free_loopback() -> Result<SocketAddr, ServerError> {
    Ok(free_loopback_ports(1)?[0])
}

/// `n` distinct loopback ports free right now, below the kernel's ephemeral range (see
/// [`segl::dev::ports`]: a server's port must not be one a client may be given).
pub fn free_loopback_ports(n: usize) -> Result<Vec<SocketAddr>, ServerError> {
    segl::dev::ports::unused_ports(std::net::Ipv4Addr::LOCALHOST.into(), n).map_err(ServerError::Port)
}
