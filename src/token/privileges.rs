//! OIO Basic Privilege Profile (OIO-BPP) privileges carried base64-encoded in a token's
//! `Privileges_intermediate` attribute: `bpp:PrivilegeList` of `PrivilegeGroup`s, each with a
//! `Scope` (e.g. `urn:dk:gov:saml:cvrNumberIdentifier:<cvr>`) and its `Privilege` values.

use base64::Engine;

use crate::xml::{Document, Limits};

/// The OIO-BPP namespace.
pub const BPP_NS: &str = "http://itst.dk/oiosaml/basic_privilege_profile";
/// The attribute OIOSAML 2 tokens carry them in.
pub const PRIVILEGES_2: &str = "dk:gov:saml:attribute:Privileges_intermediate";
/// The attribute OIOSAML 3 tokens carry them in.
pub const PRIVILEGES_3: &str = "https://data.gov.dk/model/core/eid/privilegesIntermediate";
/// The scope prefix of privileges held at an organisation.
pub const CVR_SCOPE: &str = "urn:dk:gov:saml:cvrNumberIdentifier:";

/// The privilege groups of a token, by scope.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Privileges {
    /// (Scope, privileges) in document order.
    pub groups: Vec<(String, Vec<String>)>,
}

/// Why a privilege list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivilegeError {
    /// Not base64.
    #[error("the privilege list is not base64")]
    Base64,
    /// Not well-formed XML (or over the parser's limits).
    #[error("the privilege list is not acceptable XML: {0}")]
    Xml(String),
    /// Not a `bpp:PrivilegeList`, or a group without a Scope.
    #[error("the privilege list is not an OIO-BPP PrivilegeList: {0}")]
    Shape(&'static str),
}

impl Privileges {
    /// Decodes and reads the attribute value.
    pub fn from_base64(value: &str, limits: &Limits) -> Result<Privileges, PrivilegeError> {
        let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        let xml =
            base64::engine::general_purpose::STANDARD.decode(compact).map_err(|_| PrivilegeError::Base64)?;
        let doc = Document::parse(bytes::Bytes::from(xml), limits)
            .map_err(|e| PrivilegeError::Xml(e.to_string()))?;
        let root = doc.root();
        if !doc.is(root, BPP_NS, "PrivilegeList") {
            return Err(PrivilegeError::Shape("the document element is not bpp:PrivilegeList"));
        }
        let mut groups = Vec::new();
        // OIO-BPP 1.0 writes the children unqualified, 1.1 in the bpp namespace: read by local name.
        for group in doc.children(root).filter(|&g| doc.local_name(g) == "PrivilegeGroup") {
            let scope = doc
                .attribute(group, "Scope")
                .ok_or(PrivilegeError::Shape("a PrivilegeGroup has no Scope"))?;
            let privileges = doc
                .children(group)
                .filter(|&p| doc.local_name(p) == "Privilege")
                .map(|p| doc.text(p).trim().to_owned())
                .collect();
            groups.push((scope.into_owned(), privileges));
        }
        Ok(Privileges { groups })
    }

    /// The privileges held at the organisation `cvr`.
    pub fn at_cvr(&self, cvr: &str) -> Vec<&str> {
        let scope = format!("{CVR_SCOPE}{cvr}");
        self.groups
            .iter()
            .filter(|(s, _)| *s == scope)
            .flat_map(|(_, p)| p.iter().map(String::as_str))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(xml: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(xml)
    }

    #[test]
    fn reads_groups_qualified_or_not_and_refuses_what_is_not_a_privilege_list() {
        let xml = "<bpp:PrivilegeList xmlns:bpp=\"http://itst.dk/oiosaml/basic_privilege_profile\"><PrivilegeGroup Scope=\"urn:dk:gov:saml:cvrNumberIdentifier:20921897\"><Privilege>urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer</Privilege></PrivilegeGroup><bpp:PrivilegeGroup Scope=\"urn:dk:gov:saml:cvrNumberIdentifier:11111111\"><bpp:Privilege>x</bpp:Privilege></bpp:PrivilegeGroup></bpp:PrivilegeList>";
        let p = Privileges::from_base64(&b64(xml), &Limits::default()).unwrap();
        assert_eq!(
            p.at_cvr("20921897"),
            vec!["urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer"]
        );
        assert_eq!(p.at_cvr("11111111"), vec!["x"]);
        assert!(p.at_cvr("2").is_empty());
        assert_eq!(Privileges::from_base64("%%%", &Limits::default()), Err(PrivilegeError::Base64));
        assert!(matches!(
            Privileges::from_base64(&b64("<a"), &Limits::default()),
            Err(PrivilegeError::Xml(_))
        ));
        assert!(matches!(
            Privileges::from_base64(&b64("<a/>"), &Limits::default()),
            Err(PrivilegeError::Shape(_))
        ));
        let no_scope = "<bpp:PrivilegeList xmlns:bpp=\"http://itst.dk/oiosaml/basic_privilege_profile\"><PrivilegeGroup/></bpp:PrivilegeList>";
        assert!(matches!(
            Privileges::from_base64(&b64(no_scope), &Limits::default()),
            Err(PrivilegeError::Shape(_))
        ));
        let doctype = "<!DOCTYPE x [<!ENTITY e \"e\">]><bpp:PrivilegeList xmlns:bpp=\"http://itst.dk/oiosaml/basic_privilege_profile\"/>";
        assert!(matches!(
            Privileges::from_base64(&b64(doctype), &Limits::default()),
            Err(PrivilegeError::Xml(_))
        ));
    }
}
