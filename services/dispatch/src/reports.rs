//! Use cases of worked sessions and reports (article 8; D1, D2, D16; ARCHITECTURE.md "Fees").
//!
//! The expert, or staff of the dispatching bureau on the expert's behalf, records the sessions
//! worked on an ACCEPTED assignment and submits the report; the dispatching bureau's operators
//! accept, correct or void it. Each acceptance, correction or void of an accepted report is a new
//! revision written to finance's RecordSessions through the outbox in the same transaction, as a
//! full snapshot keyed `<assignment id>:<revision>`.

use chrono::{DateTime, Utc};
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    outbox::{self, Delivery},
    storage::format_instant,
    vocab::OnBehalf,
};
use supervision_proto::{common, finance as fpb};
use tonic::Code;

use crate::{
    domain::{
        Assignment, AssignmentId, AssignmentStatus, Correction, Entered, Report, ReportId, ReportStatus, Task,
        WorkedSession,
    },
    error::Error,
    responses::answerable,
    store::{draws as draw_store, reports as report_store, tasks as task_store},
};

pub const RECORD_SESSIONS: &str = "/supervision.finance.v1.FinanceService/RecordSessions";

fn refused(code: Code, reason: &'static str, message: impl Into<String>) -> Error {
    Error::draw_refused(code, reason, message)
}

/// Fills in each session's task session and checks it is one of the task's half-days.
fn match_sessions(task: &Task, sessions: &mut [WorkedSession]) -> Result<(), Error> {
    for (i, s) in sessions.iter_mut().enumerate() {
        let found =
            task.details.sessions.iter().find(|t| t.date.to_string() == s.date && t.half_day.code() == s.half_day);
        match found {
            Some(t) if s.task_session_id.is_empty() || s.task_session_id == t.id.to_string() => {
                s.task_session_id = t.id.to_string();
            }
            _ => {
                return Err(Error::InvalidField {
                    field: format!("sessions[{i}]"),
                    problem: format!("{} {} is not a session of task {}", s.date, s.half_day, task.number),
                });
            }
        }
    }
    Ok(())
}

fn check_accepted(a: &Assignment) -> Result<(), Error> {
    if a.status == AssignmentStatus::Accepted {
        return Ok(());
    }
    Err(refused(
        Code::FailedPrecondition,
        "ASSIGNMENT_NOT_ACCEPTED",
        format!("assignment {} is {}; sessions and reports belong to an ACCEPTED one", a.id, a.status.code()),
    ))
}

