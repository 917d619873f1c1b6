//! Development requests for the OIO WS-Trust exchanges, shaped as the federation's clients
//! send them (spec §2.3): the README's examples and the end-to-end tests use these.

use bytes::Bytes;

use super::DevError;
use crate::exchange::oio::envelope::{new_uuid_urn, ACTION_ISSUE, TOKEN_TYPE_SAML2};
use crate::exchange::oio::request::REQUEST_TYPE_ISSUE;
use crate::token::ns;
use crate::xml::emit::CanonicalWriter;
use crate::xml::{Document, Limits};

/// The STS-signed token in a DGWS or OIO response (`wst:RequestedSecurityToken/saml:Assertion`,
/// WS-Trust 2005/02 or 1.3: an ID card, an identity token, an assertion decrypted in place), in
/// its exclusive canonical form: self-contained, and byte for byte what its signature covers.
pub fn issued_card(dgws_response: &[u8]) -> Result<Vec<u8>, DevError> {
    let missing = || DevError::BadInput("no STS-signed ID card in the response".into());
    let doc =
        Document::parse(Bytes::copy_from_slice(dgws_response), &Limits::default()).map_err(|_| missing())?;
    let card = std::iter::once(doc.root())
        .chain(doc.descendants(doc.root()))
        .find(|&n| {
            doc.is(n, ns::SAML, "Assertion")
                && doc.parent(n).is_some_and(|p| {
                    let requested = |p| {
                        doc.is(p, ns::WST_2005_02, "RequestedSecurityToken")
                            || doc.is(p, ns::WST_1_3, "RequestedSecurityToken")
                    };
                    // An EncryptedAssertion decrypted in place (xmlsec1 --decrypt) holds it.
                    requested(p)
                        || (doc.is(p, ns::SAML, "EncryptedAssertion") && doc.parent(p).is_some_and(requested))
                })
        })
        .ok_or_else(missing)?;
    Ok(crate::xml::c14n::exclusive_to_vec(&doc, card, None, &[]))
}

/// How the card travels in a Sosi2OIOSaml request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardPlacement {
    /// In `wst14:ActAs` (unsealed, seal's default).
    ActAs,
    /// In the header's `wsse:Security`, referred to from ActAs (seal's "ID card in header").
    Header,
}

