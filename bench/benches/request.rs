//! The DGWS request path piece by piece, in-process and without the network: parse, exclusive
//! c14n + digest of the card, signature verification, certificate-chain validation, building
//! and emitting the STS card, the HSM signature (SoftHSM), and the whole request through
//! `segl::exchange::serve` (with the audit record handed off, and with it waited for on disk as
//! `sync` durability does). Each reports time per operation. `rsa_verify_only` is the floor any
//! STS pays to check a card: the RSA public-key operation on its SignedInfo, nothing else.
//!
//! Runs on a private SoftHSM state made under `target/` (as the end-to-end tests do).

use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use futures_lite::future::block_on;
use segl::audit::Durability;
use segl::dev::client::{DevClient, RequestOptions};
use segl::exchange::{CoreContext, Shared};
use segl::signing::StsKey;
use segl::token::{ns, CardType, IdCard};
use segl::xml::c14n;
use segl::xml::dsig::algorithm::{DigestAlgorithm, SignatureAlgorithm};
use segl::xml::dsig::{verify_enveloped, SignerKey};
use segl::xml::Document;
use segl_bench::fixture::PrivateState;
use segl_bench::pool::RequestPool;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("segl-bench-request");
    let state = PrivateState::create(&dir).expect("private SoftHSM state");
    let config = state.config;
    let client = DevClient::open(&config).expect("development client");
    let key = StsKey::open(&config.hsm).expect("STS key");
    let limits = config.limits.to_limits();
    // The request path's own cost: the audit record is handed to the writer and not waited for.
    // With `sync` durability (the default) each lone request would also wait out a commit delay
    // and an fdatasync (milliseconds on most disks), which `whole_request_audit_sync` shows.
    let mut async_config = config.clone();
    async_config.audit.durability = Durability::Async;
    let ctx = core_context(&key, 0, async_config);
    let mut sync_config = config;
    sync_config.audit.durability = Durability::Sync;
    sync_config.audit.path = dir.join("audit-sync.jsonl");
    let sync_ctx = core_context(&key, 1, sync_config);

    let body = Bytes::from(client.request(&RequestOptions::new(CardType::User)).expect("request"));
    let doc = Document::parse(body.clone(), &limits).expect("parse");
    let card = doc.by_id("IDCard").expect("the ID card");
    let signature = doc.child(card, ns::DS, "Signature").expect("its signature");
    let verified = verify_enveloped(&doc, signature).expect("verifies");
    let now = jiff::Timestamp::now();
    let client_card = IdCard::from_element(&doc, card).expect("card");
    let credential = ctx.signer.credential();

    let mut g = c.benchmark_group("dgws");
    g.sample_size(30);
    g.bench_function("parse", |b| b.iter(|| Document::parse(body.clone(), &limits).map(|d| d.root())));
    g.bench_function("c14n_sha1_card", |b| {
        b.iter(|| {
            let mut h = DigestAlgorithm::Sha1.hasher();
            c14n::exclusive(&doc, card, Some(signature), &[], &mut h);
            h.finish()
        })
    });
    g.bench_function("verify_signature", |b| b.iter(|| verify_enveloped(&doc, signature).is_ok()));
    // The floor of any STS that checks the card: the RSA public-key operation alone, on the
    // card's own canonical SignedInfo and signature, the key parsed once (as segl's per-core
    // signer cache keeps it).
    let signed_info = doc.child(signature, ns::DS, "SignedInfo").expect("SignedInfo");
    let signed_info = c14n::exclusive_to_vec(&doc, signed_info, None, &[]);
    let value = doc.child(signature, ns::DS, "SignatureValue").expect("SignatureValue");
    let value: String = doc.text(value).split_whitespace().collect();
    let value = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value).expect("base64");
    let key = SignerKey::from_certificate(&verified.certificate_der, verified.algorithm).expect("key");
    assert!(key.verify(2048, &signed_info, &value).is_ok(), "the card's signature verifies");
    g.bench_function("rsa_verify_only", |b| b.iter(|| key.verify(2048, &signed_info, &value).is_ok()));
    g.bench_function("validate_certificate_chain", |b| {
        b.iter(|| ctx.shared.policy().trust.validate(&verified.certificate_der, now).is_ok())
    });
    g.bench_function("read_card", |b| b.iter(|| IdCard::from_element(&doc, card).is_ok()));
    g.bench_function("build_emit_sts_card", |b| {
        b.iter(|| {
            let unsigned =
                client_card.prepare_signature(SignatureAlgorithm::RsaSha1, &credential.certificate_b64);
            unsigned.finish(&[0u8; 256]).len()
        })
    });
    let digest = DigestAlgorithm::Sha1.digest(b"SignedInfo");
    g.bench_function("hsm_sign_softhsm", |b| {
        b.iter(|| block_on(ctx.signer.sign_digest(&credential, DigestAlgorithm::Sha1, &digest, None)).is_ok())
    });
    // Distinct requests (cards and message ids), so no cache that may land can flatter it.
    let pool = RequestPool::build(&client, 64, 2, &|| {}).expect("request pool").0;
    for (name, ctx) in [("whole_request", &ctx), ("whole_request_audit_sync", &sync_ctx)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let outcome = block_on(segl::exchange::serve(
                    ctx,
                    "/sts/services/NewSecurityTokenService",
                    pool.take(),
                    None,
                    None,
                ));
                assert_eq!(outcome.status, 200, "{}", String::from_utf8_lossy(&outcome.body));
            })
        });
    }
    g.finish();
}

/// A core's exchange context on `config`, its batched signer's driver signing on a thread of
/// its own (each iteration waits for its signature through the signer's channel).
fn core_context(key: &StsKey, core: usize, config: segl::config::Config) -> CoreContext {
    let shared = Arc::new(Shared::from_config(Arc::new(config)).expect("trust, roles, audit"));
    let (signer, driver) = key.core_signer(core).expect("core signer");
    std::thread::spawn(move || block_on(driver.run()));
    CoreContext::new(shared, signer)
}

criterion_group!(benches, bench);
criterion_main!(benches);
