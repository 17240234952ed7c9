//! Tasks' SQL: the task row, its sessions and exceptions, and the per-bureau, per-year counter of
//! task numbers. Portable across SQLite and PostgreSQL.

use chrono::{NaiveDate, NaiveTime};
use sqlx::{AnyConnection, Row, any::AnyRow};
use supervision_kit::{
    Bureau, Page, SpecialtyCode,
    auth::Actor,
    storage::{format_instant, parse_instant},
};

use super::StoreError;
use crate::domain::{
    Activity, ActivityKind, ActivitySubject, Approval, ExceptionKind, FundSource, HalfDay, NewTask, Session, SessionId,
    Task, TaskException, TaskFilter, TaskId, TaskMode, TaskNumber, TaskOrigin, TaskStatus, TaskVisibility,
};

macro_rules! task_columns {
    () => {
        "id, task_number, dispatching_bureau, number_year, number_sequence, institution_id, institution_county, \
         title, activity_subject, activity_kind, activity_reference, activity_description, mode, origin, \
         origin_submission_id, reporter_expert_id, team_size, backup_count, specialties, fund_source, \
         urgent_reason, status, cancel_reason, accepted_count, edition_number, first_session_date, \
         created_by_subject, created_by_role, created_by_bureau, created_at, updated_at, revision"
    };
}

const TIME_FORMAT: &str = "%H:%M";

/// The next sequence number of `bureau`'s tasks in `year`. An upsert on the counter row: on
/// PostgreSQL a concurrent creation waits on the row lock until this transaction ends and then
/// counts on from its number; on SQLite the write transaction already holds the database.
pub async fn next_task_sequence(conn: &mut AnyConnection, bureau: Bureau, year: i32) -> Result<u32, StoreError> {
    let last: i64 = sqlx::query_scalar(
        "INSERT INTO task_number_counters (dispatching_bureau, number_year, last_sequence) VALUES ($1, $2, 1) \
         ON CONFLICT (dispatching_bureau, number_year) \
         DO UPDATE SET last_sequence = task_number_counters.last_sequence + 1 RETURNING last_sequence",
    )
    .bind(bureau.division_code())
    .bind(i64::from(year))
    .fetch_one(&mut *conn)
    .await?;
    u32::try_from(last).map_err(|_| StoreError::Corrupt { id: format!("counter {bureau}"), problem: last.to_string() })
}

