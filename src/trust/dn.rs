//! Distinguished names rendered the way the NSP STS writes them in a CertificateInfo NameID:
//! Java `X500Principal` RFC 1779 form with OID 2.5.4.5 shown as `SERIALNUMBER` (spec §3.3):
//! most-specific RDN first, `, ` between RDNs, ` + ` inside a multi-valued RDN.
//!
//! Decision: attribute types RFC 1779 has no keyword for (OCES3 organizationIdentifier,
//! givenName, surname, …) are written `OID.<dotted>` as Java does; seal's own DN parser would
//! reject them either way (spec §3.3 [?]).

use x509_parser::x509::X509Name;

/// Renders `name` in RFC 1779 form, most-specific RDN first.
pub fn rfc1779(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push_str(" + ");
            }
            let oid = atv.attr_type().to_id_string();
            match keyword(&oid) {
                Some(k) => out.push_str(k),
                None => {
                    out.push_str("OID.");
                    out.push_str(&oid);
                }
            }
            out.push('=');
            let value = atv.as_str().map(str::to_owned).unwrap_or_else(|_| hex_value(atv.as_slice()));
            push_value(&mut out, &value);
        }
    }
    out
}

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.5" => "SERIALNUMBER",
        _ => return None,
    })
}

/// RFC 1779 quoting: a value with a special character or surrounding space is quoted.
fn push_value(out: &mut String, value: &str) {
    let special =
        value.chars().any(|c| matches!(c, ',' | '+' | '=' | '"' | '\\' | '<' | '>' | '#' | ';' | '\n'))
            || value.starts_with(' ')
            || value.ends_with(' ');
    if !special {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn hex_value(bytes: &[u8]) -> String {
    let mut s = String::from("#");
    for b in bytes {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use x509_parser::prelude::*;

    /// The client certificate of the captured DGWS request: the live STS wrote its DNs and
    /// serial as the captured response's NameID shows.
    #[test]
    fn renders_the_captured_client_certificate_like_the_live_sts() {
        let Some(xml) = crate::spec_data::example("unsealed-sts-request-1.compact.xml") else { return };
        let b64 = crate::spec_data::first_certificate_b64(&xml).unwrap();
        let der = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            rfc1779(cert.subject()),
            "CN=Lars Larsen + SERIALNUMBER=CVR:20921897-RID:52723247, O=TRIFORK A/S // CVR:20921897, C=DK"
        );
        assert_eq!(rfc1779(cert.issuer()), "CN=TRUST2408 Systemtest XXII CA, O=TRUST2408, C=DK");
        assert_eq!(cert.tbs_certificate.serial.to_string(), "1537885084");
    }

    #[test]
    fn quotes_special_values() {
        let mut s = String::new();
        push_value(&mut s, "Hansen, Jens");
        assert_eq!(s, "\"Hansen, Jens\"");
        s.clear();
        push_value(&mut s, "a\"b");
        assert_eq!(s, "\"a\\\"b\"");
    }
}
