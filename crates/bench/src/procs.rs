//! The release service binaries as separate processes, started as `make run` starts them
//! (scripts/run-dev.sh: the same flags through the environment), to measure what only a process
//! shows: the time from spawn to SERVING, and resident memory (VmRSS, VmHWM in /proc) idle and
//! under load. These binaries are production builds: no test clock.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Datelike;
use supervision_kit::{Role, auth::TokenRequest, personal::PersonalDataKey};
use supervision_proto::{
    dispatch::dispatch_service_client::DispatchServiceClient,
    finance::{ListFeeLinesRequest, finance_service_client::FinanceServiceClient},
    recruitment::{ListCallsRequest, recruitment_service_client::RecruitmentServiceClient},
};
use testkit::{AuthedChannel, Backend, Bureau, TestDb, TestRedis, identity};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::load::{self, Stop};

const SERVICES: [&str; 4] = ["registry", "recruitment", "dispatch", "finance"];

/// One service process.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// SIGTERM, as Kubernetes and Ctrl-C stop it, then wait.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn service_token(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.token"));
    let token = identity::token_for(TokenRequest {
        subject: supervision_kit::auth::service_subject(name),
        role: Role::Service,
        bureau: None,
        expert_id: None,
        ttl: Duration::from_secs(86_400),
    });
    std::fs::write(&path, token)?;
    Ok(path)
}

/// The four databases, the keys, the ports and the log directory of one process deployment.
pub struct Deployment {
    pub storage_label: &'static str,
    pub dir: tempfile::TempDir,
    dbs: BTreeMap<&'static str, TestDb>,
    redis: Option<TestRedis>,
    pub addrs: BTreeMap<&'static str, SocketAddr>,
    personal_key: PathBuf,
    bin_dir: PathBuf,
}

impl Deployment {
    pub async fn new(backend: Backend, bin_dir: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let personal_key = dir.path().join("personal-data.key");
        std::fs::write(&personal_key, PersonalDataKey::generate_hex())?;
        let mut dbs = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for name in SERVICES {
            dbs.insert(name, TestDb::new(backend).await);
            addrs.insert(name, free_addr()?);
        }
        let redis = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestRedis::new().await),
        };
        let storage_label = if redis.is_some() { "postgres+redis" } else { "sqlite" };
        Ok(Self { storage_label, dir, dbs, redis, addrs, personal_key, bin_dir: bin_dir.to_owned() })
    }

    /// Spawns `name` and waits until it answers SERVING: (the process, time from spawn).
    pub async fn start(&self, name: &'static str) -> anyhow::Result<(Proc, Duration)> {
        let upper = name.to_uppercase();
        let addr = self.addrs[name];
        let mut command = Command::new(self.bin_dir.join(name));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(format!("{upper}_LISTEN"), addr.to_string())
            .env(format!("{upper}_DATABASE_URL"), self.dbs[name].url())
            .env("JWT_PUBLIC_KEY_FILE", identity::public_key_file())
            .env("SERVICE_TOKEN_FILE", service_token(self.dir.path(), name)?)
            .env("REGISTRY_ENDPOINT", format!("http://{}", self.addrs["registry"]))
            .env("DISPATCH_ENDPOINT", format!("http://{}", self.addrs["dispatch"]))
            .env("FINANCE_ENDPOINT", format!("http://{}", self.addrs["finance"]))
            // The load below is one user calling as fast as it can: the per-user rate limit would
            // turn it into RESOURCE_EXHAUSTED and measure the limiter, not the service.
            .env("RATE_LIMIT_PER_SECOND", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(self.dir.path().join(format!("{name}.out")))?))
            .stderr(Stdio::from(std::fs::File::create(self.dir.path().join(format!("{name}.log")))?));
        if matches!(name, "registry" | "recruitment") {
            command.env("PERSONAL_DATA_KEY_FILE", &self.personal_key);
        }
        // Passed through, to compare the registry's memory with and without its copies of experts.
        if name == "registry"
            && let Ok(copies) = std::env::var("REGISTRY_EXPERT_CACHE")
        {
            command.env("REGISTRY_EXPERT_CACHE", copies);
        }
        if let Some(redis) = &self.redis {
            command.env("REDIS_URL", &redis.url).env("REDIS_KEY_PREFIX", &redis.prefix);
        }
        let started = Instant::now();
        let child = command.spawn()?;
        let proc = Proc { child };
        let endpoint = format!("http://{addr}");
        loop {
            if started.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("{name} was not SERVING within 60 s; see {}", self.dir.path().display());
            }
            if let Ok(channel) = Channel::from_shared(endpoint.clone())?.connect().await {
                let mut health = HealthClient::new(channel);
                if let Ok(answer) = health.check(HealthCheckRequest { service: String::new() }).await
                    && answer.into_inner().status == ServingStatus::Serving as i32
                {
                    return Ok((proc, started.elapsed()));
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn channel(&self, name: &str) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addrs[name]))?.connect().await?)
    }
}

