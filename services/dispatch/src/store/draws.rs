//! Draws' SQL: the draw record, the assignments, and the bookings that fence an expert's
//! half-day (ARCHITECTURE.md "The draw" step 6). Portable across SQLite and PostgreSQL.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use chrono::NaiveDate;
use sqlx::{AnyConnection, Row, any::AnyRow};
use supervision_draw::FrozenList;
use supervision_kit::{
    Page,
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use super::StoreError;
use crate::domain::{
    Assignment, AssignmentId, AssignmentRole, AssignmentStatus, Draw, DrawId, DrawKind, DrawStatus, DrawVoid,
    Exclusion, ExclusionReason, HalfDay, TaskId, TaskVisibility,
};

/// The unique index that keeps an expert's half-day to one booking.
pub const BOOKING_INDEX: &str = "bookings_slot_key";
/// What SQLite names instead of the index.
pub const BOOKING_COLUMNS: &str = "bookings.expert_id, bookings.session_date, bookings.half_day";
/// The constraint that keeps an expert to one assignment per draw (PostgreSQL's name for it).
pub const DRAW_EXPERT_KEY: &str = "assignments_draw_id_expert_id_key";
/// What SQLite names instead of the constraint.
pub const DRAW_EXPERT_COLUMNS: &str = "assignments.draw_id, assignments.expert_id";

macro_rules! draw_columns {
    () => {
        "id, task_id, live_key, kind, status, algorithm, edition_number, team_size, backup_count, frozen_list, \
         frozen_list_sha256, candidate_count, pool_count, exclusions, untrained, server_seed, seed_commitment, \
         dice_digits, draw_order, walk, relaxations, next_position, operator_subject, operator_role, \
         operator_bureau, witness_subject, witness_role, witness_bureau, prepared_at, witnessed_at, executed_at, \
         pool_relaxations, specialty_tier, abandon_reason, void_reason, voided_by, void_time, supplements_draw_id, \
         designation, pool_list_sha256, untrained_sha256"
    };
}

/// The columns reads return: all but the frozen list and the untrained list, which
/// [`frozen_list`] and [`untrained`] read alone.
macro_rules! draw_read_columns {
    () => {
        "id, task_id, live_key, kind, status, algorithm, edition_number, team_size, backup_count, \
         frozen_list_sha256, candidate_count, pool_count, exclusions, server_seed, seed_commitment, \
         dice_digits, draw_order, walk, relaxations, next_position, operator_subject, operator_role, \
         operator_bureau, witness_subject, witness_role, witness_bureau, prepared_at, witnessed_at, executed_at, \
         pool_relaxations, specialty_tier, abandon_reason, void_reason, voided_by, void_time, supplements_draw_id, \
         designation, pool_list_sha256"
    };
}

macro_rules! assignment_columns {
    () => {
        "id, task_id, draw_id, expert_id, position, role, status, trained, notified_at, created_at, updated_at, \
         response, decline_deadline, replaces_assignment_id, replaced_by_assignment_id, cancel_reason, \
         worked_sessions, report_id, fee_revision"
    };
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn exclusions_json(exclusions: &[Exclusion]) -> String {
    serde_json::Value::Array(
        exclusions
            .iter()
            .map(|e| {
                serde_json::json!({
                    "expert_id": e.expert_id,
                    "reasons": e.reasons.iter().map(|r| r.code()).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
    .to_string()
}

fn order_text(order: &[(String, String)]) -> String {
    order.iter().map(|(id, ticket)| format!("{id} {ticket}\n")).collect()
}

fn actor_parts(a: Option<&Actor>) -> (String, String, String) {
    a.map_or_else(Default::default, |a| (a.subject.clone(), a.role.clone(), a.bureau.clone().unwrap_or_default()))
}

fn instant_or_empty(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map(format_instant).unwrap_or_default()
}

/// One live initial draw per task, and one live supplementary draw per exhausted draw. A
/// designation (D15) stands in for the initial draw and shares its key: the database keeps a task
/// to one live initial draw or designation, whichever commits first.
fn live_key(d: &Draw) -> String {
    match d.kind {
        DrawKind::Initial | DrawKind::Designation => d.task_id.to_string(),
        DrawKind::Supplementary => format!("{}:supplements:{}", d.task_id, d.supplements),
    }
}

/// Records a prepared draw. The live key keeps one live initial draw per task: a second prepare
/// of the same task fails on it. Its untrained list is stored once per distinct list
/// ([`store_untrained_list`]) and named by its SHA-256.
pub async fn insert_draw(conn: &mut AnyConnection, d: &Draw) -> Result<(), sqlx::Error> {
    let untrained_sha256 = store_untrained_list(conn, &d.untrained.clone().unwrap_or_default()).await?;
    let (ws, wr, wb) = actor_parts(d.witness.as_ref());
    let (os, or, ob) = actor_parts(Some(&d.operator));
    sqlx::query(concat!(
        "INSERT INTO draws (",
        draw_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
           $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41)"
    ))
    .bind(d.id.as_str())
    .bind(d.task_id.as_str())
    .bind(live_key(d))
    .bind(d.kind.code())
    .bind(d.status.code())
    .bind(&d.algorithm)
    .bind(i64::from(d.edition_number))
    .bind(i64::from(d.team_size))
    .bind(i64::from(d.backup_count))
    .bind(d.frozen_list.as_deref().unwrap_or_default())
    .bind(&d.frozen_list_sha256)
    .bind(count(d.candidate_count))
    .bind(count(d.pool_count))
    .bind(exclusions_json(&d.exclusions))
    // Held in `untrained_lists`; the column keeps the lists of draws recorded before it.
    .bind("")
    .bind(&d.server_seed)
    .bind(&d.seed_commitment)
    .bind(&d.dice_digits)
    .bind(order_text(&d.order))
    .bind(serde_json::to_string(&d.walk).unwrap_or_default())
    .bind(serde_json::to_string(&d.relaxations).unwrap_or_default())
    .bind(count(d.next_position))
    .bind(os)
    .bind(or)
    .bind(ob)
    .bind(ws)
    .bind(wr)
    .bind(wb)
    .bind(format_instant(d.prepared_at))
    .bind(instant_or_empty(d.witnessed_at))
    .bind(instant_or_empty(d.executed_at))
    .bind(serde_json::to_string(&d.pool_relaxations).unwrap_or_default())
    .bind(i64::from(d.specialty_tier))
    .bind(&d.abandon_reason)
    .bind(d.void.as_ref().map(|v| v.reason.clone()).unwrap_or_default())
    .bind(d.void.as_ref().map(|v| serde_json::to_string(&v.by).unwrap_or_default()).unwrap_or_default())
    .bind(instant_or_empty(d.void.as_ref().map(|v| v.at)))
    .bind(&d.supplements)
    .bind(d.designation.as_ref().map(|x| serde_json::to_string(x).unwrap_or_default()).unwrap_or_default())
    .bind(&d.pool_list_sha256)
    .bind(untrained_sha256)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The lower-case hex SHA-256 of `text`, the name an untrained list is stored under.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The last untrained list this process named, with its name. Draws in a row from an unchanged
/// pool share one list (`domain::draw::PoolFacts`); holding it here keeps its address from being
/// reused, so the same address is the same list.
static LAST_NAMED: Mutex<Option<(Arc<[String]>, String)>> = Mutex::new(None);

/// Stores a draw's untrained list (as JSON) unless a list with the same text is stored already,
/// and answers its SHA-256 (lower-case hex). Draws in a row from an unchanged pool flag the same
/// candidates, and writing the list again with each (about 1 MB when a quarter of 100,000 are
/// untrained) was most of the prepare's record at that size (docs/performance.md, eleventh run);
/// writing it as JSON and hashing it again, about 2 ms at that size, is skipped for the list
/// named last (twelfth run).
async fn store_untrained_list(conn: &mut AnyConnection, untrained: &Arc<[String]>) -> Result<String, sqlx::Error> {
    let json = || serde_json::to_string(&untrained[..]).unwrap_or_default();
    let remembered = LAST_NAMED.lock().ok().and_then(|named| {
        named.as_ref().filter(|(list, _)| Arc::ptr_eq(list, untrained)).map(|(_, sha256)| sha256.clone())
    });
    let (sha256, text) = match remembered {
        Some(sha256) => (sha256, None),
        None => {
            let text = json();
            let sha256 = sha256_hex(&text);
            if let Ok(mut named) = LAST_NAMED.lock() {
                *named = Some((Arc::clone(untrained), sha256.clone()));
            }
            (sha256, Some(text))
        }
    };
    let stored = sqlx::query("SELECT 1 AS one FROM untrained_lists WHERE sha256 = $1")
        .bind(&sha256)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !stored {
        sqlx::query("INSERT INTO untrained_lists (sha256, list) VALUES ($1, $2) ON CONFLICT (sha256) DO NOTHING")
            .bind(&sha256)
            .bind(text.unwrap_or_else(json))
            .execute(&mut *conn)
            .await?;
    }
    Ok(sha256)
}

/// Records that a PREPARED or WITNESSED draw was abandoned, freeing the task's live key; false
/// when it is in neither state.
pub async fn record_abandon(conn: &mut AnyConnection, d: &Draw) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE draws SET status = 'ABANDONED', abandon_reason = $1, live_key = id \
         WHERE id = $2 AND status IN ('PREPARED', 'WITNESSED')",
    )
    .bind(&d.abandon_reason)
    .bind(d.id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the void of an EXECUTED draw, freeing the task's live key; false when it is not
/// EXECUTED.
pub async fn record_void(conn: &mut AnyConnection, d: &Draw) -> Result<bool, sqlx::Error> {
    let Some(void) = &d.void else { return Ok(false) };
    let done = sqlx::query(
        "UPDATE draws SET status = 'VOIDED', void_reason = $1, voided_by = $2, void_time = $3, live_key = id \
         WHERE id = $4 AND status = 'EXECUTED'",
    )
    .bind(&void.reason)
    .bind(serde_json::to_string(&void.by).unwrap_or_default())
    .bind(format_instant(void.at))
    .bind(d.id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Assignment statuses that count as having gone, or going, to a task (cooling period, cap).
const SERVING: &str = "('NOTIFIED', 'ACCEPTED', 'COMPLETED', 'NO_SHOW')";

/// Experts placed as primaries on another task at `institution_id` with a session from `from`
/// to `to` inclusive (D14's cooling period).
pub async fn cooling_experts(
    conn: &mut AnyConnection,
    institution_id: &str,
    task: &TaskId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<HashSet<String>, sqlx::Error> {
    // The window's tasks at the institution first (sessions by date, then each one's task), then
    // their assignments: the shape does not hang on the planner's estimates. Probing the sessions
    // once per assignment instead, as PostgreSQL chose on statistics from the tables' first
    // minutes, read the date index's whole range for each (docs/performance.md, ninth run).
    let sql = format!(
        "WITH near AS MATERIALIZED (\
             SELECT DISTINCT s.task_id FROM task_sessions s JOIN tasks t ON t.id = s.task_id \
             WHERE s.session_date >= $3 AND s.session_date <= $4 AND t.institution_id = $1 AND s.task_id <> $2) \
         SELECT DISTINCT a.expert_id FROM near JOIN assignments a ON a.task_id = near.task_id \
         WHERE a.role = 'PRIMARY' AND a.status IN {SERVING}"
    );
    // Only a constant is spliced in; every value is bound.
    let ids = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
        .bind(institution_id)
        .bind(task.as_str())
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&mut *conn)
        .await?;
    Ok(ids.into_iter().collect())
}

/// Experts already placed as primaries on `cap` or more other tasks with a session in one of
/// `months` (`YYYY-MM`; D14's monthly cap).
pub async fn capped_experts(
    conn: &mut AnyConnection,
    task: &TaskId,
    months: &[String],
    cap: u32,
) -> Result<HashSet<String>, sqlx::Error> {
    if months.is_empty() {
        return Ok(HashSet::new());
    }
    let placeholders: Vec<String> = (0..months.len()).map(|i| format!("${}", i + 3)).collect();
    // Only placeholders and a constant are spliced in; every value is bound.
    let sql = format!(
        "SELECT DISTINCT expert_id FROM (SELECT a.expert_id, SUBSTR(s.session_date, 1, 7) AS month, \
             COUNT(DISTINCT a.task_id) AS tasks FROM assignments a JOIN task_sessions s ON s.task_id = a.task_id \
           WHERE a.task_id <> $1 AND a.role = 'PRIMARY' AND a.status IN {SERVING} \
             AND SUBSTR(s.session_date, 1, 7) IN ({}) \
           GROUP BY a.expert_id, SUBSTR(s.session_date, 1, 7)) per_month WHERE tasks >= $2",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(task.as_str()).bind(i64::from(cap));
    for m in months {
        query = query.bind(m.clone());
    }
    Ok(query.fetch_all(&mut *conn).await?.into_iter().collect())
}

/// Records the witness's co-signature on a PREPARED draw; false when it is no longer PREPARED.
pub async fn record_witness(conn: &mut AnyConnection, d: &Draw) -> Result<bool, sqlx::Error> {
    let (ws, wr, wb) = actor_parts(d.witness.as_ref());
    let done = sqlx::query(
        "UPDATE draws SET status = $1, witness_subject = $2, witness_role = $3, witness_bureau = $4, \
         dice_digits = $5, witnessed_at = $6 WHERE id = $7 AND status = 'PREPARED'",
    )
    .bind(d.status.code())
    .bind(ws)
    .bind(wr)
    .bind(wb)
    .bind(&d.dice_digits)
    .bind(instant_or_empty(d.witnessed_at))
    .bind(d.id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the execution of a WITNESSED draw (order and walk); false when it is no longer
/// WITNESSED. Nothing changes an executed draw after this but a void.
pub async fn record_execution(conn: &mut AnyConnection, d: &Draw) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE draws SET status = $1, draw_order = $2, walk = $3, relaxations = $4, next_position = $5, \
         executed_at = $6 WHERE id = $7 AND status = 'WITNESSED'",
    )
    .bind(d.status.code())
    .bind(order_text(&d.order))
    .bind(serde_json::to_string(&d.walk).unwrap_or_default())
    .bind(serde_json::to_string(&d.relaxations).unwrap_or_default())
    .bind(count(d.next_position))
    .bind(instant_or_empty(d.executed_at))
    .bind(d.id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the pool `list` a draw is frozen from, once: a pool already stored (another draw
/// froze the same one) is not written again. Two prepares storing the same new pool at once
/// both succeed: the later insert finds the row and does nothing.
pub async fn store_candidate_pool(conn: &mut AnyConnection, list: &FrozenList) -> Result<(), sqlx::Error> {
    let stored = sqlx::query("SELECT 1 AS one FROM candidate_pools WHERE sha256 = $1")
        .bind(list.sha256_hex())
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if !stored {
        let text = std::str::from_utf8(list.bytes()).expect("a frozen list is ASCII");
        sqlx::query(
            "INSERT INTO candidate_pools (sha256, list, expert_count) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(list.sha256_hex())
        .bind(text)
        .bind(count(list.count()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// `draw`'s frozen list blob; `None` when there is no such draw. A draw recorded with its own
/// copy answers it; any other is rebuilt from its pool (`candidate_pools`) without its excluded
/// experts, and must hash to the SHA-256 the draw committed to.
pub async fn frozen_list(conn: &mut AnyConnection, draw: &Draw) -> Result<Option<String>, StoreError> {
    let row = sqlx::query(
        "SELECT d.frozen_list AS own, p.list AS pool FROM draws d \
         LEFT JOIN candidate_pools p ON p.sha256 = d.pool_list_sha256 WHERE d.id = $1",
    )
    .bind(draw.id.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let own: String = row.try_get("own")?;
    if !own.is_empty() {
        return Ok(Some(own));
    }
    let corrupt = |problem: String| StoreError::Corrupt { id: draw.id.to_string(), problem };
    let pool: Option<String> = row.try_get("pool")?;
    let pool =
        pool.ok_or_else(|| corrupt(format!("no frozen list, and no stored pool {:?}", draw.pool_list_sha256)))?;
    let pool = FrozenList::parse(pool.as_bytes()).map_err(|e| corrupt(format!("stored pool: {e}")))?;
    let list = crate::domain::frozen_from(&pool, &draw.exclusions)
        .map_err(|e| corrupt(format!("the frozen list rebuilt from pool {}: {e}", draw.pool_list_sha256)))?;
    if list.sha256_hex() != draw.frozen_list_sha256 {
        return Err(corrupt(format!(
            "the frozen list rebuilt from pool {} hashes to {}, not to the recorded {}",
            draw.pool_list_sha256,
            list.sha256_hex(),
            draw.frozen_list_sha256
        )));
    }
    Ok(Some(std::str::from_utf8(list.bytes()).expect("a frozen list is ASCII").to_owned()))
}

/// `draw`'s eligible untrained candidates (D14), in the order recorded (id order for a random
/// draw); empty when there is no such draw.
pub async fn untrained(conn: &mut AnyConnection, draw: &DrawId) -> Result<Vec<String>, StoreError> {
    let row = sqlx::query(
        "SELECT d.untrained AS own, d.untrained_sha256 AS sha256, u.list AS shared FROM draws d \
         LEFT JOIN untrained_lists u ON u.sha256 = d.untrained_sha256 WHERE d.id = $1",
    )
    .bind(draw.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(Vec::new()) };
    let corrupt = |problem: String| StoreError::Corrupt { id: draw.to_string(), problem };
    let sha256: String = row.try_get("sha256")?;
    // A draw recorded before `untrained_lists` holds its own list.
    let text: String = if sha256.is_empty() {
        row.try_get("own")?
    } else {
        let shared: Option<String> = row.try_get("shared")?;
        let shared = shared.ok_or_else(|| corrupt(format!("no stored untrained list {sha256:?}")))?;
        let actual = sha256_hex(&shared);
        if actual != sha256 {
            return Err(corrupt(format!("the untrained list {sha256:?} stored hashes to {actual}")));
        }
        shared
    };
    serde_json::from_str(&text).map_err(|e| corrupt(format!("untrained: {e}")))
}

/// `draw` as read, with its picks' untrained flags: a walk recorded before picks carried them
/// has them filled in from the draw's untrained list, which every other read leaves alone
/// (about 1 MB at 100,000 experts, parsed four times per draw before issue 12's change).
async fn with_pick_flags(conn: &mut AnyConnection, mut draw: Draw) -> Result<Draw, StoreError> {
    if draw.walk.iter().all(|p| p.untrained.is_some()) {
        return Ok(draw);
    }
    let ids = untrained(conn, &draw.id).await?;
    let list = crate::domain::draw::UntrainedList::of(&ids);
    for pick in &mut draw.walk {
        pick.untrained.get_or_insert_with(|| list.contains(&pick.expert_id));
    }
    Ok(draw)
}

/// The draws of `rows`, each with its picks' untrained flags ([`with_pick_flags`]).
async fn draws_from_rows(conn: &mut AnyConnection, rows: &[AnyRow]) -> Result<Vec<Draw>, StoreError> {
    let mut draws = Vec::with_capacity(rows.len());
    for row in rows {
        draws.push(with_pick_flags(conn, draw_from_row(row)?).await?);
    }
    Ok(draws)
}

/// A draw, without its frozen list ([`frozen_list`]) or its untrained list ([`untrained`]).
pub async fn get_draw(conn: &mut AnyConnection, id: &DrawId) -> Result<Option<Draw>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", draw_read_columns!(), " FROM draws WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(with_pick_flags(conn, draw_from_row(&row)?).await?)),
        None => Ok(None),
    }
}

/// What ListDraws filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawFilter {
    pub visibility: TaskVisibility,
    pub task_id: Option<TaskId>,
    pub status: Option<DrawStatus>,
    /// Only of this kind (DESIGNATION: the non-random designations, D15).
    pub kind: Option<DrawKind>,
    pub bureau: Option<supervision_kit::Bureau>,
}

/// Draws newest first (ids are time-ordered), within what the caller may see.
pub async fn list_draws(conn: &mut AnyConnection, filter: &DrawFilter, page: &Page) -> Result<Vec<Draw>, StoreError> {
    let scope = match filter.visibility {
        TaskVisibility::All => String::new(),
        TaskVisibility::Bureau(b) => b.division_code().to_owned(),
        TaskVisibility::Nothing => return Ok(Vec::new()),
    };
    let rows = sqlx::query(concat!(
        "SELECT ",
        draw_read_columns!(),
        " FROM draws WHERE ($1 = '' OR id < $1) AND ($2 = '' OR task_id = $2) AND ($3 = '' OR status = $3) \
           AND ($4 = '' OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = draws.task_id AND t.dispatching_bureau = $4)) \
           AND ($5 = '' OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = draws.task_id AND t.dispatching_bureau = $5)) \
           AND ($7 = '' OR kind = $7) \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.task_id.as_ref().map(TaskId::as_str).unwrap_or_default())
    .bind(filter.status.map(DrawStatus::code).unwrap_or_default())
    .bind(scope)
    .bind(filter.bureau.map(supervision_kit::Bureau::division_code).unwrap_or_default())
    .bind(i64::from(page.size))
    .bind(filter.kind.map(DrawKind::code).unwrap_or_default())
    .fetch_all(&mut *conn)
    .await?;
    draws_from_rows(conn, &rows).await
}

fn draw_from_row(row: &AnyRow) -> Result<Draw, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let number = |col: &str| -> Result<i64, StoreError> { Ok(row.try_get::<i64, _>(col)?) };
    let size = |col: &str| -> Result<usize, StoreError> {
        usize::try_from(number(col)?).map_err(|_| bad(format!("{col} is negative")))
    };
    let small = |col: &str| -> Result<u32, StoreError> {
        u32::try_from(number(col)?).map_err(|_| bad(format!("{col} is out of range")))
    };
    let instant = |col: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        let s = text(col)?;
        if s.is_empty() {
            return Ok(None);
        }
        parse_instant(&s).map(Some).map_err(|e| bad(format!("{col}: {e}")))
    };
    let actor = |prefix: &str| -> Result<Option<Actor>, StoreError> {
        let subject = text(&format!("{prefix}_subject"))?;
        let bureau = text(&format!("{prefix}_bureau"))?;
        Ok((!subject.is_empty()).then(|| Actor {
            subject,
            role: text(&format!("{prefix}_role")).unwrap_or_default(),
            bureau: (!bureau.is_empty()).then_some(bureau),
        }))
    };
    let exclusions: Vec<serde_json::Value> =
        serde_json::from_str(&text("exclusions")?).map_err(|e| bad(format!("exclusions: {e}")))?;
    let exclusions = exclusions
        .iter()
        .map(|e| {
            let expert_id = e["expert_id"].as_str().unwrap_or_default().to_owned();
            let reasons = e["reasons"]
                .as_array()
                .map(|rs| rs.iter().filter_map(|r| r.as_str().and_then(ExclusionReason::from_code)).collect())
                .unwrap_or_default();
            Exclusion { expert_id, reasons }
        })
        .collect();
    let order = text("draw_order")?
        .lines()
        .map(|l| {
            let (id, ticket) = l.split_once(' ').unwrap_or((l, ""));
            (id.to_owned(), ticket.to_owned())
        })
        .collect();
    let status = text("status")?;
    let kind = text("kind")?;
    Ok(Draw {
        id: DrawId::parse(&id).ok_or_else(|| bad("id".into()))?,
        task_id: TaskId::parse(&text("task_id")?).ok_or_else(|| bad("task_id".into()))?,
        kind: DrawKind::from_code(&kind).ok_or_else(|| bad(format!("kind {kind}")))?,
        supplements: text("supplements_draw_id")?,
        status: DrawStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        algorithm: text("algorithm")?,
        edition_number: small("edition_number")?,
        team_size: small("team_size")?,
        backup_count: small("backup_count")?,
        frozen_list: None,
        frozen_list_sha256: text("frozen_list_sha256")?,
        pool_list_sha256: text("pool_list_sha256")?,
        candidate_count: size("candidate_count")?,
        pool_count: size("pool_count")?,
        exclusions,
        untrained: None,
        server_seed: text("server_seed")?,
        seed_commitment: text("seed_commitment")?,
        dice_digits: text("dice_digits")?,
        order,
        walk: serde_json::from_str(&text("walk")?).map_err(|e| bad(format!("walk: {e}")))?,
        relaxations: serde_json::from_str(&text("relaxations")?).map_err(|e| bad(format!("relaxations: {e}")))?,
        next_position: size("next_position")?,
        operator: actor("operator")?.ok_or_else(|| bad("operator".into()))?,
        witness: actor("witness")?,
        prepared_at: instant("prepared_at")?.ok_or_else(|| bad("prepared_at".into()))?,
        witnessed_at: instant("witnessed_at")?,
        executed_at: instant("executed_at")?,
        pool_relaxations: serde_json::from_str(&text("pool_relaxations")?)
            .map_err(|e| bad(format!("pool_relaxations: {e}")))?,
        specialty_tier: small("specialty_tier")?,
        abandon_reason: text("abandon_reason")?,
        void: {
            let reason = text("void_reason")?;
            let by = text("voided_by")?;
            if by.is_empty() {
                None
            } else {
                Some(DrawVoid {
                    reason,
                    by: serde_json::from_str(&by).map_err(|e| bad(format!("voided_by: {e}")))?,
                    at: instant("void_time")?.ok_or_else(|| bad("void_time".into()))?,
                })
            }
        },
        designation: match text("designation")?.as_str() {
            "" => None,
            json => Some(serde_json::from_str(json).map_err(|e| bad(format!("designation: {e}")))?),
        },
    })
}

/// The experts holding a booking on any of `slots`.
pub async fn booked_experts(
    conn: &mut AnyConnection,
    slots: &[(NaiveDate, HalfDay)],
) -> Result<HashSet<String>, sqlx::Error> {
    if slots.is_empty() {
        return Ok(HashSet::new());
    }
    let clauses: Vec<String> =
        (0..slots.len()).map(|i| format!("(session_date = ${} AND half_day = ${})", 2 * i + 1, 2 * i + 2)).collect();
    // Only placeholders are spliced in; every value is bound.
    let sql = format!("SELECT DISTINCT expert_id FROM bookings WHERE {}", clauses.join(" OR "));
    let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
    for (date, half_day) in slots {
        query = query.bind(date.to_string()).bind(half_day.code());
    }
    Ok(query.fetch_all(&mut *conn).await?.into_iter().collect())
}

pub async fn insert_assignment(conn: &mut AnyConnection, a: &Assignment) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO assignments (",
        assignment_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
    ))
    .bind(a.id.as_str())
    .bind(a.task_id.as_str())
    .bind(a.draw_id.as_str())
    .bind(&a.expert_id)
    .bind(count(a.position))
    .bind(a.role.code())
    .bind(a.status.code())
    .bind(i64::from(a.trained))
    .bind(instant_or_empty(a.notified_at))
    .bind(format_instant(a.created_at))
    .bind(format_instant(a.updated_at))
    .bind(a.response.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()).unwrap_or_default())
    .bind(instant_or_empty(a.decline_deadline))
    .bind(&a.replaces)
    .bind(&a.replaced_by)
    .bind(&a.cancel_reason)
    .bind(serde_json::to_string(&a.worked_sessions).unwrap_or_default())
    .bind(&a.report_id)
    .bind(i64::from(a.fee_revision))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes an assignment's changing fields, only if it was last updated at `expected`; whether
/// it was.
pub async fn update_assignment(
    conn: &mut AnyConnection,
    a: &Assignment,
    expected: chrono::DateTime<chrono::Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE assignments SET role = $1, status = $2, notified_at = $3, updated_at = $4, response = $5, \
         decline_deadline = $6, replaces_assignment_id = $7, replaced_by_assignment_id = $8, cancel_reason = $9, \
         worked_sessions = $10, report_id = $11, fee_revision = $12 WHERE id = $13 AND updated_at = $14",
    )
    .bind(a.role.code())
    .bind(a.status.code())
    .bind(instant_or_empty(a.notified_at))
    .bind(format_instant(a.updated_at))
    .bind(a.response.as_ref().map(|r| serde_json::to_string(r).unwrap_or_default()).unwrap_or_default())
    .bind(instant_or_empty(a.decline_deadline))
    .bind(&a.replaces)
    .bind(&a.replaced_by)
    .bind(&a.cancel_reason)
    .bind(serde_json::to_string(&a.worked_sessions).unwrap_or_default())
    .bind(&a.report_id)
    .bind(i64::from(a.fee_revision))
    .bind(a.id.as_str())
    .bind(format_instant(expected))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn get_assignment(conn: &mut AnyConnection, id: &AssignmentId) -> Result<Option<Assignment>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", assignment_columns!(), " FROM assignments WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| assignment_from_row(&r)).transpose()
}

/// Every assignment a draw made, by position.
pub async fn draw_assignments(conn: &mut AnyConnection, draw: &DrawId) -> Result<Vec<Assignment>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM assignments WHERE draw_id = $1 ORDER BY position, id"
    ))
    .bind(draw.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// An expert's assignments that hold a place, on tasks with a session on or after `from`.
pub async fn places_from(
    conn: &mut AnyConnection,
    expert_id: &str,
    from: NaiveDate,
) -> Result<Vec<Assignment>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM assignments a WHERE a.expert_id = $1 AND a.status IN ('RESERVED', 'NOTIFIED', 'ACCEPTED') \
           AND EXISTS (SELECT 1 FROM task_sessions s WHERE s.task_id = a.task_id AND s.session_date >= $2) \
         ORDER BY a.id"
    ))
    .bind(expert_id)
    .bind(from.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// A task's draws, oldest first.
pub async fn task_draws(conn: &mut AnyConnection, task: &TaskId) -> Result<Vec<Draw>, StoreError> {
    let rows = sqlx::query(concat!("SELECT ", draw_read_columns!(), " FROM draws WHERE task_id = $1 ORDER BY id"))
        .bind(task.as_str())
        .fetch_all(&mut *conn)
        .await?;
    draws_from_rows(conn, &rows).await
}

/// Every NOTIFIED primary waiting for an answer, oldest notification first (the no-answer sweep).
pub async fn notified_assignments(conn: &mut AnyConnection) -> Result<Vec<Assignment>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM assignments WHERE status = 'NOTIFIED' ORDER BY notified_at, id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

/// Whether `expert` holds or held any assignment on `task` (offered, declined or replaced alike).
pub async fn expert_assigned(conn: &mut AnyConnection, task: &TaskId, expert: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM assignments WHERE task_id = $1 AND expert_id = $2 LIMIT 1")
            .bind(task.as_str())
            .bind(expert)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// Frees the half-days an assignment held.
pub async fn delete_bookings(conn: &mut AnyConnection, assignment: &AssignmentId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM bookings WHERE assignment_id = $1").bind(assignment.as_str()).execute(&mut *conn).await?;
    Ok(())
}

/// Records a vacancy's promotion and continued walk on an executed draw.
/// `expected_next` is the `next_position` the vacancy was computed from: a concurrent vacancy
/// that moved it meanwhile makes this update change nothing (the caller tries again).
pub async fn record_vacancy(conn: &mut AnyConnection, d: &Draw, expected_next: usize) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE draws SET walk = $1, next_position = $2, draw_order = $3 \
         WHERE id = $4 AND status = 'EXECUTED' AND next_position = $5",
    )
    .bind(serde_json::to_string(&d.walk).unwrap_or_default())
    .bind(count(d.next_position))
    .bind(order_text(&d.order))
    .bind(d.id.as_str())
    .bind(count(expected_next))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Books `a`'s expert on one half-day; fails on [`BOOKING_INDEX`] when someone else holds it.
pub async fn insert_booking(
    conn: &mut AnyConnection,
    a: &Assignment,
    date: NaiveDate,
    half_day: HalfDay,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bookings (expert_id, session_date, half_day, assignment_id, task_id) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&a.expert_id)
    .bind(date.to_string())
    .bind(half_day.code())
    .bind(a.id.as_str())
    .bind(a.task_id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What ListAssignments filters on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentFilter {
    pub visibility: TaskVisibility,
    pub task_id: Option<TaskId>,
    pub expert_id: Option<String>,
    pub draw_id: Option<DrawId>,
    pub status: Option<AssignmentStatus>,
}

/// Assignments by task, then position, then id; the page token is the assignment's id and the
/// listing within one task is small, so paging is by `(task_id, position, id)` read from it.
pub async fn list_assignments(
    conn: &mut AnyConnection,
    filter: &AssignmentFilter,
    page: &Page,
) -> Result<Vec<Assignment>, StoreError> {
    let scope = match filter.visibility {
        TaskVisibility::All => String::new(),
        TaskVisibility::Bureau(b) => b.division_code().to_owned(),
        TaskVisibility::Nothing => return Ok(Vec::new()),
    };
    let rows = sqlx::query(concat!(
        "SELECT ",
        assignment_columns!(),
        " FROM assignments a WHERE ($1 = '' OR (a.task_id, a.position, a.id) > \
             (SELECT p.task_id, p.position, p.id FROM assignments p WHERE p.id = $1)) \
           AND ($2 = '' OR a.task_id = $2) AND ($3 = '' OR a.expert_id = $3) AND ($4 = '' OR a.draw_id = $4) \
           AND ($5 = '' OR a.status = $5) \
           AND ($6 = '' OR EXISTS (SELECT 1 FROM tasks t WHERE t.id = a.task_id AND t.dispatching_bureau = $6)) \
         ORDER BY a.task_id, a.position, a.id LIMIT $7"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.task_id.as_ref().map(TaskId::as_str).unwrap_or_default())
    .bind(filter.expert_id.as_deref().unwrap_or_default())
    .bind(filter.draw_id.as_ref().map(DrawId::as_str).unwrap_or_default())
    .bind(filter.status.map(AssignmentStatus::code).unwrap_or_default())
    .bind(scope)
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(assignment_from_row).collect()
}

fn assignment_from_row(row: &AnyRow) -> Result<Assignment, StoreError> {
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
    let role = text("role")?;
    let status = text("status")?;
    let position: i64 = row.try_get("position")?;
    let trained: i64 = row.try_get("trained")?;
    Ok(Assignment {
        id: AssignmentId::parse(&id).ok_or_else(|| bad("id".into()))?,
        task_id: TaskId::parse(&text("task_id")?).ok_or_else(|| bad("task_id".into()))?,
        draw_id: DrawId::parse(&text("draw_id")?).ok_or_else(|| bad("draw_id".into()))?,
        expert_id: text("expert_id")?,
        position: usize::try_from(position).map_err(|_| bad("position".into()))?,
        role: AssignmentRole::from_code(&role).ok_or_else(|| bad(format!("role {role}")))?,
        status: AssignmentStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        trained: trained != 0,
        notified_at: instant("notified_at")?,
        created_at: instant("created_at")?.ok_or_else(|| bad("created_at".into()))?,
        updated_at: instant("updated_at")?.ok_or_else(|| bad("updated_at".into()))?,
        response: {
            let raw = text("response")?;
            if raw.is_empty() {
                None
            } else {
                Some(serde_json::from_str(&raw).map_err(|e| bad(format!("response: {e}")))?)
            }
        },
        decline_deadline: instant("decline_deadline")?,
        replaces: text("replaces_assignment_id")?,
        replaced_by: text("replaced_by_assignment_id")?,
        cancel_reason: text("cancel_reason")?,
        worked_sessions: serde_json::from_str(&text("worked_sessions")?)
            .map_err(|e| bad(format!("worked_sessions: {e}")))?,
        report_id: text("report_id")?,
        fee_revision: u32::try_from(row.try_get::<i64, _>("fee_revision")?).map_err(|_| bad("fee_revision".into()))?,
    })
}
