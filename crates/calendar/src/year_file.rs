//! One year file: the project's own transcription of one State Council holiday notice.
//!
//! The format follows the notice's own shape, so an operator can copy a new notice line by line:
//!
//! ```toml
//! year = 2026
//!
//! [[notice]]
//! title = "国务院办公厅关于2026年部分节假日安排的通知"
//! url = "https://www.gov.cn/zhengce/zhengceku/202511/content_7047091.htm"
//!
//! [[holiday]]
//! name = "元旦"
//! from = 2026-01-01                      # first day off
//! to = 2026-01-03                        # last day off, inclusive
//! make_up_working_days = [2026-01-04]    # 调休上班; omit when there are none
//! ```
//!
//! Dates are TOML dates, unquoted. A date the file does not list follows the ordinary week. The
//! file is named after its `year`; its dates may reach into late December of the year before or
//! January of the year after, as 2023's New Year holiday starts on 2022-12-31.

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use toml::value::Datetime;

use crate::error::{CalendarWarning, FileProblem};

/// A holiday period longer than this is taken for a typo (the longest so far is 2020's extended
/// Spring Festival, ten days).
const MAX_PERIOD_DAYS: i64 = 31;

/// A State Council notice a year file transcribes: the legal citation for its dates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notice {
    pub title: String,
    pub url: String,
}

/// What a listed date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listing {
    /// 放假: off, whatever the weekday.
    Off,
    /// 调休上班: a working day, whatever the weekday.
    MakeUpWorkingDay,
}

impl Listing {
    pub(crate) fn describe(self, name: &str) -> String {
        match self {
            Self::Off => format!("a day off ({name})"),
            Self::MakeUpWorkingDay => format!("a make-up working day ({name})"),
        }
    }
}

/// One date a year file lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedDate {
    pub date: NaiveDate,
    pub listing: Listing,
    pub name: String,
}

/// A year file, parsed and checked on its own (conflicts between files are checked at merge).
#[derive(Debug, Clone)]
pub(crate) struct YearData {
    pub year: i32,
    pub notices: Vec<Notice>,
    pub dates: Vec<ListedDate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: i32,
    #[serde(rename = "notice", default)]
    notices: Vec<Notice>,
    #[serde(rename = "holiday", default)]
    holidays: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    name: String,
    from: Datetime,
    to: Datetime,
    #[serde(default)]
    make_up_working_days: Vec<Datetime>,
}

/// The year a file name like `2027.toml` stands for.
pub(crate) fn year_of_file_name(file_name: &str) -> Option<i32> {
    let stem = file_name.strip_suffix(".toml")?;
    if stem.len() == 4 && stem.bytes().all(|b| b.is_ascii_digit()) { stem.parse().ok() } else { None }
}

/// Parses and checks one year file. `label` names the file in warnings.
pub(crate) fn parse_year_file(
    label: &str,
    file_name: &str,
    text: &str,
    warnings: &mut Vec<CalendarWarning>,
) -> Result<YearData, FileProblem> {
    let expected = year_of_file_name(file_name).ok_or(FileProblem::BadName)?;
    let raw: RawYear = toml::from_str(text).map_err(|e| FileProblem::Parse(e.to_string().trim_end().to_owned()))?;
    if raw.year != expected {
        return Err(FileProblem::YearMismatch { expected, found: raw.year });
    }
    let year = raw.year;
    if !(1950..2200).contains(&year) {
        return Err(FileProblem::YearOutOfRange(year));
    }
    check_notices(&raw.notices)?;
    if raw.holidays.is_empty() {
        return Err(FileProblem::NoHolidays);
    }

    let mut dates = Vec::new();
    for (index, holiday) in raw.holidays.into_iter().enumerate() {
        let name = holiday.name.trim().to_owned();
        if name.is_empty() {
            return Err(FileProblem::EmptyHolidayName { index: index + 1 });
        }
        let from = plain_date(&holiday.from, &name, "from")?;
        let to = plain_date(&holiday.to, &name, "to")?;
        if from > to {
            return Err(FileProblem::Backwards { holiday: name, from, to });
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_PERIOD_DAYS {
            return Err(FileProblem::TooLong { holiday: name, from, to, days, max: MAX_PERIOD_DAYS });
        }
        for date in from.iter_days().take_while(|d| *d <= to) {
            check_near_year(date, year, &name)?;
            dates.push(ListedDate { date, listing: Listing::Off, name: name.clone() });
        }
        for value in &holiday.make_up_working_days {
            let date = plain_date(value, &name, "make_up_working_days")?;
            check_near_year(date, year, &name)?;
            if !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) {
                warnings.push(CalendarWarning::MakeUpDayOnWeekday { file: label.to_owned(), date, name: name.clone() });
            }
            dates.push(ListedDate { date, listing: Listing::MakeUpWorkingDay, name: name.clone() });
        }
    }
    Ok(YearData { year, notices: raw.notices, dates })
}

