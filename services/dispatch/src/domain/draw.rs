//! 抽取 — a draw and the assignments it makes (ARCHITECTURE.md "The draw"; D8, D14, D15, D18).
//!
//! The bit-level protocol (frozen list, seed, commitment, tickets, order, fill) is the
//! `supervision-draw` crate's; this module holds what the service adds around it: D14's
//! exclusions with their reason codes, the record as stored, and the assignments.
//!
//! Choices written down here:
//! - D14's hard exclusions, in the contract's order: not active (status now, or a recorded change
//!   taking effect on or before the last session date), out of term on a session date, conflicted
//!   for the institution, already booked on one of the task's half-days (by this service's
//!   bookings), the task's reporter. Every expert the registry streams is appointed, and a task is
//!   created only when an edition is in force on every session date, so NOT_APPOINTED and
//!   EDITION_NOT_IN_FORCE never apply to a streamed expert. Training before dispatch is off in
//!   edition 1: untrained experts are only flagged.
//! - D14's soft exclusions after them: specialty (tier 1: a specialty equal to or under a wanted
//!   code; tier 2: under the wanted code's parent group, the code without its last segment;
//!   tier 3: any), the cooling period at the same institution, the monthly cap. Each is relaxed,
//!   one step at a time in that order (tier 1 to 2, tier 2 to 3, cooling, cap), only while the
//!   eligible count is below N + B, and each step is logged with the counts before and after.
//!   The same-employer rule, second in D14's order, is a rule of the team rather than of the
//!   pool: it does not change the eligible count, so the fill relaxes it (crates/draw) when the
//!   team cannot be completed otherwise. A task that names no specialty starts at tier 3.
//! - A pool still smaller than N + B after every relaxation is refused (D15) with counts per
//!   reason.

use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use supervision_kit::{
    auth::Actor,
    vocab::{is_prefixed_id, new_prefixed_id},
};

use super::task::TaskId;

macro_rules! opaque_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                Self(new_prefixed_id($prefix))
            }

            pub fn parse(s: &str) -> Option<Self> {
                is_prefixed_id(s, $prefix).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

opaque_id!(DrawId, "drw_");
opaque_id!(AssignmentId, "asg_");
opaque_id!(ReportId, "rpt_");
opaque_id!(LetterId, "ltr_");

macro_rules! codes {
    ($name:ident { $($variant:ident => $code:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// In the contract's order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn code(self) -> &'static str {
                match self {
                    $(Self::$variant => $code),+
                }
            }

            pub fn from_code(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.code() == code)
            }
        }
    };
}

codes!(DrawStatus {
    Prepared => "PREPARED",
    Witnessed => "WITNESSED",
    Executed => "EXECUTED",
    Abandoned => "ABANDONED",
    Voided => "VOIDED",
});

codes!(DrawKind {
    Initial => "INITIAL",
    Supplementary => "SUPPLEMENTARY",
    // Not random (D15): experts designated with a reason under the city's approval
    // (`designate.rs`); no frozen list, seed or order, never verified, left out of randomness
    // statistics.
    Designation => "DESIGNATION",
});

codes!(ExclusionReason {
    NotAppointed => "NOT_APPOINTED",
    NotActive => "NOT_ACTIVE",
    OutOfTerm => "OUT_OF_TERM",
    EditionNotInForce => "EDITION_NOT_IN_FORCE",
    Conflicted => "CONFLICTED",
    AlreadyBooked => "ALREADY_BOOKED",
    Reporter => "REPORTER",
    Untrained => "UNTRAINED",
    SpecialtyMismatch => "SPECIALTY_MISMATCH",
    CoolingPeriod => "COOLING_PERIOD",
    MonthlyCap => "MONTHLY_CAP",
});

codes!(AssignmentRole {
    Primary => "PRIMARY",
    Backup => "BACKUP",
});

codes!(AssignmentStatus {
    Reserved => "RESERVED",
    Notified => "NOTIFIED",
    Accepted => "ACCEPTED",
    DeclinedOnTime => "DECLINED_ON_TIME",
    DeclinedLate => "DECLINED_LATE",
    DeclinedExempt => "DECLINED_EXEMPT",
    Recused => "RECUSED",
    NoResponse => "NO_RESPONSE",
    NoShow => "NO_SHOW",
    Cancelled => "CANCELLED",
    CancelledStatusChange => "CANCELLED_STATUS_CHANGE",
    Unused => "UNUSED",
    Completed => "COMPLETED",
});

impl AssignmentStatus {
    /// Holding a place on the team or in reserve.
    pub fn holds_place(self) -> bool {
        matches!(self, Self::Reserved | Self::Notified | Self::Accepted)
    }
}

codes!(ResponseKind {
    Accept => "ACCEPT",
    Decline => "DECLINE",
    Recuse => "RECUSE",
});

codes!(ReportStatus {
    Submitted => "SUBMITTED",
    Returned => "RETURNED",
    Accepted => "ACCEPTED",
    Voided => "VOIDED",
});

/// What the registry's pool says of one expert, as the exclusions need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolExpert {
    pub id: String,
    /// ACTIVE now.
    pub active: bool,
    /// The current (or last) term, inclusive.
    pub term: Option<(NaiveDate, NaiveDate)>,
    pub trained: bool,
    /// The same-employer key; empty when none.
    pub employer_key: String,
    /// Conflicted for the institution (any reason the registry gave).
    pub conflicted: bool,
    /// Among those reasons: employed by the institution (CURRENT_EMPLOYMENT, or the employer path).
    pub employed_by_institution: bool,
    /// A recorded change to a status other than ACTIVE, and the date it takes effect.
    pub leaves_on: Option<NaiveDate>,
    /// Specialty codes.
    pub specialties: Vec<String>,
}

