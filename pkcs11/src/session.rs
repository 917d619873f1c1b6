//! Key management on a token: generate RSA keys inside it, read public keys, store and read
//! certificates.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::types::Ulong;

use crate::inventory::{read_inventory_value, write_inventory_value, KeyInventory};
use crate::module::call;
use crate::public_key::strip_leading_zeros;
use crate::token::{find_all, find_one};
use crate::{Pkcs11Error, RsaPublicKey, Token};

/// F4, the public exponent every RSA key here gets.
const PUBLIC_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];

/// What a generated key pair is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyPurpose {
    /// The STS signing key.
    Signing,
    /// The key tokens are encrypted to.
    Decryption,
}

/// A read/write session used for key management (not for the request path).
pub struct TokenSession {
    /// Always `Some` until dropped.
    session: Option<Session>,
    /// The module generation the session was opened in.
    generation: u64,
    /// Keeps the token's login session, and with it the login, alive while this session exists.
    token: Token,
}

impl Drop for TokenSession {
    fn drop(&mut self) {
        // After a module re-initialization the handle number may belong to a new session;
        // closing it would end that one.
        if let Some(session) = self.session.take() {
            if self.token.module().generation() != self.generation {
                std::mem::forget(session);
            }
        }
    }
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession").field("token", &self.token.label()).finish()
    }
}

impl TokenSession {
    pub(crate) fn new(session: Session, token: Token) -> Self {
        Self { session: Some(session), generation: token.module().generation(), token }
    }

    fn s(&self) -> Result<&Session, Pkcs11Error> {
        self.session.as_ref().filter(|_| self.token.module().generation() == self.generation).ok_or_else(
            || Pkcs11Error::Unavailable {
                reason: "the session belongs to a finished module generation".into(),
            },
        )
    }

    /// Generates an RSA key pair inside the token. The private key is CKA_TOKEN, CKA_PRIVATE,
    /// CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_SIGN true, CKA_DECRYPT/CKA_UNWRAP false; both
    /// halves carry `label` and `id`. Fails with `KeyExists` if the label is taken.
    pub fn generate_rsa_key(&self, label: &str, id: &[u8], bits: u32) -> Result<RsaPublicKey, Pkcs11Error> {
        self.generate_pair(label, id, bits, KeyPurpose::Signing)
    }

