//! Services started in-process on port 0, each against its own fresh database.

use std::{future::Future, net::SocketAddr, path::PathBuf, time::Duration};

use supervision_kit::{
    Bureau, Role, Shutdown,
    app::CommonArgs,
    config::{AuthArgs, ClockArgs, TlsArgs},
    personal::PersonalDataKey,
};
use supervision_reference::ReferenceArgs;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{
    Backend, TestDb,
    identity::{self, AuthedChannel},
};

/// A service serving on a free local port until dropped.
#[derive(Debug)]
pub struct RunningService {
    pub addr: SocketAddr,
    pub channel: Channel,
    clock_file: PathBuf,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), String>>>,
    /// Dropped after the service stops (fields drop in order).
    _db: Option<TestDb>,
}

impl RunningService {
    /// Stops the service the way SIGTERM would and waits for it to finish.
    pub async fn stop(self) {
        drop(self.stop_keeping_database().await);
    }

    /// Stops the service and hands back its database, to start it again on the same data.
    pub async fn stop_keeping_database(mut self) -> TestDb {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            let outcome = tokio::time::timeout(Duration::from_secs(20), task).await;
            assert!(matches!(outcome, Ok(Ok(Ok(())))), "service did not stop cleanly: {outcome:?}");
        }
        self._db.take().expect("the database is held until the service stops")
    }

    /// A channel that sends a valid token of `role` (scoped to `bureau` where the role needs one).
    pub fn as_role(&self, role: Role, bureau: Option<Bureau>) -> AuthedChannel {
        identity::with_token(&self.channel, Some(&identity::token(role, bureau)))
    }

    /// A channel that sends a valid token of the user `subject` of `role` (scoped to `bureau`
    /// where the role needs one): two users of the same role are two different people.
    pub fn as_user(&self, subject: &str, role: Role, bureau: Option<Bureau>) -> AuthedChannel {
        let token = identity::token_for(supervision_kit::auth::TokenRequest {
            subject: subject.to_owned(),
            role,
            bureau,
            expert_id: None,
            ttl: Duration::from_secs(3600),
        });
        identity::with_token(&self.channel, Some(&token))
    }

    /// The URL of the service's database, for tests that inspect or tamper with it directly.
    pub fn database_url(&self) -> &str {
        self._db.as_ref().expect("the database is held until the service stops").url()
    }

    /// On PostgreSQL, that the registry's stored read of every expert's child rows
    /// (`expert_reads`, kept by triggers) is the one computed from the child tables now, that
    /// every expert has one, and that the registry's inline expression for it computes the same;
    /// on SQLite, which has no such table, nothing. Panics with the stale experts otherwise. For a
    /// registry only.
    pub async fn assert_expert_reads_current(&self) {
        if !self.database_url().starts_with("postgres") {
            return;
        }
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(self.database_url()).await.expect("the registry's database");
        let stale: Vec<(String, bool)> = sqlx::query_as(
            "SELECT e.id, r.expert_id IS NULL FROM experts e LEFT JOIN expert_reads r ON r.expert_id = e.id \
             WHERE r.children IS DISTINCT FROM expert_children(e.id) ORDER BY e.id",
        )
        .fetch_all(&pool)
        .await
        .expect("expert_reads is compared with the child tables");
        // The expression the registry's reads compute inline is the function the triggers use.
        let differing: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT e.id FROM experts e WHERE {} IS DISTINCT FROM expert_children(e.id)",
            supervision_registry::store::experts::CHILDREN_JSON_SQL
        )))
        .fetch_all(&pool)
        .await
        .expect("the inline expression is compared with expert_children");
        assert!(differing.is_empty(), "the inline child rows differ from expert_children for {differing:?}");
        let experts: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM experts").fetch_one(&pool).await.expect("experts are counted");
        pool.close().await;
        assert!(experts > 0, "the check compared no expert");
        assert!(stale.is_empty(), "stale or missing (true) stored reads of {} experts: {stale:?}", experts);
    }

    /// The file this service's test clock reads its offset from (for [`crate::scenario::Clock`]).
    pub fn clock_file(&self) -> &std::path::Path {
        &self.clock_file
    }

    /// Moves the service's clock `seconds` away from the system clock.
    pub fn set_clock_offset(&self, seconds: i64) {
        std::fs::write(&self.clock_file, seconds.to_string()).expect("the clock file is written");
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// The settings every service under test shares: the test key, a movable clock, no TLS.
pub fn common_args(test_clock_file: Option<PathBuf>) -> CommonArgs {
    CommonArgs {
        auth: AuthArgs {
            jwt_public_key_file: identity::public_key_file(),
            jwt_audience: identity::AUDIENCE.into(),
            jwt_issuer: identity::ISSUER.into(),
        },
        clock: ClockArgs { test_clock_file },
        tls: TlsArgs::default(),
        // Tests drive services hard as one user; tests/e2e/reliability turns the limit on.
        rate_limit: supervision_kit::rate_limit::RateLimitArgs::off(),
        log_format: supervision_kit::telemetry::LogFormat::Text,
        otlp_endpoint: None,
        metrics_listen: None,
        peers: Default::default(),
        redis_url: None,
        redis_key_prefix: "test:".into(),
        migrate_only: false,
        database_max_connections: None,
    }
}

/// Starts the registry on `127.0.0.1:0` against a fresh database of `backend`.
pub async fn spawn_registry(backend: Backend) -> RunningService {
    spawn_registry_on(TestDb::new(backend).await, "127.0.0.1:0").await
}

/// Starts the registry on `listen` against `db` (to restart one on a known port, say).
pub async fn spawn_registry_on(db: TestDb, listen: &str) -> RunningService {
    spawn_registry_with(db, listen, ReferenceArgs::default()).await
}

/// Starts the registry with calendar and policy overlay directories.
pub async fn spawn_registry_with(db: TestDb, listen: &str, reference: ReferenceArgs) -> RunningService {
    let clock_file = db.scratch_dir().join("clock-offset");
    let config = registry_config(&db, listen, common_args(Some(clock_file.clone())), reference);
    let app = supervision_registry::App::build(&config).await.expect("registry builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// The registry's settings on `db` as the tests run it: its personal-data key, the default copies.
fn registry_config(
    db: &TestDb,
    listen: &str,
    common: CommonArgs,
    reference: ReferenceArgs,
) -> supervision_registry::Config {
    supervision_registry::Config {
        listen: listen.into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(personal_data_key_file(db)),
        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
        common,
        reference,
    }
}

/// Starts the registry on a fresh database of `backend` with a metrics port: `(service, metrics
/// address)`.
pub async fn spawn_registry_with_metrics(backend: Backend) -> (RunningService, SocketAddr) {
    let db = TestDb::new(backend).await;
    let (common, clock_file) = deployed_args(&db, "registry", &[]);
    let config = registry_config(&db, "127.0.0.1:0", common, ReferenceArgs::default());
    let app = supervision_registry::App::build(&config).await.expect("registry builds");
    let metrics = app.metrics_addr().expect("a metrics port");
    (start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await, metrics)
}

/// The registry's personal-data key for `db`: a fresh key in the test's scratch directory,
/// written once, so a registry restarted on the same database reads its data again.
pub fn personal_data_key_file(db: &TestDb) -> PathBuf {
    let path = db.scratch_dir().join("personal-data.key");
    if !path.exists() {
        std::fs::write(&path, PersonalDataKey::generate_hex()).expect("the personal-data key is written");
    }
    path
}

/// Starts recruitment on `127.0.0.1:0` against a fresh database of `backend`.
pub async fn spawn_recruitment(backend: Backend) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let config = supervision_recruitment::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(personal_data_key_file(&db)),
        common: common_args(Some(clock_file.clone())),
        reference: ReferenceArgs::default(),
    };
    let app = supervision_recruitment::App::build(&config).await.expect("recruitment builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts recruitment with `registry_endpoint` as its registry (none when `None`) and a SERVICE
/// token file valid for 1000 days (tests move the clock past publicity periods and terms), against a fresh
/// database of `backend`: its outbox relay delivers AppointExpert there and its confirmer records
/// the registry's answer.
pub async fn spawn_recruitment_calling(backend: Backend, registry_endpoint: Option<String>) -> RunningService {
    spawn_recruitment_calling_with(backend, registry_endpoint, ReferenceArgs::default()).await
}

/// As [`spawn_recruitment_calling`], with calendar and policy overlay directories.
pub async fn spawn_recruitment_calling_with(
    backend: Backend,
    registry_endpoint: Option<String>,
    reference: ReferenceArgs,
) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let token_file = db.scratch_dir().join("service.token");
    let token = identity::token_for(supervision_kit::auth::TokenRequest {
        subject: "recruitment-service".into(),
        role: Role::Service,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(1000 * 86_400),
    });
    std::fs::write(&token_file, token).expect("the service token is written");
    let mut common = common_args(Some(clock_file.clone()));
    common.peers.registry_endpoint = registry_endpoint;
    common.peers.service_token_file = Some(token_file);
    let config = supervision_recruitment::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(personal_data_key_file(&db)),
        common,
        reference,
    };
    let app = supervision_recruitment::App::build(&config).await.expect("recruitment builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts dispatch on `127.0.0.1:0` against a fresh database of `backend`.
pub async fn spawn_dispatch(backend: Backend) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let config = supervision_dispatch::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common: common_args(Some(clock_file.clone())),
        reference: ReferenceArgs::default(),
    };
    let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts a registry and a dispatch that reads institutions from it synchronously (its
/// `peers.registry_endpoint`, with a SERVICE token file in the scratch directory), each against a
/// fresh database of `backend`: `(registry, dispatch)`.
pub async fn spawn_dispatch_with_registry(backend: Backend) -> (RunningService, RunningService) {
    let registry = spawn_registry(backend).await;
    let dispatch = spawn_dispatch_calling(backend, Some(format!("http://{}", registry.addr))).await;
    (registry, dispatch)
}

/// Starts dispatch with `registry_endpoint` as its registry (none when `None`) and a SERVICE
/// token file, against a fresh database of `backend`.
pub async fn spawn_dispatch_calling(backend: Backend, registry_endpoint: Option<String>) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let token_file = db.scratch_dir().join("service.token");
    std::fs::write(&token_file, identity::token(Role::Service, None)).expect("the service token is written");
    let mut common = common_args(Some(clock_file.clone()));
    common.peers.registry_endpoint = registry_endpoint;
    common.peers.service_token_file = Some(token_file);
    let config = supervision_dispatch::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts dispatch calling the registry at `registry_endpoint` and delivering its outbox to
/// finance at `finance_endpoint`, with a SERVICE token, against a fresh database of `backend`.
pub async fn spawn_dispatch_calling_finance(
    backend: Backend,
    registry_endpoint: &str,
    finance_endpoint: &str,
) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let token_file = db.scratch_dir().join("service.token");
    std::fs::write(&token_file, identity::token(Role::Service, None)).expect("the service token is written");
    let mut common = common_args(Some(clock_file.clone()));
    common.peers.registry_endpoint = Some(registry_endpoint.to_owned());
    common.peers.finance_endpoint = Some(finance_endpoint.to_owned());
    common.peers.service_token_file = Some(token_file);
    let config = supervision_dispatch::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts finance on `127.0.0.1:0` against a fresh database of `backend`.
pub async fn spawn_finance(backend: Backend) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let config = supervision_finance::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common: common_args(Some(clock_file.clone())),
        reference: ReferenceArgs::default(),
    };
    let app = supervision_finance::App::build(&config).await.expect("finance builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts the registry and a finance that asks it (`peers.registry_endpoint`) with a SERVICE
/// token of its own, both on `127.0.0.1:0` against fresh databases of `backend`.
pub async fn spawn_finance_with_registry(backend: Backend) -> (RunningService, RunningService) {
    let registry = spawn_registry(backend).await;
    let finance = spawn_finance_calling(backend, &format!("http://{}", registry.addr)).await;
    (registry, finance)
}

/// Starts finance calling the registry at `registry_endpoint`, with a SERVICE token written into
/// its scratch directory.
pub async fn spawn_finance_calling(backend: Backend, registry_endpoint: &str) -> RunningService {
    let db = TestDb::new(backend).await;
    let clock_file = db.scratch_dir().join("clock-offset");
    let token_file = db.scratch_dir().join("service.token");
    std::fs::write(&token_file, identity::token(Role::Service, None)).expect("the service token is written");
    let mut common = common_args(Some(clock_file.clone()));
    common.peers.registry_endpoint = Some(registry_endpoint.to_owned());
    common.peers.service_token_file = Some(token_file);
    let config = supervision_finance::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_finance::App::build(&config).await.expect("finance builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Starts finance on `127.0.0.1:0` against `db` (a fresh one, or the database of a finance
/// stopped with [`RunningService::stop_keeping_database`], to restart it on the same data),
/// calling the registry at `registry_endpoint` with finance's own SERVICE token (`svc:finance`),
/// the one the registry trusts with payee details for exports.
pub async fn spawn_finance_on(db: TestDb, registry_endpoint: &str) -> RunningService {
    let clock_file = db.scratch_dir().join("clock-offset");
    let token_file = db.scratch_dir().join("finance-service.token");
    let token = identity::token_for(supervision_kit::auth::TokenRequest {
        subject: supervision_kit::auth::service_subject("finance"),
        role: Role::Service,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(3600),
    });
    std::fs::write(&token_file, token).expect("the service token is written");
    let mut common = common_args(Some(clock_file.clone()));
    common.peers.registry_endpoint = Some(registry_endpoint.to_owned());
    common.peers.service_token_file = Some(token_file);
    let config = supervision_finance::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_finance::App::build(&config).await.expect("finance builds");
    start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await
}

/// Runs a built service in the background and connects to it.
async fn start<F>(addr: SocketAddr, run: impl FnOnce(Shutdown) -> F, db: TestDb, clock_file: PathBuf) -> RunningService
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let shutdown = Shutdown::new();
    let served = run(shutdown.clone());
    let task = tokio::spawn(async move { served.await.map_err(|e| e.to_string()) });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("the service accepts connections");
    // Behind the idempotency checker when SUPERVISION_IDEMPOTENCY_SWEEP names a log.
    let channel = crate::idempotency::swept(channel).await;
    // Behind the bureau walk when SUPERVISION_SCOPE_SWEEP names a log.
    let channel = crate::scope::swept(channel).await;
    RunningService { addr, channel, clock_file, shutdown, task: Some(task), _db: Some(db) }
}

/// The four services wired as a deployment wires them, each with its metrics port on
/// `127.0.0.1:0`: dispatch calls the registry synchronously and delivers to finance and the
/// registry through its outbox; the registry delivers status changes to dispatch; finance and
/// recruitment call the registry; each holds a SERVICE token. Spans go to
/// whatever telemetry the test process installed (an OTLP collector, say).
#[derive(Debug)]
pub struct Deployment {
    pub registry: RunningService,
    pub recruitment: RunningService,
    pub dispatch: RunningService,
    pub finance: RunningService,
    /// Each service's name and metrics port.
    pub metrics: Vec<(&'static str, SocketAddr)>,
}

impl Deployment {
    /// Stops the four services, callers first.
    pub async fn stop(self) {
        self.dispatch.stop().await;
        self.recruitment.stop().await;
        self.finance.stop().await;
        self.registry.stop().await;
    }
}

/// Settings with a metrics port, a movable clock in `db`'s scratch directory and, when `calls`
/// names any peers, the SERVICE token of `service` (subject `svc:<service>`, as a deployment
/// gives each service its own: the registry trusts only `svc:finance` with payee details):
/// `(settings, clock file)`.
fn deployed_args(db: &TestDb, service: &str, calls: &[(&str, SocketAddr)]) -> (CommonArgs, PathBuf) {
    let clock_file = db.scratch_dir().join("clock-offset");
    let mut common = common_args(Some(clock_file.clone()));
    common.metrics_listen = Some("127.0.0.1:0".into());
    for (peer, addr) in calls {
        let url = Some(format!("http://{addr}"));
        match *peer {
            "registry" => common.peers.registry_endpoint = url,
            "recruitment" => common.peers.recruitment_endpoint = url,
            "finance" => common.peers.finance_endpoint = url,
            "dispatch" => common.peers.dispatch_endpoint = url,
            other => panic!("no peer {other} in a deployment"),
        }
    }
    if !calls.is_empty() {
        let token_file = db.scratch_dir().join("service.token");
        // Valid for 1000 days: scenarios run on a deployment move the test clocks by weeks.
        let token = identity::token_for(supervision_kit::auth::TokenRequest {
            subject: supervision_kit::auth::service_subject(service),
            role: Role::Service,
            bureau: None,
            expert_id: None,
            ttl: Duration::from_secs(1000 * 86_400),
        });
        std::fs::write(&token_file, token).expect("the service token is written");
        common.peers.service_token_file = Some(token_file);
    }
    (common, clock_file)
}

/// Starts the registry, finance, recruitment and dispatch on fresh databases of `backend`.
pub async fn spawn_deployment(backend: Backend) -> Deployment {
    let mut metrics = Vec::new();
    // The registry and dispatch call each other: dispatch's port is chosen first.
    let dispatch_addr =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port for dispatch");

    let db = TestDb::new(backend).await;
    let (common, clock_file) = deployed_args(&db, "registry", &[("dispatch", dispatch_addr)]);
    let config = registry_config(&db, "127.0.0.1:0", common, ReferenceArgs::default());
    let app = supervision_registry::App::build(&config).await.expect("registry builds");
    metrics.push(("registry", app.metrics_addr().expect("a metrics port")));
    let registry = start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await;

    let db = TestDb::new(backend).await;
    let (common, clock_file) = deployed_args(&db, "finance", &[("registry", registry.addr)]);
    let config = supervision_finance::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_finance::App::build(&config).await.expect("finance builds");
    metrics.push(("finance", app.metrics_addr().expect("a metrics port")));
    let finance = start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await;

    let db = TestDb::new(backend).await;
    let (common, clock_file) = deployed_args(&db, "recruitment", &[("registry", registry.addr)]);
    let config = supervision_recruitment::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        personal_data_key_file: Some(personal_data_key_file(&db)),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_recruitment::App::build(&config).await.expect("recruitment builds");
    metrics.push(("recruitment", app.metrics_addr().expect("a metrics port")));
    let recruitment = start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await;

    let db = TestDb::new(backend).await;
    let (common, clock_file) =
        deployed_args(&db, "dispatch", &[("registry", registry.addr), ("finance", finance.addr)]);
    let config = supervision_dispatch::Config {
        listen: dispatch_addr.to_string(),
        database_url: db.url().to_owned(),
        common,
        reference: ReferenceArgs::default(),
    };
    let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
    metrics.push(("dispatch", app.metrics_addr().expect("a metrics port")));
    let dispatch = start(app.local_addr(), |s| app.run_until_stopped(s), db, clock_file).await;

    Deployment { registry, recruitment, dispatch, finance, metrics }
}

/// The Prometheus text a metrics port at `addr` answers with (panics on anything but 200 OK).
pub async fn scrape_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the metrics port accepts");
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await.expect("the scrape is sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("the metrics port answers");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    answer.split_once("\r\n\r\n").expect("headers and body").1.to_owned()
}
