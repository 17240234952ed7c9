//! The one mapping of the reference data's refusals to gRPC statuses, as the contract of
//! `supervision.calendar.v1` states it: `FAILED_PRECONDITION` with an `ErrorInfo` (reason and
//! figures) and a `PreconditionFailure` (what an operator must add).

use std::collections::HashMap;

use supervision_calendar::NotCovered;
use supervision_policy::NoEditionInForce;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of the reference data's errors.
pub const ERROR_DOMAIN: &str = "supervision.calendar.v1";
/// `ErrorInfo.reason` for a date in a year the calendar has no notice for; metadata `year`.
pub const CALENDAR_YEAR_MISSING: &str = "CALENDAR_YEAR_MISSING";
/// `ErrorInfo.reason` for a date no policy edition is in force on; metadata `date`, and
/// `last_effective_to` / `next_effective_from` when an edition ends before / starts after it.
pub const NO_EDITION_IN_FORCE: &str = "NO_EDITION_IN_FORCE";

/// What the reference data refuses to answer, for services that combine it in their own use
/// cases; converts into the same `Status` the CalendarService answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(transparent)]
    NotCovered(#[from] NotCovered),
    #[error(transparent)]
    NoEditionInForce(#[from] NoEditionInForce),
}

impl From<ReferenceError> for Status {
    fn from(err: ReferenceError) -> Self {
        match err {
            ReferenceError::NotCovered(err) => not_covered_status(&err),
            ReferenceError::NoEditionInForce(err) => no_edition_status(&err),
        }
    }
}

/// `FAILED_PRECONDITION` naming the year without calendar data: never a Monday-to-Friday guess.
pub fn not_covered_status(err: &NotCovered) -> Status {
    let year = err.year.to_string();
    let mut details = ErrorDetails::new();
    details
        .set_error_info(CALENDAR_YEAR_MISSING, ERROR_DOMAIN, HashMap::from([("year".to_owned(), year.clone())]))
        .add_precondition_failure_violation(
            CALENDAR_YEAR_MISSING,
            format!("calendar/{year}"),
            format!("no {year}.toml is loaded, neither built in nor from the calendar data directory"),
        );
    Status::with_error_details(Code::FailedPrecondition, err.to_string(), details)
}

/// `FAILED_PRECONDITION` naming the date and the end of the last edition before it (D6).
pub fn no_edition_status(err: &NoEditionInForce) -> Status {
    let mut metadata = HashMap::from([("date".to_owned(), err.date.to_string())]);
    if let Some(previous) = &err.previous {
        metadata.insert("last_effective_to".to_owned(), previous.effective_to.to_string());
        metadata.insert("last_edition".to_owned(), previous.number.to_string());
    }
    if let Some(next) = &err.next {
        metadata.insert("next_effective_from".to_owned(), next.effective_from.to_string());
        metadata.insert("next_edition".to_owned(), next.number.to_string());
    }
    let remedy = match (&err.previous, &err.next) {
        (Some(p), None) => format!(
            "edition {} ended on {}: load its successor edition from the policy data directory",
            p.number, p.effective_to
        ),
        (Some(p), Some(n)) => format!(
            "edition {} ended on {} and edition {} starts on {}: nothing may be set in between",
            p.number, p.effective_to, n.number, n.effective_from
        ),
        (None, Some(n)) => format!("the first edition, {}, starts on {}", n.number, n.effective_from),
        (None, None) => "no policy edition is loaded".to_owned(),
    };
    let mut details = ErrorDetails::new();
    details.set_error_info(NO_EDITION_IN_FORCE, ERROR_DOMAIN, metadata).add_precondition_failure_violation(
        NO_EDITION_IN_FORCE,
        format!("policy/{}", err.date),
        remedy,
    );
    Status::with_error_details(Code::FailedPrecondition, err.to_string(), details)
}
