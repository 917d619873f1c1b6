//! Envelopes of the OIO WS-Trust 1.3 family (spec §2.3 "Response", §4.1, §4.4): the
//! RequestSecurityTokenResponseCollection and faults, with WS-Addressing 1.0 headers (the
//! request's Action, a fresh MessageID, RelatesTo = the request's MessageID) and a
//! WS-Security header signature (SIG-HDR) by the STS key over `#messageID`, `#action`,
//! `#relatesTo`, `#ts` and `#body`, as the captured TEST1 response is signed.
//!
//! Signing is split like the token signatures: [`prepare`] writes the envelope and the
//! SignedInfo, the HSM signs its digest, [`UnsignedEnvelope::finish`] inserts the signature.
//! Header parts are written in their canonical form and digested as written; the Body is
//! digested from its exclusive canonical form (it embeds tokens written elsewhere, e.g. an
//! EncryptedAssertion whose nested `xmlns:xenc` re-declaration exclusive c14n drops).

use bytes::Bytes;
use jiff::Timestamp;

use crate::exchange::fault::Fault;
use crate::token::ns;
use crate::xml::c14n;
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::dsig::sign::{self, PreparedSignature, Reference};
use crate::xml::emit::CanonicalWriter;
use crate::xml::{Document, Limits, XmlError};

/// `wsa:Action` of an issue request, and of its response (the STS answers with the same URI).
pub const ACTION_ISSUE: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/RST/Issue";
/// `wst:TokenType` of SAML 2.0 tokens (OIOSAML assertions, ID cards, identity tokens).
pub const TOKEN_TYPE_SAML2: &str = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0";

/// What an OIO answer echoes from its request.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    /// The request's `wsa:MessageID` (the answer's `wsa:RelatesTo`); none when it had none.
    pub relates_to: Option<String>,
    /// The RST's `Context` attribute, echoed on the RSTR.
    pub context: Option<String>,
}

/// A fresh `urn:uuid:` (random, version 4).
pub fn new_uuid_urn() -> String {
    format!("urn:uuid:{}", uuid())
}

/// A random version-4 UUID in its text form.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    // A failed RNG only weakens uniqueness of an identifier; it is not a secret.
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = segl_pkcs11::hex_encode(&b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// OIO timestamps: UTC with `Z`, whole seconds (spec §1.5).
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The Body content of a successful issue: one RSTR in a collection, as TEST1 answers.
pub struct TokenResponse<'a> {
    /// `wst:TokenType`.
    pub token_type: &'a str,
    /// The token element (or EncryptedAssertion), embedded verbatim.
    pub token: &'a [u8],
    /// `wsp:AppliesTo` address echoed, when the request named one.
    pub applies_to: Option<&'a str>,
    /// `wst:Lifetime` (Created, Expires): the issued token's validity.
    pub lifetime: (Timestamp, Timestamp),
    /// The issued token's id, for `wst:RequestedAttachedReference` and
    /// `RequestedUnattachedReference` (ID cards: `IDCard`), placed inside the RSTR after
    /// RequestedSecurityToken as the captured sample and the NemLog-in STS place them.
    pub reference: Option<&'a str>,
}

