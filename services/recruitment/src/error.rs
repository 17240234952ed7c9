//! Recruitment's errors and their one mapping to gRPC statuses.

use supervision_reference::ReferenceError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{ApplicationStateError, CallStateError, ReviewProblem, Unmet},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("call {0} not found")]
    CallNotFound(String),
    #[error("application {0} not found")]
    ApplicationNotFound(String),
    #[error("material {0} not found")]
    MaterialNotFound(String),
    #[error("publicity batch {0} not found")]
    BatchNotFound(String),
    #[error("objection {0} not found")]
    ObjectionNotFound(String),
    #[error(transparent)]
    CallState(#[from] CallStateError),
    #[error(transparent)]
    ApplicationState(#[from] ApplicationStateError),
    #[error("application {id} is at revision {actual}, not the expected {expected}; read it again")]
    RevisionMismatch { id: String, expected: i64, actual: i64 },
    #[error("application {0} already has the most materials allowed ({1})")]
    TooManyMaterials(String, usize),
    #[error("the application cannot be submitted yet")]
    SubmissionRefused(Vec<Unmet>),
    #[error("the review cannot pass yet")]
    NotPassable(Vec<Unmet>),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("the registry could not be asked: {0}")]
    Registry(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(err))
    }
}

fn not_found(kind: &str, id: String, message: String) -> Status {
    Status::with_error_details(
        Code::NotFound,
        message,
        ErrorDetails::with_resource_info(format!("supervision.recruitment.v1.{kind}"), id, "", ""),
    )
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::CallNotFound(id) => not_found("Call", id, message),
            Error::ApplicationNotFound(id) => not_found("Application", id, message),
            Error::MaterialNotFound(id) => not_found("Material", id, message),
            Error::BatchNotFound(id) => not_found("PublicityBatch", id, message),
            Error::ObjectionNotFound(id) => not_found("Objection", id, message),
            Error::CallState(e) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure_violation(
                    "CALL_STATE",
                    format!("call/{}", e.id),
                    e.to_string(),
                ),
            ),
            Error::ApplicationState(e) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure_violation(
                    "APPLICATION_STATE",
                    format!("application/{}", e.id),
                    e.to_string(),
                ),
            ),
            Error::RevisionMismatch { .. } => Status::aborted(message),
            Error::TooManyMaterials(id, _) => Status::with_error_details(
                Code::FailedPrecondition,
                message.clone(),
                ErrorDetails::with_precondition_failure_violation(
                    "MATERIAL_LIMIT",
                    format!("application/{id}"),
                    message,
                ),
            ),
            Error::SubmissionRefused(unmet) => {
                let mut details = ErrorDetails::new();
                for u in &unmet {
                    details.add_precondition_failure_violation("SUBMISSION", &u.subject, &u.description);
                }
                let summary = unmet.iter().map(|u| u.description.as_str()).collect::<Vec<_>>().join("; ");
                Status::with_error_details(Code::FailedPrecondition, format!("{message}: {summary}"), details)
            }
            Error::NotPassable(unmet) => {
                let mut details = ErrorDetails::new();
                for u in &unmet {
                    details.add_precondition_failure_violation("REVIEW", &u.subject, &u.description);
                }
                let summary = unmet.iter().map(|u| format!("{} {}", u.subject, u.description)).collect::<Vec<_>>();
                Status::with_error_details(
                    Code::FailedPrecondition,
                    format!("{message}: {}", summary.join("; ")),
                    details,
                )
            }
            Error::Reference(e) => e.into(),
            Error::Registry(_) => Status::unavailable(message),
            // A database that does not answer (or is restarting) is UNAVAILABLE: retry later.
            Error::Store(StoreError::Sql(err)) => supervision_kit::error::database(&err),
            Error::Store(err) => supervision_kit::internal(err),
        }
    }
}

/// A review refused: the application's state, targets named field by field, or what is unmet.
pub fn review_status(problem: ReviewProblem) -> Status {
    match problem {
        ReviewProblem::State(e) => Error::ApplicationState(e).into(),
        ReviewProblem::Targets(wrong) => {
            let mut v = supervision_kit::FieldViolations::new();
            for (field, description) in wrong {
                v.add(field, description);
            }
            v.check().expect_err("at least one target is wrong")
        }
        ReviewProblem::NotPassable(unmet) => Error::NotPassable(unmet).into(),
    }
}
