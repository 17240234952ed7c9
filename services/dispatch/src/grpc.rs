//! Thin handlers of `supervision.dispatch.v1.DispatchService`.

use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
};
use supervision_proto::dispatch::{self as pb, dispatch_service_server::DispatchService};
use supervision_reference::{Reference, shanghai_today};
use tonic::{Request, Response, Status};

use crate::{
    convert,
    domain::{NewTask, TaskVisibility, Visibility},
    error::Error,
    registry::{Institution, Registry},
    submissions,
    tasks::{self, Planned},
};

const CREATE_SUBMISSION: &str = "/supervision.dispatch.v1.DispatchService/CreateSubmission";
const CREATE_TASK: &str = "/supervision.dispatch.v1.DispatchService/CreateTask";
const CANCEL_TASK: &str = "/supervision.dispatch.v1.DispatchService/CancelTask";
const APPROVE_TASK_EXCEPTION: &str = "/supervision.dispatch.v1.DispatchService/ApproveTaskException";

#[derive(Debug, Clone)]
pub struct Dispatch {
    db: Db,
    clock: SharedClock,
    reference: Reference,
    registry: Registry,
}

impl Dispatch {
    pub fn new(db: Db, clock: SharedClock, reference: Reference, registry: Registry) -> Self {
        Self { db, clock, reference, registry }
    }

    /// The checks of a new task that depend on today and on the registry, which may refuse now
    /// what they allowed when the command first ran.
    async fn check_new_task(&self, caller: &Caller, details: &NewTask) -> Result<(Planned, Institution), Status> {
        let planned = tasks::plan(&self.reference, shanghai_today(&self.clock), details)?;
        let institution = self.registry.institution(&details.institution_id, &caller.actor()).await?;
        tasks::check_institution(details, &planned, &institution).map_err(Error::from)?;
        Ok((planned, institution))
    }

    /// `refusal`, unless `command` is a retry of one that succeeded: then its first answer.
    /// Nothing is written either way (the claim taken to find out is rolled back).
    async fn replay_or<R: prost::Message + Default>(
        &self,
        command: &Command,
        refusal: Status,
    ) -> Result<Response<R>, Status> {
        match idempotency::begin::<R>(&self.db, &self.clock, command).await? {
            Begun::Replay(response) => Ok(Response::new(response)),
            Begun::Fresh(claim) => {
                drop(claim);
                Err(refusal)
            }
        }
    }
}

#[tonic::async_trait]
impl DispatchService for Dispatch {
    /// Checks run before the transaction, in this order: the request's fields, the caller's
    /// bureau (D13), the origin submission, the editions and the calendar (D3, D6, D7), then the
    /// registry's institution. A retry of a creation that succeeded gets its first answer even
    /// when the clock or the registry would refuse it now.
    async fn create_task(
        &self,
        request: Request<pb::CreateTaskRequest>,
    ) -> Result<Response<pb::CreateTaskResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CREATE_TASK, &message.request_id, &message)?;
        let mut details = convert::new_task(message)?;
        caller.require_bureau(details.bureau)?;
        tasks::resolve_origin(&self.db, &caller, &mut details).await?;
        let (planned, institution) = match self.check_new_task(&caller, &details).await {
            Ok(checked) => checked,
            Err(refusal) => return self.replay_or(&command, refusal).await,
        };
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let task =
            tasks::create(claim.tx(), &self.db, &self.clock, &caller, &command, details, planned, &institution).await?;
        let response = pb::CreateTaskResponse { task: Some(convert::task_to_proto(task)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn approve_task_exception(
        &self,
        request: Request<pb::ApproveTaskExceptionRequest>,
    ) -> Result<Response<pb::ApproveTaskExceptionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, APPROVE_TASK_EXCEPTION, &message.request_id, &message)?;
        let (id, kind, reason, reduced) = convert::approval(&message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let task =
            tasks::approve_exception(claim.tx(), &self.db, &self.clock, &caller, &command, &id, kind, reason, reduced)
                .await?;
        let response = pb::ApproveTaskExceptionResponse { task: Some(convert::task_to_proto(task)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn cancel_task(
        &self,
        request: Request<pb::CancelTaskRequest>,
    ) -> Result<Response<pb::CancelTaskResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CANCEL_TASK, &message.request_id, &message)?;
        let (id, reason) = convert::cancellation(&message)?;
        let mut claim = match idempotency::begin(&self.db, &self.clock, &command).await? {
            Begun::Replay(response) => return Ok(Response::new(response)),
            Begun::Fresh(claim) => claim,
        };
        let task = tasks::cancel(claim.tx(), &self.db, &self.clock, &caller, &command, &id, reason).await?;
        let response = pb::CancelTaskResponse { task: Some(convert::task_to_proto(task)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_task(&self, request: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskResponse>, Status> {
        let visibility = TaskVisibility::of(Caller::of(&request)?);
        let id = convert::task_id(&request.get_ref().id, "id")?;
        let task = tasks::get(&self.db, &id, visibility).await?;
        Ok(Response::new(pb::GetTaskResponse { task: Some(convert::task_to_proto(task)) }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        let visibility = TaskVisibility::of(Caller::of(&request)?);
        let (filter, page) = convert::task_listing(request.get_ref(), visibility)?;
        let (items, next) = tasks::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: items.into_iter().map(convert::task_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

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
