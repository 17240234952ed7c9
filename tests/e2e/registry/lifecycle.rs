//! Lifecycle of terms (articles 11, 12(三); D5, D17): dispatch's yearly classifications, the
//! retirement proposal after two non-accepting years, the city's hold, and the pass the job runs
//! (called here directly with a moved clock) that applies due proposals and ends terms that ran
//! out.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use supervision_kit::{Db, SharedClock, clock::ManualClock};
use supervision_proto::registry::{
    AppointExpertRequest, CertificateStatus, DecideRetirementProposalRequest, ExpertStatus, ExpiryKind,
    GetExpertRequest, ListAppointmentsRequest, ListExpiringCredentialsRequest, ListRetirementProposalsRequest,
    ListStatusChangesRequest, ListYearlyAcceptancesRequest, RecordYearlyAcceptanceRequest,
    RecordYearlyAcceptanceResponse, RetirementProposalAction, RetirementProposalStatus, StatusChangeGround,
    YearClassification, registry_service_client::RegistryServiceClient,
};
use supervision_reference::ReferenceArgs;
use supervision_registry::lifecycle::{PassReport, run_pass};
use testkit::{
    AuthedChannel, Backend, Role, RunningService, identity::expert_token, on_both_backends, service_acting_for,
    spawn_registry, with_token,
};
use tonic::Code;

use crate::{
    appointments::{admin, appoint, appoint_request, date, id, reason_of, today, violated_fields},
    incidents::queued_for_dispatch,
};

on_both_backends!(
    a_yearly_classification_keeps_its_newest_revision,
    two_non_accepting_years_propose_retirement_which_applies_after_ten_working_days,
    a_neutral_year_breaks_the_streak_and_a_correction_withdraws_the_proposal,
    the_city_holds_a_proposal_and_it_never_applies,
    a_term_that_ran_out_ends_with_its_change_queued_for_dispatch,
    the_expiry_work_list_shows_categories_terms_and_confirmations_soonest_first,
);

const ID_A: &str = "440703198506150029";
const ID_B: &str = "440781197203040118";

fn dispatch(registry: &RunningService) -> RegistryServiceClient<AuthedChannel> {
    RegistryServiceClient::new(service_acting_for(&registry.channel, "dispatch", Role::CityAdmin, None))
}

fn yearly(expert_id: &str, year: i32, revision: i32, c: YearClassification) -> RecordYearlyAcceptanceRequest {
    let non = i32::from(c == YearClassification::NonAccepting);
    RecordYearlyAcceptanceRequest {
        request_id: format!("{expert_id}:{year}:{revision}"),
        expert_id: expert_id.into(),
        year,
        revision,
        classification: c as i32,
        acceptances: i32::from(c == YearClassification::Accepting),
        non_acceptances: non,
        neutral_outcomes: 0,
    }
}

async fn send(registry: &RunningService, req: RecordYearlyAcceptanceRequest) -> RecordYearlyAcceptanceResponse {
    dispatch(registry).record_yearly_acceptance(req).await.unwrap().into_inner()
}

async fn appointed(registry: &RunningService) -> String {
    appoint(registry, appoint_request("李明", ID_A, Some(today()))).await.expert.unwrap().id
}

/// The registry's database and a clock at noon (Asia/Shanghai) of `day`, to run the pass.
async fn pass_on(registry: &RunningService, day: NaiveDate) -> PassReport {
    let db = Db::connect(registry.database_url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let noon = Utc.from_utc_datetime(&day.and_hms_opt(4, 0, 0).unwrap());
    let clock: SharedClock = std::sync::Arc::new(ManualClock::at(noon));
    let reference = ReferenceArgs::default().load().unwrap();
    let report = run_pass(&db, &clock, &reference).await.unwrap();
    db.close().await;
    report
}

fn naive(d: &supervision_proto::common::Date) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32).unwrap()
}

