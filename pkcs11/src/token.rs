//! A token (one slot), logged in once for the whole process, and logged in again only when the
//! login was lost (the token was logged out, or the module had to be re-initialized).

use std::sync::{Arc, Mutex, PoisonError};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::module::{call, TokenSelector};
use crate::public_key::strip_leading_zeros;
use crate::{HsmModule, Pkcs11Error, RsaSigner, SecretPin, TokenSession};

/// A token, found by label and/or serial number.
#[derive(Clone)]
pub struct Token {
    inner: Arc<TokenInner>,
}

struct TokenInner {
    module: Arc<HsmModule>,
    label: String,
    /// How the token was found, to find it again when slot ids change.
    selector: TokenSelector,
    state: Mutex<TokenState>,
}

struct TokenState {
    slot: Slot,
    /// The module generation `slot` belongs to.
    generation: u64,
    /// PKCS#11 logs the application out when its last session on the token closes; this
    /// session is kept open from the first login on so the login outlives short-lived sessions.
    login_session: Option<LiveSession>,
    /// Kept to log in again after the login was lost; never shown (see [`SecretPin`]).
    pin: Option<SecretPin>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("label", &self.inner.label)
            .field("selector", &self.inner.selector)
            .finish()
    }
}

/// A session that knows the module generation it was opened in. Dropped in the same
/// generation it is closed; dropped after a re-initialization it is forgotten instead, because
/// its handle number may by then belong to a new session that closing it would end.
pub(crate) struct LiveSession {
    session: Option<Session>,
    generation: u64,
    module: Arc<HsmModule>,
}

impl LiveSession {
    pub(crate) fn session(&self) -> Option<&Session> {
        if self.module.generation() == self.generation {
            self.session.as_ref()
        } else {
            None
        }
    }
}

impl LiveSession {
    /// Lets go of the session without closing it.
    pub(crate) fn forget(mut self) {
        if let Some(session) = self.session.take() {
            std::mem::forget(session);
        }
    }
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if self.module.generation() != self.generation {
                std::mem::forget(session);
            }
        }
    }
}

impl Token {
    pub(crate) fn new(module: Arc<HsmModule>, slot: Slot, label: String, selector: TokenSelector) -> Self {
        let generation = module.generation();
        let state = TokenState { slot, generation, login_session: None, pin: None };
        Self { inner: Arc::new(TokenInner { module, label, selector, state: Mutex::new(state) }) }
    }

