//! The order (step 4): every frozen candidate ranked by its first-generation ticket, smallest
//! first, ties by id. This is the order in which `consistent_sampler.sampler(ids, seed=<seed
//! string>, with_replacement=False)` yields the ids: its heap compares the tuples
//! `(ticket string, id, generation)`.

use std::{cmp::Ordering, sync::Arc};

use crate::{
    candidates::{ExpertId, FrozenList},
    seed::SeedString,
    ticket::{Ticket, TicketHasher},
};

/// One candidate with the ticket that placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankedCandidate {
    pub id: ExpertId,
    pub ticket: Ticket,
}

/// The full ranking of one draw's frozen list under one seed string.
///
/// The order refers to the list's ids by their index rather than copying them, and keeps each
/// ticket as the digest it is read from: at 100,000 candidates, copying every id into the order
/// cost more than hashing the tickets (issue 12). A candidate is put together when it is asked
/// for ([`DrawOrder::get`]); a walk asks for a few dozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawOrder {
    seed_sha256_hex: String,
    /// The frozen list's ids, in list order.
    ids: Arc<[ExpertId]>,
    /// Each id's ticket digest, in list order; empty for an order that was given.
    digests: Vec<[u8; 32]>,
    /// Indexes into `ids`, first drawn first.
    ranked: Vec<u32>,
}

/// Ranks every candidate of `list` under `seed`. The sort compares each ticket's first nineteen
/// digits as one number and the full tickets (then the ids) only where those are equal, which is
/// [`sampling_order`] at a fraction of the cost. A long list is hashed and sorted in parts on
/// several threads and the sorted parts merged (see [`in_parts`]); the result is the same on any
/// number of threads.
pub fn rank(list: &FrozenList, seed: &SeedString) -> DrawOrder {
    let seed_sha256_hex = seed.sha256_hex();
    let hasher = TicketHasher::new(&seed_sha256_hex);
    let ids = list.shared_ids();
    // Each part's digests and keys are written in place: gathering the parts into new vectors
    // copied 4.8 MB at 100,000 candidates (docs/performance.md, eleventh run).
    let mut digests = vec![[0u8; 32]; ids.len()];
    let mut keyed = vec![0u128; ids.len()];
    in_parts(&ids, &mut digests, &mut keyed, |offset, part, digests, keyed| {
        for (i, ((id, digest), key)) in part.iter().zip(digests.iter_mut()).zip(keyed.iter_mut()).enumerate() {
            *digest = hasher.digest(id.as_str());
            *key = keyed_index(Ticket::digest_sort_key(digest), offset + i);
        }
        keyed.sort_unstable();
    });
    // The parts are sorted runs: the stable sort finds them and merges them.
    keyed.sort();
    let ranked = ranked_from_sorted(&keyed, |i, j| {
        let ticket = |k: u32| Ticket::from_digest(digests[k as usize]);
        ticket(i).cmp(&ticket(j)).then_with(|| ids[i as usize].cmp(&ids[j as usize]))
    });
    DrawOrder { seed_sha256_hex, ids, digests, ranked }
}

/// A candidate's sort key above its index in the list, as one number: sorting these compares
/// plain integers, and equal keys come out by index.
fn keyed_index(key: u64, index: usize) -> u128 {
    u128::from(key) << 32 | u128::from(u32::try_from(index).expect("fewer than 2^32 candidates"))
}

/// The indexes in `keyed` (sorted [`keyed_index`] values) in order, each run of equal keys put in
/// the order `tie` gives (their indexes passed). For a ranking, equal keys need two digests
/// agreeing in nineteen digits: such runs are checked for, not expected.
fn ranked_from_sorted(keyed: &[u128], tie: impl Fn(u32, u32) -> Ordering) -> Vec<u32> {
    let mut ranked: Vec<u32> = Vec::with_capacity(keyed.len());
    for run in keyed.chunk_by(|a, b| a >> 32 == b >> 32) {
        let start = ranked.len();
        // The low 32 bits are the index.
        ranked.extend(run.iter().map(|k| *k as u32));
        if run.len() > 1 {
            ranked[start..].sort_by(|i, j| tie(*i, *j));
        }
    }
    ranked
}

/// Lists at least this long are ranked on more than one thread: below it, starting a thread
/// costs more than it saves (a ticket takes a fraction of a microsecond).
const PARALLEL_FROM: usize = 8_192;

/// The most threads one ranking uses.
const MAX_THREADS: usize = 4;

