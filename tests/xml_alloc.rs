//! Parsing, canonicalizing and digesting a DGWS request allocates nothing per request once a
//! core's buffers are warm: counted by this test binary's own global allocator, on the
//! captured unsealed request and on a request built by segl's own writers.

use std::borrow::Cow;

use base64::Engine;
use bytes::Bytes;
use segl::xml::c14n::{Canonicalizer, Method};
use segl::xml::dsig::algorithm::{DigestAlgorithm, DSIG_NS};
use segl::xml::{Document, Limits, ParseArena};

/// A global allocator that counts the allocations of the threads that ask it to.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        // Const-initialized and without destructors, so touching them never allocates; per
        // thread, so tests running in parallel do not count each other's allocations.
        static ACTIVE: Cell<bool> = const { Cell::new(false) };
        static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    }

    fn note() {
        if ACTIVE.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    }

    // SAFETY: every call is forwarded unchanged to the system allocator, which upholds the
    // GlobalAlloc contract; counting touches only const thread-locals.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note();
            // SAFETY: same layout the caller gave us, per GlobalAlloc::alloc's contract.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: ptr was allocated by System with this layout (alloc/realloc above).
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note();
            // SAFETY: forwarded under the caller's GlobalAlloc::realloc guarantees.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Runs `f` and returns how many allocations this thread made meanwhile.
    pub fn count(f: impl FnOnce()) -> usize {
        let before = ALLOCATIONS.with(Cell::get);
        ACTIVE.with(|a| a.set(true));
        f();
        ACTIVE.with(|a| a.set(false));
        ALLOCATIONS.with(Cell::get) - before
    }
}

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// What one request costs the XML core before any RSA: parse into the core's arena, find the
/// card, digest its canonical form without the signature, compare with DigestValue, and digest
/// the canonical SignedInfo (what the RSA check is over).
struct Core {
    arena: ParseArena,
    c14n: Canonicalizer,
    limits: Limits,
}

impl Core {
    fn request(&mut self, body: Bytes) -> bool {
        let Ok(doc) = Document::parse_with(body, &self.limits, &mut self.arena) else {
            return false;
        };
        let ok = (|| {
            let card = doc.by_id("IDCard")?;
            let sig = doc.child(card, DSIG_NS, "Signature")?;
            let si = doc.child(sig, DSIG_NS, "SignedInfo")?;
            let reference = doc.child(si, DSIG_NS, "Reference")?;
            let digest_value = doc.child(reference, DSIG_NS, "DigestValue")?;
            let method = doc.child(reference, DSIG_NS, "DigestMethod")?;
            let alg = DigestAlgorithm::from_uri(&doc.attribute(method, "Algorithm")?)?;
            let mut hasher = alg.hasher();
            self.c14n.subtree(&doc, card, Some(sig), Method::Exclusive(&[]), &mut hasher);
            let digest = hasher.finish_digest();
            let text = doc.text(digest_value);
            if !matches!(text, Cow::Borrowed(_)) {
                return None;
            }
            let mut expected = [0u8; 64];
            let n = base64::engine::general_purpose::STANDARD
                .decode_slice(text.as_bytes(), &mut expected)
                .ok()?;
            let mut signed_info = DigestAlgorithm::Sha256.hasher();
            self.c14n.subtree(&doc, si, None, Method::Exclusive(&[]), &mut signed_info);
            let _ = signed_info.finish_digest();
            Some(expected.get(..n)? == digest.as_ref())
        })();
        self.arena.recycle(doc);
        ok == Some(true)
    }
}

fn built_request() -> Vec<u8> {
    use segl::token::idcard::{NameId, SystemLog};
    use segl::token::{CardType, IdCard};
    use segl::xml::dsig::algorithm::SignatureAlgorithm;
    let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let card = IdCard {
        version: segl::time::DgwsVersion::V1_0_1,
        issue_instant: t("2026-01-01T09:55:00Z"),
        issuer: "SeglDevClient".into(),
        name_id: NameId { format: "medcom:cvrnumber".into(), value: "20921897".into() },
        holder_of_key: true,
        not_before: t("2026-01-01T09:55:00Z"),
        not_on_or_after: t("2026-01-02T09:55:00Z"),
        id_card_id: "hRyC+neSxkdwzcYGLfF/Ww==".into(),
        card_type: CardType::System,
        authentication_level: 3,
        ocess_cert_hash: None,
        user: None,
        system: SystemLog {
            it_system_name: "Testby Journal".into(),
            care_provider_id: "20921897".into(),
            care_provider_id_format: "medcom:cvrnumber".into(),
            care_provider_name: "L\u{e6}gehuset Testby".into(),
        },
    };
    let signed = card.prepare_signature(SignatureAlgorithm::RsaSha256, "MIIB").finish(&[7; 256]);
    segl::dev::client::request_envelope(&signed, "AAAB", "2026-01-01T10:00:00Z")
}

#[test]
fn parse_c14n_and_digest_allocate_nothing_once_warm() {
    let mut requests = vec![("built", built_request())];
    match segl::spec_data::example("unsealed-sts-request-1.compact.xml") {
        Some(captured) => requests.push(("captured", captured.into_bytes())),
        None => println!("SKIP part: the captured request is not available"),
    }
    for (name, bytes) in requests {
        let body = Bytes::from(bytes);
        let mut core =
            Core { arena: ParseArena::default(), c14n: Canonicalizer::default(), limits: Limits::default() };
        // Warm-up grows the arena and scratch buffers to this request's size.
        for _ in 0..3 {
            assert!(core.request(body.clone()), "{name}: the request's card digest verifies");
        }
        let mut all_ok = true;
        let allocations = counting::count(|| {
            for _ in 0..1000 {
                all_ok &= core.request(body.clone());
            }
        });
        assert!(all_ok, "{name}: every request verified");
        assert_eq!(allocations, 0, "{name}: allocations in 1000 warm requests");
    }
}

#[test]
fn the_counter_counts() {
    let n = counting::count(|| {
        let v: Vec<u8> = Vec::with_capacity(10);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}
