//! The testkit: start services in-process on port 0 against a fresh database per test (a new
//! SQLite file, or a new PostgreSQL database created and dropped around the test), so the same
//! integration tests run on both backends and in parallel.
//!
//! PostgreSQL is found through `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a role that may create databases) and Redis
//! through `TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). When either is unreachable the
//! test fails and says how to start it; nothing is skipped.

mod backend;
pub mod idempotency;
pub mod identity;
pub mod private_pg;
pub mod process;
pub mod proxy;
mod scaleout;
pub mod scenario;
pub mod scope;
mod services;

pub use backend::{Backend, TestDb, TestRedis};
pub use identity::{AuthedChannel, service_acting_for, token, with_token};
pub use scaleout::{ScaledOut, ServiceKind, ServicePair};
pub use services::{
    Deployment, RunningService, common_args, personal_data_key_file, scrape_metrics, spawn_deployment, spawn_dispatch,
    spawn_dispatch_calling, spawn_dispatch_calling_finance, spawn_dispatch_with_registry, spawn_finance,
    spawn_finance_calling, spawn_finance_on, spawn_finance_with_registry, spawn_recruitment, spawn_recruitment_calling,
    spawn_recruitment_calling_with, spawn_registry, spawn_registry_on, spawn_registry_with,
    spawn_registry_with_metrics,
};
pub use supervision_kit::{Bureau, Role};

/// `make test-long` sets `SUPERVISION_TEST_LONG=1`: long tests use it to run their full counts
/// (1,000 draws, 200 crash runs, 100,000 experts) instead of the short forms `make test` runs.
pub fn long_run() -> bool {
    std::env::var("SUPERVISION_TEST_LONG").is_ok_and(|v| v == "1")
}

/// `short` under `make test`, `long` under `make test-long`.
pub fn scale(short: usize, long: usize) -> usize {
    if long_run() { long } else { short }
}

/// Runs each listed `async fn name(backend: Backend)` once per backend, as
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await;
                }
            )+
        }
    };
}
