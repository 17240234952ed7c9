//! Notifications through the outbox with delivery status (DOMAIN.md 9.4, D5, D16): experts are
//! told of their assignments in the in-app inbox; the dispatching bureau's operators are told of
//! declines and replacements; only the recipient acknowledges, and the read time is D5's
//! evidence of delivery; a channel that keeps refusing leaves the notification FAILED.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use supervision_dispatch::{
    app::MIGRATIONS,
    domain::TaskId,
    notify::{self, Channel, Kind, MAX_ATTEMPTS, Notification, Recipient},
    store::tasks as task_store,
};
use supervision_kit::{Db, SharedClock, clock::ManualClock};
use supervision_proto::{
    common::BureauCode,
    dispatch::{
        AcknowledgeNotificationRequest, Decline, DeclineReason, ListNotificationsRequest, NotificationKind,
        NotificationState, RespondToAssignmentRequest, dispatch_service_client::DispatchServiceClient,
        respond_to_assignment_request::Answer,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends};
use tonic::Code;

use crate::{
    draws::user,
    responses::{drawn, expert},
};

on_both_backends!(
    experts_hear_of_assignments_and_operators_of_declines_and_replacements,
    only_the_recipient_acknowledges_and_inboxes_stay_apart,
    a_channel_that_keeps_refusing_leaves_the_notification_failed,
    the_city_admin_acknowledges_the_city_bureaus_notices,
);

pub(crate) async fn deliver(dispatch: &RunningService) {
    let db = Db::connect(dispatch.database_url(), &MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(Utc.with_ymd_and_hms(2026, 6, 1, 3, 0, 0).unwrap()));
    notify::deliver_pending(&db, &clock, &notify::channels()).await.unwrap();
    db.close().await;
}

async fn inbox(
    client: &mut DispatchServiceClient<AuthedChannel>,
    request: ListNotificationsRequest,
) -> Vec<supervision_proto::dispatch::Notification> {
    client.list_notifications(request).await.unwrap().into_inner().notifications
}

fn kinds(list: &[supervision_proto::dispatch::Notification]) -> Vec<i32> {
    let mut k: Vec<i32> = list.iter().map(|n| n.kind).collect();
    k.sort_unstable();
    k
}

fn decline(request_id: &str, assignment_id: &str) -> RespondToAssignmentRequest {
    RespondToAssignmentRequest {
        request_id: request_id.into(),
        assignment_id: assignment_id.into(),
        answer: Some(Answer::Decline(Decline { reason: DeclineReason::WorkConflict as i32, detail: "出差".into() })),
        on_behalf: None,
    }
}

async fn experts_hear_of_assignments_and_operators_of_declines_and_replacements(backend: Backend) {
    let d = drawn(backend).await;
    deliver(&d.dispatch).await;
    let (first, second) = (&d.primaries[0], &d.primaries[1]);
    let mut first_client = expert(&d.dispatch, &first.expert_id);
    let offered = inbox(&mut first_client, ListNotificationsRequest::default()).await;
    assert_eq!(offered.len(), 1, "{offered:#?}");
    let n = &offered[0];
    assert_eq!(n.kind, NotificationKind::AssignmentOffered as i32);
    assert_eq!((n.assignment_id.as_str(), n.task_id.as_str()), (first.id.as_str(), d.task_id.as_str()));
    assert_eq!(n.state, NotificationState::Delivered as i32);
    assert!(n.deliver_time.is_some() && n.read_time.is_none());
    assert_eq!(n.recipient_expert_id, first.expert_id);
    // A backup is held in reserve, not told.
    let mut backup = expert(&d.dispatch, &d.backups[0].expert_id);
    assert!(inbox(&mut backup, ListNotificationsRequest::default()).await.is_empty());
    let mut operators = user(&d.dispatch, "operator-a");
    assert!(inbox(&mut operators, ListNotificationsRequest::default()).await.is_empty(), "nothing to tell yet");

    // A decline: the bureau's operators hear of it and of the promotion; the promoted backup is told.
    first_client.respond_to_assignment(decline("dec-1", &first.id)).await.unwrap();
    deliver(&d.dispatch).await;
    let notices = inbox(&mut operators, ListNotificationsRequest::default()).await;
    assert_eq!(
        kinds(&notices),
        vec![NotificationKind::DeclineReceived as i32, NotificationKind::ReplacementMade as i32],
        "{notices:#?}"
    );
    assert!(notices.iter().all(|n| n.recipient_bureau == BureauCode::Pengjiang as i32));
    let replacement = notices.iter().find(|n| n.kind == NotificationKind::ReplacementMade as i32).unwrap();
    assert_eq!(replacement.assignment_id, d.backups[0].id);
    assert!(replacement.body.contains(&first.expert_id) && replacement.body.contains(&d.backups[0].expert_id));
    let told = inbox(&mut backup, ListNotificationsRequest::default()).await;
    assert_eq!(kinds(&told), vec![NotificationKind::AssignmentOffered as i32]);
    assert_eq!(told[0].assignment_id, d.backups[0].id);

    // Cancelling a notified primary tells that expert, and the bureau of the replacement.
    let mut city = DispatchServiceClient::new(d.dispatch.as_role(Role::CityAdmin, None));
    let cancel = supervision_proto::dispatch::CancelAssignmentRequest {
        request_id: "cancel-1".into(),
        assignment_id: second.id.clone(),
        reason: "专家与机构存在利害关系".into(),
    };
    operators.cancel_assignment(cancel).await.unwrap();
    deliver(&d.dispatch).await;
    let mut second_client = expert(&d.dispatch, &second.expert_id);
    let theirs = inbox(&mut second_client, ListNotificationsRequest::default()).await;
    assert_eq!(
        kinds(&theirs),
        vec![NotificationKind::AssignmentOffered as i32, NotificationKind::AssignmentCancelled as i32]
    );
    // City roles see every notice with its delivery status.
    let all =
        inbox(&mut city, ListNotificationsRequest { bureau: BureauCode::Pengjiang as i32, ..Default::default() }).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(all.iter().all(|n| n.state == NotificationState::Delivered as i32));
}

async fn only_the_recipient_acknowledges_and_inboxes_stay_apart(backend: Backend) {
    let d = drawn(backend).await;
    deliver(&d.dispatch).await;
    let first = &d.primaries[0];
    let mut mine = expert(&d.dispatch, &first.expert_id);
    let id = inbox(&mut mine, ListNotificationsRequest::default()).await[0].id.clone();
    let ack = |request_id: &str| AcknowledgeNotificationRequest {
        request_id: request_id.into(),
        notification_id: id.clone(),
    };

    // Nobody else: another expert, staff (who never acknowledge for an expert).
    let mut other = expert(&d.dispatch, &d.primaries[1].expert_id);
    assert_eq!(other.acknowledge_notification(ack("ack-x")).await.unwrap_err().code(), Code::NotFound);
    let mut city = DispatchServiceClient::new(d.dispatch.as_role(Role::CityAdmin, None));
    assert_eq!(city.acknowledge_notification(ack("ack-y")).await.unwrap_err().code(), Code::NotFound);
    let bad = AcknowledgeNotificationRequest { request_id: "ack-z".into(), notification_id: "nope".into() };
    assert_eq!(mine.acknowledge_notification(bad).await.unwrap_err().code(), Code::InvalidArgument);

    let read = mine.acknowledge_notification(ack("ack-1")).await.unwrap().into_inner().notification.unwrap();
    assert_eq!(read.state, NotificationState::Read as i32);
    let read_time = read.read_time.unwrap();
    let again = mine.acknowledge_notification(ack("ack-1")).await.unwrap().into_inner().notification.unwrap();
    assert_eq!(again, read, "a retry answers the same");
    let twice = mine.acknowledge_notification(ack("ack-2")).await.unwrap().into_inner().notification.unwrap();
    assert_eq!(twice.read_time.unwrap(), read_time, "the first read time stays");
    assert!(inbox(&mut mine, ListNotificationsRequest { unread_only: true, ..Default::default() }).await.is_empty());
    assert_eq!(inbox(&mut mine, ListNotificationsRequest::default()).await.len(), 1);

    // An expert reads only their own inbox; a county operator only their bureau's notices.
    let ask_other = ListNotificationsRequest { expert_id: d.primaries[1].expert_id.clone(), ..Default::default() };
    assert_eq!(mine.list_notifications(ask_other).await.unwrap_err().code(), Code::PermissionDenied);
    let mut jianghai = DispatchServiceClient::new(d.dispatch.as_role(Role::CountyOperator, Some(Bureau::Jianghai)));
    let ask = ListNotificationsRequest { bureau: BureauCode::Pengjiang as i32, ..Default::default() };
    assert_eq!(jianghai.list_notifications(ask).await.unwrap_err().code(), Code::PermissionDenied);
    assert!(inbox(&mut jianghai, ListNotificationsRequest::default()).await.is_empty());
    // The audit trail has the acknowledgement once.
    let audit = city
        .list_audit_entries(supervision_proto::dispatch::ListAuditEntriesRequest {
            entity_type: "notification".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries.len(), 1);
}

#[derive(Debug)]
struct Refusing;

#[tonic::async_trait]
impl Channel for Refusing {
    fn code(&self) -> &'static str {
        "IN_APP"
    }

    async fn deliver(&self, _notification: &Notification) -> Result<(), String> {
        Err("the gateway refused".into())
    }
}

async fn a_channel_that_keeps_refusing_leaves_the_notification_failed(backend: Backend) {
    let d = drawn(backend).await;
    let db = Db::connect(d.dispatch.database_url(), &MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(Utc.with_ymd_and_hms(2026, 6, 1, 3, 0, 0).unwrap()));
    // The service's own delivery job runs every 5 seconds; stop it before writing a notice.
    let url = d.dispatch.database_url().to_owned();
    let kept = d.dispatch.stop_keeping_database().await;
    assert_eq!(kept.url(), url);
    let task = {
        let mut conn = db.pool().acquire().await.unwrap();
        task_store::get_task(&mut conn, &TaskId::parse(&d.task_id).unwrap()).await.unwrap().unwrap()
    };
    {
        let mut tx = db.pool().begin().await.unwrap();
        notify::enqueue(
            &mut tx,
            &clock,
            Kind::Understaffed,
            Recipient::Bureau(Bureau::Pengjiang),
            &task,
            "",
            "t".into(),
            "b".into(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let refusing: Vec<Arc<dyn Channel>> = vec![Arc::new(Refusing)];
    for _ in 0..MAX_ATTEMPTS {
        assert_eq!(notify::deliver_pending(&db, &clock, &refusing).await.unwrap(), 0);
    }
    // FAILED now: no further attempt, even by a channel that would deliver.
    assert_eq!(notify::deliver_pending(&db, &clock, &notify::channels()).await.unwrap(), 0);
    let (items, _) = notify::list(
        &db,
        &notify::Inbox::Any { expert_id: None, bureau: Some(Bureau::Pengjiang) },
        false,
        &supervision_kit::Page { size: 50, after: None },
    )
    .await
    .unwrap();
    let failed: Vec<_> = items.iter().filter(|n| n.kind == "UNDERSTAFFED").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, notify::State::Failed);
    assert_eq!((failed[0].attempts, failed[0].last_error.as_str()), (MAX_ATTEMPTS, "the gateway refused"));
    // The operators' own inbox never shows it.
    let (theirs, _) = notify::list(
        &db,
        &notify::Inbox::Bureau(Bureau::Pengjiang),
        false,
        &supervision_kit::Page { size: 50, after: None },
    )
    .await
    .unwrap();
    assert!(theirs.iter().all(|n| n.kind != "UNDERSTAFFED"));
    db.close().await;
    drop(kept);
}

async fn the_city_admin_acknowledges_the_city_bureaus_notices(backend: Backend) {
    let d = drawn(backend).await;
    let db = Db::connect(d.dispatch.database_url(), &MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(Utc.with_ymd_and_hms(2026, 6, 1, 3, 0, 0).unwrap()));
    let task = {
        let mut conn = db.pool().acquire().await.unwrap();
        task_store::get_task(&mut conn, &TaskId::parse(&d.task_id).unwrap()).await.unwrap().unwrap()
    };
    for (recipient, title) in [(Bureau::City, "city"), (Bureau::Pengjiang, "county")] {
        let mut tx = db.pool().begin().await.unwrap();
        notify::enqueue(
            &mut tx,
            &clock,
            Kind::Understaffed,
            Recipient::Bureau(recipient),
            &task,
            "",
            title.into(),
            "b".into(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    db.close().await;
    deliver(&d.dispatch).await;
    let mut admin = DispatchServiceClient::new(d.dispatch.as_role(Role::CityAdmin, None));
    let all = inbox(&mut admin, ListNotificationsRequest::default()).await;
    let id_of = |title: &str| all.iter().find(|n| n.title == title).unwrap().id.clone();
    let ack = |request_id: &str, id: String| AcknowledgeNotificationRequest {
        request_id: request_id.into(),
        notification_id: id,
    };
    // The city bureau's notice: CITY_ADMIN acknowledges it as the city's operators would.
    let read = admin.acknowledge_notification(ack("ack-city", id_of("city"))).await.unwrap().into_inner();
    let read = read.notification.unwrap();
    assert_eq!(read.state, NotificationState::Read as i32);
    assert!(read.read_time.is_some());
    // Not a county bureau's notice, nor an expert's.
    let err = admin.acknowledge_notification(ack("ack-county", id_of("county"))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let offered = all.iter().find(|n| !n.recipient_expert_id.is_empty()).unwrap().id.clone();
    assert_eq!(admin.acknowledge_notification(ack("ack-expert", offered)).await.unwrap_err().code(), Code::NotFound);
}
