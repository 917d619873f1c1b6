//! Explaining signatures to an operator (`segl xml verify`): for every `ds:Signature` in a
//! document, the verdict of the profile it belongs to and, per reference, what was hashed and
//! how the digests compare. The verdict comes from the same verifiers the endpoints use; the
//! per-reference details are recomputed leniently so that they are shown even when an earlier
//! check already failed.

use crate::xml::dsig::algorithm::DSIG_NS;
use crate::xml::dsig::header::verify_header;
use crate::xml::dsig::policy::Policy;
use crate::xml::dsig::verify::{
    b64, read_reference, read_signature, reference_canonical, verify_enveloped_with, DsigError,
};
use crate::xml::parse::{Document, NodeId};

/// Which profile a signature was checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// An enveloped signature over its parent element (ID card, assertion, token).
    Enveloped,
    /// A WS-Security header signature (SIG-HDR) over parts of the SOAP message.
    Header,
}

/// One reference as it was checked.
#[derive(Debug, Clone)]
pub struct ReferenceReport {
    /// The URI as written.
    pub uri: String,
    /// Where the URI resolved, as a path with the element's id.
    pub element: Option<String>,
    /// The transform algorithm URIs.
    pub transforms: Vec<String>,
    /// The DigestMethod URI.
    pub digest_algorithm: Option<String>,
    /// DigestValue from the document (base64).
    pub expected_b64: Option<String>,
    /// The digest segl computed (base64).
    pub computed_b64: Option<String>,
    /// The canonical bytes that were hashed, when asked for.
    pub canonical: Option<Vec<u8>>,
    /// Why the reference itself could not be checked.
    pub problem: Option<DsigError>,
}

impl ReferenceReport {
    /// Whether the computed digest equals DigestValue.
    pub fn digest_matches(&self) -> bool {
        self.computed_b64.is_some() && self.computed_b64 == self.expected_b64
    }
}

/// One signature's verdict and details.
#[derive(Debug, Clone)]
pub struct SignatureReport {
    /// The `ds:Signature` element.
    pub signature: NodeId,
    /// Its path in the document.
    pub location: String,
    /// The profile it was verified against.
    pub profile: Profile,
    /// The SignatureMethod URI.
    pub algorithm: Option<String>,
    /// The CanonicalizationMethod URI.
    pub c14n: Option<String>,
    /// Per reference, in document order.
    pub references: Vec<ReferenceReport>,
    /// The canonical SignedInfo (what the RSA signature is over), when asked for.
    pub signed_info_canonical: Option<Vec<u8>>,
    /// The elements the signature vouches for, when it verified.
    pub covers: Vec<String>,
    /// DER of the signer certificate, when it verified.
    pub certificate_der: Option<Vec<u8>>,
    /// `Ok` when the signature verified under its profile, else the failed check.
    pub verdict: Result<(), DsigError>,
}

/// `/`-separated qualified names from the document element down to `n`, with the element's
/// ID attribute if it has one.
pub fn path(doc: &Document, n: NodeId) -> String {
    let mut names = vec![doc.qname(n).to_owned()];
    let mut cur = doc.parent(n);
    while let Some(p) = cur {
        names.push(doc.qname(p).to_owned());
        cur = doc.parent(p);
    }
    names.reverse();
    let mut s = format!("/{}", names.join("/"));
    let id = ["ID", "Id", "id"]
        .iter()
        .find_map(|a| doc.attribute(n, a))
        .or_else(|| doc.attribute_ns(n, crate::xml::parse::WSU_NS, "Id"));
    if let Some(id) = id {
        s.push_str(&format!(" (id {id:?})"));
    }
    s
}

/// Reports on every `ds:Signature` in `doc`, in document order.
pub fn explain(doc: &Document, policy: &Policy<'_>, with_canonical: bool) -> Vec<SignatureReport> {
    let root = doc.root();
    std::iter::once(root)
        .chain(doc.descendants(root))
        .filter(|&n| doc.is(n, DSIG_NS, "Signature"))
        .map(|sig| report(doc, sig, policy, with_canonical))
        .collect()
}

fn report(doc: &Document, signature: NodeId, policy: &Policy<'_>, with_canonical: bool) -> SignatureReport {
    let in_security = doc.parent(signature).is_some_and(|p| doc.local_name(p) == "Security");
    let profile = if in_security { Profile::Header } else { Profile::Enveloped };
    let mut r = SignatureReport {
        signature,
        location: path(doc, signature),
        profile,
        algorithm: None,
        c14n: None,
        references: Vec::new(),
        signed_info_canonical: None,
        covers: Vec::new(),
        certificate_der: None,
        verdict: Ok(()),
    };
    // Details, leniently: a reference that cannot be read is reported and the rest go on.
    let lenient = Policy { inclusive_c14n: true, sha1: true, ..*policy };
    if let Ok(parts) = read_signature(doc, signature, &lenient) {
        r.algorithm = Some(parts.algorithm.uri().to_owned());
        r.c14n = Some(parts.c14n.uri().to_owned());
        if with_canonical {
            let mut canonical = Vec::new();
            parts.c14n.run(doc, parts.signed_info, None, &mut canonical);
            r.signed_info_canonical = Some(canonical);
        }
        for &reference in &parts.references {
            r.references.push(reference_report(doc, signature, reference, &lenient, with_canonical));
        }
    }
    match profile {
        Profile::Enveloped => match verify_enveloped_with(doc, signature, policy) {
            Ok(v) => {
                r.covers.push(path(doc, v.signed_element));
                r.certificate_der = Some(v.certificate_der);
            }
            Err(e) => r.verdict = Err(e),
        },
        Profile::Header => match verify_header(doc, policy) {
            Ok(v) if v.signature == signature => {
                let parts =
                    [Some(v.message_id), Some(v.action), v.relates_to, v.to, Some(v.timestamp), Some(v.body)];
                r.covers.extend(parts.into_iter().flatten().map(|n| path(doc, n)));
                r.certificate_der = Some(v.certificate_der);
            }
            Ok(_) => r.verdict = Err(DsigError::SignatureCount { element: "wsse:Security".into(), found: 2 }),
            Err(e) => r.verdict = Err(e),
        },
    }
    r
}

fn reference_report(
    doc: &Document,
    signature: NodeId,
    reference: NodeId,
    policy: &Policy<'_>,
    with_canonical: bool,
) -> ReferenceReport {
    let mut rep = ReferenceReport {
        uri: doc.attribute(reference, "URI").map(|u| u.into_owned()).unwrap_or_default(),
        element: None,
        transforms: Vec::new(),
        digest_algorithm: None,
        expected_b64: None,
        computed_b64: None,
        canonical: None,
        problem: None,
    };
    let transforms = doc.children(reference).find(|&c| doc.is(c, DSIG_NS, "Transforms"));
    for t in transforms.into_iter().flat_map(|t| doc.children(t)) {
        rep.transforms.push(doc.attribute(t, "Algorithm").map(|a| a.into_owned()).unwrap_or_default());
    }
    match read_reference(doc, reference, policy) {
        Ok(parts) => {
            rep.element = Some(path(doc, parts.target));
            rep.digest_algorithm = Some(parts.digest_algorithm.uri().to_owned());
            rep.expected_b64 = Some(b64(&parts.expected));
            let mut canonical = Vec::new();
            reference_canonical(doc, signature, &parts, &mut canonical);
            rep.computed_b64 = Some(b64(&parts.digest_algorithm.digest(&canonical)));
            if with_canonical {
                rep.canonical = Some(canonical);
            }
        }
        Err(e) => rep.problem = Some(e),
    }
    rep
}
