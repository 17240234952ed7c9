//! Payment batches, the lines they take and the per-month lock: one function per statement.

use chrono::NaiveDate;
use sqlx::{Any, AnyExecutor, Row, Transaction, any::AnyRow};
use supervision_kit::{
    Backend, Bureau,
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use super::StoreError;
use crate::domain::{Batch, BatchId, BatchStatus, YearMonth};

macro_rules! batch_columns {
    () => {
        "id, paying_bureau, payment_month, fund_source, status, total_gross_fen, total_tax_fen, total_net_fen, \
         requires_second_approval, items, approvals, prepared_by, created_at, submitted_at, approved_at, \
         close_reason, closed_by, bank_reference, paid_date, paid_by"
    };
}

/// Takes the (bureau, month) row lock until the transaction ends. On SQLite the write
/// transaction already serialises every writer.
pub async fn lock_month(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    bureau: Bureau,
    month: YearMonth,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO payment_months (paying_bureau, payment_month) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(bureau.division_code())
        .bind(month.key())
        .execute(&mut **tx)
        .await?;
    if backend == Backend::Postgres {
        sqlx::query(
            "SELECT paying_bureau FROM payment_months WHERE paying_bureau = $1 AND payment_month = $2 FOR UPDATE",
        )
        .bind(bureau.division_code())
        .bind(month.key())
        .fetch_one(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Puts every open line of the bureau and fund with a work date in `from..=to` into `batch`, in
/// one conditional statement: a line already in a batch is never taken. Returns how many.
pub async fn take_open_lines(
    db: impl AnyExecutor<'_>,
    batch: &BatchId,
    bureau: Bureau,
    fund: &str,
    from: Option<NaiveDate>,
    to: NaiveDate,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE fee_lines SET batch_id = $1 WHERE batch_id = '' AND paid = 0 AND paying_bureau = $2 \
         AND fund_source = $3 AND ($4 = '' OR work_date >= $4) AND work_date <= $5",
    )
    .bind(batch.as_str())
    .bind(bureau.division_code())
    .bind(fund)
    .bind(from.map(|d| d.to_string()).unwrap_or_default())
    .bind(to.to_string())
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Opens the lines of a rejected or cancelled batch again. Paid lines are never touched.
pub async fn release_lines(db: impl AnyExecutor<'_>, batch: &BatchId) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("UPDATE fee_lines SET batch_id = '' WHERE batch_id = $1 AND paid = 0")
        .bind(batch.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Marks the lines of a batch paid.
pub async fn pay_lines(db: impl AnyExecutor<'_>, batch: &BatchId) -> Result<u64, sqlx::Error> {
    let done = sqlx::query("UPDATE fee_lines SET paid = 1 WHERE batch_id = $1 AND paid = 0")
        .bind(batch.as_str())
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// `(expert, basis, amount)` of every line of a batch, in the order written.
pub async fn line_amounts(
    db: impl AnyExecutor<'_>,
    batch: &BatchId,
) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    let rows = sqlx::query("SELECT id, expert_id, basis, amount_fen FROM fee_lines WHERE batch_id = $1 ORDER BY id")
        .bind(batch.as_str())
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("expert_id")?, r.try_get("basis")?, r.try_get("amount_fen")?)))
        .collect()
}

pub async fn insert_batch(db: impl AnyExecutor<'_>, b: &Batch) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO payment_batches (",
        batch_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    ))
    .bind(b.id.as_str())
    .bind(b.bureau.division_code())
    .bind(b.month.key())
    .bind(&b.fund_source)
    .bind(b.status.code())
    .bind(b.total_gross_fen())
    .bind(b.total_tax_fen())
    .bind(b.total_net_fen())
    .bind(i32::from(b.requires_second_approval))
    .bind(json(&b.items)?)
    .bind(json(&b.approvals)?)
    .bind(json(&b.prepared_by)?)
    .bind(format_instant(b.created_at))
    .bind(b.submitted_at.map(format_instant).unwrap_or_default())
    .bind(b.approved_at.map(format_instant).unwrap_or_default())
    .bind(&b.close_reason)
    .bind(optional_json(b.closed_by.as_ref())?)
    .bind(&b.bank_reference)
    .bind(b.paid_date.map(|d| d.to_string()).unwrap_or_default())
    .bind(optional_json(b.paid_by.as_ref())?)
    .execute(db)
    .await?;
    Ok(())
}

/// Writes a batch's state after a transition (everything but its identity and preparer).
pub async fn update_batch(db: impl AnyExecutor<'_>, b: &Batch) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE payment_batches SET status = $2, total_gross_fen = $3, total_tax_fen = $4, total_net_fen = $5, \
         items = $6, approvals = $7, submitted_at = $8, approved_at = $9, close_reason = $10, closed_by = $11, \
         bank_reference = $12, paid_date = $13, paid_by = $14 WHERE id = $1",
    )
    .bind(b.id.as_str())
    .bind(b.status.code())
    .bind(b.total_gross_fen())
    .bind(b.total_tax_fen())
    .bind(b.total_net_fen())
    .bind(json(&b.items)?)
    .bind(json(&b.approvals)?)
    .bind(b.submitted_at.map(format_instant).unwrap_or_default())
    .bind(b.approved_at.map(format_instant).unwrap_or_default())
    .bind(&b.close_reason)
    .bind(optional_json(b.closed_by.as_ref())?)
    .bind(&b.bank_reference)
    .bind(b.paid_date.map(|d| d.to_string()).unwrap_or_default())
    .bind(optional_json(b.paid_by.as_ref())?)
    .execute(db)
    .await?;
    Ok(())
}

