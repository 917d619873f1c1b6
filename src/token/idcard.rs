//! The SOSI ID card (DGWS 1.0 / 1.0.1, spec §3): reading one from the element a signature
//! verified, and writing one in canonical form.

use jiff::Timestamp;

use super::ns;
use crate::time::{self, DgwsVersion};
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::dsig::sign::{self, SignatureSpec};
use crate::xml::emit::CanonicalWriter;
use crate::xml::{Document, NodeId};

/// Why a card is structurally unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// A required element or attribute is absent (or empty).
    #[error("the ID card has no {0}")]
    Missing(&'static str),
    /// A value is outside what DGWS allows.
    #[error("the ID card's {field} is invalid: {value:?}")]
    Invalid { field: &'static str, value: String },
    /// A statement that must not be there is there.
    #[error("the ID card has an unexpected {0}")]
    Unexpected(&'static str),
}

/// `sosi:IDCardType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardType {
    /// A user card (level 4 in practice, signed with an employee certificate).
    User,
    /// A system card (level 3 in practice, signed with an organisation/function certificate).
    System,
}

impl CardType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
        }
    }
}

/// `saml:NameID` with its `Format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameId {
    /// The literal Format string, e.g. `medcom:cprnumber`.
    pub format: String,
    /// The identifier.
    pub value: String,
}

/// The `UserLog` statement of a user card.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserLog {
    /// `medcom:UserCivilRegistrationNumber` (optional in STS requests).
    pub cpr: Option<String>,
    /// `medcom:UserGivenName`.
    pub given_name: String,
    /// `medcom:UserSurName`.
    pub surname: String,
    /// `medcom:UserEmailAddress`.
    pub email: Option<String>,
    /// `medcom:UserRole`.
    pub role: Option<String>,
    /// `medcom:UserAuthorizationCode`.
    pub authorization_code: Option<String>,
    /// `medcom:UserOccupation`.
    pub occupation: Option<String>,
}

/// The `SystemLog` statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemLog {
    /// `medcom:ITSystemName`.
    pub it_system_name: String,
    /// `medcom:CareProviderID`.
    pub care_provider_id: String,
    /// Its `NameFormat`, e.g. `medcom:cvrnumber`.
    pub care_provider_id_format: String,
    /// `medcom:CareProviderName`.
    pub care_provider_name: String,
}

/// A SOSI ID card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdCard {
    /// `sosi:IDCardVersion`; also decides how the card's timestamps are written.
    pub version: DgwsVersion,
    /// `IssueInstant`.
    pub issue_instant: Timestamp,
    /// `saml:Issuer`.
    pub issuer: String,
    /// `saml:Subject/saml:NameID`.
    pub name_id: NameId,
    /// Whether the card has a holder-of-key SubjectConfirmation naming `OCESSignature`.
    pub holder_of_key: bool,
    /// `Conditions/@NotBefore`.
    pub not_before: Timestamp,
    /// `Conditions/@NotOnOrAfter`.
    pub not_on_or_after: Timestamp,
    /// `sosi:IDCardID`.
    pub id_card_id: String,
    /// `sosi:IDCardType`.
    pub card_type: CardType,
    /// `sosi:AuthenticationLevel` (1–4).
    pub authentication_level: u8,
    /// `sosi:OCESCertHash` (levels 3 and 4).
    pub ocess_cert_hash: Option<String>,
    /// The UserLog statement (user cards only).
    pub user: Option<UserLog>,
    /// The SystemLog statement.
    pub system: SystemLog,
}

/// The confirmation method of holder-of-key cards.
pub const HOLDER_OF_KEY: &str = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key";
/// The card's `id`.
pub const CARD_ID: &str = "IDCard";
/// The signature's `id`, also named by the holder-of-key KeyName.
pub const SIGNATURE_ID: &str = "OCESSignature";

impl IdCard {
    /// A fresh `sosi:IDCardID` for a card the STS issues: base64 of 16 random bytes, as seal
    /// writes it.
    pub fn fresh_id() -> String {
        use base64::Engine;
        let mut id = [0u8; 16];
        // An all-zero id on RNG failure would still be a valid card; uniqueness is best effort.
        let _ = aws_lc_rs::rand::fill(&mut id);
        base64::engine::general_purpose::STANDARD.encode(id)
    }

