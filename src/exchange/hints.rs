//! What admission control learns about a request before it is parsed: its priority and who
//! sent it. The exchange family knows where each is in its messages; the server only asks.
//! Everything here reads raw bytes with prebuilt searchers: a refusal must cost microseconds,
//! and these values only order and group requests, they grant nothing.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// Message priority (DGWS `medcom:Priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Priority {
    /// RUTINE: routine work.
    Rutine,
    /// HASTER: urgent.
    Haster,
    /// AKUT: acute.
    Akut,
}

impl Priority {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rutine => "RUTINE",
            Self::Haster => "HASTER",
            Self::Akut => "AKUT",
        }
    }
}

/// Who a request says it comes from, for fairness only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientHint {
    /// The care provider CVR the presented ID card names.
    Cvr(String),
    /// SHA-256 prefix of the first certificate in the request's SOAP header (the OIO request
    /// signer's).
    HeaderCertificate([u8; 16]),
}

/// What admission control may know of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionHints {
    /// The priority the request asks for, if it names one.
    pub priority: Option<Priority>,
    /// Who it says it comes from.
    pub client: Option<ClientHint>,
}

/// A byte string searched for in every request: its searcher is built once, not per call
/// (building one per `memmem::find` showed in the refusal path's profile).
type Needle = LazyLock<Finder<'static>>;

static BODY: Needle = LazyLock::new(|| Finder::new(b"Body"));

/// DGWS: `medcom:Priority` in the header; the client is the card's care provider CVR.
pub fn dgws(body: &[u8]) -> AdmissionHints {
    AdmissionHints { priority: scan_priority(body), client: scan_cvr(body).map(ClientHint::Cvr) }
}

/// OIO WS-Trust: no priority header exists; the client is the request signer's certificate in
/// the header, else the CVR of an ID card it presents (Sosi2OIOSaml needs no signature).
pub fn oio(body: &[u8]) -> AdmissionHints {
    let client = scan_header_certificate(body)
        .map(ClientHint::HeaderCertificate)
        .or_else(|| scan_cvr(body).map(ClientHint::Cvr));
    AdmissionHints { priority: None, client }
}

/// The bytes before the SOAP Body (where headers are), bounded when no Body is found.
fn head(body: &[u8]) -> &[u8] {
    let end = BODY.find(body).unwrap_or(body.len().min(8192));
    &body[..end]
}

/// Reads `medcom:Priority` from the raw request, without parsing it: the first
/// `…Priority>VALUE<` in the bytes before the SOAP Body (the header is where DGWS puts it).
fn scan_priority(body: &[u8]) -> Option<Priority> {
    static PRIORITY: Needle = LazyLock::new(|| Finder::new(b"Priority>"));
    let head = head(body);
    let at = PRIORITY.find(head)? + b"Priority>".len();
    let value = &head[at..];
    let end = memchr::memchr(b'<', value)?;
    match value[..end].trim_ascii() {
        v if v.eq_ignore_ascii_case(b"AKUT") => Some(Priority::Akut),
        v if v.eq_ignore_ascii_case(b"HASTER") => Some(Priority::Haster),
        v if v.eq_ignore_ascii_case(b"RUTINE") => Some(Priority::Rutine),
        _ => None,
    }
}

/// The value of the `medcom:CareProviderID` attribute with NameFormat cvrnumber, read from the
/// raw bytes (`…CareProviderID" NameFormat="medcom:cvrnumber">…<…AttributeValue>CVR<`).
fn scan_cvr(body: &[u8]) -> Option<String> {
    static CARE_PROVIDER: Needle = LazyLock::new(|| Finder::new(b"CareProviderID\""));
    static CVR_FORMAT: Needle = LazyLock::new(|| Finder::new(b"cvrnumber"));
    static VALUE: Needle = LazyLock::new(|| Finder::new(b"AttributeValue>"));
    let at = CARE_PROVIDER.find(body)?;
    let rest = &body[at..body.len().min(at + 300)];
    CVR_FORMAT.find(rest)?;
    let value_at = VALUE.find(rest)? + b"AttributeValue>".len();
    let value = &rest[value_at..];
    let end = memchr::memchr(b'<', value)?;
    let cvr = value[..end].trim_ascii();
    (cvr.len() <= 16 && cvr.iter().all(u8::is_ascii_digit) && !cvr.is_empty())
        .then(|| String::from_utf8_lossy(cvr).into_owned())
}

