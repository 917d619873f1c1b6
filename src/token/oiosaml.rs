//! The OIOSAML 2.0 assertion the STS issues (spec §5.1): built from what an exchange learned
//! about the subject, signed in the HSM with an enveloped signature placed directly after
//! `saml:Issuer` (SIG-ASSERTION), optionally carrying the presented ID card as a Liberty
//! DiscoveryEPR bootstrap.
//!
//! The assertion embeds a token received from elsewhere (the bootstrap card) and attribute
//! values typed `xs:string` (a prefix used only inside a value, which exclusive c14n does not
//! render), so its digest is taken from its canonical form after writing rather than over the
//! bytes as written (see [`sign::prepare_parsed`]).

use jiff::Timestamp;

use super::ns;
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::dsig::sign::{self, PreparedSignature, SignatureSpec};
use crate::xml::emit::CanonicalWriter;
use crate::xml::XmlError;

/// `NameFormat` of the OIOSAML attributes.
pub const ATTRNAME_BASIC: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic";
/// `NameFormat` of the DiscoveryEPR attribute.
pub const ATTRNAME_URI: &str = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri";
/// The NameID format of certificate subjects.
pub const NAMEID_X509: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName";
/// Bearer subject confirmation (web SSO).
pub const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// The authentication context of a certificate login.
pub const AC_X509: &str = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509";
/// The name of the bootstrap attribute.
pub const DISCOVERY_EPR: &str = "urn:liberty:disco:2006-08:DiscoveryEPR";

/// One `saml:Attribute` with a single string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `Name`.
    pub name: &'static str,
    /// `FriendlyName`, when OIOSAML gives one.
    pub friendly_name: Option<&'static str>,
    /// The value (may be empty: seal writes an empty email element when there is none).
    pub value: String,
}

impl Attribute {
    /// An attribute without a FriendlyName.
    pub fn new(name: &'static str, value: String) -> Attribute {
        Attribute { name, friendly_name: None, value }
    }

    /// Writes it as OIOSAML does: NameFormat basic, one `xs:string` value.
    pub fn write(&self, w: &mut CanonicalWriter) {
        match self.friendly_name {
            Some(friendly) => w.start(
                "saml:Attribute",
                &[],
                &[("FriendlyName", friendly), ("Name", self.name), ("NameFormat", ATTRNAME_BASIC)],
            ),
            None => w.start("saml:Attribute", &[], &[("Name", self.name), ("NameFormat", ATTRNAME_BASIC)]),
        }
        w.leaf("saml:AttributeValue", &[], &[("xsi:type", "xs:string")], &self.value);
        w.end("saml:Attribute");
    }
}

/// The DiscoveryEPR bootstrap: where the token came from, and the token verbatim.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap<'a> {
    /// `wsa:Address` and `disco:ProviderID`: the STS's address.
    pub provider: &'a str,
    /// The ID card element, self-contained in its namespaces (its exclusive canonical form).
    pub token: &'a [u8],
}

/// An OIOSAML assertion about to be issued.
#[derive(Debug, Clone)]
pub struct OioSamlAssertion<'a> {
    /// `ID`: `_` and a random UUID.
    pub id: String,
    /// `IssueInstant`.
    pub issue_instant: Timestamp,
    /// `saml:Issuer`: the STS.
    pub issuer: &'a str,
    /// `saml:NameID` Format (`NAMEID_X509` for a certificate subject).
    pub name_id_format: &'a str,
    /// `saml:NameID` value.
    pub name_id: String,
    /// `SubjectConfirmationData/@Recipient`.
    pub recipient: &'a str,
    /// `SubjectConfirmationData/@NotOnOrAfter`: the delivery deadline.
    pub delivery_not_on_or_after: Timestamp,
    /// `Conditions/@NotBefore`.
    pub not_before: Timestamp,
    /// `Conditions/@NotOnOrAfter`.
    pub not_on_or_after: Timestamp,
    /// `saml:Audience`.
    pub audience: &'a str,
    /// `AuthnStatement/@AuthnInstant`.
    pub authn_instant: Timestamp,
    /// `AuthnContextClassRef` (`AC_X509` for a certificate login).
    pub authn_context: &'a str,
    /// The attribute statement, in order.
    pub attributes: Vec<Attribute>,
    /// The bootstrap token, when the audience asks for one.
    pub bootstrap: Option<Bootstrap<'a>>,
}

