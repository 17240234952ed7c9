//! 任用、续任、证书与状态 — terms (articles 7(五), 11; D11), certificates (D17) and the status
//! transitions of experts with the article behind each (articles 11, 12; DOMAIN.md 6.3).

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use supervision_kit::{auth::Actor, vocab::OnBehalf};

use super::{Evidence, ExpertId, ExpertStatus};

macro_rules! prefixed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(supervision_kit::vocab::new_prefixed_id(Self::PREFIX))
            }

            pub fn parse(s: &str) -> Option<Self> {
                supervision_kit::vocab::is_prefixed_id(s, Self::PREFIX).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A term's id: `apt_` and a UUIDv7.
    AppointmentId,
    "apt_"
);
prefixed_id!(
    /// A status change's id: `stc_` and a UUIDv7, so changes sort by time; also the key dispatch
    /// applies the ExpertStatusChanged event under.
    StatusChangeId,
    "stc_"
);

coded_enum! {
    /// How a term came about.
    pub enum AppointmentKind {
        First = "FIRST",
        Renewal = "RENEWAL",
        RepresentativeReplacement = "REPRESENTATIVE_REPLACEMENT",
        Imported = "IMPORTED",
    }
}

coded_enum! {
    /// The state of a term's certificate (D17).
    pub enum CertificateStatus {
        Valid = "VALID",
        Expired = "EXPIRED",
        Revoked = "REVOKED",
    }
}

coded_enum! {
    /// Why a term ended.
    pub enum TermEndReason {
        NaturalExpiry = "NATURAL_EXPIRY",
        Renewed = "RENEWED",
        NonAcceptance = "NON_ACCEPTANCE",
        SelfRequest = "SELF_REQUEST",
        Discipline = "DISCIPLINE",
        FalseMaterials = "FALSE_MATERIALS",
        WorkReasons = "WORK_REASONS",
        PolicyLapsed = "POLICY_LAPSED",
        RepresentativeReplaced = "REPRESENTATIVE_REPLACED",
    }
}

coded_enum! {
    /// The article behind a status change.
    pub enum StatusGround {
        Appointed = "APPOINTED",
        Renewed = "RENEWED",
        TermEnded = "TERM_ENDED",
        Suspended = "SUSPENDED",
        Reinstated = "REINSTATED",
        NonAcceptance = "NON_ACCEPTANCE",
        SelfRequest = "SELF_REQUEST",
        Discipline = "DISCIPLINE",
        FalseMaterials = "FALSE_MATERIALS",
        WorkReasons = "WORK_REASONS",
        PolicyLapsed = "POLICY_LAPSED",
        PolicyResumed = "POLICY_RESUMED",
        RepresentativeReplaced = "REPRESENTATIVE_REPLACED",
    }
}

impl StatusGround {
    /// The article (or decision) the change rests on, as printed in audit entries and reasons.
    pub fn article(self) -> &'static str {
        match self {
            Self::Appointed => "第七条(五)",
            Self::Renewed | Self::TermEnded => "第十一条",
            Self::Suspended | Self::Reinstated => "第四条 (市局管理)",
            Self::NonAcceptance => "第十二条(三)",
            Self::SelfRequest => "第十二条(四)",
            Self::Discipline => "第十二条(一)",
            Self::FalseMaterials => "第十二条(二)",
            Self::WorkReasons => "第十二条(五)",
            Self::PolicyLapsed | Self::PolicyResumed => "第十五条",
            Self::RepresentativeReplaced => "第二条 (单位代表, D19)",
        }
    }

    /// The status an expert in `from` moves to on this ground, or `None` when the transition is
    /// not allowed (DOMAIN.md 6.3). A renewal keeps the status (a suspended expert may be renewed
    /// and stays suspended).
    pub fn transition(self, from: ExpertStatus) -> Option<ExpertStatus> {
        use ExpertStatus::{Active, Lapsed, NotAppointed, Retired, Suspended, Terminated};
        let serving = matches!(from, Active | Suspended);
        match self {
            Self::Appointed => matches!(from, NotAppointed | Retired | Terminated | Lapsed).then_some(Active),
            Self::Renewed => serving.then_some(from),
            Self::Suspended => (from == Active).then_some(Suspended),
            Self::Reinstated => (from == Suspended).then_some(Active),
            Self::TermEnded | Self::NonAcceptance | Self::SelfRequest | Self::RepresentativeReplaced => {
                serving.then_some(Retired)
            }
            Self::Discipline | Self::FalseMaterials | Self::WorkReasons => serving.then_some(Terminated),
            Self::PolicyLapsed => serving.then_some(Lapsed),
            Self::PolicyResumed => (from == Lapsed).then_some(Active),
        }
    }

    /// Why the term ends on this ground; `None` when the term goes on.
    pub fn term_end_reason(self) -> Option<TermEndReason> {
        Some(match self {
            Self::TermEnded => TermEndReason::NaturalExpiry,
            Self::NonAcceptance => TermEndReason::NonAcceptance,
            Self::SelfRequest => TermEndReason::SelfRequest,
            Self::Discipline => TermEndReason::Discipline,
            Self::FalseMaterials => TermEndReason::FalseMaterials,
            Self::WorkReasons => TermEndReason::WorkReasons,
            Self::PolicyLapsed => TermEndReason::PolicyLapsed,
            Self::RepresentativeReplaced => TermEndReason::RepresentativeReplaced,
            Self::Appointed | Self::Renewed | Self::Suspended | Self::Reinstated | Self::PolicyResumed => return None,
        })
    }

    /// The certificate's state after a change into `status` (D17): revoked on termination,
    /// expired on retirement or lapse, valid otherwise (also while suspended).
    pub fn certificate_after(status: ExpertStatus) -> CertificateStatus {
        match status {
            ExpertStatus::Terminated => CertificateStatus::Revoked,
            ExpertStatus::Retired | ExpertStatus::Lapsed => CertificateStatus::Expired,
            ExpertStatus::NotAppointed | ExpertStatus::Active | ExpertStatus::Suspended => CertificateStatus::Valid,
        }
    }
}

