//! The Debian package: `cargo deb` with the metadata in Cargo.toml and the assets in systemd/
//! and config/.
//!
//! Always (fast): segl(8) names every command the CLI has, the package's files and maintainer
//! scripts are in the tree and sound, and the production configuration passes
//! `segl config check` once trust anchors exist (and names the missing file before).
//!
//! With `SEGL_TEST_DEB=1` (root, debootstrap and lintian: `SEGL_TEST_DEB=1
//! tests/install-host-packages`): builds the package (a release build), checks its contents
//! and runs lintian on it, installs it with apt into a clean minbase root of the running Debian
//! release (cached under the target directory, see tests/debian-package), and there, with no
//! source tree in sight: the account and directories the maintainer scripts make,
//! `segl config check`, `systemd-analyze verify` of the installed unit, the operator's first
//! bring-up from segl(8) (SoftHSM token, PIN file, key, certificate, `segl serve` answering
//! /readyz), an upgrade that keeps the operator's configuration, and a purge that keeps the
//! token. Too slow for CI by default (a cold run builds segl in release mode and bootstraps
//! Debian): see the README.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// Runs a command and returns its output; panics with both streams unless it succeeded.
fn ok(command: &mut Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The subcommands listed under "Commands:" in a clap help text, without `help`.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

fn segl_help(args: &[&str]) -> String {
    text(&ok(Command::new(env!("CARGO_BIN_EXE_segl")).args(args).arg("--help")).stdout)
}

/// The tag lines (the line after each `.TP`) of segl(8), as man shows them: without font
/// escapes and with `\-` as `-`.
fn man_page_tags() -> Vec<String> {
    let page = read(repo("systemd/segl.8"));
    let lines: Vec<&str> = page.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| {
            let mut tag = w[1].replace("\\-", "-");
            for escape in ["\\fB", "\\fI", "\\fR", "\\fP"] {
                tag = tag.replace(escape, "");
            }
            tag.trim_start_matches(".BR ").trim_start_matches(".B ").trim_start_matches(".BI ").to_owned()
        })
        .collect()
}

#[test]
fn the_man_page_names_every_command() {
    let tags = man_page_tags();
    let top = subcommands(&segl_help(&[]));
    assert!(top.contains(&"serve".to_owned()) && top.contains(&"keys".to_owned()), "{top:?}");
    for command in &top {
        let prefix = format!("segl {command}");
        let entries: Vec<&String> = tags.iter().filter(|t| t.starts_with(&prefix)).collect();
        assert!(!entries.is_empty(), "segl(8) has no entry for `{prefix}`: {tags:#?}");
        for sub in subcommands(&segl_help(&[command])) {
            // An entry may name several subcommands: "segl dev request, sosi2oiosaml, …".
            let named = entries.iter().any(|t| {
                t[prefix.len()..].split(|c: char| c == ',' || c.is_whitespace()).any(|word| word == sub)
            });
            assert!(named, "segl(8) does not describe `{prefix} {sub}`: {entries:#?}");
        }
    }
    // And no entry for a command that is gone.
    for tag in tags.iter().filter(|t| t.starts_with("segl ")) {
        let command = tag.split_whitespace().nth(1).unwrap().trim_end_matches(',');
        assert!(command == "help" || top.iter().any(|c| c == command), "segl(8) describes `{tag}`");
    }
}

