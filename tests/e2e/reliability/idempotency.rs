//! Idempotency on every state-changing call whole scenarios make (issue 11, item 3).
//!
//! The four services are wired as a deployment, each behind the testkit's checking proxy
//! (`tests/src/idempotency.rs`: for every command, two concurrent copies with the same answer, a
//! replay with the same answer, a changed copy refused as FAILED_PRECONDITION): the test's clients
//! call the proxies, and so do the services themselves (dispatch calls the registry and delivers
//! to finance, recruitment and finance call the registry).
//!
//! 1. The observability scenario (`tests/e2e/observability/scenario.rs`, reused as is) runs to its
//!    end through them and its own checks hold (one fee line, found by finance); then each effect
//!    is counted in the databases: one institution, the experts appointed once each, one task,
//!    one draw, one report, one fee line.
//! 2. On PostgreSQL, the testkit's bureau scenario (`tests/src/scenario.rs`: recruitment from the
//!    call to the decision, the draw, sessions and reports, a payment batch paid) runs on the
//!    scaled-out deployment with its clients behind proxies, and its ledger check proves every
//!    acknowledged operation exists exactly once.
//!
//! The RPCs with a `request_id` not reached are printed (and listed in `docs/security.md`).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use testkit::{
    Backend, Deployment, ScaledOut, ServiceKind,
    idempotency::{Checker, is_state_changing, proxy},
    on_both_backends, spawn_dispatch_calling_finance, spawn_finance_calling, spawn_recruitment_calling, spawn_registry,
};

use crate::scenario;

on_both_backends!(every_state_changing_call_of_the_scenario_replays_refuses_changes_and_acts_once);

async fn count(url: &str, table: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("counting {table}: {e}"));
    pool.close().await;
    n
}

async fn every_state_changing_call_of_the_scenario_replays_refuses_changes_and_acts_once(backend: Backend) {
    let checker = Checker::new();
    let mut registry = spawn_registry(backend).await;
    let (registry_addr, registry_channel) = proxy(&registry.channel, &checker).await;
    let registry_url = format!("http://{registry_addr}");
    let mut finance = spawn_finance_calling(backend, &registry_url).await;
    let (finance_addr, finance_channel) = proxy(&finance.channel, &checker).await;
    let mut recruitment = spawn_recruitment_calling(backend, Some(registry_url.clone())).await;
    let (_, recruitment_channel) = proxy(&recruitment.channel, &checker).await;
    let mut dispatch = spawn_dispatch_calling_finance(backend, &registry_url, &format!("http://{finance_addr}")).await;
    let (_, dispatch_channel) = proxy(&dispatch.channel, &checker).await;
    registry.channel = registry_channel;
    finance.channel = finance_channel;
    recruitment.channel = recruitment_channel;
    dispatch.channel = dispatch_channel;
    let deployment = Deployment { registry, recruitment, dispatch, finance, metrics: Vec::new() };

    let outcome = scenario::run(&deployment).await;
    assert_eq!(outcome.fee_lines.len(), 1);
    checker.settled().await;

    // One effect per command, counted where it is stored.
    let d = &deployment;
    let effects = [
        (d.registry.database_url(), "institutions", 1),
        (d.registry.database_url(), "experts", i64::from(scenario::EXPERTS)),
        (d.registry.database_url(), "appointments", i64::from(scenario::EXPERTS)),
        (d.dispatch.database_url(), "tasks", 1),
        (d.dispatch.database_url(), "draws", 1),
        (d.dispatch.database_url(), "reports", 1),
        (d.finance.database_url(), "fee_lines", 1),
    ];
    let mut wrong = Vec::new();
    for (url, table, expected) in effects {
        let n = count(url, table).await;
        if n != expected {
            wrong.push(format!("{n} rows in {table}, expected {expected}"));
        }
    }
    deployment.stop().await;

    // On PostgreSQL, also the bureau's whole year in small: recruitment, the draw, payment.
    if backend == Backend::Postgres {
        bureau_scenario(&checker).await;
    }

    let tally = checker.take_tally();
    wrong.extend(tally.wrong);
    let commands: usize = tally.checked.values().map(|(ok, _)| ok).sum();
    let reached: BTreeSet<&String> = tally.checked.iter().filter(|(_, (ok, _))| *ok > 0).map(|(p, _)| p).collect();
    let all: Vec<&String> = checker.rpcs.iter().filter(|(_, m)| is_state_changing(m)).map(|(p, _)| p).collect();
    let unreached: Vec<&&String> = all.iter().filter(|p| !reached.contains(**p)).collect();
    eprintln!(
        "idempotency: {} of {} state-changing RPCs checked, {commands} commands, {} calls upstream, {} wrong; \
         per RPC (checked, refused): {:?}; other answers to changed copies: {:?}",
        reached.len(),
        all.len(),
        tally.calls,
        wrong.len(),
        tally.checked,
        tally.other_answers,
    );
    eprintln!("state-changing RPCs not reached: {unreached:?}");
    let by_name: HashMap<_, _> = tally.checked.iter().collect();
    let least = if backend == Backend::Postgres { 25 } else { 10 };
    assert!(reached.len() >= least, "only {} state-changing RPCs reached: {by_name:?}", reached.len());
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
}

/// The testkit's bureau scenario (`tests/src/scenario.rs`: a call, applications, reviews,
/// publicity, the appointment, a task drawn and accepted, sessions, reports, a payment batch
/// drafted, submitted, approved and paid) on the scaled-out deployment (PostgreSQL and Redis),
/// its clients calling through proxies; then the scenario's own ledger check: every
/// acknowledged operation exists exactly once.
async fn bureau_scenario(checker: &Arc<Checker>) {
    let cluster = ScaledOut::start().await;
    let mut channels = Vec::new();
    for kind in ServiceKind::ALL {
        let mut proxied = Vec::new();
        for upstream in &cluster.pair(kind).channels {
            proxied.push(proxy(upstream, checker).await.1);
        }
        channels.push((kind, proxied));
    }
    let net = testkit::scenario::Net::new(channels);
    let clock = Arc::new(testkit::scenario::Clock::new(cluster.clock_files()));
    let ticker = testkit::scenario::Ticker::start(clock.clone());
    let ledger = testkit::scenario::run_scenarios(&net, &clock, 1).await;
    checker.settled().await;
    let mut pools = BTreeMap::new();
    for kind in ServiceKind::ALL {
        pools.insert(kind.name(), testkit::scenario::pool(cluster.database_url(kind)).await);
    }
    testkit::scenario::outboxes_drain(&pools).await;
    ticker.stop().await;
    // Panics, listing them, on any operation lost or made twice.
    let tally = testkit::scenario::check_ledger(&pools, &ledger, 1).await;
    eprintln!("bureau scenario: {} operations each found once; {} client calls", tally.checked, net.calls());
    for pool in pools.values() {
        pool.close().await;
    }
    cluster.stop().await;
}
