//! The CalendarService over the built-in data and over overlay directories: conversion, the
//! mapping of missing years and editions to `FAILED_PRECONDITION`, and refused files.
//!
//! The 2027 year file and edition 2 here are test fixtures shaped like the real thing (the 2027
//! notice and the successor edition were not out when this was written), as in the calendar and
//! policy crates' own tests.

use std::{fs, sync::Arc};

use chrono::{DateTime, NaiveDate, Utc};
use clap::Parser;
use supervision_kit::{Clock, SharedClock};
use supervision_proto::{
    calendar::{self as pb, calendar_service_server::CalendarService, get_policy_edition_request::Selector},
    common,
};
use tempfile::TempDir;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::{CalendarApi, LoadError, Reference, ReferenceArgs};

const FIXTURE_2027: &str = r#"
year = 2027

[[notice]]
title = "国务院办公厅关于2027年部分节假日安排的通知 (test fixture)"
url = "https://www.gov.cn/zhengce/zhengceku/test-fixture.htm"

[[holiday]]
name = "元旦"
from = 2027-01-01
to = 2027-01-03

[[holiday]]
name = "春节"
from = 2027-02-06
to = 2027-02-13
make_up_working_days = [2027-02-14, 2027-02-20]
"#;

const EDITION_1: &str = include_str!("../../policy/editions/edition-1.toml");

