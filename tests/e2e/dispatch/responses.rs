//! Answers to assignments (D3, D4, D16) and the refill of vacancies (step 5, D17), over gRPC
//! against a real registry: acceptance staffs the task; a decline on time promotes the first
//! backup and tops the backups up; a late decline also writes an incident to the registry through
//! the outbox; a phone decline entered by staff counts from its received time; a recusal writes
//! the relation; who may answer; idempotent retries; ExpertStatusChanged cancels and refills.
//!
//! Dispatch's clock starts on Monday 2026-06-01 10:00 (Asia/Shanghai); the session is on Monday
//! 2026-06-08, so the D3 deadline is Wednesday 2026-06-03 17:30 (09:30 UTC).

use chrono::{TimeZone, Utc};
use prost::Message;
use supervision_proto::{
    common::{Date, EntryChannel, HalfDay, OnBehalf, RelationType},
    dispatch::{
        Accept, Assignment, AssignmentRole, AssignmentStatus, Decline, DeclineReason, ExpertStatusChangedRequest,
        ExportDrawRequest, GetAssignmentRequest, GetDrawRequest, GetTaskRequest, ListAssignmentsRequest, Recuse,
        RespondToAssignmentRequest, TaskStatus, VerifyDrawRequest, dispatch_service_client::DispatchServiceClient,
        respond_to_assignment_request::Answer,
    },
    registry::{ExpertStatus, ExpertStatusChange, IncidentKind, RecordConflictRequest, RecordIncidentRequest},
};
use testkit::{AuthedChannel, Backend, Role, RunningService, identity, on_both_backends, spawn_dispatch_with_registry};
use tonic::Code;

use crate::{
    draws::{create_task, execute, independents, prepare, school, user, witness},
    tasks::{reason, set_clock},
};

on_both_backends!(
    two_acceptances_staff_the_task,
    only_the_expert_or_staff_on_behalf_may_answer,
    a_decline_on_time_promotes_the_first_backup_and_tops_up,
    a_late_decline_promotes_and_writes_an_incident,
    a_phone_decline_counts_from_its_received_time,
    a_recusal_writes_the_relation_to_the_registry,
    a_status_change_cancels_and_refills,
    an_expert_reads_only_the_tasks_they_are_assigned_to,
);

/// A drawn task: the services, the task, its primaries and backups (by position).
pub(crate) struct Drawn {
    pub _registry: RunningService,
    pub dispatch: RunningService,
    pub task_id: String,
    pub draw_id: String,
    pub primaries: Vec<Assignment>,
    pub backups: Vec<Assignment>,
}

/// Six independent experts, a task on 2026-06-08 AM, drawn by operator-a and witnessed by
/// operator-b: two primaries, two backups, two left in the order.
pub(crate) async fn drawn(backend: Backend) -> Drawn {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    drawn_on(registry, dispatch).await
}

/// As [`drawn`], with services already running.
pub(crate) async fn drawn_on(registry: RunningService, dispatch: RunningService) -> Drawn {
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 1, 7).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let prepared = prepare(&mut operator, "prep", &task_id).await;
    witness(&mut colleague, "wit", &prepared.id, "").await;
    let (_, assignments) = execute(&mut operator, "exec", &prepared.id).await;
    let mut primaries: Vec<Assignment> =
        assignments.iter().filter(|a| a.role == AssignmentRole::Primary as i32).cloned().collect();
    let mut backups: Vec<Assignment> =
        assignments.iter().filter(|a| a.role == AssignmentRole::Backup as i32).cloned().collect();
    primaries.sort_by_key(|a| a.position);
    backups.sort_by_key(|a| a.position);
    Drawn { _registry: registry, dispatch, task_id, draw_id: prepared.id, primaries, backups }
}

pub(crate) fn expert(dispatch: &RunningService, expert_id: &str) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(identity::with_token(&dispatch.channel, Some(&identity::expert_token(expert_id))))
}

