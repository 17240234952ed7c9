//! Use cases of answers and vacancies (D3, D4, D16, D17; ARCHITECTURE.md "The draw" step 5).
//!
//! An expert, or staff on the expert's behalf with the channel and the time received, accepts,
//! declines or recuses a NOTIFIED assignment (an ACCEPTED one may still be declined or recused).
//! A decline is on time, late or exempt by the D3 deadline of the task's first session and the
//! received time: a late one writes an incident to the registry through the outbox (D4: an
//! incident, never a termination). A recusal writes the declared relation to the registry.
//!
//! A vacancy rebuilds the draw's fill from its assignments and calls `Fill::vacate` with the facts
//! as they stand: bookings read in the transaction, status and term from the registry's pool as
//! asked before it opened. The promoted backup is booked under the bookings' unique index; a
//! booking lost to a concurrent draw rolls the attempt back and the caller tries again. The
//! promotion, the continued walk and its skips are appended to the draw's walk (stages PROMOTION
//! and CONTINUATION), with the new `next_position`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Any, Transaction};
use supervision_draw::{CandidateFacts, EmployerKey, ExpertId, Fill, Placement, SameEmployerRule, Stage};
use supervision_kit::{
    Caller, Db, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    outbox::{self, Delivery},
    storage::is_unique_violation,
    vocab::OnBehalf,
};
use supervision_proto::{common::RelationType, registry as rpb};
use supervision_reference::Reference;
use tonic::Code;

use crate::{
    domain::{
        Answer, Assignment, AssignmentId, AssignmentRole, AssignmentStatus, Draw, Outcome, Pick, PoolExpert,
        ResponseKind, Task, TaskStatus, draw::UntrainedList,
    },
    draws::{self, order_of, skip_code, slots, stage_code, team_of_draw},
    error::Error,
    store::{
        draws::{self as draw_store, BOOKING_COLUMNS, BOOKING_INDEX, DRAW_EXPERT_COLUMNS, DRAW_EXPERT_KEY},
        tasks as task_store,
    },
};

pub const RECORD_INCIDENT: &str = "/supervision.registry.v1.RegistryService/RecordIncident";
pub const RECORD_CONFLICT: &str = "/supervision.registry.v1.RegistryService/RecordConflict";

/// The cancel reason of a backup dropped because it was no longer free or active when promoted.
const DROPPED: &str = "no longer free or active when promoted";

/// An answer as the request gives it.
#[derive(Debug, Clone)]
pub struct NewAnswer {
    pub kind: ResponseKind,
    /// For a decline: the contract's DeclineReason name.
    pub decline_reason: String,
    /// For a recusal.
    pub relation: Option<RelationType>,
    pub detail: String,
    pub on_behalf: Option<OnBehalf>,
}

/// Why a place fell vacant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VacancyReason {
    Declined,
    Recused,
    StatusChange,
}

/// What one attempt did.
#[derive(Debug)]
pub enum Attempt<T> {
    Done(T),
    /// A promoted expert's half-day went to a concurrent draw: roll back and try again.
    Again,
}

/// The filled vacancy: the assignment that took the place, if any, and the backups added.
#[derive(Debug, Default)]
pub struct Filled {
    pub replacement: Option<Assignment>,
    pub topped_up: Vec<Assignment>,
    pub order_exhausted: bool,
}

fn refused(code: Code, reason: &'static str, message: impl Into<String>) -> Error {
    Error::draw_refused(code, reason, message)
}

/// Writes `a` over the row last read at `expected`, or refuses with ABORTED when another request
/// changed it since (the caller reads it again).
pub(crate) async fn save_assignment(
    conn: &mut sqlx::AnyConnection,
    a: &crate::domain::Assignment,
    expected: chrono::DateTime<chrono::Utc>,
) -> Result<(), Error> {
    if draw_store::update_assignment(conn, a, expected).await? {
        Ok(())
    } else {
        Err(refused(Code::Aborted, "ASSIGNMENT_CHANGED", format!("assignment {} changed; read it again", a.id)))
    }
}

/// The assignment and its task, visible to `caller` as the one who may answer for it: the expert
/// themself (no `on_behalf`), or staff of the dispatching bureau with `on_behalf` (D16).
pub async fn answerable(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: &AssignmentId,
    on_behalf: bool,
) -> Result<(Assignment, Task), Error> {
    let not_found = || Error::AssignmentNotFound(id.to_string());
    let a = draw_store::get_assignment(conn, id).await?.ok_or_else(not_found)?;
    let task = task_store::get_task(conn, &a.task_id).await?.ok_or_else(not_found)?;
    if caller.role == Role::Expert {
        if caller.expert_id.as_deref() != Some(a.expert_id.as_str()) {
            return Err(refused(
                Code::PermissionDenied,
                "NOT_THEIR_OWN",
                "an expert answers only their own assignment",
            ));
        }
        if on_behalf {
            return Err(refused(
                Code::InvalidArgument,
                "EXPERT_ON_BEHALF",
                "an expert answers for themself; on_behalf is for staff",
            ));
        }
    } else {
        caller.require_bureau(task.bureau()).map_err(|_| not_found())?;
        if !on_behalf {
            return Err(refused(
                Code::InvalidArgument,
                "ON_BEHALF_REQUIRED",
                "staff enter an answer for the expert with on_behalf (channel and time received, D16)",
            ));
        }
    }
    Ok((a, task))
}

