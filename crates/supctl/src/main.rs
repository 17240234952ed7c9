//! `supctl` — the admin CLI of the supervision system, for bureau staff and operators.
//!
//! `supctl [--output table|json] <noun> <verb> ...`. Endpoints and the token come from flags,
//! then the environment, then `~/.config/supctl/config.toml`. Builds gRPC clients only. Exit
//! codes follow the gRPC status so scripts can branch (see `exit_code`).

mod commands;
mod output;
mod settings;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::{output::Output, settings::GlobalArgs};

#[derive(Debug, Parser)]
#[command(name = "supctl", version, about = "Admin CLI of the Jiangmen supervision-expert system")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Health of every service (or of those named).
    Health {
        /// Only these services (registry, recruitment, dispatch, finance).
        #[arg(long = "service")]
        only: Vec<String>,
    },
    /// Signing keys for tokens.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Tokens for people and services.
    #[command(subcommand)]
    Token(commands::token::TokenCommand),
    /// Training and evaluation institutions (article 3).
    #[command(subcommand)]
    Institution(commands::institution::InstitutionCommand),
    /// Draws (抽取): show, export for re-running with the PyPI package, verify client-side.
    #[command(subcommand)]
    Draw(commands::draw::DrawCommand),
    /// Supervision tasks (监督评估任务).
    #[command(subcommand)]
    Task(commands::task::TaskCommand),
    /// Experts, masked as the registry returns them.
    #[command(subcommand)]
    Expert(commands::expert::ExpertCommand),
    /// The audit chain of a service.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// The working-day calendar (工作日) and D3 decline deadlines.
    Calendar(commands::calendar::CalendarArgs),
    /// The policy editions in force (D6) and their parameters.
    Policy(commands::policy::PolicyArgs),
    /// Shell completions: `supctl completions bash > /etc/bash_completion.d/supctl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.global.output);
    let result = match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "supctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Keys(cmd) => commands::keys::run(cmd, &out),
        Command::Token(cmd) => {
            settings::Settings::resolve(&cli.global).and_then(|s| commands::token::run(cmd, &s, &out))
        }
        Command::Health { only } => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::health::run(&only, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Audit(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::audit::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Institution(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::institution::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Draw(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::draw::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Task(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::task::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Expert(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::expert::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Calendar(args) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::calendar::run(args, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Policy(args) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::policy::run(args, &s, &out).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            out.error(&err);
            ExitCode::from(exit_code(&err))
        }
    }
}

/// 1 for local problems; 10 + the gRPC code for a refused call (13 = INVALID_ARGUMENT,
/// 15 = NOT_FOUND, 17 = PERMISSION_DENIED, 19 = FAILED_PRECONDITION, 26 = UNAUTHENTICATED).
fn exit_code(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<tonic::Status>() {
        Some(status) => 10 + u8::try_from(status.code() as i32).unwrap_or(2),
        None => 1,
    }
}
