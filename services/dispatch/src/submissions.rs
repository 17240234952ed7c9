//! Use cases of submissions: each one transaction, rules from `domain`, SQL from `store`.

use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};

use crate::{
    domain::{
        NewSubmission, Step, Submission, SubmissionFilter, SubmissionId, SubmissionStatus, Submitter, Visibility,
    },
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
        handling: crate::domain::Handling::default(),
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

/// AssignSubmission, AnswerSubmission and CloseSubmission inside `tx`: one step of the handling
/// workflow (`Step::next`), with its audit entry. Only the assigned handler or a CITY_ADMIN
/// answers or closes; a follow-up task named at closing must exist.
#[allow(clippy::too_many_arguments, reason = "the use case's inputs")]
pub async fn handle(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &SubmissionId,
    step: Step,
) -> Result<Submission, Error> {
    let refused = |code, reason: &'static str, message: String| Error::draw_refused(code, reason, message);
    let mut s = store::get_submission(&mut **tx, id)
        .await?
        .filter(|s| Visibility::of(caller).allows(s))
        .ok_or_else(|| Error::SubmissionNotFound(id.to_string()))?;
    let before = s.status;
    let Some(next) = step.next(before) else {
        return Err(refused(
            tonic::Code::FailedPrecondition,
            "SUBMISSION_NOT_OPEN_TO_STEP",
            format!("submission {id} is {}; it cannot be {}ed now", before.code(), step.name()),
        ));
    };
    if !matches!(step, Step::Assign { .. })
        && caller.role != Role::CityAdmin
        && s.handling.handler != caller.actor().subject
    {
        return Err(refused(
            tonic::Code::PermissionDenied,
            "NOT_THE_HANDLER",
            format!("only the assigned handler or a CITY_ADMIN may {} submission {id}", step.name()),
        ));
    }
    match &step {
        Step::Assign { handler, .. } => s.handling.handler = handler.clone(),
        Step::Answer { answer } => s.handling.answer = answer.clone(),
        Step::Close { note, follow_up_task_id } => {
            if !follow_up_task_id.is_empty() {
                let task_id = crate::domain::TaskId::parse(follow_up_task_id)
                    .ok_or_else(|| Error::TaskNotFound(follow_up_task_id.clone()))?;
                crate::store::tasks::get_task(tx, &task_id)
                    .await?
                    .ok_or_else(|| Error::TaskNotFound(follow_up_task_id.clone()))?;
            }
            s.handling.close_note = note.clone();
            s.handling.follow_up_task_id = follow_up_task_id.clone();
        }
    }
    let expected = s.updated_at;
    s.status = next;
    s.updated_at = clock.now();
    if !store::update_submission_handling(&mut **tx, &s, expected).await? {
        return Err(refused(
            tonic::Code::Aborted,
            "SUBMISSION_CHANGED",
            format!("submission {id} changed; read it again"),
        ));
    }
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "submission",
        entity_id: s.id.as_str(),
        action: step.name(),
        before: Some(serde_json::json!({ "status": before.code() })),
        after: Some(serde_json::json!({
            "status": s.status.code(),
            "handler": s.handling.handler,
            "follow_up_task_id": s.handling.follow_up_task_id,
            "note": match &step { Step::Assign { note, .. } => note.clone(), _ => String::new() },
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(s)
}