/// An assignment as `caller` may read it: an expert their own, staff within their visibility.
pub async fn visible(db: &Db, caller: &Caller, id: &AssignmentId) -> Result<Assignment, Error> {
    let not_found = || Error::AssignmentNotFound(id.to_string());
    let mut conn = db.pool().acquire().await?;
    let a = draw_store::get_assignment(&mut conn, id).await?.ok_or_else(not_found)?;
    if caller.role == Role::Expert {
        return if caller.expert_id.as_deref() == Some(a.expert_id.as_str()) { Ok(a) } else { Err(not_found()) };
    }
    let task = task_store::get_task(&mut conn, &a.task_id).await?.ok_or_else(not_found)?;
    if crate::domain::TaskVisibility::of(caller).allows(&task) { Ok(a) } else { Err(not_found()) }
}

/// The checks before the transaction: the caller may answer, and the assignment is open to this
/// answer.
pub async fn to_answer(db: &Db, caller: &Caller, id: &AssignmentId, answer: &NewAnswer) -> Result<Task, Error> {
    let mut conn = db.pool().acquire().await?;
    let (a, task) = answerable(&mut conn, caller, id, answer.on_behalf.is_some()).await?;
    check_open(&a, answer.kind)?;
    Ok(task)
}

fn check_open(a: &Assignment, kind: ResponseKind) -> Result<(), Error> {
    let open = match a.status {
        AssignmentStatus::Notified => true,
        AssignmentStatus::Accepted => kind != ResponseKind::Accept,
        _ => false,
    };
    if open {
        return Ok(());
    }
    Err(refused(
        Code::FailedPrecondition,
        "ASSIGNMENT_NOT_OPEN",
        format!("assignment {} is {}; it cannot be answered with {}", a.id, a.status.code(), kind.code()),
    ))
}

/// The task's first session date.
fn first_session(task: &Task) -> Option<NaiveDate> {
    task.details.sessions.iter().map(|s| s.date).min()
}

