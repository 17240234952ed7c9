//! Dispatch's rules, free of gRPC and SQL.

pub mod submission;
pub mod task;

pub use submission::{
    NewSubmission, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionRefused, SubmissionStatus,
    Submitter, Visibility,
};
pub use task::{
    Activity, ActivityKind, ActivitySubject, Approval, ExceptionKind, FundSource, HalfDay, NewTask, Session, SessionId,
    Task, TaskException, TaskFilter, TaskId, TaskMode, TaskNumber, TaskOrigin, TaskRefused, TaskStatus, TaskVisibility,
};
