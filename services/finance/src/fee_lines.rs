//! Use cases of fee lines: applying dispatch's revisions (RecordSessions), and reading lines.
//!
//! A revision is applied in two steps. [`look_up`] gathers, outside any transaction, what the
//! write needs from elsewhere: the edition in force on each work date and the registry's
//! civil-servant status of the expert on each date (a network call must not hold the database's
//! write lock). [`apply`] then locks the expert, judges the revision against the one held and,
//! slot by slot, writes the reversals and charges `domain::slot::revise_slot` decides, in the
//! idempotency claim's transaction with one audit entry.

use std::{
    collections::{BTreeMap, BTreeSet},
    num::NonZeroU32,
};

use chrono::{NaiveDate, NaiveTime};
use sqlx::{Any, Transaction};
use supervision_kit::{
    Backend, Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_reference::{Reference, ReferenceError};

use crate::{
    domain::{
        ClassHourRules, EditionFees, FeeBasis, FeeLine, FeeLineId, FeeRules, HalfDay, LineKind, Payer, RevisionVerdict,
        Rounding, SlotKey, SlotRevision, WorkedSession, judge_revision, revise_slot,
    },
    error::Error,
    registry::RegistryPeer,
    store::fee_lines::{self as sql, LineFilter},
};

/// One session of a revision, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worked {
    pub session_id: String,
    pub date: NaiveDate,
    pub half_day: HalfDay,
    pub start: NaiveTime,
    pub minutes: u32,
}

/// One of dispatch's revisions of an assignment, validated: a full snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub payer: Payer,
    pub revision: u32,
    pub sessions: Vec<Worked>,
    /// `Some(reason)` when the report was voided.
    pub void_reason: Option<String>,
}

impl Revision {
    fn slot_of(&self, s: &Worked) -> SlotKey {
        SlotKey { expert_id: self.payer.expert_id.clone(), date: s.date, half_day: s.half_day }
    }
}

/// A session whose half-day is not the one its start time falls in under the edition (D2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrongHalfDay {
    pub index: usize,
    pub expected: HalfDay,
}

/// What [`apply`] needs from outside the database, gathered before its transaction.
#[derive(Debug, Clone, Default)]
pub struct Lookups {
    /// Experts whose slots the revision may touch: its own and those of its held lines.
    experts: BTreeSet<String>,
    editions: BTreeMap<NaiveDate, EditionFees>,
    civil_servant: BTreeMap<(String, NaiveDate), bool>,
}

/// What finance did with a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub applied: bool,
    pub held_revision: u32,
    /// Every line written: reversals, charges, reallocations on other assignments.
    pub lines: Vec<FeeLine>,
}

/// The fee rules of the edition in force on `day`.
pub fn edition_fees(reference: &Reference, day: NaiveDate) -> Result<EditionFees, Error> {
    let edition = reference.editions().edition_in_force(day).map_err(ReferenceError::from)?;
    let f = &edition.fees;
    // The editions' validation keeps the class hour between 15 and 120 minutes.
    let minutes_per_class_hour =
        NonZeroU32::new(f.class_hour_minutes).unwrap_or(ClassHourRules::EDITION_1.minutes_per_class_hour);
    Ok(EditionFees {
        number: edition.number,
        half_day_split: edition.sessions.half_day_split,
        rules: FeeRules {
            rate_per_class_hour_fen: f.rate_per_class_hour_fen,
            basis: match f.basis {
                supervision_policy::FeeBasis::PreTax => FeeBasis::PreTax,
                supervision_policy::FeeBasis::AfterTax => FeeBasis::AfterTax,
            },
            class_hours: ClassHourRules {
                minutes_per_class_hour,
                rounding: match f.rounding {
                    supervision_policy::Rounding::Floor => Rounding::Floor,
                    supervision_policy::Rounding::HalfUp => Rounding::HalfUp,
                },
            },
            max_class_hours_per_half_day: f.max_class_hours_per_half_day,
            civil_servants_exempt: f.civil_servants_exempt,
        },
    })
}

