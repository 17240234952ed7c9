//! Appointments, terms, certificates and status changes (articles 7(五), 11, 12; D11, D17)
//! through the public API: recruitment appoints and renews through its SERVICE identity,
//! idempotently on its ids; the city suspends, reinstates and terminates; an expert retires on
//! request; every change is kept with its article and queued for dispatch.

use supervision_proto::{
    common::{
        self, BureauCode, CivilServantStatus, ContactDetails, Date, DateRange, EligibilityCondition, Evidence,
        ExpertCategory, ExpertKind, FileFormat, IdentityDocument, IdentityDocumentType, Locality, Organisation,
        locality::Place,
    },
    registry::{
        AppointExpertRequest, AppointExpertResponse, Appointment, CategoryHolding, CertificateStatus, ConditionRecord,
        ExpertProfile, ExpertStatus, GetCertificateRequest, GetExpertRequest, ListAppointmentsRequest,
        ListExpertsRequest, ListStatusChangesRequest, ReinstateExpertRequest, RenewTermRequest, RetireExpertRequest,
        StatusChangeGround, SuspendExpertRequest, TerminateExpertRequest, TerminationGround,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Role, RunningService, identity::expert_token, on_both_backends, service_acting_for,
    spawn_registry, with_token,
};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    an_appointment_starts_a_two_year_term_with_a_certificate,
    a_29_february_start_ends_on_27_february,
    a_renewal_starts_the_next_term_inside_the_window,
    suspension_reinstatement_and_retirement_follow_the_table,
    a_termination_needs_its_ground_and_revokes_the_certificate,
    only_recruitment_appoints_and_only_the_city_decides_status,
);

const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";
const ID_C: &str = "440705199001011231";

pub(crate) fn date(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

fn evidence(text: &str) -> Option<Evidence> {
    Some(Evidence { description: text.into(), documents: vec![] })
}

pub(crate) fn id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A reviewed profile with one verified category, as recruitment sends it.
pub(crate) fn profile(name: &str, number: &str) -> ExpertProfile {
    ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: name.into(),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: number.into(),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
        contact: Some(ContactDetails { mobile: "13812345678".into(), ..Default::default() }),
        employer: Some(common::Employer {
            organisation: Some(Organisation {
                name: "江门市示例职业培训学校".into(),
                credit_code: "91350100M000100Y43".into(),
                institution_id: String::new(),
            }),
            post: "教师".into(),
            since: date(2015, 9, 1),
            employer_key: String::new(),
        }),
        categories: vec![CategoryHolding {
            category: ExpertCategory::Technician as i32,
            evidence: evidence("技师证"),
            verified: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub(crate) fn appoint_request(name: &str, number: &str, decided: Option<Date>) -> AppointExpertRequest {
    let application = format!("app_{}", id());
    AppointExpertRequest {
        request_id: application.clone(),
        application_id: application,
        profile: Some(profile(name, number)),
        civil_servant_status: CivilServantStatus::None as i32,
        decision_date: decided,
        term_start: None,
        replaces_expert_id: String::new(),
    }
}

pub(crate) fn recruitment(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(service_acting_for(&registry.channel, "recruitment", Role::CityAdmin, None))
}

pub(crate) fn admin(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None))
}

fn term(a: &Appointment) -> (Date, Date) {
    let t = a.term.unwrap();
    (t.start.unwrap(), t.end.unwrap())
}

pub(crate) fn today() -> Date {
    let t = chrono::Utc::now() + chrono::Duration::hours(8);
    let d = t.date_naive();
    use chrono::Datelike;
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

pub(crate) fn violated_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
        .unwrap_or_default()
}

pub(crate) fn reason_of(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|i| i.reason.clone()).unwrap_or_default()
}

pub(crate) async fn appoint(registry: &RunningService, req: AppointExpertRequest) -> AppointExpertResponse {
    recruitment(registry).appoint_expert(req).await.unwrap().into_inner()
}

/// Rows the outbox holds for dispatch's ExpertStatusChanged.
async fn queued_for_dispatch(registry: &RunningService) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(registry.database_url()).await.unwrap();
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM kit_outbox WHERE destination = 'dispatch' \
         AND method = '/supervision.dispatch.v1.DispatchService/ExpertStatusChanged' ORDER BY idempotency_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    keys
}

