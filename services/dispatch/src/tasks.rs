//! Use cases of tasks: the checks against the reference data and the registry run before the
//! transaction (so nothing is written when they refuse, and no lock is held over a network
//! call); each write is then one transaction with its audit entry.

use chrono::{Datelike, NaiveDate};
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_policy::{Edition, FundSource as PolicyFund};
use supervision_reference::{Reference, ReferenceError};
use tonic::Status;

use crate::{
    domain::{
        Approval, ExceptionKind, FundSource, NewTask, Session, Submitter, Task, TaskException, TaskFilter, TaskId,
        TaskNumber, TaskRefused, TaskStatus, TaskVisibility, Visibility, task::half_day_problems,
    },
    error::Error,
    registry::Institution,
    store::{self, tasks as task_store},
};

/// What the edition in force gives a new task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub edition_number: u32,
    pub team_size: u32,
    pub backup_count: u32,
    /// Whether a county bureau may dispatch only within its county (D13).
    pub own_county_only: bool,
}

/// Checks a new task against the policy editions and the working-day calendar as of `today`
/// (Asia/Shanghai): an edition in force on every session date (D6), each session inside its
/// half-day (D2), every session date in a year the calendar covers (D3), the fund and the team
/// the edition allows (D7), and the edition's lead time before the first session unless urgent.
pub fn plan(reference: &Reference, today: NaiveDate, new: &NewTask) -> Result<Planned, Status> {
    let editions = reference.editions();
    let mut in_force: Vec<&Edition> = Vec::with_capacity(new.sessions.len());
    for s in &new.sessions {
        in_force.push(editions.edition_in_force(s.date).map_err(|e| Status::from(ReferenceError::from(e)))?);
    }
    let mut v = FieldViolations::new();
    for (i, s) in new.sessions.iter().enumerate() {
        if s.date < today {
            v.add(format!("sessions[{i}].date"), format!("{} is in the past", s.date));
        }
    }
    let split_of = |date: NaiveDate| {
        let i = new.sessions.iter().position(|s| s.date == date).unwrap_or_default();
        in_force[i].sessions.half_day_split
    };
    for (field, problem) in half_day_problems(&new.sessions, split_of) {
        v.add(field, problem);
    }
    let edition = in_force[0];
    let team_size = new.team_size.unwrap_or(edition.dispatch.team_size);
    let backup_count = new.backup_count.unwrap_or(edition.dispatch.backup_count);
    let small_team = new.exceptions.iter().position(|e| e.kind == ExceptionKind::SmallTeam);
    match (team_size < 2, small_team) {
        (true, None) => v.add("team_size", "a team of fewer than 2 needs a SMALL_TEAM exception (D7)"),
        (false, Some(i)) => v.add(format!("exceptions[{i}].kind"), format!("a team of {team_size} is not small")),
        _ => {}
    }
    v.check()?;

    let calendar = reference.calendar();
    for s in &new.sessions {
        calendar.day(s.date).map_err(|e| Status::from(ReferenceError::from(e)))?;
    }
    let fund = match new.fund_source {
        FundSource::ProvincialSkillTraining => PolicyFund::ProvEmploymentFundSkillTraining,
        FundSource::CityCountyEmployment => PolicyFund::CityCountyEmploymentFund,
    };
    if !edition.fees.fund_sources.contains(&fund) {
        return Err(
            Error::from(TaskRefused::FundNotAllowed { fund: new.fund_source.code(), edition: edition.number }).into()
        );
    }
    if new.urgent_reason.is_none() {
        let lead = edition.dispatch.min_lead_working_days;
        let earliest = calendar
            .add_working_days(today, i32::try_from(lead).unwrap_or(i32::MAX))
            .map_err(|e| Status::from(ReferenceError::from(e)))?;
        let first = new.first_session_date();
        if first < earliest {
            return Err(Error::from(TaskRefused::TooShortNotice { first, lead, earliest }).into());
        }
    }
    Ok(Planned {
        edition_number: edition.number,
        team_size,
        backup_count,
        own_county_only: edition.dispatch.county_dispatch_own_county_only,
    })
}

