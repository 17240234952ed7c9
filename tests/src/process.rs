//! Services in OS processes of their own, so a test can kill one with SIGKILL (`kill -9`) and
//! start it again on the same database and address.
//!
//! The process is the test binary itself, run again with only one ignored test selected: that
//! test calls [`serve_child`], which reads what to serve from the environment
//! ([`CHILD_ENV`]), runs the service in-process and serves until killed. A child also exits when
//! its parent (the test) is gone, so no service outlives a failed or killed test run. Its output
//! goes to `<scratch>/<service>.log`, appended across restarts and quoted when it fails to start.
//!
//! [`ProcessCluster`] runs the four services that way, wired as a deployment wires them: one
//! process each ([`ProcessCluster::start`]), or two replicas each on one Redis
//! ([`ProcessCluster::start_replicated`], the scale-out test).

use std::{
    fs::OpenOptions,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use supervision_kit::{Role, Shutdown};
use supervision_reference::ReferenceArgs;
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{ServiceKind, TestRedis, identity, services::common_args};

/// Set for a child process: the [`ProcessSpec`] it serves, as JSON.
pub const CHILD_ENV: &str = "SUPERVISION_SERVICE_PROCESS";

/// What a service process serves.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    pub kind: ServiceKind,
    pub listen: SocketAddr,
    pub database_url: String,
    /// Its test clock file, personal-data key (registry and recruitment), SERVICE token and log.
    pub scratch: PathBuf,
    /// The address of each service it calls.
    pub peers: Vec<(ServiceKind, SocketAddr)>,
    /// Its database pool's size (the kit's default when `None`).
    pub max_connections: Option<u32>,
    /// The key tokens are verified with: the test process's (each process has a key pair of its
    /// own, and the test signs the tokens).
    pub public_key_file: PathBuf,
    /// The Redis its locks and limits use, with its key prefix (none when `None`).
    pub redis: Option<(String, String)>,
    /// Which replica of its service it is (0 when the service has one): its log is its own; the
    /// clock file, personal-data key and SERVICE token are its service's, shared by the replicas.
    pub replica: usize,
}

impl ProcessSpec {
    fn to_json(&self) -> String {
        serde_json::json!({
            "kind": self.kind.name(),
            "listen": self.listen.to_string(),
            "database_url": self.database_url,
            "scratch": self.scratch,
            "peers": self.peers.iter().map(|(k, a)| [k.name().to_owned(), a.to_string()]).collect::<Vec<_>>(),
            "max_connections": self.max_connections,
            "public_key_file": self.public_key_file,
            "redis": self.redis.as_ref().map(|(url, prefix)| [url, prefix]),
            "replica": self.replica,
        })
        .to_string()
    }

    fn from_json(json: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(json).expect("the spec is JSON");
        let kind_named = |name: &str| {
            ServiceKind::ALL.into_iter().find(|k| k.name() == name).unwrap_or_else(|| panic!("no service {name}"))
        };
        let text = |key: &str| v[key].as_str().unwrap_or_else(|| panic!("the spec has no {key}")).to_owned();
        Self {
            kind: kind_named(&text("kind")),
            listen: text("listen").parse().expect("a socket address"),
            database_url: text("database_url"),
            scratch: PathBuf::from(text("scratch")),
            peers: v["peers"]
                .as_array()
                .expect("peers")
                .iter()
                .map(|p| (kind_named(p[0].as_str().unwrap()), p[1].as_str().unwrap().parse().unwrap()))
                .collect(),
            max_connections: v["max_connections"].as_u64().map(|n| n as u32),
            public_key_file: PathBuf::from(text("public_key_file")),
            redis: v["redis"].as_array().map(|r| {
                let part = |i: usize| r[i].as_str().expect("the Redis URL and prefix").to_owned();
                (part(0), part(1))
            }),
            replica: v["replica"].as_u64().unwrap_or(0) as usize,
        }
    }

    /// The service's test clock file.
    pub fn clock_file(&self) -> PathBuf {
        self.scratch.join(format!("{}-clock-offset", self.kind.name()))
    }

