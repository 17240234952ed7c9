//! Use cases of relations, conflicts and the draw pool (article 9(六), D14, D18, D19, D20;
//! ARCHITECTURE.md "The draw" step 1). Each write is one transaction with its audit entry.
//!
//! Choices where the sources leave room (written down in docs/registry-rules.md):
//! - the look-back is the edition's `conflict_lookback_years` in force on the first date asked
//!   about (the first session date of a pool), and applies from the last day of every ended
//!   relation, whatever its kind;
//! - a relation whose first day is after the last date asked about does not conflict yet;
//! - the family of an institution is itself, its parent and its sub-units (D20); a relation, an
//!   employer or a represented unit anywhere in it conflicts, named by institution id or by credit
//!   code;
//! - ListRelations hides relations that ended before today or were recorded in error unless
//!   `include_ended`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{Any, Transaction};
use supervision_kit::{
    Caller, Db, Page, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
};
use supervision_reference::{Reference, ReferenceError, shanghai_today};

use crate::{
    convert::relations::{ConflictQuery, Counterparty, NewRelation, PoolRequest, RelationEnd},
    domain::{ConflictReason, ExpertId, InstitutionFamily, InstitutionId, Relation, RelationId, StatusChange},
    error::Error,
    experts::{require_own, snapshot},
    store::{
        self,
        relations::{self as sql, PoolRow, RelationFilter},
    },
};

/// The method the pool reads' audit entries name.
pub const STREAM_DRAW_POOL: &str = "/supervision.registry.v1.RegistryService/StreamDrawPool";

/// Experts per message of the pool stream (the contract's "batches of up to 1,000").
pub const POOL_BATCH: u32 = 1000;

/// Records a relation inside `tx`, with its audit entry. The expert must exist (an EXPERT only
/// themself) and a named institution must be registered.
pub async fn record(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    new: NewRelation,
) -> Result<Relation, Error> {
    require_own(caller, &new.expert_id)?;
    if !sql::expert_exists(tx, &new.expert_id).await? {
        return Err(Error::ExpertNotFound(new.expert_id.to_string()));
    }
    let (institution_id, organisation) = match new.counterparty {
        Counterparty::Institution(id) => {
            if store::get_institution(&mut **tx, &id).await?.is_none() {
                return Err(Error::Invalid(vec![("institution_id".into(), "names no registered institution".into())]));
            }
            (Some(id), None)
        }
        Counterparty::Organisation(o) => (None, Some(o)),
    };
    let relation = Relation {
        id: RelationId::generate(),
        expert_id: new.expert_id,
        kind: new.kind,
        institution_id,
        organisation,
        counterpart_name: new.counterpart_name,
        counterpart_role: new.counterpart_role,
        valid_from: new.valid_from,
        valid_to: new.valid_to,
        source: new.source,
        source_ref: new.source_ref,
        evidence: new.evidence,
        note: new.note,
        recorded_by: caller.actor(),
        on_behalf: new.on_behalf,
        recorded_at: clock.now(),
        recorded_in_error: false,
        end_reason: String::new(),
    };
    sql::insert_relation(tx, &relation).await?;
    append_audit(tx, db, clock, caller, command, &relation, "record", None, Some(audit_view(&relation))).await?;
    Ok(relation)
}

/// Ends a relation on its last day, or marks it recorded in error, inside `tx`. Nothing is
/// deleted; a relation already ended (or in error) is FAILED_PRECONDITION.
pub async fn end(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    end: RelationEnd,
) -> Result<Relation, Error> {
    let id = &end.relation_id;
    let before = sql::get_relation(tx, id).await?.ok_or_else(|| Error::RelationNotFound(id.to_string()))?;
    if let (Some(last), Some(first)) = (end.end, before.valid_from)
        && last < first
    {
        return Err(Error::Invalid(vec![(
            "end_date".into(),
            format!("must not be before the relation's start {first}"),
        )]));
    }
    if !sql::end_relation(tx, id, end.end, end.in_error, &end.reason).await? {
        return Err(Error::RelationClosed(id.to_string()));
    }
    let after = sql::get_relation(tx, id).await?.ok_or_else(|| Error::RelationNotFound(id.to_string()))?;
    let action = if end.in_error { "mark_in_error" } else { "end" };
    append_audit(tx, db, clock, caller, command, &after, action, Some(audit_view(&before)), Some(audit_view(&after)))
        .await?;
    Ok(after)
}