async fn status_of(registry: &RunningService, expert_id: &str) -> i32 {
    let got = admin(registry).get_expert(GetExpertRequest { id: expert_id.into() }).await.unwrap().into_inner();
    got.expert.unwrap().status
}

async fn a_yearly_classification_keeps_its_newest_revision(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry).await;
    let done = send(&registry, yearly(&expert_id, 2024, 2, YearClassification::Accepting)).await;
    assert!(done.applied);
    assert!(done.proposal.is_none());
    let older = send(&registry, yearly(&expert_id, 2024, 1, YearClassification::NonAccepting)).await;
    assert!(!older.applied, "an older revision is ignored");
    assert_eq!(older.acceptance.unwrap().classification, YearClassification::Accepting as i32);
    let again = send(&registry, yearly(&expert_id, 2024, 2, YearClassification::Accepting)).await;
    assert!(again.applied, "a retry gives the first answer");

    let mut bad = yearly(&expert_id, 2025, 1, YearClassification::NonAccepting);
    bad.request_id = id();
    let err = dispatch(&registry).record_yearly_acceptance(bad).await.unwrap_err();
    assert_eq!(violated_fields(&err), vec!["request_id"]);
    let err = admin(&registry)
        .record_yearly_acceptance(yearly(&expert_id, 2025, 1, YearClassification::NonAccepting))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "only dispatch sends classifications");

    let mut own = RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(&expert_id))));
    let listed = own.list_yearly_acceptances(ListYearlyAcceptancesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.acceptances.len(), 1);
    assert_eq!(listed.acceptances[0].revision, 2);
    registry.stop().await;
}

