//! `supctl calendar is-working-day|add-working-days|deadline|coverage`: the working-day calendar
//! (工作日) a service runs on, and the D3 decline deadline computed from it.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use clap::{Args, Subcommand};
use supervision_proto::{
    calendar::{
        AddWorkingDaysRequest, DayKind, GetCalendarCoverageRequest, GetDeclineDeadlineRequest, IsWorkingDayRequest,
        calendar_service_client::CalendarServiceClient,
    },
    common,
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    output::Output,
    settings::{Bearer, Settings},
};

/// Every service serves the calendar and the policy editions it runs on; supctl asks this one
/// unless told otherwise.
pub const DEFAULT_SERVICE: &str = "registry";

#[derive(Debug, Args)]
pub struct CalendarArgs {
    /// The service to ask; each answers from the data it loaded at start.
    #[arg(long, global = true, default_value = DEFAULT_SERVICE)]
    pub service: String,
    #[command(subcommand)]
    pub command: CalendarCommand,
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Whether DATE (YYYY-MM-DD) is a working day, and why.
    IsWorkingDay { date: NaiveDate },
    /// The N-th working day after DATE, or before it when N is negative; DATE itself never counts.
    AddWorkingDays {
        date: NaiveDate,
        #[arg(allow_negative_numbers = true)]
        n: i32,
    },
    /// The D3 decline deadline for an expert whose first session is on DATE.
    Deadline { date: NaiveDate },
    /// The years the calendar covers, and whether next year's holiday notice is missing.
    Coverage,
}

pub type Client = CalendarServiceClient<InterceptedService<Channel, Bearer>>;

pub fn client(settings: &Settings, service: &str) -> anyhow::Result<Client> {
    Ok(CalendarServiceClient::new(settings.authed(service)?))
}

