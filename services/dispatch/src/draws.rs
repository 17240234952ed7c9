//! Use cases of draws (ARCHITECTURE.md "The draw" steps 1-7; D8, D14, D15, D18).
//!
//! The registry is asked before any transaction opens (the pool at prepare, the experts' status
//! and employer again at execute), so no database lock is held over a network call and nothing
//! is written when it cannot answer. Execution fences the experts it places: in-process or Redis
//! locks on every (expert, date, half-day) key, taken in sorted order, only to reduce contention;
//! the database decides, through the unique index on bookings. A booking lost to a concurrent
//! draw rolls the attempt back and the walk is redone with the facts as they now stand, so an
//! expert is never booked twice on a half-day.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::NaiveDate;
use sqlx::{Any, Transaction};
use supervision_draw::{
    ALGORITHM_VERSION, CandidateFacts, DiceDigits, DrawOrder, EmployerKey, ExpertId, Fill, FrozenList, Relaxation,
    SameEmployerRule, SeedString, ServerSeed, SkipReason, Stage, TeamSize, fill, rank,
};
use supervision_kit::{
    Bureau, Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    lock::{LockError, LockGuard, Locks},
    storage::is_unique_violation,
};
use tonic::Code;

use crate::{
    domain::{
        Assignment, AssignmentRole, AssignmentStatus, Draw, DrawId, DrawKind, DrawStatus, DrawVoid, ExceptionKind,
        HalfDay, Outcome, Pick, PoolExpert, RelaxationRecord, SoftFacts, Task, TaskStatus, TaskVisibility,
        draw::{PoolFacts, UntrainedList, exclusion_counts, screen, screen_kept},
    },
    error::Error,
    store::{
        draws::{self as draw_store, AssignmentFilter, BOOKING_COLUMNS, BOOKING_INDEX, DrawFilter},
        tasks as task_store,
    },
};

/// How long the fence's locks live if their holder dies.
const LOCK_TTL: Duration = Duration::from_secs(30);
/// How long an execution waits for keys another draw holds.
const LOCK_WAIT: Duration = Duration::from_secs(10);
/// Walks redone after losing a booking to a concurrent draw before giving up cleanly.
const ATTEMPTS: usize = 5;

/// The task's half-day slots and their distinct dates.
pub fn slots(task: &Task) -> (Vec<(NaiveDate, HalfDay)>, Vec<NaiveDate>) {
    let slots: Vec<_> = task.details.sessions.iter().map(|s| s.slot()).collect();
    let mut dates: Vec<NaiveDate> = slots.iter().map(|(d, _)| *d).collect();
    dates.dedup();
    (slots, dates)
}

/// N for a draw: the task's team, or the reduced team the city approved (D15).
pub(crate) fn team_of(task: &Task) -> TeamSize {
    let primaries = task
        .exception(ExceptionKind::ReducedTeam)
        .filter(|e| e.approval.is_some())
        .map_or(task.team_size, |e| e.reduced_team_size);
    TeamSize { primaries: primaries as usize, backups: task.backup_count as usize }
}

/// The task a draw step acts on: visible to the caller, of a bureau they act for.
pub(crate) async fn task_for(
    conn: &mut sqlx::AnyConnection,
    caller: &Caller,
    id: &crate::domain::TaskId,
) -> Result<Task, Error> {
    task_store::get_task(conn, id)
        .await?
        .filter(|t| TaskVisibility::of(caller).allows(t) && caller.require_bureau(t.bureau()).is_ok())
        .ok_or_else(|| Error::TaskNotFound(id.to_string()))
}

/// The checks of PrepareDraw that need no transaction: the task can be drawn for.
pub async fn task_to_draw(db: &Db, caller: &Caller, id: &crate::domain::TaskId, kind: DrawKind) -> Result<Task, Error> {
    let mut conn = db.pool().acquire().await?;
    let task = task_for(&mut conn, caller, id).await?;
    check_drawable(&task, kind)?;
    Ok(task)
}

/// OPEN (UNDERSTAFFED for a supplementary draw), with every exception approved. A designation
/// (D15) takes the initial draw's place and is checked as one.
pub(crate) fn check_drawable(task: &Task, kind: DrawKind) -> Result<(), Error> {
    if kind == DrawKind::Supplementary {
        if task.status != TaskStatus::Understaffed {
            return Err(Error::draw_refused(
                Code::FailedPrecondition,
                "TASK_NOT_UNDERSTAFFED",
                format!(
                    "task {} is {}; a supplementary draw is for an UNDERSTAFFED task whose order is exhausted",
                    task.number,
                    task.status.code()
                ),
            ));
        }
    } else if task.status != TaskStatus::Open {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "TASK_NOT_OPEN",
            format!("task {} is {}; only an OPEN task is drawn for", task.number, task.status.code()),
        ));
    }
    if let Some(e) = task.details.exceptions.iter().find(|e| e.approval.is_none()) {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "EXCEPTION_NOT_APPROVED",
            format!("task {} needs the city's approval of {} before a draw", task.number, e.kind.code()),
        ));
    }
    Ok(())
}

/// The soft-exclusion rules of the edition in force on the task's first session date.
pub async fn exclusion_rules(
    db: &Db,
    reference: &supervision_reference::Reference,
    caller: &Caller,
    id: &crate::domain::TaskId,
    kind: DrawKind,
) -> Result<supervision_policy::ExclusionRules, Error> {
    let task = task_to_draw(db, caller, id, kind).await?;
    let (_, dates) = slots(&task);
    let first = dates.iter().min().copied().ok_or_else(|| Error::TaskNotFound(id.to_string()))?;
    let edition = reference
        .editions()
        .edition_in_force(first)
        .map_err(|e| Error::draw_refused(Code::FailedPrecondition, "EDITION_NOT_IN_FORCE", format!("{e}")))?;
    Ok(edition.exclusions.clone())
}

/// What D14's soft exclusions need from this service's records inside `tx`: the experts in the
/// cooling period at the task's institution and those at the monthly cap, by the rules of the
/// edition in force on the first session date.
async fn soft_facts(
    tx: &mut Transaction<'static, Any>,
    rules: &supervision_policy::ExclusionRules,
    task: &Task,
    dates: &[NaiveDate],
    needed: usize,
) -> Result<SoftFacts, Error> {
    let (Some(first), Some(last)) = (dates.iter().min().copied(), dates.iter().max().copied()) else {
        return Ok(SoftFacts { needed, ..SoftFacts::default() });
    };
    let months = rules.cooling_months_same_institution;
    let cooling = if months == 0 {
        HashSet::new()
    } else {
        let from = first.checked_sub_months(chrono::Months::new(months)).unwrap_or(NaiveDate::MIN);
        let to = last.checked_add_months(chrono::Months::new(months)).unwrap_or(NaiveDate::MAX);
        draw_store::cooling_experts(tx, &task.details.institution_id, &task.id, from, to).await?
    };
    let mut in_months: Vec<String> = dates.iter().map(|d| d.format("%Y-%m").to_string()).collect();
    in_months.dedup();
    let capped = if rules.max_assignments_per_month == 0 {
        HashSet::new()
    } else {
        draw_store::capped_experts(tx, &task.id, &in_months, rules.max_assignments_per_month).await?
    };
    Ok(SoftFacts {
        wanted: task.details.specialties.iter().map(|s| s.as_str().to_owned()).collect(),
        cooling,
        capped,
        needed,
    })
}

