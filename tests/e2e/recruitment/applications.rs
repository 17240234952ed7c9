//! Applications (申报, article 7(二)): entered by the applicant or by staff for them, identity
//! validated and encrypted as in the registry, materials with a size limit, submission only
//! within the call's window.

use sha2::{Digest, Sha256};
use supervision_proto::{
    common::{
        CivilServantStatus, ContactDetails, EligibilityCondition, EntryChannel, ExpertCategory, ExpertKind,
        IdentityDocument, IdentityDocumentType, Locality, OnBehalf, locality::Place,
    },
    recruitment::{
        ApplicantProfile, Application, ApplicationStatus, CategoryClaim, ConditionAttestation,
        CreateApplicationRequest, GetApplicationRequest, GetMaterialRequest, ListApplicationsRequest,
        ListAuditEntriesRequest, MaterialKind, PublicationChannel, RemoveMaterialRequest, RequiredMaterial,
        SubmitApplicationRequest, UpdateApplicationRequest, UploadMaterialRequest, WithdrawApplicationRequest,
        recruitment_service_client::RecruitmentServiceClient, upload_material_request::Owner,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Role, RunningService, on_both_backends, spawn_recruitment};
use tonic::Code;
use tonic_types::StatusExt;

use crate::calls::{call, publication};

on_both_backends!(
    an_application_in_the_window_is_submitted_with_its_materials,
    outside_the_window_a_submission_is_refused,
    a_too_large_material_is_refused,
    bad_identity_numbers_are_named_field_by_field,
    an_applicant_sees_only_their_own,
    staff_enter_a_paper_application_on_behalf,
    a_dump_of_the_database_holds_no_plain_id_number,
    retries_are_idempotent,
    materials_are_read_back_and_removed_for_the_record,
    a_material_is_stored_encrypted_and_one_stored_before_encryption_still_reads,
);

pub(crate) const ID_A: &str = "440703198506150029";
pub(crate) const ID_B: &str = "440781197203040118";
pub(crate) const MOBILE_A: &str = "13812345678";
const EMAIL_A: &str = "li.ming@example.com";

pub(crate) type Client = RecruitmentServiceClient<AuthedChannel>;

pub(crate) fn admin(service: &RunningService) -> Client {
    RecruitmentServiceClient::new(service.as_role(Role::CityAdmin, None))
}

pub(crate) fn applicant(service: &RunningService, subject: &str) -> Client {
    RecruitmentServiceClient::new(service.as_user(subject, Role::Applicant, None))
}

pub(crate) fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A published call whose window runs from `start_days` to `end_days` from now, asking for
/// evidence of the technician category.
pub(crate) async fn published_call(admin: &mut Client, start_days: i64, end_days: i64) -> String {
    let mut request = call(&rid(), 2026, "2026 年第二批社会监督专家征集通知");
    let now = chrono::Utc::now();
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    request.application_start_time = Some(ts(now + chrono::Duration::days(start_days)));
    request.application_end_time = Some(ts(now + chrono::Duration::days(end_days)));
    request.required_materials = vec![RequiredMaterial {
        kind: MaterialKind::CategoryEvidence as i32,
        category: ExpertCategory::Technician as i32,
        condition: 0,
        description: "技师职业资格证书".into(),
        mandatory: true,
    }];
    let id = admin.create_call(request).await.unwrap().into_inner().call.unwrap().id;
    admin.record_call_publication(publication(&rid(), &id, PublicationChannel::OfficialWebsite)).await.unwrap();
    id
}

pub(crate) fn profile(name: &str, id_number: &str, mobile: &str) -> ApplicantProfile {
    ApplicantProfile {
        kind: ExpertKind::Individual as i32,
        name: name.into(),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: id_number.into(),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(Bureau::Kaiping.to_proto() as i32)) }),
        contact: Some(ContactDetails {
            mobile: mobile.into(),
            email: EMAIL_A.into(),
            address: "江门市开平市长沙街道示例路 1 号".into(),
            masked: false,
        }),
        categories: vec![CategoryClaim { category: ExpertCategory::Technician as i32, ..Default::default() }],
        conditions: [
            EligibilityCondition::Commitment,
            EligibilityCondition::Integrity,
            EligibilityCondition::Competence,
            EligibilityCondition::CleanRecord,
        ]
        .into_iter()
        .map(|c| ConditionAttestation {
            condition: c as i32,
            declaration: "本人符合该条件".into(),
            material_ids: vec![],
        })
        .collect(),
        professional_title: "高级技师".into(),
        civil_servant_status: CivilServantStatus::None as i32,
        ..Default::default()
    }
}

