//! Vacancies made by the bureau or by time: CancelAssignment refills by step 5's rule and
//! ListReplacements shows each vacancy and how it was filled; RecordNoShow (D4) writes an incident
//! and blocks a task left with one member (D7); the no-answer sweep turns a NOTIFIED assignment
//! past its response deadline into NO_RESPONSE and promotes a backup; response deadlines across
//! holidays and make-up working days.
//!
//! Dispatch's clock starts on Monday 2026-06-01 10:00 (Asia/Shanghai); the session is on Monday
//! 2026-06-08 AM (tasks.rs, responses.rs).

use std::sync::Arc;

use chrono::{NaiveDate, TimeZone, Utc};
use prost::Message;
use supervision_dispatch::{registry::Registry, sweep};
use supervision_kit::{Db, SharedClock, clock::ManualClock};
use supervision_proto::{
    dispatch::{
        AssignmentStatus, CancelAssignmentRequest, GetTaskRequest, ListReplacementsRequest, RecordNoShowRequest,
        TaskStatus, VacancyReason,
    },
    registry::{IncidentKind, RecordIncidentRequest},
};
use supervision_reference::ReferenceArgs;
use testkit::{Backend, Role, identity, on_both_backends};
use tonic::Code;

use crate::{
    draws::user,
    responses::{accept, clock_at, drawn, expert, outbox, roster},
    tasks::reason,
};

on_both_backends!(
    a_cancelled_assignment_is_refilled_and_listed_as_a_replacement,
    a_no_show_writes_an_incident_and_blocks_a_team_of_one,
    no_answer_by_the_response_deadline_counts_as_a_decline,
    the_sweep_leaves_a_task_alone_once_its_first_session_day_has_come,
    concurrent_vacancies_on_one_draw_promote_different_backups,
);

const RECORD_INCIDENT: &str = "/supervision.registry.v1.RegistryService/RecordIncident";

async fn a_cancelled_assignment_is_refilled_and_listed_as_a_replacement(backend: Backend) {
    let d = drawn(backend).await;
    let mut operator = user(&d.dispatch, "operator-a");
    let first = &d.primaries[0];
    let request = |id: &str, reason: &str| CancelAssignmentRequest {
        request_id: format!("cancel-{id}-{}", hex::encode(reason)),
        assignment_id: id.into(),
        reason: reason.into(),
    };
    assert_eq!(operator.cancel_assignment(request(&first.id, "")).await.unwrap_err().code(), Code::InvalidArgument);
    // An expert cannot cancel; another county does not see the assignment.
    let err = expert(&d.dispatch, &first.expert_id).cancel_assignment(request(&first.id, "不去")).await.unwrap_err();
    assert!(matches!(err.code(), Code::PermissionDenied | Code::NotFound), "{err:?}");
    let mut other = supervision_proto::dispatch::dispatch_service_client::DispatchServiceClient::new(
        d.dispatch.as_user("xinhui-op", Role::CountyOperator, Some(testkit::Bureau::Xinhui)),
    );
    let err = other.cancel_assignment(request(&first.id, "越权")).await.unwrap_err();
    assert!(matches!(err.code(), Code::PermissionDenied | Code::NotFound), "{err:?}");

    let cancelled = operator.cancel_assignment(request(&first.id, "专家临时调整")).await.unwrap().into_inner();
    let a = cancelled.assignment.clone().unwrap();
    assert_eq!(a.status, AssignmentStatus::Cancelled as i32);
    let promoted = cancelled.replacement.clone().unwrap();
    assert_eq!(promoted.id, d.backups[0].id, "the first backup takes the place");
    assert_eq!(promoted.status, AssignmentStatus::Notified as i32);
    assert_eq!(a.replaced_by_assignment_id, promoted.id);
    assert_eq!(
        operator.cancel_assignment(request(&first.id, "专家临时调整")).await.unwrap().into_inner(),
        cancelled,
        "a retry answers the same"
    );
    let err = operator.cancel_assignment(request(&first.id, "again")).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "ASSIGNMENT_NOT_OPEN"));

    let listed = operator
        .list_replacements(ListReplacementsRequest { task_id: d.task_id.clone(), page: None })
        .await
        .unwrap()
        .into_inner()
        .replacements;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let r = &listed[0];
    assert_eq!(r.vacated_assignment_id, first.id);
    assert_eq!(r.reason, VacancyReason::Cancelled as i32);
    assert_eq!(r.promoted_assignment_id, promoted.id);
    assert!(!r.order_exhausted);
    assert_eq!(r.topped_up_assignment_ids.len(), 1, "the walk continued to keep two backups");
    let bad = ListReplacementsRequest { task_id: "nope".into(), page: None };
    assert_eq!(operator.list_replacements(bad).await.unwrap_err().code(), Code::InvalidArgument);
}

