//! Bootstrap tokens (spec §5.3, addendum §3.3): SAML 2.0 assertions issued by a trusted IdP
//! (a local NSIS IdP: OIOH3BST; SEB: OIOH2BST; the NemLog-in STS: OIO3BST) naming a
//! professional, usually holder-of-key bound to the system that presents them.
//!
//! Read only from the element whose signature verified. Attributes are matched by `Name` alone
//! (real SEB tokens mix NameFormats for the same profile).

use jiff::Timestamp;

use super::ns;
use crate::xml::{Document, NodeId};

/// `https://healthcare.data.gov.dk/model/core/specVersion`.
pub const HEALTHCARE_SPEC_VERSION: &str = "https://healthcare.data.gov.dk/model/core/specVersion";
/// `https://data.gov.dk/model/core/specVersion`.
pub const SPEC_VERSION: &str = "https://data.gov.dk/model/core/specVersion";
/// OIOSAML 2's `dk:gov:saml:attribute:SpecVer`.
pub const SPEC_VER_2: &str = "dk:gov:saml:attribute:SpecVer";
/// The professional's NSIS persistent UUID.
pub const PROFESSIONAL_UUID: &str = "https://data.gov.dk/model/core/eid/professional/uuid/persistent";
/// The professional's organisation CVR.
pub const PROFESSIONAL_CVR: &str = "https://data.gov.dk/model/core/eid/professional/cvr";
/// The professional's organisation name.
pub const PROFESSIONAL_ORG_NAME: &str = "https://data.gov.dk/model/core/eid/professional/orgName";
/// The professional's RID (OCES2 employee number), when the IdP knows it.
pub const PROFESSIONAL_RID: &str = "https://data.gov.dk/model/core/eid/professional/rid";
/// NSIS level of assurance.
pub const NSIS_LOA: &str = "https://data.gov.dk/concept/core/nsis/loa";
/// CPR (OIOSAML 3).
pub const CPR_3: &str = "https://data.gov.dk/model/core/eid/cprNumber";
/// E-mail (OIOSAML 3).
pub const EMAIL_3: &str = "https://data.gov.dk/model/core/eid/email";
/// OIOSAML 2 names used by OIOH2BST.
pub const CPR_2: &str = "dk:gov:saml:attribute:CprNumberIdentifier";
/// CVR (OIOSAML 2).
pub const CVR_2: &str = "dk:gov:saml:attribute:CvrNumberIdentifier";
/// RID (OIOSAML 2).
pub const RID_2: &str = "dk:gov:saml:attribute:RidNumberIdentifier";
/// Assurance level (OIOSAML 2).
pub const ASSURANCE_LEVEL_2: &str = "dk:gov:saml:attribute:AssuranceLevel";
/// Organisation name (OIOSAML 2).
pub const ORG_NAME_2: &str = "urn:oid:2.5.4.10";

/// The NameID format of certificate subjects (NemLog-in and legacy citizen tokens).
pub const NAMEID_X509: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName";

/// Holder-of-key confirmation.
pub const CM_HOLDER_OF_KEY: &str = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key";

/// The bootstrap token profiles BST2SOSI takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
pub enum TokenProfile {
    /// Issued by a local NSIS IdP: OIO-SAML-H-3.0, no CPR.
    #[serde(rename = "OIOH3BST")]
    Oioh3Bst,
    /// Issued by SEB: DK-SAML-2.0 with CPR and CVR.
    #[serde(rename = "OIOH2BST")]
    Oioh2Bst,
    /// Issued by the NemLog-in STS: OIO-SAML-3.0.
    #[serde(rename = "OIO3BST")]
    Oio3Bst,
    /// A citizen's OIOSAML 3 bootstrap token (NemLog-in 3, unsealed's test IdP): OIO-SAML-3.0
    /// with the citizen's CPR.
    #[serde(rename = "OIO3BST_CITIZEN")]
    Oio3BstCitizen,
    /// A citizen's SEB bootstrap token (NSP's "OIO2BST_CITIZEN"): DK-SAML-2.0 with the CPR.
    #[serde(rename = "OIO2BST_CITIZEN")]
    Oio2BstCitizen,
    /// A citizen's NemLog-in (OIOSAML 2 era) bootstrap token: the subject is the certificate
    /// DN with the citizen's PID (`Serial=PID:…`), looked up as a CPR.
    #[serde(rename = "NEMLOGIN_BST")]
    NemLoginBst,
    /// A legacy bearer bootstrap token (still accepted on TEST1): no holder-of-key, the
    /// subject a certificate DN with the citizen's PID.
    #[serde(rename = "LEGACY_BEARER")]
    LegacyBearer,
}

