//! Dispatch's rules, free of gRPC and SQL.

pub mod draw;
pub mod report;
pub mod submission;
pub mod task;

pub use draw::{
    Answer, Assignment, AssignmentId, AssignmentRole, AssignmentStatus, Draw, DrawId, DrawStatus, Exclusion,
    ExclusionReason, Outcome, Pick, PoolExpert, RelaxationRecord, ReportId, ReportStatus, ResponseKind, Screened,
    WorkedSession,
};
pub use report::{Correction, Entered, Report};
pub use submission::{
    NewSubmission, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionRefused, SubmissionStatus,
    Submitter, Visibility,
};
pub use task::{
    Activity, ActivityKind, ActivitySubject, Approval, ExceptionKind, FundSource, HalfDay, NewTask, Session, SessionId,
    Task, TaskException, TaskFilter, TaskId, TaskMode, TaskNumber, TaskOrigin, TaskRefused, TaskStatus, TaskVisibility,
};
