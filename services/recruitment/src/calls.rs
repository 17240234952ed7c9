//! Use cases of recruitment calls: each one transaction, rules from `domain`, SQL from `store`.

use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};

use crate::{
    domain::{Call, CallFilter, CallId, NewCall},
    error::Error,
    store,
};

/// Drafts a call inside `tx`, with its audit entry.
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    details: NewCall,
) -> Result<Call, Error> {
    let call = Call::draft(details, caller.actor(), clock.now());
    store::insert_call(&mut **tx, &call).await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "call",
        entity_id: call.id.as_str(),
        action: "create",
        before: None,
        after: Some(serde_json::json!({
            "year": call.details.year,
            "title": call.details.title,
            "window_start": supervision_kit::storage::format_instant(call.details.window_start),
            "window_end": supervision_kit::storage::format_instant(call.details.window_end),
            "categories": call.details.categories,
            "status": call.status.code(),
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(call)
}

/// Reads a call; with `public_only`, a call that was never published is not found.
pub async fn get(db: &Db, id: &CallId, public_only: bool) -> Result<Call, Error> {
    store::get_call(db.pool(), id)
        .await?
        .filter(|c| !public_only || c.status.is_public())
        .ok_or_else(|| Error::CallNotFound(id.to_string()))
}

/// One page of calls, newest first, and the next page's token if there is one.
pub async fn list(db: &Db, filter: &CallFilter, page: &Page) -> Result<(Vec<Call>, Option<String>), Error> {
    let items = store::list_calls(db.pool(), filter, &page.probe()).await?;
    Ok(page.finish(items, |x| x.id.to_string()))
}
