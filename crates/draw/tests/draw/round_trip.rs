//! A draw from prepare to verify through the public API, as the dispatch service will run it.

use std::collections::HashMap;

use supervision_draw::{
    CandidateFacts, Commitment, DiceDigits, DrawRecord, ExpertId, FrozenList, RecordedRank, SameEmployerRule,
    SeedString, ServerSeed, TeamSize, fill, rank, verify,
};

#[test]
fn a_draw_prepared_witnessed_executed_and_filled_verifies_from_its_record() {
    // Prepare: freeze the pool, draw and commit to a seed.
    let list = FrozenList::freeze_strs((1..=40).map(|n| format!("EXP-{n:04}"))).unwrap();
    let seed = ServerSeed::generate().unwrap();
    let published = seed.commitment().to_hex();

    // Witness: dice digits. Execute: reveal the seed and rank.
    let dice = DiceDigits::parse("16180339887498948482").unwrap();
    let order = rank(&list, &SeedString::new(&seed, Some(&dice)));

    // Fill: the first-ranked candidate is booked elsewhere; employers cycle through five.
    let employers: HashMap<ExpertId, Option<String>> = list
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), (i % 5 != 0).then(|| format!("U{}", i % 5))))
        .collect();
    let booked = order.id_at(0).unwrap().clone();
    let facts = |id: &ExpertId| CandidateFacts {
        free_on_every_session: *id != booked,
        active: true,
        employer: employers[id].clone().map(supervision_draw::EmployerKey::new),
    };
    let filled = fill(&order, TeamSize { primaries: 2, backups: 2 }, facts);
    assert_eq!(filled.rule, SameEmployerRule::Enforced);
    assert_eq!(filled.shortfall(), 0);

    let record = DrawRecord {
        frozen_list: list.bytes().to_vec(),
        frozen_list_sha256: list.sha256_hex().to_owned(),
        candidate_count: list.count(),
        commitment: published.clone(),
        server_seed_hex: seed.to_hex(),
        dice_digits: Some(dice.as_str().to_owned()),
        order: order
            .candidates()
            .map(|c| RecordedRank { id: c.id.to_string(), ticket: Some(c.ticket.to_string()) })
            .collect(),
        primaries: filled.primaries.iter().map(|p| p.id.to_string()).collect(),
        backups: filled.backups.iter().map(|p| p.id.to_string()).collect(),
        skipped: filled.skips.iter().map(|s| s.id.to_string()).collect(),
    };
    assert!(Commitment::from_hex(&published).unwrap().opens_to(&seed));
    let verification = verify(&record);
    assert_eq!(verification.mismatches, []);
    assert_eq!(verification.recomputed.as_ref(), Some(&order));
}