/// Checks the submission a COMPLAINT task comes from: it exists and the caller may see it. When
/// an expert made it, that expert is the task's reporter (excluded from the draw, D14): filled in
/// when the request left it empty, and a different reporter is refused.
pub async fn resolve_origin(db: &Db, caller: &Caller, new: &mut NewTask) -> Result<(), Status> {
    if new.origin_submission_id.is_empty() {
        return Ok(());
    }
    let id = crate::convert::submission_id(&new.origin_submission_id, "origin_submission_id")?;
    let submission = store::get_submission(db.pool(), &id)
        .await
        .map_err(Error::from)?
        .filter(|s| Visibility::of(caller).allows(s))
        .ok_or_else(|| {
            supervision_kit::error::invalid_field("origin_submission_id", "names no submission you can see")
        })?;
    if let Submitter::Expert { expert_id, .. } = submission.details.submitter {
        if new.reporter_expert_id.is_empty() {
            new.reporter_expert_id = expert_id;
        } else if new.reporter_expert_id != expert_id {
            return Err(supervision_kit::error::invalid_field(
                "reporter_expert_id",
                "is not the expert who made the origin submission",
            ));
        }
    }
    Ok(())
}

/// Checks the institution the registry returned: open, and for a county bureau in its own
/// county unless a CROSS_COUNTY exception is requested (the city approves it before any draw).
pub fn check_institution(new: &NewTask, planned: &Planned, institution: &Institution) -> Result<(), TaskRefused> {
    if !institution.active {
        return Err(TaskRefused::InstitutionClosed(institution.id.clone()));
    }
    let outside = new.bureau.is_county() && planned.own_county_only && institution.county != new.bureau;
    match (outside, new.requests(ExceptionKind::CrossCounty)) {
        (true, false) => Err(TaskRefused::CrossCountyWithoutException {
            institution_id: institution.id.clone(),
            institution_county: institution.county,
            bureau: new.bureau,
        }),
        (false, true) => Err(TaskRefused::CrossCountyNotNeeded),
        _ => Ok(()),
    }
}