/// One page of relations, newest first. An EXPERT sees only their own.
pub async fn list(
    db: &Db,
    caller: &Caller,
    mut filter: RelationFilter,
    today: NaiveDate,
    page: &Page,
) -> Result<(Vec<Relation>, Option<String>), Error> {
    if caller.role == Role::Expert {
        let own = caller.expert_id.as_deref().and_then(ExpertId::parse);
        let id = filter.expert_id.clone().or(own).ok_or_else(|| Error::ExpertNotFound(String::new()))?;
        require_own(caller, &id)?;
        filter.expert_id = Some(id);
    }
    let mut conn = snapshot(db).await?;
    let items = sql::list_relations(&mut conn, &filter, today, &page.probe()).await?;
    Ok(page.finish(items, |r| r.id.to_string()))
}

/// The family of `id` (itself, its parent, its sub-units); NOT_FOUND when `id` is unknown.
async fn family(conn: &mut sqlx::AnyConnection, id: &InstitutionId) -> Result<InstitutionFamily, Error> {
    let found = sql::institution_family(conn, id).await?;
    if !found.iter().any(|i| &i.id == id) {
        return Err(Error::InstitutionNotFound(id.to_string()));
    }
    Ok(InstitutionFamily::of(id, &found))
}

/// The edition's look-back in force on `date`.
fn lookback_years(reference: &Reference, date: NaiveDate) -> Result<u32, Error> {
    let edition = reference.editions().edition_in_force(date).map_err(ReferenceError::from)?;
    Ok(edition.exclusions.conflict_lookback_years)
}

/// The reasons recorded relations give, by expert: every relation with a member of the family
/// that conflicts on some day from `first` to `last`.
async fn relation_conflicts(
    conn: &mut sqlx::AnyConnection,
    family: &InstitutionFamily,
    first: NaiveDate,
    last: NaiveDate,
    lookback: u32,
) -> Result<HashMap<ExpertId, Vec<ConflictReason>>, Error> {
    let mut reasons: HashMap<ExpertId, Vec<ConflictReason>> = HashMap::new();
    for relation in sql::family_relations(conn, family).await? {
        let Some(path) = family.path_of_relation(&relation) else { continue };
        let Some(until) = relation.conflict_over(first, last, lookback) else { continue };
        reasons.entry(relation.expert_id.clone()).or_default().push(ConflictReason {
            kind: relation.kind,
            relation_id: Some(relation.id.clone()),
            path,
            until,
        });
    }
    Ok(reasons)
}

/// Every conflicted expert with every reason: the profile links (employer, represented unit) to
/// `family`, then the `relations`' reasons.
async fn every_conflict(
    conn: &mut sqlx::AnyConnection,
    family: &InstitutionFamily,
    relations: &HashMap<ExpertId, Vec<ConflictReason>>,
) -> Result<BTreeMap<ExpertId, Vec<ConflictReason>>, Error> {
    let mut by_expert: BTreeMap<ExpertId, Vec<ConflictReason>> = BTreeMap::new();
    for (expert, links) in sql::family_profile_links(conn, family).await? {
        let reasons = family.profile_reasons(&links);
        if !reasons.is_empty() {
            by_expert.entry(expert).or_default().extend(reasons);
        }
    }
    for (expert, reasons) in relations {
        by_expert.entry(expert.clone()).or_default().extend(reasons.iter().cloned());
    }
    Ok(by_expert)
}

/// Who is conflicted for an institution (with its parent and sub-units) over some dates and why,
/// in expert id order, one page at a time.
pub async fn query(
    db: &Db,
    reference: &Reference,
    q: ConflictQuery,
) -> Result<(Vec<(ExpertId, Vec<ConflictReason>)>, Option<String>), Error> {
    let lookback = lookback_years(reference, q.first)?;
    let mut conn = snapshot(db).await?;
    db.plan_for_values(&mut conn).await?;
    let family = family(&mut conn, &q.institution_id).await?;
    let relations = relation_conflicts(&mut conn, &family, q.first, q.last, lookback).await?;
    let by_expert = every_conflict(&mut conn, &family, &relations).await?;
    let after = q.page.after.as_deref().unwrap_or_default();
    let items: Vec<_> = by_expert
        .into_iter()
        .filter(|(e, _)| e.as_str() > after)
        .filter(|(e, _)| q.expert_ids.is_empty() || q.expert_ids.contains(e))
        .take(q.page.size as usize + 1)
        .collect();
    Ok(q.page.finish(items, |(e, _)| e.to_string()))
}

/// One candidate of the draw pool: its row (with its specialty codes), conflict reasons and a
/// status change already recorded for a later date.
#[derive(Debug, Clone)]
pub struct PoolCandidate {
    pub row: PoolRow,
    pub conflicts: Vec<ConflictReason>,
    pub scheduled: Option<StatusChange>,
}

