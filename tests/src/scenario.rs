//! One scenario through the four services, as the bureaus work, driven by clients that retry what
//! a stopped or killed service answers (UNAVAILABLE, ABORTED, CANCELLED, UNKNOWN) with the same
//! request id, and that write every operation a service acknowledged into a [`Ledger`]; then the
//! checks over the services' databases that every acknowledged operation exists exactly once and
//! every outbox drained ([`check_ledger`], [`outboxes_drain`]).
//!
//! 1. recruitment: a call, four applications with their materials, the reviews, a publicity on
//!    the test clock ([`recruit`]);
//! 2. the appointment decided and delivered to the registry through the outbox; the registry: an
//!    institution; dispatch: a task, its draw (prepare, witness, execute; a draw whose frozen list
//!    concurrent draws took is abandoned and drawn again), the primaries accept
//!    ([`appoint_and_draw`]);
//! 3. dispatch: sessions worked, reports submitted and accepted, the fee revisions delivered to
//!    finance through the outbox; finance: a payment batch of the scenario's lines drafted,
//!    submitted, approved by another user and paid ([`complete_and_pay`]).
//!
//! Between the phases the services' test clocks move forward ([`Clock`]): phase 2 runs on the
//! morning after the publicity, phase 3 in the evening of the session day.
//!
//! Used by the scale-out test (`tests/e2e/scaleout/main.rs`, two replicas of each service, one
//! of each stopped mid-run), the crash runs (`tests/e2e/reliability/crash.rs`, one OS process per
//! service killed with SIGKILL) and the PostgreSQL restart (`pg_restart.rs`).

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
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
use tonic::{Code, Status, transport::Channel};

use crate::{AuthedChannel, Bureau, Role, ScaledOut, ServiceKind};

/// Applications (and so experts appointed) per scenario.
pub const EXPERTS_PER_SCENARIO: usize = 4;
/// The bureaus that dispatch and pay: the scenarios take them in turn. The experts live in
/// Kaiping, so no scenario's institution is in their county.
pub const BUREAUS: [Bureau; 6] =
    [Bureau::Pengjiang, Bureau::Jianghai, Bureau::Xinhui, Bureau::Taishan, Bureau::Heshan, Bureau::Enping];

// ---------------------------------------------------------------------------------------------
// Clients: round robin over a service's replicas, retrying what a stopped replica answers.

/// What a client may retry with the same request id: the replica was down, the transaction
/// lost a race, or the connection broke mid-call (the outcome unknown to the client).
pub fn retryable(status: &Status) -> bool {
    matches!(status.code(), Code::Unavailable | Code::Aborted | Code::Cancelled | Code::Unknown)
}

/// The clients of a run: per service, the channels of its replicas (one or more).
#[derive(Clone, Debug)]
pub struct Net {
    channels: Arc<BTreeMap<&'static str, Vec<Channel>>>,
    next: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
    /// The codes of the answers retried, and how many of each.
    retried_codes: Arc<Mutex<BTreeMap<String, usize>>>,
    /// How long a call is retried before its last answer is final.
    patience: StdDuration,
}

impl Net {
    /// Clients of `channels`: each service's replicas, taken in turn.
    pub fn new(channels: impl IntoIterator<Item = (ServiceKind, Vec<Channel>)>) -> Self {
        let channels: BTreeMap<&'static str, Vec<Channel>> =
            channels.into_iter().map(|(kind, replicas)| (kind.name(), replicas)).collect();
        assert!(channels.values().all(|replicas| !replicas.is_empty()), "every service has a replica");
        Self {
            channels: Arc::new(channels),
            next: Arc::default(),
            calls: Arc::default(),
            retries: Arc::default(),
            retried_codes: Arc::default(),
            patience: StdDuration::from_secs(60),
        }
    }

    /// Clients of a scaled-out deployment's two replicas per service.
    pub fn for_scaled_out(cluster: &ScaledOut) -> Self {
        Self::new(ServiceKind::ALL.iter().map(|k| (*k, cluster.pair(*k).channels.to_vec())))
    }

    /// Clients of a cluster of service processes: each service's processes (its replicas).
    pub fn for_processes(cluster: &crate::process::ProcessCluster) -> Self {
        Self::new(cluster.replica_channels())
    }