/// What was measured of one service.
#[derive(Debug, Default, Clone)]
pub struct ProcReport {
    pub first_start: Duration,
    pub restart: Duration,
    pub idle_rss_kib: u64,
    pub load_peak_rss_kib: u64,
    pub load_hwm_kib: u64,
    pub load: String,
}

/// Samples a process's VmRSS every 50 ms while `work` runs; returns the peak.
async fn sample_during<F: std::future::Future<Output = anyhow::Result<String>>>(
    proc: &Proc,
    work: F,
) -> anyhow::Result<(u64, String)> {
    let pid = proc.pid();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                if let Some(kib) = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak = peak.max(kib);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let what = work.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(0);
    Ok((peak, what?))
}

fn authed(channel: &Channel, role: Role, bureau: Option<Bureau>) -> AuthedChannel {
    identity::with_token(channel, Some(&identity::token(role, bureau)))
}

/// Starts the four binaries twice (fresh databases: migrations; then again on the migrated
/// databases), measures idle and loaded memory; `experts` are imported for the loaded registry
/// and dispatch.
pub async fn measure(
    backend: Backend,
    bin_dir: &Path,
    experts: u32,
    load_for: Duration,
) -> anyhow::Result<BTreeMap<&'static str, ProcReport>> {
    let deployment = Deployment::new(backend, bin_dir).await?;
    let mut reports: BTreeMap<&'static str, ProcReport> = BTreeMap::new();
    // First start: migrations on empty databases. One service at a time, so each has the machine.
    for name in SERVICES {
        let (proc, took) = deployment.start(name).await?;
        reports.entry(name).or_default().first_start = took;
        proc.stop();
    }
    let mut procs = BTreeMap::new();
    for name in SERVICES {
        let (proc, took) = deployment.start(name).await?;
        reports.entry(name).or_default().restart = took;
        procs.insert(name, proc);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (name, proc) in &procs {
        reports.entry(name).or_default().idle_rss_kib = proc.memory_kib().0;
    }

    // The registry: an import of `experts`, then GetExpert and pool streams.
    let registry_channel = deployment.channel("registry").await?;
    let admin = authed(&registry_channel, Role::CityAdmin, None);
    let registry = &procs["registry"];
    let (peak, what) = sample_during(registry, async {
        let took = crate::seed::experts(admin.clone(), 0, experts).await?;
        Ok(format!("import of {experts} experts ({:.1} s)", took.as_secs_f64()))
    })
    .await?;
    let mut registry_load = vec![what];
    let mut registry_peak = peak;
    let school = crate::scenarios::school(admin.clone()).await?;
    let (ids, _) = crate::scenarios::stream_pool(&registry_channel, &school, first_session_day()?).await?;
    anyhow::ensure!(ids.len() == experts as usize, "a pool of {} experts, not {experts}", ids.len());
    let ids = Arc::new(ids);
    let (peak, what) = sample_during(registry, async {
        let reader = authed(&registry_channel, Role::CountyOperator, Some(Bureau::Xinhui));
        let o = crate::scenarios::get_expert(reader, ids.clone(), 8, load_for, "GetExpert").await;
        anyhow::ensure!(o.failure_count() == 0, "GetExpert failures: {:?}", o.failures);
        Ok(format!("GetExpert x8 for {} s ({:.0}/s)", load_for.as_secs(), o.throughput()))
    })
    .await?;
    // What the reads left behind: on PostgreSQL, a copy of every expert read (10,000 by default:
    // the readers' order visits every id once calls outnumber them), unless REGISTRY_EXPERT_CACHE
    // says otherwise.
    let what = format!("{what}, then {:.1} MiB resident", registry.memory_kib().0 as f64 / 1024.0);
    registry_load.push(what);
    registry_peak = registry_peak.max(peak);

    // Dispatch: sequential draws from that pool (its clock is the real one: sessions from six
    // working days on).
    let dispatch_channel = deployment.channel("dispatch").await?;
    let calendar = supervision_calendar::Calendar::embedded();
    let first = first_session_day()?;
    let slots = crate::scenarios::Slots::from(first);
    let drawers = crate::scenarios::Drawers {
        operator: DispatchServiceClient::new(identity::with_token(
            &dispatch_channel,
            Some(&identity::token_for(TokenRequest {
                subject: "bench-operator-a".into(),
                role: Role::CountyOperator,
                bureau: Some(Bureau::Pengjiang),
                expert_id: None,
                ttl: Duration::from_secs(3600),
            })),
        )),
        witness: DispatchServiceClient::new(identity::with_token(
            &dispatch_channel,
            Some(&identity::token_for(TokenRequest {
                subject: "bench-operator-b".into(),
                role: Role::CountyOperator,
                bureau: Some(Bureau::Pengjiang),
                expert_id: None,
                ttl: Duration::from_secs(3600),
            })),
        )),
        school,
    };
    let draws = 10u64.min(2 * u64::from(days_left_in_year(&calendar, first)));
    let dispatch = &procs["dispatch"];
    let (peak, what) = sample_during(dispatch, async {
        let run = crate::scenarios::sequential_draws(&drawers, &slots, draws, "draws").await;
        anyhow::ensure!(run.outcome.failure_count() == 0, "draw failures: {:?}", run.outcome.failures);
        Ok(format!(
            "{draws} draws from a pool of {} (p50 {} ms)",
            run.candidates,
            run.outcome.hist.quantile_us(0.5) / 1000
        ))
    })
    .await?;
    let dispatch_load = what;
    let dispatch_peak = peak;

    // Finance and recruitment: reads (their write paths need dispatch's reports and recruitment's
    // calls, which a production build cannot reach without waiting out real publicity periods).
    let finance_channel = deployment.channel("finance").await?;
    let finance = &procs["finance"];
    let (finance_peak, finance_load) = sample_during(finance, async {
        let channel = authed(&finance_channel, Role::Finance, Some(Bureau::Pengjiang));
        let o = load::run("ListFeeLines", 8, Stop::Duration(load_for), &[], move |_, _| {
            let mut c = FinanceServiceClient::new(channel.clone());
            async move { c.list_fee_lines(ListFeeLinesRequest::default()).await.map(|_| ()) }
        })
        .await;
        anyhow::ensure!(o.failure_count() == 0, "ListFeeLines failures: {:?}", o.failures);
        Ok(format!("ListFeeLines x8 for {} s ({:.0}/s)", load_for.as_secs(), o.throughput()))
    })
    .await?;
    let recruitment_channel = deployment.channel("recruitment").await?;
    let recruitment = &procs["recruitment"];
    let (recruitment_peak, recruitment_load) = sample_during(recruitment, async {
        let channel = authed(&recruitment_channel, Role::CityAdmin, None);
        let o = load::run("ListCalls", 8, Stop::Duration(load_for), &[], move |_, _| {
            let mut c = RecruitmentServiceClient::new(channel.clone());
            async move { c.list_calls(ListCallsRequest::default()).await.map(|_| ()) }
        })
        .await;
        anyhow::ensure!(o.failure_count() == 0, "ListCalls failures: {:?}", o.failures);
        Ok(format!("ListCalls x8 for {} s ({:.0}/s)", load_for.as_secs(), o.throughput()))
    })
    .await?;

    for (name, peak, what) in [
        ("registry", registry_peak, registry_load.join("; ")),
        ("dispatch", dispatch_peak, dispatch_load),
        ("finance", finance_peak, finance_load),
        ("recruitment", recruitment_peak, recruitment_load),
    ] {
        let r = reports.entry(name).or_default();
        r.load_peak_rss_kib = peak;
        r.load_hwm_kib = procs[name].memory_kib().1;
        r.load = what;
    }
    for (_, proc) in procs {
        proc.stop();
    }
    let _ = deployment.storage_label;
    Ok(reports)
}

/// The first session day a task created now can have: six working days from today in Jiangmen.
fn first_session_day() -> anyhow::Result<chrono::NaiveDate> {
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    supervision_calendar::Calendar::embedded().add_working_days(today, 6).map_err(|e| anyhow::anyhow!("{e}"))
}

fn days_left_in_year(calendar: &supervision_calendar::Calendar, from: chrono::NaiveDate) -> u32 {
    let end = chrono::NaiveDate::from_ymd_opt(from.year(), 12, 31).unwrap_or(from);
    calendar.working_days_between(from, end).map_or(0, |n| u32::try_from(n).unwrap_or(0))
}
