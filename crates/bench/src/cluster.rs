//! The real services started in this process on `127.0.0.1:0`, each on a fresh database from the
//! testkit (a SQLite file, or a PostgreSQL database dropped afterwards), with Redis locks on the
//! PostgreSQL runs, as a deployment wires them.

use std::{future::Future, net::SocketAddr, path::PathBuf, time::Duration};

use supervision_kit::{Role, Shutdown, app::CommonArgs, auth::TokenRequest};
use supervision_reference::ReferenceArgs;
use testkit::{AuthedChannel, Backend, Bureau, TestDb, TestRedis, identity};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// One service serving until stopped or dropped.
#[derive(Debug)]
pub struct Svc {
    pub addr: SocketAddr,
    /// The service's Prometheus port.
    pub metrics: Option<SocketAddr>,
    pub channel: Channel,
    /// `None` for a service on the system clock.
    clock_file: Option<PathBuf>,
    shutdown: Shutdown,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    db: Option<TestDb>,
}

impl Svc {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn as_role(&self, role: Role, bureau: Option<Bureau>) -> AuthedChannel {
        identity::with_token(&self.channel, Some(&identity::token(role, bureau)))
    }

    pub fn as_user(&self, subject: &str, role: Role, bureau: Option<Bureau>) -> AuthedChannel {
        let token = identity::token_for(TokenRequest {
            subject: subject.to_owned(),
            role,
            bureau,
            expert_id: None,
            ttl: Duration::from_secs(6 * 3600),
        });
        identity::with_token(&self.channel, Some(&token))
    }

    pub fn as_expert(&self, expert_id: &str) -> AuthedChannel {
        identity::with_token(&self.channel, Some(&identity::expert_token(expert_id)))
    }

    pub fn database_url(&self) -> &str {
        self.db.as_ref().map_or("", |d| d.url())
    }

    /// Moves this service's clock to `at` (UTC).
    pub fn set_clock(&self, at: chrono::DateTime<chrono::Utc>) {
        let offset = (at - chrono::Utc::now()).num_seconds();
        let file = self.clock_file.as_ref().expect("this service runs on the system clock; only dispatch's moves");
        std::fs::write(file, offset.to_string()).expect("the clock file is written");
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
        drop(self.db.take());
    }
}

impl Drop for Svc {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Where the services of one run keep their data and locks.
#[derive(Debug, Clone)]
pub struct Storage {
    pub backend: Backend,
    pub redis: Option<TestRedis>,
    /// The registry's `--expert-cache`.
    pub expert_cache: usize,
}

impl Storage {
    pub async fn new(backend: Backend) -> Self {
        let redis = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestRedis::new().await),
        };
        Self { backend, redis, expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE }
    }

    pub fn label(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres+redis",
        }
    }

    /// Settings for a service on `db` calling `peers`, with a SERVICE token when it calls any.
    fn common(&self, db: &TestDb, peers: &[(&str, &Svc)]) -> (CommonArgs, Option<PathBuf>) {
        let clock_file = db.scratch_dir().join("clock-offset");
        let mut common = testkit::common_args(Some(clock_file.clone()));
        common.metrics_listen = Some("127.0.0.1:0".into());
        if let Some(redis) = &self.redis {
            common.redis_url = Some(redis.url.clone());
            common.redis_key_prefix = redis.prefix.clone();
        }
        for (peer, svc) in peers {
            let url = Some(svc.endpoint());
            match *peer {
                "registry" => common.peers.registry_endpoint = url,
                "finance" => common.peers.finance_endpoint = url,
                "dispatch" => common.peers.dispatch_endpoint = url,
                "recruitment" => common.peers.recruitment_endpoint = url,
                other => panic!("no peer {other}"),
            }
        }
        if !peers.is_empty() {
            let token_file = db.scratch_dir().join("service.token");
            let token = identity::token_for(TokenRequest {
                subject: "bench-service".into(),
                role: Role::Service,
                bureau: None,
                expert_id: None,
                ttl: Duration::from_secs(7 * 86_400),
            });
            std::fs::write(&token_file, token).expect("the service token is written");
            common.peers.service_token_file = Some(token_file);
        }
        (common, Some(clock_file))
    }

    pub async fn registry(&self) -> Svc {
        let db = TestDb::new(self.backend).await;
        let (mut common, _) = self.common(&db, &[]);
        // The scenarios move only dispatch's clock. The test clock reads its offset file on every
        // reading (a few system calls, 3-5 % of the process during GetExpert), which a deployed
        // registry does not pay: the registry runs on the system clock here, as in production.
        common.clock.test_clock_file = None;
        let clock_file: Option<PathBuf> = None;
        let config = supervision_registry::Config {
            listen: "127.0.0.1:0".into(),
            database_url: db.url().to_owned(),
            personal_data_key_file: Some(testkit::personal_data_key_file(&db)),
            expert_cache: self.expert_cache,
            common,
            reference: ReferenceArgs::default(),
        };
        let app = supervision_registry::App::build(&config).await.expect("registry builds");
        start(app.local_addr(), app.metrics_addr(), |s| app.run_until_stopped(s), db, clock_file).await
    }

    pub async fn finance(&self, registry: &Svc) -> Svc {
        let db = TestDb::new(self.backend).await;
        let (common, clock_file) = self.common(&db, &[("registry", registry)]);
        let config = supervision_finance::Config {
            listen: "127.0.0.1:0".into(),
            database_url: db.url().to_owned(),
            common,
            reference: ReferenceArgs::default(),
        };
        let app = supervision_finance::App::build(&config).await.expect("finance builds");
        start(app.local_addr(), app.metrics_addr(), |s| app.run_until_stopped(s), db, clock_file).await
    }

    /// Dispatch reading the pool from `registry` and, when given, delivering revisions to `finance`.
    pub async fn dispatch(&self, registry: &Svc, finance: Option<&Svc>) -> Svc {
        let db = TestDb::new(self.backend).await;
        let mut peers = vec![("registry", registry)];
        if let Some(f) = finance {
            peers.push(("finance", f));
        }
        let (common, clock_file) = self.common(&db, &peers);
        let config = supervision_dispatch::Config {
            listen: "127.0.0.1:0".into(),
            database_url: db.url().to_owned(),
            common,
            reference: ReferenceArgs::default(),
        };
        let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
        start(app.local_addr(), app.metrics_addr(), |s| app.run_until_stopped(s), db, clock_file).await
    }
}

async fn start<F>(
    addr: SocketAddr,
    metrics: Option<SocketAddr>,
    run: impl FnOnce(Shutdown) -> F,
    db: TestDb,
    clock_file: Option<PathBuf>,
) -> Svc
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let shutdown = Shutdown::new();
    let task = tokio::spawn(run(shutdown.clone()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("the service accepts connections");
    Svc { addr, metrics, channel, clock_file, shutdown, task: Some(task), db: Some(db) }
}
