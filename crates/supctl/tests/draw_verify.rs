//! `supctl draw verify` recomputes an executed draw client-side from its export: an intact draw
//! verifies; after the stored order is reordered or the revealed seed is changed in dispatch's
//! database, it fails with a non-zero exit and names the mismatch. `draw export` writes both files.

use std::process::Command;

use supervision_proto::{
    common::{
        self, BureauCode, CivilServantStatus, ContactDetails, Date, ExpertCategory, ExpertKind, FundSource, HalfDay,
        IdentityDocument, IdentityDocumentType, Locality, Organisation, locality::Place,
    },
    dispatch::{
        Activity, ActivityKind, ActivitySubject, CreateTaskRequest, ExecuteDrawRequest, PrepareDrawRequest, TaskMode,
        TaskOrigin, TaskSession, WitnessDrawRequest, dispatch_service_client::DispatchServiceClient,
    },
    registry::{
        AppointExpertRequest, CategoryHolding, CreateInstitutionRequest, ExpertProfile, InstitutionType,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    Backend, Bureau, Role, RunningService, on_both_backends, service_acting_for, spawn_dispatch_with_registry, token,
};

on_both_backends!(an_intact_draw_verifies, a_swapped_order_is_named, a_changed_seed_is_named);

/// A valid resident identity number (GB 11643 check character) for person `n`.
fn resident(n: u32) -> String {
    let body = format!("44070319800101{:03}", n % 1000);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    format!("{body}{check}")
}

/// Appoints expert `n` (term from 2025-06-01) with an employer of their own.
async fn appoint(registry: &RunningService, n: u32) {
    let mut recruitment =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "recruitment", Role::CityAdmin, None));
    let application = format!("app_{}", uuid::Uuid::now_v7().simple());
    let profile = ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("专家{n}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: resident(n),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
        contact: Some(ContactDetails { mobile: "13812345678".into(), ..Default::default() }),
        employer: Some(common::Employer {
            organisation: Some(Organisation {
                name: format!("江门市第{n}职业学校"),
                credit_code: String::new(),
                institution_id: String::new(),
            }),
            post: "教师".into(),
            since: Some(Date { year: 2015, month: 9, day: 1 }),
            employer_key: String::new(),
        }),
        categories: vec![CategoryHolding {
            category: ExpertCategory::Technician as i32,
            evidence: Some(common::Evidence { description: "技师证".into(), documents: vec![] }),
            verified: true,
            ..Default::default()
        }],
        ..Default::default()
    };
    let request = AppointExpertRequest {
        request_id: application.clone(),
        application_id: application,
        profile: Some(profile),
        civil_servant_status: CivilServantStatus::None as i32,
        decision_date: Some(Date { year: 2025, month: 6, day: 1 }),
        term_start: None,
        replaces_expert_id: String::new(),
    };
    recruitment.appoint_expert(request).await.unwrap();
}

/// Six experts, a task at a Pengjiang school on Monday 2026-06-08, and its draw prepared by one
/// operator, witnessed with dice by another and executed; returns the services and the draw id.
async fn executed_draw(backend: Backend) -> (RunningService, RunningService, String) {
    let (registry, dispatch) = spawn_dispatch_with_registry(backend).await;
    // Dispatch's clock: Monday 2026-06-01, a week before the session.
    let target = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 6, 1, 2, 0, 0).unwrap();
    dispatch.set_clock_offset((target - chrono::Utc::now()).num_seconds());
    let mut institutions = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let school = institutions
        .create_institution(CreateInstitutionRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            r#type: InstitutionType::VocationalTrainingSchool as i32,
            name: "蓬江职业培训学校".into(),
            credit_code: "91440703MA4W00001M".into(),
            parent_id: String::new(),
            county: BureauCode::Pengjiang as i32,
            address: "江门市".into(),
            head: "李校长".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap()
        .id;
    for n in 1..7 {
        appoint(&registry, n).await;
    }

    let mut operator =
        DispatchServiceClient::new(dispatch.as_user("operator-a", Role::CountyOperator, Some(Bureau::Pengjiang)));
    let mut colleague =
        DispatchServiceClient::new(dispatch.as_user("operator-b", Role::CountyOperator, Some(Bureau::Pengjiang)));
    let task = CreateTaskRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        dispatching_bureau: BureauCode::Pengjiang as i32,
        institution_id: school,
        title: "电工职业技能等级认定考核现场监督".into(),
        activity: Some(Activity {
            subject: ActivitySubject::SkillLevel as i32,
            kind: ActivityKind::Assessment as i32,
            reference: "2026-电工-03批".into(),
            description: String::new(),
        }),
        mode: TaskMode::OnSite as i32,
        origin: TaskOrigin::Routine as i32,
        sessions: vec![TaskSession {
            date: Some(Date { year: 2026, month: 6, day: 8 }),
            half_day: HalfDay::Am as i32,
            ..Default::default()
        }],
        fund_source: FundSource::CityCountyEmployment as i32,
        ..Default::default()
    };
    let task_id = operator.create_task(task).await.unwrap().into_inner().task.unwrap().id;
    let prepare = PrepareDrawRequest { request_id: "prep-1".into(), task_id, kind: 0 };
    let draw_id = operator.prepare_draw(prepare).await.unwrap().into_inner().draw.unwrap().id;
    let witness = WitnessDrawRequest {
        request_id: "wit-1".into(),
        draw_id: draw_id.clone(),
        dice_digits: "31415926535897932384".into(),
    };
    colleague.witness_draw(witness).await.unwrap();
    let execute = ExecuteDrawRequest { request_id: "exec-1".into(), draw_id: draw_id.clone() };
    operator.execute_draw(execute).await.unwrap();
    (registry, dispatch, draw_id)
}

