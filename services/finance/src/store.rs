//! Finance's SQL: one function per statement, portable across SQLite and PostgreSQL.

pub mod batches;
pub mod fee_lines;

use sqlx::{AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Bureau, Page,
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use crate::domain::{ExportId, ExportKind, ExportRecord, LedgerQuery, LedgerRow, YearMonth};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("corrupt {table} row {id}: {problem}")]
    Corrupt { table: &'static str, id: String, problem: String },
}

/// Sums of fee lines by work month, paying bureau and fund, in that order.
pub async fn ledger_rows(db: impl AnyExecutor<'_>, query: &LedgerQuery) -> Result<Vec<LedgerRow>, StoreError> {
    let rows = sqlx::query(
        // PostgreSQL sums BIGINT into NUMERIC, which the portable driver cannot read: cast back.
        "SELECT substr(work_date, 1, 7) AS month, paying_bureau, fund_source, CAST(COUNT(*) AS BIGINT) AS lines, \
                CAST(SUM(billable_class_hours) AS BIGINT) AS hours, CAST(SUM(amount_fen) AS BIGINT) AS amount \
         FROM fee_lines \
         WHERE substr(work_date, 1, 7) >= $1 AND substr(work_date, 1, 7) <= $2 \
           AND ($3 = '' OR paying_bureau = $3) AND ($4 = '' OR fund_source = $4) \
         GROUP BY substr(work_date, 1, 7), paying_bureau, fund_source \
         ORDER BY 1, 2, 3",
    )
    .bind(query.months.from.key())
    .bind(query.months.to.key())
    .bind(query.bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(query.fund.as_deref().unwrap_or_default())
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|row| {
            let month: String = row.try_get("month")?;
            let bureau: String = row.try_get("paying_bureau")?;
            let bad =
                |problem: String| StoreError::Corrupt { table: "fee_lines", id: format!("{month}/{bureau}"), problem };
            Ok(LedgerRow {
                month: YearMonth::parse_key(&month).ok_or_else(|| bad("work_date".into()))?,
                bureau: Bureau::from_division_code(&bureau).ok_or_else(|| bad("paying_bureau".into()))?,
                fund: row.try_get("fund_source")?,
                lines: row.try_get("lines")?,
                billable_class_hours: row.try_get("hours")?,
                amount_fen: row.try_get("amount")?,
            })
        })
        .collect()
}

macro_rules! export_columns {
    () => {
        "id, kind, format, payment_batch_id, paying_bureau, month, expert_id, year, file_name, size_bytes, sha256, \
         row_count, total_fen, created_by_subject, created_by_role, created_by_bureau, created_at"
    };
}

pub async fn insert_export(db: impl AnyExecutor<'_>, e: &ExportRecord) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO exports (",
        export_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
    ))
    .bind(e.id.as_str())
    .bind(e.kind.code())
    .bind(&e.format)
    .bind(&e.payment_batch_id)
    .bind(e.bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(&e.month)
    .bind(&e.expert_id)
    .bind(e.year)
    .bind(&e.file_name)
    .bind(e.size_bytes)
    .bind(&e.sha256)
    .bind(e.row_count)
    .bind(e.total_fen)
    .bind(&e.created_by.subject)
    .bind(&e.created_by.role)
    .bind(e.created_by.bureau.clone().unwrap_or_default())
    .bind(format_instant(e.created_at))
    .execute(db)
    .await?;
    Ok(())
}

/// Newest first. `bureau_scope` limits a bureau-scoped caller to its own bureau's exports.
pub async fn list_exports(
    db: impl AnyExecutor<'_>,
    kind: Option<ExportKind>,
    bureau: Option<Bureau>,
    page: &Page,
) -> Result<Vec<ExportRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        export_columns!(),
        " FROM exports WHERE ($1 = '' OR id < $1) AND ($2 = '' OR kind = $2) AND ($3 = '' OR paying_bureau = $3) \
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(kind.map(ExportKind::code).unwrap_or_default())
    .bind(bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(i64::from(page.size))
    .fetch_all(db)
    .await?;
    rows.iter().map(export_from_row).collect()
}

fn export_from_row(row: &AnyRow) -> Result<ExportRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { table: "exports", id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let kind = text("kind")?;
    let bureau = text("paying_bureau")?;
    let by_bureau = text("created_by_bureau")?;
    Ok(ExportRecord {
        id: ExportId::parse(&id).ok_or_else(|| bad("id".into()))?,
        kind: ExportKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
        format: text("format")?,
        payment_batch_id: text("payment_batch_id")?,
        bureau: if bureau.is_empty() {
            None
        } else {
            Some(Bureau::from_division_code(&bureau).ok_or_else(|| bad(format!("bureau {bureau}")))?)
        },
        month: text("month")?,
        expert_id: text("expert_id")?,
        year: row.try_get("year")?,
        file_name: text("file_name")?,
        size_bytes: row.try_get("size_bytes")?,
        sha256: text("sha256")?,
        row_count: row.try_get("row_count")?,
        total_fen: row.try_get("total_fen")?,
        created_by: Actor {
            subject: text("created_by_subject")?,
            role: text("created_by_role")?,
            bureau: (!by_bureau.is_empty()).then_some(by_bureau),
        },
        created_at: parse_instant(&text("created_at")?).map_err(|e| bad(format!("created_at: {e}")))?,
    })
}

/// Every export of `kind` for a bureau, oldest first.
pub async fn exports_of_bureau(
    db: impl AnyExecutor<'_>,
    kind: ExportKind,
    bureau: Bureau,
) -> Result<Vec<ExportRecord>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        export_columns!(),
        " FROM exports WHERE kind = $1 AND paying_bureau = $2 ORDER BY created_at, id"
    ))
    .bind(kind.code())
    .bind(bureau.division_code())
    .fetch_all(db)
    .await?;
    rows.iter().map(export_from_row).collect()
}