    /// Retries for `patience` instead of a minute.
    pub fn with_patience(mut self, patience: StdDuration) -> Self {
        self.patience = patience;
        self
    }

    /// Calls made so far, retries included.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Relaxed)
    }

    /// Calls retried so far.
    pub fn retries(&self) -> usize {
        self.retries.load(Ordering::Relaxed)
    }

    /// The codes of the answers retried so far (`"Unavailable"`, ...), and how many of each.
    pub fn retried_codes(&self) -> BTreeMap<String, usize> {
        self.retried_codes.lock().unwrap().clone()
    }

    /// Calls `f` on the next replica of `kind` with `token` until it answers other than a
    /// retryable status (within the patience, a minute unless set).
    pub async fn try_call<T, F, Fut>(&self, kind: ServiceKind, token: &str, mut f: F) -> Result<T, Status>
    where
        F: FnMut(AuthedChannel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let started = Instant::now();
        let replicas = &self.channels[kind.name()];
        loop {
            let k = self.next.fetch_add(1, Ordering::Relaxed) % replicas.len();
            let channel = crate::with_token(&replicas[k], Some(token));
            self.calls.fetch_add(1, Ordering::Relaxed);
            match f(channel).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(s) if retryable(&s) && started.elapsed() < self.patience => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    *self.retried_codes.lock().unwrap().entry(format!("{:?}", s.code())).or_default() += 1;
                    tokio::time::sleep(StdDuration::from_millis(100)).await;
                }
                Err(s) => return Err(s),
            }
        }
    }

    /// As [`Net::try_call`]; panics on a final failure, naming `what`.
    pub async fn call<T, F, Fut>(&self, kind: ServiceKind, token: &str, what: &str, f: F) -> T
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

/// The `google.rpc.ErrorInfo` reason of `status`, or "".
pub fn reason(status: &Status) -> String {
    use tonic_types::StatusExt;
    status.get_error_details().error_info().map(|e| e.reason.clone()).unwrap_or_default()
}

/// A token valid for 1000 days: the clock moves by weeks.
pub fn token(subject: &str, role: Role, bureau: Option<Bureau>, expert_id: Option<&str>) -> String {
    crate::identity::token_for(supervision_kit::auth::TokenRequest {
        subject: subject.into(),
        role,
        bureau,
        expert_id: expert_id.map(str::to_owned),
        ttl: StdDuration::from_secs(1000 * 86_400),
    })
}

/// A fresh request id.
pub fn rid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------------
// The test clock, shared by every service and moved only forward.

/// The services' clock files, moved together.
#[derive(Debug)]
pub struct Clock {
    cluster_files: Vec<PathBuf>,
    offset: Mutex<i64>,
}

impl Clock {
    /// The clocks of `files` (each service's test clock file), at the system clock.
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self { cluster_files: files, offset: Mutex::new(0) }
    }

    /// Each file is replaced whole (written beside it, then renamed): a service reading it
    /// mid-write would otherwise see no offset and jump back to the system clock.
    fn write(&self, offset: i64) {
        for file in &self.cluster_files {
            let partial = file.with_extension("partial");
            std::fs::write(&partial, offset.to_string()).unwrap();
            std::fs::rename(&partial, file).unwrap();
        }
    }

    /// Moves the clocks to `at` unless they are already past it.
    pub fn at_least(&self, at: DateTime<Utc>) {
        let mut offset = self.offset.lock().unwrap();
        let wanted = ((at - Utc::now()).num_milliseconds() + 999).div_euclid(1000);
        if wanted > *offset {
            *offset = wanted;
            self.write(wanted);
        }
    }

    /// Moves the clocks `seconds` further (relays' backoffs pass sooner).
    pub fn advance(&self, seconds: i64) {
        let mut offset = self.offset.lock().unwrap();
        *offset += seconds;
        self.write(*offset);
    }
}

/// Today in Asia/Shanghai.
pub fn shanghai_today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

/// `hour`:00 Asia/Shanghai on `day`.
pub fn shanghai(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&(day.and_hms_opt(hour, 0, 0).unwrap() - Duration::hours(8)))
}

