//! Integration tests against the real SoftHSMv2 module, in a private token directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{
    UnparsedPublicKey, VerificationAlgorithm, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256,
};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use segl_pkcs11::{HashAlgorithm, HsmModule, Pkcs11Error, RsaPublicKey, RsaSigner, SecretPin, Token};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const SO_PIN: &str = "so-pin-8642";
const USER_PIN: &str = "user-pin-1357";
const MAIN_TOKEN: &str = "segl-test";
const KEY: &str = "sts-signing";
const KEY_ID: &[u8] = &[0x5e, 0x61];

/// Scratch space private to this test process.
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        remove_stale_work_dirs();
        let dir = std::env::temp_dir().join(format!("segl-pkcs11-test-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("tokens")).unwrap();
        dir
    })
}

/// Test processes cannot clean up at exit, so each removes the token directories of earlier
/// runs whose process is gone (checked via /proc, hence Linux only).
fn remove_stale_work_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("segl-pkcs11-test-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The shared module, with SOFTHSM2_CONF pointing at a private token directory; `None` (after
/// saying so) when SoftHSM is not installed.
fn module() -> Option<Arc<HsmModule>> {
    if !Path::new(MODULE).exists() {
        println!("SoftHSMv2 not installed at {MODULE}; skipping");
        return None;
    }
    static CONF: OnceLock<()> = OnceLock::new();
    CONF.get_or_init(|| {
        let dir = work_dir();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        // SoftHSM reads its configuration in C_Initialize, so this must precede the first load.
        std::env::set_var("SOFTHSM2_CONF", &conf);
    });
    Some(HsmModule::load(Path::new(MODULE)).unwrap())
}

struct Fixture {
    token: Token,
    public: RsaPublicKey,
}

/// One token, logged in, with one 2048-bit key, shared by all tests.
/// SoftHSM re-reads a token's objects when another thread of the process enumerates slots or
/// creates a token, and an object created at that moment fails with CKR_GENERAL_ERROR (seen
/// about once in 15 runs with these tests in parallel). Key management is never concurrent in
/// segl (the server only signs), so the tests run one at a time rather than race the module.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn fixture() -> Option<&'static Fixture> {
    let module = module()?;
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    Some(FIXTURE.get_or_init(|| {
        let token =
            module.init_token(MAIN_TOKEN, &SecretPin::new(SO_PIN), &SecretPin::new(USER_PIN)).unwrap();
        assert_eq!(token.label(), MAIN_TOKEN);
        token.login(&SecretPin::new(USER_PIN)).unwrap();
        let public = token.session().unwrap().generate_rsa_key(KEY, KEY_ID, 2048).unwrap();
        Fixture { token, public }
    }))
}

/// A raw cryptoki session on the token, opened through a second context over the same library:
/// an observer that does not go through the crate under test. Login state is shared because it
/// is the same library instance in the same process.
fn raw_session(token_label: &str) -> cryptoki::session::Session {
    static CTX: OnceLock<Pkcs11> = OnceLock::new();
    let ctx = CTX.get_or_init(|| {
        let ctx = Pkcs11::new(MODULE).unwrap();
        // Already initialized by HsmModule::load; the error is expected.
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        ctx
    });
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == token_label)
        .unwrap();
    ctx.open_ro_session(slot).unwrap()
}

fn sha(alg: HashAlgorithm, msg: &[u8]) -> Vec<u8> {
    let a = match alg {
        HashAlgorithm::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlgorithm::Sha256 => &digest::SHA256,
    };
    digest::digest(a, msg).as_ref().to_vec()
}

fn verifier(alg: HashAlgorithm) -> &'static dyn VerificationAlgorithm {
    match alg {
        HashAlgorithm::Sha1 => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlgorithm::Sha256 => &RSA_PKCS1_2048_8192_SHA256,
    }
}

fn verifies(public_der: &[u8], alg: HashAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
    UnparsedPublicKey::new(verifier(alg), public_der).verify(msg, sig).is_ok()
}

#[test]
fn generated_key_is_rsa_2048_with_f4() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    assert_eq!(f.public.bits(), 2048);
    assert_eq!(f.public.modulus.len(), 256);
    assert_eq!(f.public.public_exponent, [0x01, 0x00, 0x01]);
    let session = f.token.session().unwrap();
    assert!(session.has_key(KEY).unwrap());
    assert!(!session.has_key("no-such-key").unwrap());
    assert_eq!(session.public_key(KEY).unwrap(), f.public);
}

