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
    /// Draws (抽取): prepare, witness, execute, abandon, void, designate; show, export for
    /// re-running with the PyPI package, verify client-side.
    #[command(subcommand)]
    Draw(commands::draw::DrawCommand),
    /// Supervision tasks (监督评估任务): create, update, cancel, approve an exception, get, list.
    #[command(subcommand)]
    Task(commands::task::TaskCommand),
    /// Dispatch letters (派遣函): show an assignment's letter, verify a number and code.
    #[command(subcommand)]
    Letter(commands::letter::LetterCommand),
    /// Assignments (委派): roster, answers entered for experts (D16), cancel, no-show, replacements.
    #[command(subcommand)]
    Assignment(commands::assignment::AssignmentCommand),
    /// Sessions an expert worked on an assignment (D1, D2).
    #[command(subcommand)]
    Session(commands::session::SessionCommand),
    /// Reports (article 8): submit, return, accept, correct, void, list, attachments.
    #[command(subcommand)]
    Report(commands::report::ReportCommand),
    /// Submissions outside tasks (article 8(二)(三), D21): create, assign, answer, close.
    #[command(subcommand)]
    Submission(commands::submission::SubmissionCommand),
    /// Experts, masked as the registry returns them.
    #[command(subcommand)]
    Expert(commands::expert::ExpertCommand),
    /// Relations of experts with institutions, and conflicts (article 9(六)).
    #[command(subcommand)]
    Relation(commands::relation::RelationCommand),
    /// Incidents: breaches, false materials, records arisen; statements and decisions.
    #[command(subcommand)]
    Incident(commands::incident::IncidentCommand),
    /// Plenary and thematic meetings (article 13) and the yearly compliance view.
    #[command(subcommand)]
    Meeting(commands::meeting::MeetingCommand),
    /// Policy training sessions (article 4) and attendance.
    #[command(subcommand)]
    Training(commands::training::TrainingCommand),
    /// Experts' policy-publicity activities (article 8(四)).
    #[command(subcommand)]
    Activity(commands::activity::ActivityCommand),
    /// The audit chain of a service.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Fee lines (劳务费明细) of article 10.
    #[command(subcommand)]
    Fee(commands::finance::FeeCommand),
    /// Monthly statements with withholding (D9).
    #[command(subcommand)]
    Statement(commands::finance::StatementCommand),
    /// Payment batches (发放批次): create, submit, approve, reject, cancel, pay, get, list.
    #[command(subcommand)]
    Batch(commands::finance::BatchCommand),
    /// Finance exports to a file: bank file, withholding return, yearly statement, ledger.
    #[command(subcommand)]
    Export(commands::finance::ExportCommand),
    /// Checks that a bureau's payment month adds up (对账); non-zero exit when it does not.
    Reconcile(commands::finance::ReconcileArgs),
    /// The working-day calendar (工作日) and D3 decline deadlines.
    Calendar(commands::calendar::CalendarArgs),
    /// The policy editions in force (D6) and their parameters.
    Policy(commands::policy::PolicyArgs),
    /// Recruitment calls (征集, article 7(一)).
    #[command(subcommand)]
    Call(commands::recruitment::CallCommand),
    /// Applications (申报, article 7(二)).
    #[command(subcommand)]
    Application(commands::recruitment::ApplicationCommand),
    /// Review conclusions (资格审核, article 7(三)) and D21 acknowledgements.
    #[command(subcommand)]
    Review(commands::recruitment::ReviewCommand),
    /// Publicity batches (公示, article 7(四), D10) and their notices.
    #[command(subcommand)]
    Publicity(commands::recruitment::PublicityCommand),
    /// Objections (异议) raised during publicity.
    #[command(subcommand)]
    Objection(commands::recruitment::ObjectionCommand),
    /// Appointment decisions (确定任用, article 7(五)) and their delivery to the registry.
    #[command(subcommand)]
    Appoint(commands::recruitment::AppointCommand),
    /// Renewals (续任, article 11, D11).
    #[command(subcommand)]
    Renewal(commands::recruitment::RenewalCommand),
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
        Command::Call(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_call(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Application(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_application(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Review(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_review(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Publicity(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_publicity(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Objection(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_objection(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Appoint(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_appoint(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Renewal(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::recruitment::run_renewal(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Task(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::task::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Letter(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::letter::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Assignment(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::assignment::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Session(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::session::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Report(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::report::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Submission(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::submission::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Expert(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::expert::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Fee(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::finance::run_fee(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Statement(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::finance::run_statement(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Batch(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::finance::run_batch(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Export(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::finance::run_export(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Reconcile(args) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::finance::run_reconcile(args, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Relation(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::relation::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Incident(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::incident::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Meeting(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::meeting::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Training(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::training::run(cmd, &s, &out).await,
            Err(e) => Err(e),
        },
        Command::Activity(cmd) => match settings::Settings::resolve(&cli.global) {
            Ok(s) => commands::activity::run(cmd, &s, &out).await,
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
