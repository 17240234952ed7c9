//! Lifecycle of terms: the D5 yearly classifications dispatch sends, the article 12(三)
//! retirement proposals they lead to, and the pass the job runner runs under its lease (terms
//! that ended, proposals due).
//!
//! Choices where the sources leave room (written down in docs/registry-rules.md):
//! - a classification is keyed by expert and year; a higher revision replaces a lower one, an
//!   equal or lower one is ignored (`applied` false);
//! - the registry itself treats as NEUTRAL the year in which a term that is not a renewal began
//!   after the edition's `appointment_year_neutral_after` (1 July), whatever dispatch sent;
//! - a streak is `non_acceptance_years` (2) adjacent NON_ACCEPTING years; a NEUTRAL or ACCEPTING
//!   year (or a year never classified) breaks it;
//! - a streak proposes retirement once per run of years, only while the expert serves (ACTIVE or
//!   SUSPENDED), never while another proposal of the expert is pending; it applies on its
//!   `apply_date` = `confirmation_working_days` (10) working days after the day it was proposed,
//!   unless the city holds it; a corrected classification that breaks the streak withdraws a
//!   pending proposal; a proposal due for an expert who no longer serves is withdrawn;
//! - a term whose last day has passed without renewal ends (article 11): RETIRED with ground
//!   TERM_ENDED per the status table (DOMAIN.md 6.3), the certificate expired, effective the day
//!   after the last day, with the ExpertStatusChanged row in the outbox (D17);
//! - every change by the pass is made as SERVICE `registry`, audited under `job:registry-lifecycle`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate};
use sqlx::{Any, Row, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, Page, Role, SharedClock, audit,
    convert::{date, long_text, timestamp},
    idempotency::Command,
    vocab::{is_prefixed_id, new_prefixed_id},
};
use supervision_proto::registry as pb;
use supervision_reference::{Reference, shanghai_today};
use tonic::Status;

use crate::{
    appointments::lifecycle_change,
    domain::{ExpertId, StatusGround},
    error::Error,
    experts::snapshot,
    incidents::{decode_body, encode_body},
};

/// The job's name (its lease row) and the method its audit entries carry.
pub const JOB: &str = "registry-lifecycle";
pub const JOB_METHOD: &str = "job:registry-lifecycle";

const PROPOSAL_PREFIX: &str = "rtp_";

/// The identity lifecycle passes act under.
pub fn registry_caller() -> Caller {
    Caller { subject: "registry".into(), role: Role::Service, bureau: None, expert_id: None, acting_for: None }
}

fn job_command(caller: &Caller, key: &str) -> Result<Command, Error> {
    Command::new(caller, JOB_METHOD, key, &pb::GetIncidentRequest { id: key.to_owned() })
        .map_err(|e| Error::Invalid(vec![("request_id".into(), e.message().to_owned())]))
}

fn classification_code(c: i32) -> &'static str {
    let name = pb::YearClassification::try_from(c).unwrap_or_default().as_str_name();
    name.strip_prefix("YEAR_CLASSIFICATION_").unwrap_or(name)
}

fn proposal_status_code(s: i32) -> &'static str {
    let name = pb::RetirementProposalStatus::try_from(s).unwrap_or_default().as_str_name();
    name.strip_prefix("RETIREMENT_PROPOSAL_STATUS_").unwrap_or(name)
}

/// Checks a RecordYearlyAcceptance request: `request_id` is `<expert_id>:<year>:<revision>`.
pub fn yearly(req: &pb::RecordYearlyAcceptanceRequest) -> Result<pb::YearlyAcceptance, Status> {
    let mut v = FieldViolations::new();
    let expert_id = req.expert_id.trim();
    if ExpertId::parse(expert_id).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    if !(2000..=2200).contains(&req.year) {
        v.add("year", "must be a calendar year");
    }
    if req.revision < 1 {
        v.add("revision", "starts at 1 and increases with each correction");
    }
    supervision_kit::convert::required_enum::<pb::YearClassification>(
        req.classification,
        "classification",
        "ACCEPTING, NON_ACCEPTING or NEUTRAL",
        &mut v,
    );
    for (field, n) in [
        ("acceptances", req.acceptances),
        ("non_acceptances", req.non_acceptances),
        ("neutral_outcomes", req.neutral_outcomes),
    ] {
        if n < 0 {
            v.add(field, "must not be negative");
        }
    }
    if req.request_id != format!("{expert_id}:{}:{}", req.year, req.revision) {
        v.add("request_id", "must be `<expert_id>:<year>:<revision>`");
    }
    v.check()?;
    Ok(pb::YearlyAcceptance {
        expert_id: expert_id.to_owned(),
        year: req.year,
        classification: req.classification,
        revision: req.revision,
        acceptances: req.acceptances,
        non_acceptances: req.non_acceptances,
        neutral_outcomes: req.neutral_outcomes,
        source: pb::AcceptanceSource::Dispatch as i32,
        record_time: None,
    })
}

