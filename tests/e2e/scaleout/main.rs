//! Scale-out (issue 9 item 4): two replicas of each of the four services, each service's pair on
//! its own PostgreSQL database, all eight on one Redis, replica `k` of a caller calling replica
//! `1 - k` of its callee (see `testkit::ScaledOut`). Clients go round robin over a service's two
//! replicas and retry UNAVAILABLE, ABORTED, CANCELLED and UNKNOWN with the same request id, as
//! the contract allows. Several scenarios run at once, each the whole of the work:
//!
//! 1. recruitment: a call, four applications with their materials, the reviews, a publicity on
//!    the test clock, the appointment decided and delivered to the registry through the outbox;
//! 2. the registry: an institution; dispatch: a task, its draw (prepare, witness, execute; a
//!    draw whose frozen list concurrent draws took is abandoned and drawn again), the primaries
//!    accept;
//! 3. dispatch: sessions worked, reports submitted and accepted, the fee revisions delivered to
//!    finance through the outbox; finance: a payment batch of the scenario's lines drafted,
//!    submitted, approved by another user and paid.
//!
//! While the second phase runs, replica 0 of every service is stopped abruptly and restarted on
//! the same database and address. At the end, from a client-side ledger of every acknowledged
//! operation and SQL over each service's database: every appointment, assignment, fee line and
//! payment exists exactly once, no expert holds two tasks on a half-day, no fee line is written
//! twice for an assignment revision, every outbox is drained and no delivery parked, and each
//! job's lease had one holder at every sample.
//!
//! `make test` runs 3 scenarios; `make test-long` (SUPERVISION_TEST_LONG=1) runs 30, at most 10 of
//! them calling at the same time (see [`IN_FLIGHT`]).

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration as StdDuration, Instant},
};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use supervision_proto::{
    common::{
        CivilServantStatus, ContactDetails, Date, DateRange, EligibilityCondition, ExpertCategory, ExpertKind,
        FundSource, HalfDay, IdentityDocument, IdentityDocumentType, Locality, TimeOfDay, YearMonth, locality::Place,
    },
    dispatch::{
        AbandonDrawRequest, Accept, AcceptReportRequest, Activity, ActivityKind, ActivitySubject, AssignmentRole,
        CreateTaskRequest, ExecuteDrawRequest, PrepareDrawRequest, RecordWorkedSessionsRequest, ReportContent,
        RespondToAssignmentRequest, SubmitReportRequest, TaskMode, TaskOrigin, TaskSession, WitnessDrawRequest,
        WorkedSession, dispatch_service_client::DispatchServiceClient, respond_to_assignment_request::Answer,
    },
    finance::{
        ApprovePaymentBatchRequest, CreatePaymentBatchRequest, ListFeeLinesRequest, MarkPaymentBatchPaidRequest,
        PaymentBatchStatus, SubmitPaymentBatchRequest, finance_service_client::FinanceServiceClient,
    },
    recruitment::{
        ApplicantProfile, CategoryClaim, ConcludeReviewRequest, ConditionAttestation, CreateApplicationRequest,
        CreateCallRequest, CreatePublicityBatchRequest, DecideAppointmentsRequest, DeliveryStatus,
        ListAppointmentDecisionsRequest, MaterialKind, Publication, PublicationChannel, PublishPublicityBatchRequest,
        RecordCallPublicationRequest, RecordReviewRequest, RequiredMaterial, ReviewInput, ReviewOutcome, ReviewTarget,
        ReviewVerdict, SubmitApplicationRequest, UploadMaterialRequest,
        recruitment_service_client::RecruitmentServiceClient, review_target::Item, upload_material_request::Owner,
    },
    registry::{CreateInstitutionRequest, InstitutionType, registry_service_client::RegistryServiceClient},
};
use testkit::{AuthedChannel, Bureau, Role, ScaledOut, ServiceKind};
use tokio::sync::Barrier;
use tonic::{Code, Status, transport::Channel};

/// Scenarios calling at the same time (the others wait for a turn within the phase).
const IN_FLIGHT: usize = 10;
/// Applications (and so experts appointed) per scenario.
const EXPERTS_PER_SCENARIO: usize = 4;
/// The bureaus that dispatch and pay: the scenarios take them in turn. The experts live in
/// Kaiping, so no scenario's institution is in their county.
const BUREAUS: [Bureau; 6] =
    [Bureau::Pengjiang, Bureau::Jianghai, Bureau::Xinhui, Bureau::Taishan, Bureau::Heshan, Bureau::Enping];

// ---------------------------------------------------------------------------------------------
// Clients: round robin over the replicas, retrying what a stopped replica answers.

/// What a client may retry with the same request id: the replica was down, the transaction
/// lost a race, or the connection broke mid-call (the outcome unknown to the client).
fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Aborted | Code::Cancelled | Code::Unknown)
}

#[derive(Clone)]
struct Net {
    channels: Arc<BTreeMap<&'static str, [Channel; 2]>>,
    next: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
}

impl Net {
    fn new(cluster: &ScaledOut) -> Self {
        let channels = ServiceKind::ALL.iter().map(|k| (k.name(), cluster.pair(*k).channels.clone())).collect();
        Self { channels: Arc::new(channels), next: Arc::default(), calls: Arc::default(), retries: Arc::default() }
    }