    /// Reads a card from `card`, which must be the element its signature verified: nothing
    /// outside that element is looked at.
    pub fn from_element(doc: &Document, card: NodeId) -> Result<IdCard, CardError> {
        if !doc.is(card, ns::SAML, "Assertion") {
            return Err(CardError::Missing("saml:Assertion"));
        }
        let timestamp = |field: &'static str, value: Option<std::borrow::Cow<'_, str>>| {
            let value = value.ok_or(CardError::Missing(field))?;
            time::parse(&value).ok_or_else(|| CardError::Invalid { field, value: value.into_owned() })
        };
        let issue_instant = timestamp("IssueInstant", doc.attribute(card, "IssueInstant"))?;
        match doc.attribute(card, "Version").as_deref() {
            Some("2.0") => {}
            Some(v) => return Err(CardError::Invalid { field: "Version", value: v.to_owned() }),
            None => return Err(CardError::Missing("Version")),
        }

        let issuer = non_empty(doc.child(card, ns::SAML, "Issuer").map(|e| doc.text(e).into_owned()))
            .ok_or(CardError::Missing("saml:Issuer"))?;

        let subject = doc.child(card, ns::SAML, "Subject").ok_or(CardError::Missing("saml:Subject"))?;
        let name_id_el = doc.child(subject, ns::SAML, "NameID").ok_or(CardError::Missing("saml:NameID"))?;
        let name_id = NameId {
            format: non_empty(doc.attribute(name_id_el, "Format").map(|f| f.into_owned()))
                .ok_or(CardError::Missing("saml:NameID/@Format"))?,
            value: doc.text(name_id_el).into_owned(),
        };
        let holder_of_key = match doc.child(subject, ns::SAML, "SubjectConfirmation") {
            None => false,
            Some(sc) => {
                let method = doc.child(sc, ns::SAML, "ConfirmationMethod").map(|m| doc.text(m));
                let key_name = doc
                    .child(sc, ns::SAML, "SubjectConfirmationData")
                    .and_then(|d| doc.child(d, ns::DS, "KeyInfo"))
                    .and_then(|k| doc.child(k, ns::DS, "KeyName"))
                    .map(|k| doc.text(k));
                method.as_deref() == Some(HOLDER_OF_KEY) && key_name.as_deref() == Some(SIGNATURE_ID)
            }
        };

        let conditions =
            doc.child(card, ns::SAML, "Conditions").ok_or(CardError::Missing("saml:Conditions"))?;
        let not_before = timestamp("Conditions/@NotBefore", doc.attribute(conditions, "NotBefore"))?;
        let not_on_or_after =
            timestamp("Conditions/@NotOnOrAfter", doc.attribute(conditions, "NotOnOrAfter"))?;

        let mut statements = Statements::default();
        for st in doc.children(card).filter(|&c| doc.is(c, ns::SAML, "AttributeStatement")) {
            let slot = match doc.attribute(st, "id").as_deref() {
                Some("IDCardData") => &mut statements.id_card_data,
                Some("UserLog") => &mut statements.user_log,
                Some("SystemLog") => &mut statements.system_log,
                _ => return Err(CardError::Unexpected("AttributeStatement without a known id")),
            };
            if slot.replace(st).is_some() {
                return Err(CardError::Unexpected("repeated AttributeStatement"));
            }
        }
        let data = statements.id_card_data.ok_or(CardError::Missing("IDCardData statement"))?;
        let system_st = statements.system_log.ok_or(CardError::Missing("SystemLog statement"))?;

        let version_text = required(doc, data, "sosi:IDCardVersion")?;
        let version = DgwsVersion::from_card_version(&version_text)
            .ok_or(CardError::Invalid { field: "sosi:IDCardVersion", value: version_text })?;
        let card_type = match required(doc, data, "sosi:IDCardType")?.as_str() {
            "user" => CardType::User,
            "system" => CardType::System,
            other => return Err(CardError::Invalid { field: "sosi:IDCardType", value: other.to_owned() }),
        };
        let level_text = required(doc, data, "sosi:AuthenticationLevel")?;
        let authentication_level = match level_text.as_str() {
            "1" => 1,
            "2" => 2,
            "3" => 3,
            "4" => 4,
            _ => return Err(CardError::Invalid { field: "sosi:AuthenticationLevel", value: level_text }),
        };

        let user = match (card_type, statements.user_log) {
            (CardType::User, Some(ul)) => Some(UserLog {
                cpr: optional(doc, ul, "medcom:UserCivilRegistrationNumber"),
                given_name: required(doc, ul, "medcom:UserGivenName")?,
                surname: required(doc, ul, "medcom:UserSurName")?,
                email: optional(doc, ul, "medcom:UserEmailAddress"),
                role: optional(doc, ul, "medcom:UserRole"),
                authorization_code: optional(doc, ul, "medcom:UserAuthorizationCode"),
                occupation: optional(doc, ul, "medcom:UserOccupation"),
            }),
            (CardType::User, None) => return Err(CardError::Missing("UserLog statement")),
            (CardType::System, Some(_)) => {
                return Err(CardError::Unexpected("UserLog statement on a system card"))
            }
            (CardType::System, None) => None,
        };

        let provider = attribute_element(doc, system_st, "medcom:CareProviderID")
            .ok_or(CardError::Missing("medcom:CareProviderID"))?;
        let care_provider_id_format = doc
            .attribute(provider, "NameFormat")
            .map(|f| f.into_owned())
            .ok_or(CardError::Missing("medcom:CareProviderID/@NameFormat"))?;
        if !matches!(
            care_provider_id_format.as_str(),
            "medcom:cvrnumber" | "medcom:skscode" | "medcom:ynumber" | "medcom:pnumber"
        ) {
            return Err(CardError::Invalid {
                field: "medcom:CareProviderID/@NameFormat",
                value: care_provider_id_format,
            });
        }
        let system = SystemLog {
            it_system_name: required(doc, system_st, "medcom:ITSystemName")?,
            care_provider_id: required(doc, system_st, "medcom:CareProviderID")?,
            care_provider_id_format,
            care_provider_name: required(doc, system_st, "medcom:CareProviderName")?,
        };

        Ok(IdCard {
            version,
            issue_instant,
            issuer,
            name_id,
            holder_of_key,
            not_before,
            not_on_or_after,
            id_card_id: required(doc, data, "sosi:IDCardID")?,
            card_type,
            authentication_level,
            ocess_cert_hash: optional(doc, data, "sosi:OCESCertHash"),
            user,
            system,
        })
    }

