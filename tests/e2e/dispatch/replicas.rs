//! Never double-book, across replicas (ARCHITECTURE.md "The draw" step 6): two dispatch
//! processes on one PostgreSQL database, sharing one Redis for their locks, with concurrent
//! clients running many draws over a small hot pool (12 experts, at most five tasks of two per
//! half-day, so enough experts are always free). Each draw is prepared on one replica, witnessed
//! on the other and executed on the first; a client retries UNAVAILABLE and ABORTED with the same
//! request id, as the contract allows.
//!
//! `make test` runs 40 draws; `make test-long` (SUPERVISION_TEST_LONG=1) runs 1,000. The second
//! test runs the same against a private Redis that is stopped halfway: the bookings' unique index
//! still fences alone, and every failure is a clean status.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use supervision_kit::Shutdown;
use supervision_proto::{
    common::{BureauCode, HalfDay},
    dispatch::{
        AbandonDrawRequest, ExecuteDrawRequest, PrepareDrawRequest, WitnessDrawRequest,
        dispatch_service_client::DispatchServiceClient,
    },
};
use supervision_reference::ReferenceArgs;
use testkit::{AuthedChannel, Backend, Bureau, Role, TestDb, TestRedis, identity, spawn_registry};
use tokio::task::JoinHandle;
use tonic::{Code, transport::Channel};

use crate::{
    draws::{independents, school},
    tasks::{on, task},
};

const POOL: u32 = 12;
const TASKS_PER_SLOT: usize = 5;
const CLIENTS: usize = 8;

/// One dispatch process.
struct Replica {
    channel: Channel,
    shutdown: Shutdown,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    async fn start(db: &TestDb, registry: SocketAddr, redis: (&str, &str)) -> Self {
        let clock_file = db.scratch_dir().join("clock-offset");
        let token_file = db.scratch_dir().join("service.token");
        std::fs::write(&token_file, identity::token(Role::Service, None)).unwrap();
        let mut common = testkit::common_args(Some(clock_file));
        common.peers.registry_endpoint = Some(format!("http://{registry}"));
        common.peers.service_token_file = Some(token_file);
        common.redis_url = Some(redis.0.to_owned());
        common.redis_key_prefix = redis.1.to_owned();
        let config = supervision_dispatch::Config {
            listen: "127.0.0.1:0".into(),
            database_url: db.url().to_owned(),
            common,
            reference: ReferenceArgs::default(),
        };
        let app = supervision_dispatch::App::build(&config).await.expect("dispatch builds");
        let addr = app.local_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
        Self { channel, shutdown, task }
    }

    fn as_user(&self, subject: &str) -> DispatchServiceClient<AuthedChannel> {
        let token = identity::token_for(supervision_kit::auth::TokenRequest {
            subject: subject.to_owned(),
            role: Role::CountyOperator,
            bureau: Some(Bureau::Pengjiang),
            expert_id: None,
            ttl: Duration::from_secs(3600),
        });
        DispatchServiceClient::new(identity::with_token(&self.channel, Some(&token)))
    }

    async fn stop(self) {
        self.shutdown.trigger();
        let outcome = tokio::time::timeout(Duration::from_secs(30), self.task).await;
        assert!(matches!(outcome, Ok(Ok(Ok(())))), "a replica did not stop cleanly: {outcome:?}");
    }
}

/// Half-day `slot` (AM, PM, AM of the next day, ...) from Monday 2026-06-08.
fn slot(n: usize) -> (NaiveDate, HalfDay) {
    let day = NaiveDate::from_ymd_opt(2026, 6, 8).unwrap() + chrono::Days::new((n / 2) as u64);
    (day, if n.is_multiple_of(2) { HalfDay::Am } else { HalfDay::Pm })
}

/// Calls `f` until it answers other than UNAVAILABLE or ABORTED (at most 20 times).
async fn retried<T, F, Fut>(mut f: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut last = None;
    for _ in 0..20 {
        match f().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if matches!(s.code(), Code::Unavailable | Code::Aborted) => {
                last = Some(s);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(s) => return Err(s),
        }
    }
    Err(last.expect("tried at least once"))
}

