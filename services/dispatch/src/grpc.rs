//! Thin handlers of `supervision.dispatch.v1.DispatchService`.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use supervision_kit::{
    Caller, Db, SharedClock, audit,
    idempotency::{self, Begun, Command},
    lock::Locks,
};
use supervision_proto::dispatch::{self as pb, dispatch_service_server::DispatchService};
use supervision_reference::{Reference, shanghai_today};
use tonic::{Request, Response, Status};

use crate::{
    attachments, convert,
    domain::{DrawKind, NewTask, PoolExpert, ReportId, ResponseKind, TaskId, TaskVisibility, Visibility},
    draws::{self, Attempt, ToExecute},
    error::Error,
    notify,
    registry::{Institution, Registry},
    reports::{self, Review},
    responses::{self, Attempt as Refill},
    submissions,
    tasks::{self, Planned},
    yearly,
};

const CREATE_SUBMISSION: &str = "/supervision.dispatch.v1.DispatchService/CreateSubmission";
const CREATE_TASK: &str = "/supervision.dispatch.v1.DispatchService/CreateTask";
const UPDATE_TASK: &str = "/supervision.dispatch.v1.DispatchService/UpdateTask";
const ACKNOWLEDGE_NOTIFICATION: &str = "/supervision.dispatch.v1.DispatchService/AcknowledgeNotification";
const UPLOAD_ATTACHMENT: &str = "/supervision.dispatch.v1.DispatchService/UploadAttachment";
const CANCEL_TASK: &str = "/supervision.dispatch.v1.DispatchService/CancelTask";
const APPROVE_TASK_EXCEPTION: &str = "/supervision.dispatch.v1.DispatchService/ApproveTaskException";
const PREPARE_DRAW: &str = "/supervision.dispatch.v1.DispatchService/PrepareDraw";
const WITNESS_DRAW: &str = "/supervision.dispatch.v1.DispatchService/WitnessDraw";
const EXECUTE_DRAW: &str = "/supervision.dispatch.v1.DispatchService/ExecuteDraw";
const EXPERT_STATUS_CHANGED: &str = "/supervision.dispatch.v1.DispatchService/ExpertStatusChanged";
const RECORD_WORKED_SESSIONS: &str = "/supervision.dispatch.v1.DispatchService/RecordWorkedSessions";
const SUBMIT_REPORT: &str = "/supervision.dispatch.v1.DispatchService/SubmitReport";
const ACCEPT_REPORT: &str = "/supervision.dispatch.v1.DispatchService/AcceptReport";
const CORRECT_REPORT: &str = "/supervision.dispatch.v1.DispatchService/CorrectReport";
const VOID_REPORT: &str = "/supervision.dispatch.v1.DispatchService/VoidReport";
const ABANDON_DRAW: &str = "/supervision.dispatch.v1.DispatchService/AbandonDraw";
const VOID_DRAW: &str = "/supervision.dispatch.v1.DispatchService/VoidDraw";
const CANCEL_ASSIGNMENT: &str = "/supervision.dispatch.v1.DispatchService/CancelAssignment";
const RECORD_NO_SHOW: &str = "/supervision.dispatch.v1.DispatchService/RecordNoShow";
const LIST_ASSIGNMENTS: &str = "/supervision.dispatch.v1.DispatchService/ListAssignments";
const GET_ASSIGNMENT: &str = "/supervision.dispatch.v1.DispatchService/GetAssignment";
const ASSIGN_SUBMISSION: &str = "/supervision.dispatch.v1.DispatchService/AssignSubmission";
const ANSWER_SUBMISSION: &str = "/supervision.dispatch.v1.DispatchService/AnswerSubmission";
const CLOSE_SUBMISSION: &str = "/supervision.dispatch.v1.DispatchService/CloseSubmission";
const RETURN_REPORT: &str = "/supervision.dispatch.v1.DispatchService/ReturnReport";
const RESPOND_TO_ASSIGNMENT: &str = "/supervision.dispatch.v1.DispatchService/RespondToAssignment";

#[derive(Debug, Clone)]
pub struct Dispatch {
    db: Db,
    clock: SharedClock,
    reference: Reference,
    registry: Registry,
    locks: Locks,
    /// Frozen lists of draws prepared here, for their execution.
    prepared: draws::PreparedLists,
}

impl Dispatch {
    /// AcceptReport, CorrectReport and VoidReport: the review and its revision to finance in one
    /// transaction.
    async fn review_report(
        &self,
        caller: &Caller,
        command: &Command,
        id: &ReportId,
        review: Review,
    ) -> Result<pb::Report, Status> {
        let mut claim = match idempotency::begin::<pb::GetReportResponse>(&self.db, &self.clock, command).await? {
            Begun::Replay(response) => {
                return response.report.ok_or_else(|| Status::internal("a stored answer without its report"));
            }
            Begun::Fresh(claim) => claim,
        };
        let report = reports::review(claim.tx(), &self.db, &self.clock, caller, command, id, review).await?;
        let proto = convert::report_to_proto(&report);
        claim.finish(&pb::GetReportResponse { report: Some(proto.clone()) }).await?;
        Ok(proto)
    }

