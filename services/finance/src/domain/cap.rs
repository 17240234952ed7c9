//! The half-day cap of article 10 ("每半天最多按4学时"): at most 4 class hours (edition
//! parameter) per expert per date and half-day, across all tasks and payers (D1), allocated in the
//! order of session start time, then assignment id (ARCHITECTURE.md "Fees").
//!
//! The allocation is a function of the set of sessions alone: it sorts them itself, so the order
//! in which dispatch's revisions arrived never changes who is paid for what.

use std::{cmp::Ordering, collections::BTreeMap};

use chrono::NaiveTime;

use super::hours::ClassHourRules;

/// One session worked in one expert's half-day slot (one expert, one date, one half-day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSession {
    /// The assignment (`asg_...`).
    pub assignment_id: String,
    /// Dispatch's task session id.
    pub session_id: String,
    pub start: NaiveTime,
    /// Minutes of supervision time.
    pub minutes: u32,
    /// `Some(reason)` when the assignment's report was voided: the session is paid nothing and
    /// takes none of the cap.
    pub void_reason: Option<String>,
}

impl SlotSession {
    pub fn is_voided(&self) -> bool {
        self.void_reason.is_some()
    }
}

/// The cap's order: start time, then assignment id, then session id. The remaining fields only
/// make the order total, so that even malformed input (the same session twice) sorts the same
/// whatever order it came in.
pub fn allocation_order(a: &SlotSession, b: &SlotSession) -> Ordering {
    (a.start, &a.assignment_id, &a.session_id, a.minutes, &a.void_reason).cmp(&(
        b.start,
        &b.assignment_id,
        &b.session_id,
        b.minutes,
        &b.void_reason,
    ))
}

/// One session's share of the slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub session: SlotSession,
    /// Class hours this session adds by the edition's rounding, before the cap (see
    /// [`allocate_cap`] for minutes accumulating across one assignment's sessions).
    pub class_hours: u32,
    /// Class hours paid after the cap; 0 for a voided session.
    pub billable_class_hours: u32,
}

