//! Pluggable lookups the OIO exchanges need about people: who a professional is (CPR from
//! CVR+RID or from an NSIS professional UUID), who a citizen is (CPR from a NemID PID, NSP's
//! "PID-CPR service"), what the STS may write about them (names, e-mail), which authorisations
//! they hold (authorisation code and education code per CPR), and in which relations one
//! citizen may act for another (procuration, custody). NSP asks national registers (CPR, the
//! authorisation register, SEB, the procuration and custody registers); segl asks a
//! [`PersonRegister`], an [`AuthorisationRegister`] and a [`RelationRegister`], of which
//! [`FileRegister`] is the TOML implementation that ships. A production connector implements
//! the same traits.

mod file;

pub use file::{FileRegister, RegisterFileCause, RegisterFileError};

use jiff::Timestamp;

use crate::token::onbehalfof::RelationKind;

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
    /// The CPR of the citizen with the NemID PID `pid` (e.g. `9208-2002-2-514358910503`, no
    /// `PID:` prefix): NSP's PID-CPR service.
    fn cpr_for_pid(&self, pid: &str) -> Result<Option<String>, RegisterError>;
    /// Names and e-mail for `cpr`.
    fn user_data(&self, cpr: &str) -> Result<Option<UserData>, RegisterError>;
}

/// Which authorisations a person holds.
pub trait AuthorisationRegister: Send + Sync {
    /// Every authorisation registered for `cpr` (empty when none).
    fn authorisations(&self, cpr: &str) -> Result<Vec<Authorisation>, RegisterError>;
}

/// One registered relation in which an actor may act for a subject. The period is half-open:
/// in force from `valid_from` (inclusive) until `valid_until` (exclusive); an absent bound is
/// unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    /// The kind of relation (never the generic [`RelationKind::Custody`]).
    pub kind: RelationKind,
    /// When it takes effect, if not always.
    pub valid_from: Option<Timestamp>,
    /// When it ends, if ever.
    pub valid_until: Option<Timestamp>,
}

impl Relation {
    /// Whether the relation is in force at `now`.
    pub fn in_force_at(&self, now: Timestamp) -> bool {
        self.valid_from.is_none_or(|from| from <= now) && self.valid_until.is_none_or(|until| now < until)
    }
}

/// In which relations one citizen may act for another.
pub trait RelationRegister: Send + Sync {
    /// Every registered relation in which `actor_cpr` may act for `subject_cpr` (empty when none).
    fn relations(&self, actor_cpr: &str, subject_cpr: &str) -> Result<Vec<Relation>, RegisterError>;
}

/// What the register says about a wanted relation at a given moment, told apart so the
/// exchange can refuse each case with its own fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationCheck {
    /// A relation of the wanted kind is in force (the first in register order).
    InForce(Relation),
    /// Relations of the wanted kind exist but have all ended; the latest ended at `until`.
    Expired {
        /// The latest end among them.
        until: Timestamp,
    },
    /// A relation of the wanted kind exists but has not begun; the earliest begins at `from`.
    NotYetValid {
        /// The earliest start among the future ones.
        from: Timestamp,
    },
    /// No relation of the wanted kind is registered.
    None,
}