/// Reads the draw pool from one snapshot: the relation conflicts and scheduled changes are read
/// once, then every candidate by one statement streamed in id order (specialties aggregated in
/// SQL), cut into batches of [`POOL_BATCH`]; the profile conflicts (employer, represented unit)
/// are checked against the institution's family in memory as rows arrive. Three statements
/// whatever the pool's size; no personal data is read or decrypted. With a list of experts the
/// candidates' statement looks up only those ids (by the experts' and appointments' keys).
///
/// A sync read (StreamDrawPoolRequest.sync) streams the candidates whose facts changed since
/// the caller's version (all of them without one), without conflicts, scheduled changes or the
/// session-date filter; [`Self::sync`] then has the rest of the answer.
#[derive(Debug)]
pub struct PoolReader {
    conn: Transaction<'static, Any>,
    family: InstitutionFamily,
    relation_conflicts: HashMap<ExpertId, Vec<ConflictReason>>,
    scheduled: HashMap<ExpertId, StatusChange>,
    first: NaiveDate,
    /// Only these experts when not empty (StreamDrawPoolRequest.expert_ids).
    only: Vec<ExpertId>,
    /// The instant the pool reflects.
    pub as_of: DateTime<Utc>,
    /// Experts read so far.
    pub count: u64,
    /// Set for a sync read.
    pub sync: Option<PoolSync>,
}

/// What a sync read answers besides the changed candidates.
#[derive(Debug)]
pub struct PoolSync {
    /// The version the read reflects, for the caller's next sync.
    pub version: sql::PoolVersion,
    /// The version the changes are since; `None` for the whole pool.
    since: Option<sql::PoolVersion>,
    /// The experts whose facts changed since `since`, in id order (a changes-only read).
    changed: Vec<String>,
    /// Those of `changed` that the pool no longer holds, known once the candidates are sent.
    pub removed: Vec<String>,
    /// Every expert conflicted for the institution on the session dates, with the reasons.
    pub conflicts: BTreeMap<ExpertId, Vec<ConflictReason>>,
}

impl PoolSync {
    /// Whether the read is the whole pool (the caller replaces its copy).
    pub fn full(&self) -> bool {
        self.since.is_none()
    }
}

/// Opens the pool for one task: the institution must exist and the first session date fall in an
/// edition in force; the read is audited with the task id before anything is sent.
pub async fn open_pool(
    db: &Db,
    clock: &SharedClock,
    reference: &Reference,
    caller: &Caller,
    request: &PoolRequest,
) -> Result<PoolReader, Error> {
    let (first, last) = match (request.session_dates.first(), request.session_dates.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => return Err(Error::Invalid(vec![("session_dates".into(), "is required".into())])),
    };
    let lookback = lookback_years(reference, first)?;
    if store::get_institution(db.pool(), &request.institution_id).await?.is_none() {
        return Err(Error::InstitutionNotFound(request.institution_id.to_string()));
    }
    let mut tx = db.begin_write().await?;
    let mut after = serde_json::json!({
        "task_id": request.task_id,
        "session_dates": request.session_dates.iter().map(ToString::to_string).collect::<Vec<_>>(),
    });
    if !request.expert_ids.is_empty() {
        after["expert_ids"] = request.expert_ids.iter().map(ExpertId::as_str).collect::<Vec<_>>().into();
    }
    if request.sync.is_some() {
        after["sync"] = true.into();
    }
    let change = Change {
        method: STREAM_DRAW_POOL,
        request_id: "",
        entity_type: "institution",
        entity_id: request.institution_id.as_str(),
        action: "read_draw_pool",
        before: None,
        after: Some(after),
    };
    audit::append(&mut tx, db.backend(), clock, caller, change).await?;
    tx.commit().await?;

    let mut conn = snapshot(db).await?;
    db.plan_for_values(&mut conn).await?;
    let as_of = clock.now();
    let family = family(&mut conn, &request.institution_id).await?;
    let relation_conflicts = relation_conflicts(&mut conn, &family, first, last, lookback).await?;
    let mut scheduled = HashMap::new();
    for change in sql::scheduled_changes(&mut conn, shanghai_today(clock)).await? {
        // Oldest first: the last one recorded for an expert wins.
        scheduled.insert(change.expert_id.clone(), change);
    }
    let sync = match &request.sync {
        None => None,
        Some(since) => {
            let postgres = db.backend() == supervision_kit::Backend::Postgres;
            let version = sql::pool_version_now(&mut conn, postgres).await?;
            // A version this database cannot place answers the whole pool.
            let since = sql::PoolVersion::decode(since).filter(|s| s.precedes(&version));
            let changed = match &since {
                Some(since) => sql::pool_changed_ids(&mut conn, since).await?,
                None => Vec::new(),
            };
            let conflicts = every_conflict(&mut conn, &family, &relation_conflicts).await?;
            Some(PoolSync { version, since, changed, removed: Vec::new(), conflicts })
        }
    };
    let only = request.expert_ids.clone();
    Ok(PoolReader { conn, family, relation_conflicts, scheduled, first, only, as_of, count: 0, sync })
}

