//! The registry's errors and their one mapping to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("institution {0} not found")]
    InstitutionNotFound(String),
    #[error("parent institution {0} not found")]
    ParentNotFound(String),
    #[error("parent institution {0} is itself a sub-unit")]
    ParentIsSubUnit(String),
    #[error("an institution with credit code {0} is already registered")]
    CreditCodeTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(err))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::InstitutionNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Institution", id, "", ""),
            ),
            Error::ParentNotFound(_) => {
                let mut v = supervision_kit::FieldViolations::new();
                v.add("parent_id", "names no registered institution");
                v.check().expect_err("a violation was added")
            }
            Error::ParentIsSubUnit(_) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure_violation(
                    "SUB_UNIT_PARENT",
                    "parent_id",
                    "a sub-unit's parent must be a legal entity with a credit code",
                ),
            ),
            Error::CreditCodeTaken(_) => Status::with_error_details(
                Code::AlreadyExists,
                message,
                ErrorDetails::with_error_info("CREDIT_CODE_TAKEN", "supervision.registry.v1", []),
            ),
            Error::Store(err) => supervision_kit::internal(err),
        }
    }
}