/// Step 1 and 2 inside `tx`: D14's exclusions over `pool` with the bookings as they stand (the
/// soft ones by `rules`, relaxed in order while the pool is smaller than N + B), the frozen list,
/// the server seed and its commitment; the draw recorded with its audit entry.
#[tracing::instrument(name = "draw.prepare", skip_all, fields(pool = pool.len()))]
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn prepare(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    task_id: &crate::domain::TaskId,
    pool: &[Arc<PoolExpert>],
    rules: &supervision_policy::ExclusionRules,
    kind: DrawKind,
    lists: &PreparedLists,
) -> Result<(Draw, FrozenList), Error> {
    let started = std::time::Instant::now();
    let task = task_for(tx, caller, task_id).await?;
    check_drawable(&task, kind)?;
    let (team, supplements, contacted) = match kind {
        DrawKind::Initial => (team_of(&task), String::new(), HashSet::new()),
        DrawKind::Supplementary => supplementary_plan(tx, &task).await?,
        DrawKind::Designation => {
            return Err(Error::InvalidField {
                field: "kind".into(),
                problem: "a designation is not prepared; DesignateExperts records it (D15)".into(),
            });
        }
    };
    // A supplementary draw leaves out every expert already contacted for the task.
    let uncontacted: Vec<Arc<PoolExpert>>;
    let pool = if contacted.is_empty() {
        pool
    } else {
        uncontacted = pool.iter().filter(|e| !contacted.contains(&e.id)).cloned().collect();
        uncontacted.as_slice()
    };
    let (slots, dates) = slots(&task);
    // Planned for this task's values, not once per connection (`docs/performance.md`, ninth run).
    db.plan_for_values(tx).await?;
    let booked = draw_store::booked_experts(tx, &slots).await?;
    let soft = soft_facts(tx, rules, &task, &dates, team.total()).await?;
    // The pool is stored once for every draw frozen from it (`candidate_pools`); the draw's list
    // is the pool without the excluded, which the draw records anyway. A pool that cannot be
    // frozen (none eligible, or an unusable id) is screened from its records, so that a pool too
    // small is refused as such before an unusable id is.
    let kept = lists.pool(pool);
    let reporter = &task.details.reporter_expert_id;
    let screened = match &kept {
        Ok(kept) => screen_kept(pool, &kept.facts, &dates, &booked, reporter, &soft),
        Err(_) => screen(pool, &dates, &booked, reporter, &soft),
    };
    if screened.eligible < team.total() {
        let counts =
            exclusion_counts(&screened.excluded).into_iter().map(|(r, first, _)| (reason_name(r), first)).collect();
        crate::metrics::pool_too_small(db, pool.len(), screened.eligible, &screened.excluded);
        return Err(Error::PoolTooSmall { eligible: screened.eligible, needed: team.total(), counts });
    }
    let kept = kept.map_err(|e| Error::RegistryUnavailable(format!("the registry sent an unusable expert id: {e}")))?;
    let pool_list = &kept.list;
    let list = crate::domain::frozen_from(pool_list, &screened.excluded)
        .map_err(|e| Error::draw_refused(Code::Internal, "FROZEN_LIST", format!("the frozen list: {e}")))?;
    debug_assert_eq!(list.count(), screened.eligible);
    let seed = ServerSeed::generate()
        .map_err(|e| Error::draw_refused(Code::Internal, "NO_RANDOMNESS", format!("no server seed: {e}")))?;
    crate::metrics::stage(db, crate::metrics::STAGE_EXCLUSIONS, started);
    let started = std::time::Instant::now();
    let now = clock.now();
    let draw = Draw {
        id: DrawId::generate(),
        task_id: task.id.clone(),
        kind,
        supplements,
        status: DrawStatus::Prepared,
        algorithm: ALGORITHM_VERSION.to_owned(),
        edition_number: task.edition_number,
        team_size: u32::try_from(team.primaries).unwrap_or(u32::MAX),
        backup_count: u32::try_from(team.backups).unwrap_or(u32::MAX),
        frozen_list: None,
        frozen_list_sha256: list.sha256_hex().to_owned(),
        pool_list_sha256: pool_list.sha256_hex().to_owned(),
        candidate_count: list.count(),
        pool_count: pool.len(),
        exclusions: screened.excluded,
        untrained: Some(screened.untrained),
        server_seed: seed.to_hex(),
        seed_commitment: seed.commitment().to_hex(),
        dice_digits: String::new(),
        order: Vec::new(),
        walk: Vec::new(),
        relaxations: Vec::new(),
        pool_relaxations: screened.relaxations,
        specialty_tier: screened.specialty_tier,
        next_position: 0,
        operator: caller.actor(),
        witness: None,
        prepared_at: now,
        witnessed_at: None,
        executed_at: None,
        abandon_reason: String::new(),
        void: None,
        designation: None,
    };
    draw_store::store_candidate_pool(tx, pool_list).await?;
    if let Err(err) = draw_store::insert_draw(tx, &draw).await {
        if is_unique_violation(&err, "draws_live_key_key", "draws.live_key") {
            return Err(Error::draw_refused(
                Code::FailedPrecondition,
                "DRAW_EXISTS",
                format!("task {} already has a live {} draw", task.number, kind.code()),
            ));
        }
        return Err(err.into());
    }
    let counts: serde_json::Map<String, serde_json::Value> = exclusion_counts(&draw.exclusions)
        .into_iter()
        .filter(|(_, _, any)| *any > 0)
        .map(|(r, first, _)| (r.code().to_owned(), first.into()))
        .collect();
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "draw",
        entity_id: draw.id.as_str(),
        action: "prepare",
        before: None,
        after: Some(serde_json::json!({
            "task_id": draw.task_id.as_str(),
            "kind": draw.kind.code(),
            "supplements_draw_id": draw.supplements,
            "algorithm": draw.algorithm,
            "pool_count": draw.pool_count,
            "candidate_count": draw.candidate_count,
            "candidate_list_sha256": draw.frozen_list_sha256,
            "seed_commitment": draw.seed_commitment,
            "excluded_first_reason_counts": counts,
            "team_size": draw.team_size,
            "backup_count": draw.backup_count,
            "specialty_tier": draw.specialty_tier,
            "relaxed": draw.pool_relaxations.iter().map(|r| r.rule.as_str()).collect::<Vec<_>>(),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    crate::metrics::stage(db, crate::metrics::STAGE_PREPARE_RECORD, started);
    crate::metrics::prepared(db, &draw);
    Ok((draw, list))
}

/// The frozen lists of the last draws this replica prepared, kept for their execution: reading
/// a 100,000-id list back from the store and checking it line by line cost about 30 ms (issue
/// 12). Only a committed prepare's list is kept, and a list is used only for the draw it was
/// frozen for and while its SHA-256 is the one the draw records; any other execution (a draw
/// prepared by another replica, or before a restart) reads the list from the store.
///
/// Each list is kept with the draw's untrained list, which the execution flags its picks from:
/// reading that back (about 1 MB of JSON at 100,000) was another few milliseconds of it.
///
/// It also keeps the last pool frozen here with its list and its facts ([`Self::pool`]).
#[derive(Debug, Clone, Default)]
pub struct PreparedLists(Arc<Mutex<KeptLists>>);

#[derive(Debug, Default)]
struct KeptLists {
    /// The lists kept, oldest first, with the draw each was frozen for.
    draws: VecDeque<(DrawId, KeptDraw)>,
    /// The last pool frozen.
    pool: Option<Arc<KeptPool>>,
}

/// A pool kept between draws: its frozen list, and its experts' facts for the screening.
#[derive(Debug)]
pub struct KeptPool {
    pub list: Arc<FrozenList>,
    pub facts: PoolFacts,
}

/// What is kept of one draw prepared here.
#[derive(Debug, Clone)]
pub struct KeptDraw {
    pub list: Arc<FrozenList>,
    /// The eligible experts who did not attend training, as the draw records them.
    pub untrained: Arc<[String]>,
}

impl PreparedLists {
    /// How many lists are kept. At 100,000 candidates a list's ids are shared with its pool's
    /// list and its blob is written only if asked for, so each holds about 1.6 MB of its own
    /// (the id handles) and its untrained list about 1.5 MB.
    pub const KEPT: usize = 4;

    /// The kept pool's facts are laid out again once more than one expert in this many is
    /// another record than theirs (each such expert is read where it lies, at each draw).
    pub const CHANGED_FACTS_KEPT: usize = 16;

    /// Keeps the list of `draw` (prepared and committed) and its untrained list, forgetting the
    /// oldest beyond [`Self::KEPT`].
    pub fn keep(&self, draw: &DrawId, list: FrozenList, untrained: Arc<[String]>) {
        let forgotten = {
            let kept = &mut self.lock().draws;
            kept.retain(|(id, _)| id != draw);
            let forgotten = if kept.len() == Self::KEPT { kept.pop_front() } else { None };
            kept.push_back((draw.clone(), KeptDraw { list: Arc::new(list), untrained }));
            forgotten
        };
        // Letting go of 100,000 ids and 25,000 untrained ids took about 2 ms at that size: off
        // the prepare's path when there is a runtime to hand it to.
        if let Some(forgotten) = forgotten
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn_blocking(move || drop(forgotten));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptLists> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The frozen list of `pool`'s ids and its experts' facts. Draws in a row from an unchanged
    /// pool (the usual case) freeze it and lay out its facts once: validating, sorting and
    /// hashing 100,000 ids was about 11 % of a draw, and reading every expert's facts where they
    /// lie about as much again (issue 12). The list is reused while the pool holds the same ids in
    /// the same order as the last one kept here, the facts while few of its experts are other
    /// records than theirs (a task's conflicts, an expert changed since): as both share the copy's
    /// experts, most of that is a pointer comparison.
    pub fn pool(&self, pool: &[Arc<PoolExpert>]) -> Result<Arc<KeptPool>, supervision_draw::CandidateListError> {
        // The last pool, when it holds the same ids in the same order, and how many of its
        // experts are other records now.
        let same_ids = self.lock().pool.clone().and_then(|kept| Some((kept.facts.changed_in(pool)?, kept)));
        if let Some((changed, kept)) = &same_ids
            && *changed <= pool.len() / Self::CHANGED_FACTS_KEPT
        {
            return Ok(Arc::clone(kept));
        }
        // Frozen and laid out outside the lock: a concurrent prepare of another pool is not held
        // up.
        let list = match same_ids {
            Some((_, kept)) => Arc::clone(&kept.list),
            None => Arc::new(FrozenList::freeze_strs(pool.iter().map(|e| e.id.as_str()))?),
        };
        let kept = Arc::new(KeptPool { list, facts: PoolFacts::new(pool) });
        self.lock().pool = Some(Arc::clone(&kept));
        Ok(kept)
    }

    /// What is kept for the draw `draw`, when its list's hash is `sha256_hex`, the one the draw
    /// records.
    pub fn get(&self, draw: &DrawId, sha256_hex: &str) -> Option<KeptDraw> {
        self.lock()
            .draws
            .iter()
            .find(|(id, kept)| id == draw && kept.list.sha256_hex() == sha256_hex)
            .map(|(_, kept)| kept.clone())
    }
}

/// AbandonDraw inside `tx`: a PREPARED or WITNESSED draw that will not be executed stays visible
/// with its reason; the task may be drawn for again.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn abandon(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &DrawId,
    reason: &str,
) -> Result<Draw, Error> {
    let mut draw = draw_store::get_draw(tx, id).await?.ok_or_else(|| Error::DrawNotFound(id.to_string()))?;
    task_for(tx, caller, &draw.task_id).await.map_err(|_| Error::DrawNotFound(id.to_string()))?;
    if !matches!(draw.status, DrawStatus::Prepared | DrawStatus::Witnessed) {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "DRAW_NOT_ABANDONABLE",
            format!("draw {} is {}; only a PREPARED or WITNESSED draw is abandoned", draw.id, draw.status.code()),
        ));
    }
    let before = draw.status;
    draw.status = DrawStatus::Abandoned;
    draw.abandon_reason = reason.to_owned();
    if !draw_store::record_abandon(tx, &draw).await? {
        return Err(Error::draw_refused(Code::Aborted, "DRAW_CHANGED", format!("draw {} changed; read it again", id)));
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "draw",
        entity_id: draw.id.as_str(),
        action: "abandon",
        before: Some(serde_json::json!({ "status": before.code() })),
        after: Some(serde_json::json!({ "status": draw.status.code(), "reason": reason })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(draw)
}

/// VoidDraw inside `tx` (D8): a second person, not the draw's operator, voids an EXECUTED draw
/// with a reason. Every assignment still holding a place is cancelled and its half-days freed;
/// the record stays (seed, order and walk remain verifiable) and the task may be drawn again.
/// Refused once an assignment was worked or reported on.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn void(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &DrawId,
    reason: &str,
) -> Result<(Draw, Vec<String>), Error> {
    let mut draw = draw_store::get_draw(tx, id).await?.ok_or_else(|| Error::DrawNotFound(id.to_string()))?;
    let task = task_for(tx, caller, &draw.task_id).await.map_err(|_| Error::DrawNotFound(id.to_string()))?;
    // D8 (docs/rpc-roles.md): CITY_ADMIN, or an operator of the dispatching bureau. A city
    // operator sees every bureau's draws but acts only for the city bureau's tasks.
    if caller.role == Role::CityOperator && task.bureau() != Bureau::City {
        return Err(Error::draw_refused(
            Code::PermissionDenied,
            "NOT_DISPATCHING_BUREAU",
            format!(
                "draw {} belongs to bureau {}; a city operator voids only the city bureau's draws, CITY_ADMIN any",
                draw.id,
                task.bureau().division_code()
            ),
        ));
    }
    let by = caller.actor();
    if by.subject == draw.operator.subject {
        return Err(Error::draw_refused(
            Code::PermissionDenied,
            "VOIDER_IS_OPERATOR",
            "the operator who prepared the draw may not void it; a second person does (D8)",
        ));
    }
    if draw.status != DrawStatus::Executed {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "DRAW_NOT_EXECUTED",
            format!("draw {} is {}; only an EXECUTED draw is voided", draw.id, draw.status.code()),
        ));
    }
    if matches!(task.status, TaskStatus::InProgress | TaskStatus::Completed | TaskStatus::Cancelled) {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "TASK_NOT_VOIDABLE",
            format!("task {} is {}; its draw can no longer be voided", task.number, task.status.code()),
        ));
    }
    // Voiding reopens the task for a new draw: only when this is the task's one standing draw.
    // With another draw prepared, witnessed or executed (a supplementary one, or the draw it
    // supplements) that draw would stand on a reopened task.
    let others = draw_store::task_draws(tx, &task.id).await?;
    if let Some(other) = others.iter().find(|d| {
        d.id != draw.id && matches!(d.status, DrawStatus::Prepared | DrawStatus::Witnessed | DrawStatus::Executed)
    }) {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "OTHER_DRAW_STANDS",
            format!(
                "draw {} of task {} is {}; abandon or void it first, or cancel single assignments instead",
                other.id,
                task.number,
                other.status.code()
            ),
        ));
    }
    let assignments = draw_store::draw_assignments(tx, &draw.id).await?;
    if let Some(worked) = assignments.iter().find(|a| !a.worked_sessions.is_empty() || !a.report_id.is_empty()) {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "ASSIGNMENT_WORKED",
            format!("assignment {} has worked sessions or a report; the draw stands", worked.id),
        ));
    }
    let now = clock.now();
    let mut cancelled = Vec::new();
    for a in assignments.into_iter().filter(|a| a.status.holds_place()) {
        let mut a = a;
        let expected = a.updated_at;
        draw_store::delete_bookings(tx, &a.id).await?;
        a.status = AssignmentStatus::Cancelled;
        a.cancel_reason = format!("draw voided: {reason}");
        a.updated_at = now;
        crate::responses::save_assignment(tx, &a, expected).await?;
        crate::notify::vacated(tx, clock, &task, &a, None, false).await?;
        cancelled.push(a.id.to_string());
    }
    draw.status = DrawStatus::Voided;
    draw.void = Some(DrawVoid { reason: reason.to_owned(), by, at: now });
    if !draw_store::record_void(tx, &draw).await? {
        return Err(Error::draw_refused(Code::Aborted, "DRAW_CHANGED", format!("draw {} changed; read it again", id)));
    }
    task_store::reopen_task(tx, &task.id, now).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "draw",
        entity_id: draw.id.as_str(),
        action: "void",
        before: Some(serde_json::json!({ "status": DrawStatus::Executed.code() })),
        after: Some(serde_json::json!({
            "status": draw.status.code(),
            "reason": reason,
            "cancelled_assignment_ids": cancelled,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok((draw, cancelled))
}

/// What a supplementary draw of `task` is for (ARCHITECTURE.md's fill rule: only when the order
/// is exhausted): the team (the vacant primary places, and B backups), the exhausted draw it
/// supplements, and the experts already contacted for the task, who are not candidates again.
async fn supplementary_plan(
    tx: &mut Transaction<'static, Any>,
    task: &Task,
) -> Result<(TeamSize, String, HashSet<String>), Error> {
    let draws = draw_store::task_draws(tx, &task.id).await?;
    let executed: Vec<&Draw> = draws.iter().filter(|d| d.status == DrawStatus::Executed).collect();
    let Some(last) = executed.last() else {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "NO_EXECUTED_DRAW",
            format!("task {} has no executed draw to supplement", task.number),
        ));
    };
    let mut all = Vec::new();
    for d in &executed {
        all.extend(draw_store::draw_assignments(tx, &d.id).await?);
    }
    let reserve_left = all.iter().any(|a| a.draw_id == last.id && a.status == AssignmentStatus::Reserved);
    if last.next_position < last.candidate_count || reserve_left {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "ORDER_NOT_EXHAUSTED",
            format!("draw {} still has candidates or backups; vacancies fill from it", last.id),
        ));
    }
    let team = executed.iter().map(|d| d.team_size).max().unwrap_or(task.team_size) as usize;
    let holding = all.iter().filter(|a| a.role == AssignmentRole::Primary && a.status.holds_place()).count();
    let vacancies = team.saturating_sub(holding);
    if vacancies == 0 {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "NOT_UNDERSTAFFED",
            format!("task {} has its {team} primaries", task.number),
        ));
    }
    let contacted = all.iter().map(|a| a.expert_id.clone()).collect();
    Ok((TeamSize { primaries: vacancies, backups: task.backup_count as usize }, last.id.to_string(), contacted))
}

