//! 报告 — an expert's report on one assignment and its revisions to finance (article 8;
//! ARCHITECTURE.md "Fees").
//!
//! Choices written down here:
//! - The content is the contract's `ReportContent`, kept encoded: dispatch checks it on the way in
//!   and hands it back unchanged; nothing in it drives a rule.
//! - The sessions are the assignment's worked sessions when the report is submitted; a correction
//!   replaces them. Each acceptance, correction or void of an accepted report is a new revision,
//!   sent to finance as a full snapshot keyed `<assignment id>:<revision>`.
//! - A report voided before acceptance never reached finance: no revision is sent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use supervision_kit::auth::Actor;

use super::{
    draw::{AssignmentId, ReportId, ReportStatus, WorkedSession},
    task::TaskId,
};

/// How staff received what they entered (D16), as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entered {
    pub channel: String,
    pub received_at: String,
    pub note: String,
}

/// A correction of an accepted report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub revision: u32,
    pub reason: String,
    pub corrected_by: Actor,
    /// As `format_instant` writes it.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub id: ReportId,
    pub assignment_id: AssignmentId,
    pub task_id: TaskId,
    pub expert_id: String,
    pub status: ReportStatus,
    /// The encoded `ReportContent`.
    pub content: Vec<u8>,
    pub sessions: Vec<WorkedSession>,
    /// The latest revision sent to finance (0 before acceptance).
    pub revision: u32,
    pub submitted_by: Actor,
    pub on_behalf: Option<Entered>,
    pub submitted_at: DateTime<Utc>,
    pub accepted_by: Option<Actor>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub corrections: Vec<Correction>,
    pub void_reason: String,
    pub voided_by: Option<Actor>,
    pub voided_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Why it was last returned for revision.
    pub return_reason: String,
}
