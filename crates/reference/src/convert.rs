//! Proto <-> domain for the CalendarService: dates in, days, coverage and editions out.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Timelike, Utc};
use supervision_calendar::{Coverage, Day, Notice, YearSource};
use supervision_kit::FieldViolations;
use supervision_policy::{DayCount, Edition, FeeBasis, FundSource, QualityCardRule, Rounding};
use supervision_proto::{calendar as pb, common};

/// The years a request date may name; outside them the date is a typo, not a missing year.
const YEARS: std::ops::RangeInclusive<i32> = 2000..=2199;

/// A required `Date`, every problem recorded under `field` (`date`, `start`, ...) or its parts.
pub fn required_date(raw: Option<&common::Date>, field: &str, v: &mut FieldViolations) -> Option<NaiveDate> {
    let Some(d) = raw else {
        v.add(field, "is required");
        return None;
    };
    let mut ok = true;
    if !YEARS.contains(&d.year) {
        v.add(format!("{field}.year"), format!("must be {} to {}, not {}", YEARS.start(), YEARS.end(), d.year));
        ok = false;
    }
    if !(1..=12).contains(&d.month) {
        v.add(format!("{field}.month"), format!("must be 1 to 12, not {}", d.month));
        ok = false;
    }
    if !ok {
        return None;
    }
    let date = u32::try_from(d.day).ok().and_then(|day| NaiveDate::from_ymd_opt(d.year, d.month.unsigned_abs(), day));
    if date.is_none() {
        let last = last_day_of_month(d.year, d.month.unsigned_abs());
        v.add(format!("{field}.day"), format!("must be 1 to {last} in {:04}-{:02}, not {}", d.year, d.month, d.day));
    }
    date
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    (28..=31).rev().find(|day| NaiveDate::from_ymd_opt(year, month, *day).is_some()).unwrap_or(28)
}

pub fn date(d: NaiveDate) -> common::Date {
    common::Date { year: d.year(), month: d.month().cast_signed(), day: d.day().cast_signed() }
}

pub fn time_of_day(t: NaiveTime) -> common::TimeOfDay {
    common::TimeOfDay { hours: t.hour().cast_signed(), minutes: t.minute().cast_signed() }
}

pub fn timestamp(t: DateTime<FixedOffset>) -> prost_types::Timestamp {
    supervision_kit::convert::timestamp(t.with_timezone(&Utc))
}

/// A count from an edition as the contract's `int32` (edition values are range-checked at load,
/// far below `i32::MAX`).
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn money(fen: i64) -> common::Money {
    common::Money { fen }
}

pub fn notices(notices: &[Notice]) -> Vec<pb::Notice> {
    notices.iter().map(|n| pb::Notice { title: n.title.clone(), url: n.url.clone() }).collect()
}

/// The kind of day and the holiday it belongs to (empty for an ordinary week day).
pub fn day(day: Day<'_>) -> (pb::DayKind, String) {
    match day {
        Day::Weekday => (pb::DayKind::Weekday, String::new()),
        Day::Weekend => (pb::DayKind::Weekend, String::new()),
        Day::Holiday { name } => (pb::DayKind::Holiday, name.to_owned()),
        Day::MakeUpWorkingDay { name } => (pb::DayKind::MakeupWorkday, name.to_owned()),
    }
}

pub fn calendar_year(source: &YearSource) -> pb::CalendarYear {
    pb::CalendarYear {
        year: source.year,
        file: source.file.clone(),
        embedded: source.embedded,
        notices: notices(&source.notices),
    }
}

pub fn coverage<'a>(
    coverage: &Coverage,
    sources: impl Iterator<Item = &'a YearSource>,
) -> pb::GetCalendarCoverageResponse {
    pb::GetCalendarCoverageResponse {
        years: sources.map(calendar_year).collect(),
        first_uncovered_date: Some(date(coverage.first_uncovered_date)),
        days_until_uncovered: coverage.days_until_uncovered,
        next_year_missing: coverage.next_year_missing_warning,
        needs_attention: coverage.needs_attention(),
        summary: coverage.to_string(),
    }
}

fn rounding(r: Rounding) -> pb::Rounding {
    match r {
        Rounding::Floor => pb::Rounding::Floor,
        Rounding::HalfUp => pb::Rounding::HalfUp,
    }
}

fn fee_basis(b: FeeBasis) -> pb::FeeBasis {
    match b {
        FeeBasis::PreTax => pb::FeeBasis::PreTax,
        FeeBasis::AfterTax => pb::FeeBasis::AfterTax,
    }
}

fn fund_source(f: FundSource) -> common::FundSource {
    match f {
        FundSource::ProvEmploymentFundSkillTraining => common::FundSource::ProvincialSkillTraining,
        FundSource::CityCountyEmploymentFund => common::FundSource::CityCountyEmployment,
    }
}

