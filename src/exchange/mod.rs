//! The token exchanges, one module per endpoint family, behind one router. Everything a
//! request needs is in [`CoreContext`]: what all cores share, and this core's own signer.

pub mod dgws;
pub mod error;
pub mod soap;

use std::sync::Arc;

use jiff::Timestamp;

use crate::config::Config;
use crate::signing::CoreSigner;
use crate::trust::TrustStore;
use crate::xml::Limits;
use error::RequestError;

/// What every core shares (read-only).
pub struct Shared {
    /// The configuration in force.
    pub config: Arc<Config>,
    /// Trusted CAs.
    pub trust: TrustStore,
    /// Parser limits.
    pub limits: Limits,
}

/// One core's view: the shared state and this core's own HSM session.
pub struct CoreContext {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// This core's signer.
    pub signer: CoreSigner,
}

/// The endpoints, by the last path segment under `/sts/services/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// A DGWS ID-card endpoint.
    Dgws(dgws::DgwsEndpoint),
}

/// The path prefix of every STS endpoint.
pub const SERVICES_PREFIX: &str = "/sts/services/";

/// Where relying parties fetch the STS's certificates: active, next and recently retired
/// (`GET`, JSON), so they can trust the next key before it signs.
pub const METADATA_PATH: &str = "/sts/metadata/certificates";

/// The body of `GET /sts/metadata/certificates` (rendered when the key inventory changes).
pub fn certificates_metadata(ctx: &CoreContext) -> Vec<u8> {
    ctx.signer.published().json.to_vec()
}

impl Endpoint {
    /// Routes on the URL path only; SOAPAction is ignored (spec §1.2).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.strip_prefix(SERVICES_PREFIX)?.trim_end_matches('/') {
            "NewSecurityTokenService" => Some(Endpoint::Dgws(dgws::DgwsEndpoint::New)),
            "SecurityTokenService" => Some(Endpoint::Dgws(dgws::DgwsEndpoint::Legacy)),
            _ => None,
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Dgws(dgws::DgwsEndpoint::New) => "NewSecurityTokenService",
            Endpoint::Dgws(dgws::DgwsEndpoint::Legacy) => "SecurityTokenService",
        }
    }
}

/// The outcome of one request, ready for the HTTP layer.
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// SOAP envelope.
    pub body: Vec<u8>,
}

/// Serves one POST to `path`.
pub async fn serve(ctx: &CoreContext, path: &str, body: bytes::Bytes) -> Outcome {
    let now = Timestamp::now();
    let Some(endpoint) = Endpoint::from_path(path) else {
        return refusal(ctx, RequestError::UnknownEndpoint(path.to_owned()), path, now);
    };
    match endpoint {
        Endpoint::Dgws(which) => match dgws::issue(ctx, which, body, now).await {
            Ok(body) => {
                tracing::info!(endpoint = endpoint.name(), "issued ID card");
                Outcome { status: 200, body }
            }
            Err(refused) => {
                log_refusal(endpoint.name(), &refused.error);
                let (_, status) = refused.error.fault();
                let body = soap::fault_response(
                    &refused.correlation,
                    now,
                    &refused.error,
                    &ctx.shared.config.sts.fault_actor,
                );
                Outcome { status, body }
            }
        },
    }
}

/// A fault for a request refused before any endpoint logic ran (HTTP-level refusals).
pub fn refusal(ctx: &CoreContext, error: RequestError, what: &str, now: Timestamp) -> Outcome {
    log_refusal(what, &error);
    let corr = soap::Correlation::fresh(now);
    let (_, status) = error.fault();
    Outcome { status, body: soap::fault_response(&corr, now, &error, &ctx.shared.config.sts.fault_actor) }
}

fn log_refusal(what: &str, error: &RequestError) {
    let (code, status) = error.fault();
    if error.is_internal() {
        tracing::error!(endpoint = what, fault = %code.qname(), status, "request failed: {error}");
    } else {
        tracing::warn!(endpoint = what, fault = %code.qname(), status, "request refused: {error}");
    }
}
