//! The idempotency checker (issue 11, item 3): a gRPC proxy in front of a service that, for
//! every unary call whose request has a non-empty `request_id` (the state-changing RPCs, read
//! from the descriptor set the proto crate embeds), does instead of one call:
//!
//! 1. two identical copies at once: both must succeed or both fail, with the same answer;
//! 2. one more identical copy after them: the same answer (a replay);
//! 3. a copy with one other field changed (decoded with the method's descriptor, changed, encoded
//!    again; free text first, then ids, numbers and flags, until one passes the handler's checks):
//!    `FAILED_PRECONDITION`, never OK.
//!
//! The caller gets the first answer. `tests/e2e/reliability/idempotency.rs` runs whole scenarios
//! through it. With `SUPERVISION_IDEMPOTENCY_SWEEP=<file>` every service the testkit starts is
//! behind such a proxy, and each check is appended to the file (`checked <path>` or
//! `wrong <path>: ...`), so any e2e suite run that way sweeps the commands its tests send.

use std::{
    collections::BTreeMap,
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor, ReflectMessage, Value};
use supervision_kit::outbox::RawCodec;
use tonic::{Code, Status, codegen::BoxFuture, metadata::MetadataMap, transport::Channel};

/// The contracts as compiled into the proto crate (with the well-known types they import).
pub fn descriptor_pool() -> DescriptorPool {
    DescriptorPool::decode(supervision_proto::FILE_DESCRIPTOR_SET).unwrap_or_else(|_| {
        let mut pool = DescriptorPool::global();
        pool.decode_file_descriptor_set(supervision_proto::FILE_DESCRIPTOR_SET).expect("the embedded descriptor set");
        pool
    })
}

/// Every RPC of the system's services, by path (`/package.Service/Method`).
pub fn rpcs(pool: &DescriptorPool) -> BTreeMap<String, MethodDescriptor> {
    pool.services()
        .filter(|s| s.full_name().starts_with("supervision."))
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .map(|m| (format!("/{}/{}", m.parent_service().full_name(), m.name()), m))
        .collect()
}

/// Whether calls of `method` change state: its request has a `request_id`.
pub fn is_state_changing(method: &MethodDescriptor) -> bool {
    method.input().get_field_by_name("request_id").is_some()
}

/// What the proxies saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls sent upstream, all RPCs.
    pub calls: usize,
    /// Per state-changing RPC: commands checked (first copies answered OK), refused commands.
    pub checked: BTreeMap<String, (usize, usize)>,
    /// What answered the changed copies, when it was not FAILED_PRECONDITION (tried further).
    pub other_answers: BTreeMap<String, usize>,
    pub wrong: Vec<String>,
}

#[derive(Debug)]
pub struct Checker {
    pub rpcs: BTreeMap<String, MethodDescriptor>,
    tally: Mutex<Tally>,
    /// Commands being checked: the tally is read once none is.
    in_flight: AtomicUsize,
    /// The sweep's log, when the environment names one.
    log: Option<PathBuf>,
}

