//! The `dk:healthcare:saml:attribute:OnBehalfOf` claim of the citizen exchanges (Bst2Idws,
//! JWT2Idws) and the evidence the STS embeds in the identity token once the relation is verified.
//!
//! A citizen may ask to act for another citizen: `<prefix><other CPR>`. Two grammars reach the
//! STS. NSP's own, as unsealed sends it (`BootstrapToken.OnBehalfOfClaimType`):
//!
//! | claim prefix | kind |
//! |---|---|
//! | `urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:` | procuration |
//! | `urn:dk:healthcare:saml:actThrough:WardCustody:cprNumberIdentifier:` | ward custody (værgemål) |
//! | `urn:dk:healthcare:saml:actThrough:PartlyWardCustody:cprNumberIdentifier:` | partial ward custody |
//! | `urn:dk:healthcare:saml:actThrough:ParentalCustody:cprNumberIdentifier:` | parental custody (forældremyndighed) |
//!
//! and the IDWS-XUA SAML-H grammar, `urn:dk:healthcare:saml:<legislation>:cprNumberIdentifier:<cpr>`,
//! where `actThroughProcurationBy` is procuration (the same text as NSP's) and
//! `actThroughCustodyOver` is custody of any of the three kinds. The XUA forms for professionals
//! (delegation by a pharmacist or an authorised professional, technical assistant) and the
//! ECpr / PersistentPseudonym / userAuthorization identifier forms are recognised but refused:
//! the citizen exchanges verify citizen-to-citizen relations by CPR and nothing else.
//!
//! Evidence, as unsealed's `BootstrapTokenTest` decodes it from the issued identity token:
//!
//! - procuration ⇒ attribute `dk:gov:saml:attribute:Privileges_intermediate` = base64 of an
//!   OIO-BPP list with one group, scope `urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:<cpr>`,
//!   holding one privilege, [`PROCURATION_PRIVILEGE`]. unsealed resolves
//!   `/bpp:PrivilegeList/bpp:PrivilegeGroup` namespace-aware and expects exactly one match, so the
//!   group is written in the `bpp` namespace (OIO-BPP 1.1 style) and alone;
//! - custody ⇒ attribute `urn:dk:healthcare:saml:attribute:SubjectRelations` = base64 of
//!   `srp:SubjectRelations/srp:VerifiedRelation[@relatedPersonID=<cpr>]` in namespace
//!   [`SRP_NS`], again exactly one relation. unsealed reads only `relatedPersonID`; segl also
//!   writes which custody was verified as `relationType` = `WardCustody`, `PartlyWardCustody` or
//!   `ParentalCustody` (the tokens of NSP's claim prefixes), because a generic
//!   `actThroughCustodyOver` claim would otherwise leave the service unable to tell parental
//!   custody from guardianship. The Subject Relations Profile text itself is not public; this
//!   attribute is segl's choice.
//!
//! Values are base64 without line breaks: unsealed decodes with `java.util.Base64.getDecoder()`,
//! which refuses them.

use base64::Engine;

use crate::xml::emit::CanonicalWriter;

/// The claim URI the citizen exchanges read the relation from.
pub const CLAIM: &str = "dk:healthcare:saml:attribute:OnBehalfOf";
/// The identity-token attribute carrying procuration evidence (OIO-BPP, base64).
pub const PRIVILEGES_INTERMEDIATE: &str = super::privileges::PRIVILEGES_2;
/// The identity-token attribute carrying custody evidence (Subject Relations, base64).
pub const SUBJECT_RELATIONS: &str = "urn:dk:healthcare:saml:attribute:SubjectRelations";
/// The OIO-BPP namespace of the procuration evidence.
pub const BPP_NS: &str = super::privileges::BPP_NS;
/// The Subject Relations Profile namespace of the custody evidence (as unsealed declares it).
pub const SRP_NS: &str = "urn:dk:healthcare:saml:subject_relations_profile:1.1";
/// The one privilege in a procuration group. No source shows what NSP writes (unsealed checks
/// only the scope), but OIO-BPP requires at least one `Privilege` per group; segl names the right
/// the scope grants.
pub const PROCURATION_PRIVILEGE: &str = "urn:dk:healthcare:saml:privilege:actThroughProcurationBy";

