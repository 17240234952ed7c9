//! Applying one of dispatch's revisions to one expert's half-day slot: which lines to reverse and
//! which charges to write, so that corrections are reversing lines and nothing is edited
//! (ARCHITECTURE.md "Fees").
//!
//! A revision is a full snapshot of an assignment. In every slot it touches (the slots of the
//! lines it held and the slots of its new sessions), each of its held lines is reversed and its
//! new sessions are charged afresh. Because the cap is shared, the same change can move class
//! hours to or from other assignments of the expert in the slot: their lines whose billable class
//! hours change are reversed and charged again at their own revision. The live lines of a slot
//! are therefore always [`price_slot`] of the slot's current sessions, whatever order the
//! revisions came in.

use std::fmt;

use chrono::NaiveTime;

use super::{
    cap::{SlotSession, allocation_order},
    fees::{FeeRules, SessionFee, price_slot},
};

/// What to do with a revision, given the revision held for its assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionVerdict {
    /// Newer than the one held (or none held): apply it.
    Apply,
    /// The one held, again: a retry, answered with the first answer.
    Retry,
    /// Older than the one held: ignore it.
    Ignore,
}

/// Compares an incoming revision with the one held for the assignment.
pub fn judge_revision(held: Option<u32>, incoming: u32) -> RevisionVerdict {
    match held {
        None => RevisionVerdict::Apply,
        Some(h) if incoming > h => RevisionVerdict::Apply,
        Some(h) if incoming == h => RevisionVerdict::Retry,
        Some(_) => RevisionVerdict::Ignore,
    }
}

/// A live charge line of the slot (a charge not yet reversed), as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLine {
    /// The line (`fee_...`).
    pub line_id: String,
    /// The revision of its assignment it was charged under.
    pub revision: u32,
    /// The session it charges, with the void reason it was charged with.
    pub session: SlotSession,
    pub billable_class_hours: u32,
    /// What it charged, in fen.
    pub amount_fen: i64,
}

/// One session of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkedSession {
    pub session_id: String,
    pub start: NaiveTime,
    pub minutes: u32,
}

/// The part of one assignment's revision that falls in this slot: possibly no sessions at all,
/// when the revision moved or removed the assignment's work here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRevision {
    pub assignment_id: String,
    pub revision: u32,
    pub sessions: Vec<WorkedSession>,
    /// `Some(reason)` when the revision voids the report.
    pub void_reason: Option<String>,
}

/// Why a line is reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReversalCause {
    /// A newer revision of the same assignment arrived.
    NewRevision,
    /// Another assignment's change moved class hours of the half-day cap to or from this line.
    CapReallocation,
}

impl ReversalCause {
    /// The contract's name without its prefix (`REVERSAL_CAUSE_NEW_REVISION` -> `NEW_REVISION`).
    pub fn code(self) -> &'static str {
        match self {
            Self::NewRevision => "NEW_REVISION",
            Self::CapReallocation => "CAP_REALLOCATION",
        }
    }
}

/// A line to reverse: the store writes its exact negative, pointing at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversal {
    pub line_id: String,
    pub cause: ReversalCause,
}

/// A charge to write, under its assignment's `revision` (the incoming one for the revised
/// assignment, the line's own for a reallocated line of another assignment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub revision: u32,
    pub fee: SessionFee,
    /// For a reallocation, the line this charge takes the place of.
    pub replaces: Option<String>,
}

/// Everything one revision changes in one slot. Empty when nothing changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotChanges {
    /// In the cap's order of the sessions reversed.
    pub reversals: Vec<Reversal>,
    /// In the cap's order.
    pub charges: Vec<Charge>,
}

impl SlotChanges {
    pub fn is_empty(&self) -> bool {
        self.reversals.is_empty() && self.charges.is_empty()
    }

    /// The change in the slot's total: new charges less the `held` lines reversed.
    pub fn amount_delta_fen(&self, held: &[HeldLine]) -> i64 {
        let charged: i64 = self.charges.iter().map(|c| c.fee.amount_fen).sum();
        let reversed: i64 =
            held.iter().filter(|h| self.reversals.iter().any(|r| r.line_id == h.line_id)).map(|h| h.amount_fen).sum();
        charged - reversed
    }
}

/// A revision that cannot be applied to the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotError {
    /// The slot holds a line of the assignment from this revision or a later one; the caller
    /// should have judged the revision ([`judge_revision`]) first.
    RevisionNotNewer { assignment_id: String, held: u32, incoming: u32 },
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RevisionNotNewer { assignment_id, held, incoming } => {
                write!(f, "{assignment_id}: revision {incoming} is not newer than revision {held} held")
            }
        }
    }
}

impl std::error::Error for SlotError {}

