//! The bureau walk (issue 11, item 6): a gRPC proxy in front of a service that checks, for
//! every call (unary, or a server stream read whole) of an RPC whose scope in `docs/rpc-roles.md`
//! is `bureau` or `own`, that the caller's bureau (or, for EXPERT and APPLICANT, the caller's own
//! identity) is what bounds the answer. When the caller is COUNTY_OPERATOR, FINANCE or
//! FINANCE_LEAD of a bureau, or EXPERT or APPLICANT, the proxy
//!
//! 1. sends the real call and hands its answer back unchanged (a server stream of such an RPC,
//!    ImportInstitutions, is read to its end first, and judged below by its last message);
//! 2. when it answered OK, sends a copy of the same request as the same role of *another*
//!    bureau ([`other_bureau`]: Pengjiang <-> Jianghai, Xinhui <-> Taishan, Kaiping <-> Heshan,
//!    Enping -> Kaiping, the city -> Xinhui), or as another expert or applicant; a copy of a
//!    command gets a fresh `request_id`;
//! 3. checks the copy's answer: PERMISSION_DENIED or NOT_FOUND is right; OK is right only when
//!    - it shows none of the records the real answer showed (the `id` of the answer itself, of
//!      its message fields and of the items of its repeated message fields),
//!    - no `BureauCode` field anywhere in it names the caller's bureau, and for an expert no
//!      field holds the expert's id (for an applicant, the applicant's subject),
//!    - and the request did not name one record by id (`id`, `*_id`; for bureau copies not the
//!      citywide `expert_id` and `institution_id`), unless it is a listing (`List*`) or an RPC
//!      that acts for the caller's own bureau or person whatever it is sent
//!      ([`ACTS_FOR_CALLERS_BUREAU`], [`ACTS_FOR_CALLERS_PERSON`]: their copies may also be
//!      refused with any code, the refusal being about the copy's own bureau or person);
//!
//!    any other answer is wrong.
//!
//! The bureau dimension applies where a record has a bureau (the header of `docs/rpc-roles.md`):
//! not to recruitment, and in the registry only to institutions, incidents and publicity
//! activities ([`has_bureau`]); experts, appointments, meetings and trainings are the citywide
//! pool's. SERVICE callers and city roles pass unchecked.
//!
//! `tests/e2e/reliability/scope.rs` runs whole scenarios through it. With
//! `SUPERVISION_SCOPE_SWEEP=<file>` every service the testkit starts is behind such a proxy, and
//! each check is appended to the file (`checked <path> <role> <answer>`, `wrong <path> ...`), so
//! any e2e suite run that way sweeps the calls its tests send. In that mode the copies of the
//! commands of those two lists are not sent: answered OK, they would make records in the
//! other bureau that the suite's own counts do not expect.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MethodDescriptor, ReflectMessage, Value};
use supervision_kit::{
    Bureau, Role,
    access::{AccessTable, Scope},
    auth::{AUTHORIZATION, Claims, TokenRequest},
    outbox::RawCodec,
};
use tonic::{Code, Status, codegen::BoxFuture, metadata::MetadataMap, transport::Channel};

use crate::idempotency::{descriptor_pool, is_state_changing, rpcs};

/// RPCs that act for the caller's own bureau whatever the request says (the bureau defaults to
/// the caller's, read from the handlers): a copy from another bureau may answer OK with a record
/// of its own bureau, or be refused for reasons of its own bureau; an OK copy is checked only for
/// showing the original caller's records or bureau.
pub const ACTS_FOR_CALLERS_BUREAU: [&str; 7] = [
    // The reporting bureau defaults to the caller's (registry incidents.rs).
    "/supervision.registry.v1.RegistryService/RecordIncident",
    // The submitting bureau is the caller's (dispatch domain/submission.rs).
    "/supervision.dispatch.v1.DispatchService/CreateSubmission",
    // The paying bureau defaults to the caller's (finance convert.rs).
    "/supervision.finance.v1.FinanceService/ExportLedger",
    "/supervision.finance.v1.FinanceService/ExportWithholdingReturn",
    "/supervision.finance.v1.FinanceService/ExportYearlyStatement",
    "/supervision.finance.v1.FinanceService/Reconcile",
    "/supervision.finance.v1.FinanceService/ListExports",
];