#[test]
fn the_package_files_are_in_the_tree_and_the_maintainer_scripts_are_sound() {
    let manifest: toml::Value = toml::from_str(&read(repo("Cargo.toml"))).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut destinations = Vec::new();
    for asset in assets {
        let [source, dest, mode] = asset.as_array().unwrap().as_slice() else { panic!("{asset}") };
        let (source, dest) = (source.as_str().unwrap(), dest.as_str().unwrap());
        if !source.starts_with("target/release/") {
            assert!(repo(source).is_file(), "asset {source} is not in the tree");
        }
        assert!(mode.as_str() == Some(if dest.starts_with("usr/bin/") { "755" } else { "644" }), "{asset}");
        destinations.push(dest.to_owned());
    }
    for wanted in [
        "usr/bin/",
        "usr/lib/systemd/system/segl.service",
        "usr/lib/sysusers.d/segl.conf",
        "usr/lib/tmpfiles.d/segl.conf",
        "etc/segl/segl.toml",
        "usr/share/man/man8/segl.8",
        "usr/share/doc/segl/copyright",
    ] {
        assert!(destinations.iter().any(|d| d == wanted), "no asset installs {wanted}: {destinations:?}");
    }

    // The changelog's newest entry is this version (cargo-deb's default revision is 1).
    let changelog = read(repo(deb["changelog"].as_str().unwrap()));
    let first = changelog.lines().next().unwrap();
    let version = format!("segl ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(first.starts_with(&version), "systemd/deb/changelog starts {first:?}, not {version:?}");

    let scripts = repo(deb["maintainer-scripts"].as_str().unwrap());
    for name in ["postinst", "prerm", "postrm"] {
        let path = scripts.join(name);
        let script = read(&path);
        assert!(script.starts_with("#!/bin/sh\n") && script.contains("\nset -e\n"), "{name}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is not executable");
        ok(Command::new("sh").arg("-n").arg(&path));
    }
    // The postinst makes the account before the directories it owns, and enables nothing.
    let postinst = read(scripts.join("postinst"));
    let sysusers = postinst.find("systemd-sysusers").expect("postinst runs systemd-sysusers");
    let tmpfiles = postinst.find("systemd-tmpfiles").expect("postinst runs systemd-tmpfiles");
    assert!(sysusers < tmpfiles, "the postinst must create the segl user before its directories");
    for line in postinst.lines().filter(|l| !l.trim_start().starts_with('#')) {
        assert!(!line.contains(" enable") && !line.contains(" start"), "the postinst starts segl: {line}");
    }
}

/// A development CA pair (a root and an issuing CA), standing in for the trust anchors an
/// operator provides.
struct DevPki {
    root_pem: String,
    issuing_pem: String,
    issuing: Issuer<'static, KeyPair>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::OrganizationName, "segl package test");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn dev_pki() -> DevPki {
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("segl package test root CA");
    let root_pem = root_params.self_signed(&root_key).unwrap().pem();
    let root = Issuer::new(root_params, root_key);
    let issuing_key = KeyPair::generate().unwrap();
    let issuing_params = ca_params("segl package test issuing CA");
    let issuing_pem = issuing_params.signed_by(&issuing_key, &root).unwrap().pem();
    DevPki { root_pem, issuing_pem, issuing: Issuer::new(issuing_params, issuing_key) }
}

impl DevPki {
    /// An empty CRL of the issuing CA (config check loads it and checks its issuer).
    fn crl_der(&self) -> Vec<u8> {
        let now = time::OffsetDateTime::now_utc();
        rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuing)
        .unwrap()
        .der()
        .to_vec()
    }

    /// The certificate the issuing CA makes of a request written by `segl keys csr`.
    fn certify(&self, csr_pem: &str) -> String {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).unwrap();
        let now = time::OffsetDateTime::now_utc();
        csr.params.not_before = now - time::Duration::hours(1);
        csr.params.not_after = now + time::Duration::days(30);
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::ContentCommitment];
        csr.signed_by(&self.issuing).unwrap().pem()
    }
}

#[test]
fn the_production_configuration_passes_the_check_once_its_trust_anchors_exist() {
    let production = read(repo("config/segl.production.toml"));
    assert!(!production.contains("../state") && !production.contains("[dev]"), "development paths");
    // The same file with /etc/segl and /var/lib/segl moved into a directory of the test's own.
    let root =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("production-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (etc, var) = (root.join("etc/segl"), root.join("var/lib/segl"));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(var.join("crl")).unwrap();
    let moved = production
        .replace("\"/etc/segl/", &format!("\"{}/", etc.display()))
        .replace("\"/var/lib/segl/", &format!("\"{}/", var.display()));
    assert!(!moved.contains("\"/etc/segl") && !moved.contains("\"/var/lib/segl"), "{moved}");
    let config = etc.join("segl.toml");
    std::fs::write(&config, moved).unwrap();
    let check =
        || Command::new(env!("CARGO_BIN_EXE_segl")).args(["config", "check"]).arg(&config).output().unwrap();

    let refused = check();
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "checked without trust anchors: {stderr}");
    assert!(stderr.contains(&format!("{}/trust/anchors.pem", etc.display())), "{stderr}");

    let pki = dev_pki();
    std::fs::create_dir_all(etc.join("trust")).unwrap();
    std::fs::write(etc.join("trust/anchors.pem"), &pki.root_pem).unwrap();
    std::fs::write(etc.join("trust/intermediates.pem"), &pki.issuing_pem).unwrap();
    std::fs::write(var.join("crl/issuing.crl"), pki.crl_der()).unwrap();
    let checked = check();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    assert_eq!(text(&checked.stdout), format!("{}: ok\n", config.display()));
    std::fs::remove_dir_all(&root).unwrap();
}

