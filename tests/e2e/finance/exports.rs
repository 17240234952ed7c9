//! Exports and reconciliation (issue 8 items 4 and 5) over gRPC: completed assignments delivered
//! as dispatch's outbox delivers them -> fee lines -> a batch approved and paid -> the bank file
//! (CSV and XLSX), the withholding return and the yearly statement, which agree with each other,
//! with the batch and with Reconcile. Payee names, identity numbers and accounts come from the
//! registry's GetPayee, asked with finance's own token (`svc:finance`), and are never kept. Also:
//! two funds in one month, a late correction, and finance stopped while deliveries are pending.

use std::collections::BTreeMap;

use calamine::{Data, Reader, Xlsx};
use supervision_proto::{
    common::{
        self, BankAccount, BureauCode, CivilServantStatus, ContactDetails, Date, Evidence, ExpertCategory, ExpertKind,
        FileContent, FileFormat, FundSource, IdentityDocument, IdentityDocumentType, Locality, Specialty,
        SpecialtyCode, YearMonth, locality::Place,
    },
    finance::{
        ApprovePaymentBatchRequest, CreatePaymentBatchRequest, Export, ExportBankPaymentFileRequest, ExportKind,
        ExportWithholdingReturnRequest, ExportYearlyStatementRequest, FeeLine, FeeLineKind, FeeLineStatus,
        GetMonthlyStatementRequest, ListAuditEntriesRequest, ListExportsRequest, ListFeeLinesRequest,
        MarkPaymentBatchPaidRequest, PaymentBatch, PaymentBatchStatus, ReconcileRequest, ReconcileResponse,
        RecordSessionsRequest, SubmitPaymentBatchRequest, finance_service_client::FinanceServiceClient,
    },
    registry::{CategoryHolding, CreateExpertRequest, ExpertProfile, registry_service_client::RegistryServiceClient},
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, TestDb, identity::expert_token, on_both_backends,
    service_acting_for, spawn_finance_on, spawn_finance_with_registry, spawn_registry, with_token,
};
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::fees::Assignment;

on_both_backends!(
    completed_assignments_are_paid_and_the_files_reconcile,
    a_retry_returns_the_same_file_and_nothing_personal_is_kept,
    exports_are_refused_for_drafts_other_bureaus_bad_formats_and_an_untrusted_token,
    two_funds_in_one_month_are_one_income_on_the_withholding_return,
    a_late_correction_lands_in_the_next_batch_and_paid_lines_stay_as_paid,
    finance_stopped_while_deliveries_are_pending_loses_nothing_and_charges_nothing_twice,
    reconcile_names_a_stale_withholding_return,
    appendix_a7_and_a8_are_withheld_through_a_batch_and_the_return,
);

pub(crate) type Client = FinanceServiceClient<AuthedChannel>;

const XINHUI: i32 = BureauCode::Xinhui as i32;
pub(crate) const APRIL: YearMonth = YearMonth { year: 2026, month: 4 };
const MAY: YearMonth = YearMonth { year: 2026, month: 5 };

/// A payee as created in the registry.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) name: &'static str,
    pub(crate) identity: String,
    pub(crate) account: String,
}

