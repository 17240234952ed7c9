//! PostgreSQL restarted under load (issue 11 item 2): the four services, each in its own process,
//! on databases of a private PostgreSQL server (`testkit::private_pg`), run two whole scenarios
//! (`testkit::scenario`) while the server is stopped (`pg_ctl stop -m fast`: sessions ended,
//! open transactions rolled back) and started again. While it is down every service's health
//! answers NOT_SERVING and calls answer UNAVAILABLE (never INTERNAL: the clients retry only
//! UNAVAILABLE and the like, so an INTERNAL would fail the scenario); once it is back each
//! service answers SERVING again without being restarted, the scenarios finish, every outbox
//! drains and every acknowledged operation exists exactly once.
//!
//! Skipped, loudly, only where PostgreSQL's server tools are not installed (CI has them).

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use testkit::{
    ServiceKind,
    private_pg::PrivatePg,
    process::ProcessCluster,
    scenario::{self, Clock, Net, Ticker},
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{call_raw, crash::SERVICE_PROCESS};

/// Each service process's database pool.
const POOL: u32 = 4;
const SCENARIOS: usize = 2;

/// Waits until every service's health answers `wanted`: how long each took.
async fn health_becomes(cluster: &mut ProcessCluster, wanted: ServingStatus, within: Duration) -> Vec<Duration> {
    let started = Instant::now();
    let mut took = Vec::new();
    for kind in ServiceKind::ALL {
        loop {
            let now = cluster.process(kind).health().await;
            if now == Some(wanted) {
                took.push(started.elapsed());
                break;
            }
            assert!(
                started.elapsed() < within,
                "{}'s health is {now:?}, not {wanted:?}, after {within:?}",
                kind.name()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_answer_unavailable_while_postgresql_is_down_and_recover_without_a_restart() {
    let Some(mut pg) = PrivatePg::start() else { return };
    let mut urls = Vec::new();
    for _ in ServiceKind::ALL {
        urls.push(pg.create_database().await);
    }
    let scratch = tempfile::tempdir().unwrap();
    let databases: [&str; 4] = std::array::from_fn(|i| urls[i].as_str());
    let mut cluster = ProcessCluster::start(databases, scratch.path(), POOL, SERVICE_PROCESS).await;
    let channels = cluster.channels();
    // The clients wait out the outage, retrying with the same request ids.
    let net = Net::new(channels.iter().map(|(kind, channel)| (*kind, vec![channel.clone()])))
        .with_patience(Duration::from_secs(120));
    let clock = Arc::new(Clock::new(cluster.clock_files()));
    // Fifty times as fast as the wall clock: a relay killed (or failing) mid-delivery leaves its
    // rows leased for the outbox's 600 s on the services' clock, 12 s here.
    let ticker = Ticker::with_step(clock.clone(), 5, Duration::from_millis(100));
    let load = {
        let (net, clock) = (net.clone(), clock.clone());
        tokio::spawn(async move { scenario::run_scenarios(&net, &clock, SCENARIOS).await })
    };

    // Mid-scenario, the server goes down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls_before = net.calls();
    tokio::task::block_in_place(|| pg.stop());
    let down = Instant::now();
    let not_serving = health_becomes(&mut cluster, ServingStatus::NotServing, Duration::from_secs(30)).await;
    // Calls made directly, without retries, all at once (each waits out the pool's acquire
    // timeout): UNAVAILABLE from every service.
    let admin = scenario::token("probe-admin", testkit::Role::CityAdmin, None, None);
    let probing = Instant::now();
    let handles: Vec<_> = channels
        .iter()
        .map(|(kind, channel)| {
            let (name, channel, admin) = (kind.name(), channel.clone(), admin.clone());
            tokio::spawn(async move {
                let service = format!("{}{}", name[..1].to_uppercase(), &name[1..]);
                let method = format!("/supervision.{name}.v1.{service}Service/GetAuditHead");
                (name, call_raw(&channel, &method, Vec::new(), Some(&admin)).await)
            })
        })
        .collect();
    let mut probes = BTreeMap::new();
    for handle in handles {
        let (name, (code, message)) = handle.await.expect("the probe ran");
        assert_eq!(code, Code::Unavailable, "{name} answers {code:?} ({message}) while PostgreSQL is down");
        probes.insert(name, code);
    }
    let probed_in = probing.elapsed();
    // The scenarios stood still meanwhile, their calls retried.
    let retries_down = net.retries();
    tokio::task::block_in_place(|| pg.start_again());
    let outage = down.elapsed();
    let serving_again = health_becomes(&mut cluster, ServingStatus::Serving, Duration::from_secs(30)).await;

    let ledger = load.await.expect("the scenarios finished after the outage");
    let mut pools = BTreeMap::new();
    for (kind, url) in ServiceKind::ALL.iter().zip(&urls) {
        pools.insert(kind.name(), scenario::pool(url).await);
    }
    let delivered = scenario::outboxes_drain(&pools).await;
    ticker.stop().await;
    let tally = scenario::check_ledger(&pools, &ledger, SCENARIOS).await;
    for pool in pools.values() {
        pool.close().await;
    }
    // Recovered without a restart: each process is the one started first.
    for kind in ServiceKind::ALL {
        let process = cluster.process(kind);
        assert!(process.is_running(), "{} runs", kind.name());
        assert_eq!(process.starts, 1, "{} was not restarted", kind.name());
    }
    let codes = net.retried_codes();
    assert!(codes.contains_key("Unavailable"), "the load's calls met the outage: {codes:?}");
    drop(cluster);
    eprintln!(
        "PostgreSQL restart: down {:.1}s under {SCENARIOS} scenarios ({calls_before} calls before the stop); health \
         NOT_SERVING after {:?}, SERVING again after {:?}; direct calls while down: {probes:?} (answered within {:.1}s); the load's calls \
         retried {} times ({retries_down} by the restart), answers retried {codes:?}, none INTERNAL; {} calls in \
         all; {} acknowledged operations checked: lost {}, duplicated {}; outbox rows delivered {delivered:?}, 0 \
         pending, 0 parked; no service restarted",
        outage.as_secs_f64(),
        not_serving.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect::<Vec<_>>(),
        serving_again.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect::<Vec<_>>(),
        probed_in.as_secs_f64(),
        net.retries(),
        net.calls(),
        tally.checked,
        tally.lost,
        tally.duplicated,
    );
}