/// The Debian package end to end; needs SEGL_TEST_DEB=1 (see the module's documentation).
#[test]
fn the_debian_package_builds_lints_installs_and_serves_in_a_clean_root() {
    if std::env::var_os("SEGL_TEST_DEB").is_none_or(|v| v != "1") {
        eprintln!(
            "SKIP: the Debian package test builds segl in release mode and bootstraps Debian; \
             run it with SEGL_TEST_DEB=1 (as root, after SEGL_TEST_DEB=1 tests/install-host-packages)"
        );
        return;
    }
    let started = Instant::now();
    let phase = |name: &str| println!("debian package: {name} done after {:.0?}", started.elapsed());
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().to_owned();
    let cache = target.join("debian-package");
    let script = || {
        let mut command = Command::new(repo("tests/debian-package"));
        command.env("CARGO_TARGET_DIR", &target);
        command
    };

    // Build.
    let built = ok(script().arg("build").arg(cache.join("out")));
    let deb = PathBuf::from(text(&built.stdout).trim());
    assert!(deb.file_name().unwrap().to_str().unwrap().starts_with("segl_"), "{}", deb.display());
    phase("cargo deb");

    check_control_fields(&deb);
    check_contents(&deb);
    let lintian = Command::new("lintian")
        // (Not --show-overrides: with it, overridden tags count for --fail-on too.)
        .args(["--fail-on", "error,warning,info", "--display-info", "--pedantic"])
        .arg(&deb)
        .output()
        .expect("lintian (SEGL_TEST_DEB=1 tests/install-host-packages installs it)");
    println!("lintian:\n{}", text(&lintian.stdout));
    assert!(lintian.status.success(), "lintian:\n{}{}", text(&lintian.stdout), text(&lintian.stderr));
    assert!(!text(&lintian.stdout).lines().any(|l| l.starts_with("E: ") || l.starts_with("W: ")));
    phase("contents and lintian");

    // A clean root; roots left by an earlier failed run go first.
    let _ = std::fs::remove_dir_all(cache.join("roots"));
    let root = cache.join("roots").join(std::process::id().to_string());
    ok(script().arg("root").arg(&root));
    phase("clean root");
    std::fs::copy(&deb, root.join("tmp/segl.deb")).unwrap();
    ok(script().args(["apt"]).arg(&root).arg("update"));
    // The package and its dependencies (Recommends too, as apt installs them by default);
    // man-db so that systemd-analyze verify can check the unit's man:segl(8).
    ok(script().args(["apt"]).arg(&root).args(["install", "/tmp/segl.deb", "man-db"]));
    phase("apt install");
    let run_in = |shell: &str, script_text: &str| {
        ok(script().arg("run").arg(&root).args([shell, "-euc", script_text]))
    };
    let run = |script_text: &str| run_in("sh", script_text);
    let run_out = |script_text: &str| text(&run(script_text).stdout);

    // Nothing of the build machine is visible, and the installed binary runs.
    assert_eq!(run_out("test ! -e /work && test ! -e /root/.cargo && echo absent"), "absent\n");
    // The version, and the commit the package was built from (`unknown` outside a checkout).
    let version = run_out("segl --version");
    assert!(
        version.starts_with(&format!("segl {} (commit ", env!("CARGO_PKG_VERSION")))
            && version.ends_with(")\n"),
        "{version}"
    );
    let ldd = run_out("ldd /usr/bin/segl");
    assert!(!ldd.contains("not found"), "{ldd}");

    // What the maintainer scripts made: the account and the directories of the tmpfiles.d file.
    let account = run_out("getent passwd segl");
    assert!(account.contains(":/var/lib/segl:"), "{account}");
    let modes = run_out(
        "stat -c '%n %a %U:%G' /etc/segl /var/lib/segl /var/lib/segl/audit /var/lib/segl/crl \
         /var/lib/segl/softhsm/tokens /etc/segl/segl.toml /usr/bin/segl",
    );
    for line in [
        "/etc/segl 750 root:segl",
        "/var/lib/segl 750 segl:segl",
        "/var/lib/segl/audit 700 segl:segl",
        "/var/lib/segl/crl 750 segl:segl",
        "/var/lib/segl/softhsm/tokens 700 segl:segl",
        "/etc/segl/segl.toml 644 root:root",
        "/usr/bin/segl 755 root:root",
    ] {
        assert!(modes.lines().any(|l| l == line), "no {line:?} in:\n{modes}");
    }
    assert!(
        !run_out("ls /etc/systemd/system/multi-user.target.wants").contains("segl"),
        "the unit is enabled"
    );

    // The unit as installed, against the installed binary, man page and systemd.
    let verify = run("systemd-analyze verify /usr/lib/systemd/system/segl.service");
    assert!(text(&verify.stderr).trim().is_empty(), "systemd-analyze verify:\n{}", text(&verify.stderr));
    assert_eq!(run_out("man -w segl"), "/usr/share/man/man8/segl.8.gz\n");

    // The installed configuration is refused until the operator's trust anchors are there…
    let refused =
        script().arg("run").arg(&root).args(["segl", "config", "check", "/etc/segl/segl.toml"]).output();
    let refused = refused.unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("/etc/segl/trust/anchors.pem"), "{}", text(&refused.stderr));
    // …and checked once they are (development ones here, with a CRL of the issuing CA), before
    // any token exists.
    let pki = dev_pki();
    std::fs::create_dir_all(root.join("etc/segl/trust")).unwrap();
    std::fs::write(root.join("etc/segl/trust/anchors.pem"), &pki.root_pem).unwrap();
    std::fs::write(root.join("etc/segl/trust/intermediates.pem"), &pki.issuing_pem).unwrap();
    std::fs::write(root.join("var/lib/segl/crl/issuing.crl"), pki.crl_der()).unwrap();
    assert_eq!(run_out("segl config check /etc/segl/segl.toml"), "/etc/segl/segl.toml: ok\n");
    phase("config check and systemd-analyze verify");

    // The operator's first bring-up, as segl(8) has it: a SoftHSM token in the state directory
    // (made by the segl user), the PIN file, a key generated in the token and certified.
    const PIN: &str = "pkg-test-4711";
    run(&format!(
        "install -m 0640 -g segl /dev/null /etc/segl/sts-token.pin
         echo {PIN} > /etc/segl/sts-token.pin
         runuser -u segl -- env SOFTHSM2_CONF=/etc/segl/softhsm2.conf \
             softhsm2-util --init-token --free --label segl-sts --pin {PIN} --so-pin so-{PIN} >/dev/null
         C=/etc/segl/segl.toml
         runuser -u segl -- segl keys generate sts-test --bits 2048 --config $C
         runuser -u segl -- segl keys csr sts-test --config $C \
             --subject 'C=DK,O=segl package test // CVR:12345678,CN=segl package test STS,serialNumber=CVR:12345678-FID:1' \
             > /tmp/sts-test.csr"
    ));
    let certificate = pki.certify(&read(root.join("tmp/sts-test.csr")));
    std::fs::write(root.join("tmp/sts-test.pem"), certificate).unwrap();
    let keys = run_out(
        "C=/etc/segl/segl.toml
         chmod 0644 /tmp/sts-test.pem
         runuser -u segl -- segl keys import-cert sts-test /tmp/sts-test.pem --config $C
         runuser -u segl -- segl keys activate sts-test --config $C
         runuser -u segl -- segl keys list --config $C",
    );
    assert!(keys.lines().any(|l| l.starts_with("sts-test ") && l.contains(" active ")), "{keys}");

    // segl serve as the unit runs it (user segl; LimitMEMLOCK=64M where this machine lets the
    // test raise it, else io_uring registers no buffers and says so) answers /readyz, then
    // drains on SIGTERM and exits 0; the PIN is in no log.
    // (bash for its /dev/tcp: the root has no HTTP client.)
    let served = text(&run_in(
        "bash",
        r#"ulimit -l 65536 2>/dev/null || true
         setpriv --reuid=segl --regid=segl --init-groups segl serve --config /etc/segl/segl.toml 2>/tmp/serve.log &
         pid=$!
         answer=""
         for _ in $(seq 100); do
             if exec 3<>/dev/tcp/127.0.0.1/9090; then
                 printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3
                 answer=$(cat <&3)
                 exec 3>&-
                 case "$answer" in *"200 OK"*) break ;; esac
             fi 2>/dev/null
             sleep 0.1
         done
         kill -TERM "$pid"
         status=0
         wait "$pid" || status=$?
         printf '%s\nexit %s\n' "$answer" "$status"
         cat /tmp/serve.log >&2"#,
    )
    .stdout);
    assert!(served.contains("200 OK") && served.contains("ready"), "{served}");
    assert!(served.ends_with("exit 0\n"), "{served}");
    let log = read(root.join("tmp/serve.log"));
    assert!(log.contains("segl serving") && log.contains("key=sts-test"), "{log}");
    assert!(!log.contains(PIN), "the PIN is in the log:\n{log}");
    let key_audit = read(root.join("var/lib/segl/key-audit.jsonl"));
    assert!(key_audit.contains("\"activate\"") && !key_audit.contains(PIN), "{key_audit}");
    let audit = run_out("stat -c '%a %U' /var/lib/segl/audit/segl-audit.jsonl /var/lib/segl/key-audit.jsonl");
    assert!(audit.lines().next() == Some("600 segl"), "{audit}");
    phase("bring-up and serve");

    // An upgrade (the same package again) keeps the operator's configuration and the token.
    run("sed -i 's/^issuer = \"SEGL-STS\"/issuer = \"SEGL-PKG-TEST\"/' /etc/segl/segl.toml");
    run("dpkg -i /tmp/segl.deb >/dev/null");
    assert!(run_out("cat /etc/segl/segl.toml").contains("issuer = \"SEGL-PKG-TEST\""));
    // A purge takes the package's files and configuration, not the token, the logs or the user.
    run("dpkg --purge segl >/dev/null");
    let left = run_out(
        "for p in /usr/bin/segl /etc/segl/segl.toml /etc/segl/softhsm2.conf /usr/lib/systemd/system/segl.service \
                  /var/lib/segl/softhsm/tokens /var/lib/segl/key-audit.jsonl; do
             if [ -e $p ]; then echo \"kept $p\"; else echo \"gone $p\"; fi
         done
         getent passwd segl >/dev/null && echo 'kept user'",
    );
    for line in [
        "gone /usr/bin/segl",
        "gone /etc/segl/segl.toml",
        "gone /etc/segl/softhsm2.conf",
        "gone /usr/lib/systemd/system/segl.service",
        "kept /var/lib/segl/softhsm/tokens",
        "kept /var/lib/segl/key-audit.jsonl",
        "kept user",
    ] {
        assert!(left.lines().any(|l| l == line), "no {line:?} in:\n{left}");
    }
    assert!(!run_out("ls /var/lib/segl/softhsm/tokens").trim().is_empty(), "the token is gone");
    phase("upgrade and purge");

    std::fs::remove_dir_all(&root).unwrap();
}

