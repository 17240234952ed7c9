//! The metrics port: Prometheus text exposition on `GET /metrics`, from gauges that components
//! register as async probes (calendar coverage, edition days left, outbox backlog, ...).
//!
//! A deliberately small HTTP/1.1 responder: the scraper is the only client, each scrape is one
//! request on its own connection, and nothing else is served.

use std::{fmt::Write as _, sync::Arc, time::Duration};

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

/// The gauges a service exposes.
#[derive(Clone, Default)]
pub struct Metrics {
    probes: Arc<Mutex<Vec<Probe>>>,
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

    /// Every probe's samples in the Prometheus text format (0.0.4), all as gauges.
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
