//! `supctl letter get|verify`: dispatch letters (派遣函, D21). `get` shows an assignment's letter
//! (with its verification code, for the expert, the dispatching bureau, city roles and auditors)
//! and can write it as HTML or text; `verify` answers only whether a number and code are valid,
//! and for which institution and dates, as an institution asking the bureau would hear it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use supervision_proto::{
    common::FileFormat,
    dispatch::{
        DispatchLetter, DispatchLetterStatus, GetDispatchLetterRequest, VerifyDispatchLetterRequest,
        dispatch_service_client::DispatchServiceClient, get_dispatch_letter_request::Selector,
    },
};

use crate::{commands::draw::time, output::Output, settings::Settings};

#[derive(Debug, Subcommand)]
pub enum LetterCommand {
    /// Shows the letter of an assignment (`asg_...`) or a letter by id (`ltr_...`).
    Get {
        id: String,
        /// Also write the letter as a self-contained HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Checks a letter number and verification code.
    Verify { letter_number: String, verification_code: String },
}

pub async fn run(command: LetterCommand, settings: &Settings, out: &Output) -> anyhow::Result<()> {
    let mut client = DispatchServiceClient::new(settings.authed("dispatch")?);
    match command {
        LetterCommand::Get { id, html } => {
            let selector = if id.starts_with("ltr_") { Selector::LetterId(id) } else { Selector::AssignmentId(id) };
            let format = if html.is_some() { FileFormat::Html } else { FileFormat::Unspecified };
            let got = client
                .get_dispatch_letter(GetDispatchLetterRequest { selector: Some(selector), format: format as i32 })
                .await?
                .into_inner();
            let letter = got.letter.unwrap_or_default();
            if let (Some(path), Some(file)) = (html, got.file) {
                std::fs::write(&path, &file.content).with_context(|| format!("cannot write {}", path.display()))?;
            }
            out.document(&to_json(&letter));
        }
        LetterCommand::Verify { letter_number, verification_code } => {
            let verdict = client
                .verify_dispatch_letter(VerifyDispatchLetterRequest { letter_number, verification_code })
                .await?
                .into_inner();
            out.document(&serde_json::json!({
                "valid": verdict.valid,
                "institution_name": verdict.institution_name,
                "session_dates": verdict.session_dates.iter()
                    .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
                    .collect::<Vec<_>>(),
            }));
        }
    }
    Ok(())
}

fn to_json(l: &DispatchLetter) -> serde_json::Value {
    let status = DispatchLetterStatus::try_from(l.status).unwrap_or_default().as_str_name();
    serde_json::json!({
        "id": l.id,
        "letter_number": l.letter_number,
        "assignment_id": l.assignment_id,
        "task_id": l.task_id,
        "expert_id": l.expert_id,
        "institution_id": l.institution_id,
        "session_dates": l.session_dates.iter()
            .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
            .collect::<Vec<_>>(),
        "verification_code": l.verification_code,
        "status": status.strip_prefix("DISPATCH_LETTER_STATUS_").unwrap_or(status),
        "issue_time": time(l.issue_time.as_ref().map(|t| t.seconds)),
        "revoke_reason": l.revoke_reason,
    })
}
