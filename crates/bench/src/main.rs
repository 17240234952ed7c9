//! `supbench`: the load generator of issue 12 (`make bench`). It starts the real services in this
//! process (the testkit's databases: a fresh SQLite file, or a fresh PostgreSQL database with
//! Redis locks), seeds experts through the registry's own ImportExperts, runs each scenario with
//! a latency histogram, checks every status (any the scenario does not expect is a failure), and
//! runs the baselines in the same run so that results read as ratios. `supbench procs` starts
//! the release binaries as processes for start-up time and resident memory.
//!
//! docs/performance.md has the numbers and how to reproduce each one.

mod baseline;
mod cluster;
mod hist;
mod load;
mod metrics;
mod procs;
mod scenarios;
mod seed;

use std::{
    fmt::Write as _,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Parser, Subcommand, ValueEnum};
use supervision_kit::Role;
use supervision_proto::{
    common::PageRequest,
    registry::{GetExpertRequest, ListExpertsRequest, registry_service_client::RegistryServiceClient},
};
use testkit::{Backend, Bureau, identity};

use crate::{
    cluster::Storage,
    hist::Histogram,
    load::Outcome,
    scenarios::{Drawers, Slots},
};

/// How many turns GetExpert and its sqlx baseline take each within `--read-seconds`.
const READ_ROUNDS: u32 = 8;

#[derive(Debug, Parser)]
#[command(name = "supbench", about = "Load generator and baselines for the supervision services (issue 12)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backends {
    Sqlite,
    Postgres,
    Both,
}