    /// Writes the card in exclusive canonical form, without its signature and without the
    /// closing `</saml:Assertion>` (the signature goes there, as the last child).
    pub fn write_unsigned(&self, w: &mut CanonicalWriter) {
        let ts = |t: Timestamp| time::format(t, self.version);
        let issue_instant = ts(self.issue_instant);
        w.start(
            "saml:Assertion",
            &[("saml", ns::SAML)],
            &[("IssueInstant", &issue_instant), ("Version", "2.0"), ("id", CARD_ID)],
        );
        w.leaf("saml:Issuer", &[], &[], &self.issuer);
        w.start("saml:Subject", &[], &[]);
        w.leaf("saml:NameID", &[], &[("Format", &self.name_id.format)], &self.name_id.value);
        if self.holder_of_key {
            w.start("saml:SubjectConfirmation", &[], &[]);
            w.leaf("saml:ConfirmationMethod", &[], &[], HOLDER_OF_KEY);
            w.start("saml:SubjectConfirmationData", &[], &[]);
            w.start("ds:KeyInfo", &[("ds", ns::DS)], &[]);
            w.leaf("ds:KeyName", &[], &[], SIGNATURE_ID);
            w.end("ds:KeyInfo");
            w.end("saml:SubjectConfirmationData");
            w.end("saml:SubjectConfirmation");
        }
        w.end("saml:Subject");
        w.start(
            "saml:Conditions",
            &[],
            &[("NotBefore", &ts(self.not_before)), ("NotOnOrAfter", &ts(self.not_on_or_after))],
        );
        w.end("saml:Conditions");

        w.start("saml:AttributeStatement", &[], &[("id", "IDCardData")]);
        attribute(w, "sosi:IDCardID", None, &self.id_card_id);
        attribute(w, "sosi:IDCardVersion", None, self.version.as_str());
        attribute(w, "sosi:IDCardType", None, self.card_type.as_str());
        attribute(w, "sosi:AuthenticationLevel", None, &self.authentication_level.to_string());
        if let Some(hash) = &self.ocess_cert_hash {
            attribute(w, "sosi:OCESCertHash", None, hash);
        }
        w.end("saml:AttributeStatement");

        if let Some(user) = &self.user {
            w.start("saml:AttributeStatement", &[], &[("id", "UserLog")]);
            optional_attribute(w, "medcom:UserCivilRegistrationNumber", user.cpr.as_deref());
            attribute(w, "medcom:UserGivenName", None, &user.given_name);
            attribute(w, "medcom:UserSurName", None, &user.surname);
            optional_attribute(w, "medcom:UserEmailAddress", user.email.as_deref());
            optional_attribute(w, "medcom:UserRole", user.role.as_deref());
            optional_attribute(w, "medcom:UserAuthorizationCode", user.authorization_code.as_deref());
            optional_attribute(w, "medcom:UserOccupation", user.occupation.as_deref());
            w.end("saml:AttributeStatement");
        }

        w.start("saml:AttributeStatement", &[], &[("id", "SystemLog")]);
        attribute(w, "medcom:ITSystemName", None, &self.system.it_system_name);
        attribute(
            w,
            "medcom:CareProviderID",
            Some(&self.system.care_provider_id_format),
            &self.system.care_provider_id,
        );
        attribute(w, "medcom:CareProviderName", None, &self.system.care_provider_name);
        w.end("saml:AttributeStatement");
    }
}

