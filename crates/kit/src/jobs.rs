//! Periodic work that must run once across replicas (lifecycle passes, response deadlines,
//! purges): a job runs only while its runner holds the job's lease row in the database.

use std::{
    future::Future,
    time::{Duration, Instant},
};

use tracing::Instrument;

use crate::{
    Db, SharedClock, Shutdown,
    metrics::{Metrics, WAIT_BUCKETS},
    storage::format_instant,
};

/// Takes or renews `name`'s lease for `holder` until `ttl` from now; true when `holder` has it.
/// An expired lease may be taken by anyone; a live one only renewed by its holder.
pub async fn try_lease(
    db: &Db,
    clock: &SharedClock,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<bool, sqlx::Error> {
    let now = clock.now();
    let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(60));
    let taken = sqlx::query(
        "INSERT INTO kit_job_leases (name, holder, until) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
         WHERE kit_job_leases.until < $4 OR kit_job_leases.holder = excluded.holder",
    )
    .bind(name)
    .bind(holder)
    .bind(format_instant(until))
    .bind(format_instant(now))
    .execute(db.pool())
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// Gives the lease up so another replica may take it at once.
pub async fn release_lease(db: &Db, name: &str, holder: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM kit_job_leases WHERE name = $1 AND holder = $2")
        .bind(name)
        .bind(holder)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Runs `run` every `every` while this process holds the job's lease, until shutdown. Each run
/// is the root span `job <name>` and is counted (with its duration) in `metrics`.
pub fn spawn<F, Fut>(
    db: Db,
    clock: SharedClock,
    metrics: &Metrics,
    name: &'static str,
    every: Duration,
    shutdown: Shutdown,
    mut run: F,
) where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let holder = format!("{}:{}", hostname(), uuid::Uuid::new_v4().simple());
    let runs = metrics.counter("supervision_job_runs_total", "Runs of a periodic job by this replica, by job");
    let durations = metrics.histogram(
        "supervision_job_duration_seconds",
        "How long a periodic job's run took, by job",
        WAIT_BUCKETS,
    );
    let lease_errors = metrics.counter(
        "supervision_job_lease_errors_total",
        "Times a replica could not ask the database for a job's lease, by job",
    );
    tokio::spawn(async move {
        let ttl = every * 3;
        loop {
            match try_lease(&db, &clock, name, &holder, ttl).await {
                Ok(true) => {
                    let span = tracing::info_span!(parent: None, "job", otel.name = %format!("job {name}"), job = name);
                    let started = Instant::now();
                    // The lease is renewed while the run lasts; if it cannot be, another replica
                    // may take the job, so this run stops rather than run twice.
                    let heartbeat = async {
                        loop {
                            tokio::time::sleep(ttl / 3).await;
                            if !matches!(try_lease(&db, &clock, name, &holder, ttl).await, Ok(true)) {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        () = run().instrument(span) => {
                            runs.inc(&[("job", name)]);
                            durations.observe(&[("job", name)], started.elapsed().as_secs_f64());
                        }
                        () = heartbeat => {
                            lease_errors.inc(&[("job", name)]);
                            tracing::error!(job = name, "lost the job lease during a run; the run was stopped");
                        }
                    }
                }
                Ok(false) => {}
                Err(err) => {
                    lease_errors.inc(&[("job", name)]);
                    tracing::warn!(job = name, error = %err, "cannot take the job lease");
                }
            }
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
        let _ = release_lease(&db, name, &holder).await;
    });
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into())
}
