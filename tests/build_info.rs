//! Which code runs: the binary, its start-up log and its `/metrics` name the commit it was
//! built from (recorded by the build script), so that a report measured with it names the code
//! that was measured, wherever the tool was started.

mod common;

use std::process::Command;

use common::Server;

/// The commit this checkout is at, or `None` (with a note) outside a git checkout.
fn head() -> Option<String> {
    let out =
        Command::new("git").args(["rev-parse", "HEAD"]).current_dir(env!("CARGO_MANIFEST_DIR")).output();
    match out {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        _ => {
            eprintln!("SKIP: not a git checkout (the build records the commit as unknown)");
            None
        }
    }
}

#[test]
fn the_binary_and_its_metrics_name_the_commit_built() {
    let Some(head) = head() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_segl")).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{version}");
    // `-dirty` follows when tracked files differ from the commit (a developer's tree).
    assert!(
        version.starts_with(&format!("segl {} (commit {head}", env!("CARGO_PKG_VERSION"))),
        "segl --version says {version:?}, the checkout is at {head}"
    );

    let server = Server::start();
    let metrics = server.metrics();
    let info = metrics
        .lines()
        .find(|l| l.starts_with("segl_build_info{"))
        .unwrap_or_else(|| panic!("no segl_build_info in /metrics:\n{metrics}"));
    assert!(info.contains(&format!("commit=\"{head}")), "{info}");
    assert!(info.ends_with(" 1"), "{info}");
    // The line comes once every core listens, which may be just after the server answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log().contains("segl serving") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let serving = server.log().lines().find(|l| l.contains("segl serving")).map(str::to_owned);
    assert!(serving.as_deref().is_some_and(|l| l.contains(&format!("commit=\"{head}"))), "{}", server.log());
}
