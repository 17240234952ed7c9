//! `supctl policy show|list`: the effective-dated editions of the policy (D6) a service runs on,
//! with every parameter.

use chrono::NaiveDate;
use clap::{Args, Subcommand};
use supervision_proto::{
    calendar::{
        DayCount, FeeBasis, GetPolicyEditionRequest, ListPolicyEditionsRequest, PolicyEdition, QualityCardRule,
        Rounding, get_policy_edition_request::Selector,
    },
    common::{self, FundSource},
};

use crate::{
    commands::calendar::{DEFAULT_SERVICE, client, shanghai_today, show_date, show_time, to_proto},
    output::Output,
    settings::Settings,
};

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The service to ask; each answers from the data it loaded at start.
    #[arg(long, global = true, default_value = DEFAULT_SERVICE)]
    pub service: String,
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The edition in force on --date (today in Asia/Shanghai by default), or edition --number,
    /// with every parameter.
    Show {
        /// YYYY-MM-DD.
        #[arg(long, conflicts_with = "number")]
        date: Option<NaiveDate>,
        #[arg(long)]
        number: Option<i32>,
    },
    /// Every loaded edition, oldest first.
    List,
}

pub async fn run(args: PolicyArgs, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings, &args.service)?;
    match args.command {
        PolicyCommand::Show { date, number } => {
            let selector = match number {
                Some(n) => Selector::Number(n),
                None => Selector::Date(to_proto(date.unwrap_or_else(shanghai_today))),
            };
            let request = GetPolicyEditionRequest { selector: Some(selector) };
            let edition = client.get_policy_edition(request).await?.into_inner().edition.unwrap_or_default();
            out.document(&to_json(&edition));
        }
        PolicyCommand::List => {
            let editions = client.list_policy_editions(ListPolicyEditionsRequest {}).await?.into_inner().editions;
            let today = shanghai_today().to_string();
            let rows = editions
                .iter()
                .map(|e| {
                    let (from, to) = effective(e);
                    let in_force = if from <= today && today <= to { "yes" } else { "" };
                    vec![
                        e.number.to_string(),
                        e.document_number.clone(),
                        from,
                        to,
                        in_force.to_owned(),
                        e.source.clone(),
                    ]
                })
                .collect();
            out.rows(&["edition", "document", "from", "to", "in force today", "source"], rows);
        }
    }
    Ok(())
}

fn effective(e: &PolicyEdition) -> (String, String) {
    let range = e.effective.as_ref();
    (show_date(range.and_then(|r| r.start.as_ref())), show_date(range.and_then(|r| r.end.as_ref())))
}

/// An enum value's name without its type prefix, e.g. `PRE_TAX`.
fn name<E: TryFrom<i32>>(value: i32, prefix: &str, as_str: impl Fn(&E) -> &'static str) -> String {
    E::try_from(value).map(|e| as_str(&e).trim_start_matches(prefix).to_owned()).unwrap_or_else(|_| value.to_string())
}

fn fen(money: Option<&common::Money>) -> i64 {
    money.map_or(0, |m| m.fen)
}