#[test]
fn private_key_is_sensitive_non_extractable_and_sign_only() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let session = raw_session(f.token.label());
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(KEY.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0];
    let attrs = session
        .get_attributes(
            key,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Unwrap,
                AttributeType::Id,
                AttributeType::PrivateExponent,
                AttributeType::Prime1,
            ],
        )
        .unwrap();
    let flag = |want: AttributeType| {
        attrs
            .iter()
            .find(|a| a.attribute_type() == want)
            .map(|a| match a {
                Attribute::Token(b)
                | Attribute::Private(b)
                | Attribute::Sensitive(b)
                | Attribute::AlwaysSensitive(b)
                | Attribute::Extractable(b)
                | Attribute::NeverExtractable(b)
                | Attribute::Sign(b)
                | Attribute::Decrypt(b)
                | Attribute::Unwrap(b) => *b,
                other => panic!("unexpected {other:?}"),
            })
            .unwrap_or_else(|| panic!("{want:?} missing"))
    };
    assert!(flag(AttributeType::Token));
    assert!(flag(AttributeType::Private));
    assert!(flag(AttributeType::Sensitive));
    assert!(flag(AttributeType::AlwaysSensitive));
    assert!(!flag(AttributeType::Extractable));
    assert!(flag(AttributeType::NeverExtractable));
    assert!(flag(AttributeType::Sign));
    assert!(!flag(AttributeType::Decrypt));
    assert!(!flag(AttributeType::Unwrap));
    assert!(attrs.contains(&Attribute::Id(KEY_ID.to_vec())));
    // Sensitive components are filtered out (CKR_ATTRIBUTE_SENSITIVE) by get_attributes.
    assert!(!attrs
        .iter()
        .any(|a| matches!(a.attribute_type(), AttributeType::PrivateExponent | AttributeType::Prime1)));
    // Either an error or an empty answer is acceptable; a value is not.
    if let Ok(v) = session.get_attributes(key, &[AttributeType::PrivateExponent]) {
        assert!(v.is_empty(), "private exponent readable: {v:?}");
    }
    // Nor can the key be made extractable after the fact.
    assert!(session.update_attributes(key, &[Attribute::Extractable(true)]).is_err());
}

#[test]
fn sign_digest_verifies_with_sha1_and_sha256() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let signer = f.token.signer(KEY).unwrap();
    assert_eq!(signer.key_label(), KEY);
    let pkcs1 = f.public.pkcs1_der();
    let spki = f.public.spki_der();
    let msg = b"<saml:Assertion ID=\"a\">signed</saml:Assertion>";
    for alg in [HashAlgorithm::Sha1, HashAlgorithm::Sha256] {
        let sig = signer.sign_digest(alg, &sha(alg, msg)).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(verifies(&pkcs1, alg, msg, &sig), "{alg:?} via PKCS#1 key");
        assert!(verifies(&spki, alg, msg, &sig), "{alg:?} via SPKI");
        assert!(!verifies(&pkcs1, alg, b"a different message", &sig), "{alg:?}");
        let other = match alg {
            HashAlgorithm::Sha1 => HashAlgorithm::Sha256,
            HashAlgorithm::Sha256 => HashAlgorithm::Sha1,
        };
        assert!(!verifies(&pkcs1, other, msg, &sig), "{alg:?} as {other:?}");
    }
}

#[test]
fn spki_is_what_openssl_and_aws_lc_parse() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let spki = f.public.spki_der();
    let parsed = aws_lc_rs::rsa::PublicEncryptingKey::from_der(&spki).unwrap();
    assert_eq!(parsed.key_size_bits(), 2048);

    if Command::new("openssl").arg("version").output().is_err() {
        println!("openssl CLI not found; skipping the openssl part");
        return;
    }
    let dir = work_dir().join("spki");
    std::fs::create_dir_all(&dir).unwrap();
    let spki_path = dir.join("pub.der");
    let reencoded = dir.join("pub-openssl.der");
    std::fs::write(&spki_path, &spki).unwrap();
    // openssl parses our SPKI and writes its own canonical DER; the two must be identical.
    let out = Command::new("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-outform", "DER", "-in"])
        .arg(&spki_path)
        .arg("-out")
        .arg(&reencoded)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(&reencoded).unwrap(), spki);

    let msg_path = dir.join("msg");
    let sig_path = dir.join("sig");
    let msg = b"verified by openssl";
    std::fs::write(&msg_path, msg).unwrap();
    let signer = f.token.signer(KEY).unwrap();
    let sig = signer.sign_digest(HashAlgorithm::Sha256, &sha(HashAlgorithm::Sha256, msg)).unwrap();
    std::fs::write(&sig_path, &sig).unwrap();
    let verify = |data: &Path| {
        Command::new("openssl")
            .args(["dgst", "-sha256", "-keyform", "DER", "-verify"])
            .arg(&spki_path)
            .arg("-signature")
            .arg(&sig_path)
            .arg(data)
            .output()
            .unwrap()
    };
    let out = verify(&msg_path);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let other = dir.join("other");
    std::fs::write(&other, b"not what was signed").unwrap();
    assert!(!verify(&other).status.success());
}