impl PoolReader {
    /// Hands the pool to `send` in batches of up to [`POOL_BATCH`] candidates, in id order; stops
    /// early (without error) when `send` answers `false` (the caller hung up). [`Self::count`]
    /// is the number handed over. A sync read's candidates carry no conflicts and no scheduled
    /// change, and its [`PoolSync::removed`] is filled once the last is handed over.
    pub async fn send_batches<F>(&mut self, mut send: impl FnMut(Vec<PoolCandidate>) -> F) -> Result<(), Error>
    where
        F: Future<Output = bool>,
    {
        use tokio_stream::StreamExt as _;
        let Self { conn, family, relation_conflicts, scheduled, first, only, count, sync, .. } = self;
        let scope = match sync.as_ref() {
            None => sql::PoolScope::OnDate { first: *first, only },
            Some(PoolSync { since: None, .. }) => sql::PoolScope::Everyone,
            // A few changes are looked up by id (each by the primary keys); many, by the
            // version, in one pass over the tables.
            Some(PoolSync { changed, .. }) if changed.len() <= POOL_BATCH as usize => sql::PoolScope::Ids(changed),
            Some(PoolSync { since: Some(since), .. }) => sql::PoolScope::ChangedSince(since),
        };
        if matches!(scope, sql::PoolScope::Ids(ids) if ids.is_empty()) {
            return Ok(()); // nothing changed: nothing to read or send, nothing removed
        }
        let mut rows = std::pin::pin!(sql::pool_rows(conn, scope));
        let mut batch = Vec::with_capacity(POOL_BATCH as usize);
        let mut present = std::collections::HashSet::new();
        while let Some(row) = rows.next().await {
            let row = row?;
            let candidate = if let Some(sync) = sync.as_ref() {
                if !sync.full() {
                    present.insert(row.expert_id.as_str().to_owned());
                }
                PoolCandidate { scheduled: None, conflicts: Vec::new(), row }
            } else {
                let mut conflicts = family.profile_reasons(&row.links);
                if let Some(more) = relation_conflicts.get(&row.expert_id) {
                    conflicts.extend(more.iter().cloned());
                }
                PoolCandidate { scheduled: scheduled.get(&row.expert_id).cloned(), conflicts, row }
            };
            batch.push(candidate);
            if batch.len() == POOL_BATCH as usize {
                *count += batch.len() as u64;
                if !send(std::mem::replace(&mut batch, Vec::with_capacity(POOL_BATCH as usize))).await {
                    return Ok(());
                }
            }
        }
        if !batch.is_empty() {
            *count += batch.len() as u64;
            send(batch).await;
        }
        if let Some(sync) = sync.as_mut() {
            sync.removed = sync.changed.iter().filter(|id| !present.contains(id.as_str())).cloned().collect();
        }
        Ok(())
    }

    /// The status changes recorded to take effect after today, the last recorded per expert, in
    /// expert id order.
    pub fn scheduled_changes(&self) -> Vec<&StatusChange> {
        let mut changes: Vec<&StatusChange> = self.scheduled.values().collect();
        changes.sort_by(|a, b| a.expert_id.cmp(&b.expert_id));
        changes
    }
}

/// What the audit trail keeps of a relation: codes, ids and dates; not the counterpart's name.
fn audit_view(r: &Relation) -> serde_json::Value {
    serde_json::json!({
        "expert_id": r.expert_id.as_str(),
        "type": r.kind.code(),
        "institution_id": r.institution_id.as_ref().map(ToString::to_string).unwrap_or_default(),
        "organisation_credit_code": r
            .organisation
            .as_ref()
            .and_then(|o| o.credit_code.as_ref())
            .map(ToString::to_string)
            .unwrap_or_default(),
        "counterpart_role": r.counterpart_role,
        "valid_from": r.valid_from.map(|d| d.to_string()).unwrap_or_default(),
        "valid_to": r.valid_to.map(|d| d.to_string()).unwrap_or_default(),
        "source": r.source.code(),
        "source_ref": r.source_ref,
        "channel": r.on_behalf.as_ref().map(|o| o.channel.clone()).unwrap_or_default(),
        "recorded_in_error": r.recorded_in_error,
        "end_reason": r.end_reason,
    })
}

#[allow(clippy::too_many_arguments)]
async fn append_audit(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    relation: &Relation,
    action: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), Error> {
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "relation",
        entity_id: relation.id.as_str(),
        action,
        before,
        after,
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(())
}