async fn a_no_show_writes_an_incident_and_blocks_a_team_of_one(backend: Backend) {
    let d = drawn(backend).await;
    let mut operator = user(&d.dispatch, "operator-a");
    for (i, p) in d.primaries.iter().enumerate() {
        expert(&d.dispatch, &p.expert_id).respond_to_assignment(accept(&format!("acc-{i}"), &p.id)).await.unwrap();
    }
    let task = operator.get_task(GetTaskRequest { id: d.task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    assert_eq!(task.status, TaskStatus::Staffed as i32);
    let session = task.sessions[0].id.clone();
    let no_show = |request_id: &str, assignment: &str, session: &str| RecordNoShowRequest {
        request_id: request_id.into(),
        assignment_id: assignment.into(),
        session_id: session.into(),
        note: "未到场，电话无人接听".into(),
    };
    let absent = &d.primaries[0];
    // Before the session's day it is a cancellation, not a no-show.
    let err = operator.record_no_show(no_show("ns-early", &absent.id, &session)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "SESSION_NOT_STARTED"));

    clock_at(&d.dispatch, (2026, 6, 8, 1, 30)); // 09:30 in Jiangmen on the session's day
    assert_eq!(
        operator.record_no_show(no_show("ns-bad", &absent.id, "not-a-session")).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = operator.record_no_show(no_show("ns-backup", &d.backups[0].id, &session)).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "ASSIGNMENT_NOT_ACCEPTED"));
    let recorded = operator.record_no_show(no_show("ns-1", &absent.id, &session)).await.unwrap().into_inner();
    assert_eq!(recorded.assignment.as_ref().unwrap().status, AssignmentStatus::NoShow as i32);
    assert_eq!(recorded.task.as_ref().unwrap().status, TaskStatus::Blocked as i32, "one member cannot proceed (D7)");
    assert!(recorded.replacement.is_none());
    assert_eq!(operator.record_no_show(no_show("ns-1", &absent.id, &session)).await.unwrap().into_inner(), recorded);

    // The incident goes to the registry through the outbox, keyed <assignment>:no_show (D4).
    let rows = outbox(&d.dispatch, RECORD_INCIDENT).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, format!("{}:no_show", absent.id));
    let incident = RecordIncidentRequest::decode(rows[0].2.as_slice()).unwrap();
    assert_eq!(incident.kind, IncidentKind::NoShow as i32);
    assert_eq!(incident.expert_id, absent.expert_id);
    // The expert stays on the roster as NO_SHOW; nothing terminates them.
    let roster = roster(&d.dispatch, &d.task_id).await;
    assert!(roster.iter().any(|a| a.id == absent.id && a.status == AssignmentStatus::NoShow as i32));
}

/// Dispatch's database, and the registry as dispatch calls it, for running a sweep pass at `at`.
async fn sweep_at(d: &crate::responses::Drawn, at: chrono::DateTime<Utc>) -> sweep::SweepReport {
    let db = Db::connect(d.dispatch.database_url(), &supervision_dispatch::app::MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(at));
    let reference = ReferenceArgs::default().load().unwrap();
    let registry = Registry::new(Some(d._registry.channel.clone()), Some(identity::token(Role::Service, None)));
    let report = sweep::run_pass(&db, &clock, &reference, &registry).await.unwrap();
    db.close().await;
    report
}

async fn no_answer_by_the_response_deadline_counts_as_a_decline(backend: Backend) {
    let d = drawn(backend).await;
    let (answered, silent) = (&d.primaries[0], &d.primaries[1]);
    expert(&d.dispatch, &answered.expert_id).respond_to_assignment(accept("acc", &answered.id)).await.unwrap();

    // Notified Monday 2026-06-01 10:00 for Monday 06-08: the deadline is Tuesday 06-02 17:30
    // (09:30 UTC), the next working day, which is also one working day before the D3 deadline.
    let before = sweep_at(&d, Utc.with_ymd_and_hms(2026, 6, 2, 9, 29, 0).unwrap()).await;
    assert!(before.no_response.is_empty(), "{before:?}");
    let after = sweep_at(&d, Utc.with_ymd_and_hms(2026, 6, 2, 9, 31, 0).unwrap()).await;
    assert_eq!(after.no_response, std::slice::from_ref(&silent.id));
    assert_eq!(after.replacements, [d.backups[0].id.clone()]);
    let roster = roster(&d.dispatch, &d.task_id).await;
    let status = |id: &str| roster.iter().find(|a| a.id == id).unwrap().status;
    assert_eq!(status(&silent.id), AssignmentStatus::NoResponse as i32);
    assert_eq!(status(&answered.id), AssignmentStatus::Accepted as i32, "an answered assignment stays");
    assert_eq!(status(&d.backups[0].id), AssignmentStatus::Notified as i32);
    // A second pass at the same instant changes nothing (the promoted backup has a new deadline).
    let again = sweep_at(&d, Utc.with_ymd_and_hms(2026, 6, 2, 9, 31, 0).unwrap()).await;
    assert!(again.no_response.is_empty(), "{again:?}");
    let listed = user(&d.dispatch, "operator-a")
        .list_replacements(ListReplacementsRequest { task_id: d.task_id.clone(), page: None })
        .await
        .unwrap()
        .into_inner()
        .replacements;
    assert_eq!(listed[0].reason, VacancyReason::NoResponse as i32);
}