async fn held_acceptance(
    tx: &mut Transaction<'static, Any>,
    expert_id: &str,
    year: i32,
) -> Result<Option<pb::YearlyAcceptance>, Error> {
    let row = sqlx::query("SELECT body FROM yearly_acceptances WHERE expert_id = $1 AND year = $2")
        .bind(expert_id)
        .bind(year)
        .fetch_optional(&mut **tx)
        .await?;
    row.map(|r| decode_body("yearly_acceptances", expert_id, &r.try_get::<String, _>("body")?)).transpose()
}

/// Records a classification inside `tx` (a newer revision replaces, an older one is ignored) and
/// re-evaluates the expert's streak.
#[allow(clippy::too_many_arguments)]
pub async fn record_yearly(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    mut new: pb::YearlyAcceptance,
) -> Result<pb::RecordYearlyAcceptanceResponse, Error> {
    let id = ExpertId::parse(&new.expert_id).ok_or_else(|| Error::ExpertNotFound(new.expert_id.clone()))?;
    if !crate::store::experts::touch_expert(tx, &id, None, clock.now()).await? {
        return Err(Error::ExpertNotFound(new.expert_id.clone()));
    }
    if let Some(held) = held_acceptance(tx, &new.expert_id, new.year).await?
        && held.revision >= new.revision
    {
        return Ok(pb::RecordYearlyAcceptanceResponse { acceptance: Some(held), applied: false, proposal: None });
    }
    new.record_time = Some(timestamp(clock.now()));
    sqlx::query(
        "INSERT INTO yearly_acceptances (expert_id, year, revision, classification, body) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (expert_id, year) DO UPDATE SET revision = excluded.revision, \
         classification = excluded.classification, body = excluded.body",
    )
    .bind(&new.expert_id)
    .bind(new.year)
    .bind(new.revision)
    .bind(classification_code(new.classification))
    .bind(encode_body(&new))
    .execute(&mut **tx)
    .await?;
    let after = serde_json::json!({
        "year": new.year,
        "revision": new.revision,
        "classification": classification_code(new.classification),
    });
    append_audit(tx, db, clock, caller, command, "expert", &new.expert_id, "yearly_acceptance", Some(after)).await?;
    let proposal = evaluate(tx, db, clock, reference, caller, command, &id).await?;
    Ok(pb::RecordYearlyAcceptanceResponse { acceptance: Some(new), applied: true, proposal })
}

#[allow(clippy::too_many_arguments)]
async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    entity_type: &str,
    id: &str,
    action: &str,
    after: Option<serde_json::Value>,
) -> Result<(), Error> {
    let change = audit::Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type,
        entity_id: id,
        action,
        before: None,
        after,
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

async fn proposals_of(
    tx: &mut Transaction<'static, Any>,
    expert_id: &str,
) -> Result<Vec<pb::RetirementProposal>, Error> {
    let rows = sqlx::query("SELECT id, body FROM retirement_proposals WHERE expert_id = $1 ORDER BY id")
        .bind(expert_id)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            decode_body("retirement_proposals", &id, &r.try_get::<String, _>("body")?)
        })
        .collect()
}

