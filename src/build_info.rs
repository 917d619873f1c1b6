//! Which code this is: recorded at build time by the package's build script (`src/build.rs`).

/// The package version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built (full hash, `-dirty` when tracked files differed from it), or
/// `unknown` when built outside a git checkout.
pub const COMMIT: &str = env!("SEGL_COMMIT");

/// `git describe --always --dirty` at build time (`unknown` outside a checkout).
pub const DESCRIBE: &str = env!("SEGL_DESCRIBE");

/// The version and commit, as `segl --version` prints them.
pub const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SEGL_COMMIT"), ")");
