//! Scale-out (issue 9 item 4): two replicas of each of the four services, each an OS process of
//! its own (`testkit::process`: this test binary run again with [`service_process`] selected),
//! each service's pair on its own PostgreSQL database, all eight on one Redis, replica `k` of a
//! caller calling replica `1 - k` of its callee (`ProcessCluster::start_replicated`). Clients go round robin over a service's two
//! replicas and retry UNAVAILABLE, ABORTED, CANCELLED and UNKNOWN with the same request id, as
//! the contract allows. Several scenarios run at once, each the whole of the work
//! (`testkit::scenario`):
//!
//! 1. recruitment: a call, four applications with their materials, the reviews, a publicity on
//!    the test clock, the appointment decided and delivered to the registry through the outbox;
//! 2. the registry: an institution; dispatch: a task, its draw (prepare, witness, execute; a
//!    draw whose frozen list concurrent draws took is abandoned and drawn again), the primaries
//!    accept;
//! 3. dispatch: sessions worked, reports submitted and accepted, the fee revisions delivered to
//!    finance through the outbox; finance: a payment batch of the scenario's lines drafted,
//!    submitted, approved by another user and paid.
//!
//! While the second phase runs, replica 0 of every service is killed with SIGKILL and started
//! again on the same database and address. At the end, from a client-side ledger of every acknowledged
//! operation and SQL over each service's database (`scenario::check_ledger`): every appointment,
//! assignment, fee line and payment (and every other record a client was told of) exists exactly
//! once, no expert holds two tasks on a half-day, no fee line is written twice for an assignment
//! revision, every outbox is drained and no delivery parked, each job's lease had one holder at
//! every sample, and no periodic job ran twice at once or twice in a period.
//!
//! `make test` runs 3 scenarios; `make test-long` (SUPERVISION_TEST_LONG=1) runs 30, at most 10 of
//! them calling at the same time (see [`IN_FLIGHT`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration as StdDuration, Instant},
};

use testkit::{
    Backend, ServiceKind, TestDb, TestRedis,
    process::ProcessCluster,
    scenario::{self, Clock, Net, Ticker},
};

/// The ignored test a service process runs ([`service_process`]).
const SERVICE_PROCESS: &str = "service_process";
/// Each replica's database pool: eight replicas share one PostgreSQL server (max_connections
/// 100 by default), 8 x 10, with room left for the test's own pools.
const POOL: u32 = 10;
/// Scenarios calling at the same time (the others wait for a turn within the phase).
const IN_FLIGHT: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a service process of the scale-out test: it starts it"]
async fn service_process() {
    testkit::process::serve_child().await;
}

/// A row of `kit_job_runs`: name, holder, started, finished, outcome.
type JobRun = (String, String, String, Option<String>, Option<String>);

/// The runs of each periodic job recorded in `kit_job_runs` of one service: none overlaps the
/// next (its start is not before the previous one's end), and two completed runs of one job are at
/// least a period apart on the services' clock (the test clock jumps days ahead, so a job may
/// legitimately run again; every replica and each restarted one starts with its jobs due, so a
/// second pass in one period would show here). Answers how many runs it checked.
async fn runs_never_overlap(service: &str, pool: &sqlx::AnyPool) -> usize {
    use supervision_kit::storage::parse_instant;
    let rows: Vec<JobRun> =
        sqlx::query_as("SELECT name, holder, started, finished, outcome FROM kit_job_runs ORDER BY name, started, id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(!rows.is_empty(), "{service}: its periodic passes recorded their runs");
    let min_period = chrono::Duration::from_std(supervision_kit::jobs::RECORDED_FROM).unwrap();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.0 != b.0 {
            continue;
        }
        if let Some(finished) = &a.3 {
            assert!(b.2 >= *finished, "{service}: job {} ran twice at once: {a:?} and {b:?}", a.0);
        }
        if a.4.as_deref() == Some("done") {
            let gap = parse_instant(&b.2).unwrap() - parse_instant(&a.2).unwrap();
            assert!(gap >= min_period, "{service}: job {} ran twice in one period: {a:?} and {b:?}", a.0);
        }
    }
    rows.len()
}

/// Every job lease seen while sampling: per (service, job) the distinct holders and how many
/// samples showed it.
#[derive(Debug, Default)]
struct Leases {
    samples: usize,
    holders: BTreeMap<(String, String), BTreeSet<String>>,
}

