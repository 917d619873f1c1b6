//! Cargo's build script for the `segl` package (not a module of the crate). It records which
//! commit the code is built from, so that a binary, its `/metrics` and the reports measured
//! with it name the code that ran, not whatever checkout a tool happens to be started in.
//! Outside a git checkout (or without git) the commit is `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    out.status.success().then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty());
    // Tracked files changed since that commit (untracked scratch files do not count).
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let commit = match commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c,
        None => "unknown".to_owned(),
    };
    let describe = git(&["describe", "--always", "--dirty"]).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SEGL_COMMIT={commit}");
    println!("cargo:rustc-env=SEGL_DESCRIBE={describe}");

    // Run again when the commit moves (HEAD, the index a commit or checkout rewrites) or a
    // tracked source changes (the dirty mark).
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        for file in ["HEAD", "index"] {
            let path = Path::new(&git_dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    for source in
        ["Cargo.toml", "Cargo.lock", "src", "pkcs11", "bench/src", "bench/benches", "config", "systemd"]
    {
        if Path::new(source).exists() {
            println!("cargo:rerun-if-changed={source}");
        }
    }
}
