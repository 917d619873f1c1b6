//! The `segl` command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use segl::cli::Cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    init_logging();
    match Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr reaches journald under systemd; one plain line reads best on a terminal too.
            eprintln!("segl: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    // glommio reports through `log`; route it into tracing so its warnings are seen.
    let _ = tracing_log::LogTracer::init();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
