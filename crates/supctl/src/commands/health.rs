//! `supctl health`: each service's gRPC health, side by side.

use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{
    output::Output,
    settings::{SERVICES, Settings},
};

/// Checks `only` (or every service when empty); fails unless all checked are SERVING.
pub async fn run(only: &[String], settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let mut all_serving = true;
    for service in SERVICES.into_iter().filter(|s| only.is_empty() || only.iter().any(|o| o == s)) {
        let endpoint = settings.endpoint(service)?.to_owned();
        let status = match HealthClient::new(settings.channel(service)?).check(HealthCheckRequest::default()).await {
            Ok(answer) => match ServingStatus::try_from(answer.into_inner().status) {
                Ok(ServingStatus::Serving) => "SERVING".to_owned(),
                Ok(other) => other.as_str_name().to_owned(),
                Err(_) => "UNKNOWN".to_owned(),
            },
            Err(status) => format!("unreachable ({:?})", status.code()),
        };
        all_serving &= status == "SERVING";
        rows.push(vec![service.to_owned(), endpoint, status]);
    }
    out.rows(&["service", "endpoint", "health"], rows);
    if !all_serving {
        anyhow::bail!("not every service is SERVING");
    }
    Ok(())
}
