//! Per-caller rate limits: a user over the limit is answered RESOURCE_EXHAUSTED with a retry
//! delay, another user is not affected, and SERVICE callers, health and reflection never are.

use std::time::Duration;

use supervision_kit::{Shutdown, app::CommonArgs, rate_limit::RateLimitArgs};
use supervision_proto::registry::{ListInstitutionsRequest, registry_service_client::RegistryServiceClient};
use testkit::{AuthedChannel, Backend, Role, TestDb, on_both_backends, token, with_token};
use tonic::{Code, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

on_both_backends!(a_user_over_the_limit_is_throttled_alone_and_services_never_are);

/// The burst each user gets; the refill (one call per 1,000 s) cannot add a call during the test.
const BURST: u32 = 3;

struct Limited {
    channel: Channel,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _db: TestDb,
}

/// A registry limiting each user to a burst of [`BURST`] calls.
async fn limited_registry(backend: Backend) -> Limited {
    let db = TestDb::new(backend).await;
    let config = supervision_registry::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(testkit::personal_data_key_file(&db)),
        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
        common: CommonArgs {
            rate_limit: RateLimitArgs { rate_limit_per_second: 0.001, rate_limit_burst: BURST },
            ..testkit::common_args(None)
        },
        reference: Default::default(),
    };
    let app = supervision_registry::App::build(&config).await.unwrap();
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    Limited { channel, shutdown, task, _db: db }
}

fn user(channel: &Channel, subject: &str) -> RegistryServiceClient<AuthedChannel> {
    let token = testkit::identity::token_for(supervision_kit::auth::TokenRequest {
        subject: subject.into(),
        role: Role::CityAdmin,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(3600),
    });
    RegistryServiceClient::new(with_token(channel, Some(&token)))
}

async fn a_user_over_the_limit_is_throttled_alone_and_services_never_are(backend: Backend) {
    let registry = limited_registry(backend).await;
    let mut alice = user(&registry.channel, "alice");
    for n in 0..BURST {
        alice.list_institutions(ListInstitutionsRequest::default()).await.unwrap_or_else(|e| panic!("call {n}: {e}"));
    }
    let refused = alice.list_institutions(ListInstitutionsRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry = refused.get_error_details().retry_info().cloned().expect("a RetryInfo detail");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::from_secs(1)), "{retry:?}");
    // Still refused: a refused call does not reset the bucket.
    assert_eq!(
        alice.list_institutions(ListInstitutionsRequest::default()).await.unwrap_err().code(),
        Code::ResourceExhausted
    );

    // Another user of the same role has a bucket of their own.
    let mut bob = user(&registry.channel, "bob");
    for _ in 0..BURST {
        bob.list_institutions(ListInstitutionsRequest::default()).await.expect("bob is not throttled by alice");
    }

    // A SERVICE token (another service, its outbox relay) is never limited.
    let mut service = RegistryServiceClient::new(with_token(&registry.channel, Some(&token(Role::Service, None))));
    for n in 0..(BURST * 10) {
        service
            .list_institutions(ListInstitutionsRequest::default())
            .await
            .unwrap_or_else(|e| panic!("service call {n}: {e}"));
    }
    // Nor are health probes, which carry no token.
    let mut health = HealthClient::new(registry.channel.clone());
    for _ in 0..(BURST * 10) {
        health.check(HealthCheckRequest::default()).await.expect("health is never limited");
    }

    registry.shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(20), registry.task).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "the registry stops cleanly");
}
