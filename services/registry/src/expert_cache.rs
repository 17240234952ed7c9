//! The experts that GetExpert read last, kept parsed and decrypted with the `ReadStamp` they were
//! read at (PostgreSQL only; issue 12, docs/performance.md "Registry reads").
//!
//! A copy is only ever answered after the store's current stamp was read and found equal, so a
//! copy is never staler than the database: the cache saves parsing the row and its child rows and
//! transferring them, not the round trip. Writes need not know about it; triggers stamp every
//! write (migration `0011_read_stamps.sql`), and a replica holding an older copy simply reads the
//! expert again.
//!
//! Bounded by a number of experts. When full, a new copy replaces one found by the CLOCK sweep:
//! the hand passes over copies answered since it last passed (clearing their mark) and takes the
//! first one that was not, so experts read again and again stay while one-off reads go.
//!
//! The stamp checks keep up to [`LANE`] of the pool's connections between calls (the lane): a
//! connection taken from the pool costs sqlx two pings besides the statement (one when it is handed
//! out, one when it is given back), which for a one-row check is two of its three round trips.
//! A lane connection is put back only after its statement succeeded; one that failed (a restarted
//! database, say) is dropped and the check goes through the pool.
//!
//! Checks made at the same time share a statement. A check joins the queue; while fewer than
//! [`LANE`] batches run, it starts one, which takes every check queued (up to [`MAX_BATCH`]), reads
//! their stamps in one statement, answers them, and goes on with the checks queued meanwhile.
//! A batch takes a check only after it was queued, so every answer still rests on a read made
//! after its request arrived. At one request at a time this is the one-row check it was; under
//! load, the registry's statements per GetExpert fall with the concurrency (docs/performance.md,
//! eleventh run). A batch runs in its own task, so a request that goes away does not strand the
//! checks it was carrying; a batch that fails drops its checks, and each is made again alone,
//! through the pool.
//!
//! Personal values are held decrypted, as each read already holds them while it answers; the
//! process also holds the key that decrypts them, so keeping them adds no new way to reach them.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use sqlx::{Any, pool::PoolConnection};
use supervision_kit::{
    Db,
    metrics::{Counter, Metrics},
};
use tokio::sync::oneshot;

use crate::{
    domain::{Expert, ExpertId},
    store::experts::{ReadStamp, read_stamp, read_stamps},
};

/// How many of the pool's connections the stamp checks keep between calls, and how many batches
/// of checks run at once.
pub const LANE: usize = 2;

/// The most checks one statement carries.
pub const MAX_BATCH: usize = 32;

/// The copies, and how reads went.
#[derive(Debug)]
pub struct ExpertCache {
    capacity: usize,
    slots: Mutex<Slots>,
    reads: Option<Counter>,
    /// Connections kept for the stamp checks, at most [`LANE`].
    lane: Mutex<Vec<PoolConnection<Any>>>,
    /// Set at shutdown: the lane keeps nothing more.
    lane_closed: AtomicBool,
    checks: Mutex<Checks>,
}

/// Stamp checks waiting for a batch, and how many batches run.
#[derive(Debug, Default)]
struct Checks {
    waiting: Vec<Waiting>,
    running: usize,
}

/// A queued check: the expert, and where its stamp goes (`None`: no such expert). A check whose
/// sender is dropped unanswered is made again alone.
type Waiting = (ExpertId, oneshot::Sender<Option<ReadStamp>>);

impl Checks {
    /// The next batch: the oldest queued checks, up to [`MAX_BATCH`].
    fn next_batch(&mut self) -> Vec<Waiting> {
        let rest = self.waiting.split_off(self.waiting.len().min(MAX_BATCH));
        std::mem::replace(&mut self.waiting, rest)
    }
}

/// Held by a running batch: if its task ends other than through [`Self::next_or_finish`] (a
/// panic, or the runtime shutting down), the batch count is given back and the queued checks are
/// dropped, so that each is made alone rather than waiting for a batch that will not come.
struct Running<'a> {
    cache: &'a ExpertCache,
    /// Ended through [`Self::next_or_finish`], its count given back.
    finished: bool,
}

impl Running<'_> {
    /// The next batch, or `None` (and this batch's count given back) when nothing is queued.
    fn next_or_finish(&mut self) -> Option<Vec<Waiting>> {
        let mut checks = self.cache.checks();
        if checks.waiting.is_empty() {
            checks.running -= 1;
            self.finished = true;
            None
        } else {
            Some(checks.next_batch())
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let mut checks = self.cache.checks();
            checks.running -= 1;
            checks.waiting.clear();
        }
    }
}

/// How a read through the cache went, the label of `registry_expert_cache_reads_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The copy's stamp was current: answered from it.
    Hit,
    /// There was a copy, but the expert changed since: read again.
    Changed,
    /// No copy: read.
    Miss,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Changed => "changed",
            Outcome::Miss => "miss",
        }
    }
}

