//! The fill (step 5): walk the order, re-checking each candidate at that moment, and take it
//! unless a teammate has the same employer; the first N taken are primaries, the next B backups.
//! If the walk yields fewer than N + B, the same-employer rule is relaxed (D14, logged) and the
//! walk repeats from the top. A vacancy promotes the first backup and tops the backups up by
//! continuing the walk where it stopped.
//!
//! The walk is a pure function of the order and of the facts the caller supplies when asked: is
//! the candidate still free on every session, still active, and who employs them. Each call asks
//! about each candidate at most once, so one call sees one consistent picture. The caller stamps
//! the time on the skips a call returns; this crate has no clock.
//!
//! Choices the protocol leaves open, made here and documented in `docs/draw-algorithm.md`:
//!
//! - "Teammate" means every expert holding a place, primaries and backups alike. Backups are
//!   checked against the primaries and the backups before them, so promoting any backup in any
//!   order never puts two experts of one employer on a team while the rule is enforced.
//! - The relaxation happens only if the first walk skipped someone for the same employer; when it
//!   did not, relaxing would change nothing, and logging it would be false.
//! - Once relaxed, a draw stays relaxed for its vacancies. A continuation never relaxes further
//!   and never walks back over skipped candidates: when the order is exhausted, step 5 calls for a
//!   linked supplementary draw.

use std::collections::HashMap;

use crate::{candidates::ExpertId, error::FillError, order::DrawOrder};

/// An employer as the registry keys it: opaque, compared for equality only. An expert with no
/// employer has no key and never counts as the same employer as anyone (D14).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmployerKey(String);

impl EmployerKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the caller knows about a candidate at the moment the walk reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateFacts {
    /// Not booked on any of the task's sessions (date and half-day).
    pub free_on_every_session: bool,
    /// Still active and in term on every session date.
    pub active: bool,
    pub employer: Option<EmployerKey>,
}

impl CandidateFacts {
    /// Free, active, and employed by `employer` (or by no one).
    pub fn available(employer: Option<&str>) -> Self {
        Self { free_on_every_session: true, active: true, employer: employer.map(EmployerKey::new) }
    }
}

/// N primaries and B backups. The dispatch service decides both (D7: 2 and 2 by default, fewer
/// than 2 primaries only with city approval); the walk takes them as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamSize {
    pub primaries: usize,
    pub backups: usize,
}

impl TeamSize {
    pub fn total(&self) -> usize {
        self.primaries + self.backups
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameEmployerRule {
    /// Nobody is taken while a holder of a place has the same employer.
    Enforced,
    /// Relaxed under D14 because the enforced walk yielded fewer than N + B.
    Relaxed,
}

/// Which part of the fill a skip or a placement happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The first walk, same-employer rule enforced.
    Walk,
    /// The repeated walk after the same-employer rule was relaxed.
    RelaxedWalk,
    /// A backup re-checked on being promoted into a vacancy.
    Promotion,
    /// The walk continued past where the fill stopped, for a vacancy or a missing backup.
    Continuation,
}

/// Why the walk passed a candidate by. A candidate can have several reasons; all are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    NotActive,
    /// Booked on at least one of the task's sessions.
    NotFree,
    /// `teammate` already holds a place and has the same `employer`.
    SameEmployer {
        employer: EmployerKey,
        teammate: ExpertId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub id: ExpertId,
    /// Zero-based position in the order.
    pub position: usize,
    pub stage: Stage,
    pub reasons: Vec<SkipReason>,
}

/// An expert holding a place, primary or backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub id: ExpertId,
    /// Zero-based position in the order.
    pub position: usize,
    pub stage: Stage,
    /// The employer when taken, against which later candidates are checked.
    pub employer: Option<EmployerKey>,
    /// Under the relaxed rule only: a holder of a place with the same employer at the time this
    /// expert was taken or promoted.
    pub shares_employer_with: Option<ExpertId>,
}

