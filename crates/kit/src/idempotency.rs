//! Idempotent commands: every state-changing RPC takes a `request_id`, and its effect and its
//! answer are stored in one transaction with the key.
//!
//! Scope is the caller (subject, role, bureau, expert id) and the method. The same id with the same content gives the
//! first answer again; with other content, `FAILED_PRECONDITION`. Concurrent duplicates meet at
//! the key's primary key: the second waits for the first to commit, then replays its answer, so
//! there is one effect. A failed command stores nothing, so it may be retried with the same id.

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};
use tonic::Status;

use crate::{Db, auth::Caller, clock::SharedClock, error::invalid_field, internal, storage::format_instant};

fn db_error(err: sqlx::Error) -> Status {
    crate::error::database(&err)
}

/// Longest accepted `request_id`.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// How long keys are kept at least (ARCHITECTURE.md: 30 days).
pub const RETENTION_DAYS: i64 = 30;

/// One state-changing request, identified for idempotency.
#[derive(Debug, Clone)]
pub struct Command {
    pub subject: String,
    pub method: &'static str,
    pub request_id: String,
    request_hash: String,
}

impl Command {
    /// Identifies `message` (the decoded request) as sent by `caller` to `method`.
    pub fn new<M: Message>(
        caller: &Caller,
        method: &'static str,
        request_id: &str,
        message: &M,
    ) -> Result<Self, Status> {
        let valid = !request_id.is_empty()
            && request_id.len() <= MAX_REQUEST_ID_LEN
            && request_id.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return Err(invalid_field(
                "request_id",
                format!("must be 1 to {MAX_REQUEST_ID_LEN} printable ASCII characters (a UUID is fine)"),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update([0]);
        hasher.update(message.encode_to_vec());
        Ok(Self {
            subject: scope_of(caller),
            method,
            request_id: request_id.to_owned(),
            request_hash: hex::encode(hasher.finalize()),
        })
    }
}

/// Whose keys these are: the token's subject together with its role and scope, so two tokens
/// that share a subject but speak for different bureaus (or experts) never replay each other's
/// answers.
fn scope_of(caller: &Caller) -> String {
    format!(
        "{}|{}|{}|{}",
        caller.subject,
        caller.role.code(),
        caller.bureau.map(|b| b.division_code()).unwrap_or_default(),
        caller.expert_id.as_deref().unwrap_or_default()
    )
}

/// Claims `command`'s key for a handler, or returns from the handler with the stored answer of
/// an earlier run: `let mut claim = claim_or_replay!(&self.db, &self.clock, &command);`.
#[macro_export]
macro_rules! claim_or_replay {
    ($db:expr, $clock:expr, $command:expr) => {
        match $crate::idempotency::begin($db, $clock, $command).await? {
            $crate::idempotency::Begun::Replay(response) => return Ok(::tonic::Response::new(response)),
            $crate::idempotency::Begun::Fresh(claim) => claim,
        }
    };
}

/// The outcome of claiming a command's key.
#[derive(Debug)]
pub enum Begun<R> {
    /// The command ran before: its first answer.
    Replay(R),
    /// The command is new: apply its effect in the claim's transaction, then [`Claim::finish`].
    Fresh(Claim),
}

/// A claimed key and the write transaction that holds it. Dropping it without
/// [`Claim::finish`] rolls everything back, so a failed command can be retried with its id.
#[derive(Debug)]
pub struct Claim {
    tx: Transaction<'static, Any>,
    command: Command,
}

impl Claim {
    /// The transaction the effect must use.
    pub fn tx(&mut self) -> &mut Transaction<'static, Any> {
        &mut self.tx
    }

    /// Stores `response` as the command's answer and commits the effect with it.
    pub async fn finish<R: Message>(mut self, response: &R) -> Result<(), Status> {
        let c = &self.command;
        sqlx::query(
            "UPDATE kit_idempotency_keys SET response = $1 WHERE subject = $2 AND method = $3 AND request_id = $4",
        )
        .bind(response.encode_to_vec())
        .bind(&c.subject)
        .bind(c.method)
        .bind(&c.request_id)
        .execute(&mut *self.tx)
        .await
        .map_err(db_error)?;
        self.tx.commit().await.map_err(db_error)
    }
}

/// Claims `command`'s key in a new write transaction, or returns the stored answer of an
/// earlier run. A key reused for other content is `FAILED_PRECONDITION`. Traced as
/// `idempotency.claim` with whether it replayed (the request id is the caller's text, not
/// recorded).
#[tracing::instrument(name = "idempotency.claim", skip_all, fields(rpc.method = command.method, replay = tracing::field::Empty))]
pub async fn begin<R: Message + Default>(db: &Db, clock: &SharedClock, command: &Command) -> Result<Begun<R>, Status> {
    let mut tx = db.begin_write().await.map_err(db_error)?;
    let claimed = sqlx::query(
        "INSERT INTO kit_idempotency_keys (subject, method, request_id, request_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(&command.subject)
    .bind(command.method)
    .bind(&command.request_id)
    .bind(&command.request_hash)
    .bind(format_instant(clock.now()))
    .execute(&mut *tx)
    .await
    .map_err(db_error)?
    .rows_affected()
        == 1;
    tracing::Span::current().record("replay", !claimed);
    if claimed {
        return Ok(Begun::Fresh(Claim { tx, command: command.clone() }));
    }

    let (hash, response): (String, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT request_hash, response FROM kit_idempotency_keys \
         WHERE subject = $1 AND method = $2 AND request_id = $3",
    )
    .bind(&command.subject)
    .bind(command.method)
    .bind(&command.request_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.rollback().await.map_err(db_error)?;
    if hash != command.request_hash {
        return Err(Status::failed_precondition(
            "request_id was already used for a different request; use a new request_id",
        ));
    }
    let bytes = response.ok_or_else(|| Status::aborted("the first request with this request_id is still running"))?;
    R::decode(bytes.as_slice()).map(Begun::Replay).map_err(internal)
}

/// Deletes keys older than the retention period; returns how many.
pub async fn purge_expired(db: &Db, clock: &SharedClock) -> Result<u64, sqlx::Error> {
    let cutoff = clock.now() - chrono::Duration::days(RETENTION_DAYS);
    Ok(sqlx::query("DELETE FROM kit_idempotency_keys WHERE created_at < $1")
        .bind(format_instant(cutoff))
        .execute(db.pool())
        .await?
        .rows_affected())
}