/// Class hours and billable class hours for every session of one expert's half-day slot, in the
/// cap's order ([`allocation_order`]), whatever order `sessions` is in.
///
/// Minutes accumulate within the slot per assignment (DOMAIN.md 10.3, "可累积计算"): an
/// assignment's sessions are rounded on their running total, and each session gets the class
/// hours its minutes add to that total. With one session per assignment and slot, the usual
/// case, this is plain rounding of the session's minutes; with several (a meal break), the
/// assignment gets the class hours of its total minutes, not the sum of separately rounded parts.
/// Minutes never accumulate across assignments: each payer pays for whole class hours worked for
/// it.
///
/// The cap is then given out in order: each session takes its class hours up to what is left of
/// `cap`. Voided sessions take nothing.
pub fn allocate_cap(sessions: &[SlotSession], rules: ClassHourRules, cap: u32) -> Vec<Allocation> {
    let mut ordered = sessions.to_vec();
    ordered.sort_by(allocation_order);

    let mut minutes_so_far: BTreeMap<String, u32> = BTreeMap::new();
    let mut remaining = cap;
    ordered
        .into_iter()
        .map(|session| {
            let before = minutes_so_far.get(&session.assignment_id).copied().unwrap_or(0);
            let after = before.saturating_add(session.minutes);
            minutes_so_far.insert(session.assignment_id.clone(), after);
            let class_hours = rules.class_hours(after) - rules.class_hours(before);
            let billable_class_hours = if session.is_voided() { 0 } else { class_hours.min(remaining) };
            remaining -= billable_class_hours;
            Allocation { session, class_hours, billable_class_hours }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::domain::hours::Rounding;

    pub(crate) fn session(assignment: &str, id: &str, h: u32, m: u32, minutes: u32) -> SlotSession {
        SlotSession {
            assignment_id: assignment.into(),
            session_id: id.into(),
            start: NaiveTime::from_hms_opt(h, m, 0).unwrap(),
            minutes,
            void_reason: None,
        }
    }

    fn billable(allocations: &[Allocation]) -> Vec<(&str, &str, u32, u32)> {
        allocations
            .iter()
            .map(|a| {
                (a.session.assignment_id.as_str(), a.session.session_id.as_str(), a.class_hours, a.billable_class_hours)
            })
            .collect()
    }

    const FLOOR: ClassHourRules = ClassHourRules::EDITION_1;
    const HALF_UP: ClassHourRules =
        ClassHourRules { minutes_per_class_hour: NonZeroU32::new(45).unwrap(), rounding: Rounding::HalfUp };

    #[test]
    fn one_morning_of_210_minutes_is_capped_at_4() {
        let out = allocate_cap(&[session("asg_a", "s1", 8, 30, 210)], HALF_UP, 4);
        assert_eq!(billable(&out), [("asg_a", "s1", 5, 4)]);
        let out = allocate_cap(&[session("asg_a", "s1", 8, 30, 210)], FLOOR, 4);
        assert_eq!(billable(&out), [("asg_a", "s1", 4, 4)]);
    }

    #[test]
    fn the_earlier_session_takes_the_cap_first_across_tasks_and_payers() {
        let sessions = [session("asg_b", "s2", 10, 0, 135), session("asg_a", "s1", 8, 30, 90)];
        let out = allocate_cap(&sessions, FLOOR, 4);
        assert_eq!(billable(&out), [("asg_a", "s1", 2, 2), ("asg_b", "s2", 3, 2)]);
    }

    #[test]
    fn at_the_same_start_time_the_lower_assignment_id_goes_first() {
        let sessions = [session("asg_b", "s2", 9, 0, 180), session("asg_a", "s1", 9, 0, 90)];
        let out = allocate_cap(&sessions, FLOOR, 4);
        assert_eq!(billable(&out), [("asg_a", "s1", 2, 2), ("asg_b", "s2", 4, 2)]);
    }

    #[test]
    fn a_session_after_the_cap_is_exhausted_bills_nothing() {
        let sessions = [session("asg_a", "s1", 8, 30, 180), session("asg_b", "s2", 11, 0, 60)];
        let out = allocate_cap(&sessions, FLOOR, 4);
        assert_eq!(billable(&out), [("asg_a", "s1", 4, 4), ("asg_b", "s2", 1, 0)]);
    }

    #[test]
    fn the_allocation_does_not_depend_on_the_order_of_its_input() {
        let sessions = vec![
            session("asg_c", "s5", 9, 0, 50),
            session("asg_a", "s1", 8, 30, 50),
            session("asg_b", "s3", 8, 30, 100),
            session("asg_a", "s2", 10, 0, 70),
            session("asg_b", "s4", 11, 0, 45),
        ];
        let expected = allocate_cap(&sessions, FLOOR, 4);
        // Every rotation and the reverse of every rotation.
        for k in 0..sessions.len() {
            let mut rotated = sessions.clone();
            rotated.rotate_left(k);
            assert_eq!(allocate_cap(&rotated, FLOOR, 4), expected);
            rotated.reverse();
            assert_eq!(allocate_cap(&rotated, FLOOR, 4), expected);
        }
    }

    #[test]
    fn minutes_accumulate_across_one_assignments_sessions_in_the_slot() {
        // 30 + 30 minutes of one task with a break: one whole class hour, on the session that
        // completes it.
        let sessions = [session("asg_a", "s1", 8, 30, 30), session("asg_a", "s2", 9, 30, 30)];
        assert_eq!(billable(&allocate_cap(&sessions, FLOOR, 4)), [("asg_a", "s1", 0, 0), ("asg_a", "s2", 1, 1)]);
        // HALF_UP: 30 minutes round to 1, and 60 minutes still round to 1, so the second adds none.
        assert_eq!(billable(&allocate_cap(&sessions, HALF_UP, 4)), [("asg_a", "s1", 1, 1), ("asg_a", "s2", 0, 0)]);
    }

    #[test]
    fn minutes_do_not_accumulate_across_assignments() {
        let sessions = [session("asg_a", "s1", 8, 30, 30), session("asg_b", "s2", 9, 30, 30)];
        assert_eq!(billable(&allocate_cap(&sessions, FLOOR, 4)), [("asg_a", "s1", 0, 0), ("asg_b", "s2", 0, 0)]);
    }

    #[test]
    fn a_voided_session_takes_none_of_the_cap() {
        let mut voided = session("asg_a", "s1", 8, 30, 180);
        voided.void_reason = Some("violation of 9(八)".into());
        let sessions = [voided, session("asg_b", "s2", 10, 0, 180)];
        assert_eq!(billable(&allocate_cap(&sessions, FLOOR, 4)), [("asg_a", "s1", 4, 0), ("asg_b", "s2", 4, 4)]);
    }

    #[test]
    fn the_cap_is_a_parameter() {
        let out = allocate_cap(&[session("asg_a", "s1", 8, 30, 210)], FLOOR, 3);
        assert_eq!(billable(&out), [("asg_a", "s1", 4, 3)]);
        assert!(allocate_cap(&[], FLOOR, 4).is_empty());
    }
}
