//! Fuzzing the request conversions (issue 11, item 5): proptest generates requests for every RPC
//! of the four services from the descriptor set the proto crate embeds, and each is sent, as a
//! role the RPC roles table admits, to a running service. A request is either a message built
//! field by field from the RPC's input descriptor (any Unicode text, 0.5 to 3 KB strings, id-like
//! strings, the extreme and negative integers, NaN and infinities, enum numbers no contract
//! defines, nested messages three levels deep, repeated fields) or random bytes as the body.
//!
//! Proved: no answer is INTERNAL, UNKNOWN or CANCELLED and no call breaks its connection; no
//! thread of the process panics (a panic hook counts them: the services run in-process); every
//! service still answers its health check SERVING; and no refused call moves its service's audit
//! chain (the head is read after every call; calls that answered OK and were audited are printed).
//!
//! `make test` sends 6 inputs per RPC; `SUPERVISION_TEST_LONG=1` 100, and `PROPTEST_CASES=n`
//! sets it. The seed is printed; `SUPERVISION_FUZZ_SEED=<n>` replays a run.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use proptest::{
    collection::vec,
    prelude::*,
    strategy::ValueTree,
    test_runner::{Config, RngAlgorithm, TestRng, TestRunner},
};
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};
use supervision_kit::{Bureau, Role, access::AccessTable, outbox::RawCodec};
use testkit::{
    Backend, RunningService,
    idempotency::{descriptor_pool, is_state_changing, rpcs},
    on_both_backends, spawn_dispatch, spawn_finance, spawn_recruitment, spawn_registry, token,
};
use tokio_stream::StreamExt;
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

on_both_backends!(fuzzed_requests_to_every_rpc_never_panic_nor_answer_internal);

/// Panics anywhere in this test process since the hook was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Stands for a fresh UUID in a generated `request_id`, so idempotency does not replay.
const FRESH: &str = "<fresh request id>";

/// How deep generated messages nest.
const DEPTH: usize = 3;

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "\\PC{0,24}",
        2 => "[a-z]{2,4}_[0-9a-f]{32}",
        1 => "[0-9]{1,20}",
        1 => Just(String::new()),
        1 => "\\PC{500,3000}",
    ]
    .boxed()
}

fn scalar(kind: &Kind, depth: usize) -> BoxedStrategy<Value> {
    match kind {
        Kind::String => text().prop_map(Value::String).boxed(),
        Kind::Bytes => vec(any::<u8>(), 0..64).prop_map(|b| Value::Bytes(b.into())).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            prop_oneof![any::<i32>(), Just(i32::MIN), Just(i32::MAX), -3..40i32].prop_map(Value::I32).boxed()
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -3..100_000i64].prop_map(Value::I64).boxed()
        }
        Kind::Uint32 | Kind::Fixed32 => {
            prop_oneof![any::<u32>(), Just(u32::MAX), 0..40u32].prop_map(Value::U32).boxed()
        }
        Kind::Uint64 | Kind::Fixed64 => {
            prop_oneof![any::<u64>(), Just(u64::MAX), 0..100_000u64].prop_map(Value::U64).boxed()
        }
        Kind::Float => any::<f32>().prop_map(Value::F32).boxed(),
        Kind::Double => any::<f64>().prop_map(Value::F64).boxed(),
        Kind::Enum(e) => {
            let known: Vec<i32> = e.values().map(|v| v.number()).collect();
            prop_oneof![3 => proptest::sample::select(known), 1 => any::<i32>()].prop_map(Value::EnumNumber).boxed()
        }
        Kind::Message(m) => message(m, depth + 1).prop_map(Value::Message).boxed(),
    }
}

fn field(field: &FieldDescriptor, depth: usize) -> BoxedStrategy<Option<Value>> {
    if field.is_map() {
        return Just(None).boxed();
    }
    if field.name() == "request_id" {
        return prop_oneof![4 => Just(FRESH.to_owned()), 1 => text()].prop_map(|t| Some(Value::String(t))).boxed();
    }
    if field.is_list() {
        return proptest::option::weighted(0.5, vec(scalar(&field.kind(), depth), 1..4).prop_map(Value::List)).boxed();
    }
    proptest::option::weighted(0.7, scalar(&field.kind(), depth)).boxed()
}