/// A Sosi2OIOSaml request for `audience` presenting `card`, as unsealed sends it: WS-Addressing
/// Action and MessageID, no header signature, the MessageID as the RST Context.
pub fn sosi2oiosaml_request(card: &[u8], audience: &str, placement: CardPlacement) -> Vec<u8> {
    let message_id = new_uuid_urn();
    let mut w = CanonicalWriter::with_capacity(card.len() + 2000);
    w.raw(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.start(
        "soapenv:Envelope",
        &[
            ("saml", ns::SAML),
            ("soapenv", ns::SOAP),
            ("wsa", ns::WSA),
            ("wsp", ns::WSP),
            ("wsse", ns::WSSE),
            ("wst", ns::WST_1_3),
            ("wst14", ns::WST_1_4),
        ],
        &[],
    );
    w.start("soapenv:Header", &[], &[]);
    w.leaf("wsa:Action", &[], &[], ACTION_ISSUE);
    w.leaf("wsa:MessageID", &[], &[], &message_id);
    if placement == CardPlacement::Header {
        w.start("wsse:Security", &[], &[("mustUnderstand", "1")]);
        w.raw(card);
        w.end("wsse:Security");
    }
    w.end("soapenv:Header");
    w.start("soapenv:Body", &[], &[]);
    w.start("wst:RequestSecurityToken", &[], &[("Context", &message_id)]);
    w.leaf("wst:TokenType", &[], &[], TOKEN_TYPE_SAML2);
    w.leaf("wst:RequestType", &[], &[], REQUEST_TYPE_ISSUE);
    w.start("wst14:ActAs", &[], &[]);
    match placement {
        CardPlacement::ActAs => w.raw(card),
        CardPlacement::Header => {
            w.start("wsse:SecurityTokenReference", &[], &[]);
            w.start("wsse:Reference", &[], &[("URI", "#IDCard")]);
            w.end("wsse:Reference");
            w.end("wsse:SecurityTokenReference");
        }
    }
    w.end("wst14:ActAs");
    w.start("wsp:AppliesTo", &[], &[]);
    w.start("wsa:EndpointReference", &[], &[]);
    w.leaf("wsa:Address", &[], &[], audience);
    w.end("wsa:EndpointReference");
    w.end("wsp:AppliesTo");
    w.end("wst:RequestSecurityToken");
    w.end("soapenv:Body");
    w.end("soapenv:Envelope");
    w.into_bytes()
}

/// What a development bootstrap token says.
#[derive(Debug, Clone)]
pub struct BootstrapSpec {
    /// Its profile (decides the spec-version and identity attributes).
    pub profile: crate::token::bootstrap::TokenProfile,
    /// `saml:Issuer`.
    pub issuer: String,
    /// `saml:Audience`.
    pub audience: String,
    /// The holder-of-key certificate (DER); `None` makes a bearer token.
    pub holder: Option<Vec<u8>>,
    /// Validity start relative to now.
    pub not_before_offset: jiff::SignedDuration,
    /// Validity end relative to now.
    pub not_on_or_after_offset: jiff::SignedDuration,
    /// The professional's CPR (OIOH2BST, OIO3BST).
    pub cpr: Option<String>,
    /// The professional's NSIS UUID.
    pub professional_uuid: String,
    /// Organisation CVR.
    pub cvr: String,
    /// Organisation name.
    pub org_name: String,
    /// The OIO-BPP privileges attribute's value (base64 of a `bpp:PrivilegeList`), if any.
    pub privileges: Option<String>,
}

/// A base64 OIO-BPP privilege list granting `privileges` at the organisation `cvr`.
pub fn privileges_at_cvr(cvr: &str, privileges: &[&str]) -> String {
    use base64::Engine;
    let mut xml = format!(
        "<bpp:PrivilegeList xmlns:bpp=\"{}\"><PrivilegeGroup Scope=\"{}{cvr}\">",
        crate::token::privileges::BPP_NS,
        crate::token::privileges::CVR_SCOPE
    );
    for p in privileges {
        xml.push_str(&format!("<Privilege>{p}</Privilege>"));
    }
    xml.push_str("</PrivilegeGroup></bpp:PrivilegeList>");
    base64::engine::general_purpose::STANDARD.encode(xml)
}

const PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";
const X509_SUBJECT_NAME: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName";

fn envelope_uuid() -> String {
    crate::exchange::oio::envelope::uuid()
}

impl BootstrapSpec {
    /// A citizen's token of `profile` from `issuer` for the development citizen, valid for an
    /// hour, with the audience citizen tokens name (`https://bootstrap.sts.nspop.dk/`, SEB's
    /// `https://sts.sosi.dk/`), holder-of-key bound to `holder` (bearer for the legacy profile).
    pub fn citizen(
        profile: crate::token::bootstrap::TokenProfile,
        issuer: &str,
        holder: Option<Vec<u8>>,
    ) -> BootstrapSpec {
        use crate::token::bootstrap::TokenProfile;
        let audience = match profile {
            TokenProfile::Oio2BstCitizen => "https://sts.sosi.dk/",
            TokenProfile::NemLoginBst => "https://bootstrap.sts.nemlog-in.dk/",
            _ => "https://bootstrap.sts.nspop.dk/",
        };
        BootstrapSpec {
            audience: audience.into(),
            holder: if profile == TokenProfile::LegacyBearer { None } else { holder },
            cpr: Some(super::pki::DEV_CITIZEN_CPR.into()),
            ..BootstrapSpec::new(profile, issuer, None)
        }
    }

    /// A token of `profile` from `issuer` for the development professional, valid for an hour,
    /// holder-of-key bound to `holder`.
    pub fn new(
        profile: crate::token::bootstrap::TokenProfile,
        issuer: &str,
        holder: Option<Vec<u8>>,
    ) -> BootstrapSpec {
        use crate::token::bootstrap::TokenProfile;
        BootstrapSpec {
            profile,
            issuer: issuer.to_owned(),
            audience: "https://sts.sosi.dk/".into(),
            holder,
            not_before_offset: jiff::SignedDuration::from_mins(-1),
            not_on_or_after_offset: jiff::SignedDuration::from_hours(1),
            cpr: (profile != TokenProfile::Oioh3Bst).then(|| super::pki::DEV_CPR.to_owned()),
            professional_uuid: super::pki::DEV_PROFESSIONAL_UUID.into(),
            cvr: super::pki::DEV_CVR.into(),
            org_name: super::pki::DEV_ORG.into(),
            privileges: None,
        }
    }
}

/// A bootstrap token signed (RSA-SHA256, signature after Issuer, as unsealed's issuer signs)
/// by the development IdP's key on the development token.
pub fn bootstrap_token(client: &super::client::DevClient, spec: &BootstrapSpec) -> Result<Vec<u8>, DevError> {
    bootstrap_token_signed_by(client, spec, super::pki::Identity::DevIdp)
}

/// [`bootstrap_token`] signed by `signer`'s key instead of the development IdP's, its
/// certificate in `ds:KeyInfo`: a token that names a trusted issuer but was not made with
/// that issuer's key (tests of the issuer's signing-certificate check).
pub fn bootstrap_token_signed_by(
    client: &super::client::DevClient,
    spec: &BootstrapSpec,
    signer: super::pki::Identity,
) -> Result<Vec<u8>, DevError> {
    use crate::token::bootstrap::{self as b, TokenProfile};
    let mut attributes: Vec<(&str, String)> = Vec::new();
    match spec.profile {
        TokenProfile::Oioh3Bst | TokenProfile::Oio3Bst => {
            attributes.push((b::SPEC_VERSION, "OIO-SAML-3.0".into()));
            if spec.profile == TokenProfile::Oioh3Bst {
                attributes.push((b::HEALTHCARE_SPEC_VERSION, "OIO-SAML-H-3.0".into()));
            }
            attributes.push((b::NSIS_LOA, "High".into()));
            attributes.push((b::PROFESSIONAL_UUID, spec.professional_uuid.clone()));
            attributes.push((b::PROFESSIONAL_CVR, spec.cvr.clone()));
            attributes.push((b::PROFESSIONAL_ORG_NAME, spec.org_name.clone()));
            if let Some(cpr) = &spec.cpr {
                attributes.push((b::CPR_3, cpr.clone()));
            }
            if let Some(p) = &spec.privileges {
                attributes.push((crate::token::privileges::PRIVILEGES_3, p.clone()));
            }
        }
        TokenProfile::Oio3BstCitizen => {
            attributes.push((b::SPEC_VERSION, "OIO-SAML-3.0".into()));
            attributes.push((b::NSIS_LOA, "Substantial".into()));
            attributes.push((b::CPR_3, spec.cpr.clone().unwrap_or_default()));
        }
        TokenProfile::Oio2BstCitizen => {
            attributes.push((b::SPEC_VER_2, "DK-SAML-2.0".into()));
            attributes.push((b::ASSURANCE_LEVEL_2, "3".into()));
            attributes.push((b::CPR_2, spec.cpr.clone().unwrap_or_default()));
        }
        TokenProfile::NemLoginBst => {
            attributes.push(("dk:nemlogin:saml:attribute:IdPSessionIndex", envelope_uuid()));
            attributes.push(("dk:nemlogin:saml:attribute:SpEntityId", "https://sp.dev.segl".into()));
        }
        // The legacy token's one attribute is literally named "Attribute" (spec §5.3).
        TokenProfile::LegacyBearer => attributes.push(("Attribute", "3".into())),
        TokenProfile::Oioh2Bst => {
            attributes.push((b::SPEC_VER_2, "DK-SAML-2.0".into()));
            attributes.push((b::ASSURANCE_LEVEL_2, "3".into()));
            attributes.push((b::CPR_2, spec.cpr.clone().unwrap_or_default()));
            attributes.push((b::CVR_2, spec.cvr.clone()));
            attributes.push((b::ORG_NAME_2, spec.org_name.clone()));
            if let Some(p) = &spec.privileges {
                attributes.push((crate::token::privileges::PRIVILEGES_2, p.clone()));
            }
        }
    }
    let citizen_name_id;
    let name_id = match spec.profile {
        TokenProfile::Oio3BstCitizen | TokenProfile::Oio2BstCitizen => {
            citizen_name_id = format!("{}:{}", b::CPR_2, spec.cpr.as_deref().unwrap_or_default());
            (PERSISTENT, citizen_name_id.as_str())
        }
        TokenProfile::NemLoginBst | TokenProfile::LegacyBearer => {
            citizen_name_id = format!(
                "C=DK,O=Ingen organisatorisk tilknytning,CN=Nancy Ann Berggren,Serial=PID:{}",
                super::pki::DEV_CITIZEN_PID
            );
            (X509_SUBJECT_NAME, citizen_name_id.as_str())
        }
        _ => {
            citizen_name_id = format!("urn:uuid:{}", spec.professional_uuid);
            (PERSISTENT, citizen_name_id.as_str())
        }
    };
    let assertion = IdpAssertion {
        issuer: &spec.issuer,
        name_id,
        holder: spec.holder.as_deref(),
        audience: &spec.audience,
        not_before_offset: spec.not_before_offset,
        not_on_or_after_offset: spec.not_on_or_after_offset,
        attributes: &attributes,
    };
    signed_assertion(client, &assertion, signer)
}

/// A SAML assertion a development identity provider issues.
struct IdpAssertion<'a> {
    issuer: &'a str,
    /// (Format, value).
    name_id: (&'a str, &'a str),
    /// Holder-of-key certificate; `None`: bearer.
    holder: Option<&'a [u8]>,
    audience: &'a str,
    not_before_offset: jiff::SignedDuration,
    not_on_or_after_offset: jiff::SignedDuration,
    attributes: &'a [(&'a str, String)],
}