fn quality_card(q: QualityCardRule) -> pb::QualityCardRule {
    match q {
        QualityCardRule::NotRequired => pb::QualityCardRule::NotRequired,
        QualityCardRule::OnePerTeam => pb::QualityCardRule::OnePerTeam,
        QualityCardRule::EveryMember => pb::QualityCardRule::EveryMember,
    }
}

fn day_count(d: DayCount) -> pb::DayCount {
    match d {
        DayCount::Calendar => pb::DayCount::Calendar,
        DayCount::Working => pb::DayCount::Working,
    }
}

/// Every parameter of an edition, field for field.
pub fn edition(e: &Edition) -> pb::PolicyEdition {
    let f = &e.fees;
    let d = &e.dispatch;
    let a = &e.appointment;
    pb::PolicyEdition {
        number: int(e.number),
        document_number: e.doc_no.clone(),
        registration_number: e.registration_no.clone().unwrap_or_default(),
        title: e.title.clone(),
        issue_date: Some(date(e.issued_on)),
        effective: Some(common::DateRange { start: Some(date(e.effective_from)), end: Some(date(e.effective_to)) }),
        legal_basis: e.legal_basis.clone(),
        fees: Some(pb::FeeRules {
            rate_per_class_hour: Some(money(f.rate_per_class_hour_fen)),
            basis: fee_basis(f.basis) as i32,
            class_hour_minutes: int(f.class_hour_minutes),
            rounding: rounding(f.rounding) as i32,
            max_class_hours_per_half_day: int(f.max_class_hours_per_half_day),
            civil_servants_exempt: f.civil_servants_exempt,
            fund_sources: f.fund_sources.iter().map(|s| fund_source(*s) as i32).collect(),
            pay_report_writing: f.pay_report_writing,
            leader_approval_threshold: Some(money(f.leader_approval_threshold_fen)),
        }),
        sessions: Some(pb::SessionRules {
            half_day_split: Some(time_of_day(e.sessions.half_day_split)),
            evening_is_separate_half_day: e.sessions.evening_is_separate_half_day,
        }),
        dispatch: Some(pb::DispatchRules {
            team_size: int(d.team_size),
            backup_count: int(d.backup_count),
            county_dispatch_own_county_only: d.county_dispatch_own_county_only,
            training_required_before_dispatch: d.training_required_before_dispatch,
            evaluation_task_quality_card: quality_card(d.evaluation_task_quality_card) as i32,
            min_lead_working_days: int(d.min_lead_working_days),
            response_working_days: int(d.response_working_days),
            decline_notice_working_days: int(d.decline_notice_working_days),
            decline_cutoff: Some(time_of_day(d.decline_cutoff)),
        }),
        exclusions: Some(pb::ExclusionRules {
            cooling_months_same_institution: int(e.exclusions.cooling_months_same_institution),
            max_assignments_per_month: int(e.exclusions.max_assignments_per_month),
            conflict_lookback_years: int(e.exclusions.conflict_lookback_years),
        }),
        reports: Some(pb::ReportRules {
            report_deadline_working_days: int(e.reports.report_deadline_working_days),
            bureau_review_working_days: int(e.reports.bureau_review_working_days),
            result_publication_working_days: int(e.reports.result_publication_working_days),
        }),
        random_plan: Some(pb::RandomPlanRules {
            ratio_percent: int(e.random_plan.ratio_percent),
            min_tasks: int(e.random_plan.min_tasks),
            rounds_per_year: int(e.random_plan.rounds_per_year),
        }),
        appointment: Some(pb::AppointmentRules {
            publicity_days: int(a.publicity_days),
            publicity_day_count: day_count(a.publicity_day_count) as i32,
            min_recruitment_calls_per_year: int(a.min_recruitment_calls_per_year),
            term_years: int(a.term_years),
            renewal_window_days: int(a.renewal_window_days),
            renewal_publicity: a.renewal_publicity,
            reapply_bar_years_after_termination: int(a.reapply_bar_years_after_termination),
            no_criminal_record_certificate_max_age_months: int(a.no_criminal_record_certificate_max_age_months),
        }),
        retirement: Some(pb::RetirementRules {
            non_acceptance_years: int(e.retirement.non_acceptance_years),
            confirmation_working_days: int(e.retirement.confirmation_working_days),
            appointment_year_neutral_after: Some(pb::MonthDay {
                month: int(e.retirement.appointment_year_neutral_after.month),
                day: int(e.retirement.appointment_year_neutral_after.day),
            }),
        }),
        meetings: Some(pb::MeetingRules {
            min_plenary_meetings_per_year: int(e.meetings.min_plenary_meetings_per_year),
        }),
        records: Some(pb::RecordRules { retention_years: int(e.records.retention_years) }),
        validity: Some(pb::ValidityRules {
            expiry_reminder_days: e.validity.expiry_reminder_days.iter().map(|d| int(*d)).collect(),
        }),
        source: e.source.clone(),
    }
}

