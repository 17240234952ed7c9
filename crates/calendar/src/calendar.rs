//! The merged calendar and the working-day arithmetic on it.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, Weekday};

use crate::{
    coverage::Coverage,
    error::{CalendarError, CalendarWarning, NotCovered},
    year_file::{Listing, Notice, YearData, parse_year_file},
};

/// The year files shipped with the build. Add a year here once its notice is transcribed; until
/// then operators drop it into the data directory.
const EMBEDDED: [(&str, &str); 6] = [
    ("2021.toml", include_str!("../data/2021.toml")),
    ("2022.toml", include_str!("../data/2022.toml")),
    ("2023.toml", include_str!("../data/2023.toml")),
    ("2024.toml", include_str!("../data/2024.toml")),
    ("2025.toml", include_str!("../data/2025.toml")),
    ("2026.toml", include_str!("../data/2026.toml")),
];

/// Asia/Shanghai. China has kept UTC+8 all year since 1991, so a fixed offset is exact for every
/// date this system handles and needs no time-zone database.
pub const SHANGHAI: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+8 is a valid offset"),
};

/// Where a year's data came from, for logs and `supctl calendar coverage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YearSource {
    pub year: i32,
    /// `embedded 2026.toml`, or the overlay file's path.
    pub file: String,
    pub embedded: bool,
    pub notices: Vec<Notice>,
}

/// What kind of day a date is, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day<'a> {
    /// Monday to Friday, not mentioned by the notice.
    Weekday,
    /// Saturday or Sunday, not mentioned by the notice.
    Weekend,
    /// 放假: a day off under the notice.
    Holiday { name: &'a str },
    /// 调休上班: a weekend day the notice makes a working day.
    MakeUpWorkingDay { name: &'a str },
}

impl Day<'_> {
    pub fn is_working_day(self) -> bool {
        matches!(self, Self::Weekday | Self::MakeUpWorkingDay { .. })
    }
}

#[derive(Debug, Clone)]
struct Entry {
    listing: Listing,
    name: String,
    /// The year of the file that lists the date, which for a turn-of-year entry is not the
    /// date's own year.
    file_year: i32,
}

/// 工作日 — the China working-day calendar: the ordinary week, changed by each year's State
/// Council holiday notice.
///
/// It answers only for the years it has a notice for. Every query about a date in another year
/// is `Err(NotCovered { year })`: a legal deadline is never computed from a Monday-to-Friday guess.
#[derive(Debug, Clone)]
pub struct Calendar {
    days: BTreeMap<NaiveDate, Entry>,
    years: BTreeMap<i32, YearSource>,
    warnings: Vec<CalendarWarning>,
}

impl Calendar {
    /// The calendar shipped with the build, without any overlay.
    pub fn embedded() -> Self {
        // The embedded files are checked by this crate's tests, so a failure here is a build defect.
        Self::load(None).expect("the embedded calendar data is valid")
    }

    /// The embedded years plus every `YYYY.toml` in `overlay_dir` (a ConfigMap in production),
    /// so a new year's notice needs no rebuild. An overlay file for a year that is also embedded
    /// replaces it, with a warning. A bad file refuses the whole load: a service should not start
    /// on a calendar an operator believes has data it doesn't.
    pub fn load(overlay_dir: Option<&Path>) -> Result<Self, CalendarError> {
        let mut warnings = Vec::new();
        let mut files: BTreeMap<i32, (String, bool, YearData)> = BTreeMap::new();
        for (name, text) in EMBEDDED {
            let label = format!("embedded {name}");
            let data = parse_year_file(&label, name, text, &mut warnings)
                .map_err(|problem| CalendarError::BadFile { file: label.clone(), problem })?;
            files.insert(data.year, (label, true, data));
        }
        if let Some(dir) = overlay_dir {
            for path in overlay_files(dir, &mut warnings)? {
                let label = path.display().to_string();
                let text = fs::read_to_string(&path)
                    .map_err(|source| CalendarError::ReadFile { file: label.clone(), source })?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let data = parse_year_file(&label, &name, &text, &mut warnings)
                    .map_err(|problem| CalendarError::BadFile { file: label.clone(), problem })?;
                let year = data.year;
                if let Some((_, true, _)) = files.insert(year, (label.clone(), false, data)) {
                    warnings.push(CalendarWarning::OverlayReplacesEmbedded { year, file: label });
                }
            }
        }
        Self::merge(files, warnings)
    }

