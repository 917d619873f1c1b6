//! The one request pipeline every exchange runs through:
//!
//! route (endpoint table) → parse → the exchange's own steps (read the message, verify
//! signatures, validate signers, replay, rules, build the token, hand its audit record to the
//! writer, hash, sign on the HSM, emit) → wait for the record → the answer, or a fault in the
//! endpoint's dialect.
//!
//! What is common lives here: routing, parsing into the core's reusable storage, the audit
//! record (a token is released only once its record is written; refusals of an identified
//! client are recorded too), forgetting a remembered MessageID when the request fails, the
//! choice and signing of the fault envelope, logging. An
//! exchange module contributes only its rules and the token it builds, and fills in the
//! [`Request`] it is handed as it learns what to echo and what to audit.

use std::time::Instant;

use bytes::Bytes;
use jiff::Timestamp;

use super::dgws;
use super::endpoint::Endpoint;
use super::error::RequestError;
use super::fault::{self, Correlation, Fault, FaultDialect};
use super::oio;
use super::outcome::Outcome;
use super::replay::Remembered;
use super::{bst2idws, bst2sosi, jwt2idws, jwt2oiosaml, oiosaml2sosi, sosi2oiosaml};
use super::{CoreContext, Policy};
use crate::audit::{AuditError, AuditRecord, AuditToken, AuditTrail, PendingRecord};
use crate::xml::Document;

/// When a request is served, and by when its signature must have started (`None`: no deadline).
#[derive(Clone, Copy)]
pub struct RequestTime {
    /// The request's clock: everything it judges and writes uses this instant.
    pub now: Timestamp,
    /// The latest moment its HSM signature may start.
    pub sign_by: Option<Instant>,
}

/// What the pipeline carries for one request while the exchange runs.
pub struct Request {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// When.
    pub time: RequestTime,
    /// What the answer echoes (filled in as soon as the request is understood).
    pub correlation: Correlation,
    /// What the request revealed, for its audit record.
    pub audit: AuditTrail,
    /// Who sent it.
    pub peer: Option<std::net::SocketAddr>,
    /// The record of the token being issued, and what the audit log said when it was handed
    /// over before the signature.
    recorded: Option<(AuditRecord, Result<PendingRecord, AuditError>)>,
    /// The request's MessageID as the exchange remembered it against replay. If the request
    /// fails after that (its exchange, or the audit record of its token), no token left segl
    /// and the pipeline forgets it, so that the client may send the same message again.
    pub remembered: Option<Remembered>,
}

impl Request {
    /// Hands the record of `token`, about to be signed with `key`, to the audit log now, so that
    /// writing it to disk overlaps the signature instead of following it (the pipeline waits
    /// for it before the token leaves). A request that fails after this point gets a
    /// `withdrawn` record naming the same token (it never left segl), or, when the `issued`
    /// record itself could not be written, a `refused` one.
    pub fn record_issue(
        &mut self,
        ctx: &CoreContext,
        token: AuditToken,
        key: &str,
    ) -> Result<(), RequestError> {
        self.audit.issued = Some(token);
        self.audit.key = Some(key.to_owned());
        let record = std::mem::take(&mut self.audit).issued(self.endpoint.name(), self.time.now, self.peer);
        let submitted = ctx.shared.audit.submit(&record);
        let result = submitted.as_ref().map(|_| ()).map_err(|e| RequestError::Audit(e.clone()));
        // Kept either way: a refusal is audited even when this record could not be.
        self.recorded = Some((record, submitted));
        result
    }
}

