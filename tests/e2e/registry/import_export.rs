//! Import and export of experts and institutions (issue 5 item 10; docs/import-export.md): CSV in
//! GB18030 or UTF-8 and XLSX, all or nothing with every bad row named by row and column,
//! idempotent on the request id; exports as the caller's role may see them. The long form
//! (`make test-long`) imports 10,000 experts from XLSX and streams a pool of 100,000.

use std::time::Instant;

use chrono::{Datelike, Duration, NaiveDate};
use supervision_proto::{
    common::{BureauCode, FileFormat, PageRequest},
    registry::{
        ExpertStatus, ExportExpertsRequest, ExportInstitutionsRequest, GetExpertRequest, ImportExpertsRequest,
        ImportInstitutionsRequest, ImportProgress, ImportResult, ListAuditEntriesRequest, ListExpertsRequest,
        ListInstitutionsRequest, ListYearlyAcceptancesRequest, StreamDrawPoolRequest,
        import_experts_response::Event as ExpertEvent, import_institutions_response::Event as InstitutionEvent,
        registry_service_client::RegistryServiceClient,
    },
};
use supervision_registry::{sheets, transfer};
use testkit::{AuthedChannel, Backend, Bureau, Role, on_both_backends, service_acting_for, spawn_registry};
use tonic::Code;

use crate::appointments::{admin, id};

on_both_backends!(
    a_gb18030_csv_and_an_xlsx_of_fifty_experts_arrive_whole,
    a_file_with_bad_rows_imports_nothing_and_names_each,
    institutions_arrive_with_their_sub_units_and_export_again,
    an_export_is_for_city_staff_and_auditors_only,
);

fn today() -> NaiveDate {
    (chrono::Utc::now() + Duration::hours(8)).date_naive()
}

