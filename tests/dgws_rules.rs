//! The DGWS rule set (issue "DGWS issuance complete"): each rule, accepted and refused, against
//! the running server. The README's "DGWS rules" table points here.

mod common;

use bytes::Bytes;
use common::{env, Server};
use jiff::SignedDuration;
use segl::dev::client::{CertHash, RequestOptions};
use segl::dev::pki::Identity;
use segl::token::{ns, CardType, IdCard};
use segl::xml::{Document, Limits};

const NEW: &str = "/sts/services/NewSecurityTokenService";
const NATIONAL_ROLE: &str = "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer";
const OTHER_ROLE: &str = "urn:dk:healthcare:national-federation-role:code:41003:value:PlejeAssR3";

fn request(opts: &RequestOptions) -> Vec<u8> {
    env().client.request(opts).expect("build request")
}

fn user() -> RequestOptions {
    RequestOptions::new(CardType::User)
}

/// The issued card of a success response (each success is also checked with xmlsec1 and the
/// seal schema in `dgws_e2e`'s `issued_card`; here the card's content matters).
fn issued(reply: &common::Reply) -> IdCard {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sts = env().pki("sts-signing");
    common::xmlsec_verify(&reply.body, &sts).unwrap_or_else(|e| panic!("xmlsec1: {e}"));
    if let Some(r) = common::xmllint_schema(&reply.body, "soap-specialized.xsd") {
        r.unwrap_or_else(|e| panic!("schema: {e}"));
    }
    let doc = Document::parse(Bytes::copy_from_slice(&reply.body), &Limits::default()).unwrap();
    let card = doc.by_id("IDCard").unwrap();
    IdCard::from_element(&doc, card).unwrap()
}

/// The faultcode and faultstring of a fault response (shape: faultcode, faultstring, faultactor).
fn fault(reply: &common::Reply) -> (String, String) {
    assert_eq!(reply.status, 500, "{}", reply.text());
    let doc = Document::parse(Bytes::copy_from_slice(&reply.body), &Limits::default()).unwrap();
    let f = doc.child(doc.root(), ns::SOAP, "Body").and_then(|b| doc.child(b, ns::SOAP, "Fault")).unwrap();
    let kids: Vec<_> = doc.children(f).collect();
    assert_eq!(
        kids.iter().map(|&k| doc.local_name(k)).collect::<Vec<_>>(),
        ["faultcode", "faultstring", "faultactor"]
    );
    if let Some(r) = common::xmllint_schema(&reply.body, "soap-specialized.xsd") {
        r.unwrap_or_else(|e| panic!("fault schema: {e}"));
    }
    (doc.text(kids[0]).into_owned(), doc.text(kids[1]).into_owned())
}

fn assert_refused(reply: &common::Reply, code: &str, mentions: &str) {
    let (faultcode, faultstring) = fault(reply);
    assert_eq!(faultcode, code, "faultstring: {faultstring}");
    assert!(faultstring.contains(mentions), "faultstring {faultstring:?} should mention {mentions:?}");
}

// ---- certificates: revocation, key usage, organisation ----

#[test]
fn revoked_certificate_is_refused_and_others_from_the_same_ca_are_not() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::RevokedMoces);
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidcertificate", "revoked");
    issued(&server.post(NEW, &request(&user())));
}

/// A private CRL directory for one server, starting with the development CRL.
fn private_crl_dir(name: &str) -> std::path::PathBuf {
    let dir = env().dir.join(format!("crl-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(env().dir.join("crl/dev-issuing-ca.crl"), dir.join("dev-issuing-ca.crl")).unwrap();
    dir
}

fn with_crl_dir<'a>(dir: &'a std::path::Path, stale: &str) -> impl FnOnce(&mut String) + 'a {
    let stale = stale.to_owned();
    move |text: &mut String| {
        *text = text
            .replace(
                &format!("crl_dir = \"{}\"", env().dir.join("crl").display()),
                &format!("crl_dir = \"{}\"", dir.display()),
            )
            .replace("stale_crl = \"hard\"", &format!("stale_crl = \"{stale}\""));
    }
}