/// OIOSAML timestamps: UTC, whole seconds, `Z`.
pub(crate) fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The signature's `Id` on issued assertions (capital I, spec §1.4).
pub const SIGNATURE_ID: &str = "OCESSignature";

/// An assertion whose signature waits for its RSA value.
pub struct UnsignedAssertion {
    head: Vec<u8>,
    tail: Vec<u8>,
    prepared: PreparedSignature,
}

impl UnsignedAssertion {
    /// Prepares the enveloped signature of the assertion `head` + `tail` whose `ID` is `id`;
    /// the signature goes between the two (after `saml:Issuer`, SIG-ASSERTION).
    pub fn prepare(
        head: Vec<u8>,
        tail: Vec<u8>,
        id: &str,
        algorithm: SignatureAlgorithm,
        certificate_b64: &str,
    ) -> Result<UnsignedAssertion, XmlError> {
        let mut unsigned = Vec::with_capacity(head.len() + tail.len());
        unsigned.extend_from_slice(&head);
        unsigned.extend_from_slice(&tail);
        let reference = format!("#{id}");
        let spec = SignatureSpec {
            id_attribute: ("Id", SIGNATURE_ID),
            reference_uri: &reference,
            algorithm,
            certificate_b64,
        };
        let prepared = sign::prepare_parsed(&unsigned, &spec)?;
        Ok(UnsignedAssertion { head, tail, prepared })
    }

    /// The SignedInfo digest the HSM signs (as a PKCS#1 DigestInfo).
    pub fn signed_info_digest(&self) -> &[u8] {
        &self.prepared.signed_info_digest
    }

    /// The signed assertion, given the RSA signature over `signed_info_digest()`.
    pub fn finish(self, signature_value: &[u8]) -> Vec<u8> {
        let signature = sign::finish(&self.prepared, signature_value);
        let mut out = self.head;
        out.reserve(signature.len() + self.tail.len());
        out.extend_from_slice(&signature);
        out.extend_from_slice(&self.tail);
        out
    }
}

