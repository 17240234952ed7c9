//! Successor editions from the overlay directory, and the files that are refused.

use std::fs;

use chrono::NaiveDate;
use supervision_policy::{EditionError, EditionWarning, Editions, Rounding};
use tempfile::TempDir;

const EDITION_1: &str = include_str!("../../editions/edition-1.toml");

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// Edition 1's file with `replacements` applied, each of which must match.
fn edition_1_with(replacements: &[(&str, &str)]) -> String {
    let mut text = EDITION_1.to_owned();
    for (from, to) in replacements {
        assert!(text.contains(from), "edition-1.toml no longer contains {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

/// A successor: edition 2 from the day after edition 1, five years, a new fee rate and rounding.
fn edition_2() -> String {
    edition_1_with(&[
        ("number = 1", "number = 2"),
        ("doc_no = \"江人社发〔2022〕1号\"", "doc_no = \"江人社发〔2027〕1号 (test fixture)\""),
        ("issued_on = 2022-01-05", "issued_on = 2027-01-10"),
        ("effective_from = 2022-02-15", "effective_from = 2027-02-15"),
        ("effective_to = 2027-02-14", "effective_to = 2032-02-14"),
        ("rate_per_class_hour_fen = 10000", "rate_per_class_hour_fen = 12000"),
        ("rounding = \"FLOOR\"", "rounding = \"HALF_UP\""),
    ])
}

fn dir_with(files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

fn refused(files: &[(&str, &str)]) -> (EditionError, TempDir) {
    let dir = dir_with(files);
    let error = Editions::load(Some(dir.path())).expect_err("the overlay should be refused");
    (error, dir)
}

fn names_file(error: &EditionError, dir: &TempDir, name: &str) -> bool {
    let path = dir.path().join(name).display().to_string();
    error.to_string().contains(&path)
}

#[test]
fn a_date_after_2027_02_14_with_no_successor_is_refused_naming_the_end_date() {
    let editions = Editions::load(None).unwrap();
    let error = editions.edition_in_force(date(2027, 3, 1)).unwrap_err();
    assert_eq!(error.last_end_date(), Some(date(2027, 2, 14)));
    assert!(error.to_string().contains("2027-02-14"), "{error}");
    assert!(error.to_string().contains("no successor"), "{error}");
}

#[test]
fn a_successor_edition_applies_its_parameters_from_its_start_date() {
    let dir = dir_with(&[("edition-2.toml", &edition_2())]);
    let editions = Editions::load(Some(dir.path())).unwrap();
    assert_eq!(editions.all().len(), 2);

    let last_day_of_1 = editions.edition_in_force(date(2027, 2, 14)).unwrap();
    assert_eq!((last_day_of_1.number, last_day_of_1.fees.rate_per_class_hour_fen), (1, 10_000));
    assert_eq!(last_day_of_1.fees.rounding, Rounding::Floor);

    let first_day_of_2 = editions.edition_in_force(date(2027, 2, 15)).unwrap();
    assert_eq!((first_day_of_2.number, first_day_of_2.fees.rate_per_class_hour_fen), (2, 12_000));
    assert_eq!(first_day_of_2.fees.rounding, Rounding::HalfUp);
    assert!(first_day_of_2.source.ends_with("edition-2.toml"));

    // The successor follows on the next day, so the policy does not lapse in 2027 any more.
    assert_eq!(editions.in_force_until(date(2026, 11, 26)), Ok(date(2032, 2, 14)));
    let error = editions.edition_in_force(date(2032, 2, 15)).unwrap_err();
    assert_eq!(error.last_end_date(), Some(date(2032, 2, 14)));
}

#[test]
fn a_date_in_a_gap_between_editions_is_refused_naming_both_ends() {
    let later = edition_2().replace("effective_from = 2027-02-15", "effective_from = 2027-04-01");
    let dir = dir_with(&[("edition-2.toml", &later)]);
    let editions = Editions::load(Some(dir.path())).unwrap();
    let error = editions.edition_in_force(date(2027, 3, 1)).unwrap_err();
    assert_eq!(error.last_end_date(), Some(date(2027, 2, 14)));
    assert_eq!(error.next.as_ref().map(|n| n.effective_from), Some(date(2027, 4, 1)));
    assert_eq!(editions.days_left(date(2027, 2, 1)), Ok(13));
}

#[test]
fn overlapping_editions_are_refused() {
    let overlapping = edition_2().replace("effective_from = 2027-02-15", "effective_from = 2027-01-01");
    let (error, dir) = refused(&[("edition-2.toml", &overlapping)]);
    let EditionError::Overlap { first, second } = &error else { panic!("expected an overlap, got {error}") };
    assert_eq!((first.number, second.number), (1, 2));
    assert!(names_file(&error, &dir, "edition-2.toml"), "{error}");
}

#[test]
fn an_edition_ending_before_it_starts_is_refused_naming_the_field() {
    let backwards = edition_2().replace("effective_to = 2032-02-14", "effective_to = 2027-01-14");
    let (error, dir) = refused(&[("edition-2.toml", &backwards)]);
    assert!(matches!(&error, EditionError::Invalid { field, .. } if field == "effective_to"), "{error}");
    assert!(names_file(&error, &dir, "edition-2.toml"), "{error}");
}

#[test]
fn a_parameter_out_of_range_is_refused_naming_the_file_and_field() {
    let typo = edition_2().replace("class_hour_minutes = 45", "class_hour_minutes = 4500");
    let (error, dir) = refused(&[("edition-2.toml", &typo)]);
    assert!(matches!(&error, EditionError::Invalid { field, .. } if field == "fees.class_hour_minutes"), "{error}");
    assert!(names_file(&error, &dir, "edition-2.toml"), "{error}");
    assert!(error.to_string().contains("fees.class_hour_minutes"), "{error}");
}

#[test]
fn a_team_of_one_is_refused() {
    let alone = edition_2().replace("team_size = 2", "team_size = 1");
    let (error, _dir) = refused(&[("edition-2.toml", &alone)]);
    assert!(matches!(&error, EditionError::Invalid { field, .. } if field == "dispatch.team_size"), "{error}");
}

#[test]
fn an_unknown_choice_is_refused_naming_the_key() {
    let unknown = edition_2().replace("rounding = \"HALF_UP\"", "rounding = \"CEILING\"");
    let (error, dir) = refused(&[("edition-2.toml", &unknown)]);
    assert!(matches!(&error, EditionError::Parse { .. }), "{error}");
    assert!(names_file(&error, &dir, "edition-2.toml"), "{error}");
    assert!(error.to_string().contains("rounding"), "{error}");
}

#[test]
fn a_missing_parameter_is_refused_naming_it() {
    let missing = edition_2().replace("renewal_window_days = 90\n", "");
    let (error, dir) = refused(&[("edition-2.toml", &missing)]);
    assert!(matches!(&error, EditionError::Parse { .. }), "{error}");
    assert!(names_file(&error, &dir, "edition-2.toml"), "{error}");
    assert!(error.to_string().contains("renewal_window_days"), "{error}");
}

#[test]
fn a_cutoff_written_as_text_is_refused() {
    let quoted = edition_2().replace("decline_cutoff = 17:30:00", "decline_cutoff = \"17:30\"");
    let (error, _dir) = refused(&[("edition-2.toml", &quoted)]);
    assert!(matches!(&error, EditionError::Parse { .. }), "{error}");
    assert!(error.to_string().contains("decline_cutoff"), "{error}");
}

#[test]
fn two_files_with_the_same_edition_number_are_refused() {
    let (error, dir) = refused(&[("a.toml", &edition_2()), ("b.toml", &edition_2())]);
    assert!(matches!(&error, EditionError::DuplicateNumber { number: 2, .. }), "{error}");
    assert!(names_file(&error, &dir, "a.toml") && names_file(&error, &dir, "b.toml"), "{error}");
}

#[test]
fn a_later_edition_with_a_lower_number_is_refused() {
    let (error, _dir) = refused(&[("edition-0.toml", &edition_2().replace("number = 2", "number = 0"))]);
    assert!(matches!(&error, EditionError::Invalid { field, .. } if field == "number"), "{error}");
    let earlier_3 = edition_1_with(&[
        ("number = 1", "number = 3"),
        ("effective_from = 2022-02-15", "effective_from = 2020-01-01"),
        ("effective_to = 2027-02-14", "effective_to = 2021-12-31"),
    ]);
    let (error, _dir) = refused(&[("edition-3.toml", &earlier_3)]);
    assert!(matches!(&error, EditionError::OutOfOrder { .. }), "{error}");
}

#[test]
fn an_overlay_may_cut_edition_one_short_with_a_warning() {
    // DOMAIN.md section 15: effective_to can be shortened by early repeal.
    let repealed = edition_1_with(&[("effective_to = 2027-02-14", "effective_to = 2026-12-31")]);
    let dir = dir_with(&[("edition-1.toml", &repealed)]);
    let editions = Editions::load(Some(dir.path())).unwrap();
    assert!(editions.edition_in_force(date(2027, 1, 5)).is_err());
    assert!(matches!(editions.warnings(), [EditionWarning::OverlayReplacesEmbedded { number: 1, .. }]));
}

#[test]
fn a_missing_data_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = Editions::load(Some(&dir.path().join("nowhere"))).unwrap_err();
    assert!(matches!(&error, EditionError::ReadDir { .. }), "{error}");
}
