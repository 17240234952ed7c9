//! What every service's `App` is made of: settings shared by all services, and the connected,
//! migrated and bound foundation each one serves its routes on.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use tonic::{
    service::Routes,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

use crate::{
    Db, GrpcServer, Migrations, SharedClock, Shutdown,
    access::AuthLayer,
    bootstrap::{RequestLayers, ServeError},
    client::{CONNECT_TIMEOUT, PeerTimeouts},
    config::{AuthArgs, ClockArgs, ConfigError, TlsArgs},
    lock::Locks,
    metrics::Metrics,
    outbox::Relay,
    rate_limit::{RateLimitArgs, RateLimitLayer},
    telemetry::{LogFormat, Telemetry, TelemetryError},
};

/// How often the outbox relay looks for due rows.
const OUTBOX_POLL: Duration = Duration::from_secs(1);
/// How often expired idempotency keys are removed (under a lease, by one replica).
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Settings every service takes besides its own listen address and database.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub rate_limit: RateLimitArgs,
    /// Log format: text for people, json for collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// OTLP/gRPC collector that receives this service's spans (`http://otel-collector:4317`);
    /// no export when not set.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(flatten)]
    pub peers: PeerArgs,
    /// Redis for locks across replicas (`redis://host:6379`); without it, in-process locks serve
    /// a single replica.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key this deployment writes.
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "supervision:")]
    pub redis_key_prefix: String,
    /// Address of the Prometheus metrics port (`GET /metrics`); off when not set.
    #[arg(long, env = "METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Apply the database migrations and exit (for a Kubernetes migration Job).
    #[arg(long)]
    pub migrate_only: bool,
    /// Most connections this replica opens to its database (default: 16 on PostgreSQL, 4 on
    /// SQLite). Replicas x this must stay under PostgreSQL's `max_connections`, less what
    /// migrations and operators need.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: Option<u32>,
}

impl CommonArgs {
    /// Installs logging and tracing for `service` (`--log-format`, `--otlp-endpoint`); keep the
    /// guard until the service has stopped.
    pub fn init_telemetry(&self, service: &'static str) -> Result<Telemetry, TelemetryError> {
        crate::telemetry::init(service, self.log_format, self.otlp_endpoint.as_deref())
    }
}

/// The other services this one calls, and the credentials it calls them with.
#[derive(Debug, Clone, Default, Args)]
pub struct PeerArgs {
    /// The registry's endpoint (`http://host:50051`, or `https://` with TLS).
    #[arg(long, env = "REGISTRY_ENDPOINT")]
    pub registry_endpoint: Option<String>,
    /// Recruitment's endpoint.
    #[arg(long, env = "RECRUITMENT_ENDPOINT")]
    pub recruitment_endpoint: Option<String>,
    /// Dispatch's endpoint.
    #[arg(long, env = "DISPATCH_ENDPOINT")]
    pub dispatch_endpoint: Option<String>,
    /// Finance's endpoint.
    #[arg(long, env = "FINANCE_ENDPOINT")]
    pub finance_endpoint: Option<String>,
    /// CA (PEM) that peers' TLS certificates chain to.
    #[arg(long, env = "PEER_CA_FILE")]
    pub peer_ca_file: Option<PathBuf>,
    /// This service's own SERVICE token (issued with `supctl token issue --role SERVICE`).
    #[arg(long, env = "SERVICE_TOKEN_FILE")]
    pub service_token_file: Option<PathBuf>,
    /// Deadline in seconds of one unary call to another service (default 10).
    #[arg(long, env = "PEER_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub peer_timeout_seconds: Option<u64>,
    /// Deadline in seconds of a whole streamed answer from another service, every message
    /// included, such as the draw pool (default 60).
    #[arg(long, env = "PEER_STREAM_TIMEOUT_SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub peer_stream_timeout_seconds: Option<u64>,
}

impl PeerArgs {
    /// The deadlines of calls to other services (`--peer-timeout-seconds`,
    /// `--peer-stream-timeout-seconds`).
    pub fn timeouts(&self) -> PeerTimeouts {
        let default = PeerTimeouts::default();
        PeerTimeouts {
            call: self.peer_timeout_seconds.map_or(default.call, Duration::from_secs),
            stream: self.peer_stream_timeout_seconds.map_or(default.stream, Duration::from_secs),
        }
    }

    /// Channels to the configured peers, by service name (connected lazily, per call). An
    /// `https://` peer is verified with `PEER_CA_FILE` (no other roots are trusted), and when this
    /// service has a certificate of its own (`tls`: `TLS_CERT_FILE`/`TLS_KEY_FILE`) it presents it,
    /// so peers that require client certificates (`TLS_CLIENT_CA_FILE`) admit it.
    pub fn channels(&self, tls: &TlsArgs) -> Result<HashMap<String, Channel>, ConfigError> {
        let read =
            |path: &PathBuf| std::fs::read(path).map_err(|source| ConfigError::ReadKey { path: path.clone(), source });
        let ca = self.peer_ca_file.as_ref().map(read).transpose()?;
        let identity = match (&tls.tls_cert_file, &tls.tls_key_file) {
            (Some(cert), Some(key)) => Some(Identity::from_pem(read(cert)?, read(key)?)),
            _ => None,
        };
        let mut channels = HashMap::new();
        for (name, endpoint) in [
            ("registry", &self.registry_endpoint),
            ("recruitment", &self.recruitment_endpoint),
            ("dispatch", &self.dispatch_endpoint),
            ("finance", &self.finance_endpoint),
        ] {
            let Some(url) = endpoint else { continue };
            let bad = |problem: String| ConfigError::Endpoint { name, problem };
            let mut endpoint = Endpoint::from_shared(url.clone())
                .map_err(|e| bad(e.to_string()))?
                .connect_timeout(CONNECT_TIMEOUT)
                // A ceiling on every call's answer headers; each call sets its own, shorter
                // deadline (`grpc-timeout`) and bounds its whole answer (`client::deadline`).
                .timeout(self.timeouts().longest());
            if url.starts_with("https://") {
                let mut tls = ClientTlsConfig::new();
                if let Some(ca) = &ca {
                    tls = tls.ca_certificate(Certificate::from_pem(ca));
                }
                if let Some(identity) = &identity {
                    tls = tls.identity(identity.clone());
                }
                endpoint = endpoint.tls_config(tls).map_err(|e| bad(e.to_string()))?;
            }
            channels.insert(name.to_owned(), endpoint.connect_lazy());
        }
        Ok(channels)
    }

