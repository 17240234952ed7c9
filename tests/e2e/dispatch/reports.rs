//! Worked sessions and reports (article 8; D1, D2, D16; ARCHITECTURE.md "Fees") over gRPC: the
//! expert (or staff on their behalf) records the sessions and submits the report; the
//! dispatching bureau accepts it, which writes exactly one RecordSessions to finance's outbox
//! with the full snapshot; a correction and a void write the next revisions; retries write
//! nothing more.

use chrono::TimeZone;
use prost::Message;
use supervision_proto::{
    common::{BureauCode, Date, FundSource, HalfDay, TimeOfDay},
    dispatch::{
        AcceptReportRequest, AssignmentStatus, CorrectReportRequest, GetAssignmentRequest, GetReportRequest,
        ListReportsRequest, RecordWorkedSessionsRequest, Report, ReportContent, ReportStatus, ReturnReportRequest,
        SubmitReportRequest, VoidReportRequest, WorkedSession,
    },
    finance::{FeeLineKind, ListFeeLinesRequest, RecordSessionsRequest, finance_service_client::FinanceServiceClient},
};
use testkit::{Backend, Bureau, Role, on_both_backends, spawn_dispatch_calling_finance, spawn_finance_with_registry};
use tonic::Code;

use crate::{
    draws::user,
    responses::{Drawn, accept, clock_at, drawn, drawn_on, expert, outbox},
    tasks::reason,
};

on_both_backends!(
    an_accepted_report_writes_one_revision_to_finance,
    corrections_and_voids_write_the_next_revisions,
    who_may_record_and_what_is_refused,
    the_relay_delivers_the_revision_to_finance,
    a_returned_report_is_resubmitted_and_reports_are_listed,
);

const RECORD_SESSIONS: &str = "/supervision.finance.v1.FinanceService/RecordSessions";

fn worked(hours: i32, minutes: i32, half_day: HalfDay, length: i32) -> WorkedSession {
    WorkedSession {
        task_session_id: String::new(),
        date: Some(Date { year: 2026, month: 6, day: 8 }),
        half_day: half_day as i32,
        start_time: Some(TimeOfDay { hours, minutes }),
        minutes: length,
        note: String::new(),
    }
}

fn content() -> ReportContent {
    ReportContent { findings: "考核按规程进行，未发现违规。".into(), ..Default::default() }
}

/// Both primaries accepted; the session of 2026-06-08 is over (dispatch's clock at 16:00 that day).
async fn staffed(backend: Backend) -> Drawn {
    staff(drawn(backend).await).await
}

async fn staff(d: Drawn) -> Drawn {
    for (i, a) in d.primaries.iter().enumerate() {
        expert(&d.dispatch, &a.expert_id).respond_to_assignment(accept(&format!("acc-{i}"), &a.id)).await.unwrap();
    }
    clock_at(&d.dispatch, (2026, 6, 8, 8, 0));
    d
}

/// The first primary records 09:00-12:00 and submits its report.
async fn submitted(d: &Drawn) -> Report {
    let a = &d.primaries[0];
    let mut client = expert(&d.dispatch, &a.expert_id);
    let sessions = RecordWorkedSessionsRequest {
        request_id: "ws-1".into(),
        assignment_id: a.id.clone(),
        sessions: vec![worked(9, 0, HalfDay::Am, 180)],
        on_behalf: None,
    };
    let recorded = client.record_worked_sessions(sessions).await.unwrap().into_inner().assignment.unwrap();
    assert_eq!(recorded.worked_sessions.len(), 1);
    assert!(!recorded.worked_sessions[0].task_session_id.is_empty(), "matched to the task's session");
    let submit = SubmitReportRequest {
        request_id: "rep-1".into(),
        assignment_id: a.id.clone(),
        content: Some(content()),
        on_behalf: None,
    };
    let report = client.submit_report(submit).await.unwrap().into_inner().report.unwrap();
    assert_eq!(report.status, ReportStatus::Submitted as i32);
    assert_eq!(report.revision, 0);
    report
}

async fn revisions(d: &Drawn) -> Vec<(String, String, RecordSessionsRequest)> {
    outbox(&d.dispatch, RECORD_SESSIONS)
        .await
        .into_iter()
        .map(|(destination, key, payload)| {
            (destination, key, RecordSessionsRequest::decode(payload.as_slice()).unwrap())
        })
        .collect()
}

