//! `supctl submission create|assign|answer|close|get|list|attach|attachment`: submissions outside
//! tasks (article 8(二)(三), D21): an expert's opinion, tip-off, violation or policy problem
//! (entered by staff with `--channel` and `--received` when it came otherwise), or a county's
//! report to the city. The city bureau assigns a handler, who answers and closes it, optionally
//! linking a follow-up task.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::{Value, json};
use supervision_proto::dispatch::{
    AnswerSubmissionRequest, AssignSubmissionRequest, CloseSubmissionRequest, CreateSubmissionRequest,
    GetSubmissionRequest, ListSubmissionsRequest, SourceParty, Submission, SubmissionStatus, SubmissionType,
    dispatch_service_client::DispatchServiceClient, upload_attachment_request::Owner,
};

use crate::{
    commands::{
        assignment::{EntryArgs, actor, instant, listing, on_behalf_json, page, request_id, retry_hint, text_or_file},
        relation::{code, name},
        report::{fetch, upload},
    },
    output::Output,
    settings::{Settings, parse_bureau},
};

#[derive(Debug, Subcommand)]
pub enum SubmissionCommand {
    /// Records a submission; it goes to the city bureau.
    Create {
        /// opinion, tip-off, violation, policy-problem or county-report.
        #[arg(long = "type")]
        kind: String,
        /// The submitting expert (`exp_...`); staff entering it give --channel and --received.
        #[arg(long, conflicts_with = "bureau")]
        expert: Option<String>,
        /// For a county report: the county bureau (440705 or 新会区).
        #[arg(long)]
        bureau: Option<String>,
        /// Who the information came from: enterprise, public-institution, worker or self.
        #[arg(long)]
        source_party: Option<String>,
        /// The institution concerned (`ins_...`).
        #[arg(long, default_value = "")]
        institution: String,
        #[arg(long)]
        subject: String,
        /// The text.
        #[arg(long, conflicts_with = "content_file", required_unless_present = "content_file")]
        content: Option<String>,
        /// The text, read from a file (`-`: standard input).
        #[arg(long)]
        content_file: Option<PathBuf>,
        /// An attachment uploaded beforehand (`att_...`); repeat for each.
        #[arg(long = "attachment")]
        attachments: Vec<String>,
        #[command(flatten)]
        entry: EntryArgs,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Assigns (or reassigns) a RECEIVED or ASSIGNED submission to a city handler (CITY_ADMIN).
    Assign {
        submission_id: String,
        /// The handler's account (token subject).
        #[arg(long)]
        handler: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Records the answer, by the assigned handler or a CITY_ADMIN.
    Answer {
        submission_id: String,
        #[arg(long, conflicts_with = "answer_file", required_unless_present = "answer_file")]
        answer: Option<String>,
        /// The answer, read from a file (`-`: standard input).
        #[arg(long)]
        answer_file: Option<PathBuf>,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Closes a submission (final), optionally linking the follow-up task created for it.
    Close {
        submission_id: String,
        #[arg(long, default_value = "")]
        note: String,
        /// The follow-up task (`tsk_...`); it must exist.
        #[arg(long, default_value = "")]
        follow_up_task: String,
        /// Idempotency key: the same one replays the call instead of applying it again (a new
        /// UUID by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Shows one submission.
    Get { submission_id: String },
    /// Lists submissions, newest first.
    List {
        /// opinion, tip-off, violation, policy-problem or county-report.
        #[arg(long = "type")]
        kind: Option<String>,
        /// received, assigned, answered or closed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        expert: Option<String>,
        #[arg(long)]
        institution: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Uploads a PDF, JPEG or PNG (up to 10 MiB) for a submission until it is closed.
    Attach {
        submission_id: String,
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

fn kind(text: &str) -> anyhow::Result<i32> {
    code(text, "SUBMISSION_TYPE_", |n| SubmissionType::from_str_name(n).map(|v| v as i32), "a submission type")
}

pub fn submission_json(s: &Submission) -> Value {
    let bureau = |v: i32| supervision_kit::Bureau::from_proto(v).map(|b| b.to_string()).unwrap_or_default();
    json!({
        "id": s.id,
        "type": name(SubmissionType::try_from(s.r#type).unwrap_or_default().as_str_name(), "SUBMISSION_TYPE_"),
        "status": name(SubmissionStatus::try_from(s.status).unwrap_or_default().as_str_name(), "SUBMISSION_STATUS_"),
        "expert_id": s.expert_id,
        "submitting_bureau": bureau(s.submitting_bureau),
        "source_party": name(SourceParty::try_from(s.source_party).unwrap_or_default().as_str_name(), "SOURCE_PARTY_"),
        "institution_id": s.institution_id,
        "subject": s.subject,
        "content": s.content,
        "attachment_ids": s.attachment_ids,
        "copied_bureaus": s.copied_bureaus.iter().map(|b| bureau(*b)).collect::<Vec<_>>(),
        "handler": s.handler,
        "answer": s.answer,
        "follow_up_task_id": s.follow_up_task_id,
        "close_note": s.close_note,
        "submitted_by": actor(s.submitted_by.as_ref()),
        "on_behalf": on_behalf_json(s.on_behalf.as_ref()),
        "submitted": instant(s.submit_time.as_ref()),
        "updated": instant(s.update_time.as_ref()),
    })
}

pub async fn run(command: SubmissionCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    let submission = match command {
        SubmissionCommand::Create {
            kind: type_name,
            expert,
            bureau,
            source_party,
            institution,
            subject,
            content,
            content_file,
            attachments,
            entry,
            request_id: id,
        } => {
            let source_party = source_party
                .map(|p| {
                    code(&p, "SOURCE_PARTY_", |n| SourceParty::from_str_name(n).map(|v| v as i32), "a source party")
                })
                .transpose()?
                .unwrap_or(0);
            let request = CreateSubmissionRequest {
                request_id: request_id(id),
                r#type: kind(&type_name)?,
                expert_id: expert.unwrap_or_default(),
                submitting_bureau: bureau.as_deref().map(parse_bureau).transpose()?.map_or(0, |b| b.to_proto() as i32),
                source_party,
                institution_id: institution,
                subject,
                content: text_or_file(content, content_file.as_ref())?.unwrap_or_default(),
                attachment_ids: attachments,
                on_behalf: entry.on_behalf()?,
            };
            let key = request.request_id.clone();
            client.create_submission(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().submission
        }
        SubmissionCommand::Assign { submission_id, handler, note, request_id: id } => {
            let request = AssignSubmissionRequest { request_id: request_id(id), submission_id, handler, note };
            let key = request.request_id.clone();
            client.assign_submission(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().submission
        }
        SubmissionCommand::Answer { submission_id, answer, answer_file, request_id: id } => {
            let answer = text_or_file(answer, answer_file.as_ref())?.unwrap_or_default();
            let request = AnswerSubmissionRequest { request_id: request_id(id), submission_id, answer };
            let key = request.request_id.clone();
            client.answer_submission(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().submission
        }
        SubmissionCommand::Close { submission_id, note, follow_up_task, request_id: id } => {
            let request = CloseSubmissionRequest {
                request_id: request_id(id),
                submission_id,
                note,
                follow_up_task_id: follow_up_task,
            };
            let key = request.request_id.clone();
            client.close_submission(request).await.map_err(|s| retry_hint(s, &key))?.into_inner().submission
        }
        SubmissionCommand::Get { submission_id } => {
            client.get_submission(GetSubmissionRequest { id: submission_id }).await?.into_inner().submission
        }
        SubmissionCommand::List { kind: type_name, status, expert, institution, page_size, page_token } => {
            let status = status
                .map(|s| {
                    code(&s, "SUBMISSION_STATUS_", |n| SubmissionStatus::from_str_name(n).map(|v| v as i32), "a status")
                })
                .transpose()?
                .unwrap_or(0);
            let request = ListSubmissionsRequest {
                page: page(page_size, page_token),
                r#type: type_name.as_deref().map(kind).transpose()?.unwrap_or(0),
                status,
                expert_id: expert.unwrap_or_default(),
                institution_id: institution.unwrap_or_default(),
            };
            let answer = client.list_submissions(request).await?.into_inner();
            listing(
                out,
                &["id", "type", "status", "subject", "expert", "bureau", "handler", "submitted"],
                &["id", "type", "status", "subject", "expert_id", "submitting_bureau", "handler", "submitted"],
                answer.submissions.iter().map(submission_json).collect(),
                &answer.next_page_token,
            );
            return Ok(());
        }
        SubmissionCommand::Attach { submission_id, file, request_id: id } => {
            return upload(&mut client, Owner::SubmissionId(submission_id), &file, id, out).await;
        }
        SubmissionCommand::Attachment { attachment_id, out: path } => {
            return fetch(&mut client, attachment_id, &path, out).await;
        }
    };
    out.document(&submission_json(&submission.unwrap_or_default()));
    Ok(())
}
