//! The no-answer sweep (D3, DOMAIN.md 9.4): a NOTIFIED assignment without an answer by its
//! response deadline becomes NO_RESPONSE, which counts as a decline, and its place is refilled by
//! step 5's rule. A periodic job (`jobs::spawn`, under a database lease so one replica runs it).
//!
//! The response deadline is the earlier of the edition's `response_working_days` working days
//! after the notification's day (Asia/Shanghai, not counting that day) and one working day before
//! the D3 decline deadline's day, each at the edition's `decline_cutoff` time, so that a
//! replacement still has a working day to decline in time. An expert notified after that second
//! instant (short notice) has the first alone. Working days follow the calendar: holidays are
//! skipped and make-up weekend days count.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use supervision_kit::{
    Caller, Db, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_proto::dispatch as pb;
use supervision_reference::{Reference, ReferenceError};

use crate::{
    domain::{Assignment, AssignmentStatus, PoolExpert, Task, TaskStatus},
    error::Error,
    registry::Registry,
    responses::{self, Attempt},
    store::{draws as draw_store, tasks as task_store},
};

pub const JOB: &str = "dispatch-no-response";
pub const JOB_METHOD: &str = "job:dispatch-no-response";

/// The identity the sweep acts under.
pub fn dispatch_caller() -> Caller {
    Caller { subject: "dispatch".into(), role: Role::Service, bureau: None, expert_id: None, acting_for: None }
}

fn shanghai() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// When an assignment notified at `notified_at` for a task whose first session is on `first`
/// stops waiting for an answer.
pub fn response_deadline(
    reference: &Reference,
    notified_at: DateTime<Utc>,
    first: NaiveDate,
) -> Result<DateTime<Utc>, Error> {
    let edition = reference.editions().edition_in_force(first).map_err(ReferenceError::from)?;
    let rules = &edition.dispatch;
    let calendar = reference.calendar();
    let at = |day: NaiveDate| -> DateTime<Utc> {
        day.and_time(rules.decline_cutoff)
            .and_local_timezone(shanghai())
            .single()
            .expect("a fixed offset maps every local time once")
            .with_timezone(&Utc)
    };
    let notified_day = notified_at.with_timezone(&shanghai()).date_naive();
    let answer_by = at(calendar
        .add_working_days(notified_day, i32::try_from(rules.response_working_days).unwrap_or(i32::MAX))
        .map_err(ReferenceError::from)?);
    let before_decline = at(calendar
        .add_working_days(first, -i32::try_from(rules.decline_notice_working_days + 1).unwrap_or(i32::MAX))
        .map_err(ReferenceError::from)?);
    let deadline = if before_decline > notified_at { answer_by.min(before_decline) } else { answer_by };
    // Never later than the start of the first session's day: by then the answer is moot.
    let first_day = first
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_local_timezone(shanghai())
        .single()
        .expect("a fixed offset maps every local time once")
        .with_timezone(&Utc);
    Ok(deadline.min(first_day))
}

/// Whether the sweep may still act on a task in `status`: only while it is being staffed.
fn sweepable(status: TaskStatus) -> bool {
    matches!(status, TaskStatus::Staffing | TaskStatus::Staffed | TaskStatus::Understaffed)
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Assignments that became NO_RESPONSE.
    pub no_response: Vec<String>,
    /// The assignments promoted in their place.
    pub replacements: Vec<String>,
    /// Overdue assignments left for the next pass (the registry or the calendar could not answer,
    /// or refilling failed).
    pub deferred: usize,
}

