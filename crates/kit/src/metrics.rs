//! The metrics port: Prometheus text exposition on `GET /metrics`, from gauges that components
//! register as async probes (calendar coverage, edition days left, outbox backlog, ...), and from
//! counters and histograms that the code updates as things happen (requests, lock waits, job
//! runs). `docs/operations.md` lists every series.
//!
//! A deliberately small HTTP/1.1 responder: the scraper is the only client, each scrape is one
//! request on its own connection, and nothing else is served.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Arc, Mutex as SyncMutex},
    time::Duration,
};

use futures::future::BoxFuture;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Mutex,
};

use crate::Shutdown;

/// One measured value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    pub fn new(name: &'static str, help: &'static str, value: f64) -> Self {
        Self { name, help, labels: Vec::new(), value }
    }
}

type Probe = Arc<dyn Fn() -> BoxFuture<'static, Vec<Sample>> + Send + Sync>;

/// Buckets (seconds) for request latencies: 5 ms up to the 30 s request deadline.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Buckets (seconds) for waits and background work: 1 ms up to 5 minutes.
pub const WAIT_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 300.0];

/// The label sets of one family's zero series.
type LabelSets = &'static [&'static [(&'static str, &'static str)]];

/// Counter series of the kit that are shown at zero from their registration rather than after
/// their first event: alerts on `increase()` and dashboards need them before anything went wrong.
const ZERO_SERIES: &[(&str, LabelSets)] = &[
    ("supervision_lock_waits_total", &[&[]]),
    ("supervision_lock_failures_total", &[&[("reason", "busy")], &[("reason", "unavailable")]]),
];

/// The gauges, counters and histograms a service exposes.
#[derive(Clone, Default)]
pub struct Metrics {
    probes: Arc<Mutex<Vec<Probe>>>,
    families: Arc<SyncMutex<BTreeMap<&'static str, Arc<Family>>>>,
}

/// Label values of one series, in the order they were given.
type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Histogram(&'static [f64]),
}

#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    series: SyncMutex<BTreeMap<Labels, Series>>,
}

#[derive(Debug, Clone)]
enum Series {
    Counter(f64),
    /// Per-bucket (not cumulative) counts, with one more for above the last bound.
    Histogram {
        counts: Vec<u64>,
        sum: f64,
        count: u64,
    },
}

