//! trifork/unsealed against segl's OIO exchanges. Sosi2OIOSaml: unsealed gets a card at
//! NewSecurityTokenService, exchanges it (`IdCard.exchangeToOIOSAMLToken`), decrypts the
//! EncryptedAssertion with the audience's key (it can decrypt only aes128-cbc + rsa-1_5, the
//! default), reads the OIOSAML 2 attributes, checks the times and the assertion's signature
//! itself; xmlsec1 then checks that signature against the STS certificate alone (unsealed
//! trusts any certificate in KeyInfo).
//!
//! Skipped (with a message) when the unsealed sources or `javac` are missing.

mod common;
mod unsealed_support;

use common::Server;
use segl::dev::pki::{Identity, DEV_CPR, DEV_CVR};
use unsealed_support::Unsealed;

const NATIONAL_ROLE: &str = "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer";

/// unsealed gets a card for the development user at NewSecurityTokenService, exchanges it at
/// Sosi2OIOSaml for the development audience (whose key is the VOCES key store's) and writes
/// the decrypted assertion to `out`.
fn sosi2oiosaml(unsealed: &Unsealed, sts: &str, out: &std::path::Path) -> unsealed_support::DriverRun {
    let keystore = unsealed.keystore(Identity::Moces);
    let audience_keystore = unsealed.keystore(Identity::Voces);
    unsealed.run(
        "sosi2oiosaml",
        &[
            "--sts",
            sts,
            "--keystore",
            keystore.to_str().unwrap(),
            "--cpr",
            DEV_CPR,
            "--role",
            NATIONAL_ROLE,
            "--system-name",
            "Testby Journal",
            "--audience",
            segl::dev::audience::DEV_AUDIENCE,
            "--audience-keystore",
            audience_keystore.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

#[test]
fn unsealed_exchanges_its_card_for_an_oiosaml_assertion_it_decrypts_and_validates() {
    let Some(unsealed) = Unsealed::get() else { return };
    // The audience encrypts to the VOCES certificate whose key unsealed holds in software.
    let audience_cert = unsealed.certificate(Identity::Voces);
    let server = Server::start_with(|c| {
        let dev_cert = format!("{}", common::env().dir.join("pki").join("dev-audience.pem").display());
        assert!(c.contains(&dev_cert), "the embedded configuration names the development audience");
        *c = c.replace(&dev_cert, audience_cert.to_str().unwrap());
    });
    let sts = format!("http://{}", server.addr);
    let out = unsealed.dir.join("oiosaml-token.xml");
    let run = sosi2oiosaml(unsealed, &sts, &out);
    assert_eq!(run.get("status"), "ok", "{run:?}\nserver log:\n{}", server.log());
    assert_eq!(run.get("encrypted"), "true", "{run:?}");
    assert_eq!(run.get("token_validated"), "true", "{run:?}");
    assert_eq!(run.get("spec_version"), "DK-SAML-2.0");
    assert_eq!(run.get("common_name"), "Lars Larsen");
    assert_eq!(run.get("cpr"), DEV_CPR);
    assert_eq!(run.get("cvr"), DEV_CVR);
    assert_eq!(run.get("audience"), segl::dev::audience::DEV_AUDIENCE);
    let token = std::fs::read(&out).unwrap();
    let verified = {
        let args = common::xmlsec_assertion_args(&common::env().pki("sts-signing"));
        common::xmlsec(&args.iter().map(String::as_str).collect::<Vec<_>>(), &token)
    };
    assert!(verified.is_ok(), "{verified:?}\n{}", String::from_utf8_lossy(&token));
}

#[test]
fn unsealed_exchanges_a_bootstrap_token_for_a_user_card_at_bst2sosi() {
    let Some(unsealed) = Unsealed::get() else { return };
    // unsealed's BootstrapTokenIssuer always names issuer https://idp.test.nspop.dk (an OIOH3BST
    // local IdP) and audience https://sts.sosi.dk/; here the FOCES identity plays that IdP, and
    // the VOCES identity is the system that holds the token and signs the request.
    let idp_cert = unsealed.certificate(Identity::Foces);
    let server = Server::start_with(|c| {
        c.push_str(&format!(
            "\n[[bst2sosi.issuer]]\nissuer = \"https://idp.test.nspop.dk\"\ntoken_profile = \"OIOH3BST\"\n\
             signing_certificates = [\"{}\"]\nclients = [{{ subject_serial = \"CVR:20921897-UID:11223344\" }}]\n",
            idp_cert.display()
        ));
    });
    let sts = format!("http://{}", server.addr);
    let out = unsealed.dir.join("bst2sosi-card.xml");
    let run = unsealed.run(
        "bst2sosi",
        &[
            "--sts",
            &sts,
            "--idp-keystore",
            unsealed.keystore(Identity::Foces).to_str().unwrap(),
            "--keystore",
            unsealed.keystore(Identity::Voces).to_str().unwrap(),
            "--uuid",
            segl::dev::pki::DEV_PROFESSIONAL_UUID,
            "--cvr",
            DEV_CVR,
            "--org-name",
            segl::dev::pki::DEV_ORG,
            "--audience",
            "https://fmk",
            "--system-name",
            "Testby Journal",
            "--authorization-code",
            segl::dev::pki::DEV_AUTHORISATION_CODE,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.get("status"), "ok", "{run:?}\nserver log:\n{}", server.log());
    assert_eq!(run.get("card_validated"), "true", "{run:?}");
    assert_eq!(run.get("card_issuer"), "SEGL-DEV-STS");
    assert_eq!(run.get("card_cpr"), DEV_CPR, "looked up by the professional's UUID: {run:?}");
    let card = std::fs::read(&out).unwrap();
    common::xmlsec_verify(&card, &common::env().pki("sts-signing")).unwrap();
}

#[test]
fn unsealed_exchanges_an_oiosaml_assertion_back_to_an_id_card_at_oiosaml2sosi() {
    let Some(unsealed) = Unsealed::get() else { return };
    // unsealed builds OIOSaml2Sosi requests from OIOSAML 2 assertions only, and its own issuer
    // makes OIOSAML 3 ones; the OIOSAML 2 assertion here is the one segl's Sosi2OIOSaml issued,
    // so the STS's own certificate is configured as a trusted identity provider.
    let audience_cert = unsealed.certificate(Identity::Voces);
    let server = Server::start_with(|c| {
        let env = common::env();
        let dev_cert = format!("{}", env.dir.join("pki").join("dev-audience.pem").display());
        *c = c.replace(&dev_cert, audience_cert.to_str().unwrap());
        let dev_idp = format!("{}", env.dir.join("pki").join("dev-idp.pem").display());
        let sts = format!("{}", env.pki("sts-signing").display());
        *c = c.replace(&format!("trusted_idps = [\"{dev_idp}\"]"), &format!("trusted_idps = [\"{sts}\"]"));
    });
    let sts = format!("http://{}", server.addr);
    let token = unsealed.dir.join("oiosaml-for-nbo.xml");
    let audience_keystore = unsealed.keystore(Identity::Voces);
    let first = sosi2oiosaml(unsealed, &sts, &token);
    assert_eq!(first.get("status"), "ok", "{first:?}");
    let out = unsealed.dir.join("nbo-card.xml");
    let run = unsealed.run(
        "oiosaml2sosi",
        &[
            "--sts",
            &sts,
            "--token",
            token.to_str().unwrap(),
            "--keystore",
            audience_keystore.to_str().unwrap(),
            "--system-name",
            "Testby Journal",
            "--authorization-code",
            segl::dev::pki::DEV_AUTHORISATION_CODE,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.get("status"), "ok", "{run:?}\nserver log:\n{}", server.log());
    assert_eq!(run.get("card_validated"), "true", "{run:?}");
    assert_eq!(run.get("card_cpr"), DEV_CPR, "{run:?}");
    let card = std::fs::read(&out).unwrap();
    common::xmlsec_verify(&card, &common::env().pki("sts-signing")).unwrap();
}
