//! Thin handlers of `supervision.recruitment.v1.RecruitmentService`.

use supervision_kit::{
    Caller, Db, Role, SharedClock, audit,
    idempotency::{self, Begun, Command},
};
use supervision_proto::recruitment::{self as pb, recruitment_service_server::RecruitmentService};
use tonic::{Request, Response, Status};

use crate::{calls, convert};

const CREATE_CALL: &str = "/supervision.recruitment.v1.RecruitmentService/CreateCall";

/// Drafts and cancelled drafts are the city bureau's working papers (article 7(一) publishes the
/// call, not its drafts): only city roles and auditors see them; everyone else sees a call once
/// it is public.
fn sees_public_calls_only(caller: &Caller) -> bool {
    !matches!(caller.role, Role::CityAdmin | Role::CityReviewer | Role::CityOperator | Role::Auditor)
}

#[derive(Debug, Clone)]
pub struct Recruitment {
    db: Db,
    clock: SharedClock,
}

impl Recruitment {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }
}

#[tonic::async_trait]
impl RecruitmentService for Recruitment {
    async fn create_call(
        &self,
        request: Request<pb::CreateCallRequest>,
    ) -> Result<Response<pb::CreateCallResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_CALL, &message.request_id, &message)?;
        let details = convert::new_call(message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let call = calls::create(claim.tx(), &self.db, &self.clock, &caller, &command, details).await?;
        let response = pb::CreateCallResponse { call: Some(convert::call_to_proto(call)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_call(&self, request: Request<pb::GetCallRequest>) -> Result<Response<pb::GetCallResponse>, Status> {
        let public_only = sees_public_calls_only(Caller::of(&request)?);
        let id = convert::call_id(&request.get_ref().id, "id")?;
        let call = calls::get(&self.db, &id, public_only).await?;
        Ok(Response::new(pb::GetCallResponse { call: Some(convert::call_to_proto(call)) }))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        let public_only = sees_public_calls_only(Caller::of(&request)?);
        let (mut filter, page) = convert::call_listing(request.get_ref())?;
        filter.public_only = public_only;
        let (items, next) = calls::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListCallsResponse {
            calls: items.into_iter().map(convert::call_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_audit_head(
        &self,
        _request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let head = audit::api::get_head(&self.db, "recruitment").await?;
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
