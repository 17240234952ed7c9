//! Configuration and start-up: `App::build` connects and migrates storage and binds the listener
//! (port 0 in tests); `run_until_stopped` serves until the shutdown signal.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use clap::Parser;
use supervision_kit::{
    Backend, Migrations, Shutdown,
    app::{CommonArgs, Foundation},
    personal::PersonalDataKey,
};
use supervision_proto::calendar::calendar_service_server::SERVICE_NAME as CALENDAR_SERVICE;
use supervision_proto::registry::registry_service_server::{RegistryServiceServer, SERVICE_NAME};
use supervision_reference::{Reference, ReferenceArgs};
use tonic::service::Routes;

use crate::{expert_cache::ExpertCache, grpc::Registry};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The registry's migrations for each backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The plaintext health-only port when TLS is on (ARCHITECTURE.md's port table).
const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:50061";

/// How often the lifecycle pass runs (terms that ended, D5 proposals due); it is idempotent,
/// so running it more often than daily only makes changes land sooner after midnight.
const LIFECYCLE_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

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
    /// File holding the personal-data key, 64 hex digits (32 random bytes): experts' identity
    /// numbers, contact and bank details are stored encrypted and blind-indexed with it. Required
    /// to serve (not for `--migrate-only`); `supctl keys init` writes a development one.
    #[arg(long, env = "PERSONAL_DATA_KEY_FILE")]
    pub personal_data_key_file: Option<PathBuf>,
    /// How many experts GetExpert keeps parsed in memory on PostgreSQL, each answered again only
    /// after a one-row check that it has not changed (docs/performance.md, "Registry reads");
    /// 0 keeps none. About 1.5 KiB each.
    #[arg(long, env = "REGISTRY_EXPERT_CACHE", default_value_t = DEFAULT_EXPERT_CACHE)]
    pub expert_cache: usize,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

/// `--expert-cache`'s default: every expert of a city's pool, many times over.
pub const DEFAULT_EXPERT_CACHE: usize = 20_000;

/// A registry that is connected, migrated and bound, ready to serve.
#[derive(Debug)]
pub struct App {
    foundation: Foundation,
    reference: Reference,
    key: PersonalDataKey,
    experts: Arc<ExpertCache>,
}

/// Reads the personal-data key, refusing to start without one: the registry never stores an
/// identity number, mobile, e-mail, address or account in the clear.
fn personal_data_key(path: Option<&std::path::Path>) -> anyhow::Result<PersonalDataKey> {
    let path = path.context(
        "the registry needs its personal-data key: set --personal-data-key-file (or PERSONAL_DATA_KEY_FILE) \
         to a file of 64 hex digits; `supctl keys init` writes data/dev-keys/personal-data.key",
    )?;
    PersonalDataKey::from_file(path).with_context(|| format!("cannot use the personal-data key {}", path.display()))
}

impl App {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let key = personal_data_key(config.personal_data_key_file.as_deref())?;
        let foundation =
            Foundation::build(&config.listen, &config.database_url, &MIGRATIONS, &config.common, DEFAULT_HEALTH_LISTEN)
                .await?;
        let reference = config.reference.load()?;
        let probe = reference.metrics_probe(foundation.clock.clone());
        foundation.metrics.register(probe).await;
        let experts = Arc::new(ExpertCache::new(
            if foundation.db.backend() == Backend::Postgres { config.expert_cache } else { 0 },
            Some(&foundation.metrics),
        ));
        Ok(Self { foundation, reference, key, experts })
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
        let registry = Registry::new(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            self.key.clone(),
            self.reference.clone(),
            self.experts.clone(),
        );
        // The stamp checks' connections go back to the pool as shutdown starts: the pool's close,
        // after the last request, waits for every connection handed out.
        let (experts, stopping) = (self.experts, shutdown.clone());
        tokio::spawn(async move {
            stopping.wait().await;
            experts.close_lane();
        });
        let (db, clock, reference) =
            (self.foundation.db.clone(), self.foundation.clock.clone(), self.reference.clone());
        let mut started = false;
        supervision_kit::jobs::spawn(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            &self.foundation.metrics,
            crate::lifecycle::JOB,
            LIFECYCLE_EVERY,
            shutdown.clone(),
            move || {
                let (db, clock, reference) = (db.clone(), clock.clone(), reference.clone());
                // The first tick comes at start-up; the pass waits for the next one, so a
                // replica starting (or a test) never races its first requests with it.
                let ready = std::mem::replace(&mut started, true);
                async move {
                    if !ready {
                        return;
                    }
                    match crate::lifecycle::run_pass(&db, &clock, &reference).await {
                        Ok(report) => tracing::info!(?report, "lifecycle pass done"),
                        Err(err) => tracing::error!(error = %err, "lifecycle pass failed"),
                    }
                }
            },
        );
        // Imports carry their file (up to 32 MiB, ImportExpertsRequest) in one message.
        let server = RegistryServiceServer::new(registry)
            .max_decoding_message_size(crate::sheets::MAX_IMPORT_BYTES + 1024 * 1024);
        let routes = Routes::new(server).add_service(self.reference.service(self.foundation.clock.clone()));
        Ok(self.foundation.serve(SERVICE_NAME, vec![CALENDAR_SERVICE], routes, shutdown).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_refuses_to_start_without_its_personal_data_key() {
        let err = personal_data_key(None).unwrap_err();
        assert!(err.to_string().contains("PERSONAL_DATA_KEY_FILE"), "{err}");
        let dir = tempfile_dir();
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        assert!(personal_data_key(Some(&bad)).is_err());
        let good = dir.join("good.key");
        std::fs::write(&good, format!("{}\n", PersonalDataKey::generate_hex())).unwrap();
        assert!(personal_data_key(Some(&good)).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("registry-key-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
