//! The worked example of `docs/draw-algorithm.md`, number for number, so the document cannot drift
//! from the code. The list, seed and dice are the vector case "ids of different lengths with dice".

use supervision_draw::{
    CandidateFacts, DiceDigits, EmployerKey, ExpertId, FrozenList, SameEmployerRule, SeedString, ServerSeed,
    SkipReason, TeamSize, fill, rank,
};

const IDS: [&str; 10] = [
    "05d2fbb9-49af-b4b5-56c8-79f9cadc0064",
    "E1",
    "E10",
    "E100",
    "E2",
    "Z",
    "a",
    "ab",
    "abc",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];
const SEED_HEX: &str = "14c94a576ba12d419584b72f53ba4e80080d66dbed7dbb9c37910dc472839c6e";
const DICE: &str = "62643383279502884197169399375105820974944592307816406286";

fn id(s: &str) -> ExpertId {
    ExpertId::parse(s).unwrap()
}

#[test]
fn the_documented_example_freezes_commits_and_ranks_as_written() {
    let list = FrozenList::freeze_strs(IDS).unwrap();
    assert_eq!(list.sha256_hex(), "91be4b998deeeefdc2f85f5aebfb29658c5b6c6b9bd01fabb706e58a31878923");
    let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
    assert_eq!(seed.commitment().to_hex(), "e7f3b97ec952a458f6e2e114b1314890b94f53908a66c7152110913a13759d24");
    let seed_string = SeedString::new(&seed, Some(&DiceDigits::parse(DICE).unwrap()));
    assert_eq!(seed_string.sha256_hex(), "a7a4689b8d3329332b3c72ede88ba767299883ea729bfe9d47b6651a097bae84");

    let order = rank(&list, &seed_string);
    let ids: Vec<&str> = order.ids().map(ExpertId::as_str).collect();
    assert_eq!(
        ids,
        [
            "E2",
            "E100",
            "E10",
            "E1",
            "abc",
            "ab",
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "Z",
            "05d2fbb9-49af-b4b5-56c8-79f9cadc0064",
            "a"
        ]
    );
    assert_eq!(
        order.get(0).unwrap().ticket.to_string(),
        "0.03589236014423905926564157055676335972139218180621505638209586171442827370591"
    );
}

#[test]
fn the_documented_fill_and_vacancy_happen_as_written() {
    let list = FrozenList::freeze_strs(IDS).unwrap();
    let seed = ServerSeed::from_hex(SEED_HEX).unwrap();
    let order = rank(&list, &SeedString::new(&seed, Some(&DiceDigits::parse(DICE).unwrap())));
    let facts = |expert: &ExpertId| match expert.as_str() {
        "E100" => CandidateFacts { free_on_every_session: false, ..CandidateFacts::available(None) },
        "E2" | "E10" => CandidateFacts::available(Some("U-1")),
        _ => CandidateFacts::available(None),
    };

    let mut filled = fill(&order, TeamSize { primaries: 2, backups: 2 }, facts);
    let names =
        |placements: &[supervision_draw::Placement]| placements.iter().map(|p| p.id.to_string()).collect::<Vec<_>>();
    assert_eq!(filled.rule, SameEmployerRule::Enforced);
    assert_eq!(names(&filled.primaries), ["E2", "E1"]);
    assert_eq!(names(&filled.backups), ["abc", "ab"]);
    let skips: Vec<_> = filled.skips.iter().map(|s| (s.id.as_str(), s.position, s.reasons.clone())).collect();
    assert_eq!(
        skips,
        [
            ("E100", 1, vec![SkipReason::NotFree]),
            ("E10", 2, vec![SkipReason::SameEmployer { employer: EmployerKey::new("U-1"), teammate: id("E2") }]),
        ]
    );
    assert_eq!(filled.next_position, 6);

    // E1 declines: abc is promoted, and the walk continues at position 6 for a new backup.
    let vacancy = filled.vacate(&order, &id("E1"), facts).unwrap();
    assert_eq!(vacancy.promoted.map(|p| p.id.to_string()), Some("abc".to_owned()));
    assert_eq!(names(&filled.primaries), ["E2", "abc"]);
    assert_eq!(names(&filled.backups), ["ab", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]);
    assert_eq!(filled.next_position, 7);
}
