//! Finance's errors and their one mapping to gRPC statuses.

use tonic::Status;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
        match err {
            Error::Store(err) => supervision_kit::internal(err),
        }
    }
}
