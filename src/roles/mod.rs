//! National roles (STS configuration guide, "Nationale roller"): a user card may claim a
//! national role as its `medcom:UserRole`, written
//! `urn:dk:healthcare:national-federation-role:code:<code>:value:<value>`.
//!
//! A claim is accepted when the role is defined (`[roles] definitions`, the NSP's
//! `roleDefinitions`) and either the card's care provider is a trusted CVR for the endpoint
//! (`trusted_cvrs`, the NSP's `trustedCvr`) or the role register says the user holds the role
//! at that care provider. The NSP asks its external register (SEB); segl asks a [`RoleSource`],
//! of which [`FileRoleSource`] is the configuration-file implementation. Roles that are not
//! national roles (e.g. education codes like `7170`) pass through unchecked.

mod file_source;

pub use file_source::FileRoleSource;

use crate::config::{RoleDefinition, RolesConfig, TrustedCvr};

/// The URN prefix of a national role.
pub const NATIONAL_ROLE_PREFIX: &str = "urn:dk:healthcare:national-federation-role:code:";

/// A national role as claimed in a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalRole {
    /// The role code, e.g. `40001`.
    pub code: String,
    /// The role value, e.g. `Laegesekretaer`.
    pub value: String,
}

impl NationalRole {
    /// Reads a national role from a `medcom:UserRole` value: `None` when the value is not a
    /// national role at all, `Some(Err)` when it is one but malformed.
    pub fn parse(user_role: &str) -> Option<Result<NationalRole, RoleError>> {
        let rest = user_role.strip_prefix(NATIONAL_ROLE_PREFIX)?;
        Some(match rest.split_once(":value:") {
            Some((code, value)) if !code.is_empty() && !value.is_empty() && !code.contains(':') => {
                Ok(NationalRole { code: code.to_owned(), value: value.to_owned() })
            }
            _ => Err(RoleError::Malformed(user_role.to_owned())),
        })
    }
}

/// The endpoint families a trusted CVR can be trusted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleEndpoint {
    /// `STS`: the DGWS endpoints (SecurityTokenService, NewSecurityTokenService).
    Sts,
    /// `NBO`: OIOSaml2Sosi.
    Nbo,
}

impl RoleEndpoint {
    fn config_name(self) -> &'static str {
        match self {
            Self::Sts => "STS",
            Self::Nbo => "NBO",
        }
    }
}

/// Why a national role claim is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// The value starts like a national role but is not `code:<code>:value:<value>`.
    #[error("malformed national role {0:?}")]
    Malformed(String),
    /// No such role is defined.
    #[error("national role code {code} value {value} is not a defined national role")]
    Undefined { code: String, value: String },
    /// The register does not give the user this role at this care provider.
    #[error("the user does not hold national role {code} ({value}) at care provider {cvr}")]
    NotHeld { code: String, value: String, cvr: String },
    /// The card has no CPR, so the register cannot be asked.
    #[error("national role {code} cannot be validated: the card carries no CPR number")]
    NoCpr { code: String },
    /// The register could not be asked.
    #[error("the role register is unavailable: {0}")]
    Unavailable(String),
}

/// Who claims a role: the user's CPR and the care provider's CVR.
#[derive(Debug, Clone, Copy)]
pub struct RoleHolder<'a> {
    /// The user's CPR number, if the card has one.
    pub cpr: Option<&'a str>,
    /// The care provider (`medcom:CareProviderID` with NameFormat cvrnumber).
    pub cvr: &'a str,
}

/// A register of which user holds which national role where (the NSP's SEB).
pub trait RoleSource: Send + Sync {
    /// Whether `cpr` holds the role with `code` at care provider `cvr`.
    fn holds(&self, cpr: &str, cvr: &str, code: &str) -> Result<bool, RoleError>;
}

/// The national-role policy in force.
pub struct NationalRoles {
    definitions: Vec<RoleDefinition>,
    trusted_cvrs: Vec<TrustedCvr>,
    source: Box<dyn RoleSource>,
}

/// Why the role configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RolesConfigError {
    /// The assignments file is unusable.
    #[error("role assignments {path}: {reason}")]
    Assignments { path: String, reason: String },
}

