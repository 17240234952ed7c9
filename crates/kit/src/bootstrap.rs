//! Serving a service: health (SERVING only once storage is ready, NOT_SERVING as soon as
//! shutdown starts), reflection v1 and v1alpha, per-request deadlines and graceful shutdown.

use std::{net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, sync::watch};
use tonic::service::Routes;
use tonic_health::ServingStatus;

use crate::{access::AuthLayer, metrics::Metrics, observe::ObserveLayer};

/// The longest any request may run when the caller sets no shorter `grpc-timeout`.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long in-flight requests get to finish once shutdown starts.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// A shutdown signal that any number of tasks can wait for.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self { tx: watch::channel(false).0 }
    }

    /// A signal that fires on SIGTERM or Ctrl-C.
    pub fn on_process_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            trigger.trigger();
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the signal has fired (at once if it already has).
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means every sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|fired| *fired).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// TLS for the gRPC port, and the plaintext health-only port that goes with it.
#[derive(Debug, Clone)]
pub struct Tls {
    pub config: tonic::transport::ServerTlsConfig,
    pub health_listen: String,
}

/// What every request passes through before its handler: telemetry (a span per RPC, request
/// metrics into `metrics`), then authentication and authorisation, then per-caller rate limits.
#[derive(Debug, Clone)]
pub struct RequestLayers {
    pub auth: AuthLayer,
    /// Per-caller limits; inside auth, which establishes the caller.
    pub rate_limit: crate::rate_limit::RateLimitLayer,
    pub metrics: Metrics,
}

/// A bound gRPC listener, ready to serve one business service beside health and reflection.
#[derive(Debug)]
pub struct GrpcServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<(tonic::transport::ServerTlsConfig, TcpListener)>,
}

async fn bind_listener(addr: &str) -> Result<(TcpListener, SocketAddr), ServeError> {
    let bind_err = |source| ServeError::Bind { addr: addr.to_owned(), source };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local_addr = listener.local_addr().map_err(bind_err)?;
    Ok((listener, local_addr))
}

impl GrpcServer {
    /// Binds `addr` (port 0 picks a free port; [`GrpcServer::local_addr`] tells which), and with
    /// TLS also the plaintext health port.
    pub async fn bind(addr: &str, tls: Option<Tls>) -> Result<Self, ServeError> {
        let (listener, local_addr) = bind_listener(addr).await?;
        let tls = match tls {
            Some(tls) => Some((tls.config, bind_listener(&tls.health_listen).await?.0)),
            None => None,
        };
        Ok(Self { listener, local_addr, tls })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The plaintext health-only address, when TLS is on.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(_, l)| l.local_addr().ok())
    }

    /// Serves `routes` (the business service) with health and reflection until `shutdown` fires.
    ///
    /// `service_name` is the fully qualified gRPC name whose health is reported, `also_served` the
    /// other services in `routes` (reflection advertises exactly these); both it and the
    /// overall status `""` turn SERVING here, because the caller only gets this far once its
    /// storage is migrated and reachable.
    pub async fn serve(
        self,
        service_name: &'static str,
        also_served: Vec<&'static str>,
        routes: Routes,
        layers: RequestLayers,
        storage: crate::Db,
        shutdown: Shutdown,
    ) -> Result<(), ServeError> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let served: Vec<&str> = routes_names(service_name, &also_served);
        let reflection_v1 = reflection_builder(&served).build_v1()?;
        let reflection_v1alpha = reflection_builder(&served).build_v1alpha()?;
        let routes = routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);

        for name in ["", service_name] {
            reporter.set_service_status(name, ServingStatus::Serving).await;
        }
        tracing::info!(service = service_name, addr = %self.local_addr, "serving");
        watch_storage(storage, reporter.clone(), service_name, shutdown.clone());

        let drain = {
            let shutdown = shutdown.clone();
            let reporter = reporter.clone();
            async move {
                shutdown.wait().await;
                for name in ["", service_name] {
                    reporter.set_service_status(name, ServingStatus::NotServing).await;
                }
                tracing::info!(service = service_name, "NOT_SERVING; draining");
            }
        };

        let mut builder = tonic::transport::Server::builder().timeout(DEFAULT_REQUEST_TIMEOUT);
        if let Some((config, health_listener)) = self.tls {
            builder = builder.tls_config(config)?;
            let health_only = health_service_for_probes(&reporter);
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_service(health_only)
                    .serve_with_incoming_shutdown(incoming(health_listener), stop.wait())
                    .await;
                if let Err(err) = served {
                    tracing::error!(error = %err, "the plaintext health port failed");
                }
            });
        }
        // The first layer is the outermost: refused requests are traced and counted too.
        let observe = ObserveLayer::new(&layers.metrics, layers.auth.table().clone());
        let server = builder
            .layer(observe)
            .layer(MalformedRequestLayer)
            .layer(layers.auth)
            .layer(layers.rate_limit)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming(self.listener), drain);
        // Requests still running after the grace period are cut off rather than holding the
        // process (Kubernetes would kill it anyway).
        tokio::select! {
            result = server => result?,
            () = async { shutdown.wait().await; tokio::time::sleep(DRAIN_GRACE).await } => {
                tracing::warn!(service = service_name, "drain grace period over; stopping");
            }
        }
        Ok(())
    }
}