#[test]
fn a_new_crl_is_picked_up_while_serving() {
    let dir = private_crl_dir("reload");
    let server = Server::start_with(with_crl_dir(&dir, "hard"));
    // Enough requests (each on a new connection) that every core has validated the certificate
    // and answers it from its cache: the revocation must reach cached validations too.
    for _ in 0..8 {
        issued(&server.post(NEW, &request(&user())));
    }
    // Each core validates in full once; every later request is a hit (published each second).
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let hits =
        common::metric_sum(&server.metrics(), "segl_signer_certificate_cache_total", &["result=\"hit\""]);
    assert!(hits >= 6.0, "8 requests on 2 cores: at least 6 cache hits, got {hits}");
    let now = time::OffsetDateTime::now_utc();
    let crl = env()
        .client
        .issue_crl(
            &[Identity::RevokedMoces, Identity::Moces],
            now - time::Duration::minutes(1),
            now + time::Duration::days(1),
        )
        .unwrap();
    std::fs::write(dir.join("dev-issuing-ca.crl.tmp"), crl).unwrap();
    std::fs::rename(dir.join("dev-issuing-ca.crl.tmp"), dir.join("dev-issuing-ca.crl")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = server.post(NEW, &request(&user()));
        if reply.status == 500 {
            assert_refused(&reply, "dgws:invalidcertificate", "revoked");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new CRL was not picked up within 10 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for _ in 0..8 {
        assert_refused(&server.post(NEW, &request(&user())), "dgws:invalidcertificate", "revoked");
    }
    assert!(server.log().contains("CRLs reloaded"), "{}", server.log());
}

/// A CRL of a CA no configuration names, made in memory.
fn stranger_crl() -> Vec<u8> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "Stranger CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let issuer = rcgen::Issuer::new(params, KeyPair::generate().unwrap());
    let now = time::OffsetDateTime::now_utc();
    rcgen::CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(1),
        crl_number: rcgen::SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap()
    .der()
    .to_vec()
}

/// Waits up to 10 s for the server's log to contain `text`; returns the first line that does.
fn log_line(server: &Server, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(line) = server.log().lines().find(|l| l.contains(text)) {
            return line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no {text:?} in the log:\n{}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_crl_no_configured_ca_issued_is_refused_by_the_watcher_a_reload_and_config_check() {
    let dir = private_crl_dir("stranger");
    let server = Server::start_with(with_crl_dir(&dir, "hard"));
    let stranger = dir.join("stranger.crl");
    std::fs::write(dir.join("stranger.tmp"), stranger_crl()).unwrap();
    std::fs::rename(dir.join("stranger.tmp"), &stranger).unwrap();
    let named =
        |text: &str| text.contains(&stranger.display().to_string()) && text.contains("CN=Stranger CA");

    // The watcher keeps the CRLs it had: revoked stays revoked, the rest is served.
    let line = log_line(&server, "keeping the previous CRLs");
    assert!(named(&line), "{line}");
    let mut revoked = user();
    revoked.identity = Some(Identity::RevokedMoces);
    assert_refused(&server.post(NEW, &request(&revoked)), "dgws:invalidcertificate", "revoked");
    issued(&server.post(NEW, &request(&user())));

    // A reload of the same file is refused for the same reason.
    server.signal("HUP");
    let line = log_line(&server, "configuration refused");
    assert!(named(&line), "{line}");
    issued(&server.post(NEW, &request(&user())));

    // `segl config check` refuses the configuration as serving does, naming file and issuer...
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_segl"))
            .args(["config", "check"])
            .arg(server.config_path())
            .output()
            .unwrap()
    };
    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && named(&stderr), "{stderr}");
    // ...and accepts it once the stranger's CRL is gone.
    std::fs::remove_file(&stranger).unwrap();
    let out = check();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn stale_crl_dir(name: &str) -> std::path::PathBuf {
    let dir = private_crl_dir(name);
    let now = time::OffsetDateTime::now_utc();
    let crl = env()
        .client
        .issue_crl(&[Identity::RevokedMoces], now - time::Duration::days(10), now - time::Duration::days(1))
        .unwrap();
    std::fs::write(dir.join("dev-issuing-ca.crl"), crl).unwrap();
    dir
}

#[test]
fn a_stale_crl_is_a_hard_failure_by_default() {
    let dir = stale_crl_dir("stale-hard");
    let server = Server::start_with(with_crl_dir(&dir, "hard"));
    assert_refused(&server.post(NEW, &request(&user())), "dgws:invalidcertificate", "out of date");
}

#[test]
fn a_stale_crl_can_be_a_soft_failure() {
    let dir = stale_crl_dir("stale-soft");
    let server = Server::start_with(with_crl_dir(&dir, "soft"));
    issued(&server.post(NEW, &request(&user())));
    // Revoked stays revoked with a stale CRL.
    let mut opts = user();
    opts.identity = Some(Identity::RevokedMoces);
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidcertificate", "revoked");
}

#[test]
fn a_certificate_whose_key_usage_forbids_signing_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::EnciphermentOnlyMoces);
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidcertificate", "key usage");
}

