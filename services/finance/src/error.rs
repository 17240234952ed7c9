//! Finance's errors and their one mapping to gRPC statuses.

use supervision_reference::ReferenceError;
use tonic::Status;

use std::collections::HashMap;

use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::{Refusal, SlotError},
    store::StoreError,
};

/// The `ErrorInfo.domain` of finance's refusals.
const DOMAIN: &str = "supervision.finance.v1";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No policy edition in force on a work date.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The registry could not answer; nothing was written and the revision may be sent again.
    #[error("the registry did not answer: {0}")]
    RegistryUnavailable(String),
    /// The slot changed between the registry's answers and the write (a concurrent revision of
    /// the same assignment); sending the revision again applies it.
    #[error("the expert's slots changed while the revision was being applied; send it again")]
    Concurrent,
    /// A revision judged newer was refused by the slot rules: the store and the held revision
    /// disagree.
    #[error(transparent)]
    Slot(#[from] SlotError),
    #[error("no fee line {0}")]
    LineNotFound(String),
    #[error("no payment batch {0}")]
    BatchNotFound(String),
    #[error("no monthly statement {0}")]
    StatementNotFound(String),
    /// The registry knows no such expert.
    #[error("the registry has no expert {0}")]
    PayeeNotFound(String),
    /// The registry answered masked payee details: finance is not trusted with them.
    #[error("the registry gave masked payee details for {0}")]
    PayeeMasked(String),
    /// The registry lacks what a file needs (a bank account).
    #[error("{0}")]
    PayeeIncomplete(String),
    /// A batch operation refused: the batch's state, the approver, or an empty selection.
    #[error("{}", .0.message)]
    Refused(Refusal),
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        Error::Store(err).into()
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(err))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            // A database that does not answer (or is restarting) is UNAVAILABLE: retry later.
            Error::Store(StoreError::Sql(err)) => supervision_kit::error::database(&err),
            Error::Store(err) => supervision_kit::internal(err),
            Error::Reference(err) => err.into(),
            Error::RegistryUnavailable(problem) => {
                tracing::warn!(%problem, "registry call failed");
                Status::unavailable(
                    "the registry could not be asked (civil-servant status or payee details); try again",
                )
            }
            Error::Concurrent => Status::aborted(Error::Concurrent.to_string()),
            Error::Slot(err) => supervision_kit::internal(err),
            Error::LineNotFound(id) => Status::not_found(format!("no fee line {id}")),
            Error::BatchNotFound(id) => Status::not_found(format!("no payment batch {id}")),
            Error::StatementNotFound(what) => Status::not_found(format!("no monthly statement {what}")),
            Error::PayeeNotFound(id) => Status::failed_precondition(format!("the registry has no expert {id}")),
            Error::PayeeMasked(id) => {
                tracing::error!(expert = %id, "the registry masked payee details: is finance's SERVICE token svc:finance?");
                Status::failed_precondition(
                    "the registry gave masked payee details; finance's SERVICE token must be its own (svc:finance) \
                     and the caller a FINANCE, FINANCE_LEAD, CITY_ADMIN or AUDITOR user",
                )
            }
            Error::PayeeIncomplete(what) => Status::failed_precondition(what),
            Error::Refused(refusal) => {
                let code = if refusal.denied { tonic::Code::PermissionDenied } else { tonic::Code::FailedPrecondition };
                Status::with_error_details(
                    code,
                    refusal.message,
                    ErrorDetails::with_error_info(refusal.reason, DOMAIN, HashMap::<String, String>::new()),
                )
            }
        }
    }
}
