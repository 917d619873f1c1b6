//! Locating the third-party reference data (schemas, captured messages) that tests read in
//! place: `$SEGL_SPEC_DIR`, default `../shared/spec` beside the checkout. It is never copied
//! into the project.

use std::path::PathBuf;

/// The spec directory, if present.
pub fn spec_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SEGL_SPEC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/spec"));
    dir.is_dir().then_some(dir)
}

/// Reads `examples/<name>`; prints why and returns `None` when the reference data is absent,
/// so the calling test can skip.
pub fn example(name: &str) -> Option<String> {
    let Some(dir) = spec_dir() else {
        eprintln!("SKIP: reference data not found (set SEGL_SPEC_DIR); wanted examples/{name}");
        return None;
    };
    match std::fs::read_to_string(dir.join("examples").join(name)) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("SKIP: cannot read examples/{name}: {e}");
            None
        }
    }
}

/// The base64 text of the first `<ds:X509Certificate>` in `xml`.
pub fn first_certificate_b64(xml: &str) -> Option<&str> {
    let start = xml.find("<ds:X509Certificate>")? + "<ds:X509Certificate>".len();
    let len = xml[start..].find("</ds:X509Certificate>")?;
    Some(&xml[start..start + len])
}