async fn two_non_accepting_years_propose_retirement_which_applies_after_ten_working_days(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry).await;
    let first = send(&registry, yearly(&expert_id, 2024, 1, YearClassification::NonAccepting)).await;
    assert!(first.proposal.is_none(), "one year is no streak");
    let second = send(&registry, yearly(&expert_id, 2025, 1, YearClassification::NonAccepting)).await;
    let proposal = second.proposal.expect("two consecutive years propose retirement (D5)");
    assert_eq!(proposal.years, vec![2024, 2025]);
    assert_eq!(proposal.status, RetirementProposalStatus::Pending as i32);
    let apply = naive(proposal.apply_date.as_ref().unwrap());
    let t = today();
    let reference = ReferenceArgs::default().load().unwrap();
    let expected = reference.calendar().add_working_days(naive(&t), 10).unwrap();
    assert_eq!(apply, expected, "10 working days after the proposal");
    assert_eq!(status_of(&registry, &expert_id).await, ExpertStatus::Active as i32, "proposed, not applied");

    let before = pass_on(&registry, apply - Duration::days(1)).await;
    assert_eq!(before.applied, 0, "not before its apply date");
    let on = pass_on(&registry, apply).await;
    assert_eq!(on.applied, 1);
    assert_eq!(pass_on(&registry, apply).await.applied, 0, "applied once");
    assert_eq!(status_of(&registry, &expert_id).await, ExpertStatus::Retired as i32);
    let mut city = admin(&registry);
    let changes = city
        .list_status_changes(ListStatusChangesRequest { expert_id: expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let last = changes.last().unwrap();
    assert_eq!(last.ground, StatusChangeGround::NonAcceptance as i32);
    assert_eq!(last.certificate_status, CertificateStatus::Expired as i32);
    assert_eq!(last.actor.as_ref().unwrap().subject, "registry");
    assert!(queued_for_dispatch(&registry).await.contains(&last.id));
    let listed = city
        .list_retirement_proposals(ListRetirementProposalsRequest { expert_id, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.proposals[0].status, RetirementProposalStatus::Applied as i32);
    registry.stop().await;
}

async fn a_neutral_year_breaks_the_streak_and_a_correction_withdraws_the_proposal(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry).await;
    send(&registry, yearly(&expert_id, 2020, 1, YearClassification::NonAccepting)).await;
    let outside = send(&registry, yearly(&expert_id, 2021, 1, YearClassification::NonAccepting)).await;
    assert!(outside.proposal.is_none(), "years no edition covers are neutral (article 15)");
    send(&registry, yearly(&expert_id, 2023, 1, YearClassification::NonAccepting)).await;
    send(&registry, yearly(&expert_id, 2024, 1, YearClassification::Neutral)).await;
    let third = send(&registry, yearly(&expert_id, 2025, 1, YearClassification::NonAccepting)).await;
    assert!(third.proposal.is_none(), "a neutral year breaks the streak");
    let corrected = send(&registry, yearly(&expert_id, 2024, 2, YearClassification::NonAccepting)).await;
    let proposal = corrected.proposal.expect("the corrected year makes a streak");
    assert_eq!(proposal.years, vec![2024, 2025]);
    let back = send(&registry, yearly(&expert_id, 2024, 3, YearClassification::Neutral)).await;
    let withdrawn = back.proposal.expect("the correction withdraws the proposal");
    assert_eq!(withdrawn.id, proposal.id);
    assert_eq!(withdrawn.status, RetirementProposalStatus::Withdrawn as i32);

    // Appointed today (after 1 July), so this year is neutral whatever dispatch sends.
    let year = today().year;
    let last = send(&registry, yearly(&expert_id, year, 1, YearClassification::NonAccepting)).await;
    assert!(last.proposal.is_none(), "the appointment year began after 1 July and is neutral (D5)");
    registry.stop().await;
}

async fn the_city_holds_a_proposal_and_it_never_applies(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let expert_id = appointed(&registry).await;
    send(&registry, yearly(&expert_id, 2024, 1, YearClassification::NonAccepting)).await;
    let proposal =
        send(&registry, yearly(&expert_id, 2025, 1, YearClassification::NonAccepting)).await.proposal.unwrap();
    let decide = |action: RetirementProposalAction| DecideRetirementProposalRequest {
        request_id: id(),
        proposal_id: proposal.id.clone(),
        action: action as i32,
        reason: "专家因病无法接受委派".into(),
    };
    let mut own = RegistryServiceClient::new(with_token(&registry.channel, Some(&expert_token(&expert_id))));
    let seen = own.list_retirement_proposals(ListRetirementProposalsRequest::default()).await.unwrap().into_inner();
    assert_eq!(seen.proposals.len(), 1, "the expert sees the proposal about them");
    let err = own.decide_retirement_proposal(decide(RetirementProposalAction::Hold)).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let mut city = admin(&registry);
    let held = city.decide_retirement_proposal(decide(RetirementProposalAction::Hold)).await.unwrap().into_inner();
    assert_eq!(held.proposal.unwrap().status, RetirementProposalStatus::Held as i32);
    let apply = naive(proposal.apply_date.as_ref().unwrap());
    assert_eq!(pass_on(&registry, apply + Duration::days(3)).await.applied, 0);
    assert_eq!(status_of(&registry, &expert_id).await, ExpertStatus::Active as i32);
    let err = city.decide_retirement_proposal(decide(RetirementProposalAction::ApplyNow)).await.unwrap_err();
    assert_eq!(reason_of(&err), "PROPOSAL_NOT_PENDING");
    registry.stop().await;
}

async fn a_term_that_ran_out_ends_with_its_change_queued_for_dispatch(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let old: AppointExpertRequest = appoint_request("李明", ID_A, date(2022, 6, 1));
    let expert_id = appoint(&registry, old).await.expert.unwrap().id;
    assert_eq!(pass_on(&registry, NaiveDate::from_ymd_opt(2024, 5, 31).unwrap()).await.terms_ended, 0);
    let report = pass_on(&registry, naive(&today())).await;
    assert_eq!(report.terms_ended, 1, "the term 2022-06-01..2024-05-31 ran out");
    assert_eq!(report.failed, 0);
    assert_eq!(pass_on(&registry, naive(&today())).await.terms_ended, 0, "once");
    assert_eq!(status_of(&registry, &expert_id).await, ExpertStatus::Retired as i32);
    let mut city = admin(&registry);
    let changes = city
        .list_status_changes(ListStatusChangesRequest { expert_id: expert_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .changes;
    let last = changes.last().unwrap();
    assert_eq!(last.ground, StatusChangeGround::TermEnded as i32);
    assert_eq!(naive(last.effective_date.as_ref().unwrap()), NaiveDate::from_ymd_opt(2024, 6, 1).unwrap());
    assert!(queued_for_dispatch(&registry).await.contains(&last.id));
    let terms = city
        .list_appointments(ListAppointmentsRequest { expert_id, ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .appointments;
    assert_eq!(naive(terms[0].ended_date.as_ref().unwrap()), NaiveDate::from_ymd_opt(2024, 5, 31).unwrap());
    registry.assert_expert_reads_current().await;
    registry.stop().await;
}

async fn the_expiry_work_list_shows_categories_terms_and_confirmations_soonest_first(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let mut with_expiry = appoint_request("李明", ID_A, Some(today()));
    let t = today();
    let soon = naive(&t) + Duration::days(20);
    let soon_date = supervision_proto::common::Date {
        year: chrono::Datelike::year(&soon),
        month: chrono::Datelike::month(&soon) as i32,
        day: chrono::Datelike::day(&soon) as i32,
    };
    with_expiry.profile.as_mut().unwrap().categories[0].valid_until = Some(soon_date);
    let a = appoint(&registry, with_expiry).await.expert.unwrap().id;
    let b = appoint(&registry, appoint_request("王芳", ID_B, date(2025, 3, 1))).await.expert.unwrap().id;
    let mut reviewer = RegistryServiceClient::new(registry.as_role(Role::CityReviewer, None));
    let until = naive(&t) + Duration::days(400);
    let until = supervision_proto::common::Date {
        year: chrono::Datelike::year(&until),
        month: chrono::Datelike::month(&until) as i32,
        day: chrono::Datelike::day(&until) as i32,
    };
    let request = |page_token: String| ListExpiringCredentialsRequest {
        page: Some(supervision_proto::common::PageRequest { page_size: 1, page_token }),
        until: Some(until),
        kind: 0,
    };
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let page = reviewer.list_expiring_credentials(request(token)).await.unwrap().into_inner();
        items.extend(page.items);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let kinds: Vec<(String, i32)> = items.iter().map(|i| (i.expert_id.clone(), i.kind)).collect();
    assert!(kinds.contains(&(a.clone(), ExpiryKind::Category as i32)), "{kinds:?}");
    assert!(kinds.contains(&(b.clone(), ExpiryKind::TermEnd as i32)), "2025-03-01 + 2 years: {kinds:?}");
    assert!(kinds.contains(&(a.clone(), ExpiryKind::SelfConfirmation as i32)), "D21: {kinds:?}");
    assert!(!kinds.contains(&(a.clone(), ExpiryKind::TermEnd as i32)), "a term ending after `until`");
    let dates: Vec<NaiveDate> = items.iter().map(|i| naive(i.expires.as_ref().unwrap())).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "soonest first: {dates:?}");
    assert_eq!(items[0].expert_name, "李明");
    let only = reviewer
        .list_expiring_credentials(ListExpiringCredentialsRequest {
            until: Some(until),
            kind: ExpiryKind::TermEnd as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(only.items.iter().all(|i| i.kind == ExpiryKind::TermEnd as i32));
    let err = RegistryServiceClient::new(registry.as_role(Role::CountyOperator, Some(testkit::Bureau::Xinhui)))
        .list_expiring_credentials(ListExpiringCredentialsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    registry.stop().await;
}