/// A soft rule relaxed during the fill, with the numbers that justified it (D14: logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relaxation {
    SameEmployer {
        /// Places the enforced walk filled.
        taken: usize,
        /// N + B.
        needed: usize,
        /// Candidates the enforced walk skipped for the same employer (and perhaps more).
        skipped_for_same_employer: usize,
    },
}

/// The state of a draw's fill: who holds a place, who was passed by and why, and where the walk
/// stopped. Every field is public so the dispatch service can store it and rebuild it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub team: TeamSize,
    pub rule: SameEmployerRule,
    pub primaries: Vec<Placement>,
    /// In rank order: the first is promoted first.
    pub backups: Vec<Placement>,
    /// Every skip, in the order they happened.
    pub skips: Vec<Skip>,
    pub relaxations: Vec<Relaxation>,
    /// Experts who left a place (declined, recused, did not answer, were cancelled), in order.
    pub vacated: Vec<ExpertId>,
    /// The next position of the order the walk would look at.
    pub next_position: usize,
    /// Length of the order this fill walks, to refuse another order.
    pub order_len: usize,
}

/// What one vacancy changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vacancy {
    pub vacated: ExpertId,
    /// The expert who took the vacated primary place: the first backup that still passed the
    /// re-check, or, with no backup left, the next candidate of the order.
    pub promoted: Option<Placement>,
    /// Backups taken from the continued walk to top the list up.
    pub added_backups: Vec<Placement>,
    /// Skips this vacancy made (also appended to [`Fill::skips`]).
    pub skips: Vec<Skip>,
}

/// Walks `order` and fills `team`, asking `facts` about each candidate as the walk reaches them.
///
/// A fill that is still short after the relaxation is returned as it is: the caller sees
/// [`Fill::shortfall`] and answers `FAILED_PRECONDITION` or applies a D15 fallback.
pub fn fill(order: &DrawOrder, team: TeamSize, facts: impl FnMut(&ExpertId) -> CandidateFacts) -> Fill {
    let mut facts = FactsAtThisMoment::new(facts);
    let mut fill = Fill {
        team,
        rule: SameEmployerRule::Enforced,
        primaries: Vec::new(),
        backups: Vec::new(),
        skips: Vec::new(),
        relaxations: Vec::new(),
        vacated: Vec::new(),
        next_position: 0,
        order_len: order.len(),
    };
    fill.walk_to_full(order, Stage::Walk, &mut facts);

    let taken = fill.primaries.len() + fill.backups.len();
    let skipped_for_same_employer = fill
        .skips
        .iter()
        .filter(|skip| skip.reasons.iter().any(|r| matches!(r, SkipReason::SameEmployer { .. })))
        .count();
    if taken < team.total() && skipped_for_same_employer > 0 {
        fill.relaxations.push(Relaxation::SameEmployer { taken, needed: team.total(), skipped_for_same_employer });
        fill.rule = SameEmployerRule::Relaxed;
        fill.primaries.clear();
        fill.backups.clear();
        fill.next_position = 0;
        fill.walk_to_full(order, Stage::RelaxedWalk, &mut facts);
    }
    fill
}

impl Fill {
    /// Places still empty out of N + B.
    pub fn shortfall(&self) -> usize {
        self.team.total().saturating_sub(self.primaries.len() + self.backups.len())
    }

    /// Primary places still empty.
    pub fn primaries_short(&self) -> usize {
        self.team.primaries.saturating_sub(self.primaries.len())
    }

    /// Whether the walk has looked at every candidate of the order.
    pub fn order_exhausted(&self) -> bool {
        self.next_position >= self.order_len
    }

