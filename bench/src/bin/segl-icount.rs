//! `segl-icount`: instructions per request, whole and per stage, counted by callgrind (see
//! bench/README.md, "Instruction counts").
//!
//! A binary of its own rather than a `segl-load` subcommand: it runs itself again under
//! valgrind, and callgrind then loads, and a first run must read, everything the binary links;
//! this one links no load generator, TLS client or report code, so the child starts in
//! seconds and the annotate output holds little besides the request path.
//!
//! The parent (native speed) makes the private SoftHSM state, then runs the child under
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=<marker>`: the child builds
//! its requests and warms up outside the marker, serves the measured requests inside it, and
//! the parent reads `callgrind_annotate --inclusive=yes`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;

use clap::Parser;
use futures_lite::future::block_on;
use segl::config::Config;
use segl::exchange::{CoreContext, Shared};
use segl::signing::StsKey;
use segl_bench::fixture::PrivateState;
use segl_bench::icount::{self, Measurement, StageSpec};
use segl_bench::pool::{OioSettings, RequestKind, RequestPool};

// The server's allocator: allocation is a good part of a request's instructions, and the
// count must be the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The function callgrind's collection is toggled on; its inclusive count is the whole.
const MARKER: &str = "segl_icount::icount_measured";

#[derive(Parser)]
#[command(about = "Instructions per request, whole and per stage, counted by callgrind")]
struct Cli {
    /// The exchange: DGWS (a user card at NewSecurityTokenService) or BST2SOSI.
    #[arg(long, default_value = "DGWS")]
    exchange: String,
    /// Requests in the measured region.
    #[arg(long, default_value_t = 20)]
    requests: usize,
    /// Requests served before it (caches, the signer-certificate cache, the parse arena).
    #[arg(long, default_value_t = 6)]
    warmup: usize,
    /// The private state directory (made when absent).
    #[arg(long, default_value = "target/segl-icount-state")]
    state: PathBuf,
    /// Writes the table here: JSON when the name ends in .json, else Markdown.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The valgrind to run.
    #[arg(long, default_value = "valgrind")]
    valgrind: String,
    /// Keeps callgrind's output file (for callgrind_annotate or kcachegrind).
    #[arg(long)]
    keep: bool,
    /// Internal: the measured child, run under callgrind with this configuration.
    #[arg(long, hide = true)]
    child: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.child {
        Some(config) => child(&cli, config),
        None => parent(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("segl-icount: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The stages of a DGWS request, in pipeline order. Each is the inclusive count of functions
/// the compiler keeps out of line (found with a first run, `--keep` and `callgrind_annotate
/// --inclusive=yes`): smaller steps (the level, kind and validity checks, reading the
/// envelope) are inlined into their callers, have no count of their own and fall in `other`.
/// A function that a later change inlines counts 0 here: its stage then shows 0 and `other`
/// grows by as much, which the comparison of two commits makes plain.
const DGWS_STAGES: &[StageSpec] = &[
    PARSE,
    StageSpec {
        name: "verify card signature",
        less: &[],
        functions: &["segl::xml::dsig::verify::verify_enveloped_using"],
        what: "exclusive c14n + digest of the card and of SignedInfo, RSA verify (key from the core's cache)",
        hsm: false,
    },
    StageSpec {
        name: "read card",
        less: &[],
        functions: &["segl::token::idcard::IdCard::from_element"],
        what: "the verified card's attributes into an IdCard",
        hsm: false,
    },
    StageSpec {
        name: "certificate validation",
        less: &[],
        functions: &["segl::exchange::validate_signer"],
        what: "the signer certificate through the core's cache (chain, revocation), described for audit",
        hsm: false,
    },
    StageSpec {
        name: "rules",
        less: &[],
        functions: &[
            "segl::exchange::dgws::cert_hash_matches",
            "segl::roles::NationalRoles::check",
            "segl::exchange::dgws::remember_message_id",
        ],
        what: "OCESCertHash, national role, replay cache (the level, kind and validity checks are inlined: `other`)",
        hsm: false,
    },
    StageSpec {
        name: "build issued card",
        less: &[],
        functions: &["segl::exchange::dgws::issued_card", "segl::token::idcard::IdCard::prepare_signature"],
        what: "the STS card, its XML and its SignedInfo digest",
        hsm: false,
    },
    StageSpec {
        name: "signer hand-off",
        less: &[],
        functions: &["segl::signing::CoreSigner::sign_digest::{{closure}}"],
        what: "the digest queued to the core's signer and the answer taken back (the driver's loop is `other`)",
        hsm: false,
    },
    StageSpec {
        name: "HSM signature",
        less: &[],
        functions: &["C_SignInit", "C_Sign"],
        what: "SoftHSM's C_SignInit and C_Sign (RSA-2048 private-key operation)",
        hsm: true,
    },
    StageSpec {
        name: "emit answer",
        less: &[],
        functions: &[
            "segl::token::idcard::UnsignedCard::finish",
            "segl::exchange::dgws::envelope::issue_response",
        ],
        what: "the signature value into the card, the response envelope",
        hsm: false,
    },
    AUDIT,
];

