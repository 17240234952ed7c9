//! Reliability and security (issue 11): per-caller rate limits, token refusals on every service,
//! and no plain personal number in any service's database.

mod data_at_rest;
mod rate_limits;
mod tokens;

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
