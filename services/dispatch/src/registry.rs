//! The registry as dispatch reads it synchronously: `GetInstitution` over the channel of
//! `Foundation.peers["registry"]`, with this service's SERVICE token, the acting user in
//! `supervision-actor-bin` and the current trace context.
//!
//! Nothing is written while the registry cannot answer: the use cases ask it before they open
//! their transaction, and any answer other than the institution or "not found" is
//! `UNAVAILABLE`, which the client may retry with the same `request_id`.

use std::{collections::HashSet, sync::Arc, time::Instant};

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

use crate::{
    domain::PoolExpert,
    error::Error,
    pool_copy::{PoolCopy, SyncAnswer},
};

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
    /// The pool as last read, brought up to date by each read (`pool_copy`); one read at a time.
    copy: Arc<tokio::sync::Mutex<PoolCopy>>,
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
        Self {
            peer: channel.zip(service_token),
            timeouts: PeerTimeouts::default(),
            copy: Arc::new(tokio::sync::Mutex::new(PoolCopy::default())),
        }
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

    /// Every appointed expert of the registry's pool for `institution_id` and the task's session
    /// `dates` (ARCHITECTURE.md "The draw" step 1), as one StreamDrawPool sync read brings this
    /// service's copy up to date (`pool_copy`), whole or not at all: a stream that breaks, runs
    /// past its deadline or ends with other counts than it sent is `UNAVAILABLE` (the copy is left
    /// as it was), and an unknown institution is "not found".
    #[tracing::instrument(name = "registry.stream_draw_pool", skip_all, fields(pool = tracing::field::Empty, changed = tracing::field::Empty))]
    pub async fn draw_pool(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        actor: &Actor,
    ) -> Result<Vec<Arc<PoolExpert>>, Error> {
        let pool = self.synced_pool(institution_id, dates, task_id, None, actor).await?;
        tracing::Span::current().record("pool", pool.len());
        Ok(pool)
    }

    /// The experts of `ids` that the pool of [`Self::draw_pool`] holds, with the same facts and
    /// from the same kind of read; an id the pool does not hold is absent from the answer. The
    /// same refusals as `draw_pool`.
    #[tracing::instrument(name = "registry.draw_pool_experts", skip_all, fields(asked = ids.len(), found = tracing::field::Empty, changed = tracing::field::Empty))]
    pub async fn pool_experts(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        ids: &[String],
        actor: &Actor,
    ) -> Result<Vec<PoolExpert>, Error> {
        let only: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let found: Vec<PoolExpert> = self
            .synced_pool(institution_id, dates, task_id, Some(&only), actor)
            .await?
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect();
        tracing::Span::current().record("found", found.len());
        Ok(found)
    }

    /// Brings the copy up to date with one sync read and answers its pool for the task (only the
    /// experts of `only` when given). A registry that answers without a version (one from before
    /// sync reads) has sent the task's pool itself, which is used as it is.
    async fn synced_pool(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        only: Option<&HashSet<&str>>,
        actor: &Actor,
    ) -> Result<Vec<Arc<PoolExpert>>, Error> {
        let mut copy = self.copy.lock().await;
        let asked_at = Instant::now();
        let since = copy.since(asked_at).to_owned();
        let answer = self.stream_pool(institution_id, dates, task_id, &since, actor).await?;
        tracing::Span::current().record("changed", answer.experts.len() + answer.removed.len());
        if answer.end.version.is_empty() {
            let pool = answer.experts.into_iter().map(|e| Arc::new(pool_expert(e)));
            return Ok(match only {
                Some(ids) => pool.filter(|e| ids.contains(e.id.as_str())).collect(),
                None => pool.collect(),
            });
        }
        let overlay = copy.apply(answer, asked_at);
        Ok(copy.pool(dates, &overlay, only))
    }

    /// One StreamDrawPool sync read since `since`, whole or not at all.
    async fn stream_pool(
        &self,
        institution_id: &str,
        dates: &[NaiveDate],
        task_id: &str,
        since: &str,
        actor: &Actor,
    ) -> Result<SyncAnswer, Error> {
        let Some((channel, token)) = &self.peer else {
            return Err(Error::RegistryUnavailable("no registry endpoint or SERVICE token is configured".into()));
        };
        let message = rpb::StreamDrawPoolRequest {
            institution_id: institution_id.to_owned(),
            session_dates: dates.iter().map(|d| supervision_kit::convert::date(*d)).collect(),
            task_id: task_id.to_owned(),
            expert_ids: Vec::new(),
            sync: true,
            since_version: since.to_owned(),
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
            let mut answer = SyncAnswer::default();
            loop {
                match stream.message().await {
                    Ok(Some(batch)) => {
                        answer.experts.extend(batch.experts);
                        answer.removed.extend(batch.removed_expert_ids);
                        if let Some(end) = batch.end {
                            let counts = (usize::try_from(end.expert_count), usize::try_from(end.removed_count));
                            if counts != (Ok(answer.experts.len()), Ok(answer.removed.len())) {
                                return Err(Error::RegistryUnavailable(format!(
                                    "the registry announced {} experts and {} removals and sent {} and {}",
                                    end.expert_count,
                                    end.removed_count,
                                    answer.experts.len(),
                                    answer.removed.len()
                                )));
                            }
                            answer.end = end;
                            return Ok(answer);
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

pub(crate) fn day(d: Option<&supervision_proto::common::Date>) -> Option<NaiveDate> {
    d.and_then(|d| NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?))
}

pub(crate) fn pool_expert(e: rpb::DrawPoolExpert) -> PoolExpert {
    let active = rpb::ExpertStatus::Active as i32;
    let term = e.term.as_ref().and_then(|t| day(t.start.as_ref()).zip(day(t.end.as_ref())));
    let leaves_on =
        e.scheduled_change.as_ref().filter(|c| c.status != active).and_then(|c| day(c.effective_date.as_ref()));
    let mut expert = PoolExpert {
        id: e.expert_id,
        active: e.status == active,
        term,
        trained: e.trained,
        employer_key: e.employer_key,
        conflicted: false,
        employed_by_institution: false,
        leaves_on,
        specialties: e.specialties.into_iter().map(|s| s.code).collect(),
    };
    set_conflicts(&mut expert, &e.conflicts);
    expert
}

/// The registry's conflict reasons for `expert`, as the exclusions need them.
pub(crate) fn set_conflicts(expert: &mut PoolExpert, reasons: &[rpb::ConflictReason]) {
    expert.conflicted = !reasons.is_empty();
    expert.employed_by_institution = reasons.iter().any(|c| {
        c.relation_type == supervision_proto::common::RelationType::CurrentEmployment as i32
            || c.path == rpb::ConflictPath::Employer as i32
    });
}