    /// `vacated` leaves its place. A primary's place goes to the first backup that still passes
    /// the re-check (free, active, and, if enforced, no teammate with the same employer); backups
    /// that fail it are dropped with a [`Stage::Promotion`] skip. With no backup left, the walk
    /// continues for a primary. Then the backups are topped up to B by continuing the walk.
    pub fn vacate(
        &mut self,
        order: &DrawOrder,
        vacated: &ExpertId,
        facts: impl FnMut(&ExpertId) -> CandidateFacts,
    ) -> Result<Vacancy, FillError> {
        self.check_order(order)?;
        let mut facts = FactsAtThisMoment::new(facts);
        let skips_before = self.skips.len();

        let was_primary = if let Some(index) = self.primaries.iter().position(|p| p.id == *vacated) {
            self.primaries.remove(index);
            true
        } else if let Some(index) = self.backups.iter().position(|p| p.id == *vacated) {
            self.backups.remove(index);
            false
        } else {
            return Err(FillError::NotPlaced(vacated.to_string()));
        };
        self.vacated.push(vacated.clone());

        let mut promoted = None;
        if was_primary {
            while !self.backups.is_empty() {
                let mut backup = self.backups.remove(0);
                let (reasons, shares_employer_with) = self.assess(&facts.about(backup.position, &backup.id));
                if reasons.is_empty() {
                    backup.shares_employer_with = shares_employer_with;
                    self.primaries.push(backup.clone());
                    promoted = Some(backup);
                    break;
                }
                self.skips.push(Skip { id: backup.id, position: backup.position, stage: Stage::Promotion, reasons });
            }
            if promoted.is_none()
                && let Some(placement) = self.take_next(order, Stage::Continuation, &mut facts)
            {
                self.primaries.push(placement.clone());
                promoted = Some(placement);
            }
        }

        let mut added_backups = Vec::new();
        while self.backups.len() < self.team.backups {
            let Some(placement) = self.take_next(order, Stage::Continuation, &mut facts) else { break };
            self.backups.push(placement.clone());
            added_backups.push(placement);
        }

        Ok(Vacancy { vacated: vacated.clone(), promoted, added_backups, skips: self.skips[skips_before..].to_vec() })
    }

    /// Continues the walk for one more backup and appends it; `None` when the order is
    /// exhausted. Skips on the way are appended to [`Fill::skips`].
    pub fn next_backup(
        &mut self,
        order: &DrawOrder,
        facts: impl FnMut(&ExpertId) -> CandidateFacts,
    ) -> Result<Option<Placement>, FillError> {
        self.check_order(order)?;
        let mut facts = FactsAtThisMoment::new(facts);
        let placement = self.take_next(order, Stage::Continuation, &mut facts);
        if let Some(placement) = &placement {
            self.backups.push(placement.clone());
        }
        Ok(placement)
    }

    fn walk_to_full<F: FnMut(&ExpertId) -> CandidateFacts>(
        &mut self,
        order: &DrawOrder,
        stage: Stage,
        facts: &mut FactsAtThisMoment<F>,
    ) {
        while self.primaries.len() + self.backups.len() < self.team.total() {
            let Some(placement) = self.take_next(order, stage, facts) else { break };
            if self.primaries.len() < self.team.primaries {
                self.primaries.push(placement);
            } else {
                self.backups.push(placement);
            }
        }
    }

    /// Walks on from `next_position` to the first candidate that can be taken, recording a skip
    /// for each one passed by.
    fn take_next<F: FnMut(&ExpertId) -> CandidateFacts>(
        &mut self,
        order: &DrawOrder,
        stage: Stage,
        facts: &mut FactsAtThisMoment<F>,
    ) -> Option<Placement> {
        while let Some(id) = order.id_at(self.next_position) {
            let position = self.next_position;
            self.next_position += 1;
            let candidate_facts = facts.about(position, id);
            let (reasons, shares_employer_with) = self.assess(&candidate_facts);
            if reasons.is_empty() {
                return Some(Placement {
                    id: id.clone(),
                    position,
                    stage,
                    employer: candidate_facts.employer,
                    shares_employer_with,
                });
            }
            self.skips.push(Skip { id: id.clone(), position, stage, reasons });
        }
        None
    }

