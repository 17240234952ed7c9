//! Notifications (DOMAIN.md 9.4, D5, D16): written PENDING in the transaction of the event that
//! causes them (the outbox pattern: no event without its notice, no notice without its event),
//! then handed to their channel by the delivery job, which marks each DELIVERED, or FAILED after
//! [`MAX_ATTEMPTS`] refusals by the channel. The recipient's acknowledgement makes a
//! notification READ; its read time is the evidence of delivery D5 relies on.
//!
//! Who is told what:
//! - an expert placed as a primary (by a draw or a promotion): ASSIGNMENT_OFFERED;
//! - an expert whose assignment the bureau cancelled or a status change ended: ASSIGNMENT_CANCELLED;
//! - the dispatching bureau's operators: DECLINE_RECEIVED for a decline (on time, late or
//!   exempt), a recusal or no answer by the deadline; REPLACEMENT_MADE when a backup (or the
//!   next in the order) takes the place; UNDERSTAFFED when the order is exhausted.
//!
//! Channels are pluggable ([`Channel`]); the in-app inbox ([`InApp`]) is the one implemented: a
//! delivered in-app notification is one the recipient's ListNotifications shows.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{Any, AnyConnection, Row, Transaction, any::AnyRow};
use supervision_kit::{
    Bureau, Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    storage::{format_instant, parse_instant},
    vocab::{is_prefixed_id, new_prefixed_id},
};

use crate::{
    domain::{Assignment, AssignmentStatus, Task},
    error::Error,
    store::StoreError,
};

macro_rules! columns {
    () => {
        "id, kind, recipient_expert_id, recipient_bureau, task_id, assignment_id, title, body, channel, state, \
         attempts, last_error, created_at, delivered_at, read_at"
    };
}

/// Refusals by a channel before a notification is FAILED.
pub const MAX_ATTEMPTS: i64 = 5;
pub const JOB: &str = "dispatch-notifications";

/// What a notification is about (the contract's NotificationKind names, without the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AssignmentOffered,
    AssignmentCancelled,
    DeclineReceived,
    ReplacementMade,
    Understaffed,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Self::AssignmentOffered => "ASSIGNMENT_OFFERED",
            Self::AssignmentCancelled => "ASSIGNMENT_CANCELLED",
            Self::DeclineReceived => "DECLINE_RECEIVED",
            Self::ReplacementMade => "REPLACEMENT_MADE",
            Self::Understaffed => "UNDERSTAFFED",
        }
    }
}

/// Delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Delivered,
    Read,
    Failed,
}

impl State {
    pub fn code(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Read => "READ",
            Self::Failed => "FAILED",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Read, Self::Failed].into_iter().find(|s| s.code() == code)
    }
}

/// Who a notification is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Expert(String),
    /// The bureau's operators.
    Bureau(Bureau),
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub recipient: Recipient,
    pub task_id: String,
    pub assignment_id: String,
    pub title: String,
    pub body: String,
    pub channel: String,
    pub state: State,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
}

/// A way of delivering notifications. `deliver` hands one over; an error is retried by the next
/// pass until [`MAX_ATTEMPTS`].
#[tonic::async_trait]
pub trait Channel: Send + Sync + std::fmt::Debug {
    /// The contract's NotificationChannel name without the prefix (`IN_APP`, `SMS`).
    fn code(&self) -> &'static str;
    async fn deliver(&self, notification: &Notification) -> Result<(), String>;
}

/// The in-app inbox: the notification row is the inbox entry, so handing it over is marking it
/// delivered; ListNotifications shows the recipient their delivered and read ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct InApp;

#[tonic::async_trait]
impl Channel for InApp {
    fn code(&self) -> &'static str {
        "IN_APP"
    }

    async fn deliver(&self, _notification: &Notification) -> Result<(), String> {
        Ok(())
    }
}

/// The channels configured: the in-app inbox.
pub fn channels() -> Vec<Arc<dyn Channel>> {
    vec![Arc::new(InApp)]
}