async fn sample_leases(urls: Vec<(&'static str, String)>, leases: Arc<Mutex<Leases>>, done: Arc<AtomicBool>) {
    let mut pools = Vec::new();
    for (name, url) in urls {
        pools.push((name, scenario::pool(&url).await));
    }
    while !done.load(Ordering::Relaxed) {
        for (service, pool) in &pools {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT name, holder FROM kit_job_leases").fetch_all(pool).await.unwrap_or_default();
            let mut names = BTreeSet::new();
            let mut leases = leases.lock().unwrap();
            for (name, holder) in rows {
                assert!(names.insert(name.clone()), "{service}: job {name} has two lease rows at once");
                leases.holders.entry(((*service).to_owned(), name)).or_default().insert(holder);
            }
        }
        leases.lock().unwrap().samples += 1;
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_each_service_lose_nothing_and_double_nothing_when_one_of_each_is_killed() {
    let scenarios = testkit::scale(3, 30);
    let started = Instant::now();
    let redis = TestRedis::new().await;
    let mut databases = Vec::new();
    for _ in ServiceKind::ALL {
        databases.push(TestDb::new(Backend::Postgres).await);
    }
    let db_urls: [&str; 4] = std::array::from_fn(|i| databases[i].url());
    let cluster =
        ProcessCluster::start_replicated(db_urls, databases[0].scratch_dir(), POOL, &redis, SERVICE_PROCESS).await;
    let net = Net::for_processes(&cluster);
    let urls: Vec<(&'static str, String)> =
        ServiceKind::ALL.iter().zip(db_urls).map(|(k, url)| (k.name(), url.to_owned())).collect();
    let clock = Arc::new(Clock::new(cluster.clock_files()));
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));

    let leases = Arc::new(Mutex::new(Leases::default()));
    let sampling_done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_leases(urls.clone(), leases.clone(), sampling_done.clone()));

    // Phase 1 at the system clock. Phase 2 on the morning after the publicity, the relays' clocks
    // ticking faster from then on; mid-phase, replica 0 of each service is killed with SIGKILL
    // and started again on its database and address. Phase 3 (once the restarts are done) in the evening of the
    // last session day.
    let mut ticker = None;
    let down_for = Arc::new(Mutex::new(Vec::new()));
    let ledger = scenario::run_scenarios_with(&net, &clock, scenarios, IN_FLIGHT, |phase| {
        if phase != 2 {
            return None;
        }
        ticker = Some(Ticker::start(clock.clone()));
        let (cluster, down_for) = (cluster.clone(), down_for.clone());
        Some(tokio::spawn(async move {
            let mut cluster = cluster.lock().await;
            for kind in ServiceKind::ALL {
                tokio::time::sleep(StdDuration::from_millis(400)).await;
                let replica = cluster.replica(kind, 0);
                replica.kill();
                let down = Instant::now();
                tokio::time::sleep(StdDuration::from_millis(600)).await;
                replica.restart().await;
                down_for.lock().unwrap().push((kind.name(), down.elapsed()));
            }
        }))
    })
    .await;
    let down_for = Arc::into_inner(down_for).unwrap().into_inner().unwrap();

    // Every outbox drained (nothing pending, nothing parked), then the ledger's checks.
    let mut pools = BTreeMap::new();
    for (name, url) in &urls {
        pools.insert(*name, scenario::pool(url).await);
    }
    let delivered = scenario::outboxes_drain(&pools).await;
    ticker.expect("phase 2 started the ticker").stop().await;
    let tally = scenario::check_ledger(&pools, &ledger, scenarios).await;

    sampling_done.store(true, Ordering::Relaxed);
    sampler.await.expect("the lease sampler saw one holder per job at every sample");
    let leases = Arc::into_inner(leases).unwrap().into_inner().unwrap();
    let jobs = leases.holders.len();
    let handovers: usize = leases.holders.values().map(|h| h.len() - 1).sum();
    // Jobs ran once: the periodic passes' run records never overlap, and each period's pass ran
    // once although every replica (and each restarted one) started with the job due.
    let mut job_runs = 0;
    for (service, p) in &pools {
        job_runs += runs_never_overlap(service, p).await;
    }

    let mut cluster = Arc::into_inner(cluster).expect("the chaos task is done").into_inner();
    let kills = down_for.len();
    assert_eq!(kills, 4, "one replica of each service was killed and restarted");
    for kind in ServiceKind::ALL {
        assert_eq!(cluster.replica(kind, 0).starts, 2, "{} replica 0 was started again", kind.name());
        assert_eq!(cluster.replica(kind, 1).starts, 1, "{} replica 1 ran throughout", kind.name());
    }
    assert!(cluster.all_running(), "every replica runs after the kills");
    drop(cluster);
    for p in pools.values() {
        p.close().await;
    }
    eprintln!(
        "scale-out: {scenarios} scenarios ({} calling at once) on 2 replicas x 4 services, {kills} replica processes killed with \
         SIGKILL and restarted (down {down_for:?}); {} calls, {} retried; acknowledged and found once: \
         {} appointments, {} assignments, {} fee lines, {} paid batches ({} operations checked); lost {}, duplicated {}, \
         double-booked 0; {} draws redrawn after concurrent draws took their list; outbox rows delivered {delivered:?}, \
         pending 0, parked 0; {jobs} jobs sampled {} times, one holder each, {handovers} handovers; {job_runs} periodic \
         runs recorded, none overlapping, none twice in a period; phases {:?}, total {:?}",
        IN_FLIGHT.min(scenarios),
        net.calls(),
        net.retries(),
        ledger.appointments.len(),
        ledger.assignments.len(),
        ledger.fee_lines.len(),
        ledger.payments.len(),
        tally.checked,
        tally.lost,
        tally.duplicated,
        ledger.redraws,
        leases.samples,
        ledger.phases,
        started.elapsed(),
    );
}
