//! Calls from one service to another (issue 11): every call has a deadline, and only idempotent
//! calls are retried, with capped exponential backoff and full jitter.
//!
//! A deadline is set twice: as `grpc-timeout` on the request ([`tonic::Request::set_timeout`]),
//! so the callee stops working on an answer nobody waits for, and around the whole call with
//! [`deadline`], because tonic's own timeout covers only the answer's headers: a callee that
//! sends them and then stalls a stream (or a unary body) would otherwise hold the caller forever.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tonic::Status;

/// The deadline of one unary call to another service, unless configured
/// (`--peer-timeout-seconds`).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The deadline of a whole streamed answer, every message included, unless configured
/// (`--peer-stream-timeout-seconds`).
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long opening a connection to another service may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The deadlines of calls to other services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTimeouts {
    /// One unary call.
    pub call: Duration,
    /// One streamed answer, from the request to the last message.
    pub stream: Duration,
}

impl Default for PeerTimeouts {
    fn default() -> Self {
        Self { call: DEFAULT_CALL_TIMEOUT, stream: DEFAULT_STREAM_TIMEOUT }
    }
}

impl PeerTimeouts {
    /// The longest any call may take: the channel-wide ceiling ([`tonic::transport::Endpoint::timeout`]).
    pub fn longest(&self) -> Duration {
        self.call.max(self.stream)
    }
}

/// Runs `call` to its end (headers, every message, trailers) within `limit`; past it, the call is
/// dropped (which cancels it on the wire) and the answer is DEADLINE_EXCEEDED naming `what`.
pub async fn deadline<T, F>(limit: Duration, what: &str, call: F) -> Result<T, Status>
where
    F: Future<Output = Result<T, Status>>,
{
    match tokio::time::timeout(limit, call).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Status::deadline_exceeded(format!("{what} did not answer within {} ms", limit.as_millis()))),
    }
}

/// Capped exponential backoff with full jitter: before retry `n` (1 for the first), wait a
/// uniformly random time in `[0, min(cap, base x 2^(n-1))]`, so callers that failed together do
/// not come back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The longest wait before retry `attempt` (attempts below 1 count as 1).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.clamp(1, 32) - 1;
        self.base.saturating_mul(2u32.saturating_pow(exponent)).min(self.cap)
    }

    /// A random wait before retry `attempt`, at most [`Self::ceiling`].
    pub fn delay(&self, attempt: u32) -> Duration {
        self.ceiling(attempt).mul_f64(rand::random_range(0.0..=1.0))
    }
}

/// When each of many keyed retries (rows a background pass keeps trying) is next due, in memory:
/// a key that failed waits [`Backoff::delay`] of its failures so far before it is tried again.
/// Use it only for calls that are idempotent (reads, or writes carrying a `request_id` the
/// callee replays).
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    backoff: Backoff,
    waiting: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

impl RetrySchedule {
    pub fn new(backoff: Backoff) -> Self {
        Self { backoff, waiting: Arc::default() }
    }

    /// Whether `key` may be tried now: never failed, or its wait is over.
    pub fn is_due(&self, key: &str) -> bool {
        let waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.get(key).is_none_or(|(_, at)| Instant::now() >= *at)
    }

    /// Records a failure of `key`; answers how long it now waits.
    pub fn failed(&self, key: &str) -> Duration {
        let mut waiting = self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = waiting.entry(key.to_owned()).or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        let wait = self.backoff.delay(entry.0);
        entry.1 = Instant::now() + wait;
        wait
    }

    /// Forgets `key` (it succeeded, or needs no more tries).
    pub fn forget(&self, key: &str) {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(key);
    }

    /// How many keys are waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        assert_eq!(BACKOFF.ceiling(0), Duration::from_secs(1));
        assert_eq!(BACKOFF.ceiling(1), Duration::from_secs(1));
        assert_eq!(BACKOFF.ceiling(2), Duration::from_secs(2));
        assert_eq!(BACKOFF.ceiling(5), Duration::from_secs(16));
        assert_eq!(BACKOFF.ceiling(9), Duration::from_secs(256));
        assert_eq!(BACKOFF.ceiling(10), Duration::from_secs(300));
        assert_eq!(BACKOFF.ceiling(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn delays_are_bounded_jittered_and_grow() {
        let samples = |attempt: u32| (0..400).map(|_| BACKOFF.delay(attempt)).collect::<Vec<_>>();
        let mean = |s: &[Duration]| s.iter().sum::<Duration>() / u32::try_from(s.len()).unwrap();
        let mut previous_mean = Duration::ZERO;
        for attempt in 1..=12 {
            let s = samples(attempt);
            // Bounded: never past the ceiling, so never past the cap.
            assert!(s.iter().all(|d| *d <= BACKOFF.ceiling(attempt) && *d <= BACKOFF.cap), "attempt {attempt}");
            // Jittered: 400 draws are not one value, and they spread over the range.
            let (min, max) = (s.iter().min().unwrap(), s.iter().max().unwrap());
            assert!(*max - *min > BACKOFF.ceiling(attempt) / 2, "attempt {attempt}: {min:?}..{max:?}");
            // Grows (on average) until the cap: the mean is half the ceiling, give or take.
            let m = mean(&s);
            let half = BACKOFF.ceiling(attempt) / 2;
            assert!(m > half.mul_f64(0.8) && m < half.mul_f64(1.2), "attempt {attempt}: mean {m:?}");
            if BACKOFF.ceiling(attempt) < BACKOFF.cap {
                assert!(m > previous_mean, "attempt {attempt}: {m:?} after {previous_mean:?}");
            }
            previous_mean = m;
        }
    }

    #[test]
    fn a_failed_key_waits_and_a_forgotten_one_is_due_again() {
        let schedule = RetrySchedule::new(Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600)));
        assert!(schedule.is_due("a"));
        // A zero draw is possible but vanishingly rare; retry the failure until it is not.
        let mut wait = schedule.failed("a");
        while wait.is_zero() {
            wait = schedule.failed("a");
        }
        assert!(!schedule.is_due("a"));
        assert!(schedule.is_due("b"), "keys wait on their own");
        assert_eq!(schedule.len(), 1);
        schedule.forget("a");
        assert!(schedule.is_due("a") && schedule.is_empty());
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_deadline_exceeded() {
        let stalled = deadline(Duration::from_millis(50), "the stall", std::future::pending::<Result<(), Status>>());
        let status = stalled.await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(status.message().contains("the stall"), "{}", status.message());
        let quick = deadline(Duration::from_secs(5), "quick", async { Ok::<_, Status>(7) }).await;
        assert_eq!(quick.unwrap(), 7);
    }
}
