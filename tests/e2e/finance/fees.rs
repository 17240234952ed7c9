//! Fee lines from dispatch's revisions (article 10; D1, D2; ARCHITECTURE.md "Fees"), with the
//! registry answering the civil-servant status: the worked examples of docs/fees-and-tax.md over
//! gRPC, the cap shared across assignments whatever order revisions arrive in, corrections by
//! reversal, voids, exemptions, retries, and the registry being unreachable.

use supervision_kit::vocab::new_prefixed_id;
use supervision_proto::{
    calendar::{FeeBasis, Rounding},
    common::{
        self, BankAccount, BureauCode, CivilServantStatus, ContactDetails, Date, Evidence, ExpertCategory, ExpertKind,
        FundSource, HalfDay, IdentityDocument, IdentityDocumentType, Locality, Specialty, SpecialtyCode, TimeOfDay,
        locality::Place,
    },
    finance::{
        FeeLine, FeeLineKind, GetFeeLineRequest, ListAuditEntriesRequest, ListFeeLinesRequest, RecordSessionsRequest,
        RecordSessionsResponse, ReversalCause, SessionWorked, ZeroReason, finance_service_client::FinanceServiceClient,
    },
    registry::{
        CategoryHolding, CreateExpertRequest, ExpertProfile, RecordCivilServantStatusRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{
    AuthedChannel, Backend, Bureau, Role, RunningService, identity::expert_token, on_both_backends, service_acting_for,
    spawn_finance_with_registry, with_token,
};
use tonic::Code;
use tonic_types::StatusExt;

on_both_backends!(
    appendix_a4_and_a5_sessions_pay_as_article_10_says,
    a_second_assignment_in_the_half_day_gets_what_the_cap_leaves,
    an_earlier_session_arriving_late_takes_the_cap_by_reversal,
    a_newer_revision_reverses_and_reapplies_and_an_older_one_is_ignored,
    a_voided_report_gives_zero_lines_and_frees_the_cap,
    a_civil_servant_on_the_work_date_gets_a_zero_line,
    the_same_request_id_twice_has_one_effect,
    lines_are_seen_by_their_bureau_and_their_expert_only,
    revisions_sharing_a_slot_at_the_same_time_do_not_interleave,
    without_the_registry_nothing_is_written_and_the_call_is_unavailable,
);

/// An assignment as dispatch describes it in each revision.
pub(crate) struct Assignment {
    pub(crate) id: String,
    task: String,
    expert: String,
    bureau: BureauCode,
    fund: FundSource,
}

impl Assignment {
    pub(crate) fn new(expert: &str, bureau: BureauCode, fund: FundSource) -> Self {
        Self { id: new_prefixed_id("asg_"), task: new_prefixed_id("tsk_"), expert: expert.into(), bureau, fund }
    }

    /// Revision `revision` with sessions `(day of April 2026, hour, minute, minutes)`.
    pub(crate) fn revision(&self, revision: i32, sessions: &[(i32, i32, i32, i32)]) -> RecordSessionsRequest {
        RecordSessionsRequest {
            request_id: format!("{}:{revision}", self.id),
            assignment_id: self.id.clone(),
            revision,
            task_id: self.task.clone(),
            task_number: "JM-2026-0042".into(),
            expert_id: self.expert.clone(),
            paying_bureau: self.bureau as i32,
            fund_source: self.fund as i32,
            sessions: sessions
                .iter()
                .enumerate()
                .map(|(i, &(day, hours, minutes, worked))| SessionWorked {
                    task_session_id: format!("ses-{i}-{day}-{hours}"),
                    date: Some(april(day)),
                    half_day: if (hours, minutes) < (12, 30) { HalfDay::Am } else { HalfDay::Pm } as i32,
                    start_time: Some(TimeOfDay { hours, minutes }),
                    minutes: worked,
                })
                .collect(),
            voided: false,
            void_reason: String::new(),
            event_time: Some(prost_types::Timestamp { seconds: 1_775_000_000, nanos: 0 }),
        }
    }

    fn voided(&self, revision: i32, sessions: &[(i32, i32, i32, i32)], reason: &str) -> RecordSessionsRequest {
        RecordSessionsRequest { voided: true, void_reason: reason.into(), ..self.revision(revision, sessions) }
    }
}

fn april(day: i32) -> Date {
    Date { year: 2026, month: 4, day }
}

/// Dispatch's outbox: a SERVICE token acting for the operator who accepted the report.
fn dispatch(finance: &RunningService) -> FinanceServiceClient<AuthedChannel> {
    FinanceServiceClient::new(service_acting_for(
        &finance.channel,
        "dispatch",
        Role::CountyOperator,
        Some(Bureau::Xinhui),
    ))
}

fn staff(finance: &RunningService, role: Role, bureau: Option<Bureau>) -> FinanceServiceClient<AuthedChannel> {
    FinanceServiceClient::new(finance.as_role(role, bureau))
}

pub(crate) async fn record(finance: &RunningService, request: RecordSessionsRequest) -> RecordSessionsResponse {
    dispatch(finance).record_sessions(request).await.unwrap().into_inner()
}

/// Creates an expert in the registry (not a civil servant from 2022-03-01) and returns the id.
pub(crate) async fn create_expert(registry: &RunningService) -> String {
    let mut admin = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let request = CreateExpertRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        profile: Some(ExpertProfile {
            kind: ExpertKind::Individual as i32,
            name: "李明".into(),
            gender: common::Gender::Female as i32,
            birth_date: None,
            identity: Some(IdentityDocument {
                r#type: IdentityDocumentType::ResidentIdCard as i32,
                number: "440703198506150029".into(),
                issuing_country: String::new(),
                masked: false,
            }),
            other_identities: vec![],
            locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
            contact: Some(ContactDetails {
                mobile: "13812345678".into(),
                email: "li.ming@example.com".into(),
                address: "江门市新会区会城街道示例路 8 号".into(),
                masked: false,
            }),
            bank_account: Some(BankAccount {
                holder_name: "李明".into(),
                bank_name: "中国工商银行".into(),
                branch_name: "江门分行营业部".into(),
                account_number: "6222021234567890123".into(),
                masked: false,
            }),
            employer: None,
            represented_unit: None,
            categories: vec![CategoryHolding {
                category: ExpertCategory::Technician as i32,
                evidence: Some(Evidence { description: "证书复印件".into(), documents: vec![] }),
                ..Default::default()
            }],
            conditions: vec![],
            specialties: vec![Specialty {
                code: Some(SpecialtyCode { code: "4-07-05-01".into(), name: String::new() }),
                level: 0,
                note: String::new(),
            }],
            professional_title: "高级技师".into(),
        }),
        civil_servant_status: CivilServantStatus::None as i32,
        civil_servant_since: Some(Date { year: 2022, month: 3, day: 1 }),
        existing_appointment: None,
    };
    admin.create_expert(request).await.unwrap().into_inner().expert.unwrap().id
}

async fn become_civil_servant(registry: &RunningService, expert: &str, from: Date) {
    let mut admin = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    admin
        .record_civil_servant_status(RecordCivilServantStatusRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            expert_id: expert.into(),
            status: CivilServantStatus::CivilServant as i32,
            valid_from: Some(from),
            evidence: Some(Evidence { description: "录用通知".into(), documents: vec![] }),
            on_behalf: None,
        })
        .await
        .unwrap();
}

