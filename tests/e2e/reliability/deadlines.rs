//! Deadlines between services (issue 11, item 4): every call one service makes to another has a
//! deadline, the whole answer included, and a callee that accepts the connection but never
//! answers costs the caller that deadline, not forever.
//!
//! Dispatch calls the registry through a TCP relay the test can stall: once stalled, bytes are
//! read and held, never passed on, so the registry never sees the request and dispatch never
//! sees an answer. Dispatch runs with `--peer-timeout-seconds 1` and
//! `--peer-stream-timeout-seconds 2`.
//!
//! - PrepareDraw (which streams the draw pool) ends UNAVAILABLE after the stream's deadline, not
//!   before it and within a few seconds of slack; no draw is written and the audit chain stays
//!   where it was. Once the relay flows again, the same `request_id` is served afresh (nothing was
//!   claimed), as is a CreateTask refused the same way after GetInstitution's shorter deadline.
//! - A dispatch whose registry endpoint is a listener that accepts and reads but never answers at
//!   all (no HTTP/2 handshake) refuses CreateTask as UNAVAILABLE within the call deadline.
//! - A registry that answers GetInstitution at once and starts the pool stream (headers and a first
//!   batch) but never ends it: PrepareDraw is still UNAVAILABLE after the stream's deadline, the
//!   whole stream's and not only its first message's, and no draw is written.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{TimeZone, Utc};
use prost::Message;
use supervision_kit::Shutdown;
use supervision_kit::outbox::RawCodec;
use supervision_proto::registry as rpb;
use supervision_proto::{
    common::{BureauCode, Date, FundSource, HalfDay},
    dispatch::{
        Activity, ActivityKind, ActivitySubject, CreateTaskRequest, ListDrawsRequest, PrepareDrawRequest, TaskMode,
        TaskOrigin, TaskSession, dispatch_service_client::DispatchServiceClient,
    },
    registry::{CreateInstitutionRequest, InstitutionType, registry_service_client::RegistryServiceClient},
};
use testkit::{AuthedChannel, Backend, Bureau, Role, TestDb, on_both_backends, spawn_registry};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::JoinHandle,
};
use tokio_stream::StreamExt;
use tonic::{Code, Status, transport::Endpoint};

on_both_backends!(
    a_stalled_registry_costs_dispatch_its_deadline_and_nothing_is_written,
    a_registry_that_never_answers_at_all_is_unavailable_within_the_call_deadline,
    a_pool_stream_that_stops_after_its_first_message_costs_the_whole_stream_deadline,
);

/// Dispatch's deadlines in this test: one unary call, one whole stream.
const CALL: Duration = Duration::from_secs(1);
const STREAM: Duration = Duration::from_secs(2);
/// What a loaded two-core machine may add to a deadline before the answer is back.
const SLACK: Duration = Duration::from_secs(3);

