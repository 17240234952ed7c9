//! The metrics port after a few calls: requests by method and status code, latency histogram
//! buckets, job runs, next to the gauges.

use std::time::Duration;

use supervision_kit::{Role, Shutdown, outbox::RawCodec};
use supervision_proto::registry::{
    GetInstitutionRequest, ListInstitutionsRequest, registry_service_client::RegistryServiceClient,
};
use testkit::{Backend, TestDb, on_both_backends};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const LIST: &str = "/supervision.registry.v1.RegistryService/ListInstitutions";
const GET: &str = "/supervision.registry.v1.RegistryService/GetInstitution";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_after_some_calls_shows_requests_by_method_and_code_and_latency_buckets() {
    let db = TestDb::new(Backend::Sqlite).await;
    let config = supervision_registry::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(testkit::personal_data_key_file(&db)),
        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
        common: supervision_kit::app::CommonArgs {
            metrics_listen: Some("127.0.0.1:0".into()),
            ..testkit::common_args(None)
        },
        reference: Default::default(),
    };
    let app = supervision_registry::App::build(&config).await.unwrap();
    let (addr, metrics_addr) = (app.local_addr(), app.metrics_addr().expect("a metrics port"));
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();

    let mut admin =
        RegistryServiceClient::new(testkit::with_token(&channel, Some(&testkit::token(Role::CityAdmin, None))));
    for _ in 0..2 {
        admin.list_institutions(ListInstitutionsRequest::default()).await.unwrap();
    }
    let err = admin.get_institution(GetInstitutionRequest { id: "bad".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut anonymous = RegistryServiceClient::new(channel.clone());
    let err = anonymous.list_institutions(ListInstitutionsRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    HealthClient::new(channel.clone()).check(HealthCheckRequest::default()).await.unwrap();
    // A path nobody serves: counted under one label, whatever the caller made up.
    let mut raw = tonic::client::Grpc::new(channel.clone());
    raw.ready().await.unwrap();
    let err = raw
        .unary(tonic::Request::new(Vec::new()), "/made.up.Service/Guess13812345678".parse().unwrap(), RawCodec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // The idempotency purge runs once at start; wait for it to be counted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let body = loop {
        let body = scrape(metrics_addr).await;
        if body.contains("supervision_job_runs_total{job=\"idempotency-purge\"} 1") {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "the purge job was never counted:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for line in [
        "# TYPE supervision_grpc_requests_total counter",
        &format!("supervision_grpc_requests_total{{method=\"{LIST}\",code=\"OK\"}} 2"),
        &format!("supervision_grpc_requests_total{{method=\"{LIST}\",code=\"UNAUTHENTICATED\"}} 1"),
        &format!("supervision_grpc_requests_total{{method=\"{GET}\",code=\"INVALID_ARGUMENT\"}} 1"),
        "supervision_grpc_requests_total{method=\"/grpc.health.v1.Health/Check\",code=\"OK\"} 1",
        "supervision_grpc_requests_total{method=\"unknown\",code=\"UNAUTHENTICATED\"} 1",
        "# TYPE supervision_grpc_request_duration_seconds histogram",
        &format!("supervision_grpc_request_duration_seconds_bucket{{method=\"{LIST}\",le=\"30\"}} 3"),
        &format!("supervision_grpc_request_duration_seconds_bucket{{method=\"{LIST}\",le=\"+Inf\"}} 3"),
        &format!("supervision_grpc_request_duration_seconds_count{{method=\"{LIST}\"}} 3"),
        "# TYPE supervision_job_runs_total counter",
        "# TYPE supervision_job_duration_seconds histogram",
        "supervision_storage_up 1",
        "supervision_outbox_backlog 0",
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} missing from\n{body}");
    }
    let buckets: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with(&format!("supervision_grpc_request_duration_seconds_bucket{{method=\"{LIST}\"")))
        .collect();
    assert_eq!(buckets.len(), supervision_kit::metrics::LATENCY_BUCKETS.len() + 1, "{buckets:#?}");
    assert!(!body.contains("13812345678"), "a made-up path never becomes a label");

    shutdown.trigger();
    task.await.unwrap().unwrap();
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}

on_both_backends!(after_a_scenario_every_metrics_port_shows_the_named_series);

/// The value of the series `series` (name and labels exactly as rendered) in `body`.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Runs the scenario across the four services, then scrapes each metrics port and finds the
/// series `docs/operations.md` names, with the values the scenario must have left.
async fn after_a_scenario_every_metrics_port_shows_the_named_series(backend: Backend) {
    let (deployment, outcome) = crate::scenario::deployed(backend).await;
    assert_eq!(outcome.fee_lines.len(), 1);

    // The idempotency purge runs once at each start; wait until every service counted it and
    // every outbox is empty.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut bodies = Vec::new();
    loop {
        bodies.clear();
        for (service, addr) in &deployment.metrics {
            bodies.push((*service, testkit::scrape_metrics(*addr).await));
        }
        let purged = |body: &String| value(body, "supervision_job_runs_total{job=\"idempotency-purge\"}") == Some(1.0);
        // Every outbox delivered (dispatch's fee revision, the registry's status changes): a
        // delivery retried after a callee was busy waits its jittered backoff.
        let delivered = bodies.iter().all(|(_, b)| {
            value(b, "supervision_outbox_backlog") == Some(0.0)
                && value(b, "supervision_outbox_oldest_age_seconds") == Some(0.0)
        });
        if bodies.iter().all(|(_, b)| purged(b)) && delivered {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the scrapes never settled: {bodies:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(bodies.len(), 4);

    // Every service: requests and latencies, storage, outbox, audit, locks, jobs, calendar, policy.
    for (service, body) in &bodies {
        let at_least = |series: &str, min: f64| {
            let found = value(body, series);
            assert!(found.is_some_and(|v| v >= min), "{service}: {series} is {found:?}, wanted >= {min}\n{body}");
        };
        for family in [
            "# TYPE supervision_grpc_requests_total counter",
            "# TYPE supervision_grpc_request_duration_seconds histogram",
            "# TYPE supervision_storage_up gauge",
            "# TYPE supervision_outbox_backlog gauge",
            "# TYPE supervision_outbox_oldest_age_seconds gauge",
            "# TYPE supervision_audit_head_sequence gauge",
            "# TYPE supervision_lock_waits_total counter",
            "# TYPE supervision_lock_failures_total counter",
            "# TYPE supervision_job_runs_total counter",
            "# TYPE supervision_job_duration_seconds histogram",
            "# TYPE supervision_calendar_days_until_uncovered gauge",
            "# TYPE supervision_calendar_next_year_missing gauge",
            "# TYPE supervision_policy_edition_days_left gauge",
        ] {
            assert!(body.lines().any(|l| l == family), "{service}: {family:?} missing from\n{body}");
        }
        assert_eq!(value(body, "supervision_storage_up"), Some(1.0), "{service}");
        assert_eq!(value(body, "supervision_outbox_oldest_age_seconds"), Some(0.0), "{service}: nothing waits");
        assert_eq!(value(body, "supervision_outbox_backlog"), Some(0.0), "{service}: nothing waits");
        assert_eq!(value(body, "supervision_lock_waits_total"), Some(0.0), "{service}: nobody contended");
        assert_eq!(value(body, "supervision_lock_failures_total{reason=\"busy\"}"), Some(0.0), "{service}");
        assert_eq!(value(body, "supervision_lock_failures_total{reason=\"unavailable\"}"), Some(0.0), "{service}");
        at_least("supervision_calendar_days_until_uncovered", 1.0);
        at_least("supervision_policy_edition_days_left", 1.0);
        at_least("supervision_job_duration_seconds_count{job=\"idempotency-purge\"}", 1.0);
    }
    let body = |name: &str| bodies.iter().find(|(s, _)| *s == name).map(|(_, b)| b.as_str()).unwrap();
    let requests = |service: &str, method: &str, code: &str| {
        value(body(service), &format!("supervision_grpc_requests_total{{method=\"{method}\",code=\"{code}\"}}"))
    };
    let latencies = |service: &str, method: &str| {
        value(body(service), &format!("supervision_grpc_request_duration_seconds_count{{method=\"{method}\"}}"))
    };

    // Registry: the appointments, the refused reads quoting personal numbers, the two pool streams.
    const APPOINT: &str = "/supervision.registry.v1.RegistryService/AppointExpert";
    const POOL: &str = "/supervision.registry.v1.RegistryService/StreamDrawPool";
    assert_eq!(requests("registry", APPOINT, "OK"), Some(f64::from(crate::scenario::EXPERTS)));
    assert_eq!(requests("registry", POOL, "OK"), Some(2.0), "prepare and execute each stream the pool");
    assert_eq!(latencies("registry", POOL), Some(2.0));
    assert_eq!(
        requests("registry", "/supervision.registry.v1.RegistryService/GetInstitution", "INVALID_ARGUMENT"),
        Some(1.0)
    );
    assert!(
        value(body("registry"), "supervision_audit_head_sequence").is_some_and(|n| n >= 8.0),
        "institution and appointments audited"
    );
    // Recruitment answered its call.
    assert_eq!(requests("recruitment", "/supervision.recruitment.v1.RecruitmentService/ListCalls", "OK"), Some(1.0));
    // Finance: the revision delivered by dispatch's relay.
    const RECORD: &str = "/supervision.finance.v1.FinanceService/RecordSessions";
    assert_eq!(requests("finance", RECORD, "OK"), Some(1.0));
    assert_eq!(latencies("finance", RECORD), Some(1.0));

    // Dispatch: the draw's series, its fence, its delivery to finance.
    let dispatch = body("dispatch");
    for method in ["PrepareDraw", "WitnessDraw", "ExecuteDraw", "AcceptReport"] {
        let path = format!("/supervision.dispatch.v1.DispatchService/{method}");
        assert_eq!(requests("dispatch", &path, "OK"), Some(1.0), "{method}");
        let buckets = dispatch
            .lines()
            .filter(|l| l.starts_with(&format!("supervision_grpc_request_duration_seconds_bucket{{method=\"{path}\"")))
            .count();
        assert_eq!(buckets, supervision_kit::metrics::LATENCY_BUCKETS.len() + 1, "{method}");
    }
    for (series, expected) in [
        ("supervision_draws_total{outcome=\"prepared\"}", 1.0),
        ("supervision_draws_total{outcome=\"drawn\"}", 1.0),
        ("supervision_draws_total{outcome=\"pool_too_small\"}", 0.0),
        ("supervision_draws_total{outcome=\"team_short\"}", 0.0),
        ("supervision_draw_pool_size_count", 1.0),
        ("supervision_draw_pool_size_sum", f64::from(crate::scenario::EXPERTS)),
        ("supervision_draw_pool_size_bucket{le=\"5\"}", 0.0),
        ("supervision_draw_pool_size_bucket{le=\"10\"}", 1.0),
        ("supervision_draw_candidates_sum", f64::from(crate::scenario::EXPERTS - 1)),
        ("supervision_draw_exclusions_total{reason=\"CONFLICTED\"}", 1.0),
        ("supervision_draw_execution_seconds_count", 1.0),
        ("supervision_outbox_deliveries_total{destination=\"finance\",code=\"OK\"}", 1.0),
    ] {
        assert_eq!(value(dispatch, series), Some(expected), "{series} in\n{dispatch}");
    }
    // The fence's locks at execution (other work may take locks too).
    for series in ["supervision_lock_acquired_total", "supervision_lock_wait_seconds_count"] {
        assert!(value(dispatch, series).is_some_and(|n| n >= 1.0), "{series} in\n{dispatch}");
    }
    deployment.stop().await;
}