/// `d` as the contracts' date.
pub fn pdate(d: NaiveDate) -> Date {
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

// ---------------------------------------------------------------------------------------------
// What each scenario works with and leaves behind.

/// The dates every scenario shares.
#[derive(Clone, Copy, Debug)]
pub struct Calendar {
    today: NaiveDate,
    /// The first weekday of the session weeks: the first Monday three weeks from today, so the
    /// tasks created the morning after the publicity give the five working days' notice.
    sessions_from: NaiveDate,
}

impl Default for Calendar {
    fn default() -> Self {
        Self::new()
    }
}

impl Calendar {
    pub fn new() -> Self {
        let today = shanghai_today();
        let mut monday = today + Duration::days(21);
        while monday.weekday() != Weekday::Mon {
            monday += Duration::days(1);
        }
        Self { today, sessions_from: monday }
    }

    /// The publicity period's first and last days.
    pub fn publicity(&self) -> (NaiveDate, NaiveDate) {
        (self.today + Duration::days(1), self.today + Duration::days(7))
    }

    /// The morning on which scenario `i` works: six scenarios (one per bureau) a day, weekdays.
    pub fn session_day(&self, i: usize) -> NaiveDate {
        let slot = (i / BUREAUS.len()) as i64;
        self.sessions_from + Duration::days(slot / 5 * 7 + slot % 5)
    }

    /// Where phase 2 runs: the morning after the publicity.
    pub fn phase2(&self) -> DateTime<Utc> {
        shanghai(self.publicity().1 + Duration::days(1), 10)
    }

    /// Where phase 3 runs: the evening of the last session day of `scenarios` scenarios.
    pub fn phase3(&self, scenarios: usize) -> DateTime<Utc> {
        shanghai(self.session_day(scenarios - 1), 20)
    }
}

/// What the clients were told succeeded: the id of every record an acknowledged operation made.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Recruitment: calls, applications, their materials, publicity batches.
    pub calls: Vec<String>,
    pub applications: Vec<String>,
    pub materials: Vec<String>,
    pub publicity_batches: Vec<String>,
    /// Expert ids of appointments delivered to the registry.
    pub appointments: Vec<String>,
    /// The registry's institutions.
    pub institutions: Vec<String>,
    /// Dispatch: tasks, primary assignments of executed draws, reports.
    pub tasks: Vec<String>,
    pub assignments: Vec<String>,
    pub reports: Vec<String>,
    /// Fee lines finance listed for the accepted reports.
    pub fee_lines: Vec<String>,
    /// Paid batches, with the fee lines each holds.
    pub payments: Vec<(String, Vec<String>)>,
    /// Draws abandoned and drawn again because concurrent draws took the frozen list.
    pub redraws: usize,
    /// How long each phase of [`run_scenarios`] took.
    pub phases: Vec<StdDuration>,
}

// ---------------------------------------------------------------------------------------------
// Phase 1: recruitment up to the publicity.

