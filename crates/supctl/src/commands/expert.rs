//! `supctl expert get|list|import|export`: experts as the registry returns them, personal fields masked by the
//! caller's role (supctl masks nothing itself and unmasks nothing).

use clap::{Subcommand, ValueEnum};
use supervision_kit::Bureau;
use supervision_proto::{
    common::{PageRequest, locality::Place},
    registry::{
        Expert, ExpertStatus, GetExpertRequest, ListExpertsRequest, registry_service_client::RegistryServiceClient,
    },
};

use crate::{
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    NotAppointed,
    Active,
    Suspended,
    Retired,
    Terminated,
    Lapsed,
}

impl Status {
    fn to_proto(self) -> ExpertStatus {
        match self {
            Status::NotAppointed => ExpertStatus::NotAppointed,
            Status::Active => ExpertStatus::Active,
            Status::Suspended => ExpertStatus::Suspended,
            Status::Retired => ExpertStatus::Retired,
            Status::Terminated => ExpertStatus::Terminated,
            Status::Lapsed => ExpertStatus::Lapsed,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ExpertCommand {
    /// Shows one expert.
    Get { expert_id: String },
    /// Lists experts, ordered by id.
    List {
        /// Case-sensitive substring of the name.
        #[arg(long)]
        name: Option<String>,
        /// County as a division code (440705) or name (新会区).
        #[arg(long)]
        county: Option<String>,
        #[arg(long, value_enum)]
        status: Option<Status>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Imports experts with their terms, training and past outcomes from XLSX or CSV
    /// (docs/import-export.md); all or nothing.
    Import(super::import::ImportArgs),
    /// Exports experts to XLSX or CSV, as your role may see them.
    Export {
        #[command(flatten)]
        args: super::import::ExportArgs,
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// County as a division code (440705) or name (新会区).
        #[arg(long)]
        county: Option<String>,
    },
}

pub async fn run(command: ExpertCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let client = || anyhow::Ok(RegistryServiceClient::new(settings.authed("registry")?));
    match command {
        ExpertCommand::Import(args) => {
            return super::import::import(super::import::Noun::Experts, args, settings, out).await;
        }
        ExpertCommand::Export { args, status, county } => {
            let filters = super::import::ExpertFilters {
                status: status.map_or(0, |s| s.to_proto() as i32),
                county: county.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
            };
            return super::import::export_experts(args, filters, settings, out).await;
        }
        ExpertCommand::Get { expert_id } => {
            let expert =
                client()?.get_expert(GetExpertRequest { id: expert_id }).await?.into_inner().expert.unwrap_or_default();
            out.document(&to_json(&expert));
        }
        ExpertCommand::List { name, county, status, page_size, page_token } => {
            let request = ListExpertsRequest {
                page: Some(PageRequest { page_size, page_token }),
                status: status.map_or(0, |s| s.to_proto() as i32),
                county: county.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                name_contains: name.unwrap_or_default(),
                ..Default::default()
            };
            let page = client()?.list_experts(request).await?.into_inner();
            let rows = page
                .experts
                .iter()
                .map(|e| {
                    let p = e.profile.clone().unwrap_or_default();
                    vec![
                        e.id.clone(),
                        p.name.clone(),
                        status_name(e.status),
                        county_of(&p),
                        p.employer.and_then(|x| x.organisation).map(|o| o.name).unwrap_or_default(),
                        p.contact.map(|c| c.mobile).unwrap_or_default(),
                    ]
                })
                .collect();
            out.rows(&["id", "name", "status", "county", "employer", "mobile"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

fn status_name(value: i32) -> String {
    ExpertStatus::try_from(value)
        .map(|s| s.as_str_name().trim_start_matches("EXPERT_STATUS_").to_owned())
        .unwrap_or_default()
}

fn county_of(p: &supervision_proto::registry::ExpertProfile) -> String {
    match p.locality.as_ref().and_then(|l| l.place.as_ref()) {
        Some(Place::County(code)) => Bureau::from_proto(*code).map(|b| b.to_string()).unwrap_or_default(),
        Some(_) => "outside Jiangmen".into(),
        None => String::new(),
    }
}

fn to_json(e: &Expert) -> serde_json::Value {
    let p = e.profile.clone().unwrap_or_default();
    let contact = p.contact.clone().unwrap_or_default();
    let employer = p.employer.clone().unwrap_or_default();
    serde_json::json!({
        "id": e.id,
        "name": p.name,
        "status": status_name(e.status),
        "county": county_of(&p),
        "identity": p.identity.as_ref().map(|i| i.number.clone()).unwrap_or_default(),
        "mobile": contact.mobile,
        "email": contact.email,
        "employer": employer.organisation.map(|o| o.name).unwrap_or_default(),
        "post": employer.post,
        "professional_title": p.professional_title,
        "bank_account": p.bank_account.as_ref().map(|b| b.account_number.clone()).unwrap_or_default(),
        "trained": e.trained,
        "last_confirmed_year": e.last_confirmed_year,
        "revision": e.revision,
    })
}
