//! Crash runs (issue 11 item 1, issue 9 "one replica killed mid-run"): the four services, each in
//! an OS process of its own on its own fresh PostgreSQL database, run whole scenarios
//! (`testkit::scenario`: recruitment to appointment, the draw, work, reports, fee lines through the
//! outbox, a payment batch paid) while a killer kills 2 to 4 services per run with SIGKILL at
//! random moments (in random rounds of the four, so each is killed as often as the others) and
//! starts each again on the same database and address. Clients retry what a
//! killed service answers (UNAVAILABLE, or a connection cut mid-call) with the same request id,
//! and write every acknowledged operation into a ledger.
//!
//! After each run: every process is up, every outbox drained with nothing parked, and every
//! acknowledged operation exists exactly once (nothing lost, nothing made twice), no expert
//! booked twice on a half-day, no fee line twice, each batch paid once with exactly its lines.
//!
//! `make test` runs 3 runs; `make test-long` (SUPERVISION_TEST_LONG=1) 200;
//! `SUPERVISION_CRASH_RUNS=n` runs n.
//! `SUPERVISION_CRASH_SEED` repeats a run's kill schedule (the moments still depend on timing).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use testkit::{
    Backend, ServiceKind, TestDb,
    process::ProcessCluster,
    scenario::{self, Clock, Net, Tally, Ticker},
};

/// The ignored test a service process runs ([`service_process`]).
pub const SERVICE_PROCESS: &str = "crash::service_process";
/// Scenarios per run, calling at the same time.
const SCENARIOS_PER_RUN: usize = 2;
/// Each service process's database pool.
const POOL: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a service process of the crash and PostgreSQL restart tests: they start it"]
async fn service_process() {
    testkit::process::serve_child().await;
}

/// SplitMix64: a small seeded generator, so a schedule can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One kill: the service, when (since the run started) and how long it was down.
struct Kill {
    kind: ServiceKind,
    at: Duration,
    down: Duration,
}

/// The order services are killed in: random rounds of the four, so over the runs every service
/// is killed as often as the others (within one).
#[derive(Default)]
struct Victims {
    queue: Vec<ServiceKind>,
}

impl Victims {
    fn next(&mut self, rng: &mut Rng) -> ServiceKind {
        if self.queue.is_empty() {
            self.queue = ServiceKind::ALL.to_vec();
            for i in (1..self.queue.len()).rev() {
                self.queue.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        self.queue.pop().expect("a service this round")
    }
}

/// Kills 2 to 4 services with SIGKILL, one at a time, at random moments of the run: the first
/// within 4 s (every run is still in its first phases), the others within 12 s, or at once when
/// the scenarios are `done` before their moment (then the outbox drain and the checks run on the
/// restarted service). Each is left down a random 0-0.7 s and started again on its database and
/// address.
async fn kill_at_random(
    cluster: Arc<tokio::sync::Mutex<ProcessCluster>>,
    done: Arc<AtomicBool>,
    mut rng: Rng,
    mut victims: Victims,
) -> (Vec<Kill>, Victims) {
    let started = Instant::now();
    let mut moments: Vec<Duration> = vec![Duration::from_millis(rng.below(4000))];
    for _ in 0..=rng.below(3) {
        moments.push(Duration::from_millis(rng.below(12_000)));
    }
    moments.sort();
    let mut kills = Vec::new();
    for moment in moments {
        while started.elapsed() < moment && !done.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let kind = victims.next(&mut rng);
        let mut cluster = cluster.lock().await;
        let process = cluster.process(kind);
        let at = started.elapsed();
        process.kill();
        tokio::time::sleep(Duration::from_millis(rng.below(700))).await;
        process.restart().await;
        kills.push(Kill { kind, at, down: started.elapsed() - at });
    }
    (kills, victims)
}

/// What the runs measured.
#[derive(Default)]
struct Figures {
    runs: usize,
    kills: BTreeMap<&'static str, usize>,
    tally: Tally,
    calls: usize,
    retries: usize,
    retried_codes: BTreeMap<String, usize>,
    delivered: i64,
    longest_down: Duration,
    slowest_run: Duration,
    victims: Victims,
}

/// One run on fresh databases: the scenarios under the killer, then the checks.
async fn one_run(run: usize, rng: Rng, figures: &mut Figures) {
    let started = Instant::now();
    let mut databases = Vec::new();
    for _ in ServiceKind::ALL {
        databases.push(TestDb::new(Backend::Postgres).await);
    }
    let urls: [&str; 4] = std::array::from_fn(|i| databases[i].url());
    let cluster = ProcessCluster::start(urls, databases[0].scratch_dir(), POOL, SERVICE_PROCESS).await;
    let net = Net::new(cluster.channels().into_iter().map(|(kind, channel)| (kind, vec![channel])));
    let clock = Arc::new(Clock::new(cluster.clock_files()));
    // Fifty times as fast as the wall clock: a relay killed (or failing) mid-delivery leaves its
    // rows leased for the outbox's 600 s on the services' clock, 12 s here.
    let ticker = Ticker::with_step(clock.clone(), 5, Duration::from_millis(100));
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));
    let done = Arc::new(AtomicBool::new(false));
    let victims = std::mem::take(&mut figures.victims);
    let killer = tokio::spawn(kill_at_random(cluster.clone(), done.clone(), rng, victims));