/// One batch; `for_update` locks its row on PostgreSQL until the transaction ends.
pub async fn get_batch(
    db: impl AnyExecutor<'_>,
    backend: Backend,
    id: &BatchId,
    for_update: bool,
) -> Result<Option<Batch>, StoreError> {
    let sql = if for_update && backend == Backend::Postgres {
        concat!("SELECT ", batch_columns!(), " FROM payment_batches WHERE id = $1 FOR UPDATE")
    } else {
        concat!("SELECT ", batch_columns!(), " FROM payment_batches WHERE id = $1")
    };
    let row = sqlx::query(sql).bind(id.as_str()).fetch_optional(db).await?;
    row.as_ref().map(batch_from_row).transpose()
}

/// The approved and paid batches of a bureau's payment month, in the order approved.
pub async fn settled_in_month(
    db: impl AnyExecutor<'_>,
    bureau: Bureau,
    month: YearMonth,
) -> Result<Vec<Batch>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        batch_columns!(),
        " FROM payment_batches WHERE paying_bureau = $1 AND payment_month = $2 \
          AND status IN ('APPROVED', 'PAID') ORDER BY approved_at, id"
    ))
    .bind(bureau.division_code())
    .bind(month.key())
    .fetch_all(db)
    .await?;
    rows.iter().map(batch_from_row).collect()
}

/// The approved and paid batches, of one bureau and one month when given, in the order approved.
pub async fn settled_batches(
    db: impl AnyExecutor<'_>,
    bureau: Option<Bureau>,
    month: Option<YearMonth>,
) -> Result<Vec<Batch>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        batch_columns!(),
        " FROM payment_batches WHERE ($1 = '' OR paying_bureau = $1) AND ($2 = '' OR payment_month = $2) \
          AND status IN ('APPROVED', 'PAID') ORDER BY approved_at, id"
    ))
    .bind(bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(month.map(YearMonth::key).unwrap_or_default())
    .fetch_all(db)
    .await?;
    rows.iter().map(batch_from_row).collect()
}

/// What a listing of batches asks for; `None` is no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFilter {
    pub bureau: Option<Bureau>,
    pub month: Option<YearMonth>,
    pub status: Option<BatchStatus>,
    pub fund_source: Option<String>,
}