    /// Calls `f` on the next replica of `kind` with `token` until it answers other than a
    /// retryable status (within a minute).
    async fn try_call<T, F, Fut>(&self, kind: ServiceKind, token: &str, mut f: F) -> Result<T, Status>
    where
        F: FnMut(AuthedChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed) % 2;
            let channel = testkit::with_token(&self.channels[kind.name()][k], Some(token));
            self.calls.fetch_add(1, Ordering::Relaxed);
            match f(channel).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(s) if retryable(&s) && started.elapsed() < StdDuration::from_secs(60) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    async fn call<T, F, Fut>(&self, kind: ServiceKind, token: &str, what: &str, f: F) -> T
    where
        F: FnMut(AuthedChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match self.try_call(kind, token, f).await {
            Ok(answer) => answer,
            Err(s) => panic!("{what}: {:?} {} {:?}", s.code(), s.message(), reason(&s)),
        }
    }
}

fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|e| e.reason.clone()).unwrap_or_default()
}

/// A token valid for 1000 days: the clock moves by weeks.
fn token(subject: &str, role: Role, bureau: Option<Bureau>, expert_id: Option<&str>) -> String {
    testkit::identity::token_for(supervision_kit::auth::TokenRequest {
        subject: subject.into(),
        role,
        bureau,
        expert_id: expert_id.map(str::to_owned),
        ttl: StdDuration::from_secs(1000 * 86_400),
    })
}

fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// The test clock, shared by every service and moved only forward.

struct Clock {
    cluster_files: Vec<std::path::PathBuf>,
    offset: Mutex<i64>,
}

impl Clock {
    fn write(&self, offset: i64) {
        for file in &self.cluster_files {
            let partial = file.with_extension("partial");
            std::fs::write(&partial, offset.to_string()).unwrap();
            std::fs::rename(&partial, file).unwrap();
        }
    }

    /// Moves the clocks to `at` unless they are already past it.
    fn at_least(&self, at: DateTime<Utc>) {
        let mut offset = self.offset.lock().unwrap();
        let wanted = ((at - Utc::now()).num_milliseconds() + 999).div_euclid(1000);
        if wanted > *offset {
            *offset = wanted;
            self.write(wanted);
        }
    }

    /// Moves the clocks `seconds` further (relays' backoffs pass sooner).
    fn advance(&self, seconds: i64) {
        let mut offset = self.offset.lock().unwrap();
        *offset += seconds;
        self.write(*offset);
    }
}

fn shanghai_today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

/// `hour`:00 Asia/Shanghai on `day`.
fn shanghai(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(day.and_hms_opt(hour, 0, 0).unwrap() - Duration::hours(8)))
}

