//! Fresh databases and Redis key prefixes for one test.

use std::time::Duration;

use sqlx::{Connection, PgConnection};

const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test only: a SQLite file in a temporary directory, or a
/// PostgreSQL database that is dropped when this value is.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    /// Files of this test (the SQLite database, a clock offset file, ...).
    scratch: tempfile::TempDir,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    Sqlite,
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}/test.db", scratch.path().display());
                Self { url, scratch, cleanup: Cleanup::Sqlite }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned());
                let name = format!("sv_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = connect_admin(&admin_url).await;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
                let _ = admin.close().await;
                let url = database_url(&admin_url, &name);
                Self { url, scratch, cleanup: Cleanup::Postgres { admin_url, name } }
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A directory that lives as long as this database.
    pub fn scratch_dir(&self) -> &std::path::Path {
        self.scratch.path()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs outside async; a short-lived runtime on its own thread does the async work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.url);
        }
    }
}

async fn connect_admin(admin_url: &str) -> PgConnection {
    match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(admin_url)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {admin_url} ({e}).\n\
             Start it (e.g. `pg_ctlcluster 15 main start`) or point TEST_DATABASE_URL at a server \
             whose role may CREATE DATABASE. `.ci/run` shows a full setup."
        ),
        Err(_) => panic!("PostgreSQL at {admin_url} did not answer within 10 s"),
    }
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url.split_once('?').map_or((admin_url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// A Redis server checked to answer, and a key prefix no other test uses.
#[derive(Debug, Clone)]
pub struct TestRedis {
    pub url: String,
    pub prefix: String,
}

impl TestRedis {
    pub async fn new() -> Self {
        let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned());
        let answered = async {
            let client = redis::Client::open(url.as_str())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(Duration::from_secs(5), answered).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!(
                "Redis is not reachable at {url} ({e}).\n\
                 Start it (e.g. `redis-server --daemonize yes --port 6379 --save ''`) or set TEST_REDIS_URL."
            ),
            Err(_) => panic!("Redis at {url} did not answer within 5 s"),
        }
        Self { url, prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()) }
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_urls_keep_server_and_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(database_url("postgres://u:p@h/db?sslmode=disable", "t2"), "postgres://u:p@h/t2?sslmode=disable");
        assert_eq!(database_url("postgres://h", "t3"), "postgres://h/t3");
    }
}
