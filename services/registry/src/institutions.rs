//! Use cases of institutions: each one transaction, rules from `domain`, SQL from `store`.

use chrono::{SubsecRound, Utc};
use supervision_kit::{Db, Page, storage::is_unique_violation};

use crate::{
    domain::{Institution, InstitutionFilter, InstitutionId, InstitutionStatus, LegalStanding, NewInstitution},
    error::Error,
    store,
};

/// Registers an institution. A sub-unit's parent must exist and be a legal entity (D20).
pub async fn create(db: &Db, new: NewInstitution) -> Result<Institution, Error> {
    let mut tx = db.begin_write().await?;
    if let LegalStanding::SubUnitOf(parent_id) = &new.standing {
        let parent = store::get_institution(&mut *tx, parent_id)
            .await?
            .ok_or_else(|| Error::ParentNotFound(parent_id.to_string()))?;
        if !matches!(parent.standing, LegalStanding::LegalEntity(_)) {
            return Err(Error::ParentIsSubUnit(parent_id.to_string()));
        }
    }
    // Stored instants keep microseconds; the answer must equal what a later read returns.
    let now = Utc::now().trunc_subsecs(6);
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
    store::insert_institution(&mut *tx, &institution).await.map_err(|err| {
        match (&institution.standing, is_unique_violation(&err, "institutions_credit_code_key", "credit_code")) {
            (LegalStanding::LegalEntity(code), true) => Error::CreditCodeTaken(code.to_string()),
            _ => err.into(),
        }
    })?;
    tx.commit().await?;
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
    // Ask for one more than the page to learn whether another page follows.
    let probe = Page { size: page.size + 1, after: page.after.clone() };
    let mut items = store::list_institutions(db.pool(), filter, &probe).await?;
    let next = if items.len() > page.size as usize {
        items.truncate(page.size as usize);
        items.last().map(|i| i.id.to_string())
    } else {
        None
    };
    Ok((items, next))
}
