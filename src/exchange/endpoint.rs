//! The endpoint table: every path the STS answers under `/sts/services/`, its family (which
//! decides the message shape and the fault dialect) and where admission control finds a
//! request's priority and client.

use super::fault::FaultDialect;
use super::hints::{self, AdmissionHints};

/// The path prefix of every STS endpoint.
pub const SERVICES_PREFIX: &str = "/sts/services/";

/// The endpoints, by the last path segment under `/sts/services/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `NewSecurityTokenService`: DGWS; the issued card's NameID describes the client certificate.
    NewSecurityTokenService,
    /// `SecurityTokenService`: DGWS (legacy).
    SecurityTokenService,
    /// `Sosi2OIOSaml`: STS-signed ID card → OIOSAML assertion encrypted to an audience.
    Sosi2OioSaml,
    /// `OIOSaml2Sosi`: NemLog-in OIOSAML assertion → ID card.
    OioSaml2Sosi,
    /// `BST2SOSI`: bootstrap token → ID card.
    Bst2Sosi,
    /// `Bst2Idws`: citizen bootstrap token → IDWS identity token.
    Bst2Idws,
    /// `JWT2Idws` (alias `JWTIdws`): JWT → IDWS identity token.
    Jwt2Idws,
    /// `JWT2OIOSaml`: JWT → OIOSAML assertion.
    Jwt2OioSaml,
}

/// One row of the table.
struct Row {
    path: &'static str,
    endpoint: Endpoint,
}

/// Every path served, aliases included. Matching is exact (case-sensitive), as the NSP's.
const TABLE: &[Row] = &[
    Row { path: "NewSecurityTokenService", endpoint: Endpoint::NewSecurityTokenService },
    Row { path: "SecurityTokenService", endpoint: Endpoint::SecurityTokenService },
    Row { path: "Sosi2OIOSaml", endpoint: Endpoint::Sosi2OioSaml },
    Row { path: "OIOSaml2Sosi", endpoint: Endpoint::OioSaml2Sosi },
    Row { path: "BST2SOSI", endpoint: Endpoint::Bst2Sosi },
    Row { path: "Bst2Idws", endpoint: Endpoint::Bst2Idws },
    Row { path: "JWT2Idws", endpoint: Endpoint::Jwt2Idws },
    Row { path: "JWTIdws", endpoint: Endpoint::Jwt2Idws },
    Row { path: "JWT2OIOSaml", endpoint: Endpoint::Jwt2OioSaml },
];

impl Endpoint {
    /// Every endpoint, once.
    pub const ALL: [Endpoint; 8] = [
        Endpoint::NewSecurityTokenService,
        Endpoint::SecurityTokenService,
        Endpoint::Sosi2OioSaml,
        Endpoint::OioSaml2Sosi,
        Endpoint::Bst2Sosi,
        Endpoint::Bst2Idws,
        Endpoint::Jwt2Idws,
        Endpoint::Jwt2OioSaml,
    ];

    /// Routes on the URL path only; SOAPAction is ignored (spec §1.2).
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let name = path.strip_prefix(SERVICES_PREFIX)?.trim_end_matches('/');
        TABLE.iter().find(|row| row.path == name).map(|row| row.endpoint)
    }

    /// The endpoint's canonical name (its path segment), for logs, metrics and audit records.
    pub fn name(self) -> &'static str {
        TABLE.iter().find(|row| row.endpoint == self).map_or("", |row| row.path)
    }

    /// The message family, which decides the fault dialect of every answer on this path,
    /// including refusals under load and at the HTTP level.
    pub fn dialect(self) -> FaultDialect {
        match self {
            Endpoint::NewSecurityTokenService | Endpoint::SecurityTokenService => FaultDialect::Dgws,
            _ => FaultDialect::Oio,
        }
    }

    /// The fault actor's check name in NSP's catalogue (`dk:sosi:sts:<check>`, addendum §4)
    /// for refusals that no more specific check owns.
    pub fn check_name(self) -> &'static str {
        match self {
            Endpoint::NewSecurityTokenService | Endpoint::SecurityTokenService => "sts",
            Endpoint::Sosi2OioSaml => "ibo",
            Endpoint::OioSaml2Sosi => "nbo",
            Endpoint::Bst2Sosi => "bst2sosi",
            Endpoint::Bst2Idws | Endpoint::Jwt2Idws | Endpoint::Jwt2OioSaml => "its",
        }
    }

    /// Where admission control finds the request's priority and client: read from raw bytes,
    /// never parsed, so that a refusal costs microseconds.
    pub fn admission_hints(self, body: &[u8]) -> AdmissionHints {
        match self.dialect() {
            FaultDialect::Dgws => hints::dgws(body),
            FaultDialect::Oio => hints::oio(body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_routes_by_its_name_and_aliases_route_to_theirs() {
        for endpoint in Endpoint::ALL {
            let path = format!("{SERVICES_PREFIX}{}", endpoint.name());
            assert_eq!(Endpoint::from_path(&path), Some(endpoint), "{path}");
            assert_eq!(Endpoint::from_path(&format!("{path}/")), Some(endpoint), "{path}/");
        }
        assert_eq!(Endpoint::from_path("/sts/services/JWTIdws"), Some(Endpoint::Jwt2Idws));
        assert_eq!(Endpoint::Jwt2Idws.name(), "JWT2Idws");
        assert_eq!(Endpoint::from_path("/sts/services/sosi2oiosaml"), None);
        assert_eq!(Endpoint::from_path("/other/NewSecurityTokenService"), None);
    }

    #[test]
    fn dgws_paths_speak_dgws_and_the_rest_oio() {
        assert_eq!(Endpoint::NewSecurityTokenService.dialect(), FaultDialect::Dgws);
        assert_eq!(Endpoint::SecurityTokenService.dialect(), FaultDialect::Dgws);
        for e in &Endpoint::ALL[2..] {
            assert_eq!(e.dialect(), FaultDialect::Oio, "{e:?}");
        }
    }
}