async fn an_accepted_report_writes_one_revision_to_finance(backend: Backend) {
    let d = staffed(backend).await;
    let report = submitted(&d).await;
    assert!(revisions(&d).await.is_empty(), "nothing goes to finance before acceptance");
    let mut operator = user(&d.dispatch, "operator-a");
    let request =
        AcceptReportRequest { request_id: "acc-rep".into(), report_id: report.id.clone(), note: "好".into() };
    let accepted = operator.accept_report(request.clone()).await.unwrap().into_inner().report.unwrap();
    assert_eq!(accepted.status, ReportStatus::Accepted as i32);
    assert_eq!(accepted.revision, 1);
    assert_eq!(accepted.accepted_by.as_ref().unwrap().subject, "operator-a");
    // A retry answers the same and writes nothing more.
    assert_eq!(operator.accept_report(request).await.unwrap().into_inner().report.unwrap(), accepted);

    let rows = revisions(&d).await;
    assert_eq!(rows.len(), 1, "exactly one RecordSessions");
    let (destination, key, sent) = &rows[0];
    let a = &d.primaries[0];
    assert_eq!((destination.as_str(), key.as_str()), ("finance", format!("{}:1", a.id).as_str()));
    assert_eq!(sent.request_id, *key);
    assert_eq!((sent.assignment_id.as_str(), sent.revision), (a.id.as_str(), 1));
    assert_eq!(sent.task_id, d.task_id);
    assert!(!sent.task_number.is_empty());
    assert_eq!(sent.expert_id, a.expert_id);
    assert_eq!(sent.paying_bureau, BureauCode::Pengjiang as i32, "the dispatching bureau pays");
    assert_eq!(sent.fund_source, FundSource::CityCountyEmployment as i32);
    assert!(!sent.voided && sent.void_reason.is_empty());
    assert!(sent.event_time.is_some());
    assert_eq!(sent.sessions.len(), 1);
    let s = &sent.sessions[0];
    assert_eq!(s.date, Some(Date { year: 2026, month: 6, day: 8 }));
    assert_eq!(s.half_day, HalfDay::Am as i32);
    assert_eq!(s.start_time, Some(TimeOfDay { hours: 9, minutes: 0 }));
    assert_eq!(s.minutes, 180);
    assert!(!s.task_session_id.is_empty());

    let after = operator.get_assignment(GetAssignmentRequest { id: a.id.clone() }).await.unwrap().into_inner();
    let after = after.assignment.unwrap();
    assert_eq!(after.status, AssignmentStatus::Completed as i32);
    assert_eq!((after.fee_revision, after.report_id.as_str()), (1, report.id.as_str()));
    // The expert reads their report.
    let read = expert(&d.dispatch, &a.expert_id).get_report(GetReportRequest { id: report.id.clone() }).await.unwrap();
    assert_eq!(read.into_inner().report.unwrap(), accepted);
}

async fn corrections_and_voids_write_the_next_revisions(backend: Backend) {
    let d = staffed(backend).await;
    let report = submitted(&d).await;
    let mut operator = user(&d.dispatch, "operator-a");
    operator
        .accept_report(AcceptReportRequest {
            request_id: "acc".into(),
            report_id: report.id.clone(),
            note: String::new(),
        })
        .await
        .unwrap();
    let correct = CorrectReportRequest {
        request_id: "cor-1".into(),
        report_id: report.id.clone(),
        content: None,
        sessions: vec![worked(9, 30, HalfDay::Am, 150)],
        update_mask: Some(prost_types::FieldMask { paths: vec!["sessions".into()] }),
        reason: "签到表显示 9:30 开始".into(),
    };
    let corrected = operator.correct_report(correct.clone()).await.unwrap().into_inner().report.unwrap();
    assert_eq!((corrected.status, corrected.revision), (ReportStatus::Accepted as i32, 2));
    assert_eq!(corrected.corrections.len(), 1);
    assert_eq!(corrected.sessions[0].minutes, 150);
    assert_eq!(operator.correct_report(correct).await.unwrap().into_inner().report.unwrap(), corrected, "a retry");

    let void = VoidReportRequest {
        request_id: "void-1".into(),
        report_id: report.id.clone(),
        reason: "重复委派".into(),
        incident_id: String::new(),
    };
    let voided = operator.void_report(void).await.unwrap().into_inner().report.unwrap();
    assert_eq!((voided.status, voided.revision), (ReportStatus::Voided as i32, 3));

    let rows = revisions(&d).await;
    let a = &d.primaries[0];
    let keys: Vec<&str> = rows.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys, [format!("{}:1", a.id), format!("{}:2", a.id), format!("{}:3", a.id)]);
    let second = &rows[1].2;
    assert_eq!((second.revision, second.sessions.len()), (2, 1));
    assert_eq!(second.sessions[0].start_time, Some(TimeOfDay { hours: 9, minutes: 30 }));
    assert_eq!(second.sessions[0].minutes, 150);
    assert!(!second.voided);
    let third = &rows[2].2;
    assert!(third.voided);
    assert_eq!((third.revision, third.void_reason.as_str()), (3, "重复委派"));
    // A voided report is not corrected.
    let again = CorrectReportRequest {
        request_id: "cor-2".into(),
        report_id: report.id.clone(),
        content: Some(content()),
        sessions: vec![],
        update_mask: Some(prost_types::FieldMask { paths: vec!["content".into()] }),
        reason: "再改".into(),
    };
    let err = operator.correct_report(again).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "REPORT_NOT_IN_STATE"));
}

