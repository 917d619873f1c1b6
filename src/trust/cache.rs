//! Per-core memory of signer certificates already validated, with their parsed keys.
//!
//! A system signs many cards with one VOCES/FOCES certificate, and a user's MOCES signs every
//! card of their working day: path validation (two RSA verifications and a CRL lookup) and key
//! parsing need not be repeated for each. An entry is reused only while everything its
//! validation depended on still holds:
//!
//! - the same certificate bytes (the map is keyed by the whole DER, compared byte for byte);
//! - the same policy (a reload may change anchors or revocation settings) and the same CRL
//!   set (a new CRL may revoke it): either change empties the cache;
//! - the request time is before the chain's first notAfter and, when a stale CRL fails
//!   validation, before the earliest CRL nextUpdate ([`TrustStore::trusted_until`]);
//! - at most [`MAX_AGE`] since it was validated, so nothing is remembered indefinitely.
//!
//! Refusals are never remembered: a certificate that failed is validated again next time (it
//! may have become valid, and a refusal costs the client, not the HSM). Each core has its own
//! cache: nothing is shared, nothing is locked.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::crl::CrlSet;
use super::{SignerCertificate, TrustError, TrustStore};
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::dsig::{DsigError, ParseEachTime, ParsedKeys, SignerKeys};

/// The longest an entry is reused, whatever the certificate's own validity.
pub const MAX_AGE: SignedDuration = SignedDuration::from_mins(10);

/// One validated certificate.
struct Entry {
    signer: Arc<SignerCertificate>,
    reusable_until: Timestamp,
    /// Parsed on first use, one per signature algorithm.
    keys: ParsedKeys,
}

/// What the entries were validated under; a change empties the cache.
struct Generation {
    policy_version: u64,
    /// Held (not just its address) so the comparison cannot be fooled by a reused allocation.
    crls: Arc<CrlSet>,
}

/// Hits and misses since the core started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SignerCacheStats {
    /// Validations answered from the cache.
    pub hits: u64,
    /// Validations done in full.
    pub misses: u64,
}

/// A core's validated signer certificates (see the module documentation).
#[derive(Default)]
pub struct SignerCache {
    generation: Option<Generation>,
    entries: HashMap<Rc<[u8]>, Entry>,
    /// Insertion order, for evicting the oldest when full.
    order: VecDeque<Rc<[u8]>>,
    stats: SignerCacheStats,
}

impl SignerCache {
    /// Forgets everything validated under another policy or another CRL set.
    pub fn refresh(&mut self, policy_version: u64, crls: Arc<CrlSet>) {
        let current = self
            .generation
            .as_ref()
            .is_some_and(|g| g.policy_version == policy_version && Arc::ptr_eq(&g.crls, &crls));
        if !current {
            self.entries.clear();
            self.order.clear();
            self.generation = Some(Generation { policy_version, crls });
        }
    }

    /// Validates `der` at `now` with `store`, or answers from an earlier validation that still
    /// holds. Keeps at most `capacity` entries (0: remember nothing).
    pub fn validate(
        &mut self,
        store: &TrustStore,
        der: &[u8],
        now: Timestamp,
        capacity: usize,
    ) -> Result<Arc<SignerCertificate>, TrustError> {
        if let Some(entry) = self.entries.get(der) {
            if now < entry.reusable_until {
                self.stats.hits += 1;
                return Ok(entry.signer.clone());
            }
            self.entries.remove(der);
        }
        self.stats.misses += 1;
        let signer = Arc::new(store.validate(der, now)?);
        if capacity > 0 {
            let reusable_until =
                store.trusted_until(&signer).min(now.checked_add(MAX_AGE).unwrap_or(Timestamp::MAX));
            self.insert(
                der,
                Entry { signer: signer.clone(), reusable_until, keys: Default::default() },
                capacity,
            );
        }
        Ok(signer)
    }

    fn insert(&mut self, der: &[u8], entry: Entry, capacity: usize) {
        while self.entries.len() >= capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            self.entries.remove(&oldest);
        }
        // A key in `order` whose entry was replaced or expired is skipped when it comes up.
        if self.order.len() >= capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
        let key: Rc<[u8]> = Rc::from(der);
        self.order.push_back(key.clone());
        self.entries.insert(key, entry);
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> SignerCacheStats {
        self.stats
    }
}

