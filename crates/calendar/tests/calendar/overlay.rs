//! Operators' overlay directory: a new year without a rebuild, and bad files refused by name.
//!
//! The 2027 file here is a test fixture shaped like a notice, not the real 2027 notice (which was
//! not out when this was written).

use std::{fs, path::Path};

use supervision_calendar::{Calendar, CalendarError, CalendarWarning, Day, FileProblem, NotCovered};
use tempfile::TempDir;

use crate::date;

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

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn refused(files: &[(&str, &str)]) -> (CalendarError, TempDir) {
    let dir = dir_with(files);
    let error = Calendar::load(Some(dir.path())).expect_err("the overlay should be refused");
    (error, dir)
}

fn named_file(error: &CalendarError, dir: &Path, name: &str) -> bool {
    error.file() == Some(dir.join(name).display().to_string().as_str()) && error.to_string().contains(name)
}

#[test]
fn a_2027_date_fails_naming_2027_until_a_2027_file_is_added() {
    let before = Calendar::load(None).unwrap();
    assert_eq!(before.is_working_day(date(2027, 3, 1)), Err(NotCovered { year: 2027 }));
    assert!(before.is_working_day(date(2027, 3, 1)).unwrap_err().to_string().contains("2027"));
    assert_eq!(before.add_working_days(date(2026, 12, 31), 1), Err(NotCovered { year: 2027 }));

    let dir = dir_with(&[("2027.toml", FIXTURE_2027)]);
    let after = Calendar::load(Some(dir.path())).unwrap();
    assert_eq!(after.covered_years(), (2021..=2027).collect::<Vec<_>>());
    assert_eq!(after.is_working_day(date(2027, 3, 1)), Ok(true));
    assert_eq!(after.day(date(2027, 2, 14)), Ok(Day::MakeUpWorkingDay { name: "春节" }));
    // Thu 2026-12-31: Fri 1 Jan to Sun 3 Jan off, Mon 4 Jan.
    assert_eq!(after.add_working_days(date(2026, 12, 31), 1), Ok(date(2027, 1, 4)));
    assert_eq!(after.is_working_day(date(2028, 1, 3)), Err(NotCovered { year: 2028 }));
    let source = after.sources().find(|s| s.year == 2027).unwrap();
    assert!(!source.embedded && source.file.ends_with("2027.toml"));
    assert_eq!(after.warnings(), &[]);
}

#[test]
fn the_coverage_report_sees_the_overlay_year() {
    let today = date(2026, 12, 1);
    assert!(Calendar::embedded().coverage(today).next_year_missing_warning);
    let dir = dir_with(&[("2027.toml", FIXTURE_2027)]);
    let coverage = Calendar::load(Some(dir.path())).unwrap().coverage(today);
    assert!(!coverage.next_year_missing_warning);
    assert_eq!(coverage.first_uncovered_date, date(2028, 1, 1));
}

#[test]
fn a_file_that_is_not_toml_is_refused_naming_the_file() {
    let (error, dir) = refused(&[("2027.toml", "year = 2027\n[[holiday]\n")]);
    assert!(matches!(&error, CalendarError::BadFile { problem: FileProblem::Parse(_), .. }), "{error}");
    assert!(named_file(&error, dir.path(), "2027.toml"), "{error}");
}

#[test]
fn a_year_field_that_does_not_match_the_file_name_is_refused() {
    let (error, dir) = refused(&[("2028.toml", FIXTURE_2027)]);
    assert!(
        matches!(
            &error,
            CalendarError::BadFile { problem: FileProblem::YearMismatch { expected: 2028, found: 2027 }, .. }
        ),
        "{error}"
    );
    assert!(named_file(&error, dir.path(), "2028.toml"), "{error}");
}

#[test]
fn a_toml_file_not_named_after_its_year_is_refused() {
    let (error, dir) = refused(&[("holidays-2027.toml", FIXTURE_2027)]);
    assert!(matches!(&error, CalendarError::BadFile { problem: FileProblem::BadName, .. }), "{error}");
    assert!(named_file(&error, dir.path(), "holidays-2027.toml"), "{error}");
}