/// Sessions whose half-day disagrees with their start time under the edition of their date.
pub fn check_half_days(reference: &Reference, revision: &Revision) -> Result<Vec<WrongHalfDay>, Error> {
    let mut wrong = Vec::new();
    for (index, s) in revision.sessions.iter().enumerate() {
        let expected = HalfDay::of(s.start, edition_fees(reference, s.date)?.half_day_split);
        if expected != s.half_day {
            wrong.push(WrongHalfDay { index, expected });
        }
    }
    Ok(wrong)
}

/// Gathers the editions and the registry's answers a revision needs. A revision that will not be
/// applied (older than, or the same as, the one held) asks the registry nothing.
pub async fn look_up(
    db: &Db,
    reference: &Reference,
    registry: &RegistryPeer,
    caller: &Caller,
    revision: &Revision,
) -> Result<Lookups, Error> {
    let held = sql::held_revision(db.pool(), &revision.payer.assignment_id).await?;
    let mut lookups = Lookups::default();
    lookups.experts.insert(revision.payer.expert_id.clone());
    if judge_revision(held, revision.revision) != RevisionVerdict::Apply {
        return Ok(lookups);
    }
    let held_lines = sql::live_lines_of_assignment(db.pool(), &revision.payer.assignment_id).await?;
    let mut days: BTreeSet<(String, NaiveDate)> =
        revision.sessions.iter().map(|s| (revision.payer.expert_id.clone(), s.date)).collect();
    for line in &held_lines {
        lookups.experts.insert(line.payer.expert_id.clone());
        days.insert((line.payer.expert_id.clone(), line.work_date));
    }
    for (expert, day) in days {
        if let std::collections::btree_map::Entry::Vacant(slot) = lookups.editions.entry(day) {
            slot.insert(edition_fees(reference, day)?);
        }
        let civil_servant = registry.is_civil_servant_on(caller, &expert, day).await?;
        lookups.civil_servant.insert((expert, day), civil_servant);
    }
    Ok(lookups)
}

