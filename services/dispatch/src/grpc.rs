//! Thin handlers of `supervision.dispatch.v1.DispatchService`.

use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
};
use supervision_proto::dispatch::{self as pb, dispatch_service_server::DispatchService};
use tonic::{Request, Response, Status};

use crate::{convert, domain::Visibility, submissions};

const CREATE_SUBMISSION: &str = "/supervision.dispatch.v1.DispatchService/CreateSubmission";

#[derive(Debug, Clone)]
pub struct Dispatch {
    db: Db,
    clock: SharedClock,
}

impl Dispatch {
    pub fn new(db: Db, clock: SharedClock) -> Self {
        Self { db, clock }
    }
}

#[tonic::async_trait]
impl DispatchService for Dispatch {
    async fn create_submission(
        &self,
        request: Request<pb::CreateSubmissionRequest>,
    ) -> Result<Response<pb::CreateSubmissionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_SUBMISSION, &message.request_id, &message)?;
        let details = convert::new_submission(message, self.clock.now())?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let submission = submissions::create(claim.tx(), &self.db, &self.clock, &caller, &command, details).await?;
        let response = pb::CreateSubmissionResponse { submission: Some(convert::submission_to_proto(submission)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_submission(
        &self,
        request: Request<pb::GetSubmissionRequest>,
    ) -> Result<Response<pb::GetSubmissionResponse>, Status> {
        let visibility = Visibility::of(Caller::of(&request)?);
        let id = convert::submission_id(&request.get_ref().id, "id")?;
        let submission = submissions::get(&self.db, &id, &visibility).await?;
        Ok(Response::new(pb::GetSubmissionResponse { submission: Some(convert::submission_to_proto(submission)) }))
    }

    async fn list_submissions(
        &self,
        request: Request<pb::ListSubmissionsRequest>,
    ) -> Result<Response<pb::ListSubmissionsResponse>, Status> {
        let visibility = Visibility::of(Caller::of(&request)?);
        let (filter, page) = convert::submission_listing(request.get_ref(), visibility)?;
        let (items, next) = submissions::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListSubmissionsResponse {
            submissions: items.into_iter().map(convert::submission_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_audit_head(
        &self,
        _request: Request<pb::GetAuditHeadRequest>,
    ) -> Result<Response<pb::GetAuditHeadResponse>, Status> {
        let head = audit::api::get_head(&self.db, "dispatch").await?;
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
