//! Idempotency of the three commands the sweep (`tests/src/idempotency.rs`) does not check
//! (issue 11, item 3; `docs/security.md`): ImportExperts and ImportInstitutions (the registry;
//! their answer is a stream, which the checking proxy passes through) and UpdateCall
//! (recruitment; no suite sent one that succeeded). Each is checked here, on both backends, as
//! the rule says:
//!
//! 1. a command, then the same `request_id` and content again: the first answer (the import's
//!    result with its id, the call as the first update left it), and no second effect (the rows,
//!    the idempotency keys and the audit chain counted);
//! 2. the same `request_id` with other content (other rows, another format, `validate_only`;
//!    another value, another mask, another call): `FAILED_PRECONDITION`, and nothing changed;
//! 3. two copies of a new command at once: the same answer, and one effect.

use chrono::{Duration, NaiveDate};
use prost_types::FieldMask;
use supervision_proto::{
    common::{ExpertCategory, FileFormat},
    recruitment::{
        Call, CreateCallRequest, GetCallRequest, UpdateCallRequest, UpdateCallResponse,
        recruitment_service_client::RecruitmentServiceClient,
    },
    registry::{
        ImportExpertsRequest, ImportInstitutionsRequest, ImportResult, import_experts_response,
        import_institutions_response, registry_service_client::RegistryServiceClient,
    },
};
use supervision_registry::{sheets, transfer};
use testkit::{AuthedChannel, Backend, Role, on_both_backends, spawn_recruitment, spawn_registry};
use tonic::{Code, Status};

on_both_backends!(
    import_experts_answers_once_refuses_other_content_and_imports_once,
    import_institutions_answers_once_refuses_other_content_and_imports_once,
    update_call_answers_once_refuses_other_content_and_updates_once,
);

/// Rows per import: enough that two concurrent copies overlap.
const ROWS: u32 = 20;

/// What a service's database holds: the rows of each table named, the idempotency keys, and
/// the audit chain's head.
#[derive(Debug, PartialEq)]
struct Held {
    rows: Vec<i64>,
    keys: i64,
    audit: supervision_kit::audit::AuditHead,
}

async fn held(url: &str, tables: &[&str]) -> Held {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let count = |table: &str| sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")));
    let mut rows = Vec::new();
    for table in tables {
        rows.push(count(table).fetch_one(&pool).await.unwrap());
    }
    let keys = count("kit_idempotency_keys").fetch_one(&pool).await.unwrap();
    let audit = supervision_kit::audit::head(&pool).await.unwrap();
    pool.close().await;
    Held { rows, keys, audit }
}

fn today() -> NaiveDate {
    (chrono::Utc::now() + Duration::hours(8)).date_naive()
}

/// A valid unified social credit code (GB 32100) for organisation `n`.
fn credit_code(n: u32) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let body = format!("91440703MA{n:07}");
    let mut weight = 1;
    let mut sum = 0;
    for c in body.bytes() {
        sum += ALPHABET.iter().position(|a| *a == c).unwrap() * weight;
        weight = weight * 3 % 31;
    }
    format!("{body}{}", ALPHABET[(31 - sum % 31) % 31] as char)
}

/// A file of experts `first..first + ROWS` in `format`, each alike but for their numbers:
/// appointed 200 days ago in a first term, so each row stores an expert and an appointment.
fn experts_file(format: FileFormat, first: u32) -> Vec<u8> {
    let decided = (today() - Duration::days(200)).to_string();
    let rows: Vec<Vec<String>> = (first..first + ROWS)
        .map(|n| {
            let person = crate::scenario::person(n);
            let cell = |column: &str| -> String {
                match column {
                    "kind" => "INDIVIDUAL".into(),
                    "name" => format!("导入专家{n}"),
                    "id_type" => "RESIDENT_ID_CARD".into(),
                    "id_number" => person.id_number.clone(),
                    "county" => "440705".into(),
                    "mobile" => person.mobile.clone(),
                    "bank_holder" => format!("导入专家{n}"),
                    "bank_name" => "中国工商银行".into(),
                    "bank_branch" => "江门分行".into(),
                    "bank_account" => person.account.clone(),
                    "categories" => "TECHNICIAN".into(),
                    "category_evidence" => "技师证书 复印件".into(),
                    "civil_servant_status" => "NONE".into(),
                    "certificate_number" => format!("JMSE-IDEM-{n:05}"),
                    "decision_date" | "term_start" => decided.clone(),
                    "term_number" => "1".into(),
                    "trained" => "no".into(),
                    _ => String::new(),
                }
            };
            transfer::EXPERT_COLUMNS.iter().map(|c| cell(c)).collect()
        })
        .collect();
    sheets::write(format, transfer::EXPERT_COLUMNS, &rows).unwrap()
}

