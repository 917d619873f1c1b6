//! `segl dev setup` on a copy of the embedded configuration, as the README's "A second, private
//! instance" does it: the copy gets its own state, serves on its own ports, and setup never
//! writes the development CRL into a CRL directory outside that state (an operator's real one).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NEW: &str = "/sts/services/NewSecurityTokenService";

fn segl(args: &[&str], config: &Path) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_segl"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run segl");
    assert!(out.status.success(), "segl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A `segl serve`, killed on drop.
struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_copied_configuration_is_a_private_instance_and_setup_keeps_out_of_foreign_crl_dirs() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("dev-setup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // The copy lives in <root>/config, so its `../state` paths name <root>/state.
    std::fs::create_dir_all(root.join("config")).unwrap();
    let embedded =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/segl.toml")).unwrap();
    let ip = common::private_loopback();
    let (port, admin) = (common::free_port_on(ip), common::free_port_on(ip));
    let copy = embedded
        .replace("127.0.0.1:8080", &format!("{ip}:{port}"))
        .replace("127.0.0.1:9090", &format!("{ip}:{admin}"));
    assert!(copy.contains(&format!("listen = \"{ip}:{port}\"")) && copy.contains(&format!("{ip}:{admin}")));
    let config = root.join("config/segl.toml");

    // An operator's CRL directory, named by the copy: setup must leave it alone.
    let operator_crls = root.join("etc-segl-crl");
    std::fs::create_dir_all(&operator_crls).unwrap();
    std::fs::write(operator_crls.join("oces.crl"), b"the operator's").unwrap();
    let crl_line = "crl_dir = \"../state/crl\"";
    assert!(copy.contains(crl_line), "the embedded configuration no longer has {crl_line}");
    std::fs::write(&config, copy.replace(crl_line, "crl_dir = \"../etc-segl-crl\"")).unwrap();
    let stderr = String::from_utf8(segl(&["dev", "setup"], &config).stderr).unwrap();
    assert!(stderr.contains("skipped the development CRL: trust.crl_dir"), "{stderr}");
    assert!(!stderr.contains("created CRL"), "{stderr}");
    let files: Vec<_> = std::fs::read_dir(&operator_crls).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["oces.crl"], "setup wrote into the operator's CRL directory");
    assert!(!root.join("state/crl").exists());

    // Inside the state directory the CRL is written, and nothing else is made again.
    std::fs::write(&config, &copy).unwrap();
    let stderr = String::from_utf8(segl(&["dev", "setup"], &config).stderr).unwrap();
    let created: Vec<_> = stderr.lines().filter(|l| l.starts_with("created ")).collect();
    assert_eq!(created.len(), 1, "{stderr}");
    assert!(created[0].contains("state/crl/dev-issuing-ca.crl (revokes revoked-moces)"), "{stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");

    // The copy serves on its own ports with its own STS key.
    let log = root.join("serve.log");
    let server = Serving(
        Command::new(env!("CARGO_BIN_EXE_segl"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let admin_addr = std::net::SocketAddr::from((ip, admin));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(admin_addr).is_err()
        || common::admin_get(admin_addr, "/readyz").0 != 200
    {
        assert!(
            Instant::now() < deadline,
            "the copy did not start:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let request = root.join("request.xml");
    segl(&["dev", "request", "--out", request.to_str().unwrap()], &config);
    let reply = common::post_to((ip, port).into(), NEW, &std::fs::read(&request).unwrap());
    assert_eq!(reply.status, 200, "{}", reply.text());
    common::xmlsec_verify(&reply.body, &root.join("state/pki/sts-signing.pem"))
        .unwrap_or_else(|e| panic!("not signed by the copy's own STS key: {e}"));
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}
