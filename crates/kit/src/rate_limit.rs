//! Per-caller rate limits: a token bucket per token subject, held in process, answering
//! `RESOURCE_EXHAUSTED` (with a `RetryInfo` detail) once a caller has spent its burst faster than
//! the bucket refills.
//!
//! The layer sits inside the auth layer, so it sees the verified [`Caller`]. SERVICE callers
//! (other services and their outbox relays) are never limited: throttling them would only delay
//! work the system already accepted. Health and reflection carry no caller and are never
//! limited. Each replica keeps its own buckets, so the limit a caller meets is per replica.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use clap::Args;
use futures::future::BoxFuture;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::{Caller, Role, redact::redact};

/// How many callers' buckets are kept before full (idle) ones are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The longest wait a refusal reports (a tiny configured rate would otherwise overflow).
const MAX_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// How fast each caller may call (`--rate-limit-per-second`, `--rate-limit-burst`).
#[derive(Debug, Clone, Args)]
pub struct RateLimitArgs {
    /// Calls per second each user (token subject) may make on average, per replica; 0 turns
    /// the limit off. SERVICE tokens, health and reflection are never limited.
    #[arg(long, env = "RATE_LIMIT_PER_SECOND", default_value_t = 20.0)]
    pub rate_limit_per_second: f64,
    /// Calls a user may make at once before the average applies.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 100)]
    pub rate_limit_burst: u32,
}

impl RateLimitArgs {
    /// No limit at all (tests that drive services hard as one user).
    pub fn off() -> Self {
        Self { rate_limit_per_second: 0.0, rate_limit_burst: 0 }
    }

    /// The layer these settings describe.
    pub fn layer(&self) -> RateLimitLayer {
        let on =
            self.rate_limit_per_second.is_finite() && self.rate_limit_per_second > 0.0 && self.rate_limit_burst > 0;
        RateLimitLayer {
            limiter: on.then(|| {
                Arc::new(Limiter {
                    per_second: self.rate_limit_per_second,
                    burst: f64::from(self.rate_limit_burst),
                    buckets: Mutex::new(HashMap::new()),
                })
            }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct Limiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// Takes one token from `subject`'s bucket at `now`; when there is none, how long until
    /// there will be.
    fn take(&self, subject: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(subject.to_owned()).or_insert(Bucket { tokens: self.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // A very small configured rate makes the wait overflow a Duration: cap it at a day.
            let wait = (1.0 - bucket.tokens) / self.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(MAX_WAIT).min(MAX_WAIT))
        }
    }
}

/// The tower layer; a no-op when the limit is off.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    limiter: Option<Arc<Limiter>>,
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService { inner, limiter: self.limiter.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Option<Arc<Limiter>>,
}

impl<S, B> tower::Service<http::Request<B>> for RateLimitService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (Some(limiter), Some(caller)) = (&self.limiter, request.extensions().get::<Caller>()) else {
            // Off, or an open path (health, reflection) that carries no caller.
            return Box::pin(self.inner.call(request));
        };
        if caller.role == Role::Service {
            return Box::pin(self.inner.call(request));
        }
        match limiter.take(&caller.subject, Instant::now()) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(wait) => {
                tracing::info!(
                    method = %redact(request.uri().path()), subject = %redact(&caller.subject),
                    retry_after_ms = wait.as_millis(), "rate limit reached"
                );
                let status = Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    format!("rate limit reached: retry in {} ms", wait.as_millis().max(1)),
                    ErrorDetails::with_retry_info(Some(wait)),
                );
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32) -> Arc<Limiter> {
        RateLimitArgs { rate_limit_per_second: per_second, rate_limit_burst: burst }.layer().limiter.unwrap()
    }

    #[test]
    fn a_caller_spends_its_burst_then_waits_for_the_refill() {
        let limiter = limiter(2.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take("a", start).is_ok());
        }
        let wait = limiter.take("a", start).unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(limiter.take("b", start).is_ok(), "another caller has its own bucket");
        assert!(limiter.take("a", start + Duration::from_millis(500)).is_ok(), "refilled by one");
        assert!(limiter.take("a", start + Duration::from_millis(500)).is_err());
        // A long pause refills up to the burst, no more.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take("a", later).is_ok());
        }
        assert!(limiter.take("a", later).is_err());
    }

    #[test]
    fn zero_turns_the_limit_off() {
        assert!(RateLimitArgs::off().layer().limiter.is_none());
        assert!(RateLimitArgs { rate_limit_per_second: 5.0, rate_limit_burst: 0 }.layer().limiter.is_none());
        assert!(RateLimitArgs { rate_limit_per_second: f64::NAN, rate_limit_burst: 5 }.layer().limiter.is_none());
    }

    #[test]
    fn a_tiny_rate_reports_a_capped_wait_rather_than_panicking() {
        let start = Instant::now();
        for rate in [f64::MIN_POSITIVE, 1e-300, 1e-12] {
            let tiny = limiter(rate, 1);
            assert!(tiny.take("a", start).is_ok());
            assert_eq!(tiny.take("a", start).unwrap_err(), MAX_WAIT, "rate {rate}");
        }
    }

    #[test]
    fn idle_buckets_are_pruned() {
        let limiter = limiter(1.0, 1);
        let start = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            limiter.take(&format!("user-{i}"), start).unwrap();
        }
        limiter.take("last", start + Duration::from_secs(5)).unwrap();
        assert_eq!(limiter.buckets.lock().unwrap().len(), 1, "refilled buckets are dropped");
    }
}
