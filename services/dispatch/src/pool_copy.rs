//! Dispatch's copy of the registry's draw pool (issue 12; ARCHITECTURE.md "The draw" step 1).
//!
//! Streaming every appointed expert for every draw cost 1.4 s at 100,000 experts. Instead each
//! draw asks the registry only for what changed since the version this copy reflects
//! (StreamDrawPool with `sync`): the experts whose status, training, employer, represented unit,
//! last term or specialties changed, those that left the pool, and, read fresh every time
//! because they depend on the task, the institution's conflicts and the scheduled status changes.
//! The pool a draw freezes is then the same one a whole read at that instant would give.
//!
//! The copy is only a cache of the registry's answers: it lives in memory, starts empty (the
//! first draw after a start reads the whole pool), is replaced whole when the registry says its
//! version is of no use (`full`), and is read whole again every [`FULL_READ_EVERY`] whatever the
//! registry says, so that a registry database restored to an earlier state is never trusted for
//! longer than that. An answer that breaks off changes nothing.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::NaiveDate;
use supervision_proto::registry as rpb;

use crate::domain::PoolExpert;

/// How long the copy is trusted before the registry is read whole again.
pub const FULL_READ_EVERY: Duration = Duration::from_secs(60 * 60);

/// One expert of the copy: the facts that do not depend on the task.
#[derive(Debug, Clone)]
struct Held {
    /// With no conflict and no scheduled change (those come with each answer). Shared with
    /// the pools answered since: a task's pool clones only the experts its answer gives a
    /// conflict or a scheduled change (cloning all of them cost about 20 ms at 100,000).
    expert: Arc<PoolExpert>,
    /// The last day of the term (its end, or the day it ended early).
    last_day: Option<NaiveDate>,
}

/// What one sync answer carried, whole (the stream's messages put together).
#[derive(Debug, Default)]
pub struct SyncAnswer {
    pub experts: Vec<rpb::DrawPoolExpert>,
    pub removed: Vec<String>,
    pub end: rpb::DrawPoolEnd,
}

/// The copy, and the version of the registry's pool facts it reflects.
#[derive(Debug, Default)]
pub struct PoolCopy {
    /// Empty until the first answer is applied.
    version: String,
    /// When the whole pool was last read.
    read_whole_at: Option<Instant>,
    experts: BTreeMap<String, Held>,
}

/// The copy's pool for one task: the experts in term on its first session date, with the
/// conflicts and scheduled changes of the answer that brought the copy up to date.
#[derive(Debug)]
pub struct Overlay {
    conflicts: HashMap<String, Vec<rpb::ConflictReason>>,
    leaves_on: HashMap<String, NaiveDate>,
}

impl PoolCopy {
    /// The version to ask changes since: empty (the whole pool) when there is none yet or the
    /// copy is older than [`FULL_READ_EVERY`].
    pub fn since(&self, now: Instant) -> &str {
        match self.read_whole_at {
            Some(at) if now.duration_since(at) < FULL_READ_EVERY => &self.version,
            _ => "",
        }
    }

    /// Applies a sync answer (a whole pool when `end.full`, else the changes) and returns what
    /// the task-dependent part of it says. `now` is when the answer was asked for.
    pub fn apply(&mut self, answer: SyncAnswer, now: Instant) -> Overlay {
        let SyncAnswer { experts, removed, end } = answer;
        if end.full {
            self.experts.clear();
            self.read_whole_at = Some(now);
        }
        for id in removed {
            self.experts.remove(&id);
        }
        for e in experts {
            let last_day = crate::registry::day(e.term_ended.as_ref())
                .or_else(|| crate::registry::day(e.term.as_ref().and_then(|t| t.end.as_ref())));
            let mut expert = crate::registry::pool_expert(e);
            crate::registry::set_conflicts(&mut expert, &[]);
            expert.leaves_on = None;
            self.experts.insert(expert.id.clone(), Held { expert: Arc::new(expert), last_day });
        }
        self.version = end.version;
        let active = rpb::ExpertStatus::Active as i32;
        Overlay {
            conflicts: end.conflicts.into_iter().map(|c| (c.expert_id, c.reasons)).collect(),
            leaves_on: end
                .scheduled_changes
                .into_iter()
                .filter(|c| c.status != active)
                .filter_map(|c| Some((c.expert_id, crate::registry::day(c.effective_date.as_ref())?)))
                .collect(),
        }
    }

