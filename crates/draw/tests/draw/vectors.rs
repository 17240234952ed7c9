//! Every case of `tests/vectors.json`, the output of the reference script, reproduced exactly:
//! list hash and count, commitment, seed string and its hash, the order, every full ticket, and
//! the ticket as the sampler prints it.

use serde::Deserialize;
use supervision_draw::{
    Commitment, DiceDigits, DrawRecord, FrozenList, RecordedRank, SeedString, ServerSeed, rank, verify,
};

#[derive(Debug, Deserialize)]
struct Vectors {
    package: String,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    ids: Vec<String>,
    frozen_list_sha256: String,
    count: usize,
    server_seed_hex: String,
    commitment: String,
    dice_digits: Option<String>,
    seed_string: String,
    seed_string_sha256: String,
    order: Vec<Ranked>,
}

#[derive(Debug, Deserialize)]
struct Ranked {
    id: String,
    ticket: String,
    ticket_trimmed: String,
}

fn vectors() -> Vectors {
    let text = include_str!("../vectors.json");
    serde_json::from_str(text).expect("tests/vectors.json parses")
}

#[test]
fn the_vectors_come_from_consistent_sampler_1_0_10() {
    assert_eq!(vectors().package, "consistent-sampler 1.0.10");
}

#[test]
fn the_vectors_cover_one_two_a_hundred_and_a_thousand_ids_with_and_without_dice() {
    let cases = vectors().cases;
    for count in [1, 2, 100, 1000] {
        assert!(cases.iter().any(|c| c.count == count), "no case with {count} ids");
    }
    assert!(cases.iter().any(|c| c.dice_digits.is_some()));
    assert!(cases.iter().any(|c| c.dice_digits.is_none()));
    let lengths: std::collections::BTreeSet<usize> = cases.iter().flat_map(|c| c.ids.iter().map(String::len)).collect();
    assert!(lengths.len() >= 5, "ids of few different lengths: {lengths:?}");
}

#[test]
fn every_case_freezes_to_the_recorded_list_hash_and_count() {
    for case in vectors().cases {
        // Freeze from the reverse order to show the input order does not matter.
        let list = FrozenList::freeze_strs(case.ids.iter().rev()).unwrap();
        assert_eq!(list.sha256_hex(), case.frozen_list_sha256, "{}", case.name);
        assert_eq!(list.count(), case.count, "{}", case.name);
        let expected: Vec<&str> = case.ids.iter().map(String::as_str).collect();
        let frozen: Vec<&str> = list.ids().iter().map(|id| id.as_str()).collect();
        assert_eq!(frozen, expected, "{}: python sorts the same way", case.name);
    }
}

#[test]
fn every_case_commits_and_builds_the_seed_string_as_recorded() {
    for case in vectors().cases {
        let seed = ServerSeed::from_hex(&case.server_seed_hex).unwrap();
        assert_eq!(seed.commitment().to_hex(), case.commitment, "{}", case.name);
        assert!(Commitment::from_hex(&case.commitment).unwrap().opens_to(&seed));
        let dice = case.dice_digits.as_deref().map(|d| DiceDigits::parse(d).unwrap());
        let seed_string = SeedString::new(&seed, dice.as_ref());
        assert_eq!(seed_string.as_str(), case.seed_string, "{}", case.name);
        assert_eq!(seed_string.sha256_hex(), case.seed_string_sha256, "{}", case.name);
    }
}

#[test]
fn every_case_ranks_in_the_reference_order_with_the_reference_tickets() {
    for case in vectors().cases {
        let list = FrozenList::freeze_strs(&case.ids).unwrap();
        let seed = ServerSeed::from_hex(&case.server_seed_hex).unwrap();
        let dice = case.dice_digits.as_deref().map(|d| DiceDigits::parse(d).unwrap());
        let order = rank(&list, &SeedString::new(&seed, dice.as_ref()));
        assert_eq!(order.len(), case.order.len(), "{}", case.name);
        for (position, (ours, theirs)) in order.candidates().zip(&case.order).enumerate() {
            assert_eq!(ours.id.as_str(), theirs.id, "{} position {position}", case.name);
            assert_eq!(ours.ticket.as_fraction(), theirs.ticket, "{} position {position}", case.name);
            assert_eq!(ours.ticket.trimmed(9), theirs.ticket_trimmed, "{} position {position}", case.name);
        }
    }
}

#[test]
fn every_case_verifies_as_a_record_with_the_reference_order() {
    for case in vectors().cases {
        let list = FrozenList::freeze_strs(&case.ids).unwrap();
        let first = |n: usize| case.order.iter().take(n).map(|r| r.id.clone()).collect::<Vec<_>>();
        let record = DrawRecord {
            frozen_list: list.bytes().to_vec(),
            frozen_list_sha256: case.frozen_list_sha256.clone(),
            candidate_count: case.count,
            commitment: case.commitment.clone(),
            server_seed_hex: case.server_seed_hex.clone(),
            dice_digits: case.dice_digits.clone(),
            order: case
                .order
                .iter()
                .map(|r| RecordedRank { id: r.id.clone(), ticket: Some(r.ticket.clone()) })
                .collect(),
            primaries: first(1),
            backups: Vec::new(),
            skipped: Vec::new(),
        };
        assert_eq!(verify(&record).mismatches, [], "{}", case.name);
    }
}