    pub fn new(db: Db, clock: SharedClock, reference: Reference, registry: Registry, locks: Locks) -> Self {
        Self { db, clock, reference, registry, locks, prepared: draws::PreparedLists::default() }
    }

    /// The pool of a task that can be drawn for, from the registry (step 1).
    async fn pool_for(
        &self,
        caller: &Caller,
        task_id: &TaskId,
        kind: DrawKind,
    ) -> Result<Vec<std::sync::Arc<PoolExpert>>, Error> {
        let task = draws::task_to_draw(&self.db, caller, task_id, kind).await?;
        let (_, dates) = draws::slots(&task);
        let started = std::time::Instant::now();
        let pool =
            self.registry.draw_pool(&task.details.institution_id, &dates, task.id.as_str(), &caller.actor()).await;
        crate::metrics::stage(&self.db, crate::metrics::STAGE_POOL_STREAM, started);
        pool
    }

    /// One attempt at execution under the fence on `keys`: the response, or `None` to walk
    /// again.
    async fn execute_once(
        &self,
        caller: &Caller,
        command: &Command,
        x: &ToExecute,
        fresh: &draws::Recheck,
        keys: &[String],
    ) -> Result<Option<pb::ExecuteDrawResponse>, Status> {
        let mut claim = match idempotency::begin(&self.db, &self.clock, command).await? {
            Begun::Replay(response) => return Ok(Some(response)),
            Begun::Fresh(claim) => claim,
        };
        match draws::execute(claim.tx(), &self.db, &self.clock, caller, command, x, fresh, keys).await? {
            Attempt::Again => Ok(None),
            Attempt::Done(draw, assignments) => {
                let response = pb::ExecuteDrawResponse {
                    draw: Some(convert::draw_to_proto(&draw)),
                    assignments: assignments.iter().map(convert::assignment_to_proto).collect(),
                };
                claim.finish(&response).await?;
                Ok(Some(response))
            }
        }
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
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let task =
            tasks::create(claim.tx(), &self.db, &self.clock, &caller, &command, details, planned, &institution).await?;
        let response = pb::CreateTaskResponse { task: Some(convert::task_to_proto(task)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    /// The checks of CreateTask run again on the changed task, before the transaction: the
    /// editions and the calendar as of today (the lead time unless urgent), then the registry's
    /// institution and the county scope (D13). A retry of a change that succeeded gets its first
    /// answer even when they would refuse it now.
    async fn update_task(
        &self,
        request: Request<pb::UpdateTaskRequest>,
    ) -> Result<Response<pb::UpdateTaskResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPDATE_TASK, &message.request_id, &message)?;
        let (id, paths) = convert::task_update(&message)?;
        let current = match tasks::get(&self.db, &id, TaskVisibility::of(&caller)).await {
            Ok(task) if caller.require_bureau(task.bureau()).is_ok() => task,
            Ok(_) => return self.replay_or(&command, Error::TaskNotFound(id.to_string()).into()).await,
            Err(e) => return self.replay_or(&command, e.into()).await,
        };
        let fields = message.task.as_ref().expect("checked by task_update");
        let details = match convert::updated_task(&current, fields, &paths) {
            Ok(details) => details,
            Err(refusal) => return self.replay_or(&command, refusal).await,
        };
        let (planned, _) = match self.check_new_task(&caller, &details).await {
            Ok(checked) => checked,
            Err(refusal) => return self.replay_or(&command, refusal).await,
        };
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let task = tasks::update(
            claim.tx(),
            &self.db,
            &self.clock,
            &caller,
            &command,
            &current,
            message.expected_revision,
            details,
            planned,
        )
        .await?;
        let response = pb::UpdateTaskResponse { task: Some(convert::task_to_proto(task)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let mut v = supervision_kit::FieldViolations::new();
        let page = supervision_kit::Page::parse(message.page.as_ref(), "page", notify::is_notification_id, &mut v);
        let expert_id = (!message.expert_id.is_empty()).then(|| message.expert_id.clone());
        if expert_id.as_deref().is_some_and(|e| !supervision_kit::vocab::is_prefixed_id(e, "exp_")) {
            v.add("expert_id", "must be an expert id (exp_...)");
        }
        let bureau = match message.bureau {
            0 => None,
            raw => {
                let b = supervision_kit::Bureau::from_proto(raw);
                if b.is_none() {
                    v.add("bureau", "must be the city or a county bureau of D13");
                }
                b
            }
        };
        v.check()?;
        let inbox = notify::Inbox::of(&caller, expert_id, bureau)?;
        let (items, next) = notify::list(&self.db, &inbox, message.unread_only, &page).await?;
        Ok(Response::new(pb::ListNotificationsResponse {
            notifications: items.iter().map(notify::to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn acknowledge_notification(
        &self,
        request: Request<pb::AcknowledgeNotificationRequest>,
    ) -> Result<Response<pb::AcknowledgeNotificationResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, ACKNOWLEDGE_NOTIFICATION, &message.request_id, &message)?;
        if !notify::is_notification_id(&message.notification_id) {
            return Err(supervision_kit::error::invalid_field("notification_id", "is not a notification id (ntf_...)"));
        }
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let n =
            notify::acknowledge(claim.tx(), &self.db, &self.clock, &caller, &command, &message.notification_id).await?;
        let response = pb::AcknowledgeNotificationResponse { notification: Some(notify::to_proto(&n)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn list_yearly_acceptances(
        &self,
        request: Request<pb::ListYearlyAcceptancesRequest>,
    ) -> Result<Response<pb::ListYearlyAcceptancesResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let mut v = supervision_kit::FieldViolations::new();
        let page = supervision_kit::Page::parse(message.page.as_ref(), "page", yearly::is_page_token, &mut v);
        if !message.expert_id.is_empty() && !supervision_kit::vocab::is_prefixed_id(&message.expert_id, "exp_") {
            v.add("expert_id", "must be an expert id (exp_...)");
        }
        if message.year != 0 && !(2000..=2100).contains(&message.year) {
            v.add("year", "must be a calendar year (2000-2100), or 0 for every year");
        }
        v.check()?;
        let expert = yearly::scope(&caller, &message.expert_id)?;
        let year = (message.year != 0).then_some(message.year);
        let (items, next) = yearly::list(&self.db, expert.as_deref(), year, &page).await?;
        Ok(Response::new(pb::ListYearlyAcceptancesResponse {
            acceptances: items.iter().map(yearly::to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    /// The owner is checked before the transaction (visible to the caller, still taking files);
    /// a retry of an upload that succeeded gets its first answer.
    async fn upload_attachment(
        &self,
        request: Request<pb::UploadAttachmentRequest>,
    ) -> Result<Response<pb::UploadAttachmentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, UPLOAD_ATTACHMENT, &message.request_id, &message)?;
        let upload = attachments::upload(message)?;
        if let Err(refusal) = attachments::check_upload(&self.db, &caller, &upload).await {
            return self.replay_or(&command, refusal.into()).await;
        }
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let stored = attachments::store(claim.tx(), &self.db, &self.clock, &caller, &command, upload).await?;
        let response = pb::UploadAttachmentResponse { attachment: Some(stored.to_proto()) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_attachment(
        &self,
        request: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::GetAttachmentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let id = &request.get_ref().id;
        if !attachments::is_attachment_id(id) {
            return Err(supervision_kit::error::invalid_field("id", "is not an attachment id (att_...)"));
        }
        let (attachment, content) = attachments::get(&self.db, &caller, id).await?;
        Ok(Response::new(pb::GetAttachmentResponse { attachment: Some(attachment.to_proto()), content }))
    }

    async fn approve_task_exception(
        &self,
        request: Request<pb::ApproveTaskExceptionRequest>,
    ) -> Result<Response<pb::ApproveTaskExceptionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, APPROVE_TASK_EXCEPTION, &message.request_id, &message)?;
        let (id, kind, reason, reduced) = convert::approval(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
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
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let task = tasks::cancel(claim.tx(), &self.db, &self.clock, &caller, &command, &id, reason).await?;
        let response = pb::CancelTaskResponse { task: Some(convert::task_to_proto(task)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_task(&self, request: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = convert::task_id(&request.get_ref().id, "id")?;
        let task = if caller.role == supervision_kit::Role::Expert {
            tasks::get_for_expert(&self.db, &id, caller.expert_id.as_deref().unwrap_or_default()).await?
        } else {
            tasks::get(&self.db, &id, TaskVisibility::of(caller)).await?
        };
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
        let named = convert::submission_attachments(&message);
        let details = convert::new_submission(message, self.clock.now())?;
        attachments::check_named(&self.db, &caller, attachments::Scope::Submission, &named).await?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
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

    /// Steps 1-2: the pool streamed from the registry before the transaction; in it, D14's
    /// exclusions against the bookings as they stand, the frozen list and the seed commitment.
    async fn prepare_draw(
        &self,
        request: Request<pb::PrepareDrawRequest>,
    ) -> Result<Response<pb::PrepareDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, PREPARE_DRAW, &message.request_id, &message)?;
        let task_id = convert::task_id(&message.task_id, "task_id")?;
        let kind = match pb::DrawKind::try_from(message.kind) {
            Ok(pb::DrawKind::Unspecified | pb::DrawKind::Initial) => DrawKind::Initial,
            Ok(pb::DrawKind::Supplementary) => DrawKind::Supplementary,
            _ => return Err(supervision_kit::error::invalid_field("kind", "must be INITIAL or SUPPLEMENTARY")),
        };
        let pool = match self.pool_for(&caller, &task_id, kind).await {
            Ok(pool) => pool,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let rules = match draws::exclusion_rules(&self.db, &self.reference, &caller, &task_id, kind).await {
            Ok(rules) => rules,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let (draw, list) = draws::prepare(
            claim.tx(),
            &self.db,
            &self.clock,
            &caller,
            &command,
            &task_id,
            &pool,
            &rules,
            kind,
            &self.prepared,
        )
        .await?;
        let response = pb::PrepareDrawResponse { draw: Some(convert::draw_to_proto(&draw)) };
        claim.finish(&response).await?;
        self.prepared.keep(&draw.id, list, draw.untrained.unwrap_or_default());
        Ok(Response::new(response))
    }

    async fn witness_draw(
        &self,
        request: Request<pb::WitnessDrawRequest>,
    ) -> Result<Response<pb::WitnessDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, WITNESS_DRAW, &message.request_id, &message)?;
        let id = convert::draw_id(&message.draw_id, "draw_id")?;
        let dice = convert::dice(&message.dice_digits)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let draw = draws::witness(claim.tx(), &self.db, &self.clock, &caller, &command, &id, dice).await?;
        let response = pb::WitnessDrawResponse { draw: Some(convert::draw_to_proto(&draw)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    /// Steps 4-6: the order computed and the registry asked again (status, term, employer) about
    /// the head of the order before any transaction, a window at a time as far as the walk goes;
    /// then, under the fence's locks, the walk with the bookings as they stand, the assignments
    /// and bookings, and the record, in one transaction. A booking lost to a concurrent draw
    /// walks again; a retry of an execution that succeeded gets its first answer.
    async fn execute_draw(
        &self,
        request: Request<pb::ExecuteDrawRequest>,
    ) -> Result<Response<pb::ExecuteDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, EXECUTE_DRAW, &message.request_id, &message)?;
        let id = convert::draw_id(&message.draw_id, "draw_id")?;
        let x = match draws::to_execute(&self.db, &caller, &id, &self.prepared).await {
            Ok(x) => x,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let mut fresh = draws::Recheck::default();
        if let Err(refusal) = draws::widen(&self.db, &self.registry, &x, &mut fresh, &caller.actor()).await {
            return self.replay_or(&command, refusal.into()).await;
        }
        let mut attempts = 0;
        while attempts < draws::attempts() {
            let started = std::time::Instant::now();
            let keys = match draws::plan_fence(&self.db, &x, &fresh).await {
                Ok(Some(keys)) => keys,
                // The walk reaches candidates not asked about yet: ask about the next window.
                Ok(None) => match draws::widen(&self.db, &self.registry, &x, &mut fresh, &caller.actor()).await {
                    Ok(true) => continue,
                    Ok(false) => {
                        attempts += 1;
                        continue;
                    }
                    Err(refusal) => return self.replay_or(&command, refusal.into()).await,
                },
                Err(refusal) => return self.replay_or(&command, refusal.into()).await,
            };
            let guard = match draws::fence(&self.locks, &keys).await {
                Ok(guard) => guard,
                Err(refusal) => return self.replay_or(&command, refusal.into()).await,
            };
            crate::metrics::stage(&self.db, crate::metrics::STAGE_FENCE, started);
            let started = std::time::Instant::now();
            let outcome = self.execute_once(&caller, &command, &x, &fresh, &keys).await;
            crate::metrics::stage(&self.db, crate::metrics::STAGE_EXECUTE_RECORD, started);
            draws::unfence(&self.locks, guard).await;
            if let Some(response) = outcome? {
                return Ok(Response::new(response));
            }
            attempts += 1;
        }
        Err(Error::Busy("concurrent draws kept taking these experts' half-days".into()).into())
    }

    async fn abandon_draw(
        &self,
        request: Request<pb::AbandonDrawRequest>,
    ) -> Result<Response<pb::AbandonDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, ABANDON_DRAW, &message.request_id, &message)?;
        let (id, reason) = convert::draw_and_reason(&message.draw_id, &message.reason)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let draw = draws::abandon(claim.tx(), &self.db, &self.clock, &caller, &command, &id, &reason).await?;
        let response = pb::AbandonDrawResponse { draw: Some(convert::draw_to_proto(&draw)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn void_draw(&self, request: Request<pb::VoidDrawRequest>) -> Result<Response<pb::VoidDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, VOID_DRAW, &message.request_id, &message)?;
        let (id, reason) = convert::draw_and_reason(&message.draw_id, &message.reason)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let (draw, cancelled) = draws::void(claim.tx(), &self.db, &self.clock, &caller, &command, &id, &reason).await?;
        let response =
            pb::VoidDrawResponse { draw: Some(convert::draw_to_proto(&draw)), cancelled_assignment_ids: cancelled };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    /// D15's non-random designation (`designate.rs`): the request's fields, the task with its
    /// approved NON_RANDOM_DESIGNATION and the registry's pool before any transaction; then, under
    /// the fence on the experts' half-days, the hard exclusions against the bookings as they stand,
    /// the record, the assignments and bookings in one transaction. A retry of a designation that
    /// succeeded gets its first answer.
    async fn designate_experts(
        &self,
        request: Request<pb::DesignateExpertsRequest>,
    ) -> Result<Response<pb::DesignateExpertsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, crate::designate::METHOD, &message.request_id, &message)?;
        let asked = crate::designate::asked(&message)?;
        let plan = match crate::designate::plan(&self.db, &self.registry, &caller, &asked).await {
            Ok(plan) => plan,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let guard = match draws::fence(&self.locks, &plan.keys).await {
            Ok(guard) => guard,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let outcome = crate::designate::record(&self.db, &self.clock, &caller, &command, &asked, &plan).await;
        draws::unfence(&self.locks, guard).await;
        outcome
    }

    async fn get_dispatch_letter(
        &self,
        request: Request<pb::GetDispatchLetterRequest>,
    ) -> Result<Response<pb::GetDispatchLetterResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (selector, format) = convert::letter_request(request.get_ref())?;
        let view = crate::letters::get(&self.db, &caller, &selector).await?;
        let file = format.map(|f| convert::render_letter(&view, f));
        Ok(Response::new(pb::GetDispatchLetterResponse { letter: Some(convert::letter_to_proto(&view)), file }))
    }

    /// Answers only "valid for this institution on these dates" or "not valid"; the institution's
    /// name comes from the registry.
    async fn verify_dispatch_letter(
        &self,
        request: Request<pb::VerifyDispatchLetterRequest>,
    ) -> Result<Response<pb::VerifyDispatchLetterResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (number, code) = convert::letter_check(request.get_ref())?;
        let Some(view) = crate::letters::verify(&self.db, &number, &code).await? else {
            return Ok(Response::new(pb::VerifyDispatchLetterResponse::default()));
        };
        let institution = self.registry.institution(&view.institution_id, &caller.actor()).await?;
        Ok(Response::new(pb::VerifyDispatchLetterResponse {
            valid: true,
            institution_name: institution.name,
            session_dates: view.dates.iter().map(|d| supervision_kit::convert::date(*d)).collect(),
            holder_name_masked: String::new(),
        }))
    }

    async fn assign_submission(
        &self,
        request: Request<pb::AssignSubmissionRequest>,
    ) -> Result<Response<pb::AssignSubmissionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, ASSIGN_SUBMISSION, &message.request_id, &message)?;
        let (id, step) = convert::assign_step(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let submission = submissions::handle(claim.tx(), &self.db, &self.clock, &caller, &command, &id, step).await?;
        let response = pb::AssignSubmissionResponse { submission: Some(convert::submission_to_proto(submission)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn answer_submission(
        &self,
        request: Request<pb::AnswerSubmissionRequest>,
    ) -> Result<Response<pb::AnswerSubmissionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, ANSWER_SUBMISSION, &message.request_id, &message)?;
        let (id, step) = convert::answer_step(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let submission = submissions::handle(claim.tx(), &self.db, &self.clock, &caller, &command, &id, step).await?;
        let response = pb::AnswerSubmissionResponse { submission: Some(convert::submission_to_proto(submission)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn close_submission(
        &self,
        request: Request<pb::CloseSubmissionRequest>,
    ) -> Result<Response<pb::CloseSubmissionResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CLOSE_SUBMISSION, &message.request_id, &message)?;
        let (id, step) = convert::close_step(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let submission = submissions::handle(claim.tx(), &self.db, &self.clock, &caller, &command, &id, step).await?;
        let response = pb::CloseSubmissionResponse { submission: Some(convert::submission_to_proto(submission)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn get_draw(&self, request: Request<pb::GetDrawRequest>) -> Result<Response<pb::GetDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let id = convert::draw_id(&request.get_ref().id, "id")?;
        let draw = draws::get(&self.db, &caller, &id).await?;
        Ok(Response::new(pb::GetDrawResponse { draw: Some(convert::draw_to_proto(&draw)) }))
    }

    async fn list_draws(
        &self,
        request: Request<pb::ListDrawsRequest>,
    ) -> Result<Response<pb::ListDrawsResponse>, Status> {
        let visibility = TaskVisibility::of(Caller::of(&request)?);
        let (filter, page) = convert::draw_listing(request.get_ref(), visibility)?;
        let (items, next) = draws::list(&self.db, &filter, &page).await?;
        Ok(Response::new(pb::ListDrawsResponse {
            draws: items.iter().map(convert::draw_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn export_draw(
        &self,
        request: Request<pb::ExportDrawRequest>,
    ) -> Result<Response<pb::ExportDrawResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let id = convert::draw_id(&request.get_ref().draw_id, "draw_id")?;
        let draw = draws::executed(&self.db, &caller, &id).await?;
        let record = serde_json::to_vec_pretty(&draws::export_json(&draw)).map_err(supervision_kit::internal)?;
        let file = |file_name: String, media_type: &str, content: Vec<u8>| supervision_proto::common::FileContent {
            file_name,
            media_type: media_type.into(),
            sha256: hex::encode(Sha256::digest(&content)),
            content,
        };
        Ok(Response::new(pb::ExportDrawResponse {
            record: Some(file(format!("{}.json", draw.id), "application/json", record)),
            candidate_list: Some(file(
                "frozen_list.txt".into(),
                "text/plain",
                draw.frozen_list.clone().unwrap_or_default().into_bytes(),
            )),
        }))
    }

    async fn verify_draw(
        &self,
        request: Request<pb::VerifyDrawRequest>,
    ) -> Result<Response<pb::VerifyDrawResponse>, Status> {
        use supervision_draw::Mismatch as M;
        let caller = Caller::of(&request)?.clone();
        let id = convert::draw_id(&request.get_ref().draw_id, "draw_id")?;
        let draw = draws::executed(&self.db, &caller, &id).await?;
        let verification = supervision_draw::verify(&draws::record_of(&draw));
        let m = &verification.mismatches;
        let none = |f: fn(&M) -> bool| !m.iter().any(f);
        Ok(Response::new(pb::VerifyDrawResponse {
            verified: verification.is_consistent(),
            list_hash_matches: none(|x| {
                matches!(x, M::FrozenListMalformed(_) | M::FrozenListSha256 { .. } | M::CandidateCount { .. })
            }),
            commitment_matches: none(|x| {
                matches!(x, M::CommitmentMalformed(_) | M::ServerSeedMalformed(_) | M::CommitmentDoesNotOpen { .. })
            }),
            order_matches: none(|x| {
                matches!(
                    x,
                    M::DiceDigitsMalformed(_)
                        | M::OrderLength { .. }
                        | M::OrderPosition { .. }
                        | M::FurtherOrderMismatches { .. }
                        | M::Ticket { .. }
                )
            }),
            picks_consistent: none(|x| {
                matches!(
                    x,
                    M::NotACandidate { .. }
                        | M::PlacedTwice { .. }
                        | M::PlacedOutOfOrder { .. }
                        | M::UnexplainedPass { .. }
                        | M::SkippedAndPlaced { .. }
                )
            }),
            problems: m.iter().map(ToString::to_string).collect(),
        }))
    }

    async fn list_assignments(
        &self,
        request: Request<pb::ListAssignmentsRequest>,
    ) -> Result<Response<pb::ListAssignmentsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (filter, page) = convert::assignment_listing(request.get_ref(), TaskVisibility::of(&caller))?;
        let (items, next) = draws::assignments(&self.db, &caller, filter, &page).await?;
        crate::letters::audit_sealed_reads(&self.db, &self.clock, &caller, LIST_ASSIGNMENTS, &items).await?;
        Ok(Response::new(pb::ListAssignmentsResponse {
            assignments: crate::assignment_view::list_to_proto(&self.db, &items).await?,
            next_page_token: next.unwrap_or_default(),
        }))
    }

    /// Checks before the transaction: the request, who may answer and that the assignment is
    /// open to the answer; for a decline or recusal, the registry's pool for the refill. Then the
    /// answer, its outbox rows, the refill and the task's staffing in one transaction, tried
    /// again when a promoted expert's half-day goes to a concurrent draw.
    async fn respond_to_assignment(
        &self,
        request: Request<pb::RespondToAssignmentRequest>,
    ) -> Result<Response<pb::RespondToAssignmentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RESPOND_TO_ASSIGNMENT, &message.request_id, &message)?;
        let (id, answer) = convert::answer(&message, self.clock.now())?;
        let task = match responses::to_answer(&self.db, &caller, &id, &answer).await {
            Ok(task) => task,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let fresh = if answer.kind == ResponseKind::Accept {
            HashMap::new()
        } else {
            match responses::fresh_pool(&self.registry, &task, &caller.actor()).await {
                Ok(fresh) => fresh,
                Err(refusal) => return self.replay_or(&command, refusal.into()).await,
            }
        };
        for _ in 0..responses::attempts() {
            let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
            let outcome = responses::respond(
                claim.tx(),
                &self.db,
                &self.clock,
                &self.reference,
                &caller,
                &command,
                &id,
                &answer,
                &fresh,
            )
            .await?;
            if let Refill::Done((assignment, replacement)) = outcome {
                // As GetAssignment shows them: with the letter just issued on an acceptance.
                let conn = &mut **claim.tx();
                let assignment = crate::assignment_view::to_proto(conn, &self.reference, &assignment).await?;
                let replacement = match replacement {
                    Some(r) => Some(crate::assignment_view::to_proto(conn, &self.reference, &r).await?),
                    None => None,
                };
                let response = pb::RespondToAssignmentResponse { assignment: Some(assignment), replacement };
                claim.finish(&response).await?;
                return Ok(Response::new(response));
            }
        }
        Err(Error::Busy("concurrent draws kept taking the backups' half-days".into()).into())
    }

    /// The registry's pool is read before the transaction; the cancellation and its refill in
    /// one, tried again when a promoted expert's half-day goes to a concurrent draw.
    async fn cancel_assignment(
        &self,
        request: Request<pb::CancelAssignmentRequest>,
    ) -> Result<Response<pb::CancelAssignmentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CANCEL_ASSIGNMENT, &message.request_id, &message)?;
        let (id, reason) = convert::assignment_and_reason(&message.assignment_id, &message.reason)?;
        let task = match responses::to_cancel(&self.db, &caller, &id).await {
            Ok(task) => task,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        let fresh = match responses::fresh_pool(&self.registry, &task, &caller.actor()).await {
            Ok(fresh) => fresh,
            Err(refusal) => return self.replay_or(&command, refusal.into()).await,
        };
        for _ in 0..responses::attempts() {
            let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
            let outcome =
                responses::cancel(claim.tx(), &self.db, &self.clock, &caller, &command, &id, &reason, &fresh).await?;
            if let Refill::Done((assignment, replacement)) = outcome {
                let response = pb::CancelAssignmentResponse {
                    assignment: Some(convert::assignment_to_proto(&assignment)),
                    replacement: replacement.as_ref().map(convert::assignment_to_proto),
                };
                claim.finish(&response).await?;
                return Ok(Response::new(response));
            }
        }
        Err(Error::Busy("concurrent draws kept taking the backups' half-days".into()).into())
    }

    async fn record_no_show(
        &self,
        request: Request<pb::RecordNoShowRequest>,
    ) -> Result<Response<pb::RecordNoShowResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_NO_SHOW, &message.request_id, &message)?;
        let (id, session_id, note) = convert::no_show(&message)?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let (assignment, task) =
            responses::no_show(claim.tx(), &self.db, &self.clock, &caller, &command, &id, &session_id, &note).await?;
        let response = pb::RecordNoShowResponse {
            assignment: Some(convert::assignment_to_proto(&assignment)),
            task: Some(convert::task_to_proto(task)),
            replacement: None,
        };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn list_replacements(
        &self,
        request: Request<pb::ListReplacementsRequest>,
    ) -> Result<Response<pb::ListReplacementsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (task_id, page) = convert::list_replacements(request.get_ref())?;
        let (items, next) = responses::replacements(&self.db, &caller, &task_id, &page).await?;
        Ok(Response::new(pb::ListReplacementsResponse {
            replacements: items.iter().map(convert::replacement_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    /// From the registry's outbox (SERVICE), idempotent on the change id: the registry's pools
    /// for the affected tasks are read first; then the cancellations and refills in one
    /// transaction.
    async fn expert_status_changed(
        &self,
        request: Request<pb::ExpertStatusChangedRequest>,
    ) -> Result<Response<pb::ExpertStatusChangedResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, EXPERT_STATUS_CHANGED, &message.request_id, &message)?;
        let change = convert::status_change(&message)?;
        let tasks = responses::affected_tasks(&self.db, &change).await?;
        let mut pools = HashMap::new();
        for task in &tasks {
            match responses::fresh_pool(&self.registry, task, &caller.actor()).await {
                Ok(pool) => pools.insert(task.id.to_string(), pool),
                Err(refusal) => return self.replay_or(&command, refusal.into()).await,
            };
        }
        for _ in 0..responses::attempts() {
            let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
            let outcome =
                responses::status_changed(claim.tx(), &self.db, &self.clock, &caller, &command, &change, &pools)
                    .await?;
            if let Refill::Done((cancelled, replacements)) = outcome {
                let response = pb::ExpertStatusChangedResponse {
                    cancelled_assignment_ids: cancelled,
                    replacement_assignment_ids: replacements,
                };
                claim.finish(&response).await?;
                return Ok(Response::new(response));
            }
        }
        Err(Error::Busy("concurrent draws kept taking the backups' half-days".into()).into())
    }

    async fn record_worked_sessions(
        &self,
        request: Request<pb::RecordWorkedSessionsRequest>,
    ) -> Result<Response<pb::RecordWorkedSessionsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RECORD_WORKED_SESSIONS, &message.request_id, &message)?;
        let (id, sessions, on_behalf) = convert::record_worked_sessions(&message, self.clock.now())?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let assignment = reports::record_sessions(
            claim.tx(),
            &self.db,
            &self.clock,
            &caller,
            &command,
            &id,
            sessions,
            on_behalf.as_ref(),
        )
        .await?;
        let response = pb::RecordWorkedSessionsResponse { assignment: Some(convert::assignment_to_proto(&assignment)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn submit_report(
        &self,
        request: Request<pb::SubmitReportRequest>,
    ) -> Result<Response<pb::SubmitReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, SUBMIT_REPORT, &message.request_id, &message)?;
        let (id, content, on_behalf) = convert::submit_report(&message, self.clock.now())?;
        let named = convert::report_attachments(message.content.as_ref(), "content");
        attachments::check_named(&self.db, &caller, attachments::Scope::Report(&id), &named).await?;
        let mut claim = supervision_kit::claim_or_replay!(&self.db, &self.clock, &command);
        let report =
            reports::submit(claim.tx(), &self.db, &self.clock, &caller, &command, &id, content, on_behalf.as_ref())
                .await?;
        let response = pb::SubmitReportResponse { report: Some(convert::report_to_proto(&report)) };
        claim.finish(&response).await?;
        Ok(Response::new(response))
    }

    async fn accept_report(
        &self,
        request: Request<pb::AcceptReportRequest>,
    ) -> Result<Response<pb::AcceptReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, ACCEPT_REPORT, &message.request_id, &message)?;
        let id = convert::report_id(&message.report_id, "report_id")?;
        let review = Review::Accept { note: message.note.clone() };
        let report = self.review_report(&caller, &command, &id, review).await?;
        Ok(Response::new(pb::AcceptReportResponse { report: Some(report) }))
    }

    async fn correct_report(
        &self,
        request: Request<pb::CorrectReportRequest>,
    ) -> Result<Response<pb::CorrectReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, CORRECT_REPORT, &message.request_id, &message)?;
        let (id, review) = convert::correct_report(&message)?;
        if let Review::Correct { content: Some(_), .. } = &review {
            let named = convert::report_attachments(message.content.as_ref(), "content");
            if !named.is_empty() {
                let assignment = reports::get(&self.db, &caller, &id).await?.assignment_id;
                attachments::check_named(&self.db, &caller, attachments::Scope::Report(&assignment), &named).await?;
            }
        }
        let report = self.review_report(&caller, &command, &id, review).await?;
        Ok(Response::new(pb::CorrectReportResponse { report: Some(report) }))
    }

    async fn void_report(
        &self,
        request: Request<pb::VoidReportRequest>,
    ) -> Result<Response<pb::VoidReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, VOID_REPORT, &message.request_id, &message)?;
        let (id, review) = convert::void_report(&message)?;
        let report = self.review_report(&caller, &command, &id, review).await?;
        Ok(Response::new(pb::VoidReportResponse { report: Some(report) }))
    }

    async fn return_report(
        &self,
        request: Request<pb::ReturnReportRequest>,
    ) -> Result<Response<pb::ReturnReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let message = request.into_inner();
        let command = Command::new(&caller, RETURN_REPORT, &message.request_id, &message)?;
        let (id, review) = convert::return_report(&message)?;
        let report = self.review_report(&caller, &command, &id, review).await?;
        Ok(Response::new(pb::ReturnReportResponse { report: Some(report) }))
    }

    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let (filter, page) = convert::report_listing(request.get_ref(), TaskVisibility::of(&caller))?;
        let (items, next) = reports::list(&self.db, &caller, filter, &page).await?;
        Ok(Response::new(pb::ListReportsResponse {
            reports: items.iter().map(convert::report_to_proto).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let id = convert::report_id(&request.get_ref().id, "id")?;
        let report = reports::get(&self.db, &caller, &id).await?;
        Ok(Response::new(pb::GetReportResponse { report: Some(convert::report_to_proto(&report)) }))
    }

    async fn get_assignment(
        &self,
        request: Request<pb::GetAssignmentRequest>,
    ) -> Result<Response<pb::GetAssignmentResponse>, Status> {
        let caller = Caller::of(&request)?.clone();
        let id = convert::assignment_id(&request.get_ref().id, "id")?;
        let assignment = responses::visible(&self.db, &caller, &id).await?;
        crate::letters::audit_sealed_reads(
            &self.db,
            &self.clock,
            &caller,
            GET_ASSIGNMENT,
            std::slice::from_ref(&assignment),
        )
        .await?;
        let assignment = crate::assignment_view::read(&self.db, &self.reference, &assignment).await?;
        Ok(Response::new(pb::GetAssignmentResponse { assignment: Some(assignment) }))
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