    /// The service token, if configured.
    pub fn service_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.service_token_file else { return Ok(None) };
        let token =
            std::fs::read_to_string(path).map_err(|source| ConfigError::ReadKey { path: path.clone(), source })?;
        Ok(Some(token.trim().to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Locks(#[from] crate::lock::LockError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] crate::StorageError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// A service's storage, clock, access control and bound listener.
#[derive(Debug)]
pub struct Foundation {
    pub db: Db,
    pub clock: SharedClock,
    /// The series served on the metrics port; services add their own probes, counters and
    /// histograms.
    pub metrics: Metrics,
    /// Redis locks, or in-process ones without `REDIS_URL`.
    pub locks: Locks,
    /// Channels to the other services, for synchronous calls (the outbox relay has its own).
    pub peers: HashMap<String, Channel>,
    server: GrpcServer,
    auth: AuthLayer,
    rate_limit: RateLimitLayer,
    metrics_listener: Option<tokio::net::TcpListener>,
    relay: Option<Relay>,
}

impl Foundation {
    /// Reads the key, connects and migrates the database, and binds `listen` (and the plaintext
    /// health port at `default_health_listen` when TLS is on and none is configured).
    pub async fn build(
        listen: &str,
        database_url: &str,
        migrations: &Migrations,
        common: &CommonArgs,
        default_health_listen: &str,
    ) -> Result<Self, BuildError> {
        let clock = common.clock.clock();
        let auth = common.auth.layer(clock.clone())?;
        let tls = common.tls.load(default_health_listen)?;
        let db = Db::connect_with(database_url, migrations, common.database_max_connections).await?;
        let server = GrpcServer::bind(listen, tls).await?;
        let metrics_listener = match &common.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr: addr.clone(), source })?,
            ),
            None => None,
        };
        let metrics = Metrics::new();
        metrics.register(crate::metrics::storage_probe(db.clone(), clock.clone())).await;
        let locks = Locks::connect(common.redis_url.as_deref(), &common.redis_key_prefix).await?.with_metrics(&metrics);
        let peers = common.peers.channels(&common.tls)?;
        // Without a SERVICE token this service cannot call others; rows wait in the outbox.
        let relay = match common.peers.service_token()? {
            Some(token) => Some(Relay::new(db.clone(), clock.clone(), peers.clone(), token).with_metrics(&metrics)),
            None => {
                tracing::info!("no SERVICE token configured: the outbox keeps calls until one is");
                None
            }
        };
        let rate_limit = common.rate_limit.layer();
        Ok(Self { db, clock, metrics, locks, peers, server, auth, rate_limit, metrics_listener, relay })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.server.health_addr()
    }

    /// The metrics port, when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves `routes` (the service `service_name`, and the services named in `also_served`)
    /// with health, reflection, telemetry and auth until `shutdown`, then closes storage.
    pub async fn serve(
        self,
        service_name: &'static str,
        also_served: Vec<&'static str>,
        routes: Routes,
        shutdown: Shutdown,
    ) -> Result<(), ServeError> {
        if let Some(listener) = self.metrics_listener {
            self.metrics.clone().serve(listener, shutdown.clone());
        }
        if let Some(relay) = self.relay {
            relay.spawn(OUTBOX_POLL, shutdown.clone());
        }
        let (db, clock) = (self.db.clone(), self.clock.clone());
        crate::jobs::spawn(
            self.db.clone(),
            self.clock.clone(),
            &self.metrics,
            "idempotency-purge",
            PURGE_EVERY,
            shutdown.clone(),
            move || {
                let (db, clock) = (db.clone(), clock.clone());
                async move {
                    match crate::idempotency::purge_expired(&db, &clock).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, "expired idempotency keys removed"),
                        Err(err) => tracing::warn!(error = %err, "idempotency purge failed"),
                    }
                }
            },
        );
        let layers = RequestLayers { auth: self.auth, rate_limit: self.rate_limit, metrics: self.metrics };
        let served = self.server.serve(service_name, also_served, routes, layers, self.db.clone(), shutdown).await;
        self.db.close().await;
        served
    }
}

/// `--migrate-only`: connects, applies the migrations, and returns.
pub async fn migrate_only(database_url: &str, migrations: &Migrations) -> Result<(), crate::StorageError> {
    let db = Db::connect(database_url, migrations).await?;
    tracing::info!("migrations applied");
    db.close().await;
    Ok(())
}
