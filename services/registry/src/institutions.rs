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