impl PoolExpert {
    /// Active, and staying so through `dates` (D14, D17).
    pub fn active_through(&self, dates: &[NaiveDate]) -> bool {
        active_through(self.active, self.leaves_on, dates)
    }

    /// In term on every date of `dates`.
    pub fn in_term(&self, dates: &[NaiveDate]) -> bool {
        in_term(self.term, dates)
    }
}

fn active_through(active: bool, leaves_on: Option<NaiveDate>, dates: &[NaiveDate]) -> bool {
    active && leaves_on.is_none_or(|leave| dates.iter().all(|d| *d < leave))
}

fn in_term(term: Option<(NaiveDate, NaiveDate)>, dates: &[NaiveDate]) -> bool {
    term.is_some_and(|(start, end)| dates.iter().all(|d| start <= *d && *d <= end))
}

/// One excluded candidate with every reason that applies, in D14 order (D18: codes only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub expert_id: String,
    pub reasons: Vec<ExclusionReason>,
}

/// The pool split by D14's hard and soft exclusions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screened {
    /// How many are eligible: the pool less [`Self::excluded`] (the ids are not copied; at
    /// 100,000 the copies were a measurable part of the prepare).
    pub eligible: usize,
    pub excluded: Vec<Exclusion>,
    /// Eligible experts who did not attend training (flagged, not excluded, in edition 1).
    pub untrained: Arc<[String]>,
    /// The soft rules relaxed, in order.
    pub relaxations: Vec<PoolRelaxation>,
    /// The specialty tier finally used: 1 exact, 2 group, 3 any.
    pub specialty_tier: u32,
}

codes!(SoftRule {
    SpecialtyGroup => "SPECIALTY_GROUP",
    SpecialtyAny => "SPECIALTY_ANY",
    CoolingPeriod => "COOLING_PERIOD",
    MonthlyCap => "MONTHLY_CAP",
});

/// One soft rule relaxed at prepare because the pool was smaller than N + B (D14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRelaxation {
    /// A [`SoftRule`] code.
    pub rule: String,
    pub eligible_before: usize,
    pub eligible_after: usize,
}

/// What the soft exclusions need beyond the pool: the specialty codes the task wants, the experts
/// inside the cooling period at the institution and those at the monthly cap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftFacts {
    pub wanted: Vec<String>,
    pub cooling: HashSet<String>,
    pub capped: HashSet<String>,
    /// N + B: relaxations happen only while fewer are eligible.
    pub needed: usize,
}

/// `code` is `prefix` or lies under it (`4-07-05-01` under `4-07-05`).
fn under(code: &str, prefix: &str) -> bool {
    code == prefix || code.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('-'))
}

/// The group one level up from `code`: the code without its last segment (a first-level code is
/// its own group).
pub fn parent_group(code: &str) -> &str {
    code.rsplit_once('-').map_or(code, |(group, _)| group)
}

/// The narrowest tier at which the one specialty `code` matches `wanted` (3 when it matches
/// neither exactly nor by group, and when nothing is wanted). An expert's tier is the narrowest
/// of its codes' tiers: a code under a wanted code is also under that code's group.
fn code_tier(code: &str, wanted: &[String]) -> u32 {
    if wanted.iter().any(|w| under(code, w)) {
        1
    } else if wanted.iter().any(|w| under(code, parent_group(w))) {
        2
    } else {
        3
    }
}

/// What D14's screening reads of one expert, copied out of its [`PoolExpert`] into one array
/// with its specialties as numbers ([`PoolFacts`]).
#[derive(Debug, Clone, Copy)]
struct Facts {
    term: Option<(NaiveDate, NaiveDate)>,
    leaves_on: Option<NaiveDate>,
    /// The expert's specialties: `PoolFacts::expert_codes[codes.0..codes.1]`.
    codes: (u32, u32),
    active: bool,
    conflicted: bool,
    trained: bool,
}

impl Facts {
    /// `e`'s facts, its specialties being `codes` of the table they are laid out in.
    fn of(e: &PoolExpert, codes: (u32, u32)) -> Self {
        Self {
            term: e.term,
            leaves_on: e.leaves_on,
            codes,
            active: e.active,
            conflicted: e.conflicted,
            trained: e.trained,
        }
    }
}

/// An untrained list and the places of its experts in the pool.
type NamedPlaces = (Vec<usize>, Arc<[String]>);

/// The facts D14's screening reads of every expert of a pool, laid out for it, kept while the
/// pool is unchanged (dispatch keeps the last pool's: `draws::PreparedLists`).
///
/// Screening reads all of a pool's experts. At 100,000 each expert's record, its specialties'
/// list and each specialty's text lie apart in memory, and reading them was about half of a
/// prepare's CPU, most of it waiting on memory (matching specialties and comparing ids,
/// docs/performance.md, twelfth run). Here the same facts lie in one array, a few dozen bytes
/// an expert, and each distinct specialty code is matched against the task's wanted codes once
/// per draw.
#[derive(Debug)]
pub struct PoolFacts {
    /// The experts the facts were taken from, in the pool's order. An expert of a later pool
    /// that is the same record (the same `Arc`) has the same facts; any other is read afresh.
    experts: Vec<Arc<PoolExpert>>,
    facts: Vec<Facts>,
    /// Each expert's specialties in turn, as indices into `codes`.
    expert_codes: Vec<u32>,
    /// The distinct specialty codes.
    codes: Vec<String>,
    /// The experts are in ascending id order.
    in_id_order: bool,
    /// The last untrained list screened from these facts, by the experts' places: draws in a row
    /// from an unchanged pool flag the same experts, and copying 25,000 ids for each was a
    /// measurable part of a prepare at 100,000.
    last_untrained: Mutex<Option<NamedPlaces>>,
}

