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
//!
//! [[person]]
//! cpr = "2512484916"
//! given_name = "Nancy Ann"
//! surname = "Berggren"
//! pid = ["9208-2002-2-514358910503"]
//!
//! # Nancy Ann Berggren may act for 0707614285 by procuration, with no end date...
//! [[relation]]
//! kind = "procuration"
//! actor = "2512484916"
//! subject = "0707614285"
//!
//! # ...and held parental custody of 0304054430 during 2020 (periods are half-open, RFC 3339).
//! [[relation]]
//! kind = "parental_custody"
//! actor = "2512484916"
//! subject = "0304054430"
//! valid_from = "2020-01-01T00:00:00Z"
//! valid_until = "2021-01-01T00:00:00Z"
//! ```
//!
//! A relation's `kind` is `procuration`, `ward_custody`, `partly_ward_custody` or
//! `parental_custody` (the generic `custody` is only something a claim asks for); `actor` and
//! `subject` are CPR numbers (10 digits, and not the same one); `valid_from` and `valid_until`
//! are optional RFC 3339 strings, `valid_until` after `valid_from`. The subject need not be a
//! `[[person]]`. Two relations of the same kind between the same two people may not overlap in
//! time (one of them would be redundant, or it is unclear which ended when); successive periods
//! are fine.

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use serde::Deserialize;

use super::{
    Authorisation, AuthorisationRegister, PersonRegister, RegisterError, Relation, RelationRegister, UserData,
};
use crate::token::onbehalfof::{is_cpr, RelationKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterFile {
    #[serde(default)]
    person: Vec<Person>,
    #[serde(default)]
    relation: Vec<RelationEntry>,
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
    pid: Vec<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationEntry {
    kind: RelationKind,
    actor: String,
    subject: String,
    #[serde(default)]
    valid_from: Option<String>,
    #[serde(default)]
    valid_until: Option<String>,
}

/// Why a register file was refused: the file and the cause.
#[derive(Debug, thiserror::Error)]
#[error("register {path}: {cause}")]
pub struct RegisterFileError {
    path: String,
    cause: RegisterFileCause,
}

impl RegisterFileError {
    /// What was wrong with the file.
    pub fn cause(&self) -> &RegisterFileCause {
        &self.cause
    }
}

/// What was wrong with a register file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterFileCause {
    /// The file exists but could not be read.
    #[error("cannot read it: {0}")]
    Read(String),
    /// Not TOML, or not the register's shape (unknown field, unknown relation kind, …).
    #[error("{0}")]
    Syntax(String),
    /// Two `[[person]]` rows for one CPR.
    #[error("CPR {0} is listed twice")]
    CprTwice(String),
    /// An identifier (RID, professional UUID, PID) that maps to two CPRs.
    #[error("{what} {id} names two people ({first} and {second})")]
    SharedIdentifier {
        /// Which kind of identifier.
        what: &'static str,
        /// The identifier.
        id: String,
        /// The CPR it was first listed for.
        first: String,
        /// The CPR it was listed for again.
        second: String,
    },
    /// An identifier listed twice for the same person.
    #[error("{what} {id} is listed twice for CPR {cpr}")]
    RepeatedIdentifier {
        /// Which kind of identifier.
        what: &'static str,
        /// The identifier.
        id: String,
        /// The person.
        cpr: String,
    },
    /// An empty PID.
    #[error("CPR {0} lists an empty PID")]
    EmptyPid(String),
    /// A relation's actor or subject that is not 10 digits.
    #[error("a relation's {role} {value:?} is not a CPR number (10 digits)")]
    RelationCpr {
        /// `actor` or `subject`.
        role: &'static str,
        /// The value given.
        value: String,
    },
    /// A relation of someone to themselves.
    #[error("a relation of {0} to themselves")]
    RelationToSelf(String),
    /// A registered relation of the generic kind `custody`.
    #[error(
        "a relation of {actor} for {subject} has kind \"custody\", which only a claim may ask for: register \
         ward_custody, partly_ward_custody or parental_custody"
    )]
    GenericCustody {
        /// The actor.
        actor: String,
        /// The subject.
        subject: String,
    },
    /// A `valid_from` or `valid_until` that is not an RFC 3339 timestamp.
    #[error("a relation's {field} {value:?} is not an RFC 3339 timestamp: {reason}")]
    BadTimestamp {
        /// `valid_from` or `valid_until`.
        field: &'static str,
        /// The value given.
        value: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A relation whose `valid_until` is not after its `valid_from`.
    #[error("a relation of {actor} for {subject} has valid_until {until} not after valid_from {from}")]
    EmptyPeriod {
        /// The actor.
        actor: String,
        /// The subject.
        subject: String,
        /// Its start.
        from: Timestamp,
        /// Its end.
        until: Timestamp,
    },
    /// Two relations of one kind between the same two people whose periods overlap.
    #[error("two {kind} relations of {actor} for {subject} overlap in time")]
    OverlappingRelations {
        /// The kind.
        kind: RelationKind,
        /// The actor.
        actor: String,
        /// The subject.
        subject: String,
    },
}

