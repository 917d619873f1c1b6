//! The content-encryption and key-transport algorithms of ENC-AUD, by their XML Encryption URIs
//! and by the lower-case names an audience's configuration uses.

use serde::Deserialize;

/// XML Encryption 1.0 `aes128-cbc`.
pub const AES128_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
/// XML Encryption 1.0 `aes256-cbc`.
pub const AES256_CBC: &str = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
/// XML Encryption 1.1 `aes128-gcm`.
pub const AES128_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes128-gcm";
/// XML Encryption 1.1 `aes256-gcm`.
pub const AES256_GCM: &str = "http://www.w3.org/2009/xmlenc11#aes256-gcm";
/// XML Encryption 1.0 `rsa-1_5` (RSAES-PKCS1-v1_5).
pub const RSA_1_5: &str = "http://www.w3.org/2001/04/xmlenc#rsa-1_5";
/// XML Encryption 1.0 `rsa-oaep-mgf1p` (RSAES-OAEP, MGF1 with SHA-1).
pub const RSA_OAEP_MGF1P: &str = "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p";
/// The XML-DSig SHA-1 digest URI: the only OAEP digest accepted (and the default when absent).
pub const SHA1: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// AES block length, and the CBC IV length.
pub(crate) const AES_BLOCK: usize = 16;
/// GCM IV (nonce) length in XML Encryption 1.1.
pub(crate) const GCM_IV: usize = 12;
/// GCM authentication tag length in XML Encryption 1.1.
pub(crate) const GCM_TAG: usize = 16;

/// The symmetric algorithm that encrypts the assertion itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum ContentEncryption {
    /// AES-128-CBC: the default, and the only content algorithm unsealed decrypts.
    #[default]
    #[serde(rename = "aes128-cbc")]
    Aes128Cbc,
    /// AES-256-CBC.
    #[serde(rename = "aes256-cbc")]
    Aes256Cbc,
    /// AES-128-GCM (XML Encryption 1.1).
    #[serde(rename = "aes128-gcm")]
    Aes128Gcm,
    /// AES-256-GCM (XML Encryption 1.1).
    #[serde(rename = "aes256-gcm")]
    Aes256Gcm,
}

impl ContentEncryption {
    /// The `xenc:EncryptionMethod/@Algorithm` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Aes128Cbc => AES128_CBC,
            Self::Aes256Cbc => AES256_CBC,
            Self::Aes128Gcm => AES128_GCM,
            Self::Aes256Gcm => AES256_GCM,
        }
    }

    /// Looks an algorithm up by its `EncryptionMethod` URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            AES128_CBC => Some(Self::Aes128Cbc),
            AES256_CBC => Some(Self::Aes256Cbc),
            AES128_GCM => Some(Self::Aes128Gcm),
            AES256_GCM => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// The configuration name (`aes128-cbc`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes128Cbc => "aes128-cbc",
            Self::Aes256Cbc => "aes256-cbc",
            Self::Aes128Gcm => "aes128-gcm",
            Self::Aes256Gcm => "aes256-gcm",
        }
    }

    /// Length of the symmetric key in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128Cbc | Self::Aes128Gcm => 16,
            Self::Aes256Cbc | Self::Aes256Gcm => 32,
        }
    }

    /// Whether this is an AEAD (GCM) algorithm.
    pub fn is_gcm(self) -> bool {
        matches!(self, Self::Aes128Gcm | Self::Aes256Gcm)
    }

    /// The shortest well-formed CipherValue: IV plus one block (CBC) or IV plus tag (GCM).
    pub(crate) fn min_cipher_len(self) -> usize {
        if self.is_gcm() {
            GCM_IV + GCM_TAG
        } else {
            AES_BLOCK + AES_BLOCK
        }
    }
}

/// The RSA scheme that transports the symmetric key to the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5: the default, and the only key transport unsealed decrypts.
    #[default]
    #[serde(rename = "rsa-1_5")]
    Rsa1_5,
    /// RSAES-OAEP with SHA-1 and MGF1-SHA-1, empty label (`rsa-oaep-mgf1p`, the xmlsec1 and
    /// Santuario default).
    #[serde(rename = "rsa-oaep")]
    RsaOaepMgf1p,
}

impl KeyTransport {
    /// The `xenc:EncryptionMethod/@Algorithm` URI.
    pub fn uri(self) -> &'static str {
        match self {
            Self::Rsa1_5 => RSA_1_5,
            Self::RsaOaepMgf1p => RSA_OAEP_MGF1P,
        }
    }

    /// Looks an algorithm up by its `EncryptionMethod` URI.
    pub fn from_uri(uri: &str) -> Option<Self> {
        match uri {
            RSA_1_5 => Some(Self::Rsa1_5),
            RSA_OAEP_MGF1P => Some(Self::RsaOaepMgf1p),
            _ => None,
        }
    }

    /// The configuration name (`rsa-1_5`, `rsa-oaep`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rsa1_5 => "rsa-1_5",
            Self::RsaOaepMgf1p => "rsa-oaep",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_CONTENT: [ContentEncryption; 4] = [
        ContentEncryption::Aes128Cbc,
        ContentEncryption::Aes256Cbc,
        ContentEncryption::Aes128Gcm,
        ContentEncryption::Aes256Gcm,
    ];
    const ALL_TRANSPORT: [KeyTransport; 2] = [KeyTransport::Rsa1_5, KeyTransport::RsaOaepMgf1p];

    #[test]
    fn uris_round_trip_and_unknown_is_none() {
        for c in ALL_CONTENT {
            assert_eq!(ContentEncryption::from_uri(c.uri()), Some(c));
        }
        for t in ALL_TRANSPORT {
            assert_eq!(KeyTransport::from_uri(t.uri()), Some(t));
        }
        assert_eq!(ContentEncryption::from_uri("http://www.w3.org/2001/04/xmlenc#tripledes-cbc"), None);
        assert_eq!(KeyTransport::from_uri("http://www.w3.org/2009/xmlenc11#rsa-oaep"), None);
    }

    #[test]
    fn defaults_are_what_unsealed_decrypts() {
        assert_eq!(ContentEncryption::default().uri(), "http://www.w3.org/2001/04/xmlenc#aes128-cbc");
        assert_eq!(KeyTransport::default().uri(), "http://www.w3.org/2001/04/xmlenc#rsa-1_5");
    }

    #[test]
    fn config_names_deserialize() {
        #[derive(Deserialize)]
        struct Audience {
            content: ContentEncryption,
            transport: KeyTransport,
        }
        for c in ALL_CONTENT {
            for t in ALL_TRANSPORT {
                let src = format!("content = \"{}\"\ntransport = \"{}\"\n", c.name(), t.name());
                let a: Audience = toml::from_str(&src).unwrap();
                assert_eq!((a.content, a.transport), (c, t));
            }
        }
        assert!(toml::from_str::<Audience>("content = \"AES128-CBC\"\ntransport = \"rsa-1_5\"\n").is_err());
    }
}