/// Signature verification with the cached key of a remembered certificate (parsed once per
/// algorithm); any other certificate's key is parsed for the one verification.
impl SignerKeys for SignerCache {
    fn verify(
        &self,
        certificate_der: &[u8],
        algorithm: SignatureAlgorithm,
        min_rsa_bits: usize,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), DsigError> {
        match self.entries.get(certificate_der) {
            Some(entry) => entry.keys.verify(certificate_der, algorithm, min_rsa_bits, message, signature),
            None => ParseEachTime.verify(certificate_der, algorithm, min_rsa_bits, message, signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{StaleCrlPolicy, TrustConfig};
    use arc_swap::ArcSwap;
    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
        KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber, SigningKey,
    };
    use std::path::PathBuf;
    use time::{Duration as Span, OffsetDateTime};

    /// A CA (ECDSA, quick to make) and RSA leaves it issues, made in memory: the cache is
    /// tested against real path validation, with no HSM involved.
    struct Pki {
        dir: PathBuf,
        ca: Issuer<'static, KeyPair>,
        anchors: PathBuf,
    }

    struct Leaf {
        der: Vec<u8>,
        key: KeyPair,
        serial: Vec<u8>,
    }

    impl Pki {
        fn new(name: &str) -> Pki {
            let dir = std::env::temp_dir().join(format!("segl-signer-cache-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("crl")).unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, format!("cache test CA {name}"));
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let anchors = dir.join("ca.pem");
            std::fs::write(&anchors, cert.pem()).unwrap();
            Pki { dir, ca: Issuer::new(params, key), anchors }
        }

        fn leaf(&self, serial: u8, not_after: OffsetDateTime) -> Leaf {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, format!("leaf {serial}"));
            params.serial_number = Some(SerialNumber::from_slice(&[serial]));
            params.not_before = OffsetDateTime::now_utc() - Span::days(1);
            params.not_after = not_after;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
            let der = params.signed_by(&key, &self.ca).unwrap().der().to_vec();
            Leaf { der, key, serial: vec![serial] }
        }

        fn store(&self, stale_crl: StaleCrlPolicy) -> TrustStore {
            let cfg = TrustConfig {
                anchors: vec![self.anchors.clone()],
                intermediates: Vec::new(),
                crl_dir: Some(self.dir.join("crl")),
                stale_crl,
                require_crl: false,
                signer_cache_entries: 16,
            };
            TrustStore::from_config(&cfg, Arc::new(ArcSwap::from_pointee(CrlSet::default()))).unwrap()
        }

        /// Writes a CRL revoking `revoked` and returns the store's CRLs as loaded from it.
        fn publish_crl(
            &self,
            store: &TrustStore,
            revoked: &[&Leaf],
            next_update: OffsetDateTime,
        ) -> Arc<CrlSet> {
            let now = OffsetDateTime::now_utc();
            let params = CertificateRevocationListParams {
                this_update: now - Span::hours(1),
                next_update,
                crl_number: SerialNumber::from_slice(&[now.unix_timestamp() as u8]),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .iter()
                    .map(|l| RevokedCertParams {
                        serial_number: SerialNumber::from_slice(&l.serial),
                        revocation_time: now - Span::minutes(1),
                        reason_code: Some(RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            };
            let crl = params.signed_by(&self.ca).unwrap();
            std::fs::write(self.dir.join("crl/ca.crl"), crl.der()).unwrap();
            let set = Arc::new(store.load_crls(&self.dir.join("crl")).unwrap());
            store.crls.store(set.clone());
            set
        }
    }

    fn now() -> Timestamp {
        Timestamp::now()
    }

    fn in_days(days: i64) -> OffsetDateTime {
        OffsetDateTime::now_utc() + Span::days(days)
    }

    #[test]
    fn a_second_validation_of_the_same_certificate_is_answered_from_the_cache() {
        let pki = Pki::new("hit");
        let store = pki.store(StaleCrlPolicy::Hard);
        let leaf = pki.leaf(1, in_days(30));
        let mut cache = SignerCache::default();
        cache.refresh(1, store.crls());
        let first = cache.validate(&store, &leaf.der, now(), 16).unwrap();
        let second = cache.validate(&store, &leaf.der, now(), 16).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(cache.stats(), SignerCacheStats { hits: 1, misses: 1 });
    }

    #[test]
    fn a_new_policy_or_a_new_crl_set_empties_the_cache() {
        let pki = Pki::new("generation");
        let store = pki.store(StaleCrlPolicy::Hard);
        let leaf = pki.leaf(1, in_days(30));
        let mut cache = SignerCache::default();
        cache.refresh(1, store.crls());
        cache.validate(&store, &leaf.der, now(), 16).unwrap();
        cache.refresh(1, store.crls());
        assert_eq!(cache.len(), 1, "same policy, same CRLs: kept");
        cache.refresh(2, store.crls());
        assert!(cache.is_empty(), "a reload empties the cache");
        cache.validate(&store, &leaf.der, now(), 16).unwrap();
        let unrelated = pki.leaf(2, in_days(30));
        let crls = pki.publish_crl(&store, &[&unrelated], in_days(1));
        cache.refresh(2, crls);
        assert!(cache.is_empty(), "a new CRL set empties the cache");
    }

    #[test]
    fn a_certificate_revoked_after_it_was_cached_is_refused() {
        let pki = Pki::new("revoked");
        let store = pki.store(StaleCrlPolicy::Hard);
        let leaf = pki.leaf(7, in_days(30));
        let mut cache = SignerCache::default();
        cache.refresh(1, store.crls());
        cache.validate(&store, &leaf.der, now(), 16).unwrap();
        let crls = pki.publish_crl(&store, &[&leaf], in_days(1));
        // What the request path does first with every card.
        cache.refresh(1, crls);
        assert_eq!(cache.validate(&store, &leaf.der, now(), 16).unwrap_err(), TrustError::Revoked);
    }

    #[test]
    fn an_entry_is_not_reused_past_the_certificate_expiry_nor_past_the_maximum_age() {
        let pki = Pki::new("expiry");
        let store = pki.store(StaleCrlPolicy::Hard);
        let short = pki.leaf(1, OffsetDateTime::now_utc() + Span::minutes(5));
        let mut cache = SignerCache::default();
        cache.refresh(1, store.crls());
        cache.validate(&store, &short.der, now(), 16).unwrap();
        let later = now() + SignedDuration::from_mins(6);
        assert_eq!(cache.validate(&store, &short.der, later, 16).unwrap_err(), TrustError::Expired);

        let long = pki.leaf(2, in_days(30));
        cache.validate(&store, &long.der, now(), 16).unwrap();
        let misses = cache.stats().misses;
        cache.validate(&store, &long.der, now() + MAX_AGE + SignedDuration::from_secs(1), 16).unwrap();
        assert_eq!(cache.stats().misses, misses + 1, "validated again after MAX_AGE");
    }

    #[test]
    fn with_hard_stale_crls_an_entry_is_not_reused_past_the_crl_next_update() {
        let pki = Pki::new("stale");
        let store = pki.store(StaleCrlPolicy::Hard);
        let leaf = pki.leaf(3, in_days(30));
        let crls = pki.publish_crl(&store, &[], OffsetDateTime::now_utc() + Span::minutes(2));
        let mut cache = SignerCache::default();
        cache.refresh(1, crls);
        cache.validate(&store, &leaf.der, now(), 16).unwrap();
        let after = now() + SignedDuration::from_mins(3);
        assert_eq!(cache.validate(&store, &leaf.der, after, 16).unwrap_err(), TrustError::StaleCrl);
    }

    #[test]
    fn refusals_are_not_remembered_and_capacity_is_respected() {
        let pki = Pki::new("capacity");
        let other = Pki::new("capacity-other");
        let store = pki.store(StaleCrlPolicy::Hard);
        let foreign = other.leaf(1, in_days(30));
        let mut cache = SignerCache::default();
        cache.refresh(1, store.crls());
        for _ in 0..2 {
            assert!(matches!(
                cache.validate(&store, &foreign.der, now(), 16),
                Err(TrustError::UntrustedIssuer(_))
            ));
        }
        assert_eq!(cache.stats(), SignerCacheStats { hits: 0, misses: 2 });
        assert!(cache.is_empty());

        let leaves: Vec<Leaf> = (1..=3).map(|i| pki.leaf(i, in_days(30))).collect();
        for leaf in &leaves {
            cache.validate(&store, &leaf.der, now(), 2).unwrap();
        }
        assert_eq!(cache.len(), 2, "the oldest entry made room");
        cache.validate(&store, &leaves[0].der, now(), 0).unwrap();
        assert_eq!(cache.len(), 2, "capacity 0 remembers nothing new");
    }

    #[test]
    fn cached_keys_verify_signatures_exactly_as_freshly_parsed_ones() {
        let pki = Pki::new("keys");
        let store = pki.store(StaleCrlPolicy::Hard);
        let leaf = pki.leaf(1, in_days(30));
        let stranger = pki.leaf(2, in_days(30));
        let mut cache = SignerCache::default();
        cache.refresh(1, store.crls());
        cache.validate(&store, &leaf.der, now(), 16).unwrap();
        let message = b"<ds:SignedInfo>...</ds:SignedInfo>";
        let signature = leaf.key.sign(message).unwrap();
        let alg = SignatureAlgorithm::RsaSha256;
        for _ in 0..2 {
            assert_eq!(cache.verify(&leaf.der, alg, 2048, message, &signature), Ok(()));
        }
        assert_eq!(
            cache.verify(&leaf.der, alg, 2048, b"<ds:SignedInfo>..!</ds:SignedInfo>", &signature),
            Err(DsigError::SignatureValueInvalid)
        );
        assert_eq!(
            cache.verify(&leaf.der, SignatureAlgorithm::RsaSha1, 2048, message, &signature),
            Err(DsigError::SignatureValueInvalid),
            "a key cached for one algorithm does not verify another"
        );
        assert_eq!(
            cache.verify(&leaf.der, alg, 4096, message, &signature),
            Err(DsigError::WeakKey { bits: 2048, minimum: 4096 })
        );
        // A certificate the cache does not hold: the key is the one it certifies, not a cached one.
        assert_eq!(
            cache.verify(&stranger.der, alg, 2048, message, &signature),
            Err(DsigError::SignatureValueInvalid)
        );
        let theirs = stranger.key.sign(message).unwrap();
        assert_eq!(cache.verify(&stranger.der, alg, 2048, message, &theirs), Ok(()));
    }
}
