//! RFC 7512 `pkcs11:` URIs, the way operators already name tokens and keys for other tools
//! (p11tool, OpenSSL providers, gokeyless): `pkcs11:token=segl-sts;object=sts-2026;id=%01%02`.
//!
//! Only the attributes that select a module, a token and a key, and `pin-source`, are taken;
//! `pin-value` is refused because a PIN in a configuration string ends up in logs and shells'
//! histories (use a PIN file or environment variable instead).

use std::path::PathBuf;

/// The selecting parts of a `pkcs11:` URI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token label.
    pub token: Option<String>,
    /// `serial`: the token serial number.
    pub serial: Option<String>,
    /// `object`: the key (object) label.
    pub object: Option<String>,
    /// `id`: the key's CKA_ID.
    pub id: Option<Vec<u8>>,
    /// `module-path` (query): the PKCS#11 library.
    pub module_path: Option<PathBuf>,
    /// `pin-source` (query): a file holding the PIN (`file:` URI or plain path).
    pub pin_source: Option<PathBuf>,
}

/// Why a `pkcs11:` URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The scheme is not `pkcs11:`.
    #[error("not a pkcs11: URI")]
    Scheme,
    /// A `%` escape is not two hex digits, or the result is not UTF-8 where text is needed.
    #[error("bad percent-encoding in attribute {0:?}")]
    Encoding(String),
    /// An attribute without `=`.
    #[error("attribute {0:?} has no value")]
    NoValue(String),
    /// The same attribute twice.
    #[error("attribute {0:?} is given twice")]
    Repeated(String),
    /// `pin-value` is not accepted.
    #[error("pin-value is not accepted in a pkcs11: URI; use pin-source, pin_file or pin_env")]
    PinValue,
    /// A `pin-source` that is not a local file.
    #[error("pin-source {0:?} is not a file: URI or path")]
    PinSource(String),
}

impl std::str::FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        let rest = s.strip_prefix("pkcs11:").ok_or(UriError::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        let attrs = path.split(';').chain(query.split('&')).filter(|a| !a.is_empty());
        for attr in attrs {
            let (name, value) = attr.split_once('=').ok_or_else(|| UriError::NoValue(attr.to_owned()))?;
            let bytes = percent_decode(value).ok_or_else(|| UriError::Encoding(name.to_owned()))?;
            let text = || String::from_utf8(bytes.clone()).map_err(|_| UriError::Encoding(name.to_owned()));
            let repeated = || UriError::Repeated(name.to_owned());
            match name {
                "token" => set(&mut uri.token, text()?).ok_or_else(repeated)?,
                "serial" => set(&mut uri.serial, text()?).ok_or_else(repeated)?,
                "object" => set(&mut uri.object, text()?).ok_or_else(repeated)?,
                "id" => set(&mut uri.id, bytes.clone()).ok_or_else(repeated)?,
                "module-path" => set(&mut uri.module_path, PathBuf::from(text()?)).ok_or_else(repeated)?,
                "pin-source" => {
                    let source = text()?;
                    let path = match source.strip_prefix("file:") {
                        Some(p) => p.trim_start_matches("//").to_owned(),
                        None if !source.contains(':') => source.clone(),
                        None => return Err(UriError::PinSource(source)),
                    };
                    set(&mut uri.pin_source, PathBuf::from(path)).ok_or_else(repeated)?
                }
                "pin-value" => return Err(UriError::PinValue),
                // Other standard attributes (manufacturer, model, type, slot-id, …) do not
                // narrow what segl selects; ignoring them keeps URIs from other tools usable.
                _ => {}
            }
        }
        Ok(uri)
    }
}

/// Sets an empty option; `None` when it was already set.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            // Two hex digits always fit a byte.
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7512_examples_and_segl_attributes() {
        let uri: Pkcs11Uri =
            "pkcs11:token=segl%20sts;serial=79906a98cf1b4ce4;object=sts-2026;id=%01%a2;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/segl/pin"
                .parse()
                .unwrap();
        assert_eq!(uri.token.as_deref(), Some("segl sts"));
        assert_eq!(uri.serial.as_deref(), Some("79906a98cf1b4ce4"));
        assert_eq!(uri.object.as_deref(), Some("sts-2026"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert_eq!(uri.module_path, Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")));
        assert_eq!(uri.pin_source, Some(PathBuf::from("/etc/segl/pin")));
        assert_eq!("pkcs11:".parse::<Pkcs11Uri>().unwrap(), Pkcs11Uri::default());
    }

    #[test]
    fn refusals() {
        assert_eq!("http://x".parse::<Pkcs11Uri>(), Err(UriError::Scheme));
        assert_eq!("pkcs11:token=a;token=b".parse::<Pkcs11Uri>(), Err(UriError::Repeated("token".into())));
        assert_eq!("pkcs11:token=%zz".parse::<Pkcs11Uri>(), Err(UriError::Encoding("token".into())));
        assert_eq!("pkcs11:token".parse::<Pkcs11Uri>(), Err(UriError::NoValue("token".into())));
        assert_eq!("pkcs11:token=a?pin-value=1234".parse::<Pkcs11Uri>(), Err(UriError::PinValue));
        assert!(matches!("pkcs11:?pin-source=https://x".parse::<Pkcs11Uri>(), Err(UriError::PinSource(_))));
        let shown = UriError::PinValue.to_string();
        assert!(!shown.contains("1234"));
    }
}