    /// Puts every file's dates in one map, since a file may list dates of the neighbouring year.
    fn merge(
        files: BTreeMap<i32, (String, bool, YearData)>,
        mut warnings: Vec<CalendarWarning>,
    ) -> Result<Self, CalendarError> {
        let mut days: BTreeMap<NaiveDate, Entry> = BTreeMap::new();
        let mut years = BTreeMap::new();
        for (year, (file, embedded, data)) in files {
            for listed in data.dates {
                let entry = Entry { listing: listed.listing, name: listed.name, file_year: year };
                match days.get(&listed.date) {
                    None => {
                        days.insert(listed.date, entry);
                    }
                    Some(earlier) => {
                        let first_file = if earlier.file_year == year {
                            file.clone()
                        } else {
                            years.get(&earlier.file_year).map(|s: &YearSource| s.file.clone()).unwrap_or_default()
                        };
                        if earlier.listing != entry.listing {
                            return Err(CalendarError::Conflict {
                                date: listed.date,
                                first_file,
                                first: earlier.listing.describe(&earlier.name),
                                second_file: file,
                                second: entry.listing.describe(&entry.name),
                            });
                        }
                        warnings.push(CalendarWarning::ListedTwice {
                            date: listed.date,
                            first_file,
                            second_file: file.clone(),
                        });
                    }
                }
            }
            years.insert(year, YearSource { year, file, embedded, notices: data.notices });
        }
        Ok(Self { days, years, warnings })
    }

    /// The years this calendar answers for, ascending.
    pub fn covered_years(&self) -> Vec<i32> {
        self.years.keys().copied().collect()
    }

    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// Where each covered year's data came from, ascending by year.
    pub fn sources(&self) -> impl Iterator<Item = &YearSource> {
        self.years.values()
    }

    /// What the load found unusual but accepted; log these at start.
    pub fn warnings(&self) -> &[CalendarWarning] {
        &self.warnings
    }

    /// The coverage report as of `today` (see [`Coverage`]).
    pub fn coverage(&self, today: NaiveDate) -> Coverage {
        Coverage::of(self.covered_years(), today)
    }

    fn ensure_covered(&self, date: NaiveDate) -> Result<(), NotCovered> {
        if self.covers(date.year()) { Ok(()) } else { Err(NotCovered { year: date.year() }) }
    }

    /// What kind of day `date` is.
    pub fn day(&self, date: NaiveDate) -> Result<Day<'_>, NotCovered> {
        self.ensure_covered(date)?;
        Ok(match self.days.get(&date) {
            Some(Entry { listing: Listing::Off, name, .. }) => Day::Holiday { name },
            Some(Entry { listing: Listing::MakeUpWorkingDay, name, .. }) => Day::MakeUpWorkingDay { name },
            None if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) => Day::Weekend,
            None => Day::Weekday,
        })
    }

    pub fn is_working_day(&self, date: NaiveDate) -> Result<bool, NotCovered> {
        self.day(date).map(Day::is_working_day)
    }

    /// The `n`-th working day after `date` (`n` > 0) or before it (`n` < 0), not counting `date`
    /// itself; `date` when `n` is 0. `date` need not be a working day.
    ///
    /// Every date looked at, `date` included, must be covered.
    pub fn add_working_days(&self, date: NaiveDate, n: i32) -> Result<NaiveDate, NotCovered> {
        let forward = n >= 0;
        self.step_working_days(date, n.unsigned_abs(), forward)
    }

    fn step_working_days(&self, date: NaiveDate, count: u32, forward: bool) -> Result<NaiveDate, NotCovered> {
        self.ensure_covered(date)?;
        let mut current = date;
        let mut remaining = count;
        while remaining > 0 {
            current =
                if forward { current.checked_add_days(Days::new(1)) } else { current.checked_sub_days(Days::new(1)) }
                    // Only reachable at chrono's date limits, far outside any covered year.
                    .ok_or(NotCovered { year: current.year() })?;
            if self.is_working_day(current)? {
                remaining -= 1;
            }
        }
        Ok(current)
    }

    /// The number of working days in `[a, b)`: `a` counts, `b` does not. Negative when `b` is
    /// before `a` (the count in `[b, a)`, negated), so that `working_days_between(w, d) == 3`
    /// says exactly what D3 asks of a decline deadline `w` for a session on `d`.
    ///
    /// Both ends must be covered, as must every date between them.
    pub fn working_days_between(&self, a: NaiveDate, b: NaiveDate) -> Result<i64, NotCovered> {
        self.ensure_covered(a)?;
        self.ensure_covered(b)?;
        let (start, end, sign) = if a <= b { (a, b, 1) } else { (b, a, -1) };
        let mut count = 0;
        for date in start.iter_days().take_while(|d| *d < end) {
            if self.is_working_day(date)? {
                count += 1;
            }
        }
        Ok(sign * count)
    }

    /// The decline deadline of D3 and article 9(七): `cutoff` (17:30 in edition 1), Asia/Shanghai,
    /// on the `notice_working_days`-th (3 in edition 1) working day before the expert's first
    /// session date, counting back from that date and not counting it.
    ///
    /// The deadline may fall on a make-up weekend day: that day is a working day like any other.
    pub fn decline_deadline(
        &self,
        first_session_date: NaiveDate,
        notice_working_days: u32,
        cutoff: NaiveTime,
    ) -> Result<DateTime<FixedOffset>, NotCovered> {
        let day = self.step_working_days(first_session_date, notice_working_days, false)?;
        Ok(at_shanghai(day, cutoff))
    }
}

