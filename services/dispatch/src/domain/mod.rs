//! Dispatch's rules, free of gRPC and SQL.

pub mod submission;

pub use submission::{
    NewSubmission, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionRefused, SubmissionStatus,
    Submitter, Visibility,
};
