//! Support for the HSM tests: `segl keys` as the operator runs it, a bounded load generator
//! against the real server (127.0.0.1 only), a p11-kit RPC server in front of the test's
//! SoftHSM token, and reading back which certificate signed a response.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use segl::dev::client::RequestOptions;
use segl::token::{ns, CardType};
use segl::xml::{Document, Limits};

use crate::common::{env, Server};

mod rpc_relay;
// Not every test crate that includes this module uses the relay.
#[allow(unused_imports)]
pub use rpc_relay::RpcRelay;

/// The NewSecurityTokenService path.
pub const NEW: &str = "/sts/services/NewSecurityTokenService";

/// Runs `segl keys <args> --config <config>`; returns (success, stdout, stderr).
pub fn keys(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_segl"))
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run segl keys");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `segl keys …` and panics with its output when it fails.
pub fn keys_ok(config: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = keys(config, args);
    assert!(ok, "segl keys {args:?} failed:\n{stderr}");
    stdout
}

/// The test configuration file (written by `common::env`).
pub fn config_path() -> PathBuf {
    env().dir.join("segl.toml")
}

/// A fresh user-card request from the development client.
pub fn request() -> Vec<u8> {
    env().client.request(&RequestOptions::new(CardType::User)).expect("build request")
}

/// The Sosi2OIOSaml path.
pub const SOSI2OIOSAML: &str = "/sts/services/Sosi2OIOSaml";

/// Which exchange a load request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// A self-signed user card to NewSecurityTokenService.
    Dgws,
    /// An STS-signed user card (in ActAs) to Sosi2OIOSaml for the development audience.
    Sosi2OioSaml,
}

/// One request of a load run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it was sent, relative to the run's start.
    pub sent: Duration,
    /// When its response was complete.
    pub done: Duration,
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: Vec<u8>,
    /// The exchange.
    pub exchange: Exchange,
    /// Sosi2OIOSaml: the certificate (DER) that signed the presented card, and when the card
    /// was issued (its NewSecurityTokenService response complete), relative to the run's start.
    pub card: Option<(Vec<u8>, Duration)>,
}

/// Steady traffic from `clients` threads until stopped (and at most `limit`), each thread
/// sending one request at a time.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    samples: Arc<Mutex<Vec<Sample>>>,
    /// When the load started.
    pub start: Instant,
}

impl Load {
    /// Starts DGWS load from `clients` threads against the server (its loopback address).
    pub fn start(server: &Server, clients: usize, limit: Duration) -> Load {
        Self::start_mixed(server, clients, 0, limit)
    }

    /// Starts `dgws` threads of NewSecurityTokenService requests and `oio` threads of
    /// Sosi2OIOSaml requests. An OIO thread gets its card from the server's
    /// NewSecurityTokenService (that request is a DGWS sample too) and presents it under a
    /// fresh MessageID each time; the first OIO thread keeps its first card for the whole run
    /// (so a card issued early is exchanged late), the others fetch a new one every
    /// [`CARD_REUSE`] exchanges.
    pub fn start_mixed(server: &Server, dgws: usize, oio: usize, limit: Duration) -> Load {
        Self::start_mixed_at(server.addr, dgws, oio, limit)
    }

