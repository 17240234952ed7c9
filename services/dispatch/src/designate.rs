//! DesignateExperts: a non-random designation of experts (D15; DOMAIN.md 9.5), the last of D15's
//! fallbacks when a pool is too small, or a FOLLOW_UP re-inspection's original experts. It is
//! labelled as such everywhere: a draw record of kind DESIGNATION, never random, never verified,
//! left out of randomness statistics.
//!
//! Choices written down here (docs/dispatch.md "Designations"):
//! - Only for a task carrying the NON_RANDOM_DESIGNATION exception approved by CITY_ADMIN
//!   (ApproveTaskException); otherwise FAILED_PRECONDITION `DESIGNATION_NOT_APPROVED`. The caller
//!   is who may prepare and execute a draw for the dispatching bureau (docs/rpc-roles.md).
//! - A designation takes the place of the task's initial draw: the task is OPEN with every
//!   exception approved (as PrepareDraw), no other draw of it is PREPARED, WITNESSED or EXECUTED
//!   (FAILED_PRECONDITION `OTHER_DRAW_STANDS`, as VoidDraw), and the record shares the initial
//!   draw's live key, so the database keeps the task to one live initial draw or designation
//!   whichever commits first. Voiding it (VoidDraw, by a second person) reopens the task.
//! - Exactly N experts (the task's team, or the city's REDUCED_TEAM), as primaries; no backups.
//!   A vacancy finds the designation's order exhausted at once: the task becomes UNDERSTAFFED,
//!   and a supplementary draw (random, leaving out every expert already contacted) fills it.
//! - D14's hard exclusions still apply to every designated expert, with the registry's pool as
//!   PrepareDraw streams it: not in the pool (no appointment, or a term ended before the first
//!   session), not active (suspended, retired, terminated, lapsed, or leaving by a session date),
//!   out of term on a session date, employed by the institution, otherwise conflicted for it,
//!   already booked on one of the task's half-days, the task's reporter. So does the team's
//!   same-employer rule, never relaxed here. One refused expert refuses the whole designation
//!   (FAILED_PRECONDITION `EXPERTS_REFUSED`, each expert id with every reason code in the
//!   ErrorInfo metadata and the message) and nothing is written. The soft rules (specialty,
//!   cooling period, monthly cap) are the random pool's and do not apply; untrained experts are
//!   flagged as on a draw.
//! - The record: kind DESIGNATION, status EXECUTED, no algorithm, frozen list, seed, commitment
//!   or order; the operator, the reason, and the approval it rests on (approver, time, reason);
//!   one pick per expert at stage `DESIGNATION`. Assignments, notifications (ASSIGNMENT_OFFERED)
//!   and bookings as for a draw's primaries, under the same fence: in-process or Redis locks on
//!   every (expert, date, half-day), and the database's unique index on bookings, which decides.
//!   A booking lost to a concurrent draw refuses the expert as ALREADY_BOOKED.
//! - ExportDraw and VerifyDraw answer FAILED_PRECONDITION `NOT_A_RANDOM_DRAW` for it; the draw
//!   metrics (`metrics.rs`) never count it.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, SharedClock,
    audit::{self, Change},
    convert::required_text,
    idempotency::Command,
    storage::is_unique_violation,
    vocab::is_prefixed_id,
};
use supervision_proto::dispatch as pb;
use tonic::{Code, Response, Status};

use crate::{
    convert,
    domain::{
        Assignment, AssignmentRole, Draw, DrawId, DrawKind, DrawStatus, ExceptionKind, Outcome, Pick, PoolExpert, Task,
        TaskId, draw::Designation,
    },
    draws,
    error::Error,
    registry::Registry,
    store::draws::{self as draw_store, BOOKING_COLUMNS, BOOKING_INDEX},
};

/// The method, as the idempotency scope and the audit entries name it.
pub const METHOD: &str = "/supervision.dispatch.v1.DispatchService/DesignateExperts";
/// The stage of a designation's picks.
pub const STAGE: &str = "DESIGNATION";
/// Far above any real team, as CreateTask's bound on N.
pub const MAX_EXPERTS: usize = 10;
const MAX_REASON_CHARS: usize = 500;

/// Not in the registry's pool: no appointment, or a term that ended before the first session.
pub const NOT_IN_POOL: &str = "NOT_IN_POOL";
/// Employed by the institution (the registry's CURRENT_EMPLOYMENT relation or employer path).
pub const EMPLOYED_BY_INSTITUTION: &str = "EMPLOYED_BY_INSTITUTION";
/// Another designated expert has the same employer (D14; an expert with none never counts).
pub const SAME_EMPLOYER: &str = "SAME_EMPLOYER";