/// A successor: edition 2 from the day after edition 1, with a new fee rate.
fn edition_2() -> String {
    let mut text = EDITION_1.to_owned();
    for (from, to) in [
        ("number = 1", "number = 2"),
        ("doc_no = \"江人社发〔2022〕1号\"", "doc_no = \"江人社发〔2027〕1号 (test fixture)\""),
        ("issued_on = 2022-01-05", "issued_on = 2027-01-10"),
        ("effective_from = 2022-02-15", "effective_from = 2027-02-15"),
        ("effective_to = 2027-02-14", "effective_to = 2032-02-14"),
        ("rate_per_class_hour_fen = 10000", "rate_per_class_hour_fen = 12000"),
    ] {
        assert!(text.contains(from), "edition-1.toml no longer contains {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

#[derive(Debug)]
struct FixedClock(DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

fn clock_at(rfc3339: &str) -> SharedClock {
    Arc::new(FixedClock(DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc)))
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn pdate(year: i32, month: i32, day: i32) -> Option<common::Date> {
    Some(common::Date { year, month, day })
}

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

/// The service over the built-in data, on 26 November 2026.
fn embedded_api() -> CalendarApi {
    Reference::embedded().api(clock_at("2026-11-26T10:00:00+08:00"))
}

/// The service over built-in data plus the given overlay directories.
fn overlay_api(calendar: Option<&TempDir>, policy: Option<&TempDir>) -> CalendarApi {
    let args = ReferenceArgs {
        calendar_data_dir: calendar.map(|d| d.path().to_owned()),
        policy_data_dir: policy.map(|d| d.path().to_owned()),
    };
    args.load().unwrap().api(clock_at("2026-11-26T10:00:00+08:00"))
}

async fn is_working_day(api: &CalendarApi, date: Option<common::Date>) -> Result<pb::IsWorkingDayResponse, Status> {
    api.is_working_day(Request::new(pb::IsWorkingDayRequest { date })).await.map(|r| r.into_inner())
}

async fn add_working_days(api: &CalendarApi, date: Option<common::Date>, days: i32) -> Result<common::Date, Status> {
    let response = api.add_working_days(Request::new(pb::AddWorkingDaysRequest { date, days })).await?;
    Ok(response.into_inner().date.unwrap())
}

async fn deadline(api: &CalendarApi, date: Option<common::Date>) -> Result<pb::GetDeclineDeadlineResponse, Status> {
    let request = pb::GetDeclineDeadlineRequest { first_session_date: date };
    api.get_decline_deadline(Request::new(request)).await.map(|r| r.into_inner())
}

async fn edition(api: &CalendarApi, selector: Option<Selector>) -> Result<pb::PolicyEdition, Status> {
    let response = api.get_policy_edition(Request::new(pb::GetPolicyEditionRequest { selector })).await?;
    Ok(response.into_inner().edition.unwrap())
}

/// Asserts a `FAILED_PRECONDITION` with this reason, and returns its ErrorInfo metadata.
fn failed_precondition(status: &Status, reason: &str) -> std::collections::HashMap<String, String> {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo detail");
    assert_eq!((info.reason.as_str(), info.domain.as_str()), (reason, "supervision.calendar.v1"));
    let violations = &details.precondition_failure().expect("a PreconditionFailure detail").violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].r#type, reason);
    info.metadata.clone()
}

/// The fields of an `INVALID_ARGUMENT`'s BadRequest.
fn bad_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    details.bad_request().expect("a BadRequest detail").field_violations.iter().map(|f| f.field.clone()).collect()
}

#[tokio::test]
async fn a_working_day_says_why_and_cites_its_notice() {
    let api = embedded_api();
    let answer = is_working_day(&api, pdate(2026, 10, 10)).await.unwrap();
    assert!(answer.working_day);
    assert_eq!(answer.kind, pb::DayKind::MakeupWorkday as i32);
    assert_eq!(answer.holiday_name, "国庆节");
    assert_eq!(answer.notices[0].title, "国务院办公厅关于2026年部分节假日安排的通知");

    let answer = is_working_day(&api, pdate(2026, 10, 1)).await.unwrap();
    assert!(!answer.working_day);
    assert_eq!((answer.kind, answer.holiday_name.as_str()), (pb::DayKind::Holiday as i32, "国庆节"));

    let answer = is_working_day(&api, pdate(2026, 10, 17)).await.unwrap();
    assert_eq!((answer.working_day, answer.kind), (false, pb::DayKind::Weekend as i32));
    assert!(answer.holiday_name.is_empty());
    assert_eq!(is_working_day(&api, pdate(2026, 10, 14)).await.unwrap().kind, pb::DayKind::Weekday as i32);
}

#[tokio::test]
async fn a_turn_of_year_holiday_cites_the_next_years_notice() {
    // 2023's notice starts the New Year holiday on Saturday 2022-12-31.
    let api = embedded_api();
    let answer = is_working_day(&api, pdate(2022, 12, 31)).await.unwrap();
    assert_eq!((answer.kind, answer.holiday_name.as_str()), (pb::DayKind::Holiday as i32, "元旦"));
    assert_eq!(answer.notices[0].title, "国务院办公厅关于2023年部分节假日安排的通知");
    // An ordinary December weekend is 2022's.
    let answer = is_working_day(&api, pdate(2022, 12, 24)).await.unwrap();
    assert_eq!(answer.notices[0].title, "国务院办公厅关于2022年部分节假日安排的通知");
}

#[tokio::test]
async fn a_date_in_an_uncovered_year_fails_naming_2027() {
    let api = embedded_api();
    let status = is_working_day(&api, pdate(2027, 3, 1)).await.unwrap_err();
    let metadata = failed_precondition(&status, "CALENDAR_YEAR_MISSING");
    assert_eq!(metadata.get("year").map(String::as_str), Some("2027"));
    assert!(status.message().contains("2027.toml"), "{}", status.message());
    let details = status.get_error_details();
    assert_eq!(details.precondition_failure().unwrap().violations[0].subject, "calendar/2027");

    // A walk that leaves 2026 fails on the year it reaches.
    let status = add_working_days(&api, pdate(2026, 12, 30), 5).await.unwrap_err();
    assert_eq!(failed_precondition(&status, "CALENDAR_YEAR_MISSING")["year"], "2027");
    let request = pb::CountWorkingDaysRequest { start: pdate(2026, 12, 1), end: pdate(2027, 1, 4) };
    let status = api.count_working_days(Request::new(request)).await.unwrap_err();
    assert_eq!(failed_precondition(&status, "CALENDAR_YEAR_MISSING")["year"], "2027");
    // Edition 1 is in force on 2027-01-05, but the calendar cannot count back from it.
    let status = deadline(&api, pdate(2027, 1, 5)).await.unwrap_err();
    assert_eq!(failed_precondition(&status, "CALENDAR_YEAR_MISSING")["year"], "2027");
}

#[tokio::test]
async fn an_overlay_2027_file_makes_2027_dates_work() {
    let calendar = dir_with(&[("2027.toml", FIXTURE_2027)]);
    let api = overlay_api(Some(&calendar), None);
    let answer = is_working_day(&api, pdate(2027, 2, 14)).await.unwrap();
    assert_eq!((answer.working_day, answer.holiday_name.as_str()), (true, "春节"));
    assert_eq!(answer.notices[0].title, "国务院办公厅关于2027年部分节假日安排的通知 (test fixture)");
    // Thursday 2026-12-31: Friday 1 January to Sunday 3 January off, Monday 4 January.
    assert_eq!(
        add_working_days(&api, pdate(2026, 12, 31), 1).await.unwrap(),
        common::Date { year: 2027, month: 1, day: 4 }
    );
    // First session Wednesday 2027-02-10, in the Spring Festival: 9..6 off, Fri 5 (1), Thu 4 (2), Wed 3 (3).
    let answer = deadline(&api, pdate(2027, 2, 10)).await.unwrap();
    assert_eq!(answer.deadline_date, pdate(2027, 2, 3));
    assert_eq!(answer.edition_number, 1);

    let response = api.get_calendar_coverage(Request::new(pb::GetCalendarCoverageRequest {})).await.unwrap();
    let coverage = response.into_inner();
    let last = coverage.years.last().unwrap();
    assert_eq!(last.year, 2027);
    assert!(!last.embedded && last.file.ends_with("2027.toml"), "{}", last.file);
    assert_eq!(coverage.first_uncovered_date, pdate(2028, 1, 1));
    assert!(is_working_day(&api, pdate(2028, 1, 3)).await.is_err());
}

#[tokio::test]
async fn the_decline_deadline_is_the_cutoff_on_the_third_working_day_before() {
    let api = embedded_api();
    let answer = deadline(&api, pdate(2025, 3, 10)).await.unwrap();
    assert_eq!(answer.deadline_date, pdate(2025, 3, 5));
    assert_eq!(answer.cutoff, Some(common::TimeOfDay { hours: 17, minutes: 30 }));
    assert_eq!(answer.edition_number, 1);
    // 17:30 in Shanghai is 09:30 UTC.
    let expected = DateTime::parse_from_rfc3339("2025-03-05T09:30:00Z").unwrap().timestamp();
    assert_eq!(answer.deadline, Some(prost_types::Timestamp { seconds: expected, nanos: 0 }));

    // Monday 2026-10-12, after National Day: Sat 10 (make-up, 1), Fri 9 (2), Thu 8 (3).
    let answer = deadline(&api, pdate(2026, 10, 12)).await.unwrap();
    assert_eq!(answer.deadline_date, pdate(2026, 10, 8));
}

#[tokio::test]
async fn a_date_after_edition_one_without_a_successor_fails_naming_2027_02_14() {
    let api = embedded_api();
    let status = edition(&api, Some(Selector::Date(pdate(2027, 2, 15).unwrap()))).await.unwrap_err();
    let metadata = failed_precondition(&status, "NO_EDITION_IN_FORCE");
    assert_eq!(metadata["date"], "2027-02-15");
    assert_eq!(metadata["last_effective_to"], "2027-02-14");
    assert!(status.message().contains("2027-02-14"), "{}", status.message());

    // The deadline needs the edition's parameters first, even where the calendar has the year.
    let calendar = dir_with(&[("2027.toml", FIXTURE_2027)]);
    let api = overlay_api(Some(&calendar), None);
    let status = deadline(&api, pdate(2027, 2, 17)).await.unwrap_err();
    assert_eq!(failed_precondition(&status, "NO_EDITION_IN_FORCE")["last_effective_to"], "2027-02-14");
}

#[tokio::test]
async fn a_date_before_the_first_edition_names_its_start() {
    let status = deadline(&embedded_api(), pdate(2021, 1, 4)).await.unwrap_err();
    let metadata = failed_precondition(&status, "NO_EDITION_IN_FORCE");
    assert_eq!(metadata.get("last_effective_to"), None);
    assert_eq!(metadata["next_effective_from"], "2022-02-15");
}

#[tokio::test]
async fn a_successor_edition_applies_from_its_start_date() {
    let calendar = dir_with(&[("2027.toml", FIXTURE_2027)]);
    let policy = dir_with(&[("edition-2.toml", &edition_2())]);
    let api = overlay_api(Some(&calendar), Some(&policy));

    let last_of_1 = edition(&api, Some(Selector::Date(pdate(2027, 2, 14).unwrap()))).await.unwrap();
    assert_eq!(last_of_1.number, 1);
    assert_eq!(last_of_1.fees.unwrap().rate_per_class_hour, Some(common::Money { fen: 10_000 }));
    let first_of_2 = edition(&api, Some(Selector::Date(pdate(2027, 2, 15).unwrap()))).await.unwrap();
    assert_eq!(first_of_2.number, 2);
    assert_eq!(first_of_2.fees.unwrap().rate_per_class_hour, Some(common::Money { fen: 12_000 }));
    assert!(first_of_2.source.ends_with("edition-2.toml"), "{}", first_of_2.source);
    assert_eq!(
        edition(&api, Some(Selector::Number(2))).await.unwrap().document_number,
        "江人社发〔2027〕1号 (test fixture)"
    );

    // First session Wednesday 2027-02-17 under edition 2: Tue 16 (1), Mon 15 (2), Sun 14 (make-up, 3).
    let answer = deadline(&api, pdate(2027, 2, 17)).await.unwrap();
    assert_eq!((answer.deadline_date, answer.edition_number), (pdate(2027, 2, 14), 2));

    let list = api.list_policy_editions(Request::new(pb::ListPolicyEditionsRequest {})).await.unwrap();
    let numbers: Vec<i32> = list.into_inner().editions.iter().map(|e| e.number).collect();
    assert_eq!(numbers, [1, 2]);
}

#[tokio::test]
async fn bad_input_names_the_fields() {
    let api = embedded_api();
    assert_eq!(bad_fields(&is_working_day(&api, None).await.unwrap_err()), ["date"]);
    assert_eq!(bad_fields(&is_working_day(&api, pdate(2026, 2, 29)).await.unwrap_err()), ["date.day"]);
    assert_eq!(bad_fields(&add_working_days(&api, pdate(2026, 13, 1), 1).await.unwrap_err()), ["date.month"]);
    let request = pb::CountWorkingDaysRequest { start: None, end: pdate(1999, 1, 1) };
    let status = api.count_working_days(Request::new(request)).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["start", "end.year"]);
    assert_eq!(bad_fields(&deadline(&api, None).await.unwrap_err()), ["first_session_date"]);
    assert_eq!(bad_fields(&edition(&api, None).await.unwrap_err()), ["selector"]);
    assert_eq!(bad_fields(&edition(&api, Some(Selector::Number(0))).await.unwrap_err()), ["number"]);
    let status = edition(&api, Some(Selector::Date(common::Date { year: 2026, month: 4, day: 31 }))).await.unwrap_err();
    assert_eq!(bad_fields(&status), ["date.day"]);

    let status = edition(&api, Some(Selector::Number(7))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.get_error_details().resource_info().unwrap().resource_name, "7");
}

#[tokio::test]
async fn counting_and_adding_convert_both_ways() {
    let api = embedded_api();
    assert_eq!(
        add_working_days(&api, pdate(2026, 9, 30), 3).await.unwrap(),
        common::Date { year: 2026, month: 10, day: 10 }
    );
    assert_eq!(
        add_working_days(&api, pdate(2026, 10, 10), -3).await.unwrap(),
        common::Date { year: 2026, month: 9, day: 30 }
    );
    assert_eq!(
        add_working_days(&api, pdate(2026, 10, 3), 0).await.unwrap(),
        common::Date { year: 2026, month: 10, day: 3 }
    );
    let request = pb::CountWorkingDaysRequest { start: pdate(2026, 10, 12), end: pdate(2026, 10, 8) };
    let response = api.count_working_days(Request::new(request)).await.unwrap();
    assert_eq!(response.into_inner().working_days, -3);
}

#[tokio::test]
async fn coverage_warns_from_the_first_of_december_in_shanghai() {
    // 16:30 UTC on 30 November is already 1 December in Shanghai.
    let api = Reference::embedded().api(clock_at("2026-11-30T16:30:00Z"));
    let response = api.get_calendar_coverage(Request::new(pb::GetCalendarCoverageRequest {})).await.unwrap();
    let coverage = response.into_inner();
    assert!(coverage.next_year_missing && coverage.needs_attention);
    assert_eq!((coverage.first_uncovered_date, coverage.days_until_uncovered), (pdate(2027, 1, 1), 31));
    assert!(coverage.summary.contains("2027.toml"), "{}", coverage.summary);
    let years: Vec<i32> = coverage.years.iter().map(|y| y.year).collect();
    assert_eq!(years, (2021..=2026).collect::<Vec<_>>());
    assert!(coverage.years.iter().all(|y| y.embedded && y.file.starts_with("embedded ") && !y.notices.is_empty()));

    let api = Reference::embedded().api(clock_at("2026-11-30T15:30:00Z"));
    let response = api.get_calendar_coverage(Request::new(pb::GetCalendarCoverageRequest {})).await.unwrap();
    assert!(!response.into_inner().needs_attention);
}

#[test]
fn a_bad_overlay_year_file_refuses_the_load_naming_the_file() {
    let calendar = dir_with(&[("2027.toml", "year = 2027\n[[holiday]\n")]);
    let args = ReferenceArgs { calendar_data_dir: Some(calendar.path().to_owned()), policy_data_dir: None };
    let error = args.load().unwrap_err();
    let path = calendar.path().join("2027.toml").display().to_string();
    assert!(matches!(error, LoadError::Calendar(_)), "{error}");
    assert_eq!(error.file(), Some(path.as_str()));
    assert!(error.to_string().contains(&path), "{error}");
}

#[test]
fn a_bad_overlay_edition_file_refuses_the_load_naming_the_file() {
    let typo = edition_2().replace("class_hour_minutes = 45", "class_hour_minutes = 4500");
    let policy = dir_with(&[("edition-2.toml", &typo)]);
    let args = ReferenceArgs { calendar_data_dir: None, policy_data_dir: Some(policy.path().to_owned()) };
    let error = args.load().unwrap_err();
    let path = policy.path().join("edition-2.toml").display().to_string();
    assert!(matches!(error, LoadError::Policy(_)), "{error}");
    assert!(error.to_string().contains(&path) && error.to_string().contains("class_hour_minutes"), "{error}");
}

#[test]
fn a_missing_overlay_directory_refuses_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let args = ReferenceArgs { calendar_data_dir: Some(dir.path().join("nowhere")), policy_data_dir: None };
    assert!(args.load().unwrap_err().to_string().contains("nowhere"));
}

