//! Use cases of applications (申报, article 7(二)): each one transaction, rules from `domain`,
//! SQL from `store`, an audit entry per change with personal data masked.

use chrono::NaiveDate;
use sha2::{Digest, Sha256};
use sqlx::{Any, AnyConnection, Transaction};
use supervision_kit::{
    Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    personal::{PersonalDataKey, mask_document},
    vocab::OnBehalf,
};
use tonic::Status;

use crate::{
    convert::applications::{self as ca, ApplicationUpdate, NewApplication},
    domain::{
        Application, ApplicationFilter, ApplicationId, Attestation, CallStatus, Conclusion, Material, MaterialId,
        NewMaterial, Outcome, ReviewInput, Visibility,
        application::{COMMITMENT_TEXT, MAX_MATERIALS},
    },
    error::{Error, review_status},
    store::{self, applications as sql},
};

/// Whether the caller is staff acting for an applicant (D16) rather than the applicant.
pub fn is_staff_entry(caller: &Caller) -> bool {
    caller.role != Role::Applicant
}

/// Which form of personal data `caller` gets: in full for CITY_ADMIN, CITY_REVIEWER, AUDITOR
/// and the applicant themself (common.proto), masked for everyone else.
pub fn visibility(caller: &Caller, application: &Application) -> Visibility {
    match caller.role {
        Role::CityAdmin | Role::CityReviewer | Role::Auditor => Visibility::Full,
        Role::Applicant if owns(caller, application) => Visibility::Full,
        _ => Visibility::Masked,
    }
}

fn owns(caller: &Caller, application: &Application) -> bool {
    !application.owner_subject.is_empty() && application.owner_subject == caller.subject
}

/// Reads an application `caller` may reach: an applicant reaches only their own, and anyone
/// else's is "not found" to them (its existence is not theirs to learn).
async fn load(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    caller: &Caller,
    id: &ApplicationId,
) -> Result<Application, Error> {
    sql::get_application(conn, key, id)
        .await?
        .filter(|a| caller.role != Role::Applicant || owns(caller, a))
        .ok_or_else(|| Error::ApplicationNotFound(id.to_string()))
}

/// What the audit trail keeps of an application: no plain personal data.
fn audit_view(a: &Application) -> serde_json::Value {
    serde_json::json!({
        "status": a.status.code(),
        "call_id": a.call_id.as_str(),
        "name": a.profile.name,
        "identity": {
            "type": a.profile.identity.kind.code(),
            "number": mask_document(a.profile.identity.number()),
        },
        "categories": a.profile.categories(),
        "conditions": a.profile.conditions(),
        "materials": a.current_materials().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        "submission_count": a.submission_count,
        "revision": a.revision,
    })
}

fn on_behalf_view(o: Option<&OnBehalf>) -> serde_json::Value {
    o.map_or(serde_json::Value::Null, |o| {
        serde_json::json!({
            "channel": o.channel,
            "received_at": supervision_kit::storage::format_instant(o.received_at),
            "note": o.note,
        })
    })
}

#[allow(clippy::too_many_arguments)]
async fn record(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    entity_type: &str,
    entity_id: &str,
    action: &str,
    before: Option<serde_json::Value>,
    after: serde_json::Value,
) -> Result<(), Error> {
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type,
        entity_id,
        action,
        before,
        after: Some(after),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// Starts a draft on a published call.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    new: NewApplication,
) -> Result<Application, Error> {
    let call = store::get_call(tx, &new.call_id)
        .await?
        .filter(|c| c.status.is_public())
        .ok_or_else(|| Error::CallNotFound(new.call_id.to_string()))?;
    if call.status != CallStatus::Published {
        return Err(crate::domain::CallStateError {
            id: call.id.to_string(),
            status: call.status.code(),
            action: "applying",
            needed: "PUBLISHED",
        }
        .into());
    }
    let owner = if is_staff_entry(caller) { String::new() } else { caller.subject.clone() };
    let application = Application::draft(
        new.call_id,
        owner,
        new.profile,
        new.replaces_expert_id,
        new.on_behalf,
        caller.actor(),
        clock.now(),
    );
    sql::insert_application(&mut **tx, key, &application).await?;
    let mut after = audit_view(&application);
    after["on_behalf"] = on_behalf_view(application.on_behalf.as_ref());
    record(tx, db, clock, caller, command, "application", application.id.as_str(), "create", None, after).await?;
    Ok(application)
}