/// Writes `a` and signs it (RSA-SHA256, signature after Issuer) with `signer`'s key (the
/// development IdP's, unless a test wants another).
fn signed_assertion(
    client: &super::client::DevClient,
    a: &IdpAssertion<'_>,
    signer: super::pki::Identity,
) -> Result<Vec<u8>, DevError> {
    use crate::token::bootstrap as b;
    use crate::xml::dsig::algorithm::SignatureAlgorithm;
    use crate::xml::dsig::sign::{self, SignatureSpec};
    use base64::Engine;
    let now = jiff::Timestamp::now();
    let at = |d: jiff::SignedDuration| {
        now.saturating_add(d).unwrap_or(now).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    };
    let id = format!("_{}", crate::exchange::oio::envelope::uuid());
    let mut head = CanonicalWriter::with_capacity(512);
    head.start(
        "saml:Assertion",
        &[("saml", ns::SAML), ("xs", ns::XSD), ("xsi", ns::XSI)],
        &[("ID", &id), ("IssueInstant", &at(jiff::SignedDuration::ZERO)), ("Version", "2.0")],
    );
    head.leaf("saml:Issuer", &[], &[], a.issuer);
    let head = head.into_bytes();
    let mut w = CanonicalWriter::with_capacity(4096);
    w.start("saml:Subject", &[], &[]);
    w.leaf("saml:NameID", &[], &[("Format", a.name_id.0)], a.name_id.1);
    match a.holder {
        Some(cert) => {
            w.start("saml:SubjectConfirmation", &[], &[("Method", b::CM_HOLDER_OF_KEY)]);
            w.start("saml:SubjectConfirmationData", &[], &[("xsi:type", "saml:KeyInfoConfirmationDataType")]);
            w.start("ds:KeyInfo", &[("ds", ns::DS)], &[]);
            w.start("ds:X509Data", &[], &[]);
            w.leaf("ds:X509Certificate", &[], &[], &base64::engine::general_purpose::STANDARD.encode(cert));
            w.end("ds:X509Data");
            w.end("ds:KeyInfo");
            w.end("saml:SubjectConfirmationData");
            w.end("saml:SubjectConfirmation");
        }
        None => {
            w.start("saml:SubjectConfirmation", &[], &[("Method", "urn:oasis:names:tc:SAML:2.0:cm:bearer")]);
            w.end("saml:SubjectConfirmation");
        }
    }
    w.end("saml:Subject");
    w.start(
        "saml:Conditions",
        &[],
        &[("NotBefore", &at(a.not_before_offset)), ("NotOnOrAfter", &at(a.not_on_or_after_offset))],
    );
    w.start("saml:AudienceRestriction", &[], &[]);
    w.leaf("saml:Audience", &[], &[], a.audience);
    w.end("saml:AudienceRestriction");
    w.end("saml:Conditions");
    w.start("saml:AttributeStatement", &[], &[]);
    for (name, value) in a.attributes {
        w.start(
            "saml:Attribute",
            &[],
            &[("Name", name), ("NameFormat", "urn:oasis:names:tc:SAML:2.0:attrname-format:uri")],
        );
        w.leaf("saml:AttributeValue", &[], &[("xsi:type", "xs:string")], value);
        w.end("saml:Attribute");
    }
    w.end("saml:AttributeStatement");
    w.end("saml:Assertion");
    let tail = w.into_bytes();

    let cert = client.certificate(signer)?;
    let cert_b64 = base64::engine::general_purpose::STANDARD.encode(&cert);
    let algorithm = SignatureAlgorithm::RsaSha256;
    let reference = format!("#{id}");
    let unsigned = [head.as_slice(), tail.as_slice()].concat();
    let signature_spec = SignatureSpec {
        id_attribute: ("Id", "OCESSignature"),
        reference_uri: &reference,
        algorithm,
        certificate_b64: &cert_b64,
    };
    let prepared = sign::prepare_parsed(&unsigned, &signature_spec)
        .map_err(|e| DevError::BadInput(format!("assertion: {e}")))?;
    let value = client.sign_digest(signer, algorithm, &prepared.signed_info_digest)?;
    Ok([head.as_slice(), &sign::finish(&prepared, &value), tail.as_slice()].concat())
}

