//! A periodic pass runs once per period across replicas and restarts, and each run is recorded.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use supervision_kit::{Db, SharedClock, Shutdown, clock::ManualClock, jobs, metrics::Metrics};
use testkit::{Backend, TestDb, on_both_backends};

on_both_backends!(a_restarted_replica_does_not_run_a_pass_twice_in_its_period, a_poller_is_not_recorded);

const EVERY: Duration = Duration::from_secs(3600);

/// Starts a runner of the job `name` that counts its runs; answers its shutdown.
fn runner(db: &Db, clock: &SharedClock, name: &'static str, every: Duration, runs: &Arc<AtomicUsize>) -> Shutdown {
    let shutdown = Shutdown::new();
    let runs = runs.clone();
    jobs::spawn(db.clone(), clock.clone(), &Metrics::new(), name, every, shutdown.clone(), move || {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
        }
    });
    shutdown
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn recorded(db: &Db, name: &str) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT holder, outcome FROM kit_job_runs WHERE name = $1 ORDER BY started, id")
        .bind(name)
        .fetch_all(db.pool())
        .await
        .unwrap()
}

async fn a_restarted_replica_does_not_run_a_pass_twice_in_its_period(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = Db::connect(test_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let manual = ManualClock::at(chrono::Utc::now());
    let clock: SharedClock = Arc::new(manual.clone());
    let runs = Arc::new(AtomicUsize::new(0));

    // The first replica runs the pass at once and records it.
    let first = runner(&db, &clock, "test-pass", EVERY, &runs);
    wait_for("the first pass", || runs.load(Ordering::SeqCst) == 1).await;
    let mut rows = Vec::new();
    for _ in 0..200 {
        rows = recorded(&db, "test-pass").await;
        if rows.iter().any(|r| r.1.as_deref() == Some("done")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(rows.len(), 1, "one run recorded: {rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some("done"));
    // It stops (giving its lease up), and a replacement starts ten minutes later: the job is
    // free to take, but this period's pass is done.
    first.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    manual.advance(chrono::Duration::minutes(10));
    let second = runner(&db, &clock, "test-pass", EVERY, &runs);
    tokio::time::sleep(Duration::from_millis(500)).await;
    second.trigger();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the restarted replica did not run the pass again");
    assert_eq!(recorded(&db, "test-pass").await.len(), 1);

    // A period later, a third replica runs the next pass.
    manual.advance(chrono::Duration::minutes(51));
    let third = runner(&db, &clock, "test-pass", EVERY, &runs);
    wait_for("the next period's pass", || runs.load(Ordering::SeqCst) == 2).await;
    third.trigger();
    let rows = recorded(&db, "test-pass").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_ne!(rows[0].0, rows[1].0, "each pass is recorded with the replica that ran it");
}

async fn a_poller_is_not_recorded(backend: Backend) {
    let test_db = TestDb::new(backend).await;
    let db = Db::connect(test_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let runs = Arc::new(AtomicUsize::new(0));
    let poller = runner(&db, &clock, "test-poller", Duration::from_millis(50), &runs);
    wait_for("three polls", || runs.load(Ordering::SeqCst) >= 3).await;
    poller.trigger();
    assert!(recorded(&db, "test-poller").await.is_empty(), "a poller leaves no run records");
}
