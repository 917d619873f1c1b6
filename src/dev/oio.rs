//! Development requests for the OIO WS-Trust exchanges, shaped as the federation's clients
//! send them (spec §2.3): the README's examples and the end-to-end tests use these.

use bytes::Bytes;

use super::DevError;
use crate::exchange::oio::envelope::{new_uuid_urn, ACTION_ISSUE, TOKEN_TYPE_SAML2};
use crate::exchange::oio::request::REQUEST_TYPE_ISSUE;
use crate::token::ns;
use crate::xml::emit::CanonicalWriter;
use crate::xml::{Document, Limits};

/// The STS-signed ID card in a DGWS response (`wst:RequestedSecurityToken/saml:Assertion`), in
/// its exclusive canonical form: self-contained, and byte for byte what its signature covers.
pub fn issued_card(dgws_response: &[u8]) -> Result<Vec<u8>, DevError> {
    let missing = || DevError::BadInput("no STS-signed ID card in the DGWS response".into());
    let doc =
        Document::parse(Bytes::copy_from_slice(dgws_response), &Limits::default()).map_err(|_| missing())?;
    let card = std::iter::once(doc.root())
        .chain(doc.descendants(doc.root()))
        .find(|&n| {
            doc.is(n, ns::SAML, "Assertion")
                && doc.parent(n).is_some_and(|p| doc.is(p, ns::WST_2005_02, "RequestedSecurityToken"))
        })
        .ok_or_else(missing)?;
    Ok(crate::xml::c14n::exclusive_to_vec(&doc, card, None, &[]))
}

/// How the card travels in a Sosi2OIOSaml request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardPlacement {
    /// In `wst14:ActAs` (unsealed, seal's default).
    ActAs,
    /// In the header's `wsse:Security`, referred to from ActAs (seal's "ID card in header").
    Header,
}

/// A Sosi2OIOSaml request for `audience` presenting `card`, as unsealed sends it: WS-Addressing
/// Action and MessageID, no header signature, the MessageID as the RST Context.
pub fn sosi2oiosaml_request(card: &[u8], audience: &str, placement: CardPlacement) -> Vec<u8> {
    let message_id = new_uuid_urn();
    let mut w = CanonicalWriter::with_capacity(card.len() + 2000);
    w.raw(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.start(
        "soapenv:Envelope",
        &[
            ("saml", ns::SAML),
            ("soapenv", ns::SOAP),
            ("wsa", ns::WSA),
            ("wsp", ns::WSP),
            ("wsse", ns::WSSE),
            ("wst", ns::WST_1_3),
            ("wst14", ns::WST_1_4),
        ],
        &[],
    );
    w.start("soapenv:Header", &[], &[]);
    w.leaf("wsa:Action", &[], &[], ACTION_ISSUE);
    w.leaf("wsa:MessageID", &[], &[], &message_id);
    if placement == CardPlacement::Header {
        w.start("wsse:Security", &[], &[("mustUnderstand", "1")]);
        w.raw(card);
        w.end("wsse:Security");
    }
    w.end("soapenv:Header");
    w.start("soapenv:Body", &[], &[]);
    w.start("wst:RequestSecurityToken", &[], &[("Context", &message_id)]);
    w.leaf("wst:TokenType", &[], &[], TOKEN_TYPE_SAML2);
    w.leaf("wst:RequestType", &[], &[], REQUEST_TYPE_ISSUE);
    w.start("wst14:ActAs", &[], &[]);
    match placement {
        CardPlacement::ActAs => w.raw(card),
        CardPlacement::Header => {
            w.start("wsse:SecurityTokenReference", &[], &[]);
            w.start("wsse:Reference", &[], &[("URI", "#IDCard")]);
            w.end("wsse:Reference");
            w.end("wsse:SecurityTokenReference");
        }
    }
    w.end("wst14:ActAs");
    w.start("wsp:AppliesTo", &[], &[]);
    w.start("wsa:EndpointReference", &[], &[]);
    w.leaf("wsa:Address", &[], &[], audience);
    w.end("wsa:EndpointReference");
    w.end("wsp:AppliesTo");
    w.end("wst:RequestSecurityToken");
    w.end("soapenv:Body");
    w.end("soapenv:Envelope");
    w.into_bytes()
}
