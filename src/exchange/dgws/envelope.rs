//! Envelopes of the DGWS family: the success response around an issued card, and faults.

use crate::exchange::fault::Fault;
use crate::time::{self, DgwsVersion};
use crate::token::ns;
use crate::xml::emit::CanonicalWriter;

/// `wst:TokenType` for ID cards, with the trailing colon current clients use.
pub const ID_CARD_TOKEN_TYPE: &str = "urn:oasis:names:tc:SAML:2.0:assertion:";
/// `wst:Status/wst:Code` of a successful issue.
pub const STATUS_VALID: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust/status/valid";

/// What a DGWS response echoes from its request.
#[derive(Debug, Clone)]
pub struct Correlation {
    /// The request's DGWS message id (`wsse:Security/@id`), or a fresh one when it had none.
    pub message_id: String,
    /// The DGWS version of the request's timestamp, which the response's timestamp follows.
    pub version: DgwsVersion,
    /// The RST `Context`, echoed on the RSTR.
    pub context: String,
}

impl Correlation {
    /// What a response echoes when nothing could be read from the request: a fresh message
    /// id, DGWS 1.0.1, the constant context.
    pub fn fresh(now: jiff::Timestamp) -> Self {
        Correlation {
            message_id: new_message_id(now),
            version: DgwsVersion::V1_0_1,
            context: "www.sosi.dk".into(),
        }
    }
}

fn header(w: &mut CanonicalWriter, message_id: &str, created: &str) {
    w.start("soapenv:Header", &[], &[]);
    w.start("wsse:Security", &[], &[("id", message_id)]);
    w.start("wsu:Timestamp", &[], &[]);
    w.leaf("wsu:Created", &[], &[], created);
    w.end("wsu:Timestamp");
    w.end("wsse:Security");
    w.end("soapenv:Header");
}

/// Opens a DGWS envelope as seal and the STS write it: every namespace a DGWS message uses
/// declared on the root (spec §2.1), `id="Envelope"`, and the header with the message id and
/// timestamp. The caller writes the Body and closes the envelope.
pub fn start_envelope(w: &mut CanonicalWriter, message_id: &str, created: &str) {
    w.raw(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.start(
        "soapenv:Envelope",
        &[
            ("ds", ns::DS),
            ("medcom", ns::MEDCOM),
            ("saml", ns::SAML),
            ("soapenv", ns::SOAP),
            ("sosi", ns::SOSI),
            ("wsa", ns::WSA_2004_08),
            ("wsse", ns::WSSE),
            ("wst", ns::WST_2005_02),
            ("wsu", ns::WSU),
            ("xsd", ns::XSD),
            ("xsi", ns::XSI),
        ],
        &[("id", "Envelope")],
    );
    header(w, message_id, created);
}

/// The success response carrying an STS-signed card (spec §2.1 "Response (success)").
pub fn issue_response(
    corr: &Correlation,
    now: jiff::Timestamp,
    signed_card: &[u8],
    sts_issuer: &str,
) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(signed_card.len() + 1500);
    start_envelope(&mut w, &corr.message_id, &time::format(now, corr.version));
    w.start("soapenv:Body", &[], &[]);
    w.start("wst:RequestSecurityTokenResponse", &[], &[("Context", &corr.context)]);
    w.leaf("wst:TokenType", &[], &[], ID_CARD_TOKEN_TYPE);
    w.start("wst:RequestedSecurityToken", &[], &[]);
    w.raw(signed_card);
    w.end("wst:RequestedSecurityToken");
    w.start("wst:Status", &[], &[]);
    w.leaf("wst:Code", &[], &[], STATUS_VALID);
    w.end("wst:Status");
    w.start("wst:Issuer", &[], &[]);
    w.leaf("wsa:Address", &[], &[], sts_issuer);
    w.end("wst:Issuer");
    w.end("wst:RequestSecurityTokenResponse");
    w.end("soapenv:Body");
    w.end("soapenv:Envelope");
    w.into_bytes()
}

/// A DGWS fault envelope (spec §2.1 "Response (fault)", §4.1): unqualified faultcode,
/// faultstring and faultactor, in that order; every prefix a faultcode may use is bound.
pub fn fault_response(corr: &Correlation, now: jiff::Timestamp, fault: &Fault) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(1200);
    w.raw(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.start(
        "soapenv:Envelope",
        &[
            ("dgws", ns::DGWS_FAULTS),
            ("soapenv", ns::SOAP),
            ("wsa", ns::WSA_2004_08),
            ("wsse", ns::WSSE),
            ("wst", ns::WST_2005_02),
            ("wsu", ns::WSU),
        ],
        &[("id", "Envelope")],
    );
    header(&mut w, &corr.message_id, &time::format(now, corr.version));
    w.start("soapenv:Body", &[], &[]);
    w.start("soapenv:Fault", &[], &[]);
    w.leaf("faultcode", &[], &[], &fault.code.qname());
    w.leaf("faultstring", &[], &[], &fault.string);
    w.leaf("faultactor", &[], &[], &fault.actor);
    w.end("soapenv:Fault");
    w.end("soapenv:Body");
    w.end("soapenv:Envelope");
    w.into_bytes()
}

/// A fresh DGWS message id in seal's form: base64 of 8 bytes big-endian milliseconds since
/// the epoch, 8 random bytes and ASCII `SOSI` (spec §1.6).
pub fn new_message_id(now: jiff::Timestamp) -> String {
    use base64::Engine;
    let mut nonce = [0u8; 20];
    nonce[..8].copy_from_slice(&(now.as_millisecond() as u64).to_be_bytes());
    // A failed RNG only weakens uniqueness of a correlation id; it is not a security value.
    let _ = aws_lc_rs::rand::fill(&mut nonce[8..16]);
    nonce[16..].copy_from_slice(b"SOSI");
    base64::engine::general_purpose::STANDARD.encode(nonce)
}