impl TokenResponse<'_> {
    /// Writes `wst:RequestSecurityTokenResponseCollection`, self-contained in its namespaces.
    pub fn body_content(&self, corr: &Correlation) -> Vec<u8> {
        let mut w = CanonicalWriter::with_capacity(self.token.len() + 1200);
        w.start("wst:RequestSecurityTokenResponseCollection", &[("wst", ns::WST_1_3)], &[]);
        match &corr.context {
            Some(context) => w.start("wst:RequestSecurityTokenResponse", &[], &[("Context", context)]),
            None => w.start("wst:RequestSecurityTokenResponse", &[], &[]),
        }
        w.leaf("wst:TokenType", &[], &[], self.token_type);
        w.start("wst:RequestedSecurityToken", &[], &[]);
        w.raw(self.token);
        w.end("wst:RequestedSecurityToken");
        if let Some(id) = self.reference {
            let uri = format!("#{id}");
            for element in ["wst:RequestedAttachedReference", "wst:RequestedUnattachedReference"] {
                w.start(element, &[], &[]);
                w.start("wsse:SecurityTokenReference", &[("wsse", ns::WSSE)], &[]);
                w.start("wsse:Reference", &[], &[("URI", &uri)]);
                w.end("wsse:Reference");
                w.end("wsse:SecurityTokenReference");
                w.end(element);
            }
        }
        if let Some(address) = self.applies_to {
            w.start("wsp:AppliesTo", &[("wsp", ns::WSP)], &[]);
            w.start("wsa:EndpointReference", &[("wsa", ns::WSA)], &[]);
            w.leaf("wsa:Address", &[], &[], address);
            w.end("wsa:EndpointReference");
            w.end("wsp:AppliesTo");
        }
        w.start("wst:Lifetime", &[], &[]);
        w.leaf("wsu:Created", &[("wsu", ns::WSU)], &[], &format_time(self.lifetime.0));
        w.leaf("wsu:Expires", &[("wsu", ns::WSU)], &[], &format_time(self.lifetime.1));
        w.end("wst:Lifetime");
        w.end("wst:RequestSecurityTokenResponse");
        w.end("wst:RequestSecurityTokenResponseCollection");
        w.into_bytes()
    }
}

/// The Body content of a fault: unqualified faultcode, faultstring, faultactor (spec §4.1);
/// `wst` (WS-Trust 1.3) is bound on the Fault for the code's prefix.
pub fn fault_content(fault: &Fault) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(600);
    w.start("soapenv:Fault", &[("soapenv", ns::SOAP), ("wst", ns::WST_1_3)], &[]);
    w.leaf("faultcode", &[], &[], &fault.code.qname());
    w.leaf("faultstring", &[], &[], &fault.string);
    w.leaf("faultactor", &[], &[], &fault.actor);
    w.end("soapenv:Fault");
    w.into_bytes()
}

/// The root start tag: every namespace an OIO answer uses, as TEST1 declares them.
fn start_root(w: &mut CanonicalWriter) {
    w.raw(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.start(
        "soapenv:Envelope",
        &[
            ("ds", ns::DS),
            ("saml", ns::SAML),
            ("soapenv", ns::SOAP),
            ("wsa", ns::WSA),
            ("wsp", ns::WSP),
            ("wsse", ns::WSSE),
            ("wst", ns::WST_1_3),
            ("wsu", ns::WSU),
        ],
        &[],
    );
}

/// One WS-Addressing header in its canonical form (it declares what it uses).
fn addressing_header(local: &str, id: &str, value: &str) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(200 + value.len());
    let qname = format!("wsa:{local}");
    w.start(&qname, &[("wsa", ns::WSA), ("wsu", ns::WSU)], &[("wsu:Id", id)]);
    w.text(value);
    w.end(&qname);
    w.into_bytes()
}

fn body_element(content: &[u8]) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(content.len() + 200);
    w.start("soapenv:Body", &[("soapenv", ns::SOAP), ("wsu", ns::WSU)], &[("wsu:Id", "body")]);
    w.raw(content);
    w.end("soapenv:Body");
    w.into_bytes()
}

/// An envelope whose header signature waits for its RSA value.
pub struct UnsignedEnvelope {
    head: Vec<u8>,
    body: Vec<u8>,
    prepared: PreparedSignature,
}

impl UnsignedEnvelope {
    /// The SignedInfo digest the HSM signs (as a PKCS#1 DigestInfo).
    pub fn signed_info_digest(&self) -> &[u8] {
        &self.prepared.signed_info_digest
    }

    /// The complete envelope, given the RSA signature over `signed_info_digest()`.
    pub fn finish(self, signature_value: &[u8]) -> Vec<u8> {
        let signature = sign::finish(&self.prepared, signature_value);
        let mut out = self.head;
        out.reserve(signature.len() + self.body.len() + 64);
        out.extend_from_slice(&signature);
        out.extend_from_slice(b"</wsse:Security></soapenv:Header>");
        out.extend_from_slice(&self.body);
        out.extend_from_slice(b"</soapenv:Envelope>");
        out
    }
}