    fn log_file(&self) -> PathBuf {
        match self.replica {
            0 => self.scratch.join(format!("{}.log", self.kind.name())),
            k => self.scratch.join(format!("{}-{k}.log", self.kind.name())),
        }
    }

    /// The personal-data key of the registry or recruitment.
    fn key_file(&self) -> PathBuf {
        self.scratch.join(format!("{}-personal-data.key", self.kind.name()))
    }

    /// Its SERVICE token.
    fn token_file(&self) -> PathBuf {
        self.scratch.join(format!("{}-service.token", self.kind.name()))
    }

    /// In the test process, before the first start: the personal-data key (kept, so a restarted
    /// process reads its data again) and a SERVICE token of the service's own subject
    /// (`svc:<name>`, valid for 1000 days: tests move the clock by weeks), signed by the test's key.
    fn write_files(&self) {
        if !self.key_file().exists() {
            std::fs::write(self.key_file(), supervision_kit::personal::PersonalDataKey::generate_hex())
                .expect("the personal-data key is written");
        }
        let token = identity::token_for(supervision_kit::auth::TokenRequest {
            subject: supervision_kit::auth::service_subject(self.kind.name()),
            role: Role::Service,
            bureau: None,
            expert_id: None,
            ttl: Duration::from_secs(1000 * 86_400),
        });
        std::fs::write(self.token_file(), token).expect("the service token is written");
    }

    /// Builds the service (its listener bound, its database migrated) and runs it in a task.
    async fn build_and_run(&self, shutdown: Shutdown) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
        let mut common = common_args(Some(self.clock_file()));
        common.auth.jwt_public_key_file = self.public_key_file.clone();
        common.database_max_connections = self.max_connections;
        if let Some((url, prefix)) = &self.redis {
            common.redis_url = Some(url.clone());
            common.redis_key_prefix = prefix.clone();
        }
        for (peer, addr) in &self.peers {
            let url = Some(format!("http://{addr}"));
            match peer {
                ServiceKind::Registry => common.peers.registry_endpoint = url,
                ServiceKind::Recruitment => common.peers.recruitment_endpoint = url,
                ServiceKind::Dispatch => common.peers.dispatch_endpoint = url,
                ServiceKind::Finance => common.peers.finance_endpoint = url,
            }
        }
        if !self.peers.is_empty() {
            common.peers.service_token_file = Some(self.token_file());
        }
        let (listen, database_url, reference) =
            (self.listen.to_string(), self.database_url.clone(), ReferenceArgs::default());
        Ok(match self.kind {
            ServiceKind::Registry => {
                let config = supervision_registry::Config {
                    listen,
                    database_url,
                    personal_data_key_file: Some(self.key_file()),
                    expert_cache: supervision_registry::app::DEFAULT_EXPERT_CACHE,
                    common,
                    reference,
                };
                tokio::spawn(supervision_registry::App::build(&config).await?.run_until_stopped(shutdown))
            }
            ServiceKind::Recruitment => {
                let config = supervision_recruitment::Config {
                    listen,
                    database_url,
                    personal_data_key_file: Some(self.key_file()),
                    common,
                    reference,
                };
                tokio::spawn(supervision_recruitment::App::build(&config).await?.run_until_stopped(shutdown))
            }
            ServiceKind::Dispatch => {
                let config = supervision_dispatch::Config { listen, database_url, common, reference };
                tokio::spawn(supervision_dispatch::App::build(&config).await?.run_until_stopped(shutdown))
            }
            ServiceKind::Finance => {
                let config = supervision_finance::Config { listen, database_url, common, reference };
                tokio::spawn(supervision_finance::App::build(&config).await?.run_until_stopped(shutdown))
            }
        })
    }
}

