//! `supctl incident record|get|list|statement|decide`: late declines and no-shows (from
//! dispatch), breaches of article 9, false materials (12(二)), records that arose (6(四)), the
//! expert's statement and the city bureau's decision (D4: never automatic).

use clap::Subcommand;
use supervision_proto::{
    common::{BureauCode, Evidence, PageRequest},
    registry::{
        DecideIncidentRequest, DisciplineRule, GetIncidentRequest, Incident, IncidentFinding, IncidentKind,
        IncidentOutcome, IncidentSource, IncidentStatus, ListIncidentsRequest, RecordIncidentRequest,
        RecordIncidentStatementRequest, registry_service_client::RegistryServiceClient,
    },
};

use super::relation::{code, date, name, on_behalf};
use crate::{
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Subcommand)]
pub enum IncidentCommand {
    /// Opens an incident: discipline-breach (with --rule), false-materials or record-arisen.
    Record {
        #[arg(long)]
        expert: String,
        /// discipline-breach, false-materials or record-arisen.
        #[arg(long)]
        kind: String,
        /// The article 9 rule breached, e.g. confidentiality, objectivity, recusal.
        #[arg(long)]
        rule: Option<String>,
        /// Who reported it: bureau, institution, public.
        #[arg(long, default_value = "bureau")]
        source: String,
        /// The reporting bureau (a county operator: its own), e.g. 440705.
        #[arg(long)]
        bureau: Option<String>,
        #[arg(long, default_value = "")]
        task: String,
        #[arg(long)]
        description: String,
        #[arg(long, default_value = "")]
        evidence: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one incident with its statements and decision.
    Get { id: String },
    /// Lists incidents.
    List {
        #[arg(long)]
        expert: Option<String>,
        /// reported, under-investigation or decided.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Adds the expert's statement (陈述); staff give --received-by for one handed in (D16).
    Statement {
        incident_id: String,
        #[arg(long)]
        text: String,
        /// How staff received it (D16): phone, wechat, in-person, in-app, email or letter (on paper).
        #[arg(long)]
        received_by: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// The city bureau's finding and decision.
    Decide {
        incident_id: String,
        /// substantiated or not-substantiated.
        #[arg(long)]
        finding: String,
        /// no-action, note, warning, suspension or termination.
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        note: String,
        /// When a suspension or termination takes effect (default today).
        #[arg(long)]
        effective: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
}

pub async fn run(command: IncidentCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    let fresh = |id: Option<String>| id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    match command {
        IncidentCommand::Record { expert, kind, rule, source, bureau, task, description, evidence, request_id } => {
            let request = RecordIncidentRequest {
                request_id: fresh(request_id),
                expert_id: expert,
                kind: code(
                    &kind,
                    "INCIDENT_KIND_",
                    |n| IncidentKind::from_str_name(n).map(|v| v as i32),
                    "an incident kind",
                )?,
                rule: rule
                    .as_deref()
                    .map(|r| {
                        code(
                            r,
                            "DISCIPLINE_RULE_",
                            |n| DisciplineRule::from_str_name(n).map(|v| v as i32),
                            "an article 9 rule",
                        )
                    })
                    .transpose()?
                    .unwrap_or(0),
                source: code(
                    &source,
                    "INCIDENT_SOURCE_",
                    |n| IncidentSource::from_str_name(n).map(|v| v as i32),
                    "an incident source",
                )?,
                assignment_id: String::new(),
                task_id: task,
                reporting_bureau: bureau.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                occur_time: None,
                description,
                evidence: (!evidence.is_empty()).then(|| Evidence { description: evidence, documents: vec![] }),
            };
            let incident = client.record_incident(request).await?.into_inner().incident.unwrap_or_default();
            out.document(&to_json(&incident));
        }
        IncidentCommand::Get { id } => {
            let incident =
                client.get_incident(GetIncidentRequest { id }).await?.into_inner().incident.unwrap_or_default();
            out.document(&to_json(&incident));
        }
        IncidentCommand::List { expert, status, page_size, page_token } => {
            let request = ListIncidentsRequest {
                page: Some(PageRequest { page_size, page_token }),
                expert_id: expert.unwrap_or_default(),
                status: status
                    .as_deref()
                    .map(|s| {
                        code(
                            s,
                            "INCIDENT_STATUS_",
                            |n| IncidentStatus::from_str_name(n).map(|v| v as i32),
                            "an incident status",
                        )
                    })
                    .transpose()?
                    .unwrap_or(0),
                ..Default::default()
            };
            let page = client.list_incidents(request).await?.into_inner();
            let headers = ["id", "expert_id", "kind", "rule", "status", "outcome"];
            let rows = page
                .incidents
                .iter()
                .map(|i| {
                    let j = to_json(i);
                    headers.iter().map(|h| j[h].as_str().unwrap_or_default().to_owned()).collect()
                })
                .collect();
            out.rows(&headers, rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        IncidentCommand::Statement { incident_id, text, received_by, request_id } => {
            let request = RecordIncidentStatementRequest {
                request_id: fresh(request_id),
                incident_id,
                text,
                evidence: None,
                on_behalf: on_behalf(received_by.as_deref(), "")?,
            };
            let incident = client.record_incident_statement(request).await?.into_inner().incident.unwrap_or_default();
            out.document(&to_json(&incident));
        }
        IncidentCommand::Decide { incident_id, finding, outcome, note, effective, request_id } => {
            let request = DecideIncidentRequest {
                request_id: fresh(request_id),
                incident_id,
                finding: code(
                    &finding,
                    "INCIDENT_FINDING_",
                    |n| IncidentFinding::from_str_name(n).map(|v| v as i32),
                    "a finding",
                )?,
                outcome: code(
                    &outcome,
                    "INCIDENT_OUTCOME_",
                    |n| IncidentOutcome::from_str_name(n).map(|v| v as i32),
                    "an outcome",
                )?,
                note,
                effective_date: effective.as_deref().map(date).transpose()?,
            };
            let decided = client.decide_incident(request).await?.into_inner();
            let mut json = to_json(&decided.incident.unwrap_or_default());
            json["status_change_id"] = serde_json::Value::String(decided.change.map(|c| c.id).unwrap_or_default());
            out.document(&json);
        }
    }
    Ok(())
}

fn to_json(i: &Incident) -> serde_json::Value {
    let decision = i.decision.clone().unwrap_or_default();
    let bureau = BureauCode::try_from(i.reporting_bureau).unwrap_or_default();
    serde_json::json!({
        "id": i.id,
        "expert_id": i.expert_id,
        "kind": name(IncidentKind::try_from(i.kind).unwrap_or_default().as_str_name(), "INCIDENT_KIND_"),
        "rule": name(DisciplineRule::try_from(i.rule).unwrap_or_default().as_str_name(), "DISCIPLINE_RULE_"),
        "source": name(IncidentSource::try_from(i.source).unwrap_or_default().as_str_name(), "INCIDENT_SOURCE_"),
        "assignment_id": i.assignment_id,
        "task_id": i.task_id,
        "reporting_bureau": name(bureau.as_str_name(), "BUREAU_CODE_"),
        "description": i.description,
        "status": name(IncidentStatus::try_from(i.status).unwrap_or_default().as_str_name(), "INCIDENT_STATUS_"),
        "statements": i.statements.iter().map(|s| s.text.clone()).collect::<Vec<_>>(),
        "finding": name(IncidentFinding::try_from(decision.finding).unwrap_or_default().as_str_name(), "INCIDENT_FINDING_"),
        "outcome": name(IncidentOutcome::try_from(decision.outcome).unwrap_or_default().as_str_name(), "INCIDENT_OUTCOME_"),
        "decision_note": decision.note,
        "recorded_by": i.recorded_by.as_ref().map(|a| a.subject.clone()).unwrap_or_default(),
    })
}