impl PoolFacts {
    /// The facts of `pool`'s experts.
    pub fn new(pool: &[Arc<PoolExpert>]) -> Self {
        let mut numbers: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut codes: Vec<String> = Vec::new();
        let mut expert_codes = Vec::with_capacity(pool.len());
        let facts = pool
            .iter()
            .map(|e| {
                let start = expert_codes.len();
                for code in &e.specialties {
                    let number = *numbers.entry(code.as_str()).or_insert_with(|| {
                        codes.push(code.clone());
                        u32::try_from(codes.len() - 1).unwrap_or(u32::MAX)
                    });
                    expert_codes.push(number);
                }
                let span = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
                Facts::of(e, (span(start), span(expert_codes.len())))
            })
            .collect();
        Self {
            experts: pool.to_vec(),
            facts,
            expert_codes,
            codes,
            in_id_order: pool.is_sorted_by(|a, b| a.id < b.id),
            last_untrained: Mutex::default(),
        }
    }

    /// The ids of the experts at `places` of `pool` (a pool these facts are of), shared with the
    /// last list answered when the places are the same.
    fn untrained(&self, places: &[usize], pool: &[&PoolExpert]) -> Arc<[String]> {
        let mut last = self.last_untrained.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((was, list)) = &*last
            && was == places
        {
            return Arc::clone(list);
        }
        let list: Arc<[String]> = places.iter().map(|&i| pool[i].id.clone()).collect();
        *last = Some((places.to_vec(), Arc::clone(&list)));
        list
    }

    /// How many experts of `pool` are not the records these facts were taken from (`None`: the
    /// pools differ in size, or in an expert's id, and these facts are of no use for it).
    pub fn changed_in(&self, pool: &[Arc<PoolExpert>]) -> Option<usize> {
        if self.experts.len() != pool.len() {
            return None;
        }
        let mut changed = 0;
        for (kept, now) in self.experts.iter().zip(pool) {
            if !Arc::ptr_eq(kept, now) {
                if kept.id != now.id {
                    return None;
                }
                changed += 1;
            }
        }
        Some(changed)
    }
}

/// Applies D14's hard exclusions in their fixed order to `pool` for sessions on `dates`
/// (`booked` holds the experts already booked on one of the task's half-days), then the soft
/// ones, relaxed one step at a time while fewer than `soft.needed` are eligible.
///
/// Each expert is looked at once: its hard reasons, the narrowest specialty tier it matches and
/// its cooling and cap marks are worked out first, so each relaxation step recounts plain flags
/// rather than comparing specialty codes again (at 100,000 experts the recounts were a
/// measurable part of a prepare, issue 12).
pub fn screen<P: std::borrow::Borrow<PoolExpert>>(
    pool: &[P],
    dates: &[NaiveDate],
    booked: &HashSet<String>,
    reporter: &str,
    soft: &SoftFacts,
) -> Screened {
    let pool: Vec<&PoolExpert> = pool.iter().map(P::borrow).collect();
    let in_order = pool.is_sorted_by(|a, b| a.id < b.id);
    let marks = pool.iter().map(|e| Marks::of(e, dates, &soft.wanted)).collect();
    screened(&pool, in_order, marks, booked, reporter, soft, |places| {
        places.iter().map(|&i| pool[i].id.clone()).collect()
    })
}

/// [`screen`], reading the experts that are the records `kept` was taken from in `kept` rather
/// than in `pool` (the same answer, tested; the others are read in `pool`). `kept` must be of a
/// pool of the same ids in the same order ([`PoolFacts::changed_in`]); when it is not, `pool` is
/// read whole.
pub fn screen_kept(
    pool: &[Arc<PoolExpert>],
    kept: &PoolFacts,
    dates: &[NaiveDate],
    booked: &HashSet<String>,
    reporter: &str,
    soft: &SoftFacts,
) -> Screened {
    let tiers: Vec<u32> = kept.codes.iter().map(|code| code_tier(code, &soft.wanted)).collect();
    // The same ids in the same order, checked in the same pass as the marks are read.
    let marks: Option<Vec<Marks>> = (kept.experts.len() == pool.len())
        .then(|| {
            pool.iter()
                .zip(&kept.experts)
                .zip(&kept.facts)
                .map(|((now, was), facts)| {
                    if Arc::ptr_eq(now, was) {
                        Some(Marks::of_facts(facts, dates, &kept.expert_codes, &tiers))
                    } else {
                        (now.id == was.id).then(|| Marks::of(now, dates, &soft.wanted))
                    }
                })
                .collect()
        })
        .flatten();
    let Some(marks) = marks else {
        return screen(pool, dates, booked, reporter, soft);
    };
    let pool: Vec<&PoolExpert> = pool.iter().map(|e| &**e).collect();
    screened(&pool, kept.in_id_order, marks, booked, reporter, soft, |places| kept.untrained(places, &pool))
}

