//! 监督评估任务 — a supervision task (article 7(六), 8(一); DOMAIN.md 5.11): who dispatches, where,
//! what activity, on which half-day sessions, with how many experts, and the exceptions only the
//! city bureau may approve (D7, D13, D15).
//!
//! Choices written down here (DOMAIN.md leaves them open):
//! - The task number is `<division code>-<year>-<sequence>` with the year of creation in
//!   Asia/Shanghai (the bureau's register year), the sequence at least four digits.
//! - The lead time of D6's edition (`min_lead_working_days`, 5 in edition 1) is met when the first
//!   session falls on or after the lead-th working day after today, today not counted.
//! - A task's edition is the one in force on its first session; every session must fall in an
//!   edition, and the team defaults, the half-day split and the funds are that edition's.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use supervision_kit::{
    Bureau, Caller, Role, SpecialtyCode,
    auth::Actor,
    vocab::{is_prefixed_id, new_prefixed_id},
};

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal, $what:literal) => {
        #[doc = concat!("The service's opaque id of ", $what, ": `", $prefix, "` and 32 hex digits of a UUIDv7.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_prefixed_id(Self::PREFIX))
            }

            pub fn parse(s: &str) -> Option<Self> {
                is_prefixed_id(s, Self::PREFIX).then(|| Self(s.to_owned()))
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

prefixed_id!(TaskId, "tsk_", "a task");
prefixed_id!(SessionId, "ses_", "a task session");

/// A closed vocabulary whose codes are the contract's enum names without their prefix.
macro_rules! coded {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code),+
                }
            }

            pub fn from_code(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }
        }
    };
}

coded!(
    /// What is trained or evaluated (article 2).
    ActivitySubject {
        SkillLevel => "SKILL_LEVEL",
        SpecialAbility => "SPECIAL_ABILITY",
        CourseStandardProject => "COURSE_STANDARD_PROJECT",
        VocationalQualification => "VOCATIONAL_QUALIFICATION",
    }
);

coded!(
    /// Training, or which kind of evaluation (article 2).
    ActivityKind {
        Training => "TRAINING",
        Assessment => "ASSESSMENT",
        Appraisal => "APPRAISAL",
        Competition => "COMPETITION",
        Recognition => "RECOGNITION",
        InHouseEvaluation => "IN_HOUSE_EVALUATION",
    }
);

coded!(
    /// How the supervision is carried out.
    TaskMode {
        OnSite => "ON_SITE",
        RemoteVideo => "REMOTE_VIDEO",
        DocumentReview => "DOCUMENT_REVIEW",
    }
);

coded!(
    /// Why a task exists.
    TaskOrigin {
        Routine => "ROUTINE",
        RandomPlan => "RANDOM_PLAN",
        Complaint => "COMPLAINT",
        SpecialCampaign => "SPECIAL_CAMPAIGN",
        FollowUp => "FOLLOW_UP",
    }
);

coded!(
    /// 半天 (D2).
    HalfDay {
        Am => "AM",
        Pm => "PM",
    }
);

coded!(
    /// The two funds of article 10.
    FundSource {
        ProvincialSkillTraining => "PROVINCIAL_SKILL_TRAINING",
        CityCountyEmployment => "CITY_COUNTY_EMPLOYMENT",
    }
);

coded!(
    /// An exception to the default rules that only the city bureau may approve.
    ExceptionKind {
        SmallTeam => "SMALL_TEAM",
        CrossCounty => "CROSS_COUNTY",
        ReducedTeam => "REDUCED_TEAM",
        NonRandomDesignation => "NON_RANDOM_DESIGNATION",
    }
);

coded!(
    /// Where a task stands (DOMAIN.md 6.4, as the contract simplifies it).
    TaskStatus {
        Open => "OPEN",
        Staffing => "STAFFING",
        Staffed => "STAFFED",
        Understaffed => "UNDERSTAFFED",
        InProgress => "IN_PROGRESS",
        Blocked => "BLOCKED",
        Completed => "COMPLETED",
        Cancelled => "CANCELLED",
    }
);

impl TaskStatus {
    /// Any state before the first session started may be cancelled (DOMAIN.md 6.4).
    pub fn may_cancel(self) -> bool {
        matches!(self, Self::Open | Self::Staffing | Self::Staffed | Self::Understaffed | Self::Blocked)
    }
}

/// The activity a task supervises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub subject: ActivitySubject,
    pub kind: ActivityKind,
    /// The institution's reference: class number, exam batch, competition name.
    pub reference: String,
    pub description: String,
}

/// A half-day slot of a task (D2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub date: NaiveDate,
    pub half_day: HalfDay,
    pub planned_start: Option<NaiveTime>,
    pub planned_end: Option<NaiveTime>,
}

impl Session {
    pub fn slot(&self) -> (NaiveDate, HalfDay) {
        (self.date, self.half_day)
    }
}

