//! `segl xml …`: the XML security core as tools for debugging interop failures: the canonical
//! bytes of a document or element, and an explanation of every signature in a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::xml::c14n::{Canonicalizer, Method};
use crate::xml::dsig::explain::{self, Profile, SignatureReport};
use crate::xml::dsig::Policy;
use crate::xml::{Document, Limits};

/// XML commands.
#[derive(Subcommand)]
pub(super) enum XmlCommand {
    /// Write the canonical form (exclusive C14N 1.0 without comments, unless --inclusive) of
    /// a document, or of the element with an ID, to stdout.
    C14n {
        /// Canonical XML 1.0 (inclusive) instead of exclusive.
        #[arg(long)]
        inclusive: bool,
        /// InclusiveNamespaces PrefixList for exclusive c14n, e.g. "ds #default".
        #[arg(long, conflicts_with = "inclusive")]
        prefixes: Option<String>,
        /// Canonicalize only the element with this ID (`id`, `ID`, `Id` or `wsu:Id`).
        #[arg(long)]
        id: Option<String>,
        /// The XML file; `-` reads stdin.
        file: PathBuf,
    },
    /// Check every ds:Signature in a file and explain each result: per reference the
    /// algorithm, the expected and computed digest and the element it covered.
    Verify {
        /// PEM certificate whose key must have made every signature; a certificate in
        /// ds:KeyInfo must then be this one.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// Also print the canonical bytes that were hashed (each reference and SignedInfo).
        #[arg(long)]
        explain: bool,
        /// The XML file; `-` reads stdin.
        file: PathBuf,
    },
}

/// Why an xml command failed.
#[derive(Debug, thiserror::Error)]
pub enum XmlCommandError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The document was refused by the parser.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: crate::xml::XmlError,
    },
    /// No element carries the requested ID.
    #[error("no element with ID {0:?}")]
    NoSuchId(String),
    /// The certificate file holds no certificate.
    #[error("{0}: no certificate found")]
    NoCertificate(String),
    /// Writing to stdout failed.
    #[error("writing output: {0}")]
    Write(#[from] std::io::Error),
    /// The file holds no ds:Signature.
    #[error("no ds:Signature in the document")]
    NoSignature,
    /// At least one signature did not verify (each is explained on stdout).
    #[error("{failed} of {total} signatures did not verify")]
    Failed {
        /// How many failed.
        failed: usize,
        /// How many there were.
        total: usize,
    },
}

/// Offline tools read files an operator hands them, so the limits are generous.
const TOOL_LIMITS: Limits = Limits { max_depth: 256, max_attributes: 256, max_nodes: 10_000_000 };

fn read(path: &Path) -> Result<Document, XmlCommandError> {
    let shown = path.display().to_string();
    let bytes = if path == Path::new("-") {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
            .map_err(|source| XmlCommandError::Read { path: shown.clone(), source })?;
        v
    } else {
        std::fs::read(path).map_err(|source| XmlCommandError::Read { path: shown.clone(), source })?
    };
    Document::parse(bytes.into(), &TOOL_LIMITS)
        .map_err(|source| XmlCommandError::Parse { path: shown, source })
}

