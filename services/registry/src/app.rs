//! Configuration and start-up: `App::build` connects and migrates storage and binds the listener
//! (port 0 in tests); `run_until_stopped` serves until the shutdown signal.

use std::net::SocketAddr;

use clap::Parser;
use supervision_kit::{Db, GrpcServer, Migrations, Shutdown, telemetry::LogFormat};
use supervision_proto::registry::registry_service_server::{RegistryServiceServer, SERVICE_NAME};
use tonic::service::Routes;

use crate::grpc::Registry;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The registry's migrations for each backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The registry's settings: flags, each with an environment fallback.
#[derive(Debug, Clone, Parser)]
#[command(name = "registry", version, about = "The expert database of the supervision system")]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: String,
    /// `sqlite://path/to/file.db` (embedded) or `postgres://user@host/db`.
    #[arg(long, env = "REGISTRY_DATABASE_URL", default_value = "sqlite://data/registry.db")]
    pub database_url: String,
    /// Log format: text for people, json for collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// A registry that is connected, migrated and bound, ready to serve.
#[derive(Debug)]
pub struct App {
    server: GrpcServer,
    db: Db,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let db = Db::connect(&config.database_url, &MIGRATIONS).await?;
        let server = GrpcServer::bind(&config.listen).await?;
        Ok(Self { server, db })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let routes = Routes::new(RegistryServiceServer::new(Registry::new(self.db.clone())));
        let served = self.server.serve(SERVICE_NAME, routes, shutdown).await;
        self.db.close().await;
        Ok(served?)
    }
}
