//! Dispatch letters (派遣函, article 9(一), D21) and the confidentiality of rosters (article 9(三),
//! D12).
//!
//! A letter is issued in the transaction that records an assignment's acceptance: a printed number
//! `<task number>-<nn>` (the task's letters counted in issue order) and an 8-character code from
//! an alphabet without look-alike characters. It is valid while its assignment is ACCEPTED or
//! COMPLETED and its draw stands; any other state reads as REVOKED, with the assignment's state as
//! the reason, so a cancelled, declined, no-show or voided assignment's letter stops verifying at
//! once without a second record to keep in step. VerifyDispatchLetter answers only whether a
//! number and code match a valid letter and, when they do, the institution and the dates: never
//! the task's other experts, and no name (dispatch holds ids only, D18).
//!
//! Until a task's first session day (Asia/Shanghai) its roster is sealed: only the dispatching
//! bureau, city roles, auditors and each expert for their own assignment see it (the listing
//! rules of `TaskVisibility`), and every staff read of a sealed roster is an audit entry
//! `read_sealed_roster` on the task.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Any, AnyConnection, Row, Transaction};
use supervision_kit::{
    Caller, Db, Role, SharedClock,
    audit::{self, Change},
    storage::{format_instant, parse_instant},
};
use tonic::Code;

use crate::{
    domain::{Assignment, AssignmentId, AssignmentStatus, DrawStatus, LetterId, Task, TaskId},
    error::Error,
    store::{StoreError, draws as draw_store, tasks as task_store},
};

/// A letter as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub id: LetterId,
    pub number: String,
    pub assignment_id: AssignmentId,
    pub task_id: TaskId,
    pub expert_id: String,
    pub code: String,
    pub issued_at: DateTime<Utc>,
}

/// A letter with what it is valid for, as read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterView {
    pub letter: Letter,
    pub institution_id: String,
    pub dates: Vec<NaiveDate>,
    /// Empty while valid; otherwise why it no longer is.
    pub revoked: String,
}

/// Characters of a verification code: no 0/O, 1/I/L.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 8;

fn new_code() -> String {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .filter(|b| usize::from(**b) < 248) // 248 = 8 * 31: no bias toward the first characters
        .take(CODE_LEN)
        .map(|b| CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()] as char)
        .collect::<String>()
}