/// The rest of [`screen`] once each expert's own marks are known: the booked, reporter, cooling
/// and cap marks, the relaxations, and the split. `in_order`: `pool` is in ascending id order.
/// `untrained` names the eligible untrained experts from their places in `pool`.
fn screened(
    pool: &[&PoolExpert],
    in_order: bool,
    mut marks: Vec<Marks>,
    booked: &HashSet<String>,
    reporter: &str,
    soft: &SoftFacts,
    untrained: impl FnOnce(&[usize]) -> Arc<[String]>,
) -> Screened {
    let reporter: HashSet<String> = if reporter.is_empty() { HashSet::new() } else { [reporter.to_owned()].into() };
    let held = |ids: &HashSet<String>| holds(pool, in_order, ids);
    let (booked, reporter, cooling, capped) = (held(booked), held(&reporter), held(&soft.cooling), held(&soft.capped));
    for (i, m) in marks.iter_mut().enumerate() {
        m.hard.set(ExclusionReason::AlreadyBooked, booked[i]);
        m.hard.set(ExclusionReason::Reporter, reporter[i]);
        m.cooling = cooling[i];
        m.capped = capped[i];
    }
    let mut rules = SoftRules { tier: if soft.wanted.is_empty() { 3 } else { 1 }, cooling: true, cap: true };
    let eligible_count = |rules: &SoftRules| marks.iter().filter(|m| m.reasons(rules).is_empty()).count();
    let mut relaxations = Vec::new();
    let mut count = eligible_count(&rules);
    while count < soft.needed {
        let rule = if rules.tier == 1 {
            rules.tier = 2;
            SoftRule::SpecialtyGroup
        } else if rules.tier == 2 {
            rules.tier = 3;
            SoftRule::SpecialtyAny
        } else if rules.cooling {
            rules.cooling = false;
            SoftRule::CoolingPeriod
        } else if rules.cap {
            rules.cap = false;
            SoftRule::MonthlyCap
        } else {
            break;
        };
        let after = eligible_count(&rules);
        relaxations.push(PoolRelaxation {
            rule: rule.code().to_owned(),
            eligible_before: count,
            eligible_after: after,
        });
        count = after;
    }
    let (mut eligible, mut excluded, mut untrained_at) = (0, Vec::new(), Vec::new());
    for (i, (e, m)) in pool.iter().zip(&marks).enumerate() {
        let reasons = m.reasons(&rules);
        if reasons.is_empty() {
            if !m.trained {
                untrained_at.push(i);
            }
            eligible += 1;
        } else {
            excluded.push(Exclusion { expert_id: e.id.clone(), reasons: reasons.in_order() });
        }
    }
    Screened { eligible, excluded, untrained: untrained(&untrained_at), relaxations, specialty_tier: rules.tier }
}

/// The soft rules in force: the specialty tier (1 exact, 2 group, 3 any), and whether the
/// cooling period and the monthly cap still apply.
#[derive(Debug)]
struct SoftRules {
    tier: u32,
    cooling: bool,
    cap: bool,
}

/// What [`screen`] works out once per expert.
#[derive(Debug, PartialEq, Eq)]
struct Marks {
    hard: ReasonSet,
    /// The narrowest specialty tier the expert matches (3 matches everyone).
    tier: u32,
    cooling: bool,
    capped: bool,
    trained: bool,
}

impl Marks {
    /// The marks `e` has of itself on `dates` for a task wanting `wanted`: not active, out of
    /// term, conflicted, and its tier (the booked, reporter, cooling and cap marks are the
    /// task's, set after).
    fn of(e: &PoolExpert, dates: &[NaiveDate], wanted: &[String]) -> Self {
        let tier = e.specialties.iter().map(|code| code_tier(code, wanted)).min().unwrap_or(3);
        Self { tier, ..Self::of_facts(&Facts::of(e, (0, 0)), dates, &[], &[]) }
    }

    /// [`Self::of`] from an expert's [`Facts`], `tiers` being each code's tier for the task.
    fn of_facts(f: &Facts, dates: &[NaiveDate], expert_codes: &[u32], tiers: &[u32]) -> Self {
        let mut hard = ReasonSet::default();
        hard.set(ExclusionReason::NotActive, !active_through(f.active, f.leaves_on, dates));
        hard.set(ExclusionReason::OutOfTerm, !in_term(f.term, dates));
        hard.set(ExclusionReason::Conflicted, f.conflicted);
        let codes = expert_codes.get(f.codes.0 as usize..f.codes.1 as usize).unwrap_or_default();
        let tier = codes.iter().map(|c| tiers.get(*c as usize).copied().unwrap_or(3)).min().unwrap_or(3);
        Self { hard, tier, cooling: false, capped: false, trained: f.trained }
    }

    /// Every reason that excludes the expert under `rules`.
    fn reasons(&self, rules: &SoftRules) -> ReasonSet {
        let mut reasons = self.hard;
        reasons.set(ExclusionReason::SpecialtyMismatch, self.tier > rules.tier);
        reasons.set(ExclusionReason::CoolingPeriod, rules.cooling && self.cooling);
        reasons.set(ExclusionReason::MonthlyCap, rules.cap && self.capped);
        reasons
    }
}

/// A set of exclusion reasons, one bit each by their place in the contract's order (the
/// variants are declared in that order, so a variant's discriminant is its place).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ReasonSet(u32);

impl ReasonSet {
    fn bit(reason: ExclusionReason) -> u32 {
        1 << reason as u32
    }

    fn set(&mut self, reason: ExclusionReason, on: bool) {
        if on {
            self.0 |= Self::bit(reason);
        }
    }

    fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The reasons, in D14's order.
    fn in_order(self) -> Vec<ExclusionReason> {
        ExclusionReason::ALL.iter().copied().filter(|r| self.0 & Self::bit(*r) != 0).collect()
    }
}

