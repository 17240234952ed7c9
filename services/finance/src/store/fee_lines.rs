//! Fee lines, held revisions and the per-expert lock: one function per statement.

use chrono::{NaiveDate, NaiveTime};
use sqlx::{AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Backend, Bureau,
    storage::{format_instant, parse_instant},
};

use super::StoreError;
use crate::domain::{
    FeeBasis, FeeLine, FeeLineId, HalfDay, LineKind, LineStatus, Payer, Rounding, SlotKey, ZeroReason,
    fee_line::reversal_cause_from_code,
};

macro_rules! line_columns {
    () => {
        "id, assignment_id, revision, task_id, task_number, expert_id, paying_bureau, fund_source, work_date, \
         half_day, start_time, minutes, class_hours, billable_class_hours, rate_fen, basis, rounding, amount_fen, \
         kind, reverses_line_id, reversal_cause, zero_reason, zero_detail, edition_number, batch_id, created_at, \
         task_session_id, paid"
    };
}

/// A charge no reversal points at.
macro_rules! live {
    () => {
        "kind = 'CHARGE' AND NOT EXISTS (SELECT 1 FROM fee_lines r WHERE r.reverses_line_id = fee_lines.id)"
    };
}

pub async fn insert_line(db: impl AnyExecutor<'_>, l: &FeeLine) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO fee_lines (",
        line_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23, $24, $25, $26, $27, $28)"
    ))
    .bind(l.id.as_str())
    .bind(&l.payer.assignment_id)
    .bind(i64::from(l.revision))
    .bind(&l.payer.task_id)
    .bind(&l.payer.task_number)
    .bind(&l.payer.expert_id)
    .bind(l.payer.paying_bureau.division_code())
    .bind(&l.payer.fund_source)
    .bind(l.work_date.to_string())
    .bind(l.half_day.code())
    .bind(l.start.format("%H:%M").to_string())
    .bind(l.minutes)
    .bind(l.class_hours)
    .bind(l.billable_class_hours)
    .bind(l.rate_fen)
    .bind(l.basis.code())
    .bind(l.rounding.code())
    .bind(l.amount_fen)
    .bind(l.kind.code())
    .bind(l.reverses.as_ref().map(FeeLineId::as_str).unwrap_or_default())
    .bind(l.reversal_cause.map(|c| c.code()).unwrap_or_default())
    .bind(l.zero_reason.map(ZeroReason::code).unwrap_or_default())
    .bind(&l.zero_detail)
    .bind(i64::from(l.edition_number))
    .bind(&l.batch_id)
    .bind(format_instant(l.created_at))
    .bind(&l.session_id)
    .bind(i32::from(l.paid))
    .execute(db)
    .await?;
    Ok(())
}

/// The live charges of one expert's half-day slot, in the order written.
pub async fn live_lines_in_slot(db: impl AnyExecutor<'_>, slot: &SlotKey) -> Result<Vec<FeeLine>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        line_columns!(),
        " FROM fee_lines WHERE expert_id = $1 AND work_date = $2 AND half_day = $3 AND ",
        live!(),
        " ORDER BY id"
    ))
    .bind(&slot.expert_id)
    .bind(slot.date.to_string())
    .bind(slot.half_day.code())
    .fetch_all(db)
    .await?;
    rows.iter().map(line_from_row).collect()
}

/// The live charges of one assignment, in every slot.
pub async fn live_lines_of_assignment(
    db: impl AnyExecutor<'_>,
    assignment_id: &str,
) -> Result<Vec<FeeLine>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        line_columns!(),
        " FROM fee_lines WHERE assignment_id = $1 AND ",
        live!(),
        " ORDER BY id"
    ))
    .bind(assignment_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(line_from_row).collect()
}

pub async fn get_line(db: impl AnyExecutor<'_>, id: &FeeLineId) -> Result<Option<FeeLine>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", line_columns!(), " FROM fee_lines WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(line_from_row).transpose()
}

/// What a listing of lines asks for; `None` is no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineFilter {
    pub expert_id: Option<String>,
    pub assignment_id: Option<String>,
    pub bureau: Option<Bureau>,
    pub fund_source: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub status: Option<LineStatus>,
    pub batch_id: Option<String>,
}

