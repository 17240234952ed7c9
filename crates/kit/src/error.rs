//! Turning bad input into `INVALID_ARGUMENT` with one field violation per problem, and storage
//! failures into a plain `INTERNAL` that never carries SQL text to the caller.

use std::fmt::Display;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Collects every problem with a request, so the caller hears about all of them at once.
#[derive(Debug, Default)]
pub struct FieldViolations {
    violations: Vec<FieldViolation>,
}

impl FieldViolations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` (its proto path, such as `credit_code` or `page.page_size`) is wrong.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }

    /// `Ok` when nothing was recorded, otherwise `INVALID_ARGUMENT` with every violation.
    pub fn check(self) -> Result<(), Status> {
        if self.violations.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = self.violations.iter().map(|v| v.field.as_str()).collect();
        let message = format!("invalid request: {}", fields.join(", "));
        Err(Status::with_error_details(Code::InvalidArgument, message, ErrorDetails::with_bad_request(self.violations)))
    }
}

/// `INVALID_ARGUMENT` naming one field.
pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Status {
    let mut v = FieldViolations::new();
    v.add(field, description);
    v.check().expect_err("one violation was added")
}

/// A database failure as the caller should see it: contention that a retry with the same
/// `request_id` may get past (busy or locked SQLite, PostgreSQL deadlocks, serialization and
/// lock-timeout failures, an exhausted pool) is `UNAVAILABLE`; anything else `INTERNAL`. Logged
/// once either way, without SQL text reaching the caller.
pub fn database(err: &sqlx::Error) -> Status {
    let transient = match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            // SQLite: 5 SQLITE_BUSY, 6 SQLITE_LOCKED, 261/262/517 their extended forms;
            // PostgreSQL: 40001 serialization, 40P01 deadlock, 55P03 lock not available,
            // 53300 too many connections, 57P01-57P03 the server shutting down or starting,
            // class 08 a lost connection.
            matches!(
                code.as_deref(),
                Some(
                    "40001"
                        | "40P01"
                        | "55P03"
                        | "53300"
                        | "57P01"
                        | "57P02"
                        | "57P03"
                        | "5"
                        | "6"
                        | "261"
                        | "262"
                        | "517"
                )
            ) || code.as_deref().is_some_and(|c| c.len() == 5 && c.starts_with("08"))
        }
        _ => false,
    };
    if transient {
        tracing::warn!(error = %crate::redact(&err.to_string()), "database busy");
        Status::unavailable("the database is busy; retry with the same request_id")
    } else {
        internal(err)
    }
}

/// Logs an unexpected failure once (personal numbers masked: a database error may quote the
/// value that failed) and answers `INTERNAL` without its details.
pub fn internal(err: impl Display) -> Status {
    tracing::error!(error = %crate::redact(&err.to_string()), "internal error");
    Status::internal("internal error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_violations_is_ok() {
        assert!(FieldViolations::new().check().is_ok());
    }

    #[test]
    fn every_violation_reaches_the_caller() {
        let mut v = FieldViolations::new();
        v.add("name", "must not be empty");
        v.add("credit_code", "wrong check character");
        let status = v.check().unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .expect("bad request details")
            .field_violations
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(fields, ["name", "credit_code"]);
    }
}
