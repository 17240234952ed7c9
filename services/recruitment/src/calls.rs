//! Use cases of recruitment calls: each one transaction, rules from `domain`, SQL from `store`.

use chrono::NaiveDate;
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_reference::{Reference, ReferenceError};

use crate::{
    domain::{Call, CallFilter, CallId, Compliance, NewCall, NewPublication},
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
    let mut conn = db.pool().acquire().await?;
    store::get_call(&mut conn, id)
        .await?
        .filter(|c| !public_only || c.status.is_public())
        .ok_or_else(|| Error::CallNotFound(id.to_string()))
}

/// One page of calls, newest first, and the next page's token if there is one.
pub async fn list(db: &Db, filter: &CallFilter, page: &Page) -> Result<(Vec<Call>, Option<String>), Error> {
    let mut conn = db.pool().acquire().await?;
    let items = store::list_calls(&mut conn, filter, &page.probe()).await?;
    Ok(page.finish(items, |x| x.id.to_string()))
}

/// Reads a call inside `tx` for a transition.
async fn load(tx: &mut Transaction<'static, Any>, id: &CallId) -> Result<Call, Error> {
    store::get_call(tx, id).await?.ok_or_else(|| Error::CallNotFound(id.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn audit_transition(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    call: &Call,
    action: &str,
    before: &str,
    after: serde_json::Value,
) -> Result<(), Error> {
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "call",
        entity_id: call.id.as_str(),
        action,
        before: Some(serde_json::json!({ "status": before })),
        after: Some(after),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// Records a publication; the first one publishes the call with the edition in force on the
/// publication day (D6: a day no edition covers is refused).
#[allow(clippy::too_many_arguments)]
pub async fn record_publication(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    command: &Command,
    id: &CallId,
    publication: NewPublication,
) -> Result<Call, Error> {
    let mut call = load(tx, id).await?;
    let before = call.status.code();
    let edition = reference.editions().edition_in_force(publication.publish_date).map_err(ReferenceError::from)?;
    let edition_number = i32::try_from(edition.number).unwrap_or(i32::MAX);
    call.record_publication(publication, edition_number, caller.actor(), clock.now())?;
    store::update_call_state(&mut **tx, &call).await?;
    let ordinal = call.publications.len() - 1;
    let p = &call.publications[ordinal];
    store::insert_publication(&mut **tx, &call.id, ordinal, p).await?;
    let after = serde_json::json!({
        "status": call.status.code(),
        "edition_number": call.edition_number,
        "channel": p.details.channel,
        "publish_date": p.details.publish_date.to_string(),
        "address": p.details.address,
    });
    audit_transition(tx, db, clock, caller, command, &call, "publish", before, after).await?;
    Ok(call)
}

/// Closes a published call early, or cancels a draft.
#[allow(clippy::too_many_arguments)]
pub async fn end(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &CallId,
    reason: String,
    cancel: bool,
) -> Result<Call, Error> {
    let mut call = load(tx, id).await?;
    let before = call.status.code();
    if cancel {
        call.cancel(reason, clock.now())?;
    } else {
        call.close(reason, clock.now())?;
    }
    store::update_call_state(&mut **tx, &call).await?;
    let after = serde_json::json!({ "status": call.status.code(), "reason": call.status_reason });
    audit_transition(tx, db, clock, caller, command, &call, if cancel { "cancel" } else { "close" }, before, after)
        .await?;
    Ok(call)
}

/// A year's compliance with article 7(一) on `today`; the number required is the edition's in
/// force on the year's last day, or today if that is earlier (2 when none covers either).
pub async fn compliance(db: &Db, reference: &Reference, year: i32, today: NaiveDate) -> Result<Compliance, Error> {
    let ids = store::calls_first_published_in(db.pool(), year).await?;
    let on = NaiveDate::from_ymd_opt(year, 12, 31).map_or(today, |end| end.min(today));
    let required = reference
        .editions()
        .edition_in_force(on)
        .map(|e| e.appointment.min_recruitment_calls_per_year)
        .unwrap_or(DEFAULT_CALLS_PER_YEAR);
    Ok(Compliance::judge(year, ids, required, today))
}

/// Article 7(一)'s "每年至少两次".
const DEFAULT_CALLS_PER_YEAR: u32 = 2;