/// How often health re-checks that storage answers.
const STORAGE_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Keeps health honest after start: NOT_SERVING while the database does not answer, SERVING
/// again once it does, so Kubernetes stops routing to a replica that cannot do its work.
fn watch_storage(
    storage: crate::Db,
    reporter: tonic_health::server::HealthReporter,
    service_name: &'static str,
    shutdown: Shutdown,
) {
    tokio::spawn(async move {
        let mut serving = true;
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                () = tokio::time::sleep(STORAGE_CHECK_EVERY) => {}
            }
            let reachable = tokio::time::timeout(Duration::from_secs(3), storage.is_reachable()).await.unwrap_or(false);
            if reachable == serving || shutdown.is_triggered() {
                continue;
            }
            serving = reachable;
            let status = if reachable { ServingStatus::Serving } else { ServingStatus::NotServing };
            for name in ["", service_name] {
                reporter.set_service_status(name, status).await;
            }
            if reachable {
                tracing::info!(service = service_name, "storage answers again; SERVING");
            } else {
                tracing::error!(service = service_name, "storage does not answer; NOT_SERVING");
            }
        }
    });
}

/// A health service that answers from the same reporter as the main port's.
fn health_service_for_probes(
    reporter: &tonic_health::server::HealthReporter,
) -> tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService> {
    tonic_health::pb::health_server::HealthServer::new(tonic_health::server::HealthService::from_health_reporter(
        reporter.clone(),
    ))
}

/// Every service this port answers, for reflection to advertise (and nothing it does not).
fn routes_names(service_name: &'static str, also_served: &[&'static str]) -> Vec<&'static str> {
    let mut names = vec![service_name, "grpc.health.v1.Health"];
    names.extend_from_slice(also_served);
    names
}

fn reflection_builder(served: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let builder = served
        .iter()
        .fold(tonic_reflection::server::Builder::configure(), |b, name| b.with_service_name(name.to_string()));
    builder
        .register_encoded_file_descriptor_set(supervision_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// Accepted connections with Nagle's algorithm off: without it a small answer waits for the
/// client's delayed acknowledgement, about 40 ms a call (measured in docs/performance.md).
fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A request body that is not a protobuf message of the RPC's input type is the caller's
/// mistake, but tonic answers it `INTERNAL` ("failed to decode Protobuf message: ...") before any
/// handler runs. This layer answers such a refusal as `INVALID_ARGUMENT`, with tonic's message,
/// so clients do not retry it and `INTERNAL` stays the mark of a server fault (found by the
/// fuzzing in `tests/e2e/reliability/fuzz.rs`). Only the status of a refusal carrying that
/// message in its headers (tonic refuses undecodable requests before sending any message) changes.
#[derive(Debug, Clone, Copy, Default)]
pub struct MalformedRequestLayer;

impl<S> tower::Layer<S> for MalformedRequestLayer {
    type Service = MalformedRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MalformedRequest(inner)
    }
}

#[derive(Debug, Clone)]
pub struct MalformedRequest<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for MalformedRequest<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.0.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            relabel_malformed_request(response.headers_mut());
            Ok(response)
        })
    }
}

/// `INTERNAL` with tonic's decoding message becomes `INVALID_ARGUMENT`.
fn relabel_malformed_request(headers: &mut http::HeaderMap) {
    let internal = headers.get("grpc-status").is_some_and(|s| s.as_bytes() == b"13");
    let undecodable = headers.get("grpc-message").is_some_and(|m| {
        let m = m.as_bytes();
        m.starts_with(b"failed%20to%20decode%20Protobuf%20message")
            || m.starts_with(b"failed to decode Protobuf message")
    });
    if internal && undecodable {
        headers.insert("grpc-status", http::HeaderValue::from_static("3"));
    }
}

#[cfg(test)]
mod malformed_request_tests {
    use super::relabel_malformed_request;

    fn headers(status: &'static str, message: &'static str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static(status));
        h.insert("grpc-message", http::HeaderValue::from_static(message));
        h
    }

    #[test]
    fn an_undecodable_request_is_invalid_argument_and_other_answers_are_kept() {
        let mut h = headers("13", "failed%20to%20decode%20Protobuf%20message:%20invalid%20wire%20type%20value:%207");
        relabel_malformed_request(&mut h);
        assert_eq!(h["grpc-status"], "3");
        for (status, message) in [("13", "database%20unavailable"), ("3", "failed%20to%20decode%20Protobuf%20message")]
        {
            let mut h = headers(status, message);
            relabel_malformed_request(&mut h);
            assert_eq!(h["grpc-status"], status);
        }
    }
}