    /// The reasons to pass a candidate by, and, under the relaxed rule, a holder of a place with
    /// the same employer.
    fn assess(&self, facts: &CandidateFacts) -> (Vec<SkipReason>, Option<ExpertId>) {
        let mut reasons = Vec::new();
        if !facts.active {
            reasons.push(SkipReason::NotActive);
        }
        if !facts.free_on_every_session {
            reasons.push(SkipReason::NotFree);
        }
        let same_employer = facts.employer.as_ref().and_then(|employer| {
            self.primaries.iter().chain(&self.backups).find(|holder| holder.employer.as_ref() == Some(employer))
        });
        let mut shares_employer_with = None;
        if let (Some(holder), Some(employer)) = (same_employer, &facts.employer) {
            match self.rule {
                SameEmployerRule::Enforced => {
                    reasons.push(SkipReason::SameEmployer { employer: employer.clone(), teammate: holder.id.clone() })
                }
                SameEmployerRule::Relaxed => shares_employer_with = Some(holder.id.clone()),
            }
        }
        (reasons, shares_employer_with)
    }

    fn check_order(&self, order: &DrawOrder) -> Result<(), FillError> {
        if order.len() != self.order_len {
            return Err(FillError::OrderLength { expected: self.order_len, given: order.len() });
        }
        for placement in self.primaries.iter().chain(&self.backups) {
            let found = order.id_at(placement.position);
            if found != Some(&placement.id) {
                return Err(FillError::OrderMismatch {
                    position: placement.position,
                    placed: placement.id.to_string(),
                    found: found.map(ToString::to_string).unwrap_or_default(),
                });
            }
        }
        Ok(())
    }
}

/// Asks the caller about each candidate at most once per call, so a repeated walk sees the same
/// facts as the walk before it.
struct FactsAtThisMoment<F> {
    ask: F,
    answers: HashMap<usize, CandidateFacts>,
}

impl<F: FnMut(&ExpertId) -> CandidateFacts> FactsAtThisMoment<F> {
    fn new(ask: F) -> Self {
        Self { ask, answers: HashMap::new() }
    }

    fn about(&mut self, position: usize, id: &ExpertId) -> CandidateFacts {
        self.answers.entry(position).or_insert_with(|| (self.ask)(id)).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        candidates::FrozenList,
        order::rank,
        seed::{SeedString, ServerSeed},
    };

    /// An order over `count` candidates, and its ids first drawn first.
    fn order_of(count: usize) -> (DrawOrder, Vec<String>) {
        let list = FrozenList::freeze_strs((1..=count).map(|n| format!("E{n}"))).unwrap();
        let order = rank(&list, &SeedString::new(&ServerSeed::from_hex(&"5a".repeat(32)).unwrap(), None));
        let ids = order.ids().map(ToString::to_string).collect();
        (order, ids)
    }

    fn team(primaries: usize, backups: usize) -> TeamSize {
        TeamSize { primaries, backups }
    }

    fn ids(placements: &[Placement]) -> Vec<&str> {
        placements.iter().map(|p| p.id.as_str()).collect()
    }

    /// Facts from a table keyed by id; anyone not in it is free, active and unemployed.
    fn table(entries: &[(&str, CandidateFacts)]) -> impl FnMut(&ExpertId) -> CandidateFacts + use<> {
        let map: HashMap<String, CandidateFacts> =
            entries.iter().map(|(id, f)| ((*id).to_owned(), f.clone())).collect();
        move |id| map.get(id.as_str()).cloned().unwrap_or_else(|| CandidateFacts::available(None))
    }

    fn employed_by(employer: &str) -> CandidateFacts {
        CandidateFacts::available(Some(employer))
    }

    fn busy() -> CandidateFacts {
        CandidateFacts { free_on_every_session: false, ..CandidateFacts::available(None) }
    }

    fn inactive() -> CandidateFacts {
        CandidateFacts { active: false, ..CandidateFacts::available(None) }
    }

