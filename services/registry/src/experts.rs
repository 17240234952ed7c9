//! Use cases of experts: each write one transaction with its audit entry, rules from `domain`,
//! SQL from `store::experts`, and who sees what in full decided here.
//!
//! Who sees personal data in full (common.proto, docs/rpc-roles.md): CITY_ADMIN, CITY_REVIEWER,
//! AUDITOR and the expert themself (an EXPERT token whose `expert_id` is the record's); everyone
//! else gets masked numbers and no postal address. An EXPERT reaches only their own record:
//! another id answers NOT_FOUND, as if it did not exist. GetPayee answers in full only to
//! AUDITOR and to a SERVICE acting for FINANCE, FINANCE_LEAD, CITY_ADMIN or AUDITOR, and every
//! call is audited.

use std::sync::Arc;

use chrono::NaiveDate;
use sqlx::{Any, AnyConnection, Transaction};
use supervision_kit::{
    Backend, Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    personal::PersonalDataKey,
    storage::is_unique_violation,
};
use supervision_reference::{Reference, ReferenceError, shanghai_today};

use crate::{
    convert::experts::{Confirmation, ExpertListing, ExpertUpdate, NewCivilServantEntry, NewExpert},
    domain::{
        ChangeId, CivilServantEntry, CivilServantPeriod, Evidence, Expert, ExpertChange, ExpertId, ExpertStatus,
        Organisation, Profile, Visibility,
        civil_servant::{period_on, periods},
        expert::{creation_changes, diff, fields, stamp_categories, stamp_conditions},
    },
    error::Error,
    expert_cache::{ExpertCache, Outcome},
    store::{self, experts as sql},
};

/// The method GetPayee's audit entries name.
pub const GET_PAYEE: &str = "/supervision.registry.v1.RegistryService/GetPayee";

/// The unique index that keeps an identity document to one expert.
const DOCUMENT_KEY: &str = "expert_documents_blind_index_key";

/// Whether `caller` sees `expert`'s personal data in full.
pub fn visibility(caller: &Caller, expert: &ExpertId) -> Visibility {
    match caller.role {
        Role::CityAdmin | Role::CityReviewer | Role::Auditor => Visibility::Full,
        Role::Expert if caller.expert_id.as_deref() == Some(expert.as_str()) => Visibility::Full,
        _ => Visibility::Masked,
    }
}

/// Whether `caller` gets payee details in full: AUDITOR, or the finance service itself (its token
/// subject, not merely any SERVICE token) acting for FINANCE, FINANCE_LEAD, CITY_ADMIN or
/// AUDITOR. The acting user is only declared by the calling service, so the service must be the
/// one trusted with payees.
pub fn payee_visibility(caller: &Caller) -> Visibility {
    let full = match caller.role {
        Role::Auditor => true,
        Role::Service => {
            caller.subject == supervision_kit::auth::service_subject("finance")
                && caller
                    .acting_for
                    .as_ref()
                    .is_some_and(|a| matches!(a.role.as_str(), "FINANCE" | "FINANCE_LEAD" | "CITY_ADMIN" | "AUDITOR"))
        }
        _ => false,
    };
    if full { Visibility::Full } else { Visibility::Masked }
}

/// An EXPERT caller reaches only their own record; for any other id the answer is NOT_FOUND.
pub fn require_own(caller: &Caller, expert: &ExpertId) -> Result<(), Error> {
    if caller.role == Role::Expert && caller.expert_id.as_deref() != Some(expert.as_str()) {
        return Err(Error::ExpertNotFound(expert.to_string()));
    }
    Ok(())
}