/// A TCP relay to `upstream` that the test can stall; without an upstream it accepts, reads and
/// never answers anything.
struct Relay {
    addr: SocketAddr,
    stalled: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Relay {
    async fn start(upstream: Option<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = Arc::new(AtomicBool::new(upstream.is_none()));
        let flag = stalled.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let (mut from_caller, to_caller) = inbound.into_split();
                    let outbound = match upstream {
                        Some(upstream) => TcpStream::connect(upstream).await.ok(),
                        None => None,
                    };
                    match outbound {
                        Some(outbound) => {
                            let (from_callee, to_callee) = outbound.into_split();
                            tokio::join!(
                                pump(from_caller, to_callee, flag.clone()),
                                pump(from_callee, to_caller, flag)
                            );
                        }
                        None => {
                            // Reads everything, answers nothing, keeps the connection open.
                            let mut buf = vec![0; 16 * 1024];
                            while matches!(from_caller.read(&mut buf).await, Ok(n) if n > 0) {}
                            drop(to_caller);
                        }
                    }
                });
            }
        });
        Self { addr, stalled, task }
    }

    fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, holding each chunk while the relay is stalled (held, not dropped, so the
/// HTTP/2 framing survives the stall).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, stalled: Arc<AtomicBool>) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Dispatch calling the registry at `registry` with this test's deadlines, on Monday 2026-06-01.
struct Dispatch {
    db: TestDb,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
    client: DispatchServiceClient<AuthedChannel>,
}

impl Dispatch {
    async fn start(backend: Backend, registry: SocketAddr) -> Self {
        let db = TestDb::new(backend).await;
        let token_file = db.scratch_dir().join("service.token");
        std::fs::write(&token_file, testkit::token(Role::Service, None)).unwrap();
        let clock_file = db.scratch_dir().join("clock-offset");
        let monday = Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0).unwrap();
        std::fs::write(&clock_file, (monday - Utc::now()).num_seconds().to_string()).unwrap();
        let mut common = testkit::common_args(Some(clock_file));
        common.peers.registry_endpoint = Some(format!("http://{registry}"));
        common.peers.service_token_file = Some(token_file);
        common.peers.peer_timeout_seconds = Some(CALL.as_secs());
        common.peers.peer_stream_timeout_seconds = Some(STREAM.as_secs());
        let config = supervision_dispatch::Config {
            listen: "127.0.0.1:0".into(),
            database_url: db.url().to_owned(),
            common,
            reference: Default::default(),
        };
        let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
        let addr = app.local_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let channel = Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        let operator = testkit::token(Role::CountyOperator, Some(Bureau::Pengjiang));
        let client = DispatchServiceClient::new(testkit::with_token(&channel, Some(&operator)));
        Self { db, shutdown, task, client }
    }

    /// Tasks and draws dispatch holds, and its audit chain's head.
    async fn written(&self) -> (i64, i64, supervision_kit::audit::AuditHead) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(self.db.url()).await.unwrap();
        let count = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let written = (count("tasks").await, count("draws").await, supervision_kit::audit::head(&pool).await.unwrap());
        pool.close().await;
        written
    }

    async fn stop(self) {
        self.shutdown.trigger();
        let outcome = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        assert!(matches!(outcome, Ok(Ok(Ok(())))), "dispatch stops cleanly: {outcome:?}");
    }
}

/// The task both this file and `tls.rs` create over dispatch.
pub(crate) fn create_task(request_id: &str, institution_id: &str) -> CreateTaskRequest {
    CreateTaskRequest {
        request_id: request_id.into(),
        dispatching_bureau: BureauCode::Pengjiang as i32,
        institution_id: institution_id.into(),
        title: "焊工职业技能等级认定考核现场监督".into(),
        activity: Some(Activity {
            subject: ActivitySubject::SkillLevel as i32,
            kind: ActivityKind::Assessment as i32,
            reference: "2026-焊工-02批".into(),
            description: String::new(),
        }),
        mode: TaskMode::OnSite as i32,
        origin: TaskOrigin::Routine as i32,
        sessions: vec![TaskSession {
            date: Some(Date { year: 2026, month: 6, day: 8 }),
            half_day: HalfDay::Pm as i32,
            ..Default::default()
        }],
        fund_source: FundSource::CityCountyEmployment as i32,
        ..Default::default()
    }
}

/// Runs `call`; its refusal and how long it took (a call that does not end within two minutes
/// fails the test).
async fn timed<T, F>(call: F) -> (Status, Duration)
where
    F: Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(120), call).await.expect("the call ends");
    (outcome.err().expect("the call is refused"), started.elapsed())
}

/// A refusal for want of an answer: UNAVAILABLE (dispatch's own word for "the registry did not
/// answer", which the client retries) or DEADLINE_EXCEEDED.
fn assert_no_answer(status: &Status, what: &str) {
    assert!(matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded), "{what}: {status:?}");
}

