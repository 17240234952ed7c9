//! `supctl relation record|end|list|conflicts`: relations between experts and institutions or
//! people there, and the conflict query of article 9(六) (D18: ids and reason codes only).

use chrono::NaiveDate;
use clap::Subcommand;
use supervision_proto::{
    common::{self, DateRange, EntryChannel, Evidence, OnBehalf, Organisation, PageRequest, RelationType},
    registry::{
        ConflictPath, EndRelationRequest, ListRelationsRequest, QueryConflictsRequest, RecordRelationRequest, Relation,
        RelationSource, registry_service_client::RegistryServiceClient,
    },
};

use crate::{output::Output, settings::Settings};

/// A contract enum value by its name without the prefix (`past-employment`, `PAST_EMPLOYMENT`).
pub fn code(text: &str, prefix: &str, from_name: fn(&str) -> Option<i32>, what: &str) -> anyhow::Result<i32> {
    let name = format!("{prefix}{}", text.trim().to_ascii_uppercase().replace(['-', ' '], "_"));
    match from_name(&name) {
        Some(v) if v != 0 => Ok(v),
        _ => anyhow::bail!("`{text}` is not {what}"),
    }
}

/// The name of a contract enum value without its prefix.
pub fn name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

/// `YYYY-MM-DD` as a contract date.
pub fn date(text: &str) -> anyhow::Result<common::Date> {
    let d = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| anyhow::anyhow!("`{text}` is not YYYY-MM-DD"))?;
    use chrono::Datelike;
    Ok(common::Date { year: d.year(), month: i32::try_from(d.month())?, day: i32::try_from(d.day())? })
}

/// A contract date as `YYYY-MM-DD`; empty when unset.
pub fn date_text(d: Option<&common::Date>) -> String {
    d.filter(|d| d.year != 0).map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default()
}

/// How staff received what the expert declared (D16), as `phone`, `wechat`, `in-person`, ...
pub fn on_behalf(channel: Option<&str>, note: &str) -> anyhow::Result<Option<OnBehalf>> {
    let Some(channel) = channel else { return Ok(None) };
    let channel =
        code(channel, "ENTRY_CHANNEL_", |n| EntryChannel::from_str_name(n).map(|v| v as i32), "an entry channel")?;
    let now = chrono::Utc::now();
    Ok(Some(OnBehalf { channel, received_time: Some(prost_types_timestamp(now)), note: note.to_owned() }))
}

fn prost_types_timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}