/// Stages every exchange has.
const PARSE: StageSpec = StageSpec {
    name: "parse",
    functions: &["segl::exchange::CoreContext::parse"],
    less: &[],
    what: "the request into the core's reused parse storage",
    hsm: false,
};
/// Stages every OIO exchange has.
const OIO_HEADER: StageSpec = StageSpec {
    name: "verify request header signature",
    functions: &["segl::exchange::oio::receive"],
    less: &[],
    what: "the RST read, the client's SIG-HDR verified (c14n, digests, RSA), its certificate validated",
    hsm: false,
};
const OIO_BOOTSTRAP: StageSpec = StageSpec {
    name: "bootstrap token check",
    functions: &[
        "segl::exchange::oio::tokens::presented_bootstrap",
        "segl::exchange::oio::tokens::trusted_bootstrap",
    ],
    less: &[],
    what: "the IdP's signature on the bootstrap token verified, the token read",
    hsm: false,
};
const OIO_ENVELOPE: StageSpec = StageSpec {
    name: "answer envelope",
    functions: &["segl::exchange::oio::sign_envelope_with::{{closure}}"],
    less: &[],
    what: "the response envelope built, its header's SignedInfo handed to the signer, the signature put in",
    hsm: false,
};
const OIO_HSM: StageSpec = StageSpec {
    name: "HSM signatures (2)",
    functions: &["C_SignInit", "C_Sign"],
    less: &[],
    what: "SoftHSM's C_SignInit and C_Sign, twice (the token and the answer's header)",
    hsm: true,
};
const AUDIT: StageSpec = StageSpec {
    name: "audit hand-off",
    functions: &["segl::exchange::pipeline::Request::record_issue"],
    less: &[],
    what: "the token's audit record built, serialised and handed to the writer before the signature (its write is another thread's)",
    hsm: false,
};

/// The stages of a BST2SOSI request (an IdP's bootstrap token in ActAs, the request
/// header-signed by its holder; two HSM signatures: the card and the answer's header). The
/// rules (audience, time, holder of key, register look-ups, roles) are inlined into the
/// exchange and fall in `other`.
const BST2SOSI_STAGES: &[StageSpec] = &[
    PARSE,
    OIO_HEADER,
    OIO_BOOTSTRAP,
    StageSpec {
        name: "build issued card",
        functions: &["segl::exchange::oio::usercard::issue::{{closure}}"],
        less: &[
            "segl::exchange::oio::sign_envelope_with::{{closure}}",
            "segl::exchange::pipeline::Request::record_issue",
        ],
        what:
            "replay cache, the card built, its SignedInfo digest handed to the signer, the signature put in",
        hsm: false,
    },
    OIO_ENVELOPE,
    OIO_HSM,
    AUDIT,
];

/// The citizen exchanges after their presented token: the claims, and the identity token
/// built and handed to the signer.
const CITIZEN_CLAIMS: StageSpec = StageSpec {
    name: "claims",
    functions: &["segl::exchange::oio::citizen::claims"],
    less: &[],
    what: "the CPR claim against the token's subject, role, OnBehalfOf",
    hsm: false,
};
const IDENTITY_TOKEN: StageSpec = StageSpec {
    name: "identity token",
    functions: &["segl::exchange::oio::citizen::issue_identity_token::{{closure}}"],
    less: &[
        "segl::exchange::oio::sign_envelope_with::{{closure}}",
        "segl::exchange::pipeline::Request::record_issue",
    ],
    what: "the token built, its SignedInfo digest handed to the signer, the signature put in",
    hsm: false,
};