/// The city bureau's approval of an exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub by: Actor,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// An exception a task needs, and its approval once given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskException {
    pub kind: ExceptionKind,
    pub reason: String,
    /// For REDUCED_TEAM: the new team size; otherwise 0.
    pub reduced_team_size: u32,
    pub approval: Option<Approval>,
}

/// A validated request for a task, before the reference data, the registry and the caller's
/// right are consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub bureau: Bureau,
    pub institution_id: String,
    pub title: String,
    pub activity: Activity,
    pub mode: TaskMode,
    pub origin: TaskOrigin,
    pub origin_submission_id: String,
    pub reporter_expert_id: String,
    /// No slot twice; in the request's order until created, then by date with AM before PM.
    pub sessions: Vec<Session>,
    /// `None`: the edition's default.
    pub team_size: Option<u32>,
    pub backup_count: Option<u32>,
    pub specialties: Vec<SpecialtyCode>,
    pub fund_source: FundSource,
    /// `Some(reason)` when urgent.
    pub urgent_reason: Option<String>,
    /// Requested, none approved.
    pub exceptions: Vec<TaskException>,
}

impl NewTask {
    pub fn first_session_date(&self) -> NaiveDate {
        self.sessions.iter().map(|s| s.date).min().expect("a task has at least one session")
    }

    pub fn requests(&self, kind: ExceptionKind) -> bool {
        self.exceptions.iter().any(|e| e.kind == kind)
    }
}

/// A supervision task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: TaskId,
    pub number: TaskNumber,
    pub institution_county: Bureau,
    pub details: NewTask,
    pub team_size: u32,
    pub backup_count: u32,
    pub status: TaskStatus,
    pub cancel_reason: String,
    pub accepted_count: u32,
    pub edition_number: u32,
    pub created_by: Actor,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub revision: i64,
}

impl Task {
    pub fn bureau(&self) -> Bureau {
        self.details.bureau
    }

    pub fn exception(&self, kind: ExceptionKind) -> Option<&TaskException> {
        self.details.exceptions.iter().find(|e| e.kind == kind)
    }
}

/// The readable number of a task, unique per bureau and year: `440703-2026-0007`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskNumber {
    pub bureau: Bureau,
    pub year: i32,
    pub sequence: u32,
}

impl fmt::Display for TaskNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{:04}", self.bureau.division_code(), self.year, self.sequence)
    }
}

/// A session whose planned times do not fit its half-day: `(field, problem)`.
pub type SlotProblem = (String, String);

/// Checks each session's planned times against the half-day split of D2 (12:30 in edition 1):
/// an AM session starts before the split and ends by it, a PM session starts at or after it
/// (the evening folds into PM), and an end is after its start. `split_of` gives the split in
/// force on a date. Problems name `sessions[i].planned_start` or `.planned_end`.
pub fn half_day_problems(sessions: &[Session], split_of: impl Fn(NaiveDate) -> NaiveTime) -> Vec<SlotProblem> {
    let mut problems = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        let split = split_of(s.date);
        let at = |part: &str| format!("sessions[{i}].{part}");
        let shown = split.format("%H:%M");
        match (s.half_day, s.planned_start) {
            (HalfDay::Am, Some(start)) if start >= split => {
                problems.push((at("planned_start"), format!("an AM session starts before {shown} (D2)")));
            }
            (HalfDay::Pm, Some(start)) if start < split => {
                problems.push((at("planned_start"), format!("a PM session starts at or after {shown} (D2)")));
            }
            _ => {}
        }
        if let (HalfDay::Am, Some(end)) = (s.half_day, s.planned_end)
            && end > split
        {
            problems.push((
                at("planned_end"),
                format!("an AM session ends by {shown}; work after it is a PM session (D2)"),
            ));
        }
        if let (Some(start), Some(end)) = (s.planned_start, s.planned_end)
            && end <= start
        {
            problems.push((at("planned_end"), "must be after planned_start".to_owned()));
        }
    }
    problems
}

