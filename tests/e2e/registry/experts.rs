//! Experts (articles 2, 5, 6, 14; D19) through the public API: create, read, update with a
//! change history, list and search; who sees personal data in full; the civil-servant history
//! finance asks about; payee details; and what the database holds.

use chrono::Datelike;
use supervision_proto::{
    common::{
        self, BankAccount, BureauCode, CivilServantStatus, ContactDetails, Date, DateRange, EntryChannel, Evidence,
        ExpertCategory, ExpertKind, IdentityDocument, IdentityDocumentType, Locality, OnBehalf, Organisation,
        PageRequest, Specialty, SpecialtyCode, locality::Place,
    },
    registry::{
        CategoryHolding, ConfirmExpertDataRequest, CreateExpertRequest, ExistingAppointment, Expert, ExpertProfile,
        ExpertStatus, GetCivilServantStatusRequest, GetExpertRequest, GetPayeeRequest, ListAuditEntriesRequest,
        ListExpertChangesRequest, ListExpertsRequest, RecordCivilServantStatusRequest, UpdateExpertRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, identity::expert_token, on_both_backends, service_acting_for,
    spawn_registry, with_token,
};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    an_expert_is_created_and_read_back,
    an_update_is_kept_in_the_change_history,
    every_bad_field_is_named,
    a_second_record_for_a_document_already_exists,
    a_retry_returns_the_first_answer,
    listing_filters_and_pages,
    a_county_operator_sees_masked_id_numbers_and_mobile,
    a_city_admin_and_an_auditor_see_full_values,
    an_expert_sees_only_their_own_record,
    the_civil_servant_status_is_answered_for_a_date,
    payee_details_are_plain_for_finance_and_refused_to_a_county_operator,
    a_dump_of_the_database_holds_no_plain_personal_data,
);

/// Valid resident identity numbers (GB 11643 check characters), one per test person.
const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";
const ID_C: &str = "440705199001011231";
const ID_D: &str = "440784196611204569";
const MOBILE_A: &str = "13812345678";
const ACCOUNT_A: &str = "6222021234567890123";
const EMAIL_A: &str = "li.ming@example.com";
const ADDRESS_A: &str = "江门市新会区会城街道示例路 8 号";
const EMPLOYER_CODE: &str = "91350100M000100Y43";

fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn evidence(text: &str) -> Option<Evidence> {
    Some(Evidence { description: text.into(), documents: vec![] })
}

fn resident(number: &str) -> IdentityDocument {
    IdentityDocument {
        r#type: IdentityDocumentType::ResidentIdCard as i32,
        number: number.into(),
        issuing_country: String::new(),
        masked: false,
    }
}

fn holding(category: ExpertCategory) -> CategoryHolding {
    CategoryHolding { category: category as i32, evidence: evidence("证书复印件"), ..Default::default() }
}

fn specialty(code: &str) -> Specialty {
    Specialty { code: Some(SpecialtyCode { code: code.into(), name: String::new() }), level: 0, note: String::new() }
}

/// A complete, valid request for one person.
fn person(name: &str, number: &str, mobile: &str) -> CreateExpertRequest {
    CreateExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        profile: Some(ExpertProfile {
            kind: ExpertKind::Individual as i32,
            name: name.into(),
            gender: common::Gender::Female as i32,
            birth_date: None,
            identity: Some(resident(number)),
            other_identities: vec![],
            locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
            contact: Some(ContactDetails {
                mobile: mobile.into(),
                email: EMAIL_A.into(),
                address: ADDRESS_A.into(),
                masked: false,
            }),
            bank_account: Some(BankAccount {
                holder_name: name.into(),
                bank_name: "中国工商银行".into(),
                branch_name: "江门分行营业部".into(),
                account_number: ACCOUNT_A.into(),
                masked: false,
            }),
            employer: Some(common::Employer {
                organisation: Some(Organisation {
                    name: "江门市示例职业培训学校".into(),
                    credit_code: EMPLOYER_CODE.into(),
                    institution_id: String::new(),
                }),
                post: "教师".into(),
                since: date(2015, 9, 1),
                employer_key: String::new(),
            }),
            represented_unit: None,
            categories: vec![holding(ExpertCategory::Technician)],
            conditions: vec![],
            specialties: vec![specialty("4-07-05-01")],
            professional_title: "高级技师".into(),
        }),
        civil_servant_status: CivilServantStatus::None as i32,
        civil_servant_since: date(2022, 3, 1),
        existing_appointment: None,
    }
}