/// A valid resident identity number (GB 11643) for person `n` (unique up to 1,000,000).
pub(crate) fn resident(n: u32) -> String {
    let birth = NaiveDate::from_ymd_opt(1960, 1, 1).unwrap() + Duration::days(i64::from(n / 500));
    let body = format!("440703{}{:03}", birth.format("%Y%m%d"), n % 500);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// A valid unified social credit code (GB 32100) for organisation `n`.
pub(crate) fn credit_code(n: u32) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [usize; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
    let body = format!("91440700MA{:07}", n);
    let sum: usize = body.bytes().zip(WEIGHTS).map(|(b, w)| CHARS.iter().position(|c| *c == b).unwrap() * w).sum();
    let check = CHARS[(31 - sum % 31) % 31] as char;
    format!("{body}{check}")
}

/// The cells of one expert row, in `transfer::EXPERT_COLUMNS` order: person `n`, appointed
/// `since` (a first term when `term_number` is 1), trained, with past outcomes.
pub(crate) fn expert_row(n: u32, decided: NaiveDate, term_number: u32, acceptances: &str) -> Vec<String> {
    let counties = ["440703", "440704", "新会区", "TAISHAN", "440783", "440784", "440785"];
    let value = |column: &str| -> String {
        match column {
            "kind" => "INDIVIDUAL".into(),
            "name" => format!("测试专家{n}"),
            "id_type" => "RESIDENT_ID_CARD".into(),
            "id_number" => resident(n),
            "county" => counties[n as usize % counties.len()].into(),
            "mobile" => format!("139{:08}", n),
            "email" => format!("expert{n}@example.com"),
            "address" => format!("江门市示例路{n}号"),
            "bank_holder" => format!("测试专家{n}"),
            "bank_name" => "中国工商银行".into(),
            "bank_branch" => "江门分行".into(),
            "bank_account" => format!("62220212{:011}", n),
            "employer_name" => format!("江门示例单位{}", n % 97),
            "employer_credit_code" => credit_code(n % 97),
            "employer_post" => "教师".into(),
            "categories" => {
                if n.is_multiple_of(3) { "TECHNICIAN;EDUCATOR" } else { "ASSESSOR_OR_QUALITY_SUPERVISOR" }.into()
            }
            "category_evidence" => "技师证书 复印件".into(),
            "specialties" => "4-07-05-01;6-18".into(),
            "professional_title" => "高级技师".into(),
            "civil_servant_status" => if n.is_multiple_of(10) { "PUBLIC_INSTITUTION_STAFF" } else { "NONE" }.into(),
            "certificate_number" => format!("JMSE-{}-{:05}", decided.year(), n + 1),
            "decision_date" => decided.to_string(),
            "term_start" => decided.to_string(),
            "term_number" => term_number.to_string(),
            "trained" => if n.is_multiple_of(2) { "yes" } else { "no" }.into(),
            "yearly_acceptances" => acceptances.into(),
            _ => String::new(),
        }
    };
    transfer::EXPERT_COLUMNS.iter().map(|c| value(c)).collect()
}

/// A file of experts `first..first+count`, the first terms decided 200 days ago.
pub(crate) fn expert_file(format: FileFormat, first: u32, count: u32) -> Vec<u8> {
    let decided = today() - Duration::days(200);
    let rows: Vec<Vec<String>> = (first..first + count).map(|n| expert_row(n, decided, 1, "")).collect();
    sheets::write(format, transfer::EXPERT_COLUMNS, &rows).unwrap()
}

fn column(name: &str) -> usize {
    transfer::EXPERT_COLUMNS.iter().position(|c| *c == name).unwrap()
}

/// Every message of an import: the progress messages and the result.
async fn import_experts(
    c: &mut RegistryServiceClient<AuthedChannel>,
    req: ImportExpertsRequest,
) -> Result<(Vec<ImportProgress>, ImportResult), tonic::Status> {
    let mut stream = c.import_experts(req).await?.into_inner();
    let mut progress = Vec::new();
    let mut result = None;
    while let Some(message) = stream.message().await? {
        assert!(result.is_none(), "the result is the last message");
        match message.event.unwrap() {
            ExpertEvent::Progress(p) => progress.push(p),
            ExpertEvent::Result(r) => result = Some(r),
        }
    }
    Ok((progress, result.expect("a result ends the stream")))
}

fn import_request(format: FileFormat, content: Vec<u8>, validate_only: bool) -> ImportExpertsRequest {
    ImportExpertsRequest { request_id: id(), format: format as i32, content, validate_only }
}

async fn expert_count(c: &mut RegistryServiceClient<AuthedChannel>) -> usize {
    let page = Some(PageRequest { page_size: 500, page_token: String::new() });
    c.list_experts(ListExpertsRequest { page, ..Default::default() }).await.unwrap().into_inner().experts.len()
}

/// The whole export file.
async fn export_experts(
    c: &mut RegistryServiceClient<AuthedChannel>,
    format: FileFormat,
) -> Result<(String, Vec<u8>), tonic::Status> {
    let req = ExportExpertsRequest { format: format as i32, ..Default::default() };
    let mut stream = c.export_experts(req).await?.into_inner();
    let (mut name, mut file, mut digest) = (String::new(), Vec::new(), String::new());
    while let Some(m) = stream.message().await? {
        if name.is_empty() {
            name = m.file_name;
        }
        file.extend(m.chunk);
        digest = m.sha256;
    }
    use sha2::Digest;
    assert_eq!(digest, hex::encode(sha2::Sha256::digest(&file)), "the last message carries the file's SHA-256");
    Ok((name, file))
}

async fn a_gb18030_csv_and_an_xlsx_of_fifty_experts_arrive_whole(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    // 50 experts in GB18030 CSV, one of them renewed in their second term with past outcomes.
    let decided = today() - Duration::days(200);
    let mut rows: Vec<Vec<String>> = (0..50).map(|n| expert_row(n, decided, 1, "")).collect();
    let year = today().year();
    rows[4] = expert_row(4, decided, 2, &format!("{}:ACCEPTING;{}:NEUTRAL", year - 2, year - 1));
    let csv = sheets::write(FileFormat::CsvGb18030, transfer::EXPERT_COLUMNS, &rows).unwrap();
    assert!(std::str::from_utf8(&csv).is_err(), "the file is GB18030, not UTF-8");

    // Checking only stores nothing.
    let (_, checked) = import_experts(&mut c, import_request(FileFormat::CsvGb18030, csv.clone(), true)).await.unwrap();
    assert!(!checked.committed && checked.errors.is_empty(), "{checked:?}");
    assert_eq!((checked.rows_total, checked.rows_imported), (50, 0));
    assert_eq!(expert_count(&mut c).await, 0);

    let req = import_request(FileFormat::CsvGb18030, csv, false);
    let (progress, result) = import_experts(&mut c, req.clone()).await.unwrap();
    assert!(result.committed, "{:?}", result.errors);
    assert_eq!((result.rows_total, result.rows_imported), (50, 50));
    assert!(result.import_id.starts_with("imp_"));
    let last = progress.last().expect("progress before the result");
    assert_eq!((last.rows_checked, last.rows_total, last.errors_so_far), (50, 50, 0));
    assert_eq!(expert_count(&mut c).await, 50);

    // A retry answers the first result and stores nothing more.
    let (_, again) = import_experts(&mut c, req).await.unwrap();
    assert_eq!(again, result);
    assert_eq!(expert_count(&mut c).await, 50);

    // The renewed expert arrives whole: term, certificate, training, past outcomes, full data.
    let found = c
        .list_experts(ListExpertsRequest { name_contains: "测试专家4".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .experts;
    let expert = found.iter().find(|e| e.profile.as_ref().unwrap().name == "测试专家4").unwrap();
    let expert = c.get_expert(GetExpertRequest { id: expert.id.clone() }).await.unwrap().into_inner().expert.unwrap();
    assert_eq!(expert.status, ExpertStatus::Active as i32);
    assert!(expert.trained);
    let appointment = expert.appointment.as_ref().unwrap();
    assert_eq!(appointment.term_number, 2);
    assert_eq!(appointment.certificate_number, format!("JMSE-{}-00005", decided.year()));
    let end = appointment.term.unwrap().end.unwrap();
    let expected_end = NaiveDate::from_ymd_opt(decided.year() + 2, decided.month(), decided.day())
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(decided.year() + 2, 2, 28).unwrap())
        - Duration::days(1);
    assert_eq!(
        (end.year, end.month as u32, end.day as u32),
        (expected_end.year(), expected_end.month(), expected_end.day())
    );
    let profile = expert.profile.as_ref().unwrap();
    assert_eq!(profile.identity.as_ref().unwrap().number, resident(4));
    assert!(profile.categories.iter().all(|h| h.verified), "imported categories were verified at appointment");
    let acceptances = c
        .list_yearly_acceptances(ListYearlyAcceptancesRequest { expert_id: expert.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .acceptances;
    let years: Vec<(i32, i32)> = acceptances.iter().map(|a| (a.year, a.classification)).collect();
    assert_eq!(years.len(), 2, "{years:?}");
    assert!(years.contains(&(year - 2, 1)) && years.contains(&(year - 1, 3)), "{years:?}");

    // Fifty more from XLSX.
    let xlsx = expert_file(FileFormat::Xlsx, 100, 50);
    let (_, result) = import_experts(&mut c, import_request(FileFormat::Xlsx, xlsx, false)).await.unwrap();
    assert!(result.committed, "{:?}", result.errors);
    assert_eq!(result.rows_imported, 50);
    assert_eq!(expert_count(&mut c).await, 100);

    // The draw pool sees them.
    let dispatch = service_acting_for(&registry.channel, "dispatch", Role::CityOperator, None);
    let institution = crate::relations::institution(
        &registry,
        crate::relations::legal_entity(crate::relations::PARENT_CODE, "江门市池测试学校"),
    )
    .await;
    let t = today();
    let mut pool = RegistryServiceClient::new(dispatch)
        .stream_draw_pool(StreamDrawPoolRequest {
            institution_id: institution,
            session_dates: vec![supervision_proto::common::Date {
                year: t.year(),
                month: t.month() as i32,
                day: t.day() as i32,
            }],
            task_id: format!("tsk_{}", id()),
            expert_ids: vec![],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ids = 0;
    while let Some(m) = pool.message().await.unwrap() {
        ids += m.experts.len();
    }
    assert_eq!(ids, 100);
    registry.assert_expert_reads_current().await;
}

async fn a_file_with_bad_rows_imports_nothing_and_names_each(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let decided = today() - Duration::days(200);
    let mut rows: Vec<Vec<String>> = (0..50).map(|n| expert_row(n, decided, 1, "")).collect();
    // Data row 7 is file row 8 (the header is row 1).
    let mut number = resident(6);
    number.replace_range(17..18, if number.ends_with('0') { "1" } else { "0" });
    rows[6][column("id_number")] = number;
    rows[19][column("id_number")] = resident(2); // the same document as file row 4
    rows[29][column("decision_date")] = "2024-13-01".into();
    rows[39][column("categories")] = "ASTRONAUT".into();
    rows[44][column("certificate_number")] = rows[0][column("certificate_number")].clone();
    let xlsx = sheets::write(FileFormat::Xlsx, transfer::EXPERT_COLUMNS, &rows).unwrap();
    let (progress, result) = import_experts(&mut c, import_request(FileFormat::Xlsx, xlsx, false)).await.unwrap();
    assert!(!result.committed);
    assert_eq!((result.rows_total, result.rows_imported), (50, 0));
    let named: Vec<(i32, &str)> = result.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(
        named,
        [(8, "id_number"), (21, "id_number"), (31, "decision_date"), (41, "categories"), (46, "certificate_number")],
        "{:?}",
        result.errors
    );
    assert!(result.errors[1].message.contains("row 4"), "{:?}", result.errors[1]);
    assert_eq!(progress.last().unwrap().errors_so_far, 5);
    // Nothing was stored: no expert, no audit entry for one.
    assert_eq!(expert_count(&mut c).await, 0);
    let entries = c
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "expert".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(entries.is_empty(), "{entries:?}");

    // A header that is not this import's, and a file that is not text, are refused.
    let mut header: Vec<&str> = transfer::EXPERT_COLUMNS.to_vec();
    header[1] = "姓名";
    let csv = sheets::write(FileFormat::CsvUtf8, &header, &rows[..1]).unwrap();
    let (_, result) = import_experts(&mut c, import_request(FileFormat::CsvUtf8, csv, false)).await.unwrap();
    let named: Vec<(i32, &str)> = result.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(named, [(1, "name"), (1, "姓名")], "{:?}", result.errors);
    let err =
        import_experts(&mut c, import_request(FileFormat::Xlsx, b"not a workbook".to_vec(), false)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Only the city administrator imports experts.
    let mut operator = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None));
    let err =
        import_experts(&mut operator, import_request(FileFormat::Xlsx, expert_file(FileFormat::Xlsx, 0, 1), false))
            .await
            .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // The good rows alone import.
    rows.remove(44);
    rows.remove(39);
    rows.remove(29);
    rows.remove(19);
    rows.remove(6);
    let csv = sheets::write(FileFormat::CsvUtf8, transfer::EXPERT_COLUMNS, &rows).unwrap();
    let (_, result) = import_experts(&mut c, import_request(FileFormat::CsvUtf8, csv, false)).await.unwrap();
    assert!(result.committed, "{:?}", result.errors);
    assert_eq!(expert_count(&mut c).await, 45);
}

async fn import_institutions(
    c: &mut RegistryServiceClient<AuthedChannel>,
    format: FileFormat,
    content: Vec<u8>,
) -> Result<ImportResult, tonic::Status> {
    let req = ImportInstitutionsRequest { request_id: id(), format: format as i32, content, validate_only: false };
    let mut stream = c.import_institutions(req).await?.into_inner();
    let mut result = None;
    while let Some(m) = stream.message().await? {
        if let Some(InstitutionEvent::Result(r)) = m.event {
            result = Some(r);
        }
    }
    Ok(result.unwrap())
}

async fn institutions_arrive_with_their_sub_units_and_export_again(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let header = transfer::INSTITUTION_COLUMNS;
    let row = |cells: [&str; 7]| cells.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let (a, b) = (credit_code(1), credit_code(2));
    let rows = vec![
        row(["VOCATIONAL_TRAINING_SCHOOL", "江门市甲职业培训学校", &a, "", "440703", "蓬江区一路", "陈校长"]),
        row(["STUDIO", "甲学校技能大师工作室", "", &a, "440703", "", ""]),
        row(["TECHNICAL_SCHOOL", "江门市乙技工学校", &b, "", "新会区", "", "李校长"]),
    ];
    let csv = sheets::write(FileFormat::CsvUtf8, header, &rows).unwrap();

    // A county operator imports only its own county's institutions.
    let mut pengjiang = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Pengjiang)));
    let refused = import_institutions(&mut pengjiang, FileFormat::CsvUtf8, csv.clone()).await.unwrap();
    assert!(!refused.committed);
    let named: Vec<(i32, &str)> = refused.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(named, [(4, "county")], "{:?}", refused.errors);

    let result = import_institutions(&mut c, FileFormat::CsvUtf8, csv.clone()).await.unwrap();
    assert!(result.committed, "{:?}", result.errors);
    assert_eq!(result.rows_imported, 3);
    let listed = c.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner().institutions;
    assert_eq!(listed.len(), 3);
    let parent = listed.iter().find(|i| i.credit_code == a).unwrap();
    let studio = listed.iter().find(|i| i.name == "甲学校技能大师工作室").unwrap();
    assert_eq!(studio.parent_id, parent.id);
    assert_eq!(listed.iter().find(|i| i.credit_code == b).unwrap().county, BureauCode::Xinhui as i32);

    // The same file again: every credit code is taken, nothing changes.
    let again = import_institutions(&mut c, FileFormat::CsvUtf8, csv).await.unwrap();
    let named: Vec<(i32, &str)> = again.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(named, [(2, "credit_code"), (4, "credit_code")], "{:?}", again.errors);

    // Exported as GB18030 CSV, the file reads back as the same institutions, parents by code.
    let req = ExportInstitutionsRequest { format: FileFormat::CsvGb18030 as i32, ..Default::default() };
    let mut stream = c.export_institutions(req).await.unwrap().into_inner();
    let mut file = Vec::new();
    let mut media = String::new();
    while let Some(m) = stream.message().await.unwrap() {
        if media.is_empty() {
            media = m.media_type;
        }
        file.extend(m.chunk);
    }
    assert!(media.contains("GB18030"), "{media}");
    let sheet = sheets::read(FileFormat::CsvGb18030, &file).unwrap();
    assert_eq!(sheet.header[..2], ["id", "status"]);
    assert_eq!(sheet.rows.len(), 3);
    let studio_row = sheet.rows.iter().find(|(_, r)| r[3] == "甲学校技能大师工作室").unwrap();
    assert_eq!(studio_row.1[5], a, "the parent by its credit code");
    assert_eq!(studio_row.1[6], "440703");
}

async fn an_export_is_for_city_staff_and_auditors_only(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let (_, result) =
        import_experts(&mut c, import_request(FileFormat::Xlsx, expert_file(FileFormat::Xlsx, 0, 5), false))
            .await
            .unwrap();
    assert!(result.committed, "{:?}", result.errors);

    for role in [Role::CityAdmin, Role::Auditor] {
        let mut reader = RegistryServiceClient::new(registry.as_role(role, None));
        let (name, file) = export_experts(&mut reader, FileFormat::Xlsx).await.unwrap();
        assert!(name.starts_with("experts-") && name.ends_with(".xlsx"), "{name}");
        let sheet = sheets::read(FileFormat::Xlsx, &file).unwrap();
        assert_eq!(sheet.rows.len(), 5);
        let id_number = sheet.header.iter().position(|h| h == "id_number").unwrap();
        let mut numbers: Vec<&str> = sheet.rows.iter().map(|(_, r)| r[id_number].as_str()).collect();
        numbers.sort_unstable();
        let mut expected: Vec<String> = (0..5).map(resident).collect();
        expected.sort();
        assert_eq!(numbers, expected, "{role:?} sees identity numbers in full");
        // The export is an import file again: the data columns are the import's.
        assert_eq!(sheet.header[3..], transfer::EXPERT_COLUMNS.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()[..]);
    }
    for role in [Role::CityOperator] {
        let mut reader = RegistryServiceClient::new(registry.as_role(role, None));
        assert_eq!(export_experts(&mut reader, FileFormat::CsvUtf8).await.unwrap_err().code(), Code::PermissionDenied);
    }
    let mut county = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Xinhui)));
    assert_eq!(export_experts(&mut county, FileFormat::CsvUtf8).await.unwrap_err().code(), Code::PermissionDenied);

    // Every export is audited: who took the copy, how many rows.
    let entries = c
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "expert_export".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 2);
}

