//! Thin handlers of `supervision.registry.v1.RegistryService`: who is calling, convert, run the
//! use case (idempotently when it changes state), convert back.

use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
};
use supervision_proto::registry::{self as pb, registry_service_server::RegistryService};
use tonic::{Request, Response, Status};

use crate::{convert, institutions};

const CREATE_INSTITUTION: &str = "/supervision.registry.v1.RegistryService/CreateInstitution";

#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
    clock: SharedClock,
}

impl Registry {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn create_institution(
        &self,
        request: Request<pb::CreateInstitutionRequest>,
    ) -> Result<Response<pb::CreateInstitutionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_INSTITUTION, &message.request_id, &message)?;
        let new = convert::new_institution(message)?;
        caller.require_bureau(new.county)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let institution = institutions::create(claim.tx(), &self.db, &self.clock, &caller, &command, new).await?;
        let response = pb::CreateInstitutionResponse { institution: Some(convert::institution_to_proto(institution)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_institution(
        &self,
        request: Request<pb::GetInstitutionRequest>,
    ) -> Result<Response<pb::GetInstitutionResponse>, Status> {
        let id = convert::institution_id(&request.get_ref().id, "id")?;
        let institution = institutions::get(&self.db, &id).await?;
        Ok(Response::new(pb::GetInstitutionResponse { institution: Some(convert::institution_to_proto(institution)) }))
    }

    async fn list_institutions(
        &self,
        request: Request<pb::ListInstitutionsRequest>,
    ) -> Result<Response<pb::ListInstitutionsResponse>, Status> {
        let (filter, page) = convert::institution_listing(request.get_ref())?;
        let (items, next) = institutions::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListInstitutionsResponse {
            institutions: items.into_iter().map(convert::institution_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_audit_head(
        &self,
        _request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let head = audit::api::get_head(&self.db, "registry").await?;
        Ok(Response::new(pb::GetAuditHeadResponse { head: Some(head) }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let r = request.get_ref();
        let (entries, next_page_token) =
            audit::api::list(&self.db, r.page.as_ref(), r.start_sequence, &r.entity_type, &r.entity_id).await?;
        Ok(Response::new(pb::ListAuditEntriesResponse { entries, next_page_token }))
    }
}