async fn a_stalled_registry_costs_dispatch_its_deadline_and_nothing_is_written(backend: Backend) {
    let registry = spawn_registry(backend).await;
    let school = RegistryServiceClient::new(registry.as_role(Role::CityAdmin, None))
        .create_institution(CreateInstitutionRequest {
            request_id: "deadline-school".into(),
            r#type: InstitutionType::VocationalTrainingSchool as i32,
            name: "蓬江职业培训学校".into(),
            credit_code: "91440703MA4W00001M".into(),
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
    let relay = Relay::start(Some(registry.addr)).await;
    let mut dispatch = Dispatch::start(backend, relay.addr).await;
    let task_id = dispatch
        .client
        .create_task(create_task("deadline-task-1", &school))
        .await
        .expect("the registry answers through the relay")
        .into_inner()
        .task
        .unwrap()
        .id;
    let before = dispatch.written().await;
    assert_eq!((before.0, before.1), (1, 0));

    relay.stall(true);
    // PrepareDraw streams the pool: the stream's deadline, whole.
    let prepare = PrepareDrawRequest { request_id: "deadline-prepare".into(), task_id: task_id.clone(), kind: 0 };
    let (refused, took) = timed(dispatch.client.prepare_draw(prepare.clone())).await;
    assert_no_answer(&refused, "PrepareDraw");
    eprintln!("PrepareDraw refused as {:?} after {took:?}", refused.code());
    assert!(took >= STREAM - Duration::from_millis(200), "PrepareDraw gave up early, after {took:?}: {refused:?}");
    assert!(took <= STREAM + SLACK, "PrepareDraw took {took:?}, past its deadline {STREAM:?} and the slack");
    // CreateTask reads the institution first: GetInstitution's (shorter) deadline.
    let (refused, took) = timed(dispatch.client.create_task(create_task("deadline-task-2", &school))).await;
    assert_no_answer(&refused, "CreateTask");
    eprintln!("CreateTask refused as {:?} after {took:?}", refused.code());
    assert!(took >= CALL - Duration::from_millis(200), "CreateTask gave up early, after {took:?}: {refused:?}");
    assert!(took <= CALL + SLACK, "CreateTask took {took:?}, past its deadline {CALL:?} and the slack");
    assert_eq!(dispatch.written().await, before, "nothing written: no task, no draw, no audit entry");
    let draws = dispatch
        .client
        .list_draws(ListDrawsRequest { task_id: task_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .draws;
    assert!(draws.is_empty(), "no draw");

    // Flowing again: the same request ids are served afresh, not replayed as refusals.
    relay.stall(false);
    let created = dispatch.client.create_task(create_task("deadline-task-2", &school)).await;
    assert!(created.is_ok(), "the retried CreateTask is served: {created:?}");
    let retried = dispatch.client.prepare_draw(prepare).await;
    // The registry holds no expert: the pool is too small, which only a served request can say.
    let refused = retried.expect_err("no expert is appointed");
    assert_eq!(refused.code(), Code::FailedPrecondition, "the retried PrepareDraw reached the pool: {refused:?}");
    assert_eq!(dispatch.written().await.0, 2);
    dispatch.stop().await;
    drop(relay);
    registry.stop().await;
}

async fn a_registry_that_never_answers_at_all_is_unavailable_within_the_call_deadline(backend: Backend) {
    let silent = Relay::start(None).await;
    let mut dispatch = Dispatch::start(backend, silent.addr).await;
    let before = dispatch.written().await;
    for attempt in ["first", "second"] {
        let (refused, took) = timed(
            dispatch
                .client
                .create_task(create_task("deadline-silent", &supervision_kit::vocab::new_prefixed_id("ins_"))),
        )
        .await;
        assert_no_answer(&refused, attempt);
        eprintln!("{attempt} CreateTask to a silent registry refused as {:?} after {took:?}", refused.code());
        assert!(took <= CALL + SLACK, "{attempt}: CreateTask took {took:?}, past its deadline {CALL:?} and the slack");
    }
    assert_eq!(dispatch.written().await, before, "nothing written");
    assert_eq!(before.0, 0);
    dispatch.stop().await;
}

/// A registry that answers GetInstitution at once (a Pengjiang school) and, for StreamDrawPool,
/// sends the headers and one batch of the pool, then nothing more, never ending the stream.
#[derive(Debug, Clone)]
struct TricklingRegistry;

impl tonic::server::NamedService for TricklingRegistry {
    const NAME: &'static str = "supervision.registry.v1.RegistryService";
}

type HttpRequest = tonic::codegen::http::Request<tonic::body::Body>;
type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

impl tonic::codegen::Service<HttpRequest> for TricklingRegistry {
    type Response = HttpResponse;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<HttpResponse, std::convert::Infallible>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec);
            Ok(match request.uri().path() {
                "/supervision.registry.v1.RegistryService/StreamDrawPool" => {
                    grpc.server_streaming(FirstBatchOnly, request).await
                }
                "/supervision.registry.v1.RegistryService/GetInstitution" => grpc.unary(School, request).await,
                _ => Status::unimplemented("not in this test").into_http(),
            })
        })
    }
}

