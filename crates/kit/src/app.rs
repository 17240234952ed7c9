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
    server: GrpcServer,
    auth: AuthLayer,
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
        Ok(Self { db, clock, server, auth })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.server.health_addr()
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