    /// The same load against any address (a load balancer in front of several servers).
    pub fn start_mixed_at(addr: std::net::SocketAddr, dgws: usize, oio: usize, limit: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let threads = (0..dgws + oio)
            .map(|i| {
                let (stop, samples) = (stop.clone(), samples.clone());
                let kind = if i < dgws { Exchange::Dgws } else { Exchange::Sosi2OioSaml };
                let keep_first_card = i == dgws;
                std::thread::spawn(move || {
                    let push = |sample: Sample| samples.lock().unwrap().push(sample);
                    // (card, its signer certificate, when it was issued), uses left.
                    let mut card: Option<(Vec<u8>, Vec<u8>, Duration)> = None;
                    let mut uses = 0usize;
                    while !stop.load(Ordering::Acquire) && start.elapsed() < limit {
                        if kind == Exchange::Sosi2OioSaml && (card.is_none() || uses == 0) {
                            let body = request();
                            let sent = start.elapsed();
                            let (status, body) = post(addr, NEW, &body);
                            let done = start.elapsed();
                            if status == 200 {
                                let issued = segl::dev::oio::issued_card(&body).expect("an issued card");
                                card = Some((issued, signing_certificate(&body), done));
                                uses = if keep_first_card { usize::MAX } else { CARD_REUSE };
                            }
                            push(Sample { sent, done, status, body, exchange: Exchange::Dgws, card: None });
                            continue;
                        }
                        let (path, body, presented) = match &card {
                            Some((card, cert, issued)) if kind == Exchange::Sosi2OioSaml => {
                                uses -= 1;
                                let body = segl::dev::oio::sosi2oiosaml_request(
                                    card,
                                    segl::dev::audience::DEV_AUDIENCE,
                                    segl::dev::oio::CardPlacement::ActAs,
                                );
                                (SOSI2OIOSAML, body, Some((cert.clone(), *issued)))
                            }
                            _ => (NEW, request(), None),
                        };
                        let sent = start.elapsed();
                        let (status, body) = post(addr, path, &body);
                        push(Sample {
                            sent,
                            done: start.elapsed(),
                            status,
                            body,
                            exchange: kind,
                            card: presented,
                        });
                    }
                })
            })
            .collect();
        Load { stop, threads, samples, start }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// How many responses arrived so far.
    pub fn count(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    /// Stops the load and returns every sample, in completion order.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop_threads();
        let mut samples = std::mem::take(&mut *self.samples.lock().unwrap());
        samples.sort_by_key(|s| s.done);
        samples
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    /// A failing test still stops its clients before the process exits (threads inside
    /// SoftHSM during exit crash it).
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// POSTs over a fresh connection; (status, body). A transport failure is status 0.
pub fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: \"Issue\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let Ok(mut s) = std::net::TcpStream::connect(addr) else { return (0, b"connect failed".to_vec()) };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = s.write_all(head.as_bytes()).and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() {
        return (0, b"read failed or timed out".to_vec());
    }
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return (0, raw) };
    let status = std::str::from_utf8(&raw[..split])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, raw[split + 4..].to_vec())
}

/// GET over a fresh connection; (status, body).
pub fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let status = std::str::from_utf8(&raw[..split]).unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// The certificate (DER) in the issued card's KeyInfo, after segl's own verifier accepted
/// the card's signature with it.
pub fn signing_certificate(body: &[u8]) -> Vec<u8> {
    let doc = Document::parse(Bytes::copy_from_slice(body), &Limits::default())
        .unwrap_or_else(|e| panic!("response is not XML ({e}): {}", String::from_utf8_lossy(body)));
    let card =
        doc.by_id("IDCard").unwrap_or_else(|| panic!("no issued card in {}", String::from_utf8_lossy(body)));
    let signature = doc.child(card, ns::DS, "Signature").expect("card signature");
    segl::xml::dsig::verify::verify_enveloped(&doc, signature)
        .expect("segl verifies the issued card")
        .certificate_der
}

/// Sosi2OIOSaml exchanges an OIO load thread makes with one card before it fetches another.
pub const CARD_REUSE: usize = 8;

/// The certificate (DER) in the KeyInfo of an OIO answer's header signature, after segl's own
/// verifier accepted the SIG-HDR signature with it.
pub fn oio_header_certificate(body: &[u8]) -> Vec<u8> {
    let doc = Document::parse(Bytes::copy_from_slice(body), &Limits::default())
        .unwrap_or_else(|e| panic!("response is not XML ({e}): {}", String::from_utf8_lossy(body)));
    segl::xml::dsig::header::verify_header(&doc, &segl::xml::dsig::policy::Policy::FEDERATION)
        .unwrap_or_else(|e| {
            panic!("segl rejects the header signature ({e}): {}", String::from_utf8_lossy(body))
        })
        .certificate_der
}

/// The certificate that signed a response: the issued card's (DGWS) or the header
/// signature's (OIO).
pub fn response_certificate(sample: &Sample) -> Vec<u8> {
    match sample.exchange {
        Exchange::Dgws => signing_certificate(&sample.body),
        Exchange::Sosi2OioSaml => oio_header_certificate(&sample.body),
    }
}

