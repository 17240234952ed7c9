//! Short-lived locks that keep replicas from working on the same keys at once (for example an
//! expert's half-day while a draw fills a team).
//!
//! Locks only reduce contention: the database, with its unique constraints and transactions,
//! decides. Keys are taken in sorted order (so two holders of overlapping sets cannot deadlock),
//! each with a random token and an expiry, and released by compare-and-delete so a holder whose
//! lock expired never frees someone else's. With `REDIS_URL` the locks live in Redis and hold
//! across replicas; without it an in-process table serves a single replica.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use redis::{AsyncCommands, aio::ConnectionManager};
use tracing::Instrument;

use crate::metrics::{Counter, Histogram, Metrics, WAIT_BUCKETS};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {0} is held by someone else")]
    Busy(String),
    #[error("the lock store is unavailable: {0}")]
    Unavailable(String),
}

/// Deletes a key only if it still holds our token.
const RELEASE_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// Locks in Redis or in this process, with optional metrics.
#[derive(Clone)]
pub struct Locks {
    store: Store,
    instruments: Option<Arc<Instruments>>,
}

#[derive(Clone)]
enum Store {
    Redis { conn: ConnectionManager, prefix: String },
    InProcess(Arc<Mutex<HashMap<String, (String, Instant)>>>),
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.store {
            Store::Redis { prefix, .. } => write!(f, "Locks::Redis({prefix})"),
            Store::InProcess(_) => f.write_str("Locks::InProcess"),
        }
    }
}

/// What the metrics port shows about locks.
#[derive(Debug)]
struct Instruments {
    acquired: Counter,
    waits: Counter,
    failures: Counter,
    wait_seconds: Histogram,
}

/// Held locks; release them with [`Locks::release`] (they also expire on their own).
#[derive(Debug)]
#[must_use = "release the locks when done"]
pub struct LockGuard {
    keys: Vec<String>,
    token: String,
}

