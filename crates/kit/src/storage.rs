//! One connection pool over SQLite (the embedded default) or PostgreSQL (production), chosen by
//! the database URL, with each service's migrations kept per backend.
//!
//! Queries are portable SQL through `sqlx::Any` with `$n` placeholders, which both backends
//! accept. `Any` decodes only plain types, so the schema keeps instants as fixed-width UTC
//! RFC 3339 text, dates as `YYYY-MM-DD` text and money as integer fen.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    Any, AnyPool, Transaction,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migrator},
};

/// Which database engine a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StorageError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StorageError::UnsupportedUrl)
        }
    }
}

/// A service's migrations, one folder per backend (`sqlx::migrate!` of each).
#[derive(Debug)]
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database URL must start with sqlite:, postgres:// or postgresql://")]
    UnsupportedUrl,
    #[error("cannot create the directory for the SQLite file {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] MigrateError),
}

/// The storage handle a service holds: cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

impl Db {
    /// Connects to `url` and applies the service's migrations for that backend.
    ///
    /// A SQLite URL names a file that is created (with its directory) when missing.
    pub async fn connect(url: &str, migrations: &Migrations) -> Result<Self, StorageError> {
        Self::connect_with(url, migrations, None).await
    }

    /// As [`Db::connect`], with at most `max_connections` connections (`None`: 16 on
    /// PostgreSQL, 4 on SQLite).
    pub async fn connect_with(
        url: &str,
        migrations: &Migrations,
        max_connections: Option<u32>,
    ) -> Result<Self, StorageError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10)).max_connections(
            max_connections.unwrap_or(match backend {
                // SQLite has one writer at a time; a few readers beside it are plenty.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            }),
        );
        let options = match backend {
            Backend::Sqlite => options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the writer; the busy timeout makes a second
                    // writer wait instead of failing.
                    sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                    sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // No JIT compilation: the services' statements are short, and PostgreSQL
                    // judges a prepared statement's generic plan by costs that assume no filter
                    // applies, so it compiled ListExperts' page (51 rows read by the primary key)
                    // for 450-800 ms on every call at 100,000 experts; without JIT the page
                    // takes 2-3 ms (`docs/performance.md`, "Registry reads").
                    sqlx::query("SET jit = off").execute(&mut *conn).await?;
                    Ok(())
                })
            }),
        };
        let pool = options.connect(&url).await.map_err(StorageError::Connect)?;
        let migrator = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        kit_migrator(backend).run(&pool).await?;
        migrator.run(&pool).await?;
        Ok(Self { pool, backend })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Has PostgreSQL plan each later statement of `tx` for the values it is given
    /// (`SET LOCAL plan_cache_mode = force_custom_plan`); nothing on SQLite. A prepared
    /// statement's generic plan, chosen once it had run five times while the tables were small,
    /// kept scanning far more rows once they had grown (issue 12: the registry's pool reads, 38
    /// ms for an institution family's experts at 100,000; dispatch's monthly-cap read, 4-7 ms per
    /// prepare after a few hundred draws).
    pub async fn plan_for_values(&self, tx: &mut Transaction<'static, Any>) -> Result<(), sqlx::Error> {
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Starts a transaction that will write.
    ///
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred transaction
    /// that reads first and writes later fails with `SQLITE_BUSY` when another writer got in
    /// between, instead of waiting its turn.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    /// Whether the database answers a trivial query now.
    pub async fn is_reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

static KIT_SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static KIT_POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// The kit's own tables (idempotency keys, audit chain), tracked apart from the service's
/// migrations in `_kit_migrations` so both can number from 1.
fn kit_migrator(backend: Backend) -> Migrator {
    let source = match backend {
        Backend::Sqlite => &KIT_SQLITE,
        Backend::Postgres => &KIT_POSTGRES,
    };
    let mut migrator = Migrator::with_migrations(source.iter().cloned().collect());
    migrator.dangerous_set_table_name("_kit_migrations");
    migrator
}

/// Makes sure the SQLite file can be created: its directory exists and the URL asks for
/// read-write-create mode.
fn prepare_sqlite_url(url: &str) -> Result<String, StorageError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    let dir = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir.filter(|_| path != ":memory:") {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir { path: path.to_owned(), source })?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Whether a database error is a violation of the named unique constraint or index.
///
/// PostgreSQL reports the constraint's name; SQLite reports only the columns, so both the name
/// and the columns are accepted.
pub fn is_unique_violation(err: &sqlx::Error, constraint: &str, columns: &str) -> bool {
    let Some(db) = err.as_database_error() else { return false };
    if !db.is_unique_violation() {
        return false;
    }
    db.constraint() == Some(constraint) || db.message().contains(columns)
}

/// A UTC instant as the schema stores it: fixed-width RFC 3339 with microseconds, so text order
/// is time order.
pub fn format_instant(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Reads an instant written by [`format_instant`].
pub fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, chrono::ParseError> {
    chrono::DateTime::<chrono::FixedOffset>::from_str(s).map(|t| t.to_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_gains_create_mode() {
        let dir = std::env::temp_dir().join(format!("kit-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/x.db", dir.display());
        assert_eq!(prepare_sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(dir.is_dir());
        assert_eq!(
            prepare_sqlite_url("sqlite::memory:?cache=shared").unwrap(),
            "sqlite::memory:?cache=shared&mode=rwc"
        );
    }

    #[test]
    fn instants_round_trip_and_sort_as_text() {
        let a = chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap();
        let b = chrono::DateTime::from_timestamp(1_700_000_001, 0).unwrap();
        assert_eq!(parse_instant(&format_instant(a)).unwrap(), a);
        assert!(format_instant(a) < format_instant(b));
    }

    #[test]
    fn backends_follow_the_url_scheme() {
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert!(Backend::from_url("mysql://h/db").is_err());
    }
}
