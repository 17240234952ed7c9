//! Use cases of recruitment calls: each one transaction, rules from `domain`, SQL from `store`.

use chrono::NaiveDate;
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_proto::recruitment as pb;
use supervision_reference::{Reference, ReferenceError};
use tonic::Status;

use crate::{
    domain::{Call, CallFilter, CallId, CallStateError, CallStatus, Compliance, NewCall, NewPublication},
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

/// The paths UpdateCall accepts in its mask.
pub const UPDATABLE: [&str; 9] = [
    "year",
    "title",
    "body",
    "categories_sought",
    "specialties_sought",
    "industries_sought",
    "application_start_time",
    "application_end_time",
    "required_materials",
];

/// Checks an UpdateCall's id and mask before anything is read.
pub fn update_request(req: &pb::UpdateCallRequest) -> Result<(CallId, pb::Call, Vec<String>), Status> {
    let mut v = FieldViolations::new();
    let call = req.call.clone().unwrap_or_default();
    let id = CallId::parse(&call.id);
    if id.is_none() {
        v.add("call.id", "must be a call id (cal_...)");
    }
    let paths = req.update_mask.as_ref().map(|m| m.paths.clone()).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", format!("name at least one of {}", UPDATABLE.join(", ")));
    }
    for (i, p) in paths.iter().enumerate() {
        if !UPDATABLE.contains(&p.as_str()) {
            v.add(format!("update_mask.paths[{i}]"), format!("must be one of {}", UPDATABLE.join(", ")));
        }
    }
    v.check()?;
    Ok((id.expect("checked above"), call, paths))
}

/// Changes a draft's fields named in `paths`; the whole result is validated as a new call would
/// be, so a change never leaves a draft that could not have been created.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    id: &CallId,
    new: pb::Call,
    paths: &[String],
) -> Result<Call, Status> {
    let mut call = load(tx, id).await?;
    if call.status != CallStatus::Draft {
        return Err(Error::CallState(CallStateError {
            id: call.id.to_string(),
            status: call.status.code(),
            action: "UpdateCall",
            needed: "DRAFT",
        })
        .into());
    }
    let current = crate::convert::call_to_proto(call.clone());
    let mut merged = pb::CreateCallRequest {
        request_id: command.request_id.clone(),
        year: current.year,
        title: current.title,
        body: current.body,
        categories_sought: current.categories_sought,
        specialties_sought: current.specialties_sought,
        industries_sought: current.industries_sought,
        application_start_time: current.application_start_time,
        application_end_time: current.application_end_time,
        required_materials: current.required_materials,
    };
    for path in paths {
        match path.as_str() {
            "year" => merged.year = new.year,
            "title" => merged.title = new.title.clone(),
            "body" => merged.body = new.body.clone(),
            "categories_sought" => merged.categories_sought = new.categories_sought.clone(),
            "specialties_sought" => merged.specialties_sought = new.specialties_sought.clone(),
            "industries_sought" => merged.industries_sought = new.industries_sought.clone(),
            "application_start_time" => merged.application_start_time = new.application_start_time,
            "application_end_time" => merged.application_end_time = new.application_end_time,
            "required_materials" => merged.required_materials = new.required_materials.clone(),
            _ => unreachable!("the mask was checked"),
        }
    }
    let before = serde_json::json!({
        "year": call.details.year,
        "title": call.details.title,
        "window_start": supervision_kit::storage::format_instant(call.details.window_start),
        "window_end": supervision_kit::storage::format_instant(call.details.window_end),
        "categories": call.details.categories,
    });
    call.details = crate::convert::new_call(merged).map_err(|s| {
        // The same field names as the call, under `call.`.
        rename_violations(s, "call.")
    })?;
    call.updated_at = clock.now();
    store::update_call_details(&mut **tx, &call).await.map_err(Error::from)?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "call",
        entity_id: call.id.as_str(),
        action: "update",
        before: Some(before),
        after: Some(serde_json::json!({
            "paths": paths,
            "year": call.details.year,
            "title": call.details.title,
            "window_start": supervision_kit::storage::format_instant(call.details.window_start),
            "window_end": supervision_kit::storage::format_instant(call.details.window_end),
            "categories": call.details.categories,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await.map_err(Error::from)?;
    Ok(call)
}

/// Prefixes every field violation of an INVALID_ARGUMENT with `prefix`.
fn rename_violations(status: Status, prefix: &str) -> Status {
    use tonic_types::StatusExt;
    let Some(bad) = status.get_error_details().bad_request().cloned() else { return status };
    let mut v = FieldViolations::new();
    for f in bad.field_violations {
        v.add(format!("{prefix}{}", f.field), f.description);
    }
    v.check().err().unwrap_or(status)
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