/// The faultcode of a SOAP fault body, if it is one.
pub fn fault_code(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("<faultcode>")? + "<faultcode>".len();
    let end = text[start..].find("</faultcode>")? + start;
    Some(text[start..end].to_owned())
}

/// Writes `pem` to a file in the test state and returns its path.
pub fn write_pem(name: &str, pem: &str) -> PathBuf {
    let path = env().dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// PEM of a DER certificate.
pub fn pem(der: &[u8]) -> String {
    segl::signing::keys::pem("CERTIFICATE", der)
}

/// The p11-kit client module, if installed.
pub fn p11kit_client_module() -> Option<PathBuf> {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
        "/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so",
        "/usr/lib64/pkcs11/p11-kit-client.so",
        "/usr/lib/pkcs11/p11-kit-client.so",
    ];
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// `p11-kit server` exporting the test's STS token over a Unix socket: the stand-in for a
/// networked HSM. Killed (with the per-connection processes it forked) on drop.
pub struct P11KitServer {
    child: Child,
    /// The socket clients connect to.
    pub socket: PathBuf,
}

impl P11KitServer {
    /// Starts the server on `socket` (replacing a stale socket file).
    pub fn start(socket: &Path) -> P11KitServer {
        use std::os::unix::process::CommandExt;
        let _ = std::fs::remove_file(socket);
        let conf = env().config.hsm.path_env.get("SOFTHSM2_CONF").expect("test config sets SOFTHSM2_CONF");
        let child = Command::new("p11-kit")
            .args(["server", "-f", "--provider", "/usr/lib/softhsm/libsofthsm2.so", "-n"])
            .arg(socket)
            .arg(format!("pkcs11:token={}", env().config.hsm.token_label))
            .env("SOFTHSM2_CONF", conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so the forked per-connection servers die with it.
            .process_group(0)
            .spawn()
            .expect("start p11-kit server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "p11-kit server did not create {}", socket.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        P11KitServer { child, socket: socket.to_owned() }
    }

    /// Pins the server, and the per-connection servers it forks from now on, to `cpu`: the
    /// HSM gets a CPU of its own, as a networked HSM has its own hardware.
    pub fn pin_to_cpu(&self, cpu: usize) {
        let status = Command::new("taskset")
            .args(["--all-tasks", "--pid", "--cpu-list", &cpu.to_string(), &self.child.id().to_string()])
            .stdout(Stdio::null())
            .status()
            .expect("run taskset");
        assert!(status.success(), "taskset could not pin the p11-kit server to CPU {cpu}");
    }

    /// CPU seconds the server and the per-connection servers it forked have used so far: the
    /// HSM's own work (each C_Sign, and its side of the RPC).
    pub fn cpu_seconds(&self) -> f64 {
        crate::common::process_group_cpu_seconds(self.child.id())
    }

    /// The server's address for `P11_KIT_SERVER_ADDRESS`.
    pub fn address(&self) -> String {
        format!("unix:path={}", self.socket.display())
    }

    /// Stops the server and every connection it serves without closing anything (SIGSTOP):
    /// a networked HSM that hangs. Calls already sent get no reply until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal_group("-STOP");
    }

    /// Lets a paused server answer again (SIGCONT).
    pub fn resume(&self) {
        self.signal_group("-CONT");
    }

    fn signal_group(&self, signal: &str) {
        let group = format!("-{}", self.child.id());
        let status = Command::new("kill").args([signal, "--", &group]).status().expect("run kill");
        assert!(status.success(), "kill {signal} of the p11-kit server's group failed");
    }

    /// Kills the server and every connection it serves (what a crashed or restarted
    /// networked HSM looks like to its clients).
    pub fn kill(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Drop for P11KitServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Configuration edit: sign through the p11-kit client module at `address`, in `mode`.
pub fn via_p11kit(text: &mut String, module: &Path, address: &str, mode: &str) {
    *text = text
        .replace(
            "module = \"/usr/lib/softhsm/libsofthsm2.so\"",
            &format!("module = \"{}\"", module.display()),
        )
        .replace(
            "signer = \"inline\"",
            &format!("signer = \"{mode}\"\nenv = {{ P11_KIT_SERVER_ADDRESS = \"{address}\" }}"),
        );
}
