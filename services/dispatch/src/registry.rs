//! The registry as dispatch reads it synchronously: `GetInstitution` over the channel of
//! `Foundation.peers["registry"]`, with this service's SERVICE token, the acting user in
//! `supervision-actor-bin` and the current trace context.
//!
//! Nothing is written while the registry cannot answer: the use cases ask it before they open
//! their transaction, and any answer other than the institution or "not found" is
//! `UNAVAILABLE`, which the client may retry with the same `request_id`.

use chrono::NaiveDate;
use supervision_kit::{
    Bureau,
    auth::{ACTOR_HEADER, AUTHORIZATION, Actor, encode_actor},
    client::{PeerTimeouts, deadline},
    telemetry::PropagateTrace,
};
use supervision_proto::registry::{self as rpb, registry_service_client::RegistryServiceClient};
use tonic::{
    Code, Request,
    metadata::{MetadataValue, errors::InvalidMetadataValue},
    transport::Channel,
};

use crate::{domain::PoolExpert, error::Error};

/// The most ids one StreamDrawPool request may name (the registry's bound).
pub const IDS_PER_REQUEST: usize = 1000;

/// What a task needs to know of an institution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Institution {
    pub id: String,
    pub county: Bureau,
    pub active: bool,
    pub name: String,
}

/// The registry client, or the reason there is none.
#[derive(Debug, Clone)]
pub struct Registry {
    peer: Option<(Channel, String)>,
    /// GetInstitution's deadline (`call`), and a whole pool's, every stream of it (`stream`):
    /// past either the use case answers UNAVAILABLE having written nothing. Never retried here:
    /// the client retries with the same `request_id`.
    timeouts: PeerTimeouts,
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
        Self { peer: channel.zip(service_token), timeouts: PeerTimeouts::default() }
    }

    /// The same registry with these deadlines (`--peer-timeout-seconds`,
    /// `--peer-stream-timeout-seconds`).
    pub fn with_timeouts(mut self, timeouts: PeerTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The institution `id`, as the registry has it now.
    #[tracing::instrument(name = "registry.get_institution", skip_all)]
    pub async fn institution(&self, id: &str, actor: &Actor) -> Result<Institution, Error> {
        let Some((channel, token)) = &self.peer else {
            return Err(Error::RegistryUnavailable("no registry endpoint or SERVICE token is configured".into()));
        };
        let mut request = authorised(rpb::GetInstitutionRequest { id: id.to_owned() }, token, actor)?;
        request.set_timeout(self.timeouts.call);
        let mut client = RegistryServiceClient::with_interceptor(channel.clone(), PropagateTrace);
        let found = match deadline(self.timeouts.call, "GetInstitution", client.get_institution(request)).await {
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
            name: institution.name,
            id: institution.id,
            county,
            active: institution.status == rpb::InstitutionStatus::Active as i32,
        })
    }

    /// Every appointed expert the registry streams for `institution_id` and the task's session
    /// `dates` (StreamDrawPool, ARCHITECTURE.md "The draw" step 1), whole or not at all: a stream
    /// that breaks, runs past its deadline or ends with another count than it sent is
    /// `UNAVAILABLE`, and an unknown institution is "not found".
    #[tracing::instrument(name = "registry.stream_draw_pool", skip_all, fields(pool = tracing::field::Empty))]
    pub async fn draw_pool(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        actor: &Actor,
    ) -> Result<Vec<PoolExpert>, Error> {
        let pool = self.stream_pool(institution_id, dates, task_id, Vec::new(), actor).await?;
        tracing::Span::current().record("pool", pool.len());
        Ok(pool)
    }

    /// The experts of `ids` that the pool of [`Self::draw_pool`] holds, with the same facts
    /// (StreamDrawPoolRequest.expert_ids, asked [`IDS_PER_REQUEST`] at a time); an id the pool does
    /// not hold is absent from the answer. The same refusals as `draw_pool`.
    #[tracing::instrument(name = "registry.draw_pool_experts", skip_all, fields(asked = ids.len(), found = tracing::field::Empty))]
    pub async fn pool_experts(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        ids: &[String],
        actor: &Actor,
    ) -> Result<Vec<PoolExpert>, Error> {
        // One deadline for every chunk together, as for a whole pool.
        let all = async {
            let mut found = Vec::new();
            for chunk in ids.chunks(IDS_PER_REQUEST) {
                found.extend(self.stream_pool(institution_id, dates, task_id, chunk.to_vec(), actor).await?);
            }
            Ok::<_, Error>(found)
        };
        let found = tokio::time::timeout(self.timeouts.stream, all)
            .await
            .map_err(|_| Error::RegistryUnavailable("the pool streams ran past their deadline".into()))??;
        tracing::Span::current().record("found", found.len());
        Ok(found)
    }

    /// One StreamDrawPool call, whole or not at all.
    async fn stream_pool(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        expert_ids: Vec<String>,
        actor: &Actor,
    ) -> Result<Vec<PoolExpert>, Error> {
        let Some((channel, token)) = &self.peer else {
            return Err(Error::RegistryUnavailable("no registry endpoint or SERVICE token is configured".into()));
        };
        let message = rpb::StreamDrawPoolRequest {
            institution_id: institution_id.to_owned(),
            session_dates: dates.iter().map(|d| supervision_kit::convert::date(*d)).collect(),
            task_id: task_id.to_owned(),
            expert_ids,
        };
        let mut request = authorised(message, token, actor)?;
        request.set_timeout(self.timeouts.stream);
        let mut client = RegistryServiceClient::with_interceptor(channel.clone(), PropagateTrace);
        let unavailable = |status: tonic::Status| {
            tracing::warn!(code = ?status.code(), message = status.message(), "the draw pool did not arrive");
            Error::RegistryUnavailable(format!("the registry answered {:?}: {}", status.code(), status.message()))
        };
        let collect = async {
            let mut stream = match client.stream_draw_pool(request).await {
                Ok(response) => response.into_inner(),
                Err(status) if status.code() == Code::NotFound => {
                    return Err(Error::InstitutionNotFound(institution_id.to_owned()));
                }
                Err(status) => return Err(unavailable(status)),
            };
            let mut pool = Vec::new();
            loop {
                match stream.message().await {
                    Ok(Some(batch)) => {
                        pool.extend(batch.experts.into_iter().map(pool_expert));
                        if let Some(end) = batch.end {
                            if usize::try_from(end.expert_count).ok() != Some(pool.len()) {
                                return Err(Error::RegistryUnavailable(format!(
                                    "the registry announced {} experts and sent {}",
                                    end.expert_count,
                                    pool.len()
                                )));
                            }
                            return Ok(pool);
                        }
                    }
                    Ok(None) => {
                        return Err(Error::RegistryUnavailable("the pool stream ended without its count".into()));
                    }
                    Err(status) => return Err(unavailable(status)),
                }
            }
        };
        tokio::time::timeout(self.timeouts.stream, collect)
            .await
            .map_err(|_| Error::RegistryUnavailable("the pool stream ran past its deadline".into()))?
    }
}

