//! holiday-cn (NateScarlet/holiday-cn, MIT) as an independent oracle. The project holds no copy:
//! the files are read where `HOLIDAY_CN_ORACLE` points, `/work/shared/data/holiday-cn` by default.

use std::{collections::BTreeMap, path::PathBuf};

use chrono::{Datelike, NaiveDate, Weekday};
use serde::Deserialize;
use supervision_calendar::Calendar;

use crate::date;

const DEFAULT_DIR: &str = "/work/shared/data/holiday-cn";
pub const FIRST_YEAR: i32 = 2021;
pub const LAST_YEAR: i32 = 2026;

#[derive(Deserialize)]
struct YearJson {
    year: i32,
    days: Vec<DayJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DayJson {
    date: String,
    is_off_day: bool,
}

/// The oracle's answers: the dates its files list, merged across files as they cross years.
pub struct Oracle {
    listed: BTreeMap<NaiveDate, bool>,
}

impl Oracle {
    /// Loads the oracle, or fails the test: a missing oracle must never pass silently.
    pub fn load() -> Self {
        let dir = std::env::var_os("HOLIDAY_CN_ORACLE").map(PathBuf::from).unwrap_or_else(|| DEFAULT_DIR.into());
        assert!(
            dir.is_dir(),
            "the holiday-cn oracle is missing at {}: clone https://github.com/NateScarlet/holiday-cn \
             (MIT; one YYYY.json per year) and set HOLIDAY_CN_ORACLE to its directory",
            dir.display()
        );
        let mut listed = BTreeMap::new();
        // One year either side, for turn-of-year entries (2023's file lists 2022-12-31).
        for year in FIRST_YEAR - 1..=LAST_YEAR + 1 {
            let path = dir.join(format!("{year}.json"));
            let required = (FIRST_YEAR..=LAST_YEAR).contains(&year);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if required => panic!("cannot read oracle file {}: {e}", path.display()),
                Err(_) => continue,
            };
            let file: YearJson = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("oracle file {} is not holiday-cn JSON: {e}", path.display()));
            assert_eq!(file.year, year, "oracle file {}", path.display());
            assert!(!required || !file.days.is_empty(), "oracle file {} lists no days", path.display());
            for day in file.days {
                let listed_date = NaiveDate::parse_from_str(&day.date, "%Y-%m-%d")
                    .unwrap_or_else(|e| panic!("oracle file {}: bad date {:?}: {e}", path.display(), day.date));
                listed.insert(listed_date, day.is_off_day);
            }
        }
        Self { listed }
    }

    /// holiday-cn's rule: a listed date is what it says, any other follows Monday to Friday.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        match self.listed.get(&date) {
            Some(off) => !off,
            None => !matches!(date.weekday(), Weekday::Sat | Weekday::Sun),
        }
    }

    /// The `n`-th working day before `date`, not counting it, walked day by day on the oracle.
    pub fn working_days_before(&self, date: NaiveDate, n: u32) -> NaiveDate {
        let mut current = date;
        let mut remaining = n;
        while remaining > 0 {
            current = current.pred_opt().unwrap();
            if self.is_working_day(current) {
                remaining -= 1;
            }
        }
        current
    }
}

#[test]
fn every_date_from_2021_to_2026_agrees_with_holiday_cn() {
    let oracle = Oracle::load();
    let calendar = Calendar::embedded();
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for day in date(FIRST_YEAR, 1, 1).iter_days().take_while(|d| *d <= date(LAST_YEAR, 12, 31)) {
        let ours = calendar.is_working_day(day).unwrap();
        if ours != oracle.is_working_day(day) {
            disagreements.push(format!("{day}: ours {ours}, holiday-cn {}", oracle.is_working_day(day)));
        }
        checked += 1;
    }
    assert_eq!(checked, 2191);
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
}
