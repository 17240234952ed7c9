//! What GetAssignment shows beyond the assignment's own row: whether a designation (D15) made it,
//! its dispatch letter, and, while it waits for an answer, the time it becomes NO_RESPONSE (the
//! sweep's own rule, `sweep::response_deadline`).

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};
use supervision_kit::Db;
use supervision_reference::Reference;

use crate::{
    domain::{Assignment, AssignmentStatus, DrawKind},
    error::Error,
    store::{draws as draw_store, tasks as task_store},
};

/// The facts about an assignment kept by its draw, its letter and its task.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub designated: bool,
    pub dispatch_letter_id: String,
    pub response_deadline: Option<DateTime<Utc>>,
}

/// `a` as the contract shows it, with its context read through `conn` (inside a call's
/// transaction, so a letter just issued is seen).
pub async fn to_proto(
    conn: &mut AnyConnection,
    reference: &Reference,
    a: &Assignment,
) -> Result<supervision_proto::dispatch::Assignment, Error> {
    Ok(crate::convert::assignment_in_context(a, &context(conn, reference, a).await?))
}

/// `a` as GetAssignment shows it.
pub async fn read(
    db: &Db,
    reference: &Reference,
    a: &Assignment,
) -> Result<supervision_proto::dispatch::Assignment, Error> {
    let mut conn = db.pool().acquire().await?;
    to_proto(&mut conn, reference, a).await
}

/// Reads `a`'s context. A deadline the calendar cannot give (no edition in force) is left out:
/// the sweep defers such an assignment too.
pub async fn context(conn: &mut AnyConnection, reference: &Reference, a: &Assignment) -> Result<Context, Error> {
    let designated = draw_store::get_draw(conn, &a.draw_id).await?.is_some_and(|d| d.kind == DrawKind::Designation);
    let dispatch_letter_id: String = sqlx::query("SELECT id FROM letters WHERE assignment_id = $1")
        .bind(a.id.as_str())
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| row.try_get("id"))
        .transpose()?
        .unwrap_or_default();
    let response_deadline = match (a.status, a.notified_at) {
        (AssignmentStatus::Notified, Some(notified_at)) => {
            let first = task_store::get_task(conn, &a.task_id)
                .await?
                .and_then(|t| t.details.sessions.iter().map(|s| s.date).min());
            first.and_then(|first| crate::sweep::response_deadline(reference, notified_at, first).ok())
        }
        _ => None,
    };
    Ok(Context { designated, dispatch_letter_id, response_deadline })
}

/// `items` as a list answers them: with `designated` from their draws (one read per distinct
/// draw of the page). The letter and the response deadline are left to GetAssignment, which
/// reads them per assignment.
pub async fn list_to_proto(
    db: &Db,
    items: &[Assignment],
) -> Result<Vec<supervision_proto::dispatch::Assignment>, Error> {
    let mut conn = db.pool().acquire().await?;
    let mut designations = std::collections::HashMap::new();
    for a in items {
        if !designations.contains_key(a.draw_id.as_str()) {
            let kind = draw_store::get_draw(&mut conn, &a.draw_id).await?.map(|d| d.kind);
            designations.insert(a.draw_id.as_str().to_owned(), kind == Some(DrawKind::Designation));
        }
    }
    Ok(items
        .iter()
        .map(|a| supervision_proto::dispatch::Assignment {
            designated: designations.get(a.draw_id.as_str()).copied().unwrap_or(false),
            ..crate::convert::assignment_to_proto(a)
        })
        .collect())
}
