//! The kit's database connections (`crates/kit/src/storage.rs`).

use supervision_kit::Db;
use testkit::{Backend, TestDb};

/// Every PostgreSQL connection of a service's pool has JIT compilation off: with it on,
/// ListExperts' page at 100,000 experts took 450-800 ms of compilation per call
/// (`docs/performance.md`, "Registry reads").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_postgres_connection_runs_without_jit() {
    let test_db = TestDb::new(Backend::Postgres).await;
    let db = Db::connect(test_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    // Several connections held at once, so more than one physical connection is checked.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = db.pool().acquire().await.unwrap();
        let jit: String = sqlx::query_scalar("SHOW jit").fetch_one(&mut *conn).await.unwrap();
        assert_eq!(jit, "off");
        held.push(conn);
    }
    drop(held);
    db.pool().close().await;
}