fn check_notices(notices: &[Notice]) -> Result<(), FileProblem> {
    if notices.is_empty() {
        return Err(FileProblem::NoNotice);
    }
    for (i, notice) in notices.iter().enumerate() {
        if notice.title.trim().is_empty() {
            return Err(FileProblem::EmptyNoticeTitle { index: i + 1 });
        }
        let url = notice.url.trim();
        let has_host = ["https://", "http://"]
            .iter()
            .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty() && !rest.contains(' ')));
        if !has_host {
            return Err(FileProblem::BadNoticeUrl { index: i + 1, url: notice.url.clone() });
        }
    }
    Ok(())
}

/// A TOML value that must be a bare date: no time of day, no offset.
fn plain_date(value: &Datetime, holiday: &str, field: &'static str) -> Result<NaiveDate, FileProblem> {
    let not_a_date = || FileProblem::NotADate { holiday: holiday.to_owned(), field, found: value.to_string() };
    match (value.date, value.time, value.offset) {
        (Some(d), None, None) => {
            NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day)).ok_or_else(not_a_date)
        }
        _ => Err(not_a_date()),
    }
}

fn check_near_year(date: NaiveDate, year: i32, holiday: &str) -> Result<(), FileProblem> {
    let near = date.year() == year
        || (date.year() == year - 1 && date.month() == 12)
        || (date.year() == year + 1 && date.month() == 1);
    if near { Ok(()) } else { Err(FileProblem::OutsideYear { holiday: holiday.to_owned(), date, year }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTICE: &str = r#"
[[notice]]
title = "国务院办公厅关于2027年部分节假日安排的通知"
url = "https://www.gov.cn/example"
"#;

    fn parse(file_name: &str, body: &str) -> Result<(YearData, Vec<CalendarWarning>), FileProblem> {
        let mut warnings = Vec::new();
        parse_year_file(file_name, file_name, body, &mut warnings).map(|data| (data, warnings))
    }

    fn year_2027(holidays: &str) -> String {
        format!("year = 2027\n{NOTICE}\n{holidays}")
    }

    #[test]
    fn a_period_lists_every_day_from_first_to_last() {
        let body = year_2027("[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-03\n");
        let (data, warnings) = parse("2027.toml", &body).unwrap();
        assert_eq!(data.year, 2027);
        assert_eq!(data.dates.len(), 3);
        assert!(data.dates.iter().all(|d| d.listing == Listing::Off && d.name == "元旦"));
        assert!(warnings.is_empty());
    }

    #[test]
    fn only_year_names_are_year_files() {
        assert_eq!(year_of_file_name("2027.toml"), Some(2027));
        assert_eq!(year_of_file_name("holidays-2027.toml"), None);
        assert_eq!(year_of_file_name("2027.json"), None);
        assert_eq!(year_of_file_name("27.toml"), None);
    }

    #[test]
    fn a_year_field_that_disagrees_with_the_file_name_is_refused() {
        let body = year_2027("[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-01\n");
        assert_eq!(parse("2028.toml", &body).unwrap_err(), FileProblem::YearMismatch { expected: 2028, found: 2027 });
    }

    #[test]
    fn a_year_without_holidays_is_refused_not_read_as_an_ordinary_year() {
        assert_eq!(parse("2027.toml", &year_2027("")).unwrap_err(), FileProblem::NoHolidays);
    }

    #[test]
    fn a_year_without_a_notice_is_refused() {
        let body = "year = 2027\n[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-01\n";
        assert_eq!(parse("2027.toml", body).unwrap_err(), FileProblem::NoNotice);
    }

    #[test]
    fn a_notice_url_must_be_a_web_address() {
        let body = "year = 2027\n[[notice]]\ntitle = \"t\"\nurl = \"gov.cn\"\n\
                    [[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-01\n";
        assert!(matches!(parse("2027.toml", body).unwrap_err(), FileProblem::BadNoticeUrl { index: 1, .. }));
    }

    #[test]
    fn a_misspelt_field_is_refused() {
        let body =
            year_2027("[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01\nto = 2027-01-01\nmake_up_workdays = []\n");
        let problem = parse("2027.toml", &body).unwrap_err();
        assert!(matches!(&problem, FileProblem::Parse(m) if m.contains("make_up_workdays")), "{problem}");
    }

    #[test]
    fn a_date_with_a_time_of_day_is_refused() {
        let body = year_2027("[[holiday]]\nname = \"元旦\"\nfrom = 2027-01-01T08:00:00\nto = 2027-01-01\n");
        assert!(matches!(parse("2027.toml", &body).unwrap_err(), FileProblem::NotADate { field: "from", .. }));
    }

    #[test]
    fn a_quoted_date_is_refused_with_the_reason() {
        let body = year_2027("[[holiday]]\nname = \"元旦\"\nfrom = \"2027-01-01\"\nto = 2027-01-01\n");
        assert!(matches!(parse("2027.toml", &body).unwrap_err(), FileProblem::Parse(_)));
    }

    #[test]
    fn a_period_that_ends_before_it_starts_is_refused() {
        let body = year_2027("[[holiday]]\nname = \"春节\"\nfrom = 2027-02-10\nto = 2027-02-04\n");
        assert!(matches!(parse("2027.toml", &body).unwrap_err(), FileProblem::Backwards { .. }));
    }

    #[test]
    fn a_period_of_months_is_taken_for_a_typo() {
        let body = year_2027("[[holiday]]\nname = \"春节\"\nfrom = 2027-02-04\nto = 2027-12-10\n");
        assert!(matches!(parse("2027.toml", &body).unwrap_err(), FileProblem::TooLong { .. }));
    }

    #[test]
    fn dates_may_reach_into_the_turn_of_the_year_but_no_further() {
        let body = year_2027("[[holiday]]\nname = \"元旦\"\nfrom = 2026-12-31\nto = 2027-01-02\n");
        assert!(parse("2027.toml", &body).is_ok());
        let body = year_2027("[[holiday]]\nname = \"国庆节\"\nfrom = 2026-10-01\nto = 2026-10-07\n");
        assert!(matches!(parse("2027.toml", &body).unwrap_err(), FileProblem::OutsideYear { year: 2027, .. }));
    }

    #[test]
    fn a_make_up_day_on_a_weekday_is_a_warning_not_an_error() {
        // 2020's notice extending the Spring Festival made Monday 2020-02-03 a working day.
        let body = "year = 2020\n[[notice]]\ntitle = \"t\"\nurl = \"https://www.gov.cn/x\"\n\
                    [[holiday]]\nname = \"春节\"\nfrom = 2020-01-24\nto = 2020-02-02\n\
                    make_up_working_days = [2020-02-03]\n";
        let (data, warnings) = parse("2020.toml", body).unwrap();
        assert_eq!(data.dates.len(), 11);
        assert!(matches!(&warnings[..], [CalendarWarning::MakeUpDayOnWeekday { .. }]));
    }
}