/// Replaces the profile fields named in the mask of a draft or returned application; the
/// result is validated whole, as a creation is.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    update: ApplicationUpdate,
    today: NaiveDate,
) -> Result<Application, Status> {
    let mut application = load(tx, key, caller, &update.id).await?;
    application.ensure_editable("changing").map_err(Error::from)?;
    if update.expected_revision != 0 && update.expected_revision != application.revision {
        return Err(Error::RevisionMismatch {
            id: application.id.to_string(),
            expected: update.expected_revision,
            actual: application.revision,
        }
        .into());
    }
    let before = audit_view(&application);
    let mut merged = ca::profile_to_proto(&application.profile, Visibility::Full);
    ca::apply_paths(&mut merged, &update.values, &update.paths);
    let mut v = supervision_kit::FieldViolations::new();
    let profile = ca::profile(Some(&merged), today, &mut v);
    v.check()?;
    application.profile = profile.expect("a valid profile converts");
    application.touch(clock.now());
    sql::update_application(&mut **tx, key, &application).await.map_err(Error::from)?;
    let mut after = audit_view(&application);
    after["fields"] = serde_json::json!(update.paths);
    after["on_behalf"] = on_behalf_view(update.on_behalf.as_ref());
    record(tx, db, clock, caller, command, "application", application.id.as_str(), "update", Some(before), after)
        .await?;
    Ok(application)
}

/// Stores a material of a draft or returned application, with its size and SHA-256, the content
/// encrypted with the personal-data key.
#[allow(clippy::too_many_arguments)]
pub async fn upload(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    new: NewMaterial,
) -> Result<Material, Error> {
    let mut application = load(tx, key, caller, &new.application_id).await?;
    application.ensure_editable("adding a material")?;
    if application.materials.len() >= MAX_MATERIALS {
        return Err(Error::TooManyMaterials(application.id.to_string(), MAX_MATERIALS));
    }
    let now = clock.now();
    let material = Material {
        id: MaterialId::generate(),
        application_id: application.id.clone(),
        kind: new.kind,
        category: new.category,
        condition: new.condition,
        file_name: new.file_name,
        media_type: new.media_type,
        size_bytes: i64::try_from(new.content.len()).unwrap_or(i64::MAX),
        sha256: hex::encode(Sha256::digest(&new.content)),
        description: new.description,
        uploaded_by: caller.actor(),
        uploaded_at: now,
        removed: false,
    };
    sql::insert_material(&mut **tx, key, &material, &new.content).await?;
    application.touch(now);
    sql::update_application(&mut **tx, key, &application).await?;
    let after = serde_json::json!({
        "application_id": material.application_id.as_str(),
        "kind": material.kind,
        "category": material.category,
        "condition": material.condition,
        "file_name": material.file_name,
        "media_type": material.media_type,
        "size_bytes": material.size_bytes,
        "sha256": material.sha256,
    });
    record(tx, db, clock, caller, command, "material", material.id.as_str(), "upload", None, after).await?;
    Ok(material)
}

/// Submits (or resubmits) with the commitment, within the call's window and with what the
/// call requires; staff submit with the applicant's signed paper commitment.
#[allow(clippy::too_many_arguments)]
pub async fn submit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    id: &ApplicationId,
    text_version: String,
    on_behalf: Option<OnBehalf>,
) -> Result<Application, Error> {
    let mut application = load(tx, key, caller, id).await?;
    application.ensure_editable("submitting")?;
    let call = store::get_call(tx, &application.call_id)
        .await?
        .ok_or_else(|| Error::CallNotFound(application.call_id.to_string()))?;
    let now = clock.now();
    let unmet = application.unmet_for_submission(&call, is_staff_entry(caller), now);
    if !unmet.is_empty() {
        return Err(Error::SubmissionRefused(unmet));
    }
    let before = audit_view(&application);
    let attestation = Attestation {
        text_version,
        text: COMMITMENT_TEXT.to_owned(),
        attested_at: on_behalf.as_ref().map_or(now, |o| o.received_at),
        on_behalf,
    };
    let attested_at = attestation.attested_at;
    let on_behalf = on_behalf_view(attestation.on_behalf.as_ref());
    application.submit(attestation, now)?;
    application.submitted_by_subject.clone_from(&caller.subject);
    sql::update_application(&mut **tx, key, &application).await?;
    let mut after = audit_view(&application);
    after["attested_at"] = serde_json::json!(supervision_kit::storage::format_instant(attested_at));
    after["on_behalf"] = on_behalf;
    record(tx, db, clock, caller, command, "application", application.id.as_str(), "submit", Some(before), after)
        .await?;
    Ok(application)
}

/// Withdraws an application before the review concludes.
#[allow(clippy::too_many_arguments)]
pub async fn withdraw(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    id: &ApplicationId,
    reason: String,
    on_behalf: Option<OnBehalf>,
) -> Result<Application, Error> {
    let mut application = load(tx, key, caller, id).await?;
    let before = audit_view(&application);
    application.withdraw(clock.now())?;
    sql::update_application(&mut **tx, key, &application).await?;
    let mut after = audit_view(&application);
    after["reason"] = serde_json::json!(reason);
    after["on_behalf"] = on_behalf_view(on_behalf.as_ref());
    record(tx, db, clock, caller, command, "application", application.id.as_str(), "withdraw", Some(before), after)
        .await?;
    Ok(application)
}

