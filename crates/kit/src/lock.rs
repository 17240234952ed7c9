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

#[derive(Clone)]
pub enum Locks {
    Redis { conn: ConnectionManager, prefix: String },
    InProcess(Arc<Mutex<HashMap<String, (String, Instant)>>>),
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Locks::Redis { prefix, .. } => write!(f, "Locks::Redis({prefix})"),
            Locks::InProcess(_) => f.write_str("Locks::InProcess"),
        }
    }
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
        Ok(Self::Redis { conn, prefix: prefix.to_owned() })
    }

    pub fn in_process() -> Self {
        Self::InProcess(Arc::default())
    }

    /// Takes every key for `ttl`, retrying busy keys until `wait` has passed.
    pub async fn acquire(&self, keys: &[String], ttl: Duration, wait: Duration) -> Result<LockGuard, LockError> {
        let mut sorted = keys.to_vec();
        sorted.sort();
        sorted.dedup();
        let token = format!("{:032x}", rand::random::<u128>());
        let deadline = Instant::now() + wait;
        loop {
            match self.try_all(&sorted, &token, ttl).await {
                Ok(()) => return Ok(LockGuard { keys: sorted, token }),
                Err(LockError::Busy(key)) if Instant::now() < deadline => {
                    tracing::debug!(key, "lock busy; retrying");
                    tokio::time::sleep(Duration::from_millis(20 + u64::from(rand::random::<u8>() % 30))).await;
                }
                Err(err) => return Err(err),
            }
        }
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
        match self {
            Locks::Redis { conn, prefix } => {
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
            Locks::InProcess(table) => {
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
        match self {
            Locks::Redis { conn, prefix } => {
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
            Locks::InProcess(table) => {
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
