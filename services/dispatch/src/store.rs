//! Dispatch's SQL: one function per statement, portable across SQLite and PostgreSQL.

pub mod draws;
pub mod reports;
pub mod tasks;

use sqlx::{AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Bureau, Page,
    auth::Actor,
    storage::{format_instant, parse_instant},
    vocab::OnBehalf,
};

use crate::domain::{
    NewSubmission, Submission, SubmissionFilter, SubmissionId, SubmissionKind, SubmissionStatus, Submitter, Visibility,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("corrupt row {id}: {problem}")]
    Corrupt { id: String, problem: String },
}

macro_rules! submission_columns {
    () => {
        "id, kind, expert_id, submitting_bureau, source_party, institution_id, subject, content, status, \
         submitted_by_subject, submitted_by_role, submitted_by_bureau, on_behalf_channel, on_behalf_received, \
         on_behalf_note, submitted_at, updated_at, handler, answer, follow_up_task_id, close_note, attachment_ids"
    };
}

pub async fn insert_submission(db: impl AnyExecutor<'_>, s: &Submission) -> Result<(), sqlx::Error> {
    let d = &s.details;
    let (expert_id, bureau, on_behalf) = match &d.submitter {
        Submitter::Expert { expert_id, on_behalf } => (expert_id.as_str(), "", on_behalf.as_ref()),
        Submitter::County(b) => ("", b.division_code(), None),
    };
    sqlx::query(concat!(
        "INSERT INTO submissions (",
        submission_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"
    ))
    .bind(s.id.as_str())
    .bind(d.kind.code())
    .bind(expert_id)
    .bind(bureau)
    .bind(&d.source_party)
    .bind(&d.institution_id)
    .bind(&d.subject)
    .bind(&d.content)
    .bind(s.status.code())
    .bind(&s.submitted_by.subject)
    .bind(&s.submitted_by.role)
    .bind(s.submitted_by.bureau.clone().unwrap_or_default())
    .bind(on_behalf.map(|o| o.channel.clone()).unwrap_or_default())
    .bind(on_behalf.map(|o| format_instant(o.received_at)).unwrap_or_default())
    .bind(on_behalf.map(|o| o.note.clone()).unwrap_or_default())
    .bind(format_instant(s.submitted_at))
    .bind(format_instant(s.updated_at))
    .bind(&s.handling.handler)
    .bind(&s.handling.answer)
    .bind(&s.handling.follow_up_task_id)
    .bind(&s.handling.close_note)
    .bind(d.attachment_ids.join(" "))
    .execute(db)
    .await?;
    Ok(())
}

/// Writes a submission's status and handling, only if it was last updated at `expected`.
pub async fn update_submission_handling(
    db: impl AnyExecutor<'_>,
    s: &Submission,
    expected: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE submissions SET status = $1, handler = $2, answer = $3, follow_up_task_id = $4, close_note = $5, \
         updated_at = $6 WHERE id = $7 AND updated_at = $8",
    )
    .bind(s.status.code())
    .bind(&s.handling.handler)
    .bind(&s.handling.answer)
    .bind(&s.handling.follow_up_task_id)
    .bind(&s.handling.close_note)
    .bind(format_instant(s.updated_at))
    .bind(s.id.as_str())
    .bind(format_instant(expected))
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_submission(db: impl AnyExecutor<'_>, id: &SubmissionId) -> Result<Option<Submission>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", submission_columns!(), " FROM submissions WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.map(|r| submission_from_row(&r)).transpose()
}

/// Newest first, within what the caller may see.
pub async fn list_submissions(
    db: impl AnyExecutor<'_>,
    filter: &SubmissionFilter,
    page: &Page,
) -> Result<Vec<Submission>, StoreError> {
    let (scope_bureau, scope_expert) = match &filter.visibility {
        Visibility::All => (String::new(), String::new()),
        Visibility::County(b) => (b.division_code().to_owned(), String::new()),
        Visibility::Expert(id) => (String::new(), id.clone()),
        Visibility::Nothing => return Ok(Vec::new()),
    };
    let rows = sqlx::query(concat!(
        "SELECT ",
        submission_columns!(),
        " FROM submissions WHERE ($1 = '' OR id < $1) \
           AND ($2 = '' OR submitting_bureau = $2) AND ($3 = '' OR expert_id = $3) \
           AND ($4 = '' OR kind = $4) AND ($5 = '' OR status = $5) \
           AND ($6 = '' OR expert_id = $6) AND ($7 = '' OR institution_id = $7) \
         ORDER BY id DESC LIMIT $8"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(scope_bureau)
    .bind(scope_expert)
    .bind(filter.kind.map(SubmissionKind::code).unwrap_or_default())
    .bind(filter.status.map(SubmissionStatus::code).unwrap_or_default())
    .bind(filter.expert_id.as_deref().unwrap_or_default())
    .bind(filter.institution_id.as_deref().unwrap_or_default())
    .bind(i64::from(page.size))
    .fetch_all(db)
    .await?;
    rows.iter().map(submission_from_row).collect()
}

fn submission_from_row(row: &AnyRow) -> Result<Submission, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let instant = |s: &str, col: &str| parse_instant(s).map_err(|e| bad(format!("{col}: {e}")));
    let kind = text("kind")?;
    let status = text("status")?;
    let bureau = text("submitting_bureau")?;
    let submitter = if bureau.is_empty() {
        let channel = text("on_behalf_channel")?;
        let on_behalf = if channel.is_empty() {
            None
        } else {
            Some(OnBehalf {
                channel,
                received_at: instant(&text("on_behalf_received")?, "on_behalf_received")?,
                note: text("on_behalf_note")?,
            })
        };
        Submitter::Expert { expert_id: text("expert_id")?, on_behalf }
    } else {
        Submitter::County(Bureau::from_division_code(&bureau).ok_or_else(|| bad(format!("bureau {bureau}")))?)
    };
    let by_bureau = text("submitted_by_bureau")?;
    Ok(Submission {
        id: SubmissionId::parse(&id).ok_or_else(|| bad("id".into()))?,
        details: NewSubmission {
            kind: SubmissionKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
            submitter,
            source_party: text("source_party")?,
            institution_id: text("institution_id")?,
            subject: text("subject")?,
            content: text("content")?,
            attachment_ids: text("attachment_ids")?.split_whitespace().map(str::to_owned).collect(),
        },
        status: SubmissionStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        submitted_by: Actor {
            subject: text("submitted_by_subject")?,
            role: text("submitted_by_role")?,
            bureau: (!by_bureau.is_empty()).then_some(by_bureau),
        },
        submitted_at: instant(&text("submitted_at")?, "submitted_at")?,
        updated_at: instant(&text("updated_at")?, "updated_at")?,
        handling: crate::domain::Handling {
            handler: text("handler")?,
            answer: text("answer")?,
            follow_up_task_id: text("follow_up_task_id")?,
            close_note: text("close_note")?,
        },
    })
}