/// Sets dispatch's clock to `(y, m, d, h, min)` UTC.
pub(crate) fn clock_at(dispatch: &RunningService, at: (i32, u32, u32, u32, u32)) {
    let target = Utc.with_ymd_and_hms(at.0, at.1, at.2, at.3, at.4, 0).unwrap();
    dispatch.set_clock_offset((target - Utc::now()).num_seconds());
}

pub(crate) fn accept(request_id: &str, assignment_id: &str) -> RespondToAssignmentRequest {
    RespondToAssignmentRequest {
        request_id: request_id.into(),
        assignment_id: assignment_id.into(),
        answer: Some(Answer::Accept(Accept { no_conflict_declared: true, note: String::new() })),
        on_behalf: None,
    }
}

fn decline(request_id: &str, assignment_id: &str) -> RespondToAssignmentRequest {
    RespondToAssignmentRequest {
        request_id: request_id.into(),
        assignment_id: assignment_id.into(),
        answer: Some(Answer::Decline(Decline { reason: DeclineReason::WorkConflict as i32, detail: "出差".into() })),
        on_behalf: None,
    }
}

fn phone(received: (i32, u32, u32, u32, u32)) -> OnBehalf {
    let t = Utc.with_ymd_and_hms(received.0, received.1, received.2, received.3, received.4, 0).unwrap();
    OnBehalf {
        channel: EntryChannel::Phone as i32,
        received_time: Some(prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }),
        note: "电话".into(),
    }
}

pub(crate) async fn roster(dispatch: &RunningService, task_id: &str) -> Vec<Assignment> {
    user(dispatch, "operator-a")
        .list_assignments(ListAssignmentsRequest { task_id: task_id.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .assignments
}

async fn task_status(dispatch: &RunningService, task_id: &str) -> i32 {
    let task = user(dispatch, "operator-a").get_task(GetTaskRequest { id: task_id.into() }).await.unwrap();
    task.into_inner().task.unwrap().status
}

/// The outbox rows of dispatch for `method`: (destination, key, payload).
pub(crate) async fn outbox(dispatch: &RunningService, method: &str) -> Vec<(String, String, Vec<u8>)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(dispatch.database_url()).await.unwrap();
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT destination, idempotency_key, payload FROM kit_outbox WHERE method = $1 ORDER BY idempotency_key",
    )
    .bind(method)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

const RECORD_INCIDENT: &str = "/supervision.registry.v1.RegistryService/RecordIncident";
const RECORD_CONFLICT: &str = "/supervision.registry.v1.RegistryService/RecordConflict";

async fn two_acceptances_staff_the_task(backend: Backend) {
    let d = drawn(backend).await;
    assert_eq!(task_status(&d.dispatch, &d.task_id).await, TaskStatus::Staffing as i32, "drawn, not yet accepted");
    let (first, second) = (&d.primaries[0], &d.primaries[1]);
    let answered = expert(&d.dispatch, &first.expert_id).respond_to_assignment(accept("acc-1", &first.id)).await;
    let answered = answered.unwrap().into_inner();
    let a = answered.assignment.unwrap();
    assert_eq!(a.status, AssignmentStatus::Accepted as i32);
    assert!(answered.replacement.is_none());
    let response = a.response.as_ref().unwrap();
    assert!(response.on_behalf.is_none());
    assert_eq!(task_status(&d.dispatch, &d.task_id).await, TaskStatus::Staffing as i32, "one of two accepted");

    let mut second_expert = expert(&d.dispatch, &second.expert_id);
    let done = second_expert.respond_to_assignment(accept("acc-2", &second.id)).await.unwrap().into_inner();
    assert_eq!(done.assignment.as_ref().unwrap().status, AssignmentStatus::Accepted as i32);
    assert_eq!(task_status(&d.dispatch, &d.task_id).await, TaskStatus::Staffed as i32);

    // A retry answers the same; accepting again under a new key is refused.
    let again = second_expert.respond_to_assignment(accept("acc-2", &second.id)).await.unwrap().into_inner();
    assert_eq!(again, done);
    let err = second_expert.respond_to_assignment(accept("acc-3", &second.id)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "ASSIGNMENT_NOT_OPEN"));
    // The expert reads their own assignment.
    let read = second_expert.get_assignment(GetAssignmentRequest { id: second.id.clone() }).await.unwrap();
    assert_eq!(read.into_inner().assignment.unwrap(), done.assignment.unwrap());
}

