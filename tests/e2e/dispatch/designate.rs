//! DesignateExperts (D15; DOMAIN.md 9.5): a non-random designation, only with the city's approved
//! NON_RANDOM_DESIGNATION exception, with a reason, D14's hard exclusions and the same fence as a
//! draw's primaries, recorded as a DESIGNATION that is never exported or verified as random.
//!
//! Dispatch's clock is Monday 2026-06-01 (tasks.rs); the sessions are on Monday 2026-06-08 and
//! the tasks' team is the edition's default of two.

use std::collections::HashMap;

use supervision_proto::{
    common::{HalfDay, RelationType},
    dispatch::{
        AbandonDrawRequest, ApproveTaskExceptionRequest, AssignmentRole, AssignmentStatus, CancelAssignmentRequest,
        DesignateExpertsRequest, DesignateExpertsResponse, Draw, DrawKind, DrawStatus, ExclusionReason,
        ExecuteDrawRequest, ExportDrawRequest, GetDrawRequest, GetTaskRequest, ListAssignmentsRequest,
        ListAuditEntriesRequest, ListDrawsRequest, PrepareDrawRequest, TaskExceptionKind, TaskStatus,
        VerifyDrawRequest, VoidDrawRequest, dispatch_service_client::DispatchServiceClient,
    },
    registry::{
        RecordRelationRequest, RelationSource, SuspendExpertRequest, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, spawn_dispatch_with_registry};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::{
    draws::{create_task, execute, first_reason_count, independents, prepare, school, user, witness},
    tasks::{reason, set_clock},
};

on_both_backends!(
    a_designation_needs_the_citys_approval_and_is_recorded_as_not_random,
    hard_exclusions_refuse_the_designation_naming_each_expert,
    a_designation_takes_the_place_of_the_tasks_draw,
    only_an_operator_of_the_dispatching_bureau_designates,
);

const REASON: &str = "复查：原监督专家熟悉该机构整改情况";

fn designation(request_id: &str, task_id: &str, experts: &[&String]) -> DesignateExpertsRequest {
    DesignateExpertsRequest {
        request_id: request_id.into(),
        task_id: task_id.into(),
        expert_ids: experts.iter().map(|e| (*e).clone()).collect(),
        reason: REASON.into(),
    }
}

fn city_admin(dispatch: &RunningService) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(dispatch.as_user("city-admin", Role::CityAdmin, None))
}

/// CITY_ADMIN approves the task's NON_RANDOM_DESIGNATION.
async fn approve(dispatch: &RunningService, task_id: &str) {
    let request = ApproveTaskExceptionRequest {
        request_id: format!("approve-{task_id}"),
        task_id: task_id.into(),
        kind: TaskExceptionKind::NonRandomDesignation as i32,
        reason: "同意非随机指定".into(),
        reduced_team_size: 0,
    };
    city_admin(dispatch).approve_task_exception(request).await.unwrap();
}

async fn draws_of(dispatch: &RunningService, task_id: &str) -> Vec<Draw> {
    let request = ListDrawsRequest { task_id: task_id.into(), ..Default::default() };
    city_admin(dispatch).list_draws(request).await.unwrap().into_inner().draws
}

async fn roster_of(dispatch: &RunningService, task_id: &str) -> Vec<supervision_proto::dispatch::Assignment> {
    let request = ListAssignmentsRequest { task_id: task_id.into(), ..Default::default() };
    city_admin(dispatch).list_assignments(request).await.unwrap().into_inner().assignments
}

async fn task_status(dispatch: &RunningService, task_id: &str) -> i32 {
    city_admin(dispatch)
        .get_task(GetTaskRequest { id: task_id.into() })
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap()
        .status
}

/// How many `designate` audit entries dispatch holds.
async fn designations_audited(dispatch: &RunningService) -> usize {
    let request = ListAuditEntriesRequest { entity_type: "draw".into(), ..Default::default() };
    let entries = city_admin(dispatch).list_audit_entries(request).await.unwrap().into_inner().entries;
    entries.iter().filter(|e| e.action == "designate").count()
}

/// The refused experts and their reason codes, from the ErrorInfo of EXPERTS_REFUSED.
fn refused(err: &Status) -> HashMap<String, String> {
    assert_eq!((err.code(), reason(err).as_str()), (Code::FailedPrecondition, "EXPERTS_REFUSED"), "{err:?}");
    let info = err.get_error_details().error_info().unwrap().clone();
    info.metadata.into_iter().collect()
}

async fn designate(
    client: &mut DispatchServiceClient<AuthedChannel>,
    request: DesignateExpertsRequest,
) -> DesignateExpertsResponse {
    client.designate_experts(request).await.unwrap().into_inner()
}