pub(crate) fn create_request(call_id: &str, profile: ApplicantProfile) -> CreateApplicationRequest {
    CreateApplicationRequest {
        request_id: rid(),
        call_id: call_id.into(),
        profile: Some(profile),
        replaces_expert_id: String::new(),
        on_behalf: None,
    }
}

pub(crate) async fn create(client: &mut Client, call_id: &str, profile: ApplicantProfile) -> Application {
    client.create_application(create_request(call_id, profile)).await.unwrap().into_inner().application.unwrap()
}

pub(crate) fn upload(application_id: &str, kind: MaterialKind, content: Vec<u8>) -> UploadMaterialRequest {
    UploadMaterialRequest {
        request_id: rid(),
        owner: Some(Owner::ApplicationId(application_id.into())),
        kind: kind as i32,
        category: if kind == MaterialKind::CategoryEvidence { ExpertCategory::Technician as i32 } else { 0 },
        condition: 0,
        file_name: "技师证书.pdf".into(),
        media_type: "application/pdf".into(),
        content,
        description: "技师职业资格证书扫描件".into(),
    }
}

pub(crate) fn submit(application_id: &str) -> SubmitApplicationRequest {
    SubmitApplicationRequest {
        request_id: rid(),
        application_id: application_id.into(),
        commit_truthful: true,
        commitment_text_version: "2026-1".into(),
        on_behalf: None,
    }
}

pub(crate) fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect()
}

async fn an_application_in_the_window_is_submitted_with_its_materials(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-li");
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    assert!(draft.id.starts_with("app_"));
    assert_eq!(draft.status, ApplicationStatus::Draft as i32);
    let identity = draft.profile.as_ref().unwrap().identity.as_ref().unwrap();
    assert_eq!((identity.number.as_str(), identity.masked), (ID_A, false), "the applicant sees their own in full");

    let err = me.submit_application(submit(&draft.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "the call's mandatory material is missing");
    let subjects: Vec<String> =
        err.get_error_details().precondition_failure().unwrap().violations.iter().map(|v| v.subject.clone()).collect();
    assert_eq!(subjects, ["call.required_materials[0]"]);
    let mut no_commitment = submit(&draft.id);
    no_commitment.commit_truthful = false;
    let err = me.submit_application(no_commitment).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["commit_truthful"]);

    let content = b"%PDF-1.4 technician certificate".to_vec();
    let material = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, content.clone()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    let document = material.document.unwrap();
    assert!(material.id.starts_with("mat_"));
    assert_eq!(document.size_bytes, content.len() as i64);
    assert_eq!(document.sha256, hex::encode(Sha256::digest(&content)));

    let submitted = me.submit_application(submit(&draft.id)).await.unwrap().into_inner().application.unwrap();
    assert_eq!(submitted.status, ApplicationStatus::Submitted as i32);
    assert_eq!(submitted.submission_count, 1);
    assert_eq!(submitted.materials.len(), 1);
    let attestation = submitted.attestation.as_ref().unwrap();
    assert_eq!(attestation.text_version, "2026-1");
    assert!(attestation.text.contains("真实、有效"));
    assert!(attestation.attest_time.is_some() && submitted.submit_time.is_some());

    let late = me.upload_material(upload(&draft.id, MaterialKind::Other, b"x".to_vec())).await.unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition, "a submitted application takes no more materials");
    let mut update = UpdateApplicationRequest {
        request_id: rid(),
        application_id: draft.id.clone(),
        profile: Some(profile("李明", ID_A, "13900000000")),
        update_mask: Some(prost_types::FieldMask { paths: vec!["contact".into()] }),
        expected_revision: 0,
        on_behalf: None,
    };
    assert_eq!(me.update_application(update.clone()).await.unwrap_err().code(), Code::FailedPrecondition);

    let withdrawn = me
        .withdraw_application(WithdrawApplicationRequest {
            request_id: rid(),
            application_id: draft.id.clone(),
            reason: "工作调动".into(),
            on_behalf: None,
        })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap();
    assert_eq!(withdrawn.status, ApplicationStatus::Withdrawn as i32);
    update.request_id = rid();
    assert_eq!(me.update_application(update).await.unwrap_err().code(), Code::FailedPrecondition);

    let mut auditor = RecruitmentServiceClient::new(service.as_role(Role::Auditor, None));
    let entries = auditor
        .list_audit_entries(ListAuditEntriesRequest { entity_id: draft.id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "submit", "withdraw"]);
    assert!(entries.iter().all(|e| e.actor.as_ref().unwrap().subject == "applicant-li"));
    service.stop().await;
}