/// `f` applied to contiguous parts of `items` (with each part's offset) and the same parts of
/// `a` and `b` (as long as `items`), one part per thread on up to [`MAX_THREADS`] threads (no more
/// than the machine's parallelism; the last part on this one) when there are at least
/// [`PARALLEL_FROM`] items, otherwise to all of them as one part here.
fn in_parts<T: Sync, A: Send, B: Send>(
    items: &[T],
    a: &mut [A],
    b: &mut [B],
    f: impl Fn(usize, &[T], &mut [A], &mut [B]) + Sync,
) {
    assert!(a.len() == items.len() && b.len() == items.len(), "outputs as long as the items");
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(MAX_THREADS);
    if threads < 2 || items.len() < PARALLEL_FROM {
        return f(0, items, a, b);
    }
    let f = &f;
    let size = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = items.chunks(size).zip(a.chunks_mut(size)).zip(b.chunks_mut(size)).enumerate();
        let last = parts.next_back();
        let spawned: Vec<_> = parts.map(|(n, ((part, a), b))| scope.spawn(move || f(n * size, part, a, b))).collect();
        if let Some((n, ((part, a), b))) = last {
            f(n * size, part, a, b);
        }
        // A panic in `f` is a bug: it goes on in this thread.
        for part in spawned {
            part.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    });
}

/// The sampler's order: the full ticket first, the id (bytewise) only where two tickets are
/// equal. Equal tickets need equal SHA-256 digests of different inputs, so the tie-break is
/// there for completeness, never exercised by a real draw.
pub fn sampling_order(a: &RankedCandidate, b: &RankedCandidate) -> Ordering {
    a.ticket.cmp(&b.ticket).then_with(|| a.id.cmp(&b.id))
}

impl DrawOrder {
    /// An order given rather than drawn: `ids` at their index, first first, under no seed and
    /// with empty tickets. The dispatch service gives it to a non-random designation (D15), whose
    /// experts are named rather than ranked, so that its fill (every place taken, the walk at the
    /// end of the order) is rebuilt like a draw's when one of them leaves. It is never ranked,
    /// exported or verified.
    pub fn given(ids: Vec<ExpertId>) -> Self {
        let ranked = (0..ids.len()).map(|i| u32::try_from(i).expect("fewer than 2^32 candidates")).collect();
        Self { seed_sha256_hex: String::new(), ids: ids.into(), digests: Vec::new(), ranked }
    }

    /// The candidate at zero-based `position`, with its ticket.
    pub fn get(&self, position: usize) -> Option<RankedCandidate> {
        let index = *self.ranked.get(position)? as usize;
        let ticket = self.digests.get(index).map_or_else(Ticket::none, |digest| Ticket::from_digest(*digest));
        Some(RankedCandidate { id: self.ids[index].clone(), ticket })
    }

    /// The id of the candidate at zero-based `position`.
    pub fn id_at(&self, position: usize) -> Option<&ExpertId> {
        self.ranked.get(position).map(|index| &self.ids[*index as usize])
    }