/// A resident identity number of a woman born 1985-06-15 in Pengjiang with sequence `seq`, and
/// its GB 11643 check character.
fn identity_number(seq: u32) -> String {
    let body = format!("44070319850615{:03}", seq * 2);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.chars().zip(WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// Creates an expert with payee details in the registry (never a civil servant).
pub(crate) async fn person(registry: &RunningService, name: &'static str, seq: u32) -> Person {
    let identity = identity_number(seq);
    let account = format!("62220212345678{seq:05}");
    let mut admin = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let request = CreateExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        profile: Some(ExpertProfile {
            kind: ExpertKind::Individual as i32,
            name: name.into(),
            gender: common::Gender::Female as i32,
            birth_date: None,
            identity: Some(IdentityDocument {
                r#type: IdentityDocumentType::ResidentIdCard as i32,
                number: identity.clone(),
                issuing_country: String::new(),
                masked: false,
            }),
            other_identities: vec![],
            locality: Some(Locality { place: Some(Place::County(XINHUI)) }),
            contact: Some(ContactDetails {
                mobile: format!("138{seq:08}"),
                email: format!("expert{seq}@example.com"),
                address: "江门市新会区会城街道示例路 8 号".into(),
                masked: false,
            }),
            bank_account: Some(BankAccount {
                holder_name: name.into(),
                bank_name: "中国工商银行".into(),
                branch_name: "江门分行营业部".into(),
                account_number: account.clone(),
                masked: false,
            }),
            employer: None,
            represented_unit: None,
            categories: vec![CategoryHolding {
                category: ExpertCategory::Technician as i32,
                evidence: Some(Evidence { description: "证书复印件".into(), documents: vec![] }),
                ..Default::default()
            }],
            conditions: vec![],
            specialties: vec![Specialty {
                code: Some(SpecialtyCode { code: "4-07-05-01".into(), name: String::new() }),
                level: 0,
                note: String::new(),
            }],
            professional_title: "高级技师".into(),
        }),
        civil_servant_status: CivilServantStatus::None as i32,
        civil_servant_since: Some(Date { year: 2022, month: 3, day: 1 }),
        existing_appointment: None,
    };
    let id = admin.create_expert(request).await.unwrap().into_inner().expert.unwrap().id;
    Person { id, name, identity, account }
}

/// The registry and a finance that asks it with its own token, on fresh databases.
pub(crate) async fn services(backend: Backend) -> (RunningService, RunningService) {
    let registry = spawn_registry(backend).await;
    let finance = spawn_finance_on(TestDb::new(backend).await, &format!("http://{}", registry.addr)).await;
    (registry, finance)
}

/// Dispatch's outbox: a SERVICE token acting for the operator who accepted the report.
pub(crate) fn outbox(finance: &RunningService) -> Client {
    FinanceServiceClient::new(service_acting_for(
        &finance.channel,
        "dispatch",
        Role::CountyOperator,
        Some(Bureau::Xinhui),
    ))
}

pub(crate) fn user(finance: &RunningService, subject: &str, role: Role) -> Client {
    let bureau = matches!(role, Role::Finance | Role::FinanceLead).then_some(Bureau::Xinhui);
    FinanceServiceClient::new(finance.as_user(subject, role, bureau))
}

/// A revision with sessions `(date, hour, minute, minutes)`.
pub(crate) fn revision_on(a: &Assignment, revision: i32, sessions: &[(Date, i32, i32, i32)]) -> RecordSessionsRequest {
    let days: Vec<(i32, i32, i32, i32)> = sessions.iter().map(|&(d, h, m, w)| (d.day, h, m, w)).collect();
    let mut request = a.revision(revision, &days);
    for (s, (date, ..)) in request.sessions.iter_mut().zip(sessions) {
        s.date = Some(*date);
        s.task_session_id = format!("ses-{}-{}-{}", date.month, date.day, s.start_time.unwrap().hours);
    }
    request
}

pub(crate) fn day(month: i32, day: i32) -> Date {
    Date { year: 2026, month, day }
}

pub(crate) async fn deliver(finance: &RunningService, request: RecordSessionsRequest) -> Vec<FeeLine> {
    outbox(finance).record_sessions(request).await.unwrap().into_inner().lines
}

/// Drafts, submits, approves (another FINANCE user) and pays a batch of `month` and `fund`.
pub(crate) async fn pay_batch(finance: &RunningService, tag: &str, month: YearMonth, fund: FundSource) -> PaymentBatch {
    let mut preparer = user(finance, "fin-preparer", Role::Finance);
    let create = CreatePaymentBatchRequest {
        request_id: format!("create-{tag}"),
        paying_bureau: XINHUI,
        payment_month: Some(month),
        fund_source: fund as i32,
        work_dates: None,
    };
    let batch = preparer.create_payment_batch(create).await.unwrap().into_inner().batch.unwrap();
    let submit = SubmitPaymentBatchRequest { request_id: format!("submit-{tag}"), batch_id: batch.id.clone() };
    preparer.submit_payment_batch(submit).await.unwrap();
    let approve = ApprovePaymentBatchRequest {
        request_id: format!("approve-{tag}"),
        batch_id: batch.id.clone(),
        note: "核对无误".into(),
    };
    let approved =
        user(finance, "fin-approver", Role::Finance).approve_payment_batch(approve).await.unwrap().into_inner();
    assert_eq!(approved.batch.unwrap().status(), PaymentBatchStatus::Approved);
    let pay = MarkPaymentBatchPaidRequest {
        request_id: format!("pay-{tag}"),
        batch_id: batch.id.clone(),
        bank_reference: format!("ICBC-{tag}"),
        paid_date: Some(Date { year: month.year, month: month.month, day: 28 }),
    };
    preparer.mark_payment_batch_paid(pay).await.unwrap().into_inner().batch.unwrap()
}

fn fen(m: Option<common::Money>) -> i64 {
    m.unwrap().fen
}

pub(crate) async fn reconcile(finance: &RunningService, month: YearMonth) -> ReconcileResponse {
    let request = ReconcileRequest { paying_bureau: XINHUI, month: Some(month) };
    user(finance, "fin-preparer", Role::Finance).reconcile(request).await.unwrap().into_inner()
}

/// Asserts that every check holds, printing those that do not.
pub(crate) fn assert_balanced(r: &ReconcileResponse) {
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    assert!(r.balanced && failed.is_empty(), "discrepancies: {failed:#?}");
    assert!(!r.checks.is_empty());
}

/// The rows of a UTF-8 or GB18030 CSV, split on commas (the files here hold no quoted commas).
fn csv_rows(file: &FileContent) -> Vec<Vec<String>> {
    let text = if file.media_type.contains("gb18030") {
        let (text, _, bad) = encoding_rs::GB18030.decode(&file.content);
        assert!(!bad, "valid GB18030");
        text.into_owned()
    } else {
        String::from_utf8(file.content.clone()).expect("UTF-8")
    };
    assert!(!text.starts_with('\u{feff}'));
    text.lines().map(|l| l.split(',').map(str::to_owned).collect()).collect()
}

fn xlsx_rows(file: &FileContent) -> Vec<Vec<Data>> {
    let mut book: Xlsx<_> = Xlsx::new(std::io::Cursor::new(file.content.clone())).expect("an XLSX workbook");
    let sheet = book.sheet_names()[0].clone();
    book.worksheet_range(&sheet).unwrap().rows().map(<[Data]>::to_vec).collect()
}

/// Yuan text (`1234.56`) as fen.
fn yuan(text: &str) -> i64 {
    let (whole, cents) = text.split_once('.').expect("two decimals");
    let sign = if whole.starts_with('-') { -1 } else { 1 };
    sign * (whole.trim_start_matches('-').parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap())
}

fn xlsx_fen(cell: &Data) -> i64 {
    match cell {
        Data::Float(f) => (f * 100.0).round() as i64,
        Data::Int(i) => i * 100,
        other => panic!("not a number: {other:?}"),
    }
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn bank_file(
    client: &mut Client,
    request_id: &str,
    batch: &str,
    format: FileFormat,
) -> Result<(Export, FileContent), Status> {
    let request =
        ExportBankPaymentFileRequest { request_id: request_id.into(), batch_id: batch.into(), format: format as i32 };
    client.export_bank_payment_file(request).await.map(|r| {
        let r = r.into_inner();
        (r.export.unwrap(), r.file.unwrap())
    })
}

async fn withholding_return(
    client: &mut Client,
    request_id: &str,
    month: YearMonth,
    format: FileFormat,
) -> Result<(Export, FileContent), Status> {
    let request = ExportWithholdingReturnRequest {
        request_id: request_id.into(),
        paying_bureau: XINHUI,
        month: Some(month),
        format: format as i32,
    };
    client.export_withholding_return(request).await.map(|r| {
        let r = r.into_inner();
        (r.export.unwrap(), r.file.unwrap())
    })
}

async fn yearly(
    client: &mut Client,
    request_id: &str,
    expert: &str,
    format: FileFormat,
) -> Result<(Export, FileContent), Status> {
    let request = ExportYearlyStatementRequest {
        request_id: request_id.into(),
        expert_id: expert.into(),
        year: 2026,
        paying_bureau: 0,
        format: format as i32,
    };
    client.export_yearly_statement(request).await.map(|r| {
        let r = r.into_inner();
        (r.export.unwrap(), r.file.unwrap())
    })
}

fn reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

/// Full half-days of 180 minutes (4 class hours, 400 yuan) on April `days`, morning and afternoon.
fn full_days(days: &[i32]) -> Vec<(Date, i32, i32, i32)> {
    days.iter().flat_map(|&d| [(day(4, d), 8, 30, 180), (day(4, d), 14, 0, 180)]).collect()
}

async fn completed_assignments_are_paid_and_the_files_reconcile(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let li = person(&registry, "李明", 1).await;
    let wang = person(&registry, "王芳", 2).await;
    // 李明: two full days (1,600 yuan). 王芳: Appendix A4, 09:00-11:45 (165 minutes): FLOOR
    // gives 3 class hours, 300 yuan.
    let a = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let lines = deliver(&finance, revision_on(&a, 1, &full_days(&[6, 7]))).await;
    assert_eq!(lines.iter().map(|l| fen(l.amount)).sum::<i64>(), 160_000);
    let b = Assignment::new(&wang.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let lines = deliver(&finance, revision_on(&b, 1, &[(day(4, 6), 9, 0, 165)])).await;
    assert_eq!((lines[0].billable_class_hours, fen(lines[0].amount)), (3, 30_000));

    let batch = pay_batch(&finance, "april", APRIL, FundSource::CityCountyEmployment).await;
    assert_eq!(batch.status(), PaymentBatchStatus::Paid);
    // 李明: (1,600 - 800) x 20% = 160 withheld, 1,440 net; 王芳: 300, nothing withheld.
    let by_expert: BTreeMap<&str, (i64, i64, i64)> =
        batch.items.iter().map(|i| (i.expert_id.as_str(), (fen(i.gross), fen(i.tax), fen(i.net)))).collect();
    assert_eq!(by_expert[li.id.as_str()], (160_000, 16_000, 144_000));
    assert_eq!(by_expert[wang.id.as_str()], (30_000, 0, 30_000));
    assert_eq!((fen(batch.total_gross), fen(batch.total_tax), fen(batch.total_net)), (190_000, 16_000, 174_000));

    // The bank file, CSV: a row per payee with the registry's name, bank and full account, the
    // net, and a totals row equal to the batch's net total.
    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let (export, file) = bank_file(&mut clerk, "bank-csv", &batch.id, FileFormat::CsvUtf8).await.unwrap();
    assert_eq!(export.kind(), ExportKind::BankPaymentFile);
    assert_eq!((export.payment_batch_id.as_str(), export.row_count), (batch.id.as_str(), 2));
    assert_eq!(fen(export.total), 174_000);
    assert_eq!((file.sha256.as_str(), export.sha256.as_str()), (sha256(&file.content).as_str(), file.sha256.as_str()));
    assert!(file.file_name.ends_with(".csv") && file.media_type.starts_with("text/csv"));
    let rows = csv_rows(&file);
    assert_eq!(rows.len(), 4, "header, two payees, totals");
    assert_eq!(
        rows[0][..8],
        ["序号", "专家编号", "收款人姓名", "开户名", "开户银行", "开户网点", "收款账号", "金额(元)"]
    );
    let row_of = |id: &str| rows.iter().find(|r| r[1] == id).unwrap().clone();
    let li_row = row_of(&li.id);
    assert_eq!(li_row[2..8], [li.name, li.name, "中国工商银行", "江门分行营业部", li.account.as_str(), "1440.00"]);
    assert_eq!(row_of(&wang.id)[6..8], [wang.account.as_str(), "300.00"]);
    assert_eq!((rows[3][0].as_str(), rows[3][1].as_str()), ("合计", "2"));
    assert_eq!(yuan(&rows[3][7]), fen(batch.total_net));
    assert_eq!(rows[1..3].iter().map(|r| yuan(&r[7])).sum::<i64>(), fen(batch.total_net));

    // The same file as XLSX: amounts are numbers, accounts text, the total the batch's net.
    let (xlsx_export, xlsx) = bank_file(&mut clerk, "bank-xlsx", &batch.id, FileFormat::Xlsx).await.unwrap();
    assert!(xlsx.file_name.ends_with(".xlsx"));
    assert_eq!(xlsx_export.format(), FileFormat::Xlsx);
    let sheet = xlsx_rows(&xlsx);
    assert_eq!(sheet.len(), 4);
    let li_xlsx = sheet.iter().find(|r| r[1] == Data::String(li.id.clone())).unwrap();
    assert_eq!(li_xlsx[6], Data::String(li.account.clone()));
    assert_eq!(xlsx_fen(&li_xlsx[7]), 144_000);
    assert_eq!(xlsx_fen(&sheet[3][7]), fen(batch.total_net));

    // The withholding return of April (GB18030): identity numbers in full, income, deduction,
    // taxable amount, rate, tax due and withheld.
    let (ret, file) = withholding_return(&mut clerk, "return-april", APRIL, FileFormat::CsvGb18030).await.unwrap();
    assert_eq!((ret.kind(), ret.row_count, fen(ret.total)), (ExportKind::WithholdingReturn, 2, 190_000));
    let rows = csv_rows(&file);
    let li_row = rows.iter().find(|r| r.get(12) == Some(&li.id)).unwrap();
    assert_eq!(
        li_row[1..12],
        [
            "李明",
            "居民身份证",
            li.identity.as_str(),
            "劳务报酬所得",
            "1600.00",
            "800.00",
            "800.00",
            "20",
            "0.00",
            "160.00",
            "160.00"
        ]
    );
    let wang_row = rows.iter().find(|r| r.get(12) == Some(&wang.id)).unwrap();
    assert_eq!(
        wang_row[3..12],
        [wang.identity.as_str(), "劳务报酬所得", "300.00", "800.00", "0.00", "20", "0.00", "0.00", "0.00"]
    );
    let totals = rows.last().unwrap();
    assert_eq!((yuan(&totals[5]), yuan(&totals[11])), (fen(batch.total_gross), fen(batch.total_tax)));

    // The return agrees with the monthly statement.
    let statement = clerk
        .get_monthly_statement(GetMonthlyStatementRequest {
            expert_id: li.id.clone(),
            paying_bureau: XINHUI,
            payment_month: Some(APRIL),
        })
        .await
        .unwrap()
        .into_inner()
        .statement
        .unwrap();
    assert_eq!((fen(statement.gross), fen(statement.tax), fen(statement.net)), (160_000, 16_000, 144_000));

    // 李明's yearly statement, as finance writes it and as she asks for it herself: April,
    // Xinhui, the city/county fund, 16 class hours, 1,600 gross, 160 tax, 1,440 net.
    let (year_export, file) = yearly(&mut clerk, "year-li", &li.id, FileFormat::Xlsx).await.unwrap();
    assert_eq!((year_export.expert_id.as_str(), year_export.year), (li.id.as_str(), 2026));
    assert_eq!(fen(year_export.total), 160_000);
    let sheet = xlsx_rows(&file);
    assert_eq!(sheet.len(), 3, "header, April, totals");
    assert_eq!(sheet[1][0], Data::String("李明".into()));
    assert_eq!(sheet[1][1], Data::String("2026-04".into()));
    assert_eq!(sheet[1][2], Data::String("440705".into()));
    assert_eq!(sheet[1][4], Data::String("市县两级就业创业专项资金".into()));
    assert_eq!(sheet[1][5], Data::String("JM-2026-0042".into()));
    assert_eq!(sheet[1][6], Data::Float(16.0));
    assert_eq!((xlsx_fen(&sheet[1][7]), xlsx_fen(&sheet[1][8]), xlsx_fen(&sheet[1][9])), (160_000, 16_000, 144_000));
    assert_eq!(xlsx_fen(&sheet[2][9]), fen(statement.net));
    let mut herself = FinanceServiceClient::new(with_token(&finance.channel, Some(&expert_token(&li.id))));
    let (_, own) = yearly(&mut herself, "year-li-self", "", FileFormat::CsvUtf8).await.unwrap();
    let rows = csv_rows(&own);
    assert_eq!(rows[1][7..10], ["1600.00", "160.00", "1440.00"]);
    let err = yearly(&mut herself, "year-wang-by-li", &wang.id, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Everything reconciles: lines, the batch, the statements, the tax, both bank files and the
    // return.
    let r = reconcile(&finance, APRIL).await;
    assert_balanced(&r);
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with(&format!("bank file {}", export.id))), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with(&format!("withholding return {}", ret.id))), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with(&format!("batch {}", batch.id))), "{names:?}");

    // The exports are listed with the SHA-256 of the files handed out.
    let mut auditor = FinanceServiceClient::new(finance.as_role(Role::Auditor, None));
    let listed = auditor.list_exports(ListExportsRequest::default()).await.unwrap().into_inner().exports;
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().any(|e| e.id == export.id && e.sha256 == export.sha256));
}

