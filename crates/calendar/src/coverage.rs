//! How far ahead the calendar reaches, for logs, `supctl calendar coverage` and a health detail.
//!
//! A missing year is reported, never turned into a failed readiness check: that would drain
//! every pod on 1 December for a problem that bites only on 1 January.

use std::fmt;

use chrono::{Datelike, NaiveDate};

/// The State Council publishes the next year's notice in Q4 (October to December so far); from
/// this day of December a calendar still without next year says so.
const WARN_FROM_DECEMBER_DAY: u32 = 1;

/// The calendar's coverage as seen on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coverage {
    /// Every year with a notice, ascending (not necessarily contiguous).
    pub covered_years: Vec<i32>,
    /// The first date on or after today the calendar cannot answer for: today itself when this
    /// year is missing.
    pub first_uncovered_date: NaiveDate,
    /// Days from today to `first_uncovered_date`; 0 when today is not covered.
    pub days_until_uncovered: i64,
    /// From 1 December: next year has no data yet.
    pub next_year_missing_warning: bool,
}

impl Coverage {
    pub(crate) fn of(covered_years: Vec<i32>, today: NaiveDate) -> Self {
        let mut year = today.year();
        let first_uncovered_date = if covered_years.contains(&year) {
            while covered_years.contains(&year) {
                year += 1;
            }
            NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or(NaiveDate::MAX)
        } else {
            today
        };
        let warn_from = NaiveDate::from_ymd_opt(today.year(), 12, WARN_FROM_DECEMBER_DAY).unwrap_or(NaiveDate::MAX);
        let next_year_missing_warning = today >= warn_from && !covered_years.contains(&(today.year() + 1));
        Self {
            days_until_uncovered: (first_uncovered_date - today).num_days(),
            first_uncovered_date,
            next_year_missing_warning,
            covered_years,
        }
    }

    /// Whether an operator should act: today is already uncovered, or next year is due.
    pub fn needs_attention(&self) -> bool {
        self.days_until_uncovered == 0 || self.next_year_missing_warning
    }
}

impl fmt::Display for Coverage {
    /// One line for a log or the CLI, e.g. "covers 2021-2026; 2027-01-01 is not covered (in 31
    /// days): add 2027.toml ...".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the working-day calendar covers ")?;
        write_years(f, &self.covered_years)?;
        let missing = self.first_uncovered_date.year();
        if self.days_until_uncovered == 0 {
            write!(f, "; today ({}) is NOT covered", self.first_uncovered_date)?;
        } else {
            write!(
                f,
                "; {} is the first date not covered (in {} days)",
                self.first_uncovered_date, self.days_until_uncovered
            )?;
        }
        if self.needs_attention() {
            write!(
                f,
                ": add the State Council's {missing} holiday notice as {missing}.toml in the calendar data directory"
            )?;
        }
        Ok(())
    }
}

/// `2021-2026`, or `2021-2023, 2025` when there is a gap.
fn write_years(f: &mut fmt::Formatter<'_>, years: &[i32]) -> fmt::Result {
    if years.is_empty() {
        return write!(f, "no year");
    }
    let mut runs: Vec<(i32, i32)> = Vec::new();
    for &year in years {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == year => *end = year,
            _ => runs.push((year, year)),
        }
    }
    for (i, (start, end)) in runs.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        if start == end { write!(f, "{start}")? } else { write!(f, "{start}-{end}")? }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn years() -> Vec<i32> {
        (2021..=2026).collect()
    }

    #[test]
    fn november_is_quiet_about_next_year() {
        let coverage = Coverage::of(years(), date(2026, 11, 30));
        assert!(!coverage.next_year_missing_warning);
        assert_eq!(coverage.first_uncovered_date, date(2027, 1, 1));
        assert_eq!(coverage.days_until_uncovered, 32);
        assert!(!coverage.needs_attention());
    }

    #[test]
    fn from_the_first_of_december_a_missing_next_year_is_a_warning() {
        let coverage = Coverage::of(years(), date(2026, 12, 1));
        assert!(coverage.next_year_missing_warning);
        assert_eq!(coverage.days_until_uncovered, 31);
        assert!(coverage.to_string().contains("2027.toml"), "{coverage}");
    }

    #[test]
    fn a_present_next_year_silences_the_warning() {
        let coverage = Coverage::of((2021..=2027).collect(), date(2026, 12, 15));
        assert!(!coverage.next_year_missing_warning);
        assert_eq!(coverage.first_uncovered_date, date(2028, 1, 1));
    }

    #[test]
    fn an_uncovered_today_is_zero_days_away() {
        let coverage = Coverage::of(years(), date(2027, 2, 1));
        assert_eq!(coverage.first_uncovered_date, date(2027, 2, 1));
        assert_eq!(coverage.days_until_uncovered, 0);
        assert!(coverage.needs_attention());
        assert!(coverage.to_string().contains("NOT covered"), "{coverage}");
    }

    #[test]
    fn gaps_in_the_years_are_shown() {
        let coverage = Coverage::of(vec![2021, 2022, 2023, 2025], date(2021, 6, 1));
        assert!(coverage.to_string().starts_with("the working-day calendar covers 2021-2023, 2025;"), "{coverage}");
        assert_eq!(coverage.first_uncovered_date, date(2024, 1, 1));
    }
}
