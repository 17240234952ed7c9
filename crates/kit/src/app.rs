//! What every service's `App` is made of: settings shared by all services, and the connected,
//! migrated and bound foundation each one serves its routes on.

use std::net::SocketAddr;

use clap::Args;
use tonic::service::Routes;

use crate::{
    Db, GrpcServer, Migrations, SharedClock, Shutdown,
    access::AuthLayer,
    bootstrap::ServeError,
    config::{AuthArgs, ClockArgs, ConfigError, TlsArgs},
    metrics::Metrics,
    telemetry::LogFormat,
};

/// Settings every service takes besides its own listen address and database.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub clock: ClockArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Log format: text for people, json for collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Address of the Prometheus metrics port (`GET /metrics`); off when not set.
    #[arg(long, env = "METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Apply the database migrations and exit (for a Kubernetes migration Job).
    #[arg(long)]
    pub migrate_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
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
    /// The gauges served on the metrics port; services add their own probes.
    pub metrics: Metrics,
    server: GrpcServer,
    auth: AuthLayer,
    metrics_listener: Option<tokio::net::TcpListener>,
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
        let db = Db::connect(database_url, migrations).await?;
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
        Ok(Self { db, clock, metrics, server, auth, metrics_listener })
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
    /// with health, reflection and auth until `shutdown`, then closes storage.
    pub async fn serve(
        self,
        service_name: &'static str,
        also_served: Vec<&'static str>,
        routes: Routes,
        shutdown: Shutdown,
    ) -> Result<(), ServeError> {
        if let Some(listener) = self.metrics_listener {
            self.metrics.serve(listener, shutdown.clone());
        }
        let served = self.server.serve(service_name, also_served, routes, self.auth, shutdown).await;
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