#[test]
fn the_directories_are_optional_flags() {
    #[derive(Debug, Parser)]
    struct Config {
        #[command(flatten)]
        reference: ReferenceArgs,
    }
    let config =
        Config::try_parse_from(["svc", "--calendar-data-dir", "/etc/cal", "--policy-data-dir", "/etc/pol"]).unwrap();
    assert_eq!(config.reference.calendar_data_dir.as_deref(), Some(std::path::Path::new("/etc/cal")));
    assert_eq!(config.reference.policy_data_dir.as_deref(), Some(std::path::Path::new("/etc/pol")));
    // Without flags (and, in this test process, without the environment variables) only the
    // built-in data is loaded.
    if std::env::var_os("CALENDAR_DATA_DIR").is_none() && std::env::var_os("POLICY_DATA_DIR").is_none() {
        let config = Config::try_parse_from(["svc"]).unwrap();
        let reference = config.reference.load().unwrap();
        assert_eq!(reference.calendar().covered_years(), (2021..=2026).collect::<Vec<_>>());
        assert_eq!(reference.editions().all().len(), 1);
    }
}

#[test]
fn the_domain_deadline_and_status_agree_with_the_rpc() {
    let reference = Reference::embedded();
    let found = reference.decline_deadline(date(2026, 10, 12)).unwrap();
    assert_eq!(found.deadline.to_rfc3339(), "2026-10-08T17:30:00+08:00");
    assert_eq!((found.notice_working_days, found.edition_number), (3, 1));
    let status: Status = reference.decline_deadline(date(2027, 3, 1)).unwrap_err().into();
    failed_precondition(&status, "NO_EDITION_IN_FORCE");
    assert!(reference.coverage(date(2026, 12, 1)).needs_attention());
}

