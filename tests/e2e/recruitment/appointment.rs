//! The six steps of article 7 end to end on the test clock, through recruitment's outbox to a
//! running registry: a call, four applications (one rejected, one returned and resubmitted, one
//! with an upheld objection, one appointed after the publicity and not a minute before); the
//! registry then holds exactly the appointed expert with a certificate number and a D11 term,
//! which recruitment records. A registry outage delays the appointment but never doubles it.
//! Every transition is in the audit log with the acting user.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use supervision_kit::auth::TokenRequest;
use supervision_proto::{
    common::{Date, DateRange, EligibilityCondition, EntryChannel},
    recruitment::{
        AcknowledgeReapplicationWarningRequest, ApplicationStatus, AppointmentDecision, CreatePublicityBatchRequest,
        DecideAppointmentsRequest, DeliveryStatus, GetApplicationRequest, GetObjectionRequest,
        ListAppointmentDecisionsRequest, ListAuditEntriesRequest, ListObjectionsRequest, MaterialKind, ObjectionStatus,
        Publication, PublicationChannel, PublishPublicityBatchRequest, RecordObjectionRequest, ResolveObjectionRequest,
        ReviewInput, ReviewOutcome, ReviewTarget, ReviewVerdict, recruitment_service_client::RecruitmentServiceClient,
        review_target::Item,
    },
    registry::{
        DecideIncidentRequest, IncidentFinding, IncidentKind, IncidentOutcome, IncidentSource, ListAppointmentsRequest,
        ListExpertsRequest, ReapplicationFlagKind, RecordIncidentRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Role, RunningService, on_both_backends, spawn_recruitment_calling};
use tonic::Code;

use crate::applications::{Client, ID_A, ID_B, MOBILE_A, create, profile, published_call, rid, submit, upload};
use crate::reviews::{approve_all, conclude, record};

on_both_backends!(
    the_six_steps_end_to_end_on_the_test_clock,
    an_appointment_decided_while_the_registry_is_down_is_made_once,
    a_former_expert_terminated_for_false_materials_is_a_warning_the_reviewer_acknowledges,
    a_term_is_renewed_from_90_days_before_it_ends_with_the_experts_word_and_the_6_4_check,
    a_new_unit_representative_replaces_the_serving_one_on_appointment,
    a_committed_submission_replays_while_the_registry_is_down,
);

const ADMIN: &str = "city-admin-zhang";
const REVIEWER: &str = "city-reviewer-chen";

/// A resident identity number with its GB 11643 check character, from the first 17 digits.
fn id_number(first17: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.chars().zip(WEIGHTS).map(|(c, w)| c.to_digit(10).unwrap() * w).sum();
    let check = "10X98765432".as_bytes()[(sum % 11) as usize] as char;
    format!("{first17}{check}")
}

/// A token valid for 1000 days: the clock moves past the publicity and to the end of a term.
fn long_token(subject: &str, role: Role) -> String {
    testkit::identity::token_for(TokenRequest {
        subject: subject.into(),
        role,
        bureau: None,
        expert_id: None,
        ttl: StdDuration::from_secs(1000 * 86_400),
    })
}

fn recruitment(service: &RunningService, subject: &str, role: Role) -> Client {
    RecruitmentServiceClient::new(testkit::with_token(&service.channel, Some(&long_token(subject, role))))
}

fn registry(service: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(testkit::with_token(&service.channel, Some(&long_token(ADMIN, Role::CityAdmin))))
}

fn pdate(d: NaiveDate) -> Date {
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

fn shanghai_today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

/// 00:00 Asia/Shanghai on `day`.
fn shanghai_midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(day.and_hms_opt(0, 0, 0).unwrap() - Duration::hours(8)))
}

/// Moves every service's clock so that it reads `at` now.
fn set_clocks(services: &[&RunningService], at: DateTime<Utc>) {
    // Rounded up: the clock reads `at` or up to a second after, never before.
    let offset = ((at - Utc::now()).num_milliseconds() + 999).div_euclid(1000);
    for s in services {
        s.set_clock_offset(offset);
    }
}

fn item(target: Item, verdict: ReviewVerdict, reason: &str) -> ReviewInput {
    ReviewInput { target: Some(ReviewTarget { item: Some(target) }), verdict: verdict as i32, reason: reason.into() }
}

/// A draft with one category certificate, submitted by `subject`: (application, material).
async fn submitted(service: &RunningService, call_id: &str, subject: &str, name: &str, id: &str) -> (String, String) {
    let mut me = recruitment(service, subject, Role::Applicant);
    let draft = create(&mut me, call_id, profile(name, id, MOBILE_A)).await;
    let material = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, format!("%PDF {name}").into_bytes()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    me.submit_application(submit(&draft.id)).await.unwrap();
    (draft.id, material)
}