#[test]
fn wrong_digest_length_is_rejected() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let signer = f.token.signer(KEY).unwrap();
    match signer.sign_digest(HashAlgorithm::Sha256, &[0u8; 20]) {
        Err(Pkcs11Error::DigestLength { alg: HashAlgorithm::Sha256, expected: 32, got: 20 }) => {}
        other => panic!("expected DigestLength, got {other:?}"),
    }
    assert!(matches!(
        signer.sign_digest(HashAlgorithm::Sha1, &[0u8; 32]),
        Err(Pkcs11Error::DigestLength { .. })
    ));
}

#[test]
fn wrong_pin_is_a_login_error_without_the_pin() {
    let _serial = serial();
    let Some(module) = module() else { return };
    let label = "segl-pin-test";
    let token = module.init_token(label, &SecretPin::new(SO_PIN), &SecretPin::new(USER_PIN)).unwrap();
    let wrong = "wrong-pin-97531";
    match token.login(&SecretPin::new(wrong)) {
        Err(e @ Pkcs11Error::Login { .. }) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(wrong), "{shown}");
            assert!(shown.contains(label), "{shown}");
        }
        other => panic!("expected Login error, got {other:?}"),
    }
    // The right PIN still works, and a second login is harmless.
    token.login(&SecretPin::new(USER_PIN)).unwrap();
    token.login(&SecretPin::new(USER_PIN)).unwrap();
    // SoftHSM answers CKR_USER_ALREADY_LOGGED_IN before checking the PIN, so once logged in a
    // wrong PIN is not detected; this pins down that (documented) consequence of idempotency.
    token.login(&SecretPin::new(wrong)).unwrap();
    // Found again by label, the token shares the process-wide login.
    let again = module.token(label).unwrap();
    assert!(!again.session().unwrap().has_key("anything").unwrap());
}

#[test]
fn unknown_token_key_and_duplicate_label() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let module = module().unwrap();
    assert!(matches!(module.token("no-such-token"), Err(Pkcs11Error::TokenNotFound { .. })));
    assert!(matches!(f.token.signer("no-such-key"), Err(Pkcs11Error::KeyNotFound { .. })));
    assert!(matches!(
        f.token.session().unwrap().public_key("no-such-key"),
        Err(Pkcs11Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        f.token.session().unwrap().generate_rsa_key(KEY, b"x", 2048),
        Err(Pkcs11Error::KeyExists { .. })
    ));
    assert!(matches!(
        module.init_token(
            "a label that is longer than 32 bytes",
            &SecretPin::new(SO_PIN),
            &SecretPin::new(USER_PIN)
        ),
        Err(Pkcs11Error::LabelTooLong { .. })
    ));
    // The fixture token is found by label through a fresh lookup.
    assert_eq!(module.token(MAIN_TOKEN).unwrap().label(), MAIN_TOKEN);
}

#[test]
fn certificate_store_replace_and_read() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let session = f.token.session().unwrap();
    let label = "sts-cert";
    assert_eq!(session.certificate(label).unwrap(), None);
    // SoftHSM stores CKA_VALUE opaquely; two distinct DER blobs are enough to see a replace.
    let first = b"\x30\x03\x02\x01\x01".to_vec();
    let second = b"\x30\x03\x02\x01\x02".to_vec();
    session.store_certificate(label, KEY_ID, &first).unwrap();
    assert_eq!(session.certificate(label).unwrap(), Some(first));
    session.store_certificate(label, KEY_ID, &second).unwrap();
    assert_eq!(session.certificate(label).unwrap(), Some(second.clone()));

    let raw = raw_session(f.token.label());
    let certs = raw
        .find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(certs.len(), 1, "replace must not leave the old certificate");
    let attrs = raw.get_attributes(certs[0], &[AttributeType::Id, AttributeType::Token]).unwrap();
    assert!(attrs.contains(&Attribute::Id(KEY_ID.to_vec())));
    assert!(attrs.contains(&Attribute::Token(true)));
    // A later session sees the token object.
    assert_eq!(f.token.session().unwrap().certificate(label).unwrap(), Some(second));
}

