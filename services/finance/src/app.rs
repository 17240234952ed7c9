//! Configuration and start-up: `App::build` connects and migrates storage and binds the listener
//! (port 0 in tests); `run_until_stopped` serves until the shutdown signal.

use std::net::SocketAddr;

use clap::Parser;
use supervision_kit::{
    Migrations, Shutdown,
    app::{CommonArgs, Foundation},
};
use supervision_proto::calendar::calendar_service_server::SERVICE_NAME as CALENDAR_SERVICE;
use supervision_proto::finance::finance_service_server::{FinanceServiceServer, SERVICE_NAME};
use supervision_reference::{Reference, ReferenceArgs};
use tonic::service::Routes;

use crate::{grpc::Finance, registry::RegistryPeer};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Finance's migrations for each backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The plaintext health-only port when TLS is on (ARCHITECTURE.md's port table).
const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:50064";

/// Finance's settings: flags, each with an environment fallback.
#[derive(Debug, Clone, Parser)]
#[command(name = "finance", version, about = "Labour fees and their payment (article 10)")]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "FINANCE_LISTEN", default_value = "127.0.0.1:50054")]
    pub listen: String,
    /// `sqlite://path/to/file.db` (embedded) or `postgres://user@host/db`.
    #[arg(long, env = "FINANCE_DATABASE_URL", default_value = "sqlite://data/finance.db")]
    pub database_url: String,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

/// Finance connected, migrated and bound, ready to serve.
#[derive(Debug)]
pub struct App {
    foundation: Foundation,
    reference: Reference,
    registry: RegistryPeer,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let foundation =
            Foundation::build(&config.listen, &config.database_url, &MIGRATIONS, &config.common, DEFAULT_HEALTH_LISTEN)
                .await?;
        let reference = config.reference.load()?;
        let probe = reference.metrics_probe(foundation.clock.clone());
        foundation.metrics.register(probe).await;
        // Finance asks the registry for civil-servant status with its own SERVICE token.
        let registry = RegistryPeer::new(
            foundation.peers.get("registry").cloned(),
            config.common.peers.service_token()?.as_deref(),
        )
        .with_timeouts(config.common.peers.timeouts());
        Ok(Self { foundation, reference, registry })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.foundation.local_addr()
    }

    /// The metrics port, when one is configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.foundation.metrics_addr()
    }

    /// The plaintext health port, when TLS is on.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.foundation.health_addr()
    }

    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let service = Finance::new(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            self.reference.clone(),
            self.registry,
        );
        let routes = Routes::new(FinanceServiceServer::new(service))
            .add_service(self.reference.service(self.foundation.clock.clone()));
        Ok(self.foundation.serve(SERVICE_NAME, vec![CALENDAR_SERVICE], routes, shutdown).await?)
    }
}
