//! The verifier (step 7, `supctl draw verify`): recompute a recorded draw from its frozen list,
//! its commitment, its revealed seed and the witness's dice, and name every place where the record
//! disagrees with the recomputation.
//!
//! It checks, in this order: the list blob's format, hash and count; that the commitment opens to
//! the revealed seed; the order, position by position, and each recorded ticket in full; and that
//! the initial fill is a walk of that order: the places taken in increasing order position, and
//! every candidate passed by before the last place taken recorded as skipped. It cannot re-decide
//! the skips themselves (busy, inactive, same employer): those facts were the dispatch service's
//! at that moment and are part of the record, not of the algorithm.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::{
    candidates::FrozenList,
    error::{CandidateListError, SeedError},
    order::{DrawOrder, rank},
    seed::{Commitment, DiceDigits, SeedString, ServerSeed},
};

/// How many position-by-position order mismatches are listed before the rest are only counted:
/// one id inserted near the top of a 100,000-candidate order would otherwise list 100,000.
const LISTED_ORDER_MISMATCHES: usize = 100;

/// One place of the recorded order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRank {
    pub id: String,
    /// The full ticket as recorded, `0.<digits>`, if the record has it.
    pub ticket: Option<String>,
}

/// A draw as stored or exported, as plain text: the verifier must be able to say what is wrong
/// with a record that would not even parse into this crate's types.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrawRecord {
    /// The frozen-list blob, byte for byte.
    pub frozen_list: Vec<u8>,
    /// The list hash recorded at prepare.
    pub frozen_list_sha256: String,
    /// The candidate count recorded at prepare.
    pub candidate_count: usize,
    /// The commitment published at prepare.
    pub commitment: String,
    /// The server seed revealed at execute, 64 lower-case hex digits.
    pub server_seed_hex: String,
    pub dice_digits: Option<String>,
    /// The recorded order, first drawn first.
    pub order: Vec<RecordedRank>,
    /// The initial fill's primaries, in the order the walk took them.
    pub primaries: Vec<String>,
    /// The initial fill's backups, in rank order.
    pub backups: Vec<String>,
    /// The candidates the initial fill's final walk passed by (after a relaxation, the relaxed
    /// walk's skips only).
    pub skipped: Vec<String>,
}

/// One disagreement between a record and its recomputation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the frozen list blob is malformed: {0}")]
    FrozenListMalformed(CandidateListError),
    #[error("the frozen list blob hashes to {computed}, the record says {recorded}")]
    FrozenListSha256 { recorded: String, computed: String },
    #[error("the frozen list holds {computed} candidates, the record says {recorded}")]
    CandidateCount { recorded: usize, computed: usize },
    #[error("the published commitment is malformed: {0}")]
    CommitmentMalformed(String),
    #[error("the revealed server seed is malformed: {0}")]
    ServerSeedMalformed(String),
    #[error("the dice digits are malformed: {0}")]
    DiceDigitsMalformed(String),
    #[error("the revealed seed hashes to {computed}, not to the published commitment {published}")]
    CommitmentDoesNotOpen { published: String, computed: String },
    #[error("the recorded order has {recorded} candidates, the recomputed one {computed}")]
    OrderLength { recorded: usize, computed: usize },
    #[error("order position {position}: the record has {recorded:?}, the recomputation {computed:?}")]
    OrderPosition { position: usize, recorded: String, computed: String },
    #[error("{count} more order positions differ")]
    FurtherOrderMismatches { count: usize },
    #[error("order position {position} ({id}): the recorded ticket is {recorded}, the recomputed one {computed}")]
    Ticket { position: usize, id: String, recorded: String, computed: String },
    #[error("{id:?} is recorded as {role} but is not a candidate of this draw")]
    NotACandidate { role: &'static str, id: String },
    #[error("{id:?} is recorded in two places of the fill")]
    PlacedTwice { id: String },
    #[error(
        "{id:?} (order position {position}) is placed after {previous:?} (order position {previous_position}), against the walk"
    )]
    PlacedOutOfOrder { id: String, position: usize, previous: String, previous_position: usize },
    #[error("{id:?} (order position {position}) was passed by before the last place was taken, with no recorded skip")]
    UnexplainedPass { id: String, position: usize },
    #[error("{id:?} is recorded both as skipped and as placed")]
    SkippedAndPlaced { id: String },
}

/// The verdict: every mismatch found, and the recomputed order when the inputs allowed one.
#[derive(Debug, Clone)]
pub struct Verification {
    pub mismatches: Vec<Mismatch>,
    pub recomputed: Option<DrawOrder>,
}

