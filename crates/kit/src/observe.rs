//! Per-request telemetry on the server side, as a tower layer outside the auth layer: one span
//! per RPC, named after the method and a child of the caller's W3C trace context, with its gRPC
//! status code; and the request counter and latency histogram of the metrics port.
//!
//! Methods are labelled by their path only when the RPC roles table (or the open health and
//! reflection services) knows them; anything else is `unknown`, so a caller cannot grow the
//! metrics or write arbitrary text into spans by inventing paths.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures::future::BoxFuture;
use tonic::Code;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    access::{AccessTable, is_open},
    metrics::{Counter, Histogram, LATENCY_BUCKETS, Metrics},
    telemetry,
};

/// The label of requests to paths no table names.
pub const UNKNOWN_METHOD: &str = "unknown";

#[derive(Debug)]
struct Instruments {
    table: AccessTable,
    requests: Counter,
    latency: Histogram,
}

impl Instruments {
    fn method_label(&self, path: &str) -> String {
        if is_open(path) || self.table.rule(path).is_some() { path.to_owned() } else { UNKNOWN_METHOD.to_owned() }
    }
}

/// Spans and request metrics for every gRPC request.
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    instruments: Arc<Instruments>,
}

impl ObserveLayer {
    /// Records into `metrics`; `table` names the methods that get their own label.
    pub fn new(metrics: &Metrics, table: AccessTable) -> Self {
        Self {
            instruments: Arc::new(Instruments {
                table,
                requests: metrics
                    .counter("supervision_grpc_requests_total", "gRPC requests answered, by method and status code"),
                latency: metrics.histogram(
                    "supervision_grpc_request_duration_seconds",
                    "Time to answer a gRPC request, by method",
                    LATENCY_BUCKETS,
                ),
            }),
        }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObserveService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObserveService { inner, instruments: self.instruments.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct ObserveService<S> {
    inner: S,
    instruments: Arc<Instruments>,
}

impl<S, B> tower::Service<http::Request<B>> for ObserveService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = self.instruments.method_label(path);
        // Probes ask every few seconds; they are counted but not traced.
        let span = if path.starts_with("/grpc.health.v1.Health/") {
            tracing::Span::none()
        } else {
            let name = method.strip_prefix('/').unwrap_or(&method);
            let span = tracing::info_span!(
                "rpc",
                otel.name = %name,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.method = %method,
                rpc.grpc.status_code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            // Without a `traceparent` the span starts a trace of its own.
            let _ = span.set_parent(telemetry::extract(request.headers()));
            span
        };
        let future = span.in_scope(|| self.inner.call(request));
        let outcome = Outcome {
            instruments: self.instruments.clone(),
            method,
            span: span.clone(),
            started: Instant::now(),
            recorded: false,
        };
        Box::pin(async move {
            let mut outcome = outcome;
            let result = future.instrument(span).await;
            let code = match &result {
                // A handler's error travels in the headers (trailers-only response); a success
                // ends with OK in the trailers.
                Ok(response) => {
                    response.headers().get("grpc-status").map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes()))
                }
                Err(_) => Code::Internal,
            };
            outcome.record(code);
            result
        })
    }
}

/// Records a request's outcome once: when it is answered, or as CANCELLED when its future is
/// dropped first (the client went away or the deadline passed).
struct Outcome {
    instruments: Arc<Instruments>,
    method: String,
    span: tracing::Span,
    started: Instant,
    recorded: bool,
}

impl Outcome {
    fn record(&mut self, code: Code) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let name = code_name(code);
        self.instruments.requests.inc(&[("method", &self.method), ("code", name)]);
        self.instruments.latency.observe(&[("method", &self.method)], self.started.elapsed().as_secs_f64());
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_server_fault(code) {
            self.span.record("otel.status_code", "ERROR");
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// Codes that mean the server failed, which mark the span as an error (OpenTelemetry's gRPC
/// conventions); the caller's mistakes (INVALID_ARGUMENT, NOT_FOUND, ...) do not.
fn is_server_fault(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The canonical name of a gRPC status code, as the `code` label shows it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service, ServiceExt};

    use super::*;

    const KNOWN: &str = "/supervision.registry.v1.RegistryService/GetInstitution";

    #[tokio::test]
    async fn requests_are_counted_by_method_and_code_and_unknown_paths_share_a_label() {
        let metrics = Metrics::new();
        let layer = ObserveLayer::new(&metrics, AccessTable::shipped().unwrap());
        for (path, code) in [
            (KNOWN, None),
            (KNOWN, Some(Code::NotFound)),
            ("/made.Up/Path13812345678", Some(Code::Unauthenticated)),
            ("/grpc.health.v1.Health/Check", None),
        ] {
            let request = http::Request::builder().uri(format!("http://x{path}")).body(()).unwrap();
            let answering = tower::service_fn(move |_request: http::Request<()>| async move {
                Ok::<_, Infallible>(match code {
                    Some(code) => tonic::Status::new(code, "no").into_http(),
                    None => http::Response::new(tonic::body::Body::empty()),
                })
            });
            layer.layer(answering).ready().await.unwrap().call(request).await.unwrap();
        }
        let requests = metrics.counter("supervision_grpc_requests_total", "");
        assert_eq!(requests.get(&[("method", KNOWN), ("code", "OK")]), 1.0);
        assert_eq!(requests.get(&[("method", KNOWN), ("code", "NOT_FOUND")]), 1.0);
        assert_eq!(requests.get(&[("method", UNKNOWN_METHOD), ("code", "UNAUTHENTICATED")]), 1.0);
        assert_eq!(requests.get(&[("method", "/grpc.health.v1.Health/Check"), ("code", "OK")]), 1.0);
        let rendered = metrics.render().await;
        assert!(!rendered.contains("13812345678"), "{rendered}");
        assert!(rendered.contains(&format!("supervision_grpc_request_duration_seconds_count{{method=\"{KNOWN}\"}} 2")));
    }

    #[tokio::test]
    async fn a_dropped_request_counts_as_cancelled() {
        let metrics = Metrics::new();
        let layer = ObserveLayer::new(&metrics, AccessTable::shipped().unwrap());
        let never = tower::service_fn(|_request: http::Request<()>| {
            futures::future::pending::<Result<http::Response<tonic::body::Body>, Infallible>>()
        });
        let request = http::Request::builder().uri(format!("http://x{KNOWN}")).body(()).unwrap();
        let pending = layer.layer(never).ready().await.unwrap().call(request);
        drop(pending);
        let requests = metrics.counter("supervision_grpc_requests_total", "");
        assert_eq!(requests.get(&[("method", KNOWN), ("code", "CANCELLED")]), 1.0);
    }
}
