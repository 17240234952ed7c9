//! Health is SERVING once the registry is up and NOT_SERVING once shutdown starts.

use std::time::Duration;

use testkit::{Backend, on_both_backends, spawn_registry};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

on_both_backends!(health_follows_the_service_lifecycle);

async fn health_follows_the_service_lifecycle(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut health = HealthClient::new(registry.channel.clone());
    for service in ["", "supervision.registry.v1.RegistryService"] {
        let status = health.check(HealthCheckRequest { service: service.into() }).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }

    let mut watch = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    registry.shutdown_handle().trigger();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message()).await.expect("a status change");
    assert_eq!(next.unwrap().unwrap().status, ServingStatus::NotServing as i32);
    drop(watch);
    registry.stop().await;
}
