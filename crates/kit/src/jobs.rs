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

/// How long run records are kept in `kit_job_runs`.
const RUN_RECORDS_KEPT: chrono::Duration = chrono::Duration::days(30);

/// Jobs that tick at least this far apart are periodic passes (lifecycle, sweeps, purges): each
/// run is recorded and a period's pass runs once, even across a replica's restart. Faster jobs are
/// pollers (notification delivery, confirmations): running them again early is their purpose, and
/// a row per poll would only be noise.
pub const RECORDED_FROM: Duration = Duration::from_secs(60);

/// Starts a run of `name` by `holder` if the job's last completed run started at least `every`
/// ago: records the start (pruning records older than [`RUN_RECORDS_KEPT`]) and answers the run's
/// id, or `None` when this period's pass is already done. Call it only while holding the lease.
pub async fn record_run_start(
    db: &Db,
    clock: &SharedClock,
    name: &str,
    holder: &str,
    every: Duration,
) -> Result<Option<String>, sqlx::Error> {
    let now = clock.now();
    let period = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::hours(1));
    let last: Option<String> =
        sqlx::query_scalar("SELECT MAX(started) FROM kit_job_runs WHERE name = $1 AND outcome = 'done'")
            .bind(name)
            .fetch_one(db.pool())
            .await?;
    if let Some(last) = last.as_deref().and_then(|t| crate::storage::parse_instant(t).ok())
        && now < last + period
    {
        return Ok(None);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    sqlx::query("INSERT INTO kit_job_runs (id, name, holder, started) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(name)
        .bind(holder)
        .bind(format_instant(now))
        .execute(db.pool())
        .await?;
    sqlx::query("DELETE FROM kit_job_runs WHERE name = $1 AND started < $2")
        .bind(name)
        .bind(format_instant(now - RUN_RECORDS_KEPT))
        .execute(db.pool())
        .await?;
    Ok(Some(id))
}

/// Records how the run `id` ended (`done` or `lost-lease`).
pub async fn record_run_end(db: &Db, clock: &SharedClock, id: &str, outcome: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE kit_job_runs SET finished = $1, outcome = $2 WHERE id = $3")
        .bind(format_instant(clock.now()))
        .bind(outcome)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Runs `run` every `every` while this process holds the job's lease, until shutdown. Each run
/// is the root span `job <name>` and is counted (with its duration) in `metrics`. A periodic pass
/// (`every` at least [`RECORDED_FROM`]) leaves a row in `kit_job_runs` (holder, start, end,
/// outcome) and is skipped when the period's pass is already done, so a replica restarted
/// mid-period does not run it again; a run whose start cannot be recorded does not start.
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
                    let record = if every >= RECORDED_FROM {
                        match record_run_start(&db, &clock, name, &holder, every).await {
                            Ok(Some(id)) => Some(id),
                            // This period's pass is done (by this replica before a restart, or
                            // by another before it gave the lease up).
                            Ok(None) => None,
                            Err(err) => {
                                lease_errors.inc(&[("job", name)]);
                                tracing::warn!(job = name, error = %err, "cannot record the job's run; it waits for the next tick");
                                None
                            }
                        }
                    } else {
                        Some(String::new())
                    };
                    let Some(record) = record else {
                        tokio::select! {
                            () = shutdown.wait() => break,
                            () = tokio::time::sleep(every) => {}
                        }
                        continue;
                    };
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
                    let outcome = tokio::select! {
                        () = run().instrument(span) => {
                            runs.inc(&[("job", name)]);
                            durations.observe(&[("job", name)], started.elapsed().as_secs_f64());
                            "done"
                        }
                        () = heartbeat => {
                            lease_errors.inc(&[("job", name)]);
                            tracing::error!(job = name, "lost the job lease during a run; the run was stopped");
                            "lost-lease"
                        }
                    };
                    if record.is_empty() {
                        // A poller: not recorded.
                    } else if let Err(err) = record_run_end(&db, &clock, &record, outcome).await {
                        tracing::warn!(job = name, error = %err, "cannot record the end of the job's run");
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
