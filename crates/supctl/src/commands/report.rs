//! `supctl report submit|return|accept|correct|void|get|list|attach|attachment`: an expert's report
//! on an assignment (article 8). Acceptance, corrections and voids send revisions to finance
//! (ARCHITECTURE.md "Fees"). Long texts come from files: `--findings-file`, `--suggestions-file`
//! (`-` reads standard input).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use supervision_proto::{
    common::DocumentRef,
    dispatch::{
        AcceptReportRequest, CorrectReportRequest, GetAttachmentRequest, GetReportRequest, ListReportsRequest, Report,
        ReportContent, ReportItem, ReportStatus, ReturnReportRequest, SubmitReportRequest, UploadAttachmentRequest,
        VoidReportRequest, dispatch_service_client::DispatchServiceClient, upload_attachment_request::Owner,
    },
};

use crate::{
    commands::{
        assignment::{
            EntryArgs, actor, instant, listing, on_behalf_json, page, parse_worked, request_id, retry_hint,
            text_or_file, worked_json,
        },
        relation::{code, name},
    },
    output::Output,
    settings::{Bearer, Settings},
};

type Client = DispatchServiceClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>>;

/// What a report says; on `correct`, only the parts given change.
#[derive(Debug, Args)]
pub struct ContentArgs {
    /// 监督评估情况: what was supervised and how it went.
    #[arg(long, conflicts_with = "findings_file")]
    pub findings: Option<String>,
    /// The findings, read from a file (`-`: standard input).
    #[arg(long)]
    pub findings_file: Option<PathBuf>,
    /// 意见建议: suggestions.
    #[arg(long, conflicts_with = "suggestions_file")]
    pub suggestions: Option<String>,
    /// The suggestions, read from a file.
    #[arg(long)]
    pub suggestions_file: Option<PathBuf>,
    /// 违规行为: a violation by the institution, optionally followed by its evidence as
    /// ` @att_...` words. Repeat for each.
    #[arg(long = "violation")]
    pub violations: Vec<String>,
    /// 政策落实问题: a policy-implementation problem, as --violation. Repeat for each.
    #[arg(long = "policy-problem")]
    pub policy_problems: Vec<String>,
    /// An on-site dispute arose (article 9(二)): what happened.
    #[arg(long)]
    pub onsite_dispute: Option<String>,
    /// Escalate to the city bureau at once (article 9(四)).
    #[arg(long)]
    pub urgent: bool,
    /// Another attachment (`att_...`, see `report attach`). Repeat for each.
    #[arg(long = "attachment")]
    pub attachments: Vec<String>,
}

impl ContentArgs {
    /// `base` with the parts given here; `None` when nothing is given.
    fn apply(self, base: ReportContent) -> anyhow::Result<Option<ReportContent>> {
        let mut content = base;
        let mut given = false;
        if let Some(findings) = text_or_file(self.findings, self.findings_file.as_ref())? {
            content.findings = findings;
            given = true;
        }
        if let Some(suggestions) = text_or_file(self.suggestions, self.suggestions_file.as_ref())? {
            content.suggestions = suggestions;
            given = true;
        }
        if !self.violations.is_empty() {
            content.violations = self.violations.iter().map(|v| item(v)).collect();
            given = true;
        }
        if !self.policy_problems.is_empty() {
            content.policy_problems = self.policy_problems.iter().map(|v| item(v)).collect();
            given = true;
        }
        if let Some(detail) = self.onsite_dispute {
            content.onsite_dispute = true;
            content.onsite_dispute_detail = detail;
            given = true;
        }
        if self.urgent {
            content.urgent_issue = true;
            given = true;
        }
        if !self.attachments.is_empty() {
            content.attachment_ids = self.attachments;
            given = true;
        }
        Ok(given.then_some(content))
    }
}

