//! Configuration and start-up: `App::build` connects and migrates storage and binds the listener
//! (port 0 in tests); `run_until_stopped` serves until the shutdown signal.

use std::net::SocketAddr;

use clap::Parser;
use supervision_kit::{
    Migrations, Shutdown,
    app::{CommonArgs, Foundation},
};
use supervision_proto::calendar::calendar_service_server::SERVICE_NAME as CALENDAR_SERVICE;
use supervision_proto::dispatch::dispatch_service_server::{DispatchServiceServer, SERVICE_NAME};
use supervision_reference::{Reference, ReferenceArgs};
use tonic::service::Routes;

use crate::{grpc::Dispatch, registry::Registry};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Dispatch's migrations for each backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// How often the D5 yearly classifications are recounted (ended years; corrections).
const YEARLY_EVERY: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The largest message in or out: an attachment of 10 MiB and its envelope.
const MAX_MESSAGE_BYTES: usize = crate::attachments::MAX_BYTES + 1024 * 1024;

/// How often the delivery job hands pending notifications to their channels.
const NOTIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often the no-answer sweep looks for assignments past their response deadline.
const NO_RESPONSE_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The plaintext health-only port when TLS is on (ARCHITECTURE.md's port table).
const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:50063";

/// Dispatch's settings: flags, each with an environment fallback.
#[derive(Debug, Clone, Parser)]
#[command(name = "dispatch", version, about = "Random and verifiable dispatch of supervision experts (articles 7-9)")]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "DISPATCH_LISTEN", default_value = "127.0.0.1:50053")]
    pub listen: String,
    /// `sqlite://path/to/file.db` (embedded) or `postgres://user@host/db`.
    #[arg(long, env = "DISPATCH_DATABASE_URL", default_value = "sqlite://data/dispatch.db")]
    pub database_url: String,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

/// Dispatch connected, migrated and bound, ready to serve.
#[derive(Debug)]
pub struct App {
    foundation: Foundation,
    reference: Reference,
    registry: Registry,
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let foundation =
            Foundation::build(&config.listen, &config.database_url, &MIGRATIONS, &config.common, DEFAULT_HEALTH_LISTEN)
                .await?;
        let reference = config.reference.load()?;
        let probe = reference.metrics_probe(foundation.clock.clone());
        foundation.metrics.register(probe).await;
        crate::metrics::register(&foundation.db, &foundation.metrics);
        let registry = Registry::new(foundation.peers.get("registry").cloned(), config.common.peers.service_token()?)
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
        let (db, clock, reference, registry) =
            (self.foundation.db.clone(), self.foundation.clock.clone(), self.reference.clone(), self.registry.clone());
        let mut started = false;
        supervision_kit::jobs::spawn(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            &self.foundation.metrics,
            crate::sweep::JOB,
            NO_RESPONSE_EVERY,
            shutdown.clone(),
            move || {
                let (db, clock, reference, registry) = (db.clone(), clock.clone(), reference.clone(), registry.clone());
                // The first tick comes at start-up; the sweep waits for the next one.
                let ready = std::mem::replace(&mut started, true);
                async move {
                    if !ready {
                        return;
                    }
                    match crate::sweep::run_pass(&db, &clock, &reference, &registry).await {
                        Ok(report) => tracing::info!(?report, "no-answer sweep done"),
                        Err(err) => tracing::error!(error = %err, "no-answer sweep failed"),
                    }
                }
            },
        );
        let (db, clock) = (self.foundation.db.clone(), self.foundation.clock.clone());
        supervision_kit::jobs::spawn(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            &self.foundation.metrics,
            crate::yearly::JOB,
            YEARLY_EVERY,
            shutdown.clone(),
            move || {
                let (db, clock) = (db.clone(), clock.clone());
                async move {
                    match crate::yearly::run_pass(&db, &clock).await {
                        Ok(written) if written.is_empty() => {}
                        Ok(written) => tracing::info!(written = written.len(), "yearly acceptances delivered"),
                        Err(err) => tracing::error!(error = %err, "yearly acceptance pass failed"),
                    }
                }
            },
        );
        let (db, clock) = (self.foundation.db.clone(), self.foundation.clock.clone());
        let channels = crate::notify::channels();
        supervision_kit::jobs::spawn(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            &self.foundation.metrics,
            crate::notify::JOB,
            NOTIFY_EVERY,
            shutdown.clone(),
            move || {
                let (db, clock, channels) = (db.clone(), clock.clone(), channels.clone());
                async move {
                    match crate::notify::deliver_pending(&db, &clock, &channels).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(delivered = n, "notifications delivered"),
                        Err(err) => tracing::error!(error = %err, "notification delivery failed"),
                    }
                }
            },
        );
        let service = Dispatch::new(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            self.reference.clone(),
            self.registry,
            self.foundation.locks.clone(),
        );
        // UploadAttachment carries up to 10 MiB of content and GetAttachment answers with it.
        let server = DispatchServiceServer::new(service)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let routes = Routes::new(server).add_service(self.reference.service(self.foundation.clock.clone()));
        Ok(self.foundation.serve(SERVICE_NAME, vec![CALENDAR_SERVICE], routes, shutdown).await?)
    }
}
