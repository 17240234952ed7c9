//! Telemetry set-up: logs (readable lines locally, JSON in a cluster, filtered by `RUST_LOG`,
//! with the trace id, personal numbers masked), traces (exported over OTLP/gRPC when an endpoint
//! is configured) and the W3C trace context that joins the services' spans into one trace.
//!
//! Every process builds a tracer provider, also without an exporter, so that spans have trace ids
//! for the logs and a caller's trace context travels on through this service's own calls.

use std::{collections::HashMap, fmt::Write as _};

use clap::ValueEnum;
use opentelemetry::{
    Context, KeyValue, Value,
    propagation::TextMapPropagator,
    trace::{Status, TraceContextExt, TracerProvider as _},
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use tracing::{Event, Subscriber, field::Field};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter,
    fmt::{self, FmtContext, FormatEvent, FormatFields, FormattedFields, format::Writer},
    prelude::*,
    registry::LookupSpan,
};

use crate::redact::redact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up OTLP export to {endpoint}: {source}")]
    Exporter { endpoint: String, source: opentelemetry_otlp::ExporterBuildError },
}

/// Keeps trace export running; dropping it flushes the spans still buffered and stops the
/// exporter. `main` holds it until the service has stopped.
#[must_use = "dropping the guard stops trace export"]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("exporting", &self.exporting).finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Sends every finished span now (blocks until the exporter answers or gives up).
    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            tracing::warn!(error = %err, "flushing spans failed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if self.exporting {
            let _ = self.provider.force_flush();
        }
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber (logs in `format`, spans to the tracer of `service`) and, when
/// `otlp_endpoint` is set (`http://collector:4317`), exports spans there with the resource
/// `service.name = service`. Later calls in the same process (several services in one test)
/// keep the first subscriber. Call it inside the Tokio runtime: the exporter's channel lives there.
pub fn init(
    service: &'static str,
    format: LogFormat,
    otlp_endpoint: Option<&str>,
) -> Result<Telemetry, TelemetryError> {
    let mut builder =
        SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service).build());
    let endpoint = otlp_endpoint.map(str::trim).filter(|e| !e.is_empty());
    if let Some(endpoint) = endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|source| TelemetryError::Exporter { endpoint: endpoint.to_owned(), source })?;
        builder = builder.with_batch_exporter(Redacting(exporter));
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let spans = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
    let registry = tracing_subscriber::registry().with(filter).with(spans);
    let installed = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(false).fmt_fields(redacting_fields())).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().event_format(JsonLines)).try_init(),
    };
    if installed.is_ok() {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    if let Some(endpoint) = endpoint {
        tracing::info!(service, endpoint, "exporting spans over OTLP");
    }
    Ok(Telemetry { provider, exporting: endpoint.is_some() })
}

// ---------------------------------------------------------------------------------------------
// W3C trace context

/// The W3C trace context of `cx` as header name and value pairs (`traceparent`, and
/// `tracestate` when there is one); empty when `cx` has no valid span.
pub fn headers_of(cx: &Context) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier
}

/// The current span's trace context, serialised for storage (the outbox's `trace_context`
/// column): a JSON object of W3C headers, or an empty string outside any trace.
pub fn current_trace_context() -> String {
    let headers = headers_of(&tracing::Span::current().context());
    if headers.is_empty() { String::new() } else { serde_json::to_string(&headers).unwrap_or_default() }
}

/// The context stored by [`current_trace_context`]: the parent for work done later on its behalf.
/// An empty or unreadable value gives an empty context (the work starts a trace of its own).
pub fn stored_trace_context(stored: &str) -> Context {
    let headers: HashMap<String, String> = serde_json::from_str(stored).unwrap_or_default();
    TraceContextPropagator::new().extract_with_context(&Context::new(), &headers)
}

/// The trace context an incoming request carries in its `traceparent` header (an empty context
/// when it carries none).
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract_with_context(&Context::new(), &HeaderExtractor(headers))
}

/// Writes `cx`'s trace context into outgoing gRPC metadata.
pub fn inject(cx: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(metadata.as_mut()));
}

/// Writes the current span's trace context into outgoing gRPC metadata, so the callee's span
/// joins this trace.
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) {
    inject(&tracing::Span::current().context(), metadata);
}

/// A client interceptor for synchronous calls to other services:
/// `XClient::with_interceptor(channel, PropagateTrace)` (or chained into an existing
/// interceptor) sends the current span's trace context with every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateTrace;

impl tonic::service::Interceptor for PropagateTrace {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject_current(request.metadata_mut());
        Ok(request)
    }
}

/// The trace id (32 lower-case hex digits) of `span`, when it belongs to a trace.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

// ---------------------------------------------------------------------------------------------
// Spans leave the process without personal numbers

