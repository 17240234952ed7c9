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
//!    batches, exports and reconciliations.
//!
//! No copy may be answered wrongly, and at least [`LEAST_RPCS`] scoped RPCs and [`LEAST_CASES`]
//! copies are checked; the tally is printed.

use std::{collections::BTreeSet, sync::Arc};

use chrono::Datelike;
use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};
use supervision_kit::{Role, outbox::RawCodec};
use testkit::{
    Backend, ServiceKind, on_both_backends,
    scenario::{self, Calendar, Clock, Net, Ticker},
    scope::{Checker, proxy},
    spawn_deployment,
};
use tonic::transport::Channel;

on_both_backends!(no_county_finance_user_expert_or_applicant_reaches_another_bureaus_or_persons_records);

/// Scoped RPCs the walk must reach, and copies it must check.
const LEAST_RPCS: usize = 55;
const LEAST_CASES: usize = 250;

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

    /// Calls `method` (`service:Method` outside dispatch and finance's own names) with `token`;
    /// the answer when it is OK.
    async fn ask(&mut self, token: &str, method: &str, fields: &[(&'static str, V)]) -> Option<DynamicMessage> {
        let (service, method) = match method.split_once(':') {
            Some((service, method)) => (service, method),
            None if REGISTRY.contains(&method) => ("registry", method),
            None if FINANCE.contains(&method) => ("finance", method),
            None => ("dispatch", method),
        };
        let path = format!("/supervision.{service}.v1.{}Service/{method}", capitalised(service));
        let rpc = self.checker.rpcs.get(&path).unwrap_or_else(|| panic!("no RPC {path}")).clone();
        let body = build(&rpc.input(), fields).encode_to_vec();
        let mut request = tonic::Request::new(body);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut grpc = tonic::client::Grpc::new(self.channel(&path).clone());
        grpc.ready().await.unwrap();
        match grpc.unary(request, path.parse().unwrap(), RawCodec).await {
            Ok(answer) => Some(DynamicMessage::decode(rpc.output(), answer.into_inner().as_slice()).unwrap()),
            Err(e) => {
                self.refused.push(format!("{method}: {:?} {}", e.code(), e.message()));
                None
            }
        }
    }
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

    // 2. Each bureau's staff and each drawn expert read and act on what the scenario left.
    let mut walk = Walk { checker: checker.clone(), channels, refused: Vec::new() };
    let month = Calendar::new().session_day(0);
    let ym = || V::M(vec![("year", V::N(i64::from(month.year()))), ("month", V::N(i64::from(month.month())))]);
    let csv = V::N(1);
    let mut experts = BTreeSet::new();
    for (i, bureau) in scenario::BUREAUS.iter().take(2).enumerate() {
        let operator = scenario::token(&format!("operator-{i}"), Role::CountyOperator, Some(*bureau), None);
        let bureau_code = || V::N(i64::from(bureau.to_proto() as i32));
        walk.ask(
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
            }
            walk.ask(&operator, "ListReplacements", &[("task_id", s(&task))]).await;
        }
        walk.ask(&operator, "ListNotifications", &[]).await;
        walk.ask(&operator, "ListSubmissions", &[]).await;
        let expert = experts.iter().next().cloned().expect("the scenario drew experts");
        let now = chrono::Utc::now().timestamp() - 86_400;
        walk.ask(
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
            walk.ask(&me, "registry:GetCertificate", &[("appointment_id", s(&appointment)), ("format", V::N(5))]).await;
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

    checker.settled().await;
    ticker.stop().await;
    deployment.stop().await;

    let tally = checker.take_tally();
    let reached: Vec<&String> = tally.checked.keys().collect();
    let unreached: Vec<&String> = checker.scoped.keys().filter(|p| !tally.checked.contains_key(*p)).collect();
    eprintln!(
        "scope walk ({backend:?}): {} of {} scoped RPCs checked, {} copies, {} calls upstream, {} wrong; \
         per role (own answered OK, other checked): {:?}; copies' answers: {:?}; per RPC: {:?}",
        reached.len(),
        checker.scoped.len(),
        tally.cases(),
        tally.calls,
        tally.wrong.len(),
        tally.per_role,
        tally.answers,
        tally.checked,
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