/// A digest of the first `X509Certificate>…<` (or BinarySecurityToken) text before the Body:
/// the header signature's certificate. Its first 512 base64 characters are enough to tell
/// clients apart and keep the cost fixed.
fn scan_header_certificate(body: &[u8]) -> Option<[u8; 16]> {
    static CERTIFICATE: Needle = LazyLock::new(|| Finder::new(b"X509Certificate>"));
    static BST: Needle = LazyLock::new(|| Finder::new(b"BinarySecurityToken"));
    let head = head(body);
    let at = match CERTIFICATE.find(head) {
        Some(at) => at + b"X509Certificate>".len(),
        None => {
            let bst = BST.find(head)?;
            bst + memchr::memchr(b'>', &head[bst..])? + 1
        }
    };
    let value = &head[at..];
    let end = memchr::memchr(b'<', value)?;
    let text = value[..end.min(512)].trim_ascii();
    if text.len() < 16 {
        return None;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text);
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_ref()[..16]);
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_priority_and_cvr_from_raw_bytes() {
        let req = b"<s:Envelope><s:Header><medcom:Header><medcom:Priority>AKUT</medcom:Priority></medcom:Header></s:Header><s:Body><saml:Attribute Name=\"medcom:CareProviderID\" NameFormat=\"medcom:cvrnumber\"><saml:AttributeValue>20921897</saml:AttributeValue></saml:Attribute></s:Body></s:Envelope>";
        assert_eq!(
            dgws(req),
            AdmissionHints {
                priority: Some(Priority::Akut),
                client: Some(ClientHint::Cvr("20921897".into()))
            }
        );
        // A Priority inside the Body is not the header's.
        assert_eq!(scan_priority(b"<Envelope><Body><x:Priority>AKUT</x:Priority></Body>"), None);
        assert_eq!(
            scan_priority(b"<Header><Priority> haster </Priority></Header><Body/>"),
            Some(Priority::Haster)
        );
        assert_eq!(
            scan_cvr(
                b"CareProviderID\" NameFormat=\"medcom:cvrnumber\"><v:AttributeValue>12x</v:AttributeValue>"
            ),
            None
        );
    }

    #[test]
    fn oio_client_is_the_header_certificate_else_the_card_cvr() {
        let signed = b"<E><H><wsse:Security><ds:X509Certificate>MIIBaseSixtyFourCertificateText==</ds:X509Certificate></wsse:Security></H><Body/></E>";
        let other = b"<E><H><wsse:Security><ds:X509Certificate>MIIAnotherCertificateTextHere==</ds:X509Certificate></wsse:Security></H><Body/></E>";
        let a = oio(signed).client;
        assert!(matches!(a, Some(ClientHint::HeaderCertificate(_))));
        assert_ne!(a, oio(other).client);
        assert_eq!(oio(signed).priority, None);
        // A certificate inside the Body (e.g. a token's) is not the request signer's.
        let in_body = b"<E><H/><Body><ds:X509Certificate>MIIBaseSixtyFourCertificateText==</ds:X509Certificate></Body></E>";
        assert_eq!(oio(in_body).client, None);
        let card = b"<E><H/><Body><saml:Attribute Name=\"medcom:CareProviderID\" NameFormat=\"medcom:cvrnumber\"><saml:AttributeValue>20921897</saml:AttributeValue></saml:Attribute></Body></E>";
        assert_eq!(oio(card).client, Some(ClientHint::Cvr("20921897".into())));
    }
}
