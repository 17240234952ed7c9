//! Two replicas of each of the four services, as a scaled-out deployment runs them: both
//! replicas of a service on that service's one PostgreSQL database, the eight on one Redis (one
//! key prefix), each on a port chosen up front so a replica stopped mid-run comes back on the
//! same address and its callers reach it again.
//!
//! Peers: replica `k` of a caller calls replica `1 - k` of each callee (the registry calls
//! dispatch; recruitment, dispatch and finance call the registry; dispatch calls finance), so
//! when replica 0 of every service is stopped, the surviving replicas' calls and outbox
//! deliveries go to a stopped replica until it is back.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use supervision_kit::{Role, Shutdown, app::CommonArgs};
use supervision_reference::ReferenceArgs;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{Backend, TestDb, TestRedis, identity, services::common_args, services::personal_data_key_file};

/// One of the four services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceKind {
    Registry,
    Recruitment,
    Dispatch,
    Finance,
}

impl ServiceKind {
    pub const ALL: [ServiceKind; 4] = [Self::Registry, Self::Recruitment, Self::Dispatch, Self::Finance];

    pub fn name(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Recruitment => "recruitment",
            Self::Dispatch => "dispatch",
            Self::Finance => "finance",
        }
    }

    /// The services this one calls (ARCHITECTURE.md "Calls between services").
    pub fn callees(self) -> &'static [ServiceKind] {
        match self {
            Self::Registry => &[Self::Dispatch],
            Self::Recruitment | Self::Finance => &[Self::Registry],
            Self::Dispatch => &[Self::Registry, Self::Finance],
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One replica's process: its server task and shutdown handle.
#[derive(Debug)]
struct Process {
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A service's two replicas over its one database.
#[derive(Debug)]
pub struct ServicePair {
    pub db: TestDb,
    pub addrs: [SocketAddr; 2],
    /// A lazily connecting channel per replica: it reconnects once a restarted replica listens.
    pub channels: [Channel; 2],
    processes: [Option<Process>; 2],
}

/// Four services, two replicas each, one Redis.
#[derive(Debug)]
pub struct ScaledOut {
    pub services: [ServicePair; 4],
    pub redis: TestRedis,
    /// How many replicas were stopped abruptly (and restarted) so far.
    pub kills: usize,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free local port")
}

/// A SERVICE token valid for 1000 days (tests move the clock by weeks), written once into `db`'s
/// scratch directory under the service's own subject (`svc:<name>`).
fn service_token_file(db: &TestDb, kind: ServiceKind) -> PathBuf {
    let path = db.scratch_dir().join(format!("{}-scaleout-service.token", kind.name()));
    if !path.exists() {
        let token = identity::token_for(supervision_kit::auth::TokenRequest {
            subject: supervision_kit::auth::service_subject(kind.name()),
            role: Role::Service,
            bureau: None,
            expert_id: None,
            ttl: Duration::from_secs(1000 * 86_400),
        });
        std::fs::write(&path, token).expect("the service token is written");
    }
    path
}

impl ScaledOut {
    /// Starts the eight replicas on fresh PostgreSQL databases (one per service) and one Redis.
    pub async fn start() -> Self {
        let redis = TestRedis::new().await;
        let mut pairs = Vec::new();
        for _ in ServiceKind::ALL {
            let db = TestDb::new(Backend::Postgres).await;
            let addrs = [free_addr(), free_addr()];
            let channels = addrs.map(|a| {
                Channel::from_shared(format!("http://{a}"))
                    .expect("a valid URI")
                    .connect_timeout(Duration::from_secs(2))
                    .connect_lazy()
            });
            pairs.push(ServicePair { db, addrs, channels, processes: [None, None] });
        }
        let services: [ServicePair; 4] = pairs.try_into().expect("four services");
        let mut cluster = Self { services, redis, kills: 0 };
        // Callees first where the order matters (dispatch and the registry call each other; the
        // outbox retries until the other is up).
        for kind in [ServiceKind::Registry, ServiceKind::Finance, ServiceKind::Dispatch, ServiceKind::Recruitment] {
            for k in 0..2 {
                cluster.start_replica(kind, k).await;
            }
        }
        cluster
    }

    pub fn pair(&self, kind: ServiceKind) -> &ServicePair {
        &self.services[kind.index()]
    }

    /// The settings of replica `k` of `kind`: the shared clock file of its database, Redis, and
    /// replica `1 - k` of each callee.
    fn args(&self, kind: ServiceKind, k: usize) -> CommonArgs {
        let db = &self.pair(kind).db;
        let mut common = common_args(Some(db.scratch_dir().join("clock-offset")));
        common.redis_url = Some(self.redis.url.clone());
        common.redis_key_prefix = self.redis.prefix.clone();
        // Eight replicas share one PostgreSQL server (max_connections 100 by default): 8 x 10.
        common.database_max_connections = Some(10);
        for callee in kind.callees() {
            let url = Some(format!("http://{}", self.pair(*callee).addrs[1 - k]));
            match callee {
                ServiceKind::Registry => common.peers.registry_endpoint = url,
                ServiceKind::Dispatch => common.peers.dispatch_endpoint = url,
                ServiceKind::Finance => common.peers.finance_endpoint = url,
                ServiceKind::Recruitment => common.peers.recruitment_endpoint = url,
            }
        }
        if !kind.callees().is_empty() {
            common.peers.service_token_file = Some(service_token_file(db, kind));
        }
        common
    }

    /// Starts replica `k` of `kind` on its address (again, after [`ScaledOut::kill`]).
    pub async fn start_replica(&mut self, kind: ServiceKind, k: usize) {
        assert!(self.pair(kind).processes[k].is_none(), "{} replica {k} is running", kind.name());
        let common = self.args(kind, k);
        let pair = self.pair(kind);
        let listen = pair.addrs[k].to_string();
        let database_url = pair.db.url().to_owned();
        let reference = ReferenceArgs::default();
        let shutdown = Shutdown::new();
        // The port was free when chosen and is this replica's alone; a replica stopped a moment
        // ago may still hold it briefly, so binding is retried.
        let mut attempt = 0;
        let task = loop {
            attempt += 1;
            let built = match kind {
                ServiceKind::Registry => {
                    let config = supervision_registry::Config {
                        listen: listen.clone(),
                        database_url: database_url.clone(),
                        personal_data_key_file: Some(personal_data_key_file(&pair.db)),
                        expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
                        common: common.clone(),
                        reference: reference.clone(),
                    };
                    supervision_registry::App::build(&config)
                        .await
                        .map(|app| tokio::spawn(app.run_until_stopped(shutdown.clone())))
                }
                ServiceKind::Recruitment => {
                    let config = supervision_recruitment::Config {
                        listen: listen.clone(),
                        database_url: database_url.clone(),
                        personal_data_key_file: Some(personal_data_key_file(&pair.db)),
                        common: common.clone(),
                        reference: reference.clone(),
                    };
                    supervision_recruitment::App::build(&config)
                        .await
                        .map(|app| tokio::spawn(app.run_until_stopped(shutdown.clone())))
                }
                ServiceKind::Dispatch => {
                    let config = supervision_dispatch::Config {
                        listen: listen.clone(),
                        database_url: database_url.clone(),
                        common: common.clone(),
                        reference: reference.clone(),
                    };
                    supervision_dispatch::App::build(&config)
                        .await
                        .map(|app| tokio::spawn(app.run_until_stopped(shutdown.clone())))
                }
                ServiceKind::Finance => {
                    let config = supervision_finance::Config {
                        listen: listen.clone(),
                        database_url: database_url.clone(),
                        common: common.clone(),
                        reference: reference.clone(),
                    };
                    supervision_finance::App::build(&config)
                        .await
                        .map(|app| tokio::spawn(app.run_until_stopped(shutdown.clone())))
                }
            };
            match built {
                Ok(task) => break task,
                Err(e) if attempt < 50 => {
                    eprintln!("{} replica {k} not started yet ({e}); retrying", kind.name());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{} replica {k} does not start: {e}", kind.name()),
            }
        };
        self.services[kind.index()].processes[k] = Some(Process { shutdown, task });
    }

    /// Stops replica `k` of `kind` as abruptly as an in-process service can be stopped: its
    /// server task is aborted (the listener closes at once, nothing is waited for) and its
    /// shutdown fired, so its relays, job loops and open connections end at their next await
    /// point instead of draining. Its database and address stay for [`ScaledOut::start_replica`].
    pub async fn kill(&mut self, kind: ServiceKind, k: usize) {
        let process = self.services[kind.index()].processes[k].take().expect("the replica is running");
        process.task.abort();
        process.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(20), process.task).await;
        self.kills += 1;
    }

    /// The four services' clock files (one per service, read by both of its replicas).
    pub fn clock_files(&self) -> Vec<PathBuf> {
        self.services.iter().map(|pair| pair.db.scratch_dir().join("clock-offset")).collect()
    }

    /// Moves every service's clock `offset_seconds` away from the system clock. Each file is
    /// replaced whole (written beside it, then renamed): a service reading it mid-write would
    /// otherwise see no offset and jump back to the system clock.
    pub fn set_clock_offset(&self, offset_seconds: i64) {
        for file in self.clock_files() {
            let partial = file.with_extension("partial");
            std::fs::write(&partial, offset_seconds.to_string()).expect("the clock file is written");
            std::fs::rename(&partial, &file).expect("the clock file is replaced");
        }
    }

    /// The URL of `kind`'s database, shared by its two replicas.
    pub fn database_url(&self, kind: ServiceKind) -> &str {
        self.pair(kind).db.url()
    }

    /// Whether replica `k` of `kind` is running.
    pub fn is_running(&self, kind: ServiceKind, k: usize) -> bool {
        self.pair(kind).processes[k].is_some()
    }

    /// Stops every replica (callers first) and waits for each to finish cleanly.
    pub async fn stop(mut self) {
        for kind in [ServiceKind::Recruitment, ServiceKind::Dispatch, ServiceKind::Finance, ServiceKind::Registry] {
            for k in 0..2 {
                if let Some(process) = self.services[kind.index()].processes[k].take() {
                    process.shutdown.trigger();
                    let outcome = tokio::time::timeout(Duration::from_secs(30), process.task).await;
                    assert!(
                        matches!(outcome, Ok(Ok(Ok(())))),
                        "{} replica {k} did not stop cleanly: {outcome:?}",
                        kind.name()
                    );
                }
            }
        }
    }
}