/// A file of institutions `first..first + ROWS` (training schools in Pengjiang) in `format`.
fn institutions_file(format: FileFormat, first: u32) -> Vec<u8> {
    let rows: Vec<Vec<String>> = (first..first + ROWS)
        .map(|n| {
            vec![
                "VOCATIONAL_TRAINING_SCHOOL".into(),
                format!("江门市第{n}职业培训学校"),
                credit_code(n),
                String::new(),
                "440703".into(),
                format!("蓬江区示例路{n}号"),
                "陈校长".into(),
            ]
        })
        .collect();
    sheets::write(format, transfer::INSTITUTION_COLUMNS, &rows).unwrap()
}

/// An expert import's result, the stream read to its end (the result is its last message).
async fn import_experts(
    mut client: RegistryServiceClient<AuthedChannel>,
    request: ImportExpertsRequest,
) -> Result<ImportResult, Status> {
    let mut stream = client.import_experts(request).await?.into_inner();
    let mut result = None;
    while let Some(message) = stream.message().await? {
        assert!(result.is_none(), "the result is the last message");
        if let Some(import_experts_response::Event::Result(r)) = message.event {
            result = Some(r);
        }
    }
    Ok(result.expect("a result ends the stream"))
}

/// An institution import's result, as [`import_experts`].
async fn import_institutions(
    mut client: RegistryServiceClient<AuthedChannel>,
    request: ImportInstitutionsRequest,
) -> Result<ImportResult, Status> {
    let mut stream = client.import_institutions(request).await?.into_inner();
    let mut result = None;
    while let Some(message) = stream.message().await? {
        assert!(result.is_none(), "the result is the last message");
        if let Some(import_institutions_response::Event::Result(r)) = message.event {
            result = Some(r);
        }
    }
    Ok(result.expect("a result ends the stream"))
}

fn committed(result: &ImportResult) {
    assert!(result.committed, "{:?}", result.errors);
    assert_eq!((result.rows_total, result.rows_imported), (ROWS as i32, ROWS as i32));
}

/// How far the audit chain moved from `before` to `after`.
fn entries(before: &Held, after: &Held) -> i64 {
    after.audit.seq - before.audit.seq
}

async fn import_experts_answers_once_refuses_other_content_and_imports_once(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let admin = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let url = registry.database_url().to_owned();
    let tables = ["experts", "appointments"];
    let empty = held(&url, &tables).await;
    let n = i64::from(ROWS);

    // 1. The first import, and the same request again: its result, nothing stored twice (a run
    //    afresh would have a new import id, and refuse every row as registered already).
    let request = ImportExpertsRequest {
        request_id: "import-experts-1".into(),
        format: FileFormat::CsvUtf8 as i32,
        content: experts_file(FileFormat::CsvUtf8, 0),
        validate_only: false,
    };
    let first = import_experts(admin.clone(), request.clone()).await.unwrap();
    committed(&first);
    let once = held(&url, &tables).await;
    assert_eq!((once.rows.clone(), once.keys), (vec![n, n], empty.keys + 1), "{once:?}");
    let per_import = entries(&empty, &once);
    assert!(per_import >= n, "each expert audited: {per_import}");
    let again = import_experts(admin.clone(), request.clone()).await.unwrap();
    assert_eq!(again, first, "the first answer again");
    assert_eq!(held(&url, &tables).await, once, "no second effect");

    // 2. The same request id with other content: refused, nothing changed.
    let changes = [
        ("other rows", ImportExpertsRequest { content: experts_file(FileFormat::CsvUtf8, ROWS), ..request.clone() }),
        (
            "the same rows as XLSX",
            ImportExpertsRequest {
                format: FileFormat::Xlsx as i32,
                content: experts_file(FileFormat::Xlsx, 0),
                ..request.clone()
            },
        ),
        ("validate only", ImportExpertsRequest { validate_only: true, ..request.clone() }),
    ];
    for (what, changed) in changes {
        let refused = import_experts(admin.clone(), changed).await.expect_err(what);
        assert_eq!(refused.code(), Code::FailedPrecondition, "{what}: {refused:?}");
        assert_eq!(held(&url, &tables).await, once, "{what}: nothing changed");
    }

    // 3. Two copies of a new import at once: one answer, one effect.
    let both = ImportExpertsRequest {
        request_id: "import-experts-2".into(),
        content: experts_file(FileFormat::CsvUtf8, 2 * ROWS),
        ..request
    };
    let (a, b) = tokio::join!(import_experts(admin.clone(), both.clone()), import_experts(admin.clone(), both.clone()));
    let (a, b) = (a.unwrap(), b.unwrap());
    committed(&a);
    assert_eq!(a, b, "both copies answer the one import");
    assert_ne!(a.import_id, first.import_id);
    let twice = held(&url, &tables).await;
    assert_eq!((twice.rows.clone(), twice.keys), (vec![2 * n, 2 * n], once.keys + 1), "{twice:?}");
    assert_eq!(entries(&once, &twice), per_import, "the audit entries of one import of alike rows");
    assert_eq!(import_experts(admin, both).await.unwrap(), a, "and the same answer after");
    assert_eq!(held(&url, &tables).await, twice);
    registry.stop().await;
}