async fn an_appointment_starts_a_two_year_term_with_a_certificate(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let req = appoint_request("李明", ID_A, date(2024, 6, 1));
    let first = appoint(&registry, req.clone()).await;
    let a = first.appointment.clone().unwrap();
    assert_eq!(term(&a), (date(2024, 6, 1).unwrap(), date(2026, 5, 31).unwrap()), "D11: ends the day before");
    assert_eq!(a.term_number, 1);
    assert!(a.certificate_number.starts_with("JMSE-2024-"), "{}", a.certificate_number);
    assert_eq!(a.application_id, req.application_id);
    assert_eq!(a.edition_number, 1);
    // The term ended on 2026-05-31, before today: the certificate reads expired.
    assert_eq!(a.certificate_status, CertificateStatus::Expired as i32);
    assert!(!first.existing_record);
    let expert = first.expert.clone().unwrap();
    assert_eq!(expert.status, ExpertStatus::Active as i32);
    assert_eq!(expert.application_id, req.application_id);

    // A retry of the same application appoints nobody again.
    let again = appoint(&registry, req.clone()).await;
    assert_eq!(again.appointment.unwrap().id, a.id);
    assert_eq!(again.expert.unwrap().id, expert.id);
    let mut changed = req.clone();
    changed.decision_date = date(2024, 7, 1);
    let err = recruitment(&registry).appoint_expert(changed).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "same id, other content");

    // A current appointment: the term shows on the expert and in the term_end filter.
    let now = appoint(&registry, appoint_request("王芳", ID_B, Some(today()))).await;
    let current = now.appointment.unwrap();
    assert_eq!(current.certificate_status, CertificateStatus::Valid as i32);
    assert_ne!(current.certificate_number, a.certificate_number, "unique across the registry");
    let mut c = admin(&registry);
    let read = c.get_expert(GetExpertRequest { id: current.expert_id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.expert.unwrap().appointment.unwrap(), current);
    let (_, end) = term(&current);
    let listed = c
        .list_experts(ListExpertsRequest {
            term_end: Some(DateRange { start: Some(end), end: Some(end) }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.experts.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![current.expert_id.clone()]);

    let terms = c
        .list_appointments(ListAppointmentsRequest {
            certificate_status: CertificateStatus::Valid as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(terms.appointments, vec![current.clone()]);

    // The certificate prints with the name and number; an appointment is an ExpertStatusChanged.
    let cert = c
        .get_certificate(GetCertificateRequest { appointment_id: current.id.clone(), format: FileFormat::Html as i32 })
        .await
        .unwrap()
        .into_inner();
    let html = String::from_utf8(cert.file.unwrap().content).unwrap();
    assert!(html.contains("王芳") && html.contains(&current.certificate_number), "{html}");
    assert!(!html.contains(ID_B));
    let changes = c.list_status_changes(ListStatusChangesRequest::default()).await.unwrap().into_inner().changes;
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|ch| ch.ground == StatusChangeGround::Appointed as i32));
    let mut ids: Vec<String> = changes.iter().map(|ch| ch.id.clone()).collect();
    ids.sort();
    assert_eq!(queued_for_dispatch(&registry).await, ids, "each change goes to dispatch under its id");
    registry.stop().await;
}

async fn a_29_february_start_ends_on_27_february(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let done = appoint(&registry, appoint_request("李明", ID_A, date(2024, 2, 29))).await;
    assert_eq!(term(&done.appointment.unwrap()), (date(2024, 2, 29).unwrap(), date(2026, 2, 27).unwrap()));
    registry.stop().await;
}

fn renew_request(expert_id: &str, decided: Option<Date>) -> RenewTermRequest {
    let renewal = format!("ren_{}", id());
    RenewTermRequest {
        request_id: renewal.clone(),
        renewal_id: renewal,
        expert_id: expert_id.into(),
        decision_date: decided,
        clean_record_check: Some(ConditionRecord {
            condition: EligibilityCondition::CleanRecord as i32,
            evidence: evidence("无犯罪记录证明"),
            checked_date: None,
            met: true,
            ..Default::default()
        }),
        categories: vec![],
    }
}

async fn a_renewal_starts_the_next_term_inside_the_window(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let first = appoint(&registry, appoint_request("李明", ID_A, date(2024, 6, 1))).await.appointment.unwrap();
    let mut r = recruitment(&registry);

    let early = r.renew_term(renew_request(&first.expert_id, date(2026, 1, 1))).await.unwrap_err();
    assert_eq!((early.code(), reason_of(&early).as_str()), (Code::FailedPrecondition, "OUTSIDE_RENEWAL_WINDOW"));
    let mut unmet = renew_request(&first.expert_id, date(2026, 4, 1));
    unmet.clean_record_check.as_mut().unwrap().met = false;
    let err = r.renew_term(unmet).await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["clean_record_check.met"]);

    let req = renew_request(&first.expert_id, date(2026, 4, 1));
    let renewed = r.renew_term(req.clone()).await.unwrap().into_inner();
    let next = renewed.appointment.unwrap();
    assert_eq!(term(&next), (date(2026, 6, 1).unwrap(), date(2028, 5, 31).unwrap()), "starts the day after");
    assert_eq!((next.term_number, next.previous_appointment_id.as_str()), (2, first.id.as_str()));
    assert_eq!(next.renewal_id, req.renewal_id);
    assert_eq!(renewed.expert.unwrap().appointment.unwrap().id, next.id);
    let again = r.renew_term(req).await.unwrap().into_inner();
    assert_eq!(again.appointment.unwrap().id, next.id, "idempotent on the renewal id");

    let terms = admin(&registry)
        .list_appointments(ListAppointmentsRequest { expert_id: first.expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(terms.len(), 2);
    assert_eq!(terms[0].end_reason, supervision_proto::registry::TermEndReason::Renewed as i32);
    assert_eq!(terms[0].ended_date, date(2026, 5, 31));

    // A term ending after edition 1 (2027-02-14) cannot be renewed until a successor is loaded (D6).
    let late = appoint(&registry, appoint_request("王芳", ID_B, date(2025, 3, 1))).await.appointment.unwrap();
    let err = r.renew_term(renew_request(&late.expert_id, date(2027, 1, 4))).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

async fn suspension_reinstatement_and_retirement_follow_the_table(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let done = appoint(&registry, appoint_request("李明", ID_A, Some(today()))).await;
    let expert_id = done.expert.unwrap().id;
    let mut c = admin(&registry);

    let err = c
        .reinstate_expert(ReinstateExpertRequest { request_id: id(), expert_id: expert_id.clone(), reason: "x".into() })
        .await
        .unwrap_err();
    assert_eq!(reason_of(&err), "STATUS_TRANSITION_NOT_ALLOWED", "an active expert is not reinstated");
    let suspended = c
        .suspend_expert(SuspendExpertRequest {
            request_id: id(),
            expert_id: expert_id.clone(),
            reason: "事件调查中".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let change = suspended.change.unwrap();
    assert_eq!((change.previous_status, change.status), (ExpertStatus::Active as i32, ExpertStatus::Suspended as i32));
    assert_eq!(change.certificate_status, CertificateStatus::Valid as i32, "valid while suspended (D17)");
    assert_eq!(suspended.expert.unwrap().status, ExpertStatus::Suspended as i32);
    c.reinstate_expert(ReinstateExpertRequest {
        request_id: id(),
        expert_id: expert_id.clone(),
        reason: "查无问题".into(),
    })
    .await
    .unwrap();

    // The expert asks to retire (12(四)) themself; staff would say how the request came.
    let mut own = RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(&expert_id))));
    let past = own
        .retire_expert(RetireExpertRequest {
            request_id: id(),
            expert_id: expert_id.clone(),
            effective_date: date(2020, 1, 1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&past), vec!["effective_date"]);
    let staff = c
        .retire_expert(RetireExpertRequest { request_id: id(), expert_id: expert_id.clone(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&staff), vec!["on_behalf"]);
    let retired = own
        .retire_expert(RetireExpertRequest {
            request_id: id(),
            expert_id: expert_id.clone(),
            reason: "个人原因".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let change = retired.change.unwrap();
    assert_eq!(change.ground, StatusChangeGround::SelfRequest as i32);
    assert_eq!(change.certificate_status, CertificateStatus::Expired as i32, "D17");
    let term = retired.expert.unwrap().appointment.unwrap();
    assert_eq!(term.certificate_status, CertificateStatus::Expired as i32);
    assert_eq!(term.end_reason, supervision_proto::registry::TermEndReason::SelfRequest as i32);

    let changes = own
        .list_status_changes(ListStatusChangesRequest { expert_id: expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let grounds: Vec<i32> = changes.iter().map(|ch| ch.ground).collect();
    assert_eq!(
        grounds,
        vec![
            StatusChangeGround::Appointed as i32,
            StatusChangeGround::Suspended as i32,
            StatusChangeGround::Reinstated as i32,
            StatusChangeGround::SelfRequest as i32
        ]
    );
    assert_eq!(queued_for_dispatch(&registry).await.len(), 4);

    // Appointed again later (a new application): the record is reused and gains a new term.
    let back = appoint(&registry, appoint_request("李明", ID_A, Some(today()))).await;
    assert!(back.existing_record);
    assert_eq!(back.expert.unwrap().id, expert_id);
    assert_eq!(back.appointment.unwrap().term_number, 2);
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

async fn a_termination_needs_its_ground_and_revokes_the_certificate(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let done = appoint(&registry, appoint_request("李明", ID_C, Some(today()))).await;
    let expert_id = done.expert.unwrap().id;
    let mut c = admin(&registry);
    let bare = TerminateExpertRequest {
        request_id: id(),
        expert_id: expert_id.clone(),
        ground: TerminationGround::Discipline as i32,
        ..Default::default()
    };
    let err = c.terminate_expert(bare).await.unwrap_err();
    let mut fields = violated_fields(&err);
    fields.sort();
    assert_eq!(fields, vec!["evidence", "incident_id", "reason"]);
    let ended = c
        .terminate_expert(TerminateExpertRequest {
            request_id: id(),
            expert_id: expert_id.clone(),
            ground: TerminationGround::WorkReasons as i32,
            reason: "不再具备第六条(四)条件".into(),
            evidence: evidence("市局决定书"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let change = ended.change.unwrap();
    assert_eq!(change.ground, StatusChangeGround::WorkReasons as i32);
    assert_eq!(change.status, ExpertStatus::Terminated as i32);
    assert_eq!(change.certificate_status, CertificateStatus::Revoked as i32);
    let term = ended.expert.unwrap().appointment.unwrap();
    let cert = c
        .get_certificate(GetCertificateRequest { appointment_id: term.id, format: FileFormat::Html as i32 })
        .await
        .unwrap()
        .into_inner();
    assert!(String::from_utf8(cert.file.unwrap().content).unwrap().contains("已撤销"));
    let err = c
        .suspend_expert(SuspendExpertRequest { request_id: id(), expert_id, reason: "x".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(reason_of(&err), "STATUS_TRANSITION_NOT_ALLOWED");
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

async fn only_recruitment_appoints_and_only_the_city_decides_status(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let err = admin(&registry).appoint_expert(appoint_request("李明", ID_A, Some(today()))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "publicity and objections cannot be skipped");
    let done = appoint(&registry, appoint_request("李明", ID_A, Some(today()))).await;
    let expert_id = done.expert.unwrap().id;
    let mut county = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(testkit::Bureau::Xinhui)));
    let err = county
        .suspend_expert(SuspendExpertRequest { request_id: id(), expert_id, reason: "x".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    registry.stop().await;
}