#[test]
fn the_care_provider_must_be_the_certificates_organisation() {
    let server = Server::start();
    let mut opts = user();
    opts.cvr = "29190909".into();
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidcertificate", "CVR 20921897");
}

#[test]
fn oces3_employee_certificates_sign_user_cards() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::Oces3Employee);
    let card = issued(&server.post(NEW, &request(&opts)));
    assert!(card.name_id.value.contains("SERIALNUMBER=UI:DK-E:G:"), "{}", card.name_id.value);
}

// ---- OCESCertHash ----

#[test]
fn an_absent_cert_hash_is_computed_and_a_wrong_one_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.cert_hash = CertHash::Omit;
    let card = issued(&server.post(NEW, &request(&opts)));
    assert_eq!(card.ocess_cert_hash.map(|h| h.len()), Some(28), "SHA-1 of the client certificate");

    let mut opts = user();
    opts.edit = Some(|card| card.ocess_cert_hash = Some("VZx0Zb5RbFvLgPchoRXta2KCiHY=".into()));
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidcertificate", "OCESCertHash");
}

// ---- levels and card types ----

#[test]
fn level_3_user_card_signed_by_a_system_is_issued() {
    let server = Server::start();
    let mut opts = user();
    opts.level = Some(3);
    opts.identity = Some(Identity::Voces);
    let card = issued(&server.post(NEW, &request(&opts)));
    assert_eq!((card.card_type, card.authentication_level), (CardType::User, 3));
}

#[test]
fn level_4_needs_an_employee_certificate_and_a_user_card() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::Foces);
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidcertificate", "employee certificate");
    let mut opts = RequestOptions::new(CardType::System);
    opts.level = Some(4);
    opts.identity = Some(Identity::Moces);
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:authenticationlevel", "system card");
}

#[test]
fn levels_1_and_2_are_refused_by_default() {
    let server = Server::start();
    for level in [1, 2] {
        let mut opts = user();
        opts.level = Some(level);
        opts.sign = false;
        opts.cert_hash = CertHash::Omit;
        assert_refused(
            &server.post(NEW, &request(&opts)),
            "dgws:authenticationlevel",
            &format!("level {level}"),
        );
    }
}

#[test]
fn levels_1_and_2_can_be_issued_by_policy() {
    let server = Server::start_with(|t| *t = t.replace("low_levels = \"refuse\"", "low_levels = \"issue\""));
    let mut opts = user();
    opts.level = Some(1);
    opts.sign = false;
    opts.cert_hash = CertHash::Omit;
    let card = issued(&server.post(NEW, &request(&opts)));
    assert_eq!(card.authentication_level, 1);
    assert!(!card.holder_of_key && card.ocess_cert_hash.is_none());
    assert_eq!(card.name_id.format, "medcom:cprnumber", "no certificate to describe");
}

#[test]
fn an_unsigned_level_4_card_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.sign = false;
    assert_refused(
        &server.post(NEW, &request(&opts)),
        "dgws:invalidsignature",
        "must carry its ds:Signature",
    );
}

#[test]
fn a_card_missing_a_required_attribute_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.edit = Some(|card| card.system.it_system_name.clear());
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidheader", "medcom:ITSystemName");
    let mut opts = user();
    opts.edit = Some(|card| card.user.as_mut().unwrap().surname.clear());
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:invalidheader", "medcom:UserSurName");
}

// ---- validity window ----