/// One pass: every NOTIFIED assignment past its response deadline by `clock` becomes NO_RESPONSE
/// and is refilled, each in its own transaction with its audit entry. The registry's pool for a
/// task is read before its transactions; a task whose pool cannot be read waits for the next pass.
pub async fn run_pass(
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    registry: &Registry,
) -> Result<SweepReport, Error> {
    let now = clock.now();
    let caller = dispatch_caller();
    let waiting = {
        let mut conn = db.pool().acquire().await?;
        draw_store::notified_assignments(&mut conn).await?
    };
    let mut report = SweepReport::default();
    let mut tasks: HashMap<String, Task> = HashMap::new();
    let mut pools: HashMap<String, Option<HashMap<String, PoolExpert>>> = HashMap::new();
    for a in waiting {
        let Some(notified_at) = a.notified_at else { continue };
        if !tasks.contains_key(a.task_id.as_str()) {
            let mut conn = db.pool().acquire().await?;
            let Some(task) = task_store::get_task(&mut conn, &a.task_id).await? else { continue };
            tasks.insert(a.task_id.to_string(), task);
        }
        let task = &tasks[a.task_id.as_str()];
        if !sweepable(task.status) {
            continue;
        }
        let Some(first) = task.details.sessions.iter().map(|s| s.date).min() else { continue };
        // Once the first session's day has come the task is under way: nothing waits for an answer.
        if first <= now.with_timezone(&shanghai()).date_naive() {
            continue;
        }
        let deadline = match response_deadline(reference, notified_at, first) {
            Ok(deadline) => deadline,
            Err(err) => {
                tracing::warn!(assignment = %a.id, error = %err, "no response deadline; left for the next pass");
                report.deferred += 1;
                continue;
            }
        };
        if deadline > now {
            continue;
        }
        if !pools.contains_key(a.task_id.as_str()) {
            let pool = match responses::fresh_pool(registry, task, &caller.actor()).await {
                Ok(pool) => Some(pool),
                Err(err) => {
                    tracing::warn!(task = %task.id, error = %err, "the registry's pool is unavailable; next pass");
                    None
                }
            };
            pools.insert(a.task_id.to_string(), pool);
        }
        let Some(fresh) = pools[a.task_id.as_str()].as_ref() else {
            report.deferred += 1;
            continue;
        };
        match expire(db, clock, &caller, task, &a, deadline, fresh).await {
            Ok(Some((expired, replacement))) => {
                report.no_response.push(expired.id.to_string());
                report.replacements.extend(replacement.map(|r| r.id.to_string()));
            }
            Ok(None) => report.deferred += 1,
            Err(err) => {
                // One assignment's failure must not end the pass for every other one.
                tracing::warn!(assignment = %a.id, task = %task.id, error = %supervision_kit::redact(&err.to_string()), "no-response refill failed; next pass");
                report.deferred += 1;
            }
        }
    }
    Ok(report)
}

/// Turns `a` into NO_RESPONSE and refills its place, in one transaction; `None` when the
/// assignment changed meanwhile or concurrent draws kept taking the backups' half-days.
async fn expire(
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    task: &Task,
    waiting: &Assignment,
    deadline: DateTime<Utc>,
    fresh: &HashMap<String, PoolExpert>,
) -> Result<Option<(Assignment, Option<Assignment>)>, Error> {
    let key = format!("{}:no_response", waiting.id);
    let command = Command::new(caller, JOB_METHOD, &key, &pb::GetAssignmentRequest { id: waiting.id.to_string() })
        .map_err(|e| Error::InvalidField { field: "request_id".into(), problem: e.message().to_owned() })?;
    for _ in 0..responses::attempts() {
        // Reads, then writes: a write transaction from the start (SQLite's deferred one would fail
        // with SQLITE_BUSY when another writer committed in between).
        let mut tx = db.begin_write().await?;
        let Some(mut a) = draw_store::get_assignment(&mut tx, &waiting.id).await? else { return Ok(None) };
        if a.status != AssignmentStatus::Notified || a.updated_at != waiting.updated_at {
            return Ok(None);
        }
        let expected = a.updated_at;
        a.status = AssignmentStatus::NoResponse;
        a.updated_at = clock.now();
        let filled = match responses::vacate(&mut tx, clock, task, &mut a, fresh, None).await? {
            Attempt::Again => continue,
            Attempt::Done(filled) => filled,
        };
        if !draw_store::update_assignment(&mut tx, &a, expected).await? {
            return Ok(None);
        }
        responses::restaff(&mut tx, clock, task).await?;
        let change = Change {
            method: command.method,
            request_id: &command.request_id,
            entity_type: "assignment",
            entity_id: a.id.as_str(),
            action: "no_response",
            before: Some(serde_json::json!({ "status": AssignmentStatus::Notified.code() })),
            after: Some(serde_json::json!({
                "status": a.status.code(),
                "response_deadline": supervision_kit::storage::format_instant(deadline),
                "replaced_by": a.replaced_by,
                "order_exhausted": filled.order_exhausted,
            })),
        };
        audit::append(&mut tx, db.backend(), clock, caller, change).await?;
        tx.commit().await?;
        return Ok(Some((a, filled.replacement)));
    }
    Ok(None)
}
