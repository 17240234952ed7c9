//! Supervision tasks (article 7(六); D2, D6, D7, D13): who may dispatch where, the sessions, the
//! edition and the calendar, the lead time, task numbers, idempotency, and the registry.
//!
//! Dispatch's clock is set to Monday 2026-06-01 10:00 Asia/Shanghai, inside the calendar's years
//! (2021-2026) and edition 1 (to 2027-02-14). Edition 1's lead time is 5 working days, so the
//! first session may be on Monday 2026-06-08 at the earliest.

use chrono::{TimeZone, Utc};
use supervision_proto::{
    common::{BureauCode, Date, FundSource, HalfDay, TimeOfDay},
    dispatch::{
        Activity, ActivityKind, ActivitySubject, ApproveTaskExceptionRequest, CancelTaskRequest, CreateTaskRequest,
        GetTaskRequest, ListAuditEntriesRequest, ListTasksRequest, Task, TaskException, TaskExceptionKind, TaskMode,
        TaskOrigin, TaskSession, TaskStatus, dispatch_service_client::DispatchServiceClient,
    },
    registry::{CreateInstitutionRequest, InstitutionType, registry_service_client::RegistryServiceClient},
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, spawn_dispatch,
    spawn_dispatch_with_registry, spawn_registry_on,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

on_both_backends!(
    a_county_creates_a_task_for_its_own_institution,
    another_countys_institution_needs_the_citys_exception,
    every_session_falls_in_an_edition_and_a_calendar_year,
    too_short_notice_is_refused_unless_urgent_with_a_reason,
    duplicate_session_slots_are_refused_field_by_field,
    task_numbers_count_per_bureau_and_year,
    a_retried_creation_is_recorded_once,
    without_the_registry_nothing_is_written,
);

/// Monday 2026-06-01 10:00 in Asia/Shanghai.
pub(crate) fn set_clock(dispatch: &RunningService) {
    let target = Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0).unwrap();
    dispatch.set_clock_offset((target - Utc::now()).num_seconds());
}

fn dispatch_as(dispatch: &RunningService, role: Role, bureau: Option<Bureau>) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(dispatch.as_role(role, bureau))
}

fn pengjiang(dispatch: &RunningService) -> DispatchServiceClient<AuthedChannel> {
    dispatch_as(dispatch, Role::CountyOperator, Some(Bureau::Pengjiang))
}

/// Registers an institution in `county` and returns its id.
pub(crate) async fn institution(
    registry: &RunningService,
    credit_code: &str,
    county: BureauCode,
    name: &str,
) -> String {
    let mut client = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let request = CreateInstitutionRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        r#type: InstitutionType::VocationalTrainingSchool as i32,
        name: name.into(),
        credit_code: credit_code.into(),
        parent_id: String::new(),
        county: county as i32,
        address: "江门市".into(),
        head: "李校长".into(),
    };
    client.create_institution(request).await.unwrap().into_inner().institution.unwrap().id
}

async fn pengjiang_school(registry: &RunningService) -> String {
    institution(registry, "91440703MA4W00001M", BureauCode::Pengjiang, "蓬江职业培训学校").await
}

async fn jianghai_school(registry: &RunningService) -> String {
    institution(registry, "91440704MA4W000027", BureauCode::Jianghai, "江海职业培训学校").await
}

pub(crate) fn on(year: i32, month: i32, day: i32, half_day: HalfDay) -> TaskSession {
    TaskSession { date: Some(Date { year, month, day }), half_day: half_day as i32, ..Default::default() }
}

fn timed(mut session: TaskSession, start: (i32, i32), end: (i32, i32)) -> TaskSession {
    session.planned_start = Some(TimeOfDay { hours: start.0, minutes: start.1 });
    session.planned_end = Some(TimeOfDay { hours: end.0, minutes: end.1 });
    session
}

pub(crate) fn task(
    request_id: &str,
    bureau: BureauCode,
    institution_id: &str,
    sessions: Vec<TaskSession>,
) -> CreateTaskRequest {
    CreateTaskRequest {
        request_id: request_id.into(),
        dispatching_bureau: bureau as i32,
        institution_id: institution_id.into(),
        title: "电工职业技能等级认定考核现场监督".into(),
        activity: Some(Activity {
            subject: ActivitySubject::SkillLevel as i32,
            kind: ActivityKind::Assessment as i32,
            reference: "2026-电工-03批".into(),
            description: String::new(),
        }),
        mode: TaskMode::OnSite as i32,
        origin: TaskOrigin::Routine as i32,
        sessions,
        fund_source: FundSource::CityCountyEmployment as i32,
        ..Default::default()
    }
}

pub(crate) fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

fn fields(status: &Status) -> Vec<String> {
    let details = status.get_error_details();
    details.bad_request().map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect()).unwrap_or_default()
}

