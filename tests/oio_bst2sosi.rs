//! BST2SOSI end to end: the real server signing on SoftHSM; bootstrap tokens of each profile
//! minted by the development IdP key; requests header-signed by development system
//! certificates (RSA-SHA256, as unsealed signs). Every success is checked with xmlsec1 (the
//! answer's header signature and the issued card's signature against the STS certificate);
//! every rule of the README's "BST2SOSI rules" table has its refusal here.

mod common;

use common::{env, Server};
use jiff::SignedDuration;
use segl::dev::oio::{bootstrap_token, bst2sosi_request, issued_card, BootstrapSpec};
use segl::dev::pki::{Identity, DEV_CPR, DEV_CVR};
use segl::token::bootstrap::TokenProfile;

const BST2SOSI: &str = "/sts/services/BST2SOSI";
const OIOH3_ISSUER: &str = "https://idp.dev.segl.example";
const OIOH2_ISSUER: &str = "https://seb.dev.segl.example/runtime/";
const OIO3_ISSUER: &str = "https://nemlogin-sts.dev.segl.example";
const IT_SYSTEM: (&str, &str) = ("medcom:ITSystemName", "Testby Journal");

fn refused(server: &Server, request: &[u8], code: &str, actor: &str, text: &str) {
    common::assert_oio_refused(server, BST2SOSI, request, code, actor, text);
}

fn cert(identity: Identity) -> Vec<u8> {
    env().client.certificate(identity).unwrap()
}

/// A token of `profile` from `issuer`, holder-of-key bound to the VOCES certificate.
fn spec(profile: TokenProfile, issuer: &str) -> BootstrapSpec {
    BootstrapSpec::new(profile, issuer, Some(cert(Identity::Voces)))
}

fn request(spec: &BootstrapSpec, claims: &[(&str, &str)], signer: Identity) -> Vec<u8> {
    let token = bootstrap_token(&env().client, spec).unwrap();
    bst2sosi_request(&env().client, &token, claims, signer).unwrap()
}

#[test]
fn each_profile_is_exchanged_for_a_signed_user_card() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    type Case<'a> = (TokenProfile, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 3] = [
        // OIOH3BST carries no CPR: it is looked up by the professional's UUID. The claimed
        // authorisation code's education code becomes the role.
        (
            TokenProfile::Oioh3Bst,
            OIOH3_ISSUER,
            vec![IT_SYSTEM, ("medcom:UserAuthorizationCode", "J0184")],
            "7170",
        ),
        // OIOH2BST (SEB) carries the CPR; a national role the user holds is kept.
        (
            TokenProfile::Oioh2Bst,
            OIOH2_ISSUER,
            vec![
                IT_SYSTEM,
                (
                    "medcom:UserRole",
                    "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer",
                ),
            ],
            "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer",
        ),
        // OIO3BST without a role claim gets no-role, and an alternative NameID by claim.
        (
            TokenProfile::Oio3Bst,
            OIO3_ISSUER,
            vec![IT_SYSTEM, ("sosi:SubjectNameID", "Lars_Larsen")],
            "urn:dk:healthcare:no-role",
        ),
    ];
    for (profile, issuer, claims, role) in cases {
        let reply = server.post(BST2SOSI, &request(&spec(profile, issuer), &claims, Identity::Voces));
        let text = reply.text();
        assert_eq!(reply.status, 200, "{profile:?}: {text}\n{}", server.log());
        common::assert_oio_header_signed_by_sts(&reply.body);
        assert!(text.contains("<wst:RequestedAttachedReference>"), "{text}");
        let card = issued_card(&reply.body).unwrap();
        common::xmlsec_verify(&card, &env().pki("sts-signing"))
            .unwrap_or_else(|e| panic!("{profile:?}: card: {e}"));
        let card = String::from_utf8(card).unwrap();
        for expected in [DEV_CPR, DEV_CVR, "Testby Journal", "Lars", "Larsen", role, "SEGL-DEV-STS"] {
            assert!(card.contains(expected), "{profile:?}: {expected:?} not in {card}");
        }
        assert!(!card.contains("OCESCertHash"), "no certificate stands behind the card: {card}");
        // The card passes the schema seal clients validate cards against (inside the DGWS
        // response envelope those schemas describe).
        let now = jiff::Timestamp::now();
        let corr = segl::exchange::dgws::envelope::Correlation::fresh(now);
        let wrapped =
            segl::exchange::dgws::envelope::issue_response(&corr, now, card.as_bytes(), "SEGL-DEV-STS");
        if let Some(result) = common::xmllint_schema(&wrapped, "soap-specialized.xsd") {
            result.unwrap_or_else(|e| panic!("{profile:?}: the issued card fails soap-specialized.xsd: {e}"));
        }
        if profile == TokenProfile::Oio3Bst {
            assert!(card.contains(">Lars_Larsen</saml:NameID>"), "{card}");
        }
    }
    let audit = server.audit();
    assert!(audit.contains("\"kind\":\"bootstrap\""), "{audit}");
}

