//! D5's yearly acceptance classifications: dispatch counts each ended year's assignments per
//! expert (acceptances, non-acceptances, neutral outcomes), delivers each classification to the
//! registry through the outbox keyed `<expert>:<year>:<revision>`, sends a correction with the
//! next revision when a recount differs, and lists what it delivered (ListYearlyAcceptances).

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use prost::Message;
use supervision_dispatch::{app::MIGRATIONS, registry::Registry, sweep, yearly};
use supervision_kit::{Db, SharedClock, clock::ManualClock};
use supervision_proto::{
    common::RelationType,
    dispatch::{
        AcknowledgeNotificationRequest, AssignmentStatus, Decline, DeclineReason, GetTaskRequest,
        ListNotificationsRequest, ListYearlyAcceptancesRequest, RecordNoShowRequest, Recuse,
        RespondToAssignmentRequest, dispatch_service_client::DispatchServiceClient,
        respond_to_assignment_request::Answer,
    },
    registry::{RecordYearlyAcceptanceRequest, YearClassification},
};
use supervision_reference::ReferenceArgs;
use testkit::{Backend, Bureau, Role, RunningService, identity, on_both_backends};
use tonic::Code;

use crate::{
    draws::user,
    notifications::deliver,
    responses::{Drawn, accept, clock_at, drawn, expert, outbox, roster},
};

on_both_backends!(each_ended_year_is_classified_delivered_and_corrected);

async fn yearly_at(dispatch: &RunningService, at: chrono::DateTime<Utc>) -> Vec<yearly::YearlyAcceptance> {
    let db = Db::connect(dispatch.database_url(), &MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(at));
    let written = yearly::run_pass(&db, &clock).await.unwrap();
    db.close().await;
    written
}

async fn sweep_at(d: &Drawn, at: chrono::DateTime<Utc>) -> sweep::SweepReport {
    let db = Db::connect(d.dispatch.database_url(), &MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(at));
    let reference = ReferenceArgs::default().load().unwrap();
    let registry = Registry::new(Some(d._registry.channel.clone()), Some(identity::token(Role::Service, None)));
    let report = sweep::run_pass(&db, &clock, &reference, &registry).await.unwrap();
    db.close().await;
    report
}

fn answer(request_id: &str, assignment_id: &str, answer: Answer) -> RespondToAssignmentRequest {
    RespondToAssignmentRequest {
        request_id: request_id.into(),
        assignment_id: assignment_id.into(),
        answer: Some(answer),
        on_behalf: None,
    }
}

/// (classification, acceptances, non-acceptances, neutral, revision) of each expert.
fn summary(list: &[supervision_proto::registry::YearlyAcceptance], expert_id: &str) -> (i32, i32, i32, i32, i32) {
    let y = list.iter().find(|y| y.expert_id == expert_id).unwrap_or_else(|| panic!("{expert_id} in {list:#?}"));
    (y.classification, y.acceptances, y.non_acceptances, y.neutral_outcomes, y.revision)
}

