//! The `segl` command.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use segl::cli::{Cli, LogFormat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Parsed before logging starts: the log format is an option. Argument errors and --help are
    // clap's own output and log nothing.
    let cli = Cli::parse();
    let format = cli.log_format;
    init_logging(format);
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_failure(format, &*e);
            ExitCode::FAILURE
        }
    }
}

/// Writes the reason a command failed to stderr, in the log format. Written directly rather
/// than logged, so that no RUST_LOG filter can hide why segl stopped.
fn report_failure(format: LogFormat, e: &dyn std::error::Error) {
    match format {
        // stderr reaches journald under systemd; one plain line reads best on a terminal too.
        LogFormat::Text => eprintln!("segl: {e}"),
        // The keys, their order and the timestamp's form of the JSON log lines, so that a
        // shipper reads the last line like the others.
        LogFormat::Json => eprintln!(
            r#"{{"timestamp":"{}","level":"ERROR","message":{},"target":"segl"}}"#,
            jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
            serde_json::Value::from(e.to_string()),
        ),
    }
}

fn init_logging(format: LogFormat) {
    // glommio reports through `log`; route it into tracing so its warnings are seen.
    let _ = tracing_log::LogTracer::init();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        // Colour codes only for a person at a terminal: in journald or a file they are noise
        // that breaks grep. NO_COLOR (no-color.org) turns them off on a terminal too.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal() && !no_color()).try_init(),
        // Flattened: the message and the event's fields are top-level keys, where shippers look.
        // segl logs no spans, so none are listed.
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// Whether the NO_COLOR convention asks for no colour (set to anything but the empty string).
fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}