impl Verification {
    /// Whether the record agrees with its recomputation in every respect checked.
    pub fn is_consistent(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Recomputes `record` and reports every mismatch.
pub fn verify(record: &DrawRecord) -> Verification {
    let mut mismatches = Vec::new();

    let blob_sha256 = hex::encode(Sha256::digest(&record.frozen_list));
    if blob_sha256 != record.frozen_list_sha256 {
        mismatches
            .push(Mismatch::FrozenListSha256 { recorded: record.frozen_list_sha256.clone(), computed: blob_sha256 });
    }
    let list = match FrozenList::parse(&record.frozen_list) {
        Ok(list) => {
            if list.count() != record.candidate_count {
                mismatches.push(Mismatch::CandidateCount { recorded: record.candidate_count, computed: list.count() });
            }
            Some(list)
        }
        Err(problem) => {
            mismatches.push(Mismatch::FrozenListMalformed(problem));
            None
        }
    };

    let seed = ServerSeed::from_hex(&record.server_seed_hex)
        .map_err(|e| mismatches.push(Mismatch::ServerSeedMalformed(message(&e))))
        .ok();
    match (Commitment::from_hex(&record.commitment), &seed) {
        (Err(e), _) => mismatches.push(Mismatch::CommitmentMalformed(message(&e))),
        (Ok(commitment), Some(seed)) if !commitment.opens_to(seed) => {
            mismatches.push(Mismatch::CommitmentDoesNotOpen {
                published: record.commitment.clone(),
                computed: seed.commitment().to_hex(),
            });
        }
        _ => {}
    }
    let dice = match &record.dice_digits {
        None => Some(None),
        Some(digits) => DiceDigits::parse(digits)
            .map(Some)
            .map_err(|e| mismatches.push(Mismatch::DiceDigitsMalformed(message(&e))))
            .ok(),
    };

    let recomputed = match (list, seed, dice) {
        (Some(list), Some(seed), Some(dice)) => Some(rank(&list, &SeedString::new(&seed, dice.as_ref()))),
        _ => None,
    };
    if let Some(order) = &recomputed {
        compare_order(record, order, &mut mismatches);
        check_initial_fill(record, order, &mut mismatches);
    }
    Verification { mismatches, recomputed }
}

fn message(error: &SeedError) -> String {
    error.to_string()
}

fn compare_order(record: &DrawRecord, order: &DrawOrder, mismatches: &mut Vec<Mismatch>) {
    if record.order.len() != order.len() {
        mismatches.push(Mismatch::OrderLength { recorded: record.order.len(), computed: order.len() });
    }
    let mut listed = 0;
    let mut unlisted = 0;
    for (position, (recorded, computed)) in record.order.iter().zip(order.candidates()).enumerate() {
        if recorded.id != computed.id.as_str() {
            if listed < LISTED_ORDER_MISMATCHES {
                mismatches.push(Mismatch::OrderPosition {
                    position,
                    recorded: recorded.id.clone(),
                    computed: computed.id.to_string(),
                });
                listed += 1;
            } else {
                unlisted += 1;
            }
            continue;
        }
        if let Some(ticket) = &recorded.ticket {
            let full = computed.ticket.as_fraction();
            if *ticket != full {
                mismatches.push(Mismatch::Ticket {
                    position,
                    id: recorded.id.clone(),
                    recorded: ticket.clone(),
                    computed: full,
                });
            }
        }
    }
    if unlisted > 0 {
        mismatches.push(Mismatch::FurtherOrderMismatches { count: unlisted });
    }
}

fn check_initial_fill(record: &DrawRecord, order: &DrawOrder, mismatches: &mut Vec<Mismatch>) {
    let positions: HashMap<&str, usize> =
        order.ids().enumerate().map(|(position, id)| (id.as_str(), position)).collect();

    let mut placed: HashSet<&str> = HashSet::new();
    let mut previous: Option<(&str, usize)> = None;
    let mut last_position = None;
    for (role, id) in record
        .primaries
        .iter()
        .map(|id| ("a primary", id.as_str()))
        .chain(record.backups.iter().map(|id| ("a backup", id.as_str())))
    {
        let Some(&position) = positions.get(id) else {
            mismatches.push(Mismatch::NotACandidate { role, id: id.to_owned() });
            continue;
        };
        if !placed.insert(id) {
            mismatches.push(Mismatch::PlacedTwice { id: id.to_owned() });
            continue;
        }
        if let Some((previous_id, previous_position)) = previous
            && position < previous_position
        {
            mismatches.push(Mismatch::PlacedOutOfOrder {
                id: id.to_owned(),
                position,
                previous: previous_id.to_owned(),
                previous_position,
            });
        }
        previous = Some((id, position));
        last_position = last_position.max(Some(position));
    }

    let mut skipped: HashSet<&str> = HashSet::new();
    for id in &record.skipped {
        if !positions.contains_key(id.as_str()) {
            mismatches.push(Mismatch::NotACandidate { role: "skipped", id: id.clone() });
        } else if placed.contains(id.as_str()) {
            mismatches.push(Mismatch::SkippedAndPlaced { id: id.clone() });
        }
        skipped.insert(id.as_str());
    }

    let Some(last_position) = last_position else { return };
    for (position, id) in order.ids().enumerate().take(last_position) {
        let id = id.as_str();
        if !placed.contains(id) && !skipped.contains(id) {
            mismatches.push(Mismatch::UnexplainedPass { id: id.to_owned(), position });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::Ticket;

    const SEED_HEX: &str = "ea9fadfcdb813ed5272691408b72d4fc1ed7224f46a2f0394c74622954d1a7c1";
    const DICE: &str = "31415926535897932384";

    /// A consistent record over E1..E8: no skips, 2 primaries and 2 backups.
    fn good_record() -> DrawRecord {
        let list = FrozenList::freeze_strs((1..=8).map(|n| format!("E{n}"))).unwrap();
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        let dice = DiceDigits::parse(DICE).unwrap();
        let order = rank(&list, &SeedString::new(&seed, Some(&dice)));
        let ids: Vec<String> = order.ids().map(ToString::to_string).collect();
        DrawRecord {
            frozen_list: list.bytes().to_vec(),
            frozen_list_sha256: list.sha256_hex().to_owned(),
            candidate_count: list.count(),
            commitment: seed.commitment().to_hex(),
            server_seed_hex: SEED_HEX.to_owned(),
            dice_digits: Some(DICE.to_owned()),
            order: order
                .candidates()
                .map(|c| RecordedRank { id: c.id.to_string(), ticket: Some(c.ticket.as_fraction()) })
                .collect(),
            primaries: ids[..2].to_vec(),
            backups: ids[2..4].to_vec(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn a_faithful_record_verifies() {
        let verification = verify(&good_record());
        assert_eq!(verification.mismatches, []);
        assert!(verification.is_consistent());
        assert_eq!(verification.recomputed.map(|o| o.len()), Some(8));
    }

    #[test]
    fn a_list_blob_changed_after_prepare_fails_its_hash_and_its_order() {
        let mut record = good_record();
        record.frozen_list.extend_from_slice(b"E9\n");
        let mismatches = verify(&record).mismatches;
        assert!(matches!(mismatches[0], Mismatch::FrozenListSha256 { .. }));
        assert_eq!(mismatches[1], Mismatch::CandidateCount { recorded: 8, computed: 9 });
        assert!(mismatches.contains(&Mismatch::OrderLength { recorded: 8, computed: 9 }));
    }

    #[test]
    fn a_malformed_list_blob_is_named_and_nothing_is_recomputed() {
        let mut record = good_record();
        record.frozen_list = b"E2\nE1\n".to_vec();
        record.frozen_list_sha256 = hex::encode(Sha256::digest(&record.frozen_list));
        let verification = verify(&record);
        assert_eq!(
            verification.mismatches,
            [Mismatch::FrozenListMalformed(CandidateListError::NotSorted {
                line: 2,
                previous: "E2".into(),
                id: "E1".into()
            })]
        );
        assert!(verification.recomputed.is_none());
    }

    #[test]
    fn a_seed_that_does_not_open_the_commitment_is_reported_with_both_hashes() {
        let mut record = good_record();
        let other = ServerSeed::from_bytes([7; 32]);
        record.server_seed_hex = other.to_hex();
        let mismatches = verify(&record).mismatches;
        assert_eq!(
            mismatches[0],
            Mismatch::CommitmentDoesNotOpen {
                published: good_record().commitment,
                computed: other.commitment().to_hex()
            }
        );
    }

    #[test]
    fn a_commitment_made_over_the_hex_spelling_does_not_verify() {
        let mut record = good_record();
        record.commitment = hex::encode(Sha256::digest(SEED_HEX.as_bytes()));
        assert!(matches!(verify(&record).mismatches[0], Mismatch::CommitmentDoesNotOpen { .. }));
    }

    #[test]
    fn other_dice_digits_change_the_order_and_every_differing_position_is_named() {
        let mut record = good_record();
        record.dice_digits = Some("99999999999999999999".into());
        let mismatches = verify(&record).mismatches;
        assert!(!mismatches.is_empty());
        assert!(mismatches.iter().all(|m| matches!(
            m,
            Mismatch::OrderPosition { .. }
                | Mismatch::Ticket { .. }
                | Mismatch::PlacedOutOfOrder { .. }
                | Mismatch::UnexplainedPass { .. }
        )));
    }

    #[test]
    fn malformed_seed_commitment_and_dice_are_each_reported() {
        let mut record = good_record();
        record.server_seed_hex = SEED_HEX.to_uppercase();
        record.commitment = "abc".into();
        record.dice_digits = Some("123".into());
        let mismatches = verify(&record).mismatches;
        assert!(matches!(mismatches[0], Mismatch::ServerSeedMalformed(_)));
        assert!(matches!(mismatches[1], Mismatch::CommitmentMalformed(_)));
        assert!(matches!(mismatches[2], Mismatch::DiceDigitsMalformed(_)));
        assert_eq!(mismatches.len(), 3);
    }

    #[test]
    fn two_swapped_order_positions_are_both_named() {
        let mut record = good_record();
        record.order.swap(3, 5);
        let mismatches = verify(&record).mismatches;
        let positions: Vec<usize> = mismatches
            .iter()
            .filter_map(|m| match m {
                Mismatch::OrderPosition { position, .. } => Some(*position),
                _ => None,
            })
            .collect();
        assert_eq!(positions, [3, 5]);
    }

    #[test]
    fn a_recorded_ticket_differing_in_its_last_digit_is_reported() {
        let mut record = good_record();
        let ticket = record.order[2].ticket.clone().unwrap();
        let last = if ticket.ends_with('1') { '2' } else { '1' };
        let altered = format!("{}{last}", &ticket[..ticket.len() - 1]);
        record.order[2].ticket = Some(altered.clone());
        assert_eq!(
            verify(&record).mismatches,
            [Mismatch::Ticket { position: 2, id: record.order[2].id.clone(), recorded: altered, computed: ticket }]
        );
    }

    #[test]
    fn a_trimmed_ticket_is_not_a_full_ticket() {
        let mut record = good_record();
        let full = Ticket::parse(record.order[0].ticket.as_deref().unwrap()).unwrap();
        record.order[0].ticket = Some(full.trimmed(9));
        assert!(matches!(verify(&record).mismatches[0], Mismatch::Ticket { position: 0, .. }));
    }

    #[test]
    fn a_candidate_passed_by_without_a_recorded_skip_is_named() {
        let mut record = good_record();
        let passed = record.primaries.remove(1);
        record.primaries.push(record.backups.remove(0));
        record.backups.push(record.order[4].id.clone());
        assert_eq!(verify(&record).mismatches, [Mismatch::UnexplainedPass { id: passed.clone(), position: 1 }]);
        record.skipped.push(passed);
        assert_eq!(verify(&record).mismatches, []);
    }

    #[test]
    fn places_taken_against_the_order_are_named() {
        let mut record = good_record();
        record.primaries.swap(0, 1);
        assert!(matches!(
            verify(&record).mismatches[..],
            [Mismatch::PlacedOutOfOrder { position: 0, previous_position: 1, .. }]
        ));
    }

    #[test]
    fn a_placed_stranger_a_double_place_and_a_skipped_primary_are_named() {
        let mut record = good_record();
        record.backups.push("E99".into());
        record.backups.push(record.primaries[0].clone());
        record.skipped.push(record.primaries[1].clone());
        let mismatches = verify(&record).mismatches;
        assert!(mismatches.contains(&Mismatch::NotACandidate { role: "a backup", id: "E99".into() }));
        assert!(mismatches.contains(&Mismatch::PlacedTwice { id: record.primaries[0].clone() }));
        assert!(mismatches.contains(&Mismatch::SkippedAndPlaced { id: record.primaries[1].clone() }));
    }

    #[test]
    fn a_long_run_of_order_mismatches_is_listed_up_to_a_bound_then_counted() {
        let list = FrozenList::freeze_strs((1..=300).map(|n| format!("E{n}"))).unwrap();
        let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
        let order = rank(&list, &SeedString::new(&seed, None));
        let mut ids: Vec<String> = order.ids().map(ToString::to_string).collect();
        ids.rotate_left(1);
        let record = DrawRecord {
            frozen_list: list.bytes().to_vec(),
            frozen_list_sha256: list.sha256_hex().to_owned(),
            candidate_count: 300,
            commitment: seed.commitment().to_hex(),
            server_seed_hex: SEED_HEX.to_owned(),
            order: ids.into_iter().map(|id| RecordedRank { id, ticket: None }).collect(),
            ..DrawRecord::default()
        };
        let mismatches = verify(&record).mismatches;
        assert_eq!(mismatches.len(), LISTED_ORDER_MISMATCHES + 1);
        assert_eq!(mismatches.last(), Some(&Mismatch::FurtherOrderMismatches { count: 300 - LISTED_ORDER_MISMATCHES }));
    }
}