/// Serves one POST to `path` from `peer`. A request whose signature has not started by
/// `sign_by` (it waited that long behind others) is refused as overloaded (503) instead of
/// signed: its answer would come after its deadline, and the HSM's time is better spent on a
/// request that can still be answered in time.
pub async fn serve(
    ctx: &CoreContext,
    path: &str,
    body: Bytes,
    peer: Option<std::net::SocketAddr>,
    sign_by: Option<Instant>,
) -> Outcome {
    let now = Timestamp::now();
    let Some(endpoint) = Endpoint::from_path(path) else {
        return refusal(ctx, None, RequestError::UnknownEndpoint(path.to_owned()), path, now);
    };
    let policy = ctx.shared.policy();
    let mut request = Request {
        endpoint,
        time: RequestTime { now, sign_by },
        correlation: Correlation::fresh(endpoint.dialect(), now),
        audit: AuditTrail::default(),
        peer,
        recorded: None,
        remembered: None,
    };
    let result = match ctx.parse(body, &policy.limits) {
        Ok(doc) => {
            let result = run_exchange(ctx, &policy, &doc, &mut request).await;
            ctx.recycle(doc);
            result
        }
        Err(e) => Err(RequestError::Xml(e)),
    };
    let name = endpoint.name();
    match result {
        Ok(response) => {
            // A token whose audit record cannot be written is not released.
            let written = match request.recorded.take() {
                // The record may be in the file (a sync failed after its write): take it back,
                // as far as the log still takes anything.
                Some((record, pending)) => written(pending).await.map_err(|e| (e, Some(record))),
                None => {
                    debug_assert!(false, "{name}: a token issued without Request::record_issue");
                    let record = std::mem::take(&mut request.audit).issued(name, now, peer);
                    ctx.shared.audit.record(&record).await.map_err(|e| (e, None))
                }
            };
            if let Err((e, issued)) = written {
                forget_message_id(ctx, &mut request);
                let error = RequestError::Audit(e);
                let fault = error.fault(Some(endpoint), &policy.config.sts.fault_actor);
                if let Some(issued) = issued {
                    audit_refusal(ctx, issued.withdrawn(fault.code.qname(), error.fault_string())).await;
                }
                return fault_answer(ctx, &request, error, fault).await;
            }
            // The audit log has a record of every token and the metrics count them; a log
            // line each would be thousands a second at peak.
            tracing::debug!(endpoint = name, "issued");
            Outcome::issued(response)
        }
        Err(error) => {
            forget_message_id(ctx, &mut request);
            let fault = error.fault(Some(endpoint), &policy.config.sts.fault_actor);
            let (code, reason) = (fault.code.qname(), error.fault_string());
            let record = match request.recorded.take() {
                // The token was recorded as issued before it was signed: this record takes it
                // back (the file keeps the order, so it always follows that one). If that
                // record never reached the file, the request is recorded as refused instead.
                Some((issued, pending)) => Some(match written(pending).await {
                    Ok(()) => issued.withdrawn(code, reason),
                    Err(_) => issued.not_issued(code, reason),
                }),
                None if request.audit.identified() => {
                    Some(std::mem::take(&mut request.audit).refused(name, now, peer, code, reason))
                }
                None => None,
            };
            if let Some(record) = record {
                audit_refusal(ctx, record).await;
            }
            fault_answer(ctx, &request, error, fault).await
        }
    }
}

/// A request that failed issued no token: the MessageID it remembered may come again.
fn forget_message_id(ctx: &CoreContext, request: &mut Request) {
    if let Some(remembered) = request.remembered.take() {
        ctx.forget_message_id(&remembered);
    }
}

/// Waits for a record handed to the audit log, or says why the log did not take it.
async fn written(submitted: Result<PendingRecord, AuditError>) -> Result<(), AuditError> {
    submitted?.written().await
}

/// Writes the record of a refusal (or withdrawal); a failure is logged, the answer goes out.
async fn audit_refusal(ctx: &CoreContext, record: AuditRecord) {
    if let Err(e) = ctx.shared.audit.record(&record).await {
        tracing::error!("the refusal was not audited: {e}");
    }
}

/// Dispatches to the exchange's own steps.
async fn run_exchange(
    ctx: &CoreContext,
    policy: &Policy,
    doc: &Document,
    request: &mut Request,
) -> Result<Vec<u8>, RequestError> {
    // What an OIO answer echoes is filled in as the exchange reads the request.
    let mut corr = oio::envelope::Correlation::default();
    let result = match request.endpoint {
        Endpoint::NewSecurityTokenService | Endpoint::SecurityTokenService => {
            return dgws::issue(ctx, policy, doc, request).await
        }
        Endpoint::Sosi2OioSaml => sosi2oiosaml::issue(ctx, policy, doc, request, &mut corr).await,
        Endpoint::Bst2Sosi => bst2sosi::issue(ctx, policy, doc, request, &mut corr).await,
        Endpoint::OioSaml2Sosi => oiosaml2sosi::issue(ctx, policy, doc, request, &mut corr).await,
        Endpoint::Bst2Idws => bst2idws::issue(ctx, policy, doc, request, &mut corr).await,
        Endpoint::Jwt2Idws => jwt2idws::issue(ctx, policy, doc, request, &mut corr).await,
        Endpoint::Jwt2OioSaml => jwt2oiosaml::issue(ctx, policy, doc, request, &mut corr).await,
    };
    request.correlation = Correlation::Oio(corr);
    result
}