/// Records a checked task inside `tx`, numbering it within its bureau and year.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs, each checked before")]
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    mut details: NewTask,
    planned: Planned,
    institution: &Institution,
) -> Result<Task, Error> {
    details.sessions.sort_by_key(Session::slot);
    let now = clock.now();
    let year = supervision_reference::shanghai_today(clock).year();
    let sequence = task_store::next_task_sequence(tx, details.bureau, year).await?;
    let task = Task {
        id: TaskId::generate(),
        number: TaskNumber { bureau: details.bureau, year, sequence },
        institution_county: institution.county,
        team_size: planned.team_size,
        backup_count: planned.backup_count,
        details,
        status: TaskStatus::Open,
        cancel_reason: String::new(),
        accepted_count: 0,
        edition_number: planned.edition_number,
        created_by: caller.actor(),
        created_at: now,
        updated_at: now,
        revision: 1,
    };
    task_store::insert_task(tx, &task).await?;
    let d = &task.details;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "task",
        entity_id: task.id.as_str(),
        action: "create",
        before: None,
        after: Some(serde_json::json!({
            "task_number": task.number.to_string(),
            "dispatching_bureau": d.bureau.division_code(),
            "institution_id": d.institution_id,
            "institution_county": task.institution_county.division_code(),
            "origin": d.origin.code(),
            "sessions": d.sessions.iter().map(|s| format!("{} {}", s.date, s.half_day.code())).collect::<Vec<_>>(),
            "team_size": task.team_size,
            "backup_count": task.backup_count,
            "fund_source": d.fund_source.code(),
            "urgent": d.urgent_reason.is_some(),
            "exceptions": d.exceptions.iter().map(|e| e.kind.code()).collect::<Vec<_>>(),
            "edition_number": task.edition_number,
            "status": task.status.code(),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(task)
}

/// Reads a task the caller may see; one they may not see is "not found".
pub async fn get(db: &Db, id: &TaskId, visibility: TaskVisibility) -> Result<Task, Error> {
    let mut conn = db.pool().acquire().await?;
    task_store::get_task(&mut conn, id)
        .await?
        .filter(|t| visibility.allows(t))
        .ok_or_else(|| Error::TaskNotFound(id.to_string()))
}

/// A task as an EXPERT reads it: only a task they hold or held an assignment on, and without
/// what is the bureau's alone (who reported the institution, who created the task, the city's
/// exception decisions); any other task is NOT_FOUND, as if it did not exist.
pub async fn get_for_expert(db: &Db, id: &TaskId, expert_id: &str) -> Result<Task, Error> {
    let mut conn = db.pool().acquire().await?;
    let assigned = !expert_id.is_empty() && crate::store::draws::expert_assigned(&mut conn, id, expert_id).await?;
    let mut task = task_store::get_task(&mut conn, id)
        .await?
        .filter(|_| assigned)
        .ok_or_else(|| Error::TaskNotFound(id.to_string()))?;
    task.details.reporter_expert_id = String::new();
    task.details.exceptions.clear();
    task.created_by = supervision_kit::auth::Actor { subject: String::new(), role: String::new(), bureau: None };
    Ok(task)
}

pub async fn list(db: &Db, filter: &TaskFilter, page: &Page) -> Result<(Vec<Task>, Option<String>), Error> {
    let mut conn = db.pool().acquire().await?;
    let items = task_store::list_tasks(&mut conn, filter, &page.probe()).await?;
    Ok(page.finish(items, task_store::page_token))
}

/// Reads a task inside `tx` for a change by `caller`, who must be able to see it.
async fn for_change(tx: &mut Transaction<'static, Any>, caller: &Caller, id: &TaskId) -> Result<Task, Error> {
    task_store::get_task(tx, id)
        .await?
        .filter(|t| TaskVisibility::of(caller).allows(t))
        .ok_or_else(|| Error::TaskNotFound(id.to_string()))
}

/// Saves `after` over `before` (revision checked) with its audit entry.
#[allow(clippy::too_many_arguments, reason = "the change and its audit context")]
async fn save(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    action: &str,
    before: serde_json::Value,
    after: &Task,
    after_json: serde_json::Value,
) -> Result<(), Error> {
    if !task_store::update_task_state(tx, after, after.revision - 1).await? {
        return Err(Error::TaskChanged(after.id.to_string()));
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "task",
        entity_id: after.id.as_str(),
        action,
        before: Some(before),
        after: Some(after_json),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// Cancels a task before its first session, with a reason (DOMAIN.md 6.4). Assignments do not
/// exist before the draw; when they do, they are cancelled here without penalty.
pub async fn cancel(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &TaskId,
    reason: String,
) -> Result<Task, Error> {
    let mut task = for_change(tx, caller, id).await?;
    caller.require_bureau(task.bureau()).map_err(|_| Error::TaskNotFound(id.to_string()))?;
    if !task.status.may_cancel() {
        return Err(TaskRefused::NotCancellable { number: task.number.to_string(), status: task.status.code() }.into());
    }
    let before = serde_json::json!({ "status": task.status.code() });
    task.status = TaskStatus::Cancelled;
    task.cancel_reason = reason;
    task.revision += 1;
    task.updated_at = clock.now();
    let after = serde_json::json!({ "status": task.status.code(), "cancel_reason": task.cancel_reason });
    save(tx, db, clock, caller, command, "cancel", before, &task, after).await?;
    Ok(task)
}

/// Records the city bureau's approval of an exception, adding it when the task had not asked.
#[allow(clippy::too_many_arguments, reason = "the approval's fields")]
pub async fn approve_exception(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &TaskId,
    kind: ExceptionKind,
    reason: String,
    reduced_team_size: u32,
) -> Result<Task, Error> {
    let mut task = for_change(tx, caller, id).await?;
    if task.status == TaskStatus::Cancelled {
        return Err(TaskRefused::Cancelled { number: task.number.to_string() }.into());
    }
    if kind == ExceptionKind::ReducedTeam && reduced_team_size >= task.team_size {
        return Err(Error::InvalidField {
            field: "reduced_team_size".into(),
            problem: format!("must be below the task's team of {}", task.team_size),
        });
    }
    let now = clock.now();
    let approval = Approval { by: caller.actor(), at: now, reason: reason.clone() };
    let exception = match task.details.exceptions.iter_mut().find(|e| e.kind == kind) {
        Some(e) if e.approval.is_some() => {
            return Err(TaskRefused::AlreadyApproved { number: task.number.to_string(), kind: kind.code() }.into());
        }
        Some(e) => {
            e.approval = Some(approval);
            if kind == ExceptionKind::ReducedTeam {
                e.reduced_team_size = reduced_team_size;
            }
            e.clone()
        }
        None => {
            let e = TaskException {
                kind,
                reason,
                reduced_team_size: if kind == ExceptionKind::ReducedTeam { reduced_team_size } else { 0 },
                approval: Some(approval),
            };
            task.details.exceptions.push(e.clone());
            task.details.exceptions.sort_by_key(|e| e.kind.code());
            e
        }
    };
    task_store::upsert_exception(tx, &task.id, &exception).await?;
    task.revision += 1;
    task.updated_at = now;
    let after = serde_json::json!({
        "approved_exception": kind.code(),
        "reduced_team_size": exception.reduced_team_size,
    });
    save(tx, db, clock, caller, command, "approve_exception", serde_json::json!({}), &task, after).await?;
    Ok(task)
}

/// Changes an OPEN task's fields before any draw is prepared for it (UpdateTask). `details` and
/// `planned` were checked as a creation is (editions, calendar, lead time, D13 county scope)
/// before the transaction; here the task is re-read, its revision, state and draws checked.
#[allow(clippy::too_many_arguments, reason = "the change and its audit context")]
pub async fn update(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    current: &Task,
    expected_revision: i64,
    mut details: NewTask,
    planned: Planned,
) -> Result<Task, Error> {
    let mut task = for_change(tx, caller, &current.id).await?;
    caller.require_bureau(task.bureau()).map_err(|_| Error::TaskNotFound(current.id.to_string()))?;
    if task.revision != current.revision || (expected_revision != 0 && task.revision != expected_revision) {
        return Err(Error::TaskChanged(task.id.to_string()));
    }
    if task.status != TaskStatus::Open {
        return Err(TaskRefused::NotEditable { number: task.number.to_string(), status: task.status.code() }.into());
    }
    let draws = crate::store::draws::task_draws(tx, &task.id).await?;
    if !draws.is_empty() {
        return Err(TaskRefused::AlreadyDrawn { number: task.number.to_string(), draws: draws.len() }.into());
    }
    details.sessions.sort_by_key(Session::slot);
    let before = describe(&task);
    task.details = details;
    task.team_size = planned.team_size;
    task.backup_count = planned.backup_count;
    task.edition_number = planned.edition_number;
    task.revision += 1;
    task.updated_at = clock.now();
    if !task_store::update_task_details(tx, &task, task.revision - 1).await? {
        return Err(Error::TaskChanged(task.id.to_string()));
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "task",
        entity_id: task.id.as_str(),
        action: "update",
        before: Some(before),
        after: Some(describe(&task)),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(task)
}

/// The fields UpdateTask may change, for its audit entry.
fn describe(task: &Task) -> serde_json::Value {
    let d = &task.details;
    serde_json::json!({
        "title": d.title,
        "activity": [d.activity.subject.code(), d.activity.kind.code(), d.activity.reference.as_str()],
        "mode": d.mode.code(),
        "sessions": d.sessions.iter().map(|s| format!("{} {}", s.date, s.half_day.code())).collect::<Vec<_>>(),
        "team_size": task.team_size,
        "backup_count": task.backup_count,
        "specialties": d.specialties.iter().map(|s| s.as_str().to_owned()).collect::<Vec<_>>(),
        "fund_source": d.fund_source.code(),
        "urgent_reason": d.urgent_reason,
        "exceptions": d.exceptions.iter().map(|e| (e.kind.code(), e.approval.is_some())).collect::<Vec<_>>(),
        "edition_number": task.edition_number,
    })
}