/// The body of the ignored test a child process runs: serves the service [`CHILD_ENV`] names
/// until the process is killed (or its parent is gone). Run directly (`--run-ignored all`, no
/// [`CHILD_ENV`]) it answers at once: there is nothing to serve.
pub async fn serve_child() {
    let Ok(json) = std::env::var(CHILD_ENV) else {
        eprintln!("{CHILD_ENV} is not set: not a service process, nothing to serve");
        return;
    };
    let spec = ProcessSpec::from_json(&json);
    // Gone with the parent: once the test process ends, this one is adopted by another.
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(250));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(3);
            }
        }
    });
    // The process it replaces may still hold the address for a moment after its kill.
    let mut attempt = 0;
    let task = loop {
        attempt += 1;
        match spec.build_and_run(Shutdown::new()).await {
            Ok(task) => break task,
            Err(e) if attempt < 100 => {
                eprintln!("{} not started yet ({e:#}); retrying", spec.kind.name());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{} does not start: {e:#}", spec.kind.name()),
        }
    };
    println!("{} serving on {} as process {}", spec.kind.name(), spec.listen, std::process::id());
    let outcome = task.await;
    panic!("{} stopped serving: {outcome:?}", spec.kind.name());
}

/// This test binary. On Linux `/proc/self/exe`, which still runs it after a build elsewhere
/// replaced the file (tests share one target directory); else its path.
fn test_binary() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() { proc_exe } else { std::env::current_exe().expect("the test binary") }
}

/// A free local address (free when chosen; the caller keeps it for one service).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free local port")
}

/// A service in its own process, killed when this value is dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    pub spec: ProcessSpec,
    /// The ignored test the child runs (`module::name`).
    entry: String,
    child: Option<Child>,
    /// A lazily connecting channel: it reconnects once a restarted process listens.
    pub channel: Channel,
    /// How many times the process was started.
    pub starts: usize,
}

impl ServiceProcess {
    /// Starts the process serving `spec` by running the ignored test `entry` of this test binary,
    /// and waits until its health answers SERVING.
    pub async fn start(spec: ProcessSpec, entry: &str) -> Self {
        let channel = Channel::from_shared(format!("http://{}", spec.listen))
            .expect("a valid URI")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy();
        spec.write_files();
        let mut process = Self { spec, entry: entry.to_owned(), child: None, channel, starts: 0 };
        process.restart().await;
        process
    }

    /// Starts the process again (after [`ServiceProcess::kill`]) on the same database and
    /// address, and waits until it serves.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.spec.kind.name());
        let log = OpenOptions::new().create(true).append(true).open(self.spec.log_file()).expect("the log opens");
        let child = Command::new(test_binary())
            .args([self.entry.as_str(), "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, self.spec.to_json())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("the service process starts");
        self.child = Some(child);
        self.starts += 1;
        self.wait_serving(Duration::from_secs(60)).await;
    }

    /// Kills the process with SIGKILL (nothing runs after it: no drain, no lease given up, open
    /// transactions cut) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` is SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process runs (started and not killed; panics if it died by itself).
    pub fn is_running(&mut self) -> bool {
        let name = self.spec.kind.name();
        let log = self.log_tail();
        match self.child.as_mut().map(Child::try_wait) {
            None => false,
            Some(Ok(None)) => true,
            Some(outcome) => panic!("{name} exited by itself ({outcome:?}); its log ends:\n{log}"),
        }
    }

    /// The health of the whole server (`""`) as the process answers it; `None` when it does not
    /// answer within two seconds.
    pub async fn health(&self) -> Option<ServingStatus> {
        health(&self.channel).await
    }

    async fn wait_serving(&mut self, within: Duration) {
        let started = Instant::now();
        loop {
            assert!(self.is_running(), "{} is not running", self.spec.kind.name());
            if self.health().await == Some(ServingStatus::Serving) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{} did not serve within {within:?}; its log ends:\n{}",
                self.spec.kind.name(),
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.spec.log_file()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The overall health `channel`'s server answers, or `None` within two seconds.
pub async fn health(channel: &Channel) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel.clone());
    let check = client.check(HealthCheckRequest { service: String::new() });
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(answer)) => Some(answer.into_inner().status()),
        _ => None,
    }
}

/// The four services, one process each, on the databases given, each calling the others as a
/// deployment does (ARCHITECTURE.md "Calls between services"; see [`ServiceKind::callees`]).
#[derive(Debug)]
pub struct ProcessCluster {
    /// In [`ServiceKind::ALL`] order, a service's replicas together (replica `k` of `kind` at
    /// `kind * replicas + k`).
    processes: Vec<ServiceProcess>,
    /// Processes per service.
    replicas: usize,
}