async fn who_may_record_and_what_is_refused(backend: Backend) {
    let d = staffed(backend).await;
    let a = &d.primaries[1];
    let mut operator = user(&d.dispatch, "operator-a");
    // Staff enter from a sign-in sheet only with on_behalf.
    let mut sheet = RecordWorkedSessionsRequest {
        request_id: "ws-staff".into(),
        assignment_id: a.id.clone(),
        sessions: vec![worked(8, 30, HalfDay::Am, 200)],
        on_behalf: None,
    };
    let err = operator.record_worked_sessions(sheet.clone()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::InvalidArgument, "ON_BEHALF_REQUIRED"));
    // The report needs sessions first.
    let submit = SubmitReportRequest {
        request_id: "rep-early".into(),
        assignment_id: a.id.clone(),
        content: Some(content()),
        on_behalf: None,
    };
    let err = expert(&d.dispatch, &a.expert_id).submit_report(submit).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "NO_WORKED_SESSIONS"));
    // A half-day that disagrees with the start time, and a session the task does not have.
    let mut client = expert(&d.dispatch, &a.expert_id);
    let mut bad = sheet.clone();
    bad.on_behalf = None;
    bad.sessions = vec![worked(14, 0, HalfDay::Am, 120)];
    assert_eq!(client.record_worked_sessions(bad.clone()).await.unwrap_err().code(), Code::InvalidArgument);
    bad.sessions = vec![worked(14, 0, HalfDay::Pm, 120)];
    assert_eq!(client.record_worked_sessions(bad).await.unwrap_err().code(), Code::InvalidArgument);
    // Another expert cannot record for this assignment.
    let other = &d.primaries[0];
    let mut theirs = sheet.clone();
    theirs.request_id = "ws-other".into();
    let err = expert(&d.dispatch, &other.expert_id).record_worked_sessions(theirs).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // With on_behalf it is recorded, and staff submit on the expert's behalf too.
    let received = prost_types::Timestamp {
        seconds: chrono::Utc.with_ymd_and_hms(2026, 6, 8, 5, 0, 0).unwrap().timestamp(),
        nanos: 0,
    };
    let on_behalf = supervision_proto::common::OnBehalf {
        channel: supervision_proto::common::EntryChannel::InPerson as i32,
        received_time: Some(received),
        note: "签到表".into(),
    };
    sheet.on_behalf = Some(on_behalf.clone());
    operator.record_worked_sessions(sheet).await.unwrap();
    let submit = SubmitReportRequest {
        request_id: "rep-staff".into(),
        assignment_id: a.id.clone(),
        content: Some(content()),
        on_behalf: Some(on_behalf),
    };
    let report = operator.submit_report(submit).await.unwrap().into_inner().report.unwrap();
    assert!(report.on_behalf.is_some());
    assert_eq!(report.submitted_by.unwrap().subject, "operator-a");
    // An expert does not accept reports.
    let accept = AcceptReportRequest { request_id: "acc-x".into(), report_id: report.id.clone(), note: String::new() };
    let err = expert(&d.dispatch, &a.expert_id).accept_report(accept).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

