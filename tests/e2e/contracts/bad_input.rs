//! Bad input over every RPC (issue 11, item 5), table-driven from the compiled contracts: each
//! RPC is called by a role the RPC roles table admits with (1) an empty request, (2) 1 MiB in
//! one string field at a time (every string field of the request and of the messages it holds
//! directly), and (3) malformed ids in every `id`/`*_id` field. No answer may be INTERNAL or
//! UNKNOWN; an INVALID_ARGUMENT must name at least one field violation; and no refused call may
//! change anything: each service's audit chain head is the same after the walk as before it.
//!
//! The requests are written straight in the protobuf wire format from the descriptors the proto
//! crate embeds, so every RPC added to a contract is walked without touching this test.

use std::collections::HashMap;

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorSet, field_descriptor_proto::Type};
use supervision_kit::{Bureau, Role, access::AccessTable, outbox::RawCodec};
use testkit::{Backend, RunningService, spawn_dispatch, spawn_finance, spawn_recruitment, spawn_registry, token};
use tokio_stream::StreamExt;
use tonic::{Code, Status, transport::Channel};
use tonic_types::StatusExt;

/// What goes in an oversized string field.
const ONE_MIB: usize = 1 << 20;

/// Ids that no service issues: path tricks, SQL, a NUL byte, a control character, 4 KiB.
fn malformed_ids() -> Vec<String> {
    vec!["../../etc/passwd' OR '1'='1' --".into(), "exp_\u{0}\u{7}x".into(), "exp_".to_owned() + &"9".repeat(4096)]
}

/// One RPC, as the descriptors describe it.
struct Rpc {
    path: String,
    input: String,
    server_streaming: bool,
}

struct Contracts {
    rpcs: Vec<Rpc>,
    messages: HashMap<String, DescriptorProto>,
}

impl Contracts {
    fn load() -> Self {
        let set = FileDescriptorSet::decode(supervision_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut messages = HashMap::new();
        let mut rpcs = Vec::new();
        fn collect(prefix: &str, message: &DescriptorProto, into: &mut HashMap<String, DescriptorProto>) {
            let name = format!("{prefix}.{}", message.name());
            for nested in &message.nested_type {
                collect(&name, nested, into);
            }
            into.insert(name, message.clone());
        }
        for file in &set.file {
            let package = format!(".{}", file.package());
            for message in &file.message_type {
                collect(&package, message, &mut messages);
            }
            if !file.package().starts_with("supervision.") {
                continue;
            }
            for service in &file.service {
                for method in &service.method {
                    rpcs.push(Rpc {
                        path: format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                        input: method.input_type().to_owned(),
                        server_streaming: method.server_streaming(),
                    });
                }
            }
        }
        Self { rpcs, messages }
    }

    /// Paths (field numbers) of the string fields of `input` and of the messages its fields
    /// hold directly (well-known types aside).
    fn string_paths(&self, input: &str) -> Vec<Vec<i32>> {
        let mut paths = Vec::new();
        let Some(message) = self.messages.get(input) else { return paths };
        for field in &message.field {
            match field.r#type() {
                Type::String => paths.push(vec![field.number()]),
                Type::Message if !field.type_name().starts_with(".google.") => {
                    if let Some(inner) = self.messages.get(field.type_name()) {
                        for f in inner.field.iter().filter(|f| f.r#type() == Type::String) {
                            paths.push(vec![field.number(), f.number()]);
                        }
                    }
                }
                _ => {}
            }
        }
        paths
    }