async fn a_designation_needs_the_citys_approval_and_is_recorded_as_not_random(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 7).await;
    let mut operator = user(&dispatch, "operator-a");
    let task_id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let chosen = [&experts[4], &experts[1]];

    // Without the exception: refused, nothing written, and the same request is refused again.
    let request = designation("des-1", &task_id, &chosen);
    let err = operator.designate_experts(request.clone()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DESIGNATION_NOT_APPROVED"));
    assert!(err.message().contains("NON_RANDOM_DESIGNATION"), "{}", err.message());
    assert!(draws_of(&dispatch, &task_id).await.is_empty());
    assert!(roster_of(&dispatch, &task_id).await.is_empty());
    assert_eq!(designations_audited(&dispatch).await, 0);

    // Bad input is field by field.
    let mut bad = designation("des-bad", &task_id, &[&experts[0], &experts[0]]);
    bad.reason = " ".into();
    let err = operator.designate_experts(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> =
        err.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
    assert_eq!(fields, ["expert_ids[1]", "reason"]);

    approve(&dispatch, &task_id).await;
    // One expert for a team of two is refused too.
    let err = operator.designate_experts(designation("des-one", &task_id, &[&experts[0]])).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DESIGNATION_TEAM_SIZE"));

    // With the approval: a DESIGNATION, executed at once, labelled, with no list, seed or order.
    let done = designate(&mut operator, request.clone()).await;
    let draw = done.draw.clone().unwrap();
    assert_eq!(draw.kind, DrawKind::Designation as i32);
    assert_eq!(draw.status, DrawStatus::Executed as i32);
    assert_eq!(draw.designation_reason, REASON);
    assert_eq!(draw.operator.as_ref().unwrap().subject, "operator-a");
    assert!(draw.witness.is_none());
    assert!(draw.algorithm.is_empty() && draw.seed_commitment.is_empty() && draw.server_seed.is_empty());
    assert!(draw.candidate_list_sha256.is_empty() && draw.seed_string.is_empty());
    assert_eq!((draw.candidate_count, draw.team_size, draw.backup_count), (0, 2, 0));
    let picked: Vec<(i32, &str)> = draw.picks.iter().map(|p| (p.position, p.expert_id.as_str())).collect();
    assert_eq!(picked, [(1, experts[4].as_str()), (2, experts[1].as_str())]);
    assert!(draw.picks.iter().all(|p| p.ticket.is_empty()));

    // The designated experts are notified primaries, booked like a draw's; the task is STAFFING.
    let placed: Vec<(&str, i32, i32)> =
        done.assignments.iter().map(|a| (a.expert_id.as_str(), a.role, a.status)).collect();
    let notified = (AssignmentRole::Primary as i32, AssignmentStatus::Notified as i32);
    assert_eq!(placed, [(experts[4].as_str(), notified.0, notified.1), (experts[1].as_str(), notified.0, notified.1)]);
    assert_eq!(roster_of(&dispatch, &task_id).await, done.assignments);
    assert_eq!(task_status(&dispatch, &task_id).await, TaskStatus::Staffing as i32);
    assert_eq!(designations_audited(&dispatch).await, 1);

    // A retry answers the same and writes nothing more; other content under the same id is refused.
    assert_eq!(designate(&mut operator, request.clone()).await, done);
    assert_eq!(draws_of(&dispatch, &task_id).await, std::slice::from_ref(&draw));
    assert_eq!(designations_audited(&dispatch).await, 1);
    let other = designation("des-1", &task_id, &[&experts[2], &experts[3]]);
    assert_eq!(operator.designate_experts(other).await.unwrap_err().code(), Code::FailedPrecondition);
    let read = operator.get_draw(GetDrawRequest { id: draw.id.clone() }).await.unwrap().into_inner().draw.unwrap();
    assert_eq!(read, draw);
    // Listed apart from the random draws.
    for (kind, listed) in [(DrawKind::Designation, vec![draw.clone()]), (DrawKind::Initial, vec![])] {
        let request = ListDrawsRequest { kind: kind as i32, ..Default::default() };
        assert_eq!(operator.list_draws(request).await.unwrap().into_inner().draws, listed, "{kind:?}");
    }

    // Not a random draw: neither exported for re-running nor verified.
    let err = operator.export_draw(ExportDrawRequest { draw_id: draw.id.clone() }).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "NOT_A_RANDOM_DRAW"));
    let err = operator.verify_draw(VerifyDrawRequest { draw_id: draw.id.clone() }).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "NOT_A_RANDOM_DRAW"));
    assert!(err.message().contains("not a random draw"), "{}", err.message());

    // Double booking is fenced: the designated experts are refused on another task of that
    // half-day, and a random draw there excludes them as booked.
    let second = create_task(&mut operator, &school, None, HalfDay::Am).await;
    approve(&dispatch, &second).await;
    let err = operator.designate_experts(designation("des-2", &second, &chosen)).await.unwrap_err();
    let expected: HashMap<String, String> =
        chosen.iter().map(|e| ((*e).clone(), "ALREADY_BOOKED".to_owned())).collect();
    assert_eq!(refused(&err), expected);
    assert!(draws_of(&dispatch, &second).await.is_empty());
    let third = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let prepared = prepare(&mut operator, "prep-3", &third).await;
    assert_eq!(first_reason_count(&prepared, ExclusionReason::AlreadyBooked), 2);
    assert_eq!(prepared.candidate_count, 4);

    // A designated primary who leaves finds no backup: the task is UNDERSTAFFED.
    let cancel = CancelAssignmentRequest {
        request_id: "cancel-1".into(),
        assignment_id: done.assignments[0].id.clone(),
        reason: "机构申请回避".into(),
    };
    let cancelled = operator.cancel_assignment(cancel).await.unwrap().into_inner();
    assert!(cancelled.replacement.is_none(), "{cancelled:?}");
    assert_eq!(task_status(&dispatch, &task_id).await, TaskStatus::Understaffed as i32);
    // A supplementary draw (random) fills the place, without the experts already designated.
    let supplementary = PrepareDrawRequest {
        request_id: "prep-sup".into(),
        task_id: task_id.clone(),
        kind: DrawKind::Supplementary as i32,
    };
    let sup = operator.prepare_draw(supplementary).await.unwrap().into_inner().draw.unwrap();
    assert_eq!(sup.supplements_draw_id, draw.id);
    assert_eq!((sup.team_size, sup.candidate_count), (1, 4), "the two designated experts are left out");
    registry.stop().await;
    dispatch.stop().await;
}