/// Registers an expert inside `tx`, with the first civil-servant entry, the creation in the
/// change history and the audit entry. A new expert holds no appointment (NOT_APPOINTED).
pub async fn create(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    new: NewExpert,
) -> Result<Expert, Error> {
    let now = clock.now();
    let today = shanghai_today(clock);
    let actor = caller.actor();
    let mut profile = new.profile;
    stamp_categories(&mut profile.categories, &[], &actor, today);
    stamp_conditions(&mut profile.conditions, &[], &actor, today);
    check_institutions(tx, &profile).await?;
    check_documents_free(tx, key, &profile, None).await?;
    let expert = Expert {
        id: ExpertId::generate(),
        profile,
        status: ExpertStatus::NotAppointed,
        civil_servant: vec![CivilServantEntry {
            seq: 1,
            valid_from: new.civil_servant_since,
            status: new.civil_servant_status,
            evidence: Evidence::default(),
            recorded_by: actor.clone(),
            on_behalf: None,
            recorded_at: now,
        }],
        trained: false,
        last_confirmed_year: 0,
        application_id: String::new(),
        current_term_end: None,
        appointment: None,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    if let Err(err) = sql::insert_expert(tx, key, &expert).await {
        return Err(document_taken(db, key, &expert.profile, None, err).await);
    }
    let change = ExpertChange {
        id: ChangeId::generate(),
        expert_id: expert.id.clone(),
        at: now,
        actor,
        reason: "created".into(),
        on_behalf: None,
        changes: creation_changes(&expert.profile),
    };
    sql::insert_change(tx, &change).await?;
    let after = serde_json::json!({
        "profile": fields(&expert.profile, true),
        "status": expert.status.code(),
        "civil_servant_status": new.civil_servant_status.code(),
        "civil_servant_since": new.civil_servant_since.map(|d| d.to_string()).unwrap_or_default(),
    });
    append_audit(tx, db, clock, caller, command.method, &command.request_id, &expert.id, "create", None, Some(after))
        .await?;
    Ok(expert)
}

/// One expert, for a caller allowed to see it. On PostgreSQL, when `cache` holds a copy read at
/// the expert's current `ReadStamp`, the copy (one small statement instead of the row and its
/// child rows, parsed); otherwise the expert read and kept there.
pub async fn get(
    db: &Db,
    key: &PersonalDataKey,
    cache: &Arc<ExpertCache>,
    caller: &Caller,
    id: &ExpertId,
) -> Result<Arc<Expert>, Error> {
    require_own(caller, id)?;
    let not_found = || Error::ExpertNotFound(id.to_string());
    if db.backend() != Backend::Postgres {
        let read = sql::get_committed_expert(&mut *snapshot(db).await?, key, id).await?;
        return read.map(|(expert, _)| Arc::new(expert)).ok_or_else(not_found);
    }
    // Each statement below is one snapshot: no transaction around them.
    let copy = cache.get(id);
    if let Some((kept, expert)) = &copy {
        match cache.current_stamp(db, id).await? {
            Some(now) if now == *kept => {
                cache.count(Outcome::Hit);
                #[cfg(debug_assertions)]
                check_copy(&mut *db.pool().acquire().await?, key, id, *kept, expert).await?;
                return Ok(expert.clone());
            }
            Some(_) => {}
            None => {
                cache.forget(id);
                return Err(not_found());
            }
        }
    }
    cache.count(if copy.is_some() { Outcome::Changed } else { Outcome::Miss });
    let read = sql::get_committed_expert(&mut *db.pool().acquire().await?, key, id).await?;
    let (expert, stamp) = read.ok_or_else(not_found)?;
    let expert = Arc::new(expert);
    if let Some(stamp) = stamp {
        cache.put(stamp, expert.clone());
    }
    Ok(expert)
}

/// Debug builds (every test) check each copy answered against a fresh read: if the store's stamp
/// is still the copy's, so must the expert be. A write that changed an expert without a new stamp
/// fails here, in whichever test made it.
#[cfg(debug_assertions)]
async fn check_copy(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    id: &ExpertId,
    kept: sql::ReadStamp,
    copy: &Expert,
) -> Result<(), Error> {
    if let Some((read, Some(stamp))) = sql::get_committed_expert(conn, key, id).await?
        && stamp == kept
    {
        assert_eq!(&read, copy, "the registry answered a copy of {id} at stamp {kept:?} that is no longer the expert");
    }
    Ok(())
}

/// A read-only transaction whose statements all see one snapshot, so an expert's row and its
/// child rows are read consistently beside concurrent updates (SQLite's read transactions are
/// snapshots already; PostgreSQL needs REPEATABLE READ for it). Dropped, it rolls back.
pub(crate) async fn snapshot(db: &Db) -> Result<Transaction<'static, Any>, Error> {
    let mut tx = db.pool().begin().await?;
    if db.backend() == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    }
    Ok(tx)
}

pub(crate) async fn load(conn: &mut AnyConnection, key: &PersonalDataKey, id: &ExpertId) -> Result<Expert, Error> {
    sql::get_expert(conn, key, id).await?.ok_or_else(|| Error::ExpertNotFound(id.to_string()))
}