/// The reversals and charges that take one expert's half-day slot from its `held` lines to the
/// state after `incoming`. `civil_servant_on_work_date` is the registry's answer for the expert on
/// the slot's date; `rules` are the fee rules of the edition in force on it.
///
/// - Every held line of the incoming assignment is reversed (`NewRevision`) and each of its new
///   sessions charged, even when a session did not change: a revision replaces the whole
///   snapshot.
/// - A held line of another assignment is reversed (`CapReallocation`) and charged again only
///   when its billable class hours change; its other lines are left alone.
///
/// Other assignments' sessions are taken from their held lines, so the result depends only on
/// the held lines and the revision, never on the order either is given in.
pub fn revise_slot(
    held: &[HeldLine],
    incoming: &SlotRevision,
    civil_servant_on_work_date: bool,
    rules: &FeeRules,
) -> Result<SlotChanges, SlotError> {
    if let Some(newest) =
        held.iter().filter(|h| h.session.assignment_id == incoming.assignment_id).map(|h| h.revision).max()
        && newest >= incoming.revision
    {
        return Err(SlotError::RevisionNotNewer {
            assignment_id: incoming.assignment_id.clone(),
            held: newest,
            incoming: incoming.revision,
        });
    }

    let mut held_sorted: Vec<&HeldLine> = held.iter().collect();
    held_sorted.sort_by(|a, b| allocation_order(&a.session, &b.session).then_with(|| a.line_id.cmp(&b.line_id)));

    let others = held_sorted.iter().filter(|h| h.session.assignment_id != incoming.assignment_id);
    let mut sessions: Vec<SlotSession> = others.clone().map(|h| h.session.clone()).collect();
    sessions.extend(incoming.sessions.iter().map(|s| SlotSession {
        assignment_id: incoming.assignment_id.clone(),
        session_id: s.session_id.clone(),
        start: s.start,
        minutes: s.minutes,
        void_reason: incoming.void_reason.clone(),
    }));

    let mut changes = SlotChanges::default();
    for line in &held_sorted {
        if line.session.assignment_id == incoming.assignment_id {
            changes.reversals.push(Reversal { line_id: line.line_id.clone(), cause: ReversalCause::NewRevision });
        }
    }
    for fee in price_slot(&sessions, civil_servant_on_work_date, rules) {
        let session = &fee.allocation.session;
        if session.assignment_id == incoming.assignment_id {
            changes.charges.push(Charge { revision: incoming.revision, fee, replaces: None });
            continue;
        }
        let Some(line) = others.clone().find(|h| h.session == *session) else { continue };
        if line.billable_class_hours != fee.allocation.billable_class_hours {
            changes.reversals.push(Reversal { line_id: line.line_id.clone(), cause: ReversalCause::CapReallocation });
            changes.charges.push(Charge { revision: line.revision, fee, replaces: Some(line.line_id.clone()) });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fees::ZeroReason;

    /// A store in miniature: the live lines of one slot, and every line ever written.
    #[derive(Debug, Default)]
    struct Slot {
        live: Vec<HeldLine>,
        written: Vec<i64>,
        next_id: u32,
    }

    impl Slot {
        fn held(&self) -> Vec<HeldLine> {
            self.live.clone()
        }

        fn apply(&mut self, incoming: &SlotRevision, civil_servant: bool) -> SlotChanges {
            let changes = revise_slot(&self.held(), incoming, civil_servant, &FeeRules::EDITION_1).unwrap();
            for r in &changes.reversals {
                let at = self.live.iter().position(|h| h.line_id == r.line_id).unwrap();
                let reversed = self.live.remove(at);
                self.written.push(-reversed.amount_fen);
            }
            for c in &changes.charges {
                self.next_id += 1;
                let line = HeldLine {
                    line_id: format!("fee_{:03}", self.next_id),
                    revision: c.revision,
                    session: c.fee.allocation.session.clone(),
                    billable_class_hours: c.fee.allocation.billable_class_hours,
                    amount_fen: c.fee.amount_fen,
                };
                self.live.push(line);
                self.written.push(c.fee.amount_fen);
            }
            changes
        }

        /// The live lines as (assignment, session, revision, billable, amount), sorted.
        fn state(&self) -> Vec<(String, String, u32, u32, i64)> {
            let mut s: Vec<_> = self
                .live
                .iter()
                .map(|h| {
                    let s = &h.session;
                    (s.assignment_id.clone(), s.session_id.clone(), h.revision, h.billable_class_hours, h.amount_fen)
                })
                .collect();
            s.sort();
            s
        }

        fn total(&self) -> i64 {
            self.live.iter().map(|h| h.amount_fen).sum()
        }
    }

    fn worked(id: &str, h: u32, m: u32, minutes: u32) -> WorkedSession {
        WorkedSession { session_id: id.into(), start: NaiveTime::from_hms_opt(h, m, 0).unwrap(), minutes }
    }

    fn revision(assignment: &str, revision: u32, sessions: Vec<WorkedSession>) -> SlotRevision {
        SlotRevision { assignment_id: assignment.into(), revision, sessions, void_reason: None }
    }

    fn state(rows: &[(&str, &str, u32, u32, i64)]) -> Vec<(String, String, u32, u32, i64)> {
        rows.iter().map(|(a, s, r, b, m)| ((*a).into(), (*s).into(), *r, *b, *m)).collect()
    }

    #[test]
    fn revisions_are_applied_when_newer_retried_when_equal_and_ignored_when_older() {
        assert_eq!(judge_revision(None, 1), RevisionVerdict::Apply);
        assert_eq!(judge_revision(Some(1), 2), RevisionVerdict::Apply);
        assert_eq!(judge_revision(Some(2), 2), RevisionVerdict::Retry);
        assert_eq!(judge_revision(Some(3), 2), RevisionVerdict::Ignore);
    }

    #[test]
    fn the_first_revision_charges_each_session() {
        let mut slot = Slot::default();
        let changes = slot.apply(&revision("asg_a", 1, vec![worked("s1", 9, 0, 165)]), false);
        assert!(changes.reversals.is_empty());
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 1, 3, 30_000)]));
    }

    #[test]
    fn a_newer_revision_reverses_every_line_of_the_one_before_and_charges_afresh() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 1, vec![worked("s1", 9, 0, 165)]), false);
        let changes = slot.apply(&revision("asg_a", 2, vec![worked("s1", 9, 0, 180)]), false);
        assert_eq!(changes.reversals, [Reversal { line_id: "fee_001".into(), cause: ReversalCause::NewRevision }]);
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 2, 4, 40_000)]));
        assert_eq!(slot.written, [30_000, -30_000, 40_000], "nothing edited, only added");
    }

    #[test]
    fn a_revision_that_is_not_newer_is_refused() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 2, vec![worked("s1", 9, 0, 165)]), false);
        let err = revise_slot(&slot.held(), &revision("asg_a", 2, vec![]), false, &FeeRules::EDITION_1).unwrap_err();
        assert_eq!(err, SlotError::RevisionNotNewer { assignment_id: "asg_a".into(), held: 2, incoming: 2 });
        assert!(revise_slot(&slot.held(), &revision("asg_a", 1, vec![]), false, &FeeRules::EDITION_1).is_err());
    }

    #[test]
    fn a_later_session_of_another_task_gets_what_the_cap_leaves() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 135)]), false);
        let changes = slot.apply(&revision("asg_b", 1, vec![worked("s2", 10, 45, 90)]), false);
        assert!(changes.reversals.is_empty(), "the earlier line keeps its hours");
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 1, 3, 30_000), ("asg_b", "s2", 1, 1, 10_000)]));
    }

    #[test]
    fn an_earlier_session_arriving_late_takes_the_cap_from_a_later_line_by_reversal() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_b", 1, vec![worked("s2", 10, 45, 90)]), false);
        assert_eq!(slot.state(), state(&[("asg_b", "s2", 1, 2, 20_000)]));
        let changes = slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 135)]), false);
        assert_eq!(changes.reversals, [Reversal { line_id: "fee_001".into(), cause: ReversalCause::CapReallocation }]);
        assert_eq!(changes.charges.len(), 2);
        assert_eq!(changes.charges[1].revision, 1, "a reallocated line keeps its own revision");
        assert_eq!(changes.charges[1].replaces.as_deref(), Some("fee_001"));
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 1, 3, 30_000), ("asg_b", "s2", 1, 1, 10_000)]));
        assert_eq!(slot.written, [20_000, -20_000, 30_000, 10_000]);
    }

    #[test]
    fn shortening_an_earlier_session_gives_class_hours_back_to_a_later_one() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 180)]), false);
        slot.apply(&revision("asg_b", 1, vec![worked("s2", 11, 30, 60)]), false);
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 1, 4, 40_000), ("asg_b", "s2", 1, 0, 0)]));
        let changes = slot.apply(&revision("asg_a", 2, vec![worked("s1", 8, 30, 135)]), false);
        let causes: Vec<_> = changes.reversals.iter().map(|r| r.cause).collect();
        assert_eq!(causes, [ReversalCause::NewRevision, ReversalCause::CapReallocation]);
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 2, 3, 30_000), ("asg_b", "s2", 1, 1, 10_000)]));
    }

    #[test]
    fn voiding_a_report_zeroes_its_lines_and_frees_the_cap_for_the_others() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 180)]), false);
        slot.apply(&revision("asg_b", 1, vec![worked("s2", 11, 0, 90)]), false);
        assert_eq!(slot.total(), 40_000);
        let void = SlotRevision {
            void_reason: Some("9(八) gifts".into()),
            ..revision("asg_a", 2, vec![worked("s1", 8, 30, 180)])
        };
        let changes = slot.apply(&void, false);
        let voided = &changes.charges[0].fee;
        assert_eq!((voided.amount_fen, voided.zero_reason), (0, Some(ZeroReason::ReportVoided)));
        assert_eq!(voided.zero_detail, "9(八) gifts");
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 2, 0, 0), ("asg_b", "s2", 1, 2, 20_000)]));
    }

    #[test]
    fn removing_an_assignments_work_from_a_slot_reverses_its_lines_there() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 180)]), false);
        let changes = slot.apply(&revision("asg_a", 2, vec![]), false);
        assert_eq!(changes.reversals.len(), 1);
        assert!(changes.charges.is_empty());
        assert!(slot.state().is_empty());
        assert_eq!(slot.written.iter().sum::<i64>(), 0);
    }

    #[test]
    fn a_revision_that_moves_no_cap_leaves_other_assignments_alone() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 90)]), false);
        slot.apply(&revision("asg_b", 1, vec![worked("s2", 10, 30, 90)]), false);
        let changes = slot.apply(&revision("asg_a", 2, vec![worked("s1", 8, 30, 100)]), false);
        assert!(changes.reversals.iter().all(|r| r.cause == ReversalCause::NewRevision));
        assert_eq!(changes.charges.len(), 1);
    }

    #[test]
    fn the_slot_ends_the_same_whatever_order_the_revisions_arrive_in() {
        let a1 = revision("asg_a", 1, vec![worked("s1", 8, 30, 135)]);
        let a2 = revision("asg_a", 2, vec![worked("s1", 8, 30, 100), worked("s3", 11, 0, 40)]);
        let b1 = revision("asg_b", 1, vec![worked("s2", 9, 0, 120)]);
        let c1 = revision("asg_c", 1, vec![worked("s4", 8, 30, 60)]);
        // Every order in which each assignment's own revisions still come in sequence.
        let orders: [[&SlotRevision; 4]; 6] = [
            [&a1, &a2, &b1, &c1],
            [&a1, &b1, &a2, &c1],
            [&b1, &a1, &c1, &a2],
            [&c1, &b1, &a1, &a2],
            [&b1, &c1, &a1, &a2],
            [&a1, &c1, &a2, &b1],
        ];
        let mut ends = Vec::new();
        for order in orders {
            let mut slot = Slot::default();
            for r in order {
                slot.apply(r, false);
            }
            assert_eq!(slot.written.iter().sum::<i64>(), slot.total(), "every reversal cancels a line");
            ends.push(slot.state());
        }
        // a: 100 min -> 2 class hours at 08:30; c: 60 min -> 1 at 08:30 (after a); b: 120 min
        // -> 2 at 09:00, 1 left; a's s3 at 11:00 adds 40 min -> 140 min, 3 class hours, none left.
        let expected = state(&[
            ("asg_a", "s1", 2, 2, 20_000),
            ("asg_a", "s3", 2, 0, 0),
            ("asg_b", "s2", 1, 1, 10_000),
            ("asg_c", "s4", 1, 1, 10_000),
        ]);
        for end in ends {
            assert_eq!(end, expected);
        }
    }

    #[test]
    fn a_civil_servants_lines_are_zero_but_still_take_their_share_of_the_cap() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_b", 1, vec![worked("s2", 10, 0, 180)]), true);
        let changes = slot.apply(&revision("asg_a", 1, vec![worked("s1", 8, 30, 90)]), true);
        assert_eq!(changes.reversals.len(), 1, "the billable hours of asg_b's zero line changed");
        assert_eq!(slot.state(), state(&[("asg_a", "s1", 1, 2, 0), ("asg_b", "s2", 1, 2, 0)]));
    }

    #[test]
    fn the_amount_delta_is_the_change_in_the_slots_total() {
        let mut slot = Slot::default();
        slot.apply(&revision("asg_b", 1, vec![worked("s2", 10, 45, 90)]), false);
        let held = slot.held();
        let before = slot.total();
        let incoming = revision("asg_a", 1, vec![worked("s1", 8, 30, 135)]);
        let changes = revise_slot(&held, &incoming, false, &FeeRules::EDITION_1).unwrap();
        let delta = changes.amount_delta_fen(&held);
        slot.apply(&incoming, false);
        assert_eq!(before + delta, slot.total());
    }
}
