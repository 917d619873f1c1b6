//! Namespace URIs (spec §1.1). Match on these, never on prefixes.

/// SOAP 1.1 envelope.
pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SAML 2.0 assertion.
pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// XML-DSig.
pub const DS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// WS-Security secext 1.0.
pub const WSSE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
/// WS-Security utility 1.0.
pub const WSU: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
/// WS-Trust 2005/02, used by the DGWS family.
pub const WST_2005_02: &str = "http://schemas.xmlsoap.org/ws/2005/02/trust";
/// WS-Addressing 2004/08, only inside `wst:Issuer` in DGWS messages.
pub const WSA_2004_08: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
/// SOSI.
pub const SOSI: &str = "http://www.sosi.dk/sosi/2006/04/sosi-1.0.xsd";
/// MedCom DGWS 1.0.
pub const MEDCOM: &str = "http://www.medcom.dk/dgws/2006/04/dgws-1.0.xsd";
/// XML Schema instance.
pub const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// XML Schema.
pub const XSD: &str = "http://www.w3.org/2001/XMLSchema";
/// DGWS 1.1 fault codes (`dgws:*`).
pub const DGWS_FAULTS: &str = "http://www.dgws.dk/dgws/2007/12/dgws-1.1";
/// WS-Trust 1.3, used by the OIO WS-Trust family.
pub const WST_1_3: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200512";
/// WS-Trust 1.4 (`wst14:ActAs`).
pub const WST_1_4: &str = "http://docs.oasis-open.org/ws-sx/ws-trust/200802";
/// WS-Addressing 1.0, the OIO family's addressing.
pub const WSA: &str = "http://www.w3.org/2005/08/addressing";
/// WS-Policy 2004/09 (`wsp:AppliesTo`).
pub const WSP: &str = "http://schemas.xmlsoap.org/ws/2004/09/policy";
/// WS-Federation authorization claims (`auth:ClaimType`).
pub const AUTH: &str = "http://docs.oasis-open.org/wsfed/authorization/200706";
/// The `wst:Claims` dialect of authorization claims.
pub const AUTHCLAIMS_DIALECT: &str = "http://docs.oasis-open.org/wsfed/authorization/200706/authclaims";
/// XML Encryption.
pub const XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
/// Liberty discovery (the DiscoveryEPR bootstrap attribute).
pub const DISCO: &str = "urn:liberty:disco:2006-08";
/// Liberty security (`sec:Token`).
pub const LIBERTY_SEC: &str = "urn:liberty:security:2006-08";