impl TokenProfile {
    /// The profile's name in NSP's configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Oioh3Bst => "OIOH3BST",
            Self::Oioh2Bst => "OIOH2BST",
            Self::Oio3Bst => "OIO3BST",
            Self::Oio3BstCitizen => "OIO3BST_CITIZEN",
            Self::Oio2BstCitizen => "OIO2BST_CITIZEN",
            Self::NemLoginBst => "NEMLOGIN_BST",
            Self::LegacyBearer => "LEGACY_BEARER",
        }
    }

    /// Every profile.
    pub const ALL: [TokenProfile; 7] = [
        Self::Oioh3Bst,
        Self::Oioh2Bst,
        Self::Oio3Bst,
        Self::Oio3BstCitizen,
        Self::Oio2BstCitizen,
        Self::NemLoginBst,
        Self::LegacyBearer,
    ];

    /// The profile NSP's configuration calls `name`.
    pub fn from_name(name: &str) -> Option<TokenProfile> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The profiles of citizens' bootstrap tokens (Bst2Idws).
    pub const CITIZEN: [TokenProfile; 4] =
        [Self::Oio3BstCitizen, Self::Oio2BstCitizen, Self::NemLoginBst, Self::LegacyBearer];

    /// Whether the profile names a citizen (Bst2Idws) rather than a professional (BST2SOSI).
    pub fn is_citizen(self) -> bool {
        Self::CITIZEN.contains(&self)
    }

    /// The attributes the profile requires (addendum §3.3, "M").
    pub fn required_attributes(self) -> &'static [&'static str] {
        match self {
            Self::Oioh3Bst => {
                &[SPEC_VERSION, HEALTHCARE_SPEC_VERSION, NSIS_LOA, PROFESSIONAL_CVR, PROFESSIONAL_ORG_NAME]
            }
            Self::Oioh2Bst => &[SPEC_VER_2, ASSURANCE_LEVEL_2, CPR_2, CVR_2, ORG_NAME_2],
            Self::Oio3Bst => &[SPEC_VERSION, PROFESSIONAL_CVR, PROFESSIONAL_ORG_NAME],
            Self::Oio3BstCitizen => &[SPEC_VERSION, NSIS_LOA],
            Self::Oio2BstCitizen => &[SPEC_VER_2, ASSURANCE_LEVEL_2, CPR_2],
            Self::NemLoginBst | Self::LegacyBearer => &[],
        }
    }
}

/// Who a certificate-DN subject is, by its serialNumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectSerial<'a> {
    /// A citizen's NemID certificate: their PID.
    Pid(&'a str),
    /// An employee's certificate: the organisation's CVR and the employee's RID.
    CvrRid {
        /// CVR.
        cvr: &'a str,
        /// RID.
        rid: &'a str,
    },
}

/// Why a bootstrap token could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    /// A required element is missing.
    #[error("the bootstrap token has no {0}")]
    Missing(&'static str),
    /// A timestamp is unreadable.
    #[error("the bootstrap token's {0} is not a timestamp")]
    BadTime(&'static str),
    /// The holder-of-key certificate is not base64.
    #[error("the bootstrap token's holder-of-key certificate is not base64")]
    BadCertificate,
}

/// A bootstrap token as read from its verified element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// `ID`.
    pub id: String,
    /// `saml:Issuer`.
    pub issuer: String,
    /// `saml:NameID` Format.
    pub name_id_format: String,
    /// `saml:NameID` value.
    pub name_id: String,
    /// Whether the subject confirmation is holder-of-key.
    pub holder_of_key: bool,
    /// The holder-of-key certificate (DER), when the token names one.
    pub holder_certificate: Option<Vec<u8>>,
    /// `Conditions/@NotBefore`.
    pub not_before: Option<Timestamp>,
    /// `Conditions/@NotOnOrAfter`.
    pub not_on_or_after: Option<Timestamp>,
    /// Each `AudienceRestriction`'s audiences, in document order.
    pub audience_restrictions: Vec<Vec<String>>,
    /// Attributes by Name, each with its values, in document order.
    pub attributes: Vec<(String, Vec<String>)>,
}