/// The last day of a term starting on `start` that lasts `years` (D11, DOMAIN.md 14.4): the day
/// before the `years`-th anniversary; a 29 February start has its anniversary on 28 February of
/// a common year, and the term ends the day before that (start 2024-02-29 -> end 2026-02-27).
pub fn term_end(start: NaiveDate, years: u32) -> NaiveDate {
    let year = start.year() + i32::try_from(years).unwrap_or(i32::MAX / 2);
    let anniversary = NaiveDate::from_ymd_opt(year, start.month(), start.day())
        .or_else(|| NaiveDate::from_ymd_opt(year, start.month(), start.day() - 1))
        .expect("only 29 February lacks its day in another year");
    anniversary - Duration::days(1)
}

/// The certificate number of the `sequence`-th certificate issued for decisions in `year`:
/// `JMSE-<year>-<sequence, 5 digits>` (江门 social supervision expert), unique across the registry.
pub fn certificate_number(year: i32, sequence: i64) -> String {
    format!("JMSE-{year}-{sequence:05}")
}

/// One term of an expert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub id: AppointmentId,
    pub expert_id: ExpertId,
    pub term_number: i32,
    pub kind: AppointmentKind,
    pub decision_date: NaiveDate,
    pub term_start: NaiveDate,
    pub term_end: NaiveDate,
    pub certificate_number: String,
    /// As stored; see [`Appointment::certificate_on`] for what a reader is shown.
    pub certificate_status: CertificateStatus,
    pub application_id: String,
    pub renewal_id: String,
    pub previous_appointment_id: Option<AppointmentId>,
    pub end_reason: Option<TermEndReason>,
    pub ended_date: Option<NaiveDate>,
    pub edition_number: u32,
    pub created_at: DateTime<Utc>,
}

impl Appointment {
    /// The certificate's state on `today`: a valid certificate whose term is over has expired.
    pub fn certificate_on(&self, today: NaiveDate) -> CertificateStatus {
        match self.certificate_status {
            CertificateStatus::Valid if self.term_end < today => CertificateStatus::Expired,
            other => other,
        }
    }

    /// Whether the term still runs: not ended early and not renewed.
    pub fn is_running(&self) -> bool {
        self.end_reason.is_none()
    }
}