impl ProcessCluster {
    /// Starts the four services on `databases` (in [`ServiceKind::ALL`] order), with their files
    /// in `scratch`, each pool at most `max_connections`, running the ignored test `entry`.
    pub async fn start(databases: [&str; 4], scratch: &Path, max_connections: u32, entry: &str) -> Self {
        Self::launch(databases, scratch, max_connections, None, 1, entry).await
    }

    /// Starts two processes of each of the four services, as a scaled-out deployment runs them
    /// (what `testkit::ScaledOut` does in-process): both replicas of a service on its database in
    /// `databases` (in [`ServiceKind::ALL`] order), all eight on `redis` (one key prefix), each
    /// pool at most `max_connections` (eight pools share one PostgreSQL server). Replica `k` of a
    /// caller calls replica `1 - k` of each callee, so while replica 0 of every service is
    /// killed the survivors' calls and outbox deliveries go to a killed process until it is back.
    pub async fn start_replicated(
        databases: [&str; 4],
        scratch: &Path,
        max_connections: u32,
        redis: &TestRedis,
        entry: &str,
    ) -> Self {
        let redis = (redis.url.clone(), redis.prefix.clone());
        Self::launch(databases, scratch, max_connections, Some(redis), 2, entry).await
    }

    async fn launch(
        databases: [&str; 4],
        scratch: &Path,
        max_connections: u32,
        redis: Option<(String, String)>,
        replicas: usize,
        entry: &str,
    ) -> Self {
        let addrs: Vec<Vec<SocketAddr>> =
            ServiceKind::ALL.iter().map(|_| (0..replicas).map(|_| free_addr()).collect()).collect();
        let mut specs = Vec::new();
        for kind in ServiceKind::ALL {
            for k in 0..replicas {
                specs.push(ProcessSpec {
                    kind,
                    listen: addrs[kind as usize][k],
                    database_url: databases[kind as usize].to_owned(),
                    scratch: scratch.to_owned(),
                    peers: kind
                        .callees()
                        .iter()
                        .map(|callee| (*callee, addrs[*callee as usize][replicas - 1 - k]))
                        .collect(),
                    max_connections: Some(max_connections),
                    public_key_file: identity::public_key_file(),
                    redis: redis.clone(),
                    replica: k,
                });
            }
        }
        // Dispatch and the registry call each other; their outboxes retry until the other is up.
        let mut processes = Vec::new();
        for spec in specs {
            processes.push(ServiceProcess::start(spec, entry).await);
        }
        Self { processes, replicas }
    }

    /// The process of `kind` (its replica 0).
    pub fn process(&mut self, kind: ServiceKind) -> &mut ServiceProcess {
        self.replica(kind, 0)
    }

    /// Replica `k` of `kind`.
    pub fn replica(&mut self, kind: ServiceKind, k: usize) -> &mut ServiceProcess {
        assert!(k < self.replicas, "{} has {} replicas", kind.name(), self.replicas);
        &mut self.processes[kind as usize * self.replicas + k]
    }

    /// Each service's channel (replica 0's).
    pub fn channels(&self) -> Vec<(ServiceKind, Channel)> {
        self.processes.iter().filter(|p| p.spec.replica == 0).map(|p| (p.spec.kind, p.channel.clone())).collect()
    }

    /// Each service's replicas' channels, in replica order.
    pub fn replica_channels(&self) -> Vec<(ServiceKind, Vec<Channel>)> {
        ServiceKind::ALL
            .iter()
            .map(|kind| {
                let channels = self.processes.iter().filter(|p| p.spec.kind == *kind).map(|p| p.channel.clone());
                (*kind, channels.collect())
            })
            .collect()
    }

    /// The four services' test clock files (one per service, read by all its replicas).
    pub fn clock_files(&self) -> Vec<PathBuf> {
        self.processes.iter().filter(|p| p.spec.replica == 0).map(|p| p.spec.clock_file()).collect()
    }

    /// Whether all four processes run.
    pub fn all_running(&mut self) -> bool {
        self.processes.iter_mut().all(ServiceProcess::is_running)
    }
}
