//! Reading an OIO WS-Trust 1.3 issue request (spec §2.3–§2.8) from the spellings seal.java,
//! seal.net and unsealed send: SOAP 1.1, WS-Addressing 1.0 headers (MessageID and Action
//! optional, as the IDWS-H schema allows for proxies), an optional `wsse:Security` (with a
//! SIG-HDR signature, and/or tokens a request refers to from its Body), and in the Body one
//! `wst:RequestSecurityToken` with TokenType, RequestType, `wst14:ActAs`, `wsp:AppliesTo`,
//! `wst:Claims` in the authclaims dialect and a Context.
//!
//! Everything is matched by namespace URI, never by prefix. Elements that may occur once and
//! occur twice are refused: two ActAs or two AppliesTo leave open which one counts.

use super::envelope::ACTION_ISSUE;
use crate::exchange::error::RequestError;
use crate::token::ns;
use crate::xml::{Document, NodeId};

/// `wst:RequestType` of an issue request.
pub const REQUEST_TYPE_ISSUE: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512/Issue";

/// One `auth:ClaimType` with its value(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// `@Uri`, e.g. `dk:gov:saml:attribute:CprNumberIdentifier`.
    pub uri: String,
    /// The `auth:Value` texts (usually one).
    pub values: Vec<String>,
}

/// What an OIO issue request says, as element handles into the document.
#[derive(Debug, Clone)]
pub struct OioRequest {
    /// `soapenv:Envelope`.
    pub envelope: NodeId,
    /// `soapenv:Header`, if any.
    pub header: Option<NodeId>,
    /// `soapenv:Body`.
    pub body: NodeId,
    /// `wsse:Security` in the header, if any.
    pub security: Option<NodeId>,
    /// Whether `wsse:Security` holds a `ds:Signature` (then it must verify).
    pub signed: bool,
    /// `wsa:MessageID` text.
    pub message_id: Option<String>,
    /// `wst:RequestSecurityToken`.
    pub rst: NodeId,
    /// `@Context` of the RST.
    pub context: Option<String>,
    /// `wst:TokenType`.
    pub token_type: Option<String>,
    /// The element children of `wst14:ActAs`, a `wsse:SecurityTokenReference` resolved to the
    /// header token it names.
    pub act_as: Vec<NodeId>,
    /// `wsp:AppliesTo/wsa:EndpointReference/wsa:Address`.
    pub applies_to: Option<String>,
    /// `wst:Claims` in the authclaims dialect.
    pub claims: Vec<Claim>,
}

fn malformed(why: impl Into<String>) -> RequestError {
    RequestError::NotStsRequest(why.into())
}

/// The single child `{ns}local`, if any; a second one is refused.
fn single(
    doc: &Document,
    parent: NodeId,
    ns: &str,
    local: &str,
    name: &str,
) -> Result<Option<NodeId>, RequestError> {
    let mut found = None;
    for c in doc.children(parent).filter(|&c| doc.is(c, ns, local)) {
        if found.replace(c).is_some() {
            return Err(malformed(format!("{name} occurs more than once")));
        }
    }
    Ok(found)
}

fn text_of(doc: &Document, node: Option<NodeId>) -> Option<String> {
    node.map(|n| doc.text(n).trim().to_owned())
}