// Parsed once per run; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum RelationCommand {
    /// Records a relation (current or past employment, director, shareholder, paid service,
    /// teacher-student, master-apprentice, colleague, relative, competitor, declared conflict).
    Record {
        #[arg(long)]
        expert: String,
        /// The relation type, e.g. past-employment, relative, declared-conflict.
        #[arg(long = "type")]
        kind: String,
        /// The registered institution (`ins_...`).
        #[arg(long, conflicts_with_all = ["organisation", "credit_code"])]
        institution: Option<String>,
        /// Or an organisation by name ...
        #[arg(long)]
        organisation: Option<String>,
        /// ... and optional credit code.
        #[arg(long)]
        credit_code: Option<String>,
        /// The person at the institution, for person relations.
        #[arg(long, default_value = "")]
        counterpart: String,
        #[arg(long, default_value = "")]
        counterpart_role: String,
        /// First day (YYYY-MM-DD).
        #[arg(long)]
        from: Option<String>,
        /// Last day, for a past relation.
        #[arg(long)]
        to: Option<String>,
        /// Where it comes from: bureau, self-declared, institution, import.
        #[arg(long, default_value = "bureau")]
        source: String,
        #[arg(long, default_value = "")]
        evidence: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Entered for the expert (D16): phone, wechat, in-person, in-app, email or letter (on paper).
        #[arg(long)]
        received_by: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Ends a relation on a day, or marks it recorded in error; nothing is deleted.
    End {
        relation_id: String,
        #[arg(long, required_unless_present = "in_error")]
        end_date: Option<String>,
        #[arg(long)]
        in_error: bool,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists the relations of an expert or of an institution.
    List {
        #[arg(long)]
        expert: Option<String>,
        #[arg(long)]
        institution: Option<String>,
        #[arg(long)]
        include_ended: bool,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Who is conflicted for an institution (and its parent and sub-units) over dates, and why.
    Conflicts {
        #[arg(long)]
        institution: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[arg(long, default_value_t = 100)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

pub async fn run(command: RelationCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RegistryServiceClient::new(settings.authed("registry")?);
    match command {
        RelationCommand::Record {
            expert,
            kind,
            institution,
            organisation,
            credit_code,
            counterpart,
            counterpart_role,
            from,
            to,
            source,
            evidence,
            note,
            received_by,
            request_id,
        } => {
            let request = RecordRelationRequest {
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                expert_id: expert,
                r#type: code(
                    &kind,
                    "RELATION_TYPE_",
                    |n| RelationType::from_str_name(n).map(|v| v as i32),
                    "a relation type",
                )?,
                institution_id: institution.unwrap_or_default(),
                organisation: (organisation.is_some() || credit_code.is_some()).then(|| Organisation {
                    name: organisation.unwrap_or_default(),
                    credit_code: credit_code.unwrap_or_default(),
                    institution_id: String::new(),
                }),
                counterpart_name: counterpart,
                counterpart_role,
                valid: Some(DateRange {
                    start: from.as_deref().map(date).transpose()?,
                    end: to.as_deref().map(date).transpose()?,
                }),
                source: code(
                    &source,
                    "RELATION_SOURCE_",
                    |n| RelationSource::from_str_name(n).map(|v| v as i32),
                    "a relation source",
                )?,
                evidence: (!evidence.is_empty()).then(|| Evidence { description: evidence, documents: vec![] }),
                note,
                on_behalf: on_behalf(received_by.as_deref(), "")?,
            };
            let relation = client.record_relation(request).await?.into_inner().relation.unwrap_or_default();
            out.record(&to_json(&relation));
        }
        RelationCommand::End { relation_id, end_date, in_error, reason, request_id } => {
            let request = EndRelationRequest {
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                relation_id,
                end_date: end_date.as_deref().map(date).transpose()?,
                recorded_in_error: in_error,
                reason,
            };
            let relation = client.end_relation(request).await?.into_inner().relation.unwrap_or_default();
            out.record(&to_json(&relation));
        }
        RelationCommand::List { expert, institution, include_ended, page_size, page_token } => {
            let request = ListRelationsRequest {
                page: Some(PageRequest { page_size, page_token }),
                expert_id: expert.unwrap_or_default(),
                institution_id: institution.unwrap_or_default(),
                r#type: 0,
                include_ended,
            };
            let page = client.list_relations(request).await?.into_inner();
            let rows = page
                .relations
                .iter()
                .map(|r| {
                    let j = to_json(r);
                    ["id", "expert_id", "type", "counterparty", "from", "to", "source"]
                        .iter()
                        .map(|k| j[k].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .collect();
            out.rows(&["id", "expert_id", "type", "counterparty", "from", "to", "source"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
        RelationCommand::Conflicts { institution, from, to, page_size, page_token } => {
            let request = QueryConflictsRequest {
                page: Some(PageRequest { page_size, page_token }),
                institution_id: institution,
                dates: Some(DateRange { start: Some(date(&from)?), end: Some(date(&to)?) }),
                expert_ids: vec![],
            };
            let page = client.query_conflicts(request).await?.into_inner();
            let mut rows = Vec::new();
            for e in &page.experts {
                for r in &e.reasons {
                    rows.push(vec![
                        e.expert_id.clone(),
                        name(
                            RelationType::try_from(r.relation_type).unwrap_or_default().as_str_name(),
                            "RELATION_TYPE_",
                        ),
                        name(ConflictPath::try_from(r.path).unwrap_or_default().as_str_name(), "CONFLICT_PATH_"),
                        r.relation_id.clone(),
                        date_text(r.conflicted_until.as_ref()),
                    ]);
                }
            }
            out.rows(&["expert_id", "relation", "path", "relation_id", "conflicted_until"], rows);
            if !page.next_page_token.is_empty() && !out.is_json() {
                eprintln!("more: --page-token {}", page.next_page_token);
            }
        }
    }
    Ok(())
}

fn to_json(r: &Relation) -> serde_json::Value {
    let organisation = r.organisation.clone().unwrap_or_default();
    let counterparty = if !r.institution_id.is_empty() { r.institution_id.clone() } else { organisation.name.clone() };
    let valid = r.valid.unwrap_or_default();
    serde_json::json!({
        "id": r.id,
        "expert_id": r.expert_id,
        "type": name(RelationType::try_from(r.r#type).unwrap_or_default().as_str_name(), "RELATION_TYPE_"),
        "counterparty": counterparty,
        "credit_code": organisation.credit_code,
        "counterpart_name": r.counterpart_name,
        "counterpart_role": r.counterpart_role,
        "from": date_text(valid.start.as_ref()),
        "to": date_text(valid.end.as_ref()),
        "source": name(RelationSource::try_from(r.source).unwrap_or_default().as_str_name(), "RELATION_SOURCE_"),
        "source_ref": r.source_ref,
        "note": r.note,
        "recorded_by": r.recorded_by.as_ref().map(|a| a.subject.clone()).unwrap_or_default(),
        "recorded_in_error": r.recorded_in_error,
        "end_reason": r.end_reason,
    })
}
