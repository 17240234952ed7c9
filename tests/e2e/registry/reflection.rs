//! Server reflection answers in both protocol versions (grpcurl 1.8 speaks only v1alpha) and
//! knows the registry, health and the error-detail types.

use testkit::{Backend, spawn_registry};
use tokio_stream::StreamExt;
use tonic_reflection::pb::{v1, v1alpha};

#[tokio::test]
async fn reflection_lists_the_registry_in_both_versions() {
    let registry = spawn_registry(Backend::Sqlite).await;

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(registry.channel.clone());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut answers = alpha.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["supervision.registry.v1.RegistryService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let mut stable = v1::server_reflection_client::ServerReflectionClient::new(registry.channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "google.rpc.BadRequest".into(),
        )),
    };
    let mut answers = stable.server_reflection_info(tokio_stream::iter([request])).await.unwrap().into_inner();
    let response = answers.next().await.unwrap().unwrap().message_response;
    assert!(
        matches!(response, Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(_))),
        "error details must be resolvable so clients can decode field violations: {response:?}"
    );
    registry.stop().await;
}