    /// Candidates from first drawn to last, each put together as it is reached.
    pub fn candidates(&self) -> impl ExactSizeIterator<Item = RankedCandidate> + '_ {
        (0..self.ranked.len()).map(|position| self.get(position).expect("a position of the order"))
    }

    pub fn len(&self) -> usize {
        self.ranked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranked.is_empty()
    }

    /// The ids alone, first drawn first.
    pub fn ids(&self) -> impl ExactSizeIterator<Item = &ExpertId> {
        self.ranked.iter().map(|index| &self.ids[*index as usize])
    }

    /// Zero-based position of `id` in the order.
    pub fn position_of(&self, id: &ExpertId) -> Option<usize> {
        self.ids().position(|ranked| ranked == id)
    }

    /// Lower-case hex SHA-256 of the seed string the order was made under: the prefix of every
    /// ticket's hash input.
    pub fn seed_sha256_hex(&self) -> &str {
        &self.seed_sha256_hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::{DiceDigits, ServerSeed};

    fn ranked(id: &str, ticket: &str) -> RankedCandidate {
        RankedCandidate { id: ExpertId::parse(id).unwrap(), ticket: Ticket::parse(ticket).unwrap() }
    }

    fn seed_string() -> SeedString {
        let seed = ServerSeed::from_hex(&"ab".repeat(32)).unwrap();
        SeedString::new(&seed, Some(&DiceDigits::parse("12345678901234567890").unwrap()))
    }

    #[test]
    fn the_smaller_ticket_comes_first_whatever_the_ids() {
        let a = ranked("Z", "0.1");
        let b = ranked("A", "0.2");
        assert_eq!(sampling_order(&a, &b), Ordering::Less);
    }

    #[test]
    fn equal_tickets_are_ordered_by_id_bytewise() {
        let ticket = "0.31415926535897932384626433832795028841971693993751058209749445923078164062862";
        let mut candidates = [ranked("E2", ticket), ranked("E10", ticket), ranked("E1", ticket)];
        candidates.sort_by(sampling_order);
        let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["E1", "E10", "E2"]);
    }

    #[test]
    fn the_full_ticket_decides_not_a_trimmed_prefix() {
        // Equal in the nine digits the sampler prints, different further on.
        let a = ranked("A", "0.1234567890000000001");
        let b = ranked("B", "0.1234567890000000000");
        assert_eq!(a.ticket.trimmed(9), b.ticket.trimmed(9));
        assert_eq!(sampling_order(&a, &b), Ordering::Greater);
    }

    #[test]
    fn every_candidate_appears_once_in_the_order() {
        let list = FrozenList::freeze_strs((1..=50).map(|n| format!("E{n}"))).unwrap();
        let order = rank(&list, &seed_string());
        let mut ids: Vec<&ExpertId> = order.ids().collect();
        ids.sort();
        assert_eq!(ids, list.ids().iter().collect::<Vec<_>>());
    }

    #[test]
    fn a_candidates_ticket_does_not_depend_on_who_else_is_in_the_list() {
        // Consistency, the property the sampler is named after: the order of a subset is the
        // order of the full list filtered to that subset.
        let seed = seed_string();
        let full = rank(&FrozenList::freeze_strs((1..=30).map(|n| format!("E{n}"))).unwrap(), &seed);
        let subset = rank(&FrozenList::freeze_strs((1..=30).step_by(3).map(|n| format!("E{n}"))).unwrap(), &seed);
        let filtered: Vec<&ExpertId> = full.ids().filter(|id| subset.position_of(id).is_some()).collect();
        assert_eq!(filtered, subset.ids().collect::<Vec<_>>());
    }

    #[test]
    fn the_keyed_sort_gives_the_sampling_order() {
        let list = FrozenList::freeze_strs((0..2_000).map(|n| format!("exp_{n:032x}"))).unwrap();
        let order = rank(&list, &seed_string());
        let mut by_tickets: Vec<RankedCandidate> = order.candidates().collect();
        by_tickets.sort_by(sampling_order);
        assert_eq!(order.candidates().collect::<Vec<_>>(), by_tickets);
    }

    #[test]
    fn a_long_list_ranked_in_parts_on_several_threads_is_the_sampling_order_of_each_candidates_own_ticket() {
        let list = FrozenList::freeze_strs((0..PARALLEL_FROM * 2 + 7).map(|n| format!("exp_{n:032x}"))).unwrap();
        let seed = seed_string();
        let hex = seed.sha256_hex();
        let mut expected: Vec<RankedCandidate> = list
            .ids()
            .iter()
            .map(|id| RankedCandidate { id: id.clone(), ticket: Ticket::first_generation(&hex, id.as_str()) })
            .collect();
        expected.sort_by(sampling_order);
        assert_eq!(rank(&list, &seed).candidates().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn equal_keys_are_put_in_the_tie_breaks_order_and_the_rest_by_key() {
        let sorted = |keys: &[u64]| {
            let mut keyed: Vec<u128> = keys.iter().enumerate().map(|(i, key)| keyed_index(*key, i)).collect();
            keyed.sort_unstable();
            keyed
        };
        // Keys 7, 3, 7, 1, 3, 7 at indexes 0-5; the first tie-break puts higher indexes first.
        let keyed = sorted(&[7, 3, 7, 1, 3, 7]);
        assert_eq!(ranked_from_sorted(&keyed, |i, j| j.cmp(&i)), [3, 4, 1, 5, 2, 0]);
        assert_eq!(ranked_from_sorted(&keyed, |i, j| i.cmp(&j)), [3, 1, 4, 0, 2, 5]);
        assert_eq!(ranked_from_sorted(&sorted(&[u64::MAX, 0]), |_, _| Ordering::Equal), [1, 0]);
        assert!(ranked_from_sorted(&[], |_, _| Ordering::Equal).is_empty());
    }

    #[test]
    fn parts_cover_the_items_in_order_with_their_offsets() {
        for n in [0, 1, PARALLEL_FROM - 1, PARALLEL_FROM, PARALLEL_FROM * 3 + 1] {
            let items: Vec<usize> = (0..n).collect();
            let (mut offsets, mut doubled) = (vec![usize::MAX; n], vec![0; n]);
            in_parts(&items, &mut offsets, &mut doubled, |offset, part, offsets, doubled| {
                for (i, item) in part.iter().enumerate() {
                    offsets[i] = offset + i;
                    doubled[i] = item * 2;
                }
            });
            assert_eq!(offsets, items, "{n} items");
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>(), "{n} items");
        }
    }

    #[test]
    fn another_seed_gives_another_order() {
        let list = FrozenList::freeze_strs((1..=20).map(|n| format!("E{n}"))).unwrap();
        let other = SeedString::new(&ServerSeed::from_hex(&"cd".repeat(32)).unwrap(), None);
        assert_ne!(
            rank(&list, &seed_string()).candidates().collect::<Vec<_>>(),
            rank(&list, &other).candidates().collect::<Vec<_>>()
        );
    }
}
