use clap::Parser;
use supervision_kit::{Shutdown, app::migrate_only};
use supervision_recruitment::{App, Config, app::MIGRATIONS};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    // Flushes the spans still buffered when it is dropped, after the service has stopped.
    let _telemetry = config.common.init_telemetry("recruitment")?;
    if config.common.migrate_only {
        return Ok(migrate_only(&config.database_url, &MIGRATIONS).await?);
    }
    let app = App::build(&config).await?;
    app.run_until_stopped(Shutdown::on_process_signals()).await
}