#[cfg(test)]
mod tests {
    use supervision_policy::Editions;

    use super::*;

    fn proto_date(year: i32, month: i32, day: i32) -> common::Date {
        common::Date { year, month, day }
    }

    fn violations(raw: Option<&common::Date>) -> Vec<(String, String)> {
        let mut v = FieldViolations::new();
        let parsed = required_date(raw, "date", &mut v);
        match v.check() {
            Ok(()) => {
                assert!(parsed.is_some());
                Vec::new()
            }
            Err(status) => {
                use tonic_types::StatusExt;
                assert_eq!(status.code(), tonic::Code::InvalidArgument);
                let details = status.get_error_details();
                let bad = details.bad_request().expect("a BadRequest detail");
                bad.field_violations.iter().map(|f| (f.field.clone(), f.description.clone())).collect()
            }
        }
    }

    #[test]
    fn a_real_date_converts_both_ways() {
        let mut v = FieldViolations::new();
        let parsed = required_date(Some(&proto_date(2024, 2, 29)), "date", &mut v);
        assert!(v.is_empty());
        assert_eq!(parsed, NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(date(parsed.unwrap()), proto_date(2024, 2, 29));
    }

    #[test]
    fn a_missing_date_names_the_field() {
        assert_eq!(violations(None), [("date".to_owned(), "is required".to_owned())]);
    }

    #[test]
    fn an_impossible_day_names_the_day_and_the_month_length() {
        let found = violations(Some(&proto_date(2025, 2, 29)));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "date.day");
        assert!(found[0].1.contains("1 to 28"), "{}", found[0].1);
    }

    #[test]
    fn a_bad_year_and_month_are_both_named() {
        let found = violations(Some(&proto_date(0, 13, 1)));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["date.year", "date.month"]);
        assert_eq!(violations(Some(&proto_date(2025, 1, 0)))[0].0, "date.day");
        assert_eq!(violations(Some(&proto_date(2025, 0, 1)))[0].0, "date.month");
    }

    #[test]
    fn days_convert_with_their_holiday_names() {
        assert_eq!(day(Day::Weekday), (pb::DayKind::Weekday, String::new()));
        assert_eq!(day(Day::Holiday { name: "春节" }), (pb::DayKind::Holiday, "春节".to_owned()));
        assert_eq!(day(Day::MakeUpWorkingDay { name: "国庆节" }), (pb::DayKind::MakeupWorkday, "国庆节".to_owned()));
    }

    #[test]
    fn edition_one_converts_field_for_field() {
        let editions = Editions::embedded();
        let e = edition(&editions.all()[0]);
        assert_eq!((e.number, e.document_number.as_str()), (1, "江人社发〔2022〕1号"));
        assert_eq!(e.registration_number, "JMBG2021060");
        let effective = e.effective.unwrap();
        assert_eq!(effective.start, Some(proto_date(2022, 2, 15)));
        assert_eq!(effective.end, Some(proto_date(2027, 2, 14)));
        let fees = e.fees.unwrap();
        assert_eq!(fees.rate_per_class_hour, Some(common::Money { fen: 10_000 }));
        assert_eq!(fees.leader_approval_threshold, Some(common::Money { fen: 1_000_000 }));
        assert_eq!(fees.basis, pb::FeeBasis::PreTax as i32);
        assert_eq!(fees.rounding, pb::Rounding::Floor as i32);
        assert_eq!(
            fees.fund_sources,
            [common::FundSource::ProvincialSkillTraining as i32, common::FundSource::CityCountyEmployment as i32]
        );
        let dispatch = e.dispatch.unwrap();
        assert_eq!(dispatch.decline_notice_working_days, 3);
        assert_eq!(dispatch.decline_cutoff, Some(common::TimeOfDay { hours: 17, minutes: 30 }));
        assert_eq!(dispatch.evaluation_task_quality_card, pb::QualityCardRule::OnePerTeam as i32);
        assert_eq!(e.sessions.unwrap().half_day_split, Some(common::TimeOfDay { hours: 12, minutes: 30 }));
        let appointment = e.appointment.unwrap();
        assert_eq!((appointment.publicity_days, appointment.publicity_day_count), (7, pb::DayCount::Calendar as i32));
        assert_eq!(e.retirement.unwrap().appointment_year_neutral_after, Some(pb::MonthDay { month: 7, day: 1 }));
        assert_eq!(e.validity.unwrap().expiry_reminder_days, [180, 90, 60, 30]);
        assert!(e.source.contains("edition-1.toml"), "{}", e.source);
    }
}