/// One status transition; also the event delivered to dispatch (D17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub id: StatusChangeId,
    pub expert_id: ExpertId,
    pub previous_status: ExpertStatus,
    pub status: ExpertStatus,
    pub ground: StatusGround,
    pub effective_date: NaiveDate,
    pub at: DateTime<Utc>,
    pub reason: String,
    pub incident_id: String,
    pub appointment_id: Option<AppointmentId>,
    pub certificate_status: CertificateStatus,
    pub actor: Actor,
    pub evidence: Evidence,
    pub on_behalf: Option<OnBehalf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn a_term_ends_the_day_before_its_second_anniversary() {
        assert_eq!(term_end(d(2022, 6, 1), 2), d(2024, 5, 31), "DOMAIN.md 14.4's example");
        assert_eq!(term_end(d(2023, 1, 1), 2), d(2024, 12, 31));
        assert_eq!(term_end(d(2023, 3, 1), 2), d(2025, 2, 28));
        assert_eq!(term_end(d(2022, 3, 1), 2), d(2024, 2, 29), "ends on a leap day");
        assert_eq!(term_end(d(2022, 2, 15), 2), d(2024, 2, 14), "edition 1's first day");
        assert_eq!(term_end(d(2022, 6, 1), 3), d(2025, 5, 31), "term_years comes from the edition");
    }

    #[test]
    fn a_29_february_start_ends_on_27_february() {
        assert_eq!(term_end(d(2024, 2, 29), 2), d(2026, 2, 27), "28 February rule of DOMAIN.md 14.4");
        assert_eq!(term_end(d(2024, 2, 29), 4), d(2028, 2, 28), "a leap anniversary keeps the 29th");
    }

    #[test]
    fn certificate_numbers_are_padded_per_year() {
        assert_eq!(certificate_number(2025, 7), "JMSE-2025-00007");
        assert_eq!(certificate_number(2026, 123_456), "JMSE-2026-123456");
    }

    /// Every (status, ground) pair and where it leads; `None` is refused.
    #[test]
    fn the_status_transition_table() {
        use ExpertStatus::{
            Active as A, Lapsed as L, NotAppointed as N, Retired as R, Suspended as S, Terminated as T,
        };
        let table: &[(StatusGround, [Option<ExpertStatus>; 6])] = &[
            //                                   from: N        A        S        R        T        L
            (StatusGround::Appointed, [Some(A), None, None, Some(A), Some(A), Some(A)]),
            (StatusGround::Renewed, [None, Some(A), Some(S), None, None, None]),
            (StatusGround::TermEnded, [None, Some(R), Some(R), None, None, None]),
            (StatusGround::Suspended, [None, Some(S), None, None, None, None]),
            (StatusGround::Reinstated, [None, None, Some(A), None, None, None]),
            (StatusGround::NonAcceptance, [None, Some(R), Some(R), None, None, None]),
            (StatusGround::SelfRequest, [None, Some(R), Some(R), None, None, None]),
            (StatusGround::Discipline, [None, Some(T), Some(T), None, None, None]),
            (StatusGround::FalseMaterials, [None, Some(T), Some(T), None, None, None]),
            (StatusGround::WorkReasons, [None, Some(T), Some(T), None, None, None]),
            (StatusGround::PolicyLapsed, [None, Some(L), Some(L), None, None, None]),
            (StatusGround::PolicyResumed, [None, None, None, None, None, Some(A)]),
            (StatusGround::RepresentativeReplaced, [None, Some(R), Some(R), None, None, None]),
        ];
        assert_eq!(table.len(), StatusGround::ALL.len(), "every ground is in the table");
        for (ground, row) in table {
            for (from, expected) in [N, A, S, R, T, L].into_iter().zip(row) {
                assert_eq!(ground.transition(from), *expected, "{ground:?} from {from:?}");
            }
        }
    }

    #[test]
    fn a_retirement_expires_the_certificate_and_a_termination_revokes_it() {
        assert_eq!(StatusGround::certificate_after(ExpertStatus::Retired), CertificateStatus::Expired);
        assert_eq!(StatusGround::certificate_after(ExpertStatus::Terminated), CertificateStatus::Revoked);
        assert_eq!(StatusGround::certificate_after(ExpertStatus::Suspended), CertificateStatus::Valid);
        assert_eq!(StatusGround::SelfRequest.term_end_reason(), Some(TermEndReason::SelfRequest));
        assert_eq!(StatusGround::WorkReasons.term_end_reason(), Some(TermEndReason::WorkReasons));
        assert_eq!(StatusGround::Suspended.term_end_reason(), None);
    }

    #[test]
    fn a_valid_certificate_reads_expired_after_its_term() {
        let a = Appointment {
            id: AppointmentId::generate(),
            expert_id: ExpertId::generate(),
            term_number: 1,
            kind: AppointmentKind::First,
            decision_date: d(2022, 6, 1),
            term_start: d(2022, 6, 1),
            term_end: d(2024, 5, 31),
            certificate_number: certificate_number(2022, 1),
            certificate_status: CertificateStatus::Valid,
            application_id: String::new(),
            renewal_id: String::new(),
            previous_appointment_id: None,
            end_reason: None,
            ended_date: None,
            edition_number: 1,
            created_at: DateTime::from_timestamp(0, 0).unwrap(),
        };
        assert_eq!(a.certificate_on(d(2024, 5, 31)), CertificateStatus::Valid);
        assert_eq!(a.certificate_on(d(2024, 6, 1)), CertificateStatus::Expired);
        let revoked = Appointment { certificate_status: CertificateStatus::Revoked, ..a };
        assert_eq!(revoked.certificate_on(d(2023, 1, 1)), CertificateStatus::Revoked);
    }
}