impl NationalRoles {
    /// The policy of the `[roles]` section, with the file-backed register.
    pub fn from_config(cfg: &RolesConfig) -> Result<Self, RolesConfigError> {
        let source = match &cfg.assignments_file {
            Some(path) => FileRoleSource::load(path)?,
            None => FileRoleSource::default(),
        };
        Ok(Self::new(cfg, Box::new(source)))
    }

    /// The policy of `cfg` with another register.
    pub fn new(cfg: &RolesConfig, source: Box<dyn RoleSource>) -> Self {
        NationalRoles { definitions: cfg.definitions.clone(), trusted_cvrs: cfg.trusted_cvrs.clone(), source }
    }

    /// Accepts or refuses the role a card claims; non-national roles are accepted as they are.
    pub fn check(
        &self,
        endpoint: RoleEndpoint,
        user_role: &str,
        holder: RoleHolder<'_>,
    ) -> Result<(), RoleError> {
        let Some(role) = NationalRole::parse(user_role) else { return Ok(()) };
        let role = role?;
        if !self.definitions.iter().any(|d| d.code == role.code && d.value == role.value) {
            return Err(RoleError::Undefined { code: role.code, value: role.value });
        }
        let trusted =
            self.trusted_cvrs.iter().any(|t| t.cvr == holder.cvr && t.endpoint == endpoint.config_name());
        if trusted {
            return Ok(());
        }
        let cpr = holder.cpr.filter(|c| !c.is_empty()).ok_or(RoleError::NoCpr { code: role.code.clone() })?;
        if self.source.holds(cpr, holder.cvr, &role.code)? {
            Ok(())
        } else {
            Err(RoleError::NotHeld { code: role.code, value: role.value, cvr: holder.cvr.to_owned() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(assignments: &[(&str, &str, &str)]) -> NationalRoles {
        let cfg = RolesConfig {
            definitions: vec![RoleDefinition {
                source: None,
                external_name: None,
                code: "40001".into(),
                value: "Laegesekretaer".into(),
            }],
            trusted_cvrs: vec![TrustedCvr { cvr: "29190909".into(), endpoint: "STS".into() }],
            assignments_file: None,
        };
        NationalRoles::new(&cfg, Box::new(FileRoleSource::from_assignments(assignments)))
    }

    const ROLE: &str = "urn:dk:healthcare:national-federation-role:code:40001:value:Laegesekretaer";

    #[test]
    fn parses_national_roles_only() {
        assert_eq!(NationalRole::parse("7170"), None);
        assert_eq!(
            NationalRole::parse(ROLE),
            Some(Ok(NationalRole { code: "40001".into(), value: "Laegesekretaer".into() }))
        );
        assert!(matches!(
            NationalRole::parse("urn:dk:healthcare:national-federation-role:code:40001"),
            Some(Err(RoleError::Malformed(_)))
        ));
    }

    #[test]
    fn register_decides_for_untrusted_cvrs() {
        let r = roles(&[("0501792275", "20921897", "40001")]);
        let holder = RoleHolder { cpr: Some("0501792275"), cvr: "20921897" };
        assert_eq!(r.check(RoleEndpoint::Sts, ROLE, holder), Ok(()));
        let other = RoleHolder { cpr: Some("1111111118"), cvr: "20921897" };
        assert!(matches!(r.check(RoleEndpoint::Sts, ROLE, other), Err(RoleError::NotHeld { .. })));
        let no_cpr = RoleHolder { cpr: None, cvr: "20921897" };
        assert!(matches!(r.check(RoleEndpoint::Sts, ROLE, no_cpr), Err(RoleError::NoCpr { .. })));
    }

    #[test]
    fn trusted_cvr_skips_the_register_for_its_endpoint_only() {
        let r = roles(&[]);
        let holder = RoleHolder { cpr: None, cvr: "29190909" };
        assert_eq!(r.check(RoleEndpoint::Sts, ROLE, holder), Ok(()));
        assert!(r.check(RoleEndpoint::Nbo, ROLE, holder).is_err());
    }

    #[test]
    fn undefined_roles_are_refused_even_for_trusted_cvrs() {
        let r = roles(&[]);
        let holder = RoleHolder { cpr: None, cvr: "29190909" };
        let undefined = "urn:dk:healthcare:national-federation-role:code:99999:value:Nope";
        assert!(matches!(r.check(RoleEndpoint::Sts, undefined, holder), Err(RoleError::Undefined { .. })));
        assert_eq!(r.check(RoleEndpoint::Sts, "7170", holder), Ok(()));
    }
}