/// Masks personal numbers in every attribute, event and status of the spans it passes on, a
/// last guard behind the masking done where text enters a span.
#[derive(Debug)]
struct Redacting<E>(E);

impl<E: SpanExporter> SpanExporter for Redacting<E> {
    fn export(&self, mut batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        for span in &mut batch {
            redact_name(&mut span.name);
            redact_attributes(&mut span.attributes);
            for event in span.events.events.iter_mut() {
                // A tracing event's message becomes the span event's name.
                redact_name(&mut event.name);
                redact_attributes(&mut event.attributes);
            }
            if let Status::Error { description } = &mut span.status
                && let std::borrow::Cow::Owned(masked) = redact(description)
            {
                *description = masked.into();
            }
        }
        self.0.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

fn redact_name(name: &mut std::borrow::Cow<'static, str>) {
    if let std::borrow::Cow::Owned(masked) = redact(name) {
        *name = masked.into();
    }
}

fn redact_attributes(attributes: &mut [KeyValue]) {
    for attribute in attributes {
        let masked = match &attribute.value {
            Value::String(s) => match redact(s.as_str()) {
                std::borrow::Cow::Owned(masked) => Some(masked),
                std::borrow::Cow::Borrowed(_) => None,
            },
            Value::I64(n) => match redact(&n.to_string()) {
                std::borrow::Cow::Owned(masked) => Some(masked),
                std::borrow::Cow::Borrowed(_) => None,
            },
            _ => None,
        };
        if let Some(masked) = masked {
            attribute.value = Value::String(masked.into());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Log lines

/// Text fields with personal numbers masked: `message` as is, others as `name=value`.
fn redacting_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    fmt::format::debug_fn(|writer: &mut Writer<'_>, field: &Field, value: &dyn std::fmt::Debug| {
        let text = format!("{value:?}");
        let text = redact(&text);
        if field.name() == "message" { write!(writer, "{text}") } else { write!(writer, "{}={text}", field.name()) }
    })
    .delimited(" ")
}

/// One JSON object per event: `timestamp`, `level`, `target`, `message`, the event's other
/// `fields`, the current `span` and all `spans` (name and fields, root first), and `trace_id` and
/// `span_id` of the current span when it belongs to a trace. Every string is masked.
#[derive(Debug, Clone, Copy)]
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        use serde_json::{Map, Value as Json};
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            Json::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Json::String(meta.level().as_str().to_owned()));
        line.insert("target".into(), Json::String(meta.target().to_owned()));
        let mut fields = JsonFieldsVisitor::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        if !fields.is_empty() {
            line.insert("fields".into(), Json::Object(fields));
        }
        if let Some(scope) = ctx.event_scope() {
            let mut spans = Vec::new();
            for span in scope.from_root() {
                let mut entry = Map::new();
                entry.insert("name".into(), Json::String(span.name().to_owned()));
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Json::Object(map)) = serde_json::from_str::<Json>(formatted.as_str())
                {
                    for (key, value) in map {
                        entry.insert(key, redact_json(value));
                    }
                }
                spans.push(Json::Object(entry));
            }
            if let Some(current) = spans.last() {
                line.insert("span".into(), current.clone());
            }
            if !spans.is_empty() {
                line.insert("spans".into(), Json::Array(spans));
            }
        }
        // The OpenTelemetry layer attaches the entered span's context to the thread.
        let cx = Context::current();
        let otel_span = cx.span();
        let sc = otel_span.span_context();
        if sc.is_valid() {
            line.insert("trace_id".into(), Json::String(sc.trace_id().to_string()));
            line.insert("span_id".into(), Json::String(sc.span_id().to_string()));
        }
        writeln!(writer, "{}", Json::Object(line))
    }
}

fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as Json;
    match value {
        Json::String(s) => Json::String(redact(&s).into_owned()),
        Json::Number(n) => match redact(&n.to_string()) {
            std::borrow::Cow::Owned(masked) => Json::String(masked),
            std::borrow::Cow::Borrowed(_) => Json::Number(n),
        },
        Json::Array(items) => Json::Array(items.into_iter().map(redact_json).collect()),
        Json::Object(map) => Json::Object(map.into_iter().map(|(k, v)| (k, redact_json(v))).collect()),
        other => other,
    }
}

/// An event's fields as JSON values, masked.
#[derive(Default)]
struct JsonFieldsVisitor(serde_json::Map<String, serde_json::Value>);

impl JsonFieldsVisitor {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        self.0.insert(field.name().to_owned(), redact_json(value));
    }
}

