//! The OIO WS-Trust header-signature profile (SIG-HDR, spec §1.4): one `ds:Signature` as a
//! child of the envelope's `wsse:Security`, one reference per signed part, each with the
//! exclusive c14n transform alone, resolving by `wsu:Id` to exactly the parts the profile
//! names: `wsa:MessageID`, `wsa:Action`, `wsa:RelatesTo` and `wsa:To` directly in the SOAP
//! Header, `wsu:Timestamp` directly in that `wsse:Security`, and the envelope's SOAP Body.
//!
//! MessageID, Action, Timestamp and Body must be present and signed; RelatesTo and To must be
//! signed when present. The verifier returns those elements: the exchange code reads the
//! message only through them, so an unsigned copy placed elsewhere is never looked at.

use crate::xml::dsig::algorithm::{SignatureAlgorithm, DSIG_NS};
use crate::xml::dsig::policy::Policy;
use crate::xml::dsig::verify::{
    check_reference, check_signature_value, read_reference, read_signature, C14n, DsigError, ReferenceParts,
};
use crate::xml::parse::{Document, NodeId, WSU_NS};

/// SOAP 1.1, the envelope of every OIO WS-Trust message.
const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// WS-Addressing 1.0.
const WSA_NS: &str = "http://www.w3.org/2005/08/addressing";
/// WS-Security secext 1.0.
const WSSE_NS: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";

/// What a verified header signature vouches for: every element here is covered by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedHeader {
    /// The `ds:Signature` element.
    pub signature: NodeId,
    /// The `wsse:Security` header holding it.
    pub security: NodeId,
    /// `wsa:MessageID`.
    pub message_id: NodeId,
    /// `wsa:Action`.
    pub action: NodeId,
    /// `wsa:RelatesTo`, when the message has one.
    pub relates_to: Option<NodeId>,
    /// `wsa:To`, when the message has one.
    pub to: Option<NodeId>,
    /// `wsu:Timestamp` in the signature's `wsse:Security`.
    pub timestamp: NodeId,
    /// The envelope's SOAP Body.
    pub body: NodeId,
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// DER of the signer certificate (from KeyInfo, or the policy's; trust unchecked).
    pub certificate_der: Vec<u8>,
}

/// The single child `{ns}local` of `parent`, if any; a second one is ambiguous.
fn unique_child(
    doc: &Document,
    parent: NodeId,
    ns: &str,
    local: &str,
    element: &'static str,
    parent_name: &'static str,
) -> Result<Option<NodeId>, DsigError> {
    let mut found = None;
    for c in doc.children(parent).filter(|&c| doc.is(c, ns, local)) {
        if found.replace(c).is_some() {
            return Err(DsigError::Ambiguous { element, parent: parent_name });
        }
    }
    Ok(found)
}

fn required(found: Option<NodeId>, name: &'static str) -> Result<NodeId, DsigError> {
    found.ok_or(DsigError::MissingElement { name })
}

/// One part the profile may sign: where it is and whether a reference covered it yet.
struct Part {
    name: &'static str,
    node: Option<NodeId>,
    required: bool,
    covered: bool,
}

/// Verifies the header signature of the SOAP envelope `doc` under `policy` (whose
/// inclusive-c14n allowance does not apply: header signatures are exclusive c14n only).
pub fn verify_header(doc: &Document, policy: &Policy<'_>) -> Result<VerifiedHeader, DsigError> {
    verify_header_using(doc, policy, &super::verify::ParseEachTime)
}