/// Inserts a new task with its sessions and exceptions.
pub async fn insert_task(conn: &mut AnyConnection, t: &Task) -> Result<(), StoreError> {
    let d = &t.details;
    let specialties: Vec<&str> = d.specialties.iter().map(SpecialtyCode::as_str).collect();
    let first = d.first_session_date();
    sqlx::query(concat!(
        "INSERT INTO tasks (",
        task_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, \
         $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32)"
    ))
    .bind(t.id.as_str())
    .bind(t.number.to_string())
    .bind(d.bureau.division_code())
    .bind(i64::from(t.number.year))
    .bind(i64::from(t.number.sequence))
    .bind(&d.institution_id)
    .bind(t.institution_county.division_code())
    .bind(&d.title)
    .bind(d.activity.subject.code())
    .bind(d.activity.kind.code())
    .bind(&d.activity.reference)
    .bind(&d.activity.description)
    .bind(d.mode.code())
    .bind(d.origin.code())
    .bind(&d.origin_submission_id)
    .bind(&d.reporter_expert_id)
    .bind(i64::from(t.team_size))
    .bind(i64::from(t.backup_count))
    .bind(serde_json::to_string(&specialties).unwrap_or_default())
    .bind(d.fund_source.code())
    .bind(d.urgent_reason.clone().unwrap_or_default())
    .bind(t.status.code())
    .bind(&t.cancel_reason)
    .bind(i64::from(t.accepted_count))
    .bind(i64::from(t.edition_number))
    .bind(first.to_string())
    .bind(&t.created_by.subject)
    .bind(&t.created_by.role)
    .bind(t.created_by.bureau.clone().unwrap_or_default())
    .bind(format_instant(t.created_at))
    .bind(format_instant(t.updated_at))
    .bind(t.revision)
    .execute(&mut *conn)
    .await?;
    for s in &d.sessions {
        sqlx::query(
            "INSERT INTO task_sessions (id, task_id, session_date, half_day, planned_start, planned_end) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.id.as_str())
        .bind(t.id.as_str())
        .bind(s.date.to_string())
        .bind(s.half_day.code())
        .bind(s.planned_start.map(|x| x.format(TIME_FORMAT).to_string()).unwrap_or_default())
        .bind(s.planned_end.map(|x| x.format(TIME_FORMAT).to_string()).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    }
    for e in &d.exceptions {
        upsert_exception(conn, &t.id, e).await?;
    }
    Ok(())
}

/// Records an exception of a task, or its approval.
pub async fn upsert_exception(conn: &mut AnyConnection, task: &TaskId, e: &TaskException) -> Result<(), StoreError> {
    let a = e.approval.as_ref();
    sqlx::query(
        "INSERT INTO task_exceptions (task_id, kind, reason, reduced_team_size, approved_by_subject, \
         approved_by_role, approved_by_bureau, approve_reason, approved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (task_id, kind) DO UPDATE SET reason = excluded.reason, \
         reduced_team_size = excluded.reduced_team_size, approved_by_subject = excluded.approved_by_subject, \
         approved_by_role = excluded.approved_by_role, approved_by_bureau = excluded.approved_by_bureau, \
         approve_reason = excluded.approve_reason, approved_at = excluded.approved_at",
    )
    .bind(task.as_str())
    .bind(e.kind.code())
    .bind(&e.reason)
    .bind(i64::from(e.reduced_team_size))
    .bind(a.map(|a| a.by.subject.clone()).unwrap_or_default())
    .bind(a.map(|a| a.by.role.clone()).unwrap_or_default())
    .bind(a.and_then(|a| a.by.bureau.clone()).unwrap_or_default())
    .bind(a.map(|a| a.reason.clone()).unwrap_or_default())
    .bind(a.map(|a| format_instant(a.at)).unwrap_or_default())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes a task's changed fields (UpdateTask, before any draw) with its sessions and exceptions,
/// only if its revision is still `expected`; whether it was.
pub async fn update_task_details(conn: &mut AnyConnection, t: &Task, expected: i64) -> Result<bool, StoreError> {
    let d = &t.details;
    let specialties: Vec<&str> = d.specialties.iter().map(SpecialtyCode::as_str).collect();
    let done = sqlx::query(
        "UPDATE tasks SET title = $1, activity_subject = $2, activity_kind = $3, activity_reference = $4, \
         activity_description = $5, mode = $6, team_size = $7, backup_count = $8, specialties = $9, \
         fund_source = $10, urgent_reason = $11, edition_number = $12, first_session_date = $13, revision = $14, \
         updated_at = $15 WHERE id = $16 AND revision = $17",
    )
    .bind(&d.title)
    .bind(d.activity.subject.code())
    .bind(d.activity.kind.code())
    .bind(&d.activity.reference)
    .bind(&d.activity.description)
    .bind(d.mode.code())
    .bind(i64::from(t.team_size))
    .bind(i64::from(t.backup_count))
    .bind(serde_json::to_string(&specialties).unwrap_or_default())
    .bind(d.fund_source.code())
    .bind(d.urgent_reason.clone().unwrap_or_default())
    .bind(i64::from(t.edition_number))
    .bind(d.first_session_date().to_string())
    .bind(t.revision)
    .bind(format_instant(t.updated_at))
    .bind(t.id.as_str())
    .bind(expected)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM task_sessions WHERE task_id = $1").bind(t.id.as_str()).execute(&mut *conn).await?;
    for s in &d.sessions {
        sqlx::query(
            "INSERT INTO task_sessions (id, task_id, session_date, half_day, planned_start, planned_end) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.id.as_str())
        .bind(t.id.as_str())
        .bind(s.date.to_string())
        .bind(s.half_day.code())
        .bind(s.planned_start.map(|x| x.format(TIME_FORMAT).to_string()).unwrap_or_default())
        .bind(s.planned_end.map(|x| x.format(TIME_FORMAT).to_string()).unwrap_or_default())
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("DELETE FROM task_exceptions WHERE task_id = $1").bind(t.id.as_str()).execute(&mut *conn).await?;
    for e in &d.exceptions {
        upsert_exception(conn, &t.id, e).await?;
    }
    Ok(true)
}

/// Writes a task's changed state (status, cancel reason, revision, update time), only if its
/// revision is still `expected`; whether it was.
pub async fn update_task_state(conn: &mut AnyConnection, t: &Task, expected: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE tasks SET status = $1, cancel_reason = $2, revision = $3, updated_at = $4 \
         WHERE id = $5 AND revision = $6",
    )
    .bind(t.status.code())
    .bind(&t.cancel_reason)
    .bind(t.revision)
    .bind(format_instant(t.updated_at))
    .bind(t.id.as_str())
    .bind(expected)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes a task's staffing (status, accepted primaries, revision, update time), only if its
/// revision is still `expected`; whether it was.
pub async fn update_task_staffing(conn: &mut AnyConnection, t: &Task, expected: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE tasks SET status = $1, accepted_count = $2, revision = $3, updated_at = $4 \
         WHERE id = $5 AND revision = $6",
    )
    .bind(t.status.code())
    .bind(i64::from(t.accepted_count))
    .bind(t.revision)
    .bind(format_instant(t.updated_at))
    .bind(t.id.as_str())
    .bind(expected)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts a drawn task back to OPEN after its draw was voided, so it can be drawn again.
pub async fn reopen_task(
    conn: &mut AnyConnection,
    id: &TaskId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE tasks SET status = 'OPEN', accepted_count = 0, revision = revision + 1, updated_at = $1 \
         WHERE id = $2 AND status IN ('STAFFING', 'STAFFED', 'UNDERSTAFFED', 'BLOCKED')",
    )
    .bind(format_instant(now))
    .bind(id.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn get_task(conn: &mut AnyConnection, id: &TaskId) -> Result<Option<Task>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(row) => Ok(Some(complete(conn, &row).await?)),
        None => Ok(None),
    }
}

/// Tasks by first session date (then id), within what the caller may see.
pub async fn list_tasks(conn: &mut AnyConnection, filter: &TaskFilter, page: &Page) -> Result<Vec<Task>, StoreError> {
    let scope = match filter.visibility {
        TaskVisibility::All => String::new(),
        TaskVisibility::Bureau(b) => b.division_code().to_owned(),
        TaskVisibility::Nothing => return Ok(Vec::new()),
    };
    let (after_date, after_id) = match page.after.as_deref().and_then(split_page_token) {
        Some((date, id)) => (date.to_string(), id.to_string()),
        None => (String::new(), String::new()),
    };
    let (from, to) =
        filter.session_dates.map_or((String::new(), String::new()), |(a, b)| (a.to_string(), b.to_string()));
    let rows = sqlx::query(concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE ($1 = '' OR first_session_date > $1 OR (first_session_date = $1 AND id > $2)) \
           AND ($3 = '' OR dispatching_bureau = $3) AND ($4 = '' OR dispatching_bureau = $4) \
           AND ($5 = '' OR institution_id = $5) AND ($6 = '' OR status = $6) \
           AND ($7 = '' OR EXISTS (SELECT 1 FROM task_sessions s WHERE s.task_id = tasks.id \
                                   AND s.session_date >= $7 AND s.session_date <= $8)) \
         ORDER BY first_session_date, id LIMIT $9"
    ))
    .bind(after_date)
    .bind(after_id)
    .bind(scope)
    .bind(filter.bureau.map(Bureau::division_code).unwrap_or_default())
    .bind(filter.institution_id.as_deref().unwrap_or_default())
    .bind(filter.status.map(TaskStatus::code).unwrap_or_default())
    .bind(from)
    .bind(to)
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in &rows {
        tasks.push(complete(conn, row).await?);
    }
    Ok(tasks)
}

/// The page token of a task in the listing order: its first session date and its id.
pub fn page_token(t: &Task) -> String {
    format!("{}.{}", t.details.first_session_date(), t.id)
}

/// Reads a token of [`page_token`]'s shape.
pub fn split_page_token(token: &str) -> Option<(NaiveDate, TaskId)> {
    let (date, id) = token.split_once('.')?;
    Some((date.parse().ok()?, TaskId::parse(id)?))
}

/// A task row with its sessions and exceptions.
async fn complete(conn: &mut AnyConnection, row: &AnyRow) -> Result<Task, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let sessions = sqlx::query(
        "SELECT id, session_date, half_day, planned_start, planned_end FROM task_sessions \
         WHERE task_id = $1 ORDER BY session_date, half_day",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| session_from_row(r).map_err(|p| bad(format!("session: {p}"))))
    .collect::<Result<Vec<_>, _>>()?;
    let exceptions = sqlx::query(
        "SELECT kind, reason, reduced_team_size, approved_by_subject, approved_by_role, approved_by_bureau, \
         approve_reason, approved_at FROM task_exceptions WHERE task_id = $1 ORDER BY kind",
    )
    .bind(&id)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| exception_from_row(r).map_err(|p| bad(format!("exception: {p}"))))
    .collect::<Result<Vec<_>, _>>()?;
    task_from_row(row, sessions, exceptions).map_err(bad)
}

