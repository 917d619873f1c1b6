//! The systemd unit passes `systemd-analyze verify`, and its hardening keeps the exposure
//! score of `systemd-analyze security` low.

use std::path::Path;
use std::process::Command;

fn analyze_available() -> bool {
    let ok = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: systemd-analyze is not installed (tests/install-host-packages installs it)");
    }
    ok
}

/// The unit with ExecStart pointing at the binary under test (verify checks it exists).
fn unit_under_test() -> std::path::PathBuf {
    let unit =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/segl.service")).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("segl.service");
    std::fs::write(&path, unit.replace("/usr/bin/segl", env!("CARGO_BIN_EXE_segl"))).unwrap();
    path
}

#[test]
fn unit_verifies() {
    if !analyze_available() {
        return;
    }
    // verify runs `man segl(8)` for the unit's Documentation=: the page from the tree, as the
    // Debian package installs it (tests/debian_package.rs checks the installed one).
    let man = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("systemd-man-{}", std::process::id()));
    std::fs::create_dir_all(man.join("man8")).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/segl.8"), man.join("man8/segl.8"))
        .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(unit_under_test())
        .env("MANPATH", &man)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn unit_exposure_is_low() {
    if !analyze_available() {
        return;
    }
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_under_test())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for segl.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in: {text}"));
    println!("systemd-analyze security exposure: {score}");
    assert!(score <= 2.0, "exposure {score} (> 2.0):\n{text}");
}