/// A validated DesignateExpertsRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub task_id: TaskId,
    /// In the request's order: the picks' positions.
    pub experts: Vec<String>,
    pub reason: String,
}

/// The request's fields, every problem a field violation: a task id, 1 to [`MAX_EXPERTS`]
/// distinct expert ids, a reason.
pub fn asked(req: &pb::DesignateExpertsRequest) -> Result<Asked, Status> {
    let mut v = FieldViolations::new();
    let task_id = TaskId::parse(&req.task_id);
    if task_id.is_none() {
        v.add("task_id", "is not a task id (tsk_...)");
    }
    if req.expert_ids.is_empty() {
        v.add("expert_ids", "must name the experts designated");
    } else if req.expert_ids.len() > MAX_EXPERTS {
        v.add("expert_ids", format!("must name at most {MAX_EXPERTS} experts"));
    }
    let mut seen = HashSet::new();
    for (i, id) in req.expert_ids.iter().enumerate().take(MAX_EXPERTS + 1) {
        if !is_prefixed_id(id, "exp_") {
            v.add(format!("expert_ids[{i}]"), "is not an expert id (exp_...)");
        } else if !seen.insert(id.as_str()) {
            v.add(format!("expert_ids[{i}]"), "names an expert already named");
        }
    }
    let reason = required_text(&req.reason, "reason", MAX_REASON_CHARS, &mut v);
    v.check()?;
    let Some(task_id) = task_id else { unreachable!("recorded as a violation") };
    Ok(Asked { task_id, experts: req.expert_ids.clone(), reason })
}

fn refused(code: Code, reason: &'static str, message: String) -> Error {
    Error::draw_refused(code, reason, message)
}

/// The checks on the task alone: the approved exception, OPEN with every exception approved,
/// and N experts. Answers the approval the designation rests on.
fn check_designable(task: &Task, experts: usize) -> Result<Designation, Error> {
    let approval =
        task.exception(ExceptionKind::NonRandomDesignation).and_then(|e| e.approval.clone()).ok_or_else(|| {
            refused(
                Code::FailedPrecondition,
                "DESIGNATION_NOT_APPROVED",
                format!(
                    "task {} has no approved NON_RANDOM_DESIGNATION exception: experts are designated without a \
                     draw only with CITY_ADMIN's approval (ApproveTaskException, D15)",
                    task.number
                ),
            )
        })?;
    draws::check_drawable(task, DrawKind::Designation)?;
    let team = draws::team_of(task).primaries;
    if experts != team {
        return Err(refused(
            Code::FailedPrecondition,
            "DESIGNATION_TEAM_SIZE",
            format!("task {} has a team of {team}; designate exactly {team} experts, not {experts}", task.number),
        ));
    }
    Ok(Designation {
        reason: String::new(),
        approved_by: approval.by,
        approved_at: approval.at,
        approval_reason: approval.reason,
    })
}

/// What a designation needs before its transaction: the registry's pool facts for the designated
/// experts (absent when the pool does not hold them), and the fence keys of their half-days.
#[derive(Debug)]
pub struct Plan {
    pub pool: HashMap<String, PoolExpert>,
    pub keys: Vec<String>,
}

/// The checks that need no transaction, then the designated experts' facts from the registry's
/// pool (the same facts and conflict reasons PrepareDraw streams, asked for these ids only), so no
/// database lock is held over the network call and nothing is written when the registry cannot
/// answer.
pub async fn plan(db: &Db, registry: &Registry, caller: &Caller, asked: &Asked) -> Result<Plan, Error> {
    let task = {
        let mut conn = db.pool().acquire().await?;
        draws::task_for(&mut conn, caller, &asked.task_id).await?
    };
    check_designable(&task, asked.experts.len())?;
    let (slots, dates) = draws::slots(&task);
    let pool = registry
        .pool_experts(&task.details.institution_id, &dates, task.id.as_str(), &asked.experts, &caller.actor())
        .await?
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    let keys = draws::lock_keys(&asked.experts, &slots);
    Ok(Plan { pool, keys })
}