async fn listed(client: &mut DispatchServiceClient<AuthedChannel>) -> Vec<String> {
    let page = client.list_tasks(ListTasksRequest::default()).await.unwrap().into_inner();
    page.tasks.into_iter().map(|t| t.task_number).collect()
}

async fn create(client: &mut DispatchServiceClient<AuthedChannel>, request: CreateTaskRequest) -> Task {
    client.create_task(request).await.unwrap().into_inner().task.unwrap()
}

async fn a_county_creates_a_task_for_its_own_institution(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let sessions = vec![
        on(2026, 6, 8, HalfDay::Pm),
        timed(on(2026, 6, 8, HalfDay::Am), (8, 30), (12, 0)),
        on(2026, 6, 9, HalfDay::Am),
    ];
    let mut county = pengjiang(&dispatch);
    let created = create(&mut county, task("own-1", BureauCode::Pengjiang, &school, sessions)).await;
    assert!(created.id.starts_with("tsk_"), "{}", created.id);
    assert_eq!(created.task_number, "440703-2026-0001");
    assert_eq!(created.dispatching_bureau, BureauCode::Pengjiang as i32);
    assert_eq!((created.team_size, created.backup_count), (2, 2), "the edition's defaults (D7)");
    assert_eq!(created.edition_number, 1);
    assert_eq!(created.status, TaskStatus::Open as i32);
    assert_eq!(created.revision, 1);
    let slots: Vec<(i32, i32)> = created.sessions.iter().map(|s| (s.date.as_ref().unwrap().day, s.half_day)).collect();
    assert_eq!(slots, [(8, HalfDay::Am as i32), (8, HalfDay::Pm as i32), (9, HalfDay::Am as i32)], "sorted");
    assert!(created.sessions.iter().all(|s| s.id.starts_with("ses_")));
    assert_eq!(created.sessions[0].planned_start, Some(TimeOfDay { hours: 8, minutes: 30 }));
    assert_eq!(created.created_by.as_ref().unwrap().role, supervision_proto::common::Role::CountyOperator as i32);

    let get = GetTaskRequest { id: created.id.clone() };
    assert_eq!(county.get_task(get.clone()).await.unwrap().into_inner().task.unwrap(), created);
    let city = dispatch_as(&dispatch, Role::CityReviewer, None).get_task(get.clone()).await.unwrap();
    assert_eq!(city.into_inner().task.unwrap().id, created.id);
    let mut jianghai = dispatch_as(&dispatch, Role::CountyOperator, Some(Bureau::Jianghai));
    assert_eq!(jianghai.get_task(get).await.unwrap_err().code(), Code::NotFound, "another county's task");
    assert!(listed(&mut jianghai).await.is_empty());
    assert_eq!(listed(&mut county).await, ["440703-2026-0001"]);
    assert_eq!(listed(&mut dispatch_as(&dispatch, Role::Auditor, None)).await, ["440703-2026-0001"]);

    // A county names only its own bureau (D13).
    let err =
        county.create_task(task("own-2", BureauCode::Jianghai, &school, vec![on(2026, 6, 10, HalfDay::Am)])).await;
    assert_eq!(err.unwrap_err().code(), Code::PermissionDenied);

    // It may cancel its own task, with a reason.
    let cancel =
        CancelTaskRequest {
            request_id: "c-1".into(), task_id: created.id.clone(), reason: "机构延期考核".into()
        };
    let cancelled = county.cancel_task(cancel).await.unwrap().into_inner().task.unwrap();
    assert_eq!(cancelled.status, TaskStatus::Cancelled as i32);
    assert_eq!(cancelled.revision, 2);
    dispatch.stop().await;
    registry.stop().await;
}

