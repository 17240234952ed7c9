//! `supctl draw prepare|witness|execute|abandon|void`: running a random draw (D8, D12, D18). The
//! operator prepares it (the frozen list and the seed's commitment), a second staff user witnesses
//! it with their own token (optionally adding dice digits to the seed), and the operator executes
//! it, which makes the assignments. A prepared or witnessed draw may be abandoned; an executed one
//! is voided by a staff user other than its operator. Every call takes `--request-id` so a call
//! whose outcome is unknown can be repeated safely.

use clap::{Subcommand, ValueEnum};
use serde_json::Value;
use supervision_proto::dispatch::{
    AbandonDrawRequest, DrawKind, ExecuteDrawRequest, PrepareDrawRequest, VoidDrawRequest, WitnessDrawRequest,
    dispatch_service_client::DispatchServiceClient,
};

use crate::{
    commands::{
        assignment::{assignment_json, request_id, retry_hint},
        draw::to_json,
    },
    output::Output,
    settings::Settings,
};

/// Which draw `prepare` makes.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Kind {
    /// The task's first draw.
    #[default]
    Regular,
    /// After the previous order is exhausted with places unfilled (the task UNDERSTAFFED).
    Supplementary,
}

#[derive(Debug, Subcommand)]
pub enum DrawRunCommand {
    /// Prepares a draw of a task whose exceptions are approved: freezes the candidate list and
    /// commits to the seed (shown: the list's hash and count, the exclusions, the commitment).
    Prepare {
        /// The task (`tsk_...`).
        #[arg(long)]
        task: String,
        #[arg(long, value_enum, default_value_t = Kind::Regular)]
        kind: Kind,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Witnesses a prepared draw: run it with the witness's own token (`--token`), never the
    /// operator's (D12).
    Witness {
        /// The draw (`drw_...`).
        #[arg(long)]
        draw: String,
        /// Dice digits added to the seed: at least 20 of 0-9.
        #[arg(long, default_value = "")]
        dice: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Executes a witnessed draw: reveals the seed, ranks the candidates and makes the
    /// assignments (primaries notified, backups reserved).
    Execute {
        #[arg(long)]
        draw: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Abandons a prepared or witnessed draw, with a reason.
    Abandon {
        #[arg(long)]
        draw: String,
        #[arg(long)]
        reason: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Voids an executed draw and cancels its assignments: a staff user other than its operator.
    Void {
        #[arg(long)]
        draw: String,
        #[arg(long)]
        reason: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
}

pub async fn run(command: DrawRunCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    match command {
        DrawRunCommand::Prepare { task, kind, request_id: id } => {
            let kind = match kind {
                Kind::Regular => DrawKind::Initial,
                Kind::Supplementary => DrawKind::Supplementary,
            };
            let request = PrepareDrawRequest { request_id: request_id(id), task_id: task, kind: kind as i32 };
            let key = request.request_id.clone();
            let answer = client.prepare_draw(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            out.document(&to_json(&answer.draw.unwrap_or_default()));
        }
        DrawRunCommand::Witness { draw, dice, request_id: id } => {
            let request = WitnessDrawRequest { request_id: request_id(id), draw_id: draw, dice_digits: dice };
            let key = request.request_id.clone();
            let answer = client.witness_draw(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            out.document(&to_json(&answer.draw.unwrap_or_default()));
        }
        DrawRunCommand::Execute { draw, request_id: id } => {
            let request = ExecuteDrawRequest { request_id: request_id(id), draw_id: draw };
            let key = request.request_id.clone();
            let answer = client.execute_draw(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            let mut document = to_json(&answer.draw.unwrap_or_default());
            document["assignments"] = Value::Array(answer.assignments.iter().map(assignment_json).collect());
            out.document(&document);
        }
        DrawRunCommand::Abandon { draw, reason, request_id: id } => {
            let request = AbandonDrawRequest { request_id: request_id(id), draw_id: draw, reason };
            let key = request.request_id.clone();
            let answer = client.abandon_draw(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            out.document(&to_json(&answer.draw.unwrap_or_default()));
        }
        DrawRunCommand::Void { draw, reason, request_id: id } => {
            let request = VoidDrawRequest { request_id: request_id(id), draw_id: draw, reason };
            let key = request.request_id.clone();
            let answer = client.void_draw(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
            let mut document = to_json(&answer.draw.unwrap_or_default());
            document["cancelled_assignment_ids"] = answer.cancelled_assignment_ids.into();
            out.document(&document);
        }
    }
    Ok(())
}