/// A submitted application that the reviewer passes.
async fn passed(service: &RunningService, call_id: &str, subject: &str, name: &str, id: &str) -> String {
    let (app, material) = submitted(service, call_id, subject, name, id).await;
    let mut reviewer = recruitment(service, REVIEWER, Role::CityReviewer);
    reviewer.record_review(record(&app, approve_all(&[material]))).await.unwrap();
    reviewer.conclude_review(conclude(&app, ReviewOutcome::Passed, "")).await.unwrap();
    app
}

async fn status_of(client: &mut Client, id: &str) -> i32 {
    client
        .get_application(GetApplicationRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap()
        .status
}

/// A published 7-day batch of `ids` starting tomorrow: its last day.
async fn publicity(staff: &mut Client, ids: &[String]) -> NaiveDate {
    publicity_after(staff, ids, shanghai_today()).await
}

/// A published 7-day batch of `ids` starting the day after `today`: its last day.
async fn publicity_after(staff: &mut Client, ids: &[String], today: NaiveDate) -> NaiveDate {
    let start = today + Duration::days(1);
    let end = start + Duration::days(6);
    let batch = staff
        .create_publicity_batch(CreatePublicityBatchRequest {
            request_id: rid(),
            title: "2026 年社会监督专家拟聘人员名单公示".into(),
            application_ids: ids.to_vec(),
            period: Some(DateRange { start: Some(pdate(start)), end: Some(pdate(end)) }),
        })
        .await
        .unwrap()
        .into_inner()
        .batch
        .unwrap();
    staff
        .publish_publicity_batch(PublishPublicityBatchRequest {
            request_id: rid(),
            batch_id: batch.id,
            publications: vec![Publication {
                channel: PublicationChannel::OfficialWebsite as i32,
                publish_date: Some(pdate(today)),
                address: "https://hrss.jiangmen.gov.cn/gs/2026-2".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    end
}

fn decide(request_id: &str, ids: &[&str]) -> DecideAppointmentsRequest {
    DecideAppointmentsRequest {
        request_id: request_id.into(),
        application_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    }
}

async fn decisions_of(client: &mut Client, application_id: &str) -> Vec<AppointmentDecision> {
    client
        .list_appointment_decisions(ListAppointmentDecisionsRequest {
            application_id: application_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .decisions
}

/// Waits (bounded) until the decision of `application_id` is DELIVERED, nudging recruitment's
/// clock past the relay's backoff instead of sleeping through it.
async fn delivered(
    service: &RunningService,
    client: &mut Client,
    application_id: &str,
    at: DateTime<Utc>,
) -> AppointmentDecision {
    for step in 0..120 {
        let decisions = decisions_of(client, application_id).await;
        assert_eq!(decisions.len(), 1, "one decision per application");
        if decisions[0].delivery == DeliveryStatus::Delivered as i32 {
            return decisions[0].clone();
        }
        set_clocks(&[service], at + Duration::seconds(step * 30));
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    let decisions = decisions_of(client, application_id).await;
    panic!("the appointment of {application_id} was not delivered: {decisions:?}");
}

async fn audit_actions(client: &mut Client, entity_id: &str) -> Vec<(String, String)> {
    client
        .list_audit_entries(ListAuditEntriesRequest { entity_id: entity_id.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .map(|e| (e.action, e.actor.map(|a| a.subject).unwrap_or_default()))
        .collect()
}

async fn the_six_steps_end_to_end_on_the_test_clock(backend: Backend) {
    let registry_service = testkit::spawn_registry(backend).await;
    let service = spawn_recruitment_calling(backend, Some(format!("http://{}", registry_service.addr))).await;
    let mut staff = recruitment(&service, ADMIN, Role::CityAdmin);
    let mut reviewer = recruitment(&service, REVIEWER, Role::CityReviewer);
    let call_id = published_call(&mut staff, -1, 14).await;

    // One rejected in review.
    let (rejected, rejected_material) = submitted(&service, &call_id, "applicant-zhao", "赵强", ID_A).await;
    let mut items = approve_all(&[rejected_material]);
    items[1] = item(Item::Condition(EligibilityCondition::Integrity as i32), ReviewVerdict::Rejected, "存在失信记录");
    reviewer.record_review(record(&rejected, items)).await.unwrap();
    reviewer.conclude_review(conclude(&rejected, ReviewOutcome::Rejected, "不符合第六条第（二）项")).await.unwrap();
    assert_eq!(status_of(&mut staff, &rejected).await, ApplicationStatus::Rejected as i32);

    // One returned for correction and resubmitted; it passes and waits for the next batch.
    let returned_id = id_number("44078319800101001");
    let (returned, blurry) = submitted(&service, &call_id, "applicant-qian", "钱丽", &returned_id).await;
    let mut items = approve_all(&[]);
    items.push(item(Item::MaterialId(blurry.clone()), ReviewVerdict::Returned, "扫描件不清晰"));
    reviewer.record_review(record(&returned, items)).await.unwrap();
    reviewer.conclude_review(conclude(&returned, ReviewOutcome::Returned, "请补正证书")).await.unwrap();
    let mut qian = recruitment(&service, "applicant-qian", Role::Applicant);
    let sharp = qian
        .upload_material(upload(&returned, MaterialKind::CategoryEvidence, b"%PDF sharp".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    let again = qian.submit_application(submit(&returned)).await.unwrap().into_inner().application.unwrap();
    assert_eq!(again.submission_count, 2);
    reviewer.record_review(record(&returned, approve_all(&[blurry, sharp]))).await.unwrap();
    reviewer.conclude_review(conclude(&returned, ReviewOutcome::Passed, "")).await.unwrap();

    // One with an upheld objection, one appointed.
    let objected = passed(&service, &call_id, "applicant-sun", "孙伟", ID_B).await;
    let appointed_id = id_number("44070319781212002");
    let appointed = passed(&service, &call_id, "applicant-li", "李明", &appointed_id).await;
    let end = publicity(&mut staff, &[objected.clone(), appointed.clone()]).await;
    let objection = staff
        .record_objection(RecordObjectionRequest {
            request_id: rid(),
            application_id: objected.clone(),
            channel: EntryChannel::Letter as i32,
            objector_name: "匿名".into(),
            content: "反映该申请人提交的证书系伪造".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .objection
        .unwrap();
    let read = staff.get_objection(GetObjectionRequest { id: objection.id.clone() }).await.unwrap().into_inner();
    assert_eq!(read.objection.unwrap().content, "反映该申请人提交的证书系伪造");
    let resolved = staff
        .resolve_objection(ResolveObjectionRequest {
            request_id: rid(),
            objection_id: objection.id.clone(),
            outcome: ObjectionStatus::Upheld as i32,
            findings: "经核实，证书系伪造".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.application.unwrap().status, ApplicationStatus::Rejected as i32);
    let upheld = staff
        .list_objections(ListObjectionsRequest { status: ObjectionStatus::Upheld as i32, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .objections;
    assert_eq!(upheld.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), [objection.id.as_str()]);

    // Not a minute before 00:00 Asia/Shanghai after the last publicity day.
    let err = staff.decide_appointments(decide(&rid(), &[&returned])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "no appointment without publicity");
    let midnight = shanghai_midnight(end + Duration::days(1));
    set_clocks(&[&service, &registry_service], midnight - Duration::minutes(1));
    let err = staff.decide_appointments(decide(&rid(), &[&appointed])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "23:59 on the last day is still publicity");
    assert!(err.message().contains(&appointed), "{}", err.message());
    set_clocks(&[&service, &registry_service], midnight);
    let decided = staff.decide_appointments(decide(&rid(), &[&appointed])).await.unwrap().into_inner().decisions;
    assert_eq!(decided.len(), 1);
    let term_start = end + Duration::days(1);
    assert_eq!(decided[0].term_start, Some(pdate(term_start)));

    let decision = delivered(&service, &mut staff, &appointed, midnight).await;
    assert!(!decision.certificate_number.is_empty());
    let term_end = NaiveDate::from_ymd_opt(term_start.year() + 2, term_start.month(), term_start.day())
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(term_start.year() + 2, 3, 1).unwrap())
        - Duration::days(1);
    assert_eq!(
        decision.term,
        Some(DateRange { start: Some(pdate(term_start)), end: Some(pdate(term_end)) }),
        "D11: two years, ending the day before the second anniversary"
    );
    let application =
        staff.get_application(GetApplicationRequest { id: appointed.clone() }).await.unwrap().into_inner();
    let application = application.application.unwrap();
    assert_eq!(application.status, ApplicationStatus::Appointed as i32);
    assert_eq!(
        (application.expert_id.as_str(), application.certificate_number.as_str()),
        (decision.expert_id.as_str(), decision.certificate_number.as_str())
    );

    let mut pool = registry(&registry_service);
    let experts = pool.list_experts(ListExpertsRequest::default()).await.unwrap().into_inner().experts;
    assert_eq!(experts.len(), 1, "the registry holds exactly the appointed expert");
    assert_eq!(experts[0].id, decision.expert_id);
    let terms = pool
        .list_appointments(ListAppointmentsRequest { expert_id: decision.expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].certificate_number, decision.certificate_number);
    assert_eq!(terms[0].application_id, appointed);
    assert_eq!(terms[0].term, decision.term);

    // Every transition, with the acting user.
    let mut auditor = recruitment(&service, "auditor-wu", Role::Auditor);
    let who = |subject: &str, actions: &[&str]| -> Vec<(String, String)> {
        actions.iter().map(|a| ((*a).to_owned(), subject.to_owned())).collect()
    };
    let rejected_log = audit_actions(&mut auditor, &rejected).await;
    assert_eq!(&rejected_log[..2], who("applicant-zhao", &["create", "submit"]).as_slice());
    assert_eq!(&rejected_log[2..], who(REVIEWER, &["review", "conclude_review"]).as_slice());
    let returned_log = audit_actions(&mut auditor, &returned).await;
    assert_eq!(
        returned_log.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["create", "submit", "review", "conclude_review", "submit", "review", "conclude_review"]
    );
    assert_eq!(returned_log[4].1, "applicant-qian");
    let objection_log = audit_actions(&mut auditor, &objection.id).await;
    assert_eq!(objection_log, who(ADMIN, &["record", "resolve"]));
    let decision_log = audit_actions(&mut auditor, &decision.id).await;
    assert_eq!(decision_log, who(ADMIN, &["decide", "deliver"]), "the delivery names who decided");
    service.stop().await;
    registry_service.stop().await;
}

async fn a_committed_submission_replays_while_the_registry_is_down(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let registry_service = testkit::spawn_registry_on(testkit::TestDb::new(backend).await, &listen).await;
    let service = spawn_recruitment_calling(backend, Some(format!("http://{listen}"))).await;
    let mut staff = recruitment(&service, ADMIN, Role::CityAdmin);
    let call_id = published_call(&mut staff, -1, 14).await;
    let mut me = recruitment(&service, "applicant-li", Role::Applicant);
    let draft = create(&mut me, &call_id, profile("李明", ID_A, MOBILE_A)).await;
    me.upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF li".to_vec())).await.unwrap();
    let request = submit(&draft.id);
    let first = me.submit_application(request.clone()).await.unwrap().into_inner().application.unwrap();
    assert_eq!(first.status, ApplicationStatus::Submitted as i32);
    let _registry_db = registry_service.stop_keeping_database().await;
    // The retry of the committed submission is its stored answer, not UNAVAILABLE.
    let replay = me.submit_application(request).await.unwrap().into_inner().application.unwrap();
    assert_eq!(replay.id, first.id);
    assert_eq!(replay.status, ApplicationStatus::Submitted as i32);
    // A new submission still needs the registry's answer (D21).
    let mut wang = recruitment(&service, "applicant-wang", Role::Applicant);
    let other = create(&mut wang, &call_id, profile("王芳", ID_B, MOBILE_A)).await;
    let err = wang.submit_application(submit(&other.id)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    service.stop().await;
}

async fn an_appointment_decided_while_the_registry_is_down_is_made_once(backend: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let registry_service = testkit::spawn_registry_on(testkit::TestDb::new(backend).await, &listen).await;
    let service = spawn_recruitment_calling(backend, Some(format!("http://{listen}"))).await;
    let mut staff = recruitment(&service, ADMIN, Role::CityAdmin);
    let call_id = published_call(&mut staff, -1, 14).await;
    let app = passed(&service, &call_id, "applicant-li", "李明", ID_A).await;
    let end = publicity(&mut staff, std::slice::from_ref(&app)).await;
    let midnight = shanghai_midnight(end + Duration::days(1));
    set_clocks(&[&service], midnight + Duration::hours(9));
    // The registry goes down (its data kept) before the decision.
    let registry_db = registry_service.stop_keeping_database().await;

    let request_id = rid();
    let first = staff.decide_appointments(decide(&request_id, &[&app])).await.unwrap().into_inner().decisions;
    let replay = staff.decide_appointments(decide(&request_id, &[&app])).await.unwrap().into_inner().decisions;
    assert_eq!(first, replay, "a retried request is the same decision");
    let err = staff.decide_appointments(decide(&rid(), &[&app])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "a second decision is refused");

    // The relay keeps trying while the registry is down.
    let mut pending = decisions_of(&mut staff, &app).await;
    for step in 1..40 {
        if !pending[0].last_delivery_error.is_empty() {
            break;
        }
        set_clocks(&[&service], midnight + Duration::hours(9) + Duration::seconds(step * 5));
        tokio::time::sleep(StdDuration::from_millis(250)).await;
        pending = decisions_of(&mut staff, &app).await;
    }
    assert_eq!(pending[0].delivery, DeliveryStatus::Pending as i32);
    assert!(!pending[0].last_delivery_error.is_empty(), "the failed attempt is shown");
    assert_eq!(status_of(&mut staff, &app).await, ApplicationStatus::AppointmentPending as i32);

    let registry_service = testkit::spawn_registry_on(registry_db, &listen).await;
    set_clocks(&[&registry_service], midnight + Duration::hours(9));
    let decision = delivered(&service, &mut staff, &app, midnight + Duration::hours(10)).await;
    assert!(!decision.certificate_number.is_empty());
    assert!(decision.last_delivery_error.is_empty());
    // More passes of the relay and the confirmer change nothing.
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    let experts =
        registry(&registry_service).list_experts(ListExpertsRequest::default()).await.unwrap().into_inner().experts;
    assert_eq!(experts.len(), 1, "exactly one expert after the outage");
    assert_eq!(experts[0].id, decision.expert_id);
    assert_eq!(decisions_of(&mut staff, &app).await, vec![decision]);
    service.stop().await;
    registry_service.stop().await;
}

async fn a_former_expert_terminated_for_false_materials_is_a_warning_the_reviewer_acknowledges(backend: Backend) {
    let registry_service = testkit::spawn_registry(backend).await;
    let service = spawn_recruitment_calling(backend, Some(format!("http://{}", registry_service.addr))).await;
    let mut staff = recruitment(&service, ADMIN, Role::CityAdmin);
    let call_id = published_call(&mut staff, -1, 14).await;
    let first = passed(&service, &call_id, "applicant-li", "李明", ID_A).await;
    let passed_first = staff.get_application(GetApplicationRequest { id: first.clone() }).await.unwrap().into_inner();
    let check = passed_first.application.unwrap().reapplication.expect("the registry was asked at submission");
    assert!(check.former_expert_id.is_empty() && check.flags.is_empty(), "a newcomer has no past: {check:?}");
    let end = publicity(&mut staff, std::slice::from_ref(&first)).await;
    let midnight = shanghai_midnight(end + Duration::days(1));
    set_clocks(&[&service, &registry_service], midnight + Duration::hours(9));
    staff.decide_appointments(decide(&rid(), &[&first])).await.unwrap();
    let decision = delivered(&service, &mut staff, &first, midnight + Duration::hours(9)).await;

    // False materials found after appointment: article 12(二).
    let mut pool = registry(&registry_service);
    let incident = pool
        .record_incident(RecordIncidentRequest {
            request_id: rid(),
            expert_id: decision.expert_id.clone(),
            kind: IncidentKind::FalseMaterials as i32,
            source: IncidentSource::Bureau as i32,
            description: "复核发现其技师证书系伪造".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    pool.decide_incident(DecideIncidentRequest {
        request_id: rid(),
        incident_id: incident.id,
        finding: IncidentFinding::Substantiated as i32,
        outcome: IncidentOutcome::Termination as i32,
        note: "取消专家资格".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let terminated_on = (midnight + Duration::hours(9) + Duration::hours(8)).date_naive();

    // The same person applies again to the next call.
    let next_call = published_call(&mut staff, -1, 14).await;
    let (again, material) = submitted(&service, &next_call, "applicant-li", "李明", ID_A).await;
    let mut reviewer = recruitment(&service, REVIEWER, Role::CityReviewer);
    let shown = reviewer.get_application(GetApplicationRequest { id: again.clone() }).await.unwrap().into_inner();
    let check = shown.application.unwrap().reapplication.expect("the check is stored with the submission");
    assert_eq!(check.former_expert_id, decision.expert_id);
    let warning = check
        .flags
        .iter()
        .find(|f| f.kind == ReapplicationFlagKind::RecentlyTerminated as i32)
        .expect("a RECENTLY_TERMINATED flag");
    assert_eq!(warning.date, Some(pdate(terminated_on)));
    let until = NaiveDate::from_ymd_opt(terminated_on.year() + 5, terminated_on.month(), terminated_on.day())
        .unwrap_or_else(|| NaiveDate::from_ymd_opt(terminated_on.year() + 5, 2, 28).unwrap())
        - Duration::days(1);
    assert_eq!(warning.warning_until, Some(pdate(until)), "five years, to the day before the anniversary");
    let mine = recruitment(&service, "applicant-li", Role::Applicant)
        .get_application(GetApplicationRequest { id: again.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(mine.application.unwrap().reapplication.is_none(), "the bureau's check is not shown to the applicant");

    reviewer.record_review(record(&again, approve_all(&[material]))).await.unwrap();
    let err = reviewer.conclude_review(conclude(&again, ReviewOutcome::Passed, "")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("AcknowledgeReapplicationWarning"), "{}", err.message());
    let acknowledge = |note: &str| AcknowledgeReapplicationWarningRequest {
        request_id: rid(),
        application_id: again.clone(),
        note: note.into(),
    };
    let err = reviewer.acknowledge_reapplication_warning(acknowledge("  ")).await.unwrap_err();
    assert_eq!(crate::applications::violated_fields(&err), ["note"]);
    let err = recruitment(&service, "applicant-li", Role::Applicant)
        .acknowledge_reapplication_warning(acknowledge("我已知悉"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let acknowledged = reviewer
        .acknowledge_reapplication_warning(acknowledge("已核实：本次申报材料经原件比对无误"))
        .await
        .unwrap()
        .into_inner()
        .application
        .unwrap()
        .reapplication
        .unwrap();
    assert_eq!(acknowledged.acknowledged_by.unwrap().subject, REVIEWER);
    let err = reviewer.acknowledge_reapplication_warning(acknowledge("再次确认")).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "acknowledged once");
    let passed_again = reviewer.conclude_review(conclude(&again, ReviewOutcome::Passed, "")).await.unwrap();
    assert_eq!(passed_again.into_inner().application.unwrap().status, ApplicationStatus::PassedReview as i32);

    let log = audit_actions(&mut recruitment(&service, "auditor-wu", Role::Auditor), &again).await;
    let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        ["create", "submit", "reapplication_check", "review", "acknowledge_reapplication_warning", "conclude_review"]
    );
    assert_eq!(log[4].1, REVIEWER);
    service.stop().await;
    registry_service.stop().await;
}

/// Edition 1 with a successor's number and dates.
fn edition_2() -> String {
    let mut text = include_str!("../../../crates/policy/editions/edition-1.toml").to_owned();
    for (from, to) in [
        ("number = 1", "number = 2"),
        ("effective_from = 2022-02-15", "effective_from = 2027-02-15"),
        ("effective_to = 2027-02-14", "effective_to = 2032-02-14"),
    ] {
        assert!(text.contains(from), "edition-1.toml no longer contains {from:?}");
        text = text.replacen(from, to, 1);
    }
    text
}

fn expert_client(service: &RunningService, expert_id: &str) -> Client {
    let token = testkit::identity::token_for(TokenRequest {
        subject: format!("expert-{expert_id}"),
        role: Role::Expert,
        bureau: None,
        expert_id: Some(expert_id.to_owned()),
        ttl: StdDuration::from_secs(1000 * 86_400),
    });
    RecruitmentServiceClient::new(testkit::with_token(&service.channel, Some(&token)))
}

async fn a_term_is_renewed_from_90_days_before_it_ends_with_the_experts_word_and_the_6_4_check(backend: Backend) {
    use supervision_proto::recruitment::{
        CleanRecordCheck, ConfirmRenewalRequest, DecideRenewalRequest, GetRenewalRequest, ListRenewalsRequest,
        RecordRenewalCheckRequest, RenewalDecision, RenewalInitiator, RenewalStatus, StartRenewalRequest,
    };
    // Edition 1 ends on 2027-02-14; the bureau loads its successor, as an operator would.
    let policy_dir = tempfile::tempdir().unwrap();
    std::fs::write(policy_dir.path().join("edition-2.toml"), edition_2()).unwrap();
    let reference = supervision_reference::ReferenceArgs {
        calendar_data_dir: None,
        policy_data_dir: Some(policy_dir.path().to_owned()),
    };
    let registry_service =
        testkit::spawn_registry_with(testkit::TestDb::new(backend).await, "127.0.0.1:0", reference.clone()).await;
    let registry_url = format!("http://{}", registry_service.addr);
    let service = testkit::spawn_recruitment_calling_with(backend, Some(registry_url), reference).await;
    let mut staff = recruitment(&service, ADMIN, Role::CityAdmin);
    let call_id = published_call(&mut staff, -1, 14).await;
    let app = passed(&service, &call_id, "applicant-li", "李明", ID_A).await;
    let end = publicity(&mut staff, std::slice::from_ref(&app)).await;
    let midnight = shanghai_midnight(end + Duration::days(1));
    set_clocks(&[&service, &registry_service], midnight + Duration::hours(9));
    staff.decide_appointments(decide(&rid(), &[&app])).await.unwrap();
    let first = delivered(&service, &mut staff, &app, midnight + Duration::hours(9)).await;
    let term_end = first.term.as_ref().and_then(|t| t.end).unwrap();
    let term_end = NaiveDate::from_ymd_opt(term_end.year, term_end.month as u32, term_end.day as u32).unwrap();

    let start = |initiator: RenewalInitiator| StartRenewalRequest {
        request_id: rid(),
        expert_id: first.expert_id.clone(),
        initiator: initiator as i32,
        ..Default::default()
    };
    // 91 days before the end is too early; 89 days before is within the window.
    set_clocks(&[&service, &registry_service], shanghai_midnight(term_end - Duration::days(91)) + Duration::hours(10));
    let err = staff.start_renewal(start(RenewalInitiator::Bureau)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    let opened = shanghai_midnight(term_end - Duration::days(89)) + Duration::hours(10);
    set_clocks(&[&service, &registry_service], opened);
    // Two starts at once: one renewal, the other start ALREADY_EXISTS (not INTERNAL).
    let (mut one, mut two) = (staff.clone(), staff.clone());
    let (a, b) = tokio::join!(
        one.start_renewal(start(RenewalInitiator::Bureau)),
        two.start_renewal(start(RenewalInitiator::Bureau)),
    );
    let (renewal, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won.into_inner().renewal.unwrap(), lost),
        other => panic!("exactly one concurrent start succeeds: {other:?}"),
    };
    assert_eq!(lost.code(), Code::AlreadyExists, "{}", lost.message());
    assert_eq!(renewal.status, RenewalStatus::AwaitingExpert as i32);
    assert_eq!(renewal.term_end, Some(pdate(term_end)));
    let err = staff.start_renewal(start(RenewalInitiator::Bureau)).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "one renewal per term");

    let decide_renewal = |decision: RenewalDecision| DecideRenewalRequest {
        request_id: rid(),
        renewal_id: renewal.id.clone(),
        decision: decision as i32,
        ..Default::default()
    };
    let err = staff.decide_renewal(decide_renewal(RenewalDecision::Approve)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "not before the expert's word and the re-check");
    let confirm = ConfirmRenewalRequest {
        request_id: rid(),
        renewal_id: renewal.id.clone(),
        willing: true,
        ..Default::default()
    };
    let err = expert_client(&service, "exp_0123456789abcdef0123456789abcdef")
        .confirm_renewal(confirm.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "another expert does not answer");
    // Two answers at once (a double click): the renewal's lock lets exactly one act.
    let mut expert = expert_client(&service, &first.expert_id);
    let again = ConfirmRenewalRequest { request_id: rid(), ..confirm.clone() };
    let mut twin = expert.clone();
    let (a, b) = tokio::join!(twin.confirm_renewal(confirm), expert.confirm_renewal(again));
    let willing = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => {
            assert_eq!(lost.code(), Code::FailedPrecondition, "{}", lost.message());
            won.into_inner()
        }
        other => panic!("exactly one concurrent answer is recorded: {other:?}"),
    };
    assert_eq!(willing.renewal.unwrap().status, RenewalStatus::AwaitingCheck as i32);

    let today = (opened + Duration::hours(8)).date_naive();
    let check = RecordRenewalCheckRequest {
        request_id: rid(),
        renewal_id: renewal.id.clone(),
        check: Some(CleanRecordCheck {
            certificate_date: Some(pdate(today - Duration::days(3))),
            list_check_date: Some(pdate(today)),
            met: true,
            note: "江门市公安局无犯罪记录证明（江公证字 2028 第 001 号）；信用中国失信名单查无记录".into(),
            ..Default::default()
        }),
    };
    let checked = recruitment(&service, REVIEWER, Role::CityReviewer)
        .record_renewal_check(check)
        .await
        .unwrap()
        .into_inner()
        .renewal
        .unwrap();
    assert_eq!(checked.status, RenewalStatus::AwaitingDecision as i32);
    assert_eq!(checked.check.unwrap().checked_by.unwrap().subject, REVIEWER);
    let approved = staff.decide_renewal(decide_renewal(RenewalDecision::Approve)).await.unwrap().into_inner();
    assert_eq!(approved.renewal.unwrap().status, RenewalStatus::Approved as i32);

    let mut renewed = None;
    for step in 0..120 {
        let r = staff
            .get_renewal(GetRenewalRequest { id: renewal.id.clone() })
            .await
            .unwrap()
            .into_inner()
            .renewal
            .unwrap();
        if r.status == RenewalStatus::Renewed as i32 {
            renewed = Some(r);
            break;
        }
        set_clocks(&[&service], opened + Duration::seconds(step * 30));
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    }
    let renewed = renewed.expect("the renewal reaches the registry");
    assert!(!renewed.certificate_number.is_empty() && renewed.certificate_number != first.certificate_number);
    let next_start = term_end + Duration::days(1);
    let next_end = NaiveDate::from_ymd_opt(next_start.year() + 2, next_start.month(), next_start.day()).unwrap()
        - Duration::days(1);
    assert_eq!(renewed.new_term, Some(DateRange { start: Some(pdate(next_start)), end: Some(pdate(next_end)) }));

    let terms = registry(&registry_service)
        .list_appointments(ListAppointmentsRequest { expert_id: first.expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(terms.len(), 2, "the first term and the renewed one");
    assert!(terms.iter().any(|t| t.renewal_id == renewal.id && t.certificate_number == renewed.certificate_number));
    let mine = expert_client(&service, &first.expert_id)
        .list_renewals(ListRenewalsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .renewals;
    assert_eq!(mine.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [renewal.id.as_str()]);
    let log = audit_actions(&mut recruitment(&service, "auditor-wu", Role::Auditor), &renewal.id).await;
    assert_eq!(
        log.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        ["start", "confirm", "record_check", "decide", "deliver"]
    );
    assert_eq!(log[4].1, ADMIN, "the delivery names who decided");
    service.stop().await;
    registry_service.stop().await;
}

/// A unit representative's profile (D19) for `unit`.
fn representative(name: &str, id: &str, unit: &str) -> supervision_proto::recruitment::ApplicantProfile {
    let mut p = crate::applications::profile(name, id, MOBILE_A);
    p.kind = supervision_proto::common::ExpertKind::UnitRepresentative as i32;
    p.represented_unit = Some(supervision_proto::common::Organisation {
        name: unit.into(),
        credit_code: "91350100M000100Y43".into(),
        institution_id: String::new(),
    });
    p
}

/// A unit representative's application, submitted and passed.
async fn representative_passed(
    service: &RunningService,
    call_id: &str,
    subject: &str,
    profile: supervision_proto::recruitment::ApplicantProfile,
    replaces: &str,
) -> String {
    let mut me = recruitment(service, subject, Role::Applicant);
    let mut request = crate::applications::create_request(call_id, profile);
    request.replaces_expert_id = replaces.into();
    let draft = me.create_application(request).await.unwrap().into_inner().application.unwrap();
    let material = me
        .upload_material(upload(&draft.id, MaterialKind::CategoryEvidence, b"%PDF unit".to_vec()))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
        .id;
    me.submit_application(submit(&draft.id)).await.unwrap();
    let mut reviewer = recruitment(service, REVIEWER, Role::CityReviewer);
    reviewer.record_review(record(&draft.id, approve_all(&[material]))).await.unwrap();
    reviewer.conclude_review(conclude(&draft.id, ReviewOutcome::Passed, "")).await.unwrap();
    draft.id
}

async fn a_new_unit_representative_replaces_the_serving_one_on_appointment(backend: Backend) {
    use supervision_proto::registry::{AppointmentKind, TermEndReason};
    const UNIT: &str = "江门市技师学院";
    let registry_service = testkit::spawn_registry(backend).await;
    let service = spawn_recruitment_calling(backend, Some(format!("http://{}", registry_service.addr))).await;
    let mut staff = recruitment(&service, ADMIN, Role::CityAdmin);
    let call_id = published_call(&mut staff, -1, 30).await;
    let serving =
        representative_passed(&service, &call_id, "applicant-li", representative("李明", ID_A, UNIT), "").await;
    let end = publicity(&mut staff, std::slice::from_ref(&serving)).await;
    let first_day = end + Duration::days(1);
    set_clocks(&[&service, &registry_service], shanghai_midnight(first_day) + Duration::hours(9));
    staff.decide_appointments(decide(&rid(), &[&serving])).await.unwrap();
    let old = delivered(&service, &mut staff, &serving, shanghai_midnight(first_day) + Duration::hours(9)).await;

    // The unit names a new representative, who applies naming the one replaced.
    let successor =
        representative_passed(&service, &call_id, "applicant-wang", representative("王芳", ID_B, UNIT), &old.expert_id)
            .await;
    let end = publicity_after(&mut staff, std::slice::from_ref(&successor), first_day).await;
    let second_day = end + Duration::days(1);
    let at = shanghai_midnight(second_day) + Duration::hours(9);
    set_clocks(&[&service, &registry_service], at);
    staff.decide_appointments(decide(&rid(), &[&successor])).await.unwrap();
    let new = delivered(&service, &mut staff, &successor, at).await;

    let mut pool = registry(&registry_service);
    let terms_of = |expert_id: String| ListAppointmentsRequest { expert_id, ..Default::default() };
    let old_terms = pool.list_appointments(terms_of(old.expert_id.clone())).await.unwrap().into_inner().appointments;
    assert_eq!(old_terms.len(), 1);
    assert_eq!(old_terms[0].end_reason, TermEndReason::RepresentativeReplaced as i32, "D19 ends the old term");
    let new_terms = pool.list_appointments(terms_of(new.expert_id.clone())).await.unwrap().into_inner().appointments;
    assert_eq!(new_terms.len(), 1);
    assert_eq!(new_terms[0].kind, AppointmentKind::RepresentativeReplacement as i32);
    assert_eq!(new_terms[0].previous_appointment_id, old_terms[0].id);
    service.stop().await;
    registry_service.stop().await;
}