/// The contract's name of an exclusion reason (the metadata keys of POOL_TOO_SMALL).
pub fn reason_name(r: crate::domain::ExclusionReason) -> &'static str {
    use crate::domain::ExclusionReason as R;
    match r {
        R::NotAppointed => "EXCLUSION_REASON_NOT_APPOINTED",
        R::NotActive => "EXCLUSION_REASON_NOT_ACTIVE",
        R::OutOfTerm => "EXCLUSION_REASON_OUT_OF_TERM",
        R::EditionNotInForce => "EXCLUSION_REASON_EDITION_NOT_IN_FORCE",
        R::Conflicted => "EXCLUSION_REASON_CONFLICTED",
        R::AlreadyBooked => "EXCLUSION_REASON_ALREADY_BOOKED",
        R::Reporter => "EXCLUSION_REASON_REPORTER",
        R::Untrained => "EXCLUSION_REASON_UNTRAINED",
        R::SpecialtyMismatch => "EXCLUSION_REASON_SPECIALTY_MISMATCH",
        R::CoolingPeriod => "EXCLUSION_REASON_COOLING_PERIOD",
        R::MonthlyCap => "EXCLUSION_REASON_MONTHLY_CAP",
    }
}

/// Step 3: a staff user other than the operator co-signs a PREPARED draw, perhaps with dice.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn witness(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &DrawId,
    dice: Option<DiceDigits>,
) -> Result<Draw, Error> {
    let mut draw = draw_store::get_draw(tx, id).await?.ok_or_else(|| Error::DrawNotFound(id.to_string()))?;
    task_for(tx, caller, &draw.task_id).await.map_err(|_| Error::DrawNotFound(id.to_string()))?;
    let witness = caller.actor();
    if witness.subject == draw.operator.subject {
        return Err(Error::draw_refused(
            Code::PermissionDenied,
            "WITNESS_IS_OPERATOR",
            "the operator who prepared the draw may not witness it (D8, D12)",
        ));
    }
    if draw.status != DrawStatus::Prepared {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "DRAW_NOT_PREPARED",
            format!("draw {} is {}; only a PREPARED draw is witnessed", draw.id, draw.status.code()),
        ));
    }
    draw.status = DrawStatus::Witnessed;
    draw.witness = Some(witness);
    draw.dice_digits = dice.map(|d| d.as_str().to_owned()).unwrap_or_default();
    draw.witnessed_at = Some(clock.now());
    if !draw_store::record_witness(tx, &draw).await? {
        return Err(Error::draw_refused(Code::Aborted, "DRAW_CHANGED", format!("draw {} changed; read it again", id)));
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "draw",
        entity_id: draw.id.as_str(),
        action: "witness",
        before: Some(serde_json::json!({ "status": DrawStatus::Prepared.code() })),
        after: Some(serde_json::json!({
            "status": draw.status.code(),
            "dice_digits": draw.dice_digits,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(draw)
}

/// What execution needs before its transaction: the draw, its task and the order.
#[derive(Debug)]
pub struct ToExecute {
    pub draw: Draw,
    pub task: Task,
    pub order: DrawOrder,
    /// The draw's untrained list, fixed at prepare, for its picks' flags.
    pub untrained: Arc<[String]>,
    /// When execution began, for `supervision_draw_execution_seconds`.
    pub started: std::time::Instant,
}

/// Reads a draw to execute and computes its order (nothing is revealed until it commits), from
/// the frozen list `lists` kept if this replica prepared the draw.
pub async fn to_execute(db: &Db, caller: &Caller, id: &DrawId, lists: &PreparedLists) -> Result<ToExecute, Error> {
    let started = std::time::Instant::now();
    let mut conn = db.pool().acquire().await?;
    let draw = draw_store::get_draw(&mut conn, id).await?.ok_or_else(|| Error::DrawNotFound(id.to_string()))?;
    let task = task_for(&mut conn, caller, &draw.task_id).await.map_err(|_| Error::DrawNotFound(id.to_string()))?;
    check_executable(&draw)?;
    let (order, untrained) = match lists.get(&draw.id, &draw.frozen_list_sha256) {
        Some(kept) if draw.kind != DrawKind::Designation => (rank_list(&draw, &kept.list)?, kept.untrained),
        _ => (order_of(&mut conn, &draw).await?, draw_store::untrained(&mut conn, &draw.id).await?.into()),
    };
    crate::metrics::stage(db, crate::metrics::STAGE_RANKING, started);
    Ok(ToExecute { draw, task, order, untrained, started: std::time::Instant::now() })
}

fn check_executable(draw: &Draw) -> Result<(), Error> {
    if draw.status != DrawStatus::Witnessed {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "DRAW_NOT_WITNESSED",
            format!("draw {} is {}; only a WITNESSED draw is executed", draw.id, draw.status.code()),
        ));
    }
    Ok(())
}

/// The draw's whole order, ranked from its frozen list (read from the store unless the draw
/// holds it) and its seed. A designation (D15) has none: its designated experts, as named, stand
/// in for one whose walk is already at the end, so a vacancy there promotes and continues nothing.
pub(crate) async fn order_of(conn: &mut sqlx::AnyConnection, draw: &Draw) -> Result<DrawOrder, Error> {
    if draw.kind == DrawKind::Designation {
        return crate::designate::order_of(draw);
    }
    let read;
    let list = match &draw.frozen_list {
        Some(list) => list,
        None => {
            read =
                draw_store::frozen_list(conn, draw).await?.ok_or_else(|| Error::DrawNotFound(draw.id.to_string()))?;
            &read
        }
    };
    ranked(draw, list)
}

/// [`order_of`] with the frozen list blob at hand.
fn ranked(draw: &Draw, frozen_list: &str) -> Result<DrawOrder, Error> {
    let corrupt =
        |problem: String| Error::Store(crate::store::StoreError::Corrupt { id: draw.id.to_string(), problem });
    let list = FrozenList::parse(frozen_list.as_bytes()).map_err(|e| corrupt(format!("frozen list: {e}")))?;
    rank_list(draw, &list)
}

/// The draw's order over `list` (its frozen list) under its seed and dice.
fn rank_list(draw: &Draw, list: &FrozenList) -> Result<DrawOrder, Error> {
    let corrupt =
        |problem: String| Error::Store(crate::store::StoreError::Corrupt { id: draw.id.to_string(), problem });
    let seed = ServerSeed::from_hex(&draw.server_seed).map_err(|e| corrupt(format!("server seed: {e}")))?;
    let dice = if draw.dice_digits.is_empty() {
        None
    } else {
        Some(DiceDigits::parse(&draw.dice_digits).map_err(|e| corrupt(format!("dice digits: {e}")))?)
    };
    Ok(rank(list, &SeedString::new(&seed, dice.as_ref())))
}

/// Step 5's walk with the facts as `booked` and `fresh` (the registry's answer now) give them;
/// `None` when it looked at a candidate `fresh` did not ask about (its facts are unknown).
fn walk(
    order: &DrawOrder,
    team: TeamSize,
    dates: &[NaiveDate],
    booked: &HashSet<String>,
    fresh: &Recheck,
) -> Option<Fill> {
    let mut beyond = false;
    let f = fill(order, team, |id: &ExpertId| {
        beyond |= !fresh.asked_ids.contains(id.as_str());
        let e = fresh.get(id.as_str());
        CandidateFacts {
            free_on_every_session: !booked.contains(id.as_str()),
            active: e.is_some_and(|e| e.active_through(dates) && e.in_term(dates)),
            employer: e.filter(|e| !e.employer_key.is_empty()).map(|e| EmployerKey::new(e.employer_key.clone())),
        }
    });
    (!beyond).then_some(f)
}

fn placed(f: &Fill) -> Vec<String> {
    f.primaries.iter().chain(&f.backups).map(|p| p.id.as_str().to_owned()).collect()
}

pub(crate) fn lock_keys(experts: &[String], slots: &[(NaiveDate, HalfDay)]) -> Vec<String> {
    experts.iter().flat_map(|e| slots.iter().map(move |(d, h)| format!("dispatch:slot:{e}:{d}:{}", h.code()))).collect()
}

fn short(f: &Fill, needed: usize) -> Error {
    let mut counts: Vec<(&'static str, usize)> = vec![("NOT_ACTIVE", 0), ("NOT_FREE", 0), ("SAME_EMPLOYER", 0)];
    for s in &f.skips {
        if let Some(r) = s.reasons.first() {
            let i = match r {
                SkipReason::NotActive => 0,
                SkipReason::NotFree => 1,
                SkipReason::SameEmployer { .. } => 2,
            };
            counts[i].1 += 1;
        }
    }
    Error::PoolTooSmall { eligible: f.primaries.len() + f.backups.len(), needed, counts }
}

/// The outcome of one attempt at execution.
#[derive(Debug)]
pub enum Attempt {
    Done(Box<Draw>, Vec<Assignment>),
    /// The walk in the transaction placed someone the fence did not cover, or a booking was lost
    /// to a concurrent draw: roll back and walk again.
    Again,
}

/// Takes the fence's locks, or goes on without them when the lock store is down (the database
/// still decides); busy keys after the wait are a clean `UNAVAILABLE`.
pub async fn fence(locks: &Locks, keys: &[String]) -> Result<Option<LockGuard>, Error> {
    match locks.acquire(keys, LOCK_TTL, LOCK_WAIT).await {
        Ok(guard) => Ok(Some(guard)),
        Err(LockError::Unavailable(e)) => {
            tracing::warn!(error = %e, "the lock store is down; the bookings' unique index fences alone");
            Ok(None)
        }
        Err(LockError::Busy(_)) => Err(Error::Busy("another draw holds these experts' half-days".into())),
    }
}

pub async fn unfence(locks: &Locks, guard: Option<LockGuard>) {
    if let Some(guard) = guard
        && let Err(e) = locks.release(guard).await
    {
        tracing::warn!(error = %e, "fence locks not released; they expire on their own");
    }
}

/// The registry's facts now about the head of a draw's order, for execution's re-check (step 5):
/// the walk looks only at the first candidates of the order until the team is full, so only
/// those are asked about, a window at a time ([`widen`]). A candidate asked about and absent from
/// the answer is not in the pool now, exactly as if the whole pool had been read; a walk that
/// reaches a candidate not yet asked about is not used ([`walk`] answers `None`) and the window
/// grows instead, so the outcome is the one the whole pool would give.
#[derive(Debug, Default)]
pub struct Recheck {
    /// How many candidates of the order, from its head, were asked about.
    asked: usize,
    /// Their ids.
    asked_ids: HashSet<String>,
    /// What the registry answered about them.
    experts: HashMap<String, PoolExpert>,
}

impl Recheck {
    /// The registry's facts about `id`, if it was asked about and the pool holds it.
    pub fn get(&self, id: &str) -> Option<&PoolExpert> {
        self.experts.get(id)
    }

    /// Candidates of the order asked about so far.
    pub fn asked(&self) -> usize {
        self.asked
    }
}

/// The first window of the re-check: four times the team and its backups, at least 16.
pub fn first_window(team: TeamSize) -> usize {
    (4 * team.total()).max(16)
}

/// Asks the registry about the next window of `x`'s order: the first [`first_window`]
/// candidates, then as many more as were asked so far (the window doubles). `false` when the
/// whole order was already asked about (nothing to ask).
#[tracing::instrument(name = "draw.recheck", skip_all, fields(from = fresh.asked, to = tracing::field::Empty))]
pub async fn widen(
    db: &Db,
    registry: &crate::registry::Registry,
    x: &ToExecute,
    fresh: &mut Recheck,
    actor: &supervision_kit::auth::Actor,
) -> Result<bool, Error> {
    let count = x.order.len();
    let from = fresh.asked.min(count);
    let to = if from == 0 { first_window(team_of_draw(&x.draw)) } else { 2 * from }.min(count);
    if to <= from {
        return Ok(false);
    }
    tracing::Span::current().record("to", to);
    let ids: Vec<String> = x.order.ids().skip(from).take(to - from).map(|id| id.as_str().to_owned()).collect();
    let (_, dates) = slots(&x.task);
    let started = std::time::Instant::now();
    let found = registry.pool_experts(&x.task.details.institution_id, &dates, x.task.id.as_str(), &ids, actor).await?;
    crate::metrics::stage(db, crate::metrics::STAGE_RECHECK, started);
    fresh.experts.extend(found.into_iter().map(|e| (e.id.clone(), e)));
    fresh.asked_ids.extend(ids);
    fresh.asked = to;
    Ok(true)
}

/// The fence keys of the walk `x` would make now, outside any transaction; `None` when the walk
/// reaches candidates `fresh` has not asked the registry about yet ([`widen`] first).
pub async fn plan_fence(db: &Db, x: &ToExecute, fresh: &Recheck) -> Result<Option<Vec<String>>, Error> {
    let (slots, dates) = slots(&x.task);
    let mut conn = db.pool().acquire().await?;
    let booked = draw_store::booked_experts(&mut conn, &slots).await?;
    let team = team_of_draw(&x.draw);
    let Some(f) = walk(&x.order, team, &dates, &booked, fresh) else { return Ok(None) };
    if f.primaries.len() < team.primaries {
        crate::metrics::team_short(db);
        return Err(short(&f, team.total()));
    }
    Ok(Some(lock_keys(&placed(&f), &slots)))
}

pub(crate) fn team_of_draw(d: &Draw) -> TeamSize {
    TeamSize { primaries: d.team_size as usize, backups: d.backup_count as usize }
}

/// Steps 4-6 inside `tx`, under the fence on `fenced` keys: the walk with the bookings as they
/// stand now, the assignments and the primaries' bookings, the draw's record, the audit entry.
#[tracing::instrument(name = "draw.execute", skip_all, fields(draw_id = %x.draw.id))]
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn execute(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    x: &ToExecute,
    fresh: &Recheck,
    fenced: &[String],
) -> Result<Attempt, Error> {
    let mut draw =
        draw_store::get_draw(tx, &x.draw.id).await?.ok_or_else(|| Error::DrawNotFound(x.draw.id.to_string()))?;
    check_executable(&draw)?;
    // The task as it stands now: another draw executed, a void or a cancellation since prepare
    // (or since this request's first reads) means this draw no longer applies.
    let task = task_store::get_task(tx, &x.task.id).await?.ok_or_else(|| Error::TaskNotFound(x.task.id.to_string()))?;
    check_drawable(&task, draw.kind)?;
    let (slots, dates) = slots(&x.task);
    let booked = draw_store::booked_experts(tx, &slots).await?;
    let team = team_of_draw(&draw);
    // Bookings made since the fence was planned may push the walk past the candidates asked
    // about: walk again, the plan then widens the re-check first.
    let Some(f) = walk(&x.order, team, &dates, &booked, fresh) else { return Ok(Attempt::Again) };
    if f.primaries.len() < team.primaries {
        return Err(short(&f, team.total()));
    }
    let fenced: HashSet<&str> = fenced.iter().map(String::as_str).collect();
    if lock_keys(&placed(&f), &slots).iter().any(|k| !fenced.contains(k.as_str())) {
        return Ok(Attempt::Again);
    }
    let now = clock.now();
    let final_stage = match f.rule {
        SameEmployerRule::Enforced => Stage::Walk,
        SameEmployerRule::Relaxed => Stage::RelaxedWalk,
    };
    let untrained = UntrainedList::of(&x.untrained);
    let mut assignments = Vec::new();
    let mut walk_record = Vec::new();
    for (role, placements) in [(AssignmentRole::Primary, &f.primaries), (AssignmentRole::Backup, &f.backups)] {
        for p in placements {
            let a = Assignment::new(
                draw.task_id.clone(),
                draw.id.clone(),
                p.id.as_str().to_owned(),
                p.position + 1,
                role,
                fresh.get(p.id.as_str()).is_some_and(|e| e.trained),
                String::new(),
                now,
            );
            walk_record.push(Pick {
                position: p.position,
                expert_id: a.expert_id.clone(),
                outcome: match role {
                    AssignmentRole::Primary => Outcome::Primary,
                    AssignmentRole::Backup => Outcome::Backup,
                },
                reasons: Vec::new(),
                stage: stage_code(p.stage).to_owned(),
                teammate: p.shares_employer_with.as_ref().map(|t| t.as_str().to_owned()).unwrap_or_default(),
                assignment_id: a.id.to_string(),
                at: now,
                untrained: Some(untrained.contains(p.id.as_str())),
            });
            assignments.push(a);
        }
    }
    for s in &f.skips {
        let teammate = s
            .reasons
            .iter()
            .find_map(|r| match r {
                SkipReason::SameEmployer { teammate, .. } => Some(teammate.as_str().to_owned()),
                _ => None,
            })
            .unwrap_or_default();
        walk_record.push(Pick {
            position: s.position,
            expert_id: s.id.as_str().to_owned(),
            outcome: Outcome::Skipped,
            reasons: s.reasons.iter().map(skip_code).map(str::to_owned).collect(),
            stage: stage_code(s.stage).to_owned(),
            teammate,
            assignment_id: String::new(),
            at: now,
            untrained: Some(untrained.contains(s.id.as_str())),
        });
    }
    walk_record.sort_by_key(|p| (p.stage != stage_code(final_stage), p.position));
    for a in &assignments {
        draw_store::insert_assignment(tx, a).await?;
        if a.role != AssignmentRole::Primary {
            continue;
        }
        crate::notify::offered(tx, clock, &x.task, a).await?;
        for (date, half_day) in &slots {
            if let Err(err) = draw_store::insert_booking(tx, a, *date, *half_day).await {
                if is_unique_violation(&err, BOOKING_INDEX, BOOKING_COLUMNS) {
                    tracing::info!("a booking went to a concurrent draw; walking again");
                    return Ok(Attempt::Again);
                }
                return Err(err.into());
            }
        }
    }
    draw.status = DrawStatus::Executed;
    draw.order = order_head(&x.order, f.next_position);
    draw.walk = walk_record;
    draw.relaxations = f
        .relaxations
        .iter()
        .map(|r| match r {
            Relaxation::SameEmployer { taken, needed, .. } => {
                RelaxationRecord { rule: "SAME_EMPLOYER".into(), taken: *taken, needed: *needed, at: now }
            }
        })
        .collect();
    draw.next_position = f.next_position;
    draw.executed_at = Some(now);
    if !draw_store::record_execution(tx, &draw).await? {
        return Err(Error::draw_refused(Code::Aborted, "DRAW_CHANGED", format!("draw {} changed", draw.id)));
    }
    // Drawn: the task now waits for acceptances (STAFFING), as the contract's task states say.
    crate::responses::restaff(tx, clock, &x.task).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "draw",
        entity_id: draw.id.as_str(),
        action: "execute",
        before: Some(serde_json::json!({ "status": DrawStatus::Witnessed.code() })),
        after: Some(serde_json::json!({
            "status": draw.status.code(),
            "server_seed": draw.server_seed,
            "primaries": f.primaries.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            "backups": f.backups.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            "skips": f.skips.len(),
            "relaxed": f.rule == SameEmployerRule::Relaxed,
            "next_position": f.next_position,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    crate::metrics::drawn(db, x.started);
    Ok(Attempt::Done(Box::new(draw), assignments))
}

/// The order's first `through` places, as a draw records them (its head: the rest is ranked again
/// from the frozen list and the seed where it is needed).
pub(crate) fn order_head(order: &DrawOrder, through: usize) -> Vec<(String, String)> {
    order.candidates().take(through).map(|c| (c.id.as_str().to_owned(), c.ticket.as_fraction())).collect()
}

/// How many times execution walks again before giving up.
pub const fn attempts() -> usize {
    ATTEMPTS
}

pub(crate) fn stage_code(s: Stage) -> &'static str {
    match s {
        Stage::Walk => "WALK",
        Stage::RelaxedWalk => "RELAXED_WALK",
        Stage::Promotion => "PROMOTION",
        Stage::Continuation => "CONTINUATION",
    }
}

pub(crate) fn skip_code(r: &SkipReason) -> &'static str {
    match r {
        SkipReason::NotActive => "NOT_ACTIVE",
        SkipReason::NotFree => "NOT_FREE",
        SkipReason::SameEmployer { .. } => "SAME_EMPLOYER",
    }
}

/// Reads a draw the caller may see (D18: auditors, city roles, the dispatching bureau).
pub async fn get(db: &Db, caller: &Caller, id: &DrawId) -> Result<Draw, Error> {
    let mut conn = db.pool().acquire().await?;
    let draw = draw_store::get_draw(&mut conn, id).await?.ok_or_else(|| Error::DrawNotFound(id.to_string()))?;
    task_for(&mut conn, caller, &draw.task_id).await.map_err(|_| Error::DrawNotFound(id.to_string()))?;
    Ok(draw)
}

pub async fn list(db: &Db, filter: &DrawFilter, page: &Page) -> Result<(Vec<Draw>, Option<String>), Error> {
    let mut conn = db.pool().acquire().await?;
    let items = draw_store::list_draws(&mut conn, filter, &page.probe()).await?;
    Ok(page.finish(items, |d| d.id.to_string()))
}

/// A task's roster or an expert's assignments, within what the caller may see. An EXPERT sees
/// only their own.
pub async fn assignments(
    db: &Db,
    caller: &Caller,
    mut filter: AssignmentFilter,
    page: &Page,
) -> Result<(Vec<Assignment>, Option<String>), Error> {
    if caller.role == supervision_kit::Role::Expert {
        let own = caller.expert_id.clone().unwrap_or_default();
        if filter.expert_id.as_ref().is_some_and(|e| *e != own) || own.is_empty() {
            return Ok((Vec::new(), None));
        }
        filter.expert_id = Some(own);
        filter.visibility = TaskVisibility::All;
    }
    let mut conn = db.pool().acquire().await?;
    let items = draw_store::list_assignments(&mut conn, &filter, &page.probe()).await?;
    Ok(page.finish(items, |a| a.id.to_string()))
}

/// An executed draw's record as `crates/draw`'s verifier reads it, its frozen list read
/// ([`executed`] reads it). The recorded order is the head the draw stored, position by position,
/// then the rest of the order ranked again from the list and the seed: the verifier compares the
/// stored head with its own recomputation, and reports a head that no longer matches; a list
/// that no longer parses leaves the head alone, and the verifier reports the list.
pub fn record_of(draw: &Draw) -> supervision_draw::DrawRecord {
    let rest = draw.frozen_list.as_deref().and_then(|list| ranked(draw, list).ok());
    let final_stage = if draw.relaxations.is_empty() { "WALK" } else { "RELAXED_WALK" };
    let of = |outcome: Outcome| -> Vec<String> {
        let mut picks: Vec<&Pick> =
            draw.walk.iter().filter(|p| p.outcome == outcome && initial_stage(&p.stage)).collect();
        picks.sort_by_key(|p| p.position);
        picks.into_iter().map(|p| p.expert_id.clone()).collect()
    };
    supervision_draw::DrawRecord {
        frozen_list: draw.frozen_list.as_deref().unwrap_or_default().as_bytes().to_vec(),
        frozen_list_sha256: draw.frozen_list_sha256.clone(),
        candidate_count: draw.candidate_count,
        commitment: draw.seed_commitment.clone(),
        server_seed_hex: draw.revealed_seed().to_owned(),
        dice_digits: (!draw.dice_digits.is_empty()).then(|| draw.dice_digits.clone()),
        order: draw
            .order
            .iter()
            .map(|(id, ticket)| supervision_draw::RecordedRank { id: id.clone(), ticket: Some(ticket.clone()) })
            .chain(rest.iter().flat_map(|order| (draw.order.len()..order.len()).filter_map(|p| order.get(p))).map(
                |c| supervision_draw::RecordedRank {
                    id: c.id.as_str().to_owned(),
                    ticket: Some(c.ticket.as_fraction()),
                },
            ))
            .collect(),
        primaries: of(Outcome::Primary),
        backups: of(Outcome::Backup),
        skipped: draw
            .walk
            .iter()
            .filter(|p| p.outcome == Outcome::Skipped && p.stage == final_stage)
            .map(|p| p.expert_id.clone())
            .collect(),
    }
}

/// Whether a pick belongs to the draw's execution rather than to a later vacancy (PROMOTION,
/// CONTINUATION), which the verifier's replay of the fill does not cover.
fn initial_stage(stage: &str) -> bool {
    matches!(stage, "WALK" | "RELAXED_WALK")
}

/// An executed (or voided) draw, for ExportDraw and VerifyDraw: before execution the seed is
/// secret and there is no order to export or verify. A designation (D15) is not a random draw:
/// it has no frozen list, seed or order, so it is neither exported for re-running nor verified
/// (FAILED_PRECONDITION `NOT_A_RANDOM_DRAW`); GetDraw shows its experts, reason and operator.
pub async fn executed(db: &Db, caller: &Caller, id: &DrawId) -> Result<Draw, Error> {
    let mut draw = get(db, caller, id).await?;
    if draw.kind == DrawKind::Designation {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "NOT_A_RANDOM_DRAW",
            format!(
                "draw {} is a non-random DESIGNATION (D15), not a random draw: its experts were designated with a \
                 reason under the city's approval, and it has no frozen list, seed or order to export or verify",
                draw.id
            ),
        ));
    }
    if !matches!(draw.status, DrawStatus::Executed | DrawStatus::Voided) {
        return Err(Error::draw_refused(
            Code::FailedPrecondition,
            "DRAW_NOT_EXECUTED",
            format!("draw {} is {}; its seed is revealed only at execution", draw.id, draw.status.code()),
        ));
    }
    let mut conn = db.pool().acquire().await?;
    draw.frozen_list = draw_store::frozen_list(&mut conn, &draw).await?;
    draw.untrained = Some(draw_store::untrained(&mut conn, &draw.id).await?.into());
    Ok(draw)
}

/// The JSON record of ExportDraw (D18: ids and codes only).
pub fn export_json(draw: &Draw) -> serde_json::Value {
    let record = record_of(draw);
    serde_json::json!({
        "algorithm": draw.algorithm,
        "draw_id": draw.id.as_str(),
        "task_id": draw.task_id.as_str(),
        "status": draw.status.code(),
        "team_size": draw.team_size,
        "backup_count": draw.backup_count,
        "frozen_list_sha256": draw.frozen_list_sha256,
        "candidate_count": draw.candidate_count,
        "pool_count": draw.pool_count,
        "seed_commitment": draw.seed_commitment,
        "server_seed_hex": draw.revealed_seed(),
        "dice_digits": draw.dice_digits,
        "seed_string": draw.seed_string(),
        "order": record.order.iter().enumerate().map(|(i, rank)| serde_json::json!({
            "position": i + 1, "expert_id": rank.id, "ticket": rank.ticket,
        })).collect::<Vec<_>>(),
        "exclusions": draw.exclusions.iter().map(|e| serde_json::json!({
            "expert_id": e.expert_id,
            "reasons": e.reasons.iter().map(|r| r.code()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "untrained": draw.untrained.as_deref().unwrap_or_default(),
        "walk": draw.walk.iter().map(|p| serde_json::json!({
            "position": p.position + 1,
            "expert_id": p.expert_id,
            "outcome": match p.outcome { Outcome::Primary => "PRIMARY", Outcome::Backup => "BACKUP", Outcome::Skipped => "SKIPPED" },
            "reasons": p.reasons,
            "stage": p.stage,
            "teammate": p.teammate,
            "assignment_id": p.assignment_id,
        })).collect::<Vec<_>>(),
        "primaries": record.primaries,
        "backups": record.backups,
        "skipped": record.skipped,
        "relaxations": draw.relaxations.iter().map(|r| serde_json::json!({
            "rule": r.rule, "taken": r.taken, "needed": r.needed,
        })).collect::<Vec<_>>(),
        "next_position": draw.next_position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_list_serves_only_its_draw_with_the_recorded_hash_and_the_oldest_goes_first() {
        let lists = PreparedLists::default();
        let list = |n: usize| FrozenList::freeze_strs((0..n).map(|i| format!("exp_{i:032x}"))).unwrap();
        let first = DrawId::generate();
        lists.keep(&first, list(3), ["exp_1".to_owned()].into());
        let three = list(3).sha256_hex().to_owned();
        let kept = lists.get(&first, &three).unwrap();
        assert_eq!((kept.list.count(), &kept.untrained[..]), (3, &["exp_1".to_owned()][..]));
        assert!(lists.get(&first, list(4).sha256_hex()).is_none(), "another hash: read from the store");
        assert!(lists.get(&DrawId::generate(), &three).is_none(), "another draw");
        for n in 0..PreparedLists::KEPT {
            lists.keep(&DrawId::generate(), list(n + 5), Arc::default());
        }
        assert!(lists.get(&first, &three).is_none(), "the oldest was forgotten");
    }

    #[test]
    fn an_unchanged_pool_is_frozen_once_and_a_changed_one_again() {
        let expert = |id: &str| {
            Arc::new(PoolExpert {
                id: id.into(),
                active: true,
                term: None,
                trained: true,
                employer_key: String::new(),
                conflicted: false,
                employed_by_institution: false,
                leaves_on: None,
                specialties: Vec::new(),
            })
        };
        let lists = PreparedLists::default();
        let pool = vec![expert("exp_b"), expert("exp_a"), expert("exp_c")];
        let first = lists.pool(&pool).unwrap();
        assert_eq!(first.list.bytes(), b"exp_a\nexp_b\nexp_c\n");
        assert!(Arc::ptr_eq(&first, &lists.pool(&pool).unwrap()), "the same experts: list and facts kept");
        // A task's conflict clones its expert: another value, the same id. The list is kept; with
        // one expert in three another record, the facts are laid out again.
        let mut conflicted = PoolExpert::clone(&pool[1]);
        conflicted.conflicted = true;
        let overlaid = vec![Arc::clone(&pool[0]), Arc::new(conflicted), Arc::clone(&pool[2])];
        let again = lists.pool(&overlaid).unwrap();
        assert!(Arc::ptr_eq(&first.list, &again.list), "the same ids");
        assert!(
            !Arc::ptr_eq(&first, &again) && again.facts.changed_in(&overlaid) == Some(0),
            "facts of the new records"
        );
        let changed = vec![Arc::clone(&pool[0]), expert("exp_d"), Arc::clone(&pool[2])];
        assert_eq!(lists.pool(&changed).unwrap().list.bytes(), b"exp_b\nexp_c\nexp_d\n");
        let shorter = &pool[..2];
        assert_eq!(lists.pool(shorter).unwrap().list.bytes(), b"exp_a\nexp_b\n");
    }

    /// A re-check of the first `asked` candidates of `order`, answered from `pool`.
    fn recheck(order: &DrawOrder, asked: usize, pool: &HashMap<String, PoolExpert>) -> Recheck {
        let ids: Vec<String> = order.ids().take(asked).map(|id| id.as_str().to_owned()).collect();
        Recheck {
            asked,
            experts: ids.iter().filter_map(|id| pool.get(id).map(|e| (id.clone(), e.clone()))).collect(),
            asked_ids: ids.into_iter().collect(),
        }
    }

    #[test]
    fn the_windowed_walk_is_the_walk_over_the_whole_pool() {
        let dates: Vec<NaiveDate> = vec!["2026-06-08".parse().unwrap()];
        let ids: Vec<String> = (0..300u32).map(|n| format!("exp_{n:032x}")).collect();
        let list = FrozenList::freeze_strs(&ids).unwrap();
        // Some inactive, some gone from the pool, some sharing an employer, some booked.
        let pool: HashMap<String, PoolExpert> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 7 != 0)
            .map(|(i, id)| {
                let e = PoolExpert {
                    id: id.clone(),
                    active: i % 3 != 0,
                    term: Some(("2025-06-01".parse().unwrap(), "2027-05-31".parse().unwrap())),
                    trained: i % 2 == 0,
                    employer_key: if i % 4 == 0 { format!("emp{}", i % 5) } else { String::new() },
                    conflicted: false,
                    employed_by_institution: false,
                    leaves_on: None,
                    specialties: Vec::new(),
                };
                (id.clone(), e)
            })
            .collect();
        let booked: HashSet<String> =
            ids.iter().enumerate().filter(|(i, _)| i % 5 == 0).map(|(_, id)| id.clone()).collect();
        let (mut widened, mut relaxed) = (0, 0);
        for s in 0..30u32 {
            let seed = ServerSeed::from_hex(&format!("{:064x}", u64::from(s) * 0x9e37_79b9 + 1)).unwrap();
            let order = rank(&list, &SeedString::new(&seed, None));
            for team in [(2, 2), (5, 3), (20, 20), (60, 40), (100, 50)] {
                let team = TeamSize { primaries: team.0, backups: team.1 };
                let whole = walk(&order, team, &dates, &booked, &recheck(&order, order.len(), &pool)).unwrap();
                let mut asked = first_window(team).min(order.len());
                let windowed = loop {
                    match walk(&order, team, &dates, &booked, &recheck(&order, asked, &pool)) {
                        Some(f) => break f,
                        None => {
                            assert!(asked < order.len(), "a walk over the whole order knows every candidate");
                            asked = (2 * asked).min(order.len());
                            widened += 1;
                        }
                    }
                };
                assert_eq!(windowed, whole, "seed {s}, team {team:?}, window {asked}");
                relaxed += usize::from(whole.rule == SameEmployerRule::Relaxed);
            }
        }
        assert!(widened > 0 && relaxed > 0, "the cases cover widening ({widened}) and relaxation ({relaxed})");
    }
}
