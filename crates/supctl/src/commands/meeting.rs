//! `supctl meeting create|get|list|attendance|minutes|compliance`: plenary and thematic
//! meetings (article 13) and the yearly compliance view.

use clap::Subcommand;
use supervision_proto::{
    common::PageRequest,
    registry::{
        CreateMeetingRequest, GetMeetingRequest, GetYearlyComplianceRequest, ListMeetingsRequest, Meeting,
        MeetingOpinion, MeetingType, RecordMeetingAttendanceRequest, RecordMeetingMinutesRequest,
        registry_service_client::RegistryServiceClient,
    },
};

use super::relation::{code, date, date_text, name};
use crate::{output::Output, settings::Settings};

#[derive(Debug, Subcommand)]
pub enum MeetingCommand {
    /// Schedules a meeting; a plenary without --invite invites every active expert.
    Create {
        /// plenary or thematic.
        #[arg(long = "type")]
        kind: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        date: String,
        #[arg(long, default_value = "")]
        location: String,
        #[arg(long, default_value = "")]
        agenda: String,
        /// Invited experts (repeat, or comma-separated).
        #[arg(long = "invite", value_delimiter = ',')]
        invited: Vec<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one meeting.
    Get { id: String },
    /// Lists meetings of a year.
    List {
        #[arg(long, default_value_t = 0)]
        year: i32,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Records who attended (replaces the list; they must be invited).
    Attendance {
        meeting_id: String,
        #[arg(long = "expert", value_delimiter = ',')]
        experts: Vec<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Records the minutes and the opinions raised (`--opinion exp_...=text`, repeatable).
    Minutes {
        meeting_id: String,
        #[arg(long)]
        minutes: String,
        #[arg(long = "opinion")]
        opinions: Vec<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The year's compliance figures (meetings, training, confirmations) with warnings.
    Compliance {
        #[arg(long)]
        year: i32,
    },
}

pub async fn run(command: MeetingCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    let fresh = |id: Option<String>| id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match command {
        MeetingCommand::Create { kind, title, date: day, location, agenda, invited, request_id } => {
            let request = CreateMeetingRequest {
                request_id: fresh(request_id),
                r#type: code(
                    &kind,
                    "MEETING_TYPE_",
                    |n| MeetingType::from_str_name(n).map(|v| v as i32),
                    "plenary or thematic",
                )?,
                title,
                date: Some(date(&day)?),
                location,
                agenda,
                invited_expert_ids: invited,
            };
            let meeting = client.create_meeting(request).await?.into_inner().meeting.unwrap_or_default();
            out.document(&to_json(&meeting));
        }
        MeetingCommand::Get { id } => {
            let meeting = client.get_meeting(GetMeetingRequest { id }).await?.into_inner().meeting.unwrap_or_default();
            out.document(&to_json(&meeting));
        }
        MeetingCommand::List { year, page_size, page_token } => {
            let request = ListMeetingsRequest { page: Some(PageRequest { page_size, page_token }), year, r#type: 0 };
            let page = client.list_meetings(request).await?.into_inner();
            let rows = page
                .meetings
                .iter()
                .map(|m| {
                    vec![
                        m.id.clone(),
                        name(MeetingType::try_from(m.r#type).unwrap_or_default().as_str_name(), "MEETING_TYPE_"),
                        date_text(m.date.as_ref()),
                        m.title.clone(),
                        m.invited_expert_ids.len().to_string(),
                        m.attended_expert_ids.len().to_string(),
                    ]
                })
                .collect();
            out.rows(&["id", "type", "date", "title", "invited", "attended"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        MeetingCommand::Attendance { meeting_id, experts, request_id } => {
            let request = RecordMeetingAttendanceRequest {
                request_id: fresh(request_id),
                meeting_id,
                attended_expert_ids: experts,
            };
            let meeting = client.record_meeting_attendance(request).await?.into_inner().meeting.unwrap_or_default();
            out.document(&to_json(&meeting));
        }
        MeetingCommand::Minutes { meeting_id, minutes, opinions, request_id } => {
            let opinions = opinions
                .iter()
                .map(|o| {
                    let (expert, text) = o
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("--opinion takes EXPERT_ID=TEXT, not `{o}`"))?;
                    Ok(MeetingOpinion {
                        expert_id: expert.trim().to_owned(),
                        text: text.trim().to_owned(),
                        submission_id: String::new(),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let request = RecordMeetingMinutesRequest { request_id: fresh(request_id), meeting_id, minutes, opinions };
            let meeting = client.record_meeting_minutes(request).await?.into_inner().meeting.unwrap_or_default();
            out.document(&to_json(&meeting));
        }
        MeetingCommand::Compliance { year } => {
            let c = client.get_yearly_compliance(GetYearlyComplianceRequest { year }).await?.into_inner();
            out.document(&serde_json::json!({
                "year": c.year,
                "plenary_meetings": c.plenary_meetings,
                "required_plenary_meetings": c.required_plenary_meetings,
                "thematic_meetings": c.thematic_meetings,
                "trainings": c.trainings,
                "active_experts": c.active_experts,
                "untrained_active_experts": c.untrained_active_experts,
                "self_confirmations_outstanding": c.self_confirmations_outstanding,
                "publicity_activities": c.publicity_activities,
                "expiring_items": c.expiring_items,
                "warnings": c.warnings,
            }));
        }
    }
    Ok(())
}

fn to_json(m: &Meeting) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "type": name(MeetingType::try_from(m.r#type).unwrap_or_default().as_str_name(), "MEETING_TYPE_"),
        "title": m.title,
        "date": date_text(m.date.as_ref()),
        "location": m.location,
        "agenda": m.agenda,
        "invited": m.invited_expert_ids,
        "attended": m.attended_expert_ids,
        "minutes": m.minutes,
        "opinions": m.opinions.iter().map(|o| serde_json::json!({ "expert_id": o.expert_id, "text": o.text })).collect::<Vec<_>>(),
    })
}