/// What a development NemLog-in-like OIOSAML 2.0 assertion says (spec §5.4).
#[derive(Debug, Clone)]
pub struct NemLoginSpec {
    /// `saml:Issuer`.
    pub issuer: String,
    /// The user's CPR, if the assertion carries one.
    pub cpr: Option<String>,
    /// Organisation CVR.
    pub cvr: String,
    /// The employee's RID.
    pub rid: String,
    /// Validity end relative to now.
    pub not_on_or_after_offset: jiff::SignedDuration,
}

impl NemLoginSpec {
    /// The development employee (MOCES subject) at the development organisation, valid an hour.
    pub fn new() -> NemLoginSpec {
        NemLoginSpec {
            issuer: "https://saml.nemlog-in.dev.segl.example".into(),
            cpr: Some(super::pki::DEV_CPR.into()),
            cvr: super::pki::DEV_CVR.into(),
            rid: "52723247".into(),
            not_on_or_after_offset: jiff::SignedDuration::from_hours(1),
        }
    }
}

impl Default for NemLoginSpec {
    fn default() -> Self {
        Self::new()
    }
}

/// A NemLog-in-like OIOSAML 2.0 web-SSO assertion for the development employee, signed by the
/// development IdP key.
pub fn nemlogin_assertion(
    client: &super::client::DevClient,
    spec: &NemLoginSpec,
) -> Result<Vec<u8>, DevError> {
    let uid = format!("CVR:{}-RID:{}", spec.cvr, spec.rid);
    let mut attributes: Vec<(&str, String)> = vec![
        ("dk:gov:saml:attribute:SpecVer", "DK-SAML-2.0".into()),
        ("dk:gov:saml:attribute:AssuranceLevel", "3".into()),
        ("urn:oid:2.5.4.3", "Lars Larsen".into()),
        ("urn:oid:2.5.4.4", "Larsen".into()),
        ("urn:oid:0.9.2342.19200300.100.1.3", "lars.larsen@testby.example".into()),
        ("urn:oid:0.9.2342.19200300.100.1.1", uid.clone()),
        ("dk:gov:saml:attribute:CvrNumberIdentifier", spec.cvr.clone()),
        ("dk:gov:saml:attribute:RidNumberIdentifier", spec.rid.clone()),
        ("urn:oid:2.5.4.10", super::pki::DEV_ORG.into()),
    ];
    if let Some(cpr) = &spec.cpr {
        attributes.push(("dk:gov:saml:attribute:CprNumberIdentifier", cpr.clone()));
    }
    let name_id = format!("C=DK,O={},CN=Lars Larsen,Serial={uid}", super::pki::DEV_ORG);
    let assertion = IdpAssertion {
        issuer: &spec.issuer,
        name_id: ("urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName", &name_id),
        holder: None,
        audience: "https://sp.dev.segl.example/",
        not_before_offset: jiff::SignedDuration::from_mins(-1),
        not_on_or_after_offset: spec.not_on_or_after_offset,
        attributes: &attributes,
    };
    signed_assertion(client, &assertion, super::pki::Identity::DevIdp)
}