/// The control fields: the name, version, what it needs at run time and what it recommends.
fn check_control_fields(deb: &Path) {
    let fields = text(&ok(Command::new("dpkg-deb").arg("--field").arg(deb)).stdout);
    let field = |name: &str| {
        fields
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{fields}"))
            .to_owned()
    };
    assert_eq!(field("Package"), "segl");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    let depends = field("Depends");
    for needed in ["libc6 (>= ", "procps", "systemd | systemd-sysusers", "systemd | systemd-tmpfiles"] {
        assert!(depends.contains(needed), "Depends: {depends} (no {needed})");
    }
    assert!(!depends.contains("softhsm"), "SoftHSM is recommended, not required: {depends}");
    assert_eq!(field("Recommends"), "softhsm2");
}

/// The files, their modes and owners, the conffiles, and the binary stripped with its debug
/// information in the -dbgsym package.
fn check_contents(deb: &Path) {
    let listing = text(&ok(Command::new("dpkg-deb").arg("--contents").arg(deb)).stdout);
    let files: Vec<(String, String)> = listing
        .lines()
        .filter(|l| !l.starts_with('d'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields[5].trim_start_matches('.').to_owned(), format!("{} {}", fields[0], fields[1]))
        })
        .collect();
    let mut paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/etc/segl/segl.toml",
            "/etc/segl/softhsm2.conf",
            "/usr/bin/segl",
            "/usr/lib/systemd/system/segl.service",
            "/usr/lib/sysusers.d/segl.conf",
            "/usr/lib/tmpfiles.d/segl.conf",
            "/usr/share/doc/segl/README.md",
            "/usr/share/doc/segl/changelog.Debian.gz",
            "/usr/share/doc/segl/copyright",
            "/usr/share/lintian/overrides/segl",
            "/usr/share/man/man8/segl.8.gz",
        ]
    );
    for (path, mode) in &files {
        let want = if path == "/usr/bin/segl" { "-rwxr-xr-x 0/0" } else { "-rw-r--r-- 0/0" };
        assert_eq!(mode, want, "{path}");
    }

    let unpacked =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deb-contents-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&unpacked);
    ok(Command::new("dpkg-deb").arg("--raw-extract").arg(deb).arg(&unpacked));
    let conffiles = read(unpacked.join("DEBIAN/conffiles"));
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    assert_eq!(conffiles, ["/etc/segl/segl.toml", "/etc/segl/softhsm2.conf"]);
    // The assets as they are in the tree.
    for (installed, source) in [
        ("etc/segl/segl.toml", "config/segl.production.toml"),
        ("etc/segl/softhsm2.conf", "config/softhsm2.production.conf"),
        ("usr/lib/systemd/system/segl.service", "systemd/segl.service"),
        ("usr/lib/sysusers.d/segl.conf", "systemd/segl.sysusers"),
        ("usr/lib/tmpfiles.d/segl.conf", "systemd/segl.tmpfiles"),
        ("usr/share/lintian/overrides/segl", "systemd/deb/lintian-overrides"),
    ] {
        assert_eq!(read(unpacked.join(installed)), read(repo(source)), "{installed} is not {source}");
    }
    for script in ["postinst", "prerm", "postrm"] {
        assert_eq!(read(unpacked.join("DEBIAN").join(script)), read(repo("systemd/deb").join(script)));
    }

    // Stripped, and its build id names the debug file in the -dbgsym package beside it.
    let binary = unpacked.join("usr/bin/segl");
    let sections =
        text(&ok(Command::new("readelf").args(["--section-headers", "--wide"]).arg(&binary)).stdout);
    assert!(!sections.contains(".debug_line"), "/usr/bin/segl is not stripped");
    let notes = text(&ok(Command::new("readelf").arg("--notes").arg(&binary)).stdout);
    let build_id = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .unwrap_or_else(|| panic!("no build id:\n{notes}"))
        .to_owned();
    let dbgsym = std::fs::read_dir(deb.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ddeb"))
        .expect("a segl-dbgsym .ddeb beside the .deb");
    let debug = text(&ok(Command::new("dpkg-deb").arg("--contents").arg(&dbgsym)).stdout);
    let debug_file = format!("./usr/lib/debug/.build-id/{}/{}.debug", &build_id[..2], &build_id[2..]);
    assert!(debug.contains(&debug_file), "{} has no {debug_file}:\n{debug}", dbgsym.display());
    std::fs::remove_dir_all(&unpacked).unwrap();
}
