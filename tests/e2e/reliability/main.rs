//! Reliability and security (issue 11): per-caller rate limits, token refusals on every service,
//! no plain personal number in any service's database, idempotency on every command a whole
//! scenario sends, fuzzed requests to every RPC, and TLS between services.

mod crash;
mod data_at_rest;
mod deadlines;
mod fuzz;
mod idempotency;
mod idempotency_streams;
mod pg_restart;
mod rate_limits;
mod scope;
mod tls;
mod tokens;

/// The observability scenario, reused as is: the idempotency sweep runs it through its proxies.
#[allow(dead_code)]
#[path = "../observability/scenario.rs"]
mod scenario;

/// A random W3C trace id (32 hex digits), for the scenario.
fn random_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A random W3C span id (16 hex digits), for the scenario.
fn random_span_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}

use supervision_kit::outbox::RawCodec;
use tonic::{Code, transport::Channel};

/// Calls `method` with `body` (an encoded request message) and `token` (none for `None`);
/// answers the code and message.
pub async fn call_raw(channel: &Channel, method: &str, body: Vec<u8>, token: Option<&str>) -> (Code, String) {
    let mut request = tonic::Request::new(body);
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let outcome: Result<tonic::Response<Vec<u8>>, tonic::Status> =
        grpc.unary(request, method.parse().unwrap(), RawCodec).await;
    match outcome {
        Ok(_) => (Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}
