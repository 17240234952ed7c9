//! Criterion micro-benchmarks (issue 12 item 3): the draw's ranking (crates/draw), the CPU part
//! of a prepare (dispatch's pool copy, D14's screening, the frozen list), the fee and tax
//! computation (finance's domain functions) and the working-day calendar. Outside the default
//! build: `make bench` or `cargo bench -p supervision-bench --bench micro`.

use std::{collections::HashSet, hint::black_box, time::Instant};

use chrono::{NaiveDate, NaiveTime};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use supervision_calendar::Calendar;
use supervision_dispatch::{
    domain::{SoftFacts, draw::screen_kept, frozen_from},
    draws::PreparedLists,
    pool_copy::{PoolCopy, SyncAnswer},
};
use supervision_draw::{FrozenList, SeedString, ServerSeed, rank};
use supervision_finance::domain::{
    ClassHourRules, FeeRules, SlotSession, allocate_cap, gross_for_net, price_slot, tax_due, withhold,
};

/// `n` registry-shaped expert ids (`exp_` and 32 hex digits), frozen.
fn frozen(n: u32) -> FrozenList {
    FrozenList::freeze_strs(
        (0..n).map(|i| format!("exp_{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))),
    )
    .expect("distinct ids")
}

fn ranking(c: &mut Criterion) {
    let seed = SeedString::new(&ServerSeed::from_bytes([7; 32]), None);
    let mut group = c.benchmark_group("draw/rank");
    for n in [100u32, 10_000, 100_000] {
        let list = frozen(n);
        if n >= 10_000 {
            group.sample_size(10);
        }
        group
            .bench_with_input(BenchmarkId::from_parameter(n), &list, |b, list| b.iter(|| rank(black_box(list), &seed)));
    }
    group.finish();
    c.bench_function("draw/freeze 10000", |b| b.iter(|| frozen(black_box(10_000))));
}

fn session(assignment: &str, start: (u32, u32), minutes: u32) -> SlotSession {
    SlotSession {
        assignment_id: assignment.into(),
        session_id: format!("{assignment}-s"),
        start: NaiveTime::from_hms_opt(start.0, start.1, 0).expect("a time"),
        minutes,
        void_reason: None,
    }
}

fn fees_and_tax(c: &mut Criterion) {
    // A half-day of three sessions for three payers, over the cap of 4 class hours.
    let slot = vec![session("asg_b", (9, 0), 100), session("asg_a", (8, 30), 95), session("asg_c", (10, 45), 70)];
    c.bench_function("finance/allocate_cap 3 sessions", |b| {
        b.iter(|| allocate_cap(black_box(&slot), ClassHourRules::EDITION_1, 4))
    });
    c.bench_function("finance/price_slot 3 sessions", |b| {
        b.iter(|| price_slot(black_box(&slot), black_box(false), &FeeRules::EDITION_1))
    });
    c.bench_function("finance/tax_due", |b| b.iter(|| tax_due(black_box(1_234_500))));
    c.bench_function("finance/withhold", |b| b.iter(|| withhold(black_box(2_600_000), black_box(80_000))));
    c.bench_function("finance/gross_for_net", |b| b.iter(|| gross_for_net(black_box(500_000), black_box(300_000))));
}

fn calendar(c: &mut Criterion) {
    let calendar = Calendar::embedded();
    let day = NaiveDate::from_ymd_opt(2026, 9, 25).expect("a date");
    let year_end = NaiveDate::from_ymd_opt(2026, 12, 31).expect("a date");
    let year_start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
    c.bench_function("calendar/add_working_days 5", |b| b.iter(|| calendar.add_working_days(black_box(day), 5)));
    c.bench_function("calendar/working_days_between a year", |b| {
        b.iter(|| calendar.working_days_between(black_box(year_start), black_box(year_end)))
    });
    c.bench_function("calendar/is_working_day", |b| b.iter(|| calendar.is_working_day(black_box(day))));
    c.bench_function("calendar/load embedded", |b| b.iter(Calendar::embedded));
}

/// Dispatch's copy of a pool of `n` experts shaped as supbench seeds them (one specialty, a
/// quarter untrained, two-year terms), filled by one whole sync answer as a draw's first read
/// fills it.
fn pool_copy(n: u32) -> (PoolCopy, supervision_dispatch::pool_copy::Overlay) {
    use supervision_proto::{common, registry as rpb};
    let date = |year, month, day| common::Date { year, month, day };
    let mut experts: Vec<rpb::DrawPoolExpert> = (0..n)
        .map(|i| rpb::DrawPoolExpert {
            expert_id: format!("exp_{:032x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
            status: rpb::ExpertStatus::Active as i32,
            term: Some(common::DateRange { start: Some(date(2026, 1, 1)), end: Some(date(2027, 12, 31)) }),
            trained: i % 4 != 0,
            employer_key: format!("org-{}", i % 997),
            specialties: vec![common::SpecialtyCode { code: "4-07-05-01".into(), ..Default::default() }],
            ..Default::default()
        })
        .collect();
    // The registry streams the pool in id order, so the copy allocates its experts in that order.
    experts.sort_by(|a, b| a.expert_id.cmp(&b.expert_id));
    let end = rpb::DrawPoolEnd { version: "v1".into(), full: true, ..Default::default() };
    let mut copy = PoolCopy::default();
    let overlay = copy.apply(SyncAnswer { experts, removed: Vec::new(), end }, Instant::now());
    (copy, overlay)
}

/// The CPU part of a prepare at each pool size (issue 12): the task's pool taken from the copy,
/// D14's screening, and the frozen list (the pool's list and facts kept from the draw before, as
/// in a run of draws from an unchanged pool).
fn screening(c: &mut Criterion) {
    let day = NaiveDate::from_ymd_opt(2027, 3, 1).expect("a date");
    let mut group = c.benchmark_group("draw/prepare_cpu");
    group.sample_size(10);
    for n in [10_000u32, 100_000] {
        let (copy, overlay) = pool_copy(n);
        let lists = PreparedLists::default();
        let soft =
            SoftFacts { wanted: vec!["4-07-05-01".into()], cooling: HashSet::new(), capped: HashSet::new(), needed: 7 };
        let booked = HashSet::new();
        let prepare = || {
            let pool = copy.pool(&[day], &overlay, None);
            let kept = lists.pool(&pool).expect("valid ids");
            let screened = screen_kept(&pool, &kept.facts, &[day], &booked, "", &soft);
            let frozen = frozen_from(&kept.list, &screened.excluded).expect("a list");
            (screened.untrained.len(), frozen.count())
        };
        prepare();
        group.bench_function(BenchmarkId::from_parameter(n), |b| b.iter(|| black_box(prepare())));
    }
    group.finish();
}

criterion_group!(benches, ranking, screening, fees_and_tax, calendar);
criterion_main!(benches);