    /// Generates an RSA key pair for `purpose`: a signing key signs and decrypts nothing, a
    /// decryption key decrypts and signs nothing; otherwise both are alike (token, private,
    /// sensitive, not extractable, no wrap/unwrap, `label` and `id` on both halves).
    pub(crate) fn generate_pair(
        &self,
        label: &str,
        id: &[u8],
        bits: u32,
        purpose: KeyPurpose,
    ) -> Result<RsaPublicKey, Pkcs11Error> {
        if self.has_key(label)? {
            return Err(Pkcs11Error::KeyExists {
                label: label.to_owned(),
                token: self.token.label().to_owned(),
            });
        }
        let modulus_bits = usize::try_from(bits)
            .map_err(cryptoki::error::Error::TryFromInt)
            .and_then(Ulong::try_from)
            .map_err(call("C_GenerateKeyPair"))?;
        let signs = purpose == KeyPurpose::Signing;
        let label_bytes = label.as_bytes().to_vec();
        let public = [
            Attribute::Token(true),
            Attribute::Verify(signs),
            Attribute::Encrypt(!signs),
            Attribute::Wrap(false),
            Attribute::ModulusBits(modulus_bits),
            Attribute::PublicExponent(PUBLIC_EXPONENT.to_vec()),
            Attribute::Label(label_bytes.clone()),
            Attribute::Id(id.to_vec()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(signs),
            Attribute::Decrypt(!signs),
            Attribute::Unwrap(false),
            Attribute::Label(label_bytes),
            Attribute::Id(id.to_vec()),
        ];
        let (public_handle, _) = self
            .s()?
            .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
            .map_err(call("C_GenerateKeyPair"))?;
        tracing::info!(token = %self.token.label(), key = label, bits, ?purpose, "generated RSA key pair");
        self.read_public_key(public_handle, label)
    }

    /// The underlying session, for the crate's own operations.
    pub(crate) fn raw(&self) -> Result<&Session, Pkcs11Error> {
        self.s()
    }

    /// Whether a private key with this label exists.
    pub fn has_key(&self, label: &str) -> Result<bool, Pkcs11Error> {
        Ok(find_one(self.s()?, ObjectClass::PRIVATE_KEY, label)?.is_some())
    }

    /// The public key of the key pair labelled `label` (read from the public key object, or
    /// from the private key's CKA_MODULUS / CKA_PUBLIC_EXPONENT).
    pub fn public_key(&self, label: &str) -> Result<RsaPublicKey, Pkcs11Error> {
        let object = match find_one(self.s()?, ObjectClass::PUBLIC_KEY, label)? {
            Some(public) => public,
            None => find_one(self.s()?, ObjectClass::PRIVATE_KEY, label)?.ok_or_else(|| {
                Pkcs11Error::KeyNotFound { label: label.to_owned(), token: self.token.label().to_owned() }
            })?,
        };
        self.read_public_key(object, label)
    }

    /// Stores a DER X.509 certificate object (CKO_CERTIFICATE, CKC_X_509) with label and id,
    /// replacing one with the same label.
    pub fn store_certificate(&self, label: &str, id: &[u8], der: &[u8]) -> Result<(), Pkcs11Error> {
        // SoftHSM (following PKCS#11) refuses an X.509 certificate object without CKA_SUBJECT.
        // This crate carries no X.509 parser and lookups here go by label, so an empty subject
        // is enough; callers that have parsed the certificate pass the real one below.
        self.store_certificate_with_subject(label, id, der, &[])
    }

    /// As [`store_certificate`](Self::store_certificate), with the certificate's DER subject
    /// name as CKA_SUBJECT (so other PKCS#11 tools can match it to its key).
    pub fn store_certificate_with_subject(
        &self,
        label: &str,
        id: &[u8],
        der: &[u8],
        subject: &[u8],
    ) -> Result<(), Pkcs11Error> {
        for old in find_all(self.s()?, ObjectClass::CERTIFICATE, label)? {
            self.s()?.destroy_object(old).map_err(call("C_DestroyObject"))?;
        }
        self.s()?
            .create_object(&[
                Attribute::Class(ObjectClass::CERTIFICATE),
                Attribute::CertificateType(CertificateType::X_509),
                Attribute::Token(true),
                // A certificate is public; readable without login it can be checked by tools.
                Attribute::Private(false),
                Attribute::Value(der.to_vec()),
                Attribute::Subject(subject.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ])
            .map_err(call("C_CreateObject"))?;
        Ok(())
    }

    /// The DER certificate stored under `label`, if any.
    pub fn certificate(&self, label: &str) -> Result<Option<Vec<u8>>, Pkcs11Error> {
        let Some(cert) = find_one(self.s()?, ObjectClass::CERTIFICATE, label)? else {
            return Ok(None);
        };
        let attrs =
            self.s()?.get_attributes(cert, &[AttributeType::Value]).map_err(call("C_GetAttributeValue"))?;
        Ok(attrs.into_iter().find_map(|a| match a {
            Attribute::Value(v) => Some(v),
            _ => None,
        }))
    }

    /// The key inventory, or `None` when the token has none yet.
    pub fn read_inventory(&self) -> Result<Option<KeyInventory>, Pkcs11Error> {
        let Some(value) = self.inventory_value()? else { return Ok(None) };
        KeyInventory::parse(&value)
            .map(Some)
            .map_err(|reason| Pkcs11Error::Inventory { token: self.token.label().to_owned(), reason })
    }

    /// The stored inventory bytes (for cheap change detection).
    pub fn inventory_value(&self) -> Result<Option<Vec<u8>>, Pkcs11Error> {
        read_inventory_value(self.s()?)
    }

    /// Stores `inventory` with its generation incremented.
    pub fn write_inventory(&self, inventory: &mut KeyInventory) -> Result<(), Pkcs11Error> {
        inventory.generation += 1;
        write_inventory_value(self.s()?, &inventory.encode())
    }

    /// Label and CKA_ID of every private key on the token.
    pub fn private_keys(&self) -> Result<Vec<(String, Vec<u8>)>, Pkcs11Error> {
        let objects = self
            .s()?
            .find_objects(&[Attribute::Class(ObjectClass::PRIVATE_KEY)])
            .map_err(call("C_FindObjects"))?;
        let mut keys = Vec::with_capacity(objects.len());
        for object in objects {
            let attrs = self
                .s()?
                .get_attributes(object, &[AttributeType::Label, AttributeType::Id])
                .map_err(call("C_GetAttributeValue"))?;
            let mut label = String::new();
            let mut id = Vec::new();
            for attr in attrs {
                match attr {
                    Attribute::Label(l) => label = String::from_utf8_lossy(&l).into_owned(),
                    Attribute::Id(i) => id = i,
                    _ => {}
                }
            }
            keys.push((label, id));
        }
        Ok(keys)
    }

    fn read_public_key(&self, object: ObjectHandle, label: &str) -> Result<RsaPublicKey, Pkcs11Error> {
        let attrs = self
            .s()?
            .get_attributes(object, &[AttributeType::Modulus, AttributeType::PublicExponent])
            .map_err(call("C_GetAttributeValue"))?;
        let mut modulus = None;
        let mut public_exponent = None;
        for attr in attrs {
            match attr {
                Attribute::Modulus(m) => modulus = Some(strip_leading_zeros(&m).to_vec()),
                Attribute::PublicExponent(e) => public_exponent = Some(strip_leading_zeros(&e).to_vec()),
                _ => {}
            }
        }
        match (modulus, public_exponent) {
            (Some(modulus), Some(public_exponent)) if !modulus.is_empty() && !public_exponent.is_empty() => {
                Ok(RsaPublicKey { modulus, public_exponent })
            }
            _ => Err(Pkcs11Error::NotRsa {
                label: label.to_owned(),
                reason: "no CKA_MODULUS / CKA_PUBLIC_EXPONENT".to_owned(),
            }),
        }
    }
}
