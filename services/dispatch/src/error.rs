//! Dispatch's errors and their one mapping to gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use supervision_reference::ReferenceError;

use crate::{
    domain::{SubmissionRefused, TaskRefused},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("submission {0} not found")]
    SubmissionNotFound(String),
    #[error(transparent)]
    Refused(#[from] SubmissionRefused),
    #[error("task {0} not found")]
    TaskNotFound(String),
    #[error(transparent)]
    TaskRefused(#[from] TaskRefused),
    #[error("task {0} changed since it was read; read it again")]
    TaskChanged(String),
    /// The calendar lacks a year, or no edition is in force on a date (D3, D6).
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("{field} {problem}")]
    InvalidField { field: String, problem: String },
    #[error("institution {0} is not in the registry")]
    InstitutionNotFound(String),
    #[error("the registry cannot be reached, nothing was recorded; retry later: {0}")]
    RegistryUnavailable(String),
    #[error("draw {0} not found")]
    DrawNotFound(String),
    #[error("assignment {0} not found")]
    AssignmentNotFound(String),
    #[error("report {0} not found")]
    ReportNotFound(String),
    #[error("notification {0} not found")]
    NotificationNotFound(String),
    /// A draw step refused; `reason` is the ErrorInfo reason.
    #[error("{message}")]
    DrawRefused { code: Code, reason: &'static str, message: String },
    /// Fewer eligible candidates than the draw needs (D15), with the counts per reason.
    #[error("the pool has {eligible} eligible experts and the draw needs {needed}")]
    PoolTooSmall { eligible: usize, needed: usize, counts: Vec<(&'static str, usize)> },
    #[error("the draw could not fence its experts' half-days now; nothing was recorded; retry: {0}")]
    Busy(String),
    /// DesignateExperts refused: each expert kept out, with every reason code (D14's hard
    /// exclusions and the same-employer rule, `designate.rs`).
    #[error("the designation is refused, nothing was recorded: {}", refusals(.0))]
    ExpertsRefused(Vec<(String, Vec<String>)>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn draw_refused(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Self::DrawRefused { code, reason, message: message.into() }
    }
}

fn refusals(refused: &[(String, Vec<String>)]) -> String {
    refused.iter().map(|(id, reasons)| format!("{id} {}", reasons.join(", "))).collect::<Vec<_>>().join("; ")
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
            Error::TaskNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.dispatch.v1.Task", id, "", ""),
            ),
            Error::TaskRefused(refused) => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_error_info(refused.reason(), "supervision.dispatch.v1", []),
            ),
            Error::TaskChanged(_) => Status::aborted(message),
            Error::Reference(err) => err.into(),
            Error::InstitutionNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.registry.v1.Institution", id, "", ""),
            ),
            Error::InvalidField { field, problem } => supervision_kit::error::invalid_field(field, problem),
            Error::RegistryUnavailable(_) => Status::unavailable(message),
            Error::DrawNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.dispatch.v1.Draw", id, "", ""),
            ),
            Error::AssignmentNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.dispatch.v1.Assignment", id, "", ""),
            ),
            Error::ReportNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.dispatch.v1.Report", id, "", ""),
            ),
            Error::NotificationNotFound(id) => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info("supervision.dispatch.v1.Notification", id, "", ""),
            ),
            Error::DrawRefused { code, reason, .. } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_error_info(reason, "supervision.dispatch.v1", []),
            ),
            Error::PoolTooSmall { eligible, needed, counts } => {
                let mut metadata: std::collections::HashMap<String, String> =
                    counts.into_iter().map(|(name, n)| (name.to_owned(), n.to_string())).collect();
                metadata.insert("eligible".into(), eligible.to_string());
                metadata.insert("needed".into(), needed.to_string());
                Status::with_error_details(
                    Code::FailedPrecondition,
                    message,
                    ErrorDetails::with_error_info("POOL_TOO_SMALL", "supervision.dispatch.v1", metadata),
                )
            }
            Error::Busy(_) => Status::unavailable(message),
            Error::ExpertsRefused(refused) => {
                let metadata: std::collections::HashMap<String, String> =
                    refused.into_iter().map(|(id, reasons)| (id, reasons.join(","))).collect();
                Status::with_error_details(
                    Code::FailedPrecondition,
                    message,
                    ErrorDetails::with_error_info("EXPERTS_REFUSED", "supervision.dispatch.v1", metadata),
                )
            }
            // A database that does not answer (or is restarting) is UNAVAILABLE: retry later.
            Error::Store(StoreError::Sql(err)) => supervision_kit::error::database(&err),
            Error::Store(err) => supervision_kit::internal(err),
        }
    }
}
