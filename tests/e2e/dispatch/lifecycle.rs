//! D14's soft exclusions and their relaxations at prepare (specialty tiers, the cooling period,
//! the monthly cap, each logged with the counts before and after), and a draw's other ends:
//! abandoned before execution, voided after it by a second person (D8) with its assignments
//! cancelled and the experts' half-days freed.
//!
//! Dispatch's clock is Monday 2026-06-01 (tasks.rs); sessions are in the week of 2026-06-08.

use supervision_proto::{
    common::{HalfDay, SpecialtyCode},
    dispatch::{
        AbandonDrawRequest, AssignmentRole, AssignmentStatus, CancelAssignmentRequest, Draw, DrawKind, DrawStatus,
        ExclusionReason, ExecuteDrawRequest, GetAssignmentRequest, GetTaskRequest, PrepareDrawRequest, RelaxedRule,
        TaskStatus, VerifyDrawRequest, VoidDrawRequest, dispatch_service_client::DispatchServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, on_both_backends, spawn_dispatch_with_registry};
use tonic::Code;

use crate::{
    draws::{execute, first_reason_count, independents, prepare, school, specialist, user, witness},
    tasks::{on, reason, set_clock, task},
};

on_both_backends!(
    specialty_tiers_relax_one_step_at_a_time,
    the_cooling_period_then_the_monthly_cap_relax_when_the_pool_is_short,
    the_cooling_period_counts_only_primaries_at_the_same_institution,
    an_abandoned_draw_stays_visible_and_the_task_is_drawn_again,
    a_second_person_voids_an_executed_draw_and_its_experts_are_freed,
    an_exhausted_order_is_supplemented_without_the_experts_already_contacted,
    a_city_operator_voids_only_the_city_bureaus_draws,
    a_no_show_counts_the_team_across_the_tasks_draws,
    a_vacancy_in_an_exhausted_draw_takes_a_later_draws_backup,
);

/// Creates a task at `school` on 2026-06-`day` `half_day` wanting `codes`, with N and B.
async fn task_with(
    operator: &mut DispatchServiceClient<AuthedChannel>,
    school: &str,
    day: i32,
    half_day: HalfDay,
    codes: &[&str],
    team: (i32, i32),
) -> String {
    let mut request = task(
        &uuid::Uuid::new_v4().to_string(),
        supervision_proto::common::BureauCode::Pengjiang,
        school,
        vec![on(2026, 6, day, half_day)],
    );
    request.specialties_wanted =
        codes.iter().map(|c| SpecialtyCode { code: (*c).into(), name: String::new() }).collect();
    request.team_size = Some(team.0);
    request.backup_count = Some(team.1);
    operator.create_task(request).await.unwrap().into_inner().task.unwrap().id
}

fn relaxed(draw: &Draw) -> Vec<(RelaxedRule, i32, i32)> {
    draw.relaxations
        .iter()
        .map(|r| (RelaxedRule::try_from(r.rule).unwrap(), r.eligible_before, r.eligible_after))
        .collect()
}

/// Prepares, witnesses and executes a draw for `task_id`; returns the executed draw.
async fn draw_for(
    operator: &mut DispatchServiceClient<AuthedChannel>,
    colleague: &mut DispatchServiceClient<AuthedChannel>,
    task_id: &str,
) -> (Draw, Vec<supervision_proto::dispatch::Assignment>) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let prepared = prepare(operator, &format!("prep-{tag}"), task_id).await;
    witness(colleague, &format!("wit-{tag}"), &prepared.id, "").await;
    execute(operator, &format!("exec-{tag}"), &prepared.id).await
}