async fn hard_exclusions_refuse_the_designation_naming_each_expert(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 9).await;
    let (employed, director, suspended, booked, reporter) =
        (&experts[0], &experts[1], &experts[2], &experts[3], &experts[4]);
    let fine = [&experts[5], &experts[6]];
    let mut city = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    for (expert, kind) in [(employed, RelationType::CurrentEmployment), (director, RelationType::DirectorOrSupervisor)]
    {
        let request = RecordRelationRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            expert_id: expert.clone(),
            r#type: kind as i32,
            institution_id: school.clone(),
            source: RelationSource::Bureau as i32,
            ..Default::default()
        };
        city.record_relation(request).await.unwrap();
    }
    let suspend = SuspendExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        expert_id: suspended.clone(),
        reason: "事件调查中".into(),
        ..Default::default()
    };
    city.suspend_expert(suspend).await.unwrap();

    let mut operator = user(&dispatch, "operator-a");
    // `booked` holds the afternoon through another task's designation.
    let other = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    approve(&dispatch, &other).await;
    designate(&mut operator, designation("des-other", &other, &[booked, &experts[7]])).await;

    let task_id = create_task(&mut operator, &school, Some(reporter), HalfDay::Pm).await;
    approve(&dispatch, &task_id).await;
    let unknown = format!("exp_{}", uuid::Uuid::now_v7().simple());
    // Per case: the two experts designated, and each refused one with its reason.
    type Case<'a> = ([&'a String; 2], Vec<(&'a String, &'a str)>);
    let cases: [Case; 4] = [
        ([employed, fine[0]], vec![(employed, "EMPLOYED_BY_INSTITUTION")]),
        ([director, suspended], vec![(director, "CONFLICTED"), (suspended, "NOT_ACTIVE")]),
        ([booked, reporter], vec![(booked, "ALREADY_BOOKED"), (reporter, "REPORTER")]),
        ([fine[1], &unknown], vec![(&unknown, "NOT_IN_POOL")]),
    ];
    for (i, (pair, expected)) in cases.iter().enumerate() {
        let err = operator.designate_experts(designation(&format!("des-{i}"), &task_id, pair)).await.unwrap_err();
        let expected: HashMap<String, String> =
            expected.iter().map(|(id, code)| ((*id).clone(), (*code).to_owned())).collect();
        assert_eq!(refused(&err), expected, "case {i}");
        for (id, code) in &expected {
            assert!(err.message().contains(&format!("{id} {code}")), "case {i}: {}", err.message());
        }
    }
    // Nothing was written for any of them, and the fine pair is still free.
    assert!(draws_of(&dispatch, &task_id).await.is_empty());
    assert!(roster_of(&dispatch, &task_id).await.is_empty());
    assert_eq!(task_status(&dispatch, &task_id).await, TaskStatus::Open as i32);
    assert_eq!(designations_audited(&dispatch).await, 1, "only the other task's");
    let done = designate(&mut operator, designation("des-fine", &task_id, &fine)).await;
    assert_eq!(done.assignments.len(), 2);

    // A random draw of a third task on that half-day finds the four booked and the others out.
    let third = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let err = operator
        .prepare_draw(PrepareDrawRequest { request_id: "prep".into(), task_id: third, kind: 0 })
        .await
        .unwrap_err();
    assert_eq!(reason(&err), "POOL_TOO_SMALL", "{err:?}");
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_designation_takes_the_place_of_the_tasks_draw(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 7).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    approve(&dispatch, &task_id).await;
    let chosen = [&experts[0], &experts[1]];

    // A prepared, then witnessed, draw stands: no designation beside it.
    let prepared = prepare(&mut operator, "prep-1", &task_id).await;
    let err = operator.designate_experts(designation("des-1", &task_id, &chosen)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "OTHER_DRAW_STANDS"));
    assert!(err.message().contains(&prepared.id), "{}", err.message());
    witness(&mut colleague, "wit-1", &prepared.id, "").await;
    let err = operator.designate_experts(designation("des-2", &task_id, &chosen)).await.unwrap_err();
    assert_eq!(reason(&err), "OTHER_DRAW_STANDS");

    // Abandoned, it makes way; the abandoned draw is never executed after the designation.
    let abandon =
        AbandonDrawRequest { request_id: "ab-1".into(), draw_id: prepared.id.clone(), reason: "改为指定".into() };
    operator.abandon_draw(abandon).await.unwrap();
    let done = designate(&mut operator, designation("des-3", &task_id, &chosen)).await;
    let draw = done.draw.unwrap();
    let err = operator
        .execute_draw(ExecuteDrawRequest { request_id: "exec-1".into(), draw_id: prepared.id.clone() })
        .await
        .unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DRAW_NOT_WITNESSED"));

    // No draw and no second designation while it stands.
    let err = operator
        .prepare_draw(PrepareDrawRequest { request_id: "prep-2".into(), task_id: task_id.clone(), kind: 0 })
        .await
        .unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "TASK_NOT_OPEN"));
    let err =
        operator.designate_experts(designation("des-4", &task_id, &[&experts[2], &experts[3]])).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "TASK_NOT_OPEN"));

    // Voided by a second person, its experts are freed and the task is drawn for at random again.
    let void = |request_id: &str| VoidDrawRequest {
        request_id: request_id.into(),
        draw_id: draw.id.clone(),
        reason: "指定理由不成立".into(),
    };
    let err = operator.void_draw(void("void-0")).await.unwrap_err();
    assert_eq!(reason(&err), "VOIDER_IS_OPERATOR");
    let voided = colleague.void_draw(void("void-1")).await.unwrap().into_inner();
    assert_eq!(voided.cancelled_assignment_ids.len(), 2);
    assert_eq!(task_status(&dispatch, &task_id).await, TaskStatus::Open as i32);
    let again = prepare(&mut operator, "prep-3", &task_id).await;
    assert_eq!(again.candidate_count, 6, "the designated experts are free again");
    witness(&mut colleague, "wit-3", &again.id, "").await;
    let (executed, assignments) = execute(&mut operator, "exec-3", &again.id).await;
    assert_eq!(executed.kind, DrawKind::Initial as i32);
    assert_eq!(assignments.len(), 4);
    registry.stop().await;
    dispatch.stop().await;
}