fn profile_mut(req: &mut CreateExpertRequest) -> &mut ExpertProfile {
    req.profile.as_mut().unwrap()
}

fn client(registry: &RunningService, role: Role, bureau: Option<Bureau>) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(registry.as_role(role, bureau))
}

fn admin(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    client(registry, Role::CityAdmin, None)
}

fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

async fn create(c: &mut RegistryServiceClient<AuthedChannel>, req: CreateExpertRequest) -> Expert {
    c.create_expert(req).await.unwrap().into_inner().expert.unwrap()
}

async fn get(c: &mut RegistryServiceClient<AuthedChannel>, id: &str) -> Result<Expert, tonic::Status> {
    c.get_expert(GetExpertRequest { id: id.into() }).await.map(|r| r.into_inner().expert.unwrap())
}

fn profile(e: &Expert) -> &ExpertProfile {
    e.profile.as_ref().unwrap()
}

fn this_year() -> i32 {
    (chrono::Utc::now() + chrono::Duration::hours(8)).year()
}

async fn an_expert_is_created_and_read_back(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let created = create(&mut c, person("李明", "440703 198506150029", "138-1234-5678")).await;
    assert!(created.id.starts_with("exp_"));
    assert_eq!(created.status, ExpertStatus::NotAppointed as i32, "a new expert is not yet appointed");
    assert!(created.appointment.is_none());
    assert_eq!((created.revision, created.trained, created.last_confirmed_year), (1, false, 0));
    assert_eq!(created.civil_servant_status, CivilServantStatus::None as i32);
    let p = profile(&created);
    assert_eq!(p.identity.as_ref().unwrap().number, ID_A, "stored normalised");
    assert_eq!(p.birth_date, date(1985, 6, 15), "taken from the identity number");
    assert_eq!(p.contact.as_ref().unwrap().mobile, MOBILE_A);
    assert_eq!(p.employer.as_ref().unwrap().employer_key, EMPLOYER_CODE);

    let read = get(&mut c, &created.id).await.unwrap();
    assert_eq!(read, created);

    let err = get(&mut c, "exp_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = get(&mut c, "ins_0192f0c8a1b27c3d8e4f5a6b7c8d9e0f").await.unwrap_err();
    assert_eq!(violated_fields(&err), ["id"]);

    // An appointment made before this system arrives with the appointments part of the registry.
    let mut with_appointment = person("王芳", ID_B, "13900000001");
    with_appointment.existing_appointment = Some(ExistingAppointment {
        certificate_number: "JM2022-001".into(),
        decision_date: date(2022, 6, 1),
        term_start: date(2022, 6, 1),
        term_number: 1,
        trained: true,
    });
    let err = c.create_expert(with_appointment).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.get_error_details().error_info().unwrap().reason, "EXISTING_APPOINTMENT_UNSUPPORTED");
    registry.stop().await;
}