struct School;

impl tonic::server::UnaryService<Vec<u8>> for School {
    type Response = Vec<u8>;
    type Future = tonic::codegen::BoxFuture<tonic::Response<Vec<u8>>, Status>;

    fn call(&mut self, request: tonic::Request<Vec<u8>>) -> Self::Future {
        Box::pin(async move {
            let asked = rpb::GetInstitutionRequest::decode(request.into_inner().as_slice())
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            let institution = rpb::Institution {
                id: asked.id,
                name: "蓬江职业培训学校".into(),
                county: BureauCode::Pengjiang as i32,
                status: rpb::InstitutionStatus::Active as i32,
                ..Default::default()
            };
            Ok(tonic::Response::new(rpb::GetInstitutionResponse { institution: Some(institution) }.encode_to_vec()))
        })
    }
}

struct FirstBatchOnly;

impl tonic::server::ServerStreamingService<Vec<u8>> for FirstBatchOnly {
    type Response = Vec<u8>;
    type ResponseStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<Vec<u8>, Status>> + Send>>;
    type Future = tonic::codegen::BoxFuture<tonic::Response<Self::ResponseStream>, Status>;

    fn call(&mut self, _: tonic::Request<Vec<u8>>) -> Self::Future {
        let first = rpb::StreamDrawPoolResponse::default().encode_to_vec();
        let stream = tokio_stream::once(Ok(first)).chain(tokio_stream::pending());
        Box::pin(async move { Ok(tonic::Response::new(Box::pin(stream) as Self::ResponseStream)) })
    }
}

async fn a_pool_stream_that_stops_after_its_first_message_costs_the_whole_stream_deadline(backend: Backend) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::new(TricklingRegistry))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut dispatch = Dispatch::start(backend, addr).await;
    let school = supervision_kit::vocab::new_prefixed_id("ins_");
    let task_id = dispatch
        .client
        .create_task(create_task("trickle-task", &school))
        .await
        .expect("GetInstitution is answered")
        .into_inner()
        .task
        .unwrap()
        .id;
    let before = dispatch.written().await;
    let prepare = PrepareDrawRequest { request_id: "trickle-prepare".into(), task_id, kind: 0 };
    let (refused, took) = timed(dispatch.client.prepare_draw(prepare)).await;
    assert_no_answer(&refused, "PrepareDraw");
    eprintln!("PrepareDraw refused as {:?} after {took:?}", refused.code());
    assert!(took >= STREAM - Duration::from_millis(200), "PrepareDraw gave up early, after {took:?}: {refused:?}");
    assert!(took <= STREAM + SLACK, "PrepareDraw took {took:?}, past its deadline {STREAM:?} and the slack");
    assert_eq!(dispatch.written().await, before, "no draw, no audit entry");
    dispatch.stop().await;
    serving.abort();
}
