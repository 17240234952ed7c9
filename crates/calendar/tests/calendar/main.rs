//! The calendar against the outside world: the holiday-cn oracle, the decline deadlines around
//! every 2025 and 2026 holiday, and operators' overlay files.

mod deadlines;
mod oracle;
mod overlay;

use chrono::NaiveDate;

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}