/// Records the answer in `tx`, with its outbox rows, the refill and the audit entry.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn respond(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    id: &AssignmentId,
    answer: &NewAnswer,
    fresh: &HashMap<String, PoolExpert>,
) -> Result<Attempt<(Assignment, Option<Assignment>)>, Error> {
    let (mut a, task) = answerable(tx, caller, id, answer.on_behalf.is_some()).await?;
    check_open(&a, answer.kind)?;
    let before = a.status;
    let now = clock.now();
    let received = answer.on_behalf.as_ref().map_or(now, |o| o.received_at);
    a.response = Some(Answer {
        kind: answer.kind.code().to_owned(),
        decline_reason: answer.decline_reason.clone(),
        relation: answer.relation.map(|r| r.as_str_name().to_owned()).unwrap_or_default(),
        detail: answer.detail.clone(),
        received_at: received,
        on_behalf_channel: answer.on_behalf.as_ref().map(|o| o.channel.clone()).unwrap_or_default(),
        on_behalf_note: answer.on_behalf.as_ref().map(|o| o.note.clone()).unwrap_or_default(),
        entered_by: caller.actor(),
    });
    let expected = a.updated_at;
    a.updated_at = now;
    let mut vacancy = None;
    match answer.kind {
        ResponseKind::Accept => {
            a.status = AssignmentStatus::Accepted;
            crate::letters::issue(tx, &task, &a, now).await?;
        }
        ResponseKind::Decline => {
            let first = first_session(&task).ok_or_else(|| Error::TaskNotFound(task.id.to_string()))?;
            let deadline = reference.decline_deadline(first)?.deadline.with_timezone(&Utc);
            a.decline_deadline = Some(deadline);
            a.status = if a.notified_at.is_some_and(|n| n > deadline) {
                AssignmentStatus::DeclinedExempt
            } else if received > deadline {
                AssignmentStatus::DeclinedLate
            } else {
                AssignmentStatus::DeclinedOnTime
            };
            if a.status == AssignmentStatus::DeclinedLate {
                enqueue_late_decline(tx, clock, caller, &a, &task, received, deadline).await?;
            }
            vacancy = Some(VacancyReason::Declined);
        }
        ResponseKind::Recuse => {
            a.status = AssignmentStatus::Recused;
            let request = rpb::RecordConflictRequest {
                request_id: a.id.to_string(),
                assignment_id: a.id.to_string(),
                task_id: task.id.to_string(),
                expert_id: a.expert_id.clone(),
                institution_id: task.details.institution_id.clone(),
                relation_type: answer.relation.map_or(0, |r| r as i32),
                detail: answer.detail.clone(),
                declared_time: Some(supervision_kit::convert::timestamp(received)),
            };
            let delivery = Delivery {
                destination: "registry",
                method: RECORD_CONFLICT,
                idempotency_key: a.id.as_str(),
                actor: &caller.actor(),
            };
            outbox::enqueue(tx, clock, delivery, &request).await?;
            vacancy = Some(VacancyReason::Recused);
        }
    }
    let filled = match vacancy {
        None => Filled::default(),
        Some(_) => match vacate(tx, clock, &task, &mut a, fresh, None).await? {
            Attempt::Again => return Ok(Attempt::Again),
            Attempt::Done(filled) => filled,
        },
    };
    save_assignment(tx, &a, expected).await?;
    restaff(tx, clock, &task).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "assignment",
        entity_id: a.id.as_str(),
        action: "respond",
        before: Some(serde_json::json!({ "status": before.code() })),
        after: Some(serde_json::json!({
            "status": a.status.code(),
            "response": answer.kind.code(),
            "received_at": supervision_kit::storage::format_instant(received),
            "on_behalf": answer.on_behalf.as_ref().map(|o| o.channel.clone()),
            "replaced_by": a.replaced_by,
            "topped_up": filled.topped_up.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(),
            "order_exhausted": filled.order_exhausted,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(Attempt::Done((a, filled.replacement)))
}

async fn enqueue_late_decline(
    tx: &mut Transaction<'static, Any>,
    clock: &SharedClock,
    caller: &Caller,
    a: &Assignment,
    task: &Task,
    received: DateTime<Utc>,
    deadline: DateTime<Utc>,
) -> Result<(), Error> {
    let key = format!("{}:late_decline", a.id);
    let request = rpb::RecordIncidentRequest {
        request_id: key.clone(),
        expert_id: a.expert_id.clone(),
        kind: rpb::IncidentKind::LateDecline as i32,
        rule: rpb::DisciplineRule::Notice as i32,
        source: rpb::IncidentSource::Dispatch as i32,
        assignment_id: a.id.to_string(),
        task_id: task.id.to_string(),
        reporting_bureau: task.bureau().to_proto() as i32,
        occur_time: Some(supervision_kit::convert::timestamp(received)),
        description: format!(
            "declined task {} after the D3 deadline {}",
            task.number,
            supervision_kit::storage::format_instant(deadline)
        ),
        evidence: None,
    };
    let delivery =
        Delivery { destination: "registry", method: RECORD_INCIDENT, idempotency_key: &key, actor: &caller.actor() };
    outbox::enqueue(tx, clock, delivery, &request).await?;
    Ok(())
}

fn placement(a: &Assignment, fresh: &HashMap<String, PoolExpert>) -> Result<Placement, Error> {
    Ok(Placement {
        id: expert_id(&a.expert_id)?,
        position: a.position.saturating_sub(1),
        stage: Stage::Walk,
        employer: employer(fresh, &a.expert_id),
        shares_employer_with: None,
    })
}

fn expert_id(id: &str) -> Result<ExpertId, Error> {
    ExpertId::parse(id).map_err(|e| {
        Error::Store(crate::store::StoreError::Corrupt { id: id.to_owned(), problem: format!("expert id: {e}") })
    })
}

fn employer(fresh: &HashMap<String, PoolExpert>, id: &str) -> Option<EmployerKey> {
    fresh.get(id).filter(|e| !e.employer_key.is_empty()).map(|e| EmployerKey::new(e.employer_key.clone()))
}

/// The draw's fill as its assignments stand, with `vacated` still holding its place.
fn rebuild(
    draw: &Draw,
    order_len: usize,
    holders: &[&Assignment],
    fresh: &HashMap<String, PoolExpert>,
) -> Result<Fill, Error> {
    let mut primaries = Vec::new();
    let mut backups = Vec::new();
    for a in holders {
        match a.role {
            AssignmentRole::Primary => primaries.push(placement(a, fresh)?),
            AssignmentRole::Backup => backups.push(placement(a, fresh)?),
        }
    }
    backups.sort_by_key(|p| p.position);
    Ok(Fill {
        team: team_of_draw(draw),
        rule: if draw.relaxations.is_empty() { SameEmployerRule::Enforced } else { SameEmployerRule::Relaxed },
        primaries,
        backups,
        skips: Vec::new(),
        relaxations: Vec::new(),
        vacated: Vec::new(),
        next_position: draw.next_position,
        order_len,
    })
}

/// `a` (already given its new status) leaves its place: its bookings are freed, the first backup
/// still free and active is promoted and booked, the backups are topped up by continuing the walk,
/// and the draw records it. `leaving` is an expert known to be inactive whatever the pool says.
pub async fn vacate(
    tx: &mut Transaction<'static, Any>,
    clock: &SharedClock,
    task: &Task,
    a: &mut Assignment,
    fresh: &HashMap<String, PoolExpert>,
    leaving: Option<&str>,
) -> Result<Attempt<Filled>, Error> {
    draw_store::delete_bookings(tx, &a.id).await?;
    let mut draw =
        draw_store::get_draw(tx, &a.draw_id).await?.ok_or_else(|| Error::DrawNotFound(a.draw_id.to_string()))?;
    let order = order_of(tx, &draw).await?;
    let untrained_ids = draw_store::untrained(tx, &draw.id).await?;
    let untrained = UntrainedList::of(&untrained_ids);
    let read_next = draw.next_position;
    let all = draw_store::draw_assignments(tx, &draw.id).await?;
    let holders: Vec<&Assignment> = all.iter().filter(|h| h.status.holds_place() || h.id == a.id).collect();
    let mut fill = rebuild(&draw, order.len(), &holders, fresh)?;
    let (task_slots, dates) = slots(task);
    let booked = draw_store::booked_experts(tx, &task_slots).await?;
    let vacated_was_primary = a.role == AssignmentRole::Primary;
    let facts = |id: &ExpertId| {
        let e = fresh.get(id.as_str());
        CandidateFacts {
            free_on_every_session: !booked.contains(id.as_str()),
            active: leaving != Some(id.as_str()) && e.is_some_and(|e| e.active_through(&dates) && e.in_term(&dates)),
            employer: employer(fresh, id.as_str()),
        }
    };
    let vacancy = fill.vacate(&order, &expert_id(&a.expert_id)?, facts).map_err(|e| {
        Error::Store(crate::store::StoreError::Corrupt { id: draw.id.to_string(), problem: e.to_string() })
    })?;
    let now = clock.now();
    // The vacancy, its promotion and its top-ups share one instant (ListReplacements pairs them).
    a.updated_at = now;
    let by_expert: HashMap<&str, &Assignment> = all.iter().map(|h| (h.expert_id.as_str(), h)).collect();
    let mut filled = Filled { order_exhausted: fill.order_exhausted(), ..Filled::default() };

    // Backups dropped at promotion (no longer free or active) give up their reserve place.
    let dropped: HashSet<&str> =
        vacancy.skips.iter().filter(|s| s.stage == Stage::Promotion).map(|s| s.id.as_str()).collect();
    for id in &dropped {
        if let Some(held) = by_expert.get(id) {
            let mut held = (*held).clone();
            let expected = held.updated_at;
            held.status = AssignmentStatus::Cancelled;
            held.cancel_reason = DROPPED.into();
            held.updated_at = now;
            if !draw_store::update_assignment(tx, &held, expected).await? {
                // A concurrent vacancy changed that backup meanwhile: start over from fresh reads.
                return Ok(Attempt::Again);
            }
        }
    }

    if let Some(p) = &vacancy.promoted {
        let (promoted, stage) = match by_expert.get(p.id.as_str()) {
            Some(backup) if backup.status == AssignmentStatus::Reserved => {
                let mut promoted = (*backup).clone();
                let expected = promoted.updated_at;
                promoted.role = AssignmentRole::Primary;
                promoted.status = AssignmentStatus::Notified;
                promoted.notified_at = Some(now);
                promoted.replaces = a.id.to_string();
                promoted.updated_at = now;
                if !draw_store::update_assignment(tx, &promoted, expected).await? {
                    return Ok(Attempt::Again);
                }
                (promoted, Stage::Promotion)
            }
            _ => {
                let trained = fresh.get(p.id.as_str()).is_some_and(|e| e.trained);
                let new = Assignment::new(
                    a.task_id.clone(),
                    draw.id.clone(),
                    p.id.as_str().to_owned(),
                    p.position + 1,
                    AssignmentRole::Primary,
                    trained,
                    a.id.to_string(),
                    now,
                );
                if !inserted(tx, &new).await? {
                    return Ok(Attempt::Again);
                }
                (new, p.stage)
            }
        };
        for (date, half_day) in &task_slots {
            if let Err(err) = draw_store::insert_booking(tx, &promoted, *date, *half_day).await {
                if is_unique_violation(&err, BOOKING_INDEX, BOOKING_COLUMNS) {
                    tracing::info!("a promoted expert's half-day went to a concurrent draw; trying again");
                    return Ok(Attempt::Again);
                }
                return Err(err.into());
            }
        }
        draw.walk.push(pick(p.position, &promoted, Outcome::Primary, stage, now, &untrained));
        a.replaced_by = promoted.id.to_string();
        filled.replacement = Some(promoted);
    } else if vacated_was_primary {
        // This draw's order and reserve are spent. A later draw of the task (a supplementary one)
        // may still hold backups: its first one free and active takes the place, so the vacancy
        // is not left waiting for a supplementary draw that its exhausted-order rule refuses.
        let mut later: Vec<Draw> = draw_store::task_draws(tx, &task.id)
            .await?
            .into_iter()
            .filter(|d| d.id != draw.id && d.status == crate::domain::DrawStatus::Executed)
            .collect();
        later.sort_by_key(|d| std::cmp::Reverse(d.executed_at));
        'draws: for other in &later {
            let mut reserve: Vec<Assignment> = draw_store::draw_assignments(tx, &other.id)
                .await?
                .into_iter()
                .filter(|b| b.role == AssignmentRole::Backup && b.status == AssignmentStatus::Reserved)
                .collect();
            reserve.sort_by_key(|b| b.position);
            for backup in reserve {
                let now_facts = facts(&expert_id(&backup.expert_id)?);
                if !(now_facts.free_on_every_session && now_facts.active) {
                    continue;
                }
                let mut promoted = backup;
                let expected = promoted.updated_at;
                promoted.role = AssignmentRole::Primary;
                promoted.status = AssignmentStatus::Notified;
                promoted.notified_at = Some(now);
                promoted.replaces = a.id.to_string();
                promoted.updated_at = now;
                if !draw_store::update_assignment(tx, &promoted, expected).await? {
                    return Ok(Attempt::Again);
                }
                for (date, half_day) in &task_slots {
                    if let Err(err) = draw_store::insert_booking(tx, &promoted, *date, *half_day).await {
                        if is_unique_violation(&err, BOOKING_INDEX, BOOKING_COLUMNS) {
                            tracing::info!("a promoted expert's half-day went to a concurrent draw; trying again");
                            return Ok(Attempt::Again);
                        }
                        return Err(err.into());
                    }
                }
                a.replaced_by = promoted.id.to_string();
                filled.replacement = Some(promoted);
                break 'draws;
            }
        }
    }
    for p in &vacancy.added_backups {
        let trained = fresh.get(p.id.as_str()).is_some_and(|e| e.trained);
        let new = Assignment::new(
            a.task_id.clone(),
            draw.id.clone(),
            p.id.as_str().to_owned(),
            p.position + 1,
            AssignmentRole::Backup,
            trained,
            String::new(),
            now,
        );
        if !inserted(tx, &new).await? {
            return Ok(Attempt::Again);
        }
        draw.walk.push(pick(p.position, &new, Outcome::Backup, p.stage, now, &untrained));
        filled.topped_up.push(new);
    }
    for s in &vacancy.skips {
        draw.walk.push(Pick {
            position: s.position,
            expert_id: s.id.as_str().to_owned(),
            outcome: Outcome::Skipped,
            reasons: s.reasons.iter().map(skip_code).map(str::to_owned).collect(),
            stage: stage_code(s.stage).to_owned(),
            teammate: String::new(),
            assignment_id: String::new(),
            at: now,
            untrained: Some(untrained.contains(s.id.as_str())),
        });
    }
    draw.next_position = fill.next_position;
    if draw.kind != crate::domain::DrawKind::Designation {
        draw.order = draws::order_head(&order, fill.next_position);
    }
    if !draw_store::record_vacancy(tx, &draw, read_next).await? {
        let now_executed =
            draw_store::get_draw(tx, &draw.id).await?.is_some_and(|d| d.status == crate::domain::DrawStatus::Executed);
        if now_executed {
            // Another vacancy on this draw moved its walk meanwhile: recompute from fresh reads.
            tracing::info!(draw = %draw.id, "a concurrent vacancy moved the draw's walk; trying again");
            return Ok(Attempt::Again);
        }
        return Err(refused(
            Code::FailedPrecondition,
            "DRAW_NOT_EXECUTED",
            format!("draw {} is not executed", draw.id),
        ));
    }
    if vacated_was_primary && filled.replacement.is_none() {
        tracing::info!(task = %task.id, "the order is exhausted: a supplementary draw is needed");
    }
    crate::notify::vacated(tx, clock, task, a, filled.replacement.as_ref(), vacated_was_primary).await?;
    Ok(Attempt::Done(filled))
}

/// Inserts `new`; `false` when a concurrent vacancy on the same draw already placed its expert
/// (UNIQUE (draw_id, expert_id)), which the caller answers by trying again from fresh reads.
async fn inserted(tx: &mut Transaction<'static, Any>, new: &Assignment) -> Result<bool, Error> {
    match draw_store::insert_assignment(tx, new).await {
        Ok(()) => Ok(true),
        Err(err) if is_unique_violation(&err, DRAW_EXPERT_KEY, DRAW_EXPERT_COLUMNS) => {
            tracing::info!(draw = %new.draw_id, "a concurrent vacancy placed the same expert; trying again");
            Ok(false)
        }
        Err(err) => Err(err.into()),
    }
}

fn pick(
    position: usize,
    a: &Assignment,
    outcome: Outcome,
    stage: Stage,
    at: DateTime<Utc>,
    untrained: &UntrainedList<'_>,
) -> Pick {
    Pick {
        untrained: Some(untrained.contains(&a.expert_id)),
        position,
        expert_id: a.expert_id.clone(),
        outcome,
        reasons: Vec::new(),
        stage: stage_code(stage).to_owned(),
        teammate: String::new(),
        assignment_id: a.id.to_string(),
        at,
    }
}

/// The task's staffing as its assignments now stand: STAFFED when N primaries accepted,
/// UNDERSTAFFED when fewer than N hold a primary place, STAFFING otherwise (once drawn).
pub async fn restaff(tx: &mut Transaction<'static, Any>, clock: &SharedClock, task: &Task) -> Result<(), Error> {
    let mut task = task_store::get_task(tx, &task.id).await?.ok_or_else(|| Error::TaskNotFound(task.id.to_string()))?;
    if matches!(task.status, TaskStatus::Cancelled | TaskStatus::Completed | TaskStatus::InProgress) {
        return Ok(());
    }
    let filter = draw_store::AssignmentFilter {
        visibility: crate::domain::TaskVisibility::All,
        task_id: Some(task.id.clone()),
        expert_id: None,
        draw_id: None,
        status: None,
    };
    let page = supervision_kit::Page { size: 1000, after: None };
    let all = draw_store::list_assignments(tx, &filter, &page).await?;
    let primaries = all.iter().filter(|a| a.role == AssignmentRole::Primary && a.status.holds_place());
    let holding = primaries.clone().count();
    let accepted = primaries.filter(|a| a.status == AssignmentStatus::Accepted).count();
    // N is the largest team of the task's executed draws (a supplementary draw's team is only
    // the places it fills).
    let draw_team = draw_store::task_draws(tx, &task.id)
        .await?
        .iter()
        .filter(|d| d.status == crate::domain::DrawStatus::Executed)
        .map(|d| d.team_size)
        .max();
    let Some(draw_team) = draw_team.map(|n| n as usize) else { return Ok(()) };
    let status = if accepted >= draw_team {
        TaskStatus::Staffed
    } else if holding < draw_team {
        TaskStatus::Understaffed
    } else {
        TaskStatus::Staffing
    };
    let accepted = u32::try_from(accepted).unwrap_or(u32::MAX);
    if status == task.status && accepted == task.accepted_count {
        return Ok(());
    }
    let expected = task.revision;
    task.status = status;
    task.accepted_count = accepted;
    task.revision += 1;
    task.updated_at = clock.now();
    if !task_store::update_task_staffing(tx, &task, expected).await? {
        return Err(Error::TaskChanged(task.id.to_string()));
    }
    Ok(())
}

/// The fresh pool for a task's refill, keyed by expert.
pub async fn fresh_pool(
    registry: &crate::registry::Registry,
    task: &Task,
    actor: &supervision_kit::auth::Actor,
) -> Result<HashMap<String, PoolExpert>, Error> {
    let (_, dates) = slots(task);
    let pool = registry.draw_pool(&task.details.institution_id, &dates, task.id.as_str(), actor).await?;
    Ok(pool.into_iter().map(|e| (e.id.clone(), std::sync::Arc::unwrap_or_clone(e))).collect())
}

/// How many times a refill is tried again after losing a half-day to a concurrent draw.
pub const fn attempts() -> usize {
    draws::attempts()
}

/// An expert's status change from the registry (D17), as dispatch acts on it.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub id: String,
    pub expert_id: String,
    /// The contract's ExpertStatus name.
    pub status: String,
    pub effective: NaiveDate,
}

impl StatusChange {
    /// Whether the expert may no longer serve from the effective date.
    pub fn ends_service(&self) -> bool {
        matches!(
            self.status.as_str(),
            "EXPERT_STATUS_SUSPENDED" | "EXPERT_STATUS_RETIRED" | "EXPERT_STATUS_TERMINATED" | "EXPERT_STATUS_LAPSED"
        )
    }
}

/// The tasks whose assignments of the expert the change affects, before the transaction (for
/// the registry's pools).
pub async fn affected_tasks(db: &Db, change: &StatusChange) -> Result<Vec<Task>, Error> {
    if !change.ends_service() {
        return Ok(Vec::new());
    }
    let mut conn = db.pool().acquire().await?;
    let places = draw_store::places_from(&mut conn, &change.expert_id, change.effective).await?;
    let mut tasks: Vec<Task> = Vec::new();
    for a in places {
        if tasks.iter().any(|t| t.id == a.task_id) {
            continue;
        }
        if let Some(task) = task_store::get_task(&mut conn, &a.task_id).await? {
            tasks.push(task);
        }
    }
    Ok(tasks)
}

/// Cancels the expert's assignments with a session on or after the effective date and refills
/// them as a decline would be (D17), in `tx`; the cancelled ids and the replacements' ids.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn status_changed(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    change: &StatusChange,
    pools: &HashMap<String, HashMap<String, PoolExpert>>,
) -> Result<Attempt<(Vec<String>, Vec<String>)>, Error> {
    let mut cancelled = Vec::new();
    let mut replacements = Vec::new();
    if !change.ends_service() {
        return Ok(Attempt::Done((cancelled, replacements)));
    }
    let empty = HashMap::new();
    for mut a in draw_store::places_from(tx, &change.expert_id, change.effective).await? {
        let task =
            task_store::get_task(tx, &a.task_id).await?.ok_or_else(|| Error::TaskNotFound(a.task_id.to_string()))?;
        let before = a.status;
        let expected = a.updated_at;
        a.status = AssignmentStatus::CancelledStatusChange;
        a.cancel_reason = format!("the expert's status changed to {} from {}", change.status, change.effective);
        a.updated_at = clock.now();
        let fresh = pools.get(task.id.as_str()).unwrap_or(&empty);
        let filled = match vacate(tx, clock, &task, &mut a, fresh, Some(&change.expert_id)).await? {
            Attempt::Again => return Ok(Attempt::Again),
            Attempt::Done(filled) => filled,
        };
        if !draw_store::update_assignment(tx, &a, expected).await? {
            return Ok(Attempt::Again);
        }
        restaff(tx, clock, &task).await?;
        let audit_change = Change {
            method: command.method,
            request_id: &command.request_id,
            entity_type: "assignment",
            entity_id: a.id.as_str(),
            action: "cancel_status_change",
            before: Some(serde_json::json!({ "status": before.code() })),
            after: Some(serde_json::json!({
                "status": a.status.code(),
                "status_change_id": change.id,
                "replaced_by": a.replaced_by,
                "topped_up": filled.topped_up.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(),
            })),
        };
        audit::append(tx, db.backend(), clock, caller, audit_change).await?;
        cancelled.push(a.id.to_string());
        if let Some(r) = filled.replacement {
            replacements.push(r.id.to_string());
        }
    }
    Ok(Attempt::Done((cancelled, replacements)))
}