    /// The pool for a task on `dates` (every expert whose term's last day is not before the
    /// first of them), in id order, or only the experts of `only` among it.
    pub fn pool(&self, dates: &[NaiveDate], overlay: &Overlay, only: Option<&HashSet<&str>>) -> Vec<Arc<PoolExpert>> {
        let Some(first) = dates.iter().min() else { return Vec::new() };
        let held: Box<dyn Iterator<Item = &Held>> = match only {
            Some(ids) => {
                let mut ids: Vec<&str> = ids.iter().copied().collect();
                ids.sort_unstable();
                Box::new(ids.into_iter().filter_map(|id| self.experts.get(id)))
            }
            None => Box::new(self.experts.values()),
        };
        let mut pool: Vec<Arc<PoolExpert>> =
            held.filter(|h| h.last_day.is_some_and(|last| last >= *first)).map(|h| Arc::clone(&h.expert)).collect();
        // The answer's conflicts and scheduled changes concern a few experts: each is found in
        // the pool (in id order) and only those are cloned, rather than looking every expert up
        // in both maps (hashing 100,000 ids twice, issue 12).
        let overlaid: BTreeSet<&String> = overlay.conflicts.keys().chain(overlay.leaves_on.keys()).collect();
        for id in overlaid {
            let Ok(i) = pool.binary_search_by(|e| e.id.as_str().cmp(id)) else { continue };
            let mut expert = PoolExpert::clone(&pool[i]);
            if let Some(reasons) = overlay.conflicts.get(id) {
                crate::registry::set_conflicts(&mut expert, reasons);
            }
            expert.leaves_on = overlay.leaves_on.get(id).copied();
            pool[i] = Arc::new(expert);
        }
        pool
    }
}

#[cfg(test)]
mod tests {
    use supervision_proto::common;

    use super::*;

    fn date(y: i32, m: i32, d: i32) -> common::Date {
        common::Date { year: y, month: m, day: d }
    }

    fn expert(id: &str, end: common::Date) -> rpb::DrawPoolExpert {
        rpb::DrawPoolExpert {
            expert_id: id.to_owned(),
            status: rpb::ExpertStatus::Active as i32,
            term: Some(common::DateRange { start: Some(date(2026, 1, 1)), end: Some(end) }),
            trained: true,
            ..Default::default()
        }
    }

    fn end(version: &str, full: bool) -> rpb::DrawPoolEnd {
        rpb::DrawPoolEnd { version: version.to_owned(), full, ..Default::default() }
    }

