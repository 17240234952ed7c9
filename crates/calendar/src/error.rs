//! What can go wrong: a year the calendar has no data for, a data file that is refused, and the
//! oddities that are loaded but worth a line in the log.

use std::{fmt, io, path::PathBuf};

use chrono::NaiveDate;

/// A date fell in a year the calendar has no State Council notice for.
///
/// Deadlines in this policy are legal deadlines, so the calendar refuses instead of guessing
/// Monday to Friday (D3). The cure is an operator task, which the message spells out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the working-day calendar has no data for {year}: add the State Council's {year} holiday notice as \
     {year}.toml in the calendar data directory"
)]
pub struct NotCovered {
    pub year: i32,
}

/// Why a set of calendar files was refused at load. Every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("cannot read the calendar data directory {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("calendar file {file}: cannot read it: {source}")]
    ReadFile {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("calendar file {file}: {problem}")]
    BadFile { file: String, problem: FileProblem },
    /// The same date listed once as a day off and once as a make-up working day, in one file or
    /// in two (entries may cross a year boundary, so two files can meet).
    #[error("{date} is {first} in {first_file} but {second} in {second_file}")]
    Conflict { date: NaiveDate, first_file: String, first: String, second_file: String, second: String },
}

impl CalendarError {
    /// The file the error is about (the first of the two for a conflict), if any.
    pub fn file(&self) -> Option<&str> {
        match self {
            Self::ReadDir { .. } => None,
            Self::ReadFile { file, .. } | Self::BadFile { file, .. } => Some(file),
            Self::Conflict { first_file, .. } => Some(first_file),
        }
    }
}

/// What is wrong inside one year file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    #[error("the file name must be the year it covers, like 2027.toml")]
    BadName,
    #[error("cannot parse it: {0}")]
    Parse(String),
    #[error("it says `year = {found}` but its name says {expected}")]
    YearMismatch { expected: i32, found: i32 },
    #[error("year {0} is outside the range a holiday notice can cover (1950 to 2199)")]
    YearOutOfRange(i32),
    #[error("it cites no notice: add a [[notice]] with the State Council notice's title and gov.cn URL")]
    NoNotice,
    #[error("notice {index}: the title is empty")]
    EmptyNoticeTitle { index: usize },
    #[error("notice {index}: the url {url:?} is not an http:// or https:// address")]
    BadNoticeUrl { index: usize, url: String },
    /// An empty year would make every date of that year look like an ordinary week, which is the
    /// very guess the calendar exists to avoid (holiday-cn's placeholder 2027.json is empty).
    #[error("it lists no holidays; a State Council notice always has some")]
    NoHolidays,
    #[error("holiday {index} has an empty name")]
    EmptyHolidayName { index: usize },
    #[error("holiday {holiday}: `{field}` must be a plain date like 2027-01-01, not {found}")]
    NotADate { holiday: String, field: &'static str, found: String },
    #[error("holiday {holiday}: `from` {from} is after `to` {to}")]
    Backwards { holiday: String, from: NaiveDate, to: NaiveDate },
    #[error("holiday {holiday}: {from} to {to} is {days} days off; a holiday period is at most {max} days")]
    TooLong { holiday: String, from: NaiveDate, to: NaiveDate, days: i64, max: i64 },
    /// A notice may reach into the neighbouring year (2023's starts on 2022-12-31), but only at
    /// the turn of the year; a date further out is a typo.
    #[error(
        "holiday {holiday}: {date} is outside {year}, late December of {prev} and January of {next}",
        prev = year - 1,
        next = year + 1
    )]
    OutsideYear { holiday: String, date: NaiveDate, year: i32 },
}

/// Something loaded but unusual, for the service to log at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarWarning {
    /// Make-up working days are normally weekend days; 2020's COVID extension made Monday
    /// 2020-02-03 one, so this is allowed but worth a look.
    MakeUpDayOnWeekday { file: String, date: NaiveDate, name: String },
    /// The same date listed twice with the same meaning; harmless.
    ListedTwice { date: NaiveDate, first_file: String, second_file: String },
    /// An overlay file replaced the year shipped with the build (a corrected notice).
    OverlayReplacesEmbedded { year: i32, file: String },
    /// A file in the data directory that is not a `.toml` year file.
    IgnoredFile { file: String },
}

impl fmt::Display for CalendarWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MakeUpDayOnWeekday { file, date, name } => {
                write!(f, "calendar file {file}: make-up working day {date} ({name}) is not a weekend day")
            }
            Self::ListedTwice { date, first_file, second_file } => {
                write!(f, "{date} is listed in both {first_file} and {second_file}, with the same meaning")
            }
            Self::OverlayReplacesEmbedded { year, file } => {
                write!(f, "calendar file {file} replaces the {year} data shipped with the build")
            }
            Self::IgnoredFile { file } => {
                write!(f, "calendar data directory: ignoring {file}, which is not a .toml file")
            }
        }
    }
}
