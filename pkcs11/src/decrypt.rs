//! Decryption with an RSA key held in the token: the key transport of encrypted tokens that
//! issuers send to the STS (encrypted bootstrap tokens). The key never leaves the token.
//!
//! PKCS#1 v1.5 decryption is a padding oracle when its failures can be told apart. So the
//! token is asked only for the raw RSA operation (CKM_RSA_X_509), which succeeds for any
//! ciphertext below the modulus, and the padding is checked by the caller on one path (see
//! `segl`'s `xml::enc`): the token's answer, and its timing, do not depend on the padding.
//! RSA-OAEP uses the token's own CKM_RSA_PKCS_OAEP (SHA-1, MGF1-SHA-1).

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::module::call;
use crate::public_key::strip_leading_zeros;
use crate::session::KeyPurpose;
use crate::token::find_one;
use crate::{FaultScope, Pkcs11Error, RsaPublicKey, Token, TokenSession};

/// One session and one cached decryption-key handle; each core owns its own. A session the
/// module reports as lost (or a stale key handle) is reopened once and the operation retried,
/// as the batched signer recovers its sessions: such a failure says nothing about the input.
pub struct RsaDecryptor {
    open: std::cell::RefCell<(Session, ObjectHandle)>,
    label: String,
    modulus_len: usize,
    /// The public modulus, big-endian without leading zeros: a ciphertext is checked against
    /// it before the token sees it.
    modulus: Vec<u8>,
    /// Reopens the session; keeps the token's login session, and with it the login, alive.
    token: Token,
}

impl std::fmt::Debug for RsaDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaDecryptor")
            .field("key_label", &self.label)
            .field("modulus_len", &self.modulus_len)
            .finish()
    }
}

impl RsaDecryptor {
    /// The label of the key.
    pub fn key_label(&self) -> &str {
        &self.label
    }

    /// The modulus length in bytes.
    pub fn modulus_len(&self) -> usize {
        self.modulus_len
    }

    /// The raw RSA private-key operation (CKM_RSA_X_509): `ciphertext^d mod n`, left-padded to
    /// the modulus length. Fails only for input the operation is undefined on (wrong length,
    /// not below the modulus), never because of what the result contains.
    pub fn raw(&self, ciphertext: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let out = self.decrypt(&Mechanism::RsaX509, ciphertext)?;
        let mut block = vec![0u8; self.modulus_len.saturating_sub(out.len())];
        block.extend_from_slice(&out);
        Ok(block)
    }

    /// RSA-OAEP decryption (SHA-1, MGF1-SHA-1, empty label), done by the token.
    pub fn oaep_sha1(&self, ciphertext: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let params =
            PkcsOaepParams::new(MechanismType::SHA1, PkcsMgfType::MGF1_SHA1, PkcsOaepSource::empty());
        self.decrypt(&Mechanism::RsaPkcsOaep(params), ciphertext)
    }

    fn decrypt(&self, mechanism: &Mechanism<'_>, ciphertext: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        // RSA is undefined on a value not below the modulus. Tokens disagree on what they
        // answer (SoftHSM: CKR_GENERAL_ERROR, indistinguishable from a lost session), so it is
        // refused here, from public values, as the input error it is.
        self.check_ciphertext(ciphertext)?;
        let attempt = |open: &(Session, ObjectHandle)| {
            open.0.decrypt(mechanism, open.1, ciphertext).map_err(call("C_Decrypt"))
        };
        let first = attempt(&self.open.borrow());
        match first {
            Err(e) if matches!(e.scope(), FaultScope::Session | FaultScope::KeyHandle) => {
                tracing::warn!(key = %self.label, "decryption session lost ({e}); reopening it");
                let (session, key, _) = open_key(&self.token, &self.label)?;
                *self.open.borrow_mut() = (session, key);
                attempt(&self.open.borrow())
            }
            other => other,
        }
    }
}

impl RsaDecryptor {
    /// A ciphertext of exactly the modulus length (RFC 8017 §7.2.2, §7.1.2) whose value is
    /// below the modulus.
    fn check_ciphertext(&self, ciphertext: &[u8]) -> Result<(), Pkcs11Error> {
        if ciphertext.len() != self.modulus_len {
            return Err(Pkcs11Error::CiphertextInvalid { reason: "not of the modulus length" });
        }
        // Equal lengths compare as big-endian numbers byte by byte; these are public values.
        if ciphertext < self.modulus.as_slice() {
            Ok(())
        } else {
            Err(Pkcs11Error::CiphertextInvalid { reason: "not below the modulus" })
        }
    }
}

/// A new read-only session on the token and the decryption key labelled `label` in it, checked
/// to be an RSA key that may decrypt; with its modulus length.
fn open_key(token: &Token, label: &str) -> Result<(Session, ObjectHandle, Vec<u8>), Pkcs11Error> {
    let session = token.read_only_session()?;
    let key = find_one(&session, ObjectClass::PRIVATE_KEY, label)?.ok_or_else(|| {
        Pkcs11Error::KeyNotFound { label: label.to_owned(), token: token.label().to_owned() }
    })?;
    let attrs = session
        .get_attributes(key, &[AttributeType::KeyType, AttributeType::Modulus, AttributeType::Decrypt])
        .map_err(call("C_GetAttributeValue"))?;
    let not_fit = |reason: &str| Pkcs11Error::NotRsa { label: label.to_owned(), reason: reason.to_owned() };
    let (mut key_type, mut modulus, mut decrypt) = (None, Vec::new(), false);
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::Modulus(m) => modulus = strip_leading_zeros(&m).to_vec(),
            Attribute::Decrypt(d) => decrypt = d,
            _ => {}
        }
    }
    if key_type != Some(KeyType::RSA) || modulus.len() < 128 {
        return Err(not_fit("not an RSA key of at least 1024 bits"));
    }
    if !decrypt {
        return Err(not_fit("CKA_DECRYPT is false (a signing key is never used to decrypt)"));
    }
    Ok((session, key, modulus))
}

impl Token {
    /// A new session dedicated to decrypting with the private key labelled `key_label`.
    pub fn decryptor(&self, key_label: &str) -> Result<RsaDecryptor, Pkcs11Error> {
        let (session, key, modulus) = open_key(self, key_label)?;
        Ok(RsaDecryptor {
            open: std::cell::RefCell::new((session, key)),
            label: key_label.to_owned(),
            modulus_len: modulus.len(),
            modulus,
            token: self.clone(),
        })
    }
}

impl TokenSession {
    /// Whether the private key labelled `label` is a decryption key (CKA_DECRYPT true).
    pub fn is_decryption_key(&self, label: &str) -> Result<bool, Pkcs11Error> {
        let session = self.raw()?;
        let Some(key) = find_one(session, ObjectClass::PRIVATE_KEY, label)? else { return Ok(false) };
        let attrs =
            session.get_attributes(key, &[AttributeType::Decrypt]).map_err(call("C_GetAttributeValue"))?;
        Ok(attrs.iter().any(|a| matches!(a, Attribute::Decrypt(true))))
    }

    /// Generates an RSA key pair for decryption inside the token: the private key is
    /// CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not CKA_EXTRACTABLE, CKA_DECRYPT true and
    /// CKA_SIGN/CKA_UNWRAP false (a decryption key signs nothing, and a signing key decrypts
    /// nothing).
    pub fn generate_rsa_decryption_key(
        &self,
        label: &str,
        id: &[u8],
        bits: u32,
    ) -> Result<RsaPublicKey, Pkcs11Error> {
        self.generate_pair(label, id, bits, KeyPurpose::Decryption)
    }
}