/// Bst2Idws: a citizen's bootstrap token (the configured citizen issuers in turn).
const BST2IDWS_STAGES: &[StageSpec] =
    &[PARSE, OIO_HEADER, OIO_BOOTSTRAP, CITIZEN_CLAIMS, IDENTITY_TOKEN, OIO_ENVELOPE, OIO_HSM, AUDIT];

/// JWT2Idws: a development JWT (RS256).
const JWT2IDWS_STAGES: &[StageSpec] = &[
    PARSE,
    OIO_HEADER,
    StageSpec {
        name: "JWT check",
        functions: &["segl::exchange::oio::citizen::presented_jwt"],
        less: &[],
        what: "the JWT's signature (RS256) and claims verified, the issuer's whitelist",
        hsm: false,
    },
    CITIZEN_CLAIMS,
    IDENTITY_TOKEN,
    OIO_ENVELOPE,
    OIO_HSM,
    AUDIT,
];

fn stages_of(kind: RequestKind) -> &'static [StageSpec] {
    match kind {
        RequestKind::Bst2Sosi => BST2SOSI_STAGES,
        RequestKind::Bst2Idws => BST2IDWS_STAGES,
        RequestKind::Jwt2Idws => JWT2IDWS_STAGES,
        _ => DGWS_STAGES,
    }
}

fn kind_of(name: &str) -> Result<RequestKind, String> {
    match name.to_ascii_uppercase().as_str() {
        "DGWS" => Ok(RequestKind::Dgws),
        "BST2SOSI" => Ok(RequestKind::Bst2Sosi),
        "BST2IDWS" => Ok(RequestKind::Bst2Idws),
        "JWT2IDWS" => Ok(RequestKind::Jwt2Idws),
        _ => Err(format!("--exchange {name}: DGWS, BST2SOSI, Bst2Idws or JWT2Idws")),
    }
}

