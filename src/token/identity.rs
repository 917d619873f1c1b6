//! The IDWS identity token the citizen exchanges issue (Bst2Idws, JWT2Idws; spec §5.2): a SAML
//! 2.0 assertion about a citizen, holder-of-key bound to the certificate of the system that
//! asked for it, restricted to one audience, signed in the HSM (SIG-ASSERTION: enveloped,
//! directly after `saml:Issuer`).
//!
//! Shape decisions where the sources are silent (§5.2 [?]): seal's `CitizenIdentityTokenBuilder`
//! is followed — no AuthnStatement, attributes with NameFormat basic and `xs:string` values —
//! and the holder-of-key certificate is carried as `ds:KeyInfo/ds:X509Data` in the
//! SubjectConfirmationData, whose Recipient is the audience and whose NotOnOrAfter is the
//! token's own. No `xsi:type` is written there: the IDWS-H identity-token schema
//! (`idwsh/idt/saml.xsd`) declares none, and the standard SAML schema takes the KeyInfo as
//! lax content; the token validates against both.

use jiff::Timestamp;

use super::ns;
use super::oiosaml::{time, Attribute, UnsignedAssertion};
use crate::xml::dsig::algorithm::SignatureAlgorithm;
use crate::xml::emit::CanonicalWriter;
use crate::xml::XmlError;

/// `dk:gov:saml:attribute:SpecVer`.
pub const SPEC_VER: &str = "dk:gov:saml:attribute:SpecVer";
/// `dk:gov:saml:attribute:AssuranceLevel`.
pub const ASSURANCE_LEVEL: &str = "dk:gov:saml:attribute:AssuranceLevel";
/// `dk:gov:saml:attribute:CprNumberIdentifier`.
pub const CPR: &str = "dk:gov:saml:attribute:CprNumberIdentifier";
/// The spec version identity tokens announce.
pub const DK_SAML_2_0: &str = "DK-SAML-2.0";
/// Holder-of-key subject confirmation.
pub const CM_HOLDER_OF_KEY: &str = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key";
/// The persistent NameID format.
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

/// An identity token about to be issued.
#[derive(Debug, Clone)]
pub struct IdentityToken<'a> {
    /// `ID`: `_` and a random UUID.
    pub id: String,
    /// `IssueInstant`.
    pub issue_instant: Timestamp,
    /// `saml:Issuer`: the STS.
    pub issuer: &'a str,
    /// `saml:NameID` Format and value: as in the presented token.
    pub name_id: (&'a str, &'a str),
    /// DER of the holder-of-key certificate: the requesting system's.
    pub holder_certificate: &'a [u8],
    /// `Conditions/@NotBefore`.
    pub not_before: Timestamp,
    /// `Conditions/@NotOnOrAfter` (also the confirmation's NotOnOrAfter).
    pub not_on_or_after: Timestamp,
    /// `saml:Audience` (also the confirmation's Recipient): the request's AppliesTo.
    pub audience: &'a str,
    /// The attribute statement, in order.
    pub attributes: Vec<Attribute>,
}

impl IdentityToken<'_> {
    /// Writes the token and prepares its enveloped signature.
    pub fn prepare_signature(
        &self,
        algorithm: SignatureAlgorithm,
        certificate_b64: &str,
    ) -> Result<UnsignedAssertion, XmlError> {
        use base64::Engine;
        let mut w = CanonicalWriter::with_capacity(512);
        w.start(
            "saml:Assertion",
            &[("ds", ns::DS), ("saml", ns::SAML), ("xs", ns::XSD), ("xsi", ns::XSI)],
            &[("ID", &self.id), ("IssueInstant", &time(self.issue_instant)), ("Version", "2.0")],
        );
        w.leaf("saml:Issuer", &[], &[], self.issuer);
        let head = w.into_bytes();

        let mut w = CanonicalWriter::with_capacity(4096);
        let until = time(self.not_on_or_after);
        w.start("saml:Subject", &[], &[]);
        w.leaf("saml:NameID", &[], &[("Format", self.name_id.0)], self.name_id.1);
        w.start("saml:SubjectConfirmation", &[], &[("Method", CM_HOLDER_OF_KEY)]);
        w.start(
            "saml:SubjectConfirmationData",
            &[],
            &[("NotOnOrAfter", &until), ("Recipient", self.audience)],
        );
        w.start("ds:KeyInfo", &[], &[]);
        w.start("ds:X509Data", &[], &[]);
        let certificate = base64::engine::general_purpose::STANDARD.encode(self.holder_certificate);
        w.leaf("ds:X509Certificate", &[], &[], &certificate);
        w.end("ds:X509Data");
        w.end("ds:KeyInfo");
        w.end("saml:SubjectConfirmationData");
        w.end("saml:SubjectConfirmation");
        w.end("saml:Subject");
        w.start("saml:Conditions", &[], &[("NotBefore", &time(self.not_before)), ("NotOnOrAfter", &until)]);
        w.start("saml:AudienceRestriction", &[], &[]);
        w.leaf("saml:Audience", &[], &[], self.audience);
        w.end("saml:AudienceRestriction");
        w.end("saml:Conditions");
        w.start("saml:AttributeStatement", &[], &[]);
        for a in &self.attributes {
            a.write(&mut w);
        }
        w.end("saml:AttributeStatement");
        w.end("saml:Assertion");
        UnsignedAssertion::prepare(head, w.into_bytes(), &self.id, algorithm, certificate_b64)
    }
}