#[test]
fn an_empty_year_is_refused() {
    let empty = "year = 2027\n[[notice]]\ntitle = \"t\"\nurl = \"https://www.gov.cn/x\"\n";
    let (error, dir) = refused(&[("2027.toml", empty)]);
    assert!(matches!(&error, CalendarError::BadFile { problem: FileProblem::NoHolidays, .. }), "{error}");
    assert!(named_file(&error, dir.path(), "2027.toml"), "{error}");
}

#[test]
fn a_date_both_off_and_working_in_one_file_is_refused() {
    let text = FIXTURE_2027.replace("[2027-02-14, 2027-02-20]", "[2027-02-13, 2027-02-20]");
    let (error, dir) = refused(&[("2027.toml", &text)]);
    let CalendarError::Conflict { date: when, first_file, second_file, .. } = &error else {
        panic!("expected a conflict, got {error}");
    };
    assert_eq!(*when, date(2027, 2, 13));
    assert_eq!(first_file, second_file);
    assert!(named_file(&error, dir.path(), "2027.toml"), "{error}");
}

#[test]
fn a_date_two_files_disagree_on_is_refused_naming_both() {
    let end_of_2027 = format!("{FIXTURE_2027}\n[[holiday]]\nname = \"假日\"\nfrom = 2027-12-31\nto = 2027-12-31\n");
    let start_of_2028 = "year = 2028\n[[notice]]\ntitle = \"t\"\nurl = \"https://www.gov.cn/x\"\n\
                         [[holiday]]\nname = \"元旦\"\nfrom = 2028-01-01\nto = 2028-01-03\n\
                         make_up_working_days = [2027-12-31]\n";
    let (error, dir) = refused(&[("2027.toml", &end_of_2027), ("2028.toml", start_of_2028)]);
    let CalendarError::Conflict { date: when, .. } = &error else { panic!("expected a conflict, got {error}") };
    assert_eq!(*when, date(2027, 12, 31));
    let message = error.to_string();
    for name in ["2027.toml", "2028.toml"] {
        assert!(message.contains(&dir.path().join(name).display().to_string()), "{message}");
    }
}

#[test]
fn a_missing_data_directory_is_an_error_not_an_empty_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let error = Calendar::load(Some(&missing)).unwrap_err();
    assert!(matches!(&error, CalendarError::ReadDir { dir, .. } if *dir == missing), "{error}");
}

#[test]
fn an_overlay_year_replaces_the_embedded_one_with_a_warning() {
    // A corrected 2026 that moves nothing but adds a day off, as a supplementary notice might.
    let corrected = include_str!("../../data/2026.toml").replace(
        "[[holiday]]\nname = \"端午节\"",
        "[[holiday]]\nname = \"补充\"\nfrom = 2026-03-02\nto = 2026-03-02\n\n[[holiday]]\nname = \"端午节\"",
    );
    let dir = dir_with(&[("2026.toml", &corrected)]);
    let calendar = Calendar::load(Some(dir.path())).unwrap();
    assert_eq!(calendar.day(date(2026, 3, 2)), Ok(Day::Holiday { name: "补充" }));
    assert!(matches!(calendar.warnings(), [CalendarWarning::OverlayReplacesEmbedded { year: 2026, .. }]));
}

#[test]
fn a_make_up_day_on_a_weekday_loads_with_a_warning() {
    let text = FIXTURE_2027.replace("[2027-02-14, 2027-02-20]", "[2027-02-14, 2027-02-15]");
    let dir = dir_with(&[("2027.toml", &text)]);
    let calendar = Calendar::load(Some(dir.path())).unwrap();
    assert_eq!(calendar.is_working_day(date(2027, 2, 15)), Ok(true));
    assert!(matches!(
        calendar.warnings(),
        [CalendarWarning::MakeUpDayOnWeekday { date: d, .. }] if *d == date(2027, 2, 15)
    ));
}

#[test]
fn other_files_in_the_directory_are_ignored_with_a_warning() {
    let dir = dir_with(&[("2027.toml", FIXTURE_2027), ("README.md", "notes")]);
    fs::create_dir(dir.path().join("..data")).unwrap();
    let calendar = Calendar::load(Some(dir.path())).unwrap();
    assert!(calendar.covers(2027));
    assert!(matches!(calendar.warnings(), [CalendarWarning::IgnoredFile { file }] if file.ends_with("README.md")));
}
