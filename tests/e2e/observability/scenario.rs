//! One pass through the four services, as the bureau works: an institution, experts appointed
//! (each with a citizen ID number, a mobile number and a bank account), a task, its draw (the
//! pool streamed from the registry), the primaries' acceptances, a worked session, the report
//! accepted, and the fee line finance writes from the revision dispatch's outbox delivers.
//!
//! The draw's three calls (prepare, witness, execute) carry one caller trace id, and so does
//! the acceptance of the report, so the tests can find each operation's spans.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use supervision_proto::{
    common::{
        self, BankAccount, BureauCode, CivilServantStatus, ContactDetails, Date, ExpertCategory, ExpertKind, HalfDay,
        IdentityDocument, IdentityDocumentType, Locality, Organisation, TimeOfDay, locality::Place,
    },
    dispatch::{
        Accept, AcceptReportRequest, Activity, ActivityKind, ActivitySubject, AssignmentRole, CreateTaskRequest,
        ExecuteDrawRequest, PrepareDrawRequest, RecordWorkedSessionsRequest, ReportContent, RespondToAssignmentRequest,
        SubmitReportRequest, TaskMode, TaskOrigin, TaskSession, WitnessDrawRequest, WorkedSession,
        dispatch_service_client::DispatchServiceClient, respond_to_assignment_request::Answer,
    },
    finance::{FeeLine, ListFeeLinesRequest, finance_service_client::FinanceServiceClient},
    recruitment::{ListCallsRequest, recruitment_service_client::RecruitmentServiceClient},
    registry::{
        AppointExpertRequest, CategoryHolding, CreateInstitutionRequest, ExpertProfile, GetExpertRequest,
        GetInstitutionRequest, InstitutionType, registry_service_client::RegistryServiceClient,
    },
};
use testkit::{AuthedChannel, Backend, Bureau, Deployment, Role, RunningService, identity, service_acting_for};

use crate::{random_span_id, random_trace_id};

const SCHOOL_CODE: &str = "91440703MA4W00001M";

/// How many experts are appointed: the last is employed by the supervised school (excluded as
/// conflicted); two primaries and two backups are drawn from the others.
pub const EXPERTS: u32 = 7;

/// The personal numbers of expert `n`: a valid resident ID number (GB 11643 check character),
/// a mobile number and a 19-digit bank account, none shared with another expert.
pub struct Person {
    pub id_number: String,
    pub mobile: String,
    pub account: String,
}

pub fn person(n: u32) -> Person {
    let body = format!("44070519850315{:03}", 100 + n);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    Person {
        id_number: format!("{body}{check}"),
        mobile: format!("1392046{:04}", 1000 + n),
        account: format!("622202120304{:07}", 1_000_000 + n),
    }
}

/// What the scenario leaves behind for the tests to look at.
pub struct Outcome {
    /// The caller trace id sent with PrepareDraw, WitnessDraw and ExecuteDraw.
    pub draw_trace: String,
    /// The caller trace id sent with AcceptReport.
    pub report_trace: String,
    pub fee_lines: Vec<FeeLine>,
}

fn traced<T>(message: T, trace_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let traceparent = format!("00-{trace_id}-{}-01", random_span_id());
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    request
}

fn operator(dispatch: &RunningService, subject: &str) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(dispatch.as_user(subject, Role::CountyOperator, Some(Bureau::Pengjiang)))
}

fn expert(dispatch: &RunningService, expert_id: &str) -> DispatchServiceClient<AuthedChannel> {
    DispatchServiceClient::new(identity::with_token(&dispatch.channel, Some(&identity::expert_token(expert_id))))
}

/// Sets `service`'s clock to `(y, m, d, h, min)` UTC.
fn clock_at(service: &RunningService, at: (i32, u32, u32, u32, u32)) {
    let target = Utc.with_ymd_and_hms(at.0, at.1, at.2, at.3, at.4, 0).unwrap();
    service.set_clock_offset((target - Utc::now()).num_seconds());
}