/// Every parameter, grouped as in the edition file.
fn to_json(e: &PolicyEdition) -> serde_json::Value {
    let (from, to) = effective(e);
    let fees = e.fees.clone().unwrap_or_default();
    let sessions = e.sessions.unwrap_or_default();
    let dispatch = e.dispatch.unwrap_or_default();
    let exclusions = e.exclusions.unwrap_or_default();
    let reports = e.reports.unwrap_or_default();
    let random_plan = e.random_plan.unwrap_or_default();
    let appointment = e.appointment.unwrap_or_default();
    let retirement = e.retirement.unwrap_or_default();
    let neutral_after = retirement.appointment_year_neutral_after.unwrap_or_default();
    serde_json::json!({
        "number": e.number,
        "document_number": e.document_number,
        "registration_number": e.registration_number,
        "title": e.title,
        "issue_date": show_date(e.issue_date.as_ref()),
        "effective_from": from,
        "effective_to": to,
        "legal_basis": e.legal_basis,
        "source": e.source,
        "fees": {
            "rate_per_class_hour_fen": fen(fees.rate_per_class_hour.as_ref()),
            "basis": name(fees.basis, "FEE_BASIS_", FeeBasis::as_str_name),
            "class_hour_minutes": fees.class_hour_minutes,
            "rounding": name(fees.rounding, "ROUNDING_", Rounding::as_str_name),
            "max_class_hours_per_half_day": fees.max_class_hours_per_half_day,
            "civil_servants_exempt": fees.civil_servants_exempt,
            "fund_sources": fees.fund_sources.iter().map(|f| name(*f, "FUND_SOURCE_", FundSource::as_str_name)).collect::<Vec<_>>(),
            "pay_report_writing": fees.pay_report_writing,
            "leader_approval_threshold_fen": fen(fees.leader_approval_threshold.as_ref()),
        },
        "sessions": {
            "half_day_split": show_time(sessions.half_day_split.as_ref()),
            "evening_is_separate_half_day": sessions.evening_is_separate_half_day,
        },
        "dispatch": {
            "team_size": dispatch.team_size,
            "backup_count": dispatch.backup_count,
            "county_dispatch_own_county_only": dispatch.county_dispatch_own_county_only,
            "training_required_before_dispatch": dispatch.training_required_before_dispatch,
            "evaluation_task_quality_card": name(dispatch.evaluation_task_quality_card, "QUALITY_CARD_RULE_", QualityCardRule::as_str_name),
            "min_lead_working_days": dispatch.min_lead_working_days,
            "response_working_days": dispatch.response_working_days,
            "decline_notice_working_days": dispatch.decline_notice_working_days,
            "decline_cutoff": show_time(dispatch.decline_cutoff.as_ref()),
        },
        "exclusions": {
            "cooling_months_same_institution": exclusions.cooling_months_same_institution,
            "max_assignments_per_month": exclusions.max_assignments_per_month,
            "conflict_lookback_years": exclusions.conflict_lookback_years,
        },
        "reports": {
            "report_deadline_working_days": reports.report_deadline_working_days,
            "bureau_review_working_days": reports.bureau_review_working_days,
            "result_publication_working_days": reports.result_publication_working_days,
        },
        "random_plan": {
            "ratio_percent": random_plan.ratio_percent,
            "min_tasks": random_plan.min_tasks,
            "rounds_per_year": random_plan.rounds_per_year,
        },
        "appointment": {
            "publicity_days": appointment.publicity_days,
            "publicity_day_count": name(appointment.publicity_day_count, "DAY_COUNT_", DayCount::as_str_name),
            "min_recruitment_calls_per_year": appointment.min_recruitment_calls_per_year,
            "term_years": appointment.term_years,
            "renewal_window_days": appointment.renewal_window_days,
            "renewal_publicity": appointment.renewal_publicity,
            "reapply_bar_years_after_termination": appointment.reapply_bar_years_after_termination,
            "no_criminal_record_certificate_max_age_months": appointment.no_criminal_record_certificate_max_age_months,
        },
        "retirement": {
            "non_acceptance_years": retirement.non_acceptance_years,
            "confirmation_working_days": retirement.confirmation_working_days,
            "appointment_year_neutral_after": format!("{:02}-{:02}", neutral_after.month, neutral_after.day),
        },
        "meetings": {
            "min_plenary_meetings_per_year": e.meetings.unwrap_or_default().min_plenary_meetings_per_year,
        },
        "records": {
            "retention_years": e.records.unwrap_or_default().retention_years,
        },
        "validity": {
            "expiry_reminder_days": e.validity.clone().unwrap_or_default().expiry_reminder_days,
        },
    })
}

#[cfg(test)]
mod tests {
    use supervision_proto::calendar::{DispatchRules, FeeRules};

    use super::*;

    #[test]
    fn an_edition_shows_names_not_numbers() {
        let edition = PolicyEdition {
            number: 1,
            effective: Some(common::DateRange {
                start: Some(common::Date { year: 2022, month: 2, day: 15 }),
                end: Some(common::Date { year: 2027, month: 2, day: 14 }),
            }),
            fees: Some(FeeRules {
                rate_per_class_hour: Some(common::Money { fen: 10_000 }),
                basis: FeeBasis::PreTax as i32,
                rounding: Rounding::Floor as i32,
                fund_sources: vec![FundSource::ProvincialSkillTraining as i32, FundSource::CityCountyEmployment as i32],
                ..Default::default()
            }),
            dispatch: Some(DispatchRules {
                decline_cutoff: Some(common::TimeOfDay { hours: 17, minutes: 30 }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let json = to_json(&edition);
        assert_eq!(json["effective_to"], "2027-02-14");
        assert_eq!(json["fees"]["rate_per_class_hour_fen"], 10_000);
        assert_eq!(json["fees"]["basis"], "PRE_TAX");
        assert_eq!(json["fees"]["rounding"], "FLOOR");
        assert_eq!(
            json["fees"]["fund_sources"],
            serde_json::json!(["PROVINCIAL_SKILL_TRAINING", "CITY_COUNTY_EMPLOYMENT"])
        );
        assert_eq!(json["dispatch"]["decline_cutoff"], "17:30");
    }
}
