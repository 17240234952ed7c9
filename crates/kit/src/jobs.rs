//! Periodic work that must run once across replicas (lifecycle passes, response deadlines,
//! purges): a job runs only while its runner holds the job's lease row in the database.

use std::{future::Future, time::Duration};

use tracing::Instrument;

use crate::{Db, SharedClock, Shutdown, storage::format_instant};

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

/// Runs `run` every `every` while this process holds the job's lease, until shutdown.
pub fn spawn<F, Fut>(db: Db, clock: SharedClock, name: &'static str, every: Duration, shutdown: Shutdown, mut run: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let holder = format!("{}:{}", hostname(), uuid::Uuid::new_v4().simple());
    tokio::spawn(async move {
        let ttl = every * 3;
        loop {
            match try_lease(&db, &clock, name, &holder, ttl).await {
                Ok(true) => run().instrument(tracing::info_span!("job", job = name)).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(job = name, error = %err, "cannot take the job lease"),
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