    let ledger = scenario::run_scenarios(&net, &clock, SCENARIOS_PER_RUN).await;
    done.store(true, Ordering::SeqCst);
    let (kills, victims) = killer.await.expect("the killer ran to its end");
    figures.victims = victims;
    let mut cluster = Arc::into_inner(cluster).expect("the killer is done").into_inner();
    assert!(cluster.all_running(), "every service runs after the run's kills");

    let mut pools = BTreeMap::new();
    for (kind, url) in ServiceKind::ALL.iter().zip(urls) {
        pools.insert(kind.name(), scenario::pool(url).await);
    }
    let delivered = scenario::outboxes_drain(&pools).await;
    ticker.stop().await;
    let tally = scenario::check_ledger(&pools, &ledger, SCENARIOS_PER_RUN).await;
    for pool in pools.values() {
        pool.close().await;
    }
    drop(cluster);

    let schedule: Vec<String> = kills
        .iter()
        .map(|k| format!("{} at {:.1}s down {:.1}s", k.kind.name(), k.at.as_secs_f64(), k.down.as_secs_f64()))
        .collect();
    eprintln!(
        "crash run {run}: {} kills [{}], phases {:?}, {} operations checked, {} calls ({} retried), {:.1}s",
        kills.len(),
        schedule.join(", "),
        ledger.phases,
        tally.checked,
        net.calls(),
        net.retries(),
        started.elapsed().as_secs_f64()
    );
    figures.runs += 1;
    for kill in &kills {
        *figures.kills.entry(kill.kind.name()).or_default() += 1;
        figures.longest_down = figures.longest_down.max(kill.down);
    }
    figures.tally += tally;
    figures.calls += net.calls();
    figures.retries += net.retries();
    for (code, n) in net.retried_codes() {
        *figures.retried_codes.entry(code).or_default() += n;
    }
    figures.delivered += delivered.values().sum::<i64>();
    figures.slowest_run = figures.slowest_run.max(started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_killed_with_sigkill_at_random_moments_lose_nothing_and_double_nothing() {
    let runs = std::env::var("SUPERVISION_CRASH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| testkit::scale(3, 200));
    let seed = std::env::var("SUPERVISION_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("crash runs: {runs} runs, seed {seed} (SUPERVISION_CRASH_SEED={seed} repeats the kill schedule)");
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut figures = Figures::default();
    for run in 0..runs {
        one_run(run, Rng(rng.next()), &mut figures).await;
    }
    let kills: usize = figures.kills.values().sum();
    assert_eq!(figures.runs, runs);
    assert!(kills >= runs, "every run killed a service");
    for kind in ServiceKind::ALL {
        assert!(figures.kills.get(kind.name()).is_some_and(|n| *n > 0), "{} was killed", kind.name());
    }
    assert_eq!((figures.tally.lost, figures.tally.duplicated), (0, 0));
    eprintln!(
        "crash runs: {} runs x {SCENARIOS_PER_RUN} scenarios, {kills} kills with SIGKILL ({:?}), longest down {:.1}s; \
         {} acknowledged operations checked: lost {}, duplicated {}; {} calls, {} retried ({:?}); {} outbox rows \
         delivered, 0 pending, 0 parked; slowest run {:.1}s, total {:.1}s",
        figures.runs,
        figures.kills,
        figures.longest_down.as_secs_f64(),
        figures.tally.checked,
        figures.tally.lost,
        figures.tally.duplicated,
        figures.calls,
        figures.retries,
        figures.retried_codes,
        figures.delivered,
        figures.slowest_run.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}
