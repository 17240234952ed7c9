//! The own-bureau / other-bureau walk (issue 11, item 6).
//!
//! The four services are wired as a deployment, each behind the testkit's bureau-checking proxy
//! (`tests/src/scope.rs`): for every call of an RPC whose scope in `docs/rpc-roles.md` is
//! `bureau` or `own`, made by a county operator or finance user of a bureau, or by an expert or
//! applicant, the proxy sends a copy as the same role of another bureau (or as another expert or
//! applicant) and checks that the copy is refused, or answers without any of the records, the
//! bureau or the person the real answer showed.
//!
//! 1. The testkit's bureau scenario (`tests/src/scenario.rs`) runs for two bureaus, Pengjiang
//!    and Jianghai, whose copies go to each other: recruitment (applicants), the draw (county
//!    operators), the experts' answers, sessions and reports, acceptance, a payment batch drafted,
//!    approved and paid (finance staff).
//! 2. Then each bureau's operator, finance user and finance lead, and each drawn expert, read
//!    and act on what the scenario left: tasks, draws and their records, assignments, dispatch
//!    letters, reports, notifications, incidents, publicity activities, fee lines, statements,
//!    batches, exports (the city first records the experts' bank accounts) and reconciliations.
//! 3. Then the commands the first two leave out ([`the_other_commands`]), each made successfully
//!    by the bureau's own staff, expert or applicant so that the proxy copies it: institutions
//!    edited and imported (a server stream, which the proxy reads whole before it copies it),
//!    two urgent tasks per bureau edited, drawn, abandoned, voided, designated and cancelled,
//!    no-shows, attachments, submissions, notifications acknowledged, reports returned, corrected
//!    and voided, payment batches cancelled and rejected, the experts' own registry records,
//!    applications edited and withdrawn, and renewals started, confirmed and read.
//!
//! No copy may be answered wrongly, and at least [`LEAST_RPCS`] scoped RPCs (all of them) and
//! [`LEAST_CASES`] copies are checked; the tally, the scoped RPCs not reached and the walk's own
//! calls that were refused are printed.

use std::{collections::BTreeSet, sync::Arc};

use chrono::Datelike;
use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};
use supervision_kit::{Role, outbox::RawCodec};
use testkit::{
    Backend, Bureau, ServiceKind, on_both_backends,
    scenario::{self, Calendar, Clock, Net, Ticker},
    scope::{Checker, proxy},
    spawn_deployment,
};
use tonic::transport::Channel;

on_both_backends!(no_county_finance_user_expert_or_applicant_reaches_another_bureaus_or_persons_records);

/// Scoped RPCs the walk must reach, and copies it must check.
const LEAST_RPCS: usize = 94;
const LEAST_CASES: usize = 420;