impl OioSamlAssertion<'_> {
    /// Writes the assertion and prepares its enveloped signature.
    pub fn prepare_signature(
        &self,
        algorithm: SignatureAlgorithm,
        certificate_b64: &str,
    ) -> Result<UnsignedAssertion, XmlError> {
        let (head, tail) = self.write_unsigned();
        UnsignedAssertion::prepare(head, tail, &self.id, algorithm, certificate_b64)
    }

    /// The assertion up to and including `saml:Issuer`, and the rest: the signature goes
    /// between them.
    fn write_unsigned(&self) -> (Vec<u8>, Vec<u8>) {
        let mut w = CanonicalWriter::with_capacity(2048);
        let issue_instant = time(self.issue_instant);
        let mut namespaces = vec![("saml", ns::SAML), ("xs", ns::XSD), ("xsi", ns::XSI)];
        if self.bootstrap.is_some() {
            namespaces = vec![
                ("disco", ns::DISCO),
                ("saml", ns::SAML),
                ("sec", ns::LIBERTY_SEC),
                ("wsa", ns::WSA),
                ("xs", ns::XSD),
                ("xsi", ns::XSI),
            ];
        }
        w.start(
            "saml:Assertion",
            &namespaces,
            &[("ID", &self.id), ("IssueInstant", &issue_instant), ("Version", "2.0")],
        );
        w.leaf("saml:Issuer", &[], &[], self.issuer);
        let head = w.into_bytes();

        let mut w = CanonicalWriter::with_capacity(4096 + self.bootstrap.map_or(0, |b| b.token.len()));
        w.start("saml:Subject", &[], &[]);
        w.leaf("saml:NameID", &[], &[("Format", self.name_id_format)], &self.name_id);
        w.start("saml:SubjectConfirmation", &[], &[("Method", CM_BEARER)]);
        w.start(
            "saml:SubjectConfirmationData",
            &[],
            &[("NotOnOrAfter", &time(self.delivery_not_on_or_after)), ("Recipient", self.recipient)],
        );
        w.end("saml:SubjectConfirmationData");
        w.end("saml:SubjectConfirmation");
        w.end("saml:Subject");
        w.start(
            "saml:Conditions",
            &[],
            &[("NotBefore", &time(self.not_before)), ("NotOnOrAfter", &time(self.not_on_or_after))],
        );
        w.start("saml:AudienceRestriction", &[], &[]);
        w.leaf("saml:Audience", &[], &[], self.audience);
        w.end("saml:AudienceRestriction");
        w.end("saml:Conditions");
        w.start(
            "saml:AuthnStatement",
            &[],
            &[("AuthnInstant", &time(self.authn_instant)), ("SessionIndex", &self.id)],
        );
        w.start("saml:AuthnContext", &[], &[]);
        w.leaf("saml:AuthnContextClassRef", &[], &[], self.authn_context);
        w.end("saml:AuthnContext");
        w.end("saml:AuthnStatement");
        w.start("saml:AttributeStatement", &[], &[]);
        for a in &self.attributes {
            a.write(&mut w);
        }
        if let Some(bootstrap) = &self.bootstrap {
            w.start("saml:Attribute", &[], &[("Name", DISCOVERY_EPR), ("NameFormat", ATTRNAME_URI)]);
            w.start("saml:AttributeValue", &[], &[]);
            w.start("wsa:EndpointReference", &[], &[]);
            w.leaf("wsa:Address", &[], &[], bootstrap.provider);
            w.start("wsa:Metadata", &[], &[]);
            w.leaf("disco:Abstract", &[], &[], "A SOSI idcard");
            w.leaf("disco:ServiceType", &[], &[], "dk:sosi:1-0-1");
            w.leaf("disco:ProviderID", &[], &[], bootstrap.provider);
            w.start("disco:SecurityContext", &[], &[]);
            w.leaf("disco:SecurityMechID", &[], &[], "urn:liberty:security:2006-08:TLS:SAMLV2");
            w.start("sec:Token", &[], &[("usage", "urn:liberty:security:tokenusage:2006-08:SecurityToken")]);
            w.raw(bootstrap.token);
            w.end("sec:Token");
            w.end("disco:SecurityContext");
            w.end("wsa:Metadata");
            w.end("wsa:EndpointReference");
            w.end("saml:AttributeValue");
            w.end("saml:Attribute");
        }
        w.end("saml:AttributeStatement");
        w.end("saml:Assertion");
        (head, w.into_bytes())
    }
}

/// The parts of a certificate that an OIOSAML assertion describes, read from an ID card's
/// CertificateInfo NameID (`SubjectDN={…},IssuerDN={…},CertSerial={…}`, RFC 1779 DNs and a
/// decimal serial: what NewSecurityTokenService writes, spec §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CertificateInfo {
    /// Subject `CN`.
    pub common_name: String,
    /// Subject `O`.
    pub organisation: String,
    /// Subject `C`.
    pub country: String,
    /// Subject `SERIALNUMBER` (e.g. `CVR:20921897-RID:52723247`).
    pub subject_serial: String,
    /// The issuer DN as OIOSAML writes it: `C=..,O=..,CN=..`.
    pub issuer: String,
    /// The certificate serial number, lower-case hex without leading zeros.
    pub serial_hex: String,
}

impl CertificateInfo {
    /// Reads the CertificateInfo form; `None` when `name_id` is not in it.
    pub fn parse(name_id: &str) -> Option<CertificateInfo> {
        let subject = braced(name_id, "SubjectDN=")?;
        let issuer = braced(name_id, "IssuerDN=")?;
        let serial = braced(name_id, "CertSerial=")?;
        let subject = rdns(subject);
        let issuer = rdns(issuer);
        let get = |rdns: &[(String, String)], key: &str| {
            rdns.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let issuer_text =
            format!("C={},O={},CN={}", get(&issuer, "C"), get(&issuer, "O"), get(&issuer, "CN"));
        Some(CertificateInfo {
            common_name: get(&subject, "CN"),
            organisation: get(&subject, "O"),
            country: get(&subject, "C"),
            subject_serial: get(&subject, "SERIALNUMBER"),
            issuer: issuer_text,
            serial_hex: decimal_to_hex(serial.trim())?,
        })
    }

    /// The OIOSAML NameID: `C=<C>,O=<O>,CN=<CN>,Serial=<serialNumber>` (no spaces, spec §7.23).
    pub fn name_id(&self) -> String {
        format!(
            "C={},O={},CN={},Serial={}",
            self.country, self.organisation, self.common_name, self.subject_serial
        )
    }

    /// The RID in an OCES2 employee serialNumber (`CVR:…-RID:…`); OCES3 serials have none.
    pub fn rid(&self) -> Option<&str> {
        self.subject_serial.split_once("-RID:").map(|(_, rid)| rid)
    }
}

/// The text inside `key{…}`.
fn braced<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = text[start..].strip_prefix('{')?;
    let end = rest.find('}')?;
    Some(&rest[..end])
}