/// Issues the letter of `a`, just accepted, inside `tx` (once: a second call keeps the first).
pub async fn issue(
    tx: &mut Transaction<'static, Any>,
    task: &Task,
    a: &Assignment,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let existing: Option<String> = sqlx::query_scalar("SELECT id FROM letters WHERE assignment_id = $1")
        .bind(a.id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    if existing.is_some() {
        return Ok(());
    }
    // The task's counter, bumped in this transaction: a concurrent accept on the same task waits
    // for this row and then reads the next number, so two letters never share one.
    let issued: i64 = sqlx::query_scalar(
        "UPDATE tasks SET letters_issued = letters_issued + 1 WHERE id = $1 RETURNING letters_issued",
    )
    .bind(task.id.as_str())
    .fetch_one(&mut **tx)
    .await?;
    let mut code = new_code();
    while code.len() < CODE_LEN {
        code = new_code();
    }
    sqlx::query(
        "INSERT INTO letters (id, letter_number, assignment_id, task_id, expert_id, verification_code, issued_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(LetterId::generate().as_str())
    .bind(format!("{}-{:02}", task.number, issued))
    .bind(a.id.as_str())
    .bind(task.id.as_str())
    .bind(&a.expert_id)
    .bind(code)
    .bind(format_instant(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const COLUMNS: &str = "id, letter_number, assignment_id, task_id, expert_id, verification_code, issued_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<Letter, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |c: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(c)?) };
    Ok(Letter {
        id: LetterId::parse(&id).ok_or_else(|| bad("id".into()))?,
        number: text("letter_number")?,
        assignment_id: AssignmentId::parse(&text("assignment_id")?).ok_or_else(|| bad("assignment_id".into()))?,
        task_id: TaskId::parse(&text("task_id")?).ok_or_else(|| bad("task_id".into()))?,
        expert_id: text("expert_id")?,
        code: text("verification_code")?,
        issued_at: parse_instant(&text("issued_at")?).map_err(|e| bad(format!("issued_at: {e}")))?,
    })
}

async fn find(conn: &mut AnyConnection, column: &str, value: &str) -> Result<Option<Letter>, Error> {
    // `column` is one of this module's constants; the value is bound.
    let sql = format!("SELECT {COLUMNS} FROM letters WHERE {column} = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(&mut *conn).await?;
    Ok(row.map(|r| from_row(&r)).transpose()?)
}

/// Which letter GetDispatchLetter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Letter(LetterId),
    Assignment(AssignmentId),
}

async fn view(conn: &mut AnyConnection, letter: Letter) -> Result<(LetterView, Task), Error> {
    let missing = || Error::Store(StoreError::Corrupt { id: letter.id.to_string(), problem: "no assignment".into() });
    let a = draw_store::get_assignment(conn, &letter.assignment_id).await?.ok_or_else(missing)?;
    let task = task_store::get_task(conn, &letter.task_id).await?.ok_or_else(missing)?;
    let draw = draw_store::get_draw(conn, &a.draw_id).await?.ok_or_else(missing)?;
    let revoked = if draw.status != DrawStatus::Executed {
        format!("draw {}", draw.status.code())
    } else if matches!(a.status, AssignmentStatus::Accepted | AssignmentStatus::Completed) {
        String::new()
    } else {
        format!("assignment {}", a.status.code())
    };
    let mut dates: Vec<NaiveDate> = task.details.sessions.iter().map(|s| s.date).collect();
    dates.dedup();
    Ok((LetterView { letter, institution_id: task.details.institution_id.clone(), dates, revoked }, task))
}

/// GetDispatchLetter: the letter of an accepted assignment, for the expert themself, the
/// dispatching bureau, city roles and auditors (`rpc-roles.md` and the task's visibility).
pub async fn get(db: &Db, caller: &Caller, selector: &Selector) -> Result<LetterView, Error> {
    let mut conn = db.pool().acquire().await?;
    let (letter, not_found) = match selector {
        Selector::Letter(id) => (find(&mut conn, "id", id.as_str()).await?, id.to_string()),
        Selector::Assignment(id) => (find(&mut conn, "assignment_id", id.as_str()).await?, id.to_string()),
    };
    let Some(letter) = letter else {
        if let Selector::Assignment(id) = selector {
            // Tell a visible assignment without a letter apart from an unknown one.
            crate::responses::visible(db, caller, id).await?;
            return Err(Error::draw_refused(
                Code::FailedPrecondition,
                "NO_LETTER",
                format!("assignment {id} has no letter: one is issued when the expert accepts"),
            ));
        }
        return Err(Error::AssignmentNotFound(not_found));
    };
    let (view, task) = view(&mut conn, letter).await?;
    let allowed = if caller.role == Role::Expert {
        caller.expert_id.as_deref() == Some(view.letter.expert_id.as_str())
    } else {
        crate::domain::TaskVisibility::of(caller).allows(&task)
    };
    if !allowed {
        return Err(Error::AssignmentNotFound(not_found));
    }
    Ok(view)
}

/// VerifyDispatchLetter: the letter numbered `number` when `code` matches and it is valid.
/// Any other case is the same "not valid" answer, so the call reveals nothing else.
pub async fn verify(db: &Db, number: &str, code: &str) -> Result<Option<LetterView>, Error> {
    let mut conn = db.pool().acquire().await?;
    let Some(letter) = find(&mut conn, "letter_number", number).await? else { return Ok(None) };
    let matches = letter.code.len() == code.len()
        && letter.code.bytes().zip(code.to_ascii_uppercase().bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if !matches {
        return Ok(None);
    }
    let (view, _) = view(&mut conn, letter).await?;
    Ok(view.revoked.is_empty().then_some(view))
}

/// Whether `task`'s roster is still sealed on `today` (before its first session day).
pub fn sealed(task: &Task, today: NaiveDate) -> bool {
    task.details.sessions.iter().map(|s| s.date).min().is_some_and(|first| today < first)
}

/// Audits a staff read of sealed rosters: one entry per task among `assignments` whose roster is
/// sealed. An expert reading their own assignments is not a roster read.
pub async fn audit_sealed_reads(
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    method: &'static str,
    assignments: &[Assignment],
) -> Result<(), Error> {
    if caller.role == Role::Expert || assignments.is_empty() {
        return Ok(());
    }
    let today = supervision_reference::shanghai_today(clock);
    let mut tasks: Vec<&TaskId> = assignments.iter().map(|a| &a.task_id).collect();
    tasks.sort();
    tasks.dedup();
    // A write transaction from the start: on SQLite a deferred one that reads the tasks and then
    // appends the audit entry fails with SQLITE_BUSY when another writer commits in between
    // (seen as UNAVAILABLE on ListAssignments under load).
    let mut tx = db.begin_write().await?;
    for task_id in tasks {
        let Some(task) = task_store::get_task(&mut tx, task_id).await? else { continue };
        if !sealed(&task, today) {
            continue;
        }
        let read: Vec<&str> = assignments.iter().filter(|a| &a.task_id == task_id).map(|a| a.id.as_str()).collect();
        let change = Change {
            method,
            request_id: "",
            entity_type: "roster",
            entity_id: task_id.as_str(),
            action: "read_sealed_roster",
            before: None,
            after: Some(serde_json::json!({ "assignment_ids": read })),
        };
        audit::append(&mut tx, db.backend(), clock, caller, change).await?;
    }
    tx.commit().await?;
    Ok(())
}