async fn an_update_is_kept_in_the_change_history(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let created = create(&mut c, person("李明", ID_A, MOBILE_A)).await;
    let mut new_profile = profile(&created).clone();
    new_profile.contact = Some(ContactDetails {
        mobile: "13912345678".into(),
        email: EMAIL_A.into(),
        address: "江门市蓬江区建设路 2 号".into(),
        masked: false,
    });
    new_profile.professional_title = "正高级工程师".into();
    let received = prost_types::Timestamp { seconds: chrono::Utc::now().timestamp() - 3600, nanos: 0 };
    let update = |mask: &[&str], expected_revision: i64| UpdateExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        id: created.id.clone(),
        profile: Some(new_profile.clone()),
        update_mask: Some(prost_types::FieldMask { paths: mask.iter().map(|p| (*p).to_owned()).collect() }),
        expected_revision,
        reason: "专家电话告知新号码和新地址".into(),
        on_behalf: Some(OnBehalf {
            channel: EntryChannel::Phone as i32,
            received_time: Some(received),
            note: "李明本人来电".into(),
        }),
    };
    let updated = c.update_expert(update(&["contact"], 1)).await.unwrap().into_inner().expert.unwrap();
    assert_eq!(updated.revision, 2);
    assert_eq!(profile(&updated).contact.as_ref().unwrap().mobile, "13912345678");
    assert_eq!(profile(&updated).professional_title, "高级技师", "a field outside the mask is not changed");

    let stale = c.update_expert(update(&["professional_title"], 1)).await.unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "the caller read revision 1, the expert is at 2");
    let same = c.update_expert(update(&["contact"], 0)).await.unwrap().into_inner().expert.unwrap();
    assert_eq!(same.revision, 2, "an update that changes nothing writes nothing");
    let titled = c.update_expert(update(&["professional_title"], 2)).await.unwrap().into_inner().expert.unwrap();
    assert_eq!((titled.revision, profile(&titled).professional_title.as_str()), (3, "正高级工程师"));

    let mut history = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_expert_changes(ListExpertChangesRequest {
                page: Some(PageRequest { page_size: 1, page_token: token }),
                expert_id: created.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        history.extend(page.changes);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(history.len(), 3, "two updates and the creation, newest first: {history:#?}");
    let paths = |i: usize| history[i].changes.iter().map(|f| f.path.clone()).collect::<Vec<_>>();
    assert_eq!(paths(0), ["professional_title"]);
    assert_eq!(paths(1), ["contact.address", "contact.mobile"]);
    let contact_change = &history[1];
    assert_eq!(contact_change.reason, "专家电话告知新号码和新地址");
    let actor = contact_change.actor.as_ref().unwrap();
    assert_eq!((actor.subject.as_str(), actor.role), ("city_admin-user", common::Role::CityAdmin as i32));
    assert_eq!(contact_change.on_behalf.as_ref().unwrap().channel, EntryChannel::Phone as i32);
    let mobile = &contact_change.changes[1];
    assert_eq!((mobile.before.as_str(), mobile.after.as_str()), ("138****5678", "139****5678"), "masked");
    assert_eq!(history[2].reason, "created");
    assert!(paths(2).contains(&"identity.number".to_owned()));
    let created_number = history[2].changes.iter().find(|f| f.path == "identity.number").unwrap();
    assert_eq!(created_number.after, "**************0029");

    let err = c.update_expert(UpdateExpertRequest { update_mask: None, ..update(&[], 0) }).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["update_mask"]);
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

async fn every_bad_field_is_named(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let mut req = person("李明", ID_A, MOBILE_A);
    {
        let p = profile_mut(&mut req);
        p.name = String::new();
        // The last character of ID_A changed: the GB 11643 check fails.
        p.identity = Some(resident("440703198506150021"));
        p.other_identities = vec![IdentityDocument {
            r#type: IdentityDocumentType::Passport as i32,
            number: "E12345678".into(),
            issuing_country: String::new(),
            masked: false,
        }];
        p.locality = Some(Locality { place: Some(Place::OutsideJiangmen("  ".into())) });
        p.contact.as_mut().unwrap().mobile = "02781234567".into();
        p.bank_account.as_mut().unwrap().account_number = "6222-0212".into();
        p.employer.as_mut().unwrap().organisation.as_mut().unwrap().credit_code = "91350100M000100Y44".into();
        p.categories = vec![];
        p.specialties = vec![specialty("4-7")];
    }
    req.civil_servant_since = date(2023, 2, 30);
    let err = c.create_expert(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&err),
        [
            "profile.name",
            "profile.identity.number",
            "profile.other_identities[0].issuing_country",
            "profile.locality.outside_jiangmen",
            "profile.contact.mobile",
            "profile.bank_account.account_number",
            "profile.employer.organisation.credit_code",
            "profile.categories",
            "profile.specialties[0].code",
            "civil_servant_since.day",
        ]
    );
    let number = err.get_error_details().bad_request().unwrap().field_violations[1].description.clone();
    assert!(number.contains("expected 9"), "the right check character is named: {number}");

    // Rules across fields, found once the fields themselves are valid.
    let mut req = person("李明", ID_A, MOBILE_A);
    profile_mut(&mut req).kind = ExpertKind::UnitRepresentative as i32;
    profile_mut(&mut req).bank_account.as_mut().unwrap().holder_name = "王芳".into();
    profile_mut(&mut req).birth_date = date(1985, 6, 16);
    let err = c.create_expert(req).await.unwrap_err();
    assert_eq!(
        violated_fields(&err),
        ["profile.represented_unit", "profile.birth_date", "profile.bank_account.holder_name"]
    );

    let listed = c.list_experts(ListExpertsRequest::default()).await.unwrap().into_inner();
    assert!(listed.experts.is_empty(), "a refused request stores nothing");
    registry.stop().await;
}

