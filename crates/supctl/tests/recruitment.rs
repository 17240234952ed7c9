//! `supctl call|application|appoint|objection ... --output json` against a running recruitment.

use std::process::Command;

use supervision_proto::recruitment::{
    CreateCallRequest, PublicationChannel, RecordCallPublicationRequest,
    recruitment_service_client::RecruitmentServiceClient,
};
use testkit::{Backend, Role, RunningService, on_both_backends, spawn_recruitment, token};

on_both_backends!(recruitment_commands_answer_in_json);

/// Runs supctl against `service` as CITY_ADMIN; returns (success, stdout, stderr).
fn supctl(service: &RunningService, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--output", "json", "--recruitment", &format!("http://{}", service.addr)])
        .args(["--token", &token(Role::CityAdmin, None)])
        .args(["--config", "/dev/null"])
        .args(args)
        .output()
        .expect("supctl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn recruitment_commands_answer_in_json(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut client = RecruitmentServiceClient::new(service.as_role(Role::CityAdmin, None));
    let now = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    let call = client
        .create_call(CreateCallRequest {
            request_id: "supctl-call-1".into(),
            year: 2026,
            title: "2026 年第二批社会监督专家征集通知".into(),
            body: "详见附件。".into(),
            application_start_time: Some(ts(now)),
            application_end_time: Some(ts(now + chrono::Duration::days(14))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .call
        .unwrap();
    let today = (now + chrono::Duration::hours(8)).date_naive();
    use chrono::Datelike;
    client
        .record_call_publication(RecordCallPublicationRequest {
            request_id: "supctl-pub-1".into(),
            call_id: call.id.clone(),
            channel: PublicationChannel::OfficialWebsite as i32,
            publish_date: Some(supervision_proto::common::Date {
                year: today.year(),
                month: today.month() as i32,
                day: today.day() as i32,
            }),
            address: "https://hrss.jiangmen.gov.cn/zj/2026-2".into(),
        })
        .await
        .unwrap();

    let (ok, stdout, stderr) = supctl(&service, &["call", "list"]);
    assert!(ok, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rows[0]["id"], call.id.as_str());
    assert_eq!(rows[0]["status"], "PUBLISHED");

    let (ok, stdout, stderr) = supctl(&service, &["call", "get", &call.id]);
    assert!(ok, "{stderr}");
    let one: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(one["publications"][0]["address"], "https://hrss.jiangmen.gov.cn/zj/2026-2");

    let (ok, stdout, stderr) = supctl(&service, &["appoint", "list", "--pending"]);
    assert!(ok, "{stderr}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout).unwrap(), serde_json::json!([]));

    let (ok, _, stderr) = supctl(&service, &["objection", "get", "not-an-id"]);
    assert!(!ok, "a bad id is refused");
    assert!(stderr.contains("InvalidArgument"), "{stderr}");
    service.stop().await;
}