async fn another_countys_institution_needs_the_citys_exception(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let elsewhere = jianghai_school(&registry).await;
    let mut county = pengjiang(&dispatch);
    let request = task("x-1", BureauCode::Pengjiang, &elsewhere, vec![on(2026, 6, 10, HalfDay::Am)]);
    let err = county.create_task(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "CROSS_COUNTY_EXCEPTION_REQUIRED");
    assert!(listed(&mut county).await.is_empty());

    let asked = CreateTaskRequest {
        request_id: "x-2".into(),
        exceptions: vec![TaskException {
            kind: TaskExceptionKind::CrossCounty as i32,
            reason: "江海区人社局委托蓬江区监督".into(),
            ..Default::default()
        }],
        ..request
    };
    let created = create(&mut county, asked).await;
    assert_eq!(created.exceptions.len(), 1);
    assert!(!created.exceptions[0].approved, "recorded here, approved by the city later");

    let approve = |request_id: &str| ApproveTaskExceptionRequest {
        request_id: request_id.into(),
        task_id: created.id.clone(),
        kind: TaskExceptionKind::CrossCounty as i32,
        reason: "同意".into(),
        reduced_team_size: 0,
    };
    let err = county.approve_task_exception(approve("a-0")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "only CITY_ADMIN approves");
    let mut admin = dispatch_as(&dispatch, Role::CityAdmin, None);
    let approved = admin.approve_task_exception(approve("a-1")).await.unwrap().into_inner().task.unwrap();
    assert!(approved.exceptions[0].approved);
    assert_eq!(
        approved.exceptions[0].approved_by.as_ref().unwrap().role,
        supervision_proto::common::Role::CityAdmin as i32
    );
    assert_eq!(approved.revision, 2);
    let again = admin.approve_task_exception(approve("a-2")).await.unwrap_err();
    assert_eq!(reason(&again), "EXCEPTION_ALREADY_APPROVED");

    // The city dispatches anywhere without an exception.
    let mut city = dispatch_as(&dispatch, Role::CityOperator, None);
    let by_city =
        create(&mut city, task("x-3", BureauCode::JiangmenCity, &elsewhere, vec![on(2026, 6, 10, HalfDay::Am)])).await;
    assert!(by_city.exceptions.is_empty());
    dispatch.stop().await;
    registry.stop().await;
}

async fn every_session_falls_in_an_edition_and_a_calendar_year(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let mut county = pengjiang(&dispatch);
    let after_edition = vec![on(2026, 6, 10, HalfDay::Am), on(2027, 3, 1, HalfDay::Am)];
    let err = county.create_task(task("e-1", BureauCode::Pengjiang, &school, after_edition)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "NO_EDITION_IN_FORCE");
    assert!(err.message().contains("2027-02-14"), "{}", err.message());
    let info = err.get_error_details().error_info().unwrap().clone();
    assert_eq!(info.metadata.get("last_effective_to").map(String::as_str), Some("2027-02-14"));

    // In edition 1, but in a year the calendar has no notice for: never a guess (D3).
    let uncovered = vec![on(2027, 1, 11, HalfDay::Am)];
    let err = county.create_task(task("e-2", BureauCode::Pengjiang, &school, uncovered)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "CALENDAR_YEAR_MISSING");
    assert!(err.message().contains("2027"), "{}", err.message());
    assert!(listed(&mut county).await.is_empty());
    dispatch.stop().await;
    registry.stop().await;
}

async fn too_short_notice_is_refused_unless_urgent_with_a_reason(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let mut county = pengjiang(&dispatch);
    let friday = || vec![on(2026, 6, 5, HalfDay::Am)];
    let err = county.create_task(task("n-1", BureauCode::Pengjiang, &school, friday())).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(reason(&err), "TOO_SHORT_NOTICE");
    assert!(err.message().contains("2026-06-08"), "names the earliest date: {}", err.message());

    let urgent_without_reason =
        CreateTaskRequest { urgent: true, ..task("n-2", BureauCode::Pengjiang, &school, friday()) };
    let err = county.create_task(urgent_without_reason).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["urgent_reason"]);

    let urgent = CreateTaskRequest {
        urgent: true,
        urgent_reason: "举报称考核存在替考，须尽快核查".into(),
        ..task("n-3", BureauCode::Pengjiang, &school, friday())
    };
    let created = create(&mut county, urgent).await;
    assert!(created.urgent);
    // The first working day of the lead time is enough.
    create(&mut county, task("n-4", BureauCode::Pengjiang, &school, vec![on(2026, 6, 8, HalfDay::Am)])).await;
    dispatch.stop().await;
    registry.stop().await;
}