pub async fn run(args: CalendarArgs, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = client(settings, &args.service)?;
    match args.command {
        CalendarCommand::IsWorkingDay { date } => {
            let answer = client.is_working_day(IsWorkingDayRequest { date: Some(to_proto(date)) }).await?.into_inner();
            let kind = DayKind::try_from(answer.kind)
                .map(|k| k.as_str_name().trim_start_matches("DAY_KIND_").to_owned())
                .unwrap_or_default();
            let notices: Vec<String> = answer.notices.iter().map(|n| format!("{} {}", n.title, n.url)).collect();
            out.document(&serde_json::json!({
                "date": date.to_string(),
                "weekday": date.format("%a").to_string(),
                "working_day": answer.working_day,
                "kind": kind,
                "holiday": answer.holiday_name,
                "notice": notices,
            }));
        }
        CalendarCommand::AddWorkingDays { date, n } => {
            let request = AddWorkingDaysRequest { date: Some(to_proto(date)), days: n };
            let found = client.add_working_days(request).await?.into_inner().date;
            out.document(&serde_json::json!({
                "date": date.to_string(),
                "working_days": n,
                "result": show_date(found.as_ref()),
                "result_weekday": weekday(found.as_ref()),
            }));
        }
        CalendarCommand::Deadline { date } => {
            let request = GetDeclineDeadlineRequest { first_session_date: Some(to_proto(date)) };
            let answer = client.get_decline_deadline(request).await?.into_inner();
            out.document(&serde_json::json!({
                "first_session_date": date.to_string(),
                "deadline": answer.deadline.map(|t| show_instant(t.seconds, t.nanos)).unwrap_or_default(),
                "deadline_date": show_date(answer.deadline_date.as_ref()),
                "deadline_weekday": weekday(answer.deadline_date.as_ref()),
                "cutoff": show_time(answer.cutoff.as_ref()),
                "edition": answer.edition_number,
            }));
        }
        CalendarCommand::Coverage => {
            let answer = client.get_calendar_coverage(GetCalendarCoverageRequest {}).await?.into_inner();
            let years: Vec<serde_json::Value> = answer
                .years
                .iter()
                .map(|y| {
                    serde_json::json!({
                        "year": y.year,
                        "file": y.file,
                        "embedded": y.embedded,
                        "notices": y.notices.iter().map(|n| serde_json::json!({"title": n.title, "url": n.url})).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let summary = serde_json::json!({
                "service": args.service,
                "first_uncovered_date": show_date(answer.first_uncovered_date.as_ref()),
                "days_until_uncovered": answer.days_until_uncovered,
                "next_year_missing": answer.next_year_missing,
                "needs_attention": answer.needs_attention,
                "summary": answer.summary,
            });
            if out.is_json() {
                let mut document = summary;
                document["years"] = serde_json::Value::Array(years);
                out.document(&document);
            } else {
                let rows = answer
                    .years
                    .iter()
                    .map(|y| {
                        let source = if y.embedded { "built in".to_owned() } else { "data directory".to_owned() };
                        let notice = y.notices.iter().map(|n| n.title.as_str()).collect::<Vec<_>>().join("; ");
                        vec![y.year.to_string(), source, y.file.clone(), notice]
                    })
                    .collect();
                out.rows(&["year", "source", "file", "notice"], rows);
                out.record(&summary);
            }
            if answer.needs_attention {
                eprintln!("warning: {}", answer.summary);
            }
        }
    }
    Ok(())
}

/// Asia/Shanghai, in which every date and time of day of the contracts is.
pub fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// Today in Asia/Shanghai by this machine's clock.
pub fn shanghai_today() -> NaiveDate {
    Utc::now().with_timezone(&shanghai()).date_naive()
}

pub fn to_proto(date: NaiveDate) -> common::Date {
    use chrono::Datelike;
    common::Date { year: date.year(), month: date.month().cast_signed(), day: date.day().cast_signed() }
}

fn from_proto(date: Option<&common::Date>) -> Option<NaiveDate> {
    let d = date?;
    NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?)
}

/// `YYYY-MM-DD`, or empty when absent.
pub fn show_date(date: Option<&common::Date>) -> String {
    date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default()
}

fn weekday(date: Option<&common::Date>) -> String {
    from_proto(date).map(|d| d.format("%a").to_string()).unwrap_or_default()
}

/// `HH:MM`, or empty when absent.
pub fn show_time(time: Option<&common::TimeOfDay>) -> String {
    time.map(|t| format!("{:02}:{:02}", t.hours, t.minutes)).unwrap_or_default()
}

/// An instant (a `Timestamp`'s seconds and nanos) in Asia/Shanghai, RFC 3339.
fn show_instant(seconds: i64, nanos: i32) -> String {
    u32::try_from(nanos)
        .ok()
        .and_then(|n| DateTime::from_timestamp(seconds, n))
        .map(|t| t.with_timezone(&shanghai()).to_rfc3339())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Top {
        Calendar(CalendarArgs),
    }

    fn parse(args: &[&str]) -> CalendarArgs {
        let Top::Calendar(args) = Cli::try_parse_from(args).unwrap().command;
        args
    }

    #[test]
    fn a_negative_count_is_a_number_not_a_flag() {
        let args = parse(&["supctl", "calendar", "add-working-days", "2026-10-10", "-3"]);
        assert_eq!(args.service, "registry");
        let CalendarCommand::AddWorkingDays { date, n } = args.command else { panic!("{:?}", args.command) };
        assert_eq!((date, n), (NaiveDate::from_ymd_opt(2026, 10, 10).unwrap(), -3));
    }

    #[test]
    fn the_service_may_be_chosen_after_the_verb() {
        let args = parse(&["supctl", "calendar", "coverage", "--service", "dispatch"]);
        assert_eq!(args.service, "dispatch");
        assert!(Cli::try_parse_from(["supctl", "calendar", "deadline", "2026-02-30"]).is_err());
    }

    #[test]
    fn dates_and_times_show_as_iso() {
        let date = NaiveDate::from_ymd_opt(2026, 2, 14).unwrap();
        assert_eq!(show_date(Some(&to_proto(date))), "2026-02-14");
        assert_eq!(weekday(Some(&to_proto(date))), "Sat");
        assert_eq!(show_time(Some(&common::TimeOfDay { hours: 17, minutes: 30 })), "17:30");
        assert_eq!(show_instant(1_741_167_000, 0), "2025-03-05T17:30:00+08:00");
    }
}
