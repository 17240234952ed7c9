//! Use cases of institutions: each one transaction, rules from `domain`, SQL from `store`.

use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    storage::is_unique_violation,
};

use crate::{
    domain::{Institution, InstitutionFilter, InstitutionId, InstitutionStatus, LegalStanding, NewInstitution},
    error::Error,
    store,
};

/// Registers an institution inside `tx`, with its audit entry. A sub-unit's parent must exist
/// and be a legal entity (D20).
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    new: NewInstitution,
) -> Result<Institution, Error> {
    if let LegalStanding::SubUnitOf(parent_id) = &new.standing {
        // Under the parent's lock, so it cannot become a sub-unit itself meanwhile.
        lock(tx, &[parent_id]).await?;
        let parent = store::get_institution(&mut **tx, parent_id)
            .await?
            .ok_or_else(|| Error::ParentNotFound(parent_id.to_string()))?;
        if !matches!(parent.standing, LegalStanding::LegalEntity(_)) {
            return Err(Error::ParentIsSubUnit(parent_id.to_string()));
        }
    }
    let now = clock.now();
    let institution = Institution {
        id: InstitutionId::generate(),
        kind: new.kind,
        name: new.name,
        standing: new.standing,
        county: new.county,
        address: new.address,
        head: new.head,
        status: InstitutionStatus::Active,
        created_at: now,
        updated_at: now,
    };
    store::insert_institution(&mut **tx, &institution).await.map_err(|err| {
        match (&institution.standing, is_unique_violation(&err, "institutions_credit_code_key", "credit_code")) {
            (LegalStanding::LegalEntity(code), true) => Error::CreditCodeTaken(code.to_string()),
            _ => err.into(),
        }
    })?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "institution",
        entity_id: institution.id.as_str(),
        action: "create",
        before: None,
        after: Some(audit_view(&institution)),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(institution)
}