/// `message` with the SERVICE token and the acting user (trace context is added by the
/// interceptor).
fn authorised<M>(message: M, token: &str, actor: &Actor) -> Result<Request<M>, Error> {
    let mut request = Request::new(message);
    let bearer: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|e: InvalidMetadataValue| Error::RegistryUnavailable(format!("bad SERVICE token: {e}")))?;
    request.metadata_mut().insert(AUTHORIZATION, bearer);
    request.metadata_mut().insert_bin(ACTOR_HEADER, MetadataValue::from_bytes(&encode_actor(actor)));
    Ok(request)
}

fn day(d: Option<&supervision_proto::common::Date>) -> Option<NaiveDate> {
    d.and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
}

fn pool_expert(e: rpb::DrawPoolExpert) -> PoolExpert {
    let active = rpb::ExpertStatus::Active as i32;
    let term = e.term.as_ref().and_then(|t| day(t.start.as_ref()).zip(day(t.end.as_ref())));
    let leaves_on =
        e.scheduled_change.as_ref().filter(|c| c.status != active).and_then(|c| day(c.effective_date.as_ref()));
    PoolExpert {
        id: e.expert_id,
        active: e.status == active,
        term,
        trained: e.trained,
        employer_key: e.employer_key,
        conflicted: !e.conflicts.is_empty(),
        employed_by_institution: e.conflicts.iter().any(|c| {
            c.relation_type == supervision_proto::common::RelationType::CurrentEmployment as i32
                || c.path == rpb::ConflictPath::Employer as i32
        }),
        leaves_on,
        specialties: e.specialties.into_iter().map(|s| s.code).collect(),
    }
}