/// The healthcare context token (spec §2.4): unsigned, sender-vouches, naming the IT system
/// and what the user claims; empty values are left out.
pub fn context_token(it_system: &str, education_code: &str, authorisation_code: &str) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(1500);
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let id = format!("_{}", crate::exchange::oio::envelope::uuid());
    w.start(
        "saml:Assertion",
        &[("saml", ns::SAML)],
        &[("ID", &id), ("IssueInstant", &now), ("Version", "2.0")],
    );
    w.leaf("saml:Issuer", &[], &[], it_system);
    w.start("saml:Subject", &[], &[]);
    w.leaf(
        "saml:NameID",
        &[],
        &[("Format", "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName")],
        "CVR:20921897-RID:52723247",
    );
    w.start("saml:SubjectConfirmation", &[], &[("Method", "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches")]);
    w.end("saml:SubjectConfirmation");
    w.end("saml:Subject");
    w.start("saml:AttributeStatement", &[], &[]);
    for (name, value) in [
        ("dk:healthcare:saml:attribute:ITSystemName", it_system),
        ("dk:healthcare:saml:attribute:UserEducationCode", education_code),
        ("dk:healthcare:saml:attribute:UserAuthorizationCode", authorisation_code),
    ] {
        if value.is_empty() {
            continue;
        }
        w.start("saml:Attribute", &[], &[("Name", name)]);
        w.leaf("saml:AttributeValue", &[], &[], value);
        w.end("saml:Attribute");
    }
    w.end("saml:AttributeStatement");
    w.end("saml:Assertion");
    w.into_bytes()
}