async fn specialty_tiers_relax_one_step_at_a_time(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    for n in 1..5 {
        specialist(&registry, n, &["4-07-05-01"]).await;
    }
    specialist(&registry, 5, &["4-07-05-02"]).await;
    specialist(&registry, 6, &["6-01-01-01"]).await;
    specialist(&registry, 7, &["6-01-01-01"]).await;
    let mut operator = user(&dispatch, "operator-a");

    // Four exact matches are N + B: tier 1, nothing relaxed, three excluded for specialty.
    let exact = task_with(&mut operator, &school, 8, HalfDay::Am, &["4-07-05-01"], (2, 2)).await;
    let draw = prepare(&mut operator, "prep-exact", &exact).await;
    assert_eq!((draw.specialty_tier, draw.candidate_count), (1, 4));
    assert!(draw.relaxations.is_empty(), "{:?}", draw.relaxations);
    assert_eq!(first_reason_count(&draw, ExclusionReason::SpecialtyMismatch), 3);

    // One exact match: tier 2 (the group 4-07-05) gives five, enough; the 6-* experts stay out.
    let group = task_with(&mut operator, &school, 8, HalfDay::Pm, &["4-07-05-02"], (2, 2)).await;
    let draw = prepare(&mut operator, "prep-group", &group).await;
    assert_eq!((draw.specialty_tier, draw.candidate_count), (2, 5));
    assert_eq!(relaxed(&draw), [(RelaxedRule::SpecialtyGroup, 1, 5)]);
    assert_eq!(first_reason_count(&draw, ExclusionReason::SpecialtyMismatch), 2);

    // Nobody in the group of 3-01-01-01: tier 2 then tier 3, each step logged.
    let any = task_with(&mut operator, &school, 9, HalfDay::Am, &["3-01-01-01"], (2, 2)).await;
    let draw = prepare(&mut operator, "prep-any", &any).await;
    assert_eq!((draw.specialty_tier, draw.candidate_count), (3, 7));
    assert_eq!(relaxed(&draw), [(RelaxedRule::SpecialtyGroup, 0, 0), (RelaxedRule::SpecialtyAny, 0, 7)]);
    assert_eq!(first_reason_count(&draw, ExclusionReason::SpecialtyMismatch), 0);

    // A task naming no specialty starts at tier 3.
    let none = task_with(&mut operator, &school, 9, HalfDay::Pm, &[], (2, 2)).await;
    let draw = prepare(&mut operator, "prep-none", &none).await;
    assert_eq!((draw.specialty_tier, draw.candidate_count), (3, 7));
    assert!(draw.relaxations.is_empty());
    registry.stop().await;
    dispatch.stop().await;
}

async fn the_cooling_period_then_the_monthly_cap_relax_when_the_pool_is_short(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let two = independents(&registry, 1, 3).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");

    // The first task places both: nothing to relax.
    let first = task_with(&mut operator, &school, 8, HalfDay::Am, &[], (2, 0)).await;
    let (draw, assignments) = draw_for(&mut operator, &mut colleague, &first).await;
    assert!(draw.relaxations.is_empty());
    assert_eq!(assignments.len(), 2);

    // The next three at the same school: both are in the cooling period, which is relaxed
    // (0 eligible before, 2 after) and logged; the cap (4 a month) is not reached yet.
    for (day, half_day) in [(8, HalfDay::Pm), (9, HalfDay::Am), (9, HalfDay::Pm)] {
        let next = task_with(&mut operator, &school, day, half_day, &[], (2, 0)).await;
        let (draw, assignments) = draw_for(&mut operator, &mut colleague, &next).await;
        assert_eq!(relaxed(&draw), [(RelaxedRule::CoolingPeriod, 0, 2)], "{day} {half_day:?}");
        assert_eq!(first_reason_count(&draw, ExclusionReason::CoolingPeriod), 0, "relaxed: nobody excluded");
        let mut placed: Vec<String> = assignments.iter().map(|a| a.expert_id.clone()).collect();
        placed.sort();
        let mut expected = two.clone();
        expected.sort();
        assert_eq!(placed, expected);
    }

    // The fifth in June: both are at the monthly cap of four too; the cooling period is relaxed
    // first (still none eligible), then the cap.
    let fifth = task_with(&mut operator, &school, 10, HalfDay::Am, &[], (2, 0)).await;
    let draw = prepare(&mut operator, "prep-fifth", &fifth).await;
    assert_eq!(relaxed(&draw), [(RelaxedRule::CoolingPeriod, 0, 0), (RelaxedRule::MonthlyCap, 0, 2)]);
    assert_eq!(draw.candidate_count, 2);

    // A pool still short after every relaxation is refused with the counts (D15).
    let mut big = task(
        &uuid::Uuid::new_v4().to_string(),
        supervision_proto::common::BureauCode::Pengjiang,
        &school,
        vec![on(2026, 6, 10, HalfDay::Pm)],
    );
    big.team_size = Some(3);
    big.backup_count = Some(0);
    let big = operator.create_task(big).await.unwrap().into_inner().task.unwrap().id;
    let request = PrepareDrawRequest { request_id: "prep-big".into(), task_id: big, kind: 0 };
    let err = operator.prepare_draw(request).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "POOL_TOO_SMALL"));
    registry.stop().await;
    dispatch.stop().await;
}

