//! The loaded editions, and the one place that answers which edition applies on a date.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use chrono::NaiveDate;

use crate::{
    edition::Edition,
    error::{EditionError, EditionRef, EditionWarning, NoEditionInForce},
    validate::validate,
};

/// The editions shipped with the build: the policy as issued.
const EMBEDDED: [(&str, &str); 1] = [("editions/edition-1.toml", include_str!("../editions/edition-1.toml"))];

/// Every known edition of the policy, ascending by date, none overlapping.
#[derive(Debug, Clone)]
pub struct Editions {
    editions: Vec<Edition>,
    warnings: Vec<EditionWarning>,
}

impl Editions {
    /// The editions shipped with the build, without any overlay.
    pub fn embedded() -> Self {
        // The embedded edition is checked by this crate's tests, so a failure here is a build defect.
        Self::load(None).expect("the embedded policy editions are valid")
    }

    /// The embedded editions plus every `*.toml` in `overlay_dir` (a ConfigMap in production),
    /// one edition per file, so a successor edition needs no rebuild. An overlay edition with
    /// the number of an embedded one replaces it, with a warning (an edition cut short by repeal).
    /// A bad file refuses the whole load.
    pub fn load(overlay_dir: Option<&Path>) -> Result<Self, EditionError> {
        let mut warnings = Vec::new();
        let mut by_number: BTreeMap<u32, (bool, Edition)> = BTreeMap::new();
        for (name, text) in EMBEDDED {
            let edition = parse_edition(&format!("embedded {name}"), text)?;
            by_number.insert(edition.number, (true, edition));
        }
        if let Some(dir) = overlay_dir {
            for path in overlay_files(dir, &mut warnings)? {
                let file = path.display().to_string();
                let text = fs::read_to_string(&path)
                    .map_err(|source| EditionError::ReadFile { file: file.clone(), source })?;
                let edition = parse_edition(&file, &text)?;
                match by_number.get(&edition.number) {
                    Some((false, other)) => {
                        return Err(EditionError::DuplicateNumber {
                            number: edition.number,
                            first_file: other.source.clone(),
                            second_file: file,
                        });
                    }
                    Some((true, _)) => {
                        warnings.push(EditionWarning::OverlayReplacesEmbedded { number: edition.number, file })
                    }
                    None => {}
                }
                by_number.insert(edition.number, (false, edition));
            }
        }

        let mut editions: Vec<Edition> = by_number.into_values().map(|(_, e)| e).collect();
        editions.sort_by_key(|e| e.effective_from);
        for pair in editions.windows(2) {
            let (earlier, later) = (&pair[0], &pair[1]);
            if later.effective_from <= earlier.effective_to {
                return Err(EditionError::Overlap { first: Box::new(earlier.into()), second: Box::new(later.into()) });
            }
            if later.number < earlier.number {
                return Err(EditionError::OutOfOrder {
                    earlier: Box::new(later.into()),
                    later: Box::new(earlier.into()),
                });
            }
        }
        Ok(Self { editions, warnings })
    }

    /// Every edition, ascending by date.
    pub fn all(&self) -> &[Edition] {
        &self.editions
    }

    /// What the load found unusual but accepted; log these at start.
    pub fn warnings(&self) -> &[EditionWarning] {
        &self.warnings
    }

    /// The edition whose rules apply on `date`: the task date for the decline rule, the work date
    /// for fees, and so on (DOMAIN.md section 15). When none is, nothing new may be set on that
    /// date (D6); the error names the end of the last edition before it.
    pub fn edition_in_force(&self, date: NaiveDate) -> Result<&Edition, NoEditionInForce> {
        self.editions.iter().find(|e| e.is_in_force_on(date)).ok_or_else(|| NoEditionInForce {
            date,
            previous: self.editions.iter().rev().find(|e| e.effective_to < date).map(|e| Box::new(EditionRef::from(e))),
            next: self.editions.iter().find(|e| e.effective_from > date).map(|e| Box::new(EditionRef::from(e))),
        })
    }

    /// The last day some edition is in force without a break, starting from `today`: the end
    /// of the edition in force, or of its successors when they follow on the next day.
    pub fn in_force_until(&self, today: NaiveDate) -> Result<NaiveDate, NoEditionInForce> {
        let current = self.edition_in_force(today)?;
        let mut end = current.effective_to;
        for e in self.editions.iter().filter(|e| e.effective_from > current.effective_to) {
            if end.succ_opt() == Some(e.effective_from) {
                end = e.effective_to;
            } else {
                break;
            }
        }
        Ok(end)
    }

    /// Days from `today` to [`in_force_until`](Self::in_force_until): 0 on the last day in
    /// force. This drives the reminders to CITY_ADMIN before the policy lapses.
    pub fn days_left(&self, today: NaiveDate) -> Result<i64, NoEditionInForce> {
        Ok((self.in_force_until(today)? - today).num_days())
    }
}

fn parse_edition(file: &str, text: &str) -> Result<Edition, EditionError> {
    let mut edition: Edition = toml::from_str(text)
        .map_err(|e| EditionError::Parse { file: file.to_owned(), message: e.to_string().trim_end().to_owned() })?;
    edition.source = file.to_owned();
    validate(file, &edition)?;
    Ok(edition)
}

