//! The draw's series on the metrics port (`docs/operations.md`, "Draws"): draws by outcome, the
//! sizes of the pools and candidate lists, exclusions by first reason, how long executions take
//! and where a draw's time goes, by stage (`supervision_draw_stage_seconds`).
//!
//! A non-random designation (`designate.rs`, D15) is not a draw and records nothing here, so
//! every series counts random draws only.
//!
//! The use cases in `draws.rs` record through the functions here with the [`Db`] they act on;
//! `App::build` registers the service's [`Metrics`] for its connection pool. Keying by pool keeps
//! several dispatch instances in one process apart (tests, replicas of one database among them);
//! a use case whose pool has no registered metrics (a unit test) records nothing.

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Instant,
};

use sqlx::any::AnyConnectOptions;

use supervision_kit::{
    Db,
    metrics::{Counter, Histogram, LATENCY_BUCKETS, Metrics},
};

use crate::domain::{Draw, draw::Exclusion, draw::exclusion_counts};

/// Buckets for pool and candidate-list sizes (experts).
pub const SIZE_BUCKETS: &[f64] = &[0.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// The outcomes of `supervision_draws_total`.
pub const OUTCOMES: &[&str] = &[PREPARED, POOL_TOO_SMALL, DRAWN, TEAM_SHORT];
/// A draw prepared: its list frozen and its seed committed.
pub const PREPARED: &str = "prepared";
/// PrepareDraw refused: fewer eligible experts than the team and its backups need.
pub const POOL_TOO_SMALL: &str = "pool_too_small";
/// A draw executed: its primaries and backups placed and booked.
pub const DRAWN: &str = "drawn";
/// ExecuteDraw refused: the walk could not fill the primaries with the facts as they now stand.
pub const TEAM_SHORT: &str = "team_short";

/// The stages of `supervision_draw_stage_seconds`, in a draw's order.
pub const STAGES: &[&str] = &[
    STAGE_POOL_STREAM,
    STAGE_EXCLUSIONS,
    STAGE_PREPARE_RECORD,
    STAGE_RANKING,
    STAGE_RECHECK,
    STAGE_FENCE,
    STAGE_EXECUTE_RECORD,
];
/// PrepareDraw: the whole pool streamed from the registry.
pub const STAGE_POOL_STREAM: &str = "pool_stream";
/// PrepareDraw: the bookings and soft facts read, D14's exclusions and the frozen list.
pub const STAGE_EXCLUSIONS: &str = "exclusions";
/// PrepareDraw: the draw and its audit entry written.
pub const STAGE_PREPARE_RECORD: &str = "prepare_record";
/// ExecuteDraw: the draw and its untrained list read, and its order ranked.
pub const STAGE_RANKING: &str = "ranking";
/// ExecuteDraw: the registry asked about a window of the order's head (once per window).
pub const STAGE_RECHECK: &str = "recheck";
/// ExecuteDraw: the walk planned outside the transaction and the fence's locks taken.
pub const STAGE_FENCE: &str = "fence";
/// ExecuteDraw: the walk, assignments, bookings, record and audit entry in one transaction,
/// committed.
pub const STAGE_EXECUTE_RECORD: &str = "execute_record";

/// The draw's instruments in one service's [`Metrics`].
#[derive(Debug, Clone)]
struct DrawMetrics {
    draws: Counter,
    pool: Histogram,
    candidates: Histogram,
    exclusions: Counter,
    duration: Histogram,
    stages: Histogram,
}

impl DrawMetrics {
    fn new(metrics: &Metrics) -> Self {
        let draws = metrics
            .counter("supervision_draws_total", "Draw steps by outcome: prepared, pool_too_small, drawn, team_short");
        // Present at zero from the start, so rates and alerts work before the first draw.
        for outcome in OUTCOMES {
            draws.add(&[("outcome", outcome)], 0.0);
        }
        Self {
            draws,
            pool: metrics.histogram(
                "supervision_draw_pool_size",
                "Experts the registry streamed for a draw's pool",
                SIZE_BUCKETS,
            ),
            candidates: metrics.histogram(
                "supervision_draw_candidates",
                "Eligible experts left in a draw's frozen list after the exclusions",
                SIZE_BUCKETS,
            ),
            exclusions: metrics.counter(
                "supervision_draw_exclusions_total",
                "Experts excluded from draws' pools, by their first reason",
            ),
            duration: metrics.histogram(
                "supervision_draw_execution_seconds",
                "Time to execute a witnessed draw: the registry asked again, the fence, the walk and the records",
                LATENCY_BUCKETS,
            ),
            stages: metrics.histogram(
                "supervision_draw_stage_seconds",
                "Time a draw spends in each stage of PrepareDraw and ExecuteDraw, by stage",
                LATENCY_BUCKETS,
            ),
        }
    }

    fn screened(&self, pool: usize, candidates: usize, excluded: &[Exclusion]) {
        self.pool.observe(&[], pool as f64);
        self.candidates.observe(&[], candidates as f64);
        for (reason, first, _) in exclusion_counts(excluded) {
            if first > 0 {
                self.exclusions.add(&[("reason", reason.code())], first as f64);
            }
        }
    }
}

/// A pool's identity: the options every clone of the pool shares (held, so never reused).
type PoolKey = Arc<AnyConnectOptions>;

/// The registered instruments, by pool.
fn registered() -> &'static Mutex<Vec<(PoolKey, DrawMetrics)>> {
    static REGISTERED: OnceLock<Mutex<Vec<(PoolKey, DrawMetrics)>>> = OnceLock::new();
    REGISTERED.get_or_init(Mutex::default)
}