async fn import_institutions_answers_once_refuses_other_content_and_imports_once(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let admin = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let url = registry.database_url().to_owned();
    let tables = ["institutions"];
    let empty = held(&url, &tables).await;
    let n = i64::from(ROWS);

    // 1. The first import, and the same request again.
    let request = ImportInstitutionsRequest {
        request_id: "import-institutions-1".into(),
        format: FileFormat::CsvUtf8 as i32,
        content: institutions_file(FileFormat::CsvUtf8, 0),
        validate_only: false,
    };
    let first = import_institutions(admin.clone(), request.clone()).await.unwrap();
    committed(&first);
    let once = held(&url, &tables).await;
    assert_eq!((once.rows.clone(), once.keys), (vec![n], empty.keys + 1), "{once:?}");
    let per_import = entries(&empty, &once);
    assert!(per_import >= n, "each institution audited: {per_import}");
    let again = import_institutions(admin.clone(), request.clone()).await.unwrap();
    assert_eq!(again, first, "the first answer again");
    assert_eq!(held(&url, &tables).await, once, "no second effect");

    // 2. The same request id with other content: refused, nothing changed.
    let changes = [
        (
            "other rows",
            ImportInstitutionsRequest { content: institutions_file(FileFormat::CsvUtf8, ROWS), ..request.clone() },
        ),
        (
            "the same rows as GB18030",
            ImportInstitutionsRequest {
                format: FileFormat::CsvGb18030 as i32,
                content: institutions_file(FileFormat::CsvGb18030, 0),
                ..request.clone()
            },
        ),
        ("validate only", ImportInstitutionsRequest { validate_only: true, ..request.clone() }),
    ];
    for (what, changed) in changes {
        let refused = import_institutions(admin.clone(), changed).await.expect_err(what);
        assert_eq!(refused.code(), Code::FailedPrecondition, "{what}: {refused:?}");
        assert_eq!(held(&url, &tables).await, once, "{what}: nothing changed");
    }

    // 3. Two copies of a new import at once: one answer, one effect.
    let both = ImportInstitutionsRequest {
        request_id: "import-institutions-2".into(),
        content: institutions_file(FileFormat::CsvUtf8, 2 * ROWS),
        ..request
    };
    let (a, b) = tokio::join!(
        import_institutions(admin.clone(), both.clone()),
        import_institutions(admin.clone(), both.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    committed(&a);
    assert_eq!(a, b, "both copies answer the one import");
    assert_ne!(a.import_id, first.import_id);
    let twice = held(&url, &tables).await;
    assert_eq!((twice.rows.clone(), twice.keys), (vec![2 * n], once.keys + 1), "{twice:?}");
    assert_eq!(entries(&once, &twice), per_import, "the audit entries of one import of alike rows");
    assert_eq!(import_institutions(admin, both).await.unwrap(), a, "and the same answer after");
    assert_eq!(held(&url, &tables).await, twice);
    registry.stop().await;
}

/// A draft call of 2026 titled `title`, applications open from now for 15 days.
fn draft(request_id: &str, title: &str) -> CreateCallRequest {
    let now = chrono::Utc::now();
    let at = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    CreateCallRequest {
        request_id: request_id.into(),
        year: 2026,
        title: title.into(),
        body: "现面向社会公开征集职业技能培训评价社会监督专家。".into(),
        categories_sought: vec![ExpertCategory::Technician as i32],
        specialties_sought: vec![],
        industries_sought: vec!["制造业".into()],
        application_start_time: Some(at(now)),
        application_end_time: Some(at(now + Duration::days(15))),
        required_materials: vec![],
    }
}

/// An UpdateCall of call `id` setting the fields of `call` named in `paths`.
fn update(request_id: &str, id: &str, call: Call, paths: &[&str]) -> UpdateCallRequest {
    UpdateCallRequest {
        request_id: request_id.into(),
        call: Some(Call { id: id.into(), ..call }),
        update_mask: Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
    }
}

async fn update_call_answers_once_refuses_other_content_and_updates_once(backend: Backend) {
    let recruitment = spawn_recruitment(backend).await;
    let admin = RecruitmentServiceClient::new(recruitment.as_role(Role::CityAdmin, None));
    let url = recruitment.database_url().to_owned();
    let tables = ["calls"];
    let create = |request| {
        let mut admin = admin.clone();
        async move { admin.create_call(request).await.unwrap().into_inner().call.unwrap() }
    };
    let updated = |request| {
        let mut admin = admin.clone();
        async move { admin.update_call(request).await.map(tonic::Response::into_inner) }
    };
    let read = |id: String| {
        let mut admin = admin.clone();
        async move { admin.get_call(GetCallRequest { id }).await.unwrap().into_inner().call.unwrap() }
    };
    let call = create(draft("draft-1", "2026 年第三批征集通知")).await;
    let other = create(draft("draft-2", "2026 年第四批征集通知")).await;
    let drafted = held(&url, &tables).await;

    // 1. The first update, and the same request again: its answer, one audit entry, the call as
    //    the first update left it (a run afresh would write another entry and a later update time).
    let request = update(
        "update-1",
        &call.id,
        Call { title: "2026 年第三批征集通知（修订）".into(), ..Default::default() },
        &["title"],
    );
    let first: UpdateCallResponse = updated(request.clone()).await.unwrap();
    let changed = first.call.clone().unwrap();
    assert_eq!(changed.title, "2026 年第三批征集通知（修订）");
    assert_eq!(changed.body, call.body, "fields outside the mask kept");
    let once = held(&url, &tables).await;
    assert_eq!((once.keys, entries(&drafted, &once)), (drafted.keys + 1, 1), "{once:?}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(updated(request.clone()).await.unwrap(), first, "the first answer again");
    assert_eq!(held(&url, &tables).await, once, "no second effect");
    assert_eq!(read(call.id.clone()).await, changed);

    // 2. The same request id with other content: refused, nothing changed, neither call.
    let otherwise = |call: Call, paths: &[&str]| UpdateCallRequest {
        call: Some(call),
        update_mask: Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
        ..request.clone()
    };
    let base = request.call.clone().unwrap();
    let changes = [
        ("another title", otherwise(Call { title: "另一个标题".into(), ..base.clone() }, &["title"])),
        ("the body as well", otherwise(Call { body: "新的正文。".into(), ..base.clone() }, &["title", "body"])),
        ("another call", otherwise(Call { id: other.id.clone(), ..base }, &["title"])),
    ];
    for (what, changed_request) in changes {
        let refused = updated(changed_request).await.expect_err(what);
        assert_eq!(refused.code(), Code::FailedPrecondition, "{what}: {refused:?}");
        assert_eq!(held(&url, &tables).await, once, "{what}: nothing changed");
        assert_eq!(read(call.id.clone()).await, changed, "{what}: the call as the first update left it");
        assert_eq!(read(other.id.clone()).await, other, "{what}: the other call untouched");
    }

    // 3. Two copies of a new update at once: one answer, one audit entry.
    let both = update(
        "update-2",
        &call.id,
        Call { body: "报名时间与材料要求见附件。".into(), ..Default::default() },
        &["body"],
    );
    let (a, b) = tokio::join!(updated(both.clone()), updated(both.clone()));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both copies answer the one update");
    let now = a.call.clone().unwrap();
    assert_eq!((now.title.as_str(), now.body.as_str()), (changed.title.as_str(), "报名时间与材料要求见附件。"));
    let twice = held(&url, &tables).await;
    assert_eq!((twice.rows.clone(), twice.keys, entries(&once, &twice)), (vec![2], once.keys + 1, 1), "{twice:?}");
    assert_eq!(read(call.id.clone()).await, now);
    assert_eq!(updated(both).await.unwrap(), a, "and the same answer after");
    assert_eq!(held(&url, &tables).await, twice);
    recruitment.stop().await;
}
