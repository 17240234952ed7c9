//! `supctl activity record|list`: experts' policy-publicity activities (article 8(四)); staff
//! enter one for an expert with --received-by (D16).

use clap::Subcommand;
use supervision_kit::Bureau;
use supervision_proto::{
    common::{Evidence, PageRequest},
    registry::{
        ListPublicityActivitiesRequest, PublicityActivity, RecordPublicityActivityRequest,
        registry_service_client::RegistryServiceClient,
    },
};

use super::relation::{date, date_text, on_behalf};
use crate::{
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Subcommand)]
pub enum ActivityCommand {
    /// Logs an activity.
    Record {
        #[arg(long)]
        expert: String,
        #[arg(long)]
        date: String,
        /// The bureau it was done in, e.g. 440705.
        #[arg(long)]
        bureau: String,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value = "")]
        audience: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long, default_value = "")]
        evidence: String,
        /// Entered for the expert (D16): phone, wechat, in-person, in-app, email or letter (on paper).
        #[arg(long)]
        received_by: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists activities.
    List {
        #[arg(long)]
        expert: Option<String>,
        #[arg(long, default_value_t = 0)]
        year: i32,
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

pub async fn run(command: ActivityCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    match command {
        ActivityCommand::Record {
            expert,
            date: day,
            bureau,
            topic,
            audience,
            description,
            evidence,
            received_by,
            request_id,
        } => {
            let request = RecordPublicityActivityRequest {
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                expert_id: expert,
                date: Some(date(&day)?),
                bureau: parse_bureau(&bureau)?.to_proto() as i32,
                topic,
                audience,
                description,
                evidence: (!evidence.is_empty()).then(|| Evidence { description: evidence, documents: vec![] }),
                on_behalf: on_behalf(received_by.as_deref(), "")?,
            };
            let activity = client.record_publicity_activity(request).await?.into_inner().activity.unwrap_or_default();
            out.record(&to_json(&activity));
        }
        ActivityCommand::List { expert, year, bureau, page_size, page_token } => {
            let request = ListPublicityActivitiesRequest {
                page: Some(PageRequest { page_size, page_token }),
                expert_id: expert.unwrap_or_default(),
                year,
                bureau: bureau.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
            };
            let page = client.list_publicity_activities(request).await?.into_inner();
            let headers = ["id", "expert_id", "date", "bureau", "topic"];
            let rows = page
                .activities
                .iter()
                .map(|a| {
                    let j = to_json(a);
                    headers.iter().map(|h| j[h].as_str().unwrap_or_default().to_owned()).collect()
                })
                .collect();
            out.rows(&headers, rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

fn to_json(a: &PublicityActivity) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "expert_id": a.expert_id,
        "date": date_text(a.date.as_ref()),
        "bureau": Bureau::from_proto(a.bureau).map(|b| b.to_string()).unwrap_or_default(),
        "topic": a.topic,
        "audience": a.audience,
        "description": a.description,
        "recorded_by": a.recorded_by.as_ref().map(|r| r.subject.clone()).unwrap_or_default(),
    })
}