/// Replaces the assignment's worked sessions (before its report is accepted).
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn record_sessions(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &AssignmentId,
    mut sessions: Vec<WorkedSession>,
    on_behalf: Option<&OnBehalf>,
) -> Result<Assignment, Error> {
    let (mut a, task) = answerable(tx, caller, id, on_behalf.is_some()).await?;
    check_accepted(&a)?;
    if let Some(report) = report_store::report_of(tx, &a.id).await?
        && matches!(report.status, ReportStatus::Accepted | ReportStatus::Voided)
    {
        return Err(refused(
            Code::FailedPrecondition,
            "REPORT_ACCEPTED",
            "the report is accepted; correct its sessions with CorrectReport",
        ));
    }
    match_sessions(&task, &mut sessions)?;
    let expected = a.updated_at;
    a.worked_sessions = sessions;
    a.updated_at = clock.now();
    crate::responses::save_assignment(tx, &a, expected).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "assignment",
        entity_id: a.id.as_str(),
        action: "record_worked_sessions",
        before: None,
        after: Some(serde_json::json!({
            "sessions": a.worked_sessions,
            "on_behalf": on_behalf.map(|o| o.channel.clone()),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(a)
}

/// Submits (or resubmits after a return) the report of an ACCEPTED assignment with its worked
/// sessions.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn submit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &AssignmentId,
    content: Vec<u8>,
    on_behalf: Option<&OnBehalf>,
) -> Result<Report, Error> {
    let (mut a, _task) = answerable(tx, caller, id, on_behalf.is_some()).await?;
    check_accepted(&a)?;
    if a.worked_sessions.is_empty() {
        return Err(refused(
            Code::FailedPrecondition,
            "NO_WORKED_SESSIONS",
            "record the sessions worked (RecordWorkedSessions) before submitting the report",
        ));
    }
    let now = clock.now();
    let entered = on_behalf.map(|o| Entered {
        channel: o.channel.clone(),
        received_at: format_instant(o.received_at),
        note: o.note.clone(),
    });
    let report = match report_store::report_of(tx, &a.id).await? {
        Some(mut report) => {
            if report.status != ReportStatus::Returned {
                return Err(refused(
                    Code::FailedPrecondition,
                    "REPORT_EXISTS",
                    format!("the report {} is {}; only a RETURNED one is resubmitted", report.id, report.status.code()),
                ));
            }
            let expected = report.updated_at;
            report.status = ReportStatus::Submitted;
            report.content = content;
            report.sessions = a.worked_sessions.clone();
            report.submitted_by = caller.actor();
            report.on_behalf = entered;
            report.submitted_at = now;
            report.updated_at = now;
            if !report_store::update_report(tx, &report, expected).await? {
                return Err(refused(Code::Aborted, "REPORT_CHANGED", format!("report {} changed", report.id)));
            }
            report
        }
        None => {
            let report = Report {
                id: ReportId::generate(),
                assignment_id: a.id.clone(),
                task_id: a.task_id.clone(),
                expert_id: a.expert_id.clone(),
                status: ReportStatus::Submitted,
                content,
                sessions: a.worked_sessions.clone(),
                revision: 0,
                submitted_by: caller.actor(),
                on_behalf: entered,
                submitted_at: now,
                accepted_by: None,
                accepted_at: None,
                corrections: Vec::new(),
                void_reason: String::new(),
                voided_by: None,
                voided_at: None,
                updated_at: now,
                return_reason: String::new(),
            };
            report_store::insert_report(tx, &report).await?;
            let expected = a.updated_at;
            a.report_id = report.id.to_string();
            a.updated_at = now;
            crate::responses::save_assignment(tx, &a, expected).await?;
            report
        }
    };
    audit_report(tx, db, clock, caller, command, &report, "submit", None, "").await?;
    Ok(report)
}

/// A report and its task as `caller` may act on them: staff of the dispatching bureau.
async fn reviewable(conn: &mut sqlx::AnyConnection, caller: &Caller, id: &ReportId) -> Result<(Report, Task), Error> {
    let not_found = || Error::ReportNotFound(id.to_string());
    let report = report_store::get_report(conn, id).await?.ok_or_else(not_found)?;
    let task = task_store::get_task(conn, &report.task_id).await?.ok_or_else(not_found)?;
    caller.require_bureau(task.bureau()).map_err(|_| not_found())?;
    Ok((report, task))
}

/// A report as `caller` may read it: the expert their own, staff within their visibility.
pub async fn get(db: &Db, caller: &Caller, id: &ReportId) -> Result<Report, Error> {
    let not_found = || Error::ReportNotFound(id.to_string());
    let mut conn = db.pool().acquire().await?;
    let report = report_store::get_report(&mut conn, id).await?.ok_or_else(not_found)?;
    if caller.role == Role::Expert {
        return if caller.expert_id.as_deref() == Some(report.expert_id.as_str()) {
            Ok(report)
        } else {
            Err(not_found())
        };
    }
    let task = task_store::get_task(&mut conn, &report.task_id).await?.ok_or_else(not_found)?;
    if crate::domain::TaskVisibility::of(caller).allows(&task) { Ok(report) } else { Err(not_found()) }
}

/// What a review does to a report.
#[derive(Debug, Clone)]
pub enum Review {
    Accept {
        note: String,
    },
    Correct {
        content: Option<Vec<u8>>,
        sessions: Option<Vec<WorkedSession>>,
        reason: String,
    },
    Void {
        reason: String,
    },
    /// Back to the expert for revision; they resubmit with SubmitReport.
    Return {
        reason: String,
    },
}

/// Accepts, corrects or voids a report; a revision for finance when the report is (or was)
/// accepted.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn review(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &ReportId,
    review: Review,
) -> Result<Report, Error> {
    let (mut report, task) = reviewable(tx, caller, id).await?;
    let expected = report.updated_at;
    let before = report.status;
    let now = clock.now();
    let not_in = |wanted: &str| {
        refused(
            Code::FailedPrecondition,
            "REPORT_NOT_IN_STATE",
            format!("report {} is {}; this needs it {wanted}", report.id, report.status.code()),
        )
    };
    let mut accept_note = String::new();
    let (action, send) = match review {
        Review::Accept { note } => {
            accept_note = note;
            if report.status != ReportStatus::Submitted {
                return Err(not_in("SUBMITTED"));
            }
            report.status = ReportStatus::Accepted;
            report.accepted_by = Some(caller.actor());
            report.accepted_at = Some(now);
            report.revision = 1;
            ("accept", true)
        }
        Review::Correct { content, sessions, reason } => {
            if report.status != ReportStatus::Accepted {
                return Err(not_in("ACCEPTED"));
            }
            if let Some(content) = content {
                report.content = content;
            }
            if let Some(mut sessions) = sessions {
                match_sessions(&task, &mut sessions)?;
                report.sessions = sessions;
            }
            report.revision += 1;
            report.corrections.push(Correction {
                revision: report.revision,
                reason,
                corrected_by: caller.actor(),
                at: format_instant(now),
            });
            ("correct", true)
        }
        Review::Return { reason } => {
            if report.status != ReportStatus::Submitted {
                return Err(not_in("SUBMITTED"));
            }
            report.status = ReportStatus::Returned;
            report.return_reason = reason;
            ("return", false)
        }
        Review::Void { reason } => {
            if !matches!(report.status, ReportStatus::Submitted | ReportStatus::Accepted) {
                return Err(not_in("SUBMITTED or ACCEPTED"));
            }
            let was_accepted = report.status == ReportStatus::Accepted;
            report.status = ReportStatus::Voided;
            report.void_reason = reason;
            report.voided_by = Some(caller.actor());
            report.voided_at = Some(now);
            if was_accepted {
                report.revision += 1;
            }
            ("void", was_accepted)
        }
    };
    report.updated_at = now;
    if !report_store::update_report(tx, &report, expected).await? {
        return Err(refused(Code::Aborted, "REPORT_CHANGED", format!("report {} changed", report.id)));
    }
    if send {
        enqueue_revision(tx, clock, caller, &task, &report, now).await?;
        let mut a = draw_store::get_assignment(tx, &report.assignment_id)
            .await?
            .ok_or_else(|| Error::AssignmentNotFound(report.assignment_id.to_string()))?;
        let expected = a.updated_at;
        a.fee_revision = report.revision;
        if a.status == AssignmentStatus::Accepted && report.status == ReportStatus::Accepted {
            a.status = AssignmentStatus::Completed;
        }
        a.updated_at = now;
        crate::responses::save_assignment(tx, &a, expected).await?;
    }
    audit_report(tx, db, clock, caller, command, &report, action, Some(before), &accept_note).await?;
    Ok(report)
}

/// The full snapshot of the report's revision for finance (ARCHITECTURE.md "Fees").
pub fn revision_request(task: &Task, report: &Report, event_time: DateTime<Utc>) -> fpb::RecordSessionsRequest {
    let voided = report.status == ReportStatus::Voided;
    fpb::RecordSessionsRequest {
        request_id: format!("{}:{}", report.assignment_id, report.revision),
        assignment_id: report.assignment_id.to_string(),
        revision: i32::try_from(report.revision).unwrap_or(i32::MAX),
        task_id: task.id.to_string(),
        task_number: task.number.to_string(),
        expert_id: report.expert_id.clone(),
        paying_bureau: task.bureau().to_proto() as i32,
        fund_source: common::FundSource::from_str_name(&format!("FUND_SOURCE_{}", task.details.fund_source.code()))
            .map_or(0, |f| f as i32),
        sessions: report
            .sessions
            .iter()
            .map(|s| {
                let w = crate::convert::worked_session_to_proto(s);
                fpb::SessionWorked {
                    task_session_id: w.task_session_id,
                    date: w.date,
                    half_day: w.half_day,
                    start_time: w.start_time,
                    minutes: w.minutes,
                }
            })
            .collect(),
        voided,
        void_reason: if voided { report.void_reason.clone() } else { String::new() },
        event_time: Some(supervision_kit::convert::timestamp(event_time)),
    }
}

async fn enqueue_revision(
    tx: &mut Transaction<'static, Any>,
    clock: &SharedClock,
    caller: &Caller,
    task: &Task,
    report: &Report,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let request = revision_request(task, report, now);
    let delivery = Delivery {
        destination: "finance",
        method: RECORD_SESSIONS,
        idempotency_key: &request.request_id,
        actor: &caller.actor(),
    };
    outbox::enqueue(tx, clock, delivery, &request).await?;
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "the audit entry's parts")]
async fn audit_report(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    report: &Report,
    action: &str,
    before: Option<ReportStatus>,
    note: &str,
) -> Result<(), Error> {
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "report",
        entity_id: report.id.as_str(),
        action,
        before: before.map(|b| serde_json::json!({ "status": b.code() })),
        after: Some(serde_json::json!({
            "status": report.status.code(),
            "assignment_id": report.assignment_id.as_str(),
            "revision": report.revision,
            "sessions": report.sessions,
            "void_reason": report.void_reason,
            "note": note,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// ListReports: an expert their own; staff within their visibility.
pub async fn list(
    db: &Db,
    caller: &Caller,
    mut filter: report_store::ReportFilter,
    page: &supervision_kit::Page,
) -> Result<(Vec<Report>, Option<String>), Error> {
    if caller.role == Role::Expert {
        let own = caller.expert_id.clone().unwrap_or_default();
        if own.is_empty() || filter.expert_id.as_ref().is_some_and(|e| *e != own) {
            return Ok((Vec::new(), None));
        }
        filter.expert_id = Some(own);
        filter.visibility = crate::domain::TaskVisibility::All;
    }
    let mut conn = db.pool().acquire().await?;
    let items = report_store::list_reports(&mut conn, &filter, &page.probe()).await?;
    Ok(page.finish(items, |r| r.id.to_string()))
}