/// One draw from task to execution: `Ok` or the status it ended with.
async fn one_draw(replicas: &[Replica; 2], school: &str, i: usize) -> Result<usize, tonic::Status> {
    let (here, there) = (&replicas[i % 2], &replicas[(i + 1) % 2]);
    let operator = here.as_user(&format!("op-{i}"));
    let witness = there.as_user(&format!("wit-{i}"));
    let (date, half_day) = slot(i / TASKS_PER_SLOT);
    let mut request = task(
        &format!("task-{i}"),
        BureauCode::Pengjiang,
        school,
        vec![on(date.year(), date.month() as i32, date.day() as i32, half_day)],
    );
    request.team_size = Some(2);
    request.backup_count = Some(2);
    let created = retried(|| {
        let (mut c, r) = (operator.clone(), request.clone());
        async move { c.create_task(r).await }
    })
    .await?;
    let task_id = created.task.unwrap().id;
    // The frozen list holds the experts free and outside the soft exclusions at prepare; when
    // concurrent draws book them all before this one executes, execution is refused with
    // POOL_TOO_SMALL (the committed list cannot grow), and the operator abandons the draw and
    // draws again, when the soft rules relax if they must.
    for attempt in 0..5 {
        let prepare =
            PrepareDrawRequest { request_id: format!("prep-{i}-{attempt}"), task_id: task_id.clone(), kind: 0 };
        let draw = retried(|| {
            let (mut c, r) = (operator.clone(), prepare.clone());
            async move { c.prepare_draw(r).await }
        })
        .await?
        .draw
        .unwrap();
        let sign = WitnessDrawRequest {
            request_id: format!("wit-{i}-{attempt}"),
            draw_id: draw.id.clone(),
            dice_digits: String::new(),
        };
        retried(|| {
            let (mut c, r) = (witness.clone(), sign.clone());
            async move { c.witness_draw(r).await }
        })
        .await?;
        let execute = ExecuteDrawRequest { request_id: format!("exec-{i}-{attempt}"), draw_id: draw.id.clone() };
        match retried(|| {
            let (mut c, r) = (operator.clone(), execute.clone());
            async move { c.execute_draw(r).await }
        })
        .await
        {
            Ok(executed) => {
                assert_eq!(executed.assignments.iter().filter(|a| a.role == 1).count(), 2, "two primaries");
                return Ok(attempt);
            }
            Err(s) if s.code() == Code::FailedPrecondition && crate::tasks::reason(&s) == "POOL_TOO_SMALL" => {
                let abandon = AbandonDrawRequest {
                    request_id: format!("ab-{i}-{attempt}"),
                    draw_id: draw.id.clone(),
                    reason: "concurrent draws took the frozen list".into(),
                };
                retried(|| {
                    let (mut c, r) = (operator.clone(), abandon.clone());
                    async move { c.abandon_draw(r).await }
                })
                .await?;
            }
            Err(s) => return Err(s),
        }
    }
    Err(tonic::Status::aborted("five draws in a row lost their frozen list"))
}

/// What a run measured.
#[derive(Debug, Default)]
struct Run {
    succeeded: usize,
    /// Draws that were abandoned and drawn again because concurrent draws took their list.
    redrawn: usize,
    failed: HashMap<Code, usize>,
    double_bookings: i64,
    elapsed: Duration,
}

/// Runs `total` draws with [`CLIENTS`] concurrent clients; `halfway` runs once half are done.
async fn run(
    replicas: Arc<[Replica; 2]>,
    db_url: &str,
    school: &str,
    total: usize,
    halfway: impl FnOnce() + Send + 'static,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let halfway = Arc::new(std::sync::Mutex::new(Some(halfway)));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (replicas, next, done, halfway, school) =
            (replicas.clone(), next.clone(), done.clone(), halfway.clone(), school.to_owned());
        clients.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return outcomes;
                }
                outcomes.push(one_draw(&replicas, &school, i).await.map_err(|s| {
                    use tonic_types::StatusExt;
                    let info = s.get_error_details().error_info().map(|e| e.metadata.clone());
                    eprintln!("draw {i}: {:?} {} {info:?}", s.code(), s.message());
                    s.code()
                }));
                if done.fetch_add(1, Ordering::SeqCst) + 1 == total / 2
                    && let Some(f) = halfway.lock().unwrap().take()
                {
                    f();
                }
            }
        }));
    }
    let mut run = Run::default();
    for c in clients {
        for outcome in c.await.unwrap() {
            match outcome {
                Ok(redraws) => {
                    run.succeeded += 1;
                    run.redrawn += redraws;
                }
                Err(code) => *run.failed.entry(code).or_default() += 1,
            }
        }
    }
    run.elapsed = started.elapsed();
    run.double_bookings = double_bookings(db_url).await;
    run
}