/// Lines in the order written, after the page's last id.
pub async fn list_lines(
    db: impl AnyExecutor<'_>,
    filter: &LineFilter,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<FeeLine>, StoreError> {
    let status = match filter.status {
        None => "",
        Some(LineStatus::Open) => "OPEN",
        Some(LineStatus::InBatch) => "IN_BATCH",
        Some(LineStatus::Paid) => "PAID",
    };
    let rows = sqlx::query(concat!(
        "SELECT ",
        line_columns!(),
        " FROM fee_lines WHERE ($1 = '' OR id > $1) AND ($2 = '' OR expert_id = $2) AND ($3 = '' OR assignment_id = $3) \
         AND ($4 = '' OR paying_bureau = $4) AND ($5 = '' OR fund_source = $5) AND ($6 = '' OR work_date >= $6) \
         AND ($7 = '' OR work_date <= $7) AND ($8 = '' OR batch_id = $8) \
         AND ($9 = '' OR ($9 = 'OPEN' AND batch_id = '') OR ($9 = 'IN_BATCH' AND batch_id <> '' AND paid = 0) \
              OR ($9 = 'PAID' AND paid = 1)) \
         ORDER BY id LIMIT $10"
    ))
    .bind(after.unwrap_or_default())
    .bind(filter.expert_id.as_deref().unwrap_or_default())
    .bind(filter.assignment_id.as_deref().unwrap_or_default())
    .bind(filter.bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(filter.fund_source.as_deref().unwrap_or_default())
    .bind(filter.from.map(|d| d.to_string()).unwrap_or_default())
    .bind(filter.to.map(|d| d.to_string()).unwrap_or_default())
    .bind(filter.batch_id.as_deref().unwrap_or_default())
    .bind(status)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await?;
    rows.iter().map(line_from_row).collect()
}

/// The revision held for an assignment, if any.
pub async fn held_revision(db: impl AnyExecutor<'_>, assignment_id: &str) -> Result<Option<u32>, StoreError> {
    let held: Option<i32> = sqlx::query_scalar("SELECT held_revision FROM fee_assignments WHERE assignment_id = $1")
        .bind(assignment_id)
        .fetch_optional(db)
        .await?;
    held.map(|r| {
        u32::try_from(r).map_err(|_| StoreError::Corrupt {
            table: "fee_assignments",
            id: assignment_id.to_owned(),
            problem: format!("held_revision {r}"),
        })
    })
    .transpose()
}

pub async fn hold_revision(
    db: impl AnyExecutor<'_>,
    assignment_id: &str,
    expert_id: &str,
    revision: u32,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fee_assignments (assignment_id, expert_id, held_revision, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (assignment_id) DO UPDATE SET expert_id = $2, held_revision = $3, updated_at = $4",
    )
    .bind(assignment_id)
    .bind(expert_id)
    .bind(i64::from(revision))
    .bind(format_instant(at))
    .execute(db)
    .await?;
    Ok(())
}

/// Takes the expert's row lock until the transaction ends. On SQLite the write transaction
/// (BEGIN IMMEDIATE) already serialises every writer.
pub async fn lock_expert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    expert_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO fee_experts (expert_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(expert_id)
        .execute(&mut **tx)
        .await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT expert_id FROM fee_experts WHERE expert_id = $1 FOR UPDATE")
            .bind(expert_id)
            .fetch_one(&mut **tx)
            .await?;
    }
    Ok(())
}

fn line_from_row(row: &AnyRow) -> Result<FeeLine, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { table: "fee_lines", id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    // INTEGER columns read as i32 on both backends, BIGINT ones as i64.
    let int = |col: &str| -> Result<i64, StoreError> { Ok(i64::from(row.try_get::<i32, _>(col)?)) };
    let fen = |col: &str| -> Result<i64, StoreError> { Ok(row.try_get::<i64, _>(col)?) };
    let count = |col: &str| -> Result<u32, StoreError> {
        let v = int(col)?;
        u32::try_from(v).map_err(|_| bad(format!("{col} {v}")))
    };
    let bureau = text("paying_bureau")?;
    let date = text("work_date")?;
    let half_day = text("half_day")?;
    let start = text("start_time")?;
    let (basis, rounding, kind) = (text("basis")?, text("rounding")?, text("kind")?);
    let (reverses, cause, zero) = (text("reverses_line_id")?, text("reversal_cause")?, text("zero_reason")?);
    let optional = |code: &str| (!code.is_empty()).then_some(code.to_owned());
    Ok(FeeLine {
        id: FeeLineId::parse(&id).ok_or_else(|| bad("id".into()))?,
        payer: Payer {
            assignment_id: text("assignment_id")?,
            task_id: text("task_id")?,
            task_number: text("task_number")?,
            expert_id: text("expert_id")?,
            paying_bureau: Bureau::from_division_code(&bureau).ok_or_else(|| bad(format!("bureau {bureau}")))?,
            fund_source: text("fund_source")?,
        },
        revision: count("revision")?,
        work_date: date.parse().map_err(|_| bad(format!("work_date {date}")))?,
        half_day: HalfDay::from_code(&half_day).ok_or_else(|| bad(format!("half_day {half_day}")))?,
        session_id: text("task_session_id")?,
        start: NaiveTime::parse_from_str(&start, "%H:%M").map_err(|_| bad(format!("start_time {start}")))?,
        minutes: int("minutes")?,
        class_hours: int("class_hours")?,
        billable_class_hours: int("billable_class_hours")?,
        rate_fen: fen("rate_fen")?,
        basis: FeeBasis::from_code(&basis).ok_or_else(|| bad(format!("basis {basis}")))?,
        rounding: Rounding::from_code(&rounding).ok_or_else(|| bad(format!("rounding {rounding}")))?,
        amount_fen: fen("amount_fen")?,
        kind: LineKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
        reverses: match optional(&reverses) {
            None => None,
            Some(r) => Some(FeeLineId::parse(&r).ok_or_else(|| bad(format!("reverses_line_id {r}")))?),
        },
        reversal_cause: match optional(&cause) {
            None => None,
            Some(c) => Some(reversal_cause_from_code(&c).ok_or_else(|| bad(format!("reversal_cause {c}")))?),
        },
        zero_reason: match optional(&zero) {
            None => None,
            Some(z) => Some(ZeroReason::from_code(&z).ok_or_else(|| bad(format!("zero_reason {z}")))?),
        },
        zero_detail: text("zero_detail")?,
        edition_number: count("edition_number")?,
        batch_id: text("batch_id")?,
        paid: int("paid")? != 0,
        created_at: parse_instant(&text("created_at")?).map_err(|e| bad(format!("created_at: {e}")))?,
    })
}

/// The sums of a paying bureau's lines with work dates in `month` (`YYYY-MM`): every line,
/// charges and reversals alike, and the live charges only. Reversals net exactly when the two are
/// equal.
pub async fn month_sums(db: impl AnyExecutor<'_>, bureau: Bureau, month: &str) -> Result<(i64, i64), StoreError> {
    let row = sqlx::query(concat!(
        // PostgreSQL sums BIGINT into NUMERIC, which the portable driver cannot read: cast back.
        "SELECT CAST(COALESCE(SUM(amount_fen), 0) AS BIGINT) AS all_fen, \
                CAST(COALESCE(SUM(CASE WHEN ",
        live!(),
        " THEN amount_fen ELSE 0 END), 0) AS BIGINT) AS live_fen \
         FROM fee_lines WHERE paying_bureau = $1 AND substr(work_date, 1, 7) = $2"
    ))
    .bind(bureau.division_code())
    .bind(month)
    .fetch_one(db)
    .await?;
    Ok((row.try_get("all_fen")?, row.try_get("live_fen")?))
}

/// Reversals of a bureau's month (by work date) that are not the exact negative of one existing
/// line, and lines reversed more than once: `(line id, problem)`.
pub async fn broken_reversals(
    db: &mut sqlx::AnyConnection,
    bureau: Bureau,
    month: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let bad = sqlx::query(
        "SELECT r.id AS id, CASE WHEN o.id IS NULL THEN 'reverses no line' \
                ELSE 'is not the exact negative of the line it reverses' END AS problem \
         FROM fee_lines r LEFT JOIN fee_lines o ON o.id = r.reverses_line_id \
         WHERE r.kind = 'REVERSAL' AND r.paying_bureau = $1 AND substr(r.work_date, 1, 7) = $2 \
           AND (o.id IS NULL OR o.kind <> 'CHARGE' OR r.amount_fen <> -o.amount_fen \
                OR r.billable_class_hours <> -o.billable_class_hours OR r.expert_id <> o.expert_id \
                OR r.fund_source <> o.fund_source OR r.paying_bureau <> o.paying_bureau) \
         ORDER BY r.id",
    )
    .bind(bureau.division_code())
    .bind(month)
    .fetch_all(&mut *db)
    .await?;
    let twice = sqlx::query(
        "SELECT reverses_line_id AS id, 'is reversed more than once' AS problem FROM fee_lines \
         WHERE kind = 'REVERSAL' AND paying_bureau = $1 AND substr(work_date, 1, 7) = $2 \
         GROUP BY reverses_line_id HAVING COUNT(*) > 1 ORDER BY reverses_line_id",
    )
    .bind(bureau.division_code())
    .bind(month)
    .fetch_all(&mut *db)
    .await?;
    bad.iter().chain(twice.iter()).map(|r| Ok((r.try_get("id")?, r.try_get("problem")?))).collect()
}

/// Every line a batch holds (its `batch_id`), in the order written.
pub async fn lines_of_batch(db: impl AnyExecutor<'_>, batch_id: &str) -> Result<Vec<FeeLine>, StoreError> {
    let rows = sqlx::query(concat!("SELECT ", line_columns!(), " FROM fee_lines WHERE batch_id = $1 ORDER BY id"))
        .bind(batch_id)
        .fetch_all(db)
        .await?;
    rows.iter().map(line_from_row).collect()
}