/// For each expert of `pool`, whether `ids` holds its id. `ids` are a few hundred or thousand
/// at most: when the pool is in id order (dispatch's copy keeps it so; `in_order` says whether
/// it is), each of them is found by binary search, without comparing or hashing 100,000 ids
/// (issue 12); a pool out of order is looked up id by id.
fn holds(pool: &[&PoolExpert], in_order: bool, ids: &HashSet<String>) -> Vec<bool> {
    let mut held = vec![false; pool.len()];
    if ids.is_empty() {
        return held;
    }
    if !in_order {
        return pool.iter().map(|e| ids.contains(&e.id)).collect();
    }
    for id in ids {
        if let Ok(i) = pool.binary_search_by(|e| e.id.as_str().cmp(id)) {
            held[i] = true;
        }
    }
    held
}

/// Membership in `ids` for ids asked in ascending order, each at most once: `ids` are sorted
/// once and passed through alongside the questions, so the answers cost one comparison each
/// rather than a hash of every id asked.
fn ascending_membership<'a>(ids: impl IntoIterator<Item = &'a str>) -> impl FnMut(&str) -> bool {
    let mut sorted: Vec<&'a str> = ids.into_iter().collect();
    sorted.sort_unstable();
    let mut sorted = sorted.into_iter().peekable();
    move |id| {
        while sorted.next_if(|x| *x < id).is_some() {}
        sorted.peek().is_some_and(|x| *x == id)
    }
}

/// A draw's frozen list: its pool's list less the `excluded` experts (the draw stores the pool
/// once and its exclusions, and its list is rebuilt from them). Both are in id order, so one
/// pass of comparisons takes them out, with no hashing of every id.
pub fn frozen_from(
    pool: &supervision_draw::FrozenList,
    excluded: &[Exclusion],
) -> Result<supervision_draw::FrozenList, supervision_draw::CandidateListError> {
    let mut excluded = ascending_membership(excluded.iter().map(|e| e.expert_id.as_str()));
    pool.without(|id| excluded(id.as_str()))
}

/// Per reason, in D14 order: candidates whose first reason it is, and candidates having it.
pub fn exclusion_counts(excluded: &[Exclusion]) -> Vec<(ExclusionReason, usize, usize)> {
    ExclusionReason::ALL
        .iter()
        .map(|&r| {
            let first = excluded.iter().filter(|e| e.reasons.first() == Some(&r)).count();
            let any = excluded.iter().filter(|e| e.reasons.contains(&r)).count();
            (r, first, any)
        })
        .collect()
}

/// What the walk did at one position of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Primary,
    Backup,
    Skipped,
}

/// One step of the fill walk as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pick {
    /// Zero-based position in the order.
    pub position: usize,
    pub expert_id: String,
    pub outcome: Outcome,
    /// For a skip: `NOT_ACTIVE`, `NOT_FREE`, `SAME_EMPLOYER` (crates/draw's reasons).
    pub reasons: Vec<String>,
    /// `WALK` or `RELAXED_WALK`.
    pub stage: String,
    /// For SAME_EMPLOYER skips and relaxed placements: the teammate with the same employer.
    pub teammate: String,
    pub assignment_id: String,
    #[serde(with = "instant")]
    pub at: DateTime<Utc>,
    /// In the draw's untrained list (D14's flag). `None` only in a walk recorded before picks
    /// carried it; reading such a draw fills it in from the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrained: Option<bool>,
}

/// Membership in a draw's list of untrained candidates, asked for each pick. The list is written
/// in id order, so a binary search answers without hashing its 25,000 ids at 100,000 (issue 12);
/// a list out of order (a designation's, in the order named) is looked through.
#[derive(Debug)]
pub struct UntrainedList<'a> {
    ids: &'a [String],
    sorted: bool,
}

impl<'a> UntrainedList<'a> {
    pub fn of(ids: &'a [String]) -> Self {
        Self { ids, sorted: ids.is_sorted() }
    }

    pub fn contains(&self, id: &str) -> bool {
        if self.sorted {
            self.ids.binary_search_by(|x| x.as_str().cmp(id)).is_ok()
        } else {
            self.ids.iter().any(|x| x == id)
        }
    }
}

/// A logged relaxation of the fill (D14).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelaxationRecord {
    /// `SAME_EMPLOYER`.
    pub rule: String,
    pub taken: usize,
    pub needed: usize,
    #[serde(with = "instant")]
    pub at: DateTime<Utc>,
}

/// Instants in stored JSON as the schema writes them (`format_instant`).
mod instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use supervision_kit::storage::{format_instant, parse_instant};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_instant(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        parse_instant(&s).map_err(D::Error::custom)
    }
}