/// Runs supctl against `dispatch` as an auditor; returns (success, stdout, stderr).
fn supctl(dispatch: &RunningService, args: &[&str]) -> (bool, String, String) {
    supctl_with(dispatch, None, &token(Role::Auditor, None), args)
}

/// Runs supctl against `dispatch` (and `registry`, when given) with `token`.
fn supctl_with(
    dispatch: &RunningService,
    registry: Option<&RunningService>,
    token: &str,
    args: &[&str],
) -> (bool, String, String) {
    let registry = registry.map(|r| format!("http://{}", r.addr)).unwrap_or_else(|| "http://127.0.0.1:1".into());
    let output = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--output", "json", "--dispatch", &format!("http://{}", dispatch.addr), "--registry", &registry])
        .args(["--token", token])
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

async fn pool(dispatch: &RunningService) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(dispatch.database_url()).await.unwrap()
}

async fn an_intact_draw_verifies(backend: Backend) {
    let (registry, dispatch, draw_id) = executed_draw(backend).await;
    let (ok, stdout, stderr) = supctl(&dispatch, &["draw", "verify", &draw_id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"verified\": true") && stdout.contains("\"order\": 6"), "{stdout}");

    let (ok, stdout, stderr) = supctl(&dispatch, &["draw", "show", &draw_id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"status\": \"EXECUTED\"") && !stdout.contains("专家"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (ok, stdout, stderr) = supctl(&dispatch, &["draw", "export", &draw_id, "--out", out]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("consistent_sampler"), "{stdout}");
    // With a Python that has PyPI consistent-sampler 1.0.10, the printed line re-runs the draw.
    if let Ok(python) = std::env::var("CONSISTENT_SAMPLER_PYTHON") {
        let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let line = printed["rerun"].as_str().unwrap().replacen("python3", &python, 1);
        let rerun = Command::new("sh").args(["-c", &line]).output().unwrap();
        let said = String::from_utf8_lossy(&rerun.stdout);
        assert!(
            rerun.status.success() && said.trim() == "order matches",
            "{said}{}",
            String::from_utf8_lossy(&rerun.stderr)
        );
    }
    let list = std::fs::read_to_string(dir.path().join("frozen_list.txt")).unwrap();
    assert_eq!(list.lines().count(), 6);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("{draw_id}.json"))).unwrap()).unwrap();
    assert_eq!(record["draw_id"], draw_id.as_str());

    // The task and the experts behind it, the experts masked as the registry returns them.
    let task_id = record["task_id"].as_str().unwrap();
    let (ok, stdout, stderr) = supctl(&dispatch, &["task", "list", "--bureau", "440703", "--status", "staffing"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(task_id), "{stdout}");
    let (ok, stdout, stderr) = supctl(&dispatch, &["task", "list", "--bureau", "蓬江区", "--status", "cancelled"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "[]");
    let (ok, stdout, stderr) = supctl(&dispatch, &["task", "get", task_id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(task_id) && stdout.contains("2026-06-08 AM"), "{stdout}");
    // A county operator sees personal data masked.
    let county = token(Role::CountyOperator, Some(Bureau::Pengjiang));
    let (ok, stdout, stderr) = supctl_with(
        &dispatch,
        Some(&registry),
        &county,
        &["expert", "list", "--county", "新会区", "--status", "active"],
    );
    assert!(ok, "{stderr}");
    let experts: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(experts.len(), 6, "{stdout}");
    let first = experts[0]["id"].as_str().unwrap();
    let (ok, stdout, stderr) = supctl_with(&dispatch, Some(&registry), &county, &["expert", "get", first]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(first) && !(1..7).any(|n| stdout.contains(&resident(n))), "{stdout}");
    let (ok, _, stderr) = supctl_with(&dispatch, Some(&registry), &county, &["expert", "get", "exp_missing"]);
    assert!(!ok && stderr.contains("error"), "{stderr}");
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_swapped_order_is_named(backend: Backend) {
    let (registry, dispatch, draw_id) = executed_draw(backend).await;
    let pool = pool(&dispatch).await;
    let order: String = sqlx::Row::get(
        &sqlx::query("SELECT draw_order FROM draws WHERE id = $1").bind(&draw_id).fetch_one(&pool).await.unwrap(),
        0,
    );
    let mut lines: Vec<&str> = order.lines().collect();
    lines.swap(0, 1);
    let swapped = lines.join("\n") + if order.ends_with('\n') { "\n" } else { "" };
    let affected = sqlx::query("UPDATE draws SET draw_order = $1 WHERE id = $2")
        .bind(swapped)
        .bind(&draw_id)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(affected, 1);
    pool.close().await;

    let (ok, stdout, stderr) = supctl(&dispatch, &["draw", "verify", &draw_id]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("order position 0") && stderr.contains("order position 1"), "{stderr}");
    assert!(stdout.contains("\"verified\": false"), "{stdout}");
    registry.stop().await;
    dispatch.stop().await;
}

async fn a_changed_seed_is_named(backend: Backend) {
    let (registry, dispatch, draw_id) = executed_draw(backend).await;
    let pool = pool(&dispatch).await;
    let affected = sqlx::query("UPDATE draws SET server_seed = $1 WHERE id = $2")
        .bind("00".repeat(32))
        .bind(&draw_id)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(affected, 1);
    pool.close().await;

    let (ok, _, stderr) = supctl(&dispatch, &["draw", "verify", &draw_id]);
    assert!(!ok);
    assert!(stderr.contains("not to the published commitment"), "{stderr}");
    registry.stop().await;
    dispatch.stop().await;
}