/// As [`ACTS_FOR_CALLERS_BUREAU`], for the caller's own person: an application is the applicant's
/// by the token's subject (recruitment applications.rs); an expert's yearly statement is their
/// own when the request names no expert (finance convert.rs).
pub const ACTS_FOR_CALLERS_PERSON: [&str; 2] = [
    "/supervision.recruitment.v1.RecruitmentService/CreateApplication",
    "/supervision.finance.v1.FinanceService/ExportYearlyStatement",
];

/// Whether a copy of `request` (to `path`) sent as `other` acts for the copy's own bureau or
/// person: an RPC of the lists above whose request does not name the original bureau or expert.
fn acts_for_caller(path: &str, request: &DynamicMessage, other: &Other) -> bool {
    let names = |wanted: &Value| {
        request
            .descriptor()
            .fields()
            .any(|f| !f.is_list() && request.has_field(&f) && *request.get_field(&f) == *wanted)
    };
    match other {
        Other::Bureau { own, .. } => {
            ACTS_FOR_CALLERS_BUREAU.contains(&path) && !names(&Value::EnumNumber(own.to_proto() as i32))
        }
        Other::Expert { own, .. } | Other::Applicant { own, .. } => {
            ACTS_FOR_CALLERS_PERSON.contains(&path) && !names(&Value::String(own.clone()))
        }
    }
}

/// Whether the records of `path` have a bureau (the header of `docs/rpc-roles.md`): everything
/// of dispatch and finance; in the registry institutions, incidents and publicity activities;
/// nothing of recruitment (the citywide pool, D13).
pub fn has_bureau(path: &str) -> bool {
    const REGISTRY_WITH_BUREAU: [&str; 9] = [
        "CreateInstitution",
        "UpdateInstitution",
        "ImportInstitutions",
        "RecordIncident",
        "GetIncident",
        "ListIncidents",
        "RecordIncidentStatement",
        "RecordPublicityActivity",
        "ListPublicityActivities",
    ];
    if path.starts_with("/supervision.dispatch.") || path.starts_with("/supervision.finance.") {
        return true;
    }
    path.strip_prefix("/supervision.registry.v1.RegistryService/").is_some_and(|m| REGISTRY_WITH_BUREAU.contains(&m))
}

/// The bureau a copy is sent as: a neighbour county for a county, a county for the city.
pub fn other_bureau(bureau: Bureau) -> Bureau {
    match bureau {
        Bureau::Pengjiang => Bureau::Jianghai,
        Bureau::Jianghai => Bureau::Pengjiang,
        Bureau::Xinhui => Bureau::Taishan,
        Bureau::Taishan => Bureau::Xinhui,
        Bureau::Kaiping => Bureau::Heshan,
        Bureau::Heshan => Bureau::Kaiping,
        Bureau::Enping => Bureau::Kaiping,
        Bureau::City => Bureau::Xinhui,
    }
}

/// What the proxies saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls sent upstream, copies included.
    pub calls: usize,
    /// Per scoped RPC: copies checked.
    pub checked: BTreeMap<String, usize>,
    /// Per role: real calls answered OK (own bureau or person) and copies checked (other).
    pub per_role: BTreeMap<String, (usize, usize)>,
    /// Per answer of the copies (`PermissionDenied`, `NotFound`, `Ok`): how many.
    pub answers: BTreeMap<String, usize>,
    /// Per scoped RPC, per answer of its copies: how many.
    pub answers_per_rpc: BTreeMap<String, BTreeMap<String, usize>>,
    /// Copies not sent in sweep mode, per RPC.
    pub not_sent: BTreeMap<String, usize>,
    pub wrong: Vec<String>,
}

