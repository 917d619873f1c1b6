//! Pluggable lookups the OIO exchanges need about people: who a professional is (CPR from
//! CVR+RID or from an NSIS professional UUID), what the STS may write about them (names,
//! e-mail), and which authorisations they hold (authorisation code and education code per
//! CPR). NSP asks national registers (CPR, the authorisation register, SEB); segl asks a
//! [`PersonRegister`] and an [`AuthorisationRegister`], of which [`FileRegister`] is the TOML
//! implementation that ships. A production connector implements the same traits.

mod file;

pub use file::{FileRegister, RegisterFileError};

/// What the STS may write about a person.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserData {
    /// CPR number.
    pub cpr: String,
    /// Given name.
    pub given_name: String,
    /// Surname.
    pub surname: String,
    /// E-mail address, if registered.
    pub email: Option<String>,
}

/// One authorisation in the authorisation register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorisation {
    /// The authorisation code (e.g. `J0184`).
    pub code: String,
    /// The education code it goes with (e.g. `7170`).
    pub education_code: String,
}

/// Why a register could not answer (a miss is `Ok(None)`, not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The register is unreachable or broken.
    #[error("the register is unavailable: {0}")]
    Unavailable(String),
}

/// Who a professional is, and what may be written about them.
pub trait PersonRegister: Send + Sync {
    /// The CPR of the employee with `rid` at the organisation `cvr` (OCES2 employee identity).
    fn cpr_for_rid(&self, cvr: &str, rid: &str) -> Result<Option<String>, RegisterError>;
    /// The CPR of the professional with the NSIS persistent UUID `uuid`.
    fn cpr_for_professional_uuid(&self, uuid: &str) -> Result<Option<String>, RegisterError>;
    /// Names and e-mail for `cpr`.
    fn user_data(&self, cpr: &str) -> Result<Option<UserData>, RegisterError>;
}

/// Which authorisations a person holds.
pub trait AuthorisationRegister: Send + Sync {
    /// Every authorisation registered for `cpr` (empty when none).
    fn authorisations(&self, cpr: &str) -> Result<Vec<Authorisation>, RegisterError>;
}