/// Records review verdicts (资格审核) by someone who neither entered nor submitted it.
#[allow(clippy::too_many_arguments)]
pub async fn record_review(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    id: &ApplicationId,
    inputs: Vec<(String, ReviewInput)>,
) -> Result<Application, Status> {
    let mut application = load(tx, key, caller, id).await?;
    let before = application.status.code();
    let items = application.record_review(inputs, caller.actor(), clock.now()).map_err(review_status)?;
    for item in &items {
        sql::insert_review_item(&mut **tx, &application.id, item).await.map_err(Error::from)?;
    }
    sql::update_application(&mut **tx, key, &application).await.map_err(Error::from)?;
    let after = serde_json::json!({
        "status": application.status.code(),
        "submission_number": application.submission_count,
        "items": items.iter().map(|i| serde_json::json!({
            "id": i.id.as_str(),
            "target": format!("{}/{}", i.input.target.kind(), i.input.target.value()),
            "verdict": i.input.verdict.code(),
            "reason": i.input.reason,
        })).collect::<Vec<_>>(),
    });
    let before = Some(serde_json::json!({ "status": before }));
    record(tx, db, clock, caller, command, "application", application.id.as_str(), "review", before, after).await?;
    Ok(application)
}

/// Concludes a review: PASSED only with every condition, a category and every material
/// approved; REJECTED and RETURNED with the reason shown to the applicant.
#[allow(clippy::too_many_arguments)]
pub async fn conclude_review(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    id: &ApplicationId,
    outcome: Outcome,
    reason: String,
) -> Result<Application, Status> {
    let mut application = load(tx, key, caller, id).await?;
    let before = application.status.code();
    let conclusion = Conclusion { outcome, reason, reviewer: caller.actor(), concluded_at: clock.now() };
    application.conclude(conclusion).map_err(review_status)?;
    sql::update_application(&mut **tx, key, &application).await.map_err(Error::from)?;
    let after = serde_json::json!({
        "status": application.status.code(),
        "outcome": outcome.code(),
        "reason": application.conclusion.as_ref().map(|c| c.reason.clone()),
    });
    let before = Some(serde_json::json!({ "status": before }));
    record(tx, db, clock, caller, command, "application", application.id.as_str(), "conclude_review", before, after)
        .await?;
    Ok(application)
}

/// A material of an application `caller` may reach (not its content), with the application.
async fn material_of(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    caller: &Caller,
    id: &MaterialId,
) -> Result<(Material, Application), Error> {
    let not_found = || Error::MaterialNotFound(id.to_string());
    // An expert's own materials are those of renewals, which are not recorded yet.
    if caller.role == Role::Expert {
        return Err(not_found());
    }
    let material = sql::material(&mut *conn, id).await?.ok_or_else(not_found)?;
    let application = load(conn, key, caller, &material.application_id).await.map_err(|_| not_found())?;
    Ok((material, application))
}

/// A material with its content: the applicant's own, or any for the city's staff and auditors.
/// The content is decrypted and checked against its size and SHA-256 only once the caller may
/// see it; one that does not come back whole is an internal error, never served.
pub async fn get_material(
    db: &Db,
    key: &PersonalDataKey,
    caller: &Caller,
    id: &MaterialId,
) -> Result<(Material, Vec<u8>), Error> {
    let mut conn = db.pool().acquire().await?;
    let (material, _) = material_of(&mut conn, key, caller, id).await?;
    let content = sql::material_content(&mut *conn, key, &material).await?;
    Ok((material, content))
}

/// Removes a material from a draft or returned application; it stays in the history.
#[allow(clippy::too_many_arguments)]
pub async fn remove_material(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    id: &MaterialId,
) -> Result<Material, Error> {
    let (mut material, mut application) = material_of(tx, key, caller, id).await?;
    application.ensure_editable("removing a material")?;
    if material.removed {
        return Ok(material);
    }
    material.removed = true;
    sql::mark_material_removed(&mut **tx, id).await?;
    application.touch(clock.now());
    sql::update_application(&mut **tx, key, &application).await?;
    let after = serde_json::json!({ "application_id": application.id.as_str(), "removed": true });
    record(tx, db, clock, caller, command, "material", id.as_str(), "remove", None, after).await?;
    Ok(material)
}

pub async fn get(db: &Db, key: &PersonalDataKey, caller: &Caller, id: &ApplicationId) -> Result<Application, Error> {
    let mut conn = db.pool().acquire().await?;
    load(&mut conn, key, caller, id).await
}

/// One page of applications, oldest first; an applicant's listing holds only their own.
pub async fn list(
    db: &Db,
    key: &PersonalDataKey,
    caller: &Caller,
    mut filter: ApplicationFilter,
    page: &Page,
) -> Result<(Vec<Application>, Option<String>), Error> {
    if caller.role == Role::Applicant {
        filter.owner_subject = Some(caller.subject.clone());
    }
    let mut conn = db.pool().acquire().await?;
    let items = sql::list_applications(&mut conn, key, &filter, &page.probe()).await?;
    Ok(page.finish(items, |a| a.id.to_string()))
}