/// The person, authorisation and relation registers read from one TOML file.
#[derive(Debug, Default)]
pub struct FileRegister {
    users: HashMap<String, UserData>,
    by_rid: HashMap<(String, String), String>,
    by_uuid: HashMap<String, String>,
    by_pid: HashMap<String, String>,
    authorisations: HashMap<String, Vec<Authorisation>>,
    /// Keyed by (actor, subject), in file order.
    relations: HashMap<(String, String), Vec<Relation>>,
}

impl FileRegister {
    /// Reads the file; an absent file is an empty register. A CPR, RID, UUID or PID listed twice
    /// is refused (a lookup must have one answer), as is a relation that does not validate (see
    /// the module documentation).
    pub fn load(path: &Path) -> Result<FileRegister, RegisterFileError> {
        let err = |cause: RegisterFileCause| RegisterFileError { path: path.display().to_string(), cause };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileRegister::default()),
            Err(e) => return Err(err(RegisterFileCause::Read(e.to_string()))),
        };
        FileRegister::from_toml(&text).map_err(err)
    }

    /// Reads register TOML (what [`FileRegister::load`] does once it has the text).
    pub fn from_toml(text: &str) -> Result<FileRegister, RegisterFileCause> {
        let file: RegisterFile =
            toml::from_str(text).map_err(|e| RegisterFileCause::Syntax(e.to_string()))?;
        let mut register = FileRegister::default();
        for p in file.person {
            register.add_person(p)?;
        }
        for r in file.relation {
            register.add_relation(r)?;
        }
        Ok(register)
    }

    fn add_person(&mut self, p: Person) -> Result<(), RegisterFileCause> {
        if self.users.contains_key(&p.cpr) {
            return Err(RegisterFileCause::CprTwice(p.cpr));
        }
        for r in p.rid {
            let id = format!("{} RID {}", r.cvr, r.rid);
            unique(&mut self.by_rid, (r.cvr, r.rid), &p.cpr, "CVR", id)?;
        }
        for u in p.professional_uuid {
            unique(&mut self.by_uuid, u.clone(), &p.cpr, "professional UUID", u)?;
        }
        for pid in p.pid {
            if pid.trim().is_empty() {
                return Err(RegisterFileCause::EmptyPid(p.cpr));
            }
            unique(&mut self.by_pid, pid.clone(), &p.cpr, "PID", pid)?;
        }
        self.authorisations.insert(
            p.cpr.clone(),
            p.authorisation
                .into_iter()
                .map(|a| Authorisation { code: a.code, education_code: a.education_code })
                .collect(),
        );
        self.users.insert(
            p.cpr.clone(),
            UserData { cpr: p.cpr, given_name: p.given_name, surname: p.surname, email: p.email },
        );
        Ok(())
    }

    fn add_relation(&mut self, r: RelationEntry) -> Result<(), RegisterFileCause> {
        for (role, value) in [("actor", &r.actor), ("subject", &r.subject)] {
            if !is_cpr(value) {
                return Err(RegisterFileCause::RelationCpr { role, value: value.clone() });
            }
        }
        if r.actor == r.subject {
            return Err(RegisterFileCause::RelationToSelf(r.actor));
        }
        if r.kind == RelationKind::Custody {
            return Err(RegisterFileCause::GenericCustody { actor: r.actor, subject: r.subject });
        }
        let valid_from = timestamp("valid_from", r.valid_from)?;
        let valid_until = timestamp("valid_until", r.valid_until)?;
        if let (Some(from), Some(until)) = (valid_from, valid_until) {
            if until <= from {
                return Err(RegisterFileCause::EmptyPeriod {
                    actor: r.actor,
                    subject: r.subject,
                    from,
                    until,
                });
            }
        }
        let relation = Relation { kind: r.kind, valid_from, valid_until };
        let known = self.relations.entry((r.actor.clone(), r.subject.clone())).or_default();
        if known.iter().any(|k| k.kind == relation.kind && overlap(k, &relation)) {
            return Err(RegisterFileCause::OverlappingRelations {
                kind: relation.kind,
                actor: r.actor,
                subject: r.subject,
            });
        }
        known.push(relation);
        Ok(())
    }
}

