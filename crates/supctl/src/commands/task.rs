//! `supctl task list|get`: supervision tasks (监督评估任务), ids and codes.

use clap::{Subcommand, ValueEnum};
use supervision_kit::Bureau;
use supervision_proto::{
    common::PageRequest,
    dispatch::{
        GetTaskRequest, ListTasksRequest, Task, TaskMode, TaskOrigin, TaskStatus,
        dispatch_service_client::DispatchServiceClient,
    },
};

use crate::{
    commands::draw::time,
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    Open,
    Staffing,
    Staffed,
    Understaffed,
    InProgress,
    Blocked,
    Completed,
    Cancelled,
}

impl Status {
    fn to_proto(self) -> TaskStatus {
        match self {
            Status::Open => TaskStatus::Open,
            Status::Staffing => TaskStatus::Staffing,
            Status::Staffed => TaskStatus::Staffed,
            Status::Understaffed => TaskStatus::Understaffed,
            Status::InProgress => TaskStatus::InProgress,
            Status::Blocked => TaskStatus::Blocked,
            Status::Completed => TaskStatus::Completed,
            Status::Cancelled => TaskStatus::Cancelled,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Shows one task.
    Get { task_id: String },
    /// Lists tasks by first session date; county roles see their own bureau's.
    List {
        /// Dispatching bureau as a division code (440703) or name (蓬江区).
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

pub async fn run(command: TaskCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    match command {
        TaskCommand::Get { task_id } => {
            let task = client.get_task(GetTaskRequest { id: task_id }).await?.into_inner().task.unwrap_or_default();
            out.document(&to_json(&task));
        }
        TaskCommand::List { bureau, status, page_size, page_token } => {
            let request = ListTasksRequest {
                page: Some(PageRequest { page_size, page_token }),
                dispatching_bureau: bureau.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                status: status.map_or(0, |s| s.to_proto() as i32),
                ..Default::default()
            };
            let page = client.list_tasks(request).await?.into_inner();
            let rows = page
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.task_number.clone(),
                        bureau_name(t.dispatching_bureau),
                        t.institution_id.clone(),
                        status_name(t.status),
                        format!("{}/{}", t.accepted_count, t.team_size),
                        first_session(t),
                    ]
                })
                .collect();
            out.rows(&["id", "number", "bureau", "institution", "status", "accepted", "first session"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

fn bureau_name(value: i32) -> String {
    Bureau::from_proto(value).map(|b| b.to_string()).unwrap_or_default()
}

fn status_name(value: i32) -> String {
    TaskStatus::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("TASK_STATUS_").to_owned())
        .unwrap_or_default()
}

fn first_session(t: &Task) -> String {
    t.sessions.first().map(session).unwrap_or_default()
}

fn session(s: &supervision_proto::dispatch::TaskSession) -> String {
    let date = s.date.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default();
    let half = supervision_proto::common::HalfDay::try_from(s.half_day)
        .map(|h| h.as_str_name().trim_start_matches("HALF_DAY_").to_owned())
        .unwrap_or_default();
    format!("{date} {half}")
}

fn to_json(t: &Task) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "task_number": t.task_number,
        "dispatching_bureau": bureau_name(t.dispatching_bureau),
        "institution_id": t.institution_id,
        "title": t.title,
        "mode": TaskMode::try_from(t.mode).map(|m| m.as_str_name().trim_start_matches("TASK_MODE_").to_owned()).unwrap_or_default(),
        "origin": TaskOrigin::try_from(t.origin).map(|m| m.as_str_name().trim_start_matches("TASK_ORIGIN_").to_owned()).unwrap_or_default(),
        "status": status_name(t.status),
        "team_size": t.team_size,
        "backup_count": t.backup_count,
        "accepted_count": t.accepted_count,
        "urgent": t.urgent,
        "edition_number": t.edition_number,
        "sessions": t.sessions.iter().map(session).collect::<Vec<_>>(),
        "cancel_reason": t.cancel_reason,
        "created": time(t.create_time.map(|c| c.seconds)),
        "revision": t.revision,
    })
}
