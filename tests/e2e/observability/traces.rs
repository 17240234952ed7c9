//! Trace context across services: a caller's `traceparent` parents the server's RPC span, and an
//! outbox delivery carries the trace of the change that enqueued it into the callee.

use std::{collections::HashMap, sync::Arc};

use supervision_kit::{
    Db, Role, SharedClock,
    auth::Actor,
    clock::ManualClock,
    outbox::{self, Delivery, Relay},
    redact::contains_personal_number,
    telemetry,
};
use supervision_proto::{
    common::BureauCode,
    registry::{
        CreateInstitutionRequest, GetInstitutionRequest, InstitutionType, ListInstitutionsRequest,
        registry_service_client::RegistryServiceClient,
    },
};
use testkit::{Backend, TestDb, on_both_backends, spawn_registry, token};
use tonic::Code;
use tracing::Instrument;

use crate::{Received, harness, random_span_id, random_trace_id, scenario};

on_both_backends!(a_draw_and_an_accepted_report_are_each_one_trace_across_the_services);

const LIST: &str = "supervision.registry.v1.RegistryService/ListInstitutions";
const GET: &str = "supervision.registry.v1.RegistryService/GetInstitution";
const CREATE: &str = "supervision.registry.v1.RegistryService/CreateInstitution";

fn with_traceparent<T>(message: T, trace_id: &str, parent: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-{parent}-01").parse().unwrap());
    request
}

fn find<'a>(spans: &'a [Received], name: &str, trace_id: &str) -> Option<&'a Received> {
    spans.iter().find(|s| s.name == name && s.trace_id == trace_id)
}