impl BootstrapToken {
    /// Reads `assertion`, which must be the element whose signature verified.
    pub fn from_element(doc: &Document, assertion: NodeId) -> Result<BootstrapToken, BootstrapError> {
        let child = |parent: NodeId, local: &'static str| doc.child(parent, ns::SAML, local);
        let id = doc.attribute(assertion, "ID").map(|v| v.into_owned()).unwrap_or_default();
        let issuer = child(assertion, "Issuer")
            .map(|n| doc.text(n).trim().to_owned())
            .ok_or(BootstrapError::Missing("saml:Issuer"))?;
        let subject = child(assertion, "Subject").ok_or(BootstrapError::Missing("saml:Subject"))?;
        let name_id = child(subject, "NameID").ok_or(BootstrapError::Missing("saml:NameID"))?;
        let mut holder_of_key = false;
        let mut holder_certificate = None;
        for confirmation in doc.children(subject).filter(|&c| doc.is(c, ns::SAML, "SubjectConfirmation")) {
            if doc.attribute(confirmation, "Method").as_deref() != Some(CM_HOLDER_OF_KEY) {
                continue;
            }
            holder_of_key = true;
            // The xsi:type on SubjectConfirmationData is written unprefixed by NemLog-in (spec
            // §7.22); it is not resolved, only the KeyInfo inside is read.
            let cert = child(confirmation, "SubjectConfirmationData")
                .and_then(|d| doc.child(d, ns::DS, "KeyInfo"))
                .and_then(|k| doc.child(k, ns::DS, "X509Data"))
                .and_then(|x| doc.child(x, ns::DS, "X509Certificate"));
            if let Some(cert) = cert {
                let text: String = doc.text(cert).chars().filter(|c| !c.is_whitespace()).collect();
                use base64::Engine;
                holder_certificate = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(text.as_bytes())
                        .map_err(|_| BootstrapError::BadCertificate)?,
                );
            }
        }
        let (mut not_before, mut not_on_or_after, mut audience_restrictions) = (None, None, Vec::new());
        if let Some(conditions) = child(assertion, "Conditions") {
            let time = |name: &'static str| -> Result<Option<Timestamp>, BootstrapError> {
                doc.attribute(conditions, name)
                    .map(|v| crate::time::parse(&v).ok_or(BootstrapError::BadTime(name)))
                    .transpose()
            };
            not_before = time("NotBefore")?;
            not_on_or_after = time("NotOnOrAfter")?;
            for restriction in
                doc.children(conditions).filter(|&c| doc.is(c, ns::SAML, "AudienceRestriction"))
            {
                let audiences = doc.children(restriction).filter(|&a| doc.is(a, ns::SAML, "Audience"));
                audience_restrictions.push(audiences.map(|a| doc.text(a).trim().to_owned()).collect());
            }
        }
        let mut attributes = Vec::new();
        for statement in doc.children(assertion).filter(|&s| doc.is(s, ns::SAML, "AttributeStatement")) {
            for a in doc.children(statement).filter(|&a| doc.is(a, ns::SAML, "Attribute")) {
                let Some(name) = doc.attribute(a, "Name") else { continue };
                let values = doc
                    .children(a)
                    .filter(|&v| doc.is(v, ns::SAML, "AttributeValue"))
                    .map(|v| doc.text(v).trim().to_owned())
                    .collect();
                attributes.push((name.into_owned(), values));
            }
        }
        Ok(BootstrapToken {
            id,
            issuer,
            name_id_format: doc.attribute(name_id, "Format").map(|v| v.into_owned()).unwrap_or_default(),
            name_id: doc.text(name_id).trim().to_owned(),
            holder_of_key,
            holder_certificate,
            not_before,
            not_on_or_after,
            audience_restrictions,
            attributes,
        })
    }

    /// Whether the token may be used at `audience`: it has audience restrictions and every one
    /// of them names it (SAML Core §2.5.1.4: all restrictions must be satisfied).
    pub fn restricted_to(&self, audience: &str) -> bool {
        !self.audience_restrictions.is_empty()
            && self.audience_restrictions.iter().all(|r| r.iter().any(|a| a == audience))
    }

    /// Every audience the token names, for messages.
    pub fn audiences(&self) -> String {
        self.audience_restrictions.iter().flatten().map(String::as_str).collect::<Vec<_>>().join(",")
    }

    /// The first value of the attribute `name`, if present and non-empty.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The profile its spec-version attributes announce (addendum §3.3's dispatch order).
    pub fn profile(&self) -> Option<TokenProfile> {
        if self.attribute(HEALTHCARE_SPEC_VERSION) == Some("OIO-SAML-H-3.0") {
            Some(TokenProfile::Oioh3Bst)
        } else if matches!(self.attribute(SPEC_VERSION), Some("OIO-SAML-3.0")) {
            Some(TokenProfile::Oio3Bst)
        } else if self.attribute(SPEC_VER_2) == Some("DK-SAML-2.0") {
            Some(TokenProfile::Oioh2Bst)
        } else {
            None
        }
    }

    /// Whether the token announces `profile`: by its spec-version attributes (addendum
    /// §3.3's dispatch), a citizen's OIOSAML 3 token by its CPR where a professional's has a
    /// CVR, and the NemLog-in and legacy profiles (which announce no version) by their
    /// certificate-DN subject with a PID and, for the legacy one, its bearer confirmation.
    pub fn announces(&self, profile: TokenProfile) -> bool {
        match profile {
            TokenProfile::Oioh3Bst | TokenProfile::Oioh2Bst | TokenProfile::Oio3Bst => {
                self.profile() == Some(profile)
            }
            TokenProfile::Oio3BstCitizen => {
                self.profile() == Some(TokenProfile::Oio3Bst) && self.attribute(PROFESSIONAL_CVR).is_none()
            }
            TokenProfile::Oio2BstCitizen => {
                self.profile() == Some(TokenProfile::Oioh2Bst) && self.attribute(CVR_2).is_none()
            }
            TokenProfile::NemLoginBst => self.holder_of_key && self.subject_serial().is_some(),
            TokenProfile::LegacyBearer => !self.holder_of_key && self.pid().is_some(),
        }
    }

    /// The serialNumber of a certificate-DN subject (`…,Serial=<serial>`, as NemLog-in writes
    /// it): `PID:<pid>` for a citizen's certificate, `CVR:<cvr>-RID:<rid>` for an employee's.
    pub fn subject_serial(&self) -> Option<SubjectSerial<'_>> {
        if self.name_id_format != NAMEID_X509 {
            return None;
        }
        let serial = self.name_id.split(',').find_map(|rdn| {
            let rdn = rdn.trim();
            rdn.strip_prefix("Serial=").or_else(|| rdn.strip_prefix("SERIALNUMBER="))
        })?;
        let serial = serial.trim();
        if let Some(pid) = serial.strip_prefix("PID:").filter(|p| !p.is_empty()) {
            return Some(SubjectSerial::Pid(pid));
        }
        let (cvr, rid) = serial.strip_prefix("CVR:")?.split_once("-RID:")?;
        (!cvr.is_empty() && !rid.is_empty()).then_some(SubjectSerial::CvrRid { cvr, rid })
    }

    /// The NemID PID of a certificate-DN subject (`…,Serial=PID:<pid>`).
    pub fn pid(&self) -> Option<&str> {
        match self.subject_serial()? {
            SubjectSerial::Pid(pid) => Some(pid),
            SubjectSerial::CvrRid { .. } => None,
        }
    }

    /// The citizen's CPR as the token states it (none for the PID profiles, whose CPR is
    /// looked up): the CPR attribute, else a persistent NameID of the form
    /// `dk:gov:saml:attribute:CprNumberIdentifier:<cpr>`.
    pub fn citizen_cpr(&self) -> Option<&str> {
        self.attribute(CPR_3).or_else(|| self.attribute(CPR_2)).or_else(|| {
            self.name_id.strip_prefix(CPR_2).and_then(|rest| rest.strip_prefix(':')).filter(|c| !c.is_empty())
        })
    }

    /// The first required attribute of `profile` that the token lacks.
    pub fn missing_attribute(&self, profile: TokenProfile) -> Option<&'static str> {
        profile.required_attributes().iter().copied().find(|name| self.attribute(name).is_none())
    }
}