/// D14's cooling period is about one institution: a placement at another school in the same days
/// does not cool an expert, and a backup is not a placement.
async fn the_cooling_period_counts_only_primaries_at_the_same_institution(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let other = crate::tasks::institution(
        &registry,
        "91440703MA4W00003U",
        supervision_proto::common::BureauCode::Pengjiang,
        "蓬江第二职业培训学校",
    )
    .await;
    independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");

    // Of four experts, two primaries and one backup at the other school.
    let elsewhere = task_with(&mut operator, &other, 8, HalfDay::Am, &[], (2, 1)).await;
    let (_, assignments) = draw_for(&mut operator, &mut colleague, &elsewhere).await;
    assert_eq!(assignments.len(), 3, "{assignments:?}");

    // The next half-day at the school: nobody cools, so a team of three is drawn without relaxing.
    let here = task_with(&mut operator, &school, 8, HalfDay::Pm, &[], (3, 0)).await;
    let (draw, assignments) = draw_for(&mut operator, &mut colleague, &here).await;
    assert!(draw.relaxations.is_empty(), "{:?}", draw.relaxations);
    assert_eq!(first_reason_count(&draw, ExclusionReason::CoolingPeriod), 0);
    assert_eq!(assignments.len(), 3);

    // Back at the other school: its two primaries cool, its backup and the fourth do not.
    let again = task_with(&mut operator, &other, 9, HalfDay::Am, &[], (2, 0)).await;
    let draw = prepare(&mut operator, "prep-again", &again).await;
    assert!(draw.relaxations.is_empty(), "{:?}", draw.relaxations);
    assert_eq!((first_reason_count(&draw, ExclusionReason::CoolingPeriod), draw.candidate_count), (2, 2));
    registry.stop().await;
    dispatch.stop().await;
}