async fn each_ended_year_is_classified_delivered_and_corrected(backend: Backend) {
    let d = drawn(backend).await;
    let (p0, p1, b0, b1) = (&d.primaries[0], &d.primaries[1], &d.backups[0], &d.backups[1]);
    // p0 accepts; p1 declines on time (b0 promoted); b0 recuses (b1 promoted); b1 reads the
    // notice and does not answer by the deadline.
    expert(&d.dispatch, &p0.expert_id).respond_to_assignment(accept("acc-0", &p0.id)).await.unwrap();
    let declined = Answer::Decline(Decline { reason: DeclineReason::WorkConflict as i32, detail: "出差".into() });
    expert(&d.dispatch, &p1.expert_id).respond_to_assignment(answer("dec-1", &p1.id, declined)).await.unwrap();
    let recused = Answer::Recuse(Recuse { relation: RelationType::CurrentEmployment as i32, detail: "兼职".into() });
    expert(&d.dispatch, &b0.expert_id).respond_to_assignment(answer("rec-0", &b0.id, recused)).await.unwrap();
    deliver(&d.dispatch).await;
    let mut b1_client = expert(&d.dispatch, &b1.expert_id);
    let notice = b1_client.list_notifications(ListNotificationsRequest::default()).await.unwrap().into_inner();
    let ack = AcknowledgeNotificationRequest {
        request_id: "ack-b1".into(),
        notification_id: notice.notifications[0].id.clone(),
    };
    b1_client.acknowledge_notification(ack).await.unwrap();
    let swept = sweep_at(&d, Utc.with_ymd_and_hms(2026, 6, 2, 9, 31, 0).unwrap()).await;
    assert_eq!(swept.no_response, vec![b1.id.clone()]);
    let waiting: Vec<String> = roster(&d.dispatch, &d.task_id)
        .await
        .into_iter()
        .filter(|a| a.status == AssignmentStatus::Notified as i32)
        .map(|a| a.expert_id)
        .collect();
    assert_eq!(waiting.len(), 1, "the promoted replacement is still waiting");

    // Not before the year has ended (Asia/Shanghai).
    assert!(yearly_at(&d.dispatch, Utc.with_ymd_and_hms(2026, 12, 31, 15, 59, 0).unwrap()).await.is_empty());
    let written = yearly_at(&d.dispatch, Utc.with_ymd_and_hms(2026, 12, 31, 16, 1, 0).unwrap()).await;
    assert_eq!(written.len(), 4, "{written:#?}");
    assert!(written.iter().all(|y| !waiting.contains(&y.expert_id)), "a waiting assignment is not counted yet");
    let mut city = DispatchServiceClient::new(d.dispatch.as_role(Role::CityAdmin, None));
    let listed = city
        .list_yearly_acceptances(ListYearlyAcceptancesRequest { year: 2026, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .acceptances;
    use YearClassification::{Accepting, Neutral, NonAccepting};
    assert_eq!(summary(&listed, &p0.expert_id), (Accepting as i32, 1, 0, 0, 1));
    assert_eq!(summary(&listed, &p1.expert_id), (NonAccepting as i32, 0, 1, 0, 1));
    assert_eq!(summary(&listed, &b0.expert_id), (Neutral as i32, 0, 0, 1, 1), "a recusal is neutral");
    assert_eq!(summary(&listed, &b1.expert_id), (NonAccepting as i32, 0, 1, 0, 1), "no answer, delivered");

    // Delivered to the registry through the outbox, one row per expert-year-revision.
    let rows = outbox(&d.dispatch, yearly::RECORD_YEARLY_ACCEPTANCE).await;
    assert_eq!(rows.len(), 4);
    for (destination, key, payload) in &rows {
        let request = RecordYearlyAcceptanceRequest::decode(payload.as_slice()).unwrap();
        assert_eq!(destination, "registry");
        assert_eq!(key, &format!("{}:2026:1", request.expert_id));
        assert_eq!(request.request_id, *key);
        let y = listed.iter().find(|y| y.expert_id == request.expert_id).unwrap();
        assert_eq!((request.classification, request.non_acceptances), (y.classification, y.non_acceptances));
    }
    // A recount that changes nothing writes nothing.
    assert!(yearly_at(&d.dispatch, Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap()).await.is_empty());

    // A no-show recorded later corrects p0's year: the next revision goes to the registry.
    clock_at(&d.dispatch, (2026, 6, 8, 1, 30));
    let mut operator = user(&d.dispatch, "operator-a");
    let task = operator.get_task(GetTaskRequest { id: d.task_id.clone() }).await.unwrap().into_inner().task.unwrap();
    let no_show = RecordNoShowRequest {
        request_id: "ns-1".into(),
        assignment_id: p0.id.clone(),
        session_id: task.sessions[0].id.clone(),
        note: "未到场".into(),
    };
    operator.record_no_show(no_show).await.unwrap();
    let corrected = yearly_at(&d.dispatch, Utc.with_ymd_and_hms(2027, 1, 3, 0, 0, 0).unwrap()).await;
    assert_eq!(corrected.len(), 1);
    assert_eq!((corrected[0].expert_id.as_str(), corrected[0].revision), (p0.expert_id.as_str(), 2));
    assert_eq!(corrected[0].classification, "NON_ACCEPTING");
    let keys: Vec<String> =
        outbox(&d.dispatch, yearly::RECORD_YEARLY_ACCEPTANCE).await.into_iter().map(|r| r.1).collect();
    assert!(keys.contains(&format!("{}:2026:2", p0.expert_id)), "{keys:?}");

    // An expert reads their own classifications only; county operators read none.
    let mut own = expert(&d.dispatch, &p1.expert_id);
    let mine = own.list_yearly_acceptances(ListYearlyAcceptancesRequest::default()).await.unwrap().into_inner();
    assert_eq!(mine.acceptances.len(), 1);
    assert_eq!(mine.acceptances[0].expert_id, p1.expert_id);
    let theirs = ListYearlyAcceptancesRequest { expert_id: p0.expert_id.clone(), ..Default::default() };
    assert_eq!(own.list_yearly_acceptances(theirs).await.unwrap_err().code(), Code::PermissionDenied);
    let mut county = DispatchServiceClient::new(d.dispatch.as_role(Role::CountyOperator, Some(Bureau::Pengjiang)));
    let err = county.list_yearly_acceptances(ListYearlyAcceptancesRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // Paging by year then expert.
    let first = city
        .list_yearly_acceptances(ListYearlyAcceptancesRequest {
            page: Some(supervision_proto::common::PageRequest { page_size: 3, page_token: String::new() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.acceptances.len(), 3);
    let rest = city
        .list_yearly_acceptances(ListYearlyAcceptancesRequest {
            page: Some(supervision_proto::common::PageRequest { page_size: 3, page_token: first.next_page_token }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.acceptances.len(), 1);
    assert!(rest.next_page_token.is_empty());
}