    #[test]
    fn with_everyone_available_the_first_n_are_primaries_and_the_next_b_backups() {
        let (order, o) = order_of(10);
        let fill = fill(&order, team(2, 2), table(&[]));
        assert_eq!(ids(&fill.primaries), [&o[0], &o[1]]);
        assert_eq!(ids(&fill.backups), [&o[2], &o[3]]);
        assert!(fill.skips.is_empty() && fill.relaxations.is_empty());
        assert_eq!(fill.next_position, 4);
        assert_eq!(fill.shortfall(), 0);
    }

    #[test]
    fn a_busy_or_inactive_candidate_is_skipped_with_its_reasons() {
        let (order, o) = order_of(10);
        let both = CandidateFacts { free_on_every_session: false, active: false, employer: None };
        let fill = fill(&order, team(2, 1), table(&[(&o[0], busy()), (&o[1], inactive()), (&o[2], both)]));
        assert_eq!(ids(&fill.primaries), [&o[3], &o[4]]);
        assert_eq!(ids(&fill.backups), [&o[5]]);
        let reasons: Vec<_> = fill.skips.iter().map(|s| (s.id.as_str(), s.position, s.reasons.clone())).collect();
        assert_eq!(
            reasons,
            [
                (o[0].as_str(), 0, vec![SkipReason::NotFree]),
                (o[1].as_str(), 1, vec![SkipReason::NotActive]),
                (o[2].as_str(), 2, vec![SkipReason::NotActive, SkipReason::NotFree]),
            ]
        );
    }

    #[test]
    fn a_candidate_sharing_an_employer_with_a_primary_is_skipped_naming_the_teammate() {
        let (order, o) = order_of(10);
        let fill = fill(&order, team(2, 0), table(&[(&o[0], employed_by("acme")), (&o[1], employed_by("acme"))]));
        assert_eq!(ids(&fill.primaries), [&o[0], &o[2]]);
        assert_eq!(
            fill.skips[0].reasons,
            [SkipReason::SameEmployer {
                employer: EmployerKey::new("acme"),
                teammate: ExpertId::parse(&o[0]).unwrap()
            }]
        );
    }

    #[test]
    fn backups_are_teammates_too_for_the_same_employer_rule() {
        let (order, o) = order_of(10);
        let facts = table(&[(&o[2], employed_by("acme")), (&o[3], employed_by("acme"))]);
        let fill = fill(&order, team(2, 2), facts);
        assert_eq!(ids(&fill.backups), [&o[2], &o[4]]);
        assert_eq!(fill.skips.len(), 1);
    }

    #[test]
    fn experts_without_an_employer_never_count_as_the_same_employer() {
        let (order, o) = order_of(4);
        let fill = fill(&order, team(2, 2), table(&[]));
        assert_eq!(ids(&fill.primaries).len() + ids(&fill.backups).len(), 4);
        assert!(fill.skips.is_empty(), "{o:?}");
    }

    #[test]
    fn a_short_walk_relaxes_the_same_employer_rule_once_and_walks_again_from_the_top() {
        let (order, o) = order_of(4);
        let facts = table(&[(&o[0], employed_by("acme")), (&o[1], employed_by("acme")), (&o[3], busy())]);
        let fill = fill(&order, team(2, 1), facts);
        assert_eq!(fill.rule, SameEmployerRule::Relaxed);
        assert_eq!(fill.relaxations, [Relaxation::SameEmployer { taken: 2, needed: 3, skipped_for_same_employer: 1 }]);
        assert_eq!(ids(&fill.primaries), [&o[0], &o[1]]);
        assert_eq!(ids(&fill.backups), [&o[2]]);
        assert_eq!(fill.primaries[1].shares_employer_with, Some(ExpertId::parse(&o[0]).unwrap()));
        assert_eq!(fill.primaries[1].stage, Stage::RelaxedWalk);
        // Both walks' skips are kept: the same-employer skip of the first, the busy one of each.
        let stages: Vec<_> = fill.skips.iter().map(|s| (s.position, s.stage)).collect();
        assert_eq!(stages, [(1, Stage::Walk), (3, Stage::Walk)]);
    }