/// `TEXT @att_1 @att_2` as a finding with its evidence.
fn item(text: &str) -> ReportItem {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    let mut attachment_ids = Vec::new();
    while let Some(last) = words.last().and_then(|w| w.strip_prefix('@')) {
        attachment_ids.insert(0, last.to_owned());
        words.pop();
    }
    let description = if attachment_ids.is_empty() { text.trim().to_owned() } else { words.join(" ") };
    ReportItem { description, attachment_ids }
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Submits (or resubmits) the report of an ACCEPTED assignment whose sessions are recorded.
    Submit {
        assignment_id: String,
        #[command(flatten)]
        content: ContentArgs,
        #[command(flatten)]
        entry: EntryArgs,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Returns a SUBMITTED report to the expert for revision.
    Return {
        report_id: String,
        /// What to revise.
        #[arg(long)]
        reason: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Accepts a SUBMITTED report: revision 1 with its sessions goes to finance.
    Accept {
        report_id: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Corrects an ACCEPTED report: the content parts given and/or all sessions; the next
    /// revision goes to finance.
    Correct {
        report_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        content: ContentArgs,
        /// The corrected sessions (DATE,AM|PM,HH:MM,MINUTES[,NOTE]), replacing all; repeat.
        #[arg(long = "worked")]
        worked: Vec<String>,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Voids a SUBMITTED or ACCEPTED report (no fee; finance reverses its lines).
    Void {
        report_id: String,
        #[arg(long)]
        reason: String,
        /// The registry incident behind it (`inc_...`).
        #[arg(long, default_value = "")]
        incident: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one report.
    Get { report_id: String },
    /// Lists reports, newest first.
    List {
        #[arg(long)]
        task: Option<String>,
        #[arg(long)]
        expert: Option<String>,
        /// submitted, returned, accepted or voided.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Uploads a PDF, JPEG or PNG (up to 10 MiB) for an assignment's report; prints its `att_` id.
    Attach {
        assignment_id: String,
        file: PathBuf,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Writes a stored attachment to --out, checking its SHA-256.
    Attachment {
        attachment_id: String,
        #[arg(long)]
        out: PathBuf,
    },
}

fn item_json(i: &ReportItem) -> Value {
    json!({"description": i.description, "attachment_ids": i.attachment_ids})
}

pub fn report_json(r: &Report) -> Value {
    let c = r.content.clone().unwrap_or_default();
    json!({
        "id": r.id,
        "assignment_id": r.assignment_id,
        "task_id": r.task_id,
        "expert_id": r.expert_id,
        "status": name(ReportStatus::try_from(r.status).unwrap_or_default().as_str_name(), "REPORT_STATUS_"),
        "revision": r.revision,
        "content": {
            "findings": c.findings,
            "violations": c.violations.iter().map(item_json).collect::<Vec<_>>(),
            "policy_problems": c.policy_problems.iter().map(item_json).collect::<Vec<_>>(),
            "suggestions": c.suggestions,
            "onsite_dispute": c.onsite_dispute,
            "onsite_dispute_detail": c.onsite_dispute_detail,
            "urgent_issue": c.urgent_issue,
            "attachment_ids": c.attachment_ids,
        },
        "sessions": r.sessions.iter().map(worked_json).collect::<Vec<_>>(),
        "submitted_by": actor(r.submitted_by.as_ref()),
        "on_behalf": on_behalf_json(r.on_behalf.as_ref()),
        "submitted": instant(r.submit_time.as_ref()),
        "return_reason": r.return_reason,
        "accepted_by": actor(r.accepted_by.as_ref()),
        "accepted": instant(r.accept_time.as_ref()),
        "corrections": r.corrections.iter().map(|c| json!({
            "revision": c.revision,
            "reason": c.reason,
            "corrected_by": actor(c.corrected_by.as_ref()),
            "corrected": instant(c.correct_time.as_ref()),
        })).collect::<Vec<_>>(),
        "void_reason": r.void_reason,
        "voided_by": actor(r.voided_by.as_ref()),
        "voided": instant(r.void_time.as_ref()),
    })
}

fn document_json(d: &DocumentRef) -> Value {
    json!({
        "id": d.id,
        "file_name": d.file_name,
        "media_type": d.media_type,
        "size_bytes": d.size_bytes,
        "sha256": d.sha256,
    })
}

/// Uploads `file` for `owner`; the media type follows the file's extension.
pub async fn upload(
    client: &mut Client,
    owner: Owner,
    file: &Path,
    id: Option<String>,
    out: &Output,
) -> anyhow::Result<()> {
    let extension = file.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    let media_type = match extension.as_str() {
        "pdf" => "application/pdf",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => bail!("{} is not a .pdf, .jpg, .jpeg or .png file", file.display()),
    };
    let content = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let request = UploadAttachmentRequest {
        request_id: request_id(id),
        owner: Some(owner),
        file_name: file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned(),
        media_type: media_type.to_owned(),
        content,
    };
    let key = request.request_id.clone();
    let stored = client.upload_attachment(request).await.map_err(|s| retry_hint(s, &key))?.into_inner();
    out.document(&document_json(&stored.attachment.unwrap_or_default()));
    Ok(())
}

/// Writes attachment `id` to `path` after checking its SHA-256.
pub async fn fetch(client: &mut Client, id: String, path: &Path, out: &Output) -> anyhow::Result<()> {
    use sha2::Digest;
    let got = client.get_attachment(GetAttachmentRequest { id }).await?.into_inner();
    let attachment = got.attachment.unwrap_or_default();
    let digest = format!("{:x}", sha2::Sha256::digest(&got.content));
    if digest != attachment.sha256 {
        bail!("the file received does not match its SHA-256 ({digest} != {})", attachment.sha256);
    }
    std::fs::write(path, &got.content).with_context(|| format!("cannot write {}", path.display()))?;
    let mut document = document_json(&attachment);
    document["written_to"] = json!(path.display().to_string());
    out.document(&document);
    Ok(())
}

pub async fn run(command: ReportCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    let report = match command {
        ReportCommand::Submit { assignment_id, content, entry, request_id: id } => {
            let request = SubmitReportRequest {
                request_id: request_id(id),
                assignment_id,
                content: content.apply(ReportContent::default())?,
                on_behalf: entry.on_behalf()?,
            };
            let key = request.request_id.clone();
            client.submit_report(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().report
        }
        ReportCommand::Return { report_id, reason, request_id: id } => {
            let request = ReturnReportRequest { request_id: request_id(id), report_id, reason };
            let key = request.request_id.clone();
            client.return_report(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().report
        }
        ReportCommand::Accept { report_id, note, request_id: id } => {
            let request = AcceptReportRequest { request_id: request_id(id), report_id, note };
            let key = request.request_id.clone();
            client.accept_report(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().report
        }
        ReportCommand::Correct { report_id, reason, content, worked, request_id: id } => {
            let current = client.get_report(GetReportRequest { id: report_id.clone() }).await?.into_inner().report;
            let content = content.apply(current.and_then(|r| r.content).unwrap_or_default())?;
            let sessions = worked.iter().map(|w| parse_worked(w)).collect::<anyhow::Result<Vec<_>>>()?;
            let mut paths = Vec::new();
            if content.is_some() {
                paths.push("content".to_owned());
            }
            if !sessions.is_empty() {
                paths.push("sessions".to_owned());
            }
            if paths.is_empty() {
                bail!("nothing to correct: give content flags (e.g. --findings-file) and/or --worked");
            }
            let request = CorrectReportRequest {
                request_id: request_id(id),
                report_id,
                content,
                sessions,
                update_mask: Some(prost_types::FieldMask { paths }),
                reason,
            };
            let key = request.request_id.clone();
            client.correct_report(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().report
        }
        ReportCommand::Void { report_id, reason, incident, request_id: id } => {
            let request = VoidReportRequest { request_id: request_id(id), report_id, reason, incident_id: incident };
            let key = request.request_id.clone();
            client.void_report(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().report
        }
        ReportCommand::Get { report_id } => {
            client.get_report(GetReportRequest { id: report_id }).await?.into_inner().report
        }
        ReportCommand::List { task, expert, status, page_size, page_token } => {
            let status = status
                .map(|s| code(&s, "REPORT_STATUS_", |n| ReportStatus::from_str_name(n).map(|v| v as i32), "a status"))
                .transpose()?
                .unwrap_or(0);
            let request = ListReportsRequest {
                page: page(page_size, page_token),
                task_id: task.unwrap_or_default(),
                expert_id: expert.unwrap_or_default(),
                status,
            };
            let answer = client.list_reports(request).await?.into_inner();
            listing(
                out,
                &["id", "assignment", "task", "expert", "status", "revision", "submitted"],
                &["id", "assignment_id", "task_id", "expert_id", "status", "revision", "submitted"],
                answer.reports.iter().map(report_json).collect(),
                &answer.next_page_token,
            );
            return Ok(());
        }
        ReportCommand::Attach { assignment_id, file, request_id: id } => {
            return upload(&mut client, Owner::AssignmentId(assignment_id), &file, id, out).await;
        }
        ReportCommand::Attachment { attachment_id, out: path } => {
            return fetch(&mut client, attachment_id, &path, out).await;
        }
    };
    out.document(&report_json(&report.unwrap_or_default()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_takes_its_trailing_attachment_ids() {
        let i = item("签到表与实际人数不符 @att_1 @att_2");
        assert_eq!(
            (i.description.as_str(), i.attachment_ids),
            ("签到表与实际人数不符", vec!["att_1".into(), "att_2".into()])
        );
        assert_eq!(item(" 未公示 收费标准 ").description, "未公示 收费标准");
    }

    #[test]
    fn a_correction_changes_only_the_parts_given() {
        let base = ReportContent { findings: "旧".into(), suggestions: "建议".into(), ..Default::default() };
        let args = ContentArgs { findings: Some("新".into()), ..args_default() };
        let changed = args.apply(base.clone()).unwrap().unwrap();
        assert_eq!((changed.findings.as_str(), changed.suggestions.as_str()), ("新", "建议"));
        assert!(args_default().apply(base).unwrap().is_none());
    }

    fn args_default() -> ContentArgs {
        ContentArgs {
            findings: None,
            findings_file: None,
            suggestions: None,
            suggestions_file: None,
            violations: vec![],
            policy_problems: vec![],
            onsite_dispute: None,
            urgent: false,
            attachments: vec![],
        }
    }
}
