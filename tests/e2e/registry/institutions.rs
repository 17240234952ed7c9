//! Create, get and list institutions (article 3, D20) through the public API.

use supervision_proto::{
    common::{BureauCode, PageRequest},
    registry::{
        CreateInstitutionRequest, GetInstitutionRequest, Institution, InstitutionStatus, InstitutionType,
        ListAuditEntriesRequest, ListInstitutionsRequest, UpdateInstitutionRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, spawn_registry};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    a_created_institution_can_be_read_back,
    a_wrong_check_character_is_refused_naming_the_field,
    a_credit_code_is_registered_once,
    a_sub_unit_hangs_under_a_legal_entity,
    listing_pages_through_everything_once_in_creation_order,
    listing_filters_by_county_type_and_name,
    an_unknown_or_malformed_id_is_answered_precisely,
    an_update_changes_the_named_fields_and_keeps_the_change_in_the_audit_chain,
    two_institutions_made_each_others_sub_unit_at_once_make_no_cycle,
);

/// Valid credit codes (check characters computed per GB 32100), one per test institution.
const CODES: [&str; 3] = ["91350100M000100Y43", "91110000600037341L", "91110108551385082Q"];

fn school(code: &str, county: BureauCode, name: &str) -> CreateInstitutionRequest {
    CreateInstitutionRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        r#type: InstitutionType::VocationalTrainingSchool as i32,
        name: name.into(),
        credit_code: code.into(),
        parent_id: String::new(),
        county: county as i32,
        address: "江门市蓬江区建设路 1 号".into(),
        head: "李校长".into(),
    }
}

fn client(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None))
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

async fn a_created_institution_can_be_read_back(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let created = c
        .create_institution(school(" 91350100-m000100y43 ", BureauCode::Xinhui, "新会职业培训学校"))
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap();
    assert!(created.id.starts_with("ins_"));
    assert_eq!(created.credit_code, "91350100M000100Y43", "the code is stored normalised");
    assert_eq!(created.status, InstitutionStatus::Active as i32);
    assert!(created.create_time.is_some());

    let read = c
        .get_institution(GetInstitutionRequest { id: created.id.clone() })
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap();
    assert_eq!(read, created);
    registry.stop().await;
}

async fn a_wrong_check_character_is_refused_naming_the_field(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let err = c.create_institution(school("91350100M000100Y44", BureauCode::Xinhui, "校")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["credit_code"]);

    let listed = c.list_institutions(ListInstitutionsRequest::default()).await.unwrap().into_inner();
    assert!(listed.institutions.is_empty(), "a refused request changes nothing");
    registry.stop().await;
}

async fn a_credit_code_is_registered_once(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    c.create_institution(school(CODES[0], BureauCode::Xinhui, "甲")).await.unwrap();
    let err = c.create_institution(school(CODES[0], BureauCode::Heshan, "乙")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let info = err.get_error_details().error_info().cloned().expect("error info");
    assert_eq!(info.reason, "CREDIT_CODE_TAKEN");
    registry.stop().await;
}

async fn a_sub_unit_hangs_under_a_legal_entity(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let parent = c
        .create_institution(school(CODES[0], BureauCode::Kaiping, "开平技工学校"))
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap();
    let studio_request = CreateInstitutionRequest {
        r#type: InstitutionType::Studio as i32,
        credit_code: String::new(),
        parent_id: parent.id.clone(),
        ..school("", BureauCode::Kaiping, "开平技工学校技能大师工作室")
    };
    let studio = c.create_institution(studio_request.clone()).await.unwrap().into_inner().institution.unwrap();
    assert_eq!(studio.parent_id, parent.id);
    assert!(studio.credit_code.is_empty());

    let nested = CreateInstitutionRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        parent_id: studio.id.clone(),
        ..studio_request.clone()
    };
    let err = c.create_institution(nested).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a sub-unit cannot be a parent");

    let orphan = CreateInstitutionRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        parent_id: "ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into(),
        ..studio_request
    };
    let err = c.create_institution(orphan).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["parent_id"]);
    registry.stop().await;
}