/// Applies an update inside `tx`: the fields the mask named replace the stored ones, the result
/// must satisfy the same rules as a new expert, and every changed field is kept in the change
/// history (masked) with who, when and why. An update that changes nothing writes nothing.
pub async fn update(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    update: ExpertUpdate,
) -> Result<Expert, Error> {
    let current = load(tx, key, &update.id).await?;
    if update.expected_revision != 0 && update.expected_revision != current.revision {
        return Err(Error::RevisionMismatch { expected: update.expected_revision, actual: current.revision });
    }
    let now = clock.now();
    let today = shanghai_today(clock);
    let actor = caller.actor();
    let (categories_patched, conditions_patched) =
        (update.patch.categories.is_some(), update.patch.conditions.is_some());
    let mut profile = update.patch.apply_to(&current.profile);
    if categories_patched {
        stamp_categories(&mut profile.categories, &current.profile.categories, &actor, today);
    }
    if conditions_patched {
        stamp_conditions(&mut profile.conditions, &current.profile.conditions, &actor, today);
    }
    let problems = profile.problems();
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    check_institutions(tx, &profile).await?;
    check_documents_free(tx, key, &profile, Some(&current.id)).await?;
    let changes = diff(&current.profile, &profile);
    if changes.is_empty() {
        return Ok(current);
    }
    let expert = Expert { profile, revision: current.revision + 1, updated_at: now, ..current.clone() };
    let written = match sql::update_expert(tx, key, &expert, current.revision).await {
        Ok(written) => written,
        Err(err) => return Err(document_taken(db, key, &expert.profile, Some(&current.id), err).await),
    };
    if !written {
        // Another transaction changed the row after it was read: answer the revision it left,
        // read outside `tx` (whose snapshot may predate it).
        let mut conn = db.pool().acquire().await?;
        let actual = sql::expert_revision(&mut conn, &current.id).await?.unwrap_or(current.revision);
        return Err(Error::RevisionMismatch { expected: current.revision, actual });
    }
    let before: serde_json::Map<String, serde_json::Value> =
        changes.iter().map(|c| (c.path.clone(), c.before.clone().into())).collect();
    let after: serde_json::Map<String, serde_json::Value> =
        changes.iter().map(|c| (c.path.clone(), c.after.clone().into())).collect();
    let change = ExpertChange {
        id: ChangeId::generate(),
        expert_id: expert.id.clone(),
        at: now,
        actor,
        reason: update.reason.clone(),
        on_behalf: update.on_behalf,
        changes,
    };
    sql::insert_change(tx, &change).await?;
    let after = serde_json::json!({ "fields": after, "reason": update.reason, "revision": expert.revision });
    let before = serde_json::json!({ "fields": before, "revision": current.revision });
    append_audit(
        tx,
        db,
        clock,
        caller,
        command.method,
        &command.request_id,
        &expert.id,
        "update",
        Some(before),
        Some(after),
    )
    .await?;
    Ok(expert)
}

/// One page of experts matching the listing's filters, in id order, and the next page's token.
pub async fn list(
    db: &Db,
    key: &PersonalDataKey,
    listing: ExpertListing,
) -> Result<(Vec<Expert>, Option<String>), Error> {
    let mut filter = listing.filter;
    filter.identity_index = listing.identity.map(|doc| key.blind_index(&doc.index_input()));
    let items = if db.backend() == Backend::Postgres {
        // One statement (`sql::list_experts`) is one snapshot: no transaction around it.
        let mut conn = db.pool().acquire().await?;
        sql::list_experts(&mut conn, key, &filter, &listing.page.probe()).await?
    } else {
        let mut conn = snapshot(db).await?;
        sql::list_experts(&mut conn, key, &filter, &listing.page.probe()).await?
    };
    Ok(listing.page.finish(items, |e| e.id.to_string()))
}

/// One page of an expert's change history, newest first.
pub async fn list_changes(
    db: &Db,
    key: &PersonalDataKey,
    caller: &Caller,
    id: &ExpertId,
    page: &Page,
) -> Result<(Vec<ExpertChange>, Option<String>), Error> {
    require_own(caller, id)?;
    let mut conn = snapshot(db).await?;
    load(&mut conn, key, id).await?;
    let items = sql::list_changes(&mut conn, id, &page.probe()).await?;
    Ok(page.finish(items, |c| c.id.to_string()))
}