fn assert_no_personal_number(spans: &[Received]) {
    for span in spans {
        for (key, value) in &span.attributes {
            assert!(!contains_personal_number(value), "span {} attribute {key} = {value:?}", span.name);
        }
        for value in &span.events {
            assert!(!contains_personal_number(value), "span {} event text {value:?}", span.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_traceparent_parents_the_rpc_span_which_records_the_status_code() {
    let harness = harness();
    let registry = spawn_registry(Backend::Sqlite).await;
    let mut client = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None));
    let (trace_id, parent) = (random_trace_id(), random_span_id());

    client.list_institutions(with_traceparent(ListInstitutionsRequest::default(), &trace_id, &parent)).await.unwrap();
    let err = client
        .get_institution(with_traceparent(GetInstitutionRequest { id: "13812345678".into() }, &trace_id, &parent))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // A change whose text holds personal numbers: they must not reach any span.
    let create = CreateInstitutionRequest {
        request_id: "trace-create-1".into(),
        r#type: InstitutionType::TechnicalSchool as i32,
        name: "鹤山技工学校（联系人 13812345678，身份证 440701199003071234）".into(),
        credit_code: "91110108551385082Q".into(),
        county: BureauCode::Heshan as i32,
        ..Default::default()
    };
    client.create_institution(with_traceparent(create, &trace_id, &parent)).await.unwrap();

    let spans = harness
        .spans_until(|spans| [LIST, GET, CREATE].iter().all(|name| find(spans, name, &trace_id).is_some()))
        .await;
    let list = find(&spans, LIST, &trace_id).unwrap();
    assert_eq!(list.parent_span_id, parent, "the caller's span is the parent");
    assert_eq!(list.service, "registry");
    assert_eq!(list.attribute("rpc.grpc.status_code"), Some("0"));
    assert_eq!(list.attribute("rpc.system"), Some("grpc"));
    let get = find(&spans, GET, &trace_id).unwrap();
    assert_eq!(get.parent_span_id, parent);
    assert_eq!(get.attribute("rpc.grpc.status_code"), Some("3"), "INVALID_ARGUMENT");

    // The steps inside the change are children of its RPC span.
    let create = find(&spans, CREATE, &trace_id).unwrap();
    for step in ["idempotency.claim", "audit.append"] {
        let child = find(&spans, step, &trace_id).unwrap_or_else(|| panic!("no {step} span in {spans:#?}"));
        assert_eq!(child.parent_span_id, create.span_id, "{step} is a child of the RPC span");
    }
    assert_no_personal_number(&spans);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_delivery_carries_one_trace_from_the_cause_into_the_callee() {
    let harness = harness();
    let registry = spawn_registry(Backend::Sqlite).await;

    // The calling service's database, holding its outbox, and its relay.
    let caller_db = TestDb::new(Backend::Sqlite).await;
    let db = Db::connect(caller_db.url(), &supervision_registry::app::MIGRATIONS).await.unwrap();
    let clock: SharedClock = Arc::new(ManualClock::at(chrono::Utc::now()));
    let relay = Relay::new(
        db.clone(),
        clock.clone(),
        HashMap::from([("registry".to_owned(), registry.channel.clone())]),
        token(Role::CityAdmin, None),
    );

    // The change in the calling service (an RPC span there) enqueues the call.
    let cause = tracing::info_span!("caller.change");
    let trace_id = telemetry::trace_id_of(&cause).expect("the cause is traced");
    let request = CreateInstitutionRequest {
        request_id: "trace-outbox-1".into(),
        r#type: InstitutionType::TechnicalSchool as i32,
        name: "开平技工学校".into(),
        credit_code: "91110108551385082Q".into(),
        county: BureauCode::Kaiping as i32,
        ..Default::default()
    };
    let actor = Actor { subject: "admin".into(), role: "CITY_ADMIN".into(), bureau: None };
    async {
        let mut tx = db.begin_write().await.unwrap();
        let delivery = Delivery {
            destination: "registry",
            method: "/supervision.registry.v1.RegistryService/CreateInstitution",
            idempotency_key: &request.request_id,
            actor: &actor,
        };
        outbox::enqueue(&mut tx, &clock, delivery, &request).await.unwrap();
        tx.commit().await.unwrap();
    }
    .instrument(cause.clone())
    .await;
    drop(cause);
    let stored: String = sqlx::query_scalar("SELECT trace_context FROM kit_outbox").fetch_one(db.pool()).await.unwrap();
    assert!(stored.contains(&trace_id), "the outbox row keeps the trace context: {stored:?}");

    // The relay delivers later, outside any span of the cause.
    assert_eq!(relay.deliver_due().await.unwrap(), 1);

    let delivery_name = format!("outbox.deliver {CREATE}");
    let spans = harness
        .spans_until(|spans| {
            find(spans, CREATE, &trace_id).is_some()
                && find(spans, &delivery_name, &trace_id).is_some()
                && find(spans, "caller.change", &trace_id).is_some()
        })
        .await;
    let cause = find(&spans, "caller.change", &trace_id).unwrap();
    let delivery = find(&spans, &delivery_name, &trace_id).unwrap();
    let callee = find(&spans, CREATE, &trace_id).unwrap();
    assert_eq!(delivery.parent_span_id, cause.span_id, "the delivery continues the cause's trace");
    assert_eq!(delivery.attribute("rpc.grpc.status_code"), Some("0"));
    assert_eq!(callee.parent_span_id, delivery.span_id, "the callee's span is a child of the delivery");
    assert_eq!(callee.attribute("rpc.grpc.status_code"), Some("0"));
    assert!(find(&spans, "audit.append", &trace_id).is_some(), "the callee's steps are in the same trace");
    assert_no_personal_number(&spans);

    db.close().await;
    registry.stop().await;
}

const PREPARE_DRAW: &str = "supervision.dispatch.v1.DispatchService/PrepareDraw";
const EXECUTE_DRAW: &str = "supervision.dispatch.v1.DispatchService/ExecuteDraw";
const STREAM_DRAW_POOL: &str = "supervision.registry.v1.RegistryService/StreamDrawPool";
const ACCEPT_REPORT: &str = "supervision.dispatch.v1.DispatchService/AcceptReport";
const RECORD_SESSIONS: &str = "supervision.finance.v1.FinanceService/RecordSessions";
const CIVIL_SERVANT_STATUS: &str = "supervision.registry.v1.RegistryService/GetCivilServantStatus";
const STATUS_CHANGED: &str = "supervision.dispatch.v1.DispatchService/ExpertStatusChanged";

fn by_id<'a>(spans: &'a [Received], span_id: &str) -> Option<&'a Received> {
    spans.iter().find(|s| s.span_id == span_id)
}

/// The chain of ancestors of `span` among `spans`, nearest first, by name.
fn ancestors(spans: &[Received], span: &Received) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = span;
    while let Some(parent) = by_id(spans, &at.parent_span_id) {
        names.push(parent.name.clone());
        at = parent;
    }
    names
}