/// A BST2SOSI request presenting `token` with `claims` (URI, value), header-signed (RSA-SHA256,
/// as unsealed signs) by `signer`'s key on the development token.
pub fn bst2sosi_request(
    client: &super::client::DevClient,
    token: &[u8],
    claims: &[(&str, &str)],
    signer: super::pki::Identity,
) -> Result<Vec<u8>, DevError> {
    oio_request(client, &[token], claims, "https://fmk", signer)
}

/// An OIOSaml2Sosi request presenting the OIOSAML assertion and the context token, for
/// `http://sosi.dk`, header-signed by `signer`.
pub fn oiosaml2sosi_request(
    client: &super::client::DevClient,
    assertion: &[u8],
    context: &[u8],
    signer: super::pki::Identity,
) -> Result<Vec<u8>, DevError> {
    oio_request(client, &[assertion, context], &[], "http://sosi.dk", signer)
}

/// An OIO issue request with `tokens` in ActAs, `claims` (none: no wst:Claims), for
/// `applies_to`, header-signed by `signer`.
pub fn oio_request(
    client: &super::client::DevClient,
    tokens: &[&[u8]],
    claims: &[(&str, &str)],
    applies_to: &str,
    signer: super::pki::Identity,
) -> Result<Vec<u8>, DevError> {
    use crate::exchange::oio::envelope;
    use crate::xml::dsig::algorithm::SignatureAlgorithm;
    use base64::Engine;
    let context = new_uuid_urn();
    let size: usize = tokens.iter().map(|t| t.len()).sum();
    let mut w = CanonicalWriter::with_capacity(size + 2000);
    w.start("wst:RequestSecurityToken", &[("wst", ns::WST_1_3)], &[("Context", &context)]);
    w.leaf("wst:TokenType", &[], &[], TOKEN_TYPE_SAML2);
    w.leaf("wst:RequestType", &[], &[], REQUEST_TYPE_ISSUE);
    w.start("wst14:ActAs", &[("wst14", ns::WST_1_4)], &[]);
    for token in tokens {
        w.raw(token);
    }
    w.end("wst14:ActAs");
    w.start("wsp:AppliesTo", &[("wsp", ns::WSP)], &[]);
    w.start("wsa:EndpointReference", &[("wsa", ns::WSA)], &[]);
    w.leaf("wsa:Address", &[], &[], applies_to);
    w.end("wsa:EndpointReference");
    w.end("wsp:AppliesTo");
    if !claims.is_empty() {
        w.start("wst:Claims", &[], &[("Dialect", ns::AUTHCLAIMS_DIALECT)]);
        for (uri, value) in claims {
            w.start("auth:ClaimType", &[("auth", ns::AUTH)], &[("Uri", uri)]);
            w.leaf("auth:Value", &[], &[], value);
            w.end("auth:ClaimType");
        }
        w.end("wst:Claims");
    }
    w.end("wst:RequestSecurityToken");
    let content = w.into_bytes();
    let cert = client.certificate(signer)?;
    let algorithm = SignatureAlgorithm::RsaSha256;
    // A request has the shape of an answer without RelatesTo: the same writer serves.
    let unsigned = envelope::prepare(
        &envelope::Correlation::default(),
        jiff::Timestamp::now(),
        &content,
        algorithm,
        &base64::engine::general_purpose::STANDARD.encode(&cert),
    )
    .map_err(|e| DevError::BadInput(format!("request: {e}")))?;
    let value = client.sign_digest(signer, algorithm, unsigned.signed_info_digest())?;
    Ok(unsigned.finish(&value))
}

