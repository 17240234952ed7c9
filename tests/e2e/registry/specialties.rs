//! ListSpecialties and the specialty-code rule (docs/registry-rules.md "Specialty codes"): the 8
//! major groups of the 2022 occupational classification are built in; the bureau installs the
//! full list as `specialties.csv` in the policy directory; codes are checked for format always and
//! for membership where the installed list has that detail.

use chrono::Duration;
use supervision_proto::{
    common::{CivilServantStatus, EntryChannel, FileFormat, OnBehalf, PageRequest, Specialty, SpecialtyCode},
    registry::{
        CreateExpertRequest, GetExpertRequest, ImportExpertsRequest, ImportResult, ListAuditEntriesRequest,
        ListExpertsRequest, ListSpecialtiesRequest, UpdateExpertRequest, import_experts_response::Event,
        registry_service_client::RegistryServiceClient,
    },
};
use supervision_registry::{sheets, transfer};
use testkit::{Backend, Role, RunningService, TestDb, on_both_backends, spawn_registry, spawn_registry_with};
use tonic::Code;
use tonic_types::StatusExt;

use crate::{
    appointments::{admin, appoint_request, date, id, profile, recruitment, violated_fields},
    import_export::expert_row,
};

on_both_backends!(
    the_major_groups_are_listed_in_code_order_a_page_at_a_time,
    an_installed_list_is_served_and_checked,
    appointments_and_imports_are_checked_against_the_installed_list,
);

fn list_request(size: i32, token: &str, prefix: &str, name: &str) -> ListSpecialtiesRequest {
    ListSpecialtiesRequest {
        page: Some(PageRequest { page_size: size, page_token: token.into() }),
        code_prefix: prefix.into(),
        name_contains: name.into(),
    }
}