/// The fault for a refused request, in its endpoint's dialect. OIO faults about a request that
/// was read are signed by the STS like any OIO answer (clients validating SIG-HDR would
/// otherwise reject them, spec §4.1); refusals that must not cost an HSM signature (load,
/// deadline, an unavailable replay store) and failures of the HSM itself go unsigned.
async fn fault_answer(ctx: &CoreContext, request: &Request, error: RequestError, fault: Fault) -> Outcome {
    log_refusal(request.endpoint.name(), &error, &fault);
    let now = request.time.now;
    let sign = !matches!(
        error,
        RequestError::Overloaded { .. }
            | RequestError::QueuedPastDeadline { .. }
            | RequestError::ReplayStoreUnavailable
            | RequestError::Signing(_)
    );
    let body = match &request.correlation {
        Correlation::Oio(corr) if sign => {
            let content = oio::envelope::fault_content(&fault);
            match oio::sign_envelope(ctx, corr, now, &content, request.time.sign_by).await {
                Ok(signed) => signed,
                Err(e) => {
                    tracing::warn!(endpoint = request.endpoint.name(), "fault sent unsigned: {e}");
                    fault::unsigned_envelope(&request.correlation, now, &fault)
                }
            }
        }
        corr => fault::unsigned_envelope(corr, now, &fault),
    };
    Outcome::refused(&error, &fault, body)
}

/// A fault for a request refused before any endpoint logic ran (HTTP-level refusals), in the
/// dialect of `endpoint` when the path named one.
pub fn refusal(
    ctx: &CoreContext,
    endpoint: Option<Endpoint>,
    error: RequestError,
    what: &str,
    now: Timestamp,
) -> Outcome {
    let fault = error.fault(endpoint, &ctx.shared.policy().config.sts.fault_actor);
    log_refusal(what, &error, &fault);
    let dialect = endpoint.map_or(FaultDialect::Dgws, Endpoint::dialect);
    let body = fault::unsigned_envelope(&Correlation::fresh(dialect, now), now, &fault);
    Outcome::refused(&error, &fault, body)
}

/// The fault for a request refused by admission control, built without looking at the request
/// and without a log line per refusal (at peak there are thousands a second; the metrics
/// count them).
///
/// At peak most requests are refused, so the envelope is built once per second, reason,
/// dialect and policy on each core and reused: refusals within that second share its
/// MessageID and Created time. Nothing correlates by them (a refused request is not parsed, so
/// the fault relates to no message), and seal clients read only the fault code and string.
pub fn shed(ctx: &CoreContext, endpoint: Endpoint, reason: &'static str, now: Timestamp) -> Outcome {
    let error = RequestError::Overloaded { reason, retry_after_secs: SHED_RETRY_AFTER_SECS };
    let policy = ctx.shared.policy();
    let dialect = endpoint.dialect();
    let fault = error.fault(Some(endpoint), &policy.config.sts.fault_actor);
    let second = now.as_second();
    let mut cached = ctx.shed_faults.borrow_mut();
    let fresh = |f: &ShedFault| {
        f.second == second
            && f.policy_version == policy.version
            && f.reason == reason
            && f.endpoint == endpoint
    };
    let body = match cached.iter().find(|f| fresh(f)) {
        Some(cached) => cached.body.clone(),
        None => {
            let body = fault::unsigned_envelope(&Correlation::fresh(dialect, now), now, &fault);
            // One entry per reason and endpoint: the list never grows beyond those few.
            cached.retain(|f| !(f.reason == reason && f.endpoint == endpoint));
            cached.push(ShedFault {
                second,
                policy_version: policy.version,
                reason,
                endpoint,
                body: body.clone(),
            });
            body
        }
    };
    Outcome::refused(&error, &fault, body)
}

/// What a shed request is told to wait before retrying (the `Retry-After` header says the same).
pub const SHED_RETRY_AFTER_SECS: u32 = 1;

/// A refusal envelope of admission control, reused for one second (see [`shed`]).
pub struct ShedFault {
    second: i64,
    policy_version: u64,
    reason: &'static str,
    endpoint: Endpoint,
    body: Vec<u8>,
}

fn log_refusal(what: &str, error: &RequestError, fault: &Fault) {
    let (code, status) = (fault.code.qname(), fault.status);
    if error.retry_after_secs().is_some() {
        // At peak these come by the thousand a second: the metrics count them by reason.
        tracing::debug!(endpoint = what, fault = %code, status, "request refused: {error}");
    } else if error.is_internal() {
        tracing::error!(endpoint = what, fault = %code, status, "request failed: {error}");
    } else {
        tracing::warn!(endpoint = what, fault = %code, status, "request refused: {error}");
    }
}