#[derive(Debug, Default)]
struct Slots {
    /// Where each cached expert's slot is.
    index: HashMap<ExpertId, usize>,
    /// `None` for a slot whose expert was forgotten.
    slots: Vec<Option<Slot>>,
    /// The CLOCK hand: the next slot the sweep looks at.
    hand: usize,
}

#[derive(Debug)]
struct Slot {
    id: ExpertId,
    stamp: ReadStamp,
    expert: Arc<Expert>,
    /// Answered since the hand last passed.
    used: bool,
}

impl ExpertCache {
    /// A cache of at most `capacity` experts (0 keeps none), counting its reads in `metrics`.
    pub fn new(capacity: usize, metrics: Option<&Metrics>) -> Self {
        let reads = metrics.map(|m| {
            m.counter(
                "registry_expert_cache_reads_total",
                "GetExpert reads on PostgreSQL by how the registry's copy of the expert served: hit (the copy was \
                 current), changed (the expert changed since the copy), miss (no copy)",
            )
        });
        Self {
            capacity,
            slots: Mutex::new(Slots::default()),
            reads,
            lane: Mutex::new(Vec::new()),
            lane_closed: AtomicBool::new(false),
            checks: Mutex::new(Checks::default()),
        }
    }

    /// Whether the cache keeps anything.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// How many experts it holds.
    pub fn len(&self) -> usize {
        self.lock().index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // The slots are consistent between statements: a panic elsewhere cannot leave them torn.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lane(&self) -> MutexGuard<'_, Vec<PoolConnection<Any>>> {
        self.lane.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn checks(&self) -> MutexGuard<'_, Checks> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The copy of `id`, with the stamp it was read at; marks it used.
    pub fn get(&self, id: &ExpertId) -> Option<(ReadStamp, Arc<Expert>)> {
        let mut slots = self.lock();
        let at = *slots.index.get(id)?;
        let slot = slots.slots[at].as_mut().expect("an indexed slot holds its expert");
        slot.used = true;
        Some((slot.stamp, slot.expert.clone()))
    }

    /// Keeps `expert` as read at `stamp`, in place of any older copy.
    pub fn put(&self, stamp: ReadStamp, expert: Arc<Expert>) {
        if !self.enabled() {
            return;
        }
        let mut guard = self.lock();
        let slots = &mut *guard;
        let fresh = Slot { id: expert.id.clone(), stamp, expert, used: false };
        if let Some(&at) = slots.index.get(&fresh.id) {
            slots.slots[at] = Some(fresh);
            return;
        }
        if slots.slots.len() < self.capacity {
            slots.index.insert(fresh.id.clone(), slots.slots.len());
            slots.slots.push(Some(fresh));
            return;
        }
        // The sweep: at most one lap clearing marks, then the next slot is free of one.
        let at = loop {
            let at = slots.hand;
            slots.hand = (at + 1) % slots.slots.len();
            match &mut slots.slots[at] {
                Some(slot) if slot.used => slot.used = false,
                _ => break at,
            }
        };
        if let Some(old) = slots.slots[at].take() {
            slots.index.remove(&old.id);
        }
        slots.index.insert(fresh.id.clone(), at);
        slots.slots[at] = Some(fresh);
    }

    /// Drops the copy of `id` (an expert the store no longer has).
    pub fn forget(&self, id: &ExpertId) {
        let mut slots = self.lock();
        if let Some(at) = slots.index.remove(id) {
            slots.slots[at] = None;
        }
    }

    /// The current stamp of `id` (`None`: no such expert), read by a batch of the checks queued
    /// with it (see the module's doc).
    pub async fn current_stamp(self: &Arc<Self>, db: &Db, id: &ExpertId) -> Result<Option<ReadStamp>, sqlx::Error> {
        let (answer, answered) = oneshot::channel();
        let batch = {
            let mut checks = self.checks();
            checks.waiting.push((id.clone(), answer));
            (checks.running < LANE).then(|| {
                checks.running += 1;
                checks.next_batch()
            })
        };
        if let Some(batch) = batch {
            tokio::spawn(Arc::clone(self).run_checks(db.clone(), batch));
        }
        match answered.await {
            Ok(stamp) => Ok(stamp),
            Err(_) => read_stamp(&mut *db.pool().acquire().await?, id).await,
        }
    }

    /// Answers `batch`, then each batch queued meanwhile, until none is.
    async fn run_checks(self: Arc<Self>, db: Db, mut batch: Vec<Waiting>) {
        let mut running = Running { cache: &self, finished: false };
        loop {
            let ids: Vec<&ExpertId> = batch.iter().map(|(id, _)| id).collect();
            match self.read_stamps(&db, &ids).await {
                Ok(stamps) => {
                    let stamps: HashMap<String, ReadStamp> = stamps.into_iter().collect();
                    for (id, answer) in batch {
                        // A request that went away no longer listens.
                        let _ = answer.send(stamps.get(id.as_str()).copied());
                    }
                }
                // Dropped unanswered, each check is made again alone.
                Err(err) => tracing::debug!(error = %err, checks = batch.len(), "a batch of stamp checks failed"),
            }
            match running.next_or_finish() {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// The current stamps of `ids`, read on a lane connection when one is free, else on one from
    /// the pool, which then joins the lane if it has room.
    async fn read_stamps(&self, db: &Db, ids: &[&ExpertId]) -> Result<Vec<(String, ReadStamp)>, sqlx::Error> {
        let kept = self.lane().pop();
        if let Some(mut conn) = kept {
            match read_stamps(&mut conn, ids).await {
                Ok(stamps) => {
                    self.keep(conn);
                    return Ok(stamps);
                }
                // Dropped, the connection goes back to the pool, whose ping closes it if it is
                // broken; the check is made again on a connection the pool has tested.
                Err(err) => tracing::debug!(error = %err, "a lane connection failed; checking through the pool"),
            }
        }
        let mut conn = db.pool().acquire().await?;
        let stamps = read_stamps(&mut conn, ids).await?;
        self.keep(conn);
        Ok(stamps)
    }

    /// Keeps `conn` in the lane if it has room and is open; otherwise it goes back to the pool.
    fn keep(&self, conn: PoolConnection<Any>) {
        let mut lane = self.lane();
        if lane.len() < LANE && !self.lane_closed.load(Ordering::Acquire) {
            lane.push(conn);
        }
    }

    /// Gives the lane's connections back to the pool and keeps none from now on: at shutdown,
    /// before the pool closes (which waits for every connection handed out).
    pub fn close_lane(&self) {
        let mut lane = self.lane();
        self.lane_closed.store(true, Ordering::Release);
        lane.clear();
    }

    /// Counts one read.
    pub fn count(&self, outcome: Outcome) {
        if let Some(reads) = &self.reads {
            reads.inc(&[("outcome", outcome.label())]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expert(n: u32) -> Arc<Expert> {
        let mut e = crate::domain::expert::tests::sample_expert();
        e.id = ExpertId::parse(&format!("exp_{n:032x}")).expect("a well-formed id");
        Arc::new(e)
    }

    fn stamp(row: i64) -> ReadStamp {
        ReadStamp { row, children: Some(row + 1) }
    }

    fn held(cache: &ExpertCache, n: u32) -> Option<i64> {
        cache.get(&expert(n).id).map(|(s, _)| s.row)
    }

    #[test]
    fn a_copy_is_answered_with_the_stamp_it_was_kept_at_and_a_newer_one_replaces_it() {
        let cache = ExpertCache::new(4, None);
        assert_eq!(held(&cache, 1), None);
        cache.put(stamp(10), expert(1));
        let (s, e) = cache.get(&expert(1).id).expect("kept");
        assert_eq!((s, e.id.clone()), (stamp(10), expert(1).id.clone()));
        cache.put(stamp(12), expert(1));
        assert_eq!((held(&cache, 1), cache.len()), (Some(12), 1), "replaced in place");
        cache.forget(&expert(1).id);
        assert_eq!((held(&cache, 1), cache.len()), (None, 0));
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_the_sweep_spares_what_was_read_since_it_passed() {
        let cache = ExpertCache::new(3, None);
        for n in 1..=3 {
            cache.put(stamp(n.into()), expert(n));
        }
        // 1 and 3 read again: the hand starts at slot 0, clears 1's mark, takes 2.
        assert!(held(&cache, 1).is_some() && held(&cache, 3).is_some());
        cache.put(stamp(4), expert(4));
        assert_eq!(
            (held(&cache, 1), held(&cache, 2), held(&cache, 3), held(&cache, 4)),
            (Some(1), None, Some(3), Some(4))
        );
        assert_eq!(cache.len(), 3);
        // Every mark is set now (the checks above read 1, 3 and 4): a whole lap clears them and
        // the hand, back where it started, takes that slot's expert.
        cache.put(stamp(5), expert(5));
        assert_eq!(cache.len(), 3);
        let kept: Vec<_> = (1..=5).filter(|&n| held(&cache, n).is_some()).collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept.contains(&5), "the new copy is kept: {kept:?}");
    }

    #[test]
    fn a_forgotten_slot_is_the_first_one_reused() {
        let cache = ExpertCache::new(2, None);
        cache.put(stamp(1), expert(1));
        cache.put(stamp(2), expert(2));
        assert!(held(&cache, 1).is_some() && held(&cache, 2).is_some());
        cache.forget(&expert(1).id);
        cache.put(stamp(3), expert(3));
        assert_eq!((held(&cache, 1), held(&cache, 2), held(&cache, 3)), (None, Some(2), Some(3)));
    }

    #[test]
    fn a_cache_of_no_experts_keeps_none() {
        let cache = ExpertCache::new(0, None);
        cache.put(stamp(1), expert(1));
        assert!(!cache.enabled());
        assert_eq!((held(&cache, 1), cache.len()), (None, 0));
    }
}