async fn a_retry_returns_the_same_file_and_nothing_personal_is_kept(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let li = person(&registry, "李明", 1).await;
    let a = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    deliver(&finance, revision_on(&a, 1, &full_days(&[6]))).await;
    let batch = pay_batch(&finance, "april", APRIL, FundSource::CityCountyEmployment).await;

    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let (first, file) = bank_file(&mut clerk, "bank-1", &batch.id, FileFormat::Xlsx).await.unwrap();
    let (again, file_again) = bank_file(&mut clerk, "bank-1", &batch.id, FileFormat::Xlsx).await.unwrap();
    assert_eq!(again, first, "the same record");
    assert_eq!(file_again.content, file.content, "the same bytes, built again");
    assert!(!file_again.content.is_empty());
    let listed = clerk.list_exports(ListExportsRequest::default()).await.unwrap().into_inner().exports;
    assert_eq!(listed.len(), 1, "one effect");

    // Finance's database holds neither the account nor the identity number: not in the
    // idempotency store, not in the export records, not in the audit chain.
    let url = finance.database_url().to_owned();
    let bytes = dump_database(&url).await;
    assert!(!bytes.contains(&li.account), "no account number in finance's database");
    assert!(!bytes.contains(&li.identity), "no identity number in finance's database");
    assert!(bytes.contains(&first.sha256), "the file's SHA-256 is kept");

    // The same request id with another format is another request.
    let err = bank_file(&mut clerk, "bank-1", &batch.id, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

/// Every text value of every table of finance's database, joined.
async fn dump_database(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let tables: Vec<String> = if url.starts_with("sqlite") {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'").fetch_all(&pool).await.unwrap()
    } else {
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let mut all = String::new();
    for table in tables {
        let columns: Vec<String> = if url.starts_with("sqlite") {
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)").bind(&table).fetch_all(&pool).await.unwrap()
        } else {
            sqlx::query_scalar("SELECT column_name::text FROM information_schema.columns WHERE table_name = $1")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap()
        };
        for column in columns {
            let sql = if url.starts_with("sqlite") {
                format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"")
            } else {
                format!("SELECT encode(convert_to(CAST(\"{column}\" AS TEXT), 'UTF8'), 'escape') FROM \"{table}\"")
            };
            let values: Vec<Option<String>> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap_or_default();
            for v in values.into_iter().flatten() {
                all.push_str(&v);
                all.push('\n');
            }
            // Binary columns (the idempotency answers) as text too.
            let raw = format!("SELECT \"{column}\" FROM \"{table}\"");
            if let Ok(blobs) = sqlx::query_scalar::<_, Vec<u8>>(sqlx::AssertSqlSafe(raw)).fetch_all(&pool).await {
                for b in blobs {
                    all.push_str(&String::from_utf8_lossy(&b));
                    all.push('\n');
                }
            }
        }
    }
    pool.close().await;
    all
}

async fn exports_are_refused_for_drafts_other_bureaus_bad_formats_and_an_untrusted_token(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let li = person(&registry, "李明", 1).await;
    let a = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    deliver(&finance, revision_on(&a, 1, &full_days(&[6]))).await;
    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let create = CreatePaymentBatchRequest {
        request_id: "draft".into(),
        paying_bureau: XINHUI,
        payment_month: Some(APRIL),
        fund_source: FundSource::CityCountyEmployment as i32,
        work_dates: None,
    };
    let draft = clerk.create_payment_batch(create).await.unwrap().into_inner().batch.unwrap();

    let err = bank_file(&mut clerk, "bank-draft", &draft.id, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "BATCH_NOT_APPROVED"));
    let err = withholding_return(&mut clerk, "ret-empty", APRIL, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "NO_PAYMENTS"));
    let err = bank_file(&mut clerk, "bank-pdf", &draft.id, FileFormat::Pdf).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<_> =
        err.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
    assert_eq!(fields, ["format"]);
    let err = bank_file(&mut clerk, "bank-bad-id", "batch-1", FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = yearly(&mut clerk, "year-bad", "nobody", FileFormat::Xlsx).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Another bureau's finance user neither exports nor reconciles Xinhui's.
    let mut heshan = FinanceServiceClient::new(finance.as_user("heshan-fin", Role::Finance, Some(Bureau::Heshan)));
    let err = bank_file(&mut heshan, "bank-other", &draft.id, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = heshan.reconcile(ReconcileRequest { paying_bureau: XINHUI, month: Some(APRIL) }).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A county operator may not export at all.
    let mut operator = FinanceServiceClient::new(finance.as_role(Role::CountyOperator, Some(Bureau::Xinhui)));
    let err = bank_file(&mut operator, "bank-op", &draft.id, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A finance whose SERVICE token is not its own gets masked payees from the registry and
    // writes no file.
    let (registry2, untrusted) = spawn_finance_with_registry(backend).await;
    let wang = person(&registry2, "王芳", 2).await;
    let b = Assignment::new(&wang.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    deliver(&untrusted, revision_on(&b, 1, &full_days(&[6]))).await;
    let batch = pay_batch(&untrusted, "april", APRIL, FundSource::CityCountyEmployment).await;
    let mut clerk = user(&untrusted, "fin-preparer", Role::Finance);
    let err = bank_file(&mut clerk, "bank-masked", &batch.id, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("masked"), "{}", err.message());
    assert!(clerk.list_exports(ListExportsRequest::default()).await.unwrap().into_inner().exports.is_empty());
    // The same request id works once the cause is gone: nothing was claimed.
    drop(registry2);
}

async fn two_funds_in_one_month_are_one_income_on_the_withholding_return(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let li = person(&registry, "李明", 1).await;
    // 800 yuan from each fund in April, paid in two batches.
    let provincial = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::ProvincialSkillTraining);
    deliver(&finance, revision_on(&provincial, 1, &full_days(&[6]))).await;
    let city = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    deliver(&finance, revision_on(&city, 1, &full_days(&[7]))).await;

    let first = pay_batch(&finance, "provincial", APRIL, FundSource::ProvincialSkillTraining).await;
    assert_eq!((fen(first.total_gross), fen(first.total_tax)), (80_000, 0), "800 alone owes nothing");
    let second = pay_batch(&finance, "city", APRIL, FundSource::CityCountyEmployment).await;
    // The month's income is 1,600: (1,600 - 800) x 20% = 160, all of it on the second batch.
    assert_eq!((fen(second.total_gross), fen(second.total_tax), fen(second.total_net)), (80_000, 16_000, 64_000));
    let w = second.items[0].withholding.as_ref().unwrap();
    assert_eq!((fen(w.income), fen(w.already_withheld), fen(w.withheld_now)), (160_000, 0, 16_000));

    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let (ret, file) = withholding_return(&mut clerk, "return", APRIL, FileFormat::CsvUtf8).await.unwrap();
    assert_eq!((ret.row_count, fen(ret.total)), (1, 160_000), "one payee, one income across both funds");
    let rows = csv_rows(&file);
    assert_eq!(rows[1][5..12], ["1600.00", "800.00", "800.00", "20", "0.00", "160.00", "160.00"]);
    // The yearly statement shows the two funds apart and the month's tax where it was withheld.
    let (_, file) = yearly(&mut clerk, "year", &li.id, FileFormat::CsvUtf8).await.unwrap();
    let rows = csv_rows(&file);
    assert_eq!(rows.len(), 4, "header, one row per fund, totals");
    let amounts: Vec<_> = rows[1..3].iter().map(|r| (r[4].clone(), r[7].clone(), r[8].clone())).collect();
    assert!(amounts.contains(&(
        "省级促进就业创业发展专项资金（职业技能提升培训）".into(),
        "800.00".into(),
        "0.00".into()
    )));
    assert!(amounts.contains(&("市县两级就业创业专项资金".into(), "800.00".into(), "160.00".into())));
    assert_eq!(rows[3][7..10], ["1600.00", "160.00", "1440.00"]);
    assert_balanced(&reconcile(&finance, APRIL).await);
}

async fn a_late_correction_lands_in_the_next_batch_and_paid_lines_stay_as_paid(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let li = person(&registry, "李明", 1).await;
    let a = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    // Revision 1: 90 minutes on 28 April, 2 class hours, 200 yuan; paid in April's batch.
    let first = deliver(&finance, revision_on(&a, 1, &[(day(4, 28), 9, 0, 90)])).await;
    let april = pay_batch(&finance, "april", APRIL, FundSource::CityCountyEmployment).await;
    assert_eq!(fen(april.total_gross), 20_000);

    // In May the report is corrected to 180 minutes: the paid line is reversed by a new line and
    // charged afresh; both are open and go into May's batch.
    let corrected = deliver(&finance, revision_on(&a, 2, &[(day(4, 28), 9, 0, 180)])).await;
    let kinds: Vec<_> = corrected.iter().map(|l| (l.kind(), fen(l.amount), l.status())).collect();
    assert_eq!(
        kinds,
        [(FeeLineKind::Reversal, -20_000, FeeLineStatus::Open), (FeeLineKind::Charge, 40_000, FeeLineStatus::Open)]
    );
    assert_eq!(corrected[0].reverses_line_id, first[0].id);
    let may = pay_batch(&finance, "may", MAY, FundSource::CityCountyEmployment).await;
    let taken: Vec<&String> = may.items.iter().flat_map(|i| &i.fee_line_ids).collect();
    assert_eq!(taken.len(), 2);
    assert!(corrected.iter().all(|l| taken.contains(&&l.id)));
    assert_eq!(fen(may.total_gross), 20_000, "the difference is May's income");

    // The line paid in April is still paid in April's batch, with its amount.
    let mut admin = FinanceServiceClient::new(finance.as_role(Role::CityAdmin, None));
    let lines = admin
        .list_fee_lines(ListFeeLinesRequest { assignment_id: a.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .lines;
    let original = lines.iter().find(|l| l.id == first[0].id).unwrap();
    assert_eq!(
        (original.status(), original.payment_batch_id.as_str(), fen(original.amount)),
        (FeeLineStatus::Paid, april.id.as_str(), 20_000)
    );
    assert!(
        lines
            .iter()
            .filter(|l| l.id != first[0].id)
            .all(|l| l.payment_batch_id == may.id && l.status() == FeeLineStatus::Paid)
    );

    // Each month reconciles; each bank file pays its batch's net.
    assert_balanced(&reconcile(&finance, APRIL).await);
    assert_balanced(&reconcile(&finance, MAY).await);
    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let (export, _) = bank_file(&mut clerk, "bank-may", &may.id, FileFormat::CsvUtf8).await.unwrap();
    assert_eq!(fen(export.total), fen(may.total_net));
    // The yearly statement has April and May.
    let (_, file) = yearly(&mut clerk, "year", &li.id, FileFormat::CsvUtf8).await.unwrap();
    let rows = csv_rows(&file);
    let months: Vec<&str> = rows[1..rows.len() - 1].iter().map(|r| r[1].as_str()).collect();
    assert_eq!(months, ["2026-04", "2026-05"]);
    assert_eq!(rows.last().unwrap()[7], "400.00");
}

/// Dispatch's outbox holds six revisions; finance is stopped after delivering some, while others
/// are in flight; the relay keeps what was not acknowledged and sends it again, and sends some
/// acknowledged ones again too (an acknowledgement lost with the connection). After the restart
/// on the same database nothing is lost and nothing is charged twice.
async fn finance_stopped_while_deliveries_are_pending_loses_nothing_and_charges_nothing_twice(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let endpoint = format!("http://{}", registry.addr);
    let finance = spawn_finance_on(TestDb::new(backend).await, &endpoint).await;
    let li = person(&registry, "李明", 1).await;
    // Six assignments on six different days (no shared half-day, so no cap reallocation): the
    // first three get a correction, the sixth a void.
    let assignments: Vec<Assignment> =
        (0..6).map(|_| Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment)).collect();
    let mut pending: Vec<RecordSessionsRequest> = Vec::new();
    for (i, a) in assignments.iter().enumerate() {
        let d = day(4, 6 + i32::try_from(i).unwrap());
        pending.push(revision_on(a, 1, &[(d, 9, 0, 180), (d, 14, 0, 135)]));
        if i < 3 {
            pending.push(revision_on(a, 2, &[(d, 9, 0, 90)]));
        }
    }
    let mut void = revision_on(&assignments[5], 2, &[(day(4, 11), 9, 0, 180), (day(4, 11), 14, 0, 135)]);
    void.voided = true;
    void.void_reason = "违反工作纪律".into();
    pending.push(void);

    // Four delivered and acknowledged (assignments 0 and 1, both revisions).
    let mut acknowledged = Vec::new();
    for request in pending.drain(..4) {
        outbox(&finance).record_sessions(request.clone()).await.unwrap();
        acknowledged.push(request);
    }
    // The first revisions of assignments 2 to 5 in flight, side by side, while finance stops;
    // the corrections of 2 and 5 not yet sent.
    let (in_flight, mut pending): (Vec<_>, Vec<_>) = pending.into_iter().partition(|r| r.revision == 1);
    let mut flights = Vec::new();
    for request in in_flight {
        let mut client = outbox(&finance);
        flights.push(tokio::spawn(async move {
            let answer = client.record_sessions(request.clone()).await;
            (request, answer.is_ok())
        }));
    }
    let db = finance.stop_keeping_database().await;
    let mut unacknowledged = Vec::new();
    for flight in flights {
        let (request, ok) = flight.await.unwrap();
        if ok { acknowledged.push(request) } else { unacknowledged.push(request) }
    }
    unacknowledged.append(&mut pending);
    let pending = unacknowledged;

    // Restarted on the same database; the relay sends what is pending, in order, then, as after
    // lost acknowledgements, everything acknowledged again.
    let finance = spawn_finance_on(db, &endpoint).await;
    for request in pending.iter().chain(acknowledged.iter()) {
        let answer = outbox(&finance).record_sessions(request.clone()).await.unwrap().into_inner();
        assert!(answer.applied, "{}", request.request_id);
    }

    // Exactly once per assignment revision: the first revision's two charges; for a corrected
    // assignment their two reversals and the correction's one charge; for the voided one two
    // reversals and two zero charges.
    let mut admin = FinanceServiceClient::new(finance.as_role(Role::CityAdmin, None));
    let mut lines = Vec::new();
    let mut page = None;
    loop {
        let response = admin
            .list_fee_lines(ListFeeLinesRequest {
                page: Some(common::PageRequest { page_size: 100, page_token: page.unwrap_or_default() }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        lines.extend(response.lines);
        if response.next_page_token.is_empty() {
            break;
        }
        page = Some(response.next_page_token);
    }
    for (i, a) in assignments.iter().enumerate() {
        let of = |revision: i32, kind: FeeLineKind| {
            lines.iter().filter(|l| l.assignment_id == a.id && l.revision == revision && l.kind() == kind).count()
        };
        let (charges_1, reversals_1, charges_2) = match i {
            0..3 => (2, 2, 1),
            5 => (2, 2, 2),
            _ => (2, 0, 0),
        };
        assert_eq!(of(1, FeeLineKind::Charge), charges_1, "assignment {i}, revision 1 charges");
        assert_eq!(of(1, FeeLineKind::Reversal), reversals_1, "assignment {i}, revision 1 reversals");
        assert_eq!(of(2, FeeLineKind::Charge), charges_2, "assignment {i}, revision 2 charges");
    }
    // 3 corrected x 200 + 2 untouched x (400 + 300) + the voided one's 0.
    let live: i64 = lines.iter().map(|l| fen(l.amount)).sum();
    assert_eq!(live, 3 * 20_000 + 2 * 70_000);
    // One audit entry per revision applied.
    let mut auditor = FinanceServiceClient::new(finance.as_role(Role::Auditor, None));
    for (i, a) in assignments.iter().enumerate() {
        let entries = auditor
            .list_audit_entries(ListAuditEntriesRequest {
                entity_type: "assignment".into(),
                entity_id: a.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .entries;
        let expected = if i < 3 || i == 5 { 2 } else { 1 };
        assert_eq!(entries.len(), expected, "assignment {i}");
    }
    // And it pays and reconciles.
    let batch = pay_batch(&finance, "april", APRIL, FundSource::CityCountyEmployment).await;
    assert_eq!(fen(batch.total_gross), live);
    assert_balanced(&reconcile(&finance, APRIL).await);
}

async fn reconcile_names_a_stale_withholding_return(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let li = person(&registry, "李明", 1).await;
    let provincial = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::ProvincialSkillTraining);
    deliver(&finance, revision_on(&provincial, 1, &full_days(&[6]))).await;
    pay_batch(&finance, "provincial", APRIL, FundSource::ProvincialSkillTraining).await;
    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let (ret, _) = withholding_return(&mut clerk, "return-1", APRIL, FileFormat::CsvUtf8).await.unwrap();
    assert_balanced(&reconcile(&finance, APRIL).await);

    // Another batch of April is paid after the return was written: the return no longer holds
    // the month's income, and Reconcile says so.
    let city = Assignment::new(&li.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    deliver(&finance, revision_on(&city, 1, &full_days(&[7]))).await;
    pay_batch(&finance, "city", APRIL, FundSource::CityCountyEmployment).await;
    let r = reconcile(&finance, APRIL).await;
    assert!(!r.balanced);
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].name.contains(&ret.id));
    assert_eq!((fen(failed[0].expected), fen(failed[0].actual)), (160_000, 80_000));
    assert!(failed[0].detail.contains("write the return again"), "{}", failed[0].detail);
    // A retry of the first return's request now refuses: its data changed.
    let err = withholding_return(&mut clerk, "return-1", APRIL, FileFormat::CsvUtf8).await.unwrap_err();
    assert_eq!((err.code(), reason(&err).as_str()), (Code::FailedPrecondition, "EXPORT_DATA_CHANGED"));
    // Writing it again balances the month.
    withholding_return(&mut clerk, "return-2", APRIL, FileFormat::CsvUtf8).await.unwrap();
    assert_balanced(&reconcile(&finance, APRIL).await);
}

/// DOMAIN.md Appendix A7 and A8 through a batch: 1,200 yuan in a month withholds 80 and nets 1,120;
/// 4,800 yuan withholds 4,800 x 80% x 20% = 768.
async fn appendix_a7_and_a8_are_withheld_through_a_batch_and_the_return(backend: Backend) {
    let (registry, finance) = services(backend).await;
    let a7 = person(&registry, "李明", 1).await;
    let a8 = person(&registry, "王芳", 2).await;
    // A7: three half-days of 180 minutes, 1,200 yuan. A8: six full days, 4,800 yuan.
    let first = Assignment::new(&a7.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let mut half_days = full_days(&[6]);
    half_days.push((day(4, 7), 8, 30, 180));
    deliver(&finance, revision_on(&first, 1, &half_days)).await;
    let second = Assignment::new(&a8.id, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    deliver(&finance, revision_on(&second, 1, &full_days(&[6, 7, 8, 9, 10, 13]))).await;

    let batch = pay_batch(&finance, "april", APRIL, FundSource::CityCountyEmployment).await;
    let item = |id: &str| batch.items.iter().find(|i| i.expert_id == id).unwrap().clone();
    let i7 = item(&a7.id);
    assert_eq!((fen(i7.gross), fen(i7.tax), fen(i7.net)), (120_000, 8_000, 112_000));
    let i8 = item(&a8.id);
    assert_eq!((fen(i8.gross), fen(i8.tax), fen(i8.net)), (480_000, 76_800, 403_200));
    let w8 = i8.withholding.unwrap();
    assert_eq!((fen(w8.deduction), fen(w8.taxable), w8.rate_percent), (96_000, 384_000, 20));

    let mut clerk = user(&finance, "fin-preparer", Role::Finance);
    let (_, file) = withholding_return(&mut clerk, "return", APRIL, FileFormat::Xlsx).await.unwrap();
    let sheet = xlsx_rows(&file);
    let row = |id: &str| sheet.iter().find(|r| r.get(12) == Some(&Data::String(id.to_owned()))).unwrap().clone();
    let r7 = row(&a7.id);
    assert_eq!(r7[3], Data::String(a7.identity.clone()));
    assert_eq!(
        (xlsx_fen(&r7[5]), xlsx_fen(&r7[6]), xlsx_fen(&r7[7]), xlsx_fen(&r7[11])),
        (120_000, 80_000, 40_000, 8_000)
    );
    let r8 = row(&a8.id);
    assert_eq!(
        (xlsx_fen(&r8[5]), xlsx_fen(&r8[6]), xlsx_fen(&r8[7]), xlsx_fen(&r8[11])),
        (480_000, 96_000, 384_000, 76_800)
    );
    let (_, bank) = bank_file(&mut clerk, "bank", &batch.id, FileFormat::CsvGb18030).await.unwrap();
    let rows = csv_rows(&bank);
    assert_eq!(yuan(&rows.last().unwrap()[7]), 112_000 + 403_200);
    assert_balanced(&reconcile(&finance, APRIL).await);
}
