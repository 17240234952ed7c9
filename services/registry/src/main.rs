use clap::Parser;
use supervision_kit::{Shutdown, telemetry};
use supervision_registry::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let app = App::build(&config).await?;
    app.run_until_stopped(Shutdown::on_process_signals()).await
}