    #[test]
    fn the_relaxed_walk_still_skips_busy_and_inactive_candidates() {
        let (order, o) = order_of(4);
        let facts = table(&[(&o[0], employed_by("acme")), (&o[1], employed_by("acme")), (&o[2], busy())]);
        let fill = fill(&order, team(2, 2), facts);
        assert_eq!(fill.rule, SameEmployerRule::Relaxed);
        assert_eq!(ids(&fill.primaries), [&o[0], &o[1]]);
        assert_eq!(ids(&fill.backups), [&o[3]]);
        assert!(fill.skips.iter().any(|s| s.stage == Stage::RelaxedWalk && s.reasons == [SkipReason::NotFree]));
        assert_eq!(fill.shortfall(), 1);
    }

    #[test]
    fn a_short_walk_without_same_employer_skips_is_not_relaxed() {
        let (order, o) = order_of(3);
        let fill = fill(&order, team(2, 2), table(&[(&o[0], busy())]));
        assert_eq!(fill.rule, SameEmployerRule::Enforced);
        assert!(fill.relaxations.is_empty());
        assert_eq!(fill.shortfall(), 2);
        assert!(fill.order_exhausted());
    }

    #[test]
    fn a_pool_too_small_even_relaxed_reports_its_shortfall() {
        let (order, _) = order_of(1);
        let fill = fill(&order, team(2, 2), table(&[]));
        assert_eq!(fill.primaries.len(), 1);
        assert_eq!(fill.primaries_short(), 1);
        assert_eq!(fill.shortfall(), 3);
    }

    #[test]
    fn the_caller_is_asked_about_each_candidate_once_per_call() {
        let (order, o) = order_of(4);
        let mut asked = Vec::new();
        let mut facts = table(&[(&o[0], employed_by("acme")), (&o[1], employed_by("acme"))]);
        let fill = fill(&order, team(2, 3), |id| {
            asked.push(id.to_string());
            facts(id)
        });
        assert_eq!(fill.rule, SameEmployerRule::Relaxed);
        assert_eq!(asked, o);
    }

