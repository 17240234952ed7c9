//! Finance's synchronous calls to the registry (ARCHITECTURE.md "Calls between services"): the
//! civil-servant status of an expert on a work date, asked with finance's own SERVICE token, for
//! the user the request acts for, with the W3C trace context.

use std::time::Duration;

use chrono::NaiveDate;
use supervision_kit::{
    Caller,
    auth::{ACTOR_HEADER, AUTHORIZATION, encode_actor},
    convert::date,
    telemetry::PropagateTrace,
};
use supervision_proto::{
    common::CivilServantStatus,
    registry::{GetCivilServantStatusRequest, registry_service_client::RegistryServiceClient},
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::Channel,
};

use crate::error::Error;

/// The deadline of one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry as finance reaches it: absent when no endpoint or SERVICE token is configured, in
/// which case every question fails as UNAVAILABLE.
#[derive(Debug, Clone)]
pub struct RegistryPeer {
    connection: Option<(Channel, MetadataValue<Ascii>)>,
}

impl RegistryPeer {
    pub fn new(channel: Option<Channel>, service_token: Option<&str>) -> Self {
        let bearer = service_token.and_then(|t| format!("Bearer {t}").parse().ok());
        Self { connection: channel.zip(bearer) }
    }

    /// Whether `expert_id` was a civil servant (公务员) on `day`, per the registry's history. Any
    /// failure, the registry's refusals included, is [`Error::RegistryUnavailable`]: the caller's
    /// outbox tries again later.
    pub async fn is_civil_servant_on(&self, caller: &Caller, expert_id: &str, day: NaiveDate) -> Result<bool, Error> {
        let unavailable = |problem: String| Error::RegistryUnavailable(problem);
        let Some((channel, bearer)) = &self.connection else {
            return Err(unavailable("finance has no registry endpoint or SERVICE token configured".into()));
        };
        let calling = Calling { bearer: bearer.clone(), actor: encode_actor(&caller.actor()) };
        let mut client = RegistryServiceClient::with_interceptor(channel.clone(), calling);
        let mut request = tonic::Request::new(GetCivilServantStatusRequest {
            expert_id: expert_id.to_owned(),
            date: Some(date(day)),
        });
        request.set_timeout(CALL_TIMEOUT);
        let answer = client
            .get_civil_servant_status(request)
            .await
            .map_err(|s| unavailable(format!("GetCivilServantStatus({day}): {:?} {}", s.code(), s.message())))?
            .into_inner();
        Ok(answer.status == CivilServantStatus::CivilServant as i32)
    }
}

/// Finance's token, the acting user and the trace context on every call.
#[derive(Debug, Clone)]
struct Calling {
    bearer: MetadataValue<Ascii>,
    actor: Vec<u8>,
}

impl Interceptor for Calling {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let metadata = request.metadata_mut();
        metadata.insert(AUTHORIZATION, self.bearer.clone());
        metadata.insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&self.actor));
        PropagateTrace.call(request)
    }
}