/// Every code of a listing, following the pages.
async fn codes(registry: &RunningService, role: Role, size: i32, prefix: &str, name: &str) -> Vec<String> {
    let mut client = RegistryServiceClient::new(registry.as_role(role, None));
    let (mut out, mut token) = (Vec::new(), String::new());
    loop {
        let page = client.list_specialties(list_request(size, &token, prefix, name)).await.unwrap().into_inner();
        assert!(page.specialties.len() <= size as usize);
        assert!(page.specialties.iter().all(|s| !s.name.is_empty()), "every entry has its name");
        out.extend(page.specialties.into_iter().map(|s| s.code));
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

fn with_specialties(codes: &[&str]) -> CreateExpertRequest {
    let mut p = profile("周强", "110101199003074952");
    p.specialties = codes
        .iter()
        .map(|c| Specialty {
            code: Some(SpecialtyCode { code: (*c).into(), name: String::new() }),
            ..Default::default()
        })
        .collect();
    CreateExpertRequest {
        request_id: id(),
        profile: Some(p),
        civil_servant_status: CivilServantStatus::None as i32,
        ..Default::default()
    }
}

async fn the_major_groups_are_listed_in_code_order_a_page_at_a_time(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let all = codes(&registry, Role::Applicant, 3, "", "").await;
    assert_eq!(all, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    assert_eq!(codes(&registry, Role::Expert, 50, "2", "").await, ["2"]);
    assert_eq!(codes(&registry, Role::CityReviewer, 50, "", "专业技术").await, ["2"]);
    let mut client = RegistryServiceClient::new(registry.as_role(Role::CityOperator, None));
    let first = client.list_specialties(list_request(2, "", "", "")).await.unwrap().into_inner();
    assert_eq!(first.specialties[1].name, "专业技术人员");
    for (bad, field) in [
        (list_request(0, "", "4-7", ""), "code_prefix"),
        (list_request(0, "not-a-code", "", ""), "page.page_token"),
        (list_request(501, "", "", ""), "page.page_size"),
    ] {
        let err = client.list_specialties(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&err), [field]);
    }
    // Without an installed list any well-formed code is taken; a malformed one never is.
    admin(&registry).create_expert(with_specialties(&["4-07-05-01"])).await.unwrap();
    let err = admin(&registry).create_expert(with_specialties(&["9-01"])).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["profile.specialties[0].code"]);
}

/// A registry with a specialty list installed that has detail under major group 4 only (the
/// directory is kept until the test ends).
async fn spawn_with_installed_list(backend: Backend) -> (RunningService, tempfile::TempDir) {
    // The bureau's file in the shape it installs; the names are test placeholders.
    let policy = tempfile::tempdir().unwrap();
    std::fs::write(
        policy.path().join("specialties.csv"),
        "code,name\n4-07,测试中类甲\n4-07-05,测试小类甲\n4-07-05-01,测试职业甲\n",
    )
    .unwrap();
    let reference = supervision_reference::ReferenceArgs {
        calendar_data_dir: None,
        policy_data_dir: Some(policy.path().to_owned()),
    };
    (spawn_registry_with(TestDb::new(backend).await, "127.0.0.1:0", reference).await, policy)
}

async fn an_installed_list_is_served_and_checked(backend: Backend) {
    let (registry, _policy) = spawn_with_installed_list(backend).await;
    assert_eq!(codes(&registry, Role::Service, 2, "4", "").await, ["4", "4-07", "4-07-05", "4-07-05-01"]);
    assert_eq!(codes(&registry, Role::Auditor, 50, "", "职业甲").await, ["4-07-05-01"]);

    // Group 4 has detail: a middle group the list does not hold is refused, and nothing is stored.
    let err = admin(&registry).create_expert(with_specialties(&["2-01", "4-08-01"])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["profile.specialties[1].code"]);
    assert!(err.get_error_details().bad_request().unwrap().field_violations[0].description.contains("4-08"));
    // Listed codes, and codes under groups the list has no detail for, are taken.
    let created = admin(&registry)
        .create_expert(with_specialties(&["4-07-05-01", "2-01"]))
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap();

    // An update is checked against the same list, and a refused one changes nothing.
    let changed = with_specialties(&["4-08-01"]).profile.unwrap();
    let update = UpdateExpertRequest {
        request_id: id(),
        id: created.id.clone(),
        profile: Some(changed),
        update_mask: Some(prost_types::FieldMask { paths: vec!["specialties".into()] }),
        expected_revision: created.revision,
        reason: "专业变更".into(),
        on_behalf: Some(OnBehalf {
            channel: EntryChannel::Phone as i32,
            received_time: Some(prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 60, nanos: 0 }),
            note: "本人来电".into(),
        }),
    };
    let err = admin(&registry).update_expert(update).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(violated_fields(&err).iter().any(|f| f.contains("specialties")), "{:?}", violated_fields(&err));
    let again = admin(&registry)
        .get_expert(GetExpertRequest { id: created.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .expert
        .unwrap();
    assert_eq!(again.revision, created.revision, "a refused update writes nothing");
}

/// How many experts the registry holds, and how many audit entries it keeps for experts.
async fn experts_and_their_audit_entries(registry: &RunningService) -> (usize, usize) {
    let mut c = admin(registry);
    let page = Some(PageRequest { page_size: 500, page_token: String::new() });
    let experts = c.list_experts(ListExpertsRequest { page, ..Default::default() }).await.unwrap().into_inner();
    let entries = c
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "expert".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    (experts.experts.len(), entries.entries.len())
}

/// The result of an import of `rows` (an UTF-8 CSV), read to the end of its stream.
async fn import(registry: &RunningService, rows: &[Vec<String>]) -> ImportResult {
    let content = sheets::write(FileFormat::CsvUtf8, transfer::EXPERT_COLUMNS, rows).unwrap();
    let req =
        ImportExpertsRequest { request_id: id(), format: FileFormat::CsvUtf8 as i32, content, validate_only: false };
    let mut stream = admin(registry).import_experts(req).await.unwrap().into_inner();
    let mut result = None;
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(Event::Result(r)) = message.event {
            result = Some(r);
        }
    }
    result.expect("a result ends the stream")
}

async fn appointments_and_imports_are_checked_against_the_installed_list(backend: Backend) {
    let (registry, _policy) = spawn_with_installed_list(backend).await;

    // AppointExpert: a middle group of group 4 the list does not hold is refused, nothing stored.
    let mut req = appoint_request("吴敏", "440703198506150029", date(2026, 3, 2));
    let with_codes = |req: &mut supervision_proto::registry::AppointExpertRequest, codes: &[&str]| {
        req.profile.as_mut().unwrap().specialties = with_specialties(codes).profile.unwrap().specialties;
    };
    with_codes(&mut req, &["6-18", "4-08-01"]);
    let err = recruitment(&registry).appoint_expert(req.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["profile.specialties[1].code"]);
    assert!(err.get_error_details().bad_request().unwrap().field_violations[0].description.contains("4-08"));
    assert_eq!(experts_and_their_audit_entries(&registry).await, (0, 0), "a refused appointment writes nothing");
    // The same appointment with a listed code goes through.
    let mut req = appoint_request("吴敏", "440703198506150029", date(2026, 3, 2));
    with_codes(&mut req, &["6-18", "4-07-05-01"]);
    let appointed = recruitment(&registry).appoint_expert(req).await.unwrap().into_inner().expert.unwrap();
    let codes: Vec<String> = appointed.profile.unwrap().specialties.into_iter().map(|s| s.code.unwrap().code).collect();
    assert_eq!(codes, ["6-18", "4-07-05-01"]);
    let (experts, entries) = experts_and_their_audit_entries(&registry).await;
    assert_eq!(experts, 1);

    // ImportExperts: a row with an unlisted code is named, and the whole file imports nothing.
    let decided = (chrono::Utc::now() + Duration::hours(8)).date_naive() - Duration::days(200);
    let specialties = transfer::EXPERT_COLUMNS.iter().position(|c| *c == "specialties").unwrap();
    let mut rows: Vec<Vec<String>> = (100..103).map(|n| expert_row(n, decided, 1, "")).collect();
    assert_eq!(rows[0][specialties], "4-07-05-01;6-18", "the rows hold listed codes");
    rows[1][specialties] = "6-18;4-08-01".into();
    let result = import(&registry, &rows).await;
    assert!(!result.committed);
    assert_eq!(result.rows_imported, 0);
    let named: Vec<(i32, &str)> = result.errors.iter().map(|e| (e.row, e.column.as_str())).collect();
    assert_eq!(named, [(3, "specialties")], "{:?}", result.errors);
    assert!(result.errors[0].message.contains("4-08"), "{:?}", result.errors[0]);
    assert_eq!(experts_and_their_audit_entries(&registry).await, (1, entries), "a refused import writes nothing");
    // With the code listed, the same rows import.
    rows[1][specialties] = "6-18;4-07-05".into();
    let result = import(&registry, &rows).await;
    assert!(result.committed, "{:?}", result.errors);
    assert_eq!(result.rows_imported, 3);
    assert_eq!(experts_and_their_audit_entries(&registry).await.0, 4);
}