#[test]
fn each_rule_refuses_with_its_oio_fault() {
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let good = spec(TokenProfile::Oioh3Bst, OIOH3_ISSUER);
    let claims = [IT_SYSTEM];
    let actor = "dk:sosi:sts:bst2sosi";

    // 1: the request must be signed.
    let signed = String::from_utf8(request(&good, &claims, Identity::Voces)).unwrap();
    let start =
        signed.find("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>").unwrap();
    let end = signed[start..].find("</ds:Signature>").unwrap() + start + "</ds:Signature>".len();
    let unsigned = format!("{}{}", &signed[..start], &signed[end..]);
    assert!(
        unsigned.contains("<wst14:ActAs") && unsigned.contains("OCESSignature"),
        "only the header signature was removed"
    );
    refused(
        &server,
        unsigned.as_bytes(),
        "wst:InvalidRequest",
        actor,
        "Unable to validate envelope signature",
    );

    // 1: header signature wrapping: the signed Body moved into the header and a forged Body
    // (another ITSystemName) put in its place; and a second Body beside the signed one.
    let body_start = signed.find("<soapenv:Body").unwrap();
    let body_end = signed.find("</soapenv:Body>").unwrap() + "</soapenv:Body>".len();
    let original_body = &signed[body_start..body_end];
    // (Its token gets another ID: two elements with one ID would be refused by the parser first.)
    let forged_body = original_body
        .replace("Testby Journal", "Mallory Journal")
        .replace("wsu:Id=\"body\"", "wsu:Id=\"forged\"")
        .replace("ID=\"_", "ID=\"_forged");
    let moved = format!(
        "{}{}</soapenv:Header>{}{}",
        &signed[..signed.find("</soapenv:Header>").unwrap()],
        original_body
            .replacen("<soapenv:Body", "<wrapper:Hidden xmlns:wrapper=\"urn:x\"", 1)
            .replace("</soapenv:Body>", "</wrapper:Hidden>"),
        forged_body,
        &signed[body_end..]
    );
    refused(&server, moved.as_bytes(), "wst:InvalidRequest", actor, "Unable to validate envelope signature");
    let duplicated = format!("{}{}{}", &signed[..body_end], forged_body, &signed[body_end..]);
    refused(
        &server,
        duplicated.as_bytes(),
        "wst:InvalidRequest",
        actor,
        "soapenv:Body occurs more than once",
    );

    // 3: an issuer nobody configured.
    let untrusted = BootstrapSpec { issuer: "https://idp.evil.example".into(), ..good.clone() };
    refused(
        &server,
        &request(&untrusted, &claims, Identity::Voces),
        "wst:FailedAuthentication",
        actor,
        "not a trusted issuer",
    );

    // 2: the token altered after signing (another CVR) names the failing reference.
    let token = String::from_utf8(bootstrap_token(&env().client, &good).unwrap()).unwrap();
    let altered = token.replace(DEV_CVR, "12345678");
    let req = bst2sosi_request(&env().client, altered.as_bytes(), &claims, Identity::Voces).unwrap();
    refused(&server, &req, "wst:FailedAuthentication", actor, "digest mismatch");

    // 2: signature wrapping: an unsigned copy with another identity in ActAs, the signed original
    // tucked inside it. Only a token whose own signature covers it is read.
    let sig_start = token.find("<ds:Signature").unwrap();
    let sig_end = token.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let id_start = token.find("ID=\"").unwrap() + 4;
    let id_end = id_start + token[id_start..].find('"').unwrap();
    let forged = format!(
        "{}_forged{}<saml:Advice>{}</saml:Advice>{}",
        &token[..id_start],
        &token[id_end..sig_start],
        token,
        &token[sig_end..].replace(DEV_CVR, "12345678")
    );
    assert!(forged.contains("ID=\"_forged") && forged.contains("<saml:Advice><saml:Assertion"), "{forged}");
    let req = bst2sosi_request(&env().client, forged.as_bytes(), &claims, Identity::Voces).unwrap();
    refused(&server, &req, "wst:FailedAuthentication", actor, "expected exactly one");

    // 4: a token of another profile than its issuer issues.
    let wrong_profile =
        BootstrapSpec { issuer: OIOH3_ISSUER.into(), ..spec(TokenProfile::Oioh2Bst, OIOH3_ISSUER) };
    refused(
        &server,
        &request(&wrong_profile, &claims, Identity::Voces),
        "wst:InvalidRequest",
        actor,
        "Unknown OIOBSTSAMLAssertion specification",
    );

    // 5: another audience (NSP's exact text).
    let audience = BootstrapSpec { audience: "https://other.example/".into(), ..good.clone() };
    refused(
        &server,
        &request(&audience, &claims, Identity::Voces),
        "wst:RequestFailed",
        actor,
        "BST2SOSI assertion does not have allowed audience. Actual type:https://other.example/, Allowed type:https://sts.sosi.dk/",
    );

    // 5: expired (beyond the 300 s drift).
    let expired = BootstrapSpec {
        not_before_offset: SignedDuration::from_hours(-2),
        not_on_or_after_offset: SignedDuration::from_mins(-10),
        ..good.clone()
    };
    refused(
        &server,
        &request(&expired, &claims, Identity::Voces),
        "wst:FailedAuthentication",
        actor,
        "OIOSAML token no longer valid",
    );

    // 6: holder-of-key: signed by another certificate than the token names, or no HoK at all.
    refused(
        &server,
        &request(&good, &claims, Identity::Foces),
        "wst:FailedAuthentication",
        actor,
        "relation do not match",
    );
    let bearer = BootstrapSpec { holder: None, ..good.clone() };
    refused(
        &server,
        &request(&bearer, &claims, Identity::Voces),
        "wst:FailedAuthentication",
        actor,
        "Could not find holder-of-key certificate",
    );

    // 7: the holder is consistent but not whitelisted.
    let foces = BootstrapSpec { holder: Some(cert(Identity::Foces)), ..good.clone() };
    refused(
        &server,
        &request(&foces, &claims, Identity::Foces),
        "wst:FailedAuthentication",
        actor,
        "not whitelisted",
    );

    // 8: claims.
    refused(
        &server,
        &request(&good, &[], Identity::Voces),
        "wst:InvalidRequest",
        actor,
        "IT System must be specified.",
    );
    let both = [IT_SYSTEM, ("medcom:UserRole", "7170"), ("medcom:UserAuthorizationCode", "J0184")];
    refused(
        &server,
        &request(&good, &both, Identity::Voces),
        "wst:InvalidRequest",
        actor,
        "Only one of UserAuthorizationCode or UserRole",
    );

    // 9: lookups.
    let not_held = [IT_SYSTEM, ("medcom:UserAuthorizationCode", "ZZ999")];
    refused(
        &server,
        &request(&good, &not_held, Identity::Voces),
        "wst:FailedAuthentication",
        "dk:sosi:sts:autorisation",
        "authorization not found (available [{J0184, 7170}])",
    );
    let stranger =
        BootstrapSpec { professional_uuid: "00000000-0000-4000-8000-000000000000".into(), ..good.clone() };
    refused(
        &server,
        &request(&stranger, &claims, Identity::Voces),
        "wst:RequestFailed",
        "dk:sosi:sts:cvrridcpr",
        "cvrrid-cpr lookup failed [00000000-0000-4000-8000-000000000000]",
    );
    let unknown_cpr =
        BootstrapSpec { cpr: Some("1111111118".into()), ..spec(TokenProfile::Oioh2Bst, OIOH2_ISSUER) };
    refused(
        &server,
        &request(&unknown_cpr, &claims, Identity::Voces),
        "wst:RequestFailed",
        actor,
        "Could not find userData for input CPR.",
    );

    // 10: the same request twice.
    let once = request(&good, &claims, Identity::Voces);
    assert_eq!(server.post(BST2SOSI, &once).status, 200);
    refused(&server, &once, "wst:InvalidRequest", actor, "was already received");
}

