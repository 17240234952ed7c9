//! Dispatch's rules, free of gRPC and SQL.

pub mod draw;
pub mod report;
pub mod submission;
pub mod task;

pub use draw::{
    Answer, Assignment, AssignmentId, AssignmentRole, AssignmentStatus, Draw, DrawId, DrawKind, DrawStatus, DrawVoid,
    Exclusion, ExclusionReason, LetterId, Outcome, Pick, PoolExpert, PoolRelaxation, RelaxationRecord, ReportId,
    ReportStatus, ResponseKind, Screened, SoftFacts, SoftRule, WorkedSession, frozen_from,
};
pub use report::{Correction, Entered, Report};
pub use submission::{
    Handling, NewSubmission, Step, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionRefused,
    SubmissionStatus, Submitter, Visibility,
};
pub use task::{
    Activity, ActivityKind, ActivitySubject, Approval, ExceptionKind, FundSource, HalfDay, NewTask, Session, SessionId,
    Task, TaskException, TaskFilter, TaskId, TaskMode, TaskNumber, TaskOrigin, TaskRefused, TaskStatus, TaskVisibility,
};