fn session_from_row(row: &AnyRow) -> Result<Session, String> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(|e| e.to_string());
    let time = |col: &str| -> Result<Option<NaiveTime>, String> {
        let t = text(col)?;
        if t.is_empty() {
            return Ok(None);
        }
        NaiveTime::parse_from_str(&t, TIME_FORMAT).map(Some).map_err(|e| format!("{col}: {e}"))
    };
    let half_day = text("half_day")?;
    Ok(Session {
        id: SessionId::parse(&text("id")?).ok_or("id")?,
        date: text("session_date")?.parse().map_err(|e| format!("session_date: {e}"))?,
        half_day: HalfDay::from_code(&half_day).ok_or(format!("half_day {half_day}"))?,
        planned_start: time("planned_start")?,
        planned_end: time("planned_end")?,
    })
}

fn exception_from_row(row: &AnyRow) -> Result<TaskException, String> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(|e| e.to_string());
    let kind = text("kind")?;
    let subject = text("approved_by_subject")?;
    let approval = if subject.is_empty() {
        None
    } else {
        let bureau = text("approved_by_bureau")?;
        Some(Approval {
            by: Actor { subject, role: text("approved_by_role")?, bureau: (!bureau.is_empty()).then_some(bureau) },
            at: parse_instant(&text("approved_at")?).map_err(|e| format!("approved_at: {e}"))?,
            reason: text("approve_reason")?,
        })
    };
    let reduced: i64 = row.try_get("reduced_team_size").map_err(|e| e.to_string())?;
    Ok(TaskException {
        kind: ExceptionKind::from_code(&kind).ok_or(format!("kind {kind}"))?,
        reason: text("reason")?,
        reduced_team_size: u32::try_from(reduced).map_err(|_| "reduced_team_size")?,
        approval,
    })
}