/// Writes a PENDING in-app notification inside `tx`.
#[allow(clippy::too_many_arguments, reason = "the notification's fields")]
pub async fn enqueue(
    conn: &mut AnyConnection,
    clock: &SharedClock,
    kind: Kind,
    recipient: Recipient,
    task: &Task,
    assignment_id: &str,
    title: String,
    body: String,
) -> Result<(), Error> {
    let (expert, bureau) = match &recipient {
        Recipient::Expert(id) => (id.clone(), String::new()),
        Recipient::Bureau(b) => (String::new(), b.division_code().to_owned()),
    };
    sqlx::query(
        "INSERT INTO notifications (id, kind, recipient_expert_id, recipient_bureau, task_id, assignment_id, \
         title, body, channel, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new_prefixed_id("ntf_"))
    .bind(kind.code())
    .bind(expert)
    .bind(bureau)
    .bind(task.id.as_str())
    .bind(assignment_id)
    .bind(title)
    .bind(body)
    .bind(InApp.code())
    .bind(State::Pending.code())
    .bind(format_instant(clock.now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Tells the expert of `a` (a primary just placed) that they were drawn.
pub async fn offered(conn: &mut AnyConnection, clock: &SharedClock, task: &Task, a: &Assignment) -> Result<(), Error> {
    let dates: Vec<String> =
        task.details.sessions.iter().map(|s| format!("{} {}", s.date, s.half_day.code())).collect();
    enqueue(
        conn,
        clock,
        Kind::AssignmentOffered,
        Recipient::Expert(a.expert_id.clone()),
        task,
        a.id.as_str(),
        format!("监督评估任务 {} 抽中您", task.number),
        format!(
            "You were drawn for supervision task {} on {}. Please accept, decline or recuse before the response \
             deadline; no answer counts as a decline.",
            task.number,
            dates.join(", ")
        ),
    )
    .await
}

/// The notices a vacated assignment `a` gives: to its bureau for a decline, recusal or no answer;
/// to its expert for a cancellation; and to the bureau for the replacement or the lack of one.
pub async fn vacated(
    conn: &mut AnyConnection,
    clock: &SharedClock,
    task: &Task,
    a: &Assignment,
    replacement: Option<&Assignment>,
    was_primary: bool,
) -> Result<(), Error> {
    let bureau = Recipient::Bureau(task.bureau());
    let declined = match a.status {
        AssignmentStatus::DeclinedOnTime => Some("declined on time"),
        AssignmentStatus::DeclinedLate => Some("declined after the D3 deadline (an incident goes to the registry)"),
        AssignmentStatus::DeclinedExempt => Some("declined on short notice (exempt)"),
        AssignmentStatus::Recused => Some("recused for a conflict"),
        AssignmentStatus::NoResponse => Some("did not answer by the response deadline (counted as a decline)"),
        _ => None,
    };
    if let Some(what) = declined {
        enqueue(
            conn,
            clock,
            Kind::DeclineReceived,
            bureau.clone(),
            task,
            a.id.as_str(),
            format!("任务 {} 有专家谢绝", task.number),
            format!("Expert {} {what} for task {} (position {}).", a.expert_id, task.number, a.position),
        )
        .await?;
    }
    let told = a.notified_at.is_some();
    if told && matches!(a.status, AssignmentStatus::Cancelled | AssignmentStatus::CancelledStatusChange) {
        enqueue(
            conn,
            clock,
            Kind::AssignmentCancelled,
            Recipient::Expert(a.expert_id.clone()),
            task,
            a.id.as_str(),
            format!("任务 {} 的委派已取消", task.number),
            format!("Your assignment to task {} was cancelled: {}.", task.number, a.cancel_reason),
        )
        .await?;
    }
    match replacement {
        Some(r) => {
            enqueue(
                conn,
                clock,
                Kind::ReplacementMade,
                bureau,
                task,
                r.id.as_str(),
                format!("任务 {} 已递补", task.number),
                format!(
                    "Expert {} (position {}) takes the place of expert {} on task {}.",
                    r.expert_id, r.position, a.expert_id, task.number
                ),
            )
            .await?;
            offered(conn, clock, task, r).await?;
        }
        None if was_primary => {
            enqueue(
                conn,
                clock,
                Kind::Understaffed,
                bureau,
                task,
                a.id.as_str(),
                format!("任务 {} 缺员", task.number),
                format!(
                    "No backup is left to take the place of expert {} on task {}: the order is exhausted; a \
                     supplementary draw is needed.",
                    a.expert_id, task.number
                ),
            )
            .await?;
        }
        None => {}
    }
    Ok(())
}

/// One pass of the delivery job: every PENDING notification, oldest first, handed to its channel.
/// Each is marked in its own short statement, only if it is still PENDING (replicas may race).
/// Returns how many were delivered.
pub async fn deliver_pending(db: &Db, clock: &SharedClock, channels: &[Arc<dyn Channel>]) -> Result<usize, Error> {
    let pending = {
        let mut conn = db.pool().acquire().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM notifications WHERE state = 'PENDING' ORDER BY created_at, id LIMIT 500"
        ))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?
    };
    let mut delivered = 0;
    for n in pending {
        let outcome = match channels.iter().find(|c| c.code() == n.channel) {
            Some(channel) => channel.deliver(&n).await,
            None => Err(format!("no {} channel is configured", n.channel)),
        };
        let mut conn = db.pool().acquire().await?;
        match outcome {
            Ok(()) => {
                let done = sqlx::query(
                    "UPDATE notifications SET state = 'DELIVERED', delivered_at = $1, attempts = attempts + 1 \
                     WHERE id = $2 AND state = 'PENDING'",
                )
                .bind(format_instant(clock.now()))
                .bind(&n.id)
                .execute(&mut *conn)
                .await?;
                delivered += usize::try_from(done.rows_affected()).unwrap_or_default();
            }
            Err(problem) => {
                tracing::warn!(notification = %n.id, %problem, "a notification was not delivered");
                let state = if n.attempts + 1 >= MAX_ATTEMPTS { State::Failed } else { State::Pending };
                sqlx::query(
                    "UPDATE notifications SET state = $1, attempts = attempts + 1, last_error = $2 \
                     WHERE id = $3 AND state = 'PENDING'",
                )
                .bind(state.code())
                .bind(problem)
                .bind(&n.id)
                .execute(&mut *conn)
                .await?;
            }
        }
    }
    Ok(delivered)
}

/// Whose notifications a caller lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbox {
    Expert(String),
    Bureau(Bureau),
    /// City roles and auditors reading anyone's, optionally narrowed.
    Any {
        expert_id: Option<String>,
        bureau: Option<Bureau>,
    },
}

impl Inbox {
    /// The inbox `caller` reads, given the staff filters of the request; PERMISSION_DENIED for a
    /// county operator asking for another bureau's notices or any expert's inbox.
    pub fn of(caller: &Caller, expert_id: Option<String>, bureau: Option<Bureau>) -> Result<Self, tonic::Status> {
        match caller.role {
            Role::Expert => {
                let own = caller.expert_id.clone().unwrap_or_default();
                if own.is_empty() || expert_id.as_ref().is_some_and(|e| *e != own) || bureau.is_some() {
                    return Err(tonic::Status::permission_denied("an expert reads their own inbox only"));
                }
                Ok(Self::Expert(own))
            }
            Role::CountyOperator => {
                let own = caller.bureau.ok_or_else(|| tonic::Status::permission_denied("no bureau"))?;
                if expert_id.is_some() || bureau.is_some_and(|b| b != own) {
                    return Err(tonic::Status::permission_denied(
                        "a county operator reads their bureau's notices only",
                    ));
                }
                Ok(Self::Bureau(own))
            }
            Role::CityOperator if expert_id.is_none() && bureau.is_none() => Ok(Self::Bureau(Bureau::City)),
            _ => Ok(Self::Any { expert_id, bureau }),
        }
    }

    /// Whether the caller is the recipient (who alone acknowledges).
    fn is_recipient(&self, n: &Notification) -> bool {
        match (self, &n.recipient) {
            (Self::Expert(e), Recipient::Expert(r)) => e == r,
            (Self::Bureau(b), Recipient::Bureau(r)) => b == r,
            _ => false,
        }
    }
}

/// A page of notifications, newest first. Recipients see what was delivered to them (and read);
/// city roles and auditors also see PENDING and FAILED ones, the delivery status.
pub async fn list(
    db: &Db,
    inbox: &Inbox,
    unread_only: bool,
    page: &Page,
) -> Result<(Vec<Notification>, Option<String>), Error> {
    let (expert, bureau, delivered_only) = match inbox {
        Inbox::Expert(e) => (e.clone(), String::new(), true),
        Inbox::Bureau(b) => (String::new(), b.division_code().to_owned(), true),
        Inbox::Any { expert_id, bureau } => (
            expert_id.clone().unwrap_or_default(),
            bureau.map(|b| b.division_code().to_owned()).unwrap_or_default(),
            false,
        ),
    };
    let probe = page.probe();
    let mut conn = db.pool().acquire().await?;
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM notifications WHERE ($1 = '' OR id < $1) AND ($2 = '' OR recipient_expert_id = $2) \
           AND ($3 = '' OR recipient_bureau = $3) AND ($4 = 0 OR state IN ('DELIVERED', 'READ')) \
           AND ($5 = 0 OR state <> 'READ') \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(probe.after.as_deref().unwrap_or_default())
    .bind(expert)
    .bind(bureau)
    .bind(i64::from(delivered_only))
    .bind(i64::from(unread_only))
    .bind(i64::from(probe.size))
    .fetch_all(&mut *conn)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(page.finish(items, |n| n.id.clone()))
}

pub fn is_notification_id(raw: &str) -> bool {
    is_prefixed_id(raw, "ntf_")
}

/// Marks a delivered notification READ by its recipient, inside `tx`, with an audit entry. A
/// notification already read keeps its first read time. Anyone but the recipient: NOT_FOUND.
pub async fn acknowledge(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &str,
) -> Result<Notification, Error> {
    let inbox = match caller.role {
        // docs/rpc-roles.md: CITY_ADMIN acknowledges what reaches the city bureau, as the city
        // bureau's operators do (its own inbox reads every notice, but it is the recipient of these).
        Role::CityAdmin => Inbox::Bureau(Bureau::City),
        _ => Inbox::of(caller, None, None).map_err(|_| Error::NotificationNotFound(id.to_owned()))?,
    };
    let row = sqlx::query(concat!("SELECT ", columns!(), " FROM notifications WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    let mut n = row
        .as_ref()
        .map(from_row)
        .transpose()?
        .filter(|n| inbox.is_recipient(n) && matches!(n.state, State::Delivered | State::Read))
        .ok_or_else(|| Error::NotificationNotFound(id.to_owned()))?;
    if n.state == State::Read {
        return Ok(n);
    }
    let now = clock.now();
    sqlx::query(
        "UPDATE notifications SET state = 'READ', read_at = $1, read_by_subject = $2 WHERE id = $3 AND state = 'DELIVERED'",
    )
    .bind(format_instant(now))
    .bind(&caller.actor().subject)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    n.state = State::Read;
    n.read_at = Some(now);
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "notification",
        entity_id: &n.id,
        action: "acknowledge",
        before: Some(serde_json::json!({ "state": State::Delivered.code() })),
        after: Some(serde_json::json!({ "state": n.state.code(), "read_at": format_instant(now) })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(n)
}

fn from_row(row: &AnyRow) -> Result<Notification, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let instant = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        let raw = text(col)?;
        if raw.is_empty() {
            return Ok(None);
        }
        parse_instant(&raw).map(Some).map_err(|e| bad(format!("{col}: {e}")))
    };
    let expert = text("recipient_expert_id")?;
    let bureau = text("recipient_bureau")?;
    let recipient = if expert.is_empty() {
        Recipient::Bureau(Bureau::from_division_code(&bureau).ok_or_else(|| bad(format!("bureau {bureau:?}")))?)
    } else {
        Recipient::Expert(expert)
    };
    let state = text("state")?;
    Ok(Notification {
        kind: text("kind")?,
        recipient,
        task_id: text("task_id")?,
        assignment_id: text("assignment_id")?,
        title: text("title")?,
        body: text("body")?,
        channel: text("channel")?,
        state: State::parse(&state).ok_or_else(|| bad(format!("state {state:?}")))?,
        attempts: row.try_get("attempts")?,
        last_error: text("last_error")?,
        created_at: instant("created_at")?.ok_or_else(|| bad("created_at is empty".into()))?,
        delivered_at: instant("delivered_at")?,
        read_at: instant("read_at")?,
        id,
    })
}

/// The contract's Notification.
pub fn to_proto(n: &Notification) -> supervision_proto::dispatch::Notification {
    use supervision_kit::convert::timestamp;
    use supervision_proto::dispatch as pb;
    let (expert, bureau) = match &n.recipient {
        Recipient::Expert(e) => (e.clone(), 0),
        Recipient::Bureau(b) => (String::new(), b.to_proto() as i32),
    };
    pb::Notification {
        id: n.id.clone(),
        kind: pb::NotificationKind::from_str_name(&format!("NOTIFICATION_KIND_{}", n.kind)).map_or(0, |k| k as i32),
        recipient_expert_id: expert,
        recipient_bureau: bureau,
        task_id: n.task_id.clone(),
        assignment_id: n.assignment_id.clone(),
        title: n.title.clone(),
        body: n.body.clone(),
        channel: pb::NotificationChannel::from_str_name(&format!("NOTIFICATION_CHANNEL_{}", n.channel))
            .map_or(0, |c| c as i32),
        state: pb::NotificationState::from_str_name(&format!("NOTIFICATION_STATE_{}", n.state.code()))
            .map_or(0, |s| s as i32),
        create_time: Some(timestamp(n.created_at)),
        deliver_time: n.delivered_at.map(timestamp),
        read_time: n.read_at.map(timestamp),
    }
}
