//! The registers as one TOML file (the embedded default; `segl dev setup` writes one for the
//! development PKI):
//!
//! ```toml
//! [[person]]
//! cpr = "0501792275"
//! given_name = "Lars"
//! surname = "Larsen"
//! email = "lars.larsen@testby.example"
//! rid = [{ cvr = "20921897", rid = "52723247" }]
//! professional_uuid = ["6f0c2b6e-8a55-4a39-9c0e-3c1f2a7d9b01"]
//! authorisation = [{ code = "J0184", education_code = "7170" }]
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{Authorisation, AuthorisationRegister, PersonRegister, RegisterError, UserData};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFile {
    #[serde(default)]
    person: Vec<Person>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Person {
    cpr: String,
    given_name: String,
    surname: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    rid: Vec<RidEntry>,
    #[serde(default)]
    professional_uuid: Vec<String>,
    #[serde(default)]
    authorisation: Vec<AuthorisationEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RidEntry {
    cvr: String,
    rid: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthorisationEntry {
    code: String,
    education_code: String,
}

/// Why a register file was refused.
#[derive(Debug, thiserror::Error)]
#[error("register {path}: {reason}")]
pub struct RegisterFileError {
    path: String,
    reason: String,
}

/// The person and authorisation registers read from one TOML file.
#[derive(Debug, Default)]
pub struct FileRegister {
    users: HashMap<String, UserData>,
    by_rid: HashMap<(String, String), String>,
    by_uuid: HashMap<String, String>,
    authorisations: HashMap<String, Vec<Authorisation>>,
}

impl FileRegister {
    /// Reads the file; an absent file is an empty register. A CPR, RID or UUID listed twice is
    /// refused (a lookup must have one answer).
    pub fn load(path: &Path) -> Result<FileRegister, RegisterFileError> {
        let err = |reason: String| RegisterFileError { path: path.display().to_string(), reason };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileRegister::default()),
            Err(e) => return Err(err(e.to_string())),
        };
        let file: RegisterFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut register = FileRegister::default();
        for p in file.person {
            if register.users.contains_key(&p.cpr) {
                return Err(err(format!("CPR {} is listed twice", p.cpr)));
            }
            for r in p.rid {
                if let Some(other) = register.by_rid.insert((r.cvr.clone(), r.rid.clone()), p.cpr.clone()) {
                    return Err(err(format!(
                        "CVR {} RID {} names two people ({other} and {})",
                        r.cvr, r.rid, p.cpr
                    )));
                }
            }
            for u in p.professional_uuid {
                if let Some(other) = register.by_uuid.insert(u.clone(), p.cpr.clone()) {
                    return Err(err(format!(
                        "professional UUID {u} names two people ({other} and {})",
                        p.cpr
                    )));
                }
            }
            register.authorisations.insert(
                p.cpr.clone(),
                p.authorisation
                    .into_iter()
                    .map(|a| Authorisation { code: a.code, education_code: a.education_code })
                    .collect(),
            );
            register.users.insert(
                p.cpr.clone(),
                UserData { cpr: p.cpr, given_name: p.given_name, surname: p.surname, email: p.email },
            );
        }
        Ok(register)
    }
}

impl PersonRegister for FileRegister {
    fn cpr_for_rid(&self, cvr: &str, rid: &str) -> Result<Option<String>, RegisterError> {
        Ok(self.by_rid.get(&(cvr.to_owned(), rid.to_owned())).cloned())
    }

    fn cpr_for_professional_uuid(&self, uuid: &str) -> Result<Option<String>, RegisterError> {
        Ok(self.by_uuid.get(uuid).cloned())
    }

    fn user_data(&self, cpr: &str) -> Result<Option<UserData>, RegisterError> {
        Ok(self.users.get(cpr).cloned())
    }
}

impl AuthorisationRegister for FileRegister {
    fn authorisations(&self, cpr: &str) -> Result<Vec<Authorisation>, RegisterError> {
        Ok(self.authorisations.get(cpr).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("segl-register-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn looks_people_up_by_rid_uuid_and_cpr() {
        let path = write(
            "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\nrid = [{ cvr = \"9\", rid = \"7\" }]\nprofessional_uuid = [\"u\"]\nauthorisation = [{ code = \"J0184\", education_code = \"7170\" }]\n",
        );
        let r = FileRegister::load(&path).unwrap();
        assert_eq!(r.cpr_for_rid("9", "7").unwrap().as_deref(), Some("1"));
        assert_eq!(r.cpr_for_rid("9", "8").unwrap(), None);
        assert_eq!(r.cpr_for_professional_uuid("u").unwrap().as_deref(), Some("1"));
        assert_eq!(r.user_data("1").unwrap().unwrap().surname, "B");
        assert_eq!(r.authorisations("1").unwrap()[0].education_code, "7170");
        assert!(r.authorisations("2").unwrap().is_empty());
        assert!(FileRegister::load(std::path::Path::new("/nonexistent/segl-register.toml")).is_ok());
    }

    #[test]
    fn an_identifier_naming_two_people_is_refused() {
        let path = write("[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\nprofessional_uuid = [\"u\"]\n[[person]]\ncpr = \"2\"\ngiven_name = \"C\"\nsurname = \"D\"\nprofessional_uuid = [\"u\"]\n");
        let e = FileRegister::load(&path).unwrap_err().to_string();
        assert!(e.contains("names two people"), "{e}");
    }
}