fn task_from_row(row: &AnyRow, sessions: Vec<Session>, exceptions: Vec<TaskException>) -> Result<Task, String> {
    let text = |col: &str| row.try_get::<String, _>(col).map_err(|e| format!("{col}: {e}"));
    let int = |col: &str| row.try_get::<i64, _>(col).map_err(|e| format!("{col}: {e}"));
    let count = |col: &str| int(col).and_then(|n| u32::try_from(n).map_err(|_| format!("{col} {n}")));
    let bureau = |col: &str| text(col).and_then(|c| Bureau::from_division_code(&c).ok_or(format!("{col} {c}")));
    let instant = |col: &str| text(col).and_then(|t| parse_instant(&t).map_err(|e| format!("{col}: {e}")));
    macro_rules! coded {
        ($ty:ty, $col:literal) => {{
            let c = text($col)?;
            <$ty>::from_code(&c).ok_or(format!("{} {c}", $col))?
        }};
    }
    let specialties: Vec<String> =
        serde_json::from_str(&text("specialties")?).map_err(|e| format!("specialties: {e}"))?;
    let urgent_reason = text("urgent_reason")?;
    let by_bureau = text("created_by_bureau")?;
    let dispatching = bureau("dispatching_bureau")?;
    let year = int("number_year")?;
    Ok(Task {
        id: TaskId::parse(&text("id")?).ok_or("id")?,
        number: TaskNumber {
            bureau: dispatching,
            year: i32::try_from(year).map_err(|_| format!("number_year {year}"))?,
            sequence: count("number_sequence")?,
        },
        institution_county: bureau("institution_county")?,
        details: NewTask {
            bureau: dispatching,
            institution_id: text("institution_id")?,
            title: text("title")?,
            activity: Activity {
                subject: coded!(ActivitySubject, "activity_subject"),
                kind: coded!(ActivityKind, "activity_kind"),
                reference: text("activity_reference")?,
                description: text("activity_description")?,
            },
            mode: coded!(TaskMode, "mode"),
            origin: coded!(TaskOrigin, "origin"),
            origin_submission_id: text("origin_submission_id")?,
            reporter_expert_id: text("reporter_expert_id")?,
            sessions,
            team_size: None,
            backup_count: None,
            specialties: specialties
                .iter()
                .map(|s| SpecialtyCode::parse(s).ok_or(format!("specialty {s}")))
                .collect::<Result<_, _>>()?,
            fund_source: coded!(FundSource, "fund_source"),
            urgent_reason: (!urgent_reason.is_empty()).then_some(urgent_reason),
            exceptions,
        },
        team_size: count("team_size")?,
        backup_count: count("backup_count")?,
        status: coded!(TaskStatus, "status"),
        cancel_reason: text("cancel_reason")?,
        accepted_count: count("accepted_count")?,
        edition_number: count("edition_number")?,
        created_by: Actor {
            subject: text("created_by_subject")?,
            role: text("created_by_role")?,
            bureau: (!by_bureau.is_empty()).then_some(by_bureau),
        },
        created_at: instant("created_at")?,
        updated_at: instant("updated_at")?,
        revision: int("revision")?,
    })
}