/// A resident identity number with its GB 11643 check character, unique per `k`.
pub fn id_number(k: usize) -> String {
    let birth = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + Duration::days(k as i64 * 3);
    let body = format!("440703{}123", birth.format("%Y%m%d"));
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

/// A unified social credit code (GB 32100) with its check character, unique per `i`.
pub fn credit_code(i: usize) -> String {
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

pub const CONDITIONS: [EligibilityCondition; 4] = [
    EligibilityCondition::Commitment,
    EligibilityCondition::Integrity,
    EligibilityCondition::Competence,
    EligibilityCondition::CleanRecord,
];

pub fn applicant_profile(k: usize) -> ApplicantProfile {
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

pub fn review_items(material: &str) -> Vec<ReviewInput> {
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
pub async fn recruit(net: &Net, cal: Calendar, i: usize, ledger: &Mutex<Ledger>) -> Vec<String> {
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
    ledger.lock().unwrap().calls.push(call.clone());
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
        {
            let mut ledger = ledger.lock().unwrap();
            ledger.applications.push(app.clone());
            ledger.materials.push(material);
        }
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
    ledger.lock().unwrap().publicity_batches.push(batch.clone());
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
#[derive(Debug)]
pub struct Drawn {
    pub task_id: String,
    pub primaries: Vec<(String, String)>,
}

pub async fn appoint_and_draw(
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
    ledger.lock().unwrap().institutions.push(school.clone());

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
    ledger.lock().unwrap().tasks.push(task_id.clone());

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

pub async fn complete_and_pay(
    net: &Net,
    cal: Calendar,
    i: usize,
    drawn: &Drawn,
    today: NaiveDate,
    ledger: &Mutex<Ledger>,
) {
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
        ledger.lock().unwrap().reports.push(report.clone());
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

pub async fn pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.expect("the service's database accepts connections")
}

pub async fn count(pool: &sqlx::AnyPool, sql: &str, bind: Option<&str>) -> i64 {
    let query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()));
    let query = match bind {
        Some(b) => query.bind(b.to_owned()),
        None => query,
    };
    query.fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Each id in `ids` is one row of `table`, and the ids are distinct.
pub async fn each_once(pool: &sqlx::AnyPool, table: &str, ids: &[String]) {
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "the ledger of {table} holds no id twice");
    for id in ids {
        let n = count(pool, &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE id = $1"), Some(id)).await;
        assert_eq!(n, 1, "{table} {id} acknowledged to a client exists exactly once");
    }
}

/// Waits (up to a minute) until no service's outbox holds an undelivered row, then answers per
/// service how many rows its outbox delivered; panics when a row is still pending or any
/// delivery was parked.
pub async fn outboxes_drain(pools: &BTreeMap<&'static str, sqlx::AnyPool>) -> BTreeMap<&'static str, i64> {
    const PENDING: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox WHERE delivered_at IS NULL";
    const PARKED: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox WHERE parked_at IS NOT NULL";
    for _ in 0..600 {
        let mut pending = 0;
        for p in pools.values() {
            pending += count(p, PENDING, None).await;
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    let mut delivered = BTreeMap::new();
    for (name, p) in pools {
        let (pending, parked) = (count(p, PENDING, None).await, count(p, PARKED, None).await);
        assert_eq!((pending, parked), (0, 0), "{name}'s outbox is drained and nothing is parked");
        delivered.insert(*name, count(p, "SELECT CAST(COUNT(*) AS BIGINT) FROM kit_outbox", None).await);
    }
    delivered
}

/// What the checks of a run found: acknowledged operations checked, lost (acknowledged, not
/// found) and duplicated (found twice, or made without being acknowledged).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub checked: usize,
    pub lost: usize,
    pub duplicated: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.checked += other.checked;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
    }
}

/// Counts, for the ids of `table` in `ids`, those not found (lost) and the rows beyond one per
/// id plus the rows of no id in `ids` (duplicated).
async fn exactly(pool: &sqlx::AnyPool, table: &str, ids: &[String], problems: &mut Vec<String>) -> Tally {
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "the ledger of {table} holds no id twice");
    let mut tally = Tally { checked: ids.len(), ..Tally::default() };
    let mut found = 0;
    for id in ids {
        let n = count(pool, &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE id = $1"), Some(id)).await;
        match n {
            0 => {
                tally.lost += 1;
                problems.push(format!("{table} {id} was acknowledged and is not there"));
            }
            1 => {}
            _ => {
                tally.duplicated += (n - 1) as usize;
                problems.push(format!("{table} {id} is there {n} times"));
            }
        }
        found += n;
    }
    let rows = count(pool, &format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"), None).await;
    if rows > found {
        tally.duplicated += (rows - found) as usize;
        problems.push(format!("{table} holds {} rows no client was told of", rows - found));
    }
    tally
}

/// The checks of a finished run of `scenarios` scenarios over the services' databases (`pools`
/// by service name): every record of `ledger` exists exactly once and nothing else was made
/// (calls, applications, materials, publicity batches, appointed experts, institutions, tasks,
/// primary assignments, reports, fee lines, payment batches); one appointment per expert; no
/// expert is booked twice on a half-day; no fee line twice for an assignment revision; each batch
/// paid once, holding exactly its scenario's lines. Panics on any loss or duplicate, after
/// listing them; answers the tally.
pub async fn check_ledger(pools: &BTreeMap<&'static str, sqlx::AnyPool>, ledger: &Ledger, scenarios: usize) -> Tally {
    let (recruitment, registry, dispatch, finance) =
        (&pools["recruitment"], &pools["registry"], &pools["dispatch"], &pools["finance"]);
    let experts = scenarios * EXPERTS_PER_SCENARIO;
    assert_eq!(ledger.applications.len(), experts, "every scenario's applications were acknowledged");
    assert_eq!(ledger.appointments.len(), experts, "every appointment was delivered");
    assert_eq!(ledger.payments.len(), scenarios, "every scenario paid its batch");
    let batches: Vec<String> = ledger.payments.iter().map(|(b, _)| b.clone()).collect();
    let mut problems = Vec::new();
    let mut tally = Tally::default();
    for (pool, table, ids) in [
        (recruitment, "calls", &ledger.calls),
        (recruitment, "applications", &ledger.applications),
        (recruitment, "materials", &ledger.materials),
        (recruitment, "publicity_batches", &ledger.publicity_batches),
        // A redelivered AppointExpert must make no second expert.
        (registry, "experts", &ledger.appointments),
        (registry, "institutions", &ledger.institutions),
        (dispatch, "tasks", &ledger.tasks),
        (dispatch, "reports", &ledger.reports),
        (finance, "fee_lines", &ledger.fee_lines),
        (finance, "payment_batches", &batches),
    ] {
        tally += exactly(pool, table, ids, &mut problems).await;
    }
    // Assignments: the acknowledged primaries each once (the backups are in the table too).
    let mut primaries = Tally { checked: ledger.assignments.len(), ..Tally::default() };
    for id in &ledger.assignments {
        let n =
            count(dispatch, "SELECT CAST(COUNT(*) AS BIGINT) FROM assignments WHERE id = $1", Some(id.as_str())).await;
        if n != 1 {
            problems.push(format!("assignment {id} is there {n} times"));
            if n == 0 {
                primaries.lost += 1;
            } else {
                primaries.duplicated += (n - 1) as usize;
            }
        }
    }
    tally += primaries;
    let decisions = count(recruitment, "SELECT CAST(COUNT(*) AS BIGINT) FROM appointment_decisions", None).await;
    let appointments = count(registry, "SELECT CAST(COUNT(*) AS BIGINT) FROM appointments", None).await;
    for (what, n) in [("appointment decisions", decisions), ("appointments", appointments)] {
        if n != experts as i64 {
            tally.duplicated += (n - experts as i64).max(0) as usize;
            tally.lost += (experts as i64 - n).max(0) as usize;
            problems.push(format!("{n} {what} for {experts} applications"));
        }
    }
    assert!(problems.is_empty(), "lost {} and duplicated {}: {problems:#?}", tally.lost, tally.duplicated);

    // No expert on two tasks in a half-day, and the query looked at every primary of the run
    // (none declined or was replaced).
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
    let serving = count(
        dispatch,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM assignments a JOIN task_sessions s ON s.task_id = a.task_id \
         WHERE a.role = 'PRIMARY' AND a.status IN ('NOTIFIED', 'ACCEPTED', 'COMPLETED', 'NO_SHOW')",
        None,
    )
    .await;
    assert_eq!(serving, ledger.assignments.len() as i64, "each primary serves its one half-day");
    // No fee line twice for an assignment revision (no double payment).
    let twice = count(
        finance,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT assignment_id, revision, work_date, half_day, kind, \
           reverses_line_id FROM fee_lines GROUP BY assignment_id, revision, work_date, half_day, kind, \
           reverses_line_id HAVING COUNT(*) > 1) twice",
        None,
    )
    .await;
    assert_eq!(twice, 0, "no fee line twice for an assignment revision");
    // Each batch paid once, holding exactly its scenario's lines.
    for (batch, lines) in &ledger.payments {
        let held: Vec<String> = sqlx::query_scalar("SELECT id FROM fee_lines WHERE batch_id = $1 ORDER BY id")
            .bind(batch.clone())
            .fetch_all(finance)
            .await
            .unwrap();
        let mut lines = lines.clone();
        lines.sort();
        assert_eq!(held, lines, "batch {batch} pays exactly its scenario's lines, once");
        let status: String = sqlx::query_scalar("SELECT status FROM payment_batches WHERE id = $1")
            .bind(batch.clone())
            .fetch_one(finance)
            .await
            .unwrap();
        assert_eq!(status, "PAID", "batch {batch} is paid");
    }
    tally
}

/// Moves a [`Clock`] forward in steps until stopped, so what waits on the services' clocks
/// (relays' backoffs, leases of outbox rows and jobs) passes sooner.
#[derive(Debug)]
pub struct Ticker {
    ticking: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    /// 2 s further every 250 ms: eight times as fast as the wall clock.
    pub fn start(clock: Arc<Clock>) -> Self {
        Self::with_step(clock, 2, StdDuration::from_millis(250))
    }

    /// `seconds` further every `every`.
    pub fn with_step(clock: Arc<Clock>, seconds: i64, every: StdDuration) -> Self {
        let ticking = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let task = {
            let ticking = ticking.clone();
            tokio::spawn(async move {
                while ticking.load(Ordering::Relaxed) {
                    tokio::time::sleep(every).await;
                    clock.advance(seconds);
                }
            })
        };
        Self { ticking, task }
    }

    pub async fn stop(mut self) {
        self.ticking.store(false, Ordering::Relaxed);
        (&mut self.task).await.expect("the ticker stops");
    }
}

impl Drop for Ticker {
    /// A test that fails stops its ticker too: the clock files go with the test's directory.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `scenarios` scenarios at once through `net`, phase by phase, moving `clock` between the
/// phases (a [`Ticker`] may move it meanwhile: it only moves forward). Answers the ledger of what
/// the clients were told succeeded; a scenario that fails panics here.
pub async fn run_scenarios(net: &Net, clock: &Arc<Clock>, scenarios: usize) -> Ledger {
    run_scenarios_with(net, clock, scenarios, scenarios, |_| None).await
}

/// As [`run_scenarios`], with at most `in_flight` scenarios calling at the same time within a
/// phase (the others wait for a turn), and `during(phase)` called as each phase (1, 2, 3) starts,
/// once the clock moved: the work it answers, if any (a replica stopped and started again, a
/// ticker started), runs alongside the phase's scenarios, and the phase ends when both are done.
pub async fn run_scenarios_with<F>(
    net: &Net,
    clock: &Arc<Clock>,
    scenarios: usize,
    in_flight: usize,
    mut during: F,
) -> Ledger
where
    F: FnMut(usize) -> Option<tokio::task::JoinHandle<()>>,
{
    /// Runs `step` for each scenario (`i`, its input) at once, `in_flight` at a time, alongside
    /// `beside`; answers the steps' outputs in scenario order.
    async fn phase<I, T, S, Fut>(
        inputs: Vec<I>,
        in_flight: &Arc<tokio::sync::Semaphore>,
        beside: Option<tokio::task::JoinHandle<()>>,
        step: S,
    ) -> Vec<T>
    where
        I: Send + 'static,
        T: Send + 'static,
        S: Fn(usize, I) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let handles: Vec<_> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                let (in_flight, work) = (in_flight.clone(), step(i, input));
                tokio::spawn(async move {
                    let _turn = in_flight.acquire_owned().await.expect("the semaphore stays open");
                    work.await
                })
            })
            .collect();
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.expect("a scenario's phase ran to its end"));
        }
        if let Some(beside) = beside {
            beside.await.expect("the work beside the phase ran to its end");
        }
        out
    }
    let cal = Calendar::new();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let mut phases = Vec::new();
    let mut started = Instant::now();
    let applications = phase(vec![(); scenarios], &in_flight, during(1), |i, ()| {
        let (net, ledger) = (net.clone(), ledger.clone());
        async move { recruit(&net, cal, i, &ledger).await }
    })
    .await;
    phases.push(started.elapsed());
    started = Instant::now();
    clock.at_least(cal.phase2());
    let drawn = phase(applications, &in_flight, during(2), |i, applications| {
        let (net, ledger) = (net.clone(), ledger.clone());
        async move { appoint_and_draw(&net, cal, i, &applications, &ledger).await }
    })
    .await;
    phases.push(started.elapsed());
    started = Instant::now();
    clock.at_least(cal.phase3(scenarios));
    let today = cal.session_day(scenarios - 1);
    phase(drawn, &in_flight, during(3), |i, drawn| {
        let (net, ledger) = (net.clone(), ledger.clone());
        async move { complete_and_pay(&net, cal, i, &drawn, today, &ledger).await }
    })
    .await;
    phases.push(started.elapsed());
    let mut ledger = Arc::into_inner(ledger).expect("the phases are done").into_inner().unwrap();
    ledger.phases = phases;
    ledger
}