async fn save_proposal(
    tx: &mut Transaction<'static, Any>,
    p: &pb::RetirementProposal,
    insert: bool,
) -> Result<(), Error> {
    let apply = p.apply_date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default();
    let sql = if insert {
        "INSERT INTO retirement_proposals (id, expert_id, status, apply_date, body) VALUES ($1, $2, $3, $4, $5)"
    } else {
        "UPDATE retirement_proposals SET expert_id = $2, status = $3, apply_date = $4, body = $5 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(&p.id)
        .bind(&p.expert_id)
        .bind(proposal_status_code(p.status))
        .bind(apply)
        .bind(encode_body(p))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The years whose classification counts as NON_ACCEPTING: as dispatch sent them, except the
/// year a term that is not a renewal began after the neutral day (D5).
async fn non_accepting_years(
    tx: &mut Transaction<'static, Any>,
    reference: &Reference,
    expert_id: &str,
) -> Result<BTreeSet<i32>, Error> {
    let rows = sqlx::query("SELECT year, classification FROM yearly_acceptances WHERE expert_id = $1")
        .bind(expert_id)
        .fetch_all(&mut **tx)
        .await?;
    let mut years = BTreeMap::new();
    for r in &rows {
        let year: i32 = r.try_get("year")?;
        years.insert(year, r.try_get::<String, _>("classification")?);
    }
    let terms = sqlx::query("SELECT term_start FROM appointments WHERE expert_id = $1 AND kind <> 'RENEWAL'")
        .bind(expert_id)
        .fetch_all(&mut **tx)
        .await?;
    for t in &terms {
        let start: String = t.try_get("term_start")?;
        let Ok(start) = start.parse::<NaiveDate>() else { continue };
        let neutral_after = reference
            .editions()
            .edition_in_force(start)
            .ok()
            .and_then(|e| e.retirement.appointment_year_neutral_after.in_year(start.year()));
        if neutral_after.is_some_and(|day| start > day) {
            years.remove(&start.year());
        }
    }
    // A year no edition covers at all is neutral (DOMAIN.md 7.12, article 15).
    let editions = reference.editions();
    let covered = |y: i32| {
        [(1, 1), (12, 31)]
            .into_iter()
            .filter_map(|(m, d)| NaiveDate::from_ymd_opt(y, m, d))
            .any(|day| editions.edition_in_force(day).is_ok())
    };
    Ok(years.into_iter().filter(|(y, c)| c == "NON_ACCEPTING" && covered(*y)).map(|(y, _)| y).collect())
}

/// The last runs of `length` adjacent years in `years`, as their sorted year lists.
fn streaks(years: &BTreeSet<i32>, length: usize) -> Vec<Vec<i32>> {
    let length = length.max(1);
    years
        .iter()
        .filter_map(|&end| {
            let run: Vec<i32> = (0..length).rev().map(|k| end - i32::try_from(k).unwrap_or(0)).collect();
            run.iter().all(|y| years.contains(y)).then_some(run)
        })
        .collect()
}

/// Withdraws pending proposals whose streak is broken and proposes for a new streak, inside
/// `tx`. Answers the proposal made or withdrawn, if any.
#[allow(clippy::too_many_arguments)]
pub async fn evaluate(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    expert_id: &ExpertId,
) -> Result<Option<pb::RetirementProposal>, Error> {
    // The expert's row lock: a pass and a RecordYearlyAcceptance never propose twice.
    sqlx::query("UPDATE experts SET revision = revision WHERE id = $1")
        .bind(expert_id.as_str())
        .execute(&mut **tx)
        .await?;
    let today = shanghai_today(clock);
    // No edition in force today: no streak can be proposed (article 15), but a broken one is
    // still withdrawn.
    let edition = reference.editions().edition_in_force(today).ok();
    let rules = edition.map(|e| &e.retirement);
    let length = rules.map_or(2, |r| usize::try_from(r.non_acceptance_years).unwrap_or(2));
    let years = non_accepting_years(tx, reference, expert_id.as_str()).await?;
    let runs = streaks(&years, length);
    let mut touched = None;
    let mut proposals = proposals_of(tx, expert_id.as_str()).await?;
    for p in &mut proposals {
        if p.status == pb::RetirementProposalStatus::Pending as i32 && !runs.contains(&p.years) {
            p.status = pb::RetirementProposalStatus::Withdrawn as i32;
            p.decision_reason = "a corrected classification broke the streak (D5)".into();
            save_proposal(tx, p, false).await?;
            let after = serde_json::json!({ "status": "WITHDRAWN", "years": p.years });
            append_audit(tx, db, clock, caller, command, "retirement_proposal", &p.id, "withdraw", Some(after)).await?;
            touched = Some(p.clone());
        }
    }
    let pending = proposals.iter().any(|p| p.status == pb::RetirementProposalStatus::Pending as i32);
    let status = crate::store::appointments::expert_status(tx, expert_id).await?;
    let serving = matches!(status, Some(crate::domain::ExpertStatus::Active | crate::domain::ExpertStatus::Suspended));
    let fresh = runs.iter().rev().find(|run| {
        !proposals.iter().any(|p| p.years == **run && p.status != pb::RetirementProposalStatus::Withdrawn as i32)
    });
    if let (Some(run), false, true, Some(rules)) = (fresh, pending, serving, rules) {
        let days = i32::try_from(rules.confirmation_working_days).unwrap_or(10);
        // A calendar that does not cover the apply date is never guessed (D3): the proposal
        // waits for the calendar, and the lifecycle pass makes it once the year is loaded.
        let apply = match reference.calendar().add_working_days(today, days) {
            Ok(day) => day,
            Err(err) => {
                tracing::warn!(expert_id = %expert_id, error = %err, "retirement proposal deferred: calendar not covered");
                return Ok(touched);
            }
        };
        let proposal = pb::RetirementProposal {
            id: new_prefixed_id(PROPOSAL_PREFIX),
            expert_id: expert_id.to_string(),
            years: run.clone(),
            propose_time: Some(timestamp(clock.now())),
            apply_date: Some(date(apply)),
            status: pb::RetirementProposalStatus::Pending as i32,
            decision_reason: String::new(),
            decided_by: None,
        };
        save_proposal(tx, &proposal, true).await?;
        let after =
            serde_json::json!({ "expert_id": expert_id.as_str(), "years": run, "apply_date": apply.to_string() });
        append_audit(tx, db, clock, caller, command, "retirement_proposal", &proposal.id, "propose", Some(after))
            .await?;
        touched = Some(proposal);
    }
    Ok(touched)
}

/// Applies `proposal` (pending) inside `tx`: the expert retires under 12(三) from `effective`;
/// an expert who no longer serves has the proposal withdrawn instead.
#[allow(clippy::too_many_arguments)]
async fn apply(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    mut proposal: pb::RetirementProposal,
    effective: NaiveDate,
    reason: &str,
) -> Result<(pb::RetirementProposal, Option<pb::ExpertStatusChange>), Error> {
    let expert_id =
        ExpertId::parse(&proposal.expert_id).ok_or_else(|| Error::ExpertNotFound(proposal.expert_id.clone()))?;
    let years = proposal.years.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    let words = format!("not accepting dispatch in {years} (第十二条(三), D5); proposal {}", proposal.id);
    let change =
        lifecycle_change(tx, db, clock, caller, command, &expert_id, StatusGround::NonAcceptance, effective, words)
            .await?;
    if change.is_some() {
        proposal.status = pb::RetirementProposalStatus::Applied as i32;
    } else {
        proposal.status = pb::RetirementProposalStatus::Withdrawn as i32;
    }
    if !reason.is_empty() {
        reason.clone_into(&mut proposal.decision_reason);
    } else if change.is_none() {
        proposal.decision_reason = "the expert no longer serves".into();
    }
    save_proposal(tx, &proposal, false).await?;
    let after = serde_json::json!({ "status": proposal_status_code(proposal.status) });
    append_audit(tx, db, clock, caller, command, "retirement_proposal", &proposal.id, "apply", Some(after)).await?;
    Ok((proposal, change.as_ref().map(crate::convert::appointments::status_change_to_proto)))
}

async fn locked_proposal(tx: &mut Transaction<'static, Any>, id: &str) -> Result<pb::RetirementProposal, Error> {
    sqlx::query("UPDATE retirement_proposals SET status = status WHERE id = $1").bind(id).execute(&mut **tx).await?;
    let row = sqlx::query("SELECT body FROM retirement_proposals WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::ProposalNotFound(id.to_owned()))?;
    decode_body("retirement_proposals", id, &row.try_get::<String, _>("body")?)
}

/// A validated DecideRetirementProposal request.
#[derive(Debug, Clone)]
pub struct ProposalDecision {
    pub proposal_id: String,
    pub action: pb::RetirementProposalAction,
    pub reason: String,
}

pub fn proposal_decision(req: &pb::DecideRetirementProposalRequest) -> Result<ProposalDecision, Status> {
    let mut v = FieldViolations::new();
    if !is_prefixed_id(req.proposal_id.trim(), PROPOSAL_PREFIX) {
        v.add("proposal_id", "is not a retirement proposal id (rtp_...)");
    }
    let action = supervision_kit::convert::required_enum::<pb::RetirementProposalAction>(
        req.action,
        "action",
        "HOLD or APPLY_NOW",
        &mut v,
    );
    let reason = long_text(&req.reason, "reason", 1000, true, &mut v);
    v.check()?;
    Ok(ProposalDecision { proposal_id: req.proposal_id.trim().to_owned(), action: action.expect("checked"), reason })
}

/// The city bureau holds a pending proposal or applies it now, inside `tx`.
pub async fn decide_proposal(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    d: ProposalDecision,
) -> Result<(pb::RetirementProposal, Option<pb::ExpertStatusChange>), Error> {
    let mut proposal = locked_proposal(tx, &d.proposal_id).await?;
    if proposal.status != pb::RetirementProposalStatus::Pending as i32 {
        return Err(Error::ProposalNotPending(proposal.id));
    }
    proposal.decided_by = Some(caller.actor().to_proto());
    if d.action == pb::RetirementProposalAction::ApplyNow {
        let today = shanghai_today(clock);
        return apply(tx, db, clock, caller, command, proposal, today, &d.reason).await;
    }
    proposal.status = pb::RetirementProposalStatus::Held as i32;
    proposal.decision_reason = d.reason;
    save_proposal(tx, &proposal, false).await?;
    let after = serde_json::json!({ "status": "HELD" });
    append_audit(tx, db, clock, caller, command, "retirement_proposal", &proposal.id, "hold", Some(after)).await?;
    Ok((proposal, None))
}

/// What one lifecycle pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub terms_ended: usize,
    pub proposed: usize,
    pub applied: usize,
    /// Experts or proposals whose step failed (logged, rolled back, retried on the next pass).
    pub failed: usize,
}

/// One lifecycle pass on the clock's today (Asia/Shanghai): terms whose last day has passed end
/// (article 11), streaks not yet proposed are proposed, and pending proposals whose apply date
/// has come apply (D5). Each expert's step is its own transaction, and one that fails is logged
/// and left for the next pass without stopping the others; the job calls this under its lease,
/// tests call it with a moved clock. An error is returned only when a work list cannot be read.
pub async fn run_pass(db: &Db, clock: &SharedClock, reference: &Reference) -> Result<PassReport, Error> {
    let caller = registry_caller();
    let today = shanghai_today(clock);
    let mut report = PassReport::default();

    let ended = sqlx::query(
        "SELECT e.id, a.term_end FROM experts e JOIN appointments a ON a.expert_id = e.id AND a.end_reason = '' \
         WHERE e.status IN ('ACTIVE', 'SUSPENDED') AND a.term_end < $1 ORDER BY e.id",
    )
    .bind(today.to_string())
    .fetch_all(db.pool())
    .await?;
    for row in &ended {
        let id: String = row.try_get("id")?;
        let last: String = row.try_get("term_end")?;
        match end_term(db, clock, &caller, &id, &last).await {
            Ok(done) => report.terms_ended += usize::from(done),
            Err(err) => {
                report.failed += 1;
                tracing::error!(expert_id = %id, error = %err, "the term that ended could not be closed");
            }
        }
    }

    let streaking = sqlx::query(
        "SELECT DISTINCT y.expert_id FROM yearly_acceptances y JOIN experts e ON e.id = y.expert_id \
         WHERE y.classification = 'NON_ACCEPTING' AND e.status IN ('ACTIVE', 'SUSPENDED') ORDER BY y.expert_id",
    )
    .fetch_all(db.pool())
    .await?;
    for row in &streaking {
        let id: String = row.try_get("expert_id")?;
        let step = async {
            let expert_id = ExpertId::parse(&id).ok_or_else(|| Error::ExpertNotFound(id.clone()))?;
            let command = job_command(&caller, &format!("{id}:streak:{today}"))?;
            let mut tx = db.begin_write().await?;
            let made = evaluate(&mut tx, db, clock, reference, &caller, &command, &expert_id).await?;
            tx.commit().await?;
            Ok::<_, Error>(made.is_some_and(|p| p.status == pb::RetirementProposalStatus::Pending as i32))
        };
        match step.await {
            Ok(made) => report.proposed += usize::from(made),
            Err(err) => {
                report.failed += 1;
                tracing::error!(expert_id = %id, error = %err, "the D5 streak could not be evaluated");
            }
        }
    }

    let due = sqlx::query(
        "SELECT id FROM retirement_proposals WHERE status = 'PENDING' AND apply_date <> '' AND apply_date <= $1 \
         ORDER BY id",
    )
    .bind(today.to_string())
    .fetch_all(db.pool())
    .await?;
    for row in &due {
        let id: String = row.try_get("id")?;
        let step = async {
            let command = job_command(&caller, &format!("{id}:apply"))?;
            let mut tx = db.begin_write().await?;
            let proposal = locked_proposal(&mut tx, &id).await?;
            if proposal.status != pb::RetirementProposalStatus::Pending as i32 {
                return Ok(false);
            }
            let (_, change) = apply(&mut tx, db, clock, &caller, &command, proposal, today, "").await?;
            tx.commit().await?;
            Ok::<_, Error>(change.is_some())
        };
        match step.await {
            Ok(applied) => report.applied += usize::from(applied),
            Err(err) => {
                report.failed += 1;
                tracing::error!(proposal_id = %id, error = %err, "the retirement proposal could not be applied");
            }
        }
    }
    Ok(report)
}

/// Ends the running term of `id`, whose last day was `last`, in its own transaction.
async fn end_term(db: &Db, clock: &SharedClock, caller: &Caller, id: &str, last: &str) -> Result<bool, Error> {
    let expert_id = ExpertId::parse(id).ok_or_else(|| Error::ExpertNotFound(id.to_owned()))?;
    let last_day =
        last.parse::<NaiveDate>().map_err(|e| Error::Invalid(vec![("term_end".into(), format!("{last}: {e}"))]))?;
    let command = job_command(caller, &format!("{id}:term_ended:{last}"))?;
    let mut tx = db.begin_write().await?;
    let reason = format!("the term ended on {last} without renewal (第十一条)");
    let change = lifecycle_change(
        &mut tx,
        db,
        clock,
        caller,
        &command,
        &expert_id,
        StatusGround::TermEnded,
        last_day + Duration::days(1),
        reason,
    )
    .await?;
    tx.commit().await?;
    Ok(change.is_some())
}

/// One page of classifications by expert then year; an EXPERT sees only their own.
pub async fn list_yearly(
    db: &Db,
    caller: &Caller,
    req: &pb::ListYearlyAcceptancesRequest,
) -> Result<(Vec<pb::YearlyAcceptance>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| parse_yearly_token(t).is_some(), &mut v);
    let mut expert_id = req.expert_id.trim().to_owned();
    if !expert_id.is_empty() && ExpertId::parse(&expert_id).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    if pb::YearClassification::try_from(req.classification).is_err() {
        v.add("classification", "is not a classification");
    }
    v.check()?;
    if caller.role == Role::Expert {
        let own = caller.expert_id.clone().unwrap_or_default();
        if !expert_id.is_empty() && expert_id != own {
            return Ok((Vec::new(), None));
        }
        expert_id = own;
    }
    let (after_expert, after_year) = page.after.as_deref().and_then(parse_yearly_token).unwrap_or_default();
    let classification = if req.classification == 0 { "" } else { classification_code(req.classification) };
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT expert_id, body FROM yearly_acceptances \
         WHERE ($1 = '' OR expert_id > $1 OR (expert_id = $1 AND year > $2)) \
           AND ($3 = '' OR expert_id = $3) AND ($4 = 0 OR year = $4) AND ($5 = '' OR classification = $5) \
         ORDER BY expert_id, year LIMIT $6",
    )
    .bind(after_expert)
    .bind(after_year)
    .bind(&expert_id)
    .bind(req.year)
    .bind(classification)
    .bind(i64::from(page.probe().size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("expert_id").map_err(Error::from)?;
        items.push(decode_body::<pb::YearlyAcceptance>(
            "yearly_acceptances",
            &id,
            &r.try_get::<String, _>("body").map_err(Error::from)?,
        )?);
    }
    Ok(page.finish(items, |a| format!("{}/{}", a.expert_id, a.year)))
}

fn parse_yearly_token(token: &str) -> Option<(String, i32)> {
    let (expert, year) = token.split_once('/')?;
    ExpertId::parse(expert)?;
    Some((expert.to_owned(), year.parse().ok()?))
}

/// One page of proposals, soonest `apply_date` first; an EXPERT sees only their own.
pub async fn list_proposals(
    db: &Db,
    caller: &Caller,
    req: &pb::ListRetirementProposalsRequest,
) -> Result<(Vec<pb::RetirementProposal>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| parse_proposal_token(t).is_some(), &mut v);
    let mut expert_id = req.expert_id.trim().to_owned();
    if !expert_id.is_empty() && ExpertId::parse(&expert_id).is_none() {
        v.add("expert_id", "is not an expert id");
    }
    if pb::RetirementProposalStatus::try_from(req.status).is_err() {
        v.add("status", "is not a proposal status");
    }
    v.check()?;
    if caller.role == Role::Expert {
        let own = caller.expert_id.clone().unwrap_or_default();
        if !expert_id.is_empty() && expert_id != own {
            return Ok((Vec::new(), None));
        }
        expert_id = own;
    }
    let (after_date, after_id) = page.after.as_deref().and_then(parse_proposal_token).unwrap_or_default();
    let status = if req.status == 0 { "" } else { proposal_status_code(req.status) };
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT id, apply_date, body FROM retirement_proposals \
         WHERE ($1 = '' OR apply_date > $1 OR (apply_date = $1 AND id > $2)) \
           AND ($3 = '' OR expert_id = $3) AND ($4 = '' OR status = $4) \
         ORDER BY apply_date, id LIMIT $5",
    )
    .bind(after_date)
    .bind(after_id)
    .bind(&expert_id)
    .bind(status)
    .bind(i64::from(page.probe().size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("id").map_err(Error::from)?;
        let apply: String = r.try_get("apply_date").map_err(Error::from)?;
        let p: pb::RetirementProposal =
            decode_body("retirement_proposals", &id, &r.try_get::<String, _>("body").map_err(Error::from)?)?;
        items.push((apply, p));
    }
    let (items, next) = page.finish(items, |(apply, p)| format!("{apply}/{}", p.id));
    Ok((items.into_iter().map(|(_, p)| p).collect(), next))
}