/// NSP's (and IDWS-XUA's) procuration prefix.
pub const PROCURATION_PREFIX: &str = "urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:";
/// NSP's ward-custody prefix.
pub const WARD_CUSTODY_PREFIX: &str = "urn:dk:healthcare:saml:actThrough:WardCustody:cprNumberIdentifier:";
/// NSP's partial ward-custody prefix.
pub const PARTLY_WARD_CUSTODY_PREFIX: &str =
    "urn:dk:healthcare:saml:actThrough:PartlyWardCustody:cprNumberIdentifier:";
/// NSP's parental-custody prefix.
pub const PARENTAL_CUSTODY_PREFIX: &str =
    "urn:dk:healthcare:saml:actThrough:ParentalCustody:cprNumberIdentifier:";
/// IDWS-XUA's generic custody prefix (`actThroughCustodyOver`).
pub const CUSTODY_PREFIX: &str = "urn:dk:healthcare:saml:actThroughCustodyOver:cprNumberIdentifier:";

/// How much of a refused value an error repeats: enough to recognise it, not enough to let a
/// client push kilobytes into faults and logs.
const ECHO_LIMIT: usize = 80;

/// A relation in which one citizen may act for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// Procuration (fuldmagt).
    Procuration,
    /// Ward custody (værgemål).
    WardCustody,
    /// Partial ward custody (delvist værgemål).
    PartlyWardCustody,
    /// Parental custody (forældremyndighed).
    ParentalCustody,
    /// IDWS-XUA's `actThroughCustodyOver`: any of the three custody relations. A claim, never a
    /// registered relation.
    Custody,
}

impl RelationKind {
    /// The TOML spelling (`procuration`, `ward_custody`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Procuration => "procuration",
            Self::WardCustody => "ward_custody",
            Self::PartlyWardCustody => "partly_ward_custody",
            Self::ParentalCustody => "parental_custody",
            Self::Custody => "custody",
        }
    }

    /// The claim prefix that asks for this relation.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Procuration => PROCURATION_PREFIX,
            Self::WardCustody => WARD_CUSTODY_PREFIX,
            Self::PartlyWardCustody => PARTLY_WARD_CUSTODY_PREFIX,
            Self::ParentalCustody => PARENTAL_CUSTODY_PREFIX,
            Self::Custody => CUSTODY_PREFIX,
        }
    }

    /// Whether this is one of the custody kinds (the generic one included).
    pub fn is_custody(self) -> bool {
        !matches!(self, Self::Procuration)
    }

    /// Whether a registered relation of kind `registered` satisfies a claim for this kind: the
    /// same kind, or any custody kind for the generic [`RelationKind::Custody`].
    pub fn satisfied_by(self, registered: RelationKind) -> bool {
        self == registered || (self == Self::Custody && registered.is_custody())
    }

    /// The `relationType` written into Subject Relations evidence (`None` for procuration).
    fn srp_relation_type(self) -> Option<&'static str> {
        match self {
            Self::Procuration => None,
            Self::WardCustody => Some("WardCustody"),
            Self::PartlyWardCustody => Some("PartlyWardCustody"),
            Self::ParentalCustody => Some("ParentalCustody"),
            Self::Custody => Some("Custody"),
        }
    }
}