/// The worked example of docs/calendar-and-policy.md.
#[tokio::test]
async fn the_documented_spring_festival_example_holds() {
    let api = embedded_api();
    // First session Tuesday 2026-02-24, the day after the Spring Festival holiday (15 to 23 off):
    // Sat 14 (make-up, 1), Fri 13 (2), Thu 12 (3).
    let answer = deadline(&api, pdate(2026, 2, 24)).await.unwrap();
    assert_eq!(answer.deadline_date, pdate(2026, 2, 12));
    let expected = DateTime::parse_from_rfc3339("2026-02-12T17:30:00+08:00").unwrap().timestamp();
    assert_eq!(answer.deadline.map(|t| t.seconds), Some(expected));
    let request = pb::CountWorkingDaysRequest { start: pdate(2026, 2, 12), end: pdate(2026, 2, 24) };
    assert_eq!(api.count_working_days(Request::new(request)).await.unwrap().into_inner().working_days, 3);
    // A session on Monday 2026-03-02, after the make-up Saturday 28: Sat 28 (1), Fri 27 (2), Thu 26 (3).
    assert_eq!(deadline(&api, pdate(2026, 3, 2)).await.unwrap().deadline_date, pdate(2026, 2, 26));
    // Without the make-up day it would have been Wed 25: the make-up day moves the deadline later.
}