/// Why a task may not be created or changed as asked (besides bad fields and reference data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskRefused {
    #[error(
        "institution {institution_id} is in {institution_county}, outside {bureau}: a county bureau's task at \
         another county's institution needs a CROSS_COUNTY exception, which the city bureau approves (D13)"
    )]
    CrossCountyWithoutException { institution_id: String, institution_county: Bureau, bureau: Bureau },
    #[error("a CROSS_COUNTY exception is only for a county bureau's task outside its county")]
    CrossCountyNotNeeded,
    #[error("institution {0} is closed")]
    InstitutionClosed(String),
    #[error(
        "the first session on {first} is less than {lead} working days ahead (the earliest is {earliest}); \
         mark the task urgent with a reason, or move it"
    )]
    TooShortNotice { first: NaiveDate, lead: u32, earliest: NaiveDate },
    #[error("fund {fund} is not one edition {edition} allows")]
    FundNotAllowed { fund: &'static str, edition: u32 },
    #[error("task {number} is {status} and can no longer be cancelled")]
    NotCancellable { number: String, status: &'static str },
    #[error("task {number} is cancelled")]
    Cancelled { number: String },
    #[error("the {kind} exception of task {number} is already approved")]
    AlreadyApproved { number: String, kind: &'static str },
    #[error("task {number} is {status}; only an OPEN task is changed")]
    NotEditable { number: String, status: &'static str },
    #[error(
        "task {number} already has a draw ({draws}); its fields are fixed once a draw is prepared (the frozen \
         list and the record depend on them): cancel the task and create another"
    )]
    AlreadyDrawn { number: String, draws: usize },
}

impl TaskRefused {
    /// The `ErrorInfo.reason` a client branches on.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CrossCountyWithoutException { .. } => "CROSS_COUNTY_EXCEPTION_REQUIRED",
            Self::CrossCountyNotNeeded => "CROSS_COUNTY_NOT_NEEDED",
            Self::InstitutionClosed(_) => "INSTITUTION_CLOSED",
            Self::TooShortNotice { .. } => "TOO_SHORT_NOTICE",
            Self::FundNotAllowed { .. } => "FUND_NOT_ALLOWED",
            Self::NotCancellable { .. } => "TASK_NOT_CANCELLABLE",
            Self::Cancelled { .. } => "TASK_CANCELLED",
            Self::AlreadyApproved { .. } => "EXCEPTION_ALREADY_APPROVED",
            Self::NotEditable { .. } => "TASK_NOT_EDITABLE",
            Self::AlreadyDrawn { .. } => "TASK_ALREADY_DRAWN",
        }
    }
}

/// Which tasks a caller may see: city roles and auditors every bureau's (D12); a county
/// operator and a bureau's finance staff their own bureau's. Experts read the tasks of their
/// assignments, which come with the draw; until then none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskVisibility {
    All,
    Bureau(Bureau),
    Nothing,
}

impl TaskVisibility {
    pub fn of(caller: &Caller) -> Self {
        match caller.role {
            Role::CityAdmin | Role::CityReviewer | Role::CityOperator | Role::Auditor => Self::All,
            Role::CountyOperator | Role::Finance | Role::FinanceLead => {
                caller.bureau.map_or(Self::Nothing, Self::Bureau)
            }
            _ => Self::Nothing,
        }
    }

    pub fn allows(self, task: &Task) -> bool {
        match self {
            Self::All => true,
            Self::Bureau(b) => task.bureau() == b,
            Self::Nothing => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFilter {
    pub visibility: TaskVisibility,
    pub bureau: Option<Bureau>,
    pub institution_id: Option<String>,
    pub status: Option<TaskStatus>,
    /// Only tasks with a session in this inclusive range.
    pub session_dates: Option<(NaiveDate, NaiveDate)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(date: &str, half_day: HalfDay, start: Option<&str>, end: Option<&str>) -> Session {
        let time = |t: &str| NaiveTime::parse_from_str(t, "%H:%M").unwrap();
        Session {
            id: SessionId::generate(),
            date: date.parse().unwrap(),
            half_day,
            planned_start: start.map(time),
            planned_end: end.map(time),
        }
    }

    #[test]
    fn planned_times_follow_the_half_day_split() {
        let split = NaiveTime::from_hms_opt(12, 30, 0).unwrap();
        let sessions = [
            session("2026-06-15", HalfDay::Am, Some("09:00"), Some("12:30")),
            session("2026-06-15", HalfDay::Pm, Some("12:30"), Some("21:00")),
            session("2026-06-16", HalfDay::Am, Some("12:30"), None),
            session("2026-06-16", HalfDay::Pm, Some("11:00"), Some("10:00")),
            session("2026-06-17", HalfDay::Am, Some("09:00"), Some("13:00")),
        ];
        let fields: Vec<String> = half_day_problems(&sessions, |_| split).into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "sessions[2].planned_start",
                "sessions[3].planned_start",
                "sessions[3].planned_end",
                "sessions[4].planned_end"
            ]
        );
    }

    #[test]
    fn task_numbers_are_padded_per_bureau_and_year() {
        let n = TaskNumber { bureau: Bureau::Pengjiang, year: 2026, sequence: 7 };
        assert_eq!(n.to_string(), "440703-2026-0007");
        assert_eq!(TaskNumber { sequence: 12345, ..n }.to_string(), "440703-2026-12345");
    }

    #[test]
    fn counties_see_their_own_tasks_and_experts_none_yet() {
        let caller = |role, bureau| Caller { subject: "u".into(), role, bureau, expert_id: None, acting_for: None };
        assert_eq!(TaskVisibility::of(&caller(Role::CityReviewer, None)), TaskVisibility::All);
        assert_eq!(
            TaskVisibility::of(&caller(Role::CountyOperator, Some(Bureau::Heshan))),
            TaskVisibility::Bureau(Bureau::Heshan)
        );
        assert_eq!(TaskVisibility::of(&caller(Role::Expert, None)), TaskVisibility::Nothing);
        assert!(TaskStatus::Open.may_cancel());
        assert!(!TaskStatus::InProgress.may_cancel());
    }
}