/// Every designated expert a hard exclusion or the same-employer rule keeps out, in the
/// request's order, each with every reason code.
pub fn refusals(
    experts: &[String],
    pool: &HashMap<String, PoolExpert>,
    dates: &[NaiveDate],
    booked: &HashSet<String>,
    reporter: &str,
) -> Vec<(String, Vec<String>)> {
    let employer = |id: &str| pool.get(id).map(|e| e.employer_key.as_str()).filter(|k| !k.is_empty());
    let mut out = Vec::new();
    for id in experts {
        let mut reasons: Vec<&str> = Vec::new();
        match pool.get(id) {
            None => reasons.push(NOT_IN_POOL),
            Some(e) => {
                if !e.active_through(dates) {
                    reasons.push(crate::domain::ExclusionReason::NotActive.code());
                }
                if !e.in_term(dates) {
                    reasons.push(crate::domain::ExclusionReason::OutOfTerm.code());
                }
                if e.employed_by_institution {
                    reasons.push(EMPLOYED_BY_INSTITUTION);
                } else if e.conflicted {
                    reasons.push(crate::domain::ExclusionReason::Conflicted.code());
                }
            }
        }
        if booked.contains(id) {
            reasons.push(crate::domain::ExclusionReason::AlreadyBooked.code());
        }
        if !reporter.is_empty() && id == reporter {
            reasons.push(crate::domain::ExclusionReason::Reporter.code());
        }
        if let Some(key) = employer(id)
            && experts.iter().any(|other| other != id && employer(other) == Some(key))
        {
            reasons.push(SAME_EMPLOYER);
        }
        if !reasons.is_empty() {
            out.push((id.clone(), reasons.into_iter().map(str::to_owned).collect()));
        }
    }
    out
}

