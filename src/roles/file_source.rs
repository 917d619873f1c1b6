//! The role register as a configuration file:
//!
//! ```toml
//! [[assignment]]
//! cpr = "0501792275"
//! cvr = "20921897"
//! roles = ["40001"]
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use super::{RoleError, RoleSource, RolesConfigError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentsFile {
    #[serde(default)]
    assignment: Vec<Assignment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Assignment {
    cpr: String,
    cvr: String,
    roles: Vec<String>,
}

/// Role assignments read from a TOML file, keyed by (CPR, CVR).
#[derive(Debug, Default)]
pub struct FileRoleSource {
    held: HashMap<(String, String), HashSet<String>>,
}

impl FileRoleSource {
    /// Reads the file; an absent file is an empty register.
    pub fn load(path: &Path) -> Result<Self, RolesConfigError> {
        let err = |reason: String| RolesConfigError::Assignments { path: path.display().to_string(), reason };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(err(e.to_string())),
        };
        let file: AssignmentsFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        let mut held: HashMap<(String, String), HashSet<String>> = HashMap::new();
        for a in file.assignment {
            held.entry((a.cpr, a.cvr)).or_default().extend(a.roles);
        }
        Ok(FileRoleSource { held })
    }

    /// A register from `(cpr, cvr, code)` triples.
    pub fn from_assignments(assignments: &[(&str, &str, &str)]) -> Self {
        let mut held: HashMap<(String, String), HashSet<String>> = HashMap::new();
        for (cpr, cvr, code) in assignments {
            held.entry(((*cpr).to_owned(), (*cvr).to_owned())).or_default().insert((*code).to_owned());
        }
        FileRoleSource { held }
    }
}

impl RoleSource for FileRoleSource {
    fn holds(&self, cpr: &str, cvr: &str, code: &str) -> Result<bool, RoleError> {
        Ok(self.held.get(&(cpr.to_owned(), cvr.to_owned())).is_some_and(|codes| codes.contains(code)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_assignments_file() {
        let dir = std::env::temp_dir().join(format!("segl-roles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roles.toml");
        std::fs::write(&path, "[[assignment]]\ncpr = \"1\"\ncvr = \"2\"\nroles = [\"40001\", \"41003\"]\n")
            .unwrap();
        let src = FileRoleSource::load(&path).unwrap();
        assert_eq!(src.holds("1", "2", "41003"), Ok(true));
        assert_eq!(src.holds("1", "3", "41003"), Ok(false));
        std::fs::write(&path, "[[assignment]]\ncpr = 1\n").unwrap();
        assert!(FileRoleSource::load(&path).is_err());
        assert!(FileRoleSource::load(&dir.join("absent.toml")).unwrap().held.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