fn parse_proposal_token(token: &str) -> Option<(String, String)> {
    let (apply, id) = token.split_once('/')?;
    apply.parse::<NaiveDate>().ok()?;
    is_prefixed_id(id, PROPOSAL_PREFIX).then(|| (apply.to_owned(), id.to_owned()))
}

/// The quarterly expiry work list (D21, article 14) of serving experts: category bases
/// (`valid_until`), running terms' last days, and this year's self-confirmation (due 31
/// December) while outstanding, each on or before `until` (default: the end of the next calendar
/// quarter), soonest first. The 6(四) record-check age (CLEAN_RECORD_CHECK) is not listed yet.
pub async fn expiring(
    db: &Db,
    clock: &SharedClock,
    req: &pb::ListExpiringCredentialsRequest,
) -> Result<(Vec<pb::ExpiringItem>, Option<String>), Status> {
    let mut v = FieldViolations::new();
    let page = Page::parse(req.page.as_ref(), "page", |t| t.split('|').count() == 4, &mut v);
    let today = shanghai_today(clock);
    let until = supervision_kit::convert::optional_date(req.until.as_ref(), "until", &mut v)
        .unwrap_or_else(|| end_of_next_quarter(today));
    let kind = pb::ExpiryKind::try_from(req.kind).unwrap_or_default();
    if pb::ExpiryKind::try_from(req.kind).is_err() {
        v.add("kind", "is not an expiry kind");
    }
    v.check()?;
    let kind = match kind {
        pb::ExpiryKind::Unspecified => "",
        other => other.as_str_name().strip_prefix("EXPIRY_KIND_").unwrap_or_default(),
    };
    let after = page.after.clone().unwrap_or_default();
    let mut key = after.splitn(4, '|').map(str::to_owned);
    let (a_expires, a_expert, a_kind, a_category) = (
        key.next().unwrap_or_default(),
        key.next().unwrap_or_default(),
        key.next().unwrap_or_default(),
        key.next().unwrap_or_default(),
    );
    let year_end = NaiveDate::from_ymd_opt(today.year(), 12, 31).unwrap_or(today).to_string();
    let mut conn = snapshot(db).await?;
    let rows = sqlx::query(
        "SELECT expert_id, name, kind, category, expires FROM ( \
           SELECT c.expert_id AS expert_id, e.name AS name, 'CATEGORY' AS kind, c.category AS category, \
                  c.valid_until AS expires \
             FROM expert_categories c JOIN experts e ON e.id = c.expert_id \
            WHERE e.status IN ('ACTIVE', 'SUSPENDED') AND c.valid_until <> '' AND c.valid_until <= $1 \
           UNION ALL \
           SELECT e.id, e.name, 'TERM_END', '', a.term_end \
             FROM experts e JOIN appointments a ON a.expert_id = e.id AND a.end_reason = '' \
            WHERE e.status IN ('ACTIVE', 'SUSPENDED') AND a.term_end <= $1 \
           UNION ALL \
           SELECT e.id, e.name, 'SELF_CONFIRMATION', '', $2 \
             FROM experts e \
            WHERE e.status IN ('ACTIVE', 'SUSPENDED') AND e.last_confirmed_year < $3 AND $2 <= $1 \
         ) w \
         WHERE ($4 = '' OR kind = $4) \
           AND ($5 = '' OR expires > $5 OR (expires = $5 AND (expert_id > $6 OR (expert_id = $6 AND \
                (kind > $7 OR (kind = $7 AND category > $8)))))) \
         ORDER BY expires, expert_id, kind, category LIMIT $9",
    )
    .bind(until.to_string())
    .bind(&year_end)
    .bind(today.year())
    .bind(kind)
    .bind(a_expires)
    .bind(a_expert)
    .bind(a_kind)
    .bind(a_category)
    .bind(i64::from(page.probe().size))
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::from)?;
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        let get = |col: &str| r.try_get::<String, _>(col).map_err(Error::from);
        let (expires, kind, category) = (get("expires")?, get("kind")?, get("category")?);
        let day = expires.parse::<NaiveDate>().ok().map(date);
        let key = format!("{expires}|{}|{kind}|{category}", get("expert_id")?);
        let item = pb::ExpiringItem {
            expert_id: get("expert_id")?,
            expert_name: get("name")?,
            kind: crate::convert::experts::contract_value("EXPIRY_KIND_", &kind, pb::ExpiryKind::from_str_name),
            category: crate::convert::experts::contract_value(
                "EXPERT_CATEGORY_",
                &category,
                supervision_proto::common::ExpertCategory::from_str_name,
            ),
            expires: day,
        };
        items.push((key, item));
    }
    let (items, next) = page.finish(items, |(key, _)| key.clone());
    Ok((items.into_iter().map(|(_, i)| i).collect(), next))
}