/// The four services run the scenario with the spans of this process going to the fake
/// collector. The draw (prepare, witness, execute, each fetching the pool from the registry over
/// StreamDrawPool) is one trace in dispatch and the registry; the accepted report is one trace in
/// dispatch and, through dispatch's outbox, in finance.
async fn a_draw_and_an_accepted_report_are_each_one_trace_across_the_services(backend: Backend) {
    let harness = harness();
    let (deployment, outcome) = scenario::deployed(backend).await;
    let (draw, report) = (outcome.draw_trace.clone(), outcome.report_trace.clone());
    let delivery_name = format!("outbox.deliver {RECORD_SESSIONS}");
    let spans = harness
        .spans_until(|spans| {
            let in_draw = |name: &str| spans.iter().filter(|s| s.name == name && s.trace_id == draw).count();
            in_draw(PREPARE_DRAW) == 1
                && in_draw(EXECUTE_DRAW) == 1
                && in_draw(STREAM_DRAW_POOL) == 2
                && find(spans, "draw.execute", &draw).is_some()
                && find(spans, ACCEPT_REPORT, &report).is_some()
                && find(spans, &delivery_name, &report).is_some()
                && find(spans, RECORD_SESSIONS, &report).is_some()
                && find(spans, CIVIL_SERVANT_STATUS, &report).is_some()
                && spans.iter().any(|s| s.name == STATUS_CHANGED)
        })
        .await;

    // The draw: dispatch's RPC spans, each pool fetch a child of its RPC, and the registry's
    // StreamDrawPool a child of the fetch, all in the operator's trace.
    let prepare = find(&spans, PREPARE_DRAW, &draw).unwrap();
    let execute = find(&spans, EXECUTE_DRAW, &draw).unwrap();
    for rpc in [prepare, execute] {
        assert_eq!(rpc.attribute("rpc.grpc.status_code"), Some("0"), "{rpc:?}");
    }
    let pools: Vec<&Received> = spans.iter().filter(|s| s.name == STREAM_DRAW_POOL && s.trace_id == draw).collect();
    // Prepare streams the whole pool; execute asks about the head of the ranked order only.
    let mut rpcs = std::collections::HashSet::new();
    for pool in &pools {
        assert_eq!(pool.attribute("rpc.grpc.status_code"), Some("0"));
        let chain = ancestors(&spans, pool);
        let rpc = chain.iter().find(|s| *s == PREPARE_DRAW || *s == EXECUTE_DRAW).cloned();
        let fetch = if rpc.as_deref() == Some(PREPARE_DRAW) {
            "registry.stream_draw_pool"
        } else {
            "registry.draw_pool_experts"
        };
        assert_eq!(chain.first().map(String::as_str), Some(fetch), "{chain:?}");
        assert!(rpc.is_some(), "the registry's span descends from dispatch's RPC: {chain:?}");
        rpcs.extend(rpc);
    }
    assert_eq!(rpcs.len(), 2, "one fetch at prepare and one at execute: {rpcs:?}");
    // The steps inside: the draw itself and the fence's locks at execution.
    let prepared = find(&spans, "draw.prepare", &draw).expect("a span for the prepare step");
    assert_eq!(prepared.parent_span_id, prepare.span_id);
    let fence = find(&spans, "lock.acquire", &draw).expect("a span for the fence's locks");
    assert_eq!(fence.parent_span_id, execute.span_id);
    let executed = find(&spans, "draw.execute", &draw).unwrap();
    assert!(ancestors(&spans, executed).iter().any(|n| n == EXECUTE_DRAW));

    // The report: accepted in dispatch, delivered by dispatch's relay in the same trace, and
    // recorded by finance as a child of the delivery.
    let accept = find(&spans, ACCEPT_REPORT, &report).unwrap();
    assert_eq!(accept.attribute("rpc.grpc.status_code"), Some("0"));
    let delivery = find(&spans, &delivery_name, &report).unwrap();
    assert_eq!(delivery.attribute("destination"), Some("finance"));
    assert_eq!(delivery.attribute("rpc.grpc.status_code"), Some("0"));
    assert!(
        ancestors(&spans, delivery).iter().any(|n| n == ACCEPT_REPORT),
        "the delivery continues the acceptance's trace: {:?}",
        ancestors(&spans, delivery)
    );
    let recorded = find(&spans, RECORD_SESSIONS, &report).unwrap();
    assert_eq!(recorded.parent_span_id, delivery.span_id, "finance's span is a child of the delivery");
    assert_eq!(recorded.attribute("rpc.grpc.status_code"), Some("0"));
    // Finance asks the registry about the expert (the fee exemption) in the same trace.
    let asked = find(&spans, CIVIL_SERVANT_STATUS, &report).unwrap();
    assert_eq!(asked.parent_span_id, recorded.span_id, "finance's call carries the trace on");
    // And the other way: each appointment's status change reaches dispatch through the
    // registry's outbox in the appointment's trace.
    for changed in spans.iter().filter(|s| s.name == STATUS_CHANGED) {
        let chain = ancestors(&spans, changed);
        assert_eq!(
            chain.iter().map(String::as_str).take(2).collect::<Vec<_>>(),
            [
                format!("outbox.deliver {STATUS_CHANGED}").as_str(),
                "supervision.registry.v1.RegistryService/AppointExpert"
            ],
            "{changed:?}"
        );
    }
    // The two operations are distinct traces.
    assert_ne!(draw, report);
    assert!(find(&spans, RECORD_SESSIONS, &draw).is_none());
    assert_no_personal_number(&spans);
    deployment.stop().await;
}
