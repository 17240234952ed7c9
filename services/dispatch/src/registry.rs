//! The registry as dispatch reads it synchronously: `GetInstitution` over the channel of
//! `Foundation.peers["registry"]`, with this service's SERVICE token, the acting user in
//! `supervision-actor-bin` and the current trace context.
//!
//! Nothing is written while the registry cannot answer: the use cases ask it before they open
//! their transaction, and any answer other than the institution or "not found" is
//! `UNAVAILABLE`, which the client may retry with the same `request_id`.

use supervision_kit::{
    Bureau,
    auth::{ACTOR_HEADER, AUTHORIZATION, Actor, encode_actor},
    telemetry::PropagateTrace,
};
use supervision_proto::registry::{self as rpb, registry_service_client::RegistryServiceClient};
use tonic::{
    Code, Request,
    metadata::{MetadataValue, errors::InvalidMetadataValue},
    transport::Channel,
};

use crate::error::Error;

/// What a task needs to know of an institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    pub id: String,
    pub county: Bureau,
    pub active: bool,
}

/// The registry client, or the reason there is none.
#[derive(Debug, Clone)]
pub struct Registry {
    peer: Option<(Channel, String)>,
}

impl Registry {
    /// A registry reached over `channel` with `service_token`; without either, every call is
    /// `UNAVAILABLE` (dispatch still serves what needs no registry).
    pub fn new(channel: Option<Channel>, service_token: Option<String>) -> Self {
        match (&channel, &service_token) {
            (None, _) => tracing::warn!("no registry endpoint configured: tasks cannot be created"),
            (_, None) => tracing::warn!("no SERVICE token configured: tasks cannot be created"),
            _ => {}
        }
        Self { peer: channel.zip(service_token) }
    }

    /// The institution `id`, as the registry has it now.
    #[tracing::instrument(name = "registry.get_institution", skip_all)]
    pub async fn institution(&self, id: &str, actor: &Actor) -> Result<Institution, Error> {
        let Some((channel, token)) = &self.peer else {
            return Err(Error::RegistryUnavailable("no registry endpoint or SERVICE token is configured".into()));
        };
        let mut request = Request::new(rpb::GetInstitutionRequest { id: id.to_owned() });
        let bearer: MetadataValue<_> = format!("Bearer {token}")
            .parse()
            .map_err(|e: InvalidMetadataValue| Error::RegistryUnavailable(format!("bad SERVICE token: {e}")))?;
        request.metadata_mut().insert(AUTHORIZATION, bearer);
        request.metadata_mut().insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&encode_actor(actor)));
        let mut client = RegistryServiceClient::with_interceptor(channel.clone(), PropagateTrace);
        let found = match client.get_institution(request).await {
            Ok(response) => response.into_inner().institution,
            Err(status) if status.code() == Code::NotFound => return Err(Error::InstitutionNotFound(id.to_owned())),
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "the registry did not answer");
                return Err(Error::RegistryUnavailable(format!(
                    "the registry answered {:?}: {}",
                    status.code(),
                    status.message()
                )));
            }
        };
        let institution = found.ok_or_else(|| Error::RegistryUnavailable("the registry sent no institution".into()))?;
        let county = Bureau::from_proto(institution.county)
            .ok_or_else(|| Error::RegistryUnavailable(format!("institution {id} has no county the system knows")))?;
        Ok(Institution {
            id: institution.id,
            county,
            active: institution.status == rpb::InstitutionStatus::Active as i32,
        })
    }
}
