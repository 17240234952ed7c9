//! `supctl session record|list`: the sessions an expert worked on an assignment (D1, D2), entered
//! by the expert or by staff from a sign-in sheet (D16). They replace the assignment's list until
//! its report is accepted; afterwards `report correct --session ...` changes them.

use clap::Subcommand;
use supervision_proto::dispatch::{
    GetAssignmentRequest, RecordWorkedSessionsRequest, dispatch_service_client::DispatchServiceClient,
};

use crate::{
    commands::assignment::{EntryArgs, assignment_json, listing, parse_worked, request_id, retry_hint, worked_json},
    output::Output,
    settings::Settings,
};

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Records every session worked on an ACCEPTED assignment, replacing those recorded before.
    Record {
        assignment_id: String,
        /// A session as DATE,AM|PM,HH:MM,MINUTES[,NOTE], e.g. `2026-06-08,AM,09:00,180`: the
        /// half-day agrees with the start (AM before 12:30), minutes exclude breaks and travel.
        /// Repeat for each session; a session across 12:30 is entered as two.
        #[arg(long = "worked", required = true)]
        worked: Vec<String>,
        #[command(flatten)]
        entry: EntryArgs,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists the sessions recorded on an assignment.
    List { assignment_id: String },
}

pub async fn run(command: SessionCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    match command {
        SessionCommand::Record { assignment_id, worked, entry, request_id: id } => {
            let sessions = worked.iter().map(|w| parse_worked(w)).collect::<anyhow::Result<Vec<_>>>()?;
            let request = RecordWorkedSessionsRequest {
                request_id: request_id(id),
                assignment_id,
                sessions,
                on_behalf: entry.on_behalf()?,
            };
            let key = request.request_id.clone();
            let answer = client.record_worked_sessions(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            out.document(&assignment_json(&answer.assignment.unwrap_or_default()));
        }
        SessionCommand::List { assignment_id } => {
            let a = client.get_assignment(GetAssignmentRequest { id: assignment_id }).await?.into_inner();
            let items = a.assignment.unwrap_or_default().worked_sessions.iter().map(worked_json).collect();
            listing(
                out,
                &["date", "half-day", "start", "minutes", "task session", "note"],
                &["date", "half_day", "start", "minutes", "task_session_id", "note"],
                items,
                "",
            );
        }
    }
    Ok(())
}