/// The closing tag that follows the card's signature.
pub const CARD_END: &[u8] = b"</saml:Assertion>";

#[derive(Default)]
struct Statements {
    id_card_data: Option<NodeId>,
    user_log: Option<NodeId>,
    system_log: Option<NodeId>,
}

fn attribute(w: &mut CanonicalWriter, name: &str, name_format: Option<&str>, value: &str) {
    match name_format {
        Some(f) => w.start("saml:Attribute", &[], &[("Name", name), ("NameFormat", f)]),
        None => w.start("saml:Attribute", &[], &[("Name", name)]),
    }
    w.leaf("saml:AttributeValue", &[], &[], value);
    w.end("saml:Attribute");
}

fn optional_attribute(w: &mut CanonicalWriter, name: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        attribute(w, name, None, v);
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// The `saml:Attribute` with this literal `Name` in `statement` (names are plain strings that
/// look like QNames; they are never resolved, spec §3.1).
fn attribute_element(doc: &Document, statement: NodeId, name: &str) -> Option<NodeId> {
    doc.children(statement)
        .find(|&a| doc.is(a, ns::SAML, "Attribute") && doc.attribute(a, "Name").as_deref() == Some(name))
}

fn attribute_value(doc: &Document, statement: NodeId, name: &str) -> Option<String> {
    let attr = attribute_element(doc, statement, name)?;
    let value = doc.child(attr, ns::SAML, "AttributeValue")?;
    Some(doc.text(value).into_owned())
}

fn required(doc: &Document, statement: NodeId, name: &'static str) -> Result<String, CardError> {
    non_empty(attribute_value(doc, statement, name)).ok_or(CardError::Missing(name))
}

fn optional(doc: &Document, statement: NodeId, name: &str) -> Option<String> {
    non_empty(attribute_value(doc, statement, name))
}

/// A card written in canonical form whose signature is prepared but not yet made: the HSM
/// signs `signed_info_digest()`, then [`UnsignedCard::finish`] completes the card.
pub struct UnsignedCard {
    bytes: CanonicalWriter,
    prepared: sign::PreparedSignature,
}

impl UnsignedCard {
    /// The SignedInfo digest the HSM signs (as a PKCS#1 DigestInfo).
    pub fn signed_info_digest(&self) -> &[u8] {
        &self.prepared.signed_info_digest
    }

    /// The complete signed card, given the RSA signature over `signed_info_digest()`.
    pub fn finish(mut self, signature_value: &[u8]) -> Vec<u8> {
        self.bytes.raw(&sign::finish(&self.prepared, signature_value));
        self.bytes.raw(CARD_END);
        self.bytes.into_bytes()
    }
}

impl IdCard {
    /// Writes the card and prepares its enveloped `ds:Signature id="OCESSignature"` (last
    /// child): the digest is taken over the bytes as written.
    pub fn prepare_signature(&self, algorithm: SignatureAlgorithm, certificate_b64: &str) -> UnsignedCard {
        let mut bytes = CanonicalWriter::with_capacity(4096 + certificate_b64.len());
        self.write_unsigned(&mut bytes);
        let spec = SignatureSpec {
            id_attribute: ("id", SIGNATURE_ID),
            reference_uri: "#IDCard",
            algorithm,
            certificate_b64,
        };
        let prepared = sign::prepare(&[bytes.as_bytes(), CARD_END], &spec);
        UnsignedCard { bytes, prepared }
    }
}
