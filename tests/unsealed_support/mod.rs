//! Drives segl with trifork/unsealed, the Java NSP STS client kept unchanged in
//! `shared/clients/unsealed/` (third-party: compiled and run in place, never copied here).
//!
//! A test file includes this module after `tests/common` (`mod common; mod unsealed_support;`).
//! [`Unsealed::get`] compiles unsealed and the project's own driver
//! (`tests/support/unsealed/SeglDriver.java`) once per test binary into the binary's private
//! state, or returns `None` after printing why the test is skipped (no unsealed sources, no
//! `javac`); call it before starting a server. [`Unsealed::keystore`] gives a development
//! identity as a PKCS#12 key store with a software key (`segl::dev::export`); [`Unsealed::run`] runs one driver command with a timeout
//! and returns its JSON summary line.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use segl::dev::pki::Identity;

use super::common;

/// The development identities with key stores: MOCES (user cards), VOCES (a system, an SP or
/// an audience), FOCES (a function certificate, e.g. an IdP's), and the development IdP (signs
/// citizen bootstrap tokens; its software key is not the token key behind `dev-idp.pem`, so a
/// test trusts [`Unsealed::certificate`] of it in the server's configuration).
///
/// All are made while [`Unsealed::get`] runs, which tests call before they start a server:
/// logging in to the development token while a server process starts can make that process
/// fail to read the token directory (see `common::Server::start_with`).
pub const IDENTITIES: [Identity; 4] = [Identity::Moces, Identity::Voces, Identity::Foces, Identity::DevIdp];

/// How long one driver run may take (a JVM start, key store loading, one or two exchanges).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// The compiled client and driver.
pub struct Unsealed {
    /// unsealed's classes.
    pub classes: PathBuf,
    /// The driver's classes.
    pub driver: PathBuf,
    /// Where key stores and outputs go (inside the test binary's private state).
    pub dir: PathBuf,
    /// The password of every key store made here (random per test binary; never printed).
    password: String,
}

/// What one driver run printed: its JSON summary and stderr.
#[derive(Debug)]
pub struct DriverRun {
    /// Exit code (0 ok, 2 SOAP fault, 1 other error; `None` when killed).
    pub code: Option<i32>,
    /// The summary line's fields (`status`: ok | fault | error, …).
    pub summary: HashMap<String, String>,
    /// The JVM's stderr.
    pub stderr: String,
}

impl DriverRun {
    /// A summary field, "" when absent.
    pub fn get(&self, key: &str) -> &str {
        self.summary.get(key).map_or("", String::as_str)
    }
}

/// Where the clients live: `SEGL_CLIENTS_DIR`, else `../shared/clients` from the crate.
pub fn clients_dir() -> PathBuf {
    std::env::var_os("SEGL_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/clients"))
}

