//! `supctl call|application|review|publicity|objection|appoint|renewal`: the steps of article 7
//! and renewals (article 11) against the recruitment service.

use clap::{Subcommand, ValueEnum};
use supervision_proto::{
    common::{Date, FileFormat, PageRequest},
    recruitment::{
        Application, ApplicationStatus, AppointmentDecision, Call, CallStatus, ConcludeReviewRequest,
        DecideAppointmentsRequest, DecideRenewalRequest, DeliveryStatus, GetApplicationRequest,
        GetCallComplianceRequest, GetCallRequest, GetObjectionRequest, GetPublicityBatchRequest, GetRenewalRequest,
        ListApplicationsRequest, ListAppointmentDecisionsRequest, ListCallsRequest, ListObjectionsRequest,
        ListPublicityBatchesRequest, ListRenewalsRequest, Objection, ObjectionStatus, PublicityBatch,
        PublicityBatchStatus, RenderPublicityNoticeRequest, Renewal, RenewalDecision, RenewalInitiator, RenewalStatus,
        ResolveObjectionRequest, ReviewOutcome, StartRenewalRequest,
        recruitment_service_client::RecruitmentServiceClient,
    },
};

use crate::{commands::draw::time, output::Output, settings::Settings};

fn fresh(id: Option<String>) -> String {
    id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn day(d: Option<Date>) -> String {
    d.map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day)).unwrap_or_default()
}

fn parse_day(s: &str) -> anyhow::Result<Date> {
    let d: chrono::NaiveDate = s.parse().map_err(|e| anyhow::anyhow!("{s} is not a date (YYYY-MM-DD): {e}"))?;
    use chrono::Datelike;
    Ok(Date { year: d.year(), month: i32::try_from(d.month())?, day: i32::try_from(d.day())? })
}

fn name<E: TryFrom<i32>>(value: i32, prefix: &str, as_str: fn(&E) -> &'static str) -> String {
    E::try_from(value).map(|e| as_str(&e).trim_start_matches(prefix).to_owned()).unwrap_or_default()
}

fn page(page_size: i32, page_token: String) -> Option<PageRequest> {
    Some(PageRequest { page_size, page_token })
}

fn more(out: &Output, token: &str) {
    if !token.is_empty() && !out.is_json() {
        eprintln!("more: --page-token {token}");
    }
}

// --- call ----------------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum CallCommand {
    /// Shows one call.
    Get { call_id: String },
    /// Lists calls, newest year first.
    List {
        #[arg(long)]
        year: Option<i32>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Whether a year had the published calls article 7(一) requires.
    Compliance { year: i32 },
}

fn call_json(c: &Call) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "year": c.year,
        "title": c.title,
        "status": name::<CallStatus>(c.status, "CALL_STATUS_", CallStatus::as_str_name),
        "application_start": time(c.application_start_time.map(|t| t.seconds)),
        "application_end": time(c.application_end_time.map(|t| t.seconds)),
        "edition_number": c.edition_number,
        "publications": c.publications.iter().map(|p| serde_json::json!({
            "date": day(p.publish_date), "address": p.address,
        })).collect::<Vec<_>>(),
    })
}

pub async fn run_call(command: CallCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    match command {
        CallCommand::Get { call_id } => {
            let call = client.get_call(GetCallRequest { id: call_id }).await?.into_inner().call.unwrap_or_default();
            out.document(&call_json(&call));
        }
        CallCommand::List { year, page_size, page_token } => {
            let request =
                ListCallsRequest { page: page(page_size, page_token), year: year.unwrap_or(0), ..Default::default() };
            let answer = client.list_calls(request).await?.into_inner();
            let rows = answer
                .calls
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.year.to_string(),
                        c.title.clone(),
                        name::<CallStatus>(c.status, "CALL_STATUS_", CallStatus::as_str_name),
                        time(c.application_end_time.map(|t| t.seconds)),
                    ]
                })
                .collect();
            out.rows(&["id", "year", "title", "status", "applications until"], rows);
            more(out, &answer.next_page_token);
        }
        CallCommand::Compliance { year } => {
            let c = client.get_call_compliance(GetCallComplianceRequest { year }).await?.into_inner();
            out.document(&serde_json::json!({
                "year": c.year,
                "published_calls": c.published_calls,
                "required_calls": c.required_calls,
                "met": c.met,
                "call_ids": c.call_ids,
                "warnings": c.warnings,
            }));
        }
    }
    Ok(())
}

