//! `supctl training create|list|attendance`: policy training sessions (article 4); attendance
//! sets the experts' trained flag the draw reads.

use clap::Subcommand;
use supervision_proto::{
    common::PageRequest,
    registry::{
        CreateTrainingRequest, ListTrainingsRequest, RecordTrainingAttendanceRequest, Training, TrainingAttendance,
        registry_service_client::RegistryServiceClient,
    },
};

use super::relation::{date, date_text};
use crate::{output::Output, settings::Settings};

#[derive(Debug, Subcommand)]
pub enum TrainingCommand {
    /// Records a training session.
    Create {
        #[arg(long)]
        title: String,
        #[arg(long)]
        date: String,
        #[arg(long, default_value = "")]
        content: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists sessions of a year, or those an expert attended.
    List {
        #[arg(long, default_value_t = 0)]
        year: i32,
        #[arg(long)]
        expert: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Records who attended (replaces the list): `--expert exp_...` or `--expert exp_...=passed`.
    Attendance {
        training_id: String,
        #[arg(long = "expert", value_delimiter = ',')]
        experts: Vec<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
}

pub async fn run(command: TrainingCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    let fresh = |id: Option<String>| id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match command {
        TrainingCommand::Create { title, date: day, content, request_id } => {
            let request =
                CreateTrainingRequest { request_id: fresh(request_id), title, date: Some(date(&day)?), content };
            let training = client.create_training(request).await?.into_inner().training.unwrap_or_default();
            out.document(&to_json(&training));
        }
        TrainingCommand::List { year, expert, page_size, page_token } => {
            let request = ListTrainingsRequest {
                page: Some(PageRequest { page_size, page_token }),
                year,
                expert_id: expert.unwrap_or_default(),
            };
            let page = client.list_trainings(request).await?.into_inner();
            let rows = page
                .trainings
                .iter()
                .map(|t| {
                    vec![t.id.clone(), date_text(t.date.as_ref()), t.title.clone(), t.attendance.len().to_string()]
                })
                .collect();
            out.rows(&["id", "date", "title", "attended"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        TrainingCommand::Attendance { training_id, experts, request_id } => {
            let attendance = experts
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((id, result)) => {
                        TrainingAttendance { expert_id: id.trim().into(), assessment_result: result.trim().into() }
                    }
                    None => TrainingAttendance { expert_id: e.trim().into(), assessment_result: String::new() },
                })
                .collect();
            let request = RecordTrainingAttendanceRequest { request_id: fresh(request_id), training_id, attendance };
            let training = client.record_training_attendance(request).await?.into_inner().training.unwrap_or_default();
            out.document(&to_json(&training));
        }
    }
    Ok(())
}

fn to_json(t: &Training) -> serde_json::Value {
    serde_json::json!({
        "id": t.id,
        "title": t.title,
        "date": date_text(t.date.as_ref()),
        "content": t.content,
        "attendance": t.attendance.iter().map(|a| serde_json::json!({ "expert_id": a.expert_id, "assessment_result": a.assessment_result })).collect::<Vec<_>>(),
    })
}
