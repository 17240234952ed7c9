//! A year the calendar lacks fails naming the year; after the operator adds its file to the data
//! directory and the service restarts, it works. Likewise a successor policy edition.

use supervision_proto::{
    calendar::{
        GetDeclineDeadlineRequest, GetPolicyEditionRequest, IsWorkingDayRequest,
        calendar_service_client::CalendarServiceClient, get_policy_edition_request::Selector,
    },
    common::Date,
};
use supervision_reference::ReferenceArgs;
use testkit::{Backend, Role, TestDb, spawn_registry_with};
use tonic::Code;
use tonic_types::StatusExt;

const YEAR_2027: &str = r#"
year = 2027

[[notice]]
title = "国务院办公厅关于2027年部分节假日安排的通知（测试用）"
url = "https://www.gov.cn/zhengce/zhengceku/test-fixture.htm"

[[holiday]]
name = "元旦"
from = 2027-01-01
to = 2027-01-03

[[holiday]]
name = "春节"
from = 2027-02-06
to = 2027-02-13
make_up_working_days = [2027-02-14, 2027-02-20]
"#;

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

/// Edition 1 with a successor's dates and a new rate, as an operator would write it.
fn edition_2() -> String {
    let mut text = include_str!("../../../crates/policy/editions/edition-1.toml").to_owned();
    for (from, to) in [
        ("number = 1", "number = 2"),
        ("effective_from = 2022-02-15", "effective_from = 2027-02-15"),
        ("effective_to = 2027-02-14", "effective_to = 2032-02-14"),
        ("rate_per_class_hour_fen = 10000", "rate_per_class_hour_fen = 12000"),
    ] {
        assert!(text.contains(from), "edition-1.toml no longer contains {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_year_and_a_successor_edition_take_effect_after_a_restart() {
    let calendar_dir = tempfile::tempdir().unwrap();
    let policy_dir = tempfile::tempdir().unwrap();
    let reference = ReferenceArgs {
        calendar_data_dir: Some(calendar_dir.path().to_owned()),
        policy_data_dir: Some(policy_dir.path().to_owned()),
    };
    let registry = spawn_registry_with(TestDb::new(Backend::Sqlite).await, "127.0.0.1:0", reference.clone()).await;
    let mut calendar = CalendarServiceClient::new(registry.as_role(Role::CityOperator, None));
    let err = calendar.is_working_day(IsWorkingDayRequest { date: date(2027, 2, 14) }).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("2027"), "{}", err.message());
    let err = calendar
        .get_policy_edition(GetPolicyEditionRequest {
            selector: Some(Selector::Date(Date { year: 2027, month: 3, day: 1 })),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let info = err.get_error_details().error_info().cloned().expect("error info");
    assert_eq!(info.metadata["last_effective_to"], "2027-02-14");

    // The operator drops the files into the data directories (a ConfigMap) and restarts.
    std::fs::write(calendar_dir.path().join("2027.toml"), YEAR_2027).unwrap();
    std::fs::write(policy_dir.path().join("edition-2.toml"), edition_2()).unwrap();
    let db = registry.stop_keeping_database().await;
    let registry = spawn_registry_with(db, "127.0.0.1:0", reference).await;
    let mut calendar = CalendarServiceClient::new(registry.as_role(Role::CityOperator, None));

    let answer = calendar.is_working_day(IsWorkingDayRequest { date: date(2027, 2, 14) }).await.unwrap().into_inner();
    assert!(answer.working_day, "the Sunday 2027-02-14 is a make-up working day");
    let edition = calendar
        .get_policy_edition(GetPolicyEditionRequest {
            selector: Some(Selector::Date(Date { year: 2027, month: 3, day: 1 })),
        })
        .await
        .unwrap()
        .into_inner()
        .edition
        .unwrap();
    assert_eq!(edition.number, 2);
    assert_eq!(edition.fees.unwrap().rate_per_class_hour.unwrap().fen, 12_000);
    let deadline = calendar
        .get_decline_deadline(GetDeclineDeadlineRequest { first_session_date: date(2027, 2, 17) })
        .await
        .unwrap()
        .into_inner();
    // Wed 2027-02-17: back over Tue 16 (1), Mon 15 (2), the make-up Sunday 14 (3).
    assert_eq!(deadline.deadline_date, date(2027, 2, 14));
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_port_warns_before_the_calendar_and_the_edition_run_out() {
    let db = TestDb::new(Backend::Sqlite).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    // 2026-12-05 (Shanghai): the 2027 notice is not loaded, edition 1 ends on 2027-02-14.
    let target = chrono::DateTime::parse_from_rfc3339("2026-12-05T10:00:00+08:00").unwrap();
    std::fs::write(&clock_file, (target.timestamp() - chrono::Utc::now().timestamp()).to_string()).unwrap();
    let config = supervision_registry::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(testkit::personal_data_key_file(&db)),
        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
        common: supervision_kit::app::CommonArgs {
            metrics_listen: Some("127.0.0.1:0".into()),
            ..testkit::common_args(Some(clock_file))
        },
        reference: ReferenceArgs::default(),
    };
    let app = supervision_registry::App::build(&config).await.unwrap();
    let metrics_addr = app.metrics_addr().expect("a metrics port");
    let shutdown = supervision_kit::Shutdown::new();
    let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let body = scrape(metrics_addr).await;
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from\n{body}"))
            .parse()
            .unwrap()
    };
    assert_eq!(value("supervision_calendar_next_year_missing"), 1.0);
    assert_eq!(value("supervision_calendar_days_until_uncovered"), 27.0, "2026-12-05 to 2027-01-01");
    assert_eq!(value("supervision_policy_edition_days_left"), 71.0, "2026-12-05 to 2027-02-14");
    assert_eq!(value("supervision_outbox_backlog"), 0.0);
    assert_eq!(value("supervision_storage_up"), 1.0);
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}