async fn an_abandoned_draw_stays_visible_and_the_task_is_drawn_again(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = task_with(&mut operator, &school, 8, HalfDay::Am, &[], (2, 2)).await;
    let prepared = prepare(&mut operator, "prep-1", &task_id).await;
    witness(&mut colleague, "wit-1", &prepared.id, "").await;

    let no_reason = AbandonDrawRequest { request_id: "ab-0".into(), draw_id: prepared.id.clone(), reason: "".into() };
    assert_eq!(operator.abandon_draw(no_reason).await.unwrap_err().code(), Code::InvalidArgument);
    let request =
        AbandonDrawRequest {
            request_id: "ab-1".into(), draw_id: prepared.id.clone(), reason: "见证人未到场".into()
        };
    let abandoned = operator.abandon_draw(request.clone()).await.unwrap().into_inner().draw.unwrap();
    assert_eq!(abandoned.status, DrawStatus::Abandoned as i32);
    assert_eq!(abandoned.abandon_reason, "见证人未到场");
    assert!(abandoned.server_seed.is_empty(), "an abandoned draw never reveals its seed");
    assert_eq!(operator.abandon_draw(request).await.unwrap().into_inner().draw.unwrap(), abandoned, "a retry");

    // It cannot be executed or abandoned again; the task takes a new draw.
    let exec = ExecuteDrawRequest { request_id: "exec-1".into(), draw_id: prepared.id.clone() };
    assert_eq!(operator.execute_draw(exec).await.unwrap_err().code(), Code::FailedPrecondition);
    let again = AbandonDrawRequest { request_id: "ab-2".into(), draw_id: prepared.id.clone(), reason: "x".into() };
    let err = operator.abandon_draw(again).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DRAW_NOT_ABANDONABLE"));
    let (executed, assignments) = draw_for(&mut operator, &mut colleague, &task_id).await;
    assert_ne!(executed.id, prepared.id);
    assert_eq!(assignments.len(), 4);
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_second_person_voids_an_executed_draw_and_its_experts_are_freed(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = task_with(&mut operator, &school, 8, HalfDay::Am, &[], (2, 2)).await;
    let (executed, assignments) = draw_for(&mut operator, &mut colleague, &task_id).await;

    let own = VoidDrawRequest { request_id: "void-own".into(), draw_id: executed.id.clone(), reason: "错".into() };
    let err = operator.void_draw(own).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "VOIDER_IS_OPERATOR"));
    let blank = VoidDrawRequest { request_id: "void-0".into(), draw_id: executed.id.clone(), reason: " ".into() };
    assert_eq!(colleague.void_draw(blank).await.unwrap_err().code(), Code::InvalidArgument);

    let request = VoidDrawRequest {
        request_id: "void-1".into(),
        draw_id: executed.id.clone(),
        reason: "任务日期录入错误".into(),
    };
    let response = colleague.void_draw(request.clone()).await.unwrap().into_inner();
    let voided = response.draw.clone().unwrap();
    assert_eq!(voided.status, DrawStatus::Voided as i32);
    let void = voided.void_record.clone().unwrap();
    assert_eq!((void.reason.as_str(), void.voided_by.unwrap().subject.as_str()), ("任务日期录入错误", "operator-b"));
    assert_eq!(voided.server_seed, executed.server_seed, "the record stays verifiable");
    let mut cancelled = response.cancelled_assignment_ids.clone();
    cancelled.sort();
    let mut all: Vec<String> = assignments.iter().map(|a| a.id.clone()).collect();
    all.sort();
    assert_eq!(cancelled, all);
    assert_eq!(colleague.void_draw(request).await.unwrap().into_inner(), response, "a retry answers the same");
    for id in &all {
        let a = operator
            .get_assignment(GetAssignmentRequest { id: id.clone() })
            .await
            .unwrap()
            .into_inner()
            .assignment
            .unwrap();
        assert_eq!(a.status, AssignmentStatus::Cancelled as i32);
    }
    let task = operator.get_task(GetTaskRequest { id: task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Open as i32);

    // The experts' half-day is free again: a redraw of the same task places four of the four.
    let (redrawn, again) = draw_for(&mut operator, &mut colleague, &task_id).await;
    assert_ne!(redrawn.id, executed.id);
    assert_eq!(again.len(), 4);
    let twice = VoidDrawRequest { request_id: "void-2".into(), draw_id: executed.id.clone(), reason: "再".into() };
    let err = colleague.void_draw(twice).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "DRAW_NOT_EXECUTED"));
    registry.stop().await;
    dispatch.stop().await;
}

