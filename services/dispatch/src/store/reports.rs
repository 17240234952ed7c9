//! Reports' SQL, portable across SQLite and PostgreSQL.

use sqlx::{AnyConnection, Row, any::AnyRow};
use supervision_kit::{
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use super::StoreError;
use crate::domain::{AssignmentId, Report, ReportId, ReportStatus, TaskId};

macro_rules! report_columns {
    () => {
        "id, assignment_id, task_id, expert_id, status, content, sessions, revision, submitted_by, on_behalf, \
         submit_time, accepted_by, accept_time, corrections, void_reason, voided_by, void_time, updated_at, \
         return_reason"
    };
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn optional_json<T: serde::Serialize>(value: Option<&T>) -> String {
    value.map(json).unwrap_or_default()
}

fn instant_or_empty(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(format_instant).unwrap_or_default()
}

pub async fn insert_report(conn: &mut AnyConnection, r: &Report) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO reports (",
        report_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(r.id.as_str())
    .bind(r.assignment_id.as_str())
    .bind(r.task_id.as_str())
    .bind(&r.expert_id)
    .bind(r.status.code())
    .bind(hex::encode(&r.content))
    .bind(json(&r.sessions))
    .bind(i64::from(r.revision))
    .bind(json(&r.submitted_by))
    .bind(optional_json(r.on_behalf.as_ref()))
    .bind(format_instant(r.submitted_at))
    .bind(optional_json(r.accepted_by.as_ref()))
    .bind(instant_or_empty(r.accepted_at))
    .bind(json(&r.corrections))
    .bind(&r.void_reason)
    .bind(optional_json(r.voided_by.as_ref()))
    .bind(instant_or_empty(r.voided_at))
    .bind(format_instant(r.updated_at))
    .bind(&r.return_reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a report's changing fields, only if it was last updated at `expected`; whether it was.
pub async fn update_report(
    conn: &mut AnyConnection,
    r: &Report,
    expected: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE reports SET status = $1, content = $2, sessions = $3, revision = $4, submitted_by = $5, \
         on_behalf = $6, submit_time = $7, accepted_by = $8, accept_time = $9, corrections = $10, \
         void_reason = $11, voided_by = $12, void_time = $13, updated_at = $14, return_reason = $17 \
         WHERE id = $15 AND updated_at = $16",
    )
    .bind(r.status.code())
    .bind(hex::encode(&r.content))
    .bind(json(&r.sessions))
    .bind(i64::from(r.revision))
    .bind(json(&r.submitted_by))
    .bind(optional_json(r.on_behalf.as_ref()))
    .bind(format_instant(r.submitted_at))
    .bind(optional_json(r.accepted_by.as_ref()))
    .bind(instant_or_empty(r.accepted_at))
    .bind(json(&r.corrections))
    .bind(&r.void_reason)
    .bind(optional_json(r.voided_by.as_ref()))
    .bind(instant_or_empty(r.voided_at))
    .bind(format_instant(r.updated_at))
    .bind(r.id.as_str())
    .bind(format_instant(expected))
    .bind(&r.return_reason)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What ListReports filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFilter {
    pub visibility: crate::domain::TaskVisibility,
    pub task_id: Option<TaskId>,
    pub expert_id: Option<String>,
    pub status: Option<ReportStatus>,
}

/// Reports newest first (ids are time-ordered), within what the caller may see.
pub async fn list_reports(
    conn: &mut AnyConnection,
    filter: &ReportFilter,
    page: &supervision_kit::Page,
) -> Result<Vec<Report>, StoreError> {
    use crate::domain::TaskVisibility;
    let scope = match filter.visibility {
        TaskVisibility::All => String::new(),
        TaskVisibility::Bureau(b) => b.division_code().to_owned(),
        TaskVisibility::Nothing => return Ok(Vec::new()),
    };
    let rows = sqlx::query(concat!(
        "SELECT ",
        report_columns!(),
        " FROM reports r WHERE ($1 = '' OR r.id < $1) AND ($2 = '' OR r.task_id = $2) AND ($3 = '' OR r.expert_id = $3) \
           AND ($4 = '' OR r.status = $4) \
           AND ($5 = '' OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = r.task_id AND t.dispatching_bureau = $5)) \
         ORDER BY r.id DESC LIMIT $6"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.task_id.as_ref().map(TaskId::as_str).unwrap_or_default())
    .bind(filter.expert_id.as_deref().unwrap_or_default())
    .bind(filter.status.map(ReportStatus::code).unwrap_or_default())
    .bind(scope)
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(report_from_row).collect()
}

pub async fn get_report(conn: &mut AnyConnection, id: &ReportId) -> Result<Option<Report>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", report_columns!(), " FROM reports WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| report_from_row(&r)).transpose()
}

pub async fn report_of(conn: &mut AnyConnection, assignment: &AssignmentId) -> Result<Option<Report>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", report_columns!(), " FROM reports WHERE assignment_id = $1"))
        .bind(assignment.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| report_from_row(&r)).transpose()
}

fn report_from_row(row: &AnyRow) -> Result<Report, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let instant = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let s = text(col)?;
        if s.is_empty() {
            return Ok(None);
        }
        parse_instant(&s).map(Some).map_err(|e| bad(format!("{col}: {e}")))
    };
    let parsed = |col: &str| -> Result<serde_json::Value, StoreError> {
        let s = text(col)?;
        if s.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&s).map_err(|e| bad(format!("{col}: {e}")))
    };
    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }
    let actor =
        |col: &str| -> Result<Option<Actor>, StoreError> { from(parsed(col)?).map_err(|e| bad(format!("{col}: {e}"))) };
    let status = text("status")?;
    let revision: i64 = row.try_get("revision")?;
    Ok(Report {
        id: ReportId::parse(&id).ok_or_else(|| bad("id".into()))?,
        assignment_id: AssignmentId::parse(&text("assignment_id")?).ok_or_else(|| bad("assignment_id".into()))?,
        task_id: TaskId::parse(&text("task_id")?).ok_or_else(|| bad("task_id".into()))?,
        expert_id: text("expert_id")?,
        status: ReportStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        content: hex::decode(text("content")?).map_err(|e| bad(format!("content: {e}")))?,
        sessions: from(parsed("sessions")?).map_err(|e| bad(format!("sessions: {e}")))?,
        revision: u32::try_from(revision).map_err(|_| bad("revision".into()))?,
        submitted_by: actor("submitted_by")?.ok_or_else(|| bad("submitted_by".into()))?,
        on_behalf: from(parsed("on_behalf")?).map_err(|e| bad(format!("on_behalf: {e}")))?,
        submitted_at: instant("submit_time")?.ok_or_else(|| bad("submit_time".into()))?,
        accepted_by: actor("accepted_by")?,
        accepted_at: instant("accept_time")?,
        corrections: from(parsed("corrections")?).map_err(|e| bad(format!("corrections: {e}")))?,
        void_reason: text("void_reason")?,
        voided_by: actor("voided_by")?,
        voided_at: instant("void_time")?,
        updated_at: instant("updated_at")?.ok_or_else(|| bad("updated_at".into()))?,
        return_reason: text("return_reason")?,
    })
}
