//! `supctl audit verify` passes an intact chain and, after an edit, a deletion (also of the
//! last entry) or an insertion in the database, fails and names the entry.

use std::process::Command;

use supervision_proto::{
    common::BureauCode,
    registry::{CreateInstitutionRequest, InstitutionType, registry_service_client::RegistryServiceClient},
};
use testkit::{Backend, Role, RunningService, on_both_backends, spawn_registry, token};

on_both_backends!(
    an_intact_chain_verifies,
    an_edited_entry_is_named,
    a_deleted_last_entry_is_named,
    an_inserted_entry_is_named
);

const CODES: [&str; 3] = ["91350100M000100Y43", "91110000600037341L", "91110108551385082Q"];

async fn registry_with_three_entries(backend: Backend) -> RunningService {
    let registry = spawn_registry(backend).await;
    let mut client = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    for (i, code) in CODES.iter().enumerate() {
        client
            .create_institution(CreateInstitutionRequest {
                request_id: format!("audit-{i}"),
                r#type: InstitutionType::TrainingBase as i32,
                name: format!("培训基地{i}"),
                credit_code: (*code).into(),
                county: BureauCode::Jianghai as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    registry
}

/// Runs `supctl audit verify` against `registry` as an auditor; returns (success, stdout, stderr).
fn verify(registry: &RunningService) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .args(["--output", "json", "--registry", &format!("http://{}", registry.addr)])
        .args(["--token", &token(Role::Auditor, None)])
        .args(["--config", "/dev/null", "audit", "verify", "--service", "registry"])
        .output()
        .expect("supctl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn tamper(registry: &RunningService, sql: &'static str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    let affected = sqlx::query(sql).execute(&pool).await.unwrap().rows_affected();
    assert_eq!(affected, 1, "the tampering touched one row: {sql}");
    pool.close().await;
}

async fn an_intact_chain_verifies(backend: Backend) {
    let registry = registry_with_three_entries(backend).await;
    let (ok, stdout, stderr) = verify(&registry);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"intact\"") && stdout.contains("\"entries\": 3"), "{stdout}");
    registry.stop().await;
}

async fn an_edited_entry_is_named(backend: Backend) {
    let registry = registry_with_three_entries(backend).await;
    tamper(&registry, "UPDATE kit_audit_log SET after_json = '{\"name\":\"篡改\"}' WHERE seq = 2").await;
    let (ok, _, stderr) = verify(&registry);
    assert!(!ok);
    assert!(stderr.contains("entry 2"), "{stderr}");
    registry.stop().await;
}

async fn a_deleted_last_entry_is_named(backend: Backend) {
    let registry = registry_with_three_entries(backend).await;
    tamper(&registry, "DELETE FROM kit_audit_log WHERE seq = 3").await;
    let (ok, _, stderr) = verify(&registry);
    assert!(!ok);
    assert!(stderr.contains("entry 3"), "{stderr}");
    registry.stop().await;
}

async fn an_inserted_entry_is_named(backend: Backend) {
    let registry = registry_with_three_entries(backend).await;
    tamper(
        &registry,
        "INSERT INTO kit_audit_log (seq, at, caller_subject, caller_role, actor_subject, actor_role, actor_bureau, \
         method, request_id, entity_type, entity_id, action, before_json, after_json, prev_hash, hash) \
         SELECT 4, at, caller_subject, caller_role, actor_subject, actor_role, actor_bureau, method, 'forged', \
         entity_type, 'ins_forged', action, before_json, after_json, prev_hash, hash FROM kit_audit_log WHERE seq = 3",
    )
    .await;
    let (ok, _, stderr) = verify(&registry);
    assert!(!ok);
    assert!(stderr.contains("entry 4"), "{stderr}");
    registry.stop().await;
}