/// An OIO issue request in seal.java's shape (its `OIOBootstrapToIdentityTokenRequestDOMBuilder`
/// and the captured seal samples): prefix `soap`, every namespace declared once on the
/// Envelope, the header in the order Action, MessageID, Security (Timestamp `wsu:Id="timestamp"`
/// with Created only, then the signature), indented, and SIG-HDR in RSA-SHA1 over `#action`,
/// `#messageID`, `#timestamp` and `#body`, as seal signs it. `tokens` go in ActAs, `claims` in
/// the authclaims dialect.
pub fn seal_request(
    client: &super::client::DevClient,
    tokens: &[&[u8]],
    claims: &[(&str, &str)],
    applies_to: &str,
    signer: super::pki::Identity,
) -> Result<Vec<u8>, DevError> {
    use crate::xml::dsig::algorithm::SignatureAlgorithm;
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let indent = |w: &mut CanonicalWriter, depth: usize| {
        w.raw(b"\n");
        w.raw(&b" ".repeat(2 * depth));
    };
    let mut w = CanonicalWriter::with_capacity(tokens.iter().map(|t| t.len()).sum::<usize>() + 4000);
    w.start(
        "soap:Envelope",
        &[
            ("auth", ns::AUTH),
            ("ds", ns::DS),
            ("saml", ns::SAML),
            ("soap", ns::SOAP),
            ("wsa", ns::WSA),
            ("wsp", ns::WSP),
            ("wsse", ns::WSSE),
            ("wst", ns::WST_1_3),
            ("wst14", ns::WST_1_4),
            ("wsu", ns::WSU),
        ],
        &[],
    );
    indent(&mut w, 1);
    w.start("soap:Header", &[], &[]);
    indent(&mut w, 2);
    w.leaf("wsa:Action", &[], &[("wsu:Id", "action")], ACTION_ISSUE);
    indent(&mut w, 2);
    w.leaf("wsa:MessageID", &[], &[("wsu:Id", "messageID")], &new_uuid_urn());
    indent(&mut w, 2);
    w.start("wsse:Security", &[], &[("mustUnderstand", "1"), ("wsu:Id", "security")]);
    indent(&mut w, 3);
    w.start("wsu:Timestamp", &[], &[("wsu:Id", "timestamp")]);
    indent(&mut w, 4);
    w.leaf("wsu:Created", &[], &[], &now);
    indent(&mut w, 3);
    w.end("wsu:Timestamp");
    indent(&mut w, 3);
    // The signature goes here, once the parts it covers are written.
    let signature_at = w.len();
    indent(&mut w, 2);
    w.end("wsse:Security");
    indent(&mut w, 1);
    w.end("soap:Header");
    indent(&mut w, 1);
    w.start("soap:Body", &[], &[("wsu:Id", "body")]);
    indent(&mut w, 2);
    w.start("wst:RequestSecurityToken", &[], &[("Context", &new_uuid_urn())]);
    indent(&mut w, 3);
    w.leaf("wst:TokenType", &[], &[], TOKEN_TYPE_SAML2);
    indent(&mut w, 3);
    w.leaf("wst:RequestType", &[], &[], REQUEST_TYPE_ISSUE);
    indent(&mut w, 3);
    w.start("wst14:ActAs", &[], &[]);
    for token in tokens {
        indent(&mut w, 4);
        w.raw(token);
    }
    indent(&mut w, 3);
    w.end("wst14:ActAs");
    indent(&mut w, 3);
    w.start("wsp:AppliesTo", &[], &[]);
    indent(&mut w, 4);
    w.start("wsa:EndpointReference", &[], &[]);
    indent(&mut w, 5);
    w.leaf("wsa:Address", &[], &[], applies_to);
    indent(&mut w, 4);
    w.end("wsa:EndpointReference");
    indent(&mut w, 3);
    w.end("wsp:AppliesTo");
    if !claims.is_empty() {
        indent(&mut w, 3);
        w.start("wst:Claims", &[], &[("Dialect", ns::AUTHCLAIMS_DIALECT)]);
        for (uri, value) in claims {
            indent(&mut w, 4);
            w.start("auth:ClaimType", &[], &[("Uri", uri)]);
            indent(&mut w, 5);
            w.leaf("auth:Value", &[], &[], value);
            indent(&mut w, 4);
            w.end("auth:ClaimType");
        }
        indent(&mut w, 3);
        w.end("wst:Claims");
    }
    indent(&mut w, 2);
    w.end("wst:RequestSecurityToken");
    indent(&mut w, 1);
    w.end("soap:Body");
    w.raw(b"\n");
    w.end("soap:Envelope");
    w.raw(b"\n");
    let bytes = w.into_bytes();

    // The references' canonical forms do not depend on the signature placed beside them.
    let doc = Document::parse(Bytes::copy_from_slice(&bytes), &Limits::default())
        .map_err(|e| DevError::BadInput(format!("seal-shaped request: {e}")))?;
    let ids = ["action", "messageID", "timestamp", "body"];
    let mut canonical = Vec::new();
    for id in ids {
        let node = doc.by_id(id).ok_or_else(|| DevError::BadInput(format!("no element with id {id}")))?;
        canonical.push((format!("#{id}"), crate::xml::c14n::exclusive_to_vec(&doc, node, None, &[])));
    }
    let parts: Vec<(&str, &[u8])> = canonical.iter().map(|(uri, c)| (uri.as_str(), c.as_slice())).collect();
    let signature = client.header_signature(signer, SignatureAlgorithm::RsaSha1, &parts)?;
    let mut out = Vec::with_capacity(bytes.len() + signature.len() + 8);
    out.extend_from_slice(&bytes[..signature_at]);
    out.extend_from_slice(&signature);
    out.extend_from_slice(&bytes[signature_at..]);
    Ok(out)
}
