//! A token (one slot), logged in once for the whole process.

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::module::call;
use crate::public_key::strip_leading_zeros;
use crate::{HsmModule, Pkcs11Error, RsaSigner, SecretPin, TokenSession};

/// A token, found by label.
#[derive(Clone)]
pub struct Token {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    module: Arc<HsmModule>,
    slot: Slot,
    label: String,
    /// PKCS#11 logs the application out when its last session on the token closes; this
    /// session is kept open from the first login on so the login outlives short-lived sessions.
    login_session: Mutex<Option<Session>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.inner.label)
            .field("slot", &self.inner.slot.id())
            .finish()
    }
}

impl Token {
    pub(crate) fn new(module: Arc<HsmModule>, slot: Slot, label: String) -> Self {
        Self { inner: Arc::new(TokenInner { module, slot, label, login_session: Mutex::new(None) }) }
    }

    /// The token label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Logs the user in. Idempotent: CKR_USER_ALREADY_LOGGED_IN is success (login state is
    /// per application and token in PKCS#11, so one login serves every session).
    pub fn login(&self, pin: &SecretPin) -> Result<(), Pkcs11Error> {
        // A poisoned lock only means a login panicked; the Option inside is still valid.
        let mut keeper = self.inner.login_session.lock().unwrap_or_else(PoisonError::into_inner);
        let user_login = |session: &Session| match session.login(UserType::User, Some(&pin.auth_pin())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(e),
        };
        let kept = keeper.as_ref().map(user_login);
        match kept {
            Some(Ok(())) => {}
            // No kept session yet, or someone closed it behind our back (C_CloseAllSessions):
            // open a fresh one.
            None | Some(Err(CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _))) => {
                let session = self
                    .inner
                    .module
                    .ctx()
                    .open_ro_session(self.inner.slot)
                    .map_err(call("C_OpenSession"))?;
                user_login(&session).map_err(|source| self.login_error(source))?;
                *keeper = Some(session);
            }
            Some(Err(source)) => return Err(self.login_error(source)),
        }
        tracing::debug!(token = %self.inner.label, "logged in to PKCS#11 token");
        Ok(())
    }

    fn login_error(&self, source: CkError) -> Pkcs11Error {
        Pkcs11Error::Login { label: self.inner.label.clone(), source }
    }

    /// A new read/write session for key management (caller must have logged in).
    pub fn session(&self) -> Result<TokenSession, Pkcs11Error> {
        let session =
            self.inner.module.ctx().open_rw_session(self.inner.slot).map_err(call("C_OpenSession"))?;
        Ok(TokenSession::new(session, self.clone()))
    }

    /// A new session dedicated to signing with the private key labelled `key_label`; the key
    /// handle is looked up once here and cached in the signer.
    pub fn signer(&self, key_label: &str) -> Result<RsaSigner, Pkcs11Error> {
        // Signing needs no write access; a read-only session does not count against the
        // token's read/write session limit.
        let session =
            self.inner.module.ctx().open_ro_session(self.inner.slot).map_err(call("C_OpenSession"))?;
        let key = find_one(&session, ObjectClass::PRIVATE_KEY, key_label)?.ok_or_else(|| {
            Pkcs11Error::KeyNotFound { label: key_label.to_owned(), token: self.inner.label.clone() }
        })?;
        let attrs = session
            .get_attributes(key, &[AttributeType::KeyType, AttributeType::Modulus])
            .map_err(call("C_GetAttributeValue"))?;
        let not_rsa =
            |reason: &str| Pkcs11Error::NotRsa { label: key_label.to_owned(), reason: reason.to_owned() };
        let mut key_type = None;
        let mut modulus_len = 0;
        for attr in attrs {
            match attr {
                Attribute::KeyType(t) => key_type = Some(t),
                Attribute::Modulus(m) => modulus_len = strip_leading_zeros(&m).len(),
                _ => {}
            }
        }
        if key_type != Some(KeyType::RSA) {
            return Err(not_rsa("CKA_KEY_TYPE is not CKK_RSA"));
        }
        // PKCS#1 v1.5 needs 11 bytes of padding around the longest DigestInfo (51 bytes).
        if modulus_len < 62 {
            return Err(not_rsa("modulus missing or too short"));
        }
        Ok(RsaSigner::new(session, key, key_label.to_owned(), modulus_len, self.clone()))
    }
}

/// The first object of `class` labelled `label`.
pub(crate) fn find_one(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Option<ObjectHandle>, Pkcs11Error> {
    let found = find_all(session, class, label)?;
    if found.len() > 1 {
        tracing::warn!(label, count = found.len(), "several PKCS#11 objects share a label; using the first");
    }
    Ok(found.into_iter().next())
}

/// Every object of `class` labelled `label`.
pub(crate) fn find_all(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(&[Attribute::Class(class), Attribute::Label(label.as_bytes().to_vec())])
        .map_err(call("C_FindObjects"))
}