/// The designation inside `tx`, under the fence on `plan.keys`: the task read again and checked,
/// no other draw standing, the hard exclusions against the bookings as they stand, then the
/// record, the assignments with their notifications and bookings, the task STAFFING, the audit
/// entry.
#[tracing::instrument(name = "draw.designate", skip_all, fields(experts = asked.experts.len()))]
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn designate(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    asked: &Asked,
    plan: &Plan,
) -> Result<(Draw, Vec<Assignment>), Error> {
    let task = draws::task_for(tx, caller, &asked.task_id).await?;
    let mut designation = check_designable(&task, asked.experts.len())?;
    designation.reason = asked.reason.clone();
    let standing = draw_store::task_draws(tx, &task.id).await?;
    if let Some(other) = standing
        .iter()
        .find(|d| matches!(d.status, DrawStatus::Prepared | DrawStatus::Witnessed | DrawStatus::Executed))
    {
        return Err(other_draw_stands(&task, &other.id.to_string(), other.status.code()));
    }
    let (slots, dates) = draws::slots(&task);
    // The sessions changed since the fence was planned: its keys no longer cover them.
    let fenced: HashSet<&str> = plan.keys.iter().map(String::as_str).collect();
    if draws::lock_keys(&asked.experts, &slots).iter().any(|k| !fenced.contains(k.as_str())) {
        return Err(Error::TaskChanged(task.id.to_string()));
    }
    let booked = draw_store::booked_experts(tx, &slots).await?;
    let refused = refusals(&asked.experts, &plan.pool, &dates, &booked, &task.details.reporter_expert_id);
    if !refused.is_empty() {
        return Err(Error::ExpertsRefused(refused));
    }

    let now = clock.now();
    let id = DrawId::generate();
    let trained = |expert: &str| plan.pool.get(expert).is_some_and(|e| e.trained);
    let assignments: Vec<Assignment> = asked
        .experts
        .iter()
        .enumerate()
        .map(|(i, expert)| {
            Assignment::new(
                task.id.clone(),
                id.clone(),
                expert.clone(),
                i + 1,
                AssignmentRole::Primary,
                trained(expert),
                String::new(),
                now,
            )
        })
        .collect();
    let draw = Draw {
        id,
        task_id: task.id.clone(),
        kind: DrawKind::Designation,
        supplements: String::new(),
        status: DrawStatus::Executed,
        algorithm: String::new(),
        edition_number: task.edition_number,
        team_size: u32::try_from(asked.experts.len()).unwrap_or(u32::MAX),
        backup_count: 0,
        frozen_list: None,
        frozen_list_sha256: String::new(),
        pool_list_sha256: String::new(),
        candidate_count: 0,
        // For a designation: how many of the designated experts the pool holds.
        pool_count: plan.pool.len(),
        exclusions: Vec::new(),
        untrained: Some(asked.experts.iter().filter(|e| !trained(e)).cloned().collect()),
        server_seed: String::new(),
        seed_commitment: String::new(),
        dice_digits: String::new(),
        order: Vec::new(),
        walk: assignments
            .iter()
            .enumerate()
            .map(|(i, a)| Pick {
                position: i,
                expert_id: a.expert_id.clone(),
                outcome: Outcome::Primary,
                reasons: Vec::new(),
                stage: STAGE.to_owned(),
                teammate: String::new(),
                assignment_id: a.id.to_string(),
                at: now,
                untrained: Some(!trained(&a.expert_id)),
            })
            .collect(),
        relaxations: Vec::new(),
        pool_relaxations: Vec::new(),
        specialty_tier: 0,
        // The walk of the designation's given order ends where it starts: nothing to continue.
        next_position: asked.experts.len(),
        operator: caller.actor(),
        witness: None,
        prepared_at: now,
        witnessed_at: None,
        executed_at: Some(now),
        abandon_reason: String::new(),
        void: None,
        designation: Some(designation),
    };
    if let Err(err) = draw_store::insert_draw(tx, &draw).await {
        if is_unique_violation(&err, "draws_live_key_key", "draws.live_key") {
            return Err(other_draw_stands(&task, "another", "live"));
        }
        return Err(err.into());
    }
    for a in &assignments {
        draw_store::insert_assignment(tx, a).await?;
        crate::notify::offered(tx, clock, &task, a).await?;
        for (date, half_day) in &slots {
            if let Err(err) = draw_store::insert_booking(tx, a, *date, *half_day).await {
                if is_unique_violation(&err, BOOKING_INDEX, BOOKING_COLUMNS) {
                    let booked = crate::domain::ExclusionReason::AlreadyBooked.code().to_owned();
                    return Err(Error::ExpertsRefused(vec![(a.expert_id.clone(), vec![booked])]));
                }
                return Err(err.into());
            }
        }
    }
    crate::responses::restaff(tx, clock, &task).await?;
    let designation = draw.designation.as_ref();
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "draw",
        entity_id: draw.id.as_str(),
        action: "designate",
        before: None,
        after: Some(serde_json::json!({
            "task_id": draw.task_id.as_str(),
            "kind": draw.kind.code(),
            "random": false,
            "status": draw.status.code(),
            "experts": asked.experts,
            "assignment_ids": assignments.iter().map(|a| a.id.to_string()).collect::<Vec<_>>(),
            "reason": asked.reason,
            "approved_by": designation.map(|d| d.approved_by.subject.clone()),
            "approved_at": designation.map(|d| supervision_kit::storage::format_instant(d.approved_at)),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok((draw, assignments))
}

/// A designation's order, for the vacancy machinery of `responses.rs`: its experts as designated
/// (its `DESIGNATION` picks by position), given rather than drawn, with the walk already at the
/// end (`next_position`), so a vacancy finds no backup and no candidate left.
pub fn order_of(draw: &Draw) -> Result<supervision_draw::DrawOrder, Error> {
    let mut picks: Vec<&Pick> = draw.walk.iter().filter(|p| p.stage == STAGE).collect();
    picks.sort_by_key(|p| p.position);
    let ids = picks
        .into_iter()
        .map(|p| supervision_draw::ExpertId::parse(&p.expert_id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Store(crate::store::StoreError::Corrupt {
                id: draw.id.to_string(),
                problem: format!("designated expert: {e}"),
            })
        })?;
    Ok(supervision_draw::DrawOrder::given(ids))
}

fn other_draw_stands(task: &Task, draw: &str, status: &str) -> Error {
    refused(
        Code::FailedPrecondition,
        "OTHER_DRAW_STANDS",
        format!(
            "draw {draw} of task {} is {status}; a designation takes the place of the task's draw: abandon or void \
             that draw first",
            task.number
        ),
    )
}

/// The designation in one transaction claimed with the request's idempotency key: a retry of one
/// that succeeded answers its first response; a refused one writes nothing (the claim rolls back).
pub async fn record(
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    asked: &Asked,
    plan: &Plan,
) -> Result<Response<pb::DesignateExpertsResponse>, Status> {
    let mut claim = supervision_kit::claim_or_replay!(db, clock, command);
    let (draw, assignments) = designate(claim.tx(), db, clock, caller, command, asked, plan).await?;
    let response = pb::DesignateExpertsResponse {
        draw: Some(convert::draw_to_proto(&draw)),
        assignments: assignments
            .iter()
            .map(|a| pb::Assignment { designated: true, ..convert::assignment_to_proto(a) })
            .collect(),
    };
    claim.finish(&response).await?;
    Ok(Response::new(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expert(id: &str, employer: &str) -> PoolExpert {
        PoolExpert {
            id: id.into(),
            active: true,
            term: Some(("2025-06-01".parse().unwrap(), "2027-05-31".parse().unwrap())),
            trained: true,
            employer_key: employer.into(),
            conflicted: false,
            employed_by_institution: false,
            leaves_on: None,
            specialties: Vec::new(),
        }
    }

    #[test]
    fn every_refused_expert_is_named_with_every_reason() {
        let dates = ["2026-06-08".parse().unwrap()];
        let mut suspended = expert("b", "");
        suspended.active = false;
        let mut leaving = expert("c", "");
        leaving.leaves_on = Some("2026-06-08".parse().unwrap());
        let mut ended = expert("d", "");
        ended.term = Some(("2024-06-01".parse().unwrap(), "2026-05-31".parse().unwrap()));
        let mut employed = expert("e", "");
        employed.conflicted = true;
        employed.employed_by_institution = true;
        let mut related = expert("f", "");
        related.conflicted = true;
        let pool: HashMap<String, PoolExpert> = [
            expert("a", "u1"),
            suspended,
            leaving,
            ended,
            employed,
            related,
            expert("g", ""),
            expert("h", "u1"),
            expert("i", "u2"),
            expert("j", ""),
            expert("k", ""),
        ]
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
        let booked: HashSet<String> = ["g".to_owned()].into();
        let asked: Vec<String> =
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "z"].iter().map(|s| (*s).to_owned()).collect();
        let got = refusals(&asked, &pool, &dates, &booked, "j");
        let got: Vec<(&str, Vec<&str>)> =
            got.iter().map(|(id, r)| (id.as_str(), r.iter().map(String::as_str).collect())).collect();
        assert_eq!(
            got,
            [
                ("a", vec![SAME_EMPLOYER]),
                ("b", vec!["NOT_ACTIVE"]),
                ("c", vec!["NOT_ACTIVE"]),
                ("d", vec!["OUT_OF_TERM"]),
                ("e", vec![EMPLOYED_BY_INSTITUTION]),
                ("f", vec!["CONFLICTED"]),
                ("g", vec!["ALREADY_BOOKED"]),
                ("h", vec![SAME_EMPLOYER]),
                ("j", vec!["REPORTER"]),
                ("z", vec![NOT_IN_POOL]),
            ]
        );
        // Free, active, in term, unconflicted, distinct or no employers: nobody refused.
        let fine: Vec<String> = ["i", "k", "a"].iter().map(|s| (*s).to_owned()).collect();
        assert!(refusals(&fine, &pool, &dates, &booked, "j").is_empty());
    }

    #[test]
    fn the_request_is_checked_field_by_field() {
        use tonic_types::StatusExt;
        let fields = |req: pb::DesignateExpertsRequest| -> Vec<String> {
            let status = asked(&req).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
        };
        let expert = |n: u32| format!("exp_{n:032x}");
        assert_eq!(fields(pb::DesignateExpertsRequest::default()), ["task_id", "expert_ids", "reason"]);
        let twice = pb::DesignateExpertsRequest {
            request_id: "r".into(),
            task_id: format!("tsk_{:032x}", 1),
            expert_ids: vec![expert(1), "E2".into(), expert(1)],
            reason: "   ".into(),
        };
        assert_eq!(fields(twice), ["expert_ids[1]", "expert_ids[2]", "reason"]);
        let many = pb::DesignateExpertsRequest {
            task_id: format!("tsk_{:032x}", 1),
            expert_ids: (0..11).map(expert).collect(),
            reason: "复查原专家".into(),
            ..Default::default()
        };
        assert_eq!(fields(many), ["expert_ids"]);
        let fine = pb::DesignateExpertsRequest {
            task_id: format!("tsk_{:032x}", 1),
            expert_ids: vec![expert(2), expert(1)],
            reason: " 复查原专家 ".into(),
            ..Default::default()
        };
        let fine = asked(&fine).unwrap();
        assert_eq!((fine.experts, fine.reason.as_str()), (vec![expert(2), expert(1)], "复查原专家"));
    }
}
