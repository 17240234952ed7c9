//! Server-side time by method, from the services' own Prometheus histograms
//! (`supervision_grpc_request_duration_seconds`, docs/operations.md): scraped before and after a
//! scenario, the difference of `_sum` over the difference of `_count` is the mean time the
//! service spent per call, from receiving the request to its answer. Set beside the client's
//! latency, it tells the service's own work from the transport's. Dispatch's
//! `supervision_draw_stage_seconds` gives the same by stage of a draw ([`STAGES`]).

use std::{collections::BTreeMap, net::SocketAddr};

/// `(sum of seconds, count)` by series name and method.
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<(String, String), (f64, u64)>);

const SERIES: [&str; 3] =
    ["supervision_grpc_request_duration_seconds", "supervision_draw_execution_seconds", STAGE_SERIES];

/// Dispatch's time per stage of a draw, labelled `stage`.
const STAGE_SERIES: &str = "supervision_draw_stage_seconds";

/// The stages of [`STAGE_SERIES`] in a draw's order (services/dispatch/src/metrics.rs).
pub const STAGES: [&str; 7] =
    ["pool_stream", "exclusions", "prepare_record", "ranking", "recheck", "fence", "execute_record"];

/// The name [`between`] gives a stage's row.
pub fn stage_row(stage: &str) -> String {
    format!("stage {stage}")
}

/// The registry's GetExpert reads by how its copy of the expert served (docs/operations.md),
/// kept in a [`Snapshot`] as `(value, 0)` by outcome.
const COPIES_SERIES: &str = "registry_expert_cache_reads_total";

/// The outcomes of [`COPIES_SERIES`].
pub const COPY_OUTCOMES: [&str; 3] = ["hit", "changed", "miss"];

pub async fn scrape(addr: Option<SocketAddr>) -> Snapshot {
    let Some(addr) = addr else { return Snapshot::default() };
    let body = testkit::scrape_metrics(addr).await;
    let mut out: BTreeMap<(String, String), (f64, u64)> = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix(&format!("{COPIES_SERIES}{{outcome=\"")) {
            if let Some((outcome, value)) = rest.split_once("\"} ") {
                out.insert((COPIES_SERIES.to_owned(), outcome.to_owned()), (value.parse().unwrap_or(0.0), 0));
            }
            continue;
        }
        for series in SERIES {
            let (is_sum, rest) = if let Some(r) = line.strip_prefix(&format!("{series}_sum")) {
                (true, r)
            } else if let Some(r) = line.strip_prefix(&format!("{series}_count")) {
                (false, r)
            } else {
                continue;
            };
            let (labels, value) = match rest.rsplit_once(' ') {
                Some(pair) => pair,
                None => continue,
            };
            let label = if series == STAGE_SERIES { "stage=\"" } else { "method=\"" };
            let method = labels
                .split(label)
                .nth(1)
                .and_then(|m| m.split('"').next())
                .unwrap_or("")
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_owned();
            let entry = out.entry((series.to_owned(), method)).or_default();
            if is_sum {
                entry.0 += value.parse::<f64>().unwrap_or(0.0);
            } else {
                entry.1 += value.parse::<f64>().map_or(0, |v| v as u64);
            }
        }
    }
    Snapshot(out)
}

/// GetExpert's reads between two snapshots by [`COPY_OUTCOMES`].
pub fn copies(before: &Snapshot, after: &Snapshot) -> [u64; 3] {
    COPY_OUTCOMES.map(|outcome| {
        let key = (COPIES_SERIES.to_owned(), outcome.to_owned());
        let value = |s: &Snapshot| s.0.get(&key).map_or(0.0, |v| v.0);
        (value(after) - value(before)).max(0.0) as u64
    })
}

/// [`copies`] as a line of the report.
pub fn describe_copies(copies: [u64; 3]) -> String {
    let all: u64 = copies.iter().sum();
    if all == 0 {
        return "none counted (no copies on this backend, or the cache is off)".to_owned();
    }
    let parts: Vec<String> = COPY_OUTCOMES.iter().zip(copies).map(|(o, n)| format!("{o} {n}")).collect();
    format!("{} ({:.1} % answered from a copy)", parts.join(", "), copies[0] as f64 * 100.0 / all as f64)
}

/// One method's mean server-side milliseconds and its number of calls.
pub type MethodTime = (String, f64, u64);

/// Mean server-side milliseconds and calls by method between two snapshots, busiest first.
pub fn between(before: &Snapshot, after: &Snapshot) -> Vec<MethodTime> {
    let mut rows = Vec::new();
    for ((series, method), (sum, count)) in &after.0 {
        let (sum0, count0) = before.0.get(&(series.clone(), method.clone())).copied().unwrap_or_default();
        let n = count.saturating_sub(count0);
        if n == 0 || method.starts_with("Check") {
            continue;
        }
        let name = if series == STAGE_SERIES {
            stage_row(method)
        } else if series.starts_with("supervision_draw") {
            "draw execution (dispatch's own timer)".to_owned()
        } else {
            method.clone()
        };
        rows.push((name, (sum - sum0) * 1000.0 / n as f64, n));
    }
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    rows
}

/// `Method mean ms (n calls)`, joined.
pub fn describe(rows: &[MethodTime]) -> String {
    rows.iter().map(|(m, ms, n)| format!("{m} {ms:.2} ms (n={n})")).collect::<Vec<_>>().join("; ")
}