impl Unsealed {
    /// The compiled client, or `None` (with a message) when the test must be skipped.
    pub fn get() -> Option<&'static Unsealed> {
        static UNSEALED: OnceLock<Option<Unsealed>> = OnceLock::new();
        UNSEALED.get_or_init(Self::build).as_ref()
    }

    fn build() -> Option<Unsealed> {
        let sources = clients_dir().join("unsealed/src/main/java");
        if !sources.is_dir() {
            eprintln!("skipping: unsealed not found at {} (set SEGL_CLIENTS_DIR)", sources.display());
            return None;
        }
        if Command::new("javac").arg("-version").output().map_or(true, |o| !o.status.success()) {
            eprintln!("skipping: javac not found (tests/install-host-packages installs a JDK)");
            return None;
        }
        let dir = common::env().dir.join("unsealed");
        let classes = dir.join("classes");
        let driver = dir.join("driver");
        for d in [&classes, &driver] {
            std::fs::create_dir_all(d).unwrap();
        }
        let mut files = Vec::new();
        java_files(&sources, &mut files);
        assert!(!files.is_empty(), "no Java sources under {}", sources.display());
        javac(&[], &classes, &files);
        let driver_source =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/unsealed/SeglDriver.java");
        javac(&["-cp".as_ref(), classes.as_os_str()], &driver, &[driver_source]);
        let unsealed = Unsealed { classes, driver, dir, password: random_hex(16) };
        unsealed.make_keystores();
        Some(unsealed)
    }

    /// The PKCS#12 key store of `identity` (one of [`IDENTITIES`]).
    pub fn keystore(&self, identity: Identity) -> PathBuf {
        assert!(
            IDENTITIES.contains(&identity),
            "no key store for {}: add it to IDENTITIES",
            identity.label()
        );
        self.dir.join(format!("{}.p12", identity.label()))
    }

    /// The certificate (PEM) in `identity`'s key store.
    pub fn certificate(&self, identity: Identity) -> PathBuf {
        self.dir.join(format!("{}.pem", identity.label()))
    }

    /// Writes a PKCS#12 key store (software key, certificate, issuing CA) per identity.
    fn make_keystores(&self) {
        let ids = segl::dev::export::software_identities(&common::env().config, &IDENTITIES)
            .unwrap_or_else(|e| panic!("software identities: {e}"));
        for (identity, id) in IDENTITIES.iter().zip(ids) {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(&id.private_key_pkcs8);
            let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
            for line in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(line).unwrap());
                pem.push('\n');
            }
            pem.push_str("-----END PRIVATE KEY-----\n");
            pem.push_str(&id.certificate_pem);
            let chain = self.dir.join(format!("{}-chain.pem", identity.label()));
            std::fs::write(&chain, &id.issuer_pem).unwrap();
            std::fs::write(self.certificate(*identity), &id.certificate_pem).unwrap();
            // Key and certificate go to openssl on stdin: the private key is never in a file of
            // its own, only in the password-protected key store.
            let mut child = Command::new("openssl")
                .args([
                    "pkcs12",
                    "-export",
                    "-name",
                    identity.label(),
                    "-passout",
                    "env:SEGL_KEYSTORE_PASSWORD",
                ])
                .arg("-certfile")
                .arg(&chain)
                .arg("-out")
                .arg(self.keystore(*identity))
                .env("SEGL_KEYSTORE_PASSWORD", &self.password)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run openssl");
            child.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "openssl pkcs12 -export: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Runs `SeglDriver <command> <args>`; panics if it does not finish within [`RUN_TIMEOUT`].
    pub fn run(&self, command: &str, args: &[&str]) -> DriverRun {
        let classpath = format!("{}:{}", self.classes.display(), self.driver.display());
        let mut child = Command::new("java")
            // A short-lived JVM on a small, shared machine: start fast, compile little.
            .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", &classpath])
            .arg("SeglDriver")
            .arg(command)
            .args(args)
            .env("SEGL_KEYSTORE_PASSWORD", &self.password)
            // Arguments and output are UTF-8 whatever the caller's locale.
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run java");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = out_reader.join().unwrap();
        let stderr = err_reader.join().unwrap();
        let Some(status) = status else {
            panic!("SeglDriver {command} did not finish within {RUN_TIMEOUT:?}\nstdout: {stdout}\nstderr: {stderr}");
        };
        let line = stdout.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
            panic!(
                "SeglDriver {command} printed no summary (exit {status})\nstdout: {stdout}\nstderr: {stderr}"
            )
        });
        let summary: HashMap<String, String> = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("SeglDriver {command}: bad summary {line:?}: {e}"));
        DriverRun { code: status.code(), summary, stderr }
    }
}

fn java_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            java_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "java") {
            out.push(p);
        }
    }
}

fn javac(options: &[&std::ffi::OsStr], out: &Path, files: &[PathBuf]) {
    let started = Instant::now();
    let o = Command::new("javac")
        .args(["-nowarn", "-encoding", "UTF-8", "-J-XX:TieredStopAtLevel=1", "-d"])
        .arg(out)
        .args(options)
        .args(files)
        .output()
        .expect("run javac");
    assert!(
        o.status.success(),
        "javac into {} failed:\n{}{}",
        out.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("compiled {} Java files into {} in {:.1?}", files.len(), out.display(), started.elapsed());
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}