fn of(db: &Db) -> Option<DrawMetrics> {
    let key = db.pool().connect_options();
    let registered = registered().lock().unwrap_or_else(|e| e.into_inner());
    registered.iter().find(|(k, _)| Arc::ptr_eq(k, &key)).map(|(_, m)| m.clone())
}

/// Records the draws of the service on `db`'s pool into `metrics` (a later call for the same
/// pool replaces the earlier one).
pub fn register(db: &Db, metrics: &Metrics) {
    let (key, instruments) = (db.pool().connect_options(), DrawMetrics::new(metrics));
    let mut registered = registered().lock().unwrap_or_else(|e| e.into_inner());
    registered.retain(|(k, _)| !Arc::ptr_eq(k, &key));
    registered.push((key, instruments));
}

/// A draw prepared from a pool of `draw.pool_count` experts.
pub fn prepared(db: &Db, draw: &Draw) {
    if let Some(m) = of(db) {
        m.draws.inc(&[("outcome", PREPARED)]);
        m.screened(draw.pool_count, draw.candidate_count, &draw.exclusions);
    }
}

/// A prepare refused because only `eligible` of the `pool` experts are left after `excluded`.
pub fn pool_too_small(db: &Db, pool: usize, eligible: usize, excluded: &[Exclusion]) {
    if let Some(m) = of(db) {
        m.draws.inc(&[("outcome", POOL_TOO_SMALL)]);
        m.screened(pool, eligible, excluded);
    }
}

/// A draw executed, its execution started at `started`.
pub fn drawn(db: &Db, started: Instant) {
    if let Some(m) = of(db) {
        m.draws.inc(&[("outcome", DRAWN)]);
        m.duration.observe(&[], started.elapsed().as_secs_f64());
    }
}

/// One stage of a draw (one of [`STAGES`]), begun at `started`, is over.
pub fn stage(db: &Db, stage: &'static str, started: Instant) {
    if let Some(m) = of(db) {
        m.stages.observe(&[("stage", stage)], started.elapsed().as_secs_f64());
    }
}

/// An execution refused because the walk could not fill the primaries.
pub fn team_short(db: &Db) {
    if let Some(m) = of(db) {
        m.draws.inc(&[("outcome", TEAM_SHORT)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ExclusionReason;

    #[tokio::test]
    async fn draws_are_recorded_into_the_metrics_of_their_pool_only() {
        let dir = tempfile_dir();
        let connect = |name: &str| {
            let url = format!("sqlite://{}/{name}.db", dir.display());
            async move { Db::connect(&url, &crate::app::MIGRATIONS).await.unwrap() }
        };
        // `theirs` is a second pool on the same database, as a second replica has.
        let (ours, theirs, unregistered) = (connect("a").await, connect("a").await, connect("c").await);
        let (ours_metrics, their_metrics) = (Metrics::new(), Metrics::new());
        register(&ours, &ours_metrics);
        register(&theirs, &their_metrics);

        let excluded = vec![
            Exclusion {
                expert_id: "e1".into(),
                reasons: vec![ExclusionReason::Conflicted, ExclusionReason::NotActive],
            },
            Exclusion { expert_id: "e2".into(), reasons: vec![ExclusionReason::Conflicted] },
            Exclusion { expert_id: "e3".into(), reasons: vec![ExclusionReason::AlreadyBooked] },
        ];
        pool_too_small(&ours, 7, 4, &excluded);
        drawn(&ours, Instant::now());
        stage(&ours, STAGE_RECHECK, Instant::now());
        team_short(&unregistered);

        let body = ours_metrics.render().await;
        for line in [
            "supervision_draws_total{outcome=\"pool_too_small\"} 1",
            "supervision_draws_total{outcome=\"drawn\"} 1",
            "supervision_draws_total{outcome=\"prepared\"} 0",
            "supervision_draw_exclusions_total{reason=\"CONFLICTED\"} 2",
            "supervision_draw_exclusions_total{reason=\"ALREADY_BOOKED\"} 1",
            "supervision_draw_pool_size_bucket{le=\"5\"} 0",
            "supervision_draw_pool_size_bucket{le=\"10\"} 1",
            "supervision_draw_pool_size_sum 7",
            "supervision_draw_candidates_sum 4",
            "supervision_draw_execution_seconds_count 1",
            "supervision_draw_stage_seconds_count{stage=\"recheck\"} 1",
        ] {
            assert!(body.lines().any(|l| l == line), "{line:?} missing from\n{body}");
        }
        assert!(!body.contains("NOT_ACTIVE"), "only first reasons count:\n{body}");
        let theirs_body = their_metrics.render().await;
        assert!(theirs_body.contains("supervision_draws_total{outcome=\"drawn\"} 0"), "{theirs_body}");
        assert!(!theirs_body.contains("supervision_draw_pool_size"), "{theirs_body}");
        for db in [ours, theirs, unregistered] {
            db.close().await;
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("dispatch-metrics-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