/// Half-days on which one expert holds a place on two tasks, read from the assignments and the
/// tasks' sessions (not from the index that is meant to prevent it).
async fn double_bookings(db_url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db_url).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT a.expert_id, s.session_date, s.half_day FROM assignments a \
           JOIN task_sessions s ON s.task_id = a.task_id \
         WHERE a.role = 'PRIMARY' AND a.status IN ('NOTIFIED', 'ACCEPTED') \
         GROUP BY a.expert_id, s.session_date, s.half_day HAVING COUNT(DISTINCT a.task_id) > 1) twice",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let primaries: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM assignments WHERE role = 'PRIMARY' AND status = 'NOTIFIED'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let bookings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bookings").fetch_one(&pool).await.unwrap();
    assert_eq!(primaries, bookings, "every primary holds exactly its one half-day");
    pool.close().await;
    n
}

/// The registry with the school and the hot pool, and dispatch's database with its clock on
/// Monday 2026-06-01 10:00 (Asia/Shanghai).
async fn setup() -> (testkit::RunningService, String, TestDb) {
    let registry = spawn_registry(Backend::Postgres).await;
    let school = school(&registry).await;
    independents(&registry, 1, 1 + POOL).await;
    let db = TestDb::new(Backend::Postgres).await;
    let target = Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0).unwrap();
    std::fs::write(db.scratch_dir().join("clock-offset"), (target - Utc::now()).num_seconds().to_string()).unwrap();
    (registry, school, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_double_book_and_every_draw_succeeds() {
    let total = testkit::scale(40, 1000);
    let (registry, school, db) = setup().await;
    let redis = TestRedis::new().await;
    let replicas = Arc::new([
        Replica::start(&db, registry.addr, (&redis.url, &redis.prefix)).await,
        Replica::start(&db, registry.addr, (&redis.url, &redis.prefix)).await,
    ]);
    let run = run(replicas.clone(), db.url(), &school, total, || {}).await;
    eprintln!(
        "two replicas, one Redis: {} tasks drawn, {} succeeded ({} redraws after an exhausted list), failures {:?}, \
         double bookings {}, {:?} ({:.1} tasks/s)",
        total,
        run.succeeded,
        run.redrawn,
        run.failed,
        run.double_bookings,
        run.elapsed,
        total as f64 / run.elapsed.as_secs_f64()
    );
    assert_eq!(run.double_bookings, 0);
    assert_eq!(run.succeeded, total, "enough experts were always free: every draw succeeds ({:?})", run.failed);
    let [a, b] = Arc::into_inner(replicas).expect("the clients are done");
    a.stop().await;
    b.stop().await;
    registry.stop().await;
}

/// A Redis of this test's own on a free port, stopped by [`PrivateRedis::stop`].
struct PrivateRedis {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateRedis {
    /// Stops it when the test ends early too (a second kill of a reaped child is a no-op).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateRedis {
    #[allow(clippy::zombie_processes, reason = "the child is killed and reaped by `stop` or by Drop")]
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(PathBuf::from(dir.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (it is installed where make test runs)");
        let url = format!("redis://127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self { child, url, _dir: dir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private redis-server did not start on port {port}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_stopped_mid_run_nothing_is_double_booked_and_failures_are_clean() {
    let total = testkit::scale(40, 1000);
    let (registry, school, db) = setup().await;
    let redis = PrivateRedis::start().await;
    let replicas = Arc::new([
        Replica::start(&db, registry.addr, (&redis.url, "private:")).await,
        Replica::start(&db, registry.addr, (&redis.url, "private:")).await,
    ]);
    let redis = Arc::new(std::sync::Mutex::new(redis));
    let killer = redis.clone();
    let run = run(replicas.clone(), db.url(), &school, total, move || {
        let mut redis = killer.lock().unwrap();
        redis.child.kill().expect("the private Redis stops");
        redis.child.wait().expect("and is reaped");
    })
    .await;
    eprintln!(
        "two replicas, Redis stopped halfway: {} tasks drawn, {} succeeded ({} redraws), failures {:?}, \
         double bookings {}, {:?}",
        total, run.succeeded, run.redrawn, run.failed, run.double_bookings, run.elapsed
    );
    assert_eq!(run.double_bookings, 0);
    let unclean: Vec<_> = run
        .failed
        .keys()
        .filter(|c| !matches!(c, Code::Unavailable | Code::Aborted | Code::FailedPrecondition))
        .collect();
    assert!(unclean.is_empty(), "failures other than clean statuses: {:?}", run.failed);
    assert!(redis.lock().unwrap().child.try_wait().unwrap().is_some(), "Redis was stopped during the run");
    let [a, b] = Arc::into_inner(replicas).expect("the clients are done");
    a.stop().await;
    b.stop().await;
    registry.stop().await;
}