fn pdate(d: NaiveDate) -> Date {
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

// ---------------------------------------------------------------------------------------------
// What each scenario works with and leaves behind.

/// The dates every scenario shares.
#[derive(Clone, Copy)]
struct Calendar {
    today: NaiveDate,
    /// The first weekday of the session weeks: the first Monday three weeks from today, so the
    /// tasks created the morning after the publicity give the five working days' notice.
    sessions_from: NaiveDate,
}

impl Calendar {
    fn new() -> Self {
        let today = shanghai_today();
        let mut monday = today + Duration::days(21);
        while monday.weekday() != Weekday::Mon {
            monday += Duration::days(1);
        }
        Self { today, sessions_from: monday }
    }

    fn publicity(&self) -> (NaiveDate, NaiveDate) {
        (self.today + Duration::days(1), self.today + Duration::days(7))
    }

    /// The morning on which scenario `i` works: six scenarios (one per bureau) a day, weekdays.
    fn session_day(&self, i: usize) -> NaiveDate {
        let slot = (i / BUREAUS.len()) as i64;
        self.sessions_from + Duration::days(slot / 5 * 7 + slot % 5)
    }
}

/// What the clients were told succeeded.
#[derive(Debug, Default)]
struct Ledger {
    /// Expert ids of appointments delivered to the registry.
    appointments: Vec<String>,
    /// Primary assignments of executed draws.
    assignments: Vec<String>,
    /// Fee lines finance listed for the accepted reports.
    fee_lines: Vec<String>,
    /// Paid batches, with the fee lines each holds.
    payments: Vec<(String, Vec<String>)>,
    /// Draws abandoned and drawn again because concurrent draws took the frozen list.
    redraws: usize,
}

// ---------------------------------------------------------------------------------------------
// Phase 1: recruitment up to the publicity.

/// A resident identity number with its GB 11643 check character, unique per `k`.
fn id_number(k: usize) -> String {
    let birth = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Duration::days(k as i64 * 3);
    let body = format!("440703{}123", birth.format("%Y%m%d"));
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// A unified social credit code (GB 32100) with its check character, unique per `i`.
fn credit_code(i: usize) -> String {
    const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
    let body = format!("52440703MJ{:07}", 1000 + i);
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| ALPHABET.iter().position(|&a| a == b).expect("an allowed character") as u32 * w)
        .sum();
    format!("{body}{}", ALPHABET[((31 - sum % 31) % 31) as usize] as char)
}

const CONDITIONS: [EligibilityCondition; 4] = [
    EligibilityCondition::Commitment,
    EligibilityCondition::Integrity,
    EligibilityCondition::Competence,
    EligibilityCondition::CleanRecord,
];

fn applicant_profile(k: usize) -> ApplicantProfile {
    ApplicantProfile {
        kind: ExpertKind::Individual as i32,
        name: format!("扩容专家{k}"),
        identity: Some(IdentityDocument {
            r#type: IdentityDocumentType::ResidentIdCard as i32,
            number: id_number(k),
            issuing_country: String::new(),
            masked: false,
        }),
        locality: Some(Locality { place: Some(Place::County(Bureau::Kaiping.to_proto() as i32)) }),
        contact: Some(ContactDetails {
            mobile: format!("139{:08}", 20_000_000 + k),
            email: format!("expert{k}@example.com"),
            address: "江门市开平市长沙街道示例路 1 号".into(),
            masked: false,
        }),
        categories: vec![CategoryClaim { category: ExpertCategory::Technician as i32, ..Default::default() }],
        conditions: CONDITIONS
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

fn review_items(material: &str) -> Vec<ReviewInput> {
    let item = |target: Item| ReviewInput {
        target: Some(ReviewTarget { item: Some(target) }),
        verdict: ReviewVerdict::Approved as i32,
        reason: String::new(),
    };
    let mut items: Vec<ReviewInput> = CONDITIONS.iter().map(|c| item(Item::Condition(*c as i32))).collect();
    items.push(item(Item::Category(ExpertCategory::Technician as i32)));
    items.push(item(Item::MaterialId(material.into())));
    items
}

/// The call, the applications submitted and passed, the publicity published: the applications.
async fn recruit(net: &Net, cal: Calendar, i: usize) -> Vec<String> {
    use ServiceKind::Recruitment as R;
    let staff = token(&format!("admin-{i}"), Role::CityAdmin, None, None);
    let reviewer = token(&format!("reviewer-{i}"), Role::CityReviewer, None, None);
    let now = Utc::now();
    let ts = |t: DateTime<Utc>| prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 };
    let create_call = CreateCallRequest {
        request_id: rid(),
        year: cal.today.year(),
        title: format!("社会监督专家征集通知（扩容测试 {i}）"),
        body: "现面向社会公开征集职业技能培训评价社会监督专家。".into(),
        categories_sought: vec![ExpertCategory::Technician as i32],
        specialties_sought: vec![],
        industries_sought: vec!["制造业".into()],
        application_start_time: Some(ts(now - Duration::days(1))),
        application_end_time: Some(ts(now + Duration::days(5))),
        required_materials: vec![RequiredMaterial {
            kind: MaterialKind::CategoryEvidence as i32,
            category: ExpertCategory::Technician as i32,
            condition: 0,
            description: "技师职业资格证书".into(),
            mandatory: true,
        }],
    };
    let call = net
        .call(R, &staff, "CreateCall", |ch| {
            let r = create_call.clone();
            async move { RecruitmentServiceClient::new(ch).create_call(r).await }
        })
        .await
        .call
        .unwrap()
        .id;
    let publish = RecordCallPublicationRequest {
        request_id: rid(),
        call_id: call.clone(),
        channel: PublicationChannel::OfficialWebsite as i32,
        publish_date: Some(pdate(cal.today)),
        address: format!("https://hrss.jiangmen.gov.cn/tzgg/scaleout-{i}.html"),
    };
    net.call(R, &staff, "RecordCallPublication", |ch| {
        let r = publish.clone();
        async move { RecruitmentServiceClient::new(ch).record_call_publication(r).await }
    })
    .await;

    let mut applications = Vec::new();
    for n in 0..EXPERTS_PER_SCENARIO {
        let k = i * EXPERTS_PER_SCENARIO + n;
        let me = token(&format!("applicant-{k}"), Role::Applicant, None, None);
        let create = CreateApplicationRequest {
            request_id: rid(),
            call_id: call.clone(),
            profile: Some(applicant_profile(k)),
            replaces_expert_id: String::new(),
            on_behalf: None,
        };
        let app = net
            .call(R, &me, "CreateApplication", |ch| {
                let r = create.clone();
                async move { RecruitmentServiceClient::new(ch).create_application(r).await }
            })
            .await
            .application
            .unwrap()
            .id;
        let upload = UploadMaterialRequest {
            request_id: rid(),
            owner: Some(Owner::ApplicationId(app.clone())),
            kind: MaterialKind::CategoryEvidence as i32,
            category: ExpertCategory::Technician as i32,
            condition: 0,
            file_name: "技师证书.pdf".into(),
            media_type: "application/pdf".into(),
            content: format!("%PDF-1.4 certificate of applicant {k}").into_bytes(),
            description: "技师职业资格证书扫描件".into(),
        };
        let material = net
            .call(R, &me, "UploadMaterial", |ch| {
                let r = upload.clone();
                async move { RecruitmentServiceClient::new(ch).upload_material(r).await }
            })
            .await
            .material
            .unwrap()
            .id;
        let submit = SubmitApplicationRequest {
            request_id: rid(),
            application_id: app.clone(),
            commit_truthful: true,
            commitment_text_version: "2026-1".into(),
            on_behalf: None,
        };
        net.call(R, &me, "SubmitApplication", |ch| {
            let r = submit.clone();
            async move { RecruitmentServiceClient::new(ch).submit_application(r).await }
        })
        .await;
        let review =
            RecordReviewRequest { request_id: rid(), application_id: app.clone(), items: review_items(&material) };
        net.call(R, &reviewer, "RecordReview", |ch| {
            let r = review.clone();
            async move { RecruitmentServiceClient::new(ch).record_review(r).await }
        })
        .await;
        let conclude = ConcludeReviewRequest {
            request_id: rid(),
            application_id: app.clone(),
            outcome: ReviewOutcome::Passed as i32,
            reason: String::new(),
        };
        net.call(R, &reviewer, "ConcludeReview", |ch| {
            let r = conclude.clone();
            async move { RecruitmentServiceClient::new(ch).conclude_review(r).await }
        })
        .await;
        applications.push(app);
    }

    let (start, end) = cal.publicity();
    let create_batch = CreatePublicityBatchRequest {
        request_id: rid(),
        title: format!("社会监督专家拟聘人员名单公示（扩容测试 {i}）"),
        application_ids: applications.clone(),
        period: Some(DateRange { start: Some(pdate(start)), end: Some(pdate(end)) }),
    };
    let batch = net
        .call(R, &staff, "CreatePublicityBatch", |ch| {
            let r = create_batch.clone();
            async move { RecruitmentServiceClient::new(ch).create_publicity_batch(r).await }
        })
        .await
        .batch
        .unwrap()
        .id;
    let publish = PublishPublicityBatchRequest {
        request_id: rid(),
        batch_id: batch,
        publications: vec![Publication {
            channel: PublicationChannel::OfficialWebsite as i32,
            publish_date: Some(pdate(cal.today)),
            address: format!("https://hrss.jiangmen.gov.cn/gs/scaleout-{i}"),
            ..Default::default()
        }],
    };
    net.call(R, &staff, "PublishPublicityBatch", |ch| {
        let r = publish.clone();
        async move { RecruitmentServiceClient::new(ch).publish_publicity_batch(r).await }
    })
    .await;
    applications
}

// ---------------------------------------------------------------------------------------------
// Phase 2: appointment, institution, task, draw, acceptances.

/// The scenario's task and its accepted primaries `(assignment, expert)`.
struct Drawn {
    task_id: String,
    primaries: Vec<(String, String)>,
}

async fn appoint_and_draw(
    net: &Net,
    cal: Calendar,
    i: usize,
    applications: &[String],
    ledger: &Mutex<Ledger>,
) -> Drawn {
    use ServiceKind::{Dispatch as D, Recruitment as R, Registry as G};
    let staff = token(&format!("admin-{i}"), Role::CityAdmin, None, None);
    let decide =
        DecideAppointmentsRequest { request_id: rid(), application_ids: applications.to_vec(), ..Default::default() };
    let decided = net
        .call(R, &staff, "DecideAppointments", |ch| {
            let r = decide.clone();
            async move { RecruitmentServiceClient::new(ch).decide_appointments(r).await }
        })
        .await
        .decisions;
    assert_eq!(decided.len(), applications.len(), "one decision per application");

    // Recruitment's outbox delivers each appointment to the registry (through a replica that
    // may be stopped meanwhile) and records the registry's answer.
    for app in applications {
        let mut delivered = None;
        for _ in 0..600 {
            let list = ListAppointmentDecisionsRequest { application_id: app.clone(), ..Default::default() };
            let decisions = net
                .call(R, &staff, "ListAppointmentDecisions", |ch| {
                    let r = list.clone();
                    async move { RecruitmentServiceClient::new(ch).list_appointment_decisions(r).await }
                })
                .await
                .decisions;
            assert_eq!(decisions.len(), 1, "one decision for application {app}");
            if decisions[0].delivery == DeliveryStatus::Delivered as i32 {
                delivered = Some(decisions[0].expert_id.clone());
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        let expert = delivered.unwrap_or_else(|| panic!("the appointment of {app} was not delivered in a minute"));
        assert!(!expert.is_empty());
        ledger.lock().unwrap().appointments.push(expert);
    }

    let bureau = BUREAUS[i % BUREAUS.len()];
    let institution = CreateInstitutionRequest {
        request_id: rid(),
        r#type: InstitutionType::VocationalTrainingSchool as i32,
        name: format!("扩容测试职业培训学校{i}"),
        credit_code: credit_code(i),
        parent_id: String::new(),
        county: bureau.to_proto() as i32,
        address: "江门市示例路 1 号".into(),
        head: "李校长".into(),
    };
    let school = net
        .call(G, &staff, "CreateInstitution", |ch| {
            let r = institution.clone();
            async move { RegistryServiceClient::new(ch).create_institution(r).await }
        })
        .await
        .institution
        .unwrap()
        .id;

    let operator = token(&format!("operator-{i}"), Role::CountyOperator, Some(bureau), None);
    let witness = token(&format!("witness-{i}"), Role::CountyOperator, Some(bureau), None);
    let day = cal.session_day(i);
    let task = CreateTaskRequest {
        request_id: rid(),
        dispatching_bureau: bureau.to_proto() as i32,
        institution_id: school,
        title: "电工职业技能等级认定考核现场监督".into(),
        activity: Some(Activity {
            subject: ActivitySubject::SkillLevel as i32,
            kind: ActivityKind::Assessment as i32,
            reference: format!("扩容-电工-{i}"),
            description: String::new(),
        }),
        mode: TaskMode::OnSite as i32,
        origin: TaskOrigin::Routine as i32,
        sessions: vec![TaskSession { date: Some(pdate(day)), half_day: HalfDay::Am as i32, ..Default::default() }],
        team_size: Some(2),
        backup_count: Some(1),
        fund_source: FundSource::CityCountyEmployment as i32,
        ..Default::default()
    };
    let task_id = net
        .call(D, &operator, "CreateTask", |ch| {
            let r = task.clone();
            async move { DispatchServiceClient::new(ch).create_task(r).await }
        })
        .await
        .task
        .unwrap()
        .id;

    let mut executed = None;
    for attempt in 0..5 {
        let prepare = PrepareDrawRequest { request_id: rid(), task_id: task_id.clone(), kind: 0 };
        let draw = net
            .call(D, &operator, "PrepareDraw", |ch| {
                let r = prepare.clone();
                async move { DispatchServiceClient::new(ch).prepare_draw(r).await }
            })
            .await
            .draw
            .unwrap()
            .id;
        let sign = WitnessDrawRequest { request_id: rid(), draw_id: draw.clone(), dice_digits: String::new() };
        net.call(D, &witness, "WitnessDraw", |ch| {
            let r = sign.clone();
            async move { DispatchServiceClient::new(ch).witness_draw(r).await }
        })
        .await;
        let execute = ExecuteDrawRequest { request_id: rid(), draw_id: draw.clone() };
        match net
            .try_call(D, &operator, |ch| {
                let r = execute.clone();
                async move { DispatchServiceClient::new(ch).execute_draw(r).await }
            })
            .await
        {
            Ok(answer) => {
                executed = Some(answer);
                break;
            }
            Err(s) if s.code() == Code::FailedPrecondition && reason(&s) == "POOL_TOO_SMALL" && attempt < 4 => {
                ledger.lock().unwrap().redraws += 1;
                let abandon = AbandonDrawRequest {
                    request_id: rid(),
                    draw_id: draw,
                    reason: "concurrent draws took the frozen list".into(),
                };
                net.call(D, &operator, "AbandonDraw", |ch| {
                    let r = abandon.clone();
                    async move { DispatchServiceClient::new(ch).abandon_draw(r).await }
                })
                .await;
            }
            Err(s) => panic!("ExecuteDraw: {:?} {} {}", s.code(), s.message(), reason(&s)),
        }
    }
    let executed = executed.expect("a draw executed");
    let primaries: Vec<(String, String)> = executed
        .assignments
        .iter()
        .filter(|a| a.role == AssignmentRole::Primary as i32)
        .map(|a| (a.id.clone(), a.expert_id.clone()))
        .collect();
    assert_eq!(primaries.len(), 2, "two primaries drawn for scenario {i}");
    ledger.lock().unwrap().assignments.extend(primaries.iter().map(|(a, _)| a.clone()));

    for (assignment, expert) in &primaries {
        let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
        let accept = RespondToAssignmentRequest {
            request_id: rid(),
            assignment_id: assignment.clone(),
            answer: Some(Answer::Accept(Accept { no_conflict_declared: true, note: String::new() })),
            on_behalf: None,
        };
        net.call(D, &me, "RespondToAssignment", |ch| {
            let r = accept.clone();
            async move { DispatchServiceClient::new(ch).respond_to_assignment(r).await }
        })
        .await;
    }
    Drawn { task_id, primaries }
}

// ---------------------------------------------------------------------------------------------
// Phase 3: sessions, reports, acceptance, fee lines, payment.

async fn complete_and_pay(net: &Net, cal: Calendar, i: usize, drawn: &Drawn, today: NaiveDate, ledger: &Mutex<Ledger>) {
    use ServiceKind::{Dispatch as D, Finance as F};
    let bureau = BUREAUS[i % BUREAUS.len()];
    let operator = token(&format!("operator-{i}"), Role::CountyOperator, Some(bureau), None);
    let day = cal.session_day(i);
    for (assignment, expert) in &drawn.primaries {
        let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
        let worked = RecordWorkedSessionsRequest {
            request_id: rid(),
            assignment_id: assignment.clone(),
            sessions: vec![WorkedSession {
                task_session_id: String::new(),
                date: Some(pdate(day)),
                half_day: HalfDay::Am as i32,
                start_time: Some(TimeOfDay { hours: 9, minutes: 0 }),
                minutes: 180,
                note: String::new(),
            }],
            on_behalf: None,
        };
        net.call(D, &me, "RecordWorkedSessions", |ch| {
            let r = worked.clone();
            async move { DispatchServiceClient::new(ch).record_worked_sessions(r).await }
        })
        .await;
        let submit = SubmitReportRequest {
            request_id: rid(),
            assignment_id: assignment.clone(),
            content: Some(ReportContent {
                findings: "考核按规程进行，未发现违规。".into(), ..Default::default()
            }),
            on_behalf: None,
        };
        let report = net
            .call(D, &me, "SubmitReport", |ch| {
                let r = submit.clone();
                async move { DispatchServiceClient::new(ch).submit_report(r).await }
            })
            .await
            .report
            .unwrap()
            .id;
        let accept = AcceptReportRequest { request_id: rid(), report_id: report, note: String::new() };
        net.call(D, &operator, "AcceptReport", |ch| {
            let r = accept.clone();
            async move { DispatchServiceClient::new(ch).accept_report(r).await }
        })
        .await;
    }

    // Dispatch's outbox delivers each accepted revision to finance.
    let preparer = token(&format!("fin-preparer-{i}"), Role::Finance, Some(bureau), None);
    let approver = token(&format!("fin-approver-{i}"), Role::Finance, Some(bureau), None);
    let mut lines = Vec::new();
    for (assignment, _) in &drawn.primaries {
        let mut found = Vec::new();
        for _ in 0..600 {
            let list = ListFeeLinesRequest { assignment_id: assignment.clone(), ..Default::default() };
            found = net
                .call(F, &preparer, "ListFeeLines", |ch| {
                    let r = list.clone();
                    async move { FinanceServiceClient::new(ch).list_fee_lines(r).await }
                })
                .await
                .lines;
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
        assert_eq!(found.len(), 1, "one fee line for the one session of {assignment} ({})", drawn.task_id);
        lines.extend(found.into_iter().map(|l| l.id));
    }
    ledger.lock().unwrap().fee_lines.extend(lines.iter().cloned());

    let create = CreatePaymentBatchRequest {
        request_id: rid(),
        paying_bureau: bureau.to_proto() as i32,
        payment_month: Some(YearMonth { year: day.year(), month: day.month() as i32 }),
        fund_source: FundSource::CityCountyEmployment as i32,
        work_dates: Some(DateRange { start: Some(pdate(day)), end: Some(pdate(day)) }),
    };
    let batch = net
        .call(F, &preparer, "CreatePaymentBatch", |ch| {
            let r = create.clone();
            async move { FinanceServiceClient::new(ch).create_payment_batch(r).await }
        })
        .await
        .batch
        .unwrap()
        .id;
    let submit = SubmitPaymentBatchRequest { request_id: rid(), batch_id: batch.clone() };
    net.call(F, &preparer, "SubmitPaymentBatch", |ch| {
        let r = submit.clone();
        async move { FinanceServiceClient::new(ch).submit_payment_batch(r).await }
    })
    .await;
    let approve =
        ApprovePaymentBatchRequest { request_id: rid(), batch_id: batch.clone(), note: "核对无误".into() };
    net.call(F, &approver, "ApprovePaymentBatch", |ch| {
        let r = approve.clone();
        async move { FinanceServiceClient::new(ch).approve_payment_batch(r).await }
    })
    .await;
    let pay = MarkPaymentBatchPaidRequest {
        request_id: rid(),
        batch_id: batch.clone(),
        bank_reference: format!("ICBC-SCALEOUT-{i}"),
        paid_date: Some(pdate(today)),
    };
    let paid = net
        .call(F, &preparer, "MarkPaymentBatchPaid", |ch| {
            let r = pay.clone();
            async move { FinanceServiceClient::new(ch).mark_payment_batch_paid(r).await }
        })
        .await
        .batch
        .unwrap();
    assert_eq!(paid.status(), PaymentBatchStatus::Paid);
    ledger.lock().unwrap().payments.push((batch, lines));
}

// ---------------------------------------------------------------------------------------------
// Checks over the databases.

async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.expect("the service's database accepts connections")
}

async fn count(pool: &sqlx::AnyPool, sql: &str, bind: Option<&str>) -> i64 {
    let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()));
    let query = match bind {
        Some(b) => query.bind(b.to_owned()),
        None => query,
    };
    query.fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Each id in `ids` is one row of `table`, and the ids are distinct.
async fn each_once(pool: &sqlx::AnyPool, table: &str, ids: &[String]) {
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "the ledger of {table} holds no id twice");
    for id in ids {
        let n = count(pool, &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE id = $1"), Some(id)).await;
        assert_eq!(n, 1, "{table} {id} acknowledged to a client exists exactly once");
    }
}

/// Every job lease seen while sampling: per (service, job) the distinct holders and how many
/// samples showed it.
#[derive(Debug, Default)]
struct Leases {
    samples: usize,
    holders: BTreeMap<(String, String), BTreeSet<String>>,
}

async fn sample_leases(urls: Vec<(&'static str, String)>, leases: Arc<Mutex<Leases>>, done: Arc<AtomicBool>) {
    let mut pools = Vec::new();
    for (name, url) in urls {
        pools.push((name, pool(&url).await));
    }
    while !done.load(Ordering::Relaxed) {
        for (service, pool) in &pools {
            let rows: Vec<(String, String)> =
                sqlx::query_as("SELECT name, holder FROM kit_job_leases").fetch_all(pool).await.unwrap_or_default();
            let mut names = BTreeSet::new();
            let mut leases = leases.lock().unwrap();
            for (name, holder) in rows {
                assert!(names.insert(name.clone()), "{service}: job {name} has two lease rows at once");
                leases.holders.entry(((*service).to_owned(), name)).or_default().insert(holder);
            }
        }
        leases.lock().unwrap().samples += 1;
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
}

/// Raised when a scenario's task unwinds, so the test fails instead of waiting at a barrier.
struct FailureFlag(Arc<AtomicBool>);

impl Drop for FailureFlag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// The controller's side of a phase's end: the barrier, unless a scenario failed meanwhile.
async fn phase_end(barrier: &Barrier, failed: &AtomicBool) {
    let reached = barrier.wait();
    tokio::pin!(reached);
    loop {
        tokio::select! {
            _ = &mut reached => return,
            () = tokio::time::sleep(StdDuration::from_millis(200)) => {
                assert!(!failed.load(Ordering::SeqCst), "a scenario failed (its panic is above)");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_each_service_lose_nothing_and_double_nothing_when_one_of_each_is_stopped() {
    let scenarios = testkit::scale(3, 30);
    let started = Instant::now();
    let cluster = ScaledOut::start().await;
    let net = Net::new(&cluster);
    let urls: Vec<(&'static str, String)> =
        ServiceKind::ALL.iter().map(|k| (k.name(), cluster.database_url(*k).to_owned())).collect();
    let clock = Arc::new(Clock { cluster_files: cluster.clock_files(), offset: Mutex::new(0) });
    let cal = Calendar::new();
    let cluster = Arc::new(tokio::sync::Mutex::new(cluster));

    let leases = Arc::new(Mutex::new(Leases::default()));
    let sampling_done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_leases(urls.clone(), leases.clone(), sampling_done.clone()));

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // The phases end together: the clock moves for everyone between them.
    let barrier = Arc::new(Barrier::new(scenarios + 1));
    let failed = Arc::new(AtomicBool::new(false));
    // At most this many scenarios call at once: each replica's pool holds up to 16 PostgreSQL
    // connections, 128 for the eight, above PostgreSQL's default max_connections of 100.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut runs = Vec::new();
    for i in 0..scenarios {
        let (net, ledger, barrier) = (net.clone(), ledger.clone(), barrier.clone());
        let phase3_day = cal.session_day(scenarios - 1);
        let (failed, in_flight) = (failed.clone(), in_flight.clone());
        runs.push(tokio::spawn(async move {
            let _failure = FailureFlag(failed);
            let permit = in_flight.acquire().await.unwrap();
            let applications = recruit(&net, cal, i).await;
            drop(permit);
            barrier.wait().await;
            barrier.wait().await;
            let permit = in_flight.acquire().await.unwrap();
            let drawn = appoint_and_draw(&net, cal, i, &applications, &ledger).await;
            drop(permit);
            barrier.wait().await;
            barrier.wait().await;
            let _permit = in_flight.acquire().await.unwrap();
            complete_and_pay(&net, cal, i, &drawn, phase3_day, &ledger).await;
        }));
    }
    // Phase 1 at the system clock.
    phase_end(&barrier, &failed).await;
    let phase1 = started.elapsed();
    // Phase 2 on the morning after the publicity; the relays' clocks tick faster meanwhile.
    clock.at_least(shanghai(cal.publicity().1 + Duration::days(1), 10));
    let ticking = Arc::new(AtomicBool::new(true));
    let ticker = {
        let (clock, ticking) = (clock.clone(), ticking.clone());
        tokio::spawn(async move {
            while ticking.load(Ordering::Relaxed) {
                tokio::time::sleep(StdDuration::from_millis(250)).await;
                clock.advance(2);
            }
        })
    };
    // Mid-run, replica 0 of each service is stopped abruptly and started again on its database.
    let chaos = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let mut cluster = cluster.lock().await;
            let mut stopped_for = Vec::new();
            for kind in ServiceKind::ALL {
                tokio::time::sleep(StdDuration::from_millis(400)).await;
                cluster.kill(kind, 0).await;
                let down = Instant::now();
                tokio::time::sleep(StdDuration::from_millis(600)).await;
                cluster.start_replica(kind, 0).await;
                stopped_for.push((kind.name(), down.elapsed()));
            }
            stopped_for
        })
    };
    phase_end(&barrier, &failed).await;
    phase_end(&barrier, &failed).await;
    let stopped_for = chaos.await.unwrap();
    // Phase 3 in the evening of the last session day.
    clock.at_least(shanghai(cal.session_day(scenarios - 1), 20));
    phase_end(&barrier, &failed).await;
    for run in runs {
        run.await.expect("a scenario ran to its end");
    }

    // Every outbox drained: nothing pending, nothing parked.
    let mut pools = BTreeMap::new();
    for (name, url) in &urls {
        pools.insert(*name, pool(url).await);
    }
    for _ in 0..600 {
        let mut pending = 0;
        for p in pools.values() {
            pending +=
                count(p, "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox WHERE delivered_at IS NULL", None).await;
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    ticking.store(false, Ordering::Relaxed);
    ticker.await.unwrap();
    let mut delivered = BTreeMap::new();
    for (name, p) in &pools {
        let pending =
            count(p, "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox WHERE delivered_at IS NULL", None).await;
        let parked =
            count(p, "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox WHERE parked_at IS NOT NULL", None).await;
        assert_eq!((pending, parked), (0, 0), "{name}'s outbox is drained and nothing is parked");
        delivered.insert(*name, count(p, "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox", None).await);
    }

    let ledger = Arc::into_inner(ledger).unwrap().into_inner().unwrap();
    let (registry, dispatch, finance) = (&pools["registry"], &pools["dispatch"], &pools["finance"]);
    // Appointments: each once, and nothing more in the registry (a redelivered AppointExpert made
    // no second expert).
    each_once(registry, "experts", &ledger.appointments).await;
    assert_eq!(ledger.appointments.len(), scenarios * EXPERTS_PER_SCENARIO);
    assert_eq!(
        count(registry, "SELECT CAST(COUNT(*) AS BIGINT) FROM experts", None).await,
        ledger.appointments.len() as i64
    );
    assert_eq!(
        count(registry, "SELECT CAST(COUNT(*) AS BIGINT) FROM appointments", None).await,
        ledger.appointments.len() as i64,
        "one appointment per expert"
    );
    // Assignments: each once; no expert on two tasks in a half-day.
    each_once(dispatch, "assignments", &ledger.assignments).await;
    let double_booked = count(
        dispatch,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT a.expert_id, s.session_date, s.half_day FROM assignments a \
           JOIN task_sessions s ON s.task_id = a.task_id \
         WHERE a.role = 'PRIMARY' AND a.status IN ('NOTIFIED', 'ACCEPTED', 'COMPLETED', 'NO_SHOW') \
         GROUP BY a.expert_id, s.session_date, s.half_day HAVING COUNT(DISTINCT a.task_id) > 1) twice",
        None,
    )
    .await;
    assert_eq!(double_booked, 0, "no expert is booked twice on a half-day");
    // The query above looked at every primary of the run (none declined or was replaced).
    let serving = count(
        dispatch,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM assignments a JOIN task_sessions s ON s.task_id = a.task_id \
         WHERE a.role = 'PRIMARY' AND a.status IN ('NOTIFIED', 'ACCEPTED', 'COMPLETED', 'NO_SHOW')",
        None,
    )
    .await;
    assert_eq!(serving, ledger.assignments.len() as i64, "each primary serves its one half-day");
    // Fee lines: each once, none twice for an assignment revision, all in the ledger.
    each_once(finance, "fee_lines", &ledger.fee_lines).await;
    let twice = count(
        finance,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT assignment_id, revision, work_date, half_day, kind, \
           reverses_line_id FROM fee_lines GROUP BY assignment_id, revision, work_date, half_day, kind, \
           reverses_line_id HAVING COUNT(*) > 1) twice",
        None,
    )
    .await;
    assert_eq!(twice, 0, "no fee line twice for an assignment revision");
    assert_eq!(
        count(finance, "SELECT CAST(COUNT(*) AS BIGINT) FROM fee_lines", None).await,
        ledger.fee_lines.len() as i64
    );
    // Payments: each batch once and paid, holding exactly its scenario's lines.
    let batches: Vec<String> = ledger.payments.iter().map(|(b, _)| b.clone()).collect();
    each_once(finance, "payment_batches", &batches).await;
    assert_eq!(count(finance, "SELECT CAST(COUNT(*) AS BIGINT) FROM payment_batches", None).await, scenarios as i64);
    for (batch, lines) in &ledger.payments {
        let held: Vec<String> = sqlx::query_scalar("SELECT id FROM fee_lines WHERE batch_id = $1 ORDER BY id")
            .bind(batch.clone())
            .fetch_all(finance)
            .await
            .unwrap();
        let mut lines = lines.clone();
        lines.sort();
        assert_eq!(held, lines, "batch {batch} pays exactly its scenario's lines, once");
    }

    sampling_done.store(true, Ordering::Relaxed);
    sampler.await.expect("the lease sampler saw one holder per job at every sample");
    let leases = Arc::into_inner(leases).unwrap().into_inner().unwrap();
    let jobs = leases.holders.len();
    let handovers: usize = leases.holders.values().map(|h| h.len() - 1).sum();

    let net_calls = net.calls.load(Ordering::Relaxed);
    let net_retries = net.retries.load(Ordering::Relaxed);
    let cluster = Arc::into_inner(cluster).expect("the chaos task is done").into_inner();
    let kills = cluster.kills;
    assert_eq!(kills, 4, "one replica of each service was stopped and restarted");
    assert!(ServiceKind::ALL.iter().all(|k| cluster.is_running(*k, 0) && cluster.is_running(*k, 1)));
    cluster.stop().await;
    for p in pools.values() {
        p.close().await;
    }
    eprintln!(
        "scale-out: {scenarios} scenarios ({} calling at once) on 2 replicas x 4 services, {kills} replicas stopped abruptly \
         and restarted ({stopped_for:?}); {net_calls} calls, {net_retries} retried; acknowledged and found once: \
         {} appointments, {} assignments, {} fee lines, {} paid batches; lost 0, duplicated 0, double-booked 0; \
         {} draws redrawn after concurrent draws took their list; outbox rows delivered {delivered:?}, pending 0, \
         parked 0; {jobs} jobs sampled {} times, one holder each, {handovers} handovers; recruitment phase {:?}, \
         total {:?}",
        IN_FLIGHT.min(scenarios),
        ledger.appointments.len(),
        ledger.assignments.len(),
        ledger.fee_lines.len(),
        ledger.payments.len(),
        ledger.redraws,
        leases.samples,
        phase1,
        started.elapsed(),
    );
}
