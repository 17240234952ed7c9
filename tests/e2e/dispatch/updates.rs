//! UpdateTask: the fields in the mask change on an OPEN task before any draw; every check of
//! CreateTask runs again on the result (editions, calendar, the lead time, the county scope of
//! D13); retries answer once; a stale revision is ABORTED.
//!
//! The clock is Monday 2026-06-01 10:00 Asia/Shanghai (see `tasks.rs`): the first session may be
//! on Monday 2026-06-08 at the earliest unless the task is urgent.

use prost_types::FieldMask;
use supervision_proto::{
    common::{BureauCode, HalfDay},
    dispatch::{
        CancelTaskRequest, GetTaskRequest, ListAuditEntriesRequest, Task, UpdateTaskRequest,
        dispatch_service_client::DispatchServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, on_both_backends, spawn_dispatch_with_registry};
use tonic::Code;
use tonic_types::StatusExt;

use crate::draws::{create_task, independents, prepare, school, user};
use crate::tasks::{on, reason, set_clock};

on_both_backends!(
    an_open_task_changes_the_fields_in_its_mask,
    an_update_is_checked_again_like_a_creation,
    a_drawn_or_cancelled_task_is_not_changed,
);

fn update(request_id: &str, task: Task, paths: &[&str], expected_revision: i64) -> UpdateTaskRequest {
    UpdateTaskRequest {
        request_id: request_id.into(),
        task: Some(task),
        update_mask: Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
        expected_revision,
    }
}

fn fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    details.bad_request().map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect()).unwrap_or_default()
}

async fn read(client: &mut DispatchServiceClient<AuthedChannel>, id: &str) -> Task {
    client.get_task(GetTaskRequest { id: id.into() }).await.unwrap().into_inner().task.unwrap()
}