/// `make test-long`: 10,000 experts from one XLSX file, then a pool of 100,000 streamed; the
/// figures go to docs/import-export.md. On PostgreSQL, release build.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: run by make test-long"]
async fn ten_thousand_experts_import_and_a_pool_of_a_hundred_thousand_streams() {
    if !testkit::long_run() {
        return;
    }
    let registry = spawn_registry(Backend::Postgres).await;
    let mut c = admin(&registry);
    let file = expert_file(FileFormat::Xlsx, 0, 10_000);
    let started = Instant::now();
    let (progress, result) =
        import_experts(&mut c, import_request(FileFormat::Xlsx, file.clone(), false)).await.unwrap();
    let import_time = started.elapsed();
    assert!(result.committed, "{:?}", &result.errors[..result.errors.len().min(5)]);
    assert_eq!(result.rows_imported, 10_000);
    eprintln!(
        "import of 10,000 experts from XLSX ({} bytes): {:.1} s, {} progress messages, peak RSS of the test process {} MiB",
        file.len(),
        import_time.as_secs_f64(),
        progress.len(),
        peak_rss_mib()
    );
    for batch in 1..10u32 {
        let file = expert_file(FileFormat::Xlsx, batch * 10_000, 10_000);
        let (_, result) = import_experts(&mut c, import_request(FileFormat::Xlsx, file, false)).await.unwrap();
        assert!(result.committed, "{:?}", &result.errors[..result.errors.len().min(5)]);
    }
    let institution = crate::relations::institution(
        &registry,
        crate::relations::legal_entity(crate::relations::PARENT_CODE, "江门市池测试学校"),
    )
    .await;
    let t = today();
    let started = Instant::now();
    let mut pool =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "dispatch", Role::CityOperator, None))
            .stream_draw_pool(StreamDrawPoolRequest {
                institution_id: institution,
                session_dates: vec![supervision_proto::common::Date {
                    year: t.year(),
                    month: t.month() as i32,
                    day: t.day() as i32,
                }],
                task_id: format!("tsk_{}", id()),
                expert_ids: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
    let mut count = 0;
    while let Some(m) = pool.message().await.unwrap() {
        count += m.experts.len();
    }
    assert_eq!(count, 100_000);
    eprintln!(
        "pool of 100,000 streamed in {:.1} s, peak RSS of the test process {} MiB",
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    drop(registry);
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}
