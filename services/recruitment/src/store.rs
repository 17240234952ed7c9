//! Recruitment's SQL: one function per statement, portable across SQLite and PostgreSQL.

use sqlx::{AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Page,
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use crate::domain::{Call, CallFilter, CallId, CallStatus, NewCall};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("corrupt calls row {id}: {problem}")]
    Corrupt { id: String, problem: String },
}

macro_rules! call_columns {
    () => {
        "id, year, title, body, categories_json, specialties_json, industries_json, window_start, window_end, \
         materials_json, status, edition_number, created_by_subject, created_by_role, created_by_bureau, \
         created_at, updated_at"
    };
}

pub async fn insert_call(db: impl AnyExecutor<'_>, call: &Call) -> Result<(), sqlx::Error> {
    let d = &call.details;
    sqlx::query(concat!(
        "INSERT INTO calls (",
        call_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
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
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get_call(db: impl AnyExecutor<'_>, id: &CallId) -> Result<Option<Call>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", call_columns!(), " FROM calls WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.map(|r| call_from_row(&r)).transpose()
}

/// Newest first: ids are UUIDv7, so descending id order is descending creation order.
pub async fn list_calls(db: impl AnyExecutor<'_>, filter: &CallFilter, page: &Page) -> Result<Vec<Call>, StoreError> {
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
    .fetch_all(db)
    .await?;
    rows.iter().map(call_from_row).collect()
}

/// A JSON list column's text.
fn json<T: serde::Serialize>(value: &T) -> String {
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
        created_by: Actor {
            subject: text("created_by_subject")?,
            role: text("created_by_role")?,
            bureau: (!bureau.is_empty()).then_some(bureau),
        },
        created_at: instant("created_at")?,
        updated_at: instant("updated_at")?,
    })
}