/// Reads the request. Nothing is verified here: the caller verifies the header signature (when
/// `signed`) and each token's own signature before trusting what they say.
pub fn read(doc: &Document) -> Result<OioRequest, RequestError> {
    let envelope = doc.root();
    if !doc.is(envelope, ns::SOAP, "Envelope") {
        return Err(malformed("the document element is not a SOAP 1.1 Envelope"));
    }
    let header = single(doc, envelope, ns::SOAP, "Header", "soapenv:Header")?;
    let body = single(doc, envelope, ns::SOAP, "Body", "soapenv:Body")?
        .ok_or_else(|| malformed("no soapenv:Body"))?;
    let (mut message_id, mut security) = (None, None);
    if let Some(h) = header {
        message_id = text_of(doc, single(doc, h, ns::WSA, "MessageID", "wsa:MessageID")?);
        if let Some(action) = text_of(doc, single(doc, h, ns::WSA, "Action", "wsa:Action")?) {
            if action != ACTION_ISSUE {
                return Err(malformed(format!("wsa:Action {action:?} is not {ACTION_ISSUE}")));
            }
        }
        security = single(doc, h, ns::WSSE, "Security", "wsse:Security")?;
    }
    let signed = security.is_some_and(|s| doc.children(s).any(|c| doc.is(c, ns::DS, "Signature")));

    let rst = single(doc, body, ns::WST_1_3, "RequestSecurityToken", "wst:RequestSecurityToken")?
        .ok_or_else(|| malformed("the Body holds no wst:RequestSecurityToken (WS-Trust 1.3)"))?;
    let context = doc.attribute(rst, "Context").map(|c| c.into_owned());
    let token_type = text_of(doc, single(doc, rst, ns::WST_1_3, "TokenType", "wst:TokenType")?);
    match text_of(doc, single(doc, rst, ns::WST_1_3, "RequestType", "wst:RequestType")?) {
        Some(t) if t == REQUEST_TYPE_ISSUE => {}
        Some(t) => return Err(malformed(format!("wst:RequestType {t:?} is not {REQUEST_TYPE_ISSUE}"))),
        None => return Err(malformed("no wst:RequestType")),
    }

    // ActAs is WS-Trust 1.4's; a 1.3-namespaced one (some proxies rewrite) is read the same.
    let act_as_14 = single(doc, rst, ns::WST_1_4, "ActAs", "wst14:ActAs")?;
    let act_as_13 = single(doc, rst, ns::WST_1_3, "ActAs", "wst:ActAs")?;
    let act_as_node = match (act_as_14, act_as_13) {
        (Some(_), Some(_)) => return Err(malformed("wst14:ActAs and wst:ActAs both present")),
        (a, b) => a.or(b),
    };
    let mut act_as = Vec::new();
    if let Some(node) = act_as_node {
        for token in doc.children(node) {
            act_as.push(resolve_reference(doc, security, token)?);
        }
    }

    let applies_to = match single(doc, rst, ns::WSP, "AppliesTo", "wsp:AppliesTo")? {
        Some(a) => {
            let epr = single(doc, a, ns::WSA, "EndpointReference", "wsa:EndpointReference")?
                .ok_or_else(|| malformed("wsp:AppliesTo holds no wsa:EndpointReference"))?;
            let address = single(doc, epr, ns::WSA, "Address", "wsa:Address")?
                .ok_or_else(|| malformed("wsp:AppliesTo holds no wsa:Address"))?;
            Some(doc.text(address).trim().to_owned())
        }
        None => None,
    };

    let mut claims = Vec::new();
    if let Some(c) = single(doc, rst, ns::WST_1_3, "Claims", "wst:Claims")? {
        if let Some(dialect) = doc.attribute(c, "Dialect") {
            if dialect != ns::AUTHCLAIMS_DIALECT {
                return Err(malformed(format!(
                    "wst:Claims dialect {dialect:?} is not {}",
                    ns::AUTHCLAIMS_DIALECT
                )));
            }
        }
        for claim in doc.children(c).filter(|&n| doc.is(n, ns::AUTH, "ClaimType")) {
            let uri = doc.attribute(claim, "Uri").ok_or_else(|| malformed("auth:ClaimType without Uri"))?;
            let values = doc
                .children(claim)
                .filter(|&v| doc.is(v, ns::AUTH, "Value"))
                .map(|v| doc.text(v).trim().to_owned())
                .collect();
            claims.push(Claim { uri: uri.into_owned(), values });
        }
    }

    Ok(OioRequest {
        envelope,
        header,
        body,
        security,
        signed,
        message_id,
        rst,
        context,
        token_type,
        act_as,
        applies_to,
        claims,
    })
}

/// An ActAs child as the token it stands for: a `wsse:SecurityTokenReference` with one
/// `wsse:Reference URI="#id"` names a token that must sit directly in the header's
/// `wsse:Security` (seal's "ID card in header" variant); any other element is the token.
fn resolve_reference(
    doc: &Document,
    security: Option<NodeId>,
    token: NodeId,
) -> Result<NodeId, RequestError> {
    if !doc.is(token, ns::WSSE, "SecurityTokenReference") {
        return Ok(token);
    }
    let reference = single(doc, token, ns::WSSE, "Reference", "wsse:Reference")?
        .ok_or_else(|| malformed("wsse:SecurityTokenReference holds no wsse:Reference"))?;
    let uri = doc.attribute(reference, "URI").ok_or_else(|| malformed("wsse:Reference without URI"))?;
    let id =
        uri.strip_prefix('#').ok_or_else(|| malformed(format!("wsse:Reference URI {uri:?} is not #id")))?;
    let security = security
        .ok_or_else(|| malformed(format!("{uri} names a header token, but there is no wsse:Security")))?;
    let mut found = None;
    for c in doc.children(security) {
        let ids = ["id", "ID", "Id"].iter().filter_map(|a| doc.attribute(c, a)).any(|v| v == id)
            || doc.attribute_ns(c, ns::WSU, "Id").is_some_and(|v| v == id);
        if ids && found.replace(c).is_some() {
            return Err(malformed(format!("two header tokens carry the id {id:?}")));
        }
    }
    found.ok_or_else(|| malformed(format!("{uri} names no token in wsse:Security")))
}

/// The first value of the claim `uri`, if the request makes it.
pub fn claim<'a>(claims: &'a [Claim], uri: &str) -> Option<&'a str> {
    claims.iter().find(|c| c.uri == uri).and_then(|c| c.values.first()).map(String::as_str)
}
