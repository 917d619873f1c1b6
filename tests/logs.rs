//! The log on stderr as an operator's tools meet it: plain text without colour codes when
//! stderr is not a terminal (journald, a file), and one JSON object per line with
//! `--log-format json` or `SEGL_LOG_FORMAT=json`. No HSM is needed: `segl serve` logs its first
//! startup stage, then fails to load a PKCS#11 module that does not exist.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The embedded configuration with a PKCS#11 module that does not exist, written once (tests
/// run in parallel, and a file being rewritten would be read half-written).
fn config_without_module() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(write_config_without_module)
}

fn write_config_without_module() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/segl.toml")).unwrap();
    let module = "/usr/lib/softhsm/libsofthsm2.so";
    assert!(text.contains(module), "the embedded configuration no longer names {module}");
    let path = dir.join("segl.toml");
    std::fs::write(&path, text.replace(module, "/nonexistent/segl-test-module.so")).unwrap();
    path
}

/// `segl <args> serve --config …` with stderr piped and the logging environment cleared
/// except for `env`.
fn serve(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_segl"));
    cmd.args(args).arg("serve").arg("--config").arg(config_without_module());
    for var in ["RUST_LOG", "NO_COLOR", "SEGL_LOG_FORMAT"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run segl");
    assert!(!out.status.success(), "segl served without its PKCS#11 module");
    out
}

/// Every stderr line as a JSON object; panics on a line that is not one.
fn json_lines(out: &Output) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => panic!("not a JSON object: {line:?}\nin:\n{stderr}"),
        })
        .collect()
}

fn field<'a>(line: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    line.get(key).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("no string {key:?} in {line:?}"))
}

#[test]
fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let out = serve(&[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO segl::server: starting: opening the HSM token"), "{stderr}");
    assert!(stderr.contains("module=/nonexistent/segl-test-module.so"), "{stderr}");
    assert!(stderr.contains("segl: STS key: HSM: cannot load PKCS#11 module"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "colour codes in a log that is not a terminal: {stderr:?}");
}

#[test]
fn json_logs_are_one_object_per_line_by_option_or_environment() {
    for out in [serve(&["--log-format", "json"], &[]), serve(&[], &[("SEGL_LOG_FORMAT", "json")])] {
        let lines = json_lines(&out);
        let start = lines
            .iter()
            .find(|l| field(l, "message") == "starting: opening the HSM token")
            .unwrap_or_else(|| panic!("no startup line in {lines:?}"));
        assert_eq!(field(start, "level"), "INFO");
        assert_eq!(field(start, "target"), "segl::server");
        // The event's fields are keys of their own, not text inside the message.
        assert_eq!(field(start, "module"), "/nonexistent/segl-test-module.so");
        assert!(field(start, "timestamp").ends_with('Z'), "{start:?}");
        // The reason segl stopped is a JSON line too, the last one.
        let last = lines.last().unwrap();
        assert_eq!(field(last, "level"), "ERROR");
        assert!(field(last, "message").starts_with("STS key: HSM: cannot load PKCS#11 module"), "{last:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains('\x1b'));
    }
}

#[test]
fn rust_log_still_filters_and_never_hides_why_segl_stopped() {
    for format in ["text", "json"] {
        let out = serve(&["--log-format", format], &[("RUST_LOG", "off")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("starting: opening the HSM token"), "RUST_LOG=off logged: {stderr}");
        assert!(
            stderr.contains("cannot load PKCS#11 module"),
            "{format}: the failure is missing: {stderr:?}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn an_unknown_log_format_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_segl"))
        .args(["--log-format", "xml", "serve"])
        .env_remove("SEGL_LOG_FORMAT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: text, json"));
}
