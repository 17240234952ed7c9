//! A PostgreSQL server of one test's own, in a temporary directory on a free port, that the test
//! may stop and start again (the shared test server must stay up for every other test).
//!
//! The server's tools come from `SUPERVISION_PG_BIN` when set, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian and Ubuntu's `postgresql` packages), else `PATH`.
//! PostgreSQL refuses to run as root: as root, its tools run as the `postgres` user
//! (`runuser -u postgres --`) and the directory is handed to that user. The server is stopped
//! (immediately) and its directory removed when the value is dropped.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use sqlx::{Connection, PgConnection};

/// A private PostgreSQL server, running unless [`PrivatePg::stop`]ped.
#[derive(Debug)]
pub struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// Whether the tools run as the `postgres` user (the test runs as root).
    as_postgres: bool,
    running: bool,
}

/// The directory holding `initdb` and `pg_ctl`, if any is installed.
fn server_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SUPERVISION_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH")?.to_str()?.split(':').map(PathBuf::from).find(|dir| dir.join("pg_ctl").exists())
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd is readable");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
        .expect("running as root, PostgreSQL's tools need a `postgres` user to run as")
}

fn is_root() -> bool {
    // The effective uid without libc: `/proc/self/status` names it on Linux.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

impl PrivatePg {
    /// Creates a cluster in a new temporary directory and starts it on a free port; `None`,
    /// after saying so loudly, when PostgreSQL's server tools are not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_bin() else {
            eprintln!(
                "\n!!!!!!!! SKIPPED: no PostgreSQL server tools (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or \
                 PATH; install the `postgresql` package or set SUPERVISION_PG_BIN. CI has them. !!!!!!!!\n"
            );
            return None;
        };
        let dir = tempfile::Builder::new().prefix("private-pg-").tempdir().expect("a temporary directory");
        let as_postgres = is_root();
        if as_postgres {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("the directory is handed to postgres");
        }
        let port = crate::process::free_addr().port();
        let pg = Self { bin, dir, port, as_postgres, running: false };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        let mut pg = pg;
        pg.start_again();
        Some(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs the server tool `tool` with `args` (as `postgres` when the test is root); panics with
    /// its output on failure.
    /// The server tool `tool` with `args`, as `postgres` when the test is root.
    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(self.dir.path());
        command
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let output = self.command(tool, args).output().unwrap_or_else(|e| panic!("{tool} does not run: {e}"));
        assert!(
            output.status.success(),
            "{tool} {args:?} failed: {}\n{}\n{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn start_again(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data_dir(), self.dir.path().join("server.log"));
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "-t", "60", "start"],
        );
        self.running = true;
    }

    /// Stops the server the way an operator restarting it does (`pg_ctl stop -m fast`: open
    /// sessions are ended and their transactions rolled back) and waits until it is down.
    pub fn stop(&mut self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "-t", "60", "stop"]);
        self.running = false;
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh database and answers its URL.
    pub async fn create_database(&self) -> String {
        let name = format!("sv_private_{}", uuid::Uuid::new_v4().simple());
        let mut admin = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(&self.url("postgres")))
            .await
            .expect("the private server answers within 10 s")
            .expect("the private server accepts connections");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("the database is created");
        let _ = admin.close().await;
        self.url(&name)
    }

    /// The server's directory (its data, log and socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if self.running {
            let data = self.data_dir();
            let stopped =
                self.command("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]).output();
            if !stopped.is_ok_and(|o| o.status.success()) {
                eprintln!("warning: the private PostgreSQL in {} did not stop", self.dir.path().display());
            }
        }
    }
}
