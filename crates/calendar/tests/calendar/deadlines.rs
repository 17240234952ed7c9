//! D3's decline deadline around every 2025 and 2026 holiday, make-up working days included.
//!
//! The expected dates were worked out by hand from the notices, day by day, as the comments
//! show; ECOSYSTEM.md section 3 item 6 lists six of them independently.

use chrono::{NaiveDate, NaiveTime};
use supervision_calendar::{Calendar, NotCovered};

use crate::{date, oracle::Oracle};

/// Edition 1's parameters (D3); the calendar takes them as arguments.
const NOTICE_WORKING_DAYS: u32 = 3;

fn cutoff() -> NaiveTime {
    NaiveTime::from_hms_opt(17, 30, 0).unwrap()
}

fn deadline_day(calendar: &Calendar, first_session: NaiveDate) -> NaiveDate {
    let deadline = calendar.decline_deadline(first_session, NOTICE_WORKING_DAYS, cutoff()).unwrap();
    assert_eq!(deadline.time(), cutoff());
    assert_eq!(deadline.offset().local_minus_utc(), 8 * 3600);
    deadline.date_naive()
}

/// (first session date, deadline date, why)
type Case = ((i32, u32, u32), (i32, u32, u32), &'static str);

const CASES: &[Case] = &[
    // An ordinary week (DOMAIN.md 14.2's example).
    ((2025, 3, 10), (2025, 3, 5), "Fri 7, Thu 6, Wed 5"),
    // 2025 元旦: Wed 01-01 off.
    ((2025, 1, 2), (2024, 12, 27), "Tue 31, Mon 30, Fri 27: back into 2024"),
    ((2025, 1, 3), (2024, 12, 30), "Thu 2, (1st off), Tue 31, Mon 30"),
    // 2025 春节: 01-28..02-04 off; make-up Sun 01-26 and Sat 02-08.
    ((2025, 1, 28), (2025, 1, 24), "Mon 27, Sun 26 make-up, (Sat 25), Fri 24"),
    ((2025, 2, 5), (2025, 1, 24), "8 days off, Mon 27, Sun 26 make-up, Fri 24"),
    ((2025, 2, 10), (2025, 2, 6), "(Sun 9), Sat 8 make-up, Fri 7, Thu 6"),
    // 2025 清明节: Fri 04-04..Sun 04-06 off.
    ((2025, 4, 7), (2025, 4, 1), "3 days off, Thu 3, Wed 2, Tue 1"),
    // 2025 劳动节: Thu 05-01..Mon 05-05 off; make-up Sun 04-27.
    ((2025, 4, 29), (2025, 4, 25), "Mon 28, Sun 27 make-up, (Sat 26), Fri 25"),
    ((2025, 5, 6), (2025, 4, 28), "5 days off, Wed 30, Tue 29, Mon 28"),
    ((2025, 5, 8), (2025, 4, 30), "Wed 7, Tue 6, 5 days off, Wed 30"),
    // 2025 端午节: Sat 05-31..Mon 06-02 off.
    ((2025, 6, 3), (2025, 5, 28), "3 days off, Fri 30, Thu 29, Wed 28"),
    ((2025, 6, 4), (2025, 5, 29), "Tue 3, 3 days off, Fri 30, Thu 29"),
    // 2025 国庆节、中秋节: 10-01..10-08 off; make-up Sun 09-28 and Sat 10-11.
    ((2025, 9, 30), (2025, 9, 26), "Mon 29, Sun 28 make-up, (Sat 27), Fri 26"),
    ((2025, 10, 9), (2025, 9, 28), "8 days off, Tue 30, Mon 29, Sun 28 make-up"),
    ((2025, 10, 10), (2025, 9, 29), "Thu 9, 8 days off, Tue 30, Mon 29"),
    ((2025, 10, 13), (2025, 10, 9), "(Sun 12), Sat 11 make-up, Fri 10, Thu 9"),
    // 2026 元旦: Thu 01-01..Sat 01-03 off; make-up Sun 01-04.
    ((2026, 1, 5), (2025, 12, 30), "Sun 4 make-up, 3 days off, Wed 31, Tue 30"),
    ((2026, 1, 7), (2026, 1, 4), "Tue 6, Mon 5, Sun 4 make-up: a Sunday deadline"),
    // 2026 春节: Sun 02-15..Mon 02-23 off; make-up Sat 02-14 and Sat 02-28.
    ((2026, 2, 24), (2026, 2, 12), "9 days off, Sat 14 make-up, Fri 13, Thu 12"),
    ((2026, 2, 26), (2026, 2, 14), "Wed 25, Tue 24, 9 days off, Sat 14 make-up"),
    ((2026, 3, 2), (2026, 2, 26), "(Sun 1), Sat 28 make-up, Fri 27, Thu 26"),
    // 2026 清明节: Sat 04-04..Mon 04-06 off.
    ((2026, 4, 7), (2026, 4, 1), "3 days off, Fri 3, Thu 2, Wed 1"),
    ((2026, 4, 9), (2026, 4, 3), "Wed 8, Tue 7, 3 days off, Fri 3"),
    // 2026 劳动节: Fri 05-01..Tue 05-05 off; make-up Sat 05-09.
    ((2026, 5, 6), (2026, 4, 28), "5 days off, Thu 30, Wed 29, Tue 28"),
    ((2026, 5, 11), (2026, 5, 7), "(Sun 10), Sat 9 make-up, Fri 8, Thu 7"),
    // 2026 端午节: Fri 06-19..Sun 06-21 off.
    ((2026, 6, 22), (2026, 6, 16), "3 days off, Thu 18, Wed 17, Tue 16"),
    ((2026, 6, 24), (2026, 6, 18), "Tue 23, Mon 22, 3 days off, Thu 18"),
    // 2026 中秋节: Fri 09-25..Sun 09-27 off; 国庆节 make-up Sun 09-20.
    ((2026, 9, 22), (2026, 9, 18), "Mon 21, Sun 20 make-up, (Sat 19), Fri 18"),
    ((2026, 9, 23), (2026, 9, 20), "Tue 22, Mon 21, Sun 20 make-up: a Sunday deadline"),
    ((2026, 9, 28), (2026, 9, 22), "3 days off, Thu 24, Wed 23, Tue 22"),
    // 2026 国庆节: Thu 10-01..Wed 10-07 off; make-up Sat 10-10.
    ((2026, 10, 9), (2026, 9, 29), "Thu 8, 7 days off, Wed 30, Tue 29"),
    ((2026, 10, 12), (2026, 10, 8), "(Sun 11), Sat 10 make-up, Fri 9, Thu 8"),
    // The last covered days.
    ((2026, 12, 31), (2026, 12, 28), "Wed 30, Tue 29, Mon 28"),
];

#[test]
fn decline_deadlines_around_the_2025_and_2026_holidays_are_as_worked_out_by_hand() {
    let calendar = Calendar::embedded();
    for &((sy, sm, sd), (dy, dm, dd), why) in CASES {
        let session = date(sy, sm, sd);
        assert_eq!(deadline_day(&calendar, session), date(dy, dm, dd), "session {session}: {why}");
        // D3 restated: exactly 3 working days in [deadline, session).
        assert_eq!(calendar.working_days_between(date(dy, dm, dd), session), Ok(3), "session {session}");
    }
}

#[test]
fn every_2025_and_2026_deadline_agrees_with_a_walk_on_the_oracle() {
    let oracle = Oracle::load();
    let calendar = Calendar::embedded();
    for session in date(2025, 1, 1).iter_days().take_while(|d| *d <= date(2026, 12, 31)) {
        assert_eq!(
            deadline_day(&calendar, session),
            oracle.working_days_before(session, NOTICE_WORKING_DAYS),
            "session {session}"
        );
    }
}

#[test]
fn the_deadline_is_seventeen_thirty_in_shanghai() {
    let calendar = Calendar::embedded();
    let deadline = calendar.decline_deadline(date(2026, 10, 12), NOTICE_WORKING_DAYS, cutoff()).unwrap();
    assert_eq!(deadline.to_rfc3339(), "2026-10-08T17:30:00+08:00");
    assert_eq!(deadline.naive_utc(), date(2026, 10, 8).and_hms_opt(9, 30, 0).unwrap());
}

#[test]
fn the_notice_days_and_cutoff_are_parameters() {
    let calendar = Calendar::embedded();
    let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap();
    let deadline = calendar.decline_deadline(date(2026, 10, 12), 5, noon).unwrap();
    // (Sun 11), Sat 10 make-up, Fri 9, Thu 8, then 7 days off, Wed 30 Sep, Tue 29 Sep.
    assert_eq!(deadline.to_rfc3339(), "2026-09-29T12:00:00+08:00");
}

#[test]
fn a_first_session_in_2027_fails_naming_2027() {
    let calendar = Calendar::embedded();
    assert_eq!(calendar.decline_deadline(date(2027, 1, 4), 3, cutoff()), Err(NotCovered { year: 2027 }));
}