async fn an_open_task_changes_the_fields_in_its_mask(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let mut operator = user(&dispatch, "operator-a");
    let id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let before = read(&mut operator, &id).await;
    assert_eq!(before.revision, 1);

    // New title and sessions; the mode in the message is not in the mask and stays.
    let mut changed = before.clone();
    changed.title = "电工四级考核现场监督（改期）".into();
    changed.sessions = vec![on(2026, 6, 10, HalfDay::Pm), on(2026, 6, 11, HalfDay::Am)];
    changed.mode = before.mode + 1;
    changed.backup_count = 0;
    let request = update("upd-1", changed, &["title", "sessions"], 1);
    let after = operator.update_task(request.clone()).await.unwrap().into_inner().task.unwrap();
    assert_eq!(after.title, "电工四级考核现场监督（改期）");
    assert_eq!(after.mode, before.mode, "not in the mask");
    assert_eq!(after.backup_count, before.backup_count, "not in the mask");
    assert_eq!(after.revision, 2);
    let dates: Vec<(i32, i32)> = after.sessions.iter().map(|s| (s.date.as_ref().unwrap().day, s.half_day)).collect();
    assert_eq!(dates, vec![(10, HalfDay::Pm as i32), (11, HalfDay::Am as i32)]);
    let old_ids: Vec<&str> = before.sessions.iter().map(|s| s.id.as_str()).collect();
    assert!(after.sessions.iter().all(|s| !s.id.is_empty() && !old_ids.contains(&s.id.as_str())), "new sessions");
    assert_eq!(read(&mut operator, &id).await, after, "what was answered is what is stored");

    // A retry answers the first answer and changes nothing more.
    let replay = operator.update_task(request).await.unwrap().into_inner().task.unwrap();
    assert_eq!(replay.revision, 2);
    assert_eq!(read(&mut operator, &id).await.revision, 2);

    // A stale revision is ABORTED; the team size in the mask changes only the team size.
    let mut team = after.clone();
    team.team_size = 3;
    let err = operator.update_task(update("upd-2", team.clone(), &["team_size"], 1)).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    let three = operator.update_task(update("upd-3", team, &["team_size"], 2)).await.unwrap().into_inner();
    let three = three.task.unwrap();
    assert_eq!((three.team_size, three.title.as_str(), three.revision), (3, after.title.as_str(), 3));

    // Paths outside the list, an empty mask and a bad value are INVALID_ARGUMENT, field by field.
    let err = operator.update_task(update("upd-4", three.clone(), &["institution_id"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), vec!["update_mask.paths[0]"]);
    let err = operator.update_task(update("upd-5", three.clone(), &[], 0)).await.unwrap_err();
    assert_eq!(fields(&err), vec!["update_mask"]);
    let mut blank = three.clone();
    blank.title = String::new();
    let err = operator.update_task(update("upd-6", blank, &["title"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), vec!["title"]);
    assert_eq!(read(&mut operator, &id).await.revision, 3, "refusals change nothing");

    // One audit entry per change, with what it was before.
    let audit = DispatchServiceClient::new(dispatch.as_role(Role::CityAdmin, None))
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "task".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let updates: Vec<_> = audit.entries.iter().filter(|e| e.action == "update").collect();
    assert_eq!(updates.len(), 2);
    dispatch.stop().await;
    registry.stop().await;
}

async fn an_update_is_checked_again_like_a_creation(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    let mut operator = user(&dispatch, "operator-a");
    let id = create_task(&mut operator, &school, None, HalfDay::Am).await;
    let task = read(&mut operator, &id).await;

    // Moved inside the 5-working-day lead: refused unless urgent with a reason.
    let mut sooner = task.clone();
    sooner.sessions = vec![on(2026, 6, 3, HalfDay::Am)];
    let err = operator.update_task(update("soon-1", sooner.clone(), &["sessions"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(reason(&err), "TOO_SHORT_NOTICE");
    assert_eq!(read(&mut operator, &id).await, task, "nothing changed");
    let mut urgent_without_reason = sooner.clone();
    urgent_without_reason.urgent = true;
    let err =
        operator.update_task(update("soon-2", urgent_without_reason, &["sessions", "urgent"], 0)).await.unwrap_err();
    assert_eq!(fields(&err), vec!["urgent_reason"]);
    sooner.urgent = true;
    sooner.urgent_reason = "举报线索指向6月3日的考核".into();
    let urgent = operator
        .update_task(update("soon-3", sooner, &["sessions", "urgent", "urgent_reason"], 0))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(urgent.urgent);
    assert_eq!(urgent.sessions[0].date.as_ref().unwrap().day, 3);

    // Past the editions in force and the calendar's years: refused as at creation.
    let mut far = urgent.clone();
    far.sessions = vec![on(2031, 6, 3, HalfDay::Am)];
    let err = operator.update_task(update("far-1", far, &["sessions"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // D13: another county's operator does not see the task; the city's operators may change it.
    let mut other = DispatchServiceClient::new(dispatch.as_role(Role::CountyOperator, Some(Bureau::Jianghai)));
    let err = other.update_task(update("other-1", urgent.clone(), &["title"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let mut city = DispatchServiceClient::new(dispatch.as_role(Role::CityOperator, None));
    let mut retitled = urgent.clone();
    retitled.title = "市局统筹：电工考核现场监督".into();
    let by_city = city.update_task(update("city-1", retitled, &["title"], 2)).await.unwrap().into_inner();
    assert_eq!(by_city.task.unwrap().revision, 3);
    assert_eq!(urgent.dispatching_bureau, BureauCode::Pengjiang as i32);
    dispatch.stop().await;
    registry.stop().await;
}

async fn a_drawn_or_cancelled_task_is_not_changed(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = school(&registry).await;
    independents(&registry, 1, 9).await;
    let mut operator = user(&dispatch, "operator-a");
    let drawn = create_task(&mut operator, &school, None, HalfDay::Am).await;
    prepare(&mut operator, "prep-1", &drawn).await;
    let mut task = read(&mut operator, &drawn).await;
    task.title = "改名".into();
    let err = operator.update_task(update("upd-1", task.clone(), &["title"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(reason(&err), "TASK_ALREADY_DRAWN");
    assert_ne!(read(&mut operator, &drawn).await.title, "改名");

    let cancelled = create_task(&mut operator, &school, None, HalfDay::Pm).await;
    let request =
        CancelTaskRequest { request_id: "cancel-1".into(), task_id: cancelled.clone(), reason: "机构改期".into() };
    operator.cancel_task(request).await.unwrap();
    let mut task = read(&mut operator, &cancelled).await;
    task.title = "改名".into();
    let err = operator.update_task(update("upd-2", task, &["title"], 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(reason(&err), "TASK_NOT_EDITABLE");
    dispatch.stop().await;
    registry.stop().await;
}