/// `date` at `time` of day, Asia/Shanghai.
pub fn at_shanghai(date: NaiveDate, time: NaiveTime) -> DateTime<FixedOffset> {
    date.and_time(time)
        .and_local_timezone(SHANGHAI)
        .single()
        .expect("a fixed offset maps every local time exactly once")
}

/// The `.toml` files of the overlay directory, in name order so loads are repeatable.
///
/// Hidden entries are skipped: a Kubernetes ConfigMap volume holds `..data` and timestamped
/// directories beside the keys' symlinks.
fn overlay_files(dir: &Path, warnings: &mut Vec<CalendarWarning>) -> Result<Vec<PathBuf>, CalendarError> {
    let read_dir_error = |source| CalendarError::ReadDir { dir: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        // `metadata` follows symlinks, which is how a ConfigMap presents its files.
        let is_file = fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false);
        if is_file && name.ends_with(".toml") {
            files.push(path);
        } else {
            warnings.push(CalendarWarning::IgnoredFile { file: path.display().to_string() });
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_embedded_data_loads_without_warnings() {
        let calendar = Calendar::embedded();
        assert_eq!(calendar.covered_years(), vec![2021, 2022, 2023, 2024, 2025, 2026]);
        assert_eq!(calendar.warnings(), &[]);
        assert!(calendar.sources().all(|s| s.embedded && !s.notices.is_empty()));
    }

    #[test]
    fn a_turn_of_year_entry_counts_although_its_file_is_the_next_year() {
        // 2023's notice starts the New Year holiday on Saturday 2022-12-31.
        let calendar = Calendar::embedded();
        assert_eq!(calendar.day(date(2022, 12, 31)), Ok(Day::Holiday { name: "元旦" }));
    }

    #[test]
    fn days_say_why_they_are_working_or_not() {
        let calendar = Calendar::embedded();
        assert_eq!(calendar.day(date(2026, 10, 10)), Ok(Day::MakeUpWorkingDay { name: "国庆节" }));
        assert_eq!(calendar.day(date(2026, 10, 1)), Ok(Day::Holiday { name: "国庆节" }));
        assert_eq!(calendar.day(date(2026, 10, 17)), Ok(Day::Weekend));
        assert_eq!(calendar.day(date(2026, 10, 14)), Ok(Day::Weekday));
    }

    #[test]
    fn adding_zero_working_days_is_the_same_date() {
        let calendar = Calendar::embedded();
        assert_eq!(calendar.add_working_days(date(2026, 10, 3), 0), Ok(date(2026, 10, 3)));
    }

    #[test]
    fn adding_working_days_skips_holidays_and_counts_make_up_days() {
        let calendar = Calendar::embedded();
        // Thursday 2026-09-17: Fri 18 (1), Sun 20 make-up (2), Mon 21 (3).
        assert_eq!(calendar.add_working_days(date(2026, 9, 17), 3), Ok(date(2026, 9, 21)));
        // Wednesday 2026-09-30: 10-01..10-07 off, Thu 8 (1), Fri 9 (2), Sat 10 make-up (3).
        assert_eq!(calendar.add_working_days(date(2026, 9, 30), 3), Ok(date(2026, 10, 10)));
        assert_eq!(calendar.add_working_days(date(2026, 10, 10), -3), Ok(date(2026, 9, 30)));
    }

    #[test]
    fn working_days_between_counts_the_start_and_not_the_end() {
        let calendar = Calendar::embedded();
        let (w, d) = (date(2026, 10, 8), date(2026, 10, 12));
        assert_eq!(calendar.working_days_between(w, d), Ok(3));
        assert_eq!(calendar.working_days_between(d, w), Ok(-3));
        assert_eq!(calendar.working_days_between(d, d), Ok(0));
        // The whole 2026 National Day week plus both weekends: 30 Sep and 8, 9, 10 Oct.
        assert_eq!(calendar.working_days_between(date(2026, 9, 30), date(2026, 10, 11)), Ok(4));
    }

    #[test]
    fn a_walk_that_leaves_the_covered_years_fails_naming_the_year() {
        let calendar = Calendar::embedded();
        assert_eq!(calendar.add_working_days(date(2026, 12, 30), 5), Err(NotCovered { year: 2027 }));
        assert_eq!(calendar.add_working_days(date(2021, 1, 5), -5), Err(NotCovered { year: 2020 }));
        assert_eq!(calendar.working_days_between(date(2026, 12, 1), date(2027, 1, 4)), Err(NotCovered { year: 2027 }));
    }

    #[test]
    fn a_deadline_is_at_the_cutoff_in_shanghai_time() {
        let calendar = Calendar::embedded();
        let cutoff = NaiveTime::from_hms_opt(17, 30, 0).unwrap();
        let deadline = calendar.decline_deadline(date(2025, 3, 10), 3, cutoff).unwrap();
        assert_eq!(deadline.to_rfc3339(), "2025-03-05T17:30:00+08:00");
    }
}