async fn appoint(registry: &RunningService, n: u32, employer_code: &str) -> String {
    let mut recruitment =
        RegistryServiceClient::new(service_acting_for(&registry.channel, "recruitment", Role::CityAdmin, None));
    let p = person(n);
    let application = format!("app_{}", uuid::Uuid::now_v7().simple());
    let profile = ExpertProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("监督专家{n}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: p.id_number.clone(),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(BureauCode::Xinhui as i32)) }),
        contact: Some(ContactDetails { mobile: p.mobile.clone(), ..Default::default() }),
        employer: Some(common::Employer {
            organisation: Some(Organisation {
                name: if employer_code.is_empty() {
                    format!("江门市第{n}职业学校")
                } else {
                    "蓬江职业培训学校".into()
                },
                credit_code: employer_code.into(),
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
        bank_account: Some(BankAccount {
            holder_name: format!("监督专家{n}"),
            bank_name: "中国工商银行".into(),
            branch_name: "江门分行营业部".into(),
            account_number: p.account.clone(),
            masked: false,
        }),
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
    recruitment.appoint_expert(request).await.unwrap().into_inner().expert.unwrap().id
}

/// Runs the scenario on a running deployment.
pub async fn run(d: &Deployment) -> Outcome {
    let (registry, dispatch, finance) = (&d.registry, &d.dispatch, &d.finance);
    // Monday 2026-06-01 10:00 in Jiangmen; the session is on Monday 2026-06-08.
    clock_at(dispatch, (2026, 6, 1, 2, 0));

    let mut admin = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let school = admin
        .create_institution(CreateInstitutionRequest {
            request_id: "obs-school".into(),
            r#type: InstitutionType::VocationalTrainingSchool as i32,
            name: "蓬江职业培训学校".into(),
            credit_code: SCHOOL_CODE.into(),
            parent_id: String::new(),
            county: BureauCode::Pengjiang as i32,
            address: "江门市蓬江区".into(),
            head: "李校长".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .institution
        .unwrap()
        .id;
    let mut expert_ids = Vec::new();
    for n in 1..=EXPERTS {
        let employer = if n == EXPERTS { SCHOOL_CODE } else { "" };
        expert_ids.push(appoint(registry, n, employer).await);
    }
    // The numbers are in the system: an administrator reads them in full.
    let read = admin.get_expert(GetExpertRequest { id: expert_ids[0].clone() }).await.unwrap().into_inner();
    let profile = read.expert.unwrap().profile.unwrap();
    assert_eq!(profile.identity.unwrap().number, person(1).id_number);
    assert_eq!(profile.contact.unwrap().mobile, person(1).mobile);
    // Mistakes that quote personal numbers back: refused, and their text must not leak either.
    let err = admin.get_institution(GetInstitutionRequest { id: person(1).id_number }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = admin.get_expert(GetExpertRequest { id: person(2).mobile }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    // Recruitment answers too (its request metrics).
    let mut calls = RecruitmentServiceClient::new(d.recruitment.as_role(Role::CityAdmin, None));
    calls.list_calls(ListCallsRequest::default()).await.unwrap();

    let mut op = operator(dispatch, "operator-a");
    let task = CreateTaskRequest {
        request_id: "obs-task".into(),
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
        fund_source: common::FundSource::CityCountyEmployment as i32,
        ..Default::default()
    };
    let task_id = op.create_task(task).await.unwrap().into_inner().task.unwrap().id;

    // The draw: one trace from the operator's side.
    let draw_trace = random_trace_id();
    let prepare = PrepareDrawRequest { request_id: "obs-prep".into(), task_id, kind: 0 };
    let draw = op.prepare_draw(traced(prepare, &draw_trace)).await.unwrap().into_inner().draw.unwrap();
    let witness =
        WitnessDrawRequest { request_id: "obs-wit".into(), draw_id: draw.id.clone(), dice_digits: String::new() };
    operator(dispatch, "operator-b").witness_draw(traced(witness, &draw_trace)).await.unwrap();
    let execute = ExecuteDrawRequest { request_id: "obs-exec".into(), draw_id: draw.id.clone() };
    let executed = op.execute_draw(traced(execute, &draw_trace)).await.unwrap().into_inner();
    let mut primaries: Vec<_> =
        executed.assignments.iter().filter(|a| a.role == AssignmentRole::Primary as i32).cloned().collect();
    primaries.sort_by_key(|a| a.position);
    assert!(!primaries.is_empty(), "the draw placed primaries");

    for (i, a) in primaries.iter().enumerate() {
        let accept = RespondToAssignmentRequest {
            request_id: format!("obs-acc-{i}"),
            assignment_id: a.id.clone(),
            answer: Some(Answer::Accept(Accept { no_conflict_declared: true, note: String::new() })),
            on_behalf: None,
        };
        expert(dispatch, &a.expert_id).respond_to_assignment(accept).await.unwrap();
    }
    // The session is over: 16:00 on its day.
    clock_at(dispatch, (2026, 6, 8, 8, 0));
    let a = &primaries[0];
    let mut worker = expert(dispatch, &a.expert_id);
    let sessions = RecordWorkedSessionsRequest {
        request_id: "obs-ws".into(),
        assignment_id: a.id.clone(),
        sessions: vec![WorkedSession {
            task_session_id: String::new(),
            date: Some(Date { year: 2026, month: 6, day: 8 }),
            half_day: HalfDay::Am as i32,
            start_time: Some(TimeOfDay { hours: 9, minutes: 0 }),
            minutes: 180,
            note: String::new(),
        }],
        on_behalf: None,
    };
    worker.record_worked_sessions(sessions).await.unwrap();
    let submit = SubmitReportRequest {
        request_id: "obs-rep".into(),
        assignment_id: a.id.clone(),
        content: Some(ReportContent {
            findings: "考核按规程进行，未发现违规。".into(), ..Default::default()
        }),
        on_behalf: None,
    };
    let report = worker.submit_report(submit).await.unwrap().into_inner().report.unwrap();

    // The acceptance: one trace from the operator through dispatch's outbox into finance.
    let report_trace = random_trace_id();
    let accept = AcceptReportRequest { request_id: "obs-acc-rep".into(), report_id: report.id, note: String::new() };
    op.accept_report(traced(accept, &report_trace)).await.unwrap();

    let mut reader = FinanceServiceClient::new(finance.as_role(Role::Finance, Some(Bureau::Pengjiang)));
    let mut fee_lines = Vec::new();
    for _ in 0..150 {
        let request = ListFeeLinesRequest { assignment_id: a.id.clone(), ..Default::default() };
        fee_lines = reader.list_fee_lines(request).await.unwrap().into_inner().lines;
        if !fee_lines.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fee_lines.len(), 1, "finance wrote the fee line of the session worked");
    Outcome { draw_trace, report_trace, fee_lines }
}

/// Starts the four services on `backend` and runs the scenario.
pub async fn deployed(backend: Backend) -> (Deployment, Outcome) {
    let deployment = testkit::spawn_deployment(backend).await;
    let outcome = run(&deployment).await;
    (deployment, outcome)
}