/// The checks of CancelAssignment before the transaction: staff of the dispatching bureau, and
/// an assignment still holding a place; the task for the registry's fresh pool.
pub async fn to_cancel(db: &Db, caller: &Caller, id: &AssignmentId) -> Result<Task, Error> {
    let mut conn = db.pool().acquire().await?;
    let (a, task) = managed(&mut conn, caller, id).await?;
    check_holds_place(&a)?;
    Ok(task)
}

/// An assignment and its task, for staff acting for the dispatching bureau.
async fn managed(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: &AssignmentId,
) -> Result<(Assignment, Task), Error> {
    let not_found = || Error::AssignmentNotFound(id.to_string());
    let a = draw_store::get_assignment(conn, id).await?.ok_or_else(not_found)?;
    let task = task_store::get_task(conn, &a.task_id).await?.ok_or_else(not_found)?;
    if caller.role == Role::Expert || caller.require_bureau(task.bureau()).is_err() {
        return Err(not_found());
    }
    Ok((a, task))
}

fn check_holds_place(a: &Assignment) -> Result<(), Error> {
    if a.status.holds_place() {
        return Ok(());
    }
    Err(refused(
        Code::FailedPrecondition,
        "ASSIGNMENT_NOT_OPEN",
        format!("assignment {} is {}; only a reserved, notified or accepted one is cancelled", a.id, a.status.code()),
    ))
}