impl Tally {
    /// Copies checked, all RPCs.
    pub fn cases(&self) -> usize {
        self.checked.values().sum()
    }
}

#[derive(Debug)]
pub struct Checker {
    pub rpcs: BTreeMap<String, MethodDescriptor>,
    /// Every RPC whose scope is `bureau` or `own`.
    pub scoped: BTreeMap<String, Scope>,
    tally: Mutex<Tally>,
    in_flight: AtomicUsize,
    /// The sweep's log, when the environment names one; then the copies of commands of
    /// [`ACTS_FOR_CALLERS_BUREAU`] and [`ACTS_FOR_CALLERS_PERSON`] are not sent.
    log: Option<PathBuf>,
}

/// Counts a call in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Who the copy is sent as, and what its answer must not show.
#[derive(Debug)]
enum Other {
    /// The same role of another bureau; the caller's bureau.
    Bureau { role: Role, own: Bureau, other: Bureau },
    /// Another expert; the caller's expert id.
    Expert { own: String, other: String },
    /// Another applicant; the caller's subject.
    Applicant { own: String, other: String },
}

impl Other {
    fn role(&self) -> &'static str {
        match self {
            Other::Bureau { role, .. } => role.code(),
            Other::Expert { .. } => "EXPERT",
            Other::Applicant { .. } => "APPLICANT",
        }
    }
}

