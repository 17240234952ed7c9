//! Finance's errors and their one mapping to gRPC statuses.

use supervision_reference::ReferenceError;
use tonic::Status;

use crate::{domain::SlotError, store::StoreError};

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
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(err))
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        match err {
            Error::Store(err) => supervision_kit::internal(err),
            Error::Reference(err) => err.into(),
            Error::RegistryUnavailable(problem) => {
                tracing::warn!(%problem, "registry call failed");
                Status::unavailable("the registry could not be asked for the civil-servant status; try again")
            }
            Error::Concurrent => Status::aborted(Error::Concurrent.to_string()),
            Error::Slot(err) => supervision_kit::internal(err),
            Error::LineNotFound(id) => Status::not_found(format!("no fee line {id}")),
        }
    }
}