async fn the_sweep_leaves_a_task_alone_once_its_first_session_day_has_come(backend: Backend) {
    let d = drawn(backend).await;
    // Nobody answered. On the session's day (Monday 06-08, 10:00 in Jiangmen) and after it, the
    // task is under way: no NOTIFIED assignment becomes NO_RESPONSE and no backup is promoted.
    for at in [Utc.with_ymd_and_hms(2026, 6, 8, 2, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 6, 9, 2, 0, 0).unwrap()] {
        let report = sweep_at(&d, at).await;
        assert!(report.no_response.is_empty() && report.replacements.is_empty(), "{report:?}");
    }
    let roster = roster(&d.dispatch, &d.task_id).await;
    for p in &d.primaries {
        assert_eq!(roster.iter().find(|a| a.id == p.id).unwrap().status, AssignmentStatus::Notified as i32);
    }
    // The day before, the same assignments are overdue and expire.
    let before = sweep_at(&d, Utc.with_ymd_and_hms(2026, 6, 7, 2, 0, 0).unwrap()).await;
    assert_eq!(before.no_response.len(), d.primaries.len(), "{before:?}");
}

async fn concurrent_vacancies_on_one_draw_promote_different_backups(backend: Backend) {
    let d = drawn(backend).await;
    let mut first = user(&d.dispatch, "operator-a");
    let mut second = user(&d.dispatch, "operator-a");
    let request = |id: &str| CancelAssignmentRequest {
        request_id: format!("cancel-{id}"),
        assignment_id: id.into(),
        reason: "专家临时调整".into(),
    };
    // Both primaries leave at once: each vacancy is filled, by a different backup.
    let (a, b) = tokio::join!(
        first.cancel_assignment(request(&d.primaries[0].id)),
        second.cancel_assignment(request(&d.primaries[1].id)),
    );
    let (a, b) = (a.unwrap().into_inner(), b.unwrap().into_inner());
    let (ra, rb) = (a.replacement.expect("a replacement"), b.replacement.expect("a replacement"));
    assert_ne!(ra.id, rb.id);
    assert_ne!(ra.expert_id, rb.expert_id);
    let roster = roster(&d.dispatch, &d.task_id).await;
    let notified: Vec<_> = roster
        .iter()
        .filter(|a| {
            a.status == AssignmentStatus::Notified as i32
                && a.role == supervision_proto::dispatch::AssignmentRole::Primary as i32
        })
        .collect();
    assert_eq!(notified.len(), 2, "{roster:?}");
    // No expert holds two places in the draw.
    let mut experts: Vec<&str> = roster.iter().map(|a| a.expert_id.as_str()).collect();
    let all = experts.len();
    experts.sort_unstable();
    experts.dedup();
    assert_eq!(experts.len(), all, "{roster:?}");
}

fn shanghai(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap() - chrono::Duration::hours(8)
}

#[test]
fn response_deadlines_follow_holidays_and_make_up_days() {
    let reference = ReferenceArgs::default().load().unwrap();
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    // Thursday 06-18 before the Dragon Boat holiday (06-19 to 06-21): the next working day is
    // Monday 06-22, earlier than one working day before the D3 deadline (Tuesday 06-23).
    let deadline = sweep::response_deadline(&reference, shanghai(2026, 6, 18, 10, 0), day(2026, 6, 29)).unwrap();
    assert_eq!(deadline, shanghai(2026, 6, 22, 17, 30));
    // Friday 09-18: the next working day is the make-up Sunday 09-20.
    let deadline = sweep::response_deadline(&reference, shanghai(2026, 9, 18, 10, 0), day(2026, 10, 12)).unwrap();
    assert_eq!(deadline, shanghai(2026, 9, 20, 17, 30));
    // For Monday 10-12 the D3 deadline is Thursday 10-08 (the make-up Saturday 10-10 counts, the
    // National Day holiday does not), one working day before it is Wednesday 09-30: notified on
    // Tuesday 09-29 the earlier of 09-30 17:30 and 09-30 17:30.
    let deadline = sweep::response_deadline(&reference, shanghai(2026, 9, 29, 10, 0), day(2026, 10, 12)).unwrap();
    assert_eq!(deadline, shanghai(2026, 9, 30, 17, 30));
    // Notified on Monday 09-28 for Friday 10-09: one working day before the D3 deadline (09-29,
    // counting back over the holiday) is Monday 09-28 17:30, earlier than the next working day.
    let deadline = sweep::response_deadline(&reference, shanghai(2026, 9, 28, 10, 0), day(2026, 10, 9)).unwrap();
    assert_eq!(deadline, shanghai(2026, 9, 28, 17, 30));
    // Short notice: notified after that instant, the expert has the next working day.
    let deadline = sweep::response_deadline(&reference, shanghai(2026, 6, 24, 10, 0), day(2026, 6, 29)).unwrap();
    assert_eq!(deadline, shanghai(2026, 6, 25, 17, 30));
}
