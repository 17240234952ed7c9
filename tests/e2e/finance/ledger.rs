//! The fee ledger by month, bureau and fund (article 10), and the export records it leaves.

use sha2::{Digest, Sha256};
use supervision_proto::{
    common::{BureauCode, FileFormat, FundSource, YearMonth},
    finance::{ExportKind, ExportLedgerRequest, ListExportsRequest, finance_service_client::FinanceServiceClient},
};
use testkit::{AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, spawn_finance};
use tonic::Code;

on_both_backends!(
    an_empty_month_gives_a_ledger_with_only_the_total,
    fee_lines_add_up_by_month_bureau_and_fund_within_the_callers_bureau,
    a_retried_export_is_one_record_and_the_same_file,
    a_bureau_sees_only_its_own_ledger,
);

fn client(service: &RunningService, role: Role, bureau: Option<Bureau>) -> FinanceServiceClient<AuthedChannel> {
    FinanceServiceClient::new(service.as_role(role, bureau))
}

fn ledger(request_id: &str, bureau: BureauCode, format: FileFormat) -> ExportLedgerRequest {
    ExportLedgerRequest {
        request_id: request_id.into(),
        paying_bureau: bureau as i32,
        fund_source: 0,
        from_month: Some(YearMonth { year: 2026, month: 4 }),
        to_month: Some(YearMonth { year: 2026, month: 6 }),
        format: format as i32,
    }
}

/// Writes fee lines straight into finance's table, as the fee engine (issue 8) will.
async fn insert_lines(service: &RunningService, lines: &[(&str, &str, &str, i64, i64)]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(service.database_url()).await.unwrap();
    for (i, (date, bureau, fund, hours, fen)) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO fee_lines (id, assignment_id, revision, task_id, task_number, expert_id, paying_bureau, \
             fund_source, work_date, half_day, start_time, minutes, class_hours, billable_class_hours, rate_fen, basis, \
             rounding, amount_fen, kind, reverses_line_id, reversal_cause, zero_reason, zero_detail, edition_number, \
             batch_id, created_at) VALUES ($1, 'asg_x', 1, 'tsk_x', 'T-1', 'exp_x', $2, $3, $4, 'AM', '09:00', 180, \
             $5, $5, 10000, 'PRE_TAX', 'FLOOR', $6, 'CHARGE', '', '', '', '', 1, '', '2026-06-30T00:00:00.000000Z')",
        )
        .bind(format!("fee_{i:032x}"))
        .bind(*bureau)
        .bind(*fund)
        .bind(*date)
        .bind(*hours)
        .bind(*fen)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;
}

fn csv(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(str::to_owned).collect()
}

async fn an_empty_month_gives_a_ledger_with_only_the_total(backend: Backend) {
    let service = spawn_finance(backend).await;
    let mut finance = client(&service, Role::Finance, Some(Bureau::Heshan));
    let answer =
        finance.export_ledger(ledger("e-1", BureauCode::Heshan, FileFormat::CsvUtf8)).await.unwrap().into_inner();
    let file = answer.file.unwrap();
    assert_eq!(
        csv(&file.content),
        ["月份,付款单位代码,付款单位,资金来源,费用行数,计费学时,金额(元)", "合计,,,,0,0,0.00"]
    );
    assert_eq!(file.sha256, hex(&file.content));
    let record = answer.export.unwrap();
    assert_eq!((record.row_count, record.total.unwrap().fen), (0, 0));
    assert!(record.file_name.contains("440784"));
    service.stop().await;
}

async fn fee_lines_add_up_by_month_bureau_and_fund_within_the_callers_bureau(backend: Backend) {
    let service = spawn_finance(backend).await;
    let (city_fund, provincial) = ("FUND_SOURCE_CITY_COUNTY_EMPLOYMENT", "FUND_SOURCE_PROVINCIAL_SKILL_TRAINING");
    insert_lines(
        &service,
        &[
            ("2026-04-03", "440784", city_fund, 4, 40_000),
            ("2026-04-20", "440784", city_fund, 3, 30_000),
            ("2026-04-20", "440784", provincial, 4, 40_000),
            ("2026-05-02", "440784", city_fund, -3, -30_000),
            ("2026-05-02", "440705", city_fund, 4, 40_000),
            ("2026-07-01", "440784", city_fund, 4, 40_000),
        ],
    )
    .await;
    let mut finance = client(&service, Role::Finance, Some(Bureau::Heshan));
    let answer =
        finance.export_ledger(ledger("e-2", BureauCode::Heshan, FileFormat::CsvGb18030)).await.unwrap().into_inner();
    let file = answer.file.unwrap();
    let (text, _, bad) = encoding_rs::GB18030.decode(&file.content);
    assert!(!bad);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(
        rows[1..],
        [
            "2026-04,440784,鹤山市,市县两级就业创业专项资金,2,7,700.00",
            "2026-04,440784,鹤山市,省级促进就业创业发展专项资金（职业技能提升培训）,1,4,400.00",
            "2026-05,440784,鹤山市,市县两级就业创业专项资金,1,-3,-300.00",
            "合计,,,,4,8,800.00",
        ]
    );
    assert_eq!(answer.export.unwrap().total.unwrap().fen, 80_000, "July and Xinhui's line are outside");
    service.stop().await;
}

async fn a_retried_export_is_one_record_and_the_same_file(backend: Backend) {
    let service = spawn_finance(backend).await;
    let mut finance = client(&service, Role::FinanceLead, Some(Bureau::City));
    let first = finance
        .export_ledger(ledger("same", BureauCode::JiangmenCity, FileFormat::CsvUtf8))
        .await
        .unwrap()
        .into_inner();
    let again = finance
        .export_ledger(ledger("same", BureauCode::JiangmenCity, FileFormat::CsvUtf8))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let listed = finance.list_exports(ListExportsRequest::default()).await.unwrap().into_inner().exports;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].kind, ExportKind::Ledger as i32);
    assert_eq!(listed[0].sha256, first.file.unwrap().sha256);
    service.stop().await;
}

async fn a_bureau_sees_only_its_own_ledger(backend: Backend) {
    let service = spawn_finance(backend).await;
    let mut heshan = client(&service, Role::Finance, Some(Bureau::Heshan));
    let err = heshan.export_ledger(ledger("x", BureauCode::Enping, FileFormat::CsvUtf8)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut default_request = ledger("y", BureauCode::Unspecified, FileFormat::CsvUtf8);
    default_request.fund_source = FundSource::CityCountyEmployment as i32;
    let own = heshan.export_ledger(default_request).await.unwrap().into_inner().export.unwrap();
    assert_eq!(own.paying_bureau, BureauCode::Heshan as i32, "a FINANCE user's ledger is their bureau's");

    let mut enping = client(&service, Role::Finance, Some(Bureau::Enping));
    assert!(enping.list_exports(ListExportsRequest::default()).await.unwrap().into_inner().exports.is_empty());
    let mut auditor = client(&service, Role::Auditor, None);
    assert_eq!(auditor.list_exports(ListExportsRequest::default()).await.unwrap().into_inner().exports.len(), 1);
    let err = client(&service, Role::CountyOperator, Some(Bureau::Heshan))
        .list_exports(ListExportsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    service.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