async fn an_exhausted_order_is_supplemented_without_the_experts_already_contacted(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let first_four = independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = task_with(&mut operator, &school, 8, HalfDay::Am, &[], (2, 2)).await;
    let supplementary = |request_id: &str| PrepareDrawRequest {
        request_id: request_id.into(),
        task_id: task_id.clone(),
        kind: DrawKind::Supplementary as i32,
    };
    // Not before a draw, and not while the task is staffed from its order.
    let err = operator.prepare_draw(supplementary("supp-0")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "TASK_NOT_UNDERSTAFFED"));
    let (initial, assignments) = draw_for(&mut operator, &mut colleague, &task_id).await;
    assert_eq!(initial.kind, DrawKind::Initial as i32);
    assert_eq!(assignments.len(), 4, "the whole pool is drawn: the order is exhausted");
    let err = operator.prepare_draw(supplementary("supp-1")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "TASK_NOT_UNDERSTAFFED"));

    // Three cancellations: two backups promoted, then nobody left.
    let mut primary = assignments.iter().find(|a| a.role == AssignmentRole::Primary as i32).unwrap().id.clone();
    for n in 0..3 {
        let cancel = CancelAssignmentRequest {
            request_id: format!("cancel-{n}"),
            assignment_id: primary.clone(),
            reason: "bureau decision".into(),
        };
        let done = operator.cancel_assignment(cancel).await.unwrap().into_inner();
        match done.replacement {
            Some(r) => primary = r.id,
            None => assert_eq!(n, 2, "the third vacancy finds no backup"),
        }
    }
    let task = operator.get_task(GetTaskRequest { id: task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Understaffed as i32);

    // Three experts appointed since: the supplementary draw has them alone, for the one place.
    let newcomers = independents(&registry, 5, 8).await;
    let prepared = operator.prepare_draw(supplementary("supp-2")).await.unwrap().into_inner().draw.unwrap();
    assert_eq!(prepared.kind, DrawKind::Supplementary as i32);
    assert_eq!(prepared.supplements_draw_id, initial.id);
    assert_eq!((prepared.team_size, prepared.backup_count, prepared.candidate_count), (1, 2, 3));
    witness(&mut colleague, "wit-supp", &prepared.id, "").await;
    let (executed, placed) = execute(&mut operator, "exec-supp", &prepared.id).await;
    assert_eq!(placed.len(), 3);
    for a in &placed {
        assert!(newcomers.contains(&a.expert_id) && !first_four.contains(&a.expert_id), "{}", a.expert_id);
    }
    let task = operator.get_task(GetTaskRequest { id: task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Staffing as i32, "two primaries hold places again");
    let verdict = operator.verify_draw(VerifyDrawRequest { draw_id: executed.id.clone() }).await.unwrap().into_inner();
    assert!(verdict.verified, "{verdict:?}");

    // While the supplementary draw stands, voiding the initial one (which would reopen the task
    // under it) is refused, and the other way round; nothing changes.
    for (n, id) in [&initial.id, &executed.id].into_iter().enumerate() {
        let void =
            VoidDrawRequest {
                request_id: format!("void-other-{n}"), draw_id: id.clone(), reason: "录入错误".into()
            };
        let err = colleague.void_draw(void).await.unwrap_err();
        assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "OTHER_DRAW_STANDS"), "{id}");
    }
    let task = operator.get_task(GetTaskRequest { id: task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Staffing as i32);
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_city_operator_voids_only_the_city_bureaus_draws(backend: Backend) {
    let d = crate::responses::drawn(backend).await;
    let void = |request_id: &str| VoidDrawRequest {
        request_id: request_id.into(),
        draw_id: d.draw_id.clone(),
        reason: "任务日期录入错误".into(),
    };
    // The task is Pengjiang's: a city operator sees the draw but may not void it (D8).
    let mut city_operator =
        DispatchServiceClient::new(d.dispatch.as_user("city-op", testkit::Role::CityOperator, None));
    let err = city_operator.void_draw(void("void-city-op")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::PermissionDenied, "NOT_DISPATCHING_BUREAU"));
    let roster = crate::responses::roster(&d.dispatch, &d.task_id).await;
    assert!(roster.iter().all(|a| a.status != AssignmentStatus::Cancelled as i32), "nothing changed");
    // CITY_ADMIN may.
    let mut admin = DispatchServiceClient::new(d.dispatch.as_user("city-admin", testkit::Role::CityAdmin, None));
    let voided = admin.void_draw(void("void-admin")).await.unwrap().into_inner();
    assert_eq!(voided.draw.unwrap().status, DrawStatus::Voided as i32);
}

/// A task of three whose order ran out, topped up by a supplementary draw of one: the team is
/// supplementary and initial primaries together.
async fn supplemented_team_of_three(
    backend: Backend,
) -> (testkit::RunningService, testkit::RunningService, String, Vec<supervision_proto::dispatch::Assignment>) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 1, 5).await;
    let mut operator = user(&dispatch, "operator-a");
    let mut colleague = user(&dispatch, "operator-b");
    let task_id = task_with(&mut operator, &school, 8, HalfDay::Am, &[], (3, 1)).await;
    let (_, assignments) = draw_for(&mut operator, &mut colleague, &task_id).await;
    assert_eq!(assignments.len(), 4, "the whole pool is drawn: the order is exhausted");
    // Two primaries leave: the backup takes the first place, nobody the second.
    let mut primaries = assignments.iter().filter(|a| a.role == AssignmentRole::Primary as i32);
    for (n, a) in [primaries.next().unwrap(), primaries.next().unwrap()].into_iter().enumerate() {
        let cancel = CancelAssignmentRequest {
            request_id: format!("cancel-{n}"),
            assignment_id: a.id.clone(),
            reason: "bureau decision".into(),
        };
        operator.cancel_assignment(cancel).await.unwrap();
    }
    independents(&registry, 5, 7).await;
    let supplementary = PrepareDrawRequest {
        request_id: "supp".into(),
        task_id: task_id.clone(),
        kind: DrawKind::Supplementary as i32,
    };
    let prepared = operator.prepare_draw(supplementary).await.unwrap().into_inner().draw.unwrap();
    witness(&mut colleague, "wit-supp", &prepared.id, "").await;
    execute(&mut operator, "exec-supp", &prepared.id).await;
    let roster = crate::responses::roster(&dispatch, &task_id).await;
    (registry, dispatch, task_id, roster)
}

