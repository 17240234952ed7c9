//! One edition of the policy and every parameter the system reads from it (DOMAIN.md section 17
//! as amended by D1-D21), each typed: money in fen, counts as integers, choices as enums.
//!
//! The field names are the edition file's keys; `editions/edition-1.toml` is the reference.

use std::fmt;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Deserializer, de::Error as _};
use toml::value::Datetime;

/// An effective-dated edition of the policy (D6).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edition {
    /// 1 for the policy as issued; successors count up.
    pub number: u32,
    /// 文号, e.g. 江人社发〔2022〕1号.
    pub doc_no: String,
    /// The normative-document registration number, e.g. JMBG2021060.
    #[serde(default)]
    pub registration_no: Option<String>,
    pub title: String,
    #[serde(deserialize_with = "toml_date")]
    pub issued_on: NaiveDate,
    /// First day in force.
    #[serde(deserialize_with = "toml_date")]
    pub effective_from: NaiveDate,
    /// Last day in force, inclusive (article 15: "有效期至2027年2月14日").
    #[serde(deserialize_with = "toml_date")]
    pub effective_to: NaiveDate,
    #[serde(default)]
    pub legal_basis: Vec<String>,
    pub fees: FeeRules,
    pub sessions: SessionRules,
    pub dispatch: DispatchRules,
    pub exclusions: ExclusionRules,
    pub reports: ReportRules,
    pub random_plan: RandomPlanRules,
    pub appointment: AppointmentRules,
    pub retirement: RetirementRules,
    pub meetings: MeetingRules,
    pub records: RecordRules,
    pub validity: ValidityRules,
    /// Where the edition was loaded from, for logs and `supctl policy show`.
    #[serde(skip)]
    pub source: String,
}

impl Edition {
    /// Whether the edition is in force on `date` (both ends inclusive).
    pub fn is_in_force_on(&self, date: NaiveDate) -> bool {
        self.effective_from <= date && date <= self.effective_to
    }
}

/// Labour fees, article 10 and D1, D9, D12.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeeRules {
    /// Fee per class hour in fen (10000 = 100 yuan).
    pub rate_per_class_hour_fen: i64,
    pub basis: FeeBasis,
    /// 学时 — minutes in one class hour.
    pub class_hour_minutes: u32,
    pub rounding: Rounding,
    /// Cap per expert per half-day, across all tasks and payers.
    pub max_class_hours_per_half_day: u32,
    /// Experts who are civil servants on the work date are paid nothing.
    pub civil_servants_exempt: bool,
    pub fund_sources: Vec<FundSource>,
    /// Whether report-writing time counts as supervision time (DOMAIN.md 10.2).
    pub pay_report_writing: bool,
    /// A payment batch above this gross also needs CITY_ADMIN or the bureau's FINANCE_LEAD.
    pub leader_approval_threshold_fen: i64,
}

/// How worked minutes become whole class hours (D1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rounding {
    /// Whole class hours actually worked (the default).
    Floor,
    /// A remainder of at least half a class hour counts as one.
    HalfUp,
}

/// What the per-class-hour rate means for tax (D9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FeeBasis {
    /// The rate is the gross fee; withholding comes out of it.
    PreTax,
    /// The fee is grossed up so the expert nets the rate.
    AfterTax,
}

/// The fund a fee is paid from, article 10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FundSource {
    /// 省级促进就业创业发展专项资金—职业技能提升培训资金.
    ProvEmploymentFundSkillTraining,
    /// 市县两级就业创业专项资金.
    CityCountyEmploymentFund,
}

/// Half-day slots (D2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionRules {
    /// AM is before this time, PM from it.
    #[serde(deserialize_with = "toml_time")]
    pub half_day_split: NaiveTime,
    pub evening_is_separate_half_day: bool,
}

/// Drawing and dispatching a team (D3, D7, D13, D14).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchRules {
    /// Experts per task by default; fewer needs city approval, and never one (article 9(一)).
    pub team_size: u32,
    /// Ranked backups per task.
    pub backup_count: u32,
    /// A county bureau dispatches only to institutions in its own county, barring a city-approved
    /// exception.
    pub county_dispatch_own_county_only: bool,
    pub training_required_before_dispatch: bool,
    /// Quality-supervisor card holders required on an evaluation-activity task (DOMAIN.md 2.1).
    pub evaluation_task_quality_card: QualityCardRule,
    /// Working days between notifying a team and its first session.
    pub min_lead_working_days: u32,
    /// Working days an expert has to answer a notification.
    pub response_working_days: u32,
    /// Article 9(七): working days of notice before the first session for a decline to be timely.
    pub decline_notice_working_days: u32,
    /// Time of day (Asia/Shanghai) the decline notice closes on its last working day
    /// (`office_hours_end` in DOMAIN.md section 17).
    #[serde(deserialize_with = "toml_time")]
    pub decline_cutoff: NaiveTime,
}