/// The attribute type/value pairs of an RFC 1779 DN, multi-valued RDNs (`+`) flattened;
/// quoted values may hold separators.
fn rdns(dn: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let push = |part: &str, out: &mut Vec<(String, String)>| {
        if let Some((k, v)) = part.split_once('=') {
            out.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
        }
    };
    for c in dn.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' | '+' if !quoted => {
                push(&current, &mut out);
                current.clear();
            }
            _ => current.push(c),
        }
    }
    push(&current, &mut out);
    out
}

/// A decimal number of any length in lower-case hex without leading zeros.
fn decimal_to_hex(decimal: &str) -> Option<String> {
    if decimal.is_empty() || !decimal.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Base-256 digits, most significant first, built by repeated multiply-and-add.
    let mut bytes: Vec<u8> = vec![0];
    for d in decimal.bytes() {
        let mut carry = u32::from(d - b'0');
        for b in bytes.iter_mut().rev() {
            let v = u32::from(*b) * 10 + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            bytes.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let hex = segl_pkcs11::hex_encode(&bytes).to_ascii_lowercase();
    let trimmed = hex.trim_start_matches('0');
    Some(if trimmed.is_empty() { "0".to_owned() } else { trimmed.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = "SubjectDN={CN=Lars Larsen + SERIALNUMBER=CVR:20921897-RID:52723247, O=TRIFORK A/S // CVR:20921897, C=DK},IssuerDN={CN=TRUST2408 Systemtest XXII CA, O=TRUST2408, C=DK},CertSerial={1537885084}";

    #[test]
    fn reads_the_certificate_info_of_a_captured_card() {
        let info = CertificateInfo::parse(CAPTURED).unwrap();
        assert_eq!(info.common_name, "Lars Larsen");
        assert_eq!(info.subject_serial, "CVR:20921897-RID:52723247");
        assert_eq!(info.organisation, "TRIFORK A/S // CVR:20921897");
        assert_eq!(info.country, "DK");
        assert_eq!(info.issuer, "C=DK,O=TRUST2408,CN=TRUST2408 Systemtest XXII CA");
        assert_eq!(info.serial_hex, "5baa439c");
        assert_eq!(info.rid(), Some("52723247"));
        assert_eq!(
            info.name_id(),
            "C=DK,O=TRIFORK A/S // CVR:20921897,CN=Lars Larsen,Serial=CVR:20921897-RID:52723247"
        );
        assert_eq!(CertificateInfo::parse("5009482312"), None);
        assert_eq!(CertificateInfo::parse("SubjectDN={CN=x},IssuerDN={CN=y},CertSerial={12a}"), None);
    }

    #[test]
    fn decimal_serials_of_any_length_become_lower_case_hex() {
        assert_eq!(decimal_to_hex("0").as_deref(), Some("0"));
        assert_eq!(decimal_to_hex("255").as_deref(), Some("ff"));
        assert_eq!(decimal_to_hex("256").as_deref(), Some("100"));
        // 2^128 + 1: beyond any machine integer.
        assert_eq!(
            decimal_to_hex("340282366920938463463374607431768211457").as_deref(),
            Some("100000000000000000000000000000001")
        );
    }

    #[test]
    fn quoted_dn_values_keep_their_commas() {
        let r = rdns("CN=\"Larsen, Lars\", O=X");
        assert_eq!(r, vec![("CN".into(), "Larsen, Lars".into()), ("O".into(), "X".into())]);
    }
}