    /// An encoded `message`: a fresh `request_id` (or `bad_id` in it), `big` in the string at
    /// `target`, and `bad_id` in every `id`/`*_id` string field when given.
    fn encode(&self, message: &str, target: &[i32], bad_id: Option<&str>, big: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(descriptor) = self.messages.get(message) else { return out };
        for field in &descriptor.field {
            let number = field.number();
            let value: Option<Vec<u8>> = match field.r#type() {
                Type::String if target == [number] => Some(big.as_bytes().to_vec()),
                Type::String if field.name() == "request_id" => {
                    Some(bad_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned).into_bytes())
                }
                Type::String if field.name() == "id" || field.name().ends_with("_id") => {
                    bad_id.map(|b| b.as_bytes().to_vec())
                }
                Type::Message if target.first() == Some(&number) && target.len() > 1 => {
                    Some(self.encode(field.type_name(), &target[1..], bad_id, big))
                }
                _ => None,
            };
            if let Some(value) = value {
                put_varint(&mut out, (u64::try_from(number).unwrap() << 3) | 2);
                put_varint(&mut out, value.len() as u64);
                out.extend_from_slice(&value);
            }
        }
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Calls `rpc` with `body` as `role`; the status it ends with (a stream: its first error, or OK).
async fn call(channel: &Channel, rpc: &Rpc, body: Vec<u8>, role: Role) -> Status {
    let bureau = match role {
        Role::CountyOperator => Some(Bureau::Xinhui),
        Role::Finance | Role::FinanceLead => Some(Bureau::City),
        _ => None,
    };
    let mut request = tonic::Request::new(body);
    request.metadata_mut().insert("authorization", format!("Bearer {}", token(role, bureau)).parse().unwrap());
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = rpc.path.parse().unwrap();
    if rpc.server_streaming {
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

/// What is wrong with `status` as an answer to bad input, if anything.
fn judge(status: &Status, empty: bool) -> Option<String> {
    match status.code() {
        Code::Internal | Code::Unknown => Some(format!("{:?}: {}", status.code(), status.message())),
        Code::InvalidArgument
            if empty && status.get_error_details().bad_request().is_none_or(|b| b.field_violations.is_empty()) =>
        {
            Some(format!("INVALID_ARGUMENT without a field violation: {}", status.message()))
        }
        _ => None,
    }
}

async fn audit_head(url: &str) -> supervision_kit::audit::AuditHead {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let head = supervision_kit::audit::head(&pool).await.unwrap();
    pool.close().await;
    head
}

pub async fn every_rpc_refuses_bad_input_clearly_and_changes_nothing(backend: Backend) {
    let services: Vec<RunningService> = vec![
        spawn_registry(backend).await,
        spawn_recruitment(backend).await,
        spawn_dispatch(backend).await,
        spawn_finance(backend).await,
    ];
    let served = |path: &str| -> Option<&RunningService> {
        let index = match path.trim_start_matches('/').split('/').next()? {
            "supervision.registry.v1.RegistryService" => 0,
            "supervision.recruitment.v1.RecruitmentService" => 1,
            "supervision.dispatch.v1.DispatchService" => 2,
            "supervision.finance.v1.FinanceService" => 3,
            "supervision.calendar.v1.CalendarService" => 0,
            _ => return None,
        };
        services.get(index)
    };
    let mut heads = Vec::new();
    for service in &services {
        heads.push(audit_head(service.database_url()).await);
    }
    let contracts = Contracts::load();
    let table = AccessTable::shipped().unwrap();
    let big = "监".repeat(ONE_MIB / 3);
    let mut wrong = Vec::new();
    let mut accepted = Vec::new();
    let (mut rpcs, mut calls) = (0, 0);
    let mut codes: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for rpc in &contracts.rpcs {
        let Some(service) = served(&rpc.path) else { continue };
        let role = table.rule(&rpc.path).unwrap_or_else(|| panic!("{} has no roles", rpc.path)).roles[0];
        rpcs += 1;
        let empty = call(&service.channel, rpc, Vec::new(), role).await;
        calls += 1;
        *codes.entry(format!("empty {:?}", empty.code())).or_default() += 1;
        if empty.code() == Code::Unimplemented {
            continue;
        }
        if let Some(problem) = judge(&empty, true) {
            wrong.push(format!("{} as {role:?} with an empty request: {problem}", rpc.path));
        }
        let mut bodies: Vec<(String, Vec<u8>)> = contracts
            .string_paths(&rpc.input)
            .into_iter()
            .map(|path| (format!("1 MiB in field {path:?}"), contracts.encode(&rpc.input, &path, None, &big)))
            .collect();
        for bad in malformed_ids() {
            let shown: String = bad.escape_debug().take(40).collect();
            bodies.push((format!("malformed ids {shown:?}"), contracts.encode(&rpc.input, &[], Some(&bad), &big)));
        }
        for (what, body) in bodies {
            let status = call(&service.channel, rpc, body, role).await;
            calls += 1;
            *codes.entry(format!("bad {:?}", status.code())).or_default() += 1;
            if let Some(problem) = judge(&status, false) {
                wrong.push(format!("{} as {role:?} with {what}: {problem}", rpc.path));
            }
            if status.code() == Code::Ok {
                accepted.push(format!("{} with {what}", rpc.path));
            }
        }
    }
    assert!(rpcs > 150 && calls > 1000, "walked only {rpcs} RPCs with {calls} calls");
    for (service, before) in services.iter().zip(&heads) {
        let after = audit_head(service.database_url()).await;
        if &after != before {
            wrong.push(format!(
                "the audit chain of {} moved from {before:?} to {after:?}; bad input answered OK: {accepted:#?}",
                service.addr
            ));
        }
    }
    eprintln!("bad input: {rpcs} RPCs, {calls} calls, {} wrong answers; answers: {codes:?}", wrong.len());
    let mut accepting: Vec<&str> = accepted.iter().filter_map(|a| a.split(' ').next()).collect();
    accepting.dedup();
    eprintln!("RPCs answering OK to some oversized or malformed input (reads; the chain did not move): {accepting:?}");
    assert!(wrong.is_empty(), "{} wrong answers:\n{}", wrong.len(), wrong.join("\n"));
    for service in services {
        service.stop().await;
    }
}
