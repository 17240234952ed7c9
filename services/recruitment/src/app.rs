//! Configuration and start-up: `App::build` connects and migrates storage and binds the listener
//! (port 0 in tests); `run_until_stopped` serves until the shutdown signal.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;
use supervision_kit::{
    Migrations, Shutdown,
    app::{CommonArgs, Foundation},
    personal::PersonalDataKey,
};
use supervision_proto::calendar::calendar_service_server::SERVICE_NAME as CALENDAR_SERVICE;
use supervision_proto::recruitment::recruitment_service_server::{RecruitmentServiceServer, SERVICE_NAME};
use supervision_reference::{Reference, ReferenceArgs};
use tonic::service::Routes;

use crate::grpc::Recruitment;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Recruitment's migrations for each backend.
pub const MIGRATIONS: Migrations = Migrations { sqlite: &SQLITE_MIGRATIONS, postgres: &POSTGRES_MIGRATIONS };

/// The largest request accepted: a 10 MiB material and its fields (recruitment.proto).
const MAX_REQUEST_BYTES: usize = 11 * 1024 * 1024;

/// The plaintext health-only port when TLS is on (ARCHITECTURE.md's port table).
const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:50062";

/// Recruitment's settings: flags, each with an environment fallback.
#[derive(Debug, Clone, Parser)]
#[command(name = "recruitment", version, about = "Recruitment of supervision experts (article 7)")]
pub struct Config {
    /// Address the gRPC server listens on.
    #[arg(long, env = "RECRUITMENT_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: String,
    /// `sqlite://path/to/file.db` (embedded) or `postgres://user@host/db`.
    #[arg(long, env = "RECRUITMENT_DATABASE_URL", default_value = "sqlite://data/recruitment.db")]
    pub database_url: String,
    /// File holding the personal-data key, 64 hex digits (32 random bytes): applicants' identity
    /// numbers, contact and bank details are stored encrypted and blind-indexed with it, as in the
    /// registry (the same deployment key). Required to serve (not for `--migrate-only`);
    /// `supctl keys init` writes a development one.
    #[arg(long, env = "PERSONAL_DATA_KEY_FILE")]
    pub personal_data_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub reference: ReferenceArgs,
}

/// Recruitment connected, migrated and bound, ready to serve.
#[derive(Debug)]
pub struct App {
    foundation: Foundation,
    reference: Reference,
    key: PersonalDataKey,
    /// The registry and this service's SERVICE token, when both are configured: appointment
    /// decisions are confirmed (certificate numbers recorded) only then.
    registry: Option<(tonic::transport::Channel, String)>,
    /// The deadlines of calls to the registry.
    timeouts: supervision_kit::client::PeerTimeouts,
}

/// Reads the personal-data key, refusing to start without one: recruitment never stores an
/// applicant's identity number, mobile, e-mail, address or account in the clear.
fn personal_data_key(path: Option<&std::path::Path>) -> anyhow::Result<PersonalDataKey> {
    let path = path.context(
        "recruitment needs its personal-data key: set --personal-data-key-file (or PERSONAL_DATA_KEY_FILE) \
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
        let registry = foundation.peers.get("registry").cloned().zip(config.common.peers.service_token()?);
        if registry.is_none() {
            tracing::warn!(
                "no registry endpoint or SERVICE token configured: appointment decisions stay PENDING until both are set"
            );
        }
        Ok(Self { foundation, reference, key, registry, timeouts: config.common.peers.timeouts() })
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
        if let Some((channel, token)) = self.registry.clone() {
            crate::appointments::Confirmer::new(
                self.foundation.db.clone(),
                self.foundation.clock.clone(),
                self.key.clone(),
                channel,
                token,
            )
            .with_timeouts(self.timeouts)
            .spawn(crate::appointments::CONFIRM_EVERY, shutdown.clone());
        }
        let service = Recruitment::new(
            self.foundation.db.clone(),
            self.foundation.clock.clone(),
            self.key,
            self.reference.clone(),
            self.registry.map(|(channel, service_token)| crate::reapplication::RegistryPeer {
                channel,
                service_token,
                timeouts: self.timeouts,
            }),
        );
        // UploadMaterial carries up to 10 MiB of content (recruitment.proto): 11 MiB messages.
        let server = RecruitmentServiceServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES);
        let routes = Routes::new(server).add_service(self.reference.service(self.foundation.clock.clone()));
        Ok(self.foundation.serve(SERVICE_NAME, vec![CALENDAR_SERVICE], routes, shutdown).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recruitment_refuses_to_start_without_its_personal_data_key() {
        let err = personal_data_key(None).unwrap_err();
        assert!(err.to_string().contains("PERSONAL_DATA_KEY_FILE"));
        let dir = tempfile_dir();
        let bad = dir.join("bad.key");
        std::fs::write(&bad, "not hex").unwrap();
        assert!(personal_data_key(Some(&bad)).is_err());
        let good = dir.join("good.key");
        std::fs::write(&good, PersonalDataKey::generate_hex()).unwrap();
        assert!(personal_data_key(Some(&good)).is_ok());
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("recruitment-key-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