async fn only_an_operator_of_the_dispatching_bureau_designates(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let experts = independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let task_id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    approve(&dispatch, &task_id).await;
    let chosen = [&experts[0], &experts[1]];

    let mut admin = city_admin(&dispatch);
    let err = admin.designate_experts(designation("des-admin", &task_id, &chosen)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "CITY_ADMIN approves, operators designate: {err:?}");
    let mut xinhui =
        DispatchServiceClient::new(dispatch.as_user("xinhui-op", Role::CountyOperator, Some(Bureau::Xinhui)));
    let err = xinhui.designate_experts(designation("des-xinhui", &task_id, &chosen)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another county does not see the task: {err:?}");
    let mut expert = DispatchServiceClient::new(dispatch.as_role(Role::Expert, None));
    let err = expert.designate_experts(designation("des-expert", &task_id, &chosen)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(draws_of(&dispatch, &task_id).await.is_empty());
    assert_eq!(designations_audited(&dispatch).await, 0);

    // The city's operator may act for a county's task (D15: the city draws for a county).
    let mut city = DispatchServiceClient::new(dispatch.as_user("city-op", Role::CityOperator, None));
    let done = designate(&mut city, designation("des-city", &task_id, &chosen)).await;
    assert_eq!(done.draw.unwrap().operator.unwrap().subject, "city-op");
    registry.stop().await;
    dispatch.stop().await;
}