/// The CipherValue texts of an EncryptedAssertion: the key transport's first, then the content's.
fn cipher_values(encrypted: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = encrypted[from..].find("<xenc:CipherValue>") {
        let start = from + at + "<xenc:CipherValue>".len();
        let end = start + encrypted[start..].find('<').unwrap();
        spans.push((start, end));
        from = end;
    }
    spans
}

#[test]
fn encrypted_bootstrap_tokens_are_decrypted_in_the_hsm_and_every_failure_looks_the_same() {
    use base64::Engine;
    use segl::xml::enc::{encrypt_assertion, ContentEncryption, KeyTransport};
    if !common::have_xmlsec() {
        return;
    }
    let server = Server::start();
    let encryption_cert = segl::dev::client::read_certificate(&env().pki("sts-decryption")).unwrap();
    let claims = [IT_SYSTEM];
    let token = bootstrap_token(&env().client, &spec(TokenProfile::Oioh3Bst, OIOH3_ISSUER)).unwrap();
    let send = |encrypted: &[u8]| {
        let req = bst2sosi_request(&env().client, encrypted, &claims, Identity::Voces).unwrap();
        server.post(BST2SOSI, &req)
    };

    // What the .NET client sends (aes128-cbc, rsa-1_5), and the modern pair.
    for (content, transport) in [
        (ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5),
        (ContentEncryption::Aes256Gcm, KeyTransport::RsaOaepMgf1p),
    ] {
        let encrypted = encrypt_assertion(&token, &encryption_cert, content, transport).unwrap();
        let reply = send(&encrypted);
        assert_eq!(reply.status, 200, "{content:?}/{transport:?}: {}\n{}", reply.text(), server.log());
        let card = String::from_utf8(issued_card(&reply.body).unwrap()).unwrap();
        assert!(card.contains(DEV_CPR), "{card}");
    }

    let good = String::from_utf8(
        encrypt_assertion(&token, &encryption_cert, ContentEncryption::Aes128Cbc, KeyTransport::Rsa1_5)
            .unwrap(),
    )
    .unwrap();
    let spans = cipher_values(&good);
    assert_eq!(spans.len(), 2, "{good}");
    let replace =
        |(start, end): (usize, usize), b64: &str| format!("{}{b64}{}", &good[..start], &good[end..]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let content = b64.decode(&good[spans[1].0..spans[1].1]).unwrap();

    let mut failures: Vec<(&str, String)> = Vec::new();
    // Encrypted to another key (the VOCES certificate's).
    failures.push((
        "wrong key",
        String::from_utf8(
            encrypt_assertion(
                &token,
                &cert(Identity::Voces),
                ContentEncryption::Aes128Cbc,
                KeyTransport::Rsa1_5,
            )
            .unwrap(),
        )
        .unwrap(),
    ));
    // A byte of the content flipped in the first block, and in the last (its padding).
    let mut first = content.clone();
    first[20] ^= 0x5a;
    failures.push(("tampered content", replace(spans[1], &b64.encode(&first))));
    let mut last = content.clone();
    let n = last.len();
    last[n - 17] ^= 0x01;
    failures.push(("tampered padding", replace(spans[1], &b64.encode(&last))));
    // A key transport block with bad PKCS#1 padding (00 03 …), made with the raw public-key
    // operation by openssl.
    if let Some(bad) = raw_rsa_encrypt(&env().pki("sts-decryption"), &[&[0u8, 3][..], &[0x11; 254]].concat())
    {
        failures.push(("bad RSA padding", replace(spans[0], &b64.encode(bad))));
    }
    let mut answers = Vec::new();
    for (what, encrypted) in &failures {
        let reply = send(encrypted.as_bytes());
        let body = reply.text();
        assert_eq!(reply.status, 500, "{what}: {body}");
        assert_eq!(common::xml_tag(&body, "faultcode"), Some("wst:InvalidRequest"), "{what}: {body}");
        answers.push((what, common::xml_tag(&body, "faultstring").unwrap_or_default().to_owned()));
    }
    let first_answer = &answers[0].1;
    assert!(first_answer.contains("could not be decrypted"), "{first_answer}");
    for (what, answer) in &answers {
        assert_eq!(answer, first_answer, "{what} must be refused exactly like a wrong key");
    }
}

/// `block` through the raw RSA public-key operation of the certificate's key (openssl), or
/// `None` with a message when openssl is missing.
fn raw_rsa_encrypt(cert_pem: &std::path::Path, block: &[u8]) -> Option<Vec<u8>> {
    let dir = env().dir.join("raw-rsa");
    std::fs::create_dir_all(&dir).unwrap();
    let public = dir.join("public.pem");
    let input = dir.join("block.bin");
    let output = dir.join("ct.bin");
    std::fs::write(&input, block).unwrap();
    let pubkey = std::process::Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(cert_pem)
        .output();
    let Ok(pubkey) = pubkey else {
        eprintln!("SKIP bad-RSA-padding case: openssl is not installed");
        return None;
    };
    std::fs::write(&public, pubkey.stdout).unwrap();
    let status = std::process::Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-pubin", "-pkeyopt", "rsa_padding_mode:none", "-inkey"])
        .arg(&public)
        .arg("-in")
        .arg(&input)
        .arg("-out")
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success(), "openssl pkeyutl failed");
    Some(std::fs::read(&output).unwrap())
}