/// Records the yearly self-confirmation (D21) inside `tx`; a second one for the same year
/// replaces the first.
pub async fn confirm(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    confirmation: Confirmation,
) -> Result<Expert, Error> {
    let id = &confirmation.expert_id;
    require_own(caller, id)?;
    let now = clock.now();
    if !sql::touch_expert(tx, id, Some(confirmation.year), now).await? {
        return Err(Error::ExpertNotFound(id.to_string()));
    }
    let actor = caller.actor();
    sql::upsert_confirmation(
        tx,
        id,
        confirmation.year,
        &confirmation.note,
        confirmation.on_behalf.as_ref(),
        &actor,
        now,
    )
    .await?;
    let after = serde_json::json!({
        "year": confirmation.year,
        "note": confirmation.note,
        "channel": confirmation.on_behalf.as_ref().map(|o| o.channel.clone()).unwrap_or_default(),
    });
    append_audit(tx, db, clock, caller, command.method, &command.request_id, id, "confirm_data", None, Some(after))
        .await?;
    load(tx, key, id).await
}

/// Adds a civil-servant entry inside `tx` and returns the effective history after it.
pub async fn record_civil_servant_status(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    new: NewCivilServantEntry,
) -> Result<Vec<CivilServantPeriod>, Error> {
    let id = &new.expert_id;
    let now = clock.now();
    // Takes the expert's row lock first, so concurrent entries get distinct sequence numbers.
    if !sql::touch_expert(tx, id, None, now).await? {
        return Err(Error::ExpertNotFound(id.to_string()));
    }
    let mut entries = sql::civil_servant_entries(tx, id).await?;
    let entry = CivilServantEntry {
        seq: entries.iter().map(|e| e.seq).max().unwrap_or(0) + 1,
        valid_from: Some(new.valid_from),
        status: new.status,
        evidence: new.evidence,
        recorded_by: caller.actor(),
        on_behalf: new.on_behalf,
        recorded_at: now,
    };
    sql::insert_civil_servant_entry(tx, id, &entry).await?;
    let after = serde_json::json!({
        "status": entry.status.code(),
        "valid_from": new.valid_from.to_string(),
        "evidence": entry.evidence.description,
    });
    entries.push(entry);
    append_audit(
        tx,
        db,
        clock,
        caller,
        command.method,
        &command.request_id,
        id,
        "civil_servant_status",
        None,
        Some(after),
    )
    .await?;
    Ok(periods(&entries))
}

/// The answer finance needs for a fee line on `date` (article 10).
#[derive(Debug, Clone)]
pub struct CivilServantAnswer {
    pub period: CivilServantPeriod,
    pub fee_exempt: bool,
    pub edition_number: u32,
}

/// The status on `date`, and whether the edition in force on that date exempts it from fees.
pub async fn civil_servant_status_on(
    db: &Db,
    reference: &Reference,
    id: &ExpertId,
    date: NaiveDate,
) -> Result<CivilServantAnswer, Error> {
    let mut conn = snapshot(db).await?;
    let entries = sql::civil_servant_entries(&mut conn, id).await?;
    if entries.is_empty() {
        return Err(Error::ExpertNotFound(id.to_string()));
    }
    let history = periods(&entries);
    let period = period_on(&history, date).cloned().ok_or_else(|| Error::NoCivilServantStatus {
        date: date.to_string(),
        first: history.first().and_then(|p| p.valid_from).map(|d| d.to_string()).unwrap_or_default(),
    })?;
    let edition = reference.editions().edition_in_force(date).map_err(ReferenceError::from)?;
    Ok(CivilServantAnswer {
        fee_exempt: period.status.exempt_under(edition.fees.civil_servants_exempt),
        period,
        edition_number: edition.number,
    })
}

/// An expert's payee details and the form the caller gets them in; the read is audited (who,
/// for what purpose, plain or masked), never with the values themselves.
pub async fn payee(
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    id: &ExpertId,
    purpose: &str,
) -> Result<(Expert, Visibility), Error> {
    let visibility = payee_visibility(caller);
    let mut tx = db.begin_write().await?;
    let expert = load(&mut tx, key, id).await?;
    let after = serde_json::json!({ "purpose": purpose, "plain": visibility == Visibility::Full });
    append_audit(&mut tx, db, clock, caller, GET_PAYEE, "", id, "read_payee", None, Some(after)).await?;
    tx.commit().await?;
    Ok((expert, visibility))
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    method: &str,
    request_id: &str,
    id: &ExpertId,
    action: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), Error> {
    let change = Change { method, request_id, entity_type: "expert", entity_id: id.as_str(), action, before, after };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}

/// Every institution id the profile names must be registered.
async fn check_institutions(conn: &mut AnyConnection, profile: &Profile) -> Result<(), Error> {
    let named: [(&str, Option<&Organisation>); 2] = [
        ("profile.employer.organisation.institution_id", profile.employer.as_ref().map(|e| &e.organisation)),
        ("profile.represented_unit.institution_id", profile.represented_unit.as_ref()),
    ];
    let mut problems = Vec::new();
    for (field, organisation) in named {
        if let Some(id) = organisation.and_then(|o| o.institution_id.as_ref())
            && store::get_institution(&mut *conn, id).await?.is_none()
        {
            problems.push((field.to_owned(), "names no registered institution".to_owned()));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::Invalid(problems)) }
}