async fn outside_the_window_a_submission_is_refused(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), 1, 10).await;
    // A token that outlives the clock's moves below.
    let token = testkit::identity::token_for(supervision_kit::auth::TokenRequest {
        subject: "applicant-early".into(),
        role: Role::Applicant,
        bureau: None,
        expert_id: None,
        ttl: std::time::Duration::from_secs(30 * 86_400),
    });
    let mut me = RecruitmentServiceClient::new(testkit::with_token(&service.channel, Some(&token)));
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    me.upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF".to_vec())).await.unwrap();
    let err = me.submit_application(submit(&draft.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "the window has not opened");
    assert!(err.message().contains("accepts applications from"), "{}", err.message());

    service.set_clock_offset(11 * 86_400);
    let err = me.submit_application(submit(&draft.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "the window has closed");

    service.set_clock_offset(2 * 86_400);
    let submitted = me.submit_application(submit(&draft.id)).await.unwrap().into_inner().application.unwrap();
    assert_eq!(submitted.status, ApplicationStatus::Submitted as i32, "inside the window it goes through");
    service.stop().await;
}

async fn a_too_large_material_is_refused(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-big");
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    const LIMIT: usize = 10 * 1024 * 1024;
    let err = me.upload_material(upload(&draft.id, MaterialKind::Photo, vec![0x42; LIMIT + 1])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["content"]);
    let at_limit = me
        .upload_material(upload(&draft.id, MaterialKind::Photo, vec![0x42; LIMIT]))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    assert_eq!(at_limit.document.unwrap().size_bytes, LIMIT as i64, "exactly 10 MiB is accepted");
    let mut bad = upload(&draft.id, MaterialKind::Photo, b"GIF89a".to_vec());
    bad.media_type = "image/gif".into();
    bad.file_name = "../etc/passwd".into();
    assert_eq!(violated_fields(&me.upload_material(bad).await.unwrap_err()), ["file_name", "media_type"]);
    let got = me.get_application(GetApplicationRequest { id: draft.id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.application.unwrap().materials.len(), 1);
    service.stop().await;
}

async fn bad_identity_numbers_are_named_field_by_field(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-typo");
    let mut bad = profile("", "440703198506150021", "12345");
    bad.kind = ExpertKind::UnitRepresentative as i32;
    bad.categories.clear();
    bad.conditions[1].declaration.clear();
    let err = me.create_application(create_request(&call_id, bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        [
            "profile.name",
            "profile.identity.number",
            "profile.contact.mobile",
            "profile.represented_unit",
            "profile.categories",
            "profile.conditions[1].declaration",
        ]
    );
    let mut passport = profile("John Smith", "E1234567", MOBILE_A);
    passport.identity.as_mut().unwrap().r#type = IdentityDocumentType::Passport as i32;
    let err = me.create_application(create_request(&call_id, passport)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["profile.identity.issuing_country"]);
    let mut hk = profile("陈大文", "H1234567", MOBILE_A);
    hk.identity.as_mut().unwrap().r#type = IdentityDocumentType::ResidentIdCard as i32;
    let err = me.create_application(create_request(&call_id, hk)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["profile.identity.number"]);
    let listed = me.list_applications(ListApplicationsRequest::default()).await.unwrap().into_inner();
    assert!(listed.applications.is_empty());
    service.stop().await;
}

async fn an_applicant_sees_only_their_own(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut li = applicant(&service, "applicant-li");
    let mut wang = applicant(&service, "applicant-wang");
    let lis = create(&mut li, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    let wangs = create(&mut wang, &call_id, profile("王芳", ID_B, "13900000002")).await;

    let own = li.list_applications(ListApplicationsRequest::default()).await.unwrap().into_inner().applications;
    assert_eq!(own.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [lis.id.as_str()]);
    let err = li.get_application(GetApplicationRequest { id: wangs.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another applicant's application is not theirs to see");
    let err = li.submit_application(submit(&wangs.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = li.upload_material(upload(&wangs.id, MaterialKind::Other, b"x".to_vec())).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let mut reviewer = RecruitmentServiceClient::new(service.as_role(Role::CityReviewer, None));
    let all = reviewer.list_applications(ListApplicationsRequest::default()).await.unwrap().into_inner().applications;
    assert_eq!(all.len(), 2);
    let by_identity = reviewer
        .list_applications(ListApplicationsRequest {
            identity: Some(IdentityDocument {
                r#type: IdentityDocumentType::ResidentIdCard as i32,
                number: ID_B.into(),
                issuing_country: String::new(),
                masked: false,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert_eq!(by_identity.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [wangs.id.as_str()]);
    let by_name = reviewer
        .list_applications(ListApplicationsRequest { name_contains: "李".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert_eq!(by_name.len(), 1);
    let full = by_identity[0].profile.as_ref().unwrap();
    assert_eq!(full.identity.as_ref().unwrap().number, ID_B, "reviewers see identity in full");

    let err = RecruitmentServiceClient::new(service.as_role(Role::CountyOperator, Some(Bureau::Kaiping)))
        .list_applications(ListApplicationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "applications are the city bureau's (article 7)");
    service.stop().await;
}

async fn staff_enter_a_paper_application_on_behalf(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let mut staff = admin(&service);
    let call_id = published_call(&mut staff, -1, 14).await;
    let err = staff.create_application(create_request(&call_id, profile("李明", ID_A, MOBILE_A))).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["on_behalf"], "staff say how the paper application arrived (D16)");
    let received = chrono::Utc::now() - chrono::Duration::hours(2);
    let on_behalf = OnBehalf {
        channel: EntryChannel::InPerson as i32,
        received_time: Some(prost_types::Timestamp { seconds: received.timestamp(), nanos: 0 }),
        note: "窗口收件".into(),
    };
    let mut request = create_request(&call_id, profile("李明", ID_A, MOBILE_A));
    request.on_behalf = Some(on_behalf.clone());
    let entered = staff.create_application(request).await.unwrap().into_inner().application.unwrap();
    assert_eq!(entered.on_behalf.as_ref().unwrap().note, "窗口收件");
    staff.upload_material(upload(&entered.id, MaterialKind::CategoryEvidence, b"%PDF".to_vec())).await.unwrap();

    let mut by_staff = submit(&entered.id);
    by_staff.on_behalf = Some(on_behalf.clone());
    let err = staff.submit_application(by_staff.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "staff submit with the signed paper commitment");
    staff.upload_material(upload(&entered.id, MaterialKind::SignedCommitment, b"%PDF signed".to_vec())).await.unwrap();
    by_staff.request_id = rid();
    let submitted = staff.submit_application(by_staff).await.unwrap().into_inner().application.unwrap();
    let attestation = submitted.attestation.unwrap();
    assert_eq!(attestation.attest_time.unwrap().seconds, received.timestamp(), "attested when the paper arrived");
    assert!(attestation.on_behalf.is_some());

    let mut me = applicant(&service, "applicant-li");
    let err = me
        .create_application(CreateApplicationRequest {
            on_behalf: Some(on_behalf),
            ..create_request(&call_id, profile("李明", ID_A, MOBILE_A))
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["on_behalf"], "an applicant acts for themself");
    assert!(
        me.list_applications(ListApplicationsRequest::default()).await.unwrap().into_inner().applications.is_empty()
    );
    service.stop().await;
}

async fn a_dump_of_the_database_holds_no_plain_id_number(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-li");
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    me.update_application(UpdateApplicationRequest {
        request_id: rid(),
        application_id: draft.id.clone(),
        profile: Some(profile("李明", ID_B, "13711112222")),
        update_mask: Some(prost_types::FieldMask { paths: vec!["identity".into(), "contact".into()] }),
        expected_revision: draft.revision,
        on_behalf: None,
    })
    .await
    .unwrap();
    me.upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF".to_vec())).await.unwrap();
    me.submit_application(submit(&draft.id)).await.unwrap();
    let db = service.stop_keeping_database().await;

    let secrets = [ID_A, ID_B, MOBILE_A, "13711112222", EMAIL_A];
    let dump = dump(db.url()).await;
    assert!(dump.contains("李明"), "the dump reads the data (names are stored plain)");
    for plain in secrets {
        assert!(!dump.contains(plain), "{plain} is in the database in the clear");
        let hex: String = plain.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!dump.contains(&hex), "{plain} is in the database hex-encoded");
    }
    if backend == Backend::Sqlite {
        for entry in std::fs::read_dir(db.scratch_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with("test.db") {
                let bytes = std::fs::read(&path).unwrap();
                for plain in secrets {
                    let found = bytes.windows(plain.len()).any(|w| w == plain.as_bytes());
                    assert!(!found, "{plain} is in {}", path.display());
                }
            }
        }
    }
}

/// Every column of every table, as text (binary columns as lower-case hex), one value a line.
async fn dump(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let sqlite = url.starts_with("sqlite:");
    let columns: Vec<(String, String)> = if sqlite {
        sqlx::query_as(
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' ORDER BY m.name, p.cid",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    } else {
        sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    assert!(columns.iter().any(|(t, _)| t == "applications"), "the application tables exist");
    let mut out = String::new();
    for (table, column) in columns {
        let select = if sqlite {
            format!("SELECT lower(hex(\"{column}\")) FROM \"{table}\"")
        } else {
            format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"")
        };
        let values: Vec<Option<String>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_all(&pool).await.unwrap();
        for value in values.into_iter().flatten() {
            if sqlite {
                let bytes: Vec<u8> = (0..value.len() / 2)
                    .filter_map(|i| u8::from_str_radix(&value[2 * i..2 * i + 2], 16).ok())
                    .collect();
                out.push_str(&String::from_utf8_lossy(&bytes));
                out.push('\n');
            }
            out.push_str(&value);
            out.push('\n');
        }
    }
    pool.close().await;
    out
}

async fn retries_are_idempotent(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-li");
    let request = create_request(&call_id, profile("李明", ID_A, MOBILE_A));
    let first = me.create_application(request.clone()).await.unwrap().into_inner();
    let again = me.create_application(request.clone()).await.unwrap().into_inner();
    assert_eq!(first, again, "a replay answers as the first time, in full to the applicant");
    let mut other = request;
    other.profile.as_mut().unwrap().name = "李明明".into();
    assert_eq!(me.create_application(other).await.unwrap_err().code(), Code::FailedPrecondition);
    let id = first.application.unwrap().id;

    let upload_request = upload(&id, MaterialKind::CategoryEvidence, b"%PDF".to_vec());
    let m1 = me.upload_material(upload_request.clone()).await.unwrap().into_inner();
    let m2 = me.upload_material(upload_request).await.unwrap().into_inner();
    assert_eq!(m1, m2);
    let submit_request = submit(&id);
    let s1 = me.submit_application(submit_request.clone()).await.unwrap().into_inner();
    let s2 = me.submit_application(submit_request).await.unwrap().into_inner();
    assert_eq!(s1, s2);
    let s1 = s1.application.unwrap();
    assert_eq!((s1.submission_count, s1.materials.len()), (1, 1), "one submission, one material");
    let listed = me.list_applications(ListApplicationsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.applications.len(), 1);
    service.stop().await;
}

async fn materials_are_read_back_and_removed_for_the_record(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-li");
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    let content = b"%PDF-1.4 certificate".to_vec();
    let material = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, content.clone()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    let read = me.get_material(GetMaterialRequest { id: material.id.clone() }).await.unwrap().into_inner();
    assert_eq!((read.content, read.material.unwrap()), (content.clone(), material.clone()));
    let err = applicant(&service, "applicant-wang").get_material(GetMaterialRequest { id: material.id.clone() }).await;
    assert_eq!(err.unwrap_err().code(), Code::NotFound, "another applicant's file is not theirs");
    let mut reviewer = RecruitmentServiceClient::new(service.as_role(Role::CityReviewer, None));
    let by_reviewer = reviewer.get_material(GetMaterialRequest { id: material.id.clone() }).await.unwrap();
    assert_eq!(by_reviewer.into_inner().content, content);

    let remove = RemoveMaterialRequest { request_id: rid(), material_id: material.id.clone() };
    let removed = me.remove_material(remove.clone()).await.unwrap().into_inner().material.unwrap();
    assert!(removed.removed);
    assert_eq!(me.remove_material(remove).await.unwrap().into_inner().material.unwrap(), removed);
    let kept = me.get_application(GetApplicationRequest { id: draft.id.clone() }).await.unwrap().into_inner();
    let kept = kept.application.unwrap();
    assert_eq!(kept.materials.len(), 1, "a removed material stays in the history");
    assert!(kept.materials[0].removed);
    let err = me.submit_application(submit(&draft.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a removed material no longer counts");
    service.stop().await;
}

/// The stored `content` and `content_encryption` of material `id`.
async fn stored_material(pool: &sqlx::AnyPool, id: &str) -> (Vec<u8>, String) {
    sqlx::query_as("SELECT content, content_encryption FROM materials WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn a_material_is_stored_encrypted_and_one_stored_before_encryption_still_reads(backend: Backend) {
    let service = spawn_recruitment(backend).await;
    let call_id = published_call(&mut admin(&service), -1, 14).await;
    let mut me = applicant(&service, "applicant-li");
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(service.database_url()).await.unwrap();

    // Upload, then read back whole; the database holds ciphertext, not the file.
    let marker = "MATERIAL-SCAN-MARKER-4b2e";
    let content = format!("%PDF-1.7\n% 居民身份证 {ID_A} {marker}\n%%EOF\n").into_bytes();
    let material = me
        .upload_material(upload(&draft.id, MaterialKind::IdentityDocument, content.clone()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    let document = material.document.clone().unwrap();
    assert_eq!(document.sha256, hex::encode(Sha256::digest(&content)), "the digest is of the plain file");
    assert_eq!(document.size_bytes, content.len() as i64);
    let read = me.get_material(GetMaterialRequest { id: material.id.clone() }).await.unwrap().into_inner();
    assert_eq!((read.content, read.material.unwrap()), (content.clone(), material.clone()));
    let (at_rest, encryption) = stored_material(&pool, &material.id).await;
    assert_eq!(encryption, "pd1");
    assert_ne!(at_rest, content);
    assert_eq!(at_rest.len(), content.len() + 28, "nonce and tag around the ciphertext");
    for plain in [b"%PDF-".as_slice(), marker.as_bytes(), ID_A.as_bytes()] {
        assert!(
            !at_rest.windows(plain.len()).any(|w| w == plain),
            "{} is stored in the clear",
            String::from_utf8_lossy(plain)
        );
    }
    let again = me
        .upload_material(upload(&draft.id, MaterialKind::IdentityDocument, content.clone()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    assert_ne!(stored_material(&pool, &again.id).await.0, at_rest, "a fresh nonce for every file");

    // A row written before migration 0006 holds the file as uploaded and still reads.
    let legacy = b"%PDF-1.4 stored before encryption".to_vec();
    let legacy_id = format!("mat_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(
        "INSERT INTO materials (id, application_id, kind, category, condition_code, file_name, media_type, \
         size_bytes, sha256, description, content, uploaded_by_subject, uploaded_by_role, uploaded_by_bureau, \
         uploaded_at, removed) VALUES ($1, $2, 'MATERIAL_KIND_OTHER', '', '', 'old.pdf', 'application/pdf', $3, $4, \
         '', $5, 'applicant-li', 'APPLICANT', '', '2026-01-05T02:00:00Z', 0)",
    )
    .bind(&legacy_id)
    .bind(&draft.id)
    .bind(legacy.len() as i64)
    .bind(hex::encode(Sha256::digest(&legacy)))
    .bind(legacy.clone())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(stored_material(&pool, &legacy_id).await.1, "", "the column's default marks old rows plain");
    let got = me.get_material(GetMaterialRequest { id: legacy_id.clone() }).await.unwrap().into_inner();
    assert_eq!(got.content, legacy);
    assert_eq!(got.material.unwrap().application_id, draft.id);

    // Ciphertext moved to another row, or altered, or a plain file that no longer matches its
    // digest, is never served.
    sqlx::query("UPDATE materials SET content = $1, content_encryption = 'pd1' WHERE id = $2")
        .bind(at_rest.clone())
        .bind(&legacy_id)
        .execute(&pool)
        .await
        .unwrap();
    let err = me.get_material(GetMaterialRequest { id: legacy_id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    let mut altered = at_rest.clone();
    *altered.last_mut().unwrap() ^= 1;
    sqlx::query("UPDATE materials SET content = $1 WHERE id = $2")
        .bind(altered)
        .bind(&material.id)
        .execute(&pool)
        .await
        .unwrap();
    let err = me.get_material(GetMaterialRequest { id: material.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(!err.message().contains(marker) && !err.message().contains(ID_A), "{err:?}");
    let mut tampered = content.clone();
    tampered[0] = b'#';
    sqlx::query("UPDATE materials SET content = $1, content_encryption = '' WHERE id = $2")
        .bind(tampered)
        .bind(&again.id)
        .execute(&pool)
        .await
        .unwrap();
    let err = me.get_material(GetMaterialRequest { id: again.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "the SHA-256 is checked on plain rows too: {err:?}");
    // Someone who may not see the material learns nothing, not even that it is broken.
    let err = applicant(&service, "applicant-wang").get_material(GetMaterialRequest { id: material.id.clone() }).await;
    assert_eq!(err.unwrap_err().code(), Code::NotFound);
    // The row outside `content` still reads: the application lists all three, and a broken file
    // can be removed (and uploaded again).
    let listed = me.get_application(GetApplicationRequest { id: draft.id.clone() }).await.unwrap().into_inner();
    assert_eq!(listed.application.unwrap().materials.len(), 3);
    let remove = RemoveMaterialRequest { request_id: rid(), material_id: material.id.clone() };
    assert!(me.remove_material(remove).await.unwrap().into_inner().material.unwrap().removed);
    pool.close().await;
    service.stop().await;
}
