//! Dispatch's errors and their one mapping to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{domain::SubmissionRefused, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("submission {0} not found")]
    SubmissionNotFound(String),
    #[error(transparent)]
    Refused(#[from] SubmissionRefused),
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
            Error::SubmissionNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.dispatch.v1.Submission", id, "", ""),
            ),
            Error::Refused(refused) => {
                let reason = match refused {
                    SubmissionRefused::NotTheirOwn => "NOT_THEIR_OWN",
                    SubmissionRefused::ExpertOnBehalf => "EXPERT_ON_BEHALF",
                    SubmissionRefused::MissingOnBehalf => "ON_BEHALF_REQUIRED",
                    SubmissionRefused::NotThatCounty => "OTHER_COUNTY",
                    SubmissionRefused::CountyReportByOthers => "COUNTY_REPORT_BY_OTHERS",
                };
                let code = match refused {
                    SubmissionRefused::MissingOnBehalf | SubmissionRefused::ExpertOnBehalf => Code::InvalidArgument,
                    _ => Code::PermissionDenied,
                };
                Status::with_error_details(
                    code,
                    message,
                    ErrorDetails::with_error_info(reason, "supervision.dispatch.v1", []),
                )
            }
            Error::Store(err) => supervision_kit::internal(err),
        }
    }
}