/// Applies `revision` inside the claim's transaction `tx`: locks the experts, judges the
/// revision against the one held, writes each slot's reversals and charges, holds the revision
/// and audits it once.
pub async fn apply(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    revision: &Revision,
    lookups: &Lookups,
) -> Result<Outcome, Error> {
    // Sorted, so two revisions locking the same experts never wait on each other in a cycle.
    for expert in &lookups.experts {
        sql::lock_expert(tx, backend, expert).await?;
    }
    let assignment = &revision.payer.assignment_id;
    let held = sql::held_revision(&mut **tx, assignment).await?;
    match judge_revision(held, revision.revision) {
        RevisionVerdict::Apply => {}
        RevisionVerdict::Retry => {
            return Ok(Outcome { applied: true, held_revision: revision.revision, lines: vec![] });
        }
        RevisionVerdict::Ignore => {
            let held_revision = held.unwrap_or(revision.revision);
            return Ok(Outcome { applied: false, held_revision, lines: vec![] });
        }
    }

    let held_lines = sql::live_lines_of_assignment(&mut **tx, assignment).await?;
    let slots: BTreeSet<SlotKey> =
        held_lines.iter().map(FeeLine::slot).chain(revision.sessions.iter().map(|s| revision.slot_of(s))).collect();
    let now = clock.now();
    let mut written = Vec::new();
    for slot in &slots {
        let (Some(edition), Some(&civil_servant), true) = (
            lookups.editions.get(&slot.date),
            lookups.civil_servant.get(&(slot.expert_id.clone(), slot.date)),
            lookups.experts.contains(&slot.expert_id),
        ) else {
            // Another revision of the assignment moved its lines after the look-up.
            return Err(Error::Concurrent);
        };
        let live = sql::live_lines_in_slot(&mut **tx, slot).await?;
        let incoming = SlotRevision {
            assignment_id: assignment.clone(),
            revision: revision.revision,
            sessions: revision
                .sessions
                .iter()
                .filter(|s| revision.slot_of(s) == *slot)
                .map(|s| WorkedSession { session_id: s.session_id.clone(), start: s.start, minutes: s.minutes })
                .collect(),
            void_reason: revision.void_reason.clone(),
        };
        let held: Vec<_> = live.iter().map(FeeLine::held).collect();
        let changes = revise_slot(&held, &incoming, civil_servant, &edition.rules)?;
        let line_of = |id: &str| live.iter().find(|l| l.id.as_str() == id).ok_or(Error::Concurrent);
        for reversal in &changes.reversals {
            let line = line_of(&reversal.line_id)?.reversal(reversal.cause, now);
            sql::insert_line(&mut **tx, &line).await?;
            written.push(line);
        }
        for charge in &changes.charges {
            let payer = match &charge.replaces {
                Some(id) => line_of(id)?.payer.clone(),
                None => revision.payer.clone(),
            };
            let fee = &charge.fee;
            let session = &fee.allocation.session;
            let line = FeeLine {
                id: FeeLineId::generate(),
                payer,
                revision: charge.revision,
                work_date: slot.date,
                half_day: slot.half_day,
                session_id: session.session_id.clone(),
                start: session.start,
                minutes: i64::from(session.minutes),
                class_hours: i64::from(fee.allocation.class_hours),
                billable_class_hours: i64::from(fee.allocation.billable_class_hours),
                rate_fen: fee.rate_fen,
                basis: fee.basis,
                rounding: fee.rounding,
                amount_fen: fee.amount_fen,
                kind: LineKind::Charge,
                reverses: None,
                reversal_cause: None,
                zero_reason: fee.zero_reason,
                zero_detail: fee.zero_detail.clone(),
                edition_number: edition.number,
                batch_id: String::new(),
                paid: false,
                created_at: now,
            };
            sql::insert_line(&mut **tx, &line).await?;
            written.push(line);
        }
    }
    sql::hold_revision(&mut **tx, assignment, &revision.payer.expert_id, revision.revision, now).await?;

    let charged: i64 = written.iter().filter(|l| l.kind == LineKind::Charge).map(|l| l.amount_fen).sum();
    let reversed: i64 = written.iter().filter(|l| l.kind == LineKind::Reversal).map(|l| l.amount_fen).sum();
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "assignment",
        entity_id: assignment,
        action: if revision.void_reason.is_some() { "record_void_revision" } else { "record_revision" },
        before: held.map(|r| serde_json::json!({ "held_revision": r })),
        after: Some(serde_json::json!({
            "held_revision": revision.revision,
            "expert_id": revision.payer.expert_id,
            "paying_bureau": revision.payer.paying_bureau.division_code(),
            "fund_source": revision.payer.fund_source,
            "sessions": revision.sessions.len(),
            "voided": revision.void_reason.is_some(),
            "lines": written.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
            "charged_fen": charged,
            "reversed_fen": reversed,
        })),
    };
    audit::append(tx, backend, clock, caller, change).await?;
    Ok(Outcome { applied: true, held_revision: revision.revision, lines: written })
}

/// Who may see which lines: FINANCE roles their paying bureau's, an EXPERT their own, city
/// roles and auditors every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Bureau(supervision_kit::Bureau),
    Expert(String),
}

impl Scope {
    pub fn of(caller: &Caller) -> Scope {
        match (caller.role, caller.bureau, &caller.expert_id) {
            (Role::Expert, _, Some(expert)) => Scope::Expert(expert.clone()),
            // An EXPERT token without an expert id sees nothing.
            (Role::Expert, _, None) => Scope::Expert(String::new()),
            (role, Some(bureau), _) if role.is_bureau_scoped() => Scope::Bureau(bureau),
            _ => Scope::All,
        }
    }

    pub fn admits(&self, line: &FeeLine) -> bool {
        match self {
            Scope::All => true,
            Scope::Bureau(b) => line.payer.paying_bureau == *b,
            Scope::Expert(e) => line.payer.expert_id == *e,
        }
    }
}

/// One line; a line outside the caller's scope is not found.
pub async fn get(db: &Db, scope: &Scope, id: &FeeLineId) -> Result<FeeLine, Error> {
    sql::get_line(db.pool(), id).await?.filter(|l| scope.admits(l)).ok_or_else(|| Error::LineNotFound(id.to_string()))
}

/// A page of lines in the order written.
pub async fn list(db: &Db, filter: &LineFilter, page: &Page) -> Result<(Vec<FeeLine>, Option<String>), Error> {
    let probe = page.probe();
    let lines = sql::list_lines(db.pool(), filter, probe.after.as_deref(), probe.size).await?;
    Ok(page.finish(lines, |l| l.id.to_string()))
}
