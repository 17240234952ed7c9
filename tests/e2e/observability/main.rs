//! Observability end to end: spans reach an OTLP collector (a fake one, in-process) in one trace
//! across a caller and a callee, and the metrics port counts requests.
//!
//! The log subscriber and the tracer provider are process-global, so this binary installs them
//! once (as a service's `main` does, through `CommonArgs::init_telemetry`) on a runtime of its own
//! that outlives every test, next to the fake collector.

mod metrics;
mod personal_data;
mod scenario;
mod traces;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::{AnyValue, any_value},
};
use supervision_kit::telemetry::{LogFormat, Telemetry};
use tokio_stream::wrappers::TcpListenerStream;

/// One span as the collector received it, ids in lower-case hex.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Vec<(String, String)>,
    /// Event names and attribute values, for the personal-data check.
    events: Vec<String>,
    /// The status message (set on errors).
    status_message: String,
}

impl Received {
    /// Everything the span carries, as one JSON object (what a child process reports).
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "service": self.service,
            "name": self.name,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "attributes": self.attributes,
            "events": self.events,
            "status_message": self.status_message,
        })
    }

    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Default)]
struct FakeCollector {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl TraceService for FakeCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                received.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    attributes: span.attributes.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect(),
                    events: span
                        .events
                        .iter()
                        .flat_map(|e| {
                            std::iter::once(e.name.clone()).chain(e.attributes.iter().map(|kv| text(kv.value.as_ref())))
                        })
                        .collect(),
                    status_message: span.status.map(|s| s.message).unwrap_or_default(),
                });
            }
        }
        self.spans.lock().unwrap().extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The fake collector and the process's telemetry, shared by every test of this binary.
struct Harness {
    collector: FakeCollector,
    telemetry: Telemetry,
    // Hosts the collector and the exporter's channel for as long as the process runs.
    _runtime: tokio::runtime::Runtime,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

/// Starts the fake collector on `127.0.0.1:0` and installs telemetry exporting to it, as the
/// registry's `main` does with `OTEL_EXPORTER_OTLP_ENDPOINT` set.
fn harness() -> &'static Harness {
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the collector");
        let _entered = runtime.enter();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let collector = FakeCollector::default();
        let server = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener));
        runtime.spawn(server);

        // The personal-data check's child process logs JSON, as the manifests set it.
        let log_format = if personal_data::is_child() { LogFormat::Json } else { LogFormat::Text };
        let common = supervision_kit::app::CommonArgs {
            otlp_endpoint: Some(format!("http://{addr}")),
            log_format,
            ..testkit::common_args(None)
        };
        let telemetry = common.init_telemetry("registry").expect("telemetry starts");
        assert!(telemetry.is_exporting());
        Harness { collector, telemetry, _runtime: runtime }
    })
}

impl Harness {
    /// Flushes the exporter, then waits until the spans received satisfy `done` (at most 10 s).
    async fn spans_until(&self, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let telemetry = &self.telemetry;
            // Flushing blocks until the exporter answers.
            tokio::task::block_in_place(|| telemetry.flush());
            let spans = self.collector.spans.lock().unwrap().clone();
            if done(&spans) {
                return spans;
            }
            assert!(tokio::time::Instant::now() < deadline, "spans never arrived; received: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A random W3C trace id (32 hex digits).
fn random_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A random W3C span id (16 hex digits).
fn random_span_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_owned()
}