/// The last day of the calendar quarter after the one `today` is in.
fn end_of_next_quarter(today: NaiveDate) -> NaiveDate {
    let quarter = (today.month0() / 3) + 1;
    let (year, next) = if quarter == 4 { (today.year() + 1, 1) } else { (today.year(), quarter + 1) };
    let first_after = if next == 4 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, next * 3 + 1, 1)
    };
    first_after.map_or(today, |d| d - Duration::days(1))
}

#[cfg(test)]
mod tests {
    use super::streaks;

    #[test]
    fn the_work_list_runs_to_the_end_of_the_next_quarter() {
        let d = |y, m, day| chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(super::end_of_next_quarter(d(2026, 11, 29)), d(2027, 3, 31));
        assert_eq!(super::end_of_next_quarter(d(2026, 1, 1)), d(2026, 6, 30));
        assert_eq!(super::end_of_next_quarter(d(2026, 8, 15)), d(2026, 12, 31));
    }

    #[test]
    fn a_streak_is_adjacent_non_accepting_years_and_a_gap_breaks_it() {
        let years = [2022, 2023, 2025].into_iter().collect();
        assert_eq!(streaks(&years, 2), vec![vec![2022, 2023]]);
        let years = [2022, 2024].into_iter().collect();
        assert!(streaks(&years, 2).is_empty(), "a neutral 2023 breaks the streak");
        let years = [2022, 2023, 2024].into_iter().collect();
        assert_eq!(streaks(&years, 2), vec![vec![2022, 2023], vec![2023, 2024]]);
    }
}
