//! Services started in-process on port 0, each against its own fresh database.

use std::{net::SocketAddr, time::Duration};

use supervision_kit::Shutdown;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{Backend, TestDb};

/// A service serving on a free local port until dropped.
#[derive(Debug)]
pub struct RunningService {
    pub addr: SocketAddr,
    pub channel: Channel,
    shutdown: Shutdown,
    task: Option<JoinHandle<Result<(), String>>>,
    /// Dropped after the service stops (fields drop in order).
    _db: TestDb,
}

impl RunningService {
    /// Stops the service the way SIGTERM would and waits for it to finish.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(task) = self.task.take() {
            let outcome = tokio::time::timeout(Duration::from_secs(20), task).await;
            assert!(matches!(outcome, Ok(Ok(Ok(())))), "service did not stop cleanly: {outcome:?}");
        }
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Starts the registry on `127.0.0.1:0` against a fresh database of `backend`.
pub async fn spawn_registry(backend: Backend) -> RunningService {
    let db = TestDb::new(backend).await;
    let config = supervision_registry::Config {
        listen: "127.0.0.1:0".into(),
        database_url: db.url().to_owned(),
        log_format: supervision_kit::telemetry::LogFormat::Text,
    };
    let app = supervision_registry::App::build(&config).await.expect("registry builds");
    let addr = app.local_addr();
    let shutdown = Shutdown::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move { app.run_until_stopped(shutdown).await.map_err(|e| e.to_string()) }
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a valid URI")
        .connect()
        .await
        .expect("the registry accepts connections");
    RunningService { addr, channel, shutdown, task: Some(task), _db: db }
}