    /// The answer's conflict for `id`: employed by the task's institution.
    fn employed_by_institution(id: &str) -> rpb::ConflictedExpert {
        rpb::ConflictedExpert {
            expert_id: id.into(),
            reasons: vec![rpb::ConflictReason {
                relation_type: common::RelationType::CurrentEmployment as i32,
                ..Default::default()
            }],
        }
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn ids(pool: &[Arc<PoolExpert>]) -> Vec<&str> {
        pool.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn changes_replace_and_remove_held_experts_and_a_full_answer_starts_over() {
        let mut copy = PoolCopy::default();
        let t = Instant::now();
        assert_eq!(copy.since(t), "", "an empty copy asks for the whole pool");
        let whole = SyncAnswer {
            experts: vec![expert("exp_a", date(2027, 12, 31)), expert("exp_b", date(2027, 12, 31))],
            removed: vec![],
            end: end("v1", true),
        };
        let overlay = copy.apply(whole, t);
        assert_eq!(copy.since(t), "v1");
        assert_eq!(ids(&copy.pool(&[day(2027, 3, 1)], &overlay, None)), ["exp_a", "exp_b"]);

        let mut changed = expert("exp_c", date(2027, 12, 31));
        changed.trained = false;
        let changes = SyncAnswer { experts: vec![changed], removed: vec!["exp_a".into()], end: end("v2", false) };
        let overlay = copy.apply(changes, t);
        let pool = copy.pool(&[day(2027, 3, 1)], &overlay, None);
        assert_eq!(ids(&pool), ["exp_b", "exp_c"]);
        assert!(!pool[1].trained);
        assert_eq!(copy.since(t), "v2");

        let again =
            SyncAnswer { experts: vec![expert("exp_z", date(2027, 12, 31))], removed: vec![], end: end("v9", true) };
        let overlay = copy.apply(again, t);
        assert_eq!(ids(&copy.pool(&[day(2027, 3, 1)], &overlay, None)), ["exp_z"], "a full answer replaces the copy");
    }

    #[test]
    fn the_pool_keeps_those_in_term_on_the_first_date_with_the_answers_conflicts_and_leaving_dates() {
        let mut copy = PoolCopy::default();
        let mut ended = expert("exp_b", date(2027, 12, 31));
        ended.term_ended = Some(date(2027, 2, 1));
        let mut answer = SyncAnswer {
            experts: vec![expert("exp_a", date(2027, 12, 31)), ended, expert("exp_c", date(2027, 2, 28))],
            removed: vec![],
            end: end("v1", true),
        };
        answer.end.conflicts = vec![employed_by_institution("exp_c")];
        answer.end.scheduled_changes = vec![rpb::ExpertStatusChange {
            expert_id: "exp_a".into(),
            status: rpb::ExpertStatus::Suspended as i32,
            effective_date: Some(date(2027, 3, 10)),
            ..Default::default()
        }];
        let overlay = copy.apply(answer, Instant::now());
        let pool = copy.pool(&[day(2027, 3, 5), day(2027, 2, 20)], &overlay, None);
        assert_eq!(ids(&pool), ["exp_a", "exp_c"], "exp_b's term ended early, before the first date");
        assert_eq!(pool[0].leaves_on, Some(day(2027, 3, 10)));
        assert!(pool[1].conflicted && pool[1].employed_by_institution);
        assert!(!pool[0].conflicted);
        let only: HashSet<&str> = ["exp_c", "exp_b", "exp_x"].into();
        // Before exp_b's term ended, it is in the pool; ids the copy does not hold are left out.
        assert_eq!(ids(&copy.pool(&[day(2027, 1, 20)], &overlay, Some(&only))), ["exp_b", "exp_c"]);
        assert_eq!(ids(&copy.pool(&[day(2027, 2, 20)], &overlay, Some(&only))), ["exp_c"]);
    }

    #[test]
    fn a_copy_older_than_the_full_read_interval_asks_for_the_whole_pool() {
        let mut copy = PoolCopy::default();
        let t = Instant::now();
        copy.apply(SyncAnswer { end: end("v1", true), ..Default::default() }, t);
        assert_eq!(copy.since(t + FULL_READ_EVERY - Duration::from_secs(1)), "v1");
        assert_eq!(copy.since(t + FULL_READ_EVERY), "");
    }

    #[test]
    fn a_tasks_conflicts_and_leaving_dates_stay_with_its_pool_and_the_rest_is_shared_with_the_copy() {
        let mut copy = PoolCopy::default();
        let mut answer = SyncAnswer {
            experts: vec![expert("exp_a", date(2027, 12, 31)), expert("exp_b", date(2027, 12, 31))],
            removed: vec![],
            end: end("v1", true),
        };
        answer.end.conflicts = vec![employed_by_institution("exp_a")];
        let overlay = copy.apply(answer, Instant::now());
        let first = copy.pool(&[day(2027, 3, 1)], &overlay, None);
        assert!(first[0].conflicted && !first[1].conflicted);
        assert!(Arc::ptr_eq(&first[1], &copy.experts["exp_b"].expert), "an expert without a task fact is shared");
        assert!(!Arc::ptr_eq(&first[0], &copy.experts["exp_a"].expert));

        // The next task's answer has no conflict: the first task's did not stick to the copy.
        let overlay = copy.apply(SyncAnswer { end: end("v2", false), ..Default::default() }, Instant::now());
        let second = copy.pool(&[day(2027, 3, 1)], &overlay, None);
        assert!(second.iter().all(|e| !e.conflicted && !e.employed_by_institution && e.leaves_on.is_none()));
    }
}