/// A draw's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    pub id: DrawId,
    pub task_id: TaskId,
    pub kind: DrawKind,
    /// For a supplementary draw: the draw whose order was exhausted.
    pub supplements: String,
    pub status: DrawStatus,
    pub algorithm: String,
    pub edition_number: u32,
    pub team_size: u32,
    pub backup_count: u32,
    /// The frozen list blob (ASCII), where it was read: the store reads (or rebuilds) it only on
    /// request (`store::draws::frozen_list`), as it holds every candidate's id (3.7 MB at
    /// 100,000) and most uses of a draw need none of them.
    pub frozen_list: Option<String>,
    pub frozen_list_sha256: String,
    /// The SHA-256 of the pool the list was frozen from, stored once in `candidate_pools`; the
    /// frozen list is that pool without [`Self::exclusions`]. Empty for a draw that holds its
    /// own list (recorded before migration 0014) and for a designation.
    pub pool_list_sha256: String,
    pub candidate_count: usize,
    /// Experts the registry streamed.
    pub pool_count: usize,
    pub exclusions: Vec<Exclusion>,
    /// The eligible candidates who did not attend training (D14: flagged, not excluded), in id
    /// order, where it was read: written at prepare, read only on request
    /// (`store::draws::untrained`), as it holds about 25,000 ids at 100,000 and only the export
    /// needs all of them. Each pick carries its own flag ([`Pick::untrained`]).
    pub untrained: Option<Arc<[String]>>,
    /// Secret until executed.
    pub server_seed: String,
    pub seed_commitment: String,
    pub dice_digits: String,
    /// The head of the order after execution, (id, full ticket), through every position the walk
    /// has reached (`next_position`); the rest follows from the frozen list and the seed and is
    /// ranked again where it is needed (a vacancy walking further, an export, a verification).
    pub order: Vec<(String, String)>,
    pub walk: Vec<Pick>,
    pub relaxations: Vec<RelaxationRecord>,
    /// The soft rules relaxed at prepare (D14).
    pub pool_relaxations: Vec<PoolRelaxation>,
    /// The specialty tier finally used: 1 exact, 2 group, 3 any.
    pub specialty_tier: u32,
    pub next_position: usize,
    pub operator: Actor,
    pub witness: Option<Actor>,
    pub prepared_at: DateTime<Utc>,
    pub witnessed_at: Option<DateTime<Utc>>,
    pub executed_at: Option<DateTime<Utc>>,
    /// Why it was abandoned before execution.
    pub abandon_reason: String,
    /// The void by a second person, once voided.
    pub void: Option<DrawVoid>,
    /// For a DESIGNATION: its reason and the approval it rests on; `None` for a random draw.
    pub designation: Option<Designation>,
}

/// Why experts were designated without a draw, and the city's approval of the task's
/// NON_RANDOM_DESIGNATION exception it rests on (D15), copied onto the record when it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Designation {
    /// The operator's reason.
    pub reason: String,
    /// The CITY_ADMIN who approved the exception.
    pub approved_by: Actor,
    #[serde(with = "instant")]
    pub approved_at: DateTime<Utc>,
    /// The approver's reason.
    pub approval_reason: String,
}

/// A second person's void of an executed draw (D8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawVoid {
    pub reason: String,
    pub by: Actor,
    #[serde(with = "instant")]
    pub at: DateTime<Utc>,
}

impl Draw {
    /// `<seed>` or `<seed>:<dice>`, once the seed is revealed.
    pub fn seed_string(&self) -> String {
        match (self.status, self.dice_digits.is_empty()) {
            (DrawStatus::Prepared | DrawStatus::Witnessed | DrawStatus::Abandoned, _) => String::new(),
            (_, true) => self.server_seed.clone(),
            (_, false) => format!("{}:{}", self.server_seed, self.dice_digits),
        }
    }

    /// The seed, revealed only after execution.
    pub fn revealed_seed(&self) -> &str {
        match self.status {
            DrawStatus::Executed | DrawStatus::Voided => &self.server_seed,
            _ => "",
        }
    }
}

/// One expert's place on one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: AssignmentId,
    pub task_id: TaskId,
    pub draw_id: DrawId,
    pub expert_id: String,
    /// 1-based position in the draw's order.
    pub position: usize,
    pub role: AssignmentRole,
    pub status: AssignmentStatus,
    pub trained: bool,
    pub notified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The answer, once given.
    pub response: Option<Answer>,
    /// The D3 decline deadline of the task's first session, fixed when the answer came.
    pub decline_deadline: Option<DateTime<Utc>>,
    /// For a promoted backup or a continuation: the vacancy it fills.
    pub replaces: String,
    /// For a vacated place: the assignment that filled it.
    pub replaced_by: String,
    pub cancel_reason: String,
    pub worked_sessions: Vec<WorkedSession>,
    pub report_id: String,
    /// The latest revision delivered to finance (0 before any).
    pub fee_revision: u32,
}

impl Assignment {
    /// A new assignment made by a draw or a vacancy.
    #[allow(clippy::too_many_arguments, reason = "every field of a new assignment")]
    pub fn new(
        task_id: TaskId,
        draw_id: DrawId,
        expert_id: String,
        position: usize,
        role: AssignmentRole,
        trained: bool,
        replaces: String,
        now: DateTime<Utc>,
    ) -> Self {
        let notified = role == AssignmentRole::Primary;
        Self {
            id: AssignmentId::generate(),
            task_id,
            draw_id,
            expert_id,
            position,
            role,
            status: if notified { AssignmentStatus::Notified } else { AssignmentStatus::Reserved },
            trained,
            notified_at: notified.then_some(now),
            created_at: now,
            updated_at: now,
            response: None,
            decline_deadline: None,
            replaces,
            replaced_by: String::new(),
            cancel_reason: String::new(),
            worked_sessions: Vec::new(),
            report_id: String::new(),
            fee_revision: 0,
        }
    }
}

/// An expert's answer as recorded (D16: the received time decides timeliness).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// `ACCEPT`, `DECLINE` or `RECUSE`.
    pub kind: String,
    /// For a decline: the contract's DeclineReason name.
    pub decline_reason: String,
    /// For a recusal: the contract's RelationType name.
    pub relation: String,
    pub detail: String,
    #[serde(with = "instant")]
    pub received_at: DateTime<Utc>,
    /// When staff entered it: the channel name and note.
    pub on_behalf_channel: String,
    pub on_behalf_note: String,
    pub entered_by: Actor,
}