impl XmlCommand {
    pub(super) fn run(self) -> Result<(), Box<dyn std::error::Error>> {
        match self {
            XmlCommand::C14n { inclusive, prefixes, id, file } => {
                let doc = read(&file)?;
                let list = prefixes.unwrap_or_default();
                let list: Vec<&str> = list.split_whitespace().collect();
                let method = if inclusive { Method::Inclusive } else { Method::Exclusive(&list) };
                let mut out = Vec::new();
                let mut c = Canonicalizer::default();
                match id {
                    Some(id) => {
                        let n = doc.by_id(&id).ok_or(XmlCommandError::NoSuchId(id))?;
                        c.subtree(&doc, n, None, method, &mut out);
                    }
                    None => c.document(&doc, method, &mut out),
                }
                std::io::stdout().lock().write_all(&out).map_err(XmlCommandError::Write)?;
                Ok(())
            }
            XmlCommand::Verify { cert, explain, file } => {
                let doc = read(&file)?;
                let cert_der = match &cert {
                    Some(path) => Some(
                        crate::trust::read_pem_certificates(path)?
                            .into_iter()
                            .next()
                            .ok_or_else(|| XmlCommandError::NoCertificate(path.display().to_string()))?
                            .to_vec(),
                    ),
                    None => None,
                };
                let mut policy = Policy::LEGACY;
                if let Some(der) = &cert_der {
                    policy = policy.with_certificate(der);
                }
                let reports = explain::explain(&doc, &policy, explain);
                if reports.is_empty() {
                    return Err(XmlCommandError::NoSignature.into());
                }
                let mut out = std::io::stdout().lock();
                for (k, r) in reports.iter().enumerate() {
                    print_report(&mut out, k + 1, r, explain).map_err(XmlCommandError::Write)?;
                }
                let failed = reports.iter().filter(|r| r.verdict.is_err()).count();
                if failed > 0 {
                    return Err(XmlCommandError::Failed { failed, total: reports.len() }.into());
                }
                Ok(())
            }
        }
    }
}

fn short(uri: &str) -> &str {
    match uri {
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature" => "enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#" => "exc-c14n",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315" => "c14n-1.0 (inclusive)",
        "http://www.w3.org/2000/09/xmldsig#sha1" => "sha1",
        "http://www.w3.org/2001/04/xmlenc#sha256" => "sha256",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => "rsa-sha1",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => "rsa-sha256",
        other => other,
    }
}

fn subject(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => crate::trust::dn::rfc1779(cert.subject()),
        Err(_) => "(unparsable certificate)".into(),
    }
}

fn print_report(out: &mut impl Write, k: usize, r: &SignatureReport, explain: bool) -> std::io::Result<()> {
    let profile = match r.profile {
        Profile::Enveloped => "enveloped",
        Profile::Header => "WS-Security header (SIG-HDR)",
    };
    writeln!(out, "signature {k}: {}", r.location)?;
    writeln!(out, "  profile:   {profile}")?;
    if let (Some(alg), Some(c14n)) = (&r.algorithm, &r.c14n) {
        writeln!(out, "  algorithm: {}, SignedInfo {}", short(alg), short(c14n))?;
    }
    for rep in &r.references {
        writeln!(out, "  reference {}", if rep.uri.is_empty() { "(no URI)" } else { &rep.uri })?;
        if let Some(el) = &rep.element {
            writeln!(out, "    covers:     {el}")?;
        }
        let transforms: Vec<&str> = rep.transforms.iter().map(|t| short(t)).collect();
        writeln!(out, "    transforms: {}", transforms.join(", "))?;
        if let Some(d) = &rep.digest_algorithm {
            writeln!(out, "    digest:     {}", short(d))?;
        }
        if let (Some(e), Some(c)) = (&rep.expected_b64, &rep.computed_b64) {
            writeln!(out, "    expected:   {e}")?;
            let verdict = if rep.digest_matches() { "match" } else { "MISMATCH" };
            writeln!(out, "    computed:   {c} ({verdict})")?;
        }
        if let Some(p) = &rep.problem {
            writeln!(out, "    problem:    {p}")?;
        }
        if let Some(bytes) = &rep.canonical {
            writeln!(out, "    canonical bytes hashed ({} bytes):", bytes.len())?;
            out.write_all(bytes)?;
            writeln!(out, "\n    (end of canonical bytes)")?;
        }
    }
    if let Some(bytes) = explain.then_some(r.signed_info_canonical.as_ref()).flatten() {
        writeln!(out, "  canonical SignedInfo, what the RSA signature is over ({} bytes):", bytes.len())?;
        out.write_all(bytes)?;
        writeln!(out, "\n  (end of canonical SignedInfo)")?;
    }
    if let Some(der) = &r.certificate_der {
        writeln!(out, "  signer:    {}", subject(der))?;
    }
    match &r.verdict {
        Ok(()) => {
            writeln!(out, "  result:    OK, signed content:")?;
            for c in &r.covers {
                writeln!(out, "               {c}")?;
            }
        }
        Err(e) => writeln!(out, "  result:    FAILED: {e}")?,
    }
    writeln!(out)
}