/// Takes the row locks of `ids`, in the order given (a no-op update locks on both backends).
async fn lock(tx: &mut Transaction<'static, Any>, ids: &[&InstitutionId]) -> Result<(), Error> {
    for id in ids {
        sqlx::query("UPDATE institutions SET status = status WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(Error::from)?;
    }
    Ok(())
}

/// The parent `update` would give `current`, if the result is a valid sub-unit.
fn new_parent(current: &Institution, update: &crate::convert::InstitutionUpdate) -> Option<InstitutionId> {
    let merged = crate::convert::merged_institution(&crate::convert::institution_to_proto(current.clone()), update);
    match crate::convert::new_institution(merged).ok()?.standing {
        LegalStanding::SubUnitOf(parent) => Some(parent),
        LegalStanding::LegalEntity(_) => None,
    }
}

pub async fn get(db: &Db, id: &InstitutionId) -> Result<Institution, Error> {
    store::get_institution(db.pool(), id).await?.ok_or_else(|| Error::InstitutionNotFound(id.to_string()))
}

/// One page of institutions in id (creation) order, and the token of the next page if there is one.
pub async fn list(
    db: &Db,
    filter: &InstitutionFilter,
    page: &Page,
) -> Result<(Vec<Institution>, Option<String>), Error> {
    let items = store::list_institutions(db.pool(), filter, &page.probe()).await?;
    Ok(page.finish(items, |x| x.id.to_string()))
}

/// Changes an institution inside `tx`: the fields the mask names replace the stored ones, the
/// result must satisfy the rules of a new institution (D20: a legal entity with a valid credit
/// code, a sub-unit a parent that is a legal entity other than itself; a legal entity with
/// sub-units stays one), a county operator neither edits another county's institution nor moves
/// one out of its own, and the change is kept in the audit chain with the reason and the values
/// before and after. An update that changes nothing writes nothing.
pub async fn update(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    update: crate::convert::InstitutionUpdate,
) -> Result<Institution, tonic::Status> {
    // The institution and its new parent are locked (in id order, so two updates never wait on
    // each other) before the checks, so no concurrent update makes a cycle or a sub-unit's
    // sub-unit between the checks and the write.
    let peek = store::get_institution(&mut **tx, &update.id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::InstitutionNotFound(update.id.to_string()))?;
    let planned = new_parent(&peek, &update);
    let mut locked: Vec<&InstitutionId> = std::iter::once(&update.id).chain(planned.as_ref()).collect();
    locked.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    locked.dedup();
    lock(tx, &locked).await?;
    let current = store::get_institution(&mut **tx, &update.id)
        .await
        .map_err(Error::from)?
        .ok_or_else(|| Error::InstitutionNotFound(update.id.to_string()))?;
    caller.require_bureau(current.county)?;
    let merged = crate::convert::merged_institution(&crate::convert::institution_to_proto(current.clone()), &update);
    let new = crate::convert::new_institution(merged)?;
    caller.require_bureau(new.county)?;
    if let LegalStanding::SubUnitOf(parent_id) = &new.standing {
        if planned.as_ref() != Some(parent_id) && *parent_id != current.id {
            // The institution changed before its lock was taken: lock the parent it has now.
            lock(tx, &[parent_id]).await?;
        }
        if *parent_id == current.id {
            return Err(Error::Invalid(vec![(
                "institution.parent_id".into(),
                "an institution is not its own parent".into(),
            )])
            .into());
        }
        let parent = store::get_institution(&mut **tx, parent_id)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::ParentNotFound(parent_id.to_string()))?;
        if !matches!(parent.standing, LegalStanding::LegalEntity(_)) {
            return Err(Error::ParentIsSubUnit(parent_id.to_string()).into());
        }
        if matches!(current.standing, LegalStanding::LegalEntity(_))
            && store::has_sub_units(&mut **tx, &current.id).await.map_err(Error::from)?
        {
            return Err(Error::Invalid(vec![(
                "institution.parent_id".into(),
                "this institution has sub-units of its own; it stays a legal entity".into(),
            )])
            .into());
        }
    }
    let status = if update.paths.iter().any(|p| p == "status") {
        if update.values.status == supervision_proto::registry::InstitutionStatus::Closed as i32 {
            InstitutionStatus::Closed
        } else {
            InstitutionStatus::Active
        }
    } else {
        current.status
    };
    let changed = Institution {
        kind: new.kind,
        name: new.name,
        standing: new.standing,
        county: new.county,
        address: new.address,
        head: new.head,
        status,
        updated_at: clock.now(),
        ..current.clone()
    };
    let unchanged = Institution { updated_at: current.updated_at, ..changed.clone() } == current;
    if unchanged {
        return Ok(current);
    }
    store::update_institution(&mut **tx, &changed).await.map_err(|err| {
        match (&changed.standing, is_unique_violation(&err, "institutions_credit_code_key", "credit_code")) {
            (LegalStanding::LegalEntity(code), true) => Error::CreditCodeTaken(code.to_string()),
            _ => Error::from(err),
        }
    })?;
    let mut after = audit_view(&changed);
    after["reason"] = serde_json::Value::String(update.reason.clone());
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "institution",
        entity_id: changed.id.as_str(),
        action: "update",
        before: Some(audit_view(&current)),
        after: Some(after),
    };
    audit::append(tx, db.backend(), clock, caller, change).await.map_err(Error::from)?;
    Ok(changed)
}

/// What the audit trail keeps of an institution (nothing personal beyond the head's name, which
/// is public on the institution's licence).
fn audit_view(i: &Institution) -> serde_json::Value {
    let (credit_code, parent_id) = match &i.standing {
        LegalStanding::LegalEntity(code) => (code.to_string(), String::new()),
        LegalStanding::SubUnitOf(parent) => (String::new(), parent.to_string()),
    };
    serde_json::json!({
        "kind": i.kind.code(),
        "name": i.name,
        "credit_code": credit_code,
        "parent_id": parent_id,
        "county": i.county.division_code(),
        "address": i.address,
        "head": i.head,
        "status": i.status.code(),
    })
}