/// Messages of `descriptor`, nested no deeper than [`DEPTH`].
fn message(descriptor: &MessageDescriptor, depth: usize) -> BoxedStrategy<DynamicMessage> {
    if depth > DEPTH {
        return Just(DynamicMessage::new(descriptor.clone())).boxed();
    }
    let fields: Vec<FieldDescriptor> = descriptor.fields().collect();
    let values: Vec<BoxedStrategy<Option<Value>>> = fields.iter().map(|f| field(f, depth)).collect();
    let descriptor = descriptor.clone();
    values
        .prop_map(move |values| {
            let mut message = DynamicMessage::new(descriptor.clone());
            for (f, value) in fields.iter().zip(values) {
                if let Some(value) = value {
                    message.set_field(f, value);
                }
            }
            message
        })
        .boxed()
}

#[derive(Debug, Clone)]
enum Input {
    Message(DynamicMessage),
    Bytes(Vec<u8>),
}

impl Input {
    fn body(self) -> Vec<u8> {
        match self {
            Self::Message(mut message) => {
                let fresh = message.get_field_by_name("request_id").is_some_and(|v| v.as_str() == Some(FRESH));
                if fresh {
                    message.set_field_by_name("request_id", Value::String(uuid::Uuid::new_v4().to_string()));
                }
                message.encode_to_vec()
            }
            Self::Bytes(bytes) => bytes,
        }
    }
}

fn input(descriptor: &MessageDescriptor) -> BoxedStrategy<Input> {
    prop_oneof![
        4 => message(descriptor, 0).prop_map(Input::Message),
        1 => vec(any::<u8>(), 0..512).prop_map(Input::Bytes),
    ]
    .boxed()
}

/// Calls `path` with `body` as `role`; the status it ends with (a stream: its first error).
async fn call(channel: &Channel, path: &str, streaming: bool, body: Vec<u8>, role: Role) -> Status {
    let bureau = match role {
        Role::CountyOperator => Some(Bureau::Xinhui),
        Role::Finance | Role::FinanceLead => Some(Bureau::City),
        _ => None,
    };
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert("authorization", format!("Bearer {}", token(role, bureau)).parse().unwrap());
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    if let Err(e) = grpc.ready().await {
        return Status::unavailable(format!("transport: {e}"));
    }
    let path = path.parse().unwrap();
    if streaming {
        match grpc.server_streaming(request, path, RawCodec).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                while let Some(item) = stream.next().await {
                    if let Err(status) = item {
                        return status;
                    }
                }
                Status::ok("")
            }
            Err(status) => status,
        }
    } else {
        match grpc.unary(request, path, RawCodec).await {
            Ok(_) => Status::ok(""),
            Err(status) => status,
        }
    }
}

/// What is wrong with `status` as an answer to random input, if anything: a server fault, or a
/// broken call (a handler that panicked takes its stream or connection down with it).
fn judge(status: &Status) -> Option<String> {
    let broken = status.code() == Code::Unavailable
        && ["transport", "connection", "h2 protocol", "stream"].iter().any(|w| status.message().contains(w));
    (matches!(status.code(), Code::Internal | Code::Unknown | Code::Cancelled | Code::DataLoss) || broken)
        .then(|| format!("{:?}: {}", status.code(), status.message()))
}

async fn audit_head(pool: &sqlx::AnyPool) -> supervision_kit::audit::AuditHead {
    supervision_kit::audit::head(pool).await.unwrap()
}

fn cases_per_rpc() -> usize {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or_else(|| testkit::scale(6, 100))
}

fn seed() -> u64 {
    std::env::var("SUPERVISION_FUZZ_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or_else(rand_seed)
}

fn rand_seed() -> u64 {
    u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap())
}

