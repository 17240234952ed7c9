//! Closed-loop load: `concurrency` workers each call the operation again as soon as it answers,
//! until `requests` calls have been made (or `duration` has passed). Every answer's status is
//! checked against the statuses the scenario expects; any other counts as a failure and is kept
//! by code with its first message.

use std::{
    collections::BTreeMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tonic::{Code, Status};

use crate::hist::Histogram;

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    Requests(u64),
    Duration(Duration),
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub name: String,
    pub hist: Histogram,
    pub ok: u64,
    /// Expected non-OK answers, by code.
    pub expected_errors: BTreeMap<String, u64>,
    /// Unexpected answers, by code, with the first message of each.
    pub failures: BTreeMap<String, (u64, String)>,
    pub elapsed: Duration,
    pub concurrency: usize,
}

impl Outcome {
    pub fn throughput(&self) -> f64 {
        let n = self.hist.count() as f64;
        if self.elapsed.is_zero() { 0.0 } else { n / self.elapsed.as_secs_f64() }
    }

    pub fn failure_count(&self) -> u64 {
        self.failures.values().map(|(n, _)| n).sum()
    }

    pub fn record(&mut self, took: Duration, result: &Result<(), Status>, expected: &[Code]) {
        self.hist.record(took);
        match result {
            Ok(()) => self.ok += 1,
            Err(s) if expected.contains(&s.code()) => {
                *self.expected_errors.entry(format!("{:?}", s.code())).or_default() += 1;
            }
            Err(s) => {
                let entry =
                    self.failures.entry(format!("{:?}", s.code())).or_insert_with(|| (0, s.message().to_owned()));
                entry.0 += 1;
            }
        }
    }

    /// Adds another run of the same scenario (a later slice of it): its calls, answers and time.
    pub fn absorb(&mut self, other: Outcome) {
        if self.name.is_empty() {
            self.name.clone_from(&other.name);
            self.concurrency = other.concurrency;
        }
        self.elapsed += other.elapsed;
        self.merge(other);
    }

    fn merge(&mut self, other: Outcome) {
        self.hist.merge(&other.hist);
        self.ok += other.ok;
        for (k, v) in other.expected_errors {
            *self.expected_errors.entry(k).or_default() += v;
        }
        for (k, (n, m)) in other.failures {
            self.failures.entry(k).or_insert((0, m)).0 += n;
        }
    }
}

/// Runs `op(worker, i)` from `concurrency` workers; `i` counts calls across workers from 0.
/// `expected` are the non-OK codes the scenario allows.
pub async fn run<F, Fut>(name: &str, concurrency: usize, stop: Stop, expected: &[Code], op: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = match stop {
        Stop::Duration(d) => Some(started + d),
        Stop::Requests(_) => None,
    };
    let limit = match stop {
        Stop::Requests(n) => n,
        Stop::Duration(_) => u64::MAX,
    };
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (op, next, expected) = (op.clone(), next.clone(), expected.to_vec());
        workers.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                let result = op(w, i).await;
                outcome.record(t.elapsed(), &result, &expected);
            }
            outcome
        }));
    }
    let mut total = Outcome { name: name.to_owned(), concurrency, ..Default::default() };
    for w in workers {
        match w.await {
            Ok(o) => total.merge(o),
            Err(e) => {
                total.failures.entry("PANIC".into()).or_insert((0, e.to_string())).0 += 1;
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}