/// The `.toml` files of the overlay directory, in name order. Hidden entries are skipped: a
/// ConfigMap volume holds `..data` and timestamped directories beside the keys' symlinks.
fn overlay_files(dir: &Path, warnings: &mut Vec<EditionWarning>) -> Result<Vec<PathBuf>, EditionError> {
    let read_dir_error = |source| EditionError::ReadDir { dir: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let path = entry.map_err(read_dir_error)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        // `metadata` follows symlinks, which is how a ConfigMap presents its files.
        if fs::metadata(&path).is_ok_and(|m| m.is_file()) && name.ends_with(".toml") {
            files.push(path);
        } else {
            warnings.push(EditionWarning::IgnoredFile { file: path.display().to_string() });
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;
    use crate::edition::{DayCount, FeeBasis, FundSource, MonthDay, QualityCardRule, Rounding};

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn edition_one_carries_the_decided_parameters() {
        let editions = Editions::embedded();
        let e = editions.edition_in_force(date(2026, 11, 26)).unwrap();
        assert_eq!(
            (e.number, e.doc_no.as_str(), e.registration_no.as_deref()),
            (1, "江人社发〔2022〕1号", Some("JMBG2021060"))
        );
        assert_eq!((e.effective_from, e.effective_to), (date(2022, 2, 15), date(2027, 2, 14)));
        // D1, D9, article 10.
        assert_eq!(e.fees.class_hour_minutes, 45);
        assert_eq!(e.fees.rounding, Rounding::Floor);
        assert_eq!(e.fees.basis, FeeBasis::PreTax);
        assert_eq!(e.fees.rate_per_class_hour_fen, 10_000);
        assert_eq!(e.fees.max_class_hours_per_half_day, 4);
        assert!(e.fees.civil_servants_exempt);
        assert_eq!(
            e.fees.fund_sources,
            vec![FundSource::ProvEmploymentFundSkillTraining, FundSource::CityCountyEmploymentFund]
        );
        assert_eq!(e.fees.leader_approval_threshold_fen, 1_000_000);
        // D2.
        assert_eq!(e.sessions.half_day_split, NaiveTime::from_hms_opt(12, 30, 0).unwrap());
        assert!(!e.sessions.evening_is_separate_half_day);
        // D3, D7, D13, D14.
        assert_eq!(e.dispatch.decline_notice_working_days, 3);
        assert_eq!(e.dispatch.decline_cutoff, NaiveTime::from_hms_opt(17, 30, 0).unwrap());
        assert_eq!((e.dispatch.team_size, e.dispatch.backup_count), (2, 2));
        assert!(e.dispatch.county_dispatch_own_county_only);
        assert!(!e.dispatch.training_required_before_dispatch);
        assert_eq!(e.dispatch.evaluation_task_quality_card, QualityCardRule::OnePerTeam);
        assert_eq!(e.exclusions.cooling_months_same_institution, 6);
        assert_eq!(e.exclusions.max_assignments_per_month, 4);
        // D10, D11.
        assert_eq!((e.appointment.publicity_days, e.appointment.publicity_day_count), (7, DayCount::Calendar));
        assert_eq!((e.appointment.term_years, e.appointment.renewal_window_days), (2, 90));
        // D5.
        assert_eq!(e.retirement.confirmation_working_days, 10);
        assert_eq!(e.retirement.non_acceptance_years, 2);
        assert_eq!(e.retirement.appointment_year_neutral_after, MonthDay { month: 7, day: 1 });
        assert_eq!(e.validity.expiry_reminder_days, vec![180, 90, 60, 30]);
        assert!(e.source.contains("edition-1.toml"));
        assert_eq!(editions.warnings(), &[]);
    }

    #[test]
    fn both_ends_of_edition_one_are_in_force() {
        let editions = Editions::embedded();
        assert_eq!(editions.edition_in_force(date(2022, 2, 15)).map(|e| e.number), Ok(1));
        assert_eq!(editions.edition_in_force(date(2027, 2, 14)).map(|e| e.number), Ok(1));
    }

    #[test]
    fn a_date_after_edition_one_is_refused_naming_its_end() {
        let error = Editions::embedded().edition_in_force(date(2027, 2, 15)).unwrap_err();
        assert_eq!(error.last_end_date(), Some(date(2027, 2, 14)));
        assert_eq!(error.next, None);
        assert!(error.to_string().contains("2027-02-14"), "{error}");
    }

    #[test]
    fn a_date_before_the_first_edition_is_refused_naming_its_start() {
        let error = Editions::embedded().edition_in_force(date(2022, 2, 14)).unwrap_err();
        assert_eq!(error.previous, None);
        assert_eq!(error.next.as_ref().map(|n| n.effective_from), Some(date(2022, 2, 15)));
        assert!(error.to_string().contains("2022-02-15"), "{error}");
    }

    #[test]
    fn days_left_counts_to_the_last_day_in_force() {
        let editions = Editions::embedded();
        assert_eq!(editions.days_left(date(2027, 2, 14)), Ok(0));
        assert_eq!(editions.days_left(date(2026, 11, 26)), Ok(80));
        assert_eq!(editions.days_left(date(2026, 8, 18)), Ok(180));
        assert!(editions.days_left(date(2027, 2, 15)).is_err());
    }

    #[test]
    fn a_day_of_the_year_parses_and_falls_back_from_the_twenty_ninth_of_february() {
        let leap: MonthDay = toml::Value::String("02-29".into()).try_into().unwrap();
        assert_eq!(leap.in_year(2027), Some(date(2027, 2, 28)));
        assert_eq!(leap.in_year(2028), Some(date(2028, 2, 29)));
        assert!(toml::Value::String("13-01".into()).try_into::<MonthDay>().is_err());
    }
}