fn parent(cli: &Cli) -> Result<(), String> {
    let kind = kind_of(&cli.exchange)?;
    let valgrind = match Command::new(&cli.valgrind).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => {
            // Not a failure: the counts are a signal to read, never a gate.
            println!(
                "segl-icount: skipped, {} not found (install valgrind to count instructions)",
                cli.valgrind
            );
            return Ok(());
        }
    };
    let state = PrivateState::create(&cli.state).map_err(|e| format!("private state: {e}"))?;
    let out_file = state.dir.join(format!("callgrind.{}.out", kind.name()));
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    eprintln!(
        "segl-icount: {} requests of {} under callgrind (slow: about a minute)",
        cli.requests,
        kind.name()
    );
    let status = Command::new(&cli.valgrind)
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={MARKER}"))
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(&exe)
        .args(["--exchange", kind.name()])
        .args(["--requests", &cli.requests.to_string(), "--warmup", &cli.warmup.to_string()])
        .arg("--child")
        .arg(&state.config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", cli.valgrind))?;
    if !status.status.success() {
        return Err(format!("the measured child failed ({})", status.status));
    }
    let not_issued: u64 = String::from_utf8_lossy(&status.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("not_issued=").and_then(|n| n.trim().parse().ok()))
        .ok_or("the child did not report its answers")?;
    let annotate = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100"])
        .arg(&out_file)
        .output()
        .map_err(|e| format!("callgrind_annotate: {e}"))?;
    if !annotate.status.success() {
        return Err(format!("callgrind_annotate failed: {}", String::from_utf8_lossy(&annotate.stderr)));
    }
    let rows = icount::parse_annotate(&String::from_utf8_lossy(&annotate.stdout));
    let requests = cli.requests as u64;
    let (whole, segl, stages) = icount::measure(&rows, MARKER, stages_of(kind), requests)
        .ok_or("callgrind counted nothing in the measured region")?;
    let m = Measurement {
        exchange: kind.name().to_owned(),
        requests,
        not_issued,
        whole_per_request: whole,
        segl_per_request: segl,
        stages,
        commit: Some(segl::build_info::COMMIT.to_owned()).filter(|c| c != "unknown"),
        valgrind,
    };
    let table = m.markdown();
    println!("{table}");
    if not_issued > 0 {
        println!("WARNING: {not_issued} requests were not issued; the counts are not a served request's");
    }
    if let Some(path) = &cli.out {
        let text = if path.extension().is_some_and(|e| e == "json") {
            serde_json::to_string_pretty(&m).map_err(|e| e.to_string())?
        } else {
            table
        };
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if cli.keep {
        eprintln!("segl-icount: callgrind output kept in {}", out_file.display());
    } else {
        // Regenerated on every run; a few MB not worth keeping unless asked.
        let _ = std::fs::remove_file(&out_file);
    }
    Ok(())
}

/// The measured child: builds its requests, warms up, then serves the measured ones inside
/// [`icount_measured`]. Prints `not_issued=<n>` for the parent.
fn child(cli: &Cli, config_path: &Path) -> Result<(), String> {
    let kind = kind_of(&cli.exchange)?;
    let config = Config::load(config_path).map_err(|e| format!("configuration: {e}"))?;
    let client =
        segl::dev::client::DevClient::open(&config).map_err(|e| format!("development client: {e}"))?;
    let total = cli.warmup + cli.requests;
    let pool = match kind {
        RequestKind::Dgws => {
            // User cards alone: the main case, the same card kind for every request so that
            // the count is one kind's.
            let bodies = (0..total)
                .map(|_| {
                    client
                        .request(&segl::dev::client::RequestOptions::new(segl::token::CardType::User))
                        .map(bytes::Bytes::from)
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("building requests: {e}"))?;
            RequestPool::from_bodies(bodies).map_err(|e| e.to_string())?
        }
        other => {
            let (mut pool, _) = RequestPool::without_dgws();
            pool.add_signed_oio(&client, other, &OioSettings::of(&config), total, 1, &|| {})
                .map_err(|e| format!("building requests: {e}"))?;
            pool
        }
    };
    let key = StsKey::open(&config.hsm).map_err(|e| format!("STS key: {e}"))?;
    let shared = Arc::new(Shared::from_config(Arc::new(config)).map_err(|e| e.to_string())?);
    let (signer, driver) = key.core_signer(0).map_err(|e| format!("signer: {e}"))?;
    let ctx = CoreContext::new(shared, signer);
    let path = match kind {
        RequestKind::Dgws => format!("{}NewSecurityTokenService", segl::exchange::SERVICES_PREFIX),
        other => format!("{}{}", segl::exchange::SERVICES_PREFIX, other.name()),
    };
    // The inline signer's driver runs on this thread beside the requests, as on a serving
    // core; one driver future lives across both phases.
    let mut driver = std::pin::pin!(driver.run());
    let serve = |n: usize| {
        let (ctx, path, pool) = (&ctx, &path, &pool);
        async move {
            let mut not_issued = 0u64;
            for _ in 0..n {
                let outcome = segl::exchange::serve(ctx, path, pool.take_for(kind), None, None).await;
                if outcome.status != 200 {
                    not_issued += 1;
                    eprintln!("not issued: {}", String::from_utf8_lossy(&outcome.body));
                }
            }
            not_issued
        }
    };
    let stopped = || "the signer stopped".to_owned();
    block_on(futures_lite::future::or(async { Some(serve(cli.warmup).await) }, async {
        driver.as_mut().await;
        None
    }))
    .ok_or_else(stopped)?;
    let mut not_issued = None;
    icount_measured(&mut || {
        not_issued = block_on(futures_lite::future::or(async { Some(serve(cli.requests).await) }, async {
            driver.as_mut().await;
            None
        }));
    });
    println!("not_issued={}", not_issued.ok_or_else(stopped)?);
    Ok(())
}

/// The measured region: callgrind collects only while this runs (`--toggle-collect`), and its
/// inclusive count is the whole. Out of line so that it has a symbol to toggle on.
#[inline(never)]
fn icount_measured(f: &mut dyn FnMut()) {
    f();
}