// --- application and review ----------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum ApplicationCommand {
    /// Shows one application (personal data masked by your role).
    Get { application_id: String },
    /// Lists applications.
    List {
        #[arg(long)]
        call: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

fn application_json(a: &Application) -> serde_json::Value {
    let p = a.profile.clone().unwrap_or_default();
    serde_json::json!({
        "id": a.id,
        "call_id": a.call_id,
        "name": p.name,
        "identity": p.identity.map(|i| i.number).unwrap_or_default(),
        "status": name::<ApplicationStatus>(a.status, "APPLICATION_STATUS_", ApplicationStatus::as_str_name),
        "submission_count": a.submission_count,
        "submitted": time(a.submit_time.map(|t| t.seconds)),
        "materials": a.materials.iter().map(|m| {
            let d = m.document.clone().unwrap_or_default();
            serde_json::json!({
                "id": m.id, "file_name": d.file_name, "size_bytes": d.size_bytes, "sha256": d.sha256,
                "removed": m.removed,
            })
        }).collect::<Vec<_>>(),
        "conclusion": a.conclusion.as_ref().map(|c| serde_json::json!({
            "outcome": name::<ReviewOutcome>(c.outcome, "REVIEW_OUTCOME_", ReviewOutcome::as_str_name),
            "reason": c.reason,
            "reviewer": c.reviewer.as_ref().map(|r| r.subject.clone()).unwrap_or_default(),
        })),
        "reapplication_flags": a.reapplication.as_ref().map(|r| r.flags.iter().map(|f| f.detail.clone()).collect::<Vec<_>>()),
        "reapplication_acknowledged_by": a.reapplication.as_ref().and_then(|r| r.acknowledged_by.as_ref()).map(|x| x.subject.clone()),
        "expert_id": a.expert_id,
        "certificate_number": a.certificate_number,
    })
}

pub async fn run_application(command: ApplicationCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    match command {
        ApplicationCommand::Get { application_id } => {
            let a = client
                .get_application(GetApplicationRequest { id: application_id })
                .await?
                .into_inner()
                .application
                .unwrap_or_default();
            out.document(&application_json(&a));
        }
        ApplicationCommand::List { call, page_size, page_token } => {
            let request = ListApplicationsRequest {
                page: page(page_size, page_token),
                call_id: call.unwrap_or_default(),
                ..Default::default()
            };
            let answer = client.list_applications(request).await?.into_inner();
            let rows = answer
                .applications
                .iter()
                .map(|a| {
                    let p = a.profile.clone().unwrap_or_default();
                    vec![
                        a.id.clone(),
                        p.name,
                        p.identity.map(|i| i.number).unwrap_or_default(),
                        name::<ApplicationStatus>(a.status, "APPLICATION_STATUS_", ApplicationStatus::as_str_name),
                        a.certificate_number.clone(),
                    ]
                })
                .collect();
            out.rows(&["id", "name", "identity", "status", "certificate"], rows);
            more(out, &answer.next_page_token);
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Outcome {
    Passed,
    Rejected,
    Returned,
}

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Concludes a review (资格审核): passed, rejected or returned for correction (with a reason).
    Conclude {
        application_id: String,
        #[arg(long, value_enum)]
        outcome: Outcome,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Acknowledges the re-application warning of D21 with a note.
    Acknowledge {
        application_id: String,
        #[arg(long)]
        note: String,
        #[arg(long)]
        request_id: Option<String>,
    },
}

pub async fn run_review(command: ReviewCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    let application = match command {
        ReviewCommand::Conclude { application_id, outcome, reason, request_id } => {
            let outcome = match outcome {
                Outcome::Passed => ReviewOutcome::Passed,
                Outcome::Rejected => ReviewOutcome::Rejected,
                Outcome::Returned => ReviewOutcome::Returned,
            };
            let request = ConcludeReviewRequest {
                request_id: fresh(request_id),
                application_id,
                outcome: outcome as i32,
                reason,
            };
            client.conclude_review(request).await?.into_inner().application
        }
        ReviewCommand::Acknowledge { application_id, note, request_id } => {
            let request = supervision_proto::recruitment::AcknowledgeReapplicationWarningRequest {
                request_id: fresh(request_id),
                application_id,
                note,
            };
            client.acknowledge_reapplication_warning(request).await?.into_inner().application
        }
    };
    out.document(&application_json(&application.unwrap_or_default()));
    Ok(())
}

// --- publicity and objections --------------------------------------------------------------------

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum NoticeFormat {
    Html,
    Text,
    Xlsx,
}

#[derive(Debug, Subcommand)]
pub enum PublicityCommand {
    /// Shows one publicity batch.
    Get { batch_id: String },
    /// Lists publicity batches, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Writes a batch's notice (HTML for the website, text for WeChat) or its XLSX list to a file.
    Render {
        batch_id: String,
        #[arg(long, value_enum, default_value = "html")]
        format: NoticeFormat,
        /// The file to write; the notice's own name in the current directory by default.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn batch_json(b: &PublicityBatch) -> serde_json::Value {
    let period = b.period.unwrap_or_default();
    serde_json::json!({
        "id": b.id,
        "title": b.title,
        "status": name::<PublicityBatchStatus>(b.status, "PUBLICITY_BATCH_STATUS_", PublicityBatchStatus::as_str_name),
        "start": day(period.start),
        "end": day(period.end),
        "days": b.days,
        "ends": time(b.end_time.map(|t| t.seconds)),
        "ends_on_non_working_day": b.ends_on_non_working_day,
        "warnings": b.warnings,
        "application_ids": b.application_ids,
    })
}

pub async fn run_publicity(command: PublicityCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    match command {
        PublicityCommand::Get { batch_id } => {
            let b = client
                .get_publicity_batch(GetPublicityBatchRequest { id: batch_id })
                .await?
                .into_inner()
                .batch
                .unwrap_or_default();
            out.document(&batch_json(&b));
        }
        PublicityCommand::List { page_size, page_token } => {
            let request = ListPublicityBatchesRequest { page: page(page_size, page_token), ..Default::default() };
            let answer = client.list_publicity_batches(request).await?.into_inner();
            let rows = answer
                .batches
                .iter()
                .map(|b| {
                    let j = batch_json(b);
                    ["id", "title", "status", "start", "end"]
                        .iter()
                        .map(|k| j[*k].as_str().map_or_else(|| j[*k].to_string(), str::to_owned))
                        .collect()
                })
                .collect();
            out.rows(&["id", "title", "status", "start", "end"], rows);
            more(out, &answer.next_page_token);
        }
        PublicityCommand::Render { batch_id, format, out: path } => {
            let format = match format {
                NoticeFormat::Html => FileFormat::Html,
                NoticeFormat::Text => FileFormat::Text,
                NoticeFormat::Xlsx => FileFormat::Xlsx,
            };
            let file = client
                .render_publicity_notice(RenderPublicityNoticeRequest { batch_id, format: format as i32 })
                .await?
                .into_inner()
                .file
                .unwrap_or_default();
            let path = path.unwrap_or_else(|| std::path::PathBuf::from(&file.file_name));
            std::fs::write(&path, &file.content)?;
            out.record(&serde_json::json!({
                "file": path.display().to_string(),
                "media_type": file.media_type,
                "bytes": file.content.len(),
                "sha256": file.sha256,
            }));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resolution {
    Upheld,
    Dismissed,
}

#[derive(Debug, Subcommand)]
pub enum ObjectionCommand {
    /// Shows one objection.
    Get { objection_id: String },
    /// Lists objections.
    List {
        #[arg(long)]
        application: Option<String>,
        #[arg(long)]
        batch: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Resolves an objection: upheld (the application fails) or dismissed, with the findings.
    Resolve {
        objection_id: String,
        #[arg(long, value_enum)]
        outcome: Resolution,
        #[arg(long)]
        findings: String,
        #[arg(long)]
        request_id: Option<String>,
    },
}

fn objection_json(o: &Objection) -> serde_json::Value {
    serde_json::json!({
        "id": o.id,
        "application_id": o.application_id,
        "batch_id": o.batch_id,
        "received": time(o.receive_time.map(|t| t.seconds)),
        "objector": o.objector_name,
        "content": o.content,
        "status": name::<ObjectionStatus>(o.status, "OBJECTION_STATUS_", ObjectionStatus::as_str_name),
        "findings": o.findings,
        "resolved_by": o.resolved_by.as_ref().map(|a| a.subject.clone()).unwrap_or_default(),
    })
}

pub async fn run_objection(command: ObjectionCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    match command {
        ObjectionCommand::Get { objection_id } => {
            let o = client
                .get_objection(GetObjectionRequest { id: objection_id })
                .await?
                .into_inner()
                .objection
                .unwrap_or_default();
            out.document(&objection_json(&o));
        }
        ObjectionCommand::List { application, batch, page_size, page_token } => {
            let request = ListObjectionsRequest {
                page: page(page_size, page_token),
                application_id: application.unwrap_or_default(),
                batch_id: batch.unwrap_or_default(),
                ..Default::default()
            };
            let answer = client.list_objections(request).await?.into_inner();
            let rows = answer
                .objections
                .iter()
                .map(|o| {
                    vec![
                        o.id.clone(),
                        o.application_id.clone(),
                        name::<ObjectionStatus>(o.status, "OBJECTION_STATUS_", ObjectionStatus::as_str_name),
                        time(o.receive_time.map(|t| t.seconds)),
                    ]
                })
                .collect();
            out.rows(&["id", "application", "status", "received"], rows);
            more(out, &answer.next_page_token);
        }
        ObjectionCommand::Resolve { objection_id, outcome, findings, request_id } => {
            let outcome = match outcome {
                Resolution::Upheld => ObjectionStatus::Upheld,
                Resolution::Dismissed => ObjectionStatus::Dismissed,
            };
            let request = ResolveObjectionRequest {
                request_id: fresh(request_id),
                objection_id,
                outcome: outcome as i32,
                findings,
            };
            let answer = client.resolve_objection(request).await?.into_inner();
            out.document(&objection_json(&answer.objection.unwrap_or_default()));
        }
    }
    Ok(())
}

// --- appointment ---------------------------------------------------------------------------------

#[derive(Debug, Subcommand)]
pub enum AppointCommand {
    /// Appoints (确定任用) applications whose publicity ended with no open objection.
    Decide {
        #[arg(required = true)]
        application_ids: Vec<String>,
        /// The first day of the term (YYYY-MM-DD); the decision day by default.
        #[arg(long)]
        term_start: Option<String>,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Lists appointment decisions with their delivery to the registry and certificate numbers.
    List {
        #[arg(long)]
        application: Option<String>,
        /// Only decisions still waiting for the registry.
        #[arg(long)]
        pending: bool,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

fn decision_row(d: &AppointmentDecision) -> Vec<String> {
    let term = d.term.unwrap_or_default();
    vec![
        d.id.clone(),
        d.application_id.clone(),
        name::<DeliveryStatus>(d.delivery, "DELIVERY_STATUS_", DeliveryStatus::as_str_name),
        d.expert_id.clone(),
        d.certificate_number.clone(),
        format!("{} {}", day(term.start), day(term.end)).trim().to_owned(),
        d.last_delivery_error.clone(),
    ]
}

const DECISION_HEADERS: [&str; 7] = ["id", "application", "delivery", "expert", "certificate", "term", "last error"];

pub async fn run_appoint(command: AppointCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    match command {
        AppointCommand::Decide { application_ids, term_start, request_id } => {
            let request = DecideAppointmentsRequest {
                request_id: fresh(request_id),
                application_ids,
                term_start: term_start.as_deref().map(parse_day).transpose()?,
                ..Default::default()
            };
            let answer = client.decide_appointments(request).await?.into_inner();
            out.rows(&DECISION_HEADERS, answer.decisions.iter().map(decision_row).collect());
        }
        AppointCommand::List { application, pending, page_size, page_token } => {
            let request = ListAppointmentDecisionsRequest {
                page: page(page_size, page_token),
                application_id: application.unwrap_or_default(),
                delivery: if pending { DeliveryStatus::Pending as i32 } else { 0 },
            };
            let answer = client.list_appointment_decisions(request).await?.into_inner();
            out.rows(&DECISION_HEADERS, answer.decisions.iter().map(decision_row).collect());
            more(out, &answer.next_page_token);
        }
    }
    Ok(())
}

// --- renewal -------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Verdict {
    Approve,
    Reject,
}

#[derive(Debug, Subcommand)]
pub enum RenewalCommand {
    /// Starts the renewal of an expert's running term as the bureau (the expert confirms later).
    Start {
        expert_id: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Approves or rejects a renewal (an approval goes to the registry).
    Decide {
        renewal_id: String,
        #[arg(long, value_enum)]
        decision: Verdict,
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one renewal.
    Get { renewal_id: String },
    /// Lists renewals.
    List {
        #[arg(long)]
        expert: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

fn renewal_json(r: &Renewal) -> serde_json::Value {
    let term = r.new_term.unwrap_or_default();
    serde_json::json!({
        "id": r.id,
        "expert_id": r.expert_id,
        "appointment_id": r.appointment_id,
        "term_end": day(r.term_end),
        "initiator": name::<RenewalInitiator>(r.initiator, "RENEWAL_INITIATOR_", RenewalInitiator::as_str_name),
        "status": name::<RenewalStatus>(r.status, "RENEWAL_STATUS_", RenewalStatus::as_str_name),
        "expert_willing": r.expert_willing,
        "check_met": r.check.as_ref().map(|c| c.met),
        "decision": name::<RenewalDecision>(r.decision, "RENEWAL_DECISION_", RenewalDecision::as_str_name),
        "decision_reason": r.decision_reason,
        "certificate_number": r.certificate_number,
        "new_term": format!("{} {}", day(term.start), day(term.end)).trim(),
    })
}

pub async fn run_renewal(command: RenewalCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = RecruitmentServiceClient::new(settings.authed("recruitment")?);
    match command {
        RenewalCommand::Start { expert_id, note, request_id } => {
            let request = StartRenewalRequest {
                request_id: fresh(request_id),
                expert_id,
                initiator: RenewalInitiator::Bureau as i32,
                note,
                on_behalf: None,
            };
            let r = client.start_renewal(request).await?.into_inner().renewal.unwrap_or_default();
            out.document(&renewal_json(&r));
        }
        RenewalCommand::Decide { renewal_id, decision, reason, request_id } => {
            let decision = match decision {
                Verdict::Approve => RenewalDecision::Approve,
                Verdict::Reject => RenewalDecision::Reject,
            };
            let request = DecideRenewalRequest {
                request_id: fresh(request_id),
                renewal_id,
                decision: decision as i32,
                reason,
                decision_date: None,
            };
            let r = client.decide_renewal(request).await?.into_inner().renewal.unwrap_or_default();
            out.document(&renewal_json(&r));
        }
        RenewalCommand::Get { renewal_id } => {
            let r = client
                .get_renewal(GetRenewalRequest { id: renewal_id })
                .await?
                .into_inner()
                .renewal
                .unwrap_or_default();
            out.document(&renewal_json(&r));
        }
        RenewalCommand::List { expert, page_size, page_token } => {
            let request = ListRenewalsRequest {
                page: page(page_size, page_token),
                expert_id: expert.unwrap_or_default(),
                ..Default::default()
            };
            let answer = client.list_renewals(request).await?.into_inner();
            let rows = answer
                .renewals
                .iter()
                .map(|r| {
                    let j = renewal_json(r);
                    ["id", "expert_id", "term_end", "status", "certificate_number"]
                        .iter()
                        .map(|k| j[*k].as_str().map_or_else(|| j[*k].to_string(), str::to_owned))
                        .collect()
                })
                .collect();
            out.rows(&["id", "expert", "term end", "status", "certificate"], rows);
            more(out, &answer.next_page_token);
        }
    }
    Ok(())
}