async fn duplicate_session_slots_are_refused_field_by_field(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let mut county = pengjiang(&dispatch);
    let sessions = vec![on(2026, 6, 8, HalfDay::Am), on(2026, 6, 8, HalfDay::Pm), on(2026, 6, 8, HalfDay::Am)];
    let err = county.create_task(task("d-1", BureauCode::Pengjiang, &school, sessions)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(fields(&err), ["sessions[2].date", "sessions[2].half_day"]);

    // Planned times keep to their half-day (D2: AM before 12:30, PM from it).
    let sessions = vec![
        timed(on(2026, 6, 8, HalfDay::Am), (13, 0), (15, 0)),
        timed(on(2026, 6, 8, HalfDay::Pm), (14, 0), (13, 0)),
        on(2026, 6, 9, HalfDay::Unspecified),
    ];
    let err = county.create_task(task("d-2", BureauCode::Pengjiang, &school, sessions)).await.unwrap_err();
    assert_eq!(fields(&err), ["sessions[2].half_day"], "the slot itself first");
    let sessions = vec![
        timed(on(2026, 6, 8, HalfDay::Am), (13, 0), (15, 0)),
        timed(on(2026, 6, 8, HalfDay::Pm), (14, 0), (13, 0)),
    ];
    let err = county.create_task(task("d-3", BureauCode::Pengjiang, &school, sessions)).await.unwrap_err();
    assert_eq!(fields(&err), ["sessions[0].planned_start", "sessions[0].planned_end", "sessions[1].planned_end"]);
    let err = county.create_task(task("d-4", BureauCode::Pengjiang, &school, vec![])).await.unwrap_err();
    assert_eq!(fields(&err), ["sessions"]);
    assert!(listed(&mut county).await.is_empty());
    dispatch.stop().await;
    registry.stop().await;
}

async fn task_numbers_count_per_bureau_and_year(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let mut county = pengjiang(&dispatch);
    for i in 1..=2 {
        let made = create(
            &mut county,
            task(&format!("s-{i}"), BureauCode::Pengjiang, &school, vec![on(2026, 6, 8, HalfDay::Am)]),
        )
        .await;
        assert_eq!(made.task_number, format!("440703-2026-{i:04}"));
    }
    let mut city = dispatch_as(&dispatch, Role::CityOperator, None);
    let by_city =
        create(&mut city, task("s-city", BureauCode::JiangmenCity, &school, vec![on(2026, 6, 8, HalfDay::Am)])).await;
    assert_eq!(by_city.task_number, "440700-2026-0001", "each bureau counts its own");

    // Concurrent creations never share or skip a number.
    let mut running = tokio::task::JoinSet::new();
    for i in 0..6 {
        let mut client = pengjiang(&dispatch);
        let request = task(&format!("c-{i}"), BureauCode::Pengjiang, &school, vec![on(2026, 6, 9, HalfDay::Pm)]);
        running.spawn(async move { create(&mut client, request).await.task_number });
    }
    let mut numbers = running.join_all().await;
    numbers.sort();
    let expected: Vec<String> = (3..=8).map(|n| format!("440703-2026-{n:04}")).collect();
    assert_eq!(numbers, expected);
    dispatch.stop().await;
    registry.stop().await;
}

async fn a_retried_creation_is_recorded_once(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let mut county = pengjiang(&dispatch);
    let request = task("same", BureauCode::Pengjiang, &school, vec![on(2026, 6, 8, HalfDay::Am)]);
    let first = county.create_task(request.clone()).await.unwrap().into_inner();
    let again = county.create_task(request.clone()).await.unwrap().into_inner();
    assert_eq!(first, again);
    assert_eq!(listed(&mut county).await, ["440703-2026-0001"]);
    let other = CreateTaskRequest { title: "另一个任务".into(), ..request.clone() };
    assert_eq!(county.create_task(other).await.unwrap_err().code(), Code::FailedPrecondition);

    // A retry the next week, when the session is no longer far enough ahead, still gets the
    // first answer.
    dispatch.set_clock_offset((Utc.with_ymd_and_hms(2026, 6, 5, 2, 0, 0).unwrap() - Utc::now()).num_seconds());
    let late = county.create_task(request.clone()).await.unwrap().into_inner();
    assert_eq!(late, first);
    let fresh = CreateTaskRequest { request_id: "fresh".into(), ..request };
    assert_eq!(reason(&county.create_task(fresh).await.unwrap_err()), "TOO_SHORT_NOTICE");
    dispatch.stop().await;
    registry.stop().await;
}

async fn without_the_registry_nothing_is_written(backend: Backend) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    set_clock(&dispatch);
    let school = pengjiang_school(&registry).await;
    let registry_addr = registry.addr.to_string();
    let registry_db = registry.stop_keeping_database().await;

    let mut county = pengjiang(&dispatch);
    let request = task("r-1", BureauCode::Pengjiang, &school, vec![on(2026, 6, 8, HalfDay::Am)]);
    let err = county.create_task(request.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(listed(&mut county).await.is_empty());
    let audit = dispatch_as(&dispatch, Role::CityAdmin, None)
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "task".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(audit.entries.is_empty(), "no audit entry either");

    // Back up: the same request goes through, and no number was used up.
    let registry = spawn_registry_on(registry_db, &registry_addr).await;
    let created = create(&mut county, request).await;
    assert_eq!(created.task_number, "440703-2026-0001");
    let audit = dispatch_as(&dispatch, Role::CityAdmin, None)
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "task".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries.len(), 1);
    dispatch.stop().await;
    registry.stop().await;

    // A dispatch with no registry configured refuses the same way.
    let alone = spawn_dispatch(backend).await;
    set_clock(&alone);
    let err = pengjiang(&alone)
        .create_task(task("r-2", BureauCode::Pengjiang, &school, vec![on(2026, 6, 8, HalfDay::Am)]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    alone.stop().await;
}