/// A session an expert worked (D1, D2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkedSession {
    pub task_session_id: String,
    /// `YYYY-MM-DD`.
    pub date: String,
    pub half_day: String,
    /// `HH:MM`.
    pub start_time: String,
    pub minutes: u32,
    pub note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expert(id: &str) -> PoolExpert {
        PoolExpert {
            id: id.into(),
            active: true,
            term: Some(("2025-06-01".parse().unwrap(), "2027-05-31".parse().unwrap())),
            trained: true,
            employer_key: String::new(),
            conflicted: false,
            employed_by_institution: false,
            leaves_on: None,
            specialties: vec!["4-07-05-01".into()],
        }
    }

    /// 240 experts varied in every fact the screening reads: status and a scheduled change,
    /// terms ending on and before the dates, conflicts, training, and specialties exact, under a
    /// wanted code, in its group, elsewhere, several or none.
    fn varied_pool() -> Vec<Arc<PoolExpert>> {
        let codes = ["4-07-05-01", "4-07-05-02", "4-07-05", "4-07-06-01", "2-02-01-03", "4-07-05-01-09"];
        (0..240u32)
            .map(|i| {
                let mut e = expert(&format!("exp_{i:03}"));
                e.active = i % 11 != 3;
                e.trained = i % 4 != 0;
                e.conflicted = i % 13 == 5;
                e.leaves_on = match i % 17 {
                    2 => Some("2026-06-09".parse().unwrap()),
                    4 => Some("2026-06-10".parse().unwrap()),
                    _ => None,
                };
                e.term = match i % 19 {
                    1 => Some(("2024-06-09".parse().unwrap(), "2026-06-08".parse().unwrap())),
                    7 => None,
                    _ => e.term,
                };
                let n = (i % 7) as usize;
                e.specialties = (0..n % 3).map(|k| codes[(n + 2 * k) % codes.len()].to_owned()).collect();
                Arc::new(e)
            })
            .collect()
    }

    #[test]
    fn screening_from_kept_facts_answers_as_screening_the_pool() {
        let dates: [NaiveDate; 2] = ["2026-06-08".parse().unwrap(), "2026-06-09".parse().unwrap()];
        let pool = varied_pool();
        let kept = PoolFacts::new(&pool);
        // A later task's pool: the same ids, a few of them other records (the task's conflicts,
        // an expert changed since), one of those also trained now.
        let mut later = pool.clone();
        for i in [0, 37, 38, 200] {
            let mut e = PoolExpert::clone(&later[i]);
            e.conflicted = !e.conflicted;
            e.trained = true;
            later[i] = Arc::new(e);
        }
        assert_eq!(kept.changed_in(&later), Some(4));
        let booked: HashSet<String> = ["exp_010", "exp_011", "exp_999"].map(String::from).into();
        let set = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<HashSet<String>>();
        let cases = [
            SoftFacts::default(),
            SoftFacts { wanted: vec!["4-07-05-01".into()], needed: 5, ..SoftFacts::default() },
            SoftFacts { wanted: vec!["4-07-05-01".into(), "2-02-01".into()], needed: 150, ..SoftFacts::default() },
            SoftFacts {
                wanted: vec!["4-07-06-01".into()],
                cooling: set(&["exp_020", "exp_021", "exp_022"]),
                capped: set(&["exp_022", "exp_023"]),
                needed: 500,
            },
        ];
        for soft in &cases {
            for reporter in ["", "exp_012", "exp_000"] {
                for p in [&pool, &later] {
                    let whole = screen(p, &dates, &booked, reporter, soft);
                    assert_eq!(screen_kept(p, &kept, &dates, &booked, reporter, soft), whole, "{soft:?} {reporter}");
                }
            }
        }
        // The screening's marks read from the facts are each expert's own.
        let tiers: Vec<Vec<u32>> =
            cases.iter().map(|soft| kept.codes.iter().map(|code| code_tier(code, &soft.wanted)).collect()).collect();
        for (i, e) in pool.iter().enumerate() {
            for (soft, tiers) in cases.iter().zip(&tiers) {
                let of_facts = Marks::of_facts(&kept.facts[i], &dates, &kept.expert_codes, tiers);
                assert_eq!(of_facts, Marks::of(e, &dates, &soft.wanted), "{}", e.id);
            }
        }
        // Facts of another pool (another size, or other ids) are not used.
        let other = pool[..100].to_vec();
        assert_eq!(kept.changed_in(&other), None);
        let soft = &cases[1];
        assert_eq!(screen_kept(&other, &kept, &dates, &booked, "", soft), screen(&other, &dates, &booked, "", soft));
        let mut renamed = pool.clone();
        renamed[5] = Arc::new(expert("exp_005x"));
        assert_eq!(kept.changed_in(&renamed), None);
        // Draws in a row that flag the same experts share one untrained list; another list is
        // its own.
        let none = HashSet::new();
        let first = screen_kept(&pool, &kept, &dates, &none, "", soft).untrained;
        assert!(Arc::ptr_eq(&first, &screen_kept(&pool, &kept, &dates, &none, "", soft).untrained));
        let untrained_booked: HashSet<String> = [first[0].clone()].into();
        let other = screen_kept(&pool, &kept, &dates, &untrained_booked, "", soft).untrained;
        assert_eq!(other[..], first[1..]);
    }

    #[test]
    fn a_code_matches_at_its_narrowest_tier() {
        let wanted = ["4-07-05".to_owned(), "2-02-01-03".to_owned()];
        let tier = |code| code_tier(code, &wanted);
        assert_eq!([tier("4-07-05"), tier("4-07-05-01"), tier("2-02-01-03")], [1, 1, 1]);
        assert_eq!([tier("4-07-06"), tier("2-02-01-07"), tier("2-02-01"), tier("4-07-050")], [2, 2, 2, 2]);
        assert_eq!([tier("4-08-05"), tier("2-02-02"), tier("5")], [3, 3, 3]);
        assert_eq!(code_tier("4-07-05", &[]), 3, "nothing wanted");
    }

    #[test]
    fn a_frozen_list_is_its_pool_less_the_excluded_whatever_their_order() {
        let pool = supervision_draw::FrozenList::freeze_strs(["exp_a", "exp_b", "exp_c", "exp_d", "exp_e"]).unwrap();
        let out = |id: &str| Exclusion { expert_id: id.into(), reasons: vec![ExclusionReason::Conflicted] };
        let list = frozen_from(&pool, &[out("exp_e"), out("exp_b"), out("exp_a")]).unwrap();
        assert_eq!(list.bytes(), b"exp_c\nexp_d\n");
        assert_eq!(frozen_from(&pool, &[]).unwrap(), pool);
        assert!(frozen_from(&pool, &["exp_a", "exp_b", "exp_c", "exp_d", "exp_e"].map(out)).is_err());
    }

    #[test]
    fn a_reasons_bit_is_its_place_in_the_contracts_order() {
        for (place, reason) in ExclusionReason::ALL.iter().enumerate() {
            assert_eq!(ReasonSet::bit(*reason), 1 << place, "{reason:?}");
        }
        let mut set = ReasonSet::default();
        set.set(ExclusionReason::MonthlyCap, true);
        set.set(ExclusionReason::NotActive, true);
        set.set(ExclusionReason::Conflicted, false);
        assert_eq!(set.in_order(), [ExclusionReason::NotActive, ExclusionReason::MonthlyCap]);
    }

    #[test]
    fn a_pick_is_untrained_when_the_list_holds_it_in_order_or_not() {
        let sorted: Vec<String> = ["exp_b", "exp_d", "exp_f"].map(String::from).into();
        let shuffled: Vec<String> = ["exp_f", "exp_b", "exp_d"].map(String::from).into();
        for list in [&sorted, &shuffled] {
            let untrained = UntrainedList::of(list);
            let found: Vec<&str> = ["exp_a", "exp_b", "exp_d", "exp_e", "exp_f", "exp_g"]
                .into_iter()
                .filter(|id| untrained.contains(id))
                .collect();
            assert_eq!(found, ["exp_b", "exp_d", "exp_f"], "{list:?}");
        }
        assert!(UntrainedList::of(&sorted).sorted && !UntrainedList::of(&shuffled).sorted);
    }

    #[test]
    fn a_search_of_the_sorted_pool_finds_the_same_experts_in_a_set_as_looking_each_one_up() {
        let ids: HashSet<String> = ["exp_b", "exp_d", "exp_x", "exp_0"].map(String::from).into();
        let sorted: Vec<PoolExpert> = ["exp_a", "exp_b", "exp_c", "exp_d", "exp_e"].map(expert).into();
        let sorted: Vec<&PoolExpert> = sorted.iter().collect();
        assert_eq!(holds(&sorted, true, &ids), [false, true, false, true, false]);
        let mut shuffled = sorted.clone();
        shuffled.swap(0, 3);
        assert_eq!(
            holds(&shuffled, false, &ids),
            [true, true, false, false, false],
            "out of order, looked up one by one"
        );
        assert_eq!(holds(&sorted, true, &HashSet::new()), [false; 5]);
    }

    #[test]
    fn every_reason_is_recorded_and_the_first_is_counted() {
        let dates = ["2026-06-08".parse().unwrap(), "2026-06-09".parse().unwrap()];
        let mut suspended = expert("exp_b");
        suspended.active = false;
        suspended.conflicted = true;
        let mut leaving = expert("exp_c");
        leaving.leaves_on = Some("2026-06-09".parse().unwrap());
        let mut ending = expert("exp_d");
        ending.term = Some(("2024-06-09".parse().unwrap(), "2026-06-08".parse().unwrap()));
        let mut untrained = expert("exp_f");
        untrained.trained = false;
        let pool = [expert("exp_a"), suspended, leaving, ending, expert("exp_e"), untrained, expert("exp_g")];
        let booked: HashSet<String> = ["exp_e".to_owned(), "exp_g".to_owned()].into();
        let s = screen(&pool, &dates, &booked, "exp_g", &SoftFacts::default());
        assert_eq!(s.eligible, 2, "exp_a and exp_f");
        assert_eq!(s.untrained[..], ["exp_f"]);
        let reasons: Vec<(&str, Vec<&str>)> =
            s.excluded.iter().map(|e| (e.expert_id.as_str(), e.reasons.iter().map(|r| r.code()).collect())).collect();
        assert_eq!(
            reasons,
            [
                ("exp_b", vec!["NOT_ACTIVE", "CONFLICTED"]),
                ("exp_c", vec!["NOT_ACTIVE"]),
                ("exp_d", vec!["OUT_OF_TERM"]),
                ("exp_e", vec!["ALREADY_BOOKED"]),
                ("exp_g", vec!["ALREADY_BOOKED", "REPORTER"]),
            ]
        );
        let counts = exclusion_counts(&s.excluded);
        let of = |r| counts.iter().find(|(c, _, _)| *c == r).map(|(_, f, a)| (*f, *a)).unwrap();
        assert_eq!(of(ExclusionReason::NotActive), (2, 2));
        assert_eq!(of(ExclusionReason::Conflicted), (0, 1));
        assert_eq!(of(ExclusionReason::AlreadyBooked), (2, 2));
        assert_eq!(of(ExclusionReason::Reporter), (0, 1));
        assert_eq!(counts.iter().map(|(_, f, _)| f).sum::<usize>(), 5);
    }
}