/// [`verify_header`], taking the signer's key from `keys` (a core's signer cache keeps parsed
/// keys of the certificates it validated).
pub fn verify_header_using(
    doc: &Document,
    policy: &Policy<'_>,
    keys: &dyn super::verify::SignerKeys,
) -> Result<VerifiedHeader, DsigError> {
    let envelope = doc.root();
    if !doc.is(envelope, SOAP11_NS, "Envelope") {
        return Err(DsigError::MissingElement { name: "soapenv:Envelope" });
    }
    let header = required(
        unique_child(doc, envelope, SOAP11_NS, "Header", "soapenv:Header", "soapenv:Envelope")?,
        "soapenv:Header",
    )?;
    let body = required(
        unique_child(doc, envelope, SOAP11_NS, "Body", "soapenv:Body", "soapenv:Envelope")?,
        "soapenv:Body",
    )?;
    let security = required(
        unique_child(doc, header, WSSE_NS, "Security", "wsse:Security", "soapenv:Header")?,
        "wsse:Security",
    )?;
    let signatures: Vec<NodeId> =
        doc.children(security).filter(|&c| doc.is(c, DSIG_NS, "Signature")).collect();
    let [signature] = signatures.as_slice() else {
        return Err(DsigError::SignatureCount { element: "wsse:Security".into(), found: signatures.len() });
    };
    let signature = *signature;

    let mut parts = [
        Part {
            name: "wsa:MessageID",
            node: unique_child(doc, header, WSA_NS, "MessageID", "wsa:MessageID", "soapenv:Header")?,
            required: true,
            covered: false,
        },
        Part {
            name: "wsa:Action",
            node: unique_child(doc, header, WSA_NS, "Action", "wsa:Action", "soapenv:Header")?,
            required: true,
            covered: false,
        },
        Part {
            name: "wsa:RelatesTo",
            node: unique_child(doc, header, WSA_NS, "RelatesTo", "wsa:RelatesTo", "soapenv:Header")?,
            required: false,
            covered: false,
        },
        Part {
            name: "wsa:To",
            node: unique_child(doc, header, WSA_NS, "To", "wsa:To", "soapenv:Header")?,
            required: false,
            covered: false,
        },
        Part {
            name: "wsu:Timestamp",
            node: unique_child(doc, security, WSU_NS, "Timestamp", "wsu:Timestamp", "wsse:Security")?,
            required: true,
            covered: false,
        },
        Part { name: "soapenv:Body", node: Some(body), required: true, covered: false },
    ];
    for p in &parts {
        if p.required && p.node.is_none() {
            return Err(DsigError::MissingElement { name: p.name });
        }
    }

    let exclusive_only = Policy { inclusive_c14n: false, ..*policy };
    let sig = read_signature(doc, signature, &exclusive_only).map_err(header_c14n)?;
    let mut references: Vec<ReferenceParts> = Vec::with_capacity(sig.references.len());
    for &r in &sig.references {
        let r = read_reference(doc, r, &exclusive_only).map_err(header_c14n)?;
        if r.enveloped || !matches!(r.c14n, C14n::Exclusive(_)) {
            return Err(DsigError::UnexpectedTransform {
                uri: r.uri,
                transform: "header references carry the exclusive c14n transform alone".into(),
            });
        }
        let Some(part) = parts.iter_mut().find(|p| p.node == Some(r.target)) else {
            return Err(DsigError::ReferenceOutsideProfile {
                uri: r.uri,
                element: doc.qname(r.target).to_owned(),
            });
        };
        if std::mem::replace(&mut part.covered, true) {
            return Err(DsigError::DuplicateReference { uri: r.uri });
        }
        references.push(r);
    }
    if let Some(p) = parts.iter().find(|p| p.node.is_some() && !p.covered) {
        return Err(DsigError::MissingCoverage { element: p.name });
    }

    for r in &references {
        check_reference(doc, signature, r)?;
    }
    let certificate_der = check_signature_value(doc, &sig, &exclusive_only, keys)?;
    let node = |k: usize| parts.get(k).and_then(|p| p.node);
    Ok(VerifiedHeader {
        signature,
        security,
        message_id: required(node(0), "wsa:MessageID")?,
        action: required(node(1), "wsa:Action")?,
        relates_to: node(2),
        to: node(3),
        timestamp: required(node(4), "wsu:Timestamp")?,
        body,
        algorithm: sig.algorithm,
        certificate_der,
    })
}

/// States the header profile's own rule when inclusive c14n shows up.
fn header_c14n(e: DsigError) -> DsigError {
    match e {
        DsigError::AlgorithmNotAllowed { uri, .. } if uri == crate::xml::dsig::algorithm::C14N_10 => {
            DsigError::AlgorithmNotAllowed { uri, why: "header signatures use exclusive c14n only" }
        }
        other => other,
    }
}