async fn a_second_record_for_a_document_already_exists(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let first = create(&mut c, person("李明", ID_A, MOBILE_A)).await;

    let taken = |err: tonic::Status| {
        assert_eq!(err.code(), Code::AlreadyExists);
        let info = err.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "IDENTITY_DOCUMENT_TAKEN");
        assert_eq!(info.metadata.get("expert_id"), Some(&first.id));
        assert!(!err.message().contains(&ID_A[6..14]), "the message never shows the number: {}", err.message());
    };
    // The same number typed differently is the same document.
    let spaced = format!("{} {}", &ID_A[..6], &ID_A[6..]);
    taken(c.create_expert(person("李明", &spaced, "13900000000")).await.unwrap_err());
    // Held as a further document it is still taken.
    let mut other = person("李明", ID_B, "13900000000");
    profile_mut(&mut other).other_identities = vec![resident(ID_A)];
    taken(c.create_expert(other).await.unwrap_err());

    // Updating another expert onto the document is refused too.
    let second = create(&mut c, person("王芳", ID_B, "13900000000")).await;
    let mut moved = profile(&second).clone();
    moved.identity = Some(resident(ID_A));
    let err = c
        .update_expert(UpdateExpertRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            id: second.id.clone(),
            profile: Some(moved),
            update_mask: Some(prost_types::FieldMask { paths: vec!["identity".into()] }),
            expected_revision: 0,
            reason: "录入错误更正".into(),
            on_behalf: None,
        })
        .await
        .unwrap_err();
    taken(err);
    let all = c.list_experts(ListExpertsRequest::default()).await.unwrap().into_inner().experts;
    assert_eq!(all.len(), 2);
    registry.stop().await;
}

async fn a_retry_returns_the_first_answer(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let mut req = person("李明", ID_A, MOBILE_A);
    req.request_id = "create-li-ming".into();
    let first = c.create_expert(req.clone()).await.unwrap().into_inner();
    let again = c.create_expert(req.clone()).await.unwrap().into_inner();
    assert_eq!(first, again, "the first answer (not ALREADY_EXISTS, not a second expert)");
    assert_eq!(profile(again.expert.as_ref().unwrap()).identity.as_ref().unwrap().number, ID_A, "in full again");

    profile_mut(&mut req).professional_title = "技师".into();
    let err = c.create_expert(req).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "the same key for other content");

    let status = RecordCivilServantStatusRequest {
        request_id: "cs-1".into(),
        expert_id: first.expert.as_ref().unwrap().id.clone(),
        status: CivilServantStatus::CivilServant as i32,
        valid_from: date(2024, 7, 1),
        evidence: evidence("单位证明"),
        on_behalf: None,
    };
    let once = c.record_civil_servant_status(status.clone()).await.unwrap().into_inner();
    let twice = c.record_civil_servant_status(status).await.unwrap().into_inner();
    assert_eq!(once, twice);
    assert_eq!(once.history.len(), 2, "one entry added, not two");
    let all = c.list_experts(ListExpertsRequest::default()).await.unwrap().into_inner().experts;
    assert_eq!(all.len(), 1);
    registry.stop().await;
}