async fn listing_pages_through_everything_once_in_creation_order(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let parent = c
        .create_institution(school(CODES[1], BureauCode::Taishan, "台山培训中心"))
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap();
    let mut created = vec![parent.id.clone()];
    for i in 0..6 {
        let sub = CreateInstitutionRequest {
            r#type: InstitutionType::TrainingBase as i32,
            credit_code: String::new(),
            parent_id: parent.id.clone(),
            ..school("", BureauCode::Taishan, &format!("培训基地{i}"))
        };
        created.push(c.create_institution(sub).await.unwrap().into_inner().institution.unwrap().id);
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_institutions(ListInstitutionsRequest {
                page: Some(PageRequest { page_size: 3, page_token: token.clone() }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.institutions.len() <= 3);
        seen.extend(page.institutions.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, created);
    registry.stop().await;
}

async fn listing_filters_by_county_type_and_name(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    c.create_institution(school(CODES[0], BureauCode::Enping, "恩平市职业培训学校")).await.unwrap();
    let mut college = school(CODES[1], BureauCode::Enping, "恩平市技师学院");
    college.r#type = InstitutionType::TechnicalSchool as i32;
    c.create_institution(college).await.unwrap();
    c.create_institution(school(CODES[2], BureauCode::Heshan, "鹤山市100%培训学校")).await.unwrap();

    let names = |resp: supervision_proto::registry::ListInstitutionsResponse| -> Vec<String> {
        resp.institutions.into_iter().map(|i| i.name).collect()
    };
    let by_county = c
        .list_institutions(ListInstitutionsRequest { county: BureauCode::Enping as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(by_county), ["恩平市职业培训学校", "恩平市技师学院"]);

    let by_type = c
        .list_institutions(ListInstitutionsRequest {
            r#type: InstitutionType::TechnicalSchool as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(by_type), ["恩平市技师学院"]);

    let by_name = c
        .list_institutions(ListInstitutionsRequest { name_contains: "100%".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(by_name), ["鹤山市100%培训学校"]);

    let err = c
        .list_institutions(ListInstitutionsRequest {
            county: BureauCode::JiangmenCity as i32,
            page: Some(PageRequest { page_size: 10_000, page_token: "garbage".into() }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["page.page_size", "page.page_token", "county"]);
    registry.stop().await;
}

async fn an_unknown_or_malformed_id_is_answered_precisely(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let err = c
        .get_institution(GetInstitutionRequest { id: "ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c.get_institution(GetInstitutionRequest { id: "1; DROP TABLE institutions".into() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["id"]);
    registry.stop().await;
}

fn update(id: &str, values: Institution, paths: &[&str], reason: &str) -> UpdateInstitutionRequest {
    UpdateInstitutionRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        institution: Some(Institution { id: id.into(), ..values }),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() }),
        reason: reason.into(),
    }
}

async fn an_update_changes_the_named_fields_and_keeps_the_change_in_the_audit_chain(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let create = |req| {
        let mut c = c.clone();
        async move { c.create_institution(req).await.unwrap().into_inner().institution.unwrap() }
    };
    let a = create(school(CODES[0], BureauCode::Pengjiang, "甲学校")).await;
    let b = create(school(CODES[1], BureauCode::Pengjiang, "乙学校")).await;
    let mut studio = school("", BureauCode::Pengjiang, "甲学校工作室");
    studio.parent_id = a.id.clone();
    studio.r#type = InstitutionType::Studio as i32;
    create(studio).await;

    // Only the named fields change; the rest stay as stored.
    let values = Institution {
        name: "江门市甲职业培训学校".into(),
        head: "王校长".into(),
        address: "ignored".into(),
        ..Default::default()
    };
    let req = update(&a.id, values, &["name", "head"], "更名");
    let changed = c.update_institution(req.clone()).await.unwrap().into_inner().institution.unwrap();
    assert_eq!((changed.name.as_str(), changed.head.as_str()), ("江门市甲职业培训学校", "王校长"));
    assert_eq!((changed.address.as_str(), changed.credit_code.as_str()), (a.address.as_str(), a.credit_code.as_str()));
    // A retry answers the first answer.
    let again = c.update_institution(req).await.unwrap().into_inner().institution.unwrap();
    assert_eq!(again, changed);

    // Closing it; the audit chain keeps each change with its reason, before and after.
    let closed = Institution { status: InstitutionStatus::Closed as i32, ..Default::default() };
    let closed = c.update_institution(update(&a.id, closed, &["status"], "注销")).await.unwrap().into_inner();
    assert_eq!(closed.institution.unwrap().status, InstitutionStatus::Closed as i32);
    let entries = c
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "institution".into(),
            entity_id: a.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "update", "update"]);
    assert!(entries[1].before_json.contains("甲学校") && entries[1].after_json.contains("更名"), "{:?}", entries[1]);

    // Bad requests are named and change nothing.
    let err = c.update_institution(update(&a.id, Institution::default(), &["colour"], "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["update_mask", "reason"]);
    let sub = Institution { parent_id: b.id.clone(), ..Default::default() };
    let err = c.update_institution(update(&a.id, sub, &["credit_code", "parent_id"], "并入")).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["institution.parent_id"], "a legal entity with sub-units stays one");
    let taken = Institution { credit_code: CODES[0].into(), ..Default::default() };
    let err = c.update_institution(update(&b.id, taken, &["credit_code"], "改码")).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let missing = "ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f";
    let err = c.update_institution(update(missing, Institution::default(), &["name"], "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // A county edits only its own county's institutions and keeps them there.
    let mut xinhui = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Xinhui)));
    let renamed = Institution { name: "乙".into(), ..Default::default() };
    let err = xinhui.update_institution(update(&b.id, renamed.clone(), &["name"], "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut pengjiang = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(Bureau::Pengjiang)));
    let moved = Institution { county: BureauCode::Xinhui as i32, ..Default::default() };
    let err = pengjiang.update_institution(update(&b.id, moved, &["county"], "迁址")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let ok = pengjiang.update_institution(update(&b.id, renamed, &["name"], "简称")).await.unwrap().into_inner();
    assert_eq!(ok.institution.unwrap().name, "乙");
}

async fn two_institutions_made_each_others_sub_unit_at_once_make_no_cycle(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = client(&registry);
    let mut made = Vec::new();
    for (code, name) in [(CODES[0], "开平技工学校"), (CODES[1], "台山职业培训学校")] {
        made.push(
            c.create_institution(school(code, BureauCode::Kaiping, name))
                .await
                .unwrap()
                .into_inner()
                .institution
                .unwrap(),
        );
    }
    let (a, b) = (&made[0], &made[1]);
    let under = |parent: &str| Institution { parent_id: parent.into(), ..Default::default() };
    let (mut one, mut two) = (c.clone(), c.clone());
    let (first, second) = tokio::join!(
        one.update_institution(update(&a.id, under(&b.id), &["credit_code", "parent_id"], "并入")),
        two.update_institution(update(&b.id, under(&a.id), &["credit_code", "parent_id"], "并入")),
    );
    let lost = match (first, second) {
        (Ok(_), Err(lost)) | (Err(lost), Ok(_)) => lost,
        other => panic!("exactly one of the crossing updates succeeds: {other:?}"),
    };
    assert!(
        matches!(lost.code(), Code::FailedPrecondition | Code::InvalidArgument),
        "{:?}: {}",
        lost.code(),
        lost.message()
    );
    let mut parents = Vec::new();
    for id in [&a.id, &b.id] {
        let got = c.get_institution(GetInstitutionRequest { id: id.clone() }).await.unwrap().into_inner();
        parents.push(got.institution.unwrap().parent_id);
    }
    assert_eq!(parents.iter().filter(|p| !p.is_empty()).count(), 1, "one sub-unit, no cycle: {parents:?}");
    registry.stop().await;
}
