//! Use cases of submissions: each one transaction, rules from `domain`, SQL from `store`.

use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};

use crate::{
    domain::{NewSubmission, Submission, SubmissionFilter, SubmissionId, SubmissionStatus, Submitter, Visibility},
    error::Error,
    store,
};

/// Records a submission inside `tx`, with its audit entry (which keeps its kind and who, never
/// its content: a tip-off's text stays in the submission).
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    details: NewSubmission,
) -> Result<Submission, Error> {
    details.check_caller(caller)?;
    let now = clock.now();
    let submission = Submission {
        id: SubmissionId::generate(),
        details,
        status: SubmissionStatus::Received,
        submitted_by: caller.actor(),
        submitted_at: now,
        updated_at: now,
    };
    store::insert_submission(&mut **tx, &submission).await?;
    let about = match &submission.details.submitter {
        Submitter::Expert { expert_id, on_behalf } => serde_json::json!({
            "expert_id": expert_id,
            "entered_by_staff": on_behalf.is_some(),
        }),
        Submitter::County(b) => serde_json::json!({ "county": b.division_code() }),
    };
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "submission",
        entity_id: submission.id.as_str(),
        action: "create",
        before: None,
        after: Some(serde_json::json!({
            "kind": submission.details.kind.code(),
            "from": about,
            "institution_id": submission.details.institution_id,
            "status": submission.status.code(),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(submission)
}

/// Reads a submission the caller may see; one they may not see is "not found", so its
/// existence is not revealed.
pub async fn get(db: &Db, id: &SubmissionId, visibility: &Visibility) -> Result<Submission, Error> {
    store::get_submission(db.pool(), id)
        .await?
        .filter(|s| visibility.allows(s))
        .ok_or_else(|| Error::SubmissionNotFound(id.to_string()))
}

pub async fn list(db: &Db, filter: &SubmissionFilter, page: &Page) -> Result<(Vec<Submission>, Option<String>), Error> {
    let items = store::list_submissions(db.pool(), filter, &page.probe()).await?;
    Ok(page.finish(items, |s| s.id.to_string()))
}