/// No other expert may hold any of the profile's documents (found through their blind index).
async fn check_documents_free(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    profile: &Profile,
    owner: Option<&ExpertId>,
) -> Result<(), Error> {
    for index in sql::blind_indexes(key, profile) {
        if let Some(holder) = sql::document_holder(conn, &index).await?
            && Some(&holder) != owner
        {
            return Err(Error::IdentityTaken(holder.to_string()));
        }
    }
    Ok(())
}

/// A write refused by the document index (a concurrent registration of the same document) is
/// ALREADY_EXISTS like the check before it, naming the expert that now holds the document. That
/// holder committed before the refusal, but the failed statement has aborted the write
/// transaction on PostgreSQL, so it is looked up on another connection. Should no other holder
/// be found any more (it changed its documents since), the write error itself is returned.
async fn document_taken(
    db: &Db,
    key: &PersonalDataKey,
    profile: &Profile,
    owner: Option<&ExpertId>,
    err: sqlx::Error,
) -> Error {
    if !is_unique_violation(&err, DOCUMENT_KEY, "blind_index") {
        return err.into();
    }
    let mut conn = match db.pool().acquire().await {
        Ok(conn) => conn,
        Err(lookup) => return lookup.into(),
    };
    for index in sql::blind_indexes(key, profile) {
        match sql::document_holder(&mut conn, &index).await {
            Ok(Some(holder)) if Some(&holder) != owner => return Error::IdentityTaken(holder.to_string()),
            Ok(_) => {}
            Err(lookup) => return lookup.into(),
        }
    }
    err.into()
}

#[cfg(test)]
mod tests {
    use supervision_kit::auth::Actor;

    use super::*;

    fn caller(role: Role, expert_id: Option<&str>) -> Caller {
        Caller { subject: "u".into(), role, bureau: None, expert_id: expert_id.map(str::to_owned), acting_for: None }
    }

    #[test]
    fn city_staff_auditors_and_the_expert_see_personal_data_in_full() {
        let id = ExpertId::generate();
        for role in [Role::CityAdmin, Role::CityReviewer, Role::Auditor] {
            assert_eq!(visibility(&caller(role, None), &id), Visibility::Full, "{role}");
        }
        assert_eq!(visibility(&caller(Role::Expert, Some(id.as_str())), &id), Visibility::Full);
        for role in [Role::CityOperator, Role::CountyOperator, Role::Finance, Role::Service] {
            assert_eq!(visibility(&caller(role, None), &id), Visibility::Masked, "{role}");
        }
        let other = ExpertId::generate();
        assert_eq!(visibility(&caller(Role::Expert, Some(other.as_str())), &id), Visibility::Masked);
    }

    #[test]
    fn an_expert_reaches_only_their_own_record() {
        let (own, other) = (ExpertId::generate(), ExpertId::generate());
        let expert = caller(Role::Expert, Some(own.as_str()));
        assert!(require_own(&expert, &own).is_ok());
        assert!(matches!(require_own(&expert, &other), Err(Error::ExpertNotFound(_))));
        assert!(require_own(&caller(Role::CountyOperator, None), &other).is_ok());
    }

    #[test]
    fn payees_are_plain_only_for_finance_through_its_service_and_for_auditors() {
        let acting = |role: &str| Caller {
            subject: "svc:finance".into(),
            acting_for: Some(Actor { subject: "f".into(), role: role.into(), bureau: Some("440700".into()) }),
            ..caller(Role::Service, None)
        };
        let forged = Caller { subject: "svc:dispatch".into(), ..acting("FINANCE") };
        assert_eq!(payee_visibility(&forged), Visibility::Masked, "another service cannot claim finance's trust");
        for role in ["FINANCE", "FINANCE_LEAD", "CITY_ADMIN", "AUDITOR"] {
            assert_eq!(payee_visibility(&acting(role)), Visibility::Full, "{role}");
        }
        assert_eq!(payee_visibility(&acting("COUNTY_OPERATOR")), Visibility::Masked);
        assert_eq!(payee_visibility(&caller(Role::Service, None)), Visibility::Masked, "no acting user");
        assert_eq!(payee_visibility(&caller(Role::Auditor, None)), Visibility::Full);
    }
}