    #[test]
    fn a_vacated_primary_place_goes_to_the_first_backup_and_the_walk_tops_up_the_backups() {
        let (order, o) = order_of(10);
        let mut fill = fill(&order, team(2, 2), table(&[]));
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[0]).unwrap(), table(&[(&o[4], busy())])).unwrap();
        assert_eq!(vacancy.promoted.as_ref().map(|p| p.id.as_str()), Some(o[2].as_str()));
        assert_eq!(ids(&fill.primaries), [&o[1], &o[2]]);
        assert_eq!(ids(&fill.backups), [&o[3], &o[5]]);
        assert_eq!(ids(&vacancy.added_backups), [&o[5]]);
        assert_eq!(vacancy.skips.len(), 1);
        assert_eq!((vacancy.skips[0].position, vacancy.skips[0].stage), (4, Stage::Continuation));
        assert_eq!(fill.vacated, [ExpertId::parse(&o[0]).unwrap()]);
        assert_eq!(fill.next_position, 6);
    }

    #[test]
    fn a_backup_no_longer_free_when_promoted_is_dropped_and_the_next_one_promoted() {
        let (order, o) = order_of(10);
        let mut fill = fill(&order, team(2, 2), table(&[]));
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[1]).unwrap(), table(&[(&o[2], busy())])).unwrap();
        assert_eq!(vacancy.promoted.map(|p| p.id.to_string()), Some(o[3].clone()));
        assert_eq!(vacancy.skips[0].stage, Stage::Promotion);
        assert_eq!(vacancy.skips[0].id.as_str(), o[2]);
        assert_eq!(ids(&fill.backups), [&o[4], &o[5]]);
    }

    #[test]
    fn a_vacated_backup_is_replaced_from_the_walk_without_touching_the_primaries() {
        let (order, o) = order_of(10);
        let mut fill = fill(&order, team(2, 2), table(&[]));
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[2]).unwrap(), table(&[])).unwrap();
        assert_eq!(vacancy.promoted, None);
        assert_eq!(ids(&fill.primaries), [&o[0], &o[1]]);
        assert_eq!(ids(&fill.backups), [&o[3], &o[4]]);
    }

    #[test]
    fn with_no_backup_left_a_vacancy_is_filled_straight_from_the_walk() {
        let (order, o) = order_of(10);
        let mut fill = fill(&order, team(2, 0), table(&[]));
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[0]).unwrap(), table(&[])).unwrap();
        assert_eq!(vacancy.promoted.map(|p| (p.id.to_string(), p.stage)), Some((o[2].clone(), Stage::Continuation)));
    }

    #[test]
    fn a_vacancy_after_the_order_is_exhausted_leaves_the_place_empty() {
        let (order, o) = order_of(3);
        let mut fill = fill(&order, team(2, 1), table(&[]));
        fill.vacate(&order, &ExpertId::parse(&o[0]).unwrap(), table(&[])).unwrap();
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[1]).unwrap(), table(&[])).unwrap();
        assert_eq!(vacancy.promoted, None);
        assert_eq!(fill.primaries_short(), 1);
        assert!(fill.order_exhausted());
    }

    #[test]
    fn the_continued_walk_keeps_the_same_employer_rule_against_current_holders() {
        let (order, o) = order_of(10);
        let facts =
            || table(&[(&o[1], employed_by("acme")), (&o[4], employed_by("acme")), (&o[5], employed_by("acme"))]);
        let mut fill = fill(&order, team(2, 2), facts());
        // o[1] (acme) holds a primary place: o[4] and o[5] are skipped when o[3] leaves.
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[3]).unwrap(), facts()).unwrap();
        assert_eq!(ids(&vacancy.added_backups), [&o[6]]);
        assert_eq!(vacancy.skips.len(), 2);
        // Once o[1] leaves too, acme no longer blocks anyone; the walk goes on from o[7].
        let vacancy = fill.vacate(&order, &ExpertId::parse(&o[1]).unwrap(), facts()).unwrap();
        assert_eq!(vacancy.promoted.map(|p| p.id.to_string()), Some(o[2].clone()));
        assert_eq!(ids(&vacancy.added_backups), [&o[7]]);
    }

    #[test]
    fn next_backup_continues_the_walk_and_returns_none_at_the_end() {
        let (order, o) = order_of(3);
        let mut fill = fill(&order, team(1, 1), table(&[]));
        assert_eq!(fill.next_backup(&order, table(&[])).unwrap().map(|p| p.id.to_string()), Some(o[2].clone()));
        assert_eq!(fill.next_backup(&order, table(&[])).unwrap(), None);
        assert_eq!(ids(&fill.backups), [&o[1], &o[2]]);
    }

    #[test]
    fn vacating_an_expert_who_holds_no_place_is_an_error() {
        let (order, o) = order_of(5);
        let mut fill = fill(&order, team(2, 1), table(&[]));
        assert_eq!(
            fill.vacate(&order, &ExpertId::parse(&o[4]).unwrap(), table(&[])),
            Err(FillError::NotPlaced(o[4].clone()))
        );
    }

    #[test]
    fn a_fill_refuses_to_continue_over_another_order() {
        let (order, _) = order_of(5);
        let (other, _) = order_of(6);
        let mut fill = fill(&order, team(2, 1), table(&[]));
        assert_eq!(fill.next_backup(&other, table(&[])), Err(FillError::OrderLength { expected: 5, given: 6 }));
        let list = FrozenList::freeze_strs((1..=5).map(|n| format!("E{n}"))).unwrap();
        let reshuffled = rank(&list, &SeedString::new(&ServerSeed::from_hex(&"77".repeat(32)).unwrap(), None));
        assert!(matches!(fill.next_backup(&reshuffled, table(&[])), Err(FillError::OrderMismatch { .. })));
    }
}