/// Newest first, before the page's last id.
pub async fn list_batches(
    db: impl AnyExecutor<'_>,
    filter: &BatchFilter,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Batch>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        batch_columns!(),
        " FROM payment_batches WHERE ($1 = '' OR id < $1) AND ($2 = '' OR paying_bureau = $2) \
          AND ($3 = '' OR payment_month = $3) AND ($4 = '' OR status = $4) AND ($5 = '' OR fund_source = $5) \
          ORDER BY id DESC LIMIT $6"
    ))
    .bind(before.unwrap_or_default())
    .bind(filter.bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(filter.month.map(YearMonth::key).unwrap_or_default())
    .bind(filter.status.map(BatchStatus::code).unwrap_or_default())
    .bind(filter.fund_source.as_deref().unwrap_or_default())
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(batch_from_row).collect()
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        table: "payment_batches",
        id: String::new(),
        problem: format!("cannot encode: {e}"),
    })
}

fn optional_json(actor: Option<&Actor>) -> Result<String, StoreError> {
    actor.map(json).transpose().map(Option::unwrap_or_default)
}

fn batch_from_row(row: &AnyRow) -> Result<Batch, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { table: "payment_batches", id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let parse = |col: &str, raw: String| -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&raw).map_err(|e| bad(format!("{col}: {e}")))
    };
    let actor = |col: &str| -> Result<Option<Actor>, StoreError> {
        let raw = text(col)?;
        if raw.is_empty() {
            return Ok(None);
        }
        serde_json::from_value(parse(col, raw)?).map(Some).map_err(|e| bad(format!("{col}: {e}")))
    };
    let instant = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let raw = text(col)?;
        if raw.is_empty() {
            return Ok(None);
        }
        parse_instant(&raw).map(Some).map_err(|e| bad(format!("{col}: {e}")))
    };
    let bureau = text("paying_bureau")?;
    let month = text("payment_month")?;
    let status = text("status")?;
    let paid_date = text("paid_date")?;
    let requires: i32 = row.try_get("requires_second_approval")?;
    Ok(Batch {
        id: BatchId::parse(&id).ok_or_else(|| bad("id".into()))?,
        bureau: Bureau::from_division_code(&bureau).ok_or_else(|| bad(format!("bureau {bureau}")))?,
        month: YearMonth::parse_key(&month).ok_or_else(|| bad(format!("payment_month {month}")))?,
        fund_source: text("fund_source")?,
        status: BatchStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        items: serde_json::from_value(parse("items", text("items")?)?).map_err(|e| bad(format!("items: {e}")))?,
        requires_second_approval: requires != 0,
        approvals: serde_json::from_value(parse("approvals", text("approvals")?)?)
            .map_err(|e| bad(format!("approvals: {e}")))?,
        prepared_by: actor("prepared_by")?.ok_or_else(|| bad("prepared_by".into()))?,
        created_at: instant("created_at")?.ok_or_else(|| bad("created_at".into()))?,
        submitted_at: instant("submitted_at")?,
        approved_at: instant("approved_at")?,
        close_reason: text("close_reason")?,
        closed_by: actor("closed_by")?,
        bank_reference: text("bank_reference")?,
        paid_date: if paid_date.is_empty() {
            None
        } else {
            Some(paid_date.parse().map_err(|_| bad(format!("paid_date {paid_date}")))?)
        },
        paid_by: actor("paid_by")?,
    })
}

/// Every batch of a bureau, in any state, in the order drafted.
pub async fn batches_of_bureau(db: impl AnyExecutor<'_>, bureau: Bureau) -> Result<Vec<Batch>, StoreError> {
    let rows =
        sqlx::query(concat!("SELECT ", batch_columns!(), " FROM payment_batches WHERE paying_bureau = $1 ORDER BY id"))
            .bind(bureau.division_code())
            .fetch_all(db)
            .await?;
    rows.iter().map(batch_from_row).collect()
}

/// The approved and paid batches, of one bureau when given, whose payment month is in `year`,
/// in the order approved.
pub async fn settled_in_year(
    db: impl AnyExecutor<'_>,
    bureau: Option<Bureau>,
    year: i32,
) -> Result<Vec<Batch>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        batch_columns!(),
        " FROM payment_batches WHERE ($1 = '' OR paying_bureau = $1) AND substr(payment_month, 1, 4) = $2 \
          AND status IN ('APPROVED', 'PAID') ORDER BY approved_at, id"
    ))
    .bind(bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(format!("{year:04}"))
    .fetch_all(db)
    .await?;
    rows.iter().map(batch_from_row).collect()
}