/// The claims of the bearer token in `metadata`, read without verifying it (the service does).
fn claims(metadata: &MetadataMap) -> Option<Claims> {
    let value = metadata.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Checker {
    pub fn new() -> Arc<Self> {
        let table = AccessTable::shipped().expect("docs/rpc-roles.md parses");
        let scoped = table
            .methods()
            .filter_map(|m| table.rule(m).map(|r| (m.to_owned(), r.scope)))
            .filter(|(_, s)| *s != Scope::All)
            .collect();
        Arc::new(Self {
            rpcs: rpcs(&descriptor_pool()),
            scoped,
            tally: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            log: None,
        })
    }

    /// What the proxies saw so far (and forgets it).
    pub fn take_tally(&self) -> Tally {
        std::mem::take(&mut *self.tally.lock().unwrap())
    }

    /// Waits until no call is being checked.
    pub async fn settled(&self) {
        for _ in 0..300 {
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("calls still being checked after 30 s");
    }

    fn log(&self, line: &str) {
        let Some(path) = &self.log else { return };
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot append to the scope sweep log {}: {e}", path.display());
        }
    }

    /// Sends one call upstream: its answer, one message for a unary call, every message of the
    /// stream read to its end for a server stream.
    async fn send(
        &self,
        upstream: &Channel,
        path: &str,
        metadata: &MetadataMap,
        body: Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, Status> {
        self.tally.lock().unwrap().calls += 1;
        let streaming = self.rpcs.get(path).is_some_and(MethodDescriptor::is_server_streaming);
        let request = tonic::Request::from_parts(metadata.clone(), tonic::Extensions::default(), body);
        let mut grpc = tonic::client::Grpc::new(upstream.clone());
        grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
        let path = path.parse().map_err(|_| Status::unimplemented("not a path"))?;
        if !streaming {
            return grpc.unary(request, path, RawCodec).await.map(|r| vec![r.into_inner()]);
        }
        let mut stream = grpc.server_streaming(request, path, RawCodec).await?.into_inner();
        let mut messages = Vec::new();
        while let Some(message) = stream.message().await? {
            messages.push(message);
        }
        Ok(messages)
    }

    /// Who a copy of a call of `path` by the holder of `claims` is sent as, if it is checked.
    fn other(&self, path: &str, claims: &Claims) -> Option<Other> {
        let scope = *self.scoped.get(path)?;
        let role = Role::from_code(&claims.role)?;
        match role {
            Role::CountyOperator | Role::Finance | Role::FinanceLead if has_bureau(path) => {
                let own = Bureau::from_division_code(claims.bureau.as_deref()?)?;
                Some(Other::Bureau { role, own, other: other_bureau(own) })
            }
            Role::Expert if scope == Scope::Own => Some(Other::Expert {
                own: claims.expert_id.clone()?,
                other: format!("exp_{}", uuid::Uuid::now_v7().simple()),
            }),
            Role::Applicant if scope == Scope::Own => Some(Other::Applicant {
                own: claims.sub.clone(),
                other: format!("applicant-other-{}", uuid::Uuid::new_v4().simple()),
            }),
            _ => None,
        }
    }

    /// Whether a call of `path` with `metadata` is checked: the caller and who its copy is sent as.
    fn checked(&self, path: &str, metadata: &MetadataMap) -> Option<(MethodDescriptor, Claims, Other)> {
        let (method, claims) = (self.rpcs.get(path)?, claims(metadata)?);
        let other = self.other(path, &claims)?;
        Some((method.clone(), claims, other))
    }

    /// One call from a client (unary, or a server stream collected whole), checked as the module
    /// header says: the real answer's messages.
    async fn call(
        &self,
        upstream: &Channel,
        path: &str,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, Status> {
        let Some((method, claims, other)) = self.checked(path, &metadata) else {
            return self.send(upstream, path, &metadata, body).await;
        };
        let method = &method;
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _in_flight = InFlight(&self.in_flight);
        let real = self.send(upstream, path, &metadata, body.clone()).await;
        let Ok(answer) = &real else { return real };
        self.tally.lock().unwrap().per_role.entry(other.role().to_owned()).or_default().0 += 1;
        let Ok(mut request) = DynamicMessage::decode(method.input(), body.as_slice()) else { return real };
        if self.log.is_some() && acts_for_caller(path, &request, &other) && is_state_changing(method) {
            *self.tally.lock().unwrap().not_sent.entry(path.to_owned()).or_default() += 1;
            self.log(&format!("not-sent {path} {}", other.role()));
            return real;
        }
        if request.get_field_by_name("request_id").is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            request.set_field_by_name("request_id", Value::String(uuid::Uuid::new_v4().to_string()));
        }
        let mut copy_metadata = metadata.clone();
        let token = crate::identity::token_for(copy_token(&claims, &other));
        copy_metadata.insert(AUTHORIZATION, format!("Bearer {token}").parse().expect("an ASCII token"));
        let copy = self.send(upstream, path, &copy_metadata, request.encode_to_vec()).await;
        // A stream is judged by its last message (an import's result).
        let last = |messages: &[Vec<u8>]| messages.last().cloned().unwrap_or_default();
        let copy = copy.map(|messages| last(&messages));
        let verdict = judge(path, method, &request, &last(answer), &copy, &other);
        let code = match &copy {
            Ok(_) => "Ok".to_owned(),
            Err(e) => format!("{:?}", e.code()),
        };
        {
            let mut tally = self.tally.lock().unwrap();
            *tally.checked.entry(path.to_owned()).or_default() += 1;
            tally.per_role.entry(other.role().to_owned()).or_default().1 += 1;
            *tally.answers.entry(code.clone()).or_default() += 1;
            *tally.answers_per_rpc.entry(path.to_owned()).or_default().entry(code.clone()).or_default() += 1;
        }
        match verdict {
            None => self.log(&format!("checked {path} {} {code}", other.role())),
            Some(problem) => {
                let problem = format!("{path} as {} of another {}: {problem}", other.role(), other_what(&other));
                self.log(&format!("wrong {problem}"));
                self.tally.lock().unwrap().wrong.push(problem);
            }
        }
        real
    }
}

fn other_what(other: &Other) -> String {
    match other {
        Other::Bureau { own, other, .. } => {
            format!("bureau ({} instead of {})", other.division_code(), own.division_code())
        }
        Other::Expert { .. } => "expert".into(),
        Other::Applicant { .. } => "applicant".into(),
    }
}

/// The token of the copy: the same role and lifetime, another bureau or person.
fn copy_token(claims: &Claims, other: &Other) -> TokenRequest {
    let ttl = Duration::from_secs(u64::try_from(claims.exp - claims.iat).unwrap_or(3600).max(60));
    let role = Role::from_code(&claims.role).expect("a known role");
    match other {
        Other::Bureau { other, .. } => TokenRequest {
            subject: format!("{}-other-bureau", claims.sub),
            role,
            bureau: Some(*other),
            expert_id: None,
            ttl,
        },
        Other::Expert { other, .. } => {
            TokenRequest { subject: format!("expert-{other}"), role, bureau: None, expert_id: Some(other.clone()), ttl }
        }
        Other::Applicant { other, .. } => {
            TokenRequest { subject: other.clone(), role, bureau: None, expert_id: None, ttl }
        }
    }
}

/// What is wrong with the copy's answer (`None`: nothing).
fn judge(
    path: &str,
    method: &MethodDescriptor,
    request: &DynamicMessage,
    real: &[u8],
    copy: &Result<Vec<u8>, Status>,
    other: &Other,
) -> Option<String> {
    let copy = match copy {
        Err(e) if matches!(e.code(), Code::PermissionDenied | Code::NotFound) => return None,
        Err(_) if acts_for_caller(path, request, other) => return None,
        Err(e) => {
            return Some(format!("answered {:?} (not PERMISSION_DENIED or NOT_FOUND): {}", e.code(), e.message()));
        }
        Ok(copy) => copy,
    };
    let output = method.output();
    let (Ok(real), Ok(copy)) =
        (DynamicMessage::decode(output.clone(), real), DynamicMessage::decode(output.clone(), copy.as_slice()))
    else {
        return Some("an answer does not decode".into());
    };
    if let Some(problem) = import_stored(&copy) {
        return Some(problem);
    }
    let shown = record_ids(&real);
    if let Some(id) = record_ids(&copy).intersection(&shown).next() {
        return Some(format!("answered OK showing {id}, a record the real answer showed"));
    }
    match other {
        Other::Bureau { own, .. } => {
            if let Some(field) = bureau_field(&copy, own.to_proto() as i32) {
                return Some(format!("answered OK with {field} = {}", own.division_code()));
            }
        }
        Other::Expert { own, .. } | Other::Applicant { own, .. } => {
            if let Some(field) = string_field(&copy, own) {
                return Some(format!("answered OK with {field} = {own}"));
            }
        }
    }
    let method_name = path.rsplit('/').next().unwrap_or_default();
    if !method_name.starts_with("List") && !acts_for_caller(path, request, other) {
        let citywide: &[&str] = match other {
            Other::Bureau { .. } => &["expert_id", "institution_id"],
            _ => &[],
        };
        for field in request.descriptor().fields() {
            let name = field.name();
            let id_like = name == "id" || name.ends_with("_id");
            if id_like
                && name != "request_id"
                && !citywide.contains(&name)
                && !field.is_list()
                && request.get_field(&field).as_str().is_some_and(|s| !s.is_empty())
            {
                return Some(format!(
                    "answered OK to a request naming {name} {:?}",
                    request.get_field(&field).as_str()
                ));
            }
        }
    }
    None
}

/// What is wrong with an import's answer to a copy (a stream's last message holding an
/// `ImportResult` as `result`): the copy stored rows, or some row of the file passed (every row
/// names the first caller's county, which the copy's bureau may not import into).
fn import_stored(answer: &DynamicMessage) -> Option<String> {
    let result = answer.get_field_by_name("result")?;
    let result = result.as_message()?;
    if result.descriptor().name() != "ImportResult" {
        return None;
    }
    let int = |name: &str| result.get_field_by_name(name).and_then(|v| v.as_i32()).unwrap_or_default();
    let committed = result.get_field_by_name("committed").and_then(|v| v.as_bool()).unwrap_or_default();
    if committed || int("rows_imported") > 0 {
        return Some(format!("the copy's import stored {} rows", int("rows_imported")));
    }
    let bad: BTreeSet<i32> = match result.get_field_by_name("errors").as_deref() {
        Some(Value::List(errors)) => errors
            .iter()
            .filter_map(Value::as_message)
            .filter_map(|e| e.get_field_by_name("row").and_then(|v| v.as_i32()))
            .collect(),
        _ => BTreeSet::new(),
    };
    (i32::try_from(bad.len()).unwrap_or(i32::MAX) < int("rows_total"))
        .then(|| format!("the copy's import found {} of {} rows bad", bad.len(), int("rows_total")))
}

/// The ids of the records an answer shows: its own `id`, and the `id` of each of its message
/// fields and of each item of its repeated message fields.
fn record_ids(answer: &DynamicMessage) -> BTreeSet<String> {
    let id_of = |m: &DynamicMessage| m.get_field_by_name("id").and_then(|v| v.as_str().map(str::to_owned));
    let mut ids = BTreeSet::new();
    ids.extend(id_of(answer));
    for field in answer.descriptor().fields() {
        if !answer.has_field(&field) {
            continue;
        }
        match answer.get_field(&field).as_ref() {
            Value::Message(m) => ids.extend(id_of(m)),
            Value::List(items) => {
                ids.extend(items.iter().filter_map(|v| v.as_message()).filter_map(id_of));
            }
            _ => {}
        }
    }
    ids.retain(|id| !id.is_empty());
    ids
}

fn is_bureau_code(kind: &Kind) -> bool {
    matches!(kind, Kind::Enum(e) if e.full_name() == "supervision.common.v1.BureauCode")
}

/// The first field (a path) of `message` of type `BureauCode` holding `value`.
fn bureau_field(message: &DynamicMessage, value: i32) -> Option<String> {
    walk(message, "", &mut |name, kind, v| (is_bureau_code(kind) && v.as_enum_number() == Some(value)).then_some(name))
}

/// The first string field (a path) of `message` holding `value`.
fn string_field(message: &DynamicMessage, value: &str) -> Option<String> {
    walk(message, "", &mut |name, _, v| (v.as_str() == Some(value)).then_some(name))
}

/// Visits every scalar value of `message` (lists item by item), depth first, until `found`
/// answers a field path.
fn walk(
    message: &DynamicMessage,
    prefix: &str,
    found: &mut dyn FnMut(String, &Kind, &Value) -> Option<String>,
) -> Option<String> {
    for field in message.descriptor().fields() {
        if !message.has_field(&field) {
            continue;
        }
        let name = format!("{prefix}{}", field.name());
        let kind = field.kind();
        let value = message.get_field(&field);
        let items: Vec<&Value> = match value.as_ref() {
            Value::List(items) => items.iter().collect(),
            Value::Map(map) => map.values().collect(),
            single => vec![single],
        };
        for (i, item) in items.into_iter().enumerate() {
            let here = if field.is_list() { format!("{name}[{i}]") } else { name.clone() };
            let hit = match item {
                Value::Message(m) => walk(m, &format!("{here}."), found),
                scalar => found(here, &kind, scalar),
            };
            if hit.is_some() {
                return hit;
            }
        }
    }
    None
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
        Box::pin(async move {
            let mut answer = self.call(&upstream, &path, metadata, body).await?;
            Ok(answer.pop().unwrap_or_default())
        })
    }

    /// A checked stream (a scoped RPC: ImportInstitutions) is read whole, then its copy sent and
    /// checked, and its messages handed on; any other is passed through as it comes.
    fn server_streaming(
        self: Arc<Self>,
        upstream: Channel,
        path: String,
        metadata: MetadataMap,
        body: Vec<u8>,
    ) -> BoxFuture<crate::proxy::Messages, Status> {
        Box::pin(async move {
            if self.checked(&path, &metadata).is_some() {
                let messages = self.call(&upstream, &path, metadata, body).await?;
                return Ok(Box::pin(tokio_stream::iter(messages.into_iter().map(Ok))) as crate::proxy::Messages);
            }
            self.tally.lock().unwrap().calls += 1;
            crate::proxy::pass_stream(upstream, path, metadata, body).await
        })
    }
}

/// A proxy in front of `upstream` (any of the services, the calendar and health), serving
/// until the process ends: its address and a channel to it.
pub async fn proxy(upstream: &Channel, checker: &Arc<Checker>) -> (SocketAddr, Channel) {
    crate::proxy::serve(upstream, checker).await
}

/// `channel` itself, or with `SUPERVISION_SCOPE_SWEEP` set, a channel to a checking proxy in
/// front of it (one checker per process, logging to that file).
pub async fn swept(channel: Channel) -> Channel {
    static SWEEP: OnceLock<Option<Arc<Checker>>> = OnceLock::new();
    let checker = SWEEP.get_or_init(|| {
        let log = std::env::var_os("SUPERVISION_SCOPE_SWEEP").filter(|v| !v.is_empty())?;
        let mut checker = Checker::new();
        Arc::get_mut(&mut checker).expect("a new checker").log = Some(PathBuf::from(log));
        Some(checker)
    });
    match checker {
        Some(checker) => proxy(&channel, checker).await.1,
        None => channel,
    }
}

#[cfg(test)]
mod tests {
    use supervision_proto::dispatch::{GetTaskRequest, GetTaskResponse, ListTasksRequest, ListTasksResponse, Task};

    use super::*;

    const GET: &str = "/supervision.dispatch.v1.DispatchService/GetTask";
    const LIST: &str = "/supervision.dispatch.v1.DispatchService/ListTasks";

    fn verdict(path: &str, request: Vec<u8>, real: Vec<u8>, copy: Result<Vec<u8>, Status>) -> Option<String> {
        let checker = Checker::new();
        let method = &checker.rpcs[path];
        let request = DynamicMessage::decode(method.input(), request.as_slice()).unwrap();
        let other = Other::Bureau { role: Role::CountyOperator, own: Bureau::Xinhui, other: Bureau::Taishan };
        judge(path, method, &request, &real, &copy, &other)
    }

    fn task(id: &str, bureau: Bureau) -> Task {
        Task { id: id.into(), dispatching_bureau: bureau.to_proto() as i32, ..Default::default() }
    }

    #[test]
    fn the_bureau_and_the_scope_rules_are_read_from_the_table() {
        let checker = Checker::new();
        assert_eq!(checker.scoped.len(), 94, "the RPCs with scope bureau or own in docs/rpc-roles.md");
        assert!(has_bureau(GET) && has_bureau("/supervision.registry.v1.RegistryService/GetIncident"));
        assert!(!has_bureau("/supervision.registry.v1.RegistryService/GetExpert"));
        assert_eq!(other_bureau(Bureau::Xinhui), Bureau::Taishan);
        assert!(other_bureau(Bureau::City).is_county());
    }

    #[test]
    fn a_refused_copy_is_right_and_one_that_shows_the_record_is_wrong() {
        let request = GetTaskRequest { id: "tsk_1".into() }.encode_to_vec();
        let real = GetTaskResponse { task: Some(task("tsk_1", Bureau::Xinhui)) }.encode_to_vec();
        for code in [Code::PermissionDenied, Code::NotFound] {
            assert_eq!(verdict(GET, request.clone(), real.clone(), Err(Status::new(code, "no"))), None);
        }
        let refused_otherwise = verdict(GET, request.clone(), real.clone(), Err(Status::failed_precondition("state")));
        assert!(refused_otherwise.is_some_and(|w| w.contains("FailedPrecondition")));
        let shown = verdict(GET, request.clone(), real.clone(), Ok(real.clone()));
        assert!(shown.is_some_and(|w| w.contains("tsk_1")));
        // Even an answer with another record is wrong where the request named one by id.
        let other = GetTaskResponse { task: Some(task("tsk_2", Bureau::Taishan)) }.encode_to_vec();
        assert!(verdict(GET, request, real, Ok(other)).is_some_and(|w| w.contains("naming id")));
    }

    #[test]
    fn a_listing_may_answer_the_other_bureaus_records_but_none_of_the_first_ones_or_their_bureau() {
        let request = ListTasksRequest::default().encode_to_vec();
        let real =
            ListTasksResponse { tasks: vec![task("tsk_1", Bureau::Xinhui)], ..Default::default() }.encode_to_vec();
        let theirs = ListTasksResponse { tasks: vec![task("tsk_2", Bureau::Taishan)], ..Default::default() };
        assert_eq!(verdict(LIST, request.clone(), real.clone(), Ok(theirs.encode_to_vec())), None);
        let leaked = ListTasksResponse { tasks: vec![task("tsk_3", Bureau::Xinhui)], ..Default::default() };
        let wrong = verdict(LIST, request.clone(), real.clone(), Ok(leaked.encode_to_vec()));
        assert!(wrong.is_some_and(|w| w.contains("dispatching_bureau")), "the first bureau's task is named");
        let mut both = theirs;
        both.tasks.push(task("tsk_1", Bureau::Taishan));
        assert!(verdict(LIST, request, real, Ok(both.encode_to_vec())).is_some_and(|w| w.contains("tsk_1")));
    }

    #[test]
    fn an_imports_copy_must_store_nothing_and_find_every_row_bad() {
        use supervision_proto::registry::{
            ImportInstitutionsResponse, ImportResult, ImportRowError, import_institutions_response::Event,
        };
        const IMPORT: &str = "/supervision.registry.v1.RegistryService/ImportInstitutions";
        let answer =
            |result: ImportResult| ImportInstitutionsResponse { event: Some(Event::Result(result)) }.encode_to_vec();
        let row = |n: i32| ImportRowError { row: n, column: "county".into(), message: "another county".into() };
        let real = answer(ImportResult {
            import_id: "imp_1".into(),
            committed: true,
            rows_total: 2,
            rows_imported: 2,
            errors: vec![],
        });
        let refused = ImportResult {
            import_id: "imp_2".into(),
            rows_total: 2,
            errors: vec![row(2), row(3)],
            ..Default::default()
        };
        assert_eq!(verdict(IMPORT, Vec::new(), real.clone(), Ok(answer(refused.clone()))), None);
        let stored = ImportResult { committed: true, rows_imported: 2, ..refused.clone() };
        let wrong = verdict(IMPORT, Vec::new(), real.clone(), Ok(answer(stored)));
        assert!(wrong.is_some_and(|w| w.contains("stored 2 rows")));
        let one_passed = ImportResult { errors: vec![row(2)], ..refused };
        let wrong = verdict(IMPORT, Vec::new(), real, Ok(answer(one_passed)));
        assert!(wrong.is_some_and(|w| w.contains("1 of 2 rows bad")));
    }

    #[test]
    fn the_claims_are_read_from_the_bearer_token() {
        let token = crate::identity::token(Role::Finance, Some(Bureau::City));
        let mut metadata = MetadataMap::new();
        metadata.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        let claims = claims(&metadata).expect("the claims decode");
        assert_eq!((claims.role.as_str(), claims.bureau.as_deref()), ("FINANCE", Some("440700")));
        let checker = Checker::new();
        let copy = checker.other("/supervision.finance.v1.FinanceService/ListFeeLines", &claims);
        assert!(matches!(copy, Some(Other::Bureau { other: Bureau::Xinhui, .. })), "{copy:?}");
        assert!(checker.other("/supervision.registry.v1.RegistryService/GetExpert", &claims).is_none());
    }
}