impl std::fmt::Display for RelationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed OnBehalfOf claim: act through `kind` for the citizen `cpr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBehalfOf {
    /// The relation asked for.
    pub kind: RelationKind,
    /// The CPR of the citizen acted for (10 digits).
    pub cpr: String,
}

impl OnBehalfOf {
    /// The claim text in NSP's grammar (the XUA one for generic custody).
    pub fn claim_value(&self) -> String {
        format!("{}{}", self.kind.prefix(), self.cpr)
    }
}

/// Why an OnBehalfOf claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnBehalfOfError {
    /// The claim is present but has no value (NSP's catalogue text, verbatim).
    #[error("OnBehalfOf claim must not be empty")]
    Empty,
    /// Neither NSP's nor the IDWS-XUA grammar (value shortened).
    #[error("OnBehalfOf claim has an unknown form: {0:?}")]
    UnknownForm(String),
    /// A recognised IDWS-XUA form that the citizen exchanges do not take (which one).
    #[error("OnBehalfOf claim of the form {0} is not accepted by the citizen exchanges")]
    NotForCitizens(&'static str),
    /// The identifier after the prefix is not a CPR number (value shortened).
    #[error("OnBehalfOf claim does not name a CPR number (10 digits): {0:?}")]
    BadCpr(String),
}

/// Whether `s` is a CPR number as the claims and registers carry it: exactly 10 ASCII digits.
pub fn is_cpr(s: &str) -> bool {
    s.len() == 10 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The IDWS-XUA legislations and what the citizen exchanges make of a CPR form of each.
const LEGISLATIONS: [(&str, Result<RelationKind, &str>); 5] = [
    ("actThroughProcurationBy", Ok(RelationKind::Procuration)),
    ("actThroughCustodyOver", Ok(RelationKind::Custody)),
    ("actThroughDelegationByRegisteredPharmacist", Err("delegation by a registered pharmacist")),
    (
        "actThroughDelegationByAuthorizedHealthcareProfessional",
        Err("delegation by an authorised healthcare professional"),
    ),
    (
        "actAsTechnicalAssistantForAuthorizedHealthcareProfessional",
        Err("technical assistant for an authorised healthcare professional"),
    ),
];

/// Parses a claim value. Surrounding whitespace is ignored (a pretty-printed `auth:Value`), and
/// an empty or all-whitespace value is [`OnBehalfOfError::Empty`].
pub fn parse(value: &str) -> Result<OnBehalfOf, OnBehalfOfError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(OnBehalfOfError::Empty);
    }
    // NSP's four prefixes first: the custody ones would otherwise read as an XUA legislation
    // "actThrough" followed by garbage.
    for kind in [
        RelationKind::Procuration,
        RelationKind::WardCustody,
        RelationKind::PartlyWardCustody,
        RelationKind::ParentalCustody,
    ] {
        if let Some(cpr) = value.strip_prefix(kind.prefix()) {
            return with_cpr(kind, cpr);
        }
    }
    let unknown = || OnBehalfOfError::UnknownForm(echo(value));
    // The ECpr and pseudonym forms: urn:dk:healthcare:saml:attribute:<legislation>:<form>:<x>.
    if let Some(rest) = value.strip_prefix("urn:dk:healthcare:saml:attribute:") {
        let (legislation, rest) = rest.split_once(':').ok_or_else(unknown)?;
        // Whatever the legislation, these identify the subject by something other than a CPR.
        if legislation_of(legislation).is_none() {
            return Err(unknown());
        }
        return match rest.split_once(':') {
            Some(("ECprNumberIdentifier", _)) => Err(OnBehalfOfError::NotForCitizens("ECprNumberIdentifier")),
            Some(("PersistentPseudonym", _)) => Err(OnBehalfOfError::NotForCitizens("PersistentPseudonym")),
            _ => Err(unknown()),
        };
    }
    // The CPR and authorisation forms: urn:dk:healthcare:saml:<legislation>:<form>:<x>.
    let rest = value.strip_prefix("urn:dk:healthcare:saml:").ok_or_else(unknown)?;
    let (legislation, rest) = rest.split_once(':').ok_or_else(unknown)?;
    let meaning = legislation_of(legislation).ok_or_else(unknown)?;
    if let Some(cpr) = rest.strip_prefix("cprNumberIdentifier:") {
        return match meaning {
            Ok(kind) => with_cpr(kind, cpr),
            Err(form) => Err(OnBehalfOfError::NotForCitizens(form)),
        };
    }
    if rest.starts_with("userAuthorization:AuthorizationCode:") {
        return Err(OnBehalfOfError::NotForCitizens("userAuthorization"));
    }
    Err(unknown())
}

/// What the citizen exchanges make of an IDWS-XUA legislation, `None` when it is not one.
fn legislation_of(name: &str) -> Option<Result<RelationKind, &'static str>> {
    LEGISLATIONS.iter().find(|(n, _)| *n == name).map(|(_, meaning)| *meaning)
}

fn with_cpr(kind: RelationKind, cpr: &str) -> Result<OnBehalfOf, OnBehalfOfError> {
    if is_cpr(cpr) {
        Ok(OnBehalfOf { kind, cpr: cpr.to_owned() })
    } else {
        Err(OnBehalfOfError::BadCpr(echo(cpr)))
    }
}

/// At most [`ECHO_LIMIT`] characters of `value`, marked when shortened.
fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_LIMIT) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

/// An attribute to add to the identity token: the proof of a verified relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The attribute `Name` ([`PRIVILEGES_INTERMEDIATE`] or [`SUBJECT_RELATIONS`]).
    pub attribute: &'static str,
    /// The attribute value: base64 (no line breaks) of the evidence document.
    pub value: String,
}

/// The evidence for `on_behalf_of` once the register confirmed a relation of kind `relation`.
/// The verified relation decides what is written (for a generic custody claim that is the
/// register's actual custody kind); the claim supplies the CPR. Should `relation` itself be the
/// generic [`RelationKind::Custody`], the claim's kind is used, and `Custody` is written only when
/// neither is more specific.
pub fn evidence(on_behalf_of: &OnBehalfOf, relation: RelationKind) -> Evidence {
    let kind = if relation == RelationKind::Custody && on_behalf_of.kind.is_custody() {
        on_behalf_of.kind
    } else {
        relation
    };
    let cpr = on_behalf_of.cpr.as_str();
    let (attribute, xml) = match kind.srp_relation_type() {
        None => (PRIVILEGES_INTERMEDIATE, procuration_privileges(cpr)),
        Some(relation_type) => (SUBJECT_RELATIONS, subject_relations(cpr, relation_type)),
    };
    Evidence { attribute, value: base64::engine::general_purpose::STANDARD.encode(xml) }
}

/// The OIO-BPP list proving procuration for `cpr`.
fn procuration_privileges(cpr: &str) -> Vec<u8> {
    let scope = format!("{PROCURATION_PREFIX}{cpr}");
    let mut w = CanonicalWriter::with_capacity(320);
    w.start("bpp:PrivilegeList", &[("bpp", BPP_NS)], &[]);
    w.start("bpp:PrivilegeGroup", &[], &[("Scope", &scope)]);
    w.leaf("bpp:Privilege", &[], &[], PROCURATION_PRIVILEGE);
    w.end("bpp:PrivilegeGroup");
    w.end("bpp:PrivilegeList");
    w.into_bytes()
}

/// The Subject Relations document proving a custody relation of `relation_type` over `cpr`.
fn subject_relations(cpr: &str, relation_type: &str) -> Vec<u8> {
    let mut w = CanonicalWriter::with_capacity(256);
    w.start("srp:SubjectRelations", &[("srp", SRP_NS)], &[]);
    w.start("srp:VerifiedRelation", &[], &[("relatedPersonID", cpr), ("relationType", relation_type)]);
    w.end("srp:VerifiedRelation");
    w.end("srp:SubjectRelations");
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::privileges::Privileges;
    use crate::xml::{Document, Limits};

    const CPR: &str = "0707614285";

    fn decode(value: &str) -> Document {
        let xml = base64::engine::general_purpose::STANDARD.decode(value).unwrap();
        Document::parse(bytes::Bytes::from(xml), &Limits::default()).unwrap()
    }

    #[test]
    fn every_nsp_prefix_parses() {
        for (prefix, kind) in [
            (
                "urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:",
                RelationKind::Procuration,
            ),
            ("urn:dk:healthcare:saml:actThrough:WardCustody:cprNumberIdentifier:", RelationKind::WardCustody),
            (
                "urn:dk:healthcare:saml:actThrough:PartlyWardCustody:cprNumberIdentifier:",
                RelationKind::PartlyWardCustody,
            ),
            (
                "urn:dk:healthcare:saml:actThrough:ParentalCustody:cprNumberIdentifier:",
                RelationKind::ParentalCustody,
            ),
        ] {
            let value = format!("{prefix}{CPR}");
            let parsed = parse(&value).unwrap();
            assert_eq!(parsed, OnBehalfOf { kind, cpr: CPR.into() });
            assert_eq!(parsed.claim_value(), value);
        }
        // A pretty-printed auth:Value.
        assert_eq!(parse(&format!("\n  {PROCURATION_PREFIX}{CPR}\n")).unwrap().cpr, CPR);
    }

    #[test]
    fn empty_or_whitespace_is_empty_with_nsps_text() {
        assert_eq!(parse(""), Err(OnBehalfOfError::Empty));
        assert_eq!(parse(" \t\r\n "), Err(OnBehalfOfError::Empty));
        assert_eq!(OnBehalfOfError::Empty.to_string(), "OnBehalfOf claim must not be empty");
    }

    #[test]
    fn unknown_forms_are_refused_and_echoed_short() {
        for value in [
            "0707614285",
            "urn:dk:healthcare:saml:actThrough:Guardian:cprNumberIdentifier:0707614285",
            "urn:dk:healthcare:saml:actThroughProcurationBy:pidNumberIdentifier:0707614285",
            "urn:dk:healthcare:saml:actThroughSomething:cprNumberIdentifier:0707614285",
            "urn:dk:healthcare:saml:",
            "urn:dk:healthcare:saml:attribute:actThroughCustodyOver",
            "urn:dk:healthcare:saml:attribute:actThroughCustodyOver:Other:x",
            "urn:dk:healthcare:saml:attribute:nonsense:ECprNumberIdentifier:010101777E",
            "urn:dk:gov:saml:actThroughProcurationBy:cprNumberIdentifier:0707614285",
        ] {
            assert!(matches!(parse(value), Err(OnBehalfOfError::UnknownForm(_))), "{value}");
        }
        let long = "x".repeat(10_000);
        let e = parse(&long).unwrap_err();
        let OnBehalfOfError::UnknownForm(echoed) = &e else { panic!("{e:?}") };
        assert_eq!(echoed.chars().count(), ECHO_LIMIT + 1);
        assert!(e.to_string().len() < 200, "{e}");
        // Shortening respects character boundaries.
        let e = parse(&"æ".repeat(200)).unwrap_err();
        assert!(e.to_string().ends_with("…\""), "{e}");
    }

    #[test]
    fn a_cpr_is_exactly_ten_digits() {
        for bad in ["070761428", "07076142851", "070761428X", "0707-14285", "", "０７０７６１４２８５"]
        {
            let e = parse(&format!("{PARENTAL_CUSTODY_PREFIX}{bad}")).unwrap_err();
            assert_eq!(e, OnBehalfOfError::BadCpr(bad.into()), "{bad}");
        }
        assert!(matches!(parse(&format!("{CUSTODY_PREFIX}12")), Err(OnBehalfOfError::BadCpr(_))));
        assert!(is_cpr(CPR));
        assert!(!is_cpr("070761428 "));
    }

    #[test]
    fn xua_forms_map_or_are_refused_with_their_own_error() {
        assert_eq!(
            parse("urn:dk:healthcare:saml:actThroughCustodyOver:cprNumberIdentifier:0101017777").unwrap(),
            OnBehalfOf { kind: RelationKind::Custody, cpr: "0101017777".into() }
        );
        assert_eq!(
            parse("urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:0101017777")
                .unwrap()
                .kind,
            RelationKind::Procuration
        );
        for (value, form) in [
            (
                "urn:dk:healthcare:saml:actThroughDelegationByRegisteredPharmacist:cprNumberIdentifier:0101017777",
                "delegation by a registered pharmacist",
            ),
            (
                "urn:dk:healthcare:saml:actThroughDelegationByAuthorizedHealthcareProfessional:cprNumberIdentifier:0101017777",
                "delegation by an authorised healthcare professional",
            ),
            (
                "urn:dk:healthcare:saml:actAsTechnicalAssistantForAuthorizedHealthcareProfessional:cprNumberIdentifier:0101017777",
                "technical assistant for an authorised healthcare professional",
            ),
            (
                "urn:dk:healthcare:saml:actThroughDelegationByAuthorizedHealthcareProfessional:userAuthorization:AuthorizationCode:341KY:EducationCode:5501",
                "userAuthorization",
            ),
            (
                "urn:dk:healthcare:saml:actAsTechnicalAssistantForAuthorizedHealthcareProfessional:userAuthorization:AuthorizationCode:141KY:EducationCode:1501",
                "userAuthorization",
            ),
            (
                "urn:dk:healthcare:saml:attribute:actThroughProcurationBy:ECprNumberIdentifier:010101777E",
                "ECprNumberIdentifier",
            ),
            ("urn:dk:healthcare:saml:attribute:actThroughCustodyOver:PersistentPseudonym:Test", "PersistentPseudonym"),
        ] {
            let e = parse(value).unwrap_err();
            assert_eq!(e, OnBehalfOfError::NotForCitizens(form), "{value}");
            assert!(e.to_string().contains("citizen exchanges"), "{e}");
        }
    }

    #[test]
    fn kinds_have_their_toml_names_and_custody_matches_any_custody() {
        #[derive(serde::Deserialize)]
        struct Row {
            kind: RelationKind,
        }
        for kind in [
            RelationKind::Procuration,
            RelationKind::WardCustody,
            RelationKind::PartlyWardCustody,
            RelationKind::ParentalCustody,
            RelationKind::Custody,
        ] {
            let row: Row = toml::from_str(&format!("kind = \"{}\"", kind.name())).unwrap();
            assert_eq!(row.kind, kind);
            assert_eq!(kind.to_string(), kind.name());
            assert!(kind.satisfied_by(kind));
        }
        assert!(toml::from_str::<Row>("kind = \"wardCustody\"").is_err());
        assert!(RelationKind::Custody.satisfied_by(RelationKind::PartlyWardCustody));
        assert!(!RelationKind::Custody.satisfied_by(RelationKind::Procuration));
        assert!(!RelationKind::Procuration.satisfied_by(RelationKind::ParentalCustody));
        assert!(!RelationKind::ParentalCustody.satisfied_by(RelationKind::WardCustody));
    }

    #[test]
    fn procuration_evidence_is_one_bpp_group_scoped_to_the_cpr() {
        let claim = parse(&format!("{PROCURATION_PREFIX}{CPR}")).unwrap();
        let e = evidence(&claim, RelationKind::Procuration);
        assert_eq!(e.attribute, "dk:gov:saml:attribute:Privileges_intermediate");
        assert!(!e.value.contains('\n'));
        let doc = decode(&e.value);
        let root = doc.root();
        assert!(doc.is(root, "http://itst.dk/oiosaml/basic_privilege_profile", "PrivilegeList"));
        let groups: Vec<_> = doc.children(root).collect();
        assert_eq!(groups.len(), 1);
        assert!(doc.is(groups[0], BPP_NS, "PrivilegeGroup"), "the group must be bpp-qualified for unsealed");
        assert_eq!(
            doc.attribute(groups[0], "Scope").unwrap(),
            "urn:dk:healthcare:saml:actThroughProcurationBy:cprNumberIdentifier:0707614285"
        );
        let privilege = doc.child(groups[0], BPP_NS, "Privilege").unwrap();
        assert_eq!(doc.text(privilege), PROCURATION_PRIVILEGE);
        // segl's own OIO-BPP reader agrees.
        let read = Privileges::from_base64(&e.value, &Limits::default()).unwrap();
        assert_eq!(
            read.groups,
            vec![(format!("{PROCURATION_PREFIX}{CPR}"), vec![PROCURATION_PRIVILEGE.into()])]
        );
    }

    #[test]
    fn custody_evidence_is_one_verified_relation_naming_the_registered_kind() {
        for (claimed, registered, written) in [
            (RelationKind::ParentalCustody, RelationKind::ParentalCustody, "ParentalCustody"),
            (RelationKind::WardCustody, RelationKind::WardCustody, "WardCustody"),
            (RelationKind::PartlyWardCustody, RelationKind::PartlyWardCustody, "PartlyWardCustody"),
            // A generic claim writes what the register holds.
            (RelationKind::Custody, RelationKind::WardCustody, "WardCustody"),
            (RelationKind::Custody, RelationKind::ParentalCustody, "ParentalCustody"),
            // A generic "relation" falls back to the claim, then to the generic word.
            (RelationKind::PartlyWardCustody, RelationKind::Custody, "PartlyWardCustody"),
            (RelationKind::Custody, RelationKind::Custody, "Custody"),
        ] {
            let e = evidence(&OnBehalfOf { kind: claimed, cpr: CPR.into() }, registered);
            assert_eq!(e.attribute, "urn:dk:healthcare:saml:attribute:SubjectRelations");
            let doc = decode(&e.value);
            let root = doc.root();
            assert!(doc.is(root, "urn:dk:healthcare:saml:subject_relations_profile:1.1", "SubjectRelations"));
            let relations: Vec<_> = doc.children(root).collect();
            assert_eq!(relations.len(), 1);
            assert!(doc.is(relations[0], SRP_NS, "VerifiedRelation"));
            assert_eq!(doc.attribute(relations[0], "relatedPersonID").unwrap(), CPR);
            assert_eq!(doc.attribute(relations[0], "relationType").unwrap(), written);
        }
    }

    #[test]
    fn xml_metacharacters_cannot_get_into_the_evidence() {
        // The parser stops them first...
        for hostile in ["07076142\"8", "0707<14285", "070761&285", "\"/><x a=\"1"] {
            assert!(matches!(
                parse(&format!("{PROCURATION_PREFIX}{hostile}")),
                Err(OnBehalfOfError::BadCpr(_))
            ));
        }
        // ...and the writer escapes whatever a caller builds by hand.
        let hostile = "\"/><srp:VerifiedRelation relatedPersonID=\"1111111118\"/><x y=\"&amp;\t\n'";
        for kind in [RelationKind::Procuration, RelationKind::ParentalCustody] {
            let e = evidence(&OnBehalfOf { kind, cpr: hostile.into() }, kind);
            let doc = decode(&e.value);
            let root = doc.root();
            let children: Vec<_> = doc.children(root).collect();
            assert_eq!(children.len(), 1, "{kind}: no element was injected");
            let read = match kind {
                RelationKind::Procuration => doc.attribute(children[0], "Scope").unwrap().into_owned(),
                _ => doc.attribute(children[0], "relatedPersonID").unwrap().into_owned(),
            };
            assert!(read.ends_with(hostile), "{kind}: {read:?}");
        }
    }
}
