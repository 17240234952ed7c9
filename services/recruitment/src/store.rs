//! Recruitment's SQL: one function per statement, portable across SQLite and PostgreSQL.

pub mod applications;

use chrono::NaiveDate;
use sqlx::{AnyConnection, AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Page,
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use crate::domain::{Call, CallFilter, CallId, CallStatus, NewCall, NewPublication, Publication};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("corrupt row {id}: {problem}")]
    Corrupt { id: String, problem: String },
    /// A stored personal value does not decrypt: the key is not the one it was written with.
    #[error("personal data of {id} does not decrypt with this key: {source}")]
    PersonalData { id: String, source: supervision_kit::personal::PersonalDataError },
}

macro_rules! call_columns {
    () => {
        "id, year, title, body, categories_json, specialties_json, industries_json, window_start, window_end, \
         materials_json, status, edition_number, created_by_subject, created_by_role, created_by_bureau, \
         created_at, updated_at, first_published_on, status_reason"
    };
}

pub async fn insert_call(db: impl AnyExecutor<'_>, call: &Call) -> Result<(), sqlx::Error> {
    let d = &call.details;
    sqlx::query(concat!(
        "INSERT INTO calls (",
        call_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(call.id.as_str())
    .bind(d.year)
    .bind(&d.title)
    .bind(&d.body)
    .bind(json(&d.categories))
    .bind(json(&d.specialties))
    .bind(json(&d.industries))
    .bind(format_instant(d.window_start))
    .bind(format_instant(d.window_end))
    .bind(json(&d.required_materials))
    .bind(call.status.code())
    .bind(call.edition_number)
    .bind(&call.created_by.subject)
    .bind(&call.created_by.role)
    .bind(call.created_by.bureau.clone().unwrap_or_default())
    .bind(format_instant(call.created_at))
    .bind(format_instant(call.updated_at))
    .bind(call.first_published_on.map(|d| d.to_string()).unwrap_or_default())
    .bind(&call.status_reason)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes a call's state after a transition (status, edition, first publication, reason).
pub async fn update_call_state(db: impl AnyExecutor<'_>, call: &Call) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE calls SET status = $1, edition_number = $2, first_published_on = $3, status_reason = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .bind(call.status.code())
    .bind(call.edition_number)
    .bind(call.first_published_on.map(|d| d.to_string()).unwrap_or_default())
    .bind(&call.status_reason)
    .bind(format_instant(call.updated_at))
    .bind(call.id.as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces a draft's details (UpdateCall).
pub async fn update_call_details(db: impl AnyExecutor<'_>, call: &Call) -> Result<(), sqlx::Error> {
    let d = &call.details;
    sqlx::query(
        "UPDATE calls SET year = $1, title = $2, body = $3, categories_json = $4, specialties_json = $5, \
         industries_json = $6, window_start = $7, window_end = $8, materials_json = $9, updated_at = $10 WHERE id = $11",
    )
    .bind(d.year)
    .bind(&d.title)
    .bind(&d.body)
    .bind(json(&d.categories))
    .bind(json(&d.specialties))
    .bind(json(&d.industries))
    .bind(format_instant(d.window_start))
    .bind(format_instant(d.window_end))
    .bind(json(&d.required_materials))
    .bind(format_instant(call.updated_at))
    .bind(call.id.as_str())
    .execute(db)
    .await?;
    Ok(())
}

/// Appends the call's `ordinal`-th publication (0-based).
pub async fn insert_publication(
    db: impl AnyExecutor<'_>,
    call_id: &CallId,
    ordinal: usize,
    p: &Publication,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO call_publications (call_id, ordinal, channel, publish_date, address, recorded_by_subject, \
         recorded_by_role, recorded_by_bureau, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(call_id.as_str())
    .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
    .bind(&p.details.channel)
    .bind(p.details.publish_date.to_string())
    .bind(&p.details.address)
    .bind(&p.recorded_by.subject)
    .bind(&p.recorded_by.role)
    .bind(p.recorded_by.bureau.clone().unwrap_or_default())
    .bind(format_instant(p.recorded_at))
    .execute(db)
    .await?;
    Ok(())
}

async fn publications(conn: &mut AnyConnection, id: &CallId) -> Result<Vec<Publication>, StoreError> {
    let rows = sqlx::query(
        "SELECT channel, publish_date, address, recorded_by_subject, recorded_by_role, recorded_by_bureau, \
         recorded_at FROM call_publications WHERE call_id = $1 ORDER BY ordinal",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let bad = |problem: String| StoreError::Corrupt { id: id.to_string(), problem };
    rows.iter()
        .map(|r| {
            let date: String = r.try_get("publish_date")?;
            let bureau: String = r.try_get("recorded_by_bureau")?;
            Ok(Publication {
                details: NewPublication {
                    channel: r.try_get("channel")?,
                    publish_date: date.parse::<NaiveDate>().map_err(|e| bad(format!("publish_date: {e}")))?,
                    address: r.try_get("address")?,
                },
                recorded_by: Actor {
                    subject: r.try_get("recorded_by_subject")?,
                    role: r.try_get("recorded_by_role")?,
                    bureau: (!bureau.is_empty()).then_some(bureau),
                },
                recorded_at: parse_instant(&r.try_get::<String, _>("recorded_at")?)
                    .map_err(|e| bad(format!("recorded_at: {e}")))?,
            })
        })
        .collect()
}

pub async fn get_call(conn: &mut AnyConnection, id: &CallId) -> Result<Option<Call>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", call_columns!(), " FROM calls WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut call = call_from_row(&row)?;
    call.publications = publications(conn, id).await?;
    Ok(Some(call))
}

/// The ids of calls first published in `year`, in order of first publication.
pub async fn calls_first_published_in(db: impl AnyExecutor<'_>, year: i32) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM calls WHERE first_published_on >= $1 AND first_published_on <= $2 \
         ORDER BY first_published_on, id",
    )
    .bind(format!("{year:04}-01-01"))
    .bind(format!("{year:04}-12-31"))
    .fetch_all(db)
    .await
}

/// Newest first: ids are UUIDv7, so descending id order is descending creation order.
pub async fn list_calls(conn: &mut AnyConnection, filter: &CallFilter, page: &Page) -> Result<Vec<Call>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        call_columns!(),
        " FROM calls WHERE ($1 = '' OR id < $1) AND ($2 = 0 OR year = $2) AND ($3 = '' OR status = $3) \
         AND ($5 = 0 OR status IN ('PUBLISHED', 'CLOSED')) ORDER BY id DESC LIMIT $4"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.year.unwrap_or(0))
    .bind(filter.status.map(CallStatus::code).unwrap_or_default())
    .bind(i64::from(page.size))
    .bind(i32::from(filter.public_only))
    .fetch_all(&mut *conn)
    .await?;
    let mut calls = rows.iter().map(call_from_row).collect::<Result<Vec<_>, _>>()?;
    for call in &mut calls {
        call.publications = publications(conn, &call.id).await?;
    }
    Ok(calls)
}

/// A JSON list column's text.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

fn call_from_row(row: &AnyRow) -> Result<Call, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let json = |col: &str| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&text(col)?).map_err(|e| bad(format!("{col}: {e}")))
    };
    let list = |col: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_value(json(col)?).map_err(|e| bad(format!("{col}: {e}")))
    };
    let instant =
        |col: &str| -> Result<_, StoreError> { parse_instant(&text(col)?).map_err(|e| bad(format!("{col}: {e}"))) };
    let status = text("status")?;
    let bureau = text("created_by_bureau")?;
    let first = text("first_published_on")?;
    let first_published_on = if first.is_empty() {
        None
    } else {
        Some(first.parse::<NaiveDate>().map_err(|e| bad(format!("first_published_on: {e}")))?)
    };
    Ok(Call {
        id: CallId::parse(&id).ok_or_else(|| bad("id".into()))?,
        details: NewCall {
            year: row.try_get::<i32, _>("year")?,
            title: text("title")?,
            body: text("body")?,
            categories: list("categories_json")?,
            specialties: serde_json::from_value(json("specialties_json")?)
                .map_err(|e| bad(format!("specialties: {e}")))?,
            industries: list("industries_json")?,
            window_start: instant("window_start")?,
            window_end: instant("window_end")?,
            required_materials: serde_json::from_value(json("materials_json")?)
                .map_err(|e| bad(format!("materials: {e}")))?,
        },
        status: CallStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        edition_number: row.try_get::<i32, _>("edition_number")?,
        publications: Vec::new(),
        first_published_on,
        status_reason: text("status_reason")?,
        created_by: Actor {
            subject: text("created_by_subject")?,
            role: text("created_by_role")?,
            bureau: (!bureau.is_empty()).then_some(bureau),
        },
        created_at: instant("created_at")?,
        updated_at: instant("updated_at")?,
    })
}