/// Dispatch's relay delivers the accepted report's revision to a running finance, which writes
/// the fee line of the session worked.
async fn the_relay_delivers_the_revision_to_finance(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let dispatch = spawn_dispatch_calling_finance(
        backend,
        &format!("http://{}", registry.addr),
        &format!("http://{}", finance.addr),
    )
    .await;
    let d = staff(drawn_on(registry, dispatch).await).await;
    let report = submitted(&d).await;
    let accept = AcceptReportRequest { request_id: "acc".into(), report_id: report.id.clone(), note: String::new() };
    user(&d.dispatch, "operator-a").accept_report(accept).await.unwrap();

    let a = &d.primaries[0];
    let mut reader = FinanceServiceClient::new(finance.as_role(Role::Finance, Some(Bureau::Pengjiang)));
    let mut lines = Vec::new();
    for _ in 0..100 {
        let request = ListFeeLinesRequest { assignment_id: a.id.clone(), ..Default::default() };
        lines = reader.list_fee_lines(request).await.unwrap().into_inner().lines;
        if !lines.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(lines.len(), 1, "one line for the one session worked");
    let line = &lines[0];
    assert_eq!((line.revision, line.kind), (1, FeeLineKind::Charge as i32));
    assert_eq!((line.task_id.as_str(), line.expert_id.as_str()), (d.task_id.as_str(), a.expert_id.as_str()));
    assert_eq!(line.paying_bureau, BureauCode::Pengjiang as i32);
    assert_eq!(line.work_date, Some(Date { year: 2026, month: 6, day: 8 }));
    assert_eq!((line.half_day, line.minutes), (HalfDay::Am as i32, 180));
    assert!(line.amount.as_ref().is_some_and(|m| m.fen > 0), "{line:?}");
}

async fn a_returned_report_is_resubmitted_and_reports_are_listed(backend: Backend) {
    let d = staffed(backend).await;
    let report = submitted(&d).await;
    let mut operator = user(&d.dispatch, "operator-a");
    let back = ReturnReportRequest {
        request_id: "ret-1".into(),
        report_id: report.id.clone(),
        reason: "请补充违规事项的证据".into(),
    };
    let blank = ReturnReportRequest { reason: " ".into(), request_id: "ret-0".into(), ..back.clone() };
    assert_eq!(operator.return_report(blank).await.unwrap_err().code(), Code::InvalidArgument);
    let a = &d.primaries[0];
    let err = expert(&d.dispatch, &a.expert_id).return_report(back.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "the expert does not review");
    let returned = operator.return_report(back.clone()).await.unwrap().into_inner().report.unwrap();
    assert_eq!(
        (returned.status, returned.return_reason.as_str()),
        (ReportStatus::Returned as i32, "请补充违规事项的证据")
    );
    assert_eq!(operator.return_report(back).await.unwrap().into_inner().report.unwrap(), returned, "a retry");
    assert!(revisions(&d).await.is_empty(), "a return sends nothing to finance");
    // Not accepted while returned; the expert resubmits, then it is accepted.
    let accept_it =
        AcceptReportRequest { request_id: "acc-r".into(), report_id: report.id.clone(), note: String::new() };
    let err = operator.accept_report(accept_it.clone()).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "REPORT_NOT_IN_STATE"));
    let resubmit = SubmitReportRequest {
        request_id: "rep-2".into(),
        assignment_id: a.id.clone(),
        content: Some(content()),
        on_behalf: None,
    };
    let again = expert(&d.dispatch, &a.expert_id).submit_report(resubmit).await.unwrap().into_inner().report.unwrap();
    assert_eq!(again.status, ReportStatus::Submitted as i32);
    operator.accept_report(accept_it).await.unwrap();

    // Listed for the bureau and for the expert's own; another county and another expert see none.
    let all = operator.list_reports(ListReportsRequest { task_id: d.task_id.clone(), ..Default::default() }).await;
    let all = all.unwrap().into_inner().reports;
    assert_eq!(all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [report.id.as_str()]);
    assert_eq!(all[0].status, ReportStatus::Accepted as i32);
    let returned_only = ListReportsRequest { status: ReportStatus::Returned as i32, ..Default::default() };
    assert!(operator.list_reports(returned_only).await.unwrap().into_inner().reports.is_empty());
    let own = expert(&d.dispatch, &a.expert_id).list_reports(ListReportsRequest::default()).await.unwrap();
    assert_eq!(own.into_inner().reports.len(), 1);
    let other = expert(&d.dispatch, &d.primaries[1].expert_id).list_reports(ListReportsRequest::default()).await;
    assert!(other.unwrap().into_inner().reports.is_empty());
    let mut xinhui = supervision_proto::dispatch::dispatch_service_client::DispatchServiceClient::new(
        d.dispatch.as_role(Role::CountyOperator, Some(Bureau::Xinhui)),
    );
    assert!(xinhui.list_reports(ListReportsRequest::default()).await.unwrap().into_inner().reports.is_empty());
    let bad = ListReportsRequest { task_id: "nope".into(), ..Default::default() };
    assert_eq!(operator.list_reports(bad).await.unwrap_err().code(), Code::InvalidArgument);
}