    /// The token label.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The module this token is in.
    pub fn module(&self) -> &Arc<HsmModule> {
        &self.inner.module
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TokenState> {
        // A poisoned lock only means a login panicked; the state inside is still valid.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Logs the user in. Idempotent: CKR_USER_ALREADY_LOGGED_IN is success (login state is
    /// per application and token in PKCS#11, so one login serves every session).
    pub fn login(&self, pin: &SecretPin) -> Result<(), Pkcs11Error> {
        let mut state = self.state();
        self.login_locked(&mut state, pin)?;
        state.pin = Some(pin.clone());
        tracing::debug!(token = %self.inner.label, "logged in to PKCS#11 token");
        Ok(())
    }

    fn login_locked(&self, state: &mut TokenState, pin: &SecretPin) -> Result<(), Pkcs11Error> {
        let user_login = |session: &Session| match session.login(UserType::User, Some(&pin.auth_pin())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(e),
        };
        self.refresh_slot(state)?;
        let kept = state.login_session.as_ref().and_then(LiveSession::session).map(user_login);
        match kept {
            Some(Ok(())) => Ok(()),
            // No kept session yet, someone closed it behind our back (C_CloseAllSessions), or
            // it belongs to an earlier module generation: open a fresh one.
            None
            | Some(Err(CkError::Pkcs11(
                RvError::SessionHandleInvalid | RvError::SessionClosed | RvError::DeviceRemoved,
                _,
            ))) => {
                let session = self.open_session(state.slot, false)?;
                user_login(&session).map_err(|source| self.login_error(source))?;
                state.login_session = Some(self.live(session));
                Ok(())
            }
            Some(Err(source)) => Err(self.login_error(source)),
        }
    }

    /// Finds the token's slot again if the module was re-initialized since it was last found.
    fn refresh_slot(&self, state: &mut TokenState) -> Result<(), Pkcs11Error> {
        let generation = self.inner.module.generation();
        if state.generation != generation {
            let (slot, _) = self.inner.module.find_slot(&self.inner.selector)?;
            state.slot = slot;
            state.generation = generation;
            state.login_session = None;
        }
        Ok(())
    }

    /// Logs in again with the PIN of the first login, after the login was lost.
    pub fn relogin(&self) -> Result<(), Pkcs11Error> {
        let mut state = self.state();
        let pin = state.pin.clone().ok_or_else(|| Pkcs11Error::Unavailable {
            reason: format!("token {:?} was never logged in", self.inner.label),
        })?;
        // A login already in force makes the kept session answer "already logged in".
        self.login_locked(&mut state, &pin)
    }

    /// Finds the token again; when the module itself has lost its device, re-initializes it
    /// first (and then logs in again).
    pub fn recover(&self) -> Result<(), Pkcs11Error> {
        let module = &self.inner.module;
        let seen = module.generation();
        let found = {
            let _gate = module.gate();
            module.find_slot(&self.inner.selector).map(|_| ())
        };
        match found {
            Ok(()) => {}
            // A networked HSM's client library that lost its server either fails every call
            // or, initialized while the server was away, shows no token at all; both heal
            // only by re-initializing (which reconnects).
            Err(e) if e.is_device_lost() || matches!(e, Pkcs11Error::TokenNotFound { .. }) => {
                module.reinitialize(seen)?;
            }
            Err(e) => return Err(e),
        }
        self.relogin()
    }

    fn login_error(&self, source: CkError) -> Pkcs11Error {
        Pkcs11Error::Login { label: self.inner.label.clone(), source }
    }

    fn open_session(&self, slot: Slot, read_write: bool) -> Result<Session, Pkcs11Error> {
        let ctx = self.inner.module.ctx();
        let opened = if read_write { ctx.open_rw_session(slot) } else { ctx.open_ro_session(slot) };
        opened.map_err(call("C_OpenSession"))
    }

    fn live(&self, session: Session) -> LiveSession {
        LiveSession {
            session: Some(session),
            generation: self.inner.module.generation(),
            module: self.inner.module.clone(),
        }
    }

    fn current_slot(&self) -> Result<Slot, Pkcs11Error> {
        let mut state = self.state();
        self.refresh_slot(&mut state)?;
        Ok(state.slot)
    }

    /// A new read/write session for key management (caller must have logged in).
    pub fn session(&self) -> Result<TokenSession, Pkcs11Error> {
        let session = self.open_session(self.current_slot()?, true)?;
        Ok(TokenSession::new(session, self.clone()))
    }

    /// A new read-only session for the batched signer, tagged with the module generation.
    pub(crate) fn signing_session(&self) -> Result<LiveSession, Pkcs11Error> {
        // Signing needs no write access; a read-only session does not count against the
        // token's read/write session limit.
        let session = self.open_session(self.current_slot()?, false)?;
        Ok(self.live(session))
    }

    /// A new read-only session of the caller's own (decryption).
    pub(crate) fn read_only_session(&self) -> Result<Session, Pkcs11Error> {
        self.open_session(self.current_slot()?, false)
    }

    /// A new session dedicated to signing with the private key labelled `key_label`; the key
    /// handle is looked up once here and cached in the signer.
    pub fn signer(&self, key_label: &str) -> Result<RsaSigner, Pkcs11Error> {
        let session = self.open_session(self.current_slot()?, false)?;
        let (key, modulus_len) = rsa_signing_key(&session, key_label, &self.inner.label)?;
        Ok(RsaSigner::new(session, key, key_label.to_owned(), modulus_len, self.clone()))
    }
}

/// The private key labelled `key_label`, checked to be an RSA key fit for PKCS#1 v1.5
/// signatures, and its modulus length in bytes.
pub(crate) fn rsa_signing_key(
    session: &Session,
    key_label: &str,
    token: &str,
) -> Result<(ObjectHandle, usize), Pkcs11Error> {
    let key = find_one(session, ObjectClass::PRIVATE_KEY, key_label)?
        .ok_or_else(|| Pkcs11Error::KeyNotFound { label: key_label.to_owned(), token: token.to_owned() })?;
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
    Ok((key, modulus_len))
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