/// CancelAssignment in `tx`: the bureau's decision, without penalty to the expert; the place is
/// refilled by step 5's rule (a primary's by the next backup) and the task restaffed.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn cancel(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &AssignmentId,
    reason: &str,
    fresh: &HashMap<String, PoolExpert>,
) -> Result<Attempt<(Assignment, Option<Assignment>)>, Error> {
    let (mut a, task) = managed(tx, caller, id).await?;
    check_holds_place(&a)?;
    let before = a.status;
    let expected = a.updated_at;
    a.status = AssignmentStatus::Cancelled;
    a.cancel_reason = reason.to_owned();
    a.updated_at = clock.now();
    let filled = match vacate(tx, clock, &task, &mut a, fresh, None).await? {
        Attempt::Again => return Ok(Attempt::Again),
        Attempt::Done(filled) => filled,
    };
    save_assignment(tx, &a, expected).await?;
    restaff(tx, clock, &task).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "assignment",
        entity_id: a.id.as_str(),
        action: "cancel",
        before: Some(serde_json::json!({ "status": before.code() })),
        after: Some(serde_json::json!({
            "status": a.status.code(),
            "reason": reason,
            "replaced_by": a.replaced_by,
            "topped_up": filled.topped_up.iter().map(|t| t.id.to_string()).collect::<Vec<_>>(),
            "order_exhausted": filled.order_exhausted,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(Attempt::Done((a, filled.replacement)))
}

/// RecordNoShow in `tx` (D4, D7): an ACCEPTED primary did not attend the task's session
/// `session_id`. The assignment becomes NO_SHOW, an incident goes to the registry through the
/// outbox (keyed `<assignment>:no_show`; the city decides, nothing is terminated), and a task
/// left with fewer members than may proceed (two, or one when the city approved a team of one)
/// becomes BLOCKED. No replacement is made: the session has begun.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn no_show(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &AssignmentId,
    session_id: &str,
    note: &str,
) -> Result<(Assignment, Task), Error> {
    let (mut a, task) = managed(tx, caller, id).await?;
    if a.status != AssignmentStatus::Accepted || a.role != AssignmentRole::Primary {
        return Err(refused(
            Code::FailedPrecondition,
            "ASSIGNMENT_NOT_ACCEPTED",
            format!("assignment {} is {}; only an accepted team member can fail to attend", a.id, a.status.code()),
        ));
    }
    let Some(session) = task.details.sessions.iter().find(|s| s.id.as_str() == session_id) else {
        return Err(Error::InvalidField {
            field: "session_id".into(),
            problem: format!("is not a session of task {}", task.number),
        });
    };
    let today = supervision_reference::shanghai_today(clock);
    if session.date > today {
        return Err(refused(
            Code::FailedPrecondition,
            "SESSION_NOT_STARTED",
            format!("the session of {} has not come yet; cancel the assignment instead", session.date),
        ));
    }
    let expected = a.updated_at;
    let now = clock.now();
    a.status = AssignmentStatus::NoShow;
    a.cancel_reason = note.to_owned();
    a.updated_at = now;
    save_assignment(tx, &a, expected).await?;
    let key = format!("{}:no_show", a.id);
    let request = rpb::RecordIncidentRequest {
        request_id: key.clone(),
        expert_id: a.expert_id.clone(),
        kind: rpb::IncidentKind::NoShow as i32,
        rule: rpb::DisciplineRule::Notice as i32,
        source: rpb::IncidentSource::Dispatch as i32,
        assignment_id: a.id.to_string(),
        task_id: task.id.to_string(),
        reporting_bureau: task.bureau().to_proto() as i32,
        occur_time: Some(supervision_kit::convert::timestamp(now)),
        description: format!(
            "did not attend task {} on {} {}: {note}",
            task.number,
            session.date,
            session.half_day.code()
        ),
        evidence: None,
    };
    let delivery =
        Delivery { destination: "registry", method: RECORD_INCIDENT, idempotency_key: &key, actor: &caller.actor() };
    outbox::enqueue(tx, clock, delivery, &request).await?;

    // The team is every executed draw's (an initial draw and its supplementary ones), against the
    // task's N: the largest team among them, as restaff counts it.
    let executed: Vec<_> = draw_store::task_draws(tx, &task.id)
        .await?
        .into_iter()
        .filter(|d| d.status == crate::domain::DrawStatus::Executed)
        .collect();
    let mut present = 0;
    for d in &executed {
        present += draw_store::draw_assignments(tx, &d.id)
            .await?
            .iter()
            .filter(|m| m.role == AssignmentRole::Primary)
            .filter(|m| matches!(m.status, AssignmentStatus::Accepted | AssignmentStatus::Completed))
            .count();
    }
    let team_size = executed.iter().map(|d| d.team_size).max().unwrap_or(task.team_size) as usize;
    let may_proceed = present >= team_size.min(2);
    let mut task = task;
    if !may_proceed && !matches!(task.status, TaskStatus::Cancelled | TaskStatus::Completed | TaskStatus::Blocked) {
        let expected = task.revision;
        task.status = TaskStatus::Blocked;
        task.revision += 1;
        task.updated_at = now;
        if !task_store::update_task_staffing(tx, &task, expected).await? {
            return Err(Error::TaskChanged(task.id.to_string()));
        }
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "assignment",
        entity_id: a.id.as_str(),
        action: "no_show",
        before: Some(serde_json::json!({ "status": AssignmentStatus::Accepted.code() })),
        after: Some(serde_json::json!({
            "status": a.status.code(),
            "session_id": session_id,
            "note": note,
            "members_present": present,
            "task_status": task.status.code(),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok((a, task))
}

/// One vacancy of a task and how it was filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacancy {
    pub vacated: AssignmentId,
    pub status: AssignmentStatus,
    pub promoted: String,
    pub at: DateTime<Utc>,
    pub topped_up: Vec<String>,
    pub order_exhausted: bool,
}

/// ListReplacements: the vacancies of `task_id`'s executed draws, oldest first. A place is
/// vacant when its assignment left it (declined, recused, no answer, no-show, cancelled, status
/// change); the backups added at the same instant topped the reserve up.
pub async fn replacements(
    db: &Db,
    caller: &Caller,
    task_id: &crate::domain::TaskId,
    page: &supervision_kit::Page,
) -> Result<(Vec<Vacancy>, Option<String>), Error> {
    let mut conn = db.pool().acquire().await?;
    let task = task_store::get_task(&mut conn, task_id)
        .await?
        .filter(|t| crate::domain::TaskVisibility::of(caller).allows(t))
        .ok_or_else(|| Error::TaskNotFound(task_id.to_string()))?;
    let filter = draw_store::AssignmentFilter {
        visibility: crate::domain::TaskVisibility::All,
        task_id: Some(task.id.clone()),
        expert_id: None,
        draw_id: None,
        status: None,
    };
    let all =
        draw_store::list_assignments(&mut conn, &filter, &supervision_kit::Page { size: 10_000, after: None }).await?;
    let mut executed = HashSet::new();
    for a in &all {
        if !executed.contains(a.draw_id.as_str())
            && draw_store::get_draw(&mut conn, &a.draw_id)
                .await?
                .is_some_and(|d| d.status == crate::domain::DrawStatus::Executed)
        {
            executed.insert(a.draw_id.to_string());
        }
    }
    let vacated = |s: AssignmentStatus| {
        use AssignmentStatus as S;
        matches!(
            s,
            S::DeclinedOnTime
                | S::DeclinedLate
                | S::DeclinedExempt
                | S::Recused
                | S::NoResponse
                | S::NoShow
                | S::Cancelled
                | S::CancelledStatusChange
        )
    };
    let mut items: Vec<Vacancy> = all
        .iter()
        .filter(|a| executed.contains(a.draw_id.as_str()) && vacated(a.status))
        // A backup dropped when it could not be promoted gave up a reserve place, not a seat.
        .filter(|a| {
            !(a.role == AssignmentRole::Backup
                && a.replaced_by.is_empty()
                && a.status == AssignmentStatus::Cancelled
                && a.cancel_reason == DROPPED)
        })
        .map(|a| {
            let topped_up = all
                .iter()
                .filter(|b| b.role == AssignmentRole::Backup && b.created_at == a.updated_at && b.draw_id == a.draw_id)
                .map(|b| b.id.to_string())
                .collect();
            Vacancy {
                vacated: a.id.clone(),
                status: a.status,
                promoted: a.replaced_by.clone(),
                at: a.updated_at,
                topped_up,
                order_exhausted: a.role == AssignmentRole::Primary && a.replaced_by.is_empty(),
            }
        })
        .collect();
    items.sort_by(|x, y| (x.at, x.vacated.as_str()).cmp(&(y.at, y.vacated.as_str())));
    if let Some(after) = &page.after {
        match items.iter().position(|v| v.vacated.as_str() == after) {
            Some(i) => {
                items.drain(..=i);
            }
            None => items.clear(),
        }
    }
    items.truncate(page.size as usize + 1);
    Ok(page.finish(items, |v| v.vacated.to_string()))
}