/// A line as `(assignment label, kind, billable class hours, amount in fen)`, labels naming the
/// assignments in `names`.
fn brief(lines: &[FeeLine], names: &[(&Assignment, &'static str)]) -> Vec<(&'static str, FeeLineKind, i32, i64)> {
    lines
        .iter()
        .map(|l| {
            let name = names.iter().find(|(a, _)| a.id == l.assignment_id).map_or("?", |(_, n)| *n);
            (name, l.kind(), l.billable_class_hours, l.amount.unwrap().fen)
        })
        .collect()
}

/// Every line of the expert, as CITY_ADMIN lists them.
async fn all_lines(finance: &RunningService) -> Vec<FeeLine> {
    let mut admin = staff(finance, Role::CityAdmin, None);
    admin.list_fee_lines(ListFeeLinesRequest::default()).await.unwrap().into_inner().lines
}

fn total(lines: &[FeeLine]) -> i64 {
    lines.iter().map(|l| l.amount.unwrap().fen).sum()
}

use FeeLineKind::{Charge, Reversal};

async fn appendix_a4_and_a5_sessions_pay_as_article_10_says(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    // A4: 09:00-11:45, 165 minutes: 3 class hours by FLOOR, 300 yuan.
    let a4 = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let answer = record(&finance, a4.revision(1, &[(1, 9, 0, 165)])).await;
    assert!(answer.applied);
    assert_eq!(answer.held_revision, 1);
    let line = &answer.lines[0];
    assert_eq!((line.minutes, line.class_hours, line.billable_class_hours), (165, 3, 3));
    assert_eq!((line.rate.unwrap().fen, line.amount.unwrap().fen), (10_000, 30_000));
    assert_eq!((line.basis(), line.rounding(), line.edition_number), (FeeBasis::PreTax, Rounding::Floor, 1));
    assert_eq!((line.paying_bureau(), line.fund_source()), (BureauCode::Xinhui, FundSource::CityCountyEmployment));
    assert_eq!((line.kind(), line.zero_reason(), line.half_day()), (Charge, ZeroReason::Unspecified, HalfDay::Am));
    assert_eq!((line.task_id.as_str(), line.expert_id.as_str()), (a4.task.as_str(), expert.as_str()));
    assert!(line.id.starts_with("fee_"));

    // A5: 08:30-12:00 (210 min, 4 class hours) and 14:30-17:30 (180 min, 4): 800 yuan a day.
    let a5 = Assignment::new(&expert, BureauCode::Xinhui, FundSource::ProvincialSkillTraining);
    let answer = record(&finance, a5.revision(1, &[(2, 8, 30, 210), (2, 14, 30, 180)])).await;
    let hours: Vec<_> = answer.lines.iter().map(|l| (l.half_day(), l.class_hours, l.billable_class_hours)).collect();
    assert_eq!(hours, [(HalfDay::Am, 4, 4), (HalfDay::Pm, 4, 4)]);
    assert_eq!(total(&answer.lines), 80_000);

    // A session under one class hour is a zero line saying so.
    let short = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let answer = record(&finance, short.revision(1, &[(3, 9, 0, 44)])).await;
    assert_eq!(
        (answer.lines[0].amount.unwrap().fen, answer.lines[0].zero_reason()),
        (0, ZeroReason::BelowOneClassHour)
    );
    assert_eq!(total(&all_lines(&finance).await), 110_000);
    finance.stop().await;
    registry.stop().await;
}

async fn a_second_assignment_in_the_half_day_gets_what_the_cap_leaves(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    // Two tasks, two payers, one morning: A 08:30 135 min (3), B 10:45 90 min (2, 1 left).
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let b = Assignment::new(&expert, BureauCode::Heshan, FundSource::ProvincialSkillTraining);
    record(&finance, a.revision(1, &[(6, 8, 30, 135)])).await;
    let answer = record(&finance, b.revision(1, &[(6, 10, 45, 90)])).await;
    assert_eq!(brief(&answer.lines, &[(&a, "A"), (&b, "B")]), [("B", Charge, 1, 10_000)]);
    assert_eq!(answer.lines[0].class_hours, 2, "the class hours worked stay on record");
    assert_eq!(answer.lines[0].paying_bureau(), BureauCode::Heshan);

    // A third task after the cap is used up gets a zero line.
    let c = Assignment::new(&expert, BureauCode::Enping, FundSource::CityCountyEmployment);
    let answer = record(&finance, c.revision(1, &[(6, 11, 30, 60)])).await;
    assert_eq!((answer.lines[0].amount.unwrap().fen, answer.lines[0].zero_reason()), (0, ZeroReason::CapExhausted));
    // The afternoon is a half-day of its own.
    let answer = record(&finance, c.revision(2, &[(6, 11, 30, 60), (6, 14, 0, 60)])).await;
    let written = brief(&answer.lines, &[(&c, "C")]);
    assert_eq!(written, [("C", Reversal, 0, 0), ("C", Charge, 0, 0), ("C", Charge, 1, 10_000)]);
    assert_eq!(total(&all_lines(&finance).await), 50_000);
    finance.stop().await;
    registry.stop().await;
}

async fn an_earlier_session_arriving_late_takes_the_cap_by_reversal(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let b = Assignment::new(&expert, BureauCode::Heshan, FundSource::ProvincialSkillTraining);
    // B (10:45, 90 min) is accepted first and paid 2 class hours.
    let first = record(&finance, b.revision(1, &[(7, 10, 45, 90)])).await;
    assert_eq!(brief(&first.lines, &[(&b, "B")]), [("B", Charge, 2, 20_000)]);
    // A (08:30, 135 min) arrives later but started earlier: it takes 3, B keeps 1.
    let answer = record(&finance, a.revision(1, &[(7, 8, 30, 135)])).await;
    let names = [(&a, "A"), (&b, "B")];
    assert_eq!(
        brief(&answer.lines, &names),
        [("B", Reversal, -2, -20_000), ("A", Charge, 3, 30_000), ("B", Charge, 1, 10_000)]
    );
    let reversal = &answer.lines[0];
    assert_eq!(reversal.reverses_line_id, first.lines[0].id);
    assert_eq!(reversal.reversal_cause(), ReversalCause::CapReallocation);
    let reallocated = &answer.lines[2];
    assert_eq!(
        (reallocated.revision, reallocated.paying_bureau()),
        (1, BureauCode::Heshan),
        "B's own revision and payer"
    );
    assert_eq!(total(&all_lines(&finance).await), 40_000);
    finance.stop().await;
    registry.stop().await;
}

async fn a_newer_revision_reverses_and_reapplies_and_an_older_one_is_ignored(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let names = [(&a, "A")];
    let first = record(&finance, a.revision(1, &[(8, 9, 0, 165)])).await;
    assert_eq!(brief(&first.lines, &names), [("A", Charge, 3, 30_000)]);
    // Revision 3 (a correction to 180 minutes) arrives before revision 2.
    let third = record(&finance, a.revision(3, &[(8, 9, 0, 180)])).await;
    assert_eq!(brief(&third.lines, &names), [("A", Reversal, -3, -30_000), ("A", Charge, 4, 40_000)]);
    assert_eq!((third.lines[0].reversal_cause(), third.held_revision), (ReversalCause::NewRevision, 3));
    assert_eq!(third.lines[0].reverses_line_id, first.lines[0].id);
    let second = record(&finance, a.revision(2, &[(8, 9, 0, 100)])).await;
    assert!(!second.applied);
    assert_eq!(second.held_revision, 3);
    assert!(second.lines.is_empty());
    // A revision may move the work to another day: the old slot's line is reversed.
    let fourth = record(&finance, a.revision(4, &[(9, 14, 30, 90)])).await;
    assert_eq!(brief(&fourth.lines, &names), [("A", Reversal, -4, -40_000), ("A", Charge, 2, 20_000)]);
    let lines = all_lines(&finance).await;
    assert_eq!((lines.len(), total(&lines)), (5, 20_000), "nothing edited or deleted");
    finance.stop().await;
    registry.stop().await;
}

async fn a_voided_report_gives_zero_lines_and_frees_the_cap(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let b = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    record(&finance, a.revision(1, &[(13, 8, 30, 180)])).await;
    let capped = record(&finance, b.revision(1, &[(13, 11, 0, 90)])).await;
    assert_eq!(capped.lines[0].zero_reason(), ZeroReason::CapExhausted);
    let reason = "incident inc_1: gifts accepted, 9(八)";
    let answer = record(&finance, a.voided(2, &[(13, 8, 30, 180)], reason)).await;
    let names = [(&a, "A"), (&b, "B")];
    assert_eq!(
        brief(&answer.lines, &names),
        [("A", Reversal, -4, -40_000), ("B", Reversal, 0, 0), ("A", Charge, 0, 0), ("B", Charge, 2, 20_000)]
    );
    let voided = &answer.lines[2];
    assert_eq!((voided.zero_reason(), voided.zero_detail.as_str()), (ZeroReason::ReportVoided, reason));
    assert_eq!(voided.class_hours, 4, "the class hours worked stay on record");
    assert_eq!(total(&all_lines(&finance).await), 20_000);
    finance.stop().await;
    registry.stop().await;
}

async fn a_civil_servant_on_the_work_date_gets_a_zero_line(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    become_civil_servant(&registry, &expert, april(10)).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let answer = record(&finance, a.revision(1, &[(9, 9, 0, 165), (10, 9, 0, 165)])).await;
    let paid = &answer.lines[0];
    assert_eq!(
        (paid.work_date, paid.amount.unwrap().fen, paid.zero_reason()),
        (Some(april(9)), 30_000, ZeroReason::Unspecified)
    );
    let exempt = &answer.lines[1];
    assert_eq!((exempt.work_date, exempt.amount.unwrap().fen), (Some(april(10)), 0));
    assert_eq!((exempt.zero_reason(), exempt.billable_class_hours), (ZeroReason::CivilServant, 3));
    finance.stop().await;
    registry.stop().await;
}

async fn the_same_request_id_twice_has_one_effect(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let first = record(&finance, a.revision(1, &[(14, 9, 0, 165)])).await;
    let again = record(&finance, a.revision(1, &[(14, 9, 0, 165)])).await;
    assert_eq!(first, again, "the first answer again");
    assert_eq!(all_lines(&finance).await.len(), 1);
    // The same key for other content is refused; a key that is not `<assignment>:<revision>` too.
    let err = dispatch(&finance).record_sessions(a.revision(1, &[(14, 9, 0, 100)])).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let mut odd = a.revision(2, &[(14, 9, 0, 100)]);
    odd.request_id = "some-uuid".into();
    let err = dispatch(&finance).record_sessions(odd).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A session's half-day is the one its start time falls in (D2: AM before 12:30).
    let mut afternoon = a.revision(2, &[(14, 9, 0, 100)]);
    afternoon.sessions[0].half_day = HalfDay::Pm as i32;
    let err = dispatch(&finance).record_sessions(afternoon).await.unwrap_err();
    let fields: Vec<_> =
        err.get_error_details().bad_request().unwrap().field_violations.iter().map(|f| f.field.clone()).collect();
    assert_eq!(fields, ["sessions[0].half_day"]);

    let mut auditor = staff(&finance, Role::Auditor, None);
    let entries = auditor
        .list_audit_entries(ListAuditEntriesRequest { entity_type: "assignment".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(entries.len(), 1, "one audit entry for the one effect");
    assert_eq!(entries[0].entity_id, a.id);
    assert_eq!(entries[0].actor.as_ref().unwrap().subject, "county_operator-user", "the user dispatch acted for");
    finance.stop().await;
    registry.stop().await;
}

async fn lines_are_seen_by_their_bureau_and_their_expert_only(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let b = Assignment::new(&expert, BureauCode::Heshan, FundSource::ProvincialSkillTraining);
    let line_a = record(&finance, a.revision(1, &[(15, 9, 0, 90)])).await.lines.remove(0);
    record(&finance, b.revision(1, &[(15, 14, 30, 90)])).await;

    let mut xinhui = staff(&finance, Role::Finance, Some(Bureau::Xinhui));
    let own = xinhui.list_fee_lines(ListFeeLinesRequest::default()).await.unwrap().into_inner().lines;
    assert_eq!(own.iter().map(|l| l.assignment_id.as_str()).collect::<Vec<_>>(), [a.id.as_str()]);
    let got = xinhui.get_fee_line(GetFeeLineRequest { id: line_a.id.clone() }).await.unwrap().into_inner().line;
    assert_eq!(got.as_ref(), Some(&line_a));
    let mut heshan = staff(&finance, Role::Finance, Some(Bureau::Heshan));
    let err = heshan.get_fee_line(GetFeeLineRequest { id: line_a.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let other = ListFeeLinesRequest { paying_bureau: BureauCode::Xinhui as i32, ..Default::default() };
    assert_eq!(heshan.list_fee_lines(other).await.unwrap_err().code(), Code::PermissionDenied);

    let mut me = FinanceServiceClient::new(with_token(&finance.channel, Some(&expert_token(&expert))));
    let mine = me.list_fee_lines(ListFeeLinesRequest::default()).await.unwrap().into_inner().lines;
    assert_eq!(mine.len(), 2);
    let mut someone_else =
        FinanceServiceClient::new(with_token(&finance.channel, Some(&expert_token(&new_prefixed_id("exp_")))));
    let err = someone_else.get_fee_line(GetFeeLineRequest { id: line_a.id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(someone_else.list_fee_lines(ListFeeLinesRequest::default()).await.unwrap().into_inner().lines.is_empty());

    // Filters and pages.
    let mut admin = staff(&finance, Role::CityAdmin, None);
    let by_fund = ListFeeLinesRequest { fund_source: FundSource::ProvincialSkillTraining as i32, ..Default::default() };
    let lines = admin.list_fee_lines(by_fund).await.unwrap().into_inner().lines;
    assert_eq!(lines.iter().map(|l| l.assignment_id.as_str()).collect::<Vec<_>>(), [b.id.as_str()]);
    let page = |token: String| ListFeeLinesRequest {
        page: Some(common::PageRequest { page_size: 1, page_token: token }),
        ..Default::default()
    };
    let first = admin.list_fee_lines(page(String::new())).await.unwrap().into_inner();
    assert_eq!(first.lines, std::slice::from_ref(&line_a));
    let second = admin.list_fee_lines(page(first.next_page_token)).await.unwrap().into_inner();
    assert_eq!((second.lines[0].assignment_id.as_str(), second.next_page_token.as_str()), (b.id.as_str(), ""));
    // RecordSessions is dispatch's alone.
    let err = admin.record_sessions(a.revision(2, &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    finance.stop().await;
    registry.stop().await;
}

async fn without_the_registry_nothing_is_written_and_the_call_is_unavailable(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    // The registry answers an error: an expert it does not know.
    let stranger = Assignment::new(&new_prefixed_id("exp_"), BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let err = dispatch(&finance).record_sessions(stranger.revision(1, &[(16, 9, 0, 90)])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);

    let expert = create_expert(&registry).await;
    registry.stop().await;
    let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
    let err = dispatch(&finance).record_sessions(a.revision(1, &[(16, 9, 0, 90)])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(all_lines(&finance).await.is_empty());
    let mut auditor = staff(&finance, Role::Auditor, None);
    let entries = auditor.list_audit_entries(ListAuditEntriesRequest::default()).await.unwrap().into_inner().entries;
    assert!(entries.is_empty(), "nothing audited either");
    finance.stop().await;
}

async fn revisions_sharing_a_slot_at_the_same_time_do_not_interleave(backend: Backend) {
    let (registry, finance) = spawn_finance_with_registry(backend).await;
    let expert = create_expert(&registry).await;
    // Each morning: A 08:30 135 min and B 10:45 90 min sent at once; whichever lands first, the
    // morning ends with A 3 class hours and B 1.
    for day in 20..25 {
        let a = Assignment::new(&expert, BureauCode::Xinhui, FundSource::CityCountyEmployment);
        let b = Assignment::new(&expert, BureauCode::Heshan, FundSource::CityCountyEmployment);
        let (mut to_a, mut to_b) = (dispatch(&finance), dispatch(&finance));
        let (ra, rb) = tokio::join!(
            to_a.record_sessions(a.revision(1, &[(day, 8, 30, 135)])),
            to_b.record_sessions(b.revision(1, &[(day, 10, 45, 90)])),
        );
        let written: Vec<FeeLine> =
            ra.unwrap().into_inner().lines.into_iter().chain(rb.unwrap().into_inner().lines).collect();
        assert_eq!(total(&written), 40_000, "day {day}: {:?}", brief(&written, &[(&a, "A"), (&b, "B")]));
    }
    assert_eq!(total(&all_lines(&finance).await), 5 * 40_000);
    finance.stop().await;
    registry.stop().await;
}