async fn fuzzed_requests_to_every_rpc_never_panic_nor_answer_internal(backend: Backend) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let panics_before = PANICS.load(Ordering::SeqCst);

    let services: Vec<RunningService> = vec![
        spawn_registry(backend).await,
        spawn_recruitment(backend).await,
        spawn_dispatch(backend).await,
        spawn_finance(backend).await,
    ];
    let index = |path: &str| match path.trim_start_matches('/').split('/').next() {
        Some("supervision.registry.v1.RegistryService" | "supervision.calendar.v1.CalendarService") => Some(0),
        Some("supervision.recruitment.v1.RecruitmentService") => Some(1),
        Some("supervision.dispatch.v1.DispatchService") => Some(2),
        Some("supervision.finance.v1.FinanceService") => Some(3),
        _ => None,
    };
    sqlx::any::install_default_drivers();
    let (mut pools, mut heads) = (Vec::new(), Vec::new());
    for service in &services {
        let pool = sqlx::AnyPool::connect(service.database_url()).await.unwrap();
        heads.push(audit_head(&pool).await);
        pools.push(pool);
    }

    let seed = seed();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let cases = cases_per_rpc();
    let table = AccessTable::shipped().unwrap();
    let pool = descriptor_pool();
    let (mut rpcs_walked, mut inputs) = (0, 0);
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut accepted_commands: Vec<String> = Vec::new();
    let mut audited_reads: BTreeMap<String, usize> = BTreeMap::new();
    for (path, method) in rpcs(&pool) {
        let Some(i) = index(&path) else { continue };
        let role = table.rule(&path).unwrap_or_else(|| panic!("{path} has no roles")).roles[0];
        let strategy = input(&method.input());
        rpcs_walked += 1;
        for _ in 0..cases {
            let body = strategy.new_tree(&mut runner).expect("an input").current().body();
            let shown = hex::encode(&body[..body.len().min(256)]);
            let status = call(&services[i].channel, &path, method.is_server_streaming(), body, role).await;
            inputs += 1;
            *codes.entry(format!("{:?}", status.code())).or_default() += 1;
            if let Some(problem) = judge(&status) {
                wrong.push(format!("{path} as {role:?}: {problem}; body (hex, first 256 bytes) {shown}"));
            }
            if status.code() == Code::Ok && is_state_changing(&method) {
                accepted_commands.push(path.clone());
            }
            // Only a call that answered OK may have moved its service's audit chain (a command,
            // or a read that is audited, such as GetPayee or a sealed roster).
            let head = audit_head(&pools[i]).await;
            if head != heads[i] {
                if status.code() == Code::Ok {
                    *audited_reads.entry(path.clone()).or_default() += 1;
                } else {
                    wrong.push(format!("{path} answered {:?} but moved the audit chain", status.code()));
                }
                heads[i] = head;
            }
        }
    }
    for (i, service) in services.iter().enumerate() {
        let mut health = HealthClient::new(service.channel.clone());
        match health.check(HealthCheckRequest::default()).await {
            Ok(answer) if answer.get_ref().status == ServingStatus::Serving as i32 => {}
            other => wrong.push(format!("service {i} after the fuzzing: {other:?}")),
        }
        if audit_head(&pools[i]).await != heads[i] {
            wrong.push(format!("the audit chain of service {i} moved after the last call"));
        }
    }
    let panics = PANICS.load(Ordering::SeqCst) - panics_before;
    eprintln!(
        "fuzz (seed {seed}): {rpcs_walked} RPCs, {inputs} inputs ({cases} per RPC), {panics} panics, {} wrong \
         answers; answers: {codes:?}; commands accepted: {accepted_commands:?}; \
         calls that answered OK and wrote to the audit chain: {audited_reads:?}",
        wrong.len()
    );
    assert!(rpcs_walked > 150 && inputs >= rpcs_walked * cases, "walked only {rpcs_walked} RPCs, {inputs} inputs");
    assert_eq!(panics, 0, "panics while fuzzing (seed {seed}); wrong answers:\n{}", wrong.join("\n"));
    assert!(wrong.is_empty(), "seed {seed}: {} wrong answers:\n{}", wrong.len(), wrong.join("\n"));
    for pool in pools {
        pool.close().await;
    }
    for service in services {
        service.stop().await;
    }
}
