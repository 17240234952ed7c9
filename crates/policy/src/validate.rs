//! Range checks on one edition's parameters.
//!
//! The ranges catch typos (a fee of 100 fen for 100 yuan, a 45-hour class hour), not policy
//! choices: a successor edition may change any default, and the ranges are wide enough for that.

use std::{fmt::Display, ops::RangeInclusive};

use chrono::NaiveTime;

use crate::{edition::Edition, error::EditionError};

fn in_range<T: PartialOrd + Display>(
    file: &str,
    field: &str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), EditionError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(EditionError::Invalid {
            file: file.to_owned(),
            field: field.to_owned(),
            problem: format!("is {value}, outside the sane range {} to {}", range.start(), range.end()),
        })
    }
}

fn invalid(file: &str, field: &str, problem: impl Into<String>) -> EditionError {
    EditionError::Invalid { file: file.to_owned(), field: field.to_owned(), problem: problem.into() }
}

fn time(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// Checks every parameter of `edition`, naming `file` and the field in the error.
pub(crate) fn validate(file: &str, e: &Edition) -> Result<(), EditionError> {
    in_range(file, "number", e.number, 1..=999)?;
    if e.doc_no.trim().is_empty() {
        return Err(invalid(file, "doc_no", "is empty"));
    }
    if e.title.trim().is_empty() {
        return Err(invalid(file, "title", "is empty"));
    }
    if e.effective_from > e.effective_to {
        return Err(invalid(
            file,
            "effective_to",
            format!("{} is before effective_from {}", e.effective_to, e.effective_from),
        ));
    }

    let f = &e.fees;
    in_range(file, "fees.rate_per_class_hour_fen", f.rate_per_class_hour_fen, 100..=100_000)?;
    in_range(file, "fees.class_hour_minutes", f.class_hour_minutes, 15..=120)?;
    in_range(file, "fees.max_class_hours_per_half_day", f.max_class_hours_per_half_day, 1..=8)?;
    if f.fund_sources.is_empty() {
        return Err(invalid(file, "fees.fund_sources", "is empty; a fee must be payable from some fund"));
    }
    if f.fund_sources.iter().enumerate().any(|(i, s)| f.fund_sources[..i].contains(s)) {
        return Err(invalid(file, "fees.fund_sources", "lists a fund twice"));
    }
    in_range(file, "fees.leader_approval_threshold_fen", f.leader_approval_threshold_fen, 1..=100_000_000)?;

    in_range(file, "sessions.half_day_split", e.sessions.half_day_split, time(10, 0)..=time(15, 0))?;

    let d = &e.dispatch;
    // Article 9(一): experts never supervise alone, so the default team is at least two.
    in_range(file, "dispatch.team_size", d.team_size, 2..=20)?;
    in_range(file, "dispatch.backup_count", d.backup_count, 0..=20)?;
    in_range(file, "dispatch.min_lead_working_days", d.min_lead_working_days, 0..=60)?;
    in_range(file, "dispatch.response_working_days", d.response_working_days, 1..=30)?;
    in_range(file, "dispatch.decline_notice_working_days", d.decline_notice_working_days, 1..=30)?;
    in_range(file, "dispatch.decline_cutoff", d.decline_cutoff, time(8, 0)..=time(23, 59))?;

    let x = &e.exclusions;
    in_range(file, "exclusions.cooling_months_same_institution", x.cooling_months_same_institution, 0..=60)?;
    in_range(file, "exclusions.max_assignments_per_month", x.max_assignments_per_month, 1..=62)?;
    in_range(file, "exclusions.conflict_lookback_years", x.conflict_lookback_years, 0..=20)?;

    let r = &e.reports;
    in_range(file, "reports.report_deadline_working_days", r.report_deadline_working_days, 1..=60)?;
    in_range(file, "reports.bureau_review_working_days", r.bureau_review_working_days, 1..=60)?;
    in_range(file, "reports.result_publication_working_days", r.result_publication_working_days, 1..=120)?;

    let p = &e.random_plan;
    in_range(file, "random_plan.ratio_percent", p.ratio_percent, 0..=100)?;
    in_range(file, "random_plan.min_tasks", p.min_tasks, 0..=1000)?;
    in_range(file, "random_plan.rounds_per_year", p.rounds_per_year, 0..=12)?;

    let a = &e.appointment;
    in_range(file, "appointment.publicity_days", a.publicity_days, 1..=90)?;
    in_range(file, "appointment.min_recruitment_calls_per_year", a.min_recruitment_calls_per_year, 0..=12)?;
    in_range(file, "appointment.term_years", a.term_years, 1..=10)?;
    in_range(file, "appointment.renewal_window_days", a.renewal_window_days, 1..=365)?;
    in_range(file, "appointment.reapply_bar_years_after_termination", a.reapply_bar_years_after_termination, 0..=20)?;
    in_range(
        file,
        "appointment.no_criminal_record_certificate_max_age_months",
        a.no_criminal_record_certificate_max_age_months,
        1..=24,
    )?;

    let t = &e.retirement;
    in_range(file, "retirement.non_acceptance_years", t.non_acceptance_years, 1..=10)?;
    in_range(file, "retirement.confirmation_working_days", t.confirmation_working_days, 0..=60)?;

    in_range(file, "meetings.min_plenary_meetings_per_year", e.meetings.min_plenary_meetings_per_year, 0..=12)?;
    in_range(file, "records.retention_years", e.records.retention_years, 1..=100)?;

    let reminders = &e.validity.expiry_reminder_days;
    for (i, days) in reminders.iter().enumerate() {
        in_range(file, &format!("validity.expiry_reminder_days[{i}]"), *days, 1..=3650)?;
        if reminders[..i].contains(days) {
            return Err(invalid(file, "validity.expiry_reminder_days", format!("lists {days} twice")));
        }
    }
    Ok(())
}