impl tracing::field::Visit for JsonFieldsVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, serde_json::Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.put(field, serde_json::Value::String(text));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> fmt::MakeWriter<'a> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn lines_logged(format: LogFormat, log: impl FnOnce()) -> String {
        let provider = SdkTracerProvider::builder().build();
        let buffer = Buffer::default();
        let spans = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        let registry = tracing_subscriber::registry().with(spans);
        match format {
            LogFormat::Text => {
                let layer = fmt::layer().with_ansi(false).fmt_fields(redacting_fields()).with_writer(buffer.clone());
                tracing::subscriber::with_default(registry.with(layer), log);
            }
            LogFormat::Json => {
                let layer = fmt::layer().json().event_format(JsonLines).with_writer(buffer.clone());
                tracing::subscriber::with_default(registry.with(layer), log);
            }
        }
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_the_trace_id_and_no_personal_number() {
        let mut trace_id = None;
        let out = lines_logged(LogFormat::Json, || {
            let span = tracing::info_span!("rpc", method = "/a.B/C", note = "tel 13812345678");
            trace_id = trace_id_of(&span);
            let _entered = span.enter();
            tracing::warn!(
                error = "身份证 440701199003071234 已登记",
                account = 6222021234567890_u64,
                "refused 13912345678"
            );
        });
        let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "refused 139****5678");
        assert_eq!(line["fields"]["error"], "身份证 440***********1234 已登记");
        assert_eq!(line["fields"]["account"], "************7890");
        assert_eq!(line["span"]["name"], "rpc");
        assert_eq!(line["span"]["method"], "/a.B/C");
        assert_eq!(line["span"]["note"], "tel 138****5678");
        let trace_id = trace_id.expect("the span belongs to a trace");
        assert_eq!(line["trace_id"], trace_id.as_str());
        assert_eq!(line["span_id"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn text_lines_mask_personal_numbers_too() {
        let out = lines_logged(LogFormat::Text, || {
            tracing::info!(phone = "13812345678", "created for 440701199003071234");
        });
        assert!(out.contains("created for 440***********1234"), "{out}");
        assert!(out.contains("phone=\"138****5678\""), "{out}");
        assert!(!crate::redact::contains_personal_number(&out), "{out}");
    }

    /// Keeps what reaches it, as a collector would.
    #[derive(Debug, Clone, Default)]
    struct Captured(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Captured {
        fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            self.0.lock().unwrap().extend(batch);
            std::future::ready(Ok(()))
        }
    }

    #[test]
    fn exported_spans_carry_no_personal_number() {
        let captured = Captured::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(Redacting(captured.clone())).build();
        let registry =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(registry, || {
            let span = tracing::info_span!("rpc", note = "tel 13812345678", number = 13812345678_i64, seq = 42_i64);
            let _entered = span.enter();
            tracing::error!(error = "身份证 440701199003071234", "failed for account 6222021234567890");
        });
        provider.force_flush().unwrap();
        let spans = captured.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1);
        let attribute = |key: &str| {
            spans[0].attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string()).unwrap()
        };
        assert_eq!(attribute("note"), "tel 138****5678");
        assert_eq!(attribute("number"), "138****5678");
        assert_eq!(attribute("seq"), "42");
        let event_text: Vec<String> = spans[0]
            .events
            .iter()
            .flat_map(|e| std::iter::once(e.name.to_string()).chain(e.attributes.iter().map(|kv| kv.value.to_string())))
            .collect();
        assert!(event_text.iter().any(|t| t.contains("440***********1234")), "{event_text:?}");
        assert!(event_text.iter().any(|t| t.contains("************7890")), "{event_text:?}");
        assert!(!event_text.iter().any(|t| crate::redact::contains_personal_number(t)), "{event_text:?}");
    }

    #[test]
    fn trace_context_round_trips_through_storage_and_metadata() {
        let provider = SdkTracerProvider::builder().build();
        let registry =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(registry, || {
            assert_eq!(current_trace_context(), "", "outside any span");
            let span = tracing::info_span!("enqueue");
            let trace_id = trace_id_of(&span).unwrap();
            let stored = span.in_scope(current_trace_context);
            assert!(stored.contains(&trace_id), "{stored}");

            let later = tracing::info_span!("deliver");
            later.set_parent(stored_trace_context(&stored)).unwrap();
            assert_eq!(trace_id_of(&later).as_deref(), Some(trace_id.as_str()));

            let mut metadata = tonic::metadata::MetadataMap::new();
            later.in_scope(|| inject_current(&mut metadata));
            let traceparent = metadata.get("traceparent").unwrap().to_str().unwrap().to_owned();
            assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "{traceparent}");
            let received = extract(&metadata.into_headers());
            assert_eq!(received.span().span_context().trace_id().to_string(), trace_id);
            assert!(!stored_trace_context("").span().span_context().is_valid());
            assert!(!stored_trace_context("not json").span().span_context().is_valid());
        });
    }
}