impl Backends {
    fn list(self) -> Vec<Backend> {
        match self {
            Self::Sqlite => vec![Backend::Sqlite],
            Self::Postgres => vec![Backend::Postgres],
            Self::Both => vec![Backend::Sqlite, Backend::Postgres],
        }
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// The scenarios and their baselines, services in this process.
    Run(RunArgs),
    /// Start-up time and resident memory of the release binaries as processes.
    Procs(ProcArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "both")]
    backend: Backends,
    /// Pool sizes to seed and draw from, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "100,10000,100000")]
    pools: Vec<u32>,
    /// Sequential draws at each pool size.
    #[arg(long, default_value_t = 20)]
    draws: u64,
    /// Draws at once on the hot pool, and how many in all.
    #[arg(long, default_value_t = 4)]
    hot_concurrency: usize,
    #[arg(long, default_value_t = 24)]
    hot_draws: u64,
    /// Pool size of the hot-pool scenario (one of --pools).
    #[arg(long, default_value_t = 10_000)]
    hot_pool: u32,
    /// Pool streams per size (sizes of 10,000 and more).
    #[arg(long, default_value_t = 5)]
    pool_streams: u64,
    /// Seconds and concurrency of each read scenario and of each baseline (GetExpert and its sqlx
    /// baseline take 8 turns each within the seconds).
    #[arg(long, default_value_t = 8)]
    read_seconds: u64,
    #[arg(long, default_value_t = 4)]
    read_concurrency: usize,
    /// The registry's `--expert-cache`: experts GetExpert keeps parsed on PostgreSQL.
    #[arg(long, default_value_t = supervision_registry::app::DEFAULT_EXPERT_CACHE)]
    expert_cache: usize,
    /// Passes of the whole task -> draw -> accept -> report -> fee path.
    #[arg(long, default_value_t = 10)]
    path_passes: u64,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ProcArgs {
    #[arg(long, value_enum, default_value = "both")]
    backend: Backends,
    /// Where the release binaries are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Experts imported into the registry for the loaded measurements.
    #[arg(long, default_value_t = 10_000)]
    experts: u32,
    #[arg(long, default_value_t = 8)]
    load_seconds: u64,
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The report, printed as it grows and written whole at the end.
#[derive(Debug, Default)]
struct Report {
    text: String,
    unexpected: u64,
}

impl Report {
    fn line(&mut self, line: impl AsRef<str>) {
        println!("{}", line.as_ref());
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }

    fn header(&mut self) {
        self.line(
            "| backend | scenario | conc. | calls | unexpected | calls/s | p50 ms | p99 ms | max ms | vs baseline |",
        );
        self.line("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    }

    fn outcome(&mut self, backend: &str, o: &Outcome, versus: &str) {
        self.unexpected += o.failure_count();
        let mut failures = String::new();
        for (code, (n, message)) in &o.failures {
            let _ = write!(failures, " {code}x{n} ({message})");
        }
        let expected: String = o.expected_errors.iter().map(|(c, n)| format!(" {c}x{n} expected")).collect();
        self.line(format!(
            "| {backend} | {} | {} | {} | {}{failures}{expected} | {:.1} | {} | {} | {} | {versus} |",
            o.name,
            o.concurrency,
            o.hist.count(),
            o.failure_count(),
            o.throughput(),
            ms(o.hist.quantile_us(0.5)),
            ms(o.hist.quantile_us(0.99)),
            ms(o.hist.max_us()),
        ));
    }
}

fn ms(us: u64) -> String {
    if us >= 100_000 { format!("{:.0}", us as f64 / 1000.0) } else { format!("{:.2}", us as f64 / 1000.0) }
}

fn p50_p99(h: &Histogram) -> String {
    format!("{} / {}", ms(h.quantile_us(0.5)), ms(h.quantile_us(0.99)))
}

fn ratio(a: &Outcome, b: &Outcome) -> String {
    let (x, y) = (a.throughput(), b.throughput());
    if y == 0.0 { "n/a".into() } else { format!("{:.2}x of {}", x / y, b.name) }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Cmd::Run(args) => run(args).await,
            Cmd::Procs(args) => run_procs(args).await,
        }
    })
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024 / 1024);
    format!("{cpus} CPUs ({model}), {mem} GiB, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut report = Report::default();
    report.line(format!("supbench run on {}", machine()));
    let mut pools = args.pools.clone();
    pools.sort_unstable();
    // Each draw takes a half-day of its own (the hot pool's share one), from the first slot day
    // to the end of the embedded calendar: refused here rather than part-way through a run.
    let wanted = pools.len() * (usize::try_from(args.draws)? + 1) + usize::from(pools.contains(&args.hot_pool));
    let left = Slots::from(scenarios::first_slot_day()).left();
    anyhow::ensure!(
        wanted <= left,
        "{} pool sizes x (--draws {} + the first draw) need {wanted} half-days; the embedded calendar has {left} \
         from {} on: ask for fewer draws",
        pools.len(),
        args.draws,
        scenarios::first_slot_day()
    );
    for backend in args.backend.list() {
        let storage = Storage { expert_cache: args.expert_cache, ..Storage::new(backend).await };
        run_backend(&args, &pools, &storage, &mut report).await?;
    }
    report.line(format!("\nunexpected statuses in the whole run: {}", report.unexpected));
    if let Some(out) = &args.out {
        std::fs::write(out, &report.text)?;
    }
    anyhow::ensure!(
        report.unexpected == 0,
        "{} calls answered a status their scenario does not expect",
        report.unexpected
    );
    Ok(())
}

async fn run_backend(args: &RunArgs, pools: &[u32], storage: &Storage, report: &mut Report) -> anyhow::Result<()> {
    let b = storage.label();
    report.line(format!("\n## {b}\n"));
    let registry = storage.registry().await;
    let dispatch = storage.dispatch(&registry, None).await;
    dispatch.set_clock(scenarios::draw_clock());
    let admin = registry.as_role(Role::CityAdmin, None);
    let school = scenarios::school(admin.clone()).await?;
    let slots = Slots::from(scenarios::first_slot_day());
    let drawers = Drawers::new(&dispatch, &school);
    let reader = registry.as_role(Role::CountyOperator, Some(Bureau::Xinhui));
    let read_for = Duration::from_secs(args.read_seconds);
    let db = baseline::open_registry_db(registry.database_url()).await?;

    let mut seeded = 0;
    let mut breakdown = Vec::new();
    let mut rows = Vec::new();
    let mut server_side: Vec<(u32, Vec<metrics::MethodTime>, Vec<metrics::MethodTime>)> = Vec::new();
    for &size in pools {
        let took = seed::experts(admin.clone(), seeded, size).await?;
        report.line(format!(
            "seeded experts {seeded}..{size} through ImportExperts in {:.1} s ({:.0} experts/s)",
            took.as_secs_f64(),
            f64::from(size - seeded) / took.as_secs_f64()
        ));
        seeded = size;
        let (ids, _) = scenarios::stream_pool(&registry.channel, &school, scenarios::first_slot_day()).await?;
        anyhow::ensure!(ids.len() == size as usize, "a pool of {} after seeding {size}", ids.len());

        // The pool stream alone, as dispatch's PrepareDraw reads it.
        let stream = scenarios::pool_stream(
            &registry,
            &school,
            args.pool_streams,
            size as usize,
            &format!("StreamDrawPool, pool {size}"),
        )
        .await;
        rows.push(stream.clone());

        // Registry reads with their baselines, at the largest size and at 10,000.
        if size == 10_000 || Some(&size) == pools.last() {
            let ids = Arc::new(ids.clone());
            let before = metrics::scrape(registry.metrics).await;
            // GetExpert and its sqlx baseline take turns, a slice each, so that both meet the same
            // moments of a shared machine and their ratio is not the drift between two periods.
            let slice = (read_for / READ_ROUNDS).max(Duration::from_secs(1));
            let (mut get, mut sql) = (Outcome::default(), Outcome::default());
            for _ in 0..READ_ROUNDS {
                let label = format!("GetExpert, {size} experts");
                get.absorb(
                    scenarios::get_expert(reader.clone(), ids.clone(), args.read_concurrency, slice, &label).await,
                );
                sql.absorb(scenarios::sqlx_select(db.clone(), ids.clone(), args.read_concurrency, slice).await);
            }
            let middle = metrics::scrape(registry.metrics).await;
            let list = scenarios::list_experts(
                reader.clone(),
                args.read_concurrency,
                read_for,
                &format!("ListExperts (50), {size} experts"),
            )
            .await;
            let after = metrics::scrape(registry.metrics).await;
            // The bare server answers with the real service's own messages.
            let mut client = RegistryServiceClient::new(reader.clone());
            let one = client.get_expert(GetExpertRequest { id: ids[0].clone() }).await?.into_inner();
            let page = client
                .list_experts(ListExpertsRequest {
                    page: Some(PageRequest { page_size: 50, page_token: String::new() }),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let bare_reader = |addr: std::net::SocketAddr| async move {
                let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))?.connect().await?;
                Ok::<_, anyhow::Error>(identity::with_token(
                    &channel,
                    Some(&identity::token(Role::CountyOperator, Some(Bureau::Xinhui))),
                ))
            };
            let kit_like = bare_reader(baseline::serve_bare(one.clone(), page.clone(), false).await?).await?;
            let nodelay = bare_reader(baseline::serve_bare(one, page, true).await?).await?;
            let bare_get = scenarios::get_expert(
                kit_like.clone(),
                ids.clone(),
                args.read_concurrency,
                read_for,
                "baseline: bare tonic GetExpert",
            )
            .await;
            let bare_list =
                scenarios::list_experts(kit_like, args.read_concurrency, read_for, "baseline: bare tonic ListExperts")
                    .await;
            let fast_get = scenarios::get_expert(
                nodelay.clone(),
                ids.clone(),
                args.read_concurrency,
                read_for,
                "bare tonic GetExpert, TCP_NODELAY",
            )
            .await;
            let fast_list = scenarios::list_experts(
                nodelay,
                args.read_concurrency,
                read_for,
                "bare tonic ListExperts, TCP_NODELAY",
            )
            .await;
            report.header();
            report.outcome(b, &get, &format!("{}; {}", ratio(&get, &sql), ratio(&get, &bare_get)));
            report.outcome(b, &sql, "");
            report.outcome(b, &bare_get, &ratio(&bare_get, &sql));
            report.outcome(b, &list, &ratio(&list, &bare_list));
            report.outcome(b, &bare_list, "");
            report.outcome(b, &fast_get, &ratio(&fast_get, &bare_get));
            report.outcome(b, &fast_list, &ratio(&fast_list, &bare_list));
            report.line(format!(
                "\nregistry's own time per call (its request histogram): during GetExpert: {}; during ListExperts: {}\n\
                 GetExpert's copies (--expert-cache {}): {}\n",
                metrics::describe(&metrics::between(&before, &middle)),
                metrics::describe(&metrics::between(&middle, &after)),
                storage.expert_cache,
                metrics::describe_copies(metrics::copies(&before, &middle)),
            ));
        }

        // The first draw after seeding brings dispatch's copy of the pool up to date with every
        // expert imported since the last (the whole pool at the first size): timed on its own.
        let catch_up = scenarios::sequential_draws(
            &drawers,
            &slots,
            1,
            &format!("first draw after seeding to {size} (dispatch's pool copy catches up)"),
        )
        .await;
        rows.push(catch_up.outcome);

        // Draws from this pool, one after the other, each on its own half-day.
        let (d0, r0) = (metrics::scrape(dispatch.metrics).await, metrics::scrape(registry.metrics).await);
        let run = scenarios::sequential_draws(
            &drawers,
            &slots,
            args.draws,
            &format!("draw (prepare+witness+execute), pool {size}"),
        )
        .await;
        let (d1, r1) = (metrics::scrape(dispatch.metrics).await, metrics::scrape(registry.metrics).await);
        server_side.push((size, metrics::between(&d0, &d1), metrics::between(&r0, &r1)));
        let rank = scenarios::rank_time(&ids)?;
        rows.push(run.outcome.clone());
        breakdown.push((size, run, stream, rank));

        if size == args.hot_pool {
            let hot = scenarios::hot_pool(&drawers, slots.take(), args.hot_concurrency, args.hot_draws).await;
            rows.push(hot);
        }
    }
    report.header();
    for o in &rows {
        report.outcome(b, o, "");
    }
    report.line("\nWhere a draw's time goes (ms, p50 / p99; client-side phases, the pool stream timed alone, the ranking timed in-process):\n");
    report.line("| backend | pool | candidates | draws | prepare | of which pool stream | witness | execute | of which ranking | draw end to end | create task (not in the draw) |");
    report.line("|---|---:|---:|---:|---|---|---|---|---|---|---|");
    for (size, run, stream, rank) in &breakdown {
        report.line(format!(
            "| {b} | {size} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.candidates,
            run.outcome.hist.count(),
            p50_p99(&run.prepare),
            p50_p99(&stream.hist),
            p50_p99(&run.witness),
            p50_p99(&run.execute),
            ms(u64::try_from(rank.as_micros()).unwrap_or(u64::MAX)),
            p50_p99(&run.outcome.hist),
            p50_p99(&run.create_task),
        ));
    }
    report.line("\nThe services' own time per call during those draws (mean ms, from their request histograms):\n");
    for (size, d, r) in &server_side {
        let calls: Vec<metrics::MethodTime> = d.iter().filter(|row| !row.0.starts_with("stage ")).cloned().collect();
        report.line(format!(
            "- {b}, pool {size}: dispatch: {}; registry: {}",
            metrics::describe(&calls),
            metrics::describe(r)
        ));
    }
    report.line(
        "\nDispatch's own time by stage of a draw (mean ms per occurrence, from supervision_draw_stage_seconds; recheck: registry reads of the order's head, with reads per draw):\n",
    );
    report.line(format!("| backend | pool | {} |", metrics::STAGES.join(" | ")));
    report.line(format!("|---|---:|{}", "---:|".repeat(metrics::STAGES.len())));
    for ((size, d, _), (_, run, _, _)) in server_side.iter().zip(&breakdown) {
        let draws = run.outcome.hist.count().max(1);
        let cells: Vec<String> = metrics::STAGES
            .iter()
            .map(|stage| match d.iter().find(|row| row.0 == metrics::stage_row(stage)) {
                Some((_, mean, n)) if *stage == "recheck" => {
                    format!("{mean:.2} ({:.1}/draw)", *n as f64 / draws as f64)
                }
                Some((_, mean, _)) => format!("{mean:.2}"),
                None => "-".to_owned(),
            })
            .collect();
        report.line(format!("| {b} | {size} | {} |", cells.join(" | ")));
    }
    dispatch.stop().await;
    registry.stop().await;

    // The whole path on a deployment of its own: registry, finance, dispatch delivering to it.
    if args.path_passes > 0 {
        let registry = storage.registry().await;
        let finance = storage.finance(&registry).await;
        let dispatch = storage.dispatch(&registry, Some(&finance)).await;
        let admin = registry.as_role(Role::CityAdmin, None);
        let school = scenarios::school(admin.clone()).await?;
        seed::experts(admin, 0, 100).await?;
        let started = Instant::now();
        let path = scenarios::whole_path(&registry, &dispatch, &finance, &school, args.path_passes).await;
        report.line("");
        report.header();
        report.outcome(b, &path.outcome, "");
        report.line(format!(
            "\nwhole path by step (ms, p50 / p99): draw {}; the primaries accept {}; worked session + report {}; AcceptReport {}; AcceptReport -> fee line listed in finance {}; {} passes in {:.1} s",
            p50_p99(&path.draw),
            p50_p99(&path.accept),
            p50_p99(&path.report),
            p50_p99(&path.accept_report),
            p50_p99(&path.fee_visible),
            path.outcome.hist.count(),
            started.elapsed().as_secs_f64()
        ));
        dispatch.stop().await;
        finance.stop().await;
        registry.stop().await;
    }
    Ok(())
}

async fn run_procs(args: ProcArgs) -> anyhow::Result<()> {
    let mut report = Report::default();
    report.line(format!("supbench procs on {} (binaries in {})", machine(), args.bin_dir.display()));
    for backend in args.backend.list() {
        let label = if backend == Backend::Sqlite { "sqlite" } else { "postgres+redis" };
        let reports =
            procs::measure(backend, &args.bin_dir, args.experts, Duration::from_secs(args.load_seconds)).await?;
        report.line(format!("\n## {label}\n"));
        report.line("| service | spawn -> SERVING, fresh database (migrations) ms | spawn -> SERVING, migrated ms | RSS idle MiB | RSS peak under load MiB | VmHWM MiB | load |");
        report.line("|---|---:|---:|---:|---:|---:|---|");
        for (name, r) in reports {
            report.line(format!(
                "| {name} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {} |",
                r.first_start.as_secs_f64() * 1000.0,
                r.restart.as_secs_f64() * 1000.0,
                r.idle_rss_kib as f64 / 1024.0,
                r.load_peak_rss_kib as f64 / 1024.0,
                r.load_hwm_kib as f64 / 1024.0,
                r.load
            ));
        }
    }
    if let Some(out) = &args.out {
        std::fs::write(out, &report.text)?;
    }
    Ok(())
}