async fn a_no_show_counts_the_team_across_the_tasks_draws(backend: Backend) {
    let (registry, dispatch, task_id, roster) = supplemented_team_of_three(backend).await;
    let primaries: Vec<_> = roster
        .iter()
        .filter(|a| a.role == AssignmentRole::Primary as i32 && a.status == AssignmentStatus::Notified as i32)
        .collect();
    assert_eq!(primaries.len(), 3, "{roster:#?}");
    for (n, a) in primaries.iter().enumerate() {
        crate::responses::expert(&dispatch, &a.expert_id)
            .respond_to_assignment(crate::responses::accept(&format!("acc-{n}"), &a.id))
            .await
            .unwrap();
    }
    let mut operator = user(&dispatch, "operator-a");
    let task = operator.get_task(GetTaskRequest { id: task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Staffed as i32);
    // The supplementary draw's one primary does not come; the initial draw's two do: two members
    // may proceed (D7), whatever the supplementary draw's own team of one.
    let supplementary_draw = primaries
        .iter()
        .map(|a| a.draw_id.clone())
        .find(|id| primaries.iter().filter(|a| &a.draw_id == id).count() == 1);
    let absent = primaries.iter().find(|a| Some(&a.draw_id) == supplementary_draw.as_ref()).unwrap();
    crate::responses::clock_at(&dispatch, (2026, 6, 8, 1, 30));
    let recorded = operator
        .record_no_show(supervision_proto::dispatch::RecordNoShowRequest {
            request_id: "ns-1".into(),
            assignment_id: absent.id.clone(),
            session_id: task.sessions[0].id.clone(),
            note: "未到场".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(recorded.assignment.unwrap().status, AssignmentStatus::NoShow as i32);
    assert_ne!(recorded.task.unwrap().status, TaskStatus::Blocked as i32, "two members remain");
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_vacancy_in_an_exhausted_draw_takes_a_later_draws_backup(backend: Backend) {
    let (registry, dispatch, task_id, roster) = supplemented_team_of_three(backend).await;
    let reserve: Vec<_> = roster.iter().filter(|a| a.status == AssignmentStatus::Reserved as i32).collect();
    assert_eq!(reserve.len(), 1, "the supplementary draw's backup: {roster:#?}");
    let backup = reserve[0];
    let initial = roster
        .iter()
        .find(|a| {
            a.role == AssignmentRole::Primary as i32
                && a.status == AssignmentStatus::Notified as i32
                && a.draw_id != backup.draw_id
        })
        .unwrap();
    // The initial draw's order and reserve are spent: its vacancy goes to the later draw's backup.
    let mut operator = user(&dispatch, "operator-a");
    let cancel = CancelAssignmentRequest {
        request_id: "cancel-late".into(),
        assignment_id: initial.id.clone(),
        reason: "调整".into(),
    };
    let done = operator.cancel_assignment(cancel).await.unwrap().into_inner();
    let replacement = done.replacement.expect("the supplementary draw's backup is promoted");
    assert_eq!(replacement.id, backup.id);
    assert_eq!(
        (replacement.role, replacement.status),
        (AssignmentRole::Primary as i32, AssignmentStatus::Notified as i32)
    );
    assert_eq!(replacement.replaces_assignment_id, initial.id);
    let task = operator.get_task(GetTaskRequest { id: task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Staffing as i32, "three primaries hold places again");
    registry.stop().await;
    dispatch.stop().await;
}