#[test]
fn clock_skew_is_tolerated_within_the_configured_bound() {
    let server = Server::start();
    let mut opts = user();
    // IssueInstant = NotBefore = 2 min ahead of the STS's clock; the skew is 5 min.
    opts.not_before_offset = SignedDuration::from_mins(2);
    issued(&server.post(NEW, &request(&opts)));
    let strict = Server::start_with(|t| *t = t.replace("clock_skew_secs = 300", "clock_skew_secs = 0"));
    assert_refused(&strict.post(NEW, &request(&opts)), "dgws:idcardtooold", "not valid before");
}

#[test]
fn a_window_longer_than_24_hours_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.lifetime = SignedDuration::from_hours(25);
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:idcardtooold", "24 hours");
}

#[test]
fn a_card_issued_in_the_future_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.edit = Some(|card| {
        card.issue_instant = card.issue_instant.saturating_add(SignedDuration::from_hours(1)).unwrap()
    });
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:idcardtooold", "issued in the future");
}

// ---- replay ----

#[test]
fn a_replayed_message_id_is_refused_and_other_clients_may_use_it() {
    let server = Server::start();
    let mut opts = user();
    opts.message_id = Some("AAABcUSVr0hCh7tm8QcFy1NPU0k=".into());
    issued(&server.post(NEW, &request(&opts)));
    // A new card with the same message id from the same client: a replay.
    let reply = server.post(NEW, &request(&opts));
    assert_refused(&reply, "wsa:duplicatemessageid", "AAABcUSVr0hCh7tm8QcFy1NPU0k=");
    assert!(reply.text().contains("xmlns:wsa="), "the wsa prefix is bound");
    // The same id from another client is that client's own.
    let mut other = RequestOptions::new(CardType::System);
    other.message_id = opts.message_id.clone();
    issued(&server.post(NEW, &request(&other)));
}

#[test]
fn the_replay_cache_is_shared_by_all_cores() {
    let server = Server::start();
    // Each request opens a new connection; SO_REUSEPORT spreads them over both cores, so
    // eight repeats land on both cores with near certainty.
    let mut opts = user();
    opts.message_id = Some("shared-by-cores".into());
    issued(&server.post(NEW, &request(&opts)));
    for _ in 0..8 {
        assert_refused(&server.post(NEW, &request(&opts)), "wsa:duplicatemessageid", "shared-by-cores");
    }
}

// ---- national roles ----

#[test]
fn a_national_role_held_in_the_register_is_issued() {
    let server = Server::start();
    let mut opts = user();
    opts.role = NATIONAL_ROLE.into();
    let card = issued(&server.post(NEW, &request(&opts)));
    assert_eq!(card.user.unwrap().role.as_deref(), Some(NATIONAL_ROLE));
}

#[test]
fn a_national_role_not_held_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.role = OTHER_ROLE.into();
    assert_refused(
        &server.post(NEW, &request(&opts)),
        "dgws:notauthorized",
        "does not hold national role 41003",
    );
}

#[test]
fn an_undefined_national_role_is_refused() {
    let server = Server::start();
    let mut opts = user();
    opts.role = "urn:dk:healthcare:national-federation-role:code:99999:value:Nope".into();
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:notauthorized", "not a defined national role");
}

#[test]
fn a_trusted_cvr_claims_national_roles_without_the_register() {
    let server = Server::start();
    let mut opts = user();
    opts.identity = Some(Identity::RegionMoces);
    opts.cvr = "29190909".into();
    opts.role = OTHER_ROLE.into();
    let card = issued(&server.post(NEW, &request(&opts)));
    assert_eq!(card.user.unwrap().role.as_deref(), Some(OTHER_ROLE));
    // Without the trusted CVR the same claim is checked against the register, and refused.
    let untrusted = Server::start_with(|t| {
        *t = t.replace("trusted_cvrs = [{ cvr = \"29190909\", endpoint = \"STS\" }]", "trusted_cvrs = []")
    });
    assert_refused(&untrusted.post(NEW, &request(&opts)), "dgws:notauthorized", "29190909");
}

#[test]
fn a_national_role_without_cpr_cannot_be_validated() {
    let server = Server::start();
    let mut opts = user();
    opts.role = NATIONAL_ROLE.into();
    opts.cpr = None;
    assert_refused(&server.post(NEW, &request(&opts)), "dgws:notauthorized", "no CPR");
}