impl Locks {
    /// Redis locks under `prefix` when `redis_url` is given, in-process locks otherwise.
    pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<Self, LockError> {
        let Some(url) = redis_url.filter(|u| !u.is_empty()) else {
            return Ok(Self::in_process());
        };
        let client = redis::Client::open(url).map_err(|e| LockError::Unavailable(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| LockError::Unavailable(e.to_string()))?;
        Ok(Self { store: Store::Redis { conn, prefix: prefix.to_owned() }, instruments: None })
    }

    pub fn in_process() -> Self {
        Self { store: Store::InProcess(Arc::default()), instruments: None }
    }

    /// Counts acquisitions, waits and failures, and times acquiring, into `metrics`.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.instruments = Some(Arc::new(Instruments {
            acquired: metrics.counter("supervision_lock_acquired_total", "Lock sets acquired"),
            waits: metrics.counter(
                "supervision_lock_waits_total",
                "Times an acquisition found a key held by someone else and waited to retry",
            ),
            failures: metrics.counter(
                "supervision_lock_failures_total",
                "Lock sets not acquired, by reason (busy: still held when the wait ran out; unavailable: the lock store failed)",
            ),
            wait_seconds: metrics.histogram(
                "supervision_lock_wait_seconds",
                "Time spent acquiring a lock set, acquired or not",
                WAIT_BUCKETS,
            ),
        }));
        self
    }

    /// Takes every key for `ttl`, retrying busy keys until `wait` has passed.
    pub async fn acquire(&self, keys: &[String], ttl: Duration, wait: Duration) -> Result<LockGuard, LockError> {
        // Keys name records (an expert's half-day); the span carries only their number.
        let span = tracing::info_span!("lock.acquire", keys = keys.len(), waits = tracing::field::Empty);
        self.acquire_inner(keys, ttl, wait).instrument(span).await
    }

    async fn acquire_inner(&self, keys: &[String], ttl: Duration, wait: Duration) -> Result<LockGuard, LockError> {
        let mut sorted = keys.to_vec();
        sorted.sort();
        sorted.dedup();
        let token = format!("{:032x}", rand::random::<u128>());
        let started = Instant::now();
        let deadline = started + wait;
        let mut waits: u64 = 0;
        let outcome = loop {
            match self.try_all(&sorted, &token, ttl).await {
                Ok(()) => break Ok(LockGuard { keys: sorted, token }),
                Err(LockError::Busy(_)) if Instant::now() < deadline => {
                    waits += 1;
                    if let Some(instruments) = &self.instruments {
                        instruments.waits.inc(&[]);
                    }
                    tracing::debug!(waits, "lock busy; retrying");
                    tokio::time::sleep(Duration::from_millis(20 + u64::from(rand::random::<u8>() % 30))).await;
                }
                Err(err) => break Err(err),
            }
        };
        tracing::Span::current().record("waits", waits);
        if let Some(instruments) = &self.instruments {
            instruments.wait_seconds.observe(&[], started.elapsed().as_secs_f64());
            match &outcome {
                Ok(_) => instruments.acquired.inc(&[]),
                Err(LockError::Busy(_)) => instruments.failures.inc(&[("reason", "busy")]),
                Err(LockError::Unavailable(_)) => instruments.failures.inc(&[("reason", "unavailable")]),
            }
        }
        outcome
    }

    /// Frees the keys that still carry the guard's token.
    pub async fn release(&self, guard: LockGuard) -> Result<(), LockError> {
        self.release_keys(&guard.keys, &guard.token).await
    }

    async fn try_all(&self, keys: &[String], token: &str, ttl: Duration) -> Result<(), LockError> {
        for (i, key) in keys.iter().enumerate() {
            match self.try_one(key, token, ttl).await {
                Ok(true) => {}
                outcome => {
                    // Give back what this attempt took before reporting.
                    let _ = self.release_keys(&keys[..i], token).await;
                    return match outcome {
                        Ok(_) => Err(LockError::Busy(key.clone())),
                        Err(e) => Err(e),
                    };
                }
            }
        }
        Ok(())
    }

    async fn try_one(&self, key: &str, token: &str, ttl: Duration) -> Result<bool, LockError> {
        match &self.store {
            Store::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let options = redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)));
                let set: Option<String> = conn
                    .set_options(format!("{prefix}{key}"), token, options)
                    .await
                    .map_err(|e| LockError::Unavailable(e.to_string()))?;
                Ok(set.is_some())
            }
            Store::InProcess(table) => {
                let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                match table.get(key) {
                    Some((_, expires)) if *expires > now => Ok(false),
                    _ => {
                        table.insert(key.to_owned(), (token.to_owned(), now + ttl));
                        Ok(true)
                    }
                }
            }
        }
    }

    async fn release_keys(&self, keys: &[String], token: &str) -> Result<(), LockError> {
        match &self.store {
            Store::Redis { conn, prefix } => {
                let mut conn = conn.clone();
                let script = redis::Script::new(RELEASE_SCRIPT);
                for key in keys {
                    let _: i64 = script
                        .key(format!("{prefix}{key}"))
                        .arg(token)
                        .invoke_async(&mut conn)
                        .await
                        .map_err(|e| LockError::Unavailable(e.to_string()))?;
                }
                Ok(())
            }
            Store::InProcess(table) => {
                let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
                for key in keys {
                    if table.get(key).is_some_and(|(t, _)| t == token) {
                        table.remove(key);
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn overlapping_sets_exclude_each_other_until_released() {
        let locks = Locks::in_process();
        let ttl = Duration::from_secs(5);
        let first = locks.acquire(&keys(&["b", "a"]), ttl, Duration::ZERO).await.unwrap();
        assert!(
            matches!(locks.acquire(&keys(&["c", "b"]), ttl, Duration::ZERO).await, Err(LockError::Busy(k)) if k == "b")
        );
        // The failed attempt gave back "c".
        let c = locks.acquire(&keys(&["c"]), ttl, Duration::ZERO).await.unwrap();
        locks.release(first).await.unwrap();
        locks.release(c).await.unwrap();
        let again = locks.acquire(&keys(&["c", "b"]), ttl, Duration::ZERO).await.unwrap();
        locks.release(again).await.unwrap();
    }

    #[tokio::test]
    async fn waits_failures_and_acquisitions_are_counted() {
        let metrics = Metrics::new();
        let locks = Locks::in_process().with_metrics(&metrics);
        let ttl = Duration::from_secs(5);
        let held = locks.acquire(&keys(&["a"]), ttl, Duration::ZERO).await.unwrap();
        assert!(locks.acquire(&keys(&["a"]), ttl, Duration::from_millis(60)).await.is_err());
        locks.release(held).await.unwrap();
        assert_eq!(metrics.counter("supervision_lock_acquired_total", "").get(&[]), 1.0);
        assert_eq!(metrics.counter("supervision_lock_failures_total", "").get(&[("reason", "busy")]), 1.0);
        assert!(metrics.counter("supervision_lock_waits_total", "").get(&[]) >= 1.0);
        assert_eq!(metrics.histogram("supervision_lock_wait_seconds", "", WAIT_BUCKETS).count(&[]), 2);
    }

    #[tokio::test]
    async fn an_expired_lock_can_be_taken_and_the_old_holder_cannot_free_it() {
        let locks = Locks::in_process();
        let old = locks.acquire(&keys(&["k"]), Duration::from_millis(10), Duration::ZERO).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let new = locks.acquire(&keys(&["k"]), Duration::from_secs(5), Duration::ZERO).await.unwrap();
        locks.release(old).await.unwrap();
        assert!(
            locks.acquire(&keys(&["k"]), Duration::from_secs(5), Duration::ZERO).await.is_err(),
            "still held by new"
        );
        locks.release(new).await.unwrap();
    }
}