fn owned_labels(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Family {
    fn series(&self) -> std::sync::MutexGuard<'_, BTreeMap<Labels, Series>> {
        self.series.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A monotonically increasing count, by labels.
#[derive(Debug, Clone)]
pub struct Counter {
    family: Arc<Family>,
}

impl Counter {
    /// Adds one to the series with `labels`.
    pub fn inc(&self, labels: &[(&'static str, &str)]) {
        self.add(labels, 1.0);
    }

    /// Adds `by` (not negative) to the series with `labels`.
    pub fn add(&self, labels: &[(&'static str, &str)], by: f64) {
        let mut series = self.family.series();
        let entry = series.entry(owned_labels(labels)).or_insert(Series::Counter(0.0));
        if let Series::Counter(value) = entry {
            *value += by.max(0.0);
        }
    }

    /// The current value of the series with `labels` (0 when it has none yet).
    pub fn get(&self, labels: &[(&'static str, &str)]) -> f64 {
        match self.family.series().get(&owned_labels(labels)) {
            Some(Series::Counter(value)) => *value,
            _ => 0.0,
        }
    }
}

/// A distribution of observed values (durations in seconds), by labels.
#[derive(Debug, Clone)]
pub struct Histogram {
    family: Arc<Family>,
}

impl Histogram {
    /// Records `value` in the series with `labels`.
    pub fn observe(&self, labels: &[(&'static str, &str)], value: f64) {
        let Kind::Histogram(bounds) = self.family.kind else { return };
        let mut series = self.family.series();
        let entry = series.entry(owned_labels(labels)).or_insert_with(|| Series::Histogram {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        });
        if let Series::Histogram { counts, sum, count } = entry {
            let bucket = bounds.iter().position(|bound| value <= *bound).unwrap_or(bounds.len());
            counts[bucket] += 1;
            *sum += value;
            *count += 1;
        }
    }

    /// How many values the series with `labels` has recorded.
    pub fn count(&self, labels: &[(&'static str, &str)]) -> u64 {
        match self.family.series().get(&owned_labels(labels)) {
            Some(Series::Histogram { count, .. }) => *count,
            _ => 0,
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a probe, asked for its samples at every scrape.
    pub async fn register<F>(&self, probe: F)
    where
        F: Fn() -> BoxFuture<'static, Vec<Sample>> + Send + Sync + 'static,
    {
        self.probes.lock().await.push(Arc::new(probe));
    }

    /// The counter `name`, registered on first use (later calls share it).
    pub fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        Counter { family: self.family(name, help, Kind::Counter) }
    }

    /// The histogram `name` with upper bucket bounds `buckets` (ascending), registered on first
    /// use (later calls share it, with its first buckets).
    pub fn histogram(&self, name: &'static str, help: &'static str, buckets: &'static [f64]) -> Histogram {
        Histogram { family: self.family(name, help, Kind::Histogram(buckets)) }
    }

    fn family(&self, name: &'static str, help: &'static str, kind: Kind) -> Arc<Family> {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families
            .entry(name)
            .or_insert_with(|| {
                let mut series = BTreeMap::new();
                if matches!(kind, Kind::Counter) {
                    for labels in ZERO_SERIES.iter().filter(|(n, _)| *n == name).flat_map(|(_, sets)| *sets) {
                        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
                        series.insert(labels, Series::Counter(0.0));
                    }
                }
                Arc::new(Family { name, help, kind, series: SyncMutex::new(series) })
            })
            .clone();
        debug_assert!(
            std::mem::discriminant(&family.kind) == std::mem::discriminant(&kind),
            "metric {name} registered as both a counter and a histogram"
        );
        family
    }

    /// Every probe's samples (as gauges), then every counter and histogram, in the Prometheus
    /// text format (0.0.4).
    pub async fn render(&self) -> String {
        let probes: Vec<Probe> = self.probes.lock().await.clone();
        let mut samples = Vec::new();
        for probe in probes {
            samples.extend(probe().await);
        }
        samples.sort_by(|a, b| a.name.cmp(b.name));
        let mut out = String::new();
        let mut last = "";
        for s in &samples {
            if s.name != last {
                let _ = writeln!(out, "# HELP {} {}", s.name, s.help);
                let _ = writeln!(out, "# TYPE {} gauge", s.name);
                last = s.name;
            }
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(out, "{} {}", s.name, s.value);
            } else {
                let _ = writeln!(out, "{}{{{}}} {}", s.name, labels.join(","), s.value);
            }
        }
        let families: Vec<Arc<Family>> =
            self.families.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        for family in families {
            render_family(&mut out, &family);
        }
        out
    }

    /// Serves `/metrics` on `listener` until `shutdown`.
    pub fn serve(self, listener: TcpListener, shutdown: Shutdown) {
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = shutdown.wait() => break,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut stream, _)) = accepted else { continue };
                let metrics = self.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
                    let Ok(Ok(n)) = read else { return };
                    let request = String::from_utf8_lossy(&buf[..n]);
                    let response = if request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
                        let body = metrics.render().await;
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                    };
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
    }
}

fn label_text(labels: &[(&'static str, String)], extra: Option<(&str, &str)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() { String::new() } else { format!("{{{}}}", parts.join(",")) }
}

fn render_family(out: &mut String, family: &Family) {
    let series = family.series().clone();
    if series.is_empty() {
        return;
    }
    let name = family.name;
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Histogram(_) => "histogram",
    };
    let _ = writeln!(out, "# HELP {name} {}", family.help);
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in &series {
        match (value, &family.kind) {
            (Series::Counter(v), _) => {
                let _ = writeln!(out, "{name}{} {v}", label_text(labels, None));
            }
            (Series::Histogram { counts, sum, count }, Kind::Histogram(bounds)) => {
                let mut cumulative = 0;
                for (bound, n) in bounds.iter().zip(counts) {
                    cumulative += n;
                    let le = bound.to_string();
                    let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_text(labels, Some(("le", &le))));
                }
                let _ = writeln!(out, "{name}_bucket{} {count}", label_text(labels, Some(("le", "+Inf"))));
                let _ = writeln!(out, "{name}_sum{} {sum}", label_text(labels, None));
                let _ = writeln!(out, "{name}_count{} {count}", label_text(labels, None));
            }
            (Series::Histogram { .. }, Kind::Counter) => {}
        }
    }
}

/// The kit's own gauges for `db`: outbox backlog and age, and the audit chain's length.
pub fn storage_probe(
    db: crate::Db,
    clock: crate::SharedClock,
) -> impl Fn() -> BoxFuture<'static, Vec<Sample>> + Send + Sync {
    move || {
        let (db, clock) = (db.clone(), clock.clone());
        Box::pin(async move {
            let mut samples = Vec::new();
            if let Ok((backlog, oldest)) = crate::outbox::backlog(&db).await {
                samples.push(Sample::new(
                    "supervision_outbox_backlog",
                    "Outbox rows not yet delivered",
                    backlog as f64,
                ));
                let age = oldest
                    .and_then(|o| crate::storage::parse_instant(&o).ok())
                    .map_or(0.0, |o| (clock.now() - o).num_seconds().max(0) as f64);
                samples.push(Sample::new(
                    "supervision_outbox_oldest_age_seconds",
                    "Age of the oldest undelivered outbox row",
                    age,
                ));
            }
            if let Ok(parked) = crate::outbox::parked(&db).await {
                samples.push(Sample::new(
                    "supervision_outbox_parked",
                    "Outbox rows refused for good by their callee, waiting for an operator",
                    parked as f64,
                ));
            }
            if let Ok(head) = crate::audit::head(db.pool()).await {
                samples.push(Sample::new(
                    "supervision_audit_head_sequence",
                    "Entries in the audit chain",
                    head.seq as f64,
                ));
            }
            samples.push(Sample::new(
                "supervision_storage_up",
                "1 when the database answers",
                if db.is_reachable().await { 1.0 } else { 0.0 },
            ));
            samples
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn samples_render_in_the_text_format() {
        let metrics = Metrics::new();
        metrics
            .register(|| {
                Box::pin(async {
                    vec![
                        Sample::new("b_total", "B things", 2.0),
                        Sample { labels: vec![("year", "2027".into())], ..Sample::new("a_flag", "A flag", 1.0) },
                    ]
                })
            })
            .await;
        assert_eq!(
            metrics.render().await,
            "# HELP a_flag A flag\n# TYPE a_flag gauge\na_flag{year=\"2027\"} 1\n# HELP b_total B things\n# TYPE b_total gauge\nb_total 2\n"
        );
    }

    #[tokio::test]
    async fn counters_and_histograms_render_after_the_gauges() {
        let metrics = Metrics::new();
        metrics.register(|| Box::pin(async { vec![Sample::new("up", "Up", 1.0)] })).await;
        let requests = metrics.counter("x_requests_total", "Requests");
        requests.inc(&[("method", "/a.B/C"), ("code", "OK")]);
        requests.inc(&[("method", "/a.B/C"), ("code", "OK")]);
        metrics.counter("x_requests_total", "Requests").inc(&[("method", "/a.B/C"), ("code", "NOT_FOUND")]);
        assert_eq!(requests.get(&[("method", "/a.B/C"), ("code", "OK")]), 2.0);
        let latency = metrics.histogram("x_seconds", "Latency", &[0.1, 1.0]);
        latency.observe(&[("method", "m\"q")], 0.05);
        latency.observe(&[("method", "m\"q")], 0.5);
        latency.observe(&[("method", "m\"q")], 7.0);
        assert_eq!(latency.count(&[("method", "m\"q")]), 3);
        metrics.counter("x_unused_total", "Nothing yet");
        assert_eq!(
            metrics.render().await,
            "# HELP up Up\n# TYPE up gauge\nup 1\n\
             # HELP x_requests_total Requests\n# TYPE x_requests_total counter\n\
             x_requests_total{method=\"/a.B/C\",code=\"NOT_FOUND\"} 1\n\
             x_requests_total{method=\"/a.B/C\",code=\"OK\"} 2\n\
             # HELP x_seconds Latency\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{method=\"m\\\"q\",le=\"0.1\"} 1\n\
             x_seconds_bucket{method=\"m\\\"q\",le=\"1\"} 2\n\
             x_seconds_bucket{method=\"m\\\"q\",le=\"+Inf\"} 3\n\
             x_seconds_sum{method=\"m\\\"q\"} 7.55\n\
             x_seconds_count{method=\"m\\\"q\"} 3\n"
        );
    }

    #[tokio::test]
    async fn lock_waits_and_failures_show_at_zero_before_any_event() {
        let metrics = Metrics::new();
        metrics.counter("supervision_lock_waits_total", "Waits");
        metrics.counter("supervision_lock_failures_total", "Failures").inc(&[("reason", "busy")]);
        let body = metrics.render().await;
        for line in [
            "supervision_lock_waits_total 0",
            "supervision_lock_failures_total{reason=\"busy\"} 1",
            "supervision_lock_failures_total{reason=\"unavailable\"} 0",
        ] {
            assert!(body.lines().any(|l| l == line), "{line:?} missing from\n{body}");
        }
    }

    #[tokio::test]
    async fn the_port_answers_a_scrape() {
        let metrics = Metrics::new();
        metrics.register(|| Box::pin(async { vec![Sample::new("up", "Up", 1.0)] })).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        metrics.serve(listener, shutdown.clone());
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"));
        assert!(answer.ends_with("up 1\n"));
        shutdown.trigger();
    }
}