#[test]
fn oio_bpp_privileges_grant_national_roles_and_bad_ones_are_refused() {
    if !common::have_xmlsec() {
        return;
    }
    use segl::dev::oio::privileges_at_cvr;
    const ROLE_A: &str = "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer";
    const ROLE_B: &str = "urn:dk:healthcare:national-federation-role:code:41003:value:PlejeAssR3";
    // A register in which the development user holds no authorisation at all.
    let register = env().dir.join("registers-no-authorisation.toml");
    std::fs::write(
        &register,
        format!("[[person]]\ncpr = \"{DEV_CPR}\"\ngiven_name = \"Lars\"\nsurname = \"Larsen\"\nprofessional_uuid = [\"{}\"]\n", segl::dev::pki::DEV_PROFESSIONAL_UUID),
    )
    .unwrap();
    let server = Server::start_with(|c| {
        let default = format!("{}", env().dir.join("registers.toml").display());
        *c = c.replace(&default, register.to_str().unwrap());
    });
    let claims = [IT_SYSTEM];
    let actor = "dk:sosi:sts:bst2sosi";
    let with = |privileges: Option<String>| BootstrapSpec {
        privileges,
        ..spec(TokenProfile::Oioh2Bst, OIOH2_ISSUER)
    };

    // One national role granted at the token's CVR, none claimed: it is the card's role (the
    // role register is not asked; this user holds nothing there).
    let reply = server.post(
        BST2SOSI,
        &request(&with(Some(privileges_at_cvr(DEV_CVR, &[ROLE_A]))), &claims, Identity::Voces),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let card = String::from_utf8(issued_card(&reply.body).unwrap()).unwrap();
    assert!(card.contains(ROLE_A), "{card}");
    // A role granted at another organisation does not count: no role.
    let reply = server.post(
        BST2SOSI,
        &request(&with(Some(privileges_at_cvr("11111111", &[ROLE_A]))), &claims, Identity::Voces),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(String::from_utf8(issued_card(&reply.body).unwrap())
        .unwrap()
        .contains("urn:dk:healthcare:no-role"));
    // Several granted, none claimed (NSP's text).
    refused(
        &server,
        &request(&with(Some(privileges_at_cvr(DEV_CVR, &[ROLE_A, ROLE_B]))), &claims, Identity::Voces),
        "wst:FailedAuthentication",
        "dk:sosi:sts:autorisation",
        &format!("multiple national roles found ({ROLE_A}, {ROLE_B})"),
    );
    // An unreadable privilege list (NSP's text).
    refused(
        &server,
        &request(&with(Some("not base64 %%%".into())), &claims, Identity::Voces),
        "wst:RequestFailed",
        actor,
        "BST2SOSI assertion contains an invalid basic privilege profile",
    );
    // An authorisation claimed by a user who holds none (NSP's text).
    let auth = [IT_SYSTEM, ("medcom:UserAuthorizationCode", "J0184")];
    refused(
        &server,
        &request(&with(None), &auth, Identity::Voces),
        "wst:FailedAuthentication",
        "dk:sosi:sts:autorisation",
        "missing authorization",
    );
}