/// Records `key → cpr`, refusing a key already recorded (`what id` names it in the error).
fn unique<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, String>,
    key: K,
    cpr: &str,
    what: &'static str,
    id: String,
) -> Result<(), RegisterFileCause> {
    match map.insert(key, cpr.to_owned()) {
        None => Ok(()),
        Some(first) if first == cpr => Err(RegisterFileCause::RepeatedIdentifier { what, id, cpr: first }),
        Some(first) => Err(RegisterFileCause::SharedIdentifier { what, id, first, second: cpr.to_owned() }),
    }
}

/// Parses an optional RFC 3339 bound.
fn timestamp(field: &'static str, value: Option<String>) -> Result<Option<Timestamp>, RegisterFileCause> {
    value
        .map(|v| {
            v.parse::<Timestamp>().map_err(|e| RegisterFileCause::BadTimestamp {
                field,
                value: v.clone(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Whether two half-open periods (absent bound = unbounded) share a moment.
fn overlap(a: &Relation, b: &Relation) -> bool {
    let starts_before_end = |start: Option<Timestamp>, end: Option<Timestamp>| match (start, end) {
        (Some(s), Some(e)) => s < e,
        _ => true,
    };
    starts_before_end(a.valid_from, b.valid_until) && starts_before_end(b.valid_from, a.valid_until)
}

impl PersonRegister for FileRegister {
    fn cpr_for_rid(&self, cvr: &str, rid: &str) -> Result<Option<String>, RegisterError> {
        Ok(self.by_rid.get(&(cvr.to_owned(), rid.to_owned())).cloned())
    }

    fn cpr_for_professional_uuid(&self, uuid: &str) -> Result<Option<String>, RegisterError> {
        Ok(self.by_uuid.get(uuid).cloned())
    }

    fn cpr_for_pid(&self, pid: &str) -> Result<Option<String>, RegisterError> {
        Ok(self.by_pid.get(pid).cloned())
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

impl RelationRegister for FileRegister {
    fn relations(&self, actor_cpr: &str, subject_cpr: &str) -> Result<Vec<Relation>, RegisterError> {
        Ok(self.relations.get(&(actor_cpr.to_owned(), subject_cpr.to_owned())).cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> std::path::PathBuf {
        // A name per call: tests run in parallel, and two texts can have the same length.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("segl-register-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn refused(text: &str) -> RegisterFileCause {
        FileRegister::from_toml(text).unwrap_err()
    }

    /// The development register's relation rows, exactly as `segl dev setup` will write them.
    const DEV_REGISTER: &str = r#"
[[person]]
cpr = "2512484916"
given_name = "Nancy Ann"
surname = "Berggren"
pid = ["9208-2002-2-514358910503"]
[[relation]]
kind = "procuration"
actor = "2512484916"
subject = "0707614285"
[[relation]]
kind = "procuration"
actor = "2512484916"
subject = "0304054430"
valid_from = "2020-01-01T00:00:00Z"
valid_until = "2021-01-01T00:00:00Z"
"#;

    #[test]
    fn looks_people_up_by_rid_uuid_pid_and_cpr() {
        let path = write(
            "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\nrid = [{ cvr = \"9\", rid = \"7\" }]\nprofessional_uuid = [\"u\"]\npid = [\"p1\", \"p2\"]\nauthorisation = [{ code = \"J0184\", education_code = \"7170\" }]\n",
        );
        let r = FileRegister::load(&path).unwrap();
        assert_eq!(r.cpr_for_rid("9", "7").unwrap().as_deref(), Some("1"));
        assert_eq!(r.cpr_for_rid("9", "8").unwrap(), None);
        assert_eq!(r.cpr_for_professional_uuid("u").unwrap().as_deref(), Some("1"));
        assert_eq!(r.cpr_for_pid("p1").unwrap().as_deref(), Some("1"));
        assert_eq!(r.cpr_for_pid("p2").unwrap().as_deref(), Some("1"));
        assert_eq!(r.cpr_for_pid("p3").unwrap(), None);
        assert_eq!(r.user_data("1").unwrap().unwrap().surname, "B");
        assert_eq!(r.authorisations("1").unwrap()[0].education_code, "7170");
        assert!(r.authorisations("2").unwrap().is_empty());
        assert!(FileRegister::load(std::path::Path::new("/nonexistent/segl-register.toml")).is_ok());
    }

    #[test]
    fn an_identifier_naming_two_people_is_refused() {
        let path = write("[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\nprofessional_uuid = [\"u\"]\n[[person]]\ncpr = \"2\"\ngiven_name = \"C\"\nsurname = \"D\"\nprofessional_uuid = [\"u\"]\n");
        let e = FileRegister::load(&path).unwrap_err();
        assert!(e.to_string().contains("names two people"), "{e}");
        assert!(e.to_string().starts_with("register "), "{e}");

        let two = "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\npid = [\"9208-2002-2-514358910503\"]\n[[person]]\ncpr = \"2\"\ngiven_name = \"C\"\nsurname = \"D\"\npid = [\"9208-2002-2-514358910503\"]\n";
        assert_eq!(
            refused(two),
            RegisterFileCause::SharedIdentifier {
                what: "PID",
                id: "9208-2002-2-514358910503".into(),
                first: "1".into(),
                second: "2".into()
            }
        );
        let again = "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\npid = [\"p\", \"p\"]\n";
        assert_eq!(
            refused(again),
            RegisterFileCause::RepeatedIdentifier { what: "PID", id: "p".into(), cpr: "1".into() }
        );
        let empty = "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\npid = [\" \"]\n";
        assert_eq!(refused(empty), RegisterFileCause::EmptyPid("1".into()));
        let rid = "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\nrid = [{ cvr = \"9\", rid = \"7\" }]\n[[person]]\ncpr = \"2\"\ngiven_name = \"C\"\nsurname = \"D\"\nrid = [{ cvr = \"9\", rid = \"7\" }]\n";
        assert_eq!(refused(rid).to_string(), "CVR 9 RID 7 names two people (1 and 2)");
        let cpr = "[[person]]\ncpr = \"1\"\ngiven_name = \"A\"\nsurname = \"B\"\n[[person]]\ncpr = \"1\"\ngiven_name = \"C\"\nsurname = \"D\"\n";
        assert_eq!(refused(cpr), RegisterFileCause::CprTwice("1".into()));
    }

    #[test]
    fn loads_the_development_register() {
        let r = FileRegister::load(&write(DEV_REGISTER)).unwrap();
        assert_eq!(r.cpr_for_pid("9208-2002-2-514358910503").unwrap().as_deref(), Some("2512484916"));
        assert_eq!(r.user_data("2512484916").unwrap().unwrap().given_name, "Nancy Ann");
        assert_eq!(
            r.relations("2512484916", "0707614285").unwrap(),
            vec![Relation { kind: RelationKind::Procuration, valid_from: None, valid_until: None }]
        );
        assert_eq!(
            r.relations("2512484916", "0304054430").unwrap(),
            vec![Relation {
                kind: RelationKind::Procuration,
                valid_from: Some(at("2020-01-01T00:00:00Z")),
                valid_until: Some(at("2021-01-01T00:00:00Z")),
            }]
        );
        // Relations are directed: the subject cannot act for the actor.
        assert!(r.relations("0707614285", "2512484916").unwrap().is_empty());
        assert!(r.relations("2512484916", "1111111118").unwrap().is_empty());
        let now = at("2025-01-01T00:00:00Z");
        let check = |subject: &str| {
            super::super::relation_in_force(
                &r.relations("2512484916", subject).unwrap(),
                RelationKind::Procuration,
                now,
            )
        };
        assert!(matches!(check("0707614285"), super::super::RelationCheck::InForce(_)));
        assert_eq!(
            check("0304054430"),
            super::super::RelationCheck::Expired { until: at("2021-01-01T00:00:00Z") }
        );
    }

    #[test]
    fn loads_every_field_and_every_kind() {
        let text = r#"
[[person]]
cpr = "0501792275"
given_name = "Lars"
surname = "Larsen"
email = "lars.larsen@testby.example"
rid = [{ cvr = "20921897", rid = "52723247" }]
professional_uuid = ["6f0c2b6e-8a55-4a39-9c0e-3c1f2a7d9b01"]
pid = ["9208-2002-2-514358910503", "9208-2002-2-000000000001"]
authorisation = [{ code = "J0184", education_code = "7170" }]

[[relation]]
kind = "procuration"
actor = "0501792275"
subject = "0707614285"
valid_from = "2020-01-01T00:00:00+01:00"
valid_until = "2030-01-01T00:00:00Z"

[[relation]]
kind = "ward_custody"
actor = "0501792275"
subject = "0707614285"
valid_until = "2031-01-01T00:00:00.5Z"

[[relation]]
kind = "partly_ward_custody"
actor = "0501792275"
subject = "0707614285"
valid_from = "2024-02-29T12:00:00Z"

[[relation]]
kind = "parental_custody"
actor = "0501792275"
subject = "0904128090"

# A renewed procuration: successive periods of one kind are fine.
[[relation]]
kind = "procuration"
actor = "0501792275"
subject = "0707614285"
valid_from = "2030-01-01T00:00:00Z"
"#;
        let r = FileRegister::from_toml(text).unwrap();
        assert_eq!(r.cpr_for_pid("9208-2002-2-000000000001").unwrap().as_deref(), Some("0501792275"));
        let rs = r.relations("0501792275", "0707614285").unwrap();
        assert_eq!(
            rs.iter().map(|r| r.kind).collect::<Vec<_>>(),
            [
                RelationKind::Procuration,
                RelationKind::WardCustody,
                RelationKind::PartlyWardCustody,
                RelationKind::Procuration
            ]
        );
        assert_eq!(rs[0].valid_from, Some(at("2019-12-31T23:00:00Z")));
        assert_eq!(rs[1].valid_from, None);
        assert_eq!(rs[1].valid_until, Some(at("2031-01-01T00:00:00.5Z")));
        assert_eq!(rs[3].valid_until, None);
        assert_eq!(r.relations("0501792275", "0904128090").unwrap()[0].kind, RelationKind::ParentalCustody);
    }

    #[test]
    fn bad_relations_are_refused() {
        let relation = |fields: &str| format!("[[relation]]\n{fields}\n");
        let ok = "actor = \"2512484916\"\nsubject = \"0707614285\"";

        let e = refused(&relation(&format!("kind = \"spouse\"\n{ok}")));
        assert!(matches!(&e, RegisterFileCause::Syntax(m) if m.contains("spouse")), "{e}");
        let e =
            refused(&relation(&format!("kind = \"procuration\"\n{ok}\nexpires = \"2020-01-01T00:00:00Z\"")));
        assert!(matches!(&e, RegisterFileCause::Syntax(m) if m.contains("expires")), "{e}");
        assert!(matches!(
            refused(&relation("kind = \"procuration\"\nactor = \"2512484916\"")),
            RegisterFileCause::Syntax(_)
        ));

        assert_eq!(
            refused(&relation(&format!("kind = \"custody\"\n{ok}"))),
            RegisterFileCause::GenericCustody { actor: "2512484916".into(), subject: "0707614285".into() }
        );
        for (actor, subject, role, value) in [
            ("251248491", "0707614285", "actor", "251248491"),
            ("2512484916", "07076142850", "subject", "07076142850"),
            ("2512484916", "070761428a", "subject", "070761428a"),
            ("", "0707614285", "actor", ""),
        ] {
            assert_eq!(
                refused(&relation(&format!(
                    "kind = \"procuration\"\nactor = \"{actor}\"\nsubject = \"{subject}\""
                ))),
                RegisterFileCause::RelationCpr { role, value: value.into() }
            );
        }
        assert_eq!(
            refused(&relation("kind = \"procuration\"\nactor = \"2512484916\"\nsubject = \"2512484916\"")),
            RegisterFileCause::RelationToSelf("2512484916".into())
        );
    }

    #[test]
    fn bad_dates_are_refused() {
        let with = |dates: &str| {
            format!("[[relation]]\nkind = \"procuration\"\nactor = \"2512484916\"\nsubject = \"0707614285\"\n{dates}\n")
        };
        for (dates, field) in [
            ("valid_from = \"2020-01-01\"", "valid_from"),
            ("valid_from = \"2020-01-01T00:00:00\"", "valid_from"),
            ("valid_until = \"tomorrow\"", "valid_until"),
            ("valid_until = \"2020-13-01T00:00:00Z\"", "valid_until"),
        ] {
            let e = refused(&with(dates));
            assert!(
                matches!(&e, RegisterFileCause::BadTimestamp { field: f, .. } if *f == field),
                "{dates}: {e}"
            );
        }
        // A TOML datetime literal is not a string: the file says RFC 3339 *strings*.
        assert!(matches!(refused(&with("valid_from = 2020-01-01T00:00:00Z")), RegisterFileCause::Syntax(_)));
        for dates in [
            "valid_from = \"2021-01-01T00:00:00Z\"\nvalid_until = \"2020-01-01T00:00:00Z\"",
            "valid_from = \"2021-01-01T00:00:00Z\"\nvalid_until = \"2021-01-01T00:00:00Z\"",
            "valid_from = \"2021-01-01T01:00:00+01:00\"\nvalid_until = \"2021-01-01T00:00:00Z\"",
        ] {
            assert!(matches!(refused(&with(dates)), RegisterFileCause::EmptyPeriod { .. }), "{dates}");
        }
    }

    #[test]
    fn duplicate_or_overlapping_relations_are_refused() {
        let row = |kind: &str, dates: &str| {
            format!("[[relation]]\nkind = \"{kind}\"\nactor = \"2512484916\"\nsubject = \"0707614285\"\n{dates}\n")
        };
        let overlapping = RegisterFileCause::OverlappingRelations {
            kind: RelationKind::Procuration,
            actor: "2512484916".into(),
            subject: "0707614285".into(),
        };
        // The very same row twice.
        assert_eq!(refused(&(row("procuration", "") + &row("procuration", ""))), overlapping);
        // An open-ended row overlaps any other.
        assert_eq!(
            refused(
                &(row("procuration", "valid_from = \"2020-01-01T00:00:00Z\"")
                    + &row("procuration", "valid_until = \"2020-01-02T00:00:00Z\""))
            ),
            overlapping
        );
        assert_eq!(
            refused(
                &(row(
                    "procuration",
                    "valid_from = \"2020-01-01T00:00:00Z\"\nvalid_until = \"2021-01-01T00:00:00Z\""
                ) + &row(
                    "procuration",
                    "valid_from = \"2020-12-31T00:00:00Z\"\nvalid_until = \"2022-01-01T00:00:00Z\""
                ))
            ),
            overlapping
        );
        assert!(refused(&(row("procuration", "") + &row("procuration", ""))).to_string().contains("overlap"));
        // Touching periods, other kinds and other pairs are fine.
        let fine = row("procuration", "valid_until = \"2021-01-01T00:00:00Z\"")
            + &row("procuration", "valid_from = \"2021-01-01T00:00:00Z\"")
            + &row("parental_custody", "")
            + &row("ward_custody", "")
            + "[[relation]]\nkind = \"procuration\"\nactor = \"0707614285\"\nsubject = \"2512484916\"\n";
        let r = FileRegister::from_toml(&fine).unwrap();
        assert_eq!(r.relations("2512484916", "0707614285").unwrap().len(), 4);
        assert_eq!(r.relations("0707614285", "2512484916").unwrap().len(), 1);
    }
}