async fn only_the_expert_or_staff_on_behalf_may_answer(backend: Backend) {
    let d = drawn(backend).await;
    let (first, second) = (&d.primaries[0], &d.primaries[1]);
    // Another expert cannot answer this one's assignment.
    let err = expert(&d.dispatch, &second.expert_id).respond_to_assignment(accept("x-1", &first.id)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "NOT_THEIR_OWN"));
    // Staff need on_behalf; an expert may not send it.
    let mut operator = user(&d.dispatch, "operator-a");
    let err = operator.respond_to_assignment(accept("x-2", &first.id)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "ON_BEHALF_REQUIRED"));
    let mut own = accept("x-3", &first.id);
    own.on_behalf = Some(phone((2026, 6, 1, 1, 0)));
    let err = expert(&d.dispatch, &first.expert_id).respond_to_assignment(own.clone()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "EXPERT_ON_BEHALF"));
    // Staff of another county do not see it.
    let mut other = DispatchServiceClient::new(d.dispatch.as_user(
        "operator-x",
        Role::CountyOperator,
        Some(testkit::Bureau::Xinhui),
    ));
    assert_eq!(other.respond_to_assignment(own.clone()).await.unwrap_err().code(), Code::NotFound);
    // The dispatching operator enters the expert's phone acceptance.
    let done = operator.respond_to_assignment(own).await.unwrap().into_inner().assignment.unwrap();
    assert_eq!(done.status, AssignmentStatus::Accepted as i32);
    let response = done.response.unwrap();
    assert_eq!(response.on_behalf.unwrap().channel, EntryChannel::Phone as i32);
    assert_eq!(response.entered_by.unwrap().subject, "operator-a");
    // A backup is not yet notified: it cannot be answered.
    let backup = &d.backups[0];
    let err =
        expert(&d.dispatch, &backup.expert_id).respond_to_assignment(accept("x-4", &backup.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // A request without an answer names the field.
    let mut empty = accept("x-5", &second.id);
    empty.answer = None;
    assert_eq!(
        expert(&d.dispatch, &second.expert_id).respond_to_assignment(empty).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

async fn a_decline_on_time_promotes_the_first_backup_and_tops_up(backend: Backend) {
    let d = drawn(backend).await;
    let first = &d.primaries[0];
    let mut client = expert(&d.dispatch, &first.expert_id);
    let answered = client.respond_to_assignment(decline("dec-1", &first.id)).await.unwrap().into_inner();
    let declined = answered.assignment.clone().unwrap();
    assert_eq!(declined.status, AssignmentStatus::DeclinedOnTime as i32);
    assert!(declined.decline_deadline.is_some());
    let replacement = answered.replacement.clone().unwrap();
    assert_eq!(replacement.id, d.backups[0].id, "the first backup is promoted");
    assert_eq!(replacement.role, AssignmentRole::Primary as i32);
    assert_eq!(replacement.status, AssignmentStatus::Notified as i32);
    assert_eq!(replacement.replaces_assignment_id, first.id);
    assert_eq!(declined.replaced_by_assignment_id, replacement.id);
    // A retry answers the same and refills nothing more.
    assert_eq!(client.respond_to_assignment(decline("dec-1", &first.id)).await.unwrap().into_inner(), answered);

    // B backups again: the second original one and one from the continued walk.
    let roster = roster(&d.dispatch, &d.task_id).await;
    let reserved: Vec<&Assignment> = roster.iter().filter(|a| a.status == AssignmentStatus::Reserved as i32).collect();
    assert_eq!(reserved.len(), 2, "{roster:#?}");
    assert!(reserved.iter().any(|a| a.id == d.backups[1].id));
    let topped = reserved.iter().find(|a| a.id != d.backups[1].id).unwrap();
    assert_eq!(topped.position, 5, "the walk continues where it stopped");
    assert!(topped.replaces_assignment_id.is_empty(), "a new backup fills no vacancy");
    assert!(outbox(&d.dispatch, RECORD_INCIDENT).await.is_empty(), "no incident for a decline on time");

    // The draw records the promotion and the continuation, and still verifies.
    let mut operator = user(&d.dispatch, "operator-a");
    let draw = operator.get_draw(GetDrawRequest { id: d.draw_id.clone() }).await.unwrap().into_inner().draw.unwrap();
    assert_eq!(draw.picks.len(), 4, "the execution's walk is unchanged");
    let export = operator.export_draw(ExportDrawRequest { draw_id: d.draw_id.clone() }).await.unwrap().into_inner();
    let record: serde_json::Value = serde_json::from_slice(&export.record.unwrap().content).unwrap();
    let later: Vec<(String, String, u64)> = record["walk"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !matches!(p["stage"].as_str(), Some("WALK" | "RELAXED_WALK")))
        .map(|p| {
            (
                p["stage"].as_str().unwrap().into(),
                p["outcome"].as_str().unwrap().into(),
                p["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        later,
        [("PROMOTION".into(), "PRIMARY".into(), 3), ("CONTINUATION".into(), "BACKUP".into(), 5)],
        "the vacancy is recorded on the draw"
    );
    assert_eq!(record["next_position"], 5);
    let verified = operator.verify_draw(VerifyDrawRequest { draw_id: d.draw_id.clone() }).await.unwrap().into_inner();
    assert!(verified.verified, "{:?}", verified.problems);

    // The promoted backup accepts with the remaining primary: staffed.
    expert(&d.dispatch, &replacement.expert_id).respond_to_assignment(accept("acc-r", &replacement.id)).await.unwrap();
    let second = &d.primaries[1];
    expert(&d.dispatch, &second.expert_id).respond_to_assignment(accept("acc-s", &second.id)).await.unwrap();
    assert_eq!(task_status(&d.dispatch, &d.task_id).await, TaskStatus::Staffed as i32);
}

async fn a_late_decline_promotes_and_writes_an_incident(backend: Backend) {
    let d = drawn(backend).await;
    // Thursday 2026-06-04 10:00 in Shanghai: past Wednesday's 17:30 deadline.
    clock_at(&d.dispatch, (2026, 6, 4, 2, 0));
    let first = &d.primaries[0];
    let answered = expert(&d.dispatch, &first.expert_id)
        .respond_to_assignment(decline("late-1", &first.id))
        .await
        .unwrap()
        .into_inner();
    let declined = answered.assignment.unwrap();
    assert_eq!(declined.status, AssignmentStatus::DeclinedLate as i32);
    let deadline = declined.decline_deadline.unwrap();
    assert_eq!(deadline.seconds, Utc.with_ymd_and_hms(2026, 6, 3, 9, 30, 0).unwrap().timestamp());
    assert_eq!(answered.replacement.unwrap().id, d.backups[0].id);

    let rows = outbox(&d.dispatch, RECORD_INCIDENT).await;
    assert_eq!(rows.len(), 1, "exactly one incident");
    let (destination, key, payload) = &rows[0];
    assert_eq!((destination.as_str(), key.as_str()), ("registry", format!("{}:late_decline", first.id).as_str()));
    let incident = RecordIncidentRequest::decode(payload.as_slice()).unwrap();
    assert_eq!(incident.request_id, *key);
    assert_eq!(incident.expert_id, first.expert_id);
    assert_eq!(incident.kind, IncidentKind::LateDecline as i32);
    assert_eq!(incident.assignment_id, first.id);
    assert_eq!(incident.task_id, d.task_id);
    // The expert stays on the roster as declined late; nobody is terminated here (D4).
    assert!(outbox(&d.dispatch, RECORD_CONFLICT).await.is_empty());

    // The backup promoted now was first notified after the deadline: its decline is exempt.
    let promoted = &d.backups[0];
    let answered = expert(&d.dispatch, &promoted.expert_id)
        .respond_to_assignment(decline("late-2", &promoted.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.assignment.unwrap().status, AssignmentStatus::DeclinedExempt as i32);
    assert_eq!(answered.replacement.unwrap().id, d.backups[1].id, "the next backup takes the place");
    assert_eq!(outbox(&d.dispatch, RECORD_INCIDENT).await.len(), 1, "no incident for an exempt decline");
}

async fn a_phone_decline_counts_from_its_received_time(backend: Backend) {
    let d = drawn(backend).await;
    clock_at(&d.dispatch, (2026, 6, 4, 2, 0));
    let first = &d.primaries[0];
    // Received by phone on Wednesday 15:00 in Shanghai, entered on Thursday: on time.
    let mut request = decline("phone-1", &first.id);
    request.on_behalf = Some(phone((2026, 6, 3, 7, 0)));
    let answered = user(&d.dispatch, "operator-a").respond_to_assignment(request).await.unwrap().into_inner();
    assert_eq!(answered.assignment.unwrap().status, AssignmentStatus::DeclinedOnTime as i32);
    assert!(answered.replacement.is_some());
    // Received on Wednesday 18:00: late.
    let second = &d.primaries[1];
    let mut request = decline("phone-2", &second.id);
    request.on_behalf = Some(phone((2026, 6, 3, 10, 0)));
    let answered = user(&d.dispatch, "operator-a").respond_to_assignment(request).await.unwrap().into_inner();
    assert_eq!(answered.assignment.unwrap().status, AssignmentStatus::DeclinedLate as i32);
    let keys: Vec<String> = outbox(&d.dispatch, RECORD_INCIDENT).await.into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(keys, [format!("{}:late_decline", second.id)]);
}

async fn a_recusal_writes_the_relation_to_the_registry(backend: Backend) {
    let d = drawn(backend).await;
    let first = &d.primaries[0];
    let request = RespondToAssignmentRequest {
        request_id: "rec-1".into(),
        assignment_id: first.id.clone(),
        answer: Some(Answer::Recuse(Recuse {
            relation: RelationType::CurrentEmployment as i32,
            detail: "兼职教师".into(),
        })),
        on_behalf: None,
    };
    let answered = expert(&d.dispatch, &first.expert_id).respond_to_assignment(request).await.unwrap().into_inner();
    assert_eq!(answered.assignment.unwrap().status, AssignmentStatus::Recused as i32);
    assert_eq!(answered.replacement.unwrap().id, d.backups[0].id);
    let rows = outbox(&d.dispatch, RECORD_CONFLICT).await;
    assert_eq!(rows.len(), 1);
    let (destination, key, payload) = &rows[0];
    assert_eq!((destination.as_str(), key.as_str()), ("registry", first.id.as_str()));
    let conflict = RecordConflictRequest::decode(payload.as_slice()).unwrap();
    assert_eq!(conflict.expert_id, first.expert_id);
    assert_eq!(conflict.relation_type, RelationType::CurrentEmployment as i32);
    assert_eq!(conflict.task_id, d.task_id);
    assert!(!conflict.institution_id.is_empty());
    assert!(outbox(&d.dispatch, RECORD_INCIDENT).await.is_empty(), "a recusal is neutral");
}

async fn a_status_change_cancels_and_refills(backend: Backend) {
    let d = drawn(backend).await;
    let first = &d.primaries[0];
    let change = ExpertStatusChange {
        id: format!("stc_{}", uuid::Uuid::now_v7().simple()),
        expert_id: first.expert_id.clone(),
        previous_status: ExpertStatus::Active as i32,
        status: ExpertStatus::Suspended as i32,
        effective_date: Some(Date { year: 2026, month: 6, day: 2 }),
        reason: "暂停".into(),
        ..Default::default()
    };
    let request = ExpertStatusChangedRequest { request_id: change.id.clone(), change: Some(change.clone()) };
    let mut registry_outbox =
        DispatchServiceClient::new(testkit::service_acting_for(&d.dispatch.channel, "registry", Role::CityAdmin, None));
    let done = registry_outbox.expert_status_changed(request.clone()).await.unwrap().into_inner();
    assert_eq!(done.cancelled_assignment_ids, [first.id.as_str()]);
    assert_eq!(done.replacement_assignment_ids, [d.backups[0].id.as_str()]);
    let cancelled = user(&d.dispatch, "operator-a")
        .get_assignment(GetAssignmentRequest { id: first.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .assignment
        .unwrap();
    assert_eq!(cancelled.status, AssignmentStatus::CancelledStatusChange as i32);
    assert_eq!(cancelled.replaced_by_assignment_id, d.backups[0].id);
    // The same change again is a retry: the same answer, nothing more cancelled.
    assert_eq!(registry_outbox.expert_status_changed(request).await.unwrap().into_inner(), done);
    // A change effective after the session leaves the assignments alone.
    let later = ExpertStatusChange {
        id: format!("stc_{}", uuid::Uuid::now_v7().simple()),
        expert_id: d.primaries[1].expert_id.clone(),
        status: ExpertStatus::Retired as i32,
        effective_date: Some(Date { year: 2026, month: 6, day: 9 }),
        ..change
    };
    let request = ExpertStatusChangedRequest { request_id: later.id.clone(), change: Some(later) };
    let done = registry_outbox.expert_status_changed(request).await.unwrap().into_inner();
    assert!(done.cancelled_assignment_ids.is_empty());
    // Only the registry's outbox may call it.
    let request = ExpertStatusChangedRequest { request_id: "stc_x".into(), change: None };
    assert_eq!(
        user(&d.dispatch, "operator-a").expert_status_changed(request).await.unwrap_err().code(),
        Code::PermissionDenied
    );
}

/// GetTask admits EXPERT for their own tasks (`docs/rpc-roles.md`): an expert drawn for a task
/// reads it, without the bureau's own details (the reporter, the creator, the exceptions); an
/// expert not on the task, or a task they were never drawn for, is NOT_FOUND.
async fn an_expert_reads_only_the_tasks_they_are_assigned_to(backend: Backend) {
    use supervision_proto::dispatch::GetTaskRequest;
    let d = drawn(backend).await;
    let on_task = &d.primaries[0].expert_id;
    let read = expert(&d.dispatch, on_task)
        .get_task(GetTaskRequest { id: d.task_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!(read.id, d.task_id);
    assert!(!read.sessions.is_empty() && !read.institution_id.is_empty());
    assert!(read.reporter_expert_id.is_empty() && read.exceptions.is_empty());
    assert!(read.created_by.as_ref().is_none_or(|a| a.subject.is_empty()), "{:?}", read.created_by);
    let backup = &d.backups[0].expert_id;
    assert!(expert(&d.dispatch, backup).get_task(GetTaskRequest { id: d.task_id.clone() }).await.is_ok());
    let stranger = "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f";
    let err = expert(&d.dispatch, stranger).get_task(GetTaskRequest { id: d.task_id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Staff still read the whole task.
    let staff = user(&d.dispatch, "operator-a")
        .get_task(GetTaskRequest { id: d.task_id.clone() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(staff.created_by.is_some_and(|a| !a.subject.is_empty()));
}
