//! The metrics port after a few calls: requests by method and status code, latency histogram
//! buckets, job runs, next to the gauges.

use std::time::Duration;

use supervision_kit::{Role, Shutdown, outbox::RawCodec};
use supervision_proto::registry::{
    GetInstitutionRequest, ListInstitutionsRequest, registry_service_client::RegistryServiceClient,
};
use testkit::{Backend, TestDb};
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