/// A value for a request field, set by the field's kind.
#[derive(Clone, Debug)]
enum V {
    S(String),
    N(i64),
    M(Vec<(&'static str, V)>),
}

fn s(text: impl Into<String>) -> V {
    V::S(text.into())
}

fn build(descriptor: &MessageDescriptor, fields: &[(&'static str, V)]) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    for (name, value) in fields {
        let field = descriptor.get_field_by_name(name).unwrap_or_else(|| panic!("{} has no {name}", descriptor.name()));
        let value = match (field.kind(), value) {
            (Kind::Message(inner), V::M(nested)) => Value::Message(build(&inner, nested)),
            (Kind::String, V::S(text)) => Value::String(text.clone()),
            (Kind::Enum(_), V::N(n)) => Value::EnumNumber(i32::try_from(*n).unwrap()),
            (Kind::Int32, V::N(n)) => Value::I32(i32::try_from(*n).unwrap()),
            (Kind::Int64, V::N(n)) => Value::I64(*n),
            (kind, value) => panic!("{name}: cannot set {kind:?} from {value:?}"),
        };
        message.set_field(&field, value);
    }
    message
}

/// The callers' side of the walk: each service's proxy.
struct Walk {
    checker: Arc<Checker>,
    channels: Vec<(ServiceKind, Channel)>,
    /// Calls the real answer refused (what and why), printed.
    refused: Vec<String>,
    /// The user a SERVICE caller acts for (`supervision-actor-bin`), when set.
    acting_for: Option<supervision_kit::auth::Actor>,
}

impl Walk {
    fn channel(&self, path: &str) -> &Channel {
        let kind = match path.split('.').nth(1) {
            Some("registry") => ServiceKind::Registry,
            Some("recruitment") => ServiceKind::Recruitment,
            Some("dispatch") => ServiceKind::Dispatch,
            _ => ServiceKind::Finance,
        };
        &self.channels.iter().find(|(k, _)| *k == kind).expect("every service is proxied").1
    }

    /// The path of `method` (`service:Method` outside dispatch and finance's own names).
    fn path(method: &str) -> String {
        let (service, method) = match method.split_once(':') {
            Some((service, method)) => (service, method),
            None if REGISTRY.contains(&method) => ("registry", method),
            None if FINANCE.contains(&method) => ("finance", method),
            None => ("dispatch", method),
        };
        format!("/supervision.{service}.v1.{}Service/{method}", capitalised(service))
    }

    /// Calls `method` with `token` and the fields `fields`; the answer when it is OK.
    async fn ask(&mut self, token: &str, method: &str, fields: &[(&'static str, V)]) -> Option<DynamicMessage> {
        let path = Self::path(method);
        let rpc = self.checker.rpcs.get(&path).unwrap_or_else(|| panic!("no RPC {path}")).clone();
        self.send(token, &path, build(&rpc.input(), fields).encode_to_vec()).await
    }

    /// Calls `method` with `token` and `request`; the answer when it is OK.
    async fn ask_typed(&mut self, token: &str, method: &str, request: &impl Message) -> Option<DynamicMessage> {
        self.send(token, &Self::path(method), request.encode_to_vec()).await
    }

    /// Sends `body` to `path`: the answer (a stream's last message) when it is OK.
    async fn send(&mut self, token: &str, path: &str, body: Vec<u8>) -> Option<DynamicMessage> {
        let rpc = self.checker.rpcs.get(path).unwrap_or_else(|| panic!("no RPC {path}")).clone();
        let method = path.rsplit('/').next().unwrap_or_default().to_owned();
        let mut request = tonic::Request::new(body);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        if let Some(actor) = &self.acting_for {
            let actor = supervision_kit::auth::encode_actor(actor);
            request
                .metadata_mut()
                .insert_bin(supervision_kit::auth::ACTOR_HEADER, tonic::metadata::MetadataValue::from_bytes(&actor));
        }
        let mut grpc = tonic::client::Grpc::new(self.channel(path).clone());
        grpc.ready().await.unwrap();
        let answer = if rpc.is_server_streaming() {
            match grpc.server_streaming(request, path.parse().unwrap(), RawCodec).await {
                Ok(stream) => {
                    let mut stream = stream.into_inner();
                    let mut last = Ok(None);
                    loop {
                        match stream.message().await {
                            Ok(Some(message)) => last = Ok(Some(message)),
                            Ok(None) => break,
                            Err(e) => {
                                last = Err(e);
                                break;
                            }
                        }
                    }
                    last.map(Option::unwrap_or_default)
                }
                Err(e) => Err(e),
            }
        } else {
            grpc.unary(request, path.parse().unwrap(), RawCodec).await.map(tonic::Response::into_inner)
        };
        match answer {
            Ok(answer) => Some(DynamicMessage::decode(rpc.output(), answer.as_slice()).unwrap()),
            Err(e) => {
                self.refused.push(format!("{method}: {:?} {}", e.code(), e.message()));
                None
            }
        }
    }
}

/// The string at the dotted `path` of `answer` (empty when absent).
fn text(answer: &Option<DynamicMessage>, path: &str) -> String {
    let Some(mut message) = answer.clone() else { return String::new() };
    let mut names = path.split('.').peekable();
    while let Some(name) = names.next() {
        let Some(value) = message.get_field_by_name(name) else { return String::new() };
        if names.peek().is_none() {
            return match value.as_ref() {
                Value::String(s) => s.clone(),
                Value::I64(n) => n.to_string(),
                Value::I32(n) => n.to_string(),
                _ => String::new(),
            };
        }
        match value.as_message() {
            Some(inner) => message = inner.clone(),
            None => return String::new(),
        }
    }
    String::new()
}

const REGISTRY: [&str; 5] =
    ["RecordIncident", "GetIncident", "ListIncidents", "RecordPublicityActivity", "ListPublicityActivities"];
const FINANCE: [&str; 12] = [
    "GetFeeLine",
    "ListFeeLines",
    "GetMonthlyStatement",
    "ListMonthlyStatements",
    "GetPaymentBatch",
    "ListPaymentBatches",
    "ExportBankPaymentFile",
    "ExportWithholdingReturn",
    "ExportLedger",
    "ExportYearlyStatement",
    "ListExports",
    "Reconcile",
];

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// The ids of the items of `answer`'s first repeated message field.
fn ids(answer: &Option<DynamicMessage>) -> Vec<String> {
    let Some(answer) = answer else { return Vec::new() };
    for field in answer.descriptor().fields() {
        if let (true, Value::List(items)) = (field.is_list(), answer.get_field(&field).as_ref()) {
            let found: Vec<String> = items
                .iter()
                .filter_map(Value::as_message)
                .filter_map(|m| m.get_field_by_name("id").and_then(|v| v.as_str().map(str::to_owned)))
                .filter(|id| !id.is_empty())
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
    }
    Vec::new()
}

/// The string field `name` of `answer`'s first repeated message field's items.
fn item_field(answer: &Option<DynamicMessage>, name: &str) -> Vec<String> {
    let Some(answer) = answer else { return Vec::new() };
    let mut out = Vec::new();
    for field in answer.descriptor().fields() {
        if let (true, Value::List(items)) = (field.is_list(), answer.get_field(&field).as_ref()) {
            for item in items.iter().filter_map(Value::as_message) {
                if let Some(v) = item.get_field_by_name(name).and_then(|v| v.as_str().map(str::to_owned)) {
                    out.push(v);
                }
            }
        }
    }
    out
}

async fn no_county_finance_user_expert_or_applicant_reaches_another_bureaus_or_persons_records(backend: Backend) {
    let checker = Checker::new();
    let deployment = spawn_deployment(backend).await;
    let services = [
        (ServiceKind::Registry, &deployment.registry),
        (ServiceKind::Recruitment, &deployment.recruitment),
        (ServiceKind::Dispatch, &deployment.dispatch),
        (ServiceKind::Finance, &deployment.finance),
    ];
    let mut channels = Vec::new();
    for (kind, service) in services {
        channels.push((kind, proxy(&service.channel, &checker).await.1));
    }
    let net = Net::new(channels.iter().map(|(k, c)| (*k, vec![c.clone()])));
    let clock = Arc::new(Clock::new(services.iter().map(|(_, s)| s.clock_file().to_owned()).collect()));
    let ticker = Ticker::start(clock.clone());

    // 1. Two bureaus' scenarios: Pengjiang's copies go to Jianghai and Jianghai's to Pengjiang.
    let ledger = scenario::run_scenarios(&net, &clock, 2).await;
    assert_eq!(ledger.payments.len(), 2, "both bureaus paid their batch");

    // 2. Each bureau's staff and each drawn expert read and act on what the scenario left; first
    //    the city records the experts' bank accounts (the bank payment file needs them).
    let mut walk = Walk { checker: checker.clone(), channels, refused: Vec::new(), acting_for: None };
    bank_accounts(&mut walk, &ledger.appointments).await;
    let month = Calendar::new().session_day(0);
    let ym = || V::M(vec![("year", V::N(i64::from(month.year()))), ("month", V::N(i64::from(month.month())))]);
    let csv = V::N(1);
    let mut experts = BTreeSet::new();
    let mut left = Left::default();
    for (i, bureau) in scenario::BUREAUS.iter().take(2).enumerate() {
        let operator = scenario::token(&format!("operator-{i}"), Role::CountyOperator, Some(*bureau), None);
        let bureau_code = || V::N(i64::from(bureau.to_proto() as i32));
        let school = walk
            .ask(
                &operator,
                "registry:CreateInstitution",
                &[
                    ("request_id", s(scenario::rid())),
                    ("type", V::N(1)),
                    ("name", s(format!("范围检查职业培训学校{i}"))),
                    ("credit_code", s(scenario::credit_code(100 + i))),
                    ("county", bureau_code()),
                    ("address", s("江门市示例路 9 号")),
                    ("head", s("陈校长")),
                ],
            )
            .await;
        left.schools.push(text(&school, "institution.id"));
        left.reports.push(Vec::new());
        let tasks = walk.ask(&operator, "ListTasks", &[]).await;
        for task in ids(&tasks) {
            walk.ask(&operator, "GetTask", &[("id", s(&task))]).await;
            let draws = walk.ask(&operator, "ListDraws", &[("task_id", s(&task))]).await;
            for draw in ids(&draws) {
                walk.ask(&operator, "GetDraw", &[("id", s(&draw))]).await;
                walk.ask(&operator, "ExportDraw", &[("draw_id", s(&draw))]).await;
                walk.ask(&operator, "VerifyDraw", &[("draw_id", s(&draw))]).await;
            }
            let assignments = walk.ask(&operator, "ListAssignments", &[("task_id", s(&task))]).await;
            experts.extend(item_field(&assignments, "expert_id"));
            for assignment in ids(&assignments).into_iter().take(2) {
                walk.ask(&operator, "GetAssignment", &[("id", s(&assignment))]).await;
                walk.ask(&operator, "GetDispatchLetter", &[("assignment_id", s(&assignment))]).await;
            }
            let reports = walk.ask(&operator, "ListReports", &[("task_id", s(&task))]).await;
            for report in ids(&reports) {
                walk.ask(&operator, "GetReport", &[("id", s(&report))]).await;
                left.reports[i].push(report);
            }
            walk.ask(&operator, "ListReplacements", &[("task_id", s(&task))]).await;
        }
        walk.ask(&operator, "ListNotifications", &[]).await;
        walk.ask(&operator, "ListSubmissions", &[]).await;
        let expert = experts.iter().next().cloned().expect("the scenario drew experts");
        let now = chrono::Utc::now().timestamp() - 86_400;
        let incident = walk
            .ask(
                &operator,
                "RecordIncident",
                &[
                    ("request_id", s(scenario::rid())),
                    ("expert_id", s(&expert)),
                    ("kind", V::N(3)),
                    ("rule", V::N(2)),
                    ("source", V::N(2)),
                    ("occur_time", V::M(vec![("seconds", V::N(now))])),
                    ("description", s("考场内使用手机，经现场制止。")),
                ],
            )
            .await;
        left.incidents.push(text(&incident, "incident.id"));
        let incidents = walk.ask(&operator, "ListIncidents", &[]).await;
        for incident in ids(&incidents) {
            walk.ask(&operator, "GetIncident", &[("id", s(&incident))]).await;
        }
        let today = scenario::shanghai_today();
        walk.ask(
            &operator,
            "RecordPublicityActivity",
            &[
                ("request_id", s(scenario::rid())),
                ("expert_id", s(&expert)),
                (
                    "date",
                    V::M(vec![
                        ("year", V::N(i64::from(today.year()))),
                        ("month", V::N(i64::from(today.month()))),
                        ("day", V::N(i64::from(today.day()))),
                    ]),
                ),
                ("bureau", bureau_code()),
                ("topic", s("职业技能等级认定政策宣讲")),
                ("audience", s("社区居民")),
                ("on_behalf", V::M(vec![("channel", V::N(1)), ("received_time", V::M(vec![("seconds", V::N(now))]))])),
            ],
        )
        .await;
        walk.ask(&operator, "ListPublicityActivities", &[]).await;

        for (who, role) in [("fin-preparer", Role::Finance), ("fin-lead", Role::FinanceLead)] {
            let finance = scenario::token(&format!("{who}-{i}"), role, Some(*bureau), None);
            let lines = walk.ask(&finance, "ListFeeLines", &[]).await;
            for line in ids(&lines) {
                walk.ask(&finance, "GetFeeLine", &[("id", s(&line))]).await;
            }
            let batches = walk.ask(&finance, "ListPaymentBatches", &[]).await;
            for batch in ids(&batches) {
                walk.ask(&finance, "GetPaymentBatch", &[("id", s(&batch))]).await;
                walk.ask(
                    &finance,
                    "ExportBankPaymentFile",
                    &[("request_id", s(scenario::rid())), ("batch_id", s(&batch)), ("format", csv.clone())],
                )
                .await;
            }
            walk.ask(
                &finance,
                "ExportWithholdingReturn",
                &[("request_id", s(scenario::rid())), ("month", ym()), ("format", csv.clone())],
            )
            .await;
            walk.ask(
                &finance,
                "ExportLedger",
                &[
                    ("request_id", s(scenario::rid())),
                    ("from_month", ym()),
                    ("to_month", ym()),
                    ("format", csv.clone()),
                ],
            )
            .await;
            walk.ask(&finance, "ListExports", &[]).await;
            walk.ask(&finance, "Reconcile", &[("month", ym())]).await;
            let statements = walk.ask(&finance, "ListMonthlyStatements", &[]).await;
            for expert in item_field(&statements, "expert_id").into_iter().take(2) {
                walk.ask(
                    &finance,
                    "GetMonthlyStatement",
                    &[("expert_id", s(&expert)), ("paying_bureau", bureau_code()), ("payment_month", ym())],
                )
                .await;
            }
            // Finance staff list their own bureau's tasks.
            walk.ask(&finance, "ListTasks", &[]).await;
        }
    }
    for expert in &experts {
        let me = scenario::token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
        let assignments = walk.ask(&me, "ListAssignments", &[("expert_id", s(expert))]).await;
        for (assignment, task) in ids(&assignments).into_iter().zip(item_field(&assignments, "task_id")) {
            walk.ask(&me, "GetAssignment", &[("id", s(&assignment))]).await;
            walk.ask(&me, "GetDispatchLetter", &[("assignment_id", s(&assignment))]).await;
            walk.ask(&me, "GetTask", &[("id", s(&task))]).await;
        }
        let reports = walk.ask(&me, "ListReports", &[]).await;
        for report in ids(&reports) {
            walk.ask(&me, "GetReport", &[("id", s(&report))]).await;
        }
        let lines = walk.ask(&me, "ListFeeLines", &[]).await;
        for line in ids(&lines) {
            walk.ask(&me, "GetFeeLine", &[("id", s(&line))]).await;
        }
        walk.ask(&me, "ListMonthlyStatements", &[]).await;
        walk.ask(&me, "ListNotifications", &[]).await;
        walk.ask(&me, "ListIncidents", &[]).await;
        walk.ask(&me, "ListPublicityActivities", &[]).await;
        let year = V::N(i64::from(month.year()));
        walk.ask(
            &me,
            "ExportYearlyStatement",
            &[
                ("request_id", s(scenario::rid())),
                ("expert_id", s(expert)),
                ("year", year.clone()),
                ("format", csv.clone()),
            ],
        )
        .await;
        walk.ask(&me, "registry:GetExpert", &[("id", s(expert))]).await;
        let appointments = walk.ask(&me, "registry:ListAppointments", &[("expert_id", s(expert))]).await;
        for appointment in ids(&appointments) {
            walk.ask(&me, "registry:GetCertificate", &[("appointment_id", s(&appointment)), ("format", V::N(4))]).await;
        }
        for method in [
            "registry:ListRelations",
            "registry:ListExpertChanges",
            "registry:ListStatusChanges",
            "registry:ListYearlyAcceptances",
            "registry:ListRetirementProposals",
            "registry:ListTrainings",
            "dispatch:ListYearlyAcceptances",
            "recruitment:ListRenewals",
        ] {
            walk.ask(&me, method, &[("expert_id", s(expert))]).await;
        }
        walk.ask(&me, "registry:ListMeetings", &[("year", year)]).await;
    }
    for k in 0..2 * scenario::EXPERTS_PER_SCENARIO {
        let me = scenario::token(&format!("applicant-{k}"), Role::Applicant, None, None);
        let applications = walk.ask(&me, "recruitment:ListApplications", &[]).await;
        for application in ids(&applications) {
            walk.ask(&me, "recruitment:GetApplication", &[("id", s(&application))]).await;
        }
    }

    // 3. The other commands, each bureau's, expert's and applicant's own.
    the_other_commands(&mut walk, &clock, Calendar::new(), &experts, &left).await;

    checker.settled().await;
    ticker.stop().await;
    deployment.stop().await;

    let tally = checker.take_tally();
    let reached: Vec<&String> = tally.checked.keys().collect();
    let unreached: Vec<&String> = checker.scoped.keys().filter(|p| !tally.checked.contains_key(*p)).collect();
    eprintln!(
        "scope walk ({backend:?}): {} of {} scoped RPCs checked, {} copies, {} calls upstream, {} wrong; \
         per role (own answered OK, other checked): {:?}; copies' answers: {:?}; per RPC, its copies' answers: {:?}",
        reached.len(),
        checker.scoped.len(),
        tally.cases(),
        tally.calls,
        tally.wrong.len(),
        tally.per_role,
        tally.answers,
        tally.answers_per_rpc,
    );
    eprintln!("scoped RPCs not reached: {unreached:?}");
    eprintln!("calls of the walk the services refused: {:?}", walk.refused);
    assert!(tally.wrong.is_empty(), "{} wrong:\n{}", tally.wrong.len(), tally.wrong.join("\n"));
    assert!(reached.len() >= LEAST_RPCS, "only {} scoped RPCs checked: {reached:?}", reached.len());
    assert!(tally.cases() >= LEAST_CASES, "only {} copies checked", tally.cases());
    for role in ["COUNTY_OPERATOR", "FINANCE", "FINANCE_LEAD", "EXPERT", "APPLICANT"] {
        assert!(tally.per_role.get(role).is_some_and(|(_, other)| *other > 0), "no copy checked for {role}");
    }
}

/// CITY_ADMIN records a bank account for each of `experts`.
async fn bank_accounts(walk: &mut Walk, experts: &[String]) {
    use prost_types::FieldMask;
    use supervision_proto::{
        common::BankAccount,
        registry::{ExpertProfile, UpdateExpertRequest},
    };
    let admin = scenario::token("walk-admin", Role::CityAdmin, None, None);
    for (n, expert) in experts.iter().enumerate() {
        let read = walk.ask(&admin, "registry:GetExpert", &[("id", s(expert))]).await;
        let update = UpdateExpertRequest {
            request_id: scenario::rid(),
            id: expert.clone(),
            profile: Some(ExpertProfile {
                bank_account: Some(BankAccount {
                    holder_name: text(&read, "expert.profile.name"),
                    bank_name: "中国工商银行".into(),
                    branch_name: "江门分行营业部".into(),
                    account_number: format!("62220212345600{n:05}"),
                    masked: false,
                }),
                ..Default::default()
            }),
            update_mask: Some(FieldMask { paths: vec!["bank_account".into()] }),
            expected_revision: text(&read, "expert.revision").parse().unwrap_or_default(),
            reason: "专家提交银行账户信息".into(),
            on_behalf: None,
        };
        walk.ask_typed(&admin, "registry:UpdateExpert", &update).await;
    }
}

/// What the first part of the walk left for the second: per bureau (the scenario's order) the
/// institution its operator registered, its accepted reports and the incident it recorded.
#[derive(Debug, Default)]
struct Left {
    schools: Vec<String>,
    reports: Vec<Vec<String>>,
    incidents: Vec<String>,
}

/// 3. The commands the scenario and the reads leave out, each made successfully by the bureau's
///    own staff, expert or applicant (so the proxy copies it): institutions edited and imported (a
///    server stream), two more tasks per bureau edited, drawn, abandoned, voided, designated and
///    cancelled, an assignment cancelled, a no-show recorded, attachments, submissions and
///    notifications, a report returned and others corrected and voided, a payment batch rejected
///    and cancelled, the experts' own registry records (documents, relations, statements,
///    meetings, certificates, confirmation, retirement) and applications edited and withdrawn.
#[allow(clippy::too_many_lines, reason = "one walk, step by step")]
async fn the_other_commands(walk: &mut Walk, clock: &Clock, cal: Calendar, experts: &BTreeSet<String>, left: &Left) {
    use chrono::Duration;
    use prost_types::FieldMask;
    use scenario::{pdate, rid, token};
    use supervision_proto::{
        common::{
            CivilServantStatus, ContactDetails, Date, DateRange, Evidence, ExpertKind, FileFormat, FundSource, HalfDay,
            IdentityDocument, IdentityDocumentType, Locality, RelationType, TimeOfDay, YearMonth, locality::Place,
        },
        dispatch::{
            AbandonDrawRequest, Accept, AcceptReportRequest, AcknowledgeNotificationRequest, Activity, ActivityKind,
            ActivitySubject, ApproveTaskExceptionRequest, AssignmentRole, CancelAssignmentRequest, CancelTaskRequest,
            CorrectReportRequest, CreateSubmissionRequest, CreateTaskRequest, DesignateExpertsRequest,
            ExecuteDrawRequest, PrepareDrawRequest, RecordNoShowRequest, RecordWorkedSessionsRequest, ReportContent,
            RespondToAssignmentRequest, ReturnReportRequest, SourceParty, SubmissionType, SubmitReportRequest, Task,
            TaskExceptionKind, TaskMode, TaskOrigin, TaskSession, UpdateTaskRequest, UploadAttachmentRequest,
            VoidDrawRequest, VoidReportRequest, WitnessDrawRequest, WorkedSession,
            respond_to_assignment_request::Answer, upload_attachment_request,
        },
        finance::{
            CancelPaymentBatchRequest, CreatePaymentBatchRequest, RejectPaymentBatchRequest, SubmitPaymentBatchRequest,
        },
        recruitment::{
            ConfirmRenewalRequest, CreateApplicationRequest, CreateCallRequest, GetMaterialRequest, MaterialKind,
            PublicationChannel, RecordCallPublicationRequest, RemoveMaterialRequest, RenewalInitiator,
            StartRenewalRequest, UpdateApplicationRequest, UploadMaterialRequest, WithdrawApplicationRequest,
            upload_material_request::Owner,
        },
        registry::{
            AppointExpertRequest, CategoryHolding, ConfirmExpertDataRequest, CreateMeetingRequest, ExpertProfile,
            ImportInstitutionsRequest, Institution, MeetingType, RecordIncidentStatementRequest, RecordRelationRequest,
            RelationSource, RetireExpertRequest, UpdateInstitutionRequest, UploadDocumentRequest,
        },
    };
    use supervision_registry::{sheets, transfer};

    let admin = token("walk-admin", Role::CityAdmin, None, None);
    let mask = |paths: &[&str]| Some(FieldMask { paths: paths.iter().map(|p| (*p).to_owned()).collect() });
    let experts: Vec<&String> = experts.iter().collect();
    // The clock stands on the evening of the scenarios' last session day; the walk's tasks are
    // urgent (no notice period), on the next weekdays (one day apart per bureau, so their
    // half-days do not collide), in the year the calendar data covers.
    let last = cal.session_day(1);
    let next_weekday = |mut day: chrono::NaiveDate| {
        day += Duration::days(1);
        while matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun) {
            day += Duration::days(1);
        }
        day
    };
    let mut drawn = Vec::new();
    for (i, bureau) in scenario::BUREAUS.iter().take(2).enumerate() {
        let operator = token(&format!("operator-{i}"), Role::CountyOperator, Some(*bureau), None);
        let witness = token(&format!("witness-{i}"), Role::CountyOperator, Some(*bureau), None);
        let school = &left.schools[i];
        walk.ask_typed(
            &operator,
            "registry:UpdateInstitution",
            &UpdateInstitutionRequest {
                request_id: rid(),
                institution: Some(Institution {
                    id: school.clone(),
                    address: format!("江门市示例路 {} 号", 20 + i),
                    ..Default::default()
                }),
                update_mask: mask(&["address"]),
                reason: "迁址".into(),
            },
        )
        .await;
        for (k, validate_only) in [true, false].into_iter().enumerate() {
            let row = vec![
                "VOCATIONAL_TRAINING_SCHOOL".to_owned(),
                format!("范围检查导入培训学校{i}-{k}"),
                scenario::credit_code(200 + 10 * i + k),
                String::new(),
                bureau.division_code().to_owned(),
                "江门市示例路 30 号".to_owned(),
                "黄校长".to_owned(),
            ];
            let content = sheets::write(FileFormat::CsvUtf8, transfer::INSTITUTION_COLUMNS, &[row]).unwrap();
            let request = ImportInstitutionsRequest {
                request_id: rid(),
                format: FileFormat::CsvUtf8 as i32,
                content,
                validate_only,
            };
            walk.ask_typed(&operator, "registry:ImportInstitutions", &request).await;
        }

        let task = |day: chrono::NaiveDate, half_day: HalfDay| CreateTaskRequest {
            request_id: rid(),
            dispatching_bureau: bureau.to_proto() as i32,
            institution_id: school.clone(),
            title: "焊工职业技能等级认定考核现场监督".into(),
            activity: Some(Activity {
                subject: ActivitySubject::SkillLevel as i32,
                kind: ActivityKind::Assessment as i32,
                reference: format!("范围-焊工-{i}-{day}-{}", half_day.as_str_name()),
                description: String::new(),
            }),
            mode: TaskMode::OnSite as i32,
            origin: TaskOrigin::Routine as i32,
            sessions: vec![TaskSession { date: Some(pdate(day)), half_day: half_day as i32, ..Default::default() }],
            team_size: Some(2),
            backup_count: Some(1),
            fund_source: FundSource::CityCountyEmployment as i32,
            urgent: true,
            urgent_reason: "机构临时安排考核，需尽快派员".into(),
            ..Default::default()
        };
        let offset = i64::try_from(i).unwrap();
        let worked_day = next_weekday(last + Duration::days(offset));
        // The task worked: updated, a draw abandoned, another executed and accepted.
        let worked = walk.ask_typed(&operator, "CreateTask", &task(worked_day, HalfDay::Am)).await;
        let worked = text(&worked, "task.id");
        let read = walk.ask(&operator, "GetTask", &[("id", s(&worked))]).await;
        walk.ask_typed(
            &operator,
            "UpdateTask",
            &UpdateTaskRequest {
                request_id: rid(),
                task: Some(Task {
                    id: worked.clone(), title: "焊工考核现场监督（更正）".into(), ..Default::default()
                }),
                update_mask: mask(&["title"]),
                expected_revision: text(&read, "task.revision").parse().unwrap_or_default(),
            },
        )
        .await;
        let draw = |task: &str| PrepareDrawRequest { request_id: rid(), task_id: task.to_owned(), kind: 0 };
        let prepared = walk.ask_typed(&operator, "PrepareDraw", &draw(&worked)).await;
        let abandon = AbandonDrawRequest {
            request_id: rid(),
            draw_id: text(&prepared, "draw.id"),
            reason: "抽取前发现考核日期需调整".into(),
        };
        walk.ask_typed(&operator, "AbandonDraw", &abandon).await;
        // The other task, the afternoon of the same day: its draw is voided below.
        let voided = walk.ask_typed(&operator, "CreateTask", &task(worked_day, HalfDay::Pm)).await;
        let mut executed = Vec::new();
        for task_id in [worked.clone(), text(&voided, "task.id")] {
            let prepared = walk.ask_typed(&operator, "PrepareDraw", &draw(&task_id)).await;
            let draw_id = text(&prepared, "draw.id");
            let sign = WitnessDrawRequest { request_id: rid(), draw_id: draw_id.clone(), dice_digits: String::new() };
            walk.ask_typed(&witness, "WitnessDraw", &sign).await;
            let done = walk
                .ask_typed(
                    &operator,
                    "ExecuteDraw",
                    &ExecuteDrawRequest { request_id: rid(), draw_id: draw_id.clone() },
                )
                .await;
            let primaries: Vec<(String, String)> = match done.as_ref().and_then(|d| d.get_field_by_name("assignments"))
            {
                Some(list) => list
                    .as_list()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::as_message)
                    .filter(|a| {
                        a.get_field_by_name("role").and_then(|r| r.as_enum_number())
                            == Some(AssignmentRole::Primary as i32)
                    })
                    .map(|a| {
                        let field = |n: &str| {
                            a.get_field_by_name(n).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                        };
                        (field("id"), field("expert_id"))
                    })
                    .collect(),
                None => Vec::new(),
            };
            executed.push((task_id, draw_id, primaries));
        }
        let (worked_task, _, worked_team) = &executed[0];
        for (assignment, expert) in worked_team {
            let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
            let accept = RespondToAssignmentRequest {
                request_id: rid(),
                assignment_id: assignment.clone(),
                answer: Some(Answer::Accept(Accept { no_conflict_declared: true, note: String::new() })),
                on_behalf: None,
            };
            walk.ask_typed(&me, "RespondToAssignment", &accept).await;
            let upload = UploadAttachmentRequest {
                request_id: rid(),
                owner: Some(upload_attachment_request::Owner::AssignmentId(assignment.clone())),
                file_name: "现场照片.pdf".into(),
                media_type: "application/pdf".into(),
                content: format!("%PDF-1.4 photo of {assignment}").into_bytes(),
            };
            let attachment = walk.ask_typed(&me, "UploadAttachment", &upload).await;
            let attachment = text(&attachment, "attachment.id");
            walk.ask(&me, "GetAttachment", &[("id", s(&attachment))]).await;
            walk.ask(&operator, "GetAttachment", &[("id", s(&attachment))]).await;
            let opinion = CreateSubmissionRequest {
                request_id: rid(),
                r#type: SubmissionType::Opinion as i32,
                expert_id: expert.clone(),
                source_party: SourceParty::Enterprise as i32,
                institution_id: school.clone(),
                subject: "关于考核现场管理的意见".into(),
                content: "建议考核现场增加视频监控。".into(),
                ..Default::default()
            };
            let opinion = walk.ask_typed(&me, "CreateSubmission", &opinion).await;
            walk.ask(&me, "GetSubmission", &[("id", s(text(&opinion, "submission.id")))]).await;
            // The expert's notifications are written by dispatch's outbox relay, which polls: on a
            // loaded machine the first may not be there yet, so wait for it (bounded).
            let mut notifications = walk.ask(&me, "ListNotifications", &[]).await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while ids(&notifications).is_empty() && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                notifications = walk.ask(&me, "ListNotifications", &[]).await;
            }
            if let Some(first) = ids(&notifications).first() {
                let ack = AcknowledgeNotificationRequest { request_id: rid(), notification_id: first.clone() };
                walk.ask_typed(&me, "AcknowledgeNotification", &ack).await;
            }
        }
        // The task voided: one assignment cancelled, the draw voided by a second operator, the
        // experts designated with the city's approval, the task cancelled.
        let (voided_task, voided_draw, voided_team) = &executed[1];
        if let Some((assignment, _)) = voided_team.first() {
            let cancel = CancelAssignmentRequest {
                request_id: rid(),
                assignment_id: assignment.clone(),
                reason: "专家所在单位与机构存在业务往来".into(),
            };
            walk.ask_typed(&operator, "CancelAssignment", &cancel).await;
        }
        let void =
            VoidDrawRequest { request_id: rid(), draw_id: voided_draw.clone(), reason: "抽取程序有误".into() };
        walk.ask_typed(&witness, "VoidDraw", &void).await;
        let approve = ApproveTaskExceptionRequest {
            request_id: rid(),
            task_id: voided_task.clone(),
            kind: TaskExceptionKind::NonRandomDesignation as i32,
            reason: "同意非随机指定".into(),
            reduced_team_size: 0,
        };
        walk.ask_typed(&admin, "ApproveTaskException", &approve).await;
        let designate = DesignateExpertsRequest {
            request_id: rid(),
            task_id: voided_task.clone(),
            expert_ids: voided_team.iter().map(|(_, e)| e.clone()).collect(),
            reason: "考核项目专业性强，需指定熟悉该工种的专家".into(),
        };
        walk.ask_typed(&operator, "DesignateExperts", &designate).await;
        let cancel =
            CancelTaskRequest { request_id: rid(), task_id: voided_task.clone(), reason: "机构取消考核".into() };
        walk.ask_typed(&operator, "CancelTask", &cancel).await;

        // A submission with an attachment, and the notifications acknowledged.
        let submission = CreateSubmissionRequest {
            request_id: rid(),
            r#type: SubmissionType::CountyReport as i32,
            submitting_bureau: bureau.to_proto() as i32,
            institution_id: school.clone(),
            subject: "关于考核现场管理情况的报告".into(),
            content: "本月考核现场秩序良好，建议增加视频监控。".into(),
            ..Default::default()
        };
        let submitted = walk.ask_typed(&operator, "CreateSubmission", &submission).await;
        let submission_id = text(&submitted, "submission.id");
        walk.ask(&operator, "GetSubmission", &[("id", s(&submission_id))]).await;
        let upload = UploadAttachmentRequest {
            request_id: rid(),
            owner: Some(upload_attachment_request::Owner::SubmissionId(submission_id)),
            file_name: "意见附件.pdf".into(),
            media_type: "application/pdf".into(),
            content: b"%PDF-1.4 opinion".to_vec(),
        };
        walk.ask_typed(&operator, "UploadAttachment", &upload).await;
        let notifications = walk.ask(&operator, "ListNotifications", &[]).await;
        if let Some(first) = ids(&notifications).first() {
            let ack = AcknowledgeNotificationRequest { request_id: rid(), notification_id: first.clone() };
            walk.ask_typed(&operator, "AcknowledgeNotification", &ack).await;
        }

        // The scenario's accepted reports: one corrected, the other voided.
        let reports = &left.reports[i];
        if let Some(report) = reports.first() {
            let correct = CorrectReportRequest {
                request_id: rid(),
                report_id: report.clone(),
                content: Some(ReportContent {
                    findings: "考核按规程进行，补记：考场秩序良好。".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["content"]),
                reason: "补记现场情况".into(),
                ..Default::default()
            };
            walk.ask_typed(&operator, "CorrectReport", &correct).await;
        }
        if let Some(report) = reports.get(1) {
            let void = VoidReportRequest {
                request_id: rid(),
                report_id: report.clone(),
                reason: "报告与现场记录不符".into(),
                incident_id: String::new(),
            };
            walk.ask_typed(&operator, "VoidReport", &void).await;
        }
        drawn.push((worked_task.clone(), worked_day, worked_team.clone()));
    }

    // The worked tasks' day comes: one expert reports (returned, then accepted), the other did not
    // attend; finance drafts a batch of the fee line, rejects and cancels it.
    let latest = drawn.iter().map(|(_, day, _)| *day).max().expect("two bureaus");
    clock.at_least(scenario::shanghai(latest, 20));
    for (i, (bureau, (task_id, day, team))) in scenario::BUREAUS.iter().zip(&drawn).enumerate() {
        let operator = token(&format!("operator-{i}"), Role::CountyOperator, Some(*bureau), None);
        let session = walk.ask(&operator, "GetTask", &[("id", s(task_id))]).await;
        let session_id = match session.as_ref().and_then(|t| t.get_field_by_name("task")) {
            Some(task) => {
                let task = task.as_message().cloned();
                ids(&task).into_iter().next().unwrap_or_default()
            }
            None => String::new(),
        };
        let Some(((reported, expert), (absent, _))) = team.first().zip(team.get(1)) else { continue };
        let no_show = RecordNoShowRequest {
            request_id: rid(),
            assignment_id: absent.clone(),
            session_id,
            note: "专家未到场，电话未接通".into(),
        };
        walk.ask_typed(&operator, "RecordNoShow", &no_show).await;
        let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
        let worked = RecordWorkedSessionsRequest {
            request_id: rid(),
            assignment_id: reported.clone(),
            sessions: vec![WorkedSession {
                task_session_id: String::new(),
                date: Some(pdate(*day)),
                half_day: HalfDay::Am as i32,
                start_time: Some(TimeOfDay { hours: 9, minutes: 0 }),
                minutes: 180,
                note: String::new(),
            }],
            on_behalf: None,
        };
        walk.ask_typed(&me, "RecordWorkedSessions", &worked).await;
        let submit = |findings: &str| SubmitReportRequest {
            request_id: rid(),
            assignment_id: reported.clone(),
            content: Some(ReportContent { findings: findings.into(), ..Default::default() }),
            on_behalf: None,
        };
        let report = walk.ask_typed(&me, "SubmitReport", &submit("考核按规程进行。")).await;
        let report = text(&report, "report.id");
        let back =
            ReturnReportRequest {
                request_id: rid(), report_id: report.clone(), reason: "请补充考生人数".into()
            };
        walk.ask_typed(&operator, "ReturnReport", &back).await;
        walk.ask_typed(&me, "SubmitReport", &submit("考核按规程进行，考生 30 人。")).await;
        let accept = AcceptReportRequest { request_id: rid(), report_id: report, note: String::new() };
        walk.ask_typed(&operator, "AcceptReport", &accept).await;

        let preparer = token(&format!("fin-preparer-{i}"), Role::Finance, Some(*bureau), None);
        let lead = token(&format!("fin-lead-{i}"), Role::FinanceLead, Some(*bureau), None);
        for _ in 0..300 {
            let lines = walk.ask(&preparer, "ListFeeLines", &[("assignment_id", s(reported))]).await;
            if !ids(&lines).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let create = || CreatePaymentBatchRequest {
            request_id: rid(),
            paying_bureau: bureau.to_proto() as i32,
            payment_month: Some(YearMonth { year: day.year(), month: i32::try_from(day.month()).unwrap() }),
            fund_source: FundSource::CityCountyEmployment as i32,
            work_dates: Some(DateRange { start: Some(pdate(*day)), end: Some(pdate(*day)) }),
        };
        // A draft cancelled, then a batch of the same line submitted and rejected.
        let batch = walk.ask_typed(&preparer, "finance:CreatePaymentBatch", &create()).await;
        let cancel = CancelPaymentBatchRequest {
            request_id: rid(),
            batch_id: text(&batch, "batch.id"),
            reason: "撤回重做".into(),
        };
        walk.ask_typed(&preparer, "finance:CancelPaymentBatch", &cancel).await;
        let batch = walk.ask_typed(&preparer, "finance:CreatePaymentBatch", &create()).await;
        let batch = text(&batch, "batch.id");
        let submit = SubmitPaymentBatchRequest { request_id: rid(), batch_id: batch.clone() };
        walk.ask_typed(&preparer, "finance:SubmitPaymentBatch", &submit).await;
        let reject = RejectPaymentBatchRequest { request_id: rid(), batch_id: batch, reason: "金额待核".into() };
        walk.ask_typed(&lead, "finance:RejectPaymentBatch", &reject).await;
    }

    // The experts' own registry records.
    let today = latest;
    let year = today.year();
    let meeting = CreateMeetingRequest {
        request_id: rid(),
        r#type: MeetingType::Thematic as i32,
        title: "社会监督专家专题会议".into(),
        date: Some(pdate(today + Duration::days(10))),
        location: "市人社局三楼会议室".into(),
        agenda: "通报年度监督情况".into(),
        invited_expert_ids: experts.iter().map(|e| (*e).clone()).collect(),
    };
    let meeting = walk.ask_typed(&admin, "registry:CreateMeeting", &meeting).await;
    let meeting = text(&meeting, "meeting.id");
    for (n, expert) in experts.iter().enumerate() {
        let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
        walk.ask(&me, "registry:GetMeeting", &[("id", s(&meeting))]).await;
        let upload = UploadDocumentRequest {
            request_id: rid(),
            expert_id: (*expert).clone(),
            file_name: "职称证书.pdf".into(),
            media_type: "application/pdf".into(),
            content: format!("%PDF-1.4 title certificate of {expert}").into_bytes(),
        };
        let document = walk.ask_typed(&me, "registry:UploadDocument", &upload).await;
        walk.ask(&me, "registry:GetDocument", &[("id", s(text(&document, "document.id")))]).await;
        let relation = RecordRelationRequest {
            request_id: rid(),
            expert_id: (*expert).clone(),
            r#type: RelationType::PastEmployment as i32,
            institution_id: left.schools[n % left.schools.len()].clone(),
            source: RelationSource::SelfDeclared as i32,
            valid: Some(DateRange {
                start: Some(Date { year: 2015, month: 3, day: 1 }),
                end: Some(Date { year: 2018, month: 6, day: 30 }),
            }),
            ..Default::default()
        };
        walk.ask_typed(&me, "registry:RecordRelation", &relation).await;
        let confirm = ConfirmExpertDataRequest {
            request_id: rid(),
            expert_id: (*expert).clone(),
            year,
            note: "信息无变化".into(),
            on_behalf: None,
        };
        walk.ask_typed(&me, "registry:ConfirmExpertData", &confirm).await;
        // The incidents are about the first expert (the walk recorded them so).
        for incident in left.incidents.iter().filter(|_| n == 0) {
            let statement = RecordIncidentStatementRequest {
                request_id: rid(),
                incident_id: incident.clone(),
                text: "当时为查看考核时间，并未拍摄。".into(),
                evidence: None,
                on_behalf: None,
            };
            walk.ask_typed(&me, "registry:RecordIncidentStatement", &statement).await;
        }
    }
    if let Some(expert) = experts.last() {
        let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(expert));
        let retire = RetireExpertRequest {
            request_id: rid(),
            expert_id: (*expert).clone(),
            effective_date: Some(pdate(today + Duration::days(30))),
            reason: "年龄原因申请退出".into(),
            ..Default::default()
        };
        walk.ask_typed(&me, "registry:RetireExpert", &retire).await;
    }

    // Applicants: a new call; an application drafted, its material read and removed, the
    // application edited and withdrawn.
    let call = CreateCallRequest {
        request_id: rid(),
        year,
        title: "社会监督专家补充征集通知（范围检查）".into(),
        body: "现面向社会补充征集社会监督专家。".into(),
        categories_sought: vec![supervision_proto::common::ExpertCategory::Technician as i32],
        industries_sought: vec!["制造业".into()],
        application_start_time: Some(prost_types::Timestamp {
            seconds: scenario::shanghai(today, 0).timestamp() - 86_400,
            nanos: 0,
        }),
        application_end_time: Some(prost_types::Timestamp {
            seconds: scenario::shanghai(today, 0).timestamp() + 60 * 86_400,
            nanos: 0,
        }),
        ..Default::default()
    };
    let call = walk.ask_typed(&admin, "recruitment:CreateCall", &call).await;
    let call = text(&call, "call.id");
    let publish = RecordCallPublicationRequest {
        request_id: rid(),
        call_id: call.clone(),
        channel: PublicationChannel::OfficialWebsite as i32,
        publish_date: Some(pdate(today)),
        address: "https://hrss.jiangmen.gov.cn/tzgg/scope-walk.html".into(),
    };
    walk.ask_typed(&admin, "recruitment:RecordCallPublication", &publish).await;
    for k in 0..2 {
        let me = token(&format!("walk-applicant-{k}"), Role::Applicant, None, None);
        let create = CreateApplicationRequest {
            request_id: rid(),
            call_id: call.clone(),
            profile: Some(scenario::applicant_profile(100 + k)),
            replaces_expert_id: String::new(),
            on_behalf: None,
        };
        let application = walk.ask_typed(&me, "recruitment:CreateApplication", &create).await;
        let application = text(&application, "application.id");
        let upload = UploadMaterialRequest {
            request_id: rid(),
            owner: Some(Owner::ApplicationId(application.clone())),
            kind: MaterialKind::CategoryEvidence as i32,
            category: supervision_proto::common::ExpertCategory::Technician as i32,
            condition: 0,
            file_name: "技师证书.pdf".into(),
            media_type: "application/pdf".into(),
            content: format!("%PDF-1.4 certificate of walk applicant {k}").into_bytes(),
            description: "技师职业资格证书扫描件".into(),
        };
        let material = walk.ask_typed(&me, "recruitment:UploadMaterial", &upload).await;
        let material = text(&material, "material.id");
        walk.ask_typed(&me, "recruitment:GetMaterial", &GetMaterialRequest { id: material.clone() }).await;
        walk.ask_typed(
            &me,
            "recruitment:RemoveMaterial",
            &RemoveMaterialRequest { request_id: rid(), material_id: material },
        )
        .await;
        let mut profile = scenario::applicant_profile(100 + k);
        if let Some(contact) = profile.contact.as_mut() {
            contact.mobile = format!("1390000{:04}", 100 + k);
        }
        let read = walk.ask(&me, "recruitment:GetApplication", &[("id", s(&application))]).await;
        let update = UpdateApplicationRequest {
            request_id: rid(),
            application_id: application.clone(),
            profile: Some(profile),
            update_mask: mask(&["contact"]),
            expected_revision: text(&read, "application.revision").parse().unwrap_or_default(),
            on_behalf: None,
        };
        walk.ask_typed(&me, "recruitment:UpdateApplication", &update).await;
        let withdraw = WithdrawApplicationRequest {
            request_id: rid(),
            application_id: application,
            reason: "个人原因".into(),
            on_behalf: None,
        };
        walk.ask_typed(&me, "recruitment:WithdrawApplication", &withdraw).await;
    }

    // Renewals: a renewal opens 90 days before a two-year term ends, so two experts are appointed
    // as recruitment's outbox appoints (AppointExpert, SERVICE) with a decision of 700 days ago;
    // one starts their own renewal, the city starts the other's, which the expert confirms.
    let recruitment_service = token("svc:recruitment", Role::Service, None, None);
    for n in 0..2 {
        let decided = pdate(today - Duration::days(700));
        let profile = ExpertProfile {
            kind: ExpertKind::Individual as i32,
            name: format!("续任专家{n}"),
            identity: Some(IdentityDocument {
                r#type: IdentityDocumentType::ResidentIdCard as i32,
                number: scenario::id_number(300 + n),
                issuing_country: String::new(),
                masked: false,
            }),
            locality: Some(Locality { place: Some(Place::County(Bureau::Kaiping.to_proto() as i32)) }),
            contact: Some(ContactDetails {
                mobile: format!("1370000{:04}", 300 + n),
                email: String::new(),
                address: "江门市开平市示例路 3 号".into(),
                masked: false,
            }),
            categories: vec![CategoryHolding {
                category: supervision_proto::common::ExpertCategory::Technician as i32,
                evidence: Some(Evidence { description: "技师职业资格证书".into(), documents: vec![] }),
                verified: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        let appoint = AppointExpertRequest {
            request_id: format!("app_{}", uuid::Uuid::now_v7().simple()),
            application_id: String::new(),
            profile: Some(profile),
            civil_servant_status: CivilServantStatus::None as i32,
            decision_date: Some(decided),
            term_start: Some(decided),
            replaces_expert_id: String::new(),
        };
        let appoint = AppointExpertRequest { application_id: appoint.request_id.clone(), ..appoint };
        walk.acting_for = Some(supervision_kit::auth::Actor {
            subject: "walk-admin".into(),
            role: Role::CityAdmin.code().to_owned(),
            bureau: None,
        });
        let appointed = walk.ask_typed(&recruitment_service, "registry:AppointExpert", &appoint).await;
        walk.acting_for = None;
        let expert = text(&appointed, "expert.id");
        let me = token(&format!("expert-{expert}"), Role::Expert, None, Some(&expert));
        let start = |initiator: RenewalInitiator| StartRenewalRequest {
            request_id: rid(),
            expert_id: expert.clone(),
            initiator: initiator as i32,
            ..Default::default()
        };
        let renewal = if n == 0 {
            walk.ask_typed(&me, "recruitment:StartRenewal", &start(RenewalInitiator::Expert)).await
        } else {
            let started = walk.ask_typed(&admin, "recruitment:StartRenewal", &start(RenewalInitiator::Bureau)).await;
            let confirm = ConfirmRenewalRequest {
                request_id: rid(),
                renewal_id: text(&started, "renewal.id"),
                willing: true,
                note: "愿意续任".into(),
                on_behalf: None,
            };
            walk.ask_typed(&me, "recruitment:ConfirmRenewal", &confirm).await
        };
        walk.ask(&me, "recruitment:GetRenewal", &[("id", s(text(&renewal, "renewal.id")))]).await;
        walk.ask(&me, "recruitment:ListRenewals", &[("expert_id", s(&expert))]).await;
    }
}