/// Counts a command in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Checker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            rpcs: rpcs(&descriptor_pool()),
            tally: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            log: None,
        })
    }

    /// What the proxies saw so far (and forgets it).
    pub fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap())
    }

    fn log(&self, line: &str) {
        let Some(path) = &self.log else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot append to the idempotency sweep log {}: {e}", path.display());
        }
    }

    /// Waits until no command is being checked (the services' own deliveries may still be).
    pub async fn settled(&self) {
        for _ in 0..300 {
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("commands still being checked after 30 s");
    }

    fn wrong(&self, problem: String) {
        self.log(&format!("wrong {problem}"));
        self.tally.lock().unwrap().wrong.push(problem);
    }

    async fn send(
        &self,
        upstream: &Channel,
        path: &str,
        metadata: &MetadataMap,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Status> {
        self.tally.lock().unwrap().calls += 1;
        let request = tonic::Request::from_parts(metadata.clone(), tonic::Extensions::default(), body);
        let mut grpc = tonic::client::Grpc::new(upstream.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let path = path.parse().map_err(|_| Status::unimplemented("not a path"))?;
        grpc.unary(request, path, RawCodec).await.map(tonic::Response::into_inner)
    }

    /// Whether two answers of `output` are the same message (byte for byte, or field by field
    /// where a map's order differs).
    fn same(output: &MessageDescriptor, a: &[u8], b: &[u8]) -> bool {
        a == b
            || matches!(
                (DynamicMessage::decode(output.clone(), a), DynamicMessage::decode(output.clone(), b)),
                (Ok(x), Ok(y)) if x == y
            )
    }

    /// One unary call from a client, checked as the module header says when it is a command.
    async fn unary(
        &self,
        upstream: &Channel,
        path: &str,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Status> {
        let Some(method) = self.rpcs.get(path).filter(|m| is_state_changing(m)) else {
            return self.send(upstream, path, &metadata, body).await;
        };
        let request = match DynamicMessage::decode(method.input(), body.as_slice()) {
            Ok(request) if request.get_field_by_name("request_id").is_some_and(|v| v.as_str() != Some("")) => request,
            _ => return self.send(upstream, path, &metadata, body).await,
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(&self.in_flight);
        let (a, b) = tokio::join!(
            self.send(upstream, path, &metadata, body.clone()),
            self.send(upstream, path, &metadata, body.clone())
        );
        let first = match (a, b) {
            (Ok(a), Ok(b)) => {
                if !Self::same(&method.output(), &a, &b) {
                    let diff = difference(&method.output(), &a, &b);
                    self.wrong(format!("{path}: two concurrent copies answered differently: {diff}"));
                }
                a
            }
            (Err(a), Err(b)) => {
                if a.code() != b.code() {
                    self.wrong(format!(
                        "{path}: two concurrent refused copies answered {:?} and {:?}",
                        a.code(),
                        b.code()
                    ));
                }
                self.tally.lock().unwrap().checked.entry(path.to_owned()).or_default().1 += 1;
                self.log(&format!("refused {path} {:?}", a.code()));
                return Err(a);
            }
            (Ok(a), Err(e)) | (Err(e), Ok(a)) => {
                self.wrong(format!(
                    "{path}: of two concurrent copies one succeeded and one answered {:?}: {}",
                    e.code(),
                    e.message()
                ));
                a
            }
        };
        match self.send(upstream, path, &metadata, body.clone()).await {
            Ok(again) if Self::same(&method.output(), &first, &again) => {}
            Ok(again) => {
                let diff = difference(&method.output(), &first, &again);
                self.wrong(format!("{path}: the retry answered differently from the first call: {diff}"));
            }
            Err(e) => self.wrong(format!("{path}: the retry answered {:?}: {}", e.code(), e.message())),
        }
        let mut refused = false;
        let mut answers = Vec::new();
        for (what, changed) in changes(&request).into_iter().take(8) {
            match self.send(upstream, path, &metadata, changed.encode_to_vec()).await {
                Err(e) if e.code() == Code::FailedPrecondition => {
                    refused = true;
                    break;
                }
                Ok(_) => self.wrong(format!("{path}: the same request_id with {what} changed answered OK")),
                Err(e) => answers.push(format!("{what}: {:?}", e.code())),
            }
        }
        let mut tally = self.tally.lock().unwrap();
        for answer in &answers {
            *tally.other_answers.entry(format!("{path} {answer}")).or_default() += 1;
        }
        tally.checked.entry(path.to_owned()).or_default().0 += 1;
        drop(tally);
        if refused {
            self.log(&format!("checked {path}"));
        } else {
            self.wrong(format!("{path}: no changed copy was refused as FAILED_PRECONDITION (answers: {answers:?})"));
        }
        Ok(first)
    }
}

/// Where two answers of `output` differ first (a field path and both values, shortened).
fn difference(output: &MessageDescriptor, a: &[u8], b: &[u8]) -> String {
    fn walk(a: &DynamicMessage, b: &DynamicMessage, prefix: &str) -> Option<String> {
        for field in a.descriptor().fields() {
            let (x, y) = (a.get_field(&field), b.get_field(&field));
            if x == y {
                continue;
            }
            let name = format!("{prefix}{}", field.name());
            if let (Value::Message(x), Value::Message(y)) = (x.as_ref(), y.as_ref()) {
                return walk(x, y, &format!("{name}."));
            }
            if let (Value::List(x), Value::List(y)) = (x.as_ref(), y.as_ref())
                && x.len() == y.len()
            {
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    if let (Value::Message(x), Value::Message(y)) = (x, y)
                        && x != y
                    {
                        return walk(x, y, &format!("{name}[{i}]."));
                    }
                }
            }
            let shown = |v: &Value| format!("{v:?}").chars().take(120).collect::<String>();
            return Some(format!("{name}: {} / {}", shown(&x), shown(&y)));
        }
        None
    }
    match (DynamicMessage::decode(output.clone(), a), DynamicMessage::decode(output.clone(), b)) {
        (Ok(x), Ok(y)) => walk(&x, &y, "").unwrap_or_else(|| "the same fields, other bytes".into()),
        _ => "an answer does not decode".into(),
    }
}

/// Copies of `request` with one field changed, most likely to pass a handler's checks first:
/// free text, then nested messages' fields, then ids, then numbers and flags.
fn changes(request: &DynamicMessage) -> Vec<(String, DynamicMessage)> {
    let mut tiers: [Vec<(String, DynamicMessage)>; 4] = Default::default();
    collect_changes(request, "", 0, &mut tiers);
    tiers.into_iter().flatten().collect()
}

fn collect_changes(
    message: &DynamicMessage,
    prefix: &str,
    depth: usize,
    tiers: &mut [Vec<(String, DynamicMessage)>; 4],
) {
    const FREE_TEXT: [&str; 6] = ["note", "description", "reason", "comment", "remark", "title"];
    for field in message.descriptor().fields() {
        let name = format!("{prefix}{}", field.name());
        if field.name() == "request_id" || field.is_map() {
            continue;
        }
        let set = message.has_field(&field);
        let with = |value: Value| {
            let mut copy = message.clone();
            copy.set_field(&field, value);
            (name.clone(), copy)
        };
        if field.is_list() {
            if let (true, Kind::String, Value::List(items)) =
                (set, field.kind(), message.get_field(&field).into_owned())
                && let Some(Value::String(first)) = items.first()
            {
                let mut list = items.clone();
                list[0] = Value::String(tweak_id(first));
                tiers[2].push(with(Value::List(list)));
            }
            if let (true, Kind::Message(_), Value::List(items)) =
                (set && depth < 4, field.kind(), message.get_field(&field).into_owned())
                && let Some(Value::Message(first)) = items.first()
            {
                let mut nested: [Vec<(String, DynamicMessage)>; 4] = Default::default();
                collect_changes(first, &format!("{name}[0]."), depth + 1, &mut nested);
                for (tier, variants) in nested.into_iter().enumerate() {
                    for (what, inner) in variants {
                        let mut list = items.clone();
                        list[0] = Value::Message(inner);
                        tiers[tier.max(1)].push((what, with(Value::List(list)).1));
                    }
                }
            }
            continue;
        }
        match (field.kind(), message.get_field(&field).into_owned()) {
            (Kind::String, Value::String(text)) if set => {
                let id_like = field.name() == "id" || field.name().ends_with("_id");
                if id_like {
                    tiers[2].push(with(Value::String(tweak_id(&text))));
                } else {
                    tiers[0].push(with(Value::String(format!("{text}（复核）"))));
                }
            }
            (Kind::String, _) if FREE_TEXT.contains(&field.name()) => {
                tiers[0].push(with(Value::String("补充说明".into())));
            }
            (Kind::Message(_), Value::Message(inner)) if set && depth < 4 => {
                let mut nested: [Vec<(String, DynamicMessage)>; 4] = Default::default();
                collect_changes(&inner, &format!("{name}."), depth + 1, &mut nested);
                for (tier, variants) in nested.into_iter().enumerate() {
                    for (what, changed) in variants {
                        let mut copy = message.clone();
                        copy.set_field(&field, Value::Message(changed));
                        tiers[tier.max(1)].push((what, copy));
                    }
                }
            }
            (Kind::Enum(e), Value::EnumNumber(n)) if set => {
                if let Some(other) = e.values().map(|v| v.number()).find(|v| *v != n && *v != 0) {
                    tiers[3].push(with(Value::EnumNumber(other)));
                }
            }
            (Kind::Bool, Value::Bool(b)) => tiers[3].push(with(Value::Bool(!b))),
            (Kind::Int32, Value::I32(n)) if set => tiers[3].push(with(Value::I32(n.saturating_add(1)))),
            (Kind::Int64, Value::I64(n)) if set => tiers[3].push(with(Value::I64(n.saturating_add(1)))),
            (Kind::Uint32, Value::U32(n)) if set => tiers[3].push(with(Value::U32(n.saturating_add(1)))),
            (Kind::Uint64, Value::U64(n)) if set => tiers[3].push(with(Value::U64(n.saturating_add(1)))),
            _ => {}
        }
    }
}

/// `id` with its last character changed, keeping its form (hex digits stay hex digits).
fn tweak_id(id: &str) -> String {
    let mut chars: Vec<char> = id.chars().collect();
    match chars.last_mut() {
        Some(last) => *last = if *last == '0' { '1' } else { '0' },
        None => chars.push('0'),
    }
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------
// The proxy (`proxy.rs`) hands every call to the checker.

impl crate::proxy::Check for Checker {
    fn rpcs(&self) -> &BTreeMap<String, MethodDescriptor> {
        &self.rpcs
    }

    fn unary(
        self: Arc<Self>,
        upstream: Channel,
        path: String,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> BoxFuture<Vec<u8>, Status> {
        Box::pin(async move { Checker::unary(&self, &upstream, &path, metadata, body).await })
    }

    fn server_streaming(
        self: Arc<Self>,
        upstream: Channel,
        path: String,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> BoxFuture<crate::proxy::Messages, Status> {
        self.tally.lock().unwrap().calls += 1;
        Box::pin(crate::proxy::pass_stream(upstream, path, metadata, body))
    }
}

/// A proxy in front of `upstream` (any of the services, the calendar and health), serving
/// until the process ends: its address and a channel to it.
pub async fn proxy(upstream: &Channel, checker: &Arc<Checker>) -> (SocketAddr, Channel) {
    crate::proxy::serve(upstream, checker).await
}

/// `channel` itself, or with `SUPERVISION_IDEMPOTENCY_SWEEP` set, a channel to a checking proxy
/// in front of it (one checker per process, logging to that file).
pub async fn swept(channel: Channel) -> Channel {
    static SWEEP: OnceLock<Option<Arc<Checker>>> = OnceLock::new();
    let checker = SWEEP.get_or_init(|| {
        let log = std::env::var_os("SUPERVISION_IDEMPOTENCY_SWEEP").filter(|v| !v.is_empty())?;
        let mut checker = Checker::new();
        Arc::get_mut(&mut checker).expect("a new checker").log = Some(PathBuf::from(log));
        Some(checker)
    });
    match checker {
        Some(checker) => proxy(&channel, checker).await.1,
        None => channel,
    }
}