/// Writes an answer around `body_content` and prepares its SIG-HDR signature with
/// `algorithm` and the STS certificate `certificate_b64`.
pub fn prepare(
    corr: &Correlation,
    now: Timestamp,
    body_content: &[u8],
    algorithm: SignatureAlgorithm,
    certificate_b64: &str,
) -> Result<UnsignedEnvelope, XmlError> {
    let action = addressing_header("Action", "action", ACTION_ISSUE);
    let message_id = addressing_header("MessageID", "messageID", &new_uuid_urn());
    let relates_to = corr.relates_to.as_deref().map(|id| addressing_header("RelatesTo", "relatesTo", id));
    let mut ts = CanonicalWriter::with_capacity(300);
    ts.start("wsu:Timestamp", &[("wsu", ns::WSU)], &[("wsu:Id", "ts")]);
    ts.leaf("wsu:Created", &[], &[], &format_time(now));
    ts.end("wsu:Timestamp");
    let ts = ts.into_bytes();
    let body = body_element(body_content);

    // The Body's canonical form: parsed back and canonicalized (see the module doc).
    let parsed = Document::parse(Bytes::from(body.clone()), &Limits::default())?;
    let mut body_canonical = Vec::with_capacity(body.len());
    c14n::exclusive(&parsed, parsed.root(), None, &[], &mut body_canonical);

    let message_id_parts = [message_id.as_slice()];
    let action_parts = [action.as_slice()];
    let ts_parts = [ts.as_slice()];
    let body_parts = [body_canonical.as_slice()];
    let relates_parts = relates_to.as_ref().map(|r| [r.as_slice()]);
    let mut references = vec![
        Reference { uri: "#messageID", canonical_parts: &message_id_parts, enveloped: false },
        Reference { uri: "#action", canonical_parts: &action_parts, enveloped: false },
    ];
    if let Some(parts) = &relates_parts {
        references.push(Reference { uri: "#relatesTo", canonical_parts: parts, enveloped: false });
    }
    references.push(Reference { uri: "#ts", canonical_parts: &ts_parts, enveloped: false });
    references.push(Reference { uri: "#body", canonical_parts: &body_parts, enveloped: false });
    let prepared = sign::prepare_references(&references, algorithm, certificate_b64);

    let mut w = CanonicalWriter::with_capacity(body.len() + 4000);
    start_root(&mut w);
    w.start("soapenv:Header", &[], &[]);
    w.raw(&action);
    w.raw(&message_id);
    if let Some(r) = &relates_to {
        w.raw(r);
    }
    w.start("wsse:Security", &[], &[("mustUnderstand", "1"), ("wsu:Id", "security")]);
    w.raw(&ts);
    Ok(UnsignedEnvelope { head: w.into_bytes(), body, prepared })
}

/// A fault envelope without a header signature (see [`crate::exchange::fault::unsigned_envelope`]).
pub fn unsigned_fault(corr: &Correlation, now: Timestamp, fault: &Fault) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(1500);
    start_root(&mut w);
    w.start("soapenv:Header", &[], &[]);
    w.raw(&addressing_header("Action", "action", ACTION_ISSUE));
    w.raw(&addressing_header("MessageID", "messageID", &new_uuid_urn()));
    if let Some(id) = &corr.relates_to {
        w.raw(&addressing_header("RelatesTo", "relatesTo", id));
    }
    w.start("wsse:Security", &[], &[("mustUnderstand", "1"), ("wsu:Id", "security")]);
    w.start("wsu:Timestamp", &[], &[("wsu:Id", "ts")]);
    w.leaf("wsu:Created", &[], &[], &format_time(now));
    w.end("wsu:Timestamp");
    w.end("wsse:Security");
    w.end("soapenv:Header");
    w.raw(&body_element(&fault_content(fault)));
    w.end("soapenv:Envelope");
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_differ() {
        let (a, b) = (uuid(), uuid());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
