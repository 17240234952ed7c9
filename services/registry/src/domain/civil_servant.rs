//! 公务员身份 — an expert's civil-servant status as a dated history (article 10: civil servants
//! are paid no fee; finance asks the status on each work date).
//!
//! The history is append-only. Each entry holds from its `valid_from` until the day before the
//! next entry's; an entry recorded later for the same `valid_from` corrects the earlier one (both
//! stay stored, with who recorded them). The first entry may have no `valid_from`: the status
//! given when the record was created without a "since" date holds as far back as asked.

use chrono::{DateTime, NaiveDate, Utc};
use supervision_kit::{auth::Actor, vocab::OnBehalf};

use super::Evidence;

coded_enum! {
    /// The statuses that decide the article 10 exemption.
    pub enum CivilServantStatus {
        None = "NONE",
        CivilServant = "CIVIL_SERVANT",
        ReferenceManaged = "REFERENCE_MANAGED",
        PublicInstitutionStaff = "PUBLIC_INSTITUTION_STAFF",
    }
}

impl CivilServantStatus {
    /// Whether an edition that exempts civil servants (`civil_servants_exempt`) pays this status
    /// no fee. Edition 1 exempts civil servants only; reference-managed staff are paid (DOMAIN.md
    /// 16 E-16 keeps the question open).
    pub fn exempt_under(self, edition_exempts_civil_servants: bool) -> bool {
        edition_exempts_civil_servants && self == Self::CivilServant
    }
}

/// One recorded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CivilServantEntry {
    /// Recording order within the expert, from 1.
    pub seq: i32,
    /// First day it holds; `None` for "as far back as the record goes".
    pub valid_from: Option<NaiveDate>,
    pub status: CivilServantStatus,
    pub evidence: Evidence,
    pub recorded_by: Actor,
    pub on_behalf: Option<OnBehalf>,
    pub recorded_at: DateTime<Utc>,
}

/// One period of the effective history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CivilServantPeriod {
    pub status: CivilServantStatus,
    pub valid_from: Option<NaiveDate>,
    /// Last day it holds; `None` while current.
    pub valid_to: Option<NaiveDate>,
    pub evidence: Evidence,
    pub recorded_by: Actor,
    pub recorded_at: DateTime<Utc>,
}

/// The effective history, oldest first: per `valid_from`, the entry recorded last.
pub fn periods(entries: &[CivilServantEntry]) -> Vec<CivilServantPeriod> {
    let mut sorted: Vec<&CivilServantEntry> = entries.iter().collect();
    // `None` sorts first: the open start precedes every dated entry.
    sorted.sort_by_key(|e| (e.valid_from, e.seq));
    let mut effective: Vec<&CivilServantEntry> = Vec::new();
    for entry in sorted {
        match effective.last_mut() {
            Some(last) if last.valid_from == entry.valid_from => *last = entry,
            _ => effective.push(entry),
        }
    }
    let next_starts: Vec<Option<NaiveDate>> =
        effective.iter().skip(1).map(|e| e.valid_from).chain(std::iter::once(None)).collect();
    effective
        .into_iter()
        .zip(next_starts)
        .map(|(e, next)| CivilServantPeriod {
            status: e.status,
            valid_from: e.valid_from,
            valid_to: next.and_then(|d| d.pred_opt()),
            evidence: e.evidence.clone(),
            recorded_by: e.recorded_by.clone(),
            recorded_at: e.recorded_at,
        })
        .collect()
}

/// The period `date` falls in; `None` when it precedes the first dated entry.
pub fn period_on(periods: &[CivilServantPeriod], date: NaiveDate) -> Option<&CivilServantPeriod> {
    periods.iter().rev().find(|p| p.valid_from.is_none_or(|from| from <= date))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn entry(seq: i32, valid_from: Option<NaiveDate>, status: CivilServantStatus) -> CivilServantEntry {
        CivilServantEntry {
            seq,
            valid_from,
            status,
            evidence: Evidence::default(),
            recorded_by: Actor { subject: format!("user-{seq}"), role: "CITY_ADMIN".into(), bureau: None },
            on_behalf: None,
            recorded_at: DateTime::from_timestamp(1_700_000_000 + i64::from(seq), 0).unwrap(),
        }
    }

    #[test]
    fn a_civil_servant_status_holds_until_the_next_entry() {
        let history = periods(&[
            entry(1, Some(day(2022, 3, 1)), CivilServantStatus::None),
            entry(2, Some(day(2024, 7, 1)), CivilServantStatus::CivilServant),
        ]);
        assert_eq!(history[0].valid_to, Some(day(2024, 6, 30)));
        assert_eq!(history[1].valid_to, None);
        assert_eq!(period_on(&history, day(2024, 6, 30)).unwrap().status, CivilServantStatus::None);
        assert_eq!(period_on(&history, day(2024, 7, 1)).unwrap().status, CivilServantStatus::CivilServant);
    }

    #[test]
    fn a_date_before_the_first_entry_has_no_status() {
        let history = periods(&[entry(1, Some(day(2022, 3, 1)), CivilServantStatus::None)]);
        assert!(period_on(&history, day(2022, 2, 28)).is_none());
        let open = periods(&[entry(1, None, CivilServantStatus::None)]);
        assert_eq!(period_on(&open, day(1999, 1, 1)).unwrap().status, CivilServantStatus::None);
    }

    #[test]
    fn a_later_entry_for_the_same_day_corrects_the_earlier() {
        let history = periods(&[
            entry(1, None, CivilServantStatus::None),
            entry(2, Some(day(2024, 7, 1)), CivilServantStatus::ReferenceManaged),
            entry(3, Some(day(2024, 7, 1)), CivilServantStatus::CivilServant),
        ]);
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].status, CivilServantStatus::CivilServant);
        assert_eq!(history[1].recorded_by.subject, "user-3");
    }

    #[test]
    fn an_entry_recorded_late_for_an_earlier_date_slots_in_by_date() {
        let history = periods(&[
            entry(1, Some(day(2022, 3, 1)), CivilServantStatus::None),
            entry(2, Some(day(2025, 1, 1)), CivilServantStatus::None),
            entry(3, Some(day(2023, 1, 1)), CivilServantStatus::CivilServant),
        ]);
        let statuses: Vec<_> = history.iter().map(|p| (p.valid_from.unwrap(), p.valid_to)).collect();
        assert_eq!(
            statuses,
            [
                (day(2022, 3, 1), Some(day(2022, 12, 31))),
                (day(2023, 1, 1), Some(day(2024, 12, 31))),
                (day(2025, 1, 1), None)
            ]
        );
    }

    #[test]
    fn only_civil_servants_are_exempt_and_only_when_the_edition_says_so() {
        assert!(CivilServantStatus::CivilServant.exempt_under(true));
        assert!(!CivilServantStatus::CivilServant.exempt_under(false));
        assert!(!CivilServantStatus::ReferenceManaged.exempt_under(true));
    }
}
