//! Redis locks hold across independent clients and fail cleanly when Redis is gone.

use std::time::Duration;

use supervision_kit::lock::{LockError, Locks};
use testkit::TestRedis;

#[tokio::test]
async fn redis_locks_exclude_another_replica_until_released() {
    let redis = TestRedis::new().await;
    let replica_a = Locks::connect(Some(&redis.url), &redis.prefix).await.unwrap();
    let replica_b = Locks::connect(Some(&redis.url), &redis.prefix).await.unwrap();
    let slot = vec!["expert:exp_1:2026-12-01:AM".to_owned()];
    let ttl = Duration::from_secs(10);

    let held = replica_a.acquire(&slot, ttl, Duration::ZERO).await.unwrap();
    assert!(matches!(replica_b.acquire(&slot, ttl, Duration::from_millis(100)).await, Err(LockError::Busy(_))));
    replica_a.release(held).await.unwrap();
    let taken = replica_b.acquire(&slot, ttl, Duration::ZERO).await.expect("free after release");
    replica_b.release(taken).await.unwrap();
}

#[tokio::test]
async fn an_expired_redis_lock_is_not_freed_by_its_old_holder() {
    let redis = TestRedis::new().await;
    let locks = Locks::connect(Some(&redis.url), &redis.prefix).await.unwrap();
    let key = vec!["k".to_owned()];
    let old = locks.acquire(&key, Duration::from_millis(50), Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let new = locks.acquire(&key, Duration::from_secs(10), Duration::ZERO).await.unwrap();
    locks.release(old).await.unwrap();
    assert!(locks.acquire(&key, Duration::from_secs(10), Duration::ZERO).await.is_err(), "the new holder keeps it");
    locks.release(new).await.unwrap();
}

#[tokio::test]
async fn redis_gone_is_a_clean_error() {
    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let outcome = Locks::connect(Some(&format!("redis://127.0.0.1:{port}")), "x:").await;
    assert!(matches!(outcome, Err(LockError::Unavailable(_))), "{outcome:?}");
}
