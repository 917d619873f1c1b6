//! A `redis-server` for the tests that need the cluster's replay store (`replay_redis`,
//! `cluster`): started on a port of its own, with its AOF synced on every write.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own, killed on drop; appends every write to its AOF and
/// syncs it (`appendfsync always`), as a cluster's replay store should, so that a restart
/// keeps the ids.
pub struct Redis {
    child: Option<Child>,
    ip: String,
    port: u16,
    dir: PathBuf,
    password: Option<String>,
    /// A TLS port beside the plain one, with the files of its certificate.
    tls: Option<Tls>,
}

/// A TLS listener's port and files: a throwaway CA and a server certificate for 127.0.0.1 and
/// `redis.test`, made with openssl.
pub struct Tls {
    /// The port.
    pub port: u16,
    /// The CA certificate (PEM) that issued the server's.
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Redis {
    /// A new server, or None (said on stderr) when `redis-server` is not installed.
    pub fn start(name: &str, ip: &str, password: Option<&str>) -> Option<Redis> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            eprintln!("redis-server is not installed (tests/install-host-packages installs it): skipped");
            return None;
        }
        let dir = crate::common::env().dir.join(format!("redis-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            child: None,
            ip: ip.to_owned(),
            port: 0,
            dir,
            password: password.map(str::to_owned),
            tls: None,
        };
        redis.port = crate::common::free_port_on(ip.parse().expect("an IPv4 address"));
        redis.resume();
        Some(redis)
    }

    /// A server on 127.0.0.1 that also listens for TLS (its certificate from a CA of its own).
    pub fn start_tls(name: &str) -> Option<Redis> {
        let mut redis = Self::start(name, "127.0.0.1", None)?;
        redis.stop();
        let dir = redis.dir.clone();
        let file = |n: &str| dir.join(n);
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(&dir).output().expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-days", "1", "-subj", "/CN=redis test CA", "-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat(),
        );
        openssl(
            &[&["req"][..], &ec, &["-subj", "/CN=redis.test", "-keyout", "server.key", "-out", "server.csr"]]
                .concat(),
        );
        std::fs::write(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:redis.test\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let port = crate::common::free_port();
        redis.tls = Some(Tls { port, ca: file("ca.pem"), cert: file("server.pem"), key: file("server.key") });
        redis.resume();
        Some(redis)
    }

    /// The TLS listener, for servers made by [`Redis::start_tls`].
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// Where it listens, as `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Starts the server (again, on the same port and data directory).
    pub fn resume(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", &self.ip, "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(tls) = &self.tls {
            cmd.args(["--tls-port", &tls.port.to_string(), "--tls-auth-clients", "no", "--tls-cert-file"])
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca);
        }
        match &self.password {
            Some(p) => cmd.args(["--requirepass", p]),
            // Without a password Redis answers only loopback clients; the cluster bed's nodes
            // reach it from their namespaces.
            None => cmd.args(["--protected-mode", "no"]),
        };
        self.child = Some(cmd.spawn().expect("start redis-server"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.command(&["PING"]).is_none_or(|r| !r.starts_with('+') && !r.starts_with("-NOAUTH")) {
            assert!(Instant::now() < deadline, "redis-server did not start on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server the way an operator's `systemctl stop` does (SIGTERM: it finishes its
    /// AOF and exits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    /// One command over a fresh connection (authenticated when the server has a password);
    /// Redis's answer as text, or None when it cannot be reached.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect((self.ip.as_str(), self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut out = Vec::new();
        let mut push = |args: &[&str]| {
            out.extend(format!("*{}\r\n", args.len()).bytes());
            for a in args {
                out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
            }
        };
        if let Some(p) = &self.password {
            push(&["AUTH", p]);
        }
        push(args);
        s.write_all(&out).ok()?;
        // Whole RESP answers (the AUTH answer first, when sent), read until each is complete.
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let mut answers = Vec::new();
        let want = if self.password.is_some() { 2 } else { 1 };
        while answers.len() < want {
            match redis_protocol::resp2::decode::decode(&raw) {
                Ok(Some((frame, used))) => {
                    answers.push((String::from_utf8_lossy(&raw[..used]).into_owned(), frame));
                    raw.drain(..used);
                    continue;
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            let n = s.read(&mut buf).ok()?;
            if n == 0 {
                return None;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        answers.pop().map(|(text, _)| text)
    }

    /// The keys segl wrote.
    pub fn replay_keys(&self) -> Vec<String> {
        let answer = self.command(&["KEYS", "segl:replay:*"]).unwrap_or_default();
        answer.lines().filter(|l| l.starts_with("segl:replay:")).map(str::to_owned).collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