async fn listing_filters_and_pages(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let a = create(&mut c, person("李明", ID_A, MOBILE_A)).await;
    let mut req = person("王芳", ID_B, "13900000002");
    {
        let p = profile_mut(&mut req);
        p.kind = ExpertKind::UnitRepresentative as i32;
        p.represented_unit = Some(Organisation {
            name: "江门市职业技能鉴定指导中心".into(),
            credit_code: String::new(),
            institution_id: String::new(),
        });
        p.locality = Some(Locality { place: Some(Place::OutsideJiangmen("广州市天河区".into())) });
        p.employer.as_mut().unwrap().organisation =
            Some(Organisation { name: "江门职业技术学院".into(), ..Default::default() });
        p.categories = vec![holding(ExpertCategory::Educator)];
        p.specialties = vec![specialty("2-02")];
    }
    let b = create(&mut c, req).await;
    let mut req = person("张伟", ID_C, "13900000003");
    {
        let p = profile_mut(&mut req);
        p.locality = Some(Locality { place: Some(Place::County(BureauCode::Heshan as i32)) });
        p.employer = None;
        p.categories = vec![holding(ExpertCategory::Technician), holding(ExpertCategory::DeputyOrCppccMember)];
        p.specialties = vec![specialty("4-07-06")];
    }
    let cc = create(&mut c, req).await;
    let mut req = person("李娜", ID_D, "13900000004");
    {
        let p = profile_mut(&mut req);
        p.employer = None;
        p.categories = vec![holding(ExpertCategory::SeniorProfessionalTitle)];
        p.specialties = vec![specialty("6-01")];
    }
    let d = create(&mut c, req).await;
    let (a, b, cc, d) = (a.id.as_str(), b.id.as_str(), cc.id.as_str(), d.id.as_str());

    let ids = |filter: ListExpertsRequest| {
        let mut c = c.clone();
        async move {
            c.list_experts(filter).await.unwrap().into_inner().experts.into_iter().map(|e| e.id).collect::<Vec<_>>()
        }
    };
    let all = ListExpertsRequest::default;
    assert_eq!(ids(all()).await, [a, b, cc, d], "id (creation) order");
    assert_eq!(ids(ListExpertsRequest { county: BureauCode::Xinhui as i32, ..all() }).await, [a, d]);
    assert_eq!(ids(ListExpertsRequest { outside_jiangmen: true, ..all() }).await, [b]);
    assert_eq!(ids(ListExpertsRequest { category: ExpertCategory::Technician as i32, ..all() }).await, [a, cc]);
    assert_eq!(ids(ListExpertsRequest { specialty_code: "4-07".into(), ..all() }).await, [a, cc]);
    assert_eq!(ids(ListExpertsRequest { specialty_code: "4-07-05".into(), ..all() }).await, [a]);
    assert_eq!(ids(ListExpertsRequest { employer: EMPLOYER_CODE.to_lowercase(), ..all() }).await, [a]);
    assert_eq!(ids(ListExpertsRequest { employer: "职业技术".into(), ..all() }).await, [b]);
    assert_eq!(ids(ListExpertsRequest { name_contains: "李".into(), ..all() }).await, [a, d]);
    assert_eq!(ids(ListExpertsRequest { kind: ExpertKind::UnitRepresentative as i32, ..all() }).await, [b]);
    assert_eq!(ids(ListExpertsRequest { identity: Some(resident(ID_C)), ..all() }).await, [cc]);
    assert_eq!(ids(ListExpertsRequest { status: ExpertStatus::NotAppointed as i32, ..all() }).await.len(), 4);
    assert!(ids(ListExpertsRequest { status: ExpertStatus::Active as i32, ..all() }).await.is_empty());
    let term_end = Some(DateRange { start: date(2024, 1, 1), end: date(2026, 12, 31) });
    assert!(ids(ListExpertsRequest { term_end, ..all() }).await.is_empty(), "nobody holds a term yet");
    assert_eq!(
        ids(ListExpertsRequest {
            county: BureauCode::Xinhui as i32,
            category: ExpertCategory::Technician as i32,
            name_contains: "李".into(),
            ..all()
        })
        .await,
        [a],
        "set filters must all match"
    );

    let first = c
        .list_experts(ListExpertsRequest {
            page: Some(PageRequest { page_size: 3, page_token: String::new() }),
            ..all()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.experts.len(), 3);
    let rest = c
        .list_experts(ListExpertsRequest {
            page: Some(PageRequest { page_size: 3, page_token: first.next_page_token }),
            ..all()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.experts.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), [d]);
    assert!(rest.next_page_token.is_empty());

    let err = c
        .list_experts(ListExpertsRequest {
            county: BureauCode::JiangmenCity as i32,
            outside_jiangmen: true,
            specialty_code: "x".into(),
            ..all()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&err), ["specialty_code", "county", "outside_jiangmen"]);
    registry.stop().await;
}

async fn a_county_operator_sees_masked_id_numbers_and_mobile(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let created = create(&mut admin(&registry), person("李明", ID_A, MOBILE_A)).await;
    for (role, bureau) in [(Role::CountyOperator, Some(Bureau::Xinhui)), (Role::CityOperator, None)] {
        let mut c = client(&registry, role, bureau);
        let listed = c.list_experts(ListExpertsRequest::default()).await.unwrap().into_inner().experts;
        let read = get(&mut c, &created.id).await.unwrap();
        assert_eq!(listed, std::slice::from_ref(&read));
        let p = profile(&read);
        let identity = p.identity.as_ref().unwrap();
        assert_eq!((identity.number.as_str(), identity.masked), ("**************0029", true), "{role}");
        let contact = p.contact.as_ref().unwrap();
        assert_eq!(contact.mobile, "138****5678");
        assert_eq!(contact.email, "l***@example.com");
        assert_eq!(contact.address, "", "the postal address is withheld");
        assert!(contact.masked);
        let account = p.bank_account.as_ref().unwrap();
        assert_eq!((account.account_number.as_str(), account.masked), ("***************0123", true));
        assert_eq!(p.name, "李明", "the name is not masked: operators search by it");
    }
    // What the roles table does not give them.
    let mut county = client(&registry, Role::CountyOperator, Some(Bureau::Xinhui));
    let denied = [
        county.create_expert(person("王芳", ID_B, "13900000000")).await.unwrap_err(),
        county
            .list_expert_changes(ListExpertChangesRequest { expert_id: created.id.clone(), page: None })
            .await
            .unwrap_err(),
        county.get_payee(GetPayeeRequest { expert_id: created.id.clone(), purpose: String::new() }).await.unwrap_err(),
        county
            .update_expert(UpdateExpertRequest { request_id: "u".into(), id: created.id.clone(), ..Default::default() })
            .await
            .unwrap_err(),
    ];
    for err in denied {
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    registry.stop().await;
}

async fn a_city_admin_and_an_auditor_see_full_values(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let created = create(&mut admin(&registry), person("李明", ID_A, MOBILE_A)).await;
    for role in [Role::CityAdmin, Role::CityReviewer, Role::Auditor] {
        let read = get(&mut client(&registry, role, None), &created.id).await.unwrap();
        let p = profile(&read);
        let identity = p.identity.as_ref().unwrap();
        assert_eq!((identity.number.as_str(), identity.masked), (ID_A, false), "{role}");
        let contact = p.contact.as_ref().unwrap();
        assert_eq!(
            (contact.mobile.as_str(), contact.email.as_str(), contact.address.as_str(), contact.masked),
            (MOBILE_A, EMAIL_A, ADDRESS_A, false)
        );
        let account = p.bank_account.as_ref().unwrap();
        assert_eq!((account.account_number.as_str(), account.masked), (ACCOUNT_A, false));
    }
    // A service reading an expert (dispatch naming a letter's holder) gets the masked form.
    let service = RegistryServiceClient::new(service_acting_for(&registry.channel, "dispatch", Role::CityAdmin, None));
    let read = get(&mut service.clone(), &created.id).await.unwrap();
    assert!(profile(&read).identity.as_ref().unwrap().masked);
    registry.stop().await;
}

async fn an_expert_sees_only_their_own_record(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let own = create(&mut c, person("李明", ID_A, MOBILE_A)).await;
    let other = create(&mut c, person("王芳", ID_B, "13900000000")).await;
    let mut me = RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(&own.id))));

    let read = get(&mut me, &own.id).await.unwrap();
    assert_eq!(profile(&read).identity.as_ref().unwrap().number, ID_A, "the expert sees their own data in full");
    assert_eq!(profile(&read).contact.as_ref().unwrap().address, ADDRESS_A);
    assert_eq!(get(&mut me, &other.id).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(me.list_experts(ListExpertsRequest::default()).await.unwrap_err().code(), Code::PermissionDenied);

    let changes = me
        .list_expert_changes(ListExpertChangesRequest { expert_id: own.id.clone(), page: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changes.changes.len(), 1);
    let err =
        me.list_expert_changes(ListExpertChangesRequest { expert_id: other.id.clone(), page: None }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let confirm = |expert_id: &str| ConfirmExpertDataRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        expert_id: expert_id.into(),
        year: this_year(),
        note: "信息无变化".into(),
        on_behalf: None,
    };
    let confirmed = me.confirm_expert_data(confirm(&own.id)).await.unwrap().into_inner().expert.unwrap();
    assert_eq!(confirmed.last_confirmed_year, this_year());
    assert_eq!(confirmed.revision, own.revision + 1);
    assert_eq!(me.confirm_expert_data(confirm(&other.id)).await.unwrap_err().code(), Code::NotFound);
    let err = me
        .update_expert(UpdateExpertRequest { request_id: "u".into(), id: own.id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "changes go through staff (D16)");

    // Staff entering a paper confirmation say how it arrived.
    let err = c.confirm_expert_data(confirm(&other.id)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["on_behalf"]);
    registry.stop().await;
}

async fn the_civil_servant_status_is_answered_for_a_date(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let expert = create(&mut c, person("李明", ID_A, MOBILE_A)).await;
    let history = c
        .record_civil_servant_status(RecordCivilServantStatusRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            expert_id: expert.id.clone(),
            status: CivilServantStatus::CivilServant as i32,
            valid_from: date(2024, 7, 1),
            evidence: evidence("江门市某局录用通知"),
            on_behalf: None,
        })
        .await
        .unwrap()
        .into_inner()
        .history;
    assert_eq!(history.len(), 2);
    assert_eq!((history[0].valid_from, history[0].valid_to), (date(2022, 3, 1), date(2024, 6, 30)));
    assert_eq!((history[1].status, history[1].valid_to), (CivilServantStatus::CivilServant as i32, None));
    assert_eq!(history[1].recorded_by.as_ref().unwrap().subject, "city_admin-user");

    let mut finance = RegistryServiceClient::new(service_acting_for(
        &registry.channel,
        "finance",
        Role::Finance,
        Some(Bureau::Xinhui),
    ));
    let on = |day: Option<Date>| GetCivilServantStatusRequest { expert_id: expert.id.clone(), date: day };
    let before = finance.get_civil_servant_status(on(date(2024, 6, 30))).await.unwrap().into_inner();
    assert_eq!((before.status, before.fee_exempt, before.edition_number), (CivilServantStatus::None as i32, false, 1));
    let after = finance.get_civil_servant_status(on(date(2024, 7, 1))).await.unwrap().into_inner();
    assert_eq!((after.status, after.fee_exempt), (CivilServantStatus::CivilServant as i32, true));
    assert_eq!(after.period.unwrap().valid_from, date(2024, 7, 1));

    // Finance staff may look too (the roles table); a county operator may not.
    let mut finance_staff = client(&registry, Role::Finance, Some(Bureau::City));
    assert!(finance_staff.get_civil_servant_status(on(date(2023, 1, 1))).await.is_ok());
    let err = client(&registry, Role::CountyOperator, Some(Bureau::Xinhui))
        .get_civil_servant_status(on(date(2023, 1, 1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let err = finance.get_civil_servant_status(on(date(2022, 2, 28))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "before the history starts");
    assert_eq!(err.get_error_details().error_info().unwrap().reason, "NO_CIVIL_SERVANT_STATUS");
    let err = finance.get_civil_servant_status(on(date(2027, 3, 1))).await.unwrap_err();
    assert_eq!(err.get_error_details().error_info().unwrap().reason, "NO_EDITION_IN_FORCE", "after edition 1");
    let err = finance.get_civil_servant_status(on(None)).await.unwrap_err();
    assert_eq!(violated_fields(&err), ["date"]);

    let today = get(&mut c, &expert.id).await.unwrap();
    assert_eq!(today.civil_servant_status, CivilServantStatus::CivilServant as i32, "as of today");
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

async fn payee_details_are_plain_for_finance_and_refused_to_a_county_operator(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let expert = create(&mut c, person("李明", ID_A, MOBILE_A)).await;
    let ask = || GetPayeeRequest { expert_id: expert.id.clone(), purpose: "exp-2026-03 劳务费发放".into() };

    let mut finance =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "finance", Role::Finance, Some(Bureau::City)));
    let payee = finance.get_payee(ask()).await.unwrap().into_inner();
    assert_eq!(payee.name, "李明");
    assert_eq!(payee.identity.as_ref().unwrap().number, ID_A);
    let account = payee.bank_account.as_ref().unwrap();
    assert_eq!((account.account_number.as_str(), account.masked), (ACCOUNT_A, false));
    assert_eq!(payee.contact.as_ref().unwrap().mobile, MOBILE_A);
    assert_eq!(payee.employer.as_ref().unwrap().employer_key, EMPLOYER_CODE);

    let auditor = client(&registry, Role::Auditor, None).get_payee(ask()).await.unwrap().into_inner();
    assert_eq!(auditor.identity.unwrap().number, ID_A);
    // A service acting for someone finance does not act for gets masked values.
    let mut odd = RegistryServiceClient::new(service_acting_for(
        &registry.channel,
        "dispatch",
        Role::CountyOperator,
        Some(Bureau::Xinhui),
    ));
    let masked = odd.get_payee(ask()).await.unwrap().into_inner();
    assert_eq!(masked.identity.unwrap().number, "**************0029");
    assert!(masked.bank_account.unwrap().masked);
    // Another service declaring that it acts for a FINANCE user does not get finance's trust.
    let mut forged = RegistryServiceClient::new(service_acting_for(
        &registry.channel,
        "dispatch",
        Role::Finance,
        Some(Bureau::City),
    ));
    assert!(forged.get_payee(ask()).await.unwrap().into_inner().bank_account.unwrap().masked);

    for (role, bureau) in [(Role::CountyOperator, Some(Bureau::Xinhui)), (Role::Finance, Some(Bureau::City))] {
        let err = client(&registry, role, bureau).get_payee(ask()).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{role}: finance staff reach bank details only via exports");
    }

    let entries = c
        .list_audit_entries(ListAuditEntriesRequest {
            entity_type: "expert".into(),
            entity_id: expert.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let reads: Vec<_> = entries.iter().filter(|e| e.action == "read_payee").collect();
    assert_eq!(reads.len(), 4, "every call is audited, the masked ones too");
    assert_eq!(reads[0].actor.as_ref().unwrap().role, common::Role::Finance as i32, "the user finance acted for");
    assert_eq!(reads[0].caller.as_ref().unwrap().subject, "svc:finance");
    assert!(reads[0].after_json.contains("劳务费发放") && reads[0].after_json.contains("\"plain\":true"));
    for entry in &entries {
        for plain in [ID_A, MOBILE_A, ACCOUNT_A, EMAIL_A] {
            assert!(!entry.after_json.contains(plain), "{plain} in audit entry {}", entry.sequence);
        }
    }
    registry.stop().await;
}

async fn a_dump_of_the_database_holds_no_plain_personal_data(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut c = admin(&registry);
    let mut req = person("李明", ID_A, MOBILE_A);
    profile_mut(&mut req).other_identities = vec![IdentityDocument {
        r#type: IdentityDocumentType::Passport as i32,
        number: "E98765432".into(),
        issuing_country: "CAN".into(),
        masked: false,
    }];
    let a = create(&mut c, req).await;
    create(&mut c, person("王芳", ID_B, "13900000002")).await;
    let mut changed = profile(&a).clone();
    changed.contact.as_mut().unwrap().mobile = "13711112222".into();
    c.update_expert(UpdateExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        id: a.id.clone(),
        profile: Some(changed),
        update_mask: Some(prost_types::FieldMask { paths: vec!["contact".into()] }),
        expected_revision: 0,
        reason: "换号".into(),
        on_behalf: None,
    })
    .await
    .unwrap();
    let mut finance =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "finance", Role::Finance, Some(Bureau::City)));
    finance.get_payee(GetPayeeRequest { expert_id: a.id.clone(), purpose: "导出".into() }).await.unwrap();
    let db = registry.stop_keeping_database().await;

    let secrets = [ID_A, ID_B, "E98765432", MOBILE_A, "13711112222", "13900000002", ACCOUNT_A, EMAIL_A, ADDRESS_A];
    let dump = dump(db.url()).await;
    assert!(dump.contains("李明"), "the dump reads the data (names are stored plain)");
    for plain in secrets {
        assert!(!dump.contains(plain), "{plain} is in the database in the clear");
        assert!(!dump.contains(&hex(plain)), "{plain} is in the database hex-encoded");
    }
    if backend == Backend::Sqlite {
        // The files themselves, write-ahead log included.
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

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
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
    assert!(columns.iter().any(|(t, _)| t == "expert_documents"), "the expert tables exist");
    let mut out = String::new();
    for (table, column) in columns {
        // SQLite: every value as its bytes, in hex (text, numbers and blobs alike); PostgreSQL:
        // every value cast to text (bytea casts to \x and hex).
        let select = if sqlite {
            format!("SELECT lower(hex(\"{column}\")) FROM \"{table}\"")
        } else {
            format!("SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\"")
        };
        let values: Vec<Option<String>> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(select)).fetch_all(&pool).await.unwrap();
        for value in values.into_iter().flatten() {
            if sqlite {
                out.push_str(&decode_hex(&value));
                out.push('\n');
            }
            out.push_str(&value);
            out.push('\n');
        }
    }
    pool.close().await;
    out
}

/// SQLite's hex of a value back to text (lossily), so plain text is found as text too.
fn decode_hex(hex: &str) -> String {
    let bytes: Vec<u8> =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