/// Checks `relations` (as [`RelationRegister::relations`] returns them) for one satisfying a
/// claim of `wanted` at `now`: generic custody is satisfied by any custody kind, procuration only
/// by procuration. When none is in force but some will be, that is reported over an expired one,
/// since the register then already records the relation the user is waiting for.
pub fn relation_in_force(relations: &[Relation], wanted: RelationKind, now: Timestamp) -> RelationCheck {
    let matching = relations.iter().filter(|r| wanted.satisfied_by(r.kind));
    let mut earliest_from: Option<Timestamp> = None;
    let mut latest_until: Option<Timestamp> = None;
    for r in matching {
        if r.in_force_at(now) {
            return RelationCheck::InForce(*r);
        }
        match (r.valid_from, r.valid_until) {
            (Some(from), _) if now < from => {
                earliest_from = Some(earliest_from.map_or(from, |e| e.min(from)))
            }
            (_, Some(until)) => latest_until = Some(latest_until.map_or(until, |l| l.max(until))),
            // Not in force means one bound excludes `now`, so one of the arms above matched.
            _ => {}
        }
    }
    match (earliest_from, latest_until) {
        (Some(from), _) => RelationCheck::NotYetValid { from },
        (None, Some(until)) => RelationCheck::Expired { until },
        (None, None) => RelationCheck::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rel(kind: RelationKind, from: Option<&str>, until: Option<&str>) -> Relation {
        Relation { kind, valid_from: from.map(at), valid_until: until.map(at) }
    }

    #[test]
    fn the_period_is_half_open() {
        let r = rel(RelationKind::Procuration, Some("2020-01-01T00:00:00Z"), Some("2021-01-01T00:00:00Z"));
        assert!(!r.in_force_at(at("2019-12-31T23:59:59Z")));
        assert!(r.in_force_at(at("2020-01-01T00:00:00Z")));
        assert!(r.in_force_at(at("2020-12-31T23:59:59.999Z")));
        assert!(!r.in_force_at(at("2021-01-01T00:00:00Z")));
        assert!(rel(RelationKind::Procuration, None, None).in_force_at(at("1900-01-01T00:00:00Z")));
    }

    #[test]
    fn tells_in_force_expired_not_yet_valid_and_none_apart() {
        use RelationKind::*;
        let now = at("2025-06-01T00:00:00Z");
        let open = rel(Procuration, None, None);
        let past = rel(Procuration, Some("2020-01-01T00:00:00Z"), Some("2021-01-01T00:00:00Z"));
        let older = rel(Procuration, None, Some("2019-01-01T00:00:00Z"));
        let future = rel(Procuration, Some("2030-01-01T00:00:00Z"), None);
        let sooner = rel(Procuration, Some("2026-01-01T00:00:00Z"), Some("2027-01-01T00:00:00Z"));

        assert_eq!(relation_in_force(&[past, open], Procuration, now), RelationCheck::InForce(open));
        assert_eq!(
            relation_in_force(&[older, past], Procuration, now),
            RelationCheck::Expired { until: at("2021-01-01T00:00:00Z") }
        );
        assert_eq!(
            relation_in_force(&[future, sooner], Procuration, now),
            RelationCheck::NotYetValid { from: at("2026-01-01T00:00:00Z") }
        );
        // A coming relation is reported over an ended one.
        assert_eq!(
            relation_in_force(&[past, future], Procuration, now),
            RelationCheck::NotYetValid { from: at("2030-01-01T00:00:00Z") }
        );
        assert_eq!(relation_in_force(&[], Procuration, now), RelationCheck::None);
        // Kinds that do not satisfy the claim are not considered at all.
        let custody = rel(ParentalCustody, None, None);
        assert_eq!(
            relation_in_force(&[custody, past], Procuration, now),
            RelationCheck::Expired { until: at("2021-01-01T00:00:00Z") }
        );
        assert_eq!(relation_in_force(&[open], ParentalCustody, now), RelationCheck::None);
        assert_eq!(relation_in_force(&[custody], WardCustody, now), RelationCheck::None);
    }

    #[test]
    fn generic_custody_is_satisfied_by_any_custody_and_procuration_only_by_procuration() {
        use RelationKind::*;
        let now = at("2025-06-01T00:00:00Z");
        for kind in [WardCustody, PartlyWardCustody, ParentalCustody] {
            let r = rel(kind, None, None);
            assert_eq!(relation_in_force(&[r], Custody, now), RelationCheck::InForce(r));
            assert_eq!(relation_in_force(&[r], kind, now), RelationCheck::InForce(r));
            assert_eq!(relation_in_force(&[r], Procuration, now), RelationCheck::None);
        }
        assert_eq!(relation_in_force(&[rel(Procuration, None, None)], Custody, now), RelationCheck::None);
        let ended = rel(WardCustody, None, Some("2024-01-01T00:00:00Z"));
        let parent = rel(ParentalCustody, Some("2020-01-01T00:00:00Z"), None);
        assert_eq!(relation_in_force(&[ended, parent], Custody, now), RelationCheck::InForce(parent));
    }
}