#[test]
fn two_signers_sign_concurrently_on_two_threads() {
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let signer = f.token.signer(KEY).unwrap();
            let pkcs1 = f.public.pkcs1_der();
            std::thread::spawn(move || {
                for n in 0..10 {
                    let msg = format!("thread {i} message {n}");
                    let sig = signer
                        .sign_digest(HashAlgorithm::Sha256, &sha(HashAlgorithm::Sha256, msg.as_bytes()))
                        .unwrap();
                    assert!(verifies(&pkcs1, HashAlgorithm::Sha256, msg.as_bytes(), &sig));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn loading_twice_returns_the_same_module() {
    let _serial = serial();
    let Some(a) = module() else { return };
    let b = HsmModule::load(Path::new(MODULE)).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(a.path(), Path::new(MODULE));
}

#[test]
fn missing_module_is_a_load_error() {
    let _serial = serial();
    let path = work_dir().join("no-such-module.so");
    assert!(matches!(HsmModule::load(&path), Err(Pkcs11Error::ModuleLoad { .. })));
}

#[test]
fn signer_is_send_but_not_sync() {
    let _serial = serial();
    fn assert_send<T: Send>() {}
    assert_send::<RsaSigner>();

    // Resolves only when exactly one impl applies, i.e. when RsaSigner is not Sync.
    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    struct IsSync;
    impl<T: ?Sized + Sync> AmbiguousIfSync<IsSync> for T {}
    <RsaSigner as AmbiguousIfSync<_>>::check();
}

#[test]
fn decryption_key_decrypts_pkcs1_raw_and_oaep_and_a_signing_key_refuses_to() {
    use aws_lc_rs::rsa::{
        OaepPublicEncryptingKey, Pkcs1PublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    };
    let _serial = serial();
    let Some(f) = fixture() else { return };
    let session = f.token.session().unwrap();
    if !session.has_key("bst-decryption").unwrap() {
        session.generate_rsa_decryption_key("bst-decryption", b"dk", 2048).unwrap();
    }
    let public = session.public_key("bst-decryption").unwrap();
    let encrypting = PublicEncryptingKey::from_der(&public.spki_der()).unwrap();
    let secret = [0x42u8; 16];

    // PKCS#1 v1.5: the token does the raw operation only; the block is 00 02 PS 00 M.
    let pkcs1 = Pkcs1PublicEncryptingKey::new(encrypting.clone()).unwrap();
    let mut ct = vec![0u8; pkcs1.ciphertext_size()];
    let ct = pkcs1.encrypt(&secret, &mut ct).unwrap().to_vec();
    let decryptor = f.token.decryptor("bst-decryption").unwrap();
    let block = decryptor.raw(&ct).unwrap();
    assert_eq!(block.len(), 256);
    assert_eq!(&block[..2], &[0x00, 0x02]);
    assert_eq!(&block[256 - 17..], &[&[0u8][..], &secret[..]].concat()[..]);
    // Any value below the modulus decrypts: the token's answer says nothing about padding.
    let garbage = [0x01u8; 256];
    assert_eq!(decryptor.raw(&garbage).unwrap().len(), 256);
    // A value not below the modulus, or of another length, is an input error refused before
    // the token is asked (SoftHSM would answer CKR_GENERAL_ERROR, which reads as a lost
    // session), for both mechanisms; the decryptor keeps working.
    for bad in [vec![0xffu8; 256], vec![0x01u8; 255], vec![0x01u8; 257]] {
        for result in [decryptor.raw(&bad), decryptor.oaep_sha1(&bad)] {
            match result {
                Err(e @ Pkcs11Error::CiphertextInvalid { .. }) => {
                    assert_eq!(e.scope(), segl_pkcs11::FaultScope::Request, "{e}")
                }
                other => panic!("{} bytes: {other:?}", bad.len()),
            }
        }
    }
    assert_eq!(decryptor.raw(&garbage).unwrap().len(), 256);

    // OAEP (SHA-1, MGF1-SHA-1) by the token.
    let oaep = OaepPublicEncryptingKey::new(encrypting).unwrap();
    let mut ct = vec![0u8; oaep.ciphertext_size()];
    let ct = oaep.encrypt(&OAEP_SHA1_MGF1SHA1, &secret, &mut ct, None).unwrap().to_vec();
    assert_eq!(decryptor.oaep_sha1(&ct).unwrap(), secret);

    // The signing key has CKA_DECRYPT false and is refused as a decryption key.
    match f.token.decryptor(KEY) {
        Err(Pkcs11Error::NotRsa { reason, .. }) => assert!(reason.contains("CKA_DECRYPT"), "{reason}"),
        other => panic!("a signing key must not decrypt: {other:?}"),
    }
    // And the decryption key cannot sign.
    assert!(f
        .token
        .signer("bst-decryption")
        .unwrap()
        .sign_digest(HashAlgorithm::Sha256, &[0u8; 32])
        .is_err());
}