/// How many of a team must hold a 质量督导员证(卡) for an evaluation-activity task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum QualityCardRule {
    NotRequired,
    OnePerTeam,
    EveryMember,
}

/// D14's soft exclusion rules, relaxed in order only when the pool is too small.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExclusionRules {
    /// An expert is not sent to the same institution again within this many months.
    pub cooling_months_same_institution: u32,
    /// Assignments per expert per calendar month.
    pub max_assignments_per_month: u32,
    /// How far back an employment relation counts as a conflict.
    pub conflict_lookback_years: u32,
}

/// Reports and results after a task.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRules {
    /// Working days after check-out for the expert's report.
    pub report_deadline_working_days: u32,
    pub bureau_review_working_days: u32,
    /// Working days after findings are confirmed to publish the result.
    pub result_publication_working_days: u32,
}

/// 双随机 random inspection plans (DOMAIN.md 2.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomPlanRules {
    /// Share of institutions drawn per round, in percent.
    pub ratio_percent: u32,
    /// At least this many institutions per round.
    pub min_tasks: u32,
    pub rounds_per_year: u32,
}

/// Recruitment, publicity, appointment and renewal (article 7, 11; D10, D11, D21).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentRules {
    /// 公示 — the public notice before appointment lasts at least this many days, the first
    /// included.
    pub publicity_days: u32,
    pub publicity_day_count: DayCount,
    pub min_recruitment_calls_per_year: u32,
    /// A term ends the day before this anniversary of its start.
    pub term_years: u32,
    /// Renewal may start this many days before the term ends.
    pub renewal_window_days: u32,
    /// Whether a renewal goes through publicity again.
    pub renewal_publicity: bool,
    /// Re-applying within this many years of a termination under article 12(一)(二) is a warning.
    pub reapply_bar_years_after_termination: u32,
    /// A no-criminal-record certificate older than this is not accepted.
    pub no_criminal_record_certificate_max_age_months: u32,
}

/// Whether a period of days counts calendar days or working days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DayCount {
    Calendar,
    Working,
}

/// Automatic retirement for not accepting dispatch (article 12(三), D5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetirementRules {
    /// Consecutive calendar years of not accepting that make a streak.
    pub non_acceptance_years: u32,
    /// Working days between proposing a retirement and applying it, unless the city holds it.
    pub confirmation_working_days: u32,
    /// The year of appointment is neutral when the appointment began after this day of it.
    pub appointment_year_neutral_after: MonthDay,
}

/// Article 13.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeetingRules {
    pub min_plenary_meetings_per_year: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRules {
    /// Years payment and task records are kept (the accounting-archive rules).
    pub retention_years: u32,
}

/// The edition's own end (DOMAIN.md section 15).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidityRules {
    /// Remind CITY_ADMIN this many days before the last edition in force ends.
    pub expiry_reminder_days: Vec<u32>,
}

/// A day of the year without a year, written `"MM-DD"` in an edition file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MonthDay {
    pub month: u32,
    pub day: u32,
}

impl MonthDay {
    /// This day in `year`; 29 February falls back to 28 February in a common year.
    pub fn in_year(self, year: i32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year, self.month, self.day)
            .or_else(|| NaiveDate::from_ymd_opt(year, self.month, self.day.saturating_sub(1)))
    }
}

impl fmt::Display for MonthDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

impl<'de> Deserialize<'de> for MonthDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let parsed = text.split_once('-').and_then(|(m, d)| {
            let (month, day) = (m.parse().ok()?, d.parse().ok()?);
            // A leap year, so that 02-29 is a day of the year.
            NaiveDate::from_ymd_opt(2000, month, day).map(|_| Self { month, day })
        });
        parsed.ok_or_else(|| D::Error::custom(format!("expected a day of the year like \"07-01\", found {text:?}")))
    }
}

/// A TOML date with no time of day or offset.
fn toml_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
    let value = Datetime::deserialize(deserializer)?;
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
            .ok_or_else(|| D::Error::custom(format!("{value} is not a calendar date"))),
        _ => Err(D::Error::custom(format!("expected a plain date like 2027-02-14, found {value}"))),
    }
}

/// A TOML time of day with no date or offset, to the second.
fn toml_time<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveTime, D::Error> {
    let value = Datetime::deserialize(deserializer)?;
    match (value.date, value.time, value.offset) {
        (None, Some(t), None) if t.nanosecond.unwrap_or(0) == 0 => {
            NaiveTime::from_hms_opt(u32::from(t.hour), u32::from(t.minute), u32::from(t.second.unwrap_or(0)))
                .ok_or_else(|| D::Error::custom(format!("{value} is not a time of day")))
        }
        _ => Err(D::Error::custom(format!("expected a time of day like 17:30:00, found {value}"))),
    }
}
